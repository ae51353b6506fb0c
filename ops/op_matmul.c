/* matmul: ONNX MatMul (numpy matmul) over whole batched tensors. a [..., M, K]
 * times b [..., K, N] gives [..., M, N]; the leading (batch) dims broadcast
 * with numpy's rule; a 1-D a is a row [1, K] and a 1-D b a column [K, 1],
 * whose added dim is dropped from the result again. The fast path is oneDNN's
 * sgemm per batch matrix, or one sgemm when b is a single matrix (a's batch
 * folds into M: the classifier case). Gradients: matmul_bwd_a (dy, a, b) -> da
 * = dy b^T and matmul_bwd_b (dy, a, b) -> db = a^T dy, each summed over the
 * batch dims its operand was broadcast along. */
#include "ops/dnnl_util.h"
#include "ops/ops_util.h"

#include <string.h>

enum { IN_A, IN_B };
enum { BW_DY, BW_A, BW_B };

typedef struct mm_geom {
    int64_t m, k, n;
    int nb;                          /* batch dims of the output */
    int64_t bd[PRT_MAX_DIMS];        /* their sizes */
    int64_t sa[PRT_MAX_DIMS], sb[PRT_MAX_DIMS]; /* matrix strides of a and b (0: broadcast) */
    int64_t batch, a_mats, b_mats;   /* matrices in the output, a and b */
    prt_shape out;
} mm_geom;

/* The geometry of a @ b, or false with the reason in why. */
static bool mm_geom_of(const prt_shape *a, const prt_shape *b, mm_geom *g, char *why, size_t cap) {
    char x[160], y[160];
    memset(g, 0, sizeof *g);
    if (a->ndim < 1 || b->ndim < 1) {
        snprintf(why, cap, "needs inputs of rank 1 or more, got %s and %s", prt_shape_str(a, x, sizeof x),
                 prt_shape_str(b, y, sizeof y));
        return false;
    }
    int na = a->ndim >= 2 ? a->ndim - 2 : 0, nbb = b->ndim >= 2 ? b->ndim - 2 : 0;
    g->m = a->ndim >= 2 ? a->d[a->ndim - 2] : 1;
    g->k = a->d[a->ndim - 1];
    int64_t kb = b->ndim >= 2 ? b->d[b->ndim - 2] : b->d[0];
    g->n = b->ndim >= 2 ? b->d[b->ndim - 1] : 1;
    if (g->k != kb) {
        snprintf(why, cap, "%s @ %s: a has %lld columns but b has %lld rows", prt_shape_str(a, x, sizeof x),
                 prt_shape_str(b, y, sizeof y), (long long)g->k, (long long)kb);
        return false;
    }
    g->nb = na > nbb ? na : nbb;
    int64_t s_a = 1, s_b = 1;
    g->batch = g->a_mats = g->b_mats = 1;
    for (int i = g->nb - 1; i >= 0; i--) {
        int ia = i - (g->nb - na), ib = i - (g->nb - nbb);
        int64_t da = ia >= 0 ? a->d[ia] : 1, db = ib >= 0 ? b->d[ib] : 1;
        if (da != db && da != 1 && db != 1) {
            snprintf(why, cap, "%s @ %s: batch dims do not broadcast (%lld against %lld)", prt_shape_str(a, x, sizeof x),
                     prt_shape_str(b, y, sizeof y), (long long)da, (long long)db);
            return false;
        }
        g->bd[i] = da == 1 ? db : da;
        g->sa[i] = da == 1 ? 0 : s_a;
        g->sb[i] = db == 1 ? 0 : s_b;
        s_a *= da;
        s_b *= db;
        g->batch *= g->bd[i];
    }
    g->a_mats = s_a;
    g->b_mats = s_b;
    prt_shape o = {.ndim = g->nb};
    for (int i = 0; i < g->nb; i++) o.d[i] = g->bd[i];
    if (a->ndim >= 2) o.d[o.ndim++] = g->m;
    if (b->ndim >= 2) o.d[o.ndim++] = g->n;
    g->out = o;
    return true;
}

/* Matrix offsets (in matrices) of a and b for output batch matrix e. */
static void mm_batch_offsets(const mm_geom *g, int64_t e, int64_t *oa, int64_t *ob) {
    *oa = *ob = 0;
    for (int i = g->nb - 1; i >= 0; i--) {
        int64_t q = e % g->bd[i];
        e /= g->bd[i];
        *oa += q * g->sa[i];
        *ob += q * g->sb[i];
    }
}

static prt_status matmul_infer(prt_infer_ctx *ic) {
    mm_geom g;
    char why[512];
    if (!mm_geom_of(&ic->in[IN_A], &ic->in[IN_B], &g, why, sizeof why)) return prt_infer_error(ic, "%s", why);
    ic->out[0] = g.out;
    return PRT_OK;
}

static int64_t matmul_flops(const prt_infer_ctx *ic) {
    mm_geom g;
    char why[512];
    if (!mm_geom_of(&ic->in[IN_A], &ic->in[IN_B], &g, why, sizeof why)) return 0;
    return prt_flop_mul(2, prt_flop_mul(g.batch, prt_flop_mul(g.m, prt_flop_mul(g.n, g.k))));
}

static prt_status matmul_grad(prt_grad_ctx *gc) {
    if (gc->dy[0] == -1) return PRT_OK;
    if (gc->dy[0] == PRT_GRAD_ONE) return prt_grad_not_loss(gc);
    const prt_node *nd = &gc->g->nodes[gc->node];
    int in[3] = {gc->dy[0], nd->in[IN_A], nd->in[IN_B]};
    bool wa = prt_grad_wants(gc, IN_A), wb = prt_grad_wants(gc, IN_B);
    if (wa) PRT_CHECK(prt_grad_emit(gc, "matmul_bwd_a", in, 3, NULL, &gc->dx[IN_A]));
    if (wb) PRT_CHECK(prt_grad_emit(gc, "matmul_bwd_b", in, 3, NULL, &gc->dx[IN_B]));
    return PRT_OK;
}

static prt_status mm_setup(const prt_kernel_call *c, const char *op, const prt_tensor *a, const prt_tensor *b,
                           mm_geom *g) {
    PRT_CHECK(prt_kernel_check_f32(c, op));
    char why[512];
    if (!mm_geom_of(&a->shape, &b->shape, g, why, sizeof why))
        return prt_error(c->ctx, PRT_ERR_INTERNAL, "%s kernel: %s", op, why);
    return PRT_OK;
}

/* Plain loops, each dot product in double. */
static prt_status matmul_ref(const prt_kernel_call *c) {
    mm_geom g;
    PRT_CHECK(mm_setup(c, "matmul", c->in[IN_A], c->in[IN_B], &g));
    const float *a = PRT_F32P(c->in[IN_A]), *b = PRT_F32P(c->in[IN_B]);
    float *y = PRT_F32P(c->out[0]);
    for (int64_t e = 0; e < g.batch; e++) {
        int64_t oa, ob;
        mm_batch_offsets(&g, e, &oa, &ob);
        const float *am = a + oa * g.m * g.k, *bm = b + ob * g.k * g.n;
        float *ym = y + e * g.m * g.n;
        for (int64_t i = 0; i < g.m; i++)
            for (int64_t j = 0; j < g.n; j++) {
                double s = 0;
                for (int64_t t = 0; t < g.k; t++) s += (double)am[i * g.k + t] * bm[t * g.n + j];
                ym[i * g.n + j] = (float)s;
            }
    }
    return PRT_OK;
}

static prt_status sgemm(const prt_kernel_call *c, const char *op, char ta, char tb, int64_t m, int64_t n, int64_t k,
                        const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *y, int64_t ldc) {
    if (m == 0 || n == 0) return PRT_OK;
    if (k == 0) {
        if (beta == 0.0f)
            for (int64_t i = 0; i < m; i++) memset(y + i * ldc, 0, (size_t)n * sizeof(float));
        return PRT_OK;
    }
    return prt_dnnl_check(c->ctx, dnnl_sgemm(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, beta, y, ldc), op);
}

static prt_status matmul_fast(const prt_kernel_call *c) {
    mm_geom g;
    PRT_CHECK(mm_setup(c, "matmul", c->in[IN_A], c->in[IN_B], &g));
    const float *a = PRT_F32P(c->in[IN_A]), *b = PRT_F32P(c->in[IN_B]);
    float *y = PRT_F32P(c->out[0]);
    if (g.b_mats == 1 && g.a_mats == g.batch) /* a's matrices stacked are one tall matrix */
        return sgemm(c, "matmul", 'N', 'N', g.batch * g.m, g.n, g.k, a, g.k, b, g.n, 0.0f, y, g.n);
    for (int64_t e = 0; e < g.batch; e++) {
        int64_t oa, ob;
        mm_batch_offsets(&g, e, &oa, &ob);
        PRT_CHECK(sgemm(c, "matmul", 'N', 'N', g.m, g.n, g.k, a + oa * g.m * g.k, g.k, b + ob * g.k * g.n, g.n, 0.0f,
                        y + e * g.m * g.n, g.n));
    }
    return PRT_OK;
}

const prt_op_schema prt_op_matmul = {
    .name = "matmul",
    .doc = "matrix product with numpy's rules: 1-D operands promoted, batch dims broadcast",
    .min_in = 2,
    .max_in = 2,
    .n_out = 1,
    .infer = matmul_infer,
    .flops = matmul_flops,
    .inplace_in = -1,
    .ref = {.run = matmul_ref},
    .fast = {.run = matmul_fast},
    .grad = matmul_grad,
};

/* ---- matmul_bwd_a, matmul_bwd_b (dy, a, b) --------------------------------- */

static prt_status mm_bwd_infer(prt_infer_ctx *ic, int which) {
    mm_geom g;
    char why[512];
    if (!mm_geom_of(&ic->in[BW_A], &ic->in[BW_B], &g, why, sizeof why)) return prt_infer_error(ic, "%s", why);
    if (!prt_shape_eq(&ic->in[BW_DY], &g.out)) {
        char a[160], b[160];
        return prt_infer_error(ic, "gradient dy has shape %s but the product has %s",
                               prt_shape_str(&ic->in[BW_DY], a, sizeof a), prt_shape_str(&g.out, b, sizeof b));
    }
    ic->out[0] = ic->in[which];
    return PRT_OK;
}
static prt_status mm_bwd_a_infer(prt_infer_ctx *ic) { return mm_bwd_infer(ic, BW_A); }
static prt_status mm_bwd_b_infer(prt_infer_ctx *ic) { return mm_bwd_infer(ic, BW_B); }

static int64_t mm_bwd_flops(const prt_infer_ctx *ic) {
    mm_geom g;
    char why[512];
    if (!mm_geom_of(&ic->in[BW_A], &ic->in[BW_B], &g, why, sizeof why)) return 0;
    return prt_flop_mul(2, prt_flop_mul(g.batch, prt_flop_mul(g.m, prt_flop_mul(g.n, g.k))));
}

/* da[i, t] = sum_j dy[i, j] b[t, j]; db[t, j] = sum_i a[i, t] dy[i, j]; each
 * summed over the output matrices that used the operand's matrix. */
static prt_status mm_bwd_ref(const prt_kernel_call *c, int which) {
    mm_geom g;
    PRT_CHECK(mm_setup(c, which == BW_A ? "matmul_bwd_a" : "matmul_bwd_b", c->in[BW_A], c->in[BW_B], &g));
    const float *dy = PRT_F32P(c->in[BW_DY]);
    const float *a = which == BW_B ? PRT_F32P(c->in[BW_A]) : NULL, *b = which == BW_A ? PRT_F32P(c->in[BW_B]) : NULL;
    float *d = PRT_F32P(c->out[0]);
    memset(d, 0, (size_t)prt_shape_count(&c->out[0]->shape) * sizeof(float));
    for (int64_t e = 0; e < g.batch; e++) {
        int64_t oa, ob;
        mm_batch_offsets(&g, e, &oa, &ob);
        const float *dym = dy + e * g.m * g.n;
        if (which == BW_A) {
            const float *bm = b + ob * g.k * g.n;
            float *da = d + oa * g.m * g.k;
            for (int64_t i = 0; i < g.m; i++)
                for (int64_t t = 0; t < g.k; t++) {
                    double s = 0;
                    for (int64_t j = 0; j < g.n; j++) s += (double)dym[i * g.n + j] * bm[t * g.n + j];
                    da[i * g.k + t] += (float)s;
                }
        } else {
            const float *am = a + oa * g.m * g.k;
            float *db = d + ob * g.k * g.n;
            for (int64_t t = 0; t < g.k; t++)
                for (int64_t j = 0; j < g.n; j++) {
                    double s = 0;
                    for (int64_t i = 0; i < g.m; i++) s += (double)am[i * g.k + t] * dym[i * g.n + j];
                    db[t * g.n + j] += (float)s;
                }
        }
    }
    return PRT_OK;
}

static prt_status mm_bwd_fast(const prt_kernel_call *c, int which) {
    const char *op = which == BW_A ? "matmul_bwd_a" : "matmul_bwd_b";
    mm_geom g;
    PRT_CHECK(mm_setup(c, op, c->in[BW_A], c->in[BW_B], &g));
    const float *dy = PRT_F32P(c->in[BW_DY]);
    const float *a = which == BW_B ? PRT_F32P(c->in[BW_A]) : NULL, *b = which == BW_A ? PRT_F32P(c->in[BW_B]) : NULL;
    float *d = PRT_F32P(c->out[0]);
    if (g.b_mats == 1 && g.a_mats == g.batch) {
        /* one b: a and dy are tall matrices [batch m, k] and [batch m, n] */
        if (which == BW_A) return sgemm(c, op, 'N', 'T', g.batch * g.m, g.k, g.n, dy, g.n, b, g.n, 0.0f, d, g.k);
        return sgemm(c, op, 'T', 'N', g.k, g.n, g.batch * g.m, a, g.k, dy, g.n, 0.0f, d, g.n);
    }
    /* the first contribution to each operand matrix overwrites, later ones add */
    memset(d, 0, (size_t)prt_shape_count(&c->out[0]->shape) * sizeof(float));
    for (int64_t e = 0; e < g.batch; e++) {
        int64_t oa, ob;
        mm_batch_offsets(&g, e, &oa, &ob);
        const float *dym = dy + e * g.m * g.n;
        if (which == BW_A)
            PRT_CHECK(sgemm(c, op, 'N', 'T', g.m, g.k, g.n, dym, g.n, b + ob * g.k * g.n, g.n, 1.0f,
                            d + oa * g.m * g.k, g.k));
        else
            PRT_CHECK(sgemm(c, op, 'T', 'N', g.k, g.n, g.m, a + oa * g.m * g.k, g.k, dym, g.n, 1.0f,
                            d + ob * g.k * g.n, g.n));
    }
    return PRT_OK;
}

static prt_status mm_bwd_a_ref(const prt_kernel_call *c) { return mm_bwd_ref(c, BW_A); }
static prt_status mm_bwd_b_ref(const prt_kernel_call *c) { return mm_bwd_ref(c, BW_B); }
static prt_status mm_bwd_a_fast(const prt_kernel_call *c) { return mm_bwd_fast(c, BW_A); }
static prt_status mm_bwd_b_fast(const prt_kernel_call *c) { return mm_bwd_fast(c, BW_B); }

const prt_op_schema prt_op_matmul_bwd_a = {
    .name = "matmul_bwd_a",
    .doc = "gradient of matmul for a: dy b^T, summed over a's broadcast batch dims",
    .min_in = 3,
    .max_in = 3,
    .n_out = 1,
    .infer = mm_bwd_a_infer,
    .flops = mm_bwd_flops,
    .inplace_in = -1,
    .ref = {.run = mm_bwd_a_ref},
    .fast = {.run = mm_bwd_a_fast},
    .grad = NULL,
    .grad_note = "backward-only op",
    .shape_only = 1u << BW_A,
};

const prt_op_schema prt_op_matmul_bwd_b = {
    .name = "matmul_bwd_b",
    .doc = "gradient of matmul for b: a^T dy, summed over b's broadcast batch dims",
    .min_in = 3,
    .max_in = 3,
    .n_out = 1,
    .infer = mm_bwd_b_infer,
    .flops = mm_bwd_flops,
    .inplace_in = -1,
    .ref = {.run = mm_bwd_b_ref},
    .fast = {.run = mm_bwd_b_fast},
    .grad = NULL,
    .grad_note = "backward-only op",
    .shape_only = 1u << BW_B,
};

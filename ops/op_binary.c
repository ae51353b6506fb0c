/* mul, sub, div: elementwise binary ops with ONNX (numpy) multidirectional
 * broadcasting, and reduce_to, the backward op that sums a broadcast gradient
 * back to an input's shape.
 *
 * Broadcasting: shapes are aligned on their last dimension; each pair of dims
 * must be equal or one of them 1, and the output takes the larger. Shapes are
 * over the whole batched tensor, as in an ONNX model. The kernels see every
 * operand through strides in the output's index space (0 along a broadcast
 * dim), with adjacent dims merged where all operands allow it, so the inner
 * loop runs over the longest contiguous stretch.
 *
 * In place: y may share a's memory, which the planner only allows when they
 * have the same size, i.e. a is not broadcast; every element is read before
 * it is written at the same index. */
#include "ops/ops_util.h"
#include "ops/cuda/cuda_ops.h"

#include <string.h>

enum { BIN_MUL, BIN_SUB, BIN_DIV };

/* ---- broadcast geometry --------------------------------------------------- */

/* numpy's rule; false (out untouched) when a pair of dims is incompatible,
 * with the output-aligned dim index in *bad */
static bool bcast_shape(const prt_shape *a, const prt_shape *b, prt_shape *out, int *bad) {
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    prt_shape o = {.ndim = nd};
    for (int i = 0; i < nd; i++) {
        int ia = i - (nd - a->ndim), ib = i - (nd - b->ndim);
        int64_t da = ia >= 0 ? a->d[ia] : 1, db = ib >= 0 ? b->d[ib] : 1;
        if (da != db && da != 1 && db != 1) {
            *bad = i;
            return false;
        }
        o.d[i] = da == 1 ? db : da;
    }
    *out = o;
    return true;
}

/* Operand strides in the index space of `full` (nd dims): element strides of
 * the contiguous operand, 0 where the operand has a 1 (or no dim) there. */
static void bcast_strides(const prt_shape *full, const prt_shape *in, int64_t *st) {
    int nd = full->ndim;
    int64_t s = 1;
    for (int i = nd - 1; i >= 0; i--) {
        int k = i - (nd - in->ndim);
        int64_t d = k >= 0 ? in->d[k] : 1;
        st[i] = (d == 1) ? 0 : s;
        s *= d;
    }
}

/* Up to three operands over one index space, with mergeable dims merged and
 * size-1 dims dropped; at least one dim (of size 1 for a scalar). */
typedef struct bc_iter {
    int nd, n_ops;
    int64_t d[PRT_MAX_DIMS];
    int64_t st[3][PRT_MAX_DIMS];
} bc_iter;

static void bc_init(bc_iter *it, const prt_shape *full, int n_ops, const prt_shape *const *ops) {
    int64_t raw[3][PRT_MAX_DIMS];
    for (int k = 0; k < n_ops; k++) bcast_strides(full, ops[k], raw[k]);
    it->n_ops = n_ops;
    it->nd = 0;
    for (int i = 0; i < full->ndim; i++) {
        if (full->d[i] == 1) continue;
        int j = it->nd;
        bool merge = j > 0;
        for (int k = 0; merge && k < n_ops; k++)
            merge = it->st[k][j - 1] == raw[k][i] * full->d[i];
        if (merge) {
            it->d[j - 1] *= full->d[i];
            for (int k = 0; k < n_ops; k++) it->st[k][j - 1] = raw[k][i];
            continue;
        }
        it->d[j] = full->d[i];
        for (int k = 0; k < n_ops; k++) it->st[k][j] = raw[k][i];
        it->nd++;
    }
    if (it->nd == 0) {
        it->nd = 1;
        it->d[0] = 1;
        for (int k = 0; k < n_ops; k++) it->st[k][0] = 0;
    }
}

/* Offsets of row r (every dim but the last) of the iteration. */
static void bc_row_offsets(const bc_iter *it, int64_t r, int64_t *off) {
    for (int k = 0; k < it->n_ops; k++) off[k] = 0;
    for (int i = it->nd - 2; i >= 0; i--) {
        int64_t q = r % it->d[i];
        r /= it->d[i];
        for (int k = 0; k < it->n_ops; k++) off[k] += q * it->st[k][i];
    }
}

static int64_t bc_rows(const bc_iter *it) {
    int64_t n = 1;
    for (int i = 0; i < it->nd - 1; i++) n *= it->d[i];
    return n;
}

/* ---- mul, sub, div -------------------------------------------------------- */

static const char *const bin_name[] = {"mul", "sub", "div"};

static prt_status bin_infer(prt_infer_ctx *ic) {
    int bad = 0;
    if (!bcast_shape(&ic->in[0], &ic->in[1], &ic->out[0], &bad)) {
        char a[160], b[160];
        prt_shape_str(&ic->in[0], a, sizeof a);
        prt_shape_str(&ic->in[1], b, sizeof b);
        int nd = ic->in[0].ndim > ic->in[1].ndim ? ic->in[0].ndim : ic->in[1].ndim;
        return prt_infer_error(ic, "cannot broadcast %s with %s: dimension %d (counted from the last) is %lld against %lld",
                               a, b, nd - bad,
                               (long long)ic->in[0].d[bad - (nd - ic->in[0].ndim)],
                               (long long)ic->in[1].d[bad - (nd - ic->in[1].ndim)]);
    }
    return PRT_OK;
}

static int64_t bin_flops(const prt_infer_ctx *ic) { return prt_flops_per_elem(ic, 1); }

static inline float bin_apply(int op, float a, float b) {
    return op == BIN_MUL ? a * b : op == BIN_SUB ? a - b : a / b;
}

/* One element at a time, the index decomposed from scratch: slow and plain. */
static prt_status bin_ref(const prt_kernel_call *c, int op) {
    PRT_CHECK(prt_kernel_check_f32(c, bin_name[op]));
    const prt_shape *ys = &c->out[0]->shape;
    int64_t sa[PRT_MAX_DIMS], sb[PRT_MAX_DIMS];
    bcast_strides(ys, &c->in[0]->shape, sa);
    bcast_strides(ys, &c->in[1]->shape, sb);
    const float *a = PRT_F32P(c->in[0]), *b = PRT_F32P(c->in[1]);
    float *y = PRT_F32P(c->out[0]);
    int64_t n = prt_shape_count(ys);
    for (int64_t e = 0; e < n; e++) {
        int64_t r = e, oa = 0, ob = 0;
        for (int i = ys->ndim - 1; i >= 0; i--) {
            int64_t q = r % ys->d[i];
            r /= ys->d[i];
            oa += q * sa[i];
            ob += q * sb[i];
        }
        y[e] = bin_apply(op, a[oa], b[ob]);
    }
    return PRT_OK;
}

typedef struct bin_args {
    bc_iter it;
    const float *a, *b;
    float *y;
    int op;
} bin_args;

#define BIN_LOOP(EXPR)                                                                     \
    do {                                                                                   \
        if (sa == 1 && sb == 1) {                                                          \
            _Pragma("omp simd") for (int64_t i = 0; i < len; i++) {                        \
                float u = pa[i], v = pb[i];                                                \
                py[i] = (EXPR);                                                            \
            }                                                                              \
        } else if (sa == 1 && sb == 0) {                                                   \
            float v = pb[0];                                                               \
            _Pragma("omp simd") for (int64_t i = 0; i < len; i++) {                        \
                float u = pa[i];                                                           \
                py[i] = (EXPR);                                                            \
            }                                                                              \
        } else if (sa == 0 && sb == 1) {                                                   \
            float u = pa[0];                                                               \
            _Pragma("omp simd") for (int64_t i = 0; i < len; i++) {                        \
                float v = pb[i];                                                           \
                py[i] = (EXPR);                                                            \
            }                                                                              \
        } else {                                                                           \
            for (int64_t i = 0; i < len; i++) {                                            \
                float u = pa[i * sa], v = pb[i * sb];                                      \
                py[i] = (EXPR);                                                            \
            }                                                                              \
        }                                                                                  \
    } while (0)

/* Rows [lo, hi) of the merged iteration: the inner dim in one tight loop. */
static void bin_rows(void *arg, int64_t lo, int64_t hi) {
    const bin_args *x = arg;
    const bc_iter *it = &x->it;
    int last = it->nd - 1;
    int64_t len = it->d[last], sa = it->st[1][last], sb = it->st[2][last];
    for (int64_t r = lo; r < hi; r++) {
        int64_t off[3];
        bc_row_offsets(it, r, off);
        float *py = x->y + off[0];
        const float *pa = x->a + off[1], *pb = x->b + off[2];
        switch (x->op) {
        case BIN_MUL: BIN_LOOP(u * v); break;
        case BIN_SUB: BIN_LOOP(u - v); break;
        default: BIN_LOOP(u / v); break;
        }
    }
}

static prt_status bin_fast(const prt_kernel_call *c, int op) {
    PRT_CHECK(prt_kernel_check_f32(c, bin_name[op]));
    bin_args x = {.a = PRT_F32P(c->in[0]), .b = PRT_F32P(c->in[1]), .y = PRT_F32P(c->out[0]), .op = op};
    const prt_shape *ops[3] = {&c->out[0]->shape, &c->in[0]->shape, &c->in[1]->shape};
    bc_init(&x.it, &c->out[0]->shape, 3, ops);
    int64_t len = x.it.d[x.it.nd - 1];
    prt_parallel_range(len ? bc_rows(&x.it) : 0, PRT_PAR_MIN_ELEMS / (len ? len : 1) + 1, bin_rows, &x);
    return PRT_OK;
}

static prt_status mul_ref(const prt_kernel_call *c) { return bin_ref(c, BIN_MUL); }
static prt_status sub_ref(const prt_kernel_call *c) { return bin_ref(c, BIN_SUB); }
static prt_status div_ref(const prt_kernel_call *c) { return bin_ref(c, BIN_DIV); }
static prt_status mul_fast(const prt_kernel_call *c) { return bin_fast(c, BIN_MUL); }
static prt_status sub_fast(const prt_kernel_call *c) { return bin_fast(c, BIN_SUB); }
static prt_status div_fast(const prt_kernel_call *c) { return bin_fast(c, BIN_DIV); }

/* ---- gradients ------------------------------------------------------------ */

/* g summed down to the shape of value `like`. Always a node, even where the
 * shapes agree now: a parameter may be [1, C] against a batch that is 1 at
 * graph-building time and larger when compiled. With equal shapes the node is
 * a copy the planner can run in place. */
static prt_status to_shape_of(prt_grad_ctx *gc, int g, int like, int *out) {
    int in[2] = {g, like};
    return prt_grad_emit(gc, "reduce_to", in, 2, NULL, out);
}

static prt_status negate(prt_grad_ctx *gc, int v, int *out) {
    const prt_op_schema *s = prt_op_find(gc->g->ctx->ops, "scale", NULL);
    if (!s) return prt_error(gc->g->ctx, PRT_ERR_INTERNAL, "gradient builder: op 'scale' is not registered");
    prt_attr a[1];
    prt_attrs_default(s, a);
    a[0].f = -1.0;
    a[0].set = true;
    return prt_grad_emit(gc, "scale", &v, 1, a, out);
}

static prt_status bin_grad(prt_grad_ctx *gc, int op) {
    if (gc->dy[0] == -1) return PRT_OK;
    if (gc->dy[0] == PRT_GRAD_ONE) return prt_grad_not_loss(gc);
    bool wa = prt_grad_wants(gc, 0), wb = prt_grad_wants(gc, 1);
    if (!wa && !wb) return PRT_OK;
    /* node pointers move when nodes are added: copy the ids first */
    const prt_node *nd = &gc->g->nodes[gc->node];
    int a = nd->in[0], b = nd->in[1], y = nd->out[0], dy = gc->dy[0], t[2];
    switch (op) {
    case BIN_MUL: /* da = dy * b, db = dy * a */
        if (wa) {
            int in[2] = {dy, b};
            PRT_CHECK(prt_grad_emit(gc, "mul", in, 2, NULL, &t[0]));
            PRT_CHECK(to_shape_of(gc, t[0], a, &gc->dx[0]));
        }
        if (wb) {
            int in[2] = {dy, a};
            PRT_CHECK(prt_grad_emit(gc, "mul", in, 2, NULL, &t[1]));
            PRT_CHECK(to_shape_of(gc, t[1], b, &gc->dx[1]));
        }
        return PRT_OK;
    case BIN_SUB: /* da = dy, db = -dy */
        if (wa) PRT_CHECK(to_shape_of(gc, dy, a, &gc->dx[0]));
        if (wb) {
            PRT_CHECK(to_shape_of(gc, dy, b, &t[1]));
            PRT_CHECK(negate(gc, t[1], &gc->dx[1]));
        }
        return PRT_OK;
    default: { /* q = dy / b; da = q, db = -q * y (= -dy a / b^2) */
        int in[2] = {dy, b};
        PRT_CHECK(prt_grad_emit(gc, "div", in, 2, NULL, &t[0]));
        if (wa) PRT_CHECK(to_shape_of(gc, t[0], a, &gc->dx[0]));
        if (wb) {
            int in2[2] = {t[0], y}, s;
            PRT_CHECK(prt_grad_emit(gc, "mul", in2, 2, NULL, &t[1]));
            PRT_CHECK(to_shape_of(gc, t[1], b, &s));
            PRT_CHECK(negate(gc, s, &gc->dx[1]));
        }
        return PRT_OK;
    }
    }
}

static prt_status mul_grad(prt_grad_ctx *gc) { return bin_grad(gc, BIN_MUL); }
static prt_status sub_grad(prt_grad_ctx *gc) { return bin_grad(gc, BIN_SUB); }
static prt_status div_grad(prt_grad_ctx *gc) { return bin_grad(gc, BIN_DIV); }

#define BIN_SCHEMA(sym, dc)                                                                \
    const prt_op_schema prt_op_##sym = {                                                   \
        .name = #sym,                                                                      \
        .doc = dc,                                                                         \
        .min_in = 2,                                                                       \
        .max_in = 2,                                                                       \
        .n_out = 1,                                                                        \
        .infer = bin_infer,                                                                \
        .flops = bin_flops,                                                                \
        .inplace_in = 0,                                                                   \
        .ref = {.run = sym##_ref},                                                         \
        .fast = {.run = sym##_fast},                                                       \
        .grad = sym##_grad,                                                                \
        .cheap = true,                                                                     \
        .cuda = PRT_CUDA_KERNEL(.run = prt_cuda_##sym),                                    \
    }

BIN_SCHEMA(mul, "elementwise product a * b with numpy broadcasting");
BIN_SCHEMA(sub, "elementwise difference a - b with numpy broadcasting");
BIN_SCHEMA(div, "elementwise quotient a / b with numpy broadcasting");

/* ---- reduce_to ------------------------------------------------------------ */

enum { RT_X, RT_LIKE };

static prt_status reduce_to_infer(prt_infer_ctx *ic) {
    const prt_shape *x = &ic->in[RT_X], *l = &ic->in[RT_LIKE];
    bool ok = l->ndim <= x->ndim;
    for (int i = 0; ok && i < l->ndim; i++) {
        int64_t dl = l->d[i], dx = x->d[i + x->ndim - l->ndim];
        ok = dl == dx || dl == 1;
    }
    if (!ok) {
        char a[160], b[160];
        prt_shape_str(x, a, sizeof a);
        prt_shape_str(l, b, sizeof b);
        return prt_infer_error(ic, "cannot sum %s down to %s: %s does not broadcast to %s", a, b, b, a);
    }
    ic->out[0] = *l;
    return PRT_OK;
}

/* one addition per element of x */
static int64_t reduce_to_flops(const prt_infer_ctx *ic) { return prt_ops_numel(&ic->in[RT_X]); }

/* Output elements [lo, hi): each the sum, in double and in x's order, of the
 * elements of x it gathers. The same code serves both kernels. */
typedef struct rt_args {
    prt_reduce_geom g;
    const float *x;
    float *y;
} rt_args;

static void rt_range(void *arg, int64_t lo, int64_t hi) {
    const rt_args *a = arg;
    for (int64_t o = lo; o < hi; o++) a->y[o] = (float)prt_reduce_geom_sum(&a->g, a->x, o);
}

static prt_status rt_setup(const prt_kernel_call *c, rt_args *a) {
    PRT_CHECK(prt_kernel_check_f32(c, "reduce_to"));
    prt_reduce_geom_init(&a->g, &c->in[RT_X]->shape, &c->out[0]->shape);
    a->x = PRT_F32P(c->in[RT_X]);
    a->y = PRT_F32P(c->out[0]);
    return PRT_OK;
}

static prt_status reduce_to_ref(const prt_kernel_call *c) {
    rt_args a;
    PRT_CHECK(rt_setup(c, &a));
    /* in place (equal shapes): each element is read, then written back */
    rt_range(&a, 0, a.g.n_out);
    return PRT_OK;
}

static prt_status reduce_to_fast(const prt_kernel_call *c) {
    rt_args a;
    PRT_CHECK(rt_setup(c, &a));
    if (a.g.nr == 0 && a.x == a.y) return PRT_OK; /* in place, nothing summed */
    prt_parallel_range(a.g.n_out, PRT_PAR_MIN_ELEMS / (a.g.n_sum ? a.g.n_sum : 1) + 1, rt_range, &a);
    return PRT_OK;
}

const prt_op_schema prt_op_reduce_to = {
    .name = "reduce_to",
    .doc = "x summed over the dims where like (broadcast to x) has size 1: the gradient of a broadcast input",
    .min_in = 2,
    .max_in = 2,
    .n_out = 1,
    .infer = reduce_to_infer,
    .flops = reduce_to_flops,
    .inplace_in = RT_X,
    .ref = {.run = reduce_to_ref},
    .fast = {.run = reduce_to_fast},
    .grad = NULL,
    .grad_note = "backward-only op",
    .shape_only = 1u << RT_LIKE,
    .cuda = PRT_CUDA_KERNEL(.run = prt_cuda_reduce_to),
};

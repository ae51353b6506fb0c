/* batchnorm over the channel dimension (dim 1) of an [N, C, ...] input.
 * Outside training: y = (x - mean) / sqrt(var + eps) * scale + shift with the
 * running statistics. In training: normalises with the batch's mean and biased
 * variance, and updates the running statistics in place with momentum m:
 *     mean = (1-m) mean + m batch_mean
 *     var  = (1-m) var  + m batch_var * n/(n-1)   (unbiased, as PyTorch does)
 * where n = N * (spatial size) values per channel.
 * Fast path: oneDNN's batch normalization on the plain layout, viewed as
 * [N, C, S, 1] with S the product of the spatial dims.
 *
 * Synchronised batch norm (issue 6): when the call has sync_bn and a
 * communicator of more than one rank, training mode normalises with the
 * statistics of the combined batch of all ranks (prt_bn_sync_stats below), so
 * N ranks of batch b compute what one rank of batch N*b computes, and the
 * running statistics count N*b*S values. oneDNN takes no external statistics in
 * training mode, so both kernels then run our own code (OpenMP in the fast one). */
#include "ops/bwd_util.h"
#include "runtime/comm_api.h"
#include "ops/cuda/cudnn_util.h"

#include <math.h>

enum { A_EPS, A_MOMENTUM };
enum { P_SCALE, P_SHIFT, P_MEAN, P_VAR };

/* shared with batchnorm_bwd (ops/bwd_util.h) */
const prt_attr_def prt_batchnorm_attrs[] = {
    PRT_ATTR_OPT_FLOAT("eps", 1e-5, "added to the variance"),
    PRT_ATTR_OPT_FLOAT("momentum", 0.1, "weight of the batch statistics in the running update"),
};

const prt_param_def prt_batchnorm_params[] = {
    {.name = "scale", .trainable = true, .init = PRT_INIT_ONES},
    {.name = "shift", .trainable = true, .init = PRT_INIT_ZEROS},
    {.name = "mean", .trainable = false, .init = PRT_INIT_ZEROS},
    {.name = "var", .trainable = false, .init = PRT_INIT_ONES},
};

prt_status prt_bn_infer(prt_infer_ctx *ic) {
    const prt_shape *in = &ic->in[0];
    if (in->ndim < 2) {
        char b[160];
        prt_shape_str(in, b, sizeof b);
        return prt_infer_error(ic, "expects an input of rank 2 or more ([N, C, ...]), got %s", b);
    }
    double eps = prt_attr_float(&ic->attrs[A_EPS]), m = prt_attr_float(&ic->attrs[A_MOMENTUM]);
    if (!(eps > 0)) return prt_infer_error(ic, "eps must be > 0, got %g", eps);
    if (!(m >= 0 && m <= 1)) return prt_infer_error(ic, "momentum must be in [0, 1], got %g", m);
    ic->out[0] = *in;
    for (int p = 0; p < 4; p++) {
        ic->params[p] = prt_shape_make(1, &in->d[1]);
        ic->param_present[p] = true;
    }
    return PRT_OK;
}

/* a folded multiply-add per element */
static int64_t bn_flops(const prt_infer_ctx *ic) { return prt_flops_per_elem(ic, 2); }

/* N, C and the spatial size S of the input */
static void bn_dims(const prt_shape *s, int64_t *n, int64_t *c, int64_t *sp) {
    *n = s->d[0];
    *c = s->d[1];
    *sp = 1;
    for (int i = 2; i < s->ndim; i++) *sp *= s->d[i];
}

/* ---- synchronised statistics (shared with ops/op_batchnorm_bwd.c) ---------- */

bool prt_bn_syncs(const prt_kernel_call *c) { return c->sync_bn && c->comm && prt_comm_size(c->comm) > 1; }

/* Sums over one channel's values of this rank, in double like the one-rank
 * code: sum (x - ctr) and sum (x - ctr)^2. */
static void bn_channel_sums(const float *x, int64_t n, int64_t ch, int64_t sp, int64_t k, double ctr, double *s1,
                            double *s2) {
    double a = 0, b = 0;
    for (int64_t i = 0; i < n; i++) {
        const float *row = x + (i * ch + k) * sp;
#pragma omp simd reduction(+ : a, b)
        for (int64_t t = 0; t < sp; t++) {
            double d = (double)row[t] - ctr;
            a += d;
            b += d * d;
        }
    }
    *s1 = a;
    *s2 = b;
}

static prt_status bn_allreduce(const prt_kernel_call *c, float *buf, size_t n) {
    prt_comm_handle h;
    PRT_CHECK(prt_comm_allreduce_start(c->comm, buf, n, PRT_F32, PRT_COMM_SUM, &h));
    return prt_comm_wait(c->comm, h);
}

/* Two allreduces, as the one-rank code makes two passes (the mean, then the
 * centred sum of squares); each rank sums in double like it, but the transport
 * sums f32. Rounding a rank's share of the mean, sum_r(x) / M, to f32 costs
 * 2^-24 of the mean itself: about an ulp of the combined mean, which moves y by
 * ~ulp(mean) / std, 1e-5 of the output when the mean is 170 spreads. So pass 1
 * gives only a first mean mu1; pass 2 sums, around mu1,
 *     D = sum (x - mu1) / M   and   Q = sum (x - mu1)^2 / M,
 * and mean = mu1 + D, var = Q - D^2 (exact identities). A rank's share of D is
 * the deviation of its own mean from mu1, of the order of std / sqrt(its
 * count), so its f32 rounding is 2^-24 of that, not of the mean: the mean comes
 * out far more accurate than an f32 ulp when it is large against its spread,
 * and the variance within a few f32 ulps (it is centred, no cancellation).
 * Measured against the one-rank double sums (tests/test_sync_bn.c, 2 and 4
 * ranks): mean within 3e-8 of |mean| + std, variance within 1e-7. Every rank
 * must call this with the same count (the data loader shards evenly), so
 * M = n * S * ranks. */
prt_status prt_bn_sync_stats(const prt_kernel_call *c, const float *x, const prt_shape *xs, bool par, double *mean,
                             double *var) {
    int64_t n, ch, sp;
    bn_dims(xs, &n, &ch, &sp);
    double m = (double)(n * sp) * (double)prt_comm_size(c->comm);
    if (ch == 0) return PRT_OK; /* on every rank alike: shapes agree */
    float *buf = prt_calloc(c->ctx, 3 * (size_t)ch, sizeof(float));
    if (!buf) return prt_error(c->ctx, PRT_ERR_NOMEM, "batchnorm: synchronised statistics of %lld channels", (long long)ch);
    float *b1 = buf, *b2 = buf + ch;
    bool threads = par && ch > 1 && n * sp * ch >= 2 * PRT_PAR_MIN_ELEMS;
    prt_status st = PRT_OK;
#pragma omp parallel for schedule(static) if (threads)
    for (int64_t k = 0; k < ch; k++) {
        double s1, s2;
        bn_channel_sums(x, n, ch, sp, k, 0.0, &s1, &s2);
        b1[k] = (float)(s1 / m);
    }
    PRT_CHECK_GOTO(bn_allreduce(c, b1, (size_t)ch), st, done);
#pragma omp parallel for schedule(static) if (threads)
    for (int64_t k = 0; k < ch; k++) {
        double s1, s2;
        bn_channel_sums(x, n, ch, sp, k, (double)b1[k], &s1, &s2);
        b2[k] = (float)(s1 / m);
        b2[ch + k] = (float)(s2 / m);
    }
    PRT_CHECK_GOTO(bn_allreduce(c, b2, 2 * (size_t)ch), st, done);
    for (int64_t k = 0; k < ch; k++) {
        double d = b2[k], v = (double)b2[ch + k] - d * d;
        mean[k] = (double)b1[k] + d;
        var[k] = v > 0 ? v : 0;
    }
done:
    prt_free(c->ctx, buf, 3 * (size_t)ch * sizeof(float));
    return st;
}

static prt_status bn_check(const prt_kernel_call *c) {
    PRT_CHECK(prt_kernel_check_f32(c, "batchnorm"));
    if (c->n_in != 5) return prt_error(c->ctx, PRT_ERR_INTERNAL, "batchnorm kernel: %d inputs, expected 5", c->n_in);
    if (c->training) {
        int64_t n, ch, sp;
        bn_dims(&c->in[0]->shape, &n, &ch, &sp);
        /* synchronised, the values of every rank count */
        if (n * sp * (prt_bn_syncs(c) ? prt_comm_size(c->comm) : 1) < 2)
            return prt_error(c->ctx, PRT_ERR_SHAPE,
                             "batchnorm: training needs more than one value per channel (batch %lld, spatial size %lld)",
                             (long long)n, (long long)sp);
    }
    return PRT_OK;
}

/* The running-statistics update shared by both paths; bmean/bvar are the
 * batch mean and biased variance. */
static void bn_update_running(const prt_kernel_call *c, const float *bmean, const float *bvar, int64_t count) {
    if (c->recompute) return; /* the forward call already counted this batch */
    float m = (float)prt_attr_float(&c->attrs[A_MOMENTUM]);
    float *rmean = PRT_F32P(c->in[1 + P_MEAN]), *rvar = PRT_F32P(c->in[1 + P_VAR]);
    float unbias = (float)((double)count / (double)(count - 1));
    for (int64_t k = 0; k < c->in[0]->shape.d[1]; k++) {
        rmean[k] = (1 - m) * rmean[k] + m * bmean[k];
        rvar[k] = (1 - m) * rvar[k] + m * bvar[k] * unbias;
    }
}

typedef struct bn_norm_args {
    const float *x, *a, *b, *mean; /* per channel */
    float *y;
    int64_t ch, sp;
    bool relu;                     /* batchnorm_relu: y = relu(...) */
} bn_norm_args;

/* The relu op's own expression (ops/op_relu.c), so that batchnorm_relu equals
 * batchnorm then relu bit for bit (-0 and NaN included). */
static inline float bn_relu1(float v) { return v < 0 ? 0.0f : v; }

/* bn_ref's formula, y = x * a + (shift - mean * a) */
static void bn_norm_rows_ref(void *arg, int64_t lo, int64_t hi) {
    const bn_norm_args *p = arg;
    for (int64_t r = lo; r < hi; r++) {
        float a = p->a[r % p->ch], b = p->b[r % p->ch];
        const float *x = p->x + r * p->sp;
        float *y = p->y + r * p->sp;
        if (p->relu)
            for (int64_t j = 0; j < p->sp; j++) y[j] = bn_relu1(x[j] * a + b);
        else
            for (int64_t j = 0; j < p->sp; j++) y[j] = x[j] * a + b;
    }
}

/* oneDNN's, y = (x - mean) * a + shift: the fast kernel's numerics without
 * sync, and free of the cancellation of x * a against mean * a when a channel's
 * mean is large against its spread */
static void bn_norm_rows_fast(void *arg, int64_t lo, int64_t hi) {
    const bn_norm_args *p = arg;
    for (int64_t r = lo; r < hi; r++) {
        int64_t k = r % p->ch;
        float a = p->a[k], b = p->b[k], mu = p->mean[k];
        const float *x = p->x + r * p->sp;
        float *y = p->y + r * p->sp;
        if (p->relu) {
#pragma omp simd
            for (int64_t j = 0; j < p->sp; j++) y[j] = bn_relu1((x[j] - mu) * a + b);
        } else {
#pragma omp simd
            for (int64_t j = 0; j < p->sp; j++) y[j] = (x[j] - mu) * a + b;
        }
    }
}

typedef struct bn_relu_args { float *y; } bn_relu_args;

static void bn_relu_range(void *arg, int64_t lo, int64_t hi) {
    float *y = ((const bn_relu_args *)arg)->y;
#pragma omp simd
    for (int64_t i = lo; i < hi; i++) y[i] = bn_relu1(y[i]);
}

/* Training with synchronised statistics, both kernels (par: the fast one's
 * threads). From the statistics on, each kernel's own arithmetic without sync. */
static prt_status bn_sync_train(const prt_kernel_call *c, bool par, bool relu) {
    int64_t n, ch, sp;
    bn_dims(&c->in[0]->shape, &n, &ch, &sp);
    const float *scale = PRT_F32P(c->in[1 + P_SCALE]), *shift = PRT_F32P(c->in[1 + P_SHIFT]);
    float eps = (float)prt_attr_float(&c->attrs[A_EPS]);
    /* doubles: mean, var; floats: batch mean, batch var, a, b */
    if (ch == 0) return PRT_OK;
    size_t bytes = (size_t)ch * (2 * sizeof(double) + 4 * sizeof(float));
    double *dm = prt_malloc(c->ctx, bytes);
    if (!dm) return prt_error(c->ctx, PRT_ERR_NOMEM, "batchnorm: statistics of %lld channels", (long long)ch);
    double *dv = dm + ch;
    float *bmean = (float *)(dv + ch), *bvar = bmean + ch, *fa = bvar + ch, *fb = fa + ch;
    prt_status st = prt_bn_sync_stats(c, PRT_F32P(c->in[0]), &c->in[0]->shape, par, dm, dv);
    if (st == PRT_OK) {
        for (int64_t k = 0; k < ch; k++) {
            bmean[k] = (float)dm[k];
            bvar[k] = (float)dv[k];
            fa[k] = scale[k] / sqrtf(bvar[k] + eps);
            fb[k] = par ? shift[k] : shift[k] - bmean[k] * fa[k];
        }
        bn_norm_args a = {PRT_F32P(c->in[0]), fa, fb, bmean, PRT_F32P(c->out[0]), ch, sp, relu};
        if (par) prt_parallel_range(n * ch, sp > 0 ? (PRT_PAR_MIN_ELEMS + sp - 1) / sp : 1, bn_norm_rows_fast, &a);
        else bn_norm_rows_ref(&a, 0, n * ch);
        bn_update_running(c, bmean, bvar, n * sp * prt_comm_size(c->comm));
    }
    prt_free(c->ctx, dm, bytes);
    return st;
}

prt_status prt_bn_fwd_ref(const prt_kernel_call *c, bool relu) {
    PRT_CHECK(bn_check(c));
    if (c->training && prt_bn_syncs(c)) return bn_sync_train(c, false, relu);
    int64_t n, ch, sp;
    bn_dims(&c->in[0]->shape, &n, &ch, &sp);
    const float *x = PRT_F32P(c->in[0]);
    const float *scale = PRT_F32P(c->in[1 + P_SCALE]), *shift = PRT_F32P(c->in[1 + P_SHIFT]);
    float *y = PRT_F32P(c->out[0]);
    float eps = (float)prt_attr_float(&c->attrs[A_EPS]);
    float *stats = NULL;
    const float *mean = PRT_F32P(c->in[1 + P_MEAN]), *var = PRT_F32P(c->in[1 + P_VAR]);
    if (c->training) {
        stats = prt_calloc(c->ctx, 2 * (size_t)ch, sizeof(float));
        if (!stats) return prt_error(c->ctx, PRT_ERR_NOMEM, "batchnorm: statistics of %lld channels", (long long)ch);
        float *bmean = stats, *bvar = stats + ch;
        for (int64_t k = 0; k < ch; k++) {
            double s = 0, ss = 0;
            for (int64_t i = 0; i < n; i++)
                for (int64_t j = 0; j < sp; j++) s += x[(i * ch + k) * sp + j];
            double mu = s / (double)(n * sp);
            for (int64_t i = 0; i < n; i++)
                for (int64_t j = 0; j < sp; j++) {
                    double d = x[(i * ch + k) * sp + j] - mu;
                    ss += d * d;
                }
            bmean[k] = (float)mu;
            bvar[k] = (float)(ss / (double)(n * sp));
        }
        mean = bmean;
        var = bvar;
    }
    for (int64_t i = 0; i < n; i++) {
        for (int64_t k = 0; k < ch; k++) {
            float a = scale[k] / sqrtf(var[k] + eps);
            float b = shift[k] - mean[k] * a;
            for (int64_t j = 0; j < sp; j++) {
                float v = x[(i * ch + k) * sp + j] * a + b;
                y[(i * ch + k) * sp + j] = relu ? bn_relu1(v) : v;
            }
        }
    }
    if (c->training) {
        bn_update_running(c, stats, stats + ch, n * sp);
        prt_free(c->ctx, stats, 2 * (size_t)ch * sizeof(float));
    }
    return PRT_OK;
}

/* ---- fast path: oneDNN ------------------------------------------------ */

typedef struct bn_state {
    prt_dnnl_base b;
    dnnl_primitive_t prim[2];  /* [0] inference, [1] training */
    dnnl_memory_t src, dst, scale, shift, mean, var, scratch[2];
    size_t stats_off;          /* batch mean and variance in the workspace */
} bn_state;

static dnnl_status_t bn_pd(const prt_shape *s, float eps, bool training, dnnl_engine_t eng, dnnl_primitive_desc_t *pd) {
    int64_t n, ch, sp;
    bn_dims(s, &n, &ch, &sp);
    /* always 4-D: oneDNN 2.6 has an optimised kernel for plain 4-D (ncsp) data
     * but only its reference kernel for plain 2-D and 3-D */
    int64_t d[4] = {n, ch, sp, 1};
    dnnl_memory_desc_t md;
    dnnl_batch_normalization_desc_t bd;
    unsigned flags = dnnl_use_scale | dnnl_use_shift | (training ? 0u : (unsigned)dnnl_use_global_stats);
    dnnl_status_t st = prt_dnnl_md_plain(&md, 4, d);
    if (st == dnnl_success)
        st = dnnl_batch_normalization_forward_desc_init(
            &bd, training ? dnnl_forward_training : dnnl_forward_inference, &md, eps, flags);
    if (st == dnnl_success) st = prt_dnnl_pd_create(pd, &bd, eng);
    return st;
}

dnnl_status_t prt_bn_layout(const prt_shape *s, float eps, dnnl_engine_t eng, prt_bn_pd_fn make_pd,
                            size_t *stats_off, size_t *total) {
    size_t scratch = 0;
    for (int t = 0; t < 2; t++) {
        dnnl_primitive_desc_t pd;
        dnnl_status_t st = make_pd(s, eps, t == 1, eng, &pd);
        if (st != dnnl_success) return st;
        size_t z = prt_dnnl_scratch_size(pd);
        if (z > scratch) scratch = z;
        dnnl_primitive_desc_destroy(pd);
    }
    *stats_off = prt_dnnl_align(scratch);
    *total = *stats_off + prt_dnnl_align(2 * (size_t)s->d[1] * sizeof(float));
    return dnnl_success;
}

size_t prt_bn_workspace(const prt_infer_ctx *ic) {
    dnnl_engine_t eng = prt_dnnl_engine_quiet();
    size_t off, total;
    if (!eng || prt_bn_layout(&ic->in[0], (float)prt_attr_float(&ic->attrs[A_EPS]), eng, bn_pd, &off, &total) != dnnl_success)
        return 0;
    return total;
}

void prt_bn_fwd_release(void *state) {
    bn_state *s = state;
    if (!s) return;
    for (int t = 0; t < 2; t++) {
        if (s->prim[t]) dnnl_primitive_destroy(s->prim[t]);
        if (s->scratch[t]) dnnl_memory_destroy(s->scratch[t]);
    }
    dnnl_memory_t m[] = {s->src, s->dst, s->scale, s->shift, s->mean, s->var};
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        if (m[i]) dnnl_memory_destroy(m[i]);
    prt_dnnl_base_fini(&s->b);
    prt_free(s->b.ctx, s, sizeof *s);
}

prt_status prt_bn_fwd_prepare(const prt_kernel_call *c, void **state) {
    PRT_CHECK(prt_kernel_check_f32(c, "batchnorm"));
    prt_context *ctx = c->ctx;
    bn_state *s = prt_calloc(ctx, 1, sizeof *s);
    if (!s) return prt_error(ctx, PRT_ERR_NOMEM, "batchnorm kernel state");
    s->b.ctx = ctx;
    prt_status st;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_engine_t eng;
    const prt_shape *sh = &c->in[0]->shape;
    float eps = (float)prt_attr_float(&c->attrs[A_EPS]);
    size_t total = 0;
    PRT_CHECK_GOTO(prt_dnnl_engine(ctx, &eng), st, fail);
    PRT_DNNL_CHECK_GOTO(prt_bn_layout(sh, eps, eng, bn_pd, &s->stats_off, &total), ctx, "batchnorm", st, fail);
    PRT_CHECK_GOTO(prt_dnnl_base_init(c, &s->b, total), st, fail);
    /* both modes up front: one node runs in training and evaluation steps */
    for (int t = 0; t < 2; t++) {
        PRT_DNNL_CHECK_GOTO(bn_pd(sh, eps, t == 1, eng, &pd), ctx, "batchnorm", st, fail);
        PRT_DNNL_CHECK_GOTO(dnnl_primitive_create(&s->prim[t], pd), ctx, "batchnorm", st, fail);
        if (prt_dnnl_scratch_size(pd))
            PRT_DNNL_CHECK_GOTO(prt_dnnl_mem(&s->scratch[t], dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0),
                                             eng),
                                ctx, "batchnorm", st, fail);
        if (t == 0) {
            const dnnl_memory_desc_t *dmd = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
            dnnl_memory_desc_t cmd;
            PRT_DNNL_CHECK_GOTO(prt_dnnl_md_plain(&cmd, 1, &sh->d[1]), ctx, "batchnorm", st, fail);
            dnnl_memory_t *m[] = {&s->src, &s->dst, &s->scale, &s->shift, &s->mean, &s->var};
            for (size_t i = 0; i < 6; i++)
                PRT_DNNL_CHECK_GOTO(prt_dnnl_mem(m[i], i < 2 ? dmd : &cmd, eng), ctx, "batchnorm", st, fail);
        }
        dnnl_primitive_desc_destroy(pd);
        pd = NULL;
    }
    *state = s;
    return PRT_OK;
fail:
    if (pd) dnnl_primitive_desc_destroy(pd);
    prt_bn_fwd_release(s);
    return st;
}

prt_status prt_bn_fwd_fast(const prt_kernel_call *c, bool relu) {
    bn_state *s = c->state;
    if (!s) return prt_error(c->ctx, PRT_ERR_INTERNAL, "batchnorm kernel: run before prepare");
    PRT_CHECK(bn_check(c));
    if (c->training && prt_bn_syncs(c)) return bn_sync_train(c, true, relu);
    int t = c->training ? 1 : 0;
    char *ws;
    PRT_CHECK(prt_dnnl_ws(&s->b, c, "batchnorm", &ws));
    int64_t ch = c->in[0]->shape.d[1];
    float *bmean = (float *)(ws + s->stats_off), *bvar = bmean + ch;
    PRT_CHECK(prt_dnnl_bind(&s->b, s->src, PRT_F32P(c->in[0]), "batchnorm"));
    PRT_CHECK(prt_dnnl_bind(&s->b, s->dst, PRT_F32P(c->out[0]), "batchnorm"));
    PRT_CHECK(prt_dnnl_bind(&s->b, s->scale, PRT_F32P(c->in[1 + P_SCALE]), "batchnorm"));
    PRT_CHECK(prt_dnnl_bind(&s->b, s->shift, PRT_F32P(c->in[1 + P_SHIFT]), "batchnorm"));
    /* training writes the batch statistics to the workspace; inference reads
     * the running ones */
    PRT_CHECK(prt_dnnl_bind(&s->b, s->mean, t ? bmean : PRT_F32P(c->in[1 + P_MEAN]), "batchnorm"));
    PRT_CHECK(prt_dnnl_bind(&s->b, s->var, t ? bvar : PRT_F32P(c->in[1 + P_VAR]), "batchnorm"));
    dnnl_exec_arg_t args[7] = {{DNNL_ARG_SRC, s->src},     {DNNL_ARG_DST, s->dst},   {DNNL_ARG_SCALE, s->scale},
                               {DNNL_ARG_SHIFT, s->shift}, {DNNL_ARG_MEAN, s->mean}, {DNNL_ARG_VARIANCE, s->var}};
    int nargs = 6;
    if (s->scratch[t]) {
        PRT_CHECK(prt_dnnl_bind(&s->b, s->scratch[t], ws, "batchnorm"));
        args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, s->scratch[t]};
    }
    PRT_CHECK(prt_dnnl_exec(&s->b, s->prim[t], nargs, args, "batchnorm"));
    /* oneDNN's own fused ReLU gives -0 for negative inputs (alpha * x with
     * alpha 0) where the relu op gives +0: a pass of our own instead */
    if (relu) {
        bn_relu_args ra = {PRT_F32P(c->out[0])};
        prt_parallel_range(prt_shape_count(&c->out[0]->shape), PRT_PAR_MIN_ELEMS, bn_relu_range, &ra);
    }
    if (t) {
        int64_t n, chn, sp;
        bn_dims(&c->in[0]->shape, &n, &chn, &sp);
        bn_update_running(c, bmean, bvar, n * sp);
    }
    return PRT_OK;
}

/* ---- gradient --------------------------------------------------------- */

/* One batchnorm_bwd(dy, x, scale, mean, var) node gives dx, dscale and
 * dshift; the running mean and variance (state) get none, and neither does x
 * when it is a graph input (the node computes dx anyway). The kernel follows
 * the step's mode like the forward: in training (autodiff's case) the batch
 * statistics recomputed from x, and their dependence on x; outside training
 * the running statistics it is passed, as constants. */
static prt_status bn_grad(prt_grad_ctx *gc) {
    prt_graph *g = gc->g;
    int dy = gc->dy[0];
    if (dy == -1) return PRT_OK;
    const prt_node *nd = &g->nodes[gc->node];
    if (dy == PRT_GRAD_ONE)
        return prt_error(g->ctx, PRT_ERR_INVALID, "layer '%s' (batchnorm): its output is not a scalar loss",
                         nd->name);
    /* node->in: x, scale, shift, mean, var (every slot is always bound) */
    int in[5] = {dy, nd->in[0], nd->in[1 + P_SCALE], nd->in[1 + P_MEAN], nd->in[1 + P_VAR]}, outs[3];
    PRT_CHECK(prt_grad_emit(gc, "batchnorm_bwd", in, 5, NULL, outs));
    if (g->values[in[1]].kind != PRT_VAL_INPUT) gc->dx[0] = outs[0];
    gc->dx[1 + P_SCALE] = outs[1];
    gc->dx[1 + P_SHIFT] = outs[2];
    return PRT_OK;
}

static prt_status bn_ref(const prt_kernel_call *c) { return prt_bn_fwd_ref(c, false); }
static prt_status bn_fast(const prt_kernel_call *c) { return prt_bn_fwd_fast(c, false); }

const prt_op_schema prt_op_batchnorm = {
    .name = "batchnorm",
    .doc = "batch normalization over dim 1 with learned scale and shift",
    .min_in = 1,
    .max_in = 1,
    .n_out = 1,
    .attrs = prt_batchnorm_attrs,
    .n_attrs = 2,
    .params = prt_batchnorm_params,
    .n_params = 4,
    .infer = prt_bn_infer,
    .flops = bn_flops,
    .inplace_in = 0,
    .workspace = prt_bn_workspace,
    .ref = {.run = bn_ref},
    .fast = {.prepare = prt_bn_fwd_prepare, .run = bn_fast, .release = prt_bn_fwd_release},
    .grad = bn_grad,
    .cheap = true,
    .cuda = PRT_CUDNN_KERNEL(prt_cudnn_bn_prepare, prt_cudnn_bn, prt_cudnn_bn_release),
    .cuda_bf16 = true,
    .bf16_f32_params = 0xF, /* scale, shift, running mean and variance */
};

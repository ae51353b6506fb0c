/* batchnorm_bwd: the gradient of batchnorm. Inputs (dy, x, scale[, mean,
 * var]); outputs dx, dscale, dshift; batchnorm's attributes (eps).
 *
 * In training mode (what autodiff is for: training graphs run batchnorm in
 * training mode) the batch statistics are recomputed from x (mean and biased
 * variance over the M = N*S values of each channel), and with
 * xh = (x - mean) / sqrt(var + eps):
 *     dshift = sum dy,   dscale = sum dy * xh,
 *     dx = scale / sqrt(var + eps) * (dy - dshift / M - xh * dscale / M),
 * the last two terms being the statistics' own dependence on x. Outside
 * training the forward normalised with the running statistics, constants, so
 * the gradient is that of an affine map, dx = scale / sqrt(var + eps) * dy with
 * the running mean and var: the optional inputs 4 and 5, which the gradient
 * builder passes (a 3-input node only runs in training mode).
 * Fast path: the statistics with OpenMP, then oneDNN's batch normalization
 * backward on the plain layout viewed as [N, C, S, 1] like the forward (with
 * global statistics outside training).
 *
 * Synchronised batch norm (issue 6; the forward's comment in
 * ops/op_batchnorm.c): in training, when the call has sync_bn and a
 * communicator of more than one rank, the statistics are those of the combined
 * batch of all ranks, and so are the two sums dx needs: with M = N*b*S the
 * combined count,
 *     dx = scale * rstd * (dy - SUM dy / M - xh * SUM dy*xh / M)
 * with SUM over every rank (one allreduce), while dscale and dshift stay this
 * rank's own sums. Why that is what data parallelism needs: rank r's loss is
 * the mean over its b samples, L_r = (1/b) sum_{j in r} l_j, while one rank on
 * the combined batch has L = (1/(N b)) sum_j l_j; so every gradient a rank
 * computes for its samples is N times the combined one, and the gradient
 * allreduce averages the parameter gradients over the ranks. Here dy on rank r
 * is N g_j for its samples (g = dL/dy of the combined run), hence
 * SUM dy / M = N mean(g) and SUM dy*xh / M = N mean(g xh) over the combined
 * batch, and dx_j = N * (the combined run's dx_j): linear in dy, the same
 * factor N as every other local gradient, so the layers below see exactly what
 * they would in the combined run. The local dshift_r = sum_{j in r} N g_j
 * averages over the ranks to (1/N) sum_r N sum_{j in r} g_j = sum_j g_j, the
 * combined dshift; likewise dscale. Reducing dscale/dshift here as well would
 * count them N times over. Our own code (OpenMP in the fast kernel) does this:
 * oneDNN's backward forms the sums itself. */
#include "ops/bwd_util.h"
#include "runtime/comm_api.h"
#include "ops/cuda/cudnn_util.h"

#include <math.h>

static void bnb_dims(const prt_shape *s, int64_t *n, int64_t *c, int64_t *sp) {
    *n = s->d[0];
    *c = s->d[1];
    *sp = 1;
    for (int i = 2; i < s->ndim; i++) *sp *= s->d[i];
}

prt_status prt_bn_bwd_infer(prt_infer_ctx *ic) {
    /* the forward's shape function validates x, eps and momentum */
    prt_shape y, params[4];
    bool present[4];
    prt_infer_ctx f = *ic;
    f.n_in = 1;
    f.in = &ic->in[1];
    f.n_out = 1;
    f.out = &y;
    f.n_params = 4;
    f.params = params;
    f.param_present = present;
    PRT_CHECK(prt_op_batchnorm.infer(&f));
    const struct { const prt_shape *got, *want; const char *what; } chk[] = {
        {&ic->in[0], &y, "dy (the gradient of the batchnorm output)"},
        {&ic->in[2], &params[0], "the scale"},
        {&ic->in[3], &params[0], "the running mean"},
        {&ic->in[4], &params[0], "the running variance"},
    };
    if (ic->n_in != 3 && ic->n_in != 5)
        return prt_infer_error(ic, "takes (dy, x, scale) or (dy, x, scale, mean, var), got %d inputs", ic->n_in);
    for (int i = 0; i < ic->n_in - 1; i++) {
        if (prt_shape_eq(chk[i].got, chk[i].want)) continue;
        char a[160], b[160], xs[160];
        prt_shape_str(chk[i].got, a, sizeof a);
        prt_shape_str(chk[i].want, b, sizeof b);
        prt_shape_str(&ic->in[1], xs, sizeof xs);
        return prt_infer_error(ic, "%s is %s, expected %s for the input %s", chk[i].what, a, b, xs);
    }
    ic->out[0] = ic->in[1];
    ic->out[1] = params[0];
    ic->out[2] = params[0];
    /* bf16 dy and x (scheduler/precision.c): the scale's gradients are f32, as
     * the scale itself and cuDNN's scale/bias descriptor are */
    if (ic->in_dtype != PRT_F32) {
        ic->out_dtype_mask = 6u;
        ic->out_dtypes[1] = ic->out_dtypes[2] = PRT_F32;
    }
    return PRT_OK;
}

/* per element: the statistics (3), the two sums (3) and dx (4) */
static int64_t bnb_flops(const prt_infer_ctx *ic) { return prt_flop_mul(10, prt_ops_numel(&ic->in[1])); }

static prt_status bnb_check(const prt_kernel_call *c) {
    PRT_CHECK(prt_kernel_check_f32(c, "batchnorm_bwd"));
    if ((c->n_in != 3 && c->n_in != 5) || c->n_out != 3)
        return prt_error(c->ctx, PRT_ERR_INTERNAL,
                         "batchnorm_bwd kernel: %d inputs and %d outputs, expected 3 or 5 and 3", c->n_in, c->n_out);
    if (!c->training && c->n_in != 5)
        return prt_error(c->ctx, PRT_ERR_INVALID,
                         "batchnorm_bwd: the gradient outside training needs the running mean and variance (inputs 4 "
                         "and 5)");
    return PRT_OK;
}

typedef struct bnb_sync_job {
    const float *dy, *x, *scale;
    float *dx, *dscale, *dshift;
    double *mean, *rstd; /* per channel, combined batch */
    float *sums;         /* [C] sum dy / M, [C] sum dy*xh / M: reduced over the ranks */
    int64_t n, ch, sp;
    double m;            /* M, the combined count */
} bnb_sync_job;

/* Channel k's local sums: dshift, dscale and their share of the allreduce. */
static void bnb_sync_sums(const bnb_sync_job *j, int64_t k) {
    double sdy = 0, sdyx = 0, mu = j->mean[k];
    for (int64_t i = 0; i < j->n; i++) {
        int64_t o = (i * j->ch + k) * j->sp;
        const float *dy = j->dy + o, *x = j->x + o;
#pragma omp simd reduction(+ : sdy, sdyx)
        for (int64_t t = 0; t < j->sp; t++) {
            sdy += dy[t];
            sdyx += dy[t] * ((double)x[t] - mu);
        }
    }
    double ds = sdyx * j->rstd[k];
    j->dshift[k] = (float)sdy;
    j->dscale[k] = (float)ds;
    j->sums[k] = (float)(sdy / j->m);
    j->sums[j->ch + k] = (float)(ds / j->m);
}

/* Row r = (sample i, channel k) of dx, from the reduced sums; the arithmetic of bnb_ref. */
static void bnb_sync_dx(void *arg, int64_t lo, int64_t hi) {
    const bnb_sync_job *j = arg;
    for (int64_t r = lo; r < hi; r++) {
        int64_t k = r % j->ch;
        double mu = j->mean[k], rstd = j->rstd[k], a = j->sums[k], b = j->sums[j->ch + k];
        double g = j->scale[k] * rstd;
        const float *dy = j->dy + r * j->sp, *x = j->x + r * j->sp;
        float *dx = j->dx + r * j->sp;
#pragma omp simd
        for (int64_t t = 0; t < j->sp; t++) dx[t] = (float)(g * (dy[t] - a - ((double)x[t] - mu) * rstd * b));
    }
}

/* Training with synchronised statistics, both kernels (par: the fast one's threads). */
static prt_status bnb_sync_train(const prt_kernel_call *c, bool par) {
    bnb_sync_job j = {.dy = PRT_F32P(c->in[0]), .x = PRT_F32P(c->in[1]), .scale = PRT_F32P(c->in[2]),
                      .dx = PRT_F32P(c->out[0]), .dscale = PRT_F32P(c->out[1]), .dshift = PRT_F32P(c->out[2])};
    bnb_dims(&c->in[1]->shape, &j.n, &j.ch, &j.sp);
    j.m = (double)(j.n * j.sp) * (double)prt_comm_size(c->comm);
    if (j.ch == 0) return PRT_OK; /* on every rank alike: shapes agree */
    double eps = prt_attr_float(&c->attrs[PRT_BN_A_EPS]);
    size_t bytes = (size_t)j.ch * (2 * sizeof(double) + 2 * sizeof(float));
    j.mean = prt_malloc(c->ctx, bytes);
    if (!j.mean)
        return prt_error(c->ctx, PRT_ERR_NOMEM, "batchnorm_bwd: statistics of %lld channels", (long long)j.ch);
    j.rstd = j.mean + j.ch;
    j.sums = (float *)(j.rstd + j.ch);
    prt_status st = PRT_OK;
    /* rstd holds the variance until the line after */
    PRT_CHECK_GOTO(prt_bn_sync_stats(c, j.x, &c->in[1]->shape, par, j.mean, j.rstd), st, done);
    for (int64_t k = 0; k < j.ch; k++) j.rstd[k] = 1.0 / sqrt(j.rstd[k] + eps);
    bool threads = par && j.ch > 1 && j.n * j.sp * j.ch >= 2 * PRT_PAR_MIN_ELEMS;
#pragma omp parallel for schedule(static) if (threads)
    for (int64_t k = 0; k < j.ch; k++) bnb_sync_sums(&j, k);
    {
        prt_comm_handle h;
        PRT_CHECK_GOTO(prt_comm_allreduce_start(c->comm, j.sums, 2 * (size_t)j.ch, PRT_F32, PRT_COMM_SUM, &h), st,
                       done);
        PRT_CHECK_GOTO(prt_comm_wait(c->comm, h), st, done);
    }
    if (par) prt_parallel_range(j.n * j.ch, j.sp > 0 ? (PRT_PAR_MIN_ELEMS + j.sp - 1) / j.sp : 1, bnb_sync_dx, &j);
    else bnb_sync_dx(&j, 0, j.n * j.ch);
done:
    prt_free(c->ctx, j.mean, bytes);
    return st;
}

prt_status prt_bn_bwd_ref(const prt_kernel_call *c) {
    PRT_CHECK(bnb_check(c));
    if (c->training && prt_bn_syncs(c)) return bnb_sync_train(c, false);
    int64_t n, ch, sp;
    bnb_dims(&c->in[1]->shape, &n, &ch, &sp);
    const float *dy = PRT_F32P(c->in[0]), *x = PRT_F32P(c->in[1]), *scale = PRT_F32P(c->in[2]);
    float *dx = PRT_F32P(c->out[0]), *dscale = PRT_F32P(c->out[1]), *dshift = PRT_F32P(c->out[2]);
    double eps = prt_attr_float(&c->attrs[PRT_BN_A_EPS]), m = (double)(n * sp);
    for (int64_t k = 0; k < ch; k++) {
        double s = 0, ss = 0, sdy = 0, sdyx = 0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < sp; j++) s += x[(i * ch + k) * sp + j];
        double mean = c->training ? s / m : PRT_F32P(c->in[3])[k];
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < sp; j++) {
                int64_t e = (i * ch + k) * sp + j;
                double d = x[e] - mean;
                ss += d * d;
                sdy += dy[e];
                sdyx += dy[e] * d;
            }
        double var = c->training ? ss / m : PRT_F32P(c->in[4])[k];
        double rstd = 1.0 / sqrt(var + eps);
        double ds = sdyx * rstd; /* sum dy * xh */
        dshift[k] = (float)sdy;
        dscale[k] = (float)ds;
        /* the statistics' dependence on x, in training only */
        double a = c->training ? sdy / m : 0, b = c->training ? ds / m : 0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < sp; j++) {
                int64_t e = (i * ch + k) * sp + j;
                double xh = (x[e] - mean) * rstd;
                dx[e] = (float)(scale[k] * rstd * (dy[e] - a - xh * b));
            }
    }
    return PRT_OK;
}

/* ---- fast path -------------------------------------------------------- */

typedef struct bnb_state {
    prt_dnnl_base b;
    dnnl_primitive_t prim[2]; /* [0] outside training (global statistics), [1] training */
    dnnl_memory_t src, mean, var, ddst, scale, shift, dsrc, dscale, dshift, scratch[2];
    size_t stats_off; /* batch mean and variance in the workspace */
} bnb_state;

static dnnl_status_t bnb_pd(const prt_shape *s, float eps, bool training, dnnl_engine_t eng,
                            dnnl_primitive_desc_t *pd) {
    int64_t n, ch, sp;
    bnb_dims(s, &n, &ch, &sp);
    /* 4-D for the same reason as the forward: oneDNN 2.6 optimises plain 4-D only */
    int64_t d[4] = {n, ch, sp, 1};
    dnnl_memory_desc_t md;
    dnnl_batch_normalization_desc_t fd, bd;
    dnnl_primitive_desc_t hint = NULL;
    unsigned flags = dnnl_use_scale | dnnl_use_shift | (training ? 0u : (unsigned)dnnl_use_global_stats);
    dnnl_status_t st = prt_dnnl_md_plain(&md, 4, d);
    if (st == dnnl_success) st = dnnl_batch_normalization_forward_desc_init(&fd, dnnl_forward_training, &md, eps, flags);
    if (st == dnnl_success) st = prt_dnnl_pd_create(&hint, &fd, eng);
    if (st != dnnl_success) return st;
    /* dnnl_backward: the data gradient and those of scale and shift */
    st = dnnl_batch_normalization_backward_desc_init(&bd, dnnl_backward, &md, &md, eps, flags);
    if (st == dnnl_success) st = prt_dnnl_pd_create_hint(pd, &bd, eng, hint);
    dnnl_primitive_desc_destroy(hint);
    return st;
}

size_t prt_bn_bwd_workspace(const prt_infer_ctx *ic) {
    dnnl_engine_t eng = prt_dnnl_engine_quiet();
    size_t off, total;
    if (!eng || prt_bn_layout(&ic->in[1], (float)prt_attr_float(&ic->attrs[PRT_BN_A_EPS]), eng, bnb_pd, &off,
                                 &total) !=
                    dnnl_success)
        return 0;
    return total;
}

void prt_bn_bwd_release(void *state) {
    bnb_state *s = state;
    if (!s) return;
    for (int t = 0; t < 2; t++) {
        if (s->prim[t]) dnnl_primitive_destroy(s->prim[t]);
        if (s->scratch[t]) dnnl_memory_destroy(s->scratch[t]);
    }
    dnnl_memory_t m[] = {s->src, s->mean, s->var, s->ddst, s->scale, s->shift, s->dsrc, s->dscale, s->dshift};
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        if (m[i]) dnnl_memory_destroy(m[i]);
    prt_dnnl_base_fini(&s->b);
    prt_free(s->b.ctx, s, sizeof *s);
}

prt_status prt_bn_bwd_prepare(const prt_kernel_call *c, void **state) {
    PRT_CHECK(bnb_check(c));
    prt_context *ctx = c->ctx;
    bnb_state *s = prt_calloc(ctx, 1, sizeof *s);
    if (!s) return prt_error(ctx, PRT_ERR_NOMEM, "batchnorm_bwd kernel state");
    s->b.ctx = ctx;
    prt_status st;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_engine_t eng;
    const prt_shape *sh = &c->in[1]->shape;
    float eps = (float)prt_attr_float(&c->attrs[PRT_BN_A_EPS]);
    size_t total = 0;
    PRT_CHECK_GOTO(prt_dnnl_engine(ctx, &eng), st, fail);
    PRT_DNNL_CHECK_GOTO(prt_bn_layout(sh, eps, eng, bnb_pd, &s->stats_off, &total), ctx, "batchnorm_bwd", st, fail);
    PRT_CHECK_GOTO(prt_dnnl_base_init(c, &s->b, total), st, fail);
    /* both modes up front, as the forward does: one node serves training and
     * evaluation steps (the outside-training one only with the running statistics) */
    for (int t = c->n_in == 5 ? 0 : 1; t < 2; t++) {
        PRT_DNNL_CHECK_GOTO(bnb_pd(sh, eps, t == 1, eng, &pd), ctx, "batchnorm_bwd", st, fail);
        PRT_DNNL_CHECK_GOTO(dnnl_primitive_create(&s->prim[t], pd), ctx, "batchnorm_bwd", st, fail);
        if (prt_dnnl_scratch_size(pd))
            PRT_DNNL_CHECK_GOTO(prt_dnnl_mem(&s->scratch[t], dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0),
                                             eng),
                                ctx, "batchnorm_bwd", st, fail);
        if (!s->src) {
            const dnnl_memory_desc_t *dmd = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
            dnnl_memory_desc_t cmd;
            PRT_DNNL_CHECK_GOTO(prt_dnnl_md_plain(&cmd, 1, &sh->d[1]), ctx, "batchnorm_bwd", st, fail);
            struct { dnnl_memory_t *m; const dnnl_memory_desc_t *md; } mems[] = {
                {&s->src, dmd},    {&s->ddst, dmd},   {&s->dsrc, dmd},    {&s->mean, &cmd},   {&s->var, &cmd},
                {&s->scale, &cmd}, {&s->shift, &cmd}, {&s->dscale, &cmd}, {&s->dshift, &cmd},
            };
            for (size_t i = 0; i < sizeof mems / sizeof mems[0]; i++)
                PRT_DNNL_CHECK_GOTO(prt_dnnl_mem(mems[i].m, mems[i].md, eng), ctx, "batchnorm_bwd", st, fail);
        }
        dnnl_primitive_desc_destroy(pd);
        pd = NULL;
    }
    *state = s;
    return PRT_OK;
fail:
    if (pd) dnnl_primitive_desc_destroy(pd);
    prt_bn_bwd_release(s);
    return st;
}

typedef struct bnb_stats_job {
    const float *x;
    float *mean, *var;
    int64_t n, ch, sp;
} bnb_stats_job;

/* Channel k's mean and biased variance in one pass, from sums of x - x0 with
 * x0 a value of the channel: the shift keeps E[d^2] - E[d]^2 from cancelling
 * when the mean is large against the spread. Rows are summed in float
 * (vectorised), rows into double. */
static void bnb_stats(const bnb_stats_job *j, int64_t k) {
    float x0 = j->x[k * j->sp];
    double s = 0, ss = 0;
    for (int64_t i = 0; i < j->n; i++) {
        const float *row = j->x + (i * j->ch + k) * j->sp;
        float r = 0.0f, rr = 0.0f;
#pragma omp simd reduction(+ : r, rr)
        for (int64_t t = 0; t < j->sp; t++) {
            float d = row[t] - x0;
            r += d;
            rr += d * d;
        }
        s += r;
        ss += rr;
    }
    double m = (double)(j->n * j->sp), mu = s / m, v = ss / m - mu * mu;
    j->mean[k] = (float)(x0 + mu);
    j->var[k] = (float)(v > 0 ? v : 0);
}

prt_status prt_bn_bwd_fast(const prt_kernel_call *c) {
    bnb_state *s = c->state;
    if (!s) return prt_error(c->ctx, PRT_ERR_INTERNAL, "batchnorm_bwd kernel: run before prepare");
    PRT_CHECK(bnb_check(c));
    if (c->training && prt_bn_syncs(c)) return bnb_sync_train(c, true);
    char *ws;
    PRT_CHECK(prt_dnnl_ws(&s->b, c, "batchnorm_bwd", &ws));
    int t = c->training ? 1 : 0;
    bnb_stats_job j = {.x = PRT_F32P(c->in[1])};
    bnb_dims(&c->in[1]->shape, &j.n, &j.ch, &j.sp);
    j.mean = (float *)(ws + s->stats_off);
    j.var = j.mean + j.ch;
    if (!t) {
        j.mean = PRT_F32P(c->in[3]);
        j.var = PRT_F32P(c->in[4]);
    } else if (j.ch < 2 || j.n * j.sp * j.ch < 2 * PRT_PAR_MIN_ELEMS) {
        for (int64_t k = 0; k < j.ch; k++) bnb_stats(&j, k);
    } else {
#pragma omp parallel for schedule(static)
        for (int64_t k = 0; k < j.ch; k++) bnb_stats(&j, k);
    }
    const char *w = "batchnorm_bwd";
    PRT_CHECK(prt_dnnl_bind(&s->b, s->src, PRT_F32P(c->in[1]), w));
    PRT_CHECK(prt_dnnl_bind(&s->b, s->ddst, PRT_F32P(c->in[0]), w));
    PRT_CHECK(prt_dnnl_bind(&s->b, s->scale, PRT_F32P(c->in[2]), w));
    /* oneDNN 2.6 asks for the shift as an argument although no gradient
     * depends on its values; scale's buffer stands in (read-only, same shape) */
    PRT_CHECK(prt_dnnl_bind(&s->b, s->shift, PRT_F32P(c->in[2]), w));
    PRT_CHECK(prt_dnnl_bind(&s->b, s->mean, j.mean, w));
    PRT_CHECK(prt_dnnl_bind(&s->b, s->var, j.var, w));
    PRT_CHECK(prt_dnnl_bind(&s->b, s->dsrc, PRT_F32P(c->out[0]), w));
    PRT_CHECK(prt_dnnl_bind(&s->b, s->dscale, PRT_F32P(c->out[1]), w));
    PRT_CHECK(prt_dnnl_bind(&s->b, s->dshift, PRT_F32P(c->out[2]), w));
    dnnl_exec_arg_t args[10] = {
        {DNNL_ARG_SRC, s->src},         {DNNL_ARG_MEAN, s->mean},          {DNNL_ARG_VARIANCE, s->var},
        {DNNL_ARG_DIFF_DST, s->ddst},   {DNNL_ARG_SCALE, s->scale},        {DNNL_ARG_SHIFT, s->shift},
        {DNNL_ARG_DIFF_SRC, s->dsrc},   {DNNL_ARG_DIFF_SCALE, s->dscale},  {DNNL_ARG_DIFF_SHIFT, s->dshift},
    };
    int nargs = 9;
    if (s->scratch[t]) {
        PRT_CHECK(prt_dnnl_bind(&s->b, s->scratch[t], ws, w));
        args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, s->scratch[t]};
    }
    return prt_dnnl_exec(&s->b, s->prim[t], nargs, args, w);
}

const prt_op_schema prt_op_batchnorm_bwd = {
    .name = "batchnorm_bwd",
    .doc = "gradient of batchnorm: (dy, x, scale[, mean, var]) -> dx, dscale, dshift",
    .min_in = 3,
    .max_in = 5,
    .n_out = 3,
    .attrs = prt_batchnorm_attrs,
    .n_attrs = PRT_BATCHNORM_N_ATTRS,
    .infer = prt_bn_bwd_infer,
    .flops = bnb_flops,
    .inplace_in = -1,
    .workspace = prt_bn_bwd_workspace,
    .ref = {.run = prt_bn_bwd_ref},
    .fast = {.prepare = prt_bn_bwd_prepare, .run = prt_bn_bwd_fast, .release = prt_bn_bwd_release},
    .grad = NULL,
    .grad_note = "backward-only op",
    .cuda = PRT_CUDNN_KERNEL(prt_cudnn_bn_bwd_prepare, prt_cudnn_bn_bwd, prt_cudnn_bn_release),
    .cuda_bf16 = true,
};

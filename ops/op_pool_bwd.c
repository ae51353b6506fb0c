/* maxpool_bwd and avgpool_bwd: the gradients of 2-D pooling, dx from (dy, x).
 * They share the forward ops' attribute tables, so a gradient node copies its
 * forward node's attributes unchanged. Max pooling keeps no argmax from the
 * forward pass: the backward recomputes each window's winner from x with the
 * forward's rule (first maximum, NaN wins), so no index tensor has to live
 * between the passes. Average pooling reads x for its shape only. */
#include "ops/ops_util.h"
#include "ops/cuda/cudnn_util.h"

#include <math.h>
#include <string.h>

enum { IN_DY, IN_X };

static prt_status pool_bwd_infer(prt_infer_ctx *ic) {
    const prt_shape *dy = &ic->in[IN_DY], *x = &ic->in[IN_X];
    char a[160], b[160];
    if (x->ndim != 4) {
        prt_shape_str(x, a, sizeof a);
        return prt_infer_error(ic, "expects the forward input x as [N, C, H, W], got %s", a);
    }
    prt_window w = {0};
    PRT_CHECK(prt_pool_window(ic, ic->attrs, x, &w));
    prt_shape want = prt_shape4(x->d[0], x->d[1], w.oh, w.ow);
    if (!prt_shape_eq(dy, &want)) {
        prt_shape_str(dy, a, sizeof a);
        prt_shape_str(&want, b, sizeof b);
        return prt_infer_error(ic, "gradient dy has shape %s but pooling this input gives %s", a, b);
    }
    ic->out[0] = *x;
    return PRT_OK;
}

static int64_t pool_bwd_flops(const prt_infer_ctx *ic) {
    prt_window w = {0};
    prt_pool_window(NULL, ic->attrs, &ic->in[IN_X], &w);
    return prt_flop_mul(prt_ops_numel(&ic->in[IN_DY]), prt_flop_mul(w.kh, w.kw));
}

/* One [H, W] plane: dx is overwritten. Accumulation runs over the outputs in
 * order, so the reference and the threaded path give the same bits. */
static void max_bwd_plane(const float *dy, const float *x, float *dx, int64_t h, int64_t wd, const prt_window *w) {
    for (int64_t i = 0; i < h * wd; i++) dx[i] = 0.0f;
    for (int64_t oy = 0; oy < w->oh; oy++) {
        for (int64_t ox = 0; ox < w->ow; ox++) {
            int64_t y0 = oy * w->sh - w->pad[0], x0 = ox * w->sw - w->pad[1], arg = -1;
            float m = -INFINITY;
            for (int64_t ky = 0; ky < w->kh; ky++) {
                int64_t iy = y0 + ky;
                if (iy < 0 || iy >= h) continue;
                for (int64_t kx = 0; kx < w->kw; kx++) {
                    int64_t ix = x0 + kx;
                    if (ix < 0 || ix >= wd) continue;
                    float v = x[iy * wd + ix];
                    /* the forward's rule; arg < 0 also catches a window of -inf */
                    if (arg < 0 || v > m || isnan(v)) {
                        m = v;
                        arg = iy * wd + ix;
                    }
                }
            }
            if (arg >= 0) dx[arg] += dy[oy * w->ow + ox];
        }
    }
}

static void avg_bwd_plane(const float *dy, float *dx, int64_t h, int64_t wd, const prt_window *w, bool count_pad) {
    for (int64_t i = 0; i < h * wd; i++) dx[i] = 0.0f;
    for (int64_t oy = 0; oy < w->oh; oy++) {
        for (int64_t ox = 0; ox < w->ow; ox++) {
            int64_t y0 = oy * w->sh - w->pad[0], x0 = ox * w->sw - w->pad[1];
            int64_t ya = y0 < 0 ? 0 : y0, yb = y0 + w->kh < h ? y0 + w->kh : h;
            int64_t xa = x0 < 0 ? 0 : x0, xb = x0 + w->kw < wd ? x0 + w->kw : wd;
            int64_t count = count_pad ? w->kh * w->kw : (yb - ya) * (xb - xa);
            float g = dy[oy * w->ow + ox] / (float)count;
            for (int64_t iy = ya; iy < yb; iy++)
                for (int64_t ix = xa; ix < xb; ix++) dx[iy * wd + ix] += g;
        }
    }
}

typedef struct pool_bwd_args {
    const float *dy, *x;
    float *dx;
    int64_t h, wd;
    prt_window w;
    bool avg, count_pad;
} pool_bwd_args;

static void pool_bwd_range(void *arg, int64_t lo, int64_t hi) {
    const pool_bwd_args *a = arg;
    int64_t in_plane = a->h * a->wd, out_plane = a->w.oh * a->w.ow;
    for (int64_t p = lo; p < hi; p++) {
        if (a->avg) avg_bwd_plane(a->dy + p * out_plane, a->dx + p * in_plane, a->h, a->wd, &a->w, a->count_pad);
        else max_bwd_plane(a->dy + p * out_plane, a->x + p * in_plane, a->dx + p * in_plane, a->h, a->wd, &a->w);
    }
}

static prt_status pool_bwd_setup(const prt_kernel_call *c, bool avg, pool_bwd_args *a, int64_t *planes) {
    PRT_CHECK(prt_kernel_check_f32(c, avg ? "avgpool_bwd" : "maxpool_bwd"));
    const prt_shape *xs = &c->in[IN_X]->shape;
    memset(a, 0, sizeof *a);
    prt_pool_window(NULL, c->attrs, xs, &a->w);
    a->dy = PRT_F32P(c->in[IN_DY]);
    a->x = avg ? NULL : PRT_F32P(c->in[IN_X]); /* avg: x is shape-only, its data may be gone */
    a->dx = PRT_F32P(c->out[0]);
    a->h = xs->d[2];
    a->wd = xs->d[3];
    a->avg = avg;
    a->count_pad = avg && prt_attr_bool(&c->attrs[PRT_POOL_COUNT_PAD]);
    *planes = xs->d[0] * xs->d[1];
    return PRT_OK;
}

static prt_status pool_bwd_ref(const prt_kernel_call *c, bool avg) {
    pool_bwd_args a;
    int64_t planes;
    PRT_CHECK(pool_bwd_setup(c, avg, &a, &planes));
    pool_bwd_range(&a, 0, planes);
    return PRT_OK;
}

/* Planes are independent, so threads split them; a plane is a task. */
static prt_status pool_bwd_fast(const prt_kernel_call *c, bool avg) {
    pool_bwd_args a;
    int64_t planes;
    PRT_CHECK(pool_bwd_setup(c, avg, &a, &planes));
    int64_t per_plane = a.h * a.wd + a.w.oh * a.w.ow * a.w.kh * a.w.kw;
    prt_parallel_range(planes, PRT_PAR_MIN_ELEMS / (per_plane + 1) + 1, pool_bwd_range, &a);
    return PRT_OK;
}

static prt_status maxpool_bwd_ref(const prt_kernel_call *c) { return pool_bwd_ref(c, false); }
static prt_status maxpool_bwd_fast(const prt_kernel_call *c) { return pool_bwd_fast(c, false); }
static prt_status avgpool_bwd_ref(const prt_kernel_call *c) { return pool_bwd_ref(c, true); }
static prt_status avgpool_bwd_fast(const prt_kernel_call *c) { return pool_bwd_fast(c, true); }

const prt_op_schema prt_op_maxpool_bwd = {
    .name = "maxpool_bwd",
    .doc = "gradient of maxpool: dy routed to each window's (first) maximum of x",
    .min_in = 2,
    .max_in = 2,
    .n_out = 1,
    .attrs = prt_maxpool_attrs,
    .n_attrs = PRT_POOL_GLOBAL + 1,
    .infer = pool_bwd_infer,
    .flops = pool_bwd_flops,
    .inplace_in = -1,
    .ref = {.run = maxpool_bwd_ref},
    .fast = {.run = maxpool_bwd_fast},
    .cuda = PRT_CUDNN_KERNEL(NULL, prt_cudnn_maxpool_bwd, NULL),
    .grad = NULL,
    .grad_note = "backward-only op",
    .cuda_bf16 = true,
};

const prt_op_schema prt_op_avgpool_bwd = {
    .name = "avgpool_bwd",
    .doc = "gradient of avgpool: dy spread evenly over each window",
    .min_in = 2,
    .max_in = 2,
    .n_out = 1,
    .attrs = prt_avgpool_attrs,
    .n_attrs = PRT_POOL_COUNT_PAD + 1,
    .infer = pool_bwd_infer,
    .flops = pool_bwd_flops,
    .inplace_in = -1,
    .ref = {.run = avgpool_bwd_ref},
    .fast = {.run = avgpool_bwd_fast},
    .cuda = PRT_CUDNN_KERNEL(NULL, prt_cudnn_avgpool_bwd, NULL),
    .grad = NULL,
    .grad_note = "backward-only op",
    .shape_only = 1u << IN_X,
    .cuda_bf16 = true,
};

/* clip: y = min(max(x, min), max) (ONNX Clip; ReLU6 is clip 0..6). NaN passes
 * through; with min > max every value becomes max, as in ONNX and numpy. The
 * bounds default to -inf and +inf. Its gradient clip_bwd reads the forward
 * output: dx = dy where min < y < max, else 0, so the forward may run in
 * place (x equal to a bound exactly, a set of measure zero, gets 0). */
#include "ops/ops_util.h"

#include <math.h>

enum { A_MIN, A_MAX };

static const prt_attr_def clip_attrs[] = {
    PRT_ATTR_OPT_FLOAT("min", -HUGE_VAL, "lower bound (default -inf)"),
    PRT_ATTR_OPT_FLOAT("max", HUGE_VAL, "upper bound (default +inf)"),
};

static prt_status clip_bounds_check(prt_infer_ctx *ic) {
    double lo = prt_attr_float(&ic->attrs[A_MIN]), hi = prt_attr_float(&ic->attrs[A_MAX]);
    if (isnan(lo) || isnan(hi)) return prt_infer_error(ic, "min and max must be numbers, got %g and %g", lo, hi);
    return PRT_OK;
}

static prt_status clip_infer(prt_infer_ctx *ic) {
    PRT_CHECK(clip_bounds_check(ic));
    ic->out[0] = ic->in[0];
    return PRT_OK;
}

static int64_t clip_flops(const prt_infer_ctx *ic) { return prt_flops_per_elem(ic, 2); }

static prt_status clip_grad(prt_grad_ctx *gc) {
    if (gc->dy[0] == -1 || !prt_grad_wants(gc, 0)) return PRT_OK;
    if (gc->dy[0] == PRT_GRAD_ONE) return prt_grad_not_loss(gc);
    int in[2] = {gc->dy[0], gc->g->nodes[gc->node].out[0]};
    return prt_grad_emit(gc, "clip_bwd", in, 2, NULL, &gc->dx[0]);
}

/* Bounds as floats: a double beyond float's range becomes +-inf, which clips
 * nothing, as the exact comparison would. */
static void clip_bounds(const prt_kernel_call *c, float *lo, float *hi) {
    *lo = (float)prt_attr_float(&c->attrs[A_MIN]);
    *hi = (float)prt_attr_float(&c->attrs[A_MAX]);
}

static inline float clipf(float x, float lo, float hi) {
    float v = x < lo ? lo : x;
    return v > hi ? hi : v;
}

static prt_status clip_ref(const prt_kernel_call *c) {
    PRT_CHECK(prt_kernel_check_f32(c, "clip"));
    float lo, hi;
    clip_bounds(c, &lo, &hi);
    const float *x = PRT_F32P(c->in[0]);
    float *y = PRT_F32P(c->out[0]);
    int64_t n = prt_shape_count(&c->in[0]->shape);
    for (int64_t i = 0; i < n; i++) y[i] = clipf(x[i], lo, hi);
    return PRT_OK;
}

typedef struct clip_args { const float *x, *dy; float *y; float lo, hi; } clip_args;

static void clip_range(void *arg, int64_t lo, int64_t hi) {
    const clip_args *a = arg;
    const float *x = a->x;
    float *y = a->y, l = a->lo, h = a->hi;
#pragma omp simd
    for (int64_t i = lo; i < hi; i++) y[i] = clipf(x[i], l, h);
}

static prt_status clip_fast(const prt_kernel_call *c) {
    PRT_CHECK(prt_kernel_check_f32(c, "clip"));
    clip_args a = {.x = PRT_F32P(c->in[0]), .y = PRT_F32P(c->out[0])};
    clip_bounds(c, &a.lo, &a.hi);
    prt_parallel_range(prt_shape_count(&c->in[0]->shape), PRT_PAR_MIN_ELEMS, clip_range, &a);
    return PRT_OK;
}

const prt_op_schema prt_op_clip = {
    .name = "clip",
    .doc = "clamps to [min, max]: y = min(max(x, min), max)",
    .min_in = 1,
    .max_in = 1,
    .n_out = 1,
    .attrs = clip_attrs,
    .n_attrs = 2,
    .infer = clip_infer,
    .flops = clip_flops,
    .inplace_in = 0,
    .ref = {.run = clip_ref},
    .fast = {.run = clip_fast},
    .grad = clip_grad,
    .cheap = true,
};

/* ---- clip_bwd(dy, y), clip's attributes ------------------------------------ */

static prt_status clip_bwd_infer(prt_infer_ctx *ic) {
    PRT_CHECK(clip_bounds_check(ic));
    if (!prt_shape_eq(&ic->in[0], &ic->in[1])) {
        char a[160], b[160];
        prt_shape_str(&ic->in[0], a, sizeof a);
        prt_shape_str(&ic->in[1], b, sizeof b);
        return prt_infer_error(ic, "gradient dy has shape %s but the clip output y has %s", a, b);
    }
    ic->out[0] = ic->in[0];
    return PRT_OK;
}

static inline float clip_bwdf(float dy, float y, float lo, float hi) { return y > lo && y < hi ? dy : 0.0f; }

static prt_status clip_bwd_ref(const prt_kernel_call *c) {
    PRT_CHECK(prt_kernel_check_f32(c, "clip_bwd"));
    float lo, hi;
    clip_bounds(c, &lo, &hi);
    const float *dy = PRT_F32P(c->in[0]), *y = PRT_F32P(c->in[1]);
    float *dx = PRT_F32P(c->out[0]);
    int64_t n = prt_shape_count(&c->in[0]->shape);
    for (int64_t i = 0; i < n; i++) dx[i] = clip_bwdf(dy[i], y[i], lo, hi);
    return PRT_OK;
}

static void clip_bwd_range(void *arg, int64_t lo, int64_t hi) {
    const clip_args *a = arg;
    const float *dy = a->dy, *y = a->x;
    float *dx = a->y, l = a->lo, h = a->hi;
#pragma omp simd
    for (int64_t i = lo; i < hi; i++) dx[i] = clip_bwdf(dy[i], y[i], l, h);
}

static prt_status clip_bwd_fast(const prt_kernel_call *c) {
    PRT_CHECK(prt_kernel_check_f32(c, "clip_bwd"));
    clip_args a = {.dy = PRT_F32P(c->in[0]), .x = PRT_F32P(c->in[1]), .y = PRT_F32P(c->out[0])};
    clip_bounds(c, &a.lo, &a.hi);
    prt_parallel_range(prt_shape_count(&c->in[0]->shape), PRT_PAR_MIN_ELEMS, clip_bwd_range, &a);
    return PRT_OK;
}

const prt_op_schema prt_op_clip_bwd = {
    .name = "clip_bwd",
    .doc = "gradient of clip from the forward output: dx = dy where min < y < max, else 0",
    .min_in = 2,
    .max_in = 2,
    .n_out = 1,
    .attrs = clip_attrs,
    .n_attrs = 2,
    .infer = clip_bwd_infer,
    .flops = clip_flops,
    .inplace_in = 0,
    .ref = {.run = clip_bwd_ref},
    .fast = {.run = clip_bwd_fast},
    .grad = NULL,
    .grad_note = "backward-only op",
};

/* tanh: y = tanh(x), and its gradient tanh_bwd, which reads the forward
 * output (dx = dy * (1 - y * y)) so the forward may run in place. */
#include "ops/ops_util.h"
#include "ops/cuda/cuda_ops.h"

#include <math.h>

/* counted as two exps, an add and a divide */
static int64_t tanh_flops(const prt_infer_ctx *ic) { return prt_flops_per_elem(ic, 4); }

static prt_status tanh_grad(prt_grad_ctx *gc) {
    if (gc->dy[0] == -1 || !prt_grad_wants(gc, 0)) return PRT_OK;
    if (gc->dy[0] == PRT_GRAD_ONE) return prt_grad_not_loss(gc);
    int in[2] = {gc->dy[0], gc->g->nodes[gc->node].out[0]};
    return prt_grad_emit(gc, "tanh_bwd", in, 2, NULL, &gc->dx[0]);
}

static prt_status tanh_ref(const prt_kernel_call *c) {
    PRT_CHECK(prt_kernel_check_f32(c, "tanh"));
    const float *x = PRT_F32P(c->in[0]);
    float *y = PRT_F32P(c->out[0]);
    int64_t n = prt_shape_count(&c->in[0]->shape);
    for (int64_t i = 0; i < n; i++) y[i] = tanhf(x[i]);
    return PRT_OK;
}

typedef struct un_args { const float *x; float *y; } un_args;

static void tanh_range(void *arg, int64_t lo, int64_t hi) {
    const un_args *a = arg;
    const float *x = a->x;
    float *y = a->y;
#pragma omp simd
    for (int64_t i = lo; i < hi; i++) y[i] = tanhf(x[i]);
}

static prt_status tanh_fast(const prt_kernel_call *c) {
    PRT_CHECK(prt_kernel_check_f32(c, "tanh"));
    un_args a = {PRT_F32P(c->in[0]), PRT_F32P(c->out[0])};
    /* exp makes an element dearer than a copy: threads pay off sooner */
    prt_parallel_range(prt_shape_count(&c->in[0]->shape), PRT_PAR_MIN_ELEMS / 4, tanh_range, &a);
    return PRT_OK;
}

const prt_op_schema prt_op_tanh = {
    .name = "tanh",
    .doc = "hyperbolic tangent: y = tanh(x)",
    .min_in = 1,
    .max_in = 1,
    .n_out = 1,
    .infer = prt_infer_same_shape,
    .flops = tanh_flops,
    .inplace_in = 0,
    .ref = {.run = tanh_ref},
    .fast = {.run = tanh_fast},
    .grad = tanh_grad,
    .cheap = true,
    .cuda = PRT_CUDA_KERNEL(.run = prt_cuda_tanh),
};

/* ---- tanh_bwd(dy, y) ---------------------------------------------------- */

static prt_status tanh_bwd_infer(prt_infer_ctx *ic) {
    if (!prt_shape_eq(&ic->in[0], &ic->in[1])) {
        char a[160], b[160];
        prt_shape_str(&ic->in[0], a, sizeof a);
        prt_shape_str(&ic->in[1], b, sizeof b);
        return prt_infer_error(ic, "gradient dy has shape %s but the tanh output y has %s", a, b);
    }
    ic->out[0] = ic->in[0];
    return PRT_OK;
}

static int64_t tanh_bwd_flops(const prt_infer_ctx *ic) { return prt_flops_per_elem(ic, 3); }

static prt_status tanh_bwd_ref(const prt_kernel_call *c) {
    PRT_CHECK(prt_kernel_check_f32(c, "tanh_bwd"));
    const float *dy = PRT_F32P(c->in[0]), *y = PRT_F32P(c->in[1]);
    float *dx = PRT_F32P(c->out[0]);
    int64_t n = prt_shape_count(&c->in[0]->shape);
    for (int64_t i = 0; i < n; i++) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
    return PRT_OK;
}

typedef struct bwd_args { const float *dy, *y; float *dx; } bwd_args;

static void tanh_bwd_range(void *arg, int64_t lo, int64_t hi) {
    const bwd_args *a = arg;
    const float *dy = a->dy, *y = a->y;
    float *dx = a->dx;
#pragma omp simd
    for (int64_t i = lo; i < hi; i++) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
}

static prt_status tanh_bwd_fast(const prt_kernel_call *c) {
    PRT_CHECK(prt_kernel_check_f32(c, "tanh_bwd"));
    bwd_args a = {PRT_F32P(c->in[0]), PRT_F32P(c->in[1]), PRT_F32P(c->out[0])};
    prt_parallel_range(prt_shape_count(&c->in[0]->shape), PRT_PAR_MIN_ELEMS, tanh_bwd_range, &a);
    return PRT_OK;
}

const prt_op_schema prt_op_tanh_bwd = {
    .name = "tanh_bwd",
    .doc = "gradient of tanh from the forward output: dx = dy * (1 - y^2)",
    .min_in = 2,
    .max_in = 2,
    .n_out = 1,
    .infer = tanh_bwd_infer,
    .flops = tanh_bwd_flops,
    .inplace_in = 0,
    .ref = {.run = tanh_bwd_ref},
    .fast = {.run = tanh_bwd_fast},
    .grad = NULL,
    .grad_note = "backward-only op",
    .cuda = PRT_CUDA_KERNEL(.run = prt_cuda_tanh_bwd),
};

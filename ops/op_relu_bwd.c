/* relu_bwd: the gradient of relu, dx = dy where y > 0, else 0. It reads the
 * forward OUTPUT y rather than x: y > 0 exactly where x > 0, and keeping y
 * lets the forward relu overwrite its input in place. */
#include "ops/ops_util.h"
#include "ops/cuda/cuda_ops.h"

static prt_status relu_bwd_infer(prt_infer_ctx *ic) {
    if (!prt_shape_eq(&ic->in[0], &ic->in[1])) {
        char a[160], b[160];
        prt_shape_str(&ic->in[0], a, sizeof a);
        prt_shape_str(&ic->in[1], b, sizeof b);
        return prt_infer_error(ic, "gradient dy has shape %s but the relu output y has %s", a, b);
    }
    ic->out[0] = ic->in[0];
    return PRT_OK;
}

static int64_t relu_bwd_flops(const prt_infer_ctx *ic) { return prt_flops_per_elem(ic, 1); }

static prt_status relu_bwd_ref(const prt_kernel_call *c) {
    PRT_CHECK(prt_kernel_check_f32(c, "relu_bwd"));
    const float *dy = PRT_F32P(c->in[0]), *y = PRT_F32P(c->in[1]);
    float *dx = PRT_F32P(c->out[0]);
    int64_t n = prt_shape_count(&c->in[0]->shape);
    for (int64_t i = 0; i < n; i++) dx[i] = y[i] > 0 ? dy[i] : 0.0f;
    return PRT_OK;
}

typedef struct relu_bwd_args { const float *dy, *y; float *dx; } relu_bwd_args;

static void relu_bwd_range(void *arg, int64_t lo, int64_t hi) {
    const relu_bwd_args *a = arg;
    const float *dy = a->dy, *y = a->y;
    float *dx = a->dx;
#pragma omp simd
    for (int64_t i = lo; i < hi; i++) dx[i] = y[i] > 0 ? dy[i] : 0.0f;
}

static prt_status relu_bwd_fast(const prt_kernel_call *c) {
    PRT_CHECK(prt_kernel_check_f32(c, "relu_bwd"));
    relu_bwd_args a = {PRT_F32P(c->in[0]), PRT_F32P(c->in[1]), PRT_F32P(c->out[0])};
    prt_parallel_range(prt_shape_count(&c->in[0]->shape), PRT_PAR_MIN_ELEMS, relu_bwd_range, &a);
    return PRT_OK;
}

const prt_op_schema prt_op_relu_bwd = {
    .name = "relu_bwd",
    .doc = "gradient of relu from the forward output: dx = dy * (y > 0)",
    .min_in = 2,
    .max_in = 2,
    .n_out = 1,
    .infer = relu_bwd_infer,
    .flops = relu_bwd_flops,
    .inplace_in = 0,
    .ref = {.run = relu_bwd_ref},
    .fast = {.run = relu_bwd_fast},
    .grad = NULL,
    .grad_note = "backward-only op",
    .cuda = PRT_CUDA_KERNEL(.run = prt_cuda_relu_bwd),
    .cuda_bf16 = true,
};

/* relu: y = max(x, 0), NaN propagated. In place on its input. */
#include "ops/ops_util.h"
#include "ops/cuda/cuda_ops.h"

static int64_t relu_flops(const prt_infer_ctx *ic) { return prt_flops_per_elem(ic, 1); }

/* dx = relu_bwd(dy, y): from the output, so the forward may overwrite x. */
static prt_status relu_grad(prt_grad_ctx *gc) {
    if (gc->dy[0] == -1 || !prt_grad_wants(gc, 0)) return PRT_OK;
    if (gc->dy[0] == PRT_GRAD_ONE) return prt_grad_not_loss(gc);
    int in[2] = {gc->dy[0], gc->g->nodes[gc->node].out[0]};
    return prt_grad_emit(gc, "relu_bwd", in, 2, NULL, &gc->dx[0]);
}

static prt_status relu_ref(const prt_kernel_call *c) {
    PRT_CHECK(prt_kernel_check_f32(c, "relu"));
    const float *x = PRT_F32P(c->in[0]);
    float *y = PRT_F32P(c->out[0]);
    int64_t n = prt_shape_count(&c->in[0]->shape);
    for (int64_t i = 0; i < n; i++) y[i] = x[i] < 0 ? 0.0f : x[i];
    return PRT_OK;
}

typedef struct relu_args { const float *x; float *y; } relu_args;

static void relu_range(void *arg, int64_t lo, int64_t hi) {
    const relu_args *a = arg;
    const float *x = a->x;
    float *y = a->y;
#pragma omp simd
    for (int64_t i = lo; i < hi; i++) y[i] = x[i] < 0 ? 0.0f : x[i];
}

static prt_status relu_fast(const prt_kernel_call *c) {
    PRT_CHECK(prt_kernel_check_f32(c, "relu"));
    relu_args a = {PRT_F32P(c->in[0]), PRT_F32P(c->out[0])};
    prt_parallel_range(prt_shape_count(&c->in[0]->shape), PRT_PAR_MIN_ELEMS, relu_range, &a);
    return PRT_OK;
}

const prt_op_schema prt_op_relu = {
    .name = "relu",
    .doc = "rectified linear unit: y = max(x, 0)",
    .min_in = 1,
    .max_in = 1,
    .n_out = 1,
    .infer = prt_infer_same_shape,
    .flops = relu_flops,
    .inplace_in = 0,
    .ref = {.run = relu_ref},
    .fast = {.run = relu_fast},
    .grad = relu_grad,
    .cheap = true,
    .cuda = PRT_CUDA_KERNEL(.run = prt_cuda_relu),
    .cuda_bf16 = true,
};

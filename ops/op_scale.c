/* scale: y = by * x with a constant `by` (PolyNet's residual scaling). In place. */
#include "ops/ops_util.h"
#include "ops/cuda/cuda_ops.h"

enum { A_BY };

static const prt_attr_def scale_attrs[] = {
    PRT_ATTR_REQ("by", PRT_ATTR_FLOAT, 0, "the constant factor"),
};

/* dx = by * dy: the same op with the same attributes. */
static prt_status scale_grad(prt_grad_ctx *gc) {
    if (gc->dy[0] == -1 || !prt_grad_wants(gc, 0)) return PRT_OK;
    if (gc->dy[0] == PRT_GRAD_ONE) return prt_grad_not_loss(gc);
    return prt_grad_emit(gc, "scale", &gc->dy[0], 1, NULL, &gc->dx[0]);
}

static int64_t scale_flops(const prt_infer_ctx *ic) { return prt_flops_per_elem(ic, 1); }

static prt_status scale_ref(const prt_kernel_call *c) {
    PRT_CHECK(prt_kernel_check_f32(c, "scale"));
    const float *x = PRT_F32P(c->in[0]);
    float *y = PRT_F32P(c->out[0]);
    float by = (float)prt_attr_float(&c->attrs[A_BY]);
    int64_t n = prt_shape_count(&c->in[0]->shape);
    for (int64_t i = 0; i < n; i++) y[i] = by * x[i];
    return PRT_OK;
}

typedef struct scale_args { const float *x; float *y; float by; } scale_args;

static void scale_range(void *arg, int64_t lo, int64_t hi) {
    const scale_args *a = arg;
    const float *x = a->x;
    float *y = a->y, by = a->by;
#pragma omp simd
    for (int64_t i = lo; i < hi; i++) y[i] = by * x[i];
}

static prt_status scale_fast(const prt_kernel_call *c) {
    PRT_CHECK(prt_kernel_check_f32(c, "scale"));
    scale_args a = {PRT_F32P(c->in[0]), PRT_F32P(c->out[0]), (float)prt_attr_float(&c->attrs[A_BY])};
    prt_parallel_range(prt_shape_count(&c->in[0]->shape), PRT_PAR_MIN_ELEMS, scale_range, &a);
    return PRT_OK;
}

const prt_op_schema prt_op_scale = {
    .name = "scale",
    .doc = "multiplies by a constant: y = by * x",
    .min_in = 1,
    .max_in = 1,
    .n_out = 1,
    .attrs = scale_attrs,
    .n_attrs = 1,
    .infer = prt_infer_same_shape,
    .flops = scale_flops,
    .inplace_in = 0,
    .ref = {.run = scale_ref},
    .fast = {.run = scale_fast},
    .grad = scale_grad,
    .cheap = true,
    .cuda = PRT_CUDA_KERNEL(.run = prt_cuda_scale),
    .cuda_bf16 = true,
};

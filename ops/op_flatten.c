/* flatten: [N, d1, d2, ...] -> [N, d1*d2*...]. The bytes do not change, so the
 * op may run in place (then it copies nothing). */
#include "ops/ops_util.h"
#include "ops/cuda/cuda_ops.h"

#include <string.h>

static prt_status flatten_infer(prt_infer_ctx *ic) {
    const prt_shape *in = &ic->in[0];
    if (in->ndim < 1) return prt_infer_error(ic, "expects an input with a batch dimension, got a scalar");
    int64_t rest = 1;
    for (int i = 1; i < in->ndim; i++)
        if (!prt_mul_i64(rest, in->d[i], &rest)) return prt_infer_error(ic, "flattened size overflows");
    int64_t d[2] = {in->d[0], rest};
    ic->out[0] = prt_shape_make(2, d);
    return PRT_OK;
}

/* dx = reshape_like(dy, x): the bytes are the same, only the shape returns. */
static prt_status flatten_grad(prt_grad_ctx *gc) {
    if (gc->dy[0] == -1 || !prt_grad_wants(gc, 0)) return PRT_OK;
    if (gc->dy[0] == PRT_GRAD_ONE) return prt_grad_not_loss(gc);
    int in[2] = {gc->dy[0], gc->g->nodes[gc->node].in[0]};
    return prt_grad_emit(gc, "reshape_like", in, 2, NULL, &gc->dx[0]);
}

static int64_t flatten_flops(const prt_infer_ctx *ic) { return 0; }

static prt_status flatten_ref(const prt_kernel_call *c) { return prt_copy_kernel_ref(c, 0, "flatten"); }
static prt_status flatten_fast(const prt_kernel_call *c) { return prt_copy_kernel_fast(c, 0, "flatten"); }

const prt_op_schema prt_op_flatten = {
    .name = "flatten",
    .doc = "flattens every dimension after the first",
    .min_in = 1,
    .max_in = 1,
    .n_out = 1,
    .infer = flatten_infer,
    .flops = flatten_flops,
    .inplace_in = 0,
    .ref = {.run = flatten_ref},
    .fast = {.run = flatten_fast},
    .grad = flatten_grad,
    .cheap = true,
    .cuda = PRT_CUDA_KERNEL(.run = prt_cuda_flatten),
    .cuda_bf16 = true,
};

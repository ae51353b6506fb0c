/* batchnorm_relu: relu(batchnorm(x)) in one op, for the graph pass that fuses a
 * batchnorm whose output only a relu reads (scheduler/fuse.c). Same attributes
 * (eps, momentum), parameters (scale, shift, running mean and var, so weights
 * and checkpoints name them as batchnorm does), training behaviour (batch
 * statistics, running update, no update on a RECOMPUTE, synchronised batch norm
 * over c->comm) and arithmetic as batchnorm then relu: the kernels are
 * batchnorm's (ops/op_batchnorm.c) with relu's max(y, 0) applied to each output,
 * so the results are bit for bit those of the two ops.
 *
 * What it saves: the pre-ReLU tensor is never a value of the graph. Backward
 * (batchnorm_relu_bwd) recovers the ReLU mask from the output y, which relu_bwd
 * reads anyway (y > 0 exactly where the batch-normalised value is > 0), and
 * writes its dx over dy. On CUDA (ops/cuda/bn_relu.cu) the forward is one
 * read of x and one write of y after the statistics, instead of batchnorm's
 * write and relu's read and write of the intermediate. */
#include "ops/bwd_util.h"
#include "ops/cuda/cuda_ops.h"

enum { P_SCALE, P_SHIFT, P_MEAN, P_VAR };

/* batchnorm's multiply-add and the max */
static int64_t bnr_flops(const prt_infer_ctx *ic) { return prt_flops_per_elem(ic, 3); }

static prt_status bnr_ref(const prt_kernel_call *c) { return prt_bn_fwd_ref(c, true); }
static prt_status bnr_fast(const prt_kernel_call *c) { return prt_bn_fwd_fast(c, true); }

/* One batchnorm_relu_bwd(dy, y, x, scale, mean, var) node, like batchnorm's
 * gradient with the forward output y in second place for the mask. */
static prt_status bnr_grad(prt_grad_ctx *gc) {
    prt_graph *g = gc->g;
    int dy = gc->dy[0];
    if (dy == -1) return PRT_OK;
    const prt_node *nd = &g->nodes[gc->node];
    if (dy == PRT_GRAD_ONE)
        return prt_error(g->ctx, PRT_ERR_INVALID, "layer '%s' (batchnorm_relu): its output is not a scalar loss",
                         nd->name);
    int in[6] = {dy, nd->out[0], nd->in[0], nd->in[1 + P_SCALE], nd->in[1 + P_MEAN], nd->in[1 + P_VAR]}, outs[3];
    PRT_CHECK(prt_grad_emit(gc, "batchnorm_relu_bwd", in, 6, NULL, outs));
    if (g->values[in[2]].kind != PRT_VAL_INPUT) gc->dx[0] = outs[0];
    gc->dx[1 + P_SCALE] = outs[1];
    gc->dx[1 + P_SHIFT] = outs[2];
    return PRT_OK;
}

const prt_op_schema prt_op_batchnorm_relu = {
    .name = "batchnorm_relu",
    .doc = "batch normalization over dim 1 followed by relu, fused (the pre-relu tensor is never stored)",
    .min_in = 1,
    .max_in = 1,
    .n_out = 1,
    .attrs = prt_batchnorm_attrs,
    .n_attrs = PRT_BATCHNORM_N_ATTRS,
    .params = prt_batchnorm_params,
    .n_params = PRT_BATCHNORM_N_PARAMS,
    .infer = prt_bn_infer,
    .flops = bnr_flops,
    .inplace_in = 0,
    .workspace = prt_bn_workspace,
    .ref = {.run = bnr_ref},
    .fast = {.prepare = prt_bn_fwd_prepare, .run = bnr_fast, .release = prt_bn_fwd_release},
    .grad = bnr_grad,
    .cheap = true,
    .cuda = PRT_CUDA_KERNEL(.run = prt_cuda_bn_relu),
    .cuda_bf16 = true,
    .bf16_f32_params = 0xF, /* scale, shift, running mean and variance */
};

/* maxpool: 2-D max pooling over [N, C, H, W]; padding never wins the max.
 * The shared implementation is in ops/pool.c. */
#include "ops/ops_util.h"
#include "ops/cuda/cudnn_util.h"

const prt_attr_def prt_maxpool_attrs[PRT_POOL_GLOBAL + 1] = {
    PRT_ATTR_OPT_INTS_NONE("kernel", 1, "window size k or [kh, kw] (required unless global)"),
    PRT_ATTR_OPT_INTS_NONE("stride", 1, "step (default: the kernel)"),
    PRT_ATTR_OPT_INTS("pad", 0, 0, "p, [ph, pw] or [top, left, bottom, right]"),
    PRT_ATTR_OPT_BOOL("global", 0, "pool the whole plane"),
};

/* dx = maxpool_bwd(dy, x): the backward finds each window's winner again in x. */
static prt_status maxpool_grad(prt_grad_ctx *gc) {
    if (gc->dy[0] == -1 || !prt_grad_wants(gc, 0)) return PRT_OK;
    if (gc->dy[0] == PRT_GRAD_ONE) return prt_grad_not_loss(gc);
    int in[2] = {gc->dy[0], gc->g->nodes[gc->node].in[0]};
    return prt_grad_emit(gc, "maxpool_bwd", in, 2, NULL, &gc->dx[0]);
}

static prt_status maxpool_ref(const prt_kernel_call *c) { return prt_pool_ref(c, false); }
static prt_status maxpool_prepare(const prt_kernel_call *c, void **state) { return prt_pool_fast_prepare(c, false, state); }
static size_t maxpool_workspace(const prt_infer_ctx *ic) { return prt_pool_workspace(ic, false); }

const prt_op_schema prt_op_maxpool = {
    .name = "maxpool",
    .doc = "2-D max pooling",
    .min_in = 1,
    .max_in = 1,
    .n_out = 1,
    .attrs = prt_maxpool_attrs,
    .n_attrs = 4,
    .infer = prt_pool_infer,
    .flops = prt_pool_flops,
    .inplace_in = -1,
    .workspace = maxpool_workspace,
    .ref = {.run = maxpool_ref},
    .fast = {.prepare = maxpool_prepare, .run = prt_pool_fast_run, .release = prt_pool_fast_release},
    .grad = maxpool_grad,
    .cheap = true,
    .cuda = PRT_CUDNN_KERNEL(NULL, prt_cudnn_maxpool, NULL),
    .cuda_bf16 = true,
};

/* avgpool: 2-D average pooling over [N, C, H, W]; count_include_pad decides
 * whether padding counts in the divisor. The shared implementation is in
 * ops/pool.c. */
#include "ops/ops_util.h"
#include "ops/cuda/cudnn_util.h"

const prt_attr_def prt_avgpool_attrs[PRT_POOL_COUNT_PAD + 1] = {
    PRT_ATTR_OPT_INTS_NONE("kernel", 1, "window size k or [kh, kw] (required unless global)"),
    PRT_ATTR_OPT_INTS_NONE("stride", 1, "step (default: the kernel)"),
    PRT_ATTR_OPT_INTS("pad", 0, 0, "p, [ph, pw] or [top, left, bottom, right]"),
    PRT_ATTR_OPT_BOOL("global", 0, "pool the whole plane"),
    PRT_ATTR_OPT_BOOL("count_include_pad", 1, "divide by the full window, padding included"),
};

/* dx = avgpool_bwd(dy, x), x for its shape only. */
static prt_status avgpool_grad(prt_grad_ctx *gc) {
    if (gc->dy[0] == -1 || !prt_grad_wants(gc, 0)) return PRT_OK;
    if (gc->dy[0] == PRT_GRAD_ONE) return prt_grad_not_loss(gc);
    int in[2] = {gc->dy[0], gc->g->nodes[gc->node].in[0]};
    return prt_grad_emit(gc, "avgpool_bwd", in, 2, NULL, &gc->dx[0]);
}

static prt_status avgpool_ref(const prt_kernel_call *c) { return prt_pool_ref(c, true); }
static prt_status avgpool_prepare(const prt_kernel_call *c, void **state) { return prt_pool_fast_prepare(c, true, state); }
static size_t avgpool_workspace(const prt_infer_ctx *ic) { return prt_pool_workspace(ic, true); }

const prt_op_schema prt_op_avgpool = {
    .name = "avgpool",
    .doc = "2-D average pooling",
    .min_in = 1,
    .max_in = 1,
    .n_out = 1,
    .attrs = prt_avgpool_attrs,
    .n_attrs = 5,
    .infer = prt_pool_infer,
    .flops = prt_pool_flops,
    .inplace_in = -1,
    .workspace = avgpool_workspace,
    .ref = {.run = avgpool_ref},
    .fast = {.prepare = avgpool_prepare, .run = prt_pool_fast_run, .release = prt_pool_fast_release},
    .grad = avgpool_grad,
    .cuda = PRT_CUDNN_KERNEL(NULL, prt_cudnn_avgpool, NULL),
    .cuda_bf16 = true,
};

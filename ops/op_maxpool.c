/* maxpool: 2-D max pooling over [N, C, H, W]; padding never wins the max.
 * The shared implementation is in ops/pool.c. */
#include "ops/ops_util.h"

static const prt_attr_def maxpool_attrs[] = {
    PRT_ATTR_OPT_INTS_NONE("kernel", 1, "window size k or [kh, kw] (required unless global)"),
    PRT_ATTR_OPT_INTS_NONE("stride", 1, "step (default: the kernel)"),
    PRT_ATTR_OPT_INTS("pad", 0, 0, "p, [ph, pw] or [top, left, bottom, right]"),
    PRT_ATTR_OPT_BOOL("global", 0, "pool the whole plane"),
};

static prt_status maxpool_ref(const prt_kernel_call *c) { return prt_pool_ref(c, false); }
static prt_status maxpool_prepare(const prt_kernel_call *c, void **state) { return prt_pool_fast_prepare(c, false, state); }
static size_t maxpool_workspace(const prt_infer_ctx *ic) { return prt_pool_workspace(ic, false); }

const prt_op_schema prt_op_maxpool = {
    .name = "maxpool",
    .doc = "2-D max pooling",
    .min_in = 1,
    .max_in = 1,
    .n_out = 1,
    .attrs = maxpool_attrs,
    .n_attrs = 4,
    .infer = prt_pool_infer,
    .flops = prt_pool_flops,
    .inplace_in = -1,
    .workspace = maxpool_workspace,
    .ref = {.run = maxpool_ref},
    .fast = {.prepare = maxpool_prepare, .run = prt_pool_fast_run, .release = prt_pool_fast_release},
};

/* reshape_like: x's elements in `like`'s shape, the gradient of flatten. The
 * bytes do not move, so it runs in place on x (and then copies nothing);
 * `like` is read for its shape only. */
#include "ops/ops_util.h"
#include "ops/cuda/cuda_ops.h"

#include <string.h>

enum { IN_X, IN_LIKE };

static prt_status reshape_like_infer(prt_infer_ctx *ic) {
    int64_t nx = prt_ops_numel(&ic->in[IN_X]), nl = prt_ops_numel(&ic->in[IN_LIKE]);
    if (nx != nl) {
        char a[160], b[160];
        prt_shape_str(&ic->in[IN_X], a, sizeof a);
        prt_shape_str(&ic->in[IN_LIKE], b, sizeof b);
        return prt_infer_error(ic, "x has shape %s (%lld elements) but like has %s (%lld elements)", a, (long long)nx,
                               b, (long long)nl);
    }
    ic->out[0] = ic->in[IN_LIKE];
    return PRT_OK;
}

static int64_t reshape_like_flops(const prt_infer_ctx *ic) { return 0; }

static prt_status reshape_like_ref(const prt_kernel_call *c) { return prt_copy_kernel_ref(c, IN_X, "reshape_like"); }
static prt_status reshape_like_fast(const prt_kernel_call *c) { return prt_copy_kernel_fast(c, IN_X, "reshape_like"); }

const prt_op_schema prt_op_reshape_like = {
    .name = "reshape_like",
    .doc = "x's elements in like's shape (gradient of flatten)",
    .min_in = 2,
    .max_in = 2,
    .n_out = 1,
    .infer = reshape_like_infer,
    .flops = reshape_like_flops,
    .inplace_in = IN_X,
    .ref = {.run = reshape_like_ref},
    .fast = {.run = reshape_like_fast},
    .grad = NULL,
    .grad_note = "backward-only op",
    .shape_only = 1u << IN_LIKE,
    .cuda = PRT_CUDA_KERNEL(.run = prt_cuda_reshape_like),
    .cuda_bf16 = true,
};

/* reshape_like: x's elements in `like`'s shape, the gradient of flatten. The
 * bytes do not move, so it runs in place on x (and then copies nothing);
 * `like` is read for its shape only. */
#include "ops/ops_util.h"

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

static prt_status reshape_like_ref(const prt_kernel_call *c) {
    PRT_CHECK(prt_kernel_check_f32(c, "reshape_like"));
    const float *x = PRT_F32P(c->in[IN_X]);
    float *y = PRT_F32P(c->out[0]);
    int64_t n = prt_shape_count(&c->out[0]->shape);
    if (x != y)
        for (int64_t i = 0; i < n; i++) y[i] = x[i];
    return PRT_OK;
}

typedef struct copy_args { const float *x; float *y; } copy_args;

static void copy_range(void *arg, int64_t lo, int64_t hi) {
    const copy_args *a = arg;
    memcpy(a->y + lo, a->x + lo, (size_t)(hi - lo) * sizeof(float));
}

static prt_status reshape_like_fast(const prt_kernel_call *c) {
    PRT_CHECK(prt_kernel_check_f32(c, "reshape_like"));
    copy_args a = {PRT_F32P(c->in[IN_X]), PRT_F32P(c->out[0])};
    if (a.x != a.y) prt_parallel_range(prt_shape_count(&c->out[0]->shape), PRT_PAR_MIN_ELEMS, copy_range, &a);
    return PRT_OK;
}

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
};

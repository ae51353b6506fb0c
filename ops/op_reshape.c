/* reshape: the same elements in another shape, given over the whole batched
 * tensor with ONNX's rules: 0 copies the input's dim at that position, and
 * one -1 takes whatever size makes the element counts agree. A shape that
 * names the batch dim as a number only fits one batch size; 0 or -1 there
 * keeps the graph valid for any. The bytes do not move, so the op may run in
 * place (then it copies nothing); the gradient is reshape_like. */
#include "ops/ops_util.h"
#include "ops/cuda/cuda_ops.h"

#include <string.h>

enum { A_SHAPE };

static const prt_attr_def reshape_attrs[] = {
    PRT_ATTR_REQ("shape", PRT_ATTR_INTS, -1, "the new shape: 0 keeps the input dim, one -1 is inferred"),
};

static prt_status reshape_infer(prt_infer_ctx *ic) {
    const prt_shape *x = &ic->in[0];
    const prt_attr *a = &ic->attrs[A_SHAPE];
    char xb[160];
    if (a->n < 1 || a->n > PRT_MAX_DIMS)
        return prt_infer_error(ic, "shape has %d values (1 to %d allowed)", a->n, PRT_MAX_DIMS);
    prt_shape y = {.ndim = a->n};
    int infer_at = -1;
    int64_t known = 1;
    for (int i = 0; i < a->n; i++) {
        int64_t v = a->i[i];
        if (v == 0) {
            if (i >= x->ndim)
                return prt_infer_error(ic, "shape value 0 at position %d copies an input dim, but the input %s has %d",
                                       i, prt_shape_str(x, xb, sizeof xb), x->ndim);
            v = x->d[i];
        } else if (v == -1) {
            if (infer_at >= 0) return prt_infer_error(ic, "shape has more than one -1 (positions %d and %d)", infer_at, i);
            infer_at = i;
            continue;
        } else if (v < -1) {
            return prt_infer_error(ic, "shape value %lld at position %d is negative", (long long)v, i);
        }
        y.d[i] = v;
        if (!prt_mul_i64(known, v, &known) || known > PRT_MAX_ELEMS)
            return prt_infer_error(ic, "shape has more than 2^40 elements");
    }
    int64_t n = prt_ops_numel(x);
    if (infer_at >= 0) {
        if (known == 0 || n % known != 0)
            return prt_infer_error(ic, "cannot infer the -1 at position %d: the input %s has %lld elements, not a "
                                   "multiple of %lld", infer_at, prt_shape_str(x, xb, sizeof xb), (long long)n,
                                   (long long)known);
        y.d[infer_at] = n / known;
    } else if (known != n) {
        char yb[160];
        return prt_infer_error(ic, "cannot reshape %s (%lld elements) to %s (%lld elements)",
                               prt_shape_str(x, xb, sizeof xb), (long long)n, prt_shape_str(&y, yb, sizeof yb),
                               (long long)known);
    }
    ic->out[0] = y;
    return PRT_OK;
}

static int64_t reshape_flops(const prt_infer_ctx *ic) { return 0; }

static prt_status reshape_grad(prt_grad_ctx *gc) {
    if (gc->dy[0] == -1 || !prt_grad_wants(gc, 0)) return PRT_OK;
    if (gc->dy[0] == PRT_GRAD_ONE) return prt_grad_not_loss(gc);
    int in[2] = {gc->dy[0], gc->g->nodes[gc->node].in[0]};
    prt_attr none[1] = {{0}}; /* reshape_like has no attributes; NULL would mean "copy reshape's" */
    return prt_grad_emit(gc, "reshape_like", in, 2, none, &gc->dx[0]);
}

static prt_status reshape_ref(const prt_kernel_call *c) { return prt_copy_kernel_ref(c, 0, "reshape"); }
static prt_status reshape_fast(const prt_kernel_call *c) { return prt_copy_kernel_fast(c, 0, "reshape"); }

const prt_op_schema prt_op_reshape = {
    .name = "reshape",
    .doc = "the same elements in another shape (0 keeps an input dim, one -1 is inferred)",
    .min_in = 1,
    .max_in = 1,
    .n_out = 1,
    .attrs = reshape_attrs,
    .n_attrs = 1,
    .infer = reshape_infer,
    .flops = reshape_flops,
    .inplace_in = 0,
    .ref = {.run = reshape_ref},
    .fast = {.run = reshape_fast},
    .grad = reshape_grad,
    .cheap = true,
    .cuda = PRT_CUDA_KERNEL(.run = prt_cuda_reshape),
    .cuda_bf16 = true,
};

/* cast: y = x converted to the dtype `to` ("f32" or "bf16"), same shape.
 * f32 -> bf16 rounds to nearest even, bf16 -> f32 is exact, and a cast to the
 * input's own dtype is a copy (ops/bf16.h has the conversions, shared with the
 * CUDA kernel bit for bit). It is the seam of mixed precision
 * (scheduler/precision.c): the data input and the f32 master weights are cast
 * to bf16 before use and the logits back to f32 before the loss. Its gradient
 * casts back to the input's dtype, so a weight's bf16 gradient arrives as f32
 * at the optimizer. The only op whose CPU kernel handles bf16. */
#include "ops/bf16.h"
#include "ops/ops_util.h"
#include "ops/cuda/cuda_ops.h"

enum { A_TO };

static const prt_attr_def cast_attrs[] = {
    {.name = "to", .type = PRT_ATTR_STRING, .def = {.type = PRT_ATTR_STRING, .s = "f32"},
     .doc = "the output dtype: f32 (default) or bf16"},
};

static bool cast_dtype_ok(prt_dtype t) { return t == PRT_F32 || t == PRT_BF16; }

static prt_status cast_infer(prt_infer_ctx *ic) {
    const char *to = ic->attrs[A_TO].s;
    prt_dtype t;
    if (!to || !prt_dtype_from_name(to, &t) || !cast_dtype_ok(t))
        return prt_infer_error(ic, "`to` must be f32 or bf16, got '%s'", to ? to : "");
    if (!cast_dtype_ok(ic->in_dtype))
        return prt_infer_error(ic, "casts f32 and bf16 only; the input is %s", prt_dtype_name(ic->in_dtype));
    ic->out[0] = ic->in[0];
    ic->out_dtype = t;
    return PRT_OK;
}

static int64_t cast_flops(const prt_infer_ctx *ic) { return prt_flops_per_elem(ic, 1); }

/* dx = cast(dy, to = x's dtype). */
static prt_status cast_grad(prt_grad_ctx *gc) {
    if (gc->dy[0] == -1 || !prt_grad_wants(gc, 0)) return PRT_OK;
    if (gc->dy[0] == PRT_GRAD_ONE) return prt_grad_not_loss(gc);
    prt_graph *g = gc->g;
    prt_attr attrs[1];
    prt_attrs_default(&prt_op_cast, attrs);
    attrs[A_TO].s = prt_graph_intern(g, prt_dtype_name(g->values[g->nodes[gc->node].in[0]].dtype));
    if (!attrs[A_TO].s) return prt_error(g->ctx, PRT_ERR_NOMEM, "gradient builder of cast: out of memory");
    attrs[A_TO].set = true;
    return prt_grad_emit(gc, "cast", &gc->dy[0], 1, attrs, &gc->dx[0]);
}

static prt_status cast_check(const prt_kernel_call *c, int64_t *n) {
    if (c->n_in != 1 || c->n_out != 1)
        return prt_error(c->ctx, PRT_ERR_INTERNAL, "cast kernel: called with %d inputs and %d outputs", c->n_in,
                         c->n_out);
    const prt_tensor *x = c->in[0], *y = c->out[0];
    if (!cast_dtype_ok(x->dtype) || !cast_dtype_ok(y->dtype))
        return prt_error(c->ctx, PRT_ERR_UNSUPPORTED, "cast kernel: %s to %s; only f32 and bf16 are cast",
                         prt_dtype_name(x->dtype), prt_dtype_name(y->dtype));
    if (!prt_tensor_is_contiguous(x) || !prt_tensor_is_contiguous(y))
        return prt_error(c->ctx, PRT_ERR_UNSUPPORTED, "cast kernel: operands must be contiguous");
    *n = prt_shape_count(&x->shape);
    if (prt_shape_count(&y->shape) != *n)
        return prt_error(c->ctx, PRT_ERR_SHAPE, "cast kernel: %lld elements in, %lld out", (long long)*n,
                         (long long)prt_shape_count(&y->shape));
    return PRT_OK;
}

static prt_status cast_ref(const prt_kernel_call *c) {
    int64_t n = 0;
    PRT_CHECK(cast_check(c, &n));
    const prt_tensor *x = c->in[0], *y = c->out[0];
    const void *src = prt_tensor_data(x);
    void *dst = prt_tensor_data(y);
    if (x->dtype == y->dtype) {
        if (src != dst && n > 0) memmove(dst, src, (size_t)n * prt_dtype_size(x->dtype));
    } else if (x->dtype == PRT_F32) {
        const float *a = src;
        uint16_t *b = dst;
        for (int64_t i = 0; i < n; i++) b[i] = prt_bf16_from_f32(a[i]);
    } else {
        const uint16_t *a = src;
        float *b = dst;
        for (int64_t i = 0; i < n; i++) b[i] = prt_bf16_to_f32(a[i]);
    }
    return PRT_OK;
}

const prt_op_schema prt_op_cast = {
    .name = "cast",
    .doc = "dtype conversion (f32 <-> bf16, round to nearest even): y = x as `to`",
    .min_in = 1,
    .max_in = 1,
    .n_out = 1,
    .attrs = cast_attrs,
    .n_attrs = 1,
    .infer = cast_infer,
    .flops = cast_flops,
    .inplace_in = -1,
    .ref = {.run = cast_ref},
    .grad = cast_grad,
    .cheap = true,
    .cuda = PRT_CUDA_KERNEL(.run = prt_cuda_cast),
    .cuda_bf16 = true,
};

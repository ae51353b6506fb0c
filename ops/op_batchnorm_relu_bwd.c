/* batchnorm_relu_bwd: the gradient of batchnorm_relu. Inputs (dy, y, x,
 * scale[, mean, var]) with y the forward output; outputs dx, dscale, dshift;
 * batchnorm's attributes. It is relu_bwd then batchnorm_bwd, bit for bit:
 * dx first receives relu_bwd's dy where y > 0, else 0, and batchnorm_bwd's
 * kernel (ops/op_batchnorm_bwd.c) then runs with that as its dy, in place
 * (its kernels read each dy element before they write that dx element). So
 * the masked gradient needs no buffer of its own, and dx may share dy's memory
 * (inplace_in 0), as relu_bwd's output did. The mask comes from y rather than
 * the pre-relu value, which the fusion never stores: y > 0 exactly where it is
 * > 0. */
#include "ops/bwd_util.h"
#include "ops/cuda/cuda_ops.h"

/* batchnorm_bwd's input shapes with y checked against x */
static prt_status bnrb_infer(prt_infer_ctx *ic) {
    if (ic->n_in != 4 && ic->n_in != 6)
        return prt_infer_error(ic, "takes (dy, y, x, scale) or (dy, y, x, scale, mean, var), got %d inputs", ic->n_in);
    if (!prt_shape_eq(&ic->in[1], &ic->in[2])) {
        char a[160], b[160];
        prt_shape_str(&ic->in[1], a, sizeof a);
        prt_shape_str(&ic->in[2], b, sizeof b);
        return prt_infer_error(ic, "the forward output y is %s, expected %s like the input x", a, b);
    }
    prt_shape in[5];
    in[0] = ic->in[0];
    for (int i = 2; i < ic->n_in; i++) in[i - 1] = ic->in[i];
    prt_infer_ctx b = *ic;
    b.n_in = ic->n_in - 1;
    b.in = in;
    PRT_CHECK(prt_bn_bwd_infer(&b));
    /* bf16 activations: batchnorm_bwd's rule, f32 gradients of the scale and shift */
    ic->out_dtype_mask = b.out_dtype_mask;
    for (int k = 0; k < 4; k++) ic->out_dtypes[k] = b.out_dtypes[k];
    return PRT_OK;
}

/* relu_bwd's one and batchnorm_bwd's ten */
static int64_t bnrb_flops(const prt_infer_ctx *ic) { return prt_flop_mul(11, prt_ops_numel(&ic->in[2])); }

static size_t bnrb_workspace(const prt_infer_ctx *ic) {
    prt_shape in[5];
    in[0] = ic->in[0];
    for (int i = 2; i < ic->n_in && i < 6; i++) in[i - 1] = ic->in[i];
    prt_infer_ctx b = *ic;
    b.n_in = ic->n_in - 1;
    b.in = in;
    return prt_bn_bwd_workspace(&b);
}

/* batchnorm_bwd's call: y dropped, dy replaced by dx (holding the masked dy) */
typedef struct bnrb_call {
    prt_kernel_call c;
    const prt_tensor *in[5];
} bnrb_call;

static prt_status bnrb_call_of(const prt_kernel_call *c, bnrb_call *b) {
    if ((c->n_in != 4 && c->n_in != 6) || c->n_out != 3)
        return prt_error(c->ctx, PRT_ERR_INTERNAL,
                         "batchnorm_relu_bwd kernel: %d inputs and %d outputs, expected 4 or 6 and 3", c->n_in,
                         c->n_out);
    b->c = *c;
    b->in[0] = c->out[0];
    for (int i = 2; i < c->n_in; i++) b->in[i - 1] = c->in[i];
    b->c.in = b->in;
    b->c.n_in = c->n_in - 1;
    return PRT_OK;
}

typedef struct bnrb_mask_args { const float *dy, *y; float *dx; } bnrb_mask_args;

/* relu_bwd's expression (ops/op_relu_bwd.c) */
static void bnrb_mask_range(void *arg, int64_t lo, int64_t hi) {
    const bnrb_mask_args *a = arg;
    const float *dy = a->dy, *y = a->y;
    float *dx = a->dx;
#pragma omp simd
    for (int64_t i = lo; i < hi; i++) dx[i] = y[i] > 0 ? dy[i] : 0.0f;
}

static prt_status bnrb_mask(const prt_kernel_call *c, bool par) {
    PRT_CHECK(prt_kernel_check_f32(c, "batchnorm_relu_bwd"));
    if (!prt_shape_eq(&c->in[0]->shape, &c->in[1]->shape) || !prt_shape_eq(&c->in[0]->shape, &c->out[0]->shape))
        return prt_error(c->ctx, PRT_ERR_SHAPE, "batchnorm_relu_bwd kernel: dy, y and dx differ in shape");
    bnrb_mask_args a = {PRT_F32P(c->in[0]), PRT_F32P(c->in[1]), PRT_F32P(c->out[0])};
    int64_t n = prt_shape_count(&c->in[0]->shape);
    if (par) prt_parallel_range(n, PRT_PAR_MIN_ELEMS, bnrb_mask_range, &a);
    else bnrb_mask_range(&a, 0, n);
    return PRT_OK;
}

static prt_status bnrb_ref(const prt_kernel_call *c) {
    bnrb_call b;
    PRT_CHECK(bnrb_call_of(c, &b));
    PRT_CHECK(bnrb_mask(c, false));
    return prt_bn_bwd_ref(&b.c);
}

static prt_status bnrb_prepare(const prt_kernel_call *c, void **state) {
    bnrb_call b;
    PRT_CHECK(bnrb_call_of(c, &b));
    return prt_bn_bwd_prepare(&b.c, state);
}

static prt_status bnrb_fast(const prt_kernel_call *c) {
    bnrb_call b;
    PRT_CHECK(bnrb_call_of(c, &b));
    PRT_CHECK(bnrb_mask(c, true));
    return prt_bn_bwd_fast(&b.c);
}

const prt_op_schema prt_op_batchnorm_relu_bwd = {
    .name = "batchnorm_relu_bwd",
    .doc = "gradient of batchnorm_relu: (dy, y, x, scale[, mean, var]) -> dx, dscale, dshift",
    .min_in = 4,
    .max_in = 6,
    .n_out = 3,
    .attrs = prt_batchnorm_attrs,
    .n_attrs = PRT_BATCHNORM_N_ATTRS,
    .infer = bnrb_infer,
    .flops = bnrb_flops,
    .inplace_in = 0,
    .workspace = bnrb_workspace,
    .ref = {.run = bnrb_ref},
    .fast = {.prepare = bnrb_prepare, .run = bnrb_fast, .release = prt_bn_bwd_release},
    .grad = NULL,
    .grad_note = "backward-only op",
    .cuda = PRT_CUDA_KERNEL(.run = prt_cuda_bn_relu_bwd),
    .cuda_bf16 = true,
};

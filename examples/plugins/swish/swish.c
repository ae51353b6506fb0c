/* A Parrots operator plugin: Swish (SiLU with a slope), forward and backward,
 * on the CPU here and on CUDA in swish_cuda.cu (docs/writing-plugins.md).
 *
 *     myorg.swish(x) -> y                y  = x * sigmoid(beta * x)
 *     myorg.swish_grad(dy, x) -> dx      dx = dy * s * (1 + beta * x * (1 - s)),  s = sigmoid(beta * x)
 *
 * beta is a FLOAT attribute, 1.0 by default (beta = 1: SiLU). The backward is
 * the plugin's own op, emitted by swish's gradient builder, so a network that
 * uses myorg.swish trains without anything in Parrots knowing about Swish.
 * Both ops work in place (y over x, dx over dy): elementwise kernels read
 * element i before writing it. float32 only.
 *
 * Build: CMakeLists.txt (find_package(Parrots)) or Makefile (pkg-config).
 * This file includes only the public header <parrots/plugin.h> and libc.
 */
#include <math.h>
#include <stdint.h>

#include <parrots/plugin.h>

#include "swish_cuda.h"

/* ---- the attribute, shared by both ops ----------------------------------------
 * One array for both: swish's gradient builder passes attrs = NULL to
 * host->grad_emit, which copies the forward node's attributes, and that is
 * allowed only when the two ops declare the same prt_plugin_attr_def array. */
enum { SWISH_ATTR_BETA = 0 };
static const prt_plugin_attr_def swish_attrs[] = {
    {.name = "beta", .type = PRT_PLUGIN_ATTR_FLOAT, .required = false, .def = {.f = 1.0},
     .min = INT64_MIN, .doc = "slope of the sigmoid gate: y = x * sigmoid(beta * x)"},
};

/* ---- shape and dtype inference ------------------------------------------------- */

static int swish_infer(const prt_plugin_host *h, prt_plugin_infer *ic) {
    if (ic->in_dtype[0] != PRT_PLUGIN_F32)
        return h->error(ic->host_ctx, "input 'x': expected float32, found dtype %d", (int)ic->in_dtype[0]);
    return prt_plugin_infer_same(h, ic);
}

static int same_shape(const prt_plugin_shape *a, const prt_plugin_shape *b) {
    if (a->ndim != b->ndim) return 0;
    for (int32_t k = 0; k < a->ndim; k++)
        if (a->d[k] != b->d[k]) return 0;
    return 1;
}

/* swish_grad(dy, x): dx has x's shape; dy must have it too. */
static int swish_grad_infer(const prt_plugin_host *h, prt_plugin_infer *ic) {
    if (ic->in_dtype[0] != PRT_PLUGIN_F32 || ic->in_dtype[1] != PRT_PLUGIN_F32)
        return h->error(ic->host_ctx, "inputs 'dy', 'x': expected float32, found dtypes %d, %d",
                        (int)ic->in_dtype[0], (int)ic->in_dtype[1]);
    if (!same_shape(&ic->in[0], &ic->in[1]))
        return h->error(ic->host_ctx, "inputs 'dy' and 'x': expected the same shape (%d and %d dims)",
                        (int)ic->in[0].ndim, (int)ic->in[1].ndim);
    ic->out[0] = ic->in[1];
    ic->out_dtype[0] = PRT_PLUGIN_F32;
    return 0;
}

/* About 5 floating-point operations an element forward (a multiply, an exp,
 * an add, a divide, a multiply) and 9 backward: for profiles and simulation. */
static int64_t swish_flops(const prt_plugin_host *h, const prt_plugin_infer *ic) {
    return 5 * h->shape_numel(&ic->in[0]);
}
static int64_t swish_grad_flops(const prt_plugin_host *h, const prt_plugin_infer *ic) {
    return 9 * h->shape_numel(&ic->in[1]);
}

/* ---- CPU kernels ------------------------------------------------------------------ */

static int swish_cpu(const prt_plugin_host *h, const prt_plugin_call *c) {
    const float beta = (float)c->attrs[SWISH_ATTR_BETA].f;
    const float *x = c->in[0].data;
    float *y = c->out[0].data; /* may be x itself (in place) */
    const int64_t n = h->numel(&c->in[0]);
    for (int64_t i = 0; i < n; i++) {
        const float xi = x[i];
        /* expf overflows to inf for very negative beta*x: the quotient is then 0, as it should be */
        y[i] = xi / (1.0f + expf(-beta * xi));
    }
    return 0;
}

static int swish_grad_cpu(const prt_plugin_host *h, const prt_plugin_call *c) {
    const float beta = (float)c->attrs[SWISH_ATTR_BETA].f;
    const float *dy = c->in[0].data;
    const float *x = c->in[1].data;
    float *dx = c->out[0].data; /* may be dy itself (in place) */
    const int64_t n = h->numel(&c->in[1]);
    for (int64_t i = 0; i < n; i++) {
        const float xi = x[i];
        const float s = 1.0f / (1.0f + expf(-beta * xi));
        dx[i] = dy[i] * s * (1.0f + beta * xi * (1.0f - s));
    }
    return 0;
}

/* ---- the gradient builder ------------------------------------------------------------
 * dx = swish_grad(dy, x), with the forward node's attributes (attrs = NULL). */
static int swish_grad(const prt_plugin_host *h, prt_plugin_grad *g) {
    if (g->dy[0] < 0) return 0; /* nothing flows back into y: x gets no gradient */
    const int32_t in[2] = {g->dy[0], g->x[0]};
    return h->grad_emit(g->host_ctx, "myorg.swish_grad", in, 2, NULL, &g->dx[0]);
}

/* ---- the plugin -------------------------------------------------------------------------- */

static const prt_plugin_op swish_ops[] = {
    {PRT_PLUGIN_OP_INIT, .name = "myorg.swish", .version = 1,
     .doc = "y = x * sigmoid(beta * x) (Swish; SiLU at beta = 1), float32",
     .min_in = 1, .max_in = 1, .n_out = 1, .attrs = swish_attrs, .n_attrs = 1,
     .infer = swish_infer, .cpu = swish_cpu, .cuda = SWISH_CUDA_FORWARD, .grad = swish_grad,
     .inplace = true, .inplace_in = 0, .flops = swish_flops,
     .onnx_domain = "myorg", .onnx_op = "Swish"},
    {PRT_PLUGIN_OP_INIT, .name = "myorg.swish_grad", .version = 1,
     .doc = "dx = dy * s * (1 + beta * x * (1 - s)), s = sigmoid(beta * x): the backward of myorg.swish",
     .min_in = 2, .max_in = 2, .n_out = 1, .attrs = swish_attrs, .n_attrs = 1,
     .infer = swish_grad_infer, .cpu = swish_grad_cpu, .cuda = SWISH_CUDA_BACKWARD,
     .grad = NULL, .grad_note = "myorg.swish has no second derivative",
     .inplace = true, .inplace_in = 0, .flops = swish_grad_flops},
};

static const prt_plugin_desc swish_desc = {
    PRT_PLUGIN_DESC_INIT, .name = "myorg", .version = "1.0.0",
    .ops = swish_ops, .n_ops = (int32_t)(sizeof swish_ops / sizeof swish_ops[0]),
};

PRT_PLUGIN_EXPORT const prt_plugin_desc *prt_plugin_v1(void) { return &swish_desc; }

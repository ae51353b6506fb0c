/* linear_bwd_data: the gradient of linear with respect to its input,
 * dx[n, j] = sum_o dy[n, o] * w[o, j], reshaped to x's shape (linear flattens
 * every dim after the first). Inputs (dy, w, x), x read for its shape only;
 * linear's attributes. Fast path: oneDNN inner_product backward data. */
#include "ops/bwd_util.h"
#include "ops/cuda/cudnn_util.h"

static prt_status lbd_infer(prt_infer_ctx *ic) { return prt_linear_bwd_infer(ic, PRT_LINEAR_BWD_DATA); }
static int64_t lbd_flops(const prt_infer_ctx *ic) { return prt_linear_bwd_flops(ic, PRT_LINEAR_BWD_DATA); }
static size_t lbd_workspace(const prt_infer_ctx *ic) { return prt_linear_bwd_workspace(ic, PRT_LINEAR_BWD_DATA); }

static prt_status lbd_ref(const prt_kernel_call *c) {
    PRT_CHECK(prt_linear_bwd_check(c, PRT_LINEAR_BWD_DATA));
    prt_linear_dims d;
    prt_linear_bwd_dims(&c->in[2]->shape, c->in[0]->shape.d[1], &d);
    const float *dy = PRT_F32P(c->in[0]), *w = PRT_F32P(c->in[1]);
    float *dx = PRT_F32P(c->out[0]);
    for (int64_t i = 0; i < d.n; i++)
        for (int64_t j = 0; j < d.k; j++) {
            float s = 0.0f;
            for (int64_t o = 0; o < d.out; o++) s += dy[i * d.out + o] * w[o * d.k + j];
            dx[i * d.k + j] = s;
        }
    return PRT_OK;
}

static prt_status lbd_prepare(const prt_kernel_call *c, void **state) {
    return prt_linear_bwd_prepare(c, PRT_LINEAR_BWD_DATA, state);
}

static prt_status lbd_fast(const prt_kernel_call *c) { return prt_dnnl_prim_run(c->state, c, "linear_bwd_data"); }

const prt_op_schema prt_op_linear_bwd_data = {
    .name = "linear_bwd_data",
    .doc = "gradient of linear with respect to its input: (dy, w, x) -> dx",
    .min_in = 3,
    .max_in = 3,
    .n_out = 1,
    .attrs = prt_linear_attrs,
    .n_attrs = PRT_LINEAR_N_ATTRS,
    .infer = lbd_infer,
    .flops = lbd_flops,
    .inplace_in = -1,
    .workspace = lbd_workspace,
    .ref = {.run = lbd_ref},
    .fast = {.prepare = lbd_prepare, .run = lbd_fast, .release = prt_dnnl_prim_release},
    .grad = NULL,
    .grad_note = "backward-only op",
    .shape_only = 1u << 2,
    .cuda = PRT_CUDNN_KERNEL(NULL, prt_cudnn_linear_bwd_data, NULL),
    .cuda_bf16 = true,
};

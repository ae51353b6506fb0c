/* linear_bwd_weight: the gradient of linear with respect to its weight,
 * dw[o, j] = sum_n dy[n, o] * x[n, j], x viewed as [N, in]. Inputs (dy, x);
 * linear's attributes. The bias gradient is bias_grad's. Fast path: oneDNN
 * inner_product backward weights. */
#include "ops/bwd_util.h"
#include "ops/cuda/cudnn_util.h"

static prt_status lbw_infer(prt_infer_ctx *ic) { return prt_linear_bwd_infer(ic, PRT_LINEAR_BWD_WEIGHT); }
static int64_t lbw_flops(const prt_infer_ctx *ic) { return prt_linear_bwd_flops(ic, PRT_LINEAR_BWD_WEIGHT); }
static size_t lbw_workspace(const prt_infer_ctx *ic) { return prt_linear_bwd_workspace(ic, PRT_LINEAR_BWD_WEIGHT); }

static prt_status lbw_ref(const prt_kernel_call *c) {
    PRT_CHECK(prt_linear_bwd_check(c, PRT_LINEAR_BWD_WEIGHT));
    prt_linear_dims d;
    prt_linear_bwd_dims(&c->in[1]->shape, c->in[0]->shape.d[1], &d);
    const float *dy = PRT_F32P(c->in[0]), *x = PRT_F32P(c->in[1]);
    float *dw = PRT_F32P(c->out[0]);
    for (int64_t o = 0; o < d.out; o++)
        for (int64_t j = 0; j < d.k; j++) {
            float s = 0.0f;
            for (int64_t i = 0; i < d.n; i++) s += dy[i * d.out + o] * x[i * d.k + j];
            dw[o * d.k + j] = s;
        }
    return PRT_OK;
}

static prt_status lbw_prepare(const prt_kernel_call *c, void **state) {
    return prt_linear_bwd_prepare(c, PRT_LINEAR_BWD_WEIGHT, state);
}

static prt_status lbw_fast(const prt_kernel_call *c) { return prt_dnnl_prim_run(c->state, c, "linear_bwd_weight"); }

const prt_op_schema prt_op_linear_bwd_weight = {
    .name = "linear_bwd_weight",
    .doc = "gradient of linear with respect to its weight: (dy, x) -> dw",
    .min_in = 2,
    .max_in = 2,
    .n_out = 1,
    .attrs = prt_linear_attrs,
    .n_attrs = PRT_LINEAR_N_ATTRS,
    .infer = lbw_infer,
    .flops = lbw_flops,
    .inplace_in = -1,
    .workspace = lbw_workspace,
    .ref = {.run = lbw_ref},
    .fast = {.prepare = lbw_prepare, .run = lbw_fast, .release = prt_dnnl_prim_release},
    .grad = NULL,
    .grad_note = "backward-only op",
    .cuda = PRT_CUDNN_KERNEL(NULL, prt_cudnn_linear_bwd_weight, NULL),
    .cuda_bf16 = true,
};

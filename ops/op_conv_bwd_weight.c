/* conv_bwd_weight: the gradient of conv with respect to its weight,
 *     dw[o, ci, ky, kx] = sum over (n, oy, ox) of dy[n, o, oy, ox] * x[n, c, iy, ix]
 * with c = group start + ci, iy = oy*sh - pad_top + ky*dh (and likewise ix),
 * padding reading as zero. Inputs (dy, x, w), w read for its shape only; conv's
 * attributes. The bias gradient is bias_grad's. Fast path: oneDNN
 * convolution_backward_weights (ops/conv_bwd.c). */
#include "ops/bwd_util.h"
#include "ops/cuda/cudnn_util.h"

static prt_status cbw_infer(prt_infer_ctx *ic) { return prt_conv_bwd_infer(ic, PRT_CONV_BWD_WEIGHT); }
static int64_t cbw_flops(const prt_infer_ctx *ic) { return prt_conv_bwd_flops(ic, PRT_CONV_BWD_WEIGHT); }
static size_t cbw_workspace(const prt_infer_ctx *ic) { return prt_conv_bwd_workspace(ic, PRT_CONV_BWD_WEIGHT); }

static prt_status cbw_check(const prt_kernel_call *c) {
    PRT_CHECK(prt_kernel_check_f32(c, "conv_bwd_weight"));
    if (c->n_in != 3 || c->n_out != 1)
        return prt_error(c->ctx, PRT_ERR_INTERNAL,
                         "conv_bwd_weight kernel: %d inputs and %d outputs, expected 3 and 1", c->n_in, c->n_out);
    return PRT_OK;
}

static prt_status cbw_ref(const prt_kernel_call *c) {
    PRT_CHECK(cbw_check(c));
    prt_conv_bwd_geom g;
    prt_conv_bwd_geom_of(c->attrs, &c->in[1]->shape, &g);
    const prt_window *w = &g.win;
    const float *dy = PRT_F32P(c->in[0]), *x = PRT_F32P(c->in[1]);
    float *dw = PRT_F32P(c->out[0]);
    int64_t cg = g.c / g.g, og = g.o / g.g;
    for (int64_t o = 0; o < g.o; o++) {
        int64_t grp = o / og;
        for (int64_t ci = 0; ci < cg; ci++) {
            int64_t ch = grp * cg + ci;
            for (int64_t ky = 0; ky < w->kh; ky++)
                for (int64_t kx = 0; kx < w->kw; kx++) {
                    float s = 0.0f;
                    for (int64_t n = 0; n < g.n; n++)
                        for (int64_t oy = 0; oy < w->oh; oy++) {
                            int64_t iy = oy * w->sh - w->pad[0] + ky * w->dh;
                            if (iy < 0 || iy >= g.h) continue;
                            for (int64_t ox = 0; ox < w->ow; ox++) {
                                int64_t ix = ox * w->sw - w->pad[1] + kx * w->dw;
                                if (ix < 0 || ix >= g.w) continue;
                                s += dy[((n * g.o + o) * w->oh + oy) * w->ow + ox] *
                                     x[((n * g.c + ch) * g.h + iy) * g.w + ix];
                            }
                        }
                    dw[((o * cg + ci) * w->kh + ky) * w->kw + kx] = s;
                }
        }
    }
    return PRT_OK;
}

static prt_status cbw_prepare(const prt_kernel_call *c, void **state) {
    return prt_conv_bwd_prepare_layout(c, PRT_CONV_BWD_WEIGHT, PRT_CONV_AUTO, state);
}

static prt_status cbw_fast(const prt_kernel_call *c) { return prt_conv_bwd_run(c, "conv_bwd_weight"); }

const prt_op_schema prt_op_conv_bwd_weight = {
    .name = "conv_bwd_weight",
    .doc = "gradient of conv with respect to its weight: (dy, x, w) -> dw",
    .min_in = 3,
    .max_in = 3,
    .n_out = 1,
    .attrs = prt_conv_attrs,
    .n_attrs = PRT_CONV_N_ATTRS,
    .infer = cbw_infer,
    .flops = cbw_flops,
    .inplace_in = -1,
    .workspace = cbw_workspace,
    .ref = {.run = cbw_ref},
    .fast = {.prepare = cbw_prepare, .run = cbw_fast, .release = prt_dnnl_prim_release},
    .grad = NULL,
    .grad_note = "backward-only op",
    .shape_only = 1u << 2,
    .cuda = PRT_CUDNN_KERNEL(prt_cudnn_conv_bwd_weight_prepare, prt_cudnn_conv_bwd_weight, prt_cudnn_conv_release),
    .workspace_cuda = PRT_CUDNN_FN(prt_cudnn_conv_bwd_weight_workspace),
    .cuda_bf16 = true,
};

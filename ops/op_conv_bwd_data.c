/* conv_bwd_data: the gradient of conv with respect to its input,
 *     dx[n, c, iy, ix] = sum over (o, ky, kx) with iy = oy*sh - pad_top + ky*dh
 *                        (and likewise ix) of dy[n, o, oy, ox] * w[o, c - group start, ky, kx],
 * a transposed correlation. Inputs (dy, w, x), x read for its shape only;
 * conv's attributes. Fast path: oneDNN convolution_backward_data (ops/conv_bwd.c). */
#include "ops/bwd_util.h"
#include "ops/cuda/cudnn_util.h"

#include <string.h>

static prt_status cbd_infer(prt_infer_ctx *ic) { return prt_conv_bwd_infer(ic, PRT_CONV_BWD_DATA); }
static int64_t cbd_flops(const prt_infer_ctx *ic) { return prt_conv_bwd_flops(ic, PRT_CONV_BWD_DATA); }
static size_t cbd_workspace(const prt_infer_ctx *ic) { return prt_conv_bwd_workspace(ic, PRT_CONV_BWD_DATA); }

static prt_status cbd_check(const prt_kernel_call *c) {
    PRT_CHECK(prt_kernel_check_f32(c, "conv_bwd_data"));
    if (c->n_in != 3 || c->n_out != 1)
        return prt_error(c->ctx, PRT_ERR_INTERNAL, "conv_bwd_data kernel: %d inputs and %d outputs, expected 3 and 1",
                         c->n_in, c->n_out);
    return PRT_OK;
}

/* Scatters each output gradient back along the window that produced it. */
static prt_status cbd_ref(const prt_kernel_call *c) {
    PRT_CHECK(cbd_check(c));
    prt_conv_bwd_geom g;
    prt_conv_bwd_geom_of(c->attrs, &c->in[2]->shape, &g);
    const prt_window *w = &g.win;
    const float *dy = PRT_F32P(c->in[0]), *wt = PRT_F32P(c->in[1]);
    float *dx = PRT_F32P(c->out[0]);
    memset(dx, 0, (size_t)prt_shape_count(&c->out[0]->shape) * sizeof(float));
    int64_t cg = g.c / g.g, og = g.o / g.g;
    for (int64_t n = 0; n < g.n; n++)
        for (int64_t o = 0; o < g.o; o++) {
            int64_t grp = o / og;
            for (int64_t oy = 0; oy < w->oh; oy++)
                for (int64_t ox = 0; ox < w->ow; ox++) {
                    float d = dy[((n * g.o + o) * w->oh + oy) * w->ow + ox];
                    for (int64_t ci = 0; ci < cg; ci++) {
                        int64_t ch = grp * cg + ci;
                        for (int64_t ky = 0; ky < w->kh; ky++) {
                            int64_t iy = oy * w->sh - w->pad[0] + ky * w->dh;
                            if (iy < 0 || iy >= g.h) continue;
                            for (int64_t kx = 0; kx < w->kw; kx++) {
                                int64_t ix = ox * w->sw - w->pad[1] + kx * w->dw;
                                if (ix < 0 || ix >= g.w) continue;
                                dx[((n * g.c + ch) * g.h + iy) * g.w + ix] +=
                                    d * wt[((o * cg + ci) * w->kh + ky) * w->kw + kx];
                            }
                        }
                    }
                }
        }
    return PRT_OK;
}

static prt_status cbd_prepare(const prt_kernel_call *c, void **state) {
    return prt_conv_bwd_prepare_layout(c, PRT_CONV_BWD_DATA, PRT_CONV_AUTO, state);
}

static prt_status cbd_fast(const prt_kernel_call *c) { return prt_conv_bwd_run(c, "conv_bwd_data"); }

const prt_op_schema prt_op_conv_bwd_data = {
    .name = "conv_bwd_data",
    .doc = "gradient of conv with respect to its input: (dy, w, x) -> dx",
    .min_in = 3,
    .max_in = 3,
    .n_out = 1,
    .attrs = prt_conv_attrs,
    .n_attrs = PRT_CONV_N_ATTRS,
    .infer = cbd_infer,
    .flops = cbd_flops,
    .inplace_in = -1,
    .workspace = cbd_workspace,
    .ref = {.run = cbd_ref},
    .fast = {.prepare = cbd_prepare, .run = cbd_fast, .release = prt_dnnl_prim_release},
    .grad = NULL,
    .grad_note = "backward-only op",
    .shape_only = 1u << 2,
    .cuda = PRT_CUDNN_KERNEL(prt_cudnn_conv_bwd_data_prepare, prt_cudnn_conv_bwd_data, prt_cudnn_conv_release),
    .workspace_cuda = PRT_CUDNN_FN(prt_cudnn_conv_bwd_data_workspace),
    .cuda_bf16 = true,
};

/* rmsprop: RMSProp with momentum in TensorFlow's form, the one the
 * Inception-ResNet and PolyNet recipes were tuned with (eps inside the root):
 *     d = g + wd p;   ms = rho ms + (1-rho) d^2;   mom = mu mom + lr d / sqrt(ms + eps);   p -= mom
 * Inputs: k params, k gradients, k mean squares, k momentum buffers. */
#include "ops/optim_impl.h"
#include "ops/cuda/cuda_ops.h"

#include <math.h>

static void rmsprop_coef(const prt_solver *s, double lr, double t, prt_optim_coef *k) {
    (void)lr, (void)t;
    k->a = (float)s->rms_decay;
    k->b = (float)(1 - s->rms_decay);
}

static void rmsprop_span(const prt_optim_coef *k, int64_t n, float *restrict p, const float *restrict g,
                         float *restrict ms, float *restrict mom) {
    const float lr = k->lr, mu = k->momentum, wd = k->weight_decay, eps = k->eps, rho = k->a, rho1 = k->b;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float d = g[i] + wd * p[i];
        float s = rho * ms[i] + rho1 * (d * d);
        ms[i] = s;
        float m = mu * mom[i] + lr * d / sqrtf(s + eps);
        mom[i] = m;
        p[i] = p[i] - m;
    }
}

const prt_optim_impl prt_optim_rmsprop = {PRT_OPT_rmsprop, rmsprop_coef, rmsprop_span};

static prt_status rmsprop_infer(prt_infer_ctx *ic) { return prt_optim_infer(ic, PRT_OPT_rmsprop); }
static int64_t rmsprop_flops(const prt_infer_ctx *ic) { return prt_optim_flops(ic, PRT_OPT_rmsprop, 12); }
static prt_status rmsprop_ref(const prt_kernel_call *c) { return prt_optim_ref(c, &prt_optim_rmsprop); }
static prt_status rmsprop_prepare(const prt_kernel_call *c, void **state) {
    return prt_optim_prepare(c, &prt_optim_rmsprop, state);
}
static prt_status rmsprop_fast(const prt_kernel_call *c) { return prt_optim_fast(c, &prt_optim_rmsprop); }

const prt_op_schema prt_op_rmsprop = {
    .name = "rmsprop",
    .doc = "RMSProp update of every parameter in place: inputs k params, k gradients, k mean squares, k momenta",
    .min_in = 4,
    .max_in = PRT_MAX_UPDATE_IN,
    .n_out = 0,
    .attrs = prt_optim_attrs,
    .n_attrs = PRT_OPTIM_N_ATTRS,
    .infer = rmsprop_infer,
    .flops = rmsprop_flops,
    .inplace_in = -1,
    .ref = {.run = rmsprop_ref},
    .fast = {.prepare = rmsprop_prepare, .run = rmsprop_fast, .release = prt_optim_release},
    .grad = NULL,
    .grad_note = "optimizer update",
    .updates_inputs = true,
    .cuda = PRT_CUDA_KERNEL(.prepare = prt_cuda_rmsprop_prepare, .run = prt_cuda_rmsprop, .release = prt_cuda_optim_release,
                            .step_bytes = PRT_OPTIM_STEP_BYTES, .step_values = prt_rmsprop_step_values),
};

/* adam: Adam with L2 weight decay added to the gradient. The bias corrections
 * are folded into the step size and eps (Kingma & Ba, section 2), with t the
 * 1-based step:
 *     d = g + wd p;   m = b1 m + (1-b1) d;   v = b2 v + (1-b2) d^2
 *     p -= lr sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + eps sqrt(1-b2^t))
 * which equals lr * mhat / (sqrt(vhat) + eps). Inputs: k params, k gradients,
 * k first moments m, k second moments v. ops/op_adamw.c shares the element loop. */
#include "ops/optim_impl.h"
#include "ops/cuda/cuda_ops.h"

#include <math.h>

void prt_adam_coef(const prt_solver *s, double lr, double t, prt_optim_coef *k) {
    double c2 = sqrt(1 - pow(s->beta2, t));
    k->a = (float)s->beta1;
    k->b = (float)(1 - s->beta1);
    k->c = (float)s->beta2;
    k->d = (float)(1 - s->beta2);
    k->e = (float)(lr * c2 / (1 - pow(s->beta1, t)));
    k->f = (float)(s->eps * c2);
}

void prt_adam_span(const prt_optim_coef *k, int64_t n, float *restrict p, const float *restrict g, float *restrict m,
                   float *restrict v) {
    const float wd = k->weight_decay, b1 = k->a, b1c = k->b, b2 = k->c, b2c = k->d, step = k->e, eps = k->f;
    const float keep = k->keep;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float d = g[i] + wd * p[i];
        float mi = b1 * m[i] + b1c * d;
        float vi = b2 * v[i] + b2c * (d * d);
        m[i] = mi;
        v[i] = vi;
        p[i] = keep * p[i] - step * mi / (sqrtf(vi) + eps);
    }
}

const prt_optim_impl prt_optim_adam = {PRT_OPT_adam, prt_adam_coef, prt_adam_span};

static prt_status adam_infer(prt_infer_ctx *ic) { return prt_optim_infer(ic, PRT_OPT_adam); }
static int64_t adam_flops(const prt_infer_ctx *ic) { return prt_optim_flops(ic, PRT_OPT_adam, 14); }
static prt_status adam_ref(const prt_kernel_call *c) { return prt_optim_ref(c, &prt_optim_adam); }
static prt_status adam_prepare(const prt_kernel_call *c, void **state) { return prt_optim_prepare(c, &prt_optim_adam, state); }
static prt_status adam_fast(const prt_kernel_call *c) { return prt_optim_fast(c, &prt_optim_adam); }

const prt_op_schema prt_op_adam = {
    .name = "adam",
    .doc = "Adam update of every parameter in place (L2 decay in the gradient): inputs k params, k gradients, k m, k v",
    .min_in = 4,
    .max_in = PRT_MAX_UPDATE_IN,
    .n_out = 0,
    .attrs = prt_optim_attrs,
    .n_attrs = PRT_OPTIM_N_ATTRS,
    .infer = adam_infer,
    .flops = adam_flops,
    .inplace_in = -1,
    .ref = {.run = adam_ref},
    .fast = {.prepare = adam_prepare, .run = adam_fast, .release = prt_optim_release},
    .grad = NULL,
    .grad_note = "optimizer update",
    .updates_inputs = true,
    .cuda = PRT_CUDA_KERNEL(.prepare = prt_cuda_adam_prepare, .run = prt_cuda_adam, .release = prt_cuda_optim_release,
                            .step_bytes = PRT_OPTIM_STEP_BYTES, .step_values = prt_adam_step_values),
};

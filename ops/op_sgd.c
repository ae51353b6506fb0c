/* sgd: stochastic gradient descent with momentum (optionally Nesterov) and L2
 * weight decay, over all parameters in one fused pass. The momentum form is
 * PyTorch's, which keeps the buffer in gradient units so a change of learning
 * rate takes effect at once:
 *     d = g + wd p;   b = mu b + d;   p -= lr (nesterov ? d + mu b : b)
 * With momentum 0 the buffers are left untouched and p -= lr d. */
#include "ops/optim_impl.h"
#include "ops/cuda/cuda_ops.h"

static void sgd_coef(const prt_solver *s, double lr, double t, prt_optim_coef *k) {
    (void)s, (void)lr, (void)t, (void)k;
}

static void sgd_span(const prt_optim_coef *k, int64_t n, float *restrict p, const float *restrict g, float *restrict b,
                     float *restrict unused) {
    (void)unused;
    const float lr = k->lr, mu = k->momentum, wd = k->weight_decay;
    if (mu == 0) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) {
            float d = g[i] + wd * p[i];
            p[i] = p[i] - lr * d;
        }
    } else if (k->nesterov) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) {
            float d = g[i] + wd * p[i];
            float v = mu * b[i] + d;
            b[i] = v;
            p[i] = p[i] - lr * (d + mu * v);
        }
    } else {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) {
            float d = g[i] + wd * p[i];
            float v = mu * b[i] + d;
            b[i] = v;
            p[i] = p[i] - lr * v;
        }
    }
}

const prt_optim_impl prt_optim_sgd = {PRT_OPT_sgd, sgd_coef, sgd_span};

static prt_status sgd_infer(prt_infer_ctx *ic) { return prt_optim_infer(ic, PRT_OPT_sgd); }
static int64_t sgd_flops(const prt_infer_ctx *ic) { return prt_optim_flops(ic, PRT_OPT_sgd, 6); }
static prt_status sgd_ref(const prt_kernel_call *c) { return prt_optim_ref(c, &prt_optim_sgd); }
static prt_status sgd_prepare(const prt_kernel_call *c, void **state) { return prt_optim_prepare(c, &prt_optim_sgd, state); }
static prt_status sgd_fast(const prt_kernel_call *c) { return prt_optim_fast(c, &prt_optim_sgd); }

const prt_op_schema prt_op_sgd = {
    .name = "sgd",
    .doc = "SGD update of every parameter in place: inputs k params, k gradients, k momentum buffers",
    .min_in = 3,
    .max_in = PRT_MAX_UPDATE_IN,
    .n_out = 0,
    .attrs = prt_optim_attrs,
    .n_attrs = PRT_OPTIM_N_ATTRS,
    .infer = sgd_infer,
    .flops = sgd_flops,
    .inplace_in = -1,
    .ref = {.run = sgd_ref},
    .fast = {.prepare = sgd_prepare, .run = sgd_fast, .release = prt_optim_release},
    .grad = NULL,
    .grad_note = "optimizer update",
    .updates_inputs = true,
    .cuda = PRT_CUDA_KERNEL(.prepare = prt_cuda_sgd_prepare, .run = prt_cuda_sgd, .release = prt_cuda_optim_release,
                            .step_bytes = PRT_OPTIM_STEP_BYTES, .step_values = prt_sgd_step_values),
};

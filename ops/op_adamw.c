/* adamw: Adam with decoupled weight decay (Loshchilov & Hutter): the decay
 * scales the parameter instead of entering the moments,
 *     p = (1 - lr wd) p - lr sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + eps sqrt(1-b2^t))
 * with m and v the moments of the raw gradient. Inputs as adam. */
#include "ops/optim_impl.h"
#include "ops/cuda/cuda_ops.h"

static void adamw_coef(const prt_solver *s, double lr, double t, prt_optim_coef *k) {
    prt_adam_coef(s, lr, t, k);
    k->keep = (float)(1 - lr * s->weight_decay);
    k->weight_decay = 0;
}

const prt_optim_impl prt_optim_adamw = {PRT_OPT_adamw, adamw_coef, prt_adam_span};

static prt_status adamw_infer(prt_infer_ctx *ic) { return prt_optim_infer(ic, PRT_OPT_adamw); }
static int64_t adamw_flops(const prt_infer_ctx *ic) { return prt_optim_flops(ic, PRT_OPT_adamw, 14); }
static prt_status adamw_ref(const prt_kernel_call *c) { return prt_optim_ref(c, &prt_optim_adamw); }
static prt_status adamw_prepare(const prt_kernel_call *c, void **state) { return prt_optim_prepare(c, &prt_optim_adamw, state); }
static prt_status adamw_fast(const prt_kernel_call *c) { return prt_optim_fast(c, &prt_optim_adamw); }

const prt_op_schema prt_op_adamw = {
    .name = "adamw",
    .doc = "AdamW update of every parameter in place (decoupled decay): inputs k params, k gradients, k m, k v",
    .min_in = 4,
    .max_in = PRT_MAX_UPDATE_IN,
    .n_out = 0,
    .attrs = prt_optim_attrs,
    .n_attrs = PRT_OPTIM_N_ATTRS,
    .infer = adamw_infer,
    .flops = adamw_flops,
    .inplace_in = -1,
    .ref = {.run = adamw_ref},
    .fast = {.prepare = adamw_prepare, .run = adamw_fast, .release = prt_optim_release},
    .grad = NULL,
    .grad_note = "optimizer update",
    .updates_inputs = true,
    .cuda = PRT_CUDA_KERNEL(.prepare = prt_cuda_adamw_prepare, .run = prt_cuda_adamw, .release = prt_cuda_optim_release,
                            .step_bytes = PRT_OPTIM_STEP_BYTES, .step_values = prt_adamw_step_values),
};

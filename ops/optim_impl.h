/* What the optimizer update ops (ops/op_sgd.c, op_rmsprop.c, op_adam.c,
 * op_adamw.c) share, from ops/optim.c: one attribute table (the solver's
 * fields, with the schedule in steps), shape inference, the state slots of each
 * optimizer, and the fused update pass over all parameters.
 *
 * An optimizer node has no outputs and updates its inputs in place. With k
 * parameters and S state slots its inputs are, in this order:
 *     param_0 .. param_{k-1}, grad_0 .. grad_{k-1}, slot0_0 .. slot0_{k-1} [, slot1_0 ..]
 * The kernel computes the step's learning rate from prt_kernel_call.step with
 * prt_lr_at, then updates every element of every parameter in one pass,
 * parallel over the concatenated element range (one prefix sum of the tensor
 * sizes): each element's update is independent of the others, so the result
 * does not depend on the thread count.
 *
 *     static const prt_optim_impl sgd = {PRT_OPT_sgd, sgd_coef, sgd_span};
 *     static prt_status sgd_fast(const prt_kernel_call *c) { return prt_optim_fast(c, &sgd); }
 */
#ifndef PARROTS_OPTIM_IMPL_H
#define PARROTS_OPTIM_IMPL_H

#include "ops/ops_util.h"
#include "ops/train_impl.h"

enum {
    PRT_OPTIM_A_LR,
    PRT_OPTIM_A_MOMENTUM,
    PRT_OPTIM_A_NESTEROV,
    PRT_OPTIM_A_WEIGHT_DECAY,
    PRT_OPTIM_A_BETA1,
    PRT_OPTIM_A_BETA2,
    PRT_OPTIM_A_EPS,
    PRT_OPTIM_A_RMS_DECAY,
    PRT_OPTIM_A_SCHEDULE,        /* string: a PRT_SCHEDULES name */
    PRT_OPTIM_A_WARMUP_STEPS,
    PRT_OPTIM_A_TOTAL_STEPS,     /* epochs * steps_per_epoch */
    PRT_OPTIM_A_STEPS_PER_EPOCH,
    PRT_OPTIM_A_STEP_EPOCHS,
    PRT_OPTIM_A_GAMMA,
    PRT_OPTIM_A_MIN_LR,
    PRT_OPTIM_N_ATTRS
};
extern const prt_attr_def prt_optim_attrs[PRT_OPTIM_N_ATTRS];

/* Update inputs per parameter: the parameter, its gradient and the state slots. */
int prt_optim_n_slots(prt_optimizer_kind k);
/* The state slot's name, the suffix of its value "<param>.<slot>" ("momentum"). */
const char *prt_optim_slot_name(prt_optimizer_kind k, int slot);

/* Fills attrs (PRT_OPTIM_N_ATTRS entries) from the solver for steps_per_epoch;
 * the schedule name is interned in g. */
void prt_optim_attrs_from_solver(prt_graph *g, const prt_solver *s, int64_t steps_per_epoch, prt_attr *attrs);
/* The solver an optimizer node's attributes describe, expressed in steps
 * (steps_per_epoch 1): prt_lr_at(s, 1, step) is the node's learning rate at
 * `step`, the same number prt_lr_at gives for the original solver. False when
 * the schedule name is unknown. */
bool prt_optim_solver_of(const prt_attr *attrs, prt_solver *s);

prt_status prt_optim_infer(prt_infer_ctx *ic, prt_optimizer_kind k);
int64_t prt_optim_flops(const prt_infer_ctx *ic, prt_optimizer_kind k, int64_t per_elem);

/* The per-step constants of an update, computed in double and rounded once. */
typedef struct prt_optim_coef {
    float lr, momentum, weight_decay, eps;
    float keep;             /* the parameter's factor before the step: adamw's 1 - lr wd, else 1 */
    float a, b, c, d, e, f; /* optimizer-specific */
    bool nesterov;
} prt_optim_coef;

/* Updates n consecutive elements of one parameter: p, its gradient g and its
 * state slots s0, s1 (s1 NULL for one slot). Element i reads and writes element
 * i only. */
typedef void (*prt_optim_span_fn)(const prt_optim_coef *k, int64_t n, float *restrict p, const float *restrict g,
                                  float *restrict s0, float *restrict s1);

typedef struct prt_optim_impl {
    prt_optimizer_kind kind;
    /* s: the node's solver in steps; lr: this step's rate; t: 1-based step count */
    void (*coef)(const prt_solver *s, double lr, double t, prt_optim_coef *k);
    prt_optim_span_fn span;
} prt_optim_impl;

/* Adam's coefficients and element loop (ops/op_adam.c), which adamw reuses with
 * its decoupled decay in `keep`. */
void prt_adam_coef(const prt_solver *s, double lr, double t, prt_optim_coef *k);
/* Each optimizer's coefficients and CPU span (its op file), shared with its
 * CUDA kernel (ops/cuda/optim.cu), which takes the coefficients from here. */
extern const prt_optim_impl prt_optim_sgd, prt_optim_adam, prt_optim_adamw, prt_optim_rmsprop;
void prt_adam_span(const prt_optim_coef *k, int64_t n, float *restrict p, const float *restrict g, float *restrict m,
                   float *restrict v);

/* The coefficients a call of kernel call c uses at its step (tests use it to
 * check the learning rate). */
prt_status prt_optim_coef_of(const prt_kernel_call *c, const prt_optim_impl *o, prt_optim_coef *k, double *lr);
/* The CUDA kernels' per-step values (prt_kernel.step_values): this step's
 * coefficients, exactly prt_optim_coef_of's, as one prt_optim_coef in slot.
 * One entry point per optimizer for the schemas. */
#define PRT_OPTIM_STEP_BYTES sizeof(prt_optim_coef)
prt_status prt_optim_step_values(const prt_kernel_call *c, const prt_optim_impl *o, void *slot);
prt_status prt_sgd_step_values(const prt_kernel_call *c, void *slot);
prt_status prt_adam_step_values(const prt_kernel_call *c, void *slot);
prt_status prt_adamw_step_values(const prt_kernel_call *c, void *slot);
prt_status prt_rmsprop_step_values(const prt_kernel_call *c, void *slot);
/* Reference: one parameter after another. */
prt_status prt_optim_ref(const prt_kernel_call *c, const prt_optim_impl *o);
/* Fast path: the prefix sum of parameter sizes is built in prepare. */
prt_status prt_optim_prepare(const prt_kernel_call *c, const prt_optim_impl *o, void **state);
prt_status prt_optim_fast(const prt_kernel_call *c, const prt_optim_impl *o);
void prt_optim_release(void *state);

#endif

/* Training: reverse-mode autodiff over the graph IR, the loss, optimizers with
 * learning-rate schedules, and the builder that turns a network into one training
 * step (forward, loss, backward, update) that the VM runs as a single program.
 *
 *     prt_solver s;
 *     prt_solver_defaults(&s);               // or the YAML `solver:` section
 *     s.lr = 0.05;
 *     prt_train_info ti;
 *     PRT_CHECK(prt_train_build(g, &s, steps_per_epoch, &ti));
 *     // g now has an i32 input "labels" [1] per sample and outputs [loss, logits];
 *     // each prt_vm_run with training = true is one optimizer step.
 */
#ifndef PARROTS_TRAIN_IMPL_H
#define PARROTS_TRAIN_IMPL_H

#include "runtime/graph_impl.h"

/* ---- autodiff --------------------------------------------------------- */

/* Appends to g the nodes computing the gradient of sum_k <roots[k], seeds[k]>
 * with respect to every value the roots depend on. seeds[k] is a value id of the
 * root's shape, or PRT_GRAD_ONE for a scalar loss. Gradients of a value used by
 * several nodes, and of a parameter shared by several nodes (poly-3), are summed
 * with `add` nodes. On success *grad_of (n_values entries, caller frees with
 * prt_free(ctx, p, 0)) maps each value id to its gradient's value id, or -1.
 * A node on a path to a root whose op has no gradient is an error naming the op,
 * the node and the path to the root. */
prt_status prt_autodiff(prt_graph *g, int n_roots, const int *roots, const int *seeds, int **grad_of,
                        int *n_grad_of);

/* ---- solver ----------------------------------------------------------- */

/* X(name, "description"): the optimizers and schedules, each with one registry op
 * (optimizers) or one formula (schedules). */
#define PRT_OPTIMIZERS(X)                                                                          \
    X(sgd, "SGD with momentum (optionally Nesterov) and L2 weight decay")                          \
    X(rmsprop, "RMSProp with momentum, as used for Inception-ResNet and PolyNet")                  \
    X(adam, "Adam with L2 weight decay added to the gradient")                                     \
    X(adamw, "AdamW: Adam with decoupled weight decay")

#define PRT_SCHEDULES(X)                                                                           \
    X(constant, "the base learning rate throughout")                                               \
    X(step, "multiplied by gamma every step_epochs epochs")                                        \
    X(cosine, "cosine decay from the base rate to min_lr over all epochs")

typedef enum prt_optimizer_kind {
#define X(name, doc) PRT_OPT_##name,
    PRT_OPTIMIZERS(X)
#undef X
    PRT_OPT_COUNT
} prt_optimizer_kind;

typedef enum prt_schedule_kind {
#define X(name, doc) PRT_SCHED_##name,
    PRT_SCHEDULES(X)
#undef X
    PRT_SCHED_COUNT
} prt_schedule_kind;

typedef struct prt_solver {
    prt_optimizer_kind optimizer; /* sgd */
    double lr;                    /* 0.1 */
    double momentum;              /* 0.9 (sgd, rmsprop) */
    bool nesterov;                /* false */
    double weight_decay;          /* 0 */
    double beta1, beta2, eps;     /* adam/adamw 0.9, 0.999; eps 1e-8 for every optimizer (rmsprop adds it
                                   * inside the root, TF style; the PolyNet recipe's 1.0 is set explicitly) */
    double rms_decay;             /* rmsprop: 0.9 */
    prt_schedule_kind schedule;   /* constant */
    double warmup_epochs;         /* 0: linear warm-up from lr/W to lr over W = round(this * steps_per_epoch) steps */
    double step_epochs;           /* step schedule: 30 */
    double gamma;                 /* step schedule: 0.1 */
    double min_lr;                /* cosine floor: 0 */
    double label_smoothing;       /* 0 */
    int64_t epochs;               /* 10 */
    int64_t batch;                /* 64 */
} prt_solver;

void prt_solver_defaults(prt_solver *s);
/* Checks the values (lr > 0, batch >= 1, 0 <= momentum < 1, ...) with a message
 * naming the field: "solver.lr must be > 0, got -0.1". */
prt_status prt_solver_check(prt_context *ctx, const prt_solver *s);
/* Sets one field from text, as `--set solver.lr=0.1` or the YAML section does:
 * key without the "solver." prefix; unknown keys get a "did you mean". */
prt_status prt_solver_set(prt_context *ctx, prt_solver *s, const char *key, const char *value);
const char *prt_optimizer_name(prt_optimizer_kind k);
const char *prt_schedule_name(prt_schedule_kind k);
/* By name ("adamw", "cosine"); false if unknown. */
bool prt_optimizer_from_name(const char *name, prt_optimizer_kind *out);
bool prt_schedule_from_name(const char *name, prt_schedule_kind *out);
/* The first problem prt_solver_check would report, without the "solver."
 * prefix ("lr must be > 0, got -0.1"; it always begins with the field's name),
 * written to buf; NULL when all is well. The optimizer ops check their
 * attributes with it too. */
const char *prt_solver_problem(const prt_solver *s, char *buf, size_t cap);
/* Warm-up length in steps: round(warmup_epochs * steps_per_epoch). */
int64_t prt_solver_warmup_steps(const prt_solver *s, int64_t steps_per_epoch);

/* The learning rate at optimizer step `step` (0-based) given steps_per_epoch. */
double prt_lr_at(const prt_solver *s, int64_t steps_per_epoch, int64_t step);

/* ---- the training step ---------------------------------------------- */

typedef struct prt_train_info {
    int labels;   /* value id of the i32 labels input, per-sample shape [1] */
    int logits;   /* the network's output the loss is taken of */
    int loss;     /* scalar mean loss [1] */
    int n_params; /* trainable parameter tensors updated */
    int update_node; /* the optimizer node */
} prt_train_info;

/* Turns g (params bound; its first output the logits [N, classes]) into one
 * training step: adds the labels input and a softmax cross-entropy loss (with the
 * solver's label smoothing), differentiates, and appends one optimizer node over
 * all parameters (one fused pass, not one call per tensor), whose kernel computes
 * the learning rate from the VM's step counter with the solver's schedule.
 * Outputs become [loss, logits]. */
prt_status prt_train_build(prt_graph *g, const prt_solver *s, int64_t steps_per_epoch, prt_train_info *info);

#endif

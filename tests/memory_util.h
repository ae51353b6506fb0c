/* Helpers for the memory-planner suites (test_memory.c, test_memory_examples.c):
 * the example graphs compiled for inference or a training step, one program run
 * in VMs with different memory options on the same inputs, and bit-for-bit
 * comparison of everything a run leaves behind. */
#ifndef PARROTS_MEMORY_UTIL_H
#define PARROTS_MEMORY_UTIL_H

#include "tests/test_util.h"

#include "memory/memory_api.h"
#include "ops/train_impl.h"
#include "vm/vm_impl.h"

/* The example networks: every .yaml file in examples/, sorted by name (NULL
 * and 0 when the folder cannot be read). Usable outside a test (no Check
 * assertions), so main can size loop tests. Caller frees with mu_free_names. */
char **mu_example_files(int *n);
void mu_free_names(char **names, int n);

/* Forward FLOPs per image of a YAML network at its declared input size. */
double mu_flops_per_image(prt_context *ctx, const char *path);

/* One compiled example. */
typedef struct mu_net {
    prt_graph *g;
    prt_program *p;
    int classes;       /* training: the logits' width (labels are drawn below it) */
    prt_train_info ti; /* training: as prt_train_build left it (update_node tracked
                        * through the rewrite) */
} mu_net;

/* Loads a YAML network and compiles it for `batch`: inference, or (training) one
 * training step with the file's solver (defaults when it has none), rewritten by
 * prt_mem_rewrite with `mode` when that is not PRT_RECOMPUTE_none. */
void mu_compile(prt_context *ctx, const char *path, bool training, prt_recompute_mode mode, int64_t batch, mu_net *out);
void mu_net_free(prt_context *ctx, mu_net *n);

/* What a run leaves behind: every output after every step, and after the last
 * step the parameters, state (running statistics, optimizer state) and
 * parameter gradients, by register name. */
typedef struct mu_blob {
    char *name;
    prt_dtype dtype;
    size_t bytes;
    void *data;
} mu_blob;

typedef struct mu_result {
    int steps, n_outputs;
    mu_blob *outputs; /* steps * n_outputs, step-major */
    int n_kept;
    mu_blob *kept;
} mu_result;

/* Runs `steps` steps of p in a fresh VM with options o (fast kernels), each
 * step on its own inputs: normal noise keyed by (seed, step, input) and labels
 * in [0, classes). The VM is destroyed before returning. A failing create or
 * run fails the test. */
void mu_run(prt_context *ctx, const prt_program *p, const prt_vm_options *o, int steps, int classes, uint64_t seed,
            mu_result *out);
void mu_result_free(mu_result *r);

/* Asserts every output of every step, and every kept tensor (matched by name;
 * both results keep the same names), bit-identical. `what` names the
 * comparison in the failure message. */
void mu_expect_identical(const mu_result *a, const mu_result *b, const char *what);
/* True when some output or kept tensor differs in any bit. */
bool mu_differ(const mu_result *a, const mu_result *b);
/* Asserts every output and kept tensor of a float dtype finite, so that the
 * comparisons above cannot pass on NaN == NaN. */
void mu_expect_finite(const mu_result *r, const char *what);

/* Per register: the first and last instruction that reads (for more than its
 * shape) or writes it, -1 if none; caller allocates p->n_regs entries each. */
void mu_accesses(prt_context *ctx, const prt_program *p, int *first, int *last);
/* Checks p->plan against the program, recomputing what it can independently:
 * prt_mem_plan_validate passes; regions by register kind (gradients are what an
 * updating call reads); byte counts; persistent tensors disjoint; gradients one
 * block in the order backward writes them; every arena register's buffer covers
 * its uses (inputs the whole step, outputs to its end); registers share memory
 * while both are in use only through an in-place call that reads the older one
 * last or as a view (concat input inside its output at its slice);
 * n_inplace + n_views; every
 * workspace a buffer of its own live at its call; the live curve, lower bound,
 * peak, and lower bound <= arena = the best strategy's arena. */
void mu_check_plan(prt_context *ctx, const prt_program *p);
/* The same for a plan of p built with options o (NULL: none): what an option
 * switches off does not happen (no_buckets: one block of gradients, live for
 * the whole step). */
void mu_check_plan_opts(prt_context *ctx, const prt_program *p, const prt_mem_plan *plan,
                        const prt_mem_plan_options *o);

/* Examples up to this many forward FLOPs per image run in the unit suite
 * (test_memory.c); larger ones in test_memory_examples.c (slow). */
#define MU_UNIT_MAX_FLOPS 1e9

/* For one example file at one batch size: inference (2 passes) and training
 * (2 steps) run unplanned, planned, and planned with poison, all bit-identical;
 * the plans pass mu_check_plan and arena <= naive. */
void mu_check_example(const char *path, int64_t batch);
/* Training rewritten with each recompute mode but none (planned, and planned
 * with poison) against training without recompute (unplanned): bit-identical
 * outputs, parameters, state (BN running statistics: a RECOMPUTE must not
 * update them again) and gradients after 2 steps; the rewrite re-runs at least
 * one node, each as a RECOMPUTE instruction; the update node is tracked; the
 * plan passes mu_check_plan. */
void mu_check_recompute(const char *path, int64_t batch);
/* Fewer runs of the same kinds, for networks whose steps take seconds:
 * inference (1 pass) and training (2 steps) planned with poison against
 * unplanned, and training with the default `cheap` recompute against the same. */
void mu_check_example_large(const char *path, int64_t batch);

#endif

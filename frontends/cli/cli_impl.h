/* The `parrots` command line: one function per command, a shared option parser. */
#ifndef PARROTS_CLI_IMPL_H
#define PARROTS_CLI_IMPL_H

#include "frontends/data_api.h"
#include "memory/memory_api.h"
#include "ops/train_impl.h"
#include "scheduler/scheduler_impl.h"
#include "vm/vm_api.h"

/* Exit codes: 0 success, 1 runtime failure, 2 bad usage or input. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

typedef enum cli_opt_kind { CLI_FLAG, CLI_INT, CLI_STRING } cli_opt_kind;

typedef struct cli_opt {
    const char *name;  /* "--batch" */
    cli_opt_kind kind;
    const char *arg;   /* "N" for the help text */
    const char *help;
    void *dest;        /* bool*, long long*, const char** */
} cli_opt;

/* Parses argv (after the command name) into opts; at most max_pos positionals go
 * to pos[]. Prints the problem to stderr and returns CLI_USAGE on bad usage, or -1
 * after printing help for --help. */
int cli_parse(const char *cmd, const char *usage, const cli_opt *opts, int argc, char **argv,
              const char **pos, int max_pos, int min_pos);
void cli_print_help(FILE *f, const char *cmd, const char *usage, const cli_opt *opts);

/* Reports ctx's last error as "parrots CMD: message" and maps the status to an exit code. */
int cli_fail(const char *cmd, prt_context *ctx, prt_status st);
/* A context for the command (log level from --verbose/--quiet flags). */
prt_status cli_context(bool verbose, prt_context **out);
/* The context of a command that loads a network or program: created with opts
 * (NULL: the defaults, debug logging when verbose), then the operator plugins
 * of PARROTS_PLUGIN_PATH, to which main() has appended every `--plugin PATH`.
 * A plugin that does not load prints "parrots CMD: <why>" and gives CLI_USAGE;
 * CLI_OK with *out set otherwise. */
int cli_start(const char *cmd, const prt_context_options *opts, bool verbose, prt_context **out);
/* main(): takes every `--plugin PATH` (or --plugin=PATH) out of argv (after the
 * command name), appending PATH to PARROTS_PLUGIN_PATH, so that every command
 * and the processes it starts (data-parallel ranks) load it. Returns the new
 * argc, or -1 after printing the problem (--plugin with no value). */
int cli_take_plugins(const char *cmd, int argc, char **argv);
/* Loads the network named on the command line. */
prt_status cli_load(prt_context *ctx, const char *path, prt_graph **out);
/* --device cpu|cuda|cuda:N: *gpu_index -1 for cpu (and NULL text), else N (cuda
 * is cuda:0). A malformed DEV prints the problem and returns CLI_USAGE. */
int cli_parse_device(const char *cmd, const char *text, int *gpu_index);
/* --fuse auto|none|bn-relu: *bn_relu says whether prt_graph_fuse_bn_relu runs
 * (auto: on a GPU, where it saves a pass over memory; the CPU plans the same
 * memory either way). A bad value: message, CLI_USAGE. */
int cli_parse_fuse(const char *cmd, const char *text, bool on_gpu, bool *bn_relu);
/* --precision fp32|bf16 (bf16 only with a GPU) and --cuda-graph auto|on|off:
 * a bad value prints the problem and returns CLI_USAGE. */
int cli_parse_precision(const char *cmd, const char *text, bool on_gpu, prt_precision *out);
int cli_parse_cuda_graph(const char *cmd, const char *text, prt_cuda_graph_mode *out);
/* .onnx: its initializers into vm (after prt_vm_create); YAML: nothing. */
prt_status cli_load_weights(prt_context *ctx, const char *path, prt_vm *vm);

/* ---- memory: cmd_plan.c ------------------------------------------------------ */

/* --memory-limit SIZE: NULL gives 0 (no limit); a malformed SIZE prints the
 * problem and returns CLI_USAGE. */
int cli_parse_memory_limit(const char *cmd, const char *text, size_t *out);
/* --recompute MODE: auto (CLI_RECOMPUTE_AUTO) or a prt_recompute_mode (none,
 * cheap, segments); NULL gives `dflt`. CLI_USAGE on an unknown name, after
 * printing it. */
#define CLI_RECOMPUTE_AUTO (-1)
int cli_parse_recompute(const char *cmd, const char *text, int dflt, int *out);

/* A training step compiled under a recompute mode. auto builds `none`, then,
 * when that does not fit `limit` (0: no limit) or when no limit is given,
 * `cheap`, and keeps `cheap` if it fits where `none` does not or, without a
 * limit, if it needs at most CLI_AUTO_KEEP of `none`'s total; with a limit,
 * `segments` is tried last. `make` returns a fresh graph with its parameters
 * bound each time it is called. */
#define CLI_AUTO_KEEP 0.75
typedef prt_status (*cli_graph_maker)(void *user, prt_graph **out);
typedef struct cli_train_program {
    prt_graph *g;
    prt_program *p;
    prt_train_info ti;
    prt_recompute_mode mode; /* the one built */
    int n_buckets;           /* gradient buckets (scheduler/buckets.c) */
} cli_train_program;
/* bucket_bytes: the gradient bucket size (0: the scheduler's default). */
prt_status cli_build_training(prt_context *ctx, cli_graph_maker make, void *user, const struct prt_solver *s,
                              int64_t steps_per_epoch, int64_t batch, int want, size_t limit, size_t bucket_bytes,
                              cli_train_program *out);
void cli_train_program_free(prt_context *ctx, cli_train_program *t);
/* Checks a compiled program's memory plan against a limit (0: none). When it does
 * not fit, prints "parrots CMD: <the planner's message>" and returns CLI_FAIL: the
 * network is fine but the machine is too small, a runtime failure like running
 * out of memory (cli_fail would map PRT_ERR_LIMIT to 2). CLI_OK otherwise. */
int cli_memory_check(const char *cmd, prt_context *ctx, const prt_program *p, size_t limit);
/* One line summarising a compiled program's plan for commands that then run it:
 * "1.23 GiB planned (arena 800.00 MiB, ...)", with the recompute rewrite's cost
 * when g is a rewritten training graph (mode none: no recompute part). */
prt_status cli_memory_summary(prt_graph *g, const prt_program *p, bool train, prt_recompute_mode mode, char *buf,
                              size_t cap);

/* The solver of a training step: defaults, the file's `solver:` section, then
 * epochs and batch when >= 0, then `--set solver.KEY=VALUE` overrides in order;
 * checked (cmd_train.c). */
struct prt_solver;
prt_status cli_make_solver(prt_context *ctx, const prt_graph *g, long long epochs, long long batch,
                           const char *const *sets, int n_sets, struct prt_solver *out);

/* The live arena bytes of a plan over the instruction sequence, for the picture. */
typedef struct cli_memory_curve {
    const char *title;
    int n;                        /* instructions */
    const size_t *live;           /* per instruction: arena bytes live while it runs */
    const unsigned char *phase;   /* per instruction: prt_phase (0 forward, 1 backward, 2 update) */
    const bool *recompute;        /* per instruction: a RECOMPUTE (drawn as a tick); may be NULL */
    size_t arena_bytes;           /* the planned arena: a horizontal line */
    int peak_pc;                  /* marked */
} cli_memory_curve;

/* Writes the memory curve as SVG or PNG, like cli_plot_write (plot.c). */
prt_status cli_plot_memory_write(prt_context *ctx, const char *path, const cli_memory_curve *m);

/* ---- training output: progress.c, plot.c ---------------------------------- */

/* The curves of a run, for the picture: logged-step losses (x in epochs, so
 * 2.5 is the middle of epoch 3) and per-epoch means. Borrowed arrays. */
typedef struct cli_curves {
    const char *title;
    int64_t epochs;                /* planned: the x axis runs to it */
    int n_steps;
    const double *step_x, *step_loss;
    int n_epochs;                  /* completed; entry e is after epoch e + 1 */
    const double *ep_train_loss, *ep_test_loss, *ep_train_acc, *ep_test_acc;
} cli_curves;

/* Writes the loss and accuracy curves as SVG or PNG, chosen by the file name's
 * ending (.svg, .png); replaces the file atomically. */
prt_status cli_plot_write(prt_context *ctx, const char *path, const cli_curves *c);
/* The file name's ending names a format cli_plot_write knows. */
prt_status cli_plot_check(prt_context *ctx, const char *path);

/* Progress of a training run: an updating line on a terminal, plain lines
 * otherwise, epoch summaries on stdout, JSON lines in the metrics file, and the
 * curves for the plot. */
typedef struct cli_progress {
    prt_context *ctx;
    bool tty, quiet;
    FILE *metrics;
    const char *metrics_path;
    int64_t epochs, steps_per_epoch, log_every;
    double t_start, t_drawn;
    /* since the last step record */
    double iv_loss, iv_t0;
    int64_t iv_steps, iv_seen;
    /* the current epoch */
    double ep_loss, ep_t0, ep_train_s;
    int64_t ep_steps, ep_correct, ep_seen;
    /* history */
    double *step_x, *step_loss;
    int n_steps, cap_steps;
    double *ep_train_loss, *ep_test_loss, *ep_train_acc, *ep_test_acc;
    int n_epochs, cap_epochs;
} cli_progress;

/* log_every 0: about 10 records per epoch. metrics_path may be NULL. */
prt_status cli_progress_init(cli_progress *p, prt_context *ctx, const char *metrics_path, bool quiet,
                             int64_t epochs, int64_t steps_per_epoch, int64_t log_every);
/* Starts the clock of an epoch (1-based) after any evaluation. */
void cli_progress_epoch_start(cli_progress *p, int64_t epoch);
/* One training step done: step is 1-based within the epoch; `correct` of `n`
 * samples were classified right; lr is the rate the step used. */
prt_status cli_progress_step(cli_progress *p, int64_t epoch, int64_t step, double loss, int64_t correct, int64_t n,
                             double lr);
/* The training part of the epoch is over (stops its clock before evaluation). */
void cli_progress_train_done(cli_progress *p);
/* The epoch's test results: prints the summary line and writes the record. */
prt_status cli_progress_epoch_end(cli_progress *p, int64_t epoch, double test_loss, double test_acc, double lr);
/* Clears an unfinished terminal line (before an error message). */
void cli_progress_break(cli_progress *p);
void cli_progress_curves(const cli_progress *p, const char *title, cli_curves *out);
void cli_progress_close(cli_progress *p);

/* ---- data and evaluation, shared by train and eval: cmd_eval.c ------------- */

/* The normalisation a dataset is trained and evaluated with: Fashion-MNIST's
 * pixel mean and standard deviation, identity for anything else. */
void cli_data_norm(const char *data, float *mean, float *std);
/* prt_dataset_open, keeping only the first `limit` samples when 0 < limit < size. */
prt_status cli_dataset_open(prt_context *ctx, const char *name, const char *split, int64_t limit,
                            prt_dataset **out);
/* The network's first input takes the dataset's samples and its first output
 * [N, classes] covers the dataset's classes. */
prt_status cli_check_data(prt_context *ctx, const prt_graph *g, const char *data, const prt_dataset *d);
/* Rows of logits whose arg-max (first on ties) is the label. */
int64_t cli_count_correct(const float *logits, int64_t n, int64_t classes, const int32_t *labels);

/* Inference over a whole test set: a program at the batch size and, when the set
 * does not divide evenly, a second one at the size of the last batch. */
struct prt_weights;
typedef struct cli_evaluator {
    prt_context *ctx;
    struct prt_device *dev; /* where the programs run (borrowed) */
    prt_graph *g;         /* the network loaded for inference */
    prt_program *p, *p_rem;
    prt_vm *vm, *vm_rem;
    prt_loader *ld;
    const prt_dataset *test;
    int64_t batch, rem, classes;
    int32_t *labels;
} cli_evaluator;

/* dev: the device the inference programs run on (NULL: the CPU; borrowed, must
 * outlive cli_eval_close). */
prt_status cli_eval_open(cli_evaluator *e, prt_context *ctx, const char *net_path, const char *data,
                         const prt_dataset *test, int64_t batch, struct prt_device *dev);
/* Takes the parameters and running state from another VM (the training one, on
 * any device: through the host mirrors of both). */
prt_status cli_eval_from_vm(cli_evaluator *e, prt_vm *src);
prt_status cli_eval_weights(cli_evaluator *e, const struct prt_weights *w);
/* One pass over the test set: mean cross-entropy and the fraction correct. */
prt_status cli_eval_run(cli_evaluator *e, double *loss, double *acc);
void cli_eval_close(cli_evaluator *e);

int cli_check(int argc, char **argv);
int cli_compile(int argc, char **argv);
int cli_disasm(int argc, char **argv);
int cli_run(int argc, char **argv);
int cli_train(int argc, char **argv);
int cli_eval(int argc, char **argv);
int cli_plan(int argc, char **argv);
int cli_timeline_summary(int argc, char **argv);
int cli_profile(int argc, char **argv);  /* cmd_simulate.c */
int cli_simulate(int argc, char **argv); /* cmd_simulate.c */

#endif

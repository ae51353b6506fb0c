/* `parrots train NET.yaml`: trains a network on a dataset. The solver comes from
 * the file's `solver:` section, then --epochs, --batch and --set overrides; the
 * training step (forward, loss, backward, update) is one compiled program run
 * once per batch; at each epoch's end a separate inference program, given the
 * training program's parameters, measures the test set. */
#include "frontends/checkpoint_api.h"
#include "frontends/cli/cli_impl.h"
#include "frontends/weights_api.h"
#include "ops/train_impl.h"
#include "runtime/comm_api.h"
#include "runtime/cuda_api.h"
#include "runtime/trace.h"
#include "scheduler/scheduler_impl.h"
#include "vm/vm_impl.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_SETS 64

typedef struct train_args {
    const char *net, *data, *metrics, *plot, *save, *memory_limit, *recompute;
    const char *ckpt_dir, *resume;
    const char *comm, *bucket_size, *timeline;
    const char *device;         /* --device cpu|cuda|cuda:N */
    const char *cuda_graph;     /* --cuda-graph auto|on|off */
    const char *fuse;           /* --fuse auto|none|bn-relu */
    const char *precision;      /* --precision fp32|bf16 */
    prt_precision prec;
    bool fuse_bn_relu;
    prt_cuda_graph_mode graph_mode;
    int gpu_index;              /* its GPU, -1: the CPU */
    long long epochs, batch, seed, threads, log_every, train_limit, test_limit, crop_pad;
    long long save_every, keep, comm_timeout, timeline_steps, timeline_skip;
    bool augment, no_augment, quiet, verbose, sync_bn;
    const char *sets[MAX_SETS];
    int n_sets;
    size_t limit;               /* --memory-limit in bytes, 0: none */
    size_t bucket_bytes;        /* --bucket-size, 0: the default */
    int mode;                   /* --recompute: a prt_recompute_mode or CLI_RECOMPUTE_AUTO */
} train_args;

static const char usage_line[] =
    "NET.yaml [--data NAME] [--epochs N] [--batch B] [--set solver.KEY=VALUE]... [--seed S] [--threads T] "
    "[--metrics FILE] [--plot FILE.svg|.png] [--save WEIGHTS] [--log-every K] [--augment|--no-augment] "
    "[--crop-pad P] [--train-limit N] [--test-limit M] [--recompute auto|none|cheap|segments] [--memory-limit SIZE] "
    "[--save-every N] [--checkpoint-dir DIR] [--keep K] [--resume DIR|FILE] [--device cpu|cuda[:N]] "
    "[--cuda-graph auto|on|off] [--fuse auto|none|bn-relu] [--precision fp32|bf16] "
    "[--comm auto|mpi|nccl|local] "
    "[--comm-timeout S] [--bucket-size SIZE] [--sync-bn] [--timeline FILE.json] [--timeline-steps N] "
    "[--timeline-skip K] [--quiet]";

/* --set may repeat, which cli_parse's options do not: take them out first. */
static int take_sets(train_args *a, int argc, char **argv, char **rest, int *n_rest) {
    *n_rest = 0;
    for (int i = 0; i < argc; i++) {
        const char *v = NULL;
        if (!strcmp(argv[i], "--set")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "parrots train: option '--set' needs a value (solver.KEY=VALUE)\n");
                return CLI_USAGE;
            }
            v = argv[++i];
        } else if (!strncmp(argv[i], "--set=", 6)) {
            v = argv[i] + 6;
        } else {
            rest[(*n_rest)++] = argv[i];
            continue;
        }
        if (a->n_sets == MAX_SETS) {
            fprintf(stderr, "parrots train: more than %d --set options\n", MAX_SETS);
            return CLI_USAGE;
        }
        a->sets[a->n_sets++] = v;
    }
    return CLI_OK;
}

prt_status cli_make_solver(prt_context *ctx, const prt_graph *g, long long epochs, long long batch,
                           const char *const *sets, int n_sets, prt_solver *s) {
    char num[32];
    prt_solver_defaults(s);
    if (g->solver) *s = *g->solver;
    if (epochs >= 0) {
        snprintf(num, sizeof num, "%lld", epochs);
        PRT_CHECK(prt_solver_set(ctx, s, "epochs", num));
    }
    if (batch >= 0) {
        snprintf(num, sizeof num, "%lld", batch);
        PRT_CHECK(prt_solver_set(ctx, s, "batch", num));
    }
    for (int k = 0; k < n_sets; k++) {
        const char *eq = strchr(sets[k], '=');
        if (!eq || eq == sets[k])
            return prt_error(ctx, PRT_ERR_USAGE, "--set '%s': expected solver.KEY=VALUE (such as solver.lr=0.05)",
                             sets[k]);
        char key[128];
        size_t n = (size_t)(eq - sets[k]);
        if (n >= sizeof key) n = sizeof key - 1;
        memcpy(key, sets[k], n);
        key[n] = '\0';
        PRT_CHECK(prt_solver_set(ctx, s, key, eq + 1));
    }
    return prt_solver_check(ctx, s);
}

static void describe_solver(const prt_solver *s, char *b, size_t cap) {
    size_t o = (size_t)snprintf(b, cap, "%s lr %g", prt_optimizer_name(s->optimizer), s->lr);
#define ADD(...) if (o < cap) o += (size_t)snprintf(b + o, cap - o, __VA_ARGS__)
    if (s->optimizer == PRT_OPT_sgd || s->optimizer == PRT_OPT_rmsprop) ADD(" momentum %g", s->momentum);
    if (s->optimizer == PRT_OPT_sgd && s->nesterov) ADD(" nesterov");
    if (s->weight_decay > 0) ADD(" weight_decay %g", s->weight_decay);
    ADD(", %s schedule", prt_schedule_name(s->schedule));
    if (s->warmup_epochs > 0) ADD(", %g warm-up epoch%s", s->warmup_epochs, s->warmup_epochs == 1 ? "" : "s");
    if (s->label_smoothing > 0) ADD(", label smoothing %g", s->label_smoothing);
#undef ADD
}

typedef struct trainer {
    prt_context *ctx;
    train_args a;
    prt_solver solver;
    prt_graph *g;
    prt_program *p;
    prt_vm *vm;
    prt_dataset *train, *test;
    prt_loader *ld;
    cli_evaluator ev;
    cli_progress pr;
    bool pr_open;
    prt_train_info ti;
    int64_t spe;
    double final_acc;
    int64_t epochs_done;
    bool over_limit;            /* the plan did not fit --memory-limit (reported already) */
    prt_ckpt *resume;           /* --resume: the checkpoint, read and checked on its own */
    prt_ckpt_state rs;          /* its state */
    uint64_t graph_hash;        /* of the training graph */
    int64_t dataset_size;
    prt_comm *comm;             /* data parallel: MPI (NCCL on GPUs) under mpirun, else the one-rank backend */
    prt_comm *boot;             /* NCCL: the MPI communicator under it, for host-memory collectives */
    prt_device *gpu;            /* --device cuda: this rank's GPU; NULL: the CPU */
    int rank, size;
    prt_trace *trace;           /* --timeline */
} trainer;

/* Rank 0 speaks for the job; the others only with --verbose. */
static bool speaks(const trainer *t) { return t->rank == 0 || t->a.verbose; }

/* A fresh copy of the network for each recompute mode --recompute auto tries. */
static prt_status load_graph(void *user, prt_graph **out) {
    trainer *t = user;
    PRT_CHECK(cli_load(t->ctx, t->a.net, out));
    prt_status st = prt_graph_device_passes(*out, t->a.fuse_bn_relu, t->a.prec);
    if (st != PRT_OK) {
        prt_graph_destroy(*out);
        *out = NULL;
    }
    return st;
}

/* ---- checkpoints -------------------------------------------------------------- */

/* The checkpoint must continue this very run: same solver, data and seed. */
static prt_status check_resume(trainer *t) {
    prt_context *ctx = t->ctx;
    const prt_ckpt_state *c = &t->rs;
    const char *f = prt_ckpt_path(t->resume);
    PRT_CHECK(prt_ckpt_check_solver(ctx, t->resume, &t->solver));
    if (c->dataset_size != t->dataset_size || c->batch_size != t->solver.batch || !c->shuffle)
        return prt_error(ctx, PRT_ERR_INVALID,
                         "%s: the checkpoint was trained on %lld samples in batches of %lld, this run has %lld in "
                         "batches of %lld",
                         f, (long long)c->dataset_size, (long long)c->batch_size, (long long)t->dataset_size,
                         (long long)t->solver.batch);
    if (c->shuffle_seed != ctx->seed)
        return prt_error(ctx, PRT_ERR_INVALID, "%s: the checkpoint's data order has seed %llu, this run %llu", f,
                         (unsigned long long)c->shuffle_seed, (unsigned long long)ctx->seed);
    int64_t spe = t->dataset_size / t->solver.batch;
    if (c->steps_per_epoch != spe)
        return prt_error(ctx, PRT_ERR_INVALID, "%s: the checkpoint has %lld steps per epoch, this run %lld", f,
                         (long long)c->steps_per_epoch, (long long)spe);
    return PRT_OK;
}

/* Reads --resume (a checkpoint, or the newest in a directory: a damaged newest
 * one is an error, not a reason to fall back silently) and adopts its seed. */
static prt_status open_resume(trainer *t) {
    prt_context *ctx = t->ctx;
    const char *arg = t->a.resume;
    struct stat sb;
    char *path = NULL;
    if (stat(arg, &sb) == 0 && S_ISDIR(sb.st_mode)) PRT_CHECK(prt_ckpt_find_latest(ctx, arg, &path));
    prt_status st = prt_ckpt_read(ctx, path ? path : arg, 0, &t->resume);
    prt_free(ctx, path, 0);
    PRT_CHECK(st);
    prt_ckpt_get_state(t->resume, &t->rs);
    if (t->a.seed != 0 && (uint64_t)t->a.seed != t->rs.seed)
        return prt_error(ctx, PRT_ERR_USAGE, "--seed %lld differs from the seed %llu of %s", t->a.seed,
                         (unsigned long long)t->rs.seed, prt_ckpt_path(t->resume));
    ctx->seed = t->rs.seed;
    return PRT_OK;
}

/* PARROTS_TEST_CRASH_IN_SAVE=STAGE[:STEP] (tests only): the process kills itself
 * with SIGKILL at that stage of a save (of that global step), as a crash would. */
static void crash_hook(void *user, const char *stage, int64_t step) {
    const char *spec = user;
    size_t n = strcspn(spec, ":");
    if (strlen(stage) != n || strncmp(stage, spec, n)) return;
    if (spec[n] == ':' && strtoll(spec + n + 1, NULL, 10) != step) return;
    raise(SIGKILL);
}

/* Saves the state before batch `step` (0-based count done) of `epoch`. */
static prt_status save_checkpoint(trainer *t, int64_t epoch, int64_t step) {
    prt_context *ctx = t->ctx;
    prt_ckpt_state st = {
        .global_step = (int64_t)prt_vm_get_step(t->vm),
        .epoch = epoch,
        .step = step,
        .steps_per_epoch = t->spe,
        .solver = t->solver,
        .shuffle_seed = ctx->seed,
        .dataset_size = t->dataset_size,
        .batch_size = t->solver.batch,
        .shuffle = true,
        .seed = ctx->seed,
    };
    char when[32], seed[32], version[32];
    snprintf(version, sizeof version, "%d.%d.%d", PRT_VERSION_MAJOR, PRT_VERSION_MINOR, PRT_VERSION_PATCH);
    time_t now = time(NULL);
    struct tm tmv;
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tmv));
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)ctx->seed);
    const prt_ckpt_meta meta[] = {
        {"network_file", t->a.net}, {"data", t->a.data}, {"time", when},
        {"parrots_version", version}, {"seed", seed},
    };
    prt_ckpt_save_options so;
    prt_ckpt_save_defaults(&so);
    so.keep = (int)t->a.keep;
    so.meta = meta;
    so.n_meta = (int)(sizeof meta / sizeof meta[0]);
    so.network = t->g->name;
    const char *crash = getenv("PARROTS_TEST_CRASH_IN_SAVE");
    if (crash && *crash) {
        so.test_hook = crash_hook;
        so.hook_user = (void *)crash;
    }
    char *path = NULL;
    PRT_CHECK(prt_ckpt_save(ctx, t->a.ckpt_dir, t->graph_hash, &st, t->vm, &so, &path));
    if (!t->a.quiet) {
        cli_progress_break(&t->pr);
        fprintf(stderr, "checkpoint written to %s\n", path);
    }
    prt_free(ctx, path, 0);
    return PRT_OK;
}

static prt_status setup(trainer *t) {
    prt_context *ctx = t->ctx;
    const train_args *a = &t->a;
    if (a->plot) PRT_CHECK(cli_plot_check(ctx, a->plot));
    PRT_CHECK(load_graph(t, &t->g));
    PRT_CHECK(cli_make_solver(ctx, t->g, a->epochs, a->batch, a->sets, a->n_sets, &t->solver));
    PRT_CHECK(cli_dataset_open(ctx, a->data, "train", a->train_limit, &t->train));
    PRT_CHECK(cli_dataset_open(ctx, a->data, "test", a->test_limit, &t->test));
    PRT_CHECK(cli_check_data(ctx, t->g, a->data, t->train));
    int64_t n = prt_dataset_size(t->train);
    if (t->solver.batch > n / t->size)
        return prt_error(ctx, PRT_ERR_INVALID,
                         "solver.batch %lld is larger than %s (%lld samples%s)", (long long)t->solver.batch,
                         t->size > 1 ? "each rank's share of the training set" : "the training set",
                         (long long)(n / t->size), a->train_limit > 0 ? " with --train-limit" : "");
    t->dataset_size = n;
    if (t->resume) PRT_CHECK(check_resume(t));
    prt_loader_options o;
    prt_loader_defaults(&o);
    if (t->resume) {
        o.start_epoch = t->rs.epoch - 1;
        o.start_batch = t->rs.step;
    }
    o.batch = t->solver.batch;
    o.shard = t->rank;
    o.shards = t->size;
    o.shuffle = true;
    o.drop_last = true;
    o.seed = ctx->seed;
    o.crop_pad = a->no_augment ? 0 : (int)a->crop_pad;
    o.flip = !a->no_augment;
    o.prefetch = 2;
    cli_data_norm(a->data, &o.mean, &o.std);
    PRT_CHECK(prt_loader_create(ctx, t->train, &o, &t->ld));
    t->spe = prt_loader_batches_per_epoch(t->ld);
    cli_train_program tp;
    PRT_CHECK(cli_build_training(ctx, load_graph, t, &t->solver, t->spe, t->solver.batch, a->mode, a->limit, a->bucket_bytes, &tp));
    prt_graph_destroy(t->g);
    t->g = tp.g;
    t->p = tp.p;
    t->ti = tp.ti;
    if (cli_memory_check("train", ctx, t->p, a->limit) != CLI_OK) {
        t->over_limit = true;
        return PRT_ERR_LIMIT;
    }
    char mem[512];
    if (!a->quiet) PRT_CHECK(cli_memory_summary(t->g, t->p, true, tp.mode, mem, sizeof mem));
    prt_vm_options vo = {.training = true, .comm = t->comm, .sync_bn = a->sync_bn, .cuda_graph = a->graph_mode};
    PRT_CHECK(prt_vm_create(ctx, t->p, t->gpu ? t->gpu : prt_cpu_device(ctx), &vo, &t->vm));
    PRT_CHECK(prt_ckpt_graph_hash(t->g, &t->graph_hash));
    if (t->resume) PRT_CHECK(prt_ckpt_restore(ctx, t->resume, t->graph_hash, t->vm));
    /* only rank 0 tests, saves and plots */
    if (t->rank == 0) PRT_CHECK(cli_eval_open(&t->ev, ctx, a->net, a->data, t->test, t->solver.batch, t->gpu));
    if (a->timeline) PRT_CHECK(prt_trace_create(ctx, t->rank, 0, &t->trace));
    if (!a->quiet && speaks(t)) {
        char sv[256], aug[96];
        if (a->no_augment) snprintf(aug, sizeof aug, "none");
        else if (a->crop_pad > 0) snprintf(aug, sizeof aug, "horizontal flip, random crop (pad %lld)", a->crop_pad);
        else snprintf(aug, sizeof aug, "horizontal flip");
        prt_graph_stats gs;
        describe_solver(&t->solver, sv, sizeof sv);
        PRT_CHECK(prt_graph_stats_get(t->ev.g, &gs));
        fprintf(stderr,
                "training %s (%lld parameters) on %s: %lld training and %lld test images, batch %lld, %lld steps per "
                "epoch, %lld epoch%s\nsolver: %s; augmentation: %s; seed %llu, %ld threads\n",
                t->g->name, (long long)gs.params, a->data, (long long)n, (long long)prt_dataset_size(t->test),
                (long long)t->solver.batch, (long long)t->spe, (long long)t->solver.epochs,
                t->solver.epochs == 1 ? "" : "s", sv,
                aug, (unsigned long long)ctx->seed,
                ctx->num_threads > 0 ? (long)ctx->num_threads : sysconf(_SC_NPROCESSORS_ONLN));
        fprintf(stderr, "memory: %s\n", mem);
        if (t->gpu) {
            char gd[160];
            fprintf(stderr, "device: %s%s\n", prt_cuda_device_describe(t->gpu, gd, sizeof gd),
                    t->size > 1 ? " (rank 0's; one GPU per rank)" : "");
        }
        if (t->size > 1)
            fprintf(stderr,
                    "data parallel: %d ranks (%s), %d on this machine; batch %lld per rank, %lld combined; %d gradient "
                    "bucket%s; %s batch norm\n",
                    t->size, prt_comm_backend(t->comm), t->comm->local_size, (long long)t->solver.batch,
                    (long long)t->solver.batch * t->size, tp.n_buckets, tp.n_buckets == 1 ? "" : "s",
                    a->sync_bn ? "synchronised" : "per-rank");
    }
    PRT_CHECK(cli_progress_init(&t->pr, ctx, t->rank == 0 ? a->metrics : NULL, a->quiet || !speaks(t),
                                t->solver.epochs, t->spe, a->log_every));
    t->pr_open = true;
    return PRT_OK;
}

/* Every rank reports whether its set-up worked, so that a failing rank (a
 * missing data file, a bad network) stops the job everywhere with a message
 * instead of leaving the others waiting in the first allreduce. */
static prt_status agree(trainer *t, prt_status mine, const char *stage) {
    if (t->size == 1) return mine;
    prt_context *ctx = t->ctx;
    uint64_t *all = prt_calloc(ctx, (size_t)t->size, sizeof *all);
    if (!all) return prt_error(ctx, PRT_ERR_NOMEM, "out of memory");
    prt_status st = prt_comm_allgather_u64(t->comm, (uint64_t)mine, all);
    if (st == PRT_OK && mine == PRT_OK) {
        char ranks[256] = "";
        size_t o = 0;
        int bad = 0, first = -1;
        for (int r = 0; r < t->size; r++) {
            if (all[r] == PRT_OK) continue;
            if (first < 0) first = r;
            if (bad++ < 8 && o < sizeof ranks) o += (size_t)snprintf(ranks + o, sizeof ranks - o, "%s%d", bad > 1 ? ", " : "", r);
        }
        if (bad > 8 && o < sizeof ranks) snprintf(ranks + o, sizeof ranks - o, " and %d more", bad - 8);
        if (bad)
            st = prt_error(ctx, (prt_status)all[first], "stopping: %s %s failed during %s (%s message above)",
                           bad == 1 ? "rank" : "ranks", ranks, stage, bad == 1 ? "its" : "their");
    }
    prt_free(ctx, all, 0);
    return mine != PRT_OK ? mine : st;
}

/* Every rank must have the same training set (they shard one order of it). */
static prt_status same_dataset_size(trainer *t) {
    prt_context *ctx = t->ctx;
    uint64_t *all = prt_calloc(ctx, (size_t)t->size, sizeof *all);
    if (!all) return prt_error(ctx, PRT_ERR_NOMEM, "out of memory");
    prt_status st = prt_comm_allgather_u64(t->comm, (uint64_t)t->dataset_size, all);
    for (int r = 1; r < t->size && st == PRT_OK; r++)
        if (all[r] != all[0])
            st = prt_error(ctx, PRT_ERR_INVALID,
                           "rank %d has %llu training samples, rank 0 has %llu: every rank must read the same "
                           "training set",
                           r, (unsigned long long)all[r], (unsigned long long)all[0]);
    prt_free(ctx, all, 0);
    return st;
}

/* After set-up: the ranks must run the same program on equally many samples,
 * and start from rank 0's parameters. */
static prt_status join(trainer *t) {
    if (t->size == 1) return PRT_OK;
    /* the data first: a different training set also changes the schedule's length */
    PRT_CHECK(same_dataset_size(t));
    PRT_CHECK(prt_comm_check_same(t->comm, prt_program_hash(t->p),
                                  "compiled program (network, solver, batch or bucket layout)"));
    return prt_vm_broadcast_state(t->vm, 0);
}

/* The loss and correct count of the whole combined batch: every rank's step
 * reduced over the ranks (one small blocking allreduce). */
static prt_status job_metrics(trainer *t, double *loss, int64_t *correct) {
    if (t->size == 1) return PRT_OK;
    float v[2] = {(float)*loss, (float)*correct};
    prt_comm_handle h;
    /* host memory: NCCL reduces device memory only, its bootstrap takes this */
    prt_comm *c = t->boot ? t->boot : t->comm;
    PRT_CHECK(prt_comm_allreduce_start(c, v, 2, PRT_F32, PRT_COMM_SUM, &h));
    PRT_CHECK(prt_comm_wait(c, h));
    *loss = v[0] / (float)t->size;
    *correct = (int64_t)llround(v[1]);
    return PRT_OK;
}

/* --timeline: records steps [skip, skip + steps) of the run. */
static void timeline_window(trainer *t, int64_t global) {
    if (!t->trace) return;
    bool on = global >= t->a.timeline_skip && global < t->a.timeline_skip + t->a.timeline_steps;
    prt_vm_set_trace(t->vm, on ? t->trace : NULL);
    prt_comm_set_trace(t->comm, on ? t->trace : NULL);
}

/* PARROTS_TEST_FAULT=RANK:STEP:ACTION (tests only): rank RANK raises SIGKILL
 * (ACTION kill) or SIGSTOP (stop) just before it runs global step STEP (0-based),
 * as a process that crashed or hangs would. Returns the signal, 0: none. */
static int test_fault(int rank, int64_t *step) {
    const char *spec = getenv("PARROTS_TEST_FAULT");
    char *end, action[8];
    if (!spec || !*spec) return 0;
    long r = strtol(spec, &end, 10);
    if (*end != ':' || r != rank) return 0;
    *step = strtoll(end + 1, &end, 10);
    if (*end != ':' || snprintf(action, sizeof action, "%s", end + 1) >= (int)sizeof action) return 0;
    return !strcmp(action, "kill") ? SIGKILL : !strcmp(action, "stop") ? SIGSTOP : 0;
}

/* The epochs: one program run per batch, the test pass at each epoch's end. A
 * non-finite loss prints the divergence message and sets *diverged. */
static prt_status run_epochs(trainer *t, bool *diverged) {
    prt_context *ctx = t->ctx;
    int64_t fault_step = -1;
    int fault = test_fault(t->rank, &fault_step);
    prt_tensor *x = prt_vm_find(t->vm, t->g->values[t->g->inputs[0]].name);
    prt_tensor *lab = prt_vm_find(t->vm, t->g->values[t->ti.labels].name);
    const prt_tensor *loss_t = prt_vm_find(t->vm, t->g->values[t->ti.loss].name);
    const prt_tensor *logits = prt_vm_find(t->vm, t->g->values[t->ti.logits].name);
    if (!x || !lab || !loss_t || !logits)
        return prt_error(ctx, PRT_ERR_INTERNAL, "the training program lacks its image, label, loss or logits tensor");
    int64_t classes = logits->shape.d[1], batch = t->solver.batch;
    int64_t first_epoch = t->resume ? t->rs.epoch : 1, first_step = t->resume ? t->rs.step + 1 : 1;
    if (t->resume && speaks(t))
        fprintf(stderr, "resumed from %s at epoch %lld step %lld\n", prt_ckpt_path(t->resume),
                (long long)t->rs.epoch, (long long)t->rs.step);
    for (int64_t epoch = first_epoch; epoch <= t->solver.epochs; epoch++) {
        cli_progress_epoch_start(&t->pr, epoch);
        for (int64_t step = epoch == first_epoch ? first_step : 1; step <= t->spe; step++) {
            int64_t n;
            PRT_CHECK(prt_loader_next(t->ld, PRT_F32P(x), (int32_t *)lab->data, &n));
            if (n != batch)
                return prt_error(ctx, PRT_ERR_INTERNAL, "the loader gave %lld samples at epoch %lld step %lld, not %lld",
                                 (long long)n, (long long)epoch, (long long)step, (long long)batch);
            int64_t global = (int64_t)prt_vm_get_step(t->vm);
            if (fault && global == fault_step) raise(fault);
            timeline_window(t, global);
            PRT_CHECK(prt_vm_run(t->vm));
            double loss = PRT_F32P(loss_t)[0];
            int64_t correct = cli_count_correct(PRT_F32P(logits), batch, classes, (const int32_t *)lab->data);
            PRT_CHECK(job_metrics(t, &loss, &correct));
            if (!isfinite(loss)) {
                cli_progress_break(&t->pr);
                fprintf(stderr,
                        "parrots train: training diverged at epoch %lld step %lld (global step %lld): loss is %s; "
                        "try a smaller solver.lr (now %g)\n",
                        (long long)epoch, (long long)step, (long long)global + 1, isnan(loss) ? "nan" : "inf",
                        t->solver.lr);
                *diverged = true;
                return PRT_OK;
            }
            PRT_CHECK(cli_progress_step(&t->pr, epoch, step, loss, correct, batch * t->size,
                                        prt_lr_at(&t->solver, t->spe, global)));
            if (t->a.save_every > 0 && (global + 1) % t->a.save_every == 0 && t->rank == 0)
                PRT_CHECK(save_checkpoint(t, epoch, step));
        }
        int64_t n;
        PRT_CHECK(prt_loader_next(t->ld, PRT_F32P(x), (int32_t *)lab->data, &n));
        if (n != 0)
            return prt_error(ctx, PRT_ERR_INTERNAL, "the loader did not end epoch %lld after %lld batches",
                             (long long)epoch, (long long)t->spe);
        cli_progress_train_done(&t->pr);
        timeline_window(t, -1);
        double test_loss = 0, test_acc = 0;
        if (t->rank == 0) {
            PRT_CHECK(cli_eval_from_vm(&t->ev, t->vm));
            PRT_CHECK(cli_eval_run(&t->ev, &test_loss, &test_acc));
        }
        int64_t last = (int64_t)prt_vm_get_step(t->vm) - 1;
        if (t->rank == 0)
            PRT_CHECK(cli_progress_epoch_end(&t->pr, epoch, test_loss, test_acc, prt_lr_at(&t->solver, t->spe, last)));
        t->final_acc = test_acc;
        t->epochs_done = epoch;
    }
    if (first_epoch > t->solver.epochs && t->rank == 0) { /* resumed after the last epoch: the restored weights */
        double test_loss;
        PRT_CHECK(cli_eval_from_vm(&t->ev, t->vm));
        PRT_CHECK(cli_eval_run(&t->ev, &test_loss, &t->final_acc));
        t->epochs_done = t->solver.epochs;
    }
    return PRT_OK;
}

static void trainer_close(trainer *t) {
    if (t->pr_open) cli_progress_close(&t->pr);
    prt_trace_destroy(t->trace);
    cli_eval_close(&t->ev);
    prt_loader_destroy(t->ld);
    prt_vm_destroy(t->vm);
    prt_ckpt_destroy(t->ctx, t->resume);
    prt_program_destroy(t->ctx, t->p);
    prt_graph_destroy(t->g);
    prt_dataset_destroy(t->train);
    prt_dataset_destroy(t->test);
}

/* Started by mpirun (or another MPI launcher)? */
static bool under_mpi(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MV2_COMM_WORLD_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return true;
    return false;
}

/* The communicator and, with --device cuda, this rank's GPU: --comm auto under
 * mpirun is MPI on the CPU and NCCL on GPUs (bootstrapped over MPI, one GPU per
 * rank: cuda:N gives local rank r GPU N + r); alone, the one-rank backend. The
 * GPU is opened before anything else is read or written, so a machine without
 * one stops here with the CUDA error. */
static prt_status open_comm(trainer *t) {
    prt_comm_options o = {.struct_size = sizeof o, .timeout_s = (double)t->a.comm_timeout};
    const char *c = t->a.comm;
    bool auto_mpi = !strcmp(c, "auto") && under_mpi();
    bool gpu = t->a.gpu_index >= 0;
    bool nccl = !strcmp(c, "nccl") || (gpu && auto_mpi);
    bool mpi = nccl || !strcmp(c, "mpi") || auto_mpi;
    if (gpu && !mpi) PRT_CHECK(prt_cuda_device_create(t->ctx, t->a.gpu_index, &t->gpu));
    PRT_CHECK(mpi ? prt_comm_create_mpi(t->ctx, &o, &t->comm) : prt_comm_create_local(t->ctx, &o, &t->comm));
    t->rank = prt_comm_rank(t->comm);
    t->size = prt_comm_size(t->comm);
    if (nccl) {
        t->boot = t->comm;
        /* every rank learns of a rank without its GPU, instead of waiting for it in NCCL's set-up */
        prt_status st = prt_cuda_device_create(t->ctx, t->a.gpu_index + t->boot->local_rank, &t->gpu);
        st = agree(t, st, "opening the GPUs");
        t->comm = NULL;
        PRT_CHECK(st);
        PRT_CHECK(prt_comm_create_nccl(t->ctx, &o, t->boot, t->gpu, &t->comm));
    }
    /* ranks sharing a machine share its cores */
    if (t->a.threads <= 0 && t->comm->local_size > 1) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        long per = cores / t->comm->local_size;
        prt_context_set_threads(t->ctx, per < 1 ? 1 : (int)per);
    }
    return PRT_OK;
}

static prt_status write_timeline(trainer *t) {
    prt_vm_set_trace(t->vm, NULL);
    prt_comm_set_trace(t->comm, NULL);
    PRT_CHECK(prt_trace_write(t->trace, t->comm, t->a.timeline));
    if (t->rank == 0 && !t->a.quiet)
        fprintf(stderr, "timeline written to %s (%zu events on rank 0%s)\n", t->a.timeline, prt_trace_count(t->trace),
                prt_trace_dropped(t->trace) ? ", some dropped: see the file" : "");
    return PRT_OK;
}

int cli_train(int argc, char **argv) {
    trainer t;
    memset(&t, 0, sizeof t);
    train_args *a = &t.a;
    a->data = "fashion-mnist";
    a->epochs = a->batch = -1;
    a->keep = 3;
    a->comm = "auto";
    a->device = "cpu";
    a->cuda_graph = "auto";
    a->fuse = "auto";
    a->precision = "fp32";
    a->comm_timeout = (long long)PRT_COMM_DEFAULT_TIMEOUT_S;
    a->timeline_steps = 5;
    a->timeline_skip = 1;
    const cli_opt opts[] = {
        {"--data", CLI_STRING, "NAME", "dataset: fashion-mnist (default) or synthetic:N", &a->data},
        {"--epochs", CLI_INT, "N", "epochs (overrides solver.epochs)", &a->epochs},
        {"--batch", CLI_INT, "B", "batch size (overrides solver.batch)", &a->batch},
        {"--set", CLI_STRING, "solver.KEY=VALUE", "override a solver setting (repeatable)", NULL},
        {"--seed", CLI_INT, "S", "seed of initial weights, shuffling, augmentation, dropout (default 0x5eed)", &a->seed},
        {"--threads", CLI_INT, "T", "CPU threads (default: all cores)", &a->threads},
        {"--metrics", CLI_STRING, "FILE", "write JSON lines: one per logged step and one per epoch", &a->metrics},
        {"--plot", CLI_STRING, "FILE", "draw the loss and accuracy curves (.svg or .png)", &a->plot},
        {"--save", CLI_STRING, "FILE", "write the trained weights (see docs/weights-format.md)", &a->save},
        {"--log-every", CLI_INT, "K", "log every K steps (default: 10 times per epoch)", &a->log_every},
        {"--augment", CLI_FLAG, NULL, "random horizontal flip, and crop with --crop-pad (the default)", &a->augment},
        {"--no-augment", CLI_FLAG, NULL, "no augmentation", &a->no_augment},
        {"--crop-pad", CLI_INT, "P", "random crop: pad P zero pixels, crop back at a random offset (default 0)",
         &a->crop_pad},
        {"--train-limit", CLI_INT, "N", "train on the first N training samples only", &a->train_limit},
        {"--test-limit", CLI_INT, "M", "test on the first M test samples only", &a->test_limit},
        {"--recompute", CLI_STRING, "MODE",
         "what backward recomputes instead of keeping: auto (default: cheap when it saves a quarter of the memory "
         "or is needed to fit --memory-limit, segments only to fit it), none, cheap (batch norm, ReLU and other "
         "cheap outputs, no convolution) or segments (whole segments; see docs/memory.md)", &a->recompute},
        {"--memory-limit", CLI_STRING, "SIZE",
         "fail before training when the planned step needs more (such as 8GiB, 512MiB, 1.5GB; default: no limit)",
         &a->memory_limit},
        {"--save-every", CLI_INT, "N", "write a checkpoint every N steps, and at the end (needs --checkpoint-dir)",
         &a->save_every},
        {"--checkpoint-dir", CLI_STRING, "DIR", "where checkpoints go (ckpt-<step>.prtc; see docs/checkpoints.md)",
         &a->ckpt_dir},
        {"--keep", CLI_INT, "K", "keep the newest K checkpoints (default 3)", &a->keep},
        {"--resume", CLI_STRING, "DIR|FILE", "continue from a checkpoint, or the newest in DIR", &a->resume},
        {"--device", CLI_STRING, "DEV",
         "cpu (default), or cuda[:N]: train and evaluate on the N-th GPU (under mpirun one GPU per rank, N + the "
         "local rank; see docs/gpu.md)", &a->device},
        {"--cuda-graph", CLI_STRING, "MODE",
         "with --device cuda: capture the training step once as a CUDA graph and replay it: auto (default, where "
         "the program allows it), on (an error where it cannot) or off (docs/gpu.md)", &a->cuda_graph},
        {"--fuse", CLI_STRING, "WHAT",
         "bn-relu: each batch norm whose output only a ReLU reads becomes one fused op (same results, one pass "
         "over memory less); none; or auto (default: bn-relu with --device cuda, none on the CPU)", &a->fuse},
        {"--precision", CLI_STRING, "P",
         "fp32 (default) or bf16: bf16 activations, f32 master weights and optimizer state (needs --device cuda; "
         "docs/gpu.md)", &a->precision},
        {"--comm", CLI_STRING, "BACKEND",
         "data-parallel transport: auto (default: under mpirun nccl with --device cuda, else mpi; alone, local), "
         "mpi, nccl (GPUs only), or local (one process)", &a->comm},
        {"--comm-timeout", CLI_INT, "S",
         "seconds a collective may take before every rank stops with a message naming it (default 300)",
         &a->comm_timeout},
        {"--bucket-size", CLI_STRING, "SIZE",
         "gradient bucket size for the overlapped allreduce (default 25MiB; the first bucket is at most 1 MiB)",
         &a->bucket_size},
        {"--sync-bn", CLI_FLAG, NULL,
         "synchronised batch norm: statistics over the combined batch of all ranks (N ranks of batch B then "
         "compute what one rank of batch N*B would)", &a->sync_bn},
        {"--timeline", CLI_STRING, "FILE.json",
         "write a Chrome trace of some steps: every instruction, each bucket's allreduce and every wait, per rank "
         "(see docs/timeline.md; summarise with parrots timeline-summary)", &a->timeline},
        {"--timeline-steps", CLI_INT, "N", "steps the timeline records (default 5)", &a->timeline_steps},
        {"--timeline-skip", CLI_INT, "K", "steps run before the timeline starts (default 1: skips the warm-up step)",
         &a->timeline_skip},
        {"--quiet", CLI_FLAG, NULL, "no progress output; epoch summaries only", &a->quiet},
        {"--verbose", CLI_FLAG, NULL, "debug logging", &a->verbose},
        {0},
    };
    char **rest = malloc(sizeof(char *) * (size_t)(argc + 1));
    if (!rest) return CLI_FAIL;
    int n_rest, rc = take_sets(a, argc, argv, rest, &n_rest);
    const char *pos[1];
    if (rc == CLI_OK) rc = cli_parse("train", usage_line, opts, n_rest, rest, pos, 1, 1);
    free(rest);
    if (rc) return rc < 0 ? CLI_OK : rc;
    a->net = pos[0];
    if (a->crop_pad > 64) {
        fprintf(stderr, "parrots train: --crop-pad %lld is more than 64 pixels\n", a->crop_pad);
        return CLI_USAGE;
    }
    if (a->augment && a->no_augment) {
        fprintf(stderr, "parrots train: --augment and --no-augment contradict each other\n");
        return CLI_USAGE;
    }
    if (a->save_every < 0 || a->keep < 1 || a->keep > 1000000) {
        fprintf(stderr, "parrots train: %s\n", a->save_every < 0 ? "--save-every must be at least 1"
                                                                 : "--keep must be between 1 and 1000000");
        return CLI_USAGE;
    }
    if (a->save_every > 0 && !a->ckpt_dir) {
        fprintf(stderr, "parrots train: --save-every needs --checkpoint-dir DIR\n");
        return CLI_USAGE;
    }
    if ((rc = cli_parse_memory_limit("train", a->memory_limit, &a->limit)) != CLI_OK ||
        (rc = cli_parse_recompute("train", a->recompute, CLI_RECOMPUTE_AUTO, &a->mode)) != CLI_OK)
        return rc;
    if (a->comm_timeout < 1 || a->timeline_steps < 1 || a->timeline_skip < 0) {
        fprintf(stderr, "parrots train: %s\n",
                a->comm_timeout < 1     ? "--comm-timeout must be at least 1 second"
                : a->timeline_steps < 1 ? "--timeline-steps must be at least 1"
                                        : "--timeline-skip must not be negative");
        return CLI_USAGE;
    }
    if (strcmp(a->comm, "auto") && strcmp(a->comm, "mpi") && strcmp(a->comm, "local") && strcmp(a->comm, "nccl")) {
        fprintf(stderr, "parrots train: --comm '%s': expected auto, mpi, nccl or local\n", a->comm);
        return CLI_USAGE;
    }
    if ((rc = cli_parse_device("train", a->device, &a->gpu_index)) != CLI_OK) return rc;
    if ((rc = cli_parse_fuse("train", a->fuse, a->gpu_index >= 0, &a->fuse_bn_relu)) != CLI_OK) return rc;
    if ((rc = cli_parse_precision("train", a->precision, a->gpu_index >= 0, &a->prec)) != CLI_OK ||
        (rc = cli_parse_cuda_graph("train", a->cuda_graph, &a->graph_mode)) != CLI_OK)
        return rc;
    bool on_gpu = a->gpu_index >= 0;
    if (!on_gpu && !strcmp(a->comm, "nccl")) {
        fprintf(stderr, "parrots train: --comm nccl needs --device cuda (NCCL reduces GPU memory)\n");
        return CLI_USAGE;
    }
    if (on_gpu && !strcmp(a->comm, "mpi")) {
        fprintf(stderr, "parrots train: --comm mpi reduces host memory, but with --device cuda the gradients are on "
                        "the GPU: use --comm nccl (or auto)\n");
        return CLI_USAGE;
    }
    if (on_gpu && a->sync_bn) {
        fprintf(stderr, "parrots train: --sync-bn is not supported with --device cuda yet (the CUDA batch norm "
                        "cannot reduce its statistics over the ranks); train without it, or on the CPU\n");
        return CLI_USAGE;
    }
    if (a->bucket_size && (!prt_mem_parse_bytes(a->bucket_size, &a->bucket_bytes) || a->bucket_bytes < 4)) {
        fprintf(stderr, "parrots train: --bucket-size '%s': expected a size of at least 4 bytes, such as 25MiB or 512KiB\n",
                a->bucket_size);
        return CLI_USAGE;
    }
    prt_context_options co = {.struct_size = sizeof co,
                              .log_level = a->verbose ? PRT_LOG_DEBUG : PRT_LOG_INFO,
                              .seed = (uint64_t)a->seed,
                              .num_threads = (int)a->threads};
    rc = cli_start("train", &co, a->verbose, &t.ctx);
    if (rc != CLI_OK) return rc;
    prt_status s = PRT_OK;
    bool diverged = false, joined = false;
    double t0 = prt_now();
    PRT_CHECK_GOTO(open_comm(&t), s, done);
    if (a->resume) s = open_resume(&t);
    if (s == PRT_OK) s = setup(&t);
    PRT_CHECK_GOTO(agree(&t, s, "set-up"), s, done);
    PRT_CHECK_GOTO(join(&t), s, done);
    joined = true;
    s = run_epochs(&t, &diverged);
    if (s == PRT_OK && t.trace) s = write_timeline(&t);
    if (s == PRT_OK && !diverged && a->ckpt_dir && t.rank == 0) s = save_checkpoint(&t, t.solver.epochs + 1, 0);
    if (t.rank != 0) goto done;
    if (a->plot && t.pr_open && (t.pr.n_steps > 0 || t.pr.n_epochs > 0)) {
        char title[256];
        cli_curves cv;
        snprintf(title, sizeof title, "%s on %s: %s lr %g, batch %lld", t.g->name, a->data,
                 prt_optimizer_name(t.solver.optimizer), t.solver.lr, (long long)t.solver.batch);
        cli_progress_curves(&t.pr, title, &cv);
        prt_status ps = cli_plot_write(t.ctx, a->plot, &cv);
        if (s == PRT_OK) s = ps;
        if (ps == PRT_OK && !a->quiet) fprintf(stderr, "plot written to %s\n", a->plot);
    }
    if (s != PRT_OK || diverged) goto done;
    if (a->save) {
        PRT_CHECK_GOTO(prt_weights_save(t.ctx, a->save, t.ev.g, t.ev.vm), s, done);
        if (!a->quiet) fprintf(stderr, "weights written to %s\n", a->save);
    }
    printf("trained %lld epoch%s in %.1f s; final test_acc %.4f\n", (long long)t.epochs_done,
           t.epochs_done == 1 ? "" : "s", prt_now() - t0, t.final_acc);
done:
    if (t.pr_open) cli_progress_break(&t.pr);
    if (s != PRT_OK && t.size > 1) prt_error_prefix(t.ctx, s, "rank %d", t.rank);
    rc = diverged || t.over_limit ? CLI_FAIL : s == PRT_OK ? CLI_OK : cli_fail("train", t.ctx, s);
    /* a rank that failed after the ranks joined takes the job down, so that no
     * other rank is left waiting for it in a collective */
    if (rc != CLI_OK && joined && t.size > 1) {
        fflush(stdout);
        fflush(stderr);
        prt_comm_abort(t.comm ? t.comm : t.boot, rc);
    }
    trainer_close(&t);
    prt_comm_destroy(t.comm);
    prt_comm_destroy(t.boot);
    prt_cuda_device_destroy(t.gpu);
    prt_context_destroy(t.ctx);
    return rc;
}

/* `parrots profile NET.yaml -o FILE`: measures every instruction of a compiled
 * program (training step with --train) through the VM's trace, fits a time
 * model per op kind and writes a profile; with --roofline, derives one from a
 * device's peak figures instead. `parrots simulate NET.yaml --profile FILE`:
 * predicts data-parallel step time, images/s and scaling efficiency on N GPUs
 * by replaying the compiled training step (scheduler/simulate_api.h,
 * docs/scaling.md). */
#include "frontends/cli/cli_impl.h"
#include "runtime/trace.h"
#include "scheduler/scheduler_impl.h"
#include "scheduler/simulate_api.h"
#include "vm/vm_impl.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- shared ------------------------------------------------------------------------- */

typedef struct sim_maker {
    prt_context *ctx;
    const char *path;
} sim_maker;

static prt_status make_graph(void *user, prt_graph **out) {
    sim_maker *m = user;
    return cli_load(m->ctx, m->path, out);
}

/* The training step at `batch` (< 0: the file's solver batch), compiled as
 * `parrots train` compiles it. */
static prt_status build_train(prt_context *ctx, const char *path, long long batch, int want, size_t bucket_bytes,
                              cli_train_program *tp, int64_t *batch_out) {
    sim_maker mk = {ctx, path};
    prt_graph *g = NULL;
    prt_solver solver;
    PRT_CHECK(cli_load(ctx, path, &g));
    prt_status st = cli_make_solver(ctx, g, -1, batch, NULL, 0, &solver);
    prt_graph_destroy(g);
    PRT_CHECK(st);
    *batch_out = solver.batch;
    return cli_build_training(ctx, make_graph, &mk, &solver, 1, solver.batch, want, 0, bucket_bytes, tp);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static bool is_call(prt_instr i) {
    unsigned op = PRT_VM_RAW_OP(i);
    return op == PRT_OP_CALL || op == PRT_OP_RECOMPUTE;
}

/* ---- profile --------------------------------------------------------------------------- */

/* "AMD EPYC, 2 cores" from /proc/cpuinfo where it exists. */
static void cpu_name(char *buf, size_t cap) {
    char model[256] = "CPU";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, "model name", 10) != 0) continue;
            const char *c = strchr(line, ':');
            if (!c) continue;
            c++;
            while (*c == ' ' || *c == '\t') c++;
            snprintf(model, sizeof model, "%s", c);
            model[strcspn(model, "\n")] = '\0';
            break;
        }
        fclose(f);
    }
    snprintf(buf, cap, "%s, %ld cores", model, sysconf(_SC_NPROCESSORS_ONLN));
}

static void today(char *buf, size_t cap) {
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, cap, "%Y-%m-%d", &tm);
}

static void command_line(const char *cmd, int argc, char **argv, char *buf, size_t cap) {
    size_t o = (size_t)snprintf(buf, cap, "parrots %s", cmd);
    for (int i = 0; i < argc && o < cap; i++) o += (size_t)snprintf(buf + o, cap - o, " %s", argv[i]);
}

/* X(name, device, peak FLOP/s, memory bytes/s, seconds per instruction, "source") */
#define CLI_ROOFLINES(X)                                                                                         \
    X("h200", "NVIDIA H200 SXM (roofline, not measured)", 494.7e12, 4.8e12, 2e-6,                                \
      "TF32 dense tensor-core peak 494.7 TFLOP/s, HBM3e 4.8 TB/s (NVIDIA H200 datasheet); 2 us per kernel")

typedef struct roof_def {
    const char *name;
    prt_roofline rf;
} roof_def;

static const roof_def rooflines[] = {
#define X(nm, dev, pk, bw, l, src) {nm, {dev, pk, bw, l}},
    CLI_ROOFLINES(X)
#undef X
};

typedef struct op_stat {
    const char *op;
    int calls;
    double measured, fitted; /* seconds per step */
    int n, cap;
    prt_fit_sample *s;
} op_stat;

/* Per instruction, the median over the measured steps of its trace span. */
static prt_status call_medians(prt_context *ctx, const prt_program *p, const prt_trace *tr, int steps, double *med,
                               double *step_med) {
    size_t n_ev;
    const prt_trace_event *ev = prt_trace_events(tr, &n_ev);
    int n_calls = 0;
    for (int pc = 0; pc < p->n_code; pc++) n_calls += is_call(p->code[pc]);
    double *d = prt_calloc(ctx, (size_t)steps * (size_t)(n_calls + 1), sizeof *d);
    double *steps_s = prt_calloc(ctx, (size_t)steps + 1, sizeof *steps_s);
    int *pcs = prt_calloc(ctx, (size_t)n_calls + 1, sizeof *pcs);
    prt_status st = PRT_OK;
    if (!d || !steps_s || !pcs) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "profile: out of memory");
        goto done;
    }
    for (int pc = 0, i = 0; pc < p->n_code; pc++)
        if (is_call(p->code[pc])) pcs[i++] = pc;
    /* the compute spans of step s are the s-th run of n_calls spans, in program order */
    int step = -1, i = 0, n_steps = 0;
    for (size_t e = 0; e < n_ev; e++) {
        if (ev[e].cat == PRT_TRACE_step) {
            if (n_steps < steps) steps_s[n_steps++] = ev[e].t1 - ev[e].t0;
            continue;
        }
        if (ev[e].cat != PRT_TRACE_compute) continue;
        if (i == 0) step++;
        if (step >= steps) break;
        const prt_call_desc *c = &p->k[PRT_VM_RAW_X(p->code[pcs[i]])].call;
        if (strcmp(ev[e].name, c->node) != 0) {
            st = prt_error(ctx, PRT_ERR_INTERNAL, "profile: trace span %zu is '%s', expected instruction %d '%s'", e,
                           ev[e].name, pcs[i], c->node);
            goto done;
        }
        d[(size_t)i * (size_t)steps + (size_t)step] = ev[e].t1 - ev[e].t0;
        i = (i + 1) % n_calls;
    }
    if (step + 1 < steps || i != 0 || n_steps < steps) {
        st = prt_error(ctx, PRT_ERR_INTERNAL, "profile: the trace holds %d of %d steps (%zu dropped events)", step + 1,
                       steps, prt_trace_dropped(tr));
        goto done;
    }
    for (int pc = 0; pc < p->n_code; pc++) med[pc] = 0;
    for (int k = 0; k < n_calls; k++) {
        double *row = d + (size_t)k * (size_t)steps;
        qsort(row, (size_t)steps, sizeof *row, cmp_double);
        med[pcs[k]] = steps % 2 ? row[steps / 2] : 0.5 * (row[steps / 2 - 1] + row[steps / 2]);
    }
    qsort(steps_s, (size_t)steps, sizeof *steps_s, cmp_double);
    *step_med = steps % 2 ? steps_s[steps / 2] : 0.5 * (steps_s[steps / 2 - 1] + steps_s[steps / 2]);
done:
    prt_free(ctx, d, 0);
    prt_free(ctx, steps_s, 0);
    prt_free(ctx, pcs, 0);
    return st;
}

static op_stat *stat_of(op_stat *stats, int *n, const char *op) {
    for (int i = 0; i < *n; i++)
        if (strcmp(stats[i].op, op) == 0) return &stats[i];
    stats[*n] = (op_stat){.op = op};
    return &stats[(*n)++];
}

/* Fits every op kind of p from med (seconds per pc) into pr; fills stats. */
static prt_status fit_profile(prt_context *ctx, const prt_program *p, const double *med, prt_profile *pr,
                              op_stat *stats, int *n_stats) {
    int64_t *fl = prt_calloc(ctx, (size_t)p->n_code + 1, sizeof *fl);
    int64_t *by = prt_calloc(ctx, (size_t)p->n_code + 1, sizeof *by);
    prt_status st = PRT_OK;
    *n_stats = 0;
    if (!fl || !by) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "profile: out of memory");
        goto done;
    }
    PRT_CHECK_GOTO(prt_sim_costs(ctx, p, fl, by), st, done);
    for (int pc = 0; pc < p->n_code; pc++) {
        if (!is_call(p->code[pc])) continue;
        const prt_call_desc *c = &p->k[PRT_VM_RAW_X(p->code[pc])].call;
        op_stat *o = stat_of(stats, n_stats, p->ops[c->op].name);
        PRT_CHECK_GOTO(prt_grow(ctx, (void **)&o->s, &o->cap, o->n + 1, sizeof *o->s), st, done);
        o->s[o->n++] = (prt_fit_sample){(double)fl[pc], (double)by[pc], med[pc]};
        o->calls++;
        o->measured += med[pc];
    }
    for (int i = 0; i < *n_stats; i++) {
        op_stat *o = &stats[i];
        double k[3];
        PRT_CHECK_GOTO(prt_sim_fit(ctx, o->s, o->n, k), st, done);
        PRT_CHECK_GOTO(prt_profile_set(ctx, pr, o->op, k[0], k[1], k[2], o->n), st, done);
        for (int j = 0; j < o->n; j++) o->fitted += k[0] + k[1] * o->s[j].flops + k[2] * o->s[j].bytes;
    }
done:
    prt_free(ctx, fl, 0);
    prt_free(ctx, by, 0);
    return st;
}

static prt_status measure(prt_context *ctx, const prt_program *p, bool train, long long steps, const char *cmdline,
                          prt_profile **out) {
    prt_vm *vm = NULL;
    prt_trace *tr = NULL;
    prt_profile *pr = NULL;
    double *med = prt_calloc(ctx, (size_t)p->n_code + 1, sizeof *med);
    op_stat *stats = prt_calloc(ctx, (size_t)p->n_ops + 1, sizeof *stats);
    int n_stats = 0, n_calls = 0;
    prt_status st = PRT_OK;
    if (!med || !stats) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "profile: out of memory");
        goto done;
    }
    for (int pc = 0; pc < p->n_code; pc++) n_calls += is_call(p->code[pc]);
    prt_vm_options vo = {.training = train};
    PRT_CHECK_GOTO(prt_vm_create(ctx, p, prt_cpu_device(ctx), &vo, &vm), st, done);
    for (int i = 0; i < prt_vm_n_inputs(vm); i++) {
        prt_tensor *x = prt_vm_input(vm, i);
        int64_t n = prt_shape_count(&x->shape);
        if (x->dtype == PRT_F32)
            prt_rng_fill_normal(prt_hash_str("input", ctx->seed + (uint64_t)i), PRT_F32P(x), n, 0.0f, 1.0f);
        else
            memset(x->data, 0, (size_t)n * prt_dtype_size(x->dtype)); /* labels: class 0 */
    }
    /* the warm-up step: oneDNN primitives JIT, pages fault in */
    PRT_CHECK_GOTO(prt_vm_run(vm), st, done);
    PRT_CHECK_GOTO(prt_trace_create(ctx, 0, (size_t)steps * (size_t)(n_calls + 4) + 16, &tr), st, done);
    prt_vm_set_trace(vm, tr);
    for (long long s = 0; s < steps; s++) PRT_CHECK_GOTO(prt_vm_run(vm), st, done);
    prt_vm_set_trace(vm, NULL);
    double step_med = 0;
    PRT_CHECK_GOTO(call_medians(ctx, p, tr, (int)steps, med, &step_med), st, done);
    char dev[320], date[32];
    cpu_name(dev, sizeof dev);
    today(date, sizeof date);
    PRT_CHECK_GOTO(prt_profile_new(ctx, dev, date, cmdline, ctx->num_threads > 0 ? ctx->num_threads
                                                                                   : (int)sysconf(_SC_NPROCESSORS_ONLN),
                                   &pr),
                   st, done);
    PRT_CHECK_GOTO(fit_profile(ctx, p, med, pr, stats, &n_stats), st, done);
    double meas = 0, fit = 0;
    printf("%-20s %6s %12s %12s %9s  %s\n", "op", "calls", "measured_ms", "fitted_ms", "error", "a_us  b_ns/kFLOP  c_ns/KB");
    for (int i = 0; i < n_stats; i++) {
        const op_stat *o = &stats[i];
        const prt_op_time *m = prt_profile_find(pr, o->op);
        printf("%-20s %6d %12.3f %12.3f %+8.1f%%  %.3g  %.3g  %.3g\n", o->op, o->calls, 1e3 * o->measured,
               1e3 * o->fitted, o->measured > 0 ? 100.0 * (o->fitted - o->measured) / o->measured : 0.0, 1e6 * m->a,
               1e12 * m->b, 1e12 * m->c);
        meas += o->measured, fit += o->fitted;
    }
    printf("\nstep: measured %.3f ms (median of %lld traced steps after 1 warm-up; instructions' medians sum to "
           "%.3f ms), fitted %.3f ms (%+.1f%% of the instructions' sum)\n",
           1e3 * step_med, steps, 1e3 * meas, 1e3 * fit, meas > 0 ? 100.0 * (fit - meas) / meas : 0.0);
    *out = pr, pr = NULL;
done:
    for (int i = 0; i < n_stats; i++) prt_free(ctx, stats[i].s, 0);
    prt_free(ctx, stats, 0);
    prt_free(ctx, med, 0);
    prt_profile_destroy(ctx, pr);
    prt_trace_destroy(tr);
    prt_vm_destroy(vm);
    return st;
}

int cli_profile(int argc, char **argv) {
    bool train = false, verbose = false;
    long long batch = -1, steps = 5, threads = 0, target_ms = 0;
    const char *out = NULL, *recompute = NULL, *roofline = NULL;
    const cli_opt opts[] = {
        {"--output", CLI_STRING, "FILE", "the profile to write (also -o FILE)", &out},
        {"--batch", CLI_INT, "N", "batch size (default: the file's solver.batch with --train, otherwise 1)", &batch},
        {"--train", CLI_FLAG, NULL, "profile the training step (as parrots train compiles it) instead of forward",
         &train},
        {"--steps", CLI_INT, "K", "traced steps after one untraced warm-up step (default 5); per instruction the "
                                  "median over them is fitted", &steps},
        {"--threads", CLI_INT, "T", "CPU threads (default: all cores)", &threads},
        {"--recompute", CLI_STRING, "MODE", "with --train: auto (default), none, cheap or segments", &recompute},
        {"--roofline", CLI_STRING, "DEVICE",
         "derive the profile from DEVICE's peak figures instead of measuring (h200); nothing runs", &roofline},
        {"--target-ms", CLI_INT, "MS", "with --roofline: calibrate so the 1-device step takes MS milliseconds",
         &target_ms},
        {"--verbose", CLI_FLAG, NULL, "debug logging", &verbose},
        {0},
    };
    char **args = malloc(sizeof(char *) * (size_t)(argc + 1));
    if (!args) return CLI_FAIL;
    for (int i = 0; i < argc; i++) args[i] = !strcmp(argv[i], "-o") ? "--output" : argv[i];
    const char *pos[1];
    int rc = cli_parse("profile",
                       "NET.yaml -o FILE [--batch N] [--train] [--steps K] [--threads T] [--recompute MODE] "
                       "[--roofline DEVICE --target-ms MS]",
                       opts, argc, args, pos, 1, 1);
    free(args);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (!out) {
        fprintf(stderr, "parrots profile: -o FILE is required (the profile to write)\n");
        return CLI_USAGE;
    }
    if (batch == 0 || steps < 1 || steps > 1000) {
        fprintf(stderr, "parrots profile: %s\n",
                batch == 0 ? "--batch must be at least 1" : "--steps must be from 1 to 1000");
        return CLI_USAGE;
    }
    if (target_ms && !roofline) {
        fprintf(stderr, "parrots profile: --target-ms calibrates a --roofline profile\n");
        return CLI_USAGE;
    }
    if (recompute && !train) {
        fprintf(stderr, "parrots profile: --recompute rewrites the training step: add --train\n");
        return CLI_USAGE;
    }
    const roof_def *rd = NULL;
    if (roofline) {
        for (size_t i = 0; i < sizeof rooflines / sizeof rooflines[0]; i++)
            if (!strcmp(rooflines[i].name, roofline)) rd = &rooflines[i];
        if (!rd) {
            fprintf(stderr, "parrots profile: --roofline '%s': expected h200\n", roofline);
            return CLI_USAGE;
        }
    }
    int want;
    if ((rc = cli_parse_recompute("profile", recompute, CLI_RECOMPUTE_AUTO, &want)) != CLI_OK) return rc;
    char cmdline[1024];
    command_line("profile", argc, argv, cmdline, sizeof cmdline);

    prt_context_options co = {.struct_size = sizeof co,
                              .log_level = verbose ? PRT_LOG_DEBUG : PRT_LOG_INFO,
                              .num_threads = (int)threads};
    prt_context *ctx;
    if ((rc = cli_start("profile", &co, verbose, &ctx)) != CLI_OK) return rc;
    prt_status s = PRT_OK;
    prt_graph *g = NULL;
    prt_program *p = NULL;
    prt_profile *pr = NULL;
    cli_train_program tp = {0};
    int64_t b = batch < 0 ? 1 : batch;
    if (train) {
        PRT_CHECK_GOTO(build_train(ctx, pos[0], batch, want, 0, &tp, &b), s, done);
        p = tp.p;
    } else {
        PRT_CHECK_GOTO(cli_load(ctx, pos[0], &g), s, done);
        PRT_CHECK_GOTO(prt_vm_compile(g, b, &p), s, done);
    }
    fprintf(stderr, "%s %s: %s, batch %lld, %d instructions\n", rd ? "deriving" : "profiling", pos[0],
            train ? "training step" : "forward pass", (long long)b, p->n_code);
    if (rd) {
        char date[32];
        double k;
        today(date, sizeof date);
        PRT_CHECK_GOTO(prt_profile_roofline(ctx, p, &rd->rf, (double)target_ms * 1e-3, date, cmdline, &pr, &k), s,
                       done);
        printf("roofline %s: calibration factor %.4f (efficiencies x %.4f; conv at %.1f%% of peak FLOP/s)\n",
               rd->name, k, k, 100.0 * 0.60 * k);
    } else {
        PRT_CHECK_GOTO(measure(ctx, p, train, steps, cmdline, &pr), s, done);
    }
    PRT_CHECK_GOTO(prt_profile_save(ctx, pr, out), s, done);
    fprintf(stderr, "profile written to %s\n", out);
done:
    rc = s == PRT_OK ? CLI_OK : cli_fail("profile", ctx, s);
    prt_profile_destroy(ctx, pr);
    if (!train) prt_program_destroy(ctx, p);
    cli_train_program_free(ctx, &tp);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
    return rc;
}

/* ---- simulate ---------------------------------------------------------------------------- */

#define MAX_GPU_COUNTS 64
#define MAX_GPUS (1 << 20)

static int parse_gpus(const char *text, int *gpus, int *n) {
    *n = 0;
    const char *s = text;
    while (*n < MAX_GPU_COUNTS) {
        char *end;
        long v = (*s >= '0' && *s <= '9') ? strtol(s, &end, 10) : -1;
        if (v < 1 || v > MAX_GPUS || (*end != ',' && *end != '\0')) break;
        gpus[(*n)++] = (int)v;
        if (*end == '\0') return CLI_OK;
        s = end + 1;
    }
    fprintf(stderr,
            "parrots simulate: --gpus '%s': expected a comma-separated list of at most %d GPU counts from 1 to %d, "
            "such as 8,16,32\n",
            text, MAX_GPU_COUNTS, MAX_GPUS);
    return CLI_USAGE;
}

static void json_str(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

typedef struct sim_report {
    const char *path, *profile_path;
    const prt_program *p;
    const prt_profile *pr;
    const prt_net_spec *net;
    int64_t batch;
    const char *bucket_source; /* "program", "derived" */
    size_t bucket_bytes;
    int nb;
    double grad_bytes;
    double phase_s[PRT_PHASE_COUNT];
    int n;
    const prt_sim_result *r;
} sim_report;

static int nodes_of(const prt_net_spec *net, int gpus) { return (gpus + net->gpus_per_node - 1) / net->gpus_per_node; }

static void print_text(const sim_report *m) {
    const prt_net_spec *net = m->net;
    char a[32];
    printf("%-16s %s (%s), training step, batch %lld per GPU\n", "network", m->p->name, m->path, (long long)m->batch);
    printf("%-16s %d instructions; %d gradient bucket%s, %s of gradients, ", "program", m->p->n_code, m->nb,
           m->nb == 1 ? "" : "s", prt_mem_format_bytes((size_t)m->grad_bytes, a, sizeof a));
    if (!strcmp(m->bucket_source, "program"))
        printf("the program's own\n");
    else
        printf("derived at %s (%s)\n", prt_mem_format_bytes(m->bucket_bytes, a, sizeof a), m->bucket_source);
    printf("%-16s %s: %s, %d thread%s, %s\n", "profile", m->profile_path, m->pr->device, m->pr->threads,
           m->pr->threads == 1 ? "" : "s", m->pr->date);
    printf("%-16s %s: %d GPUs per node; intra %.4g GB/s, %.3g us; inter %d x %.4g GB/s, %.3g us; topology %s",
           "network model", net->name, net->gpus_per_node, net->intra_bw / 1e9, net->intra_lat * 1e6,
           net->nics_per_node, net->inter_bw / 1e9, net->inter_lat * 1e6,
           net->topology == PRT_SIM_TOPO_hier ? "hier" : "ring");
    if (net->cores_per_node > 0) printf("; %d cores per node shared by its ranks", net->cores_per_node);
    printf("\n%-16s %.2f ms per step on 1 GPU (forward %.2f, backward %.2f, update %.2f)\n\n", "compute",
           1e3 * (m->phase_s[0] + m->phase_s[1] + m->phase_s[2]), 1e3 * m->phase_s[0], 1e3 * m->phase_s[1],
           1e3 * m->phase_s[2]);
    printf("%6s %6s %10s %11s %10s %11s %9s %11s %8s\n", "gpus", "nodes", "step_ms", "images/s", "efficiency",
           "compute_ms", "comm_ms", "exposed_ms", "overlap");
    for (int i = 0; i < m->n; i++) {
        const prt_sim_result *r = &m->r[i];
        char ov[16];
        if (r->comm_s > 0)
            snprintf(ov, sizeof ov, "%.3f", r->overlap_fraction);
        else
            snprintf(ov, sizeof ov, "-");
        printf("%6d %6d %10.2f %11.1f %10.3f %11.2f %9.2f %11.2f %8s\n", r->ranks, nodes_of(net, r->ranks),
               1e3 * r->step_s, (double)r->ranks * (double)m->batch / r->step_s, m->r[0].step_s / r->step_s,
               1e3 * r->compute_s, 1e3 * r->comm_s, 1e3 * r->exposed_comm_s, ov);
    }
}

static void print_json(const sim_report *m) {
    const prt_net_spec *net = m->net;
    printf("{\"network\": ");
    json_str(m->p->name);
    printf(", \"path\": ");
    json_str(m->path);
    printf(", \"batch_per_gpu\": %lld, \"instructions\": %d, \"buckets\": %d, \"bucket_source\": \"%s\", "
           "\"bucket_bytes\": %zu, \"grad_bytes\": %.0f",
           (long long)m->batch, m->p->n_code, m->nb, strcmp(m->bucket_source, "program") ? "derived" : "program", m->bucket_bytes, m->grad_bytes);
    printf(", \"profile\": {\"path\": ");
    json_str(m->profile_path);
    printf(", \"device\": ");
    json_str(m->pr->device);
    printf(", \"threads\": %d, \"date\": ", m->pr->threads);
    json_str(m->pr->date);
    printf("}, \"network_model\": {\"name\": ");
    json_str(net->name);
    printf(", \"gpus_per_node\": %d, \"intra_bw\": %.6g, \"intra_lat\": %.6g, \"inter_bw\": %.6g, \"inter_lat\": "
           "%.6g, \"nics_per_node\": %d, \"cores_per_node\": %d, \"threads_per_rank\": %d, \"topology\": \"%s\"}",
           net->gpus_per_node, net->intra_bw, net->intra_lat, net->inter_bw, net->inter_lat, net->nics_per_node,
           net->cores_per_node, net->threads_per_rank, net->topology == PRT_SIM_TOPO_hier ? "hier" : "ring");
    printf(", \"forward_s\": %.9g, \"backward_s\": %.9g, \"update_s\": %.9g, \"results\": [", m->phase_s[0],
           m->phase_s[1], m->phase_s[2]);
    for (int i = 0; i < m->n; i++) {
        const prt_sim_result *r = &m->r[i];
        printf("%s{\"gpus\": %d, \"nodes\": %d, \"step_s\": %.9g, \"images_per_s\": %.9g, \"efficiency\": %.9g, "
               "\"compute_s\": %.9g, \"comm_s\": %.9g, \"exposed_comm_s\": %.9g, \"overlap_fraction\": ",
               i ? ", " : "", r->ranks, nodes_of(net, r->ranks), r->step_s,
               (double)r->ranks * (double)m->batch / r->step_s, m->r[0].step_s / r->step_s, r->compute_s, r->comm_s,
               r->exposed_comm_s);
        if (r->comm_s > 0)
            printf("%.9g", r->overlap_fraction);
        else
            printf("null");
        printf(", \"compute_slowdown\": %.9g}", r->slowdown);
    }
    printf("]}\n");
}

int cli_simulate(int argc, char **argv) {
    bool json = false, verbose = false;
    long long batch = -1;
    const char *gpus_text = "1,8,16,32,64,128,256", *profile = NULL, *network = "h200-ib", *bucket = NULL,
               *recompute = NULL;
    char presets[128];
    char net_help[512];
    snprintf(net_help, sizeof net_help,
             "a preset (%s; default h200-ib) or key=value,... (gpus_per_node, intra_bw, intra_lat, inter_bw, "
             "inter_lat, nics_per_node, cores_per_node, threads_per_rank, topology=ring|hier, preset=NAME first): "
             "bytes/s and seconds",
             prt_net_preset_names(presets, sizeof presets));
    const cli_opt opts[] = {
        {"--profile", CLI_STRING, "FILE", "per-op time models (parrots profile; profiles/*.profile)", &profile},
        {"--gpus", CLI_STRING, "LIST", "GPU (rank) counts, comma-separated (default 1,8,16,32,64,128,256; 1 is "
                                       "always simulated: it is the efficiency's reference)", &gpus_text},
        {"--network", CLI_STRING, "SPEC", net_help, &network},
        {"--batch", CLI_INT, "N", "batch per GPU (default: the file's solver.batch); weak scaling", &batch},
        {"--bucket-size", CLI_STRING, "SIZE",
         "gradient bucket size the training step is compiled with (such as 25MiB; default: the scheduler's, "
         "25 MiB after a 1 MiB first bucket)", &bucket},
        {"--recompute", CLI_STRING, "MODE", "auto (default, as parrots train), none, cheap or segments", &recompute},
        {"--json", CLI_FLAG, NULL, "print one JSON object instead of the table", &json},
        {"--verbose", CLI_FLAG, NULL, "debug logging", &verbose},
        {0},
    };
    const char *pos[1];
    int rc = cli_parse("simulate",
                       "NET.yaml --profile FILE [--gpus LIST] [--network SPEC] [--batch N] [--bucket-size SIZE] "
                       "[--recompute MODE] [--json]",
                       opts, argc, argv, pos, 1, 1);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (!profile) {
        fprintf(stderr, "parrots simulate: --profile FILE is required (profiles/*.profile, or make one with parrots "
                        "profile)\n");
        return CLI_USAGE;
    }
    if (batch == 0) {
        fprintf(stderr, "parrots simulate: --batch must be at least 1\n");
        return CLI_USAGE;
    }
    int gpus[MAX_GPU_COUNTS + 1], n_gpus;
    if ((rc = parse_gpus(gpus_text, gpus + 1, &n_gpus)) != CLI_OK) return rc;
    /* the 1-GPU run first: every efficiency refers to it */
    gpus[0] = 1;
    int first = gpus[1] == 1 ? 1 : 0;
    size_t bucket_bytes = 0;
    if (bucket && (!prt_mem_parse_bytes(bucket, &bucket_bytes) || bucket_bytes == 0)) {
        fprintf(stderr, "parrots simulate: --bucket-size '%s': expected a size above 0 such as 25MiB, 4MB or 1048576\n",
                bucket);
        return CLI_USAGE;
    }
    int want;
    if ((rc = cli_parse_recompute("simulate", recompute, CLI_RECOMPUTE_AUTO, &want)) != CLI_OK) return rc;
    prt_context *ctx;
    if ((rc = cli_start("simulate", NULL, verbose, &ctx)) != CLI_OK) return rc;
    prt_profile *pr = NULL;
    prt_net_spec net;
    cli_train_program tp = {0};
    double *t = NULL;
    prt_sim_bucket *b = NULL;
    prt_sim_result res[MAX_GPU_COUNTS + 1];
    sim_report m = {.path = pos[0], .profile_path = profile, .net = &net, .bucket_source = "program"};
    prt_status s = prt_net_spec_parse(ctx, network, &net);
    if (s != PRT_OK) goto done;
    PRT_CHECK_GOTO(prt_profile_load(ctx, profile, &pr), s, done);
    PRT_CHECK_GOTO(build_train(ctx, pos[0], batch, want, bucket_bytes, &tp, &m.batch), s, done);
    const prt_program *p = tp.p;
    PRT_CHECK_GOTO(prt_sim_times(ctx, p, pr, &t), s, done);
    /* the program's own buckets (compiled at --bucket-size); a program compiled
     * without any gets them derived as the scheduler would make them */
    PRT_CHECK_GOTO(prt_sim_buckets(ctx, p, 0, &b, &m.nb), s, done);
    if (m.nb == 0) {
        if (bucket_bytes == 0) bucket_bytes = PRT_SCHED_BUCKET_BYTES;
        m.bucket_source = "the program has no buckets";
        prt_free(ctx, b, 0);
        b = NULL;
        PRT_CHECK_GOTO(prt_sim_buckets(ctx, p, bucket_bytes, &b, &m.nb), s, done);
    }
    m.bucket_bytes = bucket_bytes ? bucket_bytes : PRT_SCHED_BUCKET_BYTES;
    for (int i = 0; i < m.nb; i++) m.grad_bytes += b[i].bytes;
    for (int pc = 0; pc < p->n_code; pc++)
        if (is_call(p->code[pc])) {
            int ph = p->k[PRT_VM_RAW_X(p->code[pc])].call.phase;
            if (ph >= 0 && ph < PRT_PHASE_COUNT) m.phase_s[ph] += t[pc];
        }
    for (int i = first; i <= n_gpus; i++)
        PRT_CHECK_GOTO(prt_sim_run(ctx, p, t, b, m.nb, &net, pr->threads, gpus[i], &res[i - first]), s, done);
    m.p = p;
    m.pr = pr;
    m.r = res;
    m.n = n_gpus + 1 - first;
    if (json)
        print_json(&m);
    else
        print_text(&m);
done:
    rc = s == PRT_OK ? CLI_OK : cli_fail("simulate", ctx, s);
    prt_free(ctx, t, 0);
    prt_free(ctx, b, 0);
    prt_profile_destroy(ctx, pr);
    cli_train_program_free(ctx, &tp);
    prt_context_destroy(ctx);
    return rc;
}

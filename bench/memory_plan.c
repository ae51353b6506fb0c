/* Memory plans of the example networks: for each, the forward pass and the
 * training step under each recompute mode, at a given batch and input size —
 * naive bytes (one buffer per tensor), the lower bound (largest live sum), the
 * planned arena, arena / lower bound, the total with parameters, gradients and
 * optimizer state, the recompute FLOPs and the planning time. Nothing runs.
 *
 *     build/bench/memory_plan examples/fashion-cnn.yaml:64 examples/polynet.yaml:32:331
 *     build/bench/memory_plan --markdown "machine" "date" NET.yaml:BATCH[:SIZE]...
 *     build/bench/memory_plan --ablation NET.yaml:BATCH[:SIZE]   # what each part saves
 */
#include "memory/memory_api.h"
#include "ops/train_impl.h"
#include "vm/vm_impl.h"

#include "parrots/parrots.h"

#include <stdlib.h>
#include <string.h>

static void die(prt_context *ctx, const char *what) {
    fprintf(stderr, "memory_plan: %s: %s\n", what, ctx ? prt_last_error(ctx) : "");
    exit(1);
}

static double gib(size_t b) { return (double)b / (1024.0 * 1024.0 * 1024.0); }

/* mode < 0: forward only */
static void ablation(prt_context *ctx, const prt_program *p, const char *what) {
    static const struct {
        const char *name;
        prt_mem_plan_options o;
    } rows[] = {
        {"everything", {0}},
        {"without in-place", {.no_inplace = true}},
        {"without concat views", {.no_views = true}},
        {"without gradient buckets (one block)", {.no_buckets = true}},
        {"none of the three", {.no_inplace = true, .no_views = true, .no_buckets = true}},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        prt_mem_plan *pl;
        if (prt_mem_plan_build_opts(ctx, p, &rows[i].o, &pl) != PRT_OK) die(ctx, "plan");
        if (prt_mem_plan_validate(ctx, pl) != PRT_OK) die(ctx, "validate");
        printf("  %-9s %-38s arena %7.3f GiB  total %7.3f GiB  (bound %.3f, %d in place, %d views)\n", what,
               rows[i].name, gib(pl->arena_bytes), gib(pl->total_bytes), gib(pl->lower_bound_bytes), pl->n_inplace,
               pl->n_views);
        prt_mem_plan_destroy(ctx, pl);
    }
}

static void one(prt_context *ctx, const char *path, int64_t batch, int64_t size, int mode, bool md,
                const char *machine, const char *date, bool abl) {
    prt_graph *g;
    if (prt_graph_load_yaml(ctx, path, &g) != PRT_OK) die(ctx, path);
    if (size > 0) {
        prt_shape s = g->values[g->inputs[0]].shape;
        if (s.ndim < 3) die(ctx, "--size needs an input with 3 or more dims");
        s.d[s.ndim - 1] = s.d[s.ndim - 2] = size;
        if (prt_graph_set_input_shape(g, 0, &s) != PRT_OK) die(ctx, "input size");
    }
    double t0 = prt_now();
    if (mode >= 0) {
        prt_solver sv;
        prt_solver_defaults(&sv);
        if (g->solver) sv = *g->solver;
        prt_train_info ti;
        if (prt_train_build(g, &sv, 1, &ti) != PRT_OK) die(ctx, "training step");
        if (prt_mem_rewrite(g, g->n_forward, (prt_recompute_mode)mode, &ti.update_node, NULL) != PRT_OK)
            die(ctx, "rewrite");
    } else if (prt_graph_bind_params(g) != PRT_OK) {
        die(ctx, "bind");
    }
    prt_program *p;
    double t1 = prt_now();
    if (prt_vm_compile(g, batch, &p) != PRT_OK) die(ctx, "compile");
    double t2 = prt_now();
    const prt_mem_plan *pl = p->plan;
    if (prt_mem_plan_validate(ctx, pl) != PRT_OK) die(ctx, "validate");
    prt_rewrite_stats rs;
    prt_graph_stats gs;
    prt_mem_recompute_stats(g, &rs);
    prt_graph_stats_get(g, &gs);
    const char *what = mode < 0 ? "forward" : prt_recompute_mode_name((prt_recompute_mode)mode);
    char input[64];
    const prt_shape *in = &g->values[g->inputs[0]].shape;
    snprintf(input, sizeof input, "%lldx%lld", (long long)in->d[in->ndim - 2], (long long)in->d[in->ndim - 1]);
    double ratio = pl->lower_bound_bytes ? (double)pl->arena_bytes / (double)pl->lower_bound_bytes : 1.0;
    double extra = gs.flops > 0 ? 100.0 * (double)rs.extra_flops / (double)(gs.flops - rs.extra_flops) : 0;
    if (md)
        printf("| %s | %lld | %s | %s | %.3f | %.3f | %.3f | %.4f | %.3f | %.1f%% | %.0f ms | `build/bench/memory_plan` | %s | %s |\n",
               path, (long long)batch, input, mode < 0 ? "forward" : what, gib(pl->naive_bytes),
               gib(pl->lower_bound_bytes), gib(pl->arena_bytes), ratio, gib(pl->total_bytes), extra,
               1e3 * pl->plan_seconds, machine, date);
    else
        printf("%-28s %5lld %-8s %-8s %9.3f %9.3f %9.3f %7.4f %9.3f %7.1f%% %6.0f ms (%s; rewrite+compile %.0f ms)\n",
               path, (long long)batch, input, what, gib(pl->naive_bytes), gib(pl->lower_bound_bytes),
               gib(pl->arena_bytes), ratio, gib(pl->total_bytes), extra, 1e3 * pl->plan_seconds,
               prt_mem_strategy_name(pl->strategy), 1e3 * (t2 - t0));
    (void)t1;
    if (abl) ablation(ctx, p, what);
    if (getenv("PRT_PEAK_DUMP") && mode == atoi(getenv("PRT_PEAK_DUMP"))) {
        int pc = pl->peak_pc;
        const prt_call_desc *d = &p->k[PRT_VM_RAW_X(p->code[pc])].call;
        printf("  peak at %d: %s '%s'\n", pc, p->ops[d->op].name, d->node);
        double by_op[64] = {0};
        int cnt[64] = {0};
        for (int b = 0; b < pl->n_bufs; b++) {
            const prt_mem_buffer *x = &pl->bufs[b];
            if (x->first > pc || x->last < pc) continue;
            int op = 63;
            if (x->reg >= 0) {
                for (int q = 0; q <= pc; q++) {
                    if (PRT_VM_RAW_OP(p->code[q]) != 1 && PRT_VM_RAW_OP(p->code[q]) != 6) continue;
                    const prt_call_desc *e = &p->k[PRT_VM_RAW_X(p->code[q])].call;
                    for (int j = 0; j < e->n_out; j++)
                        if (e->out[j] == x->reg) op = e->op;
                }
            } else op = 62;
            if (op > 63) op = 63;
            by_op[op] += (double)x->bytes;
            cnt[op]++;
        }
        for (int o = 0; o < 64; o++)
            if (cnt[o]) printf("    %-20s %5d buffers %8.3f GiB\n", o == 62 ? "workspace" : o == 63 ? "input/other" : p->ops[o].name, cnt[o], by_op[o] / 1073741824.0);
    }
    prt_program_destroy(ctx, p);
    prt_graph_destroy(g);
}

int main(int argc, char **argv) {
    bool md = false, abl = false;
    const char *machine = "", *date = "";
    int i = 1;
    if (argc > 3 && strcmp(argv[1], "--markdown") == 0) {
        md = true;
        machine = argv[2];
        date = argv[3];
        i = 4;
    } else if (argc > 2 && strcmp(argv[1], "--ablation") == 0) {
        abl = true;
        i = 2;
    }
    if (i >= argc) {
        fprintf(stderr, "usage: memory_plan [--markdown MACHINE DATE] NET.yaml:BATCH[:SIZE]...\n");
        return 2;
    }
    prt_context *ctx;
    if (prt_context_create(NULL, &ctx) != PRT_OK) die(NULL, "context");
    if (!md)
        printf("%-28s %5s %-8s %-8s %9s %9s %9s %7s %9s %8s %s\n", "network", "batch", "input", "plan", "naive GiB",
               "bound GiB", "arena GiB", "ratio", "total GiB", "+FLOPs", "planning");
    for (; i < argc; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s", argv[i]);
        long long batch = 1, size = 0;
        char *c = strchr(path, ':');
        if (c) {
            *c = '\0';
            batch = atoll(c + 1);
            char *c2 = strchr(c + 1, ':');
            if (c2) size = atoll(c2 + 1);
        }
        one(ctx, path, batch, size, -1, md, machine, date, abl);
        for (int m = 0; m < PRT_RECOMPUTE_MODE_COUNT; m++) one(ctx, path, batch, size, m, md, machine, date, abl);
    }
    prt_context_destroy(ctx);
    return 0;
}

/* What recomputation costs in time: the median training-step time of a network
 * under each recompute mode (none, cheap, segments), in one run, with the arena
 * each needs. Steps run on the CPU with the fast kernels; inputs are fixed
 * pseudo-random values (the time does not depend on them).
 *
 *     build/bench/recompute_time [--steps N] NET.yaml:BATCH[:SIZE]...
 */
#include "memory/memory_api.h"
#include "ops/train_impl.h"
#include "vm/vm_impl.h"

#include "parrots/parrots.h"

#include <stdlib.h>
#include <string.h>

static void die(prt_context *ctx, const char *what) {
    fprintf(stderr, "recompute_time: %s: %s\n", what, ctx ? prt_last_error(ctx) : "");
    exit(1);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median seconds per step; *arena gets the plan's arena bytes. */
static double step_time(prt_context *ctx, const char *path, int64_t batch, int64_t size, prt_recompute_mode mode,
                        int steps, size_t *arena, double *extra) {
    prt_graph *g;
    if (prt_graph_load_yaml(ctx, path, &g) != PRT_OK) die(ctx, path);
    if (size > 0) {
        prt_shape s = g->values[g->inputs[0]].shape;
        s.d[s.ndim - 1] = s.d[s.ndim - 2] = size;
        if (prt_graph_set_input_shape(g, 0, &s) != PRT_OK) die(ctx, "input size");
    }
    prt_solver sv;
    prt_solver_defaults(&sv);
    if (g->solver) sv = *g->solver;
    prt_train_info ti;
    if (prt_train_build(g, &sv, 1000, &ti) != PRT_OK) die(ctx, "training step");
    if (prt_mem_rewrite(g, g->n_forward, mode, &ti.update_node, NULL) != PRT_OK) die(ctx, "rewrite");
    prt_program *p;
    if (prt_vm_compile(g, batch, &p) != PRT_OK) die(ctx, "compile");
    prt_rewrite_stats rs;
    prt_graph_stats gs;
    prt_mem_recompute_stats(g, &rs);
    prt_graph_stats_get(g, &gs);
    *extra = gs.flops > rs.extra_flops ? (double)rs.extra_flops / (double)(gs.flops - rs.extra_flops) : 0;
    *arena = p->plan->arena_bytes;
    prt_vm *vm;
    prt_vm_options o = {.training = true};
    if (prt_vm_create(ctx, p, NULL, &o, &vm) != PRT_OK) die(ctx, "vm");
    for (int i = 0; i < prt_vm_n_inputs(vm); i++) {
        prt_tensor *t = prt_vm_input(vm, i);
        int64_t n = prt_shape_count(&t->shape);
        if (t->dtype == PRT_F32)
            prt_rng_fill_normal(7 + (uint64_t)i, PRT_F32P(t), n, 0.0f, 1.0f);
        else
            for (int64_t k = 0; k < n; k++) ((int32_t *)t->data)[k] = (int32_t)(k % 10);
    }
    double *t = calloc((size_t)steps, sizeof *t);
    for (int i = 0; i < 2; i++)
        if (prt_vm_run(vm) != PRT_OK) die(ctx, "run");
    for (int i = 0; i < steps; i++) {
        double t0 = prt_now();
        if (prt_vm_run(vm) != PRT_OK) die(ctx, "run");
        t[i] = prt_now() - t0;
    }
    qsort(t, (size_t)steps, sizeof *t, cmp_double);
    double med = t[steps / 2];
    free(t);
    prt_vm_destroy(vm);
    prt_program_destroy(ctx, p);
    prt_graph_destroy(g);
    return med;
}

int main(int argc, char **argv) {
    int steps = 9, i = 1;
    if (argc > 2 && strcmp(argv[1], "--steps") == 0) {
        steps = atoi(argv[2]);
        i = 3;
    }
    if (i >= argc || steps < 1) {
        fprintf(stderr, "usage: recompute_time [--steps N] NET.yaml:BATCH[:SIZE]...\n");
        return 2;
    }
    prt_context *ctx;
    if (prt_context_create(NULL, &ctx) != PRT_OK) die(NULL, "context");
    printf("%-28s %5s %5s %-9s %10s %8s %10s %8s\n", "network", "batch", "size", "recompute", "step ms", "vs none",
           "arena MiB", "+FLOPs");
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
        double base = 0;
        for (int m = 0; m < PRT_RECOMPUTE_MODE_COUNT; m++) {
            size_t arena;
            double extra, s = step_time(ctx, path, batch, size, (prt_recompute_mode)m, steps, &arena, &extra);
            if (m == 0) base = s;
            printf("%-28s %5lld %5lld %-9s %10.1f %8.3f %10.1f %7.1f%%\n", path, batch, size,
                   prt_recompute_mode_name((prt_recompute_mode)m), 1e3 * s, s / base,
                   (double)arena / 1048576.0, 100 * extra);
        }
    }
    prt_context_destroy(ctx);
    return 0;
}

/* The GPU benchmark of scripts/gpu-check.sh: a network's training step (or its
 * inference) on the CUDA backend, timed after warm-up, with the device memory it
 * takes. One JSON line per run, with the same keys as bench/pytorch_polynet.py so
 * the two can be put side by side:
 *
 *     build-gpu/bench/gpu_train [--net examples/polynet.yaml] [--batch 32] [--infer]
 *                               [--steps 20] [--warmup 5] [--recompute none|cheap|segments]
 *                               [--cuda-graph auto|on|off] [--fuse bn-relu|none] [--precision fp32|bf16]
 *
 * --fuse bn-relu (default) fuses batch norm + ReLU pairs as parrots train does on a GPU.
 *
 * Inputs are fixed pseudo-random values (never all zeros). A step's time is
 * measured twice: by CUDA events on the compute stream around prt_vm_run
 * ("step_ms_median", what the issue asks for) and on the host around it
 * ("host_step_ms_median"; prt_vm_run returns after the device finished: it
 * copies the outputs back and synchronises). "peak_mem_gib" is the most
 * memory Parrots allocated on the device (the arena), comparable with
 * PyTorch's torch.cuda.max_memory_allocated; "driver_used_gib" is what the
 * driver reports in use after the run (CUDA context and libraries included).
 * Without a GPU it prints "SKIP: ..." and exits 77.
 */
#include "memory/memory_api.h"
#include "ops/train_impl.h"
#include "runtime/cuda_api.h"
#include "scheduler/scheduler_impl.h"
#include "vm/vm_impl.h"

#include "parrots/parrots.h"

#include <stdlib.h>
#include <string.h>

static void die(prt_context *ctx, const char *what) {
    fprintf(stderr, "gpu_train: %s: %s\n", what, ctx ? prt_last_error(ctx) : "");
    exit(1);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void usage(FILE *f) {
    fprintf(f, "usage: gpu_train [--net NET.yaml] [--batch N] [--infer] [--steps N] [--warmup N] "
               "[--recompute none|cheap|segments] [--cuda-graph auto|on|off] [--fuse bn-relu|none] [--precision fp32|bf16]\n");
}

int main(int argc, char **argv) {
    const char *net = "examples/polynet.yaml";
    long long batch = 32, steps = 20, warmup = 5;
    bool infer = false;
    prt_recompute_mode mode = PRT_RECOMPUTE_cheap;
    prt_cuda_graph_mode graph_mode = PRT_CUDA_GRAPH_AUTO;
    bool fuse = true;
    prt_precision prec = PRT_PRECISION_FP32;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--infer")) {
            infer = true;
        } else if (v && !strcmp(a, "--net")) {
            net = v, i++;
        } else if (v && !strcmp(a, "--batch")) {
            batch = atoll(v), i++;
        } else if (v && !strcmp(a, "--steps")) {
            steps = atoll(v), i++;
        } else if (v && !strcmp(a, "--warmup")) {
            warmup = atoll(v), i++;
        } else if (v && !strcmp(a, "--recompute") && prt_recompute_mode_from_name(v, &mode)) {
            i++;
        } else if (v && !strcmp(a, "--fuse") && (!strcmp(v, "bn-relu") || !strcmp(v, "none"))) {
            fuse = !strcmp(v, "bn-relu"), i++;
        } else if (v && !strcmp(a, "--precision") && prt_precision_from_name(v, &prec)) {
            i++;
        } else if (v && !strcmp(a, "--cuda-graph") && prt_cuda_graph_mode_from_name(v, &graph_mode)) {
            i++;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (batch < 1 || steps < 1 || warmup < 0) {
        usage(stderr);
        return 2;
    }
    prt_context *ctx;
    if (prt_context_create(NULL, &ctx) != PRT_OK) die(NULL, "context");
    if (prt_cuda_device_count() == 0) {
        prt_device *none = NULL;
        prt_cuda_device_create(ctx, 0, &none);
        printf("SKIP: no CUDA device (%s)\n", prt_last_error(ctx));
        prt_context_destroy(ctx);
        return 77;
    }
    prt_device *gpu;
    if (prt_cuda_device_create(ctx, 0, &gpu) != PRT_OK) die(ctx, "CUDA device");
    char name[256];
    prt_cuda_device_describe(gpu, name, sizeof name);

    prt_graph *g;
    if (prt_graph_load_yaml(ctx, net, &g) != PRT_OK) die(ctx, net);
    int n_fused = 0;
    if (fuse && prt_graph_fuse_bn_relu(g, &n_fused) != PRT_OK) die(ctx, "fusing batch norm + ReLU");
    if (prt_graph_device_passes(g, false, prec) != PRT_OK) die(ctx, "precision");
    prt_program *p;
    if (infer) {
        if (prt_graph_bind_params(g) != PRT_OK || prt_vm_compile(g, batch, &p) != PRT_OK) die(ctx, "compile");
    } else {
        prt_solver sv;
        prt_solver_defaults(&sv); /* SGD, momentum 0.9, lr 0.1: the reference script's solver */
        prt_train_info ti;
        int nb;
        if (prt_train_build(g, &sv, 1000, &ti) != PRT_OK) die(ctx, "training step");
        if (prt_mem_rewrite(g, g->n_forward, mode, &ti.update_node, NULL) != PRT_OK) die(ctx, "rewrite");
        if (prt_sched_buckets(g, &ti.update_node, NULL, &nb) != PRT_OK) die(ctx, "buckets");
        if (prt_vm_compile(g, batch, &p) != PRT_OK) die(ctx, "compile");
    }
    prt_vm *vm;
    prt_vm_options o = {.training = !infer, .cuda_graph = graph_mode};
    if (prt_vm_create(ctx, p, gpu, &o, &vm) != PRT_OK) die(ctx, "program on the GPU");
    for (int i = 0; i < prt_vm_n_inputs(vm); i++) {
        prt_tensor *t = prt_vm_input(vm, i);
        int64_t n = prt_shape_count(&t->shape);
        if (t->dtype == PRT_F32)
            prt_rng_fill_normal(7 + (uint64_t)i, PRT_F32P(t), n, 0.0f, 1.0f);
        else
            for (int64_t k = 0; k < n; k++) ((int32_t *)t->data)[k] = (int32_t)(k % 10);
    }
    for (long long i = 0; i < warmup; i++)
        if (prt_vm_run(vm) != PRT_OK) die(ctx, "warm-up step");
    double *t = calloc((size_t)steps, sizeof *t), *th = calloc((size_t)steps, sizeof *th);
    if (!t || !th) die(NULL, "out of memory");
    prt_cuda_timer *timer;
    if (prt_cuda_timer_create(gpu, &timer) != PRT_OK) die(ctx, "timer");
    for (long long i = 0; i < steps; i++) {
        double t0 = prt_now();
        if (prt_cuda_timer_start(timer) != PRT_OK) die(ctx, "timer");
        if (prt_vm_run(vm) != PRT_OK) die(ctx, "step");
        if (prt_cuda_timer_stop(timer, &t[i]) != PRT_OK) die(ctx, "timer");
        th[i] = prt_now() - t0;
    }
    prt_cuda_timer_destroy(timer);
    size_t used = 0, total = 0;
    if (prt_cuda_mem_info(gpu, &used, &total) != PRT_OK) die(ctx, "memory in use");
    qsort(t, (size_t)steps, sizeof *t, cmp_double);
    qsort(th, (size_t)steps, sizeof *th, cmp_double);
    double med = t[steps / 2], gib = 1024.0 * 1024 * 1024;
    printf("{\"framework\": \"parrots\", \"mode\": \"%s\", \"precision\": \"%s\", \"batch\": %lld, "
           "\"images_per_s\": %.1f, \"step_ms_median\": %.2f, \"host_step_ms_median\": %.2f, "
           "\"peak_mem_gib\": %.3f, \"planned_gib\": %.3f, \"driver_used_gib\": %.3f, \"steps\": %lld, "
           "\"cuda_graph\": \"%s\", \"fused_bn_relu\": %d, \"device\": \"%s\"}\n",
           infer ? "infer" : "train", prt_precision_name(prec), batch, (double)batch / med, 1e3 * med, 1e3 * th[steps / 2],
           (double)prt_cuda_peak_bytes(gpu) / gib, (double)(p->plan ? p->plan->total_bytes : 0) / gib,
           (double)used / gib, steps, prt_vm_cuda_graph_state(vm), n_fused, name);
    free(t);
    free(th);
    prt_vm_destroy(vm);
    prt_program_destroy(ctx, p);
    prt_graph_destroy(g);
    prt_cuda_device_destroy(gpu);
    prt_context_destroy(ctx);
    return 0;
}

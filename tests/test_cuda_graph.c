/* CUDA graphs (docs/gpu.md "CUDA graphs"): the step captured once and replayed
 * must compute exactly what the plain run computes. Two VMs of one program on
 * one GPU, from the same initial parameters (the context's seed) and fed the
 * same inputs every step, one with cuda_graph OFF and one with ON: after every
 * step the outputs, and after the last every parameter, running statistic and
 * optimizer state, are compared BIT FOR BIT (tolerance 0: both execute the same
 * kernels with the same algorithms on the same values; the per-step values come
 * from the step block in both). Training uses SGD with momentum and a warm-up +
 * cosine schedule of one epoch per step, so the learning rate changes at every
 * step, and the networks have dropout (its mask changes with the step) and
 * batch norm:
 *   - fashion-cnn (examples/fashion-cnn.yaml), batch 8, 6 steps;
 *   - PolyNet-mini (examples/polynet-mini.yaml, 1 x 28 x 28), batch 4, 5 steps,
 *     with the cheap recomputation and gradient buckets of bench/gpu_train
 *     (RECOMPUTE calls and ALLREDUCE instructions in the captured code);
 *   - fashion-cnn inference, batch 8, 4 runs.
 * The ON VM must say "captured". The values must move (parameters differ from
 * their initial values, the loss is finite and non-zero), so equality is not
 * that of untouched memory.
 *
 * Without a GPU it checks what the host can (mode names; ON is accepted on a
 * CPU device, which ignores it; tests/test_step_values.c has the rest), then
 * prints "SKIP: no CUDA device" and exits 77. */
// labels: gpu
#include "tests/test_util.h"

#include "memory/memory_api.h"
#include "ops/train_impl.h"
#include "runtime/cuda_api.h"
#include "scheduler/scheduler_impl.h"
#include "vm/vm_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SKIP 77

static prt_context *g_ctx;
static prt_device *g_gpu;

/* The program of yaml at batch: training (SGD momentum, cosine with warm-up,
 * `steps` epochs of one step each) or inference. */
static prt_program *build(const char *yaml, int64_t batch, bool train, int steps, bool rewrite, prt_graph **gout) {
    prt_context *ctx = g_ctx;
    prt_graph *g;
    ck_assert_msg(prt_graph_load_yaml(ctx, tu_src(yaml), &g) == PRT_OK, "%s", prt_last_error(ctx));
    prt_program *p;
    if (!train) {
        ck_assert_int_eq(prt_graph_bind_params(g), PRT_OK);
    } else {
        prt_solver sv;
        prt_solver_defaults(&sv);
        sv.optimizer = PRT_OPT_sgd;
        sv.lr = 0.05;
        sv.momentum = 0.9;
        sv.weight_decay = 1e-4;
        sv.schedule = PRT_SCHED_cosine;
        sv.epochs = steps;
        sv.warmup_epochs = 2;
        sv.min_lr = 1e-3;
        sv.batch = batch;
        prt_train_info ti;
        ck_assert_msg(prt_train_build(g, &sv, 1, &ti) == PRT_OK, "%s", prt_last_error(ctx));
        if (rewrite) {
            int nb;
            ck_assert_msg(prt_mem_rewrite(g, g->n_forward, PRT_RECOMPUTE_cheap, &ti.update_node, NULL) == PRT_OK,
                          "%s", prt_last_error(ctx));
            ck_assert_msg(prt_sched_buckets(g, &ti.update_node, NULL, &nb) == PRT_OK, "%s", prt_last_error(ctx));
        }
    }
    ck_assert_msg(prt_vm_compile(g, batch, &p) == PRT_OK, "%s", prt_last_error(ctx));
    *gout = g;
    return p;
}

/* Step s's inputs, the same for both VMs: normal images, labels in [0, 10). */
static void fill_inputs(prt_vm *vm, int s) {
    for (int i = 0; i < prt_vm_n_inputs(vm); i++) {
        prt_tensor *t = prt_vm_input(vm, i);
        int64_t n = prt_shape_count(&t->shape);
        if (t->dtype == PRT_F32)
            prt_rng_fill_normal(100 * (uint64_t)s + (uint64_t)i, PRT_F32P(t), n, 0.0f, 1.0f);
        else
            for (int64_t k = 0; k < n; k++) ((int32_t *)t->data)[k] = (int32_t)((k * 7 + s * 3) % 10);
    }
}

/* The device tensor t into host memory (caller frees). */
static float *to_host(const prt_tensor *t, size_t *bytes) {
    ck_assert_int_eq(prt_shape_nbytes(g_ctx, &t->shape, t->dtype, bytes), PRT_OK);
    float *h = malloc(*bytes ? *bytes : 1);
    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(g_gpu->iface->copy(g_gpu, h, t->data, *bytes, PRT_COPY_DEVICE_TO_HOST, NULL), PRT_OK);
    ck_assert_int_eq(g_gpu->iface->sync(g_gpu), PRT_OK);
    return h;
}

/* Persistent registers (params, state, optimizer slots) of both VMs equal bit
 * for bit; returns how many parameters moved away from `init` (vm a's
 * parameters before training, NULL: not checked). */
static int compare_persistent(const prt_program *p, prt_vm *a, prt_vm *b, float **init) {
    int moved = 0;
    for (int r = 0; r < p->n_regs; r++) {
        prt_reg_kind k = p->regs[r].kind;
        if (k != PRT_REG_PARAM && k != PRT_REG_STATE) continue;
        size_t na, nb;
        float *ha = to_host(&a->regs[r], &na), *hb = to_host(&b->regs[r], &nb);
        ck_assert_uint_eq(na, nb);
        ck_assert_msg(memcmp(ha, hb, na) == 0, "%s '%s' differs between the plain run and the graph replay",
                      prt_reg_kind_name(k), p->regs[r].name);
        if (init && init[r] && k == PRT_REG_PARAM) moved += memcmp(ha, init[r], na) != 0;
        free(ha);
        free(hb);
    }
    return moved;
}

static void plain_vs_graph(const char *yaml, int64_t batch, bool train, int steps, bool rewrite) {
    prt_context *ctx = g_ctx;
    prt_graph *g;
    prt_program *p = build(yaml, batch, train, steps, rewrite, &g);
    prt_vm *vm[2];
    const prt_cuda_graph_mode modes[2] = {PRT_CUDA_GRAPH_OFF, PRT_CUDA_GRAPH_ON};
    for (int v = 0; v < 2; v++) {
        prt_vm_options o = {.training = train, .cuda_graph = modes[v]};
        ck_assert_msg(prt_vm_create(ctx, p, g_gpu, &o, &vm[v]) == PRT_OK, "%s", prt_last_error(ctx));
    }
    ck_assert_str_eq(prt_vm_cuda_graph_state(vm[0]), "off");
    ck_assert(strncmp(prt_vm_cuda_graph_state(vm[1]), "pending", 7) == 0);
    float **init = calloc((size_t)p->n_regs + 1, sizeof *init);
    ck_assert_ptr_nonnull(init);
    for (int r = 0; r < p->n_regs; r++)
        if (p->regs[r].kind == PRT_REG_PARAM) {
            size_t n;
            init[r] = to_host(&vm[0]->regs[r], &n);
        }
    /* the same start: parameters come from the context's seed */
    compare_persistent(p, vm[0], vm[1], NULL);
    for (int s = 0; s < steps; s++) {
        for (int v = 0; v < 2; v++) {
            fill_inputs(vm[v], s);
            ck_assert_msg(prt_vm_run(vm[v]) == PRT_OK, "%s step %d (%s): %s", yaml, s, v ? "graph" : "plain",
                          prt_last_error(ctx));
        }
        for (int i = 0; i < prt_vm_n_outputs(vm[0]); i++) {
            const prt_tensor *a = prt_vm_output(vm[0], i), *b = prt_vm_output(vm[1], i);
            size_t bytes = a->buf ? a->buf->size : 0;
            ck_assert_msg(memcmp(a->data, b->data, bytes) == 0, "%s step %d: output %d differs (plain %g, graph %g)",
                          yaml, s, i, (double)PRT_F32P(a)[0], (double)PRT_F32P(b)[0]);
            float y0 = PRT_F32P(a)[0];
            ck_assert_msg(isfinite(y0) && y0 != 0.0f, "%s step %d: output %d is %g", yaml, s, i, (double)y0);
        }
    }
    ck_assert_str_eq(prt_vm_cuda_graph_state(vm[1]), "captured");
    int moved = compare_persistent(p, vm[0], vm[1], init);
    if (train) ck_assert_msg(moved > 0, "%s: no parameter changed in %d steps", yaml, steps);
    printf("%s %s: %d steps, plain and graph equal bit for bit (%d parameters moved)\n", yaml,
           train ? "training" : "inference", steps, moved);
    for (int r = 0; r < p->n_regs; r++) free(init[r]);
    free(init);
    for (int v = 0; v < 2; v++) prt_vm_destroy(vm[v]);
    prt_program_destroy(ctx, p);
    prt_graph_destroy(g);
}

START_TEST(fashion_cnn_training) { plain_vs_graph("examples/fashion-cnn.yaml", 8, true, 6, false); }
END_TEST

START_TEST(polynet_mini_training) { plain_vs_graph("examples/polynet-mini.yaml", 4, true, 5, true); }
END_TEST

START_TEST(fashion_cnn_inference) { plain_vs_graph("examples/fashion-cnn.yaml", 8, false, 4, false); }
END_TEST

/* A changed step (prt_vm_set_step) reaches the replayed kernels through the
 * step block: replaying step 1 again after step 3 gives step 1's outputs. */
START_TEST(set_step_replays) {
    prt_context *ctx = g_ctx;
    prt_graph *g;
    prt_program *p = build("examples/fashion-cnn.yaml", 8, false, 1, false, &g);
    prt_vm_options o = {.training = true, .cuda_graph = PRT_CUDA_GRAPH_ON}; /* dropout active, no update */
    prt_vm *vm;
    ck_assert_msg(prt_vm_create(ctx, p, g_gpu, &o, &vm) == PRT_OK, "%s", prt_last_error(ctx));
    fill_inputs(vm, 0);
    const prt_tensor *y = prt_vm_output(vm, 0);
    size_t bytes = y->buf->size;
    void *at1 = malloc(bytes);
    ck_assert_ptr_nonnull(at1);
    for (int s = 0; s < 4; s++) {
        ck_assert_msg(prt_vm_run(vm) == PRT_OK, "%s", prt_last_error(ctx));
        if (s == 1) memcpy(at1, y->data, bytes);
    }
    ck_assert_str_eq(prt_vm_cuda_graph_state(vm), "captured");
    ck_assert_msg(memcmp(at1, y->data, bytes) != 0, "dropout's mask did not change with the step");
    prt_vm_set_step(vm, 1);
    ck_assert_msg(prt_vm_run(vm) == PRT_OK, "%s", prt_last_error(ctx));
    ck_assert_msg(memcmp(at1, y->data, bytes) == 0, "step 1 replayed differs from step 1");
    free(at1);
    prt_vm_destroy(vm);
    prt_program_destroy(ctx, p);
    prt_graph_destroy(g);
}
END_TEST

START_TEST(host_checks) {
    prt_cuda_graph_mode m;
    ck_assert(prt_cuda_graph_mode_from_name("on", &m) && m == PRT_CUDA_GRAPH_ON);
    ck_assert(!prt_cuda_graph_mode_from_name("maybe", &m));
    prt_context *ctx = tu_context();
    prt_graph *g;
    ck_assert_int_eq(prt_graph_load_yaml(ctx, tu_src("examples/fashion-cnn.yaml"), &g), PRT_OK);
    ck_assert_int_eq(prt_graph_bind_params(g), PRT_OK);
    prt_program *p;
    ck_assert_int_eq(prt_vm_compile(g, 2, &p), PRT_OK);
    prt_vm_options o = {.cuda_graph = PRT_CUDA_GRAPH_ON};
    prt_vm *vm;
    ck_assert_msg(prt_vm_create(ctx, p, prt_cpu_device(ctx), &o, &vm) == PRT_OK, "%s", prt_last_error(ctx));
    ck_assert_str_eq(prt_vm_cuda_graph_state(vm), "off (CPU device)");
    prt_vm_destroy(vm);
    prt_program_destroy(ctx, p);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

int main(void) {
    if (prt_cuda_device_count() == 0) {
        Suite *hs = suite_create("cuda_graph (host)");
        TCase *htc = tcase_create("host");
        tcase_add_test(htc, host_checks);
        suite_add_tcase(hs, htc);
        if (tu_run(hs) != 0) return 1;
        prt_context *ctx;
        if (prt_context_create(NULL, &ctx) != PRT_OK) return 1;
        prt_device *none = NULL;
        prt_cuda_device_create(ctx, 0, &none);
        printf("SKIP: no CUDA device (%s); mode names and the CPU device's state checked\n", prt_last_error(ctx));
        prt_context_destroy(ctx);
        return SKIP;
    }
    prt_context_options o = {.struct_size = sizeof o, .log_level = PRT_LOG_WARN};
    if (prt_context_create(&o, &g_ctx) != PRT_OK) return 1;
    if (prt_cuda_device_create(g_ctx, 0, &g_gpu) != PRT_OK) {
        fprintf(stderr, "opening CUDA device 0: %s\n", prt_last_error(g_ctx));
        prt_context_destroy(g_ctx);
        return 1;
    }
    Suite *s = suite_create("cuda_graph");
    TCase *tc = tcase_create("plain_vs_graph");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, fashion_cnn_training);
    tcase_add_test(tc, polynet_mini_training);
    tcase_add_test(tc, fashion_cnn_inference);
    tcase_add_test(tc, set_step_replays);
    suite_add_tcase(s, tc);
    int failed = tu_run_nofork(s);
    prt_cuda_device_destroy(g_gpu);
    prt_context_destroy(g_ctx);
    return failed ? 1 : 0;
}

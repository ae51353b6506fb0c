/* bf16 mixed-precision training on the GPU (scheduler/precision.c and the bf16
 * CUDA kernels) against the f32 CPU step: fashion-cnn and PolyNet-mini
 * (28x28, batch 8), the same initial parameters and batch.
 *
 * Tolerance: bf16 keeps 8 significant bits, so every stored activation and
 * gradient carries a relative rounding error up to 2^-8 (0.4%); over the tens
 * of layers of these networks the errors add up roughly like a random walk
 * (sqrt(60) * 2^-8 is about 3% for PolyNet-mini's depth), while batch norm
 * keeps them relative. So the first step's loss must agree within 5% and the
 * logits within 10% in relative L2 norm; an f32 kernel bug (a wrong element,
 * a wrong layout) is far outside either. Then 20 steps on the fixed batch must
 * keep the loss finite and lower it (the f32 master weights learn).
 *
 * Without a GPU: builds both programs, checks the CPU refuses the bf16 one,
 * prints "SKIP: no CUDA device (...)" and exits 77. */
// labels: gpu

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/train_impl.h"
#include "runtime/cuda_api.h"
#include "scheduler/scheduler_impl.h"
#include "tests/test_util.h"
#include "vm/vm_impl.h"

#define SKIP 77
#define BATCH 8

static const char *const nets[] = {"examples/fashion-cnn.yaml", "examples/polynet-mini.yaml"};

static prt_program *build(prt_context *ctx, const char *net, prt_precision prec, int *classes) {
    prt_graph *g = NULL;
    ck_assert_msg(prt_graph_load_yaml(ctx, tu_src(net), &g) == PRT_OK, "%s: %s", net, prt_last_error(ctx));
    ck_assert_int_eq(prt_graph_bind_params(g), PRT_OK);
    ck_assert_msg(prt_graph_set_precision(g, prec) == PRT_OK, "%s: %s", net, prt_last_error(ctx));
    prt_solver s;
    if (g->solver)
        s = *g->solver;
    else
        prt_solver_defaults(&s);
    s.batch = BATCH;
    prt_train_info ti;
    ck_assert_msg(prt_train_build(g, &s, 100, &ti) == PRT_OK, "%s: %s", net, prt_last_error(ctx));
    ck_assert_int_eq(prt_graph_infer(g, BATCH), PRT_OK);
    *classes = (int)g->values[ti.logits].shape.d[1];
    prt_program *p = NULL;
    ck_assert_msg(prt_vm_compile(g, BATCH, &p) == PRT_OK, "%s: %s", net, prt_last_error(ctx));
    prt_graph_destroy(g);
    return p;
}

/* The same batch for every VM: normal images, labels below `classes`. */
static void fill(prt_vm *vm, const prt_program *p, int classes) {
    for (int i = 0; i < p->n_inputs; i++) {
        prt_tensor *t = prt_vm_input(vm, i);
        int64_t n = prt_shape_count(&t->shape);
        if (t->dtype == PRT_F32) {
            prt_rng_fill_normal(1000 + (uint64_t)i, PRT_F32P(t), n, 0.0f, 1.0f);
        } else {
            ck_assert_int_eq(t->dtype, PRT_I32);
            int32_t *y = prt_tensor_data(t);
            for (int64_t k = 0; k < n; k++) y[k] = (int32_t)((k * 7 + 3) % classes);
        }
    }
}

static prt_vm *make_vm(prt_context *ctx, const prt_program *p, prt_device *dev) {
    prt_vm_options o;
    memset(&o, 0, sizeof o);
    o.training = true;
    prt_vm *vm = NULL;
    ck_assert_msg(prt_vm_create(ctx, p, dev, &o, &vm) == PRT_OK, "%s", prt_last_error(ctx));
    return vm;
}

static prt_context *ctx;
static prt_device *gpu;

START_TEST(bf16_step_matches_f32_cpu) {
    const char *net = nets[_i];
    int classes;
    prt_program *p32 = build(ctx, net, PRT_PRECISION_FP32, &classes);
    prt_program *p16 = build(ctx, net, PRT_PRECISION_BF16, &classes);
    prt_vm *cpu = make_vm(ctx, p32, prt_cpu_device(ctx));
    prt_vm *dev = make_vm(ctx, p16, gpu);
    fill(cpu, p32, classes);
    fill(dev, p16, classes);
    ck_assert_msg(prt_vm_run(cpu) == PRT_OK, "%s", prt_last_error(ctx));
    ck_assert_msg(prt_vm_run(dev) == PRT_OK, "%s", prt_last_error(ctx));
    float l32 = PRT_F32P(prt_vm_output(cpu, 0))[0], l16 = PRT_F32P(prt_vm_output(dev, 0))[0];
    ck_assert_msg(isfinite(l32) && isfinite(l16) && l32 > 0.0f, "%s: loss f32 %g, bf16 %g", net, l32, l16);
    ck_assert_msg(fabsf(l16 - l32) <= 0.05f * l32, "%s: first loss bf16 %g vs f32 %g (5%% allowed)", net, l16, l32);
    const prt_tensor *y32 = prt_vm_output(cpu, 1), *y16 = prt_vm_output(dev, 1);
    ck_assert_int_eq(y16->dtype, PRT_F32);
    int64_t n = prt_shape_count(&y32->shape);
    ck_assert_int_eq(prt_shape_count(&y16->shape), n);
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)PRT_F32P(y16)[i] - PRT_F32P(y32)[i];
        num += d * d;
        den += (double)PRT_F32P(y32)[i] * PRT_F32P(y32)[i];
    }
    ck_assert_msg(den > 0, "%s: all-zero logits", net);
    ck_assert_msg(sqrt(num / den) <= 0.10, "%s: logits differ by %.4f in relative L2 (10%% allowed)", net,
                  sqrt(num / den));
    /* 20 steps on the fixed batch: finite and decreasing */
    float first = l16, last = l16;
    for (int step = 1; step < 20; step++) {
        ck_assert_msg(prt_vm_run(dev) == PRT_OK, "%s: step %d: %s", net, step, prt_last_error(ctx));
        last = PRT_F32P(prt_vm_output(dev, 0))[0];
        ck_assert_msg(isfinite(last), "%s: step %d: loss %g", net, step, last);
    }
    ck_assert_msg(last < first, "%s: loss %g after 20 bf16 steps, %g at the first", net, last, first);
    prt_vm_destroy(cpu);
    prt_vm_destroy(dev);
    prt_program_destroy(ctx, p32);
    prt_program_destroy(ctx, p16);
}
END_TEST

/* What holds without a GPU: both programs build; the CPU refuses the bf16 one. */
START_TEST(bf16_program_without_gpu) {
    prt_context *c = tu_context();
    int classes;
    prt_program *p32 = build(c, nets[_i], PRT_PRECISION_FP32, &classes);
    prt_program *p16 = build(c, nets[_i], PRT_PRECISION_BF16, &classes);
    prt_vm_options o;
    memset(&o, 0, sizeof o);
    o.training = true;
    prt_vm *vm = NULL;
    ck_assert_int_eq(prt_vm_create(c, p16, prt_cpu_device(c), &o, &vm), PRT_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(prt_last_error(c), "bf16 needs --device cuda"), "%s", prt_last_error(c));
    prt_program_destroy(c, p32);
    prt_program_destroy(c, p16);
    prt_context_destroy(c);
}
END_TEST

static void setup(void) {
    ctx = tu_context();
    ck_assert_msg(prt_cuda_device_create(ctx, 0, &gpu) == PRT_OK, "%s", prt_last_error(ctx));
}

static void teardown(void) {
    prt_cuda_device_destroy(gpu);
    prt_context_destroy(ctx);
}

int main(void) {
    bool have_gpu = prt_cuda_device_count() > 0;
    Suite *s = suite_create("cuda_bf16");
    TCase *host = tcase_create("host");
    tcase_add_loop_test(host, bf16_program_without_gpu, 0, 2);
    suite_add_tcase(s, host);
    if (have_gpu) {
        TCase *tc = tcase_create("gpu");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 300);
        tcase_add_loop_test(tc, bf16_step_matches_f32_cpu, 0, 2);
        suite_add_tcase(s, tc);
    }
    int failed = tu_run_nofork(s);
    if (failed) return 1;
    if (!have_gpu) {
        printf("SKIP: no CUDA device (prt_cuda_device_count() is 0: no GPU, no driver, or a build without CUDA)\n");
        return SKIP;
    }
    return 0;
}

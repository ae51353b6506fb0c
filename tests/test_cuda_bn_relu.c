/* batchnorm_relu and batchnorm_relu_bwd on CUDA (ops/cuda/bn_relu.cu) against
 * the CPU reference kernels, on uniform random data with a non-zero mean
 * (never zero): training (the output and the running statistics), a RECOMPUTE
 * (running statistics untouched), inference, and the backward in training and
 * outside it, dx apart and in place on dy. Shapes: 4-D, rank 2, batch 1, and
 * a PolyNet-sized [2, 32, 35, 35].
 *
 * Tolerance, elementwise |gpu - cpu| <= 1e-4 (|cpu| + rms(cpu)), f32: both sides
 * compute in f32 with double sums, but the GPU sums in another order, gets the
 * statistics in one pass around the channel's first value (the CPU reference
 * in two), and normalises as (x - mean) a + shift (the reference as
 * x a + (shift - mean a)): a few f32 ulps of the statistics, amplified by at
 * most |x - mean| / std. An output within that of 0 may be cut by one side
 * and not the other: a difference of the same size, also inside the tolerance.
 * The backward gets the same y (the CPU's) on both sides, so the masks agree.
 *
 * Without a GPU it first checks what needs none (the kernels are registered;
 * calls the CUDA kernels refuse before touching the device), then prints
 * "SKIP: no CUDA device (...)" and exits 77. */
// labels: gpu
#include "tests/test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops_impl.h"
#include "runtime/cuda_api.h"

#define SKIP 77
#define R_F32 1e-4

static prt_context *ctx;
static prt_device *gpu;

#define CK_OK(call) ck_assert_msg((call) == PRT_OK, "%s: %s", #call, prt_last_error(ctx))

static uint64_t rs = 0x9e3779b97f4a7c15ull;
static float urand(float lo, float hi) {
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    float v = (float)(lo + (hi - lo) * ((double)(rs >> 11) / 9007199254740992.0));
    return v == 0 ? 0.25f : v;
}

static size_t nbytes(const prt_shape *s) { return (size_t)prt_shape_count(s) * sizeof(float); }

static float *host(const prt_shape *s, float lo, float hi) {
    float *p = malloc(nbytes(s) + 4);
    ck_assert_ptr_nonnull(p);
    for (int64_t i = 0; i < prt_shape_count(s); i++) p[i] = urand(lo, hi);
    return p;
}

static void compare(const char *what, const char *name, const float *got, const float *want, int64_t n) {
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += (double)want[i] * want[i];
    double rms = n ? sqrt(ss / (double)n) : 0;
    ck_assert_msg(rms > 0, "%s %s: the CPU result is all zero (the test would prove nothing)", what, name);
    for (int64_t i = 0; i < n; i++) {
        double tol = R_F32 * (fabs((double)want[i]) + rms);
        ck_assert_msg(fabs((double)got[i] - want[i]) <= tol, "%s %s [%lld]: GPU %.9g, CPU %.9g (tolerance %.3g)", what,
                      name, (long long)i, (double)got[i], (double)want[i], tol);
    }
}

/* One call of op `name` on the CPU (reference) and on the GPU with the same
 * host inputs; in[] are updated in place by the CPU run (running statistics),
 * gpu_in[] receive the GPU's inputs back, out/gpu_out the outputs. inplace:
 * output 0 written over input 0. */
typedef struct call {
    const char *op;
    int n_in, n_out;
    prt_shape in[6], out[3];
    float *h_in[6];
    bool training, recompute, inplace;
    float *cpu_in[6], *cpu_out[3], *gpu_in[6], *gpu_out[3];
} call;

static void attrs_of(const prt_op_schema *s, prt_attr *a) {
    prt_attrs_default(s, a);
    a[0].f = 1e-3; /* eps */
    a[1].f = 0.2;  /* momentum */
}

static void run_both(call *c) {
    const prt_op_schema *s = prt_op_find(ctx->ops, c->op, NULL);
    ck_assert_ptr_nonnull(s);
    prt_attr attrs[4];
    attrs_of(s, attrs);
    prt_tensor ti[6], to[3];
    const prt_tensor *tip[6];
    prt_tensor *top[3];
    for (int k = 0; k < c->n_in; k++) {
        c->cpu_in[k] = malloc(nbytes(&c->in[k]) + 4);
        memcpy(c->cpu_in[k], c->h_in[k], nbytes(&c->in[k]));
        prt_tensor_wrap(&ti[k], c->cpu_in[k], PRT_F32, &c->in[k]);
        tip[k] = &ti[k];
    }
    for (int k = 0; k < c->n_out; k++) {
        c->cpu_out[k] = calloc(1, nbytes(&c->out[k]) + 4);
        prt_tensor_wrap(&to[k], c->cpu_out[k], PRT_F32, &c->out[k]);
        top[k] = &to[k];
    }
    if (c->inplace) top[0] = &ti[0];
    prt_kernel_call kc = {.ctx = ctx, .attrs = attrs, .n_in = c->n_in, .in = tip, .n_out = c->n_out, .out = top,
                          .training = c->training, .recompute = c->recompute, .dev = prt_cpu_device(ctx)};
    CK_OK(s->ref.run(&kc));
    if (c->inplace) memcpy(c->cpu_out[0], c->cpu_in[0], nbytes(&c->out[0]));

    const prt_device_iface *f = gpu->iface;
    void *din[6] = {0}, *dout[3] = {0};
    prt_tensor gi[6], go[3];
    const prt_tensor *gip[6];
    prt_tensor *gop[3];
    for (int k = 0; k < c->n_in; k++) {
        CK_OK(f->alloc(gpu, nbytes(&c->in[k]) + 4, &din[k]));
        CK_OK(f->copy(gpu, din[k], c->h_in[k], nbytes(&c->in[k]), PRT_COPY_HOST_TO_DEVICE, NULL));
        prt_tensor_wrap(&gi[k], din[k], PRT_F32, &c->in[k]);
        gip[k] = &gi[k];
    }
    for (int k = 0; k < c->n_out; k++) {
        if (c->inplace && k == 0) {
            gop[0] = &gi[0];
            continue;
        }
        CK_OK(f->alloc(gpu, nbytes(&c->out[k]) + 4, &dout[k]));
        CK_OK(f->fill_f32(gpu, dout[k], NAN, (size_t)prt_shape_count(&c->out[k]), NULL)); /* to be overwritten */
        prt_tensor_wrap(&go[k], dout[k], PRT_F32, &c->out[k]);
        gop[k] = &go[k];
    }
    prt_kernel_call gc = {.ctx = ctx, .attrs = attrs, .n_in = c->n_in, .in = gip, .n_out = c->n_out, .out = gop,
                          .training = c->training, .recompute = c->recompute, .dev = gpu,
                          .stream = prt_cuda_stream(gpu, PRT_CUDA_COMPUTE)};
    CK_OK(f->sync(gpu));
    CK_OK(s->cuda.run(&gc));
    CK_OK(f->sync(gpu));
    for (int k = 0; k < c->n_in; k++) {
        c->gpu_in[k] = malloc(nbytes(&c->in[k]) + 4);
        CK_OK(f->copy(gpu, c->gpu_in[k], din[k], nbytes(&c->in[k]), PRT_COPY_DEVICE_TO_HOST, NULL));
    }
    for (int k = 0; k < c->n_out; k++) {
        c->gpu_out[k] = malloc(nbytes(&c->out[k]) + 4);
        CK_OK(f->copy(gpu, c->gpu_out[k], gop[k]->data, nbytes(&c->out[k]), PRT_COPY_DEVICE_TO_HOST, NULL));
    }
    CK_OK(f->sync(gpu));
    for (int k = 0; k < c->n_in; k++) f->free(gpu, din[k]);
    for (int k = 0; k < c->n_out; k++)
        if (dout[k]) f->free(gpu, dout[k]);
}

static void call_free(call *c) {
    for (int k = 0; k < c->n_in; k++) free(c->cpu_in[k]), free(c->gpu_in[k]);
    for (int k = 0; k < c->n_out; k++) free(c->cpu_out[k]), free(c->gpu_out[k]);
}

START_TEST(test_bn_relu_gpu) {
    const prt_shape xs[] = {{4, {4, 6, 5, 5}}, {2, {8, 10}}, {4, {1, 3, 17, 17}}, {4, {2, 32, 35, 35}}};
    int checks = 0;
    for (size_t si = 0; si < sizeof xs / sizeof xs[0]; si++) {
        prt_shape cs = prt_shape_make(1, &xs[si].d[1]);
        float *x = host(&xs[si], -0.75f, 1.75f), *sc = host(&cs, 0.5f, 1.5f), *sh = host(&cs, -0.5f, 0.5f);
        float *mean = host(&cs, -0.5f, 1.0f), *var = host(&cs, 0.5f, 1.5f), *dy = host(&xs[si], -1.0f, 1.0f);
        for (int mode = 0; mode < 3; mode++) { /* training, RECOMPUTE, inference */
            char what[200];
            snprintf(what, sizeof what, "batchnorm_relu shape %zu %s", si,
                     mode == 0 ? "training" : mode == 1 ? "recompute" : "inference");
            call f = {.op = "batchnorm_relu", .n_in = 5, .n_out = 1, .in = {xs[si], cs, cs, cs, cs}, .out = {xs[si]},
                      .h_in = {x, sc, sh, mean, var}, .training = mode < 2, .recompute = mode == 1};
            run_both(&f);
            compare(what, "y", f.gpu_out[0], f.cpu_out[0], prt_shape_count(&xs[si]));
            for (int k = 3; k < 5; k++) {
                if (mode == 0) {
                    compare(what, k == 3 ? "running mean" : "running var", f.gpu_in[k], f.cpu_in[k], cs.d[0]);
                    ck_assert_msg(memcmp(f.cpu_in[k], f.h_in[k], nbytes(&cs)) != 0, "%s: the CPU did not update", what);
                } else {
                    ck_assert_msg(memcmp(f.gpu_in[k], f.h_in[k], nbytes(&cs)) == 0,
                                  "%s: running statistic %d changed", what, k);
                }
            }
            /* backward from the CPU's y, so both sides mask alike */
            for (int inplace = 0; inplace < 2; inplace++) {
                char w2[260];
                snprintf(w2, sizeof w2, "batchnorm_relu_bwd shape %zu %s%s", si, mode == 2 ? "inference" : "training",
                         inplace ? " in place" : "");
                call b = {.op = "batchnorm_relu_bwd", .n_in = 6, .n_out = 3,
                          .in = {xs[si], xs[si], xs[si], cs, cs, cs}, .out = {xs[si], cs, cs},
                          .h_in = {dy, f.cpu_out[0], x, sc, mean, var}, .training = mode != 2, .inplace = inplace};
                run_both(&b);
                compare(w2, "dx", b.gpu_out[0], b.cpu_out[0], prt_shape_count(&xs[si]));
                compare(w2, "dscale", b.gpu_out[1], b.cpu_out[1], cs.d[0]);
                compare(w2, "dshift", b.gpu_out[2], b.cpu_out[2], cs.d[0]);
                call_free(&b);
                checks++;
            }
            call_free(&f);
        }
        free(x), free(sc), free(sh), free(mean), free(var), free(dy);
    }
    ck_assert_int_eq(checks, 4 * 3 * 2);
}
END_TEST

/* Without a device: both ops have CUDA kernels, and the backward's call checks
 * come before any CUDA call. */
static void host_checks(void) {
    /* no Check assertions here: no test is running yet */
    prt_context_options co = {.struct_size = sizeof co, .log_level = PRT_LOG_WARN};
    prt_context *c = NULL;
    if (prt_context_create(&co, &c) != PRT_OK) {
        printf("FAIL: no context\n");
        exit(1);
    }
    const char *ops[] = {"batchnorm_relu", "batchnorm_relu_bwd"};
    for (int i = 0; i < 2; i++) {
        const prt_op_schema *s = prt_op_find(c->ops, ops[i], NULL);
        if (!s || !s->cuda.run) {
            printf("FAIL: %s has no CUDA kernel\n", ops[i]);
            exit(1);
        }
    }
    const prt_op_schema *s = prt_op_find(c->ops, "batchnorm_relu_bwd", NULL);
    prt_attr attrs[4];
    prt_attrs_default(s, attrs);
    float dummy[64] = {0};
    prt_shape x = {4, {1, 2, 2, 2}}, ch = {1, {2}};
    prt_tensor t[6], o[3];
    const prt_tensor *tp[6];
    prt_tensor *op[3];
    for (int k = 0; k < 6; k++) prt_tensor_wrap(&t[k], dummy, PRT_F32, k < 3 ? &x : &ch), tp[k] = &t[k];
    for (int k = 0; k < 3; k++) prt_tensor_wrap(&o[k], dummy, PRT_F32, k < 1 ? &x : &ch), op[k] = &o[k];
    prt_kernel_call kc = {.ctx = c, .attrs = attrs, .n_in = 4, .in = tp, .n_out = 3, .out = op, .training = false};
    prt_status st = s->cuda.run(&kc);
    const char *want = "batchnorm_relu_bwd: the gradient outside training needs the running mean and variance (inputs 5 "
                       "and 6)";
    if (st != PRT_ERR_INVALID || strcmp(prt_last_error(c), want) != 0) {
        printf("FAIL: 4-input call outside training: %s (%s)\n", prt_status_str(st), prt_last_error(c));
        exit(1);
    }
    kc.n_in = 5;
    kc.training = true;
    st = s->cuda.run(&kc);
    if (st != PRT_ERR_INTERNAL || !strstr(prt_last_error(c), "5 inputs, expected 4 or 6")) {
        printf("FAIL: 5-input call: %s (%s)\n", prt_status_str(st), prt_last_error(c));
        exit(1);
    }
    prt_context_destroy(c);
}

static void setup(void) {
    ctx = tu_context();
    ck_assert_msg(prt_cuda_device_create(ctx, 0, &gpu) == PRT_OK, "%s", prt_last_error(ctx));
}

static void teardown(void) {
    prt_cuda_device_destroy(gpu);
    prt_context_destroy(ctx);
}

int main(void) {
#if defined(PARROTS_HAVE_CUDA) && PARROTS_HAVE_CUDA
    host_checks();
#else
    (void)host_checks; /* a build without CUDA has no CUDA kernels to check */
#endif
    if (prt_cuda_device_count() == 0) {
        printf("SKIP: no CUDA device (prt_cuda_device_count() is 0: no GPU, no driver, or a build without CUDA)\n");
        return SKIP;
    }
    Suite *s = suite_create("cuda_bn_relu");
    TCase *tc = tcase_create("gpu");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_bn_relu_gpu);
    suite_add_tcase(s, tc);
    int failed = tu_run_nofork(s);
    return failed == 0 ? 0 : 1;
}

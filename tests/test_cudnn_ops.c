/* The cuDNN / cuBLAS / pooling CUDA kernels (ops/cuda/cudnn_*.c) against the
 * CPU reference kernels of the same ops, through the op registry: conv,
 * conv_bwd_data, conv_bwd_weight, batchnorm (training, inference, RECOMPUTE,
 * in place, rank 2), batchnorm_bwd (training and outside it), maxpool,
 * avgpool (count_include_pad on and off), maxpool_bwd, avgpool_bwd, linear,
 * linear_bwd_data, linear_bwd_weight. Inputs are uniform random, never zero;
 * shapes include PolyNet's (stride 2, padding, 1x7 and 7x1 kernels), groups,
 * dilation, asymmetric pooling pads and batch 1.
 *
 * Tolerances, elementwise |gpu - cpu| <= r * (|cpu| + rms(cpu)):
 *  - convolutions r = 1e-2: cuDNN may use TF32 tensor cores for f32 (10-bit
 *    mantissa products, ~1e-3 relative);
 *  - batch norm and linear r = 1e-4: f32 throughout, only the summation order
 *    differs;
 *  - pooling r = 1e-6: the kernels repeat the CPU arithmetic in its order, so
 *    they are expected to match bit for bit.
 * Batch norm's running statistics (updated in place) are compared as outputs.
 *
 * Without a GPU: prints "SKIP: no CUDA device (...)" and exits 77 (a CTest
 * skip, never a pass). */
// labels: gpu
#include "tests/test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops_impl.h"
#include "runtime/cuda_api.h"

#define SKIP 77
#define R_CONV 1e-2
#define R_F32 1e-4
#define R_POOL 1e-6

static prt_context *ctx;
static prt_device *gpu;

#define CK_OK(call) ck_assert_msg((call) == PRT_OK, "%s: %s", #call, prt_last_error(ctx))

/* ---- an op call with its operands on both sides ------------------------- */

typedef struct aset {
    const char *name;
    int n;
    int64_t v[4];
    double f;
} aset;

#define MAXT 8
typedef struct opcase {
    const char *op;
    int n_data;
    prt_shape data[5];
    aset set[6];
    int n_set;
    bool training, recompute, inplace;
    double rtol;
} opcase;

typedef struct operands {
    const prt_op_schema *s;
    prt_attr attrs[16];
    int n_in, n_out;
    prt_shape in[MAXT], out[4];
    float *host_in[MAXT], *cpu_out[4];
    size_t workspace;
} operands;

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float urand(float lo, float hi) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    double u = (double)(rng_state >> 11) / 9007199254740992.0;
    return (float)(lo + (hi - lo) * u);
}

static size_t nbytes(const prt_shape *s) { return (size_t)prt_shape_count(s) * sizeof(float); }

static void setup_operands(const opcase *oc, operands *o) {
    memset(o, 0, sizeof *o);
    int id;
    o->s = prt_op_find(ctx->ops, oc->op, &id);
    ck_assert_msg(o->s != NULL, "no op %s", oc->op);
    const prt_op_schema *s = o->s;
    ck_assert_msg(s->cuda.run != NULL, "%s has no CUDA kernel", s->name);
    prt_attrs_default(s, o->attrs);
    for (int k = 0; k < oc->n_set; k++) {
        int i = prt_op_attr_index(s, oc->set[k].name);
        ck_assert_msg(i >= 0, "%s: no attribute %s", s->name, oc->set[k].name);
        prt_attr *a = &o->attrs[i];
        a->set = true;
        if (a->type == PRT_ATTR_FLOAT) a->f = oc->set[k].f;
        else {
            a->n = a->type == PRT_ATTR_INTS ? oc->set[k].n : 1;
            for (int j = 0; j < 4; j++) a->i[j] = oc->set[k].v[j];
        }
    }
    prt_shape params[PRT_MAX_OP_PARAMS];
    bool present[PRT_MAX_OP_PARAMS] = {0};
    for (int k = 0; k < oc->n_data; k++) o->in[k] = oc->data[k];
    prt_infer_ctx ic = {.ctx = ctx, .node_name = "t", .attrs = o->attrs, .n_in = oc->n_data, .in = o->in,
                        .in_dtype = PRT_F32, .n_out = s->n_out, .out = o->out, .out_dtype = PRT_F32,
                        .n_params = s->n_params, .params = params, .param_present = present, .op_name = s->name};
    CK_OK(s->infer(&ic));
    o->n_in = oc->n_data;
    for (int p = 0; p < s->n_params; p++)
        if (present[p]) o->in[o->n_in++] = params[p];
    o->n_out = s->n_out;
    ic.n_in = oc->n_data;
    o->workspace = s->workspace_cuda ? s->workspace_cuda(&ic) : s->workspace ? s->workspace(&ic) : 0;
    for (int k = 0; k < o->n_in; k++) {
        int64_t n = prt_shape_count(&o->in[k]);
        o->host_in[k] = malloc(nbytes(&o->in[k]) + 4);
        /* batch norm's variance slot (its 5th operand) must be positive */
        bool positive = strcmp(s->name, "batchnorm") == 0 ? k == 4
                        : strcmp(s->name, "batchnorm_bwd") == 0 ? k == 4 : false;
        for (int64_t i = 0; i < n; i++) {
            float v = positive ? urand(0.5f, 1.5f) : urand(-1.0f, 1.0f);
            if (!positive && fabsf(v) < 1e-3f) v = 0.5f; /* never zero */
            o->host_in[k][i] = v;
        }
    }
    /* a batch with a non-zero mean, as activations after ReLU have */
    if (strncmp(s->name, "batchnorm", 9) == 0) {
        int xi = strcmp(s->name, "batchnorm") == 0 ? 0 : 1;
        for (int64_t i = 0; i < prt_shape_count(&o->in[xi]); i++) o->host_in[xi][i] += 0.75f;
    }
}

static void free_operands(operands *o) {
    for (int k = 0; k < o->n_in; k++) free(o->host_in[k]);
    for (int k = 0; k < o->n_out; k++) free(o->cpu_out[k]);
}

static void compare(const char *what, int idx, const float *got, const float *want, int64_t n, double r) {
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += (double)want[i] * want[i];
    double rms = n ? sqrt(ss / (double)n) : 0;
    ck_assert_msg(rms > 0, "%s output %d: the CPU result is all zero (the test would prove nothing)", what, idx);
    for (int64_t i = 0; i < n; i++) {
        double tol = r * (fabs((double)want[i]) + rms);
        ck_assert_msg(fabs((double)got[i] - want[i]) <= tol, "%s output %d [%lld]: GPU %.9g, CPU %.9g (tolerance %.3g)",
                      what, idx, (long long)i, (double)got[i], (double)want[i], tol);
    }
}

/* Runs oc on the CPU (reference kernel) and on the GPU, compares every output
 * and, for batch norm in training, the running statistics. */
static void check_case(const opcase *oc, const char *what) {
    operands o;
    setup_operands(oc, &o);
    const prt_op_schema *s = o.s;
    /* CPU */
    prt_tensor cin[MAXT], cout[4];
    const prt_tensor *cinp[MAXT];
    prt_tensor *coutp[4];
    float *cpu_in[MAXT];
    for (int k = 0; k < o.n_in; k++) {
        cpu_in[k] = malloc(nbytes(&o.in[k]) + 4);
        memcpy(cpu_in[k], o.host_in[k], nbytes(&o.in[k]));
        prt_tensor_wrap(&cin[k], cpu_in[k], PRT_F32, &o.in[k]);
        cinp[k] = &cin[k];
    }
    for (int k = 0; k < o.n_out; k++) {
        o.cpu_out[k] = calloc(1, nbytes(&o.out[k]) + 4);
        prt_tensor_wrap(&cout[k], o.cpu_out[k], PRT_F32, &o.out[k]);
        coutp[k] = &cout[k];
    }
    if (oc->inplace) coutp[0] = &cin[0];
    prt_kernel_call kc = {.ctx = ctx, .attrs = o.attrs, .n_in = o.n_in, .in = cinp, .n_out = o.n_out, .out = coutp,
                          .training = oc->training, .recompute = oc->recompute, .dev = prt_cpu_device(ctx)};
    /* the reference kernels take no workspace */
    if (s->ref.prepare) CK_OK(s->ref.prepare(&kc, &kc.state));
    CK_OK(s->ref.run(&kc));
    if (s->ref.release) s->ref.release(kc.state);
    if (oc->inplace) memcpy(o.cpu_out[0], cpu_in[0], nbytes(&o.out[0]));

    /* GPU */
    const prt_device_iface *f = gpu->iface;
    void *din[MAXT] = {0}, *dout[4] = {0}, *dws = NULL;
    prt_tensor gin[MAXT], gout[4];
    const prt_tensor *ginp[MAXT];
    prt_tensor *goutp[4];
    for (int k = 0; k < o.n_in; k++) {
        CK_OK(f->alloc(gpu, nbytes(&o.in[k]) + 4, &din[k]));
        CK_OK(f->copy(gpu, din[k], o.host_in[k], nbytes(&o.in[k]), PRT_COPY_HOST_TO_DEVICE, NULL));
        prt_tensor_wrap(&gin[k], din[k], PRT_F32, &o.in[k]);
        ginp[k] = &gin[k];
    }
    for (int k = 0; k < o.n_out; k++) {
        if (oc->inplace && k == 0) {
            goutp[0] = &gin[0];
            continue;
        }
        CK_OK(f->alloc(gpu, nbytes(&o.out[k]) + 4, &dout[k]));
        /* garbage the kernel must overwrite */
        CK_OK(f->fill_f32(gpu, dout[k], NAN, (size_t)prt_shape_count(&o.out[k]), NULL));
        prt_tensor_wrap(&gout[k], dout[k], PRT_F32, &o.out[k]);
        goutp[k] = &gout[k];
    }
    if (o.workspace) CK_OK(f->alloc(gpu, o.workspace, &dws));
    prt_kernel_call gc = {.ctx = ctx, .attrs = o.attrs, .n_in = o.n_in, .in = ginp, .n_out = o.n_out, .out = goutp,
                          .workspace = dws, .workspace_size = dws ? o.workspace : 0, .training = oc->training,
                          .recompute = oc->recompute, .dev = gpu,
                          .stream = prt_cuda_stream(gpu, PRT_CUDA_COMPUTE)};
    CK_OK(f->sync(gpu));
    if (s->cuda.prepare) CK_OK(s->cuda.prepare(&gc, &gc.state));
    CK_OK(s->cuda.run(&gc));
    CK_OK(f->sync(gpu));
    if (s->cuda.release) s->cuda.release(gc.state);
    double r = oc->rtol;
    for (int k = 0; k < o.n_out; k++) {
        float *got = malloc(nbytes(&o.out[k]) + 4);
        CK_OK(f->copy(gpu, got, goutp[k]->data, nbytes(&o.out[k]), PRT_COPY_DEVICE_TO_HOST, NULL));
        CK_OK(f->sync(gpu));
        compare(what, k, got, o.cpu_out[k], prt_shape_count(&o.out[k]), r);
        free(got);
    }
    /* batchnorm's running statistics: updated like the CPU's, or (RECOMPUTE,
     * inference) left exactly as they were */
    if (strcmp(s->name, "batchnorm") == 0) {
        for (int k = 3; k < 5; k++) {
            float *got = malloc(nbytes(&o.in[k]));
            CK_OK(f->copy(gpu, got, din[k], nbytes(&o.in[k]), PRT_COPY_DEVICE_TO_HOST, NULL));
            CK_OK(f->sync(gpu));
            if (oc->training && !oc->recompute) compare(what, 10 + k, got, cpu_in[k], prt_shape_count(&o.in[k]), R_F32);
            else
                ck_assert_msg(memcmp(got, o.host_in[k], nbytes(&o.in[k])) == 0,
                              "%s: running statistic %d changed (recompute or inference must not)", what, k);
            if (oc->training && !oc->recompute)
                ck_assert_msg(memcmp(cpu_in[k], o.host_in[k], nbytes(&o.in[k])) != 0,
                              "%s: the CPU did not update running statistic %d", what, k);
            free(got);
        }
    }
    for (int k = 0; k < o.n_in; k++) f->free(gpu, din[k]), free(cpu_in[k]);
    for (int k = 0; k < o.n_out; k++)
        if (dout[k]) f->free(gpu, dout[k]);
    if (dws) f->free(gpu, dws);
    free_operands(&o);
}

/* ---- cases -------------------------------------------------------------- */

#define I1(nm, a) {nm, 1, {a}, 0}
#define I2(nm, a, b) {nm, 2, {a, b}, 0}
#define I4(nm, a, b, c, d) {nm, 4, {a, b, c, d}, 0}
#define FL(nm, x) {nm, 0, {0}, x}

typedef struct conv_layer {
    const char *what;
    prt_shape x;
    aset set[6];
    int n_set;
} conv_layer;

static const conv_layer conv_layers[] = {
    {"3x3 stride 2 (PolyNet stem)", {4, {2, 3, 17, 17}}, {I1("out", 8), I1("kernel", 3), I1("stride", 2)}, 3},
    {"1x7 pad [0, 3]", {4, {2, 8, 9, 9}}, {I1("out", 12), I2("kernel", 1, 7), I2("pad", 0, 3)}, 3},
    {"7x1 pad [3, 0] with bias", {4, {1, 12, 9, 9}}, {I1("out", 8), I2("kernel", 7, 1), I2("pad", 3, 0), I1("bias", 1)}, 4},
    {"3x3 pad 1 stride 2 groups 2 dilation 2", {4, {2, 8, 13, 11}},
     {I1("out", 6), I1("kernel", 3), I1("pad", 2), I1("stride", 2), I1("groups", 2), I1("dilation", 2)}, 6},
    {"1x1 with bias", {4, {3, 16, 8, 8}}, {I1("out", 20), I1("kernel", 1), I1("bias", 1)}, 3},
};

/* The forward's output and weight shapes for a layer. */
static void conv_shapes(const conv_layer *l, prt_shape *y, prt_shape *w) {
    opcase oc = {.op = "conv", .n_data = 1, .data = {l->x}, .n_set = l->n_set};
    memcpy(oc.set, l->set, sizeof l->set);
    operands o;
    setup_operands(&oc, &o);
    *y = o.out[0];
    *w = o.in[1];
    free_operands(&o);
}

START_TEST(test_conv) {
    for (size_t i = 0; i < sizeof conv_layers / sizeof conv_layers[0]; i++) {
        const conv_layer *l = &conv_layers[i];
        prt_shape y, w;
        conv_shapes(l, &y, &w);
        char what[160];
        opcase oc = {.n_set = l->n_set, .rtol = R_CONV};
        memcpy(oc.set, l->set, sizeof l->set);
        oc.op = "conv", oc.n_data = 1, oc.data[0] = l->x;
        snprintf(what, sizeof what, "conv %s", l->what);
        check_case(&oc, what);
        oc.op = "conv_bwd_data", oc.n_data = 3, oc.data[0] = y, oc.data[1] = w, oc.data[2] = l->x;
        snprintf(what, sizeof what, "conv_bwd_data %s", l->what);
        check_case(&oc, what);
        oc.op = "conv_bwd_weight", oc.n_data = 3, oc.data[0] = y, oc.data[1] = l->x, oc.data[2] = w;
        snprintf(what, sizeof what, "conv_bwd_weight %s", l->what);
        check_case(&oc, what);
    }
}
END_TEST

START_TEST(test_conv_asymmetric_pad_refused) {
    opcase oc = {.op = "conv", .n_data = 1, .data = {{4, {1, 2, 6, 6}}}, .set = {I1("out", 2), I1("kernel", 3),
                 I4("pad", 0, 0, 1, 1)}, .n_set = 3, .rtol = R_CONV};
    operands o;
    setup_operands(&oc, &o);
    prt_tensor t[3];
    const prt_tensor *tp[3];
    prt_tensor y;
    prt_tensor *yp = &y;
    for (int k = 0; k < o.n_in; k++) prt_tensor_wrap(&t[k], NULL, PRT_F32, &o.in[k]), tp[k] = &t[k];
    prt_tensor_wrap(&y, NULL, PRT_F32, &o.out[0]);
    prt_kernel_call kc = {.ctx = ctx, .attrs = o.attrs, .n_in = o.n_in, .in = tp, .n_out = 1, .out = &yp, .dev = gpu,
                          .stream = prt_cuda_stream(gpu, PRT_CUDA_COMPUTE)};
    void *state = NULL;
    ck_assert_int_eq(o.s->cuda.prepare(&kc, &state), PRT_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(prt_last_error(ctx), "asymmetric padding [top 0, left 0, bottom 1, right 1]") != NULL, "%s",
                  prt_last_error(ctx));
    free_operands(&o);
}
END_TEST

START_TEST(test_batchnorm) {
    const prt_shape xs[] = {{4, {4, 6, 5, 5}}, {2, {8, 10}}, {4, {1, 3, 17, 17}}};
    const char *names[] = {"[4, 6, 5, 5]", "[8, 10]", "batch 1 [1, 3, 17, 17]"};
    for (size_t i = 0; i < 3; i++) {
        char what[160];
        opcase oc = {.op = "batchnorm", .n_data = 1, .data = {xs[i]}, .set = {FL("eps", 1e-3), FL("momentum", 0.2)},
                     .n_set = 2, .rtol = R_F32};
        oc.training = true;
        snprintf(what, sizeof what, "batchnorm training %s", names[i]);
        check_case(&oc, what);
        oc.inplace = true;
        snprintf(what, sizeof what, "batchnorm training in place %s", names[i]);
        check_case(&oc, what);
        oc.inplace = false;
        oc.recompute = true;
        snprintf(what, sizeof what, "batchnorm recompute %s", names[i]);
        check_case(&oc, what);
        oc.recompute = false;
        oc.training = false;
        snprintf(what, sizeof what, "batchnorm inference %s", names[i]);
        check_case(&oc, what);
        prt_shape c1 = {1, {xs[i].d[1]}};
        opcase ob = {.op = "batchnorm_bwd", .n_data = 3, .data = {xs[i], xs[i], c1}, .set = {FL("eps", 1e-3)},
                     .n_set = 1, .rtol = R_F32, .training = true};
        snprintf(what, sizeof what, "batchnorm_bwd training %s", names[i]);
        check_case(&ob, what);
        ob.n_data = 5, ob.data[3] = c1, ob.data[4] = c1, ob.training = false;
        snprintf(what, sizeof what, "batchnorm_bwd outside training %s", names[i]);
        check_case(&ob, what);
    }
}
END_TEST

typedef struct pool_case {
    const char *what;
    prt_shape x;
    aset set[5];
    int n_set;
} pool_case;

START_TEST(test_pooling) {
    static const pool_case cases[] = {
        {"3x3 stride 2 (PolyNet reduction)", {4, {2, 4, 17, 17}}, {I1("kernel", 3), I1("stride", 2)}, 2},
        {"3x3 stride 1 pad 1", {4, {1, 3, 9, 8}}, {I1("kernel", 3), I1("stride", 1), I1("pad", 1)}, 3},
        {"2x3 stride [2, 1] pad [0, 0, 1, 2]", {4, {2, 2, 7, 9}}, {I2("kernel", 2, 3), I2("stride", 2, 1),
                                                                    I4("pad", 0, 0, 1, 2)}, 3},
        {"global", {4, {2, 5, 6, 7}}, {I1("global", 1)}, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const pool_case *pc = &cases[i];
        for (int avg = 0; avg < 2; avg++)
            for (int cp = 0; cp < (avg ? 2 : 1); cp++) {
                char what[160];
                opcase oc = {.op = avg ? "avgpool" : "maxpool", .n_data = 1, .data = {pc->x}, .n_set = pc->n_set,
                             .rtol = R_POOL};
                memcpy(oc.set, pc->set, sizeof pc->set);
                if (avg) oc.set[oc.n_set++] = (aset)I1("count_include_pad", cp);
                snprintf(what, sizeof what, "%s %s%s", oc.op, pc->what, avg ? (cp ? " count_include_pad" : " exclude pad") : "");
                operands o;
                setup_operands(&oc, &o);
                prt_shape y = o.out[0];
                free_operands(&o);
                check_case(&oc, what);
                oc.op = avg ? "avgpool_bwd" : "maxpool_bwd";
                oc.n_data = 2, oc.data[0] = y, oc.data[1] = pc->x;
                snprintf(what, sizeof what, "%s %s%s", oc.op, pc->what, avg ? (cp ? " count_include_pad" : " exclude pad") : "");
                check_case(&oc, what);
            }
    }
}
END_TEST

START_TEST(test_linear) {
    const prt_shape xs[] = {{4, {4, 3, 5, 2}}, {2, {3, 20}}, {2, {1, 2048}}};
    const int outs[] = {7, 5, 10};
    for (size_t i = 0; i < 3; i++) {
        for (int bias = 0; bias < 2; bias++) {
            char what[160];
            opcase oc = {.op = "linear", .n_data = 1, .data = {xs[i]}, .set = {I1("out", outs[i]), I1("bias", bias)},
                         .n_set = 2, .rtol = R_F32};
            operands o;
            setup_operands(&oc, &o);
            prt_shape y = o.out[0], w = o.in[1];
            free_operands(&o);
            snprintf(what, sizeof what, "linear case %zu bias %d", i, bias);
            check_case(&oc, what);
            oc.op = "linear_bwd_data", oc.n_data = 3, oc.data[0] = y, oc.data[1] = w, oc.data[2] = xs[i];
            snprintf(what, sizeof what, "linear_bwd_data case %zu", i);
            check_case(&oc, what);
            oc.op = "linear_bwd_weight", oc.n_data = 2, oc.data[0] = y, oc.data[1] = xs[i];
            snprintf(what, sizeof what, "linear_bwd_weight case %zu", i);
            check_case(&oc, what);
        }
    }
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
    if (prt_cuda_device_count() == 0) {
        printf("SKIP: no CUDA device (prt_cuda_device_count() is 0: no GPU, no driver, or a build without CUDA)\n");
        return SKIP;
    }
    Suite *s = suite_create("cudnn_ops");
    TCase *tc = tcase_create("gpu");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_conv);
    tcase_add_test(tc, test_conv_asymmetric_pad_refused);
    tcase_add_test(tc, test_batchnorm);
    tcase_add_test(tc, test_pooling);
    tcase_add_test(tc, test_linear);
    suite_add_tcase(s, tc);
    return tu_run(s);
}

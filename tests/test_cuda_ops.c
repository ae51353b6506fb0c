/* The hand-written CUDA kernels (ops/cuda/elementwise.cu, xent.cu, copy.cu,
 * reduce.cu, optim.cu) against the CPU kernels of the same ops, through the op
 * registry: one table of cases, each run on random non-zero inputs by the
 * CPU's fast kernel (schema->fast, else ref) and by schema->cuda on a CUDA
 * device, outputs (and, for optimizers, the updated parameters and states)
 * compared elementwise with the case's tolerance:
 *     |gpu - cpu| <= rtol * |cpu| + atol * rms(cpu)
 * rtol 0 and atol 0 mean bit-identical (dropout's masks, copies, maps the GPU
 * rounds as the CPU). Cases marked in place also run with the output on the
 * input's device memory; concat also runs with inputs planned as views.
 *
 * Without a GPU, every case's CPU half still runs (so the table itself is
 * checked here), then the test prints "SKIP: no CUDA device" and exits 77. */
// labels: gpu
#include "tests/ops_test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cuda_api.h"

#define SKIP 77
#define MAXT 16 /* inputs of a case (optimizers: 3 params x 4) */

typedef enum { G_NORMAL, G_POS, G_LABELS, G_PROBS, G_BIG } gen_kind;

/* An attribute override: int/bool (n values), float, or string. */
typedef struct aset {
    const char *name;
    int n;
    int64_t v[4];
    double f;
    const char *s;
} aset;
#define AI(nm, a) {nm, 1, {a}, 0, NULL}
#define AI2(nm, a, b) {nm, 2, {a, b}, 0, NULL}
#define AF(nm, x) {nm, 0, {0}, x, NULL}
#define AS(nm, str) {nm, 0, {0}, 0, str}

typedef struct opcase {
    const char *op, *what;
    int n_in;
    prt_shape in[MAXT];
    gen_kind gen[MAXT];
    aset set[4];
    int n_set;
    bool training;
    uint64_t step;
    int64_t stride, offset; /* data-parallel sample geometry (0: one process) */
    int steps;              /* optimizer updates in a row (0: 1) */
    double rtol, atol;
    bool inplace;           /* also run with out[0] on in[inplace_in] */
    bool views;             /* concat: also run with inputs placed in the output */
} opcase;

/* constant shapes for the static table */
#define SH1(a) {1, {a}}
#define SH2(a, b) {2, {a, b}}
#define SH4_(a, b, c, d) {4, {a, b, c, d}}

/* Every op with a hand-written CUDA kernel. Tolerances: 0/0 where the GPU
 * evaluates the CPU's expression with IEEE float operations (exact); 2e-6
 * where it uses expf/tanhf (CUDA's are within 2 ulp, not correctly rounded);
 * 1e-6 relative to the output's rms for double sums in another order;
 * optimizers 1e-6 per step (their coefficients come from the same host code). */
/* Cases list only what they need: the rest of each entry is zero on purpose. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
static const opcase cases[] = {
    {"relu", "4-D", 1, {SH4_(2, 3, 5, 7)}, {G_NORMAL}, .inplace = true},
    {"relu_bwd", "4-D", 2, {SH4_(2, 3, 5, 7), SH4_(2, 3, 5, 7)}, {G_NORMAL, G_NORMAL}, .inplace = true},
    {"add", "two inputs", 2, {SH4_(2, 3, 4, 5), SH4_(2, 3, 4, 5)}, {G_NORMAL, G_NORMAL}, .inplace = true},
    {"add", "five inputs", 5, {SH2(7, 300), SH2(7, 300), SH2(7, 300), SH2(7, 300), SH2(7, 300)}, {0},
     .inplace = true},
    {"scale", "by -0.2", 1, {SH4_(3, 4, 5, 6)}, {G_NORMAL}, {AF("by", -0.2)}, 1, .inplace = true},
    {"mul", "equal shapes", 2, {SH4_(2, 3, 4, 5), SH4_(2, 3, 4, 5)}, {0}, .inplace = true},
    {"sub", "equal shapes", 2, {SH2(33, 65), SH2(33, 65)}, {0}, .inplace = true},
    {"div", "equal shapes", 2, {SH2(33, 65), SH2(33, 65)}, {G_NORMAL, G_POS}, .inplace = true},
    {"reduce_to", "sum to [1, 3, 1, 5]", 2, {SH4_(2, 3, 4, 5), SH4_(1, 3, 1, 5)}, {0}},
    {"reduce_to", "sum to [5]", 2, {SH4_(2, 3, 4, 5), SH1(5)}, {0}},
    {"reduce_to", "equal shapes", 2, {SH2(6, 7), SH2(6, 7)}, {0}, .inplace = true},
    {"sigmoid", "4-D", 1, {SH4_(2, 3, 9, 9)}, {G_BIG}, .rtol = 2e-6, .atol = 1e-7, .inplace = true},
    {"sigmoid_bwd", "4-D", 2, {SH4_(2, 3, 9, 9), SH4_(2, 3, 9, 9)}, {G_NORMAL, G_PROBS}, .inplace = true},
    {"tanh", "4-D", 1, {SH4_(2, 3, 9, 9)}, {G_BIG}, .rtol = 2e-6, .atol = 1e-7, .inplace = true},
    {"tanh_bwd", "4-D", 2, {SH4_(2, 3, 9, 9), SH4_(2, 3, 9, 9)}, {G_NORMAL, G_PROBS}, .inplace = true},
    {"dropout", "training", 1, {SH4_(4, 3, 17, 19)}, {0}, {AF("p", 0.3)}, 1, .training = true, .step = 7,
     .inplace = true},
    {"dropout", "data parallel rank 3 of 4", 1, {SH4_(2, 5, 7, 3)}, {0}, {AF("p", 0.5)}, 1, .training = true,
     .step = 3, .stride = 4, .offset = 3},
    {"dropout", "large step", 1, {SH2(64, 1000)}, {0}, {AF("p", 0.1)}, 1, .training = true,
     .step = 5000000000ull},
    {"dropout", "inference", 1, {SH2(8, 9)}, {0}, {AF("p", 0.3)}, 1},
    {"dropout", "p = 1", 1, {SH2(8, 9)}, {0}, {AF("p", 1.0)}, 1, .training = true, .step = 1},
    {"dropout_bwd", "training", 1, {SH4_(4, 3, 17, 19)}, {0}, {AF("p", 0.3), AS("of", "block1/drop")}, 2,
     .training = true, .step = 11, .inplace = true},
    {"dropout_bwd", "data parallel rank 1 of 2", 1, {SH2(6, 50)}, {0}, {AF("p", 0.25), AS("of", "fc/drop")}, 2,
     .training = true, .step = 2, .stride = 2, .offset = 1},
    {"softmax_xent", "1000 classes", 2, {SH2(9, 1000), SH1(9)}, {G_NORMAL, G_LABELS}, .rtol = 1e-6, .atol = 1e-7},
    {"softmax_xent", "smoothing 0.1, labels [N, 1]", 2, {SH2(33, 10), SH2(33, 1)}, {G_NORMAL, G_LABELS},
     {AF("smoothing", 0.1)}, 1, .rtol = 1e-6, .atol = 1e-7},
    {"softmax_xent", "logits near 1e4", 2, {SH2(5, 7), SH1(5)}, {G_BIG, G_LABELS}, {AF("smoothing", 0.2)}, 1,
     .rtol = 1e-6, .atol = 1e-7},
    {"softmax_xent_bwd", "with dloss", 3, {SH2(9, 1000), SH1(9), SH1(1)}, {G_PROBS, G_LABELS, G_NORMAL},
     {AF("smoothing", 0.1)}, 1, .inplace = true},
    {"softmax_xent_bwd", "without dloss", 2, {SH2(17, 10), SH2(17, 1)}, {G_PROBS, G_LABELS}, .inplace = true},
    {"concat", "axis 1, 3 inputs", 3, {SH4_(2, 3, 4, 4), SH4_(2, 5, 4, 4), SH4_(2, 1, 4, 4)}, {0}},
    {"concat", "axis -1", 2, {SH2(4, 3), SH2(4, 8)}, {0}, {AI("axis", -1)}, 1},
    {"concat", "batch 1: planned views", 3, {SH4_(1, 3, 4, 4), SH4_(1, 5, 4, 4), SH4_(1, 2, 4, 4)}, {0},
     .views = true},
    {"slice", "axis 1 from 3", 2, {SH4_(2, 6, 3, 3), SH4_(2, 2, 3, 3)}, {0}, {AI("axis", 1), AI("start", 3)}, 2},
    {"slice", "axis -1 from 0", 2, {SH2(5, 9), SH2(5, 4)}, {0}, {AI("axis", -1), AI("start", 0)}, 2},
    {"flatten", "4-D", 1, {SH4_(2, 3, 4, 5)}, {0}, .inplace = true},
    {"reshape", "to [0, -1]", 1, {SH4_(2, 3, 4, 5)}, {0}, {AI2("shape", 0, -1)}, 1, .inplace = true},
    {"reshape_like", "back to 4-D", 2, {SH2(2, 60), SH4_(2, 3, 4, 5)}, {0}, .inplace = true},
    {"bias_grad", "conv [N, C, H, W]", 1, {SH4_(3, 7, 11, 13)}, {0}, .atol = 1e-6},
    {"bias_grad", "linear [N, C]", 1, {SH2(65, 10)}, {0}, .atol = 1e-6},
    {"global_avgpool", "8 x 8 planes", 1, {SH4_(4, 37, 8, 8)}, {0}, .atol = 1e-6},
    {"global_avgpool", "planes of 1 and odd sizes", 1, {SH4_(2, 3, 1, 1)}, {0}, .atol = 1e-6},
    {"sgd", "momentum", 9, {SH2(70, 70), SH1(10), SH4_(2, 3, 3, 3), SH2(70, 70), SH1(10), SH4_(2, 3, 3, 3),
                            SH2(70, 70), SH1(10), SH4_(2, 3, 3, 3)}, {0},
     {AF("lr", 0.05), AF("momentum", 0.9), AF("weight_decay", 1e-3)}, 3, .steps = 3, .rtol = 1e-6, .atol = 1e-7},
    {"sgd", "nesterov, cosine", 3, {SH1(5000), SH1(5000), SH1(5000)}, {0},
     {AI("nesterov", 1), AS("schedule", "cosine"), AI("total_steps", 10)}, 3, .steps = 3, .rtol = 1e-6,
     .atol = 1e-7},
    {"sgd", "no momentum", 3, {SH1(100), SH1(100), SH1(100)}, {0}, {AF("momentum", 0)}, 1, .steps = 2,
     .rtol = 1e-6, .atol = 1e-7},
    {"adam", "3 params", 12, {SH2(70, 70), SH1(10), SH1(4097), SH2(70, 70), SH1(10), SH1(4097), SH2(70, 70),
                              SH1(10), SH1(4097), SH2(70, 70), SH1(10), SH1(4097)},
     {0, 0, 0, 0, 0, 0, 0, 0, 0, G_POS, G_POS, G_POS}, {AF("lr", 1e-3), AF("weight_decay", 1e-2)}, 2, .steps = 3,
     .rtol = 1e-6, .atol = 1e-7},
    {"adamw", "2 params", 8, {SH1(9000), SH1(3), SH1(9000), SH1(3), SH1(9000), SH1(3), SH1(9000), SH1(3)},
     {0, 0, 0, 0, 0, 0, G_POS, G_POS}, {AF("lr", 1e-3), AF("weight_decay", 0.05)}, 2, .steps = 3, .rtol = 1e-6,
     .atol = 1e-7},
    {"rmsprop", "2 params", 8, {SH2(30, 30), SH1(7), SH2(30, 30), SH1(7), SH2(30, 30), SH1(7), SH2(30, 30), SH1(7)},
     {0, 0, 0, 0, G_POS, G_POS, 0, 0}, {AF("lr", 0.01), AF("weight_decay", 1e-4)}, 2, .steps = 3, .rtol = 1e-6,
     .atol = 1e-7},
};
#pragma GCC diagnostic pop
#define N_CASES (int)(sizeof cases / sizeof cases[0])

/* ---- random inputs ---------------------------------------------------------- */

static float rnormal(rng *r) {
    double u1 = (runif(r) + 1e-12), u2 = runif(r);
    return (float)(sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
}

/* Non-zero values: a zero would hide relu's and dropout's choices. */
static void fill(rng *r, gen_kind g, const prt_shape *s, const prt_shape *x0, void *dst) {
    int64_t n = prt_shape_count(s);
    if (g == G_LABELS) {
        int64_t classes = x0->ndim == 2 ? x0->d[1] : 1;
        for (int64_t i = 0; i < n; i++) ((int32_t *)dst)[i] = (int32_t)(rnext(r) % (uint64_t)classes);
        return;
    }
    float *f = dst;
    for (int64_t i = 0; i < n; i++) {
        float v = rnormal(r);
        if (fabsf(v) < 1e-3f) v = v < 0 ? -0.5f : 0.5f;
        switch (g) {
        case G_POS: v = 0.5f + (float)runif(r) * 1.5f; break;
        case G_PROBS: v = 0.01f + (float)runif(r) * 0.98f; break;
        case G_BIG: v *= (s->ndim == 2 ? 1e4f : 8.0f); break;
        default: break;
        }
        f[i] = v;
    }
}

/* ---- one case: the CPU half --------------------------------------------------- */

typedef struct run {
    const prt_op_schema *s;
    prt_attr attrs[16]; /* the optimizers have the most: 15 */
    prt_shape in_sh[MAXT], out_sh[4];
    prt_dtype in_dt[MAXT];
    int n_out;
    size_t in_bytes[MAXT], out_bytes[4], ws;
    void *in0[MAXT];          /* the initial inputs */
    void *cin[MAXT], *cout[4]; /* CPU inputs (updated in place) and outputs */
} run;

static void set_attrs(const prt_op_schema *s, const opcase *oc, prt_attr *attrs) {
    ck_assert_int_le(s->n_attrs, 16);
    for (int i = 0; i < s->n_attrs; i++) {
        attrs[i] = s->attrs[i].def;
        attrs[i].type = s->attrs[i].type;
        attrs[i].set = false;
    }
    for (int k = 0; k < oc->n_set; k++) {
        int i = prt_op_attr_index(s, oc->set[k].name);
        ck_assert_msg(i >= 0, "%s: no attribute '%s'", s->name, oc->set[k].name);
        prt_attr *a = &attrs[i];
        a->set = true;
        if (a->type == PRT_ATTR_FLOAT) a->f = oc->set[k].f;
        else if (a->type == PRT_ATTR_STRING) a->s = oc->set[k].s;
        else {
            a->n = a->type == PRT_ATTR_INTS ? oc->set[k].n : 1;
            for (int j = 0; j < 4; j++) a->i[j] = oc->set[k].v[j];
        }
    }
}

static prt_kernel_call make_call(prt_context *ctx, run *r, const opcase *oc, prt_tensor *ti, const prt_tensor **pi,
                                 prt_tensor *to, prt_tensor **po, void *const *in, void *const *out, void *ws,
                                 size_t ws_size) {
    for (int k = 0; k < oc->n_in; k++) {
        prt_tensor_wrap(&ti[k], in[k], r->in_dt[k], &r->in_sh[k]);
        pi[k] = &ti[k];
    }
    for (int k = 0; k < r->n_out; k++) {
        prt_tensor_wrap(&to[k], out[k], PRT_F32, &r->out_sh[k]);
        po[k] = &to[k];
    }
    return (prt_kernel_call){.ctx = ctx, .attrs = r->attrs, .n_in = oc->n_in, .in = pi, .n_out = r->n_out,
                             .out = po, .workspace = ws, .workspace_size = ws_size, .training = oc->training,
                             .rng_key = prt_hash_str("case/node", 99), .step = oc->step,
                             .sample_stride = oc->stride, .sample_offset = oc->offset};
}

static void cpu_half(prt_context *ctx, const opcase *oc, run *r) {
    memset(r, 0, sizeof *r);
    r->s = prt_op_find(ctx->ops, oc->op, NULL);
    ck_assert_msg(r->s, "op '%s' is not registered", oc->op);
    set_attrs(r->s, oc, r->attrs);
    /* shape inference through the schema */
    prt_shape params[PRT_MAX_OP_PARAMS];
    bool present[PRT_MAX_OP_PARAMS];
    for (int k = 0; k < oc->n_in; k++) r->in_sh[k] = oc->in[k];
    prt_infer_ctx ic = {.ctx = ctx, .node_name = "t", .attrs = r->attrs, .n_in = oc->n_in, .in = r->in_sh,
                        .in_dtype = PRT_F32, .n_out = r->s->n_out, .out = r->out_sh, .out_dtype = PRT_F32,
                        .n_params = r->s->n_params, .params = params, .param_present = present, .op_name = oc->op};
    ck_assert_msg(r->s->infer(&ic) == PRT_OK, "%s (%s): %s", oc->op, oc->what, prt_last_error(ctx));
    r->n_out = r->s->n_out;
    r->ws = r->s->workspace ? r->s->workspace(&ic) : 0;
    rng g = {0x1234567u + (uint64_t)(oc - cases) * 7919u};
    for (int k = 0; k < oc->n_in; k++) {
        r->in_dt[k] = oc->gen[k] == G_LABELS ? PRT_I32 : PRT_F32;
        r->in_bytes[k] = (size_t)prt_shape_count(&r->in_sh[k]) * 4;
        r->in0[k] = malloc(r->in_bytes[k] + 4);
        r->cin[k] = malloc(r->in_bytes[k] + 4);
        ck_assert(r->in0[k] && r->cin[k]);
        fill(&g, oc->gen[k], &r->in_sh[k], &r->in_sh[0], r->in0[k]);
        memcpy(r->cin[k], r->in0[k], r->in_bytes[k]);
    }
    for (int k = 0; k < r->n_out; k++) {
        r->out_bytes[k] = (size_t)prt_shape_count(&r->out_sh[k]) * 4;
        r->cout[k] = calloc(1, r->out_bytes[k] + 4);
        ck_assert(r->cout[k]);
    }
    void *ws = r->ws ? malloc(r->ws) : NULL;
    prt_tensor ti[MAXT], to[4];
    const prt_tensor *pi[MAXT];
    prt_tensor *po[4];
    const prt_kernel *kern = prt_op_kernel(r->s, false);
    int steps = oc->steps ? oc->steps : 1;
    for (int t = 0; t < steps; t++) {
        prt_kernel_call c = make_call(ctx, r, oc, ti, pi, to, po, r->cin, r->cout, ws, r->ws);
        c.step = oc->step + (uint64_t)t;
        c.dev = prt_cpu_device(ctx);
        if (kern->prepare) ck_assert_msg(kern->prepare(&c, &c.state) == PRT_OK, "%s", prt_last_error(ctx));
        ck_assert_msg(kern->run(&c) == PRT_OK, "%s (%s) on the CPU: %s", oc->op, oc->what, prt_last_error(ctx));
        if (kern->release) kern->release(c.state);
    }
    free(ws);
}

static void free_run(run *r, const opcase *oc) {
    for (int k = 0; k < oc->n_in; k++) free(r->in0[k]), free(r->cin[k]);
    for (int k = 0; k < r->n_out; k++) free(r->cout[k]);
}

/* ---- comparison ------------------------------------------------------------------ */

static void compare(const opcase *oc, const char *mode, const char *which, int idx, const float *want,
                    const float *got, int64_t n) {
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += (double)want[i] * want[i];
    double rms = n ? sqrt(ss / (double)n) : 0;
    int64_t bad = 0, first = -1;
    for (int64_t i = 0; i < n; i++) {
        double w = want[i], g = got[i];
        bool ok = (isnan(w) && isnan(g)) || fabs(g - w) <= oc->rtol * fabs(w) + oc->atol * rms;
        if (!ok && bad++ == 0) first = i;
    }
    ck_assert_msg(bad == 0, "%s (%s, %s): %s %d: %lld of %lld elements differ; first at %lld: GPU %.9g, CPU %.9g "
                  "(rtol %g, atol %g x rms %g)", oc->op, oc->what, mode, which, idx, (long long)bad, (long long)n,
                  (long long)first, first >= 0 ? got[first] : 0.0, first >= 0 ? want[first] : 0.0, oc->rtol,
                  oc->atol, rms);
}

/* ---- the GPU half ------------------------------------------------------------------ */

typedef enum { MODE_PLAIN, MODE_INPLACE, MODE_VIEWS } run_mode;
static const char *const mode_name[] = {"out of place", "in place", "inputs as views"};

static void gpu_half(prt_context *ctx, prt_device *gpu, const opcase *oc, run *r, run_mode mode) {
    const prt_device_iface *f = gpu->iface;
    void *din[MAXT] = {0}, *dout[4] = {0}, *dws = NULL;
    void *owned[MAXT + 4] = {0};
    int n_owned = 0;
    int inplace_in = r->s->inplace_in;
    size_t ws = r->s->workspace_cuda ? 0 : r->ws; /* workspace_cuda needs an infer ctx: not for these ops */
    /* outputs first, so view-mode inputs can point into output 0 */
    for (int k = 0; k < r->n_out; k++) {
        if (mode == MODE_INPLACE && k == 0) continue;
        ck_assert_int_eq(f->alloc(gpu, r->out_bytes[k] + 4, &dout[k]), PRT_OK);
        owned[n_owned++] = dout[k];
    }
    int64_t at = 0;
    for (int k = 0; k < oc->n_in; k++) {
        if (mode == MODE_VIEWS) {
            din[k] = (float *)dout[0] + at;
            at += prt_shape_count(&r->in_sh[k]);
        } else {
            ck_assert_int_eq(f->alloc(gpu, r->in_bytes[k] + 4, &din[k]), PRT_OK);
            owned[n_owned++] = din[k];
        }
        ck_assert_int_eq(f->copy(gpu, din[k], r->in0[k], r->in_bytes[k], PRT_COPY_HOST_TO_DEVICE, NULL), PRT_OK);
    }
    if (mode == MODE_INPLACE) dout[0] = din[inplace_in];
    if (ws) ck_assert_int_eq(f->alloc(gpu, ws, &dws), PRT_OK);

    prt_tensor ti[MAXT], to[4];
    const prt_tensor *pi[MAXT];
    prt_tensor *po[4];
    int steps = oc->steps ? oc->steps : 1;
    prt_kernel_call c = make_call(ctx, r, oc, ti, pi, to, po, din, dout, dws, ws);
    c.dev = gpu;
    c.stream = prt_cuda_stream(gpu, PRT_CUDA_COMPUTE);
    const prt_kernel *kern = &r->s->cuda;
    ck_assert_msg(kern->run, "%s has no CUDA kernel", oc->op);
    if (kern->prepare)
        ck_assert_msg(kern->prepare(&c, &c.state) == PRT_OK, "%s prepare: %s", oc->op, prt_last_error(ctx));
    for (int t = 0; t < steps; t++) {
        c.step = oc->step + (uint64_t)t;
        ck_assert_msg(kern->run(&c) == PRT_OK, "%s (%s, %s) on the GPU: %s", oc->op, oc->what, mode_name[mode],
                      prt_last_error(ctx));
    }
    ck_assert_msg(f->sync(gpu) == PRT_OK, "%s (%s): %s", oc->op, oc->what, prt_last_error(ctx));
    if (kern->release) kern->release(c.state);

    for (int k = 0; k < r->n_out; k++) {
        float *back = malloc(r->out_bytes[k] + 4);
        ck_assert_int_eq(f->copy(gpu, back, dout[k], r->out_bytes[k], PRT_COPY_DEVICE_TO_HOST, NULL), PRT_OK);
        ck_assert_int_eq(f->sync(gpu), PRT_OK);
        compare(oc, mode_name[mode], "output", k, r->cout[k], back, prt_shape_count(&r->out_sh[k]));
        free(back);
    }
    if (r->s->updates_inputs) /* every parameter and state the update wrote (gradients unchanged) */
        for (int k = 0; k < oc->n_in; k++) {
            float *back = malloc(r->in_bytes[k] + 4);
            ck_assert_int_eq(f->copy(gpu, back, din[k], r->in_bytes[k], PRT_COPY_DEVICE_TO_HOST, NULL), PRT_OK);
            ck_assert_int_eq(f->sync(gpu), PRT_OK);
            compare(oc, mode_name[mode], "input", k, r->cin[k], back, prt_shape_count(&r->in_sh[k]));
            free(back);
        }
    for (int k = 0; k < n_owned; k++) f->free(gpu, owned[k]);
    if (dws) f->free(gpu, dws);
}

/* ---- the tests ------------------------------------------------------------------------ */

static prt_context *g_ctx;
static prt_device *g_gpu;

START_TEST(op_case) {
    const opcase *oc = &cases[_i];
    run r;
    cpu_half(g_ctx, oc, &r);
    gpu_half(g_ctx, g_gpu, oc, &r, MODE_PLAIN);
    if (oc->inplace) {
        ck_assert_msg(r.s->inplace_in >= 0, "%s: marked in place but the op has no in-place input", oc->op);
        gpu_half(g_ctx, g_gpu, oc, &r, MODE_INPLACE);
    }
    if (oc->views) gpu_half(g_ctx, g_gpu, oc, &r, MODE_VIEWS);
    free_run(&r, oc);
}
END_TEST

/* mul/sub/div on the GPU take equal shapes only: broadcasting is refused by
 * name, not computed wrongly. */
START_TEST(broadcast_refused) {
    const prt_op_schema *s = prt_op_find(g_ctx->ops, "mul", NULL);
    void *a = NULL, *b = NULL, *y = NULL;
    const prt_device_iface *f = g_gpu->iface;
    ck_assert_int_eq(f->alloc(g_gpu, 24 * 4, &a), PRT_OK);
    ck_assert_int_eq(f->alloc(g_gpu, 4 * 4, &b), PRT_OK);
    ck_assert_int_eq(f->alloc(g_gpu, 24 * 4, &y), PRT_OK);
    prt_shape sa = {2, {6, 4}}, sb = {2, {1, 4}};
    prt_tensor ta, tb, ty;
    prt_tensor_wrap(&ta, a, PRT_F32, &sa);
    prt_tensor_wrap(&tb, b, PRT_F32, &sb);
    prt_tensor_wrap(&ty, y, PRT_F32, &sa);
    const prt_tensor *in[2] = {&ta, &tb};
    prt_tensor *out[1] = {&ty};
    prt_kernel_call c = {.ctx = g_ctx, .n_in = 2, .in = in, .n_out = 1, .out = out, .dev = g_gpu,
                         .stream = prt_cuda_stream(g_gpu, PRT_CUDA_COMPUTE)};
    ck_assert_int_eq(s->cuda.run(&c), PRT_ERR_UNSUPPORTED);
    ck_assert_str_eq(prt_last_error(g_ctx), "mul CUDA kernel: inputs [6, 4] and [1, 4] (output [6, 4]): "
                                            "broadcasting is not supported on the GPU, only inputs of equal shapes");
    f->free(g_gpu, a);
    f->free(g_gpu, b);
    f->free(g_gpu, y);
}
END_TEST

/* Without a GPU: the CPU half of each case (the table itself is checked). */
START_TEST(cpu_half_only) {
    prt_context_options o = {.struct_size = sizeof o, .log_level = PRT_LOG_WARN};
    prt_context *ctx = NULL;
    ck_assert_int_eq(prt_context_create(&o, &ctx), PRT_OK);
    run r;
    cpu_half(ctx, &cases[_i], &r);
    free_run(&r, &cases[_i]);
    prt_context_destroy(ctx);
}
END_TEST

static int run_suite(Suite *s, bool fork) {
    SRunner *sr = srunner_create(s);
    /* with a GPU the CUDA runtime is initialised in this process: a forked
     * child could not use it */
    if (!fork) srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed;
}

int main(void) {
    if (prt_cuda_device_count() == 0) {
        Suite *s = suite_create("cuda_ops (CPU halves)");
        TCase *tc = tcase_create("cpu");
        tcase_add_loop_test(tc, cpu_half_only, 0, N_CASES);
        suite_add_tcase(s, tc);
        if (run_suite(s, true)) return 1;
        printf("SKIP: no CUDA device (the %d op cases ran on the CPU only)\n", N_CASES);
        return SKIP;
    }
    prt_context_options o = {.struct_size = sizeof o, .log_level = PRT_LOG_WARN};
    if (prt_context_create(&o, &g_ctx) != PRT_OK) return 1;
    if (prt_cuda_device_create(g_ctx, 0, &g_gpu) != PRT_OK) {
        fprintf(stderr, "opening CUDA device 0: %s\n", prt_last_error(g_ctx));
        prt_context_destroy(g_ctx);
        return 1;
    }
    Suite *s = suite_create("cuda_ops");
    TCase *tc = tcase_create("gpu_vs_cpu");
    tcase_add_loop_test(tc, op_case, 0, N_CASES);
    tcase_add_test(tc, broadcast_refused);
    suite_add_tcase(s, tc);
    int failed = run_suite(s, false);
    prt_cuda_device_destroy(g_gpu);
    prt_context_destroy(g_ctx);
    return failed ? 1 : 0;
}

/* The gradient-check harness. It loops over the registry, so an op added with
 * a gradient builder and no cases here fails, as does an op with neither a
 * builder nor a grad_note, and a backward-only op that no forward op's
 * gradient emits.
 *
 * Method. For an op f with data inputs x_k and parameters w, the graph is
 *     x_k (graph input) -> scale by 1 -> f -> outputs y_j
 * (graph inputs get no gradients, and scaling by 1 is exact, so perturbing the
 * graph input perturbs f's input by exactly as much). Seeds dy_j are further
 * graph inputs filled with random numbers, or, for the loss, the scalar 1 or a
 * computed dloss. f's own gradient builder (schema->grad) appends the backward
 * nodes; the program runs with the reference kernels and with the fast paths,
 * in training mode unless a case says otherwise. The analytic gradient of
 *     L = sum_j <dy_j, y_j>
 * with respect to each data input and each trainable parameter is compared,
 * on up to MAX_SAMPLES elements per tensor, with central differences
 * (L(v + h) - L(v - h)) / 2h, L accumulated in double over float32 runs of
 * the same program. The step counter is reset before every run, so dropout
 * masks are identical; kinks are avoided by construction (relu inputs at
 * least 0.1 from zero, max-pooling inputs distinct by 0.05, h = 0.01).
 *
 * Tolerance, per element:
 *     |fd - an| <= 1e-2 * (|fd| + |an|) + 1e-3 * (rms(an) + 1e-3)
 * with rms over the checked elements of that gradient tensor: about 2% of the
 * value (room for the O(h^2) truncation of smooth ops such as batch norm and
 * softmax) plus a thousandth of the tensor's typical gradient (float32
 * rounding of L divided by 2h). The worst error seen, as a fraction of the
 * tolerance, is printed per op: about 0.1 at the time of writing.
 *
 * Graph level, through prt_autodiff: fan-out (gradients of a value used by
 * several nodes are summed) and PolyNet's poly-3 weight sharing (one conv
 * weight used three times, each use with its own batch norm: the gradient is
 * the sum over the uses), every parameter against finite differences with
 * the same tolerance and h = 1e-3 (elements whose step flips a relu input are
 * skipped, and must stay rare). The backward ops' kernels on their own are
 * in test_grad_kernels.c. */
// labels: unit

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/train_impl.h"
#include "tests/ops_test_util.h"
#include "tests/vm_util.h"
#include "vm/vm_api.h"

#define RTOL 1e-2
#define ATOL 1e-3
#define MAX_SAMPLES 48
#define STEP 5 /* every run executes as this step */
#define H 1e-2

enum { FILL_NORMAL, FILL_AWAY_FROM_ZERO, FILL_DISTINCT };
enum { SEED_ALL, SEED_LOSS_ONE, SEED_LOSS_DLOSS };

typedef struct gcase {
    tcase t;        /* data input shapes (batch first) and attribute overrides */
    bool inference; /* run with training = false */
    bool labels;    /* an i32 labels input [N, 1] follows the data inputs */
    int seed;       /* SEED_*: how the outputs get their gradients */
    int fill;       /* FILL_*: the data inputs' values */
} gcase;

static gcase *gadd(gcase *cs, int *n, const char *what, int n_in, const prt_shape *in, const tset *set, int n_set) {
    ck_assert_int_lt(*n, MAX_CASES);
    gcase *c = &cs[(*n)++];
    memset(c, 0, sizeof *c);
    int k = 0;
    add_case(&c->t, &k, what, n_in, in, set, n_set);
    return c;
}

#define GCASE(what, shapes, ...)                                                                            \
    do {                                                                                                    \
        prt_shape sh_[] = {UNPAREN shapes};                                                                 \
        tset st_[] = {FL(NULL, 0), __VA_ARGS__};                                                            \
        last = gadd(cs, &n, what, (int)(sizeof sh_ / sizeof sh_[0]), sh_, st_ + 1,                          \
                    (int)(sizeof st_ / sizeof st_[0]) - 1);                                                 \
    } while (0)

/* ---- cases, per op -------------------------------------------------------- */

static int cases_conv(gcase *cs, rng *r) {
    int n = 0;
    gcase *last;
    GCASE("3x3 pad 1, bias", S(SH4(2, 3, 5, 5)), I1("out", 4), I1("kernel", 3), I1("pad", 1));
    GCASE("stride 2, no bias", S(SH4(2, 4, 7, 6)), I1("out", 3), I1("kernel", 3), I1("stride", 2), I1("bias", 0));
    GCASE("groups 2, dilation 2", S(SH4(1, 4, 7, 7)), I1("out", 6), I1("kernel", 3), I1("groups", 2),
          I1("dilation", 2), I1("pad", 2));
    GCASE("depthwise", S(SH4(2, 3, 5, 5)), I1("out", 3), I1("kernel", 3), I1("groups", 3), I1("pad", 1));
    GCASE("1x3, asymmetric pad", S(SH4(2, 2, 4, 6)), I1("out", 3), I2("kernel", 1, 3), I4("pad", 0, 1, 1, 0));
    GCASE("1x1, stride 3", S(SH4(1, 5, 7, 7)), I1("out", 4), I1("kernel", 1), I1("stride", 3));
    for (int t = 0; t < 3; t++) {
        int64_t g = rint_(r, 1, 2), c = g * rint_(r, 1, 3), o = g * rint_(r, 1, 3);
        int64_t kh = rint_(r, 1, 3), kw = rint_(r, 1, 3), dh = rint_(r, 1, 2), dw = rint_(r, 1, 2);
        prt_shape in = SH4(rint_(r, 1, 2), c, dh * (kh - 1) + 1 + rint_(r, 0, 4), dw * (kw - 1) + 1 + rint_(r, 0, 4));
        tset st[] = {I1("out", o), I2("kernel", kh, kw), I2("stride", rint_(r, 1, 2), rint_(r, 1, 2)),
                     I2("dilation", dh, dw), I4("pad", rint_(r, 0, 2), rint_(r, 0, 2), rint_(r, 0, 2), rint_(r, 0, 2)),
                     I1("groups", g), I1("bias", (int64_t)(rnext(r) & 1))};
        gadd(cs, &n, "random", 1, &in, st, 7);
    }
    (void)last;
    return n;
}

static int cases_batchnorm(gcase *cs, rng *r) {
    int n = 0;
    gcase *last;
    GCASE("training 4-D", S(SH4(4, 3, 3, 3)), FL("momentum", 0.3));
    GCASE("training 2-D", S(SH(2, 8, 5, 0, 0)));
    GCASE("training 3-D, eps 1e-2", S(SH(3, 3, 2, 4, 0)), FL("eps", 1e-2));
    (void)last;
    prt_shape in = SH4(rint_(r, 2, 3), rint_(r, 1, 4), rint_(r, 2, 4), rint_(r, 2, 4));
    gadd(cs, &n, "random training", 1, &in, NULL, 0);
    return n;
}

/* batchnorm then relu in one op: small channels keep the ReLU kinks (outputs
 * within a step's reach of 0) rare; the seeds below cross none */
static int cases_batchnorm_relu(gcase *cs, rng *r) {
    int n = 0;
    gcase *last;
    GCASE("training 4-D", S(SH4(2, 3, 2, 3)), FL("momentum", 0.3));
    GCASE("training 2-D", S(SH(2, 6, 4, 0, 0)));
    GCASE("inference 4-D", S(SH4(2, 2, 3, 2)), FL("eps", 1e-2));
    last->inference = true;
    GCASE("training 3-D", S(SH(3, 2, 2, 3, 0)), FL("eps", 1e-3));
    (void)r;
    return n;
}

static int cases_relu(gcase *cs, rng *r) {
    int n = 0;
    for (int t = 0; t < 4; t++) {
        int nd = (int)rint_(r, 2, 4);
        prt_shape in = SH(nd, rint_(r, 1, 3), rint_(r, 1, 6), rint_(r, 1, 5), rint_(r, 1, 5));
        gadd(cs, &n, "random", 1, &in, NULL, 0)->fill = FILL_AWAY_FROM_ZERO;
    }
    return n;
}

static int cases_pool(gcase *cs, rng *r, bool avg) {
    int n = 0;
    gcase *last;
    GCASE("2x2", S(SH4(2, 3, 6, 6)), I1("kernel", 2));
    GCASE("3x3 stride 2 pad 1", S(SH4(1, 2, 7, 7)), I1("kernel", 3), I1("stride", 2), I1("pad", 1));
    GCASE("3x3 stride 1 (overlapping)", S(SH4(2, 2, 5, 5)), I1("kernel", 3), I1("stride", 1));
    GCASE("global", S(SH4(2, 3, 4, 5)), I1("global", 1));
    GCASE("stride > kernel", S(SH4(1, 2, 8, 7)), I1("kernel", 2), I1("stride", 3));
    GCASE("asymmetric pad", S(SH4(2, 2, 5, 6)), I1("kernel", 3), I1("stride", 1), I4("pad", 2, 0, 1, 2));
    if (avg) {
        GCASE("pad counted", S(SH4(2, 2, 5, 5)), I1("kernel", 3), I1("stride", 2), I1("pad", 1),
              I1("count_include_pad", 1));
        GCASE("pad not counted", S(SH4(2, 2, 5, 5)), I1("kernel", 3), I1("stride", 2), I1("pad", 1),
              I1("count_include_pad", 0));
        GCASE("asymmetric pad not counted", S(SH4(1, 3, 6, 5)), I2("kernel", 3, 2), I1("stride", 1),
              I4("pad", 1, 0, 2, 1), I1("count_include_pad", 0));
    }
    for (int t = 0; t < 3; t++) {
        int64_t kh = rint_(r, 1, 3), kw = rint_(r, 1, 3);
        int64_t p[4] = {rint_(r, 0, kh - 1), rint_(r, 0, kw - 1), rint_(r, 0, kh - 1), rint_(r, 0, kw - 1)};
        prt_shape in = SH4(rint_(r, 1, 2), rint_(r, 1, 3), kh + rint_(r, 0, 4), kw + rint_(r, 0, 4));
        tset st[] = {I2("kernel", kh, kw), I2("stride", rint_(r, 1, 2), rint_(r, 1, 2)), I4("pad", p[0], p[1], p[2], p[3]),
                     I1("count_include_pad", (int64_t)(rnext(r) & 1))};
        gadd(cs, &n, "random", 1, &in, st, avg ? 4 : 3);
    }
    for (int k = 0; k < n; k++) cs[k].fill = avg ? FILL_NORMAL : FILL_DISTINCT;
    (void)last;
    return n;
}

static int cases_concat(gcase *cs, rng *r) {
    int n = 0;
    gcase *last;
    GCASE("axis 1", S(SH4(2, 3, 2, 3), SH4(2, 2, 2, 3)));
    GCASE("axis 2, three inputs", S(SH4(2, 2, 3, 2), SH4(2, 2, 1, 2), SH4(2, 2, 2, 2)), I1("axis", 2));
    GCASE("axis -1", S(SH(3, 2, 3, 4, 0), SH(3, 2, 3, 1, 0)), I1("axis", -1));
    GCASE("rank 2, axis 1", S(SH(2, 3, 4, 0, 0), SH(2, 3, 2, 0, 0), SH(2, 3, 5, 0, 0)));
    int k = (int)rint_(r, 2, 4);
    prt_shape in[4];
    for (int j = 0; j < k; j++) in[j] = SH4(2, rint_(r, 1, 4), 3, 2);
    gadd(cs, &n, "random axis 1", k, in, NULL, 0);
    (void)last;
    return n;
}

static int cases_add(gcase *cs, rng *r) {
    int n = 0;
    gcase *last;
    GCASE("two inputs", S(SH4(2, 3, 2, 2), SH4(2, 3, 2, 2)));
    GCASE("three inputs", S(SH(3, 2, 4, 3, 0), SH(3, 2, 4, 3, 0), SH(3, 2, 4, 3, 0)));
    prt_shape s = SH(2, rint_(r, 1, 4), rint_(r, 1, 9), 0, 0), in[4] = {s, s, s, s};
    gadd(cs, &n, "random, four inputs", 4, in, NULL, 0);
    (void)last;
    return n;
}

static int cases_scale(gcase *cs, rng *r) {
    int n = 0;
    gcase *last;
    GCASE("by 0.7", S(SH4(2, 3, 2, 2)), FL("by", 0.7));
    GCASE("by -1.5", S(SH(2, 3, 5, 0, 0)), FL("by", -1.5));
    prt_shape in = SH(3, rint_(r, 1, 3), rint_(r, 1, 5), rint_(r, 1, 5), 0);
    tset st[] = {FL("by", runif(r) * 4 - 2)};
    gadd(cs, &n, "random", 1, &in, st, 1);
    (void)last;
    return n;
}

static int cases_linear(gcase *cs, rng *r) {
    int n = 0;
    gcase *last;
    GCASE("2-D", S(SH(2, 3, 7, 0, 0)), I1("out", 5));
    GCASE("4-D input", S(SH4(2, 3, 2, 2)), I1("out", 4));
    GCASE("no bias", S(SH(2, 2, 6, 0, 0)), I1("out", 3), I1("bias", 0));
    prt_shape in = SH((int)rint_(r, 2, 4), rint_(r, 1, 3), rint_(r, 1, 8), rint_(r, 1, 3), rint_(r, 1, 3));
    tset st[] = {I1("out", rint_(r, 1, 6)), I1("bias", (int64_t)(rnext(r) & 1))};
    gadd(cs, &n, "random", 1, &in, st, 2);
    (void)last;
    return n;
}

static int cases_softmax(gcase *cs, rng *r) {
    int n = 0;
    gcase *last;
    GCASE("rank 2 axis 1", S(SH(2, 3, 6, 0, 0)));
    GCASE("rank 4 axis 1", S(SH4(2, 4, 2, 3)));
    GCASE("axis -1", S(SH(3, 2, 3, 5, 0)), I1("axis", -1));
    GCASE("axis 0", S(SH(2, 4, 3, 0, 0)), I1("axis", 0));
    int nd = (int)rint_(r, 2, 4);
    prt_shape in = SH(nd, rint_(r, 1, 3), rint_(r, 1, 5), rint_(r, 1, 4), rint_(r, 1, 4));
    tset st[] = {I1("axis", rint_(r, -nd, nd - 1))};
    gadd(cs, &n, "random", 1, &in, st, 1);
    (void)last;
    return n;
}

static int cases_dropout(gcase *cs, rng *r) {
    int n = 0;
    gcase *last;
    GCASE("p 0.3 training", S(SH4(2, 3, 4, 4)), FL("p", 0.3));
    GCASE("p 0.5 training, 2-D", S(SH(2, 4, 9, 0, 0)), FL("p", 0.5));
    GCASE("p 0 training", S(SH(2, 3, 5, 0, 0)), FL("p", 0.0));
    GCASE("p 0.5 inference", S(SH(2, 3, 5, 0, 0)), FL("p", 0.5));
    last->inference = true;
    prt_shape in = SH(3, rint_(r, 1, 3), rint_(r, 1, 6), rint_(r, 1, 6), 0);
    tset st[] = {FL("p", runif(r) * 0.8)};
    gadd(cs, &n, "random training", 1, &in, st, 1);
    return n;
}

static int cases_flatten(gcase *cs, rng *r) {
    int n = 0;
    gcase *last;
    GCASE("4-D", S(SH4(2, 3, 2, 2)));
    GCASE("3-D", S(SH(3, 2, 3, 4, 0)));
    GCASE("2-D", S(SH(2, 3, 4, 0, 0)));
    (void)r;
    (void)last;
    return n;
}

static int cases_softmax_xent(gcase *cs, rng *r) {
    int n = 0;
    gcase *last;
    GCASE("root, no smoothing", S(SH(2, 4, 5, 0, 0)));
    last->seed = SEED_LOSS_ONE;
    GCASE("root, smoothing 0.1", S(SH(2, 3, 7, 0, 0)), FL("smoothing", 0.1));
    last->seed = SEED_LOSS_ONE;
    GCASE("times dloss, smoothing 0.2", S(SH(2, 5, 4, 0, 0)), FL("smoothing", 0.2));
    last->seed = SEED_LOSS_DLOSS;
    GCASE("times dloss, no smoothing", S(SH(2, 1, 3, 0, 0)));
    last->seed = SEED_LOSS_DLOSS;
    prt_shape in = SH(2, rint_(r, 1, 6), rint_(r, 2, 8), 0, 0);
    tset st[] = {FL("smoothing", runif(r) * 0.3)};
    gadd(cs, &n, "random root", 1, &in, st, 1)->seed = SEED_LOSS_ONE;
    for (int k = 0; k < n; k++) cs[k].labels = true;
    return n;
}

/* ---- the ONNX-facing ops -------------------------------------------------- */

static int cases_smooth_unary(gcase *cs, rng *r) {
    int n = 0;
    gcase *last;
    GCASE("4-D", S(SH4(2, 3, 2, 3)));
    GCASE("2-D", S(SH(2, 3, 7, 0, 0)));
    prt_shape in = SH(3, rint_(r, 1, 3), rint_(r, 1, 5), rint_(r, 1, 5), 0);
    gadd(cs, &n, "random", 1, &in, NULL, 0);
    (void)last;
    return n;
}

/* inputs on a ladder 0.05 apart (shifted by 0.025 for an odd count); bounds
 * 0.0125 off both, so no step of h = 0.01 crosses one */
static int cases_clip(gcase *cs, rng *r) {
    int n = 0;
    gcase *last;
    GCASE("both bounds", S(SH4(2, 3, 2, 3)), FL("min", -0.1375), FL("max", 0.2625));
    GCASE("min only, odd count", S(SH(2, 3, 7, 0, 0)), FL("min", 0.0125));
    GCASE("max only", S(SH(3, 2, 3, 4, 0)), FL("max", -0.0125));
    GCASE("no bounds", S(SH(2, 3, 4, 0, 0)));
    GCASE("min > max", S(SH(2, 3, 4, 0, 0)), FL("min", 0.2125), FL("max", -0.2125));
    for (int k = 0; k < n; k++) cs[k].fill = FILL_DISTINCT;
    (void)r;
    (void)last;
    return n;
}

/* every data input carries the batch first, so broadcasting shows in the other dims */
static int cases_binary(gcase *cs, rng *r) {
    int n = 0;
    gcase *last;
    GCASE("equal shapes", S(SH(3, 2, 3, 4, 0), SH(3, 2, 3, 4, 0)));
    GCASE("b per channel", S(SH4(2, 3, 2, 3), SH4(2, 3, 1, 1)));
    GCASE("both broadcast", S(SH4(2, 1, 3, 2), SH4(2, 4, 1, 2)));
    GCASE("a broadcast", S(SH(3, 2, 1, 4, 0), SH(3, 2, 3, 4, 0)));
    GCASE("b of lower rank", S(SH(3, 2, 2, 4, 0), SH(2, 2, 4, 0, 0)));
    (void)r;
    (void)last;
    for (int k = 0; k < n; k++) cs[k].fill = FILL_AWAY_FROM_ZERO; /* div: away from b = 0 */
    return n;
}

static int cases_matmul(gcase *cs, rng *r) {
    int n = 0;
    gcase *last;
    GCASE("batched both", S(SH(3, 2, 3, 4, 0), SH(3, 2, 4, 5, 0)));
    /* (a single weight-like matrix without the batch does not fit this harness:
     * test_ops_bwd.c checks those kernels) */
    GCASE("batch broadcast both ways", S(SH4(2, 1, 3, 4), SH(3, 2, 4, 2, 0)));
    (void)r;
    (void)last;
    return n;
}

static int cases_transpose(gcase *cs, rng *r) {
    int n = 0;
    gcase *last;
    GCASE("NCHW to NHWC", S(SH4(2, 3, 2, 4)), I4("perm", 0, 2, 3, 1));
    GCASE("3-D", S(SH(3, 2, 3, 4, 0)), I4("perm", 0, 2, 1, 0));
    cs[n - 1].t.set[0].n = 3;
    (void)r;
    (void)last;
    return n;
}

static int cases_reshape(gcase *cs, rng *r) {
    int n = 0;
    gcase *last;
    GCASE("0, -1", S(SH4(2, 3, 2, 2)), I2("shape", 0, -1));
    GCASE("split", S(SH(2, 2, 12, 0, 0)), I4("shape", -1, 3, 2, 2));
    (void)r;
    (void)last;
    return n;
}

static int cases_pad(gcase *cs, rng *r) {
    int n = 0;
    gcase *last;
    GCASE("constant", S(SH(2, 2, 5, 0, 0)), I4("pads", 0, 2, 0, 1), FL("value", 0.5));
    GCASE("crop and pad", S(SH(2, 2, 6, 0, 0)), I4("pads", 0, -2, 0, 3));
    (void)r;
    (void)last;
    return n;
}

static int cases_global_avgpool(gcase *cs, rng *r) {
    int n = 0;
    gcase *last;
    GCASE("4x5", S(SH4(2, 3, 4, 5)));
    GCASE("1x1", S(SH4(2, 3, 1, 1)));
    (void)r;
    (void)last;
    return n;
}

/* cast to its default f32: the gradient is a cast back, the identity here */
static int cases_cast(gcase *cs, rng *r) {
    int n = 0;
    gcase *last;
    GCASE("4-D", S(SH4(2, 3, 4, 5)));
    (void)r;
    (void)last;
    return n;
}

/* The cases of an op by name; 0 for an op this file does not know. */
static int cases_for(const char *op, gcase *cs, rng *r) {
    static const struct { const char *name; int (*fn)(gcase *, rng *); } t[] = {
        {"conv", cases_conv},       {"batchnorm", cases_batchnorm}, {"relu", cases_relu},
        {"concat", cases_concat},   {"add", cases_add},             {"scale", cases_scale},
        {"linear", cases_linear},   {"softmax", cases_softmax},     {"dropout", cases_dropout},
        {"flatten", cases_flatten}, {"softmax_xent", cases_softmax_xent},
        {"sigmoid", cases_smooth_unary}, {"tanh", cases_smooth_unary}, {"clip", cases_clip},
        {"mul", cases_binary}, {"sub", cases_binary}, {"div", cases_binary}, {"matmul", cases_matmul},
        {"transpose", cases_transpose}, {"reshape", cases_reshape}, {"pad", cases_pad},
        {"global_avgpool", cases_global_avgpool}, {"batchnorm_relu", cases_batchnorm_relu},
        {"cast", cases_cast},
    };
    if (!strcmp(op, "maxpool")) return cases_pool(cs, r, false);
    if (!strcmp(op, "avgpool")) return cases_pool(cs, r, true);
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!strcmp(t[i].name, op)) return t[i].fn(cs, r);
    return 0;
}

/* ---- building the graph of a case ---------------------------------------- */

typedef struct built {
    prt_graph *g;
    int node;                 /* the op's node */
    int64_t batch;
    int n_x;                  /* f32 data inputs x0.. (graph inputs 0..n_x-1) */
    int labels_in;            /* graph input index of the labels, -1 none */
    int aux_in[2];            /* SEED_LOSS_DLOSS: logits and labels of the node making dloss */
    int dloss;                /* value id of dloss, -1 none */
    int n_out;
    int dy[4];                /* the gradient flowing into each output */
    int dy_in[4];             /* graph input index of dy_j, -1 */
    int dx[MAX_IN + PRT_MAX_OP_PARAMS];
    int first_grad_node;      /* nodes from here on were emitted by the builder */
    int n_inputs;             /* graph inputs */
} built;

static int add_input(prt_graph *g, const char *name, const prt_shape *full, prt_dtype t, int *count) {
    prt_shape ps = {.ndim = full->ndim - 1};
    for (int i = 1; i < full->ndim; i++) ps.d[i - 1] = full->d[i];
    int id;
    prt_loc loc = {NULL, 0, 0};
    ck_assert_msg(prt_graph_add_input(g, name, &ps, t, loc, &id) == PRT_OK, "%s", prt_last_error(g->ctx));
    (*count)++;
    return id;
}

/* direct: the op reads the graph inputs themselves (so no data gradient may
 * appear); no_seed: every dy is -1 (so nothing may be emitted). */
static void build(prt_context *ctx, const prt_op_schema *s, const gcase *c, bool direct, bool no_seed, built *b) {
    memset(b, 0, sizeof *b);
    b->labels_in = b->aux_in[0] = b->aux_in[1] = b->dloss = -1;
    ck_assert_int_eq(prt_graph_new(ctx, "grad_check", &b->g), PRT_OK);
    prt_graph *g = b->g;
    const prt_op_schema *sc = vt_op(ctx, "scale", NULL);
    prt_attr one[1];
    vt_attrs_default(sc, one);
    vt_set_float(sc, one, "by", 1.0);
    b->batch = c->t.in[0].d[0];
    b->n_x = c->t.n_in;
    int data[MAX_IN + 1], n_data = 0;
    for (int k = 0; k < c->t.n_in; k++) {
        ck_assert_int_eq(c->t.in[k].d[0], b->batch);
        char name[32];
        snprintf(name, sizeof name, "x%d", k);
        int x = add_input(g, name, &c->t.in[k], PRT_F32, &b->n_inputs);
        snprintf(name, sizeof name, "pre%d", k);
        data[n_data++] = direct ? x : vt_node(g, "scale", name, &x, 1, one);
    }
    if (c->labels) {
        b->labels_in = b->n_inputs;
        prt_shape ls = SH(2, b->batch, 1, 0, 0);
        data[n_data++] = add_input(g, "labels", &ls, PRT_I32, &b->n_inputs);
    }
    prt_attr attrs[16];
    fill_attrs(s, &c->t, attrs);
    vt_node(g, s->name, "op", data, n_data, attrs);
    b->node = g->n_nodes - 1;
    b->n_out = g->nodes[b->node].n_out;
    ck_assert_int_le(b->n_out, 4);
    if (c->seed == SEED_LOSS_DLOSS) {
        int64_t C = c->t.in[0].d[1];
        int aux[2];
        b->aux_in[0] = b->n_inputs;
        prt_shape xs = SH(2, b->batch, C, 0, 0), ls = SH(2, b->batch, 1, 0, 0);
        aux[0] = add_input(g, "aux_x", &xs, PRT_F32, &b->n_inputs);
        b->aux_in[1] = b->n_inputs;
        aux[1] = add_input(g, "aux_l", &ls, PRT_I32, &b->n_inputs);
        int loss = vt_node(g, "softmax_xent", "aux", aux, 2, NULL);
        prt_attr by[1];
        vt_attrs_default(sc, by);
        vt_set_float(sc, by, "by", 0.7);
        b->dloss = vt_node(g, "scale", "dloss", &loss, 1, by);
    }
    vt_finish(g, g->nodes[b->node].out, b->n_out);
    ck_assert_msg(prt_graph_infer(g, b->batch) == PRT_OK, "%s", prt_last_error(ctx));
    for (int j = 0; j < b->n_out; j++) {
        b->dy_in[j] = -1;
        b->dy[j] = -1;
        if (no_seed) continue;
        if (c->seed == SEED_ALL) {
            prt_shape ys = g->values[g->nodes[b->node].out[j]].shape;
            ck_assert_int_eq(ys.d[0], b->batch);
            char name[32];
            snprintf(name, sizeof name, "dy%d", j);
            b->dy_in[j] = b->n_inputs;
            b->dy[j] = add_input(g, name, &ys, PRT_F32, &b->n_inputs);
        } else if (j == 0) {
            b->dy[j] = c->seed == SEED_LOSS_ONE ? PRT_GRAD_ONE : b->dloss;
        }
    }
    const prt_node *nd = &g->nodes[b->node];
    for (int i = 0; i < nd->n_in; i++) b->dx[i] = -1;
    b->first_grad_node = g->n_nodes;
    prt_grad_ctx gc = {.g = g, .node = b->node, .dy = b->dy, .dx = b->dx};
    ck_assert_msg(s->grad(&gc) == PRT_OK, "%s case '%s': gradient builder: %s", s->name, c->t.what,
                  prt_last_error(ctx));
}

/* Whether gradient dx[i] of b is a by-product: its node also produces another
 * input's gradient (batchnorm_bwd yields dx with dscale and dshift). A graph
 * input's gradient may exist only that way: no node is spent on it alone. */
static bool by_product(const built *b, int i) {
    const prt_node *nd = &b->g->nodes[b->node];
    int producer = b->g->values[b->dx[i]].producer;
    if (producer < b->first_grad_node) return false;
    const prt_node *p = &b->g->nodes[producer];
    for (int j = 0; j < nd->n_in; j++)
        for (int k = 0; j != i && b->dx[j] >= 0 && k < p->n_out; k++)
            if (p->out[k] == b->dx[j]) return true;
    return false;
}

/* ---- finite differences --------------------------------------------------- */

typedef struct host_in {
    void *data;
    size_t bytes;
} host_in;

/* Copies the host values into the VM's inputs, resets the step and runs. */
static void run_at_step(prt_context *ctx, prt_vm *vm, const host_in *in, int n_in, const char *what) {
    for (int i = 0; i < n_in; i++) memcpy(prt_tensor_data(prt_vm_input(vm, i)), in[i].data, in[i].bytes);
    prt_vm_set_step(vm, STEP);
    prt_status st = prt_vm_run(vm);
    if (st != PRT_OK) ck_abort_msg("%s: run: %s", what, prt_last_error(ctx));
}

/* L = sum_j <dy_j, y_j> over the seeded outputs, in double. */
static double loss_of(prt_vm *vm, const built *b, const host_in *in) {
    double L = 0;
    for (int j = 0; j < b->n_out; j++) {
        if (b->dy[j] == -1) continue;
        const prt_tensor *y = prt_vm_output(vm, j);
        const float *yv = PRT_F32P(y);
        int64_t n = prt_shape_count(&y->shape);
        if (b->dy[j] == PRT_GRAD_ONE) {
            for (int64_t i = 0; i < n; i++) L += yv[i];
        } else if (b->dy_in[j] < 0) {
            const float *d = PRT_F32P(prt_vm_find(vm, b->g->values[b->dy[j]].name));
            for (int64_t i = 0; i < n; i++) L += (double)d[i] * yv[i];
        } else {
            const float *d = in[b->dy_in[j]].data;
            for (int64_t i = 0; i < n; i++) L += (double)d[i] * yv[i];
        }
    }
    return L;
}

static void fill_values(float *v, int64_t n, int fill, rng *r) {
    if (fill == FILL_DISTINCT) {
        /* a shuffled ladder 0.05 apart: no ties, and h = 0.01 moves no maximum */
        for (int64_t i = 0; i < n; i++) v[i] = (float)((double)i - (double)n / 2) * 0.05f;
        for (int64_t i = n - 1; i > 0; i--) {
            int64_t j = rint_(r, 0, i);
            float t = v[i];
            v[i] = v[j];
            v[j] = t;
        }
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        double u = runif(r) * 2 - 1;
        if (fill == FILL_AWAY_FROM_ZERO) v[i] = (float)(u < 0 ? u * 0.9 - 0.1 : u * 0.9 + 0.1);
        else v[i] = (float)(u * 1.7);
    }
}

/* Checks every gradient the builder produced for case c of op s, with the
 * reference kernels and with the fast paths; returns the elements checked. */
static int check_case(prt_context *ctx, const prt_op_schema *s, const gcase *c, uint64_t seed, double *worst) {
    built b;
    build(ctx, s, c, false, false, &b);
    prt_graph *g = b.g;
    const prt_node *nd = &g->nodes[b.node];
    int n_in = nd->n_in, node_in[MAX_IN + PRT_MAX_OP_PARAMS];
    memcpy(node_in, nd->in, (size_t)n_in * sizeof(int));
    /* which inputs must get a gradient, and the graph outputs: y, then the gradients */
    int outs[4 + MAX_IN + PRT_MAX_OP_PARAMS], n_outs = 0;
    for (int j = 0; j < b.n_out; j++) outs[n_outs++] = nd->out[j];
    bool check[MAX_IN + PRT_MAX_OP_PARAMS];
    for (int i = 0; i < n_in; i++) {
        const prt_value *v = &g->values[node_in[i]];
        check[i] = v->kind == PRT_VAL_ACT || v->kind == PRT_VAL_PARAM;
        if (!check[i]) {
            ck_assert_msg(b.dx[i] == -1 || (v->kind == PRT_VAL_INPUT && by_product(&b, i)),
                          "%s case '%s': input %d ('%s') is a graph input or state, yet got a gradient", s->name,
                          c->t.what, i, v->name);
            continue;
        }
        ck_assert_msg(b.dx[i] >= 0, "%s case '%s': no gradient for input %d ('%s')", s->name, c->t.what, i, v->name);
        prt_shape want = prt_graph_value_shape(g, node_in[i]), got = prt_graph_value_shape(g, b.dx[i]);
        char a[160], bb[160];
        ck_assert_msg(prt_shape_eq(&want, &got), "%s case '%s': gradient of '%s' has shape %s, want %s", s->name,
                      c->t.what, v->name, prt_shape_str(&got, a, sizeof a), prt_shape_str(&want, bb, sizeof bb));
        bool dup = false;
        for (int k = 0; k < n_outs; k++) dup |= outs[k] == b.dx[i];
        if (!dup) outs[n_outs++] = b.dx[i];
    }
    ck_assert_int_eq(prt_graph_set_outputs(g, outs, n_outs), PRT_OK);
    prt_program *p;
    ck_assert_msg(prt_vm_compile(g, b.batch, &p) == PRT_OK, "%s case '%s': %s", s->name, c->t.what,
                  prt_last_error(ctx));

    /* the inputs' values, kept on the host so every run starts from them */
    rng r = {seed | 1};
    host_in in[16];
    ck_assert_int_le(b.n_inputs, 16);
    for (int i = 0; i < b.n_inputs; i++) {
        const prt_value *v = &g->values[g->inputs[i]];
        prt_shape full = prt_graph_value_shape(g, g->inputs[i]);
        int64_t n = prt_shape_count(&full);
        in[i].bytes = (size_t)n * 4;
        in[i].data = malloc(in[i].bytes ? in[i].bytes : 1);
        if (v->dtype == PRT_I32) {
            int64_t classes = c->t.in[0].d[1]; /* labels index the logits' classes */
            for (int64_t e = 0; e < n; e++) ((int32_t *)in[i].data)[e] = (int32_t)rint_(&r, 0, classes - 1);
        } else {
            fill_values(in[i].data, n, i < b.n_x ? c->fill : FILL_NORMAL, &r);
        }
    }

    int checked = 0;
    for (int ref = 1; ref >= 0; ref--) {
        char what[256];
        snprintf(what, sizeof what, "%s case '%s' (%s kernels)", s->name, c->t.what, ref ? "reference" : "fast");
        prt_vm_options o = {.reference = ref, .training = !c->inference};
        prt_vm *vm;
        ck_assert_msg(prt_vm_create(ctx, p, prt_cpu_device(ctx), &o, &vm) == PRT_OK, "%s: %s", what,
                      prt_last_error(ctx));
        run_at_step(ctx, vm, in, b.n_inputs, what);
        /* every analytic gradient now, before finite differences rerun the program */
        float *grads[MAX_IN + PRT_MAX_OP_PARAMS] = {0};
        for (int i = 0; i < n_in; i++) {
            if (!check[i]) continue;
            const prt_tensor *gt = prt_vm_find(vm, g->values[b.dx[i]].name);
            ck_assert_ptr_nonnull(gt);
            int64_t n = prt_shape_count(&gt->shape);
            grads[i] = malloc((size_t)(n ? n : 1) * sizeof(float));
            memcpy(grads[i], PRT_F32P(gt), (size_t)n * sizeof(float));
        }
        for (int i = 0; i < n_in; i++) {
            if (!check[i]) continue;
            const prt_value *v = &g->values[node_in[i]];
            int64_t n = prt_shape_count(&prt_vm_find(vm, g->values[b.dx[i]].name)->shape);
            const float *an = grads[i];
            /* the value perturbed: a data input's graph input, or the parameter itself */
            float *target = i < b.n_x ? (float *)in[i].data : PRT_F32P(prt_vm_find(vm, v->name));
            int64_t idx[MAX_SAMPLES];
            int m = n <= MAX_SAMPLES ? (int)n : MAX_SAMPLES;
            for (int k = 0; k < m; k++) idx[k] = n <= MAX_SAMPLES ? k : rint_(&r, 0, n - 1);
            double fd[MAX_SAMPLES], ss = 0;
            for (int k = 0; k < m; k++) {
                float orig = target[idx[k]];
                target[idx[k]] = orig + (float)H;
                run_at_step(ctx, vm, in, b.n_inputs, what);
                double lp = loss_of(vm, &b, in);
                target[idx[k]] = orig - (float)H;
                run_at_step(ctx, vm, in, b.n_inputs, what);
                double lm = loss_of(vm, &b, in);
                target[idx[k]] = orig;
                /* the step actually taken, float rounding included */
                double h2 = (double)(orig + (float)H) - (double)(orig - (float)H);
                fd[k] = (lp - lm) / h2;
                ss += (double)an[idx[k]] * an[idx[k]];
            }
            double rms = m ? sqrt(ss / m) : 0;
            for (int k = 0; k < m; k++) {
                double a = an[idx[k]], tol = RTOL * (fabs(fd[k]) + fabs(a)) + ATOL * (rms + 1e-3);
                if (fabs(fd[k] - a) / tol > *worst) *worst = fabs(fd[k] - a) / tol;
                if (!(fabs(fd[k] - a) <= tol))
                    ck_abort_msg("%s: d L / d %s[%lld]: analytic %.7g, finite difference %.7g (tolerance %.3g)", what,
                                 v->name, (long long)idx[k], a, fd[k], tol);
            }
            checked += m;
        }
        for (int i = 0; i < n_in; i++) free(grads[i]);
        prt_vm_destroy(vm);
    }
    for (int i = 0; i < b.n_inputs; i++) free(in[i].data);
    prt_program_destroy(ctx, p);
    prt_graph_destroy(g);
    return checked;
}

/* ---- the harness: one test per registered op ------------------------------ */

static const char *const BACKWARD_ONLY = "backward-only op";

START_TEST(test_op_grad) {
    prt_context *ctx = tu_context();
    const prt_op_schema *s = prt_op_get(ctx->ops, _i);
    ck_assert_ptr_nonnull(s);
    if (!s->grad) {
        /* not differentiable: it must say why; optimizer updates are test_optim.c's,
         * and backward-only ops are checked through the forward ops that emit them */
        ck_assert_msg(s->grad_note != NULL, "op '%s' has neither a gradient builder nor a grad_note", s->name);
        prt_context_destroy(ctx);
        return;
    }
    ck_assert_msg(!s->updates_inputs, "op '%s' updates its inputs yet has a gradient builder", s->name);
    static gcase cs[MAX_CASES];
    rng r = {0x2545f4914f6cdd1dull ^ (uint64_t)_i};
    int n = cases_for(s->name, cs, &r);
    ck_assert_msg(n > 0, "op '%s' has a gradient builder but no cases in test_grad.c: every op must be covered",
                  s->name);
    int elems = 0;
    double worst = 0;
    for (int k = 0; k < n; k++) {
        int e = check_case(ctx, s, &cs[k], 77 + (uint64_t)k, &worst);
        ck_assert_msg(e > 0, "%s case '%s': no gradient element was checked", s->name, cs[k].t.what);
        elems += e;
    }
    printf("grad check %-14s %2d cases, %5d gradient elements (reference and fast), worst error %.3f of the tolerance\n",
           s->name, n, elems, worst);
    prt_context_destroy(ctx);
}
END_TEST

/* Every builder, on every case: graph inputs get no gradient (so no node is
 * spent on them), no seed means nothing is emitted, and every backward-only op
 * in the registry is emitted by some forward op's gradient. */
START_TEST(test_backward_ops_exercised) {
    prt_context *ctx = tu_context();
    int n_ops = prt_op_count(ctx->ops);
    bool *emitted = calloc((size_t)n_ops, sizeof(bool));
    static gcase cs[MAX_CASES];
    for (int id = 0; id < n_ops; id++) {
        const prt_op_schema *s = prt_op_get(ctx->ops, id);
        if (!s->grad) continue;
        rng r = {0x2545f4914f6cdd1dull ^ (uint64_t)id};
        int n = cases_for(s->name, cs, &r);
        for (int k = 0; k < n; k++) {
            built b;
            build(ctx, s, &cs[k], false, false, &b);
            for (int q = b.first_grad_node; q < b.g->n_nodes; q++) emitted[b.g->nodes[q].op] = true;
            prt_graph_destroy(b.g);

            build(ctx, s, &cs[k], true, false, &b);
            const prt_node *nd = &b.g->nodes[b.node];
            for (int i = 0; i < nd->n_data_in; i++)
                ck_assert_msg(b.dx[i] == -1 || by_product(&b, i),
                              "%s case '%s': a node was spent on the gradient of data input %d, a graph input",
                              s->name, cs[k].t.what, i);
            for (int q = b.first_grad_node; q < b.g->n_nodes; q++) emitted[b.g->nodes[q].op] = true;
            prt_graph_destroy(b.g);

            build(ctx, s, &cs[k], false, true, &b);
            ck_assert_msg(b.g->n_nodes == b.first_grad_node, "%s case '%s': nodes emitted with no gradient flowing",
                          s->name, cs[k].t.what);
            for (int i = 0; i < b.g->nodes[b.node].n_in; i++)
                ck_assert_msg(b.dx[i] == -1, "%s case '%s': input %d got a gradient with none flowing", s->name,
                              cs[k].t.what, i);
            prt_graph_destroy(b.g);
        }
    }
    for (int id = 0; id < n_ops; id++) {
        const prt_op_schema *s = prt_op_get(ctx->ops, id);
        if (s->grad || !s->grad_note || strcmp(s->grad_note, BACKWARD_ONLY)) continue;
        ck_assert_msg(emitted[id], "backward-only op '%s' is emitted by no forward op's gradient in test_grad.c",
                      s->name);
    }
    free(emitted);
    prt_context_destroy(ctx);
}
END_TEST

/* ---- graph-level checks through prt_autodiff -------------------------------- */

/* A smaller step than the per-op harness: batch norm moves every relu input
 * when a weight moves, and a smaller step crosses fewer kinks. */
#define GH 1e-3
/* elements checked per parameter tensor: each costs two runs of the whole graph */
#define GRAPH_SAMPLES 16

/* Differentiates <dy, root> (dy a new graph input) with prt_autodiff and checks
 * the gradient of every trainable parameter against finite differences, with
 * the reference kernels and the fast paths. ReLU kinks cannot be avoided by
 * construction here, so an element whose perturbation flips the sign of any
 * relu input is skipped (at most a few). On return *grad_of (caller frees with
 * prt_free(ctx, p, 0)) maps values to gradients, for structural checks. */
static void check_graph(prt_context *ctx, prt_graph *g, int root, int64_t batch, int **grad_of) {
    double worst = 0;
    ck_assert_msg(prt_graph_infer(g, batch) == PRT_OK, "%s", prt_last_error(ctx));
    prt_shape rs = prt_graph_value_shape(g, root);
    int n_inputs = g->n_inputs;
    int dy = add_input(g, "dy", &rs, PRT_F32, &n_inputs);
    int n0 = g->n_nodes, v0 = g->n_values, n_grad;
    ck_assert_msg(prt_autodiff(g, 1, &root, &dy, grad_of, &n_grad) == PRT_OK, "%s", prt_last_error(ctx));
    int outs[64], n_outs = 0, params[64], n_params = 0;
    outs[n_outs++] = root;
    for (int v = 0; v < v0; v++) {
        if (g->values[v].kind != PRT_VAL_PARAM) continue;
        ck_assert_msg((*grad_of)[v] >= 0, "no gradient for parameter '%s'", g->values[v].name);
        ck_assert_int_lt(n_outs, 64);
        params[n_params++] = v;
        outs[n_outs++] = (*grad_of)[v];
    }
    int relu_in[64], n_relu = 0;
    for (int n = 0; n < n0; n++)
        if (!strcmp(prt_op_get(ctx->ops, g->nodes[n].op)->name, "relu") && n_relu < 64)
            relu_in[n_relu++] = g->nodes[n].in[0];
    ck_assert_int_eq(prt_graph_set_outputs(g, outs, n_outs), PRT_OK);
    prt_program *p;
    ck_assert_msg(prt_vm_compile(g, batch, &p) == PRT_OK, "%s", prt_last_error(ctx));
    rng r = {0x9e3779b97f4a7c15ull};
    host_in in[16];
    ck_assert_int_le(g->n_inputs, 16);
    for (int i = 0; i < g->n_inputs; i++) {
        prt_shape full = prt_graph_value_shape(g, g->inputs[i]);
        int64_t n = prt_shape_count(&full);
        ck_assert_int_eq(g->values[g->inputs[i]].dtype, PRT_F32);
        in[i].bytes = (size_t)n * 4;
        in[i].data = malloc(in[i].bytes);
        fill_values(in[i].data, n, FILL_NORMAL, &r);
    }
    const float *dyv = in[g->n_inputs - 1].data;
    int checked = 0, skipped = 0;
    for (int ref = 1; ref >= 0; ref--) {
        const char *what = ref ? "graph (reference kernels)" : "graph (fast kernels)";
        prt_vm_options o = {.reference = ref, .training = true, .unplanned = true}; /* reads gradients after the run */
        prt_vm *vm;
        ck_assert_msg(prt_vm_create(ctx, p, prt_cpu_device(ctx), &o, &vm) == PRT_OK, "%s", prt_last_error(ctx));
        run_at_step(ctx, vm, in, g->n_inputs, what);
        /* the relu inputs' signs at the unperturbed point */
        int64_t n_sign = 0;
        for (int k = 0; k < n_relu; k++) n_sign += prt_shape_count(&prt_vm_find(vm, g->values[relu_in[k]].name)->shape);
        bool *sign = malloc((size_t)n_sign + 1), moved;
        for (int k = 0, at = 0; k < n_relu; k++) {
            const prt_tensor *t = prt_vm_find(vm, g->values[relu_in[k]].name);
            for (int64_t e = 0; e < prt_shape_count(&t->shape); e++) sign[at++] = PRT_F32P(t)[e] > 0;
        }
        float *grads[64];
        for (int q = 0; q < n_params; q++) {
            const prt_tensor *gt = prt_vm_find(vm, g->values[(*grad_of)[params[q]]].name);
            int64_t n = prt_shape_count(&gt->shape);
            grads[q] = malloc((size_t)n * sizeof(float));
            memcpy(grads[q], PRT_F32P(gt), (size_t)n * sizeof(float));
        }
        for (int q = 0; q < n_params; q++) {
            const prt_value *v = &g->values[params[q]];
            float *target = PRT_F32P(prt_vm_find(vm, v->name));
            int64_t n = prt_shape_count(&v->shape);
            int m = n <= GRAPH_SAMPLES ? (int)n : GRAPH_SAMPLES;
            double fd[GRAPH_SAMPLES], ss = 0;
            int64_t idx[GRAPH_SAMPLES];
            bool skip[GRAPH_SAMPLES];
            for (int k = 0; k < m; k++) {
                idx[k] = n <= GRAPH_SAMPLES ? k : rint_(&r, 0, n - 1);
                float orig = target[idx[k]];
                double l[2];
                skip[k] = false;
                for (int side = 0; side < 2; side++) {
                    target[idx[k]] = side ? orig - (float)GH : orig + (float)GH;
                    run_at_step(ctx, vm, in, g->n_inputs, what);
                    const prt_tensor *y = prt_vm_output(vm, 0);
                    l[side] = 0;
                    for (int64_t e = 0; e < prt_shape_count(&y->shape); e++) l[side] += (double)dyv[e] * PRT_F32P(y)[e];
                    moved = false;
                    for (int j = 0, at = 0; j < n_relu; j++) {
                        const prt_tensor *t = prt_vm_find(vm, g->values[relu_in[j]].name);
                        for (int64_t e = 0; e < prt_shape_count(&t->shape); e++) moved |= (PRT_F32P(t)[e] > 0) != sign[at++];
                    }
                    skip[k] |= moved;
                }
                target[idx[k]] = orig;
                fd[k] = (l[0] - l[1]) / ((double)(orig + (float)GH) - (double)(orig - (float)GH));
                ss += (double)grads[q][idx[k]] * grads[q][idx[k]];
            }
            double rms = m ? sqrt(ss / m) : 0;
            for (int k = 0; k < m; k++) {
                if (skip[k]) {
                    skipped++;
                    continue;
                }
                double a = grads[q][idx[k]], tol = RTOL * (fabs(fd[k]) + fabs(a)) + ATOL * (rms + 1e-3);
                if (fabs(fd[k] - a) / tol > worst) worst = fabs(fd[k] - a) / tol;
                if (!(fabs(fd[k] - a) <= tol))
                    ck_abort_msg("%s: d L / d %s[%lld]: analytic %.7g, finite difference %.7g (tolerance %.3g)", what,
                                 v->name, (long long)idx[k], a, fd[k], tol);
                checked++;
            }
        }
        for (int q = 0; q < n_params; q++) free(grads[q]);
        free(sign);
        prt_vm_destroy(vm);
    }
    /* a kink is rare at h = 0.01; many skips would mean the check checks little */
    ck_assert_msg(skipped * 10 < checked, "%d elements skipped at relu kinks, %d checked", skipped, checked);
    printf("graph check %-12s %d parameter tensors, %4d gradient elements (%d skipped at kinks), worst error %.3f of "
           "the tolerance\n", g->name, n_params, checked, skipped, worst);
    for (int i = 0; i < g->n_inputs; i++) free(in[i].data);
    prt_program_destroy(ctx, p);
}

static int conv_node(prt_graph *g, const char *name, const char *param_path, int x, int out, int k, bool bias) {
    const prt_op_schema *s = vt_op(g->ctx, "conv", NULL);
    prt_attr a[16];
    vt_attrs_default(s, a);
    vt_set_int(s, a, "out", out);
    vt_set_int(s, a, "kernel", k);
    vt_set_int(s, a, "pad", k / 2);
    vt_set_bool(s, a, "bias", bias);
    int id, n;
    prt_op_find(g->ctx->ops, "conv", &id);
    ck_assert_msg(prt_graph_add_node(g, id, name, param_path, &x, 1, a, (prt_loc){0}, &n) == PRT_OK, "%s",
                  prt_last_error(g->ctx));
    return g->nodes[n].out[0];
}

static int linear_node(prt_graph *g, const char *name, int x, int out) {
    const prt_op_schema *s = vt_op(g->ctx, "linear", NULL);
    prt_attr a[16];
    vt_attrs_default(s, a);
    vt_set_int(s, a, "out", out);
    return vt_node(g, "linear", name, &x, 1, a);
}

static int scale_node(prt_graph *g, const char *name, int x, double by) {
    const prt_op_schema *s = vt_op(g->ctx, "scale", NULL);
    prt_attr a[16];
    vt_attrs_default(s, a);
    vt_set_float(s, a, "by", by);
    return vt_node(g, "scale", name, &x, 1, a);
}

/* Fan-out: the conv output v feeds relu, scale and concat, and relu's output
 * feeds concat and add, so their gradients are sums; dropout, avgpool,
 * flatten, softmax and two linears on the way, all through prt_autodiff. */
START_TEST(test_fan_out_accumulation) {
    prt_context *ctx = tu_context();
    prt_graph *g;
    ck_assert_int_eq(prt_graph_new(ctx, "fan_out", &g), PRT_OK);
    int x = vt_input(g, "x", 3, 6, 6);
    int v = conv_node(g, "c1", "c1", x, 4, 3, true);
    int a = vt_node(g, "relu", "r1", &v, 1, NULL);
    int b = scale_node(g, "s1", v, 0.5);
    int cat_in[2] = {a, v};
    int cat = vt_node(g, "concat", "cat", cat_in, 2, NULL);
    const prt_op_schema *dr = vt_op(ctx, "dropout", NULL), *ap = vt_op(ctx, "avgpool", NULL);
    prt_attr at[16];
    vt_attrs_default(dr, at);
    vt_set_float(dr, at, "p", 0.3);
    int d = vt_node(g, "dropout", "drop", &cat, 1, at);
    vt_attrs_default(ap, at);
    vt_set_int(ap, at, "kernel", 2);
    int pool = vt_node(g, "avgpool", "pool", &d, 1, at);
    int f1 = vt_node(g, "flatten", "f1", &pool, 1, NULL);
    int y1 = linear_node(g, "fc1", f1, 5);
    int sum_in[2] = {b, a};
    int sum = vt_node(g, "add", "sum", sum_in, 2, NULL);
    int f2 = vt_node(g, "flatten", "f2", &sum, 1, NULL);
    int y2 = linear_node(g, "fc2", f2, 5);
    int ys[2] = {y1, y2};
    int y = vt_node(g, "add", "y", ys, 2, NULL);
    y = vt_node(g, "softmax", "prob", &y, 1, NULL);
    vt_finish(g, &y, 1);
    int *grad_of;
    check_graph(ctx, g, y, 2, &grad_of);
    /* v and a each collect several contributions: their gradients come from add nodes */
    const char *summed[2] = {"c1", "r1"};
    for (int k = 0; k < 2; k++) {
        int gv = grad_of[prt_graph_find_value(g, summed[k])];
        ck_assert_int_ge(gv, 0);
        int producer = g->values[gv].producer;
        ck_assert_str_eq(prt_op_get(ctx->ops, g->nodes[producer].op)->name, "add");
    }
    prt_free(ctx, grad_of, 0);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

/* PolyNet's poly-3: one set of conv weights applied three times, each use
 * with its own batch norm, a_k = bn_k(conv(relu(a_{k-1}))); the gradient of
 * the shared weight is the sum over its uses. */
START_TEST(test_poly3_weight_sharing) {
    prt_context *ctx = tu_context();
    prt_graph *g;
    ck_assert_int_eq(prt_graph_new(ctx, "poly3", &g), PRT_OK);
    int x = vt_input(g, "x", 4, 5, 5);
    int a[3], prev = x;
    for (int k = 0; k < 3; k++) {
        char cn[16], bn[16], rn[16];
        snprintf(cn, sizeof cn, "conv%d", k + 1);
        snprintf(bn, sizeof bn, "bn%d", k + 1);
        snprintf(rn, sizeof rn, "relu%d", k + 1);
        int c = conv_node(g, cn, "shared", prev, 4, 3, false);
        a[k] = vt_node(g, "batchnorm", bn, &c, 1, NULL);
        prev = vt_node(g, "relu", rn, &a[k], 1, NULL);
    }
    int branch = vt_node(g, "add", "branch", a, 3, NULL);
    int res[2] = {x, scale_node(g, "res_scale", branch, 0.3)};
    int s = vt_node(g, "add", "residual", res, 2, NULL);
    s = vt_node(g, "relu", "out_relu", &s, 1, NULL);
    int f = vt_node(g, "flatten", "flat", &s, 1, NULL);
    int y = linear_node(g, "fc", f, 3);
    vt_finish(g, &y, 1);
    int w = prt_graph_find_value(g, "shared.weight");
    ck_assert_int_ge(w, 0);
    ck_assert_int_lt(prt_graph_find_value(g, "conv2.weight"), 0); /* one tensor, three uses */
    ck_assert_int_ge(prt_graph_find_value(g, "bn3.scale"), 0);   /* batch norms of their own */
    int *grad_of;
    check_graph(ctx, g, y, 2, &grad_of);
    const prt_node *sum = &g->nodes[g->values[grad_of[w]].producer];
    ck_assert_str_eq(prt_op_get(ctx->ops, sum->op)->name, "add");
    ck_assert_int_eq(sum->n_data_in, 3);
    prt_free(ctx, grad_of, 0);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

static Suite *suite(int n_ops) {
    Suite *s = suite_create("grad");
    TCase *ops = tcase_create("ops"), *graph = tcase_create("graph");
    tcase_add_loop_test(ops, test_op_grad, 0, n_ops);
    tcase_add_test(ops, test_backward_ops_exercised);
    tcase_add_test(graph, test_fan_out_accumulation);
    tcase_add_test(graph, test_poly3_weight_sharing);
    TCase *all[2] = {ops, graph};
    for (int k = 0; k < 2; k++) {
        tcase_set_timeout(all[k], 600);
        suite_add_tcase(s, all[k]);
    }
    return s;
}

int main(void) {
    /* the harness covers whatever the registry holds */
    prt_context *ctx = NULL;
    if (prt_context_create(NULL, &ctx) != PRT_OK) return 1;
    int n_ops = prt_op_count(ctx->ops);
    prt_context_destroy(ctx);
    return tu_run(suite(n_ops));
}

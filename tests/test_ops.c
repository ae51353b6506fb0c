/* The operator harness: every registered op runs its reference (.ref) and fast
 * (.fast) kernels on random shapes, attributes and values plus edge cases, and
 * both are compared with a float64 implementation written here. The loop runs
 * over the registry, so an op added without test cases fails. Each case also
 * runs in place where the op allows it, the fast path without a workspace
 * (its own allocation), and conv in both forced layouts. Plus dropout
 * reproducibility and batch-norm running statistics. The registry and shape
 * inference are tested in test_ops_api.c.
 *
 * Tolerance: |got - want| <= 1e-4 * (|want| + rms(want)) elementwise, i.e.
 * about a thousand float32 roundings relative to the output's magnitude; the
 * float64 side is exact to far below that. */
// labels: unit

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/dnnl_util.h"
#include "tests/ops_test_util.h"

#define RTOL 1e-4

/* conv: fixed edge cases, then random ones */
static int cases_conv(tcase *cs, rng *r) {
    int n = 0;
    CASE("1x1 spatial", S(SH4(2, 3, 1, 1)), I1("out", 4), I1("kernel", 1));
    CASE("1x1 spatial, 3x3 pad 1", S(SH4(1, 5, 1, 1)), I1("out", 3), I1("kernel", 3), I1("pad", 1));
    CASE("pad larger than kernel", S(SH4(2, 3, 4, 5)), I1("out", 5), I1("kernel", 1), I1("pad", 2));
    CASE("pad 4 with 3x3", S(SH4(1, 4, 3, 3)), I1("out", 2), I1("kernel", 3), I1("pad", 4));
    CASE("stride > kernel", S(SH4(2, 5, 9, 11)), I1("out", 6), I1("kernel", 2), I1("stride", 3));
    CASE("stride 3, kernel 1", S(SH4(1, 13, 7, 7)), I1("out", 13), I1("kernel", 1), I1("stride", 3));
    CASE("batch 1, 3 channels", S(SH4(1, 3, 11, 11)), I1("out", 8), I1("kernel", 3), I1("pad", 1));
    CASE("13 channels", S(SH4(2, 13, 6, 6)), I1("out", 5), I1("kernel", 3));
    CASE("groups 2", S(SH4(2, 6, 7, 7)), I1("out", 4), I1("kernel", 3), I1("groups", 2), I1("pad", 1));
    CASE("groups 4, 16 channels", S(SH4(1, 16, 8, 8)), I1("out", 32), I1("kernel", 3), I1("groups", 4), I1("pad", 1));
    CASE("depthwise", S(SH4(2, 8, 9, 9)), I1("out", 8), I1("kernel", 3), I1("groups", 8), I1("pad", 1));
    CASE("dilation 2", S(SH4(1, 5, 12, 12)), I1("out", 7), I1("kernel", 3), I1("dilation", 2), I1("pad", 2));
    CASE("dilation [2,3]", S(SH4(2, 3, 10, 13)), I1("out", 4), I1("kernel", 3), I2("dilation", 2, 3));
    CASE("1x7", S(SH4(2, 8, 9, 9)), I1("out", 16), I2("kernel", 1, 7), I2("pad", 0, 3));
    CASE("7x1", S(SH4(2, 16, 9, 9)), I1("out", 8), I2("kernel", 7, 1), I2("pad", 3, 0));
    CASE("asymmetric pad", S(SH4(2, 5, 8, 7)), I1("out", 6), I1("kernel", 3), I4("pad", 1, 0, 2, 1));
    CASE("asymmetric pad, stride 2", S(SH4(1, 16, 9, 9)), I1("out", 16), I1("kernel", 3), I1("stride", 2),
         I4("pad", 0, 1, 1, 0));
    CASE("no bias", S(SH4(2, 8, 6, 6)), I1("out", 8), I1("kernel", 3), I1("bias", 0), I1("pad", 1));
    CASE("wide 1x1 on 32x32 (blocked rule)", S(SH4(1, 128, 32, 32)), I1("out", 192), I1("kernel", 1), I1("bias", 0));
    CASE("8x8 wide 3x3 (plain rule)", S(SH4(1, 32, 8, 8)), I1("out", 128), I1("kernel", 3), I1("pad", 1));
    CASE("non-square input", S(SH4(1, 4, 5, 17)), I1("out", 3), I2("kernel", 2, 5), I2("stride", 1, 2));
    for (int t = 0; t < 30; t++) {
        int64_t g = rint_(r, 1, 3), c = g * rint_(r, 1, 6), o = g * rint_(r, 1, 6);
        int64_t kh = rint_(r, 1, 4), kw = rint_(r, 1, 4), sh = rint_(r, 1, 3), sw = rint_(r, 1, 3);
        int64_t dh = rint_(r, 1, 2), dw = rint_(r, 1, 2);
        int64_t p[4] = {rint_(r, 0, 3), rint_(r, 0, 3), rint_(r, 0, 3), rint_(r, 0, 3)};
        int64_t h = dh * (kh - 1) + 1 + rint_(r, 0, 8), w = dw * (kw - 1) + 1 + rint_(r, 0, 8);
        prt_shape in = SH4(rint_(r, 1, 3), c, h, w);
        tset st[] = {I1("out", o), I2("kernel", kh, kw), I2("stride", sh, sw), I2("dilation", dh, dw),
                     I4("pad", p[0], p[1], p[2], p[3]), I1("groups", g), I1("bias", (int64_t)(rnext(r) & 1))};
        add_case(cs, &n, "random", 1, &in, st, 7);
    }
    return n;
}

static int cases_batchnorm(tcase *cs, rng *r) {
    int n = 0;
    CASE("inference 4-D", S(SH4(2, 5, 3, 4)));
    CASE("inference 2-D", S(SH(2, 4, 13, 0, 0)), FL("eps", 1e-3));
    CASE("inference, 1x1 spatial", S(SH4(3, 8, 1, 1)));
    for (int k = 0; k < n; k++) cs[k].training = false;
    int m = n;
    CASE("training 4-D", S(SH4(2, 5, 3, 4)), FL("momentum", 0.3));
    CASE("training 2-D", S(SH(2, 4, 13, 0, 0)));
    CASE("training, batch 1", S(SH4(1, 3, 5, 5)), FL("eps", 1e-3), FL("momentum", 1.0));
    CASE("training, 3-D", S(SH(3, 2, 7, 9, 0)));
    for (int t = 0; t < 4; t++) {
        prt_shape in = SH4(rint_(r, 1, 3), rint_(r, 1, 17), rint_(r, 1, 6), rint_(r, 2, 6));
        tset st[] = {FL("eps", 1e-5 + runif(r) * 1e-2), FL("momentum", runif(r))};
        add_case(cs, &n, "random", 1, &in, st, 2)->training = t & 1;
    }
    for (int k = m; k < m + 4; k++) cs[k].training = true;
    return n;
}

static int cases_elementwise(tcase *cs, rng *r, const char *op) {
    int n = 0;
    bool two = !strcmp(op, "add");
    for (int t = 0; t < 6; t++) {
        int nd = (int)rint_(r, 1, 4);
        prt_shape s = SH(nd, rint_(r, 1, 4), rint_(r, 1, 9), rint_(r, 1, 9), rint_(r, 1, 9));
        prt_shape in[4] = {s, s, s, s};
        int n_in = two ? (int)rint_(r, 2, 4) : 1;
        tset st[1] = {FL("by", runif(r) * 4 - 2)};
        add_case(cs, &n, "random", n_in, in, st, !strcmp(op, "scale") ? 1 : 0);
    }
    /* large enough for the OpenMP path */
    prt_shape big[2] = {SH4(2, 64, 33, 35), SH4(2, 64, 33, 35)};
    tset st[1] = {FL("by", 0.7)};
    add_case(cs, &n, "large", two ? 2 : 1, big, st, !strcmp(op, "scale") ? 1 : 0);
    return n;
}

static int cases_pool(tcase *cs, rng *r, bool avg) {
    int n = 0;
    CASE("2x2", S(SH4(2, 3, 8, 8)), I1("kernel", 2));
    CASE("3x3 stride 2 pad 1", S(SH4(1, 5, 9, 9)), I1("kernel", 3), I1("stride", 2), I1("pad", 1));
    CASE("global", S(SH4(2, 13, 7, 5)), I1("global", 1));
    CASE("global 1x1", S(SH4(2, 3, 1, 1)), I1("global", 1));
    CASE("1x1 spatial", S(SH4(2, 3, 1, 1)), I1("kernel", 1));
    CASE("stride > kernel", S(SH4(1, 4, 11, 10)), I1("kernel", 2), I1("stride", 3));
    CASE("asymmetric pad", S(SH4(2, 3, 6, 7)), I1("kernel", 3), I1("stride", 1), I4("pad", 2, 0, 1, 2));
    CASE("1x3 kernel", S(SH4(1, 2, 5, 9)), I2("kernel", 1, 3), I2("pad", 0, 1));
    tcase *neg = add_case(cs, &n, "negative input, pad 1", 1, (prt_shape[]){SH4(1, 3, 5, 5)},
                          (tset[]){I1("kernel", 3), I1("stride", 1), I1("pad", 1)}, 3);
    neg->negative = true;
    if (avg) {
        CASE("pad counted", S(SH4(2, 3, 7, 7)), I1("kernel", 3), I1("stride", 2), I1("pad", 1), I1("count_include_pad", 1));
        CASE("pad not counted", S(SH4(2, 3, 7, 7)), I1("kernel", 3), I1("stride", 2), I1("pad", 1),
             I1("count_include_pad", 0));
        CASE("9x9 like PolyNet's head", S(SH4(2, 16, 9, 9)), I1("kernel", 9));
    }
    for (int t = 0; t < 16; t++) {
        int64_t kh = rint_(r, 1, 4), kw = rint_(r, 1, 4);
        int64_t p[4] = {rint_(r, 0, kh - 1), rint_(r, 0, kw - 1), rint_(r, 0, kh - 1), rint_(r, 0, kw - 1)};
        prt_shape in = SH4(rint_(r, 1, 3), rint_(r, 1, 9), kh + rint_(r, 0, 8), kw + rint_(r, 0, 8));
        tset st[] = {I2("kernel", kh, kw), I2("stride", rint_(r, 1, 3), rint_(r, 1, 3)), I4("pad", p[0], p[1], p[2], p[3]),
                     I1("count_include_pad", (int64_t)(rnext(r) & 1))};
        add_case(cs, &n, "random", 1, &in, st, avg ? 4 : 3);
    }
    return n;
}

static int cases_concat(tcase *cs, rng *r) {
    int n = 0;
    CASE("axis 1", S(SH4(2, 3, 4, 5), SH4(2, 7, 4, 5)));
    CASE("axis 2", S(SH4(2, 3, 4, 5), SH4(2, 3, 1, 5), SH4(2, 3, 6, 5)), I1("axis", 2));
    CASE("axis 0", S(SH(2, 3, 4, 0, 0), SH(2, 5, 4, 0, 0)), I1("axis", 0));
    CASE("axis -1", S(SH4(2, 3, 4, 5), SH4(2, 3, 4, 2)), I1("axis", -1));
    CASE("large axis 1", S(SH4(4, 96, 35, 35), SH4(4, 64, 35, 35), SH4(4, 96, 35, 35)));
    for (int t = 0; t < 5; t++) {
        int nd = (int)rint_(r, 1, 4), axis = (int)rint_(r, 0, nd - 1), k = (int)rint_(r, 2, 4);
        prt_shape base = SH(nd, rint_(r, 1, 4), rint_(r, 1, 6), rint_(r, 1, 6), rint_(r, 1, 6)), in[4];
        for (int j = 0; j < k; j++) {
            in[j] = base;
            in[j].d[axis] = rint_(r, 1, 5);
        }
        tset st[] = {I1("axis", axis)};
        add_case(cs, &n, "random", k, in, st, 1);
    }
    return n;
}

static int cases_linear(tcase *cs, rng *r) {
    int n = 0;
    CASE("2-D", S(SH(2, 3, 17, 0, 0)), I1("out", 5));
    CASE("4-D flattened", S(SH4(2, 3, 4, 5)), I1("out", 7));
    CASE("no bias", S(SH(2, 1, 9, 0, 0)), I1("out", 1), I1("bias", 0));
    for (int t = 0; t < 5; t++) {
        prt_shape in = SH((int)rint_(r, 2, 4), rint_(r, 1, 5), rint_(r, 1, 40), rint_(r, 1, 5), rint_(r, 1, 5));
        tset st[] = {I1("out", rint_(r, 1, 40)), I1("bias", (int64_t)(rnext(r) & 1))};
        add_case(cs, &n, "random", 1, &in, st, 2);
    }
    return n;
}

static int cases_softmax(tcase *cs, rng *r) {
    int n = 0;
    CASE("rank 2 axis 1", S(SH(2, 4, 10, 0, 0)));
    CASE("rank 4 axis 1", S(SH4(2, 5, 3, 3)));
    CASE("axis -1", S(SH4(2, 3, 4, 6)), I1("axis", -1));
    CASE("axis 0", S(SH(2, 6, 3, 0, 0)), I1("axis", 0));
    CASE("axis 1, inner 400 (several blocks)", S(SH4(3, 5, 20, 20)));
    CASE("classifier [32, 1000]", S(SH(2, 32, 1000, 0, 0)));
    for (int t = 0; t < 5; t++) {
        int nd = (int)rint_(r, 1, 4);
        prt_shape in = SH(nd, rint_(r, 1, 5), rint_(r, 1, 9), rint_(r, 1, 5), rint_(r, 1, 5));
        tset st[] = {I1("axis", rint_(r, -nd, nd - 1))};
        add_case(cs, &n, "random", 1, &in, st, 1);
    }
    return n;
}

static int cases_dropout(tcase *cs, rng *r) {
    int n = 0;
    CASE("inference", S(SH4(2, 3, 4, 5)), FL("p", 0.5));
    CASE("training p 0.5", S(SH4(2, 3, 4, 5)), FL("p", 0.5));
    cs[n - 1].training = true;
    CASE("training p 0", S(SH4(2, 3, 4, 5)), FL("p", 0.0));
    cs[n - 1].training = true;
    CASE("training p 1", S(SH(2, 3, 7, 0, 0)), FL("p", 1.0));
    cs[n - 1].training = true;
    CASE("training large", S(SH4(4, 64, 17, 17)), FL("p", 0.2));
    cs[n - 1].training = true;
    for (int t = 0; t < 3; t++) {
        prt_shape in = SH((int)rint_(r, 1, 4), rint_(r, 1, 5), rint_(r, 1, 9), rint_(r, 1, 5), rint_(r, 1, 5));
        tset st[] = {FL("p", runif(r) * 0.9)};
        add_case(cs, &n, "random", 1, &in, st, 1)->training = true;
    }
    return n;
}

static int cases_flatten(tcase *cs, rng *r) {
    int n = 0;
    CASE("4-D", S(SH4(2, 3, 4, 5)));
    CASE("2-D", S(SH(2, 3, 4, 0, 0)));
    CASE("1-D", S(SH(1, 6, 0, 0, 0)));
    (void)r;
    return n;
}

/* ---- the ONNX-facing ops -------------------------------------------------- */

static int cases_clip(tcase *cs, rng *r) {
    int n = 0;
    CASE("no bounds", S(SH4(2, 3, 4, 5)));
    CASE("relu6-like 0..0.6", S(SH4(2, 3, 4, 5)), FL("min", 0.0), FL("max", 0.6));
    CASE("min only", S(SH(2, 3, 7, 0, 0)), FL("min", -0.25));
    CASE("max only", S(SH(2, 3, 7, 0, 0)), FL("max", 0.3));
    CASE("min > max gives max", S(SH(2, 4, 5, 0, 0)), FL("min", 0.5), FL("max", -0.5));
    CASE("large", S(SH4(2, 64, 33, 35)), FL("min", -0.3), FL("max", 0.4));
    for (int t = 0; t < 3; t++) {
        double lo = runif(r) * 2 - 1, hi = lo + runif(r);
        prt_shape in = SH((int)rint_(r, 1, 4), rint_(r, 1, 4), rint_(r, 1, 9), rint_(r, 1, 9), rint_(r, 1, 9));
        tset st[] = {FL("min", lo), FL("max", hi)};
        add_case(cs, &n, "random", 1, &in, st, 2);
    }
    return n;
}

static int cases_binary(tcase *cs, rng *r) {
    int n = 0;
    CASE("equal shapes", S(SH4(2, 3, 4, 5), SH4(2, 3, 4, 5)));
    CASE("per channel [1, C, 1, 1]", S(SH4(2, 3, 4, 5), SH4(1, 3, 1, 1)));
    CASE("last dim only", S(SH4(2, 3, 4, 5), SH(1, 5, 0, 0, 0)));
    CASE("both broadcast", S(SH4(2, 1, 4, 1), SH(3, 3, 1, 5, 0)));
    CASE("scalar b", S(SH(2, 2, 3, 0, 0), SH(0, 0, 0, 0, 0)));
    CASE("a broadcast", S(SH(1, 1, 0, 0, 0), SH(3, 2, 3, 4, 0)));
    CASE("inner row [N, 1]", S(SH(2, 6, 7, 0, 0), SH(2, 6, 1, 0, 0)));
    CASE("large per channel", S(SH4(2, 64, 33, 35), SH4(1, 64, 1, 1)));
    CASE("large equal", S(SH4(2, 64, 33, 35), SH4(2, 64, 33, 35)));
    for (int t = 0; t < 6; t++) {
        int nd = (int)rint_(r, 1, 4);
        prt_shape a = SH(nd, rint_(r, 1, 4), rint_(r, 1, 5), rint_(r, 1, 5), rint_(r, 1, 5)), b = a;
        for (int i = 0; i < nd; i++) {
            if (rnext(r) % 3 == 0) a.d[i] = 1;
            else if (rnext(r) % 3 == 0) b.d[i] = 1;
        }
        int drop = (int)rint_(r, 0, nd - 1); /* b may have fewer dims */
        prt_shape bs = {.ndim = nd - drop};
        for (int i = 0; i < bs.ndim; i++) bs.d[i] = b.d[i + drop];
        prt_shape in[2] = {a, bs};
        add_case(cs, &n, "random", 2, in, NULL, 0);
    }
    return n;
}

static int cases_matmul(tcase *cs, rng *r) {
    int n = 0;
    CASE("2-D", S(SH(2, 3, 4, 0, 0), SH(2, 4, 5, 0, 0)));
    CASE("batched a, one b (folded)", S(SH(3, 2, 3, 4, 0), SH(2, 4, 5, 0, 0)));
    CASE("batched both", S(SH(3, 2, 3, 4, 0), SH(3, 2, 4, 5, 0)));
    CASE("batch broadcast both ways", S(SH4(2, 1, 3, 4), SH(3, 3, 4, 2, 0)));
    CASE("one a, batched b", S(SH(2, 3, 4, 0, 0), SH(3, 2, 4, 5, 0)));
    CASE("1-D a", S(SH(1, 4, 0, 0, 0), SH(2, 4, 5, 0, 0)));
    CASE("1-D b", S(SH(3, 2, 3, 4, 0), SH(1, 4, 0, 0, 0)));
    CASE("1-D both", S(SH(1, 7, 0, 0, 0), SH(1, 7, 0, 0, 0)));
    CASE("1-D a, batched b", S(SH(1, 4, 0, 0, 0), SH(3, 2, 4, 3, 0)));
    CASE("classifier [8, 512] x [512, 100]", S(SH(2, 8, 512, 0, 0), SH(2, 512, 100, 0, 0)));
    CASE("large batched", S(SH(3, 4, 64, 96, 0), SH(3, 4, 96, 48, 0)));
    for (int t = 0; t < 4; t++) {
        int64_t m = rint_(r, 1, 6), k = rint_(r, 1, 9), nn = rint_(r, 1, 6), b1 = rint_(r, 1, 3);
        prt_shape in[2] = {SH(3, rnext(r) & 1 ? b1 : 1, m, k, 0), SH(3, rnext(r) & 1 ? b1 : 1, k, nn, 0)};
        add_case(cs, &n, "random", 2, in, NULL, 0);
    }
    return n;
}

static int cases_transpose(tcase *cs, rng *r) {
    int n = 0;
    CASE("NCHW to NHWC", S(SH4(2, 3, 4, 5)), I4("perm", 0, 2, 3, 1));
    CASE("default reverses", S(SH(3, 2, 3, 4, 0)));
    CASE("2-D", S(SH(2, 5, 7, 0, 0)), I2("perm", 1, 0));
    CASE("reverse 4-D", S(SH4(2, 3, 4, 5)), I4("perm", 3, 2, 1, 0));
    CASE("size-1 dims", S(SH4(2, 1, 4, 5)), I4("perm", 0, 2, 1, 3));
    CASE("identity", S(SH4(2, 3, 4, 5)), I4("perm", 0, 1, 2, 3));
    CASE("large NCHW to NHWC", S(SH4(2, 64, 33, 35)), I4("perm", 0, 2, 3, 1));
    for (int t = 0; t < 3; t++) {
        int64_t p[4] = {0, 1, 2, 3};
        for (int i = 3; i > 0; i--) {
            int64_t j = rint_(r, 0, i), x = p[i];
            p[i] = p[j];
            p[j] = x;
        }
        prt_shape in = SH4(rint_(r, 1, 4), rint_(r, 1, 5), rint_(r, 1, 5), rint_(r, 1, 5));
        tset st[] = {I4("perm", p[0], p[1], p[2], p[3])};
        add_case(cs, &n, "random", 1, &in, st, 1);
    }
    return n;
}

static int cases_reshape(tcase *cs, rng *r) {
    int n = 0;
    CASE("flatten with 0 and -1", S(SH4(2, 3, 4, 5)), I2("shape", 0, -1));
    CASE("explicit", S(SH4(2, 3, 4, 5)), I2("shape", 2, 60));
    CASE("split a dim", S(SH(2, 6, 4, 0, 0)), I4("shape", 2, 3, 2, 2));
    CASE("0, -1 in the middle", S(SH(2, 2, 12, 0, 0)), I4("shape", 0, 3, -1, 2));
    CASE("to 1-D", S(SH(3, 2, 3, 4, 0)), I1("shape", -1));
    (void)r;
    return n;
}

static int cases_pad(tcase *cs, rng *r) {
    int n = 0;
    CASE("1-D", S(SH(1, 7, 0, 0, 0)), I2("pads", 2, 3));
    CASE("2-D constant", S(SH(2, 5, 6, 0, 0)), I4("pads", 1, 2, 3, 0), FL("value", 1.5));
    CASE("2-D crop", S(SH(2, 5, 6, 0, 0)), I4("pads", -1, 0, 2, -2));
    CASE("nothing", S(SH(2, 5, 6, 0, 0)), I4("pads", 0, 0, 0, 0));
    CASE("large rows", S(SH(2, 300, 400, 0, 0)), I4("pads", 0, 3, 0, 5));
    for (int t = 0; t < 3; t++) {
        prt_shape in = SH(2, rint_(r, 1, 5), rint_(r, 3, 9), 0, 0);
        tset st[] = {I4("pads", rint_(r, 0, 2), rint_(r, -2, 3), rint_(r, 0, 2), rint_(r, -2, 3))};
        add_case(cs, &n, "random", 1, &in, st, 1);
    }
    return n;
}

static int cases_global_avgpool(tcase *cs, rng *r) {
    int n = 0;
    CASE("small", S(SH4(2, 3, 4, 5)));
    CASE("1x1 plane", S(SH4(2, 3, 1, 1)));
    CASE("7x7 like ResNet's head", S(SH4(2, 16, 7, 7)));
    CASE("large", S(SH4(4, 64, 33, 35)));
    prt_shape in = SH4(rint_(r, 1, 3), rint_(r, 1, 9), rint_(r, 1, 9), rint_(r, 1, 9));
    add_case(cs, &n, "random", 1, &in, NULL, 0);
    return n;
}

/* cast's default `to` is f32: on f32 data the harness checks the identity
 * (the f32 <-> bf16 conversions are tests/test_cast.c's) */
static int cases_cast(tcase *cs, rng *r) {
    int n = 0;
    CASE("4-D", S(SH4(2, 3, 4, 5)));
    CASE("large", S(SH4(2, 64, 33, 35)));
    prt_shape in = SH(2, rint_(r, 1, 9), rint_(r, 1, 9), 0, 0);
    add_case(cs, &n, "random", 1, &in, NULL, 0);
    return n;
}

static int cases_for(const char *op, tcase *cs, rng *r) {
    if (!strcmp(op, "cast")) return cases_cast(cs, r);
    if (!strcmp(op, "sigmoid") || !strcmp(op, "tanh")) return cases_elementwise(cs, r, op);
    if (!strcmp(op, "clip")) return cases_clip(cs, r);
    if (!strcmp(op, "mul") || !strcmp(op, "sub") || !strcmp(op, "div")) return cases_binary(cs, r);
    if (!strcmp(op, "matmul")) return cases_matmul(cs, r);
    if (!strcmp(op, "transpose")) return cases_transpose(cs, r);
    if (!strcmp(op, "reshape")) return cases_reshape(cs, r);
    if (!strcmp(op, "pad")) return cases_pad(cs, r);
    if (!strcmp(op, "global_avgpool")) return cases_global_avgpool(cs, r);
    if (!strcmp(op, "conv")) return cases_conv(cs, r);
    if (!strcmp(op, "batchnorm") || !strcmp(op, "batchnorm_relu")) return cases_batchnorm(cs, r);
    if (!strcmp(op, "relu") || !strcmp(op, "add") || !strcmp(op, "scale")) return cases_elementwise(cs, r, op);
    if (!strcmp(op, "maxpool")) return cases_pool(cs, r, false);
    if (!strcmp(op, "avgpool")) return cases_pool(cs, r, true);
    if (!strcmp(op, "concat")) return cases_concat(cs, r);
    if (!strcmp(op, "linear")) return cases_linear(cs, r);
    if (!strcmp(op, "softmax")) return cases_softmax(cs, r);
    if (!strcmp(op, "dropout")) return cases_dropout(cs, r);
    if (!strcmp(op, "flatten")) return cases_flatten(cs, r);
    return 0;
}

/* ---- float64 references --------------------------------------------------- */

typedef struct r64 {
    const prt_op_schema *s;
    const prt_attr *attrs;
    int n_in;                 /* data inputs + present params */
    double *in[MAX_IN + 4];
    prt_shape shape[MAX_IN + 4];
    double *out;
    prt_shape out_shape;
    bool training;
    uint64_t key, step;
} r64;

static const prt_attr *A(const r64 *r, const char *name) {
    int i = prt_op_attr_index(r->s, name);
    ck_assert_msg(i >= 0, "no attribute %s", name);
    return &r->attrs[i];
}
/* the test's own expansion of pairs and pads, independent of the library's */
static void pair(const prt_attr *a, int64_t *h, int64_t *w) {
    *h = a->i[0];
    *w = a->n >= 2 ? a->i[1] : a->i[0];
}
static void pad4(const prt_attr *a, int64_t p[4]) {
    if (a->n == 4) {
        for (int k = 0; k < 4; k++) p[k] = a->i[k];
    } else {
        p[0] = p[2] = a->i[0];
        p[1] = p[3] = a->n >= 2 ? a->i[1] : a->i[0];
    }
}
static int64_t numel(const prt_shape *s) {
    int64_t n = 1;
    for (int i = 0; i < s->ndim; i++) n *= s->d[i];
    return n;
}

static void ref_conv(r64 *r) {
    const prt_shape *x = &r->shape[0], *y = &r->out_shape;
    int64_t kh, kw, sh, sw, dh, dw, p[4], g = A(r, "groups")->i[0];
    pair(A(r, "kernel"), &kh, &kw);
    pair(A(r, "stride"), &sh, &sw);
    pair(A(r, "dilation"), &dh, &dw);
    pad4(A(r, "pad"), p);
    int64_t N = x->d[0], C = x->d[1], H = x->d[2], W = x->d[3], O = y->d[1], OH = y->d[2], OW = y->d[3];
    int64_t cg = C / g, og = O / g;
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < O; o++)
            for (int64_t oy = 0; oy < OH; oy++)
                for (int64_t ox = 0; ox < OW; ox++) {
                    double s = r->n_in > 2 ? r->in[2][o] : 0;
                    for (int64_t ci = 0; ci < cg; ci++)
                        for (int64_t ky = 0; ky < kh; ky++)
                            for (int64_t kx = 0; kx < kw; kx++) {
                                int64_t iy = oy * sh - p[0] + ky * dh, ix = ox * sw - p[1] + kx * dw;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                                s += r->in[0][((n * C + (o / og) * cg + ci) * H + iy) * W + ix] *
                                     r->in[1][((o * cg + ci) * kh + ky) * kw + kx];
                            }
                    r->out[((n * O + o) * OH + oy) * OW + ox] = s;
                }
}

static void ref_batchnorm(r64 *r) {
    const prt_shape *x = &r->shape[0];
    int64_t N = x->d[0], C = x->d[1], S = numel(x) / (N * C);
    double eps = A(r, "eps")->f, m = A(r, "momentum")->f;
    for (int64_t c = 0; c < C; c++) {
        double mean = r->in[3][c], var = r->in[4][c];
        if (r->training) {
            double s = 0, ss = 0;
            for (int64_t n = 0; n < N; n++)
                for (int64_t i = 0; i < S; i++) s += r->in[0][(n * C + c) * S + i];
            mean = s / (double)(N * S);
            for (int64_t n = 0; n < N; n++)
                for (int64_t i = 0; i < S; i++) ss += pow(r->in[0][(n * C + c) * S + i] - mean, 2);
            var = ss / (double)(N * S);
            r->in[3][c] = (1 - m) * r->in[3][c] + m * mean;
            r->in[4][c] = (1 - m) * r->in[4][c] + m * ss / (double)(N * S - 1);
        }
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < S; i++) {
                int64_t k = (n * C + c) * S + i;
                r->out[k] = (r->in[0][k] - mean) / sqrt(var + eps) * r->in[1][c] + r->in[2][c];
            }
    }
}

static void ref_relu(r64 *r) {
    for (int64_t i = 0; i < numel(&r->out_shape); i++) r->out[i] = r->in[0][i] > 0 ? r->in[0][i] : 0;
}

static void ref_pool(r64 *r) {
    bool avg = !strcmp(r->s->name, "avgpool");
    const prt_shape *x = &r->shape[0], *y = &r->out_shape;
    int64_t kh, kw, sh, sw, p[4] = {0, 0, 0, 0};
    if (A(r, "global")->i[0]) {
        kh = x->d[2], kw = x->d[3], sh = sw = 1;
    } else {
        pair(A(r, "kernel"), &kh, &kw);
        if (A(r, "stride")->n) pair(A(r, "stride"), &sh, &sw);
        else sh = kh, sw = kw;
        pad4(A(r, "pad"), p);
    }
    bool count_pad = avg && A(r, "count_include_pad")->i[0];
    for (int64_t pl = 0; pl < x->d[0] * x->d[1]; pl++)
        for (int64_t oy = 0; oy < y->d[2]; oy++)
            for (int64_t ox = 0; ox < y->d[3]; ox++) {
                double m = -INFINITY, s = 0;
                int cnt = 0;
                for (int64_t ky = 0; ky < kh; ky++)
                    for (int64_t kx = 0; kx < kw; kx++) {
                        int64_t iy = oy * sh - p[0] + ky, ix = ox * sw - p[1] + kx;
                        if (iy < 0 || iy >= x->d[2] || ix < 0 || ix >= x->d[3]) continue;
                        double v = r->in[0][(pl * x->d[2] + iy) * x->d[3] + ix];
                        m = v > m ? v : m;
                        s += v;
                        cnt++;
                    }
                r->out[(pl * y->d[2] + oy) * y->d[3] + ox] = !avg ? m : s / (double)(count_pad ? kh * kw : cnt);
            }
}

static void ref_concat(r64 *r) {
    int nd = r->out_shape.ndim;
    int64_t axis = A(r, "axis")->i[0];
    if (axis < 0) axis += nd;
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < axis; i++) outer *= r->out_shape.d[i];
    for (int i = (int)axis + 1; i < nd; i++) inner *= r->out_shape.d[i];
    int64_t at = 0, total = r->out_shape.d[axis];
    for (int k = 0; k < r->n_in; k++) {
        int64_t len = r->shape[k].d[axis];
        for (int64_t o = 0; o < outer; o++)
            for (int64_t a = 0; a < len; a++)
                for (int64_t i = 0; i < inner; i++)
                    r->out[(o * total + at + a) * inner + i] = r->in[k][(o * len + a) * inner + i];
        at += len;
    }
}

static void ref_add(r64 *r) {
    for (int64_t i = 0; i < numel(&r->out_shape); i++) {
        double s = 0;
        for (int k = 0; k < r->n_in; k++) s += r->in[k][i];
        r->out[i] = s;
    }
}

static void ref_scale(r64 *r) {
    double by = A(r, "by")->f;
    for (int64_t i = 0; i < numel(&r->out_shape); i++) r->out[i] = by * r->in[0][i];
}

static void ref_linear(r64 *r) {
    int64_t N = r->out_shape.d[0], O = r->out_shape.d[1], K = numel(&r->shape[0]) / N;
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < O; o++) {
            double s = r->n_in > 2 ? r->in[2][o] : 0;
            for (int64_t k = 0; k < K; k++) s += r->in[0][n * K + k] * r->in[1][o * K + k];
            r->out[n * O + o] = s;
        }
}

static void ref_softmax(r64 *r) {
    const prt_shape *x = &r->shape[0];
    int64_t axis = A(r, "axis")->i[0];
    if (axis < 0) axis += x->ndim;
    int64_t outer = 1, inner = 1, len = x->d[axis];
    for (int i = 0; i < axis; i++) outer *= x->d[i];
    for (int i = (int)axis + 1; i < x->ndim; i++) inner *= x->d[i];
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            double s = 0;
            for (int64_t a = 0; a < len; a++) s += exp(r->in[0][(o * len + a) * inner + i]);
            for (int64_t a = 0; a < len; a++)
                r->out[(o * len + a) * inner + i] = exp(r->in[0][(o * len + a) * inner + i]) / s;
        }
}

/* The documented contract: element i at step s is dropped when the uniform
 * number at counter s*numel + i of the call's stream is below p. */
static void ref_dropout(r64 *r) {
    double p = A(r, "p")->f;
    int64_t n = numel(&r->out_shape);
    for (int64_t i = 0; i < n; i++) {
        if (!r->training) r->out[i] = r->in[0][i];
        else r->out[i] = prt_rng_uniform(r->key, r->step * (uint64_t)n + (uint64_t)i) < (float)p ? 0 : r->in[0][i] / (1 - p);
    }
}

static void ref_flatten(r64 *r) {
    for (int64_t i = 0; i < numel(&r->out_shape); i++) r->out[i] = r->in[0][i];
}

static void ref_sigmoid(r64 *r) {
    for (int64_t i = 0; i < numel(&r->out_shape); i++) r->out[i] = 1 / (1 + exp(-r->in[0][i]));
}

static void ref_tanh(r64 *r) {
    for (int64_t i = 0; i < numel(&r->out_shape); i++) r->out[i] = tanh(r->in[0][i]);
}

static void ref_clip(r64 *r) {
    double lo = A(r, "min")->f, hi = A(r, "max")->f;
    for (int64_t i = 0; i < numel(&r->out_shape); i++) {
        double v = r->in[0][i];
        if (v < lo) v = lo;
        if (v > hi) v = hi; /* after the min: with min > max everything becomes max */
        r->out[i] = v;
    }
}

/* Offset in `in` of element e of `full`, numpy broadcasting (right-aligned). */
static int64_t bcast_off(const prt_shape *full, const prt_shape *in, int64_t e) {
    int64_t off = 0, stride = 1;
    for (int i = full->ndim - 1; i >= 0; i--) {
        int64_t idx = e % full->d[i];
        e /= full->d[i];
        int k = i - (full->ndim - in->ndim);
        if (k < 0) continue;
        if (in->d[k] != 1) off += idx * stride;
        stride *= in->d[k];
    }
    return off;
}

static void ref_binary(r64 *r) {
    const char *op = r->s->name;
    for (int64_t e = 0; e < numel(&r->out_shape); e++) {
        double a = r->in[0][bcast_off(&r->out_shape, &r->shape[0], e)];
        double b = r->in[1][bcast_off(&r->out_shape, &r->shape[1], e)];
        r->out[e] = !strcmp(op, "mul") ? a * b : !strcmp(op, "sub") ? a - b : a / b;
    }
}

static void ref_matmul(r64 *r) {
    const prt_shape *a = &r->shape[0], *b = &r->shape[1];
    /* promote 1-D operands, as numpy does */
    prt_shape pa = *a, pb = *b;
    if (a->ndim == 1) pa = SH(2, 1, a->d[0], 0, 0);
    if (b->ndim == 1) pb = SH(2, b->d[0], 1, 0, 0);
    int64_t M = pa.d[pa.ndim - 2], K = pa.d[pa.ndim - 1], N = pb.d[pb.ndim - 1];
    /* the output's batch shape: both batch shapes broadcast */
    int nb = (pa.ndim > pb.ndim ? pa.ndim : pb.ndim) - 2;
    prt_shape bo = {.ndim = nb}, ba = {.ndim = pa.ndim - 2}, bb = {.ndim = pb.ndim - 2};
    for (int i = 0; i < ba.ndim; i++) ba.d[i] = pa.d[i];
    for (int i = 0; i < bb.ndim; i++) bb.d[i] = pb.d[i];
    for (int i = 0; i < nb; i++) {
        int ia = i - (nb - ba.ndim), ib = i - (nb - bb.ndim);
        int64_t da = ia >= 0 ? ba.d[ia] : 1, db = ib >= 0 ? bb.d[ib] : 1;
        bo.d[i] = da > db ? da : db;
    }
    for (int64_t e = 0; e < numel(&bo); e++) {
        const double *am = r->in[0] + bcast_off(&bo, &ba, e) * M * K, *bm = r->in[1] + bcast_off(&bo, &bb, e) * K * N;
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double s = 0;
                for (int64_t k = 0; k < K; k++) s += am[i * K + k] * bm[k * N + j];
                r->out[(e * M + i) * N + j] = s;
            }
    }
}

static void ref_transpose(r64 *r) {
    const prt_shape *x = &r->shape[0];
    const prt_attr *p = A(r, "perm");
    int perm[8];
    for (int i = 0; i < x->ndim; i++) perm[i] = p->n ? (int)p->i[i] : x->ndim - 1 - i;
    int64_t xst[8], s = 1;
    for (int i = x->ndim - 1; i >= 0; i--) {
        xst[i] = s;
        s *= x->d[i];
    }
    for (int64_t e = 0; e < numel(&r->out_shape); e++) {
        int64_t rem = e, off = 0;
        for (int i = x->ndim - 1; i >= 0; i--) {
            off += (rem % x->d[perm[i]]) * xst[perm[i]];
            rem /= x->d[perm[i]];
        }
        r->out[e] = r->in[0][off];
    }
}

static void ref_copy(r64 *r) {
    for (int64_t i = 0; i < numel(&r->out_shape); i++) r->out[i] = r->in[0][i];
}

/* ONNX Pad by its definition: output index o along a dim reads input o - begin,
 * mirrored (reflect) or clamped (edge) back inside, or the constant. */
static void ref_pad(r64 *r) {
    const prt_shape *x = &r->shape[0], *y = &r->out_shape;
    const prt_attr *p = A(r, "pads");
    const char *mode = A(r, "mode")->s;
    double value = A(r, "value")->f;
    for (int64_t e = 0; e < numel(y); e++) {
        int64_t rem = e, off = 0, stride = 1;
        bool inside = true;
        for (int i = y->ndim - 1; i >= 0; i--) {
            int64_t o = rem % y->d[i], k = o - p->i[i], d = x->d[i];
            rem /= y->d[i];
            if (k < 0 || k >= d) {
                if (!strcmp(mode, "edge")) k = k < 0 ? 0 : d - 1;
                else if (!strcmp(mode, "reflect")) k = k < 0 ? -k : 2 * d - 2 - k;
                else inside = false;
            }
            off += k * stride;
            stride *= d;
        }
        r->out[e] = inside ? r->in[0][off] : value;
    }
}

static void ref_global_avgpool(r64 *r) {
    const prt_shape *x = &r->shape[0];
    int64_t plane = x->d[2] * x->d[3];
    for (int64_t p = 0; p < x->d[0] * x->d[1]; p++) {
        double s = 0;
        for (int64_t i = 0; i < plane; i++) s += r->in[0][p * plane + i];
        r->out[p] = s / (double)plane;
    }
}

/* batchnorm then relu, in double */
static void ref_batchnorm_relu(r64 *r) {
    ref_batchnorm(r);
    for (int64_t k = 0; k < numel(&r->shape[0]); k++) r->out[k] = r->out[k] < 0 ? 0 : r->out[k];
}

static void (*ref_for(const char *op))(r64 *) {
    static const struct { const char *name; void (*fn)(r64 *); } t[] = {
        {"conv", ref_conv},     {"batchnorm", ref_batchnorm}, {"relu", ref_relu},     {"maxpool", ref_pool},
        {"avgpool", ref_pool},  {"concat", ref_concat},       {"add", ref_add},       {"scale", ref_scale},
        {"linear", ref_linear}, {"softmax", ref_softmax},     {"dropout", ref_dropout}, {"flatten", ref_flatten},
        {"sigmoid", ref_sigmoid}, {"tanh", ref_tanh}, {"clip", ref_clip}, {"mul", ref_binary}, {"sub", ref_binary},
        {"div", ref_binary}, {"matmul", ref_matmul}, {"transpose", ref_transpose}, {"reshape", ref_copy},
        {"pad", ref_pad}, {"global_avgpool", ref_global_avgpool}, {"batchnorm_relu", ref_batchnorm_relu},
        {"cast", ref_copy},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!strcmp(t[i].name, op)) return t[i].fn;
    return NULL;
}

/* ---- running kernels ---------------------------------------------------- */

typedef struct run_opts {
    bool fast;
    int conv_layout;     /* conv only: PRT_CONV_* */
    bool workspace;      /* pass the op's workspace query result */
    bool inplace;        /* output shares input inplace_in's memory */
    bool training;
    uint64_t key, step;
} run_opts;

/* Runs one kernel on float copies of `vals` (n tensors: data inputs then
 * params); the output goes to out, updated inputs (running statistics) back
 * to vals. Prepare sees tensors without storage, as the contract allows. */
static void run_kernel(prt_context *ctx, const prt_op_schema *s, prepared *p, int n, prt_shape *shapes, float **vals,
                       float *out, const run_opts *o) {
    prt_tensor t[MAX_IN + 4], t_nodata[MAX_IN + 4], y, y_nodata;
    const prt_tensor *in[MAX_IN + 4], *in_nodata[MAX_IN + 4];
    float *buf[MAX_IN + 4];
    for (int k = 0; k < n; k++) {
        ck_assert_int_eq(prt_tensor_alloc(ctx, prt_cpu_device(ctx), PRT_F32, &shapes[k], &t[k]), PRT_OK);
        buf[k] = PRT_F32P(&t[k]);
        memcpy(buf[k], vals[k], (size_t)numel(&shapes[k]) * sizeof(float));
        prt_tensor_wrap(&t_nodata[k], NULL, PRT_F32, &shapes[k]);
        in[k] = &t[k];
        in_nodata[k] = &t_nodata[k];
    }
    prt_tensor yt;
    bool own_y = !o->inplace;
    if (o->inplace) prt_tensor_wrap(&y, buf[s->inplace_in], PRT_F32, &p->out[0]);
    else {
        ck_assert_int_eq(prt_tensor_alloc(ctx, prt_cpu_device(ctx), PRT_F32, &p->out[0], &yt), PRT_OK);
        y = yt;
    }
    prt_tensor_wrap(&y_nodata, NULL, PRT_F32, &p->out[0]);
    prt_tensor *outp[1] = {&y}, *outp_nodata[1] = {&y_nodata};
    size_t ws = o->workspace && s->workspace ? s->workspace(&p->ic) : 0;
    void *wsp = ws ? aligned_alloc(64, (ws + 63) & ~(size_t)63) : NULL;
    prt_kernel_call c = {.ctx = ctx, .attrs = p->attrs, .n_in = n, .in = in_nodata, .n_out = 1, .out = outp_nodata,
                         .workspace = wsp, .workspace_size = ws, .training = o->training, .rng_key = o->key,
                         .step = o->step};
    const prt_kernel *k = prt_op_kernel(s, !o->fast);
    void *state = NULL;
    prt_status st = PRT_OK;
    if (o->fast && !strcmp(s->name, "conv")) st = prt_conv_prepare_layout(&c, o->conv_layout, &state);
    else if (k->prepare) st = k->prepare(&c, &state);
    ck_assert_msg(st == PRT_OK, "%s prepare: %s", s->name, prt_last_error(ctx));
    c.in = in;
    c.out = outp;
    c.state = state;
    st = k->run(&c);
    ck_assert_msg(st == PRT_OK, "%s run: %s", s->name, prt_last_error(ctx));
    if (k->release) k->release(state);
    memcpy(out, PRT_F32P(&y), (size_t)numel(&p->out[0]) * sizeof(float));
    for (int j = 0; j < n; j++) {
        if (!(o->inplace && j == s->inplace_in)) memcpy(vals[j], buf[j], (size_t)numel(&shapes[j]) * sizeof(float));
        prt_tensor_release(ctx, &t[j]);
    }
    if (own_y) prt_tensor_release(ctx, &yt);
    free(wsp);
}

/* Fails unless got matches want within RTOL of the magnitude (see the top). */
static void compare(const char *what, const float *got, const double *want, int64_t n) {
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += want[i] * want[i];
    double rms = n ? sqrt(ss / (double)n) : 0;
    for (int64_t i = 0; i < n; i++) {
        double tol = RTOL * (fabs(want[i]) + rms) + 1e-30;
        bool ok = fabs((double)got[i] - want[i]) <= tol || (isinf(want[i]) && (double)got[i] == want[i]);
        /* ck_abort only on failure: every ck_assert records its location in Check's log */
        if (!ok) ck_abort_msg("%s: element %lld is %.9g, want %.9g (tolerance %.3g)", what, (long long)i, got[i], want[i], tol);
    }
}

/* Runs one case through the float64 reference, .ref and .fast (and in place,
 * and every conv layout); returns the number of comparisons made. */
static int check_case_attrs(prt_context *ctx, const prt_op_schema *s, const tcase *tc, const prt_attr *attrs,
                            uint64_t seed);
static int check_case(prt_context *ctx, const prt_op_schema *s, const tcase *tc, uint64_t seed) {
    return check_case_attrs(ctx, s, tc, NULL, seed);
}

/* attrs: the node's attributes in schema order, for values a tcase cannot
 * hold (strings, more than 4 ints); NULL: the tcase's. */
static int check_case_attrs(prt_context *ctx, const prt_op_schema *s, const tcase *tc, const prt_attr *attrs,
                            uint64_t seed) {
    prepared p;
    prt_status st = infer(ctx, s, tc, &p);
    if (attrs) {
        memcpy(p.attrs, attrs, (size_t)s->n_attrs * sizeof *attrs);
        st = s->infer(&p.ic);
    }
    ck_assert_msg(st == PRT_OK, "%s %s: %s", s->name, tc->what, prt_last_error(ctx));
    int n = 0;
    prt_shape shapes[MAX_IN + 4];
    for (int k = 0; k < tc->n_in; k++) shapes[n++] = tc->in[k];
    int first_param = n;
    for (int q = 0; q < s->n_params; q++)
        if (p.present[q]) shapes[n++] = p.params[q];
    rng r = {seed | 1};
    float *vals[MAX_IN + 4], *init[MAX_IN + 4];
    double *v64[MAX_IN + 4];
    for (int k = 0; k < n; k++) {
        int64_t m = numel(&shapes[k]);
        vals[k] = malloc((size_t)(m ? m : 1) * sizeof(float));
        init[k] = malloc((size_t)(m ? m : 1) * sizeof(float));
        v64[k] = malloc((size_t)(m ? m : 1) * sizeof(double));
        bool positive = !strncmp(s->name, "batchnorm", 9) && k == first_param + 3; /* variance */
        for (int64_t i = 0; i < m; i++) {
            double v = runif(&r) * 2 - 1;
            if (positive) v = 0.1 + fabs(v);
            if (tc->negative) v = -0.5 - fabs(v);
            if (!strcmp(s->name, "softmax")) v *= 8; /* exercise the max subtraction */
            if (!strcmp(s->name, "sigmoid") || !strcmp(s->name, "tanh")) v *= 12; /* saturation */
            init[k][i] = (float)v;
        }
    }
    int64_t on = numel(&p.out[0]);
    double *want = malloc((size_t)(on ? on : 1) * sizeof(double));
    float *got = malloc((size_t)(on ? on : 1) * sizeof(float));
    uint64_t key = 0x1234 + seed, step = seed % 7;
    r64 ref = {.s = s, .attrs = p.attrs, .n_in = n, .out = want, .out_shape = p.out[0], .training = tc->training,
               .key = key, .step = step};
    for (int k = 0; k < n; k++) {
        for (int64_t i = 0; i < numel(&shapes[k]); i++) v64[k][i] = init[k][i];
        ref.in[k] = v64[k];
        ref.shape[k] = shapes[k];
    }
    void (*fn)(r64 *) = ref_for(s->name);
    ck_assert_msg(fn != NULL, "op '%s' has no float64 reference in test_ops.c", s->name);
    fn(&ref);

    int layouts[3] = {PRT_CONV_AUTO, PRT_CONV_PLAIN, PRT_CONV_BLOCKED};
    int n_layouts = !strcmp(s->name, "conv") ? 3 : 1;
    int checks = 0;
    /* in place only where the output fits the input (not a broadcast operand) */
    bool inplace = s->inplace_in >= 0 && numel(&shapes[s->inplace_in]) == on;
    for (int variant = 0; variant < 2 + n_layouts + (inplace ? 2 : 0); variant++) {
        run_opts o = {.training = tc->training, .key = key, .step = step, .workspace = true};
        const char *vname;
        if (variant == 0) {
            vname = ".ref";
        } else if (variant == 1) {
            o.fast = true;
            o.workspace = false; /* the kernel allocates its own */
            vname = ".fast without workspace";
        } else if (variant < 2 + n_layouts) {
            o.fast = true;
            o.conv_layout = layouts[variant - 2];
            vname = o.conv_layout == PRT_CONV_AUTO ? ".fast" : o.conv_layout == PRT_CONV_PLAIN ? ".fast plain" : ".fast blocked";
        } else {
            o.fast = variant == 2 + n_layouts + 1;
            o.inplace = true;
            vname = o.fast ? ".fast in place" : ".ref in place";
        }
        for (int k = 0; k < n; k++) memcpy(vals[k], init[k], (size_t)numel(&shapes[k]) * sizeof(float));
        run_kernel(ctx, s, &p, n, shapes, vals, got, &o);
        char what[256];
        snprintf(what, sizeof what, "%s %s (case '%s')", s->name, vname, tc->what);
        compare(what, got, want, on);
        checks++;
        if (!strcmp(s->name, "batchnorm") || !strcmp(s->name, "batchnorm_relu")) {
            /* running statistics: updated in training, untouched otherwise */
            char w2[300];
            for (int q = 3; q <= 4; q++) {
                snprintf(w2, sizeof w2, "%s running %s", what, q == 3 ? "mean" : "var");
                compare(w2, vals[first_param + q - 1], v64[first_param + q - 1], numel(&shapes[first_param + q - 1]));
            }
        }
    }
    for (int k = 0; k < n; k++) {
        free(vals[k]);
        free(init[k]);
        free(v64[k]);
    }
    free(want);
    free(got);
    return checks;
}

/* ---- softmax_xent: two outputs and i32 labels, so its own cases ------------ */

/* Runs softmax_xent's .ref or .fast on logits x [N, C] and labels; writes the
 * loss and probs. Returns the kernel's status (labels out of range fail). */
static prt_status xent_call(prt_context *ctx, const prt_op_schema *s, bool fast, bool workspace, int64_t N, int64_t C,
                            double smoothing, const float *x, const int32_t *lab, float *loss, float *probs) {
    prt_attr a = {.type = PRT_ATTR_FLOAT, .f = smoothing};
    prt_shape xs = prt_shape_make(2, (int64_t[]){N, C}), ls = prt_shape_make(2, (int64_t[]){N, 1}),
              os = prt_shape_make(1, (int64_t[]){1});
    prt_tensor tx, tl, tloss, tp;
    prt_tensor_wrap(&tx, (void *)x, PRT_F32, &xs);
    prt_tensor_wrap(&tl, (void *)lab, PRT_I32, &ls);
    prt_tensor_wrap(&tloss, loss, PRT_F32, &os);
    prt_tensor_wrap(&tp, probs, PRT_F32, &xs);
    const prt_tensor *in[2] = {&tx, &tl};
    prt_tensor *out[2] = {&tloss, &tp};
    size_t ws = (size_t)N * sizeof(double);
    void *wsp = workspace ? malloc(ws) : NULL;
    prt_kernel_call c = {.ctx = ctx, .attrs = &a, .n_in = 2, .in = in, .n_out = 2, .out = out, .workspace = wsp,
                         .workspace_size = workspace ? ws : 0, .training = true};
    prt_status st = prt_op_kernel(s, !fast)->run(&c);
    free(wsp);
    return st;
}

/* Tolerance as at the top of the file. */
static void check_softmax_xent(prt_context *ctx, const prt_op_schema *s) {
    static const struct { int64_t n, c; double smoothing, spread; } cases[] = {
        {1, 1, 0.0, 1},   {3, 5, 0.0, 1},    {4, 10, 0.1, 4},  {2, 7, 1.0, 2},
        {8, 1000, 0.0, 3}, {5, 3, 0.2, 200}, /* logits far beyond expf's range: the max subtraction */
        {64, 10, 0.05, 8},
    };
    rng r = {0xc0ffee};
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        int64_t N = cases[t].n, C = cases[t].c;
        double sm = cases[t].smoothing;
        float *x = malloc((size_t)(N * C) * sizeof(float)), *probs = malloc((size_t)(N * C) * sizeof(float));
        double *want_p = malloc((size_t)(N * C) * sizeof(double));
        int32_t *lab = malloc((size_t)N * sizeof(int32_t));
        for (int64_t i = 0; i < N * C; i++) x[i] = (float)((runif(&r) * 2 - 1) * cases[t].spread);
        for (int64_t n = 0; n < N; n++) lab[n] = (int32_t)rint_(&r, 0, C - 1);
        double want_loss = 0;
        for (int64_t n = 0; n < N; n++) {
            double m = -INFINITY, z = 0;
            for (int64_t c = 0; c < C; c++) m = fmax(m, x[n * C + c]);
            for (int64_t c = 0; c < C; c++) z += exp(x[n * C + c] - m);
            for (int64_t c = 0; c < C; c++) {
                double logp = x[n * C + c] - m - log(z);
                double target = (1 - sm) * (c == lab[n]) + sm / (double)C;
                want_p[n * C + c] = exp(logp);
                want_loss -= target * logp;
            }
        }
        want_loss /= (double)N;
        for (int v = 0; v < 3; v++) {
            float loss = NAN;
            char what[128];
            snprintf(what, sizeof what, "softmax_xent %s (case %zu: N %lld, C %lld)",
                     v == 0 ? ".ref" : v == 1 ? ".fast" : ".fast without workspace", t, (long long)N, (long long)C);
            prt_status st = xent_call(ctx, s, v > 0, v < 2, N, C, sm, x, lab, &loss, probs);
            ck_assert_msg(st == PRT_OK, "%s: %s", what, prt_last_error(ctx));
            compare(what, &loss, &want_loss, 1);
            compare(what, probs, want_p, N * C);
        }
        free(x);
        free(probs);
        free(want_p);
        free(lab);
    }
    /* a label outside [0, C) names the sample and the label */
    float x[6] = {0}, loss, probs[6];
    int32_t lab[2] = {1, 3};
    for (int fast = 0; fast < 2; fast++) {
        ck_assert_int_eq(xent_call(ctx, s, fast, true, 2, 3, 0.0, x, lab, &loss, probs), PRT_ERR_INVALID);
        ck_assert_str_eq(prt_last_error(ctx), "softmax_xent: sample 1 has label 3, outside the classes [0, 3)");
    }
    lab[1] = -1;
    ck_assert_int_eq(xent_call(ctx, s, false, true, 2, 3, 0.0, x, lab, &loss, probs), PRT_ERR_INVALID);
    ck_assert_str_eq(prt_last_error(ctx), "softmax_xent: sample 1 has label -1, outside the classes [0, 3)");
}

/* ---- the harness: one test per registered op ------------------------------ */

START_TEST(test_op_forward) {
    prt_context *ctx = tu_context();
    const prt_op_schema *s = prt_op_get(ctx->ops, _i);
    ck_assert_ptr_nonnull(s);
    if (!s->grad && s->grad_note) {
        /* backward-only ops and optimizer updates: the gradient-check harness
         * (test_grad.c) and the optimizer tests (test_optim.c) cover them */
        prt_context_destroy(ctx);
        return;
    }
    if (!strcmp(s->name, "softmax_xent")) {
        check_softmax_xent(ctx, s);
        prt_context_destroy(ctx);
        return;
    }
    static tcase cs[MAX_CASES];
    rng r = {0x9e3779b97f4a7c15ull ^ (uint64_t)_i};
    int n = cases_for(s->name, cs, &r);
    ck_assert_msg(n > 0, "op '%s' has no test cases in test_ops.c: every op must be covered", s->name);
    int checks = 0;
    for (int k = 0; k < n; k++) checks += check_case(ctx, s, &cs[k], 1000 + (uint64_t)k);
    ck_assert_int_ge(checks, 2 * n);
    prt_context_destroy(ctx);
}
END_TEST

/* ---- dropout and batch norm specifics ------------------------------------- */

static void dropout_run(prt_context *ctx, bool fast, const float *x, float *y, int64_t n, double p, uint64_t key,
                        uint64_t step) {
    const prt_op_schema *s = prt_op_find(ctx->ops, "dropout", NULL);
    prt_attr a = {.type = PRT_ATTR_FLOAT, .f = p};
    prt_shape sh = prt_shape_make(1, &n);
    prt_tensor tx, ty;
    prt_tensor_wrap(&tx, (void *)x, PRT_F32, &sh);
    prt_tensor_wrap(&ty, y, PRT_F32, &sh);
    const prt_tensor *in[1] = {&tx};
    prt_tensor *out[1] = {&ty};
    prt_kernel_call c = {.ctx = ctx, .attrs = &a, .n_in = 1, .in = in, .n_out = 1, .out = out, .training = true,
                         .rng_key = key, .step = step};
    ck_assert_int_eq(prt_op_kernel(s, !fast)->run(&c), PRT_OK);
}

START_TEST(test_dropout_reproducible) {
    prt_context *ctx = tu_context();
    const int64_t n = 200000;
    float *x = malloc(n * sizeof(float)), *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
    for (int64_t i = 0; i < n; i++) x[i] = 1.0f;
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    dropout_run(ctx, true, x, a, n, 0.3, 77, 5);
    omp_set_num_threads(threads > 1 ? threads : 2);
    dropout_run(ctx, true, x, b, n, 0.3, 77, 5);
    omp_set_num_threads(threads);
    ck_assert_int_eq(memcmp(a, b, n * sizeof(float)), 0); /* same key and step, any thread count */
    dropout_run(ctx, false, x, b, n, 0.3, 77, 5);
    ck_assert_int_eq(memcmp(a, b, n * sizeof(float)), 0); /* reference and fast agree bit for bit */
    dropout_run(ctx, true, x, b, n, 0.3, 77, 6);
    int64_t differ = 0, zeros = 0;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        differ += a[i] != b[i];
        zeros += a[i] == 0;
        sum += a[i];
        if (!(a[i] == 0 || fabsf(a[i] - 1 / 0.7f) < 1e-6f)) ck_abort_msg("element %lld is %g", (long long)i, a[i]);
    }
    /* another step drops another set: two independent masks differ on
     * 2 p (1-p) = 42% of the elements */
    ck_assert_msg(differ > n * 0.40 && differ < n * 0.44, "differ %lld", (long long)differ);
    ck_assert_msg(zeros > n * 0.295 && zeros < n * 0.305, "zeros %lld", (long long)zeros);
    /* the mean is preserved: E[y] = x; the standard error is sqrt(p/(1-p)/n) = 0.0015 */
    ck_assert_msg(fabs(sum / n - 1.0) < 0.008, "mean %g", sum / n);
    dropout_run(ctx, true, x, b, n, 0.3, 78, 5);
    ck_assert_int_ne(memcmp(a, b, n * sizeof(float)), 0); /* another key, another mask */
    free(x);
    free(a);
    free(b);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(test_batchnorm_training_stats) {
    prt_context *ctx = tu_context();
    const prt_op_schema *s = prt_op_find(ctx->ops, "batchnorm", NULL);
    /* channel c holds the values c + {0, 1, 2, 3} * (c + 1): mean c + 1.5 (c + 1),
     * biased variance 1.25 (c + 1)^2, unbiased 5/3 (c + 1)^2 */
    enum { N = 2, C = 3, S = 2 };
    float x[N * C * S], y[N * C * S], scale[C] = {1, 2, 3}, shift[C] = {0, 1, -1}, mean[C] = {1, 1, 1}, var[C] = {2, 2, 2};
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int i = 0; i < S; i++) x[(n * C + c) * S + i] = (float)(c + (n * S + i) * (c + 1));
    for (int fast = 0; fast < 2; fast++) {
        float m[C], v[C];
        memcpy(m, mean, sizeof m);
        memcpy(v, var, sizeof v);
        prt_attr attrs[2] = {{.type = PRT_ATTR_FLOAT, .f = 1e-5}, {.type = PRT_ATTR_FLOAT, .f = 0.25}};
        prt_shape xs = prt_shape_make(3, (int64_t[]){N, C, S}), cs = prt_shape_make(1, (int64_t[]){C});
        prt_tensor tx, ty, tp[4];
        prt_tensor_wrap(&tx, x, PRT_F32, &xs);
        prt_tensor_wrap(&ty, y, PRT_F32, &xs);
        float *pv[4] = {scale, shift, m, v};
        for (int k = 0; k < 4; k++) prt_tensor_wrap(&tp[k], pv[k], PRT_F32, &cs);
        const prt_tensor *in[5] = {&tx, &tp[0], &tp[1], &tp[2], &tp[3]};
        prt_tensor *out[1] = {&ty};
        prt_kernel_call c = {.ctx = ctx, .attrs = attrs, .n_in = 5, .in = in, .n_out = 1, .out = out, .training = true};
        const prt_kernel *k = prt_op_kernel(s, !fast);
        void *state = NULL;
        if (k->prepare) ck_assert_int_eq(k->prepare(&c, &state), PRT_OK);
        c.state = state;
        ck_assert_msg(k->run(&c) == PRT_OK, "%s", prt_last_error(ctx));
        if (k->release) k->release(state);
        for (int ch = 0; ch < C; ch++) {
            double bm = ch + 1.5 * (ch + 1), bv = 1.25 * (ch + 1) * (ch + 1), uv = 5.0 / 3.0 * (ch + 1) * (ch + 1);
            ck_assert_double_eq_tol(m[ch], 0.75 * 1 + 0.25 * bm, 1e-5);
            ck_assert_double_eq_tol(v[ch], 0.75 * 2 + 0.25 * uv, 1e-4);
            /* normalised with the batch statistics: the first value is 1.5 std below the mean */
            double want = (ch - bm) / sqrt(bv + 1e-5) * scale[ch] + shift[ch];
            ck_assert_double_eq_tol(y[(0 * C + ch) * S + 0], want, 1e-4);
        }
    }
    /* one value per channel cannot be normalised in training */
    float one[3] = {1, 2, 3}, out1[3], sc[3] = {1, 1, 1}, z[3] = {0, 0, 0}, o[3] = {1, 1, 1};
    prt_shape s1 = prt_shape_make(2, (int64_t[]){1, 3}), c1 = prt_shape_make(1, (int64_t[]){3});
    prt_tensor t1, t2, q[4];
    prt_tensor_wrap(&t1, one, PRT_F32, &s1);
    prt_tensor_wrap(&t2, out1, PRT_F32, &s1);
    float *qv[4] = {sc, z, z, o};
    for (int k = 0; k < 4; k++) prt_tensor_wrap(&q[k], qv[k], PRT_F32, &c1);
    const prt_tensor *in[5] = {&t1, &q[0], &q[1], &q[2], &q[3]};
    prt_tensor *out[1] = {&t2};
    prt_attr attrs[2] = {{.type = PRT_ATTR_FLOAT, .f = 1e-5}, {.type = PRT_ATTR_FLOAT, .f = 0.1}};
    prt_kernel_call c = {.ctx = ctx, .attrs = attrs, .n_in = 5, .in = in, .n_out = 1, .out = out, .training = true};
    ck_assert_int_eq(s->ref.run(&c), PRT_ERR_SHAPE);
    ck_assert_str_eq(prt_last_error(ctx),
                     "batchnorm: training needs more than one value per channel (batch 1, spatial size 1)");
    prt_context_destroy(ctx);
}
END_TEST

/* The oneDNN boundary: a kernel given an unsupported tensor says so. */
START_TEST(test_kernel_errors) {
    prt_context *ctx = tu_context();
    const prt_op_schema *s = prt_op_find(ctx->ops, "relu", NULL);
    double d[4] = {0};
    prt_shape sh = prt_shape_make(1, (int64_t[]){4});
    prt_tensor tx, ty;
    prt_tensor_wrap(&tx, d, PRT_F64, &sh);
    prt_tensor_wrap(&ty, d, PRT_F64, &sh);
    const prt_tensor *in[1] = {&tx};
    prt_tensor *out[1] = {&ty};
    prt_kernel_call c = {.ctx = ctx, .n_in = 1, .in = in, .n_out = 1, .out = out};
    ck_assert_int_eq(s->fast.run(&c), PRT_ERR_UNSUPPORTED);
    ck_assert_str_eq(prt_last_error(ctx), "relu kernel: input 0 is f64; CPU kernels compute f32");
    const prt_op_schema *sm = prt_op_find(ctx->ops, "softmax", NULL);
    prt_attr axis = {.type = PRT_ATTR_INT, .n = 1, .i = {0}};
    c.attrs = &axis;
    void *state = NULL;
    ck_assert_int_eq(sm->fast.prepare(&c, &state), PRT_ERR_UNSUPPORTED);
    ck_assert_ptr_null(state);
    /* a kernel prepared for a planned workspace that then gets none */
    const prt_op_schema *conv = prt_op_find(ctx->ops, "conv", NULL);
    tcase cs[1];
    int n = 0;
    CASE("blocked", S(SH4(1, 16, 12, 12)), I1("out", 16), I1("kernel", 3), I1("bias", 0));
    prepared p;
    ck_assert_int_eq(infer(ctx, conv, &cs[0], &p), PRT_OK);
    size_t need = conv->workspace(&p.ic);
    ck_assert_uint_gt(need, 0); /* 3x3 on 12x12 runs blocked: reorder buffers */
    ck_assert_uint_eq(need % 64, 0);
    float *xb = calloc(16 * 144, 4), *wb = calloc(16 * 16 * 9, 4), *yb = calloc(16 * 100, 4);
    prt_tensor cx, cw, cy;
    prt_tensor_wrap(&cx, xb, PRT_F32, &p.in[0]);
    prt_tensor_wrap(&cw, wb, PRT_F32, &p.params[0]);
    prt_tensor_wrap(&cy, yb, PRT_F32, &p.out[0]);
    const prt_tensor *cin[2] = {&cx, &cw};
    prt_tensor *cout[1] = {&cy};
    prt_kernel_call cc = {.ctx = ctx, .attrs = p.attrs, .n_in = 2, .in = cin, .n_out = 1, .out = cout,
                          .workspace_size = need};
    ck_assert_int_eq(conv->fast.prepare(&cc, &state), PRT_OK);
    cc.state = state;
    ck_assert_int_eq(conv->fast.run(&cc), PRT_ERR_INTERNAL);
    ck_assert_msg(strstr(prt_last_error(ctx), "conv kernel: needs a 64-byte aligned workspace of ") != NULL, "%s",
                  prt_last_error(ctx));
    conv->fast.release(state);
    free(xb);
    free(wb);
    free(yb);
    ck_assert_int_eq(prt_dnnl_check(ctx, dnnl_unimplemented, "conv"), PRT_ERR_UNSUPPORTED);
    ck_assert_str_eq(prt_last_error(ctx), "oneDNN conv: unimplemented");
    ck_assert_int_eq(prt_dnnl_check(ctx, dnnl_invalid_arguments, "pooling"), PRT_ERR_BACKEND);
    ck_assert_str_eq(prt_last_error(ctx), "oneDNN pooling: invalid_arguments");
    prt_context_destroy(ctx);
}
END_TEST

/* ---- attributes a tcase cannot hold: strings and up to 8 ints ------------- */

static prt_shape shp(int nd, const int64_t *d) { return prt_shape_make(nd, d); }

static void set_ints(prt_attr *a, int n, const int64_t *v) {
    a->n = n;
    a->set = true;
    for (int i = 0; i < n; i++) a->i[i] = v[i];
}

START_TEST(test_wide_attrs) {
    prt_context *ctx = tu_context();
    const prt_op_schema *pad = prt_op_find(ctx->ops, "pad", NULL), *tp = prt_op_find(ctx->ops, "transpose", NULL),
                        *rs = prt_op_find(ctx->ops, "reshape", NULL);
    int idx = 0;
    tcase tc;
    prt_attr a[4];
    /* pad: every mode on 2-D and 4-D inputs (8 pads), crops mixed in */
    static const struct { const char *mode; int nd; int64_t d[4], pads[8]; } pc[] = {
        {"reflect", 2, {5, 6}, {1, 2, 3, 5}},
        {"edge", 2, {5, 6}, {4, 0, 1, 7}},
        {"constant", 4, {2, 3, 4, 5}, {0, 1, 2, 3, 0, 0, 1, 2}},
        {"reflect", 4, {2, 3, 4, 5}, {0, 0, 3, 4, 0, 0, 2, 1}},
        {"edge", 4, {2, 3, 4, 5}, {0, 1, 2, 2, 0, 1, 3, 1}},
        {"reflect", 4, {2, 3, 4, 5}, {0, 0, -1, 2, 0, 0, 1, -2}},
        {"edge", 4, {1, 2, 1, 1}, {0, 0, 2, 3, 0, 0, 1, 4}},
        {"reflect", 4, {2, 16, 40, 300}, {0, 0, 3, 7, 0, 0, 3, 7}},
        {"constant", 4, {2, 16, 40, 300}, {0, 0, 3, -7, 0, 0, 3, 7}},
    };
    for (size_t k = 0; k < sizeof pc / sizeof pc[0]; k++) {
        int n = 0;
        tcase *cs = &tc;
        prt_shape in = shp(pc[k].nd, pc[k].d);
        add_case(cs, &n, pc[k].mode, 1, &in, NULL, 0);
        prt_attrs_default(pad, a);
        set_ints(&a[prt_op_attr_index(pad, "pads")], 2 * pc[k].nd, pc[k].pads);
        a[prt_op_attr_index(pad, "mode")].s = pc[k].mode;
        a[prt_op_attr_index(pad, "value")].f = -0.75;
        ck_assert_int_ge(check_case_attrs(ctx, pad, &tc, a, 500 + (uint64_t)idx++), 2);
    }
    /* transpose and reshape beyond 4 dims */
    static const struct { int nd; int64_t d[8], perm[8]; } tc5[] = {
        {5, {2, 3, 4, 2, 3}, {0, 4, 1, 3, 2}},
        {6, {2, 1, 3, 2, 2, 3}, {5, 4, 3, 2, 1, 0}},
        {8, {2, 1, 2, 1, 3, 2, 1, 2}, {0, 7, 6, 5, 4, 3, 2, 1}},
    };
    for (size_t k = 0; k < sizeof tc5 / sizeof tc5[0]; k++) {
        int n = 0;
        tcase *cs = &tc;
        prt_shape in = shp(tc5[k].nd, tc5[k].d);
        add_case(cs, &n, "wide transpose", 1, &in, NULL, 0);
        prt_attrs_default(tp, a);
        set_ints(&a[0], tc5[k].nd, tc5[k].perm);
        ck_assert_int_ge(check_case_attrs(ctx, tp, &tc, a, 600 + (uint64_t)k), 2);
    }
    {
        int n = 0;
        tcase *cs = &tc;
        prt_shape in = SH4(2, 3, 4, 10);
        add_case(cs, &n, "wide reshape", 1, &in, NULL, 0);
        prt_attrs_default(rs, a);
        set_ints(&a[0], 8, (const int64_t[]){0, 3, 2, 1, 2, -1, 1, 5});
        ck_assert_int_ge(check_case_attrs(ctx, rs, &tc, a, 700), 2);
    }
    prt_context_destroy(ctx);
}
END_TEST

/* Shape errors of the ONNX-facing ops, word for word. */
static const char *infer_msg(prt_context *ctx, const char *op, int n_in, const prt_shape *in, const prt_attr *attrs) {
    const prt_op_schema *s = prt_op_find(ctx->ops, op, NULL);
    ck_assert_ptr_nonnull(s);
    tcase tc;
    int n = 0;
    add_case(&tc, &n, "err", n_in, in, NULL, 0);
    prepared p;
    infer(ctx, s, &tc, &p);
    if (attrs) memcpy(p.attrs, attrs, (size_t)s->n_attrs * sizeof *attrs);
    prt_status st = s->infer(&p.ic);
    ck_assert_msg(st == PRT_ERR_SHAPE, "%s: status %d, not a shape error", op, st);
    return prt_last_error(ctx);
}

START_TEST(test_onnx_op_shape_errors) {
    prt_context *ctx = tu_context();
    prt_attr a[4];
    const prt_op_schema *s;
    ck_assert_str_eq(infer_msg(ctx, "mul", 2, (prt_shape[]){SH4(2, 3, 4, 5), SH(2, 3, 4, 0, 0)}, NULL),
                     "layer 't' (mul): cannot broadcast [2, 3, 4, 5] with [3, 4]: dimension 2 (counted from the last) "
                     "is 4 against 3");
    ck_assert_str_eq(infer_msg(ctx, "matmul", 2, (prt_shape[]){SH(2, 3, 4, 0, 0), SH(2, 5, 6, 0, 0)}, NULL),
                     "layer 't' (matmul): [3, 4] @ [5, 6]: a has 4 columns but b has 5 rows");
    ck_assert_str_eq(infer_msg(ctx, "matmul", 2, (prt_shape[]){SH(3, 2, 3, 4, 0), SH(3, 3, 4, 5, 0)}, NULL),
                     "layer 't' (matmul): [2, 3, 4] @ [3, 4, 5]: batch dims do not broadcast (2 against 3)");
    ck_assert_str_eq(infer_msg(ctx, "matmul", 2, (prt_shape[]){SH(0, 0, 0, 0, 0), SH(1, 3, 0, 0, 0)}, NULL),
                     "layer 't' (matmul): needs inputs of rank 1 or more, got [] and [3]");
    ck_assert_str_eq(infer_msg(ctx, "global_avgpool", 1, (prt_shape[]){SH(2, 3, 4, 0, 0)}, NULL),
                     "layer 't' (global_avgpool): expects an input [N, C, H, W], got [3, 4]");
    s = prt_op_find(ctx->ops, "transpose", NULL);
    prt_attrs_default(s, a);
    set_ints(&a[0], 3, (const int64_t[]){0, 2, 1});
    ck_assert_str_eq(infer_msg(ctx, "transpose", 1, (prt_shape[]){SH4(2, 3, 4, 5)}, a),
                     "layer 't' (transpose): perm has 3 values but the input has 4 dimensions");
    set_ints(&a[0], 4, (const int64_t[]){0, 2, 2, 1});
    ck_assert_str_eq(infer_msg(ctx, "transpose", 1, (prt_shape[]){SH4(2, 3, 4, 5)}, a),
                     "layer 't' (transpose): perm is not a permutation of 0..3: value 2 at position 2");
    s = prt_op_find(ctx->ops, "reshape", NULL);
    prt_attrs_default(s, a);
    set_ints(&a[0], 2, (const int64_t[]){7, -1});
    ck_assert_str_eq(infer_msg(ctx, "reshape", 1, (prt_shape[]){SH4(2, 3, 4, 5)}, a),
                     "layer 't' (reshape): cannot infer the -1 at position 1: the input [2, 3, 4, 5] has 120 elements, "
                     "not a multiple of 7");
    set_ints(&a[0], 3, (const int64_t[]){-1, 4, -1});
    ck_assert_str_eq(infer_msg(ctx, "reshape", 1, (prt_shape[]){SH4(2, 3, 4, 5)}, a),
                     "layer 't' (reshape): shape has more than one -1 (positions 0 and 2)");
    set_ints(&a[0], 2, (const int64_t[]){2, 61});
    ck_assert_str_eq(infer_msg(ctx, "reshape", 1, (prt_shape[]){SH4(2, 3, 4, 5)}, a),
                     "layer 't' (reshape): cannot reshape [2, 3, 4, 5] (120 elements) to [2, 61] (122 elements)");
    set_ints(&a[0], 3, (const int64_t[]){0, 0, 0});
    ck_assert_str_eq(infer_msg(ctx, "reshape", 1, (prt_shape[]){SH(2, 3, 4, 0, 0)}, a),
                     "layer 't' (reshape): shape value 0 at position 2 copies an input dim, but the input [3, 4] has 2");
    set_ints(&a[0], 2, (const int64_t[]){-2, 6});
    ck_assert_str_eq(infer_msg(ctx, "reshape", 1, (prt_shape[]){SH(2, 3, 4, 0, 0)}, a),
                     "layer 't' (reshape): shape value -2 at position 0 is negative");
    s = prt_op_find(ctx->ops, "pad", NULL);
    prt_attrs_default(s, a);
    set_ints(&a[0], 2, (const int64_t[]){1, 1});
    ck_assert_str_eq(infer_msg(ctx, "pad", 1, (prt_shape[]){SH(2, 3, 4, 0, 0)}, a),
                     "layer 't' (pad): pads has 2 values but the input [3, 4] needs 4 (a begin and an end per dim)");
    set_ints(&a[0], 4, (const int64_t[]){0, -3, 0, -1});
    ck_assert_str_eq(infer_msg(ctx, "pad", 1, (prt_shape[]){SH(2, 3, 4, 0, 0)}, a),
                     "layer 't' (pad): pads -3 and -1 leave dim 1 of the input [3, 4] with 0 elements");
    set_ints(&a[0], 4, (const int64_t[]){0, 4, 0, 1});
    a[1].s = "reflect";
    ck_assert_str_eq(infer_msg(ctx, "pad", 1, (prt_shape[]){SH(2, 3, 4, 0, 0)}, a),
                     "layer 't' (pad): mode reflect pads dim 1 of the input [3, 4] by 4 and 1; each must be below the "
                     "dim's size 4");
    a[1].s = "wrap";
    ck_assert_str_eq(infer_msg(ctx, "pad", 1, (prt_shape[]){SH(2, 3, 4, 0, 0)}, a),
                     "layer 't' (pad): mode 'wrap' is not one of constant, reflect, edge");
    set_ints(&a[0], 4, (const int64_t[]){0, INT64_MAX, 0, 1});
    a[1].s = "constant";
    ck_assert_str_eq(infer_msg(ctx, "pad", 1, (prt_shape[]){SH(2, 3, 4, 0, 0)}, a),
                     "layer 't' (pad): pads 9223372036854775807 and 1 on dim 1 overflow");
    s = prt_op_find(ctx->ops, "clip", NULL);
    prt_attrs_default(s, a);
    a[0].f = NAN;
    ck_assert_str_eq(infer_msg(ctx, "clip", 1, (prt_shape[]){SH(2, 3, 4, 0, 0)}, a),
                     "layer 't' (clip): min and max must be numbers, got nan and inf");
    /* the backward ops check dy against the forward shapes */
    ck_assert_str_eq(infer_msg(ctx, "reduce_to", 2, (prt_shape[]){SH(2, 3, 4, 0, 0), SH(2, 2, 1, 0, 0)}, NULL),
                     "layer 't' (reduce_to): cannot sum [3, 4] down to [2, 1]: [2, 1] does not broadcast to [3, 4]");
    ck_assert_str_eq(infer_msg(ctx, "matmul_bwd_a", 3,
                               (prt_shape[]){SH(2, 3, 4, 0, 0), SH(2, 3, 5, 0, 0), SH(2, 5, 6, 0, 0)}, NULL),
                     "layer 't' (matmul_bwd_a): gradient dy has shape [3, 4] but the product has [3, 6]");
    ck_assert_str_eq(infer_msg(ctx, "sigmoid_bwd", 2, (prt_shape[]){SH(2, 3, 4, 0, 0), SH(2, 3, 5, 0, 0)}, NULL),
                     "layer 't' (sigmoid_bwd): gradient dy has shape [3, 4] but the sigmoid output y has [3, 5]");
    s = prt_op_find(ctx->ops, "pad_bwd", NULL);
    prt_attrs_default(s, a);
    set_ints(&a[0], 4, (const int64_t[]){0, 1, 0, 1});
    ck_assert_str_eq(infer_msg(ctx, "pad_bwd", 2, (prt_shape[]){SH(2, 3, 4, 0, 0), SH(2, 3, 4, 0, 0)}, a),
                     "layer 't' (pad_bwd): gradient dy has shape [3, 4] but padding the input [3, 4] gives [3, 6]");
    prt_context_destroy(ctx);
}
END_TEST

static Suite *suite(int n_ops) {
    Suite *s = suite_create("ops");
    TCase *tc = tcase_create("kernels");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_op_forward, 0, n_ops);
    tcase_add_test(tc, test_dropout_reproducible);
    tcase_add_test(tc, test_batchnorm_training_stats);
    tcase_add_test(tc, test_kernel_errors);
    tcase_add_test(tc, test_wide_attrs);
    tcase_add_test(tc, test_onnx_op_shape_errors);
    suite_add_tcase(s, tc);
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

/* Kernel-level tests of the backward ops of conv, linear and batchnorm
 * (conv_bwd_data, conv_bwd_weight, bias_grad, linear_bwd_data,
 * linear_bwd_weight, batchnorm_bwd): their .ref and .fast kernels (and, for
 * the convolutions, both forced oneDNN layouts and the fast path without a
 * workspace) against float64 implementations written here, on shapes with
 * stride 2, asymmetric padding, dilation, groups, 1x7 / 7x1 kernels, batch 1
 * and odd channel counts; their schemas (shared attribute tables, shape-only
 * inputs, shape errors, FLOPs); and one end-to-end check per gradient builder:
 * a one-layer graph, the builder called directly, compiled and run by the VM,
 * against central finite differences of L = sum(dy * y).
 *
 * Tolerances: kernels |got - want| <= 1e-4 * (|want| + rms(want)) elementwise
 * (float32 sums of up to a few thousand terms against exact float64); finite
 * differences |got - fd| <= r * (|fd| + rms(fd)) with h = 1e-2 on float32
 * values and the loss summed in double: r = 2e-2 for batchnorm (the O(h^2)
 * truncation of its curvature), r = 1e-3 for conv and linear, whose loss is
 * linear in each value so that only float32 rounding of the outputs remains
 * (measured: about 3e-5). */
// labels: unit

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/bwd_util.h"
#include "tests/vm_util.h"
#include "vm/vm_api.h"

#define RTOL 1e-4
#define FD_RTOL 2e-2     /* batchnorm: smooth, O(h^2) truncation */
#define FD_RTOL_LIN 1e-3 /* conv, linear: L is linear in each value, only rounding remains */
#define FD_H 1e-2

/* ---- small helpers ------------------------------------------------------- */

typedef struct rng { uint64_t s; } rng;
static uint64_t rnext(rng *r) {
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return r->s;
}
static double runif(rng *r) { return (double)(rnext(r) >> 11) / 9007199254740992.0 * 2 - 1; }

static int64_t numel(const prt_shape *s) { return prt_shape_count(s); }

static float *randf(rng *r, int64_t n, double lo, double hi) {
    float *p = malloc((size_t)(n ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++) p[i] = (float)(lo + (hi - lo) * (runif(r) + 1) / 2);
    return p;
}

static void compare(const char *what, const float *got, const double *want, int64_t n, double rtol) {
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += want[i] * want[i];
    double rms = n ? sqrt(ss / (double)n) : 0;
    for (int64_t i = 0; i < n; i++) {
        double tol = rtol * (fabs(want[i]) + rms) + 1e-30;
        if (!(fabs((double)got[i] - want[i]) <= tol))
            ck_abort_msg("%s: element %lld is %.9g, want %.9g (tolerance %.3g)", what, (long long)i, got[i], want[i],
                         tol);
    }
}

static void set_ints(const prt_op_schema *s, prt_attr *a, const char *name, int n, const int64_t *v) {
    prt_attr *x = vt_attr(s, a, name);
    x->n = n;
    for (int i = 0; i < n; i++) x->i[i] = v[i];
}

/* ---- running one op ------------------------------------------------------- */

typedef struct opcall {
    const prt_op_schema *s;
    prt_attr attrs[16];
    int n_in;
    prt_shape in[8], out[4], params[PRT_MAX_OP_PARAMS];
    bool present[PRT_MAX_OP_PARAMS];
    bool inference;   /* run the kernel outside training mode */
    prt_infer_ctx ic;
} opcall;

static void op_init(prt_context *ctx, opcall *oc, const char *name) {
    memset(oc, 0, sizeof *oc);
    oc->s = vt_op(ctx, name, NULL);
    vt_attrs_default(oc->s, oc->attrs);
}

static prt_status op_infer(prt_context *ctx, opcall *oc) {
    oc->ic = (prt_infer_ctx){.ctx = ctx, .node_name = "t", .attrs = oc->attrs, .n_in = oc->n_in, .in = oc->in,
                             .in_dtype = PRT_F32, .n_out = oc->s->n_out, .out = oc->out, .out_dtype = PRT_F32,
                             .n_params = oc->s->n_params, .params = oc->params, .param_present = oc->present,
                             .op_name = oc->s->name};
    return oc->s->infer(&oc->ic);
}

enum { RUN_REF, RUN_FAST, RUN_FAST_NO_WS, RUN_FAST_PLAIN, RUN_FAST_BLOCKED, RUN_COUNT };
static const char *run_name[] = {".ref", ".fast", ".fast without workspace", ".fast plain", ".fast blocked"};

/* Runs the op's kernel on the given host buffers; outputs start as NaN so an
 * element a kernel forgets to write fails the comparison. */
static void op_run(prt_context *ctx, opcall *oc, float **in, float **out, int mode) {
    prt_tensor ti[8], to[4];
    const prt_tensor *pin[8];
    prt_tensor *pout[4];
    for (int k = 0; k < oc->n_in; k++) {
        prt_tensor_wrap(&ti[k], in[k], PRT_F32, &oc->in[k]);
        pin[k] = &ti[k];
    }
    for (int k = 0; k < oc->s->n_out; k++) {
        for (int64_t i = 0; i < numel(&oc->out[k]); i++) out[k][i] = NAN;
        prt_tensor_wrap(&to[k], out[k], PRT_F32, &oc->out[k]);
        pout[k] = &to[k];
    }
    size_t ws = mode != RUN_REF && mode != RUN_FAST_NO_WS && oc->s->workspace ? oc->s->workspace(&oc->ic) : 0;
    void *wsp = ws ? aligned_alloc(64, (ws + 63) & ~(size_t)63) : NULL;
    prt_kernel_call c = {.ctx = ctx, .attrs = oc->attrs, .n_in = oc->n_in, .in = pin, .n_out = oc->s->n_out,
                         .out = pout, .workspace = wsp, .workspace_size = ws, .training = !oc->inference};
    const prt_kernel *k = prt_op_kernel(oc->s, mode == RUN_REF);
    void *state = NULL;
    prt_status st = PRT_OK;
    if (mode == RUN_FAST_PLAIN || mode == RUN_FAST_BLOCKED) {
        prt_conv_bwd_kind kind = !strcmp(oc->s->name, "conv_bwd_data") ? PRT_CONV_BWD_DATA : PRT_CONV_BWD_WEIGHT;
        st = prt_conv_bwd_prepare_layout(&c, kind, mode == RUN_FAST_PLAIN ? PRT_CONV_PLAIN : PRT_CONV_BLOCKED, &state);
    } else if (k->prepare) {
        st = k->prepare(&c, &state);
    }
    ck_assert_msg(st == PRT_OK, "%s prepare: %s", oc->s->name, prt_last_error(ctx));
    c.state = state;
    st = k->run(&c);
    ck_assert_msg(st == PRT_OK, "%s run: %s", oc->s->name, prt_last_error(ctx));
    if (k->release) k->release(state);
    free(wsp);
}

/* ---- conv: float64 references ------------------------------------------ */

typedef struct conv_case {
    const char *what;
    int64_t n, c, h, w, o, kh, kw, sh, sw, pad[4], dh, dw, g;
} conv_case;

static const conv_case conv_cases[] = {
    {"3x3 pad 1", 2, 4, 7, 7, 5, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 1},
    {"3x3 stride 2, asymmetric pad", 2, 3, 9, 8, 4, 3, 3, 2, 2, {0, 1, 1, 0}, 1, 1, 1},
    {"3x3 dilation 2", 1, 3, 9, 9, 2, 3, 3, 1, 1, {2, 2, 2, 2}, 2, 2, 1},
    {"groups 2", 2, 6, 6, 6, 4, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 2},
    {"depthwise, 5 channels", 2, 5, 6, 6, 5, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 5},
    {"1x7", 2, 8, 9, 9, 6, 1, 7, 1, 1, {0, 3, 0, 3}, 1, 1, 1},
    {"7x1, batch 1", 1, 6, 9, 9, 8, 7, 1, 1, 1, {3, 0, 3, 0}, 1, 1, 1},
    {"1x1 stride 2 (odd rows get no gradient)", 3, 7, 8, 8, 9, 1, 1, 2, 2, {0, 0, 0, 0}, 1, 1, 1},
    {"3x2, stride [1,2], dilation [2,1], odd channels", 1, 5, 10, 11, 7, 3, 2, 1, 2, {1, 0, 2, 1}, 2, 1, 1},
    {"5x5 stride 3, groups 3", 2, 9, 13, 12, 6, 5, 5, 3, 3, {2, 1, 0, 2}, 1, 1, 3},
    {"3x3 16->16 20x20 (blocked by choice)", 2, 16, 20, 20, 16, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 1},
    {"1x1 32->24 (plain by choice)", 2, 32, 5, 5, 24, 1, 1, 1, 1, {0, 0, 0, 0}, 1, 1, 1},
};

static void conv_attrs_of(const prt_op_schema *s, prt_attr *a, const conv_case *k) {
    vt_attrs_default(s, a);
    vt_set_int(s, a, "out", k->o);
    set_ints(s, a, "kernel", 2, (int64_t[]){k->kh, k->kw});
    set_ints(s, a, "stride", 2, (int64_t[]){k->sh, k->sw});
    set_ints(s, a, "pad", 4, k->pad);
    set_ints(s, a, "dilation", 2, (int64_t[]){k->dh, k->dw});
    vt_set_int(s, a, "groups", k->g);
}

static int64_t out_extent(int64_t in, int64_t lo, int64_t hi, int64_t k, int64_t s, int64_t d) {
    return (in + lo + hi - d * (k - 1) - 1) / s + 1;
}

/* dx as the transposed correlation, gathered per input pixel: the output
 * positions whose window touches (iy, ix) through kernel tap (ky, kx) are
 * oy = (iy + pad - ky*dh) / sh when that divides exactly. */
static void conv_dx64(const conv_case *k, const float *dy, const float *w, double *dx) {
    int64_t oh = out_extent(k->h, k->pad[0], k->pad[2], k->kh, k->sh, k->dh);
    int64_t ow = out_extent(k->w, k->pad[1], k->pad[3], k->kw, k->sw, k->dw);
    int64_t cg = k->c / k->g, og = k->o / k->g;
    for (int64_t n = 0; n < k->n; n++)
        for (int64_t c = 0; c < k->c; c++)
            for (int64_t iy = 0; iy < k->h; iy++)
                for (int64_t ix = 0; ix < k->w; ix++) {
                    double s = 0;
                    int64_t grp = c / cg;
                    for (int64_t o = grp * og; o < (grp + 1) * og; o++)
                        for (int64_t ky = 0; ky < k->kh; ky++) {
                            int64_t ty = iy + k->pad[0] - ky * k->dh;
                            if (ty < 0 || ty % k->sh || ty / k->sh >= oh) continue;
                            for (int64_t kx = 0; kx < k->kw; kx++) {
                                int64_t tx = ix + k->pad[1] - kx * k->dw;
                                if (tx < 0 || tx % k->sw || tx / k->sw >= ow) continue;
                                s += (double)dy[((n * k->o + o) * oh + ty / k->sh) * ow + tx / k->sw] *
                                     (double)w[((o * cg + (c - grp * cg)) * k->kh + ky) * k->kw + kx];
                            }
                        }
                    dx[((n * k->c + c) * k->h + iy) * k->w + ix] = s;
                }
}

static void conv_dw64(const conv_case *k, const float *dy, const float *x, double *dw) {
    int64_t oh = out_extent(k->h, k->pad[0], k->pad[2], k->kh, k->sh, k->dh);
    int64_t ow = out_extent(k->w, k->pad[1], k->pad[3], k->kw, k->sw, k->dw);
    int64_t cg = k->c / k->g, og = k->o / k->g;
    for (int64_t o = 0; o < k->o; o++)
        for (int64_t ci = 0; ci < cg; ci++)
            for (int64_t ky = 0; ky < k->kh; ky++)
                for (int64_t kx = 0; kx < k->kw; kx++) {
                    double s = 0;
                    int64_t c = (o / og) * cg + ci;
                    for (int64_t n = 0; n < k->n; n++)
                        for (int64_t oy = 0; oy < oh; oy++)
                            for (int64_t ox = 0; ox < ow; ox++) {
                                int64_t iy = oy * k->sh - k->pad[0] + ky * k->dh;
                                int64_t ix = ox * k->sw - k->pad[1] + kx * k->dw;
                                if (iy < 0 || iy >= k->h || ix < 0 || ix >= k->w) continue;
                                s += (double)dy[((n * k->o + o) * oh + oy) * ow + ox] *
                                     (double)x[((n * k->c + c) * k->h + iy) * k->w + ix];
                            }
                    dw[((o * cg + ci) * k->kh + ky) * k->kw + kx] = s;
                }
}

START_TEST(test_conv_bwd_kernels) {
    prt_context *ctx = tu_context();
    const conv_case *k = &conv_cases[_i];
    rng r = {0x5eed0000ull + (uint64_t)_i * 7919};
    prt_shape xs = prt_shape4(k->n, k->c, k->h, k->w);
    prt_shape ws = prt_shape4(k->o, k->c / k->g, k->kh, k->kw);
    prt_shape ys = prt_shape4(k->n, k->o, out_extent(k->h, k->pad[0], k->pad[2], k->kh, k->sh, k->dh),
                              out_extent(k->w, k->pad[1], k->pad[3], k->kw, k->sw, k->dw));
    float *x = randf(&r, numel(&xs), -1, 1), *w = randf(&r, numel(&ws), -1, 1), *dy = randf(&r, numel(&ys), -1, 1);
    double *dx64 = malloc((size_t)numel(&xs) * sizeof(double)), *dw64 = malloc((size_t)numel(&ws) * sizeof(double));
    conv_dx64(k, dy, w, dx64);
    conv_dw64(k, dy, x, dw64);
    float *got = malloc((size_t)(numel(&xs) > numel(&ws) ? numel(&xs) : numel(&ws)) * sizeof(float));
    for (int dir = 0; dir < 2; dir++) {
        opcall oc;
        op_init(ctx, &oc, dir == 0 ? "conv_bwd_data" : "conv_bwd_weight");
        conv_attrs_of(oc.s, oc.attrs, k);
        oc.n_in = 3;
        oc.in[0] = ys;
        oc.in[1] = dir == 0 ? ws : xs;
        oc.in[2] = dir == 0 ? xs : ws;
        ck_assert_msg(op_infer(ctx, &oc) == PRT_OK, "%s: %s", k->what, prt_last_error(ctx));
        ck_assert(prt_shape_eq(&oc.out[0], dir == 0 ? &xs : &ws));
        float *in[3] = {dy, dir == 0 ? w : x, dir == 0 ? x : w};
        for (int mode = 0; mode < RUN_COUNT; mode++) {
            op_run(ctx, &oc, in, &got, mode);
            char what[256];
            snprintf(what, sizeof what, "%s %s (case '%s')", oc.s->name, run_name[mode], k->what);
            compare(what, got, dir == 0 ? dx64 : dw64, numel(&oc.out[0]), RTOL);
        }
    }
    free(x), free(w), free(dy), free(dx64), free(dw64), free(got);
    prt_context_destroy(ctx);
}
END_TEST

/* The layout the fast path picks per direction (the measured rule in
 * ops/conv_bwd.c), and that it runs oneDNN's optimised kernels, not its
 * reference. Prepared only: the tensors need no storage. */
START_TEST(test_conv_bwd_impl) {
    prt_context *ctx = tu_context();
    const struct { conv_case k; bool blocked[2]; } t[] = {
        {{"3x3 64->64 28x28", 2, 64, 28, 28, 64, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 1}, {true, true}},
        {{"3x3 256->256 14x14", 2, 256, 14, 14, 256, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 1}, {true, false}},
        {{"3x3/2 256->288 17x17", 2, 256, 17, 17, 288, 3, 3, 2, 2, {0, 0, 0, 0}, 1, 1, 1}, {false, false}},
        {{"1x1 2048->192 8x8", 2, 2048, 8, 8, 192, 1, 1, 1, 1, {0, 0, 0, 0}, 1, 1, 1}, {true, false}},
        {{"1x1 384->32 35x35", 2, 384, 35, 35, 32, 1, 1, 1, 1, {0, 0, 0, 0}, 1, 1, 1}, {false, false}},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        const conv_case *k = &t[i].k;
        prt_shape xs = prt_shape4(k->n, k->c, k->h, k->w), ws = prt_shape4(k->o, k->c, k->kh, k->kw);
        prt_shape ys = prt_shape4(k->n, k->o, out_extent(k->h, k->pad[0], k->pad[2], k->kh, k->sh, k->dh),
                                  out_extent(k->w, k->pad[1], k->pad[3], k->kw, k->sw, k->dw));
        for (int dir = 0; dir < 2; dir++) {
            opcall oc;
            op_init(ctx, &oc, dir == 0 ? "conv_bwd_data" : "conv_bwd_weight");
            conv_attrs_of(oc.s, oc.attrs, k);
            oc.n_in = 3;
            oc.in[0] = ys;
            oc.in[1] = dir == 0 ? ws : xs;
            oc.in[2] = dir == 0 ? xs : ws;
            ck_assert_int_eq(op_infer(ctx, &oc), PRT_OK);
            prt_tensor tt[3], o;
            const prt_tensor *pin[3];
            prt_tensor *pout[1] = {&o};
            for (int j = 0; j < 3; j++) {
                prt_tensor_wrap(&tt[j], NULL, PRT_F32, &oc.in[j]);
                pin[j] = &tt[j];
            }
            prt_tensor_wrap(&o, NULL, PRT_F32, &oc.out[0]);
            prt_kernel_call c = {.ctx = ctx, .attrs = oc.attrs, .n_in = 3, .in = pin, .n_out = 1, .out = pout};
            void *state;
            ck_assert_msg(oc.s->fast.prepare(&c, &state) == PRT_OK, "%s", prt_last_error(ctx));
            const prt_dnnl_prim *s = state;
            ck_assert_msg(strncmp(s->impl, "ref", 3) != 0, "%s %s runs oneDNN's reference kernel", oc.s->name, k->what);
            ck_assert_msg(s->reordered == t[i].blocked[dir], "%s %s: expected the %s layout, got %s", oc.s->name,
                          k->what, t[i].blocked[dir] ? "blocked" : "plain", s->impl);
            oc.s->fast.release(state);
        }
    }
    prt_context_destroy(ctx);
}
END_TEST

/* ---- bias_grad ---------------------------------------------------------- */

START_TEST(test_bias_grad_kernels) {
    prt_context *ctx = tu_context();
    const prt_shape shapes[] = {
        prt_shape4(2, 5, 4, 3), prt_shape_make(2, (int64_t[]){7, 3}), prt_shape_make(5, (int64_t[]){1, 4, 2, 2, 3}),
        prt_shape_make(3, (int64_t[]){3, 6, 1}), prt_shape4(4, 21, 40, 40), /* large: the parallel path */
    };
    rng r = {0xb1a5};
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        opcall oc;
        op_init(ctx, &oc, "bias_grad");
        oc.n_in = 1;
        oc.in[0] = shapes[t];
        ck_assert_int_eq(op_infer(ctx, &oc), PRT_OK);
        int64_t n = shapes[t].d[0], ch = shapes[t].d[1], sp = numel(&shapes[t]) / (n * ch);
        ck_assert(oc.out[0].ndim == 1 && oc.out[0].d[0] == ch);
        float *dy = randf(&r, numel(&shapes[t]), -1, 1), *got = malloc((size_t)ch * sizeof(float));
        double *want = calloc((size_t)ch, sizeof(double));
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < ch; k++)
                for (int64_t j = 0; j < sp; j++) want[k] += dy[(i * ch + k) * sp + j];
        for (int mode = RUN_REF; mode <= RUN_FAST; mode++) {
            op_run(ctx, &oc, &dy, &got, mode);
            char what[128];
            snprintf(what, sizeof what, "bias_grad %s (shape %zu)", run_name[mode], t);
            compare(what, got, want, ch, RTOL);
        }
        free(dy), free(got), free(want);
    }
    prt_context_destroy(ctx);
}
END_TEST

/* ---- linear ------------------------------------------------------------- */

START_TEST(test_linear_bwd_kernels) {
    prt_context *ctx = tu_context();
    const struct { prt_shape x; int64_t out; } cases[] = {
        {prt_shape_make(2, (int64_t[]){5, 7}), 3},
        {prt_shape_make(2, (int64_t[]){1, 12}), 4},
        {prt_shape4(2, 3, 4, 5), 6}, /* flattened to [2, 60] */
        {prt_shape_make(2, (int64_t[]){64, 300}), 10},
        {prt_shape_make(3, (int64_t[]){3, 1, 9}), 1},
    };
    rng r = {0x11ea5};
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const prt_shape *xs = &cases[t].x;
        int64_t n = xs->d[0], kk = numel(xs) / n, out = cases[t].out;
        prt_shape ws = prt_shape_make(2, (int64_t[]){out, kk}), ys = prt_shape_make(2, (int64_t[]){n, out});
        float *x = randf(&r, numel(xs), -1, 1), *w = randf(&r, numel(&ws), -1, 1), *dy = randf(&r, numel(&ys), -1, 1);
        double *dx = calloc((size_t)numel(xs), sizeof(double)), *dw = calloc((size_t)numel(&ws), sizeof(double));
        for (int64_t i = 0; i < n; i++)
            for (int64_t o = 0; o < out; o++)
                for (int64_t j = 0; j < kk; j++) {
                    dx[i * kk + j] += (double)dy[i * out + o] * w[o * kk + j];
                    dw[o * kk + j] += (double)dy[i * out + o] * x[i * kk + j];
                }
        float *got = malloc((size_t)(numel(xs) > numel(&ws) ? numel(xs) : numel(&ws)) * sizeof(float));
        for (int dir = 0; dir < 2; dir++) {
            opcall oc;
            op_init(ctx, &oc, dir == 0 ? "linear_bwd_data" : "linear_bwd_weight");
            vt_set_int(oc.s, oc.attrs, "out", out);
            oc.n_in = dir == 0 ? 3 : 2;
            oc.in[0] = ys;
            oc.in[1] = dir == 0 ? ws : *xs;
            oc.in[2] = *xs;
            ck_assert_msg(op_infer(ctx, &oc) == PRT_OK, "%s", prt_last_error(ctx));
            ck_assert(prt_shape_eq(&oc.out[0], dir == 0 ? xs : &ws));
            float *in[3] = {dy, dir == 0 ? w : x, x};
            for (int mode = RUN_REF; mode <= RUN_FAST_NO_WS; mode++) {
                op_run(ctx, &oc, in, &got, mode);
                char what[128];
                snprintf(what, sizeof what, "%s %s (case %zu)", oc.s->name, run_name[mode], t);
                compare(what, got, dir == 0 ? dx : dw, numel(&oc.out[0]), RTOL);
            }
        }
        free(x), free(w), free(dy), free(dx), free(dw), free(got);
    }
    prt_context_destroy(ctx);
}
END_TEST

/* ---- batchnorm ---------------------------------------------------------- */

/* The gradient in double. Training mode (rmean NULL): statistics over the
 * M = N*S values of each channel, dx through the per-channel Jacobian
 * scale*rstd*(I - 1/M - xh xh^T / M) applied column by column (for large M,
 * in its factored form). Otherwise the running statistics, constants:
 * dx = scale*rstd*dy. */
static void bn_bwd64(const prt_shape *xs, const float *dy, const float *x, const float *scale, const float *rmean,
                     const float *rvar, double eps, double *dx, double *dscale, double *dshift) {
    int64_t n = xs->d[0], ch = xs->d[1], sp = numel(xs) / (n * ch), m = n * sp;
    double *xh = malloc((size_t)m * sizeof(double)), *g = malloc((size_t)m * sizeof(double));
    for (int64_t k = 0; k < ch; k++) {
        double mean = 0, var = 0;
        for (int64_t e = 0; e < m; e++) mean += x[((e / sp) * ch + k) * sp + e % sp];
        mean /= (double)m;
        for (int64_t e = 0; e < m; e++) {
            double d = x[((e / sp) * ch + k) * sp + e % sp] - mean;
            var += d * d;
        }
        var /= (double)m;
        if (rmean) {
            mean = rmean[k];
            var = rvar[k];
        }
        double rstd = 1 / sqrt(var + eps);
        for (int64_t e = 0; e < m; e++) {
            xh[e] = (x[((e / sp) * ch + k) * sp + e % sp] - mean) * rstd;
            g[e] = dy[((e / sp) * ch + k) * sp + e % sp];
        }
        dscale[k] = dshift[k] = 0;
        for (int64_t e = 0; e < m; e++) {
            dshift[k] += g[e];
            dscale[k] += g[e] * xh[e];
        }
        for (int64_t i = 0; i < m; i++) {
            double s = 0;
            if (rmean)
                s = g[i];
            else if (m <= 1024)
                for (int64_t j = 0; j < m; j++) s += g[j] * ((i == j) - 1.0 / (double)m - xh[i] * xh[j] / (double)m);
            else
                s = g[i] - dshift[k] / (double)m - xh[i] * dscale[k] / (double)m;
            dx[((i / sp) * ch + k) * sp + i % sp] = scale[k] * rstd * s;
        }
    }
    free(xh), free(g);
}

START_TEST(test_batchnorm_bwd_kernels) {
    prt_context *ctx = tu_context();
    const struct { prt_shape x; double eps, offset; } cases[] = {
        {prt_shape4(4, 3, 5, 5), 1e-5, 0},
        {prt_shape4(1, 6, 3, 3), 1e-5, 0}, /* batch 1 */
        {prt_shape_make(2, (int64_t[]){8, 5}), 1e-3, 0},
        {prt_shape_make(3, (int64_t[]){2, 7, 4}), 1e-5, 0},
        {prt_shape4(2, 5, 6, 6), 1e-5, 100}, /* a large mean: the statistics must not cancel */
        {prt_shape4(4, 6, 48, 48), 1e-5, 0},  /* large: the parallel statistics */
    };
    rng r = {0xba7c4};
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const prt_shape *xs = &cases[t].x;
        int64_t ch = xs->d[1], m = numel(xs);
        float *x = randf(&r, m, -1, 1), *dy = randf(&r, m, -1, 1), *scale = randf(&r, ch, -1.5, 1.5);
        for (int64_t i = 0; i < m; i++) x[i] = x[i] * (float)(1 + i % 3) + (float)cases[t].offset;
        /* running statistics near, not at, the batch's (they would lag in training) */
        float *rmean = randf(&r, ch, -0.3 + cases[t].offset, 0.3 + cases[t].offset), *rvar = randf(&r, ch, 0.5, 4);
        double *dx = malloc((size_t)m * sizeof(double)), *ds = malloc((size_t)ch * sizeof(double)),
               *db = malloc((size_t)ch * sizeof(double));
        float *outs[3] = {malloc((size_t)m * sizeof(float)), malloc((size_t)ch * sizeof(float)),
                          malloc((size_t)ch * sizeof(float))};
        /* training with 3 inputs, training with 5 (the running statistics
         * ignored), outside training with 5 */
        for (int variant = 0; variant < 3; variant++) {
            bool inference = variant == 2;
            bn_bwd64(xs, dy, x, scale, inference ? rmean : NULL, rvar, cases[t].eps, dx, ds, db);
            opcall oc;
            op_init(ctx, &oc, "batchnorm_bwd");
            vt_set_float(oc.s, oc.attrs, "eps", cases[t].eps);
            oc.n_in = variant == 0 ? 3 : 5;
            oc.inference = inference;
            oc.in[0] = oc.in[1] = *xs;
            oc.in[2] = oc.in[3] = oc.in[4] = prt_shape_make(1, &ch);
            ck_assert_msg(op_infer(ctx, &oc) == PRT_OK, "%s", prt_last_error(ctx));
            ck_assert(prt_shape_eq(&oc.out[0], xs) && prt_shape_eq(&oc.out[1], &oc.in[2]) &&
                      prt_shape_eq(&oc.out[2], &oc.in[2]));
            float *in[5] = {dy, x, scale, rmean, rvar};
            for (int mode = RUN_REF; mode <= RUN_FAST_NO_WS; mode++) {
                op_run(ctx, &oc, in, outs, mode);
                char what[160];
                const char *names[3] = {"dx", "dscale", "dshift"};
                double *want[3] = {dx, ds, db};
                for (int q = 0; q < 3; q++) {
                    snprintf(what, sizeof what, "batchnorm_bwd %s %s (case %zu, %d inputs, %s)", run_name[mode],
                             names[q], t, oc.n_in, inference ? "inference" : "training");
                    compare(what, outs[q], want[q], q == 0 ? m : ch, RTOL);
                }
            }
        }
        for (int q = 0; q < 3; q++) free(outs[q]);
        free(x), free(dy), free(scale), free(rmean), free(rvar), free(dx), free(ds), free(db);
    }
    prt_context_destroy(ctx);
}
END_TEST

/* A node without the running statistics cannot give the inference-mode
 * gradient: both kernels say so instead of silently using batch statistics. */
START_TEST(test_batchnorm_bwd_needs_stats) {
    prt_context *ctx = tu_context();
    opcall oc;
    op_init(ctx, &oc, "batchnorm_bwd");
    ck_assert_int_eq(oc.s->min_in, 3);
    ck_assert_int_eq(oc.s->max_in, 5);
    oc.n_in = 3;
    oc.in[0] = oc.in[1] = prt_shape4(2, 3, 2, 2);
    oc.in[2] = prt_shape_make(1, (int64_t[]){3});
    ck_assert_int_eq(op_infer(ctx, &oc), PRT_OK);
    float buf[3][24] = {{0}}, out[3][24];
    prt_tensor ti[3], to[3];
    const prt_tensor *pin[3];
    prt_tensor *pout[3];
    for (int k = 0; k < 3; k++) {
        prt_tensor_wrap(&ti[k], buf[k], PRT_F32, &oc.in[k]);
        prt_tensor_wrap(&to[k], out[k], PRT_F32, &oc.out[k]);
        pin[k] = &ti[k];
        pout[k] = &to[k];
    }
    prt_kernel_call c = {.ctx = ctx, .attrs = oc.attrs, .n_in = 3, .in = pin, .n_out = 3, .out = pout, .training = false};
    const char *msg = "batchnorm_bwd: the gradient outside training needs the running mean and variance (inputs 4 and 5)";
    ck_assert_int_eq(oc.s->ref.run(&c), PRT_ERR_INVALID);
    ck_assert_str_eq(prt_last_error(ctx), msg);
    void *state = NULL;
    ck_assert_int_eq(oc.s->fast.prepare(&c, &state), PRT_ERR_INVALID); /* already when the VM prepares */
    ck_assert_str_eq(prt_last_error(ctx), msg);
    c.training = true;
    ck_assert_int_eq(oc.s->fast.prepare(&c, &state), PRT_OK);
    c.state = state;
    c.training = false;
    ck_assert_int_eq(oc.s->fast.run(&c), PRT_ERR_INVALID);
    ck_assert_str_eq(prt_last_error(ctx), msg);
    oc.s->fast.release(state);
    prt_context_destroy(ctx);
}
END_TEST

/* ---- schemas ------------------------------------------------------------ */

START_TEST(test_schemas) {
    prt_context *ctx = tu_context();
    const struct { const char *op, *fwd; uint32_t shape_only; int n_out; } t[] = {
        {"conv_bwd_data", "conv", 1u << 2, 1},     {"conv_bwd_weight", "conv", 1u << 2, 1},
        {"linear_bwd_data", "linear", 1u << 2, 1}, {"linear_bwd_weight", "linear", 0, 1},
        {"batchnorm_bwd", "batchnorm", 0, 3},      {"bias_grad", NULL, 0, 1},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        const prt_op_schema *s = vt_op(ctx, t[i].op, NULL);
        ck_assert_msg(s->grad == NULL && s->grad_note && !strcmp(s->grad_note, "backward-only op"), "%s", t[i].op);
        ck_assert_msg(s->shape_only == t[i].shape_only, "%s shape_only %u", t[i].op, s->shape_only);
        ck_assert_int_eq(s->n_out, t[i].n_out);
        ck_assert_int_eq(s->n_params, 0);
        ck_assert_ptr_nonnull(s->ref.run);
        ck_assert_ptr_nonnull(s->fast.run);
        if (t[i].fwd) {
            const prt_op_schema *f = vt_op(ctx, t[i].fwd, NULL);
            /* prt_grad_emit copies the forward node's attributes: same table */
            ck_assert_ptr_eq(s->attrs, f->attrs);
            ck_assert_int_eq(s->n_attrs, f->n_attrs);
            ck_assert_ptr_nonnull(f->grad);
        }
    }
    /* the attribute indices of ops/bwd_util.h follow the tables */
    const prt_op_schema *conv = vt_op(ctx, "conv", NULL), *lin = vt_op(ctx, "linear", NULL),
                        *bn = vt_op(ctx, "batchnorm", NULL);
    ck_assert_int_eq(prt_op_attr_index(conv, "out"), PRT_CONV_A_OUT);
    ck_assert_int_eq(prt_op_attr_index(conv, "kernel"), PRT_CONV_A_KERNEL);
    ck_assert_int_eq(prt_op_attr_index(conv, "stride"), PRT_CONV_A_STRIDE);
    ck_assert_int_eq(prt_op_attr_index(conv, "pad"), PRT_CONV_A_PAD);
    ck_assert_int_eq(prt_op_attr_index(conv, "dilation"), PRT_CONV_A_DILATION);
    ck_assert_int_eq(prt_op_attr_index(conv, "groups"), PRT_CONV_A_GROUPS);
    ck_assert_int_eq(prt_op_attr_index(conv, "bias"), PRT_CONV_A_BIAS);
    ck_assert_int_eq(conv->n_attrs, PRT_CONV_N_ATTRS);
    ck_assert_int_eq(prt_op_attr_index(lin, "out"), PRT_LINEAR_A_OUT);
    ck_assert_int_eq(prt_op_attr_index(lin, "bias"), PRT_LINEAR_A_BIAS);
    ck_assert_int_eq(lin->n_attrs, PRT_LINEAR_N_ATTRS);
    ck_assert_int_eq(prt_op_attr_index(bn, "eps"), PRT_BN_A_EPS);
    ck_assert_int_eq(prt_op_attr_index(bn, "momentum"), PRT_BN_A_MOMENTUM);
    ck_assert_int_eq(bn->n_attrs, PRT_BATCHNORM_N_ATTRS);
    prt_context_destroy(ctx);
}
END_TEST

/* Both conv directions cost what the forward conv without bias costs; linear
 * likewise. */
START_TEST(test_flops) {
    prt_context *ctx = tu_context();
    const conv_case *k = &conv_cases[9]; /* groups 3, stride 3 */
    opcall f, d, w;
    op_init(ctx, &f, "conv");
    conv_attrs_of(f.s, f.attrs, k);
    vt_set_bool(f.s, f.attrs, "bias", false);
    f.n_in = 1;
    f.in[0] = prt_shape4(k->n, k->c, k->h, k->w);
    ck_assert_int_eq(op_infer(ctx, &f), PRT_OK);
    int64_t want = f.s->flops(&f.ic);
    ck_assert_int_gt(want, 0);
    op_init(ctx, &d, "conv_bwd_data");
    op_init(ctx, &w, "conv_bwd_weight");
    conv_attrs_of(d.s, d.attrs, k);
    conv_attrs_of(w.s, w.attrs, k);
    d.n_in = w.n_in = 3;
    d.in[0] = w.in[0] = f.out[0];
    d.in[1] = w.in[2] = f.params[0];
    d.in[2] = w.in[1] = f.in[0];
    ck_assert_int_eq(op_infer(ctx, &d), PRT_OK);
    ck_assert_int_eq(op_infer(ctx, &w), PRT_OK);
    ck_assert_int_eq(d.s->flops(&d.ic), want);
    ck_assert_int_eq(w.s->flops(&w.ic), want);

    opcall ld;
    op_init(ctx, &ld, "linear_bwd_data");
    vt_set_int(ld.s, ld.attrs, "out", 10);
    ld.n_in = 3;
    ld.in[0] = prt_shape_make(2, (int64_t[]){8, 10});
    ld.in[1] = prt_shape_make(2, (int64_t[]){10, 60});
    ld.in[2] = prt_shape4(8, 3, 4, 5);
    ck_assert_int_eq(op_infer(ctx, &ld), PRT_OK);
    ck_assert_int_eq(ld.s->flops(&ld.ic), 2 * 8 * 10 * 60);
    prt_context_destroy(ctx);
}
END_TEST

/* Shape errors name the layer, the op and both shapes. */
START_TEST(test_shape_errors) {
    prt_context *ctx = tu_context();
    opcall oc;
    conv_case k = {"", 2, 3, 8, 8, 4, 3, 3, 1, 1, {0, 0, 0, 0}, 1, 1, 1};

    op_init(ctx, &oc, "conv_bwd_data");
    conv_attrs_of(oc.s, oc.attrs, &k);
    oc.n_in = 3;
    oc.in[0] = prt_shape4(2, 4, 5, 5);
    oc.in[1] = prt_shape4(4, 3, 3, 3);
    oc.in[2] = prt_shape4(2, 3, 8, 8);
    ck_assert_int_eq(op_infer(ctx, &oc), PRT_ERR_SHAPE);
    ck_assert_str_eq(prt_last_error(ctx), "layer 't' (conv_bwd_data): dy (the gradient of the conv output) is "
                                          "[2, 4, 5, 5], expected [2, 4, 6, 6] for the input [2, 3, 8, 8]");

    op_init(ctx, &oc, "conv_bwd_weight");
    conv_attrs_of(oc.s, oc.attrs, &k);
    oc.n_in = 3;
    oc.in[0] = prt_shape4(2, 4, 6, 6);
    oc.in[1] = prt_shape4(2, 3, 8, 8);
    oc.in[2] = prt_shape4(4, 3, 3, 1);
    ck_assert_int_eq(op_infer(ctx, &oc), PRT_ERR_SHAPE);
    ck_assert_str_eq(prt_last_error(ctx), "layer 't' (conv_bwd_weight): the weight is [4, 3, 3, 1], expected "
                                          "[4, 3, 3, 3] for the input [2, 3, 8, 8]");

    /* x itself goes through conv's checks */
    oc.in[1] = prt_shape_make(2, (int64_t[]){2, 3});
    ck_assert_int_eq(op_infer(ctx, &oc), PRT_ERR_SHAPE);
    ck_assert_str_eq(prt_last_error(ctx), "layer 't' (conv_bwd_weight): expects a rank-4 input [N, C, H, W], got [2, 3]");

    op_init(ctx, &oc, "linear_bwd_data");
    vt_set_int(oc.s, oc.attrs, "out", 5);
    oc.n_in = 3;
    oc.in[0] = prt_shape_make(2, (int64_t[]){4, 6});
    oc.in[1] = prt_shape_make(2, (int64_t[]){5, 12});
    oc.in[2] = prt_shape_make(3, (int64_t[]){4, 3, 4});
    ck_assert_int_eq(op_infer(ctx, &oc), PRT_ERR_SHAPE);
    ck_assert_str_eq(prt_last_error(ctx), "layer 't' (linear_bwd_data): dy (the gradient of the linear output) is "
                                          "[4, 6], expected [4, 5] for the input [4, 3, 4]");

    op_init(ctx, &oc, "bias_grad");
    oc.n_in = 1;
    oc.in[0] = prt_shape_make(1, (int64_t[]){7});
    ck_assert_int_eq(op_infer(ctx, &oc), PRT_ERR_SHAPE);
    ck_assert_str_eq(prt_last_error(ctx),
                     "layer 't' (bias_grad): expects a gradient of rank 2 or more ([N, C, ...]), got [7]");

    op_init(ctx, &oc, "batchnorm_bwd");
    oc.n_in = 3;
    oc.in[0] = oc.in[1] = prt_shape4(2, 3, 4, 4);
    oc.in[2] = prt_shape_make(1, (int64_t[]){4});
    ck_assert_int_eq(op_infer(ctx, &oc), PRT_ERR_SHAPE);
    ck_assert_str_eq(prt_last_error(ctx),
                     "layer 't' (batchnorm_bwd): the scale is [4], expected [3] for the input [2, 3, 4, 4]");
    oc.in[2] = oc.in[3] = prt_shape_make(1, (int64_t[]){3});
    oc.n_in = 4;
    ck_assert_int_eq(op_infer(ctx, &oc), PRT_ERR_SHAPE);
    ck_assert_str_eq(prt_last_error(ctx),
                     "layer 't' (batchnorm_bwd): takes (dy, x, scale) or (dy, x, scale, mean, var), got 4 inputs");
    oc.n_in = 5;
    oc.in[4] = prt_shape_make(1, (int64_t[]){2});
    ck_assert_int_eq(op_infer(ctx, &oc), PRT_ERR_SHAPE);
    ck_assert_str_eq(prt_last_error(ctx),
                     "layer 't' (batchnorm_bwd): the running variance is [2], expected [3] for the input [2, 3, 4, 4]");
    prt_context_destroy(ctx);
}
END_TEST

/* ---- gradient builders, end to end --------------------------------------- */

/* What one builder test differentiates: the forward layer reads value `x`
 * (produced from graph input 0 by a scale-by-1 node, so x is an activation and
 * gets a gradient) and has params named "<layer>.<slot>". */
typedef struct e2e {
    prt_graph *g;
    int node, y, dy;
    int n_grads;
    int grads[4];              /* gradient value ids: of x, then of each param */
    const char *wrt[4];        /* what each is the gradient of: "x0" (the input) or a param name */
} e2e;

static double loss(prt_vm *vm) {
    const prt_tensor *y = prt_vm_output(vm, 0);
    const float *dy = PRT_F32P(prt_vm_input(vm, 1));
    double l = 0;
    for (int64_t i = 0; i < prt_shape_count(&y->shape); i++) l += (double)dy[i] * PRT_F32P(y)[i];
    return l;
}

/* Compiles the graph with outputs [y, grads...], runs it, and
 * checks every gradient against central differences of L = sum(dy * y). */
static void check_e2e(prt_context *ctx, e2e *t, int64_t batch, bool reference, bool training, void (*setup)(prt_vm *),
                      double rtol) {
    int outs[5] = {t->y};
    for (int i = 0; i < t->n_grads; i++) outs[1 + i] = t->grads[i];
    ck_assert_int_eq(prt_graph_set_outputs(t->g, outs, 1 + t->n_grads), PRT_OK);
    prt_program *p;
    ck_assert_msg(prt_vm_compile(t->g, batch, &p) == PRT_OK, "%s", prt_last_error(ctx));
    prt_vm *vm;
    prt_vm_options o = {.training = training, .reference = reference};
    ck_assert_msg(prt_vm_create(ctx, p, prt_cpu_device(ctx), &o, &vm) == PRT_OK, "%s", prt_last_error(ctx));
    vt_fill_input(vm, 0, 11);
    vt_fill_input(vm, 1, 12);
    if (setup) setup(vm);
    prt_vm_set_step(vm, 0);
    ck_assert_msg(prt_vm_run(vm) == PRT_OK, "%s", prt_last_error(ctx));
    /* every analytic gradient now: the finite-difference runs overwrite the outputs */
    float *grads[4];
    for (int gi = 0; gi < t->n_grads; gi++) {
        const prt_tensor *gt = prt_vm_output(vm, 1 + gi);
        grads[gi] = malloc((size_t)prt_shape_count(&gt->shape) * sizeof(float));
        memcpy(grads[gi], PRT_F32P(gt), (size_t)prt_shape_count(&gt->shape) * sizeof(float));
    }
    for (int gi = 0; gi < t->n_grads; gi++) {
        int64_t n = prt_shape_count(&prt_vm_output(vm, 1 + gi)->shape);
        float *got = grads[gi];
        prt_tensor *v = !strcmp(t->wrt[gi], "x0") ? prt_vm_input(vm, 0) : prt_vm_find(vm, t->wrt[gi]);
        ck_assert_ptr_nonnull(v);
        ck_assert_int_eq(prt_shape_count(&v->shape), n);
        double *fd = malloc((size_t)n * sizeof(double));
        for (int64_t i = 0; i < n; i++) {
            float *e = &PRT_F32P(v)[i], keep = *e;
            double l[2];
            for (int side = 0; side < 2; side++) {
                *e = keep + (float)(side ? -FD_H : FD_H);
                prt_vm_set_step(vm, 0);
                ck_assert_msg(prt_vm_run(vm) == PRT_OK, "%s", prt_last_error(ctx));
                l[side] = loss(vm);
            }
            *e = keep;
            /* the step actually taken by the float32 value, not the nominal h */
            double hp = (double)(keep + (float)FD_H) - keep, hm = keep - (double)(keep - (float)FD_H);
            fd[i] = (l[0] - l[1]) / (hp + hm);
        }
        char what[160];
        snprintf(what, sizeof what, "%s: d/d %s (%s kernels, %s)", t->g->name, t->wrt[gi],
                 reference ? "reference" : "fast", training ? "training" : "inference");
        compare(what, got, fd, n, rtol);
        free(got), free(fd);
    }
    prt_vm_destroy(vm);
    prt_program_destroy(ctx, p);
}

/* input x0 (per sample c x h x w, or rank 1/3 for linear) -> scale by 1 -> x */
static int pre_layer(prt_graph *g, const prt_shape *per_sample) {
    int x0;
    prt_loc loc = {NULL, 0, 0};
    ck_assert_int_eq(prt_graph_add_input(g, "x0", per_sample, PRT_F32, loc, &x0), PRT_OK);
    const prt_op_schema *sc = vt_op(g->ctx, "scale", NULL);
    prt_attr a[16];
    vt_attrs_default(sc, a);
    vt_set_float(sc, a, "by", 1.0);
    return vt_node(g, "scale", "pre", &x0, 1, a);
}

/* After the forward layer: params bound, shapes inferred, dy added as graph
 * input 1 of y's per-sample shape, and the builder run. */
static void build_grads(e2e *t, int64_t batch) {
    prt_graph *g = t->g;
    vt_finish(g, &t->y, 1);
    ck_assert_int_eq(prt_graph_infer(g, batch), PRT_OK);
    prt_shape ys = g->values[t->y].shape, per = {.ndim = ys.ndim - 1};
    for (int i = 1; i < ys.ndim; i++) per.d[i - 1] = ys.d[i];
    prt_loc loc = {NULL, 0, 0};
    ck_assert_int_eq(prt_graph_add_input(g, "dy", &per, PRT_F32, loc, &t->dy), PRT_OK);
    const prt_node *nd = &g->nodes[t->node];
    const prt_op_schema *s = prt_op_get(g->ctx->ops, nd->op);
    int dyv[1] = {t->dy}, dx[8];
    for (int i = 0; i < nd->n_in; i++) dx[i] = -1;
    int n_in = nd->n_in;
    prt_grad_ctx gc = {.g = g, .node = t->node, .dy = dyv, .dx = dx};
    ck_assert_msg(s->grad(&gc) == PRT_OK, "%s", prt_last_error(g->ctx));
    t->n_grads = 0;
    for (int i = 0; i < n_in; i++) {
        const prt_value *v = &g->values[g->nodes[t->node].in[i]];
        if (v->kind == PRT_VAL_STATE) {
            ck_assert_msg(dx[i] == -1, "state '%s' got a gradient", v->name);
            continue;
        }
        ck_assert_msg(dx[i] >= 0, "input %d ('%s') got no gradient", i, v->name);
        t->grads[t->n_grads] = dx[i];
        t->wrt[t->n_grads++] = i == 0 ? "x0" : v->name;
    }
}

static void conv_setup(prt_vm *vm) {
    prt_tensor *b = prt_vm_find(vm, "c.bias");
    ck_assert_ptr_nonnull(b);
    prt_rng_fill_normal(21, PRT_F32P(b), prt_shape_count(&b->shape), 0.0f, 1.0f);
}

START_TEST(test_conv_grad_e2e) {
    prt_context *ctx = tu_context();
    for (int ref = 0; ref < 2; ref++) {
        e2e t = {0};
        ck_assert_int_eq(prt_graph_new(ctx, "conv_grad", &t.g), PRT_OK);
        prt_shape per = {.ndim = 3, .d = {3, 6, 5}};
        int x = pre_layer(t.g, &per);
        const prt_op_schema *conv = vt_op(ctx, "conv", NULL);
        prt_attr a[16];
        conv_case k = {"", 0, 3, 6, 5, 4, 3, 2, 1, 2, {1, 0, 1, 1}, 1, 1, 1};
        conv_attrs_of(conv, a, &k);
        t.y = vt_node(t.g, "conv", "c", &x, 1, a);
        t.node = t.g->n_nodes - 1;
        build_grads(&t, 2);
        ck_assert_int_eq(t.n_grads, 3); /* x, weight, bias */
        check_e2e(ctx, &t, 2, ref == 1, true, conv_setup, FD_RTOL_LIN);
        prt_graph_destroy(t.g);
    }
    prt_context_destroy(ctx);
}
END_TEST

/* The builder's shortcuts: no gradient flowing in emits nothing; a conv or
 * linear reading a graph input skips dx; a missing bias gets no bias_grad. */
START_TEST(test_grad_builder_shortcuts) {
    prt_context *ctx = tu_context();
    const char *ops[2] = {"conv", "linear"};
    for (int o = 0; o < 2; o++) {
        prt_graph *g;
        ck_assert_int_eq(prt_graph_new(ctx, "g", &g), PRT_OK);
        int x = vt_input(g, "img", 2, 5, 5);
        const prt_op_schema *s = vt_op(ctx, ops[o], NULL);
        prt_attr a[16];
        vt_attrs_default(s, a);
        vt_set_int(s, a, "out", 3);
        if (o == 0) vt_set_int(s, a, "kernel", 3);
        vt_set_bool(s, a, "bias", false);
        int y = vt_node(g, ops[o], "l", &x, 1, a);
        vt_finish(g, &y, 1);
        ck_assert_int_eq(prt_graph_infer(g, 2), PRT_OK);
        int nodes = g->n_nodes, dx[4] = {-1, -1, -1, -1}, none = -1;
        prt_grad_ctx gc = {.g = g, .node = 0, .dy = &none, .dx = dx};
        ck_assert_int_eq(s->grad(&gc), PRT_OK);
        ck_assert_int_eq(g->n_nodes, nodes);
        int dy = y; /* any value of y's shape serves as the incoming gradient */
        gc.dy = &dy;
        ck_assert_msg(s->grad(&gc) == PRT_OK, "%s", prt_last_error(ctx));
        ck_assert_int_eq(g->n_nodes, nodes + 1); /* the weight gradient only */
        ck_assert_int_eq(dx[0], -1);
        ck_assert_int_ge(dx[1], 0);
        ck_assert_str_eq(prt_op_get(ctx->ops, g->nodes[nodes].op)->name, o == 0 ? "conv_bwd_weight" : "linear_bwd_weight");
        ck_assert_str_eq(g->nodes[nodes].name, o == 0 ? "l/conv_bwd_weight" : "l/linear_bwd_weight");
        prt_graph_destroy(g);
    }
    prt_context_destroy(ctx);
}
END_TEST

static void linear_setup(prt_vm *vm) {
    prt_tensor *b = prt_vm_find(vm, "fc.bias");
    ck_assert_ptr_nonnull(b);
    prt_rng_fill_normal(22, PRT_F32P(b), prt_shape_count(&b->shape), 0.0f, 1.0f);
}

START_TEST(test_linear_grad_e2e) {
    prt_context *ctx = tu_context();
    for (int ref = 0; ref < 2; ref++) {
        e2e t = {0};
        ck_assert_int_eq(prt_graph_new(ctx, "linear_grad", &t.g), PRT_OK);
        prt_shape per = {.ndim = 3, .d = {3, 2, 2}}; /* flattened to 12 features */
        int x = pre_layer(t.g, &per);
        const prt_op_schema *lin = vt_op(ctx, "linear", NULL);
        prt_attr a[16];
        vt_attrs_default(lin, a);
        vt_set_int(lin, a, "out", 5);
        t.y = vt_node(t.g, "linear", "fc", &x, 1, a);
        t.node = t.g->n_nodes - 1;
        build_grads(&t, 3);
        ck_assert_int_eq(t.n_grads, 3);
        check_e2e(ctx, &t, 3, ref == 1, true, linear_setup, FD_RTOL_LIN);
        prt_graph_destroy(t.g);
    }
    prt_context_destroy(ctx);
}
END_TEST

static void bn_setup(prt_vm *vm) {
    prt_tensor *s = prt_vm_find(vm, "bn.scale"), *b = prt_vm_find(vm, "bn.shift");
    prt_tensor *m = prt_vm_find(vm, "bn.mean"), *v = prt_vm_find(vm, "bn.var");
    ck_assert(s && b && m && v);
    prt_rng_fill_uniform(23, PRT_F32P(s), prt_shape_count(&s->shape), 0.5f, 1.5f);
    prt_rng_fill_normal(24, PRT_F32P(b), prt_shape_count(&b->shape), 0.0f, 1.0f);
    /* running statistics for inference steps (training steps only update them) */
    prt_rng_fill_normal(25, PRT_F32P(m), prt_shape_count(&m->shape), 0.0f, 0.3f);
    prt_rng_fill_uniform(26, PRT_F32P(v), prt_shape_count(&v->shape), 0.5f, 2.0f);
}

/* Training mode (autodiff's case), and an inference-mode graph, where the
 * forward used the running statistics and the gradient must too. */
START_TEST(test_batchnorm_grad_e2e) {
    prt_context *ctx = tu_context();
    for (int v = 0; v < 4; v++) {
        int ref = v & 1;
        bool training = v < 2;
        e2e t = {0};
        ck_assert_int_eq(prt_graph_new(ctx, "batchnorm_grad", &t.g), PRT_OK);
        prt_shape per = {.ndim = 3, .d = {3, 4, 4}};
        int x = pre_layer(t.g, &per);
        t.y = vt_node(t.g, "batchnorm", "bn", &x, 1, NULL);
        t.node = t.g->n_nodes - 1;
        build_grads(&t, 4);
        ck_assert_int_eq(t.n_grads, 3); /* x, scale, shift; not the running statistics */
        check_e2e(ctx, &t, 4, ref == 1, training, bn_setup, FD_RTOL);
        prt_graph_destroy(t.g);
    }
    prt_context_destroy(ctx);
}
END_TEST

/* ---- backward ops of the ONNX-facing ops ------------------------------------ */

/* Offset in `in` of element e of `full` under numpy broadcasting (right-aligned). */
static int64_t bc_off(const prt_shape *full, const prt_shape *in, int64_t e) {
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

static prt_shape shp(int nd, const int64_t *d) { return prt_shape_make(nd, d); }

START_TEST(test_reduce_to_kernels) {
    prt_context *ctx = tu_context();
    static const struct { int nx, nl; int64_t x[4], l[4]; } t[] = {
        {4, 4, {2, 3, 4, 5}, {1, 3, 1, 1}}, {4, 1, {2, 3, 4, 5}, {5}},       {4, 4, {2, 3, 4, 5}, {2, 3, 4, 5}},
        {2, 0, {3, 4}, {0}},                {3, 3, {2, 3, 4}, {2, 1, 4}},    {3, 2, {6, 1, 5}, {1, 1}},
        {4, 3, {2, 3, 4, 5}, {3, 1, 5}},    {4, 4, {4, 64, 33, 35}, {1, 64, 1, 1}}, /* large: threads */
        {2, 2, {300, 400}, {300, 1}},
    };
    rng r = {0x5e7};
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) {
        opcall oc;
        op_init(ctx, &oc, "reduce_to");
        oc.n_in = 2;
        oc.in[0] = shp(t[k].nx, t[k].x);
        oc.in[1] = shp(t[k].nl, t[k].l);
        ck_assert_msg(op_infer(ctx, &oc) == PRT_OK, "%s", prt_last_error(ctx));
        ck_assert(prt_shape_eq(&oc.out[0], &oc.in[1]));
        int64_t nx = numel(&oc.in[0]), nl = numel(&oc.in[1]);
        float *x = randf(&r, nx, -1, 1), *like = randf(&r, nl, -1, 1), *got = malloc((size_t)nl * sizeof(float));
        double *want = calloc((size_t)nl, sizeof(double));
        for (int64_t e = 0; e < nx; e++) want[bc_off(&oc.in[0], &oc.in[1], e)] += x[e];
        float *in[2] = {x, like};
        for (int mode = RUN_REF; mode <= RUN_FAST; mode++) {
            op_run(ctx, &oc, in, &got, mode);
            char what[128];
            snprintf(what, sizeof what, "reduce_to %s (case %zu)", run_name[mode], k);
            compare(what, got, want, nl, RTOL);
        }
        free(x), free(like), free(got), free(want);
    }
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(test_matmul_bwd_kernels) {
    prt_context *ctx = tu_context();
    static const struct { int na, nb; int64_t a[4], b[4]; } t[] = {
        {3, 2, {8, 3, 16}, {16, 5}},     /* one b: the folded path */
        {3, 3, {2, 3, 4}, {2, 4, 5}},    {4, 3, {2, 1, 3, 4}, {3, 4, 2}}, {1, 3, {4}, {2, 4, 5}},
        {3, 1, {2, 3, 4}, {4}},          {1, 1, {7}, {7}},                {3, 3, {1, 3, 4}, {2, 4, 5}},
        {2, 2, {64, 256}, {256, 100}},   {2, 3, {3, 4}, {5, 4, 2}},
    };
    rng r = {0x3a7};
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) {
        prt_shape as = shp(t[k].na, t[k].a), bs = shp(t[k].nb, t[k].b);
        opcall fw;
        op_init(ctx, &fw, "matmul");
        fw.n_in = 2;
        fw.in[0] = as;
        fw.in[1] = bs;
        ck_assert_msg(op_infer(ctx, &fw) == PRT_OK, "%s", prt_last_error(ctx));
        prt_shape ys = fw.out[0];
        /* the float64 gradients, from numpy's definition with promoted 1-D operands */
        prt_shape pa = as.ndim == 1 ? shp(2, (int64_t[]){1, as.d[0]}) : as;
        prt_shape pb = bs.ndim == 1 ? shp(2, (int64_t[]){bs.d[0], 1}) : bs;
        int64_t M = pa.d[pa.ndim - 2], K = pa.d[pa.ndim - 1], N = pb.d[pb.ndim - 1];
        prt_shape ba = {.ndim = pa.ndim - 2}, bb = {.ndim = pb.ndim - 2}, bo = {.ndim = ys.ndim - (as.ndim > 1) - (bs.ndim > 1)};
        for (int i = 0; i < ba.ndim; i++) ba.d[i] = pa.d[i];
        for (int i = 0; i < bb.ndim; i++) bb.d[i] = pb.d[i];
        for (int i = 0; i < bo.ndim; i++) bo.d[i] = ys.d[i];
        int64_t na = numel(&as), nb = numel(&bs), ny = numel(&ys);
        float *a = randf(&r, na, -1, 1), *b = randf(&r, nb, -1, 1), *dy = randf(&r, ny, -1, 1);
        double *wa = calloc((size_t)na, sizeof(double)), *wb = calloc((size_t)nb, sizeof(double));
        for (int64_t e = 0; e < numel(&bo); e++) {
            int64_t oa = bc_off(&bo, &ba, e) * M * K, ob = bc_off(&bo, &bb, e) * K * N;
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < N; j++) {
                    double g = dy[(e * M + i) * N + j];
                    for (int64_t q = 0; q < K; q++) {
                        wa[oa + i * K + q] += g * b[ob + q * N + j];
                        wb[ob + q * N + j] += g * a[oa + i * K + q];
                    }
                }
        }
        for (int which = 0; which < 2; which++) {
            opcall oc;
            op_init(ctx, &oc, which ? "matmul_bwd_b" : "matmul_bwd_a");
            oc.n_in = 3;
            oc.in[0] = ys;
            oc.in[1] = as;
            oc.in[2] = bs;
            ck_assert_msg(op_infer(ctx, &oc) == PRT_OK, "%s", prt_last_error(ctx));
            ck_assert(prt_shape_eq(&oc.out[0], which ? &bs : &as));
            int64_t n = which ? nb : na;
            float *got = malloc((size_t)(n ? n : 1) * sizeof(float)), *in[3] = {dy, a, b};
            for (int mode = RUN_REF; mode <= RUN_FAST; mode++) {
                op_run(ctx, &oc, in, &got, mode);
                char what[128];
                snprintf(what, sizeof what, "%s %s (case %zu)", oc.s->name, run_name[mode], k);
                compare(what, got, which ? wb : wa, n, RTOL);
            }
            free(got);
        }
        free(a), free(b), free(dy), free(wa), free(wb);
    }
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(test_pad_bwd_kernels) {
    prt_context *ctx = tu_context();
    static const struct { const char *mode; int nd; int64_t d[4], pads[8]; } t[] = {
        {"constant", 2, {5, 6}, {1, 2, 3, 0}},        {"reflect", 2, {5, 6}, {1, 2, 3, 5}},
        {"edge", 2, {5, 6}, {4, 0, 1, 7}},            {"constant", 2, {5, 6}, {-1, 0, 2, -2}},
        {"reflect", 4, {2, 3, 4, 5}, {0, 0, 3, 4, 0, 0, 2, 1}},
        {"edge", 4, {2, 3, 4, 5}, {0, 1, 2, 2, 0, 1, 3, 1}},
        {"edge", 4, {1, 2, 1, 1}, {0, 0, 2, 3, 0, 0, 1, 4}},
        {"reflect", 4, {2, 3, 4, 5}, {0, 0, -1, 2, 0, 0, 1, -2}},
        {"reflect", 4, {2, 16, 40, 300}, {0, 0, 3, 7, 0, 0, 3, 7}},
    };
    rng r = {0x9ad};
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) {
        prt_shape xs = shp(t[k].nd, t[k].d);
        opcall fw;
        op_init(ctx, &fw, "pad");
        fw.n_in = 1;
        fw.in[0] = xs;
        set_ints(fw.s, fw.attrs, "pads", 2 * t[k].nd, t[k].pads);
        vt_attr(fw.s, fw.attrs, "mode")->s = t[k].mode;
        ck_assert_msg(op_infer(ctx, &fw) == PRT_OK, "%s", prt_last_error(ctx));
        prt_shape ys = fw.out[0];
        opcall oc;
        op_init(ctx, &oc, "pad_bwd");
        memcpy(oc.attrs, fw.attrs, sizeof oc.attrs);
        oc.n_in = 2;
        oc.in[0] = ys;
        oc.in[1] = xs;
        ck_assert_msg(op_infer(ctx, &oc) == PRT_OK, "%s", prt_last_error(ctx));
        int64_t nx = numel(&xs), ny = numel(&ys);
        float *dy = randf(&r, ny, -1, 1), *x = randf(&r, nx, -1, 1), *got = malloc((size_t)nx * sizeof(float));
        double *want = calloc((size_t)nx, sizeof(double));
        for (int64_t e = 0; e < ny; e++) {
            int64_t rem = e, off = 0, stride = 1;
            bool inside = true;
            for (int i = ys.ndim - 1; i >= 0; i--) {
                int64_t q = rem % ys.d[i] - t[k].pads[i], d = xs.d[i];
                rem /= ys.d[i];
                if (q < 0 || q >= d) {
                    if (!strcmp(t[k].mode, "edge")) q = q < 0 ? 0 : d - 1;
                    else if (!strcmp(t[k].mode, "reflect")) q = q < 0 ? -q : 2 * d - 2 - q;
                    else inside = false;
                }
                off += q * stride;
                stride *= d;
            }
            if (inside) want[off] += dy[e];
        }
        float *in[2] = {dy, x};
        for (int mode = RUN_REF; mode <= RUN_FAST; mode++) {
            op_run(ctx, &oc, in, &got, mode);
            char what[128];
            snprintf(what, sizeof what, "pad_bwd %s (case %zu, %s)", run_name[mode], k, t[k].mode);
            compare(what, got, want, nx, RTOL);
        }
        free(dy), free(x), free(got), free(want);
    }
    prt_context_destroy(ctx);
}
END_TEST

/* sigmoid_bwd, tanh_bwd and clip_bwd from the forward output y */
START_TEST(test_activation_bwd_kernels) {
    prt_context *ctx = tu_context();
    const prt_shape shapes[] = {shp(2, (int64_t[]){3, 7}), prt_shape4(4, 64, 33, 35)};
    rng r = {0xac7};
    for (int op = 0; op < 3; op++) {
        const char *name = op == 0 ? "sigmoid_bwd" : op == 1 ? "tanh_bwd" : "clip_bwd";
        for (size_t k = 0; k < 2; k++) {
            opcall oc;
            op_init(ctx, &oc, name);
            oc.n_in = 2;
            oc.in[0] = oc.in[1] = shapes[k];
            if (op == 2) {
                vt_attr(oc.s, oc.attrs, "min")->f = -0.25;
                vt_attr(oc.s, oc.attrs, "max")->f = 0.5;
            }
            ck_assert_msg(op_infer(ctx, &oc) == PRT_OK, "%s", prt_last_error(ctx));
            int64_t n = numel(&shapes[k]);
            float *dy = randf(&r, n, -1, 1), *y = randf(&r, n, op == 0 ? 0 : -1, 1), *got = malloc((size_t)n * 4);
            if (op == 2)
                for (int64_t i = 0; i < n; i++) y[i] = y[i] < -0.25f ? -0.25f : y[i] > 0.5f ? 0.5f : y[i];
            double *want = malloc((size_t)n * sizeof(double));
            for (int64_t i = 0; i < n; i++) {
                double g = dy[i], v = y[i];
                want[i] = op == 0 ? g * v * (1 - v) : op == 1 ? g * (1 - v * v) : (v > -0.25 && v < 0.5 ? g : 0);
            }
            float *in[2] = {dy, y};
            for (int mode = RUN_REF; mode <= RUN_FAST; mode++) {
                op_run(ctx, &oc, in, &got, mode);
                char what[128];
                snprintf(what, sizeof what, "%s %s (shape %zu)", name, run_name[mode], k);
                compare(what, got, want, n, RTOL);
            }
            free(dy), free(y), free(got), free(want);
        }
    }
    prt_context_destroy(ctx);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("ops_bwd");
    TCase *tc = tcase_create("kernels");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_conv_bwd_kernels, 0, (int)(sizeof conv_cases / sizeof conv_cases[0]));
    tcase_add_test(tc, test_conv_bwd_impl);
    tcase_add_test(tc, test_bias_grad_kernels);
    tcase_add_test(tc, test_linear_bwd_kernels);
    tcase_add_test(tc, test_batchnorm_bwd_kernels);
    tcase_add_test(tc, test_batchnorm_bwd_needs_stats);
    tcase_add_test(tc, test_schemas);
    tcase_add_test(tc, test_flops);
    tcase_add_test(tc, test_shape_errors);
    tcase_add_test(tc, test_reduce_to_kernels);
    tcase_add_test(tc, test_matmul_bwd_kernels);
    tcase_add_test(tc, test_pad_bwd_kernels);
    tcase_add_test(tc, test_activation_bwd_kernels);
    suite_add_tcase(s, tc);
    TCase *tg = tcase_create("builders");
    tcase_set_timeout(tg, 120);
    tcase_add_test(tg, test_conv_grad_e2e);
    tcase_add_test(tg, test_grad_builder_shortcuts);
    tcase_add_test(tg, test_linear_grad_e2e);
    tcase_add_test(tg, test_batchnorm_grad_e2e);
    suite_add_tcase(s, tg);
    return s;
}

int main(void) { return tu_run(suite()); }

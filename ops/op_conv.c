/* conv: 2-D convolution over [N, C, H, W] with stride, asymmetric padding
 * [top, left, bottom, right], dilation, groups and non-square kernels; weight
 * [out, C/groups, kh, kw], optional bias [out].
 *
 * Fast path: oneDNN. The graph's tensors are plain NCHW. oneDNN runs a
 * convolution either directly on NCHW (its im2col + GEMM kernel) or with its
 * direct JIT kernels on a channel-blocked layout (nChw8c on AVX2), which needs
 * reorders of the input, weights and output around it every run (the weights
 * change every training step). conv_prefer_blocked() picks per layer from
 * measurements; the reorder buffers and oneDNN's scratchpad live in the
 * node's workspace, so the memory plan accounts for them. */
#include "ops/bwd_util.h"
#include "ops/cuda/cudnn_util.h"

#include <string.h>

enum { A_OUT, A_KERNEL, A_STRIDE, A_PAD, A_DILATION, A_GROUPS, A_BIAS };
enum { P_WEIGHT, P_BIAS };

/* shared with conv_bwd_data and conv_bwd_weight (ops/bwd_util.h) */
const prt_attr_def prt_conv_attrs[] = {
    PRT_ATTR_REQ("out", PRT_ATTR_INT, 1, "output channels"),
    PRT_ATTR_REQ("kernel", PRT_ATTR_INTS, 1, "k or [kh, kw]"),
    PRT_ATTR_OPT_INTS("stride", 1, 1, "s or [sh, sw]"),
    PRT_ATTR_OPT_INTS("pad", 0, 0, "p, [ph, pw] or [top, left, bottom, right]"),
    PRT_ATTR_OPT_INTS("dilation", 1, 1, "d or [dh, dw]"),
    PRT_ATTR_OPT_INT("groups", 1, 1, "channel groups (in and out must be multiples)"),
    PRT_ATTR_OPT_BOOL("bias", 1, "add a learned bias"),
};

static const prt_param_def conv_params[] = {
    {.name = "weight", .trainable = true, .init = PRT_INIT_HE_NORMAL},
    {.name = "bias", .trainable = true, .init = PRT_INIT_ZEROS},
};

/* Everything a kernel needs, from shapes and attributes that passed inference. */
typedef struct conv_geom {
    int64_t n, c, h, w, o, g;
    prt_window win;
    bool bias;
} conv_geom;

static void conv_window(const prt_attr *attrs, int64_t h, int64_t w, prt_window *win) {
    prt_attr_pair(&attrs[A_KERNEL], &win->kh, &win->kw);
    prt_attr_pair(&attrs[A_STRIDE], &win->sh, &win->sw);
    prt_attr_pair(&attrs[A_DILATION], &win->dh, &win->dw);
    prt_attr_pad4(&attrs[A_PAD], win->pad);
    win->oh = win->ow = 0;
    prt_window_extent(h, win->pad[0], win->pad[2], win->kh, win->sh, win->dh, &win->oh);
    prt_window_extent(w, win->pad[1], win->pad[3], win->kw, win->sw, win->dw, &win->ow);
}

static void conv_geom_of(const prt_attr *attrs, const prt_shape *in, conv_geom *g) {
    g->n = in->d[0];
    g->c = in->d[1];
    g->h = in->d[2];
    g->w = in->d[3];
    g->o = prt_attr_int(&attrs[A_OUT]);
    g->g = prt_attr_int(&attrs[A_GROUPS]);
    g->bias = prt_attr_bool(&attrs[A_BIAS]);
    conv_window(attrs, g->h, g->w, &g->win);
}

static prt_status conv_infer(prt_infer_ctx *ic) {
    const prt_shape *in = &ic->in[0];
    if (in->ndim != 4) {
        char b[160];
        prt_shape_str(in, b, sizeof b);
        return prt_infer_error(ic, "expects a rank-4 input [N, C, H, W], got %s", b);
    }
    PRT_CHECK(prt_infer_check_ints(ic, A_KERNEL, "kernel", 1, 2, 1));
    PRT_CHECK(prt_infer_check_ints(ic, A_STRIDE, "stride", 1, 2, 1));
    if (ic->attrs[A_PAD].n == 3) return prt_infer_error(ic, "pad takes 1, 2 or 4 values, got 3");
    PRT_CHECK(prt_infer_check_ints(ic, A_PAD, "pad", 1, 4, 0));
    PRT_CHECK(prt_infer_check_ints(ic, A_DILATION, "dilation", 1, 2, 1));
    int64_t out = prt_attr_int(&ic->attrs[A_OUT]), groups = prt_attr_int(&ic->attrs[A_GROUPS]);
    if (out < 1) return prt_infer_error(ic, "out must be >= 1, got %lld", (long long)out);
    if (groups < 1) return prt_infer_error(ic, "groups must be >= 1, got %lld", (long long)groups);
    if (in->d[1] % groups != 0)
        return prt_infer_error(ic, "groups %lld does not divide the %lld input channels", (long long)groups,
                               (long long)in->d[1]);
    if (out % groups != 0)
        return prt_infer_error(ic, "groups %lld does not divide out %lld", (long long)groups, (long long)out);
    prt_window w;
    prt_attr_pair(&ic->attrs[A_KERNEL], &w.kh, &w.kw);
    prt_attr_pair(&ic->attrs[A_STRIDE], &w.sh, &w.sw);
    prt_attr_pair(&ic->attrs[A_DILATION], &w.dh, &w.dw);
    prt_attr_pad4(&ic->attrs[A_PAD], w.pad);
    if (!prt_window_extent(in->d[2], w.pad[0], w.pad[2], w.kh, w.sh, w.dh, &w.oh) ||
        !prt_window_extent(in->d[3], w.pad[1], w.pad[3], w.kw, w.sw, w.dw, &w.ow))
        return prt_infer_error(ic, "window size overflows");
    if (w.oh <= 0 || w.ow <= 0)
        return prt_infer_error(ic, "output would be %lldx%lld: input %lldx%lld with pads %lld+%lld, %lld+%lld is smaller "
                               "than the (dilated) kernel %lldx%lld",
                               (long long)w.oh, (long long)w.ow, (long long)in->d[2], (long long)in->d[3],
                               (long long)w.pad[0], (long long)w.pad[2], (long long)w.pad[1], (long long)w.pad[3],
                               (long long)(w.dh * (w.kh - 1) + 1), (long long)(w.dw * (w.kw - 1) + 1));
    ic->out[0] = prt_shape4(in->d[0], out, w.oh, w.ow);
    int64_t wd[4] = {out, in->d[1] / groups, w.kh, w.kw};
    ic->params[P_WEIGHT] = prt_shape_make(4, wd);
    ic->param_present[P_WEIGHT] = true;
    ic->params[P_BIAS] = prt_shape_make(1, &out);
    ic->param_present[P_BIAS] = prt_attr_bool(&ic->attrs[A_BIAS]);
    return PRT_OK;
}

static int64_t conv_flops(const prt_infer_ctx *ic) {
    const prt_shape *in = &ic->in[0];
    int64_t outs = prt_ops_numel(&ic->out[0]);
    int64_t kh, kw, groups = prt_attr_int(&ic->attrs[A_GROUPS]);
    prt_attr_pair(&ic->attrs[A_KERNEL], &kh, &kw);
    int64_t macs = prt_flop_mul(prt_flop_mul(outs, in->d[1] / (groups ? groups : 1)), prt_flop_mul(kh, kw));
    int64_t f = prt_flop_mul(2, macs);
    return prt_attr_bool(&ic->attrs[A_BIAS]) ? prt_flop_add(f, outs) : f;
}

static prt_status conv_check(const prt_kernel_call *c) {
    PRT_CHECK(prt_kernel_check_f32(c, "conv"));
    int want = prt_attr_bool(&c->attrs[A_BIAS]) ? 3 : 2;
    if (c->n_in != want)
        return prt_error(c->ctx, PRT_ERR_INTERNAL, "conv kernel: %d inputs, expected %d", c->n_in, want);
    return PRT_OK;
}

static prt_status conv_ref(const prt_kernel_call *c) {
    PRT_CHECK(conv_check(c));
    conv_geom g;
    conv_geom_of(c->attrs, &c->in[0]->shape, &g);
    const prt_window *w = &g.win;
    const float *x = PRT_F32P(c->in[0]), *wt = PRT_F32P(c->in[1]);
    const float *b = g.bias ? PRT_F32P(c->in[2]) : NULL;
    float *y = PRT_F32P(c->out[0]);
    int64_t cg = g.c / g.g, og = g.o / g.g;
    for (int64_t n = 0; n < g.n; n++)
        for (int64_t o = 0; o < g.o; o++) {
            int64_t grp = o / og;
            for (int64_t oy = 0; oy < w->oh; oy++)
                for (int64_t ox = 0; ox < w->ow; ox++) {
                    float s = b ? b[o] : 0.0f;
                    for (int64_t ci = 0; ci < cg; ci++) {
                        int64_t ch = grp * cg + ci;
                        for (int64_t ky = 0; ky < w->kh; ky++) {
                            int64_t iy = oy * w->sh - w->pad[0] + ky * w->dh;
                            if (iy < 0 || iy >= g.h) continue;
                            for (int64_t kx = 0; kx < w->kw; kx++) {
                                int64_t ix = ox * w->sw - w->pad[1] + kx * w->dw;
                                if (ix < 0 || ix >= g.w) continue;
                                s += x[((n * g.c + ch) * g.h + iy) * g.w + ix] *
                                     wt[((o * cg + ci) * w->kh + ky) * w->kw + kx];
                            }
                        }
                    }
                    y[((n * g.o + o) * w->oh + oy) * w->ow + ox] = s;
                }
        }
    return PRT_OK;
}

/* ---- fast path: oneDNN ------------------------------------------------ */

/* Which layout to run a layer in. Measured with oneDNN 2.6 on a 2-core Zen 3
 * (AVX2), batch 8, GFLOP/s including the reorders (see bench/RESULTS.md):
 *  - spatial kernels (3x3, 1x7, 7x1) on planes of 17x17 and larger: the
 *    blocked direct kernels win 1.1-2.5x (GEMM suffers from im2col, worst
 *    with few input channels); on 8x8 planes with >= 128 outputs per group
 *    GEMM wins by 5-25%;
 *  - 1x1 kernels: GEMM on NCHW needs no im2col, so blocked only wins when the
 *    FLOPs per reordered element are high (wide layers on large planes). */
static bool conv_prefer_blocked(const conv_geom *g) {
    const prt_window *w = &g->win;
    double pix = (double)w->oh * (double)w->ow;
    if (w->kh * w->kw > 1) return !(pix <= 144 && g->o / g->g >= 128);
    double flops = 2.0 * (double)(g->c / g->g) * (double)g->o * pix;
    double moved = (double)g->c * (double)g->h * (double)g->w + (double)g->o * pix;
    return flops / moved >= 128 && pix >= 900;
}

/* The primitives of one layer and where their buffers sit in the workspace:
 * [scratchpad][src blocked][weights blocked][dst blocked], each 64-aligned. */
typedef struct conv_plan {
    dnnl_primitive_desc_t conv, r_src, r_wei, r_dst; /* reorders NULL when not needed */
    dnnl_memory_desc_t src, wei, bias, dst;          /* the plain (user) layouts */
    size_t scratch, off_src, off_wei, off_dst, total;
    bool blocked;
} conv_plan;

static void conv_plan_free(conv_plan *p) {
    dnnl_primitive_desc_t *pds[] = {&p->conv, &p->r_src, &p->r_wei, &p->r_dst};
    for (size_t i = 0; i < 4; i++)
        if (*pds[i]) dnnl_primitive_desc_destroy(*pds[i]), *pds[i] = NULL;
}

static dnnl_status_t conv_pd(const conv_geom *g, bool blocked, dnnl_engine_t eng, conv_plan *p) {
    const prt_window *w = &g->win;
    dnnl_dims_t sd = {g->n, g->c, g->h, g->w}, dd = {g->n, g->o, w->oh, w->ow};
    int64_t wd5[5] = {g->g, g->o / g->g, g->c / g->g, w->kh, w->kw};
    dnnl_status_t st = prt_dnnl_md_plain(&p->src, 4, sd);
    /* a grouped weight [out, C/g, kh, kw] is [g, out/g, C/g, kh, kw] in the same bytes */
    if (st == dnnl_success) st = g->g > 1 ? prt_dnnl_md_plain(&p->wei, 5, wd5) : prt_dnnl_md_plain(&p->wei, 4, wd5 + 1);
    if (st == dnnl_success) st = prt_dnnl_md_plain(&p->bias, 1, &g->o);
    if (st == dnnl_success) st = prt_dnnl_md_plain(&p->dst, 4, dd);
    if (st != dnnl_success) return st;
    dnnl_memory_desc_t src = p->src, wei = p->wei, dst = p->dst;
    if (blocked) {
        dnnl_dims_t wdims;
        int wn = g->g > 1 ? 5 : 4;
        memcpy(wdims, g->g > 1 ? wd5 : wd5 + 1, (size_t)wn * sizeof(int64_t));
        st = dnnl_memory_desc_init_by_tag(&src, 4, sd, dnnl_f32, dnnl_format_tag_any);
        if (st == dnnl_success) st = dnnl_memory_desc_init_by_tag(&wei, wn, wdims, dnnl_f32, dnnl_format_tag_any);
        if (st == dnnl_success) st = dnnl_memory_desc_init_by_tag(&dst, 4, dd, dnnl_f32, dnnl_format_tag_any);
        if (st != dnnl_success) return st;
    }
    dnnl_dims_t strides = {w->sh, w->sw}, dil = {w->dh - 1, w->dw - 1};
    dnnl_dims_t pl = {w->pad[0], w->pad[1]}, pr = {w->pad[2], w->pad[3]};
    dnnl_convolution_desc_t cd;
    st = dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct, &src, &wei,
                                                    g->bias ? &p->bias : NULL, &dst, strides, dil, pl, pr);
    if (st == dnnl_success) st = prt_dnnl_pd_create(&p->conv, &cd, eng);
    return st;
}

static dnnl_status_t reorder_pd(const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to, dnnl_engine_t eng,
                                dnnl_primitive_desc_t *pd, size_t *scratch) {
    if (dnnl_memory_desc_equal(from, to)) return dnnl_success;
    dnnl_primitive_attr_t attr;
    dnnl_status_t st = dnnl_primitive_attr_create(&attr);
    if (st != dnnl_success) return st;
    st = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (st == dnnl_success) st = dnnl_reorder_primitive_desc_create(pd, from, eng, to, eng, attr);
    dnnl_primitive_attr_destroy(attr);
    if (st == dnnl_success) {
        size_t z = prt_dnnl_scratch_size(*pd);
        if (z > *scratch) *scratch = z;
    }
    return st;
}

static dnnl_status_t conv_plan_make(const conv_geom *g, int layout, dnnl_engine_t eng, conv_plan *p) {
    memset(p, 0, sizeof *p);
    bool blocked = layout == PRT_CONV_BLOCKED || (layout == PRT_CONV_AUTO && conv_prefer_blocked(g));
    dnnl_status_t st = conv_pd(g, blocked, eng, p);
    if (layout == PRT_CONV_AUTO && (st != dnnl_success || prt_dnnl_pd_is_ref(p->conv))) {
        /* oneDNN has only its slow reference kernel for this layout (odd group
         * sizes, say): try the other one */
        conv_plan q;
        memset(&q, 0, sizeof q);
        if (conv_pd(g, !blocked, eng, &q) == dnnl_success && (st != dnnl_success || !prt_dnnl_pd_is_ref(q.conv))) {
            conv_plan_free(p);
            *p = q;
            blocked = !blocked;
            st = dnnl_success;
        } else {
            conv_plan_free(&q);
        }
    }
    if (st != dnnl_success) goto fail;
    p->blocked = blocked;
    size_t scratch = prt_dnnl_scratch_size(p->conv);
    const dnnl_memory_desc_t *src = dnnl_primitive_desc_query_md(p->conv, dnnl_query_src_md, 0);
    const dnnl_memory_desc_t *wei = dnnl_primitive_desc_query_md(p->conv, dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *dst = dnnl_primitive_desc_query_md(p->conv, dnnl_query_dst_md, 0);
    if ((st = reorder_pd(&p->src, src, eng, &p->r_src, &scratch)) != dnnl_success) goto fail;
    if ((st = reorder_pd(&p->wei, wei, eng, &p->r_wei, &scratch)) != dnnl_success) goto fail;
    if ((st = reorder_pd(dst, &p->dst, eng, &p->r_dst, &scratch)) != dnnl_success) goto fail;
    p->scratch = scratch;
    size_t off = prt_dnnl_align(scratch);
    p->off_src = off;
    if (p->r_src) off += prt_dnnl_align(dnnl_memory_desc_get_size(src));
    p->off_wei = off;
    if (p->r_wei) off += prt_dnnl_align(dnnl_memory_desc_get_size(wei));
    p->off_dst = off;
    if (p->r_dst) off += prt_dnnl_align(dnnl_memory_desc_get_size(dst));
    p->total = off;
    return dnnl_success;
fail:
    conv_plan_free(p);
    return st;
}

static size_t conv_workspace(const prt_infer_ctx *ic) {
    dnnl_engine_t eng = prt_dnnl_engine_quiet();
    conv_geom g;
    conv_plan p;
    conv_geom_of(ic->attrs, &ic->in[0], &g);
    if (!eng || conv_plan_make(&g, PRT_CONV_AUTO, eng, &p) != dnnl_success) return 0;
    size_t total = p.total;
    conv_plan_free(&p);
    return total;
}

typedef struct conv_state {
    prt_dnnl_base b;
    dnnl_primitive_t conv, r_src, r_wei, r_dst;
    /* user (plain) memories, blocked memories (NULL when not reordered), scratch */
    dnnl_memory_t src, wei, bias, dst, src_b, wei_b, dst_b, scratch;
    size_t off_src, off_wei, off_dst;
    bool blocked;
    const char *impl;
} conv_state;

static void conv_release(void *state) {
    conv_state *s = state;
    if (!s) return;
    dnnl_primitive_t p[] = {s->conv, s->r_src, s->r_wei, s->r_dst};
    for (size_t i = 0; i < 4; i++)
        if (p[i]) dnnl_primitive_destroy(p[i]);
    dnnl_memory_t m[] = {s->src, s->wei, s->bias, s->dst, s->src_b, s->wei_b, s->dst_b, s->scratch};
    for (size_t i = 0; i < 8; i++)
        if (m[i]) dnnl_memory_destroy(m[i]);
    prt_dnnl_base_fini(&s->b);
    prt_free(s->b.ctx, s, sizeof *s);
}

prt_status prt_conv_prepare_layout(const prt_kernel_call *c, int layout, void **state) {
    PRT_CHECK(conv_check(c));
    prt_context *ctx = c->ctx;
    conv_state *s = prt_calloc(ctx, 1, sizeof *s);
    if (!s) return prt_error(ctx, PRT_ERR_NOMEM, "conv kernel state");
    s->b.ctx = ctx;
    prt_status st;
    conv_plan p;
    memset(&p, 0, sizeof p);
    dnnl_engine_t eng;
    conv_geom g;
    conv_geom_of(c->attrs, &c->in[0]->shape, &g);
    PRT_CHECK_GOTO(prt_dnnl_engine(ctx, &eng), st, fail);
    PRT_DNNL_CHECK_GOTO(conv_plan_make(&g, layout, eng, &p), ctx, "conv", st, fail);
    PRT_CHECK_GOTO(prt_dnnl_base_init(c, &s->b, p.total), st, fail);
    s->blocked = p.blocked;
    s->impl = prt_dnnl_impl_name(p.conv);
    s->off_src = p.off_src;
    s->off_wei = p.off_wei;
    s->off_dst = p.off_dst;
    PRT_DNNL_CHECK_GOTO(dnnl_primitive_create(&s->conv, p.conv), ctx, "conv", st, fail);
    struct { dnnl_primitive_t *prim; dnnl_primitive_desc_t pd; dnnl_memory_t *mem; dnnl_query_t q; } r[] = {
        {&s->r_src, p.r_src, &s->src_b, dnnl_query_src_md},
        {&s->r_wei, p.r_wei, &s->wei_b, dnnl_query_weights_md},
        {&s->r_dst, p.r_dst, &s->dst_b, dnnl_query_dst_md},
    };
    for (size_t i = 0; i < 3; i++) {
        if (!r[i].pd) continue;
        PRT_DNNL_CHECK_GOTO(dnnl_primitive_create(r[i].prim, r[i].pd), ctx, "conv reorder", st, fail);
        PRT_DNNL_CHECK_GOTO(prt_dnnl_mem(r[i].mem, dnnl_primitive_desc_query_md(p.conv, r[i].q, 0), eng), ctx, "conv", st,
                            fail);
    }
    PRT_DNNL_CHECK_GOTO(prt_dnnl_mem(&s->src, &p.src, eng), ctx, "conv", st, fail);
    PRT_DNNL_CHECK_GOTO(prt_dnnl_mem(&s->wei, &p.wei, eng), ctx, "conv", st, fail);
    PRT_DNNL_CHECK_GOTO(prt_dnnl_mem(&s->dst, &p.dst, eng), ctx, "conv", st, fail);
    if (g.bias) PRT_DNNL_CHECK_GOTO(prt_dnnl_mem(&s->bias, &p.bias, eng), ctx, "conv", st, fail);
    if (p.scratch) {
        dnnl_memory_desc_t smd;
        dnnl_dims_t bytes = {(int64_t)p.scratch};
        /* one u8 region serves the conv and the reorders: they run one after another */
        PRT_DNNL_CHECK_GOTO(dnnl_memory_desc_init_by_tag(&smd, 1, bytes, dnnl_u8, dnnl_x), ctx, "conv", st, fail);
        PRT_DNNL_CHECK_GOTO(prt_dnnl_mem(&s->scratch, &smd, eng), ctx, "conv", st, fail);
    }
    prt_log_debug(ctx, "conv: oneDNN %s, %s layout", s->impl, s->blocked ? "blocked" : "plain");
    conv_plan_free(&p);
    *state = s;
    return PRT_OK;
fail:
    conv_plan_free(&p);
    conv_release(s);
    return st;
}

const char *prt_conv_state_impl(const void *state, bool *blocked) {
    const conv_state *s = state;
    if (blocked) *blocked = s && s->blocked;
    return s ? s->impl : "?";
}

static prt_status conv_prepare(const prt_kernel_call *c, void **state) {
    return prt_conv_prepare_layout(c, PRT_CONV_AUTO, state);
}

static prt_status conv_fast(const prt_kernel_call *c) {
    conv_state *s = c->state;
    if (!s) return prt_error(c->ctx, PRT_ERR_INTERNAL, "conv kernel: run before prepare");
    char *ws;
    PRT_CHECK(prt_dnnl_ws(&s->b, c, "conv", &ws));
    PRT_CHECK(prt_dnnl_bind(&s->b, s->src, PRT_F32P(c->in[0]), "conv"));
    PRT_CHECK(prt_dnnl_bind(&s->b, s->wei, PRT_F32P(c->in[1]), "conv"));
    PRT_CHECK(prt_dnnl_bind(&s->b, s->dst, PRT_F32P(c->out[0]), "conv"));
    if (s->bias) PRT_CHECK(prt_dnnl_bind(&s->b, s->bias, PRT_F32P(c->in[2]), "conv"));
    if (s->scratch) PRT_CHECK(prt_dnnl_bind(&s->b, s->scratch, ws, "conv"));
    if (s->src_b) PRT_CHECK(prt_dnnl_bind(&s->b, s->src_b, ws + s->off_src, "conv"));
    if (s->wei_b) PRT_CHECK(prt_dnnl_bind(&s->b, s->wei_b, ws + s->off_wei, "conv"));
    if (s->dst_b) PRT_CHECK(prt_dnnl_bind(&s->b, s->dst_b, ws + s->off_dst, "conv"));
    dnnl_exec_arg_t ra[3];
    int nr = 0;
#define REORDER(prim, from, to)                                                              \
    do {                                                                                     \
        nr = 0;                                                                              \
        ra[nr++] = (dnnl_exec_arg_t){DNNL_ARG_FROM, (from)};                                 \
        ra[nr++] = (dnnl_exec_arg_t){DNNL_ARG_TO, (to)};                                     \
        if (s->scratch) ra[nr++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, s->scratch};       \
        PRT_CHECK(prt_dnnl_exec(&s->b, (prim), nr, ra, "conv reorder"));                    \
    } while (0)
    if (s->r_src) REORDER(s->r_src, s->src, s->src_b);
    if (s->r_wei) REORDER(s->r_wei, s->wei, s->wei_b);
    dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, s->src_b ? s->src_b : s->src},
                               {DNNL_ARG_WEIGHTS, s->wei_b ? s->wei_b : s->wei},
                               {DNNL_ARG_DST, s->dst_b ? s->dst_b : s->dst}};
    int n = 3;
    if (s->bias) args[n++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, s->bias};
    if (s->scratch) args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, s->scratch};
    PRT_CHECK(prt_dnnl_exec(&s->b, s->conv, n, args, "conv"));
    if (s->r_dst) REORDER(s->r_dst, s->dst_b, s->dst);
#undef REORDER
    return PRT_OK;
}

/* ---- gradient --------------------------------------------------------- */

/* Index in node->in of schema param slot `slot` (data inputs first, then the
 * bound params in slot order). */
static int param_in(const prt_node *nd, int slot) {
    int k = nd->n_data_in;
    for (int p = 0; p < slot; p++) k += (nd->param_mask >> p) & 1u;
    return k;
}

/* dx = conv_bwd_data(dy, w, x), dw = conv_bwd_weight(dy, x, w), db =
 * bias_grad(dy). dx is skipped when x is a graph input: nothing upstream of an
 * image wants its gradient, and it costs as much as the forward conv. */
static prt_status conv_grad(prt_grad_ctx *gc) {
    prt_graph *g = gc->g;
    int dy = gc->dy[0];
    if (dy == -1) return PRT_OK;
    /* copies: emitting nodes may move g->nodes */
    const prt_node *nd = &g->nodes[gc->node];
    if (dy == PRT_GRAD_ONE)
        return prt_error(g->ctx, PRT_ERR_INVALID, "layer '%s' (conv): its output is not a scalar loss", nd->name);
    int wi = param_in(nd, P_WEIGHT), bi = param_in(nd, P_BIAS);
    int x = nd->in[0], w = nd->in[wi];
    bool bias = (nd->param_mask >> P_BIAS) & 1u;
    if (g->values[x].kind != PRT_VAL_INPUT) {
        int in[3] = {dy, w, x};
        PRT_CHECK(prt_grad_emit(gc, "conv_bwd_data", in, 3, NULL, &gc->dx[0]));
    }
    int in[3] = {dy, x, w};
    PRT_CHECK(prt_grad_emit(gc, "conv_bwd_weight", in, 3, NULL, &gc->dx[wi]));
    if (bias) {
        prt_attr none[1] = {{0}};
        PRT_CHECK(prt_grad_emit(gc, "bias_grad", &dy, 1, none, &gc->dx[bi]));
    }
    return PRT_OK;
}

const prt_op_schema prt_op_conv = {
    .name = "conv",
    .doc = "2-D convolution",
    .min_in = 1,
    .max_in = 1,
    .n_out = 1,
    .attrs = prt_conv_attrs,
    .n_attrs = 7,
    .params = conv_params,
    .n_params = 2,
    .infer = conv_infer,
    .flops = conv_flops,
    .inplace_in = -1,
    .workspace = conv_workspace,
    .ref = {.run = conv_ref},
    .fast = {.prepare = conv_prepare, .run = conv_fast, .release = conv_release},
    .grad = conv_grad,
    .cuda = PRT_CUDNN_KERNEL(prt_cudnn_conv_prepare, prt_cudnn_conv, prt_cudnn_conv_release),
    .workspace_cuda = PRT_CUDNN_FN(prt_cudnn_conv_workspace),
    .cuda_bf16 = true,
};

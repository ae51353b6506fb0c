/* The convolution backward plumbing shared by conv_bwd_data and conv_bwd_weight:
 * shape inference through the forward conv's own checks, FLOPs, and the oneDNN
 * fast path (convolution_backward_data / convolution_backward_weights) in the
 * layout chosen per layer by measurement, with reorders around it like the
 * forward conv (ops/op_conv.c). */
#include "ops/bwd_util.h"

#include <string.h>

void prt_conv_bwd_geom_of(const prt_attr *attrs, const prt_shape *x, prt_conv_bwd_geom *g) {
    g->n = x->d[0];
    g->c = x->d[1];
    g->h = x->d[2];
    g->w = x->d[3];
    g->o = prt_attr_int(&attrs[PRT_CONV_A_OUT]);
    g->g = prt_attr_int(&attrs[PRT_CONV_A_GROUPS]);
    prt_window *w = &g->win;
    prt_attr_pair(&attrs[PRT_CONV_A_KERNEL], &w->kh, &w->kw);
    prt_attr_pair(&attrs[PRT_CONV_A_STRIDE], &w->sh, &w->sw);
    prt_attr_pair(&attrs[PRT_CONV_A_DILATION], &w->dh, &w->dw);
    prt_attr_pad4(&attrs[PRT_CONV_A_PAD], w->pad);
    w->oh = w->ow = 0;
    prt_window_extent(g->h, w->pad[0], w->pad[2], w->kh, w->sh, w->dh, &w->oh);
    prt_window_extent(g->w, w->pad[1], w->pad[3], w->kw, w->sw, w->dw, &w->ow);
}

/* Where x and w sit among the data inputs. */
static void slots(prt_conv_bwd_kind kind, int *xi, int *wi) {
    *xi = kind == PRT_CONV_BWD_DATA ? 2 : 1;
    *wi = kind == PRT_CONV_BWD_DATA ? 1 : 2;
}

prt_status prt_conv_bwd_infer(prt_infer_ctx *ic, prt_conv_bwd_kind kind) {
    int xi, wi;
    slots(kind, &xi, &wi);
    /* the forward conv's shape function validates x and every attribute, so the
     * two directions accept exactly the same layers */
    prt_shape y, params[2];
    bool present[2];
    prt_infer_ctx f = *ic;
    f.n_in = 1;
    f.in = &ic->in[xi];
    f.n_out = 1;
    f.out = &y;
    f.n_params = 2;
    f.params = params;
    f.param_present = present;
    PRT_CHECK(prt_op_conv.infer(&f));
    const struct { const prt_shape *got, *want; const char *what; } chk[] = {
        {&ic->in[0], &y, "dy (the gradient of the conv output)"},
        {&ic->in[wi], &params[0], "the weight"},
    };
    for (int i = 0; i < 2; i++) {
        if (prt_shape_eq(chk[i].got, chk[i].want)) continue;
        char a[160], b[160], x[160];
        prt_shape_str(chk[i].got, a, sizeof a);
        prt_shape_str(chk[i].want, b, sizeof b);
        prt_shape_str(&ic->in[xi], x, sizeof x);
        return prt_infer_error(ic, "%s is %s, expected %s for the input %s", chk[i].what, a, b, x);
    }
    ic->out[0] = ic->in[kind == PRT_CONV_BWD_DATA ? xi : wi];
    return PRT_OK;
}

int64_t prt_conv_bwd_flops(const prt_infer_ctx *ic, prt_conv_bwd_kind kind) {
    int xi, wi;
    slots(kind, &xi, &wi);
    const prt_shape *w = &ic->in[wi]; /* [out, C/groups, kh, kw]; dy is the forward output */
    int64_t per_out = prt_flop_mul(w->d[1], prt_flop_mul(w->d[2], w->d[3]));
    return prt_flop_mul(2, prt_flop_mul(prt_ops_numel(&ic->in[0]), per_out));
}

/* ---- fast path: oneDNN ------------------------------------------------ */

/* Which layout to run a layer's backward in, per direction. Measured with
 * bench/conv_bwd.c (oneDNN 2.6, Zen 3 with AVX2, batch 8, PolyNet-shaped
 * layers; 1 thread, as the shared 2-core machine gave unsteady 2-thread
 * figures; GFLOP/s including the reorders, see bench/RESULTS.md):
 *  - data: the blocked direct kernels beat col2im + GEMM on every unstrided
 *    spatial kernel, 8x8 planes included (3x3 256->256 56x56: 87 vs 72;
 *    C 3x1 8x8: 83 vs 54), unlike the forward; strided ones go to GEMM
 *    (3x3/2 256->288 17x17: 72 vs 63). A 1x1 layer's gradient is a GEMM with
 *    the output channels as its inner dimension: blocked wins once there are
 *    128 or more per group (2048->192 8x8: 75 vs 42), GEMM below (384->32: 74
 *    vs 52).
 *  - weight: im2col + GEMM wins once the input channels (the GEMM's rows per
 *    tap) reach 192 per group (3x3 256->256: 67 vs 62, twice that gap with 2
 *    threads; C 1x3 192->224: 77 vs 58); with fewer the blocked kernels do
 *    (stem 3x3 32->64: 59 vs 38; 1x7 128->160: 67 vs 53), and 1x1 layers stay
 *    on GEMM (1152->128: 68 vs 60). */
static bool prefer_blocked(const prt_conv_bwd_geom *g, prt_conv_bwd_kind kind) {
    const prt_window *w = &g->win;
    bool spatial = w->kh * w->kw > 1, strided = w->sh > 1 || w->sw > 1;
    if (kind == PRT_CONV_BWD_DATA) return spatial ? !strided : g->o / g->g >= 128;
    return spatial && g->c / g->g < 192;
}

static dnnl_status_t make_pd(const prt_conv_bwd_geom *g, prt_conv_bwd_kind kind, bool blocked, dnnl_engine_t eng,
                             dnnl_primitive_desc_t *out, prt_dnnl_io io[3]) {
    const prt_window *w = &g->win;
    *out = NULL;
    dnnl_dims_t sd = {g->n, g->c, g->h, g->w}, dd = {g->n, g->o, w->oh, w->ow};
    int64_t wd5[5] = {g->g, g->o / g->g, g->c / g->g, w->kh, w->kw};
    /* a grouped weight [out, C/g, kh, kw] is [g, out/g, C/g, kh, kw] in the same bytes */
    int wn = g->g > 1 ? 5 : 4;
    const int64_t *wdims = g->g > 1 ? wd5 : wd5 + 1;
    dnnl_memory_desc_t src, wei, dst;
    dnnl_status_t st = prt_dnnl_md_plain(&src, 4, sd);
    if (st == dnnl_success) st = prt_dnnl_md_plain(&wei, wn, wdims);
    if (st == dnnl_success) st = prt_dnnl_md_plain(&dst, 4, dd);
    if (st != dnnl_success) return st;
    bool data = kind == PRT_CONV_BWD_DATA;
    io[0] = (prt_dnnl_io){DNNL_ARG_DIFF_DST, 0, dst};
    io[1] = data ? (prt_dnnl_io){DNNL_ARG_WEIGHTS, 1, wei} : (prt_dnnl_io){DNNL_ARG_SRC, 1, src};
    io[2] = data ? (prt_dnnl_io){DNNL_ARG_DIFF_SRC, -1, src} : (prt_dnnl_io){DNNL_ARG_DIFF_WEIGHTS, -1, wei};
    if (blocked) {
        dnnl_dims_t wdd;
        memcpy(wdd, wdims, (size_t)wn * sizeof(int64_t));
        st = dnnl_memory_desc_init_by_tag(&src, 4, sd, dnnl_f32, dnnl_format_tag_any);
        if (st == dnnl_success) st = dnnl_memory_desc_init_by_tag(&wei, wn, wdd, dnnl_f32, dnnl_format_tag_any);
        if (st == dnnl_success) st = dnnl_memory_desc_init_by_tag(&dst, 4, dd, dnnl_f32, dnnl_format_tag_any);
        if (st != dnnl_success) return st;
    }
    dnnl_dims_t strides = {w->sh, w->sw}, dil = {w->dh - 1, w->dw - 1};
    dnnl_dims_t pl = {w->pad[0], w->pad[1]}, pr = {w->pad[2], w->pad[3]};
    dnnl_convolution_desc_t fd, bd;
    dnnl_primitive_desc_t hint = NULL;
    st = dnnl_dilated_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct, &src, &wei,
                                                    NULL, &dst, strides, dil, pl, pr);
    if (st == dnnl_success) st = prt_dnnl_pd_create(&hint, &fd, eng);
    if (st != dnnl_success) return st;
    if (data)
        st = dnnl_dilated_convolution_backward_data_desc_init(&bd, dnnl_convolution_direct, &src, &wei, &dst, strides,
                                                              dil, pl, pr);
    else
        st = dnnl_dilated_convolution_backward_weights_desc_init(&bd, dnnl_convolution_direct, &src, &wei, NULL, &dst,
                                                                 strides, dil, pl, pr);
    if (st == dnnl_success) st = prt_dnnl_pd_create_hint(out, &bd, eng, hint);
    dnnl_primitive_desc_destroy(hint);
    return st;
}

static dnnl_status_t try_layout(const prt_conv_bwd_geom *g, prt_conv_bwd_kind kind, bool blocked, dnnl_engine_t eng,
                                prt_dnnl_plan *p) {
    dnnl_primitive_desc_t pd;
    prt_dnnl_io io[3];
    memset(p, 0, sizeof *p);
    dnnl_status_t st = make_pd(g, kind, blocked, eng, &pd, io);
    if (st != dnnl_success) return st;
    return prt_dnnl_plan_make(p, pd, io, 3, eng);
}

static dnnl_status_t plan_make(const prt_conv_bwd_geom *g, prt_conv_bwd_kind kind, int layout, dnnl_engine_t eng,
                               prt_dnnl_plan *p) {
    bool blocked = layout == PRT_CONV_BLOCKED || (layout == PRT_CONV_AUTO && prefer_blocked(g, kind));
    dnnl_status_t st = try_layout(g, kind, blocked, eng, p);
    if (layout == PRT_CONV_AUTO && (st != dnnl_success || prt_dnnl_pd_is_ref(p->pd))) {
        /* only oneDNN's slow reference kernel for this layout (odd group sizes,
         * strides some direct kernels lack): try the other one */
        prt_dnnl_plan q;
        if (try_layout(g, kind, !blocked, eng, &q) == dnnl_success &&
            (st != dnnl_success || !prt_dnnl_pd_is_ref(q.pd))) {
            prt_dnnl_plan_free(p);
            *p = q;
            st = dnnl_success;
        } else {
            prt_dnnl_plan_free(&q);
        }
    }
    return st;
}

size_t prt_conv_bwd_workspace(const prt_infer_ctx *ic, prt_conv_bwd_kind kind) {
    dnnl_engine_t eng = prt_dnnl_engine_quiet();
    int xi, wi;
    slots(kind, &xi, &wi);
    prt_conv_bwd_geom g;
    prt_conv_bwd_geom_of(ic->attrs, &ic->in[xi], &g);
    prt_dnnl_plan p;
    if (!eng || plan_make(&g, kind, PRT_CONV_AUTO, eng, &p) != dnnl_success) return 0;
    size_t total = p.total;
    prt_dnnl_plan_free(&p);
    return total;
}

prt_status prt_conv_bwd_prepare_layout(const prt_kernel_call *c, prt_conv_bwd_kind kind, int layout, void **state) {
    const char *what = kind == PRT_CONV_BWD_DATA ? "conv_bwd_data" : "conv_bwd_weight";
    PRT_CHECK(prt_kernel_check_f32(c, what));
    if (c->n_in != 3 || c->n_out != 1)
        return prt_error(c->ctx, PRT_ERR_INTERNAL, "%s kernel: %d inputs and %d outputs, expected 3 and 1", what,
                         c->n_in, c->n_out);
    int xi, wi;
    slots(kind, &xi, &wi);
    prt_conv_bwd_geom g;
    prt_conv_bwd_geom_of(c->attrs, &c->in[xi]->shape, &g);
    dnnl_engine_t eng;
    PRT_CHECK(prt_dnnl_engine(c->ctx, &eng));
    prt_dnnl_plan p;
    PRT_CHECK(prt_dnnl_check(c->ctx, plan_make(&g, kind, layout, eng, &p), what));
    prt_dnnl_prim *s;
    prt_status st = prt_dnnl_prim_create(c, &p, what, &s);
    prt_dnnl_plan_free(&p);
    if (st != PRT_OK) return st;
    prt_log_debug(c->ctx, "%s: oneDNN %s, %s layout", what, s->impl, s->reordered ? "blocked" : "plain");
    *state = s;
    return PRT_OK;
}

prt_status prt_conv_bwd_run(const prt_kernel_call *c, const char *what) {
    return prt_dnnl_prim_run(c->state, c, what);
}

/* 2-D pooling shared by maxpool and avgpool: the window geometry, shape
 * inference, the reference loops and the oneDNN fast path. Padding never
 * contributes to a max; an average counts it or not (count_include_pad). Each
 * pad must be smaller than the kernel, so every window sees real input. */
#include "ops/dnnl_util.h"
#include "ops/ops_util.h"

#include <math.h>
#include <string.h>

prt_status prt_pool_window(const prt_infer_ctx *ic, const prt_attr *attrs, const prt_shape *in, prt_window *w) {
    const prt_attr *k = &attrs[PRT_POOL_KERNEL], *s = &attrs[PRT_POOL_STRIDE], *p = &attrs[PRT_POOL_PAD];
    w->dh = w->dw = 1;
    if (prt_attr_bool(&attrs[PRT_POOL_GLOBAL])) {
        const char *bad = k->set && k->n > 0 ? "kernel" : s->set && s->n > 0 ? "stride" : NULL;
        for (int i = 0; !bad && i < p->n; i++)
            if (p->i[i] != 0) bad = "pad";
        if (bad) return ic ? prt_infer_error(ic, "%s cannot be combined with global: true", bad) : PRT_ERR_SHAPE;
        w->kh = in->d[2];
        w->kw = in->d[3];
        w->sh = w->sw = 1;
        for (int i = 0; i < 4; i++) w->pad[i] = 0;
        w->oh = w->ow = 1;
        return PRT_OK;
    }
    if (!ic) {
        /* kernels trust attributes that passed inference */
        prt_attr_pair(k, &w->kh, &w->kw);
        if (s->n > 0) prt_attr_pair(s, &w->sh, &w->sw);
        else w->sh = w->kh, w->sw = w->kw;
        prt_attr_pad4(p, w->pad);
        prt_window_extent(in->d[2], w->pad[0], w->pad[2], w->kh, w->sh, 1, &w->oh);
        prt_window_extent(in->d[3], w->pad[1], w->pad[3], w->kw, w->sw, 1, &w->ow);
        return PRT_OK;
    }
    if (k->n == 0) return prt_infer_error(ic, "kernel is required unless global: true");
    PRT_CHECK(prt_infer_check_ints(ic, PRT_POOL_KERNEL, "kernel", 1, 2, 1));
    if (s->n > 0) PRT_CHECK(prt_infer_check_ints(ic, PRT_POOL_STRIDE, "stride", 1, 2, 1));
    if (p->n == 3) return prt_infer_error(ic, "pad takes 1, 2 or 4 values, got 3");
    PRT_CHECK(prt_infer_check_ints(ic, PRT_POOL_PAD, "pad", 1, 4, 0));
    prt_attr_pair(k, &w->kh, &w->kw);
    if (s->n > 0) prt_attr_pair(s, &w->sh, &w->sw);
    else w->sh = w->kh, w->sw = w->kw;
    prt_attr_pad4(p, w->pad);
    static const char *const side[4] = {"top", "left", "bottom", "right"};
    for (int i = 0; i < 4; i++) {
        int64_t kk = i % 2 ? w->kw : w->kh;
        if (w->pad[i] >= kk)
            return prt_infer_error(ic, "%s pad %lld must be smaller than the kernel (%lld)", side[i],
                                   (long long)w->pad[i], (long long)kk);
    }
    if (!prt_window_extent(in->d[2], w->pad[0], w->pad[2], w->kh, w->sh, 1, &w->oh) ||
        !prt_window_extent(in->d[3], w->pad[1], w->pad[3], w->kw, w->sw, 1, &w->ow))
        return prt_infer_error(ic, "window size overflows");
    if (w->oh <= 0 || w->ow <= 0)
        return prt_infer_error(ic, "output would be %lldx%lld: input %lldx%lld with pads %lld+%lld, %lld+%lld is smaller "
                               "than the kernel %lldx%lld",
                               (long long)w->oh, (long long)w->ow, (long long)in->d[2], (long long)in->d[3],
                               (long long)w->pad[0], (long long)w->pad[2], (long long)w->pad[1], (long long)w->pad[3],
                               (long long)w->kh, (long long)w->kw);
    return PRT_OK;
}

prt_status prt_pool_infer(prt_infer_ctx *ic) {
    const prt_shape *in = &ic->in[0];
    if (in->ndim != 4) {
        char b[160];
        prt_shape_str(in, b, sizeof b);
        return prt_infer_error(ic, "expects a rank-4 input [N, C, H, W], got %s", b);
    }
    prt_window w = {0};
    PRT_CHECK(prt_pool_window(ic, ic->attrs, in, &w));
    ic->out[0] = prt_shape4(in->d[0], in->d[1], w.oh, w.ow);
    return PRT_OK;
}

int64_t prt_pool_flops(const prt_infer_ctx *ic) {
    prt_window w = {0};
    prt_pool_window(NULL, ic->attrs, &ic->in[0], &w);
    return prt_flop_mul(prt_ops_numel(&ic->out[0]), prt_flop_mul(w.kh, w.kw));
}

/* One [H, W] plane. The window is clipped to the plane once per output
 * (padding never contributes), so the inner loops have no bounds tests; the
 * visiting order, and so every sum and every NaN, is that of the full window. */
static void pool_plane(const float *x, float *y, int64_t h, int64_t wd, const prt_window *w, bool avg,
                       bool count_pad) {
    for (int64_t oy = 0; oy < w->oh; oy++) {
        int64_t y0 = oy * w->sh - w->pad[0];
        int64_t ky0 = y0 < 0 ? -y0 : 0, ky1 = y0 + w->kh > h ? h - y0 : w->kh;
        for (int64_t ox = 0; ox < w->ow; ox++) {
            int64_t x0 = ox * w->sw - w->pad[1];
            int64_t kx0 = x0 < 0 ? -x0 : 0, kx1 = x0 + w->kw > wd ? wd - x0 : w->kw;
            float m = -INFINITY, sum = 0;
            int64_t count = 0;
            for (int64_t ky = ky0; ky < ky1; ky++) {
                const float *row = x + (y0 + ky) * wd + x0;
                for (int64_t kx = kx0; kx < kx1; kx++) {
                    float v = row[kx];
                    if (v > m || v != v) m = v;
                    sum += v;
                }
                count += kx1 > kx0 ? kx1 - kx0 : 0;
            }
            if (avg) y[oy * w->ow + ox] = sum / (float)(count_pad ? w->kh * w->kw : count);
            else y[oy * w->ow + ox] = m;
        }
    }
}

static void pool_geometry(const prt_kernel_call *c, prt_window *w, bool *count_pad, bool avg) {
    prt_pool_window(NULL, c->attrs, &c->in[0]->shape, w);
    *count_pad = avg && prt_attr_bool(&c->attrs[PRT_POOL_COUNT_PAD]);
}

prt_status prt_pool_ref(const prt_kernel_call *c, bool avg) {
    PRT_CHECK(prt_kernel_check_f32(c, avg ? "avgpool" : "maxpool"));
    prt_window w = {0};
    bool count_pad;
    pool_geometry(c, &w, &count_pad, avg);
    const prt_shape *s = &c->in[0]->shape;
    int64_t planes = s->d[0] * s->d[1], h = s->d[2], wd = s->d[3];
    for (int64_t p = 0; p < planes; p++)
        pool_plane(PRT_F32P(c->in[0]) + p * h * wd, PRT_F32P(c->out[0]) + p * w.oh * w.ow, h, wd, &w, avg, count_pad);
    return PRT_OK;
}

/* ---- fast path: oneDNN pooling, with OpenMP loops where oneDNN has only its
 * reference implementation ---------------------------------------------- */

typedef struct pool_state {
    prt_dnnl_base b;
    dnnl_primitive_t prim; /* NULL: the OpenMP loop */
    dnnl_memory_t src, dst, scratch;
    bool avg;
} pool_state;

static dnnl_status_t pool_pd(const prt_shape *in, const prt_window *w, bool avg, bool count_pad, dnnl_engine_t eng,
                             dnnl_primitive_desc_t *pd) {
    dnnl_memory_desc_t src, dst;
    int64_t od[4] = {in->d[0], in->d[1], w->oh, w->ow};
    dnnl_dims_t strides = {w->sh, w->sw}, kernel = {w->kh, w->kw}, dil = {0, 0};
    dnnl_dims_t pl = {w->pad[0], w->pad[1]}, pr = {w->pad[2], w->pad[3]};
    dnnl_alg_kind_t alg = !avg ? dnnl_pooling_max
                          : count_pad ? dnnl_pooling_avg_include_padding
                                      : dnnl_pooling_avg_exclude_padding;
    dnnl_pooling_v2_desc_t d;
    dnnl_status_t st = prt_dnnl_md_plain(&src, 4, in->d);
    if (st == dnnl_success) st = prt_dnnl_md_plain(&dst, 4, od);
    if (st == dnnl_success)
        st = dnnl_pooling_v2_forward_desc_init(&d, dnnl_forward_inference, alg, &src, &dst, strides, kernel, dil, pl, pr);
    if (st == dnnl_success) st = prt_dnnl_pd_create(pd, &d, eng);
    /* oneDNN's reference and its plain-NCHW "simple" kernels are slower than the
     * OpenMP loop (simple_nchw: 27 ms against 1-2 ms for a 64x32x28x28 max pool
     * on the 2-core development machine) */
    if (st == dnnl_success && (prt_dnnl_pd_is_ref(*pd) || strncmp(prt_dnnl_impl_name(*pd), "simple", 6) == 0)) {
        dnnl_primitive_desc_destroy(*pd);
        *pd = NULL;
        return dnnl_unimplemented;
    }
    return st;
}

size_t prt_pool_workspace(const prt_infer_ctx *ic, bool avg) {
    dnnl_engine_t eng = prt_dnnl_engine_quiet();
    prt_window w = {0};
    dnnl_primitive_desc_t pd;
    prt_pool_window(NULL, ic->attrs, &ic->in[0], &w);
    bool count_pad = avg && prt_attr_bool(&ic->attrs[PRT_POOL_COUNT_PAD]);
    if (!eng || pool_pd(&ic->in[0], &w, avg, count_pad, eng, &pd) != dnnl_success) return 0;
    size_t n = prt_dnnl_scratch_size(pd);
    dnnl_primitive_desc_destroy(pd);
    return n ? prt_dnnl_align(n) : 0;
}

void prt_pool_fast_release(void *state) {
    pool_state *s = state;
    if (!s) return;
    if (s->prim) dnnl_primitive_destroy(s->prim);
    if (s->src) dnnl_memory_destroy(s->src);
    if (s->dst) dnnl_memory_destroy(s->dst);
    if (s->scratch) dnnl_memory_destroy(s->scratch);
    prt_dnnl_base_fini(&s->b);
    prt_free(s->b.ctx, s, sizeof *s);
}

prt_status prt_pool_fast_prepare(const prt_kernel_call *c, bool avg, void **state) {
    const char *what = avg ? "avgpool" : "maxpool";
    PRT_CHECK(prt_kernel_check_f32(c, what));
    prt_context *ctx = c->ctx;
    pool_state *s = prt_calloc(ctx, 1, sizeof *s);
    if (!s) return prt_error(ctx, PRT_ERR_NOMEM, "%s kernel state", what);
    s->b.ctx = ctx;
    s->avg = avg;
    prt_status st;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_engine_t eng;
    prt_window w = {0};
    bool count_pad;
    pool_geometry(c, &w, &count_pad, avg);
    PRT_CHECK_GOTO(prt_dnnl_engine(ctx, &eng), st, fail);
    dnnl_status_t ds = pool_pd(&c->in[0]->shape, &w, avg, count_pad, eng, &pd);
    if (ds == dnnl_unimplemented) {
        PRT_CHECK_GOTO(prt_dnnl_base_init(c, &s->b, 0), st, fail);
        *state = s;
        return PRT_OK;
    }
    PRT_DNNL_CHECK_GOTO(ds, ctx, what, st, fail);
    size_t scratch = prt_dnnl_scratch_size(pd);
    PRT_CHECK_GOTO(prt_dnnl_base_init(c, &s->b, scratch ? prt_dnnl_align(scratch) : 0), st, fail);
    PRT_DNNL_CHECK_GOTO(dnnl_primitive_create(&s->prim, pd), ctx, what, st, fail);
    PRT_DNNL_CHECK_GOTO(prt_dnnl_mem(&s->src, dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0), eng), ctx, what,
                        st, fail);
    PRT_DNNL_CHECK_GOTO(prt_dnnl_mem(&s->dst, dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0), eng), ctx, what,
                        st, fail);
    if (scratch)
        PRT_DNNL_CHECK_GOTO(prt_dnnl_mem(&s->scratch, dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0), eng),
                            ctx, what, st, fail);
    dnnl_primitive_desc_destroy(pd);
    *state = s;
    return PRT_OK;
fail:
    if (pd) dnnl_primitive_desc_destroy(pd);
    prt_pool_fast_release(s);
    return st;
}

prt_status prt_pool_fast_run(const prt_kernel_call *c) {
    pool_state *s = c->state;
    if (!s) return prt_error(c->ctx, PRT_ERR_INTERNAL, "pooling kernel: run before prepare");
    const char *what = s->avg ? "avgpool" : "maxpool";
    if (!s->prim) {
        prt_window w;
        bool count_pad;
        pool_geometry(c, &w, &count_pad, s->avg);
        const prt_shape *sh = &c->in[0]->shape;
        int64_t planes = sh->d[0] * sh->d[1], h = sh->d[2], wd = sh->d[3];
        const float *x = PRT_F32P(c->in[0]);
        float *y = PRT_F32P(c->out[0]);
#pragma omp parallel for schedule(static) if (planes > 1)
        for (int64_t p = 0; p < planes; p++)
            pool_plane(x + p * h * wd, y + p * w.oh * w.ow, h, wd, &w, s->avg, count_pad);
        return PRT_OK;
    }
    PRT_CHECK(prt_dnnl_bind(&s->b, s->src, PRT_F32P(c->in[0]), what));
    PRT_CHECK(prt_dnnl_bind(&s->b, s->dst, PRT_F32P(c->out[0]), what));
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, s->src}, {DNNL_ARG_DST, s->dst}, {DNNL_ARG_SCRATCHPAD, s->scratch}};
    if (s->scratch) {
        char *ws;
        PRT_CHECK(prt_dnnl_ws(&s->b, c, what, &ws));
        PRT_CHECK(prt_dnnl_bind(&s->b, s->scratch, ws, what));
    }
    return prt_dnnl_exec(&s->b, s->prim, s->scratch ? 3 : 2, args, what);
}

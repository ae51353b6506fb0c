/* softmax along `axis` (negative counts from the end), computed as
 * exp(x - max) / sum(exp(x - max)) so large inputs do not overflow.
 * Fast path: oneDNN's softmax primitive on the plain layout where oneDNN has an
 * optimised kernel for it (the last axis); OpenMP loops vectorised along the
 * contiguous inner dimension otherwise (oneDNN 2.6 would use its reference
 * kernel for axis 1 of [N, C, H, W]). */
#include "ops/dnnl_util.h"
#include "ops/ops_util.h"

#include <math.h>

enum { A_AXIS };

const prt_attr_def prt_softmax_attrs[1] = {
    PRT_ATTR_OPT_INT("axis", 1, -PRT_MAX_DIMS, "the dimension that sums to one"),
};

static int softmax_axis(const prt_attr *attrs, int ndim) {
    int64_t a = prt_attr_int(&attrs[A_AXIS]);
    if (a < 0) a += ndim;
    return a >= 0 && a < ndim ? (int)a : -1;
}

static prt_status softmax_infer(prt_infer_ctx *ic) {
    if (softmax_axis(ic->attrs, ic->in[0].ndim) < 0)
        return prt_infer_error(ic, "axis %lld is out of range for a rank-%d input",
                               (long long)prt_attr_int(&ic->attrs[A_AXIS]), ic->in[0].ndim);
    ic->out[0] = ic->in[0];
    return PRT_OK;
}

/* dx = softmax_bwd(dy, y) along the same axis. */
static prt_status softmax_grad(prt_grad_ctx *gc) {
    if (gc->dy[0] == -1 || !prt_grad_wants(gc, 0)) return PRT_OK;
    if (gc->dy[0] == PRT_GRAD_ONE) return prt_grad_not_loss(gc);
    int in[2] = {gc->dy[0], gc->g->nodes[gc->node].out[0]};
    return prt_grad_emit(gc, "softmax_bwd", in, 2, NULL, &gc->dx[0]);
}

/* max, subtract, exp, sum, divide: about 4 per element, exp counted as one */
static int64_t softmax_flops(const prt_infer_ctx *ic) { return prt_flops_per_elem(ic, 4); }

static prt_status softmax_ref(const prt_kernel_call *c) {
    PRT_CHECK(prt_kernel_check_f32(c, "softmax"));
    const prt_shape *s = &c->in[0]->shape;
    int axis = softmax_axis(c->attrs, s->ndim);
    int64_t outer = 1, inner = 1, len = s->d[axis];
    for (int i = 0; i < axis; i++) outer *= s->d[i];
    for (int i = axis + 1; i < s->ndim; i++) inner *= s->d[i];
    const float *x = PRT_F32P(c->in[0]);
    float *y = PRT_F32P(c->out[0]);
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t in = 0; in < inner; in++) {
            const float *xs = x + o * len * inner + in;
            float *ys = y + o * len * inner + in;
            float mx = -INFINITY;
            for (int64_t k = 0; k < len; k++)
                if (xs[k * inner] > mx) mx = xs[k * inner];
            float sum = 0;
            for (int64_t k = 0; k < len; k++) {
                float e = expf(xs[k * inner] - mx);
                ys[k * inner] = e;
                sum += e;
            }
            for (int64_t k = 0; k < len; k++) ys[k * inner] /= sum;
        }
    }
    return PRT_OK;
}

/* ---- fast path: oneDNN ------------------------------------------------ */

/* One outer index, inner positions [i0, i1) (at most SM_BLOCK): the running max
 * and sum live in small arrays so the loops run along contiguous memory. */
#define SM_BLOCK 256
static void softmax_block(const float *x, float *y, int64_t len, int64_t inner, int64_t i0, int64_t i1) {
    float mx[SM_BLOCK], sum[SM_BLOCK];
    int64_t w = i1 - i0;
    for (int64_t i = 0; i < w; i++) mx[i] = -INFINITY, sum[i] = 0;
    for (int64_t k = 0; k < len; k++) {
        const float *xs = x + k * inner + i0;
        for (int64_t i = 0; i < w; i++) mx[i] = xs[i] > mx[i] ? xs[i] : mx[i];
    }
    for (int64_t k = 0; k < len; k++) {
        const float *xs = x + k * inner + i0;
        float *ys = y + k * inner + i0;
        for (int64_t i = 0; i < w; i++) {
            ys[i] = expf(xs[i] - mx[i]);
            sum[i] += ys[i];
        }
    }
    for (int64_t i = 0; i < w; i++) sum[i] = 1.0f / sum[i];
    for (int64_t k = 0; k < len; k++) {
        float *ys = y + k * inner + i0;
        for (int64_t i = 0; i < w; i++) ys[i] *= sum[i];
    }
}

typedef struct softmax_args {
    const float *x;
    float *y;
    int64_t len, inner, blocks; /* blocks of SM_BLOCK inner positions per outer index */
} softmax_args;

static void softmax_range(void *arg, int64_t lo, int64_t hi) {
    const softmax_args *a = arg;
    for (int64_t t = lo; t < hi; t++) {
        int64_t o = t / a->blocks, i0 = (t % a->blocks) * SM_BLOCK;
        int64_t i1 = i0 + SM_BLOCK < a->inner ? i0 + SM_BLOCK : a->inner;
        softmax_block(a->x + o * a->len * a->inner, a->y + o * a->len * a->inner, a->len, a->inner, i0, i1);
    }
}

static void softmax_loops(const prt_kernel_call *c) {
    const prt_shape *s = &c->in[0]->shape;
    int axis = softmax_axis(c->attrs, s->ndim);
    softmax_args a = {PRT_F32P(c->in[0]), PRT_F32P(c->out[0]), s->d[axis], 1, 0};
    int64_t outer = 1;
    for (int i = 0; i < axis; i++) outer *= s->d[i];
    for (int i = axis + 1; i < s->ndim; i++) a.inner *= s->d[i];
    a.blocks = (a.inner + SM_BLOCK - 1) / SM_BLOCK;
    int64_t per_task = a.len * (a.inner < SM_BLOCK ? a.inner : SM_BLOCK);
    prt_parallel_range(outer * a.blocks, PRT_PAR_MIN_ELEMS / 4 / per_task + 1, softmax_range, &a);
}

typedef struct softmax_state {
    prt_dnnl_base b;
    dnnl_primitive_t prim; /* NULL: softmax_loops */
    dnnl_memory_t src, dst, scratch;
} softmax_state;

static dnnl_status_t softmax_pd(const prt_shape *s, int axis, dnnl_engine_t eng, dnnl_primitive_desc_t *pd) {
    dnnl_memory_desc_t md;
    dnnl_softmax_desc_t d;
    dnnl_status_t st = prt_dnnl_md_plain(&md, s->ndim, s->d);
    if (st == dnnl_success) st = dnnl_softmax_forward_desc_init(&d, dnnl_forward_inference, &md, axis);
    if (st == dnnl_success) st = prt_dnnl_pd_create(pd, &d, eng);
    if (st == dnnl_success && prt_dnnl_pd_is_ref(*pd)) {
        dnnl_primitive_desc_destroy(*pd);
        *pd = NULL;
        return dnnl_unimplemented;
    }
    return st;
}

static size_t softmax_workspace(const prt_infer_ctx *ic) {
    dnnl_engine_t eng = prt_dnnl_engine_quiet();
    dnnl_primitive_desc_t pd;
    int axis = softmax_axis(ic->attrs, ic->in[0].ndim);
    if (!eng || axis < 0 || softmax_pd(&ic->in[0], axis, eng, &pd) != dnnl_success) return 0;
    size_t n = prt_dnnl_scratch_size(pd);
    dnnl_primitive_desc_destroy(pd);
    return n ? prt_dnnl_align(n) : 0;
}

static void softmax_release(void *state) {
    softmax_state *s = state;
    if (!s) return;
    if (s->prim) dnnl_primitive_destroy(s->prim);
    if (s->src) dnnl_memory_destroy(s->src);
    if (s->dst) dnnl_memory_destroy(s->dst);
    if (s->scratch) dnnl_memory_destroy(s->scratch);
    prt_dnnl_base_fini(&s->b);
    prt_free(s->b.ctx, s, sizeof *s);
}

static prt_status softmax_prepare(const prt_kernel_call *c, void **state) {
    PRT_CHECK(prt_kernel_check_f32(c, "softmax"));
    prt_context *ctx = c->ctx;
    softmax_state *s = prt_calloc(ctx, 1, sizeof *s);
    if (!s) return prt_error(ctx, PRT_ERR_NOMEM, "softmax kernel state");
    s->b.ctx = ctx;
    prt_status st;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_engine_t eng;
    PRT_CHECK_GOTO(prt_dnnl_engine(ctx, &eng), st, fail);
    const prt_shape *sh = &c->in[0]->shape;
    dnnl_status_t ds = softmax_pd(sh, softmax_axis(c->attrs, sh->ndim), eng, &pd);
    if (ds == dnnl_unimplemented) {
        PRT_CHECK_GOTO(prt_dnnl_base_init(c, &s->b, 0), st, fail);
        *state = s;
        return PRT_OK;
    }
    PRT_DNNL_CHECK_GOTO(ds, ctx, "softmax", st, fail);
    size_t scratch = prt_dnnl_scratch_size(pd);
    PRT_CHECK_GOTO(prt_dnnl_base_init(c, &s->b, scratch ? prt_dnnl_align(scratch) : 0), st, fail);
    PRT_DNNL_CHECK_GOTO(dnnl_primitive_create(&s->prim, pd), ctx, "softmax", st, fail);
    PRT_DNNL_CHECK_GOTO(prt_dnnl_mem(&s->src, dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0), eng), ctx,
                        "softmax", st, fail);
    PRT_DNNL_CHECK_GOTO(prt_dnnl_mem(&s->dst, dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0), eng), ctx,
                        "softmax", st, fail);
    if (scratch)
        PRT_DNNL_CHECK_GOTO(prt_dnnl_mem(&s->scratch, dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0), eng),
                            ctx, "softmax", st, fail);
    dnnl_primitive_desc_destroy(pd);
    *state = s;
    return PRT_OK;
fail:
    if (pd) dnnl_primitive_desc_destroy(pd);
    softmax_release(s);
    return st;
}

static prt_status softmax_fast(const prt_kernel_call *c) {
    softmax_state *s = c->state;
    if (!s) return prt_error(c->ctx, PRT_ERR_INTERNAL, "softmax kernel: run before prepare");
    if (!s->prim) {
        softmax_loops(c);
        return PRT_OK;
    }
    PRT_CHECK(prt_dnnl_bind(&s->b, s->src, PRT_F32P(c->in[0]), "softmax"));
    PRT_CHECK(prt_dnnl_bind(&s->b, s->dst, PRT_F32P(c->out[0]), "softmax"));
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, s->src}, {DNNL_ARG_DST, s->dst}, {DNNL_ARG_SCRATCHPAD, s->scratch}};
    if (s->scratch) {
        char *ws;
        PRT_CHECK(prt_dnnl_ws(&s->b, c, "softmax", &ws));
        PRT_CHECK(prt_dnnl_bind(&s->b, s->scratch, ws, "softmax"));
    }
    return prt_dnnl_exec(&s->b, s->prim, s->scratch ? 3 : 2, args, "softmax");
}

const prt_op_schema prt_op_softmax = {
    .name = "softmax",
    .doc = "normalised exponential along an axis",
    .min_in = 1,
    .max_in = 1,
    .n_out = 1,
    .attrs = prt_softmax_attrs,
    .n_attrs = 1,
    .infer = softmax_infer,
    .flops = softmax_flops,
    .inplace_in = -1,
    .workspace = softmax_workspace,
    .ref = {.run = softmax_ref},
    .fast = {.prepare = softmax_prepare, .run = softmax_fast, .release = softmax_release},
    .grad = softmax_grad,
};

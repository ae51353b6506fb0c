/* pad: ONNX Pad over the whole batched tensor. `pads` holds the amount added
 * before every dim, then after every dim (2 * rank values); a negative amount
 * crops. Modes: "constant" (fills with `value`), "reflect" (mirrors without
 * repeating the edge, so a pad must be smaller than its dim) and "edge"
 * (repeats the edge). Each output element reads one input element or the
 * constant, the dims mapped independently. pad_bwd (dy, x) -> dx sums dy back
 * onto the input elements each output read; it shares pad's attributes. */
#include "ops/ops_util.h"

#include <string.h>

enum { A_PADS, A_MODE, A_VALUE };
enum { MODE_CONSTANT, MODE_REFLECT, MODE_EDGE };

static const prt_attr_def pad_attrs[] = {
    PRT_ATTR_REQ("pads", PRT_ATTR_INTS, INT64_MIN, "begins of every dim, then ends (negative crops)"),
    {.name = "mode", .type = PRT_ATTR_STRING, .def = {.type = PRT_ATTR_STRING, .s = "constant"},
     .doc = "constant, reflect or edge"},
    PRT_ATTR_OPT_FLOAT("value", 0.0, "the fill of mode constant"),
};

static int mode_of(const prt_attr *a) {
    const char *s = a[A_MODE].s ? a[A_MODE].s : "constant";
    return !strcmp(s, "reflect") ? MODE_REFLECT : !strcmp(s, "edge") ? MODE_EDGE : !strcmp(s, "constant") ? MODE_CONSTANT : -1;
}

/* Checks the attributes against input x and writes the output shape. */
static prt_status pad_shape(const prt_infer_ctx *ic, const prt_shape *x, prt_shape *y) {
    const prt_attr *p = &ic->attrs[A_PADS];
    int mode = mode_of(ic->attrs);
    char xb[160];
    if (mode < 0)
        return prt_infer_error(ic, "mode '%s' is not one of constant, reflect, edge", ic->attrs[A_MODE].s);
    if (p->n != 2 * x->ndim)
        return prt_infer_error(ic, "pads has %d values but the input %s needs %d (a begin and an end per dim)", p->n,
                               prt_shape_str(x, xb, sizeof xb), 2 * x->ndim);
    y->ndim = x->ndim;
    for (int i = 0; i < x->ndim; i++) {
        int64_t b = p->i[i], e = p->i[i + x->ndim], d;
        if (!prt_add_i64(x->d[i], b, &d) || !prt_add_i64(d, e, &d) || d > PRT_MAX_ELEMS)
            return prt_infer_error(ic, "pads %lld and %lld on dim %d overflow", (long long)b, (long long)e, i);
        if (d < 1)
            return prt_infer_error(ic, "pads %lld and %lld leave dim %d of the input %s with %lld elements", (long long)b,
                                   (long long)e, i, prt_shape_str(x, xb, sizeof xb), (long long)d);
        if (mode != MODE_CONSTANT && x->d[i] < 1)
            return prt_infer_error(ic, "mode %s needs elements to copy, but dim %d of the input %s is empty",
                                   ic->attrs[A_MODE].s, i, prt_shape_str(x, xb, sizeof xb));
        if (mode == MODE_REFLECT && (b >= x->d[i] || e >= x->d[i]))
            return prt_infer_error(ic, "mode reflect pads dim %d of the input %s by %lld and %lld; each must be below "
                                   "the dim's size %lld", i, prt_shape_str(x, xb, sizeof xb), (long long)b,
                                   (long long)e, (long long)x->d[i]);
        y->d[i] = d;
    }
    return PRT_OK;
}

static prt_status pad_infer(prt_infer_ctx *ic) { return pad_shape(ic, &ic->in[0], &ic->out[0]); }

static int64_t pad_flops(const prt_infer_ctx *ic) { return 0; }

static prt_status pad_grad(prt_grad_ctx *gc) {
    if (gc->dy[0] == -1 || !prt_grad_wants(gc, 0)) return PRT_OK;
    if (gc->dy[0] == PRT_GRAD_ONE) return prt_grad_not_loss(gc);
    int in[2] = {gc->dy[0], gc->g->nodes[gc->node].in[0]};
    return prt_grad_emit(gc, "pad_bwd", in, 2, NULL, &gc->dx[0]);
}

/* The input index that output index o of a dim reads, or -1 for the constant. */
static inline int64_t pad_src(int64_t o, int64_t b, int64_t d, int mode) {
    int64_t i = o - b;
    if (i >= 0 && i < d) return i;
    if (mode == MODE_CONSTANT) return -1;
    if (mode == MODE_EDGE) return i < 0 ? 0 : d - 1;
    return i < 0 ? -i : 2 * (d - 1) - i; /* reflect: pads < d keep this in range */
}

/* Geometry shared by both kernels of both ops. */
typedef struct pad_geom {
    int nd, mode;
    int64_t xd[PRT_MAX_DIMS], yd[PRT_MAX_DIMS], b[PRT_MAX_DIMS], xs[PRT_MAX_DIMS];
    float value;
} pad_geom;

static void pad_geom_init(pad_geom *g, const prt_attr *attrs, const prt_shape *x, const prt_shape *y) {
    g->nd = x->ndim;
    g->mode = mode_of(attrs);
    g->value = (float)prt_attr_float(&attrs[A_VALUE]);
    int64_t s = 1;
    for (int i = x->ndim - 1; i >= 0; i--) {
        g->xd[i] = x->d[i];
        g->yd[i] = y->d[i];
        g->b[i] = attrs[A_PADS].i[i];
        g->xs[i] = s;
        s *= x->d[i];
    }
}

/* Input offset of output element e, or -1 when it is the constant. */
static int64_t pad_offset(const pad_geom *g, int64_t e) {
    int64_t off = 0;
    for (int i = g->nd - 1; i >= 0; i--) {
        int64_t src = pad_src(e % g->yd[i], g->b[i], g->xd[i], g->mode);
        e /= g->yd[i];
        if (src < 0) return -1;
        off += src * g->xs[i];
    }
    return off;
}

static prt_status pad_ref(const prt_kernel_call *c) {
    PRT_CHECK(prt_kernel_check_f32(c, "pad"));
    pad_geom g;
    pad_geom_init(&g, c->attrs, &c->in[0]->shape, &c->out[0]->shape);
    const float *x = PRT_F32P(c->in[0]);
    float *y = PRT_F32P(c->out[0]);
    int64_t n = prt_shape_count(&c->out[0]->shape);
    for (int64_t e = 0; e < n; e++) {
        int64_t off = pad_offset(&g, e);
        y[e] = off < 0 ? g.value : x[off];
    }
    return PRT_OK;
}

typedef struct pad_args {
    pad_geom g;
    const float *x;
    float *y;
} pad_args;

/* Output rows [lo, hi) of the last dim: the outer index mapped once per row,
 * the stretch inside the input copied whole, the rest element by element. */
static void pad_rows(void *arg, int64_t lo, int64_t hi) {
    const pad_args *a = arg;
    const pad_geom *g = &a->g;
    int last = g->nd - 1;
    int64_t len = g->yd[last], d = g->xd[last], b = g->b[last];
    for (int64_t r = lo; r < hi; r++) {
        float *y = a->y + r * len;
        int64_t off = 0, q = r;
        bool fill = false;
        for (int i = last - 1; i >= 0; i--) {
            int64_t src = pad_src(q % g->yd[i], g->b[i], g->xd[i], g->mode);
            q /= g->yd[i];
            if (src < 0) fill = true;
            off += src * g->xs[i];
        }
        if (fill) {
            for (int64_t j = 0; j < len; j++) y[j] = g->value;
            continue;
        }
        const float *x = a->x + off;
        int64_t j0 = b > 0 ? b : 0, j1 = b + d < len ? b + d : len; /* outputs inside the input */
        for (int64_t j = 0; j < j0 && j < len; j++) {
            int64_t s = pad_src(j, b, d, g->mode);
            y[j] = s < 0 ? g->value : x[s];
        }
        if (j1 > j0) memcpy(y + j0, x + (j0 - b), (size_t)(j1 - j0) * sizeof(float));
        for (int64_t j = j1 > j0 ? j1 : j0; j < len; j++) {
            int64_t s = pad_src(j, b, d, g->mode);
            y[j] = s < 0 ? g->value : x[s];
        }
    }
}

static prt_status pad_fast(const prt_kernel_call *c) {
    PRT_CHECK(prt_kernel_check_f32(c, "pad"));
    pad_args a = {.x = PRT_F32P(c->in[0]), .y = PRT_F32P(c->out[0])};
    pad_geom_init(&a.g, c->attrs, &c->in[0]->shape, &c->out[0]->shape);
    if (a.g.nd == 0) return pad_ref(c);
    int64_t len = a.g.yd[a.g.nd - 1];
    prt_parallel_range(prt_shape_count(&c->out[0]->shape) / len, PRT_PAR_MIN_ELEMS / len + 1, pad_rows, &a);
    return PRT_OK;
}

const prt_op_schema prt_op_pad = {
    .name = "pad",
    .doc = "pads (or crops) every dim: constant, reflect or edge",
    .min_in = 1,
    .max_in = 1,
    .n_out = 1,
    .attrs = pad_attrs,
    .n_attrs = 3,
    .infer = pad_infer,
    .flops = pad_flops,
    .inplace_in = -1,
    .ref = {.run = pad_ref},
    .fast = {.run = pad_fast},
    .grad = pad_grad,
    .cheap = true,
};

/* ---- pad_bwd(dy, x) -> dx --------------------------------------------------- */

enum { IN_DY, IN_X };

static prt_status pad_bwd_infer(prt_infer_ctx *ic) {
    prt_shape want;
    PRT_CHECK(pad_shape(ic, &ic->in[IN_X], &want));
    if (!prt_shape_eq(&ic->in[IN_DY], &want)) {
        char a[160], b[160], c[160];
        return prt_infer_error(ic, "gradient dy has shape %s but padding the input %s gives %s",
                               prt_shape_str(&ic->in[IN_DY], a, sizeof a), prt_shape_str(&ic->in[IN_X], b, sizeof b),
                               prt_shape_str(&want, c, sizeof c));
    }
    ic->out[0] = ic->in[IN_X];
    return PRT_OK;
}

/* one addition per element of dy */
static int64_t pad_bwd_flops(const prt_infer_ctx *ic) { return prt_ops_numel(&ic->in[IN_DY]); }

/* dx zeroed, then every output element's gradient added where it was read
 * from, in output order. Reflect and edge may send several to one input
 * element; constant sends at most one. */
static prt_status pad_bwd_run(const prt_kernel_call *c, bool fast) {
    PRT_CHECK(prt_kernel_check_f32(c, "pad_bwd"));
    pad_geom g;
    pad_geom_init(&g, c->attrs, &c->in[IN_X]->shape, &c->in[IN_DY]->shape);
    const float *dy = PRT_F32P(c->in[IN_DY]);
    float *dx = PRT_F32P(c->out[0]);
    int64_t nx = prt_shape_count(&c->out[0]->shape), ny = prt_shape_count(&c->in[IN_DY]->shape);
    memset(dx, 0, (size_t)nx * sizeof(float));
    if (!fast || g.nd == 0) {
        for (int64_t e = 0; e < ny; e++) {
            int64_t off = pad_offset(&g, e);
            if (off >= 0) dx[off] += dy[e];
        }
        return PRT_OK;
    }
    /* the same additions in the same order, the index mapped once per row */
    int last = g.nd - 1;
    int64_t len = g.yd[last], d = g.xd[last], b = g.b[last], rows = ny / len;
    for (int64_t r = 0; r < rows; r++) {
        int64_t off = 0, q = r;
        bool fill = false;
        for (int i = last - 1; i >= 0; i--) {
            int64_t src = pad_src(q % g.yd[i], g.b[i], g.xd[i], g.mode);
            q /= g.yd[i];
            if (src < 0) fill = true;
            off += src * g.xs[i];
        }
        if (fill) continue;
        const float *row = dy + r * len;
        float *x = dx + off;
        for (int64_t j = 0; j < len; j++) {
            int64_t s = pad_src(j, b, d, g.mode);
            if (s >= 0) x[s] += row[j];
        }
    }
    return PRT_OK;
}

static prt_status pad_bwd_ref(const prt_kernel_call *c) { return pad_bwd_run(c, false); }
static prt_status pad_bwd_fast(const prt_kernel_call *c) { return pad_bwd_run(c, true); }

const prt_op_schema prt_op_pad_bwd = {
    .name = "pad_bwd",
    .doc = "gradient of pad: dy summed onto the input elements each output read",
    .min_in = 2,
    .max_in = 2,
    .n_out = 1,
    .attrs = pad_attrs,
    .n_attrs = 3,
    .infer = pad_bwd_infer,
    .flops = pad_bwd_flops,
    .inplace_in = -1,
    .ref = {.run = pad_bwd_ref},
    .fast = {.run = pad_bwd_fast},
    .grad = NULL,
    .grad_note = "backward-only op",
    .shape_only = 1u << IN_X,
};

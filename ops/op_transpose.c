/* transpose: permutes the dims of the whole batched tensor (ONNX Transpose):
 * output dim i is input dim perm[i]. No perm (the default) reverses the dims,
 * as in ONNX. The gradient is the transpose by the inverse permutation. */
#include "ops/ops_util.h"

#include <string.h>

enum { A_PERM };

static const prt_attr_def transpose_attrs[] = {
    PRT_ATTR_OPT_INTS_NONE("perm", 0, "output dim i is input dim perm[i] (default: the dims reversed)"),
};

/* The permutation in effect for a rank-nd input; false with a message when
 * the attribute is not a permutation of 0..nd-1. */
static bool perm_of(const prt_attr *a, int nd, int *perm, char *why, size_t cap) {
    if (a->n == 0) {
        for (int i = 0; i < nd; i++) perm[i] = nd - 1 - i;
        return true;
    }
    if (a->n != nd) {
        snprintf(why, cap, "perm has %d values but the input has %d dimensions", a->n, nd);
        return false;
    }
    bool seen[PRT_MAX_DIMS] = {false};
    for (int i = 0; i < nd; i++) {
        int64_t p = a->i[i];
        if (p < 0 || p >= nd || seen[p]) {
            snprintf(why, cap, "perm is not a permutation of 0..%d: value %lld at position %d", nd - 1, (long long)p, i);
            return false;
        }
        seen[p] = true;
        perm[i] = (int)p;
    }
    return true;
}

static prt_status transpose_infer(prt_infer_ctx *ic) {
    const prt_shape *x = &ic->in[0];
    int perm[PRT_MAX_DIMS];
    char why[160];
    if (!perm_of(&ic->attrs[A_PERM], x->ndim, perm, why, sizeof why)) return prt_infer_error(ic, "%s", why);
    prt_shape y = {.ndim = x->ndim};
    for (int i = 0; i < x->ndim; i++) y.d[i] = x->d[perm[i]];
    ic->out[0] = y;
    return PRT_OK;
}

static int64_t transpose_flops(const prt_infer_ctx *ic) { return 0; }

static prt_status transpose_grad(prt_grad_ctx *gc) {
    if (gc->dy[0] == -1 || !prt_grad_wants(gc, 0)) return PRT_OK;
    if (gc->dy[0] == PRT_GRAD_ONE) return prt_grad_not_loss(gc);
    const prt_node *nd = &gc->g->nodes[gc->node];
    int rank = prt_graph_value_shape(gc->g, nd->in[0]).ndim, perm[PRT_MAX_DIMS];
    char why[160];
    if (!perm_of(&nd->attrs[A_PERM], rank, perm, why, sizeof why))
        return prt_error(gc->g->ctx, PRT_ERR_INTERNAL, "layer '%s' (transpose): %s", nd->name, why);
    prt_attr a[1] = {{.type = PRT_ATTR_INTS, .set = true, .n = rank}};
    for (int i = 0; i < rank; i++) a[0].i[perm[i]] = i;
    return prt_grad_emit(gc, "transpose", &gc->dy[0], 1, a, &gc->dx[0]);
}

/* Dims of the output with the input stride of each, size-1 dims dropped and
 * dims merged where they stay adjacent in the input. */
typedef struct tp_geom {
    int nd;
    int64_t d[PRT_MAX_DIMS], xs[PRT_MAX_DIMS];
} tp_geom;

static void tp_init(tp_geom *g, const prt_shape *x, const prt_attr *a) {
    int perm[PRT_MAX_DIMS];
    char why[160];
    perm_of(a, x->ndim, perm, why, sizeof why); /* checked by inference */
    int64_t st[PRT_MAX_DIMS], s = 1;
    for (int i = x->ndim - 1; i >= 0; i--) {
        st[i] = s;
        s *= x->d[i];
    }
    g->nd = 0;
    for (int i = 0; i < x->ndim; i++) {
        int64_t d = x->d[perm[i]], xs = st[perm[i]];
        if (d == 1) continue;
        if (g->nd > 0 && g->xs[g->nd - 1] == xs * d) {
            g->d[g->nd - 1] *= d;
            g->xs[g->nd - 1] = xs;
            continue;
        }
        g->d[g->nd] = d;
        g->xs[g->nd] = xs;
        g->nd++;
    }
    if (g->nd == 0) {
        g->nd = 1;
        g->d[0] = 1;
        g->xs[0] = 0;
    }
}

typedef struct tp_args {
    tp_geom g;
    const float *x;
    float *y;
} tp_args;

/* Output rows [lo, hi) (all dims but the last): a strided gather each. */
static void tp_rows(void *arg, int64_t lo, int64_t hi) {
    const tp_args *a = arg;
    const tp_geom *g = &a->g;
    int64_t len = g->d[g->nd - 1], s = g->xs[g->nd - 1];
    for (int64_t r = lo; r < hi; r++) {
        int64_t off = 0, q = r;
        for (int i = g->nd - 2; i >= 0; i--) {
            off += (q % g->d[i]) * g->xs[i];
            q /= g->d[i];
        }
        const float *x = a->x + off;
        float *y = a->y + r * len;
        if (s == 1) memcpy(y, x, (size_t)len * sizeof(float));
        else
            for (int64_t j = 0; j < len; j++) y[j] = x[j * s];
    }
}

static prt_status transpose_ref(const prt_kernel_call *c) {
    PRT_CHECK(prt_kernel_check_f32(c, "transpose"));
    const prt_shape *x = &c->in[0]->shape;
    int perm[PRT_MAX_DIMS];
    char why[160];
    perm_of(&c->attrs[A_PERM], x->ndim, perm, why, sizeof why);
    int64_t st[PRT_MAX_DIMS], s = 1;
    for (int i = x->ndim - 1; i >= 0; i--) {
        st[i] = s;
        s *= x->d[i];
    }
    const float *xp = PRT_F32P(c->in[0]);
    float *y = PRT_F32P(c->out[0]);
    const prt_shape *ys = &c->out[0]->shape;
    int64_t n = prt_shape_count(ys);
    for (int64_t e = 0; e < n; e++) {
        int64_t r = e, off = 0;
        for (int i = ys->ndim - 1; i >= 0; i--) {
            off += (r % ys->d[i]) * st[perm[i]];
            r /= ys->d[i];
        }
        y[e] = xp[off];
    }
    return PRT_OK;
}

static prt_status transpose_fast(const prt_kernel_call *c) {
    PRT_CHECK(prt_kernel_check_f32(c, "transpose"));
    tp_args a = {.x = PRT_F32P(c->in[0]), .y = PRT_F32P(c->out[0])};
    tp_init(&a.g, &c->in[0]->shape, &c->attrs[A_PERM]);
    int64_t len = a.g.d[a.g.nd - 1], rows = len ? prt_shape_count(&c->out[0]->shape) / len : 0;
    prt_parallel_range(rows, PRT_PAR_MIN_ELEMS / (len ? len : 1) + 1, tp_rows, &a);
    return PRT_OK;
}

const prt_op_schema prt_op_transpose = {
    .name = "transpose",
    .doc = "permutes the dimensions: output dim i is input dim perm[i]",
    .min_in = 1,
    .max_in = 1,
    .n_out = 1,
    .attrs = transpose_attrs,
    .n_attrs = 1,
    .infer = transpose_infer,
    .flops = transpose_flops,
    .inplace_in = -1,
    .ref = {.run = transpose_ref},
    .fast = {.run = transpose_fast},
    .grad = transpose_grad,
    .cheap = true,
};

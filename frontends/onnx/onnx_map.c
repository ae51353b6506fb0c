/* One ONNX node to Parrots nodes. A table sorted by ONNX op type (looked up by
 * binary search) names each op's mapping function and the Parrots ops it needs;
 * a mapping that meets an attribute or shape Parrots cannot express returns
 * PRT_ERR_UNSUPPORTED naming the node and the reason. Shapes are inferred as
 * nodes are added, at the model's batch, so mappings can look at them. */
#include "frontends/onnx/onnx_map.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef prt_status (*map_fn)(prt_onnx_imp *I, const Onnx__NodeProto *nd);

static prt_status unsupported(prt_onnx_imp *I, const Onnx__NodeProto *nd, const char *fmt, ...) PRT_PRINTF(3, 4);
static prt_status unsupported(prt_onnx_imp *I, const Onnx__NodeProto *nd, const char *fmt, ...) {
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return prt_error(I->ctx, PRT_ERR_UNSUPPORTED, "%s: node '%s' (%s): %s", I->file, prt_onnx_node_name(nd),
                     nd->op_type, why);
}

/* ---- building nodes --------------------------------------------------------- */

typedef struct pnode {
    const prt_op_schema *s;
    int op;
    prt_attr attrs[16];
} pnode;

static prt_status pnode_init(prt_onnx_imp *I, const char *op, pnode *p) {
    p->s = prt_op_find(I->ctx->ops, op, &p->op);
    if (!p->s) return prt_error(I->ctx, PRT_ERR_UNSUPPORTED, "%s: Parrots has no op '%s'", I->file, op);
    if (p->s->n_attrs > 16) return prt_error(I->ctx, PRT_ERR_INTERNAL, "op '%s' has too many attributes", op);
    prt_attrs_default(p->s, p->attrs);
    return PRT_OK;
}

static prt_attr *pattr(pnode *p, const char *name) {
    int k = prt_op_attr_index(p->s, name);
    if (k < 0) return NULL;
    p->attrs[k].set = true;
    return &p->attrs[k];
}

static prt_status set_i(prt_onnx_imp *I, pnode *p, const char *name, int64_t v) {
    prt_attr *a = pattr(p, name);
    if (!a) return prt_error(I->ctx, PRT_ERR_INTERNAL, "op '%s' has no attribute '%s'", p->s->name, name);
    a->i[0] = v;
    a->n = 1;
    return PRT_OK;
}

static prt_status set_f(prt_onnx_imp *I, pnode *p, const char *name, double v) {
    prt_attr *a = pattr(p, name);
    if (!a) return prt_error(I->ctx, PRT_ERR_INTERNAL, "op '%s' has no attribute '%s'", p->s->name, name);
    a->f = v;
    return PRT_OK;
}

static prt_status set_s(prt_onnx_imp *I, pnode *p, const char *name, const char *v) {
    prt_attr *a = pattr(p, name);
    if (!a) return prt_error(I->ctx, PRT_ERR_INTERNAL, "op '%s' has no attribute '%s'", p->s->name, name);
    a->s = prt_graph_intern(I->g, v);
    return a->s ? PRT_OK : prt_error(I->ctx, PRT_ERR_NOMEM, "out of memory");
}

static prt_status set_ints(prt_onnx_imp *I, const Onnx__NodeProto *nd, pnode *p, const char *name, const int64_t *v,
                           int n) {
    prt_attr *a = pattr(p, name);
    if (!a) return prt_error(I->ctx, PRT_ERR_INTERNAL, "op '%s' has no attribute '%s'", p->s->name, name);
    if (n > PRT_ATTR_MAX_INTS)
        return unsupported(I, nd, "%s has %d values; Parrots' %s takes at most %d", name, n, p->s->name,
                           PRT_ATTR_MAX_INTS);
    a->n = n;
    for (int k = 0; k < n; k++) a->i[k] = v[k];
    return PRT_OK;
}

/* Adds the node, infers its shapes (a shape Parrots rejects is unsupported) and
 * returns its output value. */
static prt_status emit(prt_onnx_imp *I, const Onnx__NodeProto *nd, pnode *p, const char *name, const int *in, int n_in,
                       int *out) {
    int nid;
    PRT_CHECK(prt_graph_add_node(I->g, p->op, name, name, in, n_in, p->attrs, I->loc, &nid));
    prt_status st = prt_graph_infer_node(I->g, nid);
    if (st != PRT_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", prt_last_error(I->ctx));
        return unsupported(I, nd, "%s", msg);
    }
    *out = I->g->nodes[nid].out[0];
    return PRT_OK;
}

/* emit under the ONNX node's first output name, which then refers to it */
static prt_status emit_out(prt_onnx_imp *I, const Onnx__NodeProto *nd, pnode *p, const int *in, int n_in) {
    int id = -1;
    PRT_CHECK(emit(I, nd, p, nd->output[0], in, n_in, &id));
    return prt_onnx_ent_put(I, nd->output[0], id, -1);
}

static prt_shape vshape(prt_onnx_imp *I, int id) { return prt_graph_value_shape(I->g, id); }

static bool has_input(const Onnx__NodeProto *nd, size_t k) {
    return k < nd->n_input && nd->input[k] && nd->input[k][0];
}

/* The float constant at input k, or an unsupported error. */
static prt_status const_input(prt_onnx_imp *I, const Onnx__NodeProto *nd, size_t k, const char *what,
                              const prt_onnx_const **out) {
    const prt_onnx_const *c = has_input(nd, k) ? prt_onnx_const_of(I, nd->input[k]) : NULL;
    if (!c) return unsupported(I, nd, "%s must be a constant (an initializer)", what);
    *out = c;
    return PRT_OK;
}

static prt_status float_const(prt_onnx_imp *I, const Onnx__NodeProto *nd, size_t k, const char *what,
                              const prt_onnx_const **out) {
    PRT_CHECK(const_input(I, nd, k, what, out));
    if (!(*out)->f) return unsupported(I, nd, "%s has dtype %s", what, prt_onnx_dtype_name((*out)->dtype));
    return PRT_OK;
}

static prt_status param(prt_onnx_imp *I, const Onnx__NodeProto *nd, const char *slot, const prt_shape *shape,
                        const float *data) {
    char name[1200];
    snprintf(name, sizeof name, "%s.%s", nd->output[0], slot);
    return prt_onnx_add_weight(I, name, shape, data);
}

static prt_status need_rank4(prt_onnx_imp *I, const Onnx__NodeProto *nd, int x, const char *what) {
    prt_shape s = vshape(I, x);
    if (s.ndim != 4) return unsupported(I, nd, "%s over rank-%d input (Parrots' is 2-D: rank 4)", what, s.ndim);
    return PRT_OK;
}

/* Pads [top, left, bottom, right] from pads/auto_pad for a 2-D window. */
static prt_status window_pads(prt_onnx_imp *I, const Onnx__NodeProto *nd, const prt_shape *x, const int64_t k[2],
                              const int64_t s[2], const int64_t d[2], int64_t pad[4]) {
    for (int i = 0; i < 4; i++) pad[i] = 0;
    if (prt_onnx_attr_is(nd, "auto_pad", "NOTSET", "NOTSET")) {
        const int64_t *p;
        int n = prt_onnx_attr_ints(nd, "pads", &p);
        if (n >= 0 && n != 4) return unsupported(I, nd, "pads has %d values, expected 4", n);
        for (int i = 0; i < n; i++) {
            if (p[i] < 0) return unsupported(I, nd, "negative pads");
            pad[i] = p[i];
        }
        return PRT_OK;
    }
    if (prt_onnx_attr_is(nd, "auto_pad", "NOTSET", "VALID")) return PRT_OK;
    bool upper = prt_onnx_attr_is(nd, "auto_pad", "NOTSET", "SAME_UPPER");
    if (!upper && !prt_onnx_attr_is(nd, "auto_pad", "NOTSET", "SAME_LOWER"))
        return unsupported(I, nd, "unknown auto_pad");
    for (int i = 0; i < 2; i++) {
        int64_t in = x->d[2 + i], out = (in + s[i] - 1) / s[i];
        int64_t total = (out - 1) * s[i] + (k[i] - 1) * d[i] + 1 - in;
        if (total < 0) total = 0;
        int64_t small = total / 2, big = total - small;
        pad[i] = upper ? small : big;
        pad[2 + i] = upper ? big : small;
    }
    return PRT_OK;
}

static prt_status ints2(prt_onnx_imp *I, const Onnx__NodeProto *nd, const char *name, int64_t dflt, int64_t min,
                        int64_t out[2]) {
    const int64_t *v;
    int n = prt_onnx_attr_ints(nd, name, &v);
    out[0] = out[1] = dflt;
    if (n < 0) return PRT_OK;
    if (n != 2) return unsupported(I, nd, "%s has %d values, expected 2", name, n);
    for (int i = 0; i < 2; i++) {
        if (v[i] < min) return unsupported(I, nd, "%s %lld is out of range", name, (long long)v[i]);
        out[i] = v[i];
    }
    return PRT_OK;
}

/* ---- mappings ------------------------------------------------------------------ */

static prt_status map_unary(prt_onnx_imp *I, const Onnx__NodeProto *nd, const char *op) {
    pnode p;
    int x;
    PRT_CHECK(pnode_init(I, op, &p));
    PRT_CHECK(prt_onnx_value(I, nd, nd->input[0], &x));
    return emit_out(I, nd, &p, &x, 1);
}

static prt_status map_relu(prt_onnx_imp *I, const Onnx__NodeProto *nd) { return map_unary(I, nd, "relu"); }
static prt_status map_sigmoid(prt_onnx_imp *I, const Onnx__NodeProto *nd) { return map_unary(I, nd, "sigmoid"); }
static prt_status map_tanh(prt_onnx_imp *I, const Onnx__NodeProto *nd) { return map_unary(I, nd, "tanh"); }

/* Identity, and Dropout at inference: the output is the input. */
static prt_status map_alias(prt_onnx_imp *I, const Onnx__NodeProto *nd) {
    if (nd->n_output > 1 && nd->output[1] && nd->output[1][0])
        return unsupported(I, nd, "the mask output is not supported");
    if (!strcmp(nd->op_type, "Dropout") && has_input(nd, 2)) {
        const prt_onnx_const *c = prt_onnx_const_of(I, nd->input[2]);
        if (!c || c->numel != 1 || (c->i ? c->i[0] : c->f[0]) != 0)
            return unsupported(I, nd, "training_mode must be a constant false");
    }
    int x;
    PRT_CHECK(prt_onnx_value(I, nd, nd->input[0], &x));
    return prt_onnx_ent_put(I, nd->output[0], x, -1);
}

static prt_status map_conv(prt_onnx_imp *I, const Onnx__NodeProto *nd) {
    int x;
    const prt_onnx_const *w, *b = NULL;
    PRT_CHECK(prt_onnx_value(I, nd, nd->input[0], &x));
    PRT_CHECK(need_rank4(I, nd, x, "Conv"));
    PRT_CHECK(float_const(I, nd, 1, "the weight", &w));
    if (w->shape.ndim != 4) return unsupported(I, nd, "the weight has rank %d, expected 4", w->shape.ndim);
    if (has_input(nd, 2)) {
        PRT_CHECK(float_const(I, nd, 2, "the bias", &b));
        if (b->shape.ndim != 1 || b->shape.d[0] != w->shape.d[0])
            return unsupported(I, nd, "the bias is not a vector of the output channels");
    }
    int64_t k[2] = {w->shape.d[2], w->shape.d[3]}, s[2], d[2], pad[4];
    const int64_t *ks;
    int nk = prt_onnx_attr_ints(nd, "kernel_shape", &ks);
    if (nk >= 0 && (nk != 2 || ks[0] != k[0] || ks[1] != k[1]))
        return unsupported(I, nd, "kernel_shape does not match the weight");
    PRT_CHECK(ints2(I, nd, "strides", 1, 1, s));
    PRT_CHECK(ints2(I, nd, "dilations", 1, 1, d));
    prt_shape xs = vshape(I, x);
    PRT_CHECK(window_pads(I, nd, &xs, k, s, d, pad));
    pnode p;
    PRT_CHECK(pnode_init(I, "conv", &p));
    PRT_CHECK(set_i(I, &p, "out", w->shape.d[0]));
    PRT_CHECK(set_ints(I, nd, &p, "kernel", k, 2));
    PRT_CHECK(set_ints(I, nd, &p, "stride", s, 2));
    PRT_CHECK(set_ints(I, nd, &p, "pad", pad, 4));
    PRT_CHECK(set_ints(I, nd, &p, "dilation", d, 2));
    PRT_CHECK(set_i(I, &p, "groups", prt_onnx_attr_i(nd, "group", 1)));
    PRT_CHECK(set_i(I, &p, "bias", b != NULL));
    PRT_CHECK(emit_out(I, nd, &p, &x, 1));
    PRT_CHECK(param(I, nd, "weight", &w->shape, w->f));
    return b ? param(I, nd, "bias", &b->shape, b->f) : PRT_OK;
}

static prt_status map_batchnorm(prt_onnx_imp *I, const Onnx__NodeProto *nd) {
    if (prt_onnx_attr_i(nd, "training_mode", 0) != 0) return unsupported(I, nd, "training_mode is not supported");
    if (prt_onnx_attr_i(nd, "spatial", 1) != 1) return unsupported(I, nd, "spatial=0 is not supported");
    /* before opset 7, is_test=0 (the default) asks for batch statistics */
    if (I->opset < 7 && prt_onnx_attr_i(nd, "is_test", 0) == 0)
        return unsupported(I, nd, "is_test=0 (training mode) is not supported");
    for (size_t k = 1; k < nd->n_output; k++)
        if (nd->output[k] && nd->output[k][0]) return unsupported(I, nd, "only the first output is supported");
    int x;
    PRT_CHECK(prt_onnx_value(I, nd, nd->input[0], &x));
    static const char *const what[4] = {"scale", "bias", "mean", "var"};
    static const char *const slot[4] = {"scale", "shift", "mean", "var"};
    const prt_onnx_const *c[4];
    prt_shape xs = vshape(I, x);
    for (int k = 0; k < 4; k++) {
        PRT_CHECK(float_const(I, nd, (size_t)k + 1, what[k], &c[k]));
        if (xs.ndim < 2 || c[k]->shape.ndim != 1 || c[k]->shape.d[0] != xs.d[1])
            return unsupported(I, nd, "%s is not a vector of the channels", what[k]);
    }
    pnode p;
    PRT_CHECK(pnode_init(I, "batchnorm", &p));
    PRT_CHECK(set_f(I, &p, "eps", prt_onnx_attr_f(nd, "epsilon", 1e-5f)));
    PRT_CHECK(emit_out(I, nd, &p, &x, 1));
    for (int k = 0; k < 4; k++) PRT_CHECK(param(I, nd, slot[k], &c[k]->shape, c[k]->f));
    return PRT_OK;
}

static prt_status map_pool(prt_onnx_imp *I, const Onnx__NodeProto *nd, bool max) {
    if (max && nd->n_output > 1 && nd->output[1] && nd->output[1][0])
        return unsupported(I, nd, "the Indices output is not supported");
    int x;
    PRT_CHECK(prt_onnx_value(I, nd, nd->input[0], &x));
    PRT_CHECK(need_rank4(I, nd, x, nd->op_type));
    int64_t k[2], s[2], d[2], pad[4];
    const int64_t *ks;
    if (prt_onnx_attr_ints(nd, "kernel_shape", &ks) != 2) return unsupported(I, nd, "kernel_shape must have 2 values");
    k[0] = ks[0], k[1] = ks[1];
    if (k[0] < 1 || k[1] < 1) return unsupported(I, nd, "kernel_shape must be positive");
    PRT_CHECK(ints2(I, nd, "strides", 1, 1, s));
    PRT_CHECK(ints2(I, nd, "dilations", 1, 1, d));
    if (d[0] != 1 || d[1] != 1) return unsupported(I, nd, "dilations other than 1 are not supported");
    prt_shape xs = vshape(I, x);
    PRT_CHECK(window_pads(I, nd, &xs, k, s, d, pad));
    if (prt_onnx_attr_i(nd, "ceil_mode", 0)) {
        /* fine where rounding up gives the same size as rounding down */
        for (int i = 0; i < 2; i++) {
            int64_t span = xs.d[2 + i] + pad[i] + pad[2 + i] - k[i];
            if (span % s[i] != 0) return unsupported(I, nd, "ceil_mode=1 changes the output size");
        }
    }
    pnode p;
    PRT_CHECK(pnode_init(I, max ? "maxpool" : "avgpool", &p));
    PRT_CHECK(set_ints(I, nd, &p, "kernel", k, 2));
    PRT_CHECK(set_ints(I, nd, &p, "stride", s, 2));
    PRT_CHECK(set_ints(I, nd, &p, "pad", pad, 4));
    if (!max) PRT_CHECK(set_i(I, &p, "count_include_pad", prt_onnx_attr_i(nd, "count_include_pad", 0) != 0));
    return emit_out(I, nd, &p, &x, 1);
}

static prt_status map_maxpool(prt_onnx_imp *I, const Onnx__NodeProto *nd) { return map_pool(I, nd, true); }
static prt_status map_avgpool(prt_onnx_imp *I, const Onnx__NodeProto *nd) { return map_pool(I, nd, false); }

static prt_status map_global(prt_onnx_imp *I, const Onnx__NodeProto *nd, const char *op) {
    int x;
    PRT_CHECK(prt_onnx_value(I, nd, nd->input[0], &x));
    PRT_CHECK(need_rank4(I, nd, x, nd->op_type));
    pnode p;
    PRT_CHECK(pnode_init(I, op, &p));
    PRT_CHECK(set_i(I, &p, "global", 1));
    return emit_out(I, nd, &p, &x, 1);
}
static prt_status map_gap(prt_onnx_imp *I, const Onnx__NodeProto *nd) { return map_global(I, nd, "avgpool"); }
static prt_status map_gmp(prt_onnx_imp *I, const Onnx__NodeProto *nd) { return map_global(I, nd, "maxpool"); }

static prt_status inputs_of(prt_onnx_imp *I, const Onnx__NodeProto *nd, int *ids, int max, int *n) {
    if (nd->n_input > (size_t)max) return unsupported(I, nd, "%zu inputs, more than %d", nd->n_input, max);
    for (size_t k = 0; k < nd->n_input; k++) PRT_CHECK(prt_onnx_value(I, nd, nd->input[k], &ids[k]));
    *n = (int)nd->n_input;
    return PRT_OK;
}

static prt_status map_concat(prt_onnx_imp *I, const Onnx__NodeProto *nd) {
    int ids[PRT_VARIADIC] = {0}, n = 0;
    PRT_CHECK(inputs_of(I, nd, ids, PRT_VARIADIC, &n));
    /* axis is required from opset 4; before it defaults to 1 */
    if (!prt_onnx_attr(nd, "axis") && I->opset >= 4) return unsupported(I, nd, "no axis");
    pnode p;
    PRT_CHECK(pnode_init(I, "concat", &p));
    PRT_CHECK(set_i(I, &p, "axis", prt_onnx_attr_i(nd, "axis", 1)));
    return emit_out(I, nd, &p, ids, n);
}

static bool same_shapes(prt_onnx_imp *I, const int *ids, int n) {
    prt_shape s0 = vshape(I, ids[0]);
    for (int k = 1; k < n; k++) {
        prt_shape s = vshape(I, ids[k]);
        if (!prt_shape_eq(&s, &s0)) return false;
    }
    return true;
}

/* The right operand of an elementwise op (Add, Sub, Mul, Div). Before opset 7
 * these broadcast only with broadcast=1, B aligned with A at `axis` (default:
 * B's shape is a suffix of A's); numpy's rule aligns on the last dimension. A
 * suffix alignment is the same thing; any other axis is expressed by giving a
 * constant B trailing dimensions of 1 (the same data, under the name
 * "<output>.b"). */
static prt_status rhs_of(prt_onnx_imp *I, const Onnx__NodeProto *nd, int a, const char **rhs) {
    *rhs = nd->input[1];
    if (I->opset >= 7 || !prt_onnx_attr_i(nd, "broadcast", 0) || !prt_onnx_attr(nd, "axis")) return PRT_OK;
    prt_shape as = vshape(I, a);
    const prt_onnx_const *c = prt_onnx_const_of(I, nd->input[1]);
    const prt_onnx_ent *e = prt_onnx_ent_get(I, nd->input[1]);
    prt_shape bs = c ? c->shape : e && e->id >= 0 ? vshape(I, e->id) : (prt_shape){0};
    int64_t axis = prt_onnx_attr_i(nd, "axis", 0);
    if (axis < 0) axis += as.ndim;
    if (axis < 0 || axis + bs.ndim > as.ndim) return unsupported(I, nd, "broadcast axis %lld is out of range", (long long)axis);
    if (axis + bs.ndim == as.ndim) return PRT_OK;
    if (!c || !c->f)
        return unsupported(I, nd, "legacy broadcast of a computed value at axis %lld is not supported", (long long)axis);
    prt_onnx_const r = {.dtype = c->dtype, .numel = c->numel, .shape = bs};
    for (int64_t d = axis + bs.ndim; d < as.ndim; d++) r.shape.d[r.shape.ndim++] = 1;
    r.f = prt_malloc(I->ctx, (size_t)(c->numel ? c->numel : 1) * sizeof *r.f);
    if (!r.f) return prt_error(I->ctx, PRT_ERR_NOMEM, "out of memory");
    memcpy(r.f, c->f, (size_t)c->numel * sizeof *r.f);
    char name[1200];
    snprintf(name, sizeof name, "%s.b", nd->output[0]);
    PRT_CHECK(prt_onnx_add_const(I, name, &r));
    /* a copy that outlives this call: the graph's string table */
    *rhs = prt_graph_intern(I->g, name);
    return *rhs ? PRT_OK : prt_error(I->ctx, PRT_ERR_NOMEM, "out of memory");
}

/* Add and Sum: Parrots' add takes equal shapes; a broadcast add of a constant
 * is sub(x, -c), exact in IEEE arithmetic (x - (-c) == x + c). */
static prt_status map_add(prt_onnx_imp *I, const Onnx__NodeProto *nd) {
    int ids[PRT_VARIADIC] = {0}, n = 0;
    if (nd->n_input == 1) return map_alias(I, nd);
    const char *rhs = NULL;
    if (nd->n_input == 2) {
        PRT_CHECK(prt_onnx_value(I, nd, nd->input[0], &ids[0]));
        PRT_CHECK(rhs_of(I, nd, ids[0], &rhs));
        PRT_CHECK(prt_onnx_value(I, nd, rhs, &ids[1]));
        n = 2;
    } else {
        PRT_CHECK(inputs_of(I, nd, ids, PRT_VARIADIC, &n));
    }
    pnode p;
    if (same_shapes(I, ids, n)) {
        PRT_CHECK(pnode_init(I, "add", &p));
        return emit_out(I, nd, &p, ids, n);
    }
    const prt_onnx_const *c = n == 2 ? prt_onnx_const_of(I, rhs) : NULL;
    if (!c || !c->f || !prt_op_find(I->ctx->ops, "sub", NULL))
        return unsupported(I, nd, "broadcasting add of two computed values is not supported");
    float *neg = prt_malloc(I->ctx, (size_t)(c->numel ? c->numel : 1) * sizeof *neg);
    if (!neg) return prt_error(I->ctx, PRT_ERR_NOMEM, "out of memory");
    for (int64_t k = 0; k < c->numel; k++) neg[k] = -c->f[k];
    char name[1200];
    snprintf(name, sizeof name, "%s.neg", nd->output[0]);
    int cid;
    prt_status st = prt_graph_add_persistent(I->g, name, PRT_VAL_STATE, &c->shape, PRT_F32, PRT_INIT_ZEROS, I->loc, &cid);
    if (st == PRT_OK) st = prt_onnx_add_weight(I, name, &c->shape, neg);
    prt_free(I->ctx, neg, 0);
    PRT_CHECK(st);
    PRT_CHECK(pnode_init(I, "sub", &p));
    int in[2] = {ids[0], cid};
    return emit_out(I, nd, &p, in, 2);
}

static prt_status map_binary(prt_onnx_imp *I, const Onnx__NodeProto *nd, const char *op) {
    if (nd->n_input != 2) return unsupported(I, nd, "expects 2 inputs");
    int ids[2];
    PRT_CHECK(prt_onnx_value(I, nd, nd->input[0], &ids[0]));
    const char *rhs;
    PRT_CHECK(rhs_of(I, nd, ids[0], &rhs));
    pnode p;
    /* a scalar constant factor: scale (Parrots' export writes it so) */
    const prt_onnx_const *c = prt_onnx_const_of(I, rhs);
    if (!strcmp(op, "mul") && c && c->f && c->numel == 1 && c->shape.ndim == 0) {
        PRT_CHECK(pnode_init(I, "scale", &p));
        PRT_CHECK(set_f(I, &p, "by", c->f[0]));
        return emit_out(I, nd, &p, ids, 1);
    }
    PRT_CHECK(prt_onnx_value(I, nd, rhs, &ids[1]));
    if (!prt_op_find(I->ctx->ops, op, NULL)) return unsupported(I, nd, "Parrots has no op '%s'", op);
    PRT_CHECK(pnode_init(I, op, &p));
    return emit_out(I, nd, &p, ids, 2);
}
static prt_status map_mul(prt_onnx_imp *I, const Onnx__NodeProto *nd) { return map_binary(I, nd, "mul"); }
static prt_status map_sub(prt_onnx_imp *I, const Onnx__NodeProto *nd) { return map_binary(I, nd, "sub"); }
static prt_status map_div(prt_onnx_imp *I, const Onnx__NodeProto *nd) { return map_binary(I, nd, "div"); }

/* y = x W^T (+ b) for a constant right operand: linear. wt: weight [out, in]. */
/* y = x W^T (+ b) for a constant right operand: linear. wt: weight [out, in].
 * The node (and its parameters' prefix) is `name`; *y gets its output when
 * not NULL, otherwise the ONNX output refers to it. */
static prt_status emit_linear_as(prt_onnx_imp *I, const Onnx__NodeProto *nd, const char *name, int x, int64_t out,
                                 int64_t in, const float *wt, const float *bias, int *y) {
    pnode p;
    PRT_CHECK(pnode_init(I, "linear", &p));
    PRT_CHECK(set_i(I, &p, "out", out));
    PRT_CHECK(set_i(I, &p, "bias", bias != NULL));
    int id = -1;
    PRT_CHECK(emit(I, nd, &p, name, &x, 1, &id));
    if (y) *y = id;
    else PRT_CHECK(prt_onnx_ent_put(I, nd->output[0], id, -1));
    prt_shape ws = prt_shape_make(2, (int64_t[]){out, in}), bs = prt_shape_make(1, &out);
    char pname[1200];
    snprintf(pname, sizeof pname, "%s.weight", name);
    PRT_CHECK(prt_onnx_add_weight(I, pname, &ws, wt));
    if (!bias) return PRT_OK;
    snprintf(pname, sizeof pname, "%s.bias", name);
    return prt_onnx_add_weight(I, pname, &bs, bias);
}

static prt_status emit_linear(prt_onnx_imp *I, const Onnx__NodeProto *nd, int x, int64_t out, int64_t in,
                              const float *wt, const float *bias) {
    return emit_linear_as(I, nd, nd->output[0], x, out, in, wt, bias, NULL);
}

/* A constant [K, N] (trans false) or [N, K] (trans true) as a weight [N, K]
 * times alpha. Caller frees. */
static float *weight_of(prt_onnx_imp *I, const prt_onnx_const *b, bool trans, float alpha, int64_t *n, int64_t *k) {
    *n = trans ? b->shape.d[0] : b->shape.d[1];
    *k = trans ? b->shape.d[1] : b->shape.d[0];
    float *w = prt_malloc(I->ctx, (size_t)(b->numel ? b->numel : 1) * sizeof *w);
    if (!w) return NULL;
    for (int64_t r = 0; r < *n; r++)
        for (int64_t c = 0; c < *k; c++) {
            float v = trans ? b->f[r * *k + c] : b->f[c * *n + r];
            w[r * *k + c] = alpha == 1.0f ? v : alpha * v;
        }
    return w;
}

static prt_status map_gemm(prt_onnx_imp *I, const Onnx__NodeProto *nd) {
    if (!has_input(nd, 1)) return unsupported(I, nd, "expects inputs A and B");
    int x;
    PRT_CHECK(prt_onnx_value(I, nd, nd->input[0], &x));
    prt_shape xs = vshape(I, x);
    float alpha = prt_onnx_attr_f(nd, "alpha", 1.0f), beta = prt_onnx_attr_f(nd, "beta", 1.0f);
    bool ta = prt_onnx_attr_i(nd, "transA", 0) != 0, tb = prt_onnx_attr_i(nd, "transB", 0) != 0;
    const prt_onnx_const *b = prt_onnx_const_of(I, nd->input[1]);
    const prt_onnx_const *c = has_input(nd, 2) ? prt_onnx_const_of(I, nd->input[2]) : NULL;
    if (ta) return unsupported(I, nd, "transA=1 is not supported");
    if (xs.ndim != 2) return unsupported(I, nd, "A has rank %d, expected 2", xs.ndim);
    if (!b || !b->f || b->shape.ndim != 2) return unsupported(I, nd, "B must be a float32 matrix initializer");
    if (c && !c->f) return unsupported(I, nd, "C has dtype %s", prt_onnx_dtype_name(c->dtype));
    int64_t n, k;
    if ((tb ? b->shape.d[1] : b->shape.d[0]) != xs.d[1]) return unsupported(I, nd, "A and B do not match");
    int cid = -1;
    if (has_input(nd, 2) && !c) {
        /* a computed C of the output's shape [M, N]: linear, then add */
        PRT_CHECK(prt_onnx_value(I, nd, nd->input[2], &cid));
        prt_shape cs = vshape(I, cid);
        int64_t nn = tb ? b->shape.d[0] : b->shape.d[1];
        if (beta != 1.0f) return unsupported(I, nd, "beta other than 1 with a computed C");
        if (cs.ndim != 2 || cs.d[0] != xs.d[0] || cs.d[1] != nn)
            return unsupported(I, nd, "a computed C must have the output's shape [M, N]");
    }
    float *w = weight_of(I, b, tb, alpha, &n, &k);
    float *bias = NULL;
    prt_status st = PRT_OK;
    if (!w) return prt_error(I->ctx, PRT_ERR_NOMEM, "out of memory");
    if (c && beta != 0.0f) {
        /* C broadcast to [M, N]: a scalar, [N] or [1, N] is a bias */
        int64_t cn = c->numel;
        bool row = (c->shape.ndim == 1 && c->shape.d[0] == n) || (c->shape.ndim == 2 && c->shape.d[0] == 1 &&
                                                                  c->shape.d[1] == n) || cn == 1;
        if (!row) {
            st = unsupported(I, nd, "C is not a row of N values");
            goto done;
        }
        bias = prt_malloc(I->ctx, (size_t)n * sizeof *bias);
        if (!bias) {
            st = prt_error(I->ctx, PRT_ERR_NOMEM, "out of memory");
            goto done;
        }
        for (int64_t j = 0; j < n; j++) {
            float v = c->f[cn == 1 ? 0 : j];
            bias[j] = beta == 1.0f ? v : beta * v;
        }
    }
    if (cid >= 0) {
        char name[1200];
        snprintf(name, sizeof name, "%s.gemm", nd->output[0]);
        int y;
        pnode p;
        st = emit_linear_as(I, nd, name, x, n, k, w, NULL, &y);
        if (st == PRT_OK) st = pnode_init(I, "add", &p);
        if (st == PRT_OK) st = emit_out(I, nd, &p, (int[]){y, cid}, 2);
    } else {
        st = emit_linear(I, nd, x, n, k, w, bias);
    }
done:
    prt_free(I->ctx, w, 0);
    prt_free(I->ctx, bias, 0);
    return st;
}

static prt_status map_matmul(prt_onnx_imp *I, const Onnx__NodeProto *nd) {
    if (nd->n_input != 2) return unsupported(I, nd, "expects 2 inputs");
    int x;
    PRT_CHECK(prt_onnx_value(I, nd, nd->input[0], &x));
    prt_shape xs = vshape(I, x);
    const prt_onnx_const *b = prt_onnx_const_of(I, nd->input[1]);
    if (xs.ndim == 2 && b && b->f && b->shape.ndim == 2 && b->shape.d[0] == xs.d[1]) {
        int64_t n, k;
        float *w = weight_of(I, b, false, 1.0f, &n, &k);
        if (!w) return prt_error(I->ctx, PRT_ERR_NOMEM, "out of memory");
        prt_status st = emit_linear(I, nd, x, n, k, w, NULL);
        prt_free(I->ctx, w, 0);
        return st;
    }
    return map_binary(I, nd, "matmul");
}

static prt_status map_flatten(prt_onnx_imp *I, const Onnx__NodeProto *nd) {
    int x;
    PRT_CHECK(prt_onnx_value(I, nd, nd->input[0], &x));
    prt_shape xs = vshape(I, x);
    int64_t axis = prt_onnx_attr_i(nd, "axis", 1);
    if (axis < 0) axis += xs.ndim;
    if (axis != 1) return unsupported(I, nd, "axis %lld would fold the batch into other dimensions", (long long)axis);
    pnode p;
    PRT_CHECK(pnode_init(I, "flatten", &p));
    return emit_out(I, nd, &p, &x, 1);
}

static prt_status map_softmax(prt_onnx_imp *I, const Onnx__NodeProto *nd) {
    int x;
    PRT_CHECK(prt_onnx_value(I, nd, nd->input[0], &x));
    prt_shape xs = vshape(I, x);
    int64_t axis = prt_onnx_attr_i(nd, "axis", I->opset >= 13 ? -1 : 1);
    if (axis < 0) axis += xs.ndim;
    if (axis < 0 || axis >= xs.ndim) return unsupported(I, nd, "axis is out of range");
    if (I->opset < 13) {
        /* before opset 13 the input is coerced to 2-D at axis: one Parrots axis
         * only when every later dimension is 1 */
        for (int d = (int)axis + 1; d < xs.ndim; d++)
            if (xs.d[d] != 1) return unsupported(I, nd, "softmax over several dimensions (opset < 13 coercion)");
    }
    pnode p;
    PRT_CHECK(pnode_init(I, "softmax", &p));
    PRT_CHECK(set_i(I, &p, "axis", axis));
    return emit_out(I, nd, &p, &x, 1);
}

static prt_status map_clip(prt_onnx_imp *I, const Onnx__NodeProto *nd) {
    double lo = -INFINITY, hi = INFINITY;
    if (I->opset < 11) {
        lo = prt_onnx_attr_f(nd, "min", -INFINITY);
        hi = prt_onnx_attr_f(nd, "max", INFINITY);
    } else {
        for (size_t k = 1; k < 3; k++) {
            if (!has_input(nd, k)) continue;
            const prt_onnx_const *c = NULL;
            PRT_CHECK(float_const(I, nd, k, k == 1 ? "min" : "max", &c));
            if (c->numel != 1) return unsupported(I, nd, "%s is not a scalar", k == 1 ? "min" : "max");
            if (k == 1) lo = c->f[0];
            else hi = c->f[0];
        }
    }
    int x;
    PRT_CHECK(prt_onnx_value(I, nd, nd->input[0], &x));
    pnode p;
    PRT_CHECK(pnode_init(I, "clip", &p));
    PRT_CHECK(set_f(I, &p, "min", lo));
    PRT_CHECK(set_f(I, &p, "max", hi));
    return emit_out(I, nd, &p, &x, 1);
}

static prt_status map_reshape(prt_onnx_imp *I, const Onnx__NodeProto *nd) {
    int x;
    PRT_CHECK(prt_onnx_value(I, nd, nd->input[0], &x));
    prt_shape xs = vshape(I, x);
    int64_t shape[PRT_MAX_DIMS];
    int n = 0;
    if (I->opset < 5) {
        const int64_t *v;
        n = prt_onnx_attr_ints(nd, "shape", &v);
        if (n < 0 || n > PRT_MAX_DIMS) return unsupported(I, nd, "bad shape attribute");
        memcpy(shape, v, (size_t)n * sizeof *v);
    } else {
        const prt_onnx_const *c = NULL;
        PRT_CHECK(const_input(I, nd, 1, "the shape", &c));
        if (!c->i || c->shape.ndim != 1 || c->numel > PRT_MAX_DIMS) return unsupported(I, nd, "bad shape tensor");
        n = (int)c->numel;
        memcpy(shape, c->i, (size_t)n * sizeof *shape);
    }
    if (prt_onnx_attr_i(nd, "allowzero", 0))
        for (int k = 0; k < n; k++)
            if (shape[k] == 0) return unsupported(I, nd, "allowzero=1 with a zero in the shape");
    /* the model's batch written out in the shape is the batch: copy it (0) */
    if (n > 0 && shape[0] == I->batch && xs.ndim > 0 && xs.d[0] == I->batch) shape[0] = 0;
    pnode p;
    PRT_CHECK(pnode_init(I, "reshape", &p));
    PRT_CHECK(set_ints(I, nd, &p, "shape", shape, n));
    return emit_out(I, nd, &p, &x, 1);
}

static prt_status map_transpose(prt_onnx_imp *I, const Onnx__NodeProto *nd) {
    int x;
    PRT_CHECK(prt_onnx_value(I, nd, nd->input[0], &x));
    prt_shape xs = vshape(I, x);
    int64_t perm[PRT_MAX_DIMS];
    const int64_t *v;
    int n = prt_onnx_attr_ints(nd, "perm", &v);
    if (n < 0) {
        n = xs.ndim;
        for (int k = 0; k < n; k++) perm[k] = n - 1 - k;
    } else {
        if (n > PRT_MAX_DIMS) return unsupported(I, nd, "perm is too long");
        memcpy(perm, v, (size_t)n * sizeof *v);
    }
    pnode p;
    PRT_CHECK(pnode_init(I, "transpose", &p));
    PRT_CHECK(set_ints(I, nd, &p, "perm", perm, n));
    return emit_out(I, nd, &p, &x, 1);
}

static prt_status map_pad(prt_onnx_imp *I, const Onnx__NodeProto *nd) {
    int x;
    PRT_CHECK(prt_onnx_value(I, nd, nd->input[0], &x));
    int64_t pads[2 * PRT_MAX_DIMS];
    int n = 0;
    double value = 0;
    if (I->opset < 11) {
        const int64_t *v;
        /* opset 1 calls the attribute "paddings" */
        n = prt_onnx_attr_ints(nd, I->opset < 2 ? "paddings" : "pads", &v);
        if (n < 0 || n > 2 * PRT_MAX_DIMS) return unsupported(I, nd, "bad pads");
        memcpy(pads, v, (size_t)n * sizeof *v);
        value = prt_onnx_attr_f(nd, "value", 0.0f);
    } else {
        const prt_onnx_const *c = NULL;
        PRT_CHECK(const_input(I, nd, 1, "pads", &c));
        if (!c->i || c->numel > 2 * PRT_MAX_DIMS) return unsupported(I, nd, "bad pads tensor");
        n = (int)c->numel;
        memcpy(pads, c->i, (size_t)n * sizeof *pads);
        if (has_input(nd, 2)) {
            const prt_onnx_const *vc;
            PRT_CHECK(float_const(I, nd, 2, "constant_value", &vc));
            if (vc->numel != 1) return unsupported(I, nd, "constant_value is not a scalar");
            value = vc->f[0];
        }
        if (has_input(nd, 3)) return unsupported(I, nd, "the axes input is not supported");
    }
    char mode[16] = "constant";
    const Onnx__AttributeProto *ma = prt_onnx_attr(nd, "mode");
    if (ma && ma->has_s) {
        if (ma->s.len >= sizeof mode) return unsupported(I, nd, "unknown mode");
        memcpy(mode, ma->s.data, ma->s.len);
        mode[ma->s.len] = '\0';
    }
    pnode p;
    PRT_CHECK(pnode_init(I, "pad", &p));
    PRT_CHECK(set_ints(I, nd, &p, "pads", pads, n));
    PRT_CHECK(set_s(I, &p, "mode", mode));
    PRT_CHECK(set_f(I, &p, "value", value));
    return emit_out(I, nd, &p, &x, 1);
}

static prt_status map_constant(prt_onnx_imp *I, const Onnx__NodeProto *nd) {
    const Onnx__AttributeProto *a = prt_onnx_attr(nd, "value");
    prt_onnx_const c = {0};
    if (a && a->t) {
        char what[300];
        snprintf(what, sizeof what, "constant '%.200s'", nd->output[0]);
        PRT_CHECK(prt_onnx_decode(I->ctx, I->file, I->dir, what, a->t, &c));
    } else if ((a = prt_onnx_attr(nd, "value_float")) && a->has_f) {
        c.f = prt_malloc(I->ctx, sizeof *c.f);
        if (!c.f) return prt_error(I->ctx, PRT_ERR_NOMEM, "out of memory");
        c.f[0] = a->f, c.numel = 1, c.dtype = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    } else if ((a = prt_onnx_attr(nd, "value_ints")) || (a = prt_onnx_attr(nd, "value_int"))) {
        bool one = !strcmp(a->name, "value_int");
        int64_t n = one ? 1 : (int64_t)a->n_ints;
        if (n > PRT_MAX_ELEMS) return unsupported(I, nd, "too many values");
        c.i = prt_malloc(I->ctx, (size_t)(n ? n : 1) * sizeof *c.i);
        if (!c.i) return prt_error(I->ctx, PRT_ERR_NOMEM, "out of memory");
        for (int64_t k = 0; k < n; k++) c.i[k] = one ? a->i : a->ints[k];
        c.numel = n, c.dtype = ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
        c.shape.ndim = one ? 0 : 1;
        c.shape.d[0] = n;
    } else if ((a = prt_onnx_attr(nd, "value_floats"))) {
        int64_t n = (int64_t)a->n_floats;
        c.f = prt_malloc(I->ctx, (size_t)(n ? n : 1) * sizeof *c.f);
        if (!c.f) return prt_error(I->ctx, PRT_ERR_NOMEM, "out of memory");
        memcpy(c.f, a->floats, (size_t)n * sizeof *c.f);
        c.numel = n, c.dtype = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, c.shape.ndim = 1, c.shape.d[0] = n;
    } else {
        return unsupported(I, nd, "only tensor, float and int values are supported");
    }
    return prt_onnx_add_const(I, nd->output[0], &c);
}

/* ---- the table ---------------------------------------------------------------- */

typedef struct onnx_op {
    const char *type;  /* sorted */
    map_fn fn;
    const char *need;  /* a Parrots op the mapping needs, or NULL */
    unsigned konst;    /* bit k: input k must be a constant */
} onnx_op;

static const onnx_op table[] = {
    {"Add", map_add, "add", 0},
    {"AveragePool", map_avgpool, "avgpool", 0},
    {"BatchNormalization", map_batchnorm, "batchnorm", 0x1e},
    {"Clip", map_clip, "clip", 0x6},
    {"Concat", map_concat, "concat", 0},
    {"Constant", map_constant, NULL, 0},
    {"Conv", map_conv, "conv", 0x6},
    {"Div", map_div, "div", 0},
    {"Dropout", map_alias, NULL, 0x6},
    {"Flatten", map_flatten, "flatten", 0},
    {"Gemm", map_gemm, "linear", 0x6},
    {"GlobalAveragePool", map_gap, "avgpool", 0},
    {"GlobalMaxPool", map_gmp, "maxpool", 0},
    {"Identity", map_alias, NULL, 0},
    {"MatMul", map_matmul, "linear", 0},
    {"MaxPool", map_maxpool, "maxpool", 0},
    {"Mul", map_mul, NULL, 0},
    {"Pad", map_pad, "pad", 0xe},
    {"Relu", map_relu, "relu", 0},
    {"Reshape", map_reshape, "reshape", 0x2},
    {"Sigmoid", map_sigmoid, "sigmoid", 0},
    {"Softmax", map_softmax, "softmax", 0},
    {"Sub", map_sub, "sub", 0},
    {"Sum", map_add, "add", 0},
    {"Tanh", map_tanh, "tanh", 0},
    {"Transpose", map_transpose, "transpose", 0},
};

static int cmp_op(const void *key, const void *e) { return strcmp(key, ((const onnx_op *)e)->type); }

static const onnx_op *find(const Onnx__NodeProto *nd) {
    if (!nd->op_type) return NULL;
    if (nd->domain && *nd->domain && strcmp(nd->domain, "ai.onnx")) return NULL;
    return bsearch(nd->op_type, table, sizeof table / sizeof table[0], sizeof table[0], cmp_op);
}

bool prt_onnx_supported(const prt_onnx_imp *I, const Onnx__NodeProto *nd) {
    const onnx_op *o = find(nd);
    return o && (!o->need || prt_op_find(I->ctx->ops, o->need, NULL));
}

prt_status prt_onnx_copy_value(prt_onnx_imp *I, const char *name, int x, int *out) {
    pnode p;
    PRT_CHECK(pnode_init(I, "scale", &p));
    PRT_CHECK(set_f(I, &p, "by", 1.0));
    int nid;
    PRT_CHECK(prt_graph_add_node(I->g, p.op, name, name, &x, 1, p.attrs, I->loc, &nid));
    PRT_CHECK(prt_graph_infer_node(I->g, nid));
    *out = I->g->nodes[nid].out[0];
    return PRT_OK;
}

bool prt_onnx_const_input(const Onnx__NodeProto *nd, size_t k) {
    const onnx_op *o = find(nd);
    return o && k < 32 && (o->konst >> k & 1u);
}

prt_status prt_onnx_map_node(prt_onnx_imp *I, const Onnx__NodeProto *nd) {
    const onnx_op *o = find(nd);
    if (!o) return unsupported(I, nd, "no mapping"); /* check_ops reports these first */
    if (nd->n_output < 1 || !nd->output[0] || !nd->output[0][0])
        return prt_error(I->ctx, PRT_ERR_SCHEMA, "%s: node '%s' (%s) has no output", I->file, prt_onnx_node_name(nd),
                         nd->op_type);
    if (strcmp(nd->op_type, "Constant") && !has_input(nd, 0))
        return prt_error(I->ctx, PRT_ERR_SCHEMA, "%s: node '%s' (%s) has no input", I->file, prt_onnx_node_name(nd),
                         nd->op_type);
    for (size_t k = 0; k < nd->n_output; k++)
        if (nd->output[k] && nd->output[k][0] && prt_onnx_ent_get(I, nd->output[k]))
            return prt_error(I->ctx, PRT_ERR_SCHEMA, "%s: node '%s' (%s): output '%s' is defined twice", I->file,
                             prt_onnx_node_name(nd), nd->op_type, nd->output[k]);
    return o->fn(I, nd);
}

/* ONNX export: an inference graph (parameters bound) and the values of its
 * parameters and state, read from a VM, as a ModelProto of opset
 * PRT_ONNX_EXPORT_OPSET. Each Parrots node becomes the ONNX nodes the importer
 * maps back to the same Parrots op with the same attributes, so an export ->
 * import round trip computes the same thing with the same kernels:
 *
 *   conv -> Conv            batchnorm -> BatchNormalization   relu/sigmoid/tanh
 *   maxpool/avgpool -> MaxPool/AveragePool (global: GlobalMaxPool/GlobalAveragePool)
 *   global_avgpool -> GlobalAveragePool   concat -> Concat   add -> Add or Sum
 *   scale -> Mul by a scalar initializer   linear -> (Flatten) Gemm transB=1
 *   softmax -> Softmax   flatten -> Flatten   dropout -> Identity
 *   mul/sub/div/matmul/transpose -> the same   reshape -> Reshape (shape initializer)
 *   clip -> Clip (bound initializers)   pad -> Pad (pads initializer)
 *
 * Every value keeps its Parrots name; parameters and state become initializers
 * under theirs. The batch dimension of inputs and outputs is symbolic ("N").
 * Every message structure is allocated from one list freed at the end. */
#include "frontends/onnx/onnx_impl.h"
#include "ops/plugin_impl.h"
#include "parrots/plugin.h"
#include "runtime/graph_impl.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct ex {
    prt_context *ctx;
    prt_graph *g;
    prt_vm *vm;
    const char *path;
    void **blocks;
    int n_blocks, cap_blocks;
    Onnx__GraphProto *gp;
    int cap_node, cap_init;
} ex;

static void *ex_alloc(ex *e, size_t n) {
    void *p = prt_calloc(e->ctx, 1, n ? n : 1);
    if (!p) return NULL;
    if (prt_grow(e->ctx, (void **)&e->blocks, &e->cap_blocks, e->n_blocks + 1, sizeof *e->blocks) != PRT_OK) {
        prt_free(e->ctx, p, 0);
        return NULL;
    }
    e->blocks[e->n_blocks++] = p;
    return p;
}

static char *ex_str(ex *e, const char *s) {
    size_t n = strlen(s);
    char *c = ex_alloc(e, n + 1);
    if (c) memcpy(c, s, n + 1);
    return c;
}

static prt_status nomem(ex *e) { return prt_error(e->ctx, PRT_ERR_NOMEM, "%s: out of memory", e->path); }

/* ---- building messages ------------------------------------------------------ */

static Onnx__AttributeProto *attr_new(ex *e, const char *name, Onnx__AttributeProto__AttributeType t) {
    Onnx__AttributeProto *a = ex_alloc(e, sizeof *a);
    if (!a) return NULL;
    onnx__attribute_proto__init(a);
    a->name = ex_str(e, name);
    a->has_type = true;
    a->type = t;
    return a->name ? a : NULL;
}

static Onnx__AttributeProto *attr_i(ex *e, const char *name, int64_t v) {
    Onnx__AttributeProto *a = attr_new(e, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) a->has_i = true, a->i = v;
    return a;
}

static Onnx__AttributeProto *attr_f(ex *e, const char *name, float v) {
    Onnx__AttributeProto *a = attr_new(e, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a) a->has_f = true, a->f = v;
    return a;
}

static Onnx__AttributeProto *attr_s(ex *e, const char *name, const char *v) {
    Onnx__AttributeProto *a = attr_new(e, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    char *c = a ? ex_str(e, v) : NULL;
    if (!c) return NULL;
    a->has_s = true;
    a->s.data = (uint8_t *)c;
    a->s.len = strlen(c);
    return a;
}

static Onnx__AttributeProto *attr_ints(ex *e, const char *name, const int64_t *v, int n) {
    Onnx__AttributeProto *a = attr_new(e, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *c = a ? ex_alloc(e, (size_t)n * sizeof *c) : NULL;
    if (!c) return NULL;
    memcpy(c, v, (size_t)n * sizeof *c);
    a->n_ints = (size_t)n;
    a->ints = c;
    return a;
}

/* A node with up to 6 inputs ("" for an absent optional one) and one output. */
static Onnx__NodeProto *node_new(ex *e, const char *op, const char *name, const char *const *in, int n_in,
                                 const char *out) {
    Onnx__NodeProto *nd = ex_alloc(e, sizeof *nd);
    char **ins = ex_alloc(e, (size_t)(n_in ? n_in : 1) * sizeof *ins);
    char **outs = ex_alloc(e, sizeof *outs);
    Onnx__AttributeProto **attrs = ex_alloc(e, 8 * sizeof *attrs);
    if (!nd || !ins || !outs || !attrs) return NULL;
    onnx__node_proto__init(nd);
    nd->op_type = ex_str(e, op);
    nd->name = ex_str(e, name);
    outs[0] = ex_str(e, out);
    if (!nd->op_type || !nd->name || !outs[0]) return NULL;
    for (int k = 0; k < n_in; k++)
        if (!(ins[k] = ex_str(e, in[k]))) return NULL;
    nd->n_input = (size_t)n_in;
    nd->input = ins;
    nd->n_output = 1;
    nd->output = outs;
    nd->attribute = attrs;
    return nd;
}

static prt_status add_attr(ex *e, Onnx__NodeProto *nd, Onnx__AttributeProto *a) {
    if (!a) return nomem(e);
    PRT_ASSERT(nd->n_attribute < 8);
    nd->attribute[nd->n_attribute++] = a;
    return PRT_OK;
}

static prt_status add_node(ex *e, Onnx__NodeProto *nd) {
    if (!nd) return nomem(e);
    Onnx__GraphProto *gp = e->gp;
    PRT_CHECK(prt_grow(e->ctx, (void **)&gp->node, &e->cap_node, (int)gp->n_node + 1, sizeof *gp->node));
    gp->node[gp->n_node++] = nd;
    return PRT_OK;
}

static prt_status add_init(ex *e, Onnx__TensorProto *t) {
    if (!t) return nomem(e);
    Onnx__GraphProto *gp = e->gp;
    PRT_CHECK(prt_grow(e->ctx, (void **)&gp->initializer, &e->cap_init, (int)gp->n_initializer + 1,
                       sizeof *gp->initializer));
    gp->initializer[gp->n_initializer++] = t;
    return PRT_OK;
}

static Onnx__TensorProto *tensor_new(ex *e, const char *name, int32_t dtype, const int64_t *dims, int ndim) {
    Onnx__TensorProto *t = ex_alloc(e, sizeof *t);
    int64_t *d = ex_alloc(e, (size_t)(ndim ? ndim : 1) * sizeof *d);
    if (!t || !d) return NULL;
    onnx__tensor_proto__init(t);
    t->name = ex_str(e, name);
    if (!t->name) return NULL;
    t->has_data_type = true;
    t->data_type = dtype;
    memcpy(d, dims, (size_t)ndim * sizeof *d);
    t->n_dims = (size_t)ndim;
    t->dims = d;
    return t;
}

/* raw_data is little-endian; so is every machine Parrots runs on */
static prt_status init_f32(ex *e, const char *name, const prt_shape *s, const float *data) {
    Onnx__TensorProto *t = tensor_new(e, name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, s->d, s->ndim);
    size_t n = (size_t)prt_shape_count(s) * sizeof(float);
    uint8_t *raw = t ? ex_alloc(e, n) : NULL;
    if (!raw) return nomem(e);
    memcpy(raw, data, n);
    t->has_raw_data = true;
    t->raw_data.data = raw;
    t->raw_data.len = n;
    return add_init(e, t);
}

static prt_status init_scalar(ex *e, const char *name, float v) {
    prt_shape s = {.ndim = 0};
    return init_f32(e, name, &s, &v);
}

static prt_status init_i64(ex *e, const char *name, const int64_t *v, int n) {
    int64_t dims[1] = {n};
    Onnx__TensorProto *t = tensor_new(e, name, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, dims, 1);
    int64_t *c = t ? ex_alloc(e, (size_t)(n ? n : 1) * sizeof *c) : NULL;
    if (!c) return nomem(e);
    memcpy(c, v, (size_t)n * sizeof *c);
    t->n_int64_data = (size_t)n;
    t->int64_data = c;
    return add_init(e, t);
}

/* A tensor value_info; the first dimension symbolic when `batched`. */
static Onnx__ValueInfoProto *value_info(ex *e, const char *name, const prt_shape *s, bool batched) {
    Onnx__ValueInfoProto *vi = ex_alloc(e, sizeof *vi);
    Onnx__TypeProto *tp = ex_alloc(e, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = ex_alloc(e, sizeof *tt);
    Onnx__TensorShapeProto *sp = ex_alloc(e, sizeof *sp);
    int nd = s->ndim + (batched ? 1 : 0);
    Onnx__TensorShapeProto__Dimension **dims = ex_alloc(e, (size_t)(nd ? nd : 1) * sizeof *dims);
    if (!vi || !tp || !tt || !sp || !dims) return NULL;
    onnx__value_info_proto__init(vi);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sp);
    for (int k = 0; k < nd; k++) {
        Onnx__TensorShapeProto__Dimension *d = ex_alloc(e, sizeof *d);
        if (!d) return NULL;
        onnx__tensor_shape_proto__dimension__init(d);
        if (batched && k == 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            if (!(d->dim_param = ex_str(e, "N"))) return NULL;
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = s->d[k - (batched ? 1 : 0)];
        }
        dims[k] = d;
    }
    sp->n_dim = (size_t)nd;
    sp->dim = dims;
    tt->has_elem_type = true;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = sp;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    vi->name = ex_str(e, name);
    vi->type = tp;
    return vi->name ? vi : NULL;
}

/* ---- one Parrots node --------------------------------------------------------- */

static const char *vname(ex *e, int id) { return e->g->values[id].name; }

/* A plugin op that declares its ONNX form (prt_plugin_op.onnx_op), or NULL. */
static const prt_plugin_op *plugin_onnx(const prt_op_schema *s) {
    const prt_plugin_op *p = prt_plugin_op_of(s);
    return p && p->onnx_op && p->onnx_op[0] && s->n_out == 1 ? p : NULL; /* one output, as every export */
}

static bool can_export(const char *op) {
    static const char *const ops[] = {"add",    "avgpool", "batchnorm", "clip",    "concat",  "conv",
                                      "div",    "dropout", "flatten",   "global_avgpool", "linear", "matmul",
                                      "maxpool", "mul",    "pad",       "relu",    "reshape", "scale",
                                      "sigmoid", "softmax", "sub",      "tanh",    "transpose"};
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++)
        if (!strcmp(ops[k], op)) return true;
    return false;
}

static void pad4(const prt_attr *a, int64_t out[4]) { prt_attr_pad4(a, out); }

/* ONNX pads [top, left, bottom, right] order is begin(h, w), end(h, w): the same */
static prt_status window_attrs(ex *e, Onnx__NodeProto *nd, const prt_op_schema *s, const prt_attr *at, bool conv) {
    const prt_attr *k = &at[prt_op_attr_index(s, "kernel")], *st = &at[prt_op_attr_index(s, "stride")];
    const prt_attr *p = &at[prt_op_attr_index(s, "pad")];
    int64_t kk[2], ss[2], pp[4];
    prt_attr_pair(k, &kk[0], &kk[1]);
    if (st->n > 0) prt_attr_pair(st, &ss[0], &ss[1]);
    else ss[0] = conv ? 1 : kk[0], ss[1] = conv ? 1 : kk[1];
    pad4(p, pp);
    PRT_CHECK(add_attr(e, nd, attr_ints(e, "kernel_shape", kk, 2)));
    PRT_CHECK(add_attr(e, nd, attr_ints(e, "strides", ss, 2)));
    return add_attr(e, nd, attr_ints(e, "pads", pp, 4));
}

static prt_status export_node(ex *e, int n) {
    const prt_node *pn = &e->g->nodes[n];
    const prt_op_schema *s = prt_op_get(e->ctx->ops, pn->op);
    const prt_attr *at = pn->attrs;
    const char *name = pn->name, *out = vname(e, pn->out[0]);
    const char *in[PRT_VARIADIC + PRT_MAX_OP_PARAMS];
    int n_in = pn->n_in < (int)(sizeof in / sizeof in[0]) ? pn->n_in : (int)(sizeof in / sizeof in[0]);
    for (int k = 0; k < n_in; k++) in[k] = vname(e, pn->in[k]);
    const char *op = s->name;
    char aux[1200], aux2[1200];
#define ATTR(nm) (&at[prt_op_attr_index(s, nm)])
    Onnx__NodeProto *nd = NULL;
    const prt_plugin_op *po = plugin_onnx(s);
    if (po) {
        /* the op's own ONNX node, in its domain, with every attribute */
        nd = node_new(e, po->onnx_op, name, in, n_in, out);
        if (!nd) return nomem(e);
        nd->domain = ex_str(e, po->onnx_domain ? po->onnx_domain : "");
        if (!nd->domain) return nomem(e);
        for (int k = 0; k < s->n_attrs; k++) {
            const prt_attr *a = &at[k];
            const char *an = s->attrs[k].name;
            Onnx__AttributeProto *ap = NULL;
            switch (s->attrs[k].type) {
            case PRT_ATTR_INT:
            case PRT_ATTR_BOOL: ap = attr_i(e, an, a->i[0]); break;
            case PRT_ATTR_FLOAT: ap = attr_f(e, an, (float)a->f); break;
            case PRT_ATTR_INTS: ap = attr_ints(e, an, a->i, a->n); break;
            case PRT_ATTR_STRING: ap = attr_s(e, an, a->s ? a->s : ""); break;
            }
            PRT_CHECK(add_attr(e, nd, ap));
        }
        return add_node(e, nd);
    }
    if (!strcmp(op, "conv")) {
        nd = node_new(e, "Conv", name, in, n_in, out);
        if (!nd) return nomem(e);
        PRT_CHECK(window_attrs(e, nd, s, at, true));
        int64_t d[2];
        prt_attr_pair(ATTR("dilation"), &d[0], &d[1]);
        PRT_CHECK(add_attr(e, nd, attr_ints(e, "dilations", d, 2)));
        PRT_CHECK(add_attr(e, nd, attr_i(e, "group", prt_attr_int(ATTR("groups")))));
    } else if (!strcmp(op, "batchnorm")) {
        nd = node_new(e, "BatchNormalization", name, in, n_in, out);
        if (!nd) return nomem(e);
        /* the kernels use eps as a float: the attribute's float is exact */
        PRT_CHECK(add_attr(e, nd, attr_f(e, "epsilon", (float)prt_attr_float(ATTR("eps")))));
    } else if (!strcmp(op, "relu") || !strcmp(op, "sigmoid") || !strcmp(op, "tanh")) {
        nd = node_new(e, !strcmp(op, "relu") ? "Relu" : !strcmp(op, "sigmoid") ? "Sigmoid" : "Tanh", name, in, 1, out);
    } else if (!strcmp(op, "maxpool") || !strcmp(op, "avgpool")) {
        bool max = !strcmp(op, "maxpool");
        if (prt_attr_bool(ATTR("global"))) {
            nd = node_new(e, max ? "GlobalMaxPool" : "GlobalAveragePool", name, in, 1, out);
        } else {
            nd = node_new(e, max ? "MaxPool" : "AveragePool", name, in, 1, out);
            if (!nd) return nomem(e);
            PRT_CHECK(window_attrs(e, nd, s, at, false));
            if (!max) PRT_CHECK(add_attr(e, nd, attr_i(e, "count_include_pad", prt_attr_bool(ATTR("count_include_pad")))));
        }
    } else if (!strcmp(op, "global_avgpool")) {
        nd = node_new(e, "GlobalAveragePool", name, in, 1, out);
    } else if (!strcmp(op, "concat")) {
        nd = node_new(e, "Concat", name, in, pn->n_data_in, out);
        if (nd) PRT_CHECK(add_attr(e, nd, attr_i(e, "axis", prt_attr_int(ATTR("axis")))));
    } else if (!strcmp(op, "add")) {
        nd = node_new(e, pn->n_data_in == 2 ? "Add" : "Sum", name, in, pn->n_data_in, out);
    } else if (!strcmp(op, "mul") || !strcmp(op, "sub") || !strcmp(op, "div") || !strcmp(op, "matmul")) {
        const char *t = !strcmp(op, "mul") ? "Mul" : !strcmp(op, "sub") ? "Sub" : !strcmp(op, "div") ? "Div" : "MatMul";
        nd = node_new(e, t, name, in, 2, out);
    } else if (!strcmp(op, "scale")) {
        snprintf(aux, sizeof aux, "%s.by", name);
        PRT_CHECK(init_scalar(e, aux, (float)prt_attr_float(ATTR("by"))));
        nd = node_new(e, "Mul", name, (const char *[]){in[0], aux}, 2, out);
    } else if (!strcmp(op, "linear")) {
        const char *x = in[0];
        prt_shape xs = prt_graph_value_shape(e->g, pn->in[0]);
        if (xs.ndim != 2) {
            /* Gemm takes a matrix: flatten first, as linear does */
            snprintf(aux, sizeof aux, "%s.flat", name);
            Onnx__NodeProto *f = node_new(e, "Flatten", aux, &x, 1, aux);
            if (f) PRT_CHECK(add_attr(e, f, attr_i(e, "axis", 1)));
            PRT_CHECK(add_node(e, f));
            x = aux;
        }
        const char *gin[3] = {x, in[1], n_in > 2 ? in[2] : ""};
        nd = node_new(e, "Gemm", name, gin, n_in > 2 ? 3 : 2, out);
        if (nd) PRT_CHECK(add_attr(e, nd, attr_i(e, "transB", 1)));
    } else if (!strcmp(op, "softmax")) {
        nd = node_new(e, "Softmax", name, in, 1, out);
        if (nd) PRT_CHECK(add_attr(e, nd, attr_i(e, "axis", prt_attr_int(ATTR("axis")))));
    } else if (!strcmp(op, "flatten")) {
        nd = node_new(e, "Flatten", name, in, 1, out);
        if (nd) PRT_CHECK(add_attr(e, nd, attr_i(e, "axis", 1)));
    } else if (!strcmp(op, "dropout")) {
        nd = node_new(e, "Identity", name, in, 1, out);
    } else if (!strcmp(op, "transpose")) {
        nd = node_new(e, "Transpose", name, in, 1, out);
        const prt_attr *p = ATTR("perm");
        if (nd && p->n > 0) PRT_CHECK(add_attr(e, nd, attr_ints(e, "perm", p->i, p->n)));
    } else if (!strcmp(op, "reshape")) {
        const prt_attr *p = ATTR("shape");
        snprintf(aux, sizeof aux, "%s.shape", name);
        PRT_CHECK(init_i64(e, aux, p->i, p->n));
        nd = node_new(e, "Reshape", name, (const char *[]){in[0], aux}, 2, out);
    } else if (!strcmp(op, "clip")) {
        double lo = prt_attr_float(ATTR("min")), hi = prt_attr_float(ATTR("max"));
        snprintf(aux, sizeof aux, "%s.min", name);
        snprintf(aux2, sizeof aux2, "%s.max", name);
        if (isfinite(lo)) PRT_CHECK(init_scalar(e, aux, (float)lo));
        if (isfinite(hi)) PRT_CHECK(init_scalar(e, aux2, (float)hi));
        const char *cin[3] = {in[0], isfinite(lo) ? aux : "", isfinite(hi) ? aux2 : ""};
        nd = node_new(e, "Clip", name, cin, isfinite(hi) ? 3 : isfinite(lo) ? 2 : 1, out);
    } else if (!strcmp(op, "pad")) {
        const prt_attr *p = ATTR("pads");
        snprintf(aux, sizeof aux, "%s.pads", name);
        snprintf(aux2, sizeof aux2, "%s.value", name);
        PRT_CHECK(init_i64(e, aux, p->i, p->n));
        PRT_CHECK(init_scalar(e, aux2, (float)prt_attr_float(ATTR("value"))));
        nd = node_new(e, "Pad", name, (const char *[]){in[0], aux, aux2}, 3, out);
        const char *mode = ATTR("mode")->s ? ATTR("mode")->s : "constant";
        if (nd) PRT_CHECK(add_attr(e, nd, attr_s(e, "mode", mode)));
    } else {
        return prt_error(e->ctx, PRT_ERR_INTERNAL, "op '%s' passed the export check", op);
    }
#undef ATTR
    return add_node(e, nd);
}

/* ---- the model ---------------------------------------------------------------- */

static prt_status check_graph(ex *e) {
    prt_graph *g = e->g;
    if (!g->params_bound)
        return prt_error(e->ctx, PRT_ERR_INVALID, "%s: the graph's parameters are not bound", e->path);
    char msg[2048];
    size_t len = 0;
    int bad = 0;
    for (int n = 0; n < g->n_nodes; n++) {
        const prt_op_schema *s = prt_op_get(e->ctx->ops, g->nodes[n].op);
        if (can_export(s->name) || plugin_onnx(s)) continue;
        bad++;
        if (len + 300 < sizeof msg)
            len += (size_t)snprintf(msg + len, sizeof msg - len, "%s%s ('%.200s')", bad > 1 ? ", " : "", s->name,
                                    g->nodes[n].name);
        else if (len + 20 < sizeof msg) len += (size_t)snprintf(msg + len, sizeof msg - len, ", ...");
    }
    if (bad)
        return prt_error(e->ctx, PRT_ERR_UNSUPPORTED, "%s: ops without an ONNX form: %s", e->path, msg);
    for (int k = 0; k < g->n_inputs; k++)
        if (g->values[g->inputs[k]].dtype != PRT_F32)
            return prt_error(e->ctx, PRT_ERR_UNSUPPORTED, "%s: input '%s' is not float32", e->path,
                             g->values[g->inputs[k]].name);
    return PRT_OK;
}

static prt_status build(ex *e, Onnx__ModelProto *mp) {
    prt_graph *g = e->g;
    PRT_CHECK(check_graph(e));
    PRT_CHECK(prt_graph_infer(g, 1));
    Onnx__GraphProto *gp = e->gp;
    /* the standard opset, then one per plugin domain the graph uses, at the
     * highest version of its ops there */
    int n_domains = 0;
    const char *domains[64];
    int64_t dversion[64];
    for (int n = 0; n < g->n_nodes; n++) {
        const prt_plugin_op *po = plugin_onnx(prt_op_get(e->ctx->ops, g->nodes[n].op));
        if (!po || !po->onnx_domain || !po->onnx_domain[0]) continue;
        int d = 0;
        while (d < n_domains && strcmp(domains[d], po->onnx_domain)) d++;
        if (d == n_domains) {
            if (n_domains == 64)
                return prt_error(e->ctx, PRT_ERR_UNSUPPORTED, "%s: ops from more than 64 ONNX domains", e->path);
            domains[n_domains] = po->onnx_domain;
            dversion[n_domains++] = 0;
        }
        if ((int64_t)po->version > dversion[d]) dversion[d] = (int64_t)po->version;
    }
    Onnx__OperatorSetIdProto *os = ex_alloc(e, (size_t)(1 + n_domains) * sizeof *os);
    Onnx__OperatorSetIdProto **osp = ex_alloc(e, (size_t)(1 + n_domains) * sizeof *osp);
    gp->input = ex_alloc(e, (size_t)(g->n_inputs ? g->n_inputs : 1) * sizeof *gp->input);
    gp->output = ex_alloc(e, (size_t)(g->n_outputs ? g->n_outputs : 1) * sizeof *gp->output);
    if (!os || !osp || !gp->input || !gp->output) return nomem(e);
    onnx__operator_set_id_proto__init(os);
    os->domain = ex_str(e, "");
    os->has_version = true;
    os->version = PRT_ONNX_EXPORT_OPSET;
    osp[0] = os;
    for (int d = 0; d < n_domains; d++) {
        onnx__operator_set_id_proto__init(&os[1 + d]);
        os[1 + d].domain = ex_str(e, domains[d]);
        if (!os[1 + d].domain) return nomem(e);
        os[1 + d].has_version = true;
        os[1 + d].version = dversion[d];
        osp[1 + d] = &os[1 + d];
    }
    mp->has_ir_version = true;
    mp->ir_version = 7; /* the IR of opset 13 */
    mp->n_opset_import = (size_t)(1 + n_domains);
    mp->opset_import = osp;
    mp->producer_name = ex_str(e, "parrots");
    gp->name = ex_str(e, g->name ? g->name : "parrots");
    if (!os->domain || !mp->producer_name || !gp->name) return nomem(e);
    mp->graph = gp;
    for (int k = 0; k < g->n_inputs; k++) {
        const prt_value *v = &g->values[g->inputs[k]];
        if (!(gp->input[k] = value_info(e, v->name, &v->shape, true))) return nomem(e);
    }
    gp->n_input = (size_t)g->n_inputs;
    for (int k = 0; k < g->n_outputs; k++) {
        int id = g->outputs[k];
        prt_shape s = prt_graph_value_shape(g, id), per = {.ndim = s.ndim - 1};
        for (int d = 1; d < s.ndim; d++) per.d[d - 1] = s.d[d];
        if (s.ndim < 1 || !(gp->output[k] = value_info(e, g->values[id].name, &per, true))) return nomem(e);
    }
    gp->n_output = (size_t)g->n_outputs;
    char a[160], b[160];
    PRT_CHECK(prt_vm_pull_state(e->vm)); /* any device: the state's host mirror */
    for (int id = 0; id < g->n_values; id++) {
        const prt_value *v = &g->values[id];
        if (v->kind != PRT_VAL_PARAM && v->kind != PRT_VAL_STATE) continue;
        const prt_tensor *t = prt_vm_state(e->vm, v->name);
        if (!t) return prt_error(e->ctx, PRT_ERR_INVALID, "%s: the program has no tensor '%s'", e->path, v->name);
        if (t->dtype != PRT_F32 || !prt_shape_eq(&t->shape, &v->shape))
            return prt_error(e->ctx, PRT_ERR_SHAPE, "%s: tensor '%s' is %s in the program but %s in the graph", e->path,
                             v->name, prt_shape_str(&t->shape, a, sizeof a), prt_shape_str(&v->shape, b, sizeof b));
        PRT_CHECK(init_f32(e, v->name, &v->shape, t->data));
    }
    for (int n = 0; n < g->n_nodes; n++) PRT_CHECK(export_node(e, n));
    return PRT_OK;
}

prt_status prt_onnx_export(prt_context *ctx, prt_graph *g, prt_vm *vm, const char *path) {
    ex e = {.ctx = ctx, .g = g, .vm = vm, .path = path};
    Onnx__ModelProto mp;
    Onnx__GraphProto gp;
    onnx__model_proto__init(&mp);
    onnx__graph_proto__init(&gp);
    e.gp = &gp;
    prt_status st = build(&e, &mp);
    uint8_t *buf = NULL;
    size_t n = 0;
    if (st == PRT_OK) {
        n = onnx__model_proto__get_packed_size(&mp);
        if (n >= PRT_ONNX_MAX_FILE)
            st = prt_error(ctx, PRT_ERR_LIMIT, "%s: the model would be %zu bytes; ONNX files must be under 2 GiB", path,
                           n);
        else if (!(buf = prt_malloc(ctx, n ? n : 1))) st = nomem(&e);
    }
    if (st == PRT_OK) {
        onnx__model_proto__pack(&mp, buf);
        st = prt_onnx_write_file(ctx, path, buf, n);
    }
    prt_free(ctx, buf, 0);
    prt_free(ctx, gp.node, 0);
    prt_free(ctx, gp.initializer, 0);
    for (int k = 0; k < e.n_blocks; k++) prt_free(ctx, e.blocks[k], 0);
    prt_free(ctx, e.blocks, 0);
    return st;
}

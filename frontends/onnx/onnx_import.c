/* ONNX import: a ModelProto to a Parrots graph and the values of its
 * initializers.
 *
 * Every ONNX value name maps to a graph value, a constant (an initializer or a
 * Constant node's tensor), or both. Constants feeding a conv, linear or batch
 * norm become that node's parameters ("<node>.<slot>", named after the node's
 * first output); float constants feeding an elementwise op become state values
 * under their own name; integer constants only ever feed attributes (Reshape's
 * shape, Pad's pads). The node mapping itself is in onnx_map.c. */
#include "frontends/onnx/onnx_map.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- value table ------------------------------------------------------------- */

prt_status prt_onnx_ent_put(prt_onnx_imp *I, const char *name, int id, int konst) {
    int idx;
    if (prt_strtab_get(I->names, name, &idx)) {
        I->ents[idx].id = id;
        I->ents[idx].konst = konst;
        return PRT_OK;
    }
    PRT_CHECK(prt_grow(I->ctx, (void **)&I->ents, &I->cap_ents, I->n_ents + 1, sizeof *I->ents));
    PRT_CHECK(prt_strtab_put(I->ctx, I->names, name, I->n_ents, NULL));
    I->ents[I->n_ents++] = (prt_onnx_ent){.id = id, .konst = konst};
    return PRT_OK;
}

const prt_onnx_ent *prt_onnx_ent_get(const prt_onnx_imp *I, const char *name) {
    int idx;
    if (!name || !prt_strtab_get(I->names, name, &idx)) return NULL;
    return &I->ents[idx];
}

const prt_onnx_const *prt_onnx_const_of(const prt_onnx_imp *I, const char *name) {
    const prt_onnx_ent *e = prt_onnx_ent_get(I, name);
    return e && e->konst >= 0 ? &I->consts[e->konst] : NULL;
}

prt_status prt_onnx_add_const(prt_onnx_imp *I, const char *name, prt_onnx_const *c) {
    prt_status st = prt_grow(I->ctx, (void **)&I->consts, &I->cap_consts, I->n_consts + 1, sizeof *I->consts);
    if (st != PRT_OK) {
        prt_onnx_const_free(I->ctx, c);
        return st;
    }
    I->consts[I->n_consts] = *c;
    return prt_onnx_ent_put(I, name, -1, I->n_consts++);
}

prt_status prt_onnx_add_weight(prt_onnx_imp *I, const char *name, const prt_shape *shape, const float *data) {
    prt_context *ctx = I->ctx;
    prt_onnx_model *m = I->m;
    PRT_CHECK(prt_grow(ctx, (void **)&m->t, &m->cap, m->n + 1, sizeof *m->t));
    PRT_CHECK(prt_grow(ctx, (void **)&m->names, &m->cap_names, m->n + 1, sizeof *m->names));
    char *copy = prt_strdup(ctx, name);
    if (!copy) return prt_error(ctx, PRT_ERR_NOMEM, "%s: out of memory", I->file);
    prt_tensor t;
    prt_status st = prt_tensor_alloc(ctx, prt_cpu_device(ctx), PRT_F32, shape, &t);
    if (st != PRT_OK) {
        prt_free(ctx, copy, 0);
        return prt_error_prefix(ctx, st, "%s: weight '%s'", I->file, name);
    }
    memcpy(t.data, data, (size_t)prt_shape_count(shape) * sizeof(float));
    m->names[m->n] = copy;
    m->t[m->n++] = t;
    return PRT_OK;
}

prt_status prt_onnx_value(prt_onnx_imp *I, const Onnx__NodeProto *nd, const char *name, int *id) {
    prt_onnx_ent *e = (prt_onnx_ent *)prt_onnx_ent_get(I, name);
    if (!e)
        return prt_error(I->ctx, PRT_ERR_SCHEMA, "%s: node '%s' (%s): input '%s' is not a graph input, an initializer or "
                                                 "the output of an earlier node",
                         I->file, prt_onnx_node_name(nd), nd->op_type, name ? name : "");
    if (e->id >= 0) {
        *id = e->id;
        return PRT_OK;
    }
    const prt_onnx_const *c = &I->consts[e->konst];
    if (!c->f)
        return prt_error(I->ctx, PRT_ERR_UNSUPPORTED, "%s: node '%s' (%s): input '%s' is a %s constant; Parrots "
                                                      "computes in float32",
                         I->file, prt_onnx_node_name(nd), nd->op_type, name, prt_onnx_dtype_name(c->dtype));
    int konst = e->konst;
    PRT_CHECK(prt_graph_add_persistent(I->g, name, PRT_VAL_STATE, &c->shape, PRT_F32, PRT_INIT_ZEROS, I->loc, id));
    PRT_CHECK(prt_onnx_add_weight(I, name, &c->shape, c->f));
    return prt_onnx_ent_put(I, name, *id, konst);
}

const char *prt_onnx_node_name(const Onnx__NodeProto *nd) {
    if (nd->name && *nd->name) return nd->name;
    for (size_t k = 0; k < nd->n_output; k++)
        if (nd->output[k] && *nd->output[k]) return nd->output[k];
    return "?";
}

/* ---- attributes --------------------------------------------------------------- */

const Onnx__AttributeProto *prt_onnx_attr(const Onnx__NodeProto *nd, const char *name) {
    for (size_t k = 0; k < nd->n_attribute; k++)
        if (nd->attribute[k]->name && !strcmp(nd->attribute[k]->name, name)) return nd->attribute[k];
    return NULL;
}

int64_t prt_onnx_attr_i(const Onnx__NodeProto *nd, const char *name, int64_t dflt) {
    const Onnx__AttributeProto *a = prt_onnx_attr(nd, name);
    return a && a->has_i ? a->i : dflt;
}

float prt_onnx_attr_f(const Onnx__NodeProto *nd, const char *name, float dflt) {
    const Onnx__AttributeProto *a = prt_onnx_attr(nd, name);
    return a && a->has_f ? a->f : dflt;
}

/* STRING attribute compared to s; absent: dflt compared. */
bool prt_onnx_attr_is(const Onnx__NodeProto *nd, const char *name, const char *dflt, const char *s) {
    const Onnx__AttributeProto *a = prt_onnx_attr(nd, name);
    if (!a || !a->has_s) return !strcmp(dflt, s);
    return a->s.len == strlen(s) && !memcmp(a->s.data, s, a->s.len);
}

int prt_onnx_attr_ints(const Onnx__NodeProto *nd, const char *name, const int64_t **out) {
    const Onnx__AttributeProto *a = prt_onnx_attr(nd, name);
    if (!a) return -1;
    *out = a->ints;
    return (int)(a->n_ints > 1000 ? 1000 : a->n_ints);
}

/* ---- model-level checks ------------------------------------------------------- */

static bool default_domain(const char *d) { return !d || !*d || !strcmp(d, "ai.onnx"); }

static prt_status check_versions(prt_onnx_imp *I, const Onnx__ModelProto *mp) {
    if (!mp->has_ir_version)
        return prt_error(I->ctx, PRT_ERR_PARSE, "%s: no ir_version (is this an ONNX model?)", I->file);
    if (mp->ir_version < 3 || mp->ir_version > 10)
        return prt_error(I->ctx, PRT_ERR_UNSUPPORTED, "%s: IR version %lld is not supported (Parrots reads 3 to 10)",
                         I->file, (long long)mp->ir_version);
    I->opset = -1;
    for (size_t k = 0; k < mp->n_opset_import; k++) {
        const Onnx__OperatorSetIdProto *o = mp->opset_import[k];
        if (default_domain(o->domain)) I->opset = o->has_version ? (int)(o->version > 1000 ? 1000 : o->version) : 1;
    }
    if (I->opset < 0)
        return prt_error(I->ctx, PRT_ERR_UNSUPPORTED, "%s: no opset_import for the default ONNX domain", I->file);
    if (I->opset < PRT_ONNX_OPSET_MIN || I->opset > PRT_ONNX_OPSET_MAX)
        return prt_error(I->ctx, PRT_ERR_UNSUPPORTED,
                         "%s: opset %d of the default ONNX domain is not supported (Parrots maps opsets %d to %d)",
                         I->file, I->opset, PRT_ONNX_OPSET_MIN, PRT_ONNX_OPSET_MAX);
    if (!mp->graph) return prt_error(I->ctx, PRT_ERR_PARSE, "%s: the model has no graph", I->file);
    return PRT_OK;
}

static prt_status load_constants(prt_onnx_imp *I, const Onnx__GraphProto *gp) {
    if (gp->n_sparse_initializer)
        return prt_error(I->ctx, PRT_ERR_UNSUPPORTED, "%s: sparse initializers are not supported", I->file);
    for (size_t k = 0; k < gp->n_initializer; k++) {
        const Onnx__TensorProto *t = gp->initializer[k];
        if (!t->name || !*t->name) return prt_error(I->ctx, PRT_ERR_PARSE, "%s: initializer %zu has no name", I->file, k);
        if (prt_onnx_ent_get(I, t->name))
            return prt_error(I->ctx, PRT_ERR_SCHEMA, "%s: initializer '%s' is defined twice", I->file, t->name);
        char what[300];
        snprintf(what, sizeof what, "initializer '%.200s'", t->name);
        prt_onnx_const c;
        PRT_CHECK(prt_onnx_decode(I->ctx, I->file, I->dir, what, t, &c));
        PRT_CHECK(prt_onnx_add_const(I, t->name, &c));
    }
    return PRT_OK;
}

static prt_status load_inputs(prt_onnx_imp *I, const Onnx__GraphProto *gp) {
    int n_real = 0;
    for (size_t k = 0; k < gp->n_input; k++) {
        const Onnx__ValueInfoProto *vi = gp->input[k];
        const char *name = vi->name ? vi->name : "";
        const prt_onnx_ent *e = prt_onnx_ent_get(I, name);
        if (e && e->konst >= 0) continue; /* an initializer: a parameter, not fed */
        if (e) return prt_error(I->ctx, PRT_ERR_SCHEMA, "%s: input '%s' is declared twice", I->file, name);
        const Onnx__TypeProto *tp = vi->type;
        if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
            return prt_error(I->ctx, PRT_ERR_UNSUPPORTED, "%s: input '%s' is not a tensor", I->file, name);
        const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
        if (tt->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
            return prt_error(I->ctx, PRT_ERR_UNSUPPORTED, "%s: input '%s' has dtype %s; Parrots supports float32",
                             I->file, name, prt_onnx_dtype_name(tt->elem_type));
        if (!tt->shape) return prt_error(I->ctx, PRT_ERR_UNSUPPORTED, "%s: input '%s' has no shape", I->file, name);
        int rank = (int)tt->shape->n_dim;
        if (rank < 2)
            return prt_error(I->ctx, PRT_ERR_UNSUPPORTED,
                             "%s: input '%s' has rank %d; Parrots inputs need a batch dimension and rank >= 2", I->file,
                             name, rank);
        if (rank > PRT_MAX_DIMS)
            return prt_error(I->ctx, PRT_ERR_UNSUPPORTED, "%s: input '%s' has rank %d, more than %d", I->file, name,
                             rank, PRT_MAX_DIMS);
        prt_shape s = {.ndim = rank - 1};
        int64_t batch = 1;
        for (int d = 0; d < rank; d++) {
            const Onnx__TensorShapeProto__Dimension *dim = tt->shape->dim[d];
            bool fixed = dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            if (d == 0) {
                batch = fixed ? dim->dim_value : 1;
                continue;
            }
            if (!fixed)
                return prt_error(I->ctx, PRT_ERR_UNSUPPORTED,
                                 "%s: input '%s': dimension %d is symbolic ('%s'); only the batch may be", I->file, name,
                                 d, dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM && dim->dim_param
                                     ? dim->dim_param
                                     : "");
            if (dim->dim_value < 1)
                return prt_error(I->ctx, PRT_ERR_INVALID, "%s: input '%s': dimension %d is %lld", I->file, name, d,
                                 (long long)dim->dim_value);
            s.d[d - 1] = dim->dim_value;
        }
        if (batch < 1 || batch > (1 << 24))
            return prt_error(I->ctx, PRT_ERR_UNSUPPORTED, "%s: input '%s': batch %lld is out of range (1 to 16777216)",
                             I->file, name, (long long)batch);
        if (n_real > 0 && batch != I->batch)
            return prt_error(I->ctx, PRT_ERR_UNSUPPORTED,
                             "%s: input '%s' has first dimension %lld but an earlier input %lld; Parrots inputs share "
                             "one batch",
                             I->file, name, (long long)batch, (long long)I->batch);
        I->batch = batch;
        int64_t numel;
        PRT_CHECK(prt_shape_numel(I->ctx, &s, &numel));
        int id;
        PRT_CHECK(prt_graph_add_input(I->g, name, &s, PRT_F32, I->loc, &id));
        PRT_CHECK(prt_onnx_ent_put(I, name, id, -1));
        n_real++;
    }
    if (n_real == 0) return prt_error(I->ctx, PRT_ERR_UNSUPPORTED, "%s: the graph has no inputs to feed", I->file);
    return PRT_OK;
}

/* Every node whose op has no mapping, grouped by op type, in one message. */
static prt_status check_ops(prt_onnx_imp *I, const Onnx__GraphProto *gp) {
    prt_context *ctx = I->ctx;
    size_t cap = 4096, len = 0;
    char *msg = NULL;
    bool *done = prt_calloc(ctx, gp->n_node + 1, sizeof *done);
    if (!done) return prt_error(ctx, PRT_ERR_NOMEM, "%s: out of memory", I->file);
    prt_status st = PRT_OK;
    for (size_t k = 0; k < gp->n_node; k++) {
        const Onnx__NodeProto *nd = gp->node[k];
        if (done[k] || prt_onnx_supported(I, nd)) continue;
        if (!msg && !(msg = prt_malloc(ctx, cap))) {
            st = prt_error(ctx, PRT_ERR_NOMEM, "%s: out of memory", I->file);
            goto out;
        }
        /* every node of the same type (and domain) */
        int count = 0;
        for (size_t j = k; j < gp->n_node; j++) {
            const Onnx__NodeProto *o = gp->node[j];
            if (strcmp(o->op_type ? o->op_type : "", nd->op_type ? nd->op_type : "") ||
                strcmp(o->domain ? o->domain : "", nd->domain ? nd->domain : ""))
                continue;
            done[j] = true;
            count++;
        }
        char head[300];
        if (default_domain(nd->domain))
            snprintf(head, sizeof head, "%s%.100s (node%s ", len ? ", " : "", nd->op_type ? nd->op_type : "",
                     count > 1 ? "s" : "");
        else
            snprintf(head, sizeof head, "%s%.100s of domain '%.100s' (node%s ", len ? ", " : "",
                     nd->op_type ? nd->op_type : "", nd->domain, count > 1 ? "s" : "");
        int listed = 0;
        for (size_t j = k; j < gp->n_node && len + 400 < cap; j++) {
            if (!done[j]) continue;
            const Onnx__NodeProto *o = gp->node[j];
            if (strcmp(o->op_type ? o->op_type : "", nd->op_type ? nd->op_type : "") ||
                strcmp(o->domain ? o->domain : "", nd->domain ? nd->domain : ""))
                continue;
            if (listed == 0) len += (size_t)snprintf(msg + len, cap - len, "%s", head);
            if (listed == 8) {
                len += (size_t)snprintf(msg + len, cap - len, ", and %d more", count - 8);
                break;
            }
            len += (size_t)snprintf(msg + len, cap - len, "%s'%.100s'", listed ? ", " : "", prt_onnx_node_name(o));
            listed++;
        }
        if (len + 2 < cap) len += (size_t)snprintf(msg + len, cap - len, ")");
    }
    if (msg) st = prt_error(ctx, PRT_ERR_UNSUPPORTED, "%s: unsupported ops: %s", I->file, msg);
out:
    prt_free(ctx, msg, 0);
    prt_free(ctx, done, 0);
    return st;
}

static prt_status set_outputs(prt_onnx_imp *I, const Onnx__GraphProto *gp) {
    if (gp->n_output == 0) return prt_error(I->ctx, PRT_ERR_SCHEMA, "%s: the graph has no outputs", I->file);
    int *ids = prt_calloc(I->ctx, gp->n_output, sizeof *ids);
    if (!ids) return prt_error(I->ctx, PRT_ERR_NOMEM, "%s: out of memory", I->file);
    prt_status st = PRT_OK;
    for (size_t k = 0; k < gp->n_output && st == PRT_OK; k++) {
        const char *name = gp->output[k]->name ? gp->output[k]->name : "";
        const prt_onnx_ent *e = prt_onnx_ent_get(I, name);
        if (!e) st = prt_error(I->ctx, PRT_ERR_SCHEMA, "%s: output '%s' is not produced by any node", I->file, name);
        else if (e->id < 0)
            st = prt_error(I->ctx, PRT_ERR_UNSUPPORTED, "%s: output '%s' is a constant", I->file, name);
        else if (I->g->values[e->id].kind == PRT_VAL_INPUT)
            st = prt_onnx_copy_value(I, name, e->id, &ids[k]);
        else if (I->g->values[e->id].kind != PRT_VAL_ACT)
            st = prt_error(I->ctx, PRT_ERR_UNSUPPORTED, "%s: output '%s' is not computed by any node", I->file, name);
        else ids[k] = e->id;
    }
    if (st == PRT_OK) st = prt_graph_set_outputs(I->g, ids, (int)gp->n_output);
    prt_free(I->ctx, ids, 0);
    return st;
}

/* After binding: every weight names a parameter or state value of its shape. */
static prt_status check_weights(prt_onnx_imp *I) {
    char a[160], b[160];
    for (int k = 0; k < I->m->n; k++) {
        int id = prt_graph_find_value(I->g, I->m->names[k]);
        if (id < 0 || (I->g->values[id].kind != PRT_VAL_PARAM && I->g->values[id].kind != PRT_VAL_STATE))
            return prt_error(I->ctx, PRT_ERR_INTERNAL, "%s: weight '%s' has no parameter in the graph", I->file,
                             I->m->names[k]);
        if (!prt_shape_eq(&I->g->values[id].shape, &I->m->t[k].shape))
            return prt_error(I->ctx, PRT_ERR_SHAPE, "%s: '%s' has shape %s in the model but the layer needs %s", I->file,
                             I->m->names[k], prt_shape_str(&I->m->t[k].shape, a, sizeof a),
                             prt_shape_str(&I->g->values[id].shape, b, sizeof b));
    }
    return PRT_OK;
}

static char *dir_of(prt_context *ctx, const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return prt_strdup(ctx, ".");
    if (slash == path) return prt_strdup(ctx, "/");
    size_t n = (size_t)(slash - path);
    char *d = prt_malloc(ctx, n + 1);
    if (d) {
        memcpy(d, path, n);
        d[n] = '\0';
    }
    return d;
}

static const char *base_of(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

prt_status prt_onnx_import_proto(prt_context *ctx, const char *path, const Onnx__ModelProto *mp, prt_onnx_model **out) {
    *out = NULL;
    prt_onnx_imp I = {.ctx = ctx, .file = path, .batch = 1};
    prt_status st = PRT_OK;
    I.m = prt_calloc(ctx, 1, sizeof *I.m);
    I.dir = dir_of(ctx, path);
    if (!I.m || !I.dir) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    PRT_CHECK_GOTO(prt_strtab_create(ctx, &I.names), st, done);
    PRT_CHECK_GOTO(check_versions(&I, mp), st, done);
    const Onnx__GraphProto *gp = mp->graph;
    char gname[256];
    snprintf(gname, sizeof gname, "%s", gp->name && *gp->name ? gp->name : base_of(path));
    PRT_CHECK_GOTO(prt_graph_new(ctx, gname, &I.g), st, done);
    I.m->g = I.g;
    I.loc = (prt_loc){.file = prt_graph_intern(I.g, path)};
    if (!I.loc.file) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    PRT_CHECK_GOTO(check_ops(&I, gp), st, done);
    PRT_CHECK_GOTO(load_constants(&I, gp), st, done);
    PRT_CHECK_GOTO(load_inputs(&I, gp), st, done);
    I.g->batch = I.batch; /* shapes while mapping are those of the model's batch */
    for (size_t k = 0; k < gp->n_node; k++) PRT_CHECK_GOTO(prt_onnx_map_node(&I, gp->node[k]), st, done);
    PRT_CHECK_GOTO(set_outputs(&I, gp), st, done);
    I.g->batch = 0;
    st = prt_graph_bind_params(I.g);
    if (st != PRT_OK) {
        /* a layer that holds at the model's batch but not at batch 1 */
        prt_error_prefix(ctx, PRT_ERR_UNSUPPORTED, "%s: the graph does not hold at batch 1", path);
        st = PRT_ERR_UNSUPPORTED;
        goto done;
    }
    PRT_CHECK_GOTO(check_weights(&I), st, done);
    I.m->batch = I.batch;
    I.m->opset = I.opset;
    *out = I.m;
    I.m = NULL;
done:
    for (int k = 0; k < I.n_consts; k++) prt_onnx_const_free(ctx, &I.consts[k]);
    prt_free(ctx, I.consts, 0);
    prt_free(ctx, I.ents, 0);
    prt_strtab_destroy(ctx, I.names);
    prt_free(ctx, I.dir, 0);
    prt_onnx_model_destroy(ctx, I.m);
    return st;
}

prt_status prt_onnx_read_model(prt_context *ctx, const char *path, Onnx__ModelProto **out) {
    *out = NULL;
    unsigned char *buf;
    size_t n;
    PRT_CHECK(prt_onnx_read_file(ctx, path, "ONNX model", PRT_ONNX_MAX_FILE, &buf, &n));
    ProtobufCAllocator a;
    prt_pb_allocator(ctx, &a);
    Onnx__ModelProto *mp = onnx__model_proto__unpack(&a, n, buf);
    prt_free(ctx, buf, 0);
    if (!mp)
        return prt_error(ctx, PRT_ERR_PARSE, "%s: not a valid ONNX model (protobuf-c could not unpack a ModelProto)",
                         path);
    *out = mp;
    return PRT_OK;
}

void prt_onnx_free_model(prt_context *ctx, Onnx__ModelProto *mp) {
    if (!mp) return;
    ProtobufCAllocator a;
    prt_pb_allocator(ctx, &a);
    onnx__model_proto__free_unpacked(mp, &a);
}

prt_status prt_onnx_import(prt_context *ctx, const char *path, prt_onnx_model **out) {
    *out = NULL;
    Onnx__ModelProto *mp;
    PRT_CHECK(prt_onnx_read_model(ctx, path, &mp));
    prt_status st = prt_onnx_import_proto(ctx, path, mp, out);
    prt_onnx_free_model(ctx, mp);
    return st;
}

void prt_onnx_model_destroy(prt_context *ctx, prt_onnx_model *m) {
    if (!m) return;
    for (int k = 0; k < m->n; k++) {
        prt_free(ctx, m->names[k], 0);
        prt_tensor_release(ctx, &m->t[k]);
    }
    prt_free(ctx, m->names, 0);
    prt_free(ctx, m->t, 0);
    prt_graph_destroy(m->g);
    prt_free(ctx, m, 0);
}

prt_status prt_onnx_load(prt_context *ctx, const char *path, prt_graph **out) {
    *out = NULL;
    prt_onnx_model *m;
    PRT_CHECK(prt_onnx_import(ctx, path, &m));
    *out = m->g;
    m->g = NULL;
    prt_onnx_model_destroy(ctx, m);
    return PRT_OK;
}

prt_status prt_onnx_apply(prt_context *ctx, const prt_onnx_model *m, prt_vm *vm) {
    char a[160], b[160];
    for (int k = 0; k < m->n; k++) {
        const prt_tensor *dst = prt_vm_state(vm, m->names[k]);
        if (!dst) return prt_error(ctx, PRT_ERR_INTERNAL, "the program has no tensor '%s'", m->names[k]);
        if (dst->dtype != PRT_F32 || !prt_shape_eq(&dst->shape, &m->t[k].shape))
            return prt_error(ctx, PRT_ERR_SHAPE, "tensor '%s' is %s in the model but %s in the program", m->names[k],
                             prt_shape_str(&m->t[k].shape, a, sizeof a), prt_shape_str(&dst->shape, b, sizeof b));
    }
    /* any device: through the state's host mirror (pulled first: push sends all of it) */
    PRT_CHECK(prt_vm_pull_state(vm));
    for (int k = 0; k < m->n; k++) {
        prt_tensor *dst = prt_vm_state(vm, m->names[k]);
        memcpy(dst->data, m->t[k].data, (size_t)prt_shape_count(&dst->shape) * sizeof(float));
    }
    return prt_vm_push_state(vm);
}

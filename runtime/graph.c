/* The graph IR: building, parameter binding (with sharing by name), shape
 * inference for a batch size, and statistics. */
#include "runtime/graph_impl.h"

#include <string.h>

/* Hostile files must not grow a graph without bound (docs/yaml-format.md, Limits). */
#define PRT_MAX_GRAPH_NODES 1000000

prt_status prt_graph_new(prt_context *ctx, const char *name, prt_graph **out) {
    *out = NULL;
    prt_graph *g = prt_calloc(ctx, 1, sizeof *g);
    if (!g) return prt_error(ctx, PRT_ERR_NOMEM, "out of memory");
    g->ctx = ctx;
    g->name = prt_strdup(ctx, name ? name : "net");
    prt_status st = g->name ? PRT_OK : prt_error(ctx, PRT_ERR_NOMEM, "out of memory");
    if (st == PRT_OK) st = prt_strtab_create(ctx, &g->names);
    if (st == PRT_OK) st = prt_strtab_create(ctx, &g->strings);
    if (st != PRT_OK) {
        prt_graph_destroy(g);
        return st;
    }
    *out = g;
    return PRT_OK;
}

static void node_free(prt_context *ctx, prt_node *n) {
    prt_free(ctx, n->name, 0);
    prt_free(ctx, n->param_path, 0);
    prt_free(ctx, n->in, 0);
    prt_free(ctx, n->out, 0);
    prt_free(ctx, n->attrs, 0);
}

void prt_graph_destroy(prt_graph *g) {
    if (!g) return;
    prt_context *ctx = g->ctx;
    for (int i = 0; i < g->n_values; i++) prt_free(ctx, g->values[i].name, 0);
    for (int i = 0; i < g->n_nodes; i++) node_free(ctx, &g->nodes[i]);
    prt_free(ctx, g->values, 0);
    prt_free(ctx, g->nodes, 0);
    prt_free(ctx, g->inputs, 0);
    prt_free(ctx, g->outputs, 0);
    prt_strtab_destroy(ctx, g->names);
    prt_strtab_destroy(ctx, g->strings);
    prt_free(ctx, g->wide_in, 0);
    prt_free(ctx, g->solver, 0);
    prt_free(ctx, g->name, 0);
    prt_free(ctx, g, sizeof *g);
}

const char *prt_graph_intern(prt_graph *g, const char *s) {
    const char *k = prt_strtab_key(g->strings, s);
    if (k) return k;
    if (prt_strtab_put(g->ctx, g->strings, s, 0, NULL) != PRT_OK) return NULL;
    return prt_strtab_key(g->strings, s);
}

int prt_graph_find_value(const prt_graph *g, const char *name) {
    int id;
    return prt_strtab_get(g->names, name, &id) ? id : -1;
}

static prt_status new_value(prt_graph *g, const char *name, prt_value_kind kind, prt_loc loc, int *id) {
    prt_context *ctx = g->ctx;
    int existing;
    PRT_CHECK(prt_grow(ctx, (void **)&g->values, &g->cap_values, g->n_values + 1, sizeof *g->values));
    prt_status st = prt_strtab_put(ctx, g->names, name, g->n_values, &existing);
    if (st == PRT_ERR_INVALID) {
        prt_loc w = g->values[existing].loc;
        if (w.line > 0)
            return prt_error(ctx, PRT_ERR_SCHEMA, "tensor name '%s' is already used (at %s:%d:%d)", name,
                             w.file, w.line, w.col);
        return prt_error(ctx, PRT_ERR_SCHEMA, "tensor name '%s' is already used", name);
    }
    PRT_CHECK(st);
    prt_value *v = &g->values[g->n_values];
    memset(v, 0, sizeof *v);
    v->name = prt_strdup(ctx, name);
    if (!v->name) return prt_error(ctx, PRT_ERR_NOMEM, "out of memory");
    v->kind = kind;
    v->dtype = PRT_F32;
    v->producer = -1;
    v->loc = loc;
    *id = g->n_values++;
    return PRT_OK;
}

prt_status prt_graph_add_input(prt_graph *g, const char *name, const prt_shape *per_sample, prt_dtype t,
                               prt_loc loc, int *id) {
    if (per_sample->ndim < 1 || per_sample->ndim >= PRT_MAX_DIMS)
        return prt_error(g->ctx, PRT_ERR_SHAPE, "input '%s' must have 1 to %d dimensions, not %d", name,
                         PRT_MAX_DIMS - 1, per_sample->ndim);
    int64_t numel;
    PRT_CHECK(prt_shape_numel(g->ctx, per_sample, &numel));
    for (int i = 0; i < per_sample->ndim; i++)
        if (per_sample->d[i] < 1)
            return prt_error(g->ctx, PRT_ERR_SHAPE, "input '%s': dimension %d is %lld, expected >= 1", name, i,
                             (long long)per_sample->d[i]);
    PRT_CHECK(prt_grow(g->ctx, (void **)&g->inputs, &(int){g->n_inputs}, g->n_inputs + 1, sizeof(int)));
    PRT_CHECK(new_value(g, name, PRT_VAL_INPUT, loc, id));
    g->values[*id].shape = *per_sample;
    g->values[*id].dtype = t;
    g->inputs[g->n_inputs++] = *id;
    return PRT_OK;
}

prt_status prt_graph_add_node(prt_graph *g, int op, const char *name, const char *param_path,
                              const int *inputs, int n_inputs, const prt_attr *attrs, prt_loc loc,
                              int *node_id) {
    prt_context *ctx = g->ctx;
    const prt_op_schema *s = prt_op_get(ctx->ops, op);
    if (!s) return prt_error(ctx, PRT_ERR_INTERNAL, "op id %d is not registered", op);
    if (g->n_nodes >= PRT_MAX_GRAPH_NODES)
        return prt_error(ctx, PRT_ERR_LIMIT, "the graph has more than %d nodes", PRT_MAX_GRAPH_NODES);
    if (n_inputs < s->min_in || n_inputs > s->max_in) {
        if (s->min_in == s->max_in)
            return prt_error(ctx, PRT_ERR_SCHEMA, "layer '%s' (%s) takes %d input%s, got %d", name, s->name,
                             s->min_in, s->min_in == 1 ? "" : "s", n_inputs);
        return prt_error(ctx, PRT_ERR_SCHEMA, "layer '%s' (%s) takes %d to %d inputs, got %d", name, s->name,
                         s->min_in, s->max_in, n_inputs);
    }
    for (int i = 0; i < n_inputs; i++)
        if (inputs[i] < 0 || inputs[i] >= g->n_values)
            return prt_error(ctx, PRT_ERR_INTERNAL, "layer '%s': input value %d does not exist", name, inputs[i]);
    if (n_inputs > PRT_VARIADIC)
        PRT_CHECK(prt_grow(ctx, (void **)&g->wide_in, &g->cap_wide_in, n_inputs, sizeof *g->wide_in));
    PRT_CHECK(prt_grow(ctx, (void **)&g->nodes, &g->cap_nodes, g->n_nodes + 1, sizeof *g->nodes));
    prt_node *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->loc = loc;
    n->recompute_of = -1;
    n->bucket = -1;
    n->n_data_in = n->n_in = n_inputs;
    n->name = prt_strdup(ctx, name);
    n->param_path = prt_strdup(ctx, param_path ? param_path : name);
    n->in = prt_calloc(ctx, (size_t)n_inputs + PRT_MAX_OP_PARAMS, sizeof(int));
    n->out = prt_calloc(ctx, (size_t)s->n_out, sizeof(int));
    n->attrs = prt_calloc(ctx, s->n_attrs ? (size_t)s->n_attrs : 1, sizeof(prt_attr));
    int id = g->n_nodes++; /* counted now so destroy frees a half-built node */
    if (!n->name || !n->param_path || !n->in || !n->out || !n->attrs)
        return prt_error(ctx, PRT_ERR_NOMEM, "out of memory");
    memcpy(n->in, inputs, (size_t)n_inputs * sizeof(int));
    if (s->n_attrs) memcpy(n->attrs, attrs, (size_t)s->n_attrs * sizeof(prt_attr));
    for (int k = 0; k < s->n_out; k++) {
        char oname[1024];
        if (s->n_out == 1)
            snprintf(oname, sizeof oname, "%s", name);
        else
            snprintf(oname, sizeof oname, "%s:%d", name, k);
        int v;
        PRT_CHECK(new_value(g, oname, PRT_VAL_ACT, loc, &v));
        n = &g->nodes[id];
        g->values[v].producer = id;
        n->out[k] = v;
        n->n_out = k + 1;
    }
    if (node_id) *node_id = id;
    return PRT_OK;
}

prt_status prt_graph_add_persistent(prt_graph *g, const char *name, prt_value_kind kind, const prt_shape *shape,
                                    prt_dtype t, prt_init_kind init, prt_loc loc, int *id) {
    if (kind != PRT_VAL_PARAM && kind != PRT_VAL_STATE)
        return prt_error(g->ctx, PRT_ERR_INTERNAL, "'%s': only parameters and state are persistent", name);
    int64_t numel;
    PRT_CHECK(prt_shape_numel(g->ctx, shape, &numel));
    PRT_CHECK(new_value(g, name, kind, loc, id));
    g->values[*id].shape = *shape;
    g->values[*id].dtype = t;
    g->values[*id].init = init;
    return PRT_OK;
}

prt_status prt_graph_set_outputs(prt_graph *g, const int *ids, int n) {
    int *o = prt_calloc(g->ctx, n > 0 ? (size_t)n : 1, sizeof(int));
    if (!o) return prt_error(g->ctx, PRT_ERR_NOMEM, "out of memory");
    memcpy(o, ids, (size_t)n * sizeof(int));
    prt_free(g->ctx, g->outputs, 0);
    g->outputs = o;
    g->n_outputs = n;
    return PRT_OK;
}

prt_shape prt_graph_value_shape(const prt_graph *g, int id) {
    const prt_value *v = &g->values[id];
    if (v->kind != PRT_VAL_INPUT) return v->shape;
    prt_shape s = {.ndim = v->shape.ndim + 1};
    s.d[0] = g->batch ? g->batch : 1;
    for (int i = 0; i < v->shape.ndim; i++) s.d[i + 1] = v->shape.d[i];
    return s;
}

void prt_graph_infer_ctx(prt_graph *g, int n, prt_infer_scratch *sc, prt_infer_ctx *ic) {
    const prt_node *nd = &g->nodes[n];
    const prt_op_schema *s = prt_op_get(g->ctx->ops, nd->op);
    memset(ic, 0, sizeof *ic);
    ic->ctx = g->ctx;
    ic->node_name = nd->name;
    ic->op_name = s->name;
    ic->schema = s;
    ic->loc = nd->loc;
    ic->attrs = nd->attrs;
    ic->n_in = nd->n_data_in;
    prt_shape *in = nd->n_data_in > PRT_VARIADIC ? g->wide_in : sc->in;
    for (int i = 0; i < nd->n_data_in; i++) in[i] = prt_graph_value_shape(g, nd->in[i]);
    ic->in = in;
    ic->in_dtype = nd->n_data_in ? g->values[nd->in[0]].dtype : PRT_F32;
    ic->out_dtype = ic->in_dtype;
    ic->n_out = s->n_out;
    for (int k = 0; k < nd->n_out; k++) sc->out[k] = g->values[nd->out[k]].shape;
    ic->out = sc->out;
    ic->n_params = s->n_params;
    for (int p = 0, k = nd->n_data_in; p < s->n_params; p++) {
        sc->present[p] = (nd->param_mask >> p) & 1u;
        sc->params[p].ndim = 0;
        if (sc->present[p] && k < nd->n_in) sc->params[p] = g->values[nd->in[k++]].shape;
    }
    ic->params = sc->params;
    ic->param_present = sc->present;
}

/* Runs the op's shape function on node n and stores the output shapes. */
static prt_status infer_node(prt_graph *g, int n, prt_infer_scratch *sc, prt_infer_ctx *ic) {
    const prt_op_schema *s = prt_op_get(g->ctx->ops, g->nodes[n].op);
    prt_graph_infer_ctx(g, n, sc, ic);
    for (int k = 0; k < s->n_out; k++) sc->out[k].ndim = -1;
    PRT_CHECK(s->infer(ic));
    for (int k = 0; k < s->n_out; k++) {
        int64_t numel;
        prt_status st = prt_shape_numel(g->ctx, &sc->out[k], &numel);
        if (st != PRT_OK) {
            const prt_node *nd = &g->nodes[n];
            if (nd->loc.line > 0)
                return prt_error_prefix(g->ctx, st, "%s:%d:%d: layer '%s' (%s)", nd->loc.file, nd->loc.line,
                                        nd->loc.col, nd->name, s->name);
            return prt_error_prefix(g->ctx, st, "layer '%s' (%s)", nd->name, s->name);
        }
        g->values[g->nodes[n].out[k]].shape = sc->out[k];
        g->values[g->nodes[n].out[k]].dtype = prt_infer_out_dtype(ic, k);
    }
    return PRT_OK;
}

static prt_status bind_node_params(prt_graph *g, int n, const prt_infer_scratch *sc) {
    prt_context *ctx = g->ctx;
    const prt_op_schema *s = prt_op_get(ctx->ops, g->nodes[n].op);
    for (int p = 0; p < s->n_params; p++) {
        if (!sc->present[p]) continue;
        prt_node *nd = &g->nodes[n];
        char pname[1024];
        snprintf(pname, sizeof pname, "%s.%s", nd->param_path, s->params[p].name);
        prt_value_kind kind = s->params[p].trainable ? PRT_VAL_PARAM : PRT_VAL_STATE;
        int id = prt_graph_find_value(g, pname);
        if (id >= 0) {
            const prt_value *v = &g->values[id];
            char a[160], b[160];
            if (v->kind != kind || !prt_shape_eq(&v->shape, &sc->params[p])) {
                prt_shape_str(&sc->params[p], a, sizeof a);
                prt_shape_str(&v->shape, b, sizeof b);
                return prt_error(ctx, PRT_ERR_SHAPE,
                                 "%s:%d:%d: layer '%s' (%s): shared parameter '%s' has shape %s here but %s "
                                 "where it was first used (%s:%d:%d)",
                                 nd->loc.file ? nd->loc.file : "?", nd->loc.line, nd->loc.col, nd->name,
                                 s->name, pname, a, b, v->loc.file ? v->loc.file : "?", v->loc.line, v->loc.col);
            }
        } else {
            PRT_CHECK(new_value(g, pname, kind, nd->loc, &id));
            g->values[id].shape = sc->params[p];
            g->values[id].init = s->params[p].init;
            nd = &g->nodes[n];
        }
        nd = &g->nodes[n];
        nd->in[nd->n_in++] = id;
        nd->param_mask |= 1u << p;
    }
    return PRT_OK;
}

prt_status prt_graph_bind_params(prt_graph *g) {
    if (g->params_bound) return PRT_OK;
    prt_infer_scratch sc;
    prt_infer_ctx ic;
    g->batch = 1;
    for (int n = 0; n < g->n_nodes; n++) {
        PRT_CHECK(infer_node(g, n, &sc, &ic));
        PRT_CHECK(bind_node_params(g, n, &sc));
    }
    g->params_bound = true;
    return PRT_OK;
}

prt_status prt_graph_infer_node(prt_graph *g, int n) {
    prt_infer_scratch sc;
    prt_infer_ctx ic;
    return infer_node(g, n, &sc, &ic);
}

prt_status prt_graph_infer(prt_graph *g, int64_t batch) {
    if (!g->params_bound) PRT_CHECK(prt_graph_bind_params(g));
    if (batch < 1 || batch > (1 << 24))
        return prt_error(g->ctx, PRT_ERR_INVALID, "batch size %lld is out of range (1 to 16777216)",
                         (long long)batch);
    if (g->batch == batch) return PRT_OK;
    g->batch = batch;
    prt_infer_scratch sc;
    prt_infer_ctx ic;
    for (int n = 0; n < g->n_nodes; n++) PRT_CHECK(infer_node(g, n, &sc, &ic));
    return PRT_OK;
}

prt_status prt_graph_stats_get(prt_graph *g, prt_graph_stats *out) {
    memset(out, 0, sizeof *out);
    if (!g->params_bound) PRT_CHECK(prt_graph_bind_params(g));
    out->n_nodes = g->n_nodes;
    for (int i = 0; i < g->n_values; i++) {
        const prt_value *v = &g->values[i];
        if (v->kind == PRT_VAL_PARAM) {
            out->params += prt_shape_count(&v->shape);
            out->n_param_tensors++;
        } else if (v->kind == PRT_VAL_STATE) {
            out->state += prt_shape_count(&v->shape);
        }
    }
    prt_infer_scratch sc;
    prt_infer_ctx ic;
    for (int n = 0; n < g->n_nodes; n++) {
        const prt_op_schema *s = prt_op_get(g->ctx->ops, g->nodes[n].op);
        if (!s->flops) continue;
        prt_graph_infer_ctx(g, n, &sc, &ic);
        out->flops += s->flops(&ic);
    }
    return PRT_OK;
}

prt_status prt_graph_compact(prt_graph *g, const bool *dead_node, const bool *dead_value, int *vmap_out) {
    prt_context *ctx = g->ctx;
    int nv = 0, nn = 0;
    int *vmap = prt_calloc(ctx, (size_t)g->n_values + 1, sizeof *vmap);
    int *nmap = prt_calloc(ctx, (size_t)g->n_nodes + 1, sizeof *nmap);
    prt_strtab *names = NULL;
    prt_status st = PRT_OK;
    if (!vmap || !nmap) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "graph '%s': out of memory", g->name);
        goto done;
    }
    for (int v = 0; v < g->n_values; v++) vmap[v] = dead_value[v] ? -1 : nv++;
    for (int n = 0; n < g->n_nodes; n++) nmap[n] = dead_node[n] ? -1 : nn++;
    /* the new name table first: if it fails, the graph is still whole */
    PRT_CHECK_GOTO(prt_strtab_create(ctx, &names), st, done);
    for (int v = 0; v < g->n_values; v++)
        if (vmap[v] >= 0) PRT_CHECK_GOTO(prt_strtab_put(ctx, names, g->values[v].name, vmap[v], NULL), st, done);
    for (int v = 0; v < g->n_values; v++) {
        prt_value *val = &g->values[v];
        if (vmap[v] < 0) {
            prt_free(ctx, val->name, 0);
            continue;
        }
        if (val->producer >= 0) val->producer = nmap[val->producer];
        g->values[vmap[v]] = *val;
    }
    for (int n = 0; n < g->n_nodes; n++) {
        prt_node *nd = &g->nodes[n];
        if (nmap[n] < 0) {
            node_free(ctx, nd);
            continue;
        }
        for (int j = 0; j < nd->n_in; j++) nd->in[j] = vmap[nd->in[j]];
        for (int k = 0; k < nd->n_out; k++) nd->out[k] = vmap[nd->out[k]];
        if (nd->recompute_of >= 0) nd->recompute_of = nmap[nd->recompute_of];
        g->nodes[nmap[n]] = *nd;
    }
    for (int i = 0; i < g->n_inputs; i++) g->inputs[i] = vmap[g->inputs[i]];
    for (int i = 0; i < g->n_outputs; i++) g->outputs[i] = vmap[g->outputs[i]];
    if (vmap_out) memcpy(vmap_out, vmap, (size_t)g->n_values * sizeof *vmap);
    g->n_values = nv;
    g->n_nodes = nn;
    prt_strtab_destroy(ctx, g->names);
    g->names = names;
    names = NULL;
done:
    prt_strtab_destroy(ctx, names);
    prt_free(ctx, vmap, 0);
    prt_free(ctx, nmap, 0);
    return st;
}

prt_status prt_graph_reorder(prt_graph *g, const int *order, int *map) {
    prt_context *ctx = g->ctx;
    int n = g->n_nodes;
    int *inv = prt_calloc(ctx, (size_t)n + 1, sizeof *inv);
    prt_node *nodes = prt_calloc(ctx, (size_t)n + 1, sizeof *nodes);
    prt_status st = PRT_OK;
    if (!inv || !nodes) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "graph '%s': out of memory", g->name);
        goto done;
    }
    for (int i = 0; i < n; i++) inv[i] = -1;
    for (int i = 0; i < n; i++) {
        if (order[i] < 0 || order[i] >= n || inv[order[i]] >= 0) {
            st = prt_error(ctx, PRT_ERR_INTERNAL, "graph '%s': node order is not a permutation", g->name);
            goto done;
        }
        inv[order[i]] = i;
    }
    /* every input must be produced earlier in the new order */
    for (int i = 0; i < n; i++) {
        const prt_node *nd = &g->nodes[order[i]];
        for (int j = 0; j < nd->n_in; j++) {
            int pr = g->values[nd->in[j]].producer;
            if (pr >= 0 && inv[pr] >= i) {
                st = prt_error(ctx, PRT_ERR_INTERNAL, "graph '%s': reordering puts '%s' before the producer of its input",
                               g->name, nd->name);
                goto done;
            }
        }
    }
    for (int i = 0; i < n; i++) {
        nodes[i] = g->nodes[order[i]];
        if (nodes[i].recompute_of >= 0) nodes[i].recompute_of = inv[nodes[i].recompute_of];
        for (int k = 0; k < nodes[i].n_out; k++) g->values[nodes[i].out[k]].producer = i;
    }
    memcpy(g->nodes, nodes, (size_t)n * sizeof *nodes);
    if (map) memcpy(map, inv, (size_t)n * sizeof *map);
done:
    prt_free(ctx, inv, 0);
    prt_free(ctx, nodes, 0);
    return st;
}

/* Re-infers every node at batch 1 and checks that each bound parameter keeps
 * its shape; the first that would change is reported. */
static prt_status reinfer_params(prt_graph *g, const char *input) {
    prt_infer_scratch sc;
    prt_infer_ctx ic;
    g->batch = 1;
    for (int n = 0; n < g->n_nodes; n++) {
        PRT_CHECK(infer_node(g, n, &sc, &ic));
        const prt_node *nd = &g->nodes[n];
        int k = nd->n_data_in;
        for (int p = 0; p < PRT_MAX_OP_PARAMS && p < ic.n_params; p++) {
            if (!((nd->param_mask >> p) & 1u)) continue;
            const prt_value *v = &g->values[nd->in[k++]];
            if (prt_shape_eq(&v->shape, &sc.params[p])) continue;
            char a[160], b[160];
            prt_shape_str(&v->shape, a, sizeof a);
            prt_shape_str(&sc.params[p], b, sizeof b);
            return prt_error(g->ctx, PRT_ERR_SHAPE,
                             "input '%s': at this size parameter '%s' would change its shape from %s to %s", input,
                             v->name, a, b);
        }
    }
    return PRT_OK;
}

prt_status prt_graph_set_input_shape(prt_graph *g, int input, const prt_shape *per_sample) {
    if (input < 0 || input >= g->n_inputs)
        return prt_error(g->ctx, PRT_ERR_INVALID, "graph '%s' has no input %d", g->name, input);
    int id = g->inputs[input];
    const char *name = g->values[id].name;
    if (per_sample->ndim != g->values[id].shape.ndim)
        return prt_error(g->ctx, PRT_ERR_SHAPE, "input '%s' has %d dimensions, the new shape %d", name,
                         g->values[id].shape.ndim, per_sample->ndim);
    int64_t numel;
    PRT_CHECK(prt_shape_numel(g->ctx, per_sample, &numel));
    for (int i = 0; i < per_sample->ndim; i++)
        if (per_sample->d[i] < 1)
            return prt_error(g->ctx, PRT_ERR_SHAPE, "input '%s': dimension %d is %lld, expected >= 1", name, i,
                             (long long)per_sample->d[i]);
    prt_shape old = g->values[id].shape;
    g->values[id].shape = *per_sample;
    if (!g->params_bound) return PRT_OK;
    prt_status st = reinfer_params(g, name);
    if (st != PRT_OK) {
        /* back to the shapes that held, keeping the message */
        g->values[id].shape = old;
        prt_infer_scratch sc;
        prt_infer_ctx ic;
        for (int n = 0; n < g->n_nodes; n++) (void)infer_node(g, n, &sc, &ic);
    }
    return st;
}

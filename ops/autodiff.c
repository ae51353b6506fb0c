/* Reverse-mode differentiation as a graph transformation. The forward nodes
 * that lie on a path to a root and depend on a parameter are visited in
 * reverse order; each one's gradient builder (its schema's `grad`) appends the
 * nodes computing its input gradients. A value that receives several gradients
 * (fan-out, or a parameter shared by several nodes as in PolyNet's poly-3
 * modules) gets their sum from one `add` node, in a fixed order, so the graph
 * and its numbers are the same on every run. Gradient nodes nobody needs
 * (a builder computing an input gradient no one asked for) are removed again
 * at the end, so the compiled step never runs them. */
#include "ops/train_impl.h"

#include <stdio.h>
#include <string.h>

static bool is_float(prt_dtype t) { return t == PRT_F32 || t == PRT_F64 || t == PRT_F16 || t == PRT_BF16; }

/* Gradient contributions waiting to be summed, one linked list per forward value. */
typedef struct contrib {
    int grad, next;
} contrib;

typedef struct ad_state {
    prt_graph *g;
    prt_context *ctx;
    int n0, v0;       /* forward nodes and values before differentiation */
    bool *active;     /* per forward value: depends on a parameter */
    bool *on_path;    /* per forward node: some output leads to a root */
    int *toward;      /* per forward node: the next node on its path to a root */
    bool *one;        /* per forward value: seeded with PRT_GRAD_ONE */
    int *head, *tail; /* per forward value: its contribution list */
    bool *done;       /* per forward value: its contributions have been summed */
    contrib *pool;
    int n_pool, cap_pool;
    int *grad_of; /* per value (grown with the graph) */
    int cap_grad_of;
} ad_state;

static prt_status add_contrib(ad_state *a, int v, int grad) {
    if (a->done[v])
        return prt_error(a->ctx, PRT_ERR_INTERNAL, "autodiff: gradient for '%s' arrived after it was summed",
                         a->g->values[v].name);
    PRT_CHECK(prt_grow(a->ctx, (void **)&a->pool, &a->cap_pool, a->n_pool + 1, sizeof *a->pool));
    int c = a->n_pool++;
    a->pool[c] = (contrib){grad, -1};
    if (a->tail[v] >= 0)
        a->pool[a->tail[v]].next = c;
    else
        a->head[v] = c;
    a->tail[v] = c;
    return PRT_OK;
}

/* Appends add(ids[0..n)) for the gradient of value v; *out its result. */
static prt_status emit_add(ad_state *a, int v, const int *ids, int n, int *out) {
    prt_graph *g = a->g;
    int op;
    if (!prt_op_find(a->ctx->ops, "add", &op)) return prt_error(a->ctx, PRT_ERR_INTERNAL, "autodiff: no 'add' op");
    char name[1100];
    snprintf(name, sizeof name, "%s/grad_sum", g->values[v].name);
    for (int k = 2; prt_graph_find_value(g, name) >= 0; k++)
        snprintf(name, sizeof name, "%s/grad_sum#%d", g->values[v].name, k);
    int node;
    PRT_CHECK(prt_graph_add_node(g, op, name, name, ids, n, NULL, g->values[v].loc, &node));
    PRT_CHECK(prt_graph_infer_node(g, node));
    *out = g->nodes[node].out[0];
    return PRT_OK;
}

/* Sums v's contributions (at most PRT_VARIADIC per add node) into one gradient:
 * -1 when there are none, PRT_GRAD_ONE for a loss seeded with 1. */
static prt_status finish(ad_state *a, int v, int *out) {
    a->done[v] = true;
    int n = 0;
    for (int c = a->head[v]; c >= 0; c = a->pool[c].next) n++;
    if (a->one[v]) {
        if (n > 0)
            return prt_error(a->ctx, PRT_ERR_UNSUPPORTED,
                             "autodiff: '%s' is a root seeded with gradient 1 but also leads to another root",
                             a->g->values[v].name);
        *out = PRT_GRAD_ONE;
        return PRT_OK;
    }
    if (n == 0) {
        *out = -1;
        return PRT_OK;
    }
    int ids[PRT_VARIADIC], m = 0, acc = -1;
    for (int c = a->head[v]; c >= 0; c = a->pool[c].next) {
        if (m == 0 && acc >= 0) ids[m++] = acc;
        ids[m++] = a->pool[c].grad;
        if (m == PRT_VARIADIC) {
            PRT_CHECK(emit_add(a, v, ids, m, &acc));
            m = 0;
        }
    }
    if (m == 1)
        acc = ids[0];
    else if (m > 1)
        PRT_CHECK(emit_add(a, v, ids, m, &acc));
    *out = acc;
    return PRT_OK;
}

/* Grows grad_of to the graph's value count, new entries -1. */
static prt_status grow_grad_of(ad_state *a) {
    int n = a->g->n_values;
    if (n <= a->cap_grad_of) return PRT_OK;
    int old = a->cap_grad_of;
    PRT_CHECK(prt_grow(a->ctx, (void **)&a->grad_of, &a->cap_grad_of, n, sizeof *a->grad_of));
    for (int i = old; i < a->cap_grad_of; i++) a->grad_of[i] = -1;
    return PRT_OK;
}

static prt_status set_grad_of(ad_state *a, int v, int grad) {
    PRT_CHECK(grow_grad_of(a));
    a->grad_of[v] = grad;
    return PRT_OK;
}

/* "layer 'x' (op): cannot differentiate: <note>; path to the loss: 'x' -> ... -> 'loss'" */
static prt_status no_grad_error(ad_state *a, int n, const prt_op_schema *s) {
    const prt_graph *g = a->g;
    const prt_node *nd = &g->nodes[n];
    int len = 0;
    for (int u = n; u >= 0 && len <= a->n0; u = a->toward[u]) len++;
    char path[1024] = "";
    size_t at = 0;
    int k = 0;
    for (int u = n; u >= 0 && at < sizeof path; u = a->toward[u], k++) {
        /* a long path shows its first four and last three layers */
        if (len > 8 && k >= 4 && k < len - 3) {
            if (k == 4) at += (size_t)snprintf(path + at, sizeof path - at, " -> ... (%d more)", len - 7);
            continue;
        }
        at += (size_t)snprintf(path + at, sizeof path - at, "%s'%s'", k ? " -> " : "", g->nodes[u].name);
    }
    const char *note = s->grad_note ? s->grad_note : "the op has no gradient";
    if (nd->loc.line > 0)
        return prt_error(a->ctx, PRT_ERR_UNSUPPORTED,
                         "%s:%d:%d: layer '%s' (%s): cannot differentiate: %s; path to the loss: %s",
                         nd->loc.file ? nd->loc.file : "?", nd->loc.line, nd->loc.col, nd->name, s->name, note, path);
    return prt_error(a->ctx, PRT_ERR_UNSUPPORTED, "layer '%s' (%s): cannot differentiate: %s; path to the loss: %s",
                     nd->name, s->name, note, path);
}

/* Checks one gradient a builder produced for input value u of node n. */
static prt_status check_dx(ad_state *a, int n, const prt_op_schema *s, int i, int u, int dx) {
    prt_graph *g = a->g;
    if (dx < 0 || dx >= g->n_values)
        return prt_error(a->ctx, PRT_ERR_INTERNAL, "gradient builder of '%s' (layer '%s'): input %d gets value %d",
                         s->name, g->nodes[n].name, i, dx);
    prt_shape want = prt_graph_value_shape(g, u), got = prt_graph_value_shape(g, dx);
    if (!prt_shape_eq(&want, &got) || g->values[dx].dtype != g->values[u].dtype) {
        char sw[160], sg[160];
        prt_shape_str(&want, sw, sizeof sw);
        prt_shape_str(&got, sg, sizeof sg);
        return prt_error(a->ctx, PRT_ERR_INTERNAL,
                         "gradient builder of '%s' (layer '%s'): the gradient of input %d ('%s', %s %s) is %s %s",
                         s->name, g->nodes[n].name, i, g->values[u].name, prt_dtype_name(g->values[u].dtype), sw,
                         prt_dtype_name(g->values[dx].dtype), sg);
    }
    return PRT_OK;
}

static prt_status visit(ad_state *a, int n) {
    prt_graph *g = a->g;
    const prt_op_schema *s = prt_op_get(a->ctx->ops, g->nodes[n].op);
    int n_out = g->nodes[n].n_out, n_in = g->nodes[n].n_in;
    int dy[4] = {-1, -1, -1, -1};
    bool any = false;
    if (n_out > 4)
        return prt_error(a->ctx, PRT_ERR_INTERNAL, "autodiff: layer '%s' has %d outputs", g->nodes[n].name, n_out);
    for (int k = 0; k < n_out; k++) {
        int o = g->nodes[n].out[k];
        PRT_CHECK(finish(a, o, &dy[k]));
        if (dy[k] >= 0) PRT_CHECK(set_grad_of(a, o, dy[k]));
        any |= dy[k] != -1;
    }
    if (!any) return PRT_OK;
    if (!s->grad) return no_grad_error(a, n, s);
    int *dx = prt_calloc(a->ctx, (size_t)n_in + 1, sizeof *dx);
    if (!dx) return prt_error(a->ctx, PRT_ERR_NOMEM, "autodiff: out of memory");
    for (int i = 0; i < n_in; i++) dx[i] = -1;
    prt_grad_ctx gc = {.g = g, .node = n, .dy = dy, .dx = dx};
    prt_status st = s->grad(&gc);
    /* the builder may have grown g->nodes: index, never hold pointers across it */
    for (int i = 0; i < n_in && st == PRT_OK; i++) {
        int u = g->nodes[n].in[i];
        if (dx[i] == -1 || u >= a->v0 || !a->active[u]) continue;
        st = check_dx(a, n, s, i, u, dx[i]);
        if (st == PRT_OK) st = add_contrib(a, u, dx[i]);
    }
    prt_free(a->ctx, dx, 0);
    return st;
}

/* Marks the values that depend on a parameter and the nodes that lead to a root. */
static prt_status mark(ad_state *a, int n_roots, const int *roots, const int *seeds) {
    prt_graph *g = a->g;
    for (int v = 0; v < a->v0; v++) {
        a->active[v] = g->values[v].kind == PRT_VAL_PARAM && is_float(g->values[v].dtype);
        a->head[v] = a->tail[v] = -1;
    }
    for (int n = 0; n < a->n0; n++) {
        const prt_node *nd = &g->nodes[n];
        bool act = false;
        for (int i = 0; i < nd->n_in; i++) act |= a->active[nd->in[i]];
        for (int k = 0; k < nd->n_out; k++) a->active[nd->out[k]] = act && is_float(g->values[nd->out[k]].dtype);
    }
    bool *val_on = prt_calloc(a->ctx, (size_t)a->v0 + 1, sizeof *val_on);
    if (!val_on) return prt_error(a->ctx, PRT_ERR_NOMEM, "autodiff: out of memory");
    for (int k = 0; k < n_roots; k++) val_on[roots[k]] = true;
    for (int n = 0; n < a->n0; n++) a->toward[n] = -1;
    for (int n = a->n0 - 1; n >= 0; n--) {
        const prt_node *nd = &g->nodes[n];
        for (int k = 0; k < nd->n_out; k++) a->on_path[n] |= val_on[nd->out[k]];
        if (!a->on_path[n]) continue;
        for (int i = 0; i < nd->n_in; i++) {
            int u = nd->in[i], p = g->values[u].producer;
            val_on[u] = true;
            if (p >= 0 && a->toward[p] < 0) a->toward[p] = n;
        }
    }
    prt_free(a->ctx, val_on, 0);
    for (int k = 0; k < n_roots; k++) {
        if (seeds[k] == PRT_GRAD_ONE) {
            a->one[roots[k]] = true;
        } else if (a->active[roots[k]]) {
            PRT_CHECK(add_contrib(a, roots[k], seeds[k]));
        }
    }
    return PRT_OK;
}

/* ---- removing gradient nodes nobody needs --------------------------------- */

static prt_status prune(ad_state *a) {
    prt_graph *g = a->g;
    prt_context *ctx = a->ctx;
    int nv = g->n_values, nn = g->n_nodes;
    prt_status st = PRT_OK;
    bool *live_v = prt_calloc(ctx, (size_t)nv + 1, sizeof *live_v);
    bool *live_n = prt_calloc(ctx, (size_t)nn + 1, sizeof *live_n);
    bool *dead_v = prt_calloc(ctx, (size_t)nv + 1, sizeof *dead_v);
    bool *dead_n = prt_calloc(ctx, (size_t)nn + 1, sizeof *dead_n);
    int *vmap = prt_calloc(ctx, (size_t)nv + 1, sizeof *vmap);
    if (!live_v || !live_n || !dead_v || !dead_n || !vmap) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "autodiff: out of memory");
        goto done;
    }
    for (int v = 0; v < nv; v++) {
        if (v < a->cap_grad_of && a->grad_of[v] >= 0) live_v[a->grad_of[v]] = true;
        if (v >= a->v0 && g->values[v].producer < 0) live_v[v] = true;
    }
    bool all = true;
    for (int n = nn - 1; n >= a->n0; n--) {
        const prt_node *nd = &g->nodes[n];
        const prt_op_schema *s = prt_op_get(ctx->ops, nd->op);
        bool live = s->updates_inputs;
        for (int k = 0; k < nd->n_out; k++) live |= live_v[nd->out[k]];
        live_n[n] = live;
        all &= live;
        if (live)
            for (int i = 0; i < nd->n_in; i++) live_v[nd->in[i]] = true;
    }
    if (all) goto done;
    /* the forward part and the values without a producer stay */
    for (int n = 0; n < nn; n++) dead_n[n] = n >= a->n0 && !live_n[n];
    for (int v = 0; v < nv; v++) {
        int p = g->values[v].producer;
        dead_v[v] = v >= a->v0 && p >= 0 && dead_n[p];
    }
    PRT_CHECK_GOTO(prt_graph_compact(g, dead_n, dead_v, vmap), st, done);
    for (int v = 0; v < nv; v++) {
        int gv = v < a->cap_grad_of ? a->grad_of[v] : -1;
        if (vmap[v] >= 0) a->grad_of[vmap[v]] = gv >= 0 ? vmap[gv] : -1;
    }
done:
    prt_free(ctx, live_v, 0);
    prt_free(ctx, live_n, 0);
    prt_free(ctx, dead_v, 0);
    prt_free(ctx, dead_n, 0);
    prt_free(ctx, vmap, 0);
    return st;
}

/* ---- the entry point ------------------------------------------------------ */

prt_status prt_autodiff(prt_graph *g, int n_roots, const int *roots, const int *seeds, int **grad_of, int *n_grad_of) {
    prt_context *ctx = g->ctx;
    *grad_of = NULL;
    *n_grad_of = 0;
    if (n_roots < 1 || !roots || !seeds) return prt_error(ctx, PRT_ERR_USAGE, "prt_autodiff: no roots");
    if (!g->params_bound) PRT_CHECK(prt_graph_bind_params(g));
    for (int k = 0; k < n_roots; k++) {
        if (roots[k] < 0 || roots[k] >= g->n_values)
            return prt_error(ctx, PRT_ERR_USAGE, "prt_autodiff: root %d is value %d of %d", k, roots[k], g->n_values);
        if (seeds[k] == PRT_GRAD_ONE) continue;
        if (seeds[k] < 0 || seeds[k] >= g->n_values)
            return prt_error(ctx, PRT_ERR_USAGE, "prt_autodiff: seed %d is value %d of %d", k, seeds[k], g->n_values);
        prt_shape a = prt_graph_value_shape(g, roots[k]), b = prt_graph_value_shape(g, seeds[k]);
        if (!prt_shape_eq(&a, &b))
            return prt_error(ctx, PRT_ERR_SHAPE, "prt_autodiff: the seed '%s' and the root '%s' differ in shape",
                             g->values[seeds[k]].name, g->values[roots[k]].name);
    }
    ad_state a = {.g = g, .ctx = ctx, .n0 = g->n_nodes, .v0 = g->n_values};
    prt_status st = PRT_OK;
    size_t nv = (size_t)a.v0 + 1, nn = (size_t)a.n0 + 1;
    a.active = prt_calloc(ctx, nv, sizeof *a.active);
    a.one = prt_calloc(ctx, nv, sizeof *a.one);
    a.done = prt_calloc(ctx, nv, sizeof *a.done);
    a.head = prt_calloc(ctx, nv, sizeof *a.head);
    a.tail = prt_calloc(ctx, nv, sizeof *a.tail);
    a.on_path = prt_calloc(ctx, nn, sizeof *a.on_path);
    a.toward = prt_calloc(ctx, nn, sizeof *a.toward);
    if (!a.active || !a.one || !a.done || !a.head || !a.tail || !a.on_path || !a.toward) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "autodiff: out of memory");
        goto done;
    }
    PRT_CHECK_GOTO(mark(&a, n_roots, roots, seeds), st, done);
    PRT_CHECK_GOTO(grow_grad_of(&a), st, done);
    for (int n = a.n0 - 1; n >= 0; n--) {
        if (!a.on_path[n]) continue;
        const prt_node *nd = &g->nodes[n];
        bool act = false;
        for (int i = 0; i < nd->n_in; i++) act |= a.active[nd->in[i]];
        if (act) PRT_CHECK_GOTO(visit(&a, n), st, done);
    }
    /* parameters (and anything else no node consumed on the way) */
    for (int v = 0; v < a.v0; v++) {
        if (a.done[v] || a.head[v] < 0) continue;
        int grad;
        PRT_CHECK_GOTO(finish(&a, v, &grad), st, done);
        PRT_CHECK_GOTO(set_grad_of(&a, v, grad), st, done);
    }
    PRT_CHECK_GOTO(grow_grad_of(&a), st, done);
    PRT_CHECK_GOTO(prune(&a), st, done);
    *grad_of = a.grad_of;
    *n_grad_of = g->n_values;
    a.grad_of = NULL;
done:
    prt_free(ctx, a.active, 0);
    prt_free(ctx, a.one, 0);
    prt_free(ctx, a.done, 0);
    prt_free(ctx, a.head, 0);
    prt_free(ctx, a.tail, 0);
    prt_free(ctx, a.on_path, 0);
    prt_free(ctx, a.toward, 0);
    prt_free(ctx, a.pool, 0);
    prt_free(ctx, a.grad_of, 0);
    return st;
}

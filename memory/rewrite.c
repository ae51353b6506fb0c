/* Memory-saving rewrites of a training graph: backward reads a recomputed copy
 * of a forward value instead of the value itself, so the value dies with its
 * last forward reader. Two policies choose what is recomputed:
 *
 * - cheap: outputs of memory-bound ops (schema `cheap`: batch norm, ReLU, add,
 *   scale, concat, dropout, flatten), when every value they need is kept for
 *   backward anyway (a convolution's output that batch norm's backward reads,
 *   say) and the chain of cheap nodes to re-run stays short. Conv -> BN -> ReLU
 *   then keeps one tensor, the convolution's output, instead of two, and a
 *   concat of such branches keeps nothing of its own. No convolution re-runs.
 * - segments (Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost"):
 *   only checkpoints, about sqrt(n) single values that cut the forward pass in
 *   two, are kept; backward re-runs each segment's forward, convolutions
 *   included, before it needs the segment's values.
 *
 * The copies are clones of the forward nodes (recompute_of set, compiled to
 * RECOMPUTE instructions that run under the original's name and skip state
 * updates, so the results are bit for bit those of the forward pass), each
 * made once and placed right before its first backward reader. */
#include "memory/memory_api.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* the longest chain of cheap nodes re-run to recompute one kept value */
#define CHEAP_CHAIN_LIMIT 40
#define COST_INF (1 << 28)

static const char *const mode_names[] = {
#define X(name, doc) #name,
    PRT_RECOMPUTE_MODES(X)
#undef X
};

const char *prt_recompute_mode_name(prt_recompute_mode m) {
    return (unsigned)m < PRT_RECOMPUTE_MODE_COUNT ? mode_names[m] : "?";
}

bool prt_recompute_mode_from_name(const char *name, prt_recompute_mode *out) {
    for (int m = 0; m < PRT_RECOMPUTE_MODE_COUNT; m++)
        if (strcmp(name, mode_names[m]) == 0) {
            *out = (prt_recompute_mode)m;
            return true;
        }
    return false;
}

typedef struct rewriter {
    prt_graph *g;
    int n_forward;
    int n_values;   /* values before the rewrite */
    bool *needed;   /* per value: a backward node reads it (not for its shape only) */
    bool *avail;    /* per value: kept in memory until backward has read it */
    bool *drop;     /* per value: backward reads a recomputed copy */
    int *cost;      /* cheap mode: nodes to re-run to recompute the value */
    int *clone;     /* per value: its recomputed copy, -1 */
    int *order;     /* the new node order */
    int n_order;
    int n_clones;
} rewriter;

static const prt_op_schema *node_schema(const rewriter *rw, int n) {
    return prt_op_get(rw->g->ctx->ops, rw->g->nodes[n].op);
}

static bool reads_values(const prt_op_schema *s, int j, int n_data_in) {
    return !(j < n_data_in && j < 32 && ((s->shape_only >> j) & 1u));
}

static void find_needed(rewriter *rw) {
    prt_graph *g = rw->g;
    for (int n = rw->n_forward; n < g->n_nodes; n++) {
        const prt_node *nd = &g->nodes[n];
        const prt_op_schema *s = node_schema(rw, n);
        for (int j = 0; j < nd->n_in; j++) {
            int v = nd->in[j];
            int pr = g->values[v].producer;
            if (pr >= 0 && pr < rw->n_forward && reads_values(s, j, nd->n_data_in)) rw->needed[v] = true;
        }
    }
}

static bool is_output(const prt_graph *g, int v) {
    for (int i = 0; i < g->n_outputs; i++)
        if (g->outputs[i] == v) return true;
    return false;
}

/* A forward node whose output may be replaced by a copy: one output, not a graph
 * output, and not the loss. */
static bool droppable(const rewriter *rw, int n) {
    const prt_node *nd = &rw->g->nodes[n];
    return nd->n_out == 1 && !is_output(rw->g, nd->out[0]);
}

static void choose_cheap(rewriter *rw) {
    prt_graph *g = rw->g;
    for (int v = 0; v < rw->n_values; v++) {
        prt_value_kind k = g->values[v].kind;
        rw->avail[v] = k != PRT_VAL_ACT;
        rw->cost[v] = rw->avail[v] ? 0 : COST_INF;
    }
    for (int n = 0; n < rw->n_forward; n++) {
        const prt_node *nd = &g->nodes[n];
        const prt_op_schema *s = node_schema(rw, n);
        bool cheap = s->cheap && droppable(rw, n);
        int cost = COST_INF;
        if (cheap) {
            cost = 1;
            for (int j = 0; j < nd->n_data_in && cost < COST_INF; j++) {
                int u = nd->in[j];
                cost = rw->avail[u] ? cost : (rw->cost[u] >= COST_INF ? COST_INF : cost + rw->cost[u]);
            }
            if (cost > COST_INF) cost = COST_INF;
        }
        for (int k = 0; k < nd->n_out; k++) {
            int v = nd->out[k];
            if (!cheap) {
                /* kept exactly when backward reads it (or it is an output) */
                rw->avail[v] = rw->needed[v] || is_output(g, v);
                rw->cost[v] = rw->avail[v] ? 0 : COST_INF;
            } else if (rw->needed[v]) {
                bool re = cost <= CHEAP_CHAIN_LIMIT;
                rw->drop[v] = re;
                rw->avail[v] = !re;
                rw->cost[v] = re ? cost : 0;
            } else {
                rw->avail[v] = false;
                rw->cost[v] = cost;
            }
        }
    }
}

/* Checkpoints: values that alone carry the forward pass across a cut (nothing
 * else produced before the cut is read after it), taken whenever the bytes
 * kept since the last checkpoint pass total / sqrt(candidates). */
static prt_status choose_segments(rewriter *rw) {
    prt_graph *g = rw->g;
    prt_context *ctx = g->ctx;
    int nf = rw->n_forward;
    int *lastf = prt_calloc(ctx, (size_t)rw->n_values + 1, sizeof *lastf);
    int *cross = prt_calloc(ctx, (size_t)nf + 2, sizeof *cross);
    if (!lastf || !cross) {
        prt_free(ctx, lastf, 0);
        prt_free(ctx, cross, 0);
        return prt_error(ctx, PRT_ERR_NOMEM, "recompute: out of memory");
    }
    for (int v = 0; v < rw->n_values; v++) lastf[v] = -1;
    for (int n = 0; n < nf; n++) {
        const prt_node *nd = &g->nodes[n];
        for (int j = 0; j < nd->n_data_in; j++) lastf[nd->in[j]] = n;
    }
    /* cross[i]: activations produced at or before node i and read after it */
    for (int v = 0; v < rw->n_values; v++) {
        int pr = g->values[v].producer;
        if (pr < 0 || pr >= nf || lastf[v] <= pr) continue;
        cross[pr]++;
        cross[lastf[v]]--;
    }
    for (int i = 1; i < nf; i++) cross[i] += cross[i - 1];
    int candidates = 0;
    double total = 0;
    for (int i = 0; i < nf; i++) {
        const prt_node *nd = &g->nodes[i];
        if (cross[i] == 1 && nd->n_out == 1 && lastf[nd->out[0]] > i) candidates++;
        for (int k = 0; k < nd->n_out; k++)
            if (rw->needed[nd->out[k]]) total += (double)prt_shape_count(&g->values[nd->out[k]].shape);
    }
    double budget = candidates > 0 ? total / sqrt((double)candidates) : total + 1;
    double acc = 0;
    for (int v = 0; v < rw->n_values; v++) rw->avail[v] = g->values[v].kind != PRT_VAL_ACT;
    for (int i = 0; i < nf; i++) {
        const prt_node *nd = &g->nodes[i];
        for (int k = 0; k < nd->n_out; k++) {
            int v = nd->out[k];
            if (!droppable(rw, i)) {
                rw->avail[v] = true;
                continue;
            }
            if (rw->needed[v]) {
                rw->drop[v] = true;
                acc += (double)prt_shape_count(&g->values[v].shape);
            }
        }
        /* a checkpoint: the one value crossing this cut, once the segment is big enough */
        if (cross[i] == 1 && nd->n_out == 1 && lastf[nd->out[0]] > i && acc >= budget && droppable(rw, i)) {
            int v = nd->out[0];
            rw->drop[v] = false;
            rw->avail[v] = true;
            acc = 0;
        }
    }
    prt_free(ctx, lastf, 0);
    prt_free(ctx, cross, 0);
    return PRT_OK;
}

static prt_status push_order(rewriter *rw, int n) {
    rw->order[rw->n_order++] = n;
    return PRT_OK;
}

/* The copy of value v, cloning its producer (and, first, whatever of its inputs
 * is not kept) on first use. */
static prt_status ensure_clone(rewriter *rw, int v, int depth, int *out) {
    prt_graph *g = rw->g;
    prt_context *ctx = g->ctx;
    if (rw->clone[v] >= 0) {
        *out = rw->clone[v];
        return PRT_OK;
    }
    int n = g->values[v].producer;
    if (n < 0 || n >= rw->n_forward || depth > 100000)
        return prt_error(ctx, PRT_ERR_INTERNAL, "recompute: value '%s' cannot be recomputed", g->values[v].name);
    const prt_node *nd = &g->nodes[n];
    int n_data = nd->n_data_in;
    int in[PRT_VARIADIC];
    if (n_data > PRT_VARIADIC)
        return prt_error(ctx, PRT_ERR_UNSUPPORTED, "recompute: layer '%s' has too many inputs", nd->name);
    for (int j = 0; j < n_data; j++) {
        int u = g->nodes[n].in[j];
        if (rw->drop[u] || !rw->avail[u])
            PRT_CHECK(ensure_clone(rw, u, depth + 1, &in[j]));
        else
            in[j] = u;
    }
    char name[1100];
    nd = &g->nodes[n];
    snprintf(name, sizeof name, "%s/recompute", nd->name);
    int id;
    PRT_CHECK(prt_graph_add_node(g, nd->op, name, nd->param_path, in, n_data, nd->attrs, nd->loc, &id));
    prt_node *c = &g->nodes[id];
    nd = &g->nodes[n];
    for (int j = n_data; j < nd->n_in; j++) c->in[j] = nd->in[j];
    c->n_in = nd->n_in;
    c->param_mask = nd->param_mask;
    c->recompute_of = n;
    PRT_CHECK(prt_graph_infer_node(g, id));
    rw->clone[v] = g->nodes[id].out[0];
    rw->n_clones++;
    PRT_CHECK(push_order(rw, id));
    *out = rw->clone[v];
    return PRT_OK;
}

static prt_status apply(rewriter *rw) {
    prt_graph *g = rw->g;
    int n_nodes = g->n_nodes;
    for (int n = 0; n < rw->n_forward; n++) PRT_CHECK(push_order(rw, n));
    for (int n = rw->n_forward; n < n_nodes; n++) {
        const prt_op_schema *s = node_schema(rw, n);
        for (int j = 0; j < g->nodes[n].n_in; j++) {
            int v = g->nodes[n].in[j];
            if (v < rw->n_values && rw->drop[v] && reads_values(s, j, g->nodes[n].n_data_in)) {
                int c;
                PRT_CHECK(ensure_clone(rw, v, 0, &c));
                g->nodes[n].in[j] = c;
            }
        }
        PRT_CHECK(push_order(rw, n));
    }
    return PRT_OK;
}

prt_status prt_mem_rewrite(prt_graph *g, int n_forward, prt_recompute_mode mode, int *track,
                           prt_rewrite_stats *stats) {
    prt_context *ctx = g->ctx;
    if (stats) memset(stats, 0, sizeof *stats);
    if ((unsigned)mode >= PRT_RECOMPUTE_MODE_COUNT)
        return prt_error(ctx, PRT_ERR_INVALID, "recompute: unknown mode %d", (int)mode);
    if (n_forward <= 0 || n_forward > g->n_nodes)
        return prt_error(ctx, PRT_ERR_INVALID,
                         "graph '%s': recompute needs a training graph (forward nodes %d of %d)", g->name, n_forward,
                         g->n_nodes);
    if (mode == PRT_RECOMPUTE_none) return PRT_OK;
    prt_status st = PRT_OK;
    rewriter rw = {.g = g, .n_forward = n_forward, .n_values = g->n_values};
    size_t nv = (size_t)g->n_values + 1;
    rw.needed = prt_calloc(ctx, nv, sizeof *rw.needed);
    rw.avail = prt_calloc(ctx, nv, sizeof *rw.avail);
    rw.drop = prt_calloc(ctx, nv, sizeof *rw.drop);
    rw.cost = prt_calloc(ctx, nv, sizeof *rw.cost);
    rw.clone = prt_calloc(ctx, nv, sizeof *rw.clone);
    /* each value is cloned at most once, so the order has room for them all */
    rw.order = prt_calloc(ctx, (size_t)g->n_nodes + nv, sizeof *rw.order);
    int *map = NULL;
    if (!rw.needed || !rw.avail || !rw.drop || !rw.cost || !rw.clone || !rw.order) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "recompute: out of memory");
        goto done;
    }
    for (int v = 0; v < g->n_values; v++) rw.clone[v] = -1;
    find_needed(&rw);
    if (mode == PRT_RECOMPUTE_cheap)
        choose_cheap(&rw);
    else
        PRT_CHECK_GOTO(choose_segments(&rw), st, done);
    PRT_CHECK_GOTO(apply(&rw), st, done);
    map = prt_calloc(ctx, (size_t)g->n_nodes + 1, sizeof *map);
    if (!map) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "recompute: out of memory");
        goto done;
    }
    PRT_CHECK_GOTO(prt_graph_reorder(g, rw.order, map), st, done);
    if (track && *track >= 0 && *track < g->n_nodes) *track = map[*track];
    if (stats) PRT_CHECK_GOTO(prt_mem_recompute_stats(g, stats), st, done);
done:
    prt_free(ctx, rw.needed, 0);
    prt_free(ctx, rw.avail, 0);
    prt_free(ctx, rw.drop, 0);
    prt_free(ctx, rw.cost, 0);
    prt_free(ctx, rw.clone, 0);
    prt_free(ctx, rw.order, 0);
    prt_free(ctx, map, 0);
    return st;
}

prt_status prt_mem_recompute_stats(prt_graph *g, prt_rewrite_stats *out) {
    memset(out, 0, sizeof *out);
    for (int n = 0; n < g->n_nodes; n++) {
        if (g->nodes[n].recompute_of < 0) continue;
        const prt_op_schema *s = prt_op_get(g->ctx->ops, g->nodes[n].op);
        out->n_recomputed++;
        if (!s || !s->flops) continue;
        prt_infer_scratch sc;
        prt_infer_ctx ic;
        prt_graph_infer_ctx(g, n, &sc, &ic);
        out->extra_flops += s->flops(&ic);
    }
    return PRT_OK;
}

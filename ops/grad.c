/* The helpers gradient builders share: emitting a backward node into the graph
 * and filling an attribute table with schema defaults. */
#include "runtime/graph_impl.h"

#include <stdio.h>
#include <string.h>

void prt_attrs_default(const prt_op_schema *s, prt_attr *attrs) {
    for (int i = 0; i < s->n_attrs; i++) {
        attrs[i] = s->attrs[i].def;
        attrs[i].type = s->attrs[i].type;
        attrs[i].set = false;
    }
}

/* A node's outputs are named after it: "name" for one output, "name:k" for several. */
static bool name_taken(const prt_graph *g, const char *name) {
    char first[1104];
    snprintf(first, sizeof first, "%s:0", name);
    return prt_graph_find_value(g, name) >= 0 || prt_graph_find_value(g, first) >= 0;
}

prt_status prt_grad_emit(prt_grad_ctx *gc, const char *op, const int *in, int n_in, const prt_attr *attrs,
                         int *outs) {
    prt_graph *g = gc->g;
    prt_context *ctx = g->ctx;
    int id;
    const prt_op_schema *s = prt_op_find(ctx->ops, op, &id);
    if (!s) return prt_error(ctx, PRT_ERR_INTERNAL, "gradient builder: op '%s' is not registered", op);
    const prt_node *fwd = &g->nodes[gc->node];
    const prt_op_schema *fs = prt_op_get(ctx->ops, fwd->op);
    if (!attrs) {
        if (s->attrs != fs->attrs || s->n_attrs != fs->n_attrs)
            return prt_error(ctx, PRT_ERR_INTERNAL, "gradient builder of '%s': op '%s' does not share its attributes",
                             fs->name, op);
        attrs = fwd->attrs;
    }
    /* "<forward>/<op>", then "<forward>/<op>#2", ... when a builder emits the op twice */
    char name[1100];
    snprintf(name, sizeof name, "%s/%s", fwd->name, op);
    for (int k = 2; name_taken(g, name); k++) snprintf(name, sizeof name, "%s/%s#%d", fwd->name, op, k);
    int n;
    prt_loc loc = fwd->loc;
    PRT_CHECK(prt_graph_add_node(g, id, name, name, in, n_in, attrs, loc, &n));
    PRT_CHECK(prt_graph_infer_node(g, n));
    for (int k = 0; k < s->n_out; k++) outs[k] = g->nodes[n].out[k];
    return PRT_OK;
}

/* Graph fusions on a forward graph, before prt_train_build. One so far:
 * batchnorm -> relu becomes one batchnorm_relu node (ops/op_batchnorm_relu.c)
 * where the batchnorm output has no other reader and is not a graph output, so
 * that the pre-ReLU tensor is never a value: on CUDA the pair becomes one pass
 * over memory each way, and backward reads the output y (kept for relu_bwd
 * anyway) instead of the intermediate.
 *
 * The fused node takes the batchnorm's place, inputs (parameters included,
 * so their values, names "<param path>.scale" ... and so weights files and
 * checkpoints are unchanged), param path, attributes and location, and the
 * relu's output value (so readers, graph outputs and the value's name are
 * unchanged). It is named "<batchnorm>+<relu>" without their common folder
 * ("b1/bn+relu" for b1/bn and b1/relu), so messages name both layers. The relu
 * node and the batchnorm's output value are removed and the rest renumbered. */
#include "scheduler/scheduler_impl.h"

#include <string.h>

/* "<a>+<b>" with b's folder dropped when it is a's: "b1/bn" + "b1/relu" -> "b1/bn+relu" */
static char *fused_name(prt_context *ctx, const char *a, const char *b) {
    const char *sa = strrchr(a, '/'), *sb = strrchr(b, '/');
    if (sa && sb && sa - a == sb - b && strncmp(a, b, (size_t)(sa - a)) == 0) b = sb + 1;
    size_t na = strlen(a), nb = strlen(b);
    char *s = prt_malloc(ctx, na + nb + 2);
    if (!s) return NULL;
    memcpy(s, a, na);
    s[na] = '+';
    memcpy(s + na + 1, b, nb + 1);
    return s;
}

prt_status prt_graph_fuse_bn_relu(prt_graph *g, int *n_fused) {
    prt_context *ctx = g->ctx;
    if (n_fused) *n_fused = 0;
    if (g->n_forward > 0 || g->n_nodes == 0) {
        if (g->n_forward > 0)
            return prt_error(ctx, PRT_ERR_INVALID,
                             "graph '%s': batchnorm+relu fusion runs on the forward graph, before prt_train_build",
                             g->name);
        return PRT_OK;
    }
    int bn, relu, fused;
    if (!prt_op_find(ctx->ops, "batchnorm", &bn) || !prt_op_find(ctx->ops, "relu", &relu) ||
        !prt_op_find(ctx->ops, "batchnorm_relu", &fused))
        return prt_error(ctx, PRT_ERR_INTERNAL, "batchnorm+relu fusion: an op is not registered");
    int *uses = prt_calloc(ctx, (size_t)g->n_values, sizeof *uses);   /* readers, a graph output counting one */
    int *reader = prt_calloc(ctx, (size_t)g->n_values, sizeof *reader); /* the last reading node */
    bool *dead_node = prt_calloc(ctx, (size_t)g->n_nodes, sizeof *dead_node);
    bool *dead_value = prt_calloc(ctx, (size_t)g->n_values, sizeof *dead_value);
    prt_status st = PRT_OK;
    int count = 0;
    if (!uses || !reader || !dead_node || !dead_value) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "graph '%s': fusing layers: out of memory", g->name);
        goto done;
    }
    for (int n = 0; n < g->n_nodes; n++)
        for (int j = 0; j < g->nodes[n].n_in; j++) {
            uses[g->nodes[n].in[j]]++;
            reader[g->nodes[n].in[j]] = n;
        }
    for (int i = 0; i < g->n_outputs; i++) uses[g->outputs[i]]++;
    for (int n = 0; n < g->n_nodes; n++) {
        prt_node *b = &g->nodes[n];
        if (b->op != bn || b->n_out != 1) continue;
        int v = b->out[0];
        if (uses[v] != 1) continue;
        int r = reader[v];
        prt_node *rl = &g->nodes[r];
        if (rl->op != relu || rl->n_in != 1 || rl->n_out != 1 || g->values[rl->out[0]].dtype != g->values[v].dtype)
            continue;
        char *name = fused_name(ctx, b->name, rl->name);
        if (!name) {
            st = prt_error(ctx, PRT_ERR_NOMEM, "graph '%s': fusing layers: out of memory", g->name);
            goto done;
        }
        prt_free(ctx, b->name, 0);
        b->name = name;
        b->op = fused;
        b->out[0] = rl->out[0];
        g->values[b->out[0]].producer = n;
        dead_node[r] = true;
        dead_value[v] = true;
        count++;
    }
    if (count) st = prt_graph_compact(g, dead_node, dead_value, NULL);
    if (st == PRT_OK && n_fused) *n_fused = count;
done:
    prt_free(ctx, uses, 0);
    prt_free(ctx, reader, 0);
    prt_free(ctx, dead_node, 0);
    prt_free(ctx, dead_value, 0);
    return st;
}

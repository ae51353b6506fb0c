/* Gradient buckets: the one optimizer node of a training graph becomes one node
 * per bucket, buckets filled in the order backward produces the gradients. */
#include "scheduler/scheduler_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct grad_pos {
    int j;   /* parameter index in the update node */
    int pos; /* place of its gradient's producer in the schedule */
} grad_pos;

static int by_pos(const void *a, const void *b) {
    const grad_pos *x = a, *y = b;
    if (x->pos != y->pos) return x->pos < y->pos ? -1 : 1;
    return (x->j > y->j) - (x->j < y->j);
}

prt_status prt_sched_buckets(prt_graph *g, int *update_node, const prt_bucket_options *o, int *n_buckets) {
    prt_context *ctx = g->ctx;
    *n_buckets = 0;
    size_t limit = o && o->bucket_bytes ? o->bucket_bytes : PRT_SCHED_BUCKET_BYTES;
    size_t first = o && o->first_bucket_bytes ? o->first_bucket_bytes : PRT_SCHED_FIRST_BUCKET_BYTES;
    if (first > limit) first = limit;
    int u = *update_node;
    if (u < 0 || u >= g->n_nodes) return prt_error(ctx, PRT_ERR_INTERNAL, "buckets: update node %d does not exist", u);
    const prt_op_schema *s = prt_op_get(ctx->ops, g->nodes[u].op);
    if (!s || !s->updates_inputs)
        return prt_error(ctx, PRT_ERR_INTERNAL, "buckets: node '%s' is not an optimizer update", g->nodes[u].name);
    int n_in = g->nodes[u].n_in, k = 0;
    while (k < n_in && g->values[g->nodes[u].in[k]].kind == PRT_VAL_PARAM) k++;
    if (k == 0 || n_in % k != 0 || n_in / k < 2)
        return prt_error(ctx, PRT_ERR_INTERNAL, "buckets: update '%s' does not take parameters, then gradients",
                         g->nodes[u].name);
    int per = n_in / k;

    prt_status st = PRT_OK;
    int *order = prt_calloc(ctx, (size_t)g->n_nodes + 1, sizeof *order);
    int *pos = prt_calloc(ctx, (size_t)g->n_nodes + 1, sizeof *pos);
    grad_pos *gp = prt_calloc(ctx, (size_t)k, sizeof *gp);
    int *bucket_of = prt_calloc(ctx, (size_t)k, sizeof *bucket_of);
    int *in = prt_calloc(ctx, (size_t)n_in + 1, sizeof *in);
    int *orig = prt_calloc(ctx, (size_t)n_in + 1, sizeof *orig);
    prt_attr *attrs = prt_calloc(ctx, (size_t)s->n_attrs + 1, sizeof *attrs);
    char *base = prt_strdup(ctx, g->nodes[u].name);
    if (!order || !pos || !gp || !bucket_of || !in || !orig || !attrs || !base) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "graph '%s': gradient buckets: out of memory", g->name);
        goto done;
    }
    PRT_CHECK_GOTO(prt_sched_order(g, order), st, done);
    for (int i = 0; i < g->n_nodes; i++) pos[order[i]] = i;
    memcpy(orig, g->nodes[u].in, (size_t)n_in * sizeof *orig);
    memcpy(attrs, g->nodes[u].attrs, (size_t)s->n_attrs * sizeof *attrs);
    for (int j = 0; j < k; j++) {
        int prod = g->values[orig[k + j]].producer;
        gp[j] = (grad_pos){j, prod >= 0 ? pos[prod] : -1};
    }
    qsort(gp, (size_t)k, sizeof *gp, by_pos);
    /* greedy fill in production order */
    int nb = 0;
    size_t fill = 0;
    for (int i = 0; i < k; i++) {
        size_t bytes;
        prt_shape sh = g->values[orig[gp[i].j]].shape;
        PRT_CHECK_GOTO(prt_shape_nbytes(ctx, &sh, g->values[orig[gp[i].j]].dtype, &bytes), st, done);
        if (nb == 0 || fill >= (nb == 1 ? first : limit)) {
            nb++;
            fill = 0;
        }
        bucket_of[i] = nb - 1;
        fill += bytes;
    }
    /* one node per bucket: bucket 0 in the original node, the rest appended */
    for (int b = 0; b < nb; b++) {
        int m = 0;
        for (int i = 0; i < k; i++)
            if (bucket_of[i] == b) m++;
        for (int slot = 0; slot < per; slot++) {
            int c = 0;
            for (int i = 0; i < k; i++)
                if (bucket_of[i] == b) in[slot * m + c++] = orig[slot * k + gp[i].j];
        }
        char name[1200];
        snprintf(name, sizeof name, "%s/bucket%d", base, b);
        int id = u;
        if (b == 0) {
            prt_node *nd = &g->nodes[u];
            char *nm = prt_strdup(ctx, name);
            if (!nm) {
                st = prt_error(ctx, PRT_ERR_NOMEM, "graph '%s': gradient buckets: out of memory", g->name);
                goto done;
            }
            prt_free(ctx, nd->name, 0);
            nd->name = nm;
            memcpy(nd->in, in, (size_t)(m * per) * sizeof *in);
            nd->n_in = nd->n_data_in = m * per;
        } else {
            PRT_CHECK_GOTO(prt_graph_add_node(g, g->nodes[u].op, name, name, in, m * per, attrs, g->nodes[u].loc, &id),
                           st, done);
        }
        g->nodes[id].bucket = b;
        PRT_CHECK_GOTO(prt_graph_infer_node(g, id), st, done);
    }
    *n_buckets = nb;
done:
    prt_free(ctx, order, 0);
    prt_free(ctx, pos, 0);
    prt_free(ctx, gp, 0);
    prt_free(ctx, bucket_of, 0);
    prt_free(ctx, in, 0);
    prt_free(ctx, orig, 0);
    prt_free(ctx, attrs, 0);
    prt_free(ctx, base, 0);
    return st;
}

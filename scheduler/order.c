/* Topological order of a graph's nodes (Kahn's algorithm). Ready nodes wait in a
 * min-heap keyed by node index, so the result depends only on the graph, and a
 * graph whose nodes are already in order comes back unchanged. */
#include "scheduler/scheduler_impl.h"

#include <string.h>

typedef struct heap {
    int *a;
    int n;
} heap;

static void heap_push(heap *h, int v) {
    int i = h->n++;
    while (i > 0) {
        int parent = (i - 1) / 2;
        if (h->a[parent] <= v) break;
        h->a[i] = h->a[parent];
        i = parent;
    }
    h->a[i] = v;
}

static int heap_pop(heap *h) {
    int top = h->a[0], last = h->a[--h->n], i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && h->a[c + 1] < h->a[c]) c++;
        if (last <= h->a[c]) break;
        h->a[i] = h->a[c];
        i = c;
    }
    if (h->n > 0) h->a[i] = last;
    return top;
}

/* Appends "'name'" to buf, keeping it terminated; "..." once full. */
static void append_name(char *buf, size_t cap, const char *sep, const char *name) {
    size_t len = strlen(buf);
    if (len + 4 >= cap) return;
    int w = snprintf(buf + len, cap - len, "%s'%s'", sep, name);
    if (w < 0 || (size_t)w >= cap - len) memcpy(buf + cap - 4, "...", 4);
}

/* Walks from an unordered node back through unordered producers until a node
 * repeats, and reports that loop in data-flow order. */
static prt_status report_cycle(prt_graph *g, const bool *done, int *walk, int *seen_at) {
    int start = 0;
    while (done[start]) start++;
    for (int i = 0; i < g->n_nodes; i++) seen_at[i] = -1;
    int len = 0, u = start;
    while (seen_at[u] < 0) {
        seen_at[u] = len;
        walk[len++] = u;
        int next = -1;
        const prt_node *nd = &g->nodes[u];
        for (int j = 0; j < nd->n_in && next < 0; j++) {
            int p = g->values[nd->in[j]].producer;
            if (p >= 0 && !done[p]) next = p;
        }
        PRT_ASSERT(next >= 0); /* an unordered node waits on an unordered producer */
        u = next;
    }
    char path[1024] = "";
    /* walk[seen_at[u]..len) runs consumer -> producer; print it the other way. */
    append_name(path, sizeof path, "", g->nodes[u].name);
    for (int i = len - 1; i >= seen_at[u]; i--)
        append_name(path, sizeof path, " -> ", g->nodes[walk[i]].name);
    return prt_error(g->ctx, PRT_ERR_SCHEMA, "graph '%s': layers form a cycle: %s", g->name, path);
}

prt_status prt_sched_order(prt_graph *g, int *order) {
    prt_context *ctx = g->ctx;
    int n = g->n_nodes;
    prt_status st = PRT_OK;
    if (n == 0) return PRT_OK;
    size_t n_edges = 0;
    for (int u = 0; u < n; u++) {
        const prt_node *nd = &g->nodes[u];
        for (int j = 0; j < nd->n_in; j++) {
            int v = nd->in[j];
            if (v < 0 || v >= g->n_values)
                return prt_error(ctx, PRT_ERR_INTERNAL, "graph '%s': layer '%s' reads value %d of %d",
                                 g->name, nd->name, v, g->n_values);
            int p = g->values[v].producer;
            if (p < -1 || p >= n)
                return prt_error(ctx, PRT_ERR_INTERNAL,
                                 "graph '%s': value '%s' has producer %d of %d layers", g->name,
                                 g->values[v].name, p, n);
        }
        if (!prt_add_size(n_edges, (size_t)nd->n_in, &n_edges))
            return prt_error(ctx, PRT_ERR_OVERFLOW, "graph '%s': too many edges", g->name);
    }

    /* Indegrees, consumer lists in CSR form (start, cons), the heap, done flags. */
    int *indeg = prt_calloc(ctx, (size_t)n, sizeof(int));
    int *start = prt_calloc(ctx, (size_t)n + 1, sizeof(int));
    int *cons = prt_calloc(ctx, n_edges + 1, sizeof(int));
    int *heap_a = prt_calloc(ctx, (size_t)n, sizeof(int));
    int *walk = prt_calloc(ctx, (size_t)n, sizeof(int));
    bool *done = prt_calloc(ctx, (size_t)n, sizeof(bool));
    if (!indeg || !start || !cons || !heap_a || !walk || !done) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "graph '%s': ordering %d layers: out of memory",
                       g->name, n);
        goto done;
    }
    for (int u = 0; u < n; u++) {
        const prt_node *nd = &g->nodes[u];
        for (int j = 0; j < nd->n_in; j++) {
            int p = g->values[nd->in[j]].producer;
            if (p < 0) continue;
            start[p + 1]++;
            indeg[u]++;
        }
    }
    for (int u = 0; u < n; u++) start[u + 1] += start[u];
    /* Fill consumer lists using `walk` as per-producer cursors. */
    for (int u = 0; u < n; u++) walk[u] = start[u];
    for (int u = 0; u < n; u++) {
        const prt_node *nd = &g->nodes[u];
        for (int j = 0; j < nd->n_in; j++) {
            int p = g->values[nd->in[j]].producer;
            if (p >= 0) cons[walk[p]++] = u;
        }
    }

    heap h = {heap_a, 0};
    for (int u = 0; u < n; u++)
        if (indeg[u] == 0) heap_push(&h, u);
    int count = 0;
    while (h.n > 0) {
        int u = heap_pop(&h);
        done[u] = true;
        order[count++] = u;
        /* A node reading the same value twice appears twice: once per edge. */
        for (int e = start[u]; e < start[u + 1]; e++)
            if (--indeg[cons[e]] == 0) heap_push(&h, cons[e]);
    }
    if (count < n) st = report_cycle(g, done, walk, indeg);
done:
    prt_free(ctx, indeg, 0);
    prt_free(ctx, start, 0);
    prt_free(ctx, cons, 0);
    prt_free(ctx, heap_a, 0);
    prt_free(ctx, walk, 0);
    prt_free(ctx, done, 0);
    return st;
}

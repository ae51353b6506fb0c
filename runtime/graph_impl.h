/* The graph IR: named values (tensors) and nodes (op applications).
 *
 * Frontends build a graph with data inputs only; prt_graph_bind_params() then runs
 * shape inference once (batch 1), creates every parameter value named
 * "<param path>.<slot>" (a second node with the same param path shares it, after a
 * shape check), and appends the parameter ids to each node's inputs. After that,
 * prt_graph_infer() gives every value its shape for a batch size.
 *
 *     prt_graph *g;  PRT_CHECK(prt_graph_new(ctx, "net", &g));
 *     int x, y, n;
 *     PRT_CHECK(prt_graph_add_input(g, "data", &chw, PRT_F32, loc, &x));
 *     PRT_CHECK(prt_graph_add_node(g, conv_id, "c1", "c1", &x, 1, attrs, loc, &n));
 *     y = g->nodes[n].out[0];
 *     PRT_CHECK(prt_graph_set_outputs(g, &y, 1));
 *     PRT_CHECK(prt_graph_bind_params(g));
 *     PRT_CHECK(prt_graph_infer(g, 8));
 */
#ifndef PARROTS_GRAPH_IMPL_H
#define PARROTS_GRAPH_IMPL_H

#include "ops/ops_impl.h"

typedef enum prt_value_kind {
    PRT_VAL_INPUT,   /* fed by the caller each step; shape excludes the batch dim */
    PRT_VAL_PARAM,   /* trainable parameter */
    PRT_VAL_STATE,   /* non-trainable persistent state (BN running statistics) */
    PRT_VAL_ACT,     /* produced by a node */
} prt_value_kind;

typedef struct prt_value {
    char *name;            /* owned */
    prt_value_kind kind;
    prt_dtype dtype;
    prt_shape shape;       /* INPUT: per-sample shape as declared; others: after inference */
    int producer;          /* node id, -1 for inputs and params */
    prt_init_kind init;    /* params and state */
    prt_loc loc;
} prt_value;

typedef struct prt_node {
    char *name;            /* owned; unique in the graph ("b3/f1/conv2") */
    char *param_path;      /* owned; parameters are "<param_path>.<slot>" */
    int op;                /* registry id */
    int n_data_in;         /* data inputs; params follow in `in` */
    int n_in;
    int *in;               /* owned: value ids */
    unsigned param_mask;   /* bit p set: schema param slot p is bound (in slot order after data) */
    int n_out;
    int *out;              /* owned: value ids */
    prt_attr *attrs;       /* owned: schema order, defaults filled in */
    prt_loc loc;
    int recompute_of;      /* a copy of forward node k re-run for backward (memory/rewrite.c); -1 */
    int bucket;            /* an optimizer update of gradient bucket b (scheduler/buckets.c); -1 */
} prt_node;

struct prt_graph {
    prt_context *ctx;
    char *name;
    prt_value *values;
    int n_values, cap_values;
    prt_node *nodes;       /* in a valid topological order as built */
    int n_nodes, cap_nodes;
    int *inputs;
    int n_inputs;
    int *outputs;
    int n_outputs;
    bool params_bound;
    int64_t batch;         /* batch of the last prt_graph_infer, 0 if none */
    struct prt_strtab *names; /* value name -> id */
    struct prt_strtab *strings; /* interned strings (file names, attr strings) */
    prt_shape *wide_in;    /* owned: input shapes for inferring a node with more than
                            * PRT_VARIADIC inputs (an optimizer update), cap_wide_in entries */
    int cap_wide_in;
    struct prt_solver *solver; /* owned: the YAML `solver:` section, NULL when the file has none */
    int n_forward;         /* training graphs: nodes [0, n_forward) are the forward pass and
                            * the loss, the rest backward and update; 0 when not set */
};

prt_status prt_graph_new(prt_context *ctx, const char *name, prt_graph **out);
/* Interns a string for the graph's lifetime (file names in locs, attr strings). */
const char *prt_graph_intern(prt_graph *g, const char *s);
/* Value id by name, or -1. */
int prt_graph_find_value(const prt_graph *g, const char *name);
prt_status prt_graph_add_input(prt_graph *g, const char *name, const prt_shape *per_sample,
                               prt_dtype t, prt_loc loc, int *id);
/* Replaces the per-sample shape of input number `input` (same rank), so that
 * `--input HxW` runs a network at another resolution. With parameters bound,
 * every node is inferred again at batch 1 and a size that would change a
 * parameter's shape (or that a layer rejects) is an error, leaving the graph as
 * it was. */
prt_status prt_graph_set_input_shape(prt_graph *g, int input, const prt_shape *per_sample);
/* Adds a node with its data inputs; creates its outputs named `name` (one output)
 * or "name:k". attrs (schema order, n = schema n_attrs) are copied. */
prt_status prt_graph_add_node(prt_graph *g, int op, const char *name, const char *param_path,
                              const int *inputs, int n_inputs, const prt_attr *attrs,
                              prt_loc loc, int *node_id);
prt_status prt_graph_set_outputs(prt_graph *g, const int *ids, int n);
/* Adds a parameter or state value of a fixed shape that no op slot creates,
 * such as an optimizer's state ("c1.weight.momentum"); initialised like a
 * parameter (prt_param_init). */
prt_status prt_graph_add_persistent(prt_graph *g, const char *name, prt_value_kind kind, const prt_shape *shape,
                                    prt_dtype t, prt_init_kind init, prt_loc loc, int *id);
prt_status prt_graph_bind_params(prt_graph *g);
/* Renumbers the nodes: new node i is old node order[i] (a permutation that keeps
 * every producer before its readers; checked). Producers and recompute_of follow;
 * map (may be NULL, n_nodes entries) gets old id -> new id. */
prt_status prt_graph_reorder(prt_graph *g, const int *order, int *map);
/* Drops the nodes and values marked dead (a dead node's outputs dead, a live
 * node's inputs live, no input or output of the graph dead), renumbering the
 * rest in order: ids, producers, recompute_of, the graph's inputs and outputs,
 * the name table. vmap (may be NULL, n_values entries) gets old value id -> new,
 * -1 for a dropped one. On failure (out of memory) the graph is unchanged. */
prt_status prt_graph_compact(prt_graph *g, const bool *dead_node, const bool *dead_value, int *vmap);
prt_status prt_graph_infer(prt_graph *g, int64_t batch);
/* Infers the output shapes of node n alone, at the graph's current batch (for
 * nodes appended after inference, such as gradient nodes). */
prt_status prt_graph_infer_node(prt_graph *g, int n);

typedef struct prt_graph_stats {
    int64_t n_nodes;
    int64_t params;        /* trainable elements */
    int64_t state;         /* non-trainable persistent elements */
    int64_t n_param_tensors;
    int64_t flops;         /* for the batch of the last inference */
} prt_graph_stats;
prt_status prt_graph_stats_get(prt_graph *g, prt_graph_stats *out);

/* Builds an infer context for node n over the graph's current shapes; `scratch`
 * provides the arrays (g->wide_in the input shapes of a node with more than
 * PRT_VARIADIC inputs, so such contexts are not reentrant). Used by inference, FLOP counting and kernel preparation. */
typedef struct prt_infer_scratch {
    prt_shape in[PRT_VARIADIC];
    prt_shape out[4];
    prt_shape params[PRT_MAX_OP_PARAMS];
    bool present[PRT_MAX_OP_PARAMS];
} prt_infer_scratch;
void prt_graph_infer_ctx(prt_graph *g, int n, prt_infer_scratch *sc, prt_infer_ctx *ic);
/* Full shape of a value for the graph's current batch (inputs get the batch prepended). */
prt_shape prt_graph_value_shape(const prt_graph *g, int id);

/* Parameter initial values come from prt_param_init (vm/vm_api.h), which needs only
 * a value's name, init kind and shape, so a program loaded from a file can do it. */

/* A string-keyed hash table of ints (open addressing), used for names. */
typedef struct prt_strtab prt_strtab;
prt_status prt_strtab_create(prt_context *ctx, prt_strtab **out);
void prt_strtab_destroy(prt_context *ctx, prt_strtab *t);
/* Inserts key (copied) -> val; PRT_ERR_INVALID if present (and *existing set). */
prt_status prt_strtab_put(prt_context *ctx, prt_strtab *t, const char *key, int val, int *existing);
/* false if absent. */
bool prt_strtab_get(const prt_strtab *t, const char *key, int *val);
/* The stored copy of key (interning), or NULL. */
const char *prt_strtab_key(const prt_strtab *t, const char *key);

#endif

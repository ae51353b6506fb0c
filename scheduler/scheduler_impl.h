/* The scheduler: the order in which a graph's nodes run (a deterministic
 * topological order) and, for data-parallel training, the gradient buckets:
 * the optimizer update is split into one node per bucket, so the compiler can
 * start each bucket's allreduce as soon as backward has written it and wait
 * for it only right before that bucket's update (vm/buckets.c).
 *
 *     int *order = prt_calloc(ctx, g->n_nodes, sizeof *order);
 *     PRT_CHECK(prt_sched_order(g, order));   // order[i] = node run i-th
 */
#ifndef PARROTS_SCHEDULER_IMPL_H
#define PARROTS_SCHEDULER_IMPL_H

#include "runtime/graph_impl.h"

/* Fills order[0 .. g->n_nodes) (caller allocates) with a topological order of the
 * nodes: Kahn's algorithm, taking the lowest-numbered ready node first, so the
 * order is deterministic and a graph already in order keeps its order. A cycle is
 * PRT_ERR_SCHEMA naming the layers on it. */
prt_status prt_sched_order(prt_graph *g, int *order);

/* Bucket sizes: a bucket closes once its gradients reach this many bytes; the
 * first one (the gradients backward writes first) is smaller, so that
 * communication starts early. */
#define PRT_SCHED_BUCKET_BYTES ((size_t)25 << 20)
#define PRT_SCHED_FIRST_BUCKET_BYTES ((size_t)1 << 20)

typedef struct prt_bucket_options {
    size_t bucket_bytes;       /* 0: PRT_SCHED_BUCKET_BYTES */
    size_t first_bucket_bytes; /* 0: PRT_SCHED_FIRST_BUCKET_BYTES (capped at bucket_bytes) */
} prt_bucket_options;

/* Splits the training graph's optimizer node *update_node (params, gradients,
 * then state, as prt_train_build makes it) into one update node per gradient
 * bucket: parameters ordered by when the scheduler's order writes their final
 * gradient, grouped greedily up to the sizes of o (NULL: defaults). Bucket 0
 * keeps the node's place (and *update_node points to it, named
 * "<update>/bucket0"); the others are appended in bucket order, so every
 * update runs after backward and the updates run in bucket order. Each node's
 * `bucket` field is set; *n_buckets gets their number. The graph must not be
 * reordered afterwards. */
prt_status prt_sched_buckets(prt_graph *g, int *update_node, const prt_bucket_options *o, int *n_buckets);

/* Fuses each batchnorm whose output is read by one relu and nothing else (not
 * a graph output) into one batchnorm_relu node (scheduler/fuse.c), on a forward
 * graph before prt_train_build (a training graph is PRT_ERR_INVALID). The fused
 * node keeps the batchnorm's parameters (same names and values), param path
 * and attributes, and the relu's output value; it is named "<bn>+<relu>" (their
 * common folder once). Nodes and values after a removed one are renumbered.
 * Opt-in: results are bit for bit those of the unfused graph on the CPU.
 * *n_fused (may be NULL) gets the number of pairs fused. */
prt_status prt_graph_fuse_bn_relu(prt_graph *g, int *n_fused);

#endif

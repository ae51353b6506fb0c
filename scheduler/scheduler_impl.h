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

/* ---- mixed precision (scheduler/precision.c) ------------------------------ */

typedef enum prt_precision {
    PRT_PRECISION_FP32, /* every value f32, as built */
    PRT_PRECISION_BF16, /* bf16 activations, f32 parameters (the master copies) */
} prt_precision;

/* "fp32" or "bf16"; false for anything else. */
bool prt_precision_from_name(const char *name, prt_precision *out);
const char *prt_precision_name(prt_precision p);

/* Rewrites a forward graph (parameters bound, before prt_train_build) to run
 * in `prec`; FP32 leaves it alone. BF16: every node whose op has a bf16 CUDA
 * kernel (schema cuda_bf16) computes on bf16 activations, with an inserted
 * `cast` wherever a value meets a node of the other dtype: after the f32 data
 * inputs, before each use of a conv or linear parameter (the f32 master copy
 * cast to bf16 once, all uses sharing it, so its gradient comes back through
 * the cast's gradient as f32 and the optimizer and its state stay f32), around
 * any op without a bf16 kernel (it runs in f32), and on every graph output
 * that is bf16 (outputs are f32: the logits reach the loss as f32). Batch
 * norm's parameters and running statistics stay f32 (schema
 * bf16_f32_params). Casts are named "<value>/bf16" and "<value>/f32"; an
 * output cast renames nothing, so the graph's outputs get those names.
 * Inference runs at the graph's current batch. A graph that already has bf16
 * values, or is a training graph, is refused. */
prt_status prt_graph_set_precision(prt_graph *g, prt_precision prec);

/* The device passes on a forward graph, in the order the GPU path applies
 * them: batch norm + ReLU fusion (when fuse_bn_relu: a fused op then takes
 * bf16 as one op), then the precision (parameters bound first when it is not
 * fp32). Nothing to do for (false, FP32). */
prt_status prt_graph_device_passes(prt_graph *g, bool fuse_bn_relu, prt_precision prec);

#endif

/* The scheduler: the order in which a graph's nodes run. For now that is a
 * deterministic topological order; stream and event assignment, gradient
 * buckets and allreduce placement will join it here.
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

#endif

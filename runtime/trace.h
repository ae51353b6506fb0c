/* Timelines: spans of work recorded while a program runs, written as a Chrome
 * trace (the JSON "trace event format": open it in Perfetto or chrome://tracing).
 *
 * One prt_trace per rank. The VM records one span per instruction it runs
 * (compute, or wait for an ALLREDUCE_WAIT that blocked) and the communicator
 * records one span per operation on its own thread; the training loop records
 * each step. At the end every rank's events are gathered to rank 0, which
 * writes one file with one process (pid) per rank and two threads each: tid 0
 * the compute thread, tid 1 the communication thread.
 *
 *     prt_trace *tr;
 *     PRT_CHECK(prt_trace_create(ctx, rank, 0, &tr));
 *     prt_trace_span(tr, PRT_TRACE_COMPUTE, "b3/conv", "conv", t0, t1, -1);
 *     PRT_CHECK(prt_trace_write(tr, comm, "trace.json"));   // comm may be NULL
 *     prt_trace_destroy(tr);
 *
 * Recording is thread-safe (a mutex) and allocation-free after creation: a full
 * trace drops further events and counts them (the file says how many).
 */
#ifndef PARROTS_TRACE_H
#define PARROTS_TRACE_H

#include "runtime/runtime_impl.h"

struct prt_comm;

/* X(name, tid, "description"): the categories, written as each event's "cat". */
#define PRT_TRACE_CATS(X)                                                                          \
    X(compute, 0, "an instruction running a kernel (CALL or RECOMPUTE)")                           \
    X(wait, 0, "the compute thread blocked in ALLREDUCE_WAIT until its bucket was reduced")        \
    X(step, 0, "one whole training step (an outer span around the instructions)")                  \
    X(comm, 1, "a collective running on the communication thread (allreduce of a bucket, ...)")

typedef enum prt_trace_cat {
#define X(name, tid, doc) PRT_TRACE_##name,
    PRT_TRACE_CATS(X)
#undef X
    PRT_TRACE_CAT_COUNT
} prt_trace_cat;

typedef struct prt_trace prt_trace;

/* Default capacity when max_events is 0: 4 Mi events. */
#define PRT_TRACE_DEFAULT_EVENTS ((size_t)1 << 22)

/* Caller frees with prt_trace_destroy. */
prt_status prt_trace_create(prt_context *ctx, int rank, size_t max_events, prt_trace **out);
void prt_trace_destroy(prt_trace *t);

/* Records a span [t0, t1] in seconds of prt_now(). name (the node, "allreduce")
 * and detail (the op, or NULL) are borrowed and must outlive the trace; arg is
 * written as args.bucket when >= 0 (the gradient bucket). NULL t: nothing. */
void prt_trace_span(prt_trace *t, prt_trace_cat cat, const char *name, const char *detail, double t0, double t1,
                    int64_t arg);

/* One recorded span, as prt_trace_events returns them. */
typedef struct prt_trace_event {
    prt_trace_cat cat;
    const char *name;   /* borrowed, as recorded */
    const char *detail; /* borrowed, may be NULL */
    double t0, t1;      /* seconds of prt_now() */
    int64_t arg;        /* bucket, or -1 */
} prt_trace_event;

/* The events recorded so far, in recording order; borrowed until the next
 * record or prt_trace_destroy (read them when no thread is recording). */
const prt_trace_event *prt_trace_events(const prt_trace *t, size_t *n);

/* Events recorded and dropped so far. */
size_t prt_trace_count(const prt_trace *t);
size_t prt_trace_dropped(const prt_trace *t);
const char *prt_trace_cat_name(prt_trace_cat c);

/* Writes the Chrome-trace JSON of every rank to path. Collective when comm has
 * more than one rank: every rank calls it, rank 0 gathers and writes (atomically:
 * a temporary file renamed into place), the others write nothing. comm may be
 * NULL (one rank). Timestamps are microseconds from the earliest event of the
 * job. */
prt_status prt_trace_write(prt_trace *t, struct prt_comm *comm, const char *path);

#endif

/* Reading Chrome traces (the JSON trace event format that `parrots train
 * --timeline` writes, runtime/trace.h) for `parrots timeline-summary`.
 *
 * The file is streamed through libyaml's event parser (JSON is YAML flow
 * syntax), so traces of millions of events never become a tree. Both forms of
 * the format are read: an object with a "traceEvents" array, or a bare array of
 * events. Complete events ("ph": "X") are kept; other phases and unknown keys
 * are ignored.
 *
 *     prt_tl_summary s;
 *     PRT_CHECK(prt_tl_read(ctx, "trace.json", -1, NULL, NULL, &s));
 *     printf("overlap %.2f\n", s.total.comm_s > 0 ? prt_tl_overlap(&s.total) : 0);
 *     prt_tl_summary_free(ctx, &s);
 */
#ifndef PARROTS_TIMELINE_IMPL_H
#define PARROTS_TIMELINE_IMPL_H

#include "runtime/runtime_impl.h"

#include <stdint.h>

/* One complete event as read; strings are borrowed for the callback only. */
typedef struct prt_tl_event {
    const char *name, *cat;
    double ts_us, dur_us;
    int64_t pid, tid;
    int64_t bucket; /* args.bucket, or -1 */
} prt_tl_event;

/* Sums over the events of one rank (pid), or of all of them. */
typedef struct prt_tl_rank {
    int64_t pid;
    double compute_s;      /* cat "compute" */
    double comm_s;         /* cat "comm", name "allreduce", with a bucket: the gradient allreduces */
    double exposed_comm_s; /* cat "wait": the compute thread blocked on an allreduce */
    double other_comm_s;   /* cat "comm", any other (broadcast, barrier, allreduces without a bucket) */
    int64_t steps;         /* cat "step" */
    double step_total_s;
    int64_t events;        /* complete events of this rank */
    double t_begin_us, t_end_us; /* extent of its events */
} prt_tl_rank;

typedef struct prt_tl_summary {
    prt_tl_rank *ranks; /* sorted by pid */
    int n_ranks, cap_ranks;
    prt_tl_rank total;  /* pid -1 */
    int64_t dropped;    /* otherData.dropped, or -1 when the file does not say */
} prt_tl_summary;

/* (comm_s - exposed_comm_s) / comm_s clamped to [0, 1]; call only when comm_s > 0. */
double prt_tl_overlap(const prt_tl_rank *r);
/* The mean step duration, 0 without steps. */
double prt_tl_step_s(const prt_tl_rank *r);

/* Called for every complete event kept (after the --rank filter). A non-OK
 * return stops reading and is returned. */
typedef prt_status (*prt_tl_visit)(void *user, const prt_tl_event *e);

/* Reads path; only_pid >= 0 keeps that rank's events alone (its absence is an
 * error). visit may be NULL. out is filled on success; free with
 * prt_tl_summary_free (also safe after a failure). Errors name the file, the
 * line and column, and what was expected. */
prt_status prt_tl_read(prt_context *ctx, const char *path, int64_t only_pid, prt_tl_visit visit, void *user,
                       prt_tl_summary *out);
void prt_tl_summary_free(prt_context *ctx, prt_tl_summary *s);

/* ---- the picture: plot_timeline.c ----------------------------------------- */

enum { PRT_TL_COMPUTE, PRT_TL_WAIT, PRT_TL_ALLREDUCE, PRT_TL_OTHER_COMM, PRT_TL_KINDS };

/* A span to draw: its kind says the lane (compute and wait: the compute lane;
 * the others: the communication lane). */
typedef struct prt_tl_span {
    double t0_us, t1_us;
    int64_t pid;
    int32_t bucket; /* -1 none */
    int32_t kind;
} prt_tl_span;

/* The kind of a read event, or -1 when it is not drawn (steps, unknown cats). */
int prt_tl_span_kind(const prt_tl_event *e);

/* Writes the timeline of s's ranks as SVG or PNG by the path's ending (other
 * endings: PRT_ERR_USAGE), replacing path atomically. spans are sorted in place. */
prt_status prt_tl_plot(prt_context *ctx, const char *path, const prt_tl_summary *s, prt_tl_span *spans, size_t n);

#endif

/* The scaling model: predicts the step time of data-parallel training on N
 * devices by replaying a compiled training program's schedule — its compute
 * instructions in order on one compute stream, its gradient buckets' allreduces
 * in order on one communication stream — with per-instruction times from a
 * measured (or derived) profile and a ring-allreduce alpha-beta model of the
 * network. docs/scaling.md states the model and every preset's numbers.
 *
 *     prt_profile *pr;
 *     PRT_CHECK(prt_profile_load(ctx, "profiles/cpu-epyc-2core.profile", &pr));
 *     prt_net_spec net;
 *     PRT_CHECK(prt_net_spec_parse(ctx, "h200-ib", &net));
 *     double *t;                                  // seconds per instruction, 1 rank
 *     PRT_CHECK(prt_sim_times(ctx, p, pr, &t));
 *     prt_sim_bucket *b; int nb;
 *     PRT_CHECK(prt_sim_buckets(ctx, p, 0, &b, &nb));   // the program's own buckets
 *     prt_sim_result r;
 *     PRT_CHECK(prt_sim_run(ctx, p, t, b, nb, &net, pr->threads, 64, &r));
 *     printf("%.1f ms per step\n", 1e3 * r.step_s);
 *     prt_free(ctx, t, 0); prt_free(ctx, b, 0); prt_profile_destroy(ctx, pr);
 */
#ifndef PARROTS_SIMULATE_API_H
#define PARROTS_SIMULATE_API_H

#include "vm/vm_impl.h"

#include <stdio.h>

/* ---- profiles -----------------------------------------------------------
 *
 * A profile gives, per op kind (the registry name: conv, conv_bwd_data, ...),
 * the time of one call as t = a + b * flops + c * bytes seconds, where flops is
 * the op's FLOP count (its schema's flops hook) and bytes the bytes of the
 * call's input and output tensors (inputs read only for their shape excluded).
 * The coefficients are non-negative. A `default` model, when present, serves
 * op kinds the profile does not list. The text format is in docs/scaling.md. */
#define PRT_PROFILE_VERSION 1
#define PRT_PROFILE_MAX_BYTES ((size_t)1 << 20)

typedef struct prt_op_time {
    char *op;         /* owned; NULL for the default model */
    double a, b, c;   /* seconds, seconds per FLOP, seconds per byte; all >= 0 */
    int64_t samples;  /* instructions the fit used (0: not measured) */
} prt_op_time;

typedef struct prt_profile {
    char *device;     /* owned: free text */
    char *date;       /* owned: free text, ISO date by convention */
    char *source;     /* owned: how it was made (the command) */
    int threads;      /* CPU threads per rank it was measured with (GPUs: 1) */
    int n_ops;
    prt_op_time *ops; /* owned */
    bool has_default;
    prt_op_time dflt;
} prt_profile;

/* Parses profile text; `name` (the file name) starts every message:
 * "x.profile:7: op 'conv': coefficient b '1e' is not a number". PRT_ERR_PARSE.
 * Caller frees with prt_profile_destroy. */
prt_status prt_profile_parse(prt_context *ctx, const char *name, const char *text, size_t len, prt_profile **out);
/* Reads a file (at most PRT_PROFILE_MAX_BYTES) and parses it. */
prt_status prt_profile_load(prt_context *ctx, const char *path, prt_profile **out);
/* Writes the text format (coefficients round-trip exactly: %.17g). */
prt_status prt_profile_write(prt_context *ctx, const prt_profile *pr, FILE *f);
/* Writes path atomically (a temporary file beside it, then rename). */
prt_status prt_profile_save(prt_context *ctx, const prt_profile *pr, const char *path);
void prt_profile_destroy(prt_context *ctx, prt_profile *pr);
/* The model of op `op`: its own, else the default, else NULL. Borrowed. */
const prt_op_time *prt_profile_find(const prt_profile *pr, const char *op);
/* Adds (or replaces) op's model; name copied. */
prt_status prt_profile_set(prt_context *ctx, prt_profile *pr, const char *op, double a, double b, double c,
                           int64_t samples);
/* An empty profile with the given header fields (copied). */
prt_status prt_profile_new(prt_context *ctx, const char *device, const char *date, const char *source, int threads,
                           prt_profile **out);

/* ---- fitting --------------------------------------------------------------
 *
 * Non-negative least squares of t = a + b*flops + c*bytes over n samples, exact:
 * with three unknowns every support (subset of the coefficients allowed to be
 * non-zero) is solved by unconstrained least squares and the feasible solution
 * with the smallest squared error wins. Columns are scaled to unit norm first.
 * With a > 0 at the optimum, the residuals sum to zero, so the fitted total time
 * of the kind equals the measured one. */
typedef struct prt_fit_sample {
    double flops, bytes, t;
} prt_fit_sample;

/* coef[0..2] = a, b, c. n >= 1. */
prt_status prt_sim_fit(prt_context *ctx, const prt_fit_sample *s, int n, double coef[3]);

/* ---- what each instruction costs ------------------------------------------ */

/* flops[pc] and bytes[pc] of every CALL/RECOMPUTE (0 elsewhere); arrays of
 * p->n_code entries, caller allocates. The program's ops must be resolved. */
prt_status prt_sim_costs(prt_context *ctx, const prt_program *p, int64_t *flops, int64_t *bytes);
/* Seconds per instruction at one rank from a profile: *out gets p->n_code
 * entries (caller frees with prt_free). An op kind the profile lacks (and no
 * default) is PRT_ERR_NOT_FOUND naming the op and a node that uses it. */
prt_status prt_sim_times(prt_context *ctx, const prt_program *p, const prt_profile *pr, double **out);

/* ---- the network ------------------------------------------------------------ */

/* X(name, "description"): how an allreduce crosses nodes (docs/scaling.md). */
#define PRT_SIM_TOPOLOGIES(X)                                                                      \
    X(ring, "one flat ring over all ranks, run as one ring per NIC so each node-crossing link has " \
            "a NIC: bus bandwidth min(intra_bw, nics * inter_bw), every step paying inter_lat")    \
    X(hier, "reduce-scatter inside the node, ring allreduce of each 1/g slice across nodes "       \
            "(g rings sharing the node's NICs), all-gather inside the node")

typedef enum prt_sim_topology {
#define X(name, doc) PRT_SIM_TOPO_##name,
    PRT_SIM_TOPOLOGIES(X)
#undef X
    PRT_SIM_TOPO_COUNT
} prt_sim_topology;

typedef struct prt_net_spec {
    char name[64];        /* the preset, or "custom" */
    int gpus_per_node;    /* ranks per node */
    double intra_bw;      /* bytes/s: the bus bandwidth a ring inside a node achieves */
    double intra_lat;     /* s: per ring step inside a node */
    double inter_bw;      /* bytes/s: per NIC port, achievable */
    double inter_lat;     /* s: per ring step across nodes */
    int nics_per_node;
    int cores_per_node;   /* > 0: ranks of a node share this many cores (CPU runs); 0: no sharing */
    int threads_per_rank; /* 0: the profile's threads */
    prt_sim_topology topology;
} prt_net_spec;

/* X(name, gpus_per_node, intra_bw, intra_lat, inter_bw, inter_lat, nics, cores, topology, "source") */
#define PRT_NET_PRESETS(X)                                                                          \
    X(h200_ib, "h200-ib", 8, 360e9, 2e-6, 20e9, 5e-6, 4, 0, ring,                                    \
      "8 H200 per node on NVLink (450 GB/s per direction, 80% achieved), 4 x 200 Gb/s InfiniBand NDR " \
      "per node (25 GB/s per port, 80% achieved)")                                                   \
    X(cpu_shm, "cpu-shm", 1024, 0.73e9, 11.1e-6, 0.73e9, 11.1e-6, 1, 2, ring,                        \
      "this 2-core machine, Open MPI over shared memory: alpha and bus bandwidth from bench/comm "   \
      "at 2 ranks (bench/RESULTS.md)")

/* A preset name (h200-ib, cpu-shm) or a key=value list (gpus_per_node=8,
 * intra_bw=300e9, intra_lat=2e-6, inter_bw=25e9, inter_lat=5e-6, nics_per_node=4,
 * cores_per_node=0, threads_per_rank=0, topology=ring, preset=h200-ib: start
 * from a preset, then override). Bandwidths in bytes/s, latencies in seconds.
 * PRT_ERR_USAGE with a message naming the bad part. */
prt_status prt_net_spec_parse(prt_context *ctx, const char *text, prt_net_spec *out);
/* "h200-ib, cpu-shm" into buf. */
const char *prt_net_preset_names(char *buf, size_t cap);

/* The ring formula 2(n-1)*alpha + 2(n-1)/n * bytes/bw; 0 for n <= 1. */
double prt_sim_ring_time(int n, double alpha, double bw, double bytes);
/* Allreduce of `bytes` over `ranks` ranks on the network (docs/scaling.md). */
double prt_sim_allreduce_time(const prt_net_spec *net, int ranks, double bytes);
/* Compute time multiplier when ranks share cores: max(1, ranks_per_node *
 * threads_per_rank / cores_per_node); 1 when cores_per_node is 0. */
double prt_sim_slowdown(const prt_net_spec *net, int ranks, int profile_threads);

/* ---- the replay ---------------------------------------------------------------- */

/* A bucket as the replay sees it: its allreduce is queued once instruction
 * `start_after` has run, and instruction `wait_before` may not start before the
 * allreduce finished. */
typedef struct prt_sim_bucket {
    int start_after, wait_before;
    double bytes;
} prt_sim_bucket;

/* bucket_bytes == 0: the program's buckets (prt_program_buckets; none when it has
 * no ALLREDUCE instructions). bucket_bytes > 0: buckets derived from the program
 * the way the scheduler makes them (scheduler_impl.h: gradients in the order
 * their last write runs, the first bucket closing at
 * min(PRT_SCHED_FIRST_BUCKET_BYTES, bucket_bytes), the others at bucket_bytes),
 * each started after the last write of its gradients and waited for before the
 * first optimizer update reading one of them. *out: caller frees with prt_free. */
prt_status prt_sim_buckets(prt_context *ctx, const prt_program *p, size_t bucket_bytes, prt_sim_bucket **out,
                           int *n);

typedef struct prt_sim_result {
    int ranks;
    double step_s;          /* the step: the end of the last instruction */
    double compute_s;       /* sum of compute times (after the slowdown) */
    double comm_s;          /* sum of the allreduce times */
    double exposed_comm_s;  /* time compute stalled in waits */
    double overlap_fraction; /* (comm - exposed) / comm; 1 when there is no communication */
    double slowdown;        /* the compute multiplier applied */
} prt_sim_result;

/* Replays a straight-line program (LOOP or JMP: PRT_ERR_UNSUPPORTED) on `ranks`
 * ranks. t: seconds per instruction at one rank (prt_sim_times). */
prt_status prt_sim_run(prt_context *ctx, const prt_program *p, const double *t, const prt_sim_bucket *b, int nb,
                       const prt_net_spec *net, int profile_threads, int ranks, prt_sim_result *out);

/* ---- derived (roofline) profiles ------------------------------------------------ */

/* X(op, compute efficiency, memory efficiency): the share of peak FLOP/s and of
 * peak memory bandwidth an op kind reaches before calibration; see
 * docs/scaling.md. Kinds not listed take the `default` row. */
#define PRT_ROOFLINE_OPS(X)            \
    X(conv, 0.60, 0.70)                \
    X(conv_bwd_data, 0.55, 0.70)       \
    X(conv_bwd_weight, 0.50, 0.70)     \
    X(linear, 0.60, 0.70)              \
    X(linear_bwd_data, 0.55, 0.70)     \
    X(linear_bwd_weight, 0.50, 0.70)   \
    X(default, 0.10, 0.70)

typedef struct prt_roofline {
    const char *device;
    double peak_flops;  /* FLOP/s the compute efficiencies refer to */
    double mem_bw;      /* bytes/s */
    double launch_s;    /* fixed cost per instruction */
} prt_roofline;

/* A profile for program p from peak figures, the efficiencies above and one
 * calibration factor k (every b and c divided by it) chosen so that the replay
 * of p on one rank takes target_s (0: no calibration, k = 1). *k_out may be NULL. */
prt_status prt_profile_roofline(prt_context *ctx, const prt_program *p, const prt_roofline *rf, double target_s,
                                const char *date, const char *source, prt_profile **out, double *k_out);

#endif

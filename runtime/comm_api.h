/* The comm backend: collectives between the ranks of a data-parallel job.
 *
 * A communicator is a table of functions (like the device backend) behind one
 * handle. Two backends exist: MPI (runtime/comm_mpi.c, for `mpirun -np N`) and
 * local (runtime/comm_local.c, one rank, every collective is a no-op), so the
 * same code path runs with and without MPI. NCCL (runtime/cuda/comm_nccl.c,
 * declared at the end) is a third behind the same table.
 *
 *     prt_comm_options o = {.struct_size = sizeof o, .timeout_s = 300};
 *     prt_comm *comm;
 *     PRT_CHECK(prt_comm_create_mpi(ctx, &o, &comm));      // or prt_comm_create_local
 *     PRT_CHECK(prt_comm_check_same(comm, program_hash, "compiled program"));
 *     prt_comm_handle h;
 *     PRT_CHECK(prt_comm_allreduce_start(comm, grads, n, PRT_F32, PRT_COMM_SUM, &h));
 *     ...                                   // compute continues; the comm thread reduces
 *     PRT_CHECK(prt_comm_wait(comm, h));    // grads now hold the sum over ranks
 *     prt_comm_destroy(comm);
 *
 * Ordering: every operation (allreduce, broadcast, barrier, check_same) runs on
 * the communicator's own thread in the order it was issued, so the collective
 * order is the caller's issue order on every rank. allreduce_start returns at
 * once; the other calls block until their operation finished.
 *
 * Threads: one caller thread at a time per communicator (the VM's thread). The
 * buffer of an allreduce belongs to the communicator from start until its wait
 * returned.
 *
 * Failures: an operation that does not complete within options.timeout_s
 * (a rank died, stopped responding, or skipped the collective) fails with
 * PRT_ERR_BACKEND and a message naming the operation; the communicator is then
 * broken: every later operation fails with the same message. The buffers of the
 * operations that timed out may still be written by the transport until
 * prt_comm_destroy returned, so keep them until then; after a failure the
 * process is expected to clean up and exit.
 */
#ifndef PARROTS_COMM_API_H
#define PARROTS_COMM_API_H

#include "runtime/runtime_impl.h"

typedef struct prt_comm prt_comm;

/* Identifies one started allreduce; 0 is never a valid handle. */
typedef uint64_t prt_comm_handle;

/* SUM adds the buffers of all ranks; AVG then multiplies by 1/size (on the
 * communication thread), which is what data-parallel gradients want. */
typedef enum prt_comm_op { PRT_COMM_SUM = 0, PRT_COMM_AVG = 1 } prt_comm_op;

struct prt_trace;

typedef struct prt_comm_options {
    size_t struct_size; /* sizeof(prt_comm_options) */
    double timeout_s;   /* per operation; <= 0: the default, 300 s */
} prt_comm_options;

#define PRT_COMM_DEFAULT_TIMEOUT_S 300.0

/* The backend table. Frozen layout: struct_size first; new slots are appended.
 * The core (runtime/comm.c) validates arguments before calling a slot. */
typedef struct prt_comm_iface {
    size_t struct_size;
    const char *name; /* "mpi", "local" */
    /* Queues an in-place reduction of count elements; *out identifies it. tag
     * labels it in timelines (the gradient bucket; -1 none). */
    prt_status (*allreduce_start)(prt_comm *c, void *buf, size_t count, prt_dtype t,
                                  prt_comm_op op, int tag, prt_comm_handle *out);
    /* Blocks until h (and every operation issued before it) finished. */
    prt_status (*wait)(prt_comm *c, prt_comm_handle h);
    /* Copies bytes of root's buf into buf on every other rank. */
    prt_status (*broadcast)(prt_comm *c, void *buf, size_t bytes, int root);
    prt_status (*barrier)(prt_comm *c);
    /* out[r] = value of rank r (out has size entries). */
    prt_status (*allgather_u64)(prt_comm *c, uint64_t value, uint64_t *out);
    void (*destroy)(prt_comm *c);
    /* root receives every rank's bytes, in rank order, in one buffer *out
     * (allocated with prt_malloc, caller frees with prt_free(ctx, p, 0)) with
     * sizes[r] per rank (size entries, caller allocates); others get *out NULL. */
    prt_status (*gather_bytes)(prt_comm *c, const void *buf, size_t bytes, int root, void **out,
                               size_t *sizes);
    void (*abort)(prt_comm *c, int code); /* NULL: nothing to do */
} prt_comm_iface;

struct prt_comm {
    const prt_comm_iface *iface;
    prt_context *ctx;
    int rank, size;             /* in the job */
    int local_rank, local_size; /* among the ranks of this machine */
    double timeout_s;
    void *impl;
    struct prt_trace *trace;    /* when set (prt_comm_set_trace), each operation's span is recorded */
};

/* The MPI backend. Initialises MPI (asking for MPI_THREAD_MULTIPLE, needing at
 * least MPI_THREAD_SERIALIZED) unless the program already did, duplicates
 * MPI_COMM_WORLD, and starts the communication thread. opts may be NULL. The
 * communicator finalises MPI on destroy only if it initialised it. In a build
 * without MPI: PRT_ERR_UNSUPPORTED. Caller frees with prt_comm_destroy. */
prt_status prt_comm_create_mpi(prt_context *ctx, const prt_comm_options *opts, prt_comm **out);
/* One rank (rank 0 of 1): allreduce and barrier do nothing. */
prt_status prt_comm_create_local(prt_context *ctx, const prt_comm_options *opts, prt_comm **out);
void prt_comm_destroy(prt_comm *c);

static inline int prt_comm_rank(const prt_comm *c) { return c->rank; }
static inline int prt_comm_size(const prt_comm *c) { return c->size; }
static inline int prt_comm_local_rank(const prt_comm *c) { return c->local_rank; }
static inline const char *prt_comm_backend(const prt_comm *c) { return c->iface->name; }

/* Sums count f32 elements of buf over all ranks, in place, on the comm thread. */
prt_status prt_comm_allreduce_start(prt_comm *c, void *buf, size_t count, prt_dtype t,
                                    prt_comm_op op, prt_comm_handle *out);
/* The same with a timeline label (the bucket number; -1 none). */
prt_status prt_comm_allreduce_start_tagged(prt_comm *c, void *buf, size_t count, prt_dtype t,
                                           prt_comm_op op, int tag, prt_comm_handle *out);
prt_status prt_comm_wait(prt_comm *c, prt_comm_handle h);
/* out[r] = value of rank r (out has size entries, caller allocates). */
prt_status prt_comm_allgather_u64(prt_comm *c, uint64_t value, uint64_t *out);
/* Collects bytes from every rank at root (see prt_comm_iface.gather_bytes). */
prt_status prt_comm_gather_bytes(prt_comm *c, const void *buf, size_t bytes, int root, void **out,
                                 size_t *sizes);
/* Ends every process of the job (the command line calls it after reporting a
 * failure that other ranks cannot see, so no rank is left waiting). MPI:
 * MPI_Abort; local: nothing (returns). Never returns for MPI. */
void prt_comm_abort(prt_comm *c, int code);

/* Records every later operation's span (on the communication thread) in trace,
 * which must outlive the communicator or be unset with NULL first. */
void prt_comm_set_trace(prt_comm *c, struct prt_trace *trace);
prt_status prt_comm_broadcast(prt_comm *c, void *buf, size_t bytes, int root);
prt_status prt_comm_barrier(prt_comm *c);

/* Every rank gives a hash of something that must agree (the compiled program,
 * the data set size); on disagreement every rank fails with PRT_ERR_INVALID and
 * "ranks 1, 3 have a different compiled program (hash ...) than rank 0 (hash ...)".
 * what: "compiled program". */
prt_status prt_comm_check_same(prt_comm *c, uint64_t hash, const char *what);

/* Shared by the backends (runtime/comm.c): fills the common fields. */
prt_status prt_comm_init_common(prt_context *ctx, const prt_comm_options *opts,
                                const prt_comm_iface *iface, prt_comm *c);

/* ---- the NCCL backend (runtime/cuda/comm_nccl.c) ------------------------
 *
 * A communicator whose allreduce and broadcast run NCCL on gpu's communication
 * stream, ordered after the compute stream's work by events. bootstrap (the MPI
 * communicator; borrowed, must outlive this one) shares the ncclUniqueId from
 * rank 0 and carries the host-side calls (barrier, check_same, gather_bytes,
 * broadcast of host memory); rank, size and local rank are its. gpu is this
 * rank's device (prt_cuda_device_create(ctx, local_rank, ...)); distinct ranks
 * need distinct GPUs.
 *
 *     PRT_CHECK(prt_comm_create_mpi(ctx, &o, &mpi));
 *     PRT_CHECK(prt_cuda_device_create(ctx, prt_comm_local_rank(mpi), &gpu));
 *     PRT_CHECK(prt_comm_create_nccl(ctx, &o, mpi, gpu, &comm));
 *     ... allreduce_start(comm, device_grads, ...); wait(comm, h); update kernel ...
 *     PRT_CHECK(prt_comm_nccl_check(comm));    // each step, before reading results on the host
 *     prt_comm_destroy(comm); prt_comm_destroy(mpi);
 *
 * Buffers: allreduce_start takes memory of gpu (anything else fails with
 * PRT_ERR_INVALID and the communicator stays usable); broadcast takes memory of
 * gpu (ncclBroadcast, blocks until done) or host memory (the bootstrap's).
 * wait(h) does not block the host: the compute stream waits for h, so kernels
 * launched after it see the reduced data.
 * Failures: set-up, every NCCL call and every operation are bounded by
 * options.timeout_s; a timeout or NCCL error aborts the NCCL communicator
 * (ncclCommAbort) and fails with PRT_ERR_BACKEND, e.g. "rank 0: allreduce #3
 * (gradient bucket 2) of 1024 f32 elements did not complete within 5 s (...)";
 * the communicator is then broken. Without a CUDA device (gpu NULL or not a
 * CUDA device), or in a build without CUDA and NCCL: PRT_ERR_UNSUPPORTED.
 * Caller frees with prt_comm_destroy (before bootstrap and gpu). */
prt_status prt_comm_create_nccl(prt_context *ctx, const prt_comm_options *opts, prt_comm *bootstrap,
                                struct prt_device *gpu, prt_comm **out);
/* Waits, at most options.timeout_s, until every operation started on an NCCL
 * communicator and the compute stream's work so far completed, surfacing NCCL
 * errors and hangs as above. The VM calls it once per step before any host
 * synchronisation of the device (a plain cudaStreamSynchronize behind a hung
 * collective would never return). Any other backend: PRT_OK at once. Not
 * while the compute stream is being captured (PRT_ERR_USAGE). */
prt_status prt_comm_nccl_check(prt_comm *c);

#endif

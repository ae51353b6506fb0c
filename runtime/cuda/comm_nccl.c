/* The NCCL comm backend: gradient allreduces on the GPU, on the device's
 * communication stream, ordered against the compute stream by events.
 *
 * Set-up: rank 0 makes the ncclUniqueId and broadcasts it over the bootstrap
 * communicator (the MPI one); every rank then joins with its own GPU. The
 * NCCL communicator is created non-blocking (ncclConfig_t.blocking = 0), so
 * that no NCCL call can hold the host thread: set-up, enqueueing and teardown
 * return ncclInProgress and this file polls ncclCommGetAsyncError against the
 * deadline (options.timeout_s), aborting the communicator when it passes.
 *
 * An allreduce:
 *   compute stream:  ... last gradient kernel -> [ready]        wait(done) -> update kernel
 *   comm stream:                       wait(ready) -> ncclAllReduce -> [done]
 * allreduce_start records `ready` on the compute stream, makes the comm stream
 * wait for it, enqueues ncclAllReduce, and records the operation's own `done`
 * event. wait(h) makes the compute stream wait for h's `done`: no host
 * blocking, so the host runs ahead and the update kernels queue behind the
 * reduction.
 *
 * Hangs: because wait does not block the host, a collective that never
 * completes (a rank died or skipped it) would show up only where the host
 * next synchronises the device, and there a plain cudaStreamSynchronize would
 * hang forever. So each started operation keeps a deadline, and the host sees
 * it pass in three places:
 *   - every allreduce_start and wait reaps the finished operations
 *     (cudaEventQuery, non-blocking) and fails when the oldest unfinished one
 *     is past its deadline, or NCCL reports an asynchronous error;
 *   - prt_comm_nccl_check(comm) waits, bounded, for every started operation and
 *     for the compute stream; the VM calls it at the end of each step, before it
 *     reads the loss (its only host synchronisation in the step);
 *   - broadcast and destroy wait, bounded, themselves.
 * On a timeout or an NCCL error the communicator is aborted (ncclCommAbort),
 * which also ends the NCCL kernels, so the compute stream behind them drains
 * instead of hanging; the message names the operation, as the MPI backend's:
 *   "rank 0: allreduce #3 (gradient bucket 2) of 1024 f32 elements did not
 *    complete within 5 s (NCCL reports no error: ...)".
 * The alternative, a host-blocking wait (poll the done event in wait), is
 * simpler but stalls the host on every bucket until its reduction finished,
 * so the update kernels are launched late, and it cannot be used while the
 * step is being captured into a CUDA graph.
 *
 * CUDA graphs: while the compute stream is capturing, the same events join
 * the two streams inside the graph; those operations have no host-side
 * deadline (they run at replay), and prt_comm_nccl_check after a replay bounds
 * them through the compute stream.
 *
 * Pointer kinds: allreduce_start and broadcast take memory of this rank's GPU
 * (a broadcast of host memory goes to the bootstrap communicator); barrier,
 * allgather_u64 and gather_bytes are host-side and go to the bootstrap.
 */
#include "runtime/comm_api.h"
#include "runtime/cuda_api.h"

#include <string.h>

#if PARROTS_HAVE_CUDA && defined(PARROTS_HAVE_NCCL) && PARROTS_HAVE_NCCL

#include "runtime/cuda/cuda_util.h"

#include <cuda_runtime_api.h>
#include <nccl.h>
#include <sched.h>
#include <time.h>

/* Polls before the host starts sleeping between queries. */
#define SPIN_POLLS 1000

typedef enum op_kind { OP_ALLREDUCE, OP_BROADCAST } op_kind;

/* A started operation not yet seen complete. */
typedef struct nccl_op {
    op_kind kind;
    prt_comm_handle seq;
    cudaEvent_t done; /* recorded on the comm stream after the collective */
    double deadline;  /* prt_now() at start + timeout */
    size_t count;     /* elements (allreduce) or bytes (broadcast) */
    int tag, root;
    bool captured; /* started during graph capture: no host-side deadline */
} nccl_op;

typedef struct nccl_comm {
    prt_comm base;
    prt_comm *boot;   /* borrowed: outlives this communicator */
    prt_device *gpu;  /* borrowed */
    int dev;          /* CUDA ordinal */
    ncclComm_t nc;    /* NULL once aborted or destroyed */
    cudaStream_t compute, comm;
    cudaEvent_t ready, fence;
    /* ring of started operations, oldest first */
    nccl_op *ops;
    int ocap, ohead, olen;
    /* events free for reuse; and events recorded into a CUDA graph, kept until destroy */
    cudaEvent_t *pool, *kept;
    int npool, pcap, nkept, kcap;
    prt_comm_handle issued;
    bool broken;
    prt_status fail_st;
    char fail_msg[512];
} nccl_comm;

static const prt_comm_iface nccl_iface;

/* "allreduce #3 (gradient bucket 2) of 1024 f32 elements"; seq 0: not numbered */
static void describe(const nccl_op *op, char *buf, size_t cap) {
    char num[32] = "";
    if (op->seq) snprintf(num, sizeof num, " #%llu", (unsigned long long)op->seq);
    if (op->kind == OP_BROADCAST)
        snprintf(buf, cap, "broadcast%s of %zu bytes from rank %d", num, op->count, op->root);
    else if (op->tag >= 0)
        snprintf(buf, cap, "allreduce%s (gradient bucket %d) of %zu f32 elements", num, op->tag, op->count);
    else
        snprintf(buf, cap, "allreduce%s of %zu f32 elements", num, op->count);
}

/* "invalid usage (run with NCCL_DEBUG=WARN for details): <last error>" */
static void nccl_message(ncclComm_t nc, ncclResult_t r, char *buf, size_t cap) {
    const char *last = ncclGetLastError(nc);
    if (last && *last)
        snprintf(buf, cap, "%s: %s", ncclGetErrorString(r), last);
    else
        snprintf(buf, cap, "%s", ncclGetErrorString(r));
}

/* Marks the communicator broken with msg, aborts the NCCL communicator (its
 * kernels end, so the streams behind them drain), and records msg in ctx. */
static prt_status fail(nccl_comm *n, prt_status st, const char *msg) {
    if (!n->broken) {
        n->broken = true;
        n->fail_st = st;
        snprintf(n->fail_msg, sizeof n->fail_msg, "%s", msg);
    }
    if (n->nc) {
        ncclCommAbort(n->nc); /* the error already reported is the one that matters */
        n->nc = NULL;
    }
    return prt_error(n->base.ctx, st, "%s", msg);
}

/* "CUDA: cudaEventRecord: <description> (<name>) while running allreduce #3 of
 * 1024 f32 elements on rank 0" (runtime/cuda/cuda_util.h), then fail. */
static prt_status fail_cuda(nccl_comm *n, const char *what, const char *call, cudaError_t e) {
    char msg[512];
    prt_status st = prt_cuda_error(n->base.ctx, e, call, "running %s on rank %d", what, n->base.rank);
    snprintf(msg, sizeof msg, "%s", prt_last_error(n->base.ctx));
    return fail(n, st, msg);
}

static prt_status check_healthy(nccl_comm *n) {
    if (!n->broken) return PRT_OK;
    return prt_error(n->base.ctx, n->fail_st, "NCCL communicator: an earlier operation failed: %s", n->fail_msg);
}

/* NCCL's asynchronous error, if any, as a failure of `what`. */
static prt_status poll_async(nccl_comm *n, const char *what) {
    ncclResult_t a = ncclSuccess, r = ncclCommGetAsyncError(n->nc, &a);
    if (r == ncclSuccess && (a == ncclSuccess || a == ncclInProgress)) return PRT_OK;
    char err[320], msg[512];
    nccl_message(n->nc, r != ncclSuccess ? r : a, err, sizeof err);
    snprintf(msg, sizeof msg, "rank %d: %s failed: NCCL: %s%s", n->base.rank, what, err,
             r != ncclSuccess ? " (from ncclCommGetAsyncError)" : "");
    return fail(n, PRT_ERR_BACKEND, msg);
}

static void pause_poll(long polls) {
    if (polls < SPIN_POLLS) {
        sched_yield();
        return;
    }
    struct timespec ts = {0, 100000}; /* 0.1 ms */
    nanosleep(&ts, NULL);
}

/* After an NCCL call on the non-blocking communicator returned r: waits,
 * bounded, until the call's effect is complete (ncclInProgress -> ncclSuccess).
 * call: "ncclAllReduce"; what: the operation, for messages. */
static prt_status settle(nccl_comm *n, ncclResult_t r, const char *call, const char *what, double deadline) {
    char err[320], msg[512];
    if (r != ncclSuccess && r != ncclInProgress) {
        nccl_message(n->nc, r, err, sizeof err);
        snprintf(msg, sizeof msg, "rank %d: %s: %s failed: NCCL: %s", n->base.rank, what, call, err);
        return fail(n, PRT_ERR_BACKEND, msg);
    }
    for (long polls = 0;; polls++) {
        ncclResult_t a = ncclSuccess;
        r = ncclCommGetAsyncError(n->nc, &a);
        if (r != ncclSuccess || (a != ncclSuccess && a != ncclInProgress)) {
            nccl_message(n->nc, r != ncclSuccess ? r : a, err, sizeof err);
            snprintf(msg, sizeof msg, "rank %d: %s: %s failed: NCCL: %s", n->base.rank, what, call, err);
            return fail(n, PRT_ERR_BACKEND, msg);
        }
        if (a == ncclSuccess) return PRT_OK;
        if (prt_now() > deadline) {
            snprintf(msg, sizeof msg,
                     "rank %d: %s did not complete within %g s (%s still in progress: a rank died, stopped "
                     "responding, or did not issue this collective; the NCCL communicator was aborted)",
                     n->base.rank, what, n->base.timeout_s, call);
            return fail(n, PRT_ERR_BACKEND, msg);
        }
        pause_poll(polls);
    }
}

static prt_status timed_out(nccl_comm *n, const nccl_op *op) {
    char what[160], msg[512];
    describe(op, what, sizeof what);
    snprintf(msg, sizeof msg,
             "rank %d: %s did not complete within %g s (NCCL reports no error: a rank died, stopped responding, "
             "or did not issue this collective; the NCCL communicator was aborted)",
             n->base.rank, what, n->base.timeout_s);
    return fail(n, PRT_ERR_BACKEND, msg);
}

static prt_status take_event(nccl_comm *n, cudaEvent_t *out) {
    if (n->npool > 0) {
        *out = n->pool[--n->npool];
        return PRT_OK;
    }
    cudaError_t e = cudaEventCreateWithFlags(out, cudaEventDisableTiming);
    if (e != cudaSuccess) return fail_cuda(n, "NCCL communicator", "cudaEventCreateWithFlags", e);
    return PRT_OK;
}

/* Returns ev for reuse (or keeps it till destroy: a graph may record it). */
static prt_status give_event(nccl_comm *n, cudaEvent_t ev, bool captured) {
    cudaEvent_t **arr = captured ? &n->kept : &n->pool;
    int *len = captured ? &n->nkept : &n->npool, *cap = captured ? &n->kcap : &n->pcap;
    if (*len == *cap) {
        prt_status st = prt_grow(n->base.ctx, (void **)arr, cap, *len + 1, sizeof **arr);
        if (st != PRT_OK) {
            cudaEventDestroy(ev);
            return st;
        }
    }
    (*arr)[(*len)++] = ev;
    return PRT_OK;
}

/* Drops the finished operations from the head of the ring, without blocking.
 * Operations complete in order on the comm stream, so the first unfinished one
 * ends the scan; if it is past its deadline, the communicator fails. */
static prt_status reap(nccl_comm *n) {
    while (n->olen > 0) {
        nccl_op *op = &n->ops[n->ohead];
        if (!op->captured) {
            cudaError_t e = cudaEventQuery(op->done);
            if (e == cudaErrorNotReady) return prt_now() > op->deadline ? timed_out(n, op) : PRT_OK;
            if (e != cudaSuccess) {
                char what[160];
                describe(op, what, sizeof what);
                return fail_cuda(n, what, "cudaEventQuery", e);
            }
        }
        PRT_CHECK(give_event(n, op->done, op->captured));
        n->ohead = (n->ohead + 1) % n->ocap;
        n->olen--;
    }
    return PRT_OK;
}

/* Whether the compute stream is being captured into a CUDA graph. */
static prt_status capturing(nccl_comm *n, const char *what, bool *out) {
    enum cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    cudaError_t e = cudaStreamIsCapturing(n->compute, &cs);
    if (e != cudaSuccess) return fail_cuda(n, what, "cudaStreamIsCapturing", e);
    *out = cs != cudaStreamCaptureStatusNone;
    return PRT_OK;
}

/* Healthy, no NCCL error, no operation past its deadline. During a capture
 * the events are not queried (the graph's operations have not run). */
static prt_status poll_comm(nccl_comm *n, bool capture) {
    PRT_CHECK(check_healthy(n));
    char what[160] = "an NCCL operation";
    if (n->olen > 0) describe(&n->ops[n->ohead], what, sizeof what);
    PRT_CHECK(poll_async(n, what));
    return capture ? PRT_OK : reap(n);
}

static prt_status push_op(nccl_comm *n, const nccl_op *op) {
    if (n->olen == n->ocap) {
        int cap = n->ocap ? 2 * n->ocap : 16;
        nccl_op *q = prt_calloc(n->base.ctx, (size_t)cap, sizeof *q);
        if (!q) return prt_error(n->base.ctx, PRT_ERR_NOMEM, "NCCL communicator: %d outstanding operations", cap);
        for (int i = 0; i < n->olen; i++) q[i] = n->ops[(n->ohead + i) % n->ocap];
        prt_free(n->base.ctx, n->ops, (size_t)n->ocap * sizeof *q);
        n->ops = q;
        n->ocap = cap;
        n->ohead = 0;
    }
    n->ops[(n->ohead + n->olen) % n->ocap] = *op;
    n->olen++;
    return PRT_OK;
}

/* Which memory p is: 1 this rank's GPU, 0 host, -1 another GPU. */
static int pointer_kind(nccl_comm *n, const void *p, int *other) {
    struct cudaPointerAttributes a;
    memset(&a, 0, sizeof a);
    if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
        cudaGetLastError(); /* not sticky; an unknown pointer is host memory */
        return 0;
    }
    if (a.type != cudaMemoryTypeDevice && a.type != cudaMemoryTypeManaged) return 0;
    *other = a.device;
    return a.device == n->dev ? 1 : -1;
}

static prt_status bad_pointer(nccl_comm *n, const nccl_op *op, int kind, int other) {
    char what[160];
    describe(op, what, sizeof what);
    if (kind == 0)
        return prt_error(n->base.ctx, PRT_ERR_INVALID,
                         "rank %d: %s: the buffer is host memory, not memory of CUDA device %d (the NCCL "
                         "communicator reduces device memory)",
                         n->base.rank, what, n->dev);
    return prt_error(n->base.ctx, PRT_ERR_INVALID,
                     "rank %d: %s: the buffer is memory of CUDA device %d, not of this rank's CUDA device %d",
                     n->base.rank, what, other, n->dev);
}

/* Orders the comm stream after the compute stream's work so far. */
static prt_status join_compute(nccl_comm *n, const char *what) {
    cudaError_t e;
    if ((e = cudaEventRecord(n->ready, n->compute)) != cudaSuccess) return fail_cuda(n, what, "cudaEventRecord", e);
    if ((e = cudaStreamWaitEvent(n->comm, n->ready, 0)) != cudaSuccess)
        return fail_cuda(n, what, "cudaStreamWaitEvent", e);
    return PRT_OK;
}

static prt_status nccl_allreduce_start(prt_comm *c, void *buf, size_t count, prt_dtype t, prt_comm_op rop, int tag,
                                       prt_comm_handle *out) {
    nccl_comm *n = (nccl_comm *)c;
    nccl_op op = {.kind = OP_ALLREDUCE, .count = count, .tag = tag};
    PRT_CHECK(capturing(n, "allreduce", &op.captured));
    PRT_CHECK(poll_comm(n, op.captured));
    int other = -1, kind = count ? pointer_kind(n, buf, &other) : 1;
    if (kind != 1) return bad_pointer(n, &op, kind, other);
    op.seq = n->issued + 1;
    op.deadline = prt_now() + c->timeout_s;
    char what[160];
    describe(&op, what, sizeof what);
    PRT_CHECK(join_compute(n, what));
    /* zero elements: a no-op on every rank alike, so NCCL is not called; the
     * handle still orders like any other */
    if (count) {
        ncclResult_t r = ncclAllReduce(buf, buf, count, ncclFloat32, rop == PRT_COMM_AVG ? ncclAvg : ncclSum,
                                       n->nc, n->comm);
        PRT_CHECK(settle(n, r, "ncclAllReduce", what, op.deadline));
    }
    PRT_CHECK(take_event(n, &op.done));
    cudaError_t e = cudaEventRecord(op.done, n->comm);
    if (e != cudaSuccess) {
        cudaEventDestroy(op.done);
        return fail_cuda(n, what, "cudaEventRecord", e);
    }
    PRT_CHECK(push_op(n, &op));
    n->issued = op.seq;
    *out = op.seq;
    return PRT_OK;
}

static prt_status nccl_wait(prt_comm *c, prt_comm_handle h) {
    nccl_comm *n = (nccl_comm *)c;
    if (h > n->issued)
        return prt_error(c->ctx, PRT_ERR_INVALID, "comm wait: handle %llu was never issued", (unsigned long long)h);
    bool capture = false;
    PRT_CHECK(capturing(n, "comm wait", &capture));
    PRT_CHECK(poll_comm(n, capture));
    /* h finished already (reaped): nothing to order. Otherwise its done event
     * covers every earlier operation too: the comm stream runs them in order. */
    for (int i = 0; i < n->olen; i++) {
        nccl_op *op = &n->ops[(n->ohead + i) % n->ocap];
        if (op->seq != h) continue;
        cudaError_t e = cudaStreamWaitEvent(n->compute, op->done, 0);
        if (e != cudaSuccess) {
            char what[160];
            describe(op, what, sizeof what);
            return fail_cuda(n, what, "cudaStreamWaitEvent", e);
        }
        break;
    }
    return PRT_OK;
}

/* Bounded host wait: every started operation, and the compute stream's work
 * issued so far (which, after wait(h), includes waiting for h). */
static prt_status drain(nccl_comm *n) {
    PRT_CHECK(check_healthy(n));
    bool capture = false;
    PRT_CHECK(capturing(n, "NCCL communicator check", &capture));
    cudaError_t e;
    if (capture)
        return prt_error(n->base.ctx, PRT_ERR_USAGE,
                         "NCCL communicator check: the compute stream is being captured into a CUDA graph; check "
                         "after the capture ended");
    if ((e = cudaEventRecord(n->fence, n->compute)) != cudaSuccess)
        return fail_cuda(n, "NCCL communicator check", "cudaEventRecord", e);
    double deadline = prt_now() + n->base.timeout_s;
    for (long polls = 0;; polls++) {
        PRT_CHECK(poll_comm(n, false));
        if (n->olen == 0) {
            e = cudaEventQuery(n->fence);
            if (e == cudaSuccess) return PRT_OK;
            if (e != cudaErrorNotReady)
                return fail_cuda(n, "the compute stream's work", "cudaEventQuery", e);
            if (prt_now() > deadline) {
                char msg[512];
                snprintf(msg, sizeof msg,
                         "rank %d: the compute stream's work (waiting for NCCL operations up to #%llu) did not "
                         "complete within %g s (NCCL reports no error: a rank died, stopped responding, or did not "
                         "issue a collective of a CUDA graph replay; the NCCL communicator was aborted)",
                         n->base.rank, (unsigned long long)n->issued, n->base.timeout_s);
                return fail(n, PRT_ERR_BACKEND, msg);
            }
        }
        pause_poll(polls);
    }
}

prt_status prt_comm_nccl_check(prt_comm *c) {
    if (!c || c->iface != &nccl_iface) return PRT_OK;
    return drain((nccl_comm *)c);
}

/* Device memory: ncclBroadcast on the comm stream, after the compute stream's
 * work, then a bounded wait (the call blocks, like the MPI backend's). Host
 * memory: the bootstrap's broadcast. */
static prt_status nccl_broadcast(prt_comm *c, void *buf, size_t bytes, int root) {
    nccl_comm *n = (nccl_comm *)c;
    nccl_op op = {.kind = OP_BROADCAST, .count = bytes, .root = root, .tag = -1};
    bool capture = false;
    PRT_CHECK(capturing(n, "broadcast", &capture));
    if (capture)
        return prt_error(c->ctx, PRT_ERR_USAGE,
                         "rank %d: broadcast: not allowed while the compute stream is being captured into a CUDA "
                         "graph (it blocks until done)",
                         c->rank);
    PRT_CHECK(poll_comm(n, false));
    int other = -1, kind = bytes ? pointer_kind(n, buf, &other) : 0;
    if (kind == 0) return prt_comm_broadcast(n->boot, buf, bytes, root);
    if (kind < 0) return bad_pointer(n, &op, kind, other);
    op.seq = n->issued + 1;
    op.deadline = prt_now() + c->timeout_s;
    char what[160];
    describe(&op, what, sizeof what);
    PRT_CHECK(join_compute(n, what));
    ncclResult_t r = ncclBroadcast(buf, buf, bytes, ncclUint8, root, n->nc, n->comm);
    PRT_CHECK(settle(n, r, "ncclBroadcast", what, op.deadline));
    PRT_CHECK(take_event(n, &op.done));
    cudaError_t e = cudaEventRecord(op.done, n->comm);
    if (e != cudaSuccess) {
        cudaEventDestroy(op.done);
        return fail_cuda(n, what, "cudaEventRecord", e);
    }
    PRT_CHECK(push_op(n, &op));
    n->issued = op.seq;
    /* later compute-stream work sees the broadcast data */
    if ((e = cudaStreamWaitEvent(n->compute, op.done, 0)) != cudaSuccess)
        return fail_cuda(n, what, "cudaStreamWaitEvent", e);
    for (long polls = 0; n->olen > 0; polls++) {
        PRT_CHECK(poll_comm(n, false));
        pause_poll(polls);
    }
    return PRT_OK;
}

static prt_status nccl_barrier(prt_comm *c) { return prt_comm_barrier(((nccl_comm *)c)->boot); }

static prt_status nccl_allgather_u64(prt_comm *c, uint64_t value, uint64_t *out) {
    prt_comm *b = ((nccl_comm *)c)->boot;
    return prt_comm_allgather_u64(b, value, out);
}

static prt_status nccl_gather_bytes(prt_comm *c, const void *buf, size_t bytes, int root, void **out,
                                    size_t *sizes) {
    return prt_comm_gather_bytes(((nccl_comm *)c)->boot, buf, bytes, root, out, sizes);
}

static void release(nccl_comm *n) {
    prt_context *ctx = n->base.ctx;
    if (n->nc) {
        /* a healthy communicator ends cleanly: its operations finish, then
         * ncclCommFinalize (bounded); anything else aborts */
        bool clean = drain(n) == PRT_OK && n->nc;
        if (clean) {
            double deadline = prt_now() + n->base.timeout_s;
            clean = settle(n, ncclCommFinalize(n->nc), "ncclCommFinalize", "NCCL communicator teardown", deadline) ==
                        PRT_OK &&
                    n->nc;
        }
        if (!clean) {
            prt_log_warn(ctx, "%s", prt_last_error(ctx));
            if (n->nc) ncclCommAbort(n->nc);
        } else {
            ncclCommDestroy(n->nc);
        }
        n->nc = NULL;
    }
    for (int i = 0; i < n->olen; i++) cudaEventDestroy(n->ops[(n->ohead + i) % n->ocap].done);
    for (int i = 0; i < n->npool; i++) cudaEventDestroy(n->pool[i]);
    for (int i = 0; i < n->nkept; i++) cudaEventDestroy(n->kept[i]);
    if (n->ready) cudaEventDestroy(n->ready);
    if (n->fence) cudaEventDestroy(n->fence);
    prt_free(ctx, n->ops, (size_t)n->ocap * sizeof *n->ops);
    prt_free(ctx, n->pool, (size_t)n->pcap * sizeof *n->pool);
    prt_free(ctx, n->kept, (size_t)n->kcap * sizeof *n->kept);
    prt_free(ctx, n, sizeof *n);
}

static void nccl_destroy(prt_comm *c) { release((nccl_comm *)c); }

static void nccl_abort(prt_comm *c, int code) {
    nccl_comm *n = (nccl_comm *)c;
    if (n->nc) {
        ncclCommAbort(n->nc);
        n->nc = NULL;
    }
    prt_comm_abort(n->boot, code);
}

static const prt_comm_iface nccl_iface = {
    .struct_size = sizeof(prt_comm_iface),
    .name = "nccl",
    .allreduce_start = nccl_allreduce_start,
    .wait = nccl_wait,
    .broadcast = nccl_broadcast,
    .barrier = nccl_barrier,
    .allgather_u64 = nccl_allgather_u64,
    .destroy = nccl_destroy,
    .gather_bytes = nccl_gather_bytes,
    .abort = nccl_abort,
};

/* What rank 0 broadcasts: whether it made an id, and the id. */
typedef struct id_msg {
    uint64_t ok;
    ncclUniqueId id;
} id_msg;

prt_status prt_comm_create_nccl(prt_context *ctx, const prt_comm_options *opts, prt_comm *bootstrap,
                                struct prt_device *gpu, prt_comm **out) {
    *out = NULL;
    if (!gpu)
        return prt_error(ctx, PRT_ERR_UNSUPPORTED,
                         "NCCL communicator: no CUDA device (NCCL reduces GPU memory; on CPUs use the MPI "
                         "communicator)");
    if (!prt_device_is_cuda(gpu))
        return prt_error(ctx, PRT_ERR_UNSUPPORTED,
                         "NCCL communicator: device '%s' is not a CUDA device (NCCL reduces GPU memory; on CPUs use "
                         "the MPI communicator)",
                         gpu->iface->name);
    if (!bootstrap)
        return prt_error(ctx, PRT_ERR_INVALID, "NCCL communicator: no bootstrap communicator to share the NCCL id");
    nccl_comm *n = prt_calloc(ctx, 1, sizeof *n);
    if (!n) return prt_error(ctx, PRT_ERR_NOMEM, "NCCL communicator");
    prt_status st = prt_comm_init_common(ctx, opts, &nccl_iface, &n->base);
    if (st != PRT_OK) {
        prt_free(ctx, n, sizeof *n);
        return st;
    }
    n->base.rank = bootstrap->rank;
    n->base.size = bootstrap->size;
    n->base.local_rank = bootstrap->local_rank;
    n->base.local_size = bootstrap->local_size;
    n->base.impl = n;
    n->boot = bootstrap;
    n->gpu = gpu;
    n->dev = gpu->index;
    n->compute = (cudaStream_t)prt_cuda_stream(gpu, PRT_CUDA_COMPUTE);
    n->comm = (cudaStream_t)prt_cuda_stream(gpu, PRT_CUDA_COMM);
    const char *what = "NCCL communicator set-up";
    cudaError_t e = cudaSetDevice(n->dev);
    if (e != cudaSuccess) {
        st = fail_cuda(n, what, "cudaSetDevice", e);
        goto fail;
    }
    if ((e = cudaEventCreateWithFlags(&n->ready, cudaEventDisableTiming)) != cudaSuccess ||
        (e = cudaEventCreateWithFlags(&n->fence, cudaEventDisableTiming)) != cudaSuccess) {
        st = fail_cuda(n, what, "cudaEventCreateWithFlags", e);
        goto fail;
    }

    /* every rank takes part in the broadcast, even when rank 0 failed, so
     * that no rank waits for it */
    id_msg m;
    memset(&m, 0, sizeof m);
    ncclResult_t r = ncclSuccess;
    if (n->base.rank == 0) {
        r = ncclGetUniqueId(&m.id);
        m.ok = r == ncclSuccess;
    }
    PRT_CHECK_GOTO(prt_comm_broadcast(bootstrap, &m, sizeof m, 0), st, fail);
    if (!m.ok) {
        char err[320];
        if (n->base.rank == 0) {
            nccl_message(NULL, r, err, sizeof err);
            st = prt_error(ctx, PRT_ERR_BACKEND, "rank 0: %s: ncclGetUniqueId failed: NCCL: %s", what, err);
        } else {
            st = prt_error(ctx, PRT_ERR_BACKEND, "rank %d: %s: rank 0 could not make the NCCL id (its message)",
                           n->base.rank, what);
        }
        goto fail;
    }

    /* non-blocking, so that a rank that never joins gives a timeout, not a hang */
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    double deadline = prt_now() + n->base.timeout_s;
    char desc[160];
    snprintf(desc, sizeof desc, "%s (%d ranks, CUDA device %d)", what, n->base.size, n->dev);
    r = ncclCommInitRankConfig(&n->nc, n->base.size, m.id, n->base.rank, &config);
    if (r != ncclSuccess && r != ncclInProgress && !n->nc) {
        char err[320];
        nccl_message(NULL, r, err, sizeof err);
        st = prt_error(ctx, PRT_ERR_BACKEND, "rank %d: %s: ncclCommInitRankConfig failed: NCCL: %s", n->base.rank,
                       desc, err);
        goto fail;
    }
    PRT_CHECK_GOTO(settle(n, r, "ncclCommInitRankConfig", desc, deadline), st, fail);
    *out = &n->base;
    return PRT_OK;
fail:
    if (n->nc) {
        ncclCommAbort(n->nc);
        n->nc = NULL;
    }
    release(n);
    return st;
}

#else /* no CUDA or no NCCL in this build */

prt_status prt_comm_create_nccl(prt_context *ctx, const prt_comm_options *opts, prt_comm *bootstrap,
                                struct prt_device *gpu, prt_comm **out) {
    *out = NULL;
    return prt_error(ctx, PRT_ERR_UNSUPPORTED,
                     "NCCL communicator: this build of Parrots has no NCCL support (configured without "
                     "PARROTS_NCCL, which needs the CUDA toolkit, MPI and NCCL)");
}

/* No NCCL communicator can exist here. */
prt_status prt_comm_nccl_check(prt_comm *c) { return PRT_OK; }

#endif

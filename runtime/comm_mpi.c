/* The MPI comm backend.
 *
 * Every operation is queued and run, in issue order, by the communicator's own
 * thread: allreduce_start returns at once and compute goes on while that thread
 * drives the transfer. Open MPI advances a non-blocking collective only inside
 * MPI calls, so the thread issues MPI_Iallreduce (Ibcast, Ibarrier, Iallgather)
 * and polls MPI_Test until it completes or the deadline passes; a rank that
 * died or skipped the collective therefore gives a timeout error, not a hang.
 *
 * Only the communication thread calls MPI between create and destroy, so the
 * backend needs MPI_THREAD_SERIALIZED; it asks for MPI_THREAD_MULTIPLE so that
 * other code in the process may use MPI at the same time. The communicator works
 * on a duplicate of MPI_COMM_WORLD with MPI_ERRORS_RETURN, so MPI failures come
 * back as messages and never collide with the program's own collectives.
 *
 * Which rank: when a collective times out, the rank asks every other rank
 * whether it is alive (probe_peers) on a second duplicate that carries only
 * these small messages, and the timeout message names the ranks that did not
 * answer.
 */
#include "runtime/comm_api.h"
#include "runtime/trace.h"

#if PARROTS_HAVE_MPI

#include <errno.h>
#include <limits.h>
#include <mpi.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Largest piece handed to one MPI call: counts are int in MPI. */
#define MAX_CHUNK ((size_t)1 << 30)
/* Polls before the thread starts yielding the core between MPI_Test calls. */
#define SPIN_POLLS 2000
/* The liveness probe: its one tag, the longest it waits for answers, and how
 * many ranks a message lists by number. */
#define PROBE_TAG 1
#define PROBE_GRACE_MAX_S 10.0
#define PROBE_LISTED 8

/* A probe message is three uint64: the communicator's id, the message's kind
 * and the sender's current operation. The id tells messages meant for an
 * earlier communicator of this process (Open MPI may hand a message that came
 * after a communicator was freed to the next one that reuses its context) from
 * this one's. */
enum { MSG_PROBE = 1, MSG_ANSWER = 2 };
#define MSG_WORDS 3

/* What this rank heard from one peer on the probe communicator. */
typedef struct peer_state {
    uint64_t probe_seq; /* the operation the peer's own probe was about; 0: none heard */
    double probe_at;    /* when that probe arrived (prt_now) */
    bool answered_me;   /* it answered this rank's probe */
    bool answered;      /* this rank answered its probe */
    uint64_t answer[MSG_WORDS]; /* the answer's send buffer */
} peer_state;

typedef enum op_kind { OP_ALLREDUCE, OP_BROADCAST, OP_BARRIER, OP_ALLGATHER, OP_GATHER_SIZES, OP_GATHERV } op_kind;

typedef struct mpi_op {
    op_kind kind;
    prt_comm_handle seq;
    void *buf;
    size_t count; /* elements (allreduce) or bytes (broadcast) */
    int root;
    uint64_t value; /* allgather: this rank's value; out: size entries */
    uint64_t *out;
    prt_comm_op rop; /* allreduce: sum or average */
    int tag;         /* allreduce: timeline label (bucket), -1 none */
    char *recv;      /* gatherv at root: the receive buffer */
    int *counts, *displs; /* gatherv at root: per rank */
} mpi_op;

typedef struct mpi_comm {
    prt_comm base;
    MPI_Comm comm;
    bool owns_init; /* this communicator called MPI_Init_thread */

    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    /* ring of queued operations; guarded by mu */
    mpi_op *queue;
    int qcap, qhead, qlen;
    prt_comm_handle issued, done; /* last handle given out; last one finished */
    prt_comm_handle failed_at;    /* first operation that failed; 0: healthy */
    prt_status fail_st;
    char fail_msg[512];
    bool stop;

    /* Owned by the thread until it is joined: a collective abandoned on timeout. */
    MPI_Request stale;

    /* The liveness probe, owned by the thread until it is joined. */
    MPI_Comm pcomm;       /* a second duplicate of the world: probe messages only */
    bool probed;          /* at most one probe per communicator */
    peer_state *peers;    /* size entries */
    MPI_Request *psends;  /* 2 * size: [r] the probe to rank r, [size + r] the answer to it */
    uint64_t probe[MSG_WORDS]; /* the probe's send buffer */
    uint64_t probe_id;    /* the same on every rank, new with each communicator */
} mpi_comm;

static const char *op_name(op_kind k) {
    switch (k) {
    case OP_ALLREDUCE: return "allreduce";
    case OP_BROADCAST: return "broadcast";
    case OP_BARRIER: return "barrier";
    case OP_ALLGATHER: return "allgather";
    case OP_GATHER_SIZES:
    case OP_GATHERV: return "gather";
    }
    return "?";
}

/* "allreduce #3 of 1024 f32 elements" */
static void describe(const mpi_op *op, char *buf, size_t cap) {
    switch (op->kind) {
    case OP_ALLREDUCE:
        if (op->tag >= 0)
            snprintf(buf, cap, "allreduce #%llu (gradient bucket %d) of %zu f32 elements", (unsigned long long)op->seq,
                     op->tag, op->count);
        else
            snprintf(buf, cap, "allreduce #%llu of %zu f32 elements", (unsigned long long)op->seq, op->count);
        break;
    case OP_BROADCAST:
        snprintf(buf, cap, "broadcast #%llu of %zu bytes from rank %d", (unsigned long long)op->seq, op->count,
                 op->root);
        break;
    default:
        snprintf(buf, cap, "%s #%llu", op_name(op->kind), (unsigned long long)op->seq);
        break;
    }
}

static void mpi_message(int rc, char *buf, size_t cap) {
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, s, &len) != MPI_SUCCESS) snprintf(s, sizeof s, "MPI error %d", rc);
    snprintf(buf, cap, "%s", s);
}

/* Answers and records the probe messages that arrived (see probe_peers); cur is
 * the operation this rank is running. Each peer's probe is answered once, at
 * the first moment this thread looks, so a live rank still inside a collective
 * answers at once, whatever its own deadline. MPI failures here are ignored:
 * the probe only adds detail to a message. */
static void service_probes(mpi_comm *m, uint64_t cur) {
    if (m->pcomm == MPI_COMM_NULL) return;
    for (;;) {
        int flag = 0;
        MPI_Status s;
        if (MPI_Iprobe(MPI_ANY_SOURCE, PROBE_TAG, m->pcomm, &flag, &s) != MPI_SUCCESS || !flag) return;
        uint64_t msg[MSG_WORDS] = {0};
        int src = s.MPI_SOURCE, count = 0;
        MPI_Get_count(&s, MPI_UINT64_T, &count);
        if (count != MSG_WORDS) count = 0; /* not ours: received into nothing, dropped */
        if (MPI_Recv(msg, count, MPI_UINT64_T, src, PROBE_TAG, m->pcomm, MPI_STATUS_IGNORE) != MPI_SUCCESS) return;
        if (!count || msg[0] != m->probe_id || src < 0 || src >= m->base.size) continue;
        peer_state *p = &m->peers[src];
        if (msg[1] == MSG_ANSWER) {
            p->answered_me = true;
            continue;
        }
        if (msg[1] != MSG_PROBE) continue;
        if (!p->probe_seq) {
            p->probe_seq = msg[2];
            p->probe_at = prt_now();
        }
        if (!p->answered) {
            p->answered = true;
            p->answer[0] = m->probe_id;
            p->answer[1] = MSG_ANSWER;
            p->answer[2] = cur;
            MPI_Isend(p->answer, MSG_WORDS, MPI_UINT64_T, src, PROBE_TAG, m->pcomm, &m->psends[m->base.size + src]);
        }
    }
}

/* "2, 5, 7" (at most PROBE_LISTED numbers, then " and N more") */
static void list_ranks(const bool *in, int n, bool want, char *buf, size_t cap) {
    size_t o = 0;
    int listed = 0, total = 0;
    buf[0] = '\0';
    for (int r = 0; r < n; r++) {
        if (in[r] != want) continue;
        if (listed < PROBE_LISTED && o < cap) {
            o += (size_t)snprintf(buf + o, cap - o, "%s%d", listed ? ", " : "", r);
            listed++;
        }
        total++;
    }
    if (total > listed && o < cap) snprintf(buf + o, cap - o, " and %d more", total - listed);
}

/* The collective #seq timed out here: which ranks are alive? This rank sends a
 * probe to every other rank on the probe communicator, then collects messages
 * for a grace period of min(timeout, 10 s). A peer has responded when it
 * answered this probe (a live rank answers while it polls any collective or
 * probes itself) or sent its own probe about the same collective (it timed out
 * there too). A live rank that entered the collective later than this one
 * times out later, by at most the difference in entry times, and the grace
 * period covers that when the difference is under it; when a peer's probe about
 * this collective came first, the grace period is counted from its arrival, so
 * that the ranks that time out together also end together. A probe about an
 * earlier operation is no response to this one (that rank may have moved on or
 * died since). Every peer responded: the wait ends at once.
 *
 * Fills who with the verdict, or leaves it empty when the probe could not run:
 * one probe per communicator (after a timeout it is broken), one rank, or an
 * MPI failure. */
static void probe_peers(mpi_comm *m, uint64_t seq, char *who, size_t cap) {
    who[0] = '\0';
    int n = m->base.size, me = m->base.rank;
    if (m->probed || n < 2 || m->pcomm == MPI_COMM_NULL) return;
    m->probed = true;
    m->probe[0] = m->probe_id;
    m->probe[1] = MSG_PROBE;
    m->probe[2] = seq;
    for (int r = 0; r < n; r++)
        if (r != me && MPI_Isend(m->probe, MSG_WORDS, MPI_UINT64_T, r, PROBE_TAG, m->pcomm, &m->psends[r]) != MPI_SUCCESS)
            return;
    double grace = m->base.timeout_s < PROBE_GRACE_MAX_S ? m->base.timeout_s : PROBE_GRACE_MAX_S;
    double deadline = prt_now() + grace;
    for (int r = 0; r < n; r++)
        if (m->peers[r].probe_seq == seq && m->peers[r].probe_at + grace < deadline)
            deadline = m->peers[r].probe_at + grace;
    bool *alive = prt_calloc(m->base.ctx, (size_t)n, sizeof *alive);
    if (!alive) return;
    int missing;
    for (;;) {
        service_probes(m, seq);
        missing = 0;
        for (int r = 0; r < n; r++) {
            const peer_state *p = &m->peers[r];
            alive[r] = r == me || p->answered_me || p->probe_seq == seq;
            missing += !alive[r];
        }
        if (missing == 0 || prt_now() > deadline) break;
        struct timespec ts = {0, 1000000}; /* 1 ms: the ranks may share the cores */
        nanosleep(&ts, NULL);
    }
    if (missing == 0) {
        snprintf(who, cap,
                 "every rank responded to a liveness probe, so none died; the ranks issued different "
                 "collectives, or the transfer stalled");
    } else {
        char dead[96], live[96];
        list_ranks(alive, n, false, dead, sizeof dead);
        alive[me] = false; /* the responders: the others */
        list_ranks(alive, n, true, live, sizeof live);
        int responders = n - 1 - missing;
        char others[128] = "";
        if (responders > 0)
            snprintf(others, sizeof others, " (%s %s did)", responders == 1 ? "rank" : "ranks", live);
        snprintf(who, cap, "%s %s did not respond%s; %s", missing == 1 ? "rank" : "ranks", dead, others,
                 missing == 1 ? "it died, hangs, or skipped this collective"
                              : "they died, hang, or skipped this collective");
    }
    prt_free(m->base.ctx, alive, (size_t)n * sizeof *alive);
}

/* Drives req to completion. PRT_OK, or an error with msg filled; on timeout the
 * request is kept in m->stale (a collective request can be neither freed nor
 * cancelled) and the other ranks are probed to name the missing ones. */
static prt_status poll_request(mpi_comm *m, MPI_Request *req, const mpi_op *op, char *msg, size_t cap) {
    double deadline = prt_now() + m->base.timeout_s;
    for (long polls = 0;; polls++) {
        int flag = 0;
        int rc = MPI_Test(req, &flag, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) {
            char what[160], err[MPI_MAX_ERROR_STRING];
            describe(op, what, sizeof what);
            mpi_message(rc, err, sizeof err);
            snprintf(msg, cap, "rank %d: %s failed: MPI: %s", m->base.rank, what, err);
            return PRT_ERR_BACKEND;
        }
        if (flag) return PRT_OK;
        if ((polls & 63) == 0) {
            service_probes(m, op->seq);
            if (prt_now() > deadline) {
                char what[160], who[320];
                m->stale = *req;
                describe(op, what, sizeof what);
                probe_peers(m, op->seq, who, sizeof who);
                if (who[0])
                    snprintf(msg, cap, "rank %d: %s did not complete within %g s: %s", m->base.rank, what,
                             m->base.timeout_s, who);
                else
                    snprintf(msg, cap,
                             "rank %d: %s did not complete within %g s (a rank died, stopped responding, or did "
                             "not issue this collective)",
                             m->base.rank, what, m->base.timeout_s);
                return PRT_ERR_BACKEND;
            }
        }
        if (polls > SPIN_POLLS) sched_yield();
    }
}

static prt_status start_failed(mpi_comm *m, const mpi_op *op, int rc, char *msg, size_t cap) {
    char what[160], err[MPI_MAX_ERROR_STRING];
    describe(op, what, sizeof what);
    mpi_message(rc, err, sizeof err);
    snprintf(msg, cap, "rank %d: %s could not start: MPI: %s", m->base.rank, what, err);
    return PRT_ERR_BACKEND;
}

/* Runs one operation on the communication thread. */
static prt_status run_op(mpi_comm *m, mpi_op *op, char *msg, size_t cap) {
    MPI_Request req = MPI_REQUEST_NULL;
    int rc;
    prt_status st;
    switch (op->kind) {
    case OP_ALLREDUCE: {
        float *p = op->buf;
        size_t left = op->count;
        do { /* a zero-element allreduce is still a collective: issued once */
            size_t n = left < MAX_CHUNK ? left : MAX_CHUNK;
            rc = MPI_Iallreduce(MPI_IN_PLACE, p, (int)n, MPI_FLOAT, MPI_SUM, m->comm, &req);
            if (rc != MPI_SUCCESS) return start_failed(m, op, rc, msg, cap);
            if ((st = poll_request(m, &req, op, msg, cap)) != PRT_OK) return st;
            if (op->rop == PRT_COMM_AVG && m->base.size > 1) {
                const float inv = 1.0f / (float)m->base.size;
                for (size_t i = 0; i < n; i++) p[i] *= inv;
            }
            p += n;
            left -= n;
        } while (left > 0);
        return PRT_OK;
    }
    case OP_BROADCAST: {
        char *p = op->buf;
        size_t left = op->count;
        do {
            size_t n = left < MAX_CHUNK ? left : MAX_CHUNK;
            rc = MPI_Ibcast(p, (int)n, MPI_BYTE, op->root, m->comm, &req);
            if (rc != MPI_SUCCESS) return start_failed(m, op, rc, msg, cap);
            if ((st = poll_request(m, &req, op, msg, cap)) != PRT_OK) return st;
            p += n;
            left -= n;
        } while (left > 0);
        return PRT_OK;
    }
    case OP_BARRIER:
        rc = MPI_Ibarrier(m->comm, &req);
        if (rc != MPI_SUCCESS) return start_failed(m, op, rc, msg, cap);
        return poll_request(m, &req, op, msg, cap);
    case OP_ALLGATHER:
        rc = MPI_Iallgather(&op->value, 1, MPI_UINT64_T, op->out, 1, MPI_UINT64_T, m->comm, &req);
        if (rc != MPI_SUCCESS) return start_failed(m, op, rc, msg, cap);
        return poll_request(m, &req, op, msg, cap);
    case OP_GATHER_SIZES:
        rc = MPI_Igather(&op->value, 1, MPI_UINT64_T, op->out, 1, MPI_UINT64_T, op->root, m->comm, &req);
        if (rc != MPI_SUCCESS) return start_failed(m, op, rc, msg, cap);
        return poll_request(m, &req, op, msg, cap);
    case OP_GATHERV:
        rc = MPI_Igatherv(op->buf, (int)op->count, MPI_BYTE, op->recv, op->counts, op->displs, MPI_BYTE, op->root,
                          m->comm, &req);
        if (rc != MPI_SUCCESS) return start_failed(m, op, rc, msg, cap);
        return poll_request(m, &req, op, msg, cap);
    }
    snprintf(msg, cap, "unknown comm operation %d", (int)op->kind);
    return PRT_ERR_INTERNAL;
}

static void *comm_thread(void *arg) {
    mpi_comm *m = arg;
    char msg[sizeof m->fail_msg];
    pthread_mutex_lock(&m->mu);
    for (;;) {
        while (m->qlen == 0 && !m->stop) pthread_cond_wait(&m->cv_work, &m->mu);
        if (m->qlen == 0) break; /* stop, and the queue drained */
        mpi_op op = m->queue[m->qhead];
        m->qhead = (m->qhead + 1) % m->qcap;
        m->qlen--;
        /* after a failure the collective order is lost: nothing more is issued */
        bool healthy = m->failed_at == 0;
        pthread_mutex_unlock(&m->mu);
        double t0 = prt_now();
        prt_status st = healthy ? run_op(m, &op, msg, sizeof msg) : PRT_OK;
        if (m->base.trace && healthy) prt_trace_span(m->base.trace, PRT_TRACE_comm, op_name(op.kind), NULL, t0, prt_now(), op.tag);
        pthread_mutex_lock(&m->mu);
        if (healthy && st != PRT_OK) {
            m->failed_at = op.seq;
            m->fail_st = st;
            memcpy(m->fail_msg, msg, sizeof msg);
        }
        m->done = op.seq;
        pthread_cond_broadcast(&m->cv_done);
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

/* Queues op (the caller's thread); op->seq is set. */
static prt_status enqueue(mpi_comm *m, mpi_op *op) {
    prt_context *ctx = m->base.ctx;
    pthread_mutex_lock(&m->mu);
    if (m->qlen == m->qcap) {
        int cap = m->qcap ? 2 * m->qcap : 16;
        size_t bytes;
        mpi_op *q = NULL;
        if (cap > 0 && prt_mul_size((size_t)cap, sizeof *q, &bytes)) q = prt_malloc(ctx, bytes);
        if (!q) {
            pthread_mutex_unlock(&m->mu);
            return prt_error(ctx, PRT_ERR_NOMEM, "comm queue of %d operations", cap);
        }
        for (int i = 0; i < m->qlen; i++) q[i] = m->queue[(m->qhead + i) % m->qcap];
        prt_free(ctx, m->queue, (size_t)m->qcap * sizeof *q);
        m->queue = q;
        m->qcap = cap;
        m->qhead = 0;
    }
    op->seq = ++m->issued;
    m->queue[(m->qhead + m->qlen) % m->qcap] = *op;
    m->qlen++;
    pthread_cond_signal(&m->cv_work);
    pthread_mutex_unlock(&m->mu);
    return PRT_OK;
}

static prt_status mpi_wait(prt_comm *c, prt_comm_handle h) {
    mpi_comm *m = (mpi_comm *)c;
    pthread_mutex_lock(&m->mu);
    if (h > m->issued) {
        pthread_mutex_unlock(&m->mu);
        return prt_error(c->ctx, PRT_ERR_INVALID, "comm wait: handle %llu was never issued", (unsigned long long)h);
    }
    /* each queued operation ends within the timeout, so this wait is bounded */
    while (m->done < h) pthread_cond_wait(&m->cv_done, &m->mu);
    prt_status st = PRT_OK;
    if (m->failed_at && m->failed_at <= h) {
        st = m->fail_st;
        if (m->failed_at == h)
            prt_error(c->ctx, st, "%s", m->fail_msg);
        else
            prt_error(c->ctx, st, "comm operation #%llu was not run: an earlier one failed: %s",
                      (unsigned long long)h, m->fail_msg);
    }
    pthread_mutex_unlock(&m->mu);
    return st;
}

static prt_status run_sync(mpi_comm *m, mpi_op *op) {
    PRT_CHECK(enqueue(m, op));
    return mpi_wait(&m->base, op->seq);
}

static prt_status mpi_allreduce_start(prt_comm *c, void *buf, size_t count, prt_dtype t, prt_comm_op rop,
                                      int tag, prt_comm_handle *out) {
    mpi_op op = {.kind = OP_ALLREDUCE, .buf = buf, .count = count, .rop = rop, .tag = tag};
    PRT_CHECK(enqueue((mpi_comm *)c, &op));
    *out = op.seq;
    return PRT_OK;
}

static prt_status mpi_broadcast(prt_comm *c, void *buf, size_t bytes, int root) {
    mpi_op op = {.kind = OP_BROADCAST, .buf = buf, .count = bytes, .root = root, .tag = -1};
    return run_sync((mpi_comm *)c, &op);
}

static prt_status mpi_barrier(prt_comm *c) {
    mpi_op op = {.kind = OP_BARRIER, .tag = -1};
    return run_sync((mpi_comm *)c, &op);
}

static prt_status mpi_allgather_u64(prt_comm *c, uint64_t value, uint64_t *out) {
    mpi_op op = {.kind = OP_ALLGATHER, .value = value, .out = out, .tag = -1};
    return run_sync((mpi_comm *)c, &op);
}

/* Two collectives: the sizes to root, then the bytes (MPI counts are int, so
 * one gather moves less than 2 GiB in all). */
static prt_status mpi_gather_bytes(prt_comm *c, const void *buf, size_t bytes, int root, void **out,
                                   size_t *sizes) {
    mpi_comm *m = (mpi_comm *)c;
    prt_context *ctx = c->ctx;
    size_t n = (size_t)c->size;
    bool is_root = c->rank == root;
    uint64_t *all = is_root ? prt_calloc(ctx, n, sizeof *all) : NULL;
    int *counts = is_root ? prt_calloc(ctx, n, sizeof *counts) : NULL;
    int *displs = is_root ? prt_calloc(ctx, n, sizeof *displs) : NULL;
    char *recv = NULL;
    prt_status st = PRT_OK;
    if (is_root && (!all || !counts || !displs)) st = prt_error(ctx, PRT_ERR_NOMEM, "gather of %zu ranks", n);
    /* every rank takes part in both collectives even after a local failure, so
     * that no rank waits for a collective another skipped */
    mpi_op op = {.kind = OP_GATHER_SIZES, .value = bytes > INT_MAX ? UINT64_MAX : bytes, .out = all, .root = root,
                 .tag = -1};
    prt_status st1 = run_sync(m, &op);
    if (st == PRT_OK) st = st1;
    size_t total = 0;
    if (is_root && st == PRT_OK) {
        for (size_t r = 0; r < n; r++) {
            if (all[r] == UINT64_MAX || total + all[r] > INT_MAX) {
                st = prt_error(ctx, PRT_ERR_LIMIT, "gather: rank %zu sends %s; at most 2 GiB in all", r,
                               all[r] == UINT64_MAX ? "more than 2 GiB" : "more than fits");
                break;
            }
            counts[r] = (int)all[r];
            displs[r] = (int)total;
            sizes[r] = all[r];
            total += all[r];
        }
        if (st == PRT_OK && !(recv = prt_malloc(ctx, total ? total : 1)))
            st = prt_error(ctx, PRT_ERR_NOMEM, "gather: %zu bytes", total);
    }
    if (st1 == PRT_OK) { /* the sizes collective finished everywhere it could */
        int counts0[1] = {0}, displs0[1] = {0};
        op = (mpi_op){.kind = OP_GATHERV, .buf = (void *)buf, .count = bytes > INT_MAX ? 0 : bytes, .root = root,
                      .recv = recv, .counts = counts ? counts : counts0, .displs = displs ? displs : displs0,
                      .tag = -1};
        if (is_root && st != PRT_OK) memset(counts, 0, n * sizeof *counts);
        prt_status st2 = run_sync(m, &op);
        if (st == PRT_OK) st = st2;
    }
    prt_free(ctx, all, 0);
    prt_free(ctx, counts, 0);
    prt_free(ctx, displs, 0);
    if (st != PRT_OK) {
        prt_free(ctx, recv, 0);
        return st;
    }
    *out = recv;
    return PRT_OK;
}

/* Frees what the thread no longer uses. A collective abandoned on timeout may
 * still be completed by the late ranks: it gets up to one more timeout; if it is
 * still pending, MPI is left as it is (finalising would hang) and the process is
 * expected to exit. */
static void release(mpi_comm *m, bool thread_started) {
    prt_context *ctx = m->base.ctx;
    if (thread_started) {
        pthread_mutex_lock(&m->mu);
        m->stop = true;
        pthread_cond_signal(&m->cv_work);
        pthread_mutex_unlock(&m->mu);
        pthread_join(m->thread, NULL);
    }
    bool pending = false;
    if (m->stale != MPI_REQUEST_NULL) {
        double deadline = prt_now() + m->base.timeout_s;
        int flag = 0;
        while (MPI_Test(&m->stale, &flag, MPI_STATUS_IGNORE) == MPI_SUCCESS && !flag && prt_now() < deadline)
            sched_yield();
        pending = !flag;
        if (pending)
            prt_log_warn(ctx, "rank %d: a timed-out collective is still pending; MPI is not finalised",
                         m->base.rank);
    }
    /* probe messages are small: sent at once, or never (to a dead rank); the
     * request of one not sent yet is let go without waiting for it */
    if (m->psends)
        for (int r = 0; r < 2 * m->base.size; r++) {
            int flag = 0;
            if (m->psends[r] == MPI_REQUEST_NULL) continue;
            if (MPI_Test(&m->psends[r], &flag, MPI_STATUS_IGNORE) != MPI_SUCCESS || !flag)
                MPI_Request_free(&m->psends[r]);
        }
    if (m->pcomm != MPI_COMM_NULL && !pending) MPI_Comm_free(&m->pcomm);
    if (m->comm != MPI_COMM_NULL && !pending) MPI_Comm_free(&m->comm);
    if (m->owns_init && !pending) MPI_Finalize();
    if (thread_started) {
        pthread_cond_destroy(&m->cv_done);
        pthread_cond_destroy(&m->cv_work);
        pthread_mutex_destroy(&m->mu);
    }
    prt_free(ctx, m->queue, (size_t)m->qcap * sizeof *m->queue);
    prt_free(ctx, m->peers, 0);
    prt_free(ctx, m->psends, 0);
    prt_free(ctx, m, sizeof *m);
}

static void mpi_destroy(prt_comm *c) { release((mpi_comm *)c, true); }

static void mpi_abort(prt_comm *c, int code) { MPI_Abort(MPI_COMM_WORLD, code); }

static const prt_comm_iface mpi_iface = {
    .struct_size = sizeof(prt_comm_iface),
    .name = "mpi",
    .allreduce_start = mpi_allreduce_start,
    .wait = mpi_wait,
    .broadcast = mpi_broadcast,
    .barrier = mpi_barrier,
    .allgather_u64 = mpi_allgather_u64,
    .destroy = mpi_destroy,
    .gather_bytes = mpi_gather_bytes,
    .abort = mpi_abort,
};

static bool env_int(const char *name, int *out) {
    const char *s = getenv(name);
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < 0 || v > INT_MAX) return false;
    *out = (int)v;
    return true;
}

/* The rank among the processes that share this machine's memory. The MPI way
 * first; launcher variables only if it fails. */
static void find_local_rank(mpi_comm *m) {
    MPI_Comm node;
    int lr, ls;
    if (MPI_Comm_split_type(m->comm, MPI_COMM_TYPE_SHARED, m->base.rank, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
        bool ok = MPI_Comm_rank(node, &lr) == MPI_SUCCESS && MPI_Comm_size(node, &ls) == MPI_SUCCESS;
        MPI_Comm_free(&node);
        if (ok) {
            m->base.local_rank = lr;
            m->base.local_size = ls;
            return;
        }
    }
    if (env_int("OMPI_COMM_WORLD_LOCAL_RANK", &lr) && env_int("OMPI_COMM_WORLD_LOCAL_SIZE", &ls) && lr < ls) {
        m->base.local_rank = lr;
        m->base.local_size = ls;
        return;
    }
    m->base.local_rank = 0;
    m->base.local_size = 1;
}

prt_status prt_comm_create_mpi(prt_context *ctx, const prt_comm_options *opts, prt_comm **out) {
    *out = NULL;
    int inited = 0, finalized = 0, provided = 0, rc;
    char err[MPI_MAX_ERROR_STRING];
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (finalized)
        return prt_error(ctx, PRT_ERR_USAGE, "MPI communicator: MPI was already finalised in this process");
    mpi_comm *m = prt_calloc(ctx, 1, sizeof *m);
    if (!m) return prt_error(ctx, PRT_ERR_NOMEM, "MPI communicator");
    prt_status st = prt_comm_init_common(ctx, opts, &mpi_iface, &m->base);
    if (st != PRT_OK) {
        prt_free(ctx, m, sizeof *m);
        return st;
    }
    m->comm = MPI_COMM_NULL;
    m->pcomm = MPI_COMM_NULL;
    m->stale = MPI_REQUEST_NULL;
    if (!inited) {
        rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_MULTIPLE, &provided);
        if (rc != MPI_SUCCESS) {
            mpi_message(rc, err, sizeof err);
            st = prt_error(ctx, PRT_ERR_BACKEND, "MPI_Init_thread failed: %s", err);
            goto fail;
        }
        m->owns_init = true;
    } else {
        MPI_Query_thread(&provided);
    }
    if (provided < MPI_THREAD_SERIALIZED) {
        st = prt_error(ctx, PRT_ERR_UNSUPPORTED,
                       "MPI communicator: MPI gives thread level %d; the communication thread needs at least "
                       "MPI_THREAD_SERIALIZED (initialise MPI with MPI_Init_thread)",
                       provided);
        goto fail;
    }
    rc = MPI_Comm_dup(MPI_COMM_WORLD, &m->comm);
    if (rc != MPI_SUCCESS) {
        mpi_message(rc, err, sizeof err);
        st = prt_error(ctx, PRT_ERR_BACKEND, "MPI_Comm_dup failed: %s", err);
        goto fail;
    }
    MPI_Comm_set_errhandler(m->comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(m->comm, &m->base.rank);
    MPI_Comm_size(m->comm, &m->base.size);
    rc = MPI_Comm_dup(MPI_COMM_WORLD, &m->pcomm);
    if (rc != MPI_SUCCESS) {
        mpi_message(rc, err, sizeof err);
        st = prt_error(ctx, PRT_ERR_BACKEND, "MPI_Comm_dup (the probe communicator) failed: %s", err);
        goto fail;
    }
    MPI_Comm_set_errhandler(m->pcomm, MPI_ERRORS_RETURN);
    /* rank 0's clock and this struct's address: differs from the communicators
     * this process had before */
    m->probe_id = (uint64_t)(prt_now() * 1e9) ^ (uint64_t)(uintptr_t)m;
    rc = MPI_Bcast(&m->probe_id, 1, MPI_UINT64_T, 0, m->pcomm);
    if (rc != MPI_SUCCESS) {
        mpi_message(rc, err, sizeof err);
        st = prt_error(ctx, PRT_ERR_BACKEND, "MPI_Bcast (the probe communicator's id) failed: %s", err);
        goto fail;
    }
    m->peers = prt_calloc(ctx, (size_t)m->base.size, sizeof *m->peers);
    m->psends = prt_calloc(ctx, 2 * (size_t)m->base.size, sizeof *m->psends);
    if (m->psends)
        for (int r = 0; r < 2 * m->base.size; r++) m->psends[r] = MPI_REQUEST_NULL;
    if (!m->peers || !m->psends) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "MPI communicator: probe state of %d ranks", m->base.size);
        goto fail;
    }
    find_local_rank(m);
    m->base.impl = m;

    if (pthread_mutex_init(&m->mu, NULL) != 0) {
        st = prt_error(ctx, PRT_ERR_INTERNAL, "MPI communicator: cannot create a mutex");
        goto fail;
    }
    pthread_cond_init(&m->cv_work, NULL);
    pthread_cond_init(&m->cv_done, NULL);
    rc = pthread_create(&m->thread, NULL, comm_thread, m);
    if (rc != 0) {
        pthread_cond_destroy(&m->cv_done);
        pthread_cond_destroy(&m->cv_work);
        pthread_mutex_destroy(&m->mu);
        st = prt_error(ctx, PRT_ERR_INTERNAL, "MPI communicator: cannot start the communication thread: %s",
                       strerror(rc));
        goto fail;
    }
    *out = &m->base;
    return PRT_OK;
fail:
    release(m, false);
    return st;
}

#else /* !PARROTS_HAVE_MPI */

prt_status prt_comm_create_mpi(prt_context *ctx, const prt_comm_options *opts, prt_comm **out) {
    *out = NULL;
    return prt_error(ctx, PRT_ERR_UNSUPPORTED,
                     "MPI communicator: this build of Parrots has no MPI support (install libopenmpi-dev and "
                     "configure with -DPARROTS_MPI=ON)");
}

#endif

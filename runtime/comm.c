/* The comm-backend core: argument checks shared by every backend, and the
 * agreement check built on allgather. */
#include "runtime/comm_api.h"
#include "runtime/trace.h"

#include <inttypes.h>
#include <string.h>

prt_status prt_comm_init_common(prt_context *ctx, const prt_comm_options *opts,
                                const prt_comm_iface *iface, prt_comm *c) {
    prt_comm_options o = {.struct_size = sizeof o, .timeout_s = PRT_COMM_DEFAULT_TIMEOUT_S};
    if (opts) {
        if (opts->struct_size < sizeof(size_t) || opts->struct_size > sizeof o)
            return prt_error(ctx, PRT_ERR_INVALID, "comm options: struct_size %zu is not one this build knows",
                             opts->struct_size);
        memcpy(&o, opts, opts->struct_size);
        if (!(o.timeout_s > 0)) o.timeout_s = PRT_COMM_DEFAULT_TIMEOUT_S;
    }
    memset(c, 0, sizeof *c);
    c->iface = iface;
    c->ctx = ctx;
    c->size = 1;
    c->local_size = 1;
    c->timeout_s = o.timeout_s;
    return PRT_OK;
}

void prt_comm_destroy(prt_comm *c) {
    if (c) c->iface->destroy(c);
}

prt_status prt_comm_allreduce_start(prt_comm *c, void *buf, size_t count, prt_dtype t,
                                    prt_comm_op op, prt_comm_handle *out) {
    return prt_comm_allreduce_start_tagged(c, buf, count, t, op, -1, out);
}

prt_status prt_comm_allreduce_start_tagged(prt_comm *c, void *buf, size_t count, prt_dtype t,
                                           prt_comm_op op, int tag, prt_comm_handle *out) {
    *out = 0;
    if (t != PRT_F32)
        return prt_error(c->ctx, PRT_ERR_UNSUPPORTED, "allreduce: dtype %s is not supported (f32 only)",
                         prt_dtype_name(t));
    if (op != PRT_COMM_SUM && op != PRT_COMM_AVG)
        return prt_error(c->ctx, PRT_ERR_UNSUPPORTED, "allreduce: reduction %d is not supported (sum or average)",
                         (int)op);
    size_t bytes;
    if (!prt_mul_size(count, sizeof(float), &bytes))
        return prt_error(c->ctx, PRT_ERR_OVERFLOW, "allreduce: %zu elements overflow a size", count);
    if (count && !buf) return prt_error(c->ctx, PRT_ERR_INVALID, "allreduce: NULL buffer for %zu elements", count);
    return c->iface->allreduce_start(c, buf, count, t, op, tag, out);
}

prt_status prt_comm_gather_bytes(prt_comm *c, const void *buf, size_t bytes, int root, void **out,
                                 size_t *sizes) {
    *out = NULL;
    if (root < 0 || root >= c->size)
        return prt_error(c->ctx, PRT_ERR_INVALID, "gather: root %d is not a rank (size %d)", root, c->size);
    if (bytes && !buf) return prt_error(c->ctx, PRT_ERR_INVALID, "gather: NULL buffer for %zu bytes", bytes);
    return c->iface->gather_bytes(c, buf, bytes, root, out, sizes);
}

void prt_comm_abort(prt_comm *c, int code) {
    if (c && c->iface->abort) c->iface->abort(c, code);
}

void prt_comm_set_trace(prt_comm *c, struct prt_trace *trace) { c->trace = trace; }

prt_status prt_comm_wait(prt_comm *c, prt_comm_handle h) {
    if (h == 0) return prt_error(c->ctx, PRT_ERR_INVALID, "comm wait: invalid handle 0");
    return c->iface->wait(c, h);
}

prt_status prt_comm_broadcast(prt_comm *c, void *buf, size_t bytes, int root) {
    if (root < 0 || root >= c->size)
        return prt_error(c->ctx, PRT_ERR_INVALID, "broadcast: root %d is not a rank (size %d)", root, c->size);
    if (bytes && !buf) return prt_error(c->ctx, PRT_ERR_INVALID, "broadcast: NULL buffer for %zu bytes", bytes);
    return c->iface->broadcast(c, buf, bytes, root);
}

prt_status prt_comm_barrier(prt_comm *c) { return c->iface->barrier(c); }

prt_status prt_comm_allgather_u64(prt_comm *c, uint64_t value, uint64_t *out) {
    if (!out) return prt_error(c->ctx, PRT_ERR_INVALID, "allgather: NULL output for %d ranks", c->size);
    return c->iface->allgather_u64(c, value, out);
}

/* At most this many differing ranks are named; the rest are counted. */
#define MAX_LISTED 16

prt_status prt_comm_check_same(prt_comm *c, uint64_t hash, const char *what) {
    prt_context *ctx = c->ctx;
    size_t n = (size_t)c->size;
    uint64_t *all = prt_calloc(ctx, n, sizeof *all);
    if (!all) return prt_error(ctx, PRT_ERR_NOMEM, "check_same: %zu hashes", n);
    prt_status st = prt_comm_allgather_u64(c, hash, all);
    if (st != PRT_OK) {
        prt_free(ctx, all, n * sizeof *all);
        return prt_error_prefix(ctx, st, "comparing the %s across ranks", what);
    }
    size_t ndiff = 0;
    for (size_t r = 1; r < n; r++) ndiff += all[r] != all[0];
    if (ndiff == 0) {
        prt_free(ctx, all, n * sizeof *all);
        return PRT_OK;
    }
    /* Every rank sees the same gathered hashes, so every rank builds the same message. */
    char ranks[512] = "", hashes[512] = "";
    size_t rl = 0, hl = 0, listed = 0;
    for (size_t r = 1; r < n && listed < MAX_LISTED; r++) {
        if (all[r] == all[0]) continue;
        const char *sep = listed ? ", " : "";
        rl += (size_t)snprintf(ranks + rl, sizeof ranks - rl, "%s%zu", sep, r);
        hl += (size_t)snprintf(hashes + hl, sizeof hashes - hl, "%s%016" PRIx64, sep, all[r]);
        listed++;
    }
    if (ndiff > listed) {
        rl += (size_t)snprintf(ranks + rl, sizeof ranks - rl, " and %zu more", ndiff - listed);
        (void)rl;
        snprintf(hashes + hl, sizeof hashes - hl, ", ...");
    }
    uint64_t h0 = all[0];
    prt_free(ctx, all, n * sizeof *all);
    return prt_error(ctx, PRT_ERR_INVALID, "%s %s %s a different %s (hash %s) than rank 0 (hash %016" PRIx64 ")",
                     ndiff == 1 ? "rank" : "ranks", ranks, ndiff == 1 ? "has" : "have", what, hashes, h0);
}

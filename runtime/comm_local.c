/* The one-rank comm backend: the sum over one rank is the buffer itself, so
 * every collective is a no-op. Lets the training path run unchanged without MPI. */
#include "runtime/comm_api.h"

#include <string.h>

typedef struct local_comm {
    prt_comm base;
    prt_comm_handle issued; /* last handle given out */
} local_comm;

static prt_status local_allreduce_start(prt_comm *c, void *buf, size_t count, prt_dtype t,
                                        prt_comm_op op, int tag, prt_comm_handle *out) {
    local_comm *l = (local_comm *)c;
    *out = ++l->issued;
    return PRT_OK;
}

static prt_status local_wait(prt_comm *c, prt_comm_handle h) {
    local_comm *l = (local_comm *)c;
    if (h > l->issued)
        return prt_error(c->ctx, PRT_ERR_INVALID, "comm wait: handle %llu was never issued",
                         (unsigned long long)h);
    return PRT_OK;
}

static prt_status local_broadcast(prt_comm *c, void *buf, size_t bytes, int root) { return PRT_OK; }

static prt_status local_barrier(prt_comm *c) { return PRT_OK; }

static prt_status local_allgather_u64(prt_comm *c, uint64_t value, uint64_t *out) {
    out[0] = value;
    return PRT_OK;
}

static prt_status local_gather_bytes(prt_comm *c, const void *buf, size_t bytes, int root, void **out,
                                     size_t *sizes) {
    char *p = prt_malloc(c->ctx, bytes ? bytes : 1);
    if (!p) return prt_error(c->ctx, PRT_ERR_NOMEM, "gather: %zu bytes", bytes);
    if (bytes) memcpy(p, buf, bytes);
    sizes[0] = bytes;
    *out = p;
    return PRT_OK;
}

static void local_destroy(prt_comm *c) { prt_free(c->ctx, c, sizeof(local_comm)); }

static const prt_comm_iface local_iface = {
    .struct_size = sizeof(prt_comm_iface),
    .name = "local",
    .allreduce_start = local_allreduce_start,
    .wait = local_wait,
    .broadcast = local_broadcast,
    .barrier = local_barrier,
    .allgather_u64 = local_allgather_u64,
    .destroy = local_destroy,
    .gather_bytes = local_gather_bytes,
};

prt_status prt_comm_create_local(prt_context *ctx, const prt_comm_options *opts, prt_comm **out) {
    *out = NULL;
    local_comm *l = prt_malloc(ctx, sizeof *l);
    if (!l) return prt_error(ctx, PRT_ERR_NOMEM, "local communicator");
    prt_status st = prt_comm_init_common(ctx, opts, &local_iface, &l->base);
    if (st != PRT_OK) {
        prt_free(ctx, l, sizeof *l);
        return st;
    }
    l->issued = 0;
    *out = &l->base;
    return PRT_OK;
}

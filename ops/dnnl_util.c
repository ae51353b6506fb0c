/* The oneDNN boundary shared by the fast kernels (see ops/dnnl_util.h). */
#include "ops/dnnl_util.h"

#include <oneapi/dnnl/dnnl_debug.h>
#include <pthread.h>
#include <string.h>

/* The one process-wide object in ops/. A oneDNN CPU engine is immutable after
 * creation and safe to share between threads, and creating one per kernel would
 * cost a few microseconds and some memory per node for nothing. prt_context has
 * no slot for it (and the context must not depend on oneDNN), so it lives here,
 * created once under pthread_once and never destroyed (oneDNN owns its teardown
 * at exit). Streams, which are not shareable, stay per kernel state. */
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;
static dnnl_engine_t engine;
static dnnl_status_t engine_status = dnnl_runtime_error;

static void engine_init(void) { engine_status = dnnl_engine_create(&engine, dnnl_cpu, 0); }

dnnl_engine_t prt_dnnl_engine_quiet(void) {
    pthread_once(&engine_once, engine_init);
    return engine_status == dnnl_success ? engine : NULL;
}

prt_status prt_dnnl_engine(prt_context *ctx, dnnl_engine_t *out) {
    pthread_once(&engine_once, engine_init);
    *out = engine;
    return prt_dnnl_check(ctx, engine_status, "CPU engine");
}

prt_status prt_dnnl_check(prt_context *ctx, dnnl_status_t s, const char *what) {
    if (s == dnnl_success) return PRT_OK;
    prt_status st = s == dnnl_unimplemented ? PRT_ERR_UNSUPPORTED
                    : s == dnnl_out_of_memory ? PRT_ERR_NOMEM
                                              : PRT_ERR_BACKEND;
    return prt_error(ctx, st, "oneDNN %s: %s", what, dnnl_status2str(s));
}

dnnl_status_t prt_dnnl_md_plain(dnnl_memory_desc_t *md, int ndim, const int64_t *dims) {
    dnnl_dims_t d, strides;
    int64_t st = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        d[i] = dims[i];
        strides[i] = st;
        st *= dims[i];
    }
    return dnnl_memory_desc_init_by_strides(md, ndim, d, dnnl_f32, strides);
}

dnnl_status_t prt_dnnl_pd_create(dnnl_primitive_desc_t *pd, const void *op_desc, dnnl_engine_t eng) {
    dnnl_primitive_attr_t attr;
    dnnl_status_t s = dnnl_primitive_attr_create(&attr);
    if (s != dnnl_success) return s;
    s = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (s == dnnl_success) s = dnnl_primitive_desc_create(pd, op_desc, attr, eng, NULL);
    dnnl_primitive_attr_destroy(attr);
    return s;
}

size_t prt_dnnl_scratch_size(const_dnnl_primitive_desc_t pd) {
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    return md ? dnnl_memory_desc_get_size(md) : 0;
}

const char *prt_dnnl_impl_name(const_dnnl_primitive_desc_t pd) {
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success || !impl) return "?";
    return impl;
}

bool prt_dnnl_pd_is_ref(const_dnnl_primitive_desc_t pd) {
    return strncmp(prt_dnnl_impl_name(pd), "ref", 3) == 0;
}

prt_status prt_dnnl_base_init(const prt_kernel_call *c, prt_dnnl_base *b, size_t ws_need) {
    memset(b, 0, sizeof *b);
    b->ctx = c->ctx;
    b->ws_need = ws_need;
    PRT_CHECK(prt_dnnl_engine(c->ctx, &b->eng));
    PRT_CHECK(prt_dnnl_check(c->ctx, dnnl_stream_create(&b->stream, b->eng, dnnl_stream_default_flags), "stream"));
    if (ws_need > 0 && c->workspace_size < ws_need) {
        /* 63 spare bytes so the region can be aligned like a planned workspace */
        b->own_ws = prt_malloc(c->ctx, ws_need + 63);
        if (!b->own_ws) {
            dnnl_stream_destroy(b->stream);
            b->stream = NULL;
            return prt_error(c->ctx, PRT_ERR_NOMEM, "kernel workspace: %zu bytes", ws_need);
        }
    }
    return PRT_OK;
}

void prt_dnnl_base_fini(prt_dnnl_base *b) {
    if (b->stream) dnnl_stream_destroy(b->stream);
    if (b->own_ws) prt_free(b->ctx, b->own_ws, b->ws_need + 63);
    b->stream = NULL;
    b->own_ws = NULL;
}

prt_status prt_dnnl_ws(const prt_dnnl_base *b, const prt_kernel_call *c, const char *what, char **out) {
    *out = NULL;
    if (b->ws_need == 0) return PRT_OK;
    if (b->own_ws) {
        *out = (char *)(((uintptr_t)b->own_ws + 63) & ~(uintptr_t)63);
        return PRT_OK;
    }
    uintptr_t p = (uintptr_t)c->workspace, a = (p + 63) & ~(uintptr_t)63;
    if (!p || c->workspace_size < b->ws_need + (a - p))
        return prt_error(c->ctx, PRT_ERR_INTERNAL,
                         "%s kernel: needs a 64-byte aligned workspace of %zu bytes, got %zu bytes at %p", what,
                         b->ws_need, c->workspace_size, c->workspace);
    *out = (char *)a;
    return PRT_OK;
}

dnnl_status_t prt_dnnl_mem(dnnl_memory_t *m, const dnnl_memory_desc_t *md, dnnl_engine_t eng) {
    return dnnl_memory_create(m, md, eng, DNNL_MEMORY_NONE);
}

prt_status prt_dnnl_bind(const prt_dnnl_base *b, dnnl_memory_t m, const void *p, const char *what) {
    if (!p) return prt_error(b->ctx, PRT_ERR_INTERNAL, "oneDNN %s: a tensor or workspace has no storage", what);
    return prt_dnnl_check(b->ctx, dnnl_memory_set_data_handle(m, (void *)p), what);
}

prt_status prt_dnnl_exec(const prt_dnnl_base *b, dnnl_primitive_t p, int nargs, const dnnl_exec_arg_t *args,
                         const char *what) {
    PRT_CHECK(prt_dnnl_check(b->ctx, dnnl_primitive_execute(p, b->stream, nargs, args), what));
    return prt_dnnl_check(b->ctx, dnnl_stream_wait(b->stream), what);
}

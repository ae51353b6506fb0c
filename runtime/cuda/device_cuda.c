/* The CUDA device backend: GPU memory from cudaMalloc (the planner asks for one
 * arena, so the step loop never allocates), two non-blocking streams (compute
 * and communication), events without timing for cross-stream order, and the
 * cuBLAS and cuDNN handles bound to the compute stream.
 *
 * Copies and fills are asynchronous on the given stream (NULL: the compute
 * stream); the caller orders them with events or waits with iface->sync. */
#include "runtime/cuda_api.h"

#include <cublas_v2.h>
#include <cudnn.h>
#include <string.h>

#include "runtime/cuda/cuda_util.h"

struct prt_stream {
    cudaStream_t handle;
    bool owned; /* false for the device's own compute and comm streams */
};

struct prt_event {
    cudaEvent_t handle;
};

typedef struct cuda_alloc {
    void *ptr;
    size_t size;
} cuda_alloc;

typedef struct cuda_impl {
    int ordinal;
    struct prt_stream streams[2]; /* PRT_CUDA_COMPUTE, PRT_CUDA_COMM */
    cublasHandle_t cublas;
    cudnnHandle_t cudnn;
    /* cuBLAS's workspace, ours (one cudaMalloc at open, not in allocs): a CUDA
     * graph capture must not make cuBLAS allocate */
    void *cublas_ws;
    cudaStream_t cublas_stream; /* the stream the handle is bound to */
    /* live allocations: free() gets no size, and the arena design keeps this a handful */
    cuda_alloc *allocs;
    int nallocs, cap_allocs;
    size_t cur_bytes, peak_bytes;
    struct cuda_memo *memo; /* prt_cuda_memo_put/get: a handful of entries per distinct layer */
    int nmemo, cap_memo;
} cuda_impl;

typedef struct cuda_memo {
    char *key;
    void *val;
    size_t n;
} cuda_memo;

static const prt_device_iface cuda_iface;

/* cuBLAS recommends at least 32 MiB of workspace on Hopper (4 MiB before). */
#define CUBLAS_WS_BYTES (32 << 20)

static cuda_impl *impl_of(const prt_device *dev) { return dev->impl; }

static cudaStream_t stream_of(prt_device *dev, prt_stream *s) {
    return s ? s->handle : impl_of(dev)->streams[PRT_CUDA_COMPUTE].handle;
}

/* cudaMalloc and kernel launches use the calling thread's current device. */
static prt_status make_current(prt_device *dev) {
    PRT_CUDA_CHECK(dev->ctx, cudaSetDevice(dev->index), "selecting CUDA device %d", dev->index);
    return PRT_OK;
}

static prt_status cuda_alloc_fn(prt_device *dev, size_t size, void **out) {
    cuda_impl *d = impl_of(dev);
    *out = NULL;
    PRT_CHECK(make_current(dev));
    PRT_CHECK(prt_grow(dev->ctx, (void **)&d->allocs, &d->cap_allocs, d->nallocs + 1, sizeof *d->allocs));
    void *p = NULL;
    /* cudaMalloc(0) succeeds with NULL; callers expect a distinct pointer */
    PRT_CUDA_CHECK(dev->ctx, cudaMalloc(&p, size ? size : 1), "allocating %zu bytes on CUDA device %d", size,
                   dev->index);
    d->allocs[d->nallocs++] = (cuda_alloc){p, size};
    d->cur_bytes += size;
    if (d->cur_bytes > d->peak_bytes) d->peak_bytes = d->cur_bytes;
    *out = p;
    return PRT_OK;
}

static void cuda_free_fn(prt_device *dev, void *ptr) {
    if (!ptr) return;
    cuda_impl *d = impl_of(dev);
    for (int i = 0; i < d->nallocs; i++) {
        if (d->allocs[i].ptr != ptr) continue;
        d->cur_bytes -= d->allocs[i].size;
        d->allocs[i] = d->allocs[--d->nallocs];
        /* cudaFree synchronises the device; a failure here is a fault from an
         * earlier kernel, which the next checked call reports */
        (void)cudaFree(ptr);
        return;
    }
    PRT_ASSERT(!"cuda: free of a pointer this device did not allocate");
}

static enum cudaMemcpyKind memcpy_kind(prt_copy_kind kind) {
    switch (kind) {
    case PRT_COPY_HOST_TO_DEVICE: return cudaMemcpyHostToDevice;
    case PRT_COPY_DEVICE_TO_HOST: return cudaMemcpyDeviceToHost;
    case PRT_COPY_DEVICE_TO_DEVICE: return cudaMemcpyDeviceToDevice;
    }
    return cudaMemcpyDefault;
}

static const char *copy_kind_name(prt_copy_kind kind) {
    switch (kind) {
    case PRT_COPY_HOST_TO_DEVICE: return "host to device";
    case PRT_COPY_DEVICE_TO_HOST: return "device to host";
    case PRT_COPY_DEVICE_TO_DEVICE: return "device to device";
    }
    return "?";
}

static prt_status cuda_copy(prt_device *dev, void *dst, const void *src, size_t n, prt_copy_kind kind,
                            prt_stream *s) {
    if (n == 0) return PRT_OK;
    PRT_CUDA_CHECK(dev->ctx, cudaMemcpyAsync(dst, src, n, memcpy_kind(kind), stream_of(dev, s)),
                   "copying %zu bytes %s on CUDA device %d", n, copy_kind_name(kind), dev->index);
    return PRT_OK;
}

static prt_status cuda_fill_f32(prt_device *dev, void *dst, float value, size_t count, prt_stream *s) {
    if (count == 0) return PRT_OK;
    PRT_CHECK(make_current(dev));
    prt_cuda_fill_f32_launch(dst, value, count, stream_of(dev, s));
    PRT_CUDA_LAUNCH_CHECK(dev->ctx, "fill_f32", "filling %zu floats on CUDA device %d", count, dev->index);
    return PRT_OK;
}

static prt_status cuda_sync(prt_device *dev) {
    cuda_impl *d = impl_of(dev);
    static const char *const names[2] = {"compute", "communication"};
    for (int i = 0; i < 2; i++)
        PRT_CUDA_CHECK(dev->ctx, cudaStreamSynchronize(d->streams[i].handle),
                       "waiting for the %s stream of CUDA device %d", names[i], dev->index);
    return PRT_OK;
}

static prt_status cuda_stream_create(prt_device *dev, prt_stream **out) {
    *out = NULL;
    PRT_CHECK(make_current(dev));
    prt_stream *s = prt_calloc(dev->ctx, 1, sizeof *s);
    if (!s) return prt_error(dev->ctx, PRT_ERR_NOMEM, "CUDA device %d: out of memory for a stream", dev->index);
    prt_status st = PRT_OK;
    PRT_CUDA_CHECK_GOTO(dev->ctx, cudaStreamCreateWithFlags(&s->handle, cudaStreamNonBlocking), st, fail,
                        "creating a stream on CUDA device %d", dev->index);
    s->owned = true;
    *out = s;
    return PRT_OK;
fail:
    prt_free(dev->ctx, s, sizeof *s);
    return st;
}

static void cuda_stream_destroy(prt_device *dev, prt_stream *s) {
    if (!s || !s->owned) return; /* the device's own streams live as long as it does */
    (void)cudaStreamDestroy(s->handle);
    prt_free(dev->ctx, s, sizeof *s);
}

static prt_status cuda_event_create(prt_device *dev, prt_event **out) {
    *out = NULL;
    PRT_CHECK(make_current(dev));
    prt_event *e = prt_calloc(dev->ctx, 1, sizeof *e);
    if (!e) return prt_error(dev->ctx, PRT_ERR_NOMEM, "CUDA device %d: out of memory for an event", dev->index);
    prt_status st = PRT_OK;
    /* events only order streams; timing would add a timestamp write per record */
    PRT_CUDA_CHECK_GOTO(dev->ctx, cudaEventCreateWithFlags(&e->handle, cudaEventDisableTiming), st, fail,
                        "creating an event on CUDA device %d", dev->index);
    *out = e;
    return PRT_OK;
fail:
    prt_free(dev->ctx, e, sizeof *e);
    return st;
}

static void cuda_event_destroy(prt_device *dev, prt_event *e) {
    if (!e) return;
    (void)cudaEventDestroy(e->handle);
    prt_free(dev->ctx, e, sizeof *e);
}

static prt_status cuda_event_record(prt_device *dev, prt_event *e, prt_stream *s) {
    PRT_CUDA_CHECK(dev->ctx, cudaEventRecord(e->handle, stream_of(dev, s)), "recording an event on CUDA device %d",
                   dev->index);
    return PRT_OK;
}

static prt_status cuda_event_wait(prt_device *dev, prt_event *e, prt_stream *s) {
    PRT_CUDA_CHECK(dev->ctx, cudaStreamWaitEvent(stream_of(dev, s), e->handle, 0),
                   "making a stream of CUDA device %d wait for an event", dev->index);
    return PRT_OK;
}

static const prt_device_iface cuda_iface = {
    .struct_size = sizeof(prt_device_iface),
    .name = "cuda",
    .alloc = cuda_alloc_fn,
    .free = cuda_free_fn,
    .copy = cuda_copy,
    .fill_f32 = cuda_fill_f32,
    .sync = cuda_sync,
    .stream_create = cuda_stream_create,
    .stream_destroy = cuda_stream_destroy,
    .event_create = cuda_event_create,
    .event_destroy = cuda_event_destroy,
    .event_record = cuda_event_record,
    .event_wait = cuda_event_wait,
};

/* ---- cuda_api.h ------------------------------------------------------- */

int prt_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return n;
}

bool prt_device_is_cuda(const prt_device *dev) { return dev && dev->iface == &cuda_iface; }

prt_status prt_cuda_device_create(prt_context *ctx, int index, prt_device **out) {
    *out = NULL;
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err == cudaSuccess && count == 0) err = cudaErrorNoDevice;
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        return prt_error(ctx, PRT_ERR_UNSUPPORTED, "CUDA device %d: %s (%s)", index, cudaGetErrorString(err),
                         cudaGetErrorName(err));
    }
    if (index < 0 || index >= count)
        return prt_error(ctx, PRT_ERR_INVALID, "CUDA device %d: no such device (%d visible: 0 to %d)", index, count,
                         count - 1);

    prt_device *dev = prt_calloc(ctx, 1, sizeof *dev);
    cuda_impl *d = prt_calloc(ctx, 1, sizeof *d);
    prt_status st = PRT_OK;
    if (!dev || !d) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "CUDA device %d: out of memory", index);
        goto fail;
    }
    *dev = (prt_device){.iface = &cuda_iface, .ctx = ctx, .index = index, .impl = d};
    d->ordinal = index;
    PRT_CHECK_GOTO(make_current(dev), st, fail);
    /* Gradient allreduces on the comm stream get the higher priority: they gate
     * the next step, while the compute stream always has more work queued. */
    int prio_low = 0, prio_high = 0;
    PRT_CUDA_CHECK_GOTO(ctx, cudaDeviceGetStreamPriorityRange(&prio_low, &prio_high), st, fail,
                        "reading stream priorities of CUDA device %d", index);
    PRT_CUDA_CHECK_GOTO(ctx,
                        cudaStreamCreateWithPriority(&d->streams[PRT_CUDA_COMPUTE].handle, cudaStreamNonBlocking,
                                                     prio_low),
                        st, fail, "creating the compute stream of CUDA device %d", index);
    PRT_CUDA_CHECK_GOTO(ctx,
                        cudaStreamCreateWithPriority(&d->streams[PRT_CUDA_COMM].handle, cudaStreamNonBlocking,
                                                     prio_high),
                        st, fail, "creating the communication stream of CUDA device %d", index);
    cudaStream_t compute = d->streams[PRT_CUDA_COMPUTE].handle;
    PRT_CUBLAS_CHECK_GOTO(ctx, cublasCreate(&d->cublas), st, fail, "creating the cuBLAS handle of CUDA device %d",
                          index);
    PRT_CUDA_CHECK_GOTO(ctx, cudaMalloc(&d->cublas_ws, CUBLAS_WS_BYTES), st, fail,
                        "allocating cuBLAS's workspace (%d MiB) on CUDA device %d", CUBLAS_WS_BYTES >> 20, index);
    PRT_CHECK_GOTO(prt_cuda_cublas_bind(dev, compute), st, fail);
    PRT_CUDNN_CHECK_GOTO(ctx, cudnnCreate(&d->cudnn), st, fail, "creating the cuDNN handle of CUDA device %d",
                         index);
    PRT_CUDNN_CHECK_GOTO(ctx, cudnnSetStream(d->cudnn, compute), st, fail,
                         "binding cuDNN to the compute stream of CUDA device %d", index);
    *out = dev;
    return PRT_OK;
fail:
    if (dev && d) {
        prt_cuda_device_destroy(dev);
    } else {
        prt_free(ctx, dev, sizeof *dev);
        prt_free(ctx, d, sizeof *d);
    }
    return st;
}

void prt_cuda_device_destroy(prt_device *dev) {
    if (!dev) return;
    prt_context *ctx = dev->ctx;
    cuda_impl *d = impl_of(dev);
    (void)cudaSetDevice(dev->index);
    for (int i = 0; i < 2; i++)
        if (d->streams[i].handle) (void)cudaStreamSynchronize(d->streams[i].handle);
    if (d->nallocs)
        prt_log_warn(ctx, "CUDA device %d: %d allocations (%zu bytes) still live at destroy; freeing them",
                     dev->index, d->nallocs, d->cur_bytes);
    for (int i = 0; i < d->nallocs; i++) (void)cudaFree(d->allocs[i].ptr);
    if (d->cudnn) (void)cudnnDestroy(d->cudnn);
    if (d->cublas) (void)cublasDestroy(d->cublas);
    if (d->cublas_ws) (void)cudaFree(d->cublas_ws);
    for (int i = 0; i < 2; i++)
        if (d->streams[i].handle) (void)cudaStreamDestroy(d->streams[i].handle);
    prt_free(ctx, d->allocs, (size_t)d->cap_allocs * sizeof *d->allocs);
    for (int i = 0; i < d->nmemo; i++) {
        prt_free(ctx, d->memo[i].key, 0);
        prt_free(ctx, d->memo[i].val, d->memo[i].n ? d->memo[i].n : 1);
    }
    prt_free(ctx, d->memo, (size_t)d->cap_memo * sizeof *d->memo);
    prt_free(ctx, d, sizeof *d);
    prt_free(ctx, dev, sizeof *dev);
}

void *prt_cuda_stream(prt_device *dev, prt_cuda_stream_kind which) {
    return prt_device_is_cuda(dev) ? (void *)impl_of(dev)->streams[which].handle : NULL;
}

void *prt_cuda_cublas(prt_device *dev) { return prt_device_is_cuda(dev) ? (void *)impl_of(dev)->cublas : NULL; }

void *prt_cuda_cudnn(prt_device *dev) { return prt_device_is_cuda(dev) ? (void *)impl_of(dev)->cudnn : NULL; }

const char *prt_cuda_device_describe(prt_device *dev, char *buf, size_t cap) {
    struct cudaDeviceProp p;
    if (!prt_device_is_cuda(dev) || cudaGetDeviceProperties(&p, dev->index) != cudaSuccess) {
        (void)cudaGetLastError();
        snprintf(buf, cap, "CUDA device %d (properties unavailable)", dev ? dev->index : -1);
        return buf;
    }
    snprintf(buf, cap, "%s, %.1f GiB, sm_%d%d", p.name, (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0),
             p.major, p.minor);
    return buf;
}

size_t prt_cuda_peak_bytes(const prt_device *dev) {
    return prt_device_is_cuda(dev) ? impl_of(dev)->peak_bytes : 0;
}

prt_status prt_cuda_memo_put(prt_device *dev, const char *key, const void *val, size_t n) {
    cuda_impl *d = impl_of(dev);
    for (int i = 0; i < d->nmemo; i++)
        if (!strcmp(d->memo[i].key, key) && d->memo[i].n == n) {
            memcpy(d->memo[i].val, val, n);
            return PRT_OK;
        }
    if (d->nmemo == d->cap_memo) {
        int cap = d->cap_memo ? 2 * d->cap_memo : 64;
        cuda_memo *m = prt_realloc(dev->ctx, d->memo, (size_t)d->cap_memo * sizeof *m, (size_t)cap * sizeof *m);
        if (!m) return prt_error(dev->ctx, PRT_ERR_NOMEM, "CUDA device %d: out of memory for set-up choices", dev->index);
        d->memo = m;
        d->cap_memo = cap;
    }
    cuda_memo *e = &d->memo[d->nmemo];
    e->key = prt_strdup(dev->ctx, key);
    e->val = prt_malloc(dev->ctx, n ? n : 1);
    if (!e->key || !e->val) {
        prt_free(dev->ctx, e->key, 0);
        prt_free(dev->ctx, e->val, n ? n : 1);
        return prt_error(dev->ctx, PRT_ERR_NOMEM, "CUDA device %d: out of memory for set-up choices", dev->index);
    }
    memcpy(e->val, val, n);
    e->n = n;
    d->nmemo++;
    return PRT_OK;
}

bool prt_cuda_memo_get(prt_device *dev, const char *key, void *val, size_t n) {
    if (!prt_device_is_cuda(dev)) return false;
    cuda_impl *d = impl_of(dev);
    for (int i = 0; i < d->nmemo; i++)
        if (d->memo[i].n == n && !strcmp(d->memo[i].key, key)) {
            memcpy(val, d->memo[i].val, n);
            return true;
        }
    return false;
}

prt_status prt_cuda_mem_info(prt_device *dev, size_t *used, size_t *total) {
    *used = *total = 0;
    PRT_CHECK(make_current(dev));
    size_t free_b = 0, total_b = 0;
    PRT_CUDA_CHECK(dev->ctx, cudaMemGetInfo(&free_b, &total_b), "reading the memory in use on CUDA device %d",
                   dev->index);
    *used = total_b - free_b;
    *total = total_b;
    return PRT_OK;
}

struct prt_cuda_timer {
    prt_device *dev;
    cudaEvent_t start, stop;
};

prt_status prt_cuda_timer_create(prt_device *dev, prt_cuda_timer **out) {
    *out = NULL;
    prt_cuda_timer *t = prt_calloc(dev->ctx, 1, sizeof *t);
    if (!t) return prt_error(dev->ctx, PRT_ERR_NOMEM, "CUDA timer: out of memory");
    t->dev = dev;
    prt_status st = make_current(dev);
    if (st != PRT_OK) goto fail;
    PRT_CUDA_CHECK_GOTO(dev->ctx, cudaEventCreate(&t->start), st, fail, "creating a timing event on CUDA device %d",
                        dev->index);
    PRT_CUDA_CHECK_GOTO(dev->ctx, cudaEventCreate(&t->stop), st, fail, "creating a timing event on CUDA device %d",
                        dev->index);
    *out = t;
    return PRT_OK;
fail:
    prt_cuda_timer_destroy(t);
    return st;
}

prt_status prt_cuda_timer_start(prt_cuda_timer *t) {
    PRT_CUDA_CHECK(t->dev->ctx, cudaEventRecord(t->start, stream_of(t->dev, NULL)),
                   "starting a timer on CUDA device %d", t->dev->index);
    return PRT_OK;
}

prt_status prt_cuda_timer_stop(prt_cuda_timer *t, double *seconds) {
    *seconds = 0;
    prt_context *ctx = t->dev->ctx;
    int d = t->dev->index;
    float ms = 0;
    PRT_CUDA_CHECK(ctx, cudaEventRecord(t->stop, stream_of(t->dev, NULL)), "stopping a timer on CUDA device %d", d);
    PRT_CUDA_CHECK(ctx, cudaEventSynchronize(t->stop), "waiting for a timer on CUDA device %d", d);
    PRT_CUDA_CHECK(ctx, cudaEventElapsedTime(&ms, t->start, t->stop), "reading a timer on CUDA device %d", d);
    *seconds = ms / 1e3;
    return PRT_OK;
}

void prt_cuda_timer_destroy(prt_cuda_timer *t) {
    if (!t) return;
    if (t->start) cudaEventDestroy(t->start);
    if (t->stop) cudaEventDestroy(t->stop);
    prt_free(t->dev->ctx, t, sizeof *t);
}

prt_status prt_cuda_cublas_bind(prt_device *dev, void *stream) {
    if (!prt_device_is_cuda(dev))
        return prt_error(dev->ctx, PRT_ERR_INTERNAL, "cuBLAS: device %d is not a CUDA device", dev->index);
    cuda_impl *d = impl_of(dev);
    cudaStream_t s = stream ? (cudaStream_t)stream : d->streams[PRT_CUDA_COMPUTE].handle;
    if (d->cublas_stream == s && d->cublas_stream) return PRT_OK;
    PRT_CUBLAS_CHECK(dev->ctx, cublasSetStream(d->cublas, s), "binding cuBLAS to a stream of CUDA device %d",
                     dev->index);
    /* cublasSetStream went back to the default workspace pool */
    PRT_CUBLAS_CHECK(dev->ctx, cublasSetWorkspace(d->cublas, d->cublas_ws, CUBLAS_WS_BYTES),
                     "giving cuBLAS its workspace on CUDA device %d", dev->index);
    d->cublas_stream = s;
    return PRT_OK;
}

/* ---- CUDA graphs -------------------------------------------------------- */

struct prt_cuda_graph {
    prt_context *ctx;
    cudaGraphExec_t exec;
};

prt_status prt_cuda_capture_begin(prt_device *dev) {
    PRT_CHECK(make_current(dev));
    /* thread-local: a capture-unsafe call (a synchronous copy, a cudaMalloc)
     * from this thread invalidates the capture, other threads are unaffected */
    PRT_CUDA_CHECK(dev->ctx,
                   cudaStreamBeginCapture(impl_of(dev)->streams[PRT_CUDA_COMPUTE].handle,
                                          cudaStreamCaptureModeThreadLocal),
                   "starting to capture the compute stream of CUDA device %d", dev->index);
    return PRT_OK;
}

prt_status prt_cuda_capture_end(prt_device *dev, bool keep, prt_cuda_graph **out) {
    *out = NULL;
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamEndCapture(impl_of(dev)->streams[PRT_CUDA_COMPUTE].handle, &graph);
    if (!keep || e != cudaSuccess) {
        if (graph) (void)cudaGraphDestroy(graph);
        /* capture errors are not sticky: clear them so the next call starts clean */
        (void)cudaGetLastError();
        if (!keep) return PRT_OK;
        return prt_cuda_error(dev->ctx, e, "cudaStreamEndCapture", "capturing the step on CUDA device %d",
                              dev->index);
    }
    prt_cuda_graph *g = prt_calloc(dev->ctx, 1, sizeof *g);
    if (!g) {
        (void)cudaGraphDestroy(graph);
        return prt_error(dev->ctx, PRT_ERR_NOMEM, "CUDA device %d: out of memory for a CUDA graph", dev->index);
    }
    g->ctx = dev->ctx;
    e = cudaGraphInstantiate(&g->exec, graph, 0);
    /* the executable graph is independent of the graph it was made from */
    (void)cudaGraphDestroy(graph);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        prt_free(dev->ctx, g, sizeof *g);
        return prt_cuda_error(dev->ctx, e, "cudaGraphInstantiate", "instantiating the captured step on CUDA device %d",
                              dev->index);
    }
    *out = g;
    return PRT_OK;
}

prt_status prt_cuda_graph_launch(prt_device *dev, prt_cuda_graph *g) {
    PRT_CUDA_CHECK(dev->ctx, cudaGraphLaunch(g->exec, impl_of(dev)->streams[PRT_CUDA_COMPUTE].handle),
                   "launching the captured step on CUDA device %d", dev->index);
    return PRT_OK;
}

void prt_cuda_graph_destroy(prt_cuda_graph *g) {
    if (!g) return;
    (void)cudaGraphExecDestroy(g->exec);
    prt_free(g->ctx, g, sizeof *g);
}

prt_status prt_cuda_host_alloc(prt_device *dev, size_t bytes, void **out) {
    *out = NULL;
    PRT_CHECK(make_current(dev));
    PRT_CUDA_CHECK(dev->ctx, cudaMallocHost(out, bytes ? bytes : 1),
                   "allocating %zu bytes of page-locked host memory for CUDA device %d", bytes, dev->index);
    return PRT_OK;
}

void prt_cuda_host_free(prt_device *dev, void *p) {
    (void)dev;
    if (p) (void)cudaFreeHost(p);
}

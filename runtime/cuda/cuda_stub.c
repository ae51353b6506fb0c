/* runtime/cuda_api.h in a build without CUDA (PARROTS_CUDA=OFF): no devices,
 * and opening one says why. */
#include "runtime/cuda_api.h"

#if PARROTS_HAVE_CUDA
#error "cuda_stub.c is only for builds without CUDA (CMakeLists.txt picks it)"
#endif

int prt_cuda_device_count(void) { return 0; }

prt_status prt_cuda_device_create(prt_context *ctx, int index, prt_device **out) {
    *out = NULL;
    return prt_error(ctx, PRT_ERR_UNSUPPORTED,
                     "CUDA device %d: this build of Parrots has no CUDA support "
                     "(configured with PARROTS_CUDA=OFF; see docs/gpu.md)",
                     index);
}

void prt_cuda_device_destroy(prt_device *dev) { (void)dev; }

bool prt_device_is_cuda(const prt_device *dev) {
    (void)dev;
    return false;
}

void *prt_cuda_stream(prt_device *dev, prt_cuda_stream_kind which) {
    (void)dev, (void)which;
    return NULL;
}

void *prt_cuda_cublas(prt_device *dev) {
    (void)dev;
    return NULL;
}

void *prt_cuda_cudnn(prt_device *dev) {
    (void)dev;
    return NULL;
}

const char *prt_cuda_device_describe(prt_device *dev, char *buf, size_t cap) {
    snprintf(buf, cap, "CUDA device %d (no CUDA support in this build)", dev ? dev->index : -1);
    return buf;
}

size_t prt_cuda_peak_bytes(const prt_device *dev) {
    (void)dev;
    return 0;
}

prt_status prt_cuda_mem_info(prt_device *dev, size_t *used, size_t *total) {
    *used = *total = 0;
    return prt_error(dev->ctx, PRT_ERR_UNSUPPORTED, "CUDA device %d: this build of Parrots has no CUDA support",
                     dev->index);
}

prt_status prt_cuda_timer_create(prt_device *dev, prt_cuda_timer **out) {
    *out = NULL;
    return prt_error(dev->ctx, PRT_ERR_UNSUPPORTED, "CUDA device %d: this build of Parrots has no CUDA support",
                     dev->index);
}

prt_status prt_cuda_timer_start(prt_cuda_timer *t) {
    (void)t;
    return PRT_ERR_UNSUPPORTED;
}

prt_status prt_cuda_timer_stop(prt_cuda_timer *t, double *seconds) {
    (void)t;
    *seconds = 0;
    return PRT_ERR_UNSUPPORTED;
}

void prt_cuda_timer_destroy(prt_cuda_timer *t) { (void)t; }

prt_status prt_cuda_memo_put(prt_device *dev, const char *key, const void *val, size_t n) {
    (void)key, (void)val, (void)n;
    return prt_error(dev->ctx, PRT_ERR_UNSUPPORTED, "CUDA device %d: this build of Parrots has no CUDA support",
                     dev->index);
}

bool prt_cuda_memo_get(prt_device *dev, const char *key, void *val, size_t n) {
    (void)dev, (void)key, (void)val, (void)n;
    return false;
}

static prt_status no_cuda(prt_device *dev, const char *what) {
    return prt_error(dev->ctx, PRT_ERR_UNSUPPORTED, "%s: this build of Parrots has no CUDA support", what);
}

prt_status prt_cuda_cublas_bind(prt_device *dev, void *stream) {
    (void)stream;
    return no_cuda(dev, "cuBLAS");
}

prt_status prt_cuda_capture_begin(prt_device *dev) { return no_cuda(dev, "CUDA graph capture"); }

prt_status prt_cuda_capture_end(prt_device *dev, bool keep, prt_cuda_graph **out) {
    (void)keep;
    *out = NULL;
    return no_cuda(dev, "CUDA graph capture");
}

prt_status prt_cuda_graph_launch(prt_device *dev, prt_cuda_graph *g) {
    (void)g;
    return no_cuda(dev, "CUDA graph launch");
}

void prt_cuda_graph_destroy(prt_cuda_graph *g) { (void)g; }

prt_status prt_cuda_host_alloc(prt_device *dev, size_t bytes, void **out) {
    (void)bytes;
    *out = NULL;
    return no_cuda(dev, "page-locked host memory");
}

void prt_cuda_host_free(prt_device *dev, void *p) { (void)dev, (void)p; }

/* The CPU device backend: aligned host memory, one in-order queue (so the
 * optional stream and event slots stay NULL). */
#include "runtime/runtime_impl.h"

#include <stdlib.h>
#include <string.h>

/* 64 bytes: a cache line, and the alignment oneDNN and AVX-512 loads prefer. */
#define CPU_ALIGN 64

static prt_status cpu_alloc(prt_device *dev, size_t size, void **out) {
    size_t rounded;
    if (!prt_add_size(size, CPU_ALIGN - 1, &rounded))
        return prt_error(dev->ctx, PRT_ERR_OVERFLOW, "cpu: allocation of %zu bytes overflows", size);
    rounded &= ~(size_t)(CPU_ALIGN - 1);
    void *p = aligned_alloc(CPU_ALIGN, rounded ? rounded : CPU_ALIGN);
    if (!p) return prt_error(dev->ctx, PRT_ERR_NOMEM, "cpu: out of memory allocating %zu bytes", size);
    *out = p;
    return PRT_OK;
}

static void cpu_free(prt_device *dev, void *ptr) {
    (void)dev;
    free(ptr);
}

static prt_status cpu_copy(prt_device *dev, void *dst, const void *src, size_t n, prt_copy_kind kind,
                           prt_stream *s) {
    (void)dev, (void)kind, (void)s;
    if (n) memmove(dst, src, n);
    return PRT_OK;
}

static prt_status cpu_fill_f32(prt_device *dev, void *dst, float value, size_t count, prt_stream *s) {
    (void)dev, (void)s;
    float *p = dst;
    for (size_t i = 0; i < count; i++) p[i] = value;
    return PRT_OK;
}

static prt_status cpu_sync(prt_device *dev) {
    (void)dev;
    return PRT_OK;
}

static const prt_device_iface cpu_iface = {
    .struct_size = sizeof(prt_device_iface),
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .copy = cpu_copy,
    .fill_f32 = cpu_fill_f32,
    .sync = cpu_sync,
};

void prt_cpu_device_init(prt_context *ctx, prt_device *dev) {
    dev->iface = &cpu_iface;
    dev->ctx = ctx;
    dev->index = 0;
    dev->impl = NULL;
}

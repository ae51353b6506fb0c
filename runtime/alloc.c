/* Allocation through the context's hook, so tests can inject out-of-memory. */
#include "runtime/runtime_impl.h"

#include <stdlib.h>
#include <string.h>

void *prt_malloc(prt_context *ctx, size_t n) {
    if (n == 0) n = 1;
    return ctx->alloc(ctx->alloc_ud, NULL, 0, n);
}

void *prt_calloc(prt_context *ctx, size_t count, size_t size) {
    size_t n;
    if (!prt_mul_size(count, size, &n)) return NULL;
    void *p = prt_malloc(ctx, n);
    if (p) memset(p, 0, n);
    return p;
}

void *prt_realloc(prt_context *ctx, void *p, size_t old_n, size_t new_n) {
    if (new_n == 0) new_n = 1;
    return ctx->alloc(ctx->alloc_ud, p, old_n, new_n);
}

void prt_free(prt_context *ctx, void *p, size_t n) {
    if (p) ctx->alloc(ctx->alloc_ud, p, n, 0);
}

char *prt_strdup(prt_context *ctx, const char *s) {
    size_t n = strlen(s) + 1;
    char *d = prt_malloc(ctx, n);
    if (d) memcpy(d, s, n);
    return d;
}

prt_status prt_grow(prt_context *ctx, void **arr, int *cap, int need, size_t elem) {
    if (need <= *cap) return PRT_OK;
    if (need < 0 || need > (1 << 28))
        return prt_error(ctx, PRT_ERR_LIMIT, "array of %d elements is too large", need);
    int ncap = *cap ? *cap : 8;
    while (ncap < need) ncap *= 2;
    size_t old_bytes = (size_t)*cap * elem, bytes;
    if (!prt_mul_size((size_t)ncap, elem, &bytes))
        return prt_error(ctx, PRT_ERR_OVERFLOW, "array size overflows");
    void *p = prt_realloc(ctx, *arr, old_bytes, bytes);
    if (!p) return prt_error(ctx, PRT_ERR_NOMEM, "out of memory growing an array to %zu bytes", bytes);
    memset((char *)p + old_bytes, 0, bytes - old_bytes);
    *arr = p;
    *cap = ncap;
    return PRT_OK;
}

/* dtypes (tables generated from runtime/dtypes.def) and overflow-checked shapes. */
#include "runtime/runtime_impl.h"

#include <string.h>

static const unsigned char dtype_size[] = {
#define X(name, size, str) size,
#include "runtime/dtypes.def"
#undef X
};
static const char *const dtype_name[] = {
#define X(name, size, str) str,
#include "runtime/dtypes.def"
#undef X
};

size_t prt_dtype_size(prt_dtype t) { return (unsigned)t < PRT_DTYPE_COUNT ? dtype_size[t] : 0; }
const char *prt_dtype_name(prt_dtype t) { return (unsigned)t < PRT_DTYPE_COUNT ? dtype_name[t] : "?"; }

bool prt_dtype_from_name(const char *name, prt_dtype *out) {
    for (int i = 0; i < PRT_DTYPE_COUNT; i++)
        if (strcmp(dtype_name[i], name) == 0) {
            *out = (prt_dtype)i;
            return true;
        }
    return false;
}

prt_shape prt_shape_make(int ndim, const int64_t *d) {
    prt_shape s = {0};
    PRT_ASSERT(ndim >= 0 && ndim <= PRT_MAX_DIMS);
    s.ndim = ndim;
    for (int i = 0; i < ndim; i++) s.d[i] = d[i];
    return s;
}

prt_shape prt_shape4(int64_t n, int64_t c, int64_t h, int64_t w) {
    prt_shape s = {.ndim = 4, .d = {n, c, h, w}};
    return s;
}

bool prt_shape_eq(const prt_shape *a, const prt_shape *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->d[i] != b->d[i]) return false;
    return true;
}

prt_status prt_shape_numel(prt_context *ctx, const prt_shape *s, int64_t *out) {
    char buf[160];
    if (s->ndim < 0 || s->ndim > PRT_MAX_DIMS)
        return prt_error(ctx, PRT_ERR_SHAPE, "shape has %d dimensions (at most %d)", s->ndim, PRT_MAX_DIMS);
    int64_t n = 1;
    for (int i = 0; i < s->ndim; i++) {
        if (s->d[i] < 0)
            return prt_error(ctx, PRT_ERR_SHAPE, "shape %s has a negative dimension",
                             prt_shape_str(s, buf, sizeof buf));
        if (!prt_mul_i64(n, s->d[i], &n) || n > PRT_MAX_ELEMS)
            return prt_error(ctx, PRT_ERR_LIMIT, "shape %s has more than 2^40 elements",
                             prt_shape_str(s, buf, sizeof buf));
    }
    *out = n;
    return PRT_OK;
}

prt_status prt_shape_nbytes(prt_context *ctx, const prt_shape *s, prt_dtype t, size_t *out) {
    int64_t n;
    PRT_CHECK(prt_shape_numel(ctx, s, &n));
    if (!prt_mul_size((size_t)n, prt_dtype_size(t), out))
        return prt_error(ctx, PRT_ERR_OVERFLOW, "tensor byte size overflows");
    return PRT_OK;
}

int64_t prt_shape_count(const prt_shape *s) {
    int64_t n = 1;
    for (int i = 0; i < s->ndim; i++) n *= s->d[i];
    return n;
}

char *prt_shape_str(const prt_shape *s, char *buf, size_t cap) {
    size_t k = 0;
    if (cap == 0) return buf;
    buf[0] = '\0';
    k += (size_t)snprintf(buf + k, cap - k, "[");
    for (int i = 0; i < s->ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, i ? ", %lld" : "%lld", (long long)s->d[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
    return buf;
}

/* Runtime internals shared by every folder: the context, allocation, errors,
 * logging, checked size arithmetic, dtypes, shapes, tensors, the device-backend
 * interface and the counter-based RNG.
 *
 *     size_t bytes;
 *     PRT_CHECK(prt_shape_nbytes(ctx, &shape, PRT_F32, &bytes));
 *     float *p = prt_malloc(ctx, bytes);
 *     if (!p) return prt_error(ctx, PRT_ERR_NOMEM, "tensor '%s': %zu bytes", name, bytes);
 */
#ifndef PARROTS_RUNTIME_IMPL_H
#define PARROTS_RUNTIME_IMPL_H

#include "parrots/parrots.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

/* ---- errors ----------------------------------------------------------- */

#define PRT_CHECK(expr)                                                        \
    do {                                                                       \
        prt_status prt_st_ = (expr);                                           \
        if (prt_st_ != PRT_OK) return prt_st_;                                 \
    } while (0)

#define PRT_CHECK_GOTO(expr, st, label)                                        \
    do {                                                                       \
        (st) = (expr);                                                         \
        if ((st) != PRT_OK) goto label;                                        \
    } while (0)

/* Internal invariants only; never for anything a user or file can cause. */
#define PRT_ASSERT(cond)                                                       \
    do {                                                                       \
        if (!(cond)) prt_assert_fail(#cond, __FILE__, __LINE__);               \
    } while (0)
_Noreturn void prt_assert_fail(const char *cond, const char *file, int line);

#if defined(__GNUC__)
#define PRT_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define PRT_PRINTF(a, b)
#endif

/* Records a formatted message in ctx and returns st (so `return prt_error(...)`). */
prt_status prt_error(prt_context *ctx, prt_status st, const char *fmt, ...) PRT_PRINTF(3, 4);
prt_status prt_errorv(prt_context *ctx, prt_status st, const char *fmt, va_list ap);
/* Prepends "prefix: " to the current message (adds context while unwinding). */
prt_status prt_error_prefix(prt_context *ctx, prt_status st, const char *fmt, ...) PRT_PRINTF(3, 4);
void prt_error_clear(prt_context *ctx);

/* A place in a source file, for messages: "file:line:col". line 0 = unknown. */
typedef struct prt_loc {
    const char *file; /* borrowed: interned in the graph or context */
    int line, col;
} prt_loc;

/* ---- logging ---------------------------------------------------------- */

enum { PRT_LOG_ERROR = 0, PRT_LOG_WARN = 1, PRT_LOG_INFO = 2, PRT_LOG_DEBUG = 3 };
void prt_log(prt_context *ctx, int level, const char *fmt, ...) PRT_PRINTF(3, 4);
#define prt_log_debug(ctx, ...) prt_log(ctx, PRT_LOG_DEBUG, __VA_ARGS__)
#define prt_log_info(ctx, ...) prt_log(ctx, PRT_LOG_INFO, __VA_ARGS__)
#define prt_log_warn(ctx, ...) prt_log(ctx, PRT_LOG_WARN, __VA_ARGS__)

/* ---- allocation through the context's hook ---------------------------- */

void *prt_malloc(prt_context *ctx, size_t n);
void *prt_calloc(prt_context *ctx, size_t count, size_t size); /* overflow-checked */
void *prt_realloc(prt_context *ctx, void *p, size_t old_n, size_t new_n);
void prt_free(prt_context *ctx, void *p, size_t n); /* n: size given at allocation; 0 ok */
char *prt_strdup(prt_context *ctx, const char *s);  /* free with prt_free(ctx, s, 0) */
/* Grows *arr (element size elem) so it holds at least need elements. */
prt_status prt_grow(prt_context *ctx, void **arr, int *cap, int need, size_t elem);

/* ---- checked size arithmetic (shapes come from files) ------------------ */

static inline bool prt_mul_size(size_t a, size_t b, size_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool prt_add_size(size_t a, size_t b, size_t *out) {
    return !__builtin_add_overflow(a, b, out);
}
static inline bool prt_mul_i64(int64_t a, int64_t b, int64_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool prt_add_i64(int64_t a, int64_t b, int64_t *out) {
    return !__builtin_add_overflow(a, b, out);
}

/* ---- dtypes ----------------------------------------------------------- */

typedef enum prt_dtype {
#define X(name, size, str) PRT_##name,
#include "runtime/dtypes.def"
#undef X
    PRT_DTYPE_COUNT
} prt_dtype;

size_t prt_dtype_size(prt_dtype t);
const char *prt_dtype_name(prt_dtype t);
/* Looks a dtype up by name ("f32"); false if unknown. */
bool prt_dtype_from_name(const char *name, prt_dtype *out);

/* ---- shapes ----------------------------------------------------------- */

#define PRT_MAX_DIMS 8
/* Largest tensor element count accepted from a file (2^40). */
#define PRT_MAX_ELEMS ((int64_t)1 << 40)

typedef struct prt_shape {
    int ndim;
    int64_t d[PRT_MAX_DIMS];
} prt_shape;

prt_shape prt_shape_make(int ndim, const int64_t *d);
prt_shape prt_shape4(int64_t n, int64_t c, int64_t h, int64_t w);
bool prt_shape_eq(const prt_shape *a, const prt_shape *b);
/* Element count with overflow and PRT_MAX_ELEMS checks. */
prt_status prt_shape_numel(prt_context *ctx, const prt_shape *s, int64_t *out);
prt_status prt_shape_nbytes(prt_context *ctx, const prt_shape *s, prt_dtype t, size_t *out);
/* Unchecked count for shapes that already passed prt_shape_numel. */
int64_t prt_shape_count(const prt_shape *s);
/* "[8, 3, 32, 32]" into buf (always terminated); returns buf. */
char *prt_shape_str(const prt_shape *s, char *buf, size_t cap);

/* ---- device backends -------------------------------------------------- */

typedef struct prt_device prt_device;
typedef struct prt_stream prt_stream;
typedef struct prt_event prt_event;

typedef enum prt_copy_kind {
    PRT_COPY_HOST_TO_DEVICE,
    PRT_COPY_DEVICE_TO_HOST,
    PRT_COPY_DEVICE_TO_DEVICE,
} prt_copy_kind;

/* A device backend is a table of functions (ggml's ggml_backend_i). Frozen layout:
 * struct_size first; new slots are appended. Slots marked optional may be NULL and
 * the core supplies a default. */
typedef struct prt_device_iface {
    size_t struct_size;
    const char *name; /* "cpu", "cuda" */
    prt_status (*alloc)(prt_device *dev, size_t size, void **out);
    void (*free)(prt_device *dev, void *ptr);
    prt_status (*copy)(prt_device *dev, void *dst, const void *src, size_t n,
                       prt_copy_kind kind, prt_stream *s);
    prt_status (*fill_f32)(prt_device *dev, void *dst, float value, size_t count, prt_stream *s);
    prt_status (*sync)(prt_device *dev);
    /* optional: a backend with one in-order queue leaves these NULL */
    prt_status (*stream_create)(prt_device *dev, prt_stream **out);
    void (*stream_destroy)(prt_device *dev, prt_stream *s);
    prt_status (*event_create)(prt_device *dev, prt_event **out);
    void (*event_destroy)(prt_device *dev, prt_event *e);
    prt_status (*event_record)(prt_device *dev, prt_event *e, prt_stream *s);
    prt_status (*event_wait)(prt_device *dev, prt_event *e, prt_stream *s);
} prt_device_iface;

struct prt_device {
    const prt_device_iface *iface;
    prt_context *ctx;
    int index;
    void *impl;
};

/* The context's CPU device (borrowed for the context's lifetime). */
prt_device *prt_cpu_device(prt_context *ctx);

/* ---- tensors ---------------------------------------------------------- */

/* A buffer owns device memory. Tensors are views into buffers. */
typedef struct prt_buffer {
    prt_device *dev;
    void *data;
    size_t size;
    int refs;
    bool owned; /* false: data is borrowed (e.g. a slice of an arena) */
} prt_buffer;

typedef struct prt_tensor {
    void *data;          /* first element; NULL for a tensor with no storage yet */
    prt_buffer *buf;     /* owner of the storage; NULL for borrowed memory */
    size_t offset;       /* bytes from buf->data to data */
    prt_dtype dtype;
    prt_shape shape;
    int64_t strides[PRT_MAX_DIMS]; /* in elements */
} prt_tensor;

/* Allocates a contiguous tensor on dev. Caller frees with prt_tensor_release. */
prt_status prt_tensor_alloc(prt_context *ctx, prt_device *dev, prt_dtype t,
                            const prt_shape *s, prt_tensor *out);
/* A contiguous view on borrowed memory (no ownership; release is a no-op on it). */
void prt_tensor_wrap(prt_tensor *out, void *data, prt_dtype t, const prt_shape *s);
void prt_tensor_release(prt_context *ctx, prt_tensor *t);
void prt_tensor_set_contiguous(prt_tensor *t);
bool prt_tensor_is_contiguous(const prt_tensor *t);
static inline void *prt_tensor_data(const prt_tensor *t) { return t->data; }
#define PRT_F32P(t) ((float *)prt_tensor_data(t))

/* ---- counter-based RNG (Philox4x32-10) --------------------------------- */

/* The same (key, counter) gives the same numbers on every rank and thread count:
 * element i of a stream uses counter i, so any split of the work reproduces it. */
void prt_philox4x32(uint64_t key, uint64_t counter_hi, uint64_t counter_lo, uint32_t out[4]);
/* Uniform float in [0,1) for element i of stream `key`. */
float prt_rng_uniform(uint64_t key, uint64_t i);
/* Standard normal for element i of stream `key` (Box-Muller over one Philox block). */
float prt_rng_normal(uint64_t key, uint64_t i);
/* Fills n floats: uniform [lo,hi) or normal(mean, std), element i from counter i. */
void prt_rng_fill_uniform(uint64_t key, float *dst, int64_t n, float lo, float hi);
void prt_rng_fill_normal(uint64_t key, float *dst, int64_t n, float mean, float std);
/* 64-bit FNV-1a of a string, to derive per-tensor keys from names. */
uint64_t prt_hash_str(const char *s, uint64_t seed);

/* ---- the context ------------------------------------------------------ */

typedef struct prt_registry prt_registry; /* ops/ops_impl.h */

struct prt_context {
    prt_alloc_fn alloc;
    void *alloc_ud;
    int log_level;
    FILE *log_out;
    uint64_t seed;
    int num_threads;
    prt_status last_status;
    char errmsg[2048];
    prt_device cpu;
    prt_registry *ops;
    struct prt_plugin *plugins; /* loaded operator plugins, newest first (ops/plugin.c) */
};

/* Time in seconds from a monotonic clock. */
double prt_now(void);

/* Sets the CPU threads kernels use (0: all cores), as prt_context_options
 * num_threads does at creation (a data-parallel rank learns how many ranks share
 * its machine only after the context exists). */
void prt_context_set_threads(prt_context *ctx, int n);

#endif

/* The context: allocator, log, RNG seed, the CPU device and the op registry. */
#include "ops/ops_impl.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

void prt_cpu_device_init(prt_context *ctx, prt_device *dev); /* device_cpu.c */
void prt_plugins_unload(prt_context *ctx);                    /* ops/plugin.c */

static void *default_alloc(void *ud, void *ptr, size_t old_size, size_t new_size) {
    (void)ud;
    (void)old_size;
    if (new_size == 0) {
        free(ptr);
        return NULL;
    }
    return realloc(ptr, new_size);
}

prt_status prt_context_create(const prt_context_options *opts, prt_context **out) {
    *out = NULL;
    prt_context_options o = {.struct_size = sizeof o, .log_level = PRT_LOG_INFO, .seed = 0x5eed};
    if (opts) {
        if (opts->struct_size < sizeof(size_t) || opts->struct_size > sizeof o) return PRT_ERR_INVALID;
        memcpy(&o, opts, opts->struct_size);
        if (!o.seed) o.seed = 0x5eed;
    }
    prt_alloc_fn alloc = o.alloc ? o.alloc : default_alloc;
    prt_context *ctx = alloc(o.alloc_ud, NULL, 0, sizeof *ctx);
    if (!ctx) return PRT_ERR_NOMEM;
    memset(ctx, 0, sizeof *ctx);
    ctx->alloc = alloc;
    ctx->alloc_ud = o.alloc_ud;
    ctx->log_level = o.log_level;
    ctx->log_out = stderr;
    ctx->seed = o.seed;
    ctx->num_threads = o.num_threads;
#ifdef _OPENMP
    if (o.num_threads > 0) omp_set_num_threads(o.num_threads);
#endif
    prt_cpu_device_init(ctx, &ctx->cpu);
    prt_status st = prt_registry_create(ctx, &ctx->ops);
    if (st != PRT_OK) {
        alloc(o.alloc_ud, ctx, sizeof *ctx, 0);
        return st;
    }
    *out = ctx;
    return PRT_OK;
}

void prt_context_destroy(prt_context *ctx) {
    if (!ctx) return;
    prt_registry_destroy(ctx, ctx->ops);
    /* after the registry: its schemas point into the plugins */
    prt_plugins_unload(ctx);
    ctx->alloc(ctx->alloc_ud, ctx, sizeof *ctx, 0);
}

prt_device *prt_cpu_device(prt_context *ctx) { return &ctx->cpu; }

void prt_log(prt_context *ctx, int level, const char *fmt, ...) {
    static const char *const names[] = {"error", "warning", "info", "debug"};
    if (!ctx || level > ctx->log_level || !ctx->log_out) return;
    va_list ap;
    va_start(ap, fmt);
    if (level != PRT_LOG_INFO) fprintf(ctx->log_out, "parrots: %s: ", names[level]);
    vfprintf(ctx->log_out, fmt, ap);
    fputc('\n', ctx->log_out);
    va_end(ap);
}

double prt_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void prt_context_set_threads(prt_context *ctx, int n) {
    ctx->num_threads = n > 0 ? n : 0;
#ifdef _OPENMP
    omp_set_num_threads(n > 0 ? n : omp_get_num_procs());
#endif
}

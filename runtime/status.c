/* Status codes (generated from include/parrots/status.def) and the per-context
 * error message. */
#include "runtime/runtime_impl.h"

#include <stdlib.h>
#include <string.h>

static const char *const status_desc[] = {
#define X(name, cls, desc) desc,
#include "parrots/status.def"
#undef X
};

static const unsigned char status_class[] = {
#define X(name, cls, desc) cls,
#include "parrots/status.def"
#undef X
};

const char *prt_status_str(prt_status st) {
    if ((unsigned)st >= PRT_STATUS_COUNT) return "unknown status";
    return status_desc[st];
}

int prt_status_exit_code(prt_status st) {
    if ((unsigned)st >= PRT_STATUS_COUNT) return 1;
    return status_class[st];
}

prt_status prt_errorv(prt_context *ctx, prt_status st, const char *fmt, va_list ap) {
    if (!ctx) return st;
    ctx->last_status = st;
    vsnprintf(ctx->errmsg, sizeof ctx->errmsg, fmt, ap);
    return st;
}

prt_status prt_error(prt_context *ctx, prt_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    prt_errorv(ctx, st, fmt, ap);
    va_end(ap);
    return st;
}

prt_status prt_error_prefix(prt_context *ctx, prt_status st, const char *fmt, ...) {
    if (!ctx) return st;
    char prefix[512], old[sizeof ctx->errmsg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, ctx->errmsg, sizeof old);
    /* assembled by hand: the message is cut at the buffer's end, never overrun */
    size_t cap = sizeof ctx->errmsg, k = strlen(prefix);
    memcpy(ctx->errmsg, prefix, k);
    ctx->errmsg[k++] = ':';
    ctx->errmsg[k++] = ' ';
    size_t rest = strlen(old);
    if (rest > cap - 1 - k) rest = cap - 1 - k;
    memcpy(ctx->errmsg + k, old, rest);
    ctx->errmsg[k + rest] = '\0';
    ctx->last_status = st;
    return st;
}

void prt_error_clear(prt_context *ctx) {
    if (!ctx) return;
    ctx->last_status = PRT_OK;
    ctx->errmsg[0] = '\0';
}

const char *prt_last_error(const prt_context *ctx) { return ctx ? ctx->errmsg : ""; }

void prt_assert_fail(const char *cond, const char *file, int line) {
    fprintf(stderr, "parrots: internal error: assertion '%s' failed at %s:%d\n", cond, file, line);
    abort();
}

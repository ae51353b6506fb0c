/* Helpers of the YAML frontend: the load's arena, located error messages, and the
 * short descriptions and "did you mean" matches those messages use. */
#include "frontends/yaml_impl.h"

#include <stdarg.h>
#include <stdint.h>
#include <string.h>

/* ---- arena ---------------------------------------------------------------- */

struct prt_ychunk {
    prt_ychunk *prev;
    size_t cap, used;
    max_align_t data[];
};

#define YARENA_CHUNK ((size_t)64 << 10)

void prt_yarena_init(prt_yarena *a, prt_context *ctx) {
    a->ctx = ctx;
    a->top = NULL;
}

void *prt_yarena_alloc(prt_yarena *a, size_t n) {
    const size_t align = sizeof(max_align_t);
    if (n == 0) n = 1;
    if (n > SIZE_MAX - align) return NULL;
    n = (n + align - 1) / align * align;
    prt_ychunk *c = a->top;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > YARENA_CHUNK ? n : YARENA_CHUNK, bytes;
        if (!prt_add_size(sizeof *c, cap, &bytes)) return NULL;
        c = prt_malloc(a->ctx, bytes);
        if (!c) return NULL;
        c->prev = a->top;
        c->cap = cap;
        c->used = 0;
        a->top = c;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

char *prt_yarena_strndup(prt_yarena *a, const char *s, size_t n) {
    if (n == SIZE_MAX) return NULL;
    char *d = prt_yarena_alloc(a, n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

prt_yarena_mark prt_yarena_save(const prt_yarena *a) {
    prt_yarena_mark m = {a->top, a->top ? a->top->used : 0};
    return m;
}

void prt_yarena_restore(prt_yarena *a, prt_yarena_mark m) {
    while (a->top && a->top != m.top) {
        prt_ychunk *c = a->top;
        a->top = c->prev;
        prt_free(a->ctx, c, sizeof *c + c->cap);
    }
    if (a->top) a->top->used = m.used;
}

void prt_yarena_free(prt_yarena *a) {
    prt_yarena_mark none = {NULL, 0};
    prt_yarena_restore(a, none);
}

/* ---- messages ------------------------------------------------------------- */

prt_status prt_yerr_loc(prt_context *ctx, const char *file, int line, int col, prt_status st,
                        const char *fmt, ...) {
    char msg[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return prt_error(ctx, st, "%s:%d:%d: %s", file ? file : "?", line, col, msg);
}

prt_status prt_yerr(prt_context *ctx, const prt_ynode *at, prt_status st, const char *fmt, ...) {
    char msg[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!at) return prt_error(ctx, st, "%s", msg);
    return prt_error(ctx, st, "%s:%d:%d: %s", at->file ? at->file : "?", at->line, at->col, msg);
}

const char *prt_yshort(const char *s, char *buf, size_t cap) {
    /* at most 48 bytes of output (fewer for a small buf), cut on a character
     * boundary; control characters escaped so that a message stays one line */
    size_t max = cap >= 52 ? 48 : (cap >= 8 ? cap - 4 : 0), o = 0, keep = 0;
    const unsigned char *p = (const unsigned char *)s;
    if (!cap) return buf;
    while (*p) {
        char esc[8];
        size_t n, used;
        if (*p < 0x20 || *p == 0x7f) {
            n = (size_t)snprintf(esc, sizeof esc, *p == '\n' ? "\\n" : *p == '\t' ? "\\t" : "\\x%02X", *p);
            used = 1;
        } else {
            n = 1;
            while (n < 4 && (p[n] & 0xC0) == 0x80) n++; /* one whole UTF-8 character */
            memcpy(esc, p, n);
            used = n;
        }
        if (o + n > max) {
            memcpy(buf + keep, "...", 4);
            return buf;
        }
        memcpy(buf + o, esc, n);
        o += n;
        p += used;
        if (o + 3 <= max) keep = o;
    }
    buf[o] = '\0';
    return buf;
}

const char *prt_ydescribe(const prt_ynode *n, char *buf, size_t cap) {
    char tmp[64];
    if (!n) {
        snprintf(buf, cap, "nothing");
        return buf;
    }
    switch (n->kind) {
    case PRT_YN_NULL: snprintf(buf, cap, "null"); break;
    case PRT_YN_BOOL: snprintf(buf, cap, "%s", n->i ? "true" : "false"); break;
    case PRT_YN_INT: snprintf(buf, cap, "integer %s", prt_yshort(n->s, tmp, sizeof tmp)); break;
    case PRT_YN_FLOAT: snprintf(buf, cap, "number %s", prt_yshort(n->s, tmp, sizeof tmp)); break;
    case PRT_YN_STR: snprintf(buf, cap, "string '%s'", prt_yshort(n->s, tmp, sizeof tmp)); break;
    case PRT_YN_SEQ: snprintf(buf, cap, "a list"); break;
    case PRT_YN_MAP: snprintf(buf, cap, "a mapping"); break;
    }
    return buf;
}

const char *prt_ynearest(const char *name, const char *const *cands, int n) {
    const char *best = NULL;
    int bestd = 0;
    size_t len = strlen(name);
    /* long inputs are not typos of short keys; bounding also keeps the DP cheap */
    if (len > 64) return NULL;
    for (int k = 0; k < n; k++) {
        if (!cands[k] || strlen(cands[k]) > 64) continue;
        int d = prt_edit_distance(name, cands[k]);
        if (!best || d < bestd) {
            best = cands[k];
            bestd = d;
        }
    }
    /* a typo: at most 2 edits, and fewer edits than the word has letters */
    if (best && bestd <= 2 && (size_t)bestd < len && bestd > 0) return best;
    return NULL;
}

bool prt_yname_ok(const char *s) {
    if (!*s) return false;
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '-'))
            return false;
    }
    return true;
}

bool prt_yident_ok(const char *s, size_t n) {
    if (n == 0) return false;
    for (size_t k = 0; k < n; k++) {
        char c = s[k];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!alpha && !(k > 0 && c >= '0' && c <= '9')) return false;
    }
    return true;
}

/* Timelines (runtime/trace.h): a fixed array of spans filled under a mutex,
 * written as one Chrome-trace JSON file by rank 0.
 *
 * Clocks: spans are in prt_now() seconds (CLOCK_MONOTONIC), which different
 * machines do not share. At creation each rank notes the offset from that
 * clock to the wall clock, so at write time every rank can name its earliest
 * event in wall-clock nanoseconds; one allgather gives every rank the job's
 * earliest, and each rank shifts its own timestamps before serialising. Rank 0
 * then only concatenates text. Within one machine the offsets differ by the
 * jitter of two clock reads; across machines by the clock synchronisation. */
#include "runtime/trace.h"

#include "runtime/comm_api.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Every category's tid must have a thread name below. */
#define X(name, tid, doc) _Static_assert((tid) >= 0 && (tid) < 2, "trace category " #name ": tid out of range");
PRT_TRACE_CATS(X)
#undef X

static const char *const cat_names[] = {
#define X(name, tid, doc) #name,
    PRT_TRACE_CATS(X)
#undef X
};

static const int cat_tids[] = {
#define X(name, tid, doc) tid,
    PRT_TRACE_CATS(X)
#undef X
};

static const char *const tid_names[] = {"compute", "communication"};
#define NUM_TIDS 2

struct prt_trace {
    prt_context *ctx;
    int rank;
    pthread_mutex_t mu;
    prt_trace_event *ev; /* cap entries, allocated at creation */
    size_t n, cap, dropped;
    int64_t wall_minus_mono_ns; /* CLOCK_REALTIME - CLOCK_MONOTONIC at creation */
};

static int64_t ts_ns(const struct timespec *ts) { return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec; }

prt_status prt_trace_create(prt_context *ctx, int rank, size_t max_events, prt_trace **out) {
    *out = NULL;
    if (rank < 0) return prt_error(ctx, PRT_ERR_INVALID, "trace: rank %d is negative", rank);
    if (max_events == 0) max_events = PRT_TRACE_DEFAULT_EVENTS;
    size_t bytes;
    if (!prt_mul_size(max_events, sizeof(prt_trace_event), &bytes))
        return prt_error(ctx, PRT_ERR_OVERFLOW, "trace: %zu events overflow a size", max_events);
    prt_trace *t = prt_calloc(ctx, 1, sizeof *t);
    if (!t) return prt_error(ctx, PRT_ERR_NOMEM, "trace: %zu bytes", sizeof *t);
    /* Not zeroed: the pages of a large trace are only touched as it fills. */
    t->ev = prt_malloc(ctx, bytes);
    if (!t->ev) {
        prt_free(ctx, t, sizeof *t);
        return prt_error(ctx, PRT_ERR_NOMEM, "trace: %zu events (%zu bytes)", max_events, bytes);
    }
    if (pthread_mutex_init(&t->mu, NULL) != 0) {
        prt_free(ctx, t->ev, bytes);
        prt_free(ctx, t, sizeof *t);
        return prt_error(ctx, PRT_ERR_INTERNAL, "trace: cannot create a mutex");
    }
    t->ctx = ctx;
    t->rank = rank;
    t->cap = max_events;
    struct timespec mono, wall;
    clock_gettime(CLOCK_MONOTONIC, &mono);
    clock_gettime(CLOCK_REALTIME, &wall);
    t->wall_minus_mono_ns = ts_ns(&wall) - ts_ns(&mono);
    *out = t;
    return PRT_OK;
}

void prt_trace_destroy(prt_trace *t) {
    if (!t) return;
    pthread_mutex_destroy(&t->mu);
    prt_free(t->ctx, t->ev, t->cap * sizeof *t->ev);
    prt_free(t->ctx, t, sizeof *t);
}

void prt_trace_span(prt_trace *t, prt_trace_cat cat, const char *name, const char *detail, double t0, double t1,
                    int64_t arg) {
    if (!t) return;
    PRT_ASSERT((unsigned)cat < PRT_TRACE_CAT_COUNT);
    pthread_mutex_lock(&t->mu);
    /* A span without finite times cannot be placed: counted with the dropped. */
    if (t->n < t->cap && isfinite(t0) && isfinite(t1)) {
        t->ev[t->n++] = (prt_trace_event){
            .cat = cat, .name = name ? name : "", .detail = detail, .t0 = t0, .t1 = t1 < t0 ? t0 : t1,
            .arg = arg < 0 ? -1 : arg};
    } else {
        t->dropped++;
    }
    pthread_mutex_unlock(&t->mu);
}

const prt_trace_event *prt_trace_events(const prt_trace *t, size_t *n) {
    prt_trace *m = (prt_trace *)t; /* the mutex is the only thing changed */
    pthread_mutex_lock(&m->mu);
    *n = m->n;
    pthread_mutex_unlock(&m->mu);
    return t->ev;
}

size_t prt_trace_count(const prt_trace *t) {
    prt_trace *m = (prt_trace *)t;
    pthread_mutex_lock(&m->mu);
    size_t n = m->n;
    pthread_mutex_unlock(&m->mu);
    return n;
}

size_t prt_trace_dropped(const prt_trace *t) {
    prt_trace *m = (prt_trace *)t;
    pthread_mutex_lock(&m->mu);
    size_t n = m->dropped;
    pthread_mutex_unlock(&m->mu);
    return n;
}

const char *prt_trace_cat_name(prt_trace_cat c) {
    return (unsigned)c < PRT_TRACE_CAT_COUNT ? cat_names[c] : "unknown";
}

/* ---- JSON text ------------------------------------------------------------ */

typedef struct jbuf {
    prt_context *ctx;
    char *p;
    size_t n, cap;
    bool oom;
} jbuf;

static bool jb_reserve(jbuf *b, size_t more) {
    if (b->oom) return false;
    size_t need;
    if (!prt_add_size(b->n, more, &need)) return !(b->oom = true);
    if (need <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < need) {
        if (!prt_mul_size(cap, 2, &cap)) return !(b->oom = true);
    }
    char *p = prt_realloc(b->ctx, b->p, b->cap, cap);
    if (!p) return !(b->oom = true);
    b->p = p;
    b->cap = cap;
    return true;
}

static void jb_put(jbuf *b, const char *s, size_t k) {
    if (!jb_reserve(b, k)) return;
    memcpy(b->p + b->n, s, k);
    b->n += k;
}

static void jb_puts(jbuf *b, const char *s) { jb_put(b, s, strlen(s)); }

PRT_PRINTF(2, 3) static void jb_printf(jbuf *b, const char *fmt, ...) {
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    /* only numbers go through here: they always fit */
    if (k < 0 || (size_t)k >= sizeof tmp) {
        b->oom = true;
        return;
    }
    jb_put(b, tmp, (size_t)k);
}

/* Length of the valid UTF-8 sequence at s (1 to 4), or 0 if it is not one. */
static size_t utf8_len(const unsigned char *s) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t k;
    unsigned min;
    if (c >= 0xC2 && c <= 0xDF) k = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) k = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) k = 4, min = 0x10000;
    else return 0;
    unsigned cp = c & (0x7F >> k);
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0; /* also stops at the terminating NUL */
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return k;
}

/* A JSON string with its quotes. Control characters are escaped; bytes that are
 * not UTF-8 become U+FFFD, so the file is always valid JSON whatever the names. */
static void jb_string(jbuf *b, const char *s) {
    static const char hex[] = "0123456789abcdef";
    jb_put(b, "\"", 1);
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        const unsigned char *run = p;
        size_t k;
        while (*p >= 0x20 && *p != '"' && *p != '\\' && (k = utf8_len(p)) != 0) p += k;
        jb_put(b, (const char *)run, (size_t)(p - run));
        if (!*p) break;
        unsigned c = *p;
        if (c == '"') jb_put(b, "\\\"", 2);
        else if (c == '\\') jb_put(b, "\\\\", 2);
        else if (c == '\n') jb_put(b, "\\n", 2);
        else if (c == '\t') jb_put(b, "\\t", 2);
        else if (c == '\r') jb_put(b, "\\r", 2);
        else if (c < 0x20) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            jb_put(b, e, sizeof e);
        } else {
            jb_put(b, "\\ufffd", 6);
        }
        p++;
    }
    jb_put(b, "\"", 1);
}

/* ---- writing -------------------------------------------------------------- */

/* Each rank's fragment: this header, then its events as JSON objects joined by
 * ",\n" (no leading or trailing separator). */
typedef struct frag_header {
    uint64_t ok; /* FRAG_OK; 0: this rank failed to serialise (its own message says why) */
    uint64_t dropped;
} frag_header;
#define FRAG_OK 0x50525454u /* "PRTT" */

/* Wall-clock nanoseconds as a u64 that orders like the signed value. */
static uint64_t order_key(int64_t v) { return (uint64_t)v ^ ((uint64_t)1 << 63); }

static void serialise(const prt_trace *t, const prt_trace_event *ev, size_t n, double t0_min, double shift_us,
                      jbuf *b) {
    const int r = t->rank;
    jb_printf(b, "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":0,\"args\":{\"name\":\"rank %d\"}}", r,
              r);
    jb_printf(b, ",\n{\"name\":\"process_sort_index\",\"ph\":\"M\",\"pid\":%d,\"tid\":0,\"args\":{\"sort_index\":%d}}",
              r, r);
    for (int tid = 0; tid < NUM_TIDS; tid++) {
        jb_printf(b, ",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":%d,\"args\":{\"name\":", r, tid);
        jb_string(b, tid_names[tid]);
        jb_puts(b, "}}");
    }
    for (size_t i = 0; i < n && !b->oom; i++) {
        const prt_trace_event *e = &ev[i];
        jb_puts(b, ",\n{\"name\":");
        jb_string(b, e->name);
        jb_printf(b, ",\"cat\":\"%s\",\"ph\":\"X\",\"ts\":%.3f,\"dur\":%.3f,\"pid\":%d,\"tid\":%d", cat_names[e->cat],
                  (e->t0 - t0_min) * 1e6 + shift_us, (e->t1 - e->t0) * 1e6, r, cat_tids[e->cat]);
        if (e->detail || e->arg >= 0) {
            jb_puts(b, ",\"args\":{");
            if (e->detail) {
                jb_puts(b, "\"op\":");
                jb_string(b, e->detail);
            }
            if (e->arg >= 0) jb_printf(b, "%s\"bucket\":%lld", e->detail ? "," : "", (long long)e->arg);
            jb_puts(b, "}");
        }
        jb_puts(b, "}");
    }
}

static prt_status write_all(prt_context *ctx, int fd, const char *tmp, const void *p, size_t n) {
    const char *s = p;
    while (n > 0) {
        ssize_t k = write(fd, s, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return prt_error(ctx, PRT_ERR_IO, "%s: cannot write: %s", tmp, strerror(errno));
        }
        s += k;
        n -= (size_t)k;
    }
    return PRT_OK;
}

static void fsync_parent(const char *path) {
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash) {
        strcpy(dir, ".");
    } else if (slash == path) {
        strcpy(dir, "/");
    } else {
        size_t k = (size_t)(slash - path);
        if (k >= sizeof dir) return;
        memcpy(dir, path, k);
        dir[k] = '\0';
    }
    int fd = open(dir, O_RDONLY);
    if (fd < 0) return;
    (void)fsync(fd); /* best effort: some file systems refuse fsync on a directory */
    close(fd);
}

/* Rank 0: writes every fragment into path (through a temporary file). */
static prt_status write_file(prt_context *ctx, const char *path, int nranks, const char *all, const size_t *sizes) {
    prt_status st = PRT_OK;
    uint64_t dropped = 0;
    size_t off = 0;
    for (int r = 0; r < nranks; off += sizes[r], r++) {
        frag_header h;
        if (sizes[r] < sizeof h) return prt_error(ctx, PRT_ERR_INTERNAL, "%s: rank %d sent no trace", path, r);
        memcpy(&h, all + off, sizeof h);
        if (h.ok != FRAG_OK)
            return prt_error(ctx, PRT_ERR_BACKEND, "%s: rank %d could not serialise its trace (see its own message)",
                             path, r);
        dropped += h.dropped;
    }
    size_t plen = strlen(path);
    char *tmp = prt_malloc(ctx, plen + 32);
    if (!tmp) return prt_error(ctx, PRT_ERR_NOMEM, "%s: temporary file name", path);
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0) {
        st = prt_error(ctx, PRT_ERR_IO, "%s: cannot create %s: %s", path, tmp, strerror(errno));
        prt_free(ctx, tmp, plen + 32);
        return st;
    }
    static const char head[] = "{\"traceEvents\":[\n";
    PRT_CHECK_GOTO(write_all(ctx, fd, tmp, head, sizeof head - 1), st, fail);
    off = 0;
    for (int r = 0; r < nranks; off += sizes[r], r++) {
        if (r > 0) PRT_CHECK_GOTO(write_all(ctx, fd, tmp, ",\n", 2), st, fail);
        PRT_CHECK_GOTO(write_all(ctx, fd, tmp, all + off + sizeof(frag_header), sizes[r] - sizeof(frag_header)), st,
                       fail);
    }
    char tail[160];
    int k = snprintf(tail, sizeof tail,
                     "\n],\"displayTimeUnit\":\"ms\",\"otherData\":{\"parrots_trace\":1,\"ranks\":%d,\"dropped\":%llu}}\n",
                     nranks, (unsigned long long)dropped);
    PRT_CHECK_GOTO(write_all(ctx, fd, tmp, tail, (size_t)k), st, fail);
    if (fsync(fd) != 0) {
        st = prt_error(ctx, PRT_ERR_IO, "%s: cannot flush %s to disk: %s", path, tmp, strerror(errno));
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        st = prt_error(ctx, PRT_ERR_IO, "%s: cannot close %s: %s", path, tmp, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        st = prt_error(ctx, PRT_ERR_IO, "%s: cannot rename %s into place: %s", path, tmp, strerror(errno));
        goto fail;
    }
    fsync_parent(path);
    prt_free(ctx, tmp, plen + 32);
    return PRT_OK;
fail:
    if (fd >= 0) close(fd);
    unlink(tmp);
    prt_free(ctx, tmp, plen + 32);
    return st;
}

prt_status prt_trace_write(prt_trace *t, struct prt_comm *comm, const char *path) {
    prt_context *ctx = t->ctx;
    const int nranks = comm ? comm->size : 1;
    const int rank = comm ? comm->rank : 0;
    prt_status st = PRT_OK;

    /* A snapshot: spans recorded from here on (the collectives below, on the
     * communication thread) are not part of this file. */
    pthread_mutex_lock(&t->mu);
    size_t n = t->n;
    uint64_t dropped = t->dropped;
    pthread_mutex_unlock(&t->mu);

    double t0_min = INFINITY;
    for (size_t i = 0; i < n; i++)
        if (t->ev[i].t0 < t0_min) t0_min = t->ev[i].t0;
    uint64_t mine = UINT64_MAX; /* a rank without events does not move the origin */
    if (n > 0) {
        double ns = t0_min * 1e9; /* clamped: tests may record any finite times */
        if (ns > 2e18) ns = 2e18;
        if (ns < -2e18) ns = -2e18;
        mine = order_key((int64_t)llround(ns) + t->wall_minus_mono_ns);
    }

    uint64_t origin = mine;
    uint64_t *keys = NULL;
    if (comm && nranks > 1) {
        keys = prt_calloc(ctx, (size_t)nranks, sizeof *keys);
        if (!keys) return prt_error(ctx, PRT_ERR_NOMEM, "%s: %d clock origins", path, nranks);
        /* one collective that every rank reaches: allgather of the origins */
        st = prt_comm_allgather_u64(comm, mine, keys);
        if (st != PRT_OK) {
            prt_free(ctx, keys, (size_t)nranks * sizeof *keys);
            return prt_error_prefix(ctx, st, "%s: agreeing on the time origin", path);
        }
        for (int r = 0; r < nranks; r++)
            if (keys[r] < origin) origin = keys[r];
        prt_free(ctx, keys, (size_t)nranks * sizeof *keys);
    }
    double shift_us = n > 0 ? (double)(mine - origin) / 1000.0 : 0.0;

    jbuf b = {.ctx = ctx};
    /* about 170 bytes an event; grows if names are long */
    size_t guess = 1024;
    if (prt_mul_size(n, 170, &guess) && prt_add_size(guess, 1024, &guess)) jb_reserve(&b, guess);
    b.oom = false; /* a failed guess is no failure: the buffer grows as needed */
    frag_header h = {.ok = FRAG_OK, .dropped = dropped};
    jb_put(&b, (const char *)&h, sizeof h);
    serialise(t, t->ev, n, n > 0 ? t0_min : 0.0, shift_us, &b);
    prt_status local = PRT_OK;
    if (b.oom) {
        local = prt_error(ctx, PRT_ERR_NOMEM, "%s: serialising %zu trace events of rank %d", path, n, rank);
        /* still take part in the gather, with a header that says so */
        prt_free(ctx, b.p, b.cap);
        b = (jbuf){.ctx = ctx, .p = (char *)&h, .n = sizeof h};
        h.ok = 0;
    }

    void *all = NULL;
    size_t *sizes = prt_calloc(ctx, (size_t)nranks, sizeof *sizes);
    if (!sizes) {
        local = prt_error(ctx, PRT_ERR_NOMEM, "%s: %d fragment sizes", path, nranks);
        /* cannot gather without the sizes array at the root; others still must */
        if (rank == 0 || !comm) goto done;
    }
    if (comm) {
        size_t dummy[1];
        st = prt_comm_gather_bytes(comm, b.p, b.n, 0, &all, sizes ? sizes : dummy);
        if (st != PRT_OK) {
            if (local == PRT_OK) local = prt_error_prefix(ctx, st, "%s: gathering the ranks' traces", path);
            goto done;
        }
    } else {
        all = b.p;
        sizes[0] = b.n;
    }
    if (rank == 0 && local == PRT_OK) local = write_file(ctx, path, nranks, all, sizes);

done:
    if (comm && nranks > 1) {
        /* every rank returns the same verdict on the file */
        uint64_t verdict = local == PRT_OK ? 0 : 1;
        if (rank != 0) verdict = 0;
        prt_status bst = prt_comm_broadcast(comm, &verdict, sizeof verdict, 0);
        if (rank != 0 && local == PRT_OK) {
            if (bst != PRT_OK) local = prt_error_prefix(ctx, bst, "%s: waiting for rank 0 to write the trace", path);
            else if (verdict) local = prt_error(ctx, PRT_ERR_IO, "%s: rank 0 could not write the trace (see its message)", path);
        }
    }
    if (all && all != b.p) prt_free(ctx, all, 0);
    if (b.p != (char *)&h) prt_free(ctx, b.p, b.cap);
    if (sizes) prt_free(ctx, sizes, (size_t)nranks * sizeof *sizes);
    return local;
}

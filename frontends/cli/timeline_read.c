/* Streaming reader of Chrome traces (timeline_impl.h): libyaml events, one
 * trace event at a time, summed per rank as they pass. */
#include "frontends/cli/timeline_impl.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

typedef struct reader {
    prt_context *ctx;
    const char *path;
    yaml_parser_t p;
    yaml_event_t ev; /* the current event */
    bool have_ev;
    prt_tl_summary *s;
    int64_t only_pid;
    prt_tl_visit visit;
    void *user;
    /* the event being read: strings copied out of the parser's events */
    char *name, *cat;
    size_t name_cap, cat_cap;
    size_t size;     /* of the file: a problem at its end means it was cut short */
    bool after_root; /* the trace was read: anything more is trailing text */
    int cache; /* index of the last rank touched */
} reader;

typedef struct number {
    bool seen, ok;
    double v;
    yaml_mark_t mark;
    char text[40]; /* the scalar as written, cut, for messages */
} number;

static int line_of(yaml_mark_t m) { return (int)m.line + 1; }
static int col_of(yaml_mark_t m) { return (int)m.column + 1; }

static prt_status at(reader *r, yaml_mark_t m, prt_status st, const char *what) {
    return prt_error(r->ctx, st, "%s:%d:%d: %s", r->path, line_of(m), col_of(m), what);
}

static prt_status next(reader *r) {
    if (r->have_ev) yaml_event_delete(&r->ev);
    r->have_ev = false;
    if (!yaml_parser_parse(&r->p, &r->ev)) {
        const char *problem = r->p.problem ? r->p.problem : "unreadable input";
        if (r->p.error == YAML_MEMORY_ERROR) return prt_error(r->ctx, PRT_ERR_NOMEM, "%s: out of memory", r->path);
        if (r->p.error == YAML_READER_ERROR)
            return prt_error(r->ctx, PRT_ERR_PARSE, "%s: byte %zu: not valid JSON text: %s", r->path,
                             r->p.problem_offset, problem);
        yaml_mark_t m = r->p.problem_mark;
        if (m.index >= r->size)
            return prt_error(r->ctx, PRT_ERR_PARSE, "%s:%d:%d: not valid JSON: the file ends early (truncated?)",
                             r->path, line_of(m), col_of(m));
        if (r->after_root)
            return at(r, m, PRT_ERR_PARSE, "not valid JSON: unexpected text after the trace");
        /* libyaml speaks YAML: its flow collections are JSON's arrays and objects */
        const char *in = !r->p.context                                      ? NULL
                         : strstr(r->p.context, "flow sequence") ? "an array"
                         : strstr(r->p.context, "flow mapping")  ? "an object"
                                                                 : r->p.context;
        return prt_error(r->ctx, PRT_ERR_PARSE, "%s:%d:%d: not valid JSON: %s%s%s%s", r->path, line_of(m),
                         col_of(m), problem, in ? " (in " : "", in ? in : "", in ? ")" : "");
    }
    r->have_ev = true;
    return PRT_OK;
}

/* "a string 'abc'", "an array", ... for "expected X, found Y". */
static const char *found(const yaml_event_t *e, char *buf, size_t cap) {
    switch (e->type) {
    case YAML_SCALAR_EVENT:
        /* plain: a number, true, false or null; anything quoted is a string */
        snprintf(buf, cap, e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ? "%.*s%s" : "a string \"%.*s%s\"",
                 (int)(e->data.scalar.length < 32 ? e->data.scalar.length : 32), (const char *)e->data.scalar.value,
                 e->data.scalar.length > 32 ? "..." : "");
        return buf;
    case YAML_SEQUENCE_START_EVENT: return "an array";
    case YAML_MAPPING_START_EVENT: return "an object";
    case YAML_SEQUENCE_END_EVENT: return "the end of an array";
    case YAML_MAPPING_END_EVENT: return "the end of an object";
    case YAML_STREAM_END_EVENT:
    case YAML_DOCUMENT_END_EVENT: return "the end of the file";
    default: return "something that is not JSON";
    }
}

static prt_status expected(reader *r, const char *what) {
    char b[64], msg[256];
    snprintf(msg, sizeof msg, "expected %s, found %s", what, found(&r->ev, b, sizeof b));
    return at(r, r->ev.start_mark, PRT_ERR_PARSE, msg);
}

/* Skips the value that starts at the current event (leaves its last event current). */
static prt_status skip_value(reader *r) {
    int depth = 0;
    for (;;) {
        switch (r->ev.type) {
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT: depth++; break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT: depth--; break;
        case YAML_STREAM_END_EVENT: return expected(r, "a value");
        default: break;
        }
        if (depth == 0) return PRT_OK;
        PRT_CHECK(next(r));
    }
}

static bool key_is(const yaml_event_t *e, const char *k) {
    return e->type == YAML_SCALAR_EVENT && e->data.scalar.length == strlen(k) &&
           !memcmp(e->data.scalar.value, k, e->data.scalar.length);
}

/* A JSON number: a plain (unquoted) scalar strtod reads whole and finite. */
static void read_number(const yaml_event_t *e, number *n) {
    n->seen = true;
    n->ok = false;
    n->mark = e->start_mark;
    n->text[0] = '\0';
    if (e->type != YAML_SCALAR_EVENT) {
        snprintf(n->text, sizeof n->text, "%s", e->type == YAML_MAPPING_START_EVENT ? "an object" : "an array");
        return;
    }
    const char *s = (const char *)e->data.scalar.value;
    if (e->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        snprintf(n->text, sizeof n->text, "a string \"%.24s\"", s);
        return;
    }
    snprintf(n->text, sizeof n->text, "%.32s", s);
    if (!(s[0] == '-' || (s[0] >= '0' && s[0] <= '9')) || strpbrk(s, "xXpP")) return;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end || !isfinite(v)) return;
    n->v = v;
    n->ok = true;
}

static prt_status copy_str(reader *r, char **dst, size_t *cap, const yaml_event_t *e) {
    const char *s = e->type == YAML_SCALAR_EVENT ? (const char *)e->data.scalar.value : "";
    size_t n = strlen(s) + 1;
    if (n > *cap) {
        char *p = prt_realloc(r->ctx, *dst, *cap, n);
        if (!p) return prt_error(r->ctx, PRT_ERR_NOMEM, "%s: a name of %zu bytes", r->path, n);
        *dst = p;
        *cap = n;
    }
    memcpy(*dst, s, n);
    return PRT_OK;
}

static prt_status bad_number(reader *r, const number *n, const char *key, const char *what) {
    char msg[160];
    if (!n->seen) return PRT_OK;
    snprintf(msg, sizeof msg, "event: \"%s\": expected %s, found %s", key, what, n->text);
    return at(r, n->mark, PRT_ERR_PARSE, msg);
}

static prt_status rank_of(reader *r, int64_t pid, prt_tl_rank **out) {
    prt_tl_summary *s = r->s;
    if (r->cache < s->n_ranks && s->ranks[r->cache].pid == pid) {
        *out = &s->ranks[r->cache];
        return PRT_OK;
    }
    int lo = 0, hi = s->n_ranks;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (s->ranks[mid].pid < pid) lo = mid + 1;
        else hi = mid;
    }
    if (lo == s->n_ranks || s->ranks[lo].pid != pid) {
        PRT_CHECK(prt_grow(r->ctx, (void **)&s->ranks, &s->cap_ranks, s->n_ranks + 1, sizeof *s->ranks));
        memmove(&s->ranks[lo + 1], &s->ranks[lo], (size_t)(s->n_ranks - lo) * sizeof *s->ranks);
        s->ranks[lo] = (prt_tl_rank){.pid = pid, .t_begin_us = INFINITY, .t_end_us = -INFINITY};
        s->n_ranks++;
    }
    r->cache = lo;
    *out = &s->ranks[lo];
    return PRT_OK;
}

static void add(prt_tl_rank *k, const prt_tl_event *e) {
    double d = e->dur_us * 1e-6;
    if (!strcmp(e->cat, "compute")) k->compute_s += d;
    else if (!strcmp(e->cat, "wait")) k->exposed_comm_s += d;
    else if (!strcmp(e->cat, "step")) k->steps++, k->step_total_s += d;
    else if (!strcmp(e->cat, "comm")) {
        /* gradient buckets only: other allreduces (synchronised batch norm's
         * statistics, the loss) block the compute thread inside a kernel */
        if (!strcmp(e->name, "allreduce") && e->bucket >= 0) k->comm_s += d;
        else k->other_comm_s += d;
    }
    k->events++;
    if (e->ts_us < k->t_begin_us) k->t_begin_us = e->ts_us;
    if (e->ts_us + e->dur_us > k->t_end_us) k->t_end_us = e->ts_us + e->dur_us;
}

/* One element of the events array (the current event starts it). */
static prt_status read_event(reader *r) {
    if (r->ev.type != YAML_MAPPING_START_EVENT) return expected(r, "an event object");
    yaml_mark_t start = r->ev.start_mark;
    number ts = {0}, dur = {0}, pid = {0}, tid = {0}, bucket = {0};
    char ph[8] = "";
    bool has_name = false, has_cat = false;
    for (;;) {
        PRT_CHECK(next(r));
        if (r->ev.type == YAML_MAPPING_END_EVENT) break;
        if (r->ev.type != YAML_SCALAR_EVENT) return expected(r, "a key");
        char key[16] = "";
        if (r->ev.data.scalar.length < sizeof key) memcpy(key, r->ev.data.scalar.value, r->ev.data.scalar.length);
        PRT_CHECK(next(r));
        if (!strcmp(key, "name") && r->ev.type == YAML_SCALAR_EVENT) {
            PRT_CHECK(copy_str(r, &r->name, &r->name_cap, &r->ev));
            has_name = true;
        } else if (!strcmp(key, "cat") && r->ev.type == YAML_SCALAR_EVENT) {
            PRT_CHECK(copy_str(r, &r->cat, &r->cat_cap, &r->ev));
            has_cat = true;
        } else if (!strcmp(key, "ph") && r->ev.type == YAML_SCALAR_EVENT) {
            snprintf(ph, sizeof ph, "%s", (const char *)r->ev.data.scalar.value);
        } else if (!strcmp(key, "ts")) {
            read_number(&r->ev, &ts);
        } else if (!strcmp(key, "dur")) {
            read_number(&r->ev, &dur);
        } else if (!strcmp(key, "pid")) {
            read_number(&r->ev, &pid);
        } else if (!strcmp(key, "tid")) {
            read_number(&r->ev, &tid);
        } else if (!strcmp(key, "args") && r->ev.type == YAML_MAPPING_START_EVENT) {
            for (;;) {
                PRT_CHECK(next(r));
                if (r->ev.type == YAML_MAPPING_END_EVENT) break;
                bool is_bucket = key_is(&r->ev, "bucket");
                PRT_CHECK(next(r));
                if (is_bucket) read_number(&r->ev, &bucket);
                PRT_CHECK(skip_value(r));
            }
            continue;
        }
        PRT_CHECK(skip_value(r));
    }
    if (strcmp(ph, "X") != 0) return PRT_OK; /* other phases: metadata, instants, counters */

    if (!ts.seen) return at(r, start, PRT_ERR_PARSE, "complete event (\"ph\": \"X\") without \"ts\"");
    if (!dur.seen) return at(r, start, PRT_ERR_PARSE, "complete event (\"ph\": \"X\") without \"dur\"");
    if (!ts.ok) return bad_number(r, &ts, "ts", "a number");
    if (!dur.ok) return bad_number(r, &dur, "dur", "a number");
    if (dur.v < 0) return bad_number(r, &dur, "dur", "a duration >= 0");
    if (pid.seen && (!pid.ok || pid.v != floor(pid.v) || fabs(pid.v) > 9e15))
        return bad_number(r, &pid, "pid", "an integer");
    if (tid.seen && (!tid.ok || tid.v != floor(tid.v) || fabs(tid.v) > 9e15))
        return bad_number(r, &tid, "tid", "an integer");
    int64_t b = -1;
    if (bucket.seen && bucket.ok && bucket.v >= 0 && bucket.v == floor(bucket.v) && bucket.v < 9e15)
        b = (int64_t)bucket.v;
    prt_tl_event e = {.name = has_name ? r->name : "", .cat = has_cat ? r->cat : "", .ts_us = ts.v,
                      .dur_us = dur.v, .pid = pid.seen ? (int64_t)pid.v : 0, .tid = tid.seen ? (int64_t)tid.v : 0,
                      .bucket = b};
    if (r->only_pid >= 0 && e.pid != r->only_pid) return PRT_OK;
    prt_tl_rank *k;
    PRT_CHECK(rank_of(r, e.pid, &k));
    add(k, &e);
    add(&r->s->total, &e);
    if (r->visit) PRT_CHECK(r->visit(r->user, &e));
    return PRT_OK;
}

/* The events array (the current event starts it). */
static prt_status read_events(reader *r) {
    if (r->ev.type != YAML_SEQUENCE_START_EVENT) return expected(r, "an array of events");
    for (;;) {
        PRT_CHECK(next(r));
        if (r->ev.type == YAML_SEQUENCE_END_EVENT) return PRT_OK;
        PRT_CHECK(read_event(r));
    }
}

static prt_status read_other_data(reader *r) {
    if (r->ev.type != YAML_MAPPING_START_EVENT) return skip_value(r);
    for (;;) {
        PRT_CHECK(next(r));
        if (r->ev.type == YAML_MAPPING_END_EVENT) return PRT_OK;
        bool is_dropped = key_is(&r->ev, "dropped");
        PRT_CHECK(next(r));
        if (is_dropped) {
            number n = {0};
            read_number(&r->ev, &n);
            if (n.ok && n.v >= 0 && n.v < 9e18) r->s->dropped = (int64_t)n.v;
        }
        PRT_CHECK(skip_value(r));
    }
}

static prt_status read_root(reader *r) {
    PRT_CHECK(next(r)); /* stream start */
    PRT_CHECK(next(r));
    if (r->ev.type == YAML_STREAM_END_EVENT)
        return prt_error(r->ctx, PRT_ERR_PARSE, "%s: the file is empty (expected a Chrome trace: a JSON object)",
                         r->path);
    PRT_CHECK(next(r)); /* past the document start */
    if (r->ev.type == YAML_SEQUENCE_START_EVENT) {
        PRT_CHECK(read_events(r));
    } else if (r->ev.type == YAML_MAPPING_START_EVENT) {
        yaml_mark_t start = r->ev.start_mark;
        bool seen = false;
        for (;;) {
            PRT_CHECK(next(r));
            if (r->ev.type == YAML_MAPPING_END_EVENT) break;
            bool is_events = key_is(&r->ev, "traceEvents"), is_other = key_is(&r->ev, "otherData");
            PRT_CHECK(next(r));
            if (is_events) {
                if (r->ev.type != YAML_SEQUENCE_START_EVENT) return expected(r, "\"traceEvents\" to be an array");
                PRT_CHECK(read_events(r));
                seen = true;
            } else if (is_other) {
                PRT_CHECK(read_other_data(r));
            } else {
                PRT_CHECK(skip_value(r));
            }
        }
        if (!seen)
            return at(r, start, PRT_ERR_PARSE, "the object has no \"traceEvents\" array (is this a Chrome trace?)");
    } else {
        return expected(r, "a Chrome trace (a JSON object with \"traceEvents\", or an array of events)");
    }
    r->after_root = true;
    PRT_CHECK(next(r)); /* document end */
    PRT_CHECK(next(r));
    if (r->ev.type != YAML_STREAM_END_EVENT)
        return at(r, r->ev.start_mark, PRT_ERR_PARSE, "unexpected text after the trace");
    return PRT_OK;
}

double prt_tl_overlap(const prt_tl_rank *k) {
    double f = (k->comm_s - k->exposed_comm_s) / k->comm_s;
    return f < 0 ? 0 : f > 1 ? 1 : f;
}

double prt_tl_step_s(const prt_tl_rank *k) { return k->steps > 0 ? k->step_total_s / (double)k->steps : 0.0; }

prt_status prt_tl_read(prt_context *ctx, const char *path, int64_t only_pid, prt_tl_visit visit, void *user,
                       prt_tl_summary *out) {
    *out = (prt_tl_summary){.total = {.pid = -1, .t_begin_us = INFINITY, .t_end_us = -INFINITY}, .dropped = -1};
    FILE *f = fopen(path, "rb");
    if (!f) return prt_error(ctx, PRT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    reader r = {.ctx = ctx, .path = path, .s = out, .only_pid = only_pid, .visit = visit, .user = user};
    if (!yaml_parser_initialize(&r.p)) {
        fclose(f);
        return prt_error(ctx, PRT_ERR_NOMEM, "%s: cannot start the JSON parser", path);
    }
    struct stat sb;
    r.size = fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode) ? (size_t)sb.st_size : SIZE_MAX;
    yaml_parser_set_input_file(&r.p, f);
    prt_status st = read_root(&r);
    if (st == PRT_OK && ferror(f)) st = prt_error(ctx, PRT_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    if (st == PRT_OK && only_pid >= 0 && out->n_ranks == 0)
        st = prt_error(ctx, PRT_ERR_NOT_FOUND, "%s: no complete events of rank %lld", path, (long long)only_pid);
    if (r.have_ev) yaml_event_delete(&r.ev);
    yaml_parser_delete(&r.p);
    fclose(f);
    prt_free(ctx, r.name, r.name_cap);
    prt_free(ctx, r.cat, r.cat_cap);
    return st;
}

void prt_tl_summary_free(prt_context *ctx, prt_tl_summary *s) {
    if (!s) return;
    prt_free(ctx, s->ranks, 0);
    s->ranks = NULL;
    s->n_ranks = s->cap_ranks = 0;
}

int prt_tl_span_kind(const prt_tl_event *e) {
    if (!strcmp(e->cat, "compute")) return PRT_TL_COMPUTE;
    if (!strcmp(e->cat, "wait")) return PRT_TL_WAIT;
    if (!strcmp(e->cat, "comm"))
        return strcmp(e->name, "allreduce") || e->bucket < 0 ? PRT_TL_OTHER_COMM : PRT_TL_ALLREDUCE;
    return -1;
}

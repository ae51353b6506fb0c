/* The scaling model (scheduler/simulate_api.h): profiles (per-op time models,
 * their text format and their fit), the network's alpha-beta allreduce model,
 * and the replay of a training program's compute and communication streams. */
#include "scheduler/simulate_api.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scheduler/scheduler_impl.h"

/* ---- profiles: memory ------------------------------------------------------------ */

void prt_profile_destroy(prt_context *ctx, prt_profile *pr) {
    if (!pr) return;
    for (int i = 0; i < pr->n_ops; i++) prt_free(ctx, pr->ops[i].op, 0);
    prt_free(ctx, pr->ops, 0);
    prt_free(ctx, pr->device, 0);
    prt_free(ctx, pr->date, 0);
    prt_free(ctx, pr->source, 0);
    prt_free(ctx, pr, sizeof *pr);
}

prt_status prt_profile_new(prt_context *ctx, const char *device, const char *date, const char *source, int threads,
                           prt_profile **out) {
    *out = NULL;
    prt_profile *pr = prt_calloc(ctx, 1, sizeof *pr);
    if (!pr) return prt_error(ctx, PRT_ERR_NOMEM, "profile: out of memory");
    pr->threads = threads;
    pr->device = prt_strdup(ctx, device);
    pr->date = prt_strdup(ctx, date);
    pr->source = prt_strdup(ctx, source);
    if (!pr->device || !pr->date || !pr->source) {
        prt_profile_destroy(ctx, pr);
        return prt_error(ctx, PRT_ERR_NOMEM, "profile: out of memory");
    }
    *out = pr;
    return PRT_OK;
}

const prt_op_time *prt_profile_find(const prt_profile *pr, const char *op) {
    for (int i = 0; i < pr->n_ops; i++)
        if (strcmp(pr->ops[i].op, op) == 0) return &pr->ops[i];
    return pr->has_default ? &pr->dflt : NULL;
}

prt_status prt_profile_set(prt_context *ctx, prt_profile *pr, const char *op, double a, double b, double c,
                           int64_t samples) {
    for (int i = 0; i < pr->n_ops; i++)
        if (strcmp(pr->ops[i].op, op) == 0) {
            pr->ops[i].a = a, pr->ops[i].b = b, pr->ops[i].c = c, pr->ops[i].samples = samples;
            return PRT_OK;
        }
    char *name = prt_strdup(ctx, op);
    prt_op_time *ops = prt_realloc(ctx, pr->ops, (size_t)pr->n_ops * sizeof *ops, (size_t)(pr->n_ops + 1) * sizeof *ops);
    if (!name || !ops) {
        prt_free(ctx, name, 0);
        return prt_error(ctx, PRT_ERR_NOMEM, "profile: out of memory");
    }
    pr->ops = ops;
    pr->ops[pr->n_ops++] = (prt_op_time){name, a, b, c, samples};
    return PRT_OK;
}

/* ---- profiles: the text format --------------------------------------------------- */

#define MAX_LINE 4096
#define MAX_FIELDS 8

typedef struct pparse {
    prt_context *ctx;
    const char *name;
    int line;
    prt_profile *pr;
    int seen[4]; /* line of device, threads, date, source; 0: not yet */
} pparse;

static prt_status perr(pparse *ps, const char *fmt, ...) PRT_PRINTF(2, 3);
static prt_status perr(pparse *ps, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return prt_error(ps->ctx, PRT_ERR_PARSE, "%s:%d: %s", ps->name, ps->line, msg);
}

/* Splits s in place at runs of blanks; at most max fields, *n gets the count
 * (max + 1 when there are more). */
static void split(char *s, char **f, int max, int *n) {
    int k = 0;
    for (char *c = s; *c;) {
        while (*c == ' ' || *c == '\t') *c++ = '\0';
        if (!*c) break;
        if (k == max) {
            k++;
            break;
        }
        f[k++] = c;
        while (*c && *c != ' ' && *c != '\t') c++;
    }
    *n = k;
}

static bool parse_double(const char *s, double *v) {
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || *end || errno == ERANGE || !isfinite(x)) return false;
    *v = x;
    return true;
}

static bool parse_int(const char *s, long long lo, long long hi, long long *v) {
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (end == s || *end || errno == ERANGE || x < lo || x > hi) return false;
    *v = x;
    return true;
}

static bool op_name_ok(const char *s) {
    for (const char *c = s; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_' ||
              *c == '-' || *c == '.'))
            return false;
    return *s != '\0';
}

static const char *const coef_names[3] = {"a", "b", "c"};

static prt_status parse_coefs(pparse *ps, const char *what, char **f, double v[3]) {
    for (int i = 0; i < 3; i++) {
        if (!parse_double(f[i], &v[i]))
            return perr(ps, "%s: coefficient %s '%s' is not a finite number", what, coef_names[i], f[i]);
        if (v[i] < 0)
            return perr(ps, "%s: coefficient %s %s is negative (time models are non-negative)", what, coef_names[i],
                        f[i]);
    }
    return PRT_OK;
}

static const char *const header_keys[4] = {"device", "threads", "date", "source"};

static prt_status parse_line(pparse *ps, char *s, int *first_op_line) {
    prt_context *ctx = ps->ctx;
    prt_profile *pr = ps->pr;
    /* the key, then the rest of the line */
    char *key = s;
    char *rest = s;
    while (*rest && *rest != ' ' && *rest != '\t') rest++;
    if (*rest) *rest++ = '\0';
    while (*rest == ' ' || *rest == '\t') rest++;
    for (int h = 0; h < 4; h++) {
        if (strcmp(key, header_keys[h]) != 0) continue;
        if (ps->seen[h]) return perr(ps, "'%s' given twice (first at line %d)", key, ps->seen[h]);
        ps->seen[h] = ps->line;
        if (!*rest) return perr(ps, "'%s' needs a value", key);
        if (h == 1) {
            long long t;
            if (!parse_int(rest, 1, 4096, &t))
                return perr(ps, "threads '%s' is not a whole number from 1 to 4096", rest);
            pr->threads = (int)t;
            return PRT_OK;
        }
        char **dst = h == 0 ? &pr->device : h == 2 ? &pr->date : &pr->source;
        if (!(*dst = prt_strdup(ctx, rest))) return prt_error(ctx, PRT_ERR_NOMEM, "%s: out of memory", ps->name);
        return PRT_OK;
    }
    char *f[MAX_FIELDS];
    int n;
    split(rest, f, MAX_FIELDS, &n);
    if (strcmp(key, "op") == 0) {
        if (n != 5) return perr(ps, "expected 'op NAME A B C SAMPLES', got %d field%s after 'op'", n, n == 1 ? "" : "s");
        if (!op_name_ok(f[0])) return perr(ps, "op name '%s' has characters other than letters, digits, _ - .", f[0]);
        for (int i = 0; i < pr->n_ops; i++)
            if (strcmp(pr->ops[i].op, f[0]) == 0)
                return perr(ps, "op '%s' given twice (first at line %d)", f[0], first_op_line[i]);
        char what[96];
        snprintf(what, sizeof what, "op '%s'", f[0]);
        double v[3];
        PRT_CHECK(parse_coefs(ps, what, f + 1, v));
        long long samples;
        if (!parse_int(f[4], 0, INT64_MAX, &samples))
            return perr(ps, "op '%s': samples '%s' is not a whole number", f[0], f[4]);
        if (pr->n_ops >= 4096) return perr(ps, "more than 4096 op lines");
        first_op_line[pr->n_ops] = ps->line;
        return prt_profile_set(ctx, pr, f[0], v[0], v[1], v[2], samples);
    }
    if (strcmp(key, "default") == 0) {
        if (n != 3) return perr(ps, "expected 'default A B C', got %d field%s after 'default'", n, n == 1 ? "" : "s");
        if (pr->has_default) return perr(ps, "'default' given twice");
        double v[3];
        PRT_CHECK(parse_coefs(ps, "default", f, v));
        pr->has_default = true;
        pr->dflt = (prt_op_time){NULL, v[0], v[1], v[2], 0};
        return PRT_OK;
    }
    return perr(ps, "unknown key '%s' (expected device, threads, date, source, op or default)", key);
}

prt_status prt_profile_parse(prt_context *ctx, const char *name, const char *text, size_t len, prt_profile **out) {
    *out = NULL;
    pparse ps = {.ctx = ctx, .name = name};
    prt_profile *pr = prt_calloc(ctx, 1, sizeof *pr);
    int *first_op_line = prt_calloc(ctx, 4097, sizeof *first_op_line);
    char *buf = prt_calloc(ctx, MAX_LINE + 1, 1);
    prt_status st = PRT_OK;
    if (!pr || !first_op_line || !buf) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "%s: out of memory", name);
        goto done;
    }
    ps.pr = pr;
    size_t pos = 0;
    bool versioned = false;
    while (pos < len || (!versioned && st == PRT_OK)) {
        ps.line++;
        size_t e = pos;
        while (e < len && text[e] != '\n') e++;
        size_t n = e - pos;
        if (memchr(text + pos, '\0', n)) {
            st = perr(&ps, "a NUL byte (not a text file?)");
            goto done;
        }
        if (n > MAX_LINE) {
            st = perr(&ps, "line longer than %d characters", MAX_LINE);
            goto done;
        }
        memcpy(buf, text + pos, n);
        buf[n] = '\0';
        pos = e < len ? e + 1 : len;
        while (n > 0 && (buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t')) buf[--n] = '\0';
        if (!versioned) {
            long long v;
            if (strncmp(buf, "parrots-profile ", 16) != 0 || !parse_int(buf + 16, 0, INT32_MAX, &v)) {
                st = perr(&ps, "expected 'parrots-profile %d' as the first line", PRT_PROFILE_VERSION);
                goto done;
            }
            if (v != PRT_PROFILE_VERSION) {
                st = perr(&ps, "profile version %lld is not supported (this build reads version %d)", v,
                          PRT_PROFILE_VERSION);
                goto done;
            }
            versioned = true;
            continue;
        }
        char *s = buf;
        while (*s == ' ' || *s == '\t') s++;
        if (*s == '\0' || *s == '#') continue;
        PRT_CHECK_GOTO(parse_line(&ps, s, first_op_line), st, done);
    }
    for (int h = 0; h < 4; h++)
        if (!ps.seen[h]) {
            st = prt_error(ctx, PRT_ERR_PARSE, "%s: missing the '%s' line", name, header_keys[h]);
            goto done;
        }
    if (pr->n_ops == 0 && !pr->has_default) {
        st = prt_error(ctx, PRT_ERR_PARSE, "%s: no 'op' or 'default' line: the profile times nothing", name);
        goto done;
    }
done:
    prt_free(ctx, buf, 0);
    prt_free(ctx, first_op_line, 0);
    if (st != PRT_OK) {
        prt_profile_destroy(ctx, pr);
        return st;
    }
    *out = pr;
    return PRT_OK;
}

prt_status prt_profile_load(prt_context *ctx, const char *path, prt_profile **out) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return prt_error(ctx, PRT_ERR_IO, "%s: cannot open the profile: %s", path, strerror(errno));
    char *text = prt_calloc(ctx, PRT_PROFILE_MAX_BYTES + 1, 1);
    if (!text) {
        fclose(f);
        return prt_error(ctx, PRT_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t n = fread(text, 1, PRT_PROFILE_MAX_BYTES + 1, f);
    bool bad = ferror(f);
    fclose(f);
    prt_status st;
    if (bad)
        st = prt_error(ctx, PRT_ERR_IO, "%s: read error", path);
    else if (n > PRT_PROFILE_MAX_BYTES)
        st = prt_error(ctx, PRT_ERR_LIMIT, "%s: the profile is larger than %zu bytes", path, PRT_PROFILE_MAX_BYTES);
    else
        st = prt_profile_parse(ctx, path, text, n, out);
    prt_free(ctx, text, 0);
    return st;
}

static void write_model(FILE *f, const char *key, const prt_op_time *m) {
    fprintf(f, "%s %s%s%.17g %.17g %.17g", key, m->op ? m->op : "", m->op ? " " : "", m->a, m->b, m->c);
    if (m->op) fprintf(f, " %lld", (long long)m->samples);
    fputc('\n', f);
}

prt_status prt_profile_write(prt_context *ctx, const prt_profile *pr, FILE *f) {
    fprintf(f, "parrots-profile %d\n", PRT_PROFILE_VERSION);
    fprintf(f, "# Time of one call of an op kind: t = a + b*flops + c*bytes seconds (flops: the op's FLOP count;\n"
               "# bytes: its input and output tensors). Format and use: docs/scaling.md.\n");
    fprintf(f, "device %s\nthreads %d\ndate %s\nsource %s\n", pr->device, pr->threads, pr->date, pr->source);
    fprintf(f, "#  op  a (s)  b (s/FLOP)  c (s/byte)  samples\n");
    for (int i = 0; i < pr->n_ops; i++) write_model(f, "op", &pr->ops[i]);
    if (pr->has_default) write_model(f, "default", &pr->dflt);
    if (fflush(f) != 0 || ferror(f)) return prt_error(ctx, PRT_ERR_IO, "profile: write error");
    return PRT_OK;
}

prt_status prt_profile_save(prt_context *ctx, const prt_profile *pr, const char *path) {
    size_t n = strlen(path) + 16;
    char *tmp = prt_calloc(ctx, n, 1);
    if (!tmp) return prt_error(ctx, PRT_ERR_NOMEM, "%s: out of memory", path);
    snprintf(tmp, n, "%s.tmp", path);
    prt_status st = PRT_OK;
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        st = prt_error(ctx, PRT_ERR_IO, "%s: cannot write: %s", tmp, strerror(errno));
        goto done;
    }
    st = prt_profile_write(ctx, pr, f);
    if (fclose(f) != 0 && st == PRT_OK) st = prt_error(ctx, PRT_ERR_IO, "%s: write error", tmp);
    if (st == PRT_OK && rename(tmp, path) != 0)
        st = prt_error(ctx, PRT_ERR_IO, "%s: cannot rename into place: %s", path, strerror(errno));
    if (st != PRT_OK) remove(tmp);
    if (st != PRT_OK) prt_error_prefix(ctx, st, "%s", path);
done:
    prt_free(ctx, tmp, 0);
    return st;
}

/* ---- fitting ------------------------------------------------------------------- */

/* Solves the m x m system A x = y (m <= 3) by Gaussian elimination with partial
 * pivoting; false when singular relative to the diagonal's scale. */
static bool solve(double A[3][3], double y[3], int m, double x[3]) {
    double scale = 0;
    for (int i = 0; i < m; i++) scale = fmax(scale, fabs(A[i][i]));
    for (int c = 0; c < m; c++) {
        int piv = c;
        for (int r = c + 1; r < m; r++)
            if (fabs(A[r][c]) > fabs(A[piv][c])) piv = r;
        if (fabs(A[piv][c]) <= 1e-12 * scale) return false;
        if (piv != c) {
            for (int k = 0; k < m; k++) {
                double t = A[c][k];
                A[c][k] = A[piv][k], A[piv][k] = t;
            }
            double t = y[c];
            y[c] = y[piv], y[piv] = t;
        }
        for (int r = c + 1; r < m; r++) {
            double f = A[r][c] / A[c][c];
            for (int k = c; k < m; k++) A[r][k] -= f * A[c][k];
            y[r] -= f * y[c];
        }
    }
    for (int c = m - 1; c >= 0; c--) {
        double s = y[c];
        for (int k = c + 1; k < m; k++) s -= A[c][k] * x[k];
        x[c] = s / A[c][c];
    }
    return true;
}

prt_status prt_sim_fit(prt_context *ctx, const prt_fit_sample *s, int n, double coef[3]) {
    coef[0] = coef[1] = coef[2] = 0;
    if (n < 1) return prt_error(ctx, PRT_ERR_INVALID, "fit: no samples");
    /* columns 1, flops, bytes scaled to unit norm so the normal equations are
     * well conditioned whatever the units */
    double norm[3] = {0, 0, 0};
    for (int i = 0; i < n; i++) {
        double col[3] = {1, s[i].flops, s[i].bytes};
        for (int j = 0; j < 3; j++) norm[j] += col[j] * col[j];
    }
    double G[3][3] = {{0}}, r[3] = {0}, tt = 0;
    for (int j = 0; j < 3; j++) norm[j] = norm[j] > 0 ? sqrt(norm[j]) : 0;
    for (int i = 0; i < n; i++) {
        double col[3] = {1, s[i].flops, s[i].bytes};
        for (int j = 0; j < 3; j++) col[j] = norm[j] > 0 ? col[j] / norm[j] : 0;
        for (int j = 0; j < 3; j++) {
            r[j] += col[j] * s[i].t;
            for (int k = 0; k < 3; k++) G[j][k] += col[j] * col[k];
        }
        tt += s[i].t * s[i].t;
    }
    /* SSE(x) = tt - 2 r.x + x.G.x; try every support, keep the best feasible */
    double best = tt, bx[3] = {0, 0, 0};
    for (int mask = 1; mask < 8; mask++) {
        int idx[3], m = 0;
        for (int j = 0; j < 3; j++)
            if ((mask >> j) & 1 && norm[j] > 0) idx[m++] = j;
        if (m == 0 || m != __builtin_popcount((unsigned)mask)) continue;
        double A[3][3], y[3], x[3];
        for (int a = 0; a < m; a++) {
            y[a] = r[idx[a]];
            for (int b = 0; b < m; b++) A[a][b] = G[idx[a]][idx[b]];
        }
        if (!solve(A, y, m, x)) continue;
        double full[3] = {0, 0, 0};
        bool ok = true;
        for (int a = 0; a < m; a++) {
            if (x[a] < 0) ok = false;
            full[idx[a]] = x[a];
        }
        if (!ok) continue;
        double sse = tt;
        for (int j = 0; j < 3; j++) {
            sse -= 2 * r[j] * full[j];
            for (int k = 0; k < 3; k++) sse += full[j] * G[j][k] * full[k];
        }
        if (sse < best - 1e-15 * tt) {
            best = sse;
            memcpy(bx, full, sizeof bx);
        }
    }
    for (int j = 0; j < 3; j++) coef[j] = norm[j] > 0 ? bx[j] / norm[j] : 0;
    return PRT_OK;
}

/* ---- instruction costs ----------------------------------------------------------- */

static bool is_call(prt_instr i) {
    unsigned op = PRT_VM_RAW_OP(i);
    return op == PRT_OP_CALL || op == PRT_OP_RECOMPUTE;
}

static int64_t reg_bytes(const prt_program *p, int r) {
    return prt_shape_count(&p->regs[r].shape) * (int64_t)prt_dtype_size(p->regs[r].dtype);
}

static const prt_op_schema *call_schema(prt_context *ctx, const prt_program *p, const prt_call_desc *d) {
    int id = p->ops[d->op].id;
    return id >= 0 ? prt_op_get(ctx->ops, id) : NULL;
}

prt_status prt_sim_costs(prt_context *ctx, const prt_program *p, int64_t *flops, int64_t *bytes) {
    int max_in = 0;
    for (int pc = 0; pc < p->n_code; pc++) {
        flops[pc] = bytes[pc] = 0;
        if (is_call(p->code[pc])) {
            const prt_call_desc *d = &p->k[PRT_VM_RAW_X(p->code[pc])].call;
            if (d->n_data_in > max_in) max_in = d->n_data_in;
        }
    }
    prt_shape *wide = prt_calloc(ctx, (size_t)max_in + 1, sizeof *wide);
    if (!wide) return prt_error(ctx, PRT_ERR_NOMEM, "program '%s': out of memory", p->name);
    prt_status st = PRT_OK;
    for (int pc = 0; pc < p->n_code && st == PRT_OK; pc++) {
        if (!is_call(p->code[pc])) continue;
        const prt_call_desc *d = &p->k[PRT_VM_RAW_X(p->code[pc])].call;
        const prt_op_schema *s = call_schema(ctx, p, d);
        if (!s) {
            st = prt_error(ctx, PRT_ERR_PROGRAM, "program '%s': instruction %d: op '%s' is not resolved", p->name, pc,
                           p->ops[d->op].name);
            break;
        }
        int64_t b = 0;
        for (int j = 0; j < d->n_in; j++) {
            if (j < d->n_data_in && j < 32 && ((s->shape_only >> j) & 1u)) continue;
            b += reg_bytes(p, d->in[j]);
        }
        for (int j = 0; j < d->n_out; j++) b += reg_bytes(p, d->out[j]);
        bytes[pc] = b;
        if (!s->flops) continue;
        prt_infer_scratch sc;
        prt_infer_ctx ic;
        st = prt_vm_call_infer(ctx, p, d, s, &sc, wide, &ic);
        if (st == PRT_OK) flops[pc] = s->flops(&ic);
    }
    prt_free(ctx, wide, 0);
    return st;
}

prt_status prt_sim_times(prt_context *ctx, const prt_program *p, const prt_profile *pr, double **out) {
    *out = NULL;
    int64_t *fl = prt_calloc(ctx, (size_t)p->n_code + 1, sizeof *fl);
    int64_t *by = prt_calloc(ctx, (size_t)p->n_code + 1, sizeof *by);
    double *t = prt_calloc(ctx, (size_t)p->n_code + 1, sizeof *t);
    prt_status st = PRT_OK;
    if (!fl || !by || !t) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "program '%s': out of memory", p->name);
        goto done;
    }
    PRT_CHECK_GOTO(prt_sim_costs(ctx, p, fl, by), st, done);
    for (int pc = 0; pc < p->n_code; pc++) {
        if (!is_call(p->code[pc])) continue;
        const prt_call_desc *d = &p->k[PRT_VM_RAW_X(p->code[pc])].call;
        const char *op = p->ops[d->op].name;
        const prt_op_time *m = prt_profile_find(pr, op);
        if (!m) {
            st = prt_error(ctx, PRT_ERR_NOT_FOUND,
                           "the profile has no time model for op '%s' (used by '%s') and no 'default' line", op,
                           d->node);
            goto done;
        }
        t[pc] = m->a + m->b * (double)fl[pc] + m->c * (double)by[pc];
    }
done:
    prt_free(ctx, fl, 0);
    prt_free(ctx, by, 0);
    if (st != PRT_OK) {
        prt_free(ctx, t, 0);
        return st;
    }
    *out = t;
    return PRT_OK;
}

/* ---- the network ----------------------------------------------------------------- */

static const char *const topo_names[PRT_SIM_TOPO_COUNT] = {
#define X(name, doc) #name,
    PRT_SIM_TOPOLOGIES(X)
#undef X
};

typedef struct net_preset {
    const char *name;
    prt_net_spec spec;
} net_preset;

static const net_preset presets[] = {
#define X(id, nm, gpn, ibw, ilat, xbw, xlat, nics, cores, topo, doc) \
    {nm, {nm, gpn, ibw, ilat, xbw, xlat, nics, cores, 0, PRT_SIM_TOPO_##topo}},
    PRT_NET_PRESETS(X)
#undef X
};
#define N_PRESETS ((int)(sizeof presets / sizeof presets[0]))

const char *prt_net_preset_names(char *buf, size_t cap) {
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0; i < N_PRESETS && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%s", i ? ", " : "", presets[i].name);
    return buf;
}

static const net_preset *find_preset(const char *name) {
    for (int i = 0; i < N_PRESETS; i++)
        if (strcmp(presets[i].name, name) == 0) return &presets[i];
    return NULL;
}

static prt_status spec_bad(prt_context *ctx, const char *text, const char *fmt, ...) PRT_PRINTF(3, 4);
static prt_status spec_bad(prt_context *ctx, const char *text, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return prt_error(ctx, PRT_ERR_USAGE, "--network '%s': %s", text, msg);
}

/* Keys of the key=value form: I(key, min) a whole number >= min, D(key, min) a
 * number above min (min 0: bandwidths) or of 0 or more (min -1: latencies). */
#define NET_KEYS(I, D)          \
    I(gpus_per_node, 1)         \
    D(intra_bw, 0)              \
    D(intra_lat, -1)            \
    D(inter_bw, 0)              \
    D(inter_lat, -1)            \
    I(nics_per_node, 1)         \
    I(cores_per_node, 0)        \
    I(threads_per_rank, 0)

prt_status prt_net_spec_parse(prt_context *ctx, const char *text, prt_net_spec *out) {
    char names[128];
    const net_preset *pre = find_preset(text);
    if (pre) {
        *out = pre->spec;
        return PRT_OK;
    }
    if (!strchr(text, '='))
        return spec_bad(ctx, text, "not a preset (%s) nor a key=value list", prt_net_preset_names(names, sizeof names));
    /* custom: the h200-ib numbers, then the overrides (preset= first picks another base) */
    *out = presets[0].spec;
    snprintf(out->name, sizeof out->name, "custom");
    char buf[1024];
    if (strlen(text) >= sizeof buf) return spec_bad(ctx, "...", "longer than %zu characters", sizeof buf - 1);
    strcpy(buf, text);
    bool first = true;
    for (char *save = NULL, *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save), first = false) {
        char *eq = strchr(item, '=');
        if (!eq) return spec_bad(ctx, text, "'%s' is not key=value", item);
        *eq = '\0';
        const char *key = item, *val = eq + 1;
        if (strcmp(key, "preset") == 0) {
            if (!first) return spec_bad(ctx, text, "preset= must come first");
            const net_preset *p = find_preset(val);
            if (!p) return spec_bad(ctx, text, "unknown preset '%s' (%s)", val, prt_net_preset_names(names, sizeof names));
            *out = p->spec;
            snprintf(out->name, sizeof out->name, "%s+", p->name);
            continue;
        }
        if (strcmp(key, "topology") == 0) {
            int t = 0;
            while (t < PRT_SIM_TOPO_COUNT && strcmp(topo_names[t], val) != 0) t++;
            if (t == PRT_SIM_TOPO_COUNT) return spec_bad(ctx, text, "topology '%s': expected ring or hier", val);
            out->topology = (prt_sim_topology)t;
            continue;
        }
        bool known = false;
#define I(k, min)                                                                                              \
    if (!known && strcmp(key, #k) == 0) {                                                                      \
        known = true;                                                                                          \
        long long v;                                                                                           \
        if (!parse_int(val, min, 1 << 20, &v))                                                                 \
            return spec_bad(ctx, text, "%s '%s': expected a whole number from %d to %d", #k, val, min, 1 << 20); \
        out->k = (int)v;                                                                                       \
    }
#define D(k, min)                                                                                              \
    if (!known && strcmp(key, #k) == 0) {                                                                      \
        known = true;                                                                                          \
        double v;                                                                                              \
        if (!parse_double(val, &v) || v <= (double)(min))                                                      \
            return spec_bad(ctx, text, "%s '%s': expected a number %s", #k, val,                               \
                            (min) == 0 ? "above 0" : "of 0 or more");                                          \
        out->k = v;                                                                                            \
    }
        NET_KEYS(I, D)
#undef I
#undef D
        if (!known)
            return spec_bad(ctx, text,
                            "unknown key '%s' (expected preset, gpus_per_node, intra_bw, intra_lat, inter_bw, "
                            "inter_lat, nics_per_node, cores_per_node, threads_per_rank or topology)",
                            key);
    }
    return PRT_OK;
}

double prt_sim_ring_time(int n, double alpha, double bw, double bytes) {
    if (n <= 1) return 0;
    return 2.0 * (n - 1) * alpha + 2.0 * (n - 1) / n * bytes / bw;
}

double prt_sim_allreduce_time(const prt_net_spec *net, int ranks, double bytes) {
    if (ranks <= 1) return 0;
    int g = net->gpus_per_node;
    if (ranks <= g) return prt_sim_ring_time(ranks, net->intra_lat, net->intra_bw, bytes);
    int nodes = (ranks + g - 1) / g;
    double nic = net->inter_bw * net->nics_per_node;
    if (net->topology == PRT_SIM_TOPO_hier) {
        /* reduce-scatter + all-gather inside the node (a ring's two halves), and
         * g rings of `nodes` ranks each reducing a 1/g slice, sharing the NICs */
        double intra = prt_sim_ring_time(g, net->intra_lat, net->intra_bw, bytes);
        double inter = prt_sim_ring_time(nodes, net->inter_lat, nic / g, bytes / g);
        return intra + inter;
    }
    double bw = nic < net->intra_bw ? nic : net->intra_bw;
    double lat = net->inter_lat > net->intra_lat ? net->inter_lat : net->intra_lat;
    return prt_sim_ring_time(ranks, lat, bw, bytes);
}

double prt_sim_slowdown(const prt_net_spec *net, int ranks, int profile_threads) {
    if (net->cores_per_node <= 0) return 1.0;
    int per_node = ranks < net->gpus_per_node ? ranks : net->gpus_per_node;
    int threads = net->threads_per_rank > 0 ? net->threads_per_rank : profile_threads > 0 ? profile_threads : 1;
    double f = (double)per_node * threads / net->cores_per_node;
    return f > 1.0 ? f : 1.0;
}

/* ---- buckets ------------------------------------------------------------------------ */

typedef struct grad_ref {
    int reg;
    int last_write; /* pc, -1: never written */
    int order;      /* position among the updates' gradient inputs */
} grad_ref;

static int by_write(const void *a, const void *b) {
    const grad_ref *x = a, *y = b;
    if (x->last_write != y->last_write) return x->last_write < y->last_write ? -1 : 1;
    return (x->order > y->order) - (x->order < y->order);
}

/* The gradient inputs of an update call: k leading parameters, then k gradients. */
static int update_grads(const prt_program *p, const prt_call_desc *d, int *first) {
    int k = 0;
    while (k < d->n_in && p->regs[d->in[k]].kind == PRT_REG_PARAM) k++;
    *first = k;
    return 2 * k <= d->n_in ? k : 0;
}

static prt_status derived_buckets(prt_context *ctx, const prt_program *p, size_t limit, prt_sim_bucket **out, int *n) {
    int n_grads = 0;
    for (int pc = 0; pc < p->n_code; pc++) {
        if (PRT_VM_RAW_OP(p->code[pc]) != PRT_OP_CALL) continue;
        const prt_call_desc *d = &p->k[PRT_VM_RAW_X(p->code[pc])].call;
        const prt_op_schema *s = call_schema(ctx, p, d);
        int first;
        if (s && s->updates_inputs) n_grads += update_grads(p, d, &first);
    }
    grad_ref *gr = prt_calloc(ctx, (size_t)n_grads + 1, sizeof *gr);
    int *last = prt_calloc(ctx, (size_t)p->n_regs + 1, sizeof *last);
    int *first_read = prt_calloc(ctx, (size_t)p->n_regs + 1, sizeof *first_read);
    prt_sim_bucket *b = prt_calloc(ctx, (size_t)n_grads + 1, sizeof *b);
    prt_status st = PRT_OK;
    if (!gr || !last || !first_read || !b) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "program '%s': out of memory", p->name);
        goto done;
    }
    for (int r = 0; r < p->n_regs; r++) last[r] = first_read[r] = -1;
    int m = 0;
    for (int pc = 0; pc < p->n_code; pc++) {
        if (!is_call(p->code[pc])) continue;
        const prt_call_desc *d = &p->k[PRT_VM_RAW_X(p->code[pc])].call;
        for (int j = 0; j < d->n_out; j++) last[d->out[j]] = pc;
        const prt_op_schema *s = call_schema(ctx, p, d);
        int first, k = s && s->updates_inputs ? update_grads(p, d, &first) : 0;
        for (int j = 0; j < k; j++) {
            int r = d->in[first + j];
            if (first_read[r] < 0) {
                first_read[r] = pc;
                gr[m] = (grad_ref){r, last[r], m};
                m++;
            }
        }
    }
    qsort(gr, (size_t)m, sizeof *gr, by_write);
    size_t first_cap = PRT_SCHED_FIRST_BUCKET_BYTES < limit ? PRT_SCHED_FIRST_BUCKET_BYTES : limit;
    int nb = 0;
    double fill = 0;
    for (int i = 0; i < m; i++) {
        if (nb == 0 || fill >= (double)(nb == 1 ? first_cap : limit)) {
            b[nb++] = (prt_sim_bucket){-1, p->n_code, 0};
            fill = 0;
        }
        prt_sim_bucket *x = &b[nb - 1];
        double bytes = (double)reg_bytes(p, gr[i].reg);
        fill += bytes;
        x->bytes += bytes;
        if (gr[i].last_write > x->start_after) x->start_after = gr[i].last_write;
        if (first_read[gr[i].reg] < x->wait_before) x->wait_before = first_read[gr[i].reg];
    }
    *out = b, b = NULL;
    *n = nb;
done:
    prt_free(ctx, gr, 0);
    prt_free(ctx, last, 0);
    prt_free(ctx, first_read, 0);
    prt_free(ctx, b, 0);
    return st;
}

prt_status prt_sim_buckets(prt_context *ctx, const prt_program *p, size_t bucket_bytes, prt_sim_bucket **out,
                           int *n) {
    *out = NULL;
    *n = 0;
    if (bucket_bytes > 0) return derived_buckets(ctx, p, bucket_bytes, out, n);
    prt_bucket_table t;
    PRT_CHECK(prt_program_buckets(ctx, p, &t));
    prt_sim_bucket *b = prt_calloc(ctx, (size_t)t.n + 1, sizeof *b);
    if (!b) {
        prt_bucket_table_free(ctx, &t);
        return prt_error(ctx, PRT_ERR_NOMEM, "program '%s': out of memory", p->name);
    }
    for (int i = 0; i < t.n; i++) b[i] = (prt_sim_bucket){t.b[i].start_pc, t.b[i].wait_pc, 4.0 * (double)t.b[i].count};
    *n = t.n;
    *out = b;
    prt_bucket_table_free(ctx, &t);
    return PRT_OK;
}

/* ---- the replay ------------------------------------------------------------------------ */

prt_status prt_sim_run(prt_context *ctx, const prt_program *p, const double *t, const prt_sim_bucket *b, int nb,
                       const prt_net_spec *net, int profile_threads, int ranks, prt_sim_result *out) {
    memset(out, 0, sizeof *out);
    if (ranks < 1) return prt_error(ctx, PRT_ERR_INVALID, "simulate: %d ranks", ranks);
    for (int pc = 0; pc < p->n_code; pc++) {
        unsigned op = PRT_VM_RAW_OP(p->code[pc]);
        if (op == PRT_OP_LOOP || op == PRT_OP_JMP)
            return prt_error(ctx, PRT_ERR_UNSUPPORTED,
                             "program '%s': instruction %d is a %s: only straight-line programs are simulated", p->name,
                             pc, prt_vm_op_names[op]);
    }
    double *done = prt_calloc(ctx, (size_t)nb + 1, sizeof *done);
    if (!done) return prt_error(ctx, PRT_ERR_NOMEM, "simulate: out of memory");
    double slow = prt_sim_slowdown(net, ranks, profile_threads);
    double now = 0, comm_free = 0, comm = 0, exposed = 0, compute = 0;
    /* one pass over the instructions: waits before an instruction, its compute,
     * then the allreduces it releases, queued in bucket order (FIFO stream) */
    for (int pc = -1; pc < p->n_code; pc++) {
        if (pc >= 0) {
            double ready = now;
            for (int i = 0; i < nb; i++)
                if (b[i].wait_before == pc && done[i] > ready) ready = done[i];
            exposed += ready - now;
            now = ready;
            double dt = is_call(p->code[pc]) ? t[pc] * slow : 0.0;
            now += dt;
            compute += dt;
        }
        for (int i = 0; i < nb; i++) {
            if (b[i].start_after != pc) continue;
            double d = prt_sim_allreduce_time(net, ranks, b[i].bytes);
            double start = now > comm_free ? now : comm_free;
            done[i] = comm_free = start + d;
            comm += d;
        }
    }
    /* a bucket waited for nowhere inside the program still ends the step */
    for (int i = 0; i < nb; i++)
        if (b[i].wait_before >= p->n_code && done[i] > now) {
            exposed += done[i] - now;
            now = done[i];
        }
    prt_free(ctx, done, 0);
    out->ranks = ranks;
    out->step_s = now;
    out->compute_s = compute;
    out->comm_s = comm;
    out->exposed_comm_s = exposed;
    out->overlap_fraction = comm > 0 ? (comm - exposed) / comm : 1.0;
    out->slowdown = slow;
    return PRT_OK;
}

/* ---- roofline profiles ------------------------------------------------------------------ */

typedef struct roof_row {
    const char *op;
    double ce, me;
} roof_row;

static const roof_row roof_rows[] = {
#define X(op, ce, me) {#op, ce, me},
    PRT_ROOFLINE_OPS(X)
#undef X
};
#define N_ROOF ((int)(sizeof roof_rows / sizeof roof_rows[0]))

static const roof_row *roof_find(const char *op) {
    for (int i = 0; i < N_ROOF; i++)
        if (strcmp(roof_rows[i].op, op) == 0) return &roof_rows[i];
    return &roof_rows[N_ROOF - 1]; /* the default row */
}

prt_status prt_profile_roofline(prt_context *ctx, const prt_program *p, const prt_roofline *rf, double target_s,
                                const char *date, const char *source, prt_profile **out, double *k_out) {
    *out = NULL;
    if (!(rf->peak_flops > 0) || !(rf->mem_bw > 0) || !(rf->launch_s >= 0))
        return prt_error(ctx, PRT_ERR_INVALID, "roofline '%s': peak FLOP/s and bandwidth must be positive", rf->device);
    int64_t *fl = prt_calloc(ctx, (size_t)p->n_code + 1, sizeof *fl);
    int64_t *by = prt_calloc(ctx, (size_t)p->n_code + 1, sizeof *by);
    prt_profile *pr = NULL;
    prt_status st = PRT_OK;
    if (!fl || !by) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "program '%s': out of memory", p->name);
        goto done;
    }
    PRT_CHECK_GOTO(prt_sim_costs(ctx, p, fl, by), st, done);
    PRT_CHECK_GOTO(prt_profile_new(ctx, rf->device, date, source, 1, &pr), st, done);
    double fixed = 0, scaled = 0;
    for (int pc = 0; pc < p->n_code; pc++) {
        if (!is_call(p->code[pc])) continue;
        const prt_call_desc *d = &p->k[PRT_VM_RAW_X(p->code[pc])].call;
        const char *op = p->ops[d->op].name;
        const roof_row *row = roof_find(op);
        double b0 = 1.0 / (rf->peak_flops * row->ce), c0 = 1.0 / (rf->mem_bw * row->me);
        const prt_op_time *have = prt_profile_find(pr, op);
        if (!have || !have->op)
            PRT_CHECK_GOTO(prt_profile_set(ctx, pr, op, rf->launch_s, b0, c0, 0), st, done);
        fixed += rf->launch_s;
        scaled += b0 * (double)fl[pc] + c0 * (double)by[pc];
    }
    double k = 1.0;
    if (target_s > 0) {
        if (target_s <= fixed || scaled <= 0) {
            st = prt_error(ctx, PRT_ERR_INVALID,
                           "roofline: a step of %.6g s cannot be reached: the per-instruction cost alone is %.6g s",
                           target_s, fixed);
            goto done;
        }
        k = scaled / (target_s - fixed);
    }
    for (int i = 0; i < pr->n_ops; i++) pr->ops[i].b /= k, pr->ops[i].c /= k;
    const roof_row *dr = &roof_rows[N_ROOF - 1];
    pr->has_default = true;
    pr->dflt = (prt_op_time){NULL, rf->launch_s, 1.0 / (rf->peak_flops * dr->ce) / k, 1.0 / (rf->mem_bw * dr->me) / k, 0};
    if (k_out) *k_out = k;
done:
    prt_free(ctx, fl, 0);
    prt_free(ctx, by, 0);
    if (st != PRT_OK) {
        prt_profile_destroy(ctx, pr);
        return st;
    }
    *out = pr;
    return PRT_OK;
}

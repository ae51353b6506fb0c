/* Values of the YAML frontend: `$name` substitution, `${...}` arithmetic
 * (+ - * / // % unary minus, parentheses) and `${...}` interpolation in strings.
 * Integers stay exact (int64, overflow-checked) until an operation needs a fraction,
 * so `${96 / 2}` is the integer 48 and `${5 / 2}` the number 2.5. */
#include "frontends/yaml_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

prt_status prt_ywork(prt_yload *L, const prt_ynode *at, uint64_t units) {
    L->work += units;
    if (L->work <= PRT_YAML_MAX_WORK) return PRT_OK;
    return prt_yerr(L->ctx, at, PRT_ERR_LIMIT,
                    "expanding the network takes more than %llu evaluation steps (repeats of modules with "
                    "many arguments or layers)",
                    (unsigned long long)PRT_YAML_MAX_WORK);
}

bool prt_yval_integral(const prt_yval *v, int64_t *out) {
    if (v->kind == PRT_YV_INT) {
        *out = v->i;
        return true;
    }
    /* 2^63 is exact in a double; anything below it in magnitude converts safely */
    if (v->kind == PRT_YV_FLOAT && isfinite(v->f) && v->f == floor(v->f) && v->f >= -9223372036854775808.0 &&
        v->f < 9223372036854775808.0) {
        *out = (int64_t)v->f;
        return true;
    }
    return false;
}

const char *prt_yval_describe(const prt_yval *v, char *buf, size_t cap) {
    char tmp[64], from[80] = "";
    if (v->from_expr && v->at) snprintf(from, sizeof from, " (from '%s')", prt_yshort(v->at->s, tmp, sizeof tmp));
    switch (v->kind) {
    case PRT_YV_NULL: snprintf(buf, cap, "null%s", from); break;
    case PRT_YV_BOOL: snprintf(buf, cap, "%s%s", v->i ? "true" : "false", from); break;
    case PRT_YV_INT: snprintf(buf, cap, "integer %lld%s", (long long)v->i, from); break;
    case PRT_YV_FLOAT:
        if (!v->from_expr && v->at && v->at->kind == PRT_YN_FLOAT)
            snprintf(buf, cap, "number %s", prt_yshort(v->at->s, tmp, sizeof tmp));
        else
            snprintf(buf, cap, "number %.15g%s", v->f, from);
        break;
    case PRT_YV_STR: snprintf(buf, cap, "string '%s'%s", prt_yshort(v->s, tmp, sizeof tmp), from); break;
    case PRT_YV_LIST: snprintf(buf, cap, "a list of %d%s", v->n, from); break;
    }
    return buf;
}

/* ---- variables ------------------------------------------------------------ */

static const prt_yval *env_find(const prt_yenv *e, const char *name, size_t n) {
    for (; e; e = e->parent)
        for (int k = 0; k < e->n; k++)
            if (strlen(e->names[k]) == n && !memcmp(e->names[k], name, n)) return &e->vals[k];
    return NULL;
}

static prt_status undefined(prt_yload *L, const prt_yenv *env, const prt_ynode *at, const char *name, size_t n,
                            const char *in) {
    const char *cands[256];
    int nc = 0;
    for (const prt_yenv *e = env; e; e = e->parent)
        for (int k = 0; k < e->n && nc < 256; k++) cands[nc++] = e->names[k];
    char nm[PRT_YAML_MAX_EXPR + 1], b1[80], b2[80], sugg[120] = "";
    if (n > PRT_YAML_MAX_EXPR) n = PRT_YAML_MAX_EXPR;
    memcpy(nm, name, n);
    nm[n] = '\0';
    const char *near = prt_ynearest(nm, cands, nc);
    if (near) snprintf(sugg, sizeof sugg, " (did you mean '%s'?)", near);
    if (in)
        return prt_yerr(L->ctx, at, PRT_ERR_SCHEMA, "undefined variable '%s' in '%s'%s",
                        prt_yshort(nm, b1, sizeof b1), prt_yshort(in, b2, sizeof b2), sugg);
    return prt_yerr(L->ctx, at, PRT_ERR_SCHEMA, "undefined variable '%s'%s", prt_yshort(nm, b1, sizeof b1), sugg);
}

/* ---- arithmetic ----------------------------------------------------------- */

typedef struct ynum {
    bool is_int;
    int64_t i;
    double f;
} ynum;

typedef struct yexpr {
    prt_yload *L;
    const prt_yenv *env;
    const prt_ynode *at;
    const char *src; /* "${...}" as written, for messages */
    const char *p, *end;
    int nest;
} yexpr;

static double num_f(ynum a) { return a.is_int ? (double)a.i : a.f; }
static ynum mk_int(int64_t i) { return (ynum){true, i, 0}; }
static ynum mk_f(double f) { return (ynum){false, 0, f}; }

static prt_status ex_err(yexpr *E, prt_status st, const char *msg) {
    char b[80];
    return prt_yerr(E->L->ctx, E->at, st, "expression '%s': %s", prt_yshort(E->src, b, sizeof b), msg);
}

static prt_status ex_expected(yexpr *E, const char *what) {
    char msg[200], b[40];
    if (E->p >= E->end) {
        snprintf(msg, sizeof msg, "expected %s at the end", what);
    } else {
        size_t n = (size_t)(E->end - E->p);
        char rest[PRT_YAML_MAX_EXPR + 1];
        memcpy(rest, E->p, n);
        rest[n] = '\0';
        snprintf(msg, sizeof msg, "expected %s at '%s'", what, prt_yshort(rest, b, sizeof b));
    }
    return ex_err(E, PRT_ERR_PARSE, msg);
}

static void skip_ws(yexpr *E) {
    while (E->p < E->end && (*E->p == ' ' || *E->p == '\t' || *E->p == '\n' || *E->p == '\r')) E->p++;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }

static prt_status ex_sum(yexpr *E, ynum *out);

static prt_status ex_number(yexpr *E, ynum *out) {
    const char *q = E->p;
    bool is_float = false;
    while (q < E->end && is_digit(*q)) q++;
    if (q < E->end && *q == '.') {
        is_float = true;
        q++;
        while (q < E->end && is_digit(*q)) q++;
    }
    if (q < E->end && (*q == 'e' || *q == 'E')) {
        const char *r = q + 1;
        if (r < E->end && (*r == '+' || *r == '-')) r++;
        if (r < E->end && is_digit(*r)) {
            is_float = true;
            q = r;
            while (q < E->end && is_digit(*q)) q++;
        }
    }
    size_t n = (size_t)(q - E->p);
    if (n > 64) return ex_err(E, PRT_ERR_PARSE, "a number has more than 64 characters");
    char buf[72];
    memcpy(buf, E->p, n);
    buf[n] = '\0';
    E->p = q;
    if (!is_float) {
        int64_t v = 0;
        bool ok = true;
        for (size_t k = 0; k < n && ok; k++) ok = prt_mul_i64(v, 10, &v) && prt_add_i64(v, buf[k] - '0', &v);
        if (ok) {
            *out = mk_int(v);
            return PRT_OK;
        }
    }
    *out = mk_f(strtod(buf, NULL));
    return PRT_OK;
}

static prt_status ex_primary(yexpr *E, ynum *out) {
    skip_ws(E);
    if (E->p < E->end && *E->p == '(') {
        if (++E->nest > PRT_YAML_MAX_EXPR_NEST) return ex_err(E, PRT_ERR_LIMIT, "parentheses nested too deeply");
        E->p++;
        PRT_CHECK(ex_sum(E, out));
        skip_ws(E);
        if (E->p >= E->end || *E->p != ')') return ex_expected(E, "')'");
        E->p++;
        E->nest--;
        return PRT_OK;
    }
    if (E->p < E->end && (is_digit(*E->p) || (*E->p == '.' && E->p + 1 < E->end && is_digit(E->p[1]))))
        return ex_number(E, out);
    if (E->p < E->end && is_alpha(*E->p)) {
        const char *s = E->p;
        while (E->p < E->end && (is_alpha(*E->p) || is_digit(*E->p))) E->p++;
        size_t n = (size_t)(E->p - s);
        const prt_yval *v = env_find(E->env, s, n);
        if (!v) return undefined(E->L, E->env, E->at, s, n, E->src);
        if (v->kind == PRT_YV_INT) {
            *out = mk_int(v->i);
            return PRT_OK;
        }
        if (v->kind == PRT_YV_FLOAT) {
            *out = mk_f(v->f);
            return PRT_OK;
        }
        char msg[200], d[120], nm[80];
        size_t k = n < sizeof nm - 1 ? n : sizeof nm - 1;
        memcpy(nm, s, k);
        nm[k] = '\0';
        snprintf(msg, sizeof msg, "variable '%s' is %s, not a number", nm, prt_yval_describe(v, d, sizeof d));
        return ex_err(E, PRT_ERR_SCHEMA, msg);
    }
    return ex_expected(E, "a number, a variable or '('");
}

static prt_status ex_unary(yexpr *E, ynum *out) {
    skip_ws(E);
    if (E->p < E->end && (*E->p == '-' || *E->p == '+')) {
        bool neg = *E->p == '-';
        E->p++;
        if (++E->nest > PRT_YAML_MAX_EXPR_NEST) return ex_err(E, PRT_ERR_LIMIT, "unary operators nested too deeply");
        PRT_CHECK(ex_unary(E, out));
        E->nest--;
        if (!neg) return PRT_OK;
        if (out->is_int) {
            if (out->i == INT64_MIN) return ex_err(E, PRT_ERR_OVERFLOW, "integer overflow");
            out->i = -out->i;
        } else {
            out->f = -out->f;
        }
        return PRT_OK;
    }
    return ex_primary(E, out);
}

enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD };

static prt_status apply(yexpr *E, int op, ynum a, ynum b, ynum *out) {
    if (a.is_int && b.is_int) {
        int64_t r;
        switch (op) {
        case OP_ADD:
            if (__builtin_add_overflow(a.i, b.i, &r)) return ex_err(E, PRT_ERR_OVERFLOW, "integer overflow");
            *out = mk_int(r);
            return PRT_OK;
        case OP_SUB:
            if (__builtin_sub_overflow(a.i, b.i, &r)) return ex_err(E, PRT_ERR_OVERFLOW, "integer overflow");
            *out = mk_int(r);
            return PRT_OK;
        case OP_MUL:
            if (__builtin_mul_overflow(a.i, b.i, &r)) return ex_err(E, PRT_ERR_OVERFLOW, "integer overflow");
            *out = mk_int(r);
            return PRT_OK;
        default: break;
        }
        if (b.i == 0) return ex_err(E, PRT_ERR_SCHEMA, op == OP_MOD ? "modulo by zero" : "division by zero");
        if (b.i == -1) {
            /* INT64_MIN / -1 overflows; x % -1 is always 0 */
            if (op == OP_MOD) {
                *out = mk_int(0);
                return PRT_OK;
            }
            if (a.i == INT64_MIN) return ex_err(E, PRT_ERR_OVERFLOW, "integer overflow");
            *out = mk_int(-a.i);
            return PRT_OK;
        }
        int64_t q = a.i / b.i, m = a.i % b.i;
        if (op == OP_DIV) {
            *out = m == 0 ? mk_int(q) : mk_f((double)a.i / (double)b.i);
        } else if (op == OP_FLOORDIV) {
            *out = mk_int(m != 0 && ((m < 0) != (b.i < 0)) ? q - 1 : q);
        } else {
            *out = mk_int(m != 0 && ((m < 0) != (b.i < 0)) ? m + b.i : m);
        }
        return PRT_OK;
    }
    double x = num_f(a), y = num_f(b);
    switch (op) {
    case OP_ADD: *out = mk_f(x + y); return PRT_OK;
    case OP_SUB: *out = mk_f(x - y); return PRT_OK;
    case OP_MUL: *out = mk_f(x * y); return PRT_OK;
    default: break;
    }
    if (y == 0) return ex_err(E, PRT_ERR_SCHEMA, op == OP_MOD ? "modulo by zero" : "division by zero");
    if (op == OP_DIV) {
        *out = mk_f(x / y);
    } else if (op == OP_FLOORDIV) {
        *out = mk_f(floor(x / y));
    } else {
        double r = fmod(x, y);
        if (r != 0 && ((r < 0) != (y < 0))) r += y;
        *out = mk_f(r);
    }
    return PRT_OK;
}

static prt_status ex_product(yexpr *E, ynum *out) {
    PRT_CHECK(ex_unary(E, out));
    for (;;) {
        skip_ws(E);
        if (E->p >= E->end) return PRT_OK;
        int op;
        if (*E->p == '*') op = OP_MUL, E->p++;
        else if (*E->p == '/' && E->p + 1 < E->end && E->p[1] == '/') op = OP_FLOORDIV, E->p += 2;
        else if (*E->p == '/') op = OP_DIV, E->p++;
        else if (*E->p == '%') op = OP_MOD, E->p++;
        else return PRT_OK;
        ynum b;
        PRT_CHECK(ex_unary(E, &b));
        PRT_CHECK(apply(E, op, *out, b, out));
    }
}

static prt_status ex_sum(yexpr *E, ynum *out) {
    PRT_CHECK(ex_product(E, out));
    for (;;) {
        skip_ws(E);
        if (E->p >= E->end || (*E->p != '+' && *E->p != '-')) return PRT_OK;
        int op = *E->p == '+' ? OP_ADD : OP_SUB;
        E->p++;
        ynum b;
        PRT_CHECK(ex_product(E, &b));
        PRT_CHECK(apply(E, op, *out, b, out));
    }
}

/* Evaluates the text between "${" and "}" (body, n). A lone variable name gives that
 * variable's value of any kind; anything else must be arithmetic. */
static prt_status eval_braced(prt_yload *L, const prt_yenv *env, const prt_ynode *at, const char *src,
                              const char *body, size_t n, prt_yval *out) {
    if (n > PRT_YAML_MAX_EXPR) {
        char b[80];
        return prt_yerr(L->ctx, at, PRT_ERR_LIMIT, "expression '%s' is longer than %d characters",
                        prt_yshort(src, b, sizeof b), PRT_YAML_MAX_EXPR);
    }
    PRT_CHECK(prt_ywork(L, at, n + 1));
    const char *s = body, *e = body + n;
    while (s < e && (*s == ' ' || *s == '\t')) s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t')) e--;
    if (prt_yident_ok(s, (size_t)(e - s))) {
        const prt_yval *v = env_find(env, s, (size_t)(e - s));
        if (!v) return undefined(L, env, at, s, (size_t)(e - s), src);
        *out = *v;
        out->at = at;
        out->from_expr = true;
        return PRT_OK;
    }
    yexpr E = {L, env, at, src, body, body + n, 0};
    ynum r;
    PRT_CHECK(ex_sum(&E, &r));
    skip_ws(&E);
    if (E.p < E.end) return ex_expected(&E, "an operator");
    memset(out, 0, sizeof *out);
    out->at = at;
    out->from_expr = true;
    if (r.is_int) {
        out->kind = PRT_YV_INT;
        out->i = r.i;
    } else {
        if (!isfinite(r.f)) return ex_err(&E, PRT_ERR_OVERFLOW, "the result is not a finite number");
        out->kind = PRT_YV_FLOAT;
        out->f = r.f;
    }
    return PRT_OK;
}

/* ---- strings -------------------------------------------------------------- */

typedef struct ybuf {
    prt_context *ctx;
    char *p;
    int n, cap;
} ybuf;

static prt_status buf_add(ybuf *b, const char *s, size_t n) {
    if (n > (size_t)(1 << 26)) return prt_error(b->ctx, PRT_ERR_LIMIT, "string too long");
    PRT_CHECK(prt_grow(b->ctx, (void **)&b->p, &b->cap, b->n + (int)n + 1, 1));
    memcpy(b->p + b->n, s, n);
    b->n += (int)n;
    b->p[b->n] = '\0';
    return PRT_OK;
}

static prt_status interpolate(prt_yload *L, const prt_yenv *env, const prt_ynode *at, prt_yval *out) {
    const char *s = at->s;
    ybuf b = {L->ctx, NULL, 0, 0};
    prt_status st = PRT_OK;
    char tmp[64];
    while (*s && st == PRT_OK) {
        const char *d = strchr(s, '$');
        if (!d) {
            st = buf_add(&b, s, strlen(s));
            break;
        }
        st = buf_add(&b, s, (size_t)(d - s));
        if (st != PRT_OK) break;
        if (d[1] == '$') {
            st = buf_add(&b, "$", 1);
            s = d + 2;
            continue;
        }
        char bb[80];
        if (d[1] != '{') {
            st = prt_yerr(L->ctx, at, PRT_ERR_PARSE,
                          "in '%s': a '$' inside a string starts '${...}' (write '$$' for a '$' sign)",
                          prt_yshort(at->s, bb, sizeof bb));
            break;
        }
        const char *close = strchr(d + 2, '}');
        if (!close) {
            st = prt_yerr(L->ctx, at, PRT_ERR_PARSE, "in '%s': '${' without a closing '}'",
                          prt_yshort(at->s, bb, sizeof bb));
            break;
        }
        prt_yval v;
        st = eval_braced(L, env, at, at->s, d + 2, (size_t)(close - d - 2), &v);
        if (st != PRT_OK) break;
        switch (v.kind) {
        case PRT_YV_INT: snprintf(tmp, sizeof tmp, "%lld", (long long)v.i); st = buf_add(&b, tmp, strlen(tmp)); break;
        case PRT_YV_FLOAT: snprintf(tmp, sizeof tmp, "%.15g", v.f); st = buf_add(&b, tmp, strlen(tmp)); break;
        case PRT_YV_BOOL: st = buf_add(&b, v.i ? "true" : "false", v.i ? 4 : 5); break;
        case PRT_YV_STR: st = buf_add(&b, v.s, strlen(v.s)); break;
        default:
            v.from_expr = false; /* the message quotes the string already */
            st = prt_yerr(L->ctx, at, PRT_ERR_SCHEMA, "in '%s': cannot put %s inside a string",
                          prt_yshort(at->s, bb, sizeof bb), prt_yval_describe(&v, tmp, sizeof tmp));
        }
        s = close + 1;
    }
    if (st == PRT_OK) {
        memset(out, 0, sizeof *out);
        out->kind = PRT_YV_STR;
        out->at = at;
        out->from_expr = true;
        out->s = prt_yarena_strndup(&L->tmp, b.p ? b.p : "", (size_t)b.n);
        if (!out->s) st = prt_error(L->ctx, PRT_ERR_NOMEM, "out of memory");
    }
    prt_free(L->ctx, b.p, 0);
    return st;
}

static prt_status eval_string(prt_yload *L, const prt_yenv *env, const prt_ynode *node, prt_yval *out) {
    const char *s = node->s;
    size_t n = strlen(s);
    out->kind = PRT_YV_STR;
    out->s = s;
    /* long strings cost their length: a module body is evaluated once per instance */
    PRT_CHECK(prt_ywork(L, node, 1 + n / 64));
    if (!memchr(s, '$', n)) return PRT_OK;
    if (n >= 2 && prt_yident_ok(s + 1, n - 1) && s[0] == '$') {
        const prt_yval *v = env_find(env, s + 1, n - 1);
        if (!v) return undefined(L, env, node, s + 1, n - 1, NULL);
        *out = *v;
        out->at = node;
        out->from_expr = false;
        return PRT_OK;
    }
    if (n >= 3 && s[0] == '$' && s[1] == '{' && strchr(s, '}') == s + n - 1)
        return eval_braced(L, env, node, s, s + 2, n - 3, out);
    return interpolate(L, env, node, out);
}

prt_status prt_yval_eval(prt_yload *L, const prt_yenv *env, const prt_ynode *node, prt_yval *out) {
    char d[80];
    memset(out, 0, sizeof *out);
    out->at = node;
    switch (node->kind) {
    case PRT_YN_NULL: out->kind = PRT_YV_NULL; return PRT_OK;
    case PRT_YN_BOOL: out->kind = PRT_YV_BOOL; out->i = node->i; return PRT_OK;
    case PRT_YN_INT: out->kind = PRT_YV_INT; out->i = node->i; return PRT_OK;
    case PRT_YN_FLOAT: out->kind = PRT_YV_FLOAT; out->f = node->f; return PRT_OK;
    case PRT_YN_STR: return eval_string(L, env, node, out);
    case PRT_YN_MAP: return prt_yerr(L->ctx, node, PRT_ERR_SCHEMA, "expected a value, found a mapping");
    case PRT_YN_SEQ: break;
    }
    PRT_CHECK(prt_ywork(L, node, (uint64_t)node->n + 1));
    prt_yval *items = prt_yarena_alloc(&L->tmp, (size_t)(node->n ? node->n : 1) * sizeof *items);
    if (!items) return prt_error(L->ctx, PRT_ERR_NOMEM, "out of memory");
    for (int k = 0; k < node->n; k++) {
        const prt_ynode *it = node->kids[k];
        if (it->kind == PRT_YN_SEQ || it->kind == PRT_YN_MAP)
            return prt_yerr(L->ctx, it, PRT_ERR_SCHEMA, "expected a number or a string in this list, found %s",
                            prt_ydescribe(it, d, sizeof d));
        PRT_CHECK(prt_yval_eval(L, env, it, &items[k]));
        if (items[k].kind == PRT_YV_LIST)
            return prt_yerr(L->ctx, it, PRT_ERR_SCHEMA, "expected a number or a string in this list, found %s",
                            prt_yval_describe(&items[k], d, sizeof d));
    }
    out->kind = PRT_YV_LIST;
    out->n = node->n;
    out->items = items;
    return PRT_OK;
}

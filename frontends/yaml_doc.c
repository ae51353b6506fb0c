/* libyaml's event parser -> the frontend's document tree (prt_ynode), with 1-based
 * marks on every node. This is the boundary where hostile text is stopped: nesting
 * depth, node count after alias expansion (checked as nodes arrive, so a
 * "billion laughs" file fails after a few lines), duplicate keys, NUL bytes in
 * strings, and libyaml's own syntax and encoding errors, translated with its text. */
#include "frontends/yaml_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

typedef struct yframe {
    prt_ynode *node;
    prt_ynode **kids; /* heap while open, copied into the arena when closed */
    int n, cap;
    uint64_t weight;
    char *anchor; /* heap copy: the event that named it is gone when the node closes */
} yframe;

typedef struct yparse {
    prt_context *ctx;
    prt_yarena *a;
    const char *file;
    const char *text;
    size_t len;
    yframe st[PRT_YAML_MAX_DEPTH];
    int depth;
    prt_strtab *anchors; /* name -> index in anc */
    prt_ynode **anc;
    int n_anc, cap_anc;
    uint64_t total;
    bool aliased;
    prt_ynode *root;
} yparse;

static prt_status nomem(yparse *P) { return prt_error(P->ctx, PRT_ERR_NOMEM, "%s: out of memory", P->file); }

static prt_status err_at(yparse *P, yaml_mark_t m, prt_status st, const char *msg) {
    return prt_yerr_loc(P->ctx, P->file, (int)m.line + 1, (int)m.column + 1, st, "%s", msg);
}

const prt_ynode *prt_ymap_getkey(const prt_ynode *m, const char *key) {
    if (!m || m->kind != PRT_YN_MAP) return NULL;
    for (int k = 0; k < m->n; k++)
        if (strcmp(prt_ymap_key(m, k)->s, key) == 0) return prt_ymap_key(m, k);
    return NULL;
}

const prt_ynode *prt_ymap_get(const prt_ynode *m, const char *key) {
    if (!m || m->kind != PRT_YN_MAP) return NULL;
    for (int k = 0; k < m->n; k++)
        if (strcmp(prt_ymap_key(m, k)->s, key) == 0) return prt_ymap_val(m, k);
    return NULL;
}

/* ---- syntax errors -------------------------------------------------------- */

/* The byte offset of (line, col) counted the way libyaml counts (characters). */
static bool offset_of(const yparse *P, size_t line, size_t col, size_t *off) {
    size_t i = 0, l = 0;
    while (l < line) {
        const char *nl = memchr(P->text + i, '\n', P->len - i);
        if (!nl) return false;
        i = (size_t)(nl - P->text) + 1;
        l++;
    }
    for (size_t c = 0; c < col; c++) {
        if (i >= P->len) return false;
        i++;
        while (i < P->len && ((unsigned char)P->text[i] & 0xC0) == 0x80) i++;
    }
    if (i >= P->len) return false;
    *off = i;
    return true;
}

static prt_status syntax_error(yparse *P, const yaml_parser_t *p) {
    if (p->error == YAML_MEMORY_ERROR) return nomem(P);
    const char *problem = p->problem ? p->problem : "unknown error";
    if (p->error == YAML_READER_ERROR) {
        /* reader errors carry a byte offset, not a mark */
        size_t off = p->problem_offset < P->len ? p->problem_offset : P->len;
        int line = 1, col = 1;
        for (size_t i = 0; i < off; i++) {
            if (P->text[i] == '\n') {
                line++;
                col = 1;
            } else if (((unsigned char)P->text[i] & 0xC0) != 0x80) {
                col++;
            }
        }
        if (p->problem_value >= 0)
            return prt_yerr_loc(P->ctx, P->file, line, col, PRT_ERR_PARSE,
                                "not valid UTF-8 YAML text: %s (byte 0x%02X)", problem, (unsigned)p->problem_value);
        return prt_yerr_loc(P->ctx, P->file, line, col, PRT_ERR_PARSE, "not valid UTF-8 YAML text: %s", problem);
    }
    char ctxt[256] = "";
    if (p->context)
        snprintf(ctxt, sizeof ctxt, " (%s at line %d, column %d)", p->context, (int)p->context_mark.line + 1,
                 (int)p->context_mark.column + 1);
    size_t off;
    const char *hint = "";
    if (offset_of(P, p->problem_mark.line, p->problem_mark.column, &off) && P->text[off] == '\t')
        hint = "; YAML does not allow tabs here, indent with spaces";
    return prt_yerr_loc(P->ctx, P->file, (int)p->problem_mark.line + 1, (int)p->problem_mark.column + 1,
                        PRT_ERR_PARSE, "YAML syntax error: %s%s%s", problem, ctxt, hint);
}

/* ---- scalars -------------------------------------------------------------- */

static bool plain_null(const char *s) {
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

static int plain_bool(const char *s) {
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) return 1;
    if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) return 0;
    return -1;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* YAML 1.2 core-schema decimal integers and floats (and .inf/.nan). */
static prt_ynode_kind plain_number(const char *s, int64_t *iv, double *fv) {
    const char *p = s;
    if (*p == '+' || *p == '-') p++;
    if (!strcmp(p, ".inf") || !strcmp(p, ".Inf") || !strcmp(p, ".INF")) {
        *fv = *s == '-' ? -INFINITY : INFINITY;
        return PRT_YN_FLOAT;
    }
    if (p == s && (!strcmp(p, ".nan") || !strcmp(p, ".NaN") || !strcmp(p, ".NAN"))) {
        *fv = NAN;
        return PRT_YN_FLOAT;
    }
    const char *q = p;
    size_t int_digits = 0, frac_digits = 0;
    while (is_digit(*q)) q++, int_digits++;
    bool is_float = false;
    if (*q == '.') {
        is_float = true;
        q++;
        while (is_digit(*q)) q++, frac_digits++;
    }
    if (int_digits + frac_digits == 0) return PRT_YN_STR;
    if (*q == 'e' || *q == 'E') {
        is_float = true;
        q++;
        if (*q == '+' || *q == '-') q++;
        if (!is_digit(*q)) return PRT_YN_STR;
        while (is_digit(*q)) q++;
    }
    if (*q) return PRT_YN_STR;
    if (!is_float) {
        int64_t v = 0;
        bool ok = true;
        for (const char *d = p; *d && ok; d++)
            ok = prt_mul_i64(v, 10, &v) && prt_add_i64(v, *s == '-' ? -(*d - '0') : (*d - '0'), &v);
        if (ok) {
            *iv = v;
            return PRT_YN_INT;
        }
        /* too large for an integer: kept as a number so messages can say so */
    }
    *fv = strtod(s, NULL);
    return PRT_YN_FLOAT;
}

static prt_status new_node(yparse *P, prt_ynode_kind kind, yaml_mark_t m, prt_ynode **out) {
    prt_ynode *n = prt_yarena_alloc(P->a, sizeof *n);
    if (!n) return nomem(P);
    n->kind = kind;
    n->line = (int)m.line + 1;
    n->col = (int)m.column + 1;
    n->file = P->file;
    n->s = "";
    n->weight = 1;
    *out = n;
    return PRT_OK;
}

static bool std_tag(const char *t) {
    return !strcmp(t, YAML_NULL_TAG) || !strcmp(t, YAML_BOOL_TAG) || !strcmp(t, YAML_INT_TAG) ||
           !strcmp(t, YAML_FLOAT_TAG) || !strcmp(t, YAML_SEQ_TAG) || !strcmp(t, YAML_MAP_TAG) ||
           !strcmp(t, YAML_STR_TAG) || !strcmp(t, "!");
}

static prt_status check_tag(yparse *P, const yaml_char_t *tag, yaml_mark_t m) {
    char buf[80], msg[160];
    if (!tag || std_tag((const char *)tag)) return PRT_OK;
    snprintf(msg, sizeof msg, "unsupported YAML tag '%s' (only the standard !!str, !!int, ... tags are allowed)",
             prt_yshort((const char *)tag, buf, sizeof buf));
    return err_at(P, m, PRT_ERR_PARSE, msg);
}

static prt_status scalar_node(yparse *P, const yaml_event_t *ev, prt_ynode **out) {
    const char *v = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    const char *tag = (const char *)ev->data.scalar.tag;
    PRT_CHECK(check_tag(P, ev->data.scalar.tag, ev->start_mark));
    if (memchr(v, '\0', len))
        return err_at(P, ev->start_mark, PRT_ERR_PARSE, "strings may not contain NUL characters");
    prt_ynode *n = NULL;
    PRT_CHECK(new_node(P, PRT_YN_STR, ev->start_mark, &n));
    char *s = prt_yarena_strndup(P->a, v, len);
    if (!s) return nomem(P);
    n->s = s;
    bool quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || (tag && (!strcmp(tag, YAML_STR_TAG) ||
                                                                               !strcmp(tag, "!")));
    n->plain = !quoted && !tag;
    if (!quoted) {
        int b;
        if (plain_null(s))
            n->kind = PRT_YN_NULL;
        else if ((b = plain_bool(s)) >= 0) {
            n->kind = PRT_YN_BOOL;
            n->i = b;
        } else
            n->kind = plain_number(s, &n->i, &n->f);
    }
    *out = n;
    return PRT_OK;
}

/* ---- building the tree ---------------------------------------------------- */

static prt_status count(yparse *P, uint64_t w, yaml_mark_t m) {
    P->total += w;
    if (P->total <= PRT_YAML_MAX_EXPANDED) return PRT_OK;
    char msg[160];
    if (P->aliased)
        snprintf(msg, sizeof msg, "alias expansion exceeds the limit of %d YAML nodes", PRT_YAML_MAX_EXPANDED);
    else
        snprintf(msg, sizeof msg, "the document has more than %d YAML nodes", PRT_YAML_MAX_EXPANDED);
    return err_at(P, m, PRT_ERR_LIMIT, msg);
}

static prt_status add_child(yparse *P, prt_ynode *n, yaml_mark_t m) {
    if (P->depth == 0) {
        P->root = n;
        return PRT_OK;
    }
    yframe *f = &P->st[P->depth - 1];
    if (f->node->kind == PRT_YN_MAP && f->n % 2 == 0 && (n->kind == PRT_YN_SEQ || n->kind == PRT_YN_MAP))
        return err_at(P, m, PRT_ERR_PARSE, "mapping keys must be plain strings, found a list or mapping");
    PRT_CHECK(prt_grow(P->ctx, (void **)&f->kids, &f->cap, f->n + 1, sizeof *f->kids));
    f->kids[f->n++] = n;
    f->weight += n->weight;
    return PRT_OK;
}

static prt_status add_anchor(yparse *P, const char *name, prt_ynode *n) {
    int existing;
    PRT_CHECK(prt_grow(P->ctx, (void **)&P->anc, &P->cap_anc, P->n_anc + 1, sizeof *P->anc));
    prt_status st = prt_strtab_put(P->ctx, P->anchors, name, P->n_anc, &existing);
    if (st == PRT_ERR_INVALID) {
        P->anc[existing] = n; /* YAML lets a later anchor of the same name replace it */
        return PRT_OK;
    }
    PRT_CHECK(st);
    P->anc[P->n_anc++] = n;
    return PRT_OK;
}

typedef struct ypair {
    prt_ynode *k, *v;
    int order;
    bool explicit_key;
} ypair;

static int pair_cmp(const void *a, const void *b) {
    const ypair *x = a, *y = b;
    int c = strcmp(x->k->s, y->k->s);
    if (c) return c;
    return (x->order > y->order) - (x->order < y->order);
}

static int pair_order_cmp(const void *a, const void *b) {
    const ypair *x = a, *y = b;
    return (x->order > y->order) - (x->order < y->order);
}

static bool merge_key(const prt_ynode *k) { return k->plain && k->kind == PRT_YN_STR && !strcmp(k->s, "<<"); }

static prt_status dup_key(yparse *P, const prt_ynode *second, const prt_ynode *first) {
    char b[80];
    return prt_yerr(P->ctx, second, PRT_ERR_PARSE, "duplicate key '%s' in a mapping (first at line %d, column %d)",
                    prt_yshort(second->s, b, sizeof b), first->line, first->col);
}

/* Closes a mapping: applies merge keys (`<<: *defaults`, explicit keys win) and
 * rejects duplicate keys. pairs[] is the frame's kids as (key, value). */
static prt_status close_map(yparse *P, yframe *f) {
    int np = f->n / 2;
    bool has_merge = false;
    for (int k = 0; k < np; k++) has_merge |= merge_key(f->kids[2 * k]);
    if (!has_merge && np <= 16) {
        for (int a = 1; a < np; a++)
            for (int b = 0; b < a; b++)
                if (!strcmp(f->kids[2 * a]->s, f->kids[2 * b]->s)) return dup_key(P, f->kids[2 * a], f->kids[2 * b]);
        f->node->kids = prt_yarena_alloc(P->a, (size_t)(np ? np : 1) * 2 * sizeof *f->kids);
        if (!f->node->kids) return nomem(P);
        if (np) memcpy(f->node->kids, f->kids, (size_t)np * 2 * sizeof *f->kids);
        f->node->n = np;
        return PRT_OK;
    }
    /* general path: collect explicit and merged pairs, sort by key, keep the first */
    size_t total = 0;
    for (int k = 0; k < np; k++) {
        prt_ynode *key = f->kids[2 * k], *v = f->kids[2 * k + 1];
        if (!merge_key(key)) {
            total++;
        } else if (v->kind == PRT_YN_MAP) {
            total += (size_t)v->n;
        } else if (v->kind == PRT_YN_SEQ) {
            for (int j = 0; j < v->n; j++) {
                if (v->kids[j]->kind != PRT_YN_MAP)
                    return prt_yerr(P->ctx, v->kids[j], PRT_ERR_PARSE,
                                    "a merge key '<<' takes a mapping or a list of mappings");
                total += (size_t)v->kids[j]->n;
            }
        } else {
            return prt_yerr(P->ctx, v, PRT_ERR_PARSE, "a merge key '<<' takes a mapping or a list of mappings");
        }
    }
    ypair *pr = prt_calloc(P->ctx, total ? total : 1, sizeof *pr);
    if (!pr) return nomem(P);
    int m = 0;
    for (int k = 0; k < np; k++)
        if (!merge_key(f->kids[2 * k])) pr[m] = (ypair){f->kids[2 * k], f->kids[2 * k + 1], m, true}, m++;
    for (int k = 0; k < np; k++) {
        prt_ynode *v = f->kids[2 * k + 1];
        if (!merge_key(f->kids[2 * k])) continue;
        int ns = v->kind == PRT_YN_MAP ? 1 : v->n;
        for (int j = 0; j < ns; j++) {
            prt_ynode *src = v->kind == PRT_YN_MAP ? v : v->kids[j];
            for (int q = 0; q < src->n; q++) pr[m] = (ypair){src->kids[2 * q], src->kids[2 * q + 1], m, false}, m++;
        }
    }
    qsort(pr, (size_t)m, sizeof *pr, pair_cmp);
    int kept = 0;
    prt_status st = PRT_OK;
    for (int j = 0; j < m; j++) {
        if (kept > 0 && !strcmp(pr[kept - 1].k->s, pr[j].k->s)) {
            if (pr[j].explicit_key && pr[kept - 1].explicit_key) {
                /* report the later of the two as the duplicate */
                st = dup_key(P, pr[j].k, pr[kept - 1].k);
                break;
            }
            continue;
        }
        pr[kept++] = pr[j];
    }
    if (st == PRT_OK) {
        qsort(pr, (size_t)kept, sizeof *pr, pair_order_cmp);
        f->node->kids = prt_yarena_alloc(P->a, (size_t)(kept ? kept : 1) * 2 * sizeof *f->kids);
        if (!f->node->kids) st = nomem(P);
    }
    if (st == PRT_OK) {
        for (int j = 0; j < kept; j++) {
            f->node->kids[2 * j] = pr[j].k;
            f->node->kids[2 * j + 1] = pr[j].v;
        }
        f->node->n = kept;
    }
    prt_free(P->ctx, pr, 0);
    return st;
}

static prt_status open_container(yparse *P, const yaml_event_t *ev, prt_ynode_kind kind) {
    const yaml_char_t *anchor = kind == PRT_YN_MAP ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;
    const yaml_char_t *tag = kind == PRT_YN_MAP ? ev->data.mapping_start.tag : ev->data.sequence_start.tag;
    PRT_CHECK(check_tag(P, tag, ev->start_mark));
    if (P->depth == PRT_YAML_MAX_DEPTH) {
        char msg[96];
        snprintf(msg, sizeof msg, "YAML nesting is deeper than %d levels", PRT_YAML_MAX_DEPTH);
        return err_at(P, ev->start_mark, PRT_ERR_LIMIT, msg);
    }
    PRT_CHECK(count(P, 1, ev->start_mark));
    yframe *f = &P->st[P->depth];
    memset(f, 0, sizeof *f);
    PRT_CHECK(new_node(P, kind, ev->start_mark, &f->node));
    if (anchor) {
        f->anchor = prt_strdup(P->ctx, (const char *)anchor);
        if (!f->anchor) return nomem(P);
    }
    P->depth++;
    return PRT_OK;
}

static void drop_frame(yparse *P, yframe *f) {
    prt_free(P->ctx, f->kids, 0);
    prt_free(P->ctx, f->anchor, 0);
    f->kids = NULL;
    f->anchor = NULL;
}

static prt_status close_container(yparse *P, yaml_mark_t m) {
    yframe *f = &P->st[P->depth - 1];
    prt_ynode *n = f->node;
    prt_status st;
    if (n->kind == PRT_YN_MAP) {
        st = close_map(P, f);
    } else {
        st = PRT_OK;
        n->kids = prt_yarena_alloc(P->a, (size_t)(f->n ? f->n : 1) * sizeof *f->kids);
        if (!n->kids) st = nomem(P);
        else {
            if (f->n) memcpy(n->kids, f->kids, (size_t)f->n * sizeof *f->kids);
            n->n = f->n;
        }
    }
    uint64_t w = f->weight + 1;
    n->weight = w > PRT_YAML_MAX_EXPANDED ? PRT_YAML_MAX_EXPANDED + 1 : (uint32_t)w;
    if (st == PRT_OK && f->anchor) st = add_anchor(P, f->anchor, n);
    drop_frame(P, f);
    P->depth--;
    if (st == PRT_OK) st = add_child(P, n, m);
    return st;
}

static prt_status on_event(yparse *P, const yaml_event_t *ev, int *docs) {
    prt_ynode *n = NULL;
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++*docs > 1)
            return err_at(P, ev->start_mark, PRT_ERR_PARSE,
                          "expected one YAML document, found a second one (a network is one document)");
        return PRT_OK;
    case YAML_SCALAR_EVENT:
        PRT_CHECK(count(P, 1, ev->start_mark));
        PRT_CHECK(scalar_node(P, ev, &n));
        if (ev->data.scalar.anchor) PRT_CHECK(add_anchor(P, (const char *)ev->data.scalar.anchor, n));
        return add_child(P, n, ev->start_mark);
    case YAML_ALIAS_EVENT: {
        int idx;
        if (!prt_strtab_get(P->anchors, (const char *)ev->data.alias.anchor, &idx)) {
            char b[80], msg[160];
            snprintf(msg, sizeof msg, "undefined alias '*%s' (an alias refers to an earlier, complete '&' anchor)",
                     prt_yshort((const char *)ev->data.alias.anchor, b, sizeof b));
            return err_at(P, ev->start_mark, PRT_ERR_PARSE, msg);
        }
        n = P->anc[idx];
        P->aliased = true;
        /* the node itself counts 1 already in its weight; aliases expand to it all */
        PRT_CHECK(count(P, n->weight, ev->start_mark));
        return add_child(P, n, ev->start_mark);
    }
    case YAML_SEQUENCE_START_EVENT: return open_container(P, ev, PRT_YN_SEQ);
    case YAML_MAPPING_START_EVENT: return open_container(P, ev, PRT_YN_MAP);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT: return close_container(P, ev->end_mark);
    default: return PRT_OK;
    }
}

prt_status prt_ydoc_parse(prt_context *ctx, prt_yarena *a, const char *file, const char *text, size_t len,
                          prt_ynode **root) {
    *root = NULL;
    yparse *P = prt_calloc(ctx, 1, sizeof *P);
    if (!P) return prt_error(ctx, PRT_ERR_NOMEM, "%s: out of memory", file);
    P->ctx = ctx;
    P->a = a;
    P->text = text ? text : "";
    P->len = text ? len : 0;
    prt_status st = PRT_OK;
    yaml_parser_t p;
    bool parser_ok = false;
    char *f = prt_yarena_strndup(a, file, strlen(file));
    if (!f) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "%s: out of memory", file);
        goto done;
    }
    P->file = f;
    if (P->len > PRT_YAML_MAX_FILE_BYTES) {
        st = prt_yerr_loc(ctx, f, 1, 1, PRT_ERR_LIMIT, "the file is larger than the 16 MiB limit (%zu bytes)", P->len);
        goto done;
    }
    PRT_CHECK_GOTO(prt_strtab_create(ctx, &P->anchors), st, done);
    if (!yaml_parser_initialize(&p)) {
        st = nomem(P);
        goto done;
    }
    parser_ok = true;
    yaml_parser_set_input_string(&p, (const unsigned char *)P->text, P->len);
    int docs = 0;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            st = syntax_error(P, &p);
            break;
        }
        bool end = ev.type == YAML_STREAM_END_EVENT;
        st = on_event(P, &ev, &docs);
        yaml_event_delete(&ev);
        if (st != PRT_OK || end) break;
    }
    if (st == PRT_OK) *root = P->root;
done:
    while (P->depth > 0) drop_frame(P, &P->st[--P->depth]);
    if (parser_ok) yaml_parser_delete(&p);
    prt_strtab_destroy(ctx, P->anchors);
    prt_free(ctx, P->anc, 0);
    prt_free(ctx, P, sizeof *P);
    return st;
}

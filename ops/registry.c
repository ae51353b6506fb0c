/* The operator registry: schemas by id (registration order) and by name through
 * an open-addressing hash table, plus the "did you mean" helpers and the
 * attribute expansion shared by shape functions and kernels. */
#include "ops/ops_impl.h"

#include <stdlib.h>
#include <string.h>

struct prt_registry {
    const prt_op_schema **ops; /* by id */
    int n, cap;
    int *slots;                /* hash slots: op id + 1, 0 = empty */
    int n_slots;               /* a power of two, kept at most half full */
};

static const prt_op_schema *const builtin_ops[] = {
#define X(sym) &prt_op_##sym,
#include "ops/builtin_ops.def"
#undef X
};

static uint64_t name_hash(const char *name) { return prt_hash_str(name, 0x6f7073); }

/* Slot holding `name`, or the empty slot where it would go. */
static int find_slot(const prt_registry *r, const char *name) {
    unsigned mask = (unsigned)r->n_slots - 1;
    unsigned i = (unsigned)name_hash(name) & mask;
    while (r->slots[i] && strcmp(r->ops[r->slots[i] - 1]->name, name) != 0) i = (i + 1) & mask;
    return (int)i;
}

static prt_status rehash(prt_context *ctx, prt_registry *r, int n_slots) {
    size_t bytes;
    if (!prt_mul_size((size_t)n_slots, sizeof(int), &bytes))
        return prt_error(ctx, PRT_ERR_OVERFLOW, "op registry: too many ops");
    int *slots = prt_calloc(ctx, (size_t)n_slots, sizeof(int));
    if (!slots) return prt_error(ctx, PRT_ERR_NOMEM, "op registry: out of memory");
    prt_free(ctx, r->slots, (size_t)r->n_slots * sizeof(int));
    r->slots = slots;
    r->n_slots = n_slots;
    for (int id = 0; id < r->n; id++) r->slots[find_slot(r, r->ops[id]->name)] = id + 1;
    return PRT_OK;
}

prt_status prt_registry_create(prt_context *ctx, prt_registry **out) {
    *out = NULL;
    prt_registry *r = prt_calloc(ctx, 1, sizeof *r);
    if (!r) return prt_error(ctx, PRT_ERR_NOMEM, "op registry: out of memory");
    prt_status st;
    PRT_CHECK_GOTO(rehash(ctx, r, 32), st, fail);
    for (size_t i = 0; i < sizeof builtin_ops / sizeof builtin_ops[0]; i++)
        PRT_CHECK_GOTO(prt_registry_add(ctx, r, builtin_ops[i]), st, fail);
    *out = r;
    return PRT_OK;
fail:
    prt_registry_destroy(ctx, r);
    return st;
}

void prt_registry_destroy(prt_context *ctx, prt_registry *r) {
    if (!r) return;
    prt_free(ctx, r->ops, (size_t)r->cap * sizeof *r->ops);
    prt_free(ctx, r->slots, (size_t)r->n_slots * sizeof(int));
    prt_free(ctx, r, sizeof *r);
}

prt_status prt_registry_add(prt_context *ctx, prt_registry *r, const prt_op_schema *s) {
    if (!s || !s->name || !s->name[0] || !s->infer || !s->ref.run)
        return prt_error(ctx, PRT_ERR_INVALID, "op registry: a schema needs a name, a shape function and a reference kernel");
    /* ops that update their inputs in place (optimizers) may have no outputs and
     * take every parameter at once */
    int max_in = s->updates_inputs ? PRT_MAX_UPDATE_IN : PRT_VARIADIC;
    if (s->n_params > PRT_MAX_OP_PARAMS || s->min_in < 0 || s->max_in < s->min_in || s->max_in > max_in ||
        s->n_out < (s->updates_inputs ? 0 : 1) || s->n_out > 4 || s->n_attrs < 0 || s->inplace_in >= s->max_in)
        return prt_error(ctx, PRT_ERR_INVALID, "op registry: op '%s' has an inconsistent schema", s->name);
    int slot = find_slot(r, s->name);
    if (r->slots[slot])
        return prt_error(ctx, PRT_ERR_INVALID, "op registry: op '%s' is already registered", s->name);
    if (r->n == r->cap) {
        int cap = r->cap;
        void *ops = r->ops;
        PRT_CHECK(prt_grow(ctx, &ops, &cap, r->n + 1, sizeof *r->ops));
        r->ops = ops;
        r->cap = cap;
    }
    r->ops[r->n] = s;
    r->slots[slot] = ++r->n;
    if (r->n * 2 > r->n_slots) PRT_CHECK(rehash(ctx, r, r->n_slots * 2));
    return PRT_OK;
}

const prt_op_schema *prt_op_find(const prt_registry *r, const char *name, int *id) {
    if (id) *id = -1;
    if (!r || !name) return NULL;
    int v = r->slots[find_slot(r, name)];
    if (!v) return NULL;
    if (id) *id = v - 1;
    return r->ops[v - 1];
}

const prt_op_schema *prt_op_get(const prt_registry *r, int id) {
    return (r && id >= 0 && id < r->n) ? r->ops[id] : NULL;
}

int prt_op_count(const prt_registry *r) { return r ? r->n : 0; }

void prt_registry_truncate(prt_context *ctx, prt_registry *r, int n) {
    if (!r || n < 0 || n >= r->n) return;
    r->n = n;
    /* linear probing cannot delete in place: rebuild the slots at the same size */
    memset(r->slots, 0, (size_t)r->n_slots * sizeof(int));
    for (int id = 0; id < r->n; id++) r->slots[find_slot(r, r->ops[id]->name)] = id + 1;
    (void)ctx;
}

int prt_op_attr_index(const prt_op_schema *s, const char *name) {
    /* schemas have a handful of attributes: a scan beats hashing here */
    for (int i = 0; i < s->n_attrs; i++)
        if (strcmp(s->attrs[i].name, name) == 0) return i;
    return -1;
}

int prt_op_suggest(const prt_registry *r, const char *name, const char **out, int max) {
    if (!r || !name || max <= 0) return 0;
    int dist[16];
    if (max > 16) max = 16;
    int k = 0;
    /* insertion into a short sorted list; ties keep registry order */
    for (int id = 0; id < r->n; id++) {
        int d = prt_edit_distance(name, r->ops[id]->name);
        int pos = k;
        while (pos > 0 && dist[pos - 1] > d) pos--;
        if (pos >= max) continue;
        int last = k < max ? k : max - 1;
        for (int j = last; j > pos; j--) {
            dist[j] = dist[j - 1];
            out[j] = out[j - 1];
        }
        dist[pos] = d;
        out[pos] = r->ops[id]->name;
        if (k < max) k++;
    }
    return k;
}

/* Names longer than this are compared on their first EDIT_MAX bytes, plus the
 * difference in length: the function has no allocator and "did you mean" only
 * matters for short names. */
#define EDIT_MAX 256

int prt_edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b), extra = 0;
    if (la > EDIT_MAX || lb > EDIT_MAX) {
        size_t ta = la > EDIT_MAX ? EDIT_MAX : la, tb = lb > EDIT_MAX ? EDIT_MAX : lb;
        size_t over_a = la - ta, over_b = lb - tb;
        extra = over_a > over_b ? over_a - over_b : over_b - over_a;
        la = ta;
        lb = tb;
    }
    int row[EDIT_MAX + 1];
    for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    size_t d = (size_t)row[lb] + extra;
    return d > INT32_MAX ? INT32_MAX : (int)d;
}

void prt_attr_pair(const prt_attr *a, int64_t *h, int64_t *w) {
    if (a->n <= 0) {
        *h = *w = 0;
    } else if (a->n == 1) {
        *h = *w = a->i[0];
    } else {
        *h = a->i[0];
        *w = a->i[1];
    }
}

void prt_attr_pad4(const prt_attr *a, int64_t pad[4]) {
    if (a->n >= 4) {
        for (int k = 0; k < 4; k++) pad[k] = a->i[k];
    } else {
        int64_t h, w;
        prt_attr_pair(a, &h, &w);
        pad[0] = pad[2] = h;
        pad[1] = pad[3] = w;
    }
}

prt_status prt_infer_error(const prt_infer_ctx *ic, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *name = ic->node_name ? ic->node_name : "?";
    char where[512];
    if (ic->op_name)
        snprintf(where, sizeof where, "layer '%s' (%s)", name, ic->op_name);
    else
        snprintf(where, sizeof where, "layer '%s'", name);
    if (ic->loc.line > 0)
        return prt_error(ic->ctx, PRT_ERR_SHAPE, "%s:%d:%d: %s: %s", ic->loc.file ? ic->loc.file : "?", ic->loc.line,
                         ic->loc.col, where, msg);
    return prt_error(ic->ctx, PRT_ERR_SHAPE, "%s: %s", where, msg);
}

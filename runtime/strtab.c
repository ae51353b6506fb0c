/* A string -> int hash table with open addressing; keys are copied and double as
 * interned strings. */
#include "runtime/graph_impl.h"

#include <string.h>

struct prt_strtab {
    char **keys;
    int *vals;
    size_t cap; /* power of two */
    size_t count;
};

prt_status prt_strtab_create(prt_context *ctx, prt_strtab **out) {
    prt_strtab *t = prt_calloc(ctx, 1, sizeof *t);
    if (!t) return prt_error(ctx, PRT_ERR_NOMEM, "out of memory");
    t->cap = 64;
    t->keys = prt_calloc(ctx, t->cap, sizeof *t->keys);
    t->vals = prt_calloc(ctx, t->cap, sizeof *t->vals);
    if (!t->keys || !t->vals) {
        prt_strtab_destroy(ctx, t);
        return prt_error(ctx, PRT_ERR_NOMEM, "out of memory");
    }
    *out = t;
    return PRT_OK;
}

void prt_strtab_destroy(prt_context *ctx, prt_strtab *t) {
    if (!t) return;
    if (t->keys)
        for (size_t i = 0; i < t->cap; i++) prt_free(ctx, t->keys[i], 0);
    prt_free(ctx, t->keys, t->cap * sizeof *t->keys);
    prt_free(ctx, t->vals, t->cap * sizeof *t->vals);
    prt_free(ctx, t, sizeof *t);
}

static size_t slot_of(const prt_strtab *t, const char *key) {
    size_t i = (size_t)prt_hash_str(key, 0) & (t->cap - 1);
    while (t->keys[i] && strcmp(t->keys[i], key) != 0) i = (i + 1) & (t->cap - 1);
    return i;
}

static prt_status rehash(prt_context *ctx, prt_strtab *t) {
    prt_strtab n = {.cap = t->cap * 2};
    n.keys = prt_calloc(ctx, n.cap, sizeof *n.keys);
    n.vals = prt_calloc(ctx, n.cap, sizeof *n.vals);
    if (!n.keys || !n.vals) {
        prt_free(ctx, n.keys, 0);
        prt_free(ctx, n.vals, 0);
        return prt_error(ctx, PRT_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->keys[i]) continue;
        size_t j = slot_of(&n, t->keys[i]);
        n.keys[j] = t->keys[i];
        n.vals[j] = t->vals[i];
    }
    prt_free(ctx, t->keys, t->cap * sizeof *t->keys);
    prt_free(ctx, t->vals, t->cap * sizeof *t->vals);
    n.count = t->count;
    *t = n;
    return PRT_OK;
}

prt_status prt_strtab_put(prt_context *ctx, prt_strtab *t, const char *key, int val, int *existing) {
    if ((t->count + 1) * 2 > t->cap) PRT_CHECK(rehash(ctx, t));
    size_t i = slot_of(t, key);
    if (t->keys[i]) {
        if (existing) *existing = t->vals[i];
        return PRT_ERR_INVALID;
    }
    t->keys[i] = prt_strdup(ctx, key);
    if (!t->keys[i]) return prt_error(ctx, PRT_ERR_NOMEM, "out of memory");
    t->vals[i] = val;
    t->count++;
    return PRT_OK;
}

bool prt_strtab_get(const prt_strtab *t, const char *key, int *val) {
    size_t i = slot_of(t, key);
    if (!t->keys[i]) return false;
    if (val) *val = t->vals[i];
    return true;
}

const char *prt_strtab_key(const prt_strtab *t, const char *key) {
    size_t i = slot_of(t, key);
    return t->keys[i];
}

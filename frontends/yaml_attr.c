/* Attribute values of an op layer -> the node's prt_attr array, in schema order with
 * defaults filled in, each value type-checked and bounded by its prt_attr_def. */
#include "frontends/yaml_impl.h"

#include <math.h>
#include <string.h>

#define STR_(x) #x
#define STR(x) STR_(x)

static const char *type_want(prt_attr_type t) {
    switch (t) {
    case PRT_ATTR_INT: return "an integer";
    case PRT_ATTR_FLOAT: return "a number";
    case PRT_ATTR_BOOL: return "true or false";
    case PRT_ATTR_INTS: return "an integer or a list of 1 to " STR(PRT_ATTR_MAX_INTS) " integers";
    case PRT_ATTR_STRING: return "a string";
    }
    return "a value";
}

static prt_status bad_type(prt_yload *L, const char *layer, const prt_attr_def *d, const prt_yval *v) {
    char b[160];
    return prt_yerr(L->ctx, v->at, PRT_ERR_SCHEMA, "layer '%s': attribute '%s' expects %s, found %s",
                    layer, d->name, type_want(d->type), prt_yval_describe(v, b, sizeof b));
}

static prt_status below_min(prt_yload *L, const char *layer, const prt_attr_def *d, const prt_yval *v, int item,
                            int64_t x) {
    if (item > 0)
        return prt_yerr(L->ctx, v->at, PRT_ERR_SCHEMA,
                        "layer '%s': attribute '%s': item %d must be at least %lld, found %lld",
                        layer, d->name, item, (long long)d->min, (long long)x);
    return prt_yerr(L->ctx, v->at, PRT_ERR_SCHEMA, "layer '%s': attribute '%s' must be at least %lld, found %lld",
                    layer, d->name, (long long)d->min, (long long)x);
}

static prt_status convert(prt_yload *L, const char *layer, const prt_attr_def *d, const prt_yval *v, prt_attr *a) {
    int64_t x;
    char b[160];
    a->type = d->type;
    a->set = true;
    switch (d->type) {
    case PRT_ATTR_INT:
        if (!prt_yval_integral(v, &x)) return bad_type(L, layer, d, v);
        if (x < d->min) return below_min(L, layer, d, v, 0, x);
        a->n = 1;
        a->i[0] = x;
        return PRT_OK;
    case PRT_ATTR_FLOAT:
        if (v->kind == PRT_YV_INT) {
            a->f = (double)v->i;
            return PRT_OK;
        }
        if (v->kind != PRT_YV_FLOAT) return bad_type(L, layer, d, v);
        if (!isfinite(v->f))
            return prt_yerr(L->ctx, v->at, PRT_ERR_SCHEMA, "layer '%s': attribute '%s' expects a finite number, found %s",
                            layer, d->name, prt_yval_describe(v, b, sizeof b));
        a->f = v->f;
        return PRT_OK;
    case PRT_ATTR_BOOL:
        if (v->kind != PRT_YV_BOOL) return bad_type(L, layer, d, v);
        a->i[0] = v->i;
        return PRT_OK;
    case PRT_ATTR_STRING:
        if (v->kind != PRT_YV_STR) return bad_type(L, layer, d, v);
        a->s = prt_graph_intern(L->g, v->s);
        if (!a->s) return prt_error(L->ctx, PRT_ERR_NOMEM, "out of memory");
        return PRT_OK;
    case PRT_ATTR_INTS:
        if (v->kind != PRT_YV_LIST) {
            if (!prt_yval_integral(v, &x)) return bad_type(L, layer, d, v);
            if (x < d->min) return below_min(L, layer, d, v, 0, x);
            a->n = 1;
            a->i[0] = x;
            return PRT_OK;
        }
        if (v->n < 1 || v->n > PRT_ATTR_MAX_INTS) return bad_type(L, layer, d, v);
        for (int k = 0; k < v->n; k++) {
            const prt_yval *it = &v->items[k];
            if (!prt_yval_integral(it, &x))
                return prt_yerr(L->ctx, it->at, PRT_ERR_SCHEMA,
                                "layer '%s': attribute '%s': item %d must be an integer, found %s",
                                layer, d->name, k + 1, prt_yval_describe(it, b, sizeof b));
            if (x < d->min) return below_min(L, layer, d, it, k + 1, x);
            a->i[k] = x;
        }
        a->n = v->n;
        return PRT_OK;
    }
    return prt_error(L->ctx, PRT_ERR_INTERNAL, "attribute '%s' has an unknown type", d->name);
}

static prt_status unknown_attr(prt_yload *L, const char *layer, const prt_op_schema *s, const prt_ynode *k) {
    const char *names[32];
    int n = s->n_attrs < 32 ? s->n_attrs : 32;
    for (int j = 0; j < n; j++) names[j] = s->attrs[j].name;
    char kb[80], tail[512];
    const char *near = prt_ynearest(k->s, names, n);
    if (near) {
        snprintf(tail, sizeof tail, "did you mean '%s'?", near);
    } else if (n == 0) {
        snprintf(tail, sizeof tail, "%s takes no attributes", s->name);
    } else {
        size_t o = (size_t)snprintf(tail, sizeof tail, "%s takes:", s->name);
        for (int j = 0; j < n && o < sizeof tail; j++)
            o += (size_t)snprintf(tail + o, sizeof tail - o, "%s %s", j ? "," : "", names[j]);
    }
    return prt_yerr(L->ctx, k, PRT_ERR_SCHEMA, "layer '%s': unknown key '%s' (%s)", layer,
                    prt_yshort(k->s, kb, sizeof kb), tail);
}

prt_status prt_yattrs_build(prt_yload *L, const prt_yenv *env, const char *layer, const prt_op_schema *s,
                            const prt_ynode *key, const prt_ynode *m, prt_attr *attrs) {
    char b[160];
    for (int k = 0; k < s->n_attrs; k++) {
        attrs[k] = s->attrs[k].def;
        attrs[k].type = s->attrs[k].type;
        attrs[k].set = false;
    }
    if (m && m->kind != PRT_YN_NULL) {
        if (m->kind != PRT_YN_MAP)
            return prt_yerr(L->ctx, m, PRT_ERR_SCHEMA,
                            "layer '%s': expected the attributes of '%s' (a mapping, or nothing), found %s",
                            layer, s->name, prt_ydescribe(m, b, sizeof b));
        PRT_CHECK(prt_ywork(L, m, (uint64_t)m->n + 1));
        for (int k = 0; k < m->n; k++) {
            const prt_ynode *kn = prt_ymap_key(m, k), *vn = prt_ymap_val(m, k);
            int idx = prt_op_attr_index(s, kn->s);
            if (idx < 0) return unknown_attr(L, layer, s, kn);
            const prt_attr_def *d = &s->attrs[idx];
            if (vn->kind == PRT_YN_MAP)
                return prt_yerr(L->ctx, vn, PRT_ERR_SCHEMA, "layer '%s': attribute '%s' expects %s, found a mapping",
                                layer, d->name, type_want(d->type));
            prt_yval v;
            PRT_CHECK(prt_yval_eval(L, env, vn, &v));
            PRT_CHECK(convert(L, layer, d, &v, &attrs[idx]));
        }
    }
    for (int k = 0; k < s->n_attrs; k++)
        if (s->attrs[k].required && !attrs[k].set)
            return prt_yerr(L->ctx, key, PRT_ERR_SCHEMA, "layer '%s': %s requires attribute '%s'",
                            layer, s->name, s->attrs[k].name);
    return PRT_OK;
}

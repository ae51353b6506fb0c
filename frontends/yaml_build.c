/* Layers -> graph nodes: op layers, module instances, `repeat`, and parameter
 * sharing. Every layer list is a scope of local names; a node's name is the path of
 * instance names ("a/0/b1/conv_0"). Sharing works through the node's param_path: a
 * shared layer takes the param_path of its counterpart, and the graph then binds
 * both to the same parameter values (checking the shapes). */
#include "frontends/yaml_impl.h"

#include <stdlib.h>
#include <string.h>

/* ---- scopes --------------------------------------------------------------- */

typedef struct yentry {
    const char *name;
    int value;        /* the tensor this name reads */
    int node;         /* op layers: the node; -1 otherwise */
    const char *path; /* module and repeat layers: their full path (share targets) */
    const prt_ynode *at;
} yentry;

typedef struct yscope {
    const char *prefix; /* "" at the top level */
    yentry *e;
    int n, cap;
    prt_strtab *index;  /* built once the scope is large */
    int last;           /* the value the next layer reads by default */
} yscope;

/* Enclosing `share: {with: ...}` of module and repeat layers, innermost first. */
typedef struct yshare {
    const char *prefix; /* the sharing layer's path */
    const char *target; /* the path of the layer it shares with */
    const int *ops;     /* op ids; NULL: every op */
    int n_ops;
    const struct yshare *outer;
} yshare;

#define SCOPE_INDEX_AT 16

static void scope_free(prt_yload *L, yscope *sc) {
    prt_free(L->ctx, sc->e, 0);
    prt_strtab_destroy(L->ctx, sc->index);
    sc->e = NULL;
    sc->index = NULL;
}

static const yentry *scope_find(const yscope *sc, const char *name) {
    if (sc->index) {
        int k;
        return prt_strtab_get(sc->index, name, &k) ? &sc->e[k] : NULL;
    }
    for (int k = 0; k < sc->n; k++)
        if (!strcmp(sc->e[k].name, name)) return &sc->e[k];
    return NULL;
}

static prt_status scope_add(prt_yload *L, yscope *sc, const yentry *e) {
    PRT_CHECK(prt_grow(L->ctx, (void **)&sc->e, &sc->cap, sc->n + 1, sizeof *sc->e));
    sc->e[sc->n] = *e;
    if (!sc->index && sc->n + 1 >= SCOPE_INDEX_AT) {
        PRT_CHECK(prt_strtab_create(L->ctx, &sc->index));
        for (int k = 0; k < sc->n; k++) PRT_CHECK(prt_strtab_put(L->ctx, sc->index, sc->e[k].name, k, NULL));
    }
    if (sc->index) PRT_CHECK(prt_strtab_put(L->ctx, sc->index, e->name, sc->n, NULL));
    sc->n++;
    return PRT_OK;
}

/* " (did you mean 'x'?)" for a name of this scope, or "". */
static const char *scope_suggest(const yscope *sc, const char *name, char *buf, size_t cap) {
    const char *cands[512];
    int n = 0;
    /* a typo is usually of a recent name; the most recent 512 keep this cheap */
    for (int k = sc->n - 1; k >= 0 && n < 512; k--) cands[n++] = sc->e[k].name;
    const char *near = prt_ynearest(name, cands, n);
    buf[0] = '\0';
    if (near) snprintf(buf, cap, " (did you mean '%s'?)", near);
    return buf;
}

/* ---- helpers -------------------------------------------------------------- */

static prt_status nomem(prt_yload *L) { return prt_error(L->ctx, PRT_ERR_NOMEM, "out of memory"); }

static prt_status join(prt_yload *L, const prt_ynode *at, const char *prefix, const char *name, const char **out) {
    size_t a = strlen(prefix), b = strlen(name);
    if (a + 1 + b > PRT_YAML_MAX_PATH) {
        char pb[80];
        return prt_yerr(L->ctx, at, PRT_ERR_LIMIT, "layer path '%s' + '/%s' is longer than %d characters",
                        prt_yshort(prefix, pb, sizeof pb), name, PRT_YAML_MAX_PATH);
    }
    char *p = prt_yarena_alloc(&L->tmp, a + b + 2);
    if (!p) return nomem(L);
    if (a) {
        memcpy(p, prefix, a);
        p[a++] = '/';
    }
    memcpy(p + a, name, b + 1);
    *out = p;
    return PRT_OK;
}

static prt_status loc_of(prt_yload *L, const prt_ynode *at, prt_loc *loc) {
    if (at->file != L->loc_src) {
        L->loc_interned = prt_graph_intern(L->g, at->file);
        if (!L->loc_interned) return nomem(L);
        L->loc_src = at->file;
    }
    *loc = (prt_loc){L->loc_interned, at->line, at->col};
    return PRT_OK;
}

/* The names nearest to `name` among the ops (prt_op_suggest) and modules, or only the
 * modules: the nearest one, and up to two more nearly as close ("conv, concat"). */
static void nearest_list(prt_yload *L, const char *name, bool ops, char *buf, size_t cap) {
    enum { MAX = 3 };
    const char *best[MAX], *op_names[16];
    int dist[MAX], nb = 0;
    int n_ops = ops ? prt_op_suggest(L->ctx->ops, name, op_names, 16) : 0;
    for (int k = 0; k < n_ops + L->n_mods; k++) {
        const char *s = k < n_ops ? op_names[k] : L->mods[k - n_ops].name;
        int d = prt_edit_distance(name, s);
        int pos = nb; /* stable: ties keep ops first, in registry order */
        while (pos > 0 && dist[pos - 1] > d) pos--;
        if (pos >= MAX) continue;
        if (nb < MAX) nb++;
        for (int j = nb - 1; j > pos; j--) {
            best[j] = best[j - 1];
            dist[j] = dist[j - 1];
        }
        best[pos] = s;
        dist[pos] = d;
    }
    size_t o = 0;
    buf[0] = '\0';
    for (int k = 0; k < nb && dist[k] <= dist[0] + 1 && o < cap; k++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%s", k ? ", " : "", best[k]);
}

static prt_status unknown_op(prt_yload *L, const prt_ynode *k) {
    char near[256], b[80];
    nearest_list(L, k->s, true, near, sizeof near);
    if (strchr(k->s, '.'))
        return prt_yerr(L->ctx, k, PRT_ERR_SCHEMA, "unknown op or module '%s' (nearest: %s); a namespaced op comes "
                        "from a plugin: load it with --plugin or PARROTS_PLUGIN_PATH", prt_yshort(k->s, b, sizeof b),
                        near);
    return prt_yerr(L->ctx, k, PRT_ERR_SCHEMA, "unknown op or module '%s' (nearest: %s)", prt_yshort(k->s, b, sizeof b),
                    near);
}

/* A layer or tensor name from a value: a string of letters, digits, '_' and '-'. */
static prt_status name_of(prt_yload *L, const prt_yenv *env, const prt_ynode *n, const char *what, const char **out) {
    prt_yval v;
    char b[160];
    PRT_CHECK(prt_yval_eval(L, env, n, &v));
    if (v.kind != PRT_YV_STR)
        return prt_yerr(L->ctx, n, PRT_ERR_SCHEMA, "%s expects a name, found %s", what,
                        prt_yval_describe(&v, b, sizeof b));
    if (strlen(v.s) > PRT_YAML_MAX_NAME)
        return prt_yerr(L->ctx, n, PRT_ERR_LIMIT, "%s: the name '%s' is longer than %d characters", what,
                        prt_yshort(v.s, b, sizeof b), PRT_YAML_MAX_NAME);
    if (!prt_yname_ok(v.s))
        return prt_yerr(L->ctx, n, PRT_ERR_SCHEMA, "%s: '%s' is not a valid name (use letters, digits, '_' and '-')",
                        what, prt_yshort(v.s, b, sizeof b));
    *out = v.s;
    return PRT_OK;
}

/* ---- one layer ------------------------------------------------------------ */

typedef struct ylayer {
    const prt_ynode *node;            /* the layer's mapping */
    const prt_ynode *key, *val;       /* the op, module or `repeat` key and its value */
    const prt_ynode *name, *input, *share, *module, *args;
    const prt_ynode *other;           /* a key that does not belong, reported once the path is known */
    const char *path;
    int in[PRT_VARIADIC];
    int n_in;
} ylayer;

static prt_status build_list(prt_yload *L, yscope *sc, const prt_ynode *layers, const prt_yenv *env,
                             const yshare *sh);

static prt_status find_share_target(prt_yload *L, const ylayer *ly, const yscope *sc, const prt_yenv *env,
                                    const prt_ynode *with, const yentry **out) {
    const char *tname;
    char b[160];
    PRT_CHECK(name_of(L, env, with, "share", &tname));
    const yentry *t = scope_find(sc, tname);
    if (t && !t->at)
        return prt_yerr(L->ctx, with, PRT_ERR_SCHEMA, "layer '%s': share: '%s' is an input, not a layer", ly->path,
                        tname);
    if (!t)
        return prt_yerr(L->ctx, with, PRT_ERR_SCHEMA, "layer '%s': share: no earlier layer '%s' in this list%s",
                        ly->path, tname, scope_suggest(sc, tname, b, sizeof b));
    *out = t;
    return PRT_OK;
}

/* The param_path of an op node at `path`: its own, or its counterpart's under the
 * innermost enclosing share that covers this op. */
static prt_status shared_param_path(prt_yload *L, const ylayer *ly, int op, const yshare *sh, const char **out) {
    *out = ly->path;
    for (; sh; sh = sh->outer) {
        bool covered = sh->ops == NULL;
        for (int k = 0; k < sh->n_ops && !covered; k++) covered = sh->ops[k] == op;
        if (!covered) continue;
        const char *rel = ly->path + strlen(sh->prefix); /* "/b/conv_0" */
        const char *tp;
        PRT_CHECK(join(L, ly->key, sh->target, rel + 1, &tp));
        int v = prt_graph_find_value(L->g, tp);
        int node = v >= 0 ? L->g->values[v].producer : -1;
        if (node < 0)
            return prt_yerr(L->ctx, ly->key, PRT_ERR_SCHEMA,
                            "layer '%s': shares with '%s', which has no layer '%s' to share parameters with",
                            ly->path, sh->target, tp);
        if (L->g->nodes[node].op != op)
            return prt_yerr(L->ctx, ly->key, PRT_ERR_SCHEMA,
                            "layer '%s' (%s) cannot share parameters with '%s' (%s): the ops differ", ly->path,
                            prt_op_get(L->ctx->ops, op)->name, tp, prt_op_get(L->ctx->ops, L->g->nodes[node].op)->name);
        *out = L->g->nodes[node].param_path;
        return PRT_OK;
    }
    return PRT_OK;
}

static prt_status build_op(prt_yload *L, ylayer *ly, yscope *sc, const prt_yenv *env, const yshare *sh,
                           int *value, int *node_out) {
    int op;
    const prt_op_schema *s = prt_op_find(L->ctx->ops, ly->key->s, &op);
    prt_attr *attrs = prt_yarena_alloc(&L->tmp, (size_t)(s->n_attrs ? s->n_attrs : 1) * sizeof *attrs);
    if (!attrs) return nomem(L);
    PRT_CHECK(prt_yattrs_build(L, env, ly->path, s, ly->key, ly->val, attrs));
    if (ly->n_in < s->min_in || ly->n_in > s->max_in) {
        char want[64];
        if (s->min_in == s->max_in)
            snprintf(want, sizeof want, "%d input%s", s->min_in, s->min_in == 1 ? "" : "s");
        else if (s->max_in >= PRT_VARIADIC)
            snprintf(want, sizeof want, "at least %d inputs", s->min_in);
        else
            snprintf(want, sizeof want, "%d to %d inputs", s->min_in, s->max_in);
        return prt_yerr(L->ctx, ly->input ? ly->input : ly->key, PRT_ERR_SCHEMA, "layer '%s': %s takes %s, found %d",
                        ly->path, s->name, want, ly->n_in);
    }
    const char *param_path = ly->path;
    if (ly->share) {
        if (s->n_params == 0)
            return prt_yerr(L->ctx, ly->share, PRT_ERR_SCHEMA, "layer '%s': %s has no parameters to share", ly->path,
                            s->name);
        if (ly->share->kind == PRT_YN_MAP)
            return prt_yerr(L->ctx, ly->share, PRT_ERR_SCHEMA,
                            "layer '%s': an op layer shares with one earlier layer ('share: name'); "
                            "'share: {with: ...}' is for module layers",
                            ly->path);
        const yentry *t = NULL;
        PRT_CHECK(find_share_target(L, ly, sc, env, ly->share, &t));
        if (t->node < 0)
            return prt_yerr(L->ctx, ly->share, PRT_ERR_SCHEMA,
                            "layer '%s': share: '%s' is not an op layer (an op layer shares with an earlier op layer)",
                            ly->path, t->name);
        const prt_node *tn = &L->g->nodes[t->node];
        if (tn->op != op)
            return prt_yerr(L->ctx, ly->share, PRT_ERR_SCHEMA,
                            "layer '%s' (%s) cannot share parameters with '%s' (%s): the ops differ", ly->path, s->name,
                            t->name, prt_op_get(L->ctx->ops, tn->op)->name);
        param_path = tn->param_path;
    } else if (s->n_params > 0) {
        PRT_CHECK(shared_param_path(L, ly, op, sh, &param_path));
    }
    if (L->g->n_nodes >= PRT_YAML_MAX_NODES)
        return prt_yerr(L->ctx, ly->key, PRT_ERR_LIMIT, "the network has more than %d nodes", PRT_YAML_MAX_NODES);
    prt_loc loc;
    PRT_CHECK(loc_of(L, ly->key, &loc));
    int node;
    prt_status st = prt_graph_add_node(L->g, op, ly->path, param_path, ly->in, ly->n_in, attrs, loc, &node);
    if (st != PRT_OK) return prt_error_prefix(L->ctx, st, "%s:%d:%d", loc.file, loc.line, loc.col);
    *value = L->g->nodes[node].out[0];
    *node_out = node;
    return PRT_OK;
}

/* ---- modules -------------------------------------------------------------- */

/* Binds a module's arguments for one instance: given values are evaluated in the
 * caller's env, defaults in the module's own earlier arguments. */
static prt_status bind_args(prt_yload *L, const prt_ymodule *m, const prt_yenv *caller, const prt_ynode *given,
                            const ylayer *ly, prt_yenv *frame) {
    char b[160], kb[80];
    int n = m->n_args;
    prt_yval *vals = prt_yarena_alloc(&L->tmp, (size_t)(n ? n : 1) * sizeof *vals);
    bool *set = prt_yarena_alloc(&L->tmp, (size_t)(n ? n : 1));
    if (!vals || !set) return nomem(L);
    PRT_CHECK(prt_ywork(L, ly->key, (uint64_t)n + 1));
    if (given && given->kind != PRT_YN_NULL) {
        if (given->kind != PRT_YN_MAP)
            return prt_yerr(L->ctx, given, PRT_ERR_SCHEMA,
                            "layer '%s': expected the arguments of module '%s' (a mapping, or nothing), found %s",
                            ly->path, m->name, prt_ydescribe(given, b, sizeof b));
        PRT_CHECK(prt_ywork(L, given, ((uint64_t)n + 1) * ((uint64_t)given->n + 1)));
        for (int k = 0; k < given->n; k++) {
            const prt_ynode *kn = prt_ymap_key(given, k);
            int j = 0;
            while (j < n && strcmp(m->arg_names[j], kn->s)) j++;
            if (j == n) {
                const char *near = prt_ynearest(kn->s, m->arg_names, n);
                char tail[512];
                if (near) {
                    snprintf(tail, sizeof tail, "did you mean '%s'?", near);
                } else if (n == 0) {
                    snprintf(tail, sizeof tail, "it takes no arguments");
                } else {
                    size_t o = (size_t)snprintf(tail, sizeof tail, "its arguments:");
                    for (int a = 0; a < n && o < sizeof tail; a++)
                        o += (size_t)snprintf(tail + o, sizeof tail - o, "%s %s", a ? "," : "", m->arg_names[a]);
                }
                return prt_yerr(L->ctx, kn, PRT_ERR_SCHEMA, "layer '%s': module '%s' has no argument '%s' (%s)",
                                ly->path, m->name, prt_yshort(kn->s, kb, sizeof kb), tail);
            }
            PRT_CHECK(prt_yval_eval(L, caller, prt_ymap_val(given, k), &vals[j]));
            set[j] = true;
        }
    }
    for (int j = 0; j < n; j++) {
        if (set[j]) continue;
        if (m->arg_defaults[j]->kind == PRT_YN_NULL)
            return prt_yerr(L->ctx, ly->key, PRT_ERR_SCHEMA, "layer '%s': module '%s' requires argument '%s'", ly->path,
                            m->name, m->arg_names[j]);
        prt_yenv earlier = {NULL, j, m->arg_names, vals};
        PRT_CHECK(prt_yval_eval(L, &earlier, m->arg_defaults[j], &vals[j]));
    }
    *frame = (prt_yenv){NULL, n, m->arg_names, vals};
    return PRT_OK;
}

static prt_status recursion_error(prt_yload *L, const ylayer *ly, const prt_ymodule *m) {
    char chain[1024];
    size_t o = 0;
    int first = 0;
    while (first < L->depth && L->stack[first] != m) first++;
    for (int k = first; k < L->depth && o < sizeof chain; k++)
        o += (size_t)snprintf(chain + o, sizeof chain - o, "%s -> ", L->stack[k]->name);
    if (o < sizeof chain) snprintf(chain + o, sizeof chain - o, "%s", m->name);
    return prt_yerr(L->ctx, ly->key, PRT_ERR_SCHEMA, "layer '%s': module '%s' uses itself (%s)", ly->path, m->name,
                    chain);
}

/* Expands module m at `path` reading `in`; *value is the module's output. */
static prt_status build_instance(prt_yload *L, prt_ymodule *m, const ylayer *ly, const char *path, const int *in,
                                 int n_in, const prt_yenv *args, const yshare *sh, int *value) {
    if (m->active) return recursion_error(L, ly, m);
    if (L->depth >= PRT_YAML_MAX_MODULE_DEPTH)
        return prt_yerr(L->ctx, ly->key, PRT_ERR_LIMIT, "layer '%s': modules are nested more than %d deep", path,
                        PRT_YAML_MAX_MODULE_DEPTH);
    if (n_in != m->n_inputs) {
        char names[512];
        size_t o = 0;
        for (int k = 0; k < m->n_inputs && o < sizeof names; k++)
            o += (size_t)snprintf(names + o, sizeof names - o, "%s%s", k ? ", " : "", m->inputs[k]);
        return prt_yerr(L->ctx, ly->input ? ly->input : ly->key, PRT_ERR_SCHEMA,
                        "layer '%s': module '%s' takes %d input%s (%s), found %d", path, m->name, m->n_inputs,
                        m->n_inputs == 1 ? "" : "s", names, n_in);
    }
    yscope sc = {.prefix = path, .last = in[0]};
    prt_status st = PRT_OK;
    for (int k = 0; k < m->n_inputs && st == PRT_OK; k++) {
        yentry e = {m->inputs[k], in[k], -1, NULL, NULL};
        st = scope_add(L, &sc, &e);
    }
    if (st != PRT_OK) goto done;
    L->stack[L->depth++] = m;
    m->active = true;
    st = build_list(L, &sc, m->layers, args, sh);
    m->active = false;
    L->depth--;
    if (st != PRT_OK) goto done;
    *value = sc.last;
    if (m->output) {
        const char *oname;
        char b[160];
        PRT_CHECK_GOTO(name_of(L, args, m->output, "output", &oname), st, done);
        const yentry *e = scope_find(&sc, oname);
        if (!e) {
            st = prt_yerr(L->ctx, m->output, PRT_ERR_SCHEMA, "module '%s': output '%s' is not a tensor of the module%s",
                          m->name, oname, scope_suggest(&sc, oname, b, sizeof b));
            goto done;
        }
        *value = e->value;
    }
done:
    scope_free(L, &sc);
    return st;
}

/* Parses a module or repeat layer's `share` into *out (linked to the enclosing sh). */
static prt_status parse_share(prt_yload *L, const ylayer *ly, const yscope *sc, const prt_yenv *env, const yshare *sh,
                              yshare *out) {
    const prt_ynode *with = ly->share, *ops = NULL;
    char b[160];
    if (ly->share->kind == PRT_YN_MAP) {
        with = NULL;
        for (int k = 0; k < ly->share->n; k++) {
            const prt_ynode *kn = prt_ymap_key(ly->share, k);
            if (!strcmp(kn->s, "with")) {
                with = prt_ymap_val(ly->share, k);
            } else if (!strcmp(kn->s, "ops")) {
                ops = prt_ymap_val(ly->share, k);
            } else {
                static const char *const keys[] = {"with", "ops"};
                const char *near = prt_ynearest(kn->s, keys, 2);
                char tail[64];
                snprintf(tail, sizeof tail, near ? "did you mean '%s'?" : "share takes 'with' and 'ops'", near);
                return prt_yerr(L->ctx, kn, PRT_ERR_SCHEMA, "layer '%s': unknown key '%s' in share (%s)", ly->path,
                                prt_yshort(kn->s, b, sizeof b), tail);
            }
        }
        if (!with)
            return prt_yerr(L->ctx, ly->share, PRT_ERR_SCHEMA,
                            "layer '%s': share needs 'with' (the earlier module layer to share with)", ly->path);
    }
    const yentry *t = NULL;
    PRT_CHECK(find_share_target(L, ly, sc, env, with, &t));
    if (!t->path)
        return prt_yerr(L->ctx, with, PRT_ERR_SCHEMA,
                        "layer '%s': share: '%s' is not a module or repeat layer (a module layer shares with an "
                        "earlier module or repeat layer)",
                        ly->path, t->name);
    *out = (yshare){ly->path, t->path, NULL, 0, sh};
    if (!ops) return PRT_OK;
    prt_yval v;
    PRT_CHECK(prt_yval_eval(L, env, ops, &v));
    int n = v.kind == PRT_YV_LIST ? v.n : 1;
    const prt_yval *items = v.kind == PRT_YV_LIST ? v.items : &v;
    int *ids = prt_yarena_alloc(&L->tmp, (size_t)(n ? n : 1) * sizeof *ids);
    if (!ids) return nomem(L);
    for (int k = 0; k < n; k++) {
        if (items[k].kind != PRT_YV_STR)
            return prt_yerr(L->ctx, items[k].at, PRT_ERR_SCHEMA,
                            "layer '%s': share 'ops' expects op names, found %s", ly->path,
                            prt_yval_describe(&items[k], b, sizeof b));
        if (!prt_op_find(L->ctx->ops, items[k].s, &ids[k])) {
            char near[256];
            nearest_list(L, items[k].s, true, near, sizeof near);
            return prt_yerr(L->ctx, items[k].at, PRT_ERR_SCHEMA, "layer '%s': share: unknown op '%s' (nearest: %s)",
                            ly->path, prt_yshort(items[k].s, b, sizeof b), near);
        }
    }
    out->ops = ids;
    out->n_ops = n;
    return PRT_OK;
}

static prt_status build_module_layer(prt_yload *L, ylayer *ly, yscope *sc, const prt_yenv *env, const yshare *sh,
                                     prt_ymodule *m, int *value) {
    yshare own;
    if (ly->share) {
        PRT_CHECK(parse_share(L, ly, sc, env, sh, &own));
        sh = &own;
    }
    prt_yenv frame;
    PRT_CHECK(bind_args(L, m, env, ly->val, ly, &frame));
    return build_instance(L, m, ly, ly->path, ly->in, ly->n_in, &frame, sh, value);
}

static prt_status build_repeat(prt_yload *L, ylayer *ly, yscope *sc, const prt_yenv *env, const yshare *sh,
                               int *value) {
    char b[160];
    prt_yval cv;
    int64_t count;
    PRT_CHECK(prt_yval_eval(L, env, ly->val, &cv));
    if (!prt_yval_integral(&cv, &count))
        return prt_yerr(L->ctx, ly->val, PRT_ERR_SCHEMA, "layer '%s': repeat expects a count from 1 to %d, found %s",
                        ly->path, PRT_YAML_MAX_REPEAT, prt_yval_describe(&cv, b, sizeof b));
    if (count < 1)
        return prt_yerr(L->ctx, ly->val, PRT_ERR_SCHEMA, "layer '%s': repeat count must be at least 1, found %lld",
                        ly->path, (long long)count);
    if (count > PRT_YAML_MAX_REPEAT)
        return prt_yerr(L->ctx, ly->val, PRT_ERR_LIMIT, "layer '%s': repeat count %lld exceeds the limit of %d",
                        ly->path, (long long)count, PRT_YAML_MAX_REPEAT);
    if (!ly->module)
        return prt_yerr(L->ctx, ly->key, PRT_ERR_SCHEMA, "layer '%s': repeat needs 'module' (the module to repeat)",
                        ly->path);
    prt_yval mv;
    PRT_CHECK(prt_yval_eval(L, env, ly->module, &mv));
    int nm = mv.kind == PRT_YV_LIST ? mv.n : 1;
    const prt_yval *items = mv.kind == PRT_YV_LIST ? mv.items : &mv;
    if (nm == 0)
        return prt_yerr(L->ctx, ly->module, PRT_ERR_SCHEMA, "layer '%s': 'module' expects a module name or a "
                        "list of them, found an empty list", ly->path);
    prt_ymodule **mods = prt_yarena_alloc(&L->tmp, (size_t)nm * sizeof *mods);
    if (!mods) return nomem(L);
    for (int k = 0; k < nm; k++) {
        if (items[k].kind != PRT_YV_STR)
            return prt_yerr(L->ctx, items[k].at, PRT_ERR_SCHEMA,
                            "layer '%s': 'module' expects a module name or a list of them, found %s", ly->path,
                            prt_yval_describe(&items[k], b, sizeof b));
        mods[k] = prt_ymodule_find(L, items[k].s);
        if (mods[k]) continue;
        if (prt_op_find(L->ctx->ops, items[k].s, NULL))
            return prt_yerr(L->ctx, items[k].at, PRT_ERR_SCHEMA,
                            "layer '%s': repeat takes a module, and '%s' is an op (define a module around it)",
                            ly->path, items[k].s);
        char near[256];
        nearest_list(L, items[k].s, false, near, sizeof near);
        return prt_yerr(L->ctx, items[k].at, PRT_ERR_SCHEMA, "layer '%s': unknown module '%s' (nearest: %s)", ly->path,
                        prt_yshort(items[k].s, b, sizeof b), near[0] ? near : "no modules are defined");
    }
    yshare own;
    if (ly->share) {
        PRT_CHECK(parse_share(L, ly, sc, env, sh, &own));
        sh = &own;
    }
    const char *const names[2] = {"i", "n"};
    prt_yval iv[2] = {{.kind = PRT_YV_INT, .at = ly->val}, {.kind = PRT_YV_INT, .i = count, .at = ly->val}};
    int in = 0; /* instance i > 0 reads instance i-1 */
    for (int64_t i = 0; i < count; i++) {
        prt_ymodule *m = mods[i % nm];
        if (i > 0 && m->n_inputs != 1)
            return prt_yerr(L->ctx, ly->module, PRT_ERR_SCHEMA,
                            "layer '%s': module '%s' takes %d inputs, but a repeated instance reads one "
                            "(the previous instance's output)",
                            ly->path, m->name, m->n_inputs);
        prt_yarena_mark mark = prt_yarena_save(&L->tmp);
        char idx[24];
        snprintf(idx, sizeof idx, "%lld", (long long)i);
        const char *path;
        iv[0].i = i;
        prt_yenv rep = {env, 2, names, iv};
        prt_yenv frame;
        prt_status st = join(L, ly->key, ly->path, idx, &path);
        if (st == PRT_OK) st = bind_args(L, m, &rep, ly->args, ly, &frame);
        if (st == PRT_OK)
            st = i == 0 ? build_instance(L, m, ly, path, ly->in, ly->n_in, &frame, sh, value)
                        : build_instance(L, m, ly, path, &in, 1, &frame, sh, value);
        prt_yarena_restore(&L->tmp, mark);
        PRT_CHECK(st);
        in = *value;
    }
    return PRT_OK;
}

/* ---- layers and lists ----------------------------------------------------- */

static bool is_op_or_module(prt_yload *L, const char *s) {
    return prt_op_find(L->ctx->ops, s, NULL) || prt_ymodule_find(L, s);
}

/* Sorts the keys of a layer mapping into ly; reports keys that do not belong. */
static prt_status classify(prt_yload *L, ylayer *ly, int index, const prt_yenv *env, const char **name_out) {
    const prt_ynode *m = ly->node, *other = NULL, *second = NULL;
    bool repeat = prt_ymap_getkey(m, "repeat") != NULL;
    for (int k = 0; k < m->n; k++) {
        const prt_ynode *kn = prt_ymap_key(m, k), *vn = prt_ymap_val(m, k);
        const char *s = kn->s;
        if (!strcmp(s, "name")) ly->name = vn;
        else if (!strcmp(s, "input")) ly->input = vn;
        else if (!strcmp(s, "share")) ly->share = vn;
        else if (repeat && !strcmp(s, "repeat")) ly->key = kn, ly->val = vn;
        else if (repeat && !strcmp(s, "module")) ly->module = vn;
        else if (repeat && !strcmp(s, "args")) ly->args = vn;
        else if (!repeat && is_op_or_module(L, s)) {
            if (ly->key) {
                second = kn;
                break;
            }
            ly->key = kn;
            ly->val = vn;
        } else if (!other) {
            other = kn;
        }
    }
    if (second)
        return prt_yerr(L->ctx, second, PRT_ERR_SCHEMA,
                        "a layer has one op or module key, found two: '%s' and '%s'", ly->key->s, second->s);
    if (!ly->key) {
        if (!other)
            return prt_yerr(L->ctx, m, PRT_ERR_SCHEMA, "expected an op or module key in this layer, found only %s",
                            ly->name ? (ly->input || ly->share ? "'name' and other reserved keys" : "'name'")
                                     : "reserved keys");
        if (!strcmp(other->s, "module") || !strcmp(other->s, "args"))
            return prt_yerr(L->ctx, other, PRT_ERR_SCHEMA, "'%s' belongs to a repeat layer, which also needs 'repeat: N'",
                            other->s);
        return unknown_op(L, other);
    }
    /* the name first, so the remaining messages can say which layer */
    if (ly->name) {
        PRT_CHECK(name_of(L, env, ly->name, "'name'", name_out));
    } else {
        char *d = prt_yarena_alloc(&L->tmp, strlen(ly->key->s) + 16);
        if (!d) return nomem(L);
        sprintf(d, "%s_%d", ly->key->s, index);
        *name_out = d;
    }
    ly->other = other;
    return PRT_OK;
}

/* A key of a layer that is neither its op nor a reserved key. */
static prt_status unknown_layer_key(prt_yload *L, const ylayer *ly) {
    static const char *const layer_keys[] = {"name", "input", "share"};
    static const char *const repeat_keys[] = {"repeat", "module", "args", "name", "input", "share"};
    bool repeat = prt_ymap_getkey(ly->node, "repeat") != NULL;
    const char *near = prt_ynearest(ly->other->s, repeat ? repeat_keys : layer_keys, repeat ? 6 : 3);
    char tail[160], b[80], b2[80];
    if (near)
        snprintf(tail, sizeof tail, "did you mean '%s'?", near);
    else if (repeat)
        snprintf(tail, sizeof tail, "a repeat layer has repeat, module, args, name, input and share");
    else
        snprintf(tail, sizeof tail, "'%s' is the layer's op; other keys are name, input and share",
                 prt_yshort(ly->key->s, b2, sizeof b2));
    return prt_yerr(L->ctx, ly->other, PRT_ERR_SCHEMA, "layer '%s': unknown key '%s' (%s)", ly->path,
                    prt_yshort(ly->other->s, b, sizeof b), tail);
}

static prt_status resolve_inputs(prt_yload *L, ylayer *ly, const yscope *sc, const prt_yenv *env) {
    char b[160];
    if (!ly->input) {
        ly->in[0] = sc->last;
        ly->n_in = 1;
        return PRT_OK;
    }
    prt_yval v;
    PRT_CHECK(prt_yval_eval(L, env, ly->input, &v));
    int n = v.kind == PRT_YV_LIST ? v.n : 1;
    const prt_yval *items = v.kind == PRT_YV_LIST ? v.items : &v;
    if (v.kind != PRT_YV_LIST && v.kind != PRT_YV_STR)
        return prt_yerr(L->ctx, ly->input, PRT_ERR_SCHEMA,
                        "layer '%s': 'input' expects a tensor name or a list of names, found %s", ly->path,
                        prt_yval_describe(&v, b, sizeof b));
    if (n < 1 || n > PRT_VARIADIC)
        return prt_yerr(L->ctx, ly->input, PRT_ERR_SCHEMA, "layer '%s': 'input' lists %d tensors, expected 1 to %d",
                        ly->path, n, PRT_VARIADIC);
    for (int k = 0; k < n; k++) {
        if (items[k].kind != PRT_YV_STR)
            return prt_yerr(L->ctx, items[k].at, PRT_ERR_SCHEMA, "layer '%s': 'input' expects tensor names, found %s",
                            ly->path, prt_yval_describe(&items[k], b, sizeof b));
        const yentry *e = scope_find(sc, items[k].s);
        if (!e) {
            char nb[80], sug[160];
            scope_suggest(sc, items[k].s, sug, sizeof sug);
            return prt_yerr(L->ctx, items[k].at, PRT_ERR_SCHEMA, "layer '%s': unknown tensor '%s'%s", ly->path,
                            prt_yshort(items[k].s, nb, sizeof nb),
                            sug[0] ? sug : " (a layer reads the inputs and earlier layers of its own list)");
        }
        ly->in[k] = e->value;
    }
    ly->n_in = n;
    return PRT_OK;
}

static prt_status build_layer(prt_yload *L, yscope *sc, int index, const prt_ynode *node, const prt_yenv *env,
                              const yshare *sh) {
    char b[160];
    ylayer ly;
    memset(&ly, 0, sizeof ly);
    ly.node = node;
    if (node->kind == PRT_YN_NULL || (node->kind == PRT_YN_MAP && node->n == 0))
        return prt_yerr(L->ctx, node, PRT_ERR_SCHEMA,
                        "empty layer: expected a mapping with one op or module key (such as 'relu:')");
    if (node->kind != PRT_YN_MAP)
        return prt_yerr(L->ctx, node, PRT_ERR_SCHEMA,
                        "expected a layer (a mapping with one op or module key, such as 'relu:'), found %s",
                        prt_ydescribe(node, b, sizeof b));
    PRT_CHECK(prt_ywork(L, node, (uint64_t)node->n + 1));
    const char *name = NULL;
    PRT_CHECK(classify(L, &ly, index, env, &name));
    const yentry *dup = scope_find(sc, name);
    if (dup) {
        if (dup->at)
            return prt_yerr(L->ctx, ly.name ? ly.name : ly.key, PRT_ERR_SCHEMA,
                            "duplicate layer name '%s' (first at %s:%d:%d)", name, dup->at->file, dup->at->line,
                            dup->at->col);
        return prt_yerr(L->ctx, ly.name ? ly.name : ly.key, PRT_ERR_SCHEMA,
                        "layer name '%s' is already the name of an input", name);
    }
    PRT_CHECK(join(L, ly.key, sc->prefix, name, &ly.path));
    if (ly.other) return unknown_layer_key(L, &ly);
    PRT_CHECK(resolve_inputs(L, &ly, sc, env));
    yentry e = {name, -1, -1, NULL, ly.key};
    prt_ymodule *m;
    if (!strcmp(ly.key->s, "repeat") && prt_ymap_getkey(node, "repeat") == ly.key) {
        PRT_CHECK(build_repeat(L, &ly, sc, env, sh, &e.value));
        e.path = ly.path;
    } else if ((m = prt_ymodule_find(L, ly.key->s)) != NULL) {
        PRT_CHECK(build_module_layer(L, &ly, sc, env, sh, m, &e.value));
        e.path = ly.path;
    } else {
        PRT_CHECK(build_op(L, &ly, sc, env, sh, &e.value, &e.node));
    }
    PRT_CHECK(scope_add(L, sc, &e));
    sc->last = e.value;
    return PRT_OK;
}

static prt_status build_list(prt_yload *L, yscope *sc, const prt_ynode *layers, const prt_yenv *env,
                             const yshare *sh) {
    for (int k = 0; k < layers->n; k++) PRT_CHECK(build_layer(L, sc, k, layers->kids[k], env, sh));
    return PRT_OK;
}

prt_status prt_ybuild_top(prt_yload *L, const prt_ynode *layers, const prt_ynode *input_map, const int *input_ids,
                          const prt_ynode *output) {
    yscope sc = {.prefix = "", .last = input_ids[0]};
    prt_status st = PRT_OK;
    int *outs = NULL, n_out = 0;
    char b[160];
    for (int k = 0; k < input_map->n && st == PRT_OK; k++) {
        yentry e = {prt_ymap_key(input_map, k)->s, input_ids[k], -1, NULL, NULL};
        st = scope_add(L, &sc, &e);
    }
    if (st == PRT_OK) st = build_list(L, &sc, layers, NULL, NULL);
    if (st != PRT_OK) goto done;
    if (!output) {
        st = prt_graph_set_outputs(L->g, &sc.last, 1);
        goto done;
    }
    prt_yval v;
    PRT_CHECK_GOTO(prt_yval_eval(L, NULL, output, &v), st, done);
    int n = v.kind == PRT_YV_LIST ? v.n : 1;
    const prt_yval *items = v.kind == PRT_YV_LIST ? v.items : &v;
    if ((v.kind != PRT_YV_LIST && v.kind != PRT_YV_STR) || n == 0) {
        st = prt_yerr(L->ctx, output, PRT_ERR_SCHEMA, "'output' expects a list of tensor names, found %s",
                      n == 0 ? "an empty list" : prt_yval_describe(&v, b, sizeof b));
        goto done;
    }
    outs = prt_calloc(L->ctx, (size_t)n, sizeof *outs);
    if (!outs) {
        st = nomem(L);
        goto done;
    }
    for (int k = 0; k < n; k++) {
        char nb[80], sug[160];
        if (items[k].kind != PRT_YV_STR) {
            st = prt_yerr(L->ctx, items[k].at, PRT_ERR_SCHEMA, "'output' expects tensor names, found %s",
                          prt_yval_describe(&items[k], b, sizeof b));
            goto done;
        }
        const yentry *e = scope_find(&sc, items[k].s);
        if (!e) {
            scope_suggest(&sc, items[k].s, sug, sizeof sug);
            st = prt_yerr(L->ctx, items[k].at, PRT_ERR_SCHEMA, "output: unknown tensor '%s'%s",
                          prt_yshort(items[k].s, nb, sizeof nb),
                          sug[0] ? sug : " (outputs name inputs or top-level layers)");
            goto done;
        }
        for (int j = 0; j < n_out; j++)
            if (outs[j] == e->value) {
                st = prt_yerr(L->ctx, items[k].at, PRT_ERR_SCHEMA, "output: '%s' is listed twice", e->name);
                goto done;
            }
        outs[n_out++] = e->value;
    }
    st = prt_graph_set_outputs(L->g, outs, n_out);
done:
    prt_free(L->ctx, outs, 0);
    scope_free(L, &sc);
    return st;
}

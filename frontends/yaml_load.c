/* The YAML frontend's entry points: reading files (size-limited, regular files only),
 * the top-level keys and format version, includes (relative to the including file,
 * depth-limited, cycles reported, each file loaded once), the module table, the
 * graph's inputs, and the final parameter binding and shape check. */
#define _POSIX_C_SOURCE 200809L
#include "frontends/yaml_impl.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

typedef struct yfile {
    dev_t dev;
    ino_t ino;
    const char *display;
} yfile;

/* Files loaded so far (each once) and the chain of includes being loaded. */
typedef struct yinc {
    yfile *files;
    int n, cap;
    int chain[PRT_YAML_MAX_INCLUDE_DEPTH + 2];
    int depth;
} yinc;

static const char *const top_keys[] = {"parrots", "name", "include", "requires", "input", "modules", "layers", "output",
                                       "solver"};
#define N_TOP_KEYS ((int)(sizeof top_keys / sizeof top_keys[0]))
static const char *const module_keys[] = {"args", "inputs", "layers", "output"};
static const char *const reserved_names[] = {"name", "input", "share", "repeat", "module", "args"};

prt_ymodule *prt_ymodule_find(const prt_yload *L, const char *name) {
    int k;
    return prt_strtab_get(L->mod_names, name, &k) ? &L->mods[k] : NULL;
}

static prt_status nomem(prt_yload *L) { return prt_error(L->ctx, PRT_ERR_NOMEM, "out of memory"); }

/* ---- files ---------------------------------------------------------------- */

/* Reads a whole regular file of at most 16 MiB. Errors are located at `at` (the
 * include entry), or at 1:1 of the file itself for the top-level file. */
static prt_status read_file(prt_yload *L, const char *path, const prt_ynode *at, char **text, size_t *len,
                            yfile *id) {
    char where[600], pb[80];
    *text = NULL;
    if (at)
        snprintf(where, sizeof where, "%s:%d:%d: include '%s'", at->file, at->line, at->col,
                 prt_yshort(at->s, pb, sizeof pb));
    else
        snprintf(where, sizeof where, "%s:1:1", path);
    FILE *f = fopen(path, "rb");
    /* a missing or unreadable network file is bad input (exit 2), not a runtime failure */
    if (!f)
        return prt_error(L->ctx, errno == ENOENT ? PRT_ERR_NOT_FOUND : PRT_ERR_INVALID, "%s: cannot open '%s': %s",
                         where, path, strerror(errno));
    prt_status st = PRT_OK;
    struct stat sb;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    if (fstat(fileno(f), &sb) != 0) {
        st = prt_error(L->ctx, PRT_ERR_IO, "%s: cannot read '%s': %s", where, path, strerror(errno));
        goto done;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = prt_error(L->ctx, PRT_ERR_INVALID, "%s: '%s' is not a regular file", where, path);
        goto done;
    }
    id->dev = sb.st_dev;
    id->ino = sb.st_ino;
    /* read to the end rather than trusting st_size: the file may change under us */
    for (;;) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 4096;
            if (ncap > PRT_YAML_MAX_FILE_BYTES + 1) ncap = PRT_YAML_MAX_FILE_BYTES + 1;
            if (ncap == cap) {
                st = prt_error(L->ctx, PRT_ERR_LIMIT, "%s: '%s' is larger than the 16 MiB limit", where, path);
                goto done;
            }
            char *nb = prt_realloc(L->ctx, buf, cap, ncap);
            if (!nb) {
                st = nomem(L);
                goto done;
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        st = prt_error(L->ctx, PRT_ERR_IO, "%s: cannot read '%s': %s", where, path, strerror(errno));
        goto done;
    }
done:
    fclose(f);
    if (st != PRT_OK) {
        prt_free(L->ctx, buf, cap);
        return st;
    }
    *text = buf;
    *len = n;
    return PRT_OK;
}

/* ---- checks shared by the top-level file and included files --------------- */

static prt_status check_root(prt_yload *L, const char *file, const prt_ynode *root, bool included) {
    char b[160];
    const char *want = included ? "'parrots' and 'modules'" : "'parrots', 'input' and 'layers'";
    if (!root || root->kind == PRT_YN_NULL) {
        int line = root ? root->line : 1, col = root ? root->col : 1;
        return prt_yerr_loc(L->ctx, file, line, col, PRT_ERR_SCHEMA, "the file is empty (expected a mapping with %s)",
                            want);
    }
    if (root->kind != PRT_YN_MAP)
        return prt_yerr(L->ctx, root, PRT_ERR_SCHEMA, "expected a mapping with %s at the top level, found %s", want,
                        prt_ydescribe(root, b, sizeof b));
    const prt_ynode *v = prt_ymap_get(root, "parrots");
    if (!v) return prt_yerr(L->ctx, root, PRT_ERR_SCHEMA, "missing key 'parrots' (the format version: 'parrots: 1')");
    if (v->kind != PRT_YN_INT)
        return prt_yerr(L->ctx, v, PRT_ERR_SCHEMA, "'parrots' expects the format version 1, found %s",
                        prt_ydescribe(v, b, sizeof b));
    if (v->i != 1)
        return prt_yerr(L->ctx, v, PRT_ERR_SCHEMA, "unsupported format version %lld (this Parrots reads version 1)",
                        (long long)v->i);
    for (int k = 0; k < root->n; k++) {
        const prt_ynode *kn = prt_ymap_key(root, k);
        int j = 0;
        while (j < N_TOP_KEYS && strcmp(top_keys[j], kn->s)) j++;
        if (j < N_TOP_KEYS) {
            if (included && strcmp(kn->s, "parrots") && strcmp(kn->s, "include") && strcmp(kn->s, "modules"))
                return prt_yerr(L->ctx, kn, PRT_ERR_SCHEMA,
                                "'%s' is not allowed in an included file (it has only parrots, include and modules)",
                                kn->s);
            continue;
        }
        const char *near = prt_ynearest(kn->s, top_keys, N_TOP_KEYS);
        if (near)
            return prt_yerr(L->ctx, kn, PRT_ERR_SCHEMA, "unknown key '%s' (did you mean '%s'?)",
                            prt_yshort(kn->s, b, sizeof b), near);
        return prt_yerr(L->ctx, kn, PRT_ERR_SCHEMA,
                        "unknown key '%s' (the top-level keys are %s)", prt_yshort(kn->s, b, sizeof b),
                        included ? "parrots, include and modules"
                                 : "parrots, name, include, requires, input, modules, layers, output and solver");
    }
    return PRT_OK;
}

/* `requires:` lists the plugin ops the network needs, `- {op: NAME, version: N}`
 * (N the minimum, default 1), checked before any layer is built so that a
 * missing plugin is named as such. The file never names a plugin to load:
 * plugins come from --plugin and PARROTS_PLUGIN_PATH only. */
static prt_status check_requires(prt_yload *L, const prt_ynode *req) {
    char b[160];
    if (req->kind != PRT_YN_SEQ)
        return prt_yerr(L->ctx, req, PRT_ERR_SCHEMA, "'requires' expects a list of ops such as '- {op: myorg.swish, "
                        "version: 1}', found %s", prt_ydescribe(req, b, sizeof b));
    for (int i = 0; i < req->n; i++) {
        const prt_ynode *it = req->kids[i];
        if (it->kind != PRT_YN_MAP)
            return prt_yerr(L->ctx, it, PRT_ERR_SCHEMA, "requires: expected a mapping with 'op' and 'version', "
                            "found %s", prt_ydescribe(it, b, sizeof b));
        for (int k = 0; k < it->n; k++) {
            const prt_ynode *kn = prt_ymap_key(it, k);
            if (strcmp(kn->s, "op") && strcmp(kn->s, "version"))
                return prt_yerr(L->ctx, kn, PRT_ERR_SCHEMA, "requires: unknown key '%s' (an entry has 'op' and "
                                "'version')", prt_yshort(kn->s, b, sizeof b));
        }
        const prt_ynode *op = prt_ymap_get(it, "op"), *v = prt_ymap_get(it, "version");
        if (!op || op->kind != PRT_YN_STR || !op->s[0])
            return prt_yerr(L->ctx, op ? op : it, PRT_ERR_SCHEMA, "requires: 'op' expects the name of an op, such "
                            "as 'op: myorg.swish'");
        long long want = 1;
        if (v) {
            if (v->kind != PRT_YN_INT || v->i < 1)
                return prt_yerr(L->ctx, v, PRT_ERR_SCHEMA, "requires: 'version' expects the op's minimum version "
                                "(an integer >= 1), found %s", prt_ydescribe(v, b, sizeof b));
            want = (long long)v->i;
        }
        const prt_op_schema *s = prt_op_find(L->ctx->ops, op->s, NULL);
        if (!s)
            return prt_yerr(L->ctx, it, PRT_ERR_SCHEMA, "the network requires op '%s' (version >= %lld), which no "
                            "loaded plugin provides: load it with --plugin or PARROTS_PLUGIN_PATH",
                            prt_yshort(op->s, b, sizeof b), want);
        long long have = s->version > 0 ? s->version : 1;
        if (have < want)
            return prt_yerr(L->ctx, it, PRT_ERR_SCHEMA, "the network requires op '%s' version >= %lld, but the "
                            "loaded one is version %lld (from %s)", s->name, want, have, prt_op_source(s));
    }
    return PRT_OK;
}

static prt_status check_layers(prt_yload *L, const prt_ynode *layers, const char *owner) {
    char b[160];
    if (layers->kind != PRT_YN_SEQ || layers->n == 0)
        return prt_yerr(L->ctx, layers, PRT_ERR_SCHEMA, "%s'layers' expects a non-empty list of layers, found %s",
                        owner, layers->kind == PRT_YN_SEQ ? "an empty list" : prt_ydescribe(layers, b, sizeof b));
    return PRT_OK;
}

/* ---- modules -------------------------------------------------------------- */

static prt_status module_name_ok(prt_yload *L, const prt_ynode *kn) {
    char b[160];
    if (strlen(kn->s) > PRT_YAML_MAX_NAME || !prt_yname_ok(kn->s))
        return prt_yerr(L->ctx, kn, PRT_ERR_SCHEMA,
                        "'%s' is not a valid module name (use at most %d letters, digits, '_' and '-')",
                        prt_yshort(kn->s, b, sizeof b), PRT_YAML_MAX_NAME);
    if (prt_op_find(L->ctx->ops, kn->s, NULL))
        return prt_yerr(L->ctx, kn, PRT_ERR_SCHEMA, "module name '%s' is already the name of an op", kn->s);
    for (int k = 0; k < 6; k++)
        if (!strcmp(kn->s, reserved_names[k]))
            return prt_yerr(L->ctx, kn, PRT_ERR_SCHEMA, "'%s' is a reserved key and cannot name a module", kn->s);
    const prt_ymodule *old = prt_ymodule_find(L, kn->s);
    if (old)
        return prt_yerr(L->ctx, kn, PRT_ERR_SCHEMA, "module '%s' is defined twice (first at %s:%d:%d)", kn->s,
                        old->at->file, old->at->line, old->at->col);
    return PRT_OK;
}

static prt_status module_args(prt_yload *L, prt_ymodule *m, const prt_ynode *args) {
    char b[160];
    if (!args || args->kind == PRT_YN_NULL) return PRT_OK;
    if (args->kind != PRT_YN_MAP)
        return prt_yerr(L->ctx, args, PRT_ERR_SCHEMA,
                        "module '%s': 'args' expects a mapping of argument names to defaults, found %s", m->name,
                        prt_ydescribe(args, b, sizeof b));
    m->n_args = args->n;
    m->arg_names = prt_yarena_alloc(&L->docs, (size_t)(args->n ? args->n : 1) * sizeof *m->arg_names);
    m->arg_defaults = prt_yarena_alloc(&L->docs, (size_t)(args->n ? args->n : 1) * sizeof *m->arg_defaults);
    if (!m->arg_names || !m->arg_defaults) return nomem(L);
    for (int k = 0; k < args->n; k++) {
        const prt_ynode *kn = prt_ymap_key(args, k), *vn = prt_ymap_val(args, k);
        if (!prt_yident_ok(kn->s, strlen(kn->s)) || strlen(kn->s) > PRT_YAML_MAX_NAME)
            return prt_yerr(L->ctx, kn, PRT_ERR_SCHEMA,
                            "module '%s': argument name '%s' must be letters, digits and '_', not starting with a digit",
                            m->name, prt_yshort(kn->s, b, sizeof b));
        if (vn->kind == PRT_YN_MAP)
            return prt_yerr(L->ctx, vn, PRT_ERR_SCHEMA,
                            "module '%s': the default of '%s' must be a value or ~ (required), found a mapping",
                            m->name, kn->s);
        m->arg_names[k] = kn->s;
        m->arg_defaults[k] = vn;
    }
    return PRT_OK;
}

static prt_status module_inputs(prt_yload *L, prt_ymodule *m, const prt_ynode *in) {
    char b[160];
    static const char *const dflt[] = {"x"};
    m->n_inputs = 1;
    m->inputs = (const char **)dflt;
    if (!in) return PRT_OK;
    int n = in->kind == PRT_YN_SEQ ? in->n : 1;
    if ((in->kind != PRT_YN_SEQ && in->kind != PRT_YN_STR) || n < 1 || n > PRT_VARIADIC) {
        if (in->kind == PRT_YN_SEQ) snprintf(b, sizeof b, n ? "a list of %d" : "an empty list", n);
        else prt_ydescribe(in, b, sizeof b);
        return prt_yerr(L->ctx, in, PRT_ERR_SCHEMA, "module '%s': 'inputs' expects a list of 1 to %d names, found %s",
                        m->name, PRT_VARIADIC, b);
    }
    const char **names = prt_yarena_alloc(&L->docs, (size_t)n * sizeof *names);
    if (!names) return nomem(L);
    for (int k = 0; k < n; k++) {
        const prt_ynode *it = in->kind == PRT_YN_SEQ ? in->kids[k] : in;
        if (it->kind != PRT_YN_STR || strlen(it->s) > PRT_YAML_MAX_NAME || !prt_yname_ok(it->s))
            return prt_yerr(L->ctx, it, PRT_ERR_SCHEMA,
                            "module '%s': an input name must be letters, digits, '_' and '-', found %s", m->name,
                            prt_ydescribe(it, b, sizeof b));
        for (int j = 0; j < k; j++)
            if (!strcmp(names[j], it->s))
                return prt_yerr(L->ctx, it, PRT_ERR_SCHEMA, "module '%s': input '%s' is listed twice", m->name, it->s);
        names[k] = it->s;
    }
    m->n_inputs = n;
    m->inputs = names;
    return PRT_OK;
}

static prt_status add_module(prt_yload *L, const prt_ynode *kn, const prt_ynode *def) {
    char b[160], owner[200];
    PRT_CHECK(module_name_ok(L, kn));
    if (def->kind != PRT_YN_MAP)
        return prt_yerr(L->ctx, def, PRT_ERR_SCHEMA,
                        "module '%s': expected a mapping with 'layers' (and optionally args, inputs, output), found %s",
                        kn->s, prt_ydescribe(def, b, sizeof b));
    prt_ymodule m = {.name = kn->s, .at = kn};
    for (int k = 0; k < def->n; k++) {
        const prt_ynode *dk = prt_ymap_key(def, k);
        int j = 0;
        while (j < 4 && strcmp(module_keys[j], dk->s)) j++;
        if (j < 4) continue;
        const char *near = prt_ynearest(dk->s, module_keys, 4);
        char tail[96];
        snprintf(tail, sizeof tail, near ? "did you mean '%s'?" : "a module has args, inputs, layers and output",
                 near);
        return prt_yerr(L->ctx, dk, PRT_ERR_SCHEMA, "module '%s': unknown key '%s' (%s)", kn->s,
                        prt_yshort(dk->s, b, sizeof b), tail);
    }
    PRT_CHECK(module_args(L, &m, prt_ymap_get(def, "args")));
    PRT_CHECK(module_inputs(L, &m, prt_ymap_get(def, "inputs")));
    m.layers = prt_ymap_get(def, "layers");
    if (!m.layers)
        return prt_yerr(L->ctx, def, PRT_ERR_SCHEMA, "module '%s': missing key 'layers' (the module's body)", kn->s);
    snprintf(owner, sizeof owner, "module '%s': ", kn->s);
    PRT_CHECK(check_layers(L, m.layers, owner));
    m.output = prt_ymap_get(def, "output");
    if (m.output && m.output->kind != PRT_YN_STR)
        return prt_yerr(L->ctx, m.output, PRT_ERR_SCHEMA, "module '%s': 'output' expects a tensor name, found %s",
                        kn->s, prt_ydescribe(m.output, b, sizeof b));
    PRT_CHECK(prt_grow(L->ctx, (void **)&L->mods, &L->cap_mods, L->n_mods + 1, sizeof *L->mods));
    PRT_CHECK(prt_strtab_put(L->ctx, L->mod_names, kn->s, L->n_mods, NULL));
    L->mods[L->n_mods++] = m;
    return PRT_OK;
}

static prt_status add_modules(prt_yload *L, const prt_ynode *root) {
    char b[160];
    const prt_ynode *mods = prt_ymap_get(root, "modules");
    if (!mods || mods->kind == PRT_YN_NULL) return PRT_OK;
    if (mods->kind != PRT_YN_MAP)
        return prt_yerr(L->ctx, mods, PRT_ERR_SCHEMA,
                        "'modules' expects a mapping of module names to definitions, found %s",
                        prt_ydescribe(mods, b, sizeof b));
    for (int k = 0; k < mods->n; k++) PRT_CHECK(add_module(L, prt_ymap_key(mods, k), prt_ymap_val(mods, k)));
    return PRT_OK;
}

/* ---- includes ------------------------------------------------------------- */

/* "dir/of/including.yaml" + "blocks/a.yaml" -> "dir/of/blocks/a.yaml". */
static prt_status include_path(prt_yload *L, const prt_ynode *item, char **out) {
    const char *slash = strrchr(item->file, '/');
    size_t dir = item->s[0] == '/' || !slash ? 0 : (size_t)(slash - item->file) + 1;
    size_t n = strlen(item->s);
    char *p = prt_yarena_alloc(&L->tmp, dir + n + 1);
    if (!p) return nomem(L);
    memcpy(p, item->file, dir);
    memcpy(p + dir, item->s, n + 1);
    *out = p;
    return PRT_OK;
}

static prt_status load_includes(prt_yload *L, yinc *I, const prt_ynode *root);

static prt_status include_one(prt_yload *L, yinc *I, const prt_ynode *item) {
    char b[160];
    if (item->kind != PRT_YN_STR || !item->s[0])
        return prt_yerr(L->ctx, item, PRT_ERR_SCHEMA, "'include' expects file names, found %s",
                        prt_ydescribe(item, b, sizeof b));
    if (I->depth > PRT_YAML_MAX_INCLUDE_DEPTH)
        return prt_yerr(L->ctx, item, PRT_ERR_LIMIT, "includes are nested more than %d deep",
                        PRT_YAML_MAX_INCLUDE_DEPTH);
    char *path = NULL, *text = NULL;
    size_t len;
    yfile id;
    PRT_CHECK(include_path(L, item, &path));
    PRT_CHECK(read_file(L, path, item, &text, &len, &id));
    for (int k = 0; k < I->n; k++) {
        if (I->files[k].dev != id.dev || I->files[k].ino != id.ino) continue;
        prt_free(L->ctx, text, 0);
        int first = 0;
        while (first < I->depth && I->chain[first] != k) first++;
        if (first == I->depth) return PRT_OK; /* loaded before through another include */
        char chain[1024];
        size_t o = 0;
        for (int j = first; j < I->depth && o < sizeof chain; j++)
            o += (size_t)snprintf(chain + o, sizeof chain - o, "%s -> ", I->files[I->chain[j]].display);
        if (o < sizeof chain) snprintf(chain + o, sizeof chain - o, "%s", path);
        return prt_yerr(L->ctx, item, PRT_ERR_SCHEMA, "include cycle: %s", chain);
    }
    prt_ynode *doc = NULL;
    prt_status st = prt_ydoc_parse(L->ctx, &L->docs, path, text, len, &doc);
    prt_free(L->ctx, text, 0);
    PRT_CHECK(st);
    PRT_CHECK(check_root(L, path, doc, true));
    PRT_CHECK(prt_grow(L->ctx, (void **)&I->files, &I->cap, I->n + 1, sizeof *I->files));
    id.display = doc->file;
    I->files[I->n] = id;
    I->chain[I->depth++] = I->n++;
    st = load_includes(L, I, doc);
    if (st == PRT_OK) st = add_modules(L, doc);
    I->depth--;
    return st;
}

static prt_status load_includes(prt_yload *L, yinc *I, const prt_ynode *root) {
    char b[160];
    const prt_ynode *inc = prt_ymap_get(root, "include");
    if (!inc || inc->kind == PRT_YN_NULL) return PRT_OK;
    if (inc->kind == PRT_YN_STR) return include_one(L, I, inc);
    if (inc->kind != PRT_YN_SEQ)
        return prt_yerr(L->ctx, inc, PRT_ERR_SCHEMA, "'include' expects a list of file names, found %s",
                        prt_ydescribe(inc, b, sizeof b));
    for (int k = 0; k < inc->n; k++) PRT_CHECK(include_one(L, I, inc->kids[k]));
    return PRT_OK;
}

/* ---- the network ---------------------------------------------------------- */

static prt_status add_inputs(prt_yload *L, const prt_ynode *inp, int **ids_out) {
    char b[160];
    if (inp->kind != PRT_YN_MAP || inp->n == 0)
        return prt_yerr(L->ctx, inp, PRT_ERR_SCHEMA,
                        "'input' expects a mapping of input names to shapes (such as 'image: [3, 32, 32]'), found %s",
                        inp->kind == PRT_YN_MAP ? "an empty mapping" : prt_ydescribe(inp, b, sizeof b));
    int *ids = prt_yarena_alloc(&L->docs, (size_t)inp->n * sizeof *ids);
    if (!ids) return nomem(L);
    for (int k = 0; k < inp->n; k++) {
        const prt_ynode *kn = prt_ymap_key(inp, k), *sn = prt_ymap_val(inp, k);
        if (strlen(kn->s) > PRT_YAML_MAX_NAME || !prt_yname_ok(kn->s))
            return prt_yerr(L->ctx, kn, PRT_ERR_SCHEMA,
                            "'%s' is not a valid input name (use at most %d letters, digits, '_' and '-')",
                            prt_yshort(kn->s, b, sizeof b), PRT_YAML_MAX_NAME);
        if (sn->kind != PRT_YN_SEQ || sn->n < 1 || sn->n > PRT_MAX_DIMS - 1) {
            if (sn->kind == PRT_YN_SEQ) snprintf(b, sizeof b, sn->n ? "a list of %d" : "an empty list", sn->n);
            else prt_ydescribe(sn, b, sizeof b);
            return prt_yerr(L->ctx, sn, PRT_ERR_SCHEMA,
                            "input '%s': expected a shape (a list of 1 to %d positive integers), found %s", kn->s,
                            PRT_MAX_DIMS - 1, b);
        }
        prt_shape shape = {.ndim = sn->n};
        int64_t numel = 1;
        for (int d = 0; d < sn->n; d++) {
            const prt_ynode *dn = sn->kids[d];
            if (dn->kind != PRT_YN_INT || dn->i < 1)
                return prt_yerr(L->ctx, dn, PRT_ERR_SCHEMA,
                                "input '%s': dimension %d must be a positive integer, found %s", kn->s, d + 1,
                                prt_ydescribe(dn, b, sizeof b));
            shape.d[d] = dn->i;
            if (numel <= PRT_MAX_ELEMS && !prt_mul_i64(numel, dn->i, &numel)) numel = PRT_MAX_ELEMS + 1;
        }
        if (numel > PRT_MAX_ELEMS)
            return prt_yerr(L->ctx, sn, PRT_ERR_OVERFLOW, "input '%s': the shape %s has more than 2^40 elements",
                            kn->s, prt_shape_str(&shape, b, sizeof b));
        prt_loc loc = {prt_graph_intern(L->g, kn->file), kn->line, kn->col};
        if (!loc.file) return nomem(L);
        prt_status st = prt_graph_add_input(L->g, kn->s, &shape, PRT_F32, loc, &ids[k]);
        if (st != PRT_OK) return prt_error_prefix(L->ctx, st, "%s:%d:%d", kn->file, kn->line, kn->col);
    }
    *ids_out = ids;
    return PRT_OK;
}

/* The network's name: `name`, else the file name without directory and extension. */
static prt_status graph_name(prt_yload *L, const char *file, const prt_ynode *root, const char **out) {
    char b[160];
    const prt_ynode *n = prt_ymap_get(root, "name");
    if (n) {
        if (n->kind != PRT_YN_STR || !n->s[0] || strlen(n->s) > PRT_YAML_MAX_NAME)
            return prt_yerr(L->ctx, n, PRT_ERR_SCHEMA, "'name' expects the network's name (a string of 1 to %d "
                            "characters), found %s", PRT_YAML_MAX_NAME, prt_ydescribe(n, b, sizeof b));
        *out = n->s;
        return PRT_OK;
    }
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    const char *dot = strrchr(base, '.');
    size_t len = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    *out = prt_yarena_strndup(&L->docs, base, len);
    if (!*out) return nomem(L);
    if (!**out) *out = "net";
    return PRT_OK;
}

static prt_status load(prt_context *ctx, const char *file, const char *text, size_t len, const yfile *self,
                       prt_graph **out) {
    prt_yload L;
    memset(&L, 0, sizeof L);
    L.ctx = ctx;
    prt_yarena_init(&L.docs, ctx);
    prt_yarena_init(&L.tmp, ctx);
    yinc I;
    memset(&I, 0, sizeof I);
    prt_ynode *root = NULL;
    const prt_ynode *layers, *inp;
    const char *name = NULL;
    int *input_ids = NULL;
    prt_status st;
    PRT_CHECK_GOTO(prt_strtab_create(ctx, &L.mod_names), st, done);
    PRT_CHECK_GOTO(prt_ydoc_parse(ctx, &L.docs, file, text, len, &root), st, done);
    PRT_CHECK_GOTO(check_root(&L, file, root, false), st, done);
    if (self) {
        PRT_CHECK_GOTO(prt_grow(ctx, (void **)&I.files, &I.cap, 1, sizeof *I.files), st, done);
        I.files[0] = *self;
        I.files[0].display = root->file;
        I.n = 1;
        I.chain[I.depth++] = 0;
    } else {
        I.depth = 1; /* the string itself is level 0 */
    }
    inp = prt_ymap_get(root, "input");
    layers = prt_ymap_get(root, "layers");
    if (!inp) {
        st = prt_yerr(ctx, root, PRT_ERR_SCHEMA,
                      "missing key 'input' (the network's inputs, such as 'input: {image: [3, 32, 32]}')");
        goto done;
    }
    if (!layers) {
        st = prt_yerr(ctx, root, PRT_ERR_SCHEMA, "missing key 'layers' (the network's body: a list of layers)");
        goto done;
    }
    PRT_CHECK_GOTO(check_layers(&L, layers, ""), st, done);
    if (prt_ymap_get(root, "requires")) PRT_CHECK_GOTO(check_requires(&L, prt_ymap_get(root, "requires")), st, done);
    PRT_CHECK_GOTO(load_includes(&L, &I, root), st, done);
    PRT_CHECK_GOTO(add_modules(&L, root), st, done);
    PRT_CHECK_GOTO(graph_name(&L, file, root, &name), st, done);
    PRT_CHECK_GOTO(prt_graph_new(ctx, name, &L.g), st, done);
    PRT_CHECK_GOTO(add_inputs(&L, inp, &input_ids), st, done);
    PRT_CHECK_GOTO(prt_ybuild_top(&L, layers, inp, input_ids, prt_ymap_get(root, "output")), st, done);
    PRT_CHECK_GOTO(prt_graph_bind_params(L.g), st, done);
    PRT_CHECK_GOTO(prt_graph_infer(L.g, 1), st, done);
    if (prt_ymap_get(root, "solver"))
        PRT_CHECK_GOTO(prt_ysolver_parse(&L, prt_ymap_get(root, "solver"), &L.g->solver), st, done);
done:
    if (st == PRT_OK) {
        *out = L.g;
    } else {
        prt_graph_destroy(L.g);
    }
    prt_free(ctx, I.files, 0);
    prt_free(ctx, L.mods, 0);
    prt_strtab_destroy(ctx, L.mod_names);
    prt_yarena_free(&L.tmp);
    prt_yarena_free(&L.docs);
    return st;
}

prt_status prt_graph_load_yaml(prt_context *ctx, const char *path, prt_graph **out) {
    if (!out) return prt_error(ctx, PRT_ERR_USAGE, "prt_graph_load_yaml: out is NULL");
    *out = NULL;
    if (!ctx || !path) return prt_error(ctx, PRT_ERR_USAGE, "prt_graph_load_yaml: context or path is NULL");
    prt_yload L = {.ctx = ctx};
    char *text;
    size_t len;
    yfile self;
    PRT_CHECK(read_file(&L, path, NULL, &text, &len, &self));
    prt_status st = load(ctx, path, text, len, &self, out);
    prt_free(ctx, text, 0);
    return st;
}

prt_status prt_graph_load_yaml_string(prt_context *ctx, const char *name, const char *text, size_t len,
                                      prt_graph **out) {
    if (!out) return prt_error(ctx, PRT_ERR_USAGE, "prt_graph_load_yaml_string: out is NULL");
    *out = NULL;
    if (!ctx || (!text && len)) return prt_error(ctx, PRT_ERR_USAGE, "prt_graph_load_yaml_string: context or text is NULL");
    return load(ctx, name ? name : "<string>", text, len, NULL, out);
}

/* `parrots import`: an ONNX model as a Parrots YAML network plus a weights file
 * (docs/weights-format.md).
 *
 * The imported graph is written layer by layer: every node is a layer whose
 * name is its ONNX output's name made into a YAML name (letters, digits, `_`
 * and `-`; anything else becomes `_`, and a clash gets a `_2`, `_3`... suffix),
 * with its explicit attributes and explicit inputs; names are quoted, since
 * PyTorch's are numbers. Parameters are then
 * "<layer>.<slot>" as the YAML loader names them. Constants that are not a
 * layer's parameters (an elementwise op's constant operand) have no YAML form
 * and are refused by name. The result is checked before anything is written:
 * the YAML text is loaded back and the weights applied to a VM of it. */
#include "frontends/onnx/onnx_impl.h"
#include "frontends/weights_api.h"
#include "runtime/graph_impl.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct sbuf {
    prt_context *ctx;
    char *s;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) PRT_PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = true;
            return;
        }
        if (b->s && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t ncap = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
        char *ns = prt_realloc(b->ctx, b->s, b->cap, ncap);
        if (!ns) {
            b->oom = true;
            return;
        }
        b->s = ns;
        b->cap = ncap;
    }
}

/* YAML names for the graph's values: value id -> name (owned strings). */
typedef struct namer {
    prt_context *ctx;
    char **name;
    int n;
    struct prt_strtab *used;
} namer;

/* src as a YAML name: at most 100 characters, others than letters, digits,
 * `_` and `-` replaced by `_`. */
static void yaml_name(const char *src, char base[120]) {
    size_t k = 0;
    for (const char *p = src; *p && k < 100; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
        base[k++] = ok ? c : '_';
    }
    if (k == 0) base[k++] = 'v';
    base[k] = '\0';
}

static prt_status name_value(namer *nm, int id, const char *src) {
    char base[120];
    yaml_name(src, base);
    char cand[128];
    snprintf(cand, sizeof cand, "%s", base);
    for (int suffix = 2; prt_strtab_get(nm->used, cand, NULL); suffix++) snprintf(cand, sizeof cand, "%s_%d", base, suffix);
    nm->name[id] = prt_strdup(nm->ctx, cand);
    if (!nm->name[id]) return prt_error(nm->ctx, PRT_ERR_NOMEM, "out of memory");
    return prt_strtab_put(nm->ctx, nm->used, nm->name[id], id, NULL);
}

static void write_attr(sbuf *b, const prt_attr_def *d, const prt_attr *a, bool *first) {
    sb_printf(b, "%s%s: ", *first ? "" : ", ", d->name);
    *first = false;
    switch (d->type) {
    case PRT_ATTR_INT: sb_printf(b, "%lld", (long long)a->i[0]); break;
    case PRT_ATTR_BOOL: sb_printf(b, "%s", a->i[0] ? "true" : "false"); break;
    case PRT_ATTR_FLOAT: sb_printf(b, "%.17g", a->f); break;
    case PRT_ATTR_STRING: sb_printf(b, "\"%s\"", a->s ? a->s : ""); break;
    case PRT_ATTR_INTS:
        sb_printf(b, "[");
        for (int k = 0; k < a->n; k++) sb_printf(b, "%s%lld", k ? ", " : "", (long long)a->i[k]);
        sb_printf(b, "]");
        break;
    default: break;
    }
}

/* The YAML text of g (names from nm). */
static prt_status write_yaml(prt_context *ctx, const char *file, prt_graph *g, const namer *nm, sbuf *b) {
    char gname[120];
    yaml_name(g->name ? g->name : "", gname);
    sb_printf(b, "# Imported from %s by `parrots import`.\nparrots: 1\nname: %s\ninput:\n", file, gname);
    for (int k = 0; k < g->n_inputs; k++) {
        const prt_value *v = &g->values[g->inputs[k]];
        sb_printf(b, "  \"%s\": [", nm->name[g->inputs[k]]);
        for (int d = 0; d < v->shape.ndim; d++) sb_printf(b, "%s%lld", d ? ", " : "", (long long)v->shape.d[d]);
        sb_printf(b, "]\n");
    }
    sb_printf(b, "layers:\n");
    for (int n = 0; n < g->n_nodes; n++) {
        const prt_node *pn = &g->nodes[n];
        const prt_op_schema *s = prt_op_get(ctx->ops, pn->op);
        if (pn->n_out != 1)
            return prt_error(ctx, PRT_ERR_UNSUPPORTED, "%s: node '%s' (%s) has %d outputs; YAML layers have one", file,
                             pn->name, s->name, pn->n_out);
        sb_printf(b, "  - %s:", s->name);
        bool first = true;
        for (int k = 0; k < s->n_attrs; k++) {
            const prt_attr *a = &pn->attrs[k];
            if (!a->set) continue;
            if (s->attrs[k].type == PRT_ATTR_FLOAT && !isfinite(a->f)) {
                if (a->f == s->attrs[k].def.f) continue; /* the default: left out */
                return prt_error(ctx, PRT_ERR_UNSUPPORTED, "%s: node '%s' (%s): attribute %s is %g, which YAML cannot "
                                                           "write",
                                 file, pn->name, s->name, s->attrs[k].name, a->f);
            }
            if (first) sb_printf(b, " {");
            write_attr(b, &s->attrs[k], a, &first);
        }
        sb_printf(b, "%s\n    name: \"%s\"\n    input: [", first ? "" : "}", nm->name[pn->out[0]]);
        for (int k = 0; k < pn->n_data_in; k++) {
            int id = pn->in[k];
            const prt_value *v = &g->values[id];
            if (v->kind == PRT_VAL_PARAM || v->kind == PRT_VAL_STATE)
                return prt_error(ctx, PRT_ERR_UNSUPPORTED,
                                 "%s: node '%s' (%s) reads the constant '%s', which has no YAML form (only a layer's "
                                 "own parameters do)",
                                 file, pn->name, s->name, v->name);
            sb_printf(b, "%s\"%s\"", k ? ", " : "", nm->name[id]);
        }
        sb_printf(b, "]\n");
    }
    sb_printf(b, "output: [");
    for (int k = 0; k < g->n_outputs; k++) sb_printf(b, "%s\"%s\"", k ? ", " : "", nm->name[g->outputs[k]]);
    sb_printf(b, "]\n");
    return b->oom ? prt_error(ctx, PRT_ERR_NOMEM, "out of memory") : PRT_OK;
}

/* The weight names under the YAML layer names: "<node>.<slot>" -> "<layer>.<slot>". */
static prt_status weight_names(prt_context *ctx, const char *file, prt_graph *g, const namer *nm,
                               const prt_onnx_model *m, char **out) {
    for (int k = 0; k < m->n; k++) {
        int id = prt_graph_find_value(g, m->names[k]);
        const char *dot = strrchr(m->names[k], '.');
        int owner = -1;
        for (int n = 0; id >= 0 && n < g->n_nodes && owner < 0; n++)
            for (int j = g->nodes[n].n_data_in; j < g->nodes[n].n_in; j++)
                if (g->nodes[n].in[j] == id) owner = n;
        if (owner < 0 || !dot)
            return prt_error(ctx, PRT_ERR_UNSUPPORTED, "%s: the constant '%s' is not a layer's parameter; YAML cannot "
                                                       "hold it",
                             file, m->names[k]);
        char buf[300];
        snprintf(buf, sizeof buf, "%s%s", nm->name[g->nodes[owner].out[0]], dot);
        if (!(out[k] = prt_strdup(ctx, buf))) return prt_error(ctx, PRT_ERR_NOMEM, "out of memory");
    }
    return PRT_OK;
}

/* Loads the YAML text back and applies the weights file to a VM of it. */
static prt_status verify(prt_context *ctx, const char *yaml_path, const sbuf *b, const char *weights_path) {
    prt_graph *g = NULL;
    prt_program *p = NULL;
    prt_vm *vm = NULL;
    prt_weights *w = NULL;
    prt_status st;
    PRT_CHECK_GOTO(prt_graph_load_yaml_string(ctx, yaml_path, b->s, b->len, &g), st, done);
    PRT_CHECK_GOTO(prt_vm_compile(g, 1, &p), st, done);
    PRT_CHECK_GOTO(prt_vm_create(ctx, p, prt_cpu_device(ctx), NULL, &vm), st, done);
    PRT_CHECK_GOTO(prt_weights_read(ctx, weights_path, &w), st, done);
    st = prt_weights_apply(ctx, w, g, vm);
done:
    prt_weights_destroy(ctx, w);
    prt_vm_destroy(vm);
    prt_program_destroy(ctx, p);
    prt_graph_destroy(g);
    return st;
}

prt_status prt_onnx_convert(prt_context *ctx, const char *model, const char *yaml_path, const char *weights_path) {
    prt_onnx_model *m = NULL;
    PRT_CHECK(prt_onnx_import(ctx, model, &m));
    prt_graph *g = m->g;
    namer nm = {.ctx = ctx, .n = g->n_values};
    sbuf b = {.ctx = ctx};
    char **wnames = NULL;
    const prt_tensor **wt = NULL;
    prt_status st = PRT_OK;
    nm.name = prt_calloc(ctx, (size_t)g->n_values + 1, sizeof *nm.name);
    wnames = prt_calloc(ctx, (size_t)m->n + 1, sizeof *wnames);
    wt = prt_calloc(ctx, (size_t)m->n + 1, sizeof *wt);
    if (!nm.name || !wnames || !wt) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "out of memory");
        goto done;
    }
    PRT_CHECK_GOTO(prt_strtab_create(ctx, &nm.used), st, done);
    for (int k = 0; k < g->n_inputs; k++) PRT_CHECK_GOTO(name_value(&nm, g->inputs[k], g->values[g->inputs[k]].name), st, done);
    for (int n = 0; n < g->n_nodes; n++)
        for (int k = 0; k < g->nodes[n].n_out; k++) {
            int id = g->nodes[n].out[k];
            PRT_CHECK_GOTO(name_value(&nm, id, g->values[id].name), st, done);
        }
    PRT_CHECK_GOTO(write_yaml(ctx, model, g, &nm, &b), st, done);
    PRT_CHECK_GOTO(weight_names(ctx, model, g, &nm, m, wnames), st, done);
    for (int k = 0; k < m->n; k++) wt[k] = &m->t[k];
    /* weights first, then the YAML that refers to them, each atomic; the YAML
     * is checked against the weights before it is written */
    PRT_CHECK_GOTO(prt_weights_write(ctx, weights_path, m->n, (const char *const *)wnames, wt), st, done);
    st = verify(ctx, yaml_path, &b, weights_path);
    if (st != PRT_OK) {
        prt_error_prefix(ctx, st, "%s: the converted network does not load back (a Parrots bug)", model);
        goto done;
    }
    st = prt_onnx_write_file(ctx, yaml_path, b.s, b.len);
done:
    if (nm.name)
        for (int k = 0; k < nm.n; k++) prt_free(ctx, nm.name[k], 0);
    prt_free(ctx, nm.name, 0);
    prt_strtab_destroy(ctx, nm.used);
    if (wnames)
        for (int k = 0; k < m->n; k++) prt_free(ctx, wnames[k], 0);
    prt_free(ctx, wnames, 0);
    prt_free(ctx, wt, 0);
    prt_free(ctx, b.s, 0);
    prt_onnx_model_destroy(ctx, m);
    return st;
}

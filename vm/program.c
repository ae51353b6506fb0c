/* The program container: building it piece by piece (the compiler, tests and
 * benches use the same calls a file loader will), resolving op names against the
 * registry, and freeing it. */
#include "vm/vm_impl.h"

#include "memory/memory_api.h"

#include <string.h>

prt_status prt_program_new(prt_context *ctx, const char *name, int64_t batch, prt_program **out) {
    *out = NULL;
    prt_program *p = prt_calloc(ctx, 1, sizeof *p);
    if (!p) return prt_error(ctx, PRT_ERR_NOMEM, "program '%s': out of memory", name);
    p->batch = batch;
    p->name = prt_strdup(ctx, name ? name : "");
    if (!p->name) {
        prt_free(ctx, p, sizeof *p);
        return prt_error(ctx, PRT_ERR_NOMEM, "program '%s': out of memory", name);
    }
    *out = p;
    return PRT_OK;
}

static void free_call(prt_context *ctx, prt_call_desc *c) {
    prt_free(ctx, c->node, 0);
    prt_free(ctx, c->in, 0);
    prt_free(ctx, c->out, 0);
    if (c->attrs) {
        for (int i = 0; i < c->n_attrs; i++)
            if (c->attrs[i].type == PRT_ATTR_STRING) prt_free(ctx, (char *)c->attrs[i].s, 0);
        prt_free(ctx, c->attrs, 0);
    }
}

void prt_program_destroy(prt_context *ctx, prt_program *p) {
    if (!p) return;
    for (int i = 0; i < p->n_k; i++)
        if (p->k[i].kind == PRT_CONST_CALL) free_call(ctx, &p->k[i].call);
    for (int i = 0; i < p->n_regs; i++) prt_free(ctx, p->regs[i].name, 0);
    for (int i = 0; i < p->n_ops; i++) prt_free(ctx, p->ops[i].name, 0);
    prt_free(ctx, p->code, 0);
    prt_free(ctx, p->k, 0);
    prt_free(ctx, p->regs, 0);
    prt_free(ctx, p->ops, 0);
    prt_free(ctx, p->inputs, 0);
    prt_free(ctx, p->outputs, 0);
    prt_free(ctx, p->name, 0);
    prt_mem_plan_destroy(ctx, p->plan);
    prt_free(ctx, p, sizeof *p);
}

int prt_program_n_instructions(const prt_program *p) { return p ? p->n_code : 0; }

prt_status prt_program_emit(prt_context *ctx, prt_program *p, prt_instr ins, int *pc) {
    if (p->n_code == INT32_MAX)
        return prt_error(ctx, PRT_ERR_LIMIT, "program '%s': too many instructions", p->name);
    PRT_CHECK(prt_grow(ctx, (void **)&p->code, &p->cap_code, p->n_code + 1, sizeof *p->code));
    if (pc) *pc = p->n_code;
    p->code[p->n_code++] = ins;
    return PRT_OK;
}

static prt_status add_reg(prt_context *ctx, prt_program *p, const char *name, prt_reg_kind kind,
                          prt_dtype t, const prt_shape *s, prt_init_kind init, int *reg) {
    /* Counter registers are named in the A field, so every register must fit it. */
    if ((uint32_t)p->n_regs >= PRT_VM_A_MAX)
        return prt_error(ctx, PRT_ERR_LIMIT, "program '%s': more than %u registers", p->name,
                         PRT_VM_A_MAX);
    PRT_CHECK(prt_grow(ctx, (void **)&p->regs, &p->cap_regs, p->n_regs + 1, sizeof *p->regs));
    prt_reg *r = &p->regs[p->n_regs];
    memset(r, 0, sizeof *r);
    r->name = prt_strdup(ctx, name);
    if (!r->name) return prt_error(ctx, PRT_ERR_NOMEM, "register '%s': out of memory", name);
    r->kind = kind;
    r->dtype = t;
    if (s) r->shape = *s;
    r->init = init;
    if (reg) *reg = p->n_regs;
    p->n_regs++;
    return PRT_OK;
}

prt_status prt_program_add_reg(prt_context *ctx, prt_program *p, const char *name,
                               prt_reg_kind kind, prt_dtype t, const prt_shape *s,
                               prt_init_kind init, int *reg) {
    return add_reg(ctx, p, name, kind, t, s, init, reg);
}

prt_status prt_program_add_counter(prt_context *ctx, prt_program *p, const char *name, int *reg) {
    return add_reg(ctx, p, name, PRT_REG_COUNTER, PRT_I64, NULL, PRT_INIT_ZEROS, reg);
}

static prt_status add_const(prt_context *ctx, prt_program *p, prt_const **c, int *k) {
    if (p->n_k == INT32_MAX)
        return prt_error(ctx, PRT_ERR_LIMIT, "program '%s': too many constants", p->name);
    PRT_CHECK(prt_grow(ctx, (void **)&p->k, &p->cap_k, p->n_k + 1, sizeof *p->k));
    *c = &p->k[p->n_k];
    memset(*c, 0, sizeof **c);
    if (k) *k = p->n_k;
    return PRT_OK;
}

prt_status prt_program_add_int(prt_context *ctx, prt_program *p, int64_t v, int *k) {
    prt_const *c = NULL;
    PRT_CHECK(add_const(ctx, p, &c, k));
    c->kind = PRT_CONST_INT;
    c->i = v;
    p->n_k++;
    return PRT_OK;
}

prt_status prt_program_add_op(prt_context *ctx, prt_program *p, const char *name, int *index) {
    for (int i = 0; i < p->n_ops; i++) {
        if (strcmp(p->ops[i].name, name) == 0) {
            *index = i;
            return PRT_OK;
        }
    }
    PRT_CHECK(prt_grow(ctx, (void **)&p->ops, &p->cap_ops, p->n_ops + 1, sizeof *p->ops));
    prt_prog_op *o = &p->ops[p->n_ops];
    o->name = prt_strdup(ctx, name);
    if (!o->name) return prt_error(ctx, PRT_ERR_NOMEM, "op '%s': out of memory", name);
    o->id = -1;
    *index = p->n_ops++;
    return PRT_OK;
}

static prt_status dup_ints(prt_context *ctx, const int *src, int n, int **dst) {
    *dst = NULL;
    if (n <= 0) return PRT_OK;
    *dst = prt_calloc(ctx, (size_t)n, sizeof **dst);
    if (!*dst) return prt_error(ctx, PRT_ERR_NOMEM, "out of memory");
    memcpy(*dst, src, (size_t)n * sizeof **dst);
    return PRT_OK;
}

prt_status prt_program_add_call(prt_context *ctx, prt_program *p, int op, const char *node,
                                const int *in, int n_data_in, int n_in,
                                const int *out, int n_out,
                                const prt_attr *attrs, int n_attrs, int *k) {
    prt_status st = PRT_OK;
    prt_call_desc d = {.op = op, .n_data_in = n_data_in, .n_in = n_in, .n_out = n_out,
                       .n_attrs = n_attrs};
    if (n_in < 0 || n_out < 0 || n_attrs < 0 || n_data_in < 0 || n_data_in > n_in)
        return prt_error(ctx, PRT_ERR_INVALID, "call '%s': bad operand counts", node);
    d.node = prt_strdup(ctx, node);
    if (!d.node) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "call '%s': out of memory", node);
        goto fail;
    }
    PRT_CHECK_GOTO(dup_ints(ctx, in, n_in, &d.in), st, fail);
    PRT_CHECK_GOTO(dup_ints(ctx, out, n_out, &d.out), st, fail);
    if (n_attrs > 0) {
        d.attrs = prt_calloc(ctx, (size_t)n_attrs, sizeof *d.attrs);
        if (!d.attrs) {
            st = prt_error(ctx, PRT_ERR_NOMEM, "call '%s': out of memory", node);
            goto fail;
        }
        /* The program outlives the graph whose string table interned these. */
        for (int i = 0; i < n_attrs; i++) {
            d.attrs[i] = attrs[i];
            if (attrs[i].type == PRT_ATTR_STRING) {
                d.attrs[i].s = NULL;
                if (attrs[i].s && !(d.attrs[i].s = prt_strdup(ctx, attrs[i].s))) {
                    st = prt_error(ctx, PRT_ERR_NOMEM, "call '%s': out of memory", node);
                    goto fail;
                }
            }
        }
    }
    prt_const *c = NULL;
    PRT_CHECK_GOTO(add_const(ctx, p, &c, k), st, fail);
    c->kind = PRT_CONST_CALL;
    c->call = d;
    p->n_k++;
    return PRT_OK;
fail:
    free_call(ctx, &d);
    return st;
}

prt_status prt_program_set_io(prt_context *ctx, prt_program *p, const int *inputs, int n_inputs,
                              const int *outputs, int n_outputs) {
    int *in = NULL, *out = NULL;
    prt_status st;
    PRT_CHECK_GOTO(dup_ints(ctx, inputs, n_inputs, &in), st, fail);
    PRT_CHECK_GOTO(dup_ints(ctx, outputs, n_outputs, &out), st, fail);
    prt_free(ctx, p->inputs, 0);
    prt_free(ctx, p->outputs, 0);
    p->inputs = in;
    p->n_inputs = n_inputs > 0 ? n_inputs : 0;
    p->outputs = out;
    p->n_outputs = n_outputs > 0 ? n_outputs : 0;
    return PRT_OK;
fail:
    prt_free(ctx, in, 0);
    prt_free(ctx, out, 0);
    return st;
}

prt_status prt_program_resolve(prt_context *ctx, prt_program *p) {
    for (int i = 0; i < p->n_ops; i++) {
        int id = -1;
        if (!prt_op_find(ctx->ops, p->ops[i].name, &id)) {
            const char *near[3];
            int n = prt_op_suggest(ctx->ops, p->ops[i].name, near, 3);
            if (strchr(p->ops[i].name, '.'))
                return prt_error(ctx, PRT_ERR_NOT_FOUND, "program '%s': op table entry %d: unknown op '%s': no "
                                 "loaded plugin provides it (load it with --plugin or PARROTS_PLUGIN_PATH)", p->name,
                                 i, p->ops[i].name);
            return prt_error(ctx, PRT_ERR_NOT_FOUND,
                             "program '%s': op table entry %d: unknown op '%s'%s%s%s", p->name, i,
                             p->ops[i].name, n > 0 ? " (did you mean '" : "",
                             n > 0 ? near[0] : "", n > 0 ? "'?)" : "");
        }
        p->ops[i].id = id;
    }
    return PRT_OK;
}

prt_status prt_vm_call_infer(prt_context *ctx, const prt_program *p, const prt_call_desc *c,
                             const prt_op_schema *s, prt_infer_scratch *sc, prt_shape *wide,
                             prt_infer_ctx *ic) {
    memset(ic, 0, sizeof *ic);
    int n_data = c->n_data_in;
    prt_shape *in = sc->in;
    if (n_data > PRT_VARIADIC) {
        if (!wide)
            return prt_error(ctx, PRT_ERR_INTERNAL, "call '%s': %d inputs and no room for their shapes", c->node,
                             n_data);
        in = wide;
    }
    for (int i = 0; i < n_data; i++) in[i] = p->regs[c->in[i]].shape;
    for (int i = 0; i < 4; i++) memset(&sc->out[i], 0, sizeof sc->out[i]);
    for (int i = 0; i < PRT_MAX_OP_PARAMS; i++) {
        memset(&sc->params[i], 0, sizeof sc->params[i]);
        sc->present[i] = false;
    }
    ic->ctx = ctx;
    ic->node_name = c->node;
    ic->op_name = s->name;
    ic->schema = s;
    ic->loc = (prt_loc){NULL, 0, 0};
    ic->attrs = c->attrs;
    ic->n_in = n_data;
    ic->in = in;
    ic->in_dtype = n_data > 0 ? p->regs[c->in[0]].dtype : PRT_F32;
    ic->n_out = s->n_out;
    ic->out = sc->out;
    ic->out_dtype = ic->in_dtype;
    ic->n_params = s->n_params;
    ic->params = sc->params;
    ic->param_present = sc->present;
    return s->infer(ic);
}

prt_status prt_vm_call_workspace(prt_context *ctx, const prt_program *p, int k, size_t *bytes) {
    return prt_vm_call_workspace_on(ctx, p, k, false, bytes);
}

prt_status prt_vm_call_workspace_on(prt_context *ctx, const prt_program *p, int k, bool cuda, size_t *bytes) {
    const prt_call_desc *d = &p->k[k].call;
    const prt_op_schema *s = prt_op_get(ctx->ops, p->ops[d->op].id);
    *bytes = 0;
    size_t (*query)(const prt_infer_ctx *) = s ? (cuda && s->workspace_cuda ? s->workspace_cuda : s->workspace) : NULL;
    if (!query) return PRT_OK;
    prt_infer_scratch sc;
    prt_infer_ctx ic;
    prt_shape *wide = NULL;
    if (d->n_data_in > PRT_VARIADIC && !(wide = prt_calloc(ctx, (size_t)d->n_data_in, sizeof *wide)))
        return prt_error(ctx, PRT_ERR_NOMEM, "call '%s': out of memory", d->node);
    prt_status st = prt_vm_call_infer(ctx, p, d, s, &sc, wide, &ic);
    if (st == PRT_OK) *bytes = query(&ic);
    prt_free(ctx, wide, 0);
    return st;
}

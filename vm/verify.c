/* The program verifier. A program may come from a file, so the interpreter trusts
 * nothing it has not checked here: every index is in bounds, every constant has
 * the kind its instruction needs, every call matches its op's schema and shape
 * inference, every jump lands inside the code, nothing is read before it is
 * written, no call's output is an input or parameter register (ops that update
 * their inputs in place, optimizer updates and running statistics, write through
 * their inputs and are flagged so in their schema), the code ends in HALT, and
 * it always gets there (only LOOP jumps back, and loops nest and count down).
 * Messages name the program, the instruction (or table entry) and the problem. */
#include "vm/vm_impl.h"

#include <stdlib.h>
#include <string.h>

/* A stretch of code tied to a counter: a LOOP's body or a SETI's position. */
typedef struct prt_vm_span {
    int lo, hi, r;
} prt_vm_span;

typedef struct verifier {
    prt_context *ctx;
    const prt_program *p;
    char where[192];    /* "instruction 4 (CALL 'c1')": the subject of messages */
    bool *defined;      /* per register: written by an earlier instruction (or given) */
    bool *referenced;   /* per constant: used by some CALL */
    prt_vm_span *loops; /* backward LOOPs: body [lo, hi], counter r */
    int n_loops, cap_loops;
    prt_vm_span *setis; /* SETIs: at lo (= hi), counter r */
    int n_setis, cap_setis;
    prt_shape *wide;    /* input shapes of calls with more than PRT_VARIADIC inputs */
    int cap_wide;
} verifier;

static prt_status fail(verifier *v, const char *fmt, ...) PRT_PRINTF(2, 3);
static prt_status fail(verifier *v, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return prt_error(v->ctx, PRT_ERR_PROGRAM, "program '%s': %s: %s", v->p->name, v->where, msg);
}

static const char *attr_type_name(prt_attr_type t) {
    switch (t) {
    case PRT_ATTR_INT: return "int";
    case PRT_ATTR_FLOAT: return "float";
    case PRT_ATTR_BOOL: return "bool";
    case PRT_ATTR_INTS: return "ints";
    case PRT_ATTR_STRING: return "string";
    }
    return "?";
}

static const char *reg_name(const prt_program *p, int r) {
    return p->regs[r].name ? p->regs[r].name : "?";
}

static bool is_tensor_kind(prt_reg_kind k) { return k != PRT_REG_COUNTER; }

/* "an input", "a param": kind names with their article. */
static const char *a_kind(prt_reg_kind k) {
    switch (k) {
    case PRT_REG_INPUT: return "an input";
    case PRT_REG_PARAM: return "a param";
    case PRT_REG_STATE: return "a state";
    case PRT_REG_ACT: return "an act";
    case PRT_REG_COUNTER: return "a counter";
    case PRT_REG_KIND_COUNT: break;
    }
    return "an unknown";
}

/* ---- tables ------------------------------------------------------------- */

static prt_status check_regs(verifier *v) {
    const prt_program *p = v->p;
    for (int r = 0; r < p->n_regs; r++) {
        const prt_reg *g = &p->regs[r];
        snprintf(v->where, sizeof v->where, "register r%d '%s'", r, reg_name(p, r));
        if ((unsigned)g->kind >= PRT_REG_KIND_COUNT) return fail(v, "unknown kind %d", (int)g->kind);
        if (!is_tensor_kind(g->kind)) continue;
        if ((unsigned)g->dtype >= PRT_DTYPE_COUNT)
            return fail(v, "unknown dtype %d", (int)g->dtype);
        if (g->shape.ndim < 0 || g->shape.ndim > PRT_MAX_DIMS)
            return fail(v, "rank %d outside 0..%d", g->shape.ndim, PRT_MAX_DIMS);
        for (int d = 0; d < g->shape.ndim; d++)
            if (g->shape.d[d] < 1)
                return fail(v, "dimension %d is %lld (must be positive)", d,
                            (long long)g->shape.d[d]);
        int64_t n;
        if (prt_shape_numel(v->ctx, &g->shape, &n) != PRT_OK)
            return fail(v, "%s", prt_last_error(v->ctx));
        if ((g->kind == PRT_REG_PARAM || g->kind == PRT_REG_STATE) &&
            (unsigned)g->init > PRT_INIT_UNIFORM_FAN)
            return fail(v, "unknown initialiser %d", (int)g->init);
    }
    return PRT_OK;
}

static prt_status check_ops(verifier *v) {
    const prt_program *p = v->p;
    int n_registered = prt_op_count(v->ctx->ops);
    for (int i = 0; i < p->n_ops; i++) {
        const char *name = p->ops[i].name ? p->ops[i].name : "?";
        snprintf(v->where, sizeof v->where, "op table entry %d '%s'", i, name);
        const prt_op_schema *s = prt_op_get(v->ctx->ops, p->ops[i].id);
        if (!s)
            return fail(v, "registry id %d out of range (%d ops registered)", p->ops[i].id,
                        n_registered);
        if (strcmp(s->name, name) != 0)
            return fail(v, "registry id %d is op '%s'", p->ops[i].id, s->name);
    }
    return PRT_OK;
}

static prt_status check_io(verifier *v) {
    const prt_program *p = v->p;
    for (int i = 0; i < p->n_inputs; i++) {
        int r = p->inputs[i];
        snprintf(v->where, sizeof v->where, "input %d", i);
        if (r < 0 || r >= p->n_regs)
            return fail(v, "register r%d out of bounds (%d registers)", r, p->n_regs);
        if (p->regs[r].kind != PRT_REG_INPUT)
            return fail(v, "register r%d '%s' is %s register, not an input", r, reg_name(p, r),
                        a_kind(p->regs[r].kind));
    }
    for (int i = 0; i < p->n_outputs; i++) {
        int r = p->outputs[i];
        snprintf(v->where, sizeof v->where, "output %d", i);
        if (r < 0 || r >= p->n_regs)
            return fail(v, "register r%d out of bounds (%d registers)", r, p->n_regs);
        if (!is_tensor_kind(p->regs[r].kind))
            return fail(v, "register r%d '%s' is a counter, not a tensor", r, reg_name(p, r));
    }
    return PRT_OK;
}

/* ---- calls -------------------------------------------------------------- */

static prt_status check_operand(verifier *v, const char *role, int j, int r, bool write) {
    const prt_program *p = v->p;
    if (r < 0 || r >= p->n_regs)
        return fail(v, "%s %d: register r%d out of bounds (%d registers)", role, j, r, p->n_regs);
    prt_reg_kind k = p->regs[r].kind;
    if (!is_tensor_kind(k))
        return fail(v, "%s %d: register r%d '%s' is a counter, not a tensor", role, j, r,
                    reg_name(p, r));
    if (write && (k == PRT_REG_INPUT || k == PRT_REG_PARAM))
        return fail(v, "%s %d: writes r%d '%s', which is %s", role, j, r, reg_name(p, r),
                    a_kind(k));
    if (!write && v->defined && !v->defined[r])
        return fail(v, "%s %d: r%d '%s' is read before any instruction writes it", role, j, r,
                    reg_name(p, r));
    return PRT_OK;
}

static bool shape_eq(const prt_shape *a, const prt_shape *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->d[i] != b->d[i]) return false;
    return true;
}

/* Checks one call descriptor against its op. With v->defined set, also checks
 * reads against earlier writes and records the call's writes. */
static prt_status check_call(verifier *v, const prt_call_desc *c) {
    const prt_program *p = v->p;
    if (c->op < 0 || c->op >= p->n_ops)
        return fail(v, "op id %d out of range (%d ops in the op table)", c->op, p->n_ops);
    const prt_op_schema *s = prt_op_get(v->ctx->ops, p->ops[c->op].id);
    if (c->n_data_in < s->min_in || c->n_data_in > s->max_in) {
        if (s->min_in == s->max_in)
            return fail(v, "op '%s' takes %d data input%s, got %d", s->name, s->min_in,
                        s->min_in == 1 ? "" : "s", c->n_data_in);
        return fail(v, "op '%s' takes %d to %d data inputs, got %d", s->name, s->min_in,
                    s->max_in, c->n_data_in);
    }
    int n_param_ops = c->n_in - c->n_data_in;
    if (n_param_ops < 0 || n_param_ops > s->n_params)
        return fail(v, "op '%s' has %d parameter slot%s, got %d parameter operands", s->name,
                    s->n_params, s->n_params == 1 ? "" : "s", n_param_ops);
    if (c->n_out != s->n_out)
        return fail(v, "op '%s' has %d output%s, got %d", s->name, s->n_out,
                    s->n_out == 1 ? "" : "s", c->n_out);
    if ((c->n_in > 0 && !c->in) || (c->n_out > 0 && !c->out))
        return fail(v, "missing operand list");
    if (c->n_attrs != s->n_attrs)
        return fail(v, "op '%s' has %d attributes, got %d", s->name, s->n_attrs, c->n_attrs);
    if (c->n_attrs > 0 && !c->attrs) return fail(v, "missing attribute list");
    for (int i = 0; i < c->n_attrs; i++) {
        const prt_attr *a = &c->attrs[i];
        if (a->type != s->attrs[i].type)
            return fail(v, "attribute '%s' is %s, expected %s", s->attrs[i].name,
                        attr_type_name(a->type), attr_type_name(s->attrs[i].type));
        int n = a->type == PRT_ATTR_INTS ? a->n : a->type == PRT_ATTR_INT ? 1 : 0;
        /* An empty list is allowed only where the schema's default is empty, which
         * means "derived from other attributes" (pooling stride = kernel). */
        int min_n = (!s->attrs[i].required && s->attrs[i].def.n == 0) ? 0 : 1;
        if (a->type == PRT_ATTR_INTS && (a->n < min_n || a->n > PRT_ATTR_MAX_INTS))
            return fail(v, "attribute '%s' has %d values (%d to %d allowed)", s->attrs[i].name,
                        a->n, min_n, PRT_ATTR_MAX_INTS);
        /* Shape functions rely on the bounds the frontends enforce (stride >= 1). */
        for (int e = 0; e < n; e++)
            if (a->i[e] < s->attrs[i].min)
                return fail(v, "attribute '%s' is %lld, below its minimum %lld",
                            s->attrs[i].name, (long long)a->i[e], (long long)s->attrs[i].min);
    }
    for (int j = 0; j < c->n_in; j++) PRT_CHECK(check_operand(v, "input", j, c->in[j], false));
    for (int j = 0; j < c->n_out; j++) PRT_CHECK(check_operand(v, "output", j, c->out[j], true));

    if (c->n_data_in > PRT_VARIADIC)
        PRT_CHECK(prt_grow(v->ctx, (void **)&v->wide, &v->cap_wide, c->n_data_in, sizeof *v->wide));
    prt_infer_scratch sc;
    prt_infer_ctx ic;
    prt_status st = prt_vm_call_infer(v->ctx, p, c, s, &sc, v->wide, &ic);
    if (st != PRT_OK) {
        char inner[1024];
        snprintf(inner, sizeof inner, "%s", prt_last_error(v->ctx));
        return fail(v, "op '%s' rejects its operand shapes: %s", s->name, inner);
    }
    int present = 0;
    for (int slot = 0; slot < s->n_params; slot++) {
        if (!sc.present[slot]) continue;
        if (present >= n_param_ops) break;
        int r = c->in[c->n_data_in + present];
        if (!shape_eq(&p->regs[r].shape, &sc.params[slot])) {
            char got[160], want[160];
            prt_shape_str(&p->regs[r].shape, got, sizeof got);
            prt_shape_str(&sc.params[slot], want, sizeof want);
            return fail(v, "parameter '%s' (r%d '%s') has shape %s, expected %s",
                        s->params[slot].name, r, reg_name(p, r), got, want);
        }
        present++;
    }
    int want_params = 0;
    for (int slot = 0; slot < s->n_params; slot++) want_params += sc.present[slot];
    if (want_params != n_param_ops)
        return fail(v, "op '%s' with these attributes takes %d parameter operand%s, got %d",
                    s->name, want_params, want_params == 1 ? "" : "s", n_param_ops);
    for (int j = 0; j < c->n_out; j++) {
        const prt_reg *r = &p->regs[c->out[j]];
        if (!shape_eq(&r->shape, &sc.out[j])) {
            char got[160], want[160];
            prt_shape_str(&r->shape, got, sizeof got);
            prt_shape_str(&sc.out[j], want, sizeof want);
            return fail(v, "output %d (r%d '%s') has shape %s, expected %s", j, c->out[j],
                        reg_name(p, c->out[j]), got, want);
        }
        if (r->dtype != prt_infer_out_dtype(&ic, j))
            return fail(v, "output %d (r%d '%s') has dtype %s, expected %s", j, c->out[j],
                        reg_name(p, c->out[j]), prt_dtype_name(r->dtype),
                        prt_dtype_name(prt_infer_out_dtype(&ic, j)));
    }
    if (v->defined)
        for (int j = 0; j < c->n_out; j++) v->defined[c->out[j]] = true;
    return PRT_OK;
}

/* ---- instructions ------------------------------------------------------- */

static prt_status check_const(verifier *v, uint32_t k, prt_const_kind want) {
    const prt_program *p = v->p;
    if (k >= (uint32_t)p->n_k)
        return fail(v, "constant k%u out of bounds (%d constants)", k, p->n_k);
    prt_const_kind got = p->k[k].kind;
    if (got != want)
        return fail(v, "constant k%u is %s, expected %s", k,
                    got == PRT_CONST_CALL  ? "a call descriptor"
                    : got == PRT_CONST_INT ? "an integer"
                                           : "of unknown kind",
                    want == PRT_CONST_CALL ? "a call descriptor" : "an integer");
    return PRT_OK;
}

static prt_status check_counter(verifier *v, uint32_t r, bool read) {
    const prt_program *p = v->p;
    if (r >= (uint32_t)p->n_regs)
        return fail(v, "register r%u out of bounds (%d registers)", r, p->n_regs);
    if (p->regs[r].kind != PRT_REG_COUNTER)
        return fail(v, "register r%u '%s' is %s register, not a counter", r,
                    reg_name(p, (int)r), a_kind(p->regs[r].kind));
    if (read && !v->defined[r])
        return fail(v, "counter r%u '%s' is read before any SETI sets it", r, reg_name(p, (int)r));
    v->defined[r] = true;
    return PRT_OK;
}

static prt_status check_target(verifier *v, int64_t target) {
    if (target < 0 || target >= v->p->n_code)
        return fail(v, "jump target %lld out of range (0..%d)", (long long)target,
                    v->p->n_code - 1);
    return PRT_OK;
}

static prt_status add_span(verifier *v, prt_vm_span **arr, int *n, int *cap, prt_vm_span sp) {
    PRT_CHECK(prt_grow(v->ctx, (void **)arr, cap, *n + 1, sizeof **arr));
    (*arr)[(*n)++] = sp;
    return PRT_OK;
}

static prt_status check_instruction(verifier *v, int pc) {
    const prt_program *p = v->p;
    prt_instr ins = p->code[pc];
    unsigned op = PRT_VM_RAW_OP(ins);
    if (op >= PRT_OP_COUNT) {
        snprintf(v->where, sizeof v->where, "instruction %d", pc);
        return fail(v, "unknown opcode %u", op);
    }
    const prt_vm_format_info *f = &prt_vm_formats[prt_vm_op_formats[op]];
    uint32_t a = PRT_VM_RAW_A(ins), x = PRT_VM_RAW_X(ins);
    snprintf(v->where, sizeof v->where, "instruction %d (%s)", pc, prt_vm_op_names[op]);
    if (f->x == PRT_VM_X_CALL && x < (uint32_t)p->n_k && p->k[x].kind == PRT_CONST_CALL &&
        p->k[x].call.node)
        snprintf(v->where, sizeof v->where, "instruction %d (%s '%s')", pc, prt_vm_op_names[op],
                 p->k[x].call.node);

    if (f->a == PRT_VM_A_UNUSED && a != 0) return fail(v, "unused field A is %u, not 0", a);
    if (f->x == PRT_VM_X_UNUSED && x != 0) return fail(v, "unused field X is %u, not 0", x);

    switch (f->a) {
    case PRT_VM_A_UNUSED: break;
    case PRT_VM_A_JMODE:
        if (a != PRT_VM_JMP_REL && a != PRT_VM_JMP_ABS)
            return fail(v, "unknown jump mode %u (0 relative, 1 absolute)", a);
        break;
    case PRT_VM_A_COUNTER:
        /* SETI only writes its counter; LOOP reads it first. */
        PRT_CHECK(check_counter(v, a, op == PRT_OP_LOOP));
        break;
    case PRT_VM_A_BUCKET: break; /* the bucket rules: prt_program_buckets, after every instruction */
    }
    switch (f->x) {
    case PRT_VM_X_UNUSED: break;
    case PRT_VM_X_CALL:
        PRT_CHECK(check_const(v, x, PRT_CONST_CALL));
        v->referenced[x] = true;
        PRT_CHECK(check_call(v, &p->k[x].call));
        break;
    case PRT_VM_X_INT:
        PRT_CHECK(check_const(v, x, PRT_CONST_INT));
        PRT_CHECK(add_span(v, &v->setis, &v->n_setis, &v->cap_setis,
                           (prt_vm_span){pc, pc, (int)a}));
        break;
    case PRT_VM_X_JUMP: {
        int64_t t = a == PRT_VM_JMP_ABS ? (int64_t)x : (int64_t)pc + 1 + PRT_VM_RAW_SX(ins);
        PRT_CHECK(check_target(v, t));
        /* Only LOOP, whose counter runs down, may jump back: programs always end. */
        if (t <= pc) return fail(v, "backward jump to %lld (only LOOP may jump back)", (long long)t);
        break;
    }
    case PRT_VM_X_REL: {
        int64_t t = (int64_t)pc + 1 + PRT_VM_RAW_SX(ins);
        PRT_CHECK(check_target(v, t));
        if (t <= pc)
            PRT_CHECK(add_span(v, &v->loops, &v->n_loops, &v->cap_loops,
                               (prt_vm_span){(int)t, pc, (int)a}));
        break;
    }
    }
    return PRT_OK;
}

static int span_cmp(const void *pa, const void *pb) {
    const prt_vm_span *a = pa, *b = pb;
    if (a->r != b->r) return a->r < b->r ? -1 : 1;
    if (a->lo != b->lo) return a->lo < b->lo ? -1 : 1;
    return (a->hi > b->hi) - (a->hi < b->hi);
}

static int body_cmp(const void *pa, const void *pb) {
    const prt_vm_span *a = pa, *b = pb;
    if (a->lo != b->lo) return a->lo < b->lo ? -1 : 1;
    return (a->hi < b->hi) - (a->hi > b->hi); /* the longer (outer) body first */
}

/* Every LOOP's counter strictly falls each time it jumps back, so a program ends
 * as long as loop bodies nest (or are apart) and no body resets its own counter. */
static prt_status check_loops(verifier *v) {
    if (v->n_setis > 0) qsort(v->setis, (size_t)v->n_setis, sizeof *v->setis, span_cmp);
    for (int i = 0; i < v->n_loops; i++) {
        const prt_vm_span *L = &v->loops[i];
        /* First SETI on L's counter at or after the body's start. */
        int lo = 0, hi = v->n_setis;
        while (lo < hi) {
            int mid = lo + (hi - lo) / 2;
            const prt_vm_span *s = &v->setis[mid];
            if (s->r < L->r || (s->r == L->r && s->lo < L->lo)) lo = mid + 1;
            else hi = mid;
        }
        if (lo < v->n_setis && v->setis[lo].r == L->r && v->setis[lo].lo <= L->hi) {
            int q = v->setis[lo].lo;
            snprintf(v->where, sizeof v->where, "instruction %d (SETI)", q);
            return fail(v, "resets counter r%d '%s' inside the body %d..%d of the LOOP at %d, "
                           "which would never end", L->r, reg_name(v->p, L->r), L->lo, L->hi, L->hi);
        }
    }
    if (v->n_loops > 0) qsort(v->loops, (size_t)v->n_loops, sizeof *v->loops, body_cmp);
    /* Sweep bodies by start; the stack holds the bodies still open. */
    int *stack = prt_calloc(v->ctx, (size_t)v->n_loops + 1, sizeof *stack);
    if (!stack) return prt_error(v->ctx, PRT_ERR_NOMEM, "verifier: out of memory");
    int top = 0;
    prt_status st = PRT_OK;
    for (int i = 0; i < v->n_loops && st == PRT_OK; i++) {
        const prt_vm_span *L = &v->loops[i];
        while (top > 0 && v->loops[stack[top - 1]].hi < L->lo) top--;
        if (top > 0 && v->loops[stack[top - 1]].hi < L->hi) {
            const prt_vm_span *O = &v->loops[stack[top - 1]];
            snprintf(v->where, sizeof v->where, "instruction %d (LOOP)", L->hi);
            st = fail(v, "loop body %d..%d overlaps the body %d..%d of the LOOP at %d "
                         "(loops must nest)", L->lo, L->hi, O->lo, O->hi, O->hi);
        }
        stack[top++] = i;
    }
    prt_free(v->ctx, stack, 0);
    return st;
}

prt_status prt_vm_verify(prt_context *ctx, const prt_program *p) {
    if (!p) return prt_error(ctx, PRT_ERR_INVALID, "prt_vm_verify: no program");
    verifier v = {.ctx = ctx, .p = p};
    prt_status st = PRT_OK;
    snprintf(v.where, sizeof v.where, "header");
    if (p->batch < 1) return fail(&v, "batch %lld is not positive", (long long)p->batch);
    if (p->n_regs < 0 || p->n_k < 0 || p->n_ops < 0 || p->n_code < 0 || p->n_inputs < 0 ||
        p->n_outputs < 0)
        return fail(&v, "negative table size");
    if ((p->n_regs && !p->regs) || (p->n_k && !p->k) || (p->n_ops && !p->ops) ||
        (p->n_code && !p->code) || (p->n_inputs && !p->inputs) || (p->n_outputs && !p->outputs))
        return fail(&v, "missing table");
    if (p->n_code == 0) return fail(&v, "no instructions (a program ends in HALT)");

    PRT_CHECK(check_regs(&v));
    PRT_CHECK(check_ops(&v));
    for (int k = 0; k < p->n_k; k++) {
        if ((unsigned)p->k[k].kind >= PRT_CONST_KIND_COUNT) {
            snprintf(v.where, sizeof v.where, "constant k%d", k);
            return fail(&v, "unknown kind %d", (int)p->k[k].kind);
        }
    }
    PRT_CHECK(check_io(&v));

    v.defined = prt_calloc(ctx, (size_t)p->n_regs + 1, sizeof *v.defined);
    v.referenced = prt_calloc(ctx, (size_t)p->n_k + 1, sizeof *v.referenced);
    if (!v.defined || !v.referenced) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "program '%s': verifier out of memory", p->name);
        goto done;
    }
    for (int r = 0; r < p->n_regs; r++) {
        prt_reg_kind k = p->regs[r].kind;
        v.defined[r] = k == PRT_REG_INPUT || k == PRT_REG_PARAM || k == PRT_REG_STATE;
    }
    for (int pc = 0; pc < p->n_code; pc++) PRT_CHECK_GOTO(check_instruction(&v, pc), st, done);

    PRT_CHECK_GOTO(check_loops(&v), st, done);
    int last = p->n_code - 1;
    if (PRT_VM_RAW_OP(p->code[last]) != PRT_OP_HALT) {
        snprintf(v.where, sizeof v.where, "instruction %d (%s)", last,
                 prt_vm_op_names[PRT_VM_RAW_OP(p->code[last])]);
        st = fail(&v, "program does not end in HALT");
        goto done;
    }
    for (int i = 0; i < p->n_outputs; i++) {
        int r = p->outputs[i];
        if (!v.defined[r]) {
            snprintf(v.where, sizeof v.where, "output %d", i);
            st = fail(&v, "r%d '%s' is never written", r, reg_name(p, r));
            goto done;
        }
    }
    /* The interpreter prepares every call constant, so unused ones must be sound too. */
    bool *defined = v.defined;
    v.defined = NULL;
    for (int k = 0; k < p->n_k && st == PRT_OK; k++) {
        if (p->k[k].kind != PRT_CONST_CALL || v.referenced[k]) continue;
        snprintf(v.where, sizeof v.where, "constant k%d (call '%s')", k,
                 p->k[k].call.node ? p->k[k].call.node : "?");
        st = check_call(&v, &p->k[k].call);
    }
    v.defined = defined;
    if (st == PRT_OK) {
        prt_bucket_table bt;
        st = prt_program_buckets(ctx, p, &bt);
        if (st == PRT_OK) prt_bucket_table_free(ctx, &bt);
    }
done:
    prt_free(ctx, v.defined, 0);
    prt_free(ctx, v.referenced, 0);
    prt_free(ctx, v.loops, 0);
    prt_free(ctx, v.setis, 0);
    prt_free(ctx, v.wide, 0);
    return st;
}

/* Gradient buckets as the code states them (ALLREDUCE_START b after the last
 * write of the bucket's gradients, ALLREDUCE_WAIT b right before the update
 * CALL that reads them), the checks that make the overlap safe, and the
 * program hash the ranks of a job compare. */
#include "vm/vm_impl.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static prt_status bfail(prt_context *ctx, const prt_program *p, int pc, const char *fmt, ...) PRT_PRINTF(4, 5);
static prt_status bfail(prt_context *ctx, const prt_program *p, int pc, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    unsigned op = PRT_VM_RAW_OP(p->code[pc]);
    return prt_error(ctx, PRT_ERR_PROGRAM, "program '%s': instruction %d (%s %u): %s", p->name, pc,
                     op < PRT_OP_COUNT ? prt_vm_op_names[op] : "?", PRT_VM_RAW_A(p->code[pc]), msg);
}

void prt_bucket_table_free(prt_context *ctx, prt_bucket_table *t) {
    if (!t) return;
    for (int b = 0; b < t->n; b++) prt_free(ctx, t->b[b].regs, 0);
    prt_free(ctx, t->b, 0);
    t->b = NULL;
    t->n = 0;
}

static bool is_call(prt_instr i) {
    unsigned op = PRT_VM_RAW_OP(i);
    return op == PRT_OP_CALL || op == PRT_OP_RECOMPUTE;
}

/* The update call after WAIT b: its gradient inputs become the bucket's. */
static prt_status take_update(prt_context *ctx, const prt_program *p, int pc, prt_bucket *b) {
    if (pc + 1 >= p->n_code || PRT_VM_RAW_OP(p->code[pc + 1]) != PRT_OP_CALL)
        return bfail(ctx, p, pc, "must be followed by the CALL of the optimizer update that reads the bucket");
    int k = (int)PRT_VM_RAW_X(p->code[pc + 1]);
    const prt_call_desc *d = &p->k[k].call;
    const prt_op_schema *s = prt_op_get(ctx->ops, p->ops[d->op].id);
    if (!s || !s->updates_inputs)
        return bfail(ctx, p, pc, "is followed by CALL '%s' (%s), not by an optimizer update", d->node,
                     s ? s->name : "?");
    int n_params = 0;
    while (n_params < d->n_in && p->regs[d->in[n_params]].kind == PRT_REG_PARAM) n_params++;
    if (n_params == 0 || 2 * n_params > d->n_in)
        return bfail(ctx, p, pc, "update '%s' does not take parameters followed by their gradients", d->node);
    b->wait_pc = pc;
    b->update_k = k;
    b->n_regs = n_params;
    b->regs = prt_calloc(ctx, (size_t)n_params, sizeof *b->regs);
    if (!b->regs) return prt_error(ctx, PRT_ERR_NOMEM, "program '%s': out of memory", p->name);
    b->count = 0;
    for (int j = 0; j < n_params; j++) {
        int r = d->in[n_params + j];
        const prt_reg *g = &p->regs[r];
        if (g->kind != PRT_REG_ACT || g->dtype != PRT_F32)
            return bfail(ctx, p, pc, "gradient input %d of update '%s' (r%d '%s') is not an f32 activation", j,
                         d->node, r, g->name);
        b->regs[j] = r;
        b->count += prt_shape_count(&g->shape);
    }
    return PRT_OK;
}

/* Reads and writes of each bucket's gradients against its START and WAIT. */
static prt_status check_uses(prt_context *ctx, const prt_program *p, const prt_bucket_table *t) {
    int *of = prt_calloc(ctx, (size_t)p->n_regs + 1, sizeof *of);
    if (!of) return prt_error(ctx, PRT_ERR_NOMEM, "program '%s': out of memory", p->name);
    prt_status st = PRT_OK;
    for (int r = 0; r < p->n_regs; r++) of[r] = -1;
    for (int b = 0; b < t->n && st == PRT_OK; b++)
        for (int j = 0; j < t->b[b].n_regs && st == PRT_OK; j++) {
            int r = t->b[b].regs[j];
            if (of[r] >= 0)
                st = bfail(ctx, p, t->b[b].wait_pc, "gradient r%d '%s' is already in bucket %d", r, p->regs[r].name,
                           of[r]);
            of[r] = b;
        }
    for (int pc = 0; pc < p->n_code && st == PRT_OK; pc++) {
        if (!is_call(p->code[pc])) continue;
        const prt_call_desc *d = &p->k[PRT_VM_RAW_X(p->code[pc])].call;
        for (int j = 0; j < d->n_out && st == PRT_OK; j++) {
            int b = of[d->out[j]];
            if (b >= 0 && pc > t->b[b].start_pc)
                st = prt_error(ctx, PRT_ERR_PROGRAM,
                               "program '%s': instruction %d ('%s') writes gradient '%s' of bucket %d after its "
                               "ALLREDUCE_START (instruction %d)",
                               p->name, pc, d->node, p->regs[d->out[j]].name, b, t->b[b].start_pc);
        }
        for (int j = 0; j < d->n_in && st == PRT_OK; j++) {
            int b = of[d->in[j]];
            if (b >= 0 && pc > t->b[b].start_pc && pc < t->b[b].wait_pc)
                st = prt_error(ctx, PRT_ERR_PROGRAM,
                               "program '%s': instruction %d ('%s') reads gradient '%s' of bucket %d while it is being "
                               "reduced (instructions %d to %d)",
                               p->name, pc, d->node, p->regs[d->in[j]].name, b, t->b[b].start_pc, t->b[b].wait_pc);
        }
    }
    prt_free(ctx, of, 0);
    return st;
}

/* A jump repeats (LOOP back) or may skip (JMP, LOOP forward) a range of
 * instructions. The range must hold all of a bucket's START, WAIT and update
 * or none of them: a LOOP that repeats START alone starts the bucket twice and
 * its next pass writes the gradients while they are reduced; a JMP that skips
 * START alone makes WAIT wait for nothing and the update read unreduced
 * gradients, and one that skips WAIT leaves a reduction running. */
static prt_status check_jumps(prt_context *ctx, const prt_program *p, const prt_bucket_table *t) {
    for (int pc = 0; pc < p->n_code; pc++) {
        prt_instr i = p->code[pc];
        unsigned op = PRT_VM_RAW_OP(i);
        if (op != PRT_OP_JMP && op != PRT_OP_LOOP) continue;
        int64_t target = op == PRT_OP_JMP && PRT_VM_RAW_A(i) == PRT_VM_JMP_ABS ? (int64_t)PRT_VM_RAW_X(i)
                                                                                 : (int64_t)pc + 1 + PRT_VM_RAW_SX(i);
        bool back = target <= pc;
        int64_t lo = back ? target : pc + 1, hi = back ? pc : target - 1;
        for (int b = 0; b < t->n; b++) {
            const prt_bucket *k = &t->b[b];
            int in = (k->start_pc >= lo && k->start_pc <= hi) + (k->wait_pc >= lo && k->wait_pc <= hi) +
                     (k->wait_pc + 1 >= lo && k->wait_pc + 1 <= hi);
            if (in != 0 && in != 3)
                return prt_error(ctx, PRT_ERR_PROGRAM,
                                 "program '%s': instruction %d (%s) %s instructions %lld to %lld, which hold part of "
                                 "bucket %d (ALLREDUCE_START at %d, ALLREDUCE_WAIT at %d, update at %d): a jump must "
                                 "take all of a bucket or none of it",
                                 p->name, pc, prt_vm_op_names[op], back ? "repeats" : "skips", (long long)lo,
                                 (long long)hi, b, k->start_pc, k->wait_pc, k->wait_pc + 1);
        }
    }
    return PRT_OK;
}

prt_status prt_program_buckets(prt_context *ctx, const prt_program *p, prt_bucket_table *out) {
    memset(out, 0, sizeof *out);
    prt_bucket_table t = {0};
    int cap = 0;
    prt_status st = PRT_OK;
    for (int pc = 0; pc < p->n_code && st == PRT_OK; pc++) {
        unsigned op = PRT_VM_RAW_OP(p->code[pc]);
        uint32_t a = PRT_VM_RAW_A(p->code[pc]);
        if (op == PRT_OP_ALLREDUCE_START) {
            if (a != (uint32_t)t.n) {
                st = bfail(ctx, p, pc, "buckets start in order 0, 1, 2, ...: expected bucket %d", t.n);
                break;
            }
            if ((st = prt_grow(ctx, (void **)&t.b, &cap, t.n + 1, sizeof *t.b)) != PRT_OK) break;
            t.b[t.n++] = (prt_bucket){.start_pc = pc, .wait_pc = -1, .update_k = -1};
        } else if (op == PRT_OP_ALLREDUCE_WAIT) {
            if (a >= (uint32_t)t.n)
                st = bfail(ctx, p, pc, "bucket %u is waited for before its ALLREDUCE_START", a);
            else if (t.b[a].wait_pc >= 0)
                st = bfail(ctx, p, pc, "bucket %u is already waited for at instruction %d", a, t.b[a].wait_pc);
            else
                st = take_update(ctx, p, pc, &t.b[a]);
        }
    }
    for (int b = 0; b < t.n && st == PRT_OK; b++)
        if (t.b[b].wait_pc < 0)
            st = bfail(ctx, p, t.b[b].start_pc, "bucket %d is started but never waited for", b);
    if (st == PRT_OK) st = check_jumps(ctx, p, &t);
    if (st == PRT_OK) st = check_uses(ctx, p, &t);
    if (st != PRT_OK) {
        prt_bucket_table_free(ctx, &t);
        return st;
    }
    *out = t;
    return PRT_OK;
}

/* ---- the program hash ------------------------------------------------------ */

typedef struct hasher {
    uint64_t h;
} hasher;

static void h_bytes(hasher *s, const void *p, size_t n) {
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) {
        s->h ^= c[i];
        s->h *= 0x100000001b3ull;
    }
}
static void h_u64(hasher *s, uint64_t v) { h_bytes(s, &v, sizeof v); }
static void h_str(hasher *s, const char *str) {
    size_t n = str ? strlen(str) : 0;
    h_u64(s, n);
    h_bytes(s, str ? str : "", n);
}

uint64_t prt_program_hash(const prt_program *p) {
    hasher s = {0xcbf29ce484222325ull};
    h_str(&s, "parrots-program-1");
    h_str(&s, p->name);
    h_u64(&s, (uint64_t)p->batch);
    h_u64(&s, (uint64_t)p->n_code);
    for (int i = 0; i < p->n_code; i++) h_u64(&s, p->code[i]);
    h_u64(&s, (uint64_t)p->n_regs);
    for (int r = 0; r < p->n_regs; r++) {
        const prt_reg *g = &p->regs[r];
        h_str(&s, g->name);
        h_u64(&s, (uint64_t)g->kind);
        h_u64(&s, (uint64_t)g->dtype);
        h_u64(&s, (uint64_t)g->init);
        h_u64(&s, (uint64_t)g->shape.ndim);
        for (int d = 0; d < g->shape.ndim; d++) h_u64(&s, (uint64_t)g->shape.d[d]);
    }
    h_u64(&s, (uint64_t)p->n_ops);
    for (int o = 0; o < p->n_ops; o++) h_str(&s, p->ops[o].name);
    h_u64(&s, (uint64_t)p->n_k);
    for (int k = 0; k < p->n_k; k++) {
        const prt_const *c = &p->k[k];
        h_u64(&s, (uint64_t)c->kind);
        if (c->kind == PRT_CONST_INT) {
            h_u64(&s, (uint64_t)c->i);
            continue;
        }
        const prt_call_desc *d = &c->call;
        h_u64(&s, (uint64_t)d->op);
        h_u64(&s, d->phase);
        h_str(&s, d->node);
        h_u64(&s, (uint64_t)d->n_data_in);
        h_u64(&s, (uint64_t)d->n_in);
        for (int j = 0; j < d->n_in; j++) h_u64(&s, (uint64_t)d->in[j]);
        h_u64(&s, (uint64_t)d->n_out);
        for (int j = 0; j < d->n_out; j++) h_u64(&s, (uint64_t)d->out[j]);
        h_u64(&s, (uint64_t)d->n_attrs);
        for (int a = 0; a < d->n_attrs; a++) {
            const prt_attr *at = &d->attrs[a];
            h_u64(&s, (uint64_t)at->type);
            h_u64(&s, at->set);
            h_u64(&s, (uint64_t)at->n);
            for (int j = 0; j < at->n && j < PRT_ATTR_MAX_INTS; j++) h_u64(&s, (uint64_t)at->i[j]);
            h_bytes(&s, &at->f, sizeof at->f);
            h_str(&s, at->type == PRT_ATTR_STRING ? at->s : NULL);
        }
    }
    h_u64(&s, (uint64_t)p->n_inputs);
    for (int i = 0; i < p->n_inputs; i++) h_u64(&s, (uint64_t)p->inputs[i]);
    h_u64(&s, (uint64_t)p->n_outputs);
    for (int i = 0; i < p->n_outputs; i++) h_u64(&s, (uint64_t)p->outputs[i]);
    return s.h;
}

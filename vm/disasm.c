/* The disassembler: a header (registers with their shapes, constants, inputs and
 * outputs) and one line per instruction, e.g.
 *
 *     0004  CALL   k3   conv  a/0/b1/conv_0  r5 r6 -> r7   ; [8,32,16,16]
 *
 * It reads every field defensively, so it can also print a program the verifier
 * rejected (to show what is wrong with it). */
#include "vm/vm_impl.h"

/* "[8,32,16,16]": the compact form keeps instruction lines short. */
static const char *shape_compact(const prt_shape *s, char *buf, size_t cap) {
    size_t k = 0;
    buf[0] = '\0';
    k += (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < s->ndim && i < PRT_MAX_DIMS && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, i ? ",%lld" : "%lld", (long long)s->d[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
    return buf;
}

static const char *init_name(prt_init_kind k) {
    switch (k) {
    case PRT_INIT_ZEROS: return "zeros";
    case PRT_INIT_ONES: return "ones";
    case PRT_INIT_HE_NORMAL: return "he_normal";
    case PRT_INIT_UNIFORM_FAN: return "uniform_fan";
    }
    return "?";
}

static const char *op_name(const prt_program *p, int op) {
    return op >= 0 && op < p->n_ops && p->ops[op].name ? p->ops[op].name : "?";
}

static void print_regs(FILE *f, const int *r, int n) {
    for (int j = 0; j < n; j++) fprintf(f, j ? " r%d" : "r%d", r[j]);
}

static void print_call_operands(FILE *f, const prt_program *p, const prt_call_desc *c) {
    fprintf(f, "%s  %s  ", op_name(p, c->op), c->node ? c->node : "?");
    if (c->in) print_regs(f, c->in, c->n_in);
    fprintf(f, " -> ");
    if (c->out) print_regs(f, c->out, c->n_out);
    if (c->n_out == 0) fprintf(f, "(in place)");
}

static void print_header(FILE *f, const prt_program *p) {
    char buf[160];
    fprintf(f, "; program '%s': %d instructions, %d registers, %d constants, %d ops, batch %lld\n",
            p->name ? p->name : "?", p->n_code, p->n_regs, p->n_k, p->n_ops,
            (long long)p->batch);
    fprintf(f, "; registers\n");
    for (int r = 0; r < p->n_regs; r++) {
        const prt_reg *g = &p->regs[r];
        if (g->kind == PRT_REG_COUNTER) {
            fprintf(f, ";   r%-5d counter %s\n", r, g->name ? g->name : "?");
            continue;
        }
        fprintf(f, ";   r%-5d %-7s %-4s %-20s %s", r, prt_reg_kind_name(g->kind),
                prt_dtype_name(g->dtype), shape_compact(&g->shape, buf, sizeof buf),
                g->name ? g->name : "?");
        if (g->kind == PRT_REG_PARAM || g->kind == PRT_REG_STATE)
            fprintf(f, "  (%s)", init_name(g->init));
        fputc('\n', f);
    }
    fprintf(f, "; ops\n");
    for (int i = 0; i < p->n_ops; i++)
        fprintf(f, ";   op%-4d %s (registry id %d)\n", i, op_name(p, i), p->ops[i].id);
    fprintf(f, "; constants\n");
    for (int k = 0; k < p->n_k; k++) {
        const prt_const *c = &p->k[k];
        if (c->kind == PRT_CONST_INT) {
            fprintf(f, ";   k%-5d int     %lld\n", k, (long long)c->i);
        } else if (c->kind == PRT_CONST_CALL) {
            fprintf(f, ";   k%-5d call    ", k);
            print_call_operands(f, p, &c->call);
            fputc('\n', f);
        } else {
            fprintf(f, ";   k%-5d ?kind %d\n", k, (int)c->kind);
        }
    }
    fprintf(f, "; inputs: ");
    if (p->inputs) print_regs(f, p->inputs, p->n_inputs);
    fprintf(f, "\n; outputs: ");
    if (p->outputs) print_regs(f, p->outputs, p->n_outputs);
    fputc('\n', f);
}

static void print_instruction(FILE *f, const prt_program *p, int pc) {
    prt_instr ins = p->code[pc];
    unsigned op = PRT_VM_RAW_OP(ins);
    uint32_t a = PRT_VM_RAW_A(ins), x = PRT_VM_RAW_X(ins);
    if (op >= PRT_OP_COUNT) {
        fprintf(f, "%04d  ?%-5u A=%u X=%u\n", pc, op, a, x);
        return;
    }
    if (prt_vm_formats[prt_vm_op_formats[op]].a == PRT_VM_A_BUCKET) {
        fprintf(f, "%04d  %s bucket %u\n", pc, prt_vm_op_names[op], a);
        return;
    }
    if (prt_vm_formats[prt_vm_op_formats[op]].x == PRT_VM_X_UNUSED) {
        fprintf(f, "%04d  %s\n", pc, prt_vm_op_names[op]);
        return;
    }
    fprintf(f, "%04d  %-6s", pc, prt_vm_op_names[op]);
    switch ((prt_opcode)op) {
    case PRT_OP_NOP:
    case PRT_OP_HALT:
        break;
    case PRT_OP_CALL:
    case PRT_OP_RECOMPUTE: {
        fprintf(f, " k%-4u", x);
        if (x < (uint32_t)p->n_k && p->k[x].kind == PRT_CONST_CALL) {
            const prt_call_desc *c = &p->k[x].call;
            print_call_operands(f, p, c);
            fprintf(f, "   ;");
            char buf[160];
            for (int j = 0; c->out && j < c->n_out; j++)
                if (c->out[j] >= 0 && c->out[j] < p->n_regs)
                    fprintf(f, " %s", shape_compact(&p->regs[c->out[j]].shape, buf, sizeof buf));
        }
        break;
    }
    case PRT_OP_JMP:
        if (a == PRT_VM_JMP_ABS)
            fprintf(f, " @%u", x);
        else
            fprintf(f, " %+d      ; -> %04lld", PRT_VM_RAW_SX(ins),
                    (long long)pc + 1 + PRT_VM_RAW_SX(ins));
        break;
    case PRT_OP_LOOP:
        fprintf(f, " r%-4u %+d   ; -> %04lld", a, PRT_VM_RAW_SX(ins),
                (long long)pc + 1 + PRT_VM_RAW_SX(ins));
        break;
    case PRT_OP_SETI:
        fprintf(f, " r%-4u k%u", a, x);
        if (x < (uint32_t)p->n_k && p->k[x].kind == PRT_CONST_INT)
            fprintf(f, "   ; = %lld", (long long)p->k[x].i);
        break;
    case PRT_OP_ALLREDUCE_START:
    case PRT_OP_ALLREDUCE_WAIT:
    case PRT_OP_COUNT:
        break;
    }
    fputc('\n', f);
}

prt_status prt_vm_disasm(prt_context *ctx, const prt_program *p, FILE *out) {
    if (!p || !out) return prt_error(ctx, PRT_ERR_INVALID, "prt_vm_disasm: no program or file");
    print_header(out, p);
    for (int pc = 0; pc < p->n_code; pc++) print_instruction(out, p, pc);
    if (ferror(out)) return prt_error(ctx, PRT_ERR_IO, "program '%s': writing the listing failed",
                                      p->name);
    return PRT_OK;
}

/* The VM's verifier rejects every kind of malformed program with an exact
 * message naming the instruction, and the disassembler prints readable lines. */
// labels: unit
#define _POSIX_C_SOURCE 200809L

#include "tests/vm_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the verifier --------------------------------------------------------- */

static int reg_of(const prt_program *p, const char *name) {
    for (int r = 0; r < p->n_regs; r++)
        if (strcmp(p->regs[r].name, name) == 0) return r;
    ck_abort_msg("no register '%s'", name);
    return -1;
}

static int counter_reg(prt_context *ctx, prt_program *p, const char *name) {
    int r;
    ck_assert_int_eq(prt_program_add_counter(ctx, p, name, &r), PRT_OK);
    return r;
}

/* small_net compiles to: 0 CALL c1 (conv), 1 CALL r1 (relu), 2 CALL fc (linear),
 * 3 HALT. Each case corrupts one thing and writes the exact expected message. */
typedef void (*corrupt_fn)(prt_context *ctx, prt_program *p, char *want, size_t cap);

#define CASE(name) static void name(prt_context *ctx, prt_program *p, char *want, size_t cap)

CASE(bad_opcode) {
    (void)ctx;
    p->code[1] = (prt_instr)200;
    snprintf(want, cap, "program 'net': instruction 1: unknown opcode 200");
}
CASE(call_const_out_of_bounds) {
    (void)ctx;
    p->code[0] = prt_vm_ins_call(99);
    snprintf(want, cap, "program 'net': instruction 0 (CALL): constant k99 out of bounds (3 constants)");
}
CASE(call_wrong_const_kind) {
    int k = vt_kint(ctx, p, 7);
    p->code[0] = prt_vm_ins_call(k);
    snprintf(want, cap,
             "program 'net': instruction 0 (CALL): constant k%d is an integer, expected a call descriptor", k);
}
CASE(seti_wrong_const_kind) {
    int r = counter_reg(ctx, p, "i");
    p->code[0] = prt_vm_ins_seti(r, 1);
    snprintf(want, cap,
             "program 'net': instruction 0 (SETI): constant k1 is a call descriptor, expected an integer");
}
CASE(op_id_out_of_range) {
    (void)ctx;
    p->k[1].call.op = 7;
    snprintf(want, cap, "program 'net': instruction 1 (CALL 'r1'): op id 7 out of range (3 ops in the op table)");
}
CASE(input_reg_out_of_bounds) {
    (void)ctx;
    p->k[1].call.in[0] = 1000;
    snprintf(want, cap, "program 'net': instruction 1 (CALL 'r1'): input 0: register r1000 out of bounds (%d registers)",
             p->n_regs);
}
CASE(output_reg_out_of_bounds) {
    (void)ctx;
    p->k[2].call.out[0] = -1;
    snprintf(want, cap, "program 'net': instruction 2 (CALL 'fc'): output 0: register r-1 out of bounds (%d registers)",
             p->n_regs);
}
CASE(too_many_data_inputs) {
    (void)ctx;
    p->k[2].call.n_data_in = 2;
    snprintf(want, cap, "program 'net': instruction 2 (CALL 'fc'): op 'linear' takes 1 data input, got 2");
}
CASE(missing_param_operand) {
    (void)ctx;
    p->k[2].call.n_in = 2; /* drops fc.bias */
    snprintf(want, cap,
             "program 'net': instruction 2 (CALL 'fc'): op 'linear' with these attributes takes 2 parameter operands, got 1");
}
/* Lengthens an operand list the way a file loader would: the array grows too. */
static void grow_list(prt_context *ctx, int **arr, int *n, int new_n, int fill) {
    int *a = prt_realloc(ctx, *arr, (size_t)*n * sizeof(int), (size_t)new_n * sizeof(int));
    ck_assert_ptr_nonnull(a);
    for (int i = *n; i < new_n; i++) a[i] = fill;
    *arr = a;
    *n = new_n;
}

CASE(too_many_param_operands) {
    const prt_op_schema *s = prt_op_find(ctx->ops, "linear", &(int){0});
    prt_call_desc *c = &p->k[2].call;
    grow_list(ctx, &c->in, &c->n_in, 1 + s->n_params + 1, c->in[1]);
    snprintf(want, cap,
             "program 'net': instruction 2 (CALL 'fc'): op 'linear' has %d parameter slot%s, got %d parameter operands",
             s->n_params, s->n_params == 1 ? "" : "s", s->n_params + 1);
}
CASE(wrong_output_count) {
    prt_call_desc *c = &p->k[1].call;
    grow_list(ctx, &c->out, &c->n_out, 2, c->out[0]);
    snprintf(want, cap, "program 'net': instruction 1 (CALL 'r1'): op 'relu' has 1 output, got 2");
}
CASE(output_shape_disagrees) {
    (void)ctx;
    int r = reg_of(p, "r1");
    p->regs[r].shape.d[3] = 7;
    snprintf(want, cap,
             "program 'net': instruction 1 (CALL 'r1'): output 0 (r%d 'r1') has shape [2, 4, 8, 7], expected [2, 4, 8, 8]", r);
}
CASE(param_shape_disagrees) {
    (void)ctx;
    int r = reg_of(p, "c1.weight");
    p->regs[r].shape.d[0] = 5;
    snprintf(want, cap,
             "program 'net': instruction 0 (CALL 'c1'): parameter 'weight' (r%d 'c1.weight') has shape [5, 3, 3, 3], expected [4, 3, 3, 3]", r);
}
CASE(output_dtype_disagrees) {
    (void)ctx;
    int r = reg_of(p, "fc");
    p->regs[r].dtype = PRT_F64;
    snprintf(want, cap, "program 'net': instruction 2 (CALL 'fc'): output 0 (r%d 'fc') has dtype f64, expected f32", r);
}
CASE(jmp_out_of_range) {
    p->code[3] = prt_vm_ins_jmp_rel(10);
    vt_emit(ctx, p, prt_vm_ins_n(PRT_OP_HALT));
    snprintf(want, cap, "program 'net': instruction 3 (JMP): jump target 14 out of range (0..4)");
}
CASE(jmp_abs_out_of_range) {
    p->code[3] = prt_vm_ins_jmp_abs(5);
    vt_emit(ctx, p, prt_vm_ins_n(PRT_OP_HALT));
    snprintf(want, cap, "program 'net': instruction 3 (JMP): jump target 5 out of range (0..4)");
}
CASE(jmp_backward) {
    p->code[3] = prt_vm_ins_jmp_rel(-2);
    vt_emit(ctx, p, prt_vm_ins_n(PRT_OP_HALT));
    snprintf(want, cap, "program 'net': instruction 3 (JMP): backward jump to 2 (only LOOP may jump back)");
}
CASE(jmp_bad_mode) {
    p->code[3] = prt_vm_ins(PRT_OP_JMP, 2, 0);
    vt_emit(ctx, p, prt_vm_ins_n(PRT_OP_HALT));
    snprintf(want, cap, "program 'net': instruction 3 (JMP): unknown jump mode 2 (0 relative, 1 absolute)");
}
CASE(loop_out_of_range) {
    int r = counter_reg(ctx, p, "i");
    p->code[3] = prt_vm_ins_seti(r, vt_kint(ctx, p, 4));
    vt_emit(ctx, p, prt_vm_ins_loop(r, -100));
    vt_emit(ctx, p, prt_vm_ins_n(PRT_OP_HALT));
    snprintf(want, cap, "program 'net': instruction 4 (LOOP): jump target -95 out of range (0..5)");
}
CASE(loop_counter_unset) {
    int r = counter_reg(ctx, p, "i");
    p->code[3] = prt_vm_ins_loop(r, -2);
    vt_emit(ctx, p, prt_vm_ins_n(PRT_OP_HALT));
    snprintf(want, cap, "program 'net': instruction 3 (LOOP): counter r%d 'i' is read before any SETI sets it", r);
}
CASE(loop_resets_own_counter) {
    int r = counter_reg(ctx, p, "i");
    int k = vt_kint(ctx, p, 4);
    p->code[3] = prt_vm_ins_seti(r, k);
    vt_emit(ctx, p, prt_vm_ins_seti(r, k));      /* 4 */
    vt_emit(ctx, p, prt_vm_ins_loop(r, -2));     /* 5 -> 4 */
    vt_emit(ctx, p, prt_vm_ins_n(PRT_OP_HALT));
    snprintf(want, cap,
             "program 'net': instruction 4 (SETI): resets counter r%d 'i' inside the body 4..5 of the LOOP at 5, which would never end", r);
}
CASE(loops_overlap) {
    int i = counter_reg(ctx, p, "i"), j = counter_reg(ctx, p, "j");
    int k = vt_kint(ctx, p, 4);
    p->code[3] = prt_vm_ins_seti(i, k);
    vt_emit(ctx, p, prt_vm_ins_seti(j, k));      /* 4 */
    vt_emit(ctx, p, prt_vm_ins_n(PRT_OP_NOP));   /* 5 */
    vt_emit(ctx, p, prt_vm_ins_loop(i, -2));     /* 6 -> 5 */
    vt_emit(ctx, p, prt_vm_ins_loop(j, -2));     /* 7 -> 6 */
    vt_emit(ctx, p, prt_vm_ins_n(PRT_OP_HALT));
    snprintf(want, cap,
             "program 'net': instruction 7 (LOOP): loop body 6..7 overlaps the body 5..6 of the LOOP at 6 (loops must nest)");
}
CASE(no_halt) {
    (void)ctx;
    p->code[3] = prt_vm_ins_n(PRT_OP_NOP);
    snprintf(want, cap, "program 'net': instruction 3 (NOP): program does not end in HALT");
}
CASE(empty_program) {
    (void)ctx;
    p->n_code = 0;
    snprintf(want, cap, "program 'net': header: no instructions (a program ends in HALT)");
}
CASE(use_before_def) {
    (void)ctx;
    prt_instr t = p->code[0];
    p->code[0] = p->code[1];
    p->code[1] = t;
    snprintf(want, cap,
             "program 'net': instruction 0 (CALL 'r1'): input 0: r%d 'c1' is read before any instruction writes it",
             reg_of(p, "c1"));
}
CASE(writes_input) {
    (void)ctx;
    p->k[1].call.out[0] = reg_of(p, "data");
    snprintf(want, cap, "program 'net': instruction 1 (CALL 'r1'): output 0: writes r%d 'data', which is an input",
             reg_of(p, "data"));
}
CASE(writes_param) {
    (void)ctx;
    int r = reg_of(p, "c1.bias");
    p->k[1].call.out[0] = r;
    snprintf(want, cap, "program 'net': instruction 1 (CALL 'r1'): output 0: writes r%d 'c1.bias', which is a param", r);
}
CASE(counter_as_tensor) {
    int r = counter_reg(ctx, p, "i");
    p->k[1].call.in[0] = r;
    snprintf(want, cap, "program 'net': instruction 1 (CALL 'r1'): input 0: register r%d 'i' is a counter, not a tensor", r);
}
CASE(tensor_as_counter) {
    p->code[3] = prt_vm_ins_seti(reg_of(p, "data"), vt_kint(ctx, p, 1));
    vt_emit(ctx, p, prt_vm_ins_n(PRT_OP_HALT));
    snprintf(want, cap, "program 'net': instruction 3 (SETI): register r%d 'data' is an input register, not a counter",
             reg_of(p, "data"));
}
CASE(unused_field_set) {
    (void)ctx;
    p->code[3] = prt_vm_ins(PRT_OP_HALT, 5, 0);
    snprintf(want, cap, "program 'net': instruction 3 (HALT): unused field A is 5, not 0");
}
CASE(op_table_unresolved) {
    p->ops[0].id = 9999;
    snprintf(want, cap, "program 'net': op table entry 0 'conv': registry id 9999 out of range (%d ops registered)",
             prt_op_count(ctx->ops));
}
CASE(op_table_wrong_op) {
    int relu;
    prt_op_find(ctx->ops, "relu", &relu);
    p->ops[0].id = relu;
    snprintf(want, cap, "program 'net': op table entry 0 'conv': registry id %d is op 'relu'", relu);
}
CASE(attr_wrong_type) {
    const prt_op_schema *s = prt_op_find(ctx->ops, "conv", &(int){0});
    int i = prt_op_attr_index(s, "out");
    p->k[0].call.attrs[i].type = PRT_ATTR_FLOAT;
    snprintf(want, cap, "program 'net': instruction 0 (CALL 'c1'): attribute 'out' is float, expected int");
}
CASE(attr_below_min) {
    const prt_op_schema *s = prt_op_find(ctx->ops, "conv", &(int){0});
    int i = prt_op_attr_index(s, "stride");
    p->k[0].call.attrs[i].i[0] = s->attrs[i].min - 1;
    snprintf(want, cap, "program 'net': instruction 0 (CALL 'c1'): attribute 'stride' is %lld, below its minimum %lld",
             (long long)s->attrs[i].min - 1, (long long)s->attrs[i].min);
}
CASE(attr_count) {
    (void)ctx;
    const prt_op_schema *s = prt_op_find(ctx->ops, "linear", &(int){0});
    p->k[2].call.n_attrs = s->n_attrs - 1;
    snprintf(want, cap, "program 'net': instruction 2 (CALL 'fc'): op 'linear' has %d attributes, got %d", s->n_attrs,
             s->n_attrs - 1);
}
CASE(reg_bad_dtype) {
    (void)ctx;
    p->regs[0].dtype = (prt_dtype)99;
    snprintf(want, cap, "program 'net': register r0 '%s': unknown dtype 99", p->regs[0].name);
}
CASE(reg_bad_dim) {
    (void)ctx;
    int r = reg_of(p, "fc.weight");
    p->regs[r].shape.d[1] = 0;
    snprintf(want, cap, "program 'net': register r%d 'fc.weight': dimension 1 is 0 (must be positive)", r);
}
CASE(output_never_written) {
    prt_shape s = {.ndim = 1, .d = {3}};
    int r;
    ck_assert_int_eq(prt_program_add_reg(ctx, p, "ghost", PRT_REG_ACT, PRT_F32, &s, PRT_INIT_ZEROS, &r), PRT_OK);
    p->outputs[0] = r;
    snprintf(want, cap, "program 'net': output 0: r%d 'ghost' is never written", r);
}
CASE(input_list_not_input) {
    (void)ctx;
    p->inputs[0] = reg_of(p, "fc");
    snprintf(want, cap, "program 'net': input 0: register r%d 'fc' is an act register, not an input", reg_of(p, "fc"));
}
CASE(bad_batch) {
    (void)ctx;
    p->batch = 0;
    snprintf(want, cap, "program 'net': header: batch 0 is not positive");
}
CASE(unreferenced_call_checked) {
    int add, k;
    ck_assert_int_eq(prt_program_add_op(ctx, p, "add", &add), PRT_OK);
    ck_assert_int_eq(prt_program_resolve(ctx, p), PRT_OK);
    int in[2] = {reg_of(p, "c1"), reg_of(p, "fc")}, out = reg_of(p, "r1");
    ck_assert_int_eq(prt_program_add_call(ctx, p, add, "stray", in, 2, 2, &out, 1, NULL, 0, &k), PRT_OK);
    snprintf(want, cap, "program 'net': constant k%d (call 'stray'): op 'add' rejects its operand shapes: %s", k, "");
}

static const struct {
    const char *name;
    corrupt_fn fn;
} cases[] = {
#define C(f) {#f, f}
    C(bad_opcode), C(call_const_out_of_bounds), C(call_wrong_const_kind), C(seti_wrong_const_kind),
    C(op_id_out_of_range), C(input_reg_out_of_bounds), C(output_reg_out_of_bounds),
    C(too_many_data_inputs), C(missing_param_operand), C(too_many_param_operands),
    C(wrong_output_count), C(output_shape_disagrees), C(param_shape_disagrees),
    C(output_dtype_disagrees), C(jmp_out_of_range), C(jmp_abs_out_of_range), C(jmp_backward),
    C(jmp_bad_mode), C(loop_out_of_range), C(loop_counter_unset), C(loop_resets_own_counter),
    C(loops_overlap), C(no_halt), C(empty_program), C(use_before_def), C(writes_input),
    C(writes_param), C(counter_as_tensor), C(tensor_as_counter), C(unused_field_set),
    C(op_table_unresolved), C(op_table_wrong_op), C(attr_wrong_type), C(attr_below_min),
    C(attr_count), C(reg_bad_dtype), C(reg_bad_dim), C(output_never_written),
    C(input_list_not_input), C(bad_batch), C(unreferenced_call_checked),
#undef C
};
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))

START_TEST(test_verifier_rejects) {
    prt_context *ctx = tu_context();
    prt_graph *g = vt_small_net(ctx);
    prt_program *p;
    ck_assert_int_eq(prt_vm_compile(g, 2, &p), PRT_OK);
    ck_assert_int_eq(prt_vm_verify(ctx, p), PRT_OK);
    ck_assert_int_eq(p->n_code, 4);
    ck_assert_int_eq(p->n_k, 3);
    ck_assert_int_eq(p->n_ops, 3);
    char want[1024];
    cases[_i].fn(ctx, p, want, sizeof want);
    ck_assert_int_eq(prt_vm_verify(ctx, p), PRT_ERR_PROGRAM);
    if (cases[_i].fn == unreferenced_call_checked) {
        /* The op's own message follows; only the prefix is ours. */
        ck_assert_msg(strncmp(prt_last_error(ctx), want, strlen(want)) == 0, "%s: got \"%s\"",
                      cases[_i].name, prt_last_error(ctx));
        ck_assert(strlen(prt_last_error(ctx)) > strlen(want));
    } else {
        ck_assert_msg(strcmp(prt_last_error(ctx), want) == 0, "%s:\n  got  \"%s\"\n  want \"%s\"",
                      cases[_i].name, prt_last_error(ctx), want);
    }
    /* The VM refuses it the same way. */
    prt_vm *vm = NULL;
    ck_assert_int_eq(prt_vm_create(ctx, p, NULL, NULL, &vm), PRT_ERR_PROGRAM);
    ck_assert_ptr_null(vm);
    /* The disassembler copes with it. */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_int_eq(prt_vm_disasm(ctx, p, f), PRT_OK);
    fclose(f);
    free(buf);
    prt_program_destroy(ctx, p);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(test_resolve_unknown_op) {
    prt_context *ctx = tu_context();
    prt_program *p;
    int i;
    ck_assert_int_eq(prt_program_new(ctx, "loaded", 1, &p), PRT_OK);
    ck_assert_int_eq(prt_program_add_op(ctx, p, "relu", &i), PRT_OK);
    ck_assert_int_eq(i, 0);
    ck_assert_int_eq(prt_program_add_op(ctx, p, "convv", &i), PRT_OK);
    ck_assert_int_eq(i, 1);
    ck_assert_int_eq(prt_program_add_op(ctx, p, "relu", &i), PRT_OK);
    ck_assert_int_eq(i, 0);
    ck_assert_int_eq(prt_program_resolve(ctx, p), PRT_ERR_NOT_FOUND);
    ck_assert_str_eq(prt_last_error(ctx),
                     "program 'loaded': op table entry 1: unknown op 'convv' (did you mean 'conv'?)");
    prt_program_destroy(ctx, p);
    prt_context_destroy(ctx);
}
END_TEST

/* ---- the disassembler ----------------------------------------------------- */

static char *disasm(prt_context *ctx, const prt_program *p) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(prt_vm_disasm(ctx, p, f), PRT_OK);
    fclose(f);
    return buf;
}

static void assert_has_line(const char *text, const char *line) {
    size_t n = strlen(line);
    for (const char *s = text; (s = strstr(s, line)) != NULL; s++)
        if ((s == text || s[-1] == '\n') && (s[n] == '\n' || s[n] == '\0')) return;
    ck_abort_msg("listing lacks the line \"%s\":\n%s", line, text);
}

START_TEST(test_disasm_lines) {
    prt_context *ctx = tu_context();
    prt_graph *g = vt_small_net(ctx);
    prt_program *p;
    ck_assert_int_eq(prt_vm_compile(g, 2, &p), PRT_OK);
    char *text = disasm(ctx, p);
    int data = prt_graph_find_value(g, "data"), c1 = prt_graph_find_value(g, "c1"),
        w = prt_graph_find_value(g, "c1.weight"), b = prt_graph_find_value(g, "c1.bias"),
        r1 = prt_graph_find_value(g, "r1"), fc = prt_graph_find_value(g, "fc"),
        fw = prt_graph_find_value(g, "fc.weight"), fb = prt_graph_find_value(g, "fc.bias");
    char line[256];
    snprintf(line, sizeof line, "0000  CALL   k0   conv  c1  r%d r%d r%d -> r%d   ; [2,4,8,8]", data, w, b, c1);
    assert_has_line(text, line);
    snprintf(line, sizeof line, "0001  CALL   k1   relu  r1  r%d -> r%d   ; [2,4,8,8]", c1, r1);
    assert_has_line(text, line);
    snprintf(line, sizeof line, "0002  CALL   k2   linear  fc  r%d r%d r%d -> r%d   ; [2,5]", r1, fw, fb, fc);
    assert_has_line(text, line);
    assert_has_line(text, "0003  HALT");
    assert_has_line(text, "; program 'net': 4 instructions, 8 registers, 3 constants, 3 ops, batch 2");
    snprintf(line, sizeof line, ";   r%-5d input   f32  [2,3,8,8]            data", data);
    assert_has_line(text, line);
    snprintf(line, sizeof line, ";   r%-5d param   f32  [4,3,3,3]            c1.weight  (he_normal)", w);
    assert_has_line(text, line);
    snprintf(line, sizeof line, "; inputs: r%d", data);
    assert_has_line(text, line);
    snprintf(line, sizeof line, "; outputs: r%d", fc);
    assert_has_line(text, line);
    free(text);
    prt_program_destroy(ctx, p);
    prt_graph_destroy(g);

    vt_counting_prog c = vt_counting(ctx);
    int k = vt_kint(ctx, c.p, 100000);
    vt_emit(ctx, c.p, prt_vm_ins_seti(c.i, k));
    vt_emit(ctx, c.p, prt_vm_ins_jmp_rel(0));
    vt_emit(ctx, c.p, prt_vm_ins_n(PRT_OP_NOP));
    vt_emit(ctx, c.p, prt_vm_ins_loop(c.i, -2));
    vt_emit(ctx, c.p, prt_vm_ins_jmp_abs(5));
    vt_emit(ctx, c.p, prt_vm_ins_n(PRT_OP_HALT));
    ck_assert_int_eq(prt_vm_verify(ctx, c.p), PRT_OK);
    text = disasm(ctx, c.p);
    snprintf(line, sizeof line, "0000  SETI   r%-4d k%d   ; = 100000", c.i, k);
    assert_has_line(text, line);
    assert_has_line(text, "0001  JMP    +0      ; -> 0002");
    assert_has_line(text, "0002  NOP");
    snprintf(line, sizeof line, "0003  LOOP   r%-4d -2   ; -> 0002", c.i);
    assert_has_line(text, line);
    assert_has_line(text, "0004  JMP    @5");
    snprintf(line, sizeof line, ";   k%-5d int     100000", k);
    assert_has_line(text, line);
    free(text);
    prt_program_destroy(ctx, c.p);
    prt_context_destroy(ctx);
}
END_TEST


static Suite *vm_verify_suite(void) {
    Suite *s = suite_create("vm_verify");
    TCase *t = tcase_create("verify");
    tcase_add_loop_test(t, test_verifier_rejects, 0, N_CASES);
    tcase_add_test(t, test_resolve_unknown_op);
    tcase_add_test(t, test_disasm_lines);
    suite_add_tcase(s, t);
    return s;
}

int main(void) { return tu_run(vm_verify_suite()); }

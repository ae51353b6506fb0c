/* Gradient buckets as the code states them (vm/buckets.c): the table
 * prt_program_buckets derives from ALLREDUCE_START/ALLREDUCE_WAIT, every rule
 * it enforces with its exact message, the verifier and the VM refusing the same
 * programs, the disassembler's lines, the program hash, and a bucketed program
 * running with no communicator exactly like the same program without buckets. */
// labels: unit
#define _POSIX_C_SOURCE 200809L

#include "tests/vm_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a tiny training program ---------------------------------------------
 *
 * Registers, all f32 [2,3] but the counter: input x; params w, v, u; acts y
 * (forward), gw, gv, gu (gradient-like), z (a scratch act); momentum states
 * mw, mv, mu. Call constants (all valid, so the verifier passes every one that
 * no instruction references):
 *   fwd      y  = mul(x, w)
 *   grad_w   gw = mul(y, x)
 *   grad_v   gv = add(y, x)
 *   grad_u   gu = mul(x, x)
 *   update0  sgd [w, gw, mw]                  (bucket 0)
 *   update1  sgd [v, u, gv, gu, mv, mu]       (bucket 1)
 *   peek     z  = add(gw, x)                  reads gw
 *   rewrite  gw = add(y, y)                   writes gw again
 *   act      z  = relu(y)                     not an update
 *   badorder sgd [gw, w, mw]                  gradient before parameter
 *   fromin   sgd [w, x, mw]                   the "gradient" is an input
 *   twice    sgd [v, gw, mv]                  gw again, in another bucket */
typedef struct bprog {
    prt_program *p;
    int x, w, v, u, y, gw, gv, gu, z, mw, mv, mu, i;
    int fwd, grad_w, grad_v, grad_u, update0, update1, peek, rewrite, act, badorder, fromin, twice;
} bprog;

/* Instructions of a case, written as a list ending in END. */
enum { END = -1000, START0 = -1, START1 = -2, WAIT0 = -3, WAIT1 = -4, NOP = -5, SETI2 = -6, LOOP3 = -7, JMP1 = -8 };

static int reg(prt_context *ctx, prt_program *p, const char *name, prt_reg_kind kind, prt_init_kind init) {
    prt_shape s = {.ndim = 2, .d = {2, 3}};
    int r;
    ck_assert_int_eq(prt_program_add_reg(ctx, p, name, kind, PRT_F32, &s, init, &r), PRT_OK);
    return r;
}

static int call(prt_context *ctx, prt_program *p, const char *op, const char *node, const int *in, int n_in,
                const int *out, int n_out, double lr) {
    int o, k;
    ck_assert_int_eq(prt_program_add_op(ctx, p, op, &o), PRT_OK);
    const prt_op_schema *s = vt_op(ctx, op, NULL);
    prt_attr a[32];
    ck_assert_int_le(s->n_attrs, (int)(sizeof a / sizeof a[0]));
    vt_attrs_default(s, a);
    if (prt_op_attr_index(s, "lr") >= 0) vt_set_float(s, a, "lr", lr);
    ck_assert_int_eq(prt_program_add_call(ctx, p, o, node, in, n_in, n_in, out, n_out, a, s->n_attrs, &k), PRT_OK);
    return k;
}

/* The registers and constants, then the code: the list's CALL entries are call
 * constants, the negative entries the other instructions. */
typedef const int *(*code_fn)(const bprog *b);

static bprog build(prt_context *ctx, code_fn code_of, double lr) {
    bprog b;
    ck_assert_int_eq(prt_program_new(ctx, "dp", 2, &b.p), PRT_OK);
    prt_program *p = b.p;
    b.x = reg(ctx, p, "x", PRT_REG_INPUT, PRT_INIT_ZEROS);
    b.w = reg(ctx, p, "w", PRT_REG_PARAM, PRT_INIT_ONES);
    b.v = reg(ctx, p, "v", PRT_REG_PARAM, PRT_INIT_ONES);
    b.u = reg(ctx, p, "u", PRT_REG_PARAM, PRT_INIT_ONES);
    b.y = reg(ctx, p, "y", PRT_REG_ACT, PRT_INIT_ZEROS);
    b.gw = reg(ctx, p, "gw", PRT_REG_ACT, PRT_INIT_ZEROS);
    b.gv = reg(ctx, p, "gv", PRT_REG_ACT, PRT_INIT_ZEROS);
    b.gu = reg(ctx, p, "gu", PRT_REG_ACT, PRT_INIT_ZEROS);
    b.z = reg(ctx, p, "z", PRT_REG_ACT, PRT_INIT_ZEROS);
    b.mw = reg(ctx, p, "mw", PRT_REG_STATE, PRT_INIT_ZEROS);
    b.mv = reg(ctx, p, "mv", PRT_REG_STATE, PRT_INIT_ZEROS);
    b.mu = reg(ctx, p, "mu", PRT_REG_STATE, PRT_INIT_ZEROS);
    ck_assert_int_eq(prt_program_add_counter(ctx, p, "i", &b.i), PRT_OK);
    b.fwd = call(ctx, p, "mul", "fwd", (int[]){b.x, b.w}, 2, &b.y, 1, lr);
    b.grad_w = call(ctx, p, "mul", "grad_w", (int[]){b.y, b.x}, 2, &b.gw, 1, lr);
    b.grad_v = call(ctx, p, "add", "grad_v", (int[]){b.y, b.x}, 2, &b.gv, 1, lr);
    b.grad_u = call(ctx, p, "mul", "grad_u", (int[]){b.x, b.x}, 2, &b.gu, 1, lr);
    b.update0 = call(ctx, p, "sgd", "update0", (int[]){b.w, b.gw, b.mw}, 3, NULL, 0, lr);
    b.update1 = call(ctx, p, "sgd", "update1", (int[]){b.v, b.u, b.gv, b.gu, b.mv, b.mu}, 6, NULL, 0, lr);
    b.peek = call(ctx, p, "add", "peek", (int[]){b.gw, b.x}, 2, &b.z, 1, lr);
    b.rewrite = call(ctx, p, "add", "rewrite", (int[]){b.y, b.y}, 2, &b.gw, 1, lr);
    b.act = call(ctx, p, "relu", "act", (int[]){b.y}, 1, &b.z, 1, lr);
    b.badorder = call(ctx, p, "sgd", "badorder", (int[]){b.gw, b.w, b.mw}, 3, NULL, 0, lr);
    b.fromin = call(ctx, p, "sgd", "fromin", (int[]){b.w, b.x, b.mw}, 3, NULL, 0, lr);
    b.twice = call(ctx, p, "sgd", "twice", (int[]){b.v, b.gw, b.mv}, 3, NULL, 0, lr);
    ck_assert_int_eq(prt_program_resolve(ctx, p), PRT_OK);
    ck_assert_int_eq(prt_program_set_io(ctx, p, &b.x, 1, &b.y, 1), PRT_OK);
    int two = vt_kint(ctx, p, 2);
    for (const int *c = code_of(&b); *c != END; c++) {
        prt_instr ins = *c == START0 ? prt_vm_ins_allreduce_start(0)
                        : *c == START1 ? prt_vm_ins_allreduce_start(1)
                        : *c == WAIT0  ? prt_vm_ins_allreduce_wait(0)
                        : *c == WAIT1  ? prt_vm_ins_allreduce_wait(1)
                        : *c == NOP    ? prt_vm_ins_n(PRT_OP_NOP)
                        : *c == SETI2  ? prt_vm_ins_seti(b.i, two)
                        : *c == LOOP3  ? prt_vm_ins_loop(b.i, -3)
                        : *c == JMP1   ? prt_vm_ins_jmp_rel(1)
                                       : prt_vm_ins_call(*c);
        vt_emit(ctx, p, ins);
    }
    vt_emit(ctx, p, prt_vm_ins_n(PRT_OP_HALT));
    return b;
}

/* Code lists. A static buffer per list keeps them simple: one build at a time. */
#define CODE(name, ...)                                                                                               \
    static const int *name(const bprog *b) {                                                                          \
        static int c[64];                                                                                             \
        const int src[] = {__VA_ARGS__, END};                                                                         \
        memcpy(c, src, sizeof src);                                                                                   \
        return c;                                                                                                     \
    }

/*  0 fwd, 1 grad_w, 2 START 0, 3 grad_v, 4 grad_u, 5 START 1, 6 WAIT 0, 7 update0, 8 WAIT 1, 9 update1, 10 HALT */
CODE(valid, b->fwd, b->grad_w, START0, b->grad_v, b->grad_u, START1, WAIT0, b->update0, WAIT1, b->update1)
/* the same without the allreduce instructions */
CODE(plain, b->fwd, b->grad_w, b->grad_v, b->grad_u, b->update0, b->update1)
/* grad_v and grad_u swapped */
CODE(swapped, b->fwd, b->grad_w, START0, b->grad_u, b->grad_v, START1, WAIT0, b->update0, WAIT1, b->update1)
/* gw read after its WAIT and update, and both buckets in flight at once */
CODE(valid_late_read, b->fwd, b->grad_w, b->grad_v, b->grad_u, START0, START1, WAIT1, b->update1, WAIT0, b->update0,
     b->peek)

CODE(out_of_order, b->fwd, b->grad_w, START1, b->grad_v, b->grad_u, START0, WAIT0, b->update0, WAIT1, b->update1)
CODE(wait_before_start, b->fwd, b->grad_w, b->grad_v, b->grad_u, WAIT0, b->update0, START0, START1, WAIT1,
     b->update1)
CODE(wait_twice, b->fwd, b->grad_w, START0, b->grad_v, b->grad_u, START1, WAIT0, b->update0, WAIT0, b->update0,
     WAIT1, b->update1)
CODE(never_waited, b->fwd, b->grad_w, START0, b->grad_v, b->grad_u, START1, WAIT0, b->update0, b->update1)
CODE(wait_then_nop, b->fwd, b->grad_w, START0, b->grad_v, b->grad_u, START1, WAIT0, NOP, b->update0, WAIT1,
     b->update1)
CODE(wait_last, b->fwd, b->grad_w, START0, b->grad_v, b->grad_u, START1, WAIT1, b->update1, b->update0, WAIT0)
CODE(wait_then_relu, b->fwd, b->grad_w, START0, b->grad_v, b->grad_u, START1, WAIT0, b->act, b->update0, WAIT1,
     b->update1)
CODE(wait_then_badorder, b->fwd, b->grad_w, START0, b->grad_v, b->grad_u, START1, WAIT0, b->badorder, WAIT1,
     b->update1)
CODE(wait_then_fromin, b->fwd, b->grad_w, START0, b->grad_v, b->grad_u, START1, WAIT0, b->fromin, WAIT1, b->update1)
CODE(written_after_start, b->fwd, b->grad_w, START0, b->rewrite, b->grad_v, b->grad_u, START1, WAIT0, b->update0,
     WAIT1, b->update1)
CODE(written_after_update, b->fwd, b->grad_w, START0, b->grad_v, b->grad_u, START1, WAIT0, b->update0, WAIT1,
     b->update1, b->rewrite)
CODE(read_in_flight, b->fwd, b->grad_w, START0, b->peek, b->grad_v, b->grad_u, START1, WAIT0, b->update0, WAIT1,
     b->update1)
CODE(two_buckets, b->fwd, b->grad_w, START0, b->grad_v, START1, WAIT0, b->update0, WAIT1, b->twice)

static void check_table(const prt_bucket_table *t, const bprog *b) {
    ck_assert_int_eq(t->n, 2);
    ck_assert_int_eq(t->b[0].start_pc, 2);
    ck_assert_int_eq(t->b[0].wait_pc, 6);
    ck_assert_int_eq(t->b[0].update_k, b->update0);
    ck_assert_int_eq(t->b[0].n_regs, 1);
    ck_assert_int_eq(t->b[0].regs[0], b->gw);
    ck_assert_int_eq(t->b[0].count, 6);
    ck_assert_int_eq(t->b[1].start_pc, 5);
    ck_assert_int_eq(t->b[1].wait_pc, 8);
    ck_assert_int_eq(t->b[1].update_k, b->update1);
    ck_assert_int_eq(t->b[1].n_regs, 2);
    ck_assert_int_eq(t->b[1].regs[0], b->gv);
    ck_assert_int_eq(t->b[1].regs[1], b->gu);
    ck_assert_int_eq(t->b[1].count, 12);
}

START_TEST(test_valid_table) {
    prt_context *ctx = tu_context();
    bprog b = build(ctx, valid, 0.1);
    ck_assert_int_eq(b.p->n_code, 11);
    ck_assert_msg(prt_vm_verify(ctx, b.p) == PRT_OK, "%s", prt_last_error(ctx));
    prt_bucket_table t = {.n = 99};
    ck_assert_msg(prt_program_buckets(ctx, b.p, &t) == PRT_OK, "%s", prt_last_error(ctx));
    check_table(&t, &b);
    prt_bucket_table_free(ctx, &t);
    ck_assert_int_eq(t.n, 0);
    ck_assert_ptr_null(t.b);
    prt_bucket_table_free(ctx, NULL);
    prt_program_destroy(ctx, b.p);

    /* without the instructions: no buckets */
    b = build(ctx, plain, 0.1);
    ck_assert_msg(prt_vm_verify(ctx, b.p) == PRT_OK, "%s", prt_last_error(ctx));
    t.n = 99;
    ck_assert_int_eq(prt_program_buckets(ctx, b.p, &t), PRT_OK);
    ck_assert_int_eq(t.n, 0);
    prt_bucket_table_free(ctx, &t);
    prt_program_destroy(ctx, b.p);

    /* buckets may be in flight together and waited in another order; a gradient
     * may be read once its bucket is waited for */
    b = build(ctx, valid_late_read, 0.1);
    ck_assert_msg(prt_vm_verify(ctx, b.p) == PRT_OK, "%s", prt_last_error(ctx));
    ck_assert_int_eq(prt_program_buckets(ctx, b.p, &t), PRT_OK);
    ck_assert_int_eq(t.n, 2);
    ck_assert_int_eq(t.b[0].start_pc, 4);
    ck_assert_int_eq(t.b[0].wait_pc, 8);
    ck_assert_int_eq(t.b[1].start_pc, 5);
    ck_assert_int_eq(t.b[1].wait_pc, 6);
    prt_bucket_table_free(ctx, &t);
    prt_program_destroy(ctx, b.p);
    prt_context_destroy(ctx);
}
END_TEST

/* With no communicator the allreduce instructions do nothing: two steps of the
 * bucketed program leave every parameter, state and output bit-identical to the
 * program without them (and the parameters did move). */
START_TEST(test_run_without_comm) {
    prt_context *ctx = tu_context();
    bprog bb = build(ctx, valid, 0.1), bp = build(ctx, plain, 0.1);
    prt_vm_options o = {.comm = NULL};
    prt_vm *vb, *vp;
    ck_assert_msg(prt_vm_create(ctx, bb.p, prt_cpu_device(ctx), &o, &vb) == PRT_OK, "%s", prt_last_error(ctx));
    ck_assert_msg(prt_vm_create(ctx, bp.p, prt_cpu_device(ctx), &o, &vp) == PRT_OK, "%s", prt_last_error(ctx));
    ck_assert_int_eq(vb->buckets.n, 2);
    ck_assert_int_eq(vp->buckets.n, 0);
    for (int step = 0; step < 2; step++) {
        vt_fill_input(vb, 0, 77 + (uint64_t)step);
        vt_fill_input(vp, 0, 77 + (uint64_t)step);
        ck_assert_msg(prt_vm_run(vb) == PRT_OK, "%s", prt_last_error(ctx));
        ck_assert_msg(prt_vm_run(vp) == PRT_OK, "%s", prt_last_error(ctx));
    }
    const char *names[] = {"w", "v", "u", "mw", "mv", "mu"};
    for (size_t n = 0; n < sizeof names / sizeof names[0]; n++) {
        const prt_tensor *a = prt_vm_find(vb, names[n]), *c = prt_vm_find(vp, names[n]);
        ck_assert_ptr_nonnull(a);
        ck_assert_ptr_nonnull(c);
        ck_assert_msg(memcmp(PRT_F32P(a), PRT_F32P(c), 6 * sizeof(float)) == 0, "'%s' differs", names[n]);
    }
    ck_assert_msg(memcmp(PRT_F32P(prt_vm_output(vb, 0)), PRT_F32P(prt_vm_output(vp, 0)), 6 * sizeof(float)) == 0,
                  "output y differs");
    int moved = 0;
    for (int k = 0; k < 6; k++) moved += PRT_F32P(prt_vm_find(vb, "w"))[k] != 1.0f;
    ck_assert_int_gt(moved, 0);
    moved = 0;
    for (int k = 0; k < 6; k++) moved += PRT_F32P(prt_vm_find(vb, "u"))[k] != 1.0f;
    ck_assert_int_gt(moved, 0);
    prt_vm_destroy(vb);
    prt_vm_destroy(vp);
    prt_program_destroy(ctx, bb.p);
    prt_program_destroy(ctx, bp.p);
    prt_context_destroy(ctx);
}
END_TEST

/* ---- rejections ------------------------------------------------------------- */

typedef void (*want_fn)(const bprog *b, char *want, size_t cap);

static void w_out_of_order(const bprog *b, char *w, size_t n) {
    (void)b;
    snprintf(w, n, "program 'dp': instruction 2 (ALLREDUCE_START 1): buckets start in order 0, 1, 2, ...: "
                   "expected bucket 0");
}
static void w_wait_before_start(const bprog *b, char *w, size_t n) {
    (void)b;
    snprintf(w, n, "program 'dp': instruction 4 (ALLREDUCE_WAIT 0): bucket 0 is waited for before its "
                   "ALLREDUCE_START");
}
static void w_wait_twice(const bprog *b, char *w, size_t n) {
    (void)b;
    snprintf(w, n, "program 'dp': instruction 8 (ALLREDUCE_WAIT 0): bucket 0 is already waited for at instruction 6");
}
static void w_never_waited(const bprog *b, char *w, size_t n) {
    (void)b;
    snprintf(w, n, "program 'dp': instruction 5 (ALLREDUCE_START 1): bucket 1 is started but never waited for");
}
static void w_wait_then_nop(const bprog *b, char *w, size_t n) {
    (void)b;
    snprintf(w, n, "program 'dp': instruction 6 (ALLREDUCE_WAIT 0): must be followed by the CALL of the optimizer "
                   "update that reads the bucket");
}
static void w_wait_last(const bprog *b, char *w, size_t n) {
    (void)b;
    snprintf(w, n, "program 'dp': instruction 9 (ALLREDUCE_WAIT 0): must be followed by the CALL of the optimizer "
                   "update that reads the bucket");
}
static void w_wait_then_relu(const bprog *b, char *w, size_t n) {
    (void)b;
    snprintf(w, n, "program 'dp': instruction 6 (ALLREDUCE_WAIT 0): is followed by CALL 'act' (relu), not by an "
                   "optimizer update");
}
static void w_wait_then_badorder(const bprog *b, char *w, size_t n) {
    (void)b;
    snprintf(w, n, "program 'dp': instruction 6 (ALLREDUCE_WAIT 0): update 'badorder' does not take parameters "
                   "followed by their gradients");
}
static void w_wait_then_fromin(const bprog *b, char *w, size_t n) {
    snprintf(w, n, "program 'dp': instruction 6 (ALLREDUCE_WAIT 0): gradient input 0 of update 'fromin' (r%d 'x') "
                   "is not an f32 activation", b->x);
}
static void w_written_after_start(const bprog *b, char *w, size_t n) {
    (void)b;
    snprintf(w, n, "program 'dp': instruction 3 ('rewrite') writes gradient 'gw' of bucket 0 after its "
                   "ALLREDUCE_START (instruction 2)");
}
static void w_written_after_update(const bprog *b, char *w, size_t n) {
    (void)b;
    snprintf(w, n, "program 'dp': instruction 10 ('rewrite') writes gradient 'gw' of bucket 0 after its "
                   "ALLREDUCE_START (instruction 2)");
}
static void w_read_in_flight(const bprog *b, char *w, size_t n) {
    (void)b;
    snprintf(w, n, "program 'dp': instruction 3 ('peek') reads gradient 'gw' of bucket 0 while it is being reduced "
                   "(instructions 2 to 7)");
}
static void w_two_buckets(const bprog *b, char *w, size_t n) {
    snprintf(w, n, "program 'dp': instruction 7 (ALLREDUCE_WAIT 1): gradient r%d 'gw' is already in bucket 0", b->gw);
}

static const struct {
    const char *name;
    code_fn code;
    want_fn want;
} rejects[] = {
#define R(f) {#f, f, w_##f}
    R(out_of_order),      R(wait_before_start),  R(wait_twice),         R(never_waited),
    R(wait_then_nop),     R(wait_last),          R(wait_then_relu),     R(wait_then_badorder),
    R(wait_then_fromin),  R(written_after_start), R(written_after_update), R(read_in_flight),
    R(two_buckets),
#undef R
};
#define N_REJECTS ((int)(sizeof rejects / sizeof rejects[0]))

/* prt_program_buckets, the verifier and the VM all refuse, with one message. */
START_TEST(test_rejects) {
    prt_context *ctx = tu_context();
    bprog b = build(ctx, rejects[_i].code, 0.1);
    char want[768];
    rejects[_i].want(&b, want, sizeof want);
    prt_bucket_table t = {.n = 99};
    ck_assert_int_eq(prt_program_buckets(ctx, b.p, &t), PRT_ERR_PROGRAM);
    ck_assert_msg(strcmp(prt_last_error(ctx), want) == 0, "%s (buckets):\n  got  \"%s\"\n  want \"%s\"",
                  rejects[_i].name, prt_last_error(ctx), want);
    ck_assert_int_eq(t.n, 0);
    ck_assert_ptr_null(t.b);
    ck_assert_int_eq(prt_vm_verify(ctx, b.p), PRT_ERR_PROGRAM);
    ck_assert_msg(strcmp(prt_last_error(ctx), want) == 0, "%s (verify):\n  got  \"%s\"\n  want \"%s\"",
                  rejects[_i].name, prt_last_error(ctx), want);
    prt_vm *vm = NULL;
    ck_assert_int_eq(prt_vm_create(ctx, b.p, NULL, NULL, &vm), PRT_ERR_PROGRAM);
    ck_assert_ptr_null(vm);
    ck_assert_str_eq(prt_last_error(ctx), want);
    prt_program_destroy(ctx, b.p);
    prt_context_destroy(ctx);
}
END_TEST

/* Jumps that take part of a bucket: a jump must repeat or skip all of a
 * bucket's START, WAIT and update, or none of them. */
/*  0 fwd, 1 SETI, 2 grad_w, 3 START 0, 4 LOOP -> 2, 5 WAIT 0, 6 update0: the
 *  second pass writes gw while bucket 0 is being reduced, and starts it twice */
CODE(loop_splits_bucket, b->fwd, SETI2, b->grad_w, START0, LOOP3, WAIT0, b->update0)
/*  0 fwd, 1 grad_w, 2 JMP +1, 3 START 0, 4 WAIT 0, 5 update0: START never runs,
 *  WAIT waits for nothing and the update reads unreduced gradients */
CODE(jmp_skips_start, b->fwd, b->grad_w, JMP1, START0, WAIT0, b->update0)

static void w_loop_splits_bucket(const bprog *b, char *w, size_t n) {
    (void)b;
    snprintf(w, n, "program 'dp': instruction 4 (LOOP) repeats instructions 2 to 4, which hold part of bucket 0 "
                   "(ALLREDUCE_START at 3, ALLREDUCE_WAIT at 5, update at 6): a jump must take all of a bucket or "
                   "none of it");
}
static void w_jmp_skips_start(const bprog *b, char *w, size_t n) {
    (void)b;
    snprintf(w, n, "program 'dp': instruction 2 (JMP) skips instructions 3 to 3, which hold part of bucket 0 "
                   "(ALLREDUCE_START at 3, ALLREDUCE_WAIT at 4, update at 5): a jump must take all of a bucket or "
                   "none of it");
}
static const struct {
    const char *name;
    code_fn code;
    want_fn want;
} jump_rejects[] = {{"loop_splits_bucket", loop_splits_bucket, w_loop_splits_bucket},
                    {"jmp_skips_start", jmp_skips_start, w_jmp_skips_start}};

START_TEST(test_jump_rejects) {
    prt_context *ctx = tu_context();
    bprog b = build(ctx, jump_rejects[_i].code, 0.1);
    char want[768];
    jump_rejects[_i].want(&b, want, sizeof want);
    ck_assert_int_eq(prt_vm_verify(ctx, b.p), PRT_ERR_PROGRAM);
    ck_assert_msg(strcmp(prt_last_error(ctx), want) == 0, "%s:\n  got  \"%s\"\n  want \"%s\"",
                  jump_rejects[_i].name, prt_last_error(ctx), want);
    prt_program_destroy(ctx, b.p);
    prt_context_destroy(ctx);
}
END_TEST

/* A gradient of another dtype: the verifier would stop at the producing call's
 * dtype first, so the rule is checked on prt_program_buckets directly. */
START_TEST(test_non_f32_gradient) {
    prt_context *ctx = tu_context();
    bprog b = build(ctx, valid, 0.1);
    b.p->regs[b.gu].dtype = PRT_F64;
    prt_bucket_table t;
    ck_assert_int_eq(prt_program_buckets(ctx, b.p, &t), PRT_ERR_PROGRAM);
    char want[256];
    snprintf(want, sizeof want, "program 'dp': instruction 8 (ALLREDUCE_WAIT 1): gradient input 1 of update 'update1' "
                                "(r%d 'gu') is not an f32 activation", b.gu);
    ck_assert_str_eq(prt_last_error(ctx), want);
    ck_assert_int_eq(t.n, 0);
    prt_program_destroy(ctx, b.p);
    prt_context_destroy(ctx);
}
END_TEST

/* Format B uses A only: X must be 0, on either instruction. */
START_TEST(test_unused_x) {
    prt_context *ctx = tu_context();
    for (int which = 0; which < 2; which++) {
        bprog b = build(ctx, valid, 0.1);
        int pc = which == 0 ? 2 : 8;
        b.p->code[pc] = prt_vm_ins(which == 0 ? PRT_OP_ALLREDUCE_START : PRT_OP_ALLREDUCE_WAIT, (uint32_t)which, 3);
        ck_assert_int_eq(prt_vm_verify(ctx, b.p), PRT_ERR_PROGRAM);
        char want[256];
        snprintf(want, sizeof want, "program 'dp': instruction %d (%s): unused field X is 3, not 0", pc,
                 which == 0 ? "ALLREDUCE_START" : "ALLREDUCE_WAIT");
        ck_assert_str_eq(prt_last_error(ctx), want);
        prt_program_destroy(ctx, b.p);
    }
    prt_context_destroy(ctx);
}
END_TEST

/* ---- the disassembler and the hash ------------------------------------------ */

static void assert_has_line(const char *text, const char *line) {
    size_t n = strlen(line);
    for (const char *s = text; (s = strstr(s, line)) != NULL; s++)
        if ((s == text || s[-1] == '\n') && (s[n] == '\n' || s[n] == '\0')) return;
    ck_abort_msg("listing lacks the line \"%s\":\n%s", line, text);
}

START_TEST(test_disasm) {
    prt_context *ctx = tu_context();
    bprog b = build(ctx, valid, 0.1);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(prt_vm_disasm(ctx, b.p, f), PRT_OK);
    fclose(f);
    assert_has_line(buf, "0002  ALLREDUCE_START bucket 0");
    assert_has_line(buf, "0005  ALLREDUCE_START bucket 1");
    assert_has_line(buf, "0006  ALLREDUCE_WAIT bucket 0");
    assert_has_line(buf, "0008  ALLREDUCE_WAIT bucket 1");
    assert_has_line(buf, "0010  HALT");
    free(buf);
    prt_program_destroy(ctx, b.p);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(test_hash) {
    prt_context *ctx = tu_context();
    bprog a = build(ctx, valid, 0.1), b = build(ctx, valid, 0.1);
    uint64_t h = prt_program_hash(a.p);
    ck_assert_uint_eq(prt_program_hash(b.p), h);
    ck_assert_uint_eq(prt_program_hash(a.p), h); /* no hidden state */

    /* a bucket number */
    b.p->code[5] = prt_vm_ins_allreduce_start(0);
    ck_assert_uint_ne(prt_program_hash(b.p), h);
    b.p->code[5] = prt_vm_ins_allreduce_start(1);
    ck_assert_uint_eq(prt_program_hash(b.p), h);
    /* a register's shape */
    b.p->regs[b.gu].shape.d[1] = 4;
    ck_assert_uint_ne(prt_program_hash(b.p), h);
    b.p->regs[b.gu].shape.d[1] = 3;
    ck_assert_uint_eq(prt_program_hash(b.p), h);
    prt_program_destroy(ctx, b.p);

    /* the order of two instructions */
    b = build(ctx, swapped, 0.1);
    ck_assert_msg(prt_vm_verify(ctx, b.p) == PRT_OK, "%s", prt_last_error(ctx));
    ck_assert_uint_ne(prt_program_hash(b.p), h);
    prt_program_destroy(ctx, b.p);

    /* an attribute (the learning rate of every update) */
    b = build(ctx, valid, 0.2);
    ck_assert_uint_ne(prt_program_hash(b.p), h);
    prt_program_destroy(ctx, b.p);

    /* the same program without its buckets */
    b = build(ctx, plain, 0.1);
    ck_assert_uint_ne(prt_program_hash(b.p), h);
    prt_program_destroy(ctx, b.p);
    prt_program_destroy(ctx, a.p);
    prt_context_destroy(ctx);
}
END_TEST

static Suite *vm_buckets_suite(void) {
    Suite *s = suite_create("vm_buckets");
    TCase *t = tcase_create("buckets");
    tcase_add_test(t, test_valid_table);
    tcase_add_test(t, test_run_without_comm);
    tcase_add_loop_test(t, test_rejects, 0, N_REJECTS);
    tcase_add_loop_test(t, test_jump_rejects, 0, 2);
    tcase_add_test(t, test_non_f32_gradient);
    tcase_add_test(t, test_unused_x);
    tcase_add_test(t, test_disasm);
    tcase_add_test(t, test_hash);
    suite_add_tcase(s, t);
    return s;
}

int main(void) { return tu_run(vm_buckets_suite()); }

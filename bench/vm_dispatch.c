/* VM dispatch cost: nanoseconds per instruction on programs of 100,000 trivial
 * instructions, for both dispatch loops (computed goto and switch): 100,000 NOPs;
 * SETI n; NOP; LOOP back (100,000 iterations, 200,002 instructions); 100,000
 * CALLs of a kernel that does nothing (the VM's own cost of a call), and the same
 * driven by LOOP; 100,000 CALLs of `scale` on a 1-element tensor, reference and
 * fast kernels (what a real smallest kernel adds). Each figure is the median of
 * 21 runs after 3 warm-up runs.
 *
 *     build/bench/vm_dispatch             # a table
 *     build/bench/vm_dispatch --markdown "machine" "date"   # rows for bench/RESULTS.md
 */
#include "vm/vm_impl.h"

#include <stdlib.h>
#include <string.h>

#define N_INSTR 100000
#define N_RUNS 21
#define N_WARM 3

static void die(prt_context *ctx, const char *what) {
    fprintf(stderr, "vm_dispatch: %s: %s\n", what, ctx ? prt_last_error(ctx) : "");
    exit(1);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef prt_status (*run_fn)(prt_vm *);

/* Median ns per executed instruction. */
static double time_runs(prt_context *ctx, prt_vm *vm, run_fn run, int64_t executed) {
    double t[N_RUNS];
    for (int i = 0; i < N_WARM; i++)
        if (run(vm) != PRT_OK) die(ctx, "run");
    for (int i = 0; i < N_RUNS; i++) {
        double t0 = prt_now();
        if (run(vm) != PRT_OK) die(ctx, "run");
        t[i] = (prt_now() - t0) * 1e9 / (double)executed;
    }
    qsort(t, N_RUNS, sizeof t[0], cmp_double);
    return t[N_RUNS / 2];
}

/* A kernel that does nothing: CALL programs with it measure what the VM itself
 * spends on a call (descriptor, indirect call, status check). */
static prt_status noop_infer(prt_infer_ctx *ic) {
    ic->out[0] = ic->in[0];
    return PRT_OK;
}
static prt_status noop_run(const prt_kernel_call *c) {
    (void)c;
    return PRT_OK;
}
static const prt_op_schema bench_noop = {
    .name = "bench_noop", .doc = "does nothing (dispatch benchmark)", .min_in = 1, .max_in = 1,
    .n_out = 1, .infer = noop_infer, .inplace_in = -1, .ref = {.run = noop_run},
};

/* Registers x (input) and y (act), both [1], and a call constant y = op(x). */
static int add_call(prt_context *ctx, prt_program *p, const char *opname) {
    prt_shape one = {.ndim = 1, .d = {1}};
    int x, y, op, k, id;
    if (prt_program_add_reg(ctx, p, "x", PRT_REG_INPUT, PRT_F32, &one, PRT_INIT_ZEROS, &x) ||
        prt_program_add_reg(ctx, p, "y", PRT_REG_ACT, PRT_F32, &one, PRT_INIT_ZEROS, &y) ||
        prt_program_add_op(ctx, p, opname, &op) || prt_program_resolve(ctx, p))
        die(ctx, "building");
    const prt_op_schema *s = prt_op_find(ctx->ops, opname, &id);
    prt_attr attrs[8];
    if (!s || s->n_attrs > 8) die(ctx, opname);
    for (int i = 0; i < s->n_attrs; i++) {
        attrs[i] = s->attrs[i].def;
        attrs[i].type = s->attrs[i].type;
    }
    int by = prt_op_attr_index(s, "by");
    if (by >= 0) {
        attrs[by].f = 2.0;
        attrs[by].set = true;
    }
    if (prt_program_add_call(ctx, p, op, opname, &x, 1, 1, &y, 1, attrs, s->n_attrs, &k) ||
        prt_program_set_io(ctx, p, &x, 1, &y, 1))
        die(ctx, "building");
    return k;
}

typedef struct bench_prog {
    const char *name;
    const char *op;   /* NULL: the body is a NOP */
    bool reference;   /* run the op's reference kernel */
    bool looped;      /* SETI n; body; LOOP back   instead of n bodies in a row */
} bench_prog;

static const bench_prog progs[] = {
    {"nop", NULL, false, false},
    {"loop (NOP body)", NULL, false, true},
    {"call (no-op kernel)", "bench_noop", true, false},
    {"loop (CALL no-op kernel)", "bench_noop", true, true},
    {"call (scale [1], reference kernel)", "scale", true, false},
    {"call (scale [1], fast kernel)", "scale", false, false},
};
#define N_PROGS ((int)(sizeof progs / sizeof progs[0]))

static prt_program *build(prt_context *ctx, const bench_prog *b, int64_t *executed) {
    prt_program *p;
    if (prt_program_new(ctx, b->name, 1, &p)) die(ctx, "program");
    int k = -1, r, n;
    if (b->op) k = add_call(ctx, p, b->op);
    else if (prt_program_set_io(ctx, p, NULL, 0, NULL, 0)) die(ctx, "io");
    prt_instr body = b->op ? prt_vm_ins_call(k) : prt_vm_ins_n(PRT_OP_NOP);
    prt_status st = PRT_OK;
    if (!b->looped) {
        for (int i = 0; i < N_INSTR && st == PRT_OK; i++) st = prt_program_emit(ctx, p, body, NULL);
        *executed = N_INSTR + 1;
    } else {
        st = prt_program_add_counter(ctx, p, "i", &r);
        if (st == PRT_OK) st = prt_program_add_int(ctx, p, N_INSTR, &n);
        if (st == PRT_OK) st = prt_program_emit(ctx, p, prt_vm_ins_seti(r, n), NULL);
        if (st == PRT_OK) st = prt_program_emit(ctx, p, body, NULL);
        if (st == PRT_OK) st = prt_program_emit(ctx, p, prt_vm_ins_loop(r, -2), NULL);
        *executed = 2 + 2 * (int64_t)N_INSTR;
    }
    if (st == PRT_OK) st = prt_program_emit(ctx, p, prt_vm_ins_n(PRT_OP_HALT), NULL);
    if (st != PRT_OK || prt_vm_verify(ctx, p) != PRT_OK) die(ctx, "program");
    return p;
}

int main(int argc, char **argv) {
    bool markdown = argc > 1 && strcmp(argv[1], "--markdown") == 0;
    const char *machine = markdown && argc > 2 ? argv[2] : "?";
    const char *date = markdown && argc > 3 ? argv[3] : "?";
    prt_context_options o = {.struct_size = sizeof o, .log_level = PRT_LOG_WARN, .num_threads = 1};
    prt_context *ctx;
    if (prt_context_create(&o, &ctx) != PRT_OK) die(NULL, "context");
    if (prt_registry_add(ctx, ctx->ops, &bench_noop) != PRT_OK) die(ctx, "registry");
    if (!markdown)
        printf("%-36s %9s %14s %16s\n", "program", "executed", "goto ns/instr", "switch ns/instr");
    for (int i = 0; i < N_PROGS; i++) {
        int64_t executed;
        prt_program *p = build(ctx, &progs[i], &executed);
        prt_vm_options vo = {.reference = progs[i].reference};
        prt_vm *vm;
        if (prt_vm_create(ctx, p, NULL, &vo, &vm) != PRT_OK) die(ctx, "vm");
        double v[2] = {time_runs(ctx, vm, prt_vm_run, executed),
                       time_runs(ctx, vm, prt_vm_run_switch, executed)};
        if (markdown) {
            const char *loop[2] = {"computed goto", "switch"};
            for (int j = 0; j < 2; j++)
                printf("| VM dispatch: %s, %lld instructions executed, %s | %.2f ns/instruction "
                       "(median of %d runs) | `build/bench/vm_dispatch` | %s | %s |\n",
                       progs[i].name, (long long)executed, loop[j], v[j], N_RUNS, machine, date);
        } else {
            printf("%-36s %9lld %14.2f %16.2f\n", progs[i].name, (long long)executed, v[0], v[1]);
        }
        prt_vm_destroy(vm);
        prt_program_destroy(ctx, p);
    }
    prt_context_destroy(ctx);
    return 0;
}

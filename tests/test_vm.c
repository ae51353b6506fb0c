/* The bytecode VM: compiling graphs, running them against direct kernel calls,
 * both dispatch loops, LOOP/JMP semantics, the encoding and the scheduler's
 * topological order. (The verifier and disassembler: test_vm_verify.c.) */
// labels: unit
#define _POSIX_C_SOURCE 200809L
/* The instruction accessors check operand formats only without NDEBUG; this test
 * compiles them checked whatever the build type, to test the checks. */
#undef NDEBUG

#include "tests/vm_util.h"

#include "scheduler/scheduler_impl.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

/* ---- running against direct kernel calls ---------------------------------- */

/* Runs the graph node by node with the reference kernels (the graph's own order
 * and attributes; inputs and parameters copied from vm), then compares every
 * graph output with the VM's bit for bit. */
static void check_against_direct(prt_context *ctx, prt_graph *g, prt_vm *vm) {
    prt_device *dev = prt_cpu_device(ctx);
    prt_tensor *vals = calloc((size_t)g->n_values, sizeof *vals);
    ck_assert_ptr_nonnull(vals);
    for (int v = 0; v < g->n_values; v++) {
        const prt_value *val = &g->values[v];
        prt_shape s = prt_graph_value_shape(g, v);
        ck_assert_int_eq(prt_tensor_alloc(ctx, dev, PRT_F32, &s, &vals[v]), PRT_OK);
        if (val->kind == PRT_VAL_ACT) continue;
        const prt_tensor *src = prt_vm_find(vm, val->name);
        ck_assert_ptr_nonnull(src);
        ck_assert(prt_shape_eq(&src->shape, &s));
        memcpy(PRT_F32P(&vals[v]), PRT_F32P(src), (size_t)prt_shape_count(&s) * sizeof(float));
    }
    for (int n = 0; n < g->n_nodes; n++) {
        const prt_node *nd = &g->nodes[n];
        const prt_op_schema *s = prt_op_get(ctx->ops, nd->op);
        const prt_tensor *in[PRT_VARIADIC + PRT_MAX_OP_PARAMS];
        prt_tensor *out[4];
        for (int j = 0; j < nd->n_in; j++) in[j] = &vals[nd->in[j]];
        for (int j = 0; j < nd->n_out; j++) out[j] = &vals[nd->out[j]];
        prt_kernel_call c = {.ctx = ctx, .attrs = nd->attrs, .n_in = nd->n_in, .in = in,
                             .n_out = nd->n_out, .out = out,
                             .rng_key = prt_hash_str(nd->name, ctx->seed), .step = 1};
        void *ws = NULL;
        if (s->workspace) {
            prt_infer_scratch sc;
            prt_infer_ctx ic;
            prt_graph_infer_ctx(g, n, &sc, &ic);
            c.workspace_size = s->workspace(&ic);
            ws = c.workspace_size ? malloc(c.workspace_size) : NULL;
            c.workspace = ws;
        }
        if (s->ref.prepare) ck_assert_int_eq(s->ref.prepare(&c, &c.state), PRT_OK);
        ck_assert_msg(s->ref.run(&c) == PRT_OK, "%s", prt_last_error(ctx));
        if (s->ref.prepare && s->ref.release) s->ref.release(c.state);
        free(ws);
    }
    ck_assert_int_eq(prt_vm_n_outputs(vm), g->n_outputs);
    for (int i = 0; i < g->n_outputs; i++) {
        const prt_tensor *y = prt_vm_output(vm, i);
        const prt_tensor *want = &vals[g->outputs[i]];
        ck_assert(prt_shape_eq(&y->shape, &want->shape));
        int64_t n = prt_shape_count(&y->shape);
        for (int64_t e = 0; e < n; e++)
            ck_assert_msg(PRT_F32P(y)[e] == PRT_F32P(want)[e], "output %d element %lld: %g vs %g",
                          i, (long long)e, PRT_F32P(y)[e], PRT_F32P(want)[e]);
    }
    for (int v = 0; v < g->n_values; v++) prt_tensor_release(ctx, &vals[v]);
    free(vals);
}

static void compile_and_check(prt_graph *(*build)(prt_context *), int64_t batch) {
    prt_context *ctx = tu_context();
    prt_graph *g = build(ctx);
    prt_program *p;
    ck_assert_msg(prt_vm_compile(g, batch, &p) == PRT_OK, "%s", prt_last_error(ctx));
    ck_assert_int_eq(prt_program_n_instructions(p), g->n_nodes + 1);
    prt_vm *vm = vt_make_vm(ctx, p, true);
    for (int i = 0; i < prt_vm_n_inputs(vm); i++) vt_fill_input(vm, i, 100 + (uint64_t)i);
    ck_assert_msg(prt_vm_run(vm) == PRT_OK, "%s", prt_last_error(ctx));
    check_against_direct(ctx, g, vm);
    prt_vm_destroy(vm);
    prt_program_destroy(ctx, p);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}

START_TEST(test_small_net_matches_direct_calls) { compile_and_check(vt_small_net, 2); }
END_TEST

START_TEST(test_branchy_net_matches_direct_calls) { compile_and_check(vt_branchy_net, 3); }
END_TEST

START_TEST(test_program_outlives_graph) {
    prt_context *ctx = tu_context();
    prt_graph *g = vt_small_net(ctx);
    prt_program *p;
    ck_assert_int_eq(prt_vm_compile(g, 2, &p), PRT_OK);
    prt_vm *a = vt_make_vm(ctx, p, true);
    vt_fill_input(a, 0, 5);
    ck_assert_int_eq(prt_vm_run(a), PRT_OK);
    prt_graph_destroy(g); /* everything the program needs was copied */
    prt_vm *b = vt_make_vm(ctx, p, true);
    vt_fill_input(b, 0, 5);
    ck_assert_int_eq(prt_vm_run(b), PRT_OK);
    const prt_tensor *ya = prt_vm_output(a, 0), *yb = prt_vm_output(b, 0);
    ck_assert_int_eq(memcmp(PRT_F32P(ya), PRT_F32P(yb), 2 * 5 * sizeof(float)), 0);
    ck_assert_str_eq(p->regs[p->outputs[0]].name, "fc");
    prt_vm_destroy(a);
    prt_vm_destroy(b);
    prt_program_destroy(ctx, p);
    prt_context_destroy(ctx);
}
END_TEST

static void check_close(const prt_tensor *a, const prt_tensor *b, double tol) {
    ck_assert(prt_shape_eq(&a->shape, &b->shape));
    int64_t n = prt_shape_count(&a->shape);
    for (int64_t i = 0; i < n; i++) {
        double x = PRT_F32P(a)[i], y = PRT_F32P(b)[i];
        ck_assert_msg(fabs(x - y) <= tol * (1.0 + fabs(y)), "element %lld: %g vs %g",
                      (long long)i, x, y);
    }
}

START_TEST(test_fast_matches_reference) {
    prt_context *ctx = tu_context();
    prt_graph *g = vt_branchy_net(ctx);
    prt_program *p;
    ck_assert_int_eq(prt_vm_compile(g, 4, &p), PRT_OK);
    prt_vm *ref = vt_make_vm(ctx, p, true), *fast = vt_make_vm(ctx, p, false);
    vt_fill_input(ref, 0, 42);
    vt_fill_input(fast, 0, 42);
    ck_assert_msg(prt_vm_run(ref) == PRT_OK, "%s", prt_last_error(ctx));
    ck_assert_msg(prt_vm_run(fast) == PRT_OK, "%s", prt_last_error(ctx));
    for (int i = 0; i < prt_vm_n_outputs(ref); i++)
        check_close(prt_vm_output(fast, i), prt_vm_output(ref, i), 1e-4);
    prt_vm_destroy(ref);
    prt_vm_destroy(fast);
    prt_program_destroy(ctx, p);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(test_goto_and_switch_identical) {
    prt_context *ctx = tu_context();
    prt_graph *g = vt_branchy_net(ctx);
    prt_program *p;
    ck_assert_int_eq(prt_vm_compile(g, 2, &p), PRT_OK);
    prt_vm *vm = vt_make_vm(ctx, p, false);
    vt_fill_input(vm, 0, 7);
    ck_assert_int_eq(prt_vm_run(vm), PRT_OK);
    const prt_tensor *y = prt_vm_output(vm, 0);
    size_t bytes = (size_t)prt_shape_count(&y->shape) * sizeof(float);
    float *first = malloc(bytes);
    memcpy(first, PRT_F32P(y), bytes);
    memset(PRT_F32P(y), 0, bytes);
    ck_assert_int_eq(prt_vm_run_switch(vm), PRT_OK);
    ck_assert_int_eq(memcmp(first, PRT_F32P(y), bytes), 0);
    free(first);
    prt_vm_destroy(vm);
    prt_program_destroy(ctx, p);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(test_params_initialised_from_rng) {
    prt_context *ctx = tu_context();
    prt_graph *g;
    ck_assert_int_eq(prt_graph_new(ctx, "init", &g), PRT_OK);
    int x = vt_input(g, "data", 8, 6, 6);
    const prt_op_schema *conv = vt_op(ctx, "conv", NULL);
    prt_attr a[16];
    vt_attrs_default(conv, a);
    vt_set_int(conv, a, "out", 64);
    vt_set_int(conv, a, "kernel", 3);
    int y = vt_node(g, "conv", "c", &x, 1, a);
    y = vt_node(g, "batchnorm", "bn", &y, 1, NULL);
    vt_finish(g, &y, 1);
    prt_program *p;
    ck_assert_int_eq(prt_vm_compile(g, 1, &p), PRT_OK);
    prt_vm *vm = vt_make_vm(ctx, p, true);

    /* He-normal: mean 0, std sqrt(2 / fan_in), fan_in = 8*3*3 = 72; 4608 draws. */
    const prt_tensor *w = prt_vm_find(vm, "c.weight");
    ck_assert_ptr_nonnull(w);
    int64_t n = prt_shape_count(&w->shape);
    ck_assert_int_eq(n, 64 * 72);
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < n; i++) sum += PRT_F32P(w)[i], sq += (double)PRT_F32P(w)[i] * PRT_F32P(w)[i];
    double mean = sum / (double)n, sd = sqrt(sq / (double)n - mean * mean);
    double want = sqrt(2.0 / 72.0);
    ck_assert_msg(fabs(mean) < 0.1 * want, "mean %g", mean);
    ck_assert_msg(fabs(sd - want) < 0.05 * want, "std %g, want %g", sd, want);
    /* Batch-norm scale starts at one, running variance at one, shift and mean at zero. */
    const prt_tensor *scale = prt_vm_find(vm, "bn.scale"), *shift = prt_vm_find(vm, "bn.shift");
    ck_assert_ptr_nonnull(scale);
    ck_assert_ptr_nonnull(shift);
    for (int i = 0; i < 64; i++) {
        ck_assert(PRT_F32P(scale)[i] == 1.0f);
        ck_assert(PRT_F32P(shift)[i] == 0.0f);
    }
    /* Same seed: same numbers; another seed: other numbers. */
    prt_vm *again = vt_make_vm(ctx, p, true);
    ck_assert_int_eq(memcmp(PRT_F32P(w), PRT_F32P(prt_vm_find(again, "c.weight")),
                            (size_t)n * sizeof(float)), 0);
    prt_vm_destroy(again);
    prt_context_options o = {.struct_size = sizeof o, .log_level = PRT_LOG_WARN, .seed = 99};
    prt_context *ctx2;
    ck_assert_int_eq(prt_context_create(&o, &ctx2), PRT_OK);
    prt_vm *other = vt_make_vm(ctx2, p, true);
    ck_assert_int_ne(memcmp(PRT_F32P(w), PRT_F32P(prt_vm_find(other, "c.weight")),
                            (size_t)n * sizeof(float)), 0);
    prt_vm_destroy(other);
    prt_context_destroy(ctx2);
    ck_assert_ptr_null(prt_vm_find(vm, "no.such"));
    prt_vm_destroy(vm);
    prt_program_destroy(ctx, p);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

/* Out of memory at every allocation of compile and create in turn: each fails
 * cleanly with PRT_ERR_NOMEM (AddressSanitizer builds also check for leaks). */
static int alloc_budget = -1; /* allocations left; -1: unlimited */

static void *failing_alloc(void *ud, void *ptr, size_t old_size, size_t new_size) {
    (void)ud, (void)old_size;
    if (new_size == 0) {
        free(ptr);
        return NULL;
    }
    if (alloc_budget == 0) return NULL;
    if (alloc_budget > 0) alloc_budget--;
    return realloc(ptr, new_size);
}

START_TEST(test_out_of_memory_everywhere) {
    prt_context_options o = {.struct_size = sizeof o, .log_level = PRT_LOG_ERROR,
                             .alloc = failing_alloc};
    int failures = 0;
    for (int budget = 0;; budget++) {
        prt_context *ctx;
        alloc_budget = -1;
        ck_assert_int_eq(prt_context_create(&o, &ctx), PRT_OK);
        prt_graph *g = vt_small_net(ctx);
        prt_program *p = NULL;
        prt_vm *vm = NULL;
        alloc_budget = budget;
        prt_status st = prt_vm_compile(g, 2, &p);
        if (st == PRT_OK) st = prt_vm_create(ctx, p, NULL, NULL, &vm);
        if (st == PRT_OK) st = prt_vm_run(vm);
        bool done = alloc_budget > 0 && st == PRT_OK;
        alloc_budget = -1;
        if (st != PRT_OK) {
            ck_assert_msg(st == PRT_ERR_NOMEM, "budget %d: %s", budget, prt_last_error(ctx));
            ck_assert_ptr_null(vm);
            failures++;
        }
        prt_vm_destroy(vm);
        prt_program_destroy(ctx, p);
        prt_graph_destroy(g);
        prt_context_destroy(ctx);
        if (done) break;
        ck_assert_int_lt(budget, 10000);
    }
    ck_assert_int_gt(failures, 20);
}
END_TEST

/* ---- hand-built programs: LOOP, JMP, SETI --------------------------------- */


static void run_counts(prt_context *ctx, const prt_program *p, const vt_counting_prog *c,
                       bool use_switch, float *a, float *b, int64_t *i) {
    prt_vm *vm = vt_make_vm(ctx, p, true);
    prt_status st = use_switch ? prt_vm_run_switch(vm) : prt_vm_run(vm);
    ck_assert_msg(st == PRT_OK, "%s", prt_last_error(ctx));
    *a = PRT_F32P(prt_vm_output(vm, 0))[0];
    *b = PRT_F32P(prt_vm_output(vm, 1))[0];
    if (i) *i = vm->ireg[c->i];
    prt_vm_destroy(vm);
}

/* SETI n; body: a += 1; LOOP back: the body runs max(n, 1) times (the test is at
 * the bottom), and the counter ends at 0. */
START_TEST(test_loop_counts) {
    prt_context *ctx = tu_context();
    const int64_t ns[] = {0, 1, 2, 5, 1000, -3};
    const float want[] = {1, 1, 2, 5, 1000, 1};
    for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
        vt_counting_prog c = vt_counting(ctx);
        vt_emit(ctx, c.p, prt_vm_ins_seti(c.i, vt_kint(ctx, c.p, ns[t])));
        vt_emit(ctx, c.p, prt_vm_ins_call(c.add_a));
        vt_emit(ctx, c.p, prt_vm_ins_loop(c.i, -2));
        vt_emit(ctx, c.p, prt_vm_ins_call(c.add_b));
        vt_emit(ctx, c.p, prt_vm_ins_n(PRT_OP_HALT));
        for (int sw = 0; sw < 2; sw++) {
            float a, b;
            int64_t i;
            run_counts(ctx, c.p, &c, sw, &a, &b, &i);
            ck_assert_msg(a == want[t], "n=%lld switch=%d: body ran %g times", (long long)ns[t], sw, a);
            ck_assert(b == 1.0f);
            ck_assert_int_eq(i, 0);
        }
        prt_program_destroy(ctx, c.p);
    }
    prt_context_destroy(ctx);
}
END_TEST

/* Nested loops: outer 3 x (SETI inner 4; a += 1 x 4; b += 1): a = 12, b = 3. */
START_TEST(test_nested_loops) {
    prt_context *ctx = tu_context();
    vt_counting_prog c = vt_counting(ctx);
    int k3 = vt_kint(ctx, c.p, 3), k4 = vt_kint(ctx, c.p, 4);
    vt_emit(ctx, c.p, prt_vm_ins_seti(c.i, k3));  /* 0 */
    vt_emit(ctx, c.p, prt_vm_ins_seti(c.j, k4));  /* 1: outer body starts */
    vt_emit(ctx, c.p, prt_vm_ins_call(c.add_a));  /* 2: inner body */
    vt_emit(ctx, c.p, prt_vm_ins_loop(c.j, -2));  /* 3 -> 2 */
    vt_emit(ctx, c.p, prt_vm_ins_call(c.add_b));  /* 4 */
    vt_emit(ctx, c.p, prt_vm_ins_loop(c.i, -5));  /* 5 -> 1 */
    vt_emit(ctx, c.p, prt_vm_ins_n(PRT_OP_HALT)); /* 6 */
    for (int sw = 0; sw < 2; sw++) {
        float a, b;
        run_counts(ctx, c.p, &c, sw, &a, &b, NULL);
        ck_assert(a == 12.0f);
        ck_assert(b == 3.0f);
    }
    prt_program_destroy(ctx, c.p);
    prt_context_destroy(ctx);
}
END_TEST

/* JMP skips forward (relative and absolute); a forward LOOP skips while its
 * counter stays above 0. */
START_TEST(test_jumps) {
    prt_context *ctx = tu_context();
    vt_counting_prog c = vt_counting(ctx);
    vt_emit(ctx, c.p, prt_vm_ins_jmp_rel(1));     /* 0 -> 2 */
    vt_emit(ctx, c.p, prt_vm_ins_call(c.add_a));  /* 1 skipped */
    vt_emit(ctx, c.p, prt_vm_ins_call(c.add_b));  /* 2 */
    vt_emit(ctx, c.p, prt_vm_ins_jmp_abs(5));     /* 3 -> 5 */
    vt_emit(ctx, c.p, prt_vm_ins_call(c.add_a));  /* 4 skipped */
    vt_emit(ctx, c.p, prt_vm_ins_jmp_rel(0));     /* 5 -> 6: a no-op jump */
    vt_emit(ctx, c.p, prt_vm_ins_seti(c.i, vt_kint(ctx, c.p, 2))); /* 6 */
    vt_emit(ctx, c.p, prt_vm_ins_loop(c.i, 1));   /* 7: i 2 -> 1, jumps to 9 */
    vt_emit(ctx, c.p, prt_vm_ins_call(c.add_a));  /* 8 skipped */
    vt_emit(ctx, c.p, prt_vm_ins_loop(c.i, 1));   /* 9: i 1 -> 0, falls through */
    vt_emit(ctx, c.p, prt_vm_ins_call(c.add_b));  /* 10 runs */
    vt_emit(ctx, c.p, prt_vm_ins_n(PRT_OP_NOP));  /* 11 */
    vt_emit(ctx, c.p, prt_vm_ins_n(PRT_OP_HALT)); /* 12 */
    vt_emit(ctx, c.p, prt_vm_ins_call(c.add_a));  /* 13 never reached */
    vt_emit(ctx, c.p, prt_vm_ins_n(PRT_OP_HALT)); /* 14 */
    for (int sw = 0; sw < 2; sw++) {
        float a, b;
        int64_t i;
        run_counts(ctx, c.p, &c, sw, &a, &b, &i);
        ck_assert_msg(a == 0.0f, "a = %g", a);
        ck_assert_msg(b == 2.0f, "b = %g", b);
        ck_assert_int_eq(i, 0);
    }
    prt_program_destroy(ctx, c.p);
    prt_context_destroy(ctx);
}
END_TEST

/* State persists across runs; counters are re-set by SETI each run. */
START_TEST(test_state_persists_across_runs) {
    prt_context *ctx = tu_context();
    vt_counting_prog c = vt_counting(ctx);
    vt_emit(ctx, c.p, prt_vm_ins_seti(c.i, vt_kint(ctx, c.p, 3)));
    vt_emit(ctx, c.p, prt_vm_ins_call(c.add_a));
    vt_emit(ctx, c.p, prt_vm_ins_loop(c.i, -2));
    vt_emit(ctx, c.p, prt_vm_ins_n(PRT_OP_HALT));
    prt_vm *vm = vt_make_vm(ctx, c.p, true);
    ck_assert_int_eq(prt_vm_run(vm), PRT_OK);
    ck_assert_int_eq(prt_vm_run_switch(vm), PRT_OK);
    ck_assert_int_eq(prt_vm_run(vm), PRT_OK);
    ck_assert(PRT_F32P(prt_vm_output(vm, 0))[0] == 9.0f);
    ck_assert_int_eq(vm->step, 3);
    prt_vm_destroy(vm);
    prt_program_destroy(ctx, c.p);
    prt_context_destroy(ctx);
}
END_TEST

/* ---- kernel errors, prepare, release and workspace ------------------------ */

static int n_prepare, n_release, n_run;
static size_t seen_workspace;

static prt_status id_infer(prt_infer_ctx *ic) {
    ic->out[0] = ic->in[0];
    return PRT_OK;
}
static size_t id_workspace(const prt_infer_ctx *ic) { return 1000 + (size_t)ic->in[0].d[0]; }
static prt_status id_prepare(const prt_kernel_call *c, void **state) {
    n_prepare++;
    *state = malloc(16);
    return *state ? PRT_OK : prt_error(c->ctx, PRT_ERR_NOMEM, "oom");
}
static void id_release(void *state) {
    n_release++;
    free(state);
}
static prt_status id_run(const prt_kernel_call *c) {
    n_run++;
    seen_workspace = c->workspace ? c->workspace_size : 0;
    if (!c->state) return prt_error(c->ctx, PRT_ERR_INTERNAL, "no state");
    int64_t n = prt_shape_count(&c->in[0]->shape);
    memcpy(PRT_F32P(c->out[0]), PRT_F32P(c->in[0]), (size_t)n * sizeof(float));
    if (PRT_F32P(c->in[0])[0] < 0) return prt_error(c->ctx, PRT_ERR_BACKEND, "negative input");
    return PRT_OK;
}

static const prt_op_schema test_identity = {
    .name = "test_identity", .doc = "copies its input; fails on a negative first element",
    .min_in = 1, .max_in = 1, .n_out = 1, .infer = id_infer, .inplace_in = -1,
    .workspace = id_workspace,
    .ref = {.prepare = id_prepare, .run = id_run, .release = id_release},
};

START_TEST(test_kernel_error_names_instruction) {
    prt_context *ctx = tu_context();
    ck_assert_int_eq(prt_registry_add(ctx, ctx->ops, &test_identity), PRT_OK);
    prt_graph *g;
    ck_assert_int_eq(prt_graph_new(ctx, "net", &g), PRT_OK);
    int x = vt_input(g, "data", 2, 2, 2);
    int y = vt_node(g, "relu", "r", &x, 1, NULL);
    y = vt_node(g, "test_identity", "blk/id", &x, 1, NULL);
    vt_finish(g, &y, 1);
    prt_program *p;
    ck_assert_int_eq(prt_vm_compile(g, 3, &p), PRT_OK);
    n_prepare = n_release = n_run = 0;
    prt_vm *vm = vt_make_vm(ctx, p, true);
    ck_assert_int_eq(n_prepare, 1); /* at creation, once */
    vt_fill_input(vm, 0, 1);
    PRT_F32P(prt_vm_input(vm, 0))[0] = 1.0f;
    ck_assert_int_eq(prt_vm_run(vm), PRT_OK);
    ck_assert_int_eq(prt_vm_run(vm), PRT_OK);
    ck_assert_int_eq(n_prepare, 1);
    ck_assert_int_eq(n_run, 2);
    ck_assert_uint_eq(seen_workspace, 1003);
    PRT_F32P(prt_vm_input(vm, 0))[0] = -1.0f;
    ck_assert_int_eq(prt_vm_run(vm), PRT_ERR_BACKEND);
    ck_assert_str_eq(prt_last_error(ctx),
                     "program 'net': instruction 1 (CALL test_identity 'blk/id'): negative input");
    ck_assert_int_eq(prt_vm_run_switch(vm), PRT_ERR_BACKEND);
    ck_assert_str_eq(prt_last_error(ctx),
                     "program 'net': instruction 1 (CALL test_identity 'blk/id'): negative input");
    prt_vm_destroy(vm);
    ck_assert_int_eq(n_release, 1);
    prt_program_destroy(ctx, p);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

/* ---- encoding and tables -------------------------------------------------- */

START_TEST(test_encoding_roundtrip) {
    prt_instr i = prt_vm_ins(PRT_OP_LOOP, 0xabcdef, (uint32_t)-7);
    ck_assert_uint_eq(PRT_VM_GET_OP(i), PRT_OP_LOOP);
    ck_assert_uint_eq(PRT_VM_GET_A(i), 0xabcdef);
    ck_assert_int_eq(PRT_VM_GET_SX(i), -7);
    /* Bit positions as drawn: opcode 0..7, A 8..31, X 32..63. */
    ck_assert_uint_eq(i & 0xff, PRT_OP_LOOP);
    ck_assert_uint_eq((i >> 8) & 0xffffff, 0xabcdef);
    ck_assert_uint_eq(i >> 32, 0xfffffff9u);
    i = prt_vm_ins_call(0x12345678);
    ck_assert_uint_eq(PRT_VM_GET_BX(i), 0x12345678u);
    ck_assert_uint_eq(PRT_VM_RAW_A(i), 0);
    ck_assert_str_eq(prt_vm_op_names[PRT_OP_CALL], "CALL");
    ck_assert_str_eq(prt_vm_op_names[PRT_OP_HALT], "HALT");
    ck_assert_int_eq(prt_vm_op_formats[PRT_OP_SETI], PRT_VM_FMT_RI);
    ck_assert_int_eq(prt_vm_formats[prt_vm_op_formats[PRT_OP_JMP]].a, PRT_VM_A_JMODE);
    ck_assert_int_eq(PRT_OP_COUNT, 9);
    i = prt_vm_ins_allreduce_start(0x123456);
    ck_assert_int_eq(PRT_VM_GET_OP(i), PRT_OP_ALLREDUCE_START);
    ck_assert_uint_eq(PRT_VM_GET_A(i), 0x123456u);
    ck_assert_uint_eq(PRT_VM_RAW_X(i), 0);
    ck_assert_int_eq(prt_vm_formats[prt_vm_op_formats[PRT_OP_ALLREDUCE_WAIT]].a, PRT_VM_A_BUCKET);
}
END_TEST

/* Reading an operand that the opcode's format lacks is an interpreter bug: the
 * checked accessors abort on it. */
static volatile uint64_t sink;

START_TEST(test_accessor_rejects_missing_a) { sink = PRT_VM_GET_A(prt_vm_ins_n(PRT_OP_NOP)); }
END_TEST

START_TEST(test_accessor_rejects_bx_of_loop) { sink = PRT_VM_GET_BX(prt_vm_ins_loop(0, -1)); }
END_TEST

START_TEST(test_accessor_rejects_sx_of_call) { sink = (uint64_t)PRT_VM_GET_SX(prt_vm_ins_call(0)); }
END_TEST

/* ---- the scheduler's order ------------------------------------------------- */

START_TEST(test_order_keeps_ordered_graph) {
    prt_context *ctx = tu_context();
    prt_graph *g = vt_branchy_net(ctx);
    int order[64];
    ck_assert_int_eq(prt_sched_order(g, order), PRT_OK);
    for (int i = 0; i < g->n_nodes; i++) ck_assert_int_eq(order[i], i);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

/* Swaps nodes a and b in the node array (fixing producers), so the array is no
 * longer in dependency order. */
static void swap_nodes(prt_graph *g, int a, int b) {
    prt_node t = g->nodes[a];
    g->nodes[a] = g->nodes[b];
    g->nodes[b] = t;
    for (int v = 0; v < g->n_values; v++) {
        if (g->values[v].producer == a) g->values[v].producer = b;
        else if (g->values[v].producer == b) g->values[v].producer = a;
    }
}

static int node_index(const prt_graph *g, const char *name) {
    for (int i = 0; i < g->n_nodes; i++)
        if (strcmp(g->nodes[i].name, name) == 0) return i;
    return -1;
}

START_TEST(test_order_sorts_and_breaks_ties_by_index) {
    prt_context *ctx = tu_context();
    prt_graph *g = vt_branchy_net(ctx);
    /* Built as c1 bn1 r1 p1 c2 cat half sum pool fc... Put prob first and c1 last,
     * and c2 at index 1: c2 and c1 are both ready at the start, c2 has the lower
     * index now, so it goes first. */
    swap_nodes(g, 0, node_index(g, "prob"));
    swap_nodes(g, 1, node_index(g, "c2"));
    ck_assert_str_eq(g->nodes[0].name, "prob");
    ck_assert_str_eq(g->nodes[11].name, "c1");
    int order[64];
    ck_assert_int_eq(prt_sched_order(g, order), PRT_OK);
    const char *want[] = {"c2", "c1", "bn1", "r1", "p1", "cat", "half", "sum", "pool", "flat", "fc", "prob"};
    ck_assert_int_eq(g->n_nodes, 12);
    for (int i = 0; i < g->n_nodes; i++) ck_assert_str_eq(g->nodes[order[i]].name, want[i]);
    /* It is a pure function of the graph. */
    int again[64];
    ck_assert_int_eq(prt_sched_order(g, again), PRT_OK);
    ck_assert_int_eq(memcmp(order, again, (size_t)g->n_nodes * sizeof(int)), 0);
    /* The compiler emits calls in that order. Batch 1 keeps the shapes bound while
     * the array was still in order (the graph infers in array order). */
    prt_program *p;
    ck_assert_msg(prt_vm_compile(g, 1, &p) == PRT_OK, "%s", prt_last_error(ctx));
    for (int i = 0; i < g->n_nodes; i++)
        ck_assert_str_eq(p->k[PRT_VM_RAW_X(p->code[i])].call.node, want[i]);
    prt_program_destroy(ctx, p);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(test_order_reports_cycle) {
    prt_context *ctx = tu_context();
    prt_graph *g = vt_small_net(ctx);
    /* c1 now reads r1's output, and r1 reads c1's: a loop of two. */
    g->nodes[node_index(g, "c1")].in[0] = prt_graph_find_value(g, "r1");
    int order[8];
    ck_assert_int_eq(prt_sched_order(g, order), PRT_ERR_SCHEMA);
    ck_assert_str_eq(prt_last_error(ctx), "graph 'net': layers form a cycle: 'c1' -> 'r1' -> 'c1'");
    /* A layer reading its own output. */
    g->nodes[node_index(g, "c1")].in[0] = prt_graph_find_value(g, "data");
    g->nodes[node_index(g, "fc")].in[0] = prt_graph_find_value(g, "fc");
    ck_assert_int_eq(prt_sched_order(g, order), PRT_ERR_SCHEMA);
    ck_assert_str_eq(prt_last_error(ctx), "graph 'net': layers form a cycle: 'fc' -> 'fc'");
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

static Suite *vm_suite(void) {
    Suite *s = suite_create("vm");
    TCase *t = tcase_create("run");
    tcase_add_test(t, test_small_net_matches_direct_calls);
    tcase_add_test(t, test_branchy_net_matches_direct_calls);
    tcase_add_test(t, test_program_outlives_graph);
    tcase_add_test(t, test_fast_matches_reference);
    tcase_add_test(t, test_goto_and_switch_identical);
    tcase_add_test(t, test_params_initialised_from_rng);
    tcase_add_test(t, test_kernel_error_names_instruction);
    tcase_add_test(t, test_out_of_memory_everywhere);
    suite_add_tcase(s, t);
    t = tcase_create("control");
    tcase_add_test(t, test_loop_counts);
    tcase_add_test(t, test_nested_loops);
    tcase_add_test(t, test_jumps);
    tcase_add_test(t, test_state_persists_across_runs);
    tcase_add_test(t, test_encoding_roundtrip);
    tcase_add_test_raise_signal(t, test_accessor_rejects_missing_a, SIGABRT);
    tcase_add_test_raise_signal(t, test_accessor_rejects_bx_of_loop, SIGABRT);
    tcase_add_test_raise_signal(t, test_accessor_rejects_sx_of_call, SIGABRT);
    suite_add_tcase(s, t);
    t = tcase_create("order");
    tcase_add_test(t, test_order_keeps_ordered_graph);
    tcase_add_test(t, test_order_sorts_and_breaks_ties_by_index);
    tcase_add_test(t, test_order_reports_cycle);
    suite_add_tcase(s, t);
    return s;
}

int main(void) { return tu_run(vm_suite()); }

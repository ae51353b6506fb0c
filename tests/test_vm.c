/* The bytecode VM: compiling graphs, running them against direct kernel calls,
 * both dispatch loops, LOOP/JMP semantics, the verifier's rejection of every kind
 * of malformed program (exact messages), the disassembler and the scheduler's
 * topological order. */
// labels: unit
#define _POSIX_C_SOURCE 200809L
/* The instruction accessors check operand formats only without NDEBUG; this test
 * compiles them checked whatever the build type, to test the checks. */
#undef NDEBUG

#include "tests/test_util.h"

#include "scheduler/scheduler_impl.h"
#include "vm/vm_impl.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

/* ---- building graphs ---------------------------------------------------- */

static const prt_op_schema *op(prt_context *ctx, const char *name, int *id) {
    int tmp;
    const prt_op_schema *s = prt_op_find(ctx->ops, name, id ? id : &tmp);
    ck_assert_msg(s != NULL, "op '%s' is not registered", name);
    return s;
}

/* Attributes in schema order, starting from the defaults. */
static void attrs_default(const prt_op_schema *s, prt_attr *a) {
    for (int i = 0; i < s->n_attrs; i++) {
        a[i] = s->attrs[i].def;
        a[i].type = s->attrs[i].type;
        a[i].set = false;
    }
}

static prt_attr *attr(const prt_op_schema *s, prt_attr *a, const char *name) {
    int i = prt_op_attr_index(s, name);
    ck_assert_msg(i >= 0, "op '%s' has no attribute '%s'", s->name, name);
    a[i].set = true;
    return &a[i];
}

static void set_int(const prt_op_schema *s, prt_attr *a, const char *name, int64_t v) {
    prt_attr *x = attr(s, a, name);
    if (x->type == PRT_ATTR_INTS) x->n = 1;
    x->i[0] = v;
}

static void set_float(const prt_op_schema *s, prt_attr *a, const char *name, double v) {
    attr(s, a, name)->f = v;
}

static void set_bool(const prt_op_schema *s, prt_attr *a, const char *name, bool v) {
    attr(s, a, name)->i[0] = v;
}

/* Adds a node; returns its (first) output value. */
static int node(prt_graph *g, const char *opname, const char *name, const int *in, int n_in,
                const prt_attr *attrs) {
    int id, n;
    prt_attr def[16];
    const prt_op_schema *s = op(g->ctx, opname, &id);
    if (!attrs) {
        attrs_default(s, def);
        attrs = def;
    }
    prt_loc loc = {NULL, 0, 0};
    ck_assert_msg(prt_graph_add_node(g, id, name, NULL, in, n_in, attrs, loc, &n) == PRT_OK, "%s",
                  prt_last_error(g->ctx));
    return g->nodes[n].out[0];
}

static int input(prt_graph *g, const char *name, int c, int h, int w) {
    prt_shape s = {.ndim = 3, .d = {c, h, w}};
    int x;
    prt_loc loc = {NULL, 0, 0};
    ck_assert_int_eq(prt_graph_add_input(g, name, &s, PRT_F32, loc, &x), PRT_OK);
    return x;
}

static void finish(prt_graph *g, const int *outs, int n) {
    ck_assert_int_eq(prt_graph_set_outputs(g, outs, n), PRT_OK);
    ck_assert_msg(prt_graph_bind_params(g) == PRT_OK, "%s", prt_last_error(g->ctx));
}

/* data[3,8,8] -> conv c1 (4, 3x3, pad 1) -> relu r1 -> linear fc (5). */
static prt_graph *small_net(prt_context *ctx) {
    prt_graph *g;
    ck_assert_int_eq(prt_graph_new(ctx, "net", &g), PRT_OK);
    int x = input(g, "data", 3, 8, 8);
    const prt_op_schema *conv = op(ctx, "conv", NULL), *lin = op(ctx, "linear", NULL);
    prt_attr a[16];
    attrs_default(conv, a);
    set_int(conv, a, "out", 4);
    set_int(conv, a, "kernel", 3);
    set_int(conv, a, "pad", 1);
    int y = node(g, "conv", "c1", &x, 1, a);
    y = node(g, "relu", "r1", &y, 1, NULL);
    attrs_default(lin, a);
    set_int(lin, a, "out", 5);
    y = node(g, "linear", "fc", &y, 1, a);
    finish(g, &y, 1);
    return g;
}

/* Two branches joined: conv/bn/relu, maxpool, conv without bias, concat, scale,
 * add, avgpool, flatten, linear, softmax; two outputs. */
static prt_graph *branchy_net(prt_context *ctx) {
    prt_graph *g;
    ck_assert_int_eq(prt_graph_new(ctx, "branchy", &g), PRT_OK);
    int x = input(g, "image", 2, 12, 12);
    const prt_op_schema *conv = op(ctx, "conv", NULL), *mp = op(ctx, "maxpool", NULL),
                        *ap = op(ctx, "avgpool", NULL), *sc = op(ctx, "scale", NULL),
                        *lin = op(ctx, "linear", NULL);
    prt_attr a[16];
    attrs_default(conv, a);
    set_int(conv, a, "out", 6);
    set_int(conv, a, "kernel", 3);
    set_int(conv, a, "pad", 1);
    int c1 = node(g, "conv", "c1", &x, 1, a);
    int b1 = node(g, "batchnorm", "bn1", &c1, 1, NULL);
    int r1 = node(g, "relu", "r1", &b1, 1, NULL);
    attrs_default(mp, a);
    set_int(mp, a, "kernel", 2);
    int p1 = node(g, "maxpool", "p1", &r1, 1, a);
    attrs_default(conv, a);
    set_int(conv, a, "out", 6);
    set_int(conv, a, "kernel", 2);
    set_int(conv, a, "stride", 2);
    set_bool(conv, a, "bias", false);
    int c2 = node(g, "conv", "c2", &x, 1, a);
    int cat_in[2] = {p1, c2};
    int cat = node(g, "concat", "cat", cat_in, 2, NULL);
    attrs_default(sc, a);
    set_float(sc, a, "by", 0.5);
    int s = node(g, "scale", "half", &cat, 1, a);
    int add_in[2] = {s, cat};
    int sum = node(g, "add", "sum", add_in, 2, NULL);
    attrs_default(ap, a);
    set_int(ap, a, "kernel", 3);
    set_int(ap, a, "stride", 1);
    int pool = node(g, "avgpool", "pool", &sum, 1, a);
    int fl = node(g, "flatten", "flat", &pool, 1, NULL);
    attrs_default(lin, a);
    set_int(lin, a, "out", 7);
    int fc = node(g, "linear", "fc", &fl, 1, a);
    int sm = node(g, "softmax", "prob", &fc, 1, NULL);
    int outs[2] = {sm, fc};
    finish(g, outs, 2);
    return g;
}

static void fill_input(prt_vm *vm, int i, uint64_t key) {
    prt_tensor *t = prt_vm_input(vm, i);
    ck_assert_ptr_nonnull(t);
    prt_rng_fill_normal(key, PRT_F32P(t), prt_shape_count(&t->shape), 0.0f, 1.0f);
}

static prt_vm *make_vm(prt_context *ctx, const prt_program *p, bool reference) {
    prt_vm_options o = {.reference = reference};
    prt_vm *vm;
    ck_assert_msg(prt_vm_create(ctx, p, prt_cpu_device(ctx), &o, &vm) == PRT_OK, "%s",
                  prt_last_error(ctx));
    return vm;
}

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
    prt_vm *vm = make_vm(ctx, p, true);
    for (int i = 0; i < prt_vm_n_inputs(vm); i++) fill_input(vm, i, 100 + (uint64_t)i);
    ck_assert_msg(prt_vm_run(vm) == PRT_OK, "%s", prt_last_error(ctx));
    check_against_direct(ctx, g, vm);
    prt_vm_destroy(vm);
    prt_program_destroy(ctx, p);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}

START_TEST(test_small_net_matches_direct_calls) { compile_and_check(small_net, 2); }
END_TEST

START_TEST(test_branchy_net_matches_direct_calls) { compile_and_check(branchy_net, 3); }
END_TEST

START_TEST(test_program_outlives_graph) {
    prt_context *ctx = tu_context();
    prt_graph *g = small_net(ctx);
    prt_program *p;
    ck_assert_int_eq(prt_vm_compile(g, 2, &p), PRT_OK);
    prt_vm *a = make_vm(ctx, p, true);
    fill_input(a, 0, 5);
    ck_assert_int_eq(prt_vm_run(a), PRT_OK);
    prt_graph_destroy(g); /* everything the program needs was copied */
    prt_vm *b = make_vm(ctx, p, true);
    fill_input(b, 0, 5);
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
    prt_graph *g = branchy_net(ctx);
    prt_program *p;
    ck_assert_int_eq(prt_vm_compile(g, 4, &p), PRT_OK);
    prt_vm *ref = make_vm(ctx, p, true), *fast = make_vm(ctx, p, false);
    fill_input(ref, 0, 42);
    fill_input(fast, 0, 42);
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
    prt_graph *g = branchy_net(ctx);
    prt_program *p;
    ck_assert_int_eq(prt_vm_compile(g, 2, &p), PRT_OK);
    prt_vm *vm = make_vm(ctx, p, false);
    fill_input(vm, 0, 7);
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
    int x = input(g, "data", 8, 6, 6);
    const prt_op_schema *conv = op(ctx, "conv", NULL);
    prt_attr a[16];
    attrs_default(conv, a);
    set_int(conv, a, "out", 64);
    set_int(conv, a, "kernel", 3);
    int y = node(g, "conv", "c", &x, 1, a);
    y = node(g, "batchnorm", "bn", &y, 1, NULL);
    finish(g, &y, 1);
    prt_program *p;
    ck_assert_int_eq(prt_vm_compile(g, 1, &p), PRT_OK);
    prt_vm *vm = make_vm(ctx, p, true);

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
    prt_vm *again = make_vm(ctx, p, true);
    ck_assert_int_eq(memcmp(PRT_F32P(w), PRT_F32P(prt_vm_find(again, "c.weight")),
                            (size_t)n * sizeof(float)), 0);
    prt_vm_destroy(again);
    prt_context_options o = {.struct_size = sizeof o, .log_level = PRT_LOG_WARN, .seed = 99};
    prt_context *ctx2;
    ck_assert_int_eq(prt_context_create(&o, &ctx2), PRT_OK);
    prt_vm *other = make_vm(ctx2, p, true);
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
        prt_graph *g = small_net(ctx);
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

typedef struct counting_prog {
    prt_program *p;
    int a, b, one;   /* state accumulators a, b and the constant 1 */
    int add_a, add_b; /* call constants: a += 1, b += 1 */
    int i, j;        /* counters */
} counting_prog;

/* Registers and call constants for programs that count how often each of two
 * CALLs runs: "a += one" and "b += one" with a and b persistent state. */
static counting_prog counting(prt_context *ctx) {
    counting_prog c;
    prt_shape one_elem = {.ndim = 1, .d = {1}};
    ck_assert_int_eq(prt_program_new(ctx, "count", 1, &c.p), PRT_OK);
    ck_assert_int_eq(prt_program_add_reg(ctx, c.p, "a", PRT_REG_STATE, PRT_F32, &one_elem,
                                         PRT_INIT_ZEROS, &c.a), PRT_OK);
    ck_assert_int_eq(prt_program_add_reg(ctx, c.p, "b", PRT_REG_STATE, PRT_F32, &one_elem,
                                         PRT_INIT_ZEROS, &c.b), PRT_OK);
    ck_assert_int_eq(prt_program_add_reg(ctx, c.p, "one", PRT_REG_PARAM, PRT_F32, &one_elem,
                                         PRT_INIT_ONES, &c.one), PRT_OK);
    ck_assert_int_eq(prt_program_add_counter(ctx, c.p, "i", &c.i), PRT_OK);
    ck_assert_int_eq(prt_program_add_counter(ctx, c.p, "j", &c.j), PRT_OK);
    int add;
    ck_assert_int_eq(prt_program_add_op(ctx, c.p, "add", &add), PRT_OK);
    ck_assert_int_eq(prt_program_resolve(ctx, c.p), PRT_OK);
    int in_a[2] = {c.a, c.one}, in_b[2] = {c.b, c.one};
    ck_assert_int_eq(prt_program_add_call(ctx, c.p, add, "inc_a", in_a, 2, 2, &c.a, 1, NULL, 0,
                                          &c.add_a), PRT_OK);
    ck_assert_int_eq(prt_program_add_call(ctx, c.p, add, "inc_b", in_b, 2, 2, &c.b, 1, NULL, 0,
                                          &c.add_b), PRT_OK);
    int outs[2] = {c.a, c.b};
    ck_assert_int_eq(prt_program_set_io(ctx, c.p, NULL, 0, outs, 2), PRT_OK);
    return c;
}

static int kint(prt_context *ctx, prt_program *p, int64_t v) {
    int k;
    ck_assert_int_eq(prt_program_add_int(ctx, p, v, &k), PRT_OK);
    return k;
}

static void emit(prt_context *ctx, prt_program *p, prt_instr ins) {
    ck_assert_int_eq(prt_program_emit(ctx, p, ins, NULL), PRT_OK);
}

/* Runs with the dispatch loop chosen by `use_switch`; returns a and b. */
static void run_counts(prt_context *ctx, const prt_program *p, const counting_prog *c,
                       bool use_switch, float *a, float *b, int64_t *i) {
    prt_vm *vm = make_vm(ctx, p, true);
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
        counting_prog c = counting(ctx);
        emit(ctx, c.p, prt_vm_ins_seti(c.i, kint(ctx, c.p, ns[t])));
        emit(ctx, c.p, prt_vm_ins_call(c.add_a));
        emit(ctx, c.p, prt_vm_ins_loop(c.i, -2));
        emit(ctx, c.p, prt_vm_ins_call(c.add_b));
        emit(ctx, c.p, prt_vm_ins_n(PRT_OP_HALT));
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
    counting_prog c = counting(ctx);
    int k3 = kint(ctx, c.p, 3), k4 = kint(ctx, c.p, 4);
    emit(ctx, c.p, prt_vm_ins_seti(c.i, k3));  /* 0 */
    emit(ctx, c.p, prt_vm_ins_seti(c.j, k4));  /* 1: outer body starts */
    emit(ctx, c.p, prt_vm_ins_call(c.add_a));  /* 2: inner body */
    emit(ctx, c.p, prt_vm_ins_loop(c.j, -2));  /* 3 -> 2 */
    emit(ctx, c.p, prt_vm_ins_call(c.add_b));  /* 4 */
    emit(ctx, c.p, prt_vm_ins_loop(c.i, -5));  /* 5 -> 1 */
    emit(ctx, c.p, prt_vm_ins_n(PRT_OP_HALT)); /* 6 */
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
    counting_prog c = counting(ctx);
    emit(ctx, c.p, prt_vm_ins_jmp_rel(1));     /* 0 -> 2 */
    emit(ctx, c.p, prt_vm_ins_call(c.add_a));  /* 1 skipped */
    emit(ctx, c.p, prt_vm_ins_call(c.add_b));  /* 2 */
    emit(ctx, c.p, prt_vm_ins_jmp_abs(5));     /* 3 -> 5 */
    emit(ctx, c.p, prt_vm_ins_call(c.add_a));  /* 4 skipped */
    emit(ctx, c.p, prt_vm_ins_jmp_rel(0));     /* 5 -> 6: a no-op jump */
    emit(ctx, c.p, prt_vm_ins_seti(c.i, kint(ctx, c.p, 2))); /* 6 */
    emit(ctx, c.p, prt_vm_ins_loop(c.i, 1));   /* 7: i 2 -> 1, jumps to 9 */
    emit(ctx, c.p, prt_vm_ins_call(c.add_a));  /* 8 skipped */
    emit(ctx, c.p, prt_vm_ins_loop(c.i, 1));   /* 9: i 1 -> 0, falls through */
    emit(ctx, c.p, prt_vm_ins_call(c.add_b));  /* 10 runs */
    emit(ctx, c.p, prt_vm_ins_n(PRT_OP_NOP));  /* 11 */
    emit(ctx, c.p, prt_vm_ins_n(PRT_OP_HALT)); /* 12 */
    emit(ctx, c.p, prt_vm_ins_call(c.add_a));  /* 13 never reached */
    emit(ctx, c.p, prt_vm_ins_n(PRT_OP_HALT)); /* 14 */
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
    counting_prog c = counting(ctx);
    emit(ctx, c.p, prt_vm_ins_seti(c.i, kint(ctx, c.p, 3)));
    emit(ctx, c.p, prt_vm_ins_call(c.add_a));
    emit(ctx, c.p, prt_vm_ins_loop(c.i, -2));
    emit(ctx, c.p, prt_vm_ins_n(PRT_OP_HALT));
    prt_vm *vm = make_vm(ctx, c.p, true);
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
    int x = input(g, "data", 2, 2, 2);
    int y = node(g, "relu", "r", &x, 1, NULL);
    y = node(g, "test_identity", "blk/id", &x, 1, NULL);
    finish(g, &y, 1);
    prt_program *p;
    ck_assert_int_eq(prt_vm_compile(g, 3, &p), PRT_OK);
    n_prepare = n_release = n_run = 0;
    prt_vm *vm = make_vm(ctx, p, true);
    ck_assert_int_eq(n_prepare, 1); /* at creation, once */
    fill_input(vm, 0, 1);
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
    int k = kint(ctx, p, 7);
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
    emit(ctx, p, prt_vm_ins_n(PRT_OP_HALT));
    snprintf(want, cap, "program 'net': instruction 3 (JMP): jump target 14 out of range (0..4)");
}
CASE(jmp_abs_out_of_range) {
    p->code[3] = prt_vm_ins_jmp_abs(5);
    emit(ctx, p, prt_vm_ins_n(PRT_OP_HALT));
    snprintf(want, cap, "program 'net': instruction 3 (JMP): jump target 5 out of range (0..4)");
}
CASE(jmp_backward) {
    p->code[3] = prt_vm_ins_jmp_rel(-2);
    emit(ctx, p, prt_vm_ins_n(PRT_OP_HALT));
    snprintf(want, cap, "program 'net': instruction 3 (JMP): backward jump to 2 (only LOOP may jump back)");
}
CASE(jmp_bad_mode) {
    p->code[3] = prt_vm_ins(PRT_OP_JMP, 2, 0);
    emit(ctx, p, prt_vm_ins_n(PRT_OP_HALT));
    snprintf(want, cap, "program 'net': instruction 3 (JMP): unknown jump mode 2 (0 relative, 1 absolute)");
}
CASE(loop_out_of_range) {
    int r = counter_reg(ctx, p, "i");
    p->code[3] = prt_vm_ins_seti(r, kint(ctx, p, 4));
    emit(ctx, p, prt_vm_ins_loop(r, -100));
    emit(ctx, p, prt_vm_ins_n(PRT_OP_HALT));
    snprintf(want, cap, "program 'net': instruction 4 (LOOP): jump target -95 out of range (0..5)");
}
CASE(loop_counter_unset) {
    int r = counter_reg(ctx, p, "i");
    p->code[3] = prt_vm_ins_loop(r, -2);
    emit(ctx, p, prt_vm_ins_n(PRT_OP_HALT));
    snprintf(want, cap, "program 'net': instruction 3 (LOOP): counter r%d 'i' is read before any SETI sets it", r);
}
CASE(loop_resets_own_counter) {
    int r = counter_reg(ctx, p, "i");
    int k = kint(ctx, p, 4);
    p->code[3] = prt_vm_ins_seti(r, k);
    emit(ctx, p, prt_vm_ins_seti(r, k));      /* 4 */
    emit(ctx, p, prt_vm_ins_loop(r, -2));     /* 5 -> 4 */
    emit(ctx, p, prt_vm_ins_n(PRT_OP_HALT));
    snprintf(want, cap,
             "program 'net': instruction 4 (SETI): resets counter r%d 'i' inside the body 4..5 of the LOOP at 5, which would never end", r);
}
CASE(loops_overlap) {
    int i = counter_reg(ctx, p, "i"), j = counter_reg(ctx, p, "j");
    int k = kint(ctx, p, 4);
    p->code[3] = prt_vm_ins_seti(i, k);
    emit(ctx, p, prt_vm_ins_seti(j, k));      /* 4 */
    emit(ctx, p, prt_vm_ins_n(PRT_OP_NOP));   /* 5 */
    emit(ctx, p, prt_vm_ins_loop(i, -2));     /* 6 -> 5 */
    emit(ctx, p, prt_vm_ins_loop(j, -2));     /* 7 -> 6 */
    emit(ctx, p, prt_vm_ins_n(PRT_OP_HALT));
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
    p->code[3] = prt_vm_ins_seti(reg_of(p, "data"), kint(ctx, p, 1));
    emit(ctx, p, prt_vm_ins_n(PRT_OP_HALT));
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
    prt_graph *g = small_net(ctx);
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
    prt_graph *g = small_net(ctx);
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

    counting_prog c = counting(ctx);
    int k = kint(ctx, c.p, 100000);
    emit(ctx, c.p, prt_vm_ins_seti(c.i, k));
    emit(ctx, c.p, prt_vm_ins_jmp_rel(0));
    emit(ctx, c.p, prt_vm_ins_n(PRT_OP_NOP));
    emit(ctx, c.p, prt_vm_ins_loop(c.i, -2));
    emit(ctx, c.p, prt_vm_ins_jmp_abs(5));
    emit(ctx, c.p, prt_vm_ins_n(PRT_OP_HALT));
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
    ck_assert_int_eq(PRT_OP_COUNT, 6);
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
    prt_graph *g = branchy_net(ctx);
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
    prt_graph *g = branchy_net(ctx);
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
    prt_graph *g = small_net(ctx);
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
    t = tcase_create("verify");
    tcase_add_loop_test(t, test_verifier_rejects, 0, N_CASES);
    tcase_add_test(t, test_resolve_unknown_op);
    tcase_add_test(t, test_disasm_lines);
    suite_add_tcase(s, t);
    t = tcase_create("order");
    tcase_add_test(t, test_order_keeps_ordered_graph);
    tcase_add_test(t, test_order_sorts_and_breaks_ties_by_index);
    tcase_add_test(t, test_order_reports_cycle);
    suite_add_tcase(s, t);
    return s;
}

int main(void) { return tu_run(vm_suite()); }

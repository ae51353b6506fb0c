/* The memory planner: every example graph (up to MU_UNIT_MAX_FLOPS per image;
 * the larger ones are in test_memory_examples.c) runs bit-identically planned,
 * unplanned and poisoned, forward and training, with and without the recompute
 * rewrites; the poison mode catches plans that free memory too early and the
 * validator catches overlapping ones; and the planner's pieces on small graphs:
 * in-place sharing, workspaces, regions and gradient buckets, refused control
 * flow, the memory limit's message and byte-size parsing. */
// labels: unit
#include "tests/memory_util.h"
#include "tests/vm_util.h"

#include "ops/train_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every example file, listed once in main before the runner forks. */
static char **examples;
static int n_examples;

/* ---- every example ----------------------------------------------------------------- */

/* Whether example i is small enough for this suite (batch 4). */
static bool unit_sized(int i) {
    prt_context *ctx = tu_context();
    bool small = mu_flops_per_image(ctx, examples[i]) <= MU_UNIT_MAX_FLOPS;
    prt_context_destroy(ctx);
    return small;
}

/* Batch 4, and batch 1, where concat inputs become views into the output. */
START_TEST(test_example_planned_bits) {
    if (!unit_sized(_i)) return;
    mu_check_example(examples[_i], 4);
    mu_check_example(examples[_i], 1);
}
END_TEST

START_TEST(test_example_recompute_bits) {
    if (!unit_sized(_i)) return;
    mu_check_recompute(examples[_i], 4);
    mu_check_recompute(examples[_i], 1);
}
END_TEST

/* The two small examples stay in this suite: the threshold must not drop them. */
START_TEST(test_small_examples_are_unit_sized) {
    int found = 0;
    for (int i = 0; i < n_examples; i++) {
        const char *base = strrchr(examples[i], '/') + 1;
        if (strcmp(base, "fashion-cnn.yaml") == 0 || strcmp(base, "polynet-mini.yaml") == 0) {
            ck_assert_msg(unit_sized(i), "%s", examples[i]);
            found++;
        }
    }
    ck_assert_int_eq(found, 2);
}
END_TEST

/* ---- broken plans ------------------------------------------------------------------ */

#define FASHION "examples/fashion-cnn.yaml"

/* Reference results of a compiled net: unplanned. */
static void reference(prt_context *ctx, const mu_net *net, bool training, mu_result *out) {
    prt_vm_options o = {.training = training, .unplanned = true};
    mu_run(ctx, net->p, &o, 2, net->classes, 3, out);
    mu_expect_finite(out, "reference");
}

/* Moving a buffer onto another that is live at the same time: the validator
 * names both and their ranges, and running the plan changes the results. */
static void overlap_caught(bool training) {
    prt_context *ctx = tu_context();
    mu_net net;
    mu_compile(ctx, tu_src(FASHION), training, PRT_RECOMPUTE_none, 4, &net);
    prt_mem_plan *plan = net.p->plan;
    /* a: an activation's buffer; b: a buffer born while a lives and dying no
     * later, no larger (so that, moved onto a, it overlaps a alone), and written
     * before a's last read: an activation's buffer where there is one (training),
     * else a workspace (inference, where every activation lives in a chain of
     * in-place calls that nothing else is born inside) */
    int a = -1, b = -1;
    for (int pass = 0; pass < 2 && b < 0; pass++)
        for (int i = 0; i < plan->n_bufs && b < 0; i++)
            for (int j = 0; j < plan->n_bufs && b < 0; j++) {
                const prt_mem_buffer *x = &plan->bufs[i], *y = &plan->bufs[j];
                if (x->reg < 0 || net.p->regs[x->reg].kind != PRT_REG_ACT || x->offset == y->offset) continue;
                if (pass == 0 ? y->reg < 0 : y->call < 0) continue;
                if (y->first > x->first && y->last <= x->last && y->first < x->last && y->bytes <= x->bytes)
                    a = i, b = j;
            }
    ck_assert_msg(b >= 0, "no pair of buffers to overlap");
    mu_result ref, got;
    reference(ctx, &net, training, &ref);

    prt_mem_buffer *x = &plan->bufs[a], *y = &plan->bufs[b];
    y->offset = x->offset;
    for (int r = 0; r < plan->n_regs; r++)
        if (plan->reg_buffer[r] == b) plan->reg_offset[r] = y->offset;
    if (y->call >= 0) plan->ws_offset[y->call] = (int64_t)y->offset;
    char want[512];
    snprintf(want, sizeof want,
             "memory plan: buffers %d and %d overlap in memory ([%zu, %zu) and [%zu, %zu)) while both are live "
             "(instructions %d..%d and %d..%d)",
             a, b, x->offset, x->offset + x->bytes, y->offset, y->offset + y->bytes, x->first, x->last, y->first,
             y->last);
    ck_assert_int_eq(prt_mem_plan_validate(ctx, plan), PRT_ERR_INTERNAL);
    ck_assert_str_eq(prt_last_error(ctx), want);

    /* b's producer overwrites a before a's last reader has read it (a workspace
     * may go unused, so only an activation is sure to change the results) */
    ck_assert_int_eq(y->reg >= 0, training);
    for (int poison = 0; poison < 2 && y->reg >= 0; poison++) {
        prt_vm_options o = {.training = training, .poison = poison};
        mu_run(ctx, net.p, &o, 2, net.classes, 3, &got);
        ck_assert_msg(mu_differ(&got, &ref), "%s: buffer %d moved onto %d, yet the results are the same",
                      training ? "training" : "inference", b, a);
        mu_result_free(&got);
    }
    mu_result_free(&ref);
    mu_net_free(ctx, &net);
    prt_context_destroy(ctx);
}

START_TEST(test_validate_catches_overlap_inference) { overlap_caught(false); }
END_TEST

START_TEST(test_validate_catches_overlap_training) { overlap_caught(true); }
END_TEST

/* Each activation buffer in turn ends one instruction before its real last
 * reader. Nothing else moves, so a plain planned run still gives the right
 * bits (the plan is still "valid"); the poison mode overwrites the buffer with
 * NaN before that reader, and the results change. */
static void early_release_caught(bool training) {
    prt_context *ctx = tu_context();
    mu_net net;
    mu_compile(ctx, tu_src(FASHION), training, PRT_RECOMPUTE_none, 4, &net);
    prt_mem_plan *plan = net.p->plan;
    mu_result ref, got;
    reference(ctx, &net, training, &ref);
    int tried = 0;
    for (int b = 0; b < plan->n_bufs; b++) {
        prt_mem_buffer *x = &plan->bufs[b];
        if (x->reg < 0 || x->last <= x->first || x->last == plan->n_code - 1) continue;
        int last = x->last;
        x->last = last - 1;
        ck_assert_int_eq(prt_mem_plan_validate(ctx, plan), PRT_OK);
        prt_vm_options o = {.training = training};
        mu_run(ctx, net.p, &o, 2, net.classes, 3, &got);
        mu_expect_identical(&got, &ref, "a shortened lifetime without poison");
        mu_result_free(&got);
        o.poison = true;
        mu_run(ctx, net.p, &o, 2, net.classes, 3, &got);
        ck_assert_msg(mu_differ(&got, &ref),
                      "%s: buffer %d ('%s', instructions %d..%d) released before instruction %d, yet poison changed "
                      "nothing",
                      training ? "training" : "inference", b, net.p->regs[x->reg].name, x->first, last, last);
        mu_result_free(&got);
        x->last = last;
        tried++;
    }
    /* fashion-cnn: 5 such buffers in inference, 16 in training */
    ck_assert_int_ge(tried, training ? 10 : 3);
    mu_result_free(&ref);
    mu_net_free(ctx, &net);
    prt_context_destroy(ctx);
}

START_TEST(test_poison_catches_early_release_inference) { early_release_caught(false); }
END_TEST

START_TEST(test_poison_catches_early_release_training) { early_release_caught(true); }
END_TEST

/* ---- in place ---------------------------------------------------------------------- */

static int reg(const prt_program *p, const char *name) {
    for (int r = 0; r < p->n_regs; r++)
        if (strcmp(p->regs[r].name, name) == 0) return r;
    ck_abort_msg("no register '%s'", name);
    return -1;
}

static void expect_shared(const prt_program *p, const char *x, const char *y, bool shared) {
    const prt_mem_plan *plan = p->plan;
    int a = reg(p, x), b = reg(p, y);
    ck_assert_int_eq(plan->reg_region[a], PRT_MEM_ARENA);
    ck_assert_int_eq(plan->reg_region[b], PRT_MEM_ARENA);
    ck_assert_msg((plan->reg_buffer[a] == plan->reg_buffer[b]) == shared, "'%s' and '%s': buffers %d and %d", x, y,
                  plan->reg_buffer[a], plan->reg_buffer[b]);
    ck_assert_msg((plan->reg_offset[a] == plan->reg_offset[b]) == shared, "'%s' and '%s': offsets %zu and %zu", x, y,
                  plan->reg_offset[a], plan->reg_offset[b]);
}

/* data -> conv c1 -> relu r1 -> linear fc: c1 dies at r1, which takes its memory. */
START_TEST(test_relu_in_place_over_dying_input) {
    prt_context *ctx = tu_context();
    prt_graph *g = vt_small_net(ctx);
    prt_program *p;
    ck_assert_int_eq(prt_vm_compile(g, 2, &p), PRT_OK);
    mu_check_plan(ctx, p);
    expect_shared(p, "c1", "r1", true);
    expect_shared(p, "r1", "fc", false);
    ck_assert_int_eq(p->plan->n_inplace, 1);
    prt_program_destroy(ctx, p);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

/* data -> conv c1 -> relu r1; add(first, second) reads c1 after r1, so r1 cannot
 * overwrite c1; the add then runs in place over its first input, which dies there. */
static void relu_then_add(bool c1_first) {
    prt_context *ctx = tu_context();
    prt_graph *g;
    ck_assert_int_eq(prt_graph_new(ctx, "net", &g), PRT_OK);
    int x = vt_input(g, "data", 3, 6, 6);
    const prt_op_schema *conv = vt_op(ctx, "conv", NULL);
    prt_attr a[16];
    vt_attrs_default(conv, a);
    vt_set_int(conv, a, "out", 4);
    vt_set_int(conv, a, "kernel", 3);
    vt_set_int(conv, a, "pad", 1);
    int c1 = vt_node(g, "conv", "c1", &x, 1, a);
    int r1 = vt_node(g, "relu", "r1", &c1, 1, NULL);
    int in[2] = {c1_first ? c1 : r1, c1_first ? r1 : c1};
    int sum = vt_node(g, "add", "sum", in, 2, NULL);
    sum = vt_node(g, "flatten", "flat", &sum, 1, NULL);
    vt_finish(g, &sum, 1);
    prt_program *p;
    ck_assert_int_eq(prt_vm_compile(g, 2, &p), PRT_OK);
    mu_check_plan(ctx, p);
    expect_shared(p, "c1", "r1", false);
    expect_shared(p, "sum", c1_first ? "c1" : "r1", true);
    expect_shared(p, "sum", c1_first ? "r1" : "c1", false);
    /* flatten over sum: in place too (sum dies there) */
    expect_shared(p, "flat", "sum", true);
    ck_assert_int_eq(p->plan->n_inplace, 2);
    /* and the results are those of separate buffers */
    mu_result ref, got;
    prt_vm_options o = {.unplanned = true};
    mu_run(ctx, p, &o, 2, 0, 5, &ref);
    o = (prt_vm_options){.poison = true};
    mu_run(ctx, p, &o, 2, 0, 5, &got);
    mu_expect_identical(&got, &ref, "relu then add, poisoned");
    mu_result_free(&got);
    mu_result_free(&ref);
    prt_program_destroy(ctx, p);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}

START_TEST(test_relu_not_in_place_when_input_read_later) {
    relu_then_add(true);
    relu_then_add(false);
}
END_TEST

/* An input belongs to the caller: ReLU straight over it writes a buffer of its own. */
START_TEST(test_relu_not_in_place_over_an_input) {
    prt_context *ctx = tu_context();
    prt_graph *g;
    ck_assert_int_eq(prt_graph_new(ctx, "net", &g), PRT_OK);
    int x = vt_input(g, "data", 3, 4, 4);
    int y = vt_node(g, "relu", "r", &x, 1, NULL);
    vt_finish(g, &y, 1);
    prt_program *p;
    ck_assert_int_eq(prt_vm_compile(g, 2, &p), PRT_OK);
    mu_check_plan(ctx, p);
    expect_shared(p, "data", "r", false);
    ck_assert_int_eq(p->plan->n_inplace, 0);
    prt_program_destroy(ctx, p);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

/* ---- views ------------------------------------------------------------------------ */

/* data -> conv a (3 ch), conv b (5 ch) -> concat -> flatten: at batch 1 the
 * channels are the outermost dimension, so a and b are written straight into
 * their slices of the concat; at batch 2 they are not contiguous there. */
static void concat_views(int64_t batch) {
    prt_context *ctx = tu_context();
    prt_graph *g;
    ck_assert_int_eq(prt_graph_new(ctx, "views", &g), PRT_OK);
    int x = vt_input(g, "data", 2, 5, 5);
    const prt_op_schema *conv = vt_op(ctx, "conv", NULL);
    prt_attr at[16];
    vt_attrs_default(conv, at);
    vt_set_int(conv, at, "out", 3);
    vt_set_int(conv, at, "kernel", 3);
    vt_set_int(conv, at, "pad", 1);
    int a = vt_node(g, "conv", "a", &x, 1, at);
    vt_set_int(conv, at, "out", 5);
    int b = vt_node(g, "conv", "b", &x, 1, at);
    int in[2] = {a, b};
    int cat = vt_node(g, "concat", "cat", in, 2, NULL);
    int y = vt_node(g, "flatten", "flat", &cat, 1, NULL);
    vt_finish(g, &y, 1);
    prt_program *p;
    ck_assert_int_eq(prt_vm_compile(g, batch, &p), PRT_OK);
    const prt_mem_plan *plan = p->plan;
    mu_check_plan(ctx, p);
    int ra = reg(p, "a"), rb = reg(p, "b"), rc = reg(p, "cat");
    if (batch == 1) {
        ck_assert_int_eq(plan->n_views, 2);
        ck_assert_uint_eq(plan->reg_offset[ra], plan->reg_offset[rc]);
        ck_assert_uint_eq(plan->reg_offset[rb], plan->reg_offset[rc] + 3 * 5 * 5 * sizeof(float));
    } else {
        ck_assert_int_eq(plan->n_views, 0);
        ck_assert_int_ne(plan->reg_buffer[ra], plan->reg_buffer[rc]);
        ck_assert_int_ne(plan->reg_buffer[rb], plan->reg_buffer[rc]);
    }
    expect_shared(p, "flat", "cat", true); /* flatten in place either way */
    mu_result ref, got;
    prt_vm_options o = {.unplanned = true};
    mu_run(ctx, p, &o, 2, 0, 9, &ref);
    mu_expect_finite(&ref, "views");
    o = (prt_vm_options){.poison = true};
    mu_run(ctx, p, &o, 2, 0, 9, &got);
    mu_expect_identical(&got, &ref, "concat views, poisoned");
    mu_result_free(&got);
    mu_result_free(&ref);
    prt_program_destroy(ctx, p);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}

START_TEST(test_concat_inputs_as_views) {
    concat_views(1);
    concat_views(2);
}
END_TEST

/* ---- planner options ------------------------------------------------------------------ */

/* polynet-mini training at batch 1 (in place, views and a bucket all in use):
 * each option off, and all off, still plans validly and runs bit-identically. */
START_TEST(test_plan_options) {
    prt_context *ctx = tu_context();
    mu_net net;
    mu_compile(ctx, tu_src("examples/polynet-mini.yaml"), true, PRT_RECOMPUTE_none, 1, &net);
    prt_program *p = net.p;
    prt_mem_plan *orig = p->plan;
    ck_assert_int_gt(orig->n_inplace, 0);
    ck_assert_int_gt(orig->n_views, 0);
    mu_result ref, got;
    prt_vm_options vo = {.training = true, .unplanned = true};
    mu_run(ctx, p, &vo, 2, net.classes, 11, &ref);
    static const prt_mem_plan_options opts[] = {
        {.no_inplace = true},
        {.no_views = true},
        {.no_buckets = true},
        {.no_inplace = true, .no_views = true, .no_buckets = true},
    };
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        prt_mem_plan *plan;
        ck_assert_msg(prt_mem_plan_build_opts(ctx, p, &opts[i], &plan) == PRT_OK, "%s", prt_last_error(ctx));
        mu_check_plan_opts(ctx, p, plan, &opts[i]);
        p->plan = plan;
        for (int poison = 0; poison < 2; poison++) {
            char what[128];
            snprintf(what, sizeof what, "options %zu%s", i, poison ? ", poisoned" : "");
            vo = (prt_vm_options){.training = true, .poison = poison};
            mu_run(ctx, p, &vo, 2, net.classes, 11, &got);
            mu_expect_identical(&got, &ref, what);
            mu_result_free(&got);
        }
        p->plan = orig;
        prt_mem_plan_destroy(ctx, plan);
    }
    mu_result_free(&ref);
    mu_net_free(ctx, &net);
    prt_context_destroy(ctx);
}
END_TEST

/* ---- workspaces -------------------------------------------------------------------- */

START_TEST(test_workspace_ops_get_workspace_buffers) {
    prt_context *ctx = tu_context();
    prt_graph *g = vt_branchy_net(ctx);
    prt_program *p;
    ck_assert_int_eq(prt_vm_compile(g, 3, &p), PRT_OK);
    const prt_mem_plan *plan = p->plan;
    mu_check_plan(ctx, p);
    int n_ws = 0;
    for (int pc = 0; pc < p->n_code; pc++) {
        if (PRT_VM_RAW_OP(p->code[pc]) != PRT_OP_CALL) continue;
        int k = (int)PRT_VM_RAW_X(p->code[pc]);
        size_t ws;
        ck_assert_int_eq(prt_vm_call_workspace(ctx, p, k, &ws), PRT_OK);
        if (ws == 0) continue;
        n_ws++;
        int b = -1;
        for (int i = 0; i < plan->n_bufs; i++)
            if (plan->bufs[i].call == k) b = i;
        ck_assert_int_ge(b, 0);
        ck_assert_int_eq(plan->bufs[b].first, pc);
        ck_assert_int_eq(plan->bufs[b].last, pc);
        char name[256], want[256];
        snprintf(want, sizeof want, "workspace of '%s' (%s)", p->k[k].call.node, p->ops[p->k[k].call.op].name);
        ck_assert_str_eq(prt_mem_buffer_name(p, plan, b, name, sizeof name), want);
    }
    ck_assert_int_gt(n_ws, 0);
    ck_assert_uint_gt(plan->workspace_bytes, 0);
    /* a register buffer is named after its register */
    char name[256];
    int r = reg(p, "prob");
    ck_assert_str_eq(prt_mem_buffer_name(p, plan, plan->reg_buffer[r], name, sizeof name), "prob");
    prt_program_destroy(ctx, p);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

/* ---- regions of a training step ------------------------------------------------------ */

/* fashion-cnn with its solver (SGD, momentum, Nesterov): parameters 421,738
 * floats (the file's comment), one momentum tensor per parameter, running mean
 * and variance for BN layers of 32 and 64 channels; every gradient in a bucket
 * (the whole set, 1.6 MiB, fits one). */
START_TEST(test_training_regions_fashion) {
    prt_context *ctx = tu_context();
    mu_net net;
    mu_compile(ctx, tu_src(FASHION), true, PRT_RECOMPUTE_none, 8, &net);
    const prt_program *p = net.p;
    const prt_mem_plan *plan = p->plan;
    mu_check_plan(ctx, p);
    ck_assert_uint_eq(plan->param_bytes, 421738u * 4);
    ck_assert_uint_eq(plan->optimizer_bytes, 421738u * 4);
    ck_assert_uint_eq(plan->state_bytes, (32u + 64u) * 2 * 4);
    ck_assert_uint_eq(plan->grad_bytes, 421738u * 4);
    ck_assert_int_eq(plan->n_buckets, 1);
    /* the optimizer node: parameters, then gradients, then state */
    const prt_node *up = &net.g->nodes[net.ti.update_node];
    int k = net.ti.n_params;
    ck_assert_int_eq(up->n_in, 3 * k);
    for (int j = 0; j < up->n_in; j++) {
        int r = reg(p, net.g->values[up->in[j]].name);
        prt_mem_region want = j < k || j >= 2 * k ? PRT_MEM_PERSISTENT : PRT_MEM_GRAD;
        ck_assert_msg(plan->reg_region[r] == want, "update input %d '%s': region %d", j, p->regs[r].name,
                      plan->reg_region[r]);
    }
    ck_assert_int_eq(plan->reg_region[reg(p, "block1/batchnorm_1.mean")], PRT_MEM_PERSISTENT);
    ck_assert_int_eq(plan->reg_region[reg(p, "block2/batchnorm_1.var")], PRT_MEM_PERSISTENT);
    mu_net_free(ctx, &net);
    prt_context_destroy(ctx);
}
END_TEST

/* Adam keeps two moments per parameter. */
START_TEST(test_training_regions_adam) {
    prt_context *ctx = tu_context();
    mu_net net;
    mu_compile(ctx, tu_src("examples/polynet-mini.yaml"), true, PRT_RECOMPUTE_none, 2, &net);
    const prt_mem_plan *plan = net.p->plan;
    mu_check_plan(ctx, net.p);
    ck_assert_int_eq(net.g->solver->optimizer, PRT_OPT_adam);
    ck_assert_uint_eq(plan->param_bytes, 641506u * 4);
    ck_assert_uint_eq(plan->optimizer_bytes, 2 * plan->param_bytes);
    ck_assert_uint_eq(plan->grad_bytes, plan->param_bytes);
    mu_net_free(ctx, &net);
    prt_context_destroy(ctx);
}
END_TEST

/* ---- control flow ------------------------------------------------------------------ */

static void expect_refused(prt_program *p, prt_context *ctx, const char *msg) {
    prt_mem_plan *plan = (prt_mem_plan *)&plan; /* not NULL, so the test sees it cleared */
    ck_assert_int_eq(prt_mem_plan_build(ctx, p, &plan), PRT_ERR_UNSUPPORTED);
    ck_assert_str_eq(prt_last_error(ctx), msg);
    ck_assert_ptr_null(plan);
}

START_TEST(test_plan_refuses_control_flow) {
    prt_context *ctx = tu_context();
    /* CALL a += 1; LOOP i -2; HALT (unverified: nothing sets i; the planner
     * looks at the control flow first) */
    vt_counting_prog c = vt_counting(ctx);
    vt_emit(ctx, c.p, prt_vm_ins_call(c.add_a));
    vt_emit(ctx, c.p, prt_vm_ins_loop(c.i, -2));
    vt_emit(ctx, c.p, prt_vm_ins_n(PRT_OP_HALT));
    expect_refused(c.p, ctx,
                   "program 'count': instruction 1 (LOOP): the memory planner handles straight-line programs only");
    prt_program_destroy(ctx, c.p);

    /* SETI i 3; CALL; LOOP; HALT: a verified loop */
    c = vt_counting(ctx);
    vt_emit(ctx, c.p, prt_vm_ins_seti(c.i, vt_kint(ctx, c.p, 3)));
    vt_emit(ctx, c.p, prt_vm_ins_call(c.add_a));
    vt_emit(ctx, c.p, prt_vm_ins_loop(c.i, -2));
    vt_emit(ctx, c.p, prt_vm_ins_n(PRT_OP_HALT));
    ck_assert_msg(prt_vm_verify(ctx, c.p) == PRT_OK, "%s", prt_last_error(ctx));
    expect_refused(c.p, ctx,
                   "program 'count': instruction 0 (SETI): the memory planner handles straight-line programs only");
    prt_program_destroy(ctx, c.p);

    /* CALL; JMP +1; CALL; HALT */
    c = vt_counting(ctx);
    vt_emit(ctx, c.p, prt_vm_ins_call(c.add_a));
    vt_emit(ctx, c.p, prt_vm_ins_jmp_rel(1));
    vt_emit(ctx, c.p, prt_vm_ins_call(c.add_b));
    vt_emit(ctx, c.p, prt_vm_ins_n(PRT_OP_HALT));
    expect_refused(c.p, ctx,
                   "program 'count': instruction 1 (JMP): the memory planner handles straight-line programs only");
    prt_program_destroy(ctx, c.p);

    /* CALL; HALT; CALL; HALT */
    c = vt_counting(ctx);
    vt_emit(ctx, c.p, prt_vm_ins_call(c.add_a));
    vt_emit(ctx, c.p, prt_vm_ins_n(PRT_OP_HALT));
    vt_emit(ctx, c.p, prt_vm_ins_call(c.add_b));
    vt_emit(ctx, c.p, prt_vm_ins_n(PRT_OP_HALT));
    expect_refused(c.p, ctx,
                   "program 'count': instruction 1: HALT before the end; the memory planner handles straight-line "
                   "programs only");
    prt_program_destroy(ctx, c.p);

    /* the same calls in a straight line plan fine */
    c = vt_counting(ctx);
    vt_emit(ctx, c.p, prt_vm_ins_call(c.add_a));
    vt_emit(ctx, c.p, prt_vm_ins_n(PRT_OP_NOP));
    vt_emit(ctx, c.p, prt_vm_ins_call(c.add_b));
    vt_emit(ctx, c.p, prt_vm_ins_n(PRT_OP_HALT));
    prt_mem_plan *plan;
    ck_assert_msg(prt_mem_plan_build(ctx, c.p, &plan) == PRT_OK, "%s", prt_last_error(ctx));
    ck_assert_int_eq(prt_mem_plan_validate(ctx, plan), PRT_OK);
    ck_assert_int_eq(plan->reg_region[c.a], PRT_MEM_PERSISTENT);
    ck_assert_int_eq(plan->reg_region[c.one], PRT_MEM_PERSISTENT);
    ck_assert_int_eq(plan->reg_region[c.i], PRT_MEM_NONE);
    ck_assert_uint_eq(plan->arena_bytes, 0);
    prt_mem_plan_destroy(ctx, plan);
    prt_program_destroy(ctx, c.p);
    prt_context_destroy(ctx);
}
END_TEST

/* ---- the memory limit -------------------------------------------------------------- */

static void limit_message(bool training) {
    prt_context *ctx = tu_context();
    prt_graph *g = vt_small_net(ctx);
    prt_train_info ti;
    if (training) {
        prt_solver s;
        prt_solver_defaults(&s);
        ck_assert_int_eq(prt_train_build(g, &s, 10, &ti), PRT_OK);
    }
    prt_program *p;
    ck_assert_int_eq(prt_vm_compile(g, 2, &p), PRT_OK);
    const prt_mem_plan *plan = p->plan;
    mu_check_plan(ctx, p);
    ck_assert_int_eq(prt_mem_plan_check_limit(ctx, p, plan, plan->total_bytes), PRT_OK);
    ck_assert_int_eq(prt_mem_plan_check_limit(ctx, p, plan, SIZE_MAX), PRT_OK);

    size_t limit = plan->total_bytes - 1;
    ck_assert_int_eq(prt_mem_plan_check_limit(ctx, p, plan, limit), PRT_ERR_LIMIT);
    char t[32], l[32], pa[32], op[32], gr[32], ar[32], pk[32], want[1024];
    int pc = plan->peak_pc;
    ck_assert_int_eq(PRT_VM_RAW_OP(p->code[pc]), PRT_OP_CALL);
    const prt_call_desc *d = &p->k[PRT_VM_RAW_X(p->code[pc])].call;
    snprintf(want, sizeof want,
             "program '%s' needs %s but the memory limit is %s (parameters, running statistics and optimizer state "
             "%s, of which optimizer state %s; arena %s, of which gradients %s); the arena peaks at instruction %d "
             "(CALL %s '%s') with %s live",
             p->name, prt_mem_format_bytes(plan->total_bytes, t, sizeof t), prt_mem_format_bytes(limit, l, sizeof l),
             prt_mem_format_bytes(plan->persistent_bytes, pa, sizeof pa),
             prt_mem_format_bytes(plan->optimizer_bytes, op, sizeof op),
             prt_mem_format_bytes(plan->arena_bytes, ar, sizeof ar),
             prt_mem_format_bytes(plan->grad_bytes, gr, sizeof gr), pc, p->ops[d->op].name, d->node,
             prt_mem_format_bytes(plan->lower_bound_bytes, pk, sizeof pk));
    ck_assert_str_eq(prt_last_error(ctx), want);
    if (training) {
        ck_assert_uint_gt(plan->optimizer_bytes, 0);
        ck_assert_uint_gt(plan->grad_bytes, 0);
    }
    prt_program_destroy(ctx, p);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}

START_TEST(test_limit_message) {
    limit_message(false);
    limit_message(true);
}
END_TEST

/* ---- byte sizes ------------------------------------------------------------------------ */

START_TEST(test_parse_bytes) {
    static const struct {
        const char *s;
        size_t want;
    } ok[] = {
        {"0", 0},
        {"4096", 4096},
        {"100B", 100},
        {"2K", 2048},
        {"2KiB", 2048},
        {"3KB", 3000},
        {"0.5KiB", 512},
        {"512MiB", (size_t)512 << 20},
        {"512M", (size_t)512 << 20},
        {"20MB", 20000000},
        {"8GiB", (size_t)8 << 30},
        {"8G", (size_t)8 << 30},
        {"1.5GiB", (size_t)3 << 29},
        {"1.5GB", 1500000000},
        {"2TiB", (size_t)2 << 40},
        {"3TB", (size_t)3000000000000},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        size_t got = 12345;
        ck_assert_msg(prt_mem_parse_bytes(ok[i].s, &got), "'%s' refused", ok[i].s);
        ck_assert_msg(got == ok[i].want, "'%s': %zu, expected %zu", ok[i].s, got, ok[i].want);
    }
    static const char *const bad[] = {"",    "GiB", "-1",  "-1GiB", "8 GiB", "8GiB ",       "8GiBs", "8XB",
                                      "8Gi", "abc", "nan", "inf",   "1e30",  "20000000TiB", "8GiB8",
                                      " 8GiB", "+8GiB", "0x10", "0x1p4K", "-0", "1.", ".5", "1e3"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t got = 12345;
        ck_assert_msg(!prt_mem_parse_bytes(bad[i], &got), "'%s' accepted as %zu", bad[i], got);
        ck_assert_uint_eq(got, 12345);
    }
    size_t got = 1;
    ck_assert(!prt_mem_parse_bytes(NULL, &got));
}
END_TEST

START_TEST(test_format_bytes) {
    static const struct {
        size_t n;
        const char *want;
    } cases[] = {
        {0, "0 B"},
        {100, "100 B"},
        {1023, "1023 B"},
        {1024, "1.00 KiB"},
        {1536, "1.50 KiB"},
        {(size_t)512 << 20, "512.00 MiB"},
        {(size_t)3 << 29, "1.50 GiB"},
        {(size_t)5 << 40, "5.00 TiB"},
        {(size_t)1 << 50, "1024.00 TiB"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[32];
        ck_assert_str_eq(prt_mem_format_bytes(cases[i].n, buf, sizeof buf), cases[i].want);
    }
    /* what the format writes, the parser reads back (to the printed precision) */
    size_t back;
    ck_assert(prt_mem_parse_bytes("1.50GiB", &back));
    ck_assert_uint_eq(back, (size_t)3 << 29);
}
END_TEST

/* ---- names ---------------------------------------------------------------------------- */

START_TEST(test_names) {
    ck_assert_str_eq(prt_mem_strategy_name(PRT_MEM_by_size), "by_size");
    ck_assert_str_eq(prt_mem_strategy_name(PRT_MEM_by_first_use), "by_first_use");
    ck_assert_str_eq(prt_mem_strategy_name(PRT_MEM_STRATEGY_COUNT), "?");
    static const char *const modes[] = {"none", "cheap", "segments"};
    for (int m = 0; m < 3; m++) {
        prt_recompute_mode got = PRT_RECOMPUTE_MODE_COUNT;
        ck_assert_str_eq(prt_recompute_mode_name((prt_recompute_mode)m), modes[m]);
        ck_assert(prt_recompute_mode_from_name(modes[m], &got));
        ck_assert_int_eq(got, m);
    }
    ck_assert_int_eq(PRT_RECOMPUTE_MODE_COUNT, 3);
    prt_recompute_mode got = PRT_RECOMPUTE_cheap;
    ck_assert(!prt_recompute_mode_from_name("Cheap", &got));
    ck_assert(!prt_recompute_mode_from_name("", &got));
    ck_assert_int_eq(got, PRT_RECOMPUTE_cheap);
    ck_assert_str_eq(prt_recompute_mode_name(PRT_RECOMPUTE_MODE_COUNT), "?");
}
END_TEST

/* ---- the rewrite's own errors ---------------------------------------------------------- */

START_TEST(test_rewrite_needs_a_training_graph) {
    prt_context *ctx = tu_context();
    prt_graph *g = vt_small_net(ctx);
    int n = g->n_nodes;
    char want[256];
    snprintf(want, sizeof want, "graph 'net': recompute needs a training graph (forward nodes 0 of %d)", n);
    ck_assert_int_eq(prt_mem_rewrite(g, 0, PRT_RECOMPUTE_cheap, NULL, NULL), PRT_ERR_INVALID);
    ck_assert_str_eq(prt_last_error(ctx), want);
    ck_assert_int_eq(prt_mem_rewrite(g, n, (prt_recompute_mode)7, NULL, NULL), PRT_ERR_INVALID);
    ck_assert_str_eq(prt_last_error(ctx), "recompute: unknown mode 7");
    ck_assert_int_eq(g->n_nodes, n);
    /* none changes nothing */
    prt_rewrite_stats st = {.n_recomputed = 9};
    ck_assert_int_eq(prt_mem_rewrite(g, n, PRT_RECOMPUTE_none, NULL, &st), PRT_OK);
    ck_assert_int_eq(g->n_nodes, n);
    ck_assert_int_eq(st.n_recomputed, 0);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

int main(void) {
    examples = mu_example_files(&n_examples);
    if (n_examples == 0) return 1;

    Suite *s = suite_create("memory");
    TCase *tc = tcase_create("examples");
    tcase_add_loop_test(tc, test_example_planned_bits, 0, n_examples);
    tcase_add_loop_test(tc, test_example_recompute_bits, 0, n_examples);
    tcase_add_test(tc, test_small_examples_are_unit_sized);
    suite_add_tcase(s, tc);
    tc = tcase_create("broken plans");
    tcase_add_test(tc, test_validate_catches_overlap_inference);
    tcase_add_test(tc, test_validate_catches_overlap_training);
    tcase_add_test(tc, test_poison_catches_early_release_inference);
    tcase_add_test(tc, test_poison_catches_early_release_training);
    suite_add_tcase(s, tc);
    tc = tcase_create("planner");
    tcase_add_test(tc, test_relu_in_place_over_dying_input);
    tcase_add_test(tc, test_relu_not_in_place_when_input_read_later);
    tcase_add_test(tc, test_relu_not_in_place_over_an_input);
    tcase_add_test(tc, test_concat_inputs_as_views);
    tcase_add_test(tc, test_plan_options);
    tcase_add_test(tc, test_workspace_ops_get_workspace_buffers);
    tcase_add_test(tc, test_training_regions_fashion);
    tcase_add_test(tc, test_training_regions_adam);
    tcase_add_test(tc, test_plan_refuses_control_flow);
    tcase_add_test(tc, test_limit_message);
    tcase_add_test(tc, test_parse_bytes);
    tcase_add_test(tc, test_format_bytes);
    tcase_add_test(tc, test_names);
    tcase_add_test(tc, test_rewrite_needs_a_training_graph);
    suite_add_tcase(s, tc);
    int rc = tu_run(s);
    mu_free_names(examples, n_examples);
    return rc;
}

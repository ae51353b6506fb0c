/* batchnorm_relu and its graph pass (ops/op_batchnorm_relu.c,
 * op_batchnorm_relu_bwd.c, scheduler/fuse.c):
 *  - the kernels (reference and fast) against batchnorm then relu, and
 *    relu_bwd then batchnorm_bwd, with the same kernels: bit for bit, in
 *    training (batch statistics, running update, none on a RECOMPUTE) and
 *    outside it, on several shapes of non-zero data, dx also in place on dy;
 *  - the pass on PolyNet-mini and fashion-cnn: how many pairs it fuses, that a
 *    batchnorm read by a relu and anything else stays, parameter names kept;
 *    the fused graph's forward run and 3 training steps bit for bit the
 *    unfused graph's (outputs, parameters, running statistics, optimizer state);
 *  - the memory plan of PolyNet-mini's fused training step (test_plan_polynet_mini
 *    says what it saves and what it cannot).
 * (The gradient check of batchnorm_relu is test_grad.c's per-op harness.) */
// labels: unit
#include "tests/memory_util.h"
#include "tests/vm_util.h"

#include "scheduler/scheduler_impl.h"
#include "parrots/parrots.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CK_OK(ctx, call) ck_assert_msg((call) == PRT_OK, "%s: %s", #call, prt_last_error(ctx))

/* ---- kernels ------------------------------------------------------------------- */

typedef struct buf {
    prt_shape shape;
    float *data;
} buf;

static buf buf_new(const prt_shape *s) {
    buf b = {*s, calloc((size_t)prt_shape_count(s) + 1, sizeof(float))};
    ck_assert_ptr_nonnull(b.data);
    return b;
}
static buf buf_copy(const buf *a) {
    buf b = buf_new(&a->shape);
    memcpy(b.data, a->data, (size_t)prt_shape_count(&a->shape) * sizeof(float));
    return b;
}
static size_t buf_bytes(const buf *b) { return (size_t)prt_shape_count(&b->shape) * sizeof(float); }

static uint64_t rs = 0x243f6a8885a308d3ull;
static float urand(void) {
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (float)((double)(rs >> 11) / 9007199254740992.0);
}
/* uniform in [lo, hi), never 0 */
static void fill(buf *b, float lo, float hi) {
    for (int64_t i = 0; i < prt_shape_count(&b->shape); i++) {
        float v = lo + (hi - lo) * urand();
        b->data[i] = v == 0 ? 0.25f : v;
    }
}

/* Runs op `name` with kernel ref or fast on in -> out (eps 1e-3, momentum 0.2). */
static void run(prt_context *ctx, const char *name, bool ref, bool training, bool recompute, buf **in, int n_in,
                buf **out, int n_out) {
    const prt_op_schema *s = prt_op_find(ctx->ops, name, NULL);
    ck_assert_ptr_nonnull(s);
    prt_attr attrs[8];
    prt_attrs_default(s, attrs);
    if (!strncmp(name, "batchnorm", 9)) {
        attrs[0].f = 1e-3;
        attrs[1].f = 0.2;
    }
    prt_tensor ti[8], to[4];
    const prt_tensor *tip[8];
    prt_tensor *top[4];
    for (int k = 0; k < n_in; k++) prt_tensor_wrap(&ti[k], in[k]->data, PRT_F32, &in[k]->shape), tip[k] = &ti[k];
    for (int k = 0; k < n_out; k++) prt_tensor_wrap(&to[k], out[k]->data, PRT_F32, &out[k]->shape), top[k] = &to[k];
    /* in place: an output given as an input's buffer */
    for (int k = 0; k < n_out; k++)
        for (int j = 0; j < n_in; j++)
            if (out[k] == in[j]) top[k] = &ti[j];
    prt_kernel_call c = {.ctx = ctx, .attrs = attrs, .n_in = n_in, .in = tip, .n_out = n_out, .out = top,
                         .training = training, .recompute = recompute, .dev = prt_cpu_device(ctx)};
    const prt_kernel *k = ref ? &s->ref : prt_op_kernel(s, false);
    void *ws = NULL;
    size_t wsz = 0;
    if (!ref && s->workspace) {
        /* the workspace hook sees the data inputs' shapes */
        prt_shape shapes[8], outs[4], params[4];
        bool present[4];
        int n_data = s->min_in;
        for (int j = 0; j < n_in; j++) shapes[j] = in[j]->shape;
        prt_infer_ctx ic = {.ctx = ctx, .node_name = "t", .attrs = attrs, .n_in = s->n_params ? n_data : n_in,
                            .in = shapes, .in_dtype = PRT_F32, .n_out = n_out, .out = outs, .out_dtype = PRT_F32,
                            .n_params = s->n_params, .params = params, .param_present = present, .op_name = s->name};
        wsz = s->workspace(&ic);
        if (wsz) ws = aligned_alloc(64, (wsz + 63) / 64 * 64);
        c.workspace = ws;
        c.workspace_size = wsz;
    }
    if (k->prepare) CK_OK(ctx, k->prepare(&c, &c.state));
    CK_OK(ctx, k->run(&c));
    if (k->release) k->release(c.state);
    free(ws);
}

static void expect_same(const buf *a, const buf *b, const char *what) {
    size_t n = buf_bytes(a);
    ck_assert_uint_eq(n, buf_bytes(b));
    if (memcmp(a->data, b->data, n) == 0) return;
    size_t e = 0;
    while (a->data[e] == b->data[e] || memcmp(&a->data[e], &b->data[e], 4) == 0) e++;
    ck_abort_msg("%s: differs first at %zu: %.9g vs %.9g", what, e, (double)a->data[e], (double)b->data[e]);
}

static bool some_positive_some_zero(const buf *y) {
    int64_t pos = 0, zero = 0;
    for (int64_t i = 0; i < prt_shape_count(&y->shape); i++) pos += y->data[i] > 0, zero += y->data[i] == 0;
    return pos > 0 && zero > 0;
}

START_TEST(test_kernels_bit_identical) {
    prt_context *ctx = tu_context();
    const prt_shape xs[] = {{4, {4, 3, 5, 5}}, {2, {6, 7}}, {4, {2, 16, 3, 9}}, {3, {3, 5, 11}}};
    int checks = 0;
    for (size_t si = 0; si < sizeof xs / sizeof xs[0]; si++)
        for (int ref = 0; ref < 2; ref++)
            for (int mode = 0; mode < 3; mode++) { /* inference, training, training RECOMPUTE */
                bool training = mode > 0, recompute = mode == 2;
                char what[200];
                snprintf(what, sizeof what, "shape %zu, %s kernels, %s", si, ref ? "reference" : "fast",
                         mode == 0 ? "inference" : mode == 1 ? "training" : "recompute");
                prt_shape cs = prt_shape_make(1, &xs[si].d[1]);
                buf x = buf_new(&xs[si]), sc = buf_new(&cs), sh = buf_new(&cs), mean = buf_new(&cs), var = buf_new(&cs);
                fill(&x, -1.5f, 2.5f); /* a non-zero mean */
                fill(&sc, 0.5f, 1.5f);
                fill(&sh, -0.5f, 0.5f);
                fill(&mean, -0.5f, 1.0f);
                fill(&var, 0.5f, 2.0f);
                /* unfused: batchnorm, then relu over its output (in place, as the planner does) */
                buf m1 = buf_copy(&mean), v1 = buf_copy(&var), z = buf_new(&xs[si]);
                buf *bi[] = {&x, &sc, &sh, &m1, &v1}, *bo[] = {&z};
                run(ctx, "batchnorm", ref, training, recompute, bi, 5, bo, 1);
                buf *ri[] = {&z}, *ro[] = {&z};
                run(ctx, "relu", ref, training, recompute, ri, 1, ro, 1);
                /* fused */
                buf m2 = buf_copy(&mean), v2 = buf_copy(&var), y = buf_new(&xs[si]);
                buf *fi[] = {&x, &sc, &sh, &m2, &v2}, *fo[] = {&y};
                run(ctx, "batchnorm_relu", ref, training, recompute, fi, 5, fo, 1);
                ck_assert_msg(some_positive_some_zero(&y), "%s: the relu cut nothing or everything", what);
                expect_same(&z, &y, what);
                expect_same(&m1, &m2, what);
                expect_same(&v1, &v2, what);
                bool updated = memcmp(m2.data, mean.data, buf_bytes(&mean)) != 0;
                ck_assert_msg(updated == (mode == 1), "%s: running mean %s", what, updated ? "moved" : "stayed");

                /* backward: relu_bwd then batchnorm_bwd, against the fused op, dx apart and on dy */
                buf dy = buf_new(&xs[si]);
                fill(&dy, -1.0f, 1.0f);
                buf dz = buf_new(&xs[si]), dx1 = buf_new(&xs[si]), ds1 = buf_new(&cs), db1 = buf_new(&cs);
                buf *rbi[] = {&dy, &z}, *rbo[] = {&dz};
                run(ctx, "relu_bwd", ref, training, false, rbi, 2, rbo, 1);
                buf *bbi[] = {&dz, &x, &sc, &mean, &var}, *bbo[] = {&dx1, &ds1, &db1};
                run(ctx, "batchnorm_bwd", ref, training, false, bbi, 5, bbo, 3);
                for (int inplace = 0; inplace < 2; inplace++) {
                    buf g = buf_copy(&dy), dx2 = buf_new(&xs[si]), ds2 = buf_new(&cs), db2 = buf_new(&cs);
                    buf *fbi[] = {&g, &y, &x, &sc, &mean, &var}, *fbo[] = {inplace ? &g : &dx2, &ds2, &db2};
                    run(ctx, "batchnorm_relu_bwd", ref, training, false, fbi, 6, fbo, 3);
                    char w2[260];
                    snprintf(w2, sizeof w2, "%s, backward%s", what, inplace ? " in place" : "");
                    expect_same(&dx1, inplace ? &g : &dx2, w2);
                    expect_same(&ds1, &ds2, w2);
                    expect_same(&db1, &db2, w2);
                    free(g.data), free(dx2.data), free(ds2.data), free(db2.data);
                    checks++;
                }
                buf *all[] = {&x, &sc, &sh, &mean, &var, &m1, &v1, &z, &m2, &v2, &y, &dy, &dz, &dx1, &ds1, &db1};
                for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]->data);
            }
    ck_assert_int_eq(checks, 4 * 2 * 3 * 2);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(test_bwd_errors) {
    prt_context *ctx = tu_context();
    const prt_op_schema *s = prt_op_find(ctx->ops, "batchnorm_relu_bwd", NULL);
    prt_attr attrs[2];
    prt_attrs_default(s, attrs);
    prt_shape in[6] = {{4, {2, 3, 4, 4}}, {4, {2, 3, 4, 5}}, {4, {2, 3, 4, 4}}, {1, {3}}, {1, {3}}, {1, {3}}}, out[3];
    prt_infer_ctx ic = {.ctx = ctx, .node_name = "t", .attrs = attrs, .n_in = 6, .in = in, .in_dtype = PRT_F32,
                        .n_out = 3, .out = out, .out_dtype = PRT_F32, .op_name = s->name};
    ck_assert_int_eq(s->infer(&ic), PRT_ERR_SHAPE);
    ck_assert_str_eq(prt_last_error(ctx),
                     "layer 't' (batchnorm_relu_bwd): the forward output y is [2, 3, 4, 5], expected [2, 3, 4, 4] like "
                     "the input x");
    in[1] = in[0];
    in[3].d[0] = 4;
    ck_assert_int_eq(s->infer(&ic), PRT_ERR_SHAPE);
    ck_assert_str_eq(prt_last_error(ctx),
                     "layer 't' (batchnorm_relu_bwd): the scale is [4], expected [3] for the input [2, 3, 4, 4]");
    in[3].d[0] = 3;
    ic.n_in = 5;
    ck_assert_int_eq(s->infer(&ic), PRT_ERR_SHAPE);
    ck_assert_str_eq(prt_last_error(ctx), "layer 't' (batchnorm_relu_bwd): takes (dy, y, x, scale) or (dy, y, x, "
                                          "scale, mean, var), got 5 inputs");
    ic.n_in = 6;
    CK_OK(ctx, s->infer(&ic));
    prt_context_destroy(ctx);
}
END_TEST

/* ---- the pass ------------------------------------------------------------------- */

static int count_op(const prt_graph *g, const char *name) {
    int id, n = 0;
    if (!prt_op_find(g->ctx->ops, name, &id)) return -1;
    for (int i = 0; i < g->n_nodes; i++) n += g->nodes[i].op == id;
    return n;
}

/* What the pass should fuse: batchnorms whose output one relu reads, alone. */
static int fusable(const prt_graph *g) {
    int bn, relu, n = 0;
    prt_op_find(g->ctx->ops, "batchnorm", &bn);
    prt_op_find(g->ctx->ops, "relu", &relu);
    for (int i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].op != bn) continue;
        int v = g->nodes[i].out[0], readers = 0, relus = 0;
        for (int o = 0; o < g->n_outputs; o++) readers += g->outputs[o] == v;
        for (int j = 0; j < g->n_nodes; j++)
            for (int k = 0; k < g->nodes[j].n_in; k++)
                if (g->nodes[j].in[k] == v) readers++, relus += g->nodes[j].op == relu;
        n += readers == 1 && relus == 1;
    }
    return n;
}

static prt_graph *load(prt_context *ctx, const char *rel, bool fuse, int *n_fused) {
    prt_graph *g;
    CK_OK(ctx, prt_graph_load_yaml(ctx, tu_src(rel), &g));
    if (fuse) CK_OK(ctx, prt_graph_fuse_bn_relu(g, n_fused));
    return g;
}

static void expect_fused_counts(const char *rel, int want) {
    prt_context *ctx = tu_context();
    prt_graph *g = load(ctx, rel, false, NULL);
    int bn = count_op(g, "batchnorm"), relu = count_op(g, "relu"), nodes = g->n_nodes, values = g->n_values;
    int expect = fusable(g);
    ck_assert_int_eq(expect, want);
    int n = -1;
    CK_OK(ctx, prt_graph_fuse_bn_relu(g, &n));
    ck_assert_int_eq(n, want);
    ck_assert_int_eq(count_op(g, "batchnorm_relu"), want);
    ck_assert_int_eq(count_op(g, "batchnorm"), bn - want);
    ck_assert_int_eq(count_op(g, "relu"), relu - want);
    ck_assert_int_eq(g->n_nodes, nodes - want);
    ck_assert_int_eq(g->n_values, values - want);
    /* consistent: producers, names, every batchnorm_relu with batchnorm's params */
    int fid;
    prt_op_find(ctx->ops, "batchnorm_relu", &fid);
    for (int v = 0; v < g->n_values; v++) {
        ck_assert_int_eq(prt_graph_find_value(g, g->values[v].name), v);
        int p = g->values[v].producer;
        if (p < 0) continue;
        bool found = false;
        for (int k = 0; k < g->nodes[p].n_out; k++) found |= g->nodes[p].out[k] == v;
        ck_assert_msg(found, "value '%s': producer %d does not write it", g->values[v].name, p);
    }
    for (int i = 0; i < g->n_nodes; i++) {
        const prt_node *nd = &g->nodes[i];
        if (nd->op != fid) continue;
        ck_assert_msg(strchr(nd->name, '+') != NULL, "fused node '%s'", nd->name);
        ck_assert_int_eq(nd->n_in, 5);
        const char *slots[] = {"scale", "shift", "mean", "var"};
        for (int k = 0; k < 4; k++) {
            char want_name[512];
            snprintf(want_name, sizeof want_name, "%s.%s", nd->param_path, slots[k]);
            ck_assert_str_eq(g->values[nd->in[1 + k]].name, want_name);
        }
    }
    /* fusing again finds nothing */
    CK_OK(ctx, prt_graph_fuse_bn_relu(g, &n));
    ck_assert_int_eq(n, 0);
    CK_OK(ctx, prt_graph_infer(g, 2));
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}

/* every conv_bn_relu of PolyNet-mini; its conv_bn branches (before an add) stay */
START_TEST(test_pass_counts_polynet_mini) { expect_fused_counts("examples/polynet-mini.yaml", 106); }
END_TEST
START_TEST(test_pass_counts_fashion) { expect_fused_counts("examples/fashion-cnn.yaml", 2); }
END_TEST

/* A batchnorm read by a relu and something else, or a graph output, stays. */
START_TEST(test_pass_leaves_shared_bn) {
    prt_context *ctx = tu_context();
    prt_graph *g;
    CK_OK(ctx, prt_graph_new(ctx, "t", &g));
    int x = vt_input(g, "x", 3, 4, 4);
    int b1 = vt_node(g, "batchnorm", "b1", &x, 1, NULL);
    int r1 = vt_node(g, "relu", "r1", &b1, 1, NULL);
    int two[2] = {b1, r1};
    int s1 = vt_node(g, "add", "s1", two, 2, NULL); /* b1 read twice */
    int b2 = vt_node(g, "batchnorm", "blk/b2", &s1, 1, NULL);
    int r2 = vt_node(g, "relu", "blk/r2", &b2, 1, NULL); /* fused */
    int b3 = vt_node(g, "batchnorm", "b3", &r2, 1, NULL);
    int r3 = vt_node(g, "relu", "r3", &b3, 1, NULL); /* b3 is also an output */
    int outs[2] = {r3, b3};
    vt_finish(g, outs, 2);
    int n;
    CK_OK(ctx, prt_graph_fuse_bn_relu(g, &n));
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(count_op(g, "batchnorm"), 2);
    ck_assert_int_eq(count_op(g, "relu"), 2);
    int fid;
    prt_op_find(ctx->ops, "batchnorm_relu", &fid);
    int f = -1;
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].op == fid) f = i;
    ck_assert_int_ge(f, 0);
    ck_assert_str_eq(g->nodes[f].name, "blk/b2+r2");
    ck_assert_str_eq(g->values[g->nodes[f].out[0]].name, "blk/r2");
    ck_assert_str_eq(g->values[g->nodes[f].in[1]].name, "blk/b2.scale");
    ck_assert_int_eq(prt_graph_find_value(g, "blk/b2"), -1);
    CK_OK(ctx, prt_graph_infer(g, 2));
    /* a training graph is refused */
    prt_solver s;
    prt_solver_defaults(&s);
    prt_graph *t = load(ctx, "examples/fashion-cnn.yaml", false, NULL);
    prt_train_info ti;
    CK_OK(ctx, prt_train_build(t, &s, 10, &ti));
    ck_assert_int_eq(prt_graph_fuse_bn_relu(t, &n), PRT_ERR_INVALID);
    ck_assert_str_eq(prt_last_error(ctx), "graph 'fashion-cnn': batchnorm+relu fusion runs on the forward graph, before "
                                          "prt_train_build");
    prt_graph_destroy(t);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

/* mu_compile with the pass between loading and prt_train_build */
static void compile(prt_context *ctx, const char *rel, bool fuse, bool training, int64_t batch, mu_net *out) {
    memset(out, 0, sizeof *out);
    int n = 0;
    out->g = load(ctx, rel, fuse, &n);
    ck_assert(!fuse || n > 0);
    if (training) {
        prt_solver s;
        if (out->g->solver) s = *out->g->solver;
        else prt_solver_defaults(&s);
        s.batch = batch;
        CK_OK(ctx, prt_train_build(out->g, &s, 100, &out->ti));
        CK_OK(ctx, prt_graph_infer(out->g, batch));
        out->classes = (int)out->g->values[out->ti.logits].shape.d[1];
    }
    CK_OK(ctx, prt_vm_compile(out->g, batch, &out->p));
}

/* Outputs of every step and every parameter and state tensor (running
 * statistics, optimizer state) by name; gradients are named after their
 * backward nodes, which differ, and show in the parameters after an update. */
static void expect_same_run(const prt_program *pa, const mu_result *a, const mu_result *b, const char *what) {
    ck_assert_int_eq(a->steps, b->steps);
    ck_assert_int_eq(a->n_outputs, b->n_outputs);
    for (int i = 0; i < a->steps * a->n_outputs; i++) {
        ck_assert_uint_eq(a->outputs[i].bytes, b->outputs[i].bytes);
        ck_assert_msg(memcmp(a->outputs[i].data, b->outputs[i].data, a->outputs[i].bytes) == 0,
                      "%s: output '%s' of step %d differs", what, a->outputs[i].name, i / a->n_outputs);
    }
    int compared = 0;
    for (int r = 0; r < pa->n_regs; r++) {
        if (pa->regs[r].kind != PRT_REG_PARAM && pa->regs[r].kind != PRT_REG_STATE) continue;
        const mu_blob *x = NULL, *y = NULL;
        for (int i = 0; i < a->n_kept; i++)
            if (!strcmp(a->kept[i].name, pa->regs[r].name)) x = &a->kept[i];
        for (int i = 0; i < b->n_kept; i++)
            if (!strcmp(b->kept[i].name, pa->regs[r].name)) y = &b->kept[i];
        ck_assert_msg(x && y, "%s: '%s' kept by one run only", what, pa->regs[r].name);
        ck_assert_uint_eq(x->bytes, y->bytes);
        ck_assert_msg(memcmp(x->data, y->data, x->bytes) == 0, "%s: '%s' differs", what, x->name);
        compared++;
    }
    ck_assert_int_gt(compared, 0);
}

static void expect_same_results(const char *rel, int64_t batch) {
    prt_context *ctx = tu_context();
    for (int training = 0; training < 2; training++) {
        mu_net a, b;
        compile(ctx, rel, false, training, batch, &a);
        compile(ctx, rel, true, training, batch, &b);
        prt_vm_options o = {.training = training};
        mu_result ra, rb;
        int steps = training ? 3 : 1;
        mu_run(ctx, a.p, &o, steps, a.classes, 7, &ra);
        mu_run(ctx, b.p, &o, steps, b.classes, 7, &rb);
        mu_expect_finite(&ra, rel);
        char what[200];
        snprintf(what, sizeof what, "%s %s, fused against unfused", rel, training ? "training (3 steps)" : "forward");
        expect_same_run(a.p, &ra, &rb, what);
        /* and the running statistics did move in training */
        mu_result_free(&ra), mu_result_free(&rb);
        mu_net_free(ctx, &a), mu_net_free(ctx, &b);
    }
    prt_context_destroy(ctx);
}

START_TEST(test_same_results_polynet_mini) { expect_same_results("examples/polynet-mini.yaml", 2); }
END_TEST
START_TEST(test_same_results_fashion) { expect_same_results("examples/fashion-cnn.yaml", 4); }
END_TEST

/* The memory plan of the fused training step. Without a plan (the naive
 * layout, one buffer per tensor) it is smaller: the pre-ReLU tensors and
 * relu_bwd's outputs are gone. The planned peak is not: the planner already
 * runs relu in place over the batchnorm output and relu_bwd over dy, and what
 * is live at the peak (the start of backward) is the same in both graphs:
 * each conv output (batchnorm's backward reads it) and each relu output (the
 * next conv's weight gradient and the mask read it). So the lower bound is
 * equal and the arena equal up to packing (within 1%). */
START_TEST(test_plan_polynet_mini) {
    prt_context *ctx = tu_context();
    mu_net a, b;
    compile(ctx, "examples/polynet-mini.yaml", false, true, 8, &a);
    compile(ctx, "examples/polynet-mini.yaml", true, true, 8, &b);
    const prt_mem_plan *pa = a.p->plan, *pb = b.p->plan;
    printf("polynet-mini training, batch 8: arena %zu -> %zu bytes, lower bound %zu -> %zu, naive %zu -> %zu, "
           "in place %d -> %d\n",
           pa->arena_bytes, pb->arena_bytes, pa->lower_bound_bytes, pb->lower_bound_bytes, pa->naive_bytes,
           pb->naive_bytes, pa->n_inplace, pb->n_inplace);
    ck_assert_uint_lt(pb->naive_bytes, pa->naive_bytes);
    ck_assert_uint_le(pb->lower_bound_bytes, pa->lower_bound_bytes);
    ck_assert_uint_le(pb->arena_bytes, pa->arena_bytes + pa->arena_bytes / 100);
    ck_assert_uint_eq(pb->persistent_bytes, pa->persistent_bytes);
    mu_check_plan(ctx, b.p);
    mu_net_free(ctx, &a), mu_net_free(ctx, &b);
    prt_context_destroy(ctx);
}
END_TEST

int main(void) {
    Suite *s = suite_create("bn_relu");
    TCase *tc = tcase_create("kernels");
    tcase_add_test(tc, test_kernels_bit_identical);
    tcase_add_test(tc, test_bwd_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("pass");
    tcase_add_test(tc, test_pass_counts_polynet_mini);
    tcase_add_test(tc, test_pass_counts_fashion);
    tcase_add_test(tc, test_pass_leaves_shared_bn);
    tcase_add_test(tc, test_same_results_polynet_mini);
    tcase_add_test(tc, test_same_results_fashion);
    tcase_add_test(tc, test_plan_polynet_mini);
    suite_add_tcase(s, tc);
    return tu_run(s);
}

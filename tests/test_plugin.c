/* Operator plugins (ops/plugin.c): a good plugin loads and its ops become
 * registered ops that run in a compiled graph, get their attributes and pass
 * gradients (checked against finite differences); every loading error has its
 * exact message and leaves the registry and a loaded plugin as they were;
 * loading a file twice does nothing; PARROTS_PLUGIN_PATH lists with
 * directories; the YAML `requires:` key; and a saved program naming a plugin op
 * that is not loaded. The plugins are the C files in tests/plugins/, built by
 * tests/CMakeLists.txt into PRT_TEST_PLUGIN_DIR. */
// labels: unit
#include "tests/test_util.h"

#include "frontends/onnx/onnx_impl.h"
#include "frontends/program_file_api.h"
#include "ops/plugin_impl.h"
#include "ops/train_impl.h"
#include "parrots/plugin.h"
#include "vm/vm_api.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GOOD PRT_TEST_PLUGIN_DIR "/good/tp.so"
#define MORE PRT_TEST_PLUGIN_DIR "/good/tq.so"
#define BAD(name) PRT_TEST_PLUGIN_DIR "/bad/" name ".so"

static prt_context *ctx_with_tp(void) {
    prt_context *ctx = tu_context();
    ck_assert_msg(prt_plugin_load(ctx, GOOD) == PRT_OK, "%s", prt_last_error(ctx));
    return ctx;
}

static prt_graph *load(prt_context *ctx, const char *yaml) {
    prt_graph *g = NULL;
    ck_assert_msg(prt_graph_load_yaml_string(ctx, "net.yaml", yaml, strlen(yaml), &g) == PRT_OK, "%s",
                  prt_last_error(ctx));
    return g;
}

/* Runs a one-input network on x (n floats, batch 1) and copies output 0 to y. */
static void run_net(prt_context *ctx, const char *yaml, const float *x, float *y, int64_t n) {
    prt_graph *g = load(ctx, yaml);
    prt_program *p = NULL;
    prt_vm *vm = NULL;
    ck_assert_msg(prt_vm_compile(g, 1, &p) == PRT_OK, "%s", prt_last_error(ctx));
    for (int ref = 0; ref < 2; ref++) {
        prt_vm_options o = {.reference = ref};
        ck_assert_msg(prt_vm_create(ctx, p, NULL, &o, &vm) == PRT_OK, "%s", prt_last_error(ctx));
        prt_tensor *in = prt_vm_find(vm, g->values[g->inputs[0]].name);
        ck_assert_int_eq(prt_shape_count(&in->shape), n);
        memcpy(PRT_F32P(in), x, (size_t)n * sizeof *x);
        ck_assert_msg(prt_vm_run(vm) == PRT_OK, "%s", prt_last_error(ctx));
        const prt_tensor *out = prt_vm_find(vm, g->values[g->outputs[0]].name);
        ck_assert_int_eq(prt_shape_count(&out->shape), n);
        memcpy(y, PRT_F32P(out), (size_t)n * sizeof *y);
        prt_vm_destroy(vm);
    }
    prt_program_destroy(ctx, p);
    prt_graph_destroy(g);
}

static const char *const AXPB_NET = "parrots: 1\n"
                                    "input: {x: [4]}\n"
                                    "layers:\n"
                                    "  - tp.axpb: {alpha: 3.0, beta: 1.0}\n    name: a\n";

/* tp.axpb still runs in ctx: 3x + 1 */
static void check_axpb_runs(prt_context *ctx) {
    float x[4] = {0, 1, -2, 0.5f}, y[4];
    run_net(ctx, AXPB_NET, x, y, 4);
    for (int i = 0; i < 4; i++) ck_assert_float_eq_tol(y[i], 3 * x[i] + 1, 1e-6);
}

/* ---- a good plugin -------------------------------------------------------------- */

START_TEST(test_load_registers_ops) {
    prt_context *ctx = tu_context();
    int n0 = prt_op_count(ctx->ops);
    ck_assert_ptr_null(prt_op_find(ctx->ops, "tp.axpb", NULL));
    ck_assert_msg(prt_plugin_load(ctx, GOOD) == PRT_OK, "%s", prt_last_error(ctx));
    ck_assert_int_eq(prt_op_count(ctx->ops), n0 + 3);
    ck_assert_int_eq(prt_plugin_count(ctx), 1);
    const prt_op_schema *s = prt_op_find(ctx->ops, "tp.axpb", NULL);
    const prt_op_schema *b = prt_op_find(ctx->ops, "tp.axpb_bwd", NULL);
    ck_assert_ptr_nonnull(s);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(s->version, 2);
    ck_assert_str_eq(prt_op_source(s), "plugin " GOOD " (tp 1.0.0)");
    ck_assert_str_eq(prt_op_source(prt_op_find(ctx->ops, "relu", NULL)), "Parrots (built-in)");
    /* one converted attribute table for ops that share the plugin's array */
    ck_assert_ptr_eq(s->attrs, b->attrs);
    ck_assert_int_eq(s->n_attrs, 2);
    ck_assert_str_eq(s->attrs[0].name, "alpha");
    ck_assert_int_eq(s->attrs[0].type, PRT_ATTR_FLOAT);
    ck_assert_int_eq(s->inplace_in, 0);
    ck_assert_int_eq(b->inplace_in, -1);
    ck_assert_ptr_nonnull(s->grad);
    ck_assert_ptr_null(b->grad);
    ck_assert_str_eq(b->grad_note, "backward-only op");
    ck_assert_ptr_null(s->cuda.run); /* no cuda kernel: no CUDA kernel */
    ck_assert_ptr_eq(s->ref.run, s->fast.run);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(test_forward_and_attributes) {
    prt_context *ctx = ctx_with_tp();
    check_axpb_runs(ctx);
    /* defaults: alpha 2, beta 0.5 */
    float x[4] = {1, 2, 3, 4}, y[4];
    run_net(ctx, "parrots: 1\ninput: {x: [4]}\nlayers:\n  - tp.axpb: {}\n    name: a\n", x, y, 4);
    for (int i = 0; i < 4; i++) ck_assert_float_eq_tol(y[i], 2 * x[i] + 0.5f, 1e-6);
    /* every attribute type: y = x + k + f + 10 v[0] + 100 v[last] + 1000 strlen(s) + 10000 on */
    run_net(ctx, "parrots: 1\ninput: {x: [4]}\nlayers:\n  - tp.probe: {k: 2, s: hello, on: true}\n", x, y, 4);
    for (int i = 0; i < 4; i++) ck_assert_float_eq_tol(y[i], x[i] + 2 + 0.25f + 10 + 200 + 5000 + 10000, 1e-3);
    run_net(ctx, "parrots: 1\ninput: {x: [4]}\nlayers:\n  - tp.probe: {k: 7, v: [3, 4, 5], s: '', f: 0.5}\n", x, y,
            4);
    for (int i = 0; i < 4; i++) ck_assert_float_eq_tol(y[i], x[i] + 7 + 0.5f + 30 + 500, 1e-3);
    prt_graph_stats st;
    prt_graph *g = load(ctx, AXPB_NET);
    ck_assert_int_eq(prt_graph_stats_get(g, &st), PRT_OK);
    ck_assert_int_eq(st.flops, 8); /* the plugin's flops: 2 per element */
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(test_attribute_checks_apply) {
    prt_context *ctx = ctx_with_tp();
    prt_graph *g = NULL;
    const char *y1 = "parrots: 1\ninput: {x: [4]}\nlayers:\n  - tp.probe: {s: hello}\n";
    ck_assert_int_eq(prt_graph_load_yaml_string(ctx, "net.yaml", y1, strlen(y1), &g), PRT_ERR_SCHEMA);
    ck_assert_ptr_nonnull(strstr(prt_last_error(ctx), "'k'"));
    const char *y2 = "parrots: 1\ninput: {x: [4]}\nlayers:\n  - tp.probe: {k: -1}\n";
    ck_assert_int_ne(prt_graph_load_yaml_string(ctx, "net.yaml", y2, strlen(y2), &g), PRT_OK);
    ck_assert_ptr_null(g);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(test_infer_error_names_the_layer) {
    prt_context *ctx = ctx_with_tp();
    prt_graph *g = NULL;
    const char *y = "parrots: 1\ninput: {x: [2000, 1000]}\nlayers:\n  - tp.axpb: {}\n    name: big\n";
    ck_assert_int_eq(prt_graph_load_yaml_string(ctx, "net.yaml", y, strlen(y), &g), PRT_ERR_SHAPE);
    ck_assert_str_eq(prt_last_error(ctx), "net.yaml:4:5: layer 'big' (tp.axpb): at most 1000000 elements");
    prt_context_destroy(ctx);
}
END_TEST

/* ---- gradients through a plugin op ------------------------------------------------ */

/* mean cross-entropy of linear -> tp.axpb, the linear weight's gradient
 * against central differences. With alpha 1 the builder reads the attribute
 * (prt_plugin_grad.attrs) and passes dy through without a backward node. */
START_TEST(test_gradients_flow) {
    prt_context *ctx = ctx_with_tp();
    bool unit_slope = _i == 1;
    prt_graph *g = load(ctx, unit_slope ? "parrots: 1\ninput: {x: [6]}\nlayers:\n  - linear: {out: 4}\n    name: fc\n"
                                          "  - tp.axpb: {alpha: 1.0, beta: 0.25}\n    name: a\n"
                                        : "parrots: 1\ninput: {x: [6]}\nlayers:\n  - linear: {out: 4}\n    name: fc\n"
                                          "  - tp.axpb: {alpha: 1.5, beta: 0.25}\n    name: a\n");
    ck_assert_int_eq(prt_graph_bind_params(g), PRT_OK);
    int logits = g->outputs[0], xent, node, labels;
    const prt_op_schema *xs = prt_op_find(ctx->ops, "softmax_xent", &xent);
    ck_assert_int_eq(prt_graph_add_input(g, "labels", &(prt_shape){.ndim = 1, .d = {1}}, PRT_I32, (prt_loc){0},
                                         &labels), PRT_OK);
    prt_attr attrs[4];
    prt_attrs_default(xs, attrs);
    ck_assert_int_eq(prt_graph_add_node(g, xent, "loss", "loss", (int[]){logits, labels}, 2, attrs, (prt_loc){0},
                                        &node), PRT_OK);
    ck_assert_int_eq(prt_graph_infer_node(g, node), PRT_OK);
    int root = g->nodes[node].out[0], seed = PRT_GRAD_ONE, *grad_of = NULL, n_grad_of = 0;
    ck_assert_int_eq(prt_graph_set_outputs(g, &root, 1), PRT_OK);
    ck_assert_msg(prt_autodiff(g, 1, &root, &seed, &grad_of, &n_grad_of) == PRT_OK, "%s", prt_last_error(ctx));
    int w = prt_graph_find_value(g, "fc.weight");
    ck_assert_int_ge(w, 0);
    ck_assert_int_ge(grad_of[w], 0);
    bool saw_bwd = false;
    for (int n = 0; n < g->n_nodes; n++) saw_bwd |= !strcmp(g->nodes[n].name, "a/tp.axpb_bwd");
    ck_assert(saw_bwd == !unit_slope);
    const char *gname = g->values[grad_of[w]].name;
    ck_assert_int_eq(prt_graph_set_outputs(g, &root, 1), PRT_OK);
    prt_program *p = NULL;
    prt_vm *vm = NULL;
    ck_assert_msg(prt_vm_compile(g, 2, &p) == PRT_OK, "%s", prt_last_error(ctx));
    prt_vm_options o = {.reference = true, .training = true, .unplanned = true};
    ck_assert_msg(prt_vm_create(ctx, p, NULL, &o, &vm) == PRT_OK, "%s", prt_last_error(ctx));
    prt_tensor *x = prt_vm_find(vm, "x");
    prt_rng_fill_normal(7, PRT_F32P(x), prt_shape_count(&x->shape), 0, 1);
    int32_t *l = prt_tensor_data(prt_vm_find(vm, "labels"));
    l[0] = 1;
    l[1] = 3;
    ck_assert_msg(prt_vm_run(vm) == PRT_OK, "%s", prt_last_error(ctx));
    prt_tensor *wt = prt_vm_find(vm, "fc.weight");
    const prt_tensor *gt = prt_vm_find(vm, gname);
    int64_t n = prt_shape_count(&wt->shape);
    float *an = malloc((size_t)n * sizeof *an);
    memcpy(an, PRT_F32P(gt), (size_t)n * sizeof *an);
    double h = 1e-2;
    for (int64_t e = 0; e < n; e += 5) {
        float *pw = PRT_F32P(wt), orig = pw[e];
        pw[e] = (float)(orig + h);
        ck_assert_int_eq(prt_vm_run(vm), PRT_OK);
        double up = PRT_F32P(prt_vm_find(vm, g->values[root].name))[0];
        pw[e] = (float)(orig - h);
        ck_assert_int_eq(prt_vm_run(vm), PRT_OK);
        double down = PRT_F32P(prt_vm_find(vm, g->values[root].name))[0];
        pw[e] = orig;
        double fd = (up - down) / (2 * h);
        ck_assert_msg(fabs(fd - an[e]) <= 2e-3 + 2e-2 * fabs(an[e]), "d/d fc.weight[%lld]: autodiff %.6g, fd %.6g",
                      (long long)e, an[e], fd);
    }
    free(an);
    prt_vm_destroy(vm);
    prt_program_destroy(ctx, p);
    prt_free(ctx, grad_of, 0);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(test_no_grad_is_an_error) {
    prt_context *ctx = tu_context();
    ck_assert_int_eq(prt_plugin_load(ctx, MORE), PRT_OK);
    prt_graph *g = load(ctx, "parrots: 1\ninput: {x: [6]}\nlayers:\n  - linear: {out: 4}\n    name: fc\n"
                             "  - tq.twice: {}\n    name: t\n");
    ck_assert_int_eq(prt_graph_bind_params(g), PRT_OK);
    int root = g->outputs[0], seed, *grad_of = NULL, n_grad_of = 0;
    prt_shape per = {.ndim = 1, .d = {4}};
    ck_assert_int_eq(prt_graph_add_input(g, "seed", &per, PRT_F32, (prt_loc){0}, &seed), PRT_OK);
    ck_assert_int_ne(prt_autodiff(g, 1, &root, &seed, &grad_of, &n_grad_of), PRT_OK);
    ck_assert_ptr_nonnull(strstr(prt_last_error(ctx), "tq.twice has no gradient"));
    prt_free(ctx, grad_of, 0);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

/* ---- loading errors --------------------------------------------------------------- */

typedef struct bad_case {
    const char *path;
    prt_status st;
    const char *msg;
} bad_case;

#define OPSZ "smaller than plugin ABI 1's"
static const bad_case bad_cases[] = {
    {"/nonexistent/libx.so", PRT_ERR_NOT_FOUND, "plugin /nonexistent/libx.so: no such file"},
    {BAD("no_entry"), PRT_ERR_INVALID,
     "plugin " BAD("no_entry") ": no entry point 'prt_plugin_v1' (a Parrots plugin exports const prt_plugin_desc "
     "*prt_plugin_v1(void))"},
    {BAD("abi_new"), PRT_ERR_INVALID, "plugin " BAD("abi_new") ": built for plugin ABI 2, this Parrots supports 1"},
    {BAD("abi_old"), PRT_ERR_INVALID,
     "plugin " BAD("abi_old") ": built for plugin ABI 0, which does not exist (this Parrots supports 1)"},
    {BAD("name"), PRT_ERR_INVALID,
     "plugin " BAD("name") ": op 0: the name 'Bad.OK' must be '<namespace>.<op>' in lower-case letters, digits and "
     "'_' (such as 'myorg.swish')"},
    {BAD("dup_other"), PRT_ERR_INVALID,
     "plugin " BAD("dup_other") ": op 'tp.axpb' is already registered by plugin " GOOD " (tp 1.0.0)"},
    {BAD("dup_inside"), PRT_ERR_INVALID, "plugin " BAD("dup_inside") ": op 'bad.ok' is declared twice (ops 0 and 1)"},
    {BAD("version0"), PRT_ERR_INVALID, "plugin " BAD("version0") ": op 'bad.ok': version 0 (op versions start at 1)"},
    {BAD("n_out"), PRT_ERR_INVALID, "plugin " BAD("n_out") ": op 'bad.ok': n_out 5 is out of range (1 to 4)"},
    {BAD("no_infer"), PRT_ERR_INVALID,
     "plugin " BAD("no_infer") ": op 'bad.ok': no infer function (shape inference is required)"},
    {BAD("no_cpu"), PRT_ERR_INVALID, "plugin " BAD("no_cpu") ": op 'bad.ok': no cpu kernel (a CPU kernel is required)"},
    {BAD("inplace"), PRT_ERR_INVALID,
     "plugin " BAD("inplace") ": op 'bad.ok': inplace_in 1 is not an input every call has (0 to 0)"},
    {BAD("attr_name"), PRT_ERR_INVALID,
     "plugin " BAD("attr_name") ": op 'bad.ok': attribute 0: the name 'Alpha' must be lower-case letters, digits "
     "and '_', starting with a letter or '_'"},
    {BAD("attr_type"), PRT_ERR_INVALID,
     "plugin " BAD("attr_type") ": op 'bad.ok': attribute 'alpha' has type 9 (expected 0 int, 1 float, 2 bool, 3 "
     "ints or 4 string)"},
    {BAD("attr_dup"), PRT_ERR_INVALID,
     "plugin " BAD("attr_dup") ": op 'bad.ok': attribute 'alpha' is declared twice (attributes 0 and 1)"},
    {BAD("init"), PRT_ERR_INVALID, "plugin " BAD("init") ": init failed: no licence for bad.ok"},
    {BAD("init_silent"), PRT_ERR_INVALID,
     "plugin " BAD("init_silent") ": init failed (returned 3) without saying why"},
    {PRT_TEST_PLUGIN_DIR "/good", PRT_ERR_INVALID,
     "plugin " PRT_TEST_PLUGIN_DIR "/good: is a directory (a plugin is a shared library; PARROTS_PLUGIN_PATH and "
     "--plugin also take directories)"},
};

/* struct_size checks: the sizes come from this build's header */
static void size_messages(char *desc_msg, char *op_msg, size_t cap) {
    snprintf(desc_msg, cap, "plugin %s: the descriptor's struct_size 16 is " OPSZ " %zu (initialise it with "
             "PRT_PLUGIN_DESC_INIT)", BAD("desc_size"), sizeof(prt_plugin_desc));
    snprintf(op_msg, cap, "plugin %s: op 0: struct_size 8 is " OPSZ " %zu (initialise it with PRT_PLUGIN_OP_INIT)",
             BAD("op_size"), sizeof(prt_plugin_op));
}

static void expect_refused(prt_context *ctx, const char *path, prt_status st, const char *msg) {
    int n = prt_op_count(ctx->ops), np = prt_plugin_count(ctx);
    ck_assert_int_eq(prt_plugin_load(ctx, path), st);
    ck_assert_str_eq(prt_last_error(ctx), msg);
    ck_assert_int_eq(prt_op_count(ctx->ops), n);
    ck_assert_int_eq(prt_plugin_count(ctx), np);
    ck_assert_ptr_null(prt_op_find(ctx->ops, "bad.ok", NULL));
    ck_assert_ptr_null(prt_op_find(ctx->ops, "bad.other", NULL));
}

START_TEST(test_bad_plugin) {
    const bad_case *c = &bad_cases[_i];
    prt_context *ctx = ctx_with_tp();
    expect_refused(ctx, c->path, c->st, c->msg);
    check_axpb_runs(ctx);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(test_bad_struct_sizes) {
    char dm[512], om[512];
    size_messages(dm, om, sizeof dm);
    prt_context *ctx = ctx_with_tp();
    expect_refused(ctx, BAD("desc_size"), PRT_ERR_INVALID, dm);
    expect_refused(ctx, BAD("op_size"), PRT_ERR_INVALID, om);
    check_axpb_runs(ctx);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(test_not_a_shared_library) {
    prt_context *ctx = ctx_with_tp();
    char path[] = "/tmp/prt_plugin_textXXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "w");
    fputs("this is a text file, not a plugin: it is long enough for glibc to read an ELF header\n", f);
    fclose(f);
    char want[512];
    /* glibc's gist for a text file */
    snprintf(want, sizeof want, "plugin %s: not a loadable shared library (invalid ELF header)", path);
    expect_refused(ctx, path, PRT_ERR_INVALID, want);
    remove(path);
    /* an executable: glibc refuses to dlopen a position-independent one */
    int n = prt_op_count(ctx->ops);
    ck_assert_int_eq(prt_plugin_load(ctx, "/bin/sh"), PRT_ERR_INVALID);
    ck_assert_msg(!strncmp(prt_last_error(ctx), "plugin /bin/sh: not a loadable shared library (", 47), "%s",
                  prt_last_error(ctx));
    ck_assert_int_eq(prt_op_count(ctx->ops), n);
    check_axpb_runs(ctx);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(test_load_twice_is_a_no_op) {
    prt_context *ctx = ctx_with_tp();
    int n = prt_op_count(ctx->ops);
    ck_assert_int_eq(prt_plugin_load(ctx, GOOD), PRT_OK);
    ck_assert_int_eq(prt_op_count(ctx->ops), n);
    ck_assert_int_eq(prt_plugin_count(ctx), 1);
    check_axpb_runs(ctx);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(test_load_path) {
    prt_context *ctx = tu_context();
    ck_assert_int_eq(prt_plugin_load_path(ctx, NULL), PRT_OK);
    ck_assert_msg(prt_plugin_load_path(ctx, "::" PRT_TEST_PLUGIN_DIR "/good:") == PRT_OK, "%s", prt_last_error(ctx));
    ck_assert_int_eq(prt_plugin_count(ctx), 2);
    ck_assert_ptr_nonnull(prt_op_find(ctx->ops, "tp.axpb", NULL));
    ck_assert_ptr_nonnull(prt_op_find(ctx->ops, "tq.twice", NULL));
    /* the same files again, one by name: nothing changes */
    ck_assert_int_eq(prt_plugin_load_path(ctx, GOOD ":" PRT_TEST_PLUGIN_DIR "/good"), PRT_OK);
    ck_assert_int_eq(prt_plugin_count(ctx), 2);
    /* a failing entry stops the list with its message */
    ck_assert_int_eq(prt_plugin_load_path(ctx, PRT_TEST_PLUGIN_DIR "/other:/nonexistent/y.so"), PRT_ERR_NOT_FOUND);
    ck_assert_str_eq(prt_last_error(ctx), "plugin /nonexistent/y.so: no such file");
    ck_assert_int_eq(prt_plugin_count(ctx), 3);
    /* a directory of bad plugins: the first in name order refuses */
    ck_assert_int_eq(prt_plugin_load_path(ctx, PRT_TEST_PLUGIN_DIR "/bad"), PRT_ERR_INVALID);
    ck_assert_str_eq(prt_last_error(ctx),
                     "plugin " BAD("abi_new") ": built for plugin ABI 2, this Parrots supports 1");
    ck_assert_int_eq(prt_plugin_count(ctx), 3);
    prt_context_destroy(ctx);
}
END_TEST

/* ---- requires: and unknown plugin ops ------------------------------------------------ */

START_TEST(test_requires) {
    prt_context *ctx = ctx_with_tp();
    prt_graph *g = NULL;
    const char *ok = "parrots: 1\nrequires:\n  - op: tp.axpb\n    version: 2\n  - {op: tp.probe}\n"
                     "input: {x: [4]}\nlayers:\n  - tp.axpb: {}\n    name: a\n";
    ck_assert_msg(prt_graph_load_yaml_string(ctx, "net.yaml", ok, strlen(ok), &g) == PRT_OK, "%s",
                  prt_last_error(ctx));
    prt_graph_destroy(g);
    g = NULL;
    const char *newer = "parrots: 1\nrequires:\n  - op: tp.axpb\n    version: 3\ninput: {x: [4]}\nlayers:\n"
                        "  - tp.axpb: {}\n    name: a\n";
    ck_assert_int_eq(prt_graph_load_yaml_string(ctx, "net.yaml", newer, strlen(newer), &g), PRT_ERR_SCHEMA);
    ck_assert_str_eq(prt_last_error(ctx), "net.yaml:3:5: the network requires op 'tp.axpb' version >= 3, but the "
                     "loaded one is version 2 (from plugin " GOOD " (tp 1.0.0))");
    const char *missing = "parrots: 1\nrequires:\n  - op: myorg.swish\n    version: 1\ninput: {x: [4]}\nlayers:\n"
                          "  - myorg.swish: {}\n";
    ck_assert_int_eq(prt_graph_load_yaml_string(ctx, "net.yaml", missing, strlen(missing), &g), PRT_ERR_SCHEMA);
    ck_assert_str_eq(prt_last_error(ctx), "net.yaml:3:5: the network requires op 'myorg.swish' (version >= 1), "
                     "which no loaded plugin provides: load it with --plugin or PARROTS_PLUGIN_PATH");
    const char *badkey = "parrots: 1\nrequires:\n  - op: tp.axpb\n    path: /x.so\ninput: {x: [4]}\nlayers:\n"
                         "  - tp.axpb: {}\n";
    ck_assert_int_eq(prt_graph_load_yaml_string(ctx, "net.yaml", badkey, strlen(badkey), &g), PRT_ERR_SCHEMA);
    ck_assert_str_eq(prt_last_error(ctx), "net.yaml:4:5: requires: unknown key 'path' (an entry has 'op' and "
                     "'version')");
    const char *unknown = "parrots: 1\ninput: {x: [4]}\nlayers:\n  - myorg.swish: {}\n";
    ck_assert_int_eq(prt_graph_load_yaml_string(ctx, "net.yaml", unknown, strlen(unknown), &g), PRT_ERR_SCHEMA);
    ck_assert_msg(strstr(prt_last_error(ctx), "net.yaml:4:5: unknown op or module 'myorg.swish' (nearest: ") &&
                      strstr(prt_last_error(ctx), "); a namespaced op comes from a plugin: load it with --plugin or "
                                                  "PARROTS_PLUGIN_PATH"),
                  "%s", prt_last_error(ctx));
    ck_assert_ptr_null(g);
    prt_context_destroy(ctx);
}
END_TEST

/* ONNX export: a plugin op with an ONNX form becomes a node of its domain with
 * every attribute, and the model imports that domain at the op's version; one
 * without is named in the refusal. */
START_TEST(test_onnx_export) {
    prt_context *ctx = ctx_with_tp();
    prt_graph *g = load(ctx, AXPB_NET);
    ck_assert_int_eq(prt_graph_bind_params(g), PRT_OK);
    prt_program *p = NULL;
    prt_vm *vm = NULL;
    ck_assert_msg(prt_vm_compile(g, 1, &p) == PRT_OK, "%s", prt_last_error(ctx));
    ck_assert_msg(prt_vm_create(ctx, p, NULL, NULL, &vm) == PRT_OK, "%s", prt_last_error(ctx));
    char path[256];
    snprintf(path, sizeof path, "/tmp/parrots-plugin-export-%d.onnx", (int)getpid());
    ck_assert_msg(prt_onnx_export(ctx, g, vm, path) == PRT_OK, "%s", prt_last_error(ctx));
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    static uint8_t buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    remove(path);
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, n, buf);
    ck_assert_ptr_nonnull(m);
    ck_assert_uint_eq(m->graph->n_node, 1);
    const Onnx__NodeProto *nd = m->graph->node[0];
    ck_assert_str_eq(nd->op_type, "Axpb");
    ck_assert_str_eq(nd->domain, "org.tp");
    ck_assert_uint_eq(nd->n_attribute, 2);
    ck_assert_str_eq(nd->attribute[0]->name, "alpha");
    ck_assert_float_eq(nd->attribute[0]->f, 3.0f);
    ck_assert_str_eq(nd->attribute[1]->name, "beta");
    ck_assert_float_eq(nd->attribute[1]->f, 1.0f);
    ck_assert_uint_eq(m->n_opset_import, 2);
    ck_assert_str_eq(m->opset_import[0]->domain, "");
    ck_assert_str_eq(m->opset_import[1]->domain, "org.tp");
    ck_assert_int_eq(m->opset_import[1]->version, 2); /* tp.axpb's version */
    onnx__model_proto__free_unpacked(m, NULL);
    prt_vm_destroy(vm);
    prt_program_destroy(ctx, p);
    prt_graph_destroy(g);

    /* tp.probe declares no ONNX form */
    static const char *const PROBE_NET = "parrots: 1\n"
                                         "input: {x: [4]}\n"
                                         "layers:\n"
                                         "  - tp.probe: {k: 1}\n    name: pr\n";
    g = load(ctx, PROBE_NET);
    ck_assert_int_eq(prt_graph_bind_params(g), PRT_OK);
    ck_assert_msg(prt_vm_compile(g, 1, &p) == PRT_OK, "%s", prt_last_error(ctx));
    ck_assert_msg(prt_vm_create(ctx, p, NULL, NULL, &vm) == PRT_OK, "%s", prt_last_error(ctx));
    ck_assert_int_eq(prt_onnx_export(ctx, g, vm, path), PRT_ERR_UNSUPPORTED);
    char want[512];
    snprintf(want, sizeof want, "%s: ops without an ONNX form: tp.probe ('pr')", path);
    ck_assert_str_eq(prt_last_error(ctx), want);
    ck_assert_int_eq(access(path, F_OK), -1);
    prt_vm_destroy(vm);
    prt_program_destroy(ctx, p);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(test_program_needs_the_plugin) {
    prt_context *ctx = ctx_with_tp();
    prt_graph *g = load(ctx, AXPB_NET);
    prt_program *p = NULL;
    ck_assert_int_eq(prt_vm_compile(g, 1, &p), PRT_OK);
    void *bytes = NULL;
    size_t size = 0;
    ck_assert_msg(prt_program_encode(ctx, p, &bytes, &size) == PRT_OK, "%s", prt_last_error(ctx));
    prt_program *q = NULL;
    ck_assert_msg(prt_program_load_buffer(ctx, "net.prog", bytes, size, &q) == PRT_OK, "%s", prt_last_error(ctx));
    prt_program_destroy(ctx, q);
    q = NULL;
    prt_context *bare = tu_context();
    ck_assert_int_eq(prt_program_load_buffer(bare, "net.prog", bytes, size, &q), PRT_ERR_NOT_FOUND);
    ck_assert_msg(strstr(prt_last_error(bare), "unknown op 'tp.axpb': no loaded plugin provides it (load it with "
                                               "--plugin or PARROTS_PLUGIN_PATH)"),
                  "%s", prt_last_error(bare));
    ck_assert_ptr_null(q);
    prt_context_destroy(bare);
    prt_free(ctx, bytes, 0);
    prt_program_destroy(ctx, p);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

static Suite *plugin_suite(void) {
    Suite *s = suite_create("plugin");
    TCase *t = tcase_create("plugin");
    tcase_add_test(t, test_load_registers_ops);
    tcase_add_test(t, test_forward_and_attributes);
    tcase_add_test(t, test_attribute_checks_apply);
    tcase_add_test(t, test_infer_error_names_the_layer);
    tcase_add_loop_test(t, test_gradients_flow, 0, 2);
    tcase_add_test(t, test_no_grad_is_an_error);
    tcase_add_loop_test(t, test_bad_plugin, 0, (int)(sizeof bad_cases / sizeof bad_cases[0]));
    tcase_add_test(t, test_bad_struct_sizes);
    tcase_add_test(t, test_not_a_shared_library);
    tcase_add_test(t, test_load_twice_is_a_no_op);
    tcase_add_test(t, test_load_path);
    tcase_add_test(t, test_requires);
    tcase_add_test(t, test_program_needs_the_plugin);
    tcase_add_test(t, test_onnx_export);
    suite_add_tcase(s, t);
    return s;
}

int main(void) { return tu_run(plugin_suite()); }

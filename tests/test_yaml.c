/* The YAML graph frontend on well-formed networks: layers become nodes with the
 * right names, attributes, shapes and source locations; modules, repeat, sharing,
 * includes, anchors and expressions do what docs/yaml-format.md says. Expected
 * values are worked out by hand from the YAML in each test. Malformed inputs are
 * in test_yaml_errors.c. */
// labels: unit

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontends/yaml_impl.h"
#include "tests/test_util.h"

static prt_graph *load_str(prt_context *ctx, const char *yaml) {
    prt_graph *g = NULL;
    prt_status st = prt_graph_load_yaml_string(ctx, "net.yaml", yaml, strlen(yaml), &g);
    ck_assert_msg(st == PRT_OK, "load failed: %s", prt_last_error(ctx));
    ck_assert_ptr_nonnull(g);
    return g;
}

static const prt_node *node(const prt_graph *g, const char *name) {
    for (int n = 0; n < g->n_nodes; n++)
        if (!strcmp(g->nodes[n].name, name)) return &g->nodes[n];
    ck_abort_msg("no node '%s'", name);
    return NULL;
}

static bool has_node(const prt_graph *g, const char *name) {
    for (int n = 0; n < g->n_nodes; n++)
        if (!strcmp(g->nodes[n].name, name)) return true;
    return false;
}

static const char *op_of(const prt_graph *g, const prt_node *nd) { return prt_op_get(g->ctx->ops, nd->op)->name; }

static const prt_attr *attr(const prt_graph *g, const prt_node *nd, const char *name) {
    int a = prt_op_attr_index(prt_op_get(g->ctx->ops, nd->op), name);
    ck_assert_msg(a >= 0, "no attribute '%s'", name);
    return &nd->attrs[a];
}

/* Value id of parameter slot k (in slot order, present slots only). */
static int param(const prt_node *nd, int k) {
    ck_assert_int_lt(nd->n_data_in + k, nd->n_in);
    return nd->in[nd->n_data_in + k];
}

static void check_shape(const prt_graph *g, int value, int ndim, const int64_t *d) {
    const prt_shape *s = &g->values[value].shape;
    char got[128];
    prt_shape_str(s, got, sizeof got);
    ck_assert_msg(s->ndim == ndim, "value '%s' has shape %s", g->values[value].name, got);
    for (int k = 0; k < ndim; k++)
        ck_assert_msg(s->d[k] == d[k], "value '%s' has shape %s", g->values[value].name, got);
}
#define SHAPE(g, v, ...) \
    check_shape(g, v, sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t), (int64_t[]){__VA_ARGS__})

START_TEST(t_small_net) {
    prt_context *ctx = tu_context();
    prt_graph *g = load_str(ctx,
                            "parrots: 1\n"
                            "input:\n"
                            "  image: [1, 28, 28]\n"
                            "layers:\n"
                            "  - conv: {out: 32, kernel: 3, pad: 1}\n"
                            "  - batchnorm:\n"
                            "  - relu:\n"
                            "  - maxpool: {kernel: 2}\n"
                            "  - flatten:\n"
                            "  - linear: {out: 10}\n"
                            "    name: logits\n"
                            "output: [logits]\n");
    ck_assert_str_eq(g->name, "net");
    ck_assert_int_eq(g->n_nodes, 6);
    ck_assert_int_eq(g->n_inputs, 1);
    const char *names[] = {"conv_0", "batchnorm_1", "relu_2", "maxpool_3", "flatten_4", "logits"};
    const char *ops[] = {"conv", "batchnorm", "relu", "maxpool", "flatten", "linear"};
    for (int k = 0; k < 6; k++) {
        ck_assert_str_eq(g->nodes[k].name, names[k]);
        ck_assert_str_eq(op_of(g, &g->nodes[k]), ops[k]);
        ck_assert_str_eq(g->nodes[k].param_path, names[k]);
        /* each op key sits at column 5 of lines 5..10 */
        ck_assert_str_eq(g->nodes[k].loc.file, "net.yaml");
        ck_assert_int_eq(g->nodes[k].loc.line, 5 + k);
        ck_assert_int_eq(g->nodes[k].loc.col, 5);
    }
    const prt_value *in = &g->values[g->inputs[0]];
    ck_assert_str_eq(in->name, "image");
    ck_assert_int_eq(in->loc.line, 3);
    ck_assert_int_eq(in->loc.col, 3);
    /* default input: the previous layer's output */
    ck_assert_int_eq(g->nodes[0].in[0], g->inputs[0]);
    for (int k = 1; k < 6; k++) ck_assert_int_eq(g->nodes[k].in[0], g->nodes[k - 1].out[0]);
    const prt_node *conv = node(g, "conv_0");
    ck_assert_int_eq(attr(g, conv, "out")->i[0], 32);
    ck_assert(attr(g, conv, "out")->set);
    ck_assert_int_eq(attr(g, conv, "kernel")->n, 1);
    ck_assert_int_eq(attr(g, conv, "kernel")->i[0], 3);
    ck_assert_int_eq(attr(g, conv, "pad")->i[0], 1);
    ck_assert(!attr(g, conv, "stride")->set); /* default from the schema */
    ck_assert_int_eq(attr(g, conv, "stride")->i[0], 1);
    ck_assert(!attr(g, conv, "bias")->set);
    ck_assert_int_eq(attr(g, conv, "bias")->i[0], 1);
    /* 28x28 with pad 1 and a 3x3 kernel stays 28x28; the 2x2 pool halves it */
    SHAPE(g, conv->out[0], 1, 32, 28, 28);
    SHAPE(g, param(conv, 0), 32, 1, 3, 3);
    SHAPE(g, param(conv, 1), 32);
    SHAPE(g, node(g, "maxpool_3")->out[0], 1, 32, 14, 14);
    SHAPE(g, node(g, "flatten_4")->out[0], 1, 32 * 14 * 14);
    const prt_node *fc = node(g, "logits");
    SHAPE(g, param(fc, 0), 10, 32 * 14 * 14);
    ck_assert_int_eq(g->n_outputs, 1);
    ck_assert_int_eq(g->outputs[0], fc->out[0]);
    SHAPE(g, g->outputs[0], 1, 10);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(t_module_args) {
    prt_context *ctx = tu_context();
    prt_graph *g = load_str(ctx,
                            "parrots: 1\n"
                            "name: args-test\n"
                            "input: {x: [3, 16, 16]}\n"
                            "modules:\n"
                            "  cbr:\n"
                            "    args: {out: ~, kernel: 1, pad: \"${kernel // 2}\"}\n"
                            "    layers:\n"
                            "      - conv: {out: $out, kernel: $kernel, pad: $pad, bias: false}\n"
                            "      - batchnorm: {eps: 0.001}\n"
                            "      - relu:\n"
                            "layers:\n"
                            "  - cbr: {out: 8, kernel: 3}\n"
                            "    name: c1\n"
                            "  - cbr: {out: \"${4 * 4}\"}\n"
                            "  - cbr: {out: 4, kernel: 5}\n"
                            "    name: c3\n");
    ck_assert_str_eq(g->name, "args-test");
    ck_assert_int_eq(g->n_nodes, 9);
    const prt_node *c = node(g, "c1/conv_0");
    ck_assert_int_eq(attr(g, c, "out")->i[0], 8);
    ck_assert_int_eq(attr(g, c, "kernel")->i[0], 3);
    ck_assert_int_eq(attr(g, c, "pad")->i[0], 1); /* 3 // 2 */
    ck_assert_int_eq(attr(g, c, "bias")->i[0], 0);
    ck_assert(attr(g, c, "bias")->set);
    ck_assert_int_eq(c->n_in, 2); /* data + weight: no bias parameter */
    ck_assert_double_eq_tol(attr(g, node(g, "c1/batchnorm_1"), "eps")->f, 0.001, 1e-12);
    /* module body locations point into the module: line 8, column 9 */
    ck_assert_int_eq(c->loc.line, 8);
    ck_assert_int_eq(c->loc.col, 9);
    c = node(g, "cbr_1/conv_0");
    ck_assert_int_eq(attr(g, c, "out")->i[0], 16);
    ck_assert_int_eq(attr(g, c, "kernel")->i[0], 1);
    ck_assert_int_eq(attr(g, c, "pad")->i[0], 0);
    c = node(g, "c3/conv_0");
    ck_assert_int_eq(attr(g, c, "pad")->i[0], 2);
    SHAPE(g, c->out[0], 1, 4, 16, 16);
    ck_assert_int_eq(node(g, "cbr_1/conv_0")->in[0], node(g, "c1/relu_2")->out[0]);
    ck_assert_int_eq(g->outputs[0], node(g, "c3/relu_2")->out[0]);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(t_repeat_scale) {
    prt_context *ctx = tu_context();
    prt_graph *g = load_str(ctx,
                            "parrots: 1\n"
                            "input: {x: [2, 6, 6]}\n"
                            "modules:\n"
                            "  block:\n"
                            "    args: {s: ~}\n"
                            "    layers:\n"
                            "      - conv: {out: 4, kernel: 3, pad: 1}\n"
                            "      - scale: {by: $s}\n"
                            "        name: scaled\n"
                            "      - add:\n"
                            "        input: [x, scaled]\n"
                            "layers:\n"
                            "  - conv: {out: 4, kernel: 1}\n"
                            "  - repeat: 5\n"
                            "    name: a\n"
                            "    module: block\n"
                            "    args: {s: \"${1 - 0.3 * i / (n - 1)}\"}\n");
    ck_assert_int_eq(g->n_nodes, 1 + 5 * 3);
    for (int i = 0; i < 5; i++) {
        char name[64];
        snprintf(name, sizeof name, "a/%d/scaled", i);
        double want = 1.0 - 0.3 * i / 4.0;
        ck_assert_double_eq_tol(attr(g, node(g, name), "by")->f, want, 1e-12);
        snprintf(name, sizeof name, "a/%d/conv_0", i);
        const prt_node *c = node(g, name);
        char prev[64];
        if (i == 0)
            snprintf(prev, sizeof prev, "conv_0");
        else
            snprintf(prev, sizeof prev, "a/%d/add_2", i - 1);
        ck_assert_int_eq(c->in[0], node(g, prev)->out[0]);
        /* every instance owns its parameters */
        ck_assert_str_eq(c->param_path, name);
    }
    ck_assert_int_eq(g->outputs[0], node(g, "a/4/add_2")->out[0]);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(t_repeat_module_list) {
    prt_context *ctx = tu_context();
    prt_graph *g = load_str(ctx,
                            "parrots: 1\n"
                            "input: {x: [8]}\n"
                            "modules:\n"
                            "  ma: {layers: [{relu: , name: r}]}\n"
                            "  mb:\n"
                            "    args: {k: 1}\n"
                            "    layers: [{scale: {by: $k}, name: s}]\n"
                            "layers:\n"
                            "  - repeat: 5\n"
                            "    module: [ma, mb]\n"
                            "    name: b\n"
                            "  - repeat: 3\n"
                            "    module: [mb]\n"
                            "    args: {k: \"${(i + 1) * 2}\"}\n");
    ck_assert_int_eq(g->n_nodes, 8);
    ck_assert_str_eq(op_of(g, node(g, "b/0/r")), "relu");
    ck_assert_str_eq(op_of(g, node(g, "b/1/s")), "scale");
    ck_assert_str_eq(op_of(g, node(g, "b/2/r")), "relu");
    ck_assert_str_eq(op_of(g, node(g, "b/3/s")), "scale");
    ck_assert_str_eq(op_of(g, node(g, "b/4/r")), "relu");
    ck_assert(!has_node(g, "b/1/r"));
    ck_assert_double_eq(attr(g, node(g, "b/1/s"), "by")->f, 1.0); /* mb's default */
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof name, "repeat_1/%d/s", i);
        ck_assert_double_eq(attr(g, node(g, name), "by")->f, (i + 1) * 2.0);
    }
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(t_repeat_max_count) {
    prt_context *ctx = tu_context();
    prt_graph *g = load_str(ctx, "parrots: 1\ninput: {x: [2]}\nmodules:\n  m: {layers: [relu: ]}\n"
                                 "layers:\n  - repeat: 10000\n    module: m\n");
    ck_assert_int_eq(g->n_nodes, 10000);
    ck_assert_str_eq(g->nodes[9999].name, "repeat_0/9999/relu_0");
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(t_share_op_layer) {
    prt_context *ctx = tu_context();
    prt_graph *g = load_str(ctx,
                            "parrots: 1\n"
                            "input: {x: [3, 8, 8]}\n"
                            "layers:\n"
                            "  - conv: {out: 3, kernel: 3, pad: 1}\n"
                            "    name: c1\n"
                            "  - batchnorm:\n"
                            "    name: b1\n"
                            "  - conv: {out: 3, kernel: 3, pad: 1}\n"
                            "    name: c2\n"
                            "    share: c1\n"
                            "  - batchnorm:\n"
                            "    name: b2\n");
    const prt_node *c1 = node(g, "c1"), *c2 = node(g, "c2");
    ck_assert_str_eq(c2->param_path, "c1");
    ck_assert_int_eq(param(c1, 0), param(c2, 0)); /* weight */
    ck_assert_int_eq(param(c1, 1), param(c2, 1)); /* bias */
    for (int k = 0; k < 4; k++) ck_assert_int_ne(param(node(g, "b1"), k), param(node(g, "b2"), k));
    prt_graph_stats s;
    ck_assert_int_eq(prt_graph_stats_get(g, &s), PRT_OK);
    /* one conv: 3*3*3*3 + 3; two batch norms: 2 * (3 + 3) */
    ck_assert_int_eq(s.params, 81 + 3 + 12);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(t_share_module_layer) {
    prt_context *ctx = tu_context();
    prt_graph *g = load_str(ctx,
                            "parrots: 1\n"
                            "input: {x: [4, 8, 8]}\n"
                            "modules:\n"
                            "  path:\n"
                            "    layers:\n"
                            "      - conv: {out: 4, kernel: 3, pad: 1, bias: false}\n"
                            "      - batchnorm:\n"
                            "      - relu:\n"
                            "  deep:\n"
                            "    layers:\n"
                            "      - path:\n"
                            "        name: p\n"
                            "      - conv: {out: 4, kernel: 1}\n"
                            "layers:\n"
                            "  - path:\n"
                            "    name: f1\n"
                            "  - path:\n"
                            "    name: f2\n"
                            "    share: {with: f1, ops: [conv]}\n"
                            "  - path:\n"
                            "    name: f3\n"
                            "    share: f1\n"
                            "  - deep:\n"
                            "    name: d1\n"
                            "  - deep:\n"
                            "    name: d2\n"
                            "    share: {with: d1, ops: conv}\n"
                            "  - repeat: 2\n"
                            "    module: path\n"
                            "    name: r1\n"
                            "  - repeat: 2\n"
                            "    module: path\n"
                            "    name: r2\n"
                            "    share: {with: r1}\n");
    int w1 = param(node(g, "f1/conv_0"), 0);
    ck_assert_int_eq(param(node(g, "f2/conv_0"), 0), w1);
    ck_assert_int_eq(param(node(g, "f3/conv_0"), 0), w1);
    ck_assert_str_eq(g->values[w1].name, "f1/conv_0.weight");
    const prt_node *b1 = node(g, "f1/batchnorm_1"), *b2 = node(g, "f2/batchnorm_1"), *b3 = node(g, "f3/batchnorm_1");
    for (int k = 0; k < 4; k++) {
        ck_assert_int_ne(param(b1, k), param(b2, k)); /* ops: [conv] leaves batch norm alone */
        ck_assert_int_eq(param(b1, k), param(b3, k)); /* no ops: everything is shared */
    }
    /* nested paths: d2/p/conv_0 uses d1/p/conv_0's weight, and d2/conv_1 d1/conv_1's */
    ck_assert_int_eq(param(node(g, "d2/p/conv_0"), 0), param(node(g, "d1/p/conv_0"), 0));
    ck_assert_int_eq(param(node(g, "d2/conv_1"), 0), param(node(g, "d1/conv_1"), 0));
    ck_assert_int_eq(param(node(g, "d2/conv_1"), 1), param(node(g, "d1/conv_1"), 1));
    ck_assert_int_ne(param(node(g, "d2/p/batchnorm_1"), 0), param(node(g, "d1/p/batchnorm_1"), 0));
    /* repeat layers share instance by instance */
    ck_assert_int_eq(param(node(g, "r2/1/conv_0"), 0), param(node(g, "r1/1/conv_0"), 0));
    ck_assert_int_ne(param(node(g, "r2/1/conv_0"), 0), param(node(g, "r1/0/conv_0"), 0));
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(t_include) {
    prt_context *ctx = tu_context();
    char path[4096], dir[4096], want[8192];
    snprintf(path, sizeof path, "%s", tu_src("tests/data/yaml/inc_main.yaml"));
    snprintf(dir, sizeof dir, "%s", tu_src("tests/data/yaml"));
    prt_graph *g = NULL;
    ck_assert_msg(prt_graph_load_yaml(ctx, path, &g) == PRT_OK, "%s", prt_last_error(ctx));
    ck_assert_str_eq(g->name, "inc_main");
    ck_assert_str_eq(g->values[g->inputs[0]].loc.file, path);
    const prt_node *c = node(g, "stem/conv_0");
    snprintf(want, sizeof want, "%s/lib/blocks.yaml", dir);
    ck_assert_str_eq(c->loc.file, want);
    ck_assert_int_eq(c->loc.line, 8);
    ck_assert_int_eq(attr(g, c, "out")->i[0], 8);
    /* res: conv_bn_relu nested in residual, then add with the module input */
    const prt_node *add = node(g, "res/add_1");
    ck_assert_int_eq(add->in[0], node(g, "stem/relu_2")->out[0]);
    ck_assert_int_eq(add->in[1], node(g, "res/body/relu_2")->out[0]);
    /* common_head comes from lib/common.yaml, included by lib/blocks.yaml */
    const prt_node *fc = node(g, "head/linear_2");
    snprintf(want, sizeof want, "%s/lib/common.yaml", dir);
    ck_assert_str_eq(fc->loc.file, want);
    SHAPE(g, fc->out[0], 1, 5);
    prt_graph_destroy(g);

    /* a file reached twice through different includes is loaded once */
    ck_assert_msg(prt_graph_load_yaml(ctx, tu_src("tests/data/yaml/inc_diamond.yaml"), &g) == PRT_OK, "%s",
                  prt_last_error(ctx));
    SHAPE(g, g->outputs[0], 1, 3);
    prt_graph_destroy(g);

    /* 16 levels of includes are allowed */
    ck_assert_msg(prt_graph_load_yaml(ctx, tu_src("tests/data/yaml/depth_ok.yaml"), &g) == PRT_OK, "%s",
                  prt_last_error(ctx));
    ck_assert_str_eq(g->nodes[0].name, "deepest_0/relu_0");
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(t_aliases) {
    prt_context *ctx = tu_context();
    prt_graph *g = load_str(ctx,
                            "parrots: 1\n"
                            "input: {x: [3, 8, 8]}\n"
                            "layers:\n"
                            "  - conv: &c3 {out: 8, kernel: 3, pad: 1}\n"
                            "  - conv: *c3\n"
                            "  - conv: {<<: *c3, out: 16}\n"
                            "  - &bn\n"
                            "    batchnorm: {eps: 0.01}\n"
                            "  - *bn\n");
    const prt_node *c1 = node(g, "conv_1"), *c2 = node(g, "conv_2");
    ck_assert_int_eq(attr(g, c1, "out")->i[0], 8);
    ck_assert_int_eq(attr(g, c1, "kernel")->i[0], 3);
    ck_assert_int_eq(attr(g, c2, "out")->i[0], 16); /* the explicit key wins over the merged one */
    ck_assert_int_eq(attr(g, c2, "pad")->i[0], 1);
    SHAPE(g, c2->out[0], 1, 16, 8, 8);
    /* a layer reused by alias gets its own default name from its position */
    ck_assert_double_eq_tol(attr(g, node(g, "batchnorm_4"), "eps")->f, 0.01, 1e-12);
    ck_assert_int_eq(node(g, "batchnorm_4")->in[0], node(g, "batchnorm_3")->out[0]);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(t_expressions) {
    prt_context *ctx = tu_context();
    prt_graph *g = load_str(ctx,
                            "parrots: 1\n"
                            "input: {x: [4]}\n"
                            "modules:\n"
                            "  m:\n"
                            "    args: {a: ~, tag: ~}\n"
                            "    layers:\n"
                            "      - scale: {by: $a}\n"
                            "        name: \"s_${tag}\"\n"
                            "layers:\n"
                            "  - m: {a: \"${7 // 2}\", tag: one}\n"
                            "  - m: {a: \"${-7 // 2}\", tag: \"t${2 * 3}\"}\n"
                            "  - m: {a: \"${-7 % 3}\", tag: c}\n"
                            "  - m: {a: \"${(1 + 2) * -3}\", tag: d}\n"
                            "  - m: {a: \"${7.5 % 2}\", tag: e}\n"
                            "  - m: {a: \"${2 * 0.25 + 1e1}\", tag: f}\n"
                            "  - m: {a: \"${ 1 -(-1) }\", tag: g}\n"
                            "  - linear: {out: \"${0.5 * 4}\"}\n");
    ck_assert_double_eq(attr(g, node(g, "m_0/s_one"), "by")->f, 3);
    ck_assert_double_eq(attr(g, node(g, "m_1/s_t6"), "by")->f, -4);
    ck_assert_double_eq(attr(g, node(g, "m_2/s_c"), "by")->f, 2);
    ck_assert_double_eq(attr(g, node(g, "m_3/s_d"), "by")->f, -9);
    ck_assert_double_eq(attr(g, node(g, "m_4/s_e"), "by")->f, 1.5);
    ck_assert_double_eq(attr(g, node(g, "m_5/s_f"), "by")->f, 10.5);
    ck_assert_double_eq(attr(g, node(g, "m_6/s_g"), "by")->f, 2);
    SHAPE(g, g->outputs[0], 1, 2); /* linear out: 0.5 * 4 */
    prt_graph_destroy(g);

    /* "$$" is a literal '$', which names do not allow: the message shows it */
    g = (prt_graph *)&g;
    const char *bad = "parrots: 1\ninput: {x: [4]}\nlayers:\n  - relu:\n    name: \"cost$$\"\n";
    ck_assert_int_eq(prt_graph_load_yaml_string(ctx, "n.yaml", bad, strlen(bad), &g), PRT_ERR_SCHEMA);
    ck_assert_str_eq(prt_last_error(ctx),
                     "n.yaml:5:11: 'name': 'cost$' is not a valid name (use letters, digits, '_' and '-')");
    ck_assert_ptr_null(g);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(t_integral_float_for_int) {
    prt_context *ctx = tu_context();
    prt_graph *g = load_str(ctx, "parrots: 1\ninput: {x: [4]}\nlayers:\n  - linear: {out: \"${96 / 2}\"}\n"
                                 "  - linear: {out: 2.0}\n");
    ck_assert_int_eq(attr(g, node(g, "linear_0"), "out")->i[0], 48);
    ck_assert_int_eq(attr(g, node(g, "linear_1"), "out")->i[0], 2);
    SHAPE(g, g->outputs[0], 1, 2);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(t_inputs_outputs) {
    prt_context *ctx = tu_context();
    prt_graph *g = load_str(ctx,
                            "parrots: 1\n"
                            "input: {a: [2, 4, 4], b: [3, 4, 4]}\n"
                            "modules:\n"
                            "  join:\n"
                            "    inputs: [p, q]\n"
                            "    output: s\n"
                            "    layers:\n"
                            "      - concat:\n"
                            "        input: [p, q]\n"
                            "        name: s\n"
                            "      - relu:\n"
                            "layers:\n"
                            "  - join:\n"
                            "    input: [a, b]\n"
                            "    name: j\n"
                            "  - relu:\n"
                            "  - relu:\n"
                            "    input: b\n"
                            "output: [j, relu_2, a]\n");
    ck_assert_int_eq(g->n_inputs, 2);
    ck_assert_int_eq(g->n_outputs, 3);
    /* the module returns s (the concat), not its last layer */
    ck_assert_int_eq(g->outputs[0], node(g, "j/s")->out[0]);
    ck_assert_int_eq(node(g, "relu_1")->in[0], node(g, "j/s")->out[0]);
    ck_assert_int_eq(g->outputs[1], node(g, "relu_2")->out[0]);
    ck_assert_int_eq(g->outputs[2], g->inputs[0]);
    SHAPE(g, g->outputs[0], 1, 5, 4, 4);
    SHAPE(g, g->outputs[1], 1, 3, 4, 4);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

/* The YAML layer itself: nesting and node count right at their limits pass, one
 * more fails; aliases share the anchored node. */
START_TEST(t_doc_limits) {
    prt_context *ctx = tu_context();
    prt_yarena a;
    prt_yarena_init(&a, ctx);
    char text[256];
    int k = 0;
    for (int d = 0; d < PRT_YAML_MAX_DEPTH; d++) text[k++] = '[';
    for (int d = 0; d < PRT_YAML_MAX_DEPTH; d++) text[k++] = ']';
    prt_ynode *root = NULL;
    ck_assert_msg(prt_ydoc_parse(ctx, &a, "d.yaml", text, (size_t)k, &root) == PRT_OK, "%s", prt_last_error(ctx));
    ck_assert_int_eq(root->kind, PRT_YN_SEQ);
    memmove(text + 1, text, (size_t)k);
    ck_assert_int_eq(prt_ydoc_parse(ctx, &a, "d.yaml", text, (size_t)k + 1, &root), PRT_ERR_LIMIT);

    /* a list of n scalars is n + 1 nodes */
    size_t cap = 3 * (size_t)PRT_YAML_MAX_EXPANDED + 8;
    char *big = malloc(cap);
    ck_assert_ptr_nonnull(big);
    for (int extra = 0; extra < 2; extra++) {
        size_t o = 0;
        big[o++] = '[';
        for (int i = 0; i < PRT_YAML_MAX_EXPANDED - 1 + extra; i++) {
            if (i) big[o++] = ',';
            big[o++] = 'x';
        }
        big[o++] = ']';
        prt_status st = prt_ydoc_parse(ctx, &a, "n.yaml", big, o, &root);
        ck_assert_int_eq(st, extra ? PRT_ERR_LIMIT : PRT_OK);
        if (extra) ck_assert_str_eq(prt_last_error(ctx), "n.yaml:1:200000: the document has more than 100000 YAML nodes");
    }
    free(big);

    const char *al = "[&a [x, x, x, x, x, x, x, x, x, x, x], *a, *a, *a, *a, *a, *a, *a, *a]";
    ck_assert_int_eq(prt_ydoc_parse(ctx, &a, "a.yaml", al, strlen(al), &root), PRT_OK);
    ck_assert_int_eq(root->weight, 1 + 9 * 12);
    ck_assert_ptr_eq(root->kids[1], root->kids[0]);
    prt_yarena_free(&a);
    prt_context_destroy(ctx);
}
END_TEST

/* Every allocation failure during a load is reported as out of memory and leaks
 * nothing (AddressSanitizer checks the leaks in CI). */
static long g_alloc_left = -1;
static void *failing_alloc(void *ud, void *p, size_t old, size_t n) {
    (void)ud;
    (void)old;
    if (n == 0) {
        free(p);
        return NULL;
    }
    if (g_alloc_left == 0) return NULL;
    if (g_alloc_left > 0) g_alloc_left--;
    return realloc(p, n);
}

START_TEST(t_out_of_memory) {
    const char *yaml = "parrots: 1\n"
                       "input: {x: [2, 6, 6]}\n"
                       "modules:\n"
                       "  b:\n"
                       "    args: {s: ~}\n"
                       "    layers:\n"
                       "      - conv: {out: 2, kernel: 3, pad: 1}\n"
                       "      - batchnorm:\n"
                       "      - scale: {by: $s}\n"
                       "        name: \"s${s}\"\n"
                       "layers:\n"
                       "  - repeat: 3\n"
                       "    name: a\n"
                       "    module: b\n"
                       "    args: {s: \"${i + 1}\"}\n"
                       "  - b: {s: 5}\n"
                       "    name: first\n"
                       "  - b: {s: 2}\n"
                       "    share: {with: first, ops: [conv]}\n"
                       "  - conv: &c {out: 2, kernel: 1}\n"
                       "    name: c\n"
                       "  - conv: {<<: *c}\n"
                       "    share: c\n";
    prt_context_options o = {.struct_size = sizeof o, .log_level = PRT_LOG_ERROR, .alloc = failing_alloc};
    int failures = 0;
    for (long k = 0;; k++) {
        prt_context *ctx = NULL;
        g_alloc_left = -1;
        ck_assert_int_eq(prt_context_create(&o, &ctx), PRT_OK);
        g_alloc_left = k;
        prt_graph *g = NULL;
        prt_status st = prt_graph_load_yaml_string(ctx, "oom.yaml", yaml, strlen(yaml), &g);
        g_alloc_left = -1;
        if (st == PRT_OK) {
            ck_assert_int_eq(g->n_nodes, 3 * 3 + 3 + 3 + 2);
            prt_graph_destroy(g);
            prt_context_destroy(ctx);
            break;
        }
        ck_assert_msg(st == PRT_ERR_NOMEM, "allocation %ld failing gave %s: %s", k, prt_status_str(st),
                      prt_last_error(ctx));
        ck_assert_ptr_null(g);
        prt_context_destroy(ctx);
        failures++;
        ck_assert_int_lt(failures, 100000);
    }
    ck_assert_int_gt(failures, 10);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("yaml");
    TCase *tc = tcase_create("load");
    tcase_add_test(tc, t_small_net);
    tcase_add_test(tc, t_module_args);
    tcase_add_test(tc, t_repeat_scale);
    tcase_add_test(tc, t_repeat_module_list);
    tcase_add_test(tc, t_repeat_max_count);
    tcase_add_test(tc, t_share_op_layer);
    tcase_add_test(tc, t_share_module_layer);
    tcase_add_test(tc, t_include);
    tcase_add_test(tc, t_aliases);
    tcase_add_test(tc, t_expressions);
    tcase_add_test(tc, t_integral_float_for_int);
    tcase_add_test(tc, t_inputs_outputs);
    tcase_add_test(tc, t_doc_limits);
    tcase_add_test(tc, t_out_of_memory);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run(suite()); }

/* The example graphs in examples/ load, and describe the architectures they claim:
 * PolyNet's published parameter count, its 10/20/10 residual stages with their
 * scales and poly-3 weight sharing, and the shapes and layer counts of the small
 * examples. Expected numbers are derived by hand from the architecture (comments
 * show the arithmetic), never read back from the code under test. */
// labels: unit

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tests/test_util.h"

static prt_graph *load(prt_context *ctx, const char *rel) {
    prt_graph *g = NULL;
    prt_status st = prt_graph_load_yaml(ctx, tu_src(rel), &g);
    ck_assert_msg(st == PRT_OK, "%s: %s", rel, prt_last_error(ctx));
    return g;
}

static int op_id(prt_context *ctx, const char *name) {
    int id = -1;
    ck_assert_ptr_nonnull(prt_op_find(ctx->ops, name, &id));
    return id;
}

static int count_op(prt_graph *g, const char *name) {
    int id = op_id(g->ctx, name), c = 0;
    for (int n = 0; n < g->n_nodes; n++) c += g->nodes[n].op == id;
    return c;
}

static const prt_node *node(prt_graph *g, const char *name) {
    for (int n = 0; n < g->n_nodes; n++)
        if (strcmp(g->nodes[n].name, name) == 0) return &g->nodes[n];
    ck_abort_msg("no node '%s'", name);
    return NULL;
}

/* Value id of the node's first parameter (conv weight, batchnorm scale). */
static int param0(prt_graph *g, const char *name) {
    const prt_node *nd = node(g, name);
    ck_assert_int_gt(nd->n_in, nd->n_data_in);
    int v = nd->in[nd->n_data_in];
    ck_assert_int_eq(g->values[v].kind, PRT_VAL_PARAM);
    return v;
}

static double attr_f(prt_graph *g, const prt_node *nd, const char *attr) {
    const prt_op_schema *s = prt_op_get(g->ctx->ops, nd->op);
    int a = prt_op_attr_index(s, attr);
    ck_assert_int_ge(a, 0);
    return nd->attrs[a].f;
}

/* Checks the single output's shape for batch 2: [2, classes]. */
static void check_output(prt_graph *g, int64_t classes) {
    ck_assert_int_eq(prt_graph_infer(g, 2), PRT_OK);
    ck_assert_int_eq(g->n_outputs, 1);
    const prt_shape *s = &g->values[g->outputs[0]].shape;
    ck_assert_int_eq(s->ndim, 2);
    ck_assert_int_eq(s->d[0], 2);
    ck_assert_int_eq(s->d[1], classes);
}

typedef struct op_count {
    const char *op;
    int n;
} op_count;

static void check_op_counts(prt_graph *g, const op_count *want, int n_want) {
    int total = 0;
    for (int i = 0; i < n_want; i++) {
        ck_assert_msg(count_op(g, want[i].op) == want[i].n, "%s nodes: %d, expected %d", want[i].op,
                      count_op(g, want[i].op), want[i].n);
        total += want[i].n;
    }
    ck_assert_int_eq(g->n_nodes, total);
}

/* One residual module, seen from its scale node: the add feeding it has 3 inputs in a
 * poly-3 module and 2 in a 2-way one. */
typedef struct resmod {
    const prt_node *scale;
    int ways;
    int64_t c, h, w;
} resmod;

static int residual_modules(prt_graph *g, resmod *out, int cap) {
    int sc = op_id(g->ctx, "scale"), add = op_id(g->ctx, "add"), k = 0;
    for (int n = 0; n < g->n_nodes; n++) {
        const prt_node *nd = &g->nodes[n];
        if (nd->op != sc) continue;
        ck_assert_int_lt(k, cap);
        int p = g->values[nd->in[0]].producer;
        ck_assert_int_ge(p, 0);
        ck_assert_int_eq(g->nodes[p].op, add);
        const prt_shape *s = &g->values[nd->out[0]].shape;
        ck_assert_int_eq(s->ndim, 4);
        out[k++] = (resmod){nd, g->nodes[p].n_data_in, s->d[1], s->d[2], s->d[3]};
    }
    return k;
}

/* Stages of `n` modules at c x hw x hw: 2-way only, or poly-3 and 2-way alternating
 * with poly-3 first; the scale of module i (counted over all stages) is
 * 1 - 0.3 i / (total - 1). */
typedef struct stage {
    int n;
    int64_t c, hw;
    bool poly;
} stage;

static void check_stages(prt_graph *g, const stage *st, int n_st) {
    resmod m[64];
    int total = 0;
    for (int i = 0; i < n_st; i++) total += st[i].n;
    ck_assert_int_eq(residual_modules(g, m, 64), total);
    int i = 0;
    for (int s = 0; s < n_st; s++)
        for (int j = 0; j < st[s].n; j++, i++) {
            ck_assert_msg(m[i].c == st[s].c && m[i].h == st[s].hw && m[i].w == st[s].hw,
                          "module %d (%s): %lld x %lld x %lld", i, m[i].scale->name, (long long)m[i].c,
                          (long long)m[i].h, (long long)m[i].w);
            int ways = st[s].poly && j % 2 == 0 ? 3 : 2;
            ck_assert_msg(m[i].ways == ways, "module %d (%s): %d-input sum", i, m[i].scale->name, m[i].ways);
            double want = 1.0 - 0.3 * i / (total - 1);
            double by = attr_f(g, m[i].scale, "by");
            ck_assert_msg(fabs(by - want) < 1e-9, "module %d scale %.12f, expected %.12f", i, by, want);
        }
}

/* In poly-3 module `mod`, the inception-path convs (`convs`, relative to f1/f2/f3)
 * use one weight and three different batch norms; the final convs a1..a3 are separate. */
static void check_poly3(prt_graph *g, const char *mod, const char *const *convs, int n) {
    char a[256], b[256];
    for (int k = 0; k < n; k++) {
        snprintf(a, sizeof a, "%s/f1/%s/conv_0", mod, convs[k]);
        int w1 = param0(g, a);
        snprintf(a, sizeof a, "%s/f1/%s/batchnorm_1", mod, convs[k]);
        int bn1 = param0(g, a);
        for (int f = 2; f <= 3; f++) {
            snprintf(b, sizeof b, "%s/f%d/%s/conv_0", mod, f, convs[k]);
            ck_assert_msg(param0(g, b) == w1, "%s does not share the weight of f1", b);
            snprintf(b, sizeof b, "%s/f%d/%s/batchnorm_1", mod, f, convs[k]);
            int bn = param0(g, b);
            ck_assert_msg(bn != bn1, "%s shares the batch norm of f1", b);
            if (f == 3) {
                snprintf(a, sizeof a, "%s/f2/%s/batchnorm_1", mod, convs[k]);
                ck_assert_int_ne(bn, param0(g, a));
            }
        }
    }
    int fin[3];
    for (int f = 0; f < 3; f++) {
        snprintf(a, sizeof a, "%s/a%d/conv_0", mod, f + 1);
        fin[f] = param0(g, a);
    }
    ck_assert(fin[0] != fin[1] && fin[1] != fin[2] && fin[0] != fin[2]);
}

/* Distinct parameter values used as the first parameter of nodes of op `name`. */
static int distinct_param0(prt_graph *g, const char *name) {
    int id = op_id(g->ctx, name), c = 0;
    static char seen[1 << 20];
    ck_assert_int_le(g->n_values, (int)sizeof seen);
    memset(seen, 0, (size_t)g->n_values);
    for (int n = 0; n < g->n_nodes; n++) {
        const prt_node *nd = &g->nodes[n];
        if (nd->op != id) continue;
        int v = nd->in[nd->n_data_in];
        c += !seen[v];
        seen[v] = 1;
    }
    return c;
}

/* ---- PolyNet ---------------------------------------------------------- */

START_TEST(polynet_params_and_output) {
    prt_context *ctx = tu_context();
    prt_graph *g = load(ctx, "examples/polynet.yaml");
    prt_graph_stats st;
    ck_assert_int_eq(prt_graph_stats_get(g, &st), PRT_OK);
    /* The published count of the reference implementation (see /work/shared/BRIEF.md). */
    ck_assert_int_eq(st.params, 95366600);
    check_output(g, 1000);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

/* 537 convs: stem 11 (3 + mixed_3a 1 + mixed_4a 2 + 4 + mixed_5a 1), 10 A modules of
 * 2 x (6 path + 1 final) = 140, reduction A 4, 10 poly-3 B of 3 x (4 + 1) and 10
 * 2-way B of 2 x (4 + 1) = 250, reduction B 7, 5 + 5 such C modules = 125. Each has a
 * batch norm. The final 1x1 conv of each branch application has no ReLU (A 20,
 * B 30 + 20, C 15 + 10 = 95), so 442 ReLUs follow convs, plus one after each of the
 * 40 modules and two inside each of the 15 poly-3 modules: 512. Concats: stem 3,
 * one per branch application 20 + 50 + 25, reductions 2 = 100. Adds: 2 per module. */
START_TEST(polynet_layers) {
    prt_context *ctx = tu_context();
    prt_graph *g = load(ctx, "examples/polynet.yaml");
    static const op_count want[] = {
        {"conv", 537},  {"batchnorm", 537}, {"relu", 512},  {"maxpool", 4},
        {"concat", 100}, {"add", 80},       {"scale", 40},  {"avgpool", 1},
        {"dropout", 1}, {"flatten", 1},     {"linear", 1},
    };
    check_op_counts(g, want, (int)(sizeof want / sizeof want[0]));
    int conv = op_id(ctx, "conv"), bn = op_id(ctx, "batchnorm");
    for (int n = 0; n < g->n_nodes; n++) {
        const prt_node *nd = &g->nodes[n];
        if (nd->op == conv) /* bias: false everywhere: the weight is the only parameter */
            ck_assert_msg(nd->n_in - nd->n_data_in == 1, "%s has a bias", nd->name);
        if (nd->op == bn) ck_assert_msg(fabs(attr_f(g, nd, "eps") - 1e-3) < 1e-12, "%s eps", nd->name);
    }
    /* 15 poly-3 modules reuse f1's 4 path convs in f2 and f3: 537 - 15 x 4 x 2. */
    ck_assert_int_eq(distinct_param0(g, "conv"), 537 - 120);
    ck_assert_int_eq(distinct_param0(g, "batchnorm"), 537);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

/* 331 -> 165 -> 163 -> 81 -> 79 -> 39 (stage A) -> 19 (stage B) -> 9 (stage C). */
START_TEST(polynet_residual_stages) {
    prt_context *ctx = tu_context();
    prt_graph *g = load(ctx, "examples/polynet.yaml");
    ck_assert_int_eq(prt_graph_infer(g, 1), PRT_OK);
    static const stage st[] = {{10, 384, 39, false}, {20, 1152, 19, true}, {10, 2048, 9, true}};
    check_stages(g, st, 3);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(polynet_poly3_sharing) {
    prt_context *ctx = tu_context();
    prt_graph *g = load(ctx, "examples/polynet.yaml");
    static const char *const paths[] = {"p0", "conv_bn_relu_1", "conv_bn_relu_2", "p1"};
    char mod[32];
    for (int i = 0; i < 20; i += 2) {
        snprintf(mod, sizeof mod, "b/%d", i);
        check_poly3(g, mod, paths, 4);
    }
    for (int i = 0; i < 10; i += 2) {
        snprintf(mod, sizeof mod, "c/%d", i);
        check_poly3(g, mod, paths, 4);
    }
    /* 2-way branches own separate weights. */
    ck_assert_int_ne(param0(g, "b/1/f/paths_b_0/p0/conv_0"), param0(g, "b/1/g/paths_b_0/p0/conv_0"));
    ck_assert_int_ne(param0(g, "a/0/f/paths_a_0/p0/conv_0"), param0(g, "a/0/g/paths_a_0/p0/conv_0"));
    /* Successive poly-3 modules do not share with each other. */
    ck_assert_int_ne(param0(g, "b/0/f1/p0/conv_0"), param0(g, "b/2/f1/p0/conv_0"));
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

/* ---- PolyNet-mini ----------------------------------------------------- */

/* The same counting as PolyNet over 2 A, 4 B and 2 C modules:
 * convs 11 + 2 x 14 + 4 + 2 x (15 + 10) + 7 + (15 + 10) = 125; final 1x1 convs
 * (no ReLU) 4 + 10 + 5 = 19, so relus 106 + 8 (modules) + 2 x 3 (poly-3) = 120;
 * concats 3 + 4 + 1 + 10 + 1 + 5 = 24. */
START_TEST(mini_structure) {
    prt_context *ctx = tu_context();
    prt_graph *g = load(ctx, "examples/polynet-mini.yaml");
    static const op_count want[] = {
        {"conv", 125},  {"batchnorm", 125}, {"relu", 120}, {"maxpool", 4},
        {"concat", 24}, {"add", 16},        {"scale", 8},  {"avgpool", 1},
        {"dropout", 1}, {"flatten", 1},     {"linear", 1},
    };
    check_op_counts(g, want, (int)(sizeof want / sizeof want[0]));
    prt_graph_stats st;
    ck_assert_int_eq(prt_graph_stats_get(g, &st), PRT_OK);
    ck_assert_int_gt(st.params, 0);
    ck_assert_int_lt(st.params, 1000000);
    /* 3 poly-3 modules reuse 4 path convs twice each. */
    ck_assert_int_eq(distinct_param0(g, "conv"), 125 - 24);
    check_output(g, 10);
    ck_assert_int_eq(prt_graph_infer(g, 1), PRT_OK);
    /* 1 x 28 x 28 input: the stem halves twice (28 -> 14 -> 7), the reductions
     * (kernel 3, stride 2, pad 1) give 7 -> 4 -> 2. */
    static const stage stg[] = {{2, 64, 7, false}, {4, 192, 4, true}, {2, 320, 2, true}};
    check_stages(g, stg, 3);
    static const char *const paths[] = {"p0", "conv_bn_relu_1", "conv_bn_relu_2", "p1"};
    check_poly3(g, "b/0", paths, 4);
    check_poly3(g, "b/2", paths, 4);
    check_poly3(g, "c/0", paths, 4);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

/* ---- Fashion-MNIST CNN ------------------------------------------------ */

START_TEST(fashion_cnn) {
    prt_context *ctx = tu_context();
    prt_graph *g = load(ctx, "examples/fashion-cnn.yaml");
    static const op_count want[] = {
        {"conv", 2}, {"batchnorm", 2}, {"relu", 3}, {"maxpool", 2},
        {"flatten", 1}, {"linear", 2}, {"dropout", 1},
    };
    check_op_counts(g, want, (int)(sizeof want / sizeof want[0]));
    prt_graph_stats st;
    ck_assert_int_eq(prt_graph_stats_get(g, &st), PRT_OK);
    /* conv 1x32x3x3 = 288, BN 64, conv 32x64x3x3 = 18432, BN 128,
     * linear 64*7*7 x 128 + 128 = 401536, linear 128 x 10 + 10 = 1290. */
    ck_assert_int_eq(st.params, 288 + 64 + 18432 + 128 + 401536 + 1290);
    check_output(g, 10);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("examples");
    TCase *tc = tcase_create("examples");
    tcase_add_test(tc, polynet_params_and_output);
    tcase_add_test(tc, polynet_layers);
    tcase_add_test(tc, polynet_residual_stages);
    tcase_add_test(tc, polynet_poly3_sharing);
    tcase_add_test(tc, mini_structure);
    tcase_add_test(tc, fashion_cnn);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run(suite()); }

/* The operator registry and shape inference: lookups by name and id, plugins
 * added at run time, duplicate names, out-of-memory during creation, "did you
 * mean" suggestions, the attribute table of docs/yaml-format.md, inferred
 * shapes and FLOPs, and the exact text of shape errors. Kernels are tested in
 * test_ops.c. */
// labels: unit

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/ops_test_util.h"

/* How many ops builtin_ops.def registers (it grows as ops are added). */
enum {
    N_BUILTIN = 0
#define X(sym) +1
#include "ops/builtin_ops.def"
#undef X
};

/* ---- registry ------------------------------------------------------------- */

START_TEST(test_registry_builtins) {
    prt_context *ctx = tu_context();
    static const char *const names[] = {"conv", "batchnorm", "relu", "maxpool", "avgpool", "concat",
                                        "add",  "scale",     "linear", "softmax", "dropout", "flatten"};
    ck_assert_int_eq(prt_op_count(ctx->ops), N_BUILTIN);
    for (int i = 0; i < 12; i++) {
        int id = -1;
        const prt_op_schema *s = prt_op_find(ctx->ops, names[i], &id);
        ck_assert_ptr_nonnull(s);
        ck_assert_int_eq(id, i); /* registry order is builtin_ops.def order */
        ck_assert_str_eq(s->name, names[i]);
        ck_assert_ptr_eq(prt_op_get(ctx->ops, i), s);
        ck_assert_ptr_nonnull(s->ref.run);
        ck_assert_ptr_nonnull(s->fast.run);
        ck_assert_ptr_nonnull(s->flops);
    }
    int id = 7;
    ck_assert_ptr_null(prt_op_find(ctx->ops, "convolution", &id));
    ck_assert_int_eq(id, -1);
    ck_assert_ptr_null(prt_op_find(ctx->ops, "", NULL));
    ck_assert_ptr_null(prt_op_get(ctx->ops, N_BUILTIN));
    ck_assert_ptr_null(prt_op_get(ctx->ops, -1));
    const prt_op_schema *conv = prt_op_find(ctx->ops, "conv", NULL);
    ck_assert_int_eq(prt_op_attr_index(conv, "out"), 0);
    ck_assert_int_eq(prt_op_attr_index(conv, "bias"), 6);
    ck_assert_int_eq(prt_op_attr_index(conv, "kernal"), -1);
    prt_context_destroy(ctx);
}
END_TEST

/* The operator table of docs/yaml-format.md: names, defaults, required flags. */
START_TEST(test_schema_table) {
    prt_context *ctx = tu_context();
    struct { const char *op, *attr; bool required; double def; } t[] = {
        {"conv", "out", true, 0},          {"conv", "kernel", true, 0},      {"conv", "stride", false, 1},
        {"conv", "pad", false, 0},         {"conv", "dilation", false, 1},   {"conv", "groups", false, 1},
        {"conv", "bias", false, 1},        {"batchnorm", "eps", false, 1e-5}, {"batchnorm", "momentum", false, 0.1},
        {"maxpool", "pad", false, 0},      {"maxpool", "global", false, 0},  {"avgpool", "count_include_pad", false, 1},
        {"avgpool", "global", false, 0},   {"concat", "axis", false, 1},     {"scale", "by", true, 0},
        {"linear", "out", true, 0},        {"linear", "bias", false, 1},     {"softmax", "axis", false, 1},
        {"dropout", "p", false, 0.5},
    };
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) {
        const prt_op_schema *s = prt_op_find(ctx->ops, t[k].op, NULL);
        int i = prt_op_attr_index(s, t[k].attr);
        ck_assert_msg(i >= 0, "%s.%s missing", t[k].op, t[k].attr);
        const prt_attr_def *d = &s->attrs[i];
        ck_assert_msg(d->required == t[k].required, "%s.%s required flag", t[k].op, t[k].attr);
        if (!d->required) {
            double v = d->type == PRT_ATTR_FLOAT ? d->def.f : (double)d->def.i[0];
            ck_assert_msg(fabs(v - t[k].def) < 1e-12, "%s.%s default %g, want %g", t[k].op, t[k].attr, v, t[k].def);
        }
    }
    /* parameter slots and in-place pairs */
    const prt_op_schema *bn = prt_op_find(ctx->ops, "batchnorm", NULL);
    ck_assert_int_eq(bn->n_params, 4);
    ck_assert(bn->params[0].trainable && bn->params[1].trainable && !bn->params[2].trainable && !bn->params[3].trainable);
    ck_assert_int_eq(bn->params[0].init, PRT_INIT_ONES);
    ck_assert_int_eq(bn->params[3].init, PRT_INIT_ONES);
    ck_assert_int_eq(prt_op_find(ctx->ops, "conv", NULL)->params[0].init, PRT_INIT_HE_NORMAL);
    const char *inplace[] = {"relu", "add", "scale", "dropout", "batchnorm"};
    for (int k = 0; k < 5; k++) ck_assert_int_eq(prt_op_find(ctx->ops, inplace[k], NULL)->inplace_in, 0);
    const char *not_inplace[] = {"conv", "maxpool", "avgpool", "concat", "linear", "softmax"};
    for (int k = 0; k < 6; k++) ck_assert_int_eq(prt_op_find(ctx->ops, not_inplace[k], NULL)->inplace_in, -1);
    prt_context_destroy(ctx);
}
END_TEST

static prt_status dummy_infer(prt_infer_ctx *ic) {
    ic->out[0] = ic->in[0];
    return PRT_OK;
}
static prt_status dummy_run(const prt_kernel_call *c) { return PRT_OK; }

START_TEST(test_registry_add) {
    prt_context *ctx = tu_context();
    static const prt_op_schema mine = {.name = "swish", .min_in = 1, .max_in = 1, .n_out = 1, .infer = dummy_infer,
                                       .inplace_in = -1, .ref = {.run = dummy_run}};
    static const prt_op_schema dup = {.name = "relu", .min_in = 1, .max_in = 1, .n_out = 1, .infer = dummy_infer,
                                      .inplace_in = -1, .ref = {.run = dummy_run}};
    ck_assert_int_eq(prt_registry_add(ctx, ctx->ops, &mine), PRT_OK);
    int id;
    ck_assert_ptr_eq(prt_op_find(ctx->ops, "swish", &id), &mine);
    ck_assert_int_eq(id, N_BUILTIN);
    ck_assert_int_eq(prt_registry_add(ctx, ctx->ops, &dup), PRT_ERR_INVALID);
    ck_assert_str_eq(prt_last_error(ctx), "op registry: op 'relu' is already registered");
    /* many more: the table grows and every name stays findable */
    static prt_op_schema more[100];
    static char names[100][16];
    for (int k = 0; k < 100; k++) {
        snprintf(names[k], sizeof names[k], "op%d", k);
        more[k] = mine;
        more[k].name = names[k];
        ck_assert_int_eq(prt_registry_add(ctx, ctx->ops, &more[k]), PRT_OK);
    }
    for (int k = 0; k < 100; k++) {
        ck_assert_ptr_eq(prt_op_find(ctx->ops, names[k], &id), &more[k]);
        ck_assert_int_eq(id, N_BUILTIN + 1 + k);
    }
    ck_assert_ptr_nonnull(prt_op_find(ctx->ops, "conv", NULL));
    prt_context_destroy(ctx);
}
END_TEST

/* An allocator that fails after `budget` allocations. */
static int alloc_budget = -1;
static void *failing_alloc(void *ud, void *p, size_t old, size_t n) {
    (void)ud, (void)old;
    if (n == 0) {
        free(p);
        return NULL;
    }
    if (alloc_budget == 0) return NULL;
    if (alloc_budget > 0) alloc_budget--;
    return realloc(p, n);
}

START_TEST(test_registry_oom) {
    prt_context_options o = {.struct_size = sizeof o, .alloc = failing_alloc, .log_level = PRT_LOG_ERROR};
    prt_context *ctx = NULL;
    alloc_budget = -1;
    ck_assert_int_eq(prt_context_create(&o, &ctx), PRT_OK);
    for (int b = 0; b < 6; b++) {
        prt_registry *r = NULL;
        alloc_budget = b;
        prt_status st = prt_registry_create(ctx, &r);
        alloc_budget = -1;
        if (st == PRT_OK) {
            ck_assert_int_eq(prt_op_count(r), N_BUILTIN);
            prt_registry_destroy(ctx, r);
        } else {
            ck_assert_int_eq(st, PRT_ERR_NOMEM);
            ck_assert_ptr_null(r);
        }
    }
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(test_suggest) {
    prt_context *ctx = tu_context();
    ck_assert_int_eq(prt_edit_distance("kitten", "sitting"), 3);
    ck_assert_int_eq(prt_edit_distance("", "abc"), 3);
    ck_assert_int_eq(prt_edit_distance("conv", "conv"), 0);
    ck_assert_int_eq(prt_edit_distance("batchnrom", "batchnorm"), 2);
    const char *out[3];
    int n = prt_op_suggest(ctx->ops, "batchnrom", out, 3);
    ck_assert_int_eq(n, 3);
    ck_assert_str_eq(out[0], "batchnorm");
    n = prt_op_suggest(ctx->ops, "maxpol", out, 2);
    ck_assert_int_eq(n, 2);
    ck_assert_str_eq(out[0], "maxpool");
    ck_assert_str_eq(out[1], "matmul"); /* distance 3; avgpool is 4 */
    /* results are sorted by distance */
    const char *all[12];
    n = prt_op_suggest(ctx->ops, "relu6", all, 12);
    ck_assert_int_eq(n, 12);
    for (int k = 1; k < n; k++)
        ck_assert_int_le(prt_edit_distance("relu6", all[k - 1]), prt_edit_distance("relu6", all[k]));
    ck_assert_str_eq(all[0], "relu");
    /* long names do not overflow anything */
    char longname[1000];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    ck_assert_int_eq(prt_edit_distance(longname, "a"), 998);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(test_attr_expansion) {
    prt_attr a = {.type = PRT_ATTR_INTS, .n = 1, .i = {3}};
    int64_t h, w, p[4];
    prt_attr_pair(&a, &h, &w);
    ck_assert(h == 3 && w == 3);
    prt_attr_pad4(&a, p);
    ck_assert(p[0] == 3 && p[1] == 3 && p[2] == 3 && p[3] == 3);
    a = (prt_attr){.type = PRT_ATTR_INTS, .n = 2, .i = {1, 7}};
    prt_attr_pair(&a, &h, &w);
    ck_assert(h == 1 && w == 7);
    prt_attr_pad4(&a, p);
    ck_assert(p[0] == 1 && p[1] == 7 && p[2] == 1 && p[3] == 7);
    a = (prt_attr){.type = PRT_ATTR_INTS, .n = 4, .i = {1, 2, 3, 4}};
    prt_attr_pad4(&a, p);
    ck_assert(p[0] == 1 && p[1] == 2 && p[2] == 3 && p[3] == 4);
}
END_TEST

/* ---- shape-inference errors (exact text) ----------------------------------- */

static const char *infer_msg(prt_context *ctx, const char *op, const tcase *tc, int line) {
    const prt_op_schema *s = prt_op_find(ctx->ops, op, NULL);
    prepared p;
    memset(&p, 0, sizeof p);
    fill_attrs(s, tc, p.attrs);
    for (int k = 0; k < tc->n_in; k++) p.in[k] = tc->in[k];
    p.ic = (prt_infer_ctx){.ctx = ctx, .node_name = "c1", .loc = {"net.yaml", line, 5}, .attrs = p.attrs,
                           .n_in = tc->n_in, .in = p.in, .in_dtype = PRT_F32, .n_out = 1, .out = p.out,
                           .n_params = s->n_params, .params = p.params, .param_present = p.present, .op_name = op};
    prt_status st = s->infer(&p.ic);
    ck_assert_msg(st == PRT_ERR_SHAPE, "%s: expected a shape error, got %d", op, st);
    return prt_last_error(ctx);
}

#define EXPECT_ERR(op, msg, shapes, ...)                                                      \
    do {                                                                                      \
        tcase cs[1];                                                                          \
        int n = 0;                                                                            \
        CASE("err", shapes, __VA_ARGS__);                                                     \
        ck_assert_str_eq(infer_msg(ctx, op, &cs[0], 12), "net.yaml:12:5: layer 'c1' (" op "): " msg); \
    } while (0)

START_TEST(test_infer_errors) {
    prt_context *ctx = tu_context();
    EXPECT_ERR("conv", "expects a rank-4 input [N, C, H, W], got [2, 3, 8]", S(SH(3, 2, 3, 8, 0)), I1("out", 4),
               I1("kernel", 3));
    EXPECT_ERR("conv", "groups 4 does not divide the 6 input channels", S(SH4(1, 6, 8, 8)), I1("out", 8),
               I1("kernel", 3), I1("groups", 4));
    EXPECT_ERR("conv", "groups 2 does not divide out 5", S(SH4(1, 6, 8, 8)), I1("out", 5), I1("kernel", 3),
               I1("groups", 2));
    EXPECT_ERR("conv",
               "output would be -2x1: input 2x5 with pads 0+0, 0+0 is smaller than the (dilated) kernel 5x5",
               S(SH4(1, 3, 2, 5)), I1("out", 4), I1("kernel", 5));
    EXPECT_ERR("conv",
               "output would be 0x2: input 3x3 with pads 1+0, 0+0 is smaller than the (dilated) kernel 5x2",
               S(SH4(1, 3, 3, 3)), I1("out", 4), I2("kernel", 3, 2), I2("dilation", 2, 1), I4("pad", 1, 0, 0, 0));
    EXPECT_ERR("conv", "kernel takes 1 or 2 values, got 3", S(SH4(1, 3, 8, 8)), I1("out", 4),
               {"kernel", 3, {3, 3, 3}, 0});
    EXPECT_ERR("conv", "pad takes 1, 2 or 4 values, got 3", S(SH4(1, 3, 8, 8)), I1("out", 4), I1("kernel", 3),
               {"pad", 3, {1, 1, 1}, 0});
    EXPECT_ERR("conv", "stride must be >= 1, got 0", S(SH4(1, 3, 8, 8)), I1("out", 4), I1("kernel", 3),
               I1("stride", 0));
    EXPECT_ERR("add", "input 1 has shape [2, 4, 3, 3] but input 0 has [2, 3, 3, 3]; add needs equal shapes",
               S(SH4(2, 3, 3, 3), SH4(2, 4, 3, 3)));
    EXPECT_ERR("concat",
               "input 2 has shape [2, 3, 4, 3] but input 0 has [2, 3, 3, 3]; all dimensions except axis 1 must match",
               S(SH4(2, 3, 3, 3), SH4(2, 5, 3, 3), SH4(2, 3, 4, 3)));
    EXPECT_ERR("concat", "axis 4 is out of range for rank-4 inputs", S(SH4(2, 3, 3, 3), SH4(2, 3, 3, 3)),
               I1("axis", 4));
    EXPECT_ERR("maxpool", "kernel is required unless global: true", S(SH4(1, 3, 8, 8)));
    EXPECT_ERR("maxpool", "top pad 2 must be smaller than the kernel (2)", S(SH4(1, 3, 8, 8)), I1("kernel", 2),
               I1("pad", 2));
    EXPECT_ERR("avgpool", "kernel cannot be combined with global: true", S(SH4(1, 3, 8, 8)), I1("kernel", 2),
               I1("global", 1));
    EXPECT_ERR("avgpool",
               "output would be 0x1: input 2x3 with pads 0+0, 0+0 is smaller than the kernel 3x3",
               S(SH4(1, 3, 2, 3)), I1("kernel", 3));
    EXPECT_ERR("maxpool", "expects a rank-4 input [N, C, H, W], got [2, 8]", S(SH(2, 2, 8, 0, 0)), I1("kernel", 2));
    EXPECT_ERR("linear", "expects an input of rank 2 or more ([N, features...]), got [7]", S(SH(1, 7, 0, 0, 0)),
               I1("out", 3));
    EXPECT_ERR("batchnorm", "expects an input of rank 2 or more ([N, C, ...]), got [7]", S(SH(1, 7, 0, 0, 0)));
    EXPECT_ERR("batchnorm", "eps must be > 0, got 0", S(SH4(1, 3, 2, 2)), FL("eps", 0));
    EXPECT_ERR("softmax", "axis -3 is out of range for a rank-2 input", S(SH(2, 2, 8, 0, 0)), I1("axis", -3));
    EXPECT_ERR("dropout", "p must be in [0, 1], got 1.5", S(SH(2, 2, 8, 0, 0)), FL("p", 1.5));
    /* without a location the prefix is omitted */
    tcase cs[1];
    int n = 0;
    CASE("err", S(SH4(2, 3, 3, 3), SH4(2, 4, 3, 3)));
    ck_assert_str_eq(infer_msg(ctx, "add", &cs[0], 0),
                     "layer 'c1' (add): input 1 has shape [2, 4, 3, 3] but input 0 has [2, 3, 3, 3]; add needs equal shapes");
    prt_context_destroy(ctx);
}
END_TEST

/* Shapes of outputs and parameters the compiler relies on. */
START_TEST(test_infer_shapes) {
    prt_context *ctx = tu_context();
    const prt_op_schema *conv = prt_op_find(ctx->ops, "conv", NULL);
    tcase cs[4];
    int n = 0;
    CASE("conv", S(SH4(8, 64, 35, 35)), I1("out", 96), I1("kernel", 3), I1("stride", 2), I1("bias", 0),
         I1("groups", 2));
    prepared p;
    ck_assert_int_eq(infer(ctx, conv, &cs[0], &p), PRT_OK);
    /* floor((35 - 3) / 2) + 1 = 17 */
    ck_assert(prt_shape_eq(&p.out[0], &(prt_shape){4, {8, 96, 17, 17}}));
    ck_assert(prt_shape_eq(&p.params[0], &(prt_shape){4, {96, 32, 3, 3}}));
    ck_assert(p.present[0] && !p.present[1]);
    /* 2 * 8*96*17*17 outputs * 32*3*3 MACs each */
    ck_assert_int_eq(conv->flops(&p.ic), 2LL * 8 * 96 * 17 * 17 * 32 * 9);
    const prt_op_schema *lin = prt_op_find(ctx->ops, "linear", NULL);
    CASE("linear", S(SH4(4, 16, 3, 3)), I1("out", 10));
    ck_assert_int_eq(infer(ctx, lin, &cs[1], &p), PRT_OK);
    ck_assert(prt_shape_eq(&p.out[0], &(prt_shape){2, {4, 10}}));
    ck_assert(prt_shape_eq(&p.params[0], &(prt_shape){2, {10, 144}}));
    ck_assert(p.present[1] && prt_shape_eq(&p.params[1], &(prt_shape){1, {10}}));
    ck_assert_int_eq(lin->flops(&p.ic), 2LL * 4 * 144 * 10 + 4 * 10);
    const prt_op_schema *avg = prt_op_find(ctx->ops, "avgpool", NULL);
    CASE("global", S(SH4(2, 2048, 8, 8)), I1("global", 1));
    ck_assert_int_eq(infer(ctx, avg, &cs[2], &p), PRT_OK);
    ck_assert(prt_shape_eq(&p.out[0], &(prt_shape){4, {2, 2048, 1, 1}}));
    const prt_op_schema *mp = prt_op_find(ctx->ops, "maxpool", NULL);
    CASE("pool", S(SH4(1, 3, 149, 149)), I1("kernel", 3), I1("stride", 2));
    ck_assert_int_eq(infer(ctx, mp, &cs[3], &p), PRT_OK);
    ck_assert(prt_shape_eq(&p.out[0], &(prt_shape){4, {1, 3, 74, 74}}));
    prt_context_destroy(ctx);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("ops_api");
    TCase *tc = tcase_create("registry");
    tcase_add_test(tc, test_registry_builtins);
    tcase_add_test(tc, test_schema_table);
    tcase_add_test(tc, test_registry_add);
    tcase_add_test(tc, test_registry_oom);
    tcase_add_test(tc, test_suggest);
    tcase_add_test(tc, test_attr_expansion);
    suite_add_tcase(s, tc);
    tc = tcase_create("infer");
    tcase_add_test(tc, test_infer_errors);
    tcase_add_test(tc, test_infer_shapes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run(suite()); }

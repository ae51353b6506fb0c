/* Reverse-mode autodiff over whole graphs: the gradient of sum(root * seed) (or
 * of a scalar loss seeded with 1) for every parameter, against central finite
 * differences through the compiled graph, on chains, fan-out, poly-3 style
 * weight sharing with separate batch norms, and concatenated branches; the
 * sums that fan-out and sharing create; no gradients for graph inputs; the
 * removal of gradient nodes nobody needs; and the exact error for a layer that
 * cannot be differentiated. */
// labels: unit
#include "tests/test_util.h"

#include "ops/train_impl.h"
#include "vm/vm_api.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct ad_net {
    prt_context *ctx;
    prt_graph *g;
    int root, seed; /* seed: an input value, or PRT_GRAD_ONE */
    int labels;     /* -1 unless the root is a softmax_xent loss */
    int64_t classes;
    int *grad_of;
    int n_grad_of;
    int n0; /* forward nodes */
    prt_program *p;
    prt_vm *vm;
} ad_net;

static prt_graph *load(prt_context *ctx, const char *yaml) {
    prt_graph *g = NULL;
    ck_assert_msg(prt_graph_load_yaml_string(ctx, "net.yaml", yaml, strlen(yaml), &g) == PRT_OK, "%s",
                  prt_last_error(ctx));
    ck_assert_int_eq(prt_graph_bind_params(g), PRT_OK);
    return g;
}

/* Differentiates sum(out * seed) for the network's first output, with seed a
 * new input of the output's shape. */
static void build_seeded(ad_net *a, const char *yaml) {
    memset(a, 0, sizeof *a);
    a->ctx = tu_context();
    a->g = load(a->ctx, yaml);
    a->root = a->g->outputs[0];
    a->labels = -1;
    prt_shape s = a->g->values[a->root].shape, per = {.ndim = s.ndim - 1};
    for (int i = 1; i < s.ndim; i++) per.d[i - 1] = s.d[i];
    ck_assert_int_eq(prt_graph_add_input(a->g, "seed", &per, PRT_F32, (prt_loc){0}, &a->seed), PRT_OK);
    a->n0 = a->g->n_nodes;
    ck_assert_msg(prt_autodiff(a->g, 1, &a->root, &a->seed, &a->grad_of, &a->n_grad_of) == PRT_OK, "%s",
                  prt_last_error(a->ctx));
    ck_assert_int_eq(a->n_grad_of, a->g->n_values);
}

/* Differentiates the mean cross-entropy of the first output against i32 labels. */
static void build_loss(ad_net *a, const char *yaml) {
    memset(a, 0, sizeof *a);
    a->ctx = tu_context();
    a->g = load(a->ctx, yaml);
    int logits = a->g->outputs[0], xent, node;
    const prt_op_schema *xs = prt_op_find(a->ctx->ops, "softmax_xent", &xent);
    ck_assert_ptr_nonnull(xs);
    ck_assert_int_eq(
        prt_graph_add_input(a->g, "labels", &(prt_shape){.ndim = 1, .d = {1}}, PRT_I32, (prt_loc){0}, &a->labels),
        PRT_OK);
    prt_attr attrs[4];
    prt_attrs_default(xs, attrs);
    ck_assert_int_eq(
        prt_graph_add_node(a->g, xent, "loss", "loss", (int[]){logits, a->labels}, 2, attrs, (prt_loc){0}, &node),
        PRT_OK);
    ck_assert_int_eq(prt_graph_infer_node(a->g, node), PRT_OK);
    a->root = a->g->nodes[node].out[0];
    a->seed = PRT_GRAD_ONE;
    a->classes = a->g->values[logits].shape.d[1];
    ck_assert_int_eq(prt_graph_set_outputs(a->g, &a->root, 1), PRT_OK);
    a->n0 = a->g->n_nodes;
    ck_assert_msg(prt_autodiff(a->g, 1, &a->root, &a->seed, &a->grad_of, &a->n_grad_of) == PRT_OK, "%s",
                  prt_last_error(a->ctx));
}

static void ad_free(ad_net *a) {
    prt_vm_destroy(a->vm);
    prt_program_destroy(a->ctx, a->p);
    prt_free(a->ctx, a->grad_of, 0);
    prt_graph_destroy(a->g);
    prt_context_destroy(a->ctx);
}

/* Compiles at `batch` (training mode, reference kernels) and fills the inputs. */
static void compile(ad_net *a, int64_t batch) {
    ck_assert_int_eq(prt_graph_set_outputs(a->g, &a->root, 1), PRT_OK);
    ck_assert_msg(prt_vm_compile(a->g, batch, &a->p) == PRT_OK, "%s", prt_last_error(a->ctx));
    prt_vm_options o = {.reference = true, .training = true, .unplanned = true}; /* reads gradients after the run */
    ck_assert_msg(prt_vm_create(a->ctx, a->p, NULL, &o, &a->vm) == PRT_OK, "%s", prt_last_error(a->ctx));
    for (int i = 0; i < a->g->n_inputs; i++) {
        int v = a->g->inputs[i];
        prt_tensor *t = prt_vm_find(a->vm, a->g->values[v].name);
        int64_t n = prt_shape_count(&t->shape);
        if (v == a->labels) {
            int32_t *l = prt_tensor_data(t);
            for (int64_t k = 0; k < n; k++) l[k] = (int32_t)((k * 7 + 3) % a->classes);
        } else {
            prt_rng_fill_normal(500 + (uint64_t)i, PRT_F32P(t), n, 0.0f, 1.0f);
        }
    }
}

/* The loss the gradient is of, in double. */
static double loss(ad_net *a) {
    ck_assert_msg(prt_vm_run(a->vm) == PRT_OK, "%s", prt_last_error(a->ctx));
    const prt_tensor *y = prt_vm_find(a->vm, a->g->values[a->root].name);
    if (a->seed == PRT_GRAD_ONE) return PRT_F32P(y)[0];
    const float *s = PRT_F32P(prt_vm_find(a->vm, "seed"));
    double sum = 0;
    for (int64_t i = 0; i < prt_shape_count(&y->shape); i++) sum += (double)PRT_F32P(y)[i] * s[i];
    return sum;
}

/* Every parameter's gradient against central differences with step h, on up
 * to `per_param` elements spread over each tensor. Tolerance: |fd - grad| <=
 * 2e-3 + 2e-2 |grad|; the forward pass runs in float32, so the difference
 * quotient carries about 1e-4 of rounding noise at h = 1e-2, and batch norm's
 * curvature adds O(h^2). Returns how many elements were checked. */
static int check_grads(ad_net *a, double h, int per_param) {
    prt_graph *g = a->g;
    /* every analytic gradient from one unperturbed run, before any probing */
    loss(a);
    float **analytic = calloc((size_t)a->n_grad_of, sizeof *analytic);
    for (int v = 0; v < a->n_grad_of; v++) {
        if (g->values[v].kind != PRT_VAL_PARAM) continue;
        int gv = a->grad_of[v];
        ck_assert_msg(gv >= 0, "parameter '%s' has no gradient", g->values[v].name);
        const prt_tensor *gt = prt_vm_find(a->vm, g->values[gv].name);
        ck_assert_ptr_nonnull(gt);
        int64_t n = prt_shape_count(&gt->shape);
        ck_assert_int_eq(n, prt_shape_count(&g->values[v].shape));
        analytic[v] = malloc((size_t)n * sizeof **analytic);
        memcpy(analytic[v], PRT_F32P(gt), (size_t)n * sizeof **analytic);
    }
    int checked = 0;
    for (int v = 0; v < a->n_grad_of; v++) {
        if (!analytic[v]) continue;
        prt_tensor *pt = prt_vm_find(a->vm, g->values[v].name);
        int64_t n = prt_shape_count(&pt->shape);
        int64_t stride = n <= per_param ? 1 : n / per_param;
        for (int64_t e = 0; e < n; e += stride) {
            float *p = PRT_F32P(pt), orig = p[e];
            p[e] = (float)(orig + h);
            double up = loss(a);
            p[e] = (float)(orig - h);
            double down = loss(a);
            p[e] = orig;
            double fd = (up - down) / (2 * h), an = analytic[v][e];
            ck_assert_msg(fabs(fd - an) <= 2e-3 + 2e-2 * fabs(an),
                          "d/d %s[%lld]: autodiff %.6g, finite differences %.6g", g->values[v].name, (long long)e, an,
                          fd);
            checked++;
        }
        free(analytic[v]);
    }
    free(analytic);
    return checked;
}

static bool has_value(const prt_graph *g, const char *name) { return prt_graph_find_value(g, name) >= 0; }

/* ---- gradients against finite differences ----------------------------------- */

START_TEST(test_chain) {
    ad_net a;
    build_seeded(&a, "parrots: 1\n"
                     "input: {x: [6]}\n"
                     "layers:\n"
                     "  - linear: {out: 5}\n"
                     "    name: l1\n"
                     "  - relu:\n"
                     "  - scale: {by: 0.5}\n"
                     "  - linear: {out: 3}\n"
                     "    name: l2\n");
    compile(&a, 4);
    ck_assert_int_eq(check_grads(&a, 1e-2, 100), 5 * 6 + 5 + 3 * 5 + 3);
    ad_free(&a);
}
END_TEST

/* `a` feeds two layers and b1 enters the add twice: a's gradient is one sum. */
START_TEST(test_fan_out) {
    ad_net a;
    build_seeded(&a, "parrots: 1\n"
                     "input: {x: [4]}\n"
                     "layers:\n"
                     "  - linear: {out: 6}\n"
                     "    name: a\n"
                     "  - linear: {out: 3}\n"
                     "    name: b1\n"
                     "  - linear: {out: 3}\n"
                     "    name: b2\n"
                     "    input: a\n"
                     "  - add:\n"
                     "    input: [b1, b2, b1]\n"
                     "    name: s\n");
    ck_assert(has_value(a.g, "a/grad_sum"));
    ck_assert(has_value(a.g, "b1/grad_sum"));
    int a_id = prt_graph_find_value(a.g, "a");
    ck_assert_int_eq(a.grad_of[a_id], prt_graph_find_value(a.g, "a/grad_sum"));
    compile(&a, 3);
    check_grads(&a, 1e-2, 100);
    ad_free(&a);
}
END_TEST

/* 70 uses of one value: more contributions than one add node takes. */
START_TEST(test_wide_fan_out) {
    static char yaml[16384];
    int at = snprintf(yaml, sizeof yaml, "parrots: 1\ninput: {x: [3]}\nlayers:\n  - linear: {out: 2}\n    name: a\n");
    for (int k = 0; k < 70; k++)
        at += snprintf(yaml + at, sizeof yaml - (size_t)at, "  - scale: {by: %g}\n    name: s%d\n    input: a\n",
                       0.1 * (k % 7) - 0.25, k);
    for (int h = 0; h < 2; h++) {
        at += snprintf(yaml + at, sizeof yaml - (size_t)at, "  - add:\n    name: h%d\n    input: [", h);
        for (int k = 0; k < 35; k++)
            at += snprintf(yaml + at, sizeof yaml - (size_t)at, "%ss%d", k ? ", " : "", 35 * h + k);
        at += snprintf(yaml + at, sizeof yaml - (size_t)at, "]\n");
    }
    snprintf(yaml + at, sizeof yaml - (size_t)at, "  - add:\n    input: [h0, h1]\n");
    ad_net a;
    build_seeded(&a, yaml);
    ck_assert(has_value(a.g, "a/grad_sum"));
    ck_assert(has_value(a.g, "a/grad_sum#2"));
    ck_assert(!has_value(a.g, "a/grad_sum#3"));
    compile(&a, 2);
    ck_assert_int_eq(check_grads(&a, 1e-2, 100), 2 * 3 + 2);
    ad_free(&a);
}
END_TEST

/* PolyNet's poly-3: three applications of one convolution, each with its own
 * batch norm; the weight's gradient sums the three uses. */
START_TEST(test_poly3_sharing) {
    ad_net a;
    build_seeded(&a, "parrots: 1\n"
                     "input: {x: [2, 5, 5]}\n"
                     "modules:\n"
                     "  f:\n"
                     "    layers:\n"
                     "      - conv: {out: 2, kernel: 3, pad: 1, bias: false}\n"
                     "      - batchnorm:\n"
                     "layers:\n"
                     "  - f:\n"
                     "    name: f1\n"
                     "  - scale: {by: 1.5}\n"
                     "  - f:\n"
                     "    name: f2\n"
                     "    share: {with: f1, ops: [conv]}\n"
                     "  - f:\n"
                     "    name: f3\n"
                     "    share: {with: f1, ops: [conv]}\n"
                     "  - add:\n"
                     "    input: [f1, f2, f3]\n");
    ck_assert(!has_value(a.g, "f2/conv_0.weight"));
    ck_assert(has_value(a.g, "f2/batchnorm_1.scale"));
    int w = prt_graph_find_value(a.g, "f1/conv_0.weight");
    ck_assert_int_ge(w, 0);
    ck_assert_int_eq(a.grad_of[w], prt_graph_find_value(a.g, "f1/conv_0.weight/grad_sum"));
    compile(&a, 4);
    check_grads(&a, 1e-2, 40);
    ad_free(&a);
}
END_TEST

START_TEST(test_concat_branches) {
    ad_net a;
    build_seeded(&a, "parrots: 1\n"
                     "input: {x: [3, 4, 4]}\n"
                     "layers:\n"
                     "  - conv: {out: 2, kernel: 1}\n"
                     "    name: p\n"
                     "  - conv: {out: 3, kernel: 3, pad: 1}\n"
                     "    name: q\n"
                     "    input: x\n"
                     "  - concat:\n"
                     "    input: [p, q]\n"
                     "  - conv: {out: 2, kernel: 1}\n"
                     "    name: r\n");
    compile(&a, 2);
    check_grads(&a, 1e-2, 30);
    ad_free(&a);
}
END_TEST

/* A scalar loss seeded with 1: softmax cross-entropy against i32 labels. */
START_TEST(test_loss_seeded_with_one) {
    ad_net a;
    build_loss(&a, "parrots: 1\n"
                   "input: {x: [2, 3, 3]}\n"
                   "layers:\n"
                   "  - conv: {out: 3, kernel: 3, pad: 1}\n"
                   "  - batchnorm:\n"
                   "  - flatten:\n"
                   "  - linear: {out: 4}\n"
                   "    name: logits\n");
    compile(&a, 5);
    check_grads(&a, 1e-2, 30);
    ad_free(&a);
}
END_TEST

/* ---- what gets a gradient ----------------------------------------------------- */

START_TEST(test_inputs_get_no_gradient) {
    ad_net a;
    build_loss(&a, "parrots: 1\n"
                   "input: {x: [4], y: [4]}\n"
                   "layers:\n"
                   "  - add:\n"
                   "    input: [x, y]\n"
                   "  - linear: {out: 3}\n"
                   "    name: logits\n");
    for (int i = 0; i < a.g->n_inputs; i++) ck_assert_int_eq(a.grad_of[a.g->inputs[i]], -1);
    ck_assert_int_eq(a.grad_of[prt_graph_find_value(a.g, "add_0")], -1); /* depends on no parameter */
    ck_assert_int_ge(a.grad_of[prt_graph_find_value(a.g, "logits")], 0);
    ck_assert_int_ge(a.grad_of[prt_graph_find_value(a.g, "logits.weight")], 0);
    ad_free(&a);
}
END_TEST

/* conv's builder asks for the gradient of its input, which leads to no
 * parameter; the node computing it is removed again. */
START_TEST(test_unneeded_gradient_nodes_removed) {
    ad_net a;
    build_seeded(&a, "parrots: 1\n"
                     "input: {x: [2, 4, 4]}\n"
                     "layers:\n"
                     "  - scale: {by: 2}\n"
                     "  - conv: {out: 3, kernel: 3}\n"
                     "    name: c\n");
    ck_assert(!has_value(a.g, "c/conv_bwd_data"));
    ck_assert(has_value(a.g, "c/conv_bwd_weight"));
    for (int n = 0; n < a.g->n_nodes; n++)
        for (int k = 0; k < a.g->nodes[n].n_out; k++) ck_assert_int_eq(a.g->values[a.g->nodes[n].out[k]].producer, n);
    for (int v = 0; v < a.g->n_values; v++) ck_assert_int_eq(prt_graph_find_value(a.g, a.g->values[v].name), v);
    compile(&a, 2);
    check_grads(&a, 1e-2, 30);
    ad_free(&a);
}
END_TEST

/* ---- layers without a gradient ------------------------------------------------ */

static prt_status same_shape(prt_infer_ctx *ic) {
    ic->out[0] = ic->in[0];
    return PRT_OK;
}
static prt_status copy_kernel(const prt_kernel_call *c) {
    memcpy(PRT_F32P(c->out[0]), PRT_F32P(c->in[0]), (size_t)prt_shape_count(&c->in[0]->shape) * sizeof(float));
    return PRT_OK;
}
static const prt_op_schema nograd = {
    .name = "nograd",
    .doc = "identity without a gradient (tests)",
    .min_in = 1,
    .max_in = 1,
    .n_out = 1,
    .infer = same_shape,
    .inplace_in = -1,
    .ref = {.run = copy_kernel},
    .grad_note = "test op without a gradient",
};

static prt_status try_autodiff(prt_context *ctx, const char *yaml) {
    ck_assert_int_eq(prt_registry_add(ctx, ctx->ops, &nograd), PRT_OK);
    prt_graph *g = load(ctx, yaml);
    int root = g->outputs[0], seed;
    prt_shape s = g->values[root].shape, per = {.ndim = 1, .d = {s.d[1]}};
    ck_assert_int_eq(prt_graph_add_input(g, "seed", &per, PRT_F32, (prt_loc){0}, &seed), PRT_OK);
    int *grad_of = NULL, n;
    prt_status st = prt_autodiff(g, 1, &root, &seed, &grad_of, &n);
    if (st != PRT_OK) ck_assert_ptr_null(grad_of);
    prt_free(ctx, grad_of, 0);
    prt_graph_destroy(g);
    return st;
}

START_TEST(test_cannot_differentiate) {
    prt_context *ctx = tu_context();
    ck_assert_int_eq(try_autodiff(ctx, "parrots: 1\n"
                                       "input: {x: [4]}\n"
                                       "layers:\n"
                                       "  - linear: {out: 4}\n"
                                       "    name: a\n"
                                       "  - nograd:\n"
                                       "    name: b\n"
                                       "  - linear: {out: 2}\n"
                                       "    name: out\n"),
                     PRT_ERR_UNSUPPORTED);
    ck_assert_str_eq(prt_last_error(ctx), "net.yaml:6:5: layer 'b' (nograd): cannot differentiate: test op without "
                                          "a gradient; path to the loss: 'b' -> 'out'");
    prt_context_destroy(ctx);
}
END_TEST

/* A long path shows its ends; names are full module paths. */
START_TEST(test_cannot_differentiate_long_path) {
    prt_context *ctx = tu_context();
    ck_assert_int_eq(try_autodiff(ctx, "parrots: 1\n"
                                       "input: {x: [4]}\n"
                                       "modules:\n"
                                       "  blk:\n"
                                       "    layers:\n"
                                       "      - scale: {by: 0.9}\n"
                                       "        name: s\n"
                                       "layers:\n"
                                       "  - linear: {out: 4}\n"
                                       "  - nograd:\n"
                                       "    name: n\n"
                                       "  - repeat: 9\n"
                                       "    name: r\n"
                                       "    module: blk\n"
                                       "  - linear: {out: 2}\n"
                                       "    name: out\n"),
                     PRT_ERR_UNSUPPORTED);
    ck_assert_str_eq(prt_last_error(ctx), "net.yaml:10:5: layer 'n' (nograd): cannot differentiate: test op without "
                                          "a gradient; path to the loss: 'n' -> 'r/0/s' -> 'r/1/s' -> 'r/2/s' -> ... "
                                          "(4 more) -> 'r/7/s' -> 'r/8/s' -> 'out'");
    prt_context_destroy(ctx);
}
END_TEST

/* Off the differentiable path (it reads only the data) the op is no problem. */
START_TEST(test_no_gradient_needed_before_parameters) {
    prt_context *ctx = tu_context();
    ck_assert_int_eq(try_autodiff(ctx, "parrots: 1\n"
                                       "input: {x: [4]}\n"
                                       "layers:\n"
                                       "  - nograd:\n"
                                       "  - linear: {out: 2}\n"),
                     PRT_OK);
    prt_context_destroy(ctx);
}
END_TEST

static Suite *autodiff_suite(void) {
    Suite *s = suite_create("autodiff");
    TCase *t = tcase_create("gradients");
    tcase_add_test(t, test_chain);
    tcase_add_test(t, test_fan_out);
    tcase_add_test(t, test_wide_fan_out);
    tcase_add_test(t, test_poly3_sharing);
    tcase_add_test(t, test_concat_branches);
    tcase_add_test(t, test_loss_seeded_with_one);
    tcase_add_test(t, test_inputs_get_no_gradient);
    tcase_add_test(t, test_unneeded_gradient_nodes_removed);
    suite_add_tcase(s, t);
    TCase *e = tcase_create("errors");
    tcase_add_test(e, test_cannot_differentiate);
    tcase_add_test(e, test_cannot_differentiate_long_path);
    tcase_add_test(e, test_no_gradient_needed_before_parameters);
    suite_add_tcase(s, e);
    return s;
}

int main(void) { return tu_run(autodiff_suite()); }

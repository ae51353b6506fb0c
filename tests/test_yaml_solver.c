/* The YAML `solver:` section (frontends/yaml_solver.c): the values land in
 * g->solver over the defaults, relations between fields are checked together,
 * and every problem is reported at its place in the file. */
// labels: unit

#include <math.h>
#include <string.h>

#include "ops/train_impl.h"
#include "tests/test_util.h"

#define H "parrots: 1\ninput: {x: [1, 4, 4]}\nlayers: [flatten: , {linear: {out: 3}}]\n"

static prt_graph *load(prt_context *ctx, const char *text) {
    prt_graph *g = NULL;
    prt_status st = prt_graph_load_yaml_string(ctx, "net.yaml", text, strlen(text), &g);
    ck_assert_msg(st == PRT_OK, "%s", prt_last_error(ctx));
    return g;
}

START_TEST(no_section) {
    prt_context *ctx = tu_context();
    prt_graph *g = load(ctx, H);
    ck_assert_ptr_null(g->solver);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(values_over_defaults) {
    prt_context *ctx = tu_context();
    prt_graph *g = load(ctx, H "solver:\n"
                               "  optimizer: adamw\n"
                               "  lr: 2e-3\n"
                               "  weight_decay: 0.05\n"
                               "  schedule: cosine\n"
                               "  warmup_epochs: 12     # checked against epochs below, not the default 10\n"
                               "  epochs: 15\n"
                               "  batch: 32\n"
                               "  nesterov: False\n"
                               "  label_smoothing: 0.1\n");
    const prt_solver *s = g->solver;
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(s->optimizer, PRT_OPT_adamw);
    ck_assert_double_eq_tol(s->lr, 0.002, 1e-15);
    ck_assert_double_eq_tol(s->weight_decay, 0.05, 1e-15);
    ck_assert_int_eq(s->schedule, PRT_SCHED_cosine);
    ck_assert_double_eq(s->warmup_epochs, 12);
    ck_assert_int_eq(s->epochs, 15);
    ck_assert_int_eq(s->batch, 32);
    ck_assert(!s->nesterov);
    ck_assert_double_eq_tol(s->label_smoothing, 0.1, 1e-15);
    /* untouched fields keep the documented defaults */
    ck_assert_double_eq_tol(s->momentum, 0.9, 1e-15);
    ck_assert_double_eq_tol(s->beta2, 0.999, 1e-15);
    prt_graph_destroy(g);
    /* an empty section is the defaults */
    g = load(ctx, H "solver:\n");
    ck_assert_ptr_nonnull(g->solver);
    ck_assert_double_eq_tol(g->solver->lr, 0.1, 1e-15);
    ck_assert_int_eq(g->solver->batch, 64);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(errors) {
    static const struct {
        const char *text, *msg;
    } cases[] = {
        {H "solver: {lrr: 1}\n", "net.yaml:4:10: solver: unknown key 'lrr' (did you mean 'lr'?)"},
        {H "solvr: {}\n", "net.yaml:4:1: unknown key 'solvr' (did you mean 'solver'?)"},
        {H "solver:\n  lr: abc\n", "net.yaml:5:7: solver.lr: expected a number, got 'abc'"},
        {H "solver:\n  lr: -0.1\n", "net.yaml:5:7: solver.lr must be > 0, got -0.1"},
        {H "solver:\n  epochs: 3\n  warmup_epochs: 4\n",
         "net.yaml:6:18: solver.warmup_epochs must be in [0, epochs = 3], got 4"},
        {H "solver:\n  min_lr: 0.5\n  lr: 0.2\n", "net.yaml:5:11: solver.min_lr must be in [0, lr = 0.2], got 0.5"},
        {H "solver:\n  nesterov: true\n  momentum: 0\n",
         "net.yaml:5:13: solver.nesterov needs momentum > 0, got momentum 0"},
        {H "solver:\n  optimizer: adma\n",
         "net.yaml:5:14: solver.optimizer: unknown optimizer 'adma' (did you mean 'adam'?); expected one of sgd, "
         "rmsprop, adam, adamw"},
        {H "solver:\n  schedule: cosin\n",
         "net.yaml:5:13: solver.schedule: unknown schedule 'cosin' (did you mean 'cosine'?); expected one of "
         "constant, step, cosine"},
        {H "solver:\n  batch: 2.5\n", "net.yaml:5:10: solver.batch: expected an integer, got '2.5'"},
        {H "solver:\n  batch: 0\n", "net.yaml:5:10: solver.batch must be >= 1, got 0"},
        {H "solver:\n  lr: [1]\n", "net.yaml:5:7: solver.lr: expected a value, found a list"},
        {H "solver:\n  lr:\n", "net.yaml:5:6: solver.lr: expected a value, found null"},
        {H "solver: [1, 2]\n",
         "net.yaml:4:9: 'solver' expects a mapping of training settings (such as 'solver: {lr: 0.1, epochs: 10}'), "
         "found a list"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        tu_expect_yaml_error(cases[i].text, PRT_ERR_SCHEMA, cases[i].msg);
}
END_TEST

/* The examples carry solver sections that pass the checks. */
START_TEST(examples) {
    static const char *const files[] = {"examples/fashion-cnn.yaml", "examples/polynet-mini.yaml"};
    prt_context *ctx = tu_context();
    for (int i = 0; i < 2; i++) {
        prt_graph *g = NULL;
        ck_assert_msg(prt_graph_load_yaml(ctx, tu_src(files[i]), &g) == PRT_OK, "%s", prt_last_error(ctx));
        ck_assert_ptr_nonnull(g->solver);
        ck_assert_int_eq(prt_solver_check(ctx, g->solver), PRT_OK);
        prt_graph_destroy(g);
    }
    prt_context_destroy(ctx);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("yaml_solver");
    TCase *tc = tcase_create("yaml_solver");
    tcase_add_test(tc, no_section);
    tcase_add_test(tc, values_over_defaults);
    tcase_add_test(tc, errors);
    tcase_add_test(tc, examples);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run(suite()); }

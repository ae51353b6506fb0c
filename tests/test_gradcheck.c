/* prt_op_gradcheck (ops/gradcheck.c), the harness behind `parrots op-check`:
 * it passes built-ins the suite already trusts, and it catches ops that are
 * wrong on purpose (a scaled gradient, a NaN forward, an in-place kernel that
 * reads what it overwrote), registered here as extra schemas. */
// labels: unit

#include <math.h>
#include <string.h>

#include "ops/gradcheck_impl.h"
#include "runtime/cuda_api.h"
#include "tests/test_util.h"

static prt_shape sh(int nd, int64_t a, int64_t b, int64_t c, int64_t d) {
    int64_t v[4] = {a, b, c, d};
    return prt_shape_make(nd, v);
}

/* Runs the harness, asserting it could be set up. */
static void run(prt_context *ctx, const char *op, const prt_gradcheck_spec *sp, prt_gradcheck_report *rep) {
    prt_status st = prt_op_gradcheck(ctx, op, sp, rep);
    ck_assert_msg(st == PRT_OK, "%s: %s", op, prt_last_error(ctx));
}

static void expect(const prt_gradcheck_report *rep, prt_gradcheck_check c, prt_gradcheck_result want) {
    const prt_gradcheck_item *it = &rep->item[c];
    ck_assert_msg(it->result == want, "%s %s: %s, want %s (%s)", rep->op, prt_gradcheck_check_name(c),
                  prt_gradcheck_result_name(it->result), prt_gradcheck_result_name(want), it->note);
    if (want == PRT_GC_PASSED && c != PRT_GRADCHECK_FORWARD) {
        ck_assert_msg(it->checked > 0, "%s %s: passed with nothing compared", rep->op, prt_gradcheck_check_name(c));
        ck_assert_msg(it->worst <= it->tol, "%s %s: worst %g over tolerance %g", rep->op, prt_gradcheck_check_name(c),
                      it->worst, it->tol);
    }
}

/* The CUDA check never passes without a GPU: it says why it did not run. */
static void expect_cuda(const prt_gradcheck_report *rep) {
    if (prt_cuda_device_count() > 0) return;
    expect(rep, PRT_GRADCHECK_CUDA, PRT_GC_SKIPPED);
    ck_assert_str_eq(rep->item[PRT_GRADCHECK_CUDA].note, "skipped: no CUDA device");
}

START_TEST(test_builtins_pass) {
    prt_context *ctx = tu_context();
    static prt_gradcheck_report rep;
    struct {
        const char *op;
        int n_in;
        prt_shape in[2];
        int n_attrs;
        const char *names[4], *values[4];
        bool inplace, fast;
    } cases[] = {
        {"relu", 1, {sh(4, 2, 3, 4, 4)}, 0, {0}, {0}, true, true},
        {"conv", 1, {sh(4, 2, 4, 7, 7)}, 4, {"out", "kernel", "groups", "pad"}, {"6", "3", "2", "1"}, false, true},
        {"conv", 1, {sh(4, 1, 2, 5, 6)}, 3, {"out", "kernel", "pad"}, {"3", "1,3", "0,1,1,0"}, false, true},
        {"batchnorm", 1, {sh(4, 4, 3, 3, 3)}, 1, {"momentum"}, {"0.3"}, true, true},
        {"concat", 2, {sh(4, 2, 3, 2, 3), sh(4, 2, 2, 2, 3)}, 0, {0}, {0}, false, true},
        {"add", 2, {sh(2, 3, 5, 0, 0), sh(2, 3, 5, 0, 0)}, 0, {0}, {0}, true, true},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        prt_gradcheck_spec sp = {.n_in = cases[k].n_in, .n_attrs = cases[k].n_attrs, .seed = 3};
        for (int i = 0; i < sp.n_in; i++) sp.in[i] = cases[k].in[i];
        for (int i = 0; i < sp.n_attrs; i++) {
            sp.attr_name[i] = cases[k].names[i];
            sp.attr_value[i] = cases[k].values[i];
        }
        run(ctx, cases[k].op, &sp, &rep);
        expect(&rep, PRT_GRADCHECK_FORWARD, PRT_GC_PASSED);
        expect(&rep, PRT_GRADCHECK_FAST, cases[k].fast ? PRT_GC_PASSED : PRT_GC_SKIPPED);
        expect(&rep, PRT_GRADCHECK_GRADIENT, PRT_GC_PASSED);
        expect(&rep, PRT_GRADCHECK_INPLACE, cases[k].inplace ? PRT_GC_PASSED : PRT_GC_SKIPPED);
        expect_cuda(&rep);
        ck_assert(prt_gradcheck_passed(&rep));
    }
    /* conv's output shape as inferred: 7x7, kernel 3, pad 1 */
    ck_assert_int_eq(rep.n_out, 1);
    /* softmax_xent: a loss (output 0 is [1]) with integer labels */
    prt_gradcheck_spec sp = {.n_in = 2, .in = {sh(2, 4, 5, 0, 0), sh(2, 4, 1, 0, 0)}, .in_dtype = {PRT_F32, PRT_I32}};
    run(ctx, "softmax_xent", &sp, &rep);
    expect(&rep, PRT_GRADCHECK_GRADIENT, PRT_GC_PASSED);
    /* maxpool: kinks (ties within the step) are skipped, not failed */
    prt_gradcheck_spec mp = {.n_in = 1, .in = {sh(4, 2, 3, 6, 6)}, .n_attrs = 1, .attr_name = {"kernel"},
                             .attr_value = {"2"}};
    run(ctx, "maxpool", &mp, &rep);
    expect(&rep, PRT_GRADCHECK_GRADIENT, PRT_GC_PASSED);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(test_not_differentiable_skips) {
    prt_context *ctx = tu_context();
    static prt_gradcheck_report rep;
    prt_gradcheck_spec sp = {.n_in = 2, .in = {sh(2, 2, 3, 0, 0), sh(2, 2, 3, 0, 0)}};
    run(ctx, "relu_bwd", &sp, &rep);
    expect(&rep, PRT_GRADCHECK_FORWARD, PRT_GC_PASSED);
    expect(&rep, PRT_GRADCHECK_GRADIENT, PRT_GC_SKIPPED);
    ck_assert_str_eq(rep.item[PRT_GRADCHECK_GRADIENT].note, "skipped: relu_bwd is not differentiable (backward-only op)");
    ck_assert(prt_gradcheck_passed(&rep));
    prt_context_destroy(ctx);
}
END_TEST

/* ---- ops that are wrong on purpose ------------------------------------------- */

/* relu's gradient, then scaled by 2 */
static prt_status doubled_grad(prt_grad_ctx *gc) {
    PRT_CHECK(prt_op_relu.grad(gc));
    if (gc->dx[0] < 0) return PRT_OK;
    int scale_id;
    const prt_op_schema *sc = prt_op_find(gc->g->ctx->ops, "scale", &scale_id);
    prt_attr a[4];
    prt_attrs_default(sc, a);
    a[prt_op_attr_index(sc, "by")].f = 2.0;
    int in = gc->dx[0];
    return prt_grad_emit(gc, "scale", &in, 1, a, &gc->dx[0]);
}

static prt_status nan_ref(const prt_kernel_call *c) {
    float *y = PRT_F32P(c->out[0]);
    int64_t n = prt_shape_count(&c->out[0]->shape);
    for (int64_t i = 0; i < n; i++) y[i] = i == 3 ? NAN : 1.0f;
    return PRT_OK;
}

/* y = x + x[0]: correct into its own buffer, wrong in place (x[0] is gone by then) */
static prt_status shift_ref(const prt_kernel_call *c) {
    const float *x = PRT_F32P(c->in[0]);
    float *y = PRT_F32P(c->out[0]);
    int64_t n = prt_shape_count(&c->out[0]->shape);
    for (int64_t i = 0; i < n; i++) y[i] = x[i] + x[0];
    return PRT_OK;
}

static prt_op_schema doubled, nan_op, shifty;

static prt_context *broken_context(void) {
    prt_context *ctx = tu_context();
    doubled = prt_op_relu;
    doubled.name = "test_relu_doubled";
    doubled.grad = doubled_grad;
    nan_op = prt_op_relu;
    nan_op.name = "test_nan";
    nan_op.ref.run = nan_ref;
    nan_op.fast.run = NULL;
    shifty = prt_op_relu;
    shifty.name = "test_shifty";
    shifty.ref.run = shift_ref;
    shifty.fast.run = NULL;
    shifty.grad = NULL;
    shifty.grad_note = "test op";
    ck_assert_int_eq(prt_registry_add(ctx, ctx->ops, &doubled), PRT_OK);
    ck_assert_int_eq(prt_registry_add(ctx, ctx->ops, &nan_op), PRT_OK);
    ck_assert_int_eq(prt_registry_add(ctx, ctx->ops, &shifty), PRT_OK);
    return ctx;
}

START_TEST(test_wrong_gradient_caught) {
    prt_context *ctx = broken_context();
    static prt_gradcheck_report rep;
    prt_gradcheck_spec sp = {.n_in = 1, .in = {sh(4, 2, 3, 4, 4)}};
    run(ctx, "test_relu_doubled", &sp, &rep);
    expect(&rep, PRT_GRADCHECK_FORWARD, PRT_GC_PASSED);
    expect(&rep, PRT_GRADCHECK_GRADIENT, PRT_GC_FAILED);
    const prt_gradcheck_item *it = &rep.item[PRT_GRADCHECK_GRADIENT];
    /* analytic 2a against a: e = a / (3a + floor), near 1/3, 30 times the tolerance */
    ck_assert_msg(it->worst > 0.25 && it->worst < 0.34, "worst %g", it->worst);
    ck_assert_msg(it->worst > 20 * it->tol, "worst %g, tolerance %g", it->worst, it->tol);
    ck_assert_msg(strstr(it->note, "reference kernels: dL/dx0[") != NULL, "%s", it->note);
    ck_assert(!prt_gradcheck_passed(&rep));
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(test_nan_forward_caught) {
    prt_context *ctx = broken_context();
    static prt_gradcheck_report rep;
    prt_gradcheck_spec sp = {.n_in = 1, .in = {sh(2, 2, 5, 0, 0)}};
    run(ctx, "test_nan", &sp, &rep);
    expect(&rep, PRT_GRADCHECK_FORWARD, PRT_GC_FAILED);
    ck_assert_str_eq(rep.item[PRT_GRADCHECK_FORWARD].note, "output 0 element 3 is nan");
    expect(&rep, PRT_GRADCHECK_GRADIENT, PRT_GC_SKIPPED);
    ck_assert_str_eq(rep.item[PRT_GRADCHECK_GRADIENT].note, "skipped: the forward failed");
    ck_assert(!prt_gradcheck_passed(&rep));
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(test_wrong_inplace_caught) {
    prt_context *ctx = broken_context();
    static prt_gradcheck_report rep;
    prt_gradcheck_spec sp = {.n_in = 1, .in = {sh(2, 2, 5, 0, 0)}};
    run(ctx, "test_shifty", &sp, &rep);
    expect(&rep, PRT_GRADCHECK_FORWARD, PRT_GC_PASSED);
    expect(&rep, PRT_GRADCHECK_INPLACE, PRT_GC_FAILED);
    ck_assert_msg(strstr(rep.item[PRT_GRADCHECK_INPLACE].note, "reference kernel: in place, element 1 is") != NULL,
                  "%s", rep.item[PRT_GRADCHECK_INPLACE].note);
    ck_assert(!prt_gradcheck_passed(&rep));
    prt_context_destroy(ctx);
}
END_TEST

/* ---- what cannot be set up is an error, with the message ------------------------- */

static void expect_error(prt_context *ctx, const char *op, const prt_gradcheck_spec *sp, prt_status want,
                         const char *msg) {
    static prt_gradcheck_report rep;
    prt_status st = prt_op_gradcheck(ctx, op, sp, &rep);
    ck_assert_msg(st == want, "%s: status %s, want %s (%s)", op, prt_status_str(st), prt_status_str(want),
                  prt_last_error(ctx));
    ck_assert_str_eq(prt_last_error(ctx), msg);
}

START_TEST(test_spec_errors) {
    prt_context *ctx = tu_context();
    prt_gradcheck_spec one = {.n_in = 1, .in = {sh(4, 1, 2, 5, 5)}};
    expect_error(ctx, "relux", &one, PRT_ERR_NOT_FOUND, "unknown op 'relux' (did you mean 'relu'?)");
    prt_gradcheck_spec two = {.n_in = 2, .in = {sh(2, 2, 3, 0, 0), sh(2, 2, 3, 0, 0)}};
    expect_error(ctx, "relu", &two, PRT_ERR_INVALID, "relu takes 1 data input, given 2 shapes");
    prt_gradcheck_spec s = one;
    s.n_attrs = 1;
    s.attr_name[0] = "kernal";
    s.attr_value[0] = "3";
    expect_error(ctx, "conv", &s, PRT_ERR_INVALID, "conv has no attribute 'kernal' (did you mean 'kernel'?)");
    s.attr_name[0] = "out";
    s.attr_value[0] = "3x";
    expect_error(ctx, "conv", &s, PRT_ERR_INVALID, "conv: attribute 'out' expects an integer, found '3x'");
    s.attr_value[0] = "0";
    expect_error(ctx, "conv", &s, PRT_ERR_INVALID, "conv: attribute 'out' must be at least 1, found 0");
    s.attr_value[0] = "3";
    expect_error(ctx, "conv", &s, PRT_ERR_INVALID, "conv requires attribute 'kernel' (--attr kernel=VALUE)");
    prt_gradcheck_spec batch = {.n_in = 2, .in = {sh(2, 2, 3, 0, 0), sh(2, 3, 3, 0, 0)}};
    expect_error(ctx, "add", &batch, PRT_ERR_INVALID,
                 "input 2 has batch 3, input 1 has 2: every data input's first dimension is the batch");
    expect_error(ctx, "sgd", &one, PRT_ERR_INVALID,
                 "sgd updates its inputs (optimizer update): op-check checks ops that compute outputs");
    prt_context_destroy(ctx);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("gradcheck");
    TCase *tc = tcase_create("gradcheck");
    tcase_add_test(tc, test_builtins_pass);
    tcase_add_test(tc, test_not_differentiable_skips);
    tcase_add_test(tc, test_wrong_gradient_caught);
    tcase_add_test(tc, test_nan_forward_caught);
    tcase_add_test(tc, test_wrong_inplace_caught);
    tcase_add_test(tc, test_spec_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run(suite()); }

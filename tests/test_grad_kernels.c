/* Kernel-level tests of the backward-only ops that the gradients of relu,
 * pooling, concat, flatten, softmax and dropout emit, and of the loss
 * softmax_xent and its gradient: the dropout mask shared bit for bit between
 * the forward and the backward, the exact text of their shape errors, the
 * loss kernels' check of the labels' dtype, and the threaded fast paths
 * against the reference on tensors large enough to be split, and both in
 * place where the op allows it (the reference sums in the same order, so all
 * must agree bit for bit). Their numerics are
 * checked against finite differences in test_grad.c, and the loss's forward
 * against float64 in test_ops.c. */
// labels: unit

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/ops_test_util.h"
#include "tests/vm_util.h"

/* normal-ish values, or (distinct) a shuffled ladder 0.05 apart so no window has ties */
static void fill(float *v, int64_t n, bool distinct, rng *r) {
    for (int64_t i = 0; i < n; i++) v[i] = distinct ? (float)((double)i - (double)n / 2) * 0.05f : (float)(runif(r) * 3.4 - 1.7);
    for (int64_t i = n - 1; distinct && i > 0; i--) {
        int64_t j = rint_(r, 0, i);
        float t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

/* Runs one kernel of `op` (reference or fast) on prepared tensors. */
static void run_one(prt_context *ctx, const char *op, bool fast, const prt_attr *attrs, int n_in, const prt_tensor **in,
                    int n_out, prt_tensor **out, bool training, uint64_t key, uint64_t step) {
    const prt_op_schema *s = vt_op(ctx, op, NULL);
    prt_kernel_call c = {.ctx = ctx, .attrs = attrs, .n_in = n_in, .in = in, .n_out = n_out, .out = out,
                         .training = training, .rng_key = key, .step = step};
    const prt_kernel *k = prt_op_kernel(s, !fast);
    void *state = NULL;
    if (k->prepare) ck_assert_msg(k->prepare(&c, &state) == PRT_OK, "%s: %s", op, prt_last_error(ctx));
    c.state = state;
    ck_assert_msg(k->run(&c) == PRT_OK, "%s: %s", op, prt_last_error(ctx));
    if (k->release) k->release(state);
}

/* dropout_bwd rebuilds the forward's mask from the forward node's name (the
 * VM keys a call's stream with prt_hash_str(node name, seed)): with x = 1 and
 * dy = 1 both produce the multiplier itself, so they must agree bit for bit,
 * at any step and with any pair of kernels. */
START_TEST(test_dropout_mask_matches) {
    prt_context *ctx = tu_context();
    const int64_t n = 40000;
    prt_shape sh = prt_shape_make(2, (int64_t[]){4, n / 4});
    float *ones = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float)), *dx = malloc(n * sizeof(float));
    for (int64_t e = 0; e < n; e++) ones[e] = 1.0f;
    prt_tensor tx, ty, tdx;
    prt_tensor_wrap(&tx, ones, PRT_F32, &sh);
    prt_tensor_wrap(&ty, y, PRT_F32, &sh);
    prt_tensor_wrap(&tdx, dx, PRT_F32, &sh);
    const prt_tensor *in[1] = {&tx};
    prt_tensor *oy[1] = {&ty}, *odx[1] = {&tdx};
    prt_attr fwd[1] = {{.type = PRT_ATTR_FLOAT, .f = 0.3}};
    prt_attr bwd[2] = {{.type = PRT_ATTR_FLOAT, .f = 0.3}, {.type = PRT_ATTR_STRING, .s = "b2/drop"}};
    uint64_t key = prt_hash_str("b2/drop", ctx->seed);
    for (int pair = 0; pair < 4; pair++) {
        bool fast_fwd = pair & 1, fast_bwd = pair & 2;
        for (uint64_t step = 0; step < 15; step += 7) {
            run_one(ctx, "dropout", fast_fwd, fwd, 1, in, 1, oy, true, key, step);
            run_one(ctx, "dropout_bwd", fast_bwd, bwd, 1, in, 1, odx, true, 0, step);
            ck_assert_int_eq(memcmp(y, dx, n * sizeof(float)), 0);
            int64_t zeros = 0;
            for (int64_t e = 0; e < n; e++) zeros += y[e] == 0;
            ck_assert_msg(zeros > n * 0.28 && zeros < n * 0.32, "%lld of %lld dropped", (long long)zeros, (long long)n);
        }
    }
    /* outside training both are the identity */
    run_one(ctx, "dropout_bwd", true, bwd, 1, in, 1, odx, false, 0, 3);
    ck_assert_int_eq(memcmp(ones, dx, n * sizeof(float)), 0);
    free(ones);
    free(y);
    free(dx);
    prt_context_destroy(ctx);
}
END_TEST

/* Runs op's shape function on the given input shapes and attribute overrides
 * and returns its error text ("" on success); static buffer. */
static const char *infer_error(prt_context *ctx, const char *op, int n_in, const prt_shape *in, const tset *set,
                               int n_set) {
    const prt_op_schema *s = vt_op(ctx, op, NULL);
    tcase tc;
    int k = 0;
    add_case(&tc, &k, op, n_in, in, set, n_set);
    prt_attr attrs[16];
    fill_attrs(s, &tc, attrs);
    prt_shape ins[MAX_IN], outs[4], params[PRT_MAX_OP_PARAMS];
    bool present[PRT_MAX_OP_PARAMS];
    memcpy(ins, in, (size_t)n_in * sizeof *in);
    prt_infer_ctx ic = {.ctx = ctx, .node_name = "g", .attrs = attrs, .n_in = n_in, .in = ins, .in_dtype = PRT_F32,
                        .n_out = s->n_out, .out = outs, .out_dtype = PRT_F32, .n_params = s->n_params,
                        .params = params, .param_present = present, .op_name = s->name};
    static char msg[1024];
    msg[0] = 0;
    if (s->infer(&ic) != PRT_OK) snprintf(msg, sizeof msg, "%s", prt_last_error(ctx));
    return msg;
}

START_TEST(test_backward_shape_errors) {
    prt_context *ctx = tu_context();
    prt_shape a = SH(2, 2, 3, 0, 0), b = SH(2, 2, 4, 0, 0), x4 = SH4(2, 3, 6, 6), p3 = SH4(2, 3, 3, 3);
    ck_assert_str_eq(infer_error(ctx, "relu_bwd", 2, (prt_shape[]){a, b}, NULL, 0),
                     "layer 'g' (relu_bwd): gradient dy has shape [2, 3] but the relu output y has [2, 4]");
    tset k2[] = {I1("kernel", 2)};
    ck_assert_str_eq(infer_error(ctx, "maxpool_bwd", 2, (prt_shape[]){x4, x4}, k2, 1),
                     "layer 'g' (maxpool_bwd): gradient dy has shape [2, 3, 6, 6] but pooling this input gives "
                     "[2, 3, 3, 3]");
    ck_assert_str_eq(infer_error(ctx, "avgpool_bwd", 2, (prt_shape[]){p3, a}, k2, 1),
                     "layer 'g' (avgpool_bwd): expects the forward input x as [N, C, H, W], got [2, 3]");
    ck_assert_str_eq(infer_error(ctx, "avgpool_bwd", 2, (prt_shape[]){p3, x4}, k2, 1), "");
    tset sl[] = {I1("axis", 1), I1("start", 2)};
    ck_assert_str_eq(infer_error(ctx, "slice", 2, (prt_shape[]){b, a}, sl, 2),
                     "layer 'g' (slice): elements 2 to 5 along axis 1 do not fit in x of shape [2, 4]");
    ck_assert_str_eq(infer_error(ctx, "slice", 2, (prt_shape[]){b, SH(2, 3, 1, 0, 0)}, sl, 2),
                     "layer 'g' (slice): x has shape [2, 4] but like has [3, 1]; all dimensions except axis 1 "
                     "must match");
    tset bad_axis[] = {I1("axis", 2)};
    ck_assert_str_eq(infer_error(ctx, "slice", 2, (prt_shape[]){b, a}, bad_axis, 1),
                     "layer 'g' (slice): axis 2 is out of range for a rank-2 input");
    ck_assert_str_eq(infer_error(ctx, "reshape_like", 2, (prt_shape[]){a, b}, NULL, 0),
                     "layer 'g' (reshape_like): x has shape [2, 3] (6 elements) but like has [2, 4] (8 elements)");
    ck_assert_str_eq(infer_error(ctx, "softmax_bwd", 2, (prt_shape[]){a, a}, bad_axis, 1),
                     "layer 'g' (softmax_bwd): axis 2 is out of range for a rank-2 input");
    ck_assert_str_eq(infer_error(ctx, "dropout_bwd", 1, &a, NULL, 0),
                     "layer 'g' (dropout_bwd): needs `of`, the name of the forward dropout node");
    ck_assert_str_eq(infer_error(ctx, "softmax_xent", 2, (prt_shape[]){x4, a}, NULL, 0),
                     "layer 'g' (softmax_xent): expects logits as [N, classes], got [2, 3, 6, 6]");
    ck_assert_str_eq(infer_error(ctx, "softmax_xent", 2, (prt_shape[]){a, a}, NULL, 0),
                     "layer 'g' (softmax_xent): labels must be [N, 1] or [N] with N = 2 (one class index per "
                     "sample), got [2, 3]");
    tset sm[] = {FL("smoothing", 1.5)};
    ck_assert_str_eq(infer_error(ctx, "softmax_xent", 2, (prt_shape[]){a, SH(1, 2, 0, 0, 0)}, sm, 1),
                     "layer 'g' (softmax_xent): smoothing must be in [0, 1], got 1.5");
    ck_assert_str_eq(infer_error(ctx, "softmax_xent_bwd", 3, (prt_shape[]){a, SH(2, 2, 1, 0, 0), a}, NULL, 0),
                     "layer 'g' (softmax_xent_bwd): dloss must be the loss's gradient [1], got [2, 3]");
    ck_assert_str_eq(infer_error(ctx, "softmax_xent_bwd", 2, (prt_shape[]){a, SH(2, 2, 1, 0, 0)}, NULL, 0), "");
    prt_context_destroy(ctx);
}
END_TEST

/* The kernels check what the graph cannot: the labels' dtype. */
START_TEST(test_xent_labels_dtype) {
    prt_context *ctx = tu_context();
    const prt_op_schema *s = vt_op(ctx, "softmax_xent", NULL);
    float x[6] = {0}, lab[2] = {0, 1}, loss, probs[6];
    prt_shape xs = SH(2, 2, 3, 0, 0), ls = SH(2, 2, 1, 0, 0), os = SH(1, 1, 0, 0, 0);
    prt_tensor tx, tl, tloss, tp;
    prt_tensor_wrap(&tx, x, PRT_F32, &xs);
    prt_tensor_wrap(&tl, lab, PRT_F32, &ls);
    prt_tensor_wrap(&tloss, &loss, PRT_F32, &os);
    prt_tensor_wrap(&tp, probs, PRT_F32, &xs);
    const prt_tensor *in[2] = {&tx, &tl};
    prt_tensor *out[2] = {&tloss, &tp};
    prt_attr a = {.type = PRT_ATTR_FLOAT};
    prt_kernel_call c = {.ctx = ctx, .attrs = &a, .n_in = 2, .in = in, .n_out = 2, .out = out};
    for (int fast = 0; fast < 2; fast++) {
        ck_assert_int_eq(prt_op_kernel(s, !fast)->run(&c), PRT_ERR_UNSUPPORTED);
        ck_assert_str_eq(prt_last_error(ctx), "softmax_xent kernel: input 1 (labels) is f32, expected i32");
    }
    prt_context_destroy(ctx);
}
END_TEST

/* The threaded fast paths only split work on large tensors, which the finite
 * differences above never reach: here each backward op (and the loss) runs
 * both kernels on large inputs, which must agree bit for bit (each fast path
 * keeps the reference's order of summation). */
typedef struct kcase {
    const char *op;
    int n_in;
    prt_shape in[3];
    tset set[4];
    int n_set;
    int labels;     /* input index of i32 labels, -1 none */
    bool training;
} kcase;

static void run_kernel_pair(prt_context *ctx, const kcase *kc) {
    const prt_op_schema *s = vt_op(ctx, kc->op, NULL);
    tcase tc;
    int k = 0;
    add_case(&tc, &k, kc->op, kc->n_in, kc->in, kc->set, kc->n_set);
    prt_attr attrs[16];
    fill_attrs(s, &tc, attrs);
    if (!strcmp(kc->op, "dropout_bwd")) attrs[prt_op_attr_index(s, "of")].s = "drop";
    prt_shape ins[3], outs[4], params[PRT_MAX_OP_PARAMS];
    bool present[PRT_MAX_OP_PARAMS];
    memcpy(ins, kc->in, sizeof ins);
    prt_infer_ctx ic = {.ctx = ctx, .node_name = "k", .attrs = attrs, .n_in = kc->n_in, .in = ins,
                        .in_dtype = PRT_F32, .n_out = s->n_out, .out = outs, .out_dtype = PRT_F32,
                        .n_params = s->n_params, .params = params, .param_present = present, .op_name = s->name};
    ck_assert_msg(s->infer(&ic) == PRT_OK, "%s", prt_last_error(ctx));
    rng r = {0x5eed};
    prt_tensor tin[3], tout[4][4];
    const prt_tensor *inp[3];
    for (int i = 0; i < kc->n_in; i++) {
        bool lab = i == kc->labels;
        ck_assert_int_eq(prt_tensor_alloc(ctx, prt_cpu_device(ctx), lab ? PRT_I32 : PRT_F32, &ins[i], &tin[i]), PRT_OK);
        int64_t n = prt_shape_count(&ins[i]);
        if (lab)
            for (int64_t e = 0; e < n; e++) ((int32_t *)tin[i].data)[e] = (int32_t)rint_(&r, 0, ins[0].d[1] - 1);
        else
            fill(tin[i].data, n, !strcmp(kc->op, "maxpool_bwd") && i == 1, &r);
        inp[i] = &tin[i];
    }
    /* y and probs are probabilities: positive (their sums need not be exact here) */
    int prob = !strcmp(kc->op, "softmax_bwd") ? 1 : !strcmp(kc->op, "softmax_xent_bwd") ? 0 : -1;
    for (int64_t e = 0; prob >= 0 && e < prt_shape_count(&ins[prob]); e++)
        ((float *)tin[prob].data)[e] = fabsf(((float *)tin[prob].data)[e]) * 0.1f;
    size_t ws = s->workspace ? s->workspace(&ic) : 0;
    void *wsp = ws ? malloc(ws) : NULL;
    /* variants: .ref, .fast, then both in place where the op allows it (output
     * 0 written over a copy of input inplace_in) */
    int variants = s->inplace_in >= 0 ? 4 : 2;
    for (int v = 0; v < variants; v++) {
        bool fast = v & 1, inplace = v >= 2;
        prt_tensor *outp[4];
        const prt_tensor *vin[3];
        for (int i = 0; i < kc->n_in; i++) vin[i] = inp[i];
        for (int j = 0; j < s->n_out; j++) {
            ck_assert_int_eq(prt_tensor_alloc(ctx, prt_cpu_device(ctx), PRT_F32, &outs[j], &tout[v][j]), PRT_OK);
            outp[j] = &tout[v][j];
        }
        if (inplace) {
            memcpy(tout[v][0].data, tin[s->inplace_in].data, (size_t)prt_shape_count(&outs[0]) * sizeof(float));
            vin[s->inplace_in] = &tout[v][0];
        }
        prt_kernel_call c = {.ctx = ctx, .attrs = attrs, .n_in = kc->n_in, .in = vin, .n_out = s->n_out, .out = outp,
                             .workspace = wsp, .workspace_size = ws, .training = kc->training,
                             .rng_key = prt_hash_str("drop", ctx->seed), .step = 3};
        const prt_kernel *kern = prt_op_kernel(s, !fast);
        void *state = NULL;
        if (kern->prepare) ck_assert_int_eq(kern->prepare(&c, &state), PRT_OK);
        c.state = state;
        ck_assert_msg(kern->run(&c) == PRT_OK, "%s: %s", kc->op, prt_last_error(ctx));
        if (kern->release) kern->release(state);
    }
    static const char *const vname[4] = {".ref", ".fast", ".ref in place", ".fast in place"};
    for (int j = 0; j < s->n_out; j++) {
        size_t bytes = (size_t)prt_shape_count(&outs[j]) * sizeof(float);
        for (int v = 1; v < variants; v++)
            ck_assert_msg(memcmp(tout[0][j].data, tout[v][j].data, bytes) == 0, "%s: %s output %d differs from .ref",
                          kc->op, vname[v], j);
        for (int v = 0; v < variants; v++) prt_tensor_release(ctx, &tout[v][j]);
    }
    for (int i = 0; i < kc->n_in; i++) prt_tensor_release(ctx, &tin[i]);
    free(wsp);
}

START_TEST(test_backward_fast_matches_ref) {
    prt_context *ctx = tu_context();
    prt_shape big = SH4(4, 64, 33, 35), x = SH4(2, 64, 34, 34), p = SH4(2, 64, 17, 17);
    const kcase cases[] = {
        {"relu_bwd", 2, {big, big}, {{0}}, 0, -1, true},
        {"maxpool_bwd", 2, {p, x}, {I1("kernel", 3), I1("stride", 2), I1("pad", 1)}, 3, -1, true},
        {"maxpool_bwd", 2, {SH4(2, 64, 1, 1), x}, {I1("global", 1)}, 1, -1, true},
        {"avgpool_bwd", 2, {p, x}, {I1("kernel", 3), I1("stride", 2), I1("pad", 1)}, 3, -1, true},
        {"avgpool_bwd", 2, {p, x}, {I1("kernel", 3), I1("stride", 2), I1("pad", 1), I1("count_include_pad", 0)}, 4, -1,
         true},
        {"slice", 2, {SH4(4, 96, 35, 35), SH4(4, 64, 35, 35)}, {I1("axis", 1), I1("start", 32)}, 2, -1, true},
        {"slice", 2, {SH4(4, 8, 64, 35), SH4(4, 8, 40, 35)}, {I1("axis", 2), I1("start", 7)}, 2, -1, true},
        {"reshape_like", 2, {SH(2, 8, 9248, 0, 0), SH4(8, 32, 17, 17)}, {{0}}, 0, -1, true},
        {"softmax_bwd", 2, {SH4(8, 5, 40, 40), SH4(8, 5, 40, 40)}, {{0}}, 0, -1, true},
        {"softmax_bwd", 2, {SH(2, 64, 1000, 0, 0), SH(2, 64, 1000, 0, 0)}, {I1("axis", -1)}, 1, -1, true},
        {"dropout_bwd", 1, {big}, {FL("p", 0.2)}, 1, -1, true},
        {"dropout_bwd", 1, {big}, {FL("p", 0.2)}, 1, -1, false},
        {"softmax_xent", 2, {SH(2, 512, 100, 0, 0), SH(2, 512, 1, 0, 0)}, {FL("smoothing", 0.1)}, 1, 1, true},
        {"softmax_xent_bwd", 2, {SH(2, 512, 1000, 0, 0), SH(2, 512, 1, 0, 0)}, {{0}}, 0, 1, true},
        {"softmax_xent_bwd", 3, {SH(2, 512, 1000, 0, 0), SH(1, 512, 0, 0, 0), SH(1, 1, 0, 0, 0)},
         {FL("smoothing", 0.2)}, 1, 1, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_kernel_pair(ctx, &cases[i]);
    prt_context_destroy(ctx);
}
END_TEST


static Suite *suite(void) {
    Suite *s = suite_create("grad_kernels");
    TCase *tc = tcase_create("kernels");
    tcase_add_test(tc, test_dropout_mask_matches);
    tcase_add_test(tc, test_backward_shape_errors);
    tcase_add_test(tc, test_xent_labels_dtype);
    tcase_add_test(tc, test_backward_fast_matches_ref);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run(suite()); }

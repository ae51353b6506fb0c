/* The host side of CUDA graphs (docs/gpu.md "CUDA graphs"), which runs without
 * a GPU: the --cuda-graph mode names, what a CPU VM says and accepts, and the
 * per-step values the VM copies to the device before every run, graph or plain.
 * Those hooks (prt_kernel.step_values) must give exactly what the kernels used
 * to compute on the host at each step: the optimizers' prt_optim_coef_of, with
 * a schedule whose rate changes at every step, and dropout's counter base, from
 * which the device's counters must equal the CPU's masks' counters element for
 * element (one process and data parallel). tests/test_cuda_graph.c checks the
 * GPU half: graph replays equal to plain runs, bit for bit. */
// labels: unit
#include "tests/test_util.h"

#include "ops/cuda/cuda_rng.h"
#include "ops/optim_impl.h"
#include "vm/vm_impl.h"

#include <string.h>

START_TEST(mode_names) {
    prt_cuda_graph_mode m = PRT_CUDA_GRAPH_OFF;
    ck_assert(prt_cuda_graph_mode_from_name("auto", &m) && m == PRT_CUDA_GRAPH_AUTO);
    ck_assert(prt_cuda_graph_mode_from_name("on", &m) && m == PRT_CUDA_GRAPH_ON);
    ck_assert(prt_cuda_graph_mode_from_name("off", &m) && m == PRT_CUDA_GRAPH_OFF);
    m = PRT_CUDA_GRAPH_ON;
    ck_assert(!prt_cuda_graph_mode_from_name("yes", &m));
    ck_assert(!prt_cuda_graph_mode_from_name("", &m));
    ck_assert(!prt_cuda_graph_mode_from_name("AUTO", &m));
    ck_assert(!prt_cuda_graph_mode_from_name(NULL, &m));
    ck_assert_int_eq(m, PRT_CUDA_GRAPH_ON); /* untouched by a failed parse */
    for (int k = PRT_CUDA_GRAPH_AUTO; k <= PRT_CUDA_GRAPH_ON; k++) {
        ck_assert(prt_cuda_graph_mode_from_name(prt_cuda_graph_mode_name((prt_cuda_graph_mode)k), &m));
        ck_assert_int_eq(m, k);
    }
    /* the default of a zeroed options struct is AUTO */
    prt_vm_options o = {0};
    ck_assert_int_eq(o.cuda_graph, PRT_CUDA_GRAPH_AUTO);
}
END_TEST

/* On the CPU the option is ignored, ON included: the VM is made, runs, and says so. */
START_TEST(cpu_vm_ignores_the_mode) {
    prt_context *ctx = tu_context();
    prt_graph *g;
    ck_assert_msg(prt_graph_load_yaml(ctx, tu_src("examples/fashion-cnn.yaml"), &g) == PRT_OK, "%s",
                  prt_last_error(ctx));
    ck_assert_int_eq(prt_graph_bind_params(g), PRT_OK);
    prt_program *p;
    ck_assert_msg(prt_vm_compile(g, 2, &p) == PRT_OK, "%s", prt_last_error(ctx));
    for (int m = PRT_CUDA_GRAPH_AUTO; m <= PRT_CUDA_GRAPH_ON; m++) {
        prt_vm_options o = {.cuda_graph = (prt_cuda_graph_mode)m};
        prt_vm *vm;
        ck_assert_msg(prt_vm_create(ctx, p, prt_cpu_device(ctx), &o, &vm) == PRT_OK, "%s", prt_last_error(ctx));
        ck_assert_str_eq(prt_vm_cuda_graph_state(vm), "off (CPU device)");
        prt_tensor *x = prt_vm_input(vm, 0);
        prt_rng_fill_normal(5, PRT_F32P(x), prt_shape_count(&x->shape), 0.0f, 1.0f);
        ck_assert_msg(prt_vm_run(vm) == PRT_OK, "%s", prt_last_error(ctx));
        ck_assert_msg(prt_vm_run(vm) == PRT_OK, "%s", prt_last_error(ctx));
        ck_assert_str_eq(prt_vm_cuda_graph_state(vm), "off (CPU device)");
        /* a CPU VM has no step block: CPU kernels compute their values themselves */
        ck_assert_int_eq((int)vm->step_bytes, 0);
        for (int k = 0; k < p->n_k; k++)
            if (p->k[k].kind == PRT_CONST_CALL) ck_assert_ptr_null(vm->calls[k].kc.step_slot);
        prt_vm_destroy(vm);
    }
    prt_program_destroy(ctx, p);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

/* Each optimizer's hook over 12 steps of a warm-up + cosine schedule: the
 * slot holds prt_optim_coef_of's coefficients byte for byte, the rate is
 * prt_lr_at's, and it changes at every step (so a value frozen by a capture
 * would show). */
static const prt_optimizer_kind optimizers[] = {PRT_OPT_sgd, PRT_OPT_adam, PRT_OPT_adamw, PRT_OPT_rmsprop};

START_TEST(optimizer_step_values) {
    prt_optimizer_kind kind = optimizers[_i];
    prt_context *ctx = tu_context();
    prt_graph *g;
    ck_assert_int_eq(prt_graph_new(ctx, "t", &g), PRT_OK);
    prt_solver sv;
    prt_solver_defaults(&sv);
    sv.optimizer = kind;
    sv.lr = 0.05;
    sv.weight_decay = 1e-4;
    sv.schedule = PRT_SCHED_cosine;
    sv.epochs = 12;
    sv.warmup_epochs = 3;
    sv.min_lr = 1e-4;
    prt_attr attrs[PRT_OPTIM_N_ATTRS];
    prt_optim_attrs_from_solver(g, &sv, 1, attrs);
    const prt_optim_impl *impls[] = {&prt_optim_sgd, &prt_optim_adam, &prt_optim_adamw, &prt_optim_rmsprop};
    prt_status (*hooks[])(const prt_kernel_call *, void *) = {prt_sgd_step_values, prt_adam_step_values,
                                                              prt_adamw_step_values, prt_rmsprop_step_values};
    const prt_op_schema *s = prt_op_find(ctx->ops, prt_optimizer_name(kind), NULL);
    ck_assert_ptr_nonnull(s);
#if PARROTS_HAVE_CUDA
    /* the CUDA kernel declares the hook, so a CUDA VM gives it a slot */
    ck_assert(s->cuda.step_values == hooks[_i]);
    ck_assert_uint_eq(s->cuda.step_bytes, PRT_OPTIM_STEP_BYTES);
#endif
    double prev = -1;
    for (uint64_t step = 0; step < 12; step++) {
        prt_kernel_call c = {.ctx = ctx, .attrs = attrs, .step = step};
        unsigned char slot[PRT_OPTIM_STEP_BYTES], slot2[PRT_OPTIM_STEP_BYTES];
        memset(slot, 0xa5, sizeof slot);
        ck_assert_int_eq(hooks[_i](&c, slot), PRT_OK);
        ck_assert_int_eq(prt_optim_step_values(&c, impls[_i], slot2), PRT_OK);
        prt_optim_coef want;
        double lr;
        ck_assert_int_eq(prt_optim_coef_of(&c, impls[_i], &want, &lr), PRT_OK);
        ck_assert(memcmp(slot, &want, sizeof want) == 0);
        ck_assert(memcmp(slot2, &want, sizeof want) == 0);
        prt_optim_coef got;
        memcpy(&got, slot, sizeof got);
        ck_assert(lr == prt_lr_at(&sv, 1, (int64_t)step));
        ck_assert(got.lr == (float)lr);
        ck_assert_msg(lr != prev, "step %d: the rate did not change", (int)step);
        prev = lr;
    }
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

/* Dropout (forward and backward share the hook): the slot holds the base the
 * host computes, and the device's counter with that base is the CPU's. */
START_TEST(dropout_step_values) {
    prt_context *ctx = tu_context();
#if PARROTS_HAVE_CUDA
    const char *ops[] = {"dropout", "dropout_bwd"};
    for (int i = 0; i < 2; i++) {
        const prt_op_schema *s = prt_op_find(ctx->ops, ops[i], NULL);
        ck_assert_ptr_nonnull(s);
        ck_assert(s->cuda.step_values == prt_dropout_step_values);
        ck_assert_uint_eq(s->cuda.step_bytes, PRT_DROPOUT_STEP_BYTES);
    }
#endif
    prt_tensor x = {0};
    x.shape = prt_shape_make(3, (int64_t[]){4, 3, 5});
    const prt_tensor *in[1] = {&x};
    int64_t n = 60;
    const int64_t strides[][2] = {{0, 0}, {1, 0}, {4, 3}, {2, 1}};
    for (int d = 0; d < 4; d++)
        for (uint64_t step = 0; step < 6; step++) {
            uint64_t big = step == 5 ? UINT64_MAX / 7 : step; /* the counter wraps the same way */
            prt_kernel_call c = {.ctx = ctx, .n_in = 1, .in = in, .step = big, .sample_stride = strides[d][0],
                                 .sample_offset = strides[d][1]};
            uint64_t base = 0;
            ck_assert_int_eq(prt_dropout_step_values(&c, &base), PRT_OK);
            prt_dropout_ctr hk = prt_dropout_counters(&c, n);
            ck_assert_uint_eq(base, hk.base);
            /* what dropout_k does: counters built for any step, base from the slot */
            prt_kernel_call c0 = c;
            c0.step = 0;
            prt_dropout_ctr h0 = prt_dropout_counters(&c0, n);
            prt_cuda_ctr k = {h0.base, h0.per, h0.stride, h0.offset};
            k.base = base;
            for (int64_t e = 0; e < n; e++) ck_assert_uint_eq(prt_cuda_dropout_counter(&k, e), prt_dropout_counter(&hk, e));
            if (step > 0) ck_assert_uint_ne(base, h0.base);
        }
    prt_context_destroy(ctx);
}
END_TEST

int main(void) {
    Suite *s = suite_create("step_values");
    TCase *tc = tcase_create("host");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, mode_names);
    tcase_add_test(tc, cpu_vm_ignores_the_mode);
    tcase_add_loop_test(tc, optimizer_step_values, 0, 4);
    tcase_add_test(tc, dropout_step_values);
    suite_add_tcase(s, tc);
    return tu_run(s);
}

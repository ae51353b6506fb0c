/* Optimizers and the solver: each update op against a float64 re-implementation
 * written here from the published formulas, the fused pass's independence of
 * the thread count, learning-rate schedules against their closed forms, an
 * optimizer node over more parameters than a variadic op may take, and the
 * solver's checks and text parsing with their exact messages. */
// labels: unit
#include "tests/test_util.h"

#include "ops/optim_impl.h"
#include "vm/vm_impl.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* ---- a direct kernel call over k parameters -------------------------------- */

#define MAX_K 4

typedef struct opt_fixture {
    prt_context *ctx;
    prt_graph *g; /* interns the schedule name */
    const prt_op_schema *s;
    int k, per;
    int64_t n[MAX_K];
    prt_tensor t[4 * MAX_K]; /* params, grads, slot 0, slot 1 */
    const prt_tensor *in[4 * MAX_K];
    prt_attr attrs[PRT_OPTIM_N_ATTRS];
} opt_fixture;

static void fixture_init(opt_fixture *f, const prt_solver *sv, int k, const int64_t *n, int64_t steps_per_epoch) {
    memset(f, 0, sizeof *f);
    f->ctx = tu_context();
    ck_assert_int_eq(prt_graph_new(f->ctx, "t", &f->g), PRT_OK);
    f->s = prt_op_find(f->ctx->ops, prt_optimizer_name(sv->optimizer), NULL);
    ck_assert_ptr_nonnull(f->s);
    ck_assert(f->s->updates_inputs && f->s->n_out == 0 && !f->s->grad);
    ck_assert_str_eq(f->s->grad_note, "optimizer update");
    f->k = k;
    f->per = 2 + prt_optim_n_slots(sv->optimizer);
    for (int j = 0; j < k; j++) f->n[j] = n[j];
    for (int r = 0; r < f->per; r++) {
        for (int j = 0; j < k; j++) {
            prt_shape s = prt_shape_make(1, &n[j]);
            prt_tensor *t = &f->t[r * k + j];
            ck_assert_int_eq(prt_tensor_alloc(f->ctx, prt_cpu_device(f->ctx), PRT_F32, &s, t), PRT_OK);
            float *p = PRT_F32P(t);
            if (r == 0)
                prt_rng_fill_normal(1000 + (uint64_t)j, p, n[j], 0.0f, 1.0f);
            else
                memset(p, 0, (size_t)n[j] * sizeof *p);
            f->in[r * k + j] = t;
        }
    }
    prt_optim_attrs_from_solver(f->g, sv, steps_per_epoch, f->attrs);
}

static void fixture_free(opt_fixture *f) {
    for (int i = 0; i < f->per * f->k; i++) prt_tensor_release(f->ctx, &f->t[i]);
    prt_graph_destroy(f->g);
    prt_context_destroy(f->ctx);
}

/* The gradients of step `step`: a fixed normal draw per step and tensor. */
static void fill_grads(opt_fixture *f, int step) {
    for (int j = 0; j < f->k; j++)
        prt_rng_fill_normal(77 * (uint64_t)step + (uint64_t)j, PRT_F32P(&f->t[f->k + j]), f->n[j], 0.0f, 0.5f);
}

/* Runs the op once as step `step` with the reference or the fast kernel. */
static void run_step(opt_fixture *f, bool reference, int step) {
    prt_kernel_call c = {.ctx = f->ctx, .attrs = f->attrs, .n_in = f->per * f->k, .in = f->in, .step = (uint64_t)step};
    const prt_kernel *kern = reference ? &f->s->ref : &f->s->fast;
    ck_assert_ptr_nonnull(kern->run);
    if (kern->prepare) ck_assert_msg(kern->prepare(&c, &c.state) == PRT_OK, "%s", prt_last_error(f->ctx));
    ck_assert_msg(kern->run(&c) == PRT_OK, "%s", prt_last_error(f->ctx));
    if (kern->release) kern->release(c.state);
}

/* ---- the float64 re-implementation ----------------------------------------- */

typedef struct ref_opt {
    double *p[MAX_K], *s0[MAX_K], *s1[MAX_K];
} ref_opt;

static void ref_init(ref_opt *r, const opt_fixture *f) {
    for (int j = 0; j < f->k; j++) {
        r->p[j] = calloc((size_t)f->n[j], sizeof(double));
        r->s0[j] = calloc((size_t)f->n[j], sizeof(double));
        r->s1[j] = calloc((size_t)f->n[j], sizeof(double));
        for (int64_t i = 0; i < f->n[j]; i++) r->p[j][i] = PRT_F32P(&f->t[j])[i];
    }
}

static void ref_free(ref_opt *r, int k) {
    for (int j = 0; j < k; j++) free(r->p[j]), free(r->s0[j]), free(r->s1[j]);
}

/* One step t (1-based) at rate lr, as the papers and PyTorch/TensorFlow write them. */
static void ref_step(ref_opt *r, const opt_fixture *f, const prt_solver *s, double lr, int t) {
    for (int j = 0; j < f->k; j++) {
        const float *gf = PRT_F32P(&f->t[f->k + j]);
        for (int64_t i = 0; i < f->n[j]; i++) {
            double *p = &r->p[j][i], *a = &r->s0[j][i], *b = &r->s1[j][i], g = gf[i];
            switch (s->optimizer) {
            case PRT_OPT_sgd: {
                double d = g + s->weight_decay * *p, upd = d;
                if (s->momentum > 0) {
                    *a = s->momentum * *a + d;
                    upd = s->nesterov ? d + s->momentum * *a : *a;
                }
                *p -= lr * upd;
                break;
            }
            case PRT_OPT_rmsprop: {
                double d = g + s->weight_decay * *p;
                *a = s->rms_decay * *a + (1 - s->rms_decay) * d * d;
                *b = s->momentum * *b + lr * d / sqrt(*a + s->eps);
                *p -= *b;
                break;
            }
            case PRT_OPT_adam:
            case PRT_OPT_adamw: {
                bool w = s->optimizer == PRT_OPT_adamw;
                double d = w ? g : g + s->weight_decay * *p;
                *a = s->beta1 * *a + (1 - s->beta1) * d;
                *b = s->beta2 * *b + (1 - s->beta2) * d * d;
                double mhat = *a / (1 - pow(s->beta1, t)), vhat = *b / (1 - pow(s->beta2, t));
                double decay = w ? lr * s->weight_decay * *p : 0;
                *p = *p - decay - lr * mhat / (sqrt(vhat) + s->eps);
                break;
            }
            case PRT_OPT_COUNT:
                break;
            }
        }
    }
}

/* Five steps with both kernels against the float64 version: |got - want| <=
 * 2e-5 + 2e-5 |want| for every parameter element (float32 rounding over five
 * updates of O(1) values), and the two kernels agree bit for bit. */
static void check_optimizer(const prt_solver *s, int64_t steps_per_epoch) {
    const int64_t n[3] = {7, 33, 1000};
    opt_fixture fr, ff;
    fixture_init(&fr, s, 3, n, steps_per_epoch);
    fixture_init(&ff, s, 3, n, steps_per_epoch);
    ref_opt r;
    ref_init(&r, &fr);
    for (int step = 0; step < 5; step++) {
        fill_grads(&fr, step);
        fill_grads(&ff, step);
        run_step(&fr, true, step);
        run_step(&ff, false, step);
        ref_step(&r, &fr, s, prt_lr_at(s, steps_per_epoch, step), step + 1);
        for (int j = 0; j < 3; j++) {
            const float *a = PRT_F32P(&fr.t[j]), *b = PRT_F32P(&ff.t[j]);
            for (int64_t i = 0; i < n[j]; i++) {
                double want = r.p[j][i];
                ck_assert_msg(fabs(a[i] - want) <= 2e-5 + 2e-5 * fabs(want), "%s step %d param %d [%lld]: %.9g vs %.9g",
                              prt_optimizer_name(s->optimizer), step, j, (long long)i, a[i], want);
            }
            ck_assert_int_eq(memcmp(a, b, (size_t)n[j] * sizeof *a), 0);
        }
    }
    ref_free(&r, 3);
    fixture_free(&fr);
    fixture_free(&ff);
}

static prt_solver solver_of(prt_optimizer_kind k, double lr) {
    prt_solver s;
    prt_solver_defaults(&s);
    s.optimizer = k;
    s.lr = lr;
    return s;
}

START_TEST(test_sgd_plain) {
    prt_solver s = solver_of(PRT_OPT_sgd, 0.1);
    s.momentum = 0;
    check_optimizer(&s, 10);
}
END_TEST

START_TEST(test_sgd_momentum) {
    prt_solver s = solver_of(PRT_OPT_sgd, 0.05);
    check_optimizer(&s, 10);
}
END_TEST

START_TEST(test_sgd_nesterov) {
    prt_solver s = solver_of(PRT_OPT_sgd, 0.05);
    s.nesterov = true;
    s.momentum = 0.8;
    check_optimizer(&s, 10);
}
END_TEST

START_TEST(test_sgd_weight_decay) {
    prt_solver s = solver_of(PRT_OPT_sgd, 0.05);
    s.weight_decay = 0.01;
    check_optimizer(&s, 10);
}
END_TEST

START_TEST(test_rmsprop) {
    prt_solver s = solver_of(PRT_OPT_rmsprop, 0.01);
    s.weight_decay = 1e-3;
    s.eps = 1e-3;
    check_optimizer(&s, 10);
    s.eps = 1.0; /* the Inception/PolyNet recipes' eps */
    s.momentum = 0;
    check_optimizer(&s, 10);
}
END_TEST

START_TEST(test_adam) {
    prt_solver s = solver_of(PRT_OPT_adam, 0.01);
    s.weight_decay = 1e-2;
    check_optimizer(&s, 10);
}
END_TEST

START_TEST(test_adamw) {
    prt_solver s = solver_of(PRT_OPT_adamw, 0.01);
    s.weight_decay = 0.1;
    s.beta1 = 0.8;
    s.beta2 = 0.99;
    check_optimizer(&s, 10);
}
END_TEST

/* The schedule reaches the kernel: warm-up then cosine over 5 steps of 2 epochs. */
START_TEST(test_scheduled_updates) {
    prt_solver s = solver_of(PRT_OPT_sgd, 0.2);
    s.schedule = PRT_SCHED_cosine;
    s.warmup_epochs = 1;
    s.epochs = 3;
    s.min_lr = 0.01;
    check_optimizer(&s, 2);
    s.schedule = PRT_SCHED_step;
    s.step_epochs = 1;
    s.gamma = 0.5;
    s.warmup_epochs = 0;
    s.optimizer = PRT_OPT_adam;
    check_optimizer(&s, 2);
}
END_TEST

/* ---- the fused pass and the thread count ------------------------------------ */

static void check_threads(prt_solver *s) {
    /* 80,004 elements: two threads split inside the first parameter */
    const int64_t n[3] = {50000, 3, 30001};
    opt_fixture f1, f2, fr;
    fixture_init(&f1, s, 3, n, 10);
    fixture_init(&f2, s, 3, n, 10);
    fixture_init(&fr, s, 3, n, 10);
    for (int step = 0; step < 3; step++) {
        fill_grads(&f1, step);
        fill_grads(&f2, step);
        fill_grads(&fr, step);
        omp_set_num_threads(1);
        run_step(&f1, false, step);
        omp_set_num_threads(2);
        run_step(&f2, false, step);
        run_step(&fr, true, step);
    }
    for (int i = 0; i < f1.per * 3; i++) {
        size_t bytes = (size_t)prt_shape_count(&f1.t[i].shape) * sizeof(float);
        ck_assert_msg(memcmp(PRT_F32P(&f1.t[i]), PRT_F32P(&f2.t[i]), bytes) == 0, "%s: tensor %d differs",
                      prt_optimizer_name(s->optimizer), i);
        ck_assert_int_eq(memcmp(PRT_F32P(&f1.t[i]), PRT_F32P(&fr.t[i]), bytes), 0);
    }
    fixture_free(&f1);
    fixture_free(&f2);
    fixture_free(&fr);
}

START_TEST(test_fused_pass_thread_count) {
    prt_solver s = solver_of(PRT_OPT_sgd, 0.1);
    s.nesterov = true;
    s.weight_decay = 1e-4;
    check_threads(&s);
    s = solver_of(PRT_OPT_adam, 0.01);
    check_threads(&s);
    s = solver_of(PRT_OPT_rmsprop, 0.01);
    check_threads(&s);
}
END_TEST

/* ---- schedules ---------------------------------------------------------------- */

static void near(double got, double want) {
    ck_assert_msg(fabs(got - want) <= 1e-12 * fabs(want), "%.17g vs %.17g", got, want);
}

START_TEST(test_lr_constant_with_warmup) {
    prt_solver s = solver_of(PRT_OPT_sgd, 0.4);
    s.warmup_epochs = 2; /* 20 steps of 10 */
    near(prt_lr_at(&s, 10, 0), 0.02);
    near(prt_lr_at(&s, 10, 9), 0.2);
    near(prt_lr_at(&s, 10, 18), 0.38);
    near(prt_lr_at(&s, 10, 19), 0.4);
    near(prt_lr_at(&s, 10, 20), 0.4);
    near(prt_lr_at(&s, 10, 95), 0.4);
    s.warmup_epochs = 0.25; /* round(2.5) = 3 steps */
    near(prt_lr_at(&s, 10, 0), 0.4 / 3);
    near(prt_lr_at(&s, 10, 2), 0.4);
}
END_TEST

START_TEST(test_lr_step) {
    prt_solver s = solver_of(PRT_OPT_sgd, 0.1);
    s.schedule = PRT_SCHED_step;
    s.step_epochs = 3;
    s.gamma = 0.5;
    near(prt_lr_at(&s, 10, 0), 0.1);
    near(prt_lr_at(&s, 10, 29), 0.1);
    near(prt_lr_at(&s, 10, 30), 0.05);
    near(prt_lr_at(&s, 10, 59), 0.05);
    near(prt_lr_at(&s, 10, 60), 0.025);
    near(prt_lr_at(&s, 10, 95), 0.0125);
    s.step_epochs = 0.3; /* every 3 steps, without landing a step early */
    near(prt_lr_at(&s, 10, 2), 0.1);
    near(prt_lr_at(&s, 10, 3), 0.05);
    near(prt_lr_at(&s, 10, 8), 0.025);
    near(prt_lr_at(&s, 10, 9), 0.0125);
}
END_TEST

START_TEST(test_lr_cosine) {
    prt_solver s = solver_of(PRT_OPT_sgd, 1.0);
    s.schedule = PRT_SCHED_cosine;
    s.min_lr = 0.1;
    s.epochs = 10;
    s.warmup_epochs = 1; /* 10 warm-up steps, then 90 of cosine */
    near(prt_lr_at(&s, 10, 4), 0.5);
    near(prt_lr_at(&s, 10, 10), 1.0);
    near(prt_lr_at(&s, 10, 55), 0.55);             /* half way: cos = 0 */
    near(prt_lr_at(&s, 10, 40), 0.1 + 0.9 * 0.75); /* a third: cos = 1/2 */
    near(prt_lr_at(&s, 10, 70), 0.1 + 0.9 * 0.25); /* two thirds: cos = -1/2 */
    near(prt_lr_at(&s, 10, 100), 0.1);             /* past the end: the floor */
    ck_assert(prt_lr_at(&s, 10, 99) > 0.1 && prt_lr_at(&s, 10, 99) < 0.1 + 1e-3);
    s.warmup_epochs = 0;
    near(prt_lr_at(&s, 10, 0), 1.0);
    near(prt_lr_at(&s, 10, 50), 0.55);
}
END_TEST

/* The kernel's rate is prt_lr_at of the solver it was built from, exactly: plain
 * SGD from p = 0 with gradient 1 leaves p = -lr in float. */
START_TEST(test_kernel_lr_matches_schedule) {
    const prt_schedule_kind kinds[3] = {PRT_SCHED_constant, PRT_SCHED_step, PRT_SCHED_cosine};
    for (int q = 0; q < 3; q++) {
        prt_solver s = solver_of(PRT_OPT_sgd, 0.3);
        s.momentum = 0;
        s.schedule = kinds[q];
        s.epochs = 7;
        s.warmup_epochs = 1.5;
        s.step_epochs = 2;
        s.gamma = 0.3;
        s.min_lr = 0.003;
        const int64_t n[1] = {4};
        opt_fixture f;
        fixture_init(&f, &s, 1, n, 13);
        for (int step = 0; step < 7 * 13 + 3; step++) {
            for (int i = 0; i < 4; i++) PRT_F32P(&f.t[0])[i] = 0, PRT_F32P(&f.t[1])[i] = 1;
            run_step(&f, step % 2 == 0, step);
            float want = -(float)prt_lr_at(&s, 13, step);
            ck_assert_msg(PRT_F32P(&f.t[0])[3] == want, "%s step %d: %.9g vs %.9g", prt_schedule_name(kinds[q]), step,
                          PRT_F32P(&f.t[0])[3], want);
        }
        fixture_free(&f);
    }
}
END_TEST

/* ---- an optimizer node over more than PRT_VARIADIC inputs, through the VM ----- */

START_TEST(test_update_node_over_many_params) {
    enum { K = 30 }; /* 90 inputs */
    prt_context *ctx = tu_context();
    prt_graph *g;
    ck_assert_int_eq(prt_graph_new(ctx, "many", &g), PRT_OK);
    int in[3 * K];
    prt_loc loc = {0};
    for (int j = 0; j < K; j++) {
        char name[32];
        int64_t n = 1 + j;
        snprintf(name, sizeof name, "g%d", j);
        ck_assert_int_eq(prt_graph_add_input(g, name, &(prt_shape){.ndim = 1, .d = {n}}, PRT_F32, loc, &in[K + j]),
                         PRT_OK);
        snprintf(name, sizeof name, "p%d", j);
        prt_shape ps = {.ndim = 2, .d = {1, n}};
        ck_assert_int_eq(prt_graph_add_persistent(g, name, PRT_VAL_PARAM, &ps, PRT_F32, PRT_INIT_ONES, loc, &in[j]),
                         PRT_OK);
        snprintf(name, sizeof name, "p%d.momentum", j);
        ck_assert_int_eq(
            prt_graph_add_persistent(g, name, PRT_VAL_STATE, &ps, PRT_F32, PRT_INIT_ZEROS, loc, &in[2 * K + j]),
            PRT_OK);
    }
    prt_solver s = solver_of(PRT_OPT_sgd, 0.25);
    prt_attr attrs[PRT_OPTIM_N_ATTRS];
    prt_optim_attrs_from_solver(g, &s, 1, attrs);
    int op, node;
    ck_assert_ptr_nonnull(prt_op_find(ctx->ops, "sgd", &op));
    ck_assert_msg(prt_graph_add_node(g, op, "update", "update", in, 3 * K, attrs, loc, &node) == PRT_OK, "%s",
                  prt_last_error(ctx));
    prt_program *p;
    ck_assert_msg(prt_vm_compile(g, 1, &p) == PRT_OK, "%s", prt_last_error(ctx));
    prt_vm *vm;
    ck_assert_msg(prt_vm_create(ctx, p, NULL, NULL, &vm) == PRT_OK, "%s", prt_last_error(ctx));
    for (int j = 0; j < K; j++) {
        float *gj = PRT_F32P(prt_vm_input(vm, j));
        for (int i = 0; i <= j; i++) gj[i] = (float)(i - j) / 8;
    }
    ck_assert_msg(prt_vm_run(vm) == PRT_OK, "%s", prt_last_error(ctx));
    for (int j = 0; j < K; j++) {
        char name[32];
        snprintf(name, sizeof name, "p%d", j);
        const float *pj = PRT_F32P(prt_vm_find(vm, name));
        snprintf(name, sizeof name, "p%d.momentum", j);
        const float *mj = PRT_F32P(prt_vm_find(vm, name));
        for (int i = 0; i <= j; i++) {
            float gv = (float)(i - j) / 8;
            ck_assert_float_eq(mj[i], gv);
            ck_assert_float_eq(pj[i], 1.0f - 0.25f * gv);
        }
    }
    prt_vm_destroy(vm);
    prt_program_destroy(ctx, p);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

/* A program from a file gets the same checks: an update call whose gradient
 * does not match its parameter is rejected, a matching one passes and writes
 * the parameter register in place, with no outputs. */
START_TEST(test_update_call_verified) {
    prt_context *ctx = tu_context();
    for (int bad = 1; bad >= 0; bad--) {
        prt_program *p;
        ck_assert_int_eq(prt_program_new(ctx, "step", 1, &p), PRT_OK);
        prt_shape s3 = prt_shape_make(1, (int64_t[]){3}), sg = prt_shape_make(1, (int64_t[]){bad ? 4 : 3});
        int r[3], op, k;
        ck_assert_int_eq(prt_program_add_reg(ctx, p, "w", PRT_REG_PARAM, PRT_F32, &s3, PRT_INIT_ONES, &r[0]), PRT_OK);
        ck_assert_int_eq(prt_program_add_reg(ctx, p, "dw", PRT_REG_INPUT, PRT_F32, &sg, PRT_INIT_ZEROS, &r[1]), PRT_OK);
        ck_assert_int_eq(prt_program_add_reg(ctx, p, "w.momentum", PRT_REG_STATE, PRT_F32, &s3, PRT_INIT_ZEROS, &r[2]),
                         PRT_OK);
        ck_assert_int_eq(prt_program_add_op(ctx, p, "sgd", &op), PRT_OK);
        ck_assert_int_eq(prt_program_resolve(ctx, p), PRT_OK);
        prt_graph *g;
        ck_assert_int_eq(prt_graph_new(ctx, "t", &g), PRT_OK);
        prt_solver sv = solver_of(PRT_OPT_sgd, 0.5);
        prt_attr attrs[PRT_OPTIM_N_ATTRS];
        prt_optim_attrs_from_solver(g, &sv, 1, attrs);
        ck_assert_int_eq(prt_program_add_call(ctx, p, op, "u", r, 3, 3, NULL, 0, attrs, PRT_OPTIM_N_ATTRS, &k), PRT_OK);
        prt_graph_destroy(g); /* the program copied the schedule name */
        ck_assert_int_eq(prt_program_emit(ctx, p, prt_vm_ins_call(k), NULL), PRT_OK);
        ck_assert_int_eq(prt_program_emit(ctx, p, prt_vm_ins_n(PRT_OP_HALT), NULL), PRT_OK);
        ck_assert_int_eq(prt_program_set_io(ctx, p, &r[1], 1, NULL, 0), PRT_OK);
        if (bad) {
            ck_assert_int_eq(prt_vm_verify(ctx, p), PRT_ERR_PROGRAM);
            ck_assert_str_eq(prt_last_error(ctx), "program 'step': instruction 0 (CALL 'u'): op 'sgd' rejects its "
                                                  "operand shapes: layer 'u' (sgd): parameter 0 has shape [3] but "
                                                  "its gradient (input 1) has [4]");
        } else {
            prt_vm *vm;
            ck_assert_msg(prt_vm_create(ctx, p, NULL, NULL, &vm) == PRT_OK, "%s", prt_last_error(ctx));
            for (int i = 0; i < 3; i++) PRT_F32P(prt_vm_input(vm, 0))[i] = (float)i;
            ck_assert_int_eq(prt_vm_run(vm), PRT_OK);
            for (int i = 0; i < 3; i++) ck_assert_float_eq(PRT_F32P(prt_vm_find(vm, "w"))[i], 1.0f - 0.5f * (float)i);
            prt_vm_destroy(vm);
        }
        prt_program_destroy(ctx, p);
    }
    prt_context_destroy(ctx);
}
END_TEST

/* Shape inference names the mismatching input; bad attributes name the field. */
START_TEST(test_update_infer_errors) {
    prt_context *ctx = tu_context();
    prt_graph *g;
    ck_assert_int_eq(prt_graph_new(ctx, "t", &g), PRT_OK);
    const prt_op_schema *s = prt_op_find(ctx->ops, "rmsprop", NULL);
    prt_solver sv = solver_of(PRT_OPT_rmsprop, 0.1);
    prt_attr attrs[PRT_OPTIM_N_ATTRS];
    prt_optim_attrs_from_solver(g, &sv, 5, attrs);
    prt_shape in[8];
    for (int i = 0; i < 8; i++) in[i] = prt_shape_make(1, (int64_t[]){3});
    in[5] = prt_shape_make(2, (int64_t[]){3, 1});
    prt_infer_ctx ic = {.ctx = ctx, .node_name = "update", .op_name = "rmsprop", .attrs = attrs, .n_in = 8, .in = in};
    ck_assert_int_eq(s->infer(&ic), PRT_ERR_SHAPE);
    ck_assert_str_eq(prt_last_error(ctx), "layer 'update' (rmsprop): parameter 1 has shape [3] but its mean_square "
                                          "(input 5) has [3, 1]");
    ic.n_in = 7;
    ck_assert_int_eq(s->infer(&ic), PRT_ERR_SHAPE);
    ck_assert_str_eq(prt_last_error(ctx), "layer 'update' (rmsprop): takes 4 inputs per parameter (parameters, "
                                          "gradients, then 2 state tensors each), got 7 inputs");
    ic.n_in = 4;
    ck_assert_int_eq(s->infer(&ic), PRT_OK);
    attrs[PRT_OPTIM_A_LR].f = -1;
    ck_assert_int_eq(s->infer(&ic), PRT_ERR_SHAPE);
    ck_assert_str_eq(prt_last_error(ctx), "layer 'update' (rmsprop): lr must be > 0, got -1");
    attrs[PRT_OPTIM_A_LR].f = 0.1;
    attrs[PRT_OPTIM_A_WARMUP_STEPS].i[0] = 1000;
    ck_assert_int_eq(s->infer(&ic), PRT_ERR_SHAPE);
    ck_assert_str_eq(prt_last_error(ctx),
                     "layer 'update' (rmsprop): warmup_steps must be in [0, total_steps = 50], got 1000");
    attrs[PRT_OPTIM_A_WARMUP_STEPS].i[0] = 0;
    attrs[PRT_OPTIM_A_SCHEDULE].s = "linear";
    ck_assert_int_eq(s->infer(&ic), PRT_ERR_SHAPE);
    ck_assert_str_eq(prt_last_error(ctx), "layer 'update' (rmsprop): unknown schedule 'linear'");
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

/* ---- solver checks and parsing ------------------------------------------------ */

static void expect_check(const prt_solver *s, const char *msg) {
    prt_context *ctx = tu_context();
    ck_assert_int_eq(prt_solver_check(ctx, s), PRT_ERR_INVALID);
    ck_assert_str_eq(prt_last_error(ctx), msg);
    prt_context_destroy(ctx);
}

START_TEST(test_solver_defaults_and_check) {
    prt_context *ctx = tu_context();
    prt_solver s;
    prt_solver_defaults(&s);
    ck_assert_int_eq(s.optimizer, PRT_OPT_sgd);
    ck_assert(s.lr == 0.1 && s.momentum == 0.9 && !s.nesterov && s.weight_decay == 0);
    ck_assert(s.beta1 == 0.9 && s.beta2 == 0.999 && s.eps == 1e-8 && s.rms_decay == 0.9);
    ck_assert(s.schedule == PRT_SCHED_constant && s.warmup_epochs == 0 && s.step_epochs == 30 && s.gamma == 0.1);
    ck_assert(s.min_lr == 0 && s.label_smoothing == 0 && s.epochs == 10 && s.batch == 64);
    ck_assert_int_eq(prt_solver_check(ctx, &s), PRT_OK);
    prt_context_destroy(ctx);

    prt_solver b = s;
    b.lr = -0.1;
    expect_check(&b, "solver.lr must be > 0, got -0.1");
    b = s, b.batch = 0;
    expect_check(&b, "solver.batch must be >= 1, got 0");
    b = s, b.epochs = 0;
    expect_check(&b, "solver.epochs must be >= 1, got 0");
    b = s, b.momentum = 1;
    expect_check(&b, "solver.momentum must be in [0, 1), got 1");
    b = s, b.beta2 = 1;
    expect_check(&b, "solver.beta2 must be in [0, 1), got 1");
    b = s, b.gamma = 0;
    expect_check(&b, "solver.gamma must be in (0, 1], got 0");
    b = s, b.label_smoothing = 1;
    expect_check(&b, "solver.label_smoothing must be in [0, 1), got 1");
    b = s, b.warmup_epochs = 20;
    expect_check(&b, "solver.warmup_epochs must be in [0, epochs = 10], got 20");
    b = s, b.eps = 0;
    expect_check(&b, "solver.eps must be > 0, got 0");
    b = s, b.weight_decay = -1e-4;
    expect_check(&b, "solver.weight_decay must be >= 0, got -0.0001");
    b = s, b.momentum = 0, b.nesterov = true;
    expect_check(&b, "solver.nesterov needs momentum > 0, got momentum 0");
    b = s, b.min_lr = 0.5;
    expect_check(&b, "solver.min_lr must be in [0, lr = 0.1], got 0.5");
    b = s, b.lr = NAN;
    expect_check(&b, "solver.lr must be > 0, got nan");
}
END_TEST

START_TEST(test_solver_set) {
    prt_context *ctx = tu_context();
    prt_solver s;
    prt_solver_defaults(&s);
    ck_assert_int_eq(prt_solver_set(ctx, &s, "lr", "0.05"), PRT_OK);
    ck_assert(s.lr == 0.05);
    ck_assert_int_eq(prt_solver_set(ctx, &s, "solver.batch", "32"), PRT_OK);
    ck_assert_int_eq(s.batch, 32);
    ck_assert_int_eq(prt_solver_set(ctx, &s, "optimizer", "adamw"), PRT_OK);
    ck_assert_int_eq(s.optimizer, PRT_OPT_adamw);
    ck_assert_int_eq(prt_solver_set(ctx, &s, "schedule", "cosine"), PRT_OK);
    ck_assert_int_eq(s.schedule, PRT_SCHED_cosine);
    ck_assert_int_eq(prt_solver_set(ctx, &s, "nesterov", "true"), PRT_OK);
    ck_assert(s.nesterov);
    ck_assert_int_eq(prt_solver_set(ctx, &s, "nesterov", "False"), PRT_OK);
    ck_assert(!s.nesterov);
    ck_assert_int_eq(prt_solver_set(ctx, &s, "epochs", "12"), PRT_OK);
    ck_assert_int_eq(s.epochs, 12);
    ck_assert_int_eq(prt_solver_set(ctx, &s, "warmup_epochs", "0.5"), PRT_OK);
    ck_assert(s.warmup_epochs == 0.5);
    ck_assert_int_eq(prt_solver_set(ctx, &s, "weight_decay", "5e-4"), PRT_OK);
    ck_assert(s.weight_decay == 5e-4);
    ck_assert_str_eq(prt_optimizer_name(PRT_OPT_rmsprop), "rmsprop");
    ck_assert_str_eq(prt_schedule_name(PRT_SCHED_step), "step");
    prt_context_destroy(ctx);
}
END_TEST

static void expect_set(const char *key, const char *value, const char *msg) {
    prt_context *ctx = tu_context();
    prt_solver s, before;
    prt_solver_defaults(&s);
    before = s;
    ck_assert_int_eq(prt_solver_set(ctx, &s, key, value), PRT_ERR_INVALID);
    ck_assert_str_eq(prt_last_error(ctx), msg);
    ck_assert_int_eq(memcmp(&s, &before, sizeof s), 0);
    prt_context_destroy(ctx);
}

START_TEST(test_solver_set_errors) {
    expect_set("lrr", "0.1", "solver: unknown key 'lrr' (did you mean 'lr'?)");
    expect_set("momentun", "0.1", "solver: unknown key 'momentun' (did you mean 'momentum'?)");
    expect_set("solver.bach", "8", "solver: unknown key 'bach' (did you mean 'batch'?)");
    expect_set("zzzzzzzz", "1", "solver: unknown key 'zzzzzzzz'");
    expect_set("lr", "abc", "solver.lr: expected a number, got 'abc'");
    expect_set("lr", "0.1x", "solver.lr: expected a number, got '0.1x'");
    expect_set("lr", "", "solver.lr: expected a number, got ''");
    expect_set("epochs", "1.5", "solver.epochs: expected an integer, got '1.5'");
    expect_set("nesterov", "yes", "solver.nesterov: expected true or false, got 'yes'");
    expect_set("optimizer", "adm",
               "solver.optimizer: unknown optimizer 'adm' (did you mean 'adam'?); expected one of sgd, rmsprop, adam, "
               "adamw");
    expect_set("optimizer", "lbfgs",
               "solver.optimizer: unknown optimizer 'lbfgs'; expected one of sgd, rmsprop, adam, adamw");
    expect_set("schedule", "cosin",
               "solver.schedule: unknown schedule 'cosin' (did you mean 'cosine'?); expected one of constant, step, "
               "cosine");
}
END_TEST

static Suite *optim_suite(void) {
    Suite *s = suite_create("optim");
    TCase *t = tcase_create("updates");
    tcase_add_test(t, test_sgd_plain);
    tcase_add_test(t, test_sgd_momentum);
    tcase_add_test(t, test_sgd_nesterov);
    tcase_add_test(t, test_sgd_weight_decay);
    tcase_add_test(t, test_rmsprop);
    tcase_add_test(t, test_adam);
    tcase_add_test(t, test_adamw);
    tcase_add_test(t, test_scheduled_updates);
    tcase_add_test(t, test_fused_pass_thread_count);
    tcase_add_test(t, test_update_node_over_many_params);
    tcase_add_test(t, test_update_infer_errors);
    tcase_add_test(t, test_update_call_verified);
    suite_add_tcase(s, t);
    TCase *l = tcase_create("schedules");
    tcase_add_test(l, test_lr_constant_with_warmup);
    tcase_add_test(l, test_lr_step);
    tcase_add_test(l, test_lr_cosine);
    tcase_add_test(l, test_kernel_lr_matches_schedule);
    suite_add_tcase(s, l);
    TCase *v = tcase_create("solver");
    tcase_add_test(v, test_solver_defaults_and_check);
    tcase_add_test(v, test_solver_set);
    tcase_add_test(v, test_solver_set_errors);
    suite_add_tcase(s, v);
    return s;
}

int main(void) { return tu_run(optim_suite()); }

/* The training step end to end: small networks from YAML strings, turned into
 * training graphs by prt_train_build, compiled and run by the VM on synthetic
 * problems generated here (Gaussian blobs for an MLP, bar orientations for a
 * small CNN). Loss must fall and training accuracy pass 90% with every
 * optimizer; two runs with the same seed give bit-identical losses; the built
 * graph has the documented shape; bad setups fail with clear messages. */
// labels: unit
#include "tests/test_util.h"

#include "ops/optim_impl.h"
#include "vm/vm_api.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- synthetic data ----------------------------------------------------------- */

typedef struct dataset {
    int n, dim, classes;
    float *x; /* n * dim */
    int32_t *y;
} dataset;

/* Three Gaussian blobs in 8 dimensions, centres 2 apart, noise 0.5. */
static dataset blobs(int n) {
    dataset d = {.n = n, .dim = 8, .classes = 3};
    d.x = malloc((size_t)n * 8 * sizeof *d.x);
    d.y = malloc((size_t)n * sizeof *d.y);
    float centre[3][8];
    for (int c = 0; c < 3; c++)
        for (int k = 0; k < 8; k++) centre[c][k] = prt_rng_uniform(11, (uint64_t)(c * 8 + k)) < 0.5f ? -1.0f : 1.0f;
    for (int i = 0; i < n; i++) {
        d.y[i] = i % 3;
        for (int k = 0; k < 8; k++)
            d.x[i * 8 + k] = centre[d.y[i]][k] + 0.5f * prt_rng_normal(12, (uint64_t)(i * 8 + k));
    }
    return d;
}

/* 1x6x6 images of a bar: horizontal (0), vertical (1) or diagonal (2), at a
 * random place, on noise. */
static dataset bars(int n) {
    dataset d = {.n = n, .dim = 36, .classes = 3};
    d.x = malloc((size_t)n * 36 * sizeof *d.x);
    d.y = malloc((size_t)n * sizeof *d.y);
    for (int i = 0; i < n; i++) {
        float *img = d.x + i * 36;
        int c = i % 3, at = (int)(prt_rng_uniform(21, (uint64_t)i) * 6);
        for (int k = 0; k < 36; k++) img[k] = 0.3f * prt_rng_normal(22, (uint64_t)(i * 36 + k));
        for (int k = 0; k < 6; k++) {
            int r = c == 0 ? at : k, col = c == 1 ? at : c == 0 ? k : (k + at) % 6;
            img[r * 6 + col] += 1.0f;
        }
        d.y[i] = c;
    }
    return d;
}

static void dataset_free(dataset *d) {
    free(d->x);
    free(d->y);
}

/* ---- a training run ------------------------------------------------------------- */

#define MAX_STEPS 512

typedef struct run {
    int steps;
    float loss[MAX_STEPS];
    double first_epoch_loss, last_epoch_loss, last_epoch_acc;
} run;

static const char *mlp_yaml = "parrots: 1\n"
                              "input: {x: [8]}\n"
                              "layers:\n"
                              "  - linear: {out: 16}\n"
                              "    name: l1\n"
                              "  - batchnorm:\n"
                              "  - relu:\n"
                              "  - linear: {out: 3}\n"
                              "    name: logits\n";

static const char *cnn_yaml = "parrots: 1\n"
                              "input: {image: [1, 6, 6]}\n"
                              "layers:\n"
                              "  - conv: {out: 6, kernel: 3, pad: 1, bias: false}\n"
                              "    name: c1\n"
                              "  - batchnorm:\n"
                              "  - relu:\n"
                              "  - maxpool: {kernel: 2}\n"
                              "  - flatten:\n"
                              "  - linear: {out: 3}\n"
                              "    name: logits\n";

/* Trains for s->epochs epochs of d (shuffled per epoch from a fixed seed). */
static void train(const char *yaml, const prt_solver *s, const dataset *d, run *out) {
    memset(out, 0, sizeof *out);
    prt_context *ctx = tu_context();
    prt_graph *g = NULL;
    ck_assert_msg(prt_graph_load_yaml_string(ctx, "net.yaml", yaml, strlen(yaml), &g) == PRT_OK, "%s",
                  prt_last_error(ctx));
    int64_t spe = d->n / s->batch;
    prt_train_info info;
    ck_assert_msg(prt_train_build(g, s, spe, &info) == PRT_OK, "%s", prt_last_error(ctx));
    prt_program *p;
    ck_assert_msg(prt_vm_compile(g, s->batch, &p) == PRT_OK, "%s", prt_last_error(ctx));
    prt_vm *vm;
    prt_vm_options o = {.training = true};
    ck_assert_msg(prt_vm_create(ctx, p, NULL, &o, &vm) == PRT_OK, "%s", prt_last_error(ctx));
    float *x = PRT_F32P(prt_vm_input(vm, 0));
    int32_t *y = prt_tensor_data(prt_vm_find(vm, "labels"));
    ck_assert_int_eq(prt_vm_find(vm, "labels")->dtype, PRT_I32);
    int *perm = malloc((size_t)d->n * sizeof *perm);
    for (int64_t e = 0; e < s->epochs; e++) {
        for (int i = 0; i < d->n; i++) perm[i] = i;
        for (int i = d->n - 1; i > 0; i--) {
            int j = (int)(prt_rng_uniform(99 + (uint64_t)e, (uint64_t)i) * (float)(i + 1)) % (i + 1), t = perm[i];
            perm[i] = perm[j], perm[j] = t;
        }
        double sum = 0;
        int correct = 0;
        for (int64_t b = 0; b < spe; b++) {
            for (int64_t k = 0; k < s->batch; k++) {
                int i = perm[b * s->batch + k];
                memcpy(x + k * d->dim, d->x + (size_t)i * (size_t)d->dim, (size_t)d->dim * sizeof *x);
                y[k] = d->y[i];
            }
            ck_assert_msg(prt_vm_run(vm) == PRT_OK, "%s", prt_last_error(ctx));
            float l = PRT_F32P(prt_vm_output(vm, 0))[0];
            ck_assert_msg(isfinite(l), "step %d: loss %g", out->steps, l);
            if (out->steps < MAX_STEPS) out->loss[out->steps] = l;
            out->steps++;
            sum += l;
            const float *lg = PRT_F32P(prt_vm_output(vm, 1));
            for (int64_t k = 0; k < s->batch; k++) {
                int best = 0;
                for (int c = 1; c < d->classes; c++)
                    if (lg[k * d->classes + c] > lg[k * d->classes + best]) best = c;
                correct += best == y[k];
            }
        }
        if (e == 0) out->first_epoch_loss = sum / (double)spe;
        out->last_epoch_loss = sum / (double)spe;
        out->last_epoch_acc = (double)correct / (double)(spe * s->batch);
    }
    ck_assert_int_eq(prt_vm_get_step(vm), (uint64_t)out->steps);
    free(perm);
    prt_vm_destroy(vm);
    prt_program_destroy(ctx, p);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}

static prt_solver solver(prt_optimizer_kind k, double lr, int64_t epochs, int64_t batch) {
    prt_solver s;
    prt_solver_defaults(&s);
    s.optimizer = k;
    s.lr = lr;
    s.epochs = epochs;
    s.batch = batch;
    return s;
}

/* Loss falls by 4x above its floor (the entropy of the smoothed target, 0
 * without smoothing) and the last epoch's training accuracy passes 90%. */
static void expect_learns(const char *yaml, const prt_solver *s, const dataset *d) {
    run r;
    train(yaml, s, d, &r);
    double ls = s->label_smoothing, C = d->classes, hi = 1 - ls + ls / C, lo = ls / C;
    double floor = -(hi * log(hi) + (lo > 0 ? (C - 1) * lo * log(lo) : 0));
    ck_assert_msg(r.last_epoch_loss - floor < 0.25 * (r.first_epoch_loss - floor) && r.last_epoch_acc > 0.9,
                  "%s: loss %.4f -> %.4f (floor %.4f), accuracy %.3f", prt_optimizer_name(s->optimizer),
                  r.first_epoch_loss, r.last_epoch_loss, floor, r.last_epoch_acc);
}

/* ---- learning ------------------------------------------------------------------------ */

START_TEST(test_mlp_learns_with_every_optimizer) {
    dataset d = blobs(384);
    prt_solver s = solver(PRT_OPT_sgd, 0.05, 8, 32); /* 12 steps an epoch, 96 steps */
    expect_learns(mlp_yaml, &s, &d);
    s.nesterov = true;
    s.weight_decay = 1e-4;
    s.schedule = PRT_SCHED_cosine;
    s.warmup_epochs = 1;
    expect_learns(mlp_yaml, &s, &d);
    s = solver(PRT_OPT_rmsprop, 0.003, 8, 32);
    expect_learns(mlp_yaml, &s, &d);
    s = solver(PRT_OPT_adam, 0.01, 8, 32);
    s.label_smoothing = 0.1;
    expect_learns(mlp_yaml, &s, &d);
    s = solver(PRT_OPT_adamw, 0.01, 8, 32);
    s.weight_decay = 0.01;
    s.schedule = PRT_SCHED_step;
    s.step_epochs = 5;
    expect_learns(mlp_yaml, &s, &d);
    dataset_free(&d);
}
END_TEST

START_TEST(test_cnn_learns) {
    dataset d = bars(480);
    prt_solver s = solver(PRT_OPT_sgd, 0.05, 6, 24); /* 20 steps an epoch, 120 steps */
    expect_learns(cnn_yaml, &s, &d);
    dataset_free(&d);
}
END_TEST

START_TEST(test_same_seed_same_losses) {
    dataset d = bars(240);
    prt_solver s = solver(PRT_OPT_adam, 0.01, 3, 24);
    run a, b;
    train(cnn_yaml, &s, &d, &a);
    train(cnn_yaml, &s, &d, &b);
    ck_assert_int_eq(a.steps, 30);
    ck_assert_int_eq(memcmp(a.loss, b.loss, sizeof a.loss), 0);
    ck_assert(a.loss[29] != a.loss[0]);
    dataset_free(&d);
}
END_TEST

/* ---- the training graph ------------------------------------------------------------- */

START_TEST(test_train_graph_shape) {
    prt_context *ctx = tu_context();
    prt_graph *g = NULL;
    const char *yaml = "parrots: 1\n"
                       "input: {x: [8]}\n"
                       "layers:\n"
                       "  - linear: {out: 4}\n"
                       "    name: l1\n"
                       "  - linear: {out: 5}\n"
                       "    name: side\n"
                       "    input: x\n"
                       "  - linear: {out: 3}\n"
                       "    name: logits\n"
                       "    input: l1\n"
                       "output: [logits, side]\n";
    ck_assert_int_eq(prt_graph_load_yaml_string(ctx, "net.yaml", yaml, strlen(yaml), &g), PRT_OK);
    prt_solver s = solver(PRT_OPT_rmsprop, 0.01, 4, 8);
    s.warmup_epochs = 1;
    prt_train_info info;
    ck_assert_msg(prt_train_build(g, &s, 25, &info) == PRT_OK, "%s", prt_last_error(ctx));
    /* 'side' leads nowhere near the loss: its parameters are not trained */
    ck_assert_int_eq(info.n_params, 4);
    ck_assert_int_eq(prt_graph_find_value(g, "side.weight.momentum"), -1);
    ck_assert_int_eq(info.logits, prt_graph_find_value(g, "logits"));
    ck_assert_int_eq(info.labels, prt_graph_find_value(g, "labels"));
    ck_assert_int_eq(g->values[info.labels].kind, PRT_VAL_INPUT);
    ck_assert_int_eq(g->values[info.labels].dtype, PRT_I32);
    ck_assert_int_eq(g->values[info.labels].shape.ndim, 1);
    ck_assert_int_eq(g->values[info.labels].shape.d[0], 1);
    ck_assert_int_eq(info.loss, prt_graph_find_value(g, "loss:0"));
    ck_assert_int_eq(g->n_outputs, 2);
    ck_assert_int_eq(g->outputs[0], info.loss);
    ck_assert_int_eq(g->outputs[1], info.logits);
    const prt_node *u = &g->nodes[info.update_node];
    ck_assert_int_eq(info.update_node, g->n_nodes - 1);
    ck_assert_str_eq(u->name, "update");
    ck_assert_str_eq(prt_op_get(ctx->ops, u->op)->name, "rmsprop");
    ck_assert_int_eq(u->n_out, 0);
    ck_assert_int_eq(u->n_in, 4 * 4);
    const char *params[4] = {"l1.weight", "l1.bias", "logits.weight", "logits.bias"};
    for (int j = 0; j < 4; j++) {
        char name[64];
        ck_assert_str_eq(g->values[u->in[j]].name, params[j]);
        snprintf(name, sizeof name, "%s.mean_square", params[j]);
        ck_assert_int_eq(u->in[8 + j], prt_graph_find_value(g, name));
        snprintf(name, sizeof name, "%s.momentum", params[j]);
        ck_assert_int_eq(u->in[12 + j], prt_graph_find_value(g, name));
        ck_assert_int_eq(g->values[u->in[12 + j]].kind, PRT_VAL_STATE);
        ck_assert_int_eq(g->values[u->in[12 + j]].init, PRT_INIT_ZEROS);
        ck_assert(prt_shape_eq(&g->values[u->in[12 + j]].shape, &g->values[u->in[j]].shape));
    }
    ck_assert_int_eq(u->attrs[PRT_OPTIM_A_WARMUP_STEPS].i[0], 25);
    ck_assert_int_eq(u->attrs[PRT_OPTIM_A_TOTAL_STEPS].i[0], 100);
    ck_assert(u->attrs[PRT_OPTIM_A_LR].f == 0.01);
    /* and it compiles at any batch */
    prt_program *p;
    ck_assert_msg(prt_vm_compile(g, 3, &p) == PRT_OK, "%s", prt_last_error(ctx));
    prt_program_destroy(ctx, p);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

static void expect_build_error(const char *yaml, const prt_solver *s, prt_status want, const char *msg) {
    prt_context *ctx = tu_context();
    prt_graph *g = NULL;
    ck_assert_int_eq(prt_graph_load_yaml_string(ctx, "net.yaml", yaml, strlen(yaml), &g), PRT_OK);
    prt_train_info info;
    ck_assert_int_eq(prt_train_build(g, s, 10, &info), want);
    ck_assert_str_eq(prt_last_error(ctx), msg);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}

START_TEST(test_train_build_errors) {
    prt_solver s = solver(PRT_OPT_sgd, -0.1, 1, 8);
    expect_build_error(mlp_yaml, &s, PRT_ERR_INVALID, "solver.lr must be > 0, got -0.1");
    s.lr = 0.1;
    expect_build_error("parrots: 1\ninput: {x: [2, 4, 4]}\nlayers:\n  - conv: {out: 3, kernel: 1}\n", &s, PRT_ERR_SHAPE,
                       "graph 'net': training takes the loss of the first output, which must be f32 logits "
                       "[N, classes] computed by a layer; 'conv_0' is f32 [1, 3, 4, 4]");
    expect_build_error("parrots: 1\ninput: {x: [4]}\nlayers:\n  - linear: {out: 3}\n    name: labels\n", &s,
                       PRT_ERR_SCHEMA,
                       "graph 'net': training adds an input named 'labels', but the network already has a tensor of "
                       "that name");
    expect_build_error("parrots: 1\ninput: {x: [4]}\nlayers:\n  - flatten:\n", &s, PRT_ERR_SCHEMA,
                       "graph 'net': no parameter leads to the loss: nothing to train");
}
END_TEST

static Suite *train_suite(void) {
    Suite *s = suite_create("train");
    TCase *t = tcase_create("train");
    tcase_add_test(t, test_mlp_learns_with_every_optimizer);
    tcase_add_test(t, test_cnn_learns);
    tcase_add_test(t, test_same_seed_same_losses);
    tcase_add_test(t, test_train_graph_shape);
    tcase_add_test(t, test_train_build_errors);
    suite_add_tcase(s, t);
    return s;
}

int main(void) { return tu_run(train_suite()); }

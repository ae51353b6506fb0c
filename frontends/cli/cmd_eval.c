/* `parrots eval NET.yaml --weights FILE`: test accuracy and loss of trained
 * weights; and the evaluator `parrots train` uses at each epoch's end (an
 * inference program at the evaluation batch, a second one for a last short
 * batch, fed by a loader without shuffling or augmentation). */
#include "frontends/cli/cli_impl.h"
#include "frontends/weights_api.h"
#include "runtime/cuda_api.h"

#include <math.h>
#include <string.h>

void cli_data_norm(const char *data, float *mean, float *std) {
    /* the Fashion-MNIST training set's pixel mean and standard deviation */
    if (!strcmp(data, "fashion-mnist")) *mean = 0.2860f, *std = 0.3530f;
    else *mean = 0.0f, *std = 1.0f;
}

prt_status cli_dataset_open(prt_context *ctx, const char *name, const char *split, int64_t limit, prt_dataset **out) {
    prt_dataset *d = NULL, *head = NULL;
    *out = NULL;
    PRT_CHECK(prt_dataset_open(ctx, name, split, &d));
    int64_t n = prt_dataset_size(d);
    if (limit <= 0 || limit >= n) {
        *out = d;
        return PRT_OK;
    }
    /* the first `limit` samples, as a dataset of their own */
    char what[160];
    snprintf(what, sizeof what, "%s (%s split, first %lld samples)", name, split, (long long)limit);
    prt_status st = prt_dataset_head(ctx, d, limit, what, &head);
    if (st == PRT_OK) *out = head;
    prt_dataset_destroy(d);
    return st;
}

prt_status cli_check_data(prt_context *ctx, const prt_graph *g, const char *data, const prt_dataset *d) {
    char a[160], b[160];
    if (g->n_inputs < 1) return prt_error(ctx, PRT_ERR_SCHEMA, "network '%s' has no input", g->name);
    const prt_value *in = &g->values[g->inputs[0]];
    prt_shape s = prt_dataset_sample_shape(d);
    if (!prt_shape_eq(&in->shape, &s))
        return prt_error(ctx, PRT_ERR_SHAPE,
                         "network '%s': its input '%s' is %s per sample, but the %s samples are %s", g->name, in->name,
                         prt_shape_str(&in->shape, a, sizeof a), data, prt_shape_str(&s, b, sizeof b));
    if (g->n_outputs < 1) return prt_error(ctx, PRT_ERR_SCHEMA, "network '%s' has no output", g->name);
    const prt_value *out = &g->values[g->outputs[0]];
    /* shapes are those of the batch-1 inference the loader ran */
    if (out->shape.ndim != 2 || out->shape.d[1] < prt_dataset_classes(d))
        return prt_error(ctx, PRT_ERR_SHAPE,
                         "network '%s': its output '%s' is %s, but classifying %s needs [N, %d] (or more classes)",
                         g->name, out->name, prt_shape_str(&out->shape, a, sizeof a), data, prt_dataset_classes(d));
    return PRT_OK;
}

int64_t cli_count_correct(const float *logits, int64_t n, int64_t classes, const int32_t *labels) {
    int64_t correct = 0;
    for (int64_t i = 0; i < n; i++) {
        const float *z = logits + i * classes;
        int64_t best = 0;
        for (int64_t c = 1; c < classes; c++)
            if (z[c] > z[best]) best = c;
        correct += best == labels[i];
    }
    return correct;
}

/* ---- the evaluator -------------------------------------------------------- */

static prt_status eval_program(cli_evaluator *e, int64_t batch, prt_program **p, prt_vm **vm) {
    PRT_CHECK(prt_vm_compile(e->g, batch, p));
    prt_vm_options vo = {.training = false};
    return prt_vm_create(e->ctx, *p, e->dev ? e->dev : prt_cpu_device(e->ctx), &vo, vm);
}

prt_status cli_eval_open(cli_evaluator *e, prt_context *ctx, const char *net_path, const char *data,
                         const prt_dataset *test, int64_t batch, prt_device *dev) {
    memset(e, 0, sizeof *e);
    e->ctx = ctx;
    e->dev = dev;
    e->test = test;
    int64_t n = prt_dataset_size(test);
    e->batch = batch < n ? batch : n;
    e->rem = n % e->batch;
    PRT_CHECK(cli_load(ctx, net_path, &e->g));
    PRT_CHECK(cli_check_data(ctx, e->g, data, test));
    e->classes = e->g->values[e->g->outputs[0]].shape.d[1];
    PRT_CHECK(eval_program(e, e->batch, &e->p, &e->vm));
    if (e->rem) PRT_CHECK(eval_program(e, e->rem, &e->p_rem, &e->vm_rem));
    e->labels = prt_malloc(ctx, sizeof(int32_t) * (size_t)e->batch);
    if (!e->labels) return prt_error(ctx, PRT_ERR_NOMEM, "out of memory");
    prt_loader_options o;
    prt_loader_defaults(&o);
    o.batch = e->batch;
    o.shuffle = false;
    o.drop_last = false;
    o.prefetch = 2;
    cli_data_norm(data, &o.mean, &o.std);
    return prt_loader_create(ctx, test, &o, &e->ld);
}

prt_status cli_eval_from_vm(cli_evaluator *e, prt_vm *src) {
    PRT_CHECK(prt_weights_copy_vm(e->ctx, e->g, src, e->vm));
    if (e->vm_rem) PRT_CHECK(prt_weights_copy_vm(e->ctx, e->g, src, e->vm_rem));
    return PRT_OK;
}

prt_status cli_eval_weights(cli_evaluator *e, const struct prt_weights *w) {
    PRT_CHECK(prt_weights_apply(e->ctx, w, e->g, e->vm));
    if (e->vm_rem) PRT_CHECK(prt_weights_apply(e->ctx, w, e->g, e->vm_rem));
    return PRT_OK;
}

/* Mean softmax cross-entropy of n rows, summed in double (stable: log-sum-exp
 * around the row maximum). */
static double sum_xent(const float *z, int64_t n, int64_t classes, const int32_t *labels) {
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        const float *r = z + i * classes;
        double mx = r[0], s = 0;
        for (int64_t c = 1; c < classes; c++) mx = fmax(mx, r[c]);
        for (int64_t c = 0; c < classes; c++) s += exp((double)r[c] - mx);
        sum += mx + log(s) - (double)r[labels[i]];
    }
    return sum;
}

prt_status cli_eval_run(cli_evaluator *e, double *loss, double *acc) {
    prt_context *ctx = e->ctx;
    int64_t seen = 0, correct = 0, n;
    double lsum = 0;
    prt_tensor *x = prt_vm_input(e->vm, 0);
    for (;;) {
        PRT_CHECK(prt_loader_next(e->ld, PRT_F32P(x), e->labels, &n));
        if (n == 0) break;
        prt_vm *vm = e->vm;
        if (n != e->batch) {
            if (!e->vm_rem || n != e->rem)
                return prt_error(ctx, PRT_ERR_INTERNAL, "evaluation: a batch of %lld samples, expected %lld or %lld",
                                 (long long)n, (long long)e->batch, (long long)e->rem);
            vm = e->vm_rem;
            memcpy(PRT_F32P(prt_vm_input(vm, 0)), PRT_F32P(x),
                   sizeof(float) * (size_t)(prt_shape_count(&x->shape) / e->batch * n));
        }
        PRT_CHECK(prt_vm_run(vm));
        const float *z = PRT_F32P(prt_vm_output(vm, 0));
        correct += cli_count_correct(z, n, e->classes, e->labels);
        lsum += sum_xent(z, n, e->classes, e->labels);
        seen += n;
    }
    if (seen != prt_dataset_size(e->test))
        return prt_error(ctx, PRT_ERR_INTERNAL, "evaluation saw %lld of %lld test samples", (long long)seen,
                         (long long)prt_dataset_size(e->test));
    *loss = lsum / (double)seen;
    *acc = (double)correct / (double)seen;
    return PRT_OK;
}

void cli_eval_close(cli_evaluator *e) {
    prt_context *ctx = e->ctx;
    if (!ctx) return;
    prt_loader_destroy(e->ld);
    prt_vm_destroy(e->vm);
    prt_vm_destroy(e->vm_rem);
    prt_program_destroy(ctx, e->p);
    prt_program_destroy(ctx, e->p_rem);
    prt_graph_destroy(e->g);
    prt_free(ctx, e->labels, 0);
    memset(e, 0, sizeof *e);
}

/* ---- the command ------------------------------------------------------------ */

int cli_eval(int argc, char **argv) {
    bool verbose = false;
    long long batch = 128, test_limit = 0, threads = 0;
    const char *weights = NULL, *data = "fashion-mnist", *device = "cpu";
    const cli_opt opts[] = {
        {"--weights", CLI_STRING, "FILE", "the weights file (from 'parrots train --save')", &weights},
        {"--data", CLI_STRING, "NAME", "dataset: fashion-mnist (default) or synthetic:N", &data},
        {"--batch", CLI_INT, "B", "evaluation batch size (default 128)", &batch},
        {"--test-limit", CLI_INT, "M", "evaluate on the first M test samples only", &test_limit},
        {"--threads", CLI_INT, "T", "CPU threads (default: all cores)", &threads},
        {"--device", CLI_STRING, "DEV", "cpu (default) or cuda[:N], the N-th GPU (docs/gpu.md)", &device},
        {"--verbose", CLI_FLAG, NULL, "debug logging", &verbose},
        {0},
    };
    const char *pos[1];
    int rc = cli_parse("eval", "NET.yaml --weights FILE [--data NAME] [--batch B] [--device cpu|cuda[:N]]", opts, argc,
                       argv, pos, 1, 1);
    if (rc) return rc < 0 ? CLI_OK : rc;
    int gpu_index;
    if ((rc = cli_parse_device("eval", device, &gpu_index)) != CLI_OK) return rc;
    if (!weights) {
        fprintf(stderr, "parrots eval: --weights FILE is required\n");
        return CLI_USAGE;
    }
    if (batch < 1) {
        fprintf(stderr, "parrots eval: --batch must be at least 1\n");
        return CLI_USAGE;
    }
    prt_context_options co = {.struct_size = sizeof co,
                              .log_level = verbose ? PRT_LOG_DEBUG : PRT_LOG_INFO,
                              .num_threads = (int)threads};
    prt_context *ctx;
    if ((rc = cli_start("eval", &co, verbose, &ctx)) != CLI_OK) return rc;
    prt_status s = PRT_OK;
    prt_dataset *test = NULL;
    prt_weights *w = NULL;
    cli_evaluator ev = {0};
    prt_device *gpu = NULL;
    double loss, acc, t0 = prt_now();
    if (gpu_index >= 0) PRT_CHECK_GOTO(prt_cuda_device_create(ctx, gpu_index, &gpu), s, done);
    PRT_CHECK_GOTO(prt_weights_read(ctx, weights, &w), s, done);
    PRT_CHECK_GOTO(cli_dataset_open(ctx, data, "test", test_limit, &test), s, done);
    PRT_CHECK_GOTO(cli_eval_open(&ev, ctx, pos[0], data, test, batch, gpu), s, done);
    PRT_CHECK_GOTO(cli_eval_weights(&ev, w), s, done);
    PRT_CHECK_GOTO(cli_eval_run(&ev, &loss, &acc), s, done);
    printf("test_acc %.4f  test_loss %.4f  images %lld  %.1f s\n", acc, loss, (long long)prt_dataset_size(test),
           prt_now() - t0);
done:
    rc = s == PRT_OK ? CLI_OK : cli_fail("eval", ctx, s);
    cli_eval_close(&ev);
    prt_cuda_device_destroy(gpu);
    prt_weights_destroy(ctx, w);
    prt_dataset_destroy(test);
    prt_context_destroy(ctx);
    return rc;
}

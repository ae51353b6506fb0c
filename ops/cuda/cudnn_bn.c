/* batchnorm and batchnorm_bwd on CUDA: cuDNN batch normalization in spatial
 * mode on the input viewed as [N, C, S, 1] (S the product of the spatial dims;
 * a rank-2 input is [N, C, 1, 1]), the CPU kernels' semantics
 * (ops/op_batchnorm.c, ops/op_batchnorm_bwd.c):
 *  - training: batch mean and biased variance normalise; the running
 *    statistics move by momentum m, mean = (1-m) mean + m batch_mean and
 *    var = (1-m) var + m batch_var n/(n-1). cuDNN's exponentialAverageFactor is
 *    exactly our m (runningMean = newMean*factor + runningMean*(1-factor)), and
 *    cuDNN, like our CPU code and PyTorch, folds the unbiased variance into the
 *    running variance; tests/test_cudnn_ops.c checks both against the CPU;
 *  - a RECOMPUTE call passes NULL running statistics (cuDNN allows both NULL
 *    together), so it updates nothing;
 *  - outside training: cudnnBatchNormalizationForwardInference with the
 *    running statistics;
 *  - backward in training: cudnnBatchNormalizationBackward with no saved
 *    statistics, so cuDNN recomputes them from x as our CPU kernel does;
 *    outside training (running statistics as constants) our own kernel
 *    (cudnn_kernels.cu), as cuDNN's backward always differentiates the batch
 *    statistics;
 *  - synchronised batch norm (sync_bn over more than one rank) is not
 *    supported on CUDA yet: PRT_ERR_UNSUPPORTED naming the layer's op.
 * The forward may run in place (the schema's inplace_in 0: y on x); cuDNN reads
 * each element before it writes it, which the in-place case of the GPU test
 * checks. */
#define PRT_CUDNN_IMPL
#include "ops/bwd_util.h"
#include "ops/cuda/cudnn_util.h"

typedef struct bn_state {
    prt_context *ctx;
    prt_dtype dt;                     /* of x, y, dy, dx: f32 or bf16 */
    cudnnTensorDescriptor_t x, stats; /* [N, C, S, 1] and [1, C, 1, 1] */
} bn_state;

void prt_cudnn_bn_release(void *state) {
    bn_state *s = state;
    if (!s) return;
    if (s->x) cudnnDestroyTensorDescriptor(s->x);
    if (s->stats) cudnnDestroyTensorDescriptor(s->stats);
    prt_free(s->ctx, s, sizeof *s);
}

static void bn_dims(const prt_shape *s, int64_t *n, int64_t *c, int64_t *sp) {
    *n = s->d[0];
    *c = s->d[1];
    *sp = 1;
    for (int i = 2; i < s->ndim; i++) *sp *= s->d[i];
}

static prt_status bn_unsupported_sync(const prt_kernel_call *c, const char *what) {
    if (c->training && prt_bn_syncs(c))
        return prt_error(c->ctx, PRT_ERR_UNSUPPORTED,
                         "%s on CUDA: synchronised batch norm (sync_bn over more than one rank) is not supported on "
                         "GPUs yet; run without sync_bn or on the CPU",
                         what);
    return PRT_OK;
}

static prt_status bn_prepare_on(const prt_kernel_call *c, const prt_tensor *xt, const char *what, void **state) {
    const prt_shape *xs = &xt->shape;
    PRT_CHECK(bn_unsupported_sync(c, what));
    bn_state *s = prt_calloc(c->ctx, 1, sizeof *s);
    if (!s) return prt_error(c->ctx, PRT_ERR_NOMEM, "%s on CUDA: kernel state", what);
    s->ctx = c->ctx;
    s->dt = xt->dtype;
    prt_status st = PRT_OK;
    int64_t n, ch, sp;
    bn_dims(xs, &n, &ch, &sp);
    PRT_CUDNN_TRY_GOTO(c->ctx, what, cudnnCreateTensorDescriptor(&s->x), st, fail);
    PRT_CUDNN_TRY_GOTO(c->ctx, what, cudnnCreateTensorDescriptor(&s->stats), st, fail);
    PRT_CHECK_GOTO(prt_cudnn_tensor4_dt(c->ctx, what, s->x, s->dt, n, ch, sp, 1), st, fail);
    /* bf16 x and y with f32 scale, shift and statistics: the descriptor cuDNN
     * derives from x's (float for half and bf16 data, cudnn_ops.h) */
    if (s->dt == PRT_BF16)
        PRT_CUDNN_TRY_GOTO(c->ctx, what, cudnnDeriveBNTensorDescriptor(s->stats, s->x, CUDNN_BATCHNORM_SPATIAL), st,
                           fail);
    else
        PRT_CHECK_GOTO(prt_cudnn_tensor4(c->ctx, what, s->stats, 1, ch, 1, 1), st, fail);
    *state = s;
    return PRT_OK;
fail:
    prt_cudnn_bn_release(s);
    return st;
}

prt_status prt_cudnn_bn_prepare(const prt_kernel_call *c, void **state) {
    return bn_prepare_on(c, c->in[0], "batchnorm", state);
}

prt_status prt_cudnn_bn_bwd_prepare(const prt_kernel_call *c, void **state) {
    return bn_prepare_on(c, c->in[1], "batchnorm_bwd", state);
}

enum { P_SCALE = 1, P_SHIFT, P_MEAN, P_VAR }; /* batchnorm's inputs after x */

prt_status prt_cudnn_bn(const prt_kernel_call *c) {
    const char *what = "batchnorm";
    bn_state *s = c->state;
    if (!s) return prt_error(c->ctx, PRT_ERR_INTERNAL, "%s on CUDA: run before prepare", what);
    prt_dtype dt = PRT_F32;
    PRT_CHECK(prt_cudnn_check_act(c, what, 1u, 1u, &dt)); /* x, y */
    if (dt != s->dt) return prt_error(c->ctx, PRT_ERR_INTERNAL, "%s on CUDA: prepared for another dtype", what);
    if (c->n_in != 5 || c->n_out != 1)
        return prt_error(c->ctx, PRT_ERR_INTERNAL, "%s on CUDA: %d inputs, expected 5", what, c->n_in);
    PRT_CHECK(bn_unsupported_sync(c, what));
    int64_t n, ch, sp;
    bn_dims(&c->in[0]->shape, &n, &ch, &sp);
    if (c->training && n * sp < 2)
        return prt_error(c->ctx, PRT_ERR_SHAPE,
                         "batchnorm: training needs more than one value per channel (batch %lld, spatial size %lld)",
                         (long long)n, (long long)sp);
    if (n * ch * sp == 0) return PRT_OK;
    cudnnHandle_t h;
    PRT_CHECK(prt_cudnn_handle(c, what, &h));
    const float one = 1.0f, zero = 0.0f;
    double eps = prt_attr_float(&c->attrs[PRT_BN_A_EPS]);
    const void *x = c->in[0]->data, *scale = c->in[P_SCALE]->data, *shift = c->in[P_SHIFT]->data;
    void *mean = c->in[P_MEAN]->data, *var = c->in[P_VAR]->data, *y = c->out[0]->data;
    if (!c->training) {
        PRT_CUDNN_TRY(c->ctx, what,
                      cudnnBatchNormalizationForwardInference(h, CUDNN_BATCHNORM_SPATIAL, &one, &zero, s->x, x, s->x, y,
                                                              s->stats, scale, shift, mean, var, eps));
        return PRT_OK;
    }
    /* a RECOMPUTE repeats a counted batch: no running update */
    bool update = !c->recompute;
    double momentum = prt_attr_float(&c->attrs[PRT_BN_A_MOMENTUM]);
    PRT_CUDNN_TRY(c->ctx, what,
                  cudnnBatchNormalizationForwardTraining(h, CUDNN_BATCHNORM_SPATIAL, &one, &zero, s->x, x, s->x, y,
                                                         s->stats, scale, shift, momentum, update ? mean : NULL,
                                                         update ? var : NULL, eps, NULL, NULL));
    return PRT_OK;
}

prt_status prt_cudnn_bn_bwd(const prt_kernel_call *c) {
    const char *what = "batchnorm_bwd";
    bn_state *s = c->state;
    if (!s) return prt_error(c->ctx, PRT_ERR_INTERNAL, "%s on CUDA: run before prepare", what);
    prt_dtype dt = PRT_F32;
    PRT_CHECK(prt_cudnn_check_act(c, what, 3u, 1u, &dt)); /* dy, x, dx */
    if (dt != s->dt) return prt_error(c->ctx, PRT_ERR_INTERNAL, "%s on CUDA: prepared for another dtype", what);
    if ((c->n_in != 3 && c->n_in != 5) || c->n_out != 3)
        return prt_error(c->ctx, PRT_ERR_INTERNAL, "%s on CUDA: %d inputs and %d outputs, expected 3 or 5 and 3", what,
                         c->n_in, c->n_out);
    if (!c->training && c->n_in != 5)
        return prt_error(c->ctx, PRT_ERR_INVALID,
                         "batchnorm_bwd: the gradient outside training needs the running mean and variance (inputs 4 "
                         "and 5)");
    PRT_CHECK(bn_unsupported_sync(c, what));
    int64_t n, ch, sp;
    bn_dims(&c->in[1]->shape, &n, &ch, &sp);
    if (n * ch * sp == 0) return PRT_OK;
    double eps = prt_attr_float(&c->attrs[PRT_BN_A_EPS]);
    const void *dy = c->in[0]->data, *x = c->in[1]->data;
    const float *scale = c->in[2]->data;
    void *dx = c->out[0]->data;
    float *dscale = c->out[1]->data, *dshift = c->out[2]->data;
    if (!c->training) {
        if (dt != PRT_F32)
            return prt_error(c->ctx, PRT_ERR_UNSUPPORTED,
                             "%s on CUDA: the gradient outside training (running statistics) is f32 only, not %s", what,
                             prt_dtype_name(dt));
        PRT_CUK_TRY(c->ctx, what,
                    prt_cuk_bn_bwd_eval(dy, x, scale, c->in[3]->data, c->in[4]->data, eps, dx, dscale, dshift, n, ch,
                                        sp, c->stream));
        return PRT_OK;
    }
    cudnnHandle_t h;
    PRT_CHECK(prt_cudnn_handle(c, what, &h));
    const float one = 1.0f, zero = 0.0f;
    PRT_CUDNN_TRY(c->ctx, what,
                  cudnnBatchNormalizationBackward(h, CUDNN_BATCHNORM_SPATIAL, &one, &zero, &one, &zero, s->x, x, s->x,
                                                  dy, s->x, dx, s->stats, scale, dscale, dshift, eps, NULL, NULL));
    return PRT_OK;
}

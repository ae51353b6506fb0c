/* What the cuDNN / cuBLAS kernels share: vendor statuses turned into
 * prt_errors that name the op, the call and the vendor's message; the handles
 * of the call's device, set to the call's stream; checked int dimensions and
 * NCHW descriptors. */
#define PRT_CUDNN_IMPL
#include "ops/cuda/cudnn_util.h"
#include "runtime/cuda/cuda_util.h"
#include "runtime/cuda_api.h"

#include <limits.h>

/* The project's translations (runtime/cuda/cuda_util.h), with the op named. */
prt_status prt_cudnn_fail(prt_context *ctx, cudnnStatus_t s, const char *what, const char *call) {
    return prt_cudnn_error(ctx, (int)s, call, "running %s on CUDA", what);
}

prt_status prt_cuda_rt_fail(prt_context *ctx, cudaError_t e, const char *what, const char *call) {
    return prt_cuda_error(ctx, e, call, "running %s on CUDA", what);
}

prt_status prt_cublas_fail(prt_context *ctx, cublasStatus_t s, const char *what, const char *call) {
    return prt_cublas_error(ctx, (int)s, call, "running %s on CUDA", what);
}

prt_status prt_cudnn_handle(const prt_kernel_call *c, const char *what, cudnnHandle_t *out) {
    if (!c->dev || !prt_device_is_cuda(c->dev))
        return prt_error(c->ctx, PRT_ERR_INTERNAL, "%s: CUDA kernel called without a CUDA device", what);
    cudnnHandle_t h = (cudnnHandle_t)prt_cuda_cudnn(c->dev);
    if (!h) return prt_error(c->ctx, PRT_ERR_INTERNAL, "%s: the CUDA device has no cuDNN handle", what);
    /* the device binds it to the compute stream; a call may name another */
    if (c->stream) PRT_CUDNN_TRY(c->ctx, what, cudnnSetStream(h, (cudaStream_t)c->stream));
    *out = h;
    return PRT_OK;
}

prt_status prt_cublas_handle(const prt_kernel_call *c, const char *what, cublasHandle_t *out) {
    if (!c->dev || !prt_device_is_cuda(c->dev))
        return prt_error(c->ctx, PRT_ERR_INTERNAL, "%s: CUDA kernel called without a CUDA device", what);
    cublasHandle_t h = (cublasHandle_t)prt_cuda_cublas(c->dev);
    if (!h) return prt_error(c->ctx, PRT_ERR_INTERNAL, "%s: the CUDA device has no cuBLAS handle", what);
    /* rebinds only on a change of stream, keeping the device's own workspace
     * (a CUDA graph capture must not make cuBLAS allocate one) */
    prt_status st = prt_cuda_cublas_bind(c->dev, c->stream);
    if (st != PRT_OK) return prt_error_prefix(c->ctx, st, "%s on CUDA", what);
    *out = h;
    return PRT_OK;
}

prt_status prt_cudnn_int(prt_context *ctx, const char *what, const char *dim, int64_t v, int *out) {
    if (v < 0 || v > INT_MAX)
        return prt_error(ctx, PRT_ERR_UNSUPPORTED, "%s on CUDA: %s %lld does not fit cuDNN's / cuBLAS's int dimensions",
                         what, dim, (long long)v);
    *out = (int)v;
    return PRT_OK;
}

prt_status prt_cudnn_tensor4(prt_context *ctx, const char *what, cudnnTensorDescriptor_t d, int64_t n, int64_t c,
                             int64_t h, int64_t w) {
    return prt_cudnn_tensor4_dt(ctx, what, d, PRT_F32, n, c, h, w);
}

cudnnDataType_t prt_cudnn_dtype(prt_dtype t) { return t == PRT_BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT; }

prt_status prt_cudnn_tensor4_dt(prt_context *ctx, const char *what, cudnnTensorDescriptor_t d, prt_dtype t, int64_t n,
                                int64_t c, int64_t h, int64_t w) {
    int in = 0, ic = 0, ih = 0, iw = 0; /* set by prt_cudnn_int on success */
    PRT_CHECK(prt_cudnn_int(ctx, what, "batch", n, &in));
    PRT_CHECK(prt_cudnn_int(ctx, what, "channels", c, &ic));
    PRT_CHECK(prt_cudnn_int(ctx, what, "height", h, &ih));
    PRT_CHECK(prt_cudnn_int(ctx, what, "width", w, &iw));
    PRT_CUDNN_TRY(ctx, what, cudnnSetTensor4dDescriptor(d, CUDNN_TENSOR_NCHW, prt_cudnn_dtype(t), in, ic, ih, iw));
    return PRT_OK;
}

prt_status prt_cudnn_check_f32(const prt_kernel_call *c, const char *what) {
    for (int k = 0; k < c->n_in + c->n_out; k++) {
        const prt_tensor *t = k < c->n_in ? c->in[k] : c->out[k - c->n_in];
        const char *role = k < c->n_in ? "input" : "output";
        int idx = k < c->n_in ? k : k - c->n_in;
        if (t->dtype != PRT_F32)
            return prt_error(c->ctx, PRT_ERR_UNSUPPORTED, "%s on CUDA: %s %d is %s; these kernels compute f32", what,
                             role, idx, prt_dtype_name(t->dtype));
        if (!prt_tensor_is_contiguous(t))
            return prt_error(c->ctx, PRT_ERR_UNSUPPORTED, "%s on CUDA: %s %d is not contiguous", what, role, idx);
    }
    return PRT_OK;
}

prt_status prt_cudnn_check_act(const prt_kernel_call *c, const char *what, unsigned act_in, unsigned act_out,
                               prt_dtype *dt) {
    *dt = c->n_out ? c->out[0]->dtype : c->in[0]->dtype;
    if (*dt != PRT_F32 && *dt != PRT_BF16)
        return prt_error(c->ctx, PRT_ERR_UNSUPPORTED, "%s on CUDA: %s activations; f32 and bf16 are supported", what,
                         prt_dtype_name(*dt));
    for (int k = 0; k < c->n_in + c->n_out; k++) {
        const prt_tensor *t = k < c->n_in ? c->in[k] : c->out[k - c->n_in];
        const char *role = k < c->n_in ? "input" : "output";
        int idx = k < c->n_in ? k : k - c->n_in;
        bool act = idx < 32 && (((k < c->n_in ? act_in : act_out) >> idx) & 1u);
        prt_dtype want = act ? *dt : PRT_F32;
        if (t->dtype != want)
            return prt_error(c->ctx, PRT_ERR_UNSUPPORTED, "%s on CUDA: %s %d is %s, expected %s", what, role, idx,
                             prt_dtype_name(t->dtype), prt_dtype_name(want));
        if (!prt_tensor_is_contiguous(t))
            return prt_error(c->ctx, PRT_ERR_UNSUPPORTED, "%s on CUDA: %s %d is not contiguous", what, role, idx);
    }
    return PRT_OK;
}

/* The cuDNN / cuBLAS kernels of the dense ops (ops/cuda/cudnn_*.c) and the
 * hand-written CUDA kernels they need (ops/cuda/cudnn_kernels.cu), as prt_kernel
 * entry points for the schemas' `cuda` and `workspace_cuda` fields. Each takes
 * the same call as the op's CPU kernel, with device pointers in its tensors and
 * the compute stream in c->stream; it launches on that stream, never
 * synchronises (except cuDNN's own algorithm search in prepare), and checks
 * every CUDA, cuDNN and cuBLAS status.
 *
 *     #include "ops/cuda/cudnn_util.h"
 *     const prt_op_schema prt_op_conv = { ...,
 *         .cuda = PRT_CUDNN_KERNEL(prt_cudnn_conv_prepare, prt_cudnn_conv, prt_cudnn_conv_release),
 *         .workspace_cuda = PRT_CUDNN_FN(prt_cudnn_conv_workspace) };
 *
 * In a build without CUDA (PARROTS_HAVE_CUDA 0) both macros give NULL, so the
 * op files name these functions without #ifdefs and the symbols are never
 * referenced.
 *
 * Semantics are the CPU kernels' (ops/op_*.c), with these choices:
 *  - convolutions run in cuDNN's default math (CUDNN_DEFAULT_MATH, or the math
 *    type cuDNN reports for the chosen algorithm), which lets f32 use TF32
 *    tensor cores on sm_80+: about 1e-3 relative error, the issue allows it;
 *  - linear layers are cuBLAS sgemm in the handle's math mode (full f32 unless
 *    the device code enables TF32);
 *  - pooling is our own CUDA code (cudnn_kernels.cu): cuDNN pads symmetrically
 *    only, and max-pool backward in cuDNN needs the forward output y, which
 *    maxpool_bwd(dy, x) does not get; ours follows the CPU rules bit for bit
 *    (first maximum, NaN wins, asymmetric pads, count_include_pad);
 *  - batch norm is cuDNN in spatial mode; its backward outside training (the
 *    running statistics as constants) is our own kernel, as cuDNN has none. */
#ifndef PARROTS_OPS_CUDA_CUDNN_UTIL_H
#define PARROTS_OPS_CUDA_CUDNN_UTIL_H

#include <stddef.h>
#include <stdint.h>

#if defined(PARROTS_HAVE_CUDA) && PARROTS_HAVE_CUDA
#define PRT_CUDNN_KERNEL(prep, run_, rel) {.prepare = (prep), .run = (run_), .release = (rel)}
#define PRT_CUDNN_FN(f) (f)
#else
#define PRT_CUDNN_KERNEL(prep, run_, rel) {0}
#define PRT_CUDNN_FN(f) NULL
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- launchers of cudnn_kernels.cu (plain types: the .cu side sees no C11
 * headers). Each returns the cudaError_t (as int) of the launch, 0 on success;
 * stream is a cudaStream_t. ---------------------------------------------- */

/* The window of a 2-D pooling: kernel, stride, pads top and left (bottom and
 * right follow from the output size), output size. */
typedef struct prt_cuk_window {
    int64_t kh, kw, sh, sw, pt, pl, oh, ow;
} prt_cuk_window;

/* planes = N*C planes of h x w; avg: average (count_pad: divide by kh*kw) else max;
 * bf16: the tensors are bf16 (computed in f32), else f32 */
int prt_cuk_pool_fwd(const void *x, void *y, int64_t planes, int64_t h, int64_t w, const prt_cuk_window *win,
                     int avg, int count_pad, int bf16, void *stream);
/* dx (overwritten) from dy; x is read for max pooling only (may be NULL for avg) */
int prt_cuk_pool_bwd(const void *dy, const void *x, void *dx, int64_t planes, int64_t h, int64_t w,
                     const prt_cuk_window *win, int avg, int count_pad, int bf16, void *stream);
/* batchnorm_bwd outside training: with rstd = 1/sqrt(var + eps),
 * dshift = sum dy, dscale = sum dy (x - mean) rstd, dx = scale rstd dy
 * (sums in double per channel, as the CPU kernel) */
int prt_cuk_bn_bwd_eval(const float *dy, const float *x, const float *scale, const float *mean, const float *var,
                        double eps, float *dx, float *dscale, float *dshift, int64_t n, int64_t c, int64_t sp,
                        void *stream);
/* y[i, o] = b[o] for an [n, out] row-major y (the bias, before a GEMM with beta 1) */
int prt_cuk_bias_rows(float *y, const float *b, int64_t n, int64_t out, void *stream);
/* the same for a bf16 y and bias */
int prt_cuk_bias_rows_bf16(void *y, const void *b, int64_t n, int64_t out, void *stream);
/* The message of a cudaError_t ("an illegal memory access ... (cudaErrorIllegalAddress)"). */
const char *prt_cuk_error_str(int err, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif

#ifndef __CUDACC__
#include "ops/ops_impl.h"

/* ---- the ops' entry points (ops/cuda/cudnn_conv.c, cudnn_bn.c,
 * cudnn_pool.c, cudnn_linear.c) ------------------------------------------ */

/* conv, conv_bwd_data, conv_bwd_weight. The workspace is a budget computed from
 * the shapes alone (no cuDNN handle exists when the program is planned):
 * prepare picks the fastest algorithm whose workspace fits it. */
size_t prt_cudnn_conv_workspace(const prt_infer_ctx *ic);
size_t prt_cudnn_conv_bwd_data_workspace(const prt_infer_ctx *ic);
size_t prt_cudnn_conv_bwd_weight_workspace(const prt_infer_ctx *ic);
prt_status prt_cudnn_conv_prepare(const prt_kernel_call *c, void **state);
prt_status prt_cudnn_conv_bwd_data_prepare(const prt_kernel_call *c, void **state);
prt_status prt_cudnn_conv_bwd_weight_prepare(const prt_kernel_call *c, void **state);
prt_status prt_cudnn_conv(const prt_kernel_call *c);
prt_status prt_cudnn_conv_bwd_data(const prt_kernel_call *c);
prt_status prt_cudnn_conv_bwd_weight(const prt_kernel_call *c);
void prt_cudnn_conv_release(void *state);
/* The algorithm prepare chose, for logs and benchmarks ("fwd IMPLICIT_PRECOMP_GEMM, 0 B, measured"). */
const char *prt_cudnn_conv_describe(const void *state, char *buf, size_t cap);

/* batchnorm, batchnorm_bwd. No workspace. Synchronised batch norm
 * (c->sync_bn with more than one rank) is PRT_ERR_UNSUPPORTED on CUDA. */
prt_status prt_cudnn_bn_prepare(const prt_kernel_call *c, void **state);
prt_status prt_cudnn_bn(const prt_kernel_call *c);
prt_status prt_cudnn_bn_bwd_prepare(const prt_kernel_call *c, void **state);
prt_status prt_cudnn_bn_bwd(const prt_kernel_call *c);
void prt_cudnn_bn_release(void *state);

/* maxpool, avgpool, maxpool_bwd, avgpool_bwd (no state, no workspace) */
prt_status prt_cudnn_maxpool(const prt_kernel_call *c);
prt_status prt_cudnn_avgpool(const prt_kernel_call *c);
prt_status prt_cudnn_maxpool_bwd(const prt_kernel_call *c);
prt_status prt_cudnn_avgpool_bwd(const prt_kernel_call *c);

/* linear, linear_bwd_data, linear_bwd_weight (cuBLAS; no state, no workspace) */
prt_status prt_cudnn_linear(const prt_kernel_call *c);
prt_status prt_cudnn_linear_bwd_data(const prt_kernel_call *c);
prt_status prt_cudnn_linear_bwd_weight(const prt_kernel_call *c);

/* ---- helpers for the cudnn_*.c files ------------------------------------ */
#ifdef PRT_CUDNN_IMPL
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

/* Vendor status -> prt_error naming the call, the op and the vendor's message
 * (through runtime/cuda/cuda_util.h's translations). */
prt_status prt_cudnn_fail(prt_context *ctx, cudnnStatus_t s, const char *what, const char *call);
prt_status prt_cuda_rt_fail(prt_context *ctx, cudaError_t e, const char *what, const char *call);
prt_status prt_cublas_fail(prt_context *ctx, cublasStatus_t s, const char *what, const char *call);

#define PRT_CUDNN_TRY(ctx, what, call)                                                        \
    do {                                                                                      \
        cudnnStatus_t prt_cs_ = (call);                                                       \
        if (prt_cs_ != CUDNN_STATUS_SUCCESS) return prt_cudnn_fail((ctx), prt_cs_, (what), #call); \
    } while (0)
#define PRT_CUDNN_TRY_GOTO(ctx, what, call, st, label)                                        \
    do {                                                                                      \
        cudnnStatus_t prt_cs_ = (call);                                                       \
        if (prt_cs_ != CUDNN_STATUS_SUCCESS) {                                                \
            (st) = prt_cudnn_fail((ctx), prt_cs_, (what), #call);                             \
            goto label;                                                                       \
        }                                                                                     \
    } while (0)
#define PRT_CUBLAS_TRY(ctx, what, call)                                                       \
    do {                                                                                      \
        cublasStatus_t prt_bs_ = (call);                                                      \
        if (prt_bs_ != CUBLAS_STATUS_SUCCESS) return prt_cublas_fail((ctx), prt_bs_, (what), #call); \
    } while (0)
/* a launcher of cudnn_kernels.cu (returns a cudaError_t as int) */
#define PRT_CUK_TRY(ctx, what, call)                                                          \
    do {                                                                                      \
        int prt_ke_ = (call);                                                                 \
        if (prt_ke_ != 0) return prt_cuda_rt_fail((ctx), (cudaError_t)prt_ke_, (what), #call); \
    } while (0)

/* The call's cuDNN handle, set to the call's stream. */
prt_status prt_cudnn_handle(const prt_kernel_call *c, const char *what, cudnnHandle_t *out);
prt_status prt_cublas_handle(const prt_kernel_call *c, const char *what, cublasHandle_t *out);
/* An int for a cuDNN / cuBLAS dimension, or PRT_ERR_UNSUPPORTED naming it. */
prt_status prt_cudnn_int(prt_context *ctx, const char *what, const char *dim, int64_t v, int *out);
/* Every input and output a contiguous f32 tensor (the CPU kernels' entry check). */
prt_status prt_cudnn_check_f32(const prt_kernel_call *c, const char *what);
/* An NCHW f32 tensor descriptor. */
prt_status prt_cudnn_tensor4(prt_context *ctx, const char *what, cudnnTensorDescriptor_t d, int64_t n, int64_t c,
                             int64_t h, int64_t w);
/* bf16 (scheduler/precision.c): the cuDNN data type of f32 or bf16, and an NCHW
 * descriptor of that type (NHWC, where cuDNN's bf16 tensor-core kernels are
 * fastest, is not built). */
cudnnDataType_t prt_cudnn_dtype(prt_dtype t);
prt_status prt_cudnn_tensor4_dt(prt_context *ctx, const char *what, cudnnTensorDescriptor_t d, prt_dtype t, int64_t n,
                                int64_t c, int64_t h, int64_t w);
/* Every tensor contiguous; inputs in act_in's bits and outputs in act_out's are
 * activations, all of one dtype *dt (output 0's, else input 0's: f32 or bf16),
 * the others f32 (parameters, statistics). */
prt_status prt_cudnn_check_act(const prt_kernel_call *c, const char *what, unsigned act_in, unsigned act_out,
                               prt_dtype *dt);
#endif /* PRT_CUDNN_IMPL */
#endif /* !__CUDACC__ */

#endif

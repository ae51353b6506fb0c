/* Translating CUDA, cuBLAS and cuDNN status codes into prt_errors at the
 * boundary (CONVENTIONS.md: vendor errors carry the vendor's message). For the
 * C files of runtime/cuda/ and ops/cuda/; kernels live in .cu files that expose
 * extern "C" launchers, and the C caller checks the launch:
 *
 *     void *p;
 *     PRT_CUDA_CHECK(ctx, cudaMalloc(&p, n), "allocating %zu bytes", n);
 *     // -> "CUDA: cudaMalloc: out of memory (cudaErrorMemoryAllocation) while allocating 1024 bytes"
 *     prt_cuda_fill_f32_launch(p, 1.0f, n / 4, stream);
 *     PRT_CUDA_LAUNCH_CHECK(ctx, "fill_f32", "filling %zu floats", n / 4);
 *     PRT_CUBLAS_CHECK(ctx, cublasSgemm(...), "layer '%s'", name);
 *     PRT_CUDNN_CHECK_GOTO(ctx, cudnnConvolutionForward(...), st, fail, "layer '%s'", name);
 *
 * Each macro returns (or jumps to the label with st set) on failure. The status
 * is PRT_ERR_NOMEM for out-of-memory, PRT_ERR_UNSUPPORTED for "no device / no
 * driver", PRT_ERR_BACKEND otherwise. The "while ..." part is mandatory: say
 * what was being done and for what (layer, tensor, bytes).
 *
 * This header includes the CUDA runtime API; only CUDA builds see it (the
 * no-CUDA build compiles runtime/cuda/cuda_stub.c alone).
 */
#ifndef PARROTS_CUDA_UTIL_H
#define PARROTS_CUDA_UTIL_H

#include <cuda_runtime_api.h>
#include <stddef.h>

#include "parrots/parrots.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Records "CUDA: <call>: <description> (<cudaErrorName>) while <fmt...>" in ctx
 * and returns its status. `expr` is the call's source text: its name is what
 * precedes the first '('. Also clears the runtime's last-error slot, so a later
 * PRT_CUDA_LAUNCH_CHECK does not report this error a second time. */
prt_status prt_cuda_error(prt_context *ctx, cudaError_t err, const char *expr, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* The same for cuBLAS (cublasStatus_t) and cuDNN (cudnnStatus_t; adds
 * cudnnGetLastErrorString's detail when there is one). Taken as int so that
 * this header needs neither library's header. */
prt_status prt_cublas_error(prt_context *ctx, int status, const char *expr, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
prt_status prt_cudnn_error(prt_context *ctx, int status, const char *expr, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

#define PRT_CUDA_CHECK(ctx, call, ...)                                                      \
    do {                                                                                    \
        cudaError_t prt_ce_ = (call);                                                       \
        if (prt_ce_ != cudaSuccess) return prt_cuda_error((ctx), prt_ce_, #call, __VA_ARGS__); \
    } while (0)

#define PRT_CUDA_CHECK_GOTO(ctx, call, st, label, ...)                                      \
    do {                                                                                    \
        cudaError_t prt_ce_ = (call);                                                       \
        if (prt_ce_ != cudaSuccess) {                                                       \
            (st) = prt_cuda_error((ctx), prt_ce_, #call, __VA_ARGS__);                      \
            goto label;                                                                     \
        }                                                                                   \
    } while (0)

/* After a kernel launch: cudaGetLastError reports a bad configuration (grid,
 * shared memory) or an earlier asynchronous fault. `kernel` names the kernel. */
#define PRT_CUDA_LAUNCH_CHECK(ctx, kernel, ...)                                             \
    do {                                                                                    \
        cudaError_t prt_ce_ = cudaGetLastError();                                           \
        if (prt_ce_ != cudaSuccess)                                                         \
            return prt_cuda_error((ctx), prt_ce_, "launching " kernel, __VA_ARGS__);        \
    } while (0)

#define PRT_CUDA_LAUNCH_CHECK_GOTO(ctx, kernel, st, label, ...)                             \
    do {                                                                                    \
        cudaError_t prt_ce_ = cudaGetLastError();                                           \
        if (prt_ce_ != cudaSuccess) {                                                       \
            (st) = prt_cuda_error((ctx), prt_ce_, "launching " kernel, __VA_ARGS__);        \
            goto label;                                                                     \
        }                                                                                   \
    } while (0)

#define PRT_CUBLAS_CHECK(ctx, call, ...)                                                    \
    do {                                                                                    \
        int prt_cs_ = (int)(call);                                                          \
        if (prt_cs_ != 0) return prt_cublas_error((ctx), prt_cs_, #call, __VA_ARGS__);      \
    } while (0)

#define PRT_CUBLAS_CHECK_GOTO(ctx, call, st, label, ...)                                    \
    do {                                                                                    \
        int prt_cs_ = (int)(call);                                                          \
        if (prt_cs_ != 0) {                                                                 \
            (st) = prt_cublas_error((ctx), prt_cs_, #call, __VA_ARGS__);                    \
            goto label;                                                                     \
        }                                                                                   \
    } while (0)

#define PRT_CUDNN_CHECK(ctx, call, ...)                                                     \
    do {                                                                                    \
        int prt_cs_ = (int)(call);                                                          \
        if (prt_cs_ != 0) return prt_cudnn_error((ctx), prt_cs_, #call, __VA_ARGS__);       \
    } while (0)

#define PRT_CUDNN_CHECK_GOTO(ctx, call, st, label, ...)                                     \
    do {                                                                                    \
        int prt_cs_ = (int)(call);                                                          \
        if (prt_cs_ != 0) {                                                                 \
            (st) = prt_cudnn_error((ctx), prt_cs_, #call, __VA_ARGS__);                     \
            goto label;                                                                     \
        }                                                                                   \
    } while (0)

/* ---- kernels of the .cu files in runtime/cuda/ (launch only; check with PRT_CUDA_LAUNCH_CHECK) */

/* dst[i] = value for i < count, on `stream` (a cudaStream_t). */
void prt_cuda_fill_f32_launch(float *dst, float value, size_t count, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif

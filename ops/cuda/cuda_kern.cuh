/* Private to the .cu files of ops/cuda (the hand-written kernels): the project's C headers
 * made readable as CUDA C++, the status check of CUDA calls and launches, the
 * kernel-call checks and the launch geometry the element-wise kernels share. */
#ifndef PARROTS_OPS_CUDA_KERN_CUH
#define PARROTS_OPS_CUDA_KERN_CUH

/* C11 spellings the C headers use that C++ lacks */
#if !defined(_Noreturn)
#define _Noreturn [[noreturn]]
#endif
#if !defined(restrict)
#define restrict __restrict__
#endif

#include <cuda_bf16.h>
#include <cuda_runtime.h>

extern "C" {
#pragma GCC diagnostic push
/* ops_util.h's designated initialisers leave fields to zero on purpose */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include "ops/optim_impl.h"
#pragma GCC diagnostic pop
}
#include "ops/cuda/cuda_ops.h"
#include "runtime/cuda/cuda_util.h"
#include "ops/cuda/cuda_rng.h"

/* CUDA calls and launches checked with runtime/cuda/cuda_util.h's macros,
 * the message naming the op: "CUDA: cudaMemcpyAsync: ... while running the
 * concat CUDA kernel". */
#define PRT_CUK_CHECK(ctx, op, call) PRT_CUDA_CHECK((ctx), (call), "running the %s CUDA kernel", (op))
#define PRT_CUK_CHECK_GOTO(ctx, op, call, st, label) \
    PRT_CUDA_CHECK_GOTO((ctx), (call), st, label, "preparing the %s CUDA kernel", (op))
/* after a <<<...>>> launch: a bad configuration shows here, not later */
#define PRT_CUK_LAUNCHED(ctx, op, kernel) PRT_CUDA_LAUNCH_CHECK((ctx), kernel, "running the %s CUDA kernel", (op))

static inline cudaStream_t prt_cuk_stream(const prt_kernel_call *c) { return (cudaStream_t)c->stream; }

/* One tensor of the call: dtype `want`, contiguous, with storage. */
static inline prt_status prt_cuk_check_tensor(const prt_kernel_call *c, const char *op, const prt_tensor *t,
                                              const char *role, int idx, prt_dtype want) {
    if (t->dtype != want)
        return prt_error(c->ctx, PRT_ERR_UNSUPPORTED, "%s CUDA kernel: %s %d is %s, expected %s", op, role, idx,
                         prt_dtype_name(t->dtype), prt_dtype_name(want));
    if (!prt_tensor_is_contiguous(t))
        return prt_error(c->ctx, PRT_ERR_UNSUPPORTED, "%s CUDA kernel: %s %d is not contiguous", op, role, idx);
    if (!t->data && prt_shape_count(&t->shape) > 0)
        return prt_error(c->ctx, PRT_ERR_INVALID, "%s CUDA kernel: %s %d has no storage", op, role, idx);
    return PRT_OK;
}

/* All tensors f32 and contiguous, with the expected counts of inputs and
 * outputs (n_in_max < 0: no upper bound). */
static inline prt_status prt_cuk_check_f32(const prt_kernel_call *c, const char *op, int n_in_min, int n_in_max,
                                           int n_out) {
    if (c->n_in < n_in_min || (n_in_max >= 0 && c->n_in > n_in_max) || c->n_out != n_out)
        return prt_error(c->ctx, PRT_ERR_INTERNAL, "%s CUDA kernel: called with %d inputs and %d outputs", op,
                         c->n_in, c->n_out);
    for (int k = 0; k < c->n_in; k++) PRT_CHECK(prt_cuk_check_tensor(c, op, c->in[k], "input", k, PRT_F32));
    for (int k = 0; k < c->n_out; k++) PRT_CHECK(prt_cuk_check_tensor(c, op, c->out[k], "output", k, PRT_F32));
    return PRT_OK;
}

/* bf16 (scheduler/precision.c): all tensors f32, or all bf16 (the dtype of
 * output 0, else input 0, decides), contiguous, with the expected counts. */
static inline prt_status prt_cuk_check_float(const prt_kernel_call *c, const char *op, int n_in_min, int n_in_max,
                                             int n_out, prt_dtype *dt) {
    if (c->n_in < n_in_min || (n_in_max >= 0 && c->n_in > n_in_max) || c->n_out != n_out || c->n_in + c->n_out < 1)
        return prt_error(c->ctx, PRT_ERR_INTERNAL, "%s CUDA kernel: called with %d inputs and %d outputs", op,
                         c->n_in, c->n_out);
    *dt = c->n_out ? c->out[0]->dtype : c->in[0]->dtype;
    if (*dt != PRT_F32 && *dt != PRT_BF16)
        return prt_error(c->ctx, PRT_ERR_UNSUPPORTED, "%s CUDA kernel: %s tensors; f32 and bf16 are supported", op,
                         prt_dtype_name(*dt));
    for (int k = 0; k < c->n_in; k++) PRT_CHECK(prt_cuk_check_tensor(c, op, c->in[k], "input", k, *dt));
    for (int k = 0; k < c->n_out; k++) PRT_CHECK(prt_cuk_check_tensor(c, op, c->out[k], "output", k, *dt));
    return PRT_OK;
}

/* Storage types: kernels templated over T (float or __nv_bfloat16) load into
 * float, compute in float and round once when they store (to nearest even). */
static __device__ __forceinline__ float prt_cuk_ld(const float *p) { return *p; }
static __device__ __forceinline__ float prt_cuk_ld(const __nv_bfloat16 *p) { return __bfloat162float(*p); }
static __device__ __forceinline__ void prt_cuk_st(float *p, float v) { *p = v; }
static __device__ __forceinline__ void prt_cuk_st(__nv_bfloat16 *p, float v) { *p = __float2bfloat16_rn(v); }

/* Runs the statements with T the storage type of dtype dt. */
#define PRT_CUK_DISPATCH(dt, T, ...)  \
    do {                              \
        if ((dt) == PRT_BF16) {       \
            typedef __nv_bfloat16 T;  \
            __VA_ARGS__;              \
        } else {                      \
            typedef float T;          \
            __VA_ARGS__;              \
        }                             \
    } while (0)

/* Inputs [0, n) have output 0's element count (shapes checked by inference;
 * a kernel called directly by a test has not been). */
static inline prt_status prt_cuk_check_same_count(const prt_kernel_call *c, const char *op, int n) {
    int64_t want = prt_shape_count(&c->out[0]->shape);
    for (int k = 0; k < n; k++) {
        if (prt_shape_count(&c->in[k]->shape) == want) continue;
        char a[160], b[160];
        prt_shape_str(&c->in[k]->shape, a, sizeof a);
        prt_shape_str(&c->out[0]->shape, b, sizeof b);
        return prt_error(c->ctx, PRT_ERR_SHAPE, "%s CUDA kernel: input %d is %s but the output is %s", op, k, a, b);
    }
    return PRT_OK;
}

/* Grid-stride launches: enough blocks to fill the GPU many times over, each
 * thread looping over the rest (64-bit indices: tensors reach 2^40 elements). */
#define PRT_CUK_THREADS 256
static inline unsigned prt_cuk_blocks(int64_t n) {
    int64_t b = (n + PRT_CUK_THREADS - 1) / PRT_CUK_THREADS;
    if (b < 1) b = 1;
    return (unsigned)(b < 65536 ? b : 65536);
}
#define PRT_CUK_FOR(i, n) \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

#endif

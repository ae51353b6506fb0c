/* The CUDA kernel of `cast` (ops/op_cast.c): f32 <-> bf16 with the very
 * conversions of ops/bf16.h that the CPU kernel runs, so both devices agree bit
 * for bit (round to nearest even, NaN kept NaN, denormals kept). */
#include "ops/cuda/cuda_kern.cuh"
#include "ops/bf16.h"

__global__ void cast_f32_bf16_k(const float *x, uint16_t *y, int64_t n) {
    PRT_CUK_FOR(i, n) y[i] = prt_bf16_from_f32(x[i]);
}

__global__ void cast_bf16_f32_k(const uint16_t *x, float *y, int64_t n) {
    PRT_CUK_FOR(i, n) y[i] = prt_bf16_to_f32(x[i]);
}

static bool cast_dtype_ok(prt_dtype t) { return t == PRT_F32 || t == PRT_BF16; }

extern "C" prt_status prt_cuda_cast(const prt_kernel_call *c) {
    if (c->n_in != 1 || c->n_out != 1)
        return prt_error(c->ctx, PRT_ERR_INTERNAL, "cast CUDA kernel: called with %d inputs and %d outputs", c->n_in,
                         c->n_out);
    const prt_tensor *x = c->in[0], *y = c->out[0];
    if (!cast_dtype_ok(x->dtype) || !cast_dtype_ok(y->dtype))
        return prt_error(c->ctx, PRT_ERR_UNSUPPORTED, "cast CUDA kernel: %s to %s; only f32 and bf16 are cast",
                         prt_dtype_name(x->dtype), prt_dtype_name(y->dtype));
    PRT_CHECK(prt_cuk_check_tensor(c, "cast", x, "input", 0, x->dtype));
    PRT_CHECK(prt_cuk_check_tensor(c, "cast", y, "output", 0, y->dtype));
    PRT_CHECK(prt_cuk_check_same_count(c, "cast", 1));
    int64_t n = prt_shape_count(&x->shape);
    if (n == 0) return PRT_OK;
    if (x->dtype == y->dtype) {
        if (x->data != y->data)
            PRT_CUK_CHECK(c->ctx, "cast",
                          cudaMemcpyAsync(y->data, x->data, (size_t)n * prt_dtype_size(x->dtype),
                                          cudaMemcpyDeviceToDevice, prt_cuk_stream(c)));
        return PRT_OK;
    }
    if (x->dtype == PRT_F32) {
        cast_f32_bf16_k<<<prt_cuk_blocks(n), PRT_CUK_THREADS, 0, prt_cuk_stream(c)>>>(
            (const float *)x->data, (uint16_t *)y->data, n);
        PRT_CUK_LAUNCHED(c->ctx, "cast", "cast_f32_bf16_k");
    } else {
        cast_bf16_f32_k<<<prt_cuk_blocks(n), PRT_CUK_THREADS, 0, prt_cuk_stream(c)>>>(
            (const uint16_t *)x->data, (float *)y->data, n);
        PRT_CUK_LAUNCHED(c->ctx, "cast", "cast_bf16_f32_k");
    }
    return PRT_OK;
}

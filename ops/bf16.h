/* bf16 <-> f32 conversions, written once as __host__ __device__ code: the CPU
 * kernel of `cast` (ops/op_cast.c), the CUDA kernel (ops/cuda/cast.cu) and
 * tests/test_cast.c all run these very functions, so the two devices agree bit
 * for bit and the host test covers what the GPU computes.
 *
 * bf16 is the upper half of an f32: sign, the same 8 exponent bits, 7 stored
 * mantissa bits. f32 -> bf16 rounds to nearest, ties to even (the IEEE default
 * and what __float2bfloat16_rn does), overflowing to infinity as IEEE rounding
 * does; denormals stay denormals (no flush to zero); a NaN stays a NaN of the
 * same sign, made quiet (rounding its payload could otherwise carry into the
 * exponent and give an infinity, or drop every payload bit and give one).
 * bf16 -> f32 is exact.
 *
 *     uint16_t h = prt_bf16_from_f32(1.0f / 3.0f);   // 0x3eab
 *     float f = prt_bf16_to_f32(h);                  // 0.333984375
 *
 * Plain C11 and CUDA C++ alike. */
#ifndef PARROTS_OPS_BF16_H
#define PARROTS_OPS_BF16_H

#include <stdint.h>
#include <string.h>

#if defined(__CUDACC__)
#define PRT_BF16_HD static __host__ __device__ __forceinline__
#else
#define PRT_BF16_HD static inline
#endif

PRT_BF16_HD uint32_t prt_f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

PRT_BF16_HD float prt_f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

PRT_BF16_HD uint16_t prt_bf16_from_f32(float f) {
    uint32_t u = prt_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u); /* quiet NaN, sign kept */
    /* add half an ulp of bf16, less one unless the kept part is odd: ties go to even */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

PRT_BF16_HD float prt_bf16_to_f32(uint16_t h) { return prt_f32_from_bits((uint32_t)h << 16); }

#endif

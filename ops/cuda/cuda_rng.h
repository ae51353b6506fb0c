/* Dropout's random stream for the CUDA kernels: Philox4x32-10 and the
 * data-parallel counter, written once as __host__ __device__ code so the very
 * function the GPU runs is also compiled for the host, where
 * tests/test_cuda_rng.c checks it against runtime/rng.c (prt_rng_uniform) and
 * ops/ops_util.h (prt_dropout_counter) without a GPU.
 *
 *     prt_cuda_ctr k = {base, per, stride, offset};   // from prt_dropout_counters()
 *     float u = prt_cuda_uniform(key, prt_cuda_dropout_counter(&k, i));
 *
 * Plain C11 and CUDA C++ alike: no C-only or C++-only constructs. */
#ifndef PARROTS_OPS_CUDA_RNG_H
#define PARROTS_OPS_CUDA_RNG_H

#include <stdint.h>

#if defined(__CUDACC__)
#define PRT_CUDA_HD static __host__ __device__ __forceinline__
#else
#define PRT_CUDA_HD static inline
#endif

/* One Philox4x32-10 block; out[0] of counter (hi, lo) under `key`. The
 * multiplier and Weyl constants are those of Salmon et al. (SC'11), as in
 * runtime/rng.c. Only the first word is used by uniforms. */
PRT_CUDA_HD uint32_t prt_cuda_philox_w0(uint64_t key, uint64_t counter_hi, uint64_t counter_lo) {
    uint32_t c0 = (uint32_t)counter_lo, c1 = (uint32_t)(counter_lo >> 32);
    uint32_t c2 = (uint32_t)counter_hi, c3 = (uint32_t)(counter_hi >> 32);
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
        c0 = n0;
        c2 = n2;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return c0;
}

/* Uniform in [0, 1) with 24 random bits: bit for bit prt_rng_uniform(key, i). */
PRT_CUDA_HD float prt_cuda_uniform(uint64_t key, uint64_t i) {
    return (float)(prt_cuda_philox_w0(key, 0, i) >> 8) * (1.0f / 16777216.0f);
}

/* prt_dropout_ctr (ops/ops_util.h) with the same meaning. */
typedef struct prt_cuda_ctr {
    uint64_t base;
    int64_t per, stride, offset;
} prt_cuda_ctr;

/* The counter of element i: equals prt_dropout_counter(k, i). */
PRT_CUDA_HD uint64_t prt_cuda_dropout_counter(const prt_cuda_ctr *k, int64_t i) {
    if (k->stride == 1) return k->base + (uint64_t)i;
    int64_t j = i / k->per;
    return k->base + ((uint64_t)j * (uint64_t)k->stride + (uint64_t)k->offset) * (uint64_t)k->per +
           (uint64_t)(i - j * k->per);
}

/* Element i's multiplier: 0 (dropped) or keep_scale, as the CPU kernels. */
PRT_CUDA_HD float prt_cuda_dropout_mult(uint64_t key, const prt_cuda_ctr *k, int64_t i, float p, float keep_scale) {
    return prt_cuda_uniform(key, prt_cuda_dropout_counter(k, i)) < p ? 0.0f : keep_scale;
}

#endif

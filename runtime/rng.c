/* Counter-based random numbers: Philox4x32-10 (Salmon et al., SC'11). A number
 * depends only on (key, counter), so any split of the work over threads or ranks
 * draws the same values. */
#include "runtime/runtime_impl.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static inline uint32_t mulhilo(uint32_t a, uint32_t b, uint32_t *hi) {
    uint64_t p = (uint64_t)a * b;
    *hi = (uint32_t)(p >> 32);
    return (uint32_t)p;
}

void prt_philox4x32(uint64_t key, uint64_t counter_hi, uint64_t counter_lo, uint32_t out[4]) {
    uint32_t c0 = (uint32_t)counter_lo, c1 = (uint32_t)(counter_lo >> 32);
    uint32_t c2 = (uint32_t)counter_hi, c3 = (uint32_t)(counter_hi >> 32);
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int r = 0; r < 10; r++) {
        uint32_t hi0, hi1;
        uint32_t lo0 = mulhilo(PHILOX_M0, c0, &hi0);
        uint32_t lo1 = mulhilo(PHILOX_M1, c2, &hi1);
        uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
        c0 = n0, c1 = n1, c2 = n2, c3 = n3;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

/* 24 random bits give every float in [0,1) with spacing 2^-24. */
static inline float u32_to_unit(uint32_t x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }

float prt_rng_uniform(uint64_t key, uint64_t i) {
    uint32_t r[4];
    prt_philox4x32(key, 0, i, r);
    return u32_to_unit(r[0]);
}

float prt_rng_normal(uint64_t key, uint64_t i) {
    uint32_t r[4];
    prt_philox4x32(key, 1, i, r);
    /* u1 in (0,1] so the log is finite */
    double u1 = ((double)(r[0] >> 8) + 1.0) / 16777216.0;
    double u2 = (double)(r[1] >> 8) / 16777216.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void prt_rng_fill_uniform(uint64_t key, float *dst, int64_t n, float lo, float hi) {
    for (int64_t i = 0; i < n; i++) dst[i] = lo + (hi - lo) * prt_rng_uniform(key, (uint64_t)i);
}

void prt_rng_fill_normal(uint64_t key, float *dst, int64_t n, float mean, float std) {
    for (int64_t i = 0; i < n; i++) dst[i] = mean + std * prt_rng_normal(key, (uint64_t)i);
}

uint64_t prt_hash_str(const char *s, uint64_t seed) {
    uint64_t h = 0xcbf29ce484222325ull ^ seed;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    /* final avalanche so nearby names give unrelated keys */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

/* The FMA-throughput kernel behind bench/cpu_peak.c, shared with the benches
 * that quote efficiency against the measured peak (bench/conv.c).
 *
 * Zen 3/4 issue two 256-bit FMAs per cycle with a 4-cycle latency, so at least 8
 * independent accumulator chains are needed to fill both pipes; 12 leaves slack
 * without spilling the 16 ymm registers (12 accumulators + 2 operands). */
#ifndef PARROTS_BENCH_FMA_PEAK_H
#define PARROTS_BENCH_FMA_PEAK_H

#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <time.h>

#define PEAK_CHAINS 12
#define PEAK_INNER 1000 /* FMA rounds per loop iteration */

static double peak_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Runs iters×PEAK_INNER rounds of PEAK_CHAINS independent FMAs; returns a value that
 * depends on every chain so the compiler cannot drop the work. */
__attribute__((noinline)) static float fma_kernel(int64_t iters, float seed) {
    __m256 acc[PEAK_CHAINS];
    for (int k = 0; k < PEAK_CHAINS; k++) acc[k] = _mm256_set1_ps(seed + (float)k * 1e-3f);
    /* a*x + b with a slightly below 1 keeps the values bounded forever */
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    for (int64_t it = 0; it < iters; it++) {
        for (int r = 0; r < PEAK_INNER; r++) {
#define F(k) acc[k] = _mm256_fmadd_ps(acc[k], a, b)
            F(0); F(1); F(2); F(3); F(4); F(5); F(6); F(7); F(8); F(9); F(10); F(11);
#undef F
        }
        /* keeps the inner loop's registers from being rotated through memory */
        __asm__ volatile("" : "+x"(acc[0]), "+x"(acc[1]), "+x"(acc[2]), "+x"(acc[3]));
    }
    __m256 s = acc[0];
    for (int k = 1; k < PEAK_CHAINS; k++) s = _mm256_add_ps(s, acc[k]);
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0] + out[7];
}

static inline double peak_flops_per_iter(void) { return (double)PEAK_INNER * PEAK_CHAINS * 8 * 2; }

/* GFLOP/s over `threads` threads, each running the same number of iterations;
 * best of 5 repetitions of about `seconds` each. */
static double fma_peak_gflops(int threads, double seconds, float *sink) {
    /* calibrate on one thread */
    int64_t iters = 1000;
    for (;;) {
        double t0 = peak_now_s();
        *sink += fma_kernel(iters, *sink);
        double dt = peak_now_s() - t0;
        if (dt > 0.05) {
            iters = (int64_t)((double)iters * seconds / dt) + 1;
            break;
        }
        iters *= 4;
    }
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        float part = 0;
        double t0 = peak_now_s();
#pragma omp parallel num_threads(threads) reduction(+ : part)
        part += fma_kernel(iters, (float)omp_get_thread_num());
        double dt = peak_now_s() - t0;
        *sink += part;
        double g = peak_flops_per_iter() * (double)iters * threads / dt * 1e-9;
        if (g > best) best = g;
    }
    return best;
}

#endif

/* Measures this machine's fp32 peak: FMA throughput with AVX2 intrinsics on one
 * thread and on all (or -t N) threads, the figure conv and GEMM efficiency is
 * quoted against in bench/RESULTS.md.
 *
 *     cpu_peak            # 1 thread and omp_get_max_threads() threads
 *     cpu_peak -t 2 -s 1  # 2 threads, about 1 s per measurement
 *
 * Zen 3/4 issue two 256-bit FMAs per cycle with a 4-cycle latency, so at least 8
 * independent accumulator chains are needed to fill both pipes; 12 leaves slack
 * without spilling the 16 ymm registers (12 accumulators + 2 operands). */
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHAINS 12
#define INNER 1000 /* FMA rounds per loop iteration */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Runs iters×INNER rounds of CHAINS independent FMAs; returns a value that
 * depends on every chain so the compiler cannot drop the work. */
__attribute__((noinline)) static float fma_kernel(int64_t iters, float seed) {
    __m256 acc[CHAINS];
    for (int k = 0; k < CHAINS; k++) acc[k] = _mm256_set1_ps(seed + (float)k * 1e-3f);
    /* a*x + b with a slightly below 1 keeps the values bounded forever */
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    for (int64_t it = 0; it < iters; it++) {
        for (int r = 0; r < INNER; r++) {
#define F(k) acc[k] = _mm256_fmadd_ps(acc[k], a, b)
            F(0); F(1); F(2); F(3); F(4); F(5); F(6); F(7); F(8); F(9); F(10); F(11);
#undef F
        }
        /* keeps the inner loop's registers from being rotated through memory */
        __asm__ volatile("" : "+x"(acc[0]), "+x"(acc[1]), "+x"(acc[2]), "+x"(acc[3]));
    }
    __m256 s = acc[0];
    for (int k = 1; k < CHAINS; k++) s = _mm256_add_ps(s, acc[k]);
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0] + out[7];
}

static double flops_per_iter(void) { return (double)INNER * CHAINS * 8 * 2; }

/* GFLOP/s over `threads` threads, each running the same number of iterations;
 * best of 5 repetitions of about `seconds` each. */
static double measure(int threads, double seconds, float *sink) {
    /* calibrate on one thread */
    int64_t iters = 1000;
    for (;;) {
        double t0 = now_s();
        *sink += fma_kernel(iters, *sink);
        double dt = now_s() - t0;
        if (dt > 0.05) {
            iters = (int64_t)((double)iters * seconds / dt) + 1;
            break;
        }
        iters *= 4;
    }
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        float part = 0;
        double t0 = now_s();
#pragma omp parallel num_threads(threads) reduction(+ : part)
        part += fma_kernel(iters, (float)omp_get_thread_num());
        double dt = now_s() - t0;
        *sink += part;
        double g = flops_per_iter() * (double)iters * threads / dt * 1e-9;
        if (g > best) best = g;
    }
    return best;
}

int main(int argc, char **argv) {
    int threads = omp_get_max_threads();
    double seconds = 0.5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-s") && i + 1 < argc) seconds = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [-t threads] [-s seconds]\n", argv[0]);
            return 2;
        }
    }
    if (threads < 1 || seconds <= 0) {
        fprintf(stderr, "cpu_peak: threads must be >= 1 and seconds > 0\n");
        return 2;
    }
    float sink = 0;
    double one = measure(1, seconds, &sink);
    /* 32 FLOP/cycle/core: 2 FMA pipes x 8 floats x 2 */
    printf("fp32 peak, 1 thread : %7.1f GFLOP/s (%.2f GHz at 32 FLOP/cycle)\n", one, one / 32);
    if (threads > 1) {
        double all = measure(threads, seconds, &sink);
        printf("fp32 peak, %d threads: %7.1f GFLOP/s (%.2f GHz per core at 32 FLOP/cycle)\n",
               threads, all, all / 32 / threads);
    }
    if (sink == 12345.678f) printf(" \n"); /* keeps the work observable */
    return 0;
}

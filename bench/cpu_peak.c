/* Measures this machine's fp32 peak: FMA throughput with AVX2 intrinsics on one
 * thread and on all (or -t N) threads, the figure conv and GEMM efficiency is
 * quoted against in bench/RESULTS.md.
 *
 *     cpu_peak            # 1 thread and omp_get_max_threads() threads
 *     cpu_peak -t 2 -s 1  # 2 threads, about 1 s per measurement
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/fma_peak.h"

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
    double one = fma_peak_gflops(1, seconds, &sink);
    /* 32 FLOP/cycle/core: 2 FMA pipes x 8 floats x 2 */
    printf("fp32 peak, 1 thread : %7.1f GFLOP/s (%.2f GHz at 32 FLOP/cycle)\n", one, one / 32);
    if (threads > 1) {
        double all = fma_peak_gflops(threads, seconds, &sink);
        printf("fp32 peak, %d threads: %7.1f GFLOP/s (%.2f GHz per core at 32 FLOP/cycle)\n",
               threads, all, all / 32 / threads);
    }
    if (sink == 12345.678f) printf(" \n"); /* keeps the work observable */
    return 0;
}

/* The convolution layers the conv benchmarks time (bench/conv.c forward,
 * bench/conv_bwd.c backward): the target layer and PolyNet-shaped ones,
 * plus the helpers both programs use. */
#ifndef PARROTS_BENCH_CONV_LAYERS_H
#define PARROTS_BENCH_CONV_LAYERS_H

#include <stdlib.h>

#include "bench/fma_peak.h"
#include "ops/ops_impl.h"

typedef struct layer {
    const char *name;
    int64_t n, c, h, w, o, kh, kw, stride, pad[4];
} layer;

static const layer layers[] = {
    {"3x3 256->256 56x56 (target)", 8, 256, 56, 56, 256, 3, 3, 1, {1, 1, 1, 1}},
    {"stem 3x3 32->64 147x147", 8, 32, 147, 147, 64, 3, 3, 1, {1, 1, 1, 1}},
    {"A 3x3 32->48 35x35", 8, 32, 35, 35, 48, 3, 3, 1, {1, 1, 1, 1}},
    {"A 1x1 384->32 35x35", 8, 384, 35, 35, 32, 1, 1, 1, {0, 0, 0, 0}},
    {"B 1x1 1152->128 17x17", 8, 1152, 17, 17, 128, 1, 1, 1, {0, 0, 0, 0}},
    {"B 1x7 128->160 17x17", 8, 128, 17, 17, 160, 1, 7, 1, {0, 3, 0, 3}},
    {"B 7x1 160->192 17x17", 8, 160, 17, 17, 192, 7, 1, 1, {3, 0, 3, 0}},
    {"red-A 3x3/2 256->384 35x35", 8, 256, 35, 35, 384, 3, 3, 2, {0, 0, 0, 0}},
    {"red-B 3x3/2 256->288 17x17", 8, 256, 17, 17, 288, 3, 3, 2, {0, 0, 0, 0}},
    {"C 1x1 2048->192 8x8", 8, 2048, 8, 8, 192, 1, 1, 1, {0, 0, 0, 0}},
    {"C 1x3 192->224 8x8", 8, 192, 8, 8, 224, 1, 3, 1, {0, 1, 0, 1}},
    {"C 3x1 224->256 8x8", 8, 224, 8, 8, 256, 3, 1, 1, {1, 0, 1, 0}},
};

static inline int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static inline prt_attr ints(int n, const int64_t *v) {
    prt_attr a = {.type = PRT_ATTR_INTS, .set = true, .n = n};
    for (int k = 0; k < n; k++) a.i[k] = v[k];
    return a;
}


/* Measures the fp32 peak with `threads` threads and prints it. */
static inline double bench_measure_peak(int threads) {
    float sink = 0;
    double peak = fma_peak_gflops(threads, 0.5, &sink);
    if (sink == 12345.678f) printf(" \n"); /* keeps the FMA chains' result alive */
    printf("fp32 peak with %d thread%s: %.1f GFLOP/s (FMA throughput, measured)\n", threads, threads > 1 ? "s" : "",
           peak);
    return peak;
}

#endif

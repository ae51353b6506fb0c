/* Times the conv fast path (oneDNN) on the 3x3 256->256 56x56 batch-8 layer and
 * a few PolyNet-shaped layers, in the layout the kernel picks and in both
 * forced layouts, and quotes GFLOP/s and the share of the machine's fp32 peak
 * measured in the same process with the same thread count.
 *
 *     conv                  # 2 threads (or OMP_NUM_THREADS), 15 timed runs
 *     conv -t 1 -n 20       # 1 thread, 20 timed runs
 *     conv -p 196.0         # skip the peak measurement, use this GFLOP/s
 *
 * Each figure is the median of the timed runs after 3 warm-up runs; a run is
 * one kernel call including the reorders to and from oneDNN's blocked layout
 * (the weights are reordered every call too: they change every step). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/conv_layers.h"
#include "bench/fma_peak.h"
#include "ops/dnnl_util.h"


/* Median seconds per call for one layer and layout; impl/blocked report what ran. */
static double time_layer(prt_context *ctx, const prt_op_schema *conv, const layer *L, int layout, int runs,
                         const char **impl, bool *blocked) {
    int64_t oh = (L->h + L->pad[0] + L->pad[2] - L->kh) / L->stride + 1;
    int64_t ow = (L->w + L->pad[1] + L->pad[3] - L->kw) / L->stride + 1;
    prt_attr attrs[7] = {
        {.type = PRT_ATTR_INT, .set = true, .n = 1, .i = {L->o}},
        ints(2, (int64_t[]){L->kh, L->kw}),
        ints(1, &L->stride),
        ints(4, L->pad),
        ints(1, (int64_t[]){1}),
        {.type = PRT_ATTR_INT, .n = 1, .i = {1}},
        {.type = PRT_ATTR_BOOL, .set = true, .n = 1, .i = {0}},
    };
    prt_shape xs = prt_shape4(L->n, L->c, L->h, L->w), ws = prt_shape4(L->o, L->c, L->kh, L->kw);
    prt_shape ys = prt_shape4(L->n, L->o, oh, ow);
    prt_tensor x, w, y;
    prt_device *dev = prt_cpu_device(ctx);
    if (prt_tensor_alloc(ctx, dev, PRT_F32, &xs, &x) || prt_tensor_alloc(ctx, dev, PRT_F32, &ws, &w) ||
        prt_tensor_alloc(ctx, dev, PRT_F32, &ys, &y)) {
        fprintf(stderr, "conv: %s\n", prt_last_error(ctx));
        exit(1);
    }
    prt_rng_fill_uniform(1, PRT_F32P(&x), prt_shape_count(&xs), -1, 1);
    prt_rng_fill_uniform(2, PRT_F32P(&w), prt_shape_count(&ws), -0.05f, 0.05f);
    const prt_tensor *in[2] = {&x, &w};
    prt_tensor *out[1] = {&y};
    prt_kernel_call c = {.ctx = ctx, .attrs = attrs, .n_in = 2, .in = in, .n_out = 1, .out = out};
    void *state = NULL;
    /* no workspace passed: the kernel allocates the reorder buffers itself,
     * once, as a memory plan would provide them */
    if (prt_conv_prepare_layout(&c, layout, &state) != PRT_OK) {
        fprintf(stderr, "conv: %s\n", prt_last_error(ctx));
        exit(1);
    }
    *impl = prt_conv_state_impl(state, blocked);
    c.state = state;
    double *t = malloc((size_t)runs * sizeof(double));
    for (int r = -3; r < runs; r++) {
        double t0 = prt_now();
        if (conv->fast.run(&c) != PRT_OK) {
            fprintf(stderr, "conv: %s\n", prt_last_error(ctx));
            exit(1);
        }
        if (r >= 0) t[r] = prt_now() - t0;
    }
    qsort(t, (size_t)runs, sizeof(double), cmp_double);
    double med = runs % 2 ? t[runs / 2] : 0.5 * (t[runs / 2 - 1] + t[runs / 2]);
    free(t);
    conv->fast.release(state);
    prt_tensor_release(ctx, &x);
    prt_tensor_release(ctx, &w);
    prt_tensor_release(ctx, &y);
    return med;
}

int main(int argc, char **argv) {
    int threads = 2, runs = 15;
    double peak = 0;
    const char *env = getenv("OMP_NUM_THREADS");
    if (env && atoi(env) > 0) threads = atoi(env);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-n") && i + 1 < argc) runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-p") && i + 1 < argc) peak = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [-t threads] [-n runs] [-p peak_gflops]\n", argv[0]);
            return 2;
        }
    }
    if (threads < 1 || runs < 1) {
        fprintf(stderr, "conv: threads and runs must be >= 1\n");
        return 2;
    }
    prt_context_options o = {.struct_size = sizeof o, .log_level = PRT_LOG_WARN, .num_threads = threads};
    prt_context *ctx;
    if (prt_context_create(&o, &ctx) != PRT_OK) return 1;
    omp_set_num_threads(threads);
    bool measured_peak = peak <= 0;
    if (measured_peak) peak = bench_measure_peak(threads);
    printf("median of %d runs after 3 warm-up runs; batch 8, no bias; GFLOP/s (%% of peak)\n\n", runs);
    printf("%-30s %-22s %-18s %-18s %s\n", "layer", "chosen", "plain NCHW (GEMM)", "blocked+reorders", "impl (chosen)");
    const prt_op_schema *conv = prt_op_find(ctx->ops, "conv", NULL);
    for (size_t k = 0; k < sizeof layers / sizeof layers[0]; k++) {
        const layer *L = &layers[k];
        int64_t oh = (L->h + L->pad[0] + L->pad[2] - L->kh) / L->stride + 1;
        int64_t ow = (L->w + L->pad[1] + L->pad[3] - L->kw) / L->stride + 1;
        double flops = 2.0 * (double)(L->n * L->o * oh * ow) * (double)(L->c * L->kh * L->kw);
        const char *impl, *dummy;
        bool blocked, b2;
        double ta = time_layer(ctx, conv, L, PRT_CONV_AUTO, runs, &impl, &blocked);
        double tp = time_layer(ctx, conv, L, PRT_CONV_PLAIN, runs, &dummy, &b2);
        double tb = time_layer(ctx, conv, L, PRT_CONV_BLOCKED, runs, &dummy, &b2);
        char a[64], p[64], b[64];
        snprintf(a, sizeof a, "%6.1f (%4.1f%%) %s", flops / ta * 1e-9, 100 * flops / ta * 1e-9 / peak,
                 blocked ? "B" : "P");
        snprintf(p, sizeof p, "%6.1f (%4.1f%%)", flops / tp * 1e-9, 100 * flops / tp * 1e-9 / peak);
        snprintf(b, sizeof b, "%6.1f (%4.1f%%)", flops / tb * 1e-9, 100 * flops / tb * 1e-9 / peak);
        printf("%-30s %-22s %-18s %-18s %s\n", L->name, a, p, b, impl);
        fflush(stdout);
    }
    if (measured_peak) {
        /* the machine may be shared: a peak that moved means the figures above
         * were taken while something else ran */
        float sink = 0;
        double after = fma_peak_gflops(threads, 0.5, &sink);
        if (sink == 12345.678f) printf(" \n");
        printf("\nfp32 peak re-measured after the runs: %.1f GFLOP/s (%+.1f%%)%s\n", after, 100 * (after / peak - 1),
               fabs(after / peak - 1) > 0.05 ? "  WARNING: the machine was busy, figures are unreliable" : "");
    }
    prt_context_destroy(ctx);
    return 0;
}

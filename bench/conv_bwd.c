/* Times the convolution backward fast paths (oneDNN convolution_backward_data
 * and convolution_backward_weights, ops/conv_bwd.c) on the 3x3 256->256 56x56
 * batch-8 layer and PolyNet-shaped layers, in the layout the kernel picks and
 * in both forced layouts, next to the forward conv's chosen path, and quotes
 * GFLOP/s and the share of the fp32 peak measured in the same process.
 *
 *     conv_bwd              # 2 threads (or OMP_NUM_THREADS), 9 timed runs, all layers
 *     conv_bwd -q           # the 256->256 layer only
 *     conv_bwd -l 17x17     # the layers whose name contains "17x17"
 *     conv_bwd -t 1 -n 5 -p 100.0
 *
 * Each figure is the median of the timed runs after 2 warm-up runs, next to the
 * fastest run; a run is one kernel call including the reorders to and from the
 * blocked layout. The variants of a layer take turns run by run, so that load
 * from other processes on a shared machine falls on all of them alike. Both
 * directions do as many FLOPs as the forward conv (2 per multiply-add). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/conv_layers.h"
#include "bench/fma_peak.h"
#include "ops/bwd_util.h"


static void die(prt_context *ctx) {
    fprintf(stderr, "conv_bwd: %s\n", prt_last_error(ctx));
    exit(1);
}

enum { DIR_FWD = -1 };

/* One timed kernel: a direction (DIR_FWD or a prt_conv_bwd_kind) in a layout,
 * prepared over the layer's shared tensors. */
typedef struct variant {
    int dir, layout;
    const prt_op_schema *op;
    prt_kernel_call c;
    const prt_tensor *in[3];
    prt_tensor *out[1];
    const char *impl;
    bool blocked;
    double *t;
} variant;

typedef struct tensors {
    prt_attr attrs[PRT_CONV_N_ATTRS];
    prt_tensor x, w, y;
    double flops;
} tensors;

static void tensors_make(prt_context *ctx, const layer *L, tensors *T) {
    int64_t oh = (L->h + L->pad[0] + L->pad[2] - L->kh) / L->stride + 1;
    int64_t ow = (L->w + L->pad[1] + L->pad[3] - L->kw) / L->stride + 1;
    prt_attr attrs[PRT_CONV_N_ATTRS] = {
        [PRT_CONV_A_OUT] = {.type = PRT_ATTR_INT, .set = true, .n = 1, .i = {L->o}},
        [PRT_CONV_A_KERNEL] = ints(2, (int64_t[]){L->kh, L->kw}),
        [PRT_CONV_A_STRIDE] = ints(1, &L->stride),
        [PRT_CONV_A_PAD] = ints(4, L->pad),
        [PRT_CONV_A_DILATION] = ints(1, (int64_t[]){1}),
        [PRT_CONV_A_GROUPS] = {.type = PRT_ATTR_INT, .n = 1, .i = {1}},
        [PRT_CONV_A_BIAS] = {.type = PRT_ATTR_BOOL, .set = true, .n = 1, .i = {0}},
    };
    memcpy(T->attrs, attrs, sizeof attrs);
    prt_shape xs = prt_shape4(L->n, L->c, L->h, L->w), ws = prt_shape4(L->o, L->c, L->kh, L->kw);
    prt_shape ys = prt_shape4(L->n, L->o, oh, ow);
    prt_device *dev = prt_cpu_device(ctx);
    if (prt_tensor_alloc(ctx, dev, PRT_F32, &xs, &T->x) || prt_tensor_alloc(ctx, dev, PRT_F32, &ws, &T->w) ||
        prt_tensor_alloc(ctx, dev, PRT_F32, &ys, &T->y))
        die(ctx);
    prt_rng_fill_uniform(1, PRT_F32P(&T->x), prt_shape_count(&xs), -1, 1);
    prt_rng_fill_uniform(2, PRT_F32P(&T->w), prt_shape_count(&ws), -0.05f, 0.05f);
    prt_rng_fill_uniform(3, PRT_F32P(&T->y), prt_shape_count(&ys), -1, 1);
    T->flops = 2.0 * (double)(L->n * L->o * oh * ow) * (double)(L->c * L->kh * L->kw);
}

static void tensors_free(prt_context *ctx, tensors *T) {
    prt_tensor_release(ctx, &T->x);
    prt_tensor_release(ctx, &T->w);
    prt_tensor_release(ctx, &T->y);
}

static void variant_prepare(prt_context *ctx, tensors *T, int dir, int layout, int runs, variant *v) {
    memset(v, 0, sizeof *v);
    v->dir = dir;
    v->layout = layout;
    /* forward (x, w) -> y; data (dy, w, x) -> dx; weight (dy, x, w) -> dw.
     * Outputs overwrite the shared tensors: only the time matters here. */
    int n_in = 3;
    if (dir == DIR_FWD) {
        v->in[0] = &T->x, v->in[1] = &T->w, v->out[0] = &T->y, n_in = 2;
    } else if (dir == PRT_CONV_BWD_DATA) {
        v->in[0] = &T->y, v->in[1] = &T->w, v->in[2] = &T->x, v->out[0] = &T->x;
    } else {
        v->in[0] = &T->y, v->in[1] = &T->x, v->in[2] = &T->w, v->out[0] = &T->w;
    }
    v->c = (prt_kernel_call){.ctx = ctx, .attrs = T->attrs, .n_in = n_in, .in = v->in, .n_out = 1, .out = v->out};
    void *state = NULL;
    /* no workspace passed: the kernel allocates its reorder buffers once, as a
     * memory plan would provide them */
    prt_status st = dir == DIR_FWD ? prt_conv_prepare_layout(&v->c, layout, &state)
                                   : prt_conv_bwd_prepare_layout(&v->c, (prt_conv_bwd_kind)dir, layout, &state);
    if (st != PRT_OK) die(ctx);
    if (dir == DIR_FWD) {
        v->impl = prt_conv_state_impl(state, &v->blocked);
    } else {
        const prt_dnnl_prim *s = state;
        v->impl = s->impl;
        v->blocked = s->reordered;
    }
    v->c.state = state;
    v->op = prt_op_find(ctx->ops,
                        dir == DIR_FWD               ? "conv"
                        : dir == PRT_CONV_BWD_DATA ? "conv_bwd_data"
                                                     : "conv_bwd_weight",
                        NULL);
    v->t = malloc((size_t)runs * sizeof(double));
}

static void variant_run(prt_context *ctx, variant *v, int r) {
    double t0 = prt_now();
    if (v->op->fast.run(&v->c) != PRT_OK) die(ctx);
    if (r >= 0) v->t[r] = prt_now() - t0;
}

/* Median and minimum seconds per call. */
static void variant_stats(variant *v, int runs, double *med, double *min) {
    qsort(v->t, (size_t)runs, sizeof(double), cmp_double);
    *med = runs % 2 ? v->t[runs / 2] : 0.5 * (v->t[runs / 2 - 1] + v->t[runs / 2]);
    *min = v->t[0];
    v->op->fast.release(v->c.state);
    free(v->t);
}

/* "median (% of peak) / min-time figure" */
static void cell(char *buf, size_t cap, double flops, double med, double min, double peak) {
    snprintf(buf, cap, "%5.1f (%2.0f%%) %5.1f", flops / med * 1e-9, 100 * flops / med * 1e-9 / peak,
             flops / min * 1e-9);
}

int main(int argc, char **argv) {
    int threads = 2, runs = 9;
    bool quick = false;
    const char *only = NULL;
    double peak = 0;
    const char *env = getenv("OMP_NUM_THREADS");
    if (env && atoi(env) > 0) threads = atoi(env);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-n") && i + 1 < argc) runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-p") && i + 1 < argc) peak = atof(argv[++i]);
        else if (!strcmp(argv[i], "-q")) quick = true;
        else if (!strcmp(argv[i], "-l") && i + 1 < argc) only = argv[++i];
        else {
            fprintf(stderr, "usage: %s [-t threads] [-n runs] [-p peak_gflops] [-q] [-l name-part]\n", argv[0]);
            return 2;
        }
    }
    if (threads < 1 || runs < 1) {
        fprintf(stderr, "conv_bwd: threads and runs must be >= 1\n");
        return 2;
    }
    prt_context_options o = {.struct_size = sizeof o, .log_level = PRT_LOG_WARN, .num_threads = threads};
    prt_context *ctx;
    if (prt_context_create(&o, &ctx) != PRT_OK) return 1;
    omp_set_num_threads(threads);
    bool measured_peak = peak <= 0;
    if (measured_peak) peak = bench_measure_peak(threads);
    printf("batch 8; GFLOP/s of the median run (%% of peak) and of the fastest run, of %d runs after 2 warm-up\n"
           "runs, the variants taking turns; B/P: the layout chosen (blocked / plain)\n\n",
           runs);
    printf("%-28s %-5s %-19s %-21s %-19s %-19s %s\n", "layer", "dir", "forward (chosen)", "backward chosen",
           "plain NCHW", "blocked+reorders", "impl (chosen)");
    size_t n_layers = quick ? 1 : sizeof layers / sizeof layers[0];
    for (size_t k = 0; k < n_layers; k++) {
        if (only && !strstr(layers[k].name, only)) continue;
        tensors T;
        tensors_make(ctx, &layers[k], &T);
        /* forward chosen, then per direction: chosen, plain, blocked; run in
         * turns so that load from elsewhere hits every variant alike */
        variant v[7];
        variant_prepare(ctx, &T, DIR_FWD, PRT_CONV_AUTO, runs, &v[0]);
        for (int dir = PRT_CONV_BWD_DATA; dir <= PRT_CONV_BWD_WEIGHT; dir++)
            for (int l = 0; l < 3; l++)
                variant_prepare(ctx, &T, dir, (int[]){PRT_CONV_AUTO, PRT_CONV_PLAIN, PRT_CONV_BLOCKED}[l], runs,
                                &v[1 + 3 * dir + l]);
        for (int r = -2; r < runs; r++)
            for (int i = 0; i < 7; i++) variant_run(ctx, &v[i], r);
        char cells[7][64];
        for (int i = 0; i < 7; i++) {
            double med, min;
            variant_stats(&v[i], runs, &med, &min);
            cell(cells[i], sizeof cells[i], T.flops, med, min, peak);
            if (i % 3 == 1)
                snprintf(cells[i] + strlen(cells[i]), sizeof cells[i] - strlen(cells[i]), " %s",
                         v[i].blocked ? "B" : "P");
        }
        for (int dir = 0; dir < 2; dir++)
            printf("%-28s %-5s %-19s %-21s %-19s %-19s %s\n", dir ? "" : layers[k].name, dir ? "wei" : "data",
                   dir ? "" : cells[0], cells[1 + 3 * dir], cells[2 + 3 * dir], cells[3 + 3 * dir], v[1 + 3 * dir].impl);
        fflush(stdout);
        tensors_free(ctx, &T);
    }
    if (measured_peak) {
        float sink = 0;
        double after = fma_peak_gflops(threads, 0.5, &sink);
        if (sink == 12345.678f) printf(" \n");
        printf("\nfp32 peak re-measured after the runs: %.1f GFLOP/s (%+.1f%%)%s\n", after, 100 * (after / peak - 1),
               fabs(after / peak - 1) > 0.05 ? "  WARNING: the machine was busy, figures are unreliable" : "");
    }
    prt_context_destroy(ctx);
    return 0;
}

/* The synthetic dataset: deterministic samples for benchmarks and tests. Each
 * class has a smooth mean pattern per channel (two plane waves, so convolutions
 * and pooling see it, not only per-pixel weights) and each sample adds uniform
 * noise; labels cycle through the classes so they are balanced. */
#include "frontends/data_impl.h"

#include <inttypes.h>
#include <math.h>

enum { TAG_PATTERN = 0x7061, TAG_NOISE = 0x6e6f, TAG_SAMPLES = 0x7361 };

/* Noise amplitude: uniform in [-A, A] (std A/sqrt(3) = 0.29), about the spread of
 * the pattern itself, so the classes overlap pixel by pixel but stay separable. */
#define NOISE_AMP 0.5f

static float unit(uint32_t x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }

/* pattern[c][ch] over H×W into dst. */
static void make_pattern(uint64_t seed, int64_t which, int64_t h, int64_t w, float *dst) {
    uint32_t r[4], q[4];
    uint64_t key = prt_data_key_(seed, (uint64_t)which, TAG_PATTERN);
    prt_philox4x32(key, 0, 0, r);
    prt_philox4x32(key, 0, 1, q);
    /* frequencies 0.2..1.2 rad/pixel with a random sign, phases 0..2π; computed in
     * double and rounded once, so a libm's last-bit differences in float do not
     * change the data between machines */
    double fy1 = (0.2 + unit(r[0])) * (r[2] & 1 ? 1.0 : -1.0), fx1 = 0.2 + unit(r[1]);
    double fy2 = (0.2 + unit(q[0])) * (q[2] & 1 ? 1.0 : -1.0), fx2 = 0.2 + unit(q[1]);
    double p1 = 6.283185307179586 * unit(r[3]), p2 = 6.283185307179586 * unit(q[3]);
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++)
            dst[y * w + x] = (float)(0.5 + 0.25 * sin(fy1 * (double)y + fx1 * (double)x + p1) +
                                     0.25 * sin(fy2 * (double)y + fx2 * (double)x + p2));
}

prt_status prt_dataset_synthetic_ex_(prt_context *ctx, int64_t n, const prt_shape *per_sample,
                                     int classes, uint64_t pattern_seed, uint64_t sample_seed,
                                     prt_dataset **out) {
    *out = NULL;
    if (classes < 1 || classes > 65536)
        return prt_error(ctx, PRT_ERR_INVALID, "synthetic dataset: %d classes (expected 1..65536)", classes);
    if (per_sample->ndim < 1)
        return prt_error(ctx, PRT_ERR_INVALID, "synthetic dataset: the sample shape needs at least one dimension");
    prt_dataset *d;
    PRT_CHECK(prt_dataset_alloc_(ctx, "synthetic dataset", n, per_sample, &d));
    d->classes = classes;
    int nd = per_sample->ndim;
    int64_t w = per_sample->d[nd - 1], h = nd >= 2 ? per_sample->d[nd - 2] : 1;
    int64_t chans = d->numel / (h * w), plane = h * w;
    /* All class patterns at once: classes × numel floats, bounded because the
     * dataset (n >= classes is not required) holds as many values per sample. */
    int64_t pvals;
    if (!prt_mul_i64(classes, d->numel, &pvals) || pvals > PRT_DATA_MAX_VALUES) {
        prt_dataset_destroy(d);
        return prt_error(ctx, PRT_ERR_LIMIT, "synthetic dataset: %d class patterns of %" PRId64 " values are too large",
                         classes, d->numel);
    }
    float *pat = prt_malloc(ctx, (size_t)pvals * sizeof(float));
    if (!pat) {
        prt_dataset_destroy(d);
        return prt_error(ctx, PRT_ERR_NOMEM, "synthetic dataset: out of memory for the class patterns");
    }
    for (int64_t c = 0; c < classes; c++)
        for (int64_t ch = 0; ch < chans; ch++)
            make_pattern(pattern_seed, c * chans + ch, h, w, pat + c * d->numel + ch * plane);

    for (int64_t i = 0; i < n; i++) {
        int32_t label = (int32_t)(i % classes);
        d->labels[i] = label;
        const float *p = pat + (int64_t)label * d->numel;
        float *x = d->images + i * d->numel;
        uint64_t key = prt_data_key_(sample_seed, (uint64_t)i, TAG_NOISE);
        for (int64_t j = 0; j < d->numel; j += 4) {
            uint32_t r[4];
            prt_philox4x32(key, 0, (uint64_t)j / 4, r);
            for (int k = 0; k < 4 && j + k < d->numel; k++) {
                float v = p[j + k] + NOISE_AMP * (2.0f * unit(r[k]) - 1.0f);
                x[j + k] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
            }
        }
    }
    prt_free(ctx, pat, (size_t)pvals * sizeof(float));
    *out = d;
    return PRT_OK;
}

prt_status prt_dataset_synthetic(prt_context *ctx, int64_t n, const prt_shape *per_sample, int classes,
                                 uint64_t seed, prt_dataset **out) {
    return prt_dataset_synthetic_ex_(ctx, n, per_sample, classes, seed, prt_data_key_(seed, 0, TAG_SAMPLES),
                                     out);
}

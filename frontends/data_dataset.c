/* The dataset object (allocation, accessors) and the named datasets of
 * prt_dataset_open: "fashion-mnist" from the Debian package's files, and
 * "synthetic:N". */
#include "frontends/data_impl.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"
/* The synthetic datasets of prt_dataset_open are fixed data, not a function of a
 * training seed: the same name gives the same samples in every run. */
#define SYNTH_SEED 0x5eedda7aULL

static uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

uint64_t prt_data_key_(uint64_t seed, uint64_t index, uint64_t tag) {
    return mix64(mix64(seed ^ mix64(tag)) + index);
}

prt_status prt_dataset_alloc_(prt_context *ctx, const char *what, int64_t n, const prt_shape *shape,
                              prt_dataset **out) {
    *out = NULL;
    int64_t numel, total;
    PRT_CHECK(prt_shape_numel(ctx, shape, &numel));
    if (n <= 0 || numel <= 0)
        return prt_error(ctx, PRT_ERR_INVALID, "%s: a dataset needs at least one sample and one value per sample",
                         what);
    if (!prt_mul_i64(n, numel, &total) || total > PRT_DATA_MAX_VALUES)
        return prt_error(ctx, PRT_ERR_LIMIT,
                         "%s: %" PRId64 " samples of %" PRId64 " values exceed the in-memory limit of %" PRId64
                         " values (2 GiB of float32)",
                         what, n, numel, PRT_DATA_MAX_VALUES);
    prt_dataset *d = prt_calloc(ctx, 1, sizeof *d);
    if (!d) return prt_error(ctx, PRT_ERR_NOMEM, "%s: out of memory", what);
    d->ctx = ctx;
    d->n = n;
    d->shape = *shape;
    d->numel = numel;
    d->images = prt_malloc(ctx, (size_t)total * sizeof(float));
    d->labels = prt_malloc(ctx, (size_t)n * sizeof(int32_t));
    if (!d->images || !d->labels) {
        prt_dataset_destroy(d);
        return prt_error(ctx, PRT_ERR_NOMEM, "%s: out of memory for %" PRId64 " samples (%zu bytes)", what, n,
                         (size_t)total * sizeof(float));
    }
    *out = d;
    return PRT_OK;
}

void prt_dataset_destroy(prt_dataset *d) {
    if (!d) return;
    prt_context *ctx = d->ctx;
    if (d->images) prt_free(ctx, d->images, (size_t)(d->n * d->numel) * sizeof(float));
    if (d->labels) prt_free(ctx, d->labels, (size_t)d->n * sizeof(int32_t));
    prt_free(ctx, d, sizeof *d);
}

int64_t prt_dataset_size(const prt_dataset *d) { return d->n; }
prt_shape prt_dataset_sample_shape(const prt_dataset *d) { return d->shape; }
int prt_dataset_classes(const prt_dataset *d) { return d->classes; }
const float *prt_dataset_image(const prt_dataset *d, int64_t i) { return d->images + i * d->numel; }
int32_t prt_dataset_label(const prt_dataset *d, int64_t i) { return d->labels[i]; }

/* dir/base.gz, else dir/base (someone may have unpacked the files). */
static prt_status find_file(prt_context *ctx, const char *dir, const char *base, char *path, size_t cap) {
    struct stat sb;
    int len = snprintf(path, cap, "%s/%s.gz", dir, base);
    if (len < 0 || (size_t)len >= cap)
        return prt_error(ctx, PRT_ERR_LIMIT, "fashion-mnist: data folder path is too long: '%s'", dir);
    if (stat(path, &sb) == 0) return PRT_OK;
    snprintf(path, cap, "%s/%s", dir, base);
    if (stat(path, &sb) == 0) return PRT_OK;
    return prt_error(ctx, PRT_ERR_NOT_FOUND,
                     "fashion-mnist: %s/%s.gz not found (install the Debian package dataset-fashion-mnist "
                     "or set PARROTS_DATA_DIR to a folder holding the four IDX files)",
                     dir, base);
}

static prt_status open_fashion(prt_context *ctx, bool train, prt_dataset **out) {
    const char *dir = getenv("PARROTS_DATA_DIR");
    if (!dir || !*dir) dir = FASHION_DIR;
    const char *prefix = train ? "train" : "t10k";
    char base[64], images[4096], labels[4096];
    snprintf(base, sizeof base, "%s-images-idx3-ubyte", prefix);
    PRT_CHECK(find_file(ctx, dir, base, images, sizeof images));
    snprintf(base, sizeof base, "%s-labels-idx1-ubyte", prefix);
    PRT_CHECK(find_file(ctx, dir, base, labels, sizeof labels));
    return prt_dataset_open_idx(ctx, images, labels, out);
}

/* "synthetic:N" with N a plain decimal in 1..2^31-1. */
static prt_status parse_synthetic(prt_context *ctx, const char *name, int64_t *n) {
    const char *s = name + strlen("synthetic:");
    int64_t v = 0;
    bool ok = *s != '\0';
    for (; ok && *s; s++) {
        if (*s < '0' || *s > '9' || v > (INT64_C(1) << 31)) ok = false;
        else v = v * 10 + (*s - '0');
    }
    if (!ok || v < 1 || v > INT32_MAX)
        return prt_error(ctx, PRT_ERR_INVALID,
                         "dataset '%s': expected synthetic:N with N a sample count from 1 to %d", name,
                         INT32_MAX);
    *n = v;
    return PRT_OK;
}

prt_status prt_dataset_open(prt_context *ctx, const char *name, const char *split, prt_dataset **out) {
    *out = NULL;
    if (!name) return prt_error(ctx, PRT_ERR_INVALID, "no dataset name given");
    bool train;
    if (split && strcmp(split, "train") == 0) train = true;
    else if (split && strcmp(split, "test") == 0) train = false;
    else
        return prt_error(ctx, PRT_ERR_INVALID, "dataset '%s': unknown split '%s' (expected 'train' or 'test')",
                         name, split ? split : "(none)");
    if (strcmp(name, "fashion-mnist") == 0) return open_fashion(ctx, train, out);
    if (strncmp(name, "synthetic:", strlen("synthetic:")) == 0) {
        int64_t n = 0;
        PRT_CHECK(parse_synthetic(ctx, name, &n));
        prt_shape s = prt_shape_make(3, (const int64_t[]){1, 28, 28});
        return prt_dataset_synthetic_ex_(ctx, n, &s, 10, SYNTH_SEED, SYNTH_SEED + (train ? 1 : 2), out);
    }
    return prt_error(ctx, PRT_ERR_NOT_FOUND, "unknown dataset '%s' (known: fashion-mnist, synthetic:N)", name);
}

prt_status prt_dataset_head(prt_context *ctx, const prt_dataset *d, int64_t n, const char *what,
                            prt_dataset **out) {
    *out = NULL;
    if (n < 1 || n > d->n)
        return prt_error(ctx, PRT_ERR_INVALID, "%s: cannot take the first %lld of %lld samples", what, (long long)n,
                         (long long)d->n);
    prt_dataset *h;
    PRT_CHECK(prt_dataset_alloc_(ctx, what, n, &d->shape, &h));
    /* n * numel was checked against the source's size when d was made */
    memcpy(h->images, d->images, sizeof(float) * (size_t)(n * d->numel));
    memcpy(h->labels, d->labels, sizeof(int32_t) * (size_t)n);
    h->classes = d->classes;
    *out = h;
    return PRT_OK;
}

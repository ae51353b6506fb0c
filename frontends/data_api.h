/* Datasets and the batch loader.
 *
 * A dataset is a table of samples (float32 images of one per-sample shape, and
 * int32 class labels). The loader draws batches in a per-epoch order shuffled from
 * a seed (the same seed gives the same order on every machine), applies the
 * augmentation (random crop with padding, horizontal flip: also from the
 * counter-based RNG, keyed by seed, epoch and sample index) and normalisation, and
 * prefetches the next batches on a background thread.
 *
 *     prt_dataset *train;
 *     PRT_CHECK(prt_dataset_open_idx(ctx, "train-images-idx3-ubyte.gz",
 *                                    "train-labels-idx1-ubyte.gz", &train));
 *     prt_loader_options o;  prt_loader_defaults(&o);
 *     o.batch = 64;  o.shuffle = true;  o.seed = 1;  o.crop_pad = 2;  o.flip = true;
 *     prt_loader *ld;
 *     PRT_CHECK(prt_loader_create(ctx, train, &o, &ld));
 *     int64_t n;
 *     while (prt_loader_next(ld, images, labels, &n) == PRT_OK && n > 0) { ... }
 *     prt_loader_destroy(ld);  prt_dataset_destroy(train);
 */
#ifndef PARROTS_DATA_API_H
#define PARROTS_DATA_API_H

#include "runtime/runtime_impl.h"

typedef struct prt_dataset prt_dataset;
typedef struct prt_loader prt_loader;

/* Reads an IDX image file (idx3, unsigned bytes, optionally gzip-compressed) and
 * its IDX label file (idx1). Images become float32 in [0, 1] with per-sample
 * shape [1, rows, cols]. Every problem (missing file, bad magic, wrong dtype
 * code, count mismatch, truncated or corrupt data, trailing bytes) is an error
 * naming the file and what was expected. Caller frees with prt_dataset_destroy. */
prt_status prt_dataset_open_idx(prt_context *ctx, const char *images_path, const char *labels_path,
                                prt_dataset **out);
/* A synthetic dataset of n samples (for benchmarks and tests): deterministic from
 * the seed; each class has its own mean pattern plus noise, so it is learnable. */
prt_status prt_dataset_synthetic(prt_context *ctx, int64_t n, const prt_shape *per_sample, int classes,
                                 uint64_t seed, prt_dataset **out);
/* A named dataset: "fashion-mnist" (the Debian package's files under
 * /usr/share/datasets/fashion-mnist, or $PARROTS_DATA_DIR) with split "train" or
 * "test"; "synthetic:N" gives N synthetic samples of shape [1, 28, 28] and 10 classes. */
prt_status prt_dataset_open(prt_context *ctx, const char *name, const char *split, prt_dataset **out);
/* A new dataset holding copies of the first n samples of d (0 < n <= size; quick
 * runs and tests). `what` names it in messages. Caller frees with prt_dataset_destroy. */
prt_status prt_dataset_head(prt_context *ctx, const prt_dataset *d, int64_t n, const char *what,
                            prt_dataset **out);
void prt_dataset_destroy(prt_dataset *d);
int64_t prt_dataset_size(const prt_dataset *d);
prt_shape prt_dataset_sample_shape(const prt_dataset *d); /* per sample, e.g. [1, 28, 28] */
int prt_dataset_classes(const prt_dataset *d);
/* Direct access (borrowed): sample i's pixels (numel of the sample shape) and label. */
const float *prt_dataset_image(const prt_dataset *d, int64_t i);
int32_t prt_dataset_label(const prt_dataset *d, int64_t i);

typedef struct prt_loader_options {
    int64_t batch;        /* samples per batch (>= 1, <= dataset size) */
    bool shuffle;         /* a new order each epoch from (seed, epoch) */
    bool drop_last;       /* skip a last partial batch (training); else it is returned short */
    uint64_t seed;
    int crop_pad;         /* random crop: pad by this many zero pixels, crop back at a random offset; 0 off */
    bool flip;            /* random horizontal flip */
    float mean, std;      /* normalisation x' = (x - mean) / std; defaults 0 and 1 */
    int prefetch;         /* batches prepared ahead on a background thread; 0: synchronous */
    int64_t shard, shards; /* this process reads samples i with i % shards == shard (0 of 1) */
    /* (i is the position in the epoch's shuffled order, the same on every shard; each
     * shard reads size / shards samples, so all shards run the same number of batches) */
    /* resume: the first batch is batch start_batch (0-based) of epoch start_epoch
     * (0-based); start_batch == batches per epoch starts at that epoch's end (the
     * next call returns 0 and moves on). Both default to 0. */
    int64_t start_epoch, start_batch;
} prt_loader_options;

void prt_loader_defaults(prt_loader_options *o);
/* Caller frees with prt_loader_destroy. The dataset is borrowed until then. */
prt_status prt_loader_create(prt_context *ctx, const prt_dataset *d, const prt_loader_options *o,
                             prt_loader **out);
void prt_loader_destroy(prt_loader *ld);
/* The next batch of the current epoch into images (batch × sample numel floats)
 * and labels (batch int32s); *n is the number of samples written, 0 at the end of
 * the epoch (the next call starts the next epoch). */
prt_status prt_loader_next(prt_loader *ld, float *images, int32_t *labels, int64_t *n);
/* Batches per epoch, and the epoch the next batch belongs to. */
int64_t prt_loader_batches_per_epoch(const prt_loader *ld);
int64_t prt_loader_epoch(const prt_loader *ld);
/* Seconds the consumer spent waiting for data so far (0 when prefetch keeps up). */
double prt_loader_wait_seconds(const prt_loader *ld);

#endif

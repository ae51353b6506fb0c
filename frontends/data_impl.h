/* Internals shared by the dataset sources (data_idx.c, data_synth.c, data_dataset.c)
 * and the loader (data_loader.c): the dataset struct, its allocation, the key
 * derivation for the counter-based RNG, and one hook for tests. */
#ifndef PARROTS_DATA_IMPL_H
#define PARROTS_DATA_IMPL_H

#include "frontends/data_api.h"

/* Largest dataset held in memory: 2^29 float32 values (2 GiB). The header of a
 * file is checked against it before anything is allocated. */
#define PRT_DATA_MAX_VALUES ((int64_t)1 << 29)
/* Largest image side an IDX file may declare. */
#define PRT_DATA_MAX_SIDE 4096

struct prt_dataset {
    prt_context *ctx;
    int64_t n;
    prt_shape shape; /* per sample */
    int64_t numel;   /* per sample */
    int classes;
    float *images;   /* n × numel, owned */
    int32_t *labels; /* n, owned */
};

/* Allocates an empty dataset of n samples of `shape` (checked against
 * PRT_DATA_MAX_VALUES; `what` names the source in messages). Caller fills images,
 * labels and classes, and frees with prt_dataset_destroy. */
prt_status prt_dataset_alloc_(prt_context *ctx, const char *what, int64_t n, const prt_shape *shape,
                              prt_dataset **out);

/* The synthetic source with the class patterns and the samples drawn from
 * separate seeds, so a "test" split shares the patterns of the "train" split. */
prt_status prt_dataset_synthetic_ex_(prt_context *ctx, int64_t n, const prt_shape *per_sample,
                                     int classes, uint64_t pattern_seed, uint64_t sample_seed,
                                     prt_dataset **out);

/* Philox key for a stream: a mix of the seed, an epoch (or other index) and a tag
 * naming the purpose, so the streams never overlap. */
uint64_t prt_data_key_(uint64_t seed, uint64_t index, uint64_t tag);

/* For tests only: the producer fails with PRT_ERR_IO when it prepares the item
 * (batch or end-of-epoch marker) with 0-based sequence number `item`; -1 turns it
 * off. The prefetch thread starts in create and may already hold up to `prefetch`
 * items, so with prefetch on, call it right after create with item >= prefetch. */
void prt_loader_fail_at_(prt_loader *ld, int64_t item);

#endif

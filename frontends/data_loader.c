/* The batch loader: per-epoch order, sharding, augmentation, normalisation and
 * prefetching on a background thread.
 *
 * The loader is a producer of a fixed sequence of items — the batches of epoch 0,
 * an end-of-epoch marker, the batches of epoch 1, ... — and everything in an item
 * is a function of (seed, epoch, sample index) only. With prefetch off the consumer
 * runs the producer itself; with prefetch on a thread runs it into a ring of
 * `prefetch` slots. Either way the consumer sees the same bytes. */
#include "frontends/data_impl.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

enum { TAG_ORDER = 0x6f72, TAG_AUGMENT = 0x6175 };
#define MAX_PREFETCH 64
#define MSG_CAP 512

typedef struct slot {
    float *images;
    int32_t *labels;
    int64_t n;
    prt_status st;
    char msg[MSG_CAP];
} slot;

struct prt_loader {
    prt_context *ctx;
    const prt_dataset *d;
    prt_loader_options o;
    int64_t per_epoch; /* samples this shard reads per epoch */
    int64_t bpe;       /* batches per epoch */
    int64_t h, w, planes;

    /* producer state: owned by the prefetch thread, or by prt_loader_next when
     * prefetch is 0 */
    int64_t p_epoch, p_batch, p_item;
    int64_t *order, order_epoch;
    int64_t fail_at; /* test hook; read under mu */

    /* consumer state */
    int64_t c_epoch;
    double wait_s;
    prt_status failed;
    char failmsg[MSG_CAP];

    /* the ring: slots[head .. head+count) are ready, in order */
    slot *slots;
    int cap, head, count;
    bool stop, thread_running;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
};

void prt_loader_defaults(prt_loader_options *o) {
    *o = (prt_loader_options){
        .batch = 64, .shuffle = false, .drop_last = false, .seed = 0, .crop_pad = 0, .flip = false,
        .mean = 0.0f, .std = 1.0f, .prefetch = 2, .shard = 0, .shards = 1,
    };
}

/* Fisher–Yates over the whole dataset from a key of (seed, epoch): every shard
 * computes the same order and takes its own positions of it. */
static void build_order(prt_loader *ld, int64_t epoch) {
    int64_t n = ld->d->n;
    for (int64_t i = 0; i < n; i++) ld->order[i] = i;
    if (ld->o.shuffle) {
        uint64_t key = prt_data_key_(ld->o.seed, (uint64_t)epoch, TAG_ORDER);
        for (int64_t j = n - 1; j > 0; j--) {
            uint32_t r[4];
            prt_philox4x32(key, 0, (uint64_t)j, r);
            /* 64 random bits: the modulo bias is below (j+1)/2^64 */
            uint64_t x = (uint64_t)r[0] << 32 | r[1];
            int64_t k = (int64_t)(x % (uint64_t)(j + 1));
            int64_t t = ld->order[j];
            ld->order[j] = ld->order[k];
            ld->order[k] = t;
        }
    }
    ld->order_epoch = epoch;
}

/* Sample idx of epoch `epoch`, augmented and normalised, into dst. The crop
 * offset and flip come from (seed, epoch, idx), so they do not depend on the batch
 * size, the shard or the thread that prepares the batch. Padding is the raw pixel
 * value 0, normalised like every other pixel. */
static void prepare_sample(const prt_loader *ld, int64_t epoch, int64_t idx, float *dst) {
    const float *src = prt_dataset_image(ld->d, idx);
    const float mean = ld->o.mean, sd = ld->o.std;
    int64_t numel = ld->d->numel;
    if (ld->o.crop_pad == 0 && !ld->o.flip) {
        for (int64_t i = 0; i < numel; i++) dst[i] = (src[i] - mean) / sd;
        return;
    }
    uint32_t r[4];
    prt_philox4x32(prt_data_key_(ld->o.seed, (uint64_t)epoch, TAG_AUGMENT), 0, (uint64_t)idx, r);
    int64_t pad = ld->o.crop_pad, dy = 0, dx = 0;
    if (pad > 0) {
        dy = (int64_t)(r[0] % (uint32_t)(2 * pad + 1)) - pad;
        dx = (int64_t)(r[1] % (uint32_t)(2 * pad + 1)) - pad;
    }
    bool flip = ld->o.flip && (r[2] & 1u);
    int64_t h = ld->h, w = ld->w;
    const float zero = (0.0f - mean) / sd;
    for (int64_t p = 0; p < ld->planes; p++) {
        const float *sp = src + p * h * w;
        float *dp = dst + p * h * w;
        for (int64_t y = 0; y < h; y++) {
            int64_t sy = y + dy;
            for (int64_t x = 0; x < w; x++) {
                int64_t sx = (flip ? w - 1 - x : x) + dx;
                dp[y * w + x] = (sy < 0 || sy >= h || sx < 0 || sx >= w) ? zero : (sp[sy * w + sx] - mean) / sd;
            }
        }
    }
}

/* The next item of the sequence. Errors go to msg (the producer may be a thread,
 * and the context's error slot belongs to the consumer). */
static prt_status produce(prt_loader *ld, float *images, int32_t *labels, int64_t *n, char *msg) {
    int64_t item = ld->p_item++;
    pthread_mutex_lock(&ld->mu);
    bool fail = item == ld->fail_at;
    pthread_mutex_unlock(&ld->mu);
    if (fail) {
        snprintf(msg, MSG_CAP, "loader: injected failure at item %" PRId64, item);
        return PRT_ERR_IO;
    }
    if (ld->p_batch == ld->bpe) {
        *n = 0;
        ld->p_epoch++;
        ld->p_batch = 0;
        return PRT_OK;
    }
    if (ld->order_epoch != ld->p_epoch) build_order(ld, ld->p_epoch);
    int64_t start = ld->p_batch * ld->o.batch;
    int64_t cnt = ld->per_epoch - start < ld->o.batch ? ld->per_epoch - start : ld->o.batch;
    for (int64_t k = 0; k < cnt; k++) {
        int64_t idx = ld->order[(start + k) * ld->o.shards + ld->o.shard];
        prepare_sample(ld, ld->p_epoch, idx, images + k * ld->d->numel);
        labels[k] = prt_dataset_label(ld->d, idx);
    }
    *n = cnt;
    ld->p_batch++;
    return PRT_OK;
}

static void *producer_main(void *arg) {
    prt_loader *ld = arg;
    pthread_mutex_lock(&ld->mu);
    for (;;) {
        while (!ld->stop && ld->count == ld->cap) pthread_cond_wait(&ld->not_full, &ld->mu);
        if (ld->stop) break;
        /* The free slot after the ready ones is ours until we publish it. */
        slot *s = &ld->slots[(ld->head + ld->count) % ld->cap];
        pthread_mutex_unlock(&ld->mu);
        s->st = produce(ld, s->images, s->labels, &s->n, s->msg);
        pthread_mutex_lock(&ld->mu);
        ld->count++;
        pthread_cond_signal(&ld->not_empty);
        if (s->st != PRT_OK) break; /* the consumer reports it; nothing follows */
    }
    pthread_mutex_unlock(&ld->mu);
    return NULL;
}

static prt_status check_options(prt_context *ctx, const prt_dataset *d, const prt_loader_options *o) {
    char buf[160];
    if (o->batch < 1) return prt_error(ctx, PRT_ERR_INVALID, "loader: batch %" PRId64 " must be at least 1", o->batch);
    if (o->shards < 1 || o->shard < 0 || o->shard >= o->shards)
        return prt_error(ctx, PRT_ERR_INVALID, "loader: shard %" PRId64 " of %" PRId64 " is out of range (0 <= shard < shards)",
                         o->shard, o->shards);
    if (d->n < o->shards)
        return prt_error(ctx, PRT_ERR_INVALID, "loader: %" PRId64 " samples cannot be split into %" PRId64 " shards",
                         d->n, o->shards);
    int64_t per = d->n / o->shards;
    if (o->batch > per) {
        if (o->shards == 1)
            return prt_error(ctx, PRT_ERR_INVALID, "loader: batch %" PRId64 " is larger than the dataset (%" PRId64 " samples)",
                             o->batch, d->n);
        return prt_error(ctx, PRT_ERR_INVALID,
                         "loader: batch %" PRId64 " is larger than a shard (%" PRId64 " samples in each of %" PRId64 " shards)",
                         o->batch, per, o->shards);
    }
    if (o->crop_pad < 0 || o->crop_pad > PRT_DATA_MAX_SIDE)
        return prt_error(ctx, PRT_ERR_INVALID, "loader: crop_pad %d is out of range (0..%d)", o->crop_pad, PRT_DATA_MAX_SIDE);
    if ((o->crop_pad > 0 || o->flip) && d->shape.ndim < 2)
        return prt_error(ctx, PRT_ERR_INVALID, "loader: crop and flip need samples with height and width; got %s",
                         prt_shape_str(&d->shape, buf, sizeof buf));
    if (!isfinite(o->mean) || !isfinite(o->std) || !(o->std > 0.0f))
        return prt_error(ctx, PRT_ERR_INVALID, "loader: normalisation needs a finite mean and a positive finite std (got %g, %g)",
                         (double)o->mean, (double)o->std);
    if (o->start_epoch < 0 || o->start_batch < 0)
        return prt_error(ctx, PRT_ERR_INVALID, "loader: start epoch %" PRId64 " and batch %" PRId64 " must not be negative",
                         o->start_epoch, o->start_batch);
    if (o->prefetch < 0 || o->prefetch > MAX_PREFETCH)
        return prt_error(ctx, PRT_ERR_INVALID, "loader: prefetch %d is out of range (0..%d)", o->prefetch, MAX_PREFETCH);
    return PRT_OK;
}

prt_status prt_loader_create(prt_context *ctx, const prt_dataset *d, const prt_loader_options *opts,
                             prt_loader **out) {
    prt_status st = PRT_OK;
    *out = NULL;
    prt_loader_options o;
    if (opts) o = *opts;
    else prt_loader_defaults(&o);
    PRT_CHECK(check_options(ctx, d, &o));

    prt_loader *ld = prt_calloc(ctx, 1, sizeof *ld);
    if (!ld) return prt_error(ctx, PRT_ERR_NOMEM, "loader: out of memory");
    ld->ctx = ctx;
    ld->d = d;
    ld->o = o;
    /* Every shard reads the same number of samples, so every rank runs the same
     * number of steps; the last n % shards positions of each epoch's order are
     * skipped (different samples each epoch when shuffled). */
    ld->per_epoch = d->n / o.shards;
    ld->bpe = o.drop_last ? ld->per_epoch / o.batch : (ld->per_epoch + o.batch - 1) / o.batch;
    int nd = d->shape.ndim;
    ld->w = nd >= 1 ? d->shape.d[nd - 1] : 1;
    ld->h = nd >= 2 ? d->shape.d[nd - 2] : 1;
    ld->planes = d->numel / (ld->h * ld->w);
    if (o.start_batch > ld->bpe) {
        st = prt_error(ctx, PRT_ERR_INVALID, "loader: start batch %" PRId64 " is past the %" PRId64 " batches of an epoch",
                       o.start_batch, ld->bpe);
        prt_free(ctx, ld, sizeof *ld);
        return st;
    }
    /* the sequence is a function of (seed, epoch, index): starting mid-way is exact */
    ld->p_epoch = ld->c_epoch = o.start_epoch;
    ld->p_batch = o.start_batch;
    ld->order_epoch = -1;
    ld->fail_at = -1;
    ld->cap = o.prefetch;
    pthread_mutex_init(&ld->mu, NULL);
    pthread_cond_init(&ld->not_empty, NULL);
    pthread_cond_init(&ld->not_full, NULL);

    ld->order = prt_malloc(ctx, (size_t)d->n * sizeof *ld->order);
    if (!ld->order) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "loader: out of memory for the order of %" PRId64 " samples", d->n);
        goto fail;
    }
    if (ld->cap > 0) {
        /* batch × numel is bounded by the dataset, which is in memory already */
        size_t img_bytes = (size_t)(o.batch * d->numel) * sizeof(float);
        ld->slots = prt_calloc(ctx, (size_t)ld->cap, sizeof *ld->slots);
        if (!ld->slots) goto nomem;
        for (int i = 0; i < ld->cap; i++) {
            ld->slots[i].images = prt_malloc(ctx, img_bytes);
            ld->slots[i].labels = prt_malloc(ctx, (size_t)o.batch * sizeof(int32_t));
            if (!ld->slots[i].images || !ld->slots[i].labels) goto nomem;
        }
        int e = pthread_create(&ld->thread, NULL, producer_main, ld);
        if (e != 0) {
            st = prt_error(ctx, PRT_ERR_INTERNAL, "loader: cannot start the prefetch thread: %s", strerror(e));
            goto fail;
        }
        ld->thread_running = true;
    }
    *out = ld;
    return PRT_OK;
nomem:
    st = prt_error(ctx, PRT_ERR_NOMEM, "loader: out of memory for %d prefetch buffers of %" PRId64 " samples",
                   ld->cap, o.batch);
fail:
    prt_loader_destroy(ld);
    return st;
}

void prt_loader_destroy(prt_loader *ld) {
    if (!ld) return;
    prt_context *ctx = ld->ctx;
    if (ld->thread_running) {
        pthread_mutex_lock(&ld->mu);
        ld->stop = true;
        pthread_cond_broadcast(&ld->not_full);
        pthread_mutex_unlock(&ld->mu);
        pthread_join(ld->thread, NULL);
    }
    if (ld->slots) {
        size_t img_bytes = (size_t)(ld->o.batch * ld->d->numel) * sizeof(float);
        for (int i = 0; i < ld->cap; i++) {
            prt_free(ctx, ld->slots[i].images, img_bytes);
            prt_free(ctx, ld->slots[i].labels, (size_t)ld->o.batch * sizeof(int32_t));
        }
        prt_free(ctx, ld->slots, (size_t)ld->cap * sizeof *ld->slots);
    }
    prt_free(ctx, ld->order, (size_t)ld->d->n * sizeof *ld->order);
    pthread_cond_destroy(&ld->not_full);
    pthread_cond_destroy(&ld->not_empty);
    pthread_mutex_destroy(&ld->mu);
    prt_free(ctx, ld, sizeof *ld);
}

static prt_status fail_with(prt_loader *ld, prt_status st, const char *msg) {
    ld->failed = st;
    snprintf(ld->failmsg, sizeof ld->failmsg, "%s", msg);
    return prt_error(ld->ctx, st, "%s", ld->failmsg);
}

prt_status prt_loader_next(prt_loader *ld, float *images, int32_t *labels, int64_t *n) {
    *n = 0;
    if (ld->failed != PRT_OK) return prt_error(ld->ctx, ld->failed, "%s", ld->failmsg);
    if (!images || !labels) return prt_error(ld->ctx, PRT_ERR_INVALID, "loader: no images or labels buffer given");
    double t0 = prt_now();
    if (ld->cap == 0) {
        char msg[MSG_CAP];
        prt_status st = produce(ld, images, labels, n, msg);
        /* without prefetch the consumer waits for all of the preparation */
        ld->wait_s += prt_now() - t0;
        if (st != PRT_OK) return fail_with(ld, st, msg);
    } else {
        pthread_mutex_lock(&ld->mu);
        bool waited = ld->count == 0;
        while (ld->count == 0) pthread_cond_wait(&ld->not_empty, &ld->mu);
        pthread_mutex_unlock(&ld->mu);
        if (waited) ld->wait_s += prt_now() - t0;
        /* slots[head] is ours to read until we pop it */
        slot *s = &ld->slots[ld->head];
        prt_status st = s->st;
        if (st == PRT_OK && s->n > 0) {
            memcpy(images, s->images, (size_t)(s->n * ld->d->numel) * sizeof(float));
            memcpy(labels, s->labels, (size_t)s->n * sizeof(int32_t));
        }
        *n = s->n;
        if (st != PRT_OK) {
            *n = 0;
            return fail_with(ld, st, s->msg); /* the producer has stopped; leave the slot */
        }
        pthread_mutex_lock(&ld->mu);
        ld->head = (ld->head + 1) % ld->cap;
        ld->count--;
        pthread_cond_signal(&ld->not_full);
        pthread_mutex_unlock(&ld->mu);
    }
    if (*n == 0) ld->c_epoch++;
    return PRT_OK;
}

int64_t prt_loader_batches_per_epoch(const prt_loader *ld) { return ld->bpe; }
int64_t prt_loader_epoch(const prt_loader *ld) { return ld->c_epoch; }
double prt_loader_wait_seconds(const prt_loader *ld) { return ld->wait_s; }

void prt_loader_fail_at_(prt_loader *ld, int64_t item) {
    pthread_mutex_lock(&ld->mu);
    ld->fail_at = item;
    pthread_mutex_unlock(&ld->mu);
}

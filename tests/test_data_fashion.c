/* The real Fashion-MNIST files of the Debian package dataset-fashion-mnist
 * (scripts/setup.sh installs it). A missing package fails this test: it is
 * labelled `data` rather than `unit` so that it is selected on purpose, never
 * skipped silently. The reference figures (byte sums, first labels) come from
 * Python's gzip module reading the same files, not from our reader. */
// labels: data
#include "tests/test_util.h"

#include "frontends/data_api.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>

#define DIR "/usr/share/datasets/fashion-mnist"

typedef struct ref {
    const char *split;
    int64_t n;
    uint64_t byte_sum, first_image_sum;
    int first_labels[8];
} ref;

static const ref refs[] = {
    {"train", 60000, 3431114169ULL, 76247, {9, 0, 0, 3, 0, 2, 7, 2}},
    {"test", 10000, 573469082ULL, 33456, {9, 2, 1, 1, 6, 1, 4, 6}},
};

static void check_split(const ref *r) {
    struct stat sb;
    ck_assert_msg(stat(DIR, &sb) == 0, DIR " is missing: install the Debian package dataset-fashion-mnist");
    unsetenv("PARROTS_DATA_DIR");
    prt_context *ctx = tu_context();
    prt_dataset *d;
    double t0 = prt_now();
    prt_status st = prt_dataset_open(ctx, "fashion-mnist", r->split, &d);
    ck_assert_msg(st == PRT_OK, "%s", prt_last_error(ctx));
    printf("fashion-mnist %s: read in %.2f s\n", r->split, prt_now() - t0);
    ck_assert_int_eq(prt_dataset_size(d), r->n);
    ck_assert_int_eq(prt_dataset_classes(d), 10);
    prt_shape s = prt_dataset_sample_shape(d);
    ck_assert_int_eq(s.ndim, 3);
    ck_assert(s.d[0] == 1 && s.d[1] == 28 && s.d[2] == 28);

    uint64_t sum = 0, first = 0, bad = 0;
    float lo = 1.0f, hi = 0.0f;
    int count[10] = {0};
    for (int64_t i = 0; i < r->n; i++) {
        const float *x = prt_dataset_image(d, i);
        for (int k = 0; k < 784; k++) {
            /* every value is a byte over 255, exactly */
            long b = lrintf(x[k] * 255.0f);
            bad += !(b >= 0 && b <= 255 && x[k] == (float)b / 255.0f);
            sum += (uint64_t)b;
            if (i == 0) first += (uint64_t)b;
            lo = x[k] < lo ? x[k] : lo;
            hi = x[k] > hi ? x[k] : hi;
        }
        int32_t l = prt_dataset_label(d, i);
        if (l >= 0 && l < 10) count[l]++;
        else bad++;
    }
    /* (Check's assertions record a mark per call: counted, then asserted once) */
    ck_assert_int_eq(bad, 0);
    ck_assert(lo == 0.0f && hi == 1.0f);
    ck_assert_uint_eq(sum, r->byte_sum);
    ck_assert_uint_eq(first, r->first_image_sum);
    for (int i = 0; i < 8; i++) ck_assert_int_eq(prt_dataset_label(d, i), r->first_labels[i]);
    for (int c = 0; c < 10; c++) ck_assert_int_eq(count[c], r->n / 10); /* balanced */

    /* one training epoch through the loader, as the trainer reads it */
    prt_loader_options o;
    prt_loader_defaults(&o);
    o.batch = 64;
    o.shuffle = true;
    o.drop_last = true;
    o.seed = 1;
    o.crop_pad = 2;
    o.flip = true;
    o.mean = 0.2860f;
    o.std = 0.3530f;
    o.prefetch = 2;
    prt_loader *ld;
    ck_assert_int_eq(prt_loader_create(ctx, d, &o, &ld), PRT_OK);
    ck_assert_int_eq(prt_loader_batches_per_epoch(ld), r->n / 64);
    float *img = malloc(64 * 784 * sizeof(float));
    int32_t lab[64];
    int64_t n, batches = 0, seen[10] = {0};
    t0 = prt_now();
    while (prt_loader_next(ld, img, lab, &n) == PRT_OK && n > 0) {
        ck_assert_int_eq(n, 64);
        for (int k = 0; k < 64; k++) seen[lab[k]]++;
        batches++;
    }
    double dt = prt_now() - t0;
    printf("fashion-mnist %s: %" PRId64 " augmented batches of 64 in %.2f s (%.0f batches/s)\n", r->split, batches,
           dt, (double)batches / dt);
    ck_assert_int_eq(batches, r->n / 64);
    int64_t total = 0;
    for (int c = 0; c < 10; c++) {
        ck_assert_int_le(seen[c], r->n / 10);
        total += seen[c];
    }
    ck_assert_int_eq(total, r->n / 64 * 64);
    prt_loader_destroy(ld);
    free(img);
    prt_dataset_destroy(d);
    prt_context_destroy(ctx);
}

START_TEST(test_fashion_train) { check_split(&refs[0]); }
END_TEST

START_TEST(test_fashion_test) { check_split(&refs[1]); }
END_TEST

int main(void) {
    Suite *s = suite_create("data-fashion");
    TCase *t = tcase_create("fashion-mnist");
    tcase_set_timeout(t, 300);
    tcase_add_test(t, test_fashion_train);
    tcase_add_test(t, test_fashion_test);
    suite_add_tcase(s, t);
    return tu_run(s);
}

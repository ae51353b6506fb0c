/* Datasets and the loader: the IDX reader on files the test writes (raw and
 * gzipped), every malformed-file error with its exact text, the named and
 * synthetic datasets, and the loader's order, sharding, augmentation,
 * normalisation and prefetching. The real Fashion-MNIST files are checked by
 * test_data_fashion.c. */
// labels: unit
#include "tests/test_util.h"

#include "frontends/data_impl.h"

#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* ---- a temporary folder per test ----------------------------------------- */

static char tmpdir[256];

static void tmp_setup(void) {
    strcpy(tmpdir, "/tmp/parrots-test-data-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void tmp_teardown(void) {
    DIR *dir = opendir(tmpdir);
    if (!dir) return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(dir)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
        unlink(p);
    }
    closedir(dir);
    rmdir(tmpdir);
}

/* Path of a file in the temporary folder; four rotating buffers. */
static const char *tp(const char *name) {
    static char bufs[4][512];
    static int k;
    char *b = bufs[k++ % 4];
    snprintf(b, 512, "%s/%s", tmpdir, name);
    return b;
}

/* ---- building IDX files ---------------------------------------------------- */

typedef struct bytes {
    unsigned char *p;
    size_t n;
} bytes;

static void put(bytes *b, const void *d, size_t n) {
    b->p = realloc(b->p, b->n + n + 1);
    ck_assert_ptr_nonnull(b->p);
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void put_be32(bytes *b, uint32_t v) {
    unsigned char q[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8),
                          (unsigned char)v};
    put(b, q, 4);
}

static bytes idx_images(uint32_t magic, uint32_t count, uint32_t rows, uint32_t cols, const unsigned char *px,
                        size_t npx) {
    bytes b = {0};
    put_be32(&b, magic);
    put_be32(&b, count);
    put_be32(&b, rows);
    put_be32(&b, cols);
    if (npx) put(&b, px, npx);
    return b;
}

static bytes idx_labels(uint32_t magic, uint32_t count, const unsigned char *lb, size_t n) {
    bytes b = {0};
    put_be32(&b, magic);
    put_be32(&b, count);
    if (n) put(&b, lb, n);
    return b;
}

static void write_raw(const char *path, const unsigned char *p, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(p, 1, n, f), n);
    fclose(f);
}

/* mode: "wb" (default level), "wb0" (stored blocks), "ab" (append a member) */
static void write_gz(const char *path, const unsigned char *p, size_t n, const char *mode) {
    gzFile g = gzopen(path, mode);
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(gzwrite(g, p, (unsigned)n), (int)n);
    ck_assert_int_eq(gzclose(g), Z_OK);
}

static bytes read_all(const char *path) {
    bytes b = {0};
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    unsigned char buf[4096];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0) put(&b, buf, k);
    fclose(f);
    return b;
}

/* The small standard pair: 3 images of 4×5 and labels 2, 0, 7. */
#define SN 3
#define SR 4
#define SC 5
static unsigned char std_px[SN * SR * SC];
static const unsigned char std_lb[SN] = {2, 0, 7};

static void std_files(const char *img, const char *lab, bool gz) {
    for (int i = 0; i < SN * SR * SC; i++) std_px[i] = (unsigned char)((i * 37 + 11) & 255);
    bytes a = idx_images(0x803, SN, SR, SC, std_px, sizeof std_px), b = idx_labels(0x801, SN, std_lb, SN);
    if (gz) {
        write_gz(img, a.p, a.n, "wb");
        write_gz(lab, b.p, b.n, "wb");
    } else {
        write_raw(img, a.p, a.n);
        write_raw(lab, b.p, b.n);
    }
    free(a.p);
    free(b.p);
}

static void check_std_dataset(const prt_dataset *d) {
    ck_assert_int_eq(prt_dataset_size(d), SN);
    prt_shape s = prt_dataset_sample_shape(d);
    ck_assert_int_eq(s.ndim, 3);
    ck_assert_int_eq(s.d[0], 1);
    ck_assert_int_eq(s.d[1], SR);
    ck_assert_int_eq(s.d[2], SC);
    ck_assert_int_eq(prt_dataset_classes(d), 8); /* max label 7, plus one */
    for (int i = 0; i < SN; i++) {
        ck_assert_int_eq(prt_dataset_label(d, i), std_lb[i]);
        const float *x = prt_dataset_image(d, i);
        for (int k = 0; k < SR * SC; k++) ck_assert(x[k] == (float)std_px[i * SR * SC + k] / 255.0f);
    }
}

static void expect_idx_error(const char *img, const char *lab, prt_status want, const char *msg) {
    prt_context *ctx = tu_context();
    prt_dataset *d = (prt_dataset *)&d;
    prt_status st = prt_dataset_open_idx(ctx, img, lab, &d);
    ck_assert_str_eq(prt_last_error(ctx), msg);
    ck_assert_int_eq(st, want);
    ck_assert_ptr_null(d);
    prt_context_destroy(ctx);
}

/* ---- reading --------------------------------------------------------------- */

START_TEST(test_idx_raw) {
    std_files(tp("i"), tp("l"), false);
    prt_context *ctx = tu_context();
    prt_dataset *d;
    ck_assert_int_eq(prt_dataset_open_idx(ctx, tp("i"), tp("l"), &d), PRT_OK);
    check_std_dataset(d);
    prt_dataset_destroy(d);
    prt_dataset_destroy(NULL);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(test_idx_gzip) {
    std_files(tp("i.gz"), tp("l.gz"), true);
    prt_context *ctx = tu_context();
    prt_dataset *d;
    ck_assert_int_eq(prt_dataset_open_idx(ctx, tp("i.gz"), tp("l.gz"), &d), PRT_OK);
    check_std_dataset(d);
    prt_dataset_destroy(d);
    /* one compressed and one raw; the name does not decide, the content does */
    std_files(tp("i2"), tp("l2.gz"), false);
    ck_assert_int_eq(prt_dataset_open_idx(ctx, tp("i.gz"), tp("l2.gz"), &d), PRT_OK);
    check_std_dataset(d);
    prt_dataset_destroy(d);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(test_idx_gzip_members) {
    /* gzip allows concatenated members (`cat a.gz b.gz`): the content is joined */
    std_files(tp("i"), tp("l"), false);
    bytes a = read_all(tp("i"));
    write_gz(tp("m.gz"), a.p, 20, "wb");
    write_gz(tp("m.gz"), a.p + 20, a.n - 20, "ab");
    prt_context *ctx = tu_context();
    prt_dataset *d;
    ck_assert_int_eq(prt_dataset_open_idx(ctx, tp("m.gz"), tp("l"), &d), PRT_OK);
    check_std_dataset(d);
    prt_dataset_destroy(d);
    prt_context_destroy(ctx);
    free(a.p);
}
END_TEST

/* ---- malformed files --------------------------------------------------------- */

static char msg[2048];

START_TEST(test_idx_missing) {
    std_files(tp("i"), tp("l"), false);
    snprintf(msg, sizeof msg, "%s: cannot open: No such file or directory", tp("nope"));
    expect_idx_error(tp("nope"), tp("l"), PRT_ERR_NOT_FOUND, msg);
    expect_idx_error(tp("i"), tp("nope"), PRT_ERR_NOT_FOUND, msg);
}
END_TEST

START_TEST(test_idx_bad_magic) {
    std_files(tp("i.gz"), tp("l.gz"), true);
    /* the two files swapped */
    snprintf(msg, sizeof msg, "%s: bad magic 0x00000801, expected 0x00000803 (an idx3 image file)", tp("l.gz"));
    expect_idx_error(tp("l.gz"), tp("i.gz"), PRT_ERR_PARSE, msg);
    snprintf(msg, sizeof msg, "%s: bad magic 0x00000803, expected 0x00000801 (an idx1 label file)", tp("i.gz"));
    expect_idx_error(tp("i.gz"), tp("i.gz"), PRT_ERR_PARSE, msg);
    /* not an IDX file at all */
    const char *text = "hello, this is not an idx file";
    write_raw(tp("t"), (const unsigned char *)text, strlen(text));
    snprintf(msg, sizeof msg, "%s: bad magic 0x68656c6c, expected 0x00000803 (an idx3 image file)", tp("t"));
    expect_idx_error(tp("t"), tp("l.gz"), PRT_ERR_PARSE, msg);
}
END_TEST

START_TEST(test_idx_wrong_dtype) {
    std_files(tp("i"), tp("l"), false);
    bytes a = idx_images(0x0D03, SN, SR, SC, std_px, sizeof std_px);
    write_raw(tp("f"), a.p, a.n);
    snprintf(msg, sizeof msg, "%s: data type code 0x0d (float32), expected 0x08 (unsigned byte)", tp("f"));
    expect_idx_error(tp("f"), tp("l"), PRT_ERR_PARSE, msg);
    bytes b = idx_labels(0x0901, SN, std_lb, SN);
    write_gz(tp("s.gz"), b.p, b.n, "wb");
    snprintf(msg, sizeof msg, "%s: data type code 0x09 (signed byte), expected 0x08 (unsigned byte)", tp("s.gz"));
    expect_idx_error(tp("i"), tp("s.gz"), PRT_ERR_PARSE, msg);
    free(a.p);
    free(b.p);
}
END_TEST

START_TEST(test_idx_bad_dims) {
    std_files(tp("i"), tp("l"), false);
    bytes a = idx_images(0x803, 0, SR, SC, NULL, 0);
    write_raw(tp("z"), a.p, a.n);
    snprintf(msg, sizeof msg, "%s: the header declares 0 images", tp("z"));
    expect_idx_error(tp("z"), tp("l"), PRT_ERR_PARSE, msg);
    free(a.p);

    bytes b = idx_labels(0x801, 0, NULL, 0);
    write_raw(tp("zl"), b.p, b.n);
    snprintf(msg, sizeof msg, "%s: the header declares 0 labels", tp("zl"));
    expect_idx_error(tp("i"), tp("zl"), PRT_ERR_PARSE, msg);
    free(b.p);

    a = idx_images(0x803, SN, 0, SC, NULL, 0);
    write_raw(tp("r0"), a.p, a.n);
    snprintf(msg, sizeof msg, "%s: image size 0x5 is out of range (rows and columns must be 1..4096)", tp("r0"));
    expect_idx_error(tp("r0"), tp("l"), PRT_ERR_PARSE, msg);
    free(a.p);

    a = idx_images(0x803, SN, 28, 5000, NULL, 0);
    write_raw(tp("c5k"), a.p, a.n);
    snprintf(msg, sizeof msg, "%s: image size 28x5000 is out of range (rows and columns must be 1..4096)",
             tp("c5k"));
    expect_idx_error(tp("c5k"), tp("l"), PRT_ERR_PARSE, msg);
    free(a.p);
}
END_TEST

/* An allocator that remembers its largest request, to show that a header
 * announcing too much is refused before anything that size is allocated. */
static size_t largest;
static void *tracking_alloc(void *ud, void *ptr, size_t old_size, size_t new_size) {
    (void)ud, (void)old_size;
    if (new_size == 0) {
        free(ptr);
        return NULL;
    }
    if (new_size > largest) largest = new_size;
    return realloc(ptr, new_size);
}

START_TEST(test_idx_size_limit) {
    std_files(tp("i"), tp("l"), false);
    bytes a = idx_images(0x803, 100000, 4096, 4096, std_px, sizeof std_px);
    write_raw(tp("huge"), a.p, a.n);
    free(a.p);
    prt_context_options o = {.struct_size = sizeof o, .alloc = tracking_alloc, .log_level = PRT_LOG_ERROR};
    prt_context *ctx;
    ck_assert_int_eq(prt_context_create(&o, &ctx), PRT_OK);
    largest = 0;
    prt_dataset *d;
    ck_assert_int_eq(prt_dataset_open_idx(ctx, tp("huge"), tp("l"), &d), PRT_ERR_LIMIT);
    snprintf(msg, sizeof msg,
             "%s: 100000 images of 4096x4096 exceed the in-memory limit of 536870912 pixels (2 GiB as float32)",
             tp("huge"));
    ck_assert_str_eq(prt_last_error(ctx), msg);
    ck_assert_uint_lt(largest, 1 << 20);
    /* one image under the limit but with no data: the count check precedes allocation too */
    a = idx_images(0x803, 30000, 4096, 4, NULL, 0);
    write_raw(tp("many"), a.p, a.n);
    free(a.p);
    largest = 0;
    ck_assert_int_eq(prt_dataset_open_idx(ctx, tp("many"), tp("l"), &d), PRT_ERR_PARSE);
    snprintf(msg, sizeof msg, "%s has 30000 images but %s has 3 labels", tp("many"), tp("l"));
    ck_assert_str_eq(prt_last_error(ctx), msg);
    ck_assert_uint_lt(largest, 1 << 20);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(test_idx_count_mismatch) {
    std_files(tp("i.gz"), tp("l.gz"), true);
    bytes b = idx_labels(0x801, 2, std_lb, 2);
    write_gz(tp("l2.gz"), b.p, b.n, "wb");
    snprintf(msg, sizeof msg, "%s has 3 images but %s has 2 labels", tp("i.gz"), tp("l2.gz"));
    expect_idx_error(tp("i.gz"), tp("l2.gz"), PRT_ERR_PARSE, msg);
    free(b.p);
}
END_TEST

START_TEST(test_idx_truncated) {
    std_files(tp("i"), tp("l"), false);
    bytes a = read_all(tp("i"));
    /* the header */
    write_raw(tp("h"), a.p, 10);
    snprintf(msg, sizeof msg, "%s: truncated: expected 16 header bytes, got 10", tp("h"));
    expect_idx_error(tp("h"), tp("l"), PRT_ERR_PARSE, msg);
    write_raw(tp("e"), a.p, 0);
    snprintf(msg, sizeof msg, "%s: truncated: expected 8 header bytes, got 0", tp("e"));
    expect_idx_error(tp("i"), tp("e"), PRT_ERR_PARSE, msg);
    /* the pixels, raw and inside a complete gzip stream */
    write_raw(tp("p"), a.p, 16 + 50);
    snprintf(msg, sizeof msg, "%s: truncated: expected 60 bytes of pixel data, got 50", tp("p"));
    expect_idx_error(tp("p"), tp("l"), PRT_ERR_PARSE, msg);
    write_gz(tp("p.gz"), a.p, 16 + 7, "wb");
    snprintf(msg, sizeof msg, "%s: truncated: expected 60 bytes of pixel data, got 7", tp("p.gz"));
    expect_idx_error(tp("p.gz"), tp("l"), PRT_ERR_PARSE, msg);
    /* the labels */
    bytes b = read_all(tp("l"));
    write_gz(tp("l.gz"), b.p, 8 + 1, "wb");
    snprintf(msg, sizeof msg, "%s: truncated: expected 3 bytes of label data, got 1", tp("l.gz"));
    expect_idx_error(tp("i"), tp("l.gz"), PRT_ERR_PARSE, msg);
    free(a.p);
    free(b.p);
}
END_TEST

START_TEST(test_idx_gzip_cut) {
    /* A compressed file cut short. Stored blocks (level 0) map content bytes to
     * file bytes one to one: 10 header bytes, a 5-byte block header, the 76
     * content bytes, an 8-byte trailer. */
    std_files(tp("i"), tp("l"), false);
    bytes a = read_all(tp("i"));
    write_gz(tp("s.gz"), a.p, a.n, "wb0");
    bytes z = read_all(tp("s.gz"));
    ck_assert_uint_eq(z.n, 10 + 5 + 76 + 8);
    write_raw(tp("cut.gz"), z.p, 10 + 5 + 16 + 30);
    snprintf(msg, sizeof msg, "%s: truncated: expected 60 bytes of pixel data, got 30", tp("cut.gz"));
    expect_idx_error(tp("cut.gz"), tp("l"), PRT_ERR_PARSE, msg);
    /* all content there, the trailer (CRC and length) missing */
    write_raw(tp("notrailer.gz"), z.p, z.n - 8);
    snprintf(msg, sizeof msg, "%s: truncated gzip data: the stream ends before its trailer", tp("notrailer.gz"));
    expect_idx_error(tp("notrailer.gz"), tp("l"), PRT_ERR_PARSE, msg);
    free(a.p);
    free(z.p);
}
END_TEST

START_TEST(test_idx_trailing) {
    std_files(tp("i"), tp("l"), false);
    bytes a = read_all(tp("i")), b = read_all(tp("l"));
    put(&a, "x", 1);
    write_raw(tp("t"), a.p, a.n);
    snprintf(msg, sizeof msg, "%s: trailing bytes after the expected 60 bytes of pixel data", tp("t"));
    expect_idx_error(tp("t"), tp("l"), PRT_ERR_PARSE, msg);
    put(&b, "yz", 2);
    write_gz(tp("t.gz"), b.p, b.n, "wb");
    snprintf(msg, sizeof msg, "%s: trailing bytes after the expected 3 bytes of label data", tp("t.gz"));
    expect_idx_error(tp("i"), tp("t.gz"), PRT_ERR_PARSE, msg);
    /* content exact, but bytes that are not gzip data after the gzip member */
    write_gz(tp("g.gz"), a.p, a.n - 1, "wb");
    bytes z = read_all(tp("g.gz"));
    put(&z, "junk", 4);
    write_raw(tp("g.gz"), z.p, z.n);
    snprintf(msg, sizeof msg, "%s: trailing bytes after the gzip data", tp("g.gz"));
    expect_idx_error(tp("g.gz"), tp("l"), PRT_ERR_PARSE, msg);
    free(a.p);
    free(b.p);
    free(z.p);
}
END_TEST

START_TEST(test_idx_corrupt_gzip) {
    std_files(tp("i.gz"), tp("l.gz"), true);
    bytes z = read_all(tp("i.gz"));
    /* gzopen writes a 10-byte header; the next byte starts the first deflate
     * block, whose type bits 11 are reserved */
    z.p[10] |= 0x06;
    write_raw(tp("bt.gz"), z.p, z.n);
    snprintf(msg, sizeof msg, "%s: corrupt gzip data: invalid block type", tp("bt.gz"));
    expect_idx_error(tp("bt.gz"), tp("l.gz"), PRT_ERR_PARSE, msg);
    free(z.p);
    /* the trailer: CRC-32, then the length */
    z = read_all(tp("l.gz"));
    z.p[z.n - 8] ^= 0xff;
    write_raw(tp("crc.gz"), z.p, z.n);
    snprintf(msg, sizeof msg, "%s: corrupt gzip data: incorrect data check", tp("crc.gz"));
    expect_idx_error(tp("i.gz"), tp("crc.gz"), PRT_ERR_PARSE, msg);
    z.p[z.n - 8] ^= 0xff;
    z.p[z.n - 4] ^= 0x01;
    write_raw(tp("len.gz"), z.p, z.n);
    snprintf(msg, sizeof msg, "%s: corrupt gzip data: incorrect length check", tp("len.gz"));
    expect_idx_error(tp("i.gz"), tp("len.gz"), PRT_ERR_PARSE, msg);
    /* a gzip magic followed by garbage */
    const unsigned char bad[] = {0x1f, 0x8b, 0x07, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3};
    write_raw(tp("m.gz"), bad, sizeof bad);
    snprintf(msg, sizeof msg, "%s: corrupt gzip data: unknown compression method", tp("m.gz"));
    expect_idx_error(tp("m.gz"), tp("l.gz"), PRT_ERR_PARSE, msg);
    free(z.p);
}
END_TEST

/* Out of memory at every allocation of open and loader creation: a clean error,
 * nothing leaked (ASan checks the leaks). */
static int budget;
static void *failing_alloc(void *ud, void *ptr, size_t old_size, size_t new_size) {
    (void)ud, (void)old_size;
    if (new_size == 0) {
        free(ptr);
        return NULL;
    }
    if (budget-- <= 0) return NULL;
    return realloc(ptr, new_size);
}

START_TEST(test_out_of_memory) {
    std_files(tp("i.gz"), tp("l.gz"), true);
    int ok_at = -1;
    for (int b = 0; b < 400 && ok_at < 0; b++) {
        prt_context_options o = {.struct_size = sizeof o, .alloc = failing_alloc, .log_level = PRT_LOG_ERROR};
        prt_context *ctx;
        budget = 1 << 30;
        ck_assert_int_eq(prt_context_create(&o, &ctx), PRT_OK);
        budget = b;
        prt_dataset *d = NULL;
        prt_loader *ld = NULL;
        prt_status st = prt_dataset_open_idx(ctx, tp("i.gz"), tp("l.gz"), &d);
        if (st == PRT_OK) {
            prt_loader_options lo;
            prt_loader_defaults(&lo);
            lo.batch = 2;
            lo.prefetch = 2;
            st = prt_loader_create(ctx, d, &lo, &ld);
        }
        if (st == PRT_OK) ok_at = b;
        else ck_assert_int_eq(st, PRT_ERR_NOMEM);
        budget = 1 << 30;
        prt_loader_destroy(ld);
        prt_dataset_destroy(d);
        prt_context_destroy(ctx);
    }
    ck_assert_int_gt(ok_at, 3);
}
END_TEST

/* ---- named and synthetic datasets -------------------------------------------- */

static void expect_open_error(const char *name, const char *split, prt_status want, const char *m) {
    prt_context *ctx = tu_context();
    prt_dataset *d = (prt_dataset *)&d;
    prt_status st = prt_dataset_open(ctx, name, split, &d);
    ck_assert_str_eq(prt_last_error(ctx), m);
    ck_assert_int_eq(st, want);
    ck_assert_ptr_null(d);
    prt_context_destroy(ctx);
}

START_TEST(test_open_errors) {
    expect_open_error("mnist", "train", PRT_ERR_NOT_FOUND, "unknown dataset 'mnist' (known: fashion-mnist, synthetic:N)");
    expect_open_error("fashion-mnist", "val", PRT_ERR_INVALID,
                      "dataset 'fashion-mnist': unknown split 'val' (expected 'train' or 'test')");
    expect_open_error("synthetic:0", "train", PRT_ERR_INVALID,
                      "dataset 'synthetic:0': expected synthetic:N with N a sample count from 1 to 2147483647");
    expect_open_error("synthetic:", "train", PRT_ERR_INVALID,
                      "dataset 'synthetic:': expected synthetic:N with N a sample count from 1 to 2147483647");
    expect_open_error("synthetic:12x", "test", PRT_ERR_INVALID,
                      "dataset 'synthetic:12x': expected synthetic:N with N a sample count from 1 to 2147483647");
    expect_open_error("synthetic:99999999999999999999999", "test", PRT_ERR_INVALID,
                      "dataset 'synthetic:99999999999999999999999': expected synthetic:N with N a sample count "
                      "from 1 to 2147483647");
    /* a data folder without the files */
    setenv("PARROTS_DATA_DIR", tmpdir, 1);
    snprintf(msg, sizeof msg,
             "fashion-mnist: %s/train-images-idx3-ubyte.gz not found (install the Debian package "
             "dataset-fashion-mnist or set PARROTS_DATA_DIR to a folder holding the four IDX files)",
             tmpdir);
    expect_open_error("fashion-mnist", "train", PRT_ERR_NOT_FOUND, msg);
}
END_TEST

START_TEST(test_open_data_dir) {
    /* PARROTS_DATA_DIR replaces the package's folder; compressed or unpacked files */
    std_files(tp("t10k-images-idx3-ubyte.gz"), tp("t10k-labels-idx1-ubyte"), false);
    setenv("PARROTS_DATA_DIR", tmpdir, 1);
    prt_context *ctx = tu_context();
    prt_dataset *d;
    ck_assert_int_eq(prt_dataset_open(ctx, "fashion-mnist", "test", &d), PRT_OK);
    check_std_dataset(d);
    prt_dataset_destroy(d);
    ck_assert_int_eq(prt_dataset_open(ctx, "fashion-mnist", "train", &d), PRT_ERR_NOT_FOUND);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(test_synthetic) {
    prt_context *ctx = tu_context();
    prt_dataset *a, *b, *c;
    ck_assert_int_eq(prt_dataset_open(ctx, "synthetic:300", "train", &a), PRT_OK);
    ck_assert_int_eq(prt_dataset_open(ctx, "synthetic:300", "train", &b), PRT_OK);
    ck_assert_int_eq(prt_dataset_open(ctx, "synthetic:300", "test", &c), PRT_OK);
    ck_assert_int_eq(prt_dataset_size(a), 300);
    ck_assert_int_eq(prt_dataset_classes(a), 10);
    prt_shape s = prt_dataset_sample_shape(a);
    ck_assert_int_eq(s.ndim, 3);
    ck_assert(s.d[0] == 1 && s.d[1] == 28 && s.d[2] == 28);
    /* deterministic, and the test split has other samples */
    ck_assert(memcmp(prt_dataset_image(a, 0), prt_dataset_image(b, 0), 300 * 784 * sizeof(float)) == 0);
    ck_assert(memcmp(prt_dataset_image(a, 0), prt_dataset_image(c, 0), 784 * sizeof(float)) != 0);
    int count[10] = {0};
    for (int i = 0; i < 300; i++) {
        ck_assert_int_eq(prt_dataset_label(a, i), prt_dataset_label(b, i));
        count[prt_dataset_label(a, i)]++;
        const float *x = prt_dataset_image(a, i);
        for (int k = 0; k < 784; k++) ck_assert(x[k] >= 0.0f && x[k] <= 1.0f);
    }
    for (int k = 0; k < 10; k++) ck_assert_int_eq(count[k], 30);
    prt_dataset_destroy(a);
    prt_dataset_destroy(b);
    prt_dataset_destroy(c);

    /* another shape; seeds change the data */
    prt_shape s3 = prt_shape_make(3, (const int64_t[]){3, 8, 6});
    ck_assert_int_eq(prt_dataset_synthetic(ctx, 40, &s3, 4, 1, &a), PRT_OK);
    ck_assert_int_eq(prt_dataset_synthetic(ctx, 40, &s3, 4, 2, &b), PRT_OK);
    ck_assert_int_eq(prt_dataset_classes(a), 4);
    prt_shape sa = prt_dataset_sample_shape(a);
    ck_assert(prt_shape_eq(&s3, &sa));
    ck_assert(memcmp(prt_dataset_image(a, 0), prt_dataset_image(b, 0), 144 * sizeof(float)) != 0);
    prt_dataset_destroy(a);
    prt_dataset_destroy(b);
    ck_assert_int_eq(prt_dataset_synthetic(ctx, 40, &s3, 0, 1, &a), PRT_ERR_INVALID);
    ck_assert_str_eq(prt_last_error(ctx), "synthetic dataset: 0 classes (expected 1..65536)");
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(test_synthetic_learnable) {
    /* nearest class mean, fitted on the train split, classifies the test split */
    prt_context *ctx = tu_context();
    prt_dataset *tr, *te;
    ck_assert_int_eq(prt_dataset_open(ctx, "synthetic:2000", "train", &tr), PRT_OK);
    ck_assert_int_eq(prt_dataset_open(ctx, "synthetic:1000", "test", &te), PRT_OK);
    static double mean[10][784];
    int cnt[10] = {0};
    memset(mean, 0, sizeof mean);
    for (int i = 0; i < 2000; i++) {
        int c = prt_dataset_label(tr, i);
        const float *x = prt_dataset_image(tr, i);
        for (int k = 0; k < 784; k++) mean[c][k] += x[k];
        cnt[c]++;
    }
    for (int c = 0; c < 10; c++)
        for (int k = 0; k < 784; k++) mean[c][k] /= cnt[c];
    int right = 0;
    for (int i = 0; i < 1000; i++) {
        const float *x = prt_dataset_image(te, i);
        int best = -1;
        double bd = INFINITY;
        for (int c = 0; c < 10; c++) {
            double dist = 0;
            for (int k = 0; k < 784; k++) dist += (x[k] - mean[c][k]) * (x[k] - mean[c][k]);
            if (dist < bd) bd = dist, best = c;
        }
        right += best == prt_dataset_label(te, i);
    }
    ck_assert_int_ge(right, 900);
    prt_dataset_destroy(tr);
    prt_dataset_destroy(te);
    prt_context_destroy(ctx);
}
END_TEST

/* ---- the loader ------------------------------------------------------------------ */

/* n samples of rows×cols whose first two pixels spell the sample index, so the
 * order can be read back from the batches (no augmentation). */
static prt_dataset *id_dataset(prt_context *ctx, int n, int rows, int cols) {
    size_t plane = (size_t)rows * cols;
    unsigned char *px = malloc((size_t)n * plane), *lb = malloc((size_t)n);
    for (int i = 0; i < n; i++) {
        for (size_t k = 0; k < plane; k++) px[i * plane + k] = (unsigned char)(1 + (i * 7 + k * 13) % 254);
        px[i * plane + 0] = (unsigned char)(i & 255);
        px[i * plane + 1] = (unsigned char)(i >> 8);
        lb[i] = (unsigned char)(i % 10);
    }
    bytes a = idx_images(0x803, (uint32_t)n, (uint32_t)rows, (uint32_t)cols, px, (size_t)n * plane);
    bytes b = idx_labels(0x801, (uint32_t)n, lb, (size_t)n);
    write_gz(tp("id-i.gz"), a.p, a.n, "wb");
    write_raw(tp("id-l"), b.p, b.n);
    free(a.p), free(b.p), free(px), free(lb);
    prt_dataset *d;
    ck_assert_int_eq(prt_dataset_open_idx(ctx, tp("id-i.gz"), tp("id-l"), &d), PRT_OK);
    return d;
}

static int64_t sample_id(const float *x) {
    return (int64_t)lrintf(x[0] * 255.0f) + 256 * (int64_t)lrintf(x[1] * 255.0f);
}

/* Everything a loader returns over `epochs` epochs: per item its n, and the
 * concatenated images and labels. */
typedef struct run {
    int64_t items, samples;
    int64_t ns[4096];
    float *img;
    int32_t *lab;
} run;

static run *collect(prt_context *ctx, const prt_dataset *d, const prt_loader_options *o, int epochs) {
    prt_loader *ld;
    ck_assert_int_eq(prt_loader_create(ctx, d, o, &ld), PRT_OK);
    prt_shape ss = prt_dataset_sample_shape(d);
    int64_t numel = prt_shape_count(&ss);
    run *r = calloc(1, sizeof *r);
    size_t cap = (size_t)(epochs + 1) * (size_t)d->n;
    r->img = malloc(cap * (size_t)numel * sizeof(float));
    r->lab = malloc(cap * sizeof(int32_t));
    float *img = malloc((size_t)(o->batch * numel) * sizeof(float));
    int32_t *lab = malloc((size_t)o->batch * sizeof(int32_t));
    for (int e = 0; e < epochs; e++) {
        ck_assert_int_eq(prt_loader_epoch(ld), e);
        int64_t n, batches = 0;
        do {
            ck_assert_int_eq(prt_loader_next(ld, img, lab, &n), PRT_OK);
            ck_assert_int_lt(r->items, 4096);
            r->ns[r->items++] = n;
            ck_assert_int_le(n, o->batch);
            memcpy(r->img + r->samples * numel, img, (size_t)(n * numel) * sizeof(float));
            memcpy(r->lab + r->samples, lab, (size_t)n * sizeof(int32_t));
            r->samples += n;
            batches += n > 0;
        } while (n > 0);
        ck_assert_int_eq(batches, prt_loader_batches_per_epoch(ld));
    }
    ck_assert_int_eq(prt_loader_epoch(ld), epochs);
    ck_assert(prt_loader_wait_seconds(ld) >= 0.0);
    prt_loader_destroy(ld);
    free(img);
    free(lab);
    return r;
}

static void run_free(run *r) {
    free(r->img);
    free(r->lab);
    free(r);
}

static bool runs_equal(const run *a, const run *b, int64_t numel) {
    return a->items == b->items && a->samples == b->samples &&
           memcmp(a->ns, b->ns, (size_t)a->items * sizeof(int64_t)) == 0 &&
           memcmp(a->img, b->img, (size_t)(a->samples * numel) * sizeof(float)) == 0 &&
           memcmp(a->lab, b->lab, (size_t)a->samples * sizeof(int32_t)) == 0;
}

START_TEST(test_loader_plain_order) {
    prt_context *ctx = tu_context();
    prt_dataset *d = id_dataset(ctx, 300, 2, 3);
    prt_loader_options o;
    prt_loader_defaults(&o);
    ck_assert_int_eq(o.shards, 1);
    ck_assert(o.std == 1.0f && o.mean == 0.0f);
    o.batch = 64;
    o.prefetch = 0;
    run *r = collect(ctx, d, &o, 2);
    /* 4 full batches, one of 44, the end marker; twice */
    int64_t want[] = {64, 64, 64, 64, 44, 0, 64, 64, 64, 64, 44, 0};
    ck_assert_int_eq(r->items, 12);
    for (int i = 0; i < 12; i++) ck_assert_int_eq(r->ns[i], want[i]);
    for (int64_t p = 0; p < 600; p++) {
        ck_assert_int_eq(sample_id(r->img + p * 6), p % 300);
        ck_assert_int_eq(r->lab[p], (p % 300) % 10);
    }
    run_free(r);
    o.drop_last = true;
    r = collect(ctx, d, &o, 1);
    ck_assert_int_eq(r->items, 5);
    ck_assert_int_eq(r->samples, 256);
    run_free(r);
    prt_dataset_destroy(d);
    prt_context_destroy(ctx);
}
END_TEST

static void epoch_ids(const run *r, int64_t epoch, int64_t n, int64_t *ids) {
    for (int64_t p = 0; p < n; p++) ids[p] = sample_id(r->img + (epoch * n + p) * 6);
}

START_TEST(test_loader_shuffle) {
    prt_context *ctx = tu_context();
    enum { N = 300 };
    prt_dataset *d = id_dataset(ctx, N, 2, 3);
    prt_loader_options o;
    prt_loader_defaults(&o);
    o.batch = 50;
    o.prefetch = 0;
    o.shuffle = true;
    o.seed = 42;
    run *a = collect(ctx, d, &o, 3), *b = collect(ctx, d, &o, 3);
    o.seed = 43;
    run *c = collect(ctx, d, &o, 1);
    ck_assert(runs_equal(a, b, 6));
    static int64_t e0[N], e1[N], e2[N], s1[N];
    epoch_ids(a, 0, N, e0);
    epoch_ids(a, 1, N, e1);
    epoch_ids(a, 2, N, e2);
    epoch_ids(c, 0, N, s1);
    /* each epoch is a permutation, labels travel with their images */
    const int64_t *eps[] = {e0, e1, e2};
    for (int e = 0; e < 3; e++) {
        static int seen[N];
        memset(seen, 0, sizeof seen);
        for (int p = 0; p < N; p++) {
            ck_assert(eps[e][p] >= 0 && eps[e][p] < N);
            seen[eps[e][p]]++;
            ck_assert_int_eq(a->lab[e * N + p], eps[e][p] % 10);
        }
        for (int i = 0; i < N; i++) ck_assert_int_eq(seen[i], 1);
    }
    /* different epochs and seeds give different orders, and a shuffle moves most samples */
    ck_assert(memcmp(e0, e1, sizeof e0) != 0 && memcmp(e1, e2, sizeof e0) != 0);
    ck_assert(memcmp(e0, s1, sizeof e0) != 0);
    int fixed = 0;
    for (int p = 0; p < N; p++) fixed += e0[p] == p;
    ck_assert_int_lt(fixed, 20);
    run_free(a), run_free(b), run_free(c);
    prt_dataset_destroy(d);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(test_loader_shards) {
    prt_context *ctx = tu_context();
    for (int n = 300; n <= 302; n++) {
        prt_dataset *d = id_dataset(ctx, n, 2, 3);
        prt_loader_options o;
        prt_loader_defaults(&o);
        o.shuffle = true;
        o.seed = 7;
        o.prefetch = 0;
        o.crop_pad = 1;
        o.flip = true;
        /* the whole epoch's order in one batch, without augmentation */
        prt_loader_options full = o;
        full.batch = n;
        full.crop_pad = 0;
        full.flip = false;
        run *all = collect(ctx, d, &full, 2);
        /* every sample one by one, augmented */
        o.batch = 1;
        run *aug1 = collect(ctx, d, &o, 2);
        const int S = 3, per = n / S;
        static int hits[2][400];
        memset(hits, 0, sizeof hits);
        for (int s = 0; s < S; s++) {
            o.shard = s;
            o.shards = S;
            o.batch = 16;
            run *r = collect(ctx, d, &o, 2);
            ck_assert_int_eq(r->samples, 2 * per);
            /* shard s takes positions s, s+S, s+2S, ... of every epoch's order; its
             * augmentation is that of the sample, whichever shard reads it */
            for (int e = 0; e < 2; e++)
                for (int k = 0; k < per; k++) {
                    int64_t pos = (int64_t)k * S + s;
                    int32_t lab = r->lab[e * per + k];
                    ck_assert_int_eq(lab, all->lab[e * n + pos]);
                    ck_assert(memcmp(r->img + (e * per + k) * 6, aug1->img + (e * n + pos) * 6, 6 * sizeof(float)) == 0);
                    hits[e][pos]++;
                }
            run_free(r);
        }
        run_free(aug1);
        /* the shards partition the first per·S positions; the rest are skipped */
        for (int e = 0; e < 2; e++)
            for (int p = 0; p < n; p++) ck_assert_int_eq(hits[e][p], p < per * S ? 1 : 0);
        run_free(all);
        prt_dataset_destroy(d);
    }
    prt_context_destroy(ctx);
}
END_TEST

/* out is src (h×w) cropped at offset (dy, dx) with zero padding, then mirrored if f. */
static bool is_crop(const float *src, const float *out, int h, int w, int dy, int dx, int f, float zero) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int sy = y + dy, sx = (f ? w - 1 - x : x) + dx;
            float v = (sy < 0 || sy >= h || sx < 0 || sx >= w) ? zero : src[sy * w + sx];
            if (out[y * w + x] != v) return false;
        }
    return true;
}

START_TEST(test_loader_flip) {
    prt_context *ctx = tu_context();
    prt_dataset *d = id_dataset(ctx, 64, 4, 5);
    prt_loader_options o;
    prt_loader_defaults(&o);
    o.batch = 64;
    o.prefetch = 0;
    o.flip = true;
    o.seed = 3;
    run *r = collect(ctx, d, &o, 2);
    int flipped[2] = {0, 0}, changed = 0;
    for (int e = 0; e < 2; e++)
        for (int i = 0; i < 64; i++) {
            const float *src = prt_dataset_image(d, i), *out = r->img + (e * 64 + i) * 20;
            bool same = is_crop(src, out, 4, 5, 0, 0, 0, 0.0f), mirror = is_crop(src, out, 4, 5, 0, 0, 1, 0.0f);
            ck_assert(same != mirror); /* exactly one: the image is not symmetric */
            flipped[e] += mirror;
            if (e == 1) changed += mirror != is_crop(src, r->img + i * 20, 4, 5, 0, 0, 1, 0.0f);
        }
    /* both outcomes happen, and epochs draw again */
    ck_assert(flipped[0] > 10 && flipped[0] < 54);
    ck_assert(flipped[1] > 10 && flipped[1] < 54);
    ck_assert_int_gt(changed, 5);
    run_free(r);
    prt_dataset_destroy(d);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(test_loader_crop) {
    prt_context *ctx = tu_context();
    enum { N = 200, H = 4, W = 5, P = 2 };
    prt_dataset *d = id_dataset(ctx, N, H, W);
    prt_loader_options o;
    prt_loader_defaults(&o);
    o.batch = 64;
    o.prefetch = 0;
    o.crop_pad = P;
    o.flip = true;
    o.seed = 11;
    run *r = collect(ctx, d, &o, 1);
    /* every output is some crop of its padded image (all source pixels but the
     * index pixels are nonzero, so the offset is unique) */
    static int seen[2 * P + 1][2 * P + 1][2];
    memset(seen, 0, sizeof seen);
    int padded = 0;
    for (int i = 0; i < N; i++) {
        const float *src = prt_dataset_image(d, i), *out = r->img + i * H * W;
        int found = 0;
        for (int dy = -P; dy <= P; dy++)
            for (int dx = -P; dx <= P; dx++)
                for (int f = 0; f < 2; f++)
                    if (is_crop(src, out, H, W, dy, dx, f, 0.0f)) {
                        found++;
                        seen[dy + P][dx + P][f]++;
                        padded += dy != 0 || dx != 0;
                    }
        ck_assert_int_ge(found, 1);
    }
    int distinct = 0;
    for (int a = 0; a < 2 * P + 1; a++)
        for (int b = 0; b < 2 * P + 1; b++) distinct += (seen[a][b][0] > 0) + (seen[a][b][1] > 0);
    ck_assert_int_ge(distinct, 30); /* of 50 (offset, flip) outcomes over 200 draws */
    ck_assert_int_gt(padded, 100);
    /* the outcome depends on (seed, epoch, sample) only: not on the batch size */
    o.batch = 7;
    run *r7 = collect(ctx, d, &o, 1);
    ck_assert(memcmp(r->img, r7->img, (size_t)N * H * W * sizeof(float)) == 0);
    run_free(r7);
    /* padding is the pixel value 0, normalised like the others */
    o.mean = 0.5f;
    o.std = 0.25f;
    o.batch = 64;
    run *rn = collect(ctx, d, &o, 1);
    for (int64_t k = 0; k < N * H * W; k++) ck_assert(rn->img[k] == (r->img[k] - 0.5f) / 0.25f);
    run_free(rn);
    run_free(r);
    prt_dataset_destroy(d);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(test_loader_normalise) {
    prt_context *ctx = tu_context();
    prt_dataset *d = id_dataset(ctx, 100, 3, 3);
    prt_loader_options o;
    prt_loader_defaults(&o);
    o.batch = 30;
    o.prefetch = 0;
    o.mean = 0.2860f;
    o.std = 0.3530f;
    run *r = collect(ctx, d, &o, 1);
    for (int i = 0; i < 100; i++)
        for (int k = 0; k < 9; k++)
            ck_assert(r->img[i * 9 + k] == (prt_dataset_image(d, i)[k] - 0.2860f) / 0.3530f);
    run_free(r);
    prt_dataset_destroy(d);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(test_loader_prefetch_identical) {
    prt_context *ctx = tu_context();
    prt_dataset *d;
    ck_assert_int_eq(prt_dataset_open(ctx, "synthetic:500", "train", &d), PRT_OK);
    prt_loader_options o;
    prt_loader_defaults(&o);
    o.batch = 48;
    o.shuffle = true;
    o.seed = 5;
    o.crop_pad = 2;
    o.flip = true;
    o.mean = 0.5f;
    o.std = 0.3f;
    o.prefetch = 0;
    run *ref = collect(ctx, d, &o, 3);
    ck_assert_int_eq(ref->items, 3 * 12); /* 10 full, one of 20, the marker */
    int pf[] = {1, 2, 3, 8};
    for (int i = 0; i < 4; i++) {
        o.prefetch = pf[i];
        run *r = collect(ctx, d, &o, 3);
        ck_assert(runs_equal(ref, r, 784));
        run_free(r);
    }
    run_free(ref);
    prt_dataset_destroy(d);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(test_loader_destroy_mid_epoch) {
    prt_context *ctx = tu_context();
    prt_dataset *d;
    ck_assert_int_eq(prt_dataset_open(ctx, "synthetic:256", "train", &d), PRT_OK);
    float *img = malloc(32 * 784 * sizeof(float));
    int32_t lab[32];
    for (int i = 0; i < 40; i++) {
        prt_loader_options o;
        prt_loader_defaults(&o);
        o.batch = 32;
        o.shuffle = true;
        o.crop_pad = 2;
        o.prefetch = 1 + i % 4;
        prt_loader *ld;
        ck_assert_int_eq(prt_loader_create(ctx, d, &o, &ld), PRT_OK);
        /* 0 to 11 items: before the first, mid-epoch, at the marker, in epoch 1 */
        int64_t n;
        for (int k = 0; k < i % 12; k++) ck_assert_int_eq(prt_loader_next(ld, img, lab, &n), PRT_OK);
        prt_loader_destroy(ld);
    }
    prt_loader_destroy(NULL);
    free(img);
    prt_dataset_destroy(d);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(test_loader_producer_error) {
    prt_context *ctx = tu_context();
    prt_dataset *d = id_dataset(ctx, 50, 2, 3);
    float img[10 * 6];
    int32_t lab[10];
    for (int pf = 0; pf <= 3; pf += 3) {
        prt_loader_options o;
        prt_loader_defaults(&o);
        o.batch = 10;
        o.prefetch = pf;
        prt_loader *ld;
        ck_assert_int_eq(prt_loader_create(ctx, d, &o, &ld), PRT_OK);
        prt_loader_fail_at_(ld, 7); /* epoch 1, batch 1 */
        int64_t n;
        for (int k = 0; k < 7; k++) {
            ck_assert_int_eq(prt_loader_next(ld, img, lab, &n), PRT_OK);
            ck_assert_int_eq(n, k == 5 ? 0 : 10);
        }
        /* the error surfaces at the next call, and stays */
        for (int k = 0; k < 2; k++) {
            prt_error_clear(ctx);
            ck_assert_int_eq(prt_loader_next(ld, img, lab, &n), PRT_ERR_IO);
            ck_assert_int_eq(n, 0);
            ck_assert_str_eq(prt_last_error(ctx), "loader: injected failure at item 7");
        }
        prt_loader_destroy(ld);
    }
    prt_dataset_destroy(d);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(test_loader_wait_time) {
    prt_context *ctx = tu_context();
    prt_dataset *d;
    ck_assert_int_eq(prt_dataset_open(ctx, "synthetic:256", "train", &d), PRT_OK);
    prt_loader_options o;
    prt_loader_defaults(&o);
    o.batch = 64;
    o.crop_pad = 2;
    o.prefetch = 0;
    prt_loader *ld;
    ck_assert_int_eq(prt_loader_create(ctx, d, &o, &ld), PRT_OK);
    ck_assert(prt_loader_wait_seconds(ld) == 0.0);
    float *img = malloc(64 * 784 * sizeof(float));
    int32_t lab[64];
    int64_t n;
    for (int k = 0; k < 3; k++) ck_assert_int_eq(prt_loader_next(ld, img, lab, &n), PRT_OK);
    /* without prefetch the consumer waits for the whole preparation */
    ck_assert(prt_loader_wait_seconds(ld) > 0.0);
    ck_assert_int_eq(prt_loader_next(ld, NULL, lab, &n), PRT_ERR_INVALID);
    ck_assert_str_eq(prt_last_error(ctx), "loader: no images or labels buffer given");
    prt_loader_destroy(ld);
    free(img);
    prt_dataset_destroy(d);
    prt_context_destroy(ctx);
}
END_TEST

static void expect_loader_error(const prt_dataset *d, const prt_loader_options *o, const char *m) {
    prt_context *ctx = tu_context();
    prt_loader *ld = (prt_loader *)&ld;
    prt_status st = prt_loader_create(ctx, d, o, &ld);
    ck_assert_str_eq(prt_last_error(ctx), m);
    ck_assert_int_eq(st, PRT_ERR_INVALID);
    ck_assert_ptr_null(ld);
    prt_context_destroy(ctx);
}

START_TEST(test_loader_options) {
    prt_context *ctx = tu_context();
    prt_dataset *d = id_dataset(ctx, 100, 2, 3), *flat;
    prt_loader_options o, base;
    prt_loader_defaults(&base);
    o = base, o.batch = 0;
    expect_loader_error(d, &o, "loader: batch 0 must be at least 1");
    o = base, o.batch = 101;
    expect_loader_error(d, &o, "loader: batch 101 is larger than the dataset (100 samples)");
    o = base, o.batch = 40, o.shards = 3;
    expect_loader_error(d, &o, "loader: batch 40 is larger than a shard (33 samples in each of 3 shards)");
    o = base, o.shards = 0;
    expect_loader_error(d, &o, "loader: shard 0 of 0 is out of range (0 <= shard < shards)");
    o = base, o.shard = 2, o.shards = 2;
    expect_loader_error(d, &o, "loader: shard 2 of 2 is out of range (0 <= shard < shards)");
    o = base, o.batch = 1, o.shards = 101;
    expect_loader_error(d, &o, "loader: 100 samples cannot be split into 101 shards");
    o = base, o.crop_pad = -1;
    expect_loader_error(d, &o, "loader: crop_pad -1 is out of range (0..4096)");
    o = base, o.std = 0.0f;
    expect_loader_error(d, &o, "loader: normalisation needs a finite mean and a positive finite std (got 0, 0)");
    o = base, o.mean = NAN;
    expect_loader_error(d, &o, "loader: normalisation needs a finite mean and a positive finite std (got nan, 1)");
    o = base, o.prefetch = 65;
    expect_loader_error(d, &o, "loader: prefetch 65 is out of range (0..64)");
    prt_shape s1 = prt_shape_make(1, (const int64_t[]){12});
    ck_assert_int_eq(prt_dataset_synthetic(ctx, 100, &s1, 3, 1, &flat), PRT_OK);
    o = base, o.flip = true;
    expect_loader_error(flat, &o, "loader: crop and flip need samples with height and width; got [12]");
    /* NULL options: the defaults */
    prt_loader *ld;
    ck_assert_int_eq(prt_loader_create(ctx, flat, NULL, &ld), PRT_OK);
    ck_assert_int_eq(prt_loader_batches_per_epoch(ld), 2);
    prt_loader_destroy(ld);
    prt_dataset_destroy(flat);
    prt_dataset_destroy(d);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(test_dataset_head) {
    prt_context *ctx = tu_context();
    prt_shape s = {.ndim = 3, .d = {1, 4, 3}};
    prt_dataset *d, *h;
    ck_assert_int_eq(prt_dataset_synthetic(ctx, 30, &s, 5, 9, &d), PRT_OK);
    ck_assert_int_eq(prt_dataset_head(ctx, d, 7, "head", &h), PRT_OK);
    ck_assert_int_eq(prt_dataset_size(h), 7);
    ck_assert_int_eq(prt_dataset_classes(h), prt_dataset_classes(d));
    for (int64_t i = 0; i < 7; i++) {
        ck_assert_int_eq(prt_dataset_label(h, i), prt_dataset_label(d, i));
        ck_assert(memcmp(prt_dataset_image(h, i), prt_dataset_image(d, i), 12 * sizeof(float)) == 0);
    }
    prt_dataset_destroy(h);
    h = (prt_dataset *)&h;
    ck_assert_int_eq(prt_dataset_head(ctx, d, 31, "head", &h), PRT_ERR_INVALID);
    ck_assert_str_eq(prt_last_error(ctx), "head: cannot take the first 31 of 30 samples");
    ck_assert_ptr_null(h);
    ck_assert_int_eq(prt_dataset_head(ctx, d, 0, "head", &h), PRT_ERR_INVALID);
    prt_dataset_destroy(d);
    prt_context_destroy(ctx);
}
END_TEST

static Suite *data_suite(void) {
    Suite *s = suite_create("data");
    TCase *t = tcase_create("idx");
    tcase_add_checked_fixture(t, tmp_setup, tmp_teardown);
    tcase_add_test(t, test_idx_raw);
    tcase_add_test(t, test_dataset_head);
    tcase_add_test(t, test_idx_gzip);
    tcase_add_test(t, test_idx_gzip_members);
    tcase_add_test(t, test_idx_missing);
    tcase_add_test(t, test_idx_bad_magic);
    tcase_add_test(t, test_idx_wrong_dtype);
    tcase_add_test(t, test_idx_bad_dims);
    tcase_add_test(t, test_idx_size_limit);
    tcase_add_test(t, test_idx_count_mismatch);
    tcase_add_test(t, test_idx_truncated);
    tcase_add_test(t, test_idx_gzip_cut);
    tcase_add_test(t, test_idx_trailing);
    tcase_add_test(t, test_idx_corrupt_gzip);
    tcase_add_test(t, test_out_of_memory);
    suite_add_tcase(s, t);

    t = tcase_create("datasets");
    tcase_add_checked_fixture(t, tmp_setup, tmp_teardown);
    tcase_add_test(t, test_open_errors);
    tcase_add_test(t, test_open_data_dir);
    tcase_add_test(t, test_synthetic);
    tcase_add_test(t, test_synthetic_learnable);
    suite_add_tcase(s, t);

    t = tcase_create("loader");
    tcase_add_checked_fixture(t, tmp_setup, tmp_teardown);
    tcase_set_timeout(t, 120);
    tcase_add_test(t, test_loader_plain_order);
    tcase_add_test(t, test_loader_shuffle);
    tcase_add_test(t, test_loader_shards);
    tcase_add_test(t, test_loader_flip);
    tcase_add_test(t, test_loader_crop);
    tcase_add_test(t, test_loader_normalise);
    tcase_add_test(t, test_loader_prefetch_identical);
    tcase_add_test(t, test_loader_destroy_mid_epoch);
    tcase_add_test(t, test_loader_producer_error);
    tcase_add_test(t, test_loader_wait_time);
    tcase_add_test(t, test_loader_options);
    suite_add_tcase(s, t);
    return s;
}

int main(void) { return tu_run(data_suite()); }

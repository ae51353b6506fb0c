/* The weights file (docs/weights-format.md): a save/load round trip through two
 * VMs, the byte layout the document promises, atomic replacement, and every kind
 * of malformed file with its exact message. Malformed files are built here byte
 * by byte (with zlib's crc32 where the CRC must be right), not with the writer. */
// labels: unit

#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "frontends/weights_api.h"
#include "tests/test_util.h"

static const char *net_yaml = "parrots: 1\n"
                              "name: tiny\n"
                              "input: {x: [2, 4, 4]}\n"
                              "layers:\n"
                              "  - conv: {out: 3, kernel: 3, pad: 1}\n"
                              "  - batchnorm:\n"
                              "  - flatten:\n"
                              "  - linear: {out: 5}\n";

/* conv weight [3, 2, 3, 3], conv bias [3], BN scale, shift, mean, var [3],
 * linear weight [5, 48], bias [5]. */
#define TINY_TENSORS 8

typedef struct net {
    prt_context *ctx;
    prt_graph *g;
    prt_program *p;
    prt_vm *vm;
} net;

static void net_open(net *n) {
    n->ctx = tu_context();
    ck_assert_int_eq(prt_graph_load_yaml_string(n->ctx, "tiny.yaml", net_yaml, strlen(net_yaml), &n->g), PRT_OK);
    ck_assert_int_eq(prt_vm_compile(n->g, 2, &n->p), PRT_OK);
    ck_assert_int_eq(prt_vm_create(n->ctx, n->p, prt_cpu_device(n->ctx), NULL, &n->vm), PRT_OK);
}

static void net_close(net *n) {
    prt_vm_destroy(n->vm);
    prt_program_destroy(n->ctx, n->p);
    prt_graph_destroy(n->g);
    prt_context_destroy(n->ctx);
}

static char tmpdir[256];

static void make_tmpdir(void) {
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/prtw-XXXXXX", t && *t ? t : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tmpdir(void) {
    DIR *d = opendir(tmpdir);
    if (!d) return;
    struct dirent *e;
    char p[600];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
            unlink(p);
        }
    closedir(d);
    rmdir(tmpdir);
}

static int count_files(void) {
    DIR *d = opendir(tmpdir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    static unsigned char buf[1 << 16];
    *n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return buf;
}

static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- round trip ---------------------------------------------------------- */

START_TEST(round_trip) {
    net a, b;
    net_open(&a);
    net_open(&b);
    make_tmpdir();
    char path[400];
    snprintf(path, sizeof path, "%s/tiny.prtw", tmpdir);
    /* give the state tensors values that initialisation would not produce */
    float *mean = PRT_F32P(prt_vm_find(a.vm, "batchnorm_1.mean"));
    for (int i = 0; i < 3; i++) mean[i] = 0.25f * (float)(i + 1);
    ck_assert_int_eq(prt_weights_save(a.ctx, path, a.g, a.vm), PRT_OK);
    ck_assert_int_eq(count_files(), 1); /* no temporary file left behind */

    /* b starts from other values everywhere */
    for (int i = 0; i < b.g->n_values; i++) {
        const prt_value *v = &b.g->values[i];
        if (v->kind != PRT_VAL_PARAM && v->kind != PRT_VAL_STATE) continue;
        prt_tensor *t = prt_vm_find(b.vm, v->name);
        for (int64_t k = 0; k < prt_shape_count(&t->shape); k++) PRT_F32P(t)[k] = -7.0f;
    }
    prt_weights *w;
    ck_assert_int_eq(prt_weights_read(b.ctx, path, &w), PRT_OK);
    ck_assert_int_eq(w->n, TINY_TENSORS);
    ck_assert_int_eq(prt_weights_apply(b.ctx, w, b.g, b.vm), PRT_OK);
    prt_weights_destroy(b.ctx, w);
    int compared = 0;
    for (int i = 0; i < a.g->n_values; i++) {
        const prt_value *v = &a.g->values[i];
        if (v->kind != PRT_VAL_PARAM && v->kind != PRT_VAL_STATE) continue;
        const prt_tensor *x = prt_vm_find(a.vm, v->name), *y = prt_vm_find(b.vm, v->name);
        size_t nb = (size_t)prt_shape_count(&x->shape) * 4;
        ck_assert_msg(memcmp(x->data, y->data, nb) == 0, "tensor %s differs after the round trip", v->name);
        compared++;
    }
    ck_assert_int_eq(compared, TINY_TENSORS);
    ck_assert_float_eq(PRT_F32P(prt_vm_find(b.vm, "batchnorm_1.mean"))[2], 0.75f);

    /* the same input gives the same output */
    float *xa = PRT_F32P(prt_vm_input(a.vm, 0)), *xb = PRT_F32P(prt_vm_input(b.vm, 0));
    for (int i = 0; i < 2 * 2 * 4 * 4; i++) xa[i] = xb[i] = (float)((i * 37) % 11) / 5.0f - 1.0f;
    ck_assert_int_eq(prt_vm_run(a.vm), PRT_OK);
    ck_assert_int_eq(prt_vm_run(b.vm), PRT_OK);
    ck_assert_int_eq(memcmp(prt_vm_output(a.vm, 0)->data, prt_vm_output(b.vm, 0)->data, 2 * 5 * 4), 0);

    /* the layout of docs/weights-format.md */
    size_t n;
    const unsigned char *f = slurp(path, &n);
    ck_assert_int_eq(memcmp(f, "PRTW", 4), 0);
    ck_assert_uint_eq(le32(f + 4), 1);
    ck_assert_uint_eq(le32(f + 8), TINY_TENSORS);
    ck_assert_uint_eq(le32(f + n - 4), (uint32_t)crc32(0, f, (uInt)(n - 4)));
    /* first record: the conv weight, f32 (code 0), [3, 2, 3, 3] */
    const char *name = "conv_0.weight";
    size_t len = strlen(name);
    ck_assert_uint_eq(le32(f + 12), len);
    ck_assert_int_eq(memcmp(f + 16, name, len), 0);
    const unsigned char *r = f + 16 + len;
    ck_assert_uint_eq(le32(r), 0);
    ck_assert_uint_eq(le32(r + 4), 4);
    static const int64_t dims[4] = {3, 2, 3, 3};
    for (int d = 0; d < 4; d++) {
        ck_assert_uint_eq(le32(r + 8 + 8 * d), (uint32_t)dims[d]);
        ck_assert_uint_eq(le32(r + 12 + 8 * d), 0);
    }
    ck_assert_int_eq(memcmp(r + 40, prt_vm_find(a.vm, "conv_0.weight")->data, 54 * 4), 0);
    remove_tmpdir();
    net_close(&a);
    net_close(&b);
}
END_TEST

/* Saving over an existing file replaces it whole; a failed save leaves nothing. */
START_TEST(atomic_replace) {
    net a;
    net_open(&a);
    make_tmpdir();
    char path[400];
    snprintf(path, sizeof path, "%s/w.prtw", tmpdir);
    FILE *f = fopen(path, "wb");
    fputs("old contents", f);
    fclose(f);
    ck_assert_int_eq(prt_weights_save(a.ctx, path, a.g, a.vm), PRT_OK);
    size_t n;
    const unsigned char *b = slurp(path, &n);
    ck_assert_int_eq(memcmp(b, "PRTW", 4), 0);
    ck_assert_int_eq(count_files(), 1);
    char bad[500], want[700];
    snprintf(bad, sizeof bad, "%s/no-such-dir/w.prtw", tmpdir);
    ck_assert_int_eq(prt_weights_save(a.ctx, bad, a.g, a.vm), PRT_ERR_IO);
    snprintf(want, sizeof want, "%s: cannot create a temporary file next to it: No such file or directory", bad);
    ck_assert_str_eq(prt_last_error(a.ctx), want);
    ck_assert_int_eq(count_files(), 1);
    snprintf(bad, sizeof bad, "%s/missing.prtw", tmpdir);
    prt_weights *w = (prt_weights *)&w;
    ck_assert_int_eq(prt_weights_read(a.ctx, bad, &w), PRT_ERR_NOT_FOUND);
    ck_assert_ptr_null(w);
    snprintf(want, sizeof want, "%s: cannot open the weights file: No such file or directory", bad);
    ck_assert_str_eq(prt_last_error(a.ctx), want);
    remove_tmpdir();
    net_close(&a);
}
END_TEST

/* ---- malformed files ------------------------------------------------------- */

typedef struct bytes {
    unsigned char b[16384];
    size_t n;
} bytes;

static void put(bytes *o, const void *p, size_t n) {
    ck_assert_uint_le(o->n + n, sizeof o->b);
    memcpy(o->b + o->n, p, n);
    o->n += n;
}
static void u32(bytes *o, uint32_t v) {
    unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16), (unsigned char)(v >> 24)};
    put(o, b, 4);
}
static void i64(bytes *o, int64_t v) {
    u32(o, (uint32_t)(uint64_t)v);
    u32(o, (uint32_t)((uint64_t)v >> 32));
}
static void header(bytes *o, uint32_t version, uint32_t count) {
    o->n = 0;
    put(o, "PRTW", 4);
    u32(o, version);
    u32(o, count);
}
/* One record; data is `nbytes` bytes of a counting pattern. */
static void record(bytes *o, const char *name, uint32_t code, uint32_t ndim, const int64_t *dims, size_t nbytes) {
    u32(o, (uint32_t)strlen(name));
    put(o, name, strlen(name));
    u32(o, code);
    u32(o, ndim);
    for (uint32_t d = 0; d < ndim; d++) i64(o, dims[d]);
    for (size_t i = 0; i < nbytes; i++) o->b[o->n + i] = (unsigned char)(i * 7);
    o->n += nbytes;
}
static void seal(bytes *o) { u32(o, (uint32_t)crc32(0, o->b, (uInt)o->n)); }

/* A valid file: tensor 'a' f32 [2, 3]. Layout: header 0..11, name length at 12,
 * name at 16, dtype at 17, ndim at 21, dims at 25..40, data at 41..64, CRC at 65. */
static void valid(bytes *o) {
    static const int64_t d[2] = {2, 3};
    header(o, 1, 1);
    record(o, "a", 0, 2, d, 24);
    seal(o);
}

static void expect_bad(const bytes *o, prt_status want, const char *msg) {
    prt_context *ctx = tu_context();
    prt_weights *w = (prt_weights *)&w;
    prt_status st = prt_weights_parse(ctx, "w.prtw", o->b, o->n, &w);
    ck_assert_str_eq(prt_last_error(ctx), msg);
    ck_assert_int_eq(st, want);
    ck_assert_ptr_null(w);
    prt_context_destroy(ctx);
}

START_TEST(valid_minimal) {
    bytes o;
    valid(&o);
    ck_assert_uint_eq(o.n, 69);
    prt_context *ctx = tu_context();
    prt_weights *w;
    ck_assert_int_eq(prt_weights_parse(ctx, "w.prtw", o.b, o.n, &w), PRT_OK);
    ck_assert_int_eq(w->n, 1);
    ck_assert_str_eq(w->t[0].name, "a");
    ck_assert_int_eq(w->t[0].dtype, PRT_F32);
    ck_assert_int_eq(w->t[0].shape.ndim, 2);
    ck_assert_int_eq(w->t[0].shape.d[1], 3);
    ck_assert_uint_eq(w->t[0].nbytes, 24);
    ck_assert_int_eq(((const unsigned char *)w->t[0].data)[5], 35);
    ck_assert_ptr_eq(prt_weights_find(w, "a"), &w->t[0]);
    ck_assert_ptr_null(prt_weights_find(w, "b"));
    prt_weights_destroy(ctx, w);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(bad_short_file) {
    bytes o;
    valid(&o);
    o.n = 10;
    expect_bad(&o, PRT_ERR_PARSE, "w.prtw: truncated: 10 bytes, a weights file has at least 16 (header and CRC)");
}
END_TEST

START_TEST(bad_truncated_data) {
    bytes o;
    valid(&o);
    o.n -= 8; /* the reader takes the last 4 bytes as the CRC: the data ends at 57 */
    expect_bad(&o, PRT_ERR_PARSE, "w.prtw: offset 41: tensor 'a': truncated: the data needs 24 bytes, 16 remain");
}
END_TEST

START_TEST(bad_truncated_dims) {
    bytes o;
    valid(&o);
    o.n = 33; /* end of body at 29: half of the first dim */
    expect_bad(&o, PRT_ERR_PARSE, "w.prtw: offset 25: tensor 'a': truncated: the dims needs 16 bytes, 4 remain");
}
END_TEST

START_TEST(bad_magic) {
    bytes o;
    valid(&o);
    memcpy(o.b, "\x7f" "ELF", 4);
    expect_bad(&o, PRT_ERR_PARSE, "w.prtw: offset 0: not a Parrots weights file (magic \"\\x7fELF\", expected \"PRTW\")");
}
END_TEST

START_TEST(bad_version) {
    bytes o;
    header(&o, 2, 0);
    seal(&o);
    expect_bad(&o, PRT_ERR_PARSE, "w.prtw: offset 4: weights format version 2 is newer than this Parrots reads (version 1)");
    header(&o, 0, 0);
    seal(&o);
    expect_bad(&o, PRT_ERR_PARSE,
               "w.prtw: offset 4: weights format version 0 is not supported (this Parrots reads version 1)");
}
END_TEST

START_TEST(bad_crc) {
    bytes o;
    valid(&o);
    uint32_t stored = le32(o.b + 65);
    o.b[50] ^= 0x10;
    char want[200];
    snprintf(want, sizeof want,
             "w.prtw: offset 65: CRC mismatch (stored 0x%08x, computed 0x%08x): the file is damaged", stored,
             (uint32_t)crc32(0, o.b, 65));
    expect_bad(&o, PRT_ERR_PARSE, want);
}
END_TEST

START_TEST(bad_ndim) {
    bytes o;
    header(&o, 1, 1);
    u32(&o, 1);
    put(&o, "a", 1);
    u32(&o, 0);
    u32(&o, 100); /* the limit is checked before the dims are read */
    i64(&o, 1);
    seal(&o);
    expect_bad(&o, PRT_ERR_PARSE, "w.prtw: offset 21: tensor 'a': ndim 100 exceeds the limit of 8");
}
END_TEST

START_TEST(bad_overflowing_dims) {
    bytes o;
    static const int64_t d[3] = {(int64_t)1 << 31, (int64_t)1 << 31, (int64_t)1 << 31};
    header(&o, 1, 1);
    record(&o, "a", 0, 3, d, 0);
    seal(&o);
    expect_bad(&o, PRT_ERR_PARSE,
               "w.prtw: offset 25: tensor 'a': the shape [2147483648, 2147483648, 2147483648] has more than 2^40 elements");
    /* 2^21 x 2^21 = 2^42: no int64 overflow, but past the element cap */
    static const int64_t e[2] = {(int64_t)1 << 21, (int64_t)1 << 21};
    header(&o, 1, 1);
    record(&o, "a", 0, 2, e, 0);
    seal(&o);
    expect_bad(&o, PRT_ERR_PARSE, "w.prtw: offset 25: tensor 'a': the shape [2097152, 2097152] has more than 2^40 elements");
}
END_TEST

START_TEST(bad_dim_value) {
    bytes o;
    static const int64_t d[2] = {4, -5};
    header(&o, 1, 1);
    record(&o, "a", 0, 2, d, 0);
    seal(&o);
    expect_bad(&o, PRT_ERR_PARSE, "w.prtw: offset 33: tensor 'a': dimension 1 is -5 (dimensions must be positive)");
}
END_TEST

START_TEST(bad_name_length) {
    bytes o;
    header(&o, 1, 1);
    u32(&o, 5000);
    for (int i = 0; i < 5000; i++) put(&o, "n", 1);
    u32(&o, 0);
    u32(&o, 0);
    seal(&o);
    expect_bad(&o, PRT_ERR_PARSE, "w.prtw: offset 12: tensor 0: name length 5000 is outside 1..4096");
    header(&o, 1, 1);
    u32(&o, 0);
    u32(&o, 0);
    u32(&o, 0);
    seal(&o);
    expect_bad(&o, PRT_ERR_PARSE, "w.prtw: offset 12: tensor 0: name length 0 is outside 1..4096");
}
END_TEST

START_TEST(bad_name_nul) {
    bytes o;
    header(&o, 1, 1);
    record(&o, "ab", 0, 0, NULL, 4);
    o.b[17] = 0;
    seal(&o);
    expect_bad(&o, PRT_ERR_PARSE, "w.prtw: offset 16: tensor 0: the name contains a NUL byte");
}
END_TEST

START_TEST(bad_trailing) {
    bytes o;
    static const int64_t d[2] = {2, 3};
    header(&o, 1, 1);
    record(&o, "a", 0, 2, d, 24);
    put(&o, "xyz", 3);
    seal(&o);
    expect_bad(&o, PRT_ERR_PARSE, "w.prtw: offset 65: 3 trailing bytes after the last tensor (before the CRC)");
}
END_TEST

START_TEST(bad_dtype) {
    bytes o;
    static const int64_t d[1] = {2};
    header(&o, 1, 1);
    record(&o, "a", 9, 1, d, 8);
    seal(&o);
    expect_bad(&o, PRT_ERR_PARSE, "w.prtw: offset 17: tensor 'a': unknown dtype code 9 (known: 0..6)");
}
END_TEST

START_TEST(bad_count) {
    bytes o;
    header(&o, 1, 1000000);
    seal(&o);
    expect_bad(&o, PRT_ERR_PARSE, "w.prtw: offset 8: 1000000 tensors cannot fit in the 0 bytes that follow");
    /* a count of 2 with one record: the second record runs into the end */
    valid(&o);
    o.b[8] = 2;
    o.n -= 4;
    seal(&o);
    expect_bad(&o, PRT_ERR_PARSE, "w.prtw: offset 65: tensor 1: truncated: the name length needs 4 bytes, 0 remain");
    static const int64_t d[1] = {1};
    header(&o, 1, 2);
    record(&o, "a", 0, 1, d, 4);
    put(&o, "\0\0\0", 3);
    seal(&o);
    expect_bad(&o, PRT_ERR_PARSE, "w.prtw: offset 37: tensor 1: truncated: the name length needs 4 bytes, 3 remain");
}
END_TEST

START_TEST(bad_duplicate) {
    bytes o;
    static const int64_t d[1] = {1};
    header(&o, 1, 2);
    record(&o, "a", 0, 1, d, 4); /* 12 + 4 + 1 + 8 + 8 + 4 = 37 */
    record(&o, "a", 0, 1, d, 4);
    seal(&o);
    expect_bad(&o, PRT_ERR_PARSE, "w.prtw: offset 37: tensor 'a' appears twice (first at offset 12)");
}
END_TEST

/* ---- a valid file that does not fit the network ------------------------------- */

/* Writes the tiny net's tensors with one changed (rename, reshape or drop), then
 * applies the file to the net. */
static void expect_mismatch(const char *rename_from, const char *rename_to, bool drop, bool extra,
                            const int64_t *reshape, prt_status want, const char *msg) {
    net a;
    net_open(&a);
    const char *names[TINY_TENSORS + 1];
    const prt_tensor *ts[TINY_TENSORS + 1];
    prt_tensor shaped;
    int k = 0;
    for (int i = 0; i < a.g->n_values; i++) {
        const prt_value *v = &a.g->values[i];
        if (v->kind != PRT_VAL_PARAM && v->kind != PRT_VAL_STATE) continue;
        const prt_tensor *t = prt_vm_find(a.vm, v->name);
        if (rename_from && !strcmp(v->name, rename_from)) {
            if (drop) continue;
            if (reshape) {
                shaped = *t;
                shaped.shape = prt_shape_make(2, reshape);
                prt_tensor_set_contiguous(&shaped);
                t = &shaped;
            }
            names[k] = rename_to ? rename_to : v->name;
        } else {
            names[k] = v->name;
        }
        ts[k++] = t;
    }
    if (extra) {
        names[k] = "extra.weight";
        ts[k] = ts[0];
        k++;
    }
    make_tmpdir();
    char path[400];
    snprintf(path, sizeof path, "%s/w.prtw", tmpdir);
    ck_assert_int_eq(prt_weights_write(a.ctx, path, k, names, ts), PRT_OK);
    prt_weights *w;
    ck_assert_int_eq(prt_weights_read(a.ctx, path, &w), PRT_OK);
    /* messages name the file as it was given: parse the same bytes under "w.prtw" */
    size_t n;
    const unsigned char *img = slurp(path, &n);
    prt_weights_destroy(a.ctx, w);
    ck_assert_int_eq(prt_weights_parse(a.ctx, "w.prtw", img, n, &w), PRT_OK);
    float before = PRT_F32P(prt_vm_find(a.vm, "linear_3.bias"))[0];
    ck_assert_int_eq(prt_weights_apply(a.ctx, w, a.g, a.vm), want);
    ck_assert_str_eq(prt_last_error(a.ctx), msg);
    /* nothing was copied */
    ck_assert_float_eq(PRT_F32P(prt_vm_find(a.vm, "linear_3.bias"))[0], before);
    prt_weights_destroy(a.ctx, w);
    remove_tmpdir();
    net_close(&a);
}

START_TEST(mismatch_shape) {
    /* [5, 48] stored as [6, 40]: same byte count, other shape. Records before it:
     * 12 + conv weight (4 + 13 + 8 + 32 + 216 = 273) + conv bias (4 + 11 + 8 + 8 + 12
     * = 43) + BN scale and shift (4 + 17 + 8 + 8 + 12 = 49 each), mean (48), var (47). */
    static const int64_t d[2] = {6, 40};
    expect_mismatch("linear_3.weight", NULL, false, false, d, PRT_ERR_SHAPE,
                    "w.prtw: offset 521: tensor 'linear_3.weight' is f32 [6, 40] in the file but f32 [5, 48] in the "
                    "network 'tiny'");
}
END_TEST

START_TEST(mismatch_missing) {
    expect_mismatch("batchnorm_1.var", NULL, true, false, NULL, PRT_ERR_NOT_FOUND,
                    "w.prtw: missing tensor 'batchnorm_1.var' (a state tensor of the network 'tiny', shape [3])");
    expect_mismatch("conv_0.bias", "conv_0.b", false, false, NULL, PRT_ERR_NOT_FOUND,
                    "w.prtw: missing tensor 'conv_0.bias' (a parameter of the network 'tiny', shape [3])");
}
END_TEST

START_TEST(mismatch_extra) {
    /* after the 8 tensors: 12 + 273 + 43 + 2 x 49 + 48 + 47 + linear weight (4 + 15 + 8
     * + 16 + 960 = 1003) + linear bias (4 + 13 + 8 + 8 + 20 = 53) = 1577 */
    expect_mismatch(NULL, NULL, false, true, NULL, PRT_ERR_NOT_FOUND,
                    "w.prtw: offset 1577: tensor 'extra.weight' is not a parameter or state tensor of the network "
                    "'tiny'");
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("weights");
    TCase *tc = tcase_create("weights");
    tcase_add_test(tc, round_trip);
    tcase_add_test(tc, atomic_replace);
    tcase_add_test(tc, valid_minimal);
    tcase_add_test(tc, bad_short_file);
    tcase_add_test(tc, bad_truncated_data);
    tcase_add_test(tc, bad_truncated_dims);
    tcase_add_test(tc, bad_magic);
    tcase_add_test(tc, bad_version);
    tcase_add_test(tc, bad_crc);
    tcase_add_test(tc, bad_ndim);
    tcase_add_test(tc, bad_overflowing_dims);
    tcase_add_test(tc, bad_dim_value);
    tcase_add_test(tc, bad_name_length);
    tcase_add_test(tc, bad_name_nul);
    tcase_add_test(tc, bad_trailing);
    tcase_add_test(tc, bad_dtype);
    tcase_add_test(tc, bad_count);
    tcase_add_test(tc, bad_duplicate);
    tcase_add_test(tc, mismatch_shape);
    tcase_add_test(tc, mismatch_missing);
    tcase_add_test(tc, mismatch_extra);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run(suite()); }

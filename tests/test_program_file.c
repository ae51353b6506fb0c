/* Program files (docs/program-format.md): compile -> save -> load -> run gives
 * bit-identical results to the freshly compiled program (inference of two
 * examples, and a training step with recomputation), and every kind of damaged
 * or hostile file is refused with its exact message. Hostile files are made by
 * decoding a good payload with protobuf-c, changing one field, and packing it
 * again behind a correct header, so each reaches the check it is aimed at. */
// labels: unit

#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "frontends/program_file_api.h"
#include "program.pb-c.h"
#include "tests/memory_util.h"

/* ---- round trips ------------------------------------------------------------- */

static void same_program(const prt_program *a, const prt_program *b) {
    ck_assert_str_eq(a->name, b->name);
    ck_assert_int_eq(a->batch, b->batch);
    ck_assert_int_eq(a->n_code, b->n_code);
    ck_assert_int_eq(memcmp(a->code, b->code, (size_t)a->n_code * sizeof *a->code), 0);
    ck_assert_int_eq(a->n_k, b->n_k);
    ck_assert_int_eq(a->n_regs, b->n_regs);
    ck_assert_int_eq(a->n_ops, b->n_ops);
    ck_assert_int_eq(a->plan->n_bufs, b->plan->n_bufs);
    ck_assert_int_eq(a->plan->arena_bytes, b->plan->arena_bytes);
    ck_assert_int_eq(a->plan->persistent_bytes, b->plan->persistent_bytes);
    ck_assert_int_eq(a->plan->peak_pc, b->plan->peak_pc);
    ck_assert_int_eq(memcmp(a->plan->live, b->plan->live, (size_t)a->n_code * sizeof *a->plan->live), 0);
    ck_assert_int_eq(memcmp(a->plan->reg_offset, b->plan->reg_offset, (size_t)a->n_regs * sizeof(size_t)), 0);
}

/* Compiles, encodes, loads, and runs both programs on the same inputs. */
static void round_trip(const char *example, bool training, prt_recompute_mode mode, int64_t batch) {
    prt_context *ctx = tu_context();
    mu_net net;
    mu_compile(ctx, tu_src(example), training, mode, batch, &net);
    void *img;
    size_t size;
    ck_assert_int_eq(prt_program_encode(ctx, net.p, &img, &size), PRT_OK);
    prt_program *q = NULL;
    ck_assert_msg(prt_program_load_buffer(ctx, "x.pb", img, size, &q) == PRT_OK, "%s", prt_last_error(ctx));
    prt_free(ctx, img, 0);
    same_program(net.p, q);
    ck_assert(prt_program_is_training(q) == training);
    prt_vm_options o = {.training = training};
    mu_result a, b;
    mu_run(ctx, net.p, &o, 2, net.classes, 11, &a);
    mu_run(ctx, q, &o, 2, net.classes, 11, &b);
    mu_expect_finite(&a, example);
    mu_expect_identical(&a, &b, example);
    mu_result_free(&a);
    mu_result_free(&b);
    prt_program_destroy(ctx, q);
    mu_net_free(ctx, &net);
    prt_context_destroy(ctx);
}

START_TEST(test_fashion_forward) { round_trip("examples/fashion-cnn.yaml", false, PRT_RECOMPUTE_none, 4); }
END_TEST

START_TEST(test_polynet_mini_forward) { round_trip("examples/polynet-mini.yaml", false, PRT_RECOMPUTE_none, 2); }
END_TEST

/* a training step with RECOMPUTE instructions, gradient buckets and optimizer state */
START_TEST(test_fashion_training) { round_trip("examples/fashion-cnn.yaml", true, PRT_RECOMPUTE_cheap, 4); }
END_TEST

/* ---- a small program to damage ----------------------------------------------- */

static const char *net_yaml = "parrots: 1\n"
                              "name: tiny\n"
                              "input: {x: [2, 6, 6]}\n"
                              "layers:\n"
                              "  - conv: {out: 3, kernel: 3, pad: 1}\n"
                              "  - relu:\n"
                              "  - maxpool: {kernel: 2}\n"
                              "  - flatten:\n"
                              "  - linear: {out: 5}\n";

typedef struct fixture {
    prt_context *ctx;
    prt_graph *g;
    prt_program *p;
    unsigned char *img;
    size_t size;
} fixture;

static fixture fx;

static void fx_open(void) {
    fx.ctx = tu_context();
    ck_assert_int_eq(prt_graph_load_yaml_string(fx.ctx, "tiny.yaml", net_yaml, strlen(net_yaml), &fx.g), PRT_OK);
    ck_assert_int_eq(prt_vm_compile(fx.g, 2, &fx.p), PRT_OK);
    void *img;
    ck_assert_int_eq(prt_program_encode(fx.ctx, fx.p, &img, &fx.size), PRT_OK);
    fx.img = img;
}

static void fx_close(void) {
    prt_free(fx.ctx, fx.img, 0);
    prt_program_destroy(fx.ctx, fx.p);
    prt_graph_destroy(fx.g);
    prt_context_destroy(fx.ctx);
    memset(&fx, 0, sizeof fx);
}

static void expect_error(const void *img, size_t size, prt_status want, const char *msg) {
    prt_program *q = (prt_program *)&q;
    prt_status st = prt_program_load_buffer(fx.ctx, "x.pb", img, size, &q);
    ck_assert_str_eq(prt_last_error(fx.ctx), msg);
    ck_assert_int_eq(st, want);
    ck_assert_ptr_null(q);
}

/* Replaces a decoded string (protobuf-c's default allocator is malloc). */
static void set_str(char **field, const char *v) {
    free(*field);
    *field = strdup(v);
}

static uint32_t crc(const void *p, size_t n) { return (uint32_t)crc32_z(crc32_z(0, NULL, 0), p, n); }

static void put32(unsigned char *b, uint32_t v) {
    for (int i = 0; i < 4; i++) b[i] = (unsigned char)(v >> (8 * i));
}

/* The decoded payload of the fixture, to change and repack. */
static Parrots__Prog__Program *decoded(void) {
    Parrots__Prog__Program *m = parrots__prog__program__unpack(NULL, fx.size - 24, fx.img + 24);
    ck_assert_ptr_nonnull(m);
    return m;
}

/* m behind a correct header; checked by expect_error; m freed. */
static void expect_repacked(Parrots__Prog__Program *m, prt_status want, const char *msg) {
    size_t len = parrots__prog__program__get_packed_size(m);
    unsigned char *img = malloc(len + 24);
    ck_assert_ptr_nonnull(img);
    memcpy(img, fx.img, 16);
    ck_assert_int_eq(parrots__prog__program__pack(m, img + 24), len);
    put32(img + 12, crc(img + 24, len));
    for (int i = 0; i < 8; i++) img[16 + i] = (unsigned char)((uint64_t)len >> (8 * i));
    expect_error(img, len + 24, want, msg);
    free(img);
    parrots__prog__program__free_unpacked(m, NULL);
}

START_TEST(test_good_fixture) {
    fx_open();
    prt_program *q = NULL;
    ck_assert_msg(prt_program_load_buffer(fx.ctx, "x.pb", fx.img, fx.size, &q) == PRT_OK, "%s",
                  prt_last_error(fx.ctx));
    same_program(fx.p, q);
    ck_assert(!prt_program_is_training(q));
    prt_program_destroy(fx.ctx, q);
    /* the header the document promises */
    ck_assert_int_eq(memcmp(fx.img, "PRTPROG\0", 8), 0);
    ck_assert_int_eq(fx.img[8], 1);
    fx_close();
}
END_TEST

START_TEST(test_header_errors) {
    fx_open();
    char msg[512];
    size_t len = fx.size - 24;
    expect_error(fx.img, 10, PRT_ERR_PARSE, "x.pb: truncated: 10 bytes, a program file has at least 24 (the header)");
    snprintf(msg, sizeof msg, "x.pb: truncated: the header promises a %zu-byte payload, %zu bytes follow", len,
             len - 1);
    expect_error(fx.img, fx.size - 1, PRT_ERR_PARSE, msg);
    unsigned char *b = malloc(fx.size + 3);
    memcpy(b, fx.img, fx.size);
    memset(b + fx.size, 0, 3);
    snprintf(msg, sizeof msg, "x.pb: offset %zu: 3 trailing bytes after the payload", fx.size);
    expect_error(b, fx.size + 3, PRT_ERR_PARSE, msg);
    memcpy(b, "PRTW\x01\0\0\0", 8);
    expect_error(b, fx.size, PRT_ERR_PARSE,
                 "x.pb: offset 0: not a Parrots program file (magic \"PRTW\\x01\\x00\\x00\\x00\", expected "
                 "\"PRTPROG\\x00\")");
    memcpy(b, fx.img, fx.size);
    b[8] = 2;
    expect_error(b, fx.size, PRT_ERR_PARSE,
                 "x.pb: offset 8: program format version 2 is newer than this Parrots reads (version 1)");
    b[8] = 0;
    expect_error(b, fx.size, PRT_ERR_PARSE,
                 "x.pb: offset 8: program format version 0 is not supported (this Parrots reads version 1)");
    /* one flipped bit in the payload: the CRC catches it before decoding */
    memcpy(b, fx.img, fx.size);
    b[fx.size / 2] ^= 0x10;
    snprintf(msg, sizeof msg, "x.pb: offset 12: CRC mismatch (stored 0x%08x, computed 0x%08x): the file is damaged",
             crc(fx.img + 24, len), crc(b + 24, len));
    expect_error(b, fx.size, PRT_ERR_PARSE, msg);
    /* garbage under a good CRC */
    memset(b + 24, 0xff, len);
    put32(b + 12, crc(b + 24, len));
    expect_error(b, fx.size, PRT_ERR_PARSE,
                 "x.pb: the payload is not a valid Program message (protobuf-c cannot decode it)");
    free(b);
    fx_close();
}
END_TEST

START_TEST(test_op_errors) {
    fx_open();
    Parrots__Prog__Program *m = decoded();
    ck_assert_str_eq(m->ops[0]->name, "conv");
    set_str(&m->ops[0]->name, "convv");
    expect_repacked(m, PRT_ERR_NOT_FOUND,
                    "x.pb: program 'tiny': op table entry 0: unknown op 'convv' (did you mean 'conv'?)");
    m = decoded();
    m->ops[0]->version = 2;
    expect_repacked(m, PRT_ERR_PROGRAM,
                    "x.pb: op table entry 0: the program needs op 'conv' version 2; this Parrots has version 1");
    m = decoded();
    m->ops[1]->version = 0;
    expect_repacked(m, PRT_ERR_PROGRAM, "x.pb: op table entry 1: op 'relu' has version 0 (versions start at 1)");
    m = decoded();
    set_str(&m->ops[1]->name, "conv");
    expect_repacked(m, PRT_ERR_PROGRAM, "x.pb: op table entry 1: op 'conv' is listed twice (entries 0 and 1)");
    fx_close();
}
END_TEST

START_TEST(test_code_errors) {
    fx_open();
    Parrots__Prog__Program *m = decoded();
    ck_assert_int_eq(m->constants[0]->value_case, PARROTS__PROG__CONSTANT__VALUE_CALL);
    m->constants[0]->call->inputs[0] = 99;
    expect_repacked(m, PRT_ERR_PROGRAM,
                    "x.pb: program 'tiny': instruction 0 (CALL 'conv_0'): input 0: register r99 out of bounds "
                    "(10 registers)");
    m = decoded();
    m->code[m->n_code - 1] = 0; /* NOP instead of HALT */
    expect_repacked(m, PRT_ERR_PROGRAM, "x.pb: program 'tiny': instruction 5 (NOP): program does not end in HALT");
    m = decoded();
    set_str(&m->registers[0]->dtype, "f99");
    expect_repacked(m, PRT_ERR_PROGRAM, "x.pb: register r0 'x': unknown dtype 'f99'");
    m = decoded();
    m->constants[1]->call->op = 40;
    expect_repacked(m, PRT_ERR_PROGRAM, "x.pb: constant 1 (call 'relu_1'): op 40 out of range (5 ops in the op table)");
    m = decoded();
    m->training = 1;
    expect_repacked(m, PRT_ERR_PROGRAM, "x.pb: the file says a training step, but every call is in the forward phase");
    m = decoded();
    m->n_ops = 5000;
    Parrots__Prog__OpRef **ops = calloc(5000, sizeof *ops);
    for (int i = 0; i < 5000; i++) ops[i] = m->ops[i % 5];
    Parrots__Prog__OpRef **keep = m->ops;
    m->ops = ops;
    size_t len = parrots__prog__program__get_packed_size(m);
    unsigned char *img = malloc(len + 24);
    memcpy(img, fx.img, 16);
    parrots__prog__program__pack(m, img + 24);
    put32(img + 12, crc(img + 24, len));
    for (int i = 0; i < 8; i++) img[16 + i] = (unsigned char)((uint64_t)len >> (8 * i));
    expect_error(img, len + 24, PRT_ERR_LIMIT, "x.pb: 5000 op-table entries exceed the limit of 4096");
    free(img);
    m->ops = keep;
    m->n_ops = 5;
    free(ops);
    parrots__prog__program__free_unpacked(m, NULL);
    fx_close();
}
END_TEST

START_TEST(test_plan_errors) {
    fx_open();
    const prt_mem_plan *pl = fx.p->plan;
    char msg[512];
    Parrots__Prog__Program *m = decoded();
    parrots__prog__memory_plan__free_unpacked(m->plan, NULL);
    m->plan = NULL;
    expect_repacked(m, PRT_ERR_PROGRAM, "x.pb: the program has no memory plan");

    /* a buffer out of the arena */
    m = decoded();
    m->plan->arena_bytes = 256;
    ck_assert_int_gt(pl->bufs[0].bytes, 0);
    int b = -1;
    for (int i = 0; i < pl->n_bufs && b < 0; i++)
        if (pl->bufs[i].offset + pl->bufs[i].bytes > 256) b = i;
    ck_assert_int_ge(b, 0);
    snprintf(msg, sizeof msg, "x.pb: memory plan: buffer %d [%zu, %zu) lies outside the 256-byte arena", b,
             pl->bufs[b].offset, pl->bufs[b].offset + pl->bufs[b].bytes);
    expect_repacked(m, PRT_ERR_PROGRAM, msg);

    /* two buffers live together placed at the same offset */
    int x = -1, y = -1;
    for (int i = 0; i < pl->n_bufs && x < 0; i++)
        for (int j = 0; j < pl->n_bufs; j++)
            if (i != j && pl->bufs[i].offset != pl->bufs[j].offset && pl->bufs[i].first <= pl->bufs[j].last &&
                pl->bufs[j].first <= pl->bufs[i].last && pl->bufs[i].first <= pl->bufs[j].first &&
                pl->bufs[j].bytes <= pl->arena_bytes - pl->bufs[i].offset) {
                x = i, y = j;
                break;
            }
    ck_assert_int_ge(x, 0);
    m = decoded();
    m->plan->buffers[y]->offset = pl->bufs[x].offset;
    prt_program *q = NULL;
    ck_assert_int_eq(prt_program_load_buffer(fx.ctx, "x.pb", fx.img, fx.size, &q), PRT_OK);
    prt_program_destroy(fx.ctx, q);
    {
        size_t len = parrots__prog__program__get_packed_size(m);
        unsigned char *img = malloc(len + 24);
        memcpy(img, fx.img, 16);
        parrots__prog__program__pack(m, img + 24);
        put32(img + 12, crc(img + 24, len));
        for (int i = 0; i < 8; i++) img[16 + i] = (unsigned char)((uint64_t)len >> (8 * i));
        ck_assert_int_eq(prt_program_load_buffer(fx.ctx, "x.pb", img, len + 24, &q), PRT_ERR_PROGRAM);
        ck_assert_ptr_null(q);
        ck_assert_msg(strstr(prt_last_error(fx.ctx), "overlap in memory") &&
                          !strncmp(prt_last_error(fx.ctx), "x.pb: memory plan: buffers ", 27),
                      "%s", prt_last_error(fx.ctx));
        free(img);
        parrots__prog__program__free_unpacked(m, NULL);
    }

    /* a register's buffer dies before the register does */
    int r = fx.p->inputs[0];
    b = pl->reg_buffer[r];
    m = decoded();
    m->plan->buffers[b]->last = 0;
    snprintf(msg, sizeof msg,
             "x.pb: memory plan: register r%d 'x' is live over instructions 0..%d but its buffer %d only over 0..0", r,
             fx.p->n_code - 1, b);
    expect_repacked(m, PRT_ERR_PROGRAM, msg);

    /* a buffer smaller than its register */
    m = decoded();
    m->plan->buffers[b]->bytes -= 256;
    snprintf(msg, sizeof msg,
             "x.pb: memory plan: buffer %d has %zu bytes; register r%d 'x' needs %zu (%zu rounded up to 256)", b,
             pl->bufs[b].bytes - 256, r, pl->bufs[b].bytes, (size_t)2 * 2 * 6 * 6 * 4);
    expect_repacked(m, PRT_ERR_PROGRAM, msg);

    /* a register in the wrong region */
    m = decoded();
    m->plan->reg_region[r] = PARROTS__PROG__REGION__REGION_PERSISTENT;
    snprintf(msg, sizeof msg, "x.pb: memory plan: register r%d 'x' (input) is in the persistent region, expected arena",
             r);
    expect_repacked(m, PRT_ERR_PROGRAM, msg);

    /* a count that does not match the program */
    m = decoded();
    m->plan->n_reg_offset--;
    snprintf(msg, sizeof msg, "x.pb: memory plan: %d regions, %d offsets and %d buffer indices for %d registers",
             fx.p->n_regs, fx.p->n_regs - 1, fx.p->n_regs, fx.p->n_regs);
    expect_repacked(m, PRT_ERR_PROGRAM, msg);
    fx_close();
}
END_TEST

/* The file functions: save is atomic and loads back; a file over the limit is
 * refused before it is read. */
START_TEST(test_files) {
    fx_open();
    char dir[256], path[300], big[300];
    const char *t = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/prtprog-XXXXXX", t && *t ? t : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/tiny.pb", dir);
    ck_assert_int_eq(prt_program_save(fx.ctx, path, fx.p), PRT_OK);
    ck_assert(prt_program_file_sniff(path));
    prt_program *q = NULL;
    ck_assert_msg(prt_program_load(fx.ctx, path, &q) == PRT_OK, "%s", prt_last_error(fx.ctx));
    same_program(fx.p, q);
    prt_program_destroy(fx.ctx, q);
    snprintf(big, sizeof big, "%s/big.pb", dir);
    FILE *f = fopen(big, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(ftruncate(fileno(f), (off_t)PRT_PROGRAM_MAX_FILE_BYTES + 1), 0);
    fclose(f);
    char msg[512];
    snprintf(msg, sizeof msg, "%s: %zu bytes, more than the limit of %zu for a program file", big,
             PRT_PROGRAM_MAX_FILE_BYTES + 1, PRT_PROGRAM_MAX_FILE_BYTES);
    ck_assert_int_eq(prt_program_load(fx.ctx, big, &q), PRT_ERR_LIMIT);
    ck_assert_str_eq(prt_last_error(fx.ctx), msg);
    ck_assert(!prt_program_file_sniff(big));
    unlink(big);
    unlink(path);
    rmdir(dir);
    fx_close();
}
END_TEST

int main(void) {
    Suite *s = suite_create("program_file");
    TCase *tc = tcase_create("round_trip");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_fashion_forward);
    tcase_add_test(tc, test_polynet_mini_forward);
    tcase_add_test(tc, test_fashion_training);
    suite_add_tcase(s, tc);
    TCase *bad = tcase_create("malformed");
    tcase_add_test(bad, test_good_fixture);
    tcase_add_test(bad, test_header_errors);
    tcase_add_test(bad, test_op_errors);
    tcase_add_test(bad, test_code_errors);
    tcase_add_test(bad, test_plan_errors);
    tcase_add_test(bad, test_files);
    suite_add_tcase(s, bad);
    return tu_run(s);
}

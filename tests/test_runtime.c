/* The runtime core: status list, error messages, the allocator hook, checked
 * shapes, tensors, the CPU device, the Philox RNG (known-answer vectors and
 * split invariance) and the string table. */
// labels: unit
#include "tests/test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

START_TEST(test_status_table) {
    ck_assert_int_eq(PRT_OK, 0);
    ck_assert_str_eq(prt_status_str(PRT_OK), "success");
    ck_assert_str_eq(prt_status_str(PRT_ERR_SHAPE), "shape error");
    ck_assert_str_eq(prt_status_str((prt_status)9999), "unknown status");
    ck_assert_int_eq(prt_status_exit_code(PRT_OK), 0);
    ck_assert_int_eq(prt_status_exit_code(PRT_ERR_NOMEM), 1);
    ck_assert_int_eq(prt_status_exit_code(PRT_ERR_PARSE), 2);
    for (int s = 0; s < PRT_STATUS_COUNT; s++) ck_assert_uint_gt(strlen(prt_status_str((prt_status)s)), 0);
}
END_TEST

START_TEST(test_error_messages) {
    prt_context *ctx = tu_context();
    ck_assert_str_eq(prt_last_error(ctx), "");
    ck_assert_int_eq(prt_error(ctx, PRT_ERR_SHAPE, "layer '%s': bad %d", "c1", 3), PRT_ERR_SHAPE);
    ck_assert_str_eq(prt_last_error(ctx), "layer 'c1': bad 3");
    ck_assert_int_eq(prt_error_prefix(ctx, PRT_ERR_SHAPE, "net.yaml:%d:%d", 4, 7), PRT_ERR_SHAPE);
    ck_assert_str_eq(prt_last_error(ctx), "net.yaml:4:7: layer 'c1': bad 3");
    /* a prefix on a full buffer is cut at the end, never overruns */
    char big[4000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    prt_error(ctx, PRT_ERR_PARSE, "%s", big);
    prt_error_prefix(ctx, PRT_ERR_PARSE, "f");
    ck_assert_uint_eq(strlen(prt_last_error(ctx)), sizeof ctx->errmsg - 1);
    ck_assert(strncmp(prt_last_error(ctx), "f: xxx", 6) == 0);
    prt_error_clear(ctx);
    ck_assert_str_eq(prt_last_error(ctx), "");
    prt_context_destroy(ctx);
}
END_TEST

/* An allocator that fails after `budget` successful allocations. */
static int budget;
static void *counting_alloc(void *ud, void *ptr, size_t old_size, size_t new_size) {
    (void)ud, (void)old_size;
    if (new_size == 0) {
        free(ptr);
        return NULL;
    }
    if (budget-- <= 0) return NULL;
    return realloc(ptr, new_size);
}

START_TEST(test_allocator_hook_out_of_memory) {
    /* every failure point of context creation fails cleanly; enough budget succeeds */
    int ok_at = -1;
    for (int b = 0; b < 200 && ok_at < 0; b++) {
        budget = b;
        prt_context_options o = {.struct_size = sizeof o, .alloc = counting_alloc, .log_level = PRT_LOG_ERROR};
        prt_context *ctx = (prt_context *)&o;
        prt_status st = prt_context_create(&o, &ctx);
        if (st == PRT_OK) {
            ok_at = b;
            prt_context_destroy(ctx);
        } else {
            ck_assert_int_eq(st, PRT_ERR_NOMEM);
            ck_assert_ptr_null(ctx);
        }
    }
    ck_assert_int_gt(ok_at, 0);
}
END_TEST

START_TEST(test_options_struct_size) {
    prt_context *ctx;
    prt_context_options o = {.struct_size = 1};
    ck_assert_int_eq(prt_context_create(&o, &ctx), PRT_ERR_INVALID);
    o.struct_size = sizeof o + 8;
    ck_assert_int_eq(prt_context_create(&o, &ctx), PRT_ERR_INVALID);
    /* an older, shorter struct (just the size and the allocator fields) is accepted */
    o.struct_size = offsetof(prt_context_options, log_level);
    ck_assert_int_eq(prt_context_create(&o, &ctx), PRT_OK);
    ck_assert_int_eq(ctx->log_level, PRT_LOG_INFO);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(test_shapes_checked) {
    prt_context *ctx = tu_context();
    int64_t n;
    char buf[64];
    prt_shape s = prt_shape4(8, 3, 32, 32);
    ck_assert_int_eq(prt_shape_numel(ctx, &s, &n), PRT_OK);
    ck_assert_int_eq(n, 8 * 3 * 32 * 32);
    size_t bytes;
    ck_assert_int_eq(prt_shape_nbytes(ctx, &s, PRT_F64, &bytes), PRT_OK);
    ck_assert_uint_eq(bytes, (size_t)n * 8);
    ck_assert_str_eq(prt_shape_str(&s, buf, sizeof buf), "[8, 3, 32, 32]");
    ck_assert_str_eq(prt_shape_str(&s, buf, 6), "[8, 3");

    prt_shape big = {.ndim = 3, .d = {1 << 20, 1 << 20, 2}};
    ck_assert_int_eq(prt_shape_numel(ctx, &big, &n), PRT_ERR_LIMIT);
    ck_assert_str_eq(prt_last_error(ctx), "shape [1048576, 1048576, 2] has more than 2^40 elements");
    prt_shape wrap = {.ndim = 4, .d = {INT64_MAX / 2, 3, 1, 1}};
    ck_assert_int_eq(prt_shape_numel(ctx, &wrap, &n), PRT_ERR_LIMIT);
    prt_shape neg = {.ndim = 2, .d = {4, -1}};
    ck_assert_int_eq(prt_shape_numel(ctx, &neg, &n), PRT_ERR_SHAPE);
    ck_assert_str_eq(prt_last_error(ctx), "shape [4, -1] has a negative dimension");
    prt_shape nine = {.ndim = 9};
    ck_assert_int_eq(prt_shape_numel(ctx, &nine, &n), PRT_ERR_SHAPE);
    ck_assert_str_eq(prt_last_error(ctx), "shape has 9 dimensions (at most 8)");

    size_t out;
    ck_assert(!prt_mul_size(SIZE_MAX / 2 + 1, 2, &out));
    ck_assert(prt_mul_size(1000, 1000, &out) && out == 1000000);
    ck_assert(!prt_add_i64(INT64_MAX, 1, &n));
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(test_dtypes) {
    ck_assert_uint_eq(prt_dtype_size(PRT_F32), 4);
    ck_assert_uint_eq(prt_dtype_size(PRT_F64), 8);
    ck_assert_uint_eq(prt_dtype_size(PRT_BF16), 2);
    ck_assert_uint_eq(prt_dtype_size(PRT_F16), 2);
    prt_dtype t;
    ck_assert(prt_dtype_from_name("bf16", &t) && t == PRT_BF16);
    ck_assert(!prt_dtype_from_name("f8", &t));
    ck_assert_str_eq(prt_dtype_name(PRT_F64), "f64");
}
END_TEST

START_TEST(test_tensors_and_cpu_device) {
    prt_context *ctx = tu_context();
    prt_device *dev = prt_cpu_device(ctx);
    ck_assert_str_eq(dev->iface->name, "cpu");
    ck_assert_ptr_null(dev->iface->stream_create); /* one in-order queue */
    prt_shape s = prt_shape4(2, 3, 4, 5);
    prt_tensor t;
    ck_assert_int_eq(prt_tensor_alloc(ctx, dev, PRT_F32, &s, &t), PRT_OK);
    ck_assert_uint_eq((uintptr_t)prt_tensor_data(&t) % 64, 0);
    ck_assert_int_eq(t.strides[0], 60);
    ck_assert_int_eq(t.strides[3], 1);
    ck_assert(prt_tensor_is_contiguous(&t));
    ck_assert_int_eq(dev->iface->fill_f32(dev, prt_tensor_data(&t), 2.5f, 120, NULL), PRT_OK);
    float host[120];
    ck_assert_int_eq(dev->iface->copy(dev, host, prt_tensor_data(&t), sizeof host, PRT_COPY_DEVICE_TO_HOST, NULL),
                     PRT_OK);
    for (int i = 0; i < 120; i++) ck_assert_float_eq(host[i], 2.5f);
    t.strides[1] = 99;
    ck_assert(!prt_tensor_is_contiguous(&t));
    prt_tensor_release(ctx, &t);
    ck_assert_ptr_null(t.data);

    prt_shape huge = {.ndim = 2, .d = {1 << 30, 1 << 30}};
    ck_assert_int_eq(prt_tensor_alloc(ctx, dev, PRT_F32, &huge, &t), PRT_ERR_LIMIT);

    float mem[6];
    prt_shape s2 = {.ndim = 2, .d = {2, 3}};
    prt_tensor w;
    prt_tensor_wrap(&w, mem, PRT_F32, &s2);
    ck_assert_ptr_eq(PRT_F32P(&w), mem);
    ck_assert_ptr_null(w.buf);
    prt_tensor_release(ctx, &w); /* borrowed memory: nothing freed */
    prt_context_destroy(ctx);
}
END_TEST

/* Known-answer vectors of Philox4x32-10 (Salmon et al., SC'11, and its reference
 * implementation's test vectors). */
START_TEST(test_philox_known_answers) {
    uint32_t r[4];
    prt_philox4x32(0, 0, 0, r);
    ck_assert_uint_eq(r[0], 0x6627e8d5u);
    ck_assert_uint_eq(r[1], 0xe169c58du);
    ck_assert_uint_eq(r[2], 0xbc57ac4cu);
    ck_assert_uint_eq(r[3], 0x9b00dbd8u);
    prt_philox4x32(UINT64_MAX, UINT64_MAX, UINT64_MAX, r);
    ck_assert_uint_eq(r[0], 0x408f276du);
    ck_assert_uint_eq(r[1], 0x41c83b0eu);
    ck_assert_uint_eq(r[2], 0xa20bc7c6u);
    ck_assert_uint_eq(r[3], 0x6d5451fdu);
    /* counter words (243f6a88, 85a308d3, 13198a2e, 03707344), key (a4093822, 299f31d0) */
    prt_philox4x32(0x299f31d0a4093822ull, 0x0370734413198a2eull, 0x85a308d3243f6a88ull, r);
    ck_assert_uint_eq(r[0], 0xd16cfe09u);
    ck_assert_uint_eq(r[1], 0x94fdccebu);
    ck_assert_uint_eq(r[2], 0x5001e420u);
    ck_assert_uint_eq(r[3], 0x24126ea1u);
}
END_TEST

START_TEST(test_rng_split_invariant_and_distributed) {
    enum { N = 100000 };
    float *whole = malloc(N * sizeof *whole), *parts = malloc(N * sizeof *parts);
    uint64_t key = prt_hash_str("layer.weight", 7);
    prt_rng_fill_normal(key, whole, N, 0.0f, 1.0f);
    /* element i depends only on (key, i): any split reproduces it */
    for (int64_t i = 0; i < N; i++) parts[i] = prt_rng_normal(key, (uint64_t)i);
    ck_assert(memcmp(whole, parts, N * sizeof *whole) == 0);
    double sum = 0, sq = 0;
    for (int i = 0; i < N; i++) sum += whole[i], sq += (double)whole[i] * whole[i];
    double mean = sum / N, var = sq / N - mean * mean;
    /* standard error of the mean is 1/sqrt(N) = 0.0032: 5 sigma bounds */
    ck_assert_double_lt(fabs(mean), 0.016);
    ck_assert_double_lt(fabs(var - 1.0), 0.03);
    prt_rng_fill_uniform(key, whole, N, -1.0f, 3.0f);
    sum = 0;
    for (int i = 0; i < N; i++) {
        ck_assert(whole[i] >= -1.0f && whole[i] < 3.0f);
        sum += whole[i];
    }
    ck_assert_double_lt(fabs(sum / N - 1.0), 0.02); /* sd 4/sqrt(12N) = 0.0037 */
    /* another key gives other numbers */
    ck_assert_float_ne(prt_rng_uniform(key, 0), prt_rng_uniform(key + 1, 0));
    ck_assert_uint_ne(prt_hash_str("a", 0), prt_hash_str("b", 0));
    ck_assert_uint_ne(prt_hash_str("a", 0), prt_hash_str("a", 1));
    free(whole);
    free(parts);
}
END_TEST

START_TEST(test_strtab) {
    prt_context *ctx = tu_context();
    prt_strtab *t;
    ck_assert_int_eq(prt_strtab_create(ctx, &t), PRT_OK);
    char key[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        ck_assert_int_eq(prt_strtab_put(ctx, t, key, i * 3, NULL), PRT_OK);
    }
    for (int i = 0; i < 5000; i++) {
        int v;
        snprintf(key, sizeof key, "k%d", i);
        ck_assert(prt_strtab_get(t, key, &v));
        ck_assert_int_eq(v, i * 3);
        ck_assert_str_eq(prt_strtab_key(t, key), key);
    }
    int existing = -1;
    ck_assert_int_eq(prt_strtab_put(ctx, t, "k42", 1, &existing), PRT_ERR_INVALID);
    ck_assert_int_eq(existing, 126);
    ck_assert(!prt_strtab_get(t, "k5000", NULL));
    ck_assert_ptr_null(prt_strtab_key(t, "nope"));
    prt_strtab_destroy(ctx, t);
    prt_strtab_destroy(ctx, NULL);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(test_grow) {
    prt_context *ctx = tu_context();
    int *a = NULL, cap = 0;
    for (int need = 1; need <= 1000; need++) {
        ck_assert_int_eq(prt_grow(ctx, (void **)&a, &cap, need, sizeof *a), PRT_OK);
        ck_assert_int_ge(cap, need);
        a[need - 1] = need;
    }
    for (int i = 0; i < 1000; i++) ck_assert_int_eq(a[i], i + 1);
    ck_assert_int_eq(prt_grow(ctx, (void **)&a, &cap, 1 << 29, sizeof *a), PRT_ERR_LIMIT);
    prt_free(ctx, a, (size_t)cap * sizeof *a);
    prt_context_destroy(ctx);
}
END_TEST

int main(void) {
    Suite *s = suite_create("runtime");
    TCase *t = tcase_create("core");
    tcase_add_test(t, test_status_table);
    tcase_add_test(t, test_error_messages);
    tcase_add_test(t, test_allocator_hook_out_of_memory);
    tcase_add_test(t, test_options_struct_size);
    tcase_add_test(t, test_shapes_checked);
    tcase_add_test(t, test_dtypes);
    tcase_add_test(t, test_tensors_and_cpu_device);
    tcase_add_test(t, test_philox_known_answers);
    tcase_add_test(t, test_rng_split_invariant_and_distributed);
    tcase_add_test(t, test_strtab);
    tcase_add_test(t, test_grow);
    suite_add_tcase(s, t);
    return tu_run(s);
}

/* The `cast` op and the bf16 conversions of ops/bf16.h, which are the very
 * __host__ __device__ functions the CUDA kernel (ops/cuda/cast.cu) runs,
 * compiled here as host code: so what is checked here is what the GPU
 * computes, bit for bit. f32 -> bf16 is checked against an independent
 * oracle (the two neighbouring bf16 values compared in double, ties to the
 * even one) on every bf16 value's neighbourhood: exact values, the
 * halfway points (ties), one ulp either side of them, the largest and
 * smallest values below the next bf16, in every binade, denormals and the
 * overflow edge included. Needs no GPU. */
// labels: unit

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/bf16.h"
#include "ops/ops_util.h"
#include "tests/test_util.h"

/* Round to nearest even by comparing distances in double (no bit tricks). */
static uint16_t oracle(float x) {
    uint32_t u = prt_f32_bits(x);
    if (isnan(x)) return 0x7fc0;
    uint32_t lo_bits = u & 0xffff0000u, hi_bits = lo_bits + 0x10000u; /* toward larger magnitude */
    double ax = fabs((double)x);
    double lo = fabs((double)prt_f32_from_bits(lo_bits));
    /* past the largest finite bf16 the next value up is 2^128 (infinity's place) */
    double hi = (hi_bits & 0x7f800000u) == 0x7f800000u ? ldexp(1.0, 128) : fabs((double)prt_f32_from_bits(hi_bits));
    if (isinf(x)) return (uint16_t)(u >> 16);
    double dl = ax - lo, dh = hi - ax;
    uint32_t pick = dl < dh ? lo_bits : dh < dl ? hi_bits : (((lo_bits >> 16) & 1u) ? hi_bits : lo_bits);
    return (uint16_t)(pick >> 16);
}

START_TEST(bf16_round_trip_all) {
    /* every bf16 -> f32 -> bf16 is the identity, NaNs stay NaN (quiet, same sign) */
    long bad = 0, nans = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = prt_bf16_to_f32((uint16_t)h);
        ck_assert_uint_eq(prt_f32_bits(f), h << 16); /* exact widening */
        uint16_t back = prt_bf16_from_f32(f);
        if (isnan(f)) {
            nans++;
            bad += !isnan(prt_bf16_to_f32(back)) || (back & 0x8000u) != (h & 0x8000u) || !(back & 0x0040u);
        } else {
            bad += back != h;
        }
    }
    ck_assert_int_eq(bad, 0);
    ck_assert_int_eq(nans, 2 * 127); /* exponent all ones, mantissa non-zero, both signs */
}
END_TEST

START_TEST(bf16_rounding_against_oracle) {
    static const uint32_t low[] = {0x0000, 0x0001, 0x3fff, 0x7ffe, 0x7fff, 0x8000, 0x8001, 0xbfff, 0xfffe, 0xffff};
    long bad = 0, checked = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        if (((h >> 7) & 0xff) == 0xff) continue; /* Inf and NaN: below */
        for (size_t k = 0; k < sizeof low / sizeof low[0]; k++, checked++) {
            float x = prt_f32_from_bits((h << 16) | low[k]);
            uint16_t got = prt_bf16_from_f32(x), want = oracle(x);
            if (got != want && bad++ < 5)
                fprintf(stderr, "f32 %08x: bf16 %04x, expected %04x\n", (unsigned)prt_f32_bits(x), got, want);
        }
    }
    /* and a spread of arbitrary f32 values */
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (int t = 0; t < 1000000; t++, checked++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        float x = prt_f32_from_bits((uint32_t)s);
        if (isnan(x)) continue;
        bad += prt_bf16_from_f32(x) != oracle(x);
    }
    ck_assert_msg(bad == 0, "%ld of %ld roundings differ from the oracle", bad, checked);
}
END_TEST

START_TEST(bf16_special_values) {
    /* ties go to even */
    ck_assert_uint_eq(prt_bf16_from_f32(prt_f32_from_bits(0x3f808000u)), 0x3f80); /* 1 + 2^-8: tie, 0x3f80 even */
    ck_assert_uint_eq(prt_bf16_from_f32(prt_f32_from_bits(0x3f818000u)), 0x3f82); /* tie, 0x3f81 odd: up */
    ck_assert_uint_eq(prt_bf16_from_f32(prt_f32_from_bits(0x3f808001u)), 0x3f81); /* just above the tie */
    ck_assert_uint_eq(prt_bf16_from_f32(1.0f / 3.0f), 0x3eab);
    ck_assert(prt_bf16_to_f32(prt_bf16_from_f32(1.0f / 3.0f)) == 0.333984375f);
    /* infinities and overflow: the largest f32 rounds to infinity, as IEEE rounding does */
    ck_assert_uint_eq(prt_bf16_from_f32(INFINITY), 0x7f80);
    ck_assert_uint_eq(prt_bf16_from_f32(-INFINITY), 0xff80);
    ck_assert_uint_eq(prt_bf16_from_f32(3.4028235e38f), 0x7f80);
    ck_assert_uint_eq(prt_bf16_from_f32(prt_f32_from_bits(0x7f7f7fffu)), 0x7f7f); /* below the tie: max finite */
    /* NaN stays NaN, even a payload that would round into the exponent */
    uint32_t nan_bits[] = {0x7fc00000u, 0x7f800001u, 0x7fffffffu, 0xff800001u, 0x7f80ffffu};
    for (size_t i = 0; i < sizeof nan_bits / sizeof nan_bits[0]; i++) {
        uint16_t h = prt_bf16_from_f32(prt_f32_from_bits(nan_bits[i]));
        ck_assert_msg(isnan(prt_bf16_to_f32(h)), "NaN %08x became %04x", nan_bits[i], h);
        ck_assert_uint_eq(h & 0x8000u, (nan_bits[i] >> 16) & 0x8000u);
    }
    /* zeros and denormals keep their sign and are not flushed */
    ck_assert_uint_eq(prt_bf16_from_f32(-0.0f), 0x8000);
    ck_assert_uint_eq(prt_bf16_from_f32(prt_f32_from_bits(0x00010000u)), 0x0001); /* smallest bf16 denormal */
    ck_assert_uint_eq(prt_bf16_from_f32(prt_f32_from_bits(0x00008000u)), 0x0000); /* half of it: tie to even 0 */
    ck_assert_uint_eq(prt_bf16_from_f32(prt_f32_from_bits(0x00018000u)), 0x0002); /* 1.5 of it: tie, up to even */
    ck_assert_uint_eq(prt_bf16_from_f32(prt_f32_from_bits(0x007fffffu)), 0x0080); /* largest denormal: to the min normal */
}
END_TEST

/* The op: inference, and its CPU kernel on a tensor, both directions. */
START_TEST(cast_op_cpu) {
    prt_context *ctx = tu_context();
    int id;
    const prt_op_schema *s = prt_op_find(ctx->ops, "cast", &id);
    ck_assert_ptr_nonnull(s);
    ck_assert(s->cuda_bf16);
    prt_attr attrs[1];
    prt_attrs_default(s, attrs);
    attrs[0].s = "bf16";
    attrs[0].set = true;
    prt_shape sh = {.ndim = 2, .d = {3, 5}}, out;
    prt_infer_ctx ic = {.ctx = ctx, .node_name = "c", .attrs = attrs, .n_in = 1, .in = &sh, .in_dtype = PRT_F32,
                        .n_out = 1, .out = &out, .out_dtype = PRT_F32};
    ck_assert_int_eq(s->infer(&ic), PRT_OK);
    ck_assert_int_eq(ic.out_dtype, PRT_BF16);
    ck_assert(prt_shape_eq(&out, &sh));
    attrs[0].s = "f16";
    ck_assert_int_eq(s->infer(&ic), PRT_ERR_SHAPE);
    ck_assert_msg(strstr(prt_last_error(ctx), "`to` must be f32 or bf16, got 'f16'"), "%s", prt_last_error(ctx));

    float x[15], back[15];
    uint16_t h[15];
    for (int i = 0; i < 15; i++) x[i] = (float)(i - 7) * 0.3333333f + (i == 3 ? NAN : 0.0f);
    prt_tensor tx, th, tb;
    prt_tensor_wrap(&tx, x, PRT_F32, &sh);
    prt_tensor_wrap(&th, h, PRT_BF16, &sh);
    prt_tensor_wrap(&tb, back, PRT_F32, &sh);
    attrs[0].s = "bf16";
    const prt_tensor *in1[1] = {&tx};
    prt_tensor *out1[1] = {&th};
    prt_kernel_call c = {.ctx = ctx, .attrs = attrs, .n_in = 1, .in = in1, .n_out = 1, .out = out1};
    ck_assert_int_eq(prt_op_kernel(s, false)->run(&c), PRT_OK);
    const prt_tensor *in2[1] = {&th};
    prt_tensor *out2[1] = {&tb};
    attrs[0].s = "f32";
    c.in = in2;
    c.out = out2;
    ck_assert_int_eq(prt_op_kernel(s, false)->run(&c), PRT_OK);
    for (int i = 0; i < 15; i++) {
        ck_assert_uint_eq(h[i], prt_bf16_from_f32(x[i]));
        if (i == 3) {
            ck_assert(isnan(back[i]));
            continue;
        }
        /* bf16 keeps 8 significant bits: relative error at most 2^-8 (half an ulp) */
        ck_assert_msg(fabsf(back[i] - x[i]) <= fabsf(x[i]) * 0x1p-8f, "%d: %g -> %g", i, x[i], back[i]);
        ck_assert(x[i] == 0.0f || back[i] != 0.0f);
    }
    /* an i32 tensor is refused by name */
    int32_t iv[15] = {0};
    prt_tensor ti;
    prt_tensor_wrap(&ti, iv, PRT_I32, &sh);
    const prt_tensor *in3[1] = {&ti};
    c.in = in3;
    ck_assert_int_eq(prt_op_kernel(s, false)->run(&c), PRT_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(prt_last_error(ctx), "cast kernel: i32 to f32"), "%s", prt_last_error(ctx));
    prt_context_destroy(ctx);
}
END_TEST

int main(void) {
    Suite *s = suite_create("cast");
    TCase *tc = tcase_create("bf16");
    tcase_add_test(tc, bf16_round_trip_all);
    tcase_add_test(tc, bf16_rounding_against_oracle);
    tcase_add_test(tc, bf16_special_values);
    tcase_add_test(tc, cast_op_cpu);
    suite_add_tcase(s, tc);
    return tu_run(s);
}

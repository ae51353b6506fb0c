/* The CUDA dropout kernels' random stream (ops/cuda/cuda_rng.h), compiled here
 * as host code: the very __host__ __device__ functions the GPU runs must give
 * the CPU's numbers bit for bit, or GPU and CPU training would drop different
 * elements. Checked against prt_rng_uniform (runtime/rng.c) over many keys and
 * counters, including counters above 2^32 (the high word feeds the rounds),
 * and against prt_dropout_counter (ops/ops_util.h) for data-parallel sample
 * strides and offsets. Needs no GPU. */
// labels: unit

#include <stdlib.h>

#include "ops/cuda/cuda_rng.h"
#include "ops/ops_util.h"
#include "tests/test_util.h"

static uint64_t xs(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

START_TEST(uniform_equals_cpu) {
    uint64_t s = 0x9E3779B97F4A7C15ull;
    uint64_t keys[] = {0, 1, 0xFFFFFFFFull, 0x100000000ull, ~0ull, prt_hash_str("block3/dropout", 42),
                       prt_hash_str("fc/dropout", 0)};
    long mismatches = 0, checked = 0;
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        /* consecutive counters (what one kernel launch draws) */
        for (uint64_t i = 0; i < 4096; i++, checked++)
            mismatches += prt_cuda_uniform(keys[k], i) != prt_rng_uniform(keys[k], i);
        /* counters around the 32-bit boundary */
        for (uint64_t i = 0xFFFFFF00ull; i < 0x100000100ull; i++, checked++)
            mismatches += prt_cuda_uniform(keys[k], i) != prt_rng_uniform(keys[k], i);
    }
    /* random keys and counters */
    for (int t = 0; t < 200000; t++, checked++) {
        uint64_t key = xs(&s), i = xs(&s);
        mismatches += prt_cuda_uniform(key, i) != prt_rng_uniform(key, i);
    }
    ck_assert_msg(mismatches == 0, "%ld of %ld uniforms differ from prt_rng_uniform", mismatches, checked);
    /* not a constant generator: the numbers spread over [0, 1) */
    double lo = 1, hi = 0;
    for (uint64_t i = 0; i < 1000; i++) {
        double u = prt_cuda_uniform(7, i);
        lo = u < lo ? u : lo;
        hi = u > hi ? u : hi;
    }
    ck_assert(lo >= 0 && lo < 0.01 && hi > 0.99 && hi < 1);
}
END_TEST

/* The counter of element i for a call with the given batch and DP geometry. */
START_TEST(dropout_counter_equals_cpu) {
    uint64_t s = 12345;
    prt_tensor x = {0};
    const prt_tensor *in[1] = {&x};
    long checked = 0;
    for (int t = 0; t < 300; t++) {
        int64_t batch = 1 + (int64_t)(xs(&s) % 9), per = 1 + (int64_t)(xs(&s) % 37);
        x.shape = prt_shape_make(2, (int64_t[]){batch, per});
        int64_t stride = t % 3 == 0 ? 0 : 1 + (int64_t)(xs(&s) % 64);
        int64_t offset = stride > 0 ? (int64_t)(xs(&s) % (uint64_t)stride) : 0;
        prt_kernel_call c = {.n_in = 1, .in = in, .step = t % 5 == 0 ? xs(&s) : xs(&s) % 1000,
                             .sample_stride = stride, .sample_offset = offset};
        int64_t n = batch * per;
        prt_dropout_ctr hk = prt_dropout_counters(&c, n);
        prt_cuda_ctr dk = {hk.base, hk.per, hk.stride, hk.offset};
        uint64_t key = xs(&s);
        for (int64_t i = 0; i < n; i++, checked++) {
            ck_assert_uint_eq(prt_cuda_dropout_counter(&dk, i), prt_dropout_counter(&hk, i));
            /* and the multiplier the kernels apply, as ops/op_dropout.c forms it */
            float p = 0.3f, keep = 1.0f / (1.0f - p);
            float want = prt_rng_uniform(key, prt_dropout_counter(&hk, i)) < p ? 0.0f : keep;
            ck_assert(prt_cuda_dropout_mult(key, &dk, i, p, keep) == want);
        }
    }
    ck_assert_int_gt(checked, 1000);
}
END_TEST

int main(void) {
    Suite *s = suite_create("cuda_rng");
    TCase *tc = tcase_create("philox");
    tcase_add_test(tc, uniform_equals_cpu);
    tcase_add_test(tc, dropout_counter_equals_cpu);
    suite_add_tcase(s, tc);
    return tu_run(s);
}

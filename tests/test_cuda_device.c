/* The CUDA device backend (runtime/cuda/device_cuda.c): memory, copies, fills,
 * streams and events, peak-bytes accounting, error messages.
 *
 * Without a GPU (or in a build without CUDA) it checks that opening a device
 * fails with PRT_ERR_UNSUPPORTED and a message naming the CUDA error, checks
 * the vendor-error translation of runtime/cuda/cuda_util.h (host-only calls),
 * and exits 77: a CTest skip, never a pass. */
// labels: gpu
#include "tests/test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cuda_api.h"
#if PARROTS_HAVE_CUDA
#include <cublas_v2.h>
#include <cudnn.h>

#include "runtime/cuda/cuda_util.h"
#endif

#define SKIP 77

/* ---- without a GPU ------------------------------------------------------ */

static int fails;
#define EXPECT(cond, ...)                                                                  \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "%s:%d: FAILED: %s: ", __FILE__, __LINE__, #cond);             \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fputc('\n', stderr);                                                           \
            fails++;                                                                       \
        }                                                                                  \
    } while (0)

#if PARROTS_HAVE_CUDA
/* Stand-ins for vendor calls that return a chosen status. */
static cudaError_t fake_cudaMemcpy(cudaError_t e) { return e; }
static cublasStatus_t fake_cublasSgemm(cublasStatus_t s) { return s; }
static cudnnStatus_t fake_cudnnConvolutionForward(cudnnStatus_t s) { return s; }

static prt_status cuda_fails_with(prt_context *ctx, cudaError_t e) {
    PRT_CUDA_CHECK(ctx, fake_cudaMemcpy(e), "copying %d bytes for tensor '%s'", 12, "x");
    return PRT_OK;
}
static prt_status cublas_fails_with(prt_context *ctx, cublasStatus_t s) {
    prt_status st = PRT_OK;
    PRT_CUBLAS_CHECK_GOTO(ctx, fake_cublasSgemm(s), st, fail, "layer '%s'", "fc");
fail:
    return st;
}
static prt_status cudnn_fails_with(prt_context *ctx, cudnnStatus_t s) {
    PRT_CUDNN_CHECK(ctx, fake_cudnnConvolutionForward(s), "layer '%s'", "conv1");
    return PRT_OK;
}

/* The translation macros, on status codes given directly (no GPU needed). */
static void check_error_macros(prt_context *ctx) {
    EXPECT(cuda_fails_with(ctx, cudaSuccess) == PRT_OK, "cudaSuccess is not an error");
    EXPECT(cuda_fails_with(ctx, cudaErrorMemoryAllocation) == PRT_ERR_NOMEM, "out of memory is PRT_ERR_NOMEM");
    EXPECT(!strcmp(prt_last_error(ctx), "CUDA: fake_cudaMemcpy: out of memory (cudaErrorMemoryAllocation) "
                                        "while copying 12 bytes for tensor 'x'"),
           "got '%s'", prt_last_error(ctx));
    EXPECT(cuda_fails_with(ctx, cudaErrorInvalidValue) == PRT_ERR_BACKEND, "invalid value is PRT_ERR_BACKEND");
    EXPECT(!strcmp(prt_last_error(ctx), "CUDA: fake_cudaMemcpy: invalid argument (cudaErrorInvalidValue) "
                                        "while copying 12 bytes for tensor 'x'"),
           "got '%s'", prt_last_error(ctx));
    EXPECT(cublas_fails_with(ctx, CUBLAS_STATUS_SUCCESS) == PRT_OK, "cuBLAS success is not an error");
    EXPECT(cublas_fails_with(ctx, CUBLAS_STATUS_INVALID_VALUE) == PRT_ERR_BACKEND, "cuBLAS invalid value");
    EXPECT(!strncmp(prt_last_error(ctx), "cuBLAS: fake_cublasSgemm: ", 26) &&
               strstr(prt_last_error(ctx), " (CUBLAS_STATUS_INVALID_VALUE) while layer 'fc'") != NULL,
           "got '%s'", prt_last_error(ctx));
    EXPECT(cudnn_fails_with(ctx, CUDNN_STATUS_BAD_PARAM) == PRT_ERR_BACKEND, "cuDNN bad param");
    EXPECT(!strncmp(prt_last_error(ctx), "cuDNN: fake_cudnnConvolutionForward: backend library error "
                                         "(CUDNN_STATUS_BAD_PARAM)", 83) &&
               strstr(prt_last_error(ctx), " while layer 'conv1'") != NULL,
           "got '%s'", prt_last_error(ctx));
    EXPECT(cudnn_fails_with(ctx, CUDNN_STATUS_ALLOC_FAILED) == PRT_ERR_NOMEM, "cuDNN alloc failure is NOMEM");
}
#endif

static int no_gpu_checks(void) {
    /* outside a Check runner: no ck_assert (tu_context uses it) */
    prt_context_options o = {.struct_size = sizeof o, .log_level = PRT_LOG_WARN};
    prt_context *ctx = NULL;
    if (prt_context_create(&o, &ctx) != PRT_OK) {
        fprintf(stderr, "test_cuda_device: cannot create a context\n");
        return 1;
    }
    prt_device *dev = (prt_device *)&dev; /* not NULL: a failed create must clear it */
    prt_status st = prt_cuda_device_create(ctx, 0, &dev);
    const char *msg = prt_last_error(ctx);
    EXPECT(st == PRT_ERR_UNSUPPORTED, "status %s", prt_status_str(st));
    EXPECT(dev == NULL, "out parameter cleared");
    EXPECT(!strncmp(msg, "CUDA device 0: ", 15), "message '%s'", msg);
#if PARROTS_HAVE_CUDA
    /* names the CUDA error: "... (cudaErrorNoDevice)" or "(cudaErrorInsufficientDriver)" */
    EXPECT(strstr(msg, " (cudaError") != NULL && msg[strlen(msg) - 1] == ')', "message '%s'", msg);
#else
    EXPECT(strstr(msg, "this build of Parrots has no CUDA support (") != NULL, "message '%s'", msg);
#endif
    EXPECT(!prt_device_is_cuda(prt_cpu_device(ctx)), "the CPU device is not a CUDA device");
    EXPECT(prt_cuda_peak_bytes(NULL) == 0, "peak bytes of no device");
    char reason[2048];
    snprintf(reason, sizeof reason, "%s", msg);
#if PARROTS_HAVE_CUDA
    check_error_macros(ctx);
#endif
    prt_context_destroy(ctx);
    if (fails) return 1;
    printf("SKIP: no CUDA device (%s)\n", reason);
    return SKIP;
}

/* ---- on a GPU ----------------------------------------------------------- */

static prt_context *ctx;
static prt_device *gpu;

static void setup(void) {
    ctx = tu_context();
    ck_assert_msg(prt_cuda_device_create(ctx, 0, &gpu) == PRT_OK, "%s", prt_last_error(ctx));
}

static void teardown(void) {
    prt_cuda_device_destroy(gpu);
    gpu = NULL;
    prt_context_destroy(ctx);
}

#define OK(expr) ck_assert_msg((expr) == PRT_OK, "%s: %s", #expr, prt_last_error(ctx))

/* A pattern with no zeros and no two neighbours equal, different per seed. */
static float pattern(size_t i, int seed) { return (float)((i * 7919u + (size_t)seed * 104729u) % 2003u) - 1001.5f; }

static float *host_pattern(size_t n, int seed) {
    float *h = malloc(n * sizeof *h);
    ck_assert_ptr_nonnull(h);
    for (size_t i = 0; i < n; i++) h[i] = pattern(i, seed);
    return h;
}

START_TEST(test_device_basics) {
    const prt_device_iface *f = gpu->iface;
    ck_assert_str_eq(f->name, "cuda");
    ck_assert_uint_eq(f->struct_size, sizeof(prt_device_iface));
    ck_assert(prt_device_is_cuda(gpu));
    ck_assert_ptr_nonnull(prt_cuda_stream(gpu, PRT_CUDA_COMPUTE));
    ck_assert_ptr_nonnull(prt_cuda_stream(gpu, PRT_CUDA_COMM));
    ck_assert_ptr_ne(prt_cuda_stream(gpu, PRT_CUDA_COMPUTE), prt_cuda_stream(gpu, PRT_CUDA_COMM));
    ck_assert_ptr_nonnull(prt_cuda_cublas(gpu));
    ck_assert_ptr_nonnull(prt_cuda_cudnn(gpu));
    char buf[256];
    const char *d = prt_cuda_device_describe(gpu, buf, sizeof buf);
    printf("CUDA device 0: %s (%d visible)\n", d, prt_cuda_device_count());
    ck_assert_ptr_nonnull(strstr(d, " GiB, sm_"));
}
END_TEST

/* host -> device -> device -> host of odd sizes, then fills of an inner range
 * that must leave the first and last element alone. */
START_TEST(test_copy_fill_round_trip) {
    const prt_device_iface *f = gpu->iface;
    static const size_t sizes[] = {1, 3, (1u << 20) + 5};
    for (int k = 0; k < 3; k++) {
        size_t n = sizes[k], bytes = n * sizeof(float);
        float *h = host_pattern(n, k + 1), *back = malloc(bytes);
        ck_assert_ptr_nonnull(back);
        void *a = NULL, *b = NULL;
        OK(f->alloc(gpu, bytes, &a));
        OK(f->alloc(gpu, bytes, &b));
        ck_assert_ptr_ne(a, b);
        OK(f->copy(gpu, a, h, bytes, PRT_COPY_HOST_TO_DEVICE, NULL));
        OK(f->copy(gpu, b, a, bytes, PRT_COPY_DEVICE_TO_DEVICE, NULL));
        memset(back, 0, bytes);
        OK(f->copy(gpu, back, b, bytes, PRT_COPY_DEVICE_TO_HOST, NULL));
        OK(f->sync(gpu));
        ck_assert_msg(memcmp(back, h, bytes) == 0, "round trip of %zu floats differs", n);

        /* fill [lo, n - lo) of b with a value the pattern never takes */
        size_t lo = n > 2 ? 1 : 0, cnt = n > 2 ? n - 2 : n;
        OK(f->fill_f32(gpu, (float *)b + lo, -3.25f, cnt, NULL));
        OK(f->copy(gpu, back, b, bytes, PRT_COPY_DEVICE_TO_HOST, NULL));
        OK(f->sync(gpu));
        for (size_t i = 0; i < n; i++) {
            float want = (i >= lo && i < lo + cnt) ? -3.25f : h[i];
            ck_assert_msg(back[i] == want, "n=%zu: element %zu is %g, want %g", n, i, back[i], want);
        }
        /* a is untouched by the fill of b */
        OK(f->copy(gpu, back, a, bytes, PRT_COPY_DEVICE_TO_HOST, NULL));
        OK(f->sync(gpu));
        ck_assert(memcmp(back, h, bytes) == 0);
        f->free(gpu, a);
        f->free(gpu, b);
        free(h);
        free(back);
    }
}
END_TEST

/* Work queued on another stream, ordered before the compute stream's copy by
 * an event alone (no host sync in between). The fill is big enough (256 MiB)
 * that an unordered copy would read the old contents. */
START_TEST(test_stream_event_order) {
    const prt_device_iface *f = gpu->iface;
    size_t n = (size_t)64 << 20, bytes = n * sizeof(float);
    void *x = NULL, *y = NULL;
    OK(f->alloc(gpu, bytes, &x));
    OK(f->alloc(gpu, bytes, &y));
    OK(f->fill_f32(gpu, x, 1.5f, n, NULL));
    OK(f->fill_f32(gpu, y, -1.0f, n, NULL));
    OK(f->sync(gpu));

    prt_stream *side = NULL;
    prt_event *done = NULL, *back_done = NULL;
    OK(f->stream_create(gpu, &side));
    OK(f->event_create(gpu, &done));
    OK(f->event_create(gpu, &back_done));
    for (int round = 0; round < 3; round++) {
        float v = 7.0f + (float)round;
        OK(f->fill_f32(gpu, x, v, n, side)); /* on the side stream */
        OK(f->event_record(gpu, done, side));
        OK(f->event_wait(gpu, done, NULL)); /* compute waits for it */
        OK(f->copy(gpu, y, x, bytes, PRT_COPY_DEVICE_TO_DEVICE, NULL));
        /* and the side stream's next fill waits for the compute stream's copy */
        OK(f->event_record(gpu, back_done, NULL));
        OK(f->event_wait(gpu, back_done, side));
        float probe[3];
        size_t at[3] = {0, n / 2 + 1, n - 1};
        OK(f->sync(gpu));
        for (int i = 0; i < 3; i++) {
            OK(f->copy(gpu, &probe[i], (float *)y + at[i], sizeof(float), PRT_COPY_DEVICE_TO_HOST, NULL));
        }
        OK(f->sync(gpu));
        for (int i = 0; i < 3; i++)
            ck_assert_msg(probe[i] == v, "round %d: y[%zu] = %g, want %g", round, at[i], probe[i], v);
    }
    f->event_destroy(gpu, done);
    f->event_destroy(gpu, back_done);
    f->stream_destroy(gpu, side);
    f->free(gpu, x);
    f->free(gpu, y);
}
END_TEST

START_TEST(test_peak_bytes) {
    const prt_device_iface *f = gpu->iface;
    const size_t MiB = 1u << 20;
    ck_assert_uint_eq(prt_cuda_peak_bytes(gpu), 0);
    void *a, *b, *c;
    OK(f->alloc(gpu, 1 * MiB + 3, &a));
    OK(f->alloc(gpu, 3 * MiB, &b));
    ck_assert_uint_eq(prt_cuda_peak_bytes(gpu), 4 * MiB + 3);
    f->free(gpu, a);
    OK(f->alloc(gpu, 2 * MiB, &c)); /* 5 MiB live, the new peak */
    ck_assert_uint_eq(prt_cuda_peak_bytes(gpu), 5 * MiB);
    f->free(gpu, b);
    f->free(gpu, c);
    ck_assert_uint_eq(prt_cuda_peak_bytes(gpu), 5 * MiB);
}
END_TEST

START_TEST(test_alloc_failure_message) {
    const prt_device_iface *f = gpu->iface;
    void *p = (void *)&p;
    size_t petabyte = (size_t)1 << 50;
    ck_assert_int_eq(f->alloc(gpu, petabyte, &p), PRT_ERR_NOMEM);
    ck_assert_ptr_null(p);
    ck_assert_str_eq(prt_last_error(ctx), "CUDA: cudaMalloc: out of memory (cudaErrorMemoryAllocation) "
                                          "while allocating 1125899906842624 bytes on CUDA device 0");
    ck_assert_uint_eq(prt_cuda_peak_bytes(gpu), 0);
    /* the failure is not left behind for the next launch check to report */
    void *q = NULL;
    OK(f->alloc(gpu, 16 * sizeof(float), &q));
    OK(f->fill_f32(gpu, q, 2.0f, 16, NULL));
    float h[16];
    OK(f->copy(gpu, h, q, sizeof h, PRT_COPY_DEVICE_TO_HOST, NULL));
    OK(f->sync(gpu));
    for (int i = 0; i < 16; i++) ck_assert(h[i] == 2.0f);
    f->free(gpu, q);
}
END_TEST

/* The set-up memo: values under string keys, replaced on a second put, and
 * distinguished by size; the timer measures a non-negative time; the driver's
 * count of memory in use covers an allocation made here. */
START_TEST(test_memo_timer_mem_info) {
    int a = 7, b = 9, got = 0;
    ck_assert(!prt_cuda_memo_get(gpu, "conv x1", &got, sizeof got));
    OK(prt_cuda_memo_put(gpu, "conv x1", &a, sizeof a));
    OK(prt_cuda_memo_put(gpu, "conv x2", &b, sizeof b));
    ck_assert(prt_cuda_memo_get(gpu, "conv x1", &got, sizeof got) && got == 7);
    ck_assert(prt_cuda_memo_get(gpu, "conv x2", &got, sizeof got) && got == 9);
    long long wide = 0;
    ck_assert(!prt_cuda_memo_get(gpu, "conv x1", &wide, sizeof wide));
    OK(prt_cuda_memo_put(gpu, "conv x1", &b, sizeof b));
    ck_assert(prt_cuda_memo_get(gpu, "conv x1", &got, sizeof got) && got == 9);

    size_t used0, total, used1;
    OK(prt_cuda_mem_info(gpu, &used0, &total));
    ck_assert_uint_gt(total, used0);
    void *p;
    const size_t bytes = (size_t)256 << 20;
    OK(gpu->iface->alloc(gpu, bytes, &p));
    OK(prt_cuda_mem_info(gpu, &used1, &total));
    ck_assert_uint_ge(used1, used0 + bytes);

    prt_cuda_timer *t;
    OK(prt_cuda_timer_create(gpu, &t));
    OK(prt_cuda_timer_start(t));
    OK(gpu->iface->fill_f32(gpu, p, 1.0f, bytes / sizeof(float), NULL));
    double sec = -1;
    OK(prt_cuda_timer_stop(t, &sec));
    ck_assert(sec > 0 && sec < 10);
    prt_cuda_timer_destroy(t);
    gpu->iface->free(gpu, p);
}
END_TEST

START_TEST(test_bad_index) {
    prt_device *other = (prt_device *)&other;
    int n = prt_cuda_device_count();
    ck_assert_int_eq(prt_cuda_device_create(ctx, n, &other), PRT_ERR_INVALID);
    ck_assert_ptr_null(other);
    char want[128];
    snprintf(want, sizeof want, "CUDA device %d: no such device (%d visible: 0 to %d)", n, n, n - 1);
    ck_assert_str_eq(prt_last_error(ctx), want);
}
END_TEST

int main(void) {
    if (prt_cuda_device_count() == 0) return no_gpu_checks();
    Suite *s = suite_create("cuda_device");
    TCase *tc = tcase_create("gpu");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_device_basics);
    tcase_add_test(tc, test_copy_fill_round_trip);
    tcase_add_test(tc, test_stream_event_order);
    tcase_add_test(tc, test_peak_bytes);
    tcase_add_test(tc, test_alloc_failure_message);
    tcase_add_test(tc, test_bad_index);
    tcase_add_test(tc, test_memo_timer_mem_info);
    suite_add_tcase(s, tc);
    int failed = tu_run_nofork(s);
    return failed ? 1 : 0;
}

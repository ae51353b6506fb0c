/* The NCCL comm backend (runtime/cuda/comm_nccl.c).
 *
 * Without a CUDA device: prt_comm_create_nccl fails with the exact
 * PRT_ERR_UNSUPPORTED message, then the test prints SKIP and exits 77 (a CTest
 * skip, never a pass).
 *
 * With one: every rank opens GPU (local rank mod GPUs) and runs a one-rank NCCL
 * communicator (bootstrapped over the local backend), because NCCL cannot put
 * two ranks of one communicator on one GPU and the GPU machine has one:
 * allreduce of device data (sum and average; one rank: the data must come back
 * unchanged, through NCCL), zero elements, broadcast of device and host memory,
 * the stream ordering of start and wait (checked by holding a stream with a
 * host function), a host buffer refused with the exact message, and a hang
 * turned into the exact timeout message. When the machine has a GPU per local
 * rank, the ranks also form one NCCL communicator over MPI and check exact sums,
 * averages and broadcasts from every root.
 *
 * Under mpirun the tests run in one process (CK_NOFORK), as tests/test_comm.c.
 */
// labels: gpu mpi

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/comm_api.h"
#include "runtime/cuda_api.h"
#include "tests/mpi_util.h"
#include "tests/test_util.h"

#if PARROTS_HAVE_CUDA
#include <cuda_runtime_api.h>
#include <pthread.h>
#endif

#define SKIP_STATUS 77

static const char *no_nccl_msg(void) {
#if PARROTS_HAVE_NCCL
    return "NCCL communicator: no CUDA device (NCCL reduces GPU memory; on CPUs use the MPI communicator)";
#else
    return "NCCL communicator: this build of Parrots has no NCCL support (configured without PARROTS_NCCL, which "
           "needs the CUDA toolkit, MPI and NCCL)";
#endif
}

START_TEST(no_device) {
    prt_context *ctx = tu_context();
    prt_comm *boot, *c = (prt_comm *)&boot;
    ck_assert_int_eq(prt_comm_create_local(ctx, NULL, &boot), PRT_OK);
    ck_assert_int_eq(prt_comm_create_nccl(ctx, NULL, boot, NULL, &c), PRT_ERR_UNSUPPORTED);
    ck_assert_str_eq(prt_last_error(ctx), no_nccl_msg());
    ck_assert_ptr_null(c);
    c = (prt_comm *)&boot;
    ck_assert_int_eq(prt_comm_create_nccl(ctx, NULL, boot, prt_cpu_device(ctx), &c), PRT_ERR_UNSUPPORTED);
#if PARROTS_HAVE_NCCL
    ck_assert_str_eq(prt_last_error(ctx), "NCCL communicator: device 'cpu' is not a CUDA device (NCCL reduces GPU "
                                          "memory; on CPUs use the MPI communicator)");
#else
    ck_assert_str_eq(prt_last_error(ctx), no_nccl_msg());
#endif
    ck_assert_ptr_null(c);
    /* the per-step check is a no-op on other backends */
    ck_assert_int_eq(prt_comm_nccl_check(boot), PRT_OK);
    prt_comm_destroy(boot);
    prt_context_destroy(ctx);
}
END_TEST

#if PARROTS_HAVE_CUDA && PARROTS_HAVE_NCCL

#define CK_CUDA(call)                                                                                      \
    do {                                                                                                   \
        cudaError_t e_ = (call);                                                                           \
        ck_assert_msg(e_ == cudaSuccess, "%s: %s (%s)", #call, cudaGetErrorString(e_), cudaGetErrorName(e_)); \
    } while (0)

#define CK_OK(ctx, call)                                                                                    \
    do {                                                                                                    \
        prt_status st_ = (call);                                                                            \
        ck_assert_msg(st_ == PRT_OK, "%s: %s", #call, prt_last_error(ctx));                                 \
    } while (0)

/* Rank r's value at i: small integers, so sums and averages over a few ranks
 * are exact in f32 in any order; never all zero. */
static float contrib(int r, size_t i) { return (float)((r + 1) * (int)(i % 251 + 1)); }

typedef struct gpu_fixture {
    prt_context *ctx;
    prt_comm *boot, *c;
    prt_device *gpu;
    cudaStream_t compute, comm;
} gpu_fixture;

static int my_local_rank(void) {
    const char *s = getenv("OMPI_COMM_WORLD_LOCAL_RANK");
    return s ? atoi(s) : 0;
}

/* A one-rank NCCL communicator on this rank's GPU. */
static void open_one(gpu_fixture *f, double timeout_s) {
    memset(f, 0, sizeof *f);
    f->ctx = tu_context();
    prt_comm_options o = {.struct_size = sizeof o, .timeout_s = timeout_s};
    CK_OK(f->ctx, prt_comm_create_local(f->ctx, &o, &f->boot));
    CK_OK(f->ctx, prt_cuda_device_create(f->ctx, my_local_rank() % prt_cuda_device_count(), &f->gpu));
    CK_OK(f->ctx, prt_comm_create_nccl(f->ctx, &o, f->boot, f->gpu, &f->c));
    f->compute = prt_cuda_stream(f->gpu, PRT_CUDA_COMPUTE);
    f->comm = prt_cuda_stream(f->gpu, PRT_CUDA_COMM);
}

static void close_one(gpu_fixture *f) {
    prt_comm_destroy(f->c);
    prt_comm_destroy(f->boot);
    prt_cuda_device_destroy(f->gpu);
    prt_context_destroy(f->ctx);
}

/* Uploads contrib(rank, i) into a new device buffer on the compute stream. */
static float *upload(gpu_fixture *f, size_t n, int rank) {
    float *h = malloc(n * sizeof *h), *d = NULL;
    ck_assert_ptr_nonnull(h);
    for (size_t i = 0; i < n; i++) h[i] = contrib(rank, i);
    CK_CUDA(cudaMalloc((void **)&d, n * sizeof *d));
    CK_CUDA(cudaMemcpyAsync(d, h, n * sizeof *d, cudaMemcpyHostToDevice, f->compute));
    CK_CUDA(cudaStreamSynchronize(f->compute)); /* h is freed next */
    free(h);
    return d;
}

/* Copies back on the compute stream, after the per-step check. */
static float *download(gpu_fixture *f, const float *d, size_t n) {
    float *h = malloc(n * sizeof *h);
    ck_assert_ptr_nonnull(h);
    CK_OK(f->ctx, prt_comm_nccl_check(f->c));
    CK_CUDA(cudaMemcpyAsync(h, d, n * sizeof *h, cudaMemcpyDeviceToHost, f->compute));
    CK_CUDA(cudaStreamSynchronize(f->compute));
    return h;
}

START_TEST(one_rank_allreduce) {
    gpu_fixture f;
    open_one(&f, 60);
    ck_assert_str_eq(prt_comm_backend(f.c), "nccl");
    ck_assert_int_eq(prt_comm_rank(f.c), 0);
    ck_assert_int_eq(prt_comm_size(f.c), 1);
    const size_t n = ((size_t)1 << 20) + 3;
    float *d = upload(&f, n, 0);
    prt_comm_handle h1, h2, h0;
    CK_OK(f.ctx, prt_comm_allreduce_start_tagged(f.c, d, n, PRT_F32, PRT_COMM_SUM, 0, &h1));
    CK_OK(f.ctx, prt_comm_allreduce_start_tagged(f.c, d, n, PRT_F32, PRT_COMM_AVG, 1, &h2));
    CK_OK(f.ctx, prt_comm_allreduce_start(f.c, NULL, 0, PRT_F32, PRT_COMM_SUM, &h0));
    ck_assert(h1 == 1 && h2 == 2 && h0 == 3);
    CK_OK(f.ctx, prt_comm_wait(f.c, h2));
    CK_OK(f.ctx, prt_comm_wait(f.c, h1)); /* earlier, already covered */
    CK_OK(f.ctx, prt_comm_wait(f.c, h0));
    float *h = download(&f, d, n);
    for (size_t i = 0; i < n; i++)
        if (h[i] != contrib(0, i)) ck_abort_msg("element %zu: %g, want %g", i, (double)h[i], (double)contrib(0, i));
    free(h);
    ck_assert_int_eq(prt_comm_wait(f.c, 4), PRT_ERR_INVALID);
    ck_assert_str_eq(prt_last_error(f.ctx), "comm wait: handle 4 was never issued");
    CK_CUDA(cudaFree(d));
    close_one(&f);
}
END_TEST

START_TEST(one_rank_broadcast) {
    gpu_fixture f;
    open_one(&f, 60);
    const size_t n = 4099;
    float *d = upload(&f, n, 2);
    CK_OK(f.ctx, prt_comm_broadcast(f.c, d, n * sizeof(float), 0));
    float *h = download(&f, d, n);
    for (size_t i = 0; i < n; i++) ck_assert(h[i] == contrib(2, i));
    /* host memory goes to the bootstrap (local: unchanged) */
    CK_OK(f.ctx, prt_comm_broadcast(f.c, h, n * sizeof(float), 0));
    ck_assert(h[7] == contrib(2, 7));
    ck_assert_int_eq(prt_comm_broadcast(f.c, d, 4, 1), PRT_ERR_INVALID);
    ck_assert_str_eq(prt_last_error(f.ctx), "broadcast: root 1 is not a rank (size 1)");
    CK_OK(f.ctx, prt_comm_barrier(f.c));
    CK_OK(f.ctx, prt_comm_check_same(f.c, 42, "compiled program"));
    free(h);
    CK_CUDA(cudaFree(d));
    close_one(&f);
}
END_TEST

/* A host function that holds its stream until *flag is set. */
static void CUDART_CB hold(void *arg) {
    atomic_int *flag = arg;
    struct timespec ts = {0, 1000000};
    while (!atomic_load(flag)) nanosleep(&ts, NULL);
}

static void *release_later(void *arg) {
    struct timespec ts = {3, 0};
    nanosleep(&ts, NULL);
    atomic_store((atomic_int *)arg, 1);
    return NULL;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

START_TEST(stream_order) {
    gpu_fixture f;
    open_one(&f, 60);
    const size_t n = 4096;
    float *d = upload(&f, n, 1);
    atomic_int go = 0;
    cudaEvent_t mark;
    CK_CUDA(cudaEventCreateWithFlags(&mark, cudaEventDisableTiming));

    /* start: the comm stream waits for the compute stream's earlier work */
    CK_CUDA(cudaLaunchHostFunc(f.compute, hold, &go));
    prt_comm_handle h;
    CK_OK(f.ctx, prt_comm_allreduce_start(f.c, d, n, PRT_F32, PRT_COMM_SUM, &h));
    CK_CUDA(cudaEventRecord(mark, f.comm));
    sleep_ms(200);
    ck_assert_int_eq(cudaEventQuery(mark), cudaErrorNotReady);
    atomic_store(&go, 1);
    CK_CUDA(cudaEventSynchronize(mark));
    CK_OK(f.ctx, prt_comm_wait(f.c, h));

    /* wait: the compute stream waits for the reduction, the host does not */
    atomic_store(&go, 0);
    CK_CUDA(cudaLaunchHostFunc(f.comm, hold, &go));
    CK_OK(f.ctx, prt_comm_allreduce_start(f.c, d, n, PRT_F32, PRT_COMM_SUM, &h));
    CK_OK(f.ctx, prt_comm_wait(f.c, h)); /* returns while the comm stream is held */
    CK_CUDA(cudaEventRecord(mark, f.compute));
    sleep_ms(200);
    ck_assert_int_eq(cudaEventQuery(mark), cudaErrorNotReady);
    atomic_store(&go, 1);
    float *out = download(&f, d, n);
    for (size_t i = 0; i < n; i++) ck_assert(out[i] == contrib(1, i));
    free(out);
    CK_CUDA(cudaEventDestroy(mark));
    CK_CUDA(cudaFree(d));
    close_one(&f);
}
END_TEST

START_TEST(host_buffer_refused) {
    gpu_fixture f;
    open_one(&f, 60);
    float host[16];
    for (int i = 0; i < 16; i++) host[i] = contrib(0, (size_t)i);
    prt_comm_handle h = 9;
    ck_assert_int_eq(prt_comm_allreduce_start_tagged(f.c, host, 16, PRT_F32, PRT_COMM_AVG, 3, &h), PRT_ERR_INVALID);
    char want[256];
    snprintf(want, sizeof want,
             "rank 0: allreduce (gradient bucket 3) of 16 f32 elements: the buffer is host memory, not memory of "
             "CUDA device %d (the NCCL communicator reduces device memory)",
             f.gpu->index);
    ck_assert_str_eq(prt_last_error(f.ctx), want);
    ck_assert(h == 0);
    /* a refused buffer issues nothing: the communicator goes on */
    float *d = upload(&f, 16, 0);
    CK_OK(f.ctx, prt_comm_allreduce_start(f.c, d, 16, PRT_F32, PRT_COMM_SUM, &h));
    ck_assert(h == 1);
    CK_OK(f.ctx, prt_comm_wait(f.c, h));
    CK_OK(f.ctx, prt_comm_nccl_check(f.c));
    CK_CUDA(cudaFree(d));
    close_one(&f);
}
END_TEST

START_TEST(hang_times_out) {
    gpu_fixture f;
    open_one(&f, 1);
    const size_t n = 4096;
    float *d = upload(&f, n, 0);
    atomic_int go = 0;
    pthread_t t;
    /* the comm stream is held for 3 s, longer than the 1 s timeout: as a
     * collective whose peer never came */
    CK_CUDA(cudaLaunchHostFunc(f.comm, hold, &go));
    ck_assert_int_eq(pthread_create(&t, NULL, release_later, &go), 0);
    prt_comm_handle h;
    CK_OK(f.ctx, prt_comm_allreduce_start_tagged(f.c, d, n, PRT_F32, PRT_COMM_SUM, 2, &h));
    CK_OK(f.ctx, prt_comm_wait(f.c, h));
    double t0 = prt_now();
    ck_assert_int_eq(prt_comm_nccl_check(f.c), PRT_ERR_BACKEND);
    /* bounded: the 1 s deadline, plus an abort that may wait for the held stream (3 s) */
    ck_assert_msg(prt_now() - t0 < 10, "the check took %g s", prt_now() - t0);
    const char *want = "rank 0: allreduce #1 (gradient bucket 2) of 4096 f32 elements did not complete within 1 s "
                       "(NCCL reports no error: a rank died, stopped responding, or did not issue this collective; "
                       "the NCCL communicator was aborted)";
    ck_assert_str_eq(prt_last_error(f.ctx), want);
    /* broken from now on */
    ck_assert_int_eq(prt_comm_allreduce_start(f.c, d, n, PRT_F32, PRT_COMM_SUM, &h), PRT_ERR_BACKEND);
    char again[512];
    snprintf(again, sizeof again, "NCCL communicator: an earlier operation failed: %s", want);
    ck_assert_str_eq(prt_last_error(f.ctx), again);
    pthread_join(t, NULL);
    CK_CUDA(cudaStreamSynchronize(f.comm));
    CK_CUDA(cudaFree(d));
    close_one(&f);
}
END_TEST

#if PARROTS_HAVE_MPI
/* All ranks in one NCCL communicator, when every local rank has its own GPU. */
START_TEST(many_ranks) {
    prt_context *ctx = tu_context();
    prt_comm_options o = {.struct_size = sizeof o, .timeout_s = 60};
    prt_comm *mpi;
    CK_OK(ctx, prt_comm_create_mpi(ctx, &o, &mpi));
    int size = prt_comm_size(mpi), rank = prt_comm_rank(mpi);
    uint64_t enough = mpi->local_size <= prt_cuda_device_count(), *all = calloc((size_t)size, sizeof *all);
    CK_OK(ctx, prt_comm_allgather_u64(mpi, enough, all));
    bool every = true;
    for (int r = 0; r < size; r++) every = every && all[r];
    free(all);
    if (size < 2 || !every) {
        if (rank == 0) printf("many_ranks: not run (%d ranks; a GPU per local rank is needed)\n", size);
        prt_comm_destroy(mpi);
        prt_context_destroy(ctx);
        return;
    }
    gpu_fixture f = {.ctx = ctx, .boot = mpi};
    CK_OK(ctx, prt_cuda_device_create(ctx, prt_comm_local_rank(mpi), &f.gpu));
    CK_OK(ctx, prt_comm_create_nccl(ctx, &o, mpi, f.gpu, &f.c));
    ck_assert_int_eq(prt_comm_rank(f.c), rank);
    ck_assert_int_eq(prt_comm_size(f.c), size);
    f.compute = prt_cuda_stream(f.gpu, PRT_CUDA_COMPUTE);
    const size_t n = ((size_t)1 << 18) + 5;
    float *ds = upload(&f, n, rank), *da = upload(&f, n, rank);
    prt_comm_handle hs, ha;
    CK_OK(ctx, prt_comm_allreduce_start(f.c, ds, n, PRT_F32, PRT_COMM_SUM, &hs));
    CK_OK(ctx, prt_comm_allreduce_start(f.c, da, n, PRT_F32, PRT_COMM_AVG, &ha));
    CK_OK(ctx, prt_comm_wait(f.c, ha));
    float *s = download(&f, ds, n), *a = download(&f, da, n);
    for (size_t i = 0; i < n; i++) {
        float k = (float)(int)(i % 251 + 1), sum = (float)(size * (size + 1) / 2) * k;
        if (s[i] != sum) ck_abort_msg("sum %zu: %g, want %g", i, (double)s[i], (double)sum);
        /* ncclAvg may scale before or after summing: one rounding of slack */
        if (fabsf(a[i] - sum / (float)size) > 1e-6f * sum)
            ck_abort_msg("average %zu: %g, want %g", i, (double)a[i], (double)(sum / (float)size));
    }
    free(s);
    free(a);
    for (int root = 0; root < size; root++) {
        float *db = upload(&f, 1000, rank);
        CK_OK(ctx, prt_comm_broadcast(f.c, db, 1000 * sizeof(float), root));
        float *b = download(&f, db, 1000);
        for (size_t i = 0; i < 1000; i++) ck_assert(b[i] == contrib(root, i));
        free(b);
        CK_CUDA(cudaFree(db));
    }
    CK_CUDA(cudaFree(ds));
    CK_CUDA(cudaFree(da));
    close_one(&f);
}
END_TEST
#endif

#endif /* CUDA and NCCL */

static Suite *gpu_suite(void) {
    Suite *s = suite_create("nccl");
    TCase *tc = tcase_create("nccl");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, no_device);
#if PARROTS_HAVE_CUDA && PARROTS_HAVE_NCCL
    tcase_add_test(tc, one_rank_allreduce);
    tcase_add_test(tc, one_rank_broadcast);
    tcase_add_test(tc, stream_order);
    tcase_add_test(tc, host_buffer_refused);
    tcase_add_test(tc, hang_times_out);
#if PARROTS_HAVE_MPI
    tcase_add_test(tc, many_ranks);
#endif
#endif
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    if (prt_cuda_device_count() > 0) return tu_run_mpi(gpu_suite());
    /* no GPU: only the refusal can be checked; a skip, never a pass */
    Suite *s = suite_create("nccl-no-gpu");
    TCase *tc = tcase_create("no-gpu");
    tcase_add_test(tc, no_device);
    suite_add_tcase(s, tc);
    int failed = tu_run_nofork(s);
    if (failed) return 1;
    printf("SKIP: no CUDA device (prt_cuda_device_count() is 0); only the no-device refusal was checked\n");
    return SKIP_STATUS;
}

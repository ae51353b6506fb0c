/* The comm backends: the one-rank backend, and the MPI backend under
 * `mpirun -np 2` and `-np 4` (tests/CMakeLists.txt registers those runs; run
 * alone it is an MPI job of one rank). Sums are checked exactly: every rank adds
 * small integers, exact in f32 in any reduction order. The tests run in one
 * process (CK_NOFORK): forking an MPI process is not allowed, and every rank must
 * issue the same collectives in the same order.
 */
// labels: mpi

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/comm_api.h"
#include "tests/mpi_util.h"
#include "tests/test_util.h"

#if PARROTS_HAVE_MPI
#include <mpi.h>
#endif

/* Rank r's contribution to element i, and the exact sum over n ranks. */
static float contrib(int r, size_t i) { return (float)((r + 1) * (int)(i % 251 + 1)); }
static float expected_sum(int n, size_t i) { return (float)((n * (n + 1) / 2) * (int)(i % 251 + 1)); }

static void fill(float *p, size_t n, int rank) {
    for (size_t i = 0; i < n; i++) p[i] = contrib(rank, i);
}

static void check_sum(const float *p, size_t n, int size) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != expected_sum(size, i))
            ck_abort_msg("element %zu of %zu: %g, want %g", i, n, (double)p[i], (double)expected_sum(size, i));
}

/* ---- the one-rank backend --------------------------------------------- */

START_TEST(local_backend) {
    prt_context *ctx = tu_context();
    prt_comm *c;
    ck_assert_int_eq(prt_comm_create_local(ctx, NULL, &c), PRT_OK);
    ck_assert_str_eq(prt_comm_backend(c), "local");
    ck_assert_int_eq(prt_comm_rank(c), 0);
    ck_assert_int_eq(prt_comm_size(c), 1);
    ck_assert_int_eq(prt_comm_local_rank(c), 0);
    ck_assert(c->timeout_s == PRT_COMM_DEFAULT_TIMEOUT_S);

    float buf[5];
    fill(buf, 5, 0);
    prt_comm_handle h1, h2;
    ck_assert_int_eq(prt_comm_allreduce_start(c, buf, 5, PRT_F32, PRT_COMM_SUM, &h1), PRT_OK);
    ck_assert_int_eq(prt_comm_allreduce_start(c, NULL, 0, PRT_F32, PRT_COMM_SUM, &h2), PRT_OK);
    ck_assert(h1 != 0 && h2 > h1);
    ck_assert_int_eq(prt_comm_wait(c, h2), PRT_OK);
    ck_assert_int_eq(prt_comm_wait(c, h1), PRT_OK);
    check_sum(buf, 5, 1);
    ck_assert_int_eq(prt_comm_broadcast(c, buf, sizeof buf, 0), PRT_OK);
    check_sum(buf, 5, 1);
    ck_assert_int_eq(prt_comm_barrier(c), PRT_OK);
    ck_assert_int_eq(prt_comm_check_same(c, 42, "compiled program"), PRT_OK);

    ck_assert_int_eq(prt_comm_wait(c, h2 + 1), PRT_ERR_INVALID);
    char want[128];
    snprintf(want, sizeof want, "comm wait: handle %llu was never issued", (unsigned long long)(h2 + 1));
    ck_assert_str_eq(prt_last_error(ctx), want);
    ck_assert_int_eq(prt_comm_wait(c, 0), PRT_ERR_INVALID);
    ck_assert_str_eq(prt_last_error(ctx), "comm wait: invalid handle 0");
    ck_assert_int_eq(prt_comm_broadcast(c, buf, sizeof buf, 1), PRT_ERR_INVALID);
    ck_assert_str_eq(prt_last_error(ctx), "broadcast: root 1 is not a rank (size 1)");
    prt_comm_handle h = 7;
    ck_assert_int_eq(prt_comm_allreduce_start(c, buf, 5, PRT_F64, PRT_COMM_SUM, &h), PRT_ERR_UNSUPPORTED);
    ck_assert_str_eq(prt_last_error(ctx), "allreduce: dtype f64 is not supported (f32 only)");
    ck_assert(h == 0);
    ck_assert_int_eq(prt_comm_allreduce_start(c, NULL, 3, PRT_F32, PRT_COMM_SUM, &h), PRT_ERR_INVALID);
    ck_assert_str_eq(prt_last_error(ctx), "allreduce: NULL buffer for 3 elements");
    prt_comm_destroy(c);
    prt_comm_destroy(NULL);

    prt_comm_options o = {.struct_size = sizeof o, .timeout_s = 2};
    ck_assert_int_eq(prt_comm_create_local(ctx, &o, &c), PRT_OK);
    ck_assert(c->timeout_s == 2.0);
    prt_comm_destroy(c);
    o.struct_size = sizeof o + 8;
    ck_assert_int_eq(prt_comm_create_local(ctx, &o, &c), PRT_ERR_INVALID);
    ck_assert_ptr_null(c);
    char want2[128];
    snprintf(want2, sizeof want2, "comm options: struct_size %zu is not one this build knows", sizeof o + 8);
    ck_assert_str_eq(prt_last_error(ctx), want2);
    prt_context_destroy(ctx);
}
END_TEST

#if !PARROTS_HAVE_MPI

START_TEST(mpi_unsupported) {
    prt_context *ctx = tu_context();
    prt_comm *c = (prt_comm *)&c;
    ck_assert_int_eq(prt_comm_create_mpi(ctx, NULL, &c), PRT_ERR_UNSUPPORTED);
    ck_assert_ptr_null(c);
    ck_assert_str_eq(prt_last_error(ctx), "MPI communicator: this build of Parrots has no MPI support (install "
                                          "libopenmpi-dev and configure with -DPARROTS_MPI=ON)");
    prt_context_destroy(ctx);
}
END_TEST

#else

/* ---- the MPI backend (every rank runs every test) ----------------------- */

typedef struct fixture {
    prt_context *ctx;
    prt_comm *c;
} fixture;

static fixture open_mpi(double timeout_s) {
    fixture f = {tu_context(), NULL};
    prt_comm_options o = {.struct_size = sizeof o, .timeout_s = timeout_s};
    if (prt_comm_create_mpi(f.ctx, &o, &f.c) != PRT_OK) ck_abort_msg("create: %s", prt_last_error(f.ctx));
    ck_assert_str_eq(prt_comm_backend(f.c), "mpi");
    return f;
}

static void close_mpi(fixture *f) {
    prt_comm_destroy(f->c);
    prt_context_destroy(f->ctx);
}

START_TEST(mpi_rank_size) {
    fixture f = open_mpi(30);
    int wr, ws;
    MPI_Comm_rank(MPI_COMM_WORLD, &wr);
    MPI_Comm_size(MPI_COMM_WORLD, &ws);
    ck_assert_int_eq(prt_comm_rank(f.c), wr);
    ck_assert_int_eq(prt_comm_size(f.c), ws);
    /* every rank of these tests runs on this one machine */
    ck_assert_int_eq(prt_comm_local_rank(f.c), wr);
    ck_assert_int_eq(f.c->local_size, ws);
    const char *env = getenv("OMPI_COMM_WORLD_LOCAL_RANK");
    if (env) ck_assert_int_eq(prt_comm_local_rank(f.c), atoi(env));
    close_mpi(&f);
}
END_TEST

START_TEST(mpi_allreduce_sizes) {
    fixture f = open_mpi(30);
    int rank = prt_comm_rank(f.c), size = prt_comm_size(f.c);
    static const size_t counts[] = {0, 1, 2, 3, 17, 255, 1000, 4097, 65537, (1u << 20) + 3};
    for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
        size_t n = counts[k];
        float *buf = malloc((n + 1) * sizeof *buf);
        fill(buf, n, rank);
        buf[n] = -7; /* a guard element past the end: never touched */
        prt_comm_handle h;
        ck_assert_int_eq(prt_comm_allreduce_start(f.c, n ? buf : NULL, n, PRT_F32, PRT_COMM_SUM, &h), PRT_OK);
        if (prt_comm_wait(f.c, h) != PRT_OK) ck_abort_msg("%s", prt_last_error(f.ctx));
        check_sum(buf, n, size);
        ck_assert(buf[n] == -7);
        free(buf);
    }
    close_mpi(&f);
}
END_TEST

START_TEST(mpi_outstanding_in_order) {
    fixture f = open_mpi(30);
    int rank = prt_comm_rank(f.c), size = prt_comm_size(f.c);
    enum { N = 12 };
    float *bufs[N];
    size_t counts[N];
    prt_comm_handle h[N];
    for (int k = 0; k < N; k++) {
        counts[k] = (size_t)(k * 7919 % 50000 + k);
        bufs[k] = malloc((counts[k] + 1) * sizeof(float));
        fill(bufs[k], counts[k], rank);
        ck_assert_int_eq(prt_comm_allreduce_start(f.c, bufs[k], counts[k], PRT_F32, PRT_COMM_SUM, &h[k]), PRT_OK);
        if (k) ck_assert(h[k] == h[k - 1] + 1);
    }
    /* waiting for the last one means every earlier one finished too */
    if (prt_comm_wait(f.c, h[N - 1]) != PRT_OK) ck_abort_msg("%s", prt_last_error(f.ctx));
    for (int k = 0; k < N; k++) check_sum(bufs[k], counts[k], size);
    for (int k = 0; k < N; k++) ck_assert_int_eq(prt_comm_wait(f.c, h[k]), PRT_OK);
    for (int k = 0; k < N; k++) free(bufs[k]);
    ck_assert_int_eq(prt_comm_wait(f.c, h[N - 1] + 1), PRT_ERR_INVALID);
    close_mpi(&f);
}
END_TEST

START_TEST(mpi_broadcast_barrier) {
    fixture f = open_mpi(30);
    int rank = prt_comm_rank(f.c), size = prt_comm_size(f.c);
    enum { B = 100003 };
    unsigned char *buf = malloc(B);
    for (int root = 0; root < size; root++) {
        for (int i = 0; i < B; i++) buf[i] = (unsigned char)(rank == root ? (i * 31 + root) : 0xEE);
        if (prt_comm_broadcast(f.c, buf, B, root) != PRT_OK) ck_abort_msg("%s", prt_last_error(f.ctx));
        for (int i = 0; i < B; i++)
            if (buf[i] != (unsigned char)(i * 31 + root)) ck_abort_msg("root %d byte %d: %d", root, i, buf[i]);
        ck_assert_int_eq(prt_comm_barrier(f.c), PRT_OK);
    }
    ck_assert_int_eq(prt_comm_broadcast(f.c, NULL, 0, 0), PRT_OK);
    ck_assert_int_eq(prt_comm_broadcast(f.c, buf, 1, size), PRT_ERR_INVALID);
    char want[96];
    snprintf(want, sizeof want, "broadcast: root %d is not a rank (size %d)", size, size);
    ck_assert_str_eq(prt_last_error(f.ctx), want);
    free(buf);
    close_mpi(&f);
}
END_TEST

START_TEST(mpi_check_same) {
    fixture f = open_mpi(30);
    int rank = prt_comm_rank(f.c), size = prt_comm_size(f.c);
    ck_assert_int_eq(prt_comm_check_same(f.c, 0x1234abcdULL, "compiled program"), PRT_OK);
    /* odd ranks compiled something else, each its own */
    uint64_t h = rank % 2 ? 0xbad0000000000000ULL + (uint64_t)rank : 0x1234abcdULL;
    prt_status st = prt_comm_check_same(f.c, h, "compiled program");
    if (size == 1) {
        ck_assert_int_eq(st, PRT_OK);
    } else {
        ck_assert_int_eq(st, PRT_ERR_INVALID);
        if (size == 2)
            ck_assert_str_eq(prt_last_error(f.ctx), "rank 1 has a different compiled program (hash "
                                                    "bad0000000000001) than rank 0 (hash 000000001234abcd)");
        else if (size == 4)
            ck_assert_str_eq(prt_last_error(f.ctx),
                             "ranks 1, 3 have a different compiled program (hash bad0000000000001, "
                             "bad0000000000003) than rank 0 (hash 000000001234abcd)");
    }
    /* still usable afterwards: a mismatch is a finding, not a transport failure */
    ck_assert_int_eq(prt_comm_barrier(f.c), PRT_OK);
    close_mpi(&f);
}
END_TEST

/* Rank 0 skips a collective: the others time out within the configured time
 * with a message naming the operation; then rank 0 joins late (told over
 * MPI_COMM_WORLD) so the abandoned collective completes and MPI stays clean. */
START_TEST(mpi_timeout) {
    const double timeout = 2.0;
    fixture f = open_mpi(timeout);
    int rank = prt_comm_rank(f.c), size = prt_comm_size(f.c);
    if (size == 1) {
        close_mpi(&f);
        return;
    }
    float buf[64];
    fill(buf, 64, rank);
    prt_comm_handle h;
    if (rank != 0) {
        double t0 = prt_now();
        ck_assert_int_eq(prt_comm_allreduce_start(f.c, buf, 64, PRT_F32, PRT_COMM_SUM, &h), PRT_OK);
        ck_assert_int_eq(prt_comm_wait(f.c, h), PRT_ERR_BACKEND);
        double dt = prt_now() - t0;
        /* the liveness probe names rank 0: the others answered (they time
         * out on this collective too); it waits min(timeout, 10 s) for rank 0 */
        char others[64] = "", who[96] = "", want[320];
        size_t o = 0;
        int n_others = 0;
        for (int r = 1; r < size; r++)
            if (r != rank) o += (size_t)snprintf(others + o, sizeof others - o, "%s%d", n_others++ ? ", " : "", r);
        if (n_others) snprintf(who, sizeof who, " (%s %s did)", n_others == 1 ? "rank" : "ranks", others);
        snprintf(want, sizeof want,
                 "rank %d: allreduce #1 of 64 f32 elements did not complete within 2 s: rank 0 did not respond%s; "
                 "it died, hangs, or skipped this collective",
                 rank, who);
        char got[512];
        snprintf(got, sizeof got, "%s", prt_last_error(f.ctx));
        /* broken from now on: later operations fail at once with the first message */
        prt_status later = prt_comm_barrier(f.c);
        char got2[1024], want2[512];
        snprintf(got2, sizeof got2, "%s", prt_last_error(f.ctx));
        snprintf(want2, sizeof want2, "comm operation #2 was not run: an earlier one failed: %s", want);
        /* rank 0 is told before anything is asserted, so a failed check here
         * cannot leave it waiting (and the job hanging) */
        int one = 1;
        MPI_Send(&one, 1, MPI_INT, 0, 77, MPI_COMM_WORLD);
        close_mpi(&f); /* completes the abandoned allreduce once rank 0 joins */
        ck_assert_str_eq(got, want);
        /* at least the timeout; the probe then waits at most min(timeout, 10 s)
         * more, counted from the first peer's probe, so a rank that entered the
         * collective late ends sooner than 2 x timeout after its own start */
        ck_assert_msg(dt >= timeout && dt < 2 * timeout + 2.0, "timed out after %.2f s", dt);
        ck_assert_int_eq(later, PRT_ERR_BACKEND);
        ck_assert_str_eq(got2, want2);
        check_sum(buf, 64, size);
    } else {
        int one;
        for (int r = 1; r < size; r++) MPI_Recv(&one, 1, MPI_INT, r, 77, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        ck_assert_int_eq(prt_comm_allreduce_start(f.c, buf, 64, PRT_F32, PRT_COMM_SUM, &h), PRT_OK);
        if (prt_comm_wait(f.c, h) != PRT_OK) ck_abort_msg("%s", prt_last_error(f.ctx));
        check_sum(buf, 64, size);
        close_mpi(&f);
    }
    MPI_Barrier(MPI_COMM_WORLD);
}
END_TEST

#endif

static Suite *suite(void) {
    Suite *s = suite_create("comm");
    TCase *tc = tcase_create("comm");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, local_backend);
#if PARROTS_HAVE_MPI
    tcase_add_test(tc, mpi_rank_size);
    tcase_add_test(tc, mpi_allreduce_sizes);
    tcase_add_test(tc, mpi_outstanding_in_order);
    tcase_add_test(tc, mpi_broadcast_barrier);
    tcase_add_test(tc, mpi_check_same);
    tcase_add_test(tc, mpi_timeout);
#else
    tcase_add_test(tc, mpi_unsupported);
#endif
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_mpi(suite()); }

/* The comm backend against plain MPI_Allreduce, and how much of an allreduce
 * the communication thread hides behind compute.
 *
 *     mpirun -np 4 build/bench/comm [--iters K] [--max-bytes B] [--step 2|4]
 *                                   [--overlap-bytes B] [--markdown MACHINE DATE]
 *
 * Sizes run from 8 B by factors of --step (default 4) up to --max-bytes
 * (default 256 MiB, always included). For every size and both implementations
 * on the same buffer (and MPI_Iallreduce + MPI_Wait, the call our thread drives,
 * to separate the algorithm from the thread hand-off): median time over K timed runs (default 20; fewer above 8
 * MiB, at least 3) after one warm-up, each run's time being the slowest rank's;
 * algorithm bandwidth = bytes / time; bus bandwidth = algbw · 2(n−1)/n (what
 * each link carries in a ring); and a correctness column: every rank adds
 * rank-dependent small integers, exact in f32, and every element of every run is
 * checked on every rank.
 *
 * Overlap (--overlap-bytes, default 32 MiB): the allreduce alone (comm), a
 * single-thread compute loop calibrated to about the same time alone (comp),
 * both one after the other (serial), and compute running while the allreduce is
 * in flight (overlapped: start, compute, wait). hidden = (serial − overlapped) /
 * min(comm, comp): 1 means fully hidden. Each rank needs a core for compute and
 * one for its comm thread to show real overlap.
 */
#include "runtime/comm_api.h"

#include <stdlib.h>
#include <string.h>

#if PARROTS_HAVE_MPI
#include <mpi.h>

#define MIB ((size_t)1 << 20)

static void die(prt_context *ctx, const char *what) {
    fprintf(stderr, "comm: %s: %s\n", what, ctx ? prt_last_error(ctx) : "");
    MPI_Abort(MPI_COMM_WORLD, 1);
    exit(1);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void fill(float *p, size_t n, int rank) {
    for (size_t i = 0; i < n; i++) p[i] = (float)((rank + 1) * (int)(i % 251 + 1));
}

static bool check(const float *p, size_t n, int size) {
    int tri = size * (size + 1) / 2;
    for (size_t i = 0; i < n; i++)
        if (p[i] != (float)(tri * (int)(i % 251 + 1))) return false;
    return true;
}

typedef enum impl { IMPL_PARROTS, IMPL_MPI, IMPL_IMPI } impl;

static void allreduce(prt_comm *c, impl which, float *buf, size_t n) {
    if (which == IMPL_IMPI) { /* what our thread drives, without the thread */
        MPI_Request req;
        if (MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req) != MPI_SUCCESS ||
            MPI_Wait(&req, MPI_STATUS_IGNORE) != MPI_SUCCESS)
            die(NULL, "MPI_Iallreduce");
        return;
    }
    if (which == IMPL_MPI) {
        if (MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
            die(NULL, "MPI_Allreduce");
        return;
    }
    prt_comm_handle h;
    if (prt_comm_allreduce_start(c, buf, n, PRT_F32, PRT_COMM_SUM, &h) != PRT_OK || prt_comm_wait(c, h) != PRT_OK)
        die(c->ctx, "allreduce");
}

/* Median over iters of the slowest rank's time; *ok: every element right on every rank. */
static double time_allreduce(prt_comm *c, impl which, float *buf, size_t n, int iters, bool *ok) {
    int rank = prt_comm_rank(c), size = prt_comm_size(c);
    double *t = malloc((size_t)iters * sizeof *t), *tmax = malloc((size_t)iters * sizeof *t);
    int good = 1;
    for (int i = -1; i < iters; i++) {
        fill(buf, n, rank);
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = prt_now();
        allreduce(c, which, buf, n);
        double dt = prt_now() - t0;
        if (i >= 0) t[i] = dt;
        good &= check(buf, n, size);
    }
    MPI_Allreduce(t, tmax, iters, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    int all_good;
    MPI_Allreduce(&good, &all_good, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    *ok = all_good;
    qsort(tmax, (size_t)iters, sizeof *tmax, cmp_double);
    double med = tmax[iters / 2];
    free(t);
    free(tmax);
    return med;
}

/* Single-thread compute that touches no memory: FMA chains in registers. */
static float compute(long reps) {
    volatile float vm = 0.999999f, vc = 0.5f; /* opaque: the loop cannot be folded */
    float m = vm, c = vc, a[8];
    for (int k = 0; k < 8; k++) a[k] = (float)k;
    for (long r = 0; r < reps; r++)
        for (int k = 0; k < 8; k++) a[k] = a[k] * m + c;
    float s = 0;
    for (int k = 0; k < 8; k++) s += a[k];
    return s;
}

static void fmt_bytes(size_t b, char *out, size_t cap) {
    if (b >= MIB)
        snprintf(out, cap, "%zu MiB", b / MIB);
    else if (b >= 1024)
        snprintf(out, cap, "%zu KiB", b / 1024);
    else
        snprintf(out, cap, "%zu B", b);
}

static void fmt_time(double s, char *out, size_t cap) {
    if (s < 1e-3)
        snprintf(out, cap, "%.1f us", s * 1e6);
    else
        snprintf(out, cap, "%.2f ms", s * 1e3);
}

static void overlap(prt_comm *c, size_t bytes, int iters, bool md) {
    int rank = prt_comm_rank(c);
    size_t n = bytes / sizeof(float);
    float *buf = malloc(n * sizeof *buf);
    volatile float sink = 0;
    enum { PHASES = 4 };
    double t[PHASES][64];
    if (iters > 64) iters = 64;
    /* comm alone, then calibrate compute to the same time (rank 0's choice for all) */
    bool ok;
    double t_comm = time_allreduce(c, IMPL_PARROTS, buf, n, iters, &ok);
    long reps = 1 << 20;
    double t0 = prt_now();
    sink += compute(reps);
    double per = (prt_now() - t0) / (double)reps;
    reps = (long)(t_comm / per);
    MPI_Bcast(&reps, 1, MPI_LONG, 0, MPI_COMM_WORLD);
    bool good = true;
    for (int i = -1; i < iters; i++) {
        for (int ph = 0; ph < PHASES; ph++) {
            fill(buf, n, rank);
            MPI_Barrier(MPI_COMM_WORLD);
            prt_comm_handle h = 0;
            double s = prt_now();
            switch (ph) {
            case 0: /* comm alone */
                if (prt_comm_allreduce_start(c, buf, n, PRT_F32, PRT_COMM_SUM, &h) || prt_comm_wait(c, h))
                    die(c->ctx, "allreduce");
                break;
            case 1: sink += compute(reps); break;
            case 2: /* serial */
                sink += compute(reps);
                if (prt_comm_allreduce_start(c, buf, n, PRT_F32, PRT_COMM_SUM, &h) || prt_comm_wait(c, h))
                    die(c->ctx, "allreduce");
                break;
            case 3: /* overlapped */
                if (prt_comm_allreduce_start(c, buf, n, PRT_F32, PRT_COMM_SUM, &h)) die(c->ctx, "allreduce");
                sink += compute(reps);
                if (prt_comm_wait(c, h)) die(c->ctx, "allreduce");
                break;
            }
            double dt = prt_now() - s;
            if (i >= 0) t[ph][i] = dt;
            if (ph != 1) good &= check(buf, n, prt_comm_size(c));
        }
    }
    double med[PHASES];
    for (int ph = 0; ph < PHASES; ph++) {
        double mx[64];
        MPI_Allreduce(t[ph], mx, iters, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        qsort(mx, (size_t)iters, sizeof mx[0], cmp_double);
        med[ph] = mx[iters / 2];
    }
    int g = good, all_good;
    MPI_Allreduce(&g, &all_good, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    double lo = med[0] < med[1] ? med[0] : med[1];
    double hidden = (med[2] - med[3]) / lo;
    if (rank == 0) {
        char b[32], s[4][32];
        fmt_bytes(bytes, b, sizeof b);
        for (int ph = 0; ph < PHASES; ph++) fmt_time(med[ph], s[ph], sizeof s[ph]);
        if (md) {
            printf("\n| overlap, %s, %d ranks | comm alone | compute alone | serial | overlapped | hidden | ok |\n",
                   b, prt_comm_size(c));
            printf("|---|---|---|---|---|---|---|\n");
            printf("| median of %d | %s | %s | %s | %s | %.0f%% | %s |\n", iters, s[0], s[1], s[2], s[3],
                   100 * hidden, all_good ? "yes" : "NO");
        } else {
            printf("\noverlap at %s (%d ranks, median of %d): comm %s, compute %s, serial %s, overlapped %s: "
                   "hidden %.0f%% of the shorter  %s\n",
                   b, prt_comm_size(c), iters, s[0], s[1], s[2], s[3], 100 * hidden, all_good ? "ok" : "WRONG");
        }
    }
    free(buf);
}

int main(int argc, char **argv) {
    int iters = 20, step = 4;
    size_t max_bytes = 256 * MIB, overlap_bytes = 32 * MIB;
    bool md = false;
    const char *machine = "?", *date = "?";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--iters") == 0 && i + 1 < argc) {
            iters = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--max-bytes") == 0 && i + 1 < argc) {
            max_bytes = (size_t)strtoull(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--overlap-bytes") == 0 && i + 1 < argc) {
            overlap_bytes = (size_t)strtoull(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--step") == 0 && i + 1 < argc) {
            step = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--markdown") == 0 && i + 2 < argc) {
            md = true;
            machine = argv[++i];
            date = argv[++i];
        } else {
            fprintf(stderr, "usage: mpirun -np N comm [--iters K] [--max-bytes B] [--step 2|4] "
                            "[--overlap-bytes B] [--markdown MACHINE DATE]\n");
            return 2;
        }
    }
    if (iters < 1 || (step != 2 && step != 4) || max_bytes < 8 || max_bytes > ((size_t)1 << 33) ||
        overlap_bytes > max_bytes) {
        fprintf(stderr, "comm: bad --iters, --step, --max-bytes or --overlap-bytes\n");
        return 2;
    }
    prt_context_options co = {.struct_size = sizeof co, .log_level = PRT_LOG_WARN};
    prt_context *ctx;
    if (prt_context_create(&co, &ctx) != PRT_OK) die(NULL, "context");
    prt_comm *c;
    if (prt_comm_create_mpi(ctx, NULL, &c) != PRT_OK) die(ctx, "communicator");
    int rank = prt_comm_rank(c);
    int size = prt_comm_size(c);
    double bus = size > 1 ? 2.0 * (size - 1) / size : 0.0;
    float *buf = malloc(max_bytes);
    if (!buf) die(NULL, "out of memory");

    if (rank == 0) {
        if (md) {
            printf("Allreduce (f32 sum, in place), %d ranks, %s, %s; time = median of the slowest rank\n\n",
                   size, machine, date);
            printf("| size | parrots time | algbw GB/s | busbw GB/s | ok | MPI_Allreduce time | algbw GB/s | "
                   "busbw GB/s | ok | MPI_Iallreduce+Wait time | ok |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
        } else {
            printf("%d ranks; time: median of the slowest rank; GB/s = 1e9 B/s\n", size);
            printf("%10s | %10s %9s %9s %4s | %10s %9s %9s %4s | %10s %4s\n", "size", "parrots", "algbw", "busbw",
                   "ok", "MPI", "algbw", "busbw", "ok", "Iallreduce", "ok");
        }
    }
    for (size_t bytes = 8;;) {
        size_t n = bytes / sizeof(float);
        int k = bytes <= 8 * MIB ? iters : (int)((size_t)iters * 8 * MIB / bytes);
        if (k < 3) k = 3;
        bool ok[3];
        double t[3];
        t[0] = time_allreduce(c, IMPL_PARROTS, buf, n, k, &ok[0]);
        t[1] = time_allreduce(c, IMPL_MPI, buf, n, k, &ok[1]);
        t[2] = time_allreduce(c, IMPL_IMPI, buf, n, k, &ok[2]);
        if (rank == 0) {
            char b[32], s[3][32];
            fmt_bytes(bytes, b, sizeof b);
            for (int j = 0; j < 3; j++) fmt_time(t[j], s[j], sizeof s[j]);
            double a0 = (double)bytes / t[0] / 1e9, a1 = (double)bytes / t[1] / 1e9;
            if (md)
                printf("| %s | %s | %.3f | %.3f | %s | %s | %.3f | %.3f | %s | %s | %s |\n", b, s[0], a0, a0 * bus,
                       ok[0] ? "yes" : "NO", s[1], a1, a1 * bus, ok[1] ? "yes" : "NO", s[2],
                       ok[2] ? "yes" : "NO");
            else
                printf("%10s | %10s %9.3f %9.3f %4s | %10s %9.3f %9.3f %4s | %10s %4s\n", b, s[0], a0, a0 * bus,
                       ok[0] ? "ok" : "BAD", s[1], a1, a1 * bus, ok[1] ? "ok" : "BAD", s[2], ok[2] ? "ok" : "BAD");
            fflush(stdout);
        }
        if (bytes == max_bytes) break;
        bytes = bytes * (size_t)step > max_bytes ? max_bytes : bytes * (size_t)step;
    }
    free(buf);
    if (overlap_bytes >= sizeof(float)) overlap(c, overlap_bytes, iters < 5 ? iters : 5, md);
    prt_comm_destroy(c);
    prt_context_destroy(ctx);
    return 0;
}

#else

int main(void) {
    fprintf(stderr, "comm: this build has no MPI support (install libopenmpi-dev, configure with -DPARROTS_MPI=ON)\n");
    return 1;
}

#endif

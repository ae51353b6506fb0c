/* Timelines (runtime/trace.h): recording, dropping when full, concurrent
 * recording, the JSON written (escaping hostile names, the time origin, the
 * atomic write and its errors), read back with the reader of `parrots
 * timeline-summary` (frontends/cli/timeline_read.c, compiled into this test);
 * and, under `mpirun -np 2`/`-np 4`, the gather of every rank's events into one
 * file by rank 0. Run alone the MPI test is a job of one rank. */
// labels: unit mpi

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/comm_api.h"
#include "runtime/trace.h"
#include "tests/mpi_util.h"
#include "tests/test_util.h"

/* The reader lives with the command line, which is not part of the library. */
#include "frontends/cli/timeline_read.c"

#if PARROTS_HAVE_MPI
#include <mpi.h>
#endif

/* A fresh directory for one test's files (every rank of an MPI run has its own). */
static void temp_dir(char *buf, size_t cap) {
    snprintf(buf, cap, "/tmp/prt_trace_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(buf));
}

static void remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (rmdir(p) != 0) unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    ck_assert_uint_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

/* What the reader saw: every complete event, copied. */
typedef struct seen {
    int n;
    char names[32][64], cats[32][16];
    double ts[32], dur[32];
    int64_t pid[32], tid[32], bucket[32];
} seen;

static prt_status see(void *user, const prt_tl_event *e) {
    seen *s = user;
    if (s->n == 32) return PRT_OK;
    snprintf(s->names[s->n], sizeof s->names[0], "%s", e->name);
    snprintf(s->cats[s->n], sizeof s->cats[0], "%s", e->cat);
    s->ts[s->n] = e->ts_us, s->dur[s->n] = e->dur_us;
    s->pid[s->n] = e->pid, s->tid[s->n] = e->tid, s->bucket[s->n] = e->bucket;
    s->n++;
    return PRT_OK;
}

static int find(const seen *s, const char *name) {
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->names[i], name)) return i;
    ck_abort_msg("event '%s' not in the file", name);
    return -1;
}

/* ---- recording ---------------------------------------------------------- */

START_TEST(records_in_order) {
    prt_context *ctx = tu_context();
    prt_trace *t;
    ck_assert_int_eq(prt_trace_create(ctx, 3, 16, &t), PRT_OK);
    prt_trace_span(t, PRT_TRACE_compute, "b3/conv", "conv", 1.0, 1.5, -1);
    prt_trace_span(t, PRT_TRACE_comm, "allreduce", NULL, 1.2, 1.4, 2);
    prt_trace_span(t, PRT_TRACE_wait, "wait", NULL, 2.0, 1.0, 7); /* t1 < t0: zero length */
    prt_trace_span(NULL, PRT_TRACE_compute, "ignored", NULL, 0, 1, -1);
    size_t n;
    const prt_trace_event *ev = prt_trace_events(t, &n);
    ck_assert_uint_eq(n, 3);
    ck_assert_uint_eq(prt_trace_count(t), 3);
    ck_assert_uint_eq(prt_trace_dropped(t), 0);
    ck_assert_int_eq(ev[0].cat, PRT_TRACE_compute);
    ck_assert_str_eq(ev[0].name, "b3/conv");
    ck_assert_str_eq(ev[0].detail, "conv");
    ck_assert(ev[0].t0 == 1.0 && ev[0].t1 == 1.5);
    ck_assert_int_eq(ev[0].arg, -1);
    ck_assert_int_eq(ev[1].cat, PRT_TRACE_comm);
    ck_assert_ptr_null(ev[1].detail);
    ck_assert_int_eq(ev[1].arg, 2);
    ck_assert(ev[2].t0 == 2.0 && ev[2].t1 == 2.0);
    ck_assert_str_eq(prt_trace_cat_name(PRT_TRACE_compute), "compute");
    ck_assert_str_eq(prt_trace_cat_name(PRT_TRACE_wait), "wait");
    ck_assert_str_eq(prt_trace_cat_name(PRT_TRACE_step), "step");
    ck_assert_str_eq(prt_trace_cat_name(PRT_TRACE_comm), "comm");
    ck_assert_str_eq(prt_trace_cat_name(PRT_TRACE_CAT_COUNT), "unknown");
    prt_trace_destroy(t);
    prt_trace_destroy(NULL);
    ck_assert_int_eq(prt_trace_create(ctx, -1, 16, &t), PRT_ERR_INVALID);
    ck_assert_str_eq(prt_last_error(ctx), "trace: rank -1 is negative");
    ck_assert_ptr_null(t);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(drops_when_full) {
    prt_context *ctx = tu_context();
    prt_trace *t;
    ck_assert_int_eq(prt_trace_create(ctx, 0, 3, &t), PRT_OK);
    for (int i = 0; i < 5; i++) prt_trace_span(t, PRT_TRACE_compute, "x", NULL, i, i + 0.5, -1);
    ck_assert_uint_eq(prt_trace_count(t), 3);
    ck_assert_uint_eq(prt_trace_dropped(t), 2);
    size_t n;
    const prt_trace_event *ev = prt_trace_events(t, &n);
    ck_assert(ev[2].t0 == 2.0); /* the first ones are kept */
    prt_trace_destroy(t);

    /* spans that cannot be placed in time count as dropped too */
    ck_assert_int_eq(prt_trace_create(ctx, 0, 0, &t), PRT_OK); /* 0: the default capacity */
    prt_trace_span(t, PRT_TRACE_compute, "nan", NULL, 0.0 / 0.0, 1, -1);
    prt_trace_span(t, PRT_TRACE_compute, "inf", NULL, 0, 1.0 / 0.0, -1);
    ck_assert_uint_eq(prt_trace_count(t), 0);
    ck_assert_uint_eq(prt_trace_dropped(t), 2);
    prt_trace_destroy(t);
    prt_context_destroy(ctx);
}
END_TEST

typedef struct worker {
    prt_trace *t;
    prt_trace_cat cat;
} worker;

static void *record_many(void *arg) {
    worker *w = arg;
    for (int i = 0; i < 20000; i++) prt_trace_span(w->t, w->cat, "w", NULL, i, i + 1, i);
    return NULL;
}

START_TEST(concurrent_recording) {
    prt_context *ctx = tu_context();
    prt_trace *t;
    ck_assert_int_eq(prt_trace_create(ctx, 0, 30000, &t), PRT_OK);
    worker a = {t, PRT_TRACE_compute}, b = {t, PRT_TRACE_comm};
    pthread_t ta, tb;
    ck_assert_int_eq(pthread_create(&ta, NULL, record_many, &a), 0);
    ck_assert_int_eq(pthread_create(&tb, NULL, record_many, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    ck_assert_uint_eq(prt_trace_count(t), 30000);
    ck_assert_uint_eq(prt_trace_dropped(t), 10000);
    /* every kept event is whole: its times and bucket agree */
    size_t n;
    const prt_trace_event *ev = prt_trace_events(t, &n);
    for (size_t i = 0; i < n; i++)
        if (ev[i].t1 != ev[i].t0 + 1 || ev[i].arg != (int64_t)ev[i].t0) ck_abort_msg("event %zu torn", i);
    prt_trace_destroy(t);
    prt_context_destroy(ctx);
}
END_TEST

/* ---- writing ------------------------------------------------------------ */

START_TEST(write_and_read_back) {
    prt_context *ctx = tu_context();
    char dir[64], path[128];
    temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/trace.json", dir);
    prt_trace *t;
    ck_assert_int_eq(prt_trace_create(ctx, 0, 16, &t), PRT_OK);
    /* times in prt_now() seconds far from 0: written relative to the first event */
    const double b = 12345.0;
    prt_trace_span(t, PRT_TRACE_step, "step", NULL, b + 0.000, b + 0.010, -1);
    prt_trace_span(t, PRT_TRACE_compute, "fc1", "dense", b + 0.000, b + 0.004, -1);
    prt_trace_span(t, PRT_TRACE_comm, "allreduce", NULL, b + 0.004, b + 0.008, 0);
    prt_trace_span(t, PRT_TRACE_compute, "fc2", "dense", b + 0.004, b + 0.007, -1);
    prt_trace_span(t, PRT_TRACE_wait, "ALLREDUCE_WAIT", NULL, b + 0.007, b + 0.008, 0);
    prt_trace_span(t, PRT_TRACE_compute, "sgd", NULL, b + 0.008, b + 0.010, -1);
    ck_assert_int_eq(prt_trace_write(t, NULL, path), PRT_OK);
    ck_assert_int_eq(count_entries(dir), 1); /* no temporary file left */

    char *text = slurp(path);
    ck_assert_msg(!strncmp(text, "{\"traceEvents\":[\n", 17), "starts: %.40s", text);
    ck_assert_ptr_nonnull(strstr(text, "\"displayTimeUnit\":\"ms\",\"otherData\":{\"parrots_trace\":1,\"ranks\":1,"
                                       "\"dropped\":0}}\n"));
    ck_assert_ptr_nonnull(strstr(text, "{\"name\":\"fc2\",\"cat\":\"compute\",\"ph\":\"X\",\"ts\":4000.000,"
                                       "\"dur\":3000.000,\"pid\":0,\"tid\":0,\"args\":{\"op\":\"dense\"}}"));
    ck_assert_ptr_nonnull(strstr(text, "{\"name\":\"allreduce\",\"cat\":\"comm\",\"ph\":\"X\",\"ts\":4000.000,"
                                       "\"dur\":4000.000,\"pid\":0,\"tid\":1,\"args\":{\"bucket\":0}}"));
    ck_assert_ptr_nonnull(strstr(text, "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":0,\"tid\":0,"
                                       "\"args\":{\"name\":\"rank 0\"}}"));
    ck_assert_ptr_nonnull(strstr(text, "\"tid\":1,\"args\":{\"name\":\"communication\"}}"));
    ck_assert_ptr_nonnull(strstr(text, "\"tid\":0,\"args\":{\"name\":\"compute\"}}"));
    free(text);

    seen s = {0};
    prt_tl_summary sum;
    ck_assert_int_eq(prt_tl_read(ctx, path, -1, see, &s, &sum), PRT_OK);
    ck_assert_int_eq(s.n, 6);
    ck_assert_int_eq(sum.n_ranks, 1);
    ck_assert_int_eq(sum.dropped, 0);
    const prt_tl_rank *k = &sum.ranks[0];
    ck_assert_int_eq(k->pid, 0);
    ck_assert_double_eq_tol(k->compute_s, 0.009, 1e-9);
    ck_assert_double_eq_tol(k->comm_s, 0.004, 1e-9);
    ck_assert_double_eq_tol(k->exposed_comm_s, 0.001, 1e-9);
    ck_assert_double_eq_tol(prt_tl_overlap(k), 0.75, 1e-6);
    ck_assert_int_eq(k->steps, 1);
    ck_assert_double_eq_tol(prt_tl_step_s(k), 0.010, 1e-9);
    int w = find(&s, "ALLREDUCE_WAIT");
    ck_assert_str_eq(s.cats[w], "wait");
    ck_assert_double_eq_tol(s.ts[w], 7000.0, 1e-3);
    ck_assert_int_eq(s.bucket[w], 0);
    ck_assert_double_eq_tol(s.ts[find(&s, "step")], 0.0, 1e-3);
    prt_tl_summary_free(ctx, &sum);
    prt_trace_destroy(t);

    /* the same through a one-rank communicator */
    prt_comm *c;
    ck_assert_int_eq(prt_comm_create_local(ctx, NULL, &c), PRT_OK);
    ck_assert_int_eq(prt_trace_create(ctx, 0, 16, &t), PRT_OK);
    prt_trace_span(t, PRT_TRACE_compute, "only", NULL, 5.0, 5.25, -1);
    ck_assert_int_eq(prt_trace_write(t, c, path), PRT_OK);
    s = (seen){0};
    ck_assert_int_eq(prt_tl_read(ctx, path, -1, see, &s, &sum), PRT_OK);
    ck_assert_int_eq(s.n, 1);
    ck_assert_str_eq(s.names[0], "only");
    ck_assert_double_eq_tol(s.dur[0], 250000.0, 1e-3);
    prt_tl_summary_free(ctx, &sum);
    prt_trace_destroy(t);
    prt_comm_destroy(c);
    remove_dir(dir);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(hostile_names) {
    prt_context *ctx = tu_context();
    char dir[64], path[128];
    temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/trace.json", dir);
    prt_trace *t;
    ck_assert_int_eq(prt_trace_create(ctx, 0, 16, &t), PRT_OK);
    prt_trace_span(t, PRT_TRACE_compute, "say \"hi\"", "a\\b", 0, 1e-3, -1);
    prt_trace_span(t, PRT_TRACE_compute, "line\nbreak\ttab\x01\x1f", NULL, 0, 1e-3, -1);
    prt_trace_span(t, PRT_TRACE_compute, "caf\xc3\xa9 \xe2\x82\xac", NULL, 0, 1e-3, -1);
    prt_trace_span(t, PRT_TRACE_compute, "bad\xff\xc3(", NULL, 0, 1e-3, -1);        /* not UTF-8 */
    prt_trace_span(t, PRT_TRACE_compute, "surrogate\xed\xa0\x80", NULL, 0, 1e-3, -1); /* encoded U+D800 */
    prt_trace_span(t, PRT_TRACE_compute, "</script>{\"]}", NULL, 0, 1e-3, -1);
    prt_trace_span(t, PRT_TRACE_compute, NULL, NULL, 0, 1e-3, -1);
    ck_assert_int_eq(prt_trace_write(t, NULL, path), PRT_OK);
    char *text = slurp(path);
    ck_assert_ptr_nonnull(strstr(text, "\"name\":\"say \\\"hi\\\"\""));
    ck_assert_ptr_nonnull(strstr(text, "\"op\":\"a\\\\b\""));
    ck_assert_ptr_nonnull(strstr(text, "\"name\":\"line\\nbreak\\ttab\\u0001\\u001f\""));
    ck_assert_ptr_nonnull(strstr(text, "\"name\":\"caf\xc3\xa9 \xe2\x82\xac\"")); /* UTF-8 kept as is */
    ck_assert_ptr_nonnull(strstr(text, "\"name\":\"bad\\ufffd\\ufffd(\""));
    free(text);

    seen s = {0};
    prt_tl_summary sum;
    ck_assert_msg(prt_tl_read(ctx, path, -1, see, &s, &sum) == PRT_OK, "%s", prt_last_error(ctx));
    ck_assert_int_eq(s.n, 7);
    ck_assert_str_eq(s.names[0], "say \"hi\"");
    ck_assert_str_eq(s.names[1], "line\nbreak\ttab\x01\x1f");
    ck_assert_str_eq(s.names[2], "caf\xc3\xa9 \xe2\x82\xac");
    ck_assert_str_eq(s.names[3], "bad\xef\xbf\xbd\xef\xbf\xbd(");
    ck_assert_str_eq(s.names[4], "surrogate\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    ck_assert_str_eq(s.names[5], "</script>{\"]}");
    ck_assert_str_eq(s.names[6], "");
    ck_assert_double_eq_tol(sum.ranks[0].compute_s, 0.007, 1e-9);
    prt_tl_summary_free(ctx, &sum);
    prt_trace_destroy(t);
    remove_dir(dir);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(write_errors) {
    prt_context *ctx = tu_context();
    char dir[64], path[160], want[512];
    temp_dir(dir, sizeof dir);
    prt_trace *t;
    ck_assert_int_eq(prt_trace_create(ctx, 0, 4, &t), PRT_OK);
    prt_trace_span(t, PRT_TRACE_compute, "x", NULL, 0, 1, -1);

    /* a folder that does not exist */
    snprintf(path, sizeof path, "%s/missing/trace.json", dir);
    ck_assert_int_eq(prt_trace_write(t, NULL, path), PRT_ERR_IO);
    snprintf(want, sizeof want, "%s: cannot create %s.tmp.%ld: No such file or directory", path, path,
             (long)getpid());
    ck_assert_str_eq(prt_last_error(ctx), want);

    /* the final name is a folder: the rename fails and nothing is left behind */
    snprintf(path, sizeof path, "%s/taken", dir);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    ck_assert_int_eq(prt_trace_write(t, NULL, path), PRT_ERR_IO);
    snprintf(want, sizeof want, "%s: cannot rename %s.tmp.%ld into place: Is a directory", path, path,
             (long)getpid());
    ck_assert_str_eq(prt_last_error(ctx), want);
    ck_assert_int_eq(count_entries(dir), 1);

    /* an existing file is replaced whole */
    snprintf(path, sizeof path, "%s/old.json", dir);
    FILE *f = fopen(path, "w");
    fputs("old contents", f);
    fclose(f);
    ck_assert_int_eq(prt_trace_write(t, NULL, path), PRT_OK);
    char *text = slurp(path);
    ck_assert(!strncmp(text, "{\"traceEvents\"", 14));
    free(text);
    ck_assert_int_eq(count_entries(dir), 2);
    prt_trace_destroy(t);
    remove_dir(dir);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(dropped_in_file) {
    prt_context *ctx = tu_context();
    char dir[64], path[128];
    temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/trace.json", dir);
    prt_trace *t;
    ck_assert_int_eq(prt_trace_create(ctx, 0, 2, &t), PRT_OK);
    for (int i = 0; i < 7; i++) prt_trace_span(t, PRT_TRACE_compute, "x", NULL, i, i + 1, -1);
    ck_assert_int_eq(prt_trace_write(t, NULL, path), PRT_OK);
    prt_tl_summary sum;
    ck_assert_int_eq(prt_tl_read(ctx, path, -1, NULL, NULL, &sum), PRT_OK);
    ck_assert_int_eq(sum.dropped, 5);
    ck_assert_int_eq(sum.total.events, 2);
    ck_assert_double_eq_tol(sum.total.compute_s, 2.0, 1e-9);
    prt_tl_summary_free(ctx, &sum);
    /* an empty trace is still a valid file */
    prt_trace_destroy(t);
    ck_assert_int_eq(prt_trace_create(ctx, 0, 2, &t), PRT_OK);
    ck_assert_int_eq(prt_trace_write(t, NULL, path), PRT_OK);
    ck_assert_int_eq(prt_tl_read(ctx, path, -1, NULL, NULL, &sum), PRT_OK);
    ck_assert_int_eq(sum.n_ranks, 0);
    ck_assert_int_eq(sum.dropped, 0);
    prt_tl_summary_free(ctx, &sum);
    prt_trace_destroy(t);
    remove_dir(dir);
    prt_context_destroy(ctx);
}
END_TEST

/* ---- every rank's events in one file (mpirun) ---------------------------- */

#if PARROTS_HAVE_MPI
START_TEST(gathered_by_rank0) {
    prt_context *ctx = tu_context();
    prt_comm *c;
    prt_comm_options o = {.struct_size = sizeof o, .timeout_s = 60};
    if (prt_comm_create_mpi(ctx, &o, &c) != PRT_OK) ck_abort_msg("create: %s", prt_last_error(ctx));
    int rank = prt_comm_rank(c), size = prt_comm_size(c);
    char dir[64] = "", path[128];
    if (rank == 0) temp_dir(dir, sizeof dir);
    MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD);
    snprintf(path, sizeof path, "%s/trace.json", dir);

    static char names[8][32];
    prt_trace *t;
    ck_assert_int_eq(prt_trace_create(ctx, rank, 4, &t), PRT_OK);
    /* rank r starts r ms after rank 0 (on one machine the clocks agree), and
     * drops r events */
    double t0 = prt_now();
    MPI_Bcast(&t0, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    snprintf(names[rank % 8], sizeof names[0], "work of %d", rank);
    prt_trace_span(t, PRT_TRACE_compute, names[rank % 8], NULL, t0 + 0.001 * rank, t0 + 0.001 * rank + 0.0005, -1);
    for (int i = 0; i < 3 + rank; i++) prt_trace_span(t, PRT_TRACE_comm, "allreduce", NULL, t0 + 1, t0 + 1.25, i);
    prt_comm_set_trace(c, t); /* the gather's own collectives record into the trace: not in the file */
    prt_status st = prt_trace_write(t, c, path);
    prt_comm_set_trace(c, NULL);
    ck_assert_msg(st == PRT_OK, "rank %d: %s", rank, prt_last_error(ctx));
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
        ck_assert_int_eq(count_entries(dir), 1);
        seen s = {0};
        prt_tl_summary sum;
        ck_assert_int_eq(prt_tl_read(ctx, path, -1, see, &s, &sum), PRT_OK);
        ck_assert_int_eq(sum.n_ranks, size);
        ck_assert_int_eq(s.n, 4 * size);
        int64_t dropped = 0;
        for (int r = 0; r < size; r++) {
            ck_assert_int_eq(sum.ranks[r].pid, r);
            ck_assert_double_eq_tol(sum.ranks[r].compute_s, 0.0005, 1e-9);
            ck_assert_double_eq_tol(sum.ranks[r].comm_s, 0.75, 1e-9);
            char name[32];
            snprintf(name, sizeof name, "work of %d", r);
            int i = find(&s, name);
            ck_assert_int_eq(s.pid[i], r);
            /* within the two clock reads' jitter of 1 ms per rank */
            ck_assert_double_eq_tol(s.ts[i], 1000.0 * r, 50.0);
            dropped += r;
        }
        ck_assert_int_eq(sum.dropped, dropped);
        prt_tl_summary_free(ctx, &sum);
        remove_dir(dir);
    }
    prt_trace_destroy(t);
    prt_comm_destroy(c);
    prt_context_destroy(ctx);
}
END_TEST
#endif

static Suite *suite(void) {
    Suite *s = suite_create("trace");
    TCase *tc = tcase_create("trace");
    tcase_add_test(tc, records_in_order);
    tcase_add_test(tc, drops_when_full);
    tcase_add_test(tc, concurrent_recording);
    tcase_add_test(tc, write_and_read_back);
    tcase_add_test(tc, hostile_names);
    tcase_add_test(tc, write_errors);
    tcase_add_test(tc, dropped_in_file);
#if PARROTS_HAVE_MPI
    tcase_add_test(tc, gathered_by_rank0);
#endif
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_mpi(suite()); }

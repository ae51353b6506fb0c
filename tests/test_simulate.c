// labels: unit
/* The scaling model (scheduler/simulate_api.h): the alpha-beta formulas at
 * hand-computed values, the replay of a hand-built two-bucket program, profile
 * parse errors and round trip, and the non-negative fit. */
#include "tests/test_util.h"

#include "scheduler/simulate_api.h"

#include <math.h>
#include <string.h>

#define NEAR(a, b) ck_assert_double_eq_tol((a), (double)(b), 1e-12 + 1e-9 * fabs((double)(b)))

/* ---- the network model ---------------------------------------------------- */

START_TEST(ring_formula) {
    /* 2(n-1)a + 2(n-1)/n S/B: n=4, a=1 us, B=1 GB/s, S=1 MB: 6 us + 1.5 ms */
    NEAR(prt_sim_ring_time(4, 1e-6, 1e9, 1e6), 1.506e-3);
    NEAR(prt_sim_ring_time(2, 0.1, 4000, 4000), 1.2);
    NEAR(prt_sim_ring_time(1, 1.0, 1.0, 1e9), 0.0);

    prt_net_spec net = {.gpus_per_node = 2, .intra_bw = 10e9, .intra_lat = 1e-6, .inter_bw = 1e9, .inter_lat = 5e-6,
                        .nics_per_node = 2, .topology = PRT_SIM_TOPO_ring};
    /* inside a node: the intra link */
    NEAR(prt_sim_allreduce_time(&net, 2, 4e6), 2e-6 + 4e6 / 10e9);
    NEAR(prt_sim_allreduce_time(&net, 1, 4e6), 0.0);
    /* flat ring over 2 nodes: bandwidth min(10 GB/s, 2 x 1 GB/s), every step the inter latency:
     * 6 x 5 us + 1.5 x 4 MB / 2 GB/s */
    NEAR(prt_sim_allreduce_time(&net, 4, 4e6), 30e-6 + 3e-3);
    /* hierarchical: ring of 2 in the node on the whole 4 MB (2 us + 0.4 ms), then a ring of
     * 2 nodes on the 2 MB slice at 2 GB/s / 2 GPUs (10 us + 2 ms) */
    net.topology = PRT_SIM_TOPO_hier;
    NEAR(prt_sim_allreduce_time(&net, 4, 4e6), 2e-6 + 0.4e-3 + 10e-6 + 2e-3);
}
END_TEST

START_TEST(slowdown) {
    prt_net_spec net = {.gpus_per_node = 1024, .cores_per_node = 2};
    NEAR(prt_sim_slowdown(&net, 1, 2), 1.0);
    NEAR(prt_sim_slowdown(&net, 4, 2), 4.0);
    NEAR(prt_sim_slowdown(&net, 2, 1), 1.0);
    NEAR(prt_sim_slowdown(&net, 8, 1), 4.0);
    net.threads_per_rank = 1;
    NEAR(prt_sim_slowdown(&net, 4, 2), 2.0);
    net.cores_per_node = 0; /* GPUs: no sharing */
    NEAR(prt_sim_slowdown(&net, 64, 2), 1.0);
}
END_TEST

START_TEST(presets_and_specs) {
    prt_context *ctx = tu_context();
    prt_net_spec n;
    ck_assert_int_eq(prt_net_spec_parse(ctx, "h200-ib", &n), PRT_OK);
    ck_assert_int_eq(n.gpus_per_node, 8);
    ck_assert_int_eq(n.nics_per_node, 4);
    NEAR(n.inter_bw, 20e9);
    ck_assert_int_eq(prt_net_spec_parse(ctx, "preset=cpu-shm,cores_per_node=4,topology=hier", &n), PRT_OK);
    ck_assert_int_eq(n.cores_per_node, 4);
    NEAR(n.intra_lat, 11.1e-6);
    ck_assert_int_eq(n.topology, PRT_SIM_TOPO_hier);
    ck_assert_int_eq(prt_net_spec_parse(ctx, "nvlink", &n), PRT_ERR_USAGE);
    ck_assert_str_eq(prt_last_error(ctx), "--network 'nvlink': not a preset (h200-ib, cpu-shm) nor a key=value list");
    ck_assert_int_eq(prt_net_spec_parse(ctx, "gpus_per_node=0", &n), PRT_ERR_USAGE);
    ck_assert_str_eq(prt_last_error(ctx),
                     "--network 'gpus_per_node=0': gpus_per_node '0': expected a whole number from 1 to 1048576");
    ck_assert_int_eq(prt_net_spec_parse(ctx, "intra_bw=-3", &n), PRT_ERR_USAGE);
    ck_assert_str_eq(prt_last_error(ctx), "--network 'intra_bw=-3': intra_bw '-3': expected a number above 0");
    ck_assert_int_eq(prt_net_spec_parse(ctx, "gpus=8", &n), PRT_ERR_USAGE);
    ck_assert_str_eq(prt_last_error(ctx),
                     "--network 'gpus=8': unknown key 'gpus' (expected preset, gpus_per_node, intra_bw, intra_lat, "
                     "inter_bw, inter_lat, nics_per_node, cores_per_node, threads_per_rank or topology)");
    prt_context_destroy(ctx);
}
END_TEST

/* ---- the replay ---------------------------------------------------------------
 *
 *   pc0 CALL f   (x -> h)           1.0 s
 *   pc1 CALL g1  (h -> grad1)       2.0 s   bucket 0: grad1, 1000 f32 = 4000 B
 *   pc2 ALLREDUCE_START 0
 *   pc3 CALL g0  (h -> grad0)       3.0 s   bucket 1: grad0, 2000 f32 = 8000 B
 *   pc4 ALLREDUCE_START 1
 *   pc5 ALLREDUCE_WAIT 0
 *   pc6 CALL sgd u0 (p1, grad1, m1) 0.5 s
 *   pc7 ALLREDUCE_WAIT 1
 *   pc8 CALL sgd u1 (p0, grad0, m0) 0.5 s
 *   pc9 HALT
 */
static prt_program *two_buckets(prt_context *ctx) {
    prt_program *p;
    ck_assert_int_eq(prt_program_new(ctx, "two", 1, &p), PRT_OK);
    prt_shape s4 = {.ndim = 1, .d = {4}}, s1k = {.ndim = 1, .d = {1000}}, s2k = {.ndim = 1, .d = {2000}};
    int x, h, g1, g0, p1, p0, m1, m0, relu, sgd, k;
    ck_assert_int_eq(prt_program_add_reg(ctx, p, "x", PRT_REG_INPUT, PRT_F32, &s4, PRT_INIT_ZEROS, &x), PRT_OK);
    ck_assert_int_eq(prt_program_add_reg(ctx, p, "h", PRT_REG_ACT, PRT_F32, &s4, PRT_INIT_ZEROS, &h), PRT_OK);
    ck_assert_int_eq(prt_program_add_reg(ctx, p, "p1", PRT_REG_PARAM, PRT_F32, &s1k, PRT_INIT_ZEROS, &p1), PRT_OK);
    ck_assert_int_eq(prt_program_add_reg(ctx, p, "p0", PRT_REG_PARAM, PRT_F32, &s2k, PRT_INIT_ZEROS, &p0), PRT_OK);
    ck_assert_int_eq(prt_program_add_reg(ctx, p, "grad1", PRT_REG_ACT, PRT_F32, &s1k, PRT_INIT_ZEROS, &g1), PRT_OK);
    ck_assert_int_eq(prt_program_add_reg(ctx, p, "grad0", PRT_REG_ACT, PRT_F32, &s2k, PRT_INIT_ZEROS, &g0), PRT_OK);
    ck_assert_int_eq(prt_program_add_reg(ctx, p, "m1", PRT_REG_STATE, PRT_F32, &s1k, PRT_INIT_ZEROS, &m1), PRT_OK);
    ck_assert_int_eq(prt_program_add_reg(ctx, p, "m0", PRT_REG_STATE, PRT_F32, &s2k, PRT_INIT_ZEROS, &m0), PRT_OK);
    ck_assert_int_eq(prt_program_add_op(ctx, p, "relu", &relu), PRT_OK);
    ck_assert_int_eq(prt_program_add_op(ctx, p, "sgd", &sgd), PRT_OK);
    ck_assert_int_eq(prt_program_resolve(ctx, p), PRT_OK);
    ck_assert_int_eq(prt_program_add_call(ctx, p, relu, "f", &x, 1, 1, &h, 1, NULL, 0, &k), PRT_OK);
    ck_assert_int_eq(prt_program_emit(ctx, p, prt_vm_ins_call(k), NULL), PRT_OK);
    ck_assert_int_eq(prt_program_add_call(ctx, p, relu, "g1", &h, 1, 1, &g1, 1, NULL, 0, &k), PRT_OK);
    ck_assert_int_eq(prt_program_emit(ctx, p, prt_vm_ins_call(k), NULL), PRT_OK);
    ck_assert_int_eq(prt_program_emit(ctx, p, prt_vm_ins_allreduce_start(0), NULL), PRT_OK);
    ck_assert_int_eq(prt_program_add_call(ctx, p, relu, "g0", &h, 1, 1, &g0, 1, NULL, 0, &k), PRT_OK);
    ck_assert_int_eq(prt_program_emit(ctx, p, prt_vm_ins_call(k), NULL), PRT_OK);
    ck_assert_int_eq(prt_program_emit(ctx, p, prt_vm_ins_allreduce_start(1), NULL), PRT_OK);
    ck_assert_int_eq(prt_program_emit(ctx, p, prt_vm_ins_allreduce_wait(0), NULL), PRT_OK);
    int u0[3] = {p1, g1, m1}, u1[3] = {p0, g0, m0};
    ck_assert_int_eq(prt_program_add_call(ctx, p, sgd, "u0", u0, 3, 3, NULL, 0, NULL, 0, &k), PRT_OK);
    ck_assert_int_eq(prt_program_emit(ctx, p, prt_vm_ins_call(k), NULL), PRT_OK);
    ck_assert_int_eq(prt_program_emit(ctx, p, prt_vm_ins_allreduce_wait(1), NULL), PRT_OK);
    ck_assert_int_eq(prt_program_add_call(ctx, p, sgd, "u1", u1, 3, 3, NULL, 0, NULL, 0, &k), PRT_OK);
    ck_assert_int_eq(prt_program_emit(ctx, p, prt_vm_ins_call(k), NULL), PRT_OK);
    ck_assert_int_eq(prt_program_emit(ctx, p, prt_vm_ins_n(PRT_OP_HALT), NULL), PRT_OK);
    return p;
}

static const double two_times[10] = {1.0, 2.0, 0, 3.0, 0, 0, 0.5, 0, 0.5, 0};

/* ranks 2 inside one node: t = 2 alpha + S / B */
static prt_net_spec one_node(double alpha, double bw) {
    return (prt_net_spec){.gpus_per_node = 8, .intra_bw = bw, .intra_lat = alpha, .inter_bw = bw,
                          .inter_lat = alpha, .nics_per_node = 1};
}

START_TEST(replay_two_buckets) {
    prt_context *ctx = tu_context();
    prt_program *p = two_buckets(ctx);
    prt_sim_bucket *b;
    int nb;
    ck_assert_int_eq(prt_sim_buckets(ctx, p, 0, &b, &nb), PRT_OK);
    ck_assert_int_eq(nb, 2);
    ck_assert_int_eq(b[0].start_after, 2);
    ck_assert_int_eq(b[0].wait_before, 5);
    NEAR(b[0].bytes, 4000);
    ck_assert_int_eq(b[1].start_after, 4);
    ck_assert_int_eq(b[1].wait_before, 7);
    NEAR(b[1].bytes, 8000);
    prt_sim_result r;

    /* 1 rank: nothing to reduce, the step is the compute */
    prt_net_spec net = one_node(0.01, 40000);
    ck_assert_int_eq(prt_sim_run(ctx, p, two_times, b, nb, &net, 1, 1, &r), PRT_OK);
    NEAR(r.step_s, 7.0);
    NEAR(r.comm_s, 0.0);
    NEAR(r.overlap_fraction, 1.0);

    /* full overlap: bucket 0 takes 0.02 + 0.1 s from 3.0, bucket 1 0.02 + 0.2 s from 6.0;
     * both are done before their waits (at 6.0 and 6.5) */
    ck_assert_int_eq(prt_sim_run(ctx, p, two_times, b, nb, &net, 1, 2, &r), PRT_OK);
    NEAR(r.step_s, 7.0);
    NEAR(r.compute_s, 7.0);
    NEAR(r.comm_s, 0.34);
    NEAR(r.exposed_comm_s, 0.0);
    NEAR(r.overlap_fraction, 1.0);

    /* the last bucket exposed: bucket 0 0.2 + 1.0 s (3.0 to 4.2), bucket 1 0.2 + 2.0 s (6.0
     * to 8.2); the wait at 6.5 stalls 1.7 s, the last update ends at 8.7 */
    net = one_node(0.1, 4000);
    ck_assert_int_eq(prt_sim_run(ctx, p, two_times, b, nb, &net, 1, 2, &r), PRT_OK);
    NEAR(r.step_s, 8.7);
    NEAR(r.comm_s, 3.4);
    NEAR(r.exposed_comm_s, 1.7);
    NEAR(r.overlap_fraction, 0.5);

    /* FIFO: bucket 0 takes 4 s (3.0 to 7.0), so bucket 1 (8 s) starts at 7.0, not 6.0, and
     * ends at 15.0; waits stall 1.0 s (6.0 to 7.0) and 7.5 s (7.5 to 15.0) */
    net = one_node(0.0, 1000);
    ck_assert_int_eq(prt_sim_run(ctx, p, two_times, b, nb, &net, 1, 2, &r), PRT_OK);
    NEAR(r.step_s, 15.5);
    NEAR(r.comm_s, 12.0);
    NEAR(r.exposed_comm_s, 8.5);

    /* shared cores: 2 ranks of 2 threads on 2 cores run compute at half speed */
    net = one_node(0.01, 40000);
    net.cores_per_node = 2;
    ck_assert_int_eq(prt_sim_run(ctx, p, two_times, b, nb, &net, 2, 2, &r), PRT_OK);
    NEAR(r.compute_s, 14.0);
    NEAR(r.step_s, 14.0);
    prt_free(ctx, b, 0);

    /* buckets derived as the scheduler makes them: 4000 B closes the first bucket at its
     * first gradient (grad1, last written at pc1, first read at pc6) */
    ck_assert_int_eq(prt_sim_buckets(ctx, p, 4000, &b, &nb), PRT_OK);
    ck_assert_int_eq(nb, 2);
    ck_assert_int_eq(b[0].start_after, 1);
    ck_assert_int_eq(b[0].wait_before, 6);
    NEAR(b[0].bytes, 4000);
    ck_assert_int_eq(b[1].start_after, 3);
    ck_assert_int_eq(b[1].wait_before, 8);
    NEAR(b[1].bytes, 8000);
    prt_free(ctx, b, 0);
    /* 5000 B: 4000 does not close it, both gradients in one bucket */
    ck_assert_int_eq(prt_sim_buckets(ctx, p, 5000, &b, &nb), PRT_OK);
    ck_assert_int_eq(nb, 1);
    ck_assert_int_eq(b[0].start_after, 3);
    ck_assert_int_eq(b[0].wait_before, 6);
    NEAR(b[0].bytes, 12000);
    prt_free(ctx, b, 0);
    prt_program_destroy(ctx, p);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(replay_refuses_loops) {
    prt_context *ctx = tu_context();
    prt_program *p;
    int r, k;
    ck_assert_int_eq(prt_program_new(ctx, "loop", 1, &p), PRT_OK);
    ck_assert_int_eq(prt_program_add_counter(ctx, p, "i", &r), PRT_OK);
    ck_assert_int_eq(prt_program_add_int(ctx, p, 3, &k), PRT_OK);
    ck_assert_int_eq(prt_program_emit(ctx, p, prt_vm_ins_seti(r, k), NULL), PRT_OK);
    ck_assert_int_eq(prt_program_emit(ctx, p, prt_vm_ins_loop(r, -1), NULL), PRT_OK);
    ck_assert_int_eq(prt_program_emit(ctx, p, prt_vm_ins_n(PRT_OP_HALT), NULL), PRT_OK);
    double t[3] = {0};
    prt_net_spec net = one_node(0, 1);
    prt_sim_result res;
    ck_assert_int_eq(prt_sim_run(ctx, p, t, NULL, 0, &net, 1, 1, &res), PRT_ERR_UNSUPPORTED);
    ck_assert_str_eq(prt_last_error(ctx),
                     "program 'loop': instruction 1 is a LOOP: only straight-line programs are simulated");
    prt_program_destroy(ctx, p);
    prt_context_destroy(ctx);
}
END_TEST

/* ---- profiles ------------------------------------------------------------------ */

#define HEAD "parrots-profile 1\ndevice test box\nthreads 2\ndate 2026-11-28\nsource by hand\n"

static void expect_parse(const char *text, const char *msg) {
    prt_context *ctx = tu_context();
    prt_profile *pr = (prt_profile *)1;
    ck_assert_int_eq(prt_profile_parse(ctx, "t.profile", text, strlen(text), &pr), PRT_ERR_PARSE);
    ck_assert_ptr_null(pr);
    ck_assert_str_eq(prt_last_error(ctx), msg);
    prt_context_destroy(ctx);
}

START_TEST(profile_errors) {
    expect_parse("", "t.profile:1: expected 'parrots-profile 1' as the first line");
    expect_parse("# comment\nparrots-profile 1\n", "t.profile:1: expected 'parrots-profile 1' as the first line");
    expect_parse("parrots-profile 2\n", "t.profile:1: profile version 2 is not supported (this build reads version 1)");
    expect_parse("parrots-profile 1\ndevise x\n",
                 "t.profile:2: unknown key 'devise' (expected device, threads, date, source, op or default)");
    expect_parse("parrots-profile 1\nthreads 0\n", "t.profile:2: threads '0' is not a whole number from 1 to 4096");
    expect_parse("parrots-profile 1\ndevice\n", "t.profile:2: 'device' needs a value");
    expect_parse("parrots-profile 1\ndevice a\n\ndevice b\n", "t.profile:4: 'device' given twice (first at line 2)");
    expect_parse(HEAD "op conv 1e-6 2e-11 3e-12\n",
                 "t.profile:6: expected 'op NAME A B C SAMPLES', got 4 fields after 'op'");
    expect_parse(HEAD "op conv 1e-6 x 3e-12 5\n", "t.profile:6: op 'conv': coefficient b 'x' is not a finite number");
    expect_parse(HEAD "op conv 1e-6 2e-11 -1e-9 5\n",
                 "t.profile:6: op 'conv': coefficient c -1e-9 is negative (time models are non-negative)");
    expect_parse(HEAD "op conv 1e-6 2e-11 3e-12 5\n# again\nop conv 0 0 0 1\n",
                 "t.profile:8: op 'conv' given twice (first at line 6)");
    expect_parse(HEAD "op conv 1e-6 2e-11 3e-12 -5\n", "t.profile:6: op 'conv': samples '-5' is not a whole number");
    expect_parse(HEAD "default 1 2\n", "t.profile:6: expected 'default A B C', got 2 fields after 'default'");
    expect_parse("parrots-profile 1\ndevice x\nthreads 1\nsource y\nop relu 0 0 0 1\n",
                 "t.profile: missing the 'date' line");
    expect_parse(HEAD, "t.profile: no 'op' or 'default' line: the profile times nothing");
}
END_TEST

START_TEST(profile_round_trip) {
    prt_context *ctx = tu_context();
    const char *text = HEAD "# a comment\n  op conv 1.5e-06 1.25e-11 3.3e-12 125  \r\nop relu 0 2e-10 0 7\ndefault 1e-6 0 "
                            "1e-10\n";
    prt_profile *pr;
    ck_assert_int_eq(prt_profile_parse(ctx, "t.profile", text, strlen(text), &pr), PRT_OK);
    ck_assert_str_eq(pr->device, "test box");
    ck_assert_int_eq(pr->threads, 2);
    ck_assert_int_eq(pr->n_ops, 2);
    const prt_op_time *c = prt_profile_find(pr, "conv");
    ck_assert_double_eq(c->b, 1.25e-11);
    ck_assert_int_eq(c->samples, 125);
    ck_assert_ptr_eq(prt_profile_find(pr, "pad"), &pr->dflt);
    ck_assert_double_eq(prt_profile_find(pr, "pad")->c, 1e-10);
    /* written and read again: the same numbers, bit for bit */
    char buf[4096];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    ck_assert_int_eq(prt_profile_write(ctx, pr, f), PRT_OK);
    long n = ftell(f);
    fclose(f);
    prt_profile *again;
    ck_assert_int_eq(prt_profile_parse(ctx, "w.profile", buf, (size_t)n, &again), PRT_OK);
    ck_assert_int_eq(again->n_ops, 2);
    for (int i = 0; i < 2; i++) {
        ck_assert_str_eq(again->ops[i].op, pr->ops[i].op);
        ck_assert_double_eq(again->ops[i].a, pr->ops[i].a);
        ck_assert_double_eq(again->ops[i].b, pr->ops[i].b);
        ck_assert_double_eq(again->ops[i].c, pr->ops[i].c);
    }
    ck_assert(again->has_default);
    ck_assert_double_eq(again->dflt.a, 1e-6);
    prt_profile_destroy(ctx, again);
    prt_profile_destroy(ctx, pr);
    prt_context_destroy(ctx);
}
END_TEST

/* ---- the fit ------------------------------------------------------------------------ */

START_TEST(fit_recovers) {
    prt_context *ctx = tu_context();
    prt_fit_sample s[12];
    /* flops and bytes vary independently over orders of magnitude */
    for (int i = 0; i < 12; i++) {
        double f = 1e6 * (double)(1 + i * i * 37 % 101), by = 1e4 * (double)(1 + (i * 7) % 13);
        s[i] = (prt_fit_sample){f, by, 2e-6 + 1e-11 * f + 3e-10 * by};
    }
    double k[3];
    ck_assert_int_eq(prt_sim_fit(ctx, s, 12, k), PRT_OK);
    ck_assert_double_eq_tol(k[0], 2e-6, 1e-12);
    ck_assert_double_eq_tol(k[1], 1e-11, 1e-17);
    ck_assert_double_eq_tol(k[2], 3e-10, 1e-16);
    /* time that falls with bytes: least squares would give c < 0; the fit holds c at 0 and
     * a at the mean */
    prt_fit_sample d[3] = {{0, 0, 3}, {0, 10, 2}, {0, 20, 1}};
    ck_assert_int_eq(prt_sim_fit(ctx, d, 3, k), PRT_OK);
    ck_assert_double_eq_tol(k[0], 2.0, 1e-12);
    ck_assert_double_eq(k[1], 0.0);
    ck_assert_double_eq(k[2], 0.0);
    /* one sample of a kind: a model that reproduces it */
    prt_fit_sample one = {5e9, 1e6, 0.05};
    ck_assert_int_eq(prt_sim_fit(ctx, &one, 1, k), PRT_OK);
    ck_assert_double_eq_tol(k[0] + k[1] * 5e9 + k[2] * 1e6, 0.05, 1e-12);
    ck_assert(k[0] >= 0 && k[1] >= 0 && k[2] >= 0);
    prt_context_destroy(ctx);
}
END_TEST

int main(void) {
    Suite *s = suite_create("simulate");
    TCase *tc = tcase_create("simulate");
    tcase_add_test(tc, ring_formula);
    tcase_add_test(tc, slowdown);
    tcase_add_test(tc, presets_and_specs);
    tcase_add_test(tc, replay_two_buckets);
    tcase_add_test(tc, replay_refuses_loops);
    tcase_add_test(tc, profile_errors);
    tcase_add_test(tc, profile_round_trip);
    tcase_add_test(tc, fit_recovers);
    suite_add_tcase(s, tc);
    return tu_run(s);
}

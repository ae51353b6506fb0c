/* Data-parallel batch norm and dropout at the kernel level (issue 6): N ranks of
 * batch b must compute what one rank computes on the combined batch of N*b
 * samples, where local sample i of rank r is combined sample i*N + r (the data
 * loader's interleaved shards).
 *
 * Every rank builds the same combined batch from a fixed RNG, takes its shard,
 * runs the kernels (.ref and .fast, through the op registry) with the MPI
 * communicator, sync_bn and sample_stride/offset set, runs the one-rank kernels
 * on the whole combined batch itself, and checks:
 *  - batchnorm (training): y of its samples, the running mean and variance, a
 *    RECOMPUTE call (bit-identical y, running statistics untouched);
 *  - batchnorm_bwd: dx = N x the combined dx of its samples (its seed dy is N
 *    times the combined dy, as a rank's mean loss over b samples gives), and
 *    dscale/dshift local: their average over the ranks is the combined one;
 *  - dropout and dropout_bwd: masks bit-identical to the combined run's.
 * Tolerance for batch norm: |got - want| <= 1e-5 (|want| + rms(want)) per
 * element. The statistics are the same numbers reduced in another order (and
 * partly in f32 by the transport), so they agree to about an f32 ulp, not bit
 * for bit; an ulp of a channel mean of 100 moves every y of the channel by
 * ~1e-5 of the output's size, hence the rms term; the run prints the largest
 * relative difference it saw (rank 0). The one-rank side is always the .ref
 * kernel (double accumulation): the synchronised .fast kernel is our own code,
 * not oneDNN's, and is held to the same reference.
 *
 * Run alone (plain ctest) this is an MPI job of one rank: shard = combined
 * batch and nothing synchronises, which the checks must also pass. The one-
 * process checks (label unit's concern, here as tests that need no MPI):
 * sync_bn with comm NULL or a one-rank communicator gives bit-identical results
 * to sync_bn off, and dropout of simulated ranks (stride 3, offsets 0..2, no
 * communicator needed) reproduces the combined masks. The tests run in one
 * process (CK_NOFORK), as every rank must issue the same collectives in order.
 */
// labels: unit mpi

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/bwd_util.h"
#include "runtime/comm_api.h"
#include "tests/vm_util.h"
#include "tests/mpi_util.h"


#define BN_RTOL 1e-5
#define STAT_RTOL 1e-6

/* ---- helpers ------------------------------------------------------------- */

typedef struct rng { uint64_t s; } rng;
static uint64_t rnext(rng *r) {
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return r->s;
}
static double runif(rng *r) { return (double)(rnext(r) >> 11) / 9007199254740992.0 * 2 - 1; } /* [-1, 1) */

static float *falloc(int64_t n) {
    float *p = malloc((size_t)(n ? n : 1) * sizeof(float));
    ck_assert_ptr_nonnull(p);
    for (int64_t i = 0; i < n; i++) p[i] = NAN; /* a value a kernel forgets to write fails */
    return p;
}

static float *fdup(const float *src, int64_t n) {
    float *p = falloc(n);
    memcpy(p, src, (size_t)n * sizeof(float));
    return p;
}

/* How one kernel call is made. */
typedef struct callopts {
    bool reference, training, recompute, sync_bn;
    prt_comm *comm;
    int64_t stride, offset;
    uint64_t rng_key, step;
} callopts;

/* Runs s's kernel on host buffers (shapes: inputs, then outputs). */
static void run_kernel(prt_context *ctx, const prt_op_schema *s, const prt_attr *attrs, int n_in, float **in,
                       const prt_shape *in_sh, int n_out, float **out, const prt_shape *out_sh, const callopts *o) {
    prt_tensor ti[8], to[4];
    const prt_tensor *pin[8];
    prt_tensor *pout[4];
    for (int k = 0; k < n_in; k++) {
        prt_tensor_wrap(&ti[k], in[k], PRT_F32, &in_sh[k]);
        pin[k] = &ti[k];
    }
    for (int k = 0; k < n_out; k++) {
        prt_tensor_wrap(&to[k], out[k], PRT_F32, &out_sh[k]);
        pout[k] = &to[k];
    }
    prt_kernel_call c = {.ctx = ctx, .attrs = attrs, .n_in = n_in, .in = pin, .n_out = n_out, .out = pout,
                         .training = o->training, .recompute = o->recompute, .rng_key = o->rng_key,
                         .step = o->step, .comm = o->comm, .sync_bn = o->sync_bn, .sample_stride = o->stride,
                         .sample_offset = o->offset};
    const prt_kernel *k = prt_op_kernel(s, o->reference);
    void *state = NULL;
    if (k->prepare) ck_assert_msg(k->prepare(&c, &state) == PRT_OK, "%s prepare: %s", s->name, prt_last_error(ctx));
    c.state = state;
    prt_status st = k->run(&c);
    if (k->release) k->release(state);
    ck_assert_msg(st == PRT_OK, "%s run: %s", s->name, prt_last_error(ctx));
}

/* The rows of local sample i are combined sample i*stride + offset: copies
 * that shard of a combined [B, ...] buffer (per = elements per sample). */
static float *shard(const float *comb, int64_t b, int64_t per, int64_t stride, int64_t offset, float mul) {
    float *p = falloc(b * per);
    for (int64_t i = 0; i < b; i++)
        for (int64_t e = 0; e < per; e++) p[i * per + e] = mul * comb[(i * stride + offset) * per + e];
    return p;
}

/* Largest |got - want| / (|want| + rms(want)) seen by close_shard over a test. */
typedef struct maxrel { double v; } maxrel;
/* What bn_cases reports: y, dx, and the statistics (mean against |mean| + std,
 * variance against itself). */
typedef struct bn_acc { maxrel y, y_cond, dx, mean, var; } bn_acc;

/* got (b local samples) against mul x the combined want's samples i*stride +
 * offset: |got - want| <= rtol (|want| + rms(want)) + slack[channel] per
 * element (slack NULL: none; element e of a sample is in channel e / sp). */
static void close_shard(const char *what, const float *got, const float *want, int64_t b, int64_t per,
                        int64_t stride, int64_t offset, double mul, double rtol, const double *slack, int64_t sp,
                        maxrel *mr) {
    double ss = 0;
    for (int64_t i = 0; i < b; i++)
        for (int64_t e = 0; e < per; e++) {
            double w = mul * want[(i * stride + offset) * per + e];
            ss += w * w;
        }
    double rms = b * per > 0 ? sqrt(ss / (double)(b * per)) : 0;
    for (int64_t i = 0; i < b; i++)
        for (int64_t e = 0; e < per; e++) {
            double w = mul * want[(i * stride + offset) * per + e], g = got[i * per + e];
            double scale = fabs(w) + rms + 1e-30, tol = rtol * scale + (slack ? slack[e / sp] : 0);
            if (mr && fabs(g - w) / scale > mr->v) mr->v = fabs(g - w) / scale;
            if (!(fabs(g - w) <= tol))
                ck_abort_msg("%s: local sample %lld element %lld is %.9g, want %.9g (difference %.3g > %.3g)", what,
                             (long long)i, (long long)e, g, w, fabs(g - w), tol);
        }
}

static void same_bits(const char *what, const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0)
            ck_abort_msg("%s: element %lld is %.9g, want %.9g bit for bit", what, (long long)i, a[i], b[i]);
}

/* ---- batch norm ------------------------------------------------------------ */

/* A combined batch [B, C, S] (S = product of dims from 2) whose channel k has
 * mean off[k % 4] and spread sd[k % 4]: channel means of 100 against a spread
 * of 1 are where f32 partial sums would lose the mean. */
typedef struct bn_data {
    prt_shape xs;          /* combined */
    int64_t b, ch, sp, per; /* local batch, channels, spatial, C*S */
    float *x, *g, *scale, *shift, *rmean, *rvar;
} bn_data;

static bn_data bn_make(int64_t big_b, int64_t ch, int nsp, const int64_t *spd, uint64_t seed, int64_t nranks) {
    bn_data d = {0};
    int64_t dims[4] = {big_b * nranks, ch, 1, 1};
    for (int i = 0; i < nsp; i++) dims[2 + i] = spd[i];
    d.xs = prt_shape_make(2 + nsp, dims);
    d.b = big_b;
    d.ch = ch;
    d.sp = 1;
    for (int i = 0; i < nsp; i++) d.sp *= spd[i];
    d.per = ch * d.sp;
    int64_t n = prt_shape_count(&d.xs);
    rng r = {seed};
    static const double off[4] = {0.0, 100.0, -3.0, 0.25}, sd[4] = {1.0, 1.0, 0.01, 5.0};
    d.x = falloc(n);
    d.g = falloc(n);
    for (int64_t e = 0; e < n; e++) {
        int64_t k = (e / d.sp) % ch;
        d.x[e] = (float)(off[k % 4] + sd[k % 4] * runif(&r));
        d.g[e] = (float)runif(&r);
    }
    d.scale = falloc(ch);
    d.shift = falloc(ch);
    d.rmean = falloc(ch);
    d.rvar = falloc(ch);
    for (int64_t k = 0; k < ch; k++) {
        d.scale[k] = (float)(1 + 0.5 * runif(&r));
        d.shift[k] = (float)(0.5 * runif(&r));
        d.rmean[k] = (float)runif(&r);
        d.rvar[k] = (float)(1.5 + runif(&r));
    }
    return d;
}

static void bn_free(bn_data *d) {
    free(d->x);
    free(d->g);
    free(d->scale);
    free(d->shift);
    free(d->rmean);
    free(d->rvar);
}

typedef struct bn_result {
    float *y, *rmean, *rvar, *dx, *dscale, *dshift;
} bn_result;

static void bn_result_free(bn_result *r) {
    free(r->y);
    free(r->rmean);
    free(r->rvar);
    free(r->dx);
    free(r->dscale);
    free(r->dshift);
}

/* Forward (training, updating copies of the running statistics), then the
 * backward with seed dy, on x of shape xs; with a RECOMPUTE of the forward
 * between them that must give y bit for bit and leave the statistics alone. */
static bn_result bn_run(prt_context *ctx, const bn_data *d, const float *x, const float *dy, const prt_shape *xs,
                        const callopts *o) {
    const prt_op_schema *fs = vt_op(ctx, "batchnorm", NULL), *bs = vt_op(ctx, "batchnorm_bwd", NULL);
    prt_attr attrs[8];
    vt_attrs_default(fs, attrs);
    vt_set_float(fs, attrs, "momentum", 1.0);
    int64_t n = prt_shape_count(xs);
    prt_shape cs = prt_shape_make(1, &d->ch);
    bn_result r = {falloc(n), fdup(d->rmean, d->ch), fdup(d->rvar, d->ch), falloc(n), falloc(d->ch), falloc(d->ch)};
    float *fin[5] = {(float *)x, d->scale, d->shift, r.rmean, r.rvar};
    prt_shape fsh[5] = {*xs, cs, cs, cs, cs};
    run_kernel(ctx, fs, attrs, 5, fin, fsh, 1, &r.y, xs, o);

    float *y2 = falloc(n), *m2 = fdup(r.rmean, d->ch), *v2 = fdup(r.rvar, d->ch);
    float *fin2[5] = {(float *)x, d->scale, d->shift, m2, v2};
    callopts ro = *o;
    ro.recompute = true;
    run_kernel(ctx, fs, attrs, 5, fin2, fsh, 1, &y2, xs, &ro);
    same_bits("batchnorm RECOMPUTE: y", y2, r.y, n);
    same_bits("batchnorm RECOMPUTE: running mean", m2, r.rmean, d->ch);
    same_bits("batchnorm RECOMPUTE: running var", v2, r.rvar, d->ch);
    free(y2);
    free(m2);
    free(v2);

    float *bin[5] = {(float *)dy, (float *)x, d->scale, d->rmean, d->rvar};
    prt_shape bsh[5] = {*xs, *xs, cs, cs, cs}, osh[3] = {*xs, cs, cs};
    float *bout[3] = {r.dx, r.dscale, r.dshift};
    run_kernel(ctx, bs, attrs, 5, bin, bsh, 3, bout, osh, o);
    return r;
}

/* The rank's side against the combined run for one shape and kernel. */
static void bn_case(prt_context *ctx, prt_comm *comm, int64_t b, int64_t ch, int nsp, const int64_t *spd,
                    bool reference, bn_acc *acc) {
    int N = comm ? prt_comm_size(comm) : 1, rank = comm ? prt_comm_rank(comm) : 0;
    bn_data d = bn_make(b, ch, nsp, spd, 0x5eedULL + (uint64_t)(ch * 31 + nsp), N);
    char what[160];
    snprintf(what, sizeof what, "batchnorm%s [%lld x %lld ranks, %lld, S %lld]", reference ? ".ref" : ".fast",
             (long long)b, (long long)N, (long long)ch, (long long)d.sp);

    /* the one-rank side: .ref, with double sums like the synchronised kernels'
     * own code; on one rank nothing synchronises and the kernel is compared
     * with itself (oneDNN's f32 statistics differ from .ref's by more than
     * 1e-5 on the ill-conditioned channels) */
    callopts one = {.reference = reference || N > 1, .training = true};
    bn_result cr = bn_run(ctx, &d, d.x, d.g, &d.xs, &one);

    prt_shape ls = d.xs;
    ls.d[0] = b;
    float *lx = shard(d.x, b, d.per, N, rank, 1.0f);
    /* the rank's loss is the mean over its b samples: N times the combined dy */
    float *ldy = shard(d.g, b, d.per, N, rank, (float)N);
    callopts dp = {.reference = reference, .training = true, .sync_bn = true, .comm = comm, .stride = N,
                   .offset = rank};
    bn_result lr = bn_run(ctx, &d, lx, ldy, &ls, &dp);

    /* The combined batch's statistics in double, for the tolerances: the
     * one-rank kernel itself is only as accurate as its last f32 operations.
     * Its y (.ref: x * a + (shift - mean * a); .fast: (x - mean) * a + shift)
     * carries a rounding of the order of ulp(mean * a) with a = scale / std:
     * for a channel whose mean is 170 of its spreads that is 1e-5 of the
     * output, which no agreement of the statistics short of bit-identity can
     * beat. So y gets a slack of 4 ulps (2^-22) of |mean * a| per channel; it
     * is below 1e-6 for channels with |mean| < 10 std. */
    double *slack = calloc((size_t)ch, sizeof(double)), *mu = calloc((size_t)ch, sizeof(double)),
           *var = calloc((size_t)ch, sizeof(double));
    int64_t big_b = b * N;
    for (int64_t k = 0; k < ch; k++) {
        double s1 = 0, s2 = 0;
        for (int64_t i = 0; i < big_b; i++)
            for (int64_t t = 0; t < d.sp; t++) s1 += d.x[(i * ch + k) * d.sp + t];
        mu[k] = s1 / (double)(big_b * d.sp);
        for (int64_t i = 0; i < big_b; i++)
            for (int64_t t = 0; t < d.sp; t++) {
                double e = d.x[(i * ch + k) * d.sp + t] - mu[k];
                s2 += e * e;
            }
        var[k] = s2 / (double)(big_b * d.sp);
        slack[k] = ldexp(fabs(mu[k] * d.scale[k] / sqrt(var[k] + 1e-5)), -22);
    }
    char w[200];
    snprintf(w, sizeof w, "%s: y", what);
    close_shard(w, lr.y, cr.y, b, d.per, N, rank, 1.0, BN_RTOL, slack, d.sp, &acc->y);
    snprintf(w, sizeof w, "%s: dx (N x the combined dx)", what);
    close_shard(w, lr.dx, cr.dx, b, d.per, N, rank, (double)N, BN_RTOL, NULL, d.sp, &acc->dx);
    /* momentum 1: the running statistics are the batch's (variance unbiased with the combined count) */
    for (int64_t k = 0; k < ch; k++) {
        double em = fabs((double)lr.rmean[k] - cr.rmean[k]) / (fabs(cr.rmean[k]) + sqrt(var[k]));
        double ev = fabs((double)lr.rvar[k] - cr.rvar[k]) / fabs(cr.rvar[k]);
        if (em > acc->mean.v) acc->mean.v = em;
        if (ev > acc->var.v) acc->var.v = ev;
        ck_assert_msg(em <= STAT_RTOL, "%s: running mean of channel %lld is %.9g, want %.9g (relative %.3g)", what,
                      (long long)k, lr.rmean[k], cr.rmean[k], em);
        ck_assert_msg(ev <= STAT_RTOL, "%s: running var of channel %lld is %.9g, want %.9g (relative %.3g)", what,
                      (long long)k, lr.rvar[k], cr.rvar[k], ev);
    }
    /* y's difference on the well-conditioned channels (|mean| < 10 std), for the report */
    for (int64_t i = 0; i < b; i++)
        for (int64_t e = 0; e < d.per; e++) {
            int64_t k = e / d.sp;
            if (fabs(mu[k]) >= 10 * sqrt(var[k])) continue;
            double w = cr.y[(i * N + rank) * d.per + e], rel = fabs(lr.y[i * d.per + e] - w) / (fabs(w) + 1);
            if (rel > acc->y_cond.v) acc->y_cond.v = rel;
        }
    free(slack);
    free(mu);
    free(var);

    /* local parameter gradients: what the gradient allreduce averages */
    float *ds = fdup(lr.dscale, ch), *dh = fdup(lr.dshift, ch);
    if (comm) {
        prt_comm_handle h1, h2;
        ck_assert_int_eq(prt_comm_allreduce_start(comm, ds, (size_t)ch, PRT_F32, PRT_COMM_AVG, &h1), PRT_OK);
        ck_assert_int_eq(prt_comm_allreduce_start(comm, dh, (size_t)ch, PRT_F32, PRT_COMM_AVG, &h2), PRT_OK);
        ck_assert_msg(prt_comm_wait(comm, h2) == PRT_OK, "%s", prt_last_error(ctx));
    }
    /* sums of the seeds' products: relative to their own size, like a gradient allreduce */
    snprintf(w, sizeof w, "%s: dscale averaged over the ranks", what);
    close_shard(w, ds, cr.dscale, 1, ch, 1, 0, 1.0, 1e-4, NULL, 1, NULL);
    snprintf(w, sizeof w, "%s: dshift averaged over the ranks", what);
    close_shard(w, dh, cr.dshift, 1, ch, 1, 0, 1.0, 1e-4, NULL, 1, NULL);
    free(ds);
    free(dh);
    free(lx);
    free(ldy);
    bn_result_free(&cr);
    bn_result_free(&lr);
    bn_free(&d);
}

static void bn_cases(prt_context *ctx, prt_comm *comm) {
    bn_acc acc = {0};
    const int64_t sp44[2] = {4, 4}, sp7[1] = {7}, sp1[2] = {1, 1};
    for (int ref = 1; ref >= 0; ref--) {
        bn_case(ctx, comm, 3, 5, 2, sp44, ref, &acc);  /* [b, C, 4, 4] */
        bn_case(ctx, comm, 2, 6, 1, sp7, ref, &acc);   /* [b, C, 7] */
        bn_case(ctx, comm, 4, 3, 0, NULL, ref, &acc);  /* [b, C] (after a linear layer) */
        /* batch 1 a rank, spatial 1: one value a channel, fine with 2 ranks or more */
        bn_case(ctx, comm, prt_comm_size(comm) > 1 ? 1 : 2, 4, 2, sp1, ref, &acc);
        /* large enough for the fast kernel's threads */
        const int64_t big[2] = {24, 24};
        bn_case(ctx, comm, 16, 8, 2, big, ref, &acc);
    }
    if (!comm || prt_comm_rank(comm) == 0)
        printf("sync_bn: %d rank(s), largest relative difference to the combined run: y %.3g "
               "(%.3g where |mean| < 10 std), dx %.3g, batch mean %.3g, batch var %.3g\n",
               comm ? prt_comm_size(comm) : 1, acc.y.v, acc.y_cond.v, acc.dx.v, acc.mean.v, acc.var.v);
}

/* ---- dropout --------------------------------------------------------------- */

/* Rank `rank` of `nranks` (real or simulated): dropout and dropout_bwd of its
 * shard against the one-process run of the combined batch, bit for bit. */
static void dropout_case(prt_context *ctx, int64_t nranks, int64_t rank, int nd, const int64_t *dims, bool reference,
                         uint64_t step) {
    const prt_op_schema *fs = vt_op(ctx, "dropout", NULL), *bs = vt_op(ctx, "dropout_bwd", NULL);
    prt_attr fa[4], ba[4];
    vt_attrs_default(fs, fa);
    vt_set_float(fs, fa, "p", 0.3);
    vt_attrs_default(bs, ba);
    vt_set_float(bs, ba, "p", 0.3);
    prt_attr *of = vt_attr(bs, ba, "of");
    of->s = "drop";
    of->set = true;
    int64_t cd[4];
    memcpy(cd, dims, (size_t)nd * sizeof cd[0]);
    int64_t b = cd[0];
    cd[0] = b * nranks;
    prt_shape cs = prt_shape_make(nd, cd), ls = cs;
    ls.d[0] = b;
    int64_t n = prt_shape_count(&cs), per = n / cd[0];
    rng r = {0xd0 + (uint64_t)n};
    float *x = falloc(n), *dy = falloc(n);
    for (int64_t e = 0; e < n; e++) {
        x[e] = (float)(1.5 + runif(&r)); /* never 0: y == 0 exactly where dropped */
        dy[e] = (float)(1.5 + runif(&r));
    }
    uint64_t key = prt_hash_str("drop", ctx->seed);
    callopts one = {.reference = reference, .training = true, .rng_key = key, .step = step};
    float *cy = falloc(n), *cdx = falloc(n);
    run_kernel(ctx, fs, fa, 1, &x, &cs, 1, &cy, &cs, &one);
    run_kernel(ctx, bs, ba, 1, &dy, &cs, 1, &cdx, &cs, &one);

    float *lx = shard(x, b, per, nranks, rank, 1.0f), *ldy = shard(dy, b, per, nranks, rank, 1.0f);
    float *ly = falloc(b * per), *ldx = falloc(b * per);
    callopts dp = one;
    dp.stride = nranks;
    dp.offset = rank;
    run_kernel(ctx, fs, fa, 1, &lx, &ls, 1, &ly, &ls, &dp);
    run_kernel(ctx, bs, ba, 1, &ldy, &ls, 1, &ldx, &ls, &dp);
    float *wy = shard(cy, b, per, nranks, rank, 1.0f), *wdx = shard(cdx, b, per, nranks, rank, 1.0f);
    char w[160];
    snprintf(w, sizeof w, "dropout%s rank %lld of %lld, step %llu: y", reference ? ".ref" : ".fast", (long long)rank,
             (long long)nranks, (unsigned long long)step);
    same_bits(w, ly, wy, b * per);
    snprintf(w, sizeof w, "dropout_bwd%s rank %lld of %lld, step %llu: dx", reference ? ".ref" : ".fast",
             (long long)rank, (long long)nranks, (unsigned long long)step);
    same_bits(w, ldx, wdx, b * per);
    int64_t dropped = 0;
    for (int64_t e = 0; e < b * per; e++) {
        ck_assert_msg((ly[e] == 0) == (ldx[e] == 0), "dropout: forward and backward masks differ at %lld", (long long)e);
        dropped += ly[e] == 0;
    }
    /* a mask that drops nothing (or everything) would pass the comparisons vacuously */
    if (b * per >= 100) ck_assert_msg(dropped > 0 && dropped < b * per, "dropout: %lld of %lld dropped",
                                      (long long)dropped, (long long)(b * per));
    free(x);
    free(dy);
    free(cy);
    free(cdx);
    free(lx);
    free(ldy);
    free(ly);
    free(ldx);
    free(wy);
    free(wdx);
}

static void dropout_cases(prt_context *ctx, int64_t nranks, int64_t rank) {
    const int64_t d4[4] = {3, 2, 5, 7}, d2[2] = {5, 33};
    for (int ref = 1; ref >= 0; ref--)
        for (uint64_t step = 0; step < 3; step += 2) {
            dropout_case(ctx, nranks, rank, 4, d4, ref, step);
            dropout_case(ctx, nranks, rank, 2, d2, ref, step);
        }
    /* large enough for the fast kernels' threads */
    const int64_t big[4] = {8, 16, 16, 16};
    dropout_case(ctx, nranks, rank, 4, big, false, 5);
}

/* ---- one process ----------------------------------------------------------- */

/* sync_bn with no communicator (or one rank) is plain batch norm, bit for bit. */
START_TEST(sync_without_comm_is_plain) {
    prt_context *ctx = tu_context();
    prt_comm *local;
    ck_assert_int_eq(prt_comm_create_local(ctx, NULL, &local), PRT_OK);
    const int64_t sp[2] = {5, 3};
    bn_data d = bn_make(4, 6, 2, sp, 99, 1);
    int64_t n = prt_shape_count(&d.xs);
    for (int ref = 0; ref < 2; ref++) {
        callopts off = {.reference = ref, .training = true};
        bn_result a = bn_run(ctx, &d, d.x, d.g, &d.xs, &off);
        for (int v = 0; v < 2; v++) {
            callopts on = off;
            on.sync_bn = true;
            on.comm = v ? local : NULL;
            bn_result b = bn_run(ctx, &d, d.x, d.g, &d.xs, &on);
            same_bits("sync_bn without ranks: y", b.y, a.y, n);
            same_bits("sync_bn without ranks: running mean", b.rmean, a.rmean, d.ch);
            same_bits("sync_bn without ranks: running var", b.rvar, a.rvar, d.ch);
            same_bits("sync_bn without ranks: dx", b.dx, a.dx, n);
            same_bits("sync_bn without ranks: dscale", b.dscale, a.dscale, d.ch);
            same_bits("sync_bn without ranks: dshift", b.dshift, a.dshift, d.ch);
            bn_result_free(&b);
        }
        bn_result_free(&a);
    }
    bn_free(&d);
    prt_comm_destroy(local);
    prt_context_destroy(ctx);
}
END_TEST

/* One process: stride 1, offset 0 is today's counter (s*numel + i), and
 * simulated ranks (stride 3) reproduce the combined masks without any comm. */
START_TEST(dropout_simulated_ranks) {
    prt_context *ctx = tu_context();
    for (int64_t r = 0; r < 3; r++) dropout_cases(ctx, 3, r);
    dropout_cases(ctx, 1, 0);
    /* stride 1 offset 0 against the one-process call (0, 0), and against the counter by hand */
    const prt_op_schema *fs = vt_op(ctx, "dropout", NULL);
    prt_attr fa[4];
    vt_attrs_default(fs, fa);
    vt_set_float(fs, fa, "p", 0.5);
    int64_t dims[2] = {4, 9};
    prt_shape s = prt_shape_make(2, dims);
    float x[36], y0[36], y1[36];
    for (int i = 0; i < 36; i++) x[i] = 1.0f;
    float *px = x, *py0 = y0, *py1 = y1;
    callopts o = {.reference = true, .training = true, .rng_key = 1234, .step = 3};
    run_kernel(ctx, fs, fa, 1, &px, &s, 1, &py0, &s, &o);
    o.stride = 1;
    run_kernel(ctx, fs, fa, 1, &px, &s, 1, &py1, &s, &o);
    same_bits("dropout stride 1 offset 0", y1, y0, 36);
    for (int i = 0; i < 36; i++)
        ck_assert_msg(y0[i] == (prt_rng_uniform(1234, 3 * 36 + (uint64_t)i) < 0.5f ? 0.0f : 2.0f),
                      "dropout element %d: not the counter step*numel + i", i);
    prt_context_destroy(ctx);
}
END_TEST

/* ---- every rank of the MPI job -------------------------------------------- */

START_TEST(mpi_sync_bn_and_dropout) {
    prt_context *ctx = tu_context();
    prt_comm *comm = NULL;
    /* a rank that fails a check skips its remaining collectives: the others stop at the timeout */
    prt_comm_options o = {.struct_size = sizeof o, .timeout_s = 30};
#if PARROTS_HAVE_MPI
    if (prt_comm_create_mpi(ctx, &o, &comm) != PRT_OK) ck_abort_msg("create: %s", prt_last_error(ctx));
#else
    /* no MPI in this build: the same checks on one rank */
    ck_assert_int_eq(prt_comm_create_local(ctx, &o, &comm), PRT_OK);
#endif
    bn_cases(ctx, comm);
    dropout_cases(ctx, prt_comm_size(comm), prt_comm_rank(comm));
    prt_comm_destroy(comm);
    prt_context_destroy(ctx);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("sync_bn");
    TCase *tc = tcase_create("sync_bn");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, sync_without_comm_is_plain);
    tcase_add_test(tc, dropout_simulated_ranks);
    tcase_add_test(tc, mpi_sync_bn_and_dropout);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_mpi(suite()); }

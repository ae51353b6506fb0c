/* dropout_bwd: dx = dy * mask, with the very mask the forward dropout drew.
 * The forward's stream key is prt_hash_str(<its node name>, seed) and element
 * i at step s uses counter s*numel + i (ops/op_dropout.c); this op gets the
 * forward node's name as `of` and rebuilds the same key, and runs in the same
 * step, so the masks match bit for bit without storing one. In data-parallel
 * runs both derive the counter of the combined batch from sample_stride and
 * sample_offset the same way (the formula is in ops/op_dropout.c; the two
 * copies below must stay equal). */
#include "ops/ops_util.h"
#include "ops/cuda/cuda_ops.h"

#include <string.h>

enum { A_P, A_OF };

static const prt_attr_def dropout_bwd_attrs[] = {
    PRT_ATTR_OPT_FLOAT("p", 0.5, "the forward's drop probability"),
    PRT_ATTR_REQ("of", PRT_ATTR_STRING, 0, "name of the forward dropout node (its RNG stream)"),
};

static prt_status dropout_bwd_infer(prt_infer_ctx *ic) {
    double p = prt_attr_float(&ic->attrs[A_P]);
    if (!(p >= 0.0 && p <= 1.0)) return prt_infer_error(ic, "p must be in [0, 1], got %g", p);
    if (!ic->attrs[A_OF].s || !ic->attrs[A_OF].s[0])
        return prt_infer_error(ic, "needs `of`, the name of the forward dropout node");
    ic->out[0] = ic->in[0];
    return PRT_OK;
}

static int64_t dropout_bwd_flops(const prt_infer_ctx *ic) { return prt_flops_per_elem(ic, 1); }

/* The forward's multiplier for element i (same expression, same float p). */
static inline float dropout_bwd_mult(uint64_t key, const prt_dropout_ctr *k, int64_t i, float p, float keep_scale) {
    return prt_rng_uniform(key, prt_dropout_counter(k, i)) < p ? 0.0f : keep_scale;
}

typedef struct dropout_bwd_args {
    const float *dy;
    float *dx;
    uint64_t key;
    prt_dropout_ctr k;
    float p, keep_scale;
} dropout_bwd_args;

static prt_status dropout_bwd_setup(const prt_kernel_call *c, dropout_bwd_args *a, int64_t *n) {
    PRT_CHECK(prt_kernel_check_f32(c, "dropout_bwd"));
    const char *of = c->attrs[A_OF].s;
    if (!of) return prt_error(c->ctx, PRT_ERR_INVALID, "dropout_bwd kernel: attribute `of` is not set");
    *n = prt_shape_count(&c->in[0]->shape);
    float p = (float)prt_attr_float(&c->attrs[A_P]);
    /* outside training the forward is the identity, and so is its gradient */
    *a = (dropout_bwd_args){PRT_F32P(c->in[0]), PRT_F32P(c->out[0]), prt_hash_str(of, c->ctx->seed),
                            prt_dropout_counters(c, *n), c->training ? p : 0.0f, p < 1.0f ? 1.0f / (1.0f - p) : 0.0f};
    return PRT_OK;
}

static prt_status dropout_bwd_ref(const prt_kernel_call *c) {
    dropout_bwd_args a = {0};
    int64_t n = 0;
    PRT_CHECK(dropout_bwd_setup(c, &a, &n));
    for (int64_t i = 0; i < n; i++)
        a.dx[i] = a.p == 0.0f ? a.dy[i] : a.dy[i] * dropout_bwd_mult(a.key, &a.k, i, a.p, a.keep_scale);
    return PRT_OK;
}

static void dropout_bwd_range(void *arg, int64_t lo, int64_t hi) {
    const dropout_bwd_args *a = arg;
    if (a->p == 0.0f) {
        if (a->dy != a->dx) memcpy(a->dx + lo, a->dy + lo, (size_t)(hi - lo) * sizeof(float));
        return;
    }
    for (int64_t i = lo; i < hi; i++) a->dx[i] = a->dy[i] * dropout_bwd_mult(a->key, &a->k, i, a->p, a->keep_scale);
}

static prt_status dropout_bwd_fast(const prt_kernel_call *c) {
    dropout_bwd_args a = {0};
    int64_t n = 0;
    PRT_CHECK(dropout_bwd_setup(c, &a, &n));
    /* a Philox block per element: worth threads much earlier than a copy */
    prt_parallel_range(n, a.p == 0.0f ? PRT_PAR_MIN_ELEMS : 2048, dropout_bwd_range, &a);
    return PRT_OK;
}

const prt_op_schema prt_op_dropout_bwd = {
    .name = "dropout_bwd",
    .doc = "gradient of dropout: dy times the forward node's mask, recomputed from its RNG stream",
    .min_in = 1,
    .max_in = 1,
    .n_out = 1,
    .attrs = dropout_bwd_attrs,
    .n_attrs = 2,
    .infer = dropout_bwd_infer,
    .flops = dropout_bwd_flops,
    .inplace_in = 0,
    .ref = {.run = dropout_bwd_ref},
    .fast = {.run = dropout_bwd_fast},
    .grad = NULL,
    .grad_note = "backward-only op",
    .cuda = PRT_CUDA_KERNEL(.run = prt_cuda_dropout_bwd, .step_bytes = PRT_DROPOUT_STEP_BYTES,
                            .step_values = prt_dropout_step_values),
    .cuda_bf16 = true,
};

/* dropout: in training, zeroes each element with probability p and scales the
 * survivors by 1/(1-p); outside training, the identity. The mask of element i
 * at step s comes from the counter-based RNG at counter s*numel + i, so it is
 * the same for any thread count and can be recomputed by the backward pass.
 *
 * Data-parallel runs: local sample j of a rank is sample j*stride + offset of
 * the combined batch (prt_kernel_call.sample_stride/offset), and element e of it
 * uses the counter the one-process run of the combined batch gives it:
 *     s * (numel * stride) + (j * stride + offset) * per_sample + e,
 * per_sample = numel / shape[0]. With stride 1 and offset 0 this is s*numel + i,
 * today's counter, so one-process masks are unchanged. dropout_bwd
 * (ops/op_dropout_bwd.c) derives the same counters. */
#include "ops/ops_util.h"
#include "ops/cuda/cuda_ops.h"

#include <string.h>

enum { A_P };

static const prt_attr_def dropout_attrs[] = {
    PRT_ATTR_OPT_FLOAT("p", 0.5, "probability of zeroing an element"),
};

static prt_status dropout_infer(prt_infer_ctx *ic) {
    double p = prt_attr_float(&ic->attrs[A_P]);
    if (!(p >= 0.0 && p <= 1.0)) return prt_infer_error(ic, "p must be in [0, 1], got %g", p);
    ic->out[0] = ic->in[0];
    return PRT_OK;
}

static int64_t dropout_flops(const prt_infer_ctx *ic) { return prt_flops_per_elem(ic, 1); }

/* dx = dropout_bwd(dy) with the forward's mask: dropout_bwd rebuilds the RNG
 * stream from the forward node's name (`of`), which is what keys the forward. */
static prt_status dropout_grad(prt_grad_ctx *gc) {
    if (gc->dy[0] == -1 || !prt_grad_wants(gc, 0)) return PRT_OK;
    if (gc->dy[0] == PRT_GRAD_ONE) return prt_grad_not_loss(gc);
    prt_graph *g = gc->g;
    const prt_op_schema *bs = prt_op_find(g->ctx->ops, "dropout_bwd", NULL);
    if (!bs || bs->n_attrs != 2)
        return prt_error(g->ctx, PRT_ERR_INTERNAL, "gradient builder of dropout: op 'dropout_bwd' is missing");
    prt_attr attrs[2];
    prt_attrs_default(bs, attrs);
    attrs[0].f = prt_attr_float(&g->nodes[gc->node].attrs[A_P]);
    attrs[0].set = true;
    attrs[1].s = prt_graph_intern(g, g->nodes[gc->node].name);
    if (!attrs[1].s) return prt_error(g->ctx, PRT_ERR_NOMEM, "gradient builder of dropout: out of memory");
    attrs[1].set = true;
    return prt_grad_emit(gc, "dropout_bwd", &gc->dy[0], 1, attrs, &gc->dx[0]);
}

prt_status prt_dropout_step_values(const prt_kernel_call *c, void *slot) {
    uint64_t base = prt_dropout_counters(c, prt_shape_count(&c->in[0]->shape)).base;
    memcpy(slot, &base, sizeof base);
    return PRT_OK;
}

/* The multiplier for element i: 0 (dropped) or 1/(1-p). */
static inline float dropout_mult(uint64_t key, const prt_dropout_ctr *k, int64_t i, float p, float keep_scale) {
    return prt_rng_uniform(key, prt_dropout_counter(k, i)) < p ? 0.0f : keep_scale;
}

static prt_status dropout_ref(const prt_kernel_call *c) {
    PRT_CHECK(prt_kernel_check_f32(c, "dropout"));
    const float *x = PRT_F32P(c->in[0]);
    float *y = PRT_F32P(c->out[0]);
    int64_t n = prt_shape_count(&c->in[0]->shape);
    float p = (float)prt_attr_float(&c->attrs[A_P]);
    if (!c->training || p == 0.0f) {
        for (int64_t i = 0; i < n; i++) y[i] = x[i];
        return PRT_OK;
    }
    /* p = 1 drops everything; the scale is then never used */
    float keep_scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    prt_dropout_ctr k = prt_dropout_counters(c, n);
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * dropout_mult(c->rng_key, &k, i, p, keep_scale);
    return PRT_OK;
}

typedef struct dropout_args {
    const float *x;
    float *y;
    uint64_t key;
    prt_dropout_ctr k;
    float p, keep_scale;
} dropout_args;

static void dropout_range(void *arg, int64_t lo, int64_t hi) {
    const dropout_args *a = arg;
    if (a->p == 0.0f) {
        if (a->x != a->y) memcpy(a->y + lo, a->x + lo, (size_t)(hi - lo) * sizeof(float));
        return;
    }
    for (int64_t i = lo; i < hi; i++) a->y[i] = a->x[i] * dropout_mult(a->key, &a->k, i, a->p, a->keep_scale);
}

static prt_status dropout_fast(const prt_kernel_call *c) {
    PRT_CHECK(prt_kernel_check_f32(c, "dropout"));
    int64_t n = prt_shape_count(&c->in[0]->shape);
    float p = (float)prt_attr_float(&c->attrs[A_P]);
    dropout_args a = {PRT_F32P(c->in[0]), PRT_F32P(c->out[0]), c->rng_key, prt_dropout_counters(c, n),
                      c->training ? p : 0.0f, p < 1.0f ? 1.0f / (1.0f - p) : 0.0f};
    /* a Philox block per element costs ~20 ns: worth threads much earlier than a copy */
    prt_parallel_range(n, a.p == 0.0f ? PRT_PAR_MIN_ELEMS : 2048, dropout_range, &a);
    return PRT_OK;
}

const prt_op_schema prt_op_dropout = {
    .name = "dropout",
    .doc = "zeroes elements with probability p in training (scaling the rest by 1/(1-p))",
    .min_in = 1,
    .max_in = 1,
    .n_out = 1,
    .attrs = dropout_attrs,
    .n_attrs = 1,
    .infer = dropout_infer,
    .flops = dropout_flops,
    .inplace_in = 0,
    .ref = {.run = dropout_ref},
    .fast = {.run = dropout_fast},
    .grad = dropout_grad,
    .cheap = true,
    .cuda = PRT_CUDA_KERNEL(.run = prt_cuda_dropout, .step_bytes = PRT_DROPOUT_STEP_BYTES,
                            .step_values = prt_dropout_step_values),
    .cuda_bf16 = true,
};

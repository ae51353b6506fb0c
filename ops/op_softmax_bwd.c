/* softmax_bwd: the gradient of softmax from its output,
 * dx = y * (dy - sum(dy * y)) along `axis` (the forward's attribute table).
 * The sum runs in the same order in both kernels, so they agree bit for bit;
 * each element is read before it is written, so dx may overwrite dy. */
#include "ops/ops_util.h"

enum { IN_DY, IN_Y };

static int softmax_bwd_axis(const prt_attr *attrs, int ndim) {
    int64_t a = prt_attr_int(&attrs[0]);
    if (a < 0) a += ndim;
    return a >= 0 && a < ndim ? (int)a : -1;
}

static prt_status softmax_bwd_infer(prt_infer_ctx *ic) {
    if (!prt_shape_eq(&ic->in[IN_DY], &ic->in[IN_Y])) {
        char a[160], b[160];
        prt_shape_str(&ic->in[IN_DY], a, sizeof a);
        prt_shape_str(&ic->in[IN_Y], b, sizeof b);
        return prt_infer_error(ic, "gradient dy has shape %s but the softmax output y has %s", a, b);
    }
    if (softmax_bwd_axis(ic->attrs, ic->in[IN_Y].ndim) < 0)
        return prt_infer_error(ic, "axis %lld is out of range for a rank-%d input",
                               (long long)prt_attr_int(&ic->attrs[0]), ic->in[IN_Y].ndim);
    ic->out[0] = ic->in[IN_Y];
    return PRT_OK;
}

/* multiply, sum, subtract, multiply */
static int64_t softmax_bwd_flops(const prt_infer_ctx *ic) { return prt_flops_per_elem(ic, 4); }

/* One outer index, inner positions [i0, i1) (at most SB_BLOCK), the sums kept in
 * a small array so the loops run along contiguous memory. */
#define SB_BLOCK 256
static void softmax_bwd_block(const float *dy, const float *y, float *dx, int64_t len, int64_t inner, int64_t i0,
                              int64_t i1) {
    float sum[SB_BLOCK];
    int64_t w = i1 - i0;
    for (int64_t i = 0; i < w; i++) sum[i] = 0;
    for (int64_t k = 0; k < len; k++) {
        const float *d = dy + k * inner + i0, *s = y + k * inner + i0;
        for (int64_t i = 0; i < w; i++) sum[i] += d[i] * s[i];
    }
    for (int64_t k = 0; k < len; k++) {
        const float *d = dy + k * inner + i0, *s = y + k * inner + i0;
        float *o = dx + k * inner + i0;
        for (int64_t i = 0; i < w; i++) o[i] = s[i] * (d[i] - sum[i]);
    }
}

typedef struct softmax_bwd_args {
    const float *dy, *y;
    float *dx;
    int64_t len, inner, blocks; /* blocks of SB_BLOCK inner positions per outer index */
} softmax_bwd_args;

static void softmax_bwd_range(void *arg, int64_t lo, int64_t hi) {
    const softmax_bwd_args *a = arg;
    for (int64_t t = lo; t < hi; t++) {
        int64_t o = t / a->blocks, i0 = (t % a->blocks) * SB_BLOCK;
        int64_t i1 = i0 + SB_BLOCK < a->inner ? i0 + SB_BLOCK : a->inner;
        int64_t off = o * a->len * a->inner;
        softmax_bwd_block(a->dy + off, a->y + off, a->dx + off, a->len, a->inner, i0, i1);
    }
}

static int64_t softmax_bwd_setup(const prt_kernel_call *c, softmax_bwd_args *a) {
    const prt_shape *s = &c->in[IN_Y]->shape;
    int axis = softmax_bwd_axis(c->attrs, s->ndim);
    int64_t outer = 1;
    *a = (softmax_bwd_args){PRT_F32P(c->in[IN_DY]), PRT_F32P(c->in[IN_Y]), PRT_F32P(c->out[0]), s->d[axis], 1, 0};
    for (int i = 0; i < axis; i++) outer *= s->d[i];
    for (int i = axis + 1; i < s->ndim; i++) a->inner *= s->d[i];
    a->blocks = (a->inner + SB_BLOCK - 1) / SB_BLOCK;
    return outer * a->blocks;
}

static prt_status softmax_bwd_ref(const prt_kernel_call *c) {
    PRT_CHECK(prt_kernel_check_f32(c, "softmax_bwd"));
    softmax_bwd_args a;
    int64_t tasks = softmax_bwd_setup(c, &a);
    softmax_bwd_range(&a, 0, tasks);
    return PRT_OK;
}

static prt_status softmax_bwd_fast(const prt_kernel_call *c) {
    PRT_CHECK(prt_kernel_check_f32(c, "softmax_bwd"));
    softmax_bwd_args a;
    int64_t tasks = softmax_bwd_setup(c, &a);
    int64_t per_task = a.len * (a.inner < SB_BLOCK ? a.inner : SB_BLOCK);
    prt_parallel_range(tasks, PRT_PAR_MIN_ELEMS / 4 / per_task + 1, softmax_bwd_range, &a);
    return PRT_OK;
}

const prt_op_schema prt_op_softmax_bwd = {
    .name = "softmax_bwd",
    .doc = "gradient of softmax from its output: dx = y * (dy - sum(dy * y))",
    .min_in = 2,
    .max_in = 2,
    .n_out = 1,
    .attrs = prt_softmax_attrs,
    .n_attrs = 1,
    .infer = softmax_bwd_infer,
    .flops = softmax_bwd_flops,
    .inplace_in = IN_DY,
    .ref = {.run = softmax_bwd_ref},
    .fast = {.run = softmax_bwd_fast},
    .grad = NULL,
    .grad_note = "backward-only op",
};

/* bias_grad: the gradient of a per-channel bias, db[c] = sum of dy[n, c, ...]
 * over every axis but axis 1. It serves conv ([N, C, H, W]) and linear ([N, C])
 * alike. Input (dy) of rank 2 or more; no attributes. Sums are kept in double:
 * a channel of a large activation sums hundreds of thousands of values. */
#include "ops/ops_util.h"
#include "ops/cuda/cuda_ops.h"

/* N, C and the size S of the trailing axes */
static void bg_dims(const prt_shape *s, int64_t *n, int64_t *c, int64_t *sp) {
    *n = s->d[0];
    *c = s->d[1];
    *sp = 1;
    for (int i = 2; i < s->ndim; i++) *sp *= s->d[i];
}

static prt_status bg_infer(prt_infer_ctx *ic) {
    const prt_shape *dy = &ic->in[0];
    if (dy->ndim < 2) {
        char b[160];
        prt_shape_str(dy, b, sizeof b);
        return prt_infer_error(ic, "expects a gradient of rank 2 or more ([N, C, ...]), got %s", b);
    }
    ic->out[0] = prt_shape_make(1, &dy->d[1]);
    return PRT_OK;
}

/* one addition per element of dy */
static int64_t bg_flops(const prt_infer_ctx *ic) { return prt_ops_numel(&ic->in[0]); }

static prt_status bg_check(const prt_kernel_call *c) {
    PRT_CHECK(prt_kernel_check_f32(c, "bias_grad"));
    if (c->n_in != 1 || c->n_out != 1)
        return prt_error(c->ctx, PRT_ERR_INTERNAL, "bias_grad kernel: %d inputs and %d outputs, expected 1 and 1",
                         c->n_in, c->n_out);
    return PRT_OK;
}

static prt_status bg_ref(const prt_kernel_call *c) {
    PRT_CHECK(bg_check(c));
    int64_t n, ch, sp;
    bg_dims(&c->in[0]->shape, &n, &ch, &sp);
    const float *dy = PRT_F32P(c->in[0]);
    float *db = PRT_F32P(c->out[0]);
    for (int64_t k = 0; k < ch; k++) {
        double s = 0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < sp; j++) s += dy[(i * ch + k) * sp + j];
        db[k] = (float)s;
    }
    return PRT_OK;
}

typedef struct bg_job {
    const float *dy;
    float *db;
    int64_t n, ch, sp;
} bg_job;

/* Channels [lo, hi): each row of S values is summed in float (vectorised),
 * the rows in double. */
static void bg_range(void *arg, int64_t lo, int64_t hi) {
    const bg_job *j = arg;
    for (int64_t k = lo; k < hi; k++) {
        double s = 0;
        for (int64_t i = 0; i < j->n; i++) {
            const float *row = j->dy + (i * j->ch + k) * j->sp;
            float r = 0.0f;
#pragma omp simd reduction(+ : r)
            for (int64_t t = 0; t < j->sp; t++) r += row[t];
            s += r;
        }
        j->db[k] = (float)s;
    }
}

static prt_status bg_fast(const prt_kernel_call *c) {
    PRT_CHECK(bg_check(c));
    bg_job j = {.dy = PRT_F32P(c->in[0]), .db = PRT_F32P(c->out[0])};
    bg_dims(&c->in[0]->shape, &j.n, &j.ch, &j.sp);
    /* channels split evenly between threads; a small gradient stays on the
     * calling thread (an OpenMP region costs more than it saves there) */
    if (j.ch < 2 || j.n * j.sp * j.ch < 2 * PRT_PAR_MIN_ELEMS) {
        bg_range(&j, 0, j.ch);
        return PRT_OK;
    }
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < j.ch; k++) bg_range(&j, k, k + 1);
    return PRT_OK;
}

const prt_op_schema prt_op_bias_grad = {
    .name = "bias_grad",
    .doc = "gradient of a per-channel bias: dy summed over every axis but axis 1",
    .min_in = 1,
    .max_in = 1,
    .n_out = 1,
    .infer = bg_infer,
    .flops = bg_flops,
    .inplace_in = -1,
    .ref = {.run = bg_ref},
    .fast = {.run = bg_fast},
    .grad = NULL,
    .grad_note = "backward-only op",
    .cuda = PRT_CUDA_KERNEL(.run = prt_cuda_bias_grad),
    .cuda_bf16 = true,
};

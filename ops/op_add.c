/* add: elementwise sum of two or more inputs of the same shape (no
 * broadcasting). May run in place on input 0. */
#include "ops/ops_util.h"
#include "ops/cuda/cuda_ops.h"

static prt_status add_infer(prt_infer_ctx *ic) {
    for (int k = 1; k < ic->n_in; k++) {
        if (!prt_shape_eq(&ic->in[k], &ic->in[0])) {
            char a[160], b[160];
            prt_shape_str(&ic->in[k], a, sizeof a);
            prt_shape_str(&ic->in[0], b, sizeof b);
            return prt_infer_error(ic, "input %d has shape %s but input 0 has %s; add needs equal shapes", k, a, b);
        }
    }
    ic->out[0] = ic->in[0];
    return PRT_OK;
}

/* Every input's gradient is dy itself: no node, the value is shared. */
static prt_status add_grad(prt_grad_ctx *gc) {
    if (gc->dy[0] == -1) return PRT_OK;
    if (gc->dy[0] == PRT_GRAD_ONE) return prt_grad_not_loss(gc);
    int n = gc->g->nodes[gc->node].n_data_in;
    for (int k = 0; k < n; k++)
        if (prt_grad_wants(gc, k)) gc->dx[k] = gc->dy[0];
    return PRT_OK;
}

static int64_t add_flops(const prt_infer_ctx *ic) { return prt_flops_per_elem(ic, ic->n_in - 1); }

static prt_status add_ref(const prt_kernel_call *c) {
    PRT_CHECK(prt_kernel_check_f32(c, "add"));
    float *y = PRT_F32P(c->out[0]);
    int64_t n = prt_shape_count(&c->out[0]->shape);
    /* element by element over all inputs, so y may alias any input */
    for (int64_t i = 0; i < n; i++) {
        float s = PRT_F32P(c->in[0])[i];
        for (int k = 1; k < c->n_in; k++) s += PRT_F32P(c->in[k])[i];
        y[i] = s;
    }
    return PRT_OK;
}

typedef struct add_args { const prt_kernel_call *c; } add_args;

/* One pass per range: y = in0 + in1 + ... summed left to right, the order of
 * the reference, so both paths give the same bits. Within a range every
 * element is read before it is written, so y may alias any input. */
static void add_range(void *arg, int64_t lo, int64_t hi) {
    const prt_kernel_call *c = ((const add_args *)arg)->c;
    float *y = PRT_F32P(c->out[0]);
    const float *a = PRT_F32P(c->in[0]), *b = PRT_F32P(c->in[1]);
    if (c->n_in == 2) {
#pragma omp simd
        for (int64_t i = lo; i < hi; i++) y[i] = a[i] + b[i];
        return;
    }
    /* more inputs: accumulate through a cache-sized block so y may alias any input */
    float acc[512];
    for (int64_t base = lo; base < hi; base += 512) {
        int64_t len = hi - base < 512 ? hi - base : 512;
#pragma omp simd
        for (int64_t i = 0; i < len; i++) acc[i] = a[base + i] + b[base + i];
        for (int k = 2; k < c->n_in; k++) {
            const float *x = PRT_F32P(c->in[k]) + base;
#pragma omp simd
            for (int64_t i = 0; i < len; i++) acc[i] += x[i];
        }
        for (int64_t i = 0; i < len; i++) y[base + i] = acc[i];
    }
}

static prt_status add_fast(const prt_kernel_call *c) {
    PRT_CHECK(prt_kernel_check_f32(c, "add"));
    add_args a = {c};
    prt_parallel_range(prt_shape_count(&c->out[0]->shape), PRT_PAR_MIN_ELEMS, add_range, &a);
    return PRT_OK;
}

const prt_op_schema prt_op_add = {
    .name = "add",
    .doc = "elementwise sum of two or more tensors of the same shape",
    .min_in = 2,
    .max_in = PRT_VARIADIC,
    .n_out = 1,
    .infer = add_infer,
    .flops = add_flops,
    .inplace_in = 0,
    .ref = {.run = add_ref},
    .fast = {.run = add_fast},
    .grad = add_grad,
    .cheap = true,
    .cuda = PRT_CUDA_KERNEL(.run = prt_cuda_add),
    .cuda_bf16 = true,
};

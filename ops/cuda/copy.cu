/* CUDA kernels of the ops that move elements without changing them: concat,
 * slice, flatten, reshape, reshape_like (the semantics of ops/op_concat.c,
 * op_slice.c and ops_util.c's copy kernels). Nothing moves where the planner
 * put an output on its input, or a concat input straight into its slice of
 * the output (schema->input_views). */
#include "ops/cuda/cuda_kern.cuh"

#include <string.h>

/* bf16 (scheduler/precision.c): these ops move elements unchanged, so they copy
 * 2- or 4-byte words; the dtype of output 0 decides, and the other data inputs
 * (shape-only: slice's and reshape_like's second) may have any dtype. */
static prt_status check_moved(const prt_kernel_call *c, const char *op, int in_lo, int in_hi, int n_in_min,
                              int n_in_max, prt_dtype *dt) {
    if (c->n_in < n_in_min || c->n_in > n_in_max || c->n_out != 1)
        return prt_error(c->ctx, PRT_ERR_INTERNAL, "%s CUDA kernel: called with %d inputs and %d outputs", op,
                         c->n_in, c->n_out);
    *dt = c->out[0]->dtype;
    if (*dt != PRT_F32 && *dt != PRT_BF16)
        return prt_error(c->ctx, PRT_ERR_UNSUPPORTED, "%s CUDA kernel: output is %s; f32 and bf16 are supported", op,
                         prt_dtype_name(*dt));
    PRT_CHECK(prt_cuk_check_tensor(c, op, c->out[0], "output", 0, *dt));
    for (int k = in_lo; k < in_hi && k < c->n_in; k++) PRT_CHECK(prt_cuk_check_tensor(c, op, c->in[k], "input", k, *dt));
    return PRT_OK;
}

/* ---- flatten, reshape, reshape_like: one device copy or nothing ------------- */

static prt_status copy_or_nothing(const prt_kernel_call *c, int in, int n_in, const char *op) {
    prt_dtype dt = PRT_F32;
    PRT_CHECK(check_moved(c, op, in, in + 1, n_in, n_in, &dt));
    int64_t n = prt_shape_count(&c->out[0]->shape);
    if (prt_shape_count(&c->in[in]->shape) != n) {
        char a[160], b[160];
        prt_shape_str(&c->in[in]->shape, a, sizeof a);
        prt_shape_str(&c->out[0]->shape, b, sizeof b);
        return prt_error(c->ctx, PRT_ERR_SHAPE, "%s CUDA kernel: input %s and output %s differ in size", op, a, b);
    }
    const void *x = c->in[in]->data;
    void *y = c->out[0]->data;
    if (x == y || n == 0) return PRT_OK;
    PRT_CUK_CHECK(c->ctx, op,
                  cudaMemcpyAsync(y, x, (size_t)n * prt_dtype_size(dt), cudaMemcpyDeviceToDevice, prt_cuk_stream(c)));
    return PRT_OK;
}

extern "C" prt_status prt_cuda_flatten(const prt_kernel_call *c) { return copy_or_nothing(c, 0, 1, "flatten"); }
extern "C" prt_status prt_cuda_reshape(const prt_kernel_call *c) { return copy_or_nothing(c, 0, 1, "reshape"); }
extern "C" prt_status prt_cuda_reshape_like(const prt_kernel_call *c) {
    return copy_or_nothing(c, 0, 2, "reshape_like");
}

/* ---- the axis of concat and slice ------------------------------------------ */

static int axis_of(const prt_attr *a, int ndim) {
    int64_t v = prt_attr_int(a);
    if (v < 0) v += ndim;
    return v >= 0 && v < ndim ? (int)v : -1;
}

/* outer: product of the dims before axis; inner: after it */
static void outer_inner(const prt_shape *s, int axis, int64_t *outer, int64_t *inner) {
    *outer = *inner = 1;
    for (int i = 0; i < axis; i++) *outer *= s->d[i];
    for (int i = axis + 1; i < s->ndim; i++) *inner *= s->d[i];
}

/* ---- slice: outer rows of y_run elements, from offset in rows of x_run ------ */

template <class T>
__global__ void rows_copy_k(const T *x, T *y, int64_t outer, int64_t x_run, int64_t y_run, int64_t offset) {
    PRT_CUK_FOR(e, outer * y_run) {
        int64_t o = e / y_run, i = e - o * y_run;
        y[e] = x[o * x_run + offset + i];
    }
}

extern "C" prt_status prt_cuda_slice(const prt_kernel_call *c) {
    const char *op = "slice";
    prt_dtype dt = PRT_F32;
    PRT_CHECK(check_moved(c, op, 0, 1, 2, 2, &dt));
    const prt_shape *xs = &c->in[0]->shape, *ys = &c->out[0]->shape;
    int axis = axis_of(&c->attrs[0], xs->ndim);
    int64_t start = prt_attr_int(&c->attrs[1]);
    bool ok = axis >= 0 && ys->ndim == xs->ndim && start >= 0;
    for (int i = 0; ok && i < xs->ndim; i++) ok = i == axis || xs->d[i] == ys->d[i];
    if (ok) ok = start + ys->d[axis] <= xs->d[axis];
    if (!ok) {
        char a[160], b[160];
        prt_shape_str(xs, a, sizeof a);
        prt_shape_str(ys, b, sizeof b);
        return prt_error(c->ctx, PRT_ERR_SHAPE, "%s CUDA kernel: cannot take %s from %s at %lld along axis %lld", op, b,
                         a, (long long)start, (long long)prt_attr_int(&c->attrs[0]));
    }
    int64_t outer, inner;
    outer_inner(xs, axis, &outer, &inner);
    int64_t x_run = xs->d[axis] * inner, y_run = ys->d[axis] * inner, n = outer * y_run;
    if (n == 0) return PRT_OK;
    /* bf16 moves as 16-bit words */
    if (dt == PRT_BF16)
        rows_copy_k<<<prt_cuk_blocks(n), PRT_CUK_THREADS, 0, prt_cuk_stream(c)>>>(
            (const uint16_t *)c->in[0]->data, (uint16_t *)c->out[0]->data, outer, x_run, y_run, start * inner);
    else
        rows_copy_k<<<prt_cuk_blocks(n), PRT_CUK_THREADS, 0, prt_cuk_stream(c)>>>(
            (const float *)c->in[0]->data, (float *)c->out[0]->data, outer, x_run, y_run, start * inner);
    PRT_CUK_LAUNCHED(c->ctx, op, "rows_copy_k");
    return PRT_OK;
}

/* ---- concat: every input in one launch ------------------------------------- */

/* Input k fills columns [at[k], at[k+1]) of each of the outer rows of out_run
 * elements; skip[k]: already there (a planned view). Passed by value. */
template <class T> struct concat_table {
    const T *x[PRT_VARIADIC];
    int64_t at[PRT_VARIADIC + 1];
    unsigned char skip[PRT_VARIADIC];
    int n;
};

template <class T> __global__ void concat_k(concat_table<T> t, T *y, int64_t outer, int64_t out_run) {
    PRT_CUK_FOR(e, outer * out_run) {
        int64_t o = e / out_run, col = e - o * out_run;
        int lo = 0, hi = t.n; /* the input whose columns hold col */
        while (hi - lo > 1) {
            int mid = (lo + hi) / 2;
            if (t.at[mid] <= col) lo = mid;
            else hi = mid;
        }
        if (t.skip[lo]) continue;
        int64_t run = t.at[lo + 1] - t.at[lo];
        y[e] = t.x[lo][o * run + col - t.at[lo]];
    }
}

template <class T> static prt_status concat_run(const prt_kernel_call *c) {
    const char *op = "concat";
    const prt_shape *ys = &c->out[0]->shape;
    int axis = axis_of(&c->attrs[0], ys->ndim);
    if (axis < 0)
        return prt_error(c->ctx, PRT_ERR_SHAPE, "concat CUDA kernel: axis %lld is out of range for rank %d",
                         (long long)prt_attr_int(&c->attrs[0]), ys->ndim);
    int64_t outer, inner;
    outer_inner(ys, axis, &outer, &inner);
    concat_table<T> t;
    memset(&t, 0, sizeof t);
    t.n = c->n_in;
    T *y = (T *)c->out[0]->data;
    int64_t along = 0;
    bool all_skipped = true;
    for (int k = 0; k < c->n_in; k++) {
        const prt_shape *s = &c->in[k]->shape;
        bool ok = s->ndim == ys->ndim;
        for (int i = 0; ok && i < s->ndim; i++) ok = i == axis || s->d[i] == ys->d[i];
        if (!ok) {
            char a[160], b[160];
            prt_shape_str(s, a, sizeof a);
            prt_shape_str(ys, b, sizeof b);
            return prt_error(c->ctx, PRT_ERR_SHAPE, "concat CUDA kernel: input %d is %s, which does not fit output %s "
                             "along axis %d", k, a, b, axis);
        }
        t.x[k] = (const T *)c->in[k]->data;
        t.at[k] = along * inner;
        /* planned as a view: the producer wrote it in place */
        t.skip[k] = outer == 1 && t.x[k] == y + t.at[k];
        all_skipped = all_skipped && t.skip[k];
        along += s->d[axis];
    }
    if (along != ys->d[axis])
        return prt_error(c->ctx, PRT_ERR_SHAPE, "concat CUDA kernel: inputs add up to %lld along axis %d, output has %lld",
                         (long long)along, axis, (long long)ys->d[axis]);
    t.at[c->n_in] = along * inner;
    int64_t out_run = along * inner, n = outer * out_run;
    if (n == 0 || all_skipped) return PRT_OK;
    concat_k<T><<<prt_cuk_blocks(n), PRT_CUK_THREADS, 0, prt_cuk_stream(c)>>>(t, y, outer, out_run);
    PRT_CUK_LAUNCHED(c->ctx, op, "concat_k");
    return PRT_OK;
}

extern "C" prt_status prt_cuda_concat(const prt_kernel_call *c) {
    prt_dtype dt = PRT_F32;
    PRT_CHECK(check_moved(c, "concat", 0, PRT_VARIADIC, 2, PRT_VARIADIC, &dt));
    /* bf16 moves as 16-bit words */
    return dt == PRT_BF16 ? concat_run<uint16_t>(c) : concat_run<float>(c);
}

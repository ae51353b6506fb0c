/* CUDA kernels of the element-wise ops: relu, sigmoid, tanh and their
 * backward ops, scale, add, mul/sub/div on equal shapes, reduce_to, dropout and
 * dropout_bwd. Same expressions as the CPU kernels (ops/op_*.c), one element
 * per thread in a grid-stride loop; every element is read before it is written
 * at the same index, so the outputs may alias inputs as the planner allows. */
#include "ops/cuda/cuda_kern.cuh"

#include <string.h>

/* ---- one-input and two-input maps ----------------------------------------- */

/* T: float or __nv_bfloat16 storage, float math (cuda_kern.cuh) */
template <class T, class F> __global__ void unary_k(const T *x, T *y, int64_t n, F f) {
    PRT_CUK_FOR(i, n) prt_cuk_st(y + i, f(prt_cuk_ld(x + i)));
}

template <class T, class F> __global__ void binary_k(const T *a, const T *b, T *y, int64_t n, F f) {
    PRT_CUK_FOR(i, n) prt_cuk_st(y + i, f(prt_cuk_ld(a + i), prt_cuk_ld(b + i)));
}

struct relu_f {
    __device__ float operator()(float x) const { return x < 0 ? 0.0f : x; } /* NaN passes */
};
struct sigmoid_f {
    __device__ float operator()(float x) const { return 1.0f / (1.0f + expf(-x)); }
};
struct tanh_f {
    __device__ float operator()(float x) const { return tanhf(x); }
};
struct scale_f {
    float by;
    __device__ float operator()(float x) const { return by * x; }
};
struct relu_bwd_f {
    __device__ float operator()(float dy, float y) const { return y > 0 ? dy : 0.0f; }
};
struct sigmoid_bwd_f {
    __device__ float operator()(float dy, float y) const { return dy * (y * (1.0f - y)); }
};
struct tanh_bwd_f {
    __device__ float operator()(float dy, float y) const { return dy * (1.0f - y * y); }
};
struct mul_f {
    __device__ float operator()(float a, float b) const { return a * b; }
};
struct sub_f {
    __device__ float operator()(float a, float b) const { return a - b; }
};
struct div_f {
    __device__ float operator()(float a, float b) const { return a / b; }
};

template <class F> static prt_status run_unary(const prt_kernel_call *c, const char *op, F f) {
    prt_dtype dt = PRT_F32;
    PRT_CHECK(prt_cuk_check_float(c, op, 1, 1, 1, &dt));
    PRT_CHECK(prt_cuk_check_same_count(c, op, 1));
    int64_t n = prt_shape_count(&c->out[0]->shape);
    if (n == 0) return PRT_OK;
    PRT_CUK_DISPATCH(dt, T,
                     unary_k<<<prt_cuk_blocks(n), PRT_CUK_THREADS, 0, prt_cuk_stream(c)>>>(
                         (const T *)c->in[0]->data, (T *)c->out[0]->data, n, f));
    PRT_CUK_LAUNCHED(c->ctx, op, "unary_k");
    return PRT_OK;
}

/* Two inputs of the output's shape (no broadcasting on the GPU). */
template <class F> static prt_status run_binary(const prt_kernel_call *c, const char *op, F f) {
    prt_dtype dt = PRT_F32;
    PRT_CHECK(prt_cuk_check_float(c, op, 2, 2, 1, &dt));
    for (int k = 0; k < 2; k++) {
        if (prt_shape_eq(&c->in[k]->shape, &c->out[0]->shape)) continue;
        char a[160], b[160], y[160];
        prt_shape_str(&c->in[0]->shape, a, sizeof a);
        prt_shape_str(&c->in[1]->shape, b, sizeof b);
        prt_shape_str(&c->out[0]->shape, y, sizeof y);
        return prt_error(c->ctx, PRT_ERR_UNSUPPORTED,
                         "%s CUDA kernel: inputs %s and %s (output %s): broadcasting is not supported on the GPU, "
                         "only inputs of equal shapes", op, a, b, y);
    }
    int64_t n = prt_shape_count(&c->out[0]->shape);
    if (n == 0) return PRT_OK;
    PRT_CUK_DISPATCH(dt, T,
                     binary_k<<<prt_cuk_blocks(n), PRT_CUK_THREADS, 0, prt_cuk_stream(c)>>>(
                         (const T *)c->in[0]->data, (const T *)c->in[1]->data, (T *)c->out[0]->data, n, f));
    PRT_CUK_LAUNCHED(c->ctx, op, "binary_k");
    return PRT_OK;
}

extern "C" prt_status prt_cuda_relu(const prt_kernel_call *c) { return run_unary(c, "relu", relu_f()); }
extern "C" prt_status prt_cuda_sigmoid(const prt_kernel_call *c) { return run_unary(c, "sigmoid", sigmoid_f()); }
extern "C" prt_status prt_cuda_tanh(const prt_kernel_call *c) { return run_unary(c, "tanh", tanh_f()); }
extern "C" prt_status prt_cuda_scale(const prt_kernel_call *c) {
    if (c->attrs[0].type != PRT_ATTR_FLOAT)
        return prt_error(c->ctx, PRT_ERR_INTERNAL, "scale CUDA kernel: attribute `by` is not a number");
    return run_unary(c, "scale", scale_f{(float)prt_attr_float(&c->attrs[0])});
}
extern "C" prt_status prt_cuda_relu_bwd(const prt_kernel_call *c) { return run_binary(c, "relu_bwd", relu_bwd_f()); }
extern "C" prt_status prt_cuda_sigmoid_bwd(const prt_kernel_call *c) {
    return run_binary(c, "sigmoid_bwd", sigmoid_bwd_f());
}
extern "C" prt_status prt_cuda_tanh_bwd(const prt_kernel_call *c) { return run_binary(c, "tanh_bwd", tanh_bwd_f()); }
extern "C" prt_status prt_cuda_mul(const prt_kernel_call *c) { return run_binary(c, "mul", mul_f()); }
extern "C" prt_status prt_cuda_sub(const prt_kernel_call *c) { return run_binary(c, "sub", sub_f()); }
extern "C" prt_status prt_cuda_div(const prt_kernel_call *c) { return run_binary(c, "div", div_f()); }

/* ---- add: two or more inputs ------------------------------------------------- */

/* The input pointers travel by value in the launch (64 * 8 bytes, well under
 * the 4 KiB parameter limit): no table to upload, nothing to free. */
template <class T> struct add_inputs {
    const T *x[PRT_VARIADIC];
    int n;
};

/* bf16: summed in float, rounded once */
template <class T> __global__ void add_k(add_inputs<T> in, T *y, int64_t n) {
    PRT_CUK_FOR(i, n) {
        float s = prt_cuk_ld(in.x[0] + i);
        for (int k = 1; k < in.n; k++) s += prt_cuk_ld(in.x[k] + i); /* left to right, as the CPU */
        prt_cuk_st(y + i, s);
    }
}

template <class T> static void add_launch(const prt_kernel_call *c, int64_t n) {
    add_inputs<T> in;
    memset(&in, 0, sizeof in);
    in.n = c->n_in;
    for (int k = 0; k < c->n_in; k++) in.x[k] = (const T *)c->in[k]->data;
    add_k<T><<<prt_cuk_blocks(n), PRT_CUK_THREADS, 0, prt_cuk_stream(c)>>>(in, (T *)c->out[0]->data, n);
}

extern "C" prt_status prt_cuda_add(const prt_kernel_call *c) {
    prt_dtype dt = PRT_F32;
    PRT_CHECK(prt_cuk_check_float(c, "add", 2, PRT_VARIADIC, 1, &dt));
    PRT_CHECK(prt_cuk_check_same_count(c, "add", c->n_in));
    int64_t n = prt_shape_count(&c->out[0]->shape);
    if (n == 0) return PRT_OK;
    PRT_CUK_DISPATCH(dt, T, add_launch<T>(c, n));
    PRT_CUK_LAUNCHED(c->ctx, "add", "add_k");
    return PRT_OK;
}

/* ---- reduce_to: x summed down to like's shape ------------------------------ */

/* One thread per output element, summing in double in x's order: the same
 * bits as the CPU kernels. Not in place unless nothing is summed (a summed
 * output would overwrite elements other threads still read). */
__global__ void reduce_to_k(prt_reduce_geom g, const float *x, float *y) {
    PRT_CUK_FOR(o, g.n_out) y[o] = (float)prt_reduce_geom_sum(&g, x, o);
}

extern "C" prt_status prt_cuda_reduce_to(const prt_kernel_call *c) {
    PRT_CHECK(prt_cuk_check_f32(c, "reduce_to", 2, 2, 1));
    const prt_shape *xs = &c->in[0]->shape, *ys = &c->out[0]->shape;
    prt_reduce_geom g;
    prt_reduce_geom_init(&g, xs, ys);
    if (g.n_out != prt_shape_count(ys)) {
        char a[160], b[160];
        prt_shape_str(xs, a, sizeof a);
        prt_shape_str(ys, b, sizeof b);
        return prt_error(c->ctx, PRT_ERR_SHAPE, "reduce_to CUDA kernel: cannot sum %s down to %s", a, b);
    }
    const float *x = PRT_F32P(c->in[0]);
    float *y = PRT_F32P(c->out[0]);
    if (g.n_out == 0) return PRT_OK;
    if (g.nr == 0) { /* nothing summed: a copy, or nothing at all in place */
        if (x != y)
            PRT_CUK_CHECK(c->ctx, "reduce_to",
                          cudaMemcpyAsync(y, x, (size_t)g.n_out * sizeof(float), cudaMemcpyDeviceToDevice,
                                          prt_cuk_stream(c)));
        return PRT_OK;
    }
    if (x == y)
        return prt_error(c->ctx, PRT_ERR_INTERNAL, "reduce_to CUDA kernel: a summing reduction cannot run in place");
    reduce_to_k<<<prt_cuk_blocks(g.n_out), PRT_CUK_THREADS, 0, prt_cuk_stream(c)>>>(g, x, y);
    PRT_CUK_LAUNCHED(c->ctx, "reduce_to", "reduce_to_k");
    return PRT_OK;
}

/* ---- dropout --------------------------------------------------------------- */

/* base: the counter base of this step from the call's slot of the VM's step
 * block (prt_dropout_step_values), so a launch captured in a CUDA graph follows
 * the step; NULL: k.base as passed. */
template <class T>
__global__ void dropout_k(const T *x, T *y, int64_t n, uint64_t key, prt_cuda_ctr k, float p, float keep_scale,
                          const uint64_t *base) {
    if (base) k.base = *base;
    PRT_CUK_FOR(i, n) prt_cuk_st(y + i, prt_cuk_ld(x + i) * prt_cuda_dropout_mult(key, &k, i, p, keep_scale));
}

/* p already 0 outside training (the identity then: a copy unless in place). */
static prt_status dropout_launch(const prt_kernel_call *c, const char *op, uint64_t key, float p) {
    const void *x = c->in[0]->data;
    void *y = c->out[0]->data;
    prt_dtype dt = c->out[0]->dtype;
    int64_t n = prt_shape_count(&c->in[0]->shape);
    if (n == 0) return PRT_OK;
    if (p == 0.0f) {
        if (x != y)
            PRT_CUK_CHECK(c->ctx, op,
                          cudaMemcpyAsync(y, x, (size_t)n * prt_dtype_size(dt), cudaMemcpyDeviceToDevice,
                                          prt_cuk_stream(c)));
        return PRT_OK;
    }
    /* the counters of ops/ops_util.h, computed on the host as the CPU kernels do */
    prt_dropout_ctr hk = prt_dropout_counters(c, n);
    prt_cuda_ctr k = {hk.base, hk.per, hk.stride, hk.offset};
    /* p = 1 drops everything; the scale is then never used */
    float keep_scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    PRT_CUK_DISPATCH(dt, T,
                     dropout_k<T><<<prt_cuk_blocks(n), PRT_CUK_THREADS, 0, prt_cuk_stream(c)>>>(
                         (const T *)x, (T *)y, n, key, k, p, keep_scale, (const uint64_t *)c->step_slot));
    PRT_CUK_LAUNCHED(c->ctx, op, "dropout_k");
    return PRT_OK;
}

extern "C" prt_status prt_cuda_dropout(const prt_kernel_call *c) {
    prt_dtype dt = PRT_F32;
    PRT_CHECK(prt_cuk_check_float(c, "dropout", 1, 1, 1, &dt));
    PRT_CHECK(prt_cuk_check_same_count(c, "dropout", 1));
    float p = (float)prt_attr_float(&c->attrs[0]);
    return dropout_launch(c, "dropout", c->rng_key, c->training ? p : 0.0f);
}

/* The forward's key rebuilt from its node name (`of`), as ops/op_dropout_bwd.c. */
extern "C" prt_status prt_cuda_dropout_bwd(const prt_kernel_call *c) {
    prt_dtype dt = PRT_F32;
    PRT_CHECK(prt_cuk_check_float(c, "dropout_bwd", 1, 1, 1, &dt));
    PRT_CHECK(prt_cuk_check_same_count(c, "dropout_bwd", 1));
    const char *of = c->attrs[1].s;
    if (!of) return prt_error(c->ctx, PRT_ERR_INVALID, "dropout_bwd CUDA kernel: attribute `of` is not set");
    float p = (float)prt_attr_float(&c->attrs[0]);
    return dropout_launch(c, "dropout_bwd", prt_hash_str(of, c->ctx->seed), c->training ? p : 0.0f);
}

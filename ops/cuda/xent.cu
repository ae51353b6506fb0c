/* CUDA kernels of softmax_xent (the fused softmax cross-entropy loss with label
 * smoothing) and softmax_xent_bwd, the semantics of ops/op_softmax_xent.c:
 * per sample, the maximum is subtracted before exp and the sums are in double,
 * so large logits neither overflow nor lose the loss; the mean over the batch
 * sums the per-sample losses in sample order.
 *
 * Labels live on the GPU, so a label outside [0, classes) cannot be reported
 * without synchronising; such a sample's loss (and the mean) and its gradient
 * row are NaN instead, which no training run mistakes for a result. */
#include "ops/cuda/cuda_kern.cuh"

#include <math.h>

enum { IN_LOGITS, IN_LABELS, IN_DLOSS };

#define XENT_THREADS 256

/* Sum (or max) over the block; every thread gets the result. sh holds one
 * value per warp. */
template <class T, class Op> __device__ T block_reduce(T v, T *sh, Op op) {
    for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nw = blockDim.x / 32;
    __syncthreads(); /* sh may still be read from a previous reduction */
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    T r = sh[0];
    for (int w = 1; w < nw; w++) r = op(r, sh[w]);
    return r;
}
struct sum_op {
    template <class T> __device__ T operator()(T a, T b) const { return a + b; }
};
struct max_op {
    __device__ float operator()(float a, float b) const { return b > a ? b : a; }
};

/* One block per sample: probabilities and the sample's loss into loss[n]. */
__global__ void xent_fwd_k(const float *x, const int32_t *lab, float *probs, double *loss, int64_t N, int64_t C,
                           double s) {
    __shared__ float shf[XENT_THREADS / 32];
    __shared__ double shd[XENT_THREADS / 32];
    for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
        const float *xr = x + n * C;
        float *pr = probs + n * C;
        float m = xr[0];
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x) m = xr[c] > m ? xr[c] : m;
        m = block_reduce(m, shf, max_op());
        double sum = 0, dot = 0;
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
            sum += exp((double)xr[c] - m);
            dot += xr[c];
        }
        sum = block_reduce(sum, shd, sum_op());
        dot = block_reduce(dot, shd, sum_op());
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x) pr[c] = (float)(exp((double)xr[c] - m) / sum);
        if (threadIdx.x == 0) {
            int32_t l = lab[n];
            double lse = m + log(sum);
            loss[n] = (l < 0 || l >= C) ? nan("") : lse - ((1 - s) * xr[l] + s / (double)C * dot);
        }
    }
}

/* The mean in sample order, whatever the split above: one thread. */
__global__ void xent_mean_k(const double *loss, int64_t N, float *out) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    double total = 0;
    for (int64_t n = 0; n < N; n++) total += loss[n];
    out[0] = (float)(total / (double)N);
}

/* Dtypes and shapes of both ops: x [N, C] f32, labels [N] or [N, 1] i32. */
static prt_status xent_check(const prt_kernel_call *c, const char *op, int n_in_max, int n_out) {
    if (c->n_in < 2 || c->n_in > n_in_max || c->n_out != n_out)
        return prt_error(c->ctx, PRT_ERR_INTERNAL, "%s CUDA kernel: called with %d inputs and %d outputs", op,
                         c->n_in, c->n_out);
    for (int k = 0; k < c->n_in; k++)
        PRT_CHECK(prt_cuk_check_tensor(c, op, c->in[k], k == IN_LABELS ? "input (labels)" : "input", k,
                                       k == IN_LABELS ? PRT_I32 : PRT_F32));
    for (int k = 0; k < c->n_out; k++) PRT_CHECK(prt_cuk_check_tensor(c, op, c->out[k], "output", k, PRT_F32));
    const prt_shape *x = &c->in[IN_LOGITS]->shape, *l = &c->in[IN_LABELS]->shape;
    bool lab_ok = (l->ndim == 1 || (l->ndim == 2 && l->d[1] == 1)) && x->ndim == 2 && l->d[0] == x->d[0];
    if (x->ndim != 2 || x->d[1] < 1 || !lab_ok) {
        char a[160], b[160];
        prt_shape_str(x, a, sizeof a);
        prt_shape_str(l, b, sizeof b);
        return prt_error(c->ctx, PRT_ERR_SHAPE, "%s CUDA kernel: expects [N, classes] and labels [N] or [N, 1], got %s "
                         "and %s", op, a, b);
    }
    return PRT_OK;
}

extern "C" prt_status prt_cuda_softmax_xent(const prt_kernel_call *c) {
    const char *op = "softmax_xent";
    PRT_CHECK(xent_check(c, op, 2, 2));
    const prt_shape *xs = &c->in[IN_LOGITS]->shape;
    int64_t N = xs->d[0], C = xs->d[1];
    if (prt_shape_count(&c->out[0]->shape) != 1 || !prt_shape_eq(&c->out[1]->shape, xs))
        return prt_error(c->ctx, PRT_ERR_SHAPE, "%s CUDA kernel: outputs must be the loss [1] and probs like logits",
                         op);
    size_t need = (size_t)N * sizeof(double);
    if (!c->workspace || c->workspace_size < need)
        return prt_error(c->ctx, PRT_ERR_INTERNAL, "%s CUDA kernel: needs a device workspace of %zu bytes (N = %lld "
                         "doubles), got %zu", op, need, (long long)N, c->workspace ? c->workspace_size : (size_t)0);
    if (N == 0) return PRT_OK;
    double *loss = (double *)c->workspace;
    unsigned blocks = (unsigned)(N < 65536 ? N : 65536);
    xent_fwd_k<<<blocks, XENT_THREADS, 0, prt_cuk_stream(c)>>>(
        PRT_F32P(c->in[IN_LOGITS]), (const int32_t *)prt_tensor_data(c->in[IN_LABELS]), PRT_F32P(c->out[1]), loss, N,
        C, prt_attr_float(&c->attrs[0]));
    PRT_CUK_LAUNCHED(c->ctx, op, "xent_fwd_k");
    xent_mean_k<<<1, 1, 0, prt_cuk_stream(c)>>>(loss, N, PRT_F32P(c->out[0]));
    PRT_CUK_LAUNCHED(c->ctx, op, "xent_mean_k");
    return PRT_OK;
}

/* dx = (probs - target) * dloss / N, element by element (dx may be probs). */
__global__ void xent_bwd_k(const float *probs, const int32_t *lab, const float *dloss, float *dx, int64_t N,
                           int64_t C, float off, float on_extra) {
    float scale = (float)((dloss ? (double)dloss[0] : 1.0) / (double)N);
    PRT_CUK_FOR(i, N * C) {
        int64_t n = i / C, cl = i - n * C;
        int32_t l = lab[n];
        float p = probs[i];
        if (l < 0 || l >= C) dx[i] = nanf("");
        else dx[i] = cl == l ? (p - off - on_extra) * scale : (p - off) * scale;
    }
}

extern "C" prt_status prt_cuda_softmax_xent_bwd(const prt_kernel_call *c) {
    const char *op = "softmax_xent_bwd";
    PRT_CHECK(xent_check(c, op, 3, 1));
    const prt_shape *ps = &c->in[IN_LOGITS]->shape;
    int64_t N = ps->d[0], C = ps->d[1];
    if (!prt_shape_eq(&c->out[0]->shape, ps))
        return prt_error(c->ctx, PRT_ERR_SHAPE, "%s CUDA kernel: the output must have the shape of probs", op);
    if (c->n_in > IN_DLOSS && prt_shape_count(&c->in[IN_DLOSS]->shape) != 1)
        return prt_error(c->ctx, PRT_ERR_SHAPE, "%s CUDA kernel: dloss must hold one number", op);
    if (N * C == 0) return PRT_OK;
    double s = prt_attr_float(&c->attrs[0]);
    const float *dloss = c->n_in > IN_DLOSS ? PRT_F32P(c->in[IN_DLOSS]) : NULL;
    xent_bwd_k<<<prt_cuk_blocks(N * C), PRT_CUK_THREADS, 0, prt_cuk_stream(c)>>>(
        PRT_F32P(c->in[IN_LOGITS]), (const int32_t *)prt_tensor_data(c->in[IN_LABELS]), dloss, PRT_F32P(c->out[0]), N,
        C, (float)(s / (double)C), (float)(1 - s));
    PRT_CUK_LAUNCHED(c->ctx, op, "xent_bwd_k");
    return PRT_OK;
}

// batchnorm_relu and batchnorm_relu_bwd on CUDA (ops/op_batchnorm_relu.c,
// op_batchnorm_relu_bwd.c): the CPU kernels' semantics in one block per
// channel, so that the statistics, the running update and the element passes
// of a channel need no buffer between launches:
//  - forward in training: one read of x for the batch mean and biased
//    variance (sums in double around the channel's first value, as
//    op_batchnorm_bwd.c's statistics), the running update by momentum with
//    the unbiased variance (none on a RECOMPUTE), then one read of x and one
//    write of y = max((x - mean) a + shift, 0), a = scale / sqrt(var + eps).
//    batchnorm then relu on cuDNN reads x twice, writes the intermediate,
//    and relu reads and writes it again: the fusion saves a read and a write
//    of the tensor, and the tensor itself;
//  - forward outside training: one element-wise pass with the running
//    statistics;
//  - backward: the mask y > 0 is applied to dy as it is read (relu_bwd is
//    never formed): one pass for the statistics and the two sums, one for dx.
//    In training the statistics are the batch's, recomputed from x, and dx has
//    their dependence on x; outside training the running ones, as constants.
//    dx may be dy's memory: each thread reads dy[e] before it writes dx[e].
// The element kernels are templates over the storage type (float, and
// __nv_bfloat16 for the bf16 path), with float arithmetic and double sums;
// only float is dispatched. Synchronised batch norm is PRT_ERR_UNSUPPORTED on
// CUDA, as for batchnorm (ops/cuda/cudnn_bn.c).
#include "ops/cuda/cuda_kern.cuh"

#include <cuda_bf16.h>

// ops/bwd_util.h (which includes oneDNN's headers, not for nvcc)
extern "C" bool prt_bn_syncs(const prt_kernel_call *c);

namespace {

const int kThreads = 512;

__device__ __forceinline__ float ld(float v) { return v; }
__device__ __forceinline__ float ld(__nv_bfloat16 v) { return __bfloat162float(v); }
template <class T> __device__ __forceinline__ T st(float v);
template <> __device__ __forceinline__ float st<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 st<__nv_bfloat16>(float v) { return __float2bfloat16(v); }

// the relu op's expression: -0 stays -0, NaN propagates
__device__ __forceinline__ float relu1(float v) { return v < 0.0f ? 0.0f : v; }

// element t of channel k in an [n, c, sp] tensor
__device__ __forceinline__ int64_t elem(int64_t t, int64_t k, int64_t c, int64_t sp) {
    return ((t / sp) * c + k) * sp + t % sp;
}

// Sums s[0..nv) of the block's threads; the totals in s[i * kThreads].
template <int NV> __device__ void block_sum(double (*s)[kThreads]) {
    __syncthreads();
    for (int half = kThreads / 2; half > 0; half /= 2) {
        if ((int)threadIdx.x < half)
            for (int i = 0; i < NV; i++) s[i][threadIdx.x] += s[i][threadIdx.x + half];
        __syncthreads();
    }
}

struct fwd_args {
    const float *scale, *shift;
    float *rmean, *rvar; // running statistics: read outside training, updated in it unless NULL
    float eps, momentum, unbias;
    int64_t n, c, sp;
};

template <class T> __global__ void __launch_bounds__(kThreads) bnr_fwd_train(const T *x, T *y, fwd_args a) {
    __shared__ double s[2][kThreads];
    __shared__ float stats[2];
    int64_t k = blockIdx.x, m = a.n * a.sp;
    double x0 = ld(x[k * a.sp]), s1 = 0, s2 = 0;
    for (int64_t t = threadIdx.x; t < m; t += blockDim.x) {
        double d = (double)ld(x[elem(t, k, a.c, a.sp)]) - x0;
        s1 += d;
        s2 += d * d;
    }
    s[0][threadIdx.x] = s1;
    s[1][threadIdx.x] = s2;
    block_sum<2>(s);
    if (threadIdx.x == 0) {
        double mu = s[0][0] / (double)m, v = s[1][0] / (double)m - mu * mu;
        float bmean = (float)(x0 + mu), bvar = (float)(v > 0 ? v : 0);
        stats[0] = bmean;
        stats[1] = bvar;
        if (a.rmean) {
            float mo = a.momentum;
            a.rmean[k] = (1 - mo) * a.rmean[k] + mo * bmean;
            a.rvar[k] = (1 - mo) * a.rvar[k] + mo * bvar * a.unbias;
        }
    }
    __syncthreads();
    float mu = stats[0], g = a.scale[k] / sqrtf(stats[1] + a.eps), b = a.shift[k];
    for (int64_t t = threadIdx.x; t < m; t += blockDim.x) {
        int64_t e = elem(t, k, a.c, a.sp);
        y[e] = st<T>(relu1((ld(x[e]) - mu) * g + b));
    }
}

template <class T> __global__ void bnr_fwd_eval(const T *x, T *y, int64_t total, fwd_args a) {
    PRT_CUK_FOR(i, total) {
        int64_t k = (i / a.sp) % a.c;
        float g = a.scale[k] / sqrtf(a.rvar[k] + a.eps);
        y[i] = st<T>(relu1((ld(x[i]) - a.rmean[k]) * g + a.shift[k]));
    }
}

struct bwd_args {
    const float *scale, *mean, *var; // mean, var: the running statistics (outside training), else NULL
    float *dscale, *dshift;
    double eps;
    int64_t n, c, sp;
};

// dy masked by y > 0, relu_bwd's rule
template <class T> __device__ __forceinline__ double masked(const T *dy, const T *y, int64_t e) {
    return ld(y[e]) > 0.0f ? (double)ld(dy[e]) : 0.0;
}

template <class T>
__global__ void __launch_bounds__(kThreads) bnr_bwd(const T *dy, const T *__restrict__ y, const T *__restrict__ x,
                                                     T *dx, bwd_args a) {
    __shared__ double s[4][kThreads];
    __shared__ double ch[4]; // mean, rstd, the two dx terms
    int64_t k = blockIdx.x, m = a.n * a.sp;
    bool train = a.mean == nullptr;
    double x0 = train ? (double)ld(x[k * a.sp]) : (double)a.mean[k];
    double s1 = 0, s2 = 0, sg = 0, sgx = 0;
    for (int64_t t = threadIdx.x; t < m; t += blockDim.x) {
        int64_t e = elem(t, k, a.c, a.sp);
        double d = (double)ld(x[e]) - x0, g = masked(dy, y, e);
        s1 += d;
        s2 += d * d;
        sg += g;
        sgx += g * d;
    }
    s[0][threadIdx.x] = s1;
    s[1][threadIdx.x] = s2;
    s[2][threadIdx.x] = sg;
    s[3][threadIdx.x] = sgx;
    block_sum<4>(s);
    if (threadIdx.x == 0) {
        double mu, var;
        if (train) {
            double dm = s[0][0] / (double)m, v = s[1][0] / (double)m - dm * dm;
            mu = x0 + dm;
            var = v > 0 ? v : 0;
        } else {
            mu = x0;
            var = a.var[k];
        }
        double rstd = 1.0 / sqrt(var + a.eps);
        // sum g (x - mean) = sum g (x - x0) - (mean - x0) sum g
        double ds = (s[3][0] - (mu - x0) * s[2][0]) * rstd;
        a.dshift[k] = (float)s[2][0];
        a.dscale[k] = (float)ds;
        ch[0] = mu;
        ch[1] = rstd;
        ch[2] = train ? s[2][0] / (double)m : 0.0;
        ch[3] = train ? ds / (double)m : 0.0;
    }
    __syncthreads();
    double mu = ch[0], rstd = ch[1], ta = ch[2], tb = ch[3], gain = a.scale[k] * rstd;
    for (int64_t t = threadIdx.x; t < m; t += blockDim.x) {
        int64_t e = elem(t, k, a.c, a.sp);
        double g = masked(dy, y, e), xh = ((double)ld(x[e]) - mu) * rstd;
        dx[e] = st<T>((float)(gain * (g - ta - xh * tb)));
    }
}

// Activations (x, y, dy, dx) are f32 or bf16 (scheduler/precision.c), one dtype
// for all of them; scale, shift, the statistics and the scale's gradients are f32.
prt_status check_dtypes(const prt_kernel_call *c, const char *op, int n_in_min, int n_in_max, int n_out, int n_act_in,
                        prt_dtype *dt) {
    if (c->n_in < n_in_min || c->n_in > n_in_max || c->n_out != n_out)
        return prt_error(c->ctx, PRT_ERR_INTERNAL, "%s CUDA kernel: called with %d inputs and %d outputs", op, c->n_in,
                         c->n_out);
    *dt = c->in[0]->dtype;
    if (*dt != PRT_F32 && *dt != PRT_BF16)
        return prt_error(c->ctx, PRT_ERR_UNSUPPORTED, "%s CUDA kernel: %s activations; f32 and bf16 are supported", op,
                         prt_dtype_name(*dt));
    for (int k = 0; k < c->n_in; k++)
        PRT_CHECK(prt_cuk_check_tensor(c, op, c->in[k], "input", k, k < n_act_in ? *dt : PRT_F32));
    for (int k = 0; k < c->n_out; k++)
        PRT_CHECK(prt_cuk_check_tensor(c, op, c->out[k], "output", k, k == 0 ? *dt : PRT_F32));
    return PRT_OK;
}

void dims(const prt_shape *s, int64_t *n, int64_t *c, int64_t *sp) {
    *n = s->d[0];
    *c = s->d[1];
    *sp = 1;
    for (int i = 2; i < s->ndim; i++) *sp *= s->d[i];
}

prt_status refuse_sync(const prt_kernel_call *c, const char *op) {
    if (c->training && prt_bn_syncs(c))
        return prt_error(c->ctx, PRT_ERR_UNSUPPORTED,
                         "%s on CUDA: synchronised batch norm (sync_bn over more than one rank) is not supported on "
                         "GPUs yet; run without sync_bn or on the CPU",
                         op);
    return PRT_OK;
}

prt_status channels_fit(const prt_kernel_call *c, const char *op, int64_t ch) {
    if (ch <= 2147483647) return PRT_OK;
    return prt_error(c->ctx, PRT_ERR_UNSUPPORTED, "%s CUDA kernel: %lld channels, at most 2^31 - 1", op, (long long)ch);
}

} // namespace

extern "C" prt_status prt_cuda_bn_relu(const prt_kernel_call *c) {
    const char *op = "batchnorm_relu";
    prt_dtype dt;
    PRT_CHECK(check_dtypes(c, op, 5, 5, 1, 1, &dt));
    PRT_CHECK(refuse_sync(c, op));
    int64_t n, ch, sp;
    dims(&c->in[0]->shape, &n, &ch, &sp);
    PRT_CHECK(channels_fit(c, op, ch));
    if (c->training && n * sp < 2)
        return prt_error(c->ctx, PRT_ERR_SHAPE,
                         "batchnorm: training needs more than one value per channel (batch %lld, spatial size %lld)",
                         (long long)n, (long long)sp);
    if (n * ch * sp == 0) return PRT_OK;
    fwd_args a = {PRT_F32P(c->in[1]), PRT_F32P(c->in[2]), PRT_F32P(c->in[3]), PRT_F32P(c->in[4]),
                  (float)prt_attr_float(&c->attrs[0]), (float)prt_attr_float(&c->attrs[1]),
                  (float)((double)(n * sp) / (double)(n * sp - 1)), n, ch, sp};
    const void *x = c->in[0]->data;
    void *y = c->out[0]->data;
    if (!c->training) {
        int64_t total = n * ch * sp;
        PRT_CUK_DISPATCH(dt, T,
                         bnr_fwd_eval<T><<<prt_cuk_blocks(total), PRT_CUK_THREADS, 0, prt_cuk_stream(c)>>>(
                             (const T *)x, (T *)y, total, a));
        PRT_CUK_LAUNCHED(c->ctx, op, "bnr_fwd_eval");
        return PRT_OK;
    }
    if (c->recompute) a.rmean = a.rvar = nullptr; // the forward call counted this batch
    PRT_CUK_DISPATCH(dt, T,
                     bnr_fwd_train<T><<<(unsigned)ch, kThreads, 0, prt_cuk_stream(c)>>>((const T *)x, (T *)y, a));
    PRT_CUK_LAUNCHED(c->ctx, op, "bnr_fwd_train");
    return PRT_OK;
}

extern "C" prt_status prt_cuda_bn_relu_bwd(const prt_kernel_call *c) {
    const char *op = "batchnorm_relu_bwd";
    prt_dtype dt;
    PRT_CHECK(check_dtypes(c, op, 4, 6, 3, 3, &dt));
    if (c->n_in == 5)
        return prt_error(c->ctx, PRT_ERR_INTERNAL, "%s CUDA kernel: 5 inputs, expected 4 or 6", op);
    if (!c->training && c->n_in != 6)
        return prt_error(c->ctx, PRT_ERR_INVALID,
                         "%s: the gradient outside training needs the running mean and variance (inputs 5 and 6)", op);
    PRT_CHECK(refuse_sync(c, op));
    int64_t n, ch, sp;
    dims(&c->in[2]->shape, &n, &ch, &sp);
    PRT_CHECK(channels_fit(c, op, ch));
    if (n * ch * sp == 0) return PRT_OK;
    bwd_args a = {PRT_F32P(c->in[3]), c->training ? nullptr : PRT_F32P(c->in[4]),
                  c->training ? nullptr : PRT_F32P(c->in[5]), PRT_F32P(c->out[1]), PRT_F32P(c->out[2]),
                  prt_attr_float(&c->attrs[0]), n, ch, sp};
    PRT_CUK_DISPATCH(dt, T,
                     bnr_bwd<T><<<(unsigned)ch, kThreads, 0, prt_cuk_stream(c)>>>(
                         (const T *)c->in[0]->data, (const T *)c->in[1]->data, (const T *)c->in[2]->data,
                         (T *)c->out[0]->data, a));
    PRT_CUK_LAUNCHED(c->ctx, op, "bnr_bwd");
    return PRT_OK;
}

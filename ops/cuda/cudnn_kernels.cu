// The CUDA kernels behind the dense ops where cuDNN does not express our
// semantics exactly (ops/cuda/cudnn_util.h says why for each): 2-D pooling
// forward and backward, batch norm's backward outside training, and the bias
// rows a linear layer's GEMM accumulates onto.
//
// Pooling follows ops/pool.c and ops/op_pool_bwd.c operation for operation, so
// results match the CPU bit for bit: the same visiting order, the same
// comparisons, sums in the same order and IEEE division (no fast math). The
// backward is a gather, one thread per input element over the windows that
// contain it, in the CPU's output order: deterministic, no atomics.
#include "ops/cuda/cudnn_util.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>

namespace {

const int kThreads = 256;

// bf16 storage (scheduler/precision.c): loaded into float, computed as for
// f32, rounded once when stored.
__device__ __forceinline__ float ld(const float *p) { return *p; }
__device__ __forceinline__ float ld(const __nv_bfloat16 *p) { return __bfloat162float(*p); }
__device__ __forceinline__ void st(float *p, float v) { *p = v; }
__device__ __forceinline__ void st(__nv_bfloat16 *p, float v) { *p = __float2bfloat16_rn(v); }

int blocks_for(int64_t n) {
    int64_t b = (n + kThreads - 1) / kThreads;
    return (int)(b < 65535 * 32 ? (b > 0 ? b : 1) : 65535 * 32);
}

template <class T>
__global__ void pool_fwd(const T *__restrict__ x, T *__restrict__ y, int64_t total, int64_t h, int64_t w,
                         prt_cuk_window win, int avg, int count_pad) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t ox = i % win.ow, oy = (i / win.ow) % win.oh, p = i / (win.ow * win.oh);
        const T *plane = x + p * h * w;
        int64_t y0 = oy * win.sh - win.pt, x0 = ox * win.sw - win.pl;
        int64_t ky0 = y0 < 0 ? -y0 : 0, ky1 = y0 + win.kh > h ? h - y0 : win.kh;
        int64_t kx0 = x0 < 0 ? -x0 : 0, kx1 = x0 + win.kw > w ? w - x0 : win.kw;
        float m = -INFINITY, sum = 0.0f;
        int64_t count = 0;
        for (int64_t ky = ky0; ky < ky1; ky++) {
            const T *row = plane + (y0 + ky) * w + x0;
            for (int64_t kx = kx0; kx < kx1; kx++) {
                float v = ld(row + kx);
                if (v > m || v != v) m = v;
                sum += v;
            }
            count += kx1 > kx0 ? kx1 - kx0 : 0;
        }
        st(y + i, avg ? sum / (float)(count_pad ? win.kh * win.kw : count) : m);
    }
}

// The first and last output index whose window (start o*s - pad, length k)
// holds input index i.
__device__ void windows_of(int64_t i, int64_t k, int64_t s, int64_t pad, int64_t n_out, int64_t *o0, int64_t *o1) {
    int64_t lo = i + pad - k + 1;
    *o0 = lo <= 0 ? 0 : (lo + s - 1) / s;
    int64_t hi = (i + pad) / s;
    *o1 = hi < n_out - 1 ? hi : n_out - 1;
}

template <class T>
__global__ void pool_bwd(const T *__restrict__ dy, const T *__restrict__ x, T *__restrict__ dx,
                         int64_t total, int64_t h, int64_t w, prt_cuk_window win, int avg, int count_pad) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t ix = i % w, iy = (i / w) % h, p = i / (w * h);
        const T *g = dy + p * win.oh * win.ow;
        const T *plane = x ? x + p * h * w : nullptr;
        int64_t oy0, oy1, ox0, ox1;
        windows_of(iy, win.kh, win.sh, win.pt, win.oh, &oy0, &oy1);
        windows_of(ix, win.kw, win.sw, win.pl, win.ow, &ox0, &ox1);
        float acc = 0.0f;
        for (int64_t oy = oy0; oy <= oy1; oy++) {
            for (int64_t ox = ox0; ox <= ox1; ox++) {
                int64_t ys = oy * win.sh - win.pt, xs = ox * win.sw - win.pl;
                if (avg) {
                    int64_t ya = ys < 0 ? 0 : ys, yb = ys + win.kh < h ? ys + win.kh : h;
                    int64_t xa = xs < 0 ? 0 : xs, xb = xs + win.kw < w ? xs + win.kw : w;
                    int64_t count = count_pad ? win.kh * win.kw : (yb - ya) * (xb - xa);
                    acc += ld(g + oy * win.ow + ox) / (float)count;
                    continue;
                }
                // the window's winner by op_pool_bwd.c's rule (first maximum, a NaN wins)
                int64_t arg = -1;
                float m = -INFINITY;
                for (int64_t ky = 0; ky < win.kh; ky++) {
                    int64_t yy = ys + ky;
                    if (yy < 0 || yy >= h) continue;
                    for (int64_t kx = 0; kx < win.kw; kx++) {
                        int64_t xx = xs + kx;
                        if (xx < 0 || xx >= w) continue;
                        float v = ld(plane + yy * w + xx);
                        if (arg < 0 || v > m || isnan(v)) {
                            m = v;
                            arg = yy * w + xx;
                        }
                    }
                }
                if (arg == iy * w + ix) acc += ld(g + oy * win.ow + ox);
            }
        }
        st(dx + i, acc);
    }
}

// One block per channel: the two sums in double, then dx.
__global__ void bn_bwd_eval(const float *__restrict__ dy, const float *__restrict__ x, const float *__restrict__ scale,
                            const float *__restrict__ mean, const float *__restrict__ var, double eps,
                            float *__restrict__ dx, float *__restrict__ dscale, float *__restrict__ dshift, int64_t n,
                            int64_t c, int64_t sp) {
    __shared__ double s_dy[kThreads], s_dyx[kThreads];
    int64_t k = blockIdx.x;
    double mu = mean[k], rstd = 1.0 / sqrt((double)var[k] + eps);
    double a = 0, b = 0;
    int64_t m = n * sp;
    for (int64_t t = threadIdx.x; t < m; t += blockDim.x) {
        int64_t e = ((t / sp) * c + k) * sp + t % sp;
        double d = dy[e];
        a += d;
        b += d * ((double)x[e] - mu);
    }
    s_dy[threadIdx.x] = a;
    s_dyx[threadIdx.x] = b;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half /= 2) {
        if ((int)threadIdx.x < half) {
            s_dy[threadIdx.x] += s_dy[threadIdx.x + half];
            s_dyx[threadIdx.x] += s_dyx[threadIdx.x + half];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        dshift[k] = (float)s_dy[0];
        dscale[k] = (float)(s_dyx[0] * rstd);
    }
    double gain = scale[k] * rstd;
    for (int64_t t = threadIdx.x; t < m; t += blockDim.x) {
        int64_t e = ((t / sp) * c + k) * sp + t % sp;
        dx[e] = (float)(gain * dy[e]);
    }
}

template <class T> __global__ void bias_rows(T *__restrict__ y, const T *__restrict__ b, int64_t total, int64_t out) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x)
        y[i] = b[i % out];
}

int launched() { return (int)cudaGetLastError(); }

} // namespace

extern "C" int prt_cuk_pool_fwd(const void *x, void *y, int64_t planes, int64_t h, int64_t w,
                                const prt_cuk_window *win, int avg, int count_pad, int bf16, void *stream) {
    int64_t total = planes * win->oh * win->ow;
    if (total == 0) return 0;
    if (bf16)
        pool_fwd<<<blocks_for(total), kThreads, 0, (cudaStream_t)stream>>>(
            (const __nv_bfloat16 *)x, (__nv_bfloat16 *)y, total, h, w, *win, avg, count_pad);
    else
        pool_fwd<<<blocks_for(total), kThreads, 0, (cudaStream_t)stream>>>((const float *)x, (float *)y, total, h, w,
                                                                             *win, avg, count_pad);
    return launched();
}

extern "C" int prt_cuk_pool_bwd(const void *dy, const void *x, void *dx, int64_t planes, int64_t h, int64_t w,
                                const prt_cuk_window *win, int avg, int count_pad, int bf16, void *stream) {
    int64_t total = planes * h * w;
    if (total == 0) return 0;
    if (bf16)
        pool_bwd<<<blocks_for(total), kThreads, 0, (cudaStream_t)stream>>>(
            (const __nv_bfloat16 *)dy, avg ? nullptr : (const __nv_bfloat16 *)x, (__nv_bfloat16 *)dx, total, h, w,
            *win, avg, count_pad);
    else
        pool_bwd<<<blocks_for(total), kThreads, 0, (cudaStream_t)stream>>>(
            (const float *)dy, avg ? nullptr : (const float *)x, (float *)dx, total, h, w, *win, avg, count_pad);
    return launched();
}

extern "C" int prt_cuk_bn_bwd_eval(const float *dy, const float *x, const float *scale, const float *mean,
                                   const float *var, double eps, float *dx, float *dscale, float *dshift, int64_t n,
                                   int64_t c, int64_t sp, void *stream) {
    if (c == 0) return 0;
    if (c > 2147483647) return (int)cudaErrorInvalidValue;
    bn_bwd_eval<<<(unsigned)c, kThreads, 0, (cudaStream_t)stream>>>(dy, x, scale, mean, var, eps, dx, dscale, dshift,
                                                                      n, c, sp);
    return launched();
}

extern "C" int prt_cuk_bias_rows(float *y, const float *b, int64_t n, int64_t out, void *stream) {
    int64_t total = n * out;
    if (total == 0) return 0;
    bias_rows<<<blocks_for(total), kThreads, 0, (cudaStream_t)stream>>>(y, b, total, out);
    return launched();
}

extern "C" int prt_cuk_bias_rows_bf16(void *y, const void *b, int64_t n, int64_t out, void *stream) {
    int64_t total = n * out;
    if (total == 0) return 0;
    bias_rows<<<blocks_for(total), kThreads, 0, (cudaStream_t)stream>>>((__nv_bfloat16 *)y, (const __nv_bfloat16 *)b,
                                                                          total, out);
    return launched();
}

extern "C" const char *prt_cuk_error_str(int err, char *buf, size_t cap) {
    cudaError_t e = (cudaError_t)err;
    snprintf(buf, cap, "%s (%s)", cudaGetErrorString(e), cudaGetErrorName(e));
    return buf;
}

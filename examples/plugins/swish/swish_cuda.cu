/* CUDA kernels of myorg.swish and myorg.swish_grad (swish.c has the maths).
 * Each launches on the call's stream, c->stream, and never synchronises it:
 * Parrots orders the work on that stream. A failed launch is reported through
 * host->error with CUDA's message. Tensors are in device memory, contiguous. */
#include <cuda_runtime.h>
#include <stdint.h>

#include <parrots/plugin.h>

#include "swish_cuda.h"

static __global__ void swish_fwd_kernel(const float *x, float *y, int64_t n, float beta) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const float xi = x[i];
        y[i] = xi / (1.0f + expf(-beta * xi));
    }
}

static __global__ void swish_bwd_kernel(const float *dy, const float *x, float *dx, int64_t n, float beta) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const float xi = x[i];
        const float s = 1.0f / (1.0f + expf(-beta * xi));
        dx[i] = dy[i] * s * (1.0f + beta * xi * (1.0f - s));
    }
}

/* Enough blocks to fill the GPU; the grid-stride loops cover any n. */
static unsigned swish_blocks(int64_t n) {
    const int64_t threads = 256, most = 4096;
    const int64_t b = (n + threads - 1) / threads;
    return (unsigned)(b < most ? b : most);
}

static int swish_launched(const prt_plugin_host *h, const prt_plugin_call *c, const char *kernel) {
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess)
        return h->error(c->host_ctx, "%s: CUDA launch failed: %s (%s)", kernel, cudaGetErrorString(err),
                        cudaGetErrorName(err));
    return 0;
}

extern "C" int swish_cuda_forward(const prt_plugin_host *h, const prt_plugin_call *c) {
    const int64_t n = h->numel(&c->in[0]);
    if (n == 0) return 0;
    swish_fwd_kernel<<<swish_blocks(n), 256, 0, (cudaStream_t)c->stream>>>(
        (const float *)c->in[0].data, (float *)c->out[0].data, n, (float)c->attrs[0].f);
    return swish_launched(h, c, "swish_fwd_kernel");
}

extern "C" int swish_cuda_backward(const prt_plugin_host *h, const prt_plugin_call *c) {
    const int64_t n = h->numel(&c->in[1]);
    if (n == 0) return 0;
    swish_bwd_kernel<<<swish_blocks(n), 256, 0, (cudaStream_t)c->stream>>>(
        (const float *)c->in[0].data, (const float *)c->in[1].data, (float *)c->out[0].data, n,
        (float)c->attrs[0].f);
    return swish_launched(h, c, "swish_bwd_kernel");
}

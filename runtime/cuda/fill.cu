// The device backend's own kernels (runtime/cuda/device_cuda.c launches them).
#include "runtime/cuda/cuda_util.h"

#include <stdint.h>

namespace {

// Grid-stride loop: one launch of a bounded grid covers any count, so the
// grid never exceeds a limit however large the tensor.
__global__ void fill_f32_kernel(float *__restrict__ dst, float value, size_t count) {
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += stride) dst[i] = value;
}

}  // namespace

extern "C" void prt_cuda_fill_f32_launch(float *dst, float value, size_t count, cudaStream_t stream) {
    if (count == 0) return;
    const unsigned threads = 256;
    // Enough blocks to fill an H200 (132 SMs) several times over; more only adds scheduling.
    size_t blocks = (count + threads - 1) / threads;
    if (blocks > 4096) blocks = 4096;
    fill_f32_kernel<<<(unsigned)blocks, threads, 0, stream>>>(dst, value, count);
}

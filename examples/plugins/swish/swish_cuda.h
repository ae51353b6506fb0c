/* The CUDA kernels of swish.c (swish_cuda.cu), when the build has CUDA:
 * the build defines SWISH_WITH_CUDA=1 and compiles swish_cuda.cu; otherwise
 * the ops have no CUDA kernel and Parrots runs them on the CPU. */
#ifndef SWISH_CUDA_H
#define SWISH_CUDA_H

#include <parrots/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SWISH_WITH_CUDA) && SWISH_WITH_CUDA
int swish_cuda_forward(const prt_plugin_host *h, const prt_plugin_call *c);
int swish_cuda_backward(const prt_plugin_host *h, const prt_plugin_call *c);
#define SWISH_CUDA_FORWARD swish_cuda_forward
#define SWISH_CUDA_BACKWARD swish_cuda_backward
#else
#define SWISH_CUDA_FORWARD NULL
#define SWISH_CUDA_BACKWARD NULL
#endif

#ifdef __cplusplus
}
#endif
#endif

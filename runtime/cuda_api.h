/* The CUDA device backend (runtime/cuda/): a prt_device whose memory is GPU
 * memory, with a compute stream and a communication stream.
 *
 *     prt_device *gpu;
 *     PRT_CHECK(prt_cuda_device_create(ctx, local_rank, &gpu));   // PRT_ERR_UNSUPPORTED without a GPU
 *     ... prt_vm_create(ctx, program, gpu, &opts, &vm) ...
 *     prt_cuda_device_destroy(gpu);
 *
 * In a build without CUDA every function fails with PRT_ERR_UNSUPPORTED and a
 * message saying so; prt_cuda_device_count() is then 0.
 */
#ifndef PARROTS_CUDA_API_H
#define PARROTS_CUDA_API_H

#include "runtime/runtime_impl.h"

/* Streams of a CUDA device: kernels run on the compute stream; allreduces of
 * gradient buckets (NCCL) on the communication stream; events order them. */
typedef enum prt_cuda_stream_kind { PRT_CUDA_COMPUTE = 0, PRT_CUDA_COMM = 1 } prt_cuda_stream_kind;

/* GPUs visible to this process (0 when there is no driver, no GPU, or no CUDA
 * in this build; never an error). */
int prt_cuda_device_count(void);

/* Opens GPU `index` (a rank's local rank): makes it current for the calling
 * thread, creates its two streams and its cuBLAS and cuDNN handles. No GPU (or
 * no driver) is PRT_ERR_UNSUPPORTED with a message naming the CUDA error, e.g.
 * "CUDA device 0: no CUDA-capable device is detected (cudaErrorNoDevice)".
 * Caller frees with prt_cuda_device_destroy. */
prt_status prt_cuda_device_create(prt_context *ctx, int index, prt_device **out);
void prt_cuda_device_destroy(prt_device *dev);

/* True for a device made by prt_cuda_device_create. */
bool prt_device_is_cuda(const prt_device *dev);

/* The cudaStream_t of one of the device's streams (as void *). */
void *prt_cuda_stream(prt_device *dev, prt_cuda_stream_kind which);
/* The device's cublasHandle_t and cudnnHandle_t (as void *), bound to the compute stream. */
void *prt_cuda_cublas(prt_device *dev);
void *prt_cuda_cudnn(prt_device *dev);

/* "NVIDIA H200, 139.8 GiB, sm_90" into buf. */
const char *prt_cuda_device_describe(prt_device *dev, char *buf, size_t cap);
/* Peak bytes allocated through this device so far (the arena: one cudaMalloc). */
size_t prt_cuda_peak_bytes(const prt_device *dev);
/* Device memory in use as the driver counts it (cudaMemGetInfo: total minus
 * free, so the CUDA context, cuBLAS/cuDNN and anything else in the process
 * are included) and the device's total. */
prt_status prt_cuda_mem_info(prt_device *dev, size_t *used, size_t *total);

/* A per-device memo of kernels' set-up choices, bytes under a string key: a
 * convolution's measured cuDNN algorithm is chosen once per distinct layer
 * shape on a device, so repeated blocks (and a second program on the same
 * GPU) reuse the choice instead of measuring again and possibly choosing
 * differently. get copies the n bytes stored under key into val and returns
 * true; false when there are none of that size. */
prt_status prt_cuda_memo_put(prt_device *dev, const char *key, const void *val, size_t n);
bool prt_cuda_memo_get(prt_device *dev, const char *key, void *val, size_t n);

/* Step timing on the device: a pair of timing events on the compute stream.
 *     prt_cuda_timer_start(t); ...work on the compute stream...; prt_cuda_timer_stop(t, &s);
 * stop records the second event, waits for it, and gives the seconds between
 * the two. */
typedef struct prt_cuda_timer prt_cuda_timer;
prt_status prt_cuda_timer_create(prt_device *dev, prt_cuda_timer **out);
prt_status prt_cuda_timer_start(prt_cuda_timer *t);
prt_status prt_cuda_timer_stop(prt_cuda_timer *t, double *seconds);
void prt_cuda_timer_destroy(prt_cuda_timer *t);

/* cuBLAS on `stream` (a cudaStream_t; NULL: the compute stream) with the
 * device's own workspace, allocated when the device was opened: cublasSetStream
 * resets the handle to cuBLAS's default workspace pool, which a CUDA graph
 * capture should not allocate from, so the handle is rebound only when the
 * stream changes and the workspace set again each time. */
prt_status prt_cuda_cublas_bind(prt_device *dev, void *stream);

/* ---- CUDA graphs (vm/interp.c) -------------------------------------------
 *
 *     PRT_CHECK(prt_cuda_capture_begin(dev));            // compute stream, thread-local mode
 *     ... enqueue the step's work on the compute stream ...
 *     prt_cuda_graph *g;
 *     PRT_CHECK(prt_cuda_capture_end(dev, true, &g));    // end and instantiate
 *     PRT_CHECK(prt_cuda_graph_launch(dev, g));          // each later step
 *     prt_cuda_graph_destroy(g);
 */
typedef struct prt_cuda_graph prt_cuda_graph;
/* Starts capturing the compute stream (cudaStreamCaptureModeThreadLocal). */
prt_status prt_cuda_capture_begin(prt_device *dev);
/* Ends the capture. keep: instantiate the graph into *out (caller frees with
 * prt_cuda_graph_destroy); a capture that CUDA invalidated (an operation that
 * cannot be captured was issued) or that does not instantiate is an error
 * naming the call. !keep: the capture is dropped (*out NULL) and any error it
 * left is cleared, so the stream can run plainly again. */
prt_status prt_cuda_capture_end(prt_device *dev, bool keep, prt_cuda_graph **out);
/* Launches the graph on the compute stream (asynchronous). */
prt_status prt_cuda_graph_launch(prt_device *dev, prt_cuda_graph *g);
void prt_cuda_graph_destroy(prt_cuda_graph *g);

/* Page-locked host memory (cudaMallocHost), so that a copy from it is truly
 * asynchronous. Caller frees with prt_cuda_host_free. */
prt_status prt_cuda_host_alloc(prt_device *dev, size_t bytes, void **out);
void prt_cuda_host_free(prt_device *dev, void *p);

#endif

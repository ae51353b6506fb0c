/* The hand-written CUDA kernels of the element-wise, copy, reduction, loss and
 * optimizer ops (the .cu files of ops/cuda), as prt_kernel entry points for the schemas'
 * `cuda` field. Each takes the same call as the op's CPU kernel, with device
 * pointers in its tensors and the compute stream in c->stream; it launches on
 * that stream, never synchronises, and checks every CUDA call and launch.
 *
 *     #include "ops/cuda/cuda_ops.h"
 *     const prt_op_schema prt_op_relu = { ..., .cuda = PRT_CUDA_KERNEL(.run = prt_cuda_relu) };
 *
 * In a build without CUDA (PARROTS_HAVE_CUDA 0) PRT_CUDA_KERNEL(...) is an
 * empty kernel, so the op files name these functions without #ifdefs and the
 * symbols are never referenced. */
#ifndef PARROTS_OPS_CUDA_OPS_H
#define PARROTS_OPS_CUDA_OPS_H

#include "ops/ops_impl.h"

#if defined(PARROTS_HAVE_CUDA) && PARROTS_HAVE_CUDA
#define PRT_CUDA_KERNEL(...) {__VA_ARGS__}
#else
#define PRT_CUDA_KERNEL(...) {0}
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ops/cuda/elementwise.cu: same-shape element-wise ops. mul, sub and div refuse
 * broadcast operands (PRT_ERR_UNSUPPORTED); reduce_to sums a broadcast
 * gradient back to its input's shape. */
prt_status prt_cuda_relu(const prt_kernel_call *c);
prt_status prt_cuda_relu_bwd(const prt_kernel_call *c);
prt_status prt_cuda_add(const prt_kernel_call *c);
prt_status prt_cuda_scale(const prt_kernel_call *c);
prt_status prt_cuda_mul(const prt_kernel_call *c);
prt_status prt_cuda_sub(const prt_kernel_call *c);
prt_status prt_cuda_div(const prt_kernel_call *c);
prt_status prt_cuda_reduce_to(const prt_kernel_call *c);
prt_status prt_cuda_sigmoid(const prt_kernel_call *c);
prt_status prt_cuda_sigmoid_bwd(const prt_kernel_call *c);
prt_status prt_cuda_tanh(const prt_kernel_call *c);
prt_status prt_cuda_tanh_bwd(const prt_kernel_call *c);
/* the CPU kernels' masks, bit for bit (ops/cuda/cuda_rng.h) */
prt_status prt_cuda_dropout(const prt_kernel_call *c);
prt_status prt_cuda_dropout_bwd(const prt_kernel_call *c);

/* ops/cuda/cast.cu: f32 <-> bf16 (ops/bf16.h's conversions) */
prt_status prt_cuda_cast(const prt_kernel_call *c);

/* ops/cuda/xent.cu. The forward needs the op's workspace (N doubles, the
 * `workspace` hook's answer). A label outside [0, classes) cannot be reported
 * without synchronising: that sample's loss, and so the mean, is NaN. */
prt_status prt_cuda_softmax_xent(const prt_kernel_call *c);
prt_status prt_cuda_softmax_xent_bwd(const prt_kernel_call *c);

/* ops/cuda/copy.cu: device-to-device copies; nothing moves when the planner
 * put the output on the input (or a concat input already in its slice). */
prt_status prt_cuda_concat(const prt_kernel_call *c);
prt_status prt_cuda_slice(const prt_kernel_call *c);
prt_status prt_cuda_flatten(const prt_kernel_call *c);
prt_status prt_cuda_reshape(const prt_kernel_call *c);
prt_status prt_cuda_reshape_like(const prt_kernel_call *c);

/* ops/cuda/reduce.cu: sums in double, as the CPU kernels. */
prt_status prt_cuda_bias_grad(const prt_kernel_call *c);
prt_status prt_cuda_global_avgpool(const prt_kernel_call *c);

/* ops/cuda/bn_relu.cu: batchnorm_relu and its gradient, one block per channel
 * (statistics, running update and the element pass in one launch; no
 * workspace). Synchronised batch norm is PRT_ERR_UNSUPPORTED, as for batchnorm. */
prt_status prt_cuda_bn_relu(const prt_kernel_call *c);
prt_status prt_cuda_bn_relu_bwd(const prt_kernel_call *c);

/* ops/cuda/optim.cu: one multi-tensor launch per update. prepare builds the
 * device table of (param, grad, state) pointers and element chunks once (one
 * cudaMalloc); run computes the step's coefficients on the host
 * (prt_optim_coef_of) and passes them by value. */
prt_status prt_cuda_sgd_prepare(const prt_kernel_call *c, void **state);
prt_status prt_cuda_sgd(const prt_kernel_call *c);
prt_status prt_cuda_adam_prepare(const prt_kernel_call *c, void **state);
prt_status prt_cuda_adam(const prt_kernel_call *c);
prt_status prt_cuda_adamw_prepare(const prt_kernel_call *c, void **state);
prt_status prt_cuda_adamw(const prt_kernel_call *c);
prt_status prt_cuda_rmsprop_prepare(const prt_kernel_call *c, void **state);
prt_status prt_cuda_rmsprop(const prt_kernel_call *c);
void prt_cuda_optim_release(void *state);

#ifdef __cplusplus
}
#endif

#endif

/* CUDA kernels of the per-channel and per-plane sums: bias_grad (dy summed over
 * every axis but 1, ops/op_bias_grad.c) and global_avgpool (the mean of each
 * [H, W] plane, ops/op_global_avgpool.c). Sums are in double as on the CPU;
 * the order differs (a tree over threads), so results agree to rounding. */
#include "ops/cuda/cuda_kern.cuh"

__device__ double warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* One block per channel k: the n * sp values dy[(i * ch + k) * sp + j]. */
template <class T> __global__ void bias_grad_k(const T *dy, T *db, int64_t n, int64_t ch, int64_t sp) {
    __shared__ double sh[PRT_CUK_THREADS / 32];
    for (int64_t k = blockIdx.x; k < ch; k += gridDim.x) {
        double s = 0;
        for (int64_t t = threadIdx.x; t < n * sp; t += blockDim.x) {
            int64_t i = t / sp, j = t - i * sp;
            s += prt_cuk_ld(dy + (i * ch + k) * sp + j);
        }
        s = warp_sum(s);
        __syncthreads(); /* sh of the previous channel read by thread 0 */
        if (threadIdx.x % 32 == 0) sh[threadIdx.x / 32] = s;
        __syncthreads();
        if (threadIdx.x == 0) {
            double r = 0;
            for (int w = 0; w < (int)(blockDim.x / 32); w++) r += sh[w];
            prt_cuk_st(db + k, (float)r);
        }
    }
}

extern "C" prt_status prt_cuda_bias_grad(const prt_kernel_call *c) {
    const char *op = "bias_grad";
    prt_dtype dt = PRT_F32;
    PRT_CHECK(prt_cuk_check_float(c, op, 1, 1, 1, &dt));
    const prt_shape *s = &c->in[0]->shape;
    if (s->ndim < 2 || prt_shape_count(&c->out[0]->shape) != s->d[1]) {
        char a[160], b[160];
        prt_shape_str(s, a, sizeof a);
        prt_shape_str(&c->out[0]->shape, b, sizeof b);
        return prt_error(c->ctx, PRT_ERR_SHAPE, "%s CUDA kernel: gradient %s and bias %s do not match ([N, C, ...] "
                         "and [C])", op, a, b);
    }
    int64_t n = s->d[0], ch = s->d[1], sp = 1;
    for (int i = 2; i < s->ndim; i++) sp *= s->d[i];
    if (ch == 0) return PRT_OK;
    unsigned blocks = (unsigned)(ch < 65536 ? ch : 65536);
    PRT_CUK_DISPATCH(dt, T,
                     bias_grad_k<T><<<blocks, PRT_CUK_THREADS, 0, prt_cuk_stream(c)>>>(
                         (const T *)c->in[0]->data, (T *)c->out[0]->data, n, ch, sp));
    PRT_CUK_LAUNCHED(c->ctx, op, "bias_grad_k");
    return PRT_OK;
}

/* One warp per plane (PolyNet's planes are 8 x 8 by then). */
template <class T> __global__ void gap_k(const T *x, T *y, int64_t planes, int64_t plane) {
    int lane = threadIdx.x % 32;
    int64_t w = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32, nw = (int64_t)gridDim.x * blockDim.x / 32;
    for (int64_t p = w; p < planes; p += nw) {
        const T *xp = x + p * plane;
        double s = 0;
        for (int64_t i = lane; i < plane; i += 32) s += prt_cuk_ld(xp + i);
        s = warp_sum(s);
        if (lane == 0) prt_cuk_st(y + p, (float)(s / (double)plane));
    }
}

extern "C" prt_status prt_cuda_global_avgpool(const prt_kernel_call *c) {
    const char *op = "global_avgpool";
    prt_dtype dt = PRT_F32;
    PRT_CHECK(prt_cuk_check_float(c, op, 1, 1, 1, &dt));
    const prt_shape *s = &c->in[0]->shape;
    if (s->ndim != 4 || prt_shape_count(&c->out[0]->shape) != s->d[0] * s->d[1] || s->d[2] * s->d[3] < 1) {
        char a[160], b[160];
        prt_shape_str(s, a, sizeof a);
        prt_shape_str(&c->out[0]->shape, b, sizeof b);
        return prt_error(c->ctx, PRT_ERR_SHAPE, "%s CUDA kernel: expects [N, C, H, W] -> [N, C, 1, 1], got %s -> %s",
                         op, a, b);
    }
    int64_t planes = s->d[0] * s->d[1], plane = s->d[2] * s->d[3];
    if (planes == 0) return PRT_OK;
    /* a warp per plane: eight planes to a block of 256 threads */
    PRT_CUK_DISPATCH(dt, T,
                     gap_k<T><<<prt_cuk_blocks(planes * 32), PRT_CUK_THREADS, 0, prt_cuk_stream(c)>>>(
                         (const T *)c->in[0]->data, (T *)c->out[0]->data, planes, plane));
    PRT_CUK_LAUNCHED(c->ctx, op, "gap_k");
    return PRT_OK;
}

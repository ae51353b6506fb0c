/* linear, linear_bwd_data and linear_bwd_weight on CUDA: cuBLAS sgemm on the
 * CPU kernels' row-major layouts (ops/op_linear*.c): x [N, K] (x flattened
 * after its first dim), weight [O, K], y [N, O]:
 *     y = x W^T (+ b),   dx = dy W,   dW = dy^T x.
 * cuBLAS is column-major, and a row-major [r, c] matrix is its transpose
 * there ([c, r], leading dimension c), so each product is computed transposed:
 *     y^T  = W x^T     sgemm(T, N, O, N, K, W, K, x, K, y, O)
 *     dx^T = W^T dy^T  sgemm(N, N, K, N, O, W, K, dy, O, dx, K)
 *     dW^T = x^T dy    sgemm(N, T, K, O, N, x, K, dy, O, dW, K)
 * The bias is written into y first (a broadcast kernel) and the GEMM adds onto
 * it (beta 1). The bias gradient is bias_grad's. The handle's math mode is left
 * as the device set it (f32 GEMMs, TF32 only if the device enabled it).
 * bf16 operands (scheduler/precision.c) go through cublasGemmEx with
 * CUDA_R_16BF matrices and CUBLAS_COMPUTE_32F (f32 accumulation, tensor
 * cores); with a bias, y holds the bias rounded to bf16 before the GEMM adds. */
#define PRT_CUDNN_IMPL
#include "ops/bwd_util.h"
#include "ops/cuda/cudnn_util.h"

static prt_status gemm(const prt_kernel_call *c, const char *what, cublasOperation_t ta, cublasOperation_t tb,
                       int64_t m, int64_t n, int64_t k, const void *a, int64_t lda, const void *b, int64_t ldb,
                       float beta, void *out, int64_t ldc, prt_dtype dt) {
    int im = 0, in = 0, ik = 0, ia = 0, ib = 0, ic = 0;
    PRT_CHECK(prt_cudnn_int(c->ctx, what, "GEMM rows", m, &im));
    PRT_CHECK(prt_cudnn_int(c->ctx, what, "GEMM columns", n, &in));
    PRT_CHECK(prt_cudnn_int(c->ctx, what, "GEMM depth", k, &ik));
    PRT_CHECK(prt_cudnn_int(c->ctx, what, "leading dimension", lda, &ia));
    PRT_CHECK(prt_cudnn_int(c->ctx, what, "leading dimension", ldb, &ib));
    PRT_CHECK(prt_cudnn_int(c->ctx, what, "leading dimension", ldc, &ic));
    if (m == 0 || n == 0) return PRT_OK;
    cublasHandle_t h;
    PRT_CHECK(prt_cublas_handle(c, what, &h));
    const float one = 1.0f;
    if (dt == PRT_BF16)
        PRT_CUBLAS_TRY(c->ctx, what,
                       cublasGemmEx(h, ta, tb, im, in, ik, &one, a, CUDA_R_16BF, ia, b, CUDA_R_16BF, ib, &beta, out,
                                    CUDA_R_16BF, ic, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    else
        PRT_CUBLAS_TRY(c->ctx, what, cublasSgemm(h, ta, tb, im, in, ik, &one, a, ia, b, ib, &beta, out, ic));
    return PRT_OK;
}

prt_status prt_cudnn_linear(const prt_kernel_call *c) {
    const char *what = "linear";
    prt_dtype dt = PRT_F32;
    PRT_CHECK(prt_cudnn_check_act(c, what, ~0u, ~0u, &dt));
    int want = prt_attr_bool(&c->attrs[PRT_LINEAR_A_BIAS]) ? 3 : 2;
    if (c->n_in != want || c->n_out != 1)
        return prt_error(c->ctx, PRT_ERR_INTERNAL, "%s on CUDA: %d inputs, expected %d", what, c->n_in, want);
    int64_t n = c->out[0]->shape.d[0], o = c->out[0]->shape.d[1], k = c->in[1]->shape.d[1];
    void *y = c->out[0]->data;
    float beta = 0.0f;
    if (want == 3) {
        if (dt == PRT_BF16)
            PRT_CUK_TRY(c->ctx, what, prt_cuk_bias_rows_bf16(y, c->in[2]->data, n, o, c->stream));
        else
            PRT_CUK_TRY(c->ctx, what, prt_cuk_bias_rows(y, c->in[2]->data, n, o, c->stream));
        beta = 1.0f;
    }
    /* K == 0: sgemm leaves beta * y, the bias or zeros, as the CPU kernel does */
    return gemm(c, what, CUBLAS_OP_T, CUBLAS_OP_N, o, n, k, c->in[1]->data, k, c->in[0]->data, k, beta, y, o, dt);
}

prt_status prt_cudnn_linear_bwd_data(const prt_kernel_call *c) {
    const char *what = "linear_bwd_data";
    prt_dtype dt = PRT_F32;
    PRT_CHECK(prt_cudnn_check_act(c, what, ~0u, ~0u, &dt));
    if (c->n_in != 3 || c->n_out != 1)
        return prt_error(c->ctx, PRT_ERR_INTERNAL, "%s on CUDA: %d inputs and %d outputs, expected 3 and 1", what,
                         c->n_in, c->n_out);
    prt_linear_dims d;
    prt_linear_bwd_dims(&c->in[2]->shape, c->in[0]->shape.d[1], &d);
    return gemm(c, what, CUBLAS_OP_N, CUBLAS_OP_N, d.k, d.n, d.out, c->in[1]->data, d.k, c->in[0]->data, d.out, 0.0f,
                c->out[0]->data, d.k, dt);
}

prt_status prt_cudnn_linear_bwd_weight(const prt_kernel_call *c) {
    const char *what = "linear_bwd_weight";
    prt_dtype dt = PRT_F32;
    PRT_CHECK(prt_cudnn_check_act(c, what, ~0u, ~0u, &dt));
    if (c->n_in != 2 || c->n_out != 1)
        return prt_error(c->ctx, PRT_ERR_INTERNAL, "%s on CUDA: %d inputs and %d outputs, expected 2 and 1", what,
                         c->n_in, c->n_out);
    prt_linear_dims d;
    prt_linear_bwd_dims(&c->in[1]->shape, c->in[0]->shape.d[1], &d);
    return gemm(c, what, CUBLAS_OP_N, CUBLAS_OP_T, d.k, d.out, d.n, c->in[1]->data, d.k, c->in[0]->data, d.out, 0.0f,
                c->out[0]->data, d.k, dt);
}

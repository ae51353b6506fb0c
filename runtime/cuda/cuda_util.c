/* Vendor status -> prt_error translation for runtime/cuda/ and ops/cuda/
 * (the macros are in cuda_util.h). */
#include "runtime/cuda/cuda_util.h"

#include <cublas_v2.h>
#include <cudnn.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "runtime/runtime_impl.h"

/* "cudaMalloc(&p, n)" -> "cudaMalloc"; text without '(' ("launching fill_f32") whole. */
static int call_name_len(const char *expr) {
    const char *paren = strchr(expr, '(');
    size_t n = paren ? (size_t)(paren - expr) : strlen(expr);
    while (n > 0 && expr[n - 1] == ' ') n--;
    return n > 200 ? 200 : (int)n;
}

static prt_status vendor_error(prt_context *ctx, prt_status st, const char *lib, const char *expr,
                               const char *desc, const char *name, const char *detail, const char *fmt,
                               va_list ap) {
    char what[1024];
    vsnprintf(what, sizeof what, fmt, ap);
    return prt_error(ctx, st, "%s: %.*s: %s (%s)%s%s while %s", lib, call_name_len(expr), expr, desc, name,
                     detail[0] ? ": " : "", detail, what);
}

prt_status prt_cuda_error(prt_context *ctx, cudaError_t err, const char *expr, const char *fmt, ...) {
    /* clear the non-sticky last error this call left behind */
    (void)cudaGetLastError();
    prt_status st = PRT_ERR_BACKEND;
    if (err == cudaErrorMemoryAllocation) st = PRT_ERR_NOMEM;
    else if (err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver)
        st = PRT_ERR_UNSUPPORTED;
    va_list ap;
    va_start(ap, fmt);
    st = vendor_error(ctx, st, "CUDA", expr, cudaGetErrorString(err), cudaGetErrorName(err), "", fmt, ap);
    va_end(ap);
    return st;
}

prt_status prt_cublas_error(prt_context *ctx, int status, const char *expr, const char *fmt, ...) {
    cublasStatus_t s = (cublasStatus_t)status;
    prt_status st = s == CUBLAS_STATUS_ALLOC_FAILED ? PRT_ERR_NOMEM
                    : s == CUBLAS_STATUS_NOT_SUPPORTED ? PRT_ERR_UNSUPPORTED
                                                        : PRT_ERR_BACKEND;
    va_list ap;
    va_start(ap, fmt);
    st = vendor_error(ctx, st, "cuBLAS", expr, cublasGetStatusString(s), cublasGetStatusName(s), "", fmt, ap);
    va_end(ap);
    return st;
}

prt_status prt_cudnn_error(prt_context *ctx, int status, const char *expr, const char *fmt, ...) {
    cudnnStatus_t s = (cudnnStatus_t)status;
    prt_status st = s == CUDNN_STATUS_ALLOC_FAILED ? PRT_ERR_NOMEM
                    : s == CUDNN_STATUS_NOT_SUPPORTED ? PRT_ERR_UNSUPPORTED
                                                       : PRT_ERR_BACKEND;
    /* cuDNN 9 keeps a more specific message per thread ("...: ... requires ...") */
    char detail[512] = "";
    cudnnGetLastErrorString(detail, sizeof detail);
    for (char *p = detail; *p; p++)
        if (*p == '\n') *p = ' ';
    va_list ap;
    va_start(ap, fmt);
    /* cudnnGetErrorString gives the enumerator's name ("CUDNN_STATUS_BAD_PARAM") */
    st = vendor_error(ctx, st, "cuDNN", expr, prt_status_str(st), cudnnGetErrorString(s), detail, fmt, ap);
    va_end(ap);
    return st;
}

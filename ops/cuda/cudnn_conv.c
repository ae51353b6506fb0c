/* conv, conv_bwd_data and conv_bwd_weight on CUDA: cuDNN's convolution
 * forward, backward-data and backward-filter on NCHW f32, with the CPU
 * kernels' operands (ops/op_conv*.c): conv (x, w[, b]) -> y,
 * conv_bwd_data (dy, w, x) -> dx with x shape-only, conv_bwd_weight (dy, x, w)
 * -> dw with w shape-only. Groups and dilation map onto the descriptor; a bias
 * is cudnnAddTensor after the convolution.
 *
 * Math: CUDNN_DEFAULT_MATH on the descriptor, then the math type cuDNN reports
 * with the chosen algorithm, so f32 may run on TF32 tensor cores (sm_80+).
 *
 * Workspace and algorithm. The memory plan is made before any cuDNN handle
 * exists (planning needs no GPU), so `workspace_cuda` cannot ask cuDNN what an
 * algorithm needs. It returns a budget from the shapes alone,
 *     clamp(bytes(x) + bytes(w) + bytes(y), 16 MiB, 256 MiB),
 * and prepare picks the fastest algorithm whose workspace fits in the call's
 * workspace: measured with cudnnFind*AlgorithmEx when the call's tensors and
 * workspace already have device memory (the planned arena does: prepare runs
 * after it is allocated), else the first fitting one of cuDNN's heuristics
 * (cudnnGet*Algorithm_v7). Find writes the op's output buffer, which holds
 * nothing yet at prepare. Algorithms needing more than the budget (FFT on big
 * planes) are never chosen; the zero-workspace implicit GEMM always fits. The
 * budget costs at most 256 MiB of arena: the planner overlaps the workspaces
 * of nodes that do not run at the same time.
 *
 * Padding: cuDNN's convolution descriptor pads symmetrically; an asymmetric
 * pad [top, left, bottom, right] is refused at prepare (PRT_ERR_UNSUPPORTED). */
#define PRT_CUDNN_IMPL
#include "ops/bwd_util.h"
#include "ops/cuda/cudnn_util.h"
#include "runtime/cuda_api.h"

#include <stdio.h>
#include <string.h>

typedef enum conv_kind { K_FWD, K_DATA, K_WEIGHT } conv_kind;

static const char *const kind_name[3] = {"conv", "conv_bwd_data", "conv_bwd_weight"};

typedef struct conv_state {
    prt_context *ctx;
    conv_kind kind;
    prt_dtype dt;                       /* every operand's: f32 or bf16 */
    cudnnTensorDescriptor_t x, y, bias; /* bias: NULL without one */
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv;
    int algo;                           /* a cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t */
    cudnnMathType_t math;
    size_t ws;                          /* the chosen algorithm's workspace */
    float ms;                           /* measured time, < 0: heuristic choice */
} conv_state;

/* Where x sits among the data inputs of each op. */
static int x_slot(conv_kind k) { return k == K_FWD ? 0 : k == K_DATA ? 2 : 1; }

#define MIB ((size_t)1 << 20)

static size_t conv_budget(const prt_attr *attrs, const prt_shape *x) {
    prt_conv_bwd_geom g;
    prt_conv_bwd_geom_of(attrs, x, &g);
    const prt_window *w = &g.win;
    double bytes = 4.0 * ((double)g.n * (double)g.c * (double)g.h * (double)g.w +
                          (double)g.n * (double)g.o * (double)w->oh * (double)w->ow +
                          (double)g.o * (double)(g.g ? g.c / g.g : g.c) * (double)w->kh * (double)w->kw);
    if (bytes < (double)(16 * MIB)) return 16 * MIB;
    if (bytes > (double)(256 * MIB)) return 256 * MIB;
    return (size_t)bytes;
}

size_t prt_cudnn_conv_workspace(const prt_infer_ctx *ic) { return conv_budget(ic->attrs, &ic->in[x_slot(K_FWD)]); }
size_t prt_cudnn_conv_bwd_data_workspace(const prt_infer_ctx *ic) {
    return conv_budget(ic->attrs, &ic->in[x_slot(K_DATA)]);
}
size_t prt_cudnn_conv_bwd_weight_workspace(const prt_infer_ctx *ic) {
    return conv_budget(ic->attrs, &ic->in[x_slot(K_WEIGHT)]);
}

void prt_cudnn_conv_release(void *state) {
    conv_state *s = state;
    if (!s) return;
    /* destroy statuses are ignored: nothing can be done about them here */
    if (s->x) cudnnDestroyTensorDescriptor(s->x);
    if (s->y) cudnnDestroyTensorDescriptor(s->y);
    if (s->bias) cudnnDestroyTensorDescriptor(s->bias);
    if (s->w) cudnnDestroyFilterDescriptor(s->w);
    if (s->conv) cudnnDestroyConvolutionDescriptor(s->conv);
    prt_free(s->ctx, s, sizeof *s);
}

static prt_status conv_descriptors(const prt_kernel_call *c, conv_state *s, const char *what) {
    prt_context *ctx = c->ctx;
    prt_conv_bwd_geom g;
    prt_conv_bwd_geom_of(c->attrs, &c->in[x_slot(s->kind)]->shape, &g);
    const prt_window *w = &g.win;
    if (w->pad[0] != w->pad[2] || w->pad[1] != w->pad[3])
        return prt_error(ctx, PRT_ERR_UNSUPPORTED,
                         "%s on CUDA: asymmetric padding [top %lld, left %lld, bottom %lld, right %lld] is not "
                         "supported (cuDNN pads both sides alike); pad the input explicitly",
                         what, (long long)w->pad[0], (long long)w->pad[1], (long long)w->pad[2], (long long)w->pad[3]);
    int o = 0, cg = 0, kh = 0, kw = 0, ph = 0, pw = 0, sh = 0, sw = 0, dh = 0, dw = 0, groups = 0;
    PRT_CHECK(prt_cudnn_int(ctx, what, "out channels", g.o, &o));
    PRT_CHECK(prt_cudnn_int(ctx, what, "channels per group", g.c / g.g, &cg));
    PRT_CHECK(prt_cudnn_int(ctx, what, "kernel height", w->kh, &kh));
    PRT_CHECK(prt_cudnn_int(ctx, what, "kernel width", w->kw, &kw));
    PRT_CHECK(prt_cudnn_int(ctx, what, "pad", w->pad[0], &ph));
    PRT_CHECK(prt_cudnn_int(ctx, what, "pad", w->pad[1], &pw));
    PRT_CHECK(prt_cudnn_int(ctx, what, "stride", w->sh, &sh));
    PRT_CHECK(prt_cudnn_int(ctx, what, "stride", w->sw, &sw));
    PRT_CHECK(prt_cudnn_int(ctx, what, "dilation", w->dh, &dh));
    PRT_CHECK(prt_cudnn_int(ctx, what, "dilation", w->dw, &dw));
    PRT_CHECK(prt_cudnn_int(ctx, what, "groups", g.g, &groups));
    PRT_CUDNN_TRY(ctx, what, cudnnCreateTensorDescriptor(&s->x));
    PRT_CUDNN_TRY(ctx, what, cudnnCreateTensorDescriptor(&s->y));
    PRT_CUDNN_TRY(ctx, what, cudnnCreateFilterDescriptor(&s->w));
    PRT_CUDNN_TRY(ctx, what, cudnnCreateConvolutionDescriptor(&s->conv));
    PRT_CHECK(prt_cudnn_tensor4_dt(ctx, what, s->x, s->dt, g.n, g.c, g.h, g.w));
    PRT_CHECK(prt_cudnn_tensor4_dt(ctx, what, s->y, s->dt, g.n, g.o, w->oh, w->ow));
    PRT_CUDNN_TRY(ctx, what,
                  cudnnSetFilter4dDescriptor(s->w, prt_cudnn_dtype(s->dt), CUDNN_TENSOR_NCHW, o, cg, kh, kw));
    /* bf16 operands accumulate in f32 (the compute type), on tensor cores */
    PRT_CUDNN_TRY(ctx, what,
                  cudnnSetConvolution2dDescriptor(s->conv, ph, pw, sh, sw, dh, dw, CUDNN_CROSS_CORRELATION,
                                                  CUDNN_DATA_FLOAT));
    PRT_CUDNN_TRY(ctx, what, cudnnSetConvolutionGroupCount(s->conv, groups));
    PRT_CUDNN_TRY(ctx, what,
                  cudnnSetConvolutionMathType(s->conv, s->dt == PRT_BF16 ? CUDNN_TENSOR_OP_MATH : CUDNN_DEFAULT_MATH));
    int dims[4];
    PRT_CUDNN_TRY(ctx, what, cudnnGetConvolutionNdForwardOutputDim(s->conv, s->x, s->w, 4, dims));
    if (dims[0] != g.n || dims[1] != g.o || dims[2] != w->oh || dims[3] != w->ow)
        return prt_error(ctx, PRT_ERR_INTERNAL, "%s on CUDA: cuDNN's output %dx%dx%dx%d differs from ours %lldx%lldx%lldx%lld",
                         what, dims[0], dims[1], dims[2], dims[3], (long long)g.n, (long long)g.o, (long long)w->oh,
                         (long long)w->ow);
    if (s->kind == K_FWD && prt_attr_bool(&c->attrs[PRT_CONV_A_BIAS])) {
        PRT_CUDNN_TRY(ctx, what, cudnnCreateTensorDescriptor(&s->bias));
        PRT_CHECK(prt_cudnn_tensor4_dt(ctx, what, s->bias, s->dt, 1, g.o, 1, 1));
    }
    return PRT_OK;
}

/* The device pointers of the call's operands, NULL where there are none yet. */
static void conv_ptrs(const prt_kernel_call *c, conv_kind k, void **x, void **w, void **y) {
    *x = *w = *y = NULL;
    switch (k) {
    case K_FWD: *x = c->in[0]->data, *w = c->in[1]->data, *y = c->out[0]->data; break;
    case K_DATA: *y = c->in[0]->data, *w = c->in[1]->data, *x = c->out[0]->data; break;
    case K_WEIGHT: *y = c->in[0]->data, *x = c->in[1]->data, *w = c->out[0]->data; break;
    }
}

/* One kind's search, generated for the three perf-result types: the first
 * result that succeeded and fits the budget (cuDNN sorts them, by measured time
 * for Find, by expected speed for the heuristics), deterministic algorithms
 * first: a non-deterministic one (atomics: bit-different results from run to
 * run) only where no deterministic one fits. */
#define PICK(perf, n, budget, s, measured)                                                  \
    do {                                                                                    \
        for (int pass_ = 0; pass_ < 2 && !found; pass_++)                                   \
            for (int i_ = 0; i_ < (n); i_++) {                                              \
                if ((perf)[i_].status != CUDNN_STATUS_SUCCESS || (perf)[i_].memory > (budget)) continue; \
                if (pass_ == 0 && (perf)[i_].determinism != CUDNN_DETERMINISTIC) continue;  \
                (s)->algo = (int)(perf)[i_].algo;                                           \
                (s)->ws = (perf)[i_].memory;                                                \
                (s)->math = (perf)[i_].mathType;                                            \
                (s)->ms = (measured) ? (perf)[i_].time : -1.0f;                             \
                found = true;                                                               \
                break;                                                                      \
            }                                                                               \
    } while (0)

/* The device memo's key of a layer: kind, shapes and dtype, geometry, budget. */
static void conv_memo_key(const prt_kernel_call *c, const conv_state *s, size_t budget, char *key, size_t cap) {
    prt_conv_bwd_geom g;
    prt_conv_bwd_geom_of(c->attrs, &c->in[x_slot(s->kind)]->shape, &g);
    const prt_window *w = &g.win;
    cudnnDataType_t dt = CUDNN_DATA_FLOAT;
    int n_, c_, h_, w_, ns, cs, hs, ws;
    if (cudnnGetTensor4dDescriptor(s->x, &dt, &n_, &c_, &h_, &w_, &ns, &cs, &hs, &ws) != CUDNN_STATUS_SUCCESS)
        dt = CUDNN_DATA_FLOAT;
    snprintf(key, cap, "cudnn-conv %s dt%d x%lldx%lldx%lldx%lld o%lld g%lld k%lldx%lld p%lld,%lld s%lld,%lld d%lld,%lld ws%zu",
             kind_name[s->kind], (int)dt, (long long)g.n, (long long)g.c, (long long)g.h, (long long)g.w,
             (long long)g.o, (long long)g.g, (long long)w->kh, (long long)w->kw, (long long)w->pad[0],
             (long long)w->pad[1], (long long)w->sh, (long long)w->sw, (long long)w->dh, (long long)w->dw, budget);
}

typedef struct conv_choice {
    int algo;
    cudnnMathType_t math;
    size_t ws;
    float ms;
} conv_choice;

static prt_status conv_choose(const prt_kernel_call *c, conv_state *s, cudnnHandle_t h, const char *what) {
    prt_context *ctx = c->ctx;
    size_t budget = c->workspace ? c->workspace_size : 0;
    void *x, *w, *y;
    conv_ptrs(c, s->kind, &x, &w, &y);
    bool measure = x && w && y;
    bool found = false;
    int n = 0;
    /* a layer of the same shape already chosen on this device: the same choice */
    char key[256];
    conv_memo_key(c, s, budget, key, sizeof key);
    conv_choice memo;
    if (c->dev && prt_cuda_memo_get(c->dev, key, &memo, sizeof memo)) {
        s->algo = memo.algo, s->math = memo.math, s->ws = memo.ws, s->ms = memo.ms;
        PRT_CUDNN_TRY(ctx, what, cudnnSetConvolutionMathType(s->conv, s->math));
        return PRT_OK;
    }
    switch (s->kind) {
    case K_FWD: {
        cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
        if (measure) {
            PRT_CUDNN_TRY(ctx, what,
                          cudnnFindConvolutionForwardAlgorithmEx(h, s->x, x, s->w, w, s->conv, s->y, y,
                                                                 CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, perf,
                                                                 c->workspace, budget));
            PICK(perf, n, budget, s, true);
        }
        if (!found) {
            PRT_CUDNN_TRY(ctx, what,
                          cudnnGetConvolutionForwardAlgorithm_v7(h, s->x, s->w, s->conv, s->y,
                                                                 CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, perf));
            PICK(perf, n, budget, s, false);
        }
        break;
    }
    case K_DATA: {
        cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
        if (measure) {
            PRT_CUDNN_TRY(ctx, what,
                          cudnnFindConvolutionBackwardDataAlgorithmEx(h, s->w, w, s->y, y, s->conv, s->x, x,
                                                                      CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, perf,
                                                                      c->workspace, budget));
            PICK(perf, n, budget, s, true);
        }
        if (!found) {
            PRT_CUDNN_TRY(ctx, what,
                          cudnnGetConvolutionBackwardDataAlgorithm_v7(h, s->w, s->y, s->conv, s->x,
                                                                      CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, perf));
            PICK(perf, n, budget, s, false);
        }
        break;
    }
    case K_WEIGHT: {
        cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
        if (measure) {
            PRT_CUDNN_TRY(ctx, what,
                          cudnnFindConvolutionBackwardFilterAlgorithmEx(h, s->x, x, s->y, y, s->conv, s->w, w,
                                                                        CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &n,
                                                                        perf, c->workspace, budget));
            PICK(perf, n, budget, s, true);
        }
        if (!found) {
            PRT_CUDNN_TRY(ctx, what,
                          cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, s->x, s->y, s->conv, s->w,
                                                                        CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &n,
                                                                        perf));
            PICK(perf, n, budget, s, false);
        }
        break;
    }
    }
    if (!found)
        return prt_error(ctx, PRT_ERR_UNSUPPORTED,
                         "%s on CUDA: cuDNN offers no algorithm for this layer within a workspace of %zu bytes", what,
                         budget);
    PRT_CUDNN_TRY(ctx, what, cudnnSetConvolutionMathType(s->conv, s->math));
    /* heuristic choices are not remembered: a later call with memory may measure */
    if (c->dev && s->ms >= 0) {
        memo = (conv_choice){s->algo, s->math, s->ws, s->ms};
        PRT_CHECK(prt_cuda_memo_put(c->dev, key, &memo, sizeof memo));
    }
    return PRT_OK;
}
#undef PICK

static prt_status conv_prepare(const prt_kernel_call *c, conv_kind kind, void **state) {
    const char *what = kind_name[kind];
    cudnnHandle_t h;
    PRT_CHECK(prt_cudnn_handle(c, what, &h));
    conv_state *s = prt_calloc(c->ctx, 1, sizeof *s);
    if (!s) return prt_error(c->ctx, PRT_ERR_NOMEM, "%s on CUDA: kernel state", what);
    s->ctx = c->ctx;
    s->kind = kind;
    s->dt = c->in[x_slot(kind)]->dtype;
    prt_status st;
    PRT_CHECK_GOTO(conv_descriptors(c, s, what), st, fail);
    PRT_CHECK_GOTO(conv_choose(c, s, h, what), st, fail);
    prt_log_debug(c->ctx, "%s on CUDA: algorithm %d, math %d, workspace %zu bytes, %s", what, s->algo, (int)s->math,
                  s->ws, s->ms >= 0 ? "measured" : "heuristic");
    *state = s;
    return PRT_OK;
fail:
    prt_cudnn_conv_release(s);
    return st;
}

prt_status prt_cudnn_conv_prepare(const prt_kernel_call *c, void **state) { return conv_prepare(c, K_FWD, state); }
prt_status prt_cudnn_conv_bwd_data_prepare(const prt_kernel_call *c, void **state) {
    return conv_prepare(c, K_DATA, state);
}
prt_status prt_cudnn_conv_bwd_weight_prepare(const prt_kernel_call *c, void **state) {
    return conv_prepare(c, K_WEIGHT, state);
}

static prt_status conv_run(const prt_kernel_call *c, conv_kind kind) {
    const char *what = kind_name[kind];
    conv_state *s = c->state;
    if (!s || s->kind != kind) return prt_error(c->ctx, PRT_ERR_INTERNAL, "%s on CUDA: run before prepare", what);
    prt_dtype dt = PRT_F32;
    PRT_CHECK(prt_cudnn_check_act(c, what, ~0u, ~0u, &dt));
    if (dt != s->dt) return prt_error(c->ctx, PRT_ERR_INTERNAL, "%s on CUDA: prepared for another dtype", what);
    int want = kind == K_FWD ? (s->bias ? 3 : 2) : 3;
    if (c->n_in != want || c->n_out != 1)
        return prt_error(c->ctx, PRT_ERR_INTERNAL, "%s on CUDA: %d inputs and %d outputs, expected %d and 1", what,
                         c->n_in, c->n_out, want);
    if (s->ws > 0 && (!c->workspace || c->workspace_size < s->ws))
        return prt_error(c->ctx, PRT_ERR_INTERNAL, "%s on CUDA: workspace of %zu bytes, the algorithm needs %zu", what,
                         c->workspace ? c->workspace_size : 0, s->ws);
    cudnnHandle_t h;
    PRT_CHECK(prt_cudnn_handle(c, what, &h));
    const float one = 1.0f, zero = 0.0f;
    void *ws = s->ws ? c->workspace : NULL;
    void *x, *w, *y;
    conv_ptrs(c, kind, &x, &w, &y);
    switch (kind) {
    case K_FWD:
        PRT_CUDNN_TRY(c->ctx, what,
                      cudnnConvolutionForward(h, &one, s->x, x, s->w, w, s->conv, (cudnnConvolutionFwdAlgo_t)s->algo,
                                              ws, s->ws, &zero, s->y, y));
        if (s->bias)
            PRT_CUDNN_TRY(c->ctx, what, cudnnAddTensor(h, &one, s->bias, c->in[2]->data, &one, s->y, y));
        break;
    case K_DATA:
        PRT_CUDNN_TRY(c->ctx, what,
                      cudnnConvolutionBackwardData(h, &one, s->w, w, s->y, y, s->conv,
                                                   (cudnnConvolutionBwdDataAlgo_t)s->algo, ws, s->ws, &zero, s->x, x));
        break;
    case K_WEIGHT:
        PRT_CUDNN_TRY(c->ctx, what,
                      cudnnConvolutionBackwardFilter(h, &one, s->x, x, s->y, y, s->conv,
                                                     (cudnnConvolutionBwdFilterAlgo_t)s->algo, ws, s->ws, &zero, s->w,
                                                     w));
        break;
    }
    return PRT_OK;
}

prt_status prt_cudnn_conv(const prt_kernel_call *c) { return conv_run(c, K_FWD); }
prt_status prt_cudnn_conv_bwd_data(const prt_kernel_call *c) { return conv_run(c, K_DATA); }
prt_status prt_cudnn_conv_bwd_weight(const prt_kernel_call *c) { return conv_run(c, K_WEIGHT); }

const char *prt_cudnn_conv_describe(const void *state, char *buf, size_t cap) {
    const conv_state *s = state;
    if (!s) snprintf(buf, cap, "?");
    else
        snprintf(buf, cap, "%s algorithm %d, math %d, %zu B workspace, %s", kind_name[s->kind], s->algo, (int)s->math,
                 s->ws, s->ms >= 0 ? "measured" : "heuristic");
    return buf;
}

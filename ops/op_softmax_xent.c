/* softmax_xent: the classification loss, softmax and cross-entropy fused.
 * Inputs logits [N, C] (f32) and labels [N, 1] or [N] (i32); outputs the mean
 * loss over the batch [1] and the probabilities [N, C] (for accuracy). With
 * label smoothing s the target is (1 - s) * onehot + s / C. Per sample,
 * loss = logsumexp(x) - sum_c target_c * x_c, with the maximum subtracted
 * before exp, in double, so large logits neither overflow nor lose the loss.
 *
 * softmax_xent_bwd(probs, labels[, dloss]) -> dlogits = (probs - target) / N
 * (times dloss when given): the fused gradient, which never forms the
 * softmax Jacobian. Both share one attribute table. */
#include "ops/ops_util.h"
#include "ops/cuda/cuda_ops.h"

#include <math.h>
#include <string.h>

enum { A_SMOOTHING };
enum { IN_LOGITS, IN_LABELS, IN_DLOSS };

static const prt_attr_def xent_attrs[] = {
    PRT_ATTR_OPT_FLOAT("smoothing", 0.0, "label smoothing: the target is (1 - s) * onehot + s / classes"),
};

/* Shape checks both ops share: x [N, C] (logits or probs), labels [N, 1] or [N]. */
static prt_status xent_check_shapes(prt_infer_ctx *ic, const char *what) {
    const prt_shape *x = &ic->in[IN_LOGITS], *l = &ic->in[IN_LABELS];
    char a[160], b[160];
    prt_shape_str(x, a, sizeof a);
    prt_shape_str(l, b, sizeof b);
    double s = prt_attr_float(&ic->attrs[A_SMOOTHING]);
    if (!(s >= 0.0 && s <= 1.0)) return prt_infer_error(ic, "smoothing must be in [0, 1], got %g", s);
    if (ic->in_dtype != PRT_F32)
        return prt_infer_error(ic, "%s must be f32, got %s", what, prt_dtype_name(ic->in_dtype));
    if (x->ndim != 2 || x->d[1] < 1) return prt_infer_error(ic, "expects %s as [N, classes], got %s", what, a);
    bool ok = (l->ndim == 2 && l->d[1] == 1) || l->ndim == 1;
    if (!ok || l->d[0] != x->d[0])
        return prt_infer_error(ic, "labels must be [N, 1] or [N] with N = %lld (one class index per sample), got %s",
                               (long long)x->d[0], b);
    return PRT_OK;
}

static prt_status xent_infer(prt_infer_ctx *ic) {
    PRT_CHECK(xent_check_shapes(ic, "logits"));
    ic->out[0] = prt_shape_make(1, (int64_t[]){1});
    ic->out[1] = ic->in[IN_LOGITS];
    return PRT_OK;
}

/* max, exp, sum, divide, the target dot product: about 5 per element */
static int64_t xent_flops(const prt_infer_ctx *ic) { return prt_flop_mul(prt_ops_numel(&ic->in[IN_LOGITS]), 5); }

/* Kernel entry: float tensors f32, labels i32, every label a class. */
static prt_status xent_check_call(const prt_kernel_call *c, const char *op) {
    for (int k = 0; k < c->n_in + c->n_out; k++) {
        const prt_tensor *t = k < c->n_in ? c->in[k] : c->out[k - c->n_in];
        prt_dtype want = k == IN_LABELS ? PRT_I32 : PRT_F32;
        const char *role = k < c->n_in ? "input" : "output";
        int idx = k < c->n_in ? k : k - c->n_in;
        if (t->dtype != want)
            return prt_error(c->ctx, PRT_ERR_UNSUPPORTED, "%s kernel: %s %d%s is %s, expected %s", op, role, idx,
                             k == IN_LABELS ? " (labels)" : "", prt_dtype_name(t->dtype), prt_dtype_name(want));
        if (!prt_tensor_is_contiguous(t))
            return prt_error(c->ctx, PRT_ERR_UNSUPPORTED, "%s kernel: %s %d is not contiguous", op, role, idx);
    }
    const prt_shape *x = &c->in[IN_LOGITS]->shape;
    const int32_t *lab = prt_tensor_data(c->in[IN_LABELS]);
    for (int64_t n = 0; n < x->d[0]; n++)
        if (lab[n] < 0 || lab[n] >= x->d[1])
            return prt_error(c->ctx, PRT_ERR_INVALID, "%s: sample %lld has label %d, outside the classes [0, %lld)", op,
                             (long long)n, (int)lab[n], (long long)x->d[1]);
    return PRT_OK;
}

typedef struct xent_args {
    const float *x;
    const int32_t *lab;
    float *probs;
    double *loss;   /* per sample */
    int64_t classes;
    double smoothing;
} xent_args;

/* Samples [lo, hi): probabilities and per-sample losses. */
static void xent_range(void *arg, int64_t lo, int64_t hi) {
    const xent_args *a = arg;
    int64_t C = a->classes;
    double s = a->smoothing;
    for (int64_t n = lo; n < hi; n++) {
        const float *x = a->x + n * C;
        float *p = a->probs + n * C;
        float m = x[0];
        for (int64_t c = 1; c < C; c++) m = x[c] > m ? x[c] : m;
        double sum = 0, dot = 0;
        for (int64_t c = 0; c < C; c++) {
            sum += exp((double)x[c] - m);
            dot += x[c];
        }
        for (int64_t c = 0; c < C; c++) p[c] = (float)(exp((double)x[c] - m) / sum);
        double lse = m + log(sum);
        a->loss[n] = lse - ((1 - s) * x[a->lab[n]] + s / (double)C * dot);
    }
}

static prt_status xent_run(const prt_kernel_call *c, bool threads) {
    PRT_CHECK(xent_check_call(c, "softmax_xent"));
    const prt_shape *xs = &c->in[IN_LOGITS]->shape;
    int64_t N = xs->d[0];
    size_t bytes = (size_t)N * sizeof(double);
    bool own = !c->workspace || c->workspace_size < bytes;
    double *loss = own ? prt_malloc(c->ctx, bytes ? bytes : 1) : c->workspace;
    if (!loss) return prt_error(c->ctx, PRT_ERR_NOMEM, "softmax_xent kernel: %zu bytes", bytes);
    xent_args a = {PRT_F32P(c->in[IN_LOGITS]), prt_tensor_data(c->in[IN_LABELS]), PRT_F32P(c->out[1]), loss,
                   xs->d[1], prt_attr_float(&c->attrs[A_SMOOTHING])};
    if (threads) prt_parallel_range(N, PRT_PAR_MIN_ELEMS / 8 / (xs->d[1] + 1) + 1, xent_range, &a);
    else xent_range(&a, 0, N);
    /* summed in sample order whatever the split, so every path gives the same bits */
    double total = 0;
    for (int64_t n = 0; n < N; n++) total += loss[n];
    PRT_F32P(c->out[0])[0] = (float)(total / (double)N);
    if (own) prt_free(c->ctx, loss, bytes ? bytes : 1);
    return PRT_OK;
}

static prt_status xent_ref(const prt_kernel_call *c) { return xent_run(c, false); }
static prt_status xent_fast(const prt_kernel_call *c) { return xent_run(c, true); }

static size_t xent_workspace(const prt_infer_ctx *ic) {
    return (size_t)ic->in[IN_LOGITS].d[0] * sizeof(double);
}

/* dlogits = softmax_xent_bwd(probs, labels[, dloss]). Only the loss output is
 * differentiated: the probabilities are a by-product for accuracy, and a
 * gradient arriving there (dy[1]) is ignored, as nothing should train through it. */
static prt_status xent_grad(prt_grad_ctx *gc) {
    if (gc->dy[0] == -1 || !prt_grad_wants(gc, IN_LOGITS)) return PRT_OK;
    const prt_node *nd = &gc->g->nodes[gc->node];
    int in[3] = {nd->out[1], nd->in[IN_LABELS], gc->dy[0]};
    return prt_grad_emit(gc, "softmax_xent_bwd", in, gc->dy[0] == PRT_GRAD_ONE ? 2 : 3, NULL, &gc->dx[IN_LOGITS]);
}

const prt_op_schema prt_op_softmax_xent = {
    .name = "softmax_xent",
    .doc = "softmax cross-entropy loss (mean over the batch) with optional label smoothing; also outputs the "
           "probabilities",
    .min_in = 2,
    .max_in = 2,
    .n_out = 2,
    .attrs = xent_attrs,
    .n_attrs = 1,
    .infer = xent_infer,
    .flops = xent_flops,
    .inplace_in = -1,
    .workspace = xent_workspace,
    .ref = {.run = xent_ref},
    .fast = {.run = xent_fast},
    .grad = xent_grad,
    .cuda = PRT_CUDA_KERNEL(.run = prt_cuda_softmax_xent),
};

/* ---- softmax_xent_bwd ---------------------------------------------------- */

static prt_status xent_bwd_infer(prt_infer_ctx *ic) {
    PRT_CHECK(xent_check_shapes(ic, "probs"));
    if (ic->n_in > IN_DLOSS && prt_ops_numel(&ic->in[IN_DLOSS]) != 1) {
        char a[160];
        prt_shape_str(&ic->in[IN_DLOSS], a, sizeof a);
        return prt_infer_error(ic, "dloss must be the loss's gradient [1], got %s", a);
    }
    ic->out[0] = ic->in[IN_LOGITS];
    return PRT_OK;
}

static int64_t xent_bwd_flops(const prt_infer_ctx *ic) { return prt_flop_mul(prt_ops_numel(&ic->in[0]), 2); }

typedef struct xent_bwd_args {
    const float *probs;
    const int32_t *lab;
    float *dx;
    int64_t classes;
    float off, on_extra, scale; /* target = off everywhere, plus on_extra at the label */
} xent_bwd_args;

/* Element by element (probs read before dx is written), so dx may be probs. */
static void xent_bwd_range(void *arg, int64_t lo, int64_t hi) {
    const xent_bwd_args *a = arg;
    int64_t C = a->classes;
    for (int64_t n = lo; n < hi; n++) {
        const float *p = a->probs + n * C;
        float *d = a->dx + n * C;
        int64_t l = a->lab[n];
        float at_label = p[l]; /* before dx, which may be probs, overwrites it */
        for (int64_t c = 0; c < C; c++) d[c] = (p[c] - a->off) * a->scale;
        d[l] = (at_label - a->off - a->on_extra) * a->scale;
    }
}

static prt_status xent_bwd_run(const prt_kernel_call *c, bool threads) {
    PRT_CHECK(xent_check_call(c, "softmax_xent_bwd"));
    const prt_shape *ps = &c->in[IN_LOGITS]->shape;
    int64_t N = ps->d[0], C = ps->d[1];
    double s = prt_attr_float(&c->attrs[A_SMOOTHING]);
    double dloss = c->n_in > IN_DLOSS ? PRT_F32P(c->in[IN_DLOSS])[0] : 1.0;
    xent_bwd_args a = {PRT_F32P(c->in[IN_LOGITS]), prt_tensor_data(c->in[IN_LABELS]), PRT_F32P(c->out[0]), C,
                       (float)(s / (double)C), (float)(1 - s), (float)(dloss / (double)N)};
    if (threads) prt_parallel_range(N, PRT_PAR_MIN_ELEMS / (C + 1) + 1, xent_bwd_range, &a);
    else xent_bwd_range(&a, 0, N);
    return PRT_OK;
}

static prt_status xent_bwd_ref(const prt_kernel_call *c) { return xent_bwd_run(c, false); }
static prt_status xent_bwd_fast(const prt_kernel_call *c) { return xent_bwd_run(c, true); }

const prt_op_schema prt_op_softmax_xent_bwd = {
    .name = "softmax_xent_bwd",
    .doc = "gradient of softmax_xent: (probs - target) / N, times dloss when given",
    .min_in = 2,
    .max_in = 3,
    .n_out = 1,
    .attrs = xent_attrs,
    .n_attrs = 1,
    .infer = xent_bwd_infer,
    .flops = xent_bwd_flops,
    .inplace_in = IN_LOGITS,
    .ref = {.run = xent_bwd_ref},
    .fast = {.run = xent_bwd_fast},
    .grad = NULL,
    .grad_note = "backward-only op",
    .cuda = PRT_CUDA_KERNEL(.run = prt_cuda_softmax_xent_bwd),
};

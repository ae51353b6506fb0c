/* global_avgpool: [N, C, H, W] -> [N, C, 1, 1], the mean of each plane (ONNX
 * GlobalAveragePool on images). Means are summed in double. Its gradient is
 * avgpool_bwd with `global: true`, which spreads dy / (H W) over the plane. */
#include "ops/ops_util.h"
#include "ops/cuda/cuda_ops.h"

static prt_status gap_infer(prt_infer_ctx *ic) {
    const prt_shape *x = &ic->in[0];
    if (x->ndim != 4) {
        char b[160];
        prt_shape_str(x, b, sizeof b);
        return prt_infer_error(ic, "expects an input [N, C, H, W], got %s", b);
    }
    if (x->d[2] < 1 || x->d[3] < 1) {
        char b[160];
        prt_shape_str(x, b, sizeof b);
        return prt_infer_error(ic, "cannot average an empty plane: input %s", b);
    }
    ic->out[0] = prt_shape4(x->d[0], x->d[1], 1, 1);
    return PRT_OK;
}

static int64_t gap_flops(const prt_infer_ctx *ic) { return prt_ops_numel(&ic->in[0]); }

static prt_status gap_grad(prt_grad_ctx *gc) {
    if (gc->dy[0] == -1 || !prt_grad_wants(gc, 0)) return PRT_OK;
    if (gc->dy[0] == PRT_GRAD_ONE) return prt_grad_not_loss(gc);
    const prt_op_schema *s = prt_op_find(gc->g->ctx->ops, "avgpool_bwd", NULL);
    if (!s) return prt_error(gc->g->ctx, PRT_ERR_INTERNAL, "gradient builder: op 'avgpool_bwd' is not registered");
    prt_attr a[PRT_POOL_COUNT_PAD + 1];
    prt_attrs_default(s, a);
    a[PRT_POOL_GLOBAL].i[0] = 1;
    a[PRT_POOL_GLOBAL].n = 1;
    a[PRT_POOL_GLOBAL].set = true;
    int in[2] = {gc->dy[0], gc->g->nodes[gc->node].in[0]};
    return prt_grad_emit(gc, "avgpool_bwd", in, 2, a, &gc->dx[0]);
}

typedef struct gap_args { const float *x; float *y; int64_t plane; } gap_args;

/* Planes [lo, hi). */
static void gap_range(void *arg, int64_t lo, int64_t hi) {
    const gap_args *a = arg;
    for (int64_t p = lo; p < hi; p++) {
        const float *x = a->x + p * a->plane;
        double s = 0;
        for (int64_t i = 0; i < a->plane; i++) s += x[i];
        a->y[p] = (float)(s / (double)a->plane);
    }
}

static prt_status gap_setup(const prt_kernel_call *c, gap_args *a, int64_t *planes) {
    PRT_CHECK(prt_kernel_check_f32(c, "global_avgpool"));
    const prt_shape *xs = &c->in[0]->shape;
    a->x = PRT_F32P(c->in[0]);
    a->y = PRT_F32P(c->out[0]);
    a->plane = xs->d[2] * xs->d[3];
    *planes = xs->d[0] * xs->d[1];
    return PRT_OK;
}

static prt_status gap_ref(const prt_kernel_call *c) {
    gap_args a;
    int64_t planes;
    PRT_CHECK(gap_setup(c, &a, &planes));
    gap_range(&a, 0, planes);
    return PRT_OK;
}

/* The same sums in the same order, planes split between threads. */
static prt_status gap_fast(const prt_kernel_call *c) {
    gap_args a;
    int64_t planes;
    PRT_CHECK(gap_setup(c, &a, &planes));
    prt_parallel_range(planes, PRT_PAR_MIN_ELEMS / (a.plane ? a.plane : 1) + 1, gap_range, &a);
    return PRT_OK;
}

const prt_op_schema prt_op_global_avgpool = {
    .name = "global_avgpool",
    .doc = "mean of each [H, W] plane: [N, C, H, W] -> [N, C, 1, 1]",
    .min_in = 1,
    .max_in = 1,
    .n_out = 1,
    .infer = gap_infer,
    .flops = gap_flops,
    .inplace_in = -1,
    .ref = {.run = gap_ref},
    .fast = {.run = gap_fast},
    .grad = gap_grad,
    .cheap = true,
    .cuda = PRT_CUDA_KERNEL(.run = prt_cuda_global_avgpool),
    .cuda_bf16 = true,
};

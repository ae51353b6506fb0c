/* slice: y = x[..., start : start + like.shape[axis], ...] along `axis`, the
 * gradient of concat (each input's share of dy). `like` gives the output's
 * shape and is read for nothing else. */
#include "ops/ops_util.h"
#include "ops/cuda/cuda_ops.h"

#include <string.h>

enum { A_AXIS, A_START };
enum { IN_X, IN_LIKE };

static const prt_attr_def slice_attrs[] = {
    PRT_ATTR_OPT_INT("axis", 1, -PRT_MAX_DIMS, "the dimension to cut along (negative counts from the end)"),
    PRT_ATTR_OPT_INT("start", 0, 0, "first index taken along the axis"),
};

static int slice_axis(const prt_attr *attrs, int ndim) {
    int64_t a = prt_attr_int(&attrs[A_AXIS]);
    if (a < 0) a += ndim;
    return a >= 0 && a < ndim ? (int)a : -1;
}

static prt_status slice_infer(prt_infer_ctx *ic) {
    const prt_shape *x = &ic->in[IN_X], *like = &ic->in[IN_LIKE];
    char a[160], b[160];
    prt_shape_str(x, a, sizeof a);
    prt_shape_str(like, b, sizeof b);
    int axis = slice_axis(ic->attrs, x->ndim);
    if (axis < 0)
        return prt_infer_error(ic, "axis %lld is out of range for a rank-%d input",
                               (long long)prt_attr_int(&ic->attrs[A_AXIS]), x->ndim);
    bool ok = like->ndim == x->ndim;
    for (int i = 0; ok && i < x->ndim; i++) ok = i == axis || like->d[i] == x->d[i];
    if (!ok)
        return prt_infer_error(ic, "x has shape %s but like has %s; all dimensions except axis %d must match", a, b,
                               axis);
    int64_t start = prt_attr_int(&ic->attrs[A_START]), end;
    if (start < 0 || !prt_add_i64(start, like->d[axis], &end) || end > x->d[axis])
        return prt_infer_error(ic, "elements %lld to %lld along axis %d do not fit in x of shape %s", (long long)start,
                               (long long)(start + like->d[axis]), axis, a);
    ic->out[0] = *like;
    return PRT_OK;
}

static int64_t slice_flops(const prt_infer_ctx *ic) { return 0; }

/* outer: product of the dims before the axis; each outer index copies one
 * contiguous run of len*inner elements */
typedef struct slice_args {
    const float *x;
    float *y;
    int64_t x_run, y_run, offset;
} slice_args;

static void slice_geometry(const prt_kernel_call *c, slice_args *a, int64_t *outer) {
    const prt_shape *xs = &c->in[IN_X]->shape, *ys = &c->out[0]->shape;
    int axis = slice_axis(c->attrs, xs->ndim);
    int64_t inner = 1;
    *outer = 1;
    for (int i = 0; i < axis; i++) *outer *= xs->d[i];
    for (int i = axis + 1; i < xs->ndim; i++) inner *= xs->d[i];
    a->x = PRT_F32P(c->in[IN_X]);
    a->y = PRT_F32P(c->out[0]);
    a->x_run = xs->d[axis] * inner;
    a->y_run = ys->d[axis] * inner;
    a->offset = prt_attr_int(&c->attrs[A_START]) * inner;
}

static prt_status slice_ref(const prt_kernel_call *c) {
    PRT_CHECK(prt_kernel_check_f32(c, "slice"));
    slice_args a;
    int64_t outer;
    slice_geometry(c, &a, &outer);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < a.y_run; i++) a.y[o * a.y_run + i] = a.x[o * a.x_run + a.offset + i];
    return PRT_OK;
}

static void slice_range(void *arg, int64_t lo, int64_t hi) {
    const slice_args *a = arg;
    for (int64_t o = lo; o < hi; o++)
        memcpy(a->y + o * a->y_run, a->x + o * a->x_run + a->offset, (size_t)a->y_run * sizeof(float));
}

static prt_status slice_fast(const prt_kernel_call *c) {
    PRT_CHECK(prt_kernel_check_f32(c, "slice"));
    slice_args a;
    int64_t outer;
    slice_geometry(c, &a, &outer);
    prt_parallel_range(outer, PRT_PAR_MIN_ELEMS / (a.y_run + 1) + 1, slice_range, &a);
    return PRT_OK;
}

const prt_op_schema prt_op_slice = {
    .name = "slice",
    .doc = "a contiguous range along one axis, as long as `like` is there (gradient of concat)",
    .min_in = 2,
    .max_in = 2,
    .n_out = 1,
    .attrs = slice_attrs,
    .n_attrs = 2,
    .infer = slice_infer,
    .flops = slice_flops,
    .inplace_in = -1,
    .ref = {.run = slice_ref},
    .fast = {.run = slice_fast},
    .grad = NULL,
    .grad_note = "backward-only op",
    .shape_only = 1u << IN_LIKE,
    .cuda = PRT_CUDA_KERNEL(.run = prt_cuda_slice),
    .cuda_bf16 = true,
};

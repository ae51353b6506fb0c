/* concat: joins two or more tensors along `axis` (any axis; negative counts
 * from the end). The other dimensions must match. */
#include "ops/ops_util.h"
#include "ops/cuda/cuda_ops.h"

#include <string.h>

enum { A_AXIS };

static const prt_attr_def concat_attrs[] = {
    PRT_ATTR_OPT_INT("axis", 1, -PRT_MAX_DIMS, "the dimension to join along"),
};

/* The axis in [0, ndim), or -1 when out of range. */
static int concat_axis(const prt_attr *attrs, int ndim) {
    int64_t a = prt_attr_int(&attrs[A_AXIS]);
    if (a < 0) a += ndim;
    return a >= 0 && a < ndim ? (int)a : -1;
}

static prt_status concat_infer(prt_infer_ctx *ic) {
    const prt_shape *s0 = &ic->in[0];
    int axis = concat_axis(ic->attrs, s0->ndim);
    if (axis < 0)
        return prt_infer_error(ic, "axis %lld is out of range for rank-%d inputs",
                               (long long)prt_attr_int(&ic->attrs[A_AXIS]), s0->ndim);
    prt_shape out = *s0;
    for (int k = 1; k < ic->n_in; k++) {
        const prt_shape *s = &ic->in[k];
        bool ok = s->ndim == s0->ndim;
        for (int i = 0; ok && i < s->ndim; i++) ok = i == axis || s->d[i] == s0->d[i];
        if (!ok) {
            char a[160], b[160];
            prt_shape_str(s, a, sizeof a);
            prt_shape_str(s0, b, sizeof b);
            return prt_infer_error(ic, "input %d has shape %s but input 0 has %s; all dimensions except axis %d must match",
                                   k, a, b, axis);
        }
        if (!prt_add_i64(out.d[axis], s->d[axis], &out.d[axis])) return prt_infer_error(ic, "concatenated size overflows");
    }
    ic->out[0] = out;
    return PRT_OK;
}

/* dx_k = slice(dy, x_k) starting at input k's offset along the axis. The
 * offsets are fixed numbers, so the batch axis (whose size changes with the
 * batch) cannot be sliced this way. */
static prt_status concat_grad(prt_grad_ctx *gc) {
    if (gc->dy[0] == -1) return PRT_OK;
    if (gc->dy[0] == PRT_GRAD_ONE) return prt_grad_not_loss(gc);
    prt_graph *g = gc->g;
    const prt_op_schema *ss = prt_op_find(g->ctx->ops, "slice", NULL);
    if (!ss || ss->n_attrs != 2)
        return prt_error(g->ctx, PRT_ERR_INTERNAL, "gradient builder of concat: op 'slice' is missing");
    int n = g->nodes[gc->node].n_data_in;
    prt_shape s0 = prt_graph_value_shape(g, g->nodes[gc->node].in[0]);
    int axis = concat_axis(g->nodes[gc->node].attrs, s0.ndim);
    if (axis == 0)
        return prt_error(g->ctx, PRT_ERR_UNSUPPORTED,
                         "layer '%s' (concat): no gradient for a concatenation along the batch axis",
                         g->nodes[gc->node].name);
    int64_t start = 0;
    for (int k = 0; k < n; k++) {
        int x = g->nodes[gc->node].in[k];
        int64_t len = prt_graph_value_shape(g, x).d[axis];
        if (prt_grad_wants(gc, k)) {
            prt_attr attrs[2];
            prt_attrs_default(ss, attrs);
            attrs[0].i[0] = axis;
            attrs[1].i[0] = start;
            attrs[0].set = attrs[1].set = true;
            int in[2] = {gc->dy[0], x};
            PRT_CHECK(prt_grad_emit(gc, "slice", in, 2, attrs, &gc->dx[k]));
        }
        start += len;
    }
    return PRT_OK;
}

static int64_t concat_flops(const prt_infer_ctx *ic) { return 0; }

/* With only size-1 dims before the axis, input k is the contiguous run of the
 * output that starts after inputs 0..k-1. */
static bool concat_input_views(const prt_infer_ctx *ic, int64_t *elem_offsets) {
    const prt_shape *s = &ic->out[0];
    int axis = concat_axis(ic->attrs, s->ndim);
    if (axis < 0) return false;
    for (int i = 0; i < axis; i++)
        if (s->d[i] != 1) return false;
    int64_t off = 0;
    for (int k = 0; k < ic->n_in; k++) {
        elem_offsets[k] = off;
        off += prt_shape_count(&ic->in[k]);
    }
    return true;
}

/* outer: product of the dims before the axis; each input contributes a run of
 * d[axis]*inner contiguous elements per outer index */
static void concat_geometry(const prt_kernel_call *c, int *axis, int64_t *outer, int64_t *inner) {
    const prt_shape *s = &c->out[0]->shape;
    *axis = concat_axis(c->attrs, s->ndim);
    *outer = 1;
    *inner = 1;
    for (int i = 0; i < *axis; i++) *outer *= s->d[i];
    for (int i = *axis + 1; i < s->ndim; i++) *inner *= s->d[i];
}

static prt_status concat_ref(const prt_kernel_call *c) {
    PRT_CHECK(prt_kernel_check_f32(c, "concat"));
    int axis;
    int64_t outer, inner;
    concat_geometry(c, &axis, &outer, &inner);
    float *y = PRT_F32P(c->out[0]);
    int64_t out_run = c->out[0]->shape.d[axis] * inner;
    int64_t at = 0; /* offset of input k's run inside an output row */
    for (int k = 0; k < c->n_in; k++) {
        const float *x = PRT_F32P(c->in[k]);
        int64_t run = c->in[k]->shape.d[axis] * inner;
        if (outer == 1 && x == y + at) { /* planned as a view: already in place */
            at += run;
            continue;
        }
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < run; i++) y[o * out_run + at + i] = x[o * run + i];
        at += run;
    }
    return PRT_OK;
}

typedef struct concat_args {
    const prt_kernel_call *c;
    float *y;
    const int64_t *at;
    int64_t out_run, inner;
    int axis;
} concat_args;

static void concat_range(void *arg, int64_t lo, int64_t hi) {
    const concat_args *a = arg;
    const prt_kernel_call *c = a->c;
    for (int64_t t = lo; t < hi; t++) {
        int64_t o = t / c->n_in;
        int k = (int)(t % c->n_in);
        int64_t run = c->in[k]->shape.d[a->axis] * a->inner;
        float *dst = a->y + o * a->out_run + a->at[k];
        const float *src = PRT_F32P(c->in[k]) + o * run;
        if (dst != src) memcpy(dst, src, (size_t)run * sizeof(float)); /* equal: planned as a view */
    }
}

static prt_status concat_fast(const prt_kernel_call *c) {
    PRT_CHECK(prt_kernel_check_f32(c, "concat"));
    int axis;
    int64_t outer, inner;
    concat_geometry(c, &axis, &outer, &inner);
    float *y = PRT_F32P(c->out[0]);
    int64_t out_run = c->out[0]->shape.d[axis] * inner;
    if (c->n_in > PRT_VARIADIC)
        return prt_error(c->ctx, PRT_ERR_INVALID, "concat kernel: %d inputs, at most %d", c->n_in, PRT_VARIADIC);
    int64_t at[PRT_VARIADIC], off = 0;
    for (int k = 0; k < c->n_in; k++) {
        at[k] = off;
        off += c->in[k]->shape.d[axis] * inner;
    }
    concat_args a = {c, y, at, out_run, inner, axis};
    /* a task copies one input's run for one outer index; aim for
     * PRT_PAR_MIN_ELEMS elements per thread at least */
    int64_t tasks = outer * c->n_in, per_task = out_run / c->n_in + 1;
    prt_parallel_range(tasks, PRT_PAR_MIN_ELEMS / per_task + 1, concat_range, &a);
    return PRT_OK;
}

const prt_op_schema prt_op_concat = {
    .name = "concat",
    .doc = "joins tensors along an axis",
    .min_in = 2,
    .max_in = PRT_VARIADIC,
    .n_out = 1,
    .attrs = concat_attrs,
    .n_attrs = 1,
    .infer = concat_infer,
    .flops = concat_flops,
    .inplace_in = -1,
    .ref = {.run = concat_ref},
    .fast = {.run = concat_fast},
    .grad = concat_grad,
    .cheap = true,
    .input_views = concat_input_views,
    .cuda = PRT_CUDA_KERNEL(.run = prt_cuda_concat),
    .cuda_bf16 = true,
};

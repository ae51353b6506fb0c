/* Helpers private to ops/: attribute-table shorthands, window geometry for conv
 * and pooling, saturating FLOP arithmetic, kernel argument checks and the
 * OpenMP helpers the memory-bound fast paths share. */
#ifndef PARROTS_OPS_UTIL_H
#define PARROTS_OPS_UTIL_H

#include "ops/ops_impl.h"
#include "runtime/graph_impl.h"

#include <limits.h>

/* Attribute-table entries (designated initializers read badly 40 times over). */
#define PRT_ATTR_REQ(nm, ty, mn, dc) \
    {.name = (nm), .type = (ty), .required = true, .min = (mn), .doc = (dc)}
#define PRT_ATTR_OPT_INT(nm, v, mn, dc) \
    {.name = (nm), .type = PRT_ATTR_INT, .def = {.type = PRT_ATTR_INT, .n = 1, .i = {(v)}}, .min = (mn), .doc = (dc)}
#define PRT_ATTR_OPT_INTS(nm, v, mn, dc) \
    {.name = (nm), .type = PRT_ATTR_INTS, .def = {.type = PRT_ATTR_INTS, .n = 1, .i = {(v)}}, .min = (mn), .doc = (dc)}
/* An INTS attribute whose default depends on other attributes (stride = kernel):
 * the default has n = 0 and the shape function fills it in. */
#define PRT_ATTR_OPT_INTS_NONE(nm, mn, dc) \
    {.name = (nm), .type = PRT_ATTR_INTS, .def = {.type = PRT_ATTR_INTS, .n = 0}, .min = (mn), .doc = (dc)}
#define PRT_ATTR_OPT_BOOL(nm, v, dc) \
    {.name = (nm), .type = PRT_ATTR_BOOL, .def = {.type = PRT_ATTR_BOOL, .n = 1, .i = {(v)}}, .min = 0, .doc = (dc)}
#define PRT_ATTR_OPT_FLOAT(nm, v, dc) \
    {.name = (nm), .type = PRT_ATTR_FLOAT, .def = {.type = PRT_ATTR_FLOAT, .f = (v)}, .min = 0, .doc = (dc)}

/* FLOP counts are estimates for reports: they saturate instead of failing. */
static inline int64_t prt_flop_mul(int64_t a, int64_t b) {
    int64_t r;
    return __builtin_mul_overflow(a, b, &r) ? INT64_MAX : r;
}
static inline int64_t prt_flop_add(int64_t a, int64_t b) {
    int64_t r;
    return __builtin_add_overflow(a, b, &r) ? INT64_MAX : r;
}
/* Unchecked element count of a shape that passed inference. */
static inline int64_t prt_ops_numel(const prt_shape *s) {
    int64_t n = 1;
    for (int i = 0; i < s->ndim; i++) n = prt_flop_mul(n, s->d[i]);
    return n;
}

/* Geometry of a 2-D window op (conv, pooling) after attribute expansion. */
typedef struct prt_window {
    int64_t kh, kw, sh, sw, dh, dw;
    int64_t pad[4]; /* top, left, bottom, right */
    int64_t oh, ow;
} prt_window;

/* Output extent floor((in + lo + hi - dil*(k-1) - 1) / stride) + 1, computed with
 * overflow checks (attributes come from files). False on overflow; the result
 * may be <= 0, which the caller reports with the numbers. */
bool prt_window_extent(int64_t in, int64_t lo, int64_t hi, int64_t k, int64_t stride, int64_t dil,
                       int64_t *out);

/* Checks that an INTS attribute has between lo and hi values and that every value
 * is >= min; reports "<name> takes 1 or 2 values, got 3" style errors. */
prt_status prt_infer_check_ints(const prt_infer_ctx *ic, int attr, const char *name, int lo, int hi,
                                int64_t min);

/* Kernel entry check: every input and output is a contiguous f32 tensor with
 * storage. `op` names the op in the message. */
prt_status prt_kernel_check_f32(const prt_kernel_call *c, const char *op);

/* Runs fn over [0, n) split into one contiguous range per OpenMP thread, or
 * directly on the calling thread when n < 2 * min_per_thread: an OpenMP region
 * costs about half a microsecond even with an if(false) clause, which would
 * dominate small tensors. Ranges are disjoint, so results do not depend on the
 * thread count. */
typedef void (*prt_range_fn)(void *arg, int64_t lo, int64_t hi);
void prt_parallel_range(int64_t n, int64_t min_per_thread, prt_range_fn fn, void *arg);

/* The kernels of ops whose output is input `in`'s elements in another shape
 * (flatten, reshape, reshape_like): nothing to do when the planner put them in
 * place, else a copy — plain (ref) or split over the threads (fast). */
prt_status prt_copy_kernel_ref(const prt_kernel_call *c, int in, const char *what);
prt_status prt_copy_kernel_fast(const prt_kernel_call *c, int in, const char *what);
/* Elements per thread below which a memory-bound loop stays serial. */
#define PRT_PAR_MIN_ELEMS 32768

/* Shape inference shared by the elementwise one-input ops: out = in[0]. */
prt_status prt_infer_same_shape(prt_infer_ctx *ic);
int64_t prt_flops_per_elem(const prt_infer_ctx *ic, int64_t per);

/* Pooling, shared by op_maxpool.c and op_avgpool.c. Attribute order common to
 * both schemas: kernel, stride, pad, global (avgpool appends count_include_pad). */
enum { PRT_POOL_KERNEL, PRT_POOL_STRIDE, PRT_POOL_PAD, PRT_POOL_GLOBAL, PRT_POOL_COUNT_PAD };
prt_status prt_pool_window(const prt_infer_ctx *ic, const prt_attr *attrs, const prt_shape *in,
                           prt_window *w);
prt_status prt_pool_infer(prt_infer_ctx *ic);
int64_t prt_pool_flops(const prt_infer_ctx *ic);
/* avg: false = max pooling; count_pad only for avg */
prt_status prt_pool_ref(const prt_kernel_call *c, bool avg);
prt_status prt_pool_fast_prepare(const prt_kernel_call *c, bool avg, void **state);
prt_status prt_pool_fast_run(const prt_kernel_call *c);
void prt_pool_fast_release(void *state);
size_t prt_pool_workspace(const prt_infer_ctx *ic, bool avg);
/* The attribute tables of the forward ops that their backward ops share, so
 * prt_grad_emit(..., NULL attrs) copies a forward node's attributes as they are. */
extern const prt_attr_def prt_maxpool_attrs[PRT_POOL_GLOBAL + 1];
extern const prt_attr_def prt_avgpool_attrs[PRT_POOL_COUNT_PAD + 1];
extern const prt_attr_def prt_softmax_attrs[1];

/* Gradient builders: whether input k (node->in order) of gc's node wants a
 * gradient. Graph inputs (data, labels) never do, so no node is spent on them. */
static inline bool prt_grad_wants(const prt_grad_ctx *gc, int k) {
    const prt_graph *g = gc->g;
    return g->values[g->nodes[gc->node].in[k]].kind != PRT_VAL_INPUT;
}
/* The error for a builder seeded with PRT_GRAD_ONE whose op cannot be a loss. */
static inline prt_status prt_grad_not_loss(const prt_grad_ctx *gc) {
    const prt_node *nd = &gc->g->nodes[gc->node];
    return prt_error(gc->g->ctx, PRT_ERR_INVALID, "layer '%s' (%s): its output is not a scalar loss", nd->name,
                     prt_op_get(gc->g->ctx->ops, nd->op)->name);
}


/* ---- dropout's random stream (op_dropout.c and op_dropout_bwd.c) ------------
 * Element e of local sample j draws counter
 *     step * (numel * stride) + (j * stride + offset) * per_sample + e
 * with stride/offset the call's sample_stride/sample_offset (0/0: 1/0), so
 * element e of combined sample j*stride + offset gets the same mask on any
 * number of ranks; with stride 1 it is step * numel + i, one process's counter. */
typedef struct prt_dropout_ctr {
    uint64_t base;   /* step * combined numel, plus offset * per when stride is 1 */
    int64_t per;     /* elements per sample */
    int64_t stride, offset;
} prt_dropout_ctr;

static inline prt_dropout_ctr prt_dropout_counters(const prt_kernel_call *c, int64_t n) {
    const prt_shape *s = &c->in[0]->shape;
    int64_t batch = s->ndim > 0 ? s->d[0] : 1;
    bool dp = c->sample_stride > 0;
    prt_dropout_ctr k = {.per = batch > 0 ? n / batch : 1, .stride = dp ? c->sample_stride : 1,
                         .offset = dp ? c->sample_offset : 0};
    /* unsigned arithmetic: wraps the same way on every rank and in the backward */
    k.base = c->step * ((uint64_t)n * (uint64_t)k.stride);
    if (k.stride == 1) k.base += (uint64_t)k.offset * (uint64_t)k.per;
    return k;
}

/* The CUDA kernels' per-step value (prt_kernel.step_values of dropout and
 * dropout_bwd): the only part of the counters that changes with the step,
 * prt_dropout_counters(c, numel of input 0).base, as one uint64_t in slot. */
#define PRT_DROPOUT_STEP_BYTES sizeof(uint64_t)
prt_status prt_dropout_step_values(const prt_kernel_call *c, void *slot);

static inline uint64_t prt_dropout_counter(const prt_dropout_ctr *k, int64_t i) {
    if (k->stride == 1) return k->base + (uint64_t)i;
    int64_t j = i / k->per;
    return k->base + ((uint64_t)j * (uint64_t)k->stride + (uint64_t)k->offset) * (uint64_t)k->per +
           (uint64_t)(i - j * k->per);
}


/* ---- reduce_to's geometry (ops/op_binary.c and its CUDA kernel) ------------
 * The dims of x split into kept ones (like's, in order) and summed ones, each
 * list merged where contiguous. */
typedef struct prt_reduce_geom {
    int nk, nr;
    int64_t kd[PRT_MAX_DIMS], ks[PRT_MAX_DIMS]; /* kept: size, x stride */
    int64_t rd[PRT_MAX_DIMS], rs[PRT_MAX_DIMS]; /* summed: size, x stride */
    int64_t n_out, n_sum;
} prt_reduce_geom;

void prt_reduce_geom_init(prt_reduce_geom *g, const prt_shape *x, const prt_shape *like);

#if defined(__CUDACC__)
#define PRT_HOST_DEVICE __host__ __device__
#else
#define PRT_HOST_DEVICE
#endif

/* Output element o: the sum, in double and in x's order, of the elements of x
 * it gathers (the same bits on the CPU and the GPU). */
static inline PRT_HOST_DEVICE double prt_reduce_geom_sum(const prt_reduce_geom *g, const float *x, int64_t o) {
    int64_t base = 0, r = o;
    for (int i = g->nk - 1; i >= 0; i--) {
        base += (r % g->kd[i]) * g->ks[i];
        r /= g->kd[i];
    }
    if (g->nr == 0) return x[base];
    double sum = 0;
    if (g->n_sum == 0) return sum;
    int64_t inner = g->rd[g->nr - 1], is = g->rs[g->nr - 1], outer = g->n_sum / inner;
    for (int64_t q = 0; q < outer; q++) {
        int64_t off = base, t = q;
        for (int i = g->nr - 2; i >= 0; i--) {
            off += (t % g->rd[i]) * g->rs[i];
            t /= g->rd[i];
        }
        for (int64_t j = 0; j < inner; j++) sum += x[off + j * is];
    }
    return sum;
}

#endif

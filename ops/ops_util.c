/* Shared pieces of the op shape functions and kernels (see ops/ops_util.h). */
#include "ops/ops_util.h"

#include <string.h>

#include <omp.h>

bool prt_window_extent(int64_t in, int64_t lo, int64_t hi, int64_t k, int64_t stride, int64_t dil,
                       int64_t *out) {
    int64_t span, padded;
    if (k < 1 || stride < 1 || dil < 1) return false;
    if (!prt_mul_i64(dil, k - 1, &span) || !prt_add_i64(span, 1, &span)) return false;
    if (!prt_add_i64(in, lo, &padded) || !prt_add_i64(padded, hi, &padded)) return false;
    int64_t room = padded - span; /* both are far from INT64_MIN: no overflow */
    /* floor division that stays correct for a negative room */
    int64_t q = room >= 0 ? room / stride : -((-room + stride - 1) / stride);
    *out = q + 1;
    return true;
}

prt_status prt_infer_check_ints(const prt_infer_ctx *ic, int attr, const char *name, int lo, int hi,
                                int64_t min) {
    const prt_attr *a = &ic->attrs[attr];
    if (a->n < lo || a->n > hi) {
        if (lo == hi) return prt_infer_error(ic, "%s takes %d value%s, got %d", name, lo, lo == 1 ? "" : "s", a->n);
        if (hi == 4) return prt_infer_error(ic, "%s takes 1, 2 or 4 values, got %d", name, a->n);
        return prt_infer_error(ic, "%s takes %d or %d values, got %d", name, lo, hi, a->n);
    }
    for (int k = 0; k < a->n; k++)
        if (a->i[k] < min)
            return prt_infer_error(ic, "%s must be >= %lld, got %lld", name, (long long)min, (long long)a->i[k]);
    return PRT_OK;
}

prt_status prt_kernel_check_f32(const prt_kernel_call *c, const char *op) {
    for (int k = 0; k < c->n_in + c->n_out; k++) {
        const prt_tensor *t = k < c->n_in ? c->in[k] : c->out[k - c->n_in];
        const char *role = k < c->n_in ? "input" : "output";
        int idx = k < c->n_in ? k : k - c->n_in;
        if (t->dtype != PRT_F32)
            return prt_error(c->ctx, PRT_ERR_UNSUPPORTED, "%s kernel: %s %d is %s; CPU kernels compute f32", op, role, idx,
                             prt_dtype_name(t->dtype));
        if (!prt_tensor_is_contiguous(t))
            return prt_error(c->ctx, PRT_ERR_UNSUPPORTED, "%s kernel: %s %d is not contiguous", op, role, idx);
    }
    return PRT_OK;
}

prt_status prt_infer_same_shape(prt_infer_ctx *ic) {
    ic->out[0] = ic->in[0];
    return PRT_OK;
}

int64_t prt_flops_per_elem(const prt_infer_ctx *ic, int64_t per) {
    return prt_flop_mul(prt_ops_numel(&ic->out[0]), per);
}

void prt_parallel_range(int64_t n, int64_t min_per_thread, prt_range_fn fn, void *arg) {
    int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (min_per_thread < 1) min_per_thread = 1;
    if (threads > n / min_per_thread) threads = (int)(n / min_per_thread);
    if (threads <= 1) {
        if (n > 0) fn(arg, 0, n);
        return;
    }
#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        /* 16-element (64-byte) aligned split points keep threads off each other's cache lines */
        int64_t per = (n / nt + 15) & ~(int64_t)15;
        int64_t lo = per * t, hi = t == nt - 1 ? n : per * (t + 1);
        if (lo < n) fn(arg, lo, hi < n ? hi : n);
    }
}

prt_status prt_copy_kernel_ref(const prt_kernel_call *c, int in, const char *what) {
    PRT_CHECK(prt_kernel_check_f32(c, what));
    const float *x = PRT_F32P(c->in[in]);
    float *y = PRT_F32P(c->out[0]);
    int64_t n = prt_shape_count(&c->out[0]->shape);
    if (x != y)
        for (int64_t i = 0; i < n; i++) y[i] = x[i];
    return PRT_OK;
}

typedef struct copy_args { const float *x; float *y; } copy_args;

static void copy_range(void *arg, int64_t lo, int64_t hi) {
    const copy_args *a = arg;
    memcpy(a->y + lo, a->x + lo, (size_t)(hi - lo) * sizeof(float));
}

prt_status prt_copy_kernel_fast(const prt_kernel_call *c, int in, const char *what) {
    PRT_CHECK(prt_kernel_check_f32(c, what));
    copy_args a = {PRT_F32P(c->in[in]), PRT_F32P(c->out[0])};
    /* both cores' load bandwidth beats one memcpy */
    if (a.x != a.y) prt_parallel_range(prt_shape_count(&c->out[0]->shape), PRT_PAR_MIN_ELEMS, copy_range, &a);
    return PRT_OK;
}

static void reduce_push(int *n, int64_t *d, int64_t *s, int64_t size, int64_t stride) {
    if (*n > 0 && s[*n - 1] == stride * size) {
        d[*n - 1] *= size;
        s[*n - 1] = stride;
        return;
    }
    d[*n] = size;
    s[*n] = stride;
    (*n)++;
}

void prt_reduce_geom_init(prt_reduce_geom *g, const prt_shape *x, const prt_shape *like) {
    memset(g, 0, sizeof *g);
    int64_t xs[PRT_MAX_DIMS], s = 1;
    for (int i = x->ndim - 1; i >= 0; i--) {
        xs[i] = s;
        s *= x->d[i];
    }
    g->n_out = g->n_sum = 1;
    for (int i = 0; i < x->ndim; i++) {
        if (x->d[i] == 1) continue;
        int k = i - (x->ndim - like->ndim);
        if (k >= 0 && like->d[k] == x->d[i]) {
            reduce_push(&g->nk, g->kd, g->ks, x->d[i], xs[i]);
            g->n_out *= x->d[i];
        } else {
            reduce_push(&g->nr, g->rd, g->rs, x->d[i], xs[i]);
            g->n_sum *= x->d[i];
        }
    }
}

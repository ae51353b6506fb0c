/* The inner-product backward plumbing shared by linear_bwd_data and
 * linear_bwd_weight: shape inference through linear's own checks, FLOPs, and
 * the oneDNN fast path (inner_product backward data / weights) on the plain
 * layouts, the input viewed as [N, in] like the forward does. */
#include "ops/bwd_util.h"

#include <string.h>

void prt_linear_bwd_dims(const prt_shape *x, int64_t out, prt_linear_dims *d) {
    d->n = x->d[0];
    d->k = 1;
    for (int i = 1; i < x->ndim; i++) d->k *= x->d[i];
    d->out = out;
}

prt_status prt_linear_bwd_infer(prt_infer_ctx *ic, prt_linear_bwd_kind kind) {
    const prt_shape *x = &ic->in[kind == PRT_LINEAR_BWD_DATA ? 2 : 1];
    /* the forward's shape function validates x and the attributes */
    prt_shape y, params[2];
    bool present[2];
    prt_infer_ctx f = *ic;
    f.n_in = 1;
    f.in = x;
    f.n_out = 1;
    f.out = &y;
    f.n_params = 2;
    f.params = params;
    f.param_present = present;
    PRT_CHECK(prt_op_linear.infer(&f));
    const struct { const prt_shape *got, *want; const char *what; } chk[] = {
        {&ic->in[0], &y, "dy (the gradient of the linear output)"},
        {kind == PRT_LINEAR_BWD_DATA ? &ic->in[1] : &params[0], &params[0], "the weight"},
    };
    for (int i = 0; i < 2; i++) {
        if (prt_shape_eq(chk[i].got, chk[i].want)) continue;
        char a[160], b[160], xs[160];
        prt_shape_str(chk[i].got, a, sizeof a);
        prt_shape_str(chk[i].want, b, sizeof b);
        prt_shape_str(x, xs, sizeof xs);
        return prt_infer_error(ic, "%s is %s, expected %s for the input %s", chk[i].what, a, b, xs);
    }
    ic->out[0] = kind == PRT_LINEAR_BWD_DATA ? *x : params[0];
    return PRT_OK;
}

int64_t prt_linear_bwd_flops(const prt_infer_ctx *ic, prt_linear_bwd_kind kind) {
    prt_linear_dims d;
    prt_linear_bwd_dims(&ic->in[kind == PRT_LINEAR_BWD_DATA ? 2 : 1], ic->in[0].d[1], &d);
    return prt_flop_mul(prt_flop_mul(2 * d.n, d.out), d.k);
}

static dnnl_status_t plan_make(const prt_linear_dims *d, prt_linear_bwd_kind kind, dnnl_engine_t eng,
                               prt_dnnl_plan *p) {
    memset(p, 0, sizeof *p);
    dnnl_memory_desc_t src, wei, dst;
    int64_t sd[2] = {d->n, d->k}, wd[2] = {d->out, d->k}, dd[2] = {d->n, d->out};
    dnnl_inner_product_desc_t fd, bd;
    dnnl_primitive_desc_t hint = NULL, pd = NULL;
    dnnl_status_t st = prt_dnnl_md_plain(&src, 2, sd);
    if (st == dnnl_success) st = prt_dnnl_md_plain(&wei, 2, wd);
    if (st == dnnl_success) st = prt_dnnl_md_plain(&dst, 2, dd);
    if (st == dnnl_success) st = dnnl_inner_product_forward_desc_init(&fd, dnnl_forward_training, &src, &wei, NULL, &dst);
    if (st == dnnl_success) st = prt_dnnl_pd_create(&hint, &fd, eng);
    if (st != dnnl_success) return st;
    bool data = kind == PRT_LINEAR_BWD_DATA;
    if (data)
        st = dnnl_inner_product_backward_data_desc_init(&bd, &src, &wei, &dst);
    else
        st = dnnl_inner_product_backward_weights_desc_init(&bd, &src, &wei, NULL, &dst);
    if (st == dnnl_success) st = prt_dnnl_pd_create_hint(&pd, &bd, eng, hint);
    dnnl_primitive_desc_destroy(hint);
    if (st != dnnl_success) return st;
    /* every descriptor is concrete, so the plan needs no reorders */
    prt_dnnl_io io[3] = {
        {DNNL_ARG_DIFF_DST, 0, dst},
        data ? (prt_dnnl_io){DNNL_ARG_WEIGHTS, 1, wei} : (prt_dnnl_io){DNNL_ARG_SRC, 1, src},
        data ? (prt_dnnl_io){DNNL_ARG_DIFF_SRC, -1, src} : (prt_dnnl_io){DNNL_ARG_DIFF_WEIGHTS, -1, wei},
    };
    return prt_dnnl_plan_make(p, pd, io, 3, eng);
}

size_t prt_linear_bwd_workspace(const prt_infer_ctx *ic, prt_linear_bwd_kind kind) {
    dnnl_engine_t eng = prt_dnnl_engine_quiet();
    prt_linear_dims d;
    prt_linear_bwd_dims(&ic->in[kind == PRT_LINEAR_BWD_DATA ? 2 : 1], ic->in[0].d[1], &d);
    prt_dnnl_plan p;
    if (!eng || d.k == 0 || plan_make(&d, kind, eng, &p) != dnnl_success) return 0;
    size_t total = p.total;
    prt_dnnl_plan_free(&p);
    return total;
}

prt_status prt_linear_bwd_check(const prt_kernel_call *c, prt_linear_bwd_kind kind) {
    const char *what = kind == PRT_LINEAR_BWD_DATA ? "linear_bwd_data" : "linear_bwd_weight";
    int want = kind == PRT_LINEAR_BWD_DATA ? 3 : 2;
    PRT_CHECK(prt_kernel_check_f32(c, what));
    if (c->n_in != want || c->n_out != 1)
        return prt_error(c->ctx, PRT_ERR_INTERNAL, "%s kernel: %d inputs and %d outputs, expected %d and 1", what,
                         c->n_in, c->n_out, want);
    return PRT_OK;
}

prt_status prt_linear_bwd_prepare(const prt_kernel_call *c, prt_linear_bwd_kind kind, void **state) {
    const char *what = kind == PRT_LINEAR_BWD_DATA ? "linear_bwd_data" : "linear_bwd_weight";
    PRT_CHECK(prt_linear_bwd_check(c, kind));
    prt_linear_dims d;
    prt_linear_bwd_dims(&c->in[kind == PRT_LINEAR_BWD_DATA ? 2 : 1]->shape, c->in[0]->shape.d[1], &d);
    dnnl_engine_t eng;
    PRT_CHECK(prt_dnnl_engine(c->ctx, &eng));
    prt_dnnl_plan p;
    PRT_CHECK(prt_dnnl_check(c->ctx, plan_make(&d, kind, eng, &p), what));
    prt_dnnl_prim *s;
    prt_status st = prt_dnnl_prim_create(c, &p, what, &s);
    prt_dnnl_plan_free(&p);
    if (st == PRT_OK) *state = s;
    return st;
}

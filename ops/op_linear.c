/* linear: y = x W^T + b, x flattened to [N, in] (every dim after the first),
 * weight [out, in], bias [out]. Fast path: oneDNN's inner product on the plain
 * layouts (its GEMM kernel; the weights change every step, so a blocked copy
 * would have to be redone each run). */
#include "ops/bwd_util.h"
#include "ops/cuda/cudnn_util.h"

enum { A_OUT, A_BIAS };
enum { P_WEIGHT, P_BIAS };

/* shared with linear_bwd_data and linear_bwd_weight (ops/bwd_util.h) */
const prt_attr_def prt_linear_attrs[] = {
    PRT_ATTR_REQ("out", PRT_ATTR_INT, 1, "output features"),
    PRT_ATTR_OPT_BOOL("bias", 1, "add a learned bias"),
};

/* PyTorch's default magnitude U(+-1/sqrt(in)): the only linear of a CNN is
 * usually the classifier, where He scaling would start with large logits. */
static const prt_param_def linear_params[] = {
    {.name = "weight", .trainable = true, .init = PRT_INIT_UNIFORM_FAN},
    {.name = "bias", .trainable = true, .init = PRT_INIT_ZEROS},
};

static prt_status linear_infer(prt_infer_ctx *ic) {
    const prt_shape *in = &ic->in[0];
    if (in->ndim < 2) {
        char b[160];
        prt_shape_str(in, b, sizeof b);
        return prt_infer_error(ic, "expects an input of rank 2 or more ([N, features...]), got %s", b);
    }
    int64_t k = 1;
    for (int i = 1; i < in->ndim; i++)
        if (!prt_mul_i64(k, in->d[i], &k)) return prt_infer_error(ic, "flattened input size overflows");
    int64_t out = prt_attr_int(&ic->attrs[A_OUT]);
    if (out < 1) return prt_infer_error(ic, "out must be >= 1, got %lld", (long long)out);
    int64_t yd[2] = {in->d[0], out}, wd[2] = {out, k};
    ic->out[0] = prt_shape_make(2, yd);
    ic->params[P_WEIGHT] = prt_shape_make(2, wd);
    ic->param_present[P_WEIGHT] = true;
    ic->params[P_BIAS] = prt_shape_make(1, &out);
    ic->param_present[P_BIAS] = prt_attr_bool(&ic->attrs[A_BIAS]);
    return PRT_OK;
}

static int64_t linear_flops(const prt_infer_ctx *ic) {
    int64_t n = ic->out[0].d[0], out = ic->out[0].d[1];
    int64_t k = prt_ops_numel(&ic->in[0]) / (n ? n : 1);
    int64_t f = prt_flop_mul(prt_flop_mul(2 * n, out), k);
    return prt_attr_bool(&ic->attrs[A_BIAS]) ? prt_flop_add(f, prt_flop_mul(n, out)) : f;
}

static prt_status linear_check(const prt_kernel_call *c) {
    PRT_CHECK(prt_kernel_check_f32(c, "linear"));
    int want = prt_attr_bool(&c->attrs[A_BIAS]) ? 3 : 2;
    if (c->n_in != want)
        return prt_error(c->ctx, PRT_ERR_INTERNAL, "linear kernel: %d inputs, expected %d", c->n_in, want);
    return PRT_OK;
}

static prt_status linear_ref(const prt_kernel_call *c) {
    PRT_CHECK(linear_check(c));
    const float *x = PRT_F32P(c->in[0]), *w = PRT_F32P(c->in[1]);
    const float *b = c->n_in > 2 ? PRT_F32P(c->in[2]) : NULL;
    float *y = PRT_F32P(c->out[0]);
    int64_t n = c->out[0]->shape.d[0], out = c->out[0]->shape.d[1], k = c->in[1]->shape.d[1];
    for (int64_t i = 0; i < n; i++) {
        for (int64_t o = 0; o < out; o++) {
            float s = b ? b[o] : 0.0f;
            for (int64_t j = 0; j < k; j++) s += x[i * k + j] * w[o * k + j];
            y[i * out + o] = s;
        }
    }
    return PRT_OK;
}

/* ---- fast path: oneDNN inner product ---------------------------------- */

typedef struct linear_state {
    prt_dnnl_base b;
    dnnl_primitive_t prim;
    dnnl_memory_t src, wei, bias, dst, scratch;
} linear_state;

static dnnl_status_t linear_pd(int64_t n, int64_t k, int64_t out, bool bias, dnnl_engine_t eng,
                               dnnl_primitive_desc_t *pd) {
    dnnl_memory_desc_t src, wei, b, dst;
    int64_t sd[2] = {n, k}, wd[2] = {out, k}, dd[2] = {n, out};
    dnnl_inner_product_desc_t d;
    dnnl_status_t st = prt_dnnl_md_plain(&src, 2, sd);
    if (st == dnnl_success) st = prt_dnnl_md_plain(&wei, 2, wd);
    if (st == dnnl_success) st = prt_dnnl_md_plain(&b, 1, &out);
    if (st == dnnl_success) st = prt_dnnl_md_plain(&dst, 2, dd);
    if (st == dnnl_success)
        st = dnnl_inner_product_forward_desc_init(&d, dnnl_forward_inference, &src, &wei, bias ? &b : NULL, &dst);
    if (st == dnnl_success) st = prt_dnnl_pd_create(pd, &d, eng);
    return st;
}

static size_t linear_workspace(const prt_infer_ctx *ic) {
    dnnl_engine_t eng = prt_dnnl_engine_quiet();
    dnnl_primitive_desc_t pd;
    int64_t n = ic->out[0].d[0], out = ic->out[0].d[1], k = n ? prt_ops_numel(&ic->in[0]) / n : 0;
    if (!eng || k == 0 || linear_pd(n, k, out, prt_attr_bool(&ic->attrs[A_BIAS]), eng, &pd) != dnnl_success) return 0;
    size_t s = prt_dnnl_scratch_size(pd);
    dnnl_primitive_desc_destroy(pd);
    return s ? prt_dnnl_align(s) : 0;
}

static void linear_release(void *state) {
    linear_state *s = state;
    if (!s) return;
    if (s->prim) dnnl_primitive_destroy(s->prim);
    dnnl_memory_t *m[] = {&s->src, &s->wei, &s->bias, &s->dst, &s->scratch};
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        if (*m[i]) dnnl_memory_destroy(*m[i]);
    prt_dnnl_base_fini(&s->b);
    prt_free(s->b.ctx, s, sizeof *s);
}

static prt_status linear_prepare(const prt_kernel_call *c, void **state) {
    PRT_CHECK(linear_check(c));
    prt_context *ctx = c->ctx;
    linear_state *s = prt_calloc(ctx, 1, sizeof *s);
    if (!s) return prt_error(ctx, PRT_ERR_NOMEM, "linear kernel state");
    s->b.ctx = ctx;
    prt_status st;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_engine_t eng;
    PRT_CHECK_GOTO(prt_dnnl_engine(ctx, &eng), st, fail);
    int64_t n = c->out[0]->shape.d[0], out = c->out[0]->shape.d[1], k = c->in[1]->shape.d[1];
    bool bias = c->n_in > 2;
    PRT_DNNL_CHECK_GOTO(linear_pd(n, k, out, bias, eng, &pd), ctx, "linear", st, fail);
    size_t scratch = prt_dnnl_scratch_size(pd);
    PRT_CHECK_GOTO(prt_dnnl_base_init(c, &s->b, scratch ? prt_dnnl_align(scratch) : 0), st, fail);
    PRT_DNNL_CHECK_GOTO(dnnl_primitive_create(&s->prim, pd), ctx, "linear", st, fail);
    struct { dnnl_memory_t *m; dnnl_query_t q; } mems[] = {
        {&s->src, dnnl_query_src_md}, {&s->wei, dnnl_query_weights_md}, {&s->dst, dnnl_query_dst_md}};
    for (size_t i = 0; i < 3; i++)
        PRT_DNNL_CHECK_GOTO(prt_dnnl_mem(mems[i].m, dnnl_primitive_desc_query_md(pd, mems[i].q, 0), eng), ctx, "linear",
                            st, fail);
    if (bias)
        PRT_DNNL_CHECK_GOTO(prt_dnnl_mem(&s->bias, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 1), eng), ctx,
                            "linear", st, fail);
    if (scratch)
        PRT_DNNL_CHECK_GOTO(prt_dnnl_mem(&s->scratch, dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0), eng),
                            ctx, "linear", st, fail);
    dnnl_primitive_desc_destroy(pd);
    *state = s;
    return PRT_OK;
fail:
    if (pd) dnnl_primitive_desc_destroy(pd);
    linear_release(s);
    return st;
}

static prt_status linear_fast(const prt_kernel_call *c) {
    linear_state *s = c->state;
    if (!s) return prt_error(c->ctx, PRT_ERR_INTERNAL, "linear kernel: run before prepare");
    dnnl_exec_arg_t args[5];
    int n = 0;
    PRT_CHECK(prt_dnnl_bind(&s->b, s->src, PRT_F32P(c->in[0]), "linear"));
    PRT_CHECK(prt_dnnl_bind(&s->b, s->wei, PRT_F32P(c->in[1]), "linear"));
    PRT_CHECK(prt_dnnl_bind(&s->b, s->dst, PRT_F32P(c->out[0]), "linear"));
    args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, s->src};
    args[n++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, s->wei};
    args[n++] = (dnnl_exec_arg_t){DNNL_ARG_DST, s->dst};
    if (s->bias) {
        PRT_CHECK(prt_dnnl_bind(&s->b, s->bias, PRT_F32P(c->in[2]), "linear"));
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, s->bias};
    }
    if (s->scratch) {
        char *ws;
        PRT_CHECK(prt_dnnl_ws(&s->b, c, "linear", &ws));
        PRT_CHECK(prt_dnnl_bind(&s->b, s->scratch, ws, "linear"));
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, s->scratch};
    }
    return prt_dnnl_exec(&s->b, s->prim, n, args, "linear");
}

/* ---- gradient --------------------------------------------------------- */

/* dx = linear_bwd_data(dy, w, x) (skipped when x is a graph input, as for
 * conv), dw = linear_bwd_weight(dy, x), db = bias_grad(dy). The weight is
 * node->in[1] and the bias, when bound, node->in[2]: one data input, and the
 * weight slot is always bound. */
static prt_status linear_grad(prt_grad_ctx *gc) {
    prt_graph *g = gc->g;
    int dy = gc->dy[0];
    if (dy == -1) return PRT_OK;
    const prt_node *nd = &g->nodes[gc->node];
    if (dy == PRT_GRAD_ONE)
        return prt_error(g->ctx, PRT_ERR_INVALID, "layer '%s' (linear): its output is not a scalar loss", nd->name);
    /* copies: emitting nodes may move g->nodes */
    int x = nd->in[0], w = nd->in[1];
    bool bias = (nd->param_mask >> P_BIAS) & 1u;
    if (g->values[x].kind != PRT_VAL_INPUT) {
        int in[3] = {dy, w, x};
        PRT_CHECK(prt_grad_emit(gc, "linear_bwd_data", in, 3, NULL, &gc->dx[0]));
    }
    int in[2] = {dy, x};
    PRT_CHECK(prt_grad_emit(gc, "linear_bwd_weight", in, 2, NULL, &gc->dx[1]));
    if (bias) {
        prt_attr none[1] = {{0}};
        PRT_CHECK(prt_grad_emit(gc, "bias_grad", &dy, 1, none, &gc->dx[2]));
    }
    return PRT_OK;
}

const prt_op_schema prt_op_linear = {
    .name = "linear",
    .doc = "fully connected layer over the flattened input",
    .min_in = 1,
    .max_in = 1,
    .n_out = 1,
    .attrs = prt_linear_attrs,
    .n_attrs = 2,
    .params = linear_params,
    .n_params = 2,
    .infer = linear_infer,
    .flops = linear_flops,
    .inplace_in = -1,
    .workspace = linear_workspace,
    .ref = {.run = linear_ref},
    .fast = {.prepare = linear_prepare, .run = linear_fast, .release = linear_release},
    .grad = linear_grad,
    .cuda = PRT_CUDNN_KERNEL(NULL, prt_cudnn_linear, NULL),
    .cuda_bf16 = true,
};

/* maxpool, avgpool, maxpool_bwd and avgpool_bwd on CUDA: our own kernels
 * (cudnn_kernels.cu), not cuDNN's pooling. cuDNN's pooling descriptor pads
 * symmetrically, where ours takes [top, left, bottom, right]; and cuDNN's
 * max-pool backward needs the forward output y, which maxpool_bwd(dy, x) does
 * not receive (the CPU kernel finds each window's winner again in x). The
 * kernels repeat ops/pool.c and ops/op_pool_bwd.c's arithmetic, so results
 * equal the CPU's bit for bit. */
#define PRT_CUDNN_IMPL
#include "ops/cuda/cudnn_util.h"
#include "ops/ops_util.h"

enum { IN_DY, IN_X }; /* the backward ops' inputs */

static void to_window(const prt_window *w, prt_cuk_window *k) {
    *k = (prt_cuk_window){.kh = w->kh, .kw = w->kw, .sh = w->sh, .sw = w->sw, .pt = w->pad[0], .pl = w->pad[1],
                          .oh = w->oh, .ow = w->ow};
}

static prt_status pool_fwd(const prt_kernel_call *c, bool avg) {
    const char *what = avg ? "avgpool" : "maxpool";
    prt_dtype dt = PRT_F32;
    PRT_CHECK(prt_cudnn_check_act(c, what, ~0u, ~0u, &dt));
    const prt_shape *s = &c->in[0]->shape;
    prt_window w = {0};
    prt_pool_window(NULL, c->attrs, s, &w);
    prt_cuk_window k;
    to_window(&w, &k);
    bool count_pad = avg && prt_attr_bool(&c->attrs[PRT_POOL_COUNT_PAD]);
    PRT_CUK_TRY(c->ctx, what,
                prt_cuk_pool_fwd(c->in[0]->data, c->out[0]->data, s->d[0] * s->d[1], s->d[2], s->d[3], &k, avg,
                                 count_pad, dt == PRT_BF16, c->stream));
    return PRT_OK;
}

static prt_status pool_bwd(const prt_kernel_call *c, bool avg) {
    const char *what = avg ? "avgpool_bwd" : "maxpool_bwd";
    prt_dtype dt = PRT_F32;
    PRT_CHECK(prt_cudnn_check_act(c, what, ~0u, ~0u, &dt));
    if (c->n_in != 2 || c->n_out != 1)
        return prt_error(c->ctx, PRT_ERR_INTERNAL, "%s on CUDA: %d inputs and %d outputs, expected 2 and 1", what,
                         c->n_in, c->n_out);
    const prt_shape *s = &c->in[IN_X]->shape;
    prt_window w = {0};
    prt_pool_window(NULL, c->attrs, s, &w);
    prt_cuk_window k;
    to_window(&w, &k);
    bool count_pad = avg && prt_attr_bool(&c->attrs[PRT_POOL_COUNT_PAD]);
    /* avg: x is shape-only, its data may be gone */
    PRT_CUK_TRY(c->ctx, what,
                prt_cuk_pool_bwd(c->in[IN_DY]->data, avg ? NULL : c->in[IN_X]->data, c->out[0]->data,
                                 s->d[0] * s->d[1], s->d[2], s->d[3], &k, avg, count_pad, dt == PRT_BF16, c->stream));
    return PRT_OK;
}

prt_status prt_cudnn_maxpool(const prt_kernel_call *c) { return pool_fwd(c, false); }
prt_status prt_cudnn_avgpool(const prt_kernel_call *c) { return pool_fwd(c, true); }
prt_status prt_cudnn_maxpool_bwd(const prt_kernel_call *c) { return pool_bwd(c, false); }
prt_status prt_cudnn_avgpool_bwd(const prt_kernel_call *c) { return pool_bwd(c, true); }

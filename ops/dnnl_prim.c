/* One oneDNN primitive over a few of the graph's plain tensors, with a reorder
 * wherever the primitive chose another layout (see "plans" in ops/dnnl_util.h).
 * The backward kernels (conv data and weight gradients, inner product) share it:
 * they differ only in how they describe the primitive. */
#include "ops/dnnl_util.h"

#include <string.h>

dnnl_status_t prt_dnnl_pd_create_hint(dnnl_primitive_desc_t *pd, const void *op_desc, dnnl_engine_t eng,
                                      const_dnnl_primitive_desc_t hint) {
    dnnl_primitive_attr_t attr;
    dnnl_status_t s = dnnl_primitive_attr_create(&attr);
    if (s != dnnl_success) return s;
    s = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (s == dnnl_success) s = dnnl_primitive_desc_create(pd, op_desc, attr, eng, hint);
    dnnl_primitive_attr_destroy(attr);
    return s;
}

dnnl_status_t prt_dnnl_reorder_pd(const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to, dnnl_engine_t eng,
                                  dnnl_primitive_desc_t *pd, size_t *scratch) {
    *pd = NULL;
    if (dnnl_memory_desc_equal(from, to)) return dnnl_success;
    dnnl_primitive_attr_t attr;
    dnnl_status_t st = dnnl_primitive_attr_create(&attr);
    if (st != dnnl_success) return st;
    st = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (st == dnnl_success) st = dnnl_reorder_primitive_desc_create(pd, from, eng, to, eng, attr);
    dnnl_primitive_attr_destroy(attr);
    if (st == dnnl_success) {
        size_t z = prt_dnnl_scratch_size(*pd);
        if (z > *scratch) *scratch = z;
    }
    return st;
}

void prt_dnnl_plan_free(prt_dnnl_plan *p) {
    if (p->pd) dnnl_primitive_desc_destroy(p->pd);
    for (int i = 0; i < PRT_DNNL_MAX_IO; i++)
        if (p->reorder[i]) dnnl_primitive_desc_destroy(p->reorder[i]);
    memset(p, 0, sizeof *p);
}

dnnl_status_t prt_dnnl_plan_make(prt_dnnl_plan *p, dnnl_primitive_desc_t pd, const prt_dnnl_io *io, int n_io,
                                 dnnl_engine_t eng) {
    memset(p, 0, sizeof *p);
    p->pd = pd;
    if (n_io < 1 || n_io > PRT_DNNL_MAX_IO) {
        prt_dnnl_plan_free(p);
        return dnnl_invalid_arguments;
    }
    p->n_io = n_io;
    memcpy(p->io, io, (size_t)n_io * sizeof *io);
    size_t scratch = prt_dnnl_scratch_size(pd);
    for (int i = 0; i < n_io; i++) {
        const dnnl_memory_desc_t *inner = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, io[i].arg);
        if (!inner) {
            prt_dnnl_plan_free(p);
            return dnnl_invalid_arguments;
        }
        /* inputs go user -> primitive layout, outputs come back the other way */
        bool out = io[i].slot < 0;
        dnnl_status_t st = out ? prt_dnnl_reorder_pd(inner, &io[i].user, eng, &p->reorder[i], &scratch)
                               : prt_dnnl_reorder_pd(&io[i].user, inner, eng, &p->reorder[i], &scratch);
        if (st != dnnl_success) {
            prt_dnnl_plan_free(p);
            return st;
        }
    }
    /* [scratchpad][reordered copies...], each 64-aligned; the primitive and the
     * reorders run one after another, so they share the scratchpad */
    p->scratch = scratch;
    size_t off = prt_dnnl_align(scratch);
    for (int i = 0; i < n_io; i++) {
        p->off[i] = off;
        if (p->reorder[i])
            off += prt_dnnl_align(
                dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, io[i].arg)));
    }
    p->total = off;
    p->reordered = false;
    for (int i = 0; i < n_io; i++) p->reordered |= p->reorder[i] != NULL;
    return dnnl_success;
}

void prt_dnnl_prim_release(void *state) {
    prt_dnnl_prim *s = state;
    if (!s) return;
    if (s->prim) dnnl_primitive_destroy(s->prim);
    for (int i = 0; i < PRT_DNNL_MAX_IO; i++) {
        if (s->reorder[i]) dnnl_primitive_destroy(s->reorder[i]);
        if (s->user[i]) dnnl_memory_destroy(s->user[i]);
        if (s->inner[i]) dnnl_memory_destroy(s->inner[i]);
    }
    if (s->scratch) dnnl_memory_destroy(s->scratch);
    prt_dnnl_base_fini(&s->b);
    prt_free(s->b.ctx, s, sizeof *s);
}

prt_status prt_dnnl_prim_create(const prt_kernel_call *c, const prt_dnnl_plan *p, const char *what,
                                prt_dnnl_prim **out) {
    prt_context *ctx = c->ctx;
    *out = NULL;
    prt_dnnl_prim *s = prt_calloc(ctx, 1, sizeof *s);
    if (!s) return prt_error(ctx, PRT_ERR_NOMEM, "%s kernel state", what);
    s->b.ctx = ctx;
    prt_status st;
    PRT_CHECK_GOTO(prt_dnnl_base_init(c, &s->b, p->total), st, fail);
    PRT_DNNL_CHECK_GOTO(dnnl_primitive_create(&s->prim, p->pd), ctx, what, st, fail);
    s->impl = "?";
    const_dnnl_primitive_desc_t own;
    /* the primitive's own descriptor lives as long as it does; the plan's does not */
    if (dnnl_primitive_get_primitive_desc(s->prim, &own) == dnnl_success) s->impl = prt_dnnl_impl_name(own);
    s->n_io = p->n_io;
    for (int i = 0; i < p->n_io; i++) {
        s->arg[i] = p->io[i].arg;
        s->slot[i] = p->io[i].slot;
        s->off[i] = p->off[i];
        if (s->slot[i] >= 0 ? s->slot[i] >= c->n_in : -1 - s->slot[i] >= c->n_out) {
            st = prt_error(ctx, PRT_ERR_INTERNAL, "%s kernel: tensor slot %d out of range", what, s->slot[i]);
            goto fail;
        }
        PRT_DNNL_CHECK_GOTO(prt_dnnl_mem(&s->user[i], &p->io[i].user, s->b.eng), ctx, what, st, fail);
        if (!p->reorder[i]) continue;
        PRT_DNNL_CHECK_GOTO(dnnl_primitive_create(&s->reorder[i], p->reorder[i]), ctx, what, st, fail);
        PRT_DNNL_CHECK_GOTO(
            prt_dnnl_mem(&s->inner[i], dnnl_primitive_desc_query_md(p->pd, dnnl_query_exec_arg_md, p->io[i].arg),
                         s->b.eng),
            ctx, what, st, fail);
    }
    if (p->scratch) {
        dnnl_memory_desc_t smd;
        dnnl_dims_t bytes = {(int64_t)p->scratch};
        PRT_DNNL_CHECK_GOTO(dnnl_memory_desc_init_by_tag(&smd, 1, bytes, dnnl_u8, dnnl_x), ctx, what, st, fail);
        PRT_DNNL_CHECK_GOTO(prt_dnnl_mem(&s->scratch, &smd, s->b.eng), ctx, what, st, fail);
    }
    s->reordered = p->reordered;
    *out = s;
    return PRT_OK;
fail:
    prt_dnnl_prim_release(s);
    return st;
}

static prt_status reorder(const prt_dnnl_prim *s, int i, dnnl_memory_t from, dnnl_memory_t to, const char *what) {
    dnnl_exec_arg_t a[3] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}, {DNNL_ARG_SCRATCHPAD, s->scratch}};
    return prt_dnnl_exec(&s->b, s->reorder[i], s->scratch ? 3 : 2, a, what);
}

prt_status prt_dnnl_prim_run(const prt_dnnl_prim *s, const prt_kernel_call *c, const char *what) {
    if (!s) return prt_error(c->ctx, PRT_ERR_INTERNAL, "%s kernel: run before prepare", what);
    char *ws;
    PRT_CHECK(prt_dnnl_ws(&s->b, c, what, &ws));
    if (s->scratch) PRT_CHECK(prt_dnnl_bind(&s->b, s->scratch, ws, what));
    dnnl_exec_arg_t args[PRT_DNNL_MAX_IO + 1];
    int n = 0;
    for (int i = 0; i < s->n_io; i++) {
        const prt_tensor *t = s->slot[i] >= 0 ? c->in[s->slot[i]] : c->out[-1 - s->slot[i]];
        PRT_CHECK(prt_dnnl_bind(&s->b, s->user[i], prt_tensor_data(t), what));
        if (s->inner[i]) {
            PRT_CHECK(prt_dnnl_bind(&s->b, s->inner[i], ws + s->off[i], what));
            if (s->slot[i] >= 0) PRT_CHECK(reorder(s, i, s->user[i], s->inner[i], what));
        }
        args[n++] = (dnnl_exec_arg_t){s->arg[i], s->inner[i] ? s->inner[i] : s->user[i]};
    }
    if (s->scratch) args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, s->scratch};
    PRT_CHECK(prt_dnnl_exec(&s->b, s->prim, n, args, what));
    for (int i = 0; i < s->n_io; i++)
        if (s->inner[i] && s->slot[i] < 0) PRT_CHECK(reorder(s, i, s->inner[i], s->user[i], what));
    return PRT_OK;
}

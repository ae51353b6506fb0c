/* The compiler from a graph to a program: shape inference for the batch, the
 * scheduler's order, one register per graph value, one CALL per node (its
 * operands in a call descriptor in the constant pool), HALT, then verification.
 * The program copies every name and attribute, so it outlives the graph. */
#include "vm/vm_impl.h"

#include "memory/memory_api.h"
#include "scheduler/scheduler_impl.h"

#include <string.h>

static prt_reg_kind reg_kind(prt_value_kind k) {
    switch (k) {
    case PRT_VAL_INPUT: return PRT_REG_INPUT;
    case PRT_VAL_PARAM: return PRT_REG_PARAM;
    case PRT_VAL_STATE: return PRT_REG_STATE;
    case PRT_VAL_ACT: return PRT_REG_ACT;
    }
    return PRT_REG_KIND_COUNT;
}

/* Registers are numbered like the graph's values, so value id == register. */
static prt_status add_registers(prt_graph *g, prt_program *p, int64_t batch) {
    prt_context *ctx = g->ctx;
    for (int v = 0; v < g->n_values; v++) {
        const prt_value *val = &g->values[v];
        prt_shape s = val->shape;
        if (val->kind == PRT_VAL_INPUT) {
            /* Inputs are declared per sample; their register holds the whole batch. */
            if (s.ndim >= PRT_MAX_DIMS)
                return prt_error(ctx, PRT_ERR_SHAPE, "input '%s' has too many dimensions",
                                 val->name);
            memmove(&s.d[1], &s.d[0], (size_t)s.ndim * sizeof s.d[0]);
            s.d[0] = batch;
            s.ndim++;
        }
        int r;
        PRT_CHECK(prt_program_add_reg(ctx, p, val->name, reg_kind(val->kind), val->dtype, &s,
                                      val->init, &r));
        PRT_ASSERT(r == v);
    }
    return PRT_OK;
}

static prt_status add_call(prt_graph *g, prt_program *p, int n, int *op_index) {
    prt_context *ctx = g->ctx;
    const prt_node *nd = &g->nodes[n];
    const prt_op_schema *s = prt_op_get(ctx->ops, nd->op);
    if (!s) return prt_error(ctx, PRT_ERR_INTERNAL, "layer '%s': op id %d is not registered",
                             nd->name, nd->op);
    if (op_index[nd->op] < 0) {
        PRT_CHECK(prt_program_add_op(ctx, p, s->name, &op_index[nd->op]));
        p->ops[op_index[nd->op]].id = nd->op;
    }
    int k, pc;
    /* A recomputation runs under the original node's name: messages name the layer
     * the user wrote, and kernels keyed by the name (dropout's mask) repeat exactly. */
    bool re = nd->recompute_of >= 0 && nd->recompute_of < g->n_nodes;
    const char *name = re ? g->nodes[nd->recompute_of].name : nd->name;
    PRT_CHECK(prt_program_add_call(ctx, p, op_index[nd->op], name, nd->in, nd->n_data_in,
                                   nd->n_in, nd->out, nd->n_out, nd->attrs, s->n_attrs, &k));
    p->k[k].call.phase = s->updates_inputs ? PRT_PHASE_UPDATE
                         : (g->n_forward > 0 && n >= g->n_forward) ? PRT_PHASE_BACKWARD
                                                                   : PRT_PHASE_FORWARD;
    prt_instr ins = re ? prt_vm_ins(PRT_OP_RECOMPUTE, 0, (uint32_t)k) : prt_vm_ins_call(k);
    return prt_program_emit(ctx, p, ins, &pc);
}

/* For data-parallel training graphs (update nodes with a bucket): start_after[i]
 * is the last bucket whose gradients are all written once the i-th node of the
 * order ran (-1 if none), so ALLREDUCE_STARTs follow the last gradient write. */
static prt_status bucket_starts(prt_graph *g, const int *order, int *start_after) {
    prt_context *ctx = g->ctx;
    int nb = 0;
    for (int n = 0; n < g->n_nodes; n++)
        if (g->nodes[n].bucket >= nb) nb = g->nodes[n].bucket + 1;
    for (int i = 0; i < g->n_nodes; i++) start_after[i] = -1;
    if (nb == 0) return PRT_OK;
    int *pos = prt_calloc(ctx, (size_t)g->n_nodes, sizeof *pos);
    int *last = prt_calloc(ctx, (size_t)nb, sizeof *last);
    int *seen = prt_calloc(ctx, (size_t)nb, sizeof *seen);
    prt_status st = PRT_OK;
    if (!pos || !last || !seen) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "graph '%s': compiling: out of memory", g->name);
        goto done;
    }
    for (int i = 0; i < g->n_nodes; i++) pos[order[i]] = i;
    for (int b = 0; b < nb; b++) last[b] = -1;
    for (int n = 0; n < g->n_nodes; n++) {
        const prt_node *nd = &g->nodes[n];
        int b = nd->bucket;
        if (b < 0) continue;
        seen[b]++;
        int k = 0;
        while (k < nd->n_in && g->values[nd->in[k]].kind == PRT_VAL_PARAM) k++;
        for (int j = k; j < 2 * k && j < nd->n_in; j++) {
            int prod = g->values[nd->in[j]].producer;
            if (prod >= 0 && pos[prod] > last[b]) last[b] = pos[prod];
        }
    }
    for (int b = 0; b < nb; b++) {
        if (seen[b] != 1) {
            st = prt_error(ctx, PRT_ERR_INTERNAL, "graph '%s': gradient bucket %d has %d update nodes", g->name, b,
                           seen[b]);
            goto done;
        }
        /* buckets start in number order: a bucket whose gradients are ready
         * earlier than an earlier-numbered one's waits for it */
        int at = last[b] < 0 ? 0 : last[b];
        if (b > 0 && at < last[b - 1]) at = last[b - 1];
        last[b] = at;
        start_after[at] = b;
    }
done:
    prt_free(ctx, pos, 0);
    prt_free(ctx, last, 0);
    prt_free(ctx, seen, 0);
    return st;
}

prt_status prt_vm_compile(prt_graph *g, int64_t batch, prt_program **out) {
    prt_context *ctx = g->ctx;
    prt_status st = PRT_OK;
    prt_program *p = NULL;
    int *order = NULL, *op_index = NULL, *start_after = NULL;
    int n_ops = prt_op_count(ctx->ops);
    *out = NULL;
    if (batch < 1)
        return prt_error(ctx, PRT_ERR_INVALID, "graph '%s': batch %lld is not positive", g->name,
                         (long long)batch);
    PRT_CHECK(prt_graph_infer(g, batch));
    order = prt_calloc(ctx, (size_t)g->n_nodes + 1, sizeof *order);
    start_after = prt_calloc(ctx, (size_t)g->n_nodes + 1, sizeof *start_after);
    op_index = prt_calloc(ctx, (size_t)n_ops + 1, sizeof *op_index);
    if (!order || !op_index || !start_after) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "graph '%s': compiling: out of memory", g->name);
        goto done;
    }
    for (int i = 0; i < n_ops; i++) op_index[i] = -1;
    PRT_CHECK_GOTO(prt_sched_order(g, order), st, done);
    PRT_CHECK_GOTO(prt_program_new(ctx, g->name, batch, &p), st, done);
    PRT_CHECK_GOTO(add_registers(g, p, batch), st, done);
    int started = 0;
    PRT_CHECK_GOTO(bucket_starts(g, order, start_after), st, done);
    for (int i = 0; i < g->n_nodes; i++) {
        int b = g->nodes[order[i]].bucket;
        if (b >= 0) PRT_CHECK_GOTO(prt_program_emit(ctx, p, prt_vm_ins_allreduce_wait(b), NULL), st, done);
        PRT_CHECK_GOTO(add_call(g, p, order[i], op_index), st, done);
        while (started <= start_after[i])
            PRT_CHECK_GOTO(prt_program_emit(ctx, p, prt_vm_ins_allreduce_start(started++), NULL), st, done);
    }
    PRT_CHECK_GOTO(prt_program_emit(ctx, p, prt_vm_ins_n(PRT_OP_HALT), NULL), st, done);
    PRT_CHECK_GOTO(prt_program_set_io(ctx, p, g->inputs, g->n_inputs, g->outputs, g->n_outputs),
                   st, done);
    st = prt_vm_verify(ctx, p);
    if (st == PRT_ERR_PROGRAM) {
        /* The graph passed its own checks, so a rejected program is a compiler bug. */
        prt_error_prefix(ctx, PRT_ERR_INTERNAL, "compiling graph '%s'", g->name);
        st = PRT_ERR_INTERNAL;
    }
    if (st != PRT_OK) goto done;
    /* every buffer's place, fixed before anything runs */
    PRT_CHECK_GOTO(prt_mem_plan_build(ctx, p, &p->plan), st, done);
    *out = p;
    p = NULL;
done:
    prt_program_destroy(ctx, p);
    prt_free(ctx, order, 0);
    prt_free(ctx, start_after, 0);
    prt_free(ctx, op_index, 0);
    return st;
}

/* prt_graph_set_precision: the bf16 mixed-precision pass (scheduler_impl.h has
 * the contract). It runs on the forward graph before prt_train_build, so that
 * autodiff differentiates a graph that already computes in bf16 and builds the
 * backward in bf16 by itself: every gradient builder emits its ops on the bf16
 * values it finds, `cast` turns a weight's bf16 gradient back into f32, and
 * the loss sees f32 logits.
 *
 * Why no loss scaling: bf16 keeps f32's 8 exponent bits, so gradients as small
 * as f32's (down to about 1e-38, 9e-41 with denormals) are representable; fp16
 * (5 exponent bits, smallest normal 6e-5) needs its gradients scaled up to
 * avoid flushing to zero, bf16 does not. Only the mantissa shrinks (8
 * significant bits), which costs precision, not range.
 *
 * An op without a bf16 CUDA kernel is not refused: it runs in f32 between two
 * casts, so any network can be rewritten; `parrots compile --precision bf16`
 * shows where. (The CPU runs no bf16 op but `cast`: prt_vm_create refuses a
 * bf16 program on the CPU.) */
#include "scheduler/scheduler_impl.h"

#include <stdio.h>
#include <string.h>

bool prt_precision_from_name(const char *name, prt_precision *out) {
    if (!name) return false;
    if (!strcmp(name, "fp32")) *out = PRT_PRECISION_FP32;
    else if (!strcmp(name, "bf16")) *out = PRT_PRECISION_BF16;
    else return false;
    return true;
}

const char *prt_precision_name(prt_precision p) { return p == PRT_PRECISION_BF16 ? "bf16" : "fp32"; }

static bool is_float(prt_dtype t) { return t == PRT_F32 || t == PRT_BF16; }

typedef struct pass {
    prt_graph *g;
    prt_context *ctx;
    int cast_op;
    const prt_op_schema *cast_s;
    int n_values0;
    int *to_bf16, *to_f32; /* per original value: the value of its cast, -1 none yet */
    int *at;               /* per node: the original node it runs before (n0: at the end) */
    int cap_at;
} pass;

/* The value `v` cast to `to`, made once and shared by every reader; the cast
 * node is to run before original node `before`. */
static prt_status cast_of(pass *ps, int v, prt_dtype to, int before, int *out) {
    prt_graph *g = ps->g;
    int *memo = to == PRT_BF16 ? ps->to_bf16 : ps->to_f32;
    if (v >= ps->n_values0)
        return prt_error(ps->ctx, PRT_ERR_INTERNAL, "precision: '%s' is a cast already", g->values[v].name);
    if (memo[v] >= 0) {
        *out = memo[v];
        return PRT_OK;
    }
    char name[1100];
    snprintf(name, sizeof name, "%s/%s", g->values[v].name, prt_dtype_name(to));
    for (int k = 2; prt_graph_find_value(g, name) >= 0; k++)
        snprintf(name, sizeof name, "%s/%s#%d", g->values[v].name, prt_dtype_name(to), k);
    prt_attr attrs[1];
    prt_attrs_default(ps->cast_s, attrs);
    attrs[0].s = prt_graph_intern(g, prt_dtype_name(to));
    if (!attrs[0].s) return prt_error(ps->ctx, PRT_ERR_NOMEM, "precision: out of memory");
    attrs[0].set = true;
    int node;
    PRT_CHECK(prt_graph_add_node(g, ps->cast_op, name, name, &v, 1, attrs, g->values[v].loc, &node));
    PRT_CHECK(prt_grow(ps->ctx, (void **)&ps->at, &ps->cap_at, node + 1, sizeof *ps->at));
    ps->at[node] = before;
    PRT_CHECK(prt_graph_infer_node(g, node));
    *out = memo[v] = g->nodes[node].out[0];
    return PRT_OK;
}

/* Node n's operands in its compute dtype, then its outputs inferred again. */
static prt_status convert_node(pass *ps, int n) {
    prt_graph *g = ps->g;
    const prt_op_schema *s = prt_op_get(ps->ctx->ops, g->nodes[n].op);
    prt_dtype d = s->cuda_bf16 ? PRT_BF16 : PRT_F32;
    if (!s->cuda_bf16) {
        for (int j = 0; j < g->nodes[n].n_data_in; j++)
            if (g->values[g->nodes[n].in[j]].dtype == PRT_BF16) {
                prt_log_info(ps->ctx, "precision bf16: layer '%s' (%s) has no bf16 CUDA kernel: it runs in f32",
                             g->nodes[n].name, s->name);
                break;
            }
    }
    for (int j = 0; j < g->nodes[n].n_data_in; j++) {
        int v = g->nodes[n].in[j], c;
        prt_dtype t = g->values[v].dtype;
        if (!is_float(t) || t == d) continue;
        if (j > 0 && j < 32 && ((s->shape_only >> j) & 1u)) continue; /* its values are never read */
        PRT_CHECK(cast_of(ps, v, d, n, &c));
        g->nodes[n].in[j] = c; /* g->nodes may have moved: index again */
    }
    if (d == PRT_BF16) {
        for (int p = 0, k = g->nodes[n].n_data_in; p < s->n_params && k < g->nodes[n].n_in; p++) {
            if (!((g->nodes[n].param_mask >> p) & 1u)) continue;
            int v = g->nodes[n].in[k], c;
            if (!((s->bf16_f32_params >> p) & 1u) && g->values[v].dtype == PRT_F32) {
                if (g->values[v].kind != PRT_VAL_PARAM)
                    return prt_error(ps->ctx, PRT_ERR_UNSUPPORTED,
                                     "precision bf16: layer '%s' (%s): its %s '%s' is updated in place, so it cannot "
                                     "be read through a bf16 copy",
                                     g->nodes[n].name, s->name, s->params[p].name, g->values[v].name);
                PRT_CHECK(cast_of(ps, v, PRT_BF16, n, &c));
                g->nodes[n].in[k] = c;
            }
            k++;
        }
    }
    return prt_graph_infer_node(g, n);
}

prt_status prt_graph_set_precision(prt_graph *g, prt_precision prec) {
    prt_context *ctx = g->ctx;
    if (prec == PRT_PRECISION_FP32) return PRT_OK;
    if (prec != PRT_PRECISION_BF16) return prt_error(ctx, PRT_ERR_INVALID, "precision %d is unknown", (int)prec);
    PRT_CHECK(prt_graph_bind_params(g));
    if (g->n_forward > 0)
        return prt_error(ctx, PRT_ERR_INVALID,
                         "graph '%s': precision bf16 rewrites the forward graph, before training is built", g->name);
    for (int v = 0; v < g->n_values; v++)
        if (g->values[v].dtype == PRT_BF16)
            return prt_error(ctx, PRT_ERR_INVALID, "graph '%s': '%s' is bf16 already; precision bf16 is applied once",
                             g->name, g->values[v].name);
    for (int n = 0; n < g->n_nodes; n++)
        if (prt_op_get(ctx->ops, g->nodes[n].op)->updates_inputs)
            return prt_error(ctx, PRT_ERR_INVALID,
                             "graph '%s': precision bf16 rewrites the forward graph; layer '%s' updates its inputs",
                             g->name, g->nodes[n].name);
    pass ps = {.g = g, .ctx = ctx, .n_values0 = g->n_values};
    ps.cast_s = prt_op_find(ctx->ops, "cast", &ps.cast_op);
    if (!ps.cast_s) return prt_error(ctx, PRT_ERR_INTERNAL, "precision bf16: the op 'cast' is not registered");
    prt_status st = PRT_OK;
    int n0 = g->n_nodes;
    int *order = NULL, *first = NULL;
    ps.to_bf16 = prt_calloc(ctx, (size_t)ps.n_values0 + 1, sizeof *ps.to_bf16);
    ps.to_f32 = prt_calloc(ctx, (size_t)ps.n_values0 + 1, sizeof *ps.to_f32);
    if (!ps.to_bf16 || !ps.to_f32) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "precision bf16: out of memory");
        goto done;
    }
    for (int v = 0; v < ps.n_values0; v++) ps.to_bf16[v] = ps.to_f32[v] = -1;
    PRT_CHECK_GOTO(prt_grow(ctx, (void **)&ps.at, &ps.cap_at, n0 + 1, sizeof *ps.at), st, done);
    for (int n = 0; n < n0; n++) {
        ps.at[n] = n;
        PRT_CHECK_GOTO(convert_node(&ps, n), st, done);
    }
    for (int i = 0; i < g->n_outputs; i++) {
        int v = g->outputs[i];
        if (g->values[v].dtype != PRT_BF16) continue;
        PRT_CHECK_GOTO(cast_of(&ps, v, PRT_F32, n0, &g->outputs[i]), st, done);
    }
    /* the casts were appended: each moves right before the node it serves */
    int nn = g->n_nodes;
    order = prt_calloc(ctx, (size_t)nn + 1, sizeof *order);
    first = prt_calloc(ctx, (size_t)n0 + 2, sizeof *first);
    if (!order || !first) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "precision bf16: out of memory");
        goto done;
    }
    /* counting sort by (at, casts before their node, then creation order) */
    for (int n = n0; n < nn; n++) first[ps.at[n] + 1]++;
    for (int n = 0; n < n0; n++) first[n + 1]++;
    for (int i = 1; i <= n0 + 1; i++) first[i] += first[i - 1];
    for (int n = n0; n < nn; n++) order[first[ps.at[n]]++] = n;
    for (int n = 0; n < n0; n++) order[first[n]++] = n;
    st = prt_graph_reorder(g, order, NULL);
done:
    prt_free(ctx, ps.to_bf16, 0);
    prt_free(ctx, ps.to_f32, 0);
    prt_free(ctx, ps.at, 0);
    prt_free(ctx, order, 0);
    prt_free(ctx, first, 0);
    return st;
}

prt_status prt_graph_device_passes(prt_graph *g, bool fuse_bn_relu, prt_precision prec) {
    if (fuse_bn_relu) PRT_CHECK(prt_graph_fuse_bn_relu(g, NULL));
    if (prec == PRT_PRECISION_FP32) return PRT_OK;
    PRT_CHECK(prt_graph_bind_params(g));
    return prt_graph_set_precision(g, prec);
}

/* prt_train_build: turns a network into one training step that the VM compiles
 * like any other graph — the forward pass, the loss (softmax cross-entropy on
 * the first output against a new i32 input "labels"), the backward pass from
 * prt_autodiff, and one optimizer node that updates every parameter in place.
 * The optimizer node is appended last, so the scheduler's order (which keeps a
 * graph's own order) runs it after every node that reads a parameter. */
#include "ops/optim_impl.h"

#include <stdio.h>
#include <string.h>

/* `base`, or "base#2", "base#3", ... : the first that names no value (a node
 * with k outputs names its values "name:0" .. "name:k-1"). */
static void unique_name(const prt_graph *g, const char *base, char *out, size_t cap) {
    snprintf(out, cap, "%s", base);
    for (int k = 2;; k++) {
        char first[1200];
        snprintf(first, sizeof first, "%s:0", out);
        if (prt_graph_find_value(g, out) < 0 && prt_graph_find_value(g, first) < 0) return;
        snprintf(out, cap, "%s#%d", base, k);
    }
}

static prt_status add_loss(prt_graph *g, const prt_solver *s, prt_train_info *info) {
    prt_context *ctx = g->ctx;
    int logits = g->outputs[0];
    const prt_value *lv = &g->values[logits];
    prt_shape ls = prt_graph_value_shape(g, logits);
    if (lv->kind != PRT_VAL_ACT || ls.ndim != 2 || lv->dtype != PRT_F32) {
        char b[160];
        prt_shape_str(&ls, b, sizeof b);
        return prt_error(ctx, PRT_ERR_SHAPE,
                         "graph '%s': training takes the loss of the first output, which must be f32 logits "
                         "[N, classes] computed by a layer; '%s' is %s %s",
                         g->name, lv->name, prt_dtype_name(lv->dtype), b);
    }
    if (prt_graph_find_value(g, "labels") >= 0)
        return prt_error(ctx, PRT_ERR_SCHEMA,
                         "graph '%s': training adds an input named 'labels', but the network already has a tensor "
                         "of that name",
                         g->name);
    int xent;
    const prt_op_schema *xs = prt_op_find(ctx->ops, "softmax_xent", &xent);
    if (!xs)
        return prt_error(ctx, PRT_ERR_UNSUPPORTED, "training needs the op 'softmax_xent', which is not registered");
    prt_loc loc = lv->loc;
    PRT_CHECK(prt_graph_add_input(g, "labels", &(prt_shape){.ndim = 1, .d = {1}}, PRT_I32, loc, &info->labels));
    prt_attr attrs[8];
    if (xs->n_attrs > 8) return prt_error(ctx, PRT_ERR_INTERNAL, "softmax_xent has %d attributes", xs->n_attrs);
    prt_attrs_default(xs, attrs);
    int a = prt_op_attr_index(xs, "smoothing");
    if (a < 0) return prt_error(ctx, PRT_ERR_INTERNAL, "softmax_xent has no 'smoothing' attribute");
    attrs[a].f = s->label_smoothing;
    attrs[a].set = true;
    char name[1100];
    unique_name(g, "loss", name, sizeof name);
    int node;
    PRT_CHECK(prt_graph_add_node(g, xent, name, name, (int[]){logits, info->labels}, 2, attrs, loc, &node));
    PRT_CHECK(prt_graph_infer_node(g, node));
    info->logits = logits;
    info->loss = g->nodes[node].out[0];
    return PRT_OK;
}

/* The optimizer node over every parameter with a gradient, and its state. */
static prt_status add_update(prt_graph *g, const prt_solver *s, int64_t steps_per_epoch, const int *grad_of,
                             prt_train_info *info) {
    prt_context *ctx = g->ctx;
    prt_status st = PRT_OK;
    int n_slots = prt_optim_n_slots(s->optimizer), per = 2 + n_slots;
    int n_values = g->n_values, k = 0;
    for (int v = 0; v < n_values; v++) {
        if (g->values[v].kind != PRT_VAL_PARAM) continue;
        if (grad_of[v] >= 0)
            k++;
        else
            prt_log_warn(ctx, "parameter '%s' has no path to the loss: it is not trained", g->values[v].name);
    }
    if (k == 0)
        return prt_error(ctx, PRT_ERR_SCHEMA, "graph '%s': no parameter leads to the loss: nothing to train", g->name);
    if (k > PRT_MAX_UPDATE_IN / per)
        return prt_error(ctx, PRT_ERR_LIMIT, "graph '%s': %d parameter tensors, at most %d can be trained", g->name, k,
                         PRT_MAX_UPDATE_IN / per);
    int op;
    const prt_op_schema *os = prt_op_find(ctx->ops, prt_optimizer_name(s->optimizer), &op);
    if (!os)
        return prt_error(ctx, PRT_ERR_INTERNAL, "optimizer op '%s' is not registered",
                         prt_optimizer_name(s->optimizer));
    int *in = prt_calloc(ctx, (size_t)k * (size_t)per, sizeof *in);
    if (!in) return prt_error(ctx, PRT_ERR_NOMEM, "graph '%s': out of memory", g->name);
    int j = 0;
    for (int v = 0; v < n_values && st == PRT_OK; v++) {
        if (g->values[v].kind != PRT_VAL_PARAM || grad_of[v] < 0) continue;
        in[j] = v;
        in[k + j] = grad_of[v];
        for (int sl = 0; sl < n_slots && st == PRT_OK; sl++) {
            char name[1100];
            snprintf(name, sizeof name, "%s.%s", g->values[v].name, prt_optim_slot_name(s->optimizer, sl));
            prt_shape shape = g->values[v].shape;
            st = prt_graph_add_persistent(g, name, PRT_VAL_STATE, &shape, g->values[v].dtype, PRT_INIT_ZEROS,
                                          g->values[v].loc, &in[(2 + sl) * k + j]);
        }
        j++;
    }
    prt_attr attrs[PRT_OPTIM_N_ATTRS];
    char name[1100];
    unique_name(g, "update", name, sizeof name);
    prt_optim_attrs_from_solver(g, s, steps_per_epoch, attrs);
    if (st == PRT_OK && !attrs[PRT_OPTIM_A_SCHEDULE].s) st = prt_error(ctx, PRT_ERR_NOMEM, "out of memory");
    if (st == PRT_OK)
        st = prt_graph_add_node(g, op, name, name, in, k * per, attrs, g->values[in[0]].loc, &info->update_node);
    if (st == PRT_OK) st = prt_graph_infer_node(g, info->update_node);
    info->n_params = k;
    prt_free(ctx, in, 0);
    return st;
}

prt_status prt_train_build(prt_graph *g, const prt_solver *s, int64_t steps_per_epoch, prt_train_info *info) {
    prt_context *ctx = g->ctx;
    memset(info, 0, sizeof *info);
    info->labels = info->logits = info->loss = info->update_node = -1;
    PRT_CHECK(prt_solver_check(ctx, s));
    if (steps_per_epoch < 1)
        return prt_error(ctx, PRT_ERR_INVALID, "training: steps per epoch must be >= 1, got %lld",
                         (long long)steps_per_epoch);
    if (g->n_outputs < 1) return prt_error(ctx, PRT_ERR_SCHEMA, "graph '%s' has no output to train", g->name);
    PRT_CHECK(prt_graph_bind_params(g));
    PRT_CHECK(add_loss(g, s, info));
    g->n_forward = g->n_nodes;
    int *grad_of = NULL, n_grad_of = 0;
    PRT_CHECK(prt_autodiff(g, 1, &info->loss, &(int){PRT_GRAD_ONE}, &grad_of, &n_grad_of));
    prt_status st = add_update(g, s, steps_per_epoch, grad_of, info);
    prt_free(ctx, grad_of, 0);
    PRT_CHECK(st);
    return prt_graph_set_outputs(g, (int[]){info->loss, info->logits}, 2);
}

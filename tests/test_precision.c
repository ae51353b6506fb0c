/* The bf16 mixed-precision pass (scheduler/precision.c) on fashion-cnn and
 * PolyNet-mini, without a GPU: after the pass every activation a bf16-capable
 * op computes is bf16, parameters and running statistics stay f32, the casts
 * sit where they should (data input, each conv/linear parameter once, the
 * outputs); the training step then builds with f32 gradients, optimizer state
 * and loss, compiles and verifies; its memory plan sizes bf16 buffers at 2
 * bytes an element, so the activations' bytes halve against the f32 plan of
 * the same network; and the CPU refuses to run it, naming the op. */
// labels: unit

#include <stdlib.h>
#include <string.h>

#include "memory/memory_api.h"
#include "ops/train_impl.h"
#include "scheduler/scheduler_impl.h"
#include "tests/test_util.h"
#include "vm/vm_impl.h"

static const char *const nets[] = {"examples/fashion-cnn.yaml", "examples/polynet-mini.yaml"};

static prt_graph *load(prt_context *ctx, const char *rel) {
    prt_graph *g = NULL;
    ck_assert_msg(prt_graph_load_yaml(ctx, tu_src(rel), &g) == PRT_OK, "%s: %s", rel, prt_last_error(ctx));
    ck_assert_int_eq(prt_graph_bind_params(g), PRT_OK);
    return g;
}

static const char *op_of(const prt_graph *g, int n) { return prt_op_get(g->ctx->ops, g->nodes[n].op)->name; }

/* The forward graph after the pass. */
static void check_forward(prt_graph *g, const char *net) {
    int casts = 0, bf16_nodes = 0, n_params = 0;
    int *readers = calloc((size_t)g->n_values, sizeof *readers); /* cast readers per parameter */
    ck_assert_ptr_nonnull(readers);
    for (int n = 0; n < g->n_nodes; n++) {
        const prt_node *nd = &g->nodes[n];
        const prt_op_schema *s = prt_op_get(g->ctx->ops, nd->op);
        /* topological order kept */
        for (int j = 0; j < nd->n_in; j++) {
            int pr = g->values[nd->in[j]].producer;
            ck_assert_msg(pr < n, "%s: '%s' runs before the producer of its input", net, nd->name);
        }
        if (s == &prt_op_cast) {
            casts++;
            int v = nd->in[0];
            if (g->values[v].kind == PRT_VAL_PARAM) readers[v]++;
            continue;
        }
        ck_assert_msg(s->cuda_bf16, "%s: layer '%s' (%s) has no bf16 kernel", net, nd->name, s->name);
        bf16_nodes++;
        for (int j = 0; j < nd->n_data_in; j++)
            ck_assert_msg(g->values[nd->in[j]].dtype == PRT_BF16, "%s: '%s' input %d is %s", net, nd->name, j,
                          prt_dtype_name(g->values[nd->in[j]].dtype));
        for (int k = 0; k < nd->n_out; k++)
            ck_assert_msg(g->values[nd->out[k]].dtype == PRT_BF16, "%s: '%s' output is %s", net, nd->name,
                          prt_dtype_name(g->values[nd->out[k]].dtype));
        /* parameters: conv and linear read a bf16 cast, batch norm the f32 values */
        for (int k = nd->n_data_in; k < nd->n_in; k++) {
            const prt_value *pv = &g->values[nd->in[k]];
            if (!strcmp(s->name, "batchnorm") || !strcmp(s->name, "batchnorm_relu")) {
                ck_assert(pv->kind == PRT_VAL_PARAM || pv->kind == PRT_VAL_STATE);
                ck_assert_int_eq(pv->dtype, PRT_F32);
            } else {
                ck_assert_msg(pv->kind == PRT_VAL_ACT && pv->dtype == PRT_BF16 && pv->producer >= 0 &&
                                  g->nodes[pv->producer].op == g->nodes[pv->producer].op &&
                                  !strcmp(op_of(g, pv->producer), "cast"),
                              "%s: '%s' (%s) parameter %d is not a bf16 cast", net, nd->name, s->name, k);
            }
        }
    }
    for (int v = 0; v < g->n_values; v++) {
        const prt_value *pv = &g->values[v];
        if (pv->kind == PRT_VAL_PARAM || pv->kind == PRT_VAL_STATE) ck_assert_int_eq(pv->dtype, PRT_F32);
        if (pv->kind == PRT_VAL_INPUT) ck_assert_int_eq(pv->dtype, PRT_F32);
        /* every conv/linear parameter (weights, biases) is cast once, shared by its readers */
        if (pv->kind == PRT_VAL_PARAM && !strstr(pv->name, ".scale") && !strstr(pv->name, ".shift")) {
            ck_assert_msg(readers[v] == 1, "%s: parameter '%s' has %d casts", net, pv->name, readers[v]);
            n_params++;
        }
    }
    for (int i = 0; i < g->n_outputs; i++) {
        const prt_value *o = &g->values[g->outputs[i]];
        ck_assert_int_eq(o->dtype, PRT_F32);
        ck_assert_str_eq(op_of(g, o->producer), "cast");
    }
    /* one cast per data input, per conv/linear parameter, per output */
    ck_assert_int_eq(casts, g->n_inputs + n_params + g->n_outputs);
    ck_assert_int_gt(bf16_nodes, 5);
    free(readers);
}

/* The arena buffer whose first register is named `name` in p, or -1. */
static int buffer_of(const prt_program *p, const char *name) {
    for (int b = 0; b < p->plan->n_bufs; b++) {
        int r = p->plan->bufs[b].reg;
        if (r >= 0 && !strcmp(p->regs[r].name, name)) return b;
    }
    return -1;
}

/* Arena bytes of the buffers whose first register is an activation that is
 * bf16 in p16 and owns a buffer in both plans (the casts, the bf16 copies of
 * the weights and their bf16 gradients have no f32 twin; the f32 parameter
 * gradients live in buckets): the bf16 plan must need half of the f32 plan's
 * bytes for them. Checks on the way that each bf16 buffer holds 2 bytes an
 * element. */
static void act_bytes(const prt_program *p16, const prt_program *p32, size_t *b16, size_t *b32, bool *sized) {
    *b16 = *b32 = 0;
    const prt_mem_plan *pl = p16->plan;
    for (int b = 0; b < pl->n_bufs; b++) {
        int r = pl->bufs[b].reg;
        if (r < 0 || p16->regs[r].kind != PRT_REG_ACT || p16->regs[r].dtype != PRT_BF16) continue;
        size_t want = (size_t)prt_shape_count(&p16->regs[r].shape) * 2;
        want = (want + PRT_MEM_ALIGN - 1) / PRT_MEM_ALIGN * PRT_MEM_ALIGN;
        if (pl->bufs[b].bytes < want) *sized = false;
        int b2 = buffer_of(p32, p16->regs[r].name);
        if (b2 < 0) continue;
        *b16 += pl->bufs[b].bytes;
        *b32 += p32->plan->bufs[b2].bytes;
    }
}

static prt_program *train_program_fused(prt_context *ctx, const char *net, bool bf16, bool fuse, int64_t batch,
                                       prt_graph **gout) {
    prt_graph *g = load(ctx, net);
    if (fuse) {
        int nf = 0;
        ck_assert_msg(prt_graph_fuse_bn_relu(g, &nf) == PRT_OK, "%s: %s", net, prt_last_error(ctx));
        ck_assert_int_gt(nf, 0);
    }
    if (bf16) {
        ck_assert_msg(prt_graph_set_precision(g, PRT_PRECISION_BF16) == PRT_OK, "%s: %s", net, prt_last_error(ctx));
        check_forward(g, net);
    }
    prt_solver s;
    if (g->solver)
        s = *g->solver;
    else
        prt_solver_defaults(&s);
    s.batch = batch;
    prt_train_info ti;
    ck_assert_msg(prt_train_build(g, &s, 100, &ti) == PRT_OK, "%s: %s", net, prt_last_error(ctx));
    ck_assert_msg(prt_graph_infer(g, batch) == PRT_OK, "%s", prt_last_error(ctx));
    /* the loss and the logits it reads are f32; every parameter, its gradient and
     * its optimizer state are f32 */
    ck_assert_int_eq(g->values[ti.loss].dtype, PRT_F32);
    ck_assert_int_eq(g->values[ti.logits].dtype, PRT_F32);
    const prt_node *up = &g->nodes[ti.update_node];
    ck_assert_int_gt(up->n_in, 0);
    for (int j = 0; j < up->n_in; j++)
        ck_assert_msg(g->values[up->in[j]].dtype == PRT_F32, "%s: update input '%s' is %s", net,
                      g->values[up->in[j]].name, prt_dtype_name(g->values[up->in[j]].dtype));
    if (bf16) {
        /* backward computes in bf16 too: the conv gradients are bf16 */
        int bwd_bf16 = 0;
        for (int n = g->n_forward; n < g->n_nodes; n++)
            if (!strcmp(op_of(g, n), "conv_bwd_data"))
                bwd_bf16 += g->values[g->nodes[n].out[0]].dtype == PRT_BF16;
        ck_assert_int_gt(bwd_bf16, 0);
    }
    prt_program *p = NULL;
    ck_assert_msg(prt_vm_compile(g, batch, &p) == PRT_OK, "%s: %s", net, prt_last_error(ctx));
    ck_assert_msg(prt_vm_verify(ctx, p) == PRT_OK, "%s: %s", net, prt_last_error(ctx));
    ck_assert_ptr_nonnull(p->plan);
    *gout = g;
    return p;
}

static prt_program *train_program(prt_context *ctx, const char *net, bool bf16, int64_t batch, prt_graph **gout) {
    return train_program_fused(ctx, net, bf16, false, batch, gout);
}

/* The GPU path's order: batch norm + ReLU fused first, then bf16. The fused op
 * computes in bf16 itself (no casts around it: check_forward counts them) and
 * its backward gives f32 gradients of the scale and shift. */
START_TEST(bf16_after_fusion) {
    const char *net = nets[_i];
    prt_context *ctx = tu_context();
    prt_graph *g;
    prt_program *p = train_program_fused(ctx, net, true, true, 4, &g);
    int fused = 0, fused_bwd = 0;
    for (int n = 0; n < g->n_nodes; n++) {
        const prt_node *nd = &g->nodes[n];
        if (!strcmp(op_of(g, n), "batchnorm_relu")) {
            fused++;
            ck_assert_int_eq(g->values[nd->out[0]].dtype, PRT_BF16);
        } else if (!strcmp(op_of(g, n), "batchnorm_relu_bwd")) {
            fused_bwd++;
            ck_assert_int_eq(g->values[nd->out[0]].dtype, PRT_BF16);
            ck_assert_int_eq(g->values[nd->out[1]].dtype, PRT_F32);
            ck_assert_int_eq(g->values[nd->out[2]].dtype, PRT_F32);
        }
    }
    ck_assert_int_gt(fused, 0);
    ck_assert_int_eq(fused_bwd, fused);
    prt_program_destroy(ctx, p);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

START_TEST(bf16_training_graph) {
    const char *net = nets[_i];
    prt_context *ctx = tu_context();
    prt_graph *g32, *g16;
    prt_program *p32 = train_program(ctx, net, false, 8, &g32);
    prt_program *p16 = train_program(ctx, net, true, 8, &g16);
    bool sized = true;
    size_t b16, b32;
    act_bytes(p16, p32, &b16, &b32, &sized);
    ck_assert_msg(sized, "%s: a bf16 buffer is smaller than 2 bytes an element", net);
    ck_assert_msg(b16 > 0 && b32 > 0, "%s: no bf16 activations planned", net);
    /* alignment to 256 bytes rounds small buffers up alike in both plans */
    double r = (double)b16 / (double)b32;
    ck_assert_msg(r > 0.48 && r < 0.52, "%s: bf16 activations take %zu bytes, f32 %zu (ratio %.3f, want 0.5)", net,
                  b16, b32, r);
    ck_assert_msg(p16->plan->arena_bytes < p32->plan->arena_bytes, "%s: arena %zu (bf16) vs %zu (f32)", net,
                  p16->plan->arena_bytes, p32->plan->arena_bytes);
    /* persistent memory is the same: f32 masters and optimizer state */
    ck_assert_uint_eq(p16->plan->param_bytes, p32->plan->param_bytes);
    ck_assert_uint_eq(p16->plan->optimizer_bytes, p32->plan->optimizer_bytes);
    ck_assert_uint_eq(p16->plan->grad_bytes, p32->plan->grad_bytes);

    /* the CPU refuses the bf16 program at VM creation, naming a call and its op */
    prt_vm_options o;
    memset(&o, 0, sizeof o);
    o.training = true;
    prt_vm *vm = NULL;
    ck_assert_int_eq(prt_vm_create(ctx, p16, prt_cpu_device(ctx), &o, &vm), PRT_ERR_UNSUPPORTED);
    ck_assert_ptr_null(vm);
    const char *e = prt_last_error(ctx);
    ck_assert_msg(strstr(e, "computes in bf16, which the CPU kernels do not: bf16 needs --device cuda") &&
                      strstr(e, "op 'conv'"),
                  "%s", e);
    /* the f32 program still runs there */
    ck_assert_int_eq(prt_vm_create(ctx, p32, prt_cpu_device(ctx), &o, &vm), PRT_OK);
    prt_vm_destroy(vm);
    prt_program_destroy(ctx, p32);
    prt_program_destroy(ctx, p16);
    prt_graph_destroy(g32);
    prt_graph_destroy(g16);
    prt_context_destroy(ctx);
}
END_TEST

/* An op without a bf16 kernel runs in f32 between casts; the pass is applied
 * once, to a forward graph; fp32 changes nothing; names parse. */
START_TEST(bf16_pass_edges) {
    prt_context *ctx = tu_context();
    prt_precision pr;
    ck_assert(prt_precision_from_name("bf16", &pr) && pr == PRT_PRECISION_BF16);
    ck_assert(prt_precision_from_name("fp32", &pr) && pr == PRT_PRECISION_FP32);
    ck_assert(!prt_precision_from_name("fp16", &pr));
    ck_assert_str_eq(prt_precision_name(PRT_PRECISION_BF16), "bf16");

    prt_graph *g = load(ctx, nets[0]);
    int n0 = g->n_nodes;
    ck_assert_int_eq(prt_graph_set_precision(g, PRT_PRECISION_FP32), PRT_OK);
    ck_assert_int_eq(g->n_nodes, n0);
    ck_assert_int_eq(prt_graph_set_precision(g, PRT_PRECISION_BF16), PRT_OK);
    ck_assert_int_eq(prt_graph_set_precision(g, PRT_PRECISION_BF16), PRT_ERR_INVALID);
    ck_assert_msg(strstr(prt_last_error(ctx), "precision bf16 is applied once"), "%s", prt_last_error(ctx));
    prt_graph_destroy(g);

    /* a sigmoid (no bf16 kernel) between two relus: cast to f32 before it and back after */
    g = NULL;
    ck_assert_int_eq(prt_graph_new(ctx, "mixed", &g), PRT_OK);
    int x, op, n;
    prt_shape chw = {.ndim = 3, .d = {2, 4, 4}};
    ck_assert_int_eq(prt_graph_add_input(g, "x", &chw, PRT_F32, (prt_loc){0}, &x), PRT_OK);
    const char *ops[] = {"relu", "sigmoid", "relu"};
    int v = x;
    for (int i = 0; i < 3; i++) {
        const prt_op_schema *s = prt_op_find(ctx->ops, ops[i], &op);
        prt_attr a[8];
        prt_attrs_default(s, a);
        char name[16];
        snprintf(name, sizeof name, "n%d", i);
        ck_assert_int_eq(prt_graph_add_node(g, op, name, name, &v, 1, a, (prt_loc){0}, &n), PRT_OK);
        v = g->nodes[n].out[0];
    }
    ck_assert_int_eq(prt_graph_set_outputs(g, &v, 1), PRT_OK);
    ck_assert_int_eq(prt_graph_bind_params(g), PRT_OK);
    ck_assert_int_eq(prt_graph_set_precision(g, PRT_PRECISION_BF16), PRT_OK);
    /* x/bf16, n0, n0/f32, n1, n1/bf16, n2, n2/f32 */
    static const char *const want[] = {"x/bf16", "n0", "n0/f32", "n1", "n1/bf16", "n2", "n2/f32"};
    ck_assert_int_eq(g->n_nodes, 7);
    for (int i = 0; i < 7; i++) ck_assert_str_eq(g->nodes[i].name, want[i]);
    ck_assert_int_eq(g->values[g->nodes[3].out[0]].dtype, PRT_F32);
    ck_assert_int_eq(g->values[g->nodes[5].out[0]].dtype, PRT_BF16);
    ck_assert_str_eq(g->values[g->outputs[0]].name, "n2/f32");
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
}
END_TEST

int main(void) {
    Suite *s = suite_create("precision");
    TCase *tc = tcase_create("bf16");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, bf16_training_graph, 0, 2);
    tcase_add_loop_test(tc, bf16_after_fusion, 0, 2);
    tcase_add_test(tc, bf16_pass_edges);
    suite_add_tcase(s, tc);
    return tu_run(s);
}

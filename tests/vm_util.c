/* Helpers for the VM suites: see tests/vm_util.h. */
#include "tests/vm_util.h"

#include <string.h>


const prt_op_schema *vt_op(prt_context *ctx, const char *name, int *id) {
    int tmp;
    const prt_op_schema *s = prt_op_find(ctx->ops, name, id ? id : &tmp);
    ck_assert_msg(s != NULL, "op '%s' is not registered", name);
    return s;
}

/* Attributes in schema order, starting from the defaults. */
void vt_attrs_default(const prt_op_schema *s, prt_attr *a) {
    for (int i = 0; i < s->n_attrs; i++) {
        a[i] = s->attrs[i].def;
        a[i].type = s->attrs[i].type;
        a[i].set = false;
    }
}

prt_attr *vt_attr(const prt_op_schema *s, prt_attr *a, const char *name) {
    int i = prt_op_attr_index(s, name);
    ck_assert_msg(i >= 0, "op '%s' has no attribute '%s'", s->name, name);
    a[i].set = true;
    return &a[i];
}

void vt_set_int(const prt_op_schema *s, prt_attr *a, const char *name, int64_t v) {
    prt_attr *x = vt_attr(s, a, name);
    if (x->type == PRT_ATTR_INTS) x->n = 1;
    x->i[0] = v;
}

void vt_set_float(const prt_op_schema *s, prt_attr *a, const char *name, double v) {
    vt_attr(s, a, name)->f = v;
}

void vt_set_bool(const prt_op_schema *s, prt_attr *a, const char *name, bool v) {
    vt_attr(s, a, name)->i[0] = v;
}

/* Adds a node; returns its (first) output value. */
int vt_node(prt_graph *g, const char *opname, const char *name, const int *in, int n_in,
                const prt_attr *attrs) {
    int id, n;
    prt_attr def[16];
    const prt_op_schema *s = vt_op(g->ctx, opname, &id);
    if (!attrs) {
        vt_attrs_default(s, def);
        attrs = def;
    }
    prt_loc loc = {NULL, 0, 0};
    ck_assert_msg(prt_graph_add_node(g, id, name, NULL, in, n_in, attrs, loc, &n) == PRT_OK, "%s",
                  prt_last_error(g->ctx));
    return g->nodes[n].out[0];
}

int vt_input(prt_graph *g, const char *name, int c, int h, int w) {
    prt_shape s = {.ndim = 3, .d = {c, h, w}};
    int x;
    prt_loc loc = {NULL, 0, 0};
    ck_assert_int_eq(prt_graph_add_input(g, name, &s, PRT_F32, loc, &x), PRT_OK);
    return x;
}

void vt_finish(prt_graph *g, const int *outs, int n) {
    ck_assert_int_eq(prt_graph_set_outputs(g, outs, n), PRT_OK);
    ck_assert_msg(prt_graph_bind_params(g) == PRT_OK, "%s", prt_last_error(g->ctx));
}

/* data[3,8,8] -> conv c1 (4, 3x3, pad 1) -> relu r1 -> linear fc (5). */
prt_graph *vt_small_net(prt_context *ctx) {
    prt_graph *g;
    ck_assert_int_eq(prt_graph_new(ctx, "net", &g), PRT_OK);
    int x = vt_input(g, "data", 3, 8, 8);
    const prt_op_schema *conv = vt_op(ctx, "conv", NULL), *lin = vt_op(ctx, "linear", NULL);
    prt_attr a[16];
    vt_attrs_default(conv, a);
    vt_set_int(conv, a, "out", 4);
    vt_set_int(conv, a, "kernel", 3);
    vt_set_int(conv, a, "pad", 1);
    int y = vt_node(g, "conv", "c1", &x, 1, a);
    y = vt_node(g, "relu", "r1", &y, 1, NULL);
    vt_attrs_default(lin, a);
    vt_set_int(lin, a, "out", 5);
    y = vt_node(g, "linear", "fc", &y, 1, a);
    vt_finish(g, &y, 1);
    return g;
}

/* Two branches joined: conv/bn/relu, maxpool, conv without bias, concat, scale,
 * add, avgpool, flatten, linear, softmax; two outputs. */
prt_graph *vt_branchy_net(prt_context *ctx) {
    prt_graph *g;
    ck_assert_int_eq(prt_graph_new(ctx, "branchy", &g), PRT_OK);
    int x = vt_input(g, "image", 2, 12, 12);
    const prt_op_schema *conv = vt_op(ctx, "conv", NULL), *mp = vt_op(ctx, "maxpool", NULL),
                        *ap = vt_op(ctx, "avgpool", NULL), *sc = vt_op(ctx, "scale", NULL),
                        *lin = vt_op(ctx, "linear", NULL);
    prt_attr a[16];
    vt_attrs_default(conv, a);
    vt_set_int(conv, a, "out", 6);
    vt_set_int(conv, a, "kernel", 3);
    vt_set_int(conv, a, "pad", 1);
    int c1 = vt_node(g, "conv", "c1", &x, 1, a);
    int b1 = vt_node(g, "batchnorm", "bn1", &c1, 1, NULL);
    int r1 = vt_node(g, "relu", "r1", &b1, 1, NULL);
    vt_attrs_default(mp, a);
    vt_set_int(mp, a, "kernel", 2);
    int p1 = vt_node(g, "maxpool", "p1", &r1, 1, a);
    vt_attrs_default(conv, a);
    vt_set_int(conv, a, "out", 6);
    vt_set_int(conv, a, "kernel", 2);
    vt_set_int(conv, a, "stride", 2);
    vt_set_bool(conv, a, "bias", false);
    int c2 = vt_node(g, "conv", "c2", &x, 1, a);
    int cat_in[2] = {p1, c2};
    int cat = vt_node(g, "concat", "cat", cat_in, 2, NULL);
    vt_attrs_default(sc, a);
    vt_set_float(sc, a, "by", 0.5);
    int s = vt_node(g, "scale", "half", &cat, 1, a);
    int add_in[2] = {s, cat};
    int sum = vt_node(g, "add", "sum", add_in, 2, NULL);
    vt_attrs_default(ap, a);
    vt_set_int(ap, a, "kernel", 3);
    vt_set_int(ap, a, "stride", 1);
    int pool = vt_node(g, "avgpool", "pool", &sum, 1, a);
    int fl = vt_node(g, "flatten", "flat", &pool, 1, NULL);
    vt_attrs_default(lin, a);
    vt_set_int(lin, a, "out", 7);
    int fc = vt_node(g, "linear", "fc", &fl, 1, a);
    int sm = vt_node(g, "softmax", "prob", &fc, 1, NULL);
    int outs[2] = {sm, fc};
    vt_finish(g, outs, 2);
    return g;
}

void vt_fill_input(prt_vm *vm, int i, uint64_t key) {
    prt_tensor *t = prt_vm_input(vm, i);
    ck_assert_ptr_nonnull(t);
    prt_rng_fill_normal(key, PRT_F32P(t), prt_shape_count(&t->shape), 0.0f, 1.0f);
}

prt_vm *vt_make_vm(prt_context *ctx, const prt_program *p, bool reference) {
    prt_vm_options o = {.reference = reference};
    prt_vm *vm;
    ck_assert_msg(prt_vm_create(ctx, p, prt_cpu_device(ctx), &o, &vm) == PRT_OK, "%s",
                  prt_last_error(ctx));
    return vm;
}

int vt_kint(prt_context *ctx, prt_program *p, int64_t v) {
    int k;
    ck_assert_int_eq(prt_program_add_int(ctx, p, v, &k), PRT_OK);
    return k;
}

void vt_emit(prt_context *ctx, prt_program *p, prt_instr ins) {
    ck_assert_int_eq(prt_program_emit(ctx, p, ins, NULL), PRT_OK);
}

/* Runs with the dispatch loop chosen by `use_switch`; returns a and b. */

vt_counting_prog vt_counting(prt_context *ctx) {
    vt_counting_prog c;
    prt_shape one_elem = {.ndim = 1, .d = {1}};
    ck_assert_int_eq(prt_program_new(ctx, "count", 1, &c.p), PRT_OK);
    ck_assert_int_eq(prt_program_add_reg(ctx, c.p, "a", PRT_REG_STATE, PRT_F32, &one_elem,
                                         PRT_INIT_ZEROS, &c.a), PRT_OK);
    ck_assert_int_eq(prt_program_add_reg(ctx, c.p, "b", PRT_REG_STATE, PRT_F32, &one_elem,
                                         PRT_INIT_ZEROS, &c.b), PRT_OK);
    ck_assert_int_eq(prt_program_add_reg(ctx, c.p, "one", PRT_REG_PARAM, PRT_F32, &one_elem,
                                         PRT_INIT_ONES, &c.one), PRT_OK);
    ck_assert_int_eq(prt_program_add_counter(ctx, c.p, "i", &c.i), PRT_OK);
    ck_assert_int_eq(prt_program_add_counter(ctx, c.p, "j", &c.j), PRT_OK);
    int add;
    ck_assert_int_eq(prt_program_add_op(ctx, c.p, "add", &add), PRT_OK);
    ck_assert_int_eq(prt_program_resolve(ctx, c.p), PRT_OK);
    int in_a[2] = {c.a, c.one}, in_b[2] = {c.b, c.one};
    ck_assert_int_eq(prt_program_add_call(ctx, c.p, add, "inc_a", in_a, 2, 2, &c.a, 1, NULL, 0,
                                          &c.add_a), PRT_OK);
    ck_assert_int_eq(prt_program_add_call(ctx, c.p, add, "inc_b", in_b, 2, 2, &c.b, 1, NULL, 0,
                                          &c.add_b), PRT_OK);
    int outs[2] = {c.a, c.b};
    ck_assert_int_eq(prt_program_set_io(ctx, c.p, NULL, 0, outs, 2), PRT_OK);
    return c;
}

/* A test plugin ("tp", version 1.0.0): tp.axpb (y = alpha x + beta, with a CPU
 * kernel and a gradient builder that emits tp.axpb_bwd, which shares its
 * attribute table), and tp.probe, whose output folds in every attribute it was
 * given, so a test sees that they arrive. init allocates state, fini frees it.
 * Built as a MODULE library by tests/CMakeLists.txt; it includes nothing of
 * Parrots but the plugin ABI. */
#include "parrots/plugin.h"

#include <string.h>

typedef struct tp_state {
    const prt_plugin_host *h; /* valid until fini returns */
} tp_state;

static const prt_plugin_attr_def axpb_attrs[] = {
    {.name = "alpha", .type = PRT_PLUGIN_ATTR_FLOAT, .def = {.f = 2.0}, .doc = "slope"},
    {.name = "beta", .type = PRT_PLUGIN_ATTR_FLOAT, .def = {.f = 0.5}, .doc = "offset"},
};

static int axpb_cpu(const prt_plugin_host *h, const prt_plugin_call *c) {
    if (c->in[0].dtype != PRT_PLUGIN_F32) return h->error(c->host_ctx, "expected f32, got dtype %d", (int)c->in[0].dtype);
    const float *x = c->in[0].data;
    float *y = c->out[0].data;
    float a = (float)c->attrs[0].f, b = (float)c->attrs[1].f;
    for (int64_t i = 0, n = h->numel(&c->in[0]); i < n; i++) y[i] = a * x[i] + b;
    return 0;
}

/* dx = alpha dy */
static int axpb_bwd_cpu(const prt_plugin_host *h, const prt_plugin_call *c) {
    const float *dy = c->in[0].data;
    float *dx = c->out[0].data;
    float a = (float)c->attrs[0].f;
    for (int64_t i = 0, n = h->numel(&c->in[0]); i < n; i++) dx[i] = a * dy[i];
    return 0;
}

static int axpb_grad(const prt_plugin_host *h, prt_plugin_grad *g) {
    if (g->dy[0] < 0) return 0;
    /* alpha 1: d(x + beta)/dx is 1, the gradient is dy itself */
    if (g->attrs[0].type == PRT_PLUGIN_ATTR_FLOAT && g->attrs[0].f == 1.0) {
        g->dx[0] = g->dy[0];
        return 0;
    }
    /* attrs NULL: the forward node's, through the shared table */
    return h->grad_emit(g->host_ctx, "tp.axpb_bwd", &g->dy[0], 1, NULL, &g->dx[0]);
}

static int64_t axpb_flops(const prt_plugin_host *h, const prt_plugin_infer *ic) {
    return 2 * h->shape_numel(&ic->out[0]);
}

/* The shape function refuses inputs of more than a million elements, so a test
 * sees the plugin's message with the layer's place. */
static int axpb_infer(const prt_plugin_host *h, prt_plugin_infer *ic) {
    if (h->shape_numel(&ic->in[0]) > 1000000) return h->error(ic->host_ctx, "at most 1000000 elements");
    return prt_plugin_infer_same(h, ic);
}

static const prt_plugin_attr_def probe_attrs[] = {
    {.name = "k", .type = PRT_PLUGIN_ATTR_INT, .required = true, .min = 0},
    {.name = "v", .type = PRT_PLUGIN_ATTR_INTS, .def = {.n = 2, .i = {1, 2}}, .min = INT64_MIN},
    {.name = "s", .type = PRT_PLUGIN_ATTR_STRING, .def = {.s = "abc"}},
    {.name = "on", .type = PRT_PLUGIN_ATTR_BOOL, .def = {.i = {0}}},
    {.name = "f", .type = PRT_PLUGIN_ATTR_FLOAT, .def = {.f = 0.25}},
};

/* y = x + k + f + 10 v[0] + 100 v[last] + 1000 strlen(s) + 10000 on */
static int probe_cpu(const prt_plugin_host *h, const prt_plugin_call *c) {
    const prt_plugin_attr_value *a = c->attrs;
    double add = (double)a[0].i[0] + a[4].f + 10.0 * (double)a[1].i[0] + 100.0 * (double)a[1].i[a[1].n - 1] +
                 1000.0 * (double)strlen(a[2].s) + 10000.0 * (double)a[3].i[0];
    const float *x = c->in[0].data;
    float *y = c->out[0].data;
    for (int64_t i = 0, n = h->numel(&c->in[0]); i < n; i++) y[i] = x[i] + (float)add;
    return 0;
}

static const prt_plugin_op ops[] = {
    {PRT_PLUGIN_OP_INIT, .name = "tp.axpb", .version = 2, .doc = "alpha x + beta", .min_in = 1, .max_in = 1,
     .n_out = 1, .attrs = axpb_attrs, .n_attrs = 2, .infer = axpb_infer, .cpu = axpb_cpu, .grad = axpb_grad,
     .inplace = true, .inplace_in = 0, .flops = axpb_flops, .onnx_domain = "org.tp", .onnx_op = "Axpb"},
    {PRT_PLUGIN_OP_INIT, .name = "tp.axpb_bwd", .version = 1, .min_in = 1, .max_in = 1, .n_out = 1,
     .attrs = axpb_attrs, .n_attrs = 2, .infer = prt_plugin_infer_same, .cpu = axpb_bwd_cpu,
     .grad_note = "backward-only op"},
    {PRT_PLUGIN_OP_INIT, .name = "tp.probe", .version = 1, .min_in = 1, .max_in = 1, .n_out = 1,
     .attrs = probe_attrs, .n_attrs = 5, .infer = prt_plugin_infer_same, .cpu = probe_cpu},
};

static int tp_init(const prt_plugin_host *h, void **state) {
    if (h->abi_version < 1 || !h->parrots_version) return h->error(h->init_ctx, "odd host");
    tp_state *s = h->alloc(sizeof *s);
    if (!s) return h->error(h->init_ctx, "out of memory");
    s->h = h;
    *state = s;
    return 0;
}

static void tp_fini(void *state) {
    tp_state *s = state;
    s->h->free(s, sizeof *s);
}

static const prt_plugin_desc desc = {PRT_PLUGIN_DESC_INIT, .name = "tp", .version = "1.0.0", .ops = ops,
                                     .n_ops = 3, .init = tp_init, .fini = tp_fini};

PRT_PLUGIN_EXPORT const prt_plugin_desc *prt_plugin_v1(void) { return &desc; }

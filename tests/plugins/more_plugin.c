/* A second test plugin ("tq", version 0.3.0) with one op, tq.twice (y = 2 x,
 * no gradient): for directory loading (PARROTS_PLUGIN_PATH) and for two
 * plugins loaded side by side. */
#include "parrots/plugin.h"

static int twice_cpu(const prt_plugin_host *h, const prt_plugin_call *c) {
    const float *x = c->in[0].data;
    float *y = c->out[0].data;
    for (int64_t i = 0, n = h->numel(&c->in[0]); i < n; i++) y[i] = 2 * x[i];
    return 0;
}

static const prt_plugin_op ops[] = {
    {PRT_PLUGIN_OP_INIT, .name = "tq.twice", .version = 1, .min_in = 1, .max_in = 1, .n_out = 1,
     .infer = prt_plugin_infer_same, .cpu = twice_cpu, .grad_note = "tq.twice has no gradient"},
};

static const prt_plugin_desc desc = {PRT_PLUGIN_DESC_INIT, .name = "tq", .version = "0.3.0", .ops = ops, .n_ops = 1};

PRT_PLUGIN_EXPORT const prt_plugin_desc *prt_plugin_v1(void) { return &desc; }

/* `parrots check`: validate a network and summarise it (text or JSON). */
#include "frontends/cli/cli_impl.h"

#include <string.h>

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void json_dims(FILE *f, const prt_shape *s, int from) {
    fputc('[', f);
    for (int i = from; i < s->ndim; i++) fprintf(f, "%s%lld", i > from ? ", " : "", (long long)s->d[i]);
    fputc(']', f);
}

/* "95,366,600" */
static const char *grouped(int64_t v, char *buf, size_t cap) {
    char raw[32];
    snprintf(raw, sizeof raw, "%lld", (long long)v);
    size_t n = strlen(raw), k = 0;
    for (size_t i = 0; i < n && k + 2 < cap; i++) {
        if (i && (n - i) % 3 == 0 && raw[0] != '-') buf[k++] = ',';
        buf[k++] = raw[i];
    }
    buf[k] = '\0';
    return buf;
}

static void print_text(prt_graph *g, const char *path, const prt_graph_stats *st, bool layers) {
    prt_context *ctx = g->ctx;
    char a[64], b[64], sh[160];
    printf("network   %s (%s)\n", g->name, path);
    for (int i = 0; i < g->n_inputs; i++) {
        const prt_value *v = &g->values[g->inputs[i]];
        printf("input     %s %s\n", v->name, prt_shape_str(&v->shape, sh, sizeof sh));
    }
    int nops = prt_op_count(ctx->ops);
    printf("layers    %lld (", (long long)st->n_nodes);
    for (int op = 0, first = 1; op < nops; op++) {
        int c = 0;
        for (int n = 0; n < g->n_nodes; n++) c += g->nodes[n].op == op;
        if (!c) continue;
        printf("%s%s %d", first ? "" : ", ", prt_op_get(ctx->ops, op)->name, c);
        first = 0;
    }
    printf(")\n");
    printf("params    %s trainable in %lld tensors; %s running statistics\n", grouped(st->params, a, sizeof a),
           (long long)st->n_param_tensors, grouped(st->state, b, sizeof b));
    printf("FLOPs     %.4g G per image (%s)\n", (double)st->flops / 1e9, grouped(st->flops, a, sizeof a));
    for (int i = 0; i < g->n_outputs; i++) {
        const prt_value *v = &g->values[g->outputs[i]];
        prt_shape s = v->shape;
        for (int d = 1; d < s.ndim; d++) s.d[d - 1] = s.d[d];
        s.ndim--;
        printf("output    %s %s\n", v->name, prt_shape_str(&s, sh, sizeof sh));
    }
    if (!layers) return;
    printf("\n%-40s %-10s %-22s %s\n", "layer", "op", "output (batch 1)", "params");
    for (int n = 0; n < g->n_nodes; n++) {
        const prt_node *nd = &g->nodes[n];
        int64_t np = 0;
        for (int k = nd->n_data_in; k < nd->n_in; k++)
            if (g->values[nd->in[k]].kind == PRT_VAL_PARAM) np += prt_shape_count(&g->values[nd->in[k]].shape);
        printf("%-40s %-10s %-22s %s\n", nd->name, prt_op_get(ctx->ops, nd->op)->name,
               prt_shape_str(&g->values[nd->out[0]].shape, sh, sizeof sh), grouped(np, a, sizeof a));
    }
}

static void print_json(prt_graph *g, const prt_graph_stats *st) {
    printf("{\"name\": ");
    json_str(stdout, g->name);
    printf(", \"layers\": %lld, \"params\": %lld, \"state\": %lld, \"param_tensors\": %lld, "
           "\"flops_per_image\": %lld, \"inputs\": [",
           (long long)st->n_nodes, (long long)st->params, (long long)st->state, (long long)st->n_param_tensors,
           (long long)st->flops);
    for (int i = 0; i < g->n_inputs; i++) {
        const prt_value *v = &g->values[g->inputs[i]];
        printf("%s{\"name\": ", i ? ", " : "");
        json_str(stdout, v->name);
        printf(", \"shape\": ");
        json_dims(stdout, &v->shape, 0);
        printf("}");
    }
    printf("], \"outputs\": [");
    for (int i = 0; i < g->n_outputs; i++) {
        const prt_value *v = &g->values[g->outputs[i]];
        printf("%s{\"name\": ", i ? ", " : "");
        json_str(stdout, v->name);
        printf(", \"shape\": ");
        json_dims(stdout, &v->shape, 1);
        printf("}");
    }
    printf("]}\n");
}

int cli_check(int argc, char **argv) {
    bool json = false, layers = false, verbose = false;
    const cli_opt opts[] = {
        {"--json", CLI_FLAG, NULL, "print one JSON object (params, flops_per_image, outputs, ...)", &json},
        {"--layers", CLI_FLAG, NULL, "also list every layer with its output shape and parameters", &layers},
        {"--verbose", CLI_FLAG, NULL, "debug logging", &verbose},
        {0},
    };
    const char *pos[1];
    int rc = cli_parse("check", "[--json] [--layers] NET.yaml", opts, argc, argv, pos, 1, 1);
    if (rc) return rc < 0 ? CLI_OK : rc;
    prt_context *ctx;
    if ((rc = cli_start("check", NULL, verbose, &ctx)) != CLI_OK) return rc;
    prt_graph *g = NULL;
    prt_graph_stats st;
    prt_status s = cli_load(ctx, pos[0], &g);
    if (s == PRT_OK) s = prt_graph_infer(g, 1);
    if (s == PRT_OK) s = prt_graph_stats_get(g, &st);
    if (s != PRT_OK) {
        rc = cli_fail("check", ctx, s);
    } else {
        if (json)
            print_json(g, &st);
        else
            print_text(g, pos[0], &st, layers);
        rc = CLI_OK;
    }
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
    return rc;
}

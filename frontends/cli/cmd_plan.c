/* `parrots plan NET.yaml`: the memory plan of a network's forward pass or training
 * step (memory/memory_api.h), printed without running anything: where the bytes
 * go, how close the arena comes to its lower bound, the largest buffers and the
 * instruction where memory peaks. Also the --memory-limit and --recompute helpers
 * that `run` and `train` share. */
#include "frontends/cli/cli_impl.h"
#include "ops/train_impl.h"
#include "scheduler/scheduler_impl.h"
#include "vm/vm_impl.h"

#include <stdlib.h>
#include <string.h>

/* ---- shared with run and train ------------------------------------------------ */

int cli_parse_memory_limit(const char *cmd, const char *text, size_t *out) {
    *out = 0;
    if (!text) return CLI_OK;
    size_t v;
    if (!prt_mem_parse_bytes(text, &v)) {
        fprintf(stderr,
                "parrots %s: --memory-limit '%s': expected a size such as 8GiB, 512MiB, 1.5GB or 4096 (bytes)\n",
                cmd, text);
        return CLI_USAGE;
    }
    if (v == 0) {
        fprintf(stderr, "parrots %s: --memory-limit '%s': the limit must be more than 0 bytes\n", cmd, text);
        return CLI_USAGE;
    }
    *out = v;
    return CLI_OK;
}

int cli_parse_recompute(const char *cmd, const char *text, int dflt, int *out) {
    *out = dflt;
    if (!text) return CLI_OK;
    prt_recompute_mode m;
    if (strcmp(text, "auto") == 0) {
        *out = CLI_RECOMPUTE_AUTO;
        return CLI_OK;
    }
    if (prt_recompute_mode_from_name(text, &m)) {
        *out = (int)m;
        return CLI_OK;
    }
    fprintf(stderr, "parrots %s: --recompute '%s': expected auto,", cmd, text);
    for (int m = 0; m < PRT_RECOMPUTE_MODE_COUNT; m++)
        fprintf(stderr, "%s %s", m == 0 ? "" : m + 1 == PRT_RECOMPUTE_MODE_COUNT ? " or" : ",",
                prt_recompute_mode_name((prt_recompute_mode)m));
    fputc('\n', stderr);
    return CLI_USAGE;
}

void cli_train_program_free(prt_context *ctx, cli_train_program *t) {
    prt_program_destroy(ctx, t->p);
    prt_graph_destroy(t->g);
    memset(t, 0, sizeof *t);
}

static prt_status build_one(prt_context *ctx, cli_graph_maker make, void *user, const prt_solver *s, int64_t spe,
                            int64_t batch, prt_recompute_mode mode, size_t bucket_bytes, cli_train_program *out) {
    memset(out, 0, sizeof *out);
    out->mode = mode;
    PRT_CHECK(make(user, &out->g));
    prt_status st = prt_train_build(out->g, s, spe, &out->ti);
    if (st == PRT_OK) st = prt_mem_rewrite(out->g, out->g->n_forward, mode, &out->ti.update_node, NULL);
    /* gradient buckets, each reduced as soon as backward has written it */
    prt_bucket_options bo = {.bucket_bytes = bucket_bytes};
    if (st == PRT_OK) st = prt_sched_buckets(out->g, &out->ti.update_node, &bo, &out->n_buckets);
    if (st == PRT_OK) st = prt_vm_compile(out->g, batch, &out->p);
    if (st != PRT_OK) cli_train_program_free(ctx, out);
    return st;
}

prt_status cli_build_training(prt_context *ctx, cli_graph_maker make, void *user, const prt_solver *s,
                              int64_t steps_per_epoch, int64_t batch, int want, size_t limit, size_t bucket_bytes,
                              cli_train_program *out) {
    if (want != CLI_RECOMPUTE_AUTO)
        return build_one(ctx, make, user, s, steps_per_epoch, batch, (prt_recompute_mode)want, bucket_bytes, out);
    cli_train_program none, next;
    PRT_CHECK(build_one(ctx, make, user, s, steps_per_epoch, batch, PRT_RECOMPUTE_none, bucket_bytes, &none));
    if (limit > 0 && none.p->plan->total_bytes <= limit) {
        *out = none;
        return PRT_OK;
    }
    for (int m = PRT_RECOMPUTE_cheap; m < PRT_RECOMPUTE_MODE_COUNT; m++) {
        if (limit == 0 && m == PRT_RECOMPUTE_segments) break; /* never re-run convolutions unasked */
        prt_status st = build_one(ctx, make, user, s, steps_per_epoch, batch, (prt_recompute_mode)m, bucket_bytes, &next);
        if (st != PRT_OK) {
            cli_train_program_free(ctx, &none);
            return st;
        }
        size_t a = none.p->plan->total_bytes, b = next.p->plan->total_bytes;
        bool better = limit > 0 ? b < a : (double)b <= CLI_AUTO_KEEP * (double)a;
        if (!better) {
            cli_train_program_free(ctx, &next);
            continue;
        }
        cli_train_program_free(ctx, &none);
        none = next;
        if (limit == 0 || b <= limit) break;
    }
    *out = none;
    return PRT_OK;
}

int cli_memory_check(const char *cmd, prt_context *ctx, const prt_program *p, size_t limit) {
    if (limit == 0 || !p->plan) return CLI_OK;
    prt_status st = prt_mem_plan_check_limit(ctx, p, p->plan, limit);
    if (st == PRT_OK) return CLI_OK;
    cli_fail(cmd, ctx, st);
    return CLI_FAIL;
}

/* The FLOPs of one step and of its recomputations, at the program's batch. */
static prt_status step_flops(prt_graph *g, bool train, int64_t *step, prt_rewrite_stats *rs) {
    prt_graph_stats gs;
    PRT_CHECK(prt_graph_stats_get(g, &gs));
    *step = gs.flops;
    memset(rs, 0, sizeof *rs);
    if (train) PRT_CHECK(prt_mem_recompute_stats(g, rs));
    return PRT_OK;
}

/* "+1.2% of the step's 8.1 GFLOP without it": recomputation as a share of the
 * work the step does anyway. */
static double extra_percent(int64_t step, int64_t extra) {
    int64_t base = step - extra;
    return base > 0 ? 100.0 * (double)extra / (double)base : 0.0;
}

prt_status cli_memory_summary(prt_graph *g, const prt_program *p, bool train, prt_recompute_mode mode, char *buf,
                              size_t cap) {
    const prt_mem_plan *pl = p->plan;
    char t[32], a[32], ps[32], gr[32];
    buf[0] = '\0';
    if (!pl) return PRT_OK;
    size_t o = (size_t)snprintf(buf, cap, "%s planned (arena %s, %.3f x its lower bound; %s %s",
                                prt_mem_format_bytes(pl->total_bytes, t, sizeof t),
                                prt_mem_format_bytes(pl->arena_bytes, a, sizeof a),
                                pl->lower_bound_bytes ? (double)pl->arena_bytes / (double)pl->lower_bound_bytes : 1.0,
                                train ? "parameters, statistics and optimizer state" : "parameters and statistics",
                                prt_mem_format_bytes(pl->persistent_bytes, ps, sizeof ps));
    if (train && o < cap)
        o += (size_t)snprintf(buf + o, cap - o, "; the arena holds the gradients, %s",
                              prt_mem_format_bytes(pl->grad_bytes, gr, sizeof gr));
    if (o < cap) o += (size_t)snprintf(buf + o, cap - o, ")");
    if (!train || o >= cap) return PRT_OK;
    int64_t step;
    prt_rewrite_stats rs;
    PRT_CHECK(step_flops(g, train, &step, &rs));
    if (mode == PRT_RECOMPUTE_none || rs.n_recomputed == 0)
        snprintf(buf + o, cap - o, "; recompute %s: nothing recomputed", prt_recompute_mode_name(mode));
    else
        snprintf(buf + o, cap - o, "; recompute %s: %d instructions, +%.3g GFLOP (+%.1f%% FLOPs)",
                 prt_recompute_mode_name(mode), rs.n_recomputed, (double)rs.extra_flops / 1e9,
                 extra_percent(step, rs.extra_flops));
    return PRT_OK;
}

/* ---- --input HxW ------------------------------------------------------------------ */

#define MAX_SIDE 65536

static bool parse_side(const char *s, size_t n, int64_t *out) {
    if (n == 0 || n > 6) return false;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > MAX_SIDE) return false;
    *out = v;
    return true;
}

static int parse_hw(const char *text, int64_t *h, int64_t *w) {
    const char *x = strchr(text, 'x');
    if (!x || !parse_side(text, (size_t)(x - text), h) || !parse_side(x + 1, strlen(x + 1), w)) {
        fprintf(stderr, "parrots plan: --input '%s': expected HxW, such as 224x224 (H and W from 1 to %d)\n", text,
                MAX_SIDE);
        return CLI_USAGE;
    }
    return CLI_OK;
}

/* The loader binds the parameters, after which an input's shape is fixed, so
 * another resolution takes a copy of the graph made through the same calls the
 * loader makes (inputs, nodes with their data inputs, outputs), with the first
 * input's last two dimensions replaced before the parameters are bound again:
 * sharing follows the parameter paths, and a parameter whose shape depends on
 * the resolution (a linear layer after a flatten) gets its new shape. The copy
 * borrows attribute strings and locations from g: destroy it first. */
static prt_status resized_copy(prt_graph *g, const char *hw, int64_t h, int64_t w, prt_graph **out) {
    prt_context *ctx = g->ctx;
    char sh[160];
    *out = NULL;
    const prt_value *in0 = &g->values[g->inputs[0]];
    if (in0->shape.ndim < 3)
        return prt_error(ctx, PRT_ERR_USAGE,
                         "--input %s: input '%s' has the per-sample shape %s; HxW needs an input of at least 3 "
                         "dimensions (C, H, W)",
                         hw, in0->name, prt_shape_str(&in0->shape, sh, sizeof sh));
    prt_graph *c = NULL;
    int max_in = 1;
    for (int n = 0; n < g->n_nodes; n++)
        if (g->nodes[n].n_data_in > max_in) max_in = g->nodes[n].n_data_in;
    int *map = prt_calloc(ctx, (size_t)g->n_values + 1, sizeof *map);
    int *in = prt_calloc(ctx, (size_t)max_in, sizeof *in);
    int *outs = prt_calloc(ctx, (size_t)g->n_outputs + 1, sizeof *outs);
    prt_status st = PRT_OK;
    if (!map || !in || !outs) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "--input %s: out of memory", hw);
        goto done;
    }
    for (int v = 0; v < g->n_values; v++) map[v] = -1;
    PRT_CHECK_GOTO(prt_graph_new(ctx, g->name, &c), st, done);
    for (int i = 0; i < g->n_inputs; i++) {
        const prt_value *v = &g->values[g->inputs[i]];
        PRT_CHECK_GOTO(prt_graph_add_input(c, v->name, &v->shape, v->dtype, v->loc, &map[g->inputs[i]]), st, done);
    }
    prt_shape s = in0->shape;
    s.d[s.ndim - 2] = h;
    s.d[s.ndim - 1] = w;
    PRT_CHECK_GOTO(prt_graph_set_input_shape(c, 0, &s), st, done);
    for (int n = 0; n < g->n_nodes; n++) {
        const prt_node *nd = &g->nodes[n];
        for (int k = 0; k < nd->n_data_in; k++) {
            in[k] = map[nd->in[k]];
            if (in[k] < 0) {
                st = prt_error(ctx, PRT_ERR_INTERNAL, "--input %s: layer '%s' reads a value defined after it", hw,
                               nd->name);
                goto done;
            }
        }
        int id;
        PRT_CHECK_GOTO(prt_graph_add_node(c, nd->op, nd->name, nd->param_path, in, nd->n_data_in, nd->attrs,
                                          nd->loc, &id),
                       st, done);
        for (int k = 0; k < nd->n_out; k++) map[nd->out[k]] = c->nodes[id].out[k];
    }
    for (int i = 0; i < g->n_outputs; i++) outs[i] = map[g->outputs[i]];
    PRT_CHECK_GOTO(prt_graph_set_outputs(c, outs, g->n_outputs), st, done);
    st = prt_graph_bind_params(c);
    if (st != PRT_OK) prt_error_prefix(ctx, st, "--input %s", hw);
    if (st == PRT_OK) st = prt_graph_infer(c, 1);
done:
    if (st == PRT_OK) {
        *out = c;
    } else {
        prt_graph_destroy(c);
    }
    prt_free(ctx, map, 0);
    prt_free(ctx, in, 0);
    prt_free(ctx, outs, 0);
    return st;
}

/* A fresh graph for each recompute mode auto tries: the file again, or a
 * resized copy of the file's graph. */
typedef struct plan_maker {
    prt_context *ctx;
    const char *path, *input;
    int64_t h, w;
    prt_graph *file_g;
    bool fuse_bn_relu;          /* --fuse */
    prt_precision prec;         /* --precision */
} plan_maker;

static prt_status make_plan_graph(void *user, prt_graph **out) {
    plan_maker *m = user;
    if (m->input)
        PRT_CHECK(resized_copy(m->file_g, m->input, m->h, m->w, out));
    else
        PRT_CHECK(cli_load(m->ctx, m->path, out));
    prt_status st = prt_graph_device_passes(*out, m->fuse_bn_relu, m->prec);
    if (st != PRT_OK) {
        prt_graph_destroy(*out);
        *out = NULL;
    }
    return st;
}

/* ---- the report ------------------------------------------------------------------ */

typedef struct plan_report {
    const char *path;
    prt_graph *g;
    const prt_program *p;
    const prt_mem_plan *pl;
    bool train;
    prt_recompute_mode mode;
    bool automatic;             /* --recompute auto chose the mode */
    const prt_solver *solver;   /* train only */
    int64_t batch, step_flops, params;
    prt_rewrite_stats rs;
    int *top;                   /* arena buffers by size, largest first */
    int n_top;
} plan_report;

static const char *const phase_names[PRT_PHASE_COUNT] = {"forward", "backward", "update"};

static bool is_call(prt_instr i) {
    unsigned op = PRT_VM_RAW_OP(i);
    return op == PRT_OP_CALL || op == PRT_OP_RECOMPUTE;
}

static const prt_call_desc *call_at(const prt_program *p, int pc) {
    if (pc < 0 || pc >= p->n_code || !is_call(p->code[pc])) return NULL;
    return &p->k[PRT_VM_RAW_X(p->code[pc])].call;
}

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

/* "421,738" */
static const char *grouped(int64_t v, char *buf, size_t cap) {
    char raw[32];
    snprintf(raw, sizeof raw, "%lld", (long long)v);
    size_t n = strlen(raw), k = 0;
    for (size_t i = 0; i < n && k + 2 < cap; i++) {
        if (i && (n - i) % 3 == 0) buf[k++] = ',';
        buf[k++] = raw[i];
    }
    buf[k] = '\0';
    return buf;
}

static double ratio(const prt_mem_plan *pl) {
    return pl->lower_bound_bytes ? (double)pl->arena_bytes / (double)pl->lower_bound_bytes : 1.0;
}

typedef struct buf_key {
    size_t bytes;
    int first, index;
} buf_key;

static int larger_first(const void *pa, const void *pb) {
    const buf_key *a = pa, *b = pb;
    if (a->bytes != b->bytes) return a->bytes < b->bytes ? 1 : -1;
    if (a->first != b->first) return a->first < b->first ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index);
}

/* The k largest arena buffers (ties: the earlier first) into r->top. */
static prt_status sort_top(prt_context *ctx, plan_report *r, int64_t k) {
    const prt_mem_plan *pl = r->pl;
    buf_key *keys = prt_calloc(ctx, (size_t)pl->n_bufs + 1, sizeof *keys);
    r->top = prt_calloc(ctx, (size_t)pl->n_bufs + 1, sizeof *r->top);
    if (!keys || !r->top) {
        prt_free(ctx, keys, 0);
        return prt_error(ctx, PRT_ERR_NOMEM, "out of memory sorting %d buffers", pl->n_bufs);
    }
    for (int b = 0; b < pl->n_bufs; b++) keys[b] = (buf_key){pl->bufs[b].bytes, pl->bufs[b].first, b};
    qsort(keys, (size_t)pl->n_bufs, sizeof *keys, larger_first);
    r->n_top = k < pl->n_bufs ? (int)k : pl->n_bufs;
    for (int i = 0; i < r->n_top; i++) r->top[i] = keys[i].index;
    prt_free(ctx, keys, 0);
    return PRT_OK;
}

#define LW "%-17s"

static void print_text(const plan_report *r) {
    const prt_mem_plan *pl = r->pl;
    const prt_program *p = r->p;
    const prt_value *in0 = &r->g->values[r->g->inputs[0]];
    char a[32], b[32], c[64], sh[160];
    printf(LW "%s (%s)\n", "network", r->g->name, r->path);
    printf(LW "%s, batch %lld, input %s %s\n", "plan", r->train ? "training step" : "forward pass",
           (long long)r->batch, in0->name, prt_shape_str(&in0->shape, sh, sizeof sh));
    if (r->train)
        printf(LW "%s lr %g, recompute %s%s\n", "solver", prt_optimizer_name(r->solver->optimizer), r->solver->lr,
               prt_recompute_mode_name(r->mode), r->automatic ? " (chosen by --recompute auto)" : "");
    printf(LW "%d instructions, %d arena buffers\n", "program", p->n_code, pl->n_bufs);
    printf("\n");
    printf(LW "%11s  %s trainable values\n", "parameters", prt_mem_format_bytes(pl->param_bytes, a, sizeof a),
           grouped(r->params, c, sizeof c));
    printf(LW "%11s\n", "running stats", prt_mem_format_bytes(pl->state_bytes, a, sizeof a));
    printf(LW "%11s\n", "optimizer state", prt_mem_format_bytes(pl->optimizer_bytes, a, sizeof a));
    printf(LW "%11s  the three above, each tensor aligned to %d bytes\n", "persistent",
           prt_mem_format_bytes(pl->persistent_bytes, a, sizeof a), PRT_MEM_ALIGN);
    if (pl->n_buckets > 0)
        printf(LW "%11s  in the arena: %d bucket%s, each live from its first gradient to the update\n", "gradients",
               prt_mem_format_bytes(pl->grad_bytes, a, sizeof a), pl->n_buckets, pl->n_buckets == 1 ? "" : "s");
    else
        printf(LW "%11s\n", "gradients", prt_mem_format_bytes(pl->grad_bytes, a, sizeof a));
    printf(LW "%11s  in the arena\n", "inputs", prt_mem_format_bytes(pl->input_bytes, a, sizeof a));
    printf(LW "%11s  the largest kernel workspace; workspaces are planned inside the arena\n", "workspace",
           prt_mem_format_bytes(pl->workspace_bytes, a, sizeof a));
    printf(LW "%11s  every per-step tensor its own buffer\n", "naive",
           prt_mem_format_bytes(pl->naive_bytes, a, sizeof a));
    printf(LW "%11s  the most arena bytes live at one instruction\n", "lower bound",
           prt_mem_format_bytes(pl->lower_bound_bytes, a, sizeof a));
    printf(LW "%11s  %.3f x the lower bound, strategy %s\n", "arena",
           prt_mem_format_bytes(pl->arena_bytes, a, sizeof a), ratio(pl), prt_mem_strategy_name(pl->strategy));
    printf(LW, "strategies");
    for (int s = 0; s < PRT_MEM_STRATEGY_COUNT; s++)
        printf("%s%s %s", s ? ", " : "", prt_mem_strategy_name((prt_mem_strategy)s),
               prt_mem_format_bytes(pl->strategy_bytes[s], a, sizeof a));
    printf("\n");
    printf(LW "%11s  persistent + arena\n", "total", prt_mem_format_bytes(pl->total_bytes, a, sizeof a));
    printf("\n");
    printf(LW "%d outputs written over an input that dies at their call\n", "in place", pl->n_inplace);
    if (r->train && r->rs.n_recomputed == 0) {
        printf(LW "%s: nothing recomputed\n", "recompute", prt_recompute_mode_name(r->mode));
    } else if (r->train) {
        int64_t base = r->step_flops - r->rs.extra_flops;
        printf(LW "%s: %d instructions, +%.3f GFLOP (+%.2f%% of the step's %.3f GFLOP without them)\n", "recompute",
               prt_recompute_mode_name(r->mode), r->rs.n_recomputed, (double)r->rs.extra_flops / 1e9,
               extra_percent(r->step_flops, r->rs.extra_flops), (double)base / 1e9);
    }
    printf(LW "%.4f s\n", "planning", pl->plan_seconds);
    const prt_call_desc *d = call_at(p, pl->peak_pc);
    if (d)
        printf(LW "instruction %d (%s): %s %s '%s', %s live\n", "peak", pl->peak_pc, phase_names[d->phase],
               prt_vm_op_names[PRT_VM_RAW_OP(p->code[pl->peak_pc])], p->ops[d->op].name, d->node,
               prt_mem_format_bytes(pl->live[pl->peak_pc], a, sizeof a));
    else if (pl->peak_pc >= 0 && pl->peak_pc < p->n_code)
        printf(LW "instruction %d: %s, %s live\n", "peak", pl->peak_pc,
               prt_vm_op_names[PRT_VM_RAW_OP(p->code[pl->peak_pc])],
               prt_mem_format_bytes(pl->live[pl->peak_pc], a, sizeof a));
    if (r->n_top == 0) return;
    printf("\nlargest arena buffers (%d of %d)\n", r->n_top, pl->n_bufs);
    printf("  %11s  %-13s  %s\n", "bytes", "instructions", "name");
    for (int i = 0; i < r->n_top; i++) {
        const prt_mem_buffer *x = &pl->bufs[r->top[i]];
        char name[512], range[32];
        snprintf(range, sizeof range, "%d-%d", x->first, x->last);
        printf("  %11s  %-13s  %s\n", prt_mem_format_bytes(x->bytes, b, sizeof b), range,
               prt_mem_buffer_name(p, pl, r->top[i], name, sizeof name));
    }
}

static void print_json(const plan_report *r) {
    const prt_mem_plan *pl = r->pl;
    const prt_program *p = r->p;
    const prt_value *in0 = &r->g->values[r->g->inputs[0]];
    printf("{\"network\": ");
    json_str(stdout, r->g->name);
    printf(", \"batch\": %lld, \"train\": %s, \"input\": [", (long long)r->batch, r->train ? "true" : "false");
    for (int i = 0; i < in0->shape.ndim; i++) printf("%s%lld", i ? ", " : "", (long long)in0->shape.d[i]);
    printf("], \"recompute\": ");
    if (r->train)
        json_str(stdout, prt_recompute_mode_name(r->mode));
    else
        printf("null");
    printf(", \"recompute_auto\": %s", r->train && r->automatic ? "true" : "false");
    printf(", \"instructions\": %d, \"buffers\": %d, \"grad_buckets\": %d", p->n_code, pl->n_bufs, pl->n_buckets);
    printf(", \"param_bytes\": %zu, \"state_bytes\": %zu, \"optimizer_bytes\": %zu, \"persistent_bytes\": %zu"
           ", \"grad_bytes\": %zu, \"input_bytes\": %zu, \"workspace_bytes\": %zu, \"naive_bytes\": %zu"
           ", \"lower_bound_bytes\": %zu, \"arena_bytes\": %zu, \"total_bytes\": %zu, \"ratio\": %.6f",
           pl->param_bytes, pl->state_bytes, pl->optimizer_bytes, pl->persistent_bytes, pl->grad_bytes,
           pl->input_bytes, pl->workspace_bytes, pl->naive_bytes, pl->lower_bound_bytes, pl->arena_bytes,
           pl->total_bytes, ratio(pl));
    printf(", \"strategy\": ");
    json_str(stdout, prt_mem_strategy_name(pl->strategy));
    printf(", \"strategies\": {");
    for (int s = 0; s < PRT_MEM_STRATEGY_COUNT; s++) {
        printf("%s", s ? ", " : "");
        json_str(stdout, prt_mem_strategy_name((prt_mem_strategy)s));
        printf(": %zu", pl->strategy_bytes[s]);
    }
    printf("}, \"inplace_outputs\": %d", pl->n_inplace);
    const prt_call_desc *d = call_at(p, pl->peak_pc);
    printf(", \"peak_instruction\": %d, \"peak_live_bytes\": %zu, \"peak_op\": ", pl->peak_pc,
           pl->peak_pc >= 0 && pl->peak_pc < pl->n_code ? pl->live[pl->peak_pc] : (size_t)0);
    if (d) {
        json_str(stdout, p->ops[d->op].name);
        printf(", \"peak_node\": ");
        json_str(stdout, d->node);
        printf(", \"peak_phase\": ");
        json_str(stdout, phase_names[d->phase]);
    } else {
        printf("null, \"peak_node\": null, \"peak_phase\": null");
    }
    printf(", \"recomputed_instructions\": %d, \"recompute_flops\": %lld, \"step_flops\": %lld, \"plan_seconds\": %.6f",
           r->rs.n_recomputed, (long long)r->rs.extra_flops, (long long)r->step_flops, pl->plan_seconds);
    printf(", \"top_buffers\": [");
    for (int i = 0; i < r->n_top; i++) {
        const prt_mem_buffer *x = &pl->bufs[r->top[i]];
        char name[512];
        printf("%s{\"name\": ", i ? ", " : "");
        json_str(stdout, prt_mem_buffer_name(p, pl, r->top[i], name, sizeof name));
        printf(", \"bytes\": %zu, \"first\": %d, \"last\": %d, \"offset\": %zu}", x->bytes, x->first, x->last,
               x->offset);
    }
    printf("]}\n");
}

static prt_status write_plot(prt_context *ctx, const char *path, const plan_report *r) {
    const prt_program *p = r->p;
    const prt_mem_plan *pl = r->pl;
    unsigned char *phase = prt_calloc(ctx, (size_t)p->n_code + 1, 1);
    bool *re = prt_calloc(ctx, (size_t)p->n_code + 1, sizeof *re);
    prt_status st;
    if (!phase || !re) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "--plot %s: out of memory", path);
        goto done;
    }
    unsigned char cur = PRT_PHASE_FORWARD;
    for (int pc = 0; pc < p->n_code; pc++) {
        const prt_call_desc *d = call_at(p, pc);
        if (d && d->phase < PRT_PHASE_COUNT) cur = d->phase;
        phase[pc] = cur; /* instructions outside calls (HALT) belong to the phase before them */
        re[pc] = PRT_VM_RAW_OP(p->code[pc]) == PRT_OP_RECOMPUTE;
    }
    char title[320];
    snprintf(title, sizeof title, "%s: %s, batch %lld", r->g->name, r->train ? "training step" : "forward pass",
             (long long)r->batch);
    cli_memory_curve m = {.title = title, .n = p->n_code, .live = pl->live, .phase = phase, .recompute = re,
                          .arena_bytes = pl->arena_bytes, .peak_pc = pl->peak_pc};
    st = cli_plot_memory_write(ctx, path, &m);
done:
    prt_free(ctx, phase, 0);
    prt_free(ctx, re, 0);
    return st;
}

/* ---- the command ------------------------------------------------------------------ */

int cli_plan(int argc, char **argv) {
    bool json = false, train = false, verbose = false;
    long long batch = -1, top = 10;
    const char *input = NULL, *recompute = NULL, *plot = NULL, *memory_limit = NULL, *device = "cpu",
               *fuse = "auto", *precision = "fp32";
    const cli_opt opts[] = {
        {"--batch", CLI_INT, "N", "batch size (default: the file's solver.batch with --train, otherwise 1)", &batch},
        {"--train", CLI_FLAG, NULL,
         "plan the training step (forward, loss, backward, optimizer update; solver from the file's solver: "
         "section) instead of the forward pass",
         &train},
        {"--input", CLI_STRING, "HxW",
         "plan at another resolution: the first input's last two dimensions (default: as the file declares)",
         &input},
        {"--recompute", CLI_STRING, "MODE",
         "with --train: what backward recomputes instead of keeping: auto (default: cheap when it saves a quarter "
         "of the memory or is needed to fit --memory-limit, segments only to fit it), none, cheap or segments",
         &recompute},
        {"--memory-limit", CLI_STRING, "SIZE",
         "after the report, exit 1 when the total exceeds SIZE (such as 8GiB, 512MiB, 1.5GB; default: no limit)",
         &memory_limit},
        {"--top", CLI_INT, "K", "list the K largest arena buffers (default 10)", &top},
        {"--device", CLI_STRING, "DEV",
         "plan as that device would run it: cpu (default) or cuda (cuDNN's workspaces; no GPU needed)", &device},
        {"--fuse", CLI_STRING, "WHAT", "auto (default: bn-relu with --device cuda), none or bn-relu, as parrots train",
         &fuse},
        {"--precision", CLI_STRING, "P", "fp32 (default) or bf16 (with --device cuda), as parrots train", &precision},
        {"--json", CLI_FLAG, NULL, "print one JSON object instead of the text report", &json},
        {"--plot", CLI_STRING, "FILE", "draw live arena bytes over the instructions (.svg or .png)", &plot},
        {"--verbose", CLI_FLAG, NULL, "debug logging", &verbose},
        {0},
    };
    const char *pos[1];
    int rc = cli_parse("plan",
                       "NET.yaml [--batch N] [--train] [--input HxW] [--recompute auto|none|cheap|segments] [--json] "
                       "[--plot FILE.svg|.png] [--memory-limit SIZE] [--top K] [--device cpu|cuda] "
                       "[--fuse auto|none|bn-relu] [--precision fp32|bf16]",
                       opts, argc, argv, pos, 1, 1);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (batch == 0) {
        fprintf(stderr, "parrots plan: --batch must be at least 1\n");
        return CLI_USAGE;
    }
    if (recompute && !train) {
        fprintf(stderr, "parrots plan: --recompute rewrites the training step: add --train\n");
        return CLI_USAGE;
    }
    int gpu_index;
    bool fuse_bn_relu;
    prt_precision prec;
    if ((rc = cli_parse_device("plan", device, &gpu_index)) != CLI_OK ||
        (rc = cli_parse_fuse("plan", fuse, gpu_index >= 0, &fuse_bn_relu)) != CLI_OK)
        return rc;
    if ((rc = cli_parse_precision("plan", precision, gpu_index >= 0, &prec)) != CLI_OK) return rc;
    int64_t h = 0, w = 0;
    size_t limit;
    int want;
    if ((input && (rc = parse_hw(input, &h, &w)) != CLI_OK) ||
        (rc = cli_parse_memory_limit("plan", memory_limit, &limit)) != CLI_OK ||
        (rc = cli_parse_recompute("plan", recompute, CLI_RECOMPUTE_AUTO, &want)) != CLI_OK)
        return rc;

    prt_context *ctx;
    if ((rc = cli_start("plan", NULL, verbose, &ctx)) != CLI_OK) return rc;
    prt_graph *file_g = NULL, *resized = NULL;
    prt_program *p = NULL;
    prt_solver solver;
    cli_train_program tp = {0};
    plan_maker mk = {.ctx = ctx, .path = pos[0], .input = input, .h = h, .w = w, .fuse_bn_relu = fuse_bn_relu,
                     .prec = prec};
    plan_report r = {.path = pos[0], .train = train, .mode = PRT_RECOMPUTE_none, .automatic = want == CLI_RECOMPUTE_AUTO,
                     .solver = &solver};
    prt_status s = PRT_OK;
    if (plot) PRT_CHECK_GOTO(cli_plot_check(ctx, plot), s, done);
    PRT_CHECK_GOTO(cli_load(ctx, pos[0], &file_g), s, done);
    mk.file_g = file_g;
    r.g = file_g;
    if (input) {
        PRT_CHECK_GOTO(resized_copy(file_g, input, h, w, &resized), s, done);
        r.g = resized;
    }
    prt_graph_stats gs;
    PRT_CHECK_GOTO(prt_graph_stats_get(r.g, &gs), s, done);
    r.params = gs.params;
    if (train) {
        /* no data set: one step per epoch is as good as any for planning */
        PRT_CHECK_GOTO(cli_make_solver(ctx, file_g, -1, batch, NULL, 0, &solver), s, done);
        batch = solver.batch;
        PRT_CHECK_GOTO(cli_build_training(ctx, make_plan_graph, &mk, &solver, 1, batch, want, limit, 0, &tp), s, done);
        r.g = tp.g;
        r.mode = tp.mode;
    } else if (batch < 0) {
        batch = 1;
    }
    r.batch = batch;
    if (train) {
        p = tp.p, tp.p = NULL;
    } else {
        PRT_CHECK_GOTO(prt_graph_device_passes(r.g, mk.fuse_bn_relu, mk.prec), s, done);
        PRT_CHECK_GOTO(prt_vm_compile(r.g, batch, &p), s, done);
    }
    if (gpu_index >= 0 && p->plan) {
        /* the plan a CUDA VM makes: cuDNN's workspace budgets instead of oneDNN's */
        prt_mem_plan_options o = {.cuda_workspaces = true};
        prt_mem_plan *gpu_plan;
        PRT_CHECK_GOTO(prt_mem_plan_build_opts(ctx, p, &o, &gpu_plan), s, done);
        prt_mem_plan_destroy(ctx, p->plan);
        p->plan = gpu_plan;
    }
    if (!p->plan) {
        s = prt_error(ctx, PRT_ERR_INTERNAL, "the compiled program of '%s' has no memory plan", r.g->name);
        goto done;
    }
    r.p = p;
    r.pl = p->plan;
    PRT_CHECK_GOTO(step_flops(r.g, train, &r.step_flops, &r.rs), s, done);
    PRT_CHECK_GOTO(sort_top(ctx, &r, top), s, done);
    if (json)
        print_json(&r);
    else
        print_text(&r);
    fflush(stdout);
    if (plot) {
        PRT_CHECK_GOTO(write_plot(ctx, plot, &r), s, done);
        if (!json) fprintf(stderr, "plot written to %s\n", plot);
    }
    rc = cli_memory_check("plan", ctx, p, limit);
done:
    if (s != PRT_OK) rc = cli_fail("plan", ctx, s);
    prt_free(ctx, r.top, 0);
    prt_program_destroy(ctx, p);
    cli_train_program_free(ctx, &tp);
    prt_graph_destroy(resized);
    prt_graph_destroy(file_g);
    prt_context_destroy(ctx);
    return rc;
}

/* The memory planner: regions, liveness over the instruction order, in-place
 * sharing, the lower bound, and the offset strategies that pack the arena. */
#include "memory/memory_api.h"

#include "vm/vm_impl.h"

#include <stdlib.h>
#include <string.h>

static const char *const strategy_names[] = {
#define X(name, doc) #name,
    PRT_MEM_STRATEGIES(X)
#undef X
};

const char *prt_mem_strategy_name(prt_mem_strategy s) {
    return (unsigned)s < PRT_MEM_STRATEGY_COUNT ? strategy_names[s] : "?";
}

static size_t align_up(size_t n) { return (n + PRT_MEM_ALIGN - 1) / PRT_MEM_ALIGN * PRT_MEM_ALIGN; }

void prt_mem_plan_destroy(prt_context *ctx, prt_mem_plan *plan) {
    if (!plan) return;
    prt_free(ctx, plan->reg_region, 0);
    prt_free(ctx, plan->reg_offset, 0);
    prt_free(ctx, plan->reg_buffer, 0);
    prt_free(ctx, plan->ws_offset, 0);
    prt_free(ctx, plan->bufs, 0);
    prt_free(ctx, plan->live, 0);
    prt_free(ctx, plan, sizeof *plan);
}

/* ---- the planner's working state ----------------------------------------- */

typedef struct planner {
    prt_context *ctx;
    prt_mem_plan_options o;
    const prt_program *p;
    prt_mem_plan *plan;
    size_t *reg_bytes;  /* exact bytes per register */
    int *first, *last;  /* per register: live interval (arena registers) */
    int *group;         /* per register: union-find parent for in-place sharing and views */
    size_t *sub;        /* per register: byte offset inside its group's buffer */
    bool *is_output;
} planner;

static int find(planner *pl, int r) {
    while (pl->group[r] != r) {
        pl->group[r] = pl->group[pl->group[r]];
        r = pl->group[r];
    }
    return r;
}

static bool is_call(prt_instr ins) {
    unsigned op = PRT_VM_RAW_OP(ins);
    return op == PRT_OP_CALL || op == PRT_OP_RECOMPUTE;
}

static const prt_op_schema *call_schema(const planner *pl, const prt_call_desc *d) {
    return prt_op_get(pl->ctx->ops, pl->p->ops[d->op].id);
}

/* Regions and byte counts of every register. */
static prt_status classify(planner *pl) {
    const prt_program *p = pl->p;
    prt_mem_plan *plan = pl->plan;
    bool *opt_read = prt_calloc(pl->ctx, (size_t)p->n_regs + 1, sizeof *opt_read);
    if (!opt_read) return prt_error(pl->ctx, PRT_ERR_NOMEM, "memory plan: out of memory");
    /* Registers an in-place updater (the optimizer) reads: its gradients and state. */
    for (int pc = 0; pc < p->n_code; pc++) {
        if (!is_call(p->code[pc])) continue;
        const prt_call_desc *d = &p->k[PRT_VM_RAW_X(p->code[pc])].call;
        const prt_op_schema *s = call_schema(pl, d);
        if (s && s->updates_inputs)
            for (int j = 0; j < d->n_in; j++) opt_read[d->in[j]] = true;
    }
    for (int r = 0; r < p->n_regs; r++) {
        const prt_reg *g = &p->regs[r];
        pl->group[r] = r;
        if (g->kind == PRT_REG_COUNTER) {
            plan->reg_region[r] = PRT_MEM_NONE;
            continue;
        }
        prt_status st = prt_shape_nbytes(pl->ctx, &g->shape, g->dtype, &pl->reg_bytes[r]);
        if (st != PRT_OK) {
            prt_free(pl->ctx, opt_read, 0);
            return prt_error_prefix(pl->ctx, st, "memory plan: register r%d '%s'", r, g->name);
        }
        size_t b = pl->reg_bytes[r];
        switch (g->kind) {
        case PRT_REG_PARAM:
            plan->reg_region[r] = PRT_MEM_PERSISTENT;
            plan->param_bytes += b;
            break;
        case PRT_REG_STATE:
            plan->reg_region[r] = PRT_MEM_PERSISTENT;
            if (opt_read[r])
                plan->optimizer_bytes += b;
            else
                plan->state_bytes += b;
            break;
        case PRT_REG_ACT:
            plan->reg_region[r] = opt_read[r] ? PRT_MEM_GRAD : PRT_MEM_ARENA;
            break;
        default:
            plan->reg_region[r] = PRT_MEM_ARENA;
            break;
        }
    }
    prt_free(pl->ctx, opt_read, 0);
    for (int i = 0; i < p->n_outputs; i++) pl->is_output[p->outputs[i]] = true;
    return PRT_OK;
}

/* Persistent registers: one after another. */
static void place_fixed(planner *pl) {
    const prt_program *p = pl->p;
    prt_mem_plan *plan = pl->plan;
    size_t off = 0;
    for (int r = 0; r < p->n_regs; r++) {
        if (plan->reg_region[r] != PRT_MEM_PERSISTENT) continue;
        plan->reg_offset[r] = off;
        off += align_up(pl->reg_bytes[r]);
    }
    plan->persistent_bytes = off;
}

/* First write and last read of every register, over the straight-line code. */
static void liveness(planner *pl) {
    const prt_program *p = pl->p;
    int end = p->n_code - 1;
    for (int r = 0; r < p->n_regs; r++) pl->first[r] = pl->last[r] = -1;
    for (int i = 0; i < p->n_inputs; i++) {
        pl->first[p->inputs[i]] = 0;
        pl->last[p->inputs[i]] = end;
    }
    for (int pc = 0; pc < p->n_code; pc++) {
        if (!is_call(p->code[pc])) continue;
        const prt_call_desc *d = &p->k[PRT_VM_RAW_X(p->code[pc])].call;
        const prt_op_schema *s = call_schema(pl, d);
        for (int j = 0; j < d->n_in; j++) {
            /* an input read for its shape only does not keep its memory alive */
            if (j < d->n_data_in && j < 32 && s && ((s->shape_only >> j) & 1u)) continue;
            int r = d->in[j];
            if (pc > pl->last[r]) pl->last[r] = pc;
        }
        for (int j = 0; j < d->n_out; j++) {
            int r = d->out[j];
            if (pl->first[r] < 0) pl->first[r] = pc;
            if (pc > pl->last[r]) pl->last[r] = pc;
        }
    }
    for (int r = 0; r < p->n_regs; r++) {
        if (pl->is_output[r]) pl->last[r] = end;
        if (pl->first[r] < 0) pl->first[r] = 0;
        if (pl->last[r] < pl->first[r]) pl->last[r] = pl->first[r];
    }
}

/* An output may take over the memory of the op's in-place input when that input
 * (with everything already sharing its memory) is read for the last time by this
 * very call and has the same size. */
static prt_status views_at(planner *pl, int pc);

static prt_status inplace(planner *pl) {
    const prt_program *p = pl->p;
    prt_mem_plan *plan = pl->plan;
    for (int pc = 0; pc < p->n_code; pc++) {
        if (!is_call(p->code[pc])) continue;
        if (!pl->o.no_views) PRT_CHECK(views_at(pl, pc));
        if (pl->o.no_inplace) continue;
        const prt_call_desc *d = &p->k[PRT_VM_RAW_X(p->code[pc])].call;
        const prt_op_schema *s = call_schema(pl, d);
        if (!s || s->inplace_in < 0 || s->inplace_in >= d->n_data_in || d->n_out < 1) continue;
        int x = d->in[s->inplace_in], y = d->out[0];
        if (plan->reg_region[x] != PRT_MEM_ARENA || plan->reg_region[y] != PRT_MEM_ARENA) continue;
        if (p->regs[x].kind != PRT_REG_ACT || pl->reg_bytes[x] != pl->reg_bytes[y] || x == y) continue;
        int gx = find(pl, x);
        if (pl->last[gx] != pc || pl->first[y] != pc || find(pl, y) != y) continue;
        /* the group's interval is kept in its root */
        pl->group[y] = gx;
        pl->sub[y] = pl->sub[x];
        if (pl->last[y] > pl->last[gx]) pl->last[gx] = pl->last[y];
        plan->n_inplace++;
    }
    return PRT_OK;
}

/* Moves group a (a root) into group b (a root) at byte offset `at`. */
static void merge_at(planner *pl, int a, int b, size_t at) {
    for (int r = 0; r < pl->p->n_regs; r++)
        if (pl->plan->reg_region[r] == PRT_MEM_ARENA && find(pl, r) == a) pl->sub[r] += at;
    pl->group[a] = b;
    if (pl->first[a] < pl->first[b]) pl->first[b] = pl->first[a];
    if (pl->last[a] > pl->last[b]) pl->last[b] = pl->last[a];
}

/* Inputs that are contiguous slices of their op's output (schema input_views)
 * are placed inside it, each with everything sharing its memory. */
static prt_status views_at(planner *pl, int pc) {
    const prt_program *p = pl->p;
    prt_mem_plan *plan = pl->plan;
    const prt_call_desc *d = &p->k[PRT_VM_RAW_X(p->code[pc])].call;
    const prt_op_schema *s = call_schema(pl, d);
    if (!s || !s->input_views || d->n_out < 1 || d->n_data_in > PRT_VARIADIC) return PRT_OK;
    int y = d->out[0];
    if (plan->reg_region[y] != PRT_MEM_ARENA || find(pl, y) != y) return PRT_OK;
    prt_infer_scratch sc;
    prt_infer_ctx ic;
    PRT_CHECK(prt_vm_call_infer(pl->ctx, p, d, s, &sc, NULL, &ic));
    int64_t offs[PRT_VARIADIC];
    if (!s->input_views(&ic, offs)) return PRT_OK;
    size_t esize = prt_dtype_size(p->regs[y].dtype);
    for (int k = 0; k < d->n_data_in; k++) {
        int x = d->in[k], rx = find(pl, x);
        if (plan->reg_region[x] != PRT_MEM_ARENA || p->regs[x].kind != PRT_REG_ACT || rx == find(pl, y)) continue;
        if (pl->sub[x] != 0 || pl->reg_bytes[rx] != pl->reg_bytes[x] || p->regs[x].dtype != p->regs[y].dtype) continue;
        bool twice = false;
        for (int j = 0; j < d->n_data_in; j++) twice |= j != k && find(pl, d->in[j]) == rx;
        if (twice) continue;
        merge_at(pl, rx, find(pl, y), (size_t)offs[k] * esize);
        plan->n_views++;
    }
    return PRT_OK;
}

/* ---- offset strategies ------------------------------------------------------- */

typedef struct placed {
    size_t offset, end;
    int first, last;
} placed;

/* Sort keys, ascending: (k1, k2, index). Each strategy fills them so that
 * the order it wants comes out of one comparison function. */
typedef struct sort_key {
    double k1, k2;
    int idx;
} sort_key;

static int cmp_key(const void *pa, const void *pb) {
    const sort_key *a = pa, *b = pb;
    if (a->k1 != b->k1) return a->k1 < b->k1 ? -1 : 1;
    if (a->k2 != b->k2) return a->k2 < b->k2 ? -1 : 1;
    return (a->idx > b->idx) - (a->idx < b->idx);
}

static sort_key strategy_key(const prt_mem_buffer *b, prt_mem_strategy s, int idx) {
    double bytes = (double)b->bytes, first = (double)b->first;
    switch (s) {
    case PRT_MEM_by_size: return (sort_key){-bytes, first, idx};
    case PRT_MEM_by_first_use: return (sort_key){first, -bytes, idx};
    case PRT_MEM_by_area: return (sort_key){-bytes * (double)(b->last - b->first + 1), first, idx};
    case PRT_MEM_by_lifetime: return (sort_key){-(double)(b->last - b->first), -bytes, idx};
    default: return (sort_key){0, 0, idx};
    }
}

/* Places every buffer in the given order at the smallest free gap (among the
 * buffers already placed whose lifetimes overlap its own) that holds it, or on
 * top. `pl` is kept sorted by offset. Returns the arena size. */
static size_t run_strategy(prt_mem_buffer *bufs, int n, const int *order, placed *pl, size_t *offsets) {
    int np = 0;
    size_t top = 0;
    for (int i = 0; i < n; i++) {
        const prt_mem_buffer *b = &bufs[order[i]];
        size_t prev_end = 0, best = SIZE_MAX, best_gap = SIZE_MAX;
        for (int j = 0; j < np; j++) {
            if (pl[j].last < b->first || pl[j].first > b->last) continue;
            if (pl[j].offset > prev_end) {
                size_t gap = pl[j].offset - prev_end;
                if (gap >= b->bytes && gap < best_gap) {
                    best_gap = gap;
                    best = prev_end;
                }
            }
            if (pl[j].end > prev_end) prev_end = pl[j].end;
        }
        size_t off = best != SIZE_MAX ? best : prev_end;
        offsets[order[i]] = off;
        if (off + b->bytes > top) top = off + b->bytes;
        /* insert keeping offset order */
        int at = np;
        while (at > 0 && pl[at - 1].offset > off) at--;
        memmove(&pl[at + 1], &pl[at], (size_t)(np - at) * sizeof *pl);
        pl[at] = (placed){off, off + b->bytes, b->first, b->last};
        np++;
    }
    return top;
}

static prt_status pack(planner *pl) {
    prt_context *ctx = pl->ctx;
    prt_mem_plan *plan = pl->plan;
    int n = plan->n_bufs;
    int *order = prt_calloc(ctx, (size_t)n + 1, sizeof *order);
    sort_key *keys = prt_calloc(ctx, (size_t)n + 1, sizeof *keys);
    placed *work = prt_calloc(ctx, (size_t)n + 1, sizeof *work);
    size_t *offs = prt_calloc(ctx, (size_t)n + 1, sizeof *offs);
    size_t *best = prt_calloc(ctx, (size_t)n + 1, sizeof *best);
    int *best_order = prt_calloc(ctx, (size_t)n + 1, sizeof *best_order);
    prt_status st = PRT_OK;
    if (!order || !keys || !work || !offs || !best || !best_order) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "memory plan: out of memory");
        goto done;
    }
    size_t best_size = SIZE_MAX;
    for (int s = 0; s < PRT_MEM_search; s++) {
        for (int i = 0; i < n; i++) keys[i] = strategy_key(&plan->bufs[i], (prt_mem_strategy)s, i);
        qsort(keys, (size_t)n, sizeof *keys, cmp_key);
        for (int i = 0; i < n; i++) order[i] = keys[i].idx;
        size_t size = run_strategy(plan->bufs, n, order, work, offs);
        plan->strategy_bytes[s] = size;
        if (size < best_size) {
            best_size = size;
            plan->strategy = (prt_mem_strategy)s;
            memcpy(best, offs, (size_t)n * sizeof *offs);
            memcpy(best_order, order, (size_t)n * sizeof *order);
        }
    }
    /* Local search from the best order: swap two positions (a fixed-seed
     * generator, so plans are reproducible), keep the swap when the arena does
     * not grow. Each try costs O(n^2), so the tries shrink as graphs grow. */
    plan->strategy_bytes[PRT_MEM_search] = best_size;
    if (n > 1 && best_size > plan->lower_bound_bytes) {
        long tries = (long)(4e7 / ((double)n * (double)n));
        if (tries > 3000) tries = 3000;
        uint64_t x = 0x9e3779b97f4a7c15ull;
        memcpy(order, best_order, (size_t)n * sizeof *order);
        size_t cur = best_size;
        for (long t = 0; t < tries && cur > plan->lower_bound_bytes; t++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            int i = (int)(x % (uint64_t)n), j = (int)((x >> 32) % (uint64_t)n);
            if (i == j) continue;
            int tmp = order[i];
            order[i] = order[j];
            order[j] = tmp;
            size_t size = run_strategy(plan->bufs, n, order, work, offs);
            if (size <= cur) {
                cur = size;
                if (size < best_size) {
                    best_size = size;
                    plan->strategy = PRT_MEM_search;
                    memcpy(best, offs, (size_t)n * sizeof *offs);
                }
            } else {
                order[j] = order[i];
                order[i] = tmp;
            }
        }
        plan->strategy_bytes[PRT_MEM_search] = best_size;
    }
    for (int i = 0; i < n; i++) plan->bufs[i].offset = best[i];
    plan->arena_bytes = n ? best_size : 0;
done:
    prt_free(ctx, order, 0);
    prt_free(ctx, keys, 0);
    prt_free(ctx, work, 0);
    prt_free(ctx, offs, 0);
    prt_free(ctx, best, 0);
    prt_free(ctx, best_order, 0);
    return st;
}

/* ---- building the plan --------------------------------------------------------- */

static prt_status add_buffer(planner *pl, size_t bytes, int first, int last, int reg, int call, int *cap) {
    prt_mem_plan *plan = pl->plan;
    PRT_CHECK(prt_grow(pl->ctx, (void **)&plan->bufs, cap, plan->n_bufs + 1, sizeof *plan->bufs));
    plan->bufs[plan->n_bufs++] = (prt_mem_buffer){align_up(bytes ? bytes : 1), first, last, 0, reg, call, -1};
    return PRT_OK;
}

static prt_status collect_buffers(planner *pl) {
    const prt_program *p = pl->p;
    prt_mem_plan *plan = pl->plan;
    int cap = 0;
    /* register groups, in register order of their roots */
    for (int r = 0; r < p->n_regs; r++) {
        plan->reg_buffer[r] = -1;
        if (plan->reg_region[r] != PRT_MEM_ARENA || find(pl, r) != r) continue;
        plan->reg_buffer[r] = plan->n_bufs;
        PRT_CHECK(add_buffer(pl, pl->reg_bytes[r], pl->first[r], pl->last[r], r, -1, &cap));
    }
    for (int r = 0; r < p->n_regs; r++)
        if (plan->reg_region[r] == PRT_MEM_ARENA) plan->reg_buffer[r] = plan->reg_buffer[find(pl, r)];
    /* gradient buckets: those the program's ALLREDUCE instructions name (each
     * live from its first gradient write to its update), or else gradients in
     * the order backward writes them; reg_offset for now relative to the bucket */
    prt_bucket_table bt;
    PRT_CHECK(prt_program_buckets(pl->ctx, p, &bt));
    prt_status st = PRT_OK;
    for (int b = 0; b < bt.n && st == PRT_OK && !pl->o.no_buckets; b++) {
        int first = p->n_code;
        for (int j = 0; j < bt.b[b].n_regs; j++)
            if (pl->first[bt.b[b].regs[j]] < first) first = pl->first[bt.b[b].regs[j]];
        int open = plan->n_bufs;
        st = add_buffer(pl, 0, first, bt.b[b].wait_pc + 1, -1, -1, &cap);
        if (st != PRT_OK) break;
        plan->bufs[open].bucket = plan->n_buckets++;
        size_t fill = 0;
        for (int j = 0; j < bt.b[b].n_regs; j++) {
            int r = bt.b[b].regs[j];
            if (plan->reg_region[r] != PRT_MEM_GRAD) {
                st = prt_error(pl->ctx, PRT_ERR_INTERNAL, "memory plan: '%s' of bucket %d is not a gradient",
                               p->regs[r].name, b);
                break;
            }
            plan->reg_buffer[r] = open;
            plan->reg_offset[r] = fill;
            fill += align_up(pl->reg_bytes[r]);
            plan->bufs[open].bytes = fill;
            plan->grad_bytes += pl->reg_bytes[r];
        }
    }
    prt_bucket_table_free(pl->ctx, &bt);
    PRT_CHECK(st);
    int open = -1;
    size_t fill = 0;
    for (int pc = 0; pc < p->n_code; pc++) {
        if (!is_call(p->code[pc])) continue;
        const prt_call_desc *d = &p->k[PRT_VM_RAW_X(p->code[pc])].call;
        for (int j = 0; j < d->n_out; j++) {
            int r = d->out[j];
            if (plan->reg_region[r] != PRT_MEM_GRAD || pl->first[r] != pc || plan->reg_buffer[r] >= 0) continue;
            if (open < 0 || (fill >= PRT_MEM_BUCKET_BYTES && !pl->o.no_buckets)) {
                open = plan->n_bufs;
                fill = 0;
                PRT_CHECK(add_buffer(pl, 0, pl->o.no_buckets ? 0 : pc, p->n_code - 1, -1, -1, &cap));
                plan->bufs[open].bucket = plan->n_buckets++;
            }
            plan->reg_buffer[r] = open;
            plan->reg_offset[r] = fill;
            fill += align_up(pl->reg_bytes[r]);
            plan->bufs[open].bytes = fill;
            plan->grad_bytes += pl->reg_bytes[r];
        }
    }
    for (int r = 0; r < p->n_regs; r++)
        if (plan->reg_region[r] == PRT_MEM_GRAD && plan->reg_buffer[r] < 0)
            return prt_error(pl->ctx, PRT_ERR_INTERNAL, "memory plan: gradient '%s' is never written",
                             p->regs[r].name);
    /* workspaces: live only while their call runs */
    for (int k = 0; k < p->n_k; k++) plan->ws_offset[k] = -1;
    for (int pc = 0; pc < p->n_code; pc++) {
        if (!is_call(p->code[pc])) continue;
        int k = (int)PRT_VM_RAW_X(p->code[pc]);
        size_t ws;
        PRT_CHECK(prt_vm_call_workspace_on(pl->ctx, p, k, pl->o.cuda_workspaces, &ws));
        if (ws == 0 || plan->ws_offset[k] == 0) continue;
        if (ws > plan->workspace_bytes) plan->workspace_bytes = ws;
        plan->ws_offset[k] = 0; /* marks it; the real offset is filled after packing */
        PRT_CHECK(add_buffer(pl, ws, pc, pc, -1, k, &cap));
    }
    return PRT_OK;
}

static prt_status live_curve(planner *pl) {
    prt_mem_plan *plan = pl->plan;
    int n = plan->n_code;
    int64_t *delta = prt_calloc(pl->ctx, (size_t)n + 2, sizeof *delta);
    if (!delta) return prt_error(pl->ctx, PRT_ERR_NOMEM, "memory plan: out of memory");
    for (int b = 0; b < plan->n_bufs; b++) {
        delta[plan->bufs[b].first] += (int64_t)plan->bufs[b].bytes;
        delta[plan->bufs[b].last + 1] -= (int64_t)plan->bufs[b].bytes;
    }
    int64_t cur = 0;
    plan->peak_pc = 0;
    for (int pc = 0; pc < n; pc++) {
        cur += delta[pc];
        plan->live[pc] = (size_t)cur;
        if (plan->live[pc] > plan->lower_bound_bytes) {
            plan->lower_bound_bytes = plan->live[pc];
            plan->peak_pc = pc;
        }
    }
    prt_free(pl->ctx, delta, 0);
    return PRT_OK;
}

static prt_status check_straight_line(prt_context *ctx, const prt_program *p) {
    for (int pc = 0; pc < p->n_code; pc++) {
        unsigned op = PRT_VM_RAW_OP(p->code[pc]);
        if (op == PRT_OP_JMP || op == PRT_OP_LOOP || op == PRT_OP_SETI)
            return prt_error(ctx, PRT_ERR_UNSUPPORTED,
                             "program '%s': instruction %d (%s): the memory planner handles straight-line "
                             "programs only",
                             p->name, pc, prt_vm_op_names[op]);
        if (op == PRT_OP_HALT && pc != p->n_code - 1)
            return prt_error(ctx, PRT_ERR_UNSUPPORTED,
                             "program '%s': instruction %d: HALT before the end; the memory planner handles "
                             "straight-line programs only",
                             p->name, pc);
    }
    return PRT_OK;
}

prt_status prt_mem_plan_build(prt_context *ctx, const prt_program *p, prt_mem_plan **out) {
    return prt_mem_plan_build_opts(ctx, p, &(prt_mem_plan_options){0}, out);
}

prt_status prt_mem_plan_build_opts(prt_context *ctx, const prt_program *p, const prt_mem_plan_options *o,
                                   prt_mem_plan **out) {
    *out = NULL;
    double t0 = prt_now();
    PRT_CHECK(check_straight_line(ctx, p));
    prt_status st = PRT_OK;
    prt_mem_plan *plan = prt_calloc(ctx, 1, sizeof *plan);
    planner pl = {.ctx = ctx, .o = *o, .p = p, .plan = plan};
    size_t nr = (size_t)p->n_regs + 1;
    if (!plan) return prt_error(ctx, PRT_ERR_NOMEM, "memory plan: out of memory");
    plan->n_regs = p->n_regs;
    plan->n_k = p->n_k;
    plan->n_code = p->n_code;
    plan->reg_region = prt_calloc(ctx, nr, sizeof *plan->reg_region);
    plan->reg_offset = prt_calloc(ctx, nr, sizeof *plan->reg_offset);
    plan->reg_buffer = prt_calloc(ctx, nr, sizeof *plan->reg_buffer);
    plan->ws_offset = prt_calloc(ctx, (size_t)p->n_k + 1, sizeof *plan->ws_offset);
    plan->live = prt_calloc(ctx, (size_t)p->n_code + 1, sizeof *plan->live);
    pl.reg_bytes = prt_calloc(ctx, nr, sizeof *pl.reg_bytes);
    pl.first = prt_calloc(ctx, nr, sizeof *pl.first);
    pl.last = prt_calloc(ctx, nr, sizeof *pl.last);
    pl.group = prt_calloc(ctx, nr, sizeof *pl.group);
    pl.sub = prt_calloc(ctx, nr, sizeof *pl.sub);
    pl.is_output = prt_calloc(ctx, nr, sizeof *pl.is_output);
    if (!plan->reg_region || !plan->reg_offset || !plan->reg_buffer || !plan->ws_offset || !plan->live ||
        !pl.reg_bytes || !pl.first || !pl.last || !pl.group || !pl.sub || !pl.is_output) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "memory plan: out of memory");
        goto done;
    }
    PRT_CHECK_GOTO(classify(&pl), st, done);
    liveness(&pl);
    place_fixed(&pl);
    PRT_CHECK_GOTO(inplace(&pl), st, done);
    PRT_CHECK_GOTO(collect_buffers(&pl), st, done);
    PRT_CHECK_GOTO(live_curve(&pl), st, done);
    PRT_CHECK_GOTO(pack(&pl), st, done);
    for (int b = 0; b < plan->n_bufs; b++) {
        const prt_mem_buffer *bf = &plan->bufs[b];
        if (bf->call >= 0) plan->ws_offset[bf->call] = (int64_t)bf->offset;
    }
    for (int r = 0; r < p->n_regs; r++) {
        if (plan->reg_region[r] == PRT_MEM_ARENA)
            plan->reg_offset[r] = plan->bufs[plan->reg_buffer[r]].offset + pl.sub[r];
        if (plan->reg_region[r] == PRT_MEM_GRAD) plan->reg_offset[r] += plan->bufs[plan->reg_buffer[r]].offset;
    }
    /* the naive layout: one buffer per per-step tensor and one shared workspace */
    for (int r = 0; r < p->n_regs; r++)
        if (plan->reg_region[r] == PRT_MEM_ARENA || plan->reg_region[r] == PRT_MEM_GRAD) {
            plan->naive_bytes += align_up(pl.reg_bytes[r]);
            if (p->regs[r].kind == PRT_REG_INPUT) plan->input_bytes += pl.reg_bytes[r];
        }
    plan->naive_bytes += align_up(plan->workspace_bytes);
    plan->total_bytes = plan->persistent_bytes + plan->arena_bytes;
    plan->plan_seconds = prt_now() - t0;
    *out = plan;
    plan = NULL;
done:
    prt_mem_plan_destroy(ctx, plan);
    prt_free(ctx, pl.reg_bytes, 0);
    prt_free(ctx, pl.first, 0);
    prt_free(ctx, pl.last, 0);
    prt_free(ctx, pl.group, 0);
    prt_free(ctx, pl.sub, 0);
    prt_free(ctx, pl.is_output, 0);
    return st;
}

/* ---- checks and reports --------------------------------------------------------- */

static int cmp_first(const void *pa, const void *pb) {
    const prt_mem_buffer *a = *(prt_mem_buffer *const *)pa, *b = *(prt_mem_buffer *const *)pb;
    return (a->first > b->first) - (a->first < b->first);
}

prt_status prt_mem_plan_validate(prt_context *ctx, const prt_mem_plan *plan) {
    int n = plan->n_bufs;
    for (int b = 0; b < n; b++) {
        const prt_mem_buffer *x = &plan->bufs[b];
        if (x->offset % PRT_MEM_ALIGN || x->bytes % PRT_MEM_ALIGN)
            return prt_error(ctx, PRT_ERR_INTERNAL, "memory plan: buffer %d is not %d-byte aligned", b, PRT_MEM_ALIGN);
        if (x->offset > plan->arena_bytes || x->bytes > plan->arena_bytes - x->offset)
            return prt_error(ctx, PRT_ERR_INTERNAL, "memory plan: buffer %d [%zu, %zu) lies outside the %zu-byte arena",
                             b, x->offset, x->offset + x->bytes, plan->arena_bytes);
        if (x->first < 0 || x->last < x->first || x->last >= plan->n_code)
            return prt_error(ctx, PRT_ERR_INTERNAL, "memory plan: buffer %d has the lifetime [%d, %d]", b, x->first,
                             x->last);
    }
    /* sweep in order of first use: each buffer against those still live */
    const prt_mem_buffer **by = prt_calloc(ctx, (size_t)n + 1, sizeof *by);
    if (!by) return prt_error(ctx, PRT_ERR_NOMEM, "memory plan: out of memory");
    for (int b = 0; b < n; b++) by[b] = &plan->bufs[b];
    qsort(by, (size_t)n, sizeof *by, cmp_first);
    prt_status st = PRT_OK;
    for (int i = 0; i < n && st == PRT_OK; i++)
        for (int j = i + 1; j < n && by[j]->first <= by[i]->last; j++) {
            const prt_mem_buffer *a = by[i], *b = by[j];
            if (a->offset < b->offset + b->bytes && b->offset < a->offset + a->bytes) {
                st = prt_error(ctx, PRT_ERR_INTERNAL,
                               "memory plan: buffers %d and %d overlap in memory ([%zu, %zu) and [%zu, %zu)) while "
                               "both are live (instructions %d..%d and %d..%d)",
                               (int)(a - plan->bufs), (int)(b - plan->bufs), a->offset, a->offset + a->bytes,
                               b->offset, b->offset + b->bytes, a->first, a->last, b->first, b->last);
                break;
            }
        }
    prt_free(ctx, by, 0);
    return st;
}

const char *prt_mem_format_bytes(size_t bytes, char *buf, size_t cap) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, cap, "%zu B", bytes);
    else
        snprintf(buf, cap, "%.2f %s", v, units[u]);
    return buf;
}

bool prt_mem_parse_bytes(const char *s, size_t *out) {
    static const struct {
        const char *name;
        double mult;
    } units[] = {
        {"", 1},        {"B", 1},       {"K", 1024.0},   {"KiB", 1024.0},     {"KB", 1e3},
        {"M", 1048576.0}, {"MiB", 1048576.0}, {"MB", 1e6}, {"G", 1073741824.0}, {"GiB", 1073741824.0},
        {"GB", 1e9},    {"T", 1099511627776.0}, {"TiB", 1099511627776.0}, {"TB", 1e12},
    };
    if (!s) return false;
    /* digits [. digits]: strtod would also take signs, spaces, hex and exponents */
    const char *end = s;
    while (*end >= '0' && *end <= '9') end++;
    if (end == s) return false;
    if (*end == '.') {
        const char *frac = ++end;
        while (*end >= '0' && *end <= '9') end++;
        if (end == frac) return false;
    }
    char num[64];
    if ((size_t)(end - s) >= sizeof num) return false;
    memcpy(num, s, (size_t)(end - s));
    num[end - s] = '\0';
    double v = strtod(num, NULL);
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(end, units[i].name) != 0) continue;
        double b = v * units[i].mult;
        if (!(b < 1.8e19)) return false;
        *out = (size_t)b;
        return true;
    }
    return false;
}

const char *prt_mem_buffer_name(const prt_program *p, const prt_mem_plan *plan, int b, char *buf, size_t cap) {
    const prt_mem_buffer *x = &plan->bufs[b];
    if (x->reg >= 0) {
        snprintf(buf, cap, "%s", p->regs[x->reg].name);
    } else if (x->bucket >= 0) {
        snprintf(buf, cap, "gradient bucket %d", x->bucket);
    } else {
        const prt_call_desc *d = &p->k[x->call].call;
        snprintf(buf, cap, "workspace of '%s' (%s)", d->node, p->ops[d->op].name);
    }
    return buf;
}

prt_status prt_mem_plan_check_limit(prt_context *ctx, const prt_program *p, const prt_mem_plan *plan,
                                    size_t limit) {
    if (plan->total_bytes <= limit) return PRT_OK;
    char t[32], l[32], pa[32], gr[32], op[32], ar[32], pk[32];
    const char *where = "";
    char at[512] = "";
    int pc = plan->peak_pc;
    if (pc >= 0 && pc < p->n_code && is_call(p->code[pc])) {
        const prt_call_desc *d = &p->k[PRT_VM_RAW_X(p->code[pc])].call;
        snprintf(at, sizeof at, " (%s %s '%s')", prt_vm_op_names[PRT_VM_RAW_OP(p->code[pc])], p->ops[d->op].name,
                 d->node);
        where = at;
    }
    return prt_error(ctx, PRT_ERR_LIMIT,
                     "program '%s' needs %s but the memory limit is %s (parameters, running statistics and "
                     "optimizer state %s, of which optimizer state %s; arena %s, of which gradients %s); the arena "
                     "peaks at instruction %d%s with %s live",
                     p->name, prt_mem_format_bytes(plan->total_bytes, t, sizeof t),
                     prt_mem_format_bytes(limit, l, sizeof l),
                     prt_mem_format_bytes(plan->persistent_bytes, pa, sizeof pa),
                     prt_mem_format_bytes(plan->optimizer_bytes, op, sizeof op),
                     prt_mem_format_bytes(plan->arena_bytes, ar, sizeof ar),
                     prt_mem_format_bytes(plan->grad_bytes, gr, sizeof gr), pc, where,
                     prt_mem_format_bytes(plan->lower_bound_bytes, pk, sizeof pk));
}

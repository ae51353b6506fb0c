/* Helpers for the memory-planner suites: see tests/memory_util.h. */
#include "tests/memory_util.h"

#include "ops/train_impl.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Assertions for loops over every register, instruction and element: Check's
 * ck_assert records each passing check (a write to its log), which in such
 * loops costs seconds; these only call into Check on failure. */
#define MU_REQUIRE(cond, ...)                   \
    do {                                        \
        if (!(cond)) ck_abort_msg(__VA_ARGS__); \
    } while (0)
#define MU_CMP(a, op, b)                                                                                 \
    do {                                                                                                 \
        long long mu_a_ = (long long)(a), mu_b_ = (long long)(b);                                        \
        if (!(mu_a_ op mu_b_)) ck_abort_msg("%s %s %s failed: %lld vs %lld", #a, #op, #b, mu_a_, mu_b_); \
    } while (0)

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

char **mu_example_files(int *n) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", tu_src("examples"));
    char **names = NULL;
    int count = 0;
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "cannot open %s\n", dir);
        *n = 0;
        return NULL;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".yaml") != 0) continue;
        char **grown = realloc(names, (size_t)(count + 1) * sizeof *names);
        size_t cap = strlen(dir) + len + 2;
        char *name = malloc(cap);
        if (!grown || !name) abort();
        names = grown;
        snprintf(name, cap, "%s/%s", dir, e->d_name);
        names[count++] = name;
    }
    closedir(d);
    if (count) qsort(names, (size_t)count, sizeof *names, cmp_str);
    *n = count;
    return names;
}

void mu_free_names(char **names, int n) {
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

static prt_graph *load(prt_context *ctx, const char *path) {
    prt_graph *g = NULL;
    ck_assert_msg(prt_graph_load_yaml(ctx, path, &g) == PRT_OK, "%s: %s", path, prt_last_error(ctx));
    return g;
}

double mu_flops_per_image(prt_context *ctx, const char *path) {
    prt_graph *g = load(ctx, path);
    ck_assert_int_eq(prt_graph_infer(g, 1), PRT_OK);
    prt_graph_stats st;
    ck_assert_int_eq(prt_graph_stats_get(g, &st), PRT_OK);
    prt_graph_destroy(g);
    return (double)st.flops;
}

void mu_compile(prt_context *ctx, const char *path, bool training, prt_recompute_mode mode, int64_t batch,
                mu_net *out) {
    memset(out, 0, sizeof *out);
    out->g = load(ctx, path);
    if (training) {
        prt_solver s;
        if (out->g->solver)
            s = *out->g->solver;
        else
            prt_solver_defaults(&s);
        s.batch = batch;
        /* 100 steps an epoch: warm-up and schedules move within the two steps run */
        ck_assert_msg(prt_train_build(out->g, &s, 100, &out->ti) == PRT_OK, "%s: %s", path, prt_last_error(ctx));
        if (mode != PRT_RECOMPUTE_none)
            ck_assert_msg(prt_mem_rewrite(out->g, out->g->n_forward, mode, &out->ti.update_node, NULL) == PRT_OK,
                          "%s: recompute %s: %s", path, prt_recompute_mode_name(mode), prt_last_error(ctx));
        ck_assert_msg(prt_graph_infer(out->g, batch) == PRT_OK, "%s", prt_last_error(ctx));
        const prt_shape *lg = &out->g->values[out->ti.logits].shape;
        ck_assert_int_eq(lg->ndim, 2);
        out->classes = (int)lg->d[1];
    }
    ck_assert_msg(prt_vm_compile(out->g, batch, &out->p) == PRT_OK, "%s: %s", path, prt_last_error(ctx));
    ck_assert_ptr_nonnull(out->p->plan);
}

void mu_net_free(prt_context *ctx, mu_net *n) {
    prt_program_destroy(ctx, n->p);
    prt_graph_destroy(n->g);
    memset(n, 0, sizeof *n);
}

/* ---- runs ---------------------------------------------------------------------- */

static void blob_copy(prt_context *ctx, mu_blob *b, const char *name, const prt_tensor *t) {
    MU_CMP(prt_shape_nbytes(ctx, &t->shape, t->dtype, &b->bytes), ==, PRT_OK);
    b->name = strdup(name);
    b->dtype = t->dtype;
    b->data = malloc(b->bytes ? b->bytes : 1);
    MU_REQUIRE(b->name && b->data, "out of memory");
    memcpy(b->data, prt_tensor_data(t), b->bytes);
}

static void fill_inputs(prt_vm *vm, const prt_program *p, int step, int classes, uint64_t seed) {
    for (int i = 0; i < p->n_inputs; i++) {
        prt_tensor *t = prt_vm_input(vm, i);
        MU_REQUIRE(t != NULL, "no input %d", i);
        int64_t n = prt_shape_count(&t->shape);
        uint64_t key = seed * 1000003u + (uint64_t)step * 101u + (uint64_t)i;
        if (t->dtype == PRT_F32) {
            prt_rng_fill_normal(key, PRT_F32P(t), n, 0.0f, 1.0f);
        } else {
            MU_REQUIRE(t->dtype == PRT_I32 && classes > 0, "input %d '%s': cannot fill a %s input", i,
                       p->regs[p->inputs[i]].name, prt_dtype_name(t->dtype));
            int32_t *y = prt_tensor_data(t);
            for (int64_t k = 0; k < n; k++)
                y[k] = (int32_t)(prt_rng_uniform(key, (uint64_t)k) * (float)classes) % classes;
        }
    }
}

/* Registers a run keeps: parameters, state and (planned or not) gradients. */
static bool kept(const prt_program *p, int r) {
    prt_reg_kind k = p->regs[r].kind;
    return k == PRT_REG_PARAM || k == PRT_REG_STATE || (p->plan && p->plan->reg_region[r] == PRT_MEM_GRAD);
}

static prt_status try_run(prt_context *ctx, const prt_program *p, const prt_vm_options *o, int steps, int classes,
                          uint64_t seed, mu_result *out) {
    memset(out, 0, sizeof *out);
    prt_vm *vm;
    prt_status st = prt_vm_create(ctx, p, prt_cpu_device(ctx), o, &vm);
    if (st != PRT_OK) return st;
    out->n_outputs = p->n_outputs;
    out->outputs = calloc((size_t)(steps * p->n_outputs) + 1, sizeof *out->outputs);
    ck_assert_ptr_nonnull(out->outputs);
    for (int s = 0; s < steps; s++) {
        fill_inputs(vm, p, s, classes, seed);
        st = prt_vm_run(vm);
        if (st != PRT_OK) goto done;
        out->steps++;
        for (int i = 0; i < p->n_outputs; i++)
            blob_copy(ctx, &out->outputs[s * p->n_outputs + i], p->regs[p->outputs[i]].name, prt_vm_output(vm, i));
    }
    out->kept = calloc((size_t)p->n_regs + 1, sizeof *out->kept);
    ck_assert_ptr_nonnull(out->kept);
    for (int r = 0; r < p->n_regs; r++)
        if (kept(p, r)) blob_copy(ctx, &out->kept[out->n_kept++], p->regs[r].name, &vm->regs[r]);
done:
    prt_vm_destroy(vm);
    return st;
}

void mu_run(prt_context *ctx, const prt_program *p, const prt_vm_options *o, int steps, int classes, uint64_t seed,
            mu_result *out) {
    prt_status st = try_run(ctx, p, o, steps, classes, seed, out);
    MU_REQUIRE(st == PRT_OK, "program '%s' (%s%s%s): %s", p->name, o->training ? "training" : "inference",
               o->unplanned ? ", unplanned" : "", o->poison ? ", poison" : "", prt_last_error(ctx));
}

static void blobs_free(mu_blob *b, int n) {
    for (int i = 0; i < n; i++) {
        free(b[i].name);
        free(b[i].data);
    }
    free(b);
}

void mu_result_free(mu_result *r) {
    blobs_free(r->outputs, r->steps * r->n_outputs);
    blobs_free(r->kept, r->n_kept);
    memset(r, 0, sizeof *r);
}

/* ---- comparisons ------------------------------------------------------------------ */

static const mu_blob *find_kept(const mu_result *r, const char *name) {
    for (int i = 0; i < r->n_kept; i++)
        if (strcmp(r->kept[i].name, name) == 0) return &r->kept[i];
    return NULL;
}

/* NULL when identical, else a description of the first difference (static buffer). */
static const char *blob_diff(const mu_blob *a, const mu_blob *b) {
    static char msg[512];
    if (a->bytes != b->bytes) {
        snprintf(msg, sizeof msg, "'%s': %zu bytes vs %zu", a->name, a->bytes, b->bytes);
        return msg;
    }
    if (memcmp(a->data, b->data, a->bytes) == 0) return NULL;
    size_t n = a->bytes / 4, e = 0;
    const uint32_t *x = a->data, *y = b->data;
    while (e < n && x[e] == y[e]) e++;
    float fx = 0, fy = 0;
    if (e < n) {
        memcpy(&fx, &x[e], 4);
        memcpy(&fy, &y[e], 4);
    }
    snprintf(msg, sizeof msg, "'%s' differs first at element %zu of %zu: %.9g (0x%08x) vs %.9g (0x%08x)", a->name, e, n,
             (double)fx, e < n ? x[e] : 0, (double)fy, e < n ? y[e] : 0);
    return msg;
}

static const char *first_difference(const mu_result *a, const mu_result *b) {
    static char msg[640];
    MU_CMP(a->steps, ==, b->steps);
    MU_CMP(a->n_outputs, ==, b->n_outputs);
    for (int s = 0; s < a->steps; s++)
        for (int i = 0; i < a->n_outputs; i++) {
            const char *d = blob_diff(&a->outputs[s * a->n_outputs + i], &b->outputs[s * b->n_outputs + i]);
            if (d) {
                snprintf(msg, sizeof msg, "step %d, output %d %s", s, i, d);
                return msg;
            }
        }
    MU_CMP(a->n_kept, ==, b->n_kept);
    for (int i = 0; i < a->n_kept; i++) {
        const mu_blob *o = find_kept(b, a->kept[i].name);
        MU_REQUIRE(o != NULL, "'%s' kept by one run only", a->kept[i].name);
        const char *d = blob_diff(&a->kept[i], o);
        if (d) {
            snprintf(msg, sizeof msg, "after step %d: %s", a->steps - 1, d);
            return msg;
        }
    }
    return NULL;
}

void mu_expect_identical(const mu_result *a, const mu_result *b, const char *what) {
    MU_CMP(a->steps, >, 0);
    MU_CMP(a->n_kept, >, 0);
    const char *d = first_difference(a, b);
    MU_REQUIRE(d == NULL, "%s: %s", what, d);
}

bool mu_differ(const mu_result *a, const mu_result *b) { return first_difference(a, b) != NULL; }

static void blob_finite(const mu_blob *b, const char *what) {
    if (b->dtype != PRT_F32) return;
    const float *x = b->data;
    for (size_t e = 0; e < b->bytes / 4; e++)
        MU_REQUIRE(isfinite(x[e]), "%s: '%s' element %zu is %g", what, b->name, e, (double)x[e]);
}

void mu_expect_finite(const mu_result *r, const char *what) {
    for (int i = 0; i < r->steps * r->n_outputs; i++) blob_finite(&r->outputs[i], what);
    for (int i = 0; i < r->n_kept; i++) blob_finite(&r->kept[i], what);
}

/* ---- the plan against the program ------------------------------------------------ */

static size_t align_up(size_t n) { return (n + PRT_MEM_ALIGN - 1) / PRT_MEM_ALIGN * PRT_MEM_ALIGN; }

static bool is_call(prt_instr ins) {
    unsigned op = PRT_VM_RAW_OP(ins);
    return op == PRT_OP_CALL || op == PRT_OP_RECOMPUTE;
}

static const prt_call_desc *call_at(const prt_program *p, int pc) {
    return is_call(p->code[pc]) ? &p->k[PRT_VM_RAW_X(p->code[pc])].call : NULL;
}

static const prt_op_schema *schema_of(prt_context *ctx, const prt_program *p, const prt_call_desc *d) {
    const prt_op_schema *s = prt_op_get(ctx->ops, p->ops[d->op].id);
    MU_REQUIRE(s != NULL, "op '%s' is not registered", p->ops[d->op].name);
    return s;
}

void mu_accesses(prt_context *ctx, const prt_program *p, int *first, int *last) {
    for (int r = 0; r < p->n_regs; r++) first[r] = last[r] = -1;
    for (int pc = 0; pc < p->n_code; pc++) {
        const prt_call_desc *d = call_at(p, pc);
        if (!d) continue;
        const prt_op_schema *s = schema_of(ctx, p, d);
        for (int j = 0; j < d->n_in + d->n_out; j++) {
            bool is_in = j < d->n_in;
            if (is_in && j < d->n_data_in && j < 32 && ((s->shape_only >> j) & 1u)) continue;
            int r = is_in ? d->in[j] : d->out[j - d->n_in];
            if (first[r] < 0) first[r] = pc;
            last[r] = pc;
        }
    }
}

static int cmp_size_pair(const void *pa, const void *pb) {
    const size_t *a = pa, *b = pb;
    return (a[0] > b[0]) - (a[0] < b[0]);
}

void mu_check_plan(prt_context *ctx, const prt_program *p) { mu_check_plan_opts(ctx, p, p->plan, NULL); }

void mu_check_plan_opts(prt_context *ctx, const prt_program *p, const prt_mem_plan *plan,
                        const prt_mem_plan_options *o) {
    prt_mem_plan_options none = {0};
    if (!o) o = &none;
    ck_assert_ptr_nonnull(plan);
    if (o->no_inplace) MU_CMP(plan->n_inplace, ==, 0);
    if (o->no_views) MU_CMP(plan->n_views, ==, 0);
    MU_REQUIRE(prt_mem_plan_validate(ctx, plan) == PRT_OK, "%s", prt_last_error(ctx));
    MU_CMP(plan->n_regs, ==, p->n_regs);
    MU_CMP(plan->n_code, ==, p->n_code);
    MU_CMP(plan->n_k, ==, p->n_k);
    size_t nr = (size_t)p->n_regs + 1;
    int *first = calloc(nr, sizeof *first), *last = calloc(nr, sizeof *last);
    bool *opt_read = calloc(nr, sizeof *opt_read), *is_out = calloc(nr, sizeof *is_out);
    size_t *bytes = calloc(nr, sizeof *bytes);
    size_t(*order)[2] = calloc(nr, sizeof *order);
    int n;
    ck_assert(first && last && opt_read && is_out && bytes && order);
    mu_accesses(ctx, p, first, last);
    for (int pc = 0; pc < p->n_code; pc++) {
        const prt_call_desc *d = call_at(p, pc);
        if (d && schema_of(ctx, p, d)->updates_inputs)
            for (int j = 0; j < d->n_in; j++) opt_read[d->in[j]] = true;
    }
    for (int i = 0; i < p->n_outputs; i++) is_out[p->outputs[i]] = true;

    /* regions and byte counts */
    size_t param = 0, state = 0, opt = 0, grad = 0, arena_regs = 0, inputs = 0;
    for (int r = 0; r < p->n_regs; r++) {
        const prt_reg *g = &p->regs[r];
        prt_mem_region want = g->kind == PRT_REG_COUNTER                             ? PRT_MEM_NONE
                              : g->kind == PRT_REG_PARAM || g->kind == PRT_REG_STATE ? PRT_MEM_PERSISTENT
                              : g->kind == PRT_REG_ACT && opt_read[r]                ? PRT_MEM_GRAD
                                                                                     : PRT_MEM_ARENA;
        MU_REQUIRE(plan->reg_region[r] == want, "register r%d '%s' (%s): region %d, expected %d", r, g->name,
                   prt_reg_kind_name(g->kind), plan->reg_region[r], want);
        if (want == PRT_MEM_NONE) continue;
        MU_CMP(prt_shape_nbytes(ctx, &g->shape, g->dtype, &bytes[r]), ==, PRT_OK);
        if (g->kind == PRT_REG_PARAM) param += bytes[r];
        if (g->kind == PRT_REG_STATE) *(opt_read[r] ? &opt : &state) += bytes[r];
        if (want == PRT_MEM_GRAD) grad += bytes[r];
        if (want == PRT_MEM_ARENA || want == PRT_MEM_GRAD) arena_regs += align_up(bytes[r]);
        if (g->kind == PRT_REG_INPUT) inputs += bytes[r];
        MU_REQUIRE(plan->reg_buffer[r] == -1 || want == PRT_MEM_ARENA || want == PRT_MEM_GRAD,
                   "r%d '%s' outside the arena has buffer %d", r, g->name, plan->reg_buffer[r]);
    }
    MU_CMP(plan->param_bytes, ==, param);
    MU_CMP(plan->state_bytes, ==, state);
    MU_CMP(plan->optimizer_bytes, ==, opt);
    MU_CMP(plan->grad_bytes, ==, grad);
    MU_CMP(plan->input_bytes, ==, inputs);

    /* persistent tensors: aligned, disjoint, inside persistent_bytes */
    n = 0;
    for (int r = 0; r < p->n_regs; r++)
        if (plan->reg_region[r] == PRT_MEM_PERSISTENT) order[n][0] = plan->reg_offset[r], order[n++][1] = (size_t)r;
    qsort(order, (size_t)n, sizeof *order, cmp_size_pair);
    for (int i = 0; i < n; i++) {
        int r = (int)order[i][1];
        MU_CMP(plan->reg_offset[r] % PRT_MEM_ALIGN, ==, 0);
        size_t end = plan->reg_offset[r] + bytes[r];
        MU_REQUIRE(end <= (i + 1 < n ? order[i + 1][0] : plan->persistent_bytes),
                   "persistent '%s' [%zu, %zu) runs into the next tensor or past %zu", p->regs[r].name,
                   plan->reg_offset[r], end, plan->persistent_bytes);
    }

    /* gradients: in the order backward writes them, back to back inside buckets
     * (arena buffers numbered in that order, live from their first gradient to
     * the end of the step); a bucket closes once it holds PRT_MEM_BUCKET_BYTES */
    int n_grads = 0, bucket = -1, prev = -1;
    size_t off = 0, grad_aligned = 0;
    bool *seen = calloc(nr, sizeof *seen);
    ck_assert_ptr_nonnull(seen);
    for (int pc = 0; pc < p->n_code; pc++) {
        const prt_call_desc *d = call_at(p, pc);
        for (int j = 0; d && j < d->n_out; j++) {
            int r = d->out[j];
            if (plan->reg_region[r] != PRT_MEM_GRAD || seen[r]) continue;
            seen[r] = true;
            int b = plan->reg_buffer[r];
            MU_REQUIRE(b >= 0 && b < plan->n_bufs, "gradient '%s' has buffer %d", p->regs[r].name, b);
            const prt_mem_buffer *x = &plan->bufs[b];
            MU_REQUIRE(x->bucket >= 0 && x->reg == -1 && x->call == -1, "gradient '%s': buffer %d is not a bucket",
                       p->regs[r].name, b);
            if (x->bucket != bucket) {
                MU_REQUIRE(bucket < 0 || !o->no_buckets, "more than one bucket with no_buckets");
                if (bucket >= 0) {
                    /* the previous bucket closed: full, and not before it was */
                    MU_CMP(off, >=, PRT_MEM_BUCKET_BYTES);
                    MU_CMP(off - align_up(bytes[prev]), <, PRT_MEM_BUCKET_BYTES);
                }
                MU_CMP(x->bucket, ==, bucket + 1);
                bucket = x->bucket;
                MU_CMP(x->first, ==, o->no_buckets ? 0 : pc);
                MU_CMP(x->last, ==, p->n_code - 1);
                off = 0;
            }
            MU_REQUIRE(plan->reg_offset[r] == x->offset + off,
                       "gradient %d '%s' (written at %d): offset %zu, expected %zu in bucket %d at %zu", n_grads,
                       p->regs[r].name, pc, plan->reg_offset[r], x->offset + off, bucket, x->offset);
            off += align_up(bytes[r]);
            MU_CMP(off, <=, x->bytes);
            grad_aligned += align_up(bytes[r]);
            prev = r;
            n_grads++;
        }
    }
    for (int r = 0; r < p->n_regs; r++)
        MU_REQUIRE(plan->reg_region[r] != PRT_MEM_GRAD || seen[r], "gradient '%s' is never written", p->regs[r].name);
    free(seen);
    MU_CMP(plan->n_buckets, ==, bucket + 1);
    size_t bucket_bytes = 0;
    for (int b = 0; b < plan->n_bufs; b++)
        if (plan->bufs[b].bucket >= 0) bucket_bytes += plan->bufs[b].bytes;
    MU_CMP(bucket_bytes, ==, grad_aligned);
    MU_CMP(plan->total_bytes, ==, plan->persistent_bytes + plan->arena_bytes);

    /* arena registers: inside their buffer, which covers every access; inputs
     * live for the whole step, outputs from their producer to the end */
    int n_reg_bufs = 0, n_arena = 0;
    for (int b = 0; b < plan->n_bufs; b++) {
        const prt_mem_buffer *x = &plan->bufs[b];
        MU_REQUIRE((x->reg >= 0) + (x->call >= 0) + (x->bucket >= 0) == 1, "buffer %d: reg %d, call %d, bucket %d", b,
                   x->reg, x->call, x->bucket);
        if (x->reg >= 0) {
            MU_CMP(plan->reg_buffer[x->reg], ==, b);
            n_reg_bufs++;
        }
    }
    int *lo = calloc(nr, sizeof *lo), *hi = calloc(nr, sizeof *hi);
    ck_assert(lo && hi);
    for (int r = 0; r < p->n_regs; r++) {
        if (plan->reg_region[r] != PRT_MEM_ARENA) continue;
        n_arena++;
        int b = plan->reg_buffer[r];
        MU_REQUIRE(b >= 0 && b < plan->n_bufs, "arena register '%s' has buffer %d", p->regs[r].name, b);
        const prt_mem_buffer *x = &plan->bufs[b];
        MU_REQUIRE(x->reg >= 0, "arena register '%s' is in buffer %d, not a register's", p->regs[r].name, b);
        MU_REQUIRE(plan->reg_offset[r] >= x->offset && plan->reg_offset[r] + bytes[r] <= x->offset + x->bytes,
                   "'%s' [%zu, %zu) lies outside its buffer %d [%zu, %zu)", p->regs[r].name, plan->reg_offset[r],
                   plan->reg_offset[r] + bytes[r], b, x->offset, x->offset + x->bytes);
        bool input = p->regs[r].kind == PRT_REG_INPUT;
        lo[r] = input ? 0 : first[r];
        hi[r] = input || is_out[r] ? p->n_code - 1 : last[r];
        if (lo[r] < 0) continue; /* never touched */
        MU_REQUIRE(x->first <= lo[r] && x->last >= hi[r],
                   "'%s' is used over instructions %d..%d but its buffer %d lives over %d..%d", p->regs[r].name, lo[r],
                   hi[r], b, x->first, x->last);
    }
    /* Registers sharing memory while both are in use: the later one is computed
     * over the earlier by the call that reads it last and writes the later in
     * place (same bytes), or the earlier is a data input of a call with input
     * views (concat), placed inside the later, the call's output, at its slice. */
    int *members = calloc(nr, sizeof *members);
    ck_assert_ptr_nonnull(members);
    for (int b = 0; b < plan->n_bufs; b++) {
        if (plan->bufs[b].reg < 0) continue;
        n = 0;
        for (int r = 0; r < p->n_regs; r++)
            if (plan->reg_region[r] == PRT_MEM_ARENA && plan->reg_buffer[r] == b && lo[r] >= 0) members[n++] = r;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                int x = members[i], y = members[j];
                if (x == y || lo[x] > lo[y] || (lo[x] == lo[y] && x > y)) continue; /* x: the earlier */
                bool mem = plan->reg_offset[x] < plan->reg_offset[y] + bytes[y] &&
                           plan->reg_offset[y] < plan->reg_offset[x] + bytes[x];
                if (!mem || hi[x] < lo[y]) continue;
                int pc = lo[y];
                const prt_call_desc *d = call_at(p, pc);
                MU_REQUIRE(d != NULL, "instruction %d is not a call", pc);
                const prt_op_schema *s = schema_of(ctx, p, d);
                bool inplace = s->inplace_in >= 0 && d->in[s->inplace_in] == x && d->out[0] == y && hi[x] == pc &&
                               plan->reg_offset[x] == plan->reg_offset[y] && bytes[x] == bytes[y];
                bool view = false;
                if (s->input_views && d->out[0] == y) {
                    size_t before = 0;
                    for (int k = 0; k < d->n_data_in && !view; k++) {
                        if (d->in[k] == x)
                            view =
                                plan->reg_offset[x] >= plan->reg_offset[y] &&
                                plan->reg_offset[x] + bytes[x] <= plan->reg_offset[y] + bytes[y] &&
                                (strcmp(s->name, "concat") != 0 || plan->reg_offset[x] - plan->reg_offset[y] == before);
                        before += bytes[d->in[k]];
                    }
                }
                MU_REQUIRE(inplace || view,
                           "'%s' (used %d..%d, [%zu, %zu)) and '%s' (used %d..%d, [%zu, %zu)) share memory in "
                           "buffer %d, but '%s' (instruction %d, %s) neither computes the one in place over the "
                           "other nor reads the one as a view into the other",
                           p->regs[x].name, lo[x], hi[x], plan->reg_offset[x], plan->reg_offset[x] + bytes[x],
                           p->regs[y].name, lo[y], hi[y], plan->reg_offset[y], plan->reg_offset[y] + bytes[y], b,
                           d->node, pc, s->name);
            }
    }
    free(members);
    free(lo);
    free(hi);
    MU_CMP(plan->n_inplace + plan->n_views, ==, n_arena - n_reg_bufs);

    /* workspaces: every call that needs one has its own buffer for its instruction */
    size_t ws_max = 0;
    for (int pc = 0; pc < p->n_code; pc++) {
        if (!is_call(p->code[pc])) continue;
        int k = (int)PRT_VM_RAW_X(p->code[pc]);
        size_t ws;
        MU_CMP(prt_vm_call_workspace(ctx, p, k, &ws), ==, PRT_OK);
        if (ws > ws_max) ws_max = ws;
        if (ws == 0) {
            MU_CMP(plan->ws_offset[k], ==, -1);
            continue;
        }
        int found = -1;
        for (int b = 0; b < plan->n_bufs; b++)
            if (plan->bufs[b].call == k) found = b;
        MU_REQUIRE(found >= 0, "call '%s' needs %zu bytes of workspace and has no buffer", p->k[k].call.node, ws);
        const prt_mem_buffer *x = &plan->bufs[found];
        MU_CMP(x->reg, ==, -1);
        MU_CMP(plan->ws_offset[k], ==, (int64_t)x->offset);
        MU_CMP(x->bytes, >=, ws);
        MU_REQUIRE(x->first <= pc && pc <= x->last, "workspace of '%s' lives over %d..%d, used at %d",
                   p->k[k].call.node, x->first, x->last, pc);
    }
    MU_CMP(plan->workspace_bytes, ==, ws_max);
    MU_CMP(plan->naive_bytes, ==, arena_regs + align_up(ws_max));

    /* the live curve, its peak and the bounds */
    size_t lb = 0;
    int peak = 0;
    for (int pc = 0; pc < p->n_code; pc++) {
        size_t live = 0;
        for (int b = 0; b < plan->n_bufs; b++)
            if (plan->bufs[b].first <= pc && pc <= plan->bufs[b].last) live += plan->bufs[b].bytes;
        MU_CMP(plan->live[pc], ==, live);
        if (live > lb) lb = live, peak = pc;
    }
    MU_CMP(plan->lower_bound_bytes, ==, lb);
    MU_CMP(plan->peak_pc, ==, peak);
    MU_CMP(plan->lower_bound_bytes, <=, plan->arena_bytes);
    size_t best = SIZE_MAX;
    for (int s = 0; s < PRT_MEM_STRATEGY_COUNT; s++)
        if (plan->strategy_bytes[s] < best) best = plan->strategy_bytes[s];
    MU_CMP(plan->arena_bytes, ==, best);
    MU_CMP(plan->strategy_bytes[plan->strategy], ==, best);

    free(first);
    free(last);
    free(opt_read);
    free(is_out);
    free(bytes);
    free(order);
}

/* ---- whole examples ---------------------------------------------------------------- */

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Unplanned, planned, planned with poison: the same bits. */
static void three_ways(prt_context *ctx, const prt_program *p, bool training, int steps, int classes,
                       const char *what) {
    char msg[512];
    mu_result ref, planned, poisoned;
    prt_vm_options o = {.training = training, .unplanned = true};
    mu_run(ctx, p, &o, steps, classes, 7, &ref);
    mu_expect_finite(&ref, what);
    o.unplanned = false;
    mu_run(ctx, p, &o, steps, classes, 7, &planned);
    snprintf(msg, sizeof msg, "%.400s: planned vs unplanned", what);
    mu_expect_identical(&planned, &ref, msg);
    mu_result_free(&planned);
    o.poison = true;
    mu_run(ctx, p, &o, steps, classes, 7, &poisoned);
    snprintf(msg, sizeof msg, "%.400s: planned with poison vs unplanned", what);
    mu_expect_identical(&poisoned, &ref, msg);
    mu_result_free(&poisoned);
    mu_result_free(&ref);
}

void mu_check_example(const char *path, int64_t batch) {
    char what[512];
    prt_context *ctx = tu_context();
    for (int training = 0; training < 2; training++) {
        mu_net net;
        mu_compile(ctx, path, training, PRT_RECOMPUTE_none, batch, &net);
        mu_check_plan(ctx, net.p);
        MU_CMP(net.p->plan->arena_bytes, <=, net.p->plan->naive_bytes);
        snprintf(what, sizeof what, "%s, %s, batch %lld", base_name(path), training ? "training" : "inference",
                 (long long)batch);
        three_ways(ctx, net.p, training, 2, net.classes, what);
        mu_net_free(ctx, &net);
    }
    prt_context_destroy(ctx);
}

void mu_check_recompute(const char *path, int64_t batch) {
    char what[512];
    prt_context *ctx = tu_context();
    mu_net base;
    mu_compile(ctx, path, true, PRT_RECOMPUTE_none, batch, &base);
    mu_result ref, got;
    prt_vm_options o = {.training = true, .unplanned = true};
    mu_run(ctx, base.p, &o, 2, base.classes, 7, &ref);
    mu_expect_finite(&ref, base_name(path));
    for (int m = PRT_RECOMPUTE_none + 1; m < PRT_RECOMPUTE_MODE_COUNT; m++) {
        prt_recompute_mode mode = (prt_recompute_mode)m;
        mu_net re;
        mu_compile(ctx, path, true, mode, batch, &re);
        mu_check_plan(ctx, re.p);
        int n_re = 0, n_clones = 0;
        for (int pc = 0; pc < re.p->n_code; pc++) n_re += PRT_VM_RAW_OP(re.p->code[pc]) == PRT_OP_RECOMPUTE;
        for (int n = 0; n < re.g->n_nodes; n++) n_clones += re.g->nodes[n].recompute_of >= 0;
        MU_REQUIRE(n_re > 0, "%s: recompute %s emitted no RECOMPUTE instruction", base_name(path),
                   prt_recompute_mode_name(mode));
        MU_CMP(n_re, ==, n_clones);
        ck_assert_str_eq(re.g->nodes[re.ti.update_node].name, base.g->nodes[base.ti.update_node].name);
        o.unplanned = false;
        for (int poison = 0; poison < 2; poison++) {
            o.poison = poison;
            mu_run(ctx, re.p, &o, 2, re.classes, 7, &got);
            snprintf(what, sizeof what, "%s, batch %lld: recompute %s%s vs none (unplanned)", base_name(path),
                     (long long)batch, prt_recompute_mode_name(mode), poison ? " with poison" : "");
            mu_expect_identical(&got, &ref, what);
            mu_result_free(&got);
        }
        mu_net_free(ctx, &re);
    }
    mu_result_free(&ref);
    mu_net_free(ctx, &base);
    prt_context_destroy(ctx);
}

/* The same checks, fewer runs, for networks where a step costs seconds: the
 * poisoned planned run (which also covers the plain one's layout) against the
 * unplanned one, one inference pass and two training steps, then the default
 * recompute mode's training against the same reference. */
void mu_check_example_large(const char *path, int64_t batch) {
    char what[512];
    prt_context *ctx = tu_context();
    mu_result ref, got;
    for (int training = 0; training < 2; training++) {
        mu_net net;
        mu_compile(ctx, path, training, PRT_RECOMPUTE_none, batch, &net);
        mu_check_plan(ctx, net.p);
        int steps = training ? 2 : 1;
        prt_vm_options o = {.training = training, .unplanned = true};
        mu_run(ctx, net.p, &o, steps, net.classes, 7, &ref);
        mu_expect_finite(&ref, base_name(path));
        o.unplanned = false;
        o.poison = true;
        mu_run(ctx, net.p, &o, steps, net.classes, 7, &got);
        snprintf(what, sizeof what, "%s, %s, batch %lld: planned with poison vs unplanned", base_name(path),
                 training ? "training" : "inference", (long long)batch);
        mu_expect_identical(&got, &ref, what);
        mu_result_free(&got);
        mu_net_free(ctx, &net);
        if (training) {
            mu_net re;
            mu_compile(ctx, path, true, PRT_RECOMPUTE_cheap, batch, &re);
            mu_check_plan(ctx, re.p);
            o.poison = false;
            mu_run(ctx, re.p, &o, steps, re.classes, 7, &got);
            snprintf(what, sizeof what, "%s, batch %lld: recompute cheap (planned) vs none (unplanned)",
                     base_name(path), (long long)batch);
            mu_expect_identical(&got, &ref, what);
            mu_result_free(&got);
            mu_net_free(ctx, &re);
        }
        mu_result_free(&ref);
    }
    prt_context_destroy(ctx);
}

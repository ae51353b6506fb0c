/* The op-check harness (ops/gradcheck_impl.h): forward, fast against
 * reference, gradient against finite differences, in-place and CUDA against
 * CPU, for any registered op, built-in or plugin.
 *
 * Graph. Each data input x_k is a graph input passed through `scale by 1`
 * (exact, and it makes the op's input an activation, so the grad builder
 * emits its gradient) into the op; integer inputs (labels) go in directly.
 * For the gradient check every output y_j with the batch as its first
 * dimension gets a further graph input dy_j of random values, so the loss is
 * the fixed random projection L = sum_j <dy_j, y_j>; an op whose output 0
 * lacks the batch (a loss such as softmax_xent's [1]) is seeded with 1 there
 * and nowhere else, as in training. The op's own grad builder
 * (schema->grad) appends the backward, and the VM runs the whole program,
 * with the reference kernels and again with the fast paths where the op has
 * them, in training mode unless the spec says otherwise.
 *
 * Finite differences. For up to max_samples elements of each data input and
 * each trainable parameter (all of them when fewer), the analytic dL/dv is
 * compared with (L(v + h) - L(v - h)) / 2h, L accumulated in double over
 * float32 runs (plugin ops have f32 kernels only, so the harness evaluates in
 * f32 everywhere), h = 1e-2 by default. The step counter is reset before each
 * run, so dropout masks repeat. Inputs are uniform in +-[0.1, 1], away from
 * relu's kink at 0. Per element the relative error
 *     e = |fd - an| / (|fd| + |an| + 0.1 * (rms(an) + 1e-3))
 * must be at most rtol = 1e-2: about 2% of the value, room for the O(h^2)
 * truncation of smooth ops (batch norm, softmax), plus a thousandth of the
 * tensor's typical gradient for float32 rounding of L divided by 2h (the same
 * bound as tests/test_grad.c, whose worst is about a tenth of it). A wrong
 * gradient scaled by 2 gives e = 1/3.
 *
 * Kinks. Where the one-sided differences (L(v+h) - L(v)) / h and
 * (L(v) - L(v-h)) / h disagree by more than half their size (a relu input or
 * a max-pooling tie within the step), no derivative exists at that scale: the
 * element is skipped and counted. More than a quarter skipped fails the check,
 * so a non-smooth op cannot pass by skipping. */
#include "ops/gradcheck_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cuda_api.h"
#include "vm/vm_api.h"

#define GC_EPS 1e-2
#define GC_RTOL 1e-2
#define GC_ATOL_OVER_RTOL 0.1
#define GC_SAMPLES 48
#define GC_STEP 5         /* every run executes as this step */
#define GC_FAST_TOL 1e-4  /* fast vs reference, relative to |ref| + rms(ref) */
#define GC_INPLACE_TOL 1e-6
#define GC_CUDA_RTOL 1e-3
#define GC_CUDA_ATOL 1e-4 /* relative to rms(cpu) */
#define GC_MAX_VALS (PRT_GRADCHECK_MAX_IN + PRT_MAX_OP_PARAMS)
#define GC_MAX_GIN (PRT_GRADCHECK_MAX_IN + 4)

static const char *const check_names[] = {
#define X(n, s) s,
    PRT_GRADCHECK_CHECKS(X)
#undef X
};

const char *prt_gradcheck_check_name(prt_gradcheck_check c) {
    return (unsigned)c < PRT_GRADCHECK_N ? check_names[c] : "?";
}

const char *prt_gradcheck_result_name(prt_gradcheck_result r) {
    return r == PRT_GC_PASSED ? "passed" : r == PRT_GC_FAILED ? "failed" : "skipped";
}

bool prt_gradcheck_passed(const prt_gradcheck_report *rep) {
    for (int c = 0; c < PRT_GRADCHECK_N; c++)
        if (rep->item[c].result == PRT_GC_FAILED) return false;
    return true;
}

/* ---- small helpers ---------------------------------------------------------- */

typedef struct gc_rng { uint64_t s; } gc_rng;
static uint64_t rnext(gc_rng *r) {
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return r->s;
}
static double runif(gc_rng *r) { return (double)(rnext(r) >> 11) / 9007199254740992.0; }
static int64_t rint_(gc_rng *r, int64_t lo, int64_t hi) { return lo + (int64_t)(rnext(r) % (uint64_t)(hi - lo + 1)); }

static void fill_f32(float *v, int64_t n, gc_rng *r) {
    for (int64_t i = 0; i < n; i++) {
        double u = runif(r) * 2 - 1;
        v[i] = (float)(u < 0 ? u * 0.9 - 0.1 : u * 0.9 + 0.1);
    }
}

static void setf(prt_gradcheck_item *it, prt_gradcheck_result r, const char *fmt, ...) PRT_PRINTF(3, 4);
static void setf(prt_gradcheck_item *it, prt_gradcheck_result r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(it->note, sizeof it->note, fmt, ap);
    va_end(ap);
    it->result = r;
}

/* Fails the item with the context's message (a kernel or builder error). */
static void fail_ctx(prt_context *ctx, prt_gradcheck_item *it, const char *what) {
    setf(it, PRT_GC_FAILED, "%s: %s", what, prt_last_error(ctx));
    prt_error_clear(ctx);
}

/* ---- the case: schema, attributes, host values ------------------------------ */

typedef struct gc_case {
    prt_context *ctx;
    const prt_op_schema *s;
    int op_id;
    const prt_gradcheck_spec *spec;
    prt_attr attrs[PRT_GRADCHECK_MAX_ATTRS];
    int64_t batch;
    double eps, rtol;
    int samples;
    gc_rng rng;
    void *x[PRT_GRADCHECK_MAX_IN]; /* host values of the data inputs */
    size_t x_bytes[PRT_GRADCHECK_MAX_IN];
} gc_case;

static const char *attr_type_want(prt_attr_type t) {
    switch (t) {
    case PRT_ATTR_INT: return "an integer";
    case PRT_ATTR_FLOAT: return "a finite number";
    case PRT_ATTR_BOOL: return "true or false";
    case PRT_ATTR_INTS: return "1 to 8 integers separated by commas";
    case PRT_ATTR_STRING: return "a string";
    }
    return "a value";
}

static bool parse_int(const char *s, int64_t *out) {
    char *end;
    if (!*s) return false;
    long long v = strtoll(s, &end, 10);
    if (*end) return false;
    *out = v;
    return true;
}

static prt_status parse_attr(prt_context *ctx, const prt_op_schema *s, const prt_attr_def *d, const char *v,
                             prt_attr *a) {
    a->set = true;
    bool ok = true;
    switch (d->type) {
    case PRT_ATTR_INT:
        ok = parse_int(v, &a->i[0]);
        a->n = 1;
        break;
    case PRT_ATTR_FLOAT: {
        char *end;
        a->f = strtod(v, &end);
        ok = *v && !*end && isfinite(a->f);
        break;
    }
    case PRT_ATTR_BOOL:
        ok = !strcmp(v, "true") || !strcmp(v, "false") || !strcmp(v, "1") || !strcmp(v, "0");
        a->i[0] = !strcmp(v, "true") || !strcmp(v, "1");
        break;
    case PRT_ATTR_INTS: {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", v);
        a->n = 0;
        for (char *p = buf, *q; ok; p = q + 1) {
            q = strchr(p, ',');
            if (q) *q = 0;
            if (a->n == PRT_ATTR_MAX_INTS || !parse_int(p, &a->i[a->n])) ok = false;
            else a->n++;
            if (!q) break;
        }
        break;
    }
    case PRT_ATTR_STRING: a->s = v; break;
    }
    if (!ok)
        return prt_error(ctx, PRT_ERR_INVALID, "%s: attribute '%s' expects %s, found '%s'", s->name, d->name,
                         attr_type_want(d->type), v);
    if (d->type == PRT_ATTR_INT || d->type == PRT_ATTR_INTS)
        for (int k = 0; k < a->n; k++)
            if (a->i[k] < d->min)
                return prt_error(ctx, PRT_ERR_INVALID, "%s: attribute '%s' must be at least %lld, found %lld", s->name,
                                 d->name, (long long)d->min, (long long)a->i[k]);
    return PRT_OK;
}

static prt_status set_up(gc_case *c) {
    const prt_op_schema *s = c->s;
    const prt_gradcheck_spec *sp = c->spec;
    prt_context *ctx = c->ctx;
    if (s->updates_inputs)
        return prt_error(ctx, PRT_ERR_INVALID, "%s updates its inputs (%s): op-check checks ops that compute outputs",
                         s->name, s->grad_note ? s->grad_note : "an optimizer update");
    if (s->n_attrs > PRT_GRADCHECK_MAX_ATTRS)
        return prt_error(ctx, PRT_ERR_LIMIT, "%s has %d attributes, op-check handles %d", s->name, s->n_attrs,
                         PRT_GRADCHECK_MAX_ATTRS);
    if (sp->n_in < s->min_in || sp->n_in > s->max_in || sp->n_in > PRT_GRADCHECK_MAX_IN) {
        int hi = s->max_in < PRT_GRADCHECK_MAX_IN ? s->max_in : PRT_GRADCHECK_MAX_IN;
        if (s->min_in == hi)
            return prt_error(ctx, PRT_ERR_INVALID, "%s takes %d data input%s, given %d shape%s", s->name, s->min_in,
                             s->min_in == 1 ? "" : "s", sp->n_in, sp->n_in == 1 ? "" : "s");
        return prt_error(ctx, PRT_ERR_INVALID, "%s takes %d to %d data inputs, given %d shape%s", s->name, s->min_in,
                         hi, sp->n_in, sp->n_in == 1 ? "" : "s");
    }
    for (int k = 0; k < sp->n_in; k++) {
        const prt_shape *sh = &sp->in[k];
        if (sh->ndim < 1 || sh->ndim > PRT_MAX_DIMS)
            return prt_error(ctx, PRT_ERR_INVALID, "input %d: a shape needs 1 to %d dimensions, the batch first", k + 1,
                             PRT_MAX_DIMS);
        for (int i = 0; i < sh->ndim; i++)
            if (sh->d[i] < 1)
                return prt_error(ctx, PRT_ERR_INVALID, "input %d: dimension %d is %lld: sizes must be at least 1",
                                 k + 1, i + 1, (long long)sh->d[i]);
        if (sh->d[0] != sp->in[0].d[0])
            return prt_error(ctx, PRT_ERR_INVALID,
                             "input %d has batch %lld, input 1 has %lld: every data input's first dimension is the batch",
                             k + 1, (long long)sh->d[0], (long long)sp->in[0].d[0]);
        if (sp->in_dtype[k] != PRT_F32 && sp->in_dtype[k] != PRT_I32)
            return prt_error(ctx, PRT_ERR_INVALID, "input %d: op-check feeds f32 or i32 inputs", k + 1);
    }
    c->batch = sp->in[0].d[0];
    for (int i = 0; i < s->n_attrs; i++) {
        c->attrs[i] = s->attrs[i].def;
        c->attrs[i].type = s->attrs[i].type;
        c->attrs[i].set = false;
    }
    if (sp->n_attrs < 0 || sp->n_attrs > PRT_GRADCHECK_MAX_ATTRS)
        return prt_error(ctx, PRT_ERR_INVALID, "at most %d attributes", PRT_GRADCHECK_MAX_ATTRS);
    for (int k = 0; k < sp->n_attrs; k++) {
        int i = prt_op_attr_index(s, sp->attr_name[k]);
        if (i < 0) {
            const char *best = NULL;
            int bestd = 3;
            for (int j = 0; j < s->n_attrs; j++) {
                int d = prt_edit_distance(sp->attr_name[k], s->attrs[j].name);
                if (d < bestd) bestd = d, best = s->attrs[j].name;
            }
            if (best)
                return prt_error(ctx, PRT_ERR_INVALID, "%s has no attribute '%s' (did you mean '%s'?)", s->name,
                                 sp->attr_name[k], best);
            if (!s->n_attrs)
                return prt_error(ctx, PRT_ERR_INVALID, "%s has no attribute '%s' (it takes none)", s->name,
                                 sp->attr_name[k]);
            char list[256];
            size_t o = 0;
            list[0] = 0;
            for (int j = 0; j < s->n_attrs && o < sizeof list; j++)
                o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", j ? ", " : "", s->attrs[j].name);
            return prt_error(ctx, PRT_ERR_INVALID, "%s has no attribute '%s' (it takes: %s)", s->name, sp->attr_name[k],
                             list);
        }
        PRT_CHECK(parse_attr(ctx, s, &s->attrs[i], sp->attr_value[k], &c->attrs[i]));
    }
    for (int i = 0; i < s->n_attrs; i++)
        if (s->attrs[i].required && !c->attrs[i].set)
            return prt_error(ctx, PRT_ERR_INVALID, "%s requires attribute '%s' (--attr %s=VALUE)", s->name,
                             s->attrs[i].name, s->attrs[i].name);
    c->eps = sp->eps > 0 ? sp->eps : GC_EPS;
    c->rtol = sp->rtol > 0 ? sp->rtol : GC_RTOL;
    c->samples = sp->max_samples > 0 ? sp->max_samples : GC_SAMPLES;
    c->rng.s = (sp->seed ? sp->seed : 1) * 0x9e3779b97f4a7c15ull | 1;
    return PRT_OK;
}

/* ---- the graph --------------------------------------------------------------- */

typedef struct gc_built {
    prt_graph *g;
    int node;               /* the op's node */
    int n_out;
    int y[4];
    int dy[4];              /* value ids of the seeds, PRT_GRAD_ONE, or -1 */
    int dy_in[4];           /* graph input index of dy_j, -1 */
    void *dy_host[4];       /* the seeds' values */
    size_t dy_bytes[4];
    int n_inputs;
    int n_node_in;          /* data inputs then present params */
    int node_in[GC_MAX_VALS];
    int dx[GC_MAX_VALS];
    int outs[4 + GC_MAX_VALS], n_outs;
} gc_built;

static void unbuild(prt_context *ctx, gc_built *b) {
    for (int j = 0; j < 4; j++) prt_free(ctx, b->dy_host[j], b->dy_bytes[j]);
    prt_graph_destroy(b->g);
    memset(b, 0, sizeof *b);
}

static prt_status add_input(prt_graph *g, const char *name, const prt_shape *full, prt_dtype t, int *id) {
    prt_shape ps = {.ndim = full->ndim - 1};
    for (int i = 1; i < full->ndim; i++) ps.d[i - 1] = full->d[i];
    prt_loc loc = {NULL, 0, 0};
    return prt_graph_add_input(g, name, &ps, t, loc, id);
}

/* The forward graph, and with `grad` the seeds and the grad builder's nodes.
 * Errors before the grad builder are the spec's (shape inference); *builder
 * says whether a later error came from the grad builder. */
static prt_status build(gc_case *c, bool grad, gc_built *b, bool *builder) {
    prt_context *ctx = c->ctx;
    const prt_gradcheck_spec *sp = c->spec;
    memset(b, 0, sizeof *b);
    *builder = false;
    PRT_CHECK(prt_graph_new(ctx, "op_check", &b->g));
    prt_graph *g = b->g;
    int sc_id;
    const prt_op_schema *sc = prt_op_find(ctx->ops, "scale", &sc_id);
    if (!sc) return prt_error(ctx, PRT_ERR_INTERNAL, "op-check needs the built-in op 'scale'");
    prt_attr one[PRT_GRADCHECK_MAX_ATTRS];
    prt_attrs_default(sc, one);
    one[prt_op_attr_index(sc, "by")].f = 1.0;
    one[prt_op_attr_index(sc, "by")].set = true;
    int data[PRT_GRADCHECK_MAX_IN];
    prt_loc loc = {NULL, 0, 0};
    for (int k = 0; k < sp->n_in; k++) {
        char name[32];
        snprintf(name, sizeof name, "x%d", k);
        int x, nd;
        PRT_CHECK(add_input(g, name, &sp->in[k], sp->in_dtype[k], &x));
        b->n_inputs++;
        if (sp->in_dtype[k] != PRT_F32) {
            data[k] = x;
            continue;
        }
        snprintf(name, sizeof name, "pre%d", k);
        PRT_CHECK(prt_graph_add_node(g, sc_id, name, NULL, &x, 1, one, loc, &nd));
        data[k] = g->nodes[nd].out[0];
    }
    PRT_CHECK(prt_graph_add_node(g, c->op_id, "op", NULL, data, sp->n_in, c->attrs, loc, &b->node));
    b->n_out = g->nodes[b->node].n_out;
    if (b->n_out > 4) return prt_error(ctx, PRT_ERR_LIMIT, "%s has %d outputs, op-check handles 4", c->s->name, b->n_out);
    for (int j = 0; j < b->n_out; j++) b->y[j] = g->nodes[b->node].out[j];
    PRT_CHECK(prt_graph_set_outputs(g, b->y, b->n_out));
    PRT_CHECK(prt_graph_bind_params(g));
    PRT_CHECK(prt_graph_infer(g, c->batch));
    const prt_node *nd = &g->nodes[b->node];
    b->n_node_in = nd->n_in;
    if (b->n_node_in > GC_MAX_VALS) return prt_error(ctx, PRT_ERR_LIMIT, "op-check: too many inputs");
    memcpy(b->node_in, nd->in, (size_t)nd->n_in * sizeof(int));
    for (int j = 0; j < b->n_out; j++) b->outs[b->n_outs++] = b->y[j];
    for (int j = 0; j < b->n_out; j++) b->dy_in[j] = -1; /* no seed inputs until the gradient asks for them */
    if (!grad) return PRT_OK;
    prt_shape y0 = prt_graph_value_shape(g, b->y[0]);
    bool loss = !(y0.ndim >= 1 && y0.d[0] == c->batch);
    for (int j = 0; j < b->n_out; j++) {
        prt_shape ys = prt_graph_value_shape(g, b->y[j]);
        b->dy_in[j] = -1;
        b->dy[j] = -1;
        if (!loss && ys.ndim >= 1 && ys.d[0] == c->batch) {
            char name[32];
            snprintf(name, sizeof name, "dy%d", j);
            b->dy_in[j] = b->n_inputs;
            PRT_CHECK(add_input(g, name, &ys, PRT_F32, &b->dy[j]));
            b->n_inputs++;
            int64_t n = prt_shape_count(&ys);
            b->dy_bytes[j] = (size_t)(n ? n : 1) * sizeof(float);
            b->dy_host[j] = prt_malloc(ctx, b->dy_bytes[j]);
            if (!b->dy_host[j]) return prt_error(ctx, PRT_ERR_NOMEM, "op-check: out of memory");
            fill_f32(b->dy_host[j], n, &c->rng);
        } else if (j == 0) {
            b->dy[j] = PRT_GRAD_ONE;
        }
    }
    for (int i = 0; i < b->n_node_in; i++) b->dx[i] = -1;
    *builder = true;
    prt_grad_ctx gcx = {.g = g, .node = b->node, .dy = b->dy, .dx = b->dx};
    PRT_CHECK(c->s->grad(&gcx));
    for (int i = 0; i < b->n_node_in; i++) {
        bool dup = b->dx[i] < 0;
        for (int k = 0; k < b->n_outs; k++) dup |= b->outs[k] == b->dx[i];
        if (!dup) b->outs[b->n_outs++] = b->dx[i];
    }
    PRT_CHECK(prt_graph_set_outputs(g, b->outs, b->n_outs));
    return PRT_OK;
}

/* Copies the host values into the VM's inputs, replays step GC_STEP and runs. */
static prt_status run_vm(gc_case *c, const gc_built *b, prt_vm *vm) {
    for (int k = 0; k < c->spec->n_in; k++) memcpy(prt_tensor_data(prt_vm_input(vm, k)), c->x[k], c->x_bytes[k]);
    for (int j = 0; j < b->n_out; j++)
        if (b->dy_in[j] >= 0)
            memcpy(prt_tensor_data(prt_vm_input(vm, b->dy_in[j])), b->dy_host[j], b->dy_bytes[j]);
    prt_vm_set_step(vm, GC_STEP);
    return prt_vm_run(vm);
}

/* L = sum_j <dy_j, y_j> in double. */
static double loss_of(prt_vm *vm, const gc_built *b) {
    double L = 0;
    for (int j = 0; j < b->n_out; j++) {
        if (b->dy[j] == -1) continue;
        const prt_tensor *y = prt_vm_output(vm, j);
        const float *yv = PRT_F32P(y), *d = b->dy_host[j];
        int64_t n = prt_shape_count(&y->shape);
        for (int64_t i = 0; i < n; i++) L += d ? (double)d[i] * yv[i] : yv[i];
    }
    return L;
}

/* Host copies of every output of a run (caller frees each with prt_free(ctx, p, 0)). */
static prt_status copy_outputs(prt_context *ctx, prt_vm *vm, int n, float **out) {
    for (int k = 0; k < n; k++) {
        const prt_tensor *t = prt_vm_output(vm, k);
        int64_t m = prt_shape_count(&t->shape);
        out[k] = prt_malloc(ctx, (size_t)(m ? m : 1) * sizeof(float));
        if (!out[k]) return prt_error(ctx, PRT_ERR_NOMEM, "op-check: out of memory");
        if (t->dtype == PRT_F32) memcpy(out[k], PRT_F32P(t), (size_t)m * sizeof(float));
        else memset(out[k], 0, (size_t)m * sizeof(float));
    }
    return PRT_OK;
}

/* ---- (a) forward, (b) fast against reference ------------------------------------ */

static prt_status check_forward(gc_case *c, prt_gradcheck_report *rep) {
    prt_context *ctx = c->ctx;
    prt_gradcheck_item *fw = &rep->item[PRT_GRADCHECK_FORWARD], *fa = &rep->item[PRT_GRADCHECK_FAST];
    gc_built b;
    bool builder;
    prt_status st = build(c, false, &b, &builder);
    if (st != PRT_OK) {
        unbuild(ctx, &b);
        return st; /* shape inference rejected the spec */
    }
    rep->n_out = b.n_out;
    for (int j = 0; j < b.n_out; j++) rep->out[j] = prt_graph_value_shape(b.g, b.y[j]);
    prt_program *p = NULL;
    prt_vm *vm = NULL;
    float *ref[4] = {0};
    if (prt_vm_compile(b.g, c->batch, &p) != PRT_OK) {
        fail_ctx(ctx, fw, "compile");
        setf(fa, PRT_GC_SKIPPED, "skipped: the forward failed");
        goto done;
    }
    for (int pass = 0; pass < 2; pass++) {
        bool reference = pass == 0;
        prt_gradcheck_item *it = reference ? fw : fa;
        if (!reference && !c->s->fast.run) {
            setf(fa, PRT_GC_SKIPPED, "skipped: no fast kernel (the reference is what runs)");
            break;
        }
        /* a plugin op registers one CPU kernel as both: comparing it with itself proves nothing */
        if (!reference && c->s->fast.run == c->s->ref.run) {
            setf(fa, PRT_GC_SKIPPED, "skipped: one CPU kernel (the reference is the fast path)");
            break;
        }
        prt_vm_options o = {.reference = reference, .training = !c->spec->inference};
        if (prt_vm_create(ctx, p, prt_cpu_device(ctx), &o, &vm) != PRT_OK || run_vm(c, &b, vm) != PRT_OK) {
            fail_ctx(ctx, it, reference ? "reference kernel" : "fast kernel");
            if (reference) setf(fa, PRT_GC_SKIPPED, "skipped: the forward failed");
            goto done;
        }
        double worst = 0;
        for (int j = 0; j < b.n_out; j++) {
            const prt_tensor *y = prt_vm_output(vm, j);
            int64_t n = prt_shape_count(&y->shape);
            if (reference) {
                char s1[128], s2[128];
                if (!prt_shape_eq(&y->shape, &rep->out[j])) {
                    setf(fw, PRT_GC_FAILED, "output %d has shape %s, inference said %s", j,
                         prt_shape_str(&y->shape, s1, sizeof s1), prt_shape_str(&rep->out[j], s2, sizeof s2));
                    goto done;
                }
                if (y->dtype != PRT_F32) continue;
                const float *v = PRT_F32P(y);
                for (int64_t i = 0; i < n; i++)
                    if (!isfinite(v[i])) {
                        setf(fw, PRT_GC_FAILED, "output %d element %lld is %g", j, (long long)i, (double)v[i]);
                        setf(fa, PRT_GC_SKIPPED, "skipped: the forward failed");
                        goto done;
                    }
                fw->checked += n;
                continue;
            }
            if (y->dtype != PRT_F32) continue;
            const float *v = PRT_F32P(y), *r = ref[j];
            double ss = 0;
            for (int64_t i = 0; i < n; i++) ss += (double)r[i] * r[i];
            double rms = n ? sqrt(ss / (double)n) : 0;
            for (int64_t i = 0; i < n; i++) {
                double e = fabs((double)v[i] - r[i]) / (fabs(r[i]) + rms + 1e-30);
                if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
            }
            fa->checked += n;
        }
        if (reference) {
            setf(fw, PRT_GC_PASSED, "%d output%s finite, shapes as inferred", b.n_out, b.n_out == 1 ? "" : "s");
            if (copy_outputs(ctx, vm, b.n_out, ref) != PRT_OK) {
                fail_ctx(ctx, fa, "fast kernel");
                goto done;
            }
        } else {
            fa->worst = worst;
            fa->tol = GC_FAST_TOL;
            if (worst <= GC_FAST_TOL) setf(fa, PRT_GC_PASSED, "|fast - ref| / (|ref| + rms(ref))");
            else setf(fa, PRT_GC_FAILED, "fast kernel differs from the reference by %.3g of |ref| + rms", worst);
        }
        prt_vm_destroy(vm);
        vm = NULL;
    }
done:
    for (int j = 0; j < 4; j++) prt_free(ctx, ref[j], 0);
    prt_vm_destroy(vm);
    prt_program_destroy(ctx, p);
    unbuild(ctx, &b);
    return PRT_OK;
}

/* ---- (c) the gradient --------------------------------------------------------- */

/* One kernel set: the analytic gradient of every checked input against central
 * differences. Returns false (item failed) on a run error. */
static bool grad_pass(gc_case *c, gc_built *b, prt_program *p, bool reference, prt_gradcheck_item *it,
                      int64_t *kinks) {
    prt_context *ctx = c->ctx;
    prt_graph *g = b->g;
    const char *what = reference ? "reference kernels" : "fast kernels";
    prt_vm_options o = {.reference = reference, .training = !c->spec->inference};
    prt_vm *vm = NULL;
    float *an[GC_MAX_VALS] = {0};
    bool ok = false;
    if (prt_vm_create(ctx, p, prt_cpu_device(ctx), &o, &vm) != PRT_OK || run_vm(c, b, vm) != PRT_OK) {
        fail_ctx(ctx, it, what);
        goto done;
    }
    double L0 = loss_of(vm, b);
    /* every analytic gradient now, before finite differences rerun the program */
    for (int i = 0; i < b->n_node_in; i++) {
        const prt_value *v = &g->values[b->node_in[i]];
        if (v->kind != PRT_VAL_ACT && v->kind != PRT_VAL_PARAM) continue;
        if (b->dx[i] < 0) {
            setf(it, PRT_GC_FAILED, "the grad builder gave input %d ('%s') no gradient", i, v->name);
            goto done;
        }
        const prt_tensor *gt = prt_vm_find(vm, g->values[b->dx[i]].name);
        int64_t n = prt_shape_count(&gt->shape);
        an[i] = prt_malloc(ctx, (size_t)(n ? n : 1) * sizeof(float));
        if (!an[i]) {
            setf(it, PRT_GC_FAILED, "out of memory");
            goto done;
        }
        memcpy(an[i], PRT_F32P(gt), (size_t)n * sizeof(float));
    }
    for (int i = 0; i < b->n_node_in; i++) {
        const prt_value *v = &g->values[b->node_in[i]];
        if (!an[i]) continue;
        int64_t n = prt_shape_count(&prt_vm_find(vm, g->values[b->dx[i]].name)->shape);
        /* a data input's host values (through scale by 1), or the parameter itself */
        float *target = i < c->spec->n_in ? (float *)c->x[i] : PRT_F32P(prt_vm_find(vm, v->name));
        const char *vname = i < c->spec->n_in ? g->values[g->inputs[i]].name : v->name;
        int m = n <= c->samples ? (int)n : c->samples;
        double ss = 0;
        int64_t *idx = prt_malloc(ctx, (size_t)(m ? m : 1) * sizeof(int64_t));
        double *fd = prt_malloc(ctx, (size_t)(m ? m : 1) * sizeof(double));
        bool *skip = prt_malloc(ctx, (size_t)(m ? m : 1));
        if (!idx || !fd || !skip) {
            prt_free(ctx, idx, 0), prt_free(ctx, fd, 0), prt_free(ctx, skip, 0);
            setf(it, PRT_GC_FAILED, "out of memory");
            goto done;
        }
        for (int k = 0; k < m; k++) {
            idx[k] = n <= c->samples ? k : rint_(&c->rng, 0, n - 1);
            ss += (double)an[i][idx[k]] * an[i][idx[k]];
        }
        double rms = m ? sqrt(ss / m) : 0, floor_ = GC_ATOL_OVER_RTOL * (rms + 1e-3);
        prt_status st = PRT_OK;
        for (int k = 0; k < m && st == PRT_OK; k++) {
            float orig = target[idx[k]];
            target[idx[k]] = orig + (float)c->eps;
            double lp = 0, lm = 0;
            if ((st = run_vm(c, b, vm)) == PRT_OK) lp = loss_of(vm, b);
            target[idx[k]] = orig - (float)c->eps;
            if (st == PRT_OK && (st = run_vm(c, b, vm)) == PRT_OK) lm = loss_of(vm, b);
            target[idx[k]] = orig;
            /* the steps actually taken, float rounding included */
            double hp = (double)(orig + (float)c->eps) - orig, hm = orig - (double)(orig - (float)c->eps);
            fd[k] = (lp - lm) / (hp + hm);
            double fwd = (lp - L0) / hp, bwd = (L0 - lm) / hm;
            skip[k] = fabs(fwd - bwd) > 0.5 * (fabs(fwd) + fabs(bwd)) + floor_;
        }
        if (st != PRT_OK) {
            prt_free(ctx, idx, 0), prt_free(ctx, fd, 0), prt_free(ctx, skip, 0);
            fail_ctx(ctx, it, what);
            goto done;
        }
        for (int k = 0; k < m; k++) {
            if (skip[k]) {
                (*kinks)++;
                continue;
            }
            double a = an[i][idx[k]], e = fabs(fd[k] - a) / (fabs(fd[k]) + fabs(a) + floor_);
            if (isnan(e)) e = INFINITY;
            /* the note names the worst element */
            if (e > c->rtol && e > it->worst)
                setf(it, PRT_GC_FAILED, "%s: dL/d%s[%lld]: grad builder %.7g, finite difference %.7g", what, vname,
                     (long long)idx[k], a, fd[k]);
            if (e > it->worst) it->worst = e;
            it->checked++;
        }
        prt_free(ctx, idx, 0), prt_free(ctx, fd, 0), prt_free(ctx, skip, 0);
    }
    ok = true;
done:
    for (int i = 0; i < GC_MAX_VALS; i++) prt_free(ctx, an[i], 0);
    prt_vm_destroy(vm);
    return ok;
}

static prt_status check_gradient(gc_case *c, prt_gradcheck_report *rep) {
    prt_context *ctx = c->ctx;
    prt_gradcheck_item *it = &rep->item[PRT_GRADCHECK_GRADIENT];
    it->tol = c->rtol;
    if (!c->s->grad) {
        setf(it, PRT_GC_SKIPPED, "skipped: %s is not differentiable (%s)", c->s->name,
             c->s->grad_note ? c->s->grad_note : "no gradient builder");
        return PRT_OK;
    }
    if (rep->item[PRT_GRADCHECK_FORWARD].result == PRT_GC_FAILED) {
        setf(it, PRT_GC_SKIPPED, "skipped: the forward failed");
        return PRT_OK;
    }
    gc_built b;
    bool builder;
    prt_program *p = NULL;
    if (build(c, true, &b, &builder) != PRT_OK) {
        fail_ctx(ctx, it, builder ? "grad builder" : "graph");
        unbuild(ctx, &b);
        return PRT_OK;
    }
    int n_checked_in = 0;
    for (int i = 0; i < b.n_node_in; i++) {
        prt_value_kind k = b.g->values[b.node_in[i]].kind;
        n_checked_in += k == PRT_VAL_ACT || k == PRT_VAL_PARAM;
    }
    if (!n_checked_in) {
        setf(it, PRT_GC_SKIPPED, "skipped: no f32 input or trainable parameter to differentiate");
    } else if (prt_vm_compile(b.g, c->batch, &p) != PRT_OK) {
        fail_ctx(ctx, it, "compile");
    } else {
        int64_t kinks = 0;
        int passes = 0;
        it->result = PRT_GC_PASSED;
        for (int ref = 1; ref >= 0; ref--) {
            if (!ref && (!c->s->fast.run || c->s->fast.run == c->s->ref.run)) break;
            passes++;
            if (!grad_pass(c, &b, p, ref, it, &kinks)) break;
        }
        it->skipped = kinks;
        if (it->result != PRT_GC_FAILED && kinks * 4 > it->checked + kinks)
            setf(it, PRT_GC_FAILED, "%lld of %lld elements sit at a kink (one-sided differences disagree): "
                 "too many to check", (long long)kinks, (long long)(it->checked + kinks));
        else if (it->result == PRT_GC_PASSED)
            setf(it, PRT_GC_PASSED, "%s kernels, central differences h = %g; %lld elements at kinks skipped",
                 passes == 2 ? "reference and fast" : "reference", c->eps, (long long)kinks);
    }
    prt_program_destroy(ctx, p);
    unbuild(ctx, &b);
    return PRT_OK;
}

/* ---- (d) in place --------------------------------------------------------------- */

/* Runs kernel k once on fresh copies of vals (data inputs, then present params)
 * into out (host, out_n floats), with output 0 over input `over` when >= 0. */
static prt_status run_direct(gc_case *c, const prt_kernel *k, const prt_infer_ctx *ic, int n, const prt_shape *shapes,
                             const prt_dtype *dt, void *const *vals, int over, float *out) {
    prt_context *ctx = c->ctx;
    prt_tensor t[GC_MAX_VALS], nodata[GC_MAX_VALS], y = {0}, y_nodata;
    const prt_tensor *in[GC_MAX_VALS], *in_nodata[GC_MAX_VALS];
    int made = 0;
    bool own_y = false;
    void *state = NULL, *ws = NULL, *ws_block = NULL;
    size_t ws_size = c->s->workspace ? c->s->workspace(ic) : 0;
    prt_status st = PRT_OK;
    for (; made < n; made++) {
        PRT_CHECK_GOTO(prt_tensor_alloc(ctx, prt_cpu_device(ctx), dt[made], &shapes[made], &t[made]), st, fail);
        memcpy(prt_tensor_data(&t[made]), vals[made], (size_t)prt_shape_count(&shapes[made]) * prt_dtype_size(dt[made]));
        prt_tensor_wrap(&nodata[made], NULL, dt[made], &shapes[made]);
        in[made] = &t[made];
        in_nodata[made] = &nodata[made];
    }
    if (over >= 0) prt_tensor_wrap(&y, prt_tensor_data(&t[over]), PRT_F32, &ic->out[0]);
    else {
        PRT_CHECK_GOTO(prt_tensor_alloc(ctx, prt_cpu_device(ctx), PRT_F32, &ic->out[0], &y), st, fail);
        own_y = true;
    }
    prt_tensor_wrap(&y_nodata, NULL, PRT_F32, &ic->out[0]);
    /* kernels want a 64-byte aligned workspace */
    if (ws_size) {
        ws_block = prt_malloc(ctx, ws_size + 64);
        if (!ws_block) {
            st = prt_error(ctx, PRT_ERR_NOMEM, "op-check: out of memory");
            goto fail;
        }
        ws = (void *)(((uintptr_t)ws_block + 63) & ~(uintptr_t)63);
    }
    prt_tensor *outp[1] = {&y}, *outp_nodata[1] = {&y_nodata};
    prt_kernel_call call = {.ctx = ctx, .attrs = ic->attrs, .n_in = n, .in = in_nodata, .n_out = 1,
                            .out = outp_nodata, .workspace = ws, .workspace_size = ws_size,
                            .training = !c->spec->inference, .rng_key = 0x5eed, .step = GC_STEP,
                            .dev = prt_cpu_device(ctx), .schema = c->s, .node_name = "op-check"};
    if (k->prepare) PRT_CHECK_GOTO(k->prepare(&call, &state), st, fail);
    call.in = in;
    call.out = outp;
    call.state = state;
    st = k->run(&call);
    if (st == PRT_OK) memcpy(out, prt_tensor_data(&y), (size_t)prt_shape_count(&ic->out[0]) * sizeof(float));
fail:
    if (state && k->release) k->release(state);
    prt_free(ctx, ws_block, ws_size + 64);
    if (own_y) prt_tensor_release(ctx, &y);
    for (int j = 0; j < made; j++) prt_tensor_release(ctx, &t[j]);
    return st;
}

static prt_status check_inplace(gc_case *c, prt_gradcheck_report *rep) {
    prt_context *ctx = c->ctx;
    const prt_op_schema *s = c->s;
    prt_gradcheck_item *it = &rep->item[PRT_GRADCHECK_INPLACE];
    if (s->inplace_in < 0) {
        setf(it, PRT_GC_SKIPPED, "skipped: %s declares no in-place pair", s->name);
        return PRT_OK;
    }
    if (rep->item[PRT_GRADCHECK_FORWARD].result == PRT_GC_FAILED) {
        setf(it, PRT_GC_SKIPPED, "skipped: the forward failed");
        return PRT_OK;
    }
    gc_built b;
    bool builder;
    prt_status st = build(c, false, &b, &builder);
    if (st != PRT_OK) {
        unbuild(ctx, &b);
        return st;
    }
    prt_infer_scratch sc;
    prt_infer_ctx ic;
    prt_graph_infer_ctx(b.g, b.node, &sc, &ic);
    int over = s->inplace_in, n = b.n_node_in;
    prt_shape shapes[GC_MAX_VALS];
    prt_dtype dt[GC_MAX_VALS];
    void *vals[GC_MAX_VALS] = {0};
    float *sep = NULL, *inpl = NULL;
    int64_t on = prt_shape_count(&ic.out[0]);
    for (int i = 0; i < n; i++) {
        shapes[i] = prt_graph_value_shape(b.g, b.node_in[i]);
        dt[i] = b.g->values[b.node_in[i]].dtype;
    }
    if (over >= ic.n_in || dt[over] != PRT_F32 || prt_shape_count(&shapes[over]) != on) {
        setf(it, PRT_GC_SKIPPED, "skipped: output 0 and input %d differ in size for these shapes", over);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        int64_t m = prt_shape_count(&shapes[i]);
        vals[i] = prt_malloc(ctx, (size_t)(m ? m : 1) * prt_dtype_size(dt[i]));
        if (!vals[i]) goto oom;
        if (i < c->spec->n_in) memcpy(vals[i], c->x[i], c->x_bytes[i]);
        else fill_f32(vals[i], m, &c->rng);
    }
    sep = prt_malloc(ctx, (size_t)(on ? on : 1) * sizeof(float));
    inpl = prt_malloc(ctx, (size_t)(on ? on : 1) * sizeof(float));
    if (!sep || !inpl) goto oom;
    it->tol = GC_INPLACE_TOL;
    it->result = PRT_GC_PASSED;
    for (int fast = 0; fast < 2; fast++) {
        if (fast && !s->fast.run) break;
        const prt_kernel *k = prt_op_kernel(s, !fast);
        const char *what = fast ? "fast kernel" : "reference kernel";
        if (run_direct(c, k, &ic, n, shapes, dt, vals, -1, sep) != PRT_OK ||
            run_direct(c, k, &ic, n, shapes, dt, vals, over, inpl) != PRT_OK) {
            fail_ctx(ctx, it, what);
            goto done;
        }
        double ss = 0;
        for (int64_t e = 0; e < on; e++) ss += (double)sep[e] * sep[e];
        double rms = on ? sqrt(ss / (double)on) : 0;
        for (int64_t e = 0; e < on; e++) {
            double err = fabs((double)inpl[e] - sep[e]) / (fabs(sep[e]) + rms + 1e-30);
            if (isnan(err)) err = INFINITY;
            if (err > it->worst) it->worst = err;
            if (err > GC_INPLACE_TOL && it->result != PRT_GC_FAILED)
                setf(it, PRT_GC_FAILED, "%s: in place, element %lld is %.7g, into its own buffer %.7g", what,
                     (long long)e, (double)inpl[e], (double)sep[e]);
        }
        it->checked += on;
    }
    if (it->result == PRT_GC_PASSED)
        setf(it, PRT_GC_PASSED, "output 0 over input %d against its own buffer", over);
    goto done;
oom:
    setf(it, PRT_GC_FAILED, "out of memory");
done:
    for (int i = 0; i < n; i++) prt_free(ctx, vals[i], 0);
    prt_free(ctx, sep, 0);
    prt_free(ctx, inpl, 0);
    unbuild(ctx, &b);
    return PRT_OK;
}

/* ---- (e) CUDA against CPU ---------------------------------------------------------- */

static prt_status check_cuda(gc_case *c, prt_gradcheck_report *rep) {
    prt_context *ctx = c->ctx;
    prt_gradcheck_item *it = &rep->item[PRT_GRADCHECK_CUDA];
    if (c->spec->no_cuda) {
        setf(it, PRT_GC_SKIPPED, "skipped: not asked (--device cpu)");
        return PRT_OK;
    }
    if (prt_cuda_device_count() == 0) {
        setf(it, PRT_GC_SKIPPED, "skipped: no CUDA device");
        return PRT_OK;
    }
    if (!c->s->cuda.run) {
        setf(it, PRT_GC_SKIPPED, "skipped: %s has no CUDA kernel", c->s->name);
        return PRT_OK;
    }
    if (rep->item[PRT_GRADCHECK_FORWARD].result == PRT_GC_FAILED) {
        setf(it, PRT_GC_SKIPPED, "skipped: the forward failed");
        return PRT_OK;
    }
    /* the gradient graph where it builds (the backward's CUDA kernels too), else the forward */
    bool with_grad = c->s->grad && rep->item[PRT_GRADCHECK_GRADIENT].result != PRT_GC_FAILED, builder;
    gc_built b;
    prt_program *p = NULL;
    prt_vm *cpu = NULL, *gpu = NULL;
    prt_device *dev = NULL;
    if (build(c, with_grad, &b, &builder) != PRT_OK || prt_vm_compile(b.g, c->batch, &p) != PRT_OK) {
        fail_ctx(ctx, it, "graph");
        goto done;
    }
    prt_vm_options o = {.training = !c->spec->inference};
    if (prt_vm_create(ctx, p, prt_cpu_device(ctx), &o, &cpu) != PRT_OK || run_vm(c, &b, cpu) != PRT_OK) {
        fail_ctx(ctx, it, "CPU run");
        goto done;
    }
    if (prt_cuda_device_create(ctx, 0, &dev) != PRT_OK || prt_vm_create(ctx, p, dev, &o, &gpu) != PRT_OK ||
        run_vm(c, &b, gpu) != PRT_OK) {
        fail_ctx(ctx, it, "CUDA run");
        goto done;
    }
    it->tol = GC_CUDA_RTOL;
    it->result = PRT_GC_PASSED;
    for (int k = 0; k < b.n_outs; k++) {
        const prt_tensor *a = prt_vm_output(cpu, k), *g = prt_vm_output(gpu, k);
        if (a->dtype != PRT_F32) continue;
        int64_t n = prt_shape_count(&a->shape);
        const float *av = PRT_F32P(a), *gv = PRT_F32P(g);
        double ss = 0;
        for (int64_t e = 0; e < n; e++) ss += (double)av[e] * av[e];
        double rms = n ? sqrt(ss / (double)n) : 0;
        for (int64_t e = 0; e < n; e++) {
            /* as a fraction of |cpu| + (atol/rtol) rms, against rtol */
            double err = fabs((double)gv[e] - av[e]) / (fabs(av[e]) + GC_CUDA_ATOL / GC_CUDA_RTOL * rms + 1e-30);
            if (isnan(err)) err = INFINITY;
            if (err > it->worst) it->worst = err;
            if (err > GC_CUDA_RTOL && it->result != PRT_GC_FAILED)
                setf(it, PRT_GC_FAILED, "'%s' element %lld: CUDA %.7g, CPU %.7g", b.g->values[b.outs[k]].name,
                     (long long)e, (double)gv[e], (double)av[e]);
        }
        it->checked += n;
    }
    if (it->result == PRT_GC_PASSED)
        setf(it, PRT_GC_PASSED, "%s on CUDA device 0 against the CPU", with_grad ? "outputs and gradients" : "outputs");
done:
    prt_vm_destroy(gpu);
    prt_vm_destroy(cpu);
    if (dev) prt_cuda_device_destroy(dev);
    prt_program_destroy(ctx, p);
    unbuild(ctx, &b);
    return PRT_OK;
}

/* ---- the entry point ---------------------------------------------------------------- */

prt_status prt_op_gradcheck(prt_context *ctx, const char *op, const prt_gradcheck_spec *spec,
                            prt_gradcheck_report *rep) {
    memset(rep, 0, sizeof *rep);
    snprintf(rep->op, sizeof rep->op, "%s", op);
    for (int k = 0; k < PRT_GRADCHECK_N; k++) setf(&rep->item[k], PRT_GC_SKIPPED, "skipped");
    gc_case c;
    memset(&c, 0, sizeof c);
    c.ctx = ctx;
    c.spec = spec;
    c.s = prt_op_find(ctx->ops, op, &c.op_id);
    if (!c.s) {
        const char *near[1];
        if (prt_op_suggest(ctx->ops, op, near, 1) == 1)
            return prt_error(ctx, PRT_ERR_NOT_FOUND, "unknown op '%s' (did you mean '%s'?)", op, near[0]);
        return prt_error(ctx, PRT_ERR_NOT_FOUND, "unknown op '%s'", op);
    }
    PRT_CHECK(set_up(&c));
    prt_status st = PRT_OK;
    for (int k = 0; k < spec->n_in; k++) {
        int64_t n = prt_shape_count(&spec->in[k]);
        c.x_bytes[k] = (size_t)n * 4; /* f32 and i32 */
        c.x[k] = prt_malloc(ctx, c.x_bytes[k] ? c.x_bytes[k] : 1);
        if (!c.x[k]) {
            st = prt_error(ctx, PRT_ERR_NOMEM, "op-check: out of memory");
            goto done;
        }
        if (spec->in_dtype[k] == PRT_I32) {
            int64_t classes = spec->in[0].ndim > 1 ? spec->in[0].d[1] : 1;
            for (int64_t e = 0; e < n; e++) ((int32_t *)c.x[k])[e] = (int32_t)rint_(&c.rng, 0, classes - 1);
        } else {
            fill_f32(c.x[k], n, &c.rng);
        }
    }
    PRT_CHECK_GOTO(check_forward(&c, rep), st, done);
    PRT_CHECK_GOTO(check_gradient(&c, rep), st, done);
    PRT_CHECK_GOTO(check_inplace(&c, rep), st, done);
    PRT_CHECK_GOTO(check_cuda(&c, rep), st, done);
done:
    for (int k = 0; k < spec->n_in; k++) prt_free(ctx, c.x[k], c.x_bytes[k] ? c.x_bytes[k] : 1);
    return st;
}

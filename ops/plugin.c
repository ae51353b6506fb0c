/* Operator plugins: the loader (every check before the registry changes) and
 * the adapters that turn a plugin's ops into prt_op_schemas.
 *
 * A plugin op is served by one set of adapter functions shared by all plugin
 * ops; they find their op through the schema (prt_infer_ctx.schema,
 * prt_kernel_call.schema, the grad node's op), whose plugin_op points to the
 * plugin_op record below. The host table handed to a plugin is a per-plugin
 * copy (so init can be given init_ctx); the per-call host_ctx is a host_call on
 * the adapter's stack that carries the context, the op and the layer. */
#include "ops/plugin_impl.h"

#include "ops/ops_util.h"
#include "parrots/plugin.h"
#include "runtime/graph_impl.h"

#include <dirent.h>
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The ABI's fixed values are Parrots' own: conversions are casts. */
_Static_assert(PRT_PLUGIN_F32 == (int)PRT_F32 && PRT_PLUGIN_F64 == (int)PRT_F64 && PRT_PLUGIN_F16 == (int)PRT_F16 &&
                   PRT_PLUGIN_BF16 == (int)PRT_BF16 && PRT_PLUGIN_I32 == (int)PRT_I32 &&
                   PRT_PLUGIN_I64 == (int)PRT_I64 && PRT_PLUGIN_U8 == (int)PRT_U8 && PRT_DTYPE_COUNT == 7,
               "plugin dtypes are Parrots' dtypes");
_Static_assert(PRT_PLUGIN_ATTR_INT == (int)PRT_ATTR_INT && PRT_PLUGIN_ATTR_FLOAT == (int)PRT_ATTR_FLOAT &&
                   PRT_PLUGIN_ATTR_BOOL == (int)PRT_ATTR_BOOL && PRT_PLUGIN_ATTR_INTS == (int)PRT_ATTR_INTS &&
                   PRT_PLUGIN_ATTR_STRING == (int)PRT_ATTR_STRING,
               "plugin attribute types are Parrots' types");
_Static_assert(PRT_PLUGIN_MAX_DIMS == PRT_MAX_DIMS && PRT_PLUGIN_MAX_INTS == PRT_ATTR_MAX_INTS, "same limits");

#define STR_(x) #x
#define STR(x) STR_(x)
#define MAX_ATTRS 32    /* attributes of one plugin op */
#define MAX_NAME 128    /* bytes of an op or attribute name */
#define MAX_OPS 4096    /* ops of one plugin */
#define MAX_OUT 4

typedef struct prt_plugin prt_plugin;

/* One registered op: the schema the registry holds and the plugin's op. */
typedef struct plugin_op {
    prt_op_schema schema;
    prt_plugin_op op;      /* the plugin's descriptor (its v1 part, copied) */
    prt_plugin *pl;
} plugin_op;

/* Attribute tables, converted once per distinct prt_plugin_attr_def array so
 * that ops sharing one array share one prt_attr_def table (prt_grad_emit's
 * NULL-attrs check compares the tables). */
typedef struct attr_table {
    const prt_plugin_attr_def *src;
    int n;
    prt_attr_def *defs;
} attr_table;

struct prt_plugin {
    prt_context *ctx;
    void *handle;
    char *path;            /* as given */
    char *source;          /* "plugin <path> (<name> <version>)" */
    const prt_plugin_desc *desc;
    prt_plugin_host host;  /* this plugin's host table */
    void *state;           /* from init */
    bool inited;
    plugin_op *ops;
    int n_ops;
    attr_table *tables;
    int n_tables;
    prt_plugin *next;
};

/* What a host_ctx points to during a plugin call. */
typedef struct host_call {
    prt_context *ctx;
    const plugin_op *po;      /* NULL during init */
    const char *node;
    const prt_infer_ctx *ic;  /* shape functions: messages carry the layer's place */
    prt_grad_ctx *gc;         /* gradient builders: grad_emit's graph */
    prt_status kind;          /* the status of a reported failure */
    prt_status st;            /* PRT_OK until the plugin reports an error */
} host_call;

/* ---- the host table --------------------------------------------------------- */

static int host_error(void *host_ctx, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt ? fmt : "(no message)", ap);
    va_end(ap);
    host_call *hc = host_ctx;
    if (!hc) {
        /* no context to keep it in (init called error(NULL, ...)) */
        fprintf(stderr, "parrots: plugin: %s\n", msg);
        return -1;
    }
    if (!hc->po)
        hc->st = prt_error(hc->ctx, hc->kind, "%s", msg);
    else if (hc->ic)
        hc->st = prt_infer_error(hc->ic, "%s", msg);
    else
        hc->st = prt_error(hc->ctx, hc->kind, "layer '%s' (%s): %s", hc->node, hc->po->schema.name, msg);
    return -1;
}

/* The ABI's log and alloc take no context: they go to stderr and the C
 * allocator (docs/plugin-abi.md). */
static void host_log(int32_t level, const char *fmt, ...) {
    if (level < PRT_PLUGIN_LOG_INFO || !fmt) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "parrots: plugin: %s", level >= PRT_PLUGIN_LOG_WARN ? "warning: " : "");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void *host_alloc(size_t size) { return malloc(size ? size : 1); }

static void host_free(void *p, size_t size) {
    (void)size;
    free(p);
}

static int64_t host_shape_numel(const prt_plugin_shape *s) {
    if (!s || s->ndim < 0 || s->ndim > PRT_PLUGIN_MAX_DIMS) return -1;
    int64_t n = 1;
    for (int32_t i = 0; i < s->ndim; i++)
        if (s->d[i] < 0 || !prt_mul_i64(n, s->d[i], &n)) return -1;
    return n;
}

static int64_t host_numel(const prt_plugin_tensor *t) { return t ? host_shape_numel(&t->shape) : -1; }

static size_t host_dtype_size(int32_t dtype) {
    return dtype >= 0 && dtype < PRT_DTYPE_COUNT ? prt_dtype_size((prt_dtype)dtype) : 0;
}

static int host_grad_emit(void *host_ctx, const char *op, const int32_t *in, int32_t n_in,
                          const prt_plugin_attr_value *attrs, int32_t *outs) {
    host_call *hc = host_ctx;
    if (!hc || !hc->gc) return host_error(hc, "grad_emit is for gradient builders (pass the call's host_ctx)");
    prt_graph *g = hc->gc->g;
    int id;
    const prt_op_schema *s = op ? prt_op_find(g->ctx->ops, op, &id) : NULL;
    if (!s) return host_error(hc, "grad_emit: op '%s' is not registered", op ? op : "(null)");
    if (n_in < s->min_in || n_in > s->max_in || (n_in > 0 && !in))
        return host_error(hc, "grad_emit: op '%s' takes %d to %d inputs, not %d", op, s->min_in, s->max_in,
                          (int)n_in);
    int ids[PRT_VARIADIC];
    for (int32_t i = 0; i < n_in; i++) {
        if (in[i] < 0 || in[i] >= g->n_values)
            return host_error(hc, "grad_emit: input %d of '%s' is %d, which is no value handle", (int)i, op,
                              (int)in[i]);
        ids[i] = in[i];
    }
    prt_attr conv[MAX_ATTRS + 1];
    const prt_attr *ap = conv;
    if (s->n_attrs > MAX_ATTRS) return host_error(hc, "grad_emit: op '%s' has too many attributes", op);
    if (s->n_attrs > 0 && !attrs) {
        ap = NULL; /* copy the forward node's: prt_grad_emit checks the tables are shared */
    } else {
        for (int i = 0; i < s->n_attrs; i++) {
            const prt_attr_def *d = &s->attrs[i];
            if (attrs[i].type != (int32_t)d->type)
                return host_error(hc, "grad_emit: attribute %d ('%s') of '%s' has type %d, the op's is %d", i,
                                  d->name, op, (int)attrs[i].type, (int)d->type);
            if (d->type == PRT_ATTR_INTS && (attrs[i].n < 1 || attrs[i].n > PRT_ATTR_MAX_INTS))
                return host_error(hc, "grad_emit: attribute '%s' of '%s' has %d integers (1 to %d)", d->name, op,
                                  (int)attrs[i].n, PRT_ATTR_MAX_INTS);
            memset(&conv[i], 0, sizeof conv[i]);
            conv[i].type = d->type;
            conv[i].set = true;
            conv[i].n = d->type == PRT_ATTR_INTS ? attrs[i].n : 1;
            memcpy(conv[i].i, attrs[i].i, sizeof conv[i].i);
            conv[i].f = attrs[i].f;
            if (d->type == PRT_ATTR_STRING && !(conv[i].s = prt_graph_intern(g, attrs[i].s ? attrs[i].s : "")))
                return host_error(hc, "grad_emit: out of memory");
        }
    }
    int o[MAX_OUT];
    prt_status st = prt_grad_emit(hc->gc, op, ids, n_in, ap, o);
    if (st != PRT_OK) {
        hc->st = prt_error_prefix(g->ctx, st, "layer '%s' (%s): grad_emit", hc->node, hc->po->schema.name);
        return -1;
    }
    for (int k = 0; k < s->n_out; k++) outs[k] = o[k];
    return 0;
}

static const prt_plugin_host host_template = {
    .abi_version = PRT_PLUGIN_ABI_VERSION,
    .struct_size = (uint32_t)sizeof(prt_plugin_host),
    .parrots_version = STR(PRT_VERSION_MAJOR) "." STR(PRT_VERSION_MINOR) "." STR(PRT_VERSION_PATCH),
    .error = host_error,
    .log = host_log,
    .alloc = host_alloc,
    .free = host_free,
    .numel = host_numel,
    .shape_numel = host_shape_numel,
    .dtype_size = host_dtype_size,
    .grad_emit = host_grad_emit,
};

/* ---- the adapters --------------------------------------------------------- */

static void attrs_to_plugin(const prt_attr *a, int n, prt_plugin_attr_value *out) {
    for (int i = 0; i < n; i++) {
        memset(&out[i], 0, sizeof out[i]);
        out[i].type = (int32_t)a[i].type;
        out[i].n = a[i].n;
        memcpy(out[i].i, a[i].i, sizeof out[i].i);
        out[i].f = a[i].f;
        out[i].s = a[i].s;
    }
}

static void shape_to_plugin(const prt_shape *s, prt_plugin_shape *out) {
    memset(out, 0, sizeof *out);
    out->ndim = s->ndim;
    for (int i = 0; i < s->ndim && i < PRT_MAX_DIMS; i++) out->d[i] = s->d[i];
}

static const plugin_op *infer_op(const prt_infer_ctx *ic) {
    const prt_op_schema *s = ic->schema;
    if (!s && ic->op_name) s = prt_op_find(ic->ctx->ops, ic->op_name, NULL);
    return s ? s->plugin_op : NULL;
}

/* A prt_plugin_infer over ic, in caller-provided arrays. */
typedef struct infer_buf {
    prt_plugin_attr_value attrs[MAX_ATTRS + 1];
    prt_plugin_shape in[PRT_VARIADIC];
    int32_t in_dtype[PRT_VARIADIC];
    prt_plugin_shape out[MAX_OUT];
    int32_t out_dtype[MAX_OUT];
    prt_plugin_infer pi;
} infer_buf;

static void fill_infer(const prt_infer_ctx *ic, const plugin_op *po, host_call *hc, bool with_out, infer_buf *b) {
    attrs_to_plugin(ic->attrs, po->schema.n_attrs, b->attrs);
    int n_in = ic->n_in < PRT_VARIADIC ? ic->n_in : PRT_VARIADIC;
    for (int i = 0; i < n_in; i++) {
        shape_to_plugin(&ic->in[i], &b->in[i]);
        /* prt_infer_ctx carries input 0's dtype: networks have one activation dtype */
        b->in_dtype[i] = (int32_t)ic->in_dtype;
    }
    for (int k = 0; k < MAX_OUT; k++) {
        memset(&b->out[k], 0, sizeof b->out[k]);
        b->out[k].ndim = -1;
        if (with_out && k < ic->n_out) shape_to_plugin(&ic->out[k], &b->out[k]);
        b->out_dtype[k] = with_out ? (int32_t)prt_infer_out_dtype(ic, k) : (int32_t)ic->in_dtype;
    }
    b->pi = (prt_plugin_infer){.struct_size = sizeof b->pi, .host_ctx = hc, .node_name = ic->node_name,
                               .attrs = b->attrs, .n_in = n_in, .in = b->in, .in_dtype = b->in_dtype,
                               .n_out = po->schema.n_out, .out = b->out, .out_dtype = b->out_dtype};
}

static prt_status plugin_infer(prt_infer_ctx *ic) {
    const plugin_op *po = infer_op(ic);
    if (!po) return prt_error(ic->ctx, PRT_ERR_INTERNAL, "plugin shape function: no plugin op behind '%s'", ic->op_name);
    host_call hc = {.ctx = ic->ctx, .po = po, .node = ic->node_name, .ic = ic, .kind = PRT_ERR_SHAPE};
    infer_buf b;
    fill_infer(ic, po, &hc, false, &b);
    int rc = po->op.infer(&po->pl->host, &b.pi);
    if (hc.st != PRT_OK) return hc.st;
    if (rc != 0) return prt_infer_error(ic, "the plugin's infer failed (returned %d) without saying why", rc);
    for (int k = 0; k < po->schema.n_out; k++) {
        const prt_plugin_shape *o = &b.out[k];
        if (o->ndim < 0 || o->ndim > PRT_MAX_DIMS)
            return prt_infer_error(ic, "the plugin's infer gave output %d %d dimensions (expected 0 to %d)", k,
                                   (int)o->ndim, PRT_MAX_DIMS);
        for (int i = 0; i < o->ndim; i++)
            if (o->d[i] < 0)
                return prt_infer_error(ic, "the plugin's infer gave output %d a negative dimension %d (%lld)", k, i,
                                       (long long)o->d[i]);
        if (b.out_dtype[k] < 0 || b.out_dtype[k] >= PRT_DTYPE_COUNT)
            return prt_infer_error(ic, "the plugin's infer gave output %d dtype %d (expected 0 to %d)", k,
                                   (int)b.out_dtype[k], PRT_DTYPE_COUNT - 1);
        ic->out[k].ndim = o->ndim;
        for (int i = 0; i < o->ndim; i++) ic->out[k].d[i] = o->d[i];
        if (k == 0) {
            ic->out_dtype = (prt_dtype)b.out_dtype[0];
        } else if ((prt_dtype)b.out_dtype[k] != ic->out_dtype) {
            ic->out_dtype_mask |= 1u << k;
            ic->out_dtypes[k] = (prt_dtype)b.out_dtype[k];
        }
    }
    return PRT_OK;
}

static size_t plugin_workspace(const prt_infer_ctx *ic) {
    const plugin_op *po = infer_op(ic);
    if (!po || !po->op.workspace) return 0;
    host_call hc = {.ctx = ic->ctx, .po = po, .node = ic->node_name, .ic = ic, .kind = PRT_ERR_SHAPE};
    infer_buf b;
    fill_infer(ic, po, &hc, true, &b);
    return po->op.workspace(&po->pl->host, &b.pi);
}

static int64_t plugin_flops(const prt_infer_ctx *ic) {
    const plugin_op *po = infer_op(ic);
    if (!po || !po->op.flops) return 0;
    host_call hc = {.ctx = ic->ctx, .po = po, .node = ic->node_name, .ic = ic, .kind = PRT_ERR_SHAPE};
    infer_buf b;
    fill_infer(ic, po, &hc, true, &b);
    int64_t f = po->op.flops(&po->pl->host, &b.pi);
    return f > 0 ? f : 0;
}

static void tensor_to_plugin(const prt_tensor *t, prt_plugin_tensor *out) {
    out->data = t->data;
    out->dtype = (int32_t)t->dtype;
    shape_to_plugin(&t->shape, &out->shape);
}

static prt_status run_kernel(const prt_kernel_call *c, bool cuda) {
    const plugin_op *po = c->schema ? c->schema->plugin_op : NULL;
    if (!po || c->n_in > PRT_VARIADIC || c->n_out > MAX_OUT)
        return prt_error(c->ctx, PRT_ERR_INTERNAL, "plugin kernel: called without its schema (prt_kernel_call.schema)");
    const char *node = c->node_name ? c->node_name : "?";
    host_call hc = {.ctx = c->ctx, .po = po, .node = node, .kind = PRT_ERR_BACKEND};
    prt_plugin_attr_value attrs[MAX_ATTRS + 1];
    attrs_to_plugin(c->attrs, po->schema.n_attrs, attrs);
    prt_plugin_tensor in[PRT_VARIADIC], out[MAX_OUT];
    for (int i = 0; i < c->n_in; i++) tensor_to_plugin(c->in[i], &in[i]);
    for (int k = 0; k < c->n_out; k++) tensor_to_plugin(c->out[k], &out[k]);
    prt_plugin_call pc = {.struct_size = sizeof pc, .host_ctx = &hc, .node_name = node, .attrs = attrs,
                          .n_in = c->n_in, .in = in, .n_out = c->n_out, .out = out,
                          .workspace = c->workspace_size ? c->workspace : NULL, .workspace_size = c->workspace_size,
                          .device = cuda ? PRT_PLUGIN_CUDA : PRT_PLUGIN_CPU, .stream = cuda ? c->stream : NULL,
                          .training = c->training};
    int rc = (cuda ? po->op.cuda : po->op.cpu)(&po->pl->host, &pc);
    if (hc.st != PRT_OK) return hc.st;
    if (rc != 0)
        return prt_error(c->ctx, PRT_ERR_BACKEND, "layer '%s' (%s): the plugin's %s kernel failed (returned %d) "
                         "without saying why", node, po->schema.name, cuda ? "CUDA" : "CPU", rc);
    return PRT_OK;
}

static prt_status plugin_cpu(const prt_kernel_call *c) { return run_kernel(c, false); }
static prt_status plugin_cuda(const prt_kernel_call *c) { return run_kernel(c, true); }

static prt_status plugin_grad(prt_grad_ctx *gc) {
    prt_graph *g = gc->g;
    const prt_node *nd = &g->nodes[gc->node];
    const prt_op_schema *s = prt_op_get(g->ctx->ops, nd->op);
    const plugin_op *po = s ? s->plugin_op : NULL;
    if (!po || nd->n_in > PRT_VARIADIC || nd->n_out > MAX_OUT)
        return prt_error(g->ctx, PRT_ERR_INTERNAL, "plugin gradient builder: no plugin op behind node '%s'", nd->name);
    int32_t x[PRT_VARIADIC], dx[PRT_VARIADIC], y[MAX_OUT], dy[MAX_OUT];
    for (int k = 0; k < nd->n_out; k++) {
        if (gc->dy[k] == PRT_GRAD_ONE) return prt_grad_not_loss(gc);
        y[k] = nd->out[k];
        dy[k] = gc->dy[k];
    }
    for (int i = 0; i < nd->n_in; i++) {
        x[i] = nd->in[i];
        dx[i] = -1;
    }
    host_call hc = {.ctx = g->ctx, .po = po, .node = nd->name, .gc = gc, .kind = PRT_ERR_INVALID};
    prt_plugin_attr_value attrs[MAX_ATTRS];
    attrs_to_plugin(nd->attrs, po->schema.n_attrs, attrs);
    prt_plugin_grad pg = {.struct_size = sizeof pg, .host_ctx = &hc, .node_name = nd->name, .n_in = nd->n_in,
                          .x = x, .n_out = nd->n_out, .y = y, .dy = dy, .dx = dx, .attrs = attrs};
    int rc = po->op.grad(&po->pl->host, &pg);
    if (hc.st != PRT_OK) return hc.st;
    /* nd may have moved: grad_emit appends nodes */
    nd = &g->nodes[gc->node];
    if (rc != 0)
        return prt_error(g->ctx, PRT_ERR_INVALID, "layer '%s' (%s): the plugin's grad failed (returned %d) without "
                         "saying why", nd->name, s->name, rc);
    for (int i = 0; i < nd->n_in; i++) {
        if (dx[i] != -1 && (dx[i] < 0 || dx[i] >= g->n_values))
            return prt_error(g->ctx, PRT_ERR_INVALID, "layer '%s' (%s): the plugin's grad gave input %d the "
                             "gradient %d, which is no value handle", nd->name, s->name, i, (int)dx[i]);
        gc->dx[i] = dx[i];
    }
    return PRT_OK;
}

/* ---- loading: checks ---------------------------------------------------------- */

static bool name_part_ok(const char *p, size_t n) {
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9') || p[i] == '_')) return false;
    return true;
}

/* "<ns>.<op>": at least two parts, each of [a-z0-9_], the first starting with a letter. */
static bool op_name_ok(const char *s) {
    size_t len = strlen(s);
    if (len > MAX_NAME || !(s[0] >= 'a' && s[0] <= 'z')) return false;
    int parts = 0;
    for (const char *p = s;;) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (!name_part_ok(p, n)) return false;
        parts++;
        if (!dot) break;
        p = dot + 1;
    }
    return parts >= 2;
}

static bool attr_name_ok(const char *s) {
    if (!((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_') || strlen(s) > MAX_NAME) return false;
    return name_part_ok(s, strlen(s));
}

static prt_status bad(prt_context *ctx, const char *path, const char *fmt, ...) PRT_PRINTF(3, 4);
static prt_status bad(prt_context *ctx, const char *path, const char *fmt, ...) {
    char msg[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return prt_error(ctx, PRT_ERR_INVALID, "plugin %s: %s", path, msg);
}

static prt_status check_attrs(prt_context *ctx, const char *path, const prt_plugin_op *op) {
    const char *on = op->name;
    if (op->n_attrs < 0 || op->n_attrs > MAX_ATTRS)
        return bad(ctx, path, "op '%s': n_attrs %d is out of range (0 to %d)", on, (int)op->n_attrs, MAX_ATTRS);
    if (op->n_attrs > 0 && !op->attrs) return bad(ctx, path, "op '%s': n_attrs is %d but attrs is NULL", on, (int)op->n_attrs);
    for (int i = 0; i < op->n_attrs; i++) {
        const prt_plugin_attr_def *a = &op->attrs[i];
        if (!a->name || !attr_name_ok(a->name))
            return bad(ctx, path, "op '%s': attribute %d: the name '%s' must be lower-case letters, digits and '_', "
                       "starting with a letter or '_'", on, i, a->name ? a->name : "(null)");
        if (a->type < PRT_PLUGIN_ATTR_INT || a->type > PRT_PLUGIN_ATTR_STRING)
            return bad(ctx, path, "op '%s': attribute '%s' has type %d (expected 0 int, 1 float, 2 bool, 3 ints or "
                       "4 string)", on, a->name, (int)a->type);
        if (a->type == PRT_PLUGIN_ATTR_INTS && !a->required && (a->def.n < 1 || a->def.n > PRT_PLUGIN_MAX_INTS))
            return bad(ctx, path, "op '%s': attribute '%s': the default has %d integers (expected 1 to %d)", on,
                       a->name, (int)a->def.n, PRT_PLUGIN_MAX_INTS);
        for (int j = 0; j < i; j++)
            if (!strcmp(op->attrs[j].name, a->name))
                return bad(ctx, path, "op '%s': attribute '%s' is declared twice (attributes %d and %d)", on, a->name,
                           j, i);
    }
    return PRT_OK;
}

static prt_status check_op(prt_context *ctx, const char *path, int k, const prt_plugin_op *op) {
    if (!op->name || !op_name_ok(op->name))
        return bad(ctx, path, "op %d: the name '%s' must be '<namespace>.<op>' in lower-case letters, digits and "
                   "'_' (such as 'myorg.swish')", k, op->name ? op->name : "(null)");
    const char *on = op->name;
    if (op->version == 0) return bad(ctx, path, "op '%s': version 0 (op versions start at 1)", on);
    if (op->min_in < 1 || op->max_in < op->min_in || op->max_in > PRT_VARIADIC)
        return bad(ctx, path, "op '%s': inputs %d to %d are out of range (1 <= min_in <= max_in <= %d)", on,
                   (int)op->min_in, (int)op->max_in, PRT_VARIADIC);
    if (op->n_out < 1 || op->n_out > MAX_OUT)
        return bad(ctx, path, "op '%s': n_out %d is out of range (1 to %d)", on, (int)op->n_out, MAX_OUT);
    if (!op->infer) return bad(ctx, path, "op '%s': no infer function (shape inference is required)", on);
    if (!op->cpu) return bad(ctx, path, "op '%s': no cpu kernel (a CPU kernel is required)", on);
    if (op->inplace && (op->inplace_in < 0 || op->inplace_in >= op->min_in))
        return bad(ctx, path, "op '%s': inplace_in %d is not an input every call has (0 to %d)", on,
                   (int)op->inplace_in, (int)op->min_in - 1);
    return check_attrs(ctx, path, op);
}

/* The v1 part of op k (the array's stride is the ops' struct_size). */
static const prt_plugin_op *op_at(const prt_plugin_desc *d, size_t stride, int k) {
    return (const prt_plugin_op *)(const void *)((const char *)d->ops + stride * (size_t)k);
}

static prt_status check_desc(prt_context *ctx, const char *path, const prt_plugin_desc *d, size_t *stride) {
    if (d->abi_version == 0)
        return bad(ctx, path, "built for plugin ABI 0, which does not exist (this Parrots supports 1)");
    if (d->abi_version > PRT_PLUGIN_ABI_VERSION)
        return bad(ctx, path, "built for plugin ABI %u, this Parrots supports %u", d->abi_version,
                   PRT_PLUGIN_ABI_VERSION);
    if (d->struct_size < sizeof(prt_plugin_desc))
        return bad(ctx, path, "the descriptor's struct_size %u is smaller than plugin ABI 1's %zu (initialise it "
                   "with PRT_PLUGIN_DESC_INIT)", d->struct_size, sizeof(prt_plugin_desc));
    if (!d->name || !d->name[0]) return bad(ctx, path, "the descriptor has no name");
    if (!d->version || !d->version[0]) return bad(ctx, path, "the descriptor has no version");
    if (d->n_ops < 1 || d->n_ops > MAX_OPS || !d->ops)
        return bad(ctx, path, "the descriptor lists %d ops (expected 1 to %d, and ops not NULL)", (int)d->n_ops,
                   MAX_OPS);
    /* struct_size is the first field: op 0's is readable whatever its size */
    *stride = d->ops[0].struct_size;
    for (int k = 0; k < d->n_ops; k++) {
        uint32_t size = k == 0 ? (uint32_t)*stride : op_at(d, *stride, k)->struct_size;
        if (size < sizeof(prt_plugin_op))
            return bad(ctx, path, "op %d: struct_size %u is smaller than plugin ABI 1's %zu (initialise it with "
                       "PRT_PLUGIN_OP_INIT)", k, size, sizeof(prt_plugin_op));
        if (size != *stride)
            return bad(ctx, path, "op %d: struct_size %u differs from op 0's %zu (ops[] is one array)", k, size,
                       *stride);
    }
    for (int k = 0; k < d->n_ops; k++) PRT_CHECK(check_op(ctx, path, k, op_at(d, *stride, k)));
    for (int k = 0; k < d->n_ops; k++) {
        const char *name = op_at(d, *stride, k)->name;
        for (int j = 0; j < k; j++)
            if (!strcmp(op_at(d, *stride, j)->name, name))
                return bad(ctx, path, "op '%s' is declared twice (ops %d and %d)", name, j, k);
        const prt_op_schema *old = prt_op_find(ctx->ops, name, NULL);
        if (old) return bad(ctx, path, "op '%s' is already registered by %s", name, prt_op_source(old));
    }
    return PRT_OK;
}

/* ---- loading: building the schemas ----------------------------------------------- */

static void plugin_free(prt_plugin *pl) {
    if (!pl) return;
    prt_context *ctx = pl->ctx;
    for (int t = 0; t < pl->n_tables; t++) prt_free(ctx, pl->tables[t].defs, 0);
    prt_free(ctx, pl->tables, 0);
    prt_free(ctx, pl->ops, 0);
    prt_free(ctx, pl->path, 0);
    prt_free(ctx, pl->source, 0);
    prt_free(ctx, pl, sizeof *pl);
}

static prt_status attr_table_for(prt_plugin *pl, const prt_plugin_op *op, const prt_attr_def **out) {
    prt_context *ctx = pl->ctx;
    *out = NULL;
    if (op->n_attrs == 0) return PRT_OK;
    for (int t = 0; t < pl->n_tables; t++)
        if (pl->tables[t].src == op->attrs && pl->tables[t].n == op->n_attrs) {
            *out = pl->tables[t].defs;
            return PRT_OK;
        }
    prt_attr_def *defs = prt_calloc(ctx, (size_t)op->n_attrs, sizeof *defs);
    if (!defs) return prt_error(ctx, PRT_ERR_NOMEM, "plugin %s: out of memory", pl->path);
    for (int i = 0; i < op->n_attrs; i++) {
        const prt_plugin_attr_def *a = &op->attrs[i];
        prt_attr_def *d = &defs[i];
        d->name = a->name;
        d->type = (prt_attr_type)a->type;
        d->required = a->required;
        d->min = a->min;
        d->doc = a->doc;
        d->def.type = d->type;
        d->def.n = d->type == PRT_ATTR_INTS ? a->def.n : 1;
        memcpy(d->def.i, a->def.i, sizeof d->def.i);
        d->def.f = a->def.f;
        d->def.s = d->type == PRT_ATTR_STRING ? (a->def.s ? a->def.s : "") : NULL;
    }
    pl->tables[pl->n_tables++] = (attr_table){op->attrs, op->n_attrs, defs};
    *out = defs;
    return PRT_OK;
}

static prt_status build_ops(prt_plugin *pl, size_t stride) {
    prt_context *ctx = pl->ctx;
    const prt_plugin_desc *d = pl->desc;
    pl->ops = prt_calloc(ctx, (size_t)d->n_ops, sizeof *pl->ops);
    pl->tables = prt_calloc(ctx, (size_t)d->n_ops, sizeof *pl->tables);
    if (!pl->ops || !pl->tables) return prt_error(ctx, PRT_ERR_NOMEM, "plugin %s: out of memory", pl->path);
    pl->n_ops = d->n_ops;
    for (int k = 0; k < d->n_ops; k++) {
        plugin_op *po = &pl->ops[k];
        po->pl = pl;
        memcpy(&po->op, op_at(d, stride, k), sizeof po->op);
        const prt_plugin_op *op = &po->op;
        prt_op_schema *s = &po->schema;
        s->name = op->name;
        s->doc = op->doc;
        s->min_in = op->min_in;
        s->max_in = op->max_in;
        s->n_out = op->n_out;
        PRT_CHECK(attr_table_for(pl, op, &s->attrs));
        s->n_attrs = op->n_attrs;
        s->infer = plugin_infer;
        s->flops = op->flops ? plugin_flops : NULL;
        s->inplace_in = op->inplace ? op->inplace_in : -1;
        s->workspace = op->workspace ? plugin_workspace : NULL;
        /* one kernel: the reference is the fast path */
        s->ref.run = plugin_cpu;
        s->fast.run = plugin_cpu;
        s->grad = op->grad ? plugin_grad : NULL;
        s->grad_note = op->grad_note ? op->grad_note : "the plugin gives no gradient";
        s->version = (int)(op->version > INT32_MAX ? INT32_MAX : op->version);
        s->cuda.run = op->cuda ? plugin_cuda : NULL;
        s->plugin_op = po;
        s->source = pl->source;
    }
    return PRT_OK;
}

const prt_plugin_op *prt_plugin_op_of(const prt_op_schema *s) {
    const plugin_op *po = s ? s->plugin_op : NULL;
    return po ? &po->op : NULL;
}

static const char *dl_gist(const char *err, const char *path) {
    if (!err) return "unknown error";
    /* glibc prefixes the path: "<path>: invalid ELF header" */
    size_t n = strlen(path);
    if (!strncmp(err, path, n) && err[n] == ':' && err[n + 1] == ' ') return err + n + 2;
    return err;
}

prt_status prt_plugin_load(prt_context *ctx, const char *path) {
    if (!ctx) return PRT_ERR_USAGE;
    if (!path || !path[0]) return prt_error(ctx, PRT_ERR_USAGE, "prt_plugin_load: no path");
    struct stat sb;
    if (stat(path, &sb) != 0) return prt_error(ctx, PRT_ERR_NOT_FOUND, "plugin %s: no such file", path);
    if (S_ISDIR(sb.st_mode))
        return bad(ctx, path, "is a directory (a plugin is a shared library; PARROTS_PLUGIN_PATH and --plugin "
                   "also take directories)");
    /* dlopen searches the library path for a name without '/': never do that */
    char local[4096];
    const char *open_path = path;
    if (!strchr(path, '/')) {
        if (snprintf(local, sizeof local, "./%s", path) >= (int)sizeof local)
            return bad(ctx, path, "the path is too long");
        open_path = local;
    }
    prt_plugin *pl = NULL;
    const prt_plugin_desc *d = NULL;
    size_t stride = 0;
    prt_plugin_entry_fn entry;
    void *h = dlopen(open_path, RTLD_NOW | RTLD_LOCAL);
    if (!h) return bad(ctx, path, "not a loadable shared library (%s)", dl_gist(dlerror(), open_path));
    for (prt_plugin *p = ctx->plugins; p; p = p->next)
        if (p->handle == h) {
            /* the same file again (PARROTS_PLUGIN_PATH and --plugin both name it): nothing to do */
            dlclose(h);
            prt_log_debug(ctx, "plugin %s: already loaded as %s", path, p->path);
            return PRT_OK;
        }
    prt_status st;
    int n_before = prt_op_count(ctx->ops);
    void *sym = dlsym(h, PRT_PLUGIN_ENTRY_V1);
    if (!sym) {
        st = bad(ctx, path, "no entry point '%s' (a Parrots plugin exports const prt_plugin_desc *%s(void))",
                 PRT_PLUGIN_ENTRY_V1, PRT_PLUGIN_ENTRY_V1);
        goto fail;
    }
    memcpy(&entry, &sym, sizeof entry); /* ISO C has no object-to-function pointer cast */
    d = entry();
    if (!d) {
        st = bad(ctx, path, "%s() returned NULL", PRT_PLUGIN_ENTRY_V1);
        goto fail;
    }
    PRT_CHECK_GOTO(check_desc(ctx, path, d, &stride), st, fail);
    pl = prt_calloc(ctx, 1, sizeof *pl);
    if (!pl) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "plugin %s: out of memory", path);
        goto fail;
    }
    pl->ctx = ctx;
    pl->handle = h;
    pl->desc = d;
    pl->host = host_template;
    size_t src_len = strlen(path) + strlen(d->name) + strlen(d->version) + 16;
    pl->path = prt_strdup(ctx, path);
    pl->source = prt_malloc(ctx, src_len);
    if (!pl->path || !pl->source) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "plugin %s: out of memory", path);
        goto fail;
    }
    snprintf(pl->source, src_len, "plugin %s (%s %s)", path, d->name, d->version);
    PRT_CHECK_GOTO(build_ops(pl, stride), st, fail);
    if (d->init) {
        host_call hc = {.ctx = ctx, .kind = PRT_ERR_INVALID};
        prt_error_clear(ctx);
        pl->host.init_ctx = &hc;
        int rc = d->init(&pl->host, &pl->state);
        pl->host.init_ctx = NULL;
        if (rc != 0 || hc.st != PRT_OK) {
            if (hc.st != PRT_OK)
                st = prt_error_prefix(ctx, PRT_ERR_INVALID, "plugin %s: init failed", path);
            else
                st = bad(ctx, path, "init failed (returned %d) without saying why", rc);
            /* a refused init cleaned up after itself: no fini */
            goto fail;
        }
        pl->inited = true;
    }
    for (int k = 0; k < pl->n_ops; k++) PRT_CHECK_GOTO(prt_registry_add(ctx, ctx->ops, &pl->ops[k].schema), st, fail);
    pl->next = ctx->plugins;
    ctx->plugins = pl;
    return PRT_OK;
fail:
    prt_registry_truncate(ctx, ctx->ops, n_before);
    if (pl && pl->inited && d->fini) d->fini(pl->state);
    plugin_free(pl);
    dlclose(h);
    return st;
}

static bool is_so(const char *name) {
    size_t n = strlen(name);
    return n > 3 && !strcmp(name + n - 3, ".so") && name[0] != '.';
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static prt_status load_dir(prt_context *ctx, const char *dir) {
    DIR *dp = opendir(dir);
    if (!dp) return prt_error(ctx, PRT_ERR_IO, "plugin directory %s: cannot read it", dir);
    char **names = NULL;
    int n = 0, cap = 0;
    prt_status st = PRT_OK;
    for (struct dirent *e; (e = readdir(dp));) {
        if (!is_so(e->d_name)) continue;
        if (n == cap) {
            void *arr = names;
            if ((st = prt_grow(ctx, &arr, &cap, n + 1, sizeof *names)) != PRT_OK) break;
            names = arr;
        }
        if (!(names[n] = prt_strdup(ctx, e->d_name))) {
            st = prt_error(ctx, PRT_ERR_NOMEM, "plugin directory %s: out of memory", dir);
            break;
        }
        n++;
    }
    closedir(dp);
    if (st == PRT_OK && n > 1) qsort(names, (size_t)n, sizeof *names, cmp_names);
    for (int i = 0; i < n && st == PRT_OK; i++) {
        char path[4096];
        if (snprintf(path, sizeof path, "%s/%s", dir, names[i]) >= (int)sizeof path) {
            st = prt_error(ctx, PRT_ERR_INVALID, "plugin directory %s: a name is too long", dir);
            break;
        }
        st = prt_plugin_load(ctx, path);
    }
    for (int i = 0; i < n; i++) prt_free(ctx, names[i], 0);
    prt_free(ctx, names, 0);
    return st;
}

prt_status prt_plugin_load_path(prt_context *ctx, const char *list) {
    if (!ctx) return PRT_ERR_USAGE;
    if (!list) return PRT_OK;
    for (const char *p = list; *p;) {
        const char *colon = strchr(p, ':');
        size_t n = colon ? (size_t)(colon - p) : strlen(p);
        if (n > 0) {
            char entry[4096];
            if (n >= sizeof entry) return prt_error(ctx, PRT_ERR_INVALID, "plugin path: an entry is too long");
            memcpy(entry, p, n);
            entry[n] = '\0';
            struct stat sb;
            if (stat(entry, &sb) == 0 && S_ISDIR(sb.st_mode))
                PRT_CHECK(load_dir(ctx, entry));
            else
                PRT_CHECK(prt_plugin_load(ctx, entry));
        }
        if (!colon) break;
        p = colon + 1;
    }
    return PRT_OK;
}

int prt_plugin_count(const prt_context *ctx) {
    int n = 0;
    for (const prt_plugin *p = ctx ? ctx->plugins : NULL; p; p = p->next) n++;
    return n;
}

void prt_plugins_unload(prt_context *ctx) {
    while (ctx->plugins) {
        prt_plugin *pl = ctx->plugins;
        ctx->plugins = pl->next;
        if (pl->inited && pl->desc->fini) pl->desc->fini(pl->state);
        void *h = pl->handle;
        plugin_free(pl);
        dlclose(h);
    }
}

/* Program files (docs/program-format.md): encoding a compiled program as a
 * protobuf-c message behind a checksummed header, writing it atomically, and
 * loading one back with every count, index and plan entry checked before it is
 * trusted. The checksum is zlib's CRC32 (the checkpoint format has its own
 * CRC32C; zlib is already linked for the weights file). */
#define _POSIX_C_SOURCE 200809L
#include "frontends/file_util.h"
#include "frontends/program_file_api.h"

#include "memory/memory_api.h"
#include "program.pb-c.h"
#include "vm/vm_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

_Static_assert(sizeof(int) == sizeof(int32_t), "register indices are stored as int32");
_Static_assert(sizeof(size_t) == sizeof(uint64_t), "plan offsets are stored as uint64");

static const unsigned char magic[8] = {'P', 'R', 'T', 'P', 'R', 'O', 'G', '\0'};

int prt_op_version(const prt_op_schema *s) { return s && s->version > 0 ? s->version : 1; }

bool prt_program_is_training(const prt_program *p) {
    for (int k = 0; k < p->n_k; k++)
        if (p->k[k].kind == PRT_CONST_CALL && p->k[k].call.phase != PRT_PHASE_FORWARD) return true;
    return false;
}

const char *prt_program_name(const prt_program *p) { return p->name; }
int64_t prt_program_batch(const prt_program *p) { return p->batch; }
const char *prt_program_output_name(const prt_program *p, int i) {
    return i >= 0 && i < p->n_outputs ? p->regs[p->outputs[i]].name : "?";
}


static uint32_t crc_of(const void *p, size_t n) { return (uint32_t)crc32_z(crc32_z(0, NULL, 0), p, n); }

static size_t align_up(size_t n) { return (n + PRT_MEM_ALIGN - 1) / PRT_MEM_ALIGN * PRT_MEM_ALIGN; }

/* ---- enum codes: fixed by the format, mapped by hand -------------------------- */

static int reg_kind_code(prt_reg_kind k) {
    switch (k) {
    case PRT_REG_INPUT: return PARROTS__PROG__REG_KIND__REG_INPUT;
    case PRT_REG_PARAM: return PARROTS__PROG__REG_KIND__REG_PARAM;
    case PRT_REG_STATE: return PARROTS__PROG__REG_KIND__REG_STATE;
    case PRT_REG_ACT: return PARROTS__PROG__REG_KIND__REG_ACT;
    case PRT_REG_COUNTER: return PARROTS__PROG__REG_KIND__REG_COUNTER;
    case PRT_REG_KIND_COUNT: break;
    }
    return -1;
}
static bool reg_kind_of(int code, prt_reg_kind *out) {
    for (int k = 0; k < PRT_REG_KIND_COUNT; k++)
        if (reg_kind_code((prt_reg_kind)k) == code) return *out = (prt_reg_kind)k, true;
    return false;
}

static int init_code(prt_init_kind k) {
    switch (k) {
    case PRT_INIT_ZEROS: return PARROTS__PROG__INIT_KIND__INIT_ZEROS;
    case PRT_INIT_ONES: return PARROTS__PROG__INIT_KIND__INIT_ONES;
    case PRT_INIT_HE_NORMAL: return PARROTS__PROG__INIT_KIND__INIT_HE_NORMAL;
    case PRT_INIT_UNIFORM_FAN: return PARROTS__PROG__INIT_KIND__INIT_UNIFORM_FAN;
    }
    return -1;
}
static bool init_of(int code, prt_init_kind *out) {
    for (int k = 0; k <= PRT_INIT_UNIFORM_FAN; k++)
        if (init_code((prt_init_kind)k) == code) return *out = (prt_init_kind)k, true;
    return false;
}

static int attr_code(prt_attr_type t) {
    switch (t) {
    case PRT_ATTR_INT: return PARROTS__PROG__ATTR_TYPE__ATTR_INT;
    case PRT_ATTR_FLOAT: return PARROTS__PROG__ATTR_TYPE__ATTR_FLOAT;
    case PRT_ATTR_BOOL: return PARROTS__PROG__ATTR_TYPE__ATTR_BOOL;
    case PRT_ATTR_INTS: return PARROTS__PROG__ATTR_TYPE__ATTR_INTS;
    case PRT_ATTR_STRING: return PARROTS__PROG__ATTR_TYPE__ATTR_STRING;
    }
    return -1;
}
static bool attr_of(int code, prt_attr_type *out) {
    for (int t = 0; t <= PRT_ATTR_STRING; t++)
        if (attr_code((prt_attr_type)t) == code) return *out = (prt_attr_type)t, true;
    return false;
}

static int phase_code(int ph) {
    switch (ph) {
    case PRT_PHASE_FORWARD: return PARROTS__PROG__PHASE__PHASE_FORWARD;
    case PRT_PHASE_BACKWARD: return PARROTS__PROG__PHASE__PHASE_BACKWARD;
    case PRT_PHASE_UPDATE: return PARROTS__PROG__PHASE__PHASE_UPDATE;
    }
    return -1;
}
static bool phase_of(int code, uint8_t *out) {
    for (int ph = 0; ph < PRT_PHASE_COUNT; ph++)
        if (phase_code(ph) == code) return *out = (uint8_t)ph, true;
    return false;
}

static int region_code(prt_mem_region r) {
    switch (r) {
    case PRT_MEM_NONE: return PARROTS__PROG__REGION__REGION_NONE;
    case PRT_MEM_PERSISTENT: return PARROTS__PROG__REGION__REGION_PERSISTENT;
    case PRT_MEM_ARENA: return PARROTS__PROG__REGION__REGION_ARENA;
    case PRT_MEM_GRAD: return PARROTS__PROG__REGION__REGION_GRAD;
    case PRT_MEM_REGION_COUNT: break;
    }
    return -1;
}
static bool region_of(int code, prt_mem_region *out) {
    for (int r = 0; r < PRT_MEM_REGION_COUNT; r++)
        if (region_code((prt_mem_region)r) == code) return *out = (prt_mem_region)r, true;
    return false;
}

static const char *region_name(prt_mem_region r) {
    static const char *const names[] = {"none", "persistent", "arena", "gradient"};
    return (unsigned)r < PRT_MEM_REGION_COUNT ? names[r] : "?";
}

/* ---- encoding -------------------------------------------------------------------- */

/* Every block the message borrows, freed together. */
typedef struct scratch {
    prt_context *ctx;
    void **blocks;
    int n, cap;
    bool failed;
} scratch;

static void *sc_alloc(scratch *s, size_t count, size_t size) {
    if (s->failed) return NULL;
    void *m = prt_calloc(s->ctx, count ? count : 1, size);
    if (!m || prt_grow(s->ctx, (void **)&s->blocks, &s->cap, s->n + 1, sizeof *s->blocks) != PRT_OK) {
        prt_free(s->ctx, m, 0);
        s->failed = true;
        return NULL;
    }
    s->blocks[s->n++] = m;
    return m;
}

static void sc_free(scratch *s) {
    for (int i = 0; i < s->n; i++) prt_free(s->ctx, s->blocks[i], 0);
    prt_free(s->ctx, s->blocks, 0);
}

static int32_t *sc_ints(scratch *s, const int *src, int n) {
    int32_t *d = sc_alloc(s, (size_t)n, sizeof *d);
    if (d)
        for (int i = 0; i < n; i++) d[i] = src[i];
    return d;
}

static Parrots__Prog__Call *enc_call(scratch *s, const prt_call_desc *c) {
    Parrots__Prog__Call *m = sc_alloc(s, 1, sizeof *m);
    if (!m) return NULL;
    parrots__prog__call__init(m);
    m->op = (uint32_t)c->op;
    m->node = c->node ? c->node : "";
    m->phase = (Parrots__Prog__Phase)phase_code(c->phase);
    m->n_data_in = (uint32_t)c->n_data_in;
    m->n_inputs = (size_t)c->n_in;
    m->inputs = sc_ints(s, c->in, c->n_in);
    m->n_outputs = (size_t)c->n_out;
    m->outputs = sc_ints(s, c->out, c->n_out);
    m->n_attrs = (size_t)c->n_attrs;
    m->attrs = sc_alloc(s, (size_t)c->n_attrs, sizeof *m->attrs);
    if (!m->attrs) return NULL;
    for (int i = 0; i < c->n_attrs; i++) {
        const prt_attr *a = &c->attrs[i];
        Parrots__Prog__Attr *ma = m->attrs[i] = sc_alloc(s, 1, sizeof *ma);
        if (!ma) return NULL;
        parrots__prog__attr__init(ma);
        ma->type = (Parrots__Prog__AttrType)attr_code(a->type);
        ma->set = a->set;
        int n = a->type == PRT_ATTR_INTS ? a->n : (a->type == PRT_ATTR_INT || a->type == PRT_ATTR_BOOL) ? 1 : 0;
        ma->n_ints = (size_t)n;
        ma->ints = (int64_t *)a->i;
        ma->f = a->type == PRT_ATTR_FLOAT ? a->f : 0.0;
        ma->has_s = a->type == PRT_ATTR_STRING && a->s;
        ma->s = ma->has_s ? (char *)a->s : "";
    }
    return s->failed ? NULL : m;
}

static Parrots__Prog__MemoryPlan *enc_plan(scratch *s, const prt_program *p) {
    const prt_mem_plan *pl = p->plan;
    Parrots__Prog__MemoryPlan *m = sc_alloc(s, 1, sizeof *m);
    if (!m) return NULL;
    parrots__prog__memory_plan__init(m);
    m->n_reg_region = m->n_reg_offset = m->n_reg_buffer = (size_t)pl->n_regs;
    m->reg_region = sc_alloc(s, (size_t)pl->n_regs, sizeof *m->reg_region);
    m->reg_offset = sc_alloc(s, (size_t)pl->n_regs, sizeof *m->reg_offset);
    m->reg_buffer = sc_ints(s, pl->reg_buffer, pl->n_regs);
    if (!m->reg_region || !m->reg_offset || !m->reg_buffer) return NULL;
    for (int r = 0; r < pl->n_regs; r++) {
        m->reg_region[r] = (Parrots__Prog__Region)region_code(pl->reg_region[r]);
        m->reg_offset[r] = pl->reg_offset[r];
    }
    m->n_buckets = (uint32_t)pl->n_buckets;
    m->n_ws_offset = (size_t)pl->n_k;
    m->ws_offset = pl->ws_offset;
    m->n_buffers = (size_t)pl->n_bufs;
    m->buffers = sc_alloc(s, (size_t)pl->n_bufs, sizeof *m->buffers);
    if (!m->buffers) return NULL;
    for (int b = 0; b < pl->n_bufs; b++) {
        const prt_mem_buffer *x = &pl->bufs[b];
        Parrots__Prog__Buffer *mb = m->buffers[b] = sc_alloc(s, 1, sizeof *mb);
        if (!mb) return NULL;
        parrots__prog__buffer__init(mb);
        mb->bytes = x->bytes;
        mb->first = x->first;
        mb->last = x->last;
        mb->offset = x->offset;
        mb->reg = x->reg;
        mb->call = x->call;
        mb->bucket = x->bucket;
    }
    m->param_bytes = pl->param_bytes;
    m->state_bytes = pl->state_bytes;
    m->optimizer_bytes = pl->optimizer_bytes;
    m->persistent_bytes = pl->persistent_bytes;
    m->grad_bytes = pl->grad_bytes;
    m->input_bytes = pl->input_bytes;
    m->workspace_bytes = pl->workspace_bytes;
    m->naive_bytes = pl->naive_bytes;
    m->lower_bound_bytes = pl->lower_bound_bytes;
    m->arena_bytes = pl->arena_bytes;
    m->total_bytes = pl->total_bytes;
    m->n_inplace = pl->n_inplace;
    m->n_views = pl->n_views;
    m->strategy = (char *)prt_mem_strategy_name(pl->strategy);
    m->n_strategy_bytes = PRT_MEM_STRATEGY_COUNT;
    m->strategy_bytes = sc_alloc(s, PRT_MEM_STRATEGY_COUNT, sizeof *m->strategy_bytes);
    if (!m->strategy_bytes) return NULL;
    for (int i = 0; i < PRT_MEM_STRATEGY_COUNT; i++) {
        Parrots__Prog__StrategyBytes *sb = m->strategy_bytes[i] = sc_alloc(s, 1, sizeof *sb);
        if (!sb) return NULL;
        parrots__prog__strategy_bytes__init(sb);
        sb->strategy = (char *)prt_mem_strategy_name((prt_mem_strategy)i);
        sb->bytes = pl->strategy_bytes[i];
    }
    m->plan_seconds = pl->plan_seconds;
    return s->failed ? NULL : m;
}

prt_status prt_program_encode(prt_context *ctx, const prt_program *p, void **bytes, size_t *size) {
    *bytes = NULL;
    *size = 0;
    if (!p->plan)
        return prt_error(ctx, PRT_ERR_INVALID, "program '%s': no memory plan to save (compile it with prt_vm_compile)",
                         p->name);
    scratch s = {.ctx = ctx};
    prt_status st = PRT_OK;
    Parrots__Prog__Program m = PARROTS__PROG__PROGRAM__INIT;
    m.format_version = PRT_PROGRAM_FORMAT_VERSION;
    m.name = p->name;
    m.batch = p->batch;
    m.training = prt_program_is_training(p);
    m.n_code = (size_t)p->n_code;
    m.code = p->code;
    m.n_constants = (size_t)p->n_k;
    m.constants = sc_alloc(&s, (size_t)p->n_k, sizeof *m.constants);
    m.n_registers = (size_t)p->n_regs;
    m.registers = sc_alloc(&s, (size_t)p->n_regs, sizeof *m.registers);
    m.n_ops = (size_t)p->n_ops;
    m.ops = sc_alloc(&s, (size_t)p->n_ops, sizeof *m.ops);
    m.n_inputs = (size_t)p->n_inputs;
    m.inputs = sc_ints(&s, p->inputs, p->n_inputs);
    m.n_outputs = (size_t)p->n_outputs;
    m.outputs = sc_ints(&s, p->outputs, p->n_outputs);
    for (int k = 0; !s.failed && k < p->n_k; k++) {
        Parrots__Prog__Constant *c = m.constants[k] = sc_alloc(&s, 1, sizeof *c);
        if (!c) break;
        parrots__prog__constant__init(c);
        if (p->k[k].kind == PRT_CONST_INT) {
            c->value_case = PARROTS__PROG__CONSTANT__VALUE_INT_VALUE;
            c->int_value = p->k[k].i;
        } else {
            c->value_case = PARROTS__PROG__CONSTANT__VALUE_CALL;
            c->call = enc_call(&s, &p->k[k].call);
        }
    }
    for (int r = 0; !s.failed && r < p->n_regs; r++) {
        const prt_reg *g = &p->regs[r];
        Parrots__Prog__Register *mr = m.registers[r] = sc_alloc(&s, 1, sizeof *mr);
        if (!mr) break;
        parrots__prog__register__init(mr);
        mr->name = g->name;
        mr->kind = (Parrots__Prog__RegKind)reg_kind_code(g->kind);
        mr->dtype = (char *)prt_dtype_name(g->dtype);
        mr->n_shape = (size_t)g->shape.ndim;
        mr->shape = (int64_t *)g->shape.d;
        mr->init = (Parrots__Prog__InitKind)init_code(g->init);
    }
    for (int i = 0; !s.failed && i < p->n_ops; i++) {
        Parrots__Prog__OpRef *o = m.ops[i] = sc_alloc(&s, 1, sizeof *o);
        if (!o) break;
        parrots__prog__op_ref__init(o);
        o->name = p->ops[i].name;
        const prt_op_schema *sch = prt_op_find(ctx->ops, p->ops[i].name, NULL);
        o->version = (uint32_t)(sch ? prt_op_version(sch) : 1);
    }
    if (!s.failed) m.plan = enc_plan(&s, p);
    if (s.failed) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "program '%s': encoding: out of memory", p->name);
        goto done;
    }
    size_t len = parrots__prog__program__get_packed_size(&m), total;
    if (len > PRT_PROGRAM_MAX_FILE_BYTES - PRT_PROGRAM_HEADER_BYTES) {
        st = prt_error(ctx, PRT_ERR_LIMIT, "program '%s': the file would have %zu bytes, more than the limit of %zu",
                       p->name, len + PRT_PROGRAM_HEADER_BYTES, PRT_PROGRAM_MAX_FILE_BYTES);
        goto done;
    }
    total = len + PRT_PROGRAM_HEADER_BYTES;
    unsigned char *img = prt_malloc(ctx, total);
    if (!img) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "program '%s': encoding: out of memory", p->name);
        goto done;
    }
    size_t packed = parrots__prog__program__pack(&m, img + PRT_PROGRAM_HEADER_BYTES);
    if (packed != len) {
        prt_free(ctx, img, total);
        st = prt_error(ctx, PRT_ERR_INTERNAL, "program '%s': protobuf-c packed %zu bytes, expected %zu", p->name,
                       packed, len);
        goto done;
    }
    memcpy(img, magic, 8);
    prt_le_put_u32(img + 8, PRT_PROGRAM_FORMAT_VERSION);
    prt_le_put_u32(img + 12, crc_of(img + PRT_PROGRAM_HEADER_BYTES, len));
    prt_le_put_u64(img + 16, (uint64_t)len);
    *bytes = img;
    *size = total;
done:
    sc_free(&s);
    return st;
}

prt_status prt_program_save(prt_context *ctx, const char *path, const prt_program *p) {
    void *img = NULL;
    size_t size = 0;
    PRT_CHECK(prt_program_encode(ctx, p, &img, &size));
    size_t plen = strlen(path);
    prt_status st = PRT_OK;
    char *tmp = prt_malloc(ctx, plen + 16);
    if (!tmp) {
        prt_free(ctx, img, 0);
        return prt_error(ctx, PRT_ERR_NOMEM, "out of memory");
    }
    snprintf(tmp, plen + 16, "%s.tmp-XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        st = prt_error(ctx, PRT_ERR_IO, "%s: cannot create a temporary file next to it: %s", path, strerror(errno));
        goto done;
    }
    (void)fchmod(fd, 0644);
    const unsigned char *b = img;
    size_t left = size;
    while (left > 0) {
        ssize_t w = write(fd, b, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        b += w, left -= (size_t)w;
    }
    if (left > 0 || fsync(fd) != 0) {
        st = prt_error(ctx, PRT_ERR_IO, "%s: cannot write the program file: %s", path, strerror(errno));
        close(fd);
        unlink(tmp);
        goto done;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        st = prt_error(ctx, PRT_ERR_IO, "%s: cannot put the program file in place: %s", path, strerror(errno));
        unlink(tmp);
        goto done;
    }
    prt_fsync_parent(path);
done:
    prt_free(ctx, tmp, 0);
    prt_free(ctx, img, 0);
    return st;
}

/* ---- loading ------------------------------------------------------------------- */

static prt_status fail(prt_context *ctx, prt_status st, const char *path, const char *fmt, ...) PRT_PRINTF(4, 5);
static prt_status fail(prt_context *ctx, prt_status st, const char *path, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return prt_error(ctx, st, "%s: %s", path, msg);
}

/* protobuf-c's allocations go through the context's allocator under a budget, so
 * a small payload of many empty submessages cannot make decoding allocate far
 * more than the file is worth. Each block carries its size in front. */
typedef struct budget {
    prt_context *ctx;
    size_t left;
    bool exceeded;
} budget;

#define BUDGET_HDR 16

static void *budget_alloc(void *data, size_t size) {
    budget *b = data;
    size_t total;
    if (!prt_add_size(size, BUDGET_HDR, &total) || total > b->left) {
        b->exceeded = true;
        return NULL;
    }
    unsigned char *m = prt_malloc(b->ctx, total);
    if (!m) return NULL;
    memcpy(m, &total, sizeof total);
    b->left -= total;
    return m + BUDGET_HDR;
}

static void budget_free(void *data, void *ptr) {
    if (!ptr) return;
    budget *b = data;
    unsigned char *m = (unsigned char *)ptr - BUDGET_HDR;
    size_t total;
    memcpy(&total, m, sizeof total);
    b->left += total;
    prt_free(b->ctx, m, total);
}

/* Decoded structures take at most this many times the payload (measured: 5 to
 * 7.5x for the examples' inference and training programs), plus a little. */
#define DECODE_FACTOR 24
#define DECODE_SLACK ((size_t)1 << 20)

static bool name_ok(const char *s) { return s && strlen(s) <= PRT_PROGRAM_MAX_NAME; }

static prt_status load_ops(prt_context *ctx, const char *path, const Parrots__Prog__Program *m, prt_program *p) {
    for (size_t i = 0; i < m->n_ops; i++) {
        const Parrots__Prog__OpRef *o = m->ops[i];
        if (!name_ok(o->name) || !o->name[0])
            return fail(ctx, PRT_ERR_PROGRAM, path, "op table entry %zu: the name is empty or longer than %d bytes", i,
                        PRT_PROGRAM_MAX_NAME);
        int idx;
        PRT_CHECK(prt_program_add_op(ctx, p, o->name, &idx));
        if ((size_t)idx != i)
            return fail(ctx, PRT_ERR_PROGRAM, path, "op table entry %zu: op '%s' is listed twice (entries %d and %zu)",
                        i, o->name, idx, i);
    }
    prt_status st = prt_program_resolve(ctx, p);
    if (st != PRT_OK) return prt_error_prefix(ctx, st, "%s", path);
    for (size_t i = 0; i < m->n_ops; i++) {
        const prt_op_schema *s = prt_op_get(ctx->ops, p->ops[i].id);
        uint32_t v = m->ops[i]->version;
        int have = prt_op_version(s);
        if (v == 0)
            return fail(ctx, PRT_ERR_PROGRAM, path, "op table entry %zu: op '%s' has version 0 (versions start at 1)",
                        i, s->name);
        if (v > (uint32_t)have)
            return fail(ctx, PRT_ERR_PROGRAM, path,
                        "op table entry %zu: the program needs op '%s' version %u; this Parrots has version %d", i,
                        s->name, v, have);
    }
    return PRT_OK;
}

static prt_status load_regs(prt_context *ctx, const char *path, const Parrots__Prog__Program *m, prt_program *p) {
    for (size_t r = 0; r < m->n_registers; r++) {
        const Parrots__Prog__Register *g = m->registers[r];
        prt_reg_kind kind;
        prt_dtype dt;
        prt_init_kind init;
        if (!name_ok(g->name))
            return fail(ctx, PRT_ERR_PROGRAM, path, "register r%zu: the name is longer than %d bytes", r,
                        PRT_PROGRAM_MAX_NAME);
        if (!reg_kind_of(g->kind, &kind))
            return fail(ctx, PRT_ERR_PROGRAM, path, "register r%zu '%s': unknown kind %d", r, g->name, (int)g->kind);
        if (!prt_dtype_from_name(g->dtype, &dt))
            return fail(ctx, PRT_ERR_PROGRAM, path, "register r%zu '%s': unknown dtype '%.32s'", r, g->name, g->dtype);
        if (!init_of(g->init, &init))
            return fail(ctx, PRT_ERR_PROGRAM, path, "register r%zu '%s': unknown initialiser %d", r, g->name,
                        (int)g->init);
        if (g->n_shape > PRT_MAX_DIMS)
            return fail(ctx, PRT_ERR_PROGRAM, path, "register r%zu '%s': rank %zu exceeds the limit of %d", r, g->name,
                        g->n_shape, PRT_MAX_DIMS);
        prt_shape s = prt_shape_make((int)g->n_shape, g->shape);
        PRT_CHECK(prt_program_add_reg(ctx, p, g->name, kind, dt, &s, init, NULL));
    }
    return PRT_OK;
}

static prt_status load_call(prt_context *ctx, const char *path, size_t k, const Parrots__Prog__Call *c,
                            prt_program *p) {
    if (!name_ok(c->node))
        return fail(ctx, PRT_ERR_PROGRAM, path, "constant %zu: the node name is longer than %d bytes", k,
                    PRT_PROGRAM_MAX_NAME);
    if (c->n_inputs > PRT_PROGRAM_MAX_OPERANDS || c->n_outputs > PRT_PROGRAM_MAX_OPERANDS ||
        c->n_attrs > PRT_PROGRAM_MAX_ATTRS)
        return fail(ctx, PRT_ERR_LIMIT, path,
                    "constant %zu (call '%s'): %zu inputs, %zu outputs and %zu attributes exceed the limits (%d, %d, %d)",
                    k, c->node, c->n_inputs, c->n_outputs, c->n_attrs, PRT_PROGRAM_MAX_OPERANDS,
                    PRT_PROGRAM_MAX_OPERANDS, PRT_PROGRAM_MAX_ATTRS);
    if (c->n_data_in > c->n_inputs)
        return fail(ctx, PRT_ERR_PROGRAM, path, "constant %zu (call '%s'): %u data inputs but %zu inputs", k, c->node,
                    c->n_data_in, c->n_inputs);
    if (c->op >= (uint32_t)p->n_ops)
        return fail(ctx, PRT_ERR_PROGRAM, path, "constant %zu (call '%s'): op %u out of range (%d ops in the op table)",
                    k, c->node, c->op, p->n_ops);
    uint8_t phase;
    if (!phase_of(c->phase, &phase))
        return fail(ctx, PRT_ERR_PROGRAM, path, "constant %zu (call '%s'): unknown phase %d", k, c->node,
                    (int)c->phase);
    prt_attr attrs[PRT_PROGRAM_MAX_ATTRS];
    memset(attrs, 0, sizeof attrs);
    for (size_t i = 0; i < c->n_attrs; i++) {
        const Parrots__Prog__Attr *a = c->attrs[i];
        prt_attr *d = &attrs[i];
        if (!attr_of(a->type, &d->type))
            return fail(ctx, PRT_ERR_PROGRAM, path, "constant %zu (call '%s'): attribute %zu: unknown type %d", k,
                        c->node, i, (int)a->type);
        size_t want_lo = d->type == PRT_ATTR_INTS ? 0 : (d->type == PRT_ATTR_INT || d->type == PRT_ATTR_BOOL) ? 1 : 0;
        size_t want_hi = d->type == PRT_ATTR_INTS ? PRT_ATTR_MAX_INTS : want_lo;
        if (a->n_ints < want_lo || a->n_ints > want_hi)
            return fail(ctx, PRT_ERR_PROGRAM, path,
                        "constant %zu (call '%s'): attribute %zu: %zu integers (this type takes %zu to %zu)", k, c->node,
                        i, a->n_ints, want_lo, want_hi);
        d->set = a->set;
        d->n = d->type == PRT_ATTR_INTS ? (int)a->n_ints : 0;
        for (size_t j = 0; j < a->n_ints; j++) d->i[j] = a->ints[j];
        d->f = a->f;
        if (d->type == PRT_ATTR_STRING && a->has_s) {
            if (!name_ok(a->s))
                return fail(ctx, PRT_ERR_PROGRAM, path, "constant %zu (call '%s'): attribute %zu: longer than %d bytes",
                            k, c->node, i, PRT_PROGRAM_MAX_NAME);
            d->s = a->s; /* copied by prt_program_add_call */
        }
    }
    int idx;
    PRT_CHECK(prt_program_add_call(ctx, p, (int)c->op, c->node, c->inputs, (int)c->n_data_in, (int)c->n_inputs,
                                   c->outputs, (int)c->n_outputs, attrs, (int)c->n_attrs, &idx));
    p->k[idx].call.phase = phase;
    return PRT_OK;
}

/* ---- the memory plan ---------------------------------------------------------- */

typedef struct span {
    int group; /* -1 persistent, else the bucket's buffer */
    size_t lo, hi;
    int reg;
} span;

static int cmp_span(const void *pa, const void *pb) {
    const span *a = pa, *b = pb;
    if (a->group != b->group) return (a->group > b->group) - (a->group < b->group);
    if (a->lo != b->lo) return (a->lo > b->lo) - (a->lo < b->lo);
    return (a->reg > b->reg) - (a->reg < b->reg);
}

/* Sums of sizes a file states: saturating, so a hostile file cannot wrap them. */
static void sat_add(size_t *acc, size_t v) {
    if (!prt_add_size(*acc, v, acc)) *acc = SIZE_MAX;
}

static bool is_call(prt_instr ins) {
    unsigned op = PRT_VM_RAW_OP(ins);
    return op == PRT_OP_CALL || op == PRT_OP_RECOMPUTE;
}

/* Every register's live interval, as the planner computes it (memory/plan.c):
 * inputs and outputs span the whole step; an input read only for its shape does
 * not keep its memory alive. */
static void liveness(prt_context *ctx, const prt_program *p, int *first, int *last, bool *is_out) {
    int end = p->n_code - 1;
    for (int r = 0; r < p->n_regs; r++) first[r] = last[r] = -1;
    for (int i = 0; i < p->n_outputs; i++) is_out[p->outputs[i]] = true;
    for (int i = 0; i < p->n_inputs; i++) {
        first[p->inputs[i]] = 0;
        last[p->inputs[i]] = end;
    }
    for (int pc = 0; pc < p->n_code; pc++) {
        if (!is_call(p->code[pc])) continue;
        const prt_call_desc *d = &p->k[PRT_VM_RAW_X(p->code[pc])].call;
        const prt_op_schema *s = prt_op_get(ctx->ops, p->ops[d->op].id);
        for (int j = 0; j < d->n_in; j++) {
            if (j < d->n_data_in && j < 32 && s && ((s->shape_only >> j) & 1u)) continue;
            int r = d->in[j];
            if (pc > last[r]) last[r] = pc;
        }
        for (int j = 0; j < d->n_out; j++) {
            int r = d->out[j];
            if (first[r] < 0) first[r] = pc;
            if (pc > last[r]) last[r] = pc;
        }
    }
    for (int r = 0; r < p->n_regs; r++) {
        if (is_out[r]) last[r] = end;
        if (first[r] < 0) first[r] = 0;
        if (last[r] < first[r]) last[r] = first[r];
    }
}

/* Whether a figure the file states agrees with the one the registers give. */
#define FIGURE(name, want)                                                                                        \
    do {                                                                                                         \
        if (plan->name != (want)) {                                                                              \
            st = fail(ctx, PRT_ERR_PROGRAM, path, "memory plan: " #name " is %zu, the program gives %zu",        \
                      (size_t)plan->name, (size_t)(want));                                                       \
            goto done;                                                                                           \
        }                                                                                                        \
    } while (0)

#define PLAN_FAIL(...)                                                                                            \
    do {                                                                                                         \
        st = fail(ctx, PRT_ERR_PROGRAM, path, __VA_ARGS__);                                                       \
        goto done;                                                                                               \
    } while (0)

/* The plan describes this very program: every register in the region its kind
 * needs, inside a buffer (or the persistent block) that is large enough and live
 * whenever the register is, buffers the size of what they hold, a workspace for
 * every call that needs one, no two live buffers or persistent tensors
 * overlapping, and the report figures what the registers add up to. */
static prt_status check_plan(prt_context *ctx, const char *path, prt_program *p) {
    prt_mem_plan *plan = p->plan;
    prt_status st = prt_mem_plan_validate(ctx, plan);
    if (st != PRT_OK) return prt_error_prefix(ctx, PRT_ERR_PROGRAM, "%s", path);
    int n = p->n_regs, nb = plan->n_bufs;
    size_t nr = (size_t)n + 1;
    size_t *rb = prt_calloc(ctx, nr, sizeof *rb);
    int *first = prt_calloc(ctx, nr, sizeof *first), *last = prt_calloc(ctx, nr, sizeof *last);
    bool *is_out = prt_calloc(ctx, nr, sizeof *is_out);
    int *ws_buf = prt_calloc(ctx, (size_t)p->n_k + 1, sizeof *ws_buf);
    bool *bucket_seen = prt_calloc(ctx, (size_t)plan->n_buckets + 1, sizeof *bucket_seen);
    span *spans = prt_calloc(ctx, nr, sizeof *spans);
    size_t *delta = prt_calloc(ctx, (size_t)p->n_code + 2, sizeof *delta); /* modular sums */
    plan->live = prt_calloc(ctx, (size_t)p->n_code + 1, sizeof *plan->live);
    if (!rb || !first || !last || !is_out || !ws_buf || !bucket_seen || !spans || !delta || !plan->live) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "%s: memory plan: out of memory", path);
        goto done;
    }
    /* regions by kind, and the figures the registers add up to */
    size_t param = 0, state = 0, grad = 0, input = 0, naive = 0, persistent_need = 0, ws_max = 0;
    for (int r = 0; r < n; r++) {
        const prt_reg *g = &p->regs[r];
        prt_mem_region want = PRT_MEM_NONE, got = plan->reg_region[r];
        switch (g->kind) {
        case PRT_REG_PARAM:
        case PRT_REG_STATE: want = PRT_MEM_PERSISTENT; break;
        case PRT_REG_INPUT: want = PRT_MEM_ARENA; break;
        case PRT_REG_ACT: want = got == PRT_MEM_GRAD ? PRT_MEM_GRAD : PRT_MEM_ARENA; break;
        default: break;
        }
        if (got != want)
            PLAN_FAIL("memory plan: register r%d '%s' (%s) is in the %s region, expected %s", r, g->name,
                      prt_reg_kind_name(g->kind), region_name(got), region_name(want));
        if (got == PRT_MEM_NONE) {
            if (plan->reg_buffer[r] != -1) PLAN_FAIL("memory plan: register r%d '%s' has no storage but buffer %d", r,
                                                     g->name, plan->reg_buffer[r]);
            continue;
        }
        /* the verifier has bounded every shape */
        PRT_CHECK_GOTO(prt_shape_nbytes(ctx, &g->shape, g->dtype, &rb[r]), st, done);
        if (g->kind == PRT_REG_PARAM) sat_add(&param, rb[r]);
        if (g->kind == PRT_REG_STATE) sat_add(&state, rb[r]);
        if (g->kind == PRT_REG_INPUT) sat_add(&input, rb[r]);
        if (got == PRT_MEM_GRAD) sat_add(&grad, rb[r]);
        sat_add(got == PRT_MEM_PERSISTENT ? &persistent_need : &naive, align_up(rb[r]));
    }
    /* buffers: exactly one role each */
    for (int k = 0; k < p->n_k; k++) ws_buf[k] = -1;
    size_t buf_sum = 0;
    for (int b = 0; b < nb; b++) {
        const prt_mem_buffer *x = &plan->bufs[b];
        int roles = (x->reg != -1) + (x->call != -1) + (x->bucket != -1);
        if (roles != 1)
            PLAN_FAIL("memory plan: buffer %d must hold exactly one register group, workspace or bucket "
                      "(reg %d, call %d, bucket %d)", b, x->reg, x->call, x->bucket);
        sat_add(&buf_sum, x->bytes);
        if (x->reg != -1) {
            int r = x->reg;
            if (r < 0 || r >= n || plan->reg_region[r] != PRT_MEM_ARENA || plan->reg_buffer[r] != b)
                PLAN_FAIL("memory plan: buffer %d names register %d, which is not an arena register placed in it", b,
                          r);
            if (x->bytes != align_up(rb[r]))
                PLAN_FAIL("memory plan: buffer %d has %zu bytes; register r%d '%s' needs %zu (%zu rounded up to %d)", b,
                          x->bytes, r, p->regs[r].name, align_up(rb[r]), rb[r], PRT_MEM_ALIGN);
        } else if (x->call != -1) {
            int k = x->call;
            if (k < 0 || k >= p->n_k || p->k[k].kind != PRT_CONST_CALL || ws_buf[k] != -1)
                PLAN_FAIL("memory plan: buffer %d is the workspace of constant %d, which is not a call with one "
                          "workspace", b, k);
            ws_buf[k] = b;
        } else {
            if (x->bucket < 0 || x->bucket >= plan->n_buckets || bucket_seen[x->bucket])
                PLAN_FAIL("memory plan: buffer %d is gradient bucket %d (%d buckets, each once)", b, x->bucket,
                          plan->n_buckets);
            bucket_seen[x->bucket] = true;
        }
    }
    for (int i = 0; i < plan->n_buckets; i++)
        if (!bucket_seen[i]) PLAN_FAIL("memory plan: gradient bucket %d has no buffer", i);
    /* registers: inside their buffer, covered by its lifetime */
    liveness(ctx, p, first, last, is_out);
    int n_spans = 0;
    for (int r = 0; r < n; r++) {
        const prt_reg *g = &p->regs[r];
        prt_mem_region rg = plan->reg_region[r];
        size_t off = plan->reg_offset[r], end;
        if (rg == PRT_MEM_NONE) continue;
        if (!prt_add_size(off, rb[r], &end)) end = SIZE_MAX;
        if (rg == PRT_MEM_PERSISTENT) {
            if (plan->reg_buffer[r] != -1)
                PLAN_FAIL("memory plan: register r%d '%s' is persistent but names arena buffer %d", r, g->name,
                          plan->reg_buffer[r]);
            if (off % PRT_MEM_ALIGN || end > plan->persistent_bytes)
                PLAN_FAIL("memory plan: register r%d '%s' at [%zu, %zu) is unaligned or outside the %zu-byte "
                          "persistent block", r, g->name, off, end, plan->persistent_bytes);
            spans[n_spans++] = (span){-1, off, end, r};
            continue;
        }
        int b = plan->reg_buffer[r];
        if (b < 0 || b >= nb)
            PLAN_FAIL("memory plan: register r%d '%s': buffer %d out of range (%d buffers)", r, g->name, b, nb);
        const prt_mem_buffer *x = &plan->bufs[b];
        bool bucket = x->bucket != -1;
        if (bucket != (rg == PRT_MEM_GRAD))
            PLAN_FAIL("memory plan: register r%d '%s' (%s region) is in buffer %d, which is %s", r, g->name,
                      region_name(rg), b, bucket ? "a gradient bucket" : "not a gradient bucket");
        if (off < x->offset || end > x->offset + x->bytes)
            PLAN_FAIL("memory plan: register r%d '%s' at [%zu, %zu) lies outside its buffer %d [%zu, %zu)", r,
                      g->name, off, end, b, x->offset, x->offset + x->bytes);
        if (x->first > first[r] || x->last < last[r])
            PLAN_FAIL("memory plan: register r%d '%s' is live over instructions %d..%d but its buffer %d only over "
                      "%d..%d", r, g->name, first[r], last[r], b, x->first, x->last);
        if (bucket) {
            if ((off - x->offset) % PRT_MEM_ALIGN)
                PLAN_FAIL("memory plan: gradient r%d '%s' at offset %zu is not %d-byte aligned", r, g->name, off,
                          PRT_MEM_ALIGN);
            spans[n_spans++] = (span){b, off, end, r};
        }
    }
    /* persistent tensors, and the gradients of one bucket, never overlap */
    qsort(spans, (size_t)n_spans, sizeof *spans, cmp_span);
    for (int i = 1; i < n_spans; i++) {
        const span *a = &spans[i - 1], *c = &spans[i];
        if (a->group == c->group && c->lo < a->hi)
            PLAN_FAIL("memory plan: registers r%d '%s' and r%d '%s' overlap ([%zu, %zu) and [%zu, %zu) in %s)", a->reg,
                      p->regs[a->reg].name, c->reg, p->regs[c->reg].name, a->lo, a->hi, c->lo, c->hi,
                      a->group < 0 ? "the persistent block" : "a gradient bucket");
        if (a->group == c->group && a->hi > c->hi) spans[i].hi = a->hi; /* keep the furthest end */
    }
    /* workspaces: where each call that needs one has it */
    for (int pc = 0; pc < p->n_code; pc++) {
        if (!is_call(p->code[pc])) continue;
        int k = (int)PRT_VM_RAW_X(p->code[pc]);
        size_t ws;
        PRT_CHECK_GOTO(prt_vm_call_workspace(ctx, p, k, &ws), st, done);
        const char *node = p->k[k].call.node;
        if (ws > ws_max) ws_max = ws;
        int b = ws_buf[k];
        if (ws == 0) {
            if (b != -1 || plan->ws_offset[k] != -1)
                PLAN_FAIL("memory plan: call '%s' (constant %d) needs no workspace but has one", node, k);
            continue;
        }
        if (b == -1 || plan->ws_offset[k] < 0)
            PLAN_FAIL("memory plan: call '%s' (constant %d) needs a %zu-byte workspace and has none", node, k, ws);
        const prt_mem_buffer *x = &plan->bufs[b];
        if ((uint64_t)plan->ws_offset[k] != x->offset || x->bytes != align_up(ws) || x->first > pc || x->last < pc)
            PLAN_FAIL("memory plan: the workspace of call '%s' (constant %d) at offset %lld is not its %zu-byte buffer "
                      "%d live at instruction %d", node, k, (long long)plan->ws_offset[k], align_up(ws), b, pc);
    }
    for (int k = 0; k < p->n_k; k++)
        if ((ws_buf[k] == -1) != (plan->ws_offset[k] == -1))
            PLAN_FAIL("memory plan: constant %d has workspace offset %lld and %s workspace buffer", k,
                      (long long)plan->ws_offset[k], ws_buf[k] == -1 ? "no" : "a");
    /* buckets hold exactly their gradients */
    for (int b = 0; b < nb; b++) {
        if (plan->bufs[b].bucket == -1) continue;
        size_t fill = 0;
        for (int r = 0; r < n; r++)
            if (plan->reg_region[r] == PRT_MEM_GRAD && plan->reg_buffer[r] == b) sat_add(&fill, align_up(rb[r]));
        if (fill != plan->bufs[b].bytes)
            PLAN_FAIL("memory plan: gradient bucket %d has %zu bytes; its gradients take %zu", plan->bufs[b].bucket,
                      plan->bufs[b].bytes, fill);
    }
    /* the live curve, and the figures */
    for (int b = 0; b < nb; b++) {
        delta[plan->bufs[b].first] += plan->bufs[b].bytes;
        delta[plan->bufs[b].last + 1] -= plan->bufs[b].bytes;
    }
    /* live buffers never overlap inside the arena (validated), so each true sum fits */
    size_t cur = 0;
    size_t lower = 0;
    plan->peak_pc = 0;
    for (int pc = 0; pc < p->n_code; pc++) {
        cur += delta[pc];
        plan->live[pc] = cur;
        if (plan->live[pc] > lower) lower = plan->live[pc], plan->peak_pc = pc;
    }
    sat_add(&naive, align_up(ws_max));
    FIGURE(param_bytes, param);
    FIGURE(grad_bytes, grad);
    FIGURE(input_bytes, input);
    FIGURE(workspace_bytes, ws_max);
    FIGURE(naive_bytes, naive);
    FIGURE(lower_bound_bytes, lower);
    size_t st_opt = plan->state_bytes;
    sat_add(&st_opt, plan->optimizer_bytes);
    if (st_opt != state)
        PLAN_FAIL("memory plan: state_bytes %zu and optimizer_bytes %zu do not add up to the state registers' %zu",
                  plan->state_bytes, plan->optimizer_bytes, state);
    if (plan->persistent_bytes > persistent_need || plan->arena_bytes > buf_sum)
        PLAN_FAIL("memory plan: %zu persistent and %zu arena bytes, more than the tensors need side by side (%zu and "
                  "%zu)", plan->persistent_bytes, plan->arena_bytes, persistent_need, buf_sum);
    size_t total = plan->persistent_bytes;
    sat_add(&total, plan->arena_bytes);
    FIGURE(total_bytes, total);
done:
    prt_free(ctx, rb, 0);
    prt_free(ctx, first, 0);
    prt_free(ctx, last, 0);
    prt_free(ctx, is_out, 0);
    prt_free(ctx, ws_buf, 0);
    prt_free(ctx, bucket_seen, 0);
    prt_free(ctx, spans, 0);
    prt_free(ctx, delta, 0);
    return st;
}

static prt_status load_plan(prt_context *ctx, const char *path, const Parrots__Prog__MemoryPlan *m, prt_program *p) {
    if (!m) return fail(ctx, PRT_ERR_PROGRAM, path, "the program has no memory plan");
    size_t n = (size_t)p->n_regs;
    if (m->n_reg_region != n || m->n_reg_offset != n || m->n_reg_buffer != n)
        return fail(ctx, PRT_ERR_PROGRAM, path,
                    "memory plan: %zu regions, %zu offsets and %zu buffer indices for %d registers", m->n_reg_region,
                    m->n_reg_offset, m->n_reg_buffer, p->n_regs);
    if (m->n_ws_offset != (size_t)p->n_k)
        return fail(ctx, PRT_ERR_PROGRAM, path, "memory plan: %zu workspace offsets for %d constants", m->n_ws_offset,
                    p->n_k);
    /* a buffer per register group, per call's workspace and per bucket at most */
    size_t max_bufs = 2 * n + (size_t)p->n_k;
    if (m->n_buffers > max_bufs || m->n_buckets > m->n_buffers)
        return fail(ctx, PRT_ERR_PROGRAM, path,
                    "memory plan: %zu buffers and %u buckets (a program of %d registers and %d constants has at most "
                    "%zu buffers)", m->n_buffers, m->n_buckets, p->n_regs, p->n_k, max_bufs);
    prt_mem_plan *plan = prt_calloc(ctx, 1, sizeof *plan);
    if (!plan) return prt_error(ctx, PRT_ERR_NOMEM, "%s: memory plan: out of memory", path);
    p->plan = plan; /* freed with the program from here on */
    plan->n_regs = p->n_regs;
    plan->n_k = p->n_k;
    plan->n_code = p->n_code;
    plan->reg_region = prt_calloc(ctx, n + 1, sizeof *plan->reg_region);
    plan->reg_offset = prt_calloc(ctx, n + 1, sizeof *plan->reg_offset);
    plan->reg_buffer = prt_calloc(ctx, n + 1, sizeof *plan->reg_buffer);
    plan->ws_offset = prt_calloc(ctx, (size_t)p->n_k + 1, sizeof *plan->ws_offset);
    plan->bufs = prt_calloc(ctx, m->n_buffers + 1, sizeof *plan->bufs);
    if (!plan->reg_region || !plan->reg_offset || !plan->reg_buffer || !plan->ws_offset || !plan->bufs)
        return prt_error(ctx, PRT_ERR_NOMEM, "%s: memory plan: out of memory", path);
    for (size_t r = 0; r < n; r++) {
        if (!region_of(m->reg_region[r], &plan->reg_region[r]))
            return fail(ctx, PRT_ERR_PROGRAM, path, "memory plan: register r%zu: unknown region %d", r,
                        (int)m->reg_region[r]);
        plan->reg_offset[r] = m->reg_offset[r];
        plan->reg_buffer[r] = m->reg_buffer[r];
    }
    for (int k = 0; k < p->n_k; k++) plan->ws_offset[k] = m->ws_offset[k];
    plan->n_bufs = (int)m->n_buffers;
    plan->n_buckets = (int)m->n_buckets;
    for (size_t b = 0; b < m->n_buffers; b++) {
        const Parrots__Prog__Buffer *x = m->buffers[b];
        plan->bufs[b] = (prt_mem_buffer){x->bytes, x->first, x->last, x->offset, x->reg, x->call, x->bucket};
    }
    plan->param_bytes = m->param_bytes;
    plan->state_bytes = m->state_bytes;
    plan->optimizer_bytes = m->optimizer_bytes;
    plan->persistent_bytes = m->persistent_bytes;
    plan->grad_bytes = m->grad_bytes;
    plan->input_bytes = m->input_bytes;
    plan->workspace_bytes = m->workspace_bytes;
    plan->naive_bytes = m->naive_bytes;
    plan->lower_bound_bytes = m->lower_bound_bytes;
    plan->arena_bytes = m->arena_bytes;
    plan->total_bytes = m->total_bytes;
    plan->n_inplace = m->n_inplace;
    plan->n_views = m->n_views;
    plan->plan_seconds = m->plan_seconds;
    bool found = false;
    for (int s = 0; s < PRT_MEM_STRATEGY_COUNT && !found; s++)
        if (!strcmp(m->strategy, prt_mem_strategy_name((prt_mem_strategy)s))) plan->strategy = s, found = true;
    if (!found) return fail(ctx, PRT_ERR_PROGRAM, path, "memory plan: unknown strategy '%.64s'", m->strategy);
    for (size_t i = 0; i < m->n_strategy_bytes; i++) {
        const Parrots__Prog__StrategyBytes *sb = m->strategy_bytes[i];
        found = false;
        for (int s = 0; s < PRT_MEM_STRATEGY_COUNT && !found; s++)
            if (!strcmp(sb->strategy, prt_mem_strategy_name((prt_mem_strategy)s)))
                plan->strategy_bytes[s] = sb->bytes, found = true;
        if (!found) return fail(ctx, PRT_ERR_PROGRAM, path, "memory plan: unknown strategy '%.64s'", sb->strategy);
    }
    return check_plan(ctx, path, p);
}

/* ---- the whole program ---------------------------------------------------------- */

static prt_status build(prt_context *ctx, const char *path, uint32_t version, const Parrots__Prog__Program *m,
                        prt_program **out) {
    *out = NULL;
    if (m->format_version != version)
        return fail(ctx, PRT_ERR_PARSE, path, "the payload says format version %u, the header %u", m->format_version,
                    version);
    if (!name_ok(m->name))
        return fail(ctx, PRT_ERR_PROGRAM, path, "the program name is longer than %d bytes", PRT_PROGRAM_MAX_NAME);
    if (m->batch < 1)
        return fail(ctx, PRT_ERR_PROGRAM, path, "batch %lld is not positive", (long long)m->batch);
    /* counts against the limits before anything is allocated for them */
    struct {
        const char *what;
        size_t n, max;
    } counts[] = {
        {"instructions", m->n_code, PRT_PROGRAM_MAX_CODE},
        {"constants", m->n_constants, PRT_PROGRAM_MAX_CONSTANTS},
        {"registers", m->n_registers, PRT_PROGRAM_MAX_REGISTERS},
        {"op-table entries", m->n_ops, PRT_PROGRAM_MAX_OPS},
        {"inputs", m->n_inputs, PRT_PROGRAM_MAX_OPERANDS},
        {"outputs", m->n_outputs, PRT_PROGRAM_MAX_OPERANDS},
    };
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
        if (counts[i].n > counts[i].max)
            return fail(ctx, PRT_ERR_LIMIT, path, "%zu %s exceed the limit of %zu", counts[i].n, counts[i].what,
                        counts[i].max);
    prt_program *p = NULL;
    prt_status st = PRT_OK;
    PRT_CHECK(prt_program_new(ctx, m->name, m->batch, &p));
    PRT_CHECK_GOTO(load_ops(ctx, path, m, p), st, fail);
    PRT_CHECK_GOTO(load_regs(ctx, path, m, p), st, fail);
    for (size_t k = 0; k < m->n_constants; k++) {
        const Parrots__Prog__Constant *c = m->constants[k];
        if (c->value_case == PARROTS__PROG__CONSTANT__VALUE_INT_VALUE) {
            PRT_CHECK_GOTO(prt_program_add_int(ctx, p, c->int_value, NULL), st, fail);
        } else if (c->value_case == PARROTS__PROG__CONSTANT__VALUE_CALL) {
            PRT_CHECK_GOTO(load_call(ctx, path, k, c->call, p), st, fail);
        } else {
            st = fail(ctx, PRT_ERR_PROGRAM, path, "constant %zu has no value", k);
            goto fail;
        }
    }
    if (m->n_code > 0) {
        p->code = prt_calloc(ctx, m->n_code, sizeof *p->code);
        if (!p->code) {
            st = prt_error(ctx, PRT_ERR_NOMEM, "%s: out of memory", path);
            goto fail;
        }
        memcpy(p->code, m->code, m->n_code * sizeof *p->code);
        p->n_code = p->cap_code = (int)m->n_code;
    }
    PRT_CHECK_GOTO(prt_program_set_io(ctx, p, m->inputs, (int)m->n_inputs, m->outputs, (int)m->n_outputs), st, fail);
    /* the verifier is the gatekeeper for everything the interpreter will trust */
    st = prt_vm_verify(ctx, p);
    if (st != PRT_OK) {
        prt_error_prefix(ctx, st, "%s", path);
        goto fail;
    }
    if ((bool)m->training != prt_program_is_training(p)) {
        st = fail(ctx, PRT_ERR_PROGRAM, path, "the file says %s, but %s", m->training ? "a training step" : "inference",
                  m->training ? "every call is in the forward phase" : "some call is in backward or update");
        goto fail;
    }
    PRT_CHECK_GOTO(load_plan(ctx, path, m->plan, p), st, fail);
    *out = p;
    return PRT_OK;
fail:
    prt_program_destroy(ctx, p);
    return st;
}

prt_status prt_program_load_buffer(prt_context *ctx, const char *name, const void *bytes, size_t size,
                                   prt_program **out) {
    *out = NULL;
    const unsigned char *img = bytes;
    if (size > PRT_PROGRAM_MAX_FILE_BYTES)
        return fail(ctx, PRT_ERR_LIMIT, name, "%zu bytes, more than the limit of %zu for a program file", size,
                    PRT_PROGRAM_MAX_FILE_BYTES);
    if (size < PRT_PROGRAM_HEADER_BYTES)
        return fail(ctx, PRT_ERR_PARSE, name, "truncated: %zu bytes, a program file has at least %d (the header)",
                    size, PRT_PROGRAM_HEADER_BYTES);
    if (memcmp(img, magic, 8)) {
        char m[40];
        size_t o = 0;
        for (int i = 0; i < 8; i++) {
            unsigned c = img[i];
            o += (size_t)snprintf(m + o, sizeof m - o, c >= 0x20 && c < 0x7f && c != '\\' ? "%c" : "\\x%02x", c);
        }
        return fail(ctx, PRT_ERR_PARSE, name, "offset 0: not a Parrots program file (magic \"%s\", expected "
                    "\"PRTPROG\\x00\")", m);
    }
    uint32_t version = prt_le_get_u32(img + 8);
    if (version > PRT_PROGRAM_FORMAT_VERSION)
        return fail(ctx, PRT_ERR_PARSE, name,
                    "offset 8: program format version %u is newer than this Parrots reads (version %d)", version,
                    PRT_PROGRAM_FORMAT_VERSION);
    if (version < 1)
        return fail(ctx, PRT_ERR_PARSE, name, "offset 8: program format version %u is not supported (this Parrots "
                    "reads version %d)", version, PRT_PROGRAM_FORMAT_VERSION);
    uint64_t len = prt_le_get_u64(img + 16);
    size_t avail = size - PRT_PROGRAM_HEADER_BYTES;
    if (len > avail)
        return fail(ctx, PRT_ERR_PARSE, name, "truncated: the header promises a %llu-byte payload, %zu bytes follow",
                    (unsigned long long)len, avail);
    if (len < avail)
        return fail(ctx, PRT_ERR_PARSE, name, "offset %llu: %llu trailing bytes after the payload",
                    (unsigned long long)len + PRT_PROGRAM_HEADER_BYTES, (unsigned long long)(avail - len));
    const unsigned char *payload = img + PRT_PROGRAM_HEADER_BYTES;
    uint32_t stored = prt_le_get_u32(img + 12), computed = crc_of(payload, (size_t)len);
    if (stored != computed)
        return fail(ctx, PRT_ERR_PARSE, name, "offset 12: CRC mismatch (stored 0x%08x, computed 0x%08x): the file is "
                    "damaged", stored, computed);
    budget bud = {ctx, (size_t)len * DECODE_FACTOR + DECODE_SLACK, false};
    ProtobufCAllocator al = {budget_alloc, budget_free, &bud};
    Parrots__Prog__Program *m = parrots__prog__program__unpack(&al, (size_t)len, payload);
    if (!m) {
        if (bud.exceeded)
            return fail(ctx, PRT_ERR_LIMIT, name, "decoding the %llu-byte payload needs more than %zu bytes of memory",
                        (unsigned long long)len, (size_t)len * DECODE_FACTOR + DECODE_SLACK);
        return fail(ctx, PRT_ERR_PARSE, name, "the payload is not a valid Program message (protobuf-c cannot decode "
                    "it)");
    }
    prt_status st = build(ctx, name, version, m, out);
    parrots__prog__program__free_unpacked(m, &al);
    return st;
}

prt_status prt_program_load(prt_context *ctx, const char *path, prt_program **out) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return prt_error(ctx, PRT_ERR_IO, "%s: cannot open the program file: %s", path, strerror(errno));
    struct stat sb;
    prt_status st = PRT_OK;
    unsigned char *img = NULL;
    size_t size = 0;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = prt_error(ctx, PRT_ERR_IO, "%s: not a regular file", path);
        goto done;
    }
    /* the limit before reading anything */
    if ((uint64_t)sb.st_size > PRT_PROGRAM_MAX_FILE_BYTES) {
        st = fail(ctx, PRT_ERR_LIMIT, path, "%llu bytes, more than the limit of %zu for a program file",
                  (unsigned long long)sb.st_size, PRT_PROGRAM_MAX_FILE_BYTES);
        goto done;
    }
    size = (size_t)sb.st_size;
    img = prt_malloc(ctx, size ? size : 1);
    if (!img) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    if (fread(img, 1, size, f) != size || fgetc(f) != EOF) {
        st = prt_error(ctx, PRT_ERR_IO, "%s: the file changed size while being read", path);
        goto done;
    }
    st = prt_program_load_buffer(ctx, path, img, size, out);
done:
    fclose(f);
    prt_free(ctx, img, 0);
    return st;
}

bool prt_program_file_sniff(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    unsigned char b[8];
    bool yes = fread(b, 1, 8, f) == 8 && !memcmp(b, magic, 8);
    fclose(f);
    return yes;
}

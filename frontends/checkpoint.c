/* Training checkpoints (docs/checkpoints.md): the graph hash, the atomic
 * writer with its keep-K pruning, and the reader, which trusts nothing in the
 * file until it has checked it — size before reading, header and CRC before
 * unpacking, every tensor against the VM's registers before copying. */
#define _POSIX_C_SOURCE 200809L
#include "frontends/file_util.h"
#include "frontends/checkpoint_api.h"

#include "checkpoint.pb-c.h"
#include "frontends/crc32c.h"
#include "vm/vm_impl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef Parrots__Ckpt__Checkpoint Ckpt;
typedef Parrots__Ckpt__Tensor CkTensor;

static const unsigned char magic[8] = {'P', 'R', 'T', 'C', 'K', 'P', 'T', '\0'};

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HOST_LE 1
#else
#define HOST_LE 0
#endif

struct prt_ckpt {
    char *path;
    Ckpt *msg;                 /* unpacked with `alloc` */
    ProtobufCAllocator alloc;
    prt_ckpt_state st;
};



/* ---- the graph hash ---------------------------------------------------------- */

/* FNV-1a 64 over a canonical encoding: integers as 8 little-endian bytes,
 * strings as their length then their bytes, doubles as their IEEE bits. */
typedef struct hasher {
    uint64_t h;
} hasher;

static void h_bytes(hasher *s, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) s->h = (s->h ^ b[i]) * 0x100000001b3ull;
}
static void h_u64(hasher *s, uint64_t v) {
    unsigned char b[8];
    prt_le_put_u64(b, v);
    h_bytes(s, b, 8);
}
static void h_str(hasher *s, const char *str) {
    size_t n = str ? strlen(str) : 0;
    h_u64(s, n);
    h_bytes(s, str, n);
}
static void h_f64(hasher *s, double d) {
    uint64_t v;
    memcpy(&v, &d, sizeof v);
    h_u64(s, v);
}
static void h_shape(hasher *s, const prt_shape *sh) {
    h_u64(s, (uint64_t)sh->ndim);
    for (int i = 0; i < sh->ndim; i++) h_u64(s, (uint64_t)sh->d[i]);
}

/* The value a reader of v sees as meaning: an output of a recompute copy counts
 * as the same output of the node it copies. */
static int canonical_value(const prt_graph *g, int v) {
    for (int guard = 0; guard < g->n_nodes && v >= 0; guard++) {
        int prod = g->values[v].producer;
        if (prod < 0 || prod >= g->n_nodes) break;
        const prt_node *n = &g->nodes[prod];
        int orig = n->recompute_of;
        if (orig < 0 || orig >= g->n_nodes) break;
        int j = 0;
        while (j < n->n_out && n->out[j] != v) j++;
        if (j == n->n_out || j >= g->nodes[orig].n_out) break;
        v = g->nodes[orig].out[j];
    }
    return v;
}

prt_status prt_ckpt_graph_hash(const prt_graph *g, uint64_t *out) {
    prt_context *ctx = g->ctx;
    hasher s = {0xcbf29ce484222325ull};
    h_str(&s, "parrots-training-graph-1");
    h_u64(&s, (uint64_t)g->n_inputs);
    for (int i = 0; i < g->n_inputs; i++) {
        const prt_value *v = &g->values[g->inputs[i]];
        h_str(&s, v->name);
        h_str(&s, prt_dtype_name(v->dtype));
        h_shape(&s, &v->shape);
    }
    for (int n = 0; n < g->n_nodes; n++) {
        const prt_node *nd = &g->nodes[n];
        if (nd->recompute_of >= 0) continue;
        const prt_op_schema *sc = prt_op_get(ctx->ops, nd->op);
        if (!sc) return prt_error(ctx, PRT_ERR_INTERNAL, "graph hash: node '%s' has no op", nd->name);
        h_str(&s, "node");
        h_str(&s, sc->name);
        h_str(&s, nd->name);
        h_u64(&s, (uint64_t)sc->n_attrs);
        for (int a = 0; a < sc->n_attrs; a++) {
            const prt_attr *at = &nd->attrs[a];
            h_str(&s, sc->attrs[a].name);
            h_u64(&s, (uint64_t)at->type);
            switch (at->type) {
            case PRT_ATTR_FLOAT: h_f64(&s, at->f); break;
            case PRT_ATTR_STRING: h_str(&s, at->s); break;
            case PRT_ATTR_INTS:
                h_u64(&s, (uint64_t)at->n);
                for (int k = 0; k < at->n && k < PRT_ATTR_MAX_INTS; k++) h_u64(&s, (uint64_t)at->i[k]);
                break;
            default: h_u64(&s, (uint64_t)at->i[0]); break;
            }
        }
        h_u64(&s, (uint64_t)nd->n_data_in);
        h_u64(&s, (uint64_t)nd->n_in);
        for (int k = 0; k < nd->n_in; k++) h_str(&s, g->values[canonical_value(g, nd->in[k])].name);
        h_u64(&s, (uint64_t)nd->n_out);
        for (int k = 0; k < nd->n_out; k++) {
            const prt_value *v = &g->values[nd->out[k]];
            h_str(&s, v->name);
            h_u64(&s, (uint64_t)v->kind);
            h_str(&s, prt_dtype_name(v->dtype));
            h_shape(&s, &v->shape);
        }
    }
    for (int i = 0; i < g->n_values; i++) {
        const prt_value *v = &g->values[i];
        if (v->kind != PRT_VAL_PARAM && v->kind != PRT_VAL_STATE) continue;
        h_str(&s, "persistent");
        h_str(&s, v->name);
        h_u64(&s, (uint64_t)v->kind);
        h_str(&s, prt_dtype_name(v->dtype));
        h_shape(&s, &v->shape);
    }
    *out = s.h;
    return PRT_OK;
}

/* ---- saving ------------------------------------------------------------------ */

void prt_ckpt_save_defaults(prt_ckpt_save_options *o) { *o = (prt_ckpt_save_options){.keep = 3}; }

/* Streams the packed message to the temporary file, CRC as it goes. */
typedef struct file_sink {
    ProtobufCBuffer base;
    FILE *f;
    uint32_t crc;
    size_t written, half;
    bool failed, hooked;
    const prt_ckpt_save_options *o;
    int64_t step;
} file_sink;

static void sink_append(ProtobufCBuffer *b, size_t len, const uint8_t *data) {
    file_sink *s = (file_sink *)b;
    if (s->failed || !len) return;
    if (fwrite(data, 1, len, s->f) != len) {
        s->failed = true;
        return;
    }
    s->crc = prt_crc32c_update(s->crc, data, len);
    s->written += len;
    if (!s->hooked && s->written >= s->half && s->o->test_hook) {
        s->hooked = true;
        fflush(s->f);
        s->o->test_hook(s->o->hook_user, "mid_write", s->step);
    }
}

/* "ckpt-<digits>.prtc" with at most 18 digits: *step gets the number. */
static bool ckpt_name(const char *name, int64_t *step) {
    if (strncmp(name, "ckpt-", 5)) return false;
    const char *p = name + 5;
    int64_t v = 0;
    int n = 0;
    while (*p >= '0' && *p <= '9') {
        if (++n > 18) return false;
        v = v * 10 + (*p++ - '0');
    }
    if (n == 0 || strcmp(p, ".prtc")) return false;
    *step = v;
    return true;
}

typedef struct found {
    int64_t step;
    char *name;
} found;

static int by_step_desc(const void *a, const void *b) {
    const found *x = a, *y = b;
    return x->step < y->step ? 1 : x->step > y->step ? -1 : strcmp(x->name, y->name);
}

/* Checkpoint names in dir, newest first. Caller frees each name and the array. */
static prt_status list_ckpts(prt_context *ctx, const char *dir, found **out, int *n_out) {
    *out = NULL;
    *n_out = 0;
    DIR *d = opendir(dir);
    if (!d)
        return prt_error(ctx, errno == ENOENT ? PRT_ERR_NOT_FOUND : PRT_ERR_IO, "%s: cannot open the directory: %s",
                         dir, strerror(errno));
    found *f = NULL;
    int n = 0, cap = 0;
    prt_status st = PRT_OK;
    struct dirent *e;
    while ((e = readdir(d))) {
        int64_t step;
        if (!ckpt_name(e->d_name, &step)) continue;
        if (n == cap) PRT_CHECK_GOTO(prt_grow(ctx, (void **)&f, &cap, n + 1, sizeof *f), st, fail);
        f[n].step = step;
        f[n].name = prt_strdup(ctx, e->d_name);
        if (!f[n].name) {
            st = prt_error(ctx, PRT_ERR_NOMEM, "out of memory");
            goto fail;
        }
        n++;
    }
    closedir(d);
    if (n > 1) qsort(f, (size_t)n, sizeof *f, by_step_desc);
    *out = f;
    *n_out = n;
    return PRT_OK;
fail:
    closedir(d);
    for (int i = 0; i < n; i++) prt_free(ctx, f[i].name, 0);
    prt_free(ctx, f, 0);
    return st;
}

static void free_found(prt_context *ctx, found *f, int n) {
    for (int i = 0; i < n; i++) prt_free(ctx, f[i].name, 0);
    prt_free(ctx, f, 0);
}

static char *join(prt_context *ctx, const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = prt_malloc(ctx, n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Deletes all but the newest `keep` checkpoints; the newest is durable already. */
static prt_status prune(prt_context *ctx, const char *dir, int keep) {
    found *f;
    int n;
    PRT_CHECK(list_ckpts(ctx, dir, &f, &n));
    prt_status st = PRT_OK;
    for (int i = keep; i < n; i++) {
        char *p = join(ctx, dir, f[i].name);
        if (!p) {
            st = prt_error(ctx, PRT_ERR_NOMEM, "out of memory");
            break;
        }
        if (unlink(p) != 0 && errno != ENOENT)
            st = prt_error(ctx, PRT_ERR_IO, "%s: cannot delete an old checkpoint: %s", p, strerror(errno));
        prt_free(ctx, p, 0);
        if (st != PRT_OK) break;
    }
    free_found(ctx, f, n);
    if (st == PRT_OK && n > keep) prt_fsync_dir(dir);
    return st;
}

static bool persistent_reg(const prt_reg *r) { return r->kind == PRT_REG_PARAM || r->kind == PRT_REG_STATE; }

prt_status prt_ckpt_save(prt_context *ctx, const char *dir, uint64_t graph_hash, const prt_ckpt_state *st,
                         prt_vm *vm, const prt_ckpt_save_options *opts, char **path_out) {
    if (path_out) *path_out = NULL;
    prt_ckpt_save_options o;
    if (opts) o = *opts;
    else prt_ckpt_save_defaults(&o);
    if (!dir || !*dir || !st || !vm || o.keep < 1 || o.n_meta < 0 || o.n_meta > PRT_CKPT_MAX_META ||
        (o.n_meta && !o.meta) || st->global_step < 0)
        return prt_error(ctx, PRT_ERR_USAGE, "prt_ckpt_save: bad arguments");
    if (!HOST_LE)
        return prt_error(ctx, PRT_ERR_UNSUPPORTED, "%s: checkpoints are written on little-endian hosts only", dir);
    const prt_program *p = vm->p;
    prt_status s = PRT_OK;
    CkTensor *tens = NULL, **tptr = NULL;
    Parrots__Ckpt__MetaEntry *meta = NULL, **mptr = NULL;
    int64_t *dims = NULL;
    char *tmp = NULL, *final = NULL;
    FILE *f = NULL;
    int n = 0;
    for (int r = 0; r < p->n_regs; r++) n += persistent_reg(&p->regs[r]);
    tens = prt_calloc(ctx, n ? (size_t)n : 1, sizeof *tens);
    tptr = prt_calloc(ctx, n ? (size_t)n : 1, sizeof *tptr);
    dims = prt_calloc(ctx, n ? (size_t)n * PRT_MAX_DIMS : 1, sizeof *dims);
    meta = prt_calloc(ctx, o.n_meta ? (size_t)o.n_meta : 1, sizeof *meta);
    mptr = prt_calloc(ctx, o.n_meta ? (size_t)o.n_meta : 1, sizeof *mptr);
    if (!tens || !tptr || !dims || !meta || !mptr) {
        s = prt_error(ctx, PRT_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* a GPU's state through its host mirror */
    PRT_CHECK_GOTO(prt_vm_pull_state(vm), s, done);
    int k = 0;
    for (int r = 0; r < p->n_regs; r++) {
        const prt_reg *g = &p->regs[r];
        if (!persistent_reg(g)) continue;
        const prt_tensor *t = prt_vm_state_reg(vm, r);
        size_t nbytes;
        PRT_CHECK_GOTO(prt_shape_nbytes(ctx, &t->shape, t->dtype, &nbytes), s, done);
        if (!t || !t->data || !prt_tensor_is_contiguous(t)) {
            s = prt_error(ctx, PRT_ERR_INTERNAL, "%s: tensor '%s' has no contiguous host storage", dir, g->name);
            goto done;
        }
        CkTensor *c = &tens[k];
        parrots__ckpt__tensor__init(c);
        c->name = g->name;
        c->kind = g->kind == PRT_REG_PARAM ? PARROTS__CKPT__TENSOR__KIND__PARAM : PARROTS__CKPT__TENSOR__KIND__STATE;
        c->dtype = (char *)prt_dtype_name(t->dtype);
        c->n_shape = (size_t)t->shape.ndim;
        c->shape = dims + (size_t)k * PRT_MAX_DIMS;
        for (int d = 0; d < t->shape.ndim; d++) c->shape[d] = t->shape.d[d];
        c->data.len = nbytes;
        c->data.data = t->data;
        tptr[k++] = c;
    }
    for (int i = 0; i < o.n_meta; i++) {
        parrots__ckpt__meta_entry__init(&meta[i]);
        meta[i].key = (char *)(o.meta[i].key ? o.meta[i].key : "");
        meta[i].value = (char *)(o.meta[i].value ? o.meta[i].value : "");
        mptr[i] = &meta[i];
    }
    Parrots__Ckpt__Progress prog = PARROTS__CKPT__PROGRESS__INIT;
    prog.global_step = st->global_step;
    prog.epoch = st->epoch;
    prog.step = st->step;
    prog.steps_per_epoch = st->steps_per_epoch;
    const prt_solver *sv = &st->solver;
    Parrots__Ckpt__Solver sol = PARROTS__CKPT__SOLVER__INIT;
    sol.optimizer = (char *)prt_optimizer_name(sv->optimizer);
    sol.lr = sv->lr;
    sol.momentum = sv->momentum;
    sol.nesterov = sv->nesterov;
    sol.weight_decay = sv->weight_decay;
    sol.beta1 = sv->beta1;
    sol.beta2 = sv->beta2;
    sol.eps = sv->eps;
    sol.rms_decay = sv->rms_decay;
    sol.schedule = (char *)prt_schedule_name(sv->schedule);
    sol.warmup_epochs = sv->warmup_epochs;
    sol.step_epochs = sv->step_epochs;
    sol.gamma = sv->gamma;
    sol.min_lr = sv->min_lr;
    sol.label_smoothing = sv->label_smoothing;
    sol.epochs = sv->epochs;
    sol.batch = sv->batch;
    Parrots__Ckpt__DataOrder data = PARROTS__CKPT__DATA_ORDER__INIT;
    data.shuffle_seed = st->shuffle_seed;
    data.epoch = st->epoch - 1;
    data.batch = st->step;
    data.dataset_size = st->dataset_size;
    data.batch_size = st->batch_size;
    data.shuffle = st->shuffle;
    Parrots__Ckpt__Rng rng = PARROTS__CKPT__RNG__INIT;
    rng.seed = st->seed;
    rng.vm_step = (uint64_t)st->global_step;
    Ckpt msg = PARROTS__CKPT__CHECKPOINT__INIT;
    msg.format_version = PRT_CKPT_VERSION;
    msg.graph_hash = graph_hash;
    msg.network = (char *)(o.network ? o.network : "");
    msg.n_tensors = (size_t)n;
    msg.tensors = tptr;
    msg.progress = &prog;
    msg.solver = &sol;
    msg.data = &data;
    msg.rng = &rng;
    msg.n_metadata = (size_t)o.n_meta;
    msg.metadata = mptr;

    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        s = prt_error(ctx, PRT_ERR_IO, "%s: cannot create the checkpoint directory: %s", dir, strerror(errno));
        goto done;
    }
    char fname[64];
    snprintf(fname, sizeof fname, "ckpt-%012" PRId64 ".prtc", st->global_step);
    tmp = join(ctx, dir, ".ckpt-XXXXXX");
    final = join(ctx, dir, fname);
    if (!tmp || !final) {
        s = prt_error(ctx, PRT_ERR_NOMEM, "out of memory");
        goto done;
    }
    int fd = mkstemp(tmp);
    if (fd < 0) {
        s = prt_error(ctx, PRT_ERR_IO, "%s: cannot create a temporary file in the checkpoint directory: %s", dir,
                      strerror(errno));
        prt_free(ctx, tmp, 0);
        tmp = NULL;
        goto done;
    }
    (void)fchmod(fd, 0644);
    f = fdopen(fd, "wb");
    if (!f) {
        close(fd);
        goto io_fail;
    }
    size_t payload = protobuf_c_message_get_packed_size(&msg.base);
    unsigned char hdr[PRT_CKPT_HEADER_SIZE] = {0};
    if (fwrite(hdr, 1, sizeof hdr, f) != sizeof hdr) goto io_fail;
    file_sink sink = {.base = {.append = sink_append}, .f = f, .half = payload / 2, .o = &o,
                      .step = st->global_step};
    size_t packed = protobuf_c_message_pack_to_buffer(&msg.base, &sink.base);
    if (sink.failed) goto io_fail;
    if (packed != payload || sink.written != payload) {
        s = prt_error(ctx, PRT_ERR_INTERNAL, "%s: protobuf-c packed %zu bytes, not the %zu it announced", tmp, packed,
                      payload);
        goto done;
    }
    memcpy(hdr, magic, 8);
    prt_le_put_u32(hdr + 8, PRT_CKPT_VERSION);
    prt_le_put_u32(hdr + 12, 0);
    prt_le_put_u64(hdr + 16, (uint64_t)payload);
    prt_le_put_u32(hdr + 24, sink.crc);
    prt_le_put_u32(hdr + 28, 0);
    if (fflush(f) != 0 || fseek(f, 0, SEEK_SET) != 0 || fwrite(hdr, 1, sizeof hdr, f) != sizeof hdr ||
        fflush(f) != 0 || fsync(fileno(f)) != 0)
        goto io_fail;
    int rc = fclose(f);
    f = NULL;
    if (rc != 0) goto io_fail;
    if (o.test_hook) o.test_hook(o.hook_user, "before_rename", st->global_step);
    if (rename(tmp, final) != 0) {
        s = prt_error(ctx, PRT_ERR_IO, "%s: cannot rename the temporary file into place: %s", final, strerror(errno));
        goto done;
    }
    prt_free(ctx, tmp, 0);
    tmp = NULL;
    prt_fsync_dir(dir);
    if (o.test_hook) o.test_hook(o.hook_user, "after_rename", st->global_step);
    PRT_CHECK_GOTO(prune(ctx, dir, o.keep), s, done);
    if (path_out) {
        *path_out = final;
        final = NULL;
    }
    goto done;
io_fail:
    s = prt_error(ctx, PRT_ERR_IO, "%s: cannot write the checkpoint: %s", final ? final : dir, strerror(errno));
done:
    if (f) fclose(f);
    if (tmp) {
        unlink(tmp);
        prt_free(ctx, tmp, 0);
    }
    prt_free(ctx, final, 0);
    prt_free(ctx, tens, 0);
    prt_free(ctx, tptr, 0);
    prt_free(ctx, dims, 0);
    prt_free(ctx, meta, 0);
    prt_free(ctx, mptr, 0);
    return s;
}

/* ---- reading ----------------------------------------------------------------- */

void prt_ckpt_destroy(prt_context *ctx, prt_ckpt *ck) {
    if (!ck) return;
    if (ck->msg) parrots__ckpt__checkpoint__free_unpacked(ck->msg, &ck->alloc);
    prt_free(ctx, ck->path, 0);
    prt_free(ctx, ck, sizeof *ck);
}

/* A printable copy of at most 8 bytes: "PRTW\x01..." */
static const char *show_bytes(const unsigned char *b, size_t n, char *buf, size_t cap) {
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && o + 5 < cap; i++) {
        unsigned c = b[i];
        o += (size_t)snprintf(buf + o, cap - o, c >= 0x20 && c < 0x7f && c != '\\' && c != '"' ? "%c" : "\\x%02x", c);
    }
    return buf;
}

static const char *dims_str(const int64_t *d, size_t n, char *buf, size_t cap) {
    size_t o = (size_t)snprintf(buf, cap, "[");
    for (size_t i = 0; i < n && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%" PRId64, i ? ", " : "", d[i]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
    return buf;
}

static const char *kind_str(int k) {
    return k == PARROTS__CKPT__TENSOR__KIND__PARAM ? "parameter" : k == PARROTS__CKPT__TENSOR__KIND__STATE ? "state"
                                                                                                           : "?";
}

/* One tensor on its own: a known kind and dtype, at most PRT_MAX_DIMS positive
 * dims whose product (overflow-checked) stays under PRT_MAX_ELEMS, and exactly
 * that many bytes of data. */
static prt_status check_tensor(prt_context *ctx, const char *path, size_t i, const CkTensor *t) {
    char b[400];
    if (!t->name || !*t->name) return prt_error(ctx, PRT_ERR_PARSE, "%s: tensor %zu has no name", path, i);
    if (t->kind != PARROTS__CKPT__TENSOR__KIND__PARAM && t->kind != PARROTS__CKPT__TENSOR__KIND__STATE)
        return prt_error(ctx, PRT_ERR_PARSE, "%s: tensor '%s': unknown kind %d (expected parameter or state)", path,
                         t->name, (int)t->kind);
    prt_dtype dt;
    if (!t->dtype || !prt_dtype_from_name(t->dtype, &dt))
        return prt_error(ctx, PRT_ERR_PARSE, "%s: tensor '%s': unknown dtype '%.32s'", path, t->name,
                         t->dtype ? t->dtype : "");
    if (t->n_shape > PRT_MAX_DIMS)
        return prt_error(ctx, PRT_ERR_PARSE, "%s: tensor '%s': %zu dimensions exceed the limit of %d", path, t->name,
                         t->n_shape, PRT_MAX_DIMS);
    int64_t numel = 1;
    bool over = false;
    for (size_t d = 0; d < t->n_shape; d++) {
        if (t->shape[d] <= 0)
            return prt_error(ctx, PRT_ERR_PARSE, "%s: tensor '%s': dimension %zu is %" PRId64
                             " (dimensions must be positive)", path, t->name, d, t->shape[d]);
        if (!over && (!prt_mul_i64(numel, t->shape[d], &numel) || numel > PRT_MAX_ELEMS)) over = true;
    }
    if (over)
        return prt_error(ctx, PRT_ERR_PARSE, "%s: tensor '%s': the shape %s has more than 2^40 elements", path,
                         t->name, dims_str(t->shape, t->n_shape, b, sizeof b));
    size_t nbytes;
    if (!prt_mul_size((size_t)numel, prt_dtype_size(dt), &nbytes))
        return prt_error(ctx, PRT_ERR_PARSE, "%s: tensor '%s': the byte size of %s %s overflows", path, t->name,
                         t->dtype, dims_str(t->shape, t->n_shape, b, sizeof b));
    if (t->data.len != nbytes)
        return prt_error(ctx, PRT_ERR_PARSE, "%s: tensor '%s': %s %s needs %zu bytes of data, the file has %zu", path,
                         t->name, t->dtype, dims_str(t->shape, t->n_shape, b, sizeof b), nbytes, t->data.len);
    return PRT_OK;
}

/* The message's own consistency, before anything looks at a VM. */
static prt_status check_message(prt_context *ctx, prt_ckpt *ck) {
    const Ckpt *m = ck->msg;
    const char *path = ck->path;
    if (m->format_version != PRT_CKPT_VERSION)
        return prt_error(ctx, PRT_ERR_PARSE, "%s: the payload says format version %u, the header %d", path,
                         m->format_version, PRT_CKPT_VERSION);
    if (!m->progress || !m->solver || !m->data || !m->rng)
        return prt_error(ctx, PRT_ERR_PARSE, "%s: the checkpoint lacks its %s section", path,
                         !m->progress ? "progress" : !m->solver ? "solver" : !m->data ? "data order" : "RNG");
    if (m->n_metadata > PRT_CKPT_MAX_META)
        return prt_error(ctx, PRT_ERR_PARSE, "%s: %zu metadata entries exceed the limit of %d", path, m->n_metadata,
                         PRT_CKPT_MAX_META);
    prt_strtab *seen = NULL;
    PRT_CHECK(prt_strtab_create(ctx, &seen));
    prt_status st = PRT_OK;
    for (size_t i = 0; i < m->n_tensors && st == PRT_OK; i++) {
        st = check_tensor(ctx, path, i, m->tensors[i]);
        if (st != PRT_OK) break;
        int first;
        if (i > (size_t)INT32_MAX) {
            st = prt_error(ctx, PRT_ERR_PARSE, "%s: too many tensors", path);
            break;
        }
        prt_status pst = prt_strtab_put(ctx, seen, m->tensors[i]->name, (int)i, &first);
        if (pst == PRT_ERR_INVALID)
            st = prt_error(ctx, PRT_ERR_PARSE, "%s: tensor '%s' appears twice (tensors %d and %zu)", path,
                           m->tensors[i]->name, first, i);
        else
            st = pst;
    }
    prt_strtab_destroy(ctx, seen);
    PRT_CHECK(st);

    const Parrots__Ckpt__Progress *pg = m->progress;
    const Parrots__Ckpt__DataOrder *d = m->data;
    int64_t at;
    if (pg->steps_per_epoch < 1 || pg->epoch < 1 || pg->step < 0 || pg->step > pg->steps_per_epoch ||
        pg->global_step < 0 || !prt_mul_i64(pg->epoch - 1, pg->steps_per_epoch, &at) ||
        !prt_add_i64(at, pg->step, &at) || at != pg->global_step)
        return prt_error(ctx, PRT_ERR_PARSE,
                         "%s: inconsistent progress: global step %" PRId64 " at epoch %" PRId64 " step %" PRId64
                         " with %" PRId64 " steps per epoch",
                         path, pg->global_step, pg->epoch, pg->step, pg->steps_per_epoch);
    if (m->rng->vm_step != (uint64_t)pg->global_step || d->epoch != pg->epoch - 1 || d->batch != pg->step)
        return prt_error(ctx, PRT_ERR_PARSE,
                         "%s: inconsistent state: VM step %" PRIu64 " and loader position (epoch %" PRId64
                         ", batch %" PRId64 ") do not match global step %" PRId64 " at epoch %" PRId64 " step %" PRId64,
                         path, m->rng->vm_step, d->epoch, d->batch, pg->global_step, pg->epoch, pg->step);
    if (d->dataset_size < 1 || d->batch_size < 1)
        return prt_error(ctx, PRT_ERR_PARSE, "%s: data order: dataset size %" PRId64 " and batch %" PRId64
                         " must be positive", path, d->dataset_size, d->batch_size);
    prt_ckpt_state *s = &ck->st;
    const Parrots__Ckpt__Solver *sv = m->solver;
    prt_solver_defaults(&s->solver);
    if (!prt_optimizer_from_name(sv->optimizer, &s->solver.optimizer))
        return prt_error(ctx, PRT_ERR_PARSE, "%s: solver: unknown optimizer '%.32s'", path, sv->optimizer);
    if (!prt_schedule_from_name(sv->schedule, &s->solver.schedule))
        return prt_error(ctx, PRT_ERR_PARSE, "%s: solver: unknown schedule '%.32s'", path, sv->schedule);
    s->solver.lr = sv->lr;
    s->solver.momentum = sv->momentum;
    s->solver.nesterov = sv->nesterov;
    s->solver.weight_decay = sv->weight_decay;
    s->solver.beta1 = sv->beta1;
    s->solver.beta2 = sv->beta2;
    s->solver.eps = sv->eps;
    s->solver.rms_decay = sv->rms_decay;
    s->solver.warmup_epochs = sv->warmup_epochs;
    s->solver.step_epochs = sv->step_epochs;
    s->solver.gamma = sv->gamma;
    s->solver.min_lr = sv->min_lr;
    s->solver.label_smoothing = sv->label_smoothing;
    s->solver.epochs = sv->epochs;
    s->solver.batch = sv->batch;
    char why[256];
    if (prt_solver_problem(&s->solver, why, sizeof why))
        return prt_error(ctx, PRT_ERR_PARSE, "%s: solver.%s", path, why);
    s->global_step = pg->global_step;
    s->epoch = pg->epoch;
    s->step = pg->step;
    s->steps_per_epoch = pg->steps_per_epoch;
    s->shuffle_seed = d->shuffle_seed;
    s->dataset_size = d->dataset_size;
    s->batch_size = d->batch_size;
    s->shuffle = d->shuffle;
    s->seed = m->rng->seed;
    return PRT_OK;
}

prt_status prt_ckpt_parse(prt_context *ctx, const char *name, const void *bytes, size_t size, uint64_t max_bytes,
                          prt_ckpt **out) {
    *out = NULL;
    if (!max_bytes) max_bytes = PRT_CKPT_DEFAULT_MAX_BYTES;
    const unsigned char *b = bytes;
    char m[64];
    if ((uint64_t)size > max_bytes)
        return prt_error(ctx, PRT_ERR_LIMIT, "%s: %zu bytes exceed the checkpoint size limit of %" PRIu64 " bytes",
                         name, size, max_bytes);
    if (size < PRT_CKPT_HEADER_SIZE)
        return prt_error(ctx, PRT_ERR_PARSE, "%s: truncated: %zu bytes, a checkpoint has at least a %d-byte header",
                         name, size, PRT_CKPT_HEADER_SIZE);
    if (memcmp(b, magic, 8))
        return prt_error(ctx, PRT_ERR_PARSE, "%s: not a Parrots checkpoint (magic \"%s\", expected \"PRTCKPT\\x00\")",
                         name, show_bytes(b, 8, m, sizeof m));
    uint32_t version = prt_le_get_u32(b + 8);
    if (version > PRT_CKPT_VERSION)
        return prt_error(ctx, PRT_ERR_PARSE, "%s: checkpoint format version %u is newer than this Parrots reads "
                         "(version %d)", name, version, PRT_CKPT_VERSION);
    if (version != PRT_CKPT_VERSION)
        return prt_error(ctx, PRT_ERR_PARSE, "%s: checkpoint format version %u is not supported (this Parrots reads "
                         "version %d)", name, version, PRT_CKPT_VERSION);
    uint64_t len = prt_le_get_u64(b + 16), have = (uint64_t)(size - PRT_CKPT_HEADER_SIZE);
    if (prt_le_get_u32(b + 12) != 0 || prt_le_get_u32(b + 28) != 0)
        return prt_error(ctx, PRT_ERR_PARSE, "%s: the header's reserved fields are not zero", name);
    if (len > have)
        return prt_error(ctx, PRT_ERR_PARSE, "%s: truncated: the header announces a %" PRIu64
                         "-byte payload, %" PRIu64 " bytes follow it", name, len, have);
    if (len < have)
        return prt_error(ctx, PRT_ERR_PARSE, "%s: %" PRIu64 " trailing bytes after the %" PRIu64 "-byte payload", name,
                         have - len, len);
    const unsigned char *payload = b + PRT_CKPT_HEADER_SIZE;
    uint32_t stored = prt_le_get_u32(b + 24), computed = prt_crc32c_update(0, payload, (size_t)len);
    if (stored != computed)
        return prt_error(ctx, PRT_ERR_PARSE,
                         "%s: CRC32C mismatch (stored 0x%08x, computed 0x%08x): the checkpoint is damaged", name,
                         stored, computed);
    prt_ckpt *ck = prt_calloc(ctx, 1, sizeof *ck);
    if (!ck) return prt_error(ctx, PRT_ERR_NOMEM, "out of memory");
    prt_pb_allocator(ctx, &ck->alloc);
    ck->path = prt_strdup(ctx, name);
    prt_status st = PRT_OK;
    if (!ck->path) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "out of memory");
        goto fail;
    }
    ck->msg = parrots__ckpt__checkpoint__unpack(&ck->alloc, (size_t)len, payload);
    if (!ck->msg) {
        st = prt_error(ctx, PRT_ERR_PARSE,
                       "%s: the %" PRIu64 "-byte payload is not a valid Checkpoint message (protobuf-c cannot unpack it)",
                       name, len);
        goto fail;
    }
    PRT_CHECK_GOTO(check_message(ctx, ck), st, fail);
    *out = ck;
    return PRT_OK;
fail:
    prt_ckpt_destroy(ctx, ck);
    return st;
}

prt_status prt_ckpt_read(prt_context *ctx, const char *path, uint64_t max_bytes, prt_ckpt **out) {
    *out = NULL;
    if (!max_bytes) max_bytes = PRT_CKPT_DEFAULT_MAX_BYTES;
    /* O_NONBLOCK: a FIFO under the name must not block the open; it is refused below */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return prt_error(ctx, errno == ENOENT ? PRT_ERR_NOT_FOUND : PRT_ERR_IO, "%s: cannot open the checkpoint: %s",
                         path, strerror(errno));
    prt_status st = PRT_OK;
    unsigned char *buf = NULL;
    size_t size = 0;
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = prt_error(ctx, PRT_ERR_INVALID, "%s: not a regular file", path);
        goto done;
    }
    /* refused before any byte is read or any memory reserved for it */
    if ((uint64_t)sb.st_size > max_bytes) {
        st = prt_error(ctx, PRT_ERR_LIMIT, "%s: %lld bytes exceed the checkpoint size limit of %" PRIu64 " bytes", path,
                       (long long)sb.st_size, max_bytes);
        goto done;
    }
    size = (size_t)sb.st_size;
    buf = prt_malloc(ctx, size ? size : 1);
    if (!buf) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, size);
        goto done;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            st = prt_error(ctx, PRT_ERR_IO, "%s: cannot read the checkpoint: %s", path, strerror(errno));
            goto done;
        }
        if (r == 0) break; /* shrank under us: parse what is there (it will not pass) */
        got += (size_t)r;
    }
    size = got;
    st = prt_ckpt_parse(ctx, path, buf, size, max_bytes, out);
done:
    close(fd);
    prt_free(ctx, buf, 0);
    return st;
}

/* ---- matching a training VM -------------------------------------------------- */

prt_status prt_ckpt_check(prt_context *ctx, const prt_ckpt *ck, uint64_t graph_hash, prt_vm *vm) {
    const Ckpt *m = ck->msg;
    const prt_program *p = vm->p;
    char b1[160], b2[400];
    if (m->graph_hash != graph_hash)
        return prt_error(ctx, PRT_ERR_INVALID,
                         "%s: the checkpoint is of a different training graph (network '%.64s', graph hash "
                         "0x%016" PRIx64 "; this run trains '%s', graph hash 0x%016" PRIx64 ")",
                         ck->path, m->network, m->graph_hash, p->name, graph_hash);
    size_t n_persist = 0;
    for (int r = 0; r < p->n_regs; r++) n_persist += persistent_reg(&p->regs[r]);
    for (size_t i = 0; i < m->n_tensors; i++) {
        const CkTensor *t = m->tensors[i];
        int r;
        if (!prt_strtab_get(vm->names, t->name, &r) || r < 0 || r >= p->n_regs || !persistent_reg(&p->regs[r]))
            return prt_error(ctx, PRT_ERR_NOT_FOUND,
                             "%s: tensor '%s' is not a parameter or state tensor of the training program", ck->path,
                             t->name);
        const prt_reg *g = &p->regs[r];
        bool kind_ok = (g->kind == PRT_REG_PARAM) == (t->kind == PARROTS__CKPT__TENSOR__KIND__PARAM);
        prt_shape fs = prt_shape_make((int)t->n_shape, t->shape);
        if (!kind_ok || strcmp(t->dtype, prt_dtype_name(g->dtype)) || !prt_shape_eq(&fs, &g->shape))
            return prt_error(ctx, PRT_ERR_SHAPE,
                             "%s: tensor '%s' is %s %s %s in the checkpoint but %s %s %s in the training program",
                             ck->path, t->name, kind_str(t->kind), t->dtype,
                             dims_str(t->shape, t->n_shape, b2, sizeof b2),
                             g->kind == PRT_REG_PARAM ? "parameter" : "state", prt_dtype_name(g->dtype),
                             prt_shape_str(&g->shape, b1, sizeof b1));
    }
    if (m->n_tensors != n_persist) {
        /* names are unique and all known, so some register is missing */
        for (int r = 0; r < p->n_regs; r++) {
            if (!persistent_reg(&p->regs[r])) continue;
            size_t i = 0;
            while (i < m->n_tensors && strcmp(m->tensors[i]->name, p->regs[r].name)) i++;
            if (i == m->n_tensors)
                return prt_error(ctx, PRT_ERR_NOT_FOUND, "%s: missing tensor '%s' (%s %s %s of the training program)",
                                 ck->path, p->regs[r].name, p->regs[r].kind == PRT_REG_PARAM ? "parameter" : "state",
                                 prt_dtype_name(p->regs[r].dtype), prt_shape_str(&p->regs[r].shape, b1, sizeof b1));
        }
        return prt_error(ctx, PRT_ERR_INTERNAL, "%s: tensor count mismatch", ck->path);
    }
    return PRT_OK;
}

prt_status prt_ckpt_restore(prt_context *ctx, const prt_ckpt *ck, uint64_t graph_hash, prt_vm *vm) {
    PRT_CHECK(prt_ckpt_check(ctx, ck, graph_hash, vm));
    if (!HOST_LE)
        return prt_error(ctx, PRT_ERR_UNSUPPORTED, "%s: checkpoints are read on little-endian hosts only", ck->path);
    const Ckpt *m = ck->msg;
    for (size_t i = 0; i < m->n_tensors; i++) {
        const CkTensor *t = m->tensors[i];
        int r;
        prt_strtab_get(vm->names, t->name, &r);
        prt_tensor *dst = prt_vm_state_reg(vm, r);
        if (!dst || !dst->data || !prt_tensor_is_contiguous(dst))
            return prt_error(ctx, PRT_ERR_INTERNAL, "tensor '%s' has no contiguous host storage", t->name);
    }
    /* every state tensor is in the file (checked), but push sends the whole
     * mirror: pull first so that nothing else in it is stale */
    PRT_CHECK(prt_vm_pull_state(vm));
    for (size_t i = 0; i < m->n_tensors; i++) {
        const CkTensor *t = m->tensors[i];
        int r;
        prt_strtab_get(vm->names, t->name, &r);
        if (t->data.len) memcpy(prt_vm_state_reg(vm, r)->data, t->data.data, t->data.len);
    }
    PRT_CHECK(prt_vm_push_state(vm));
    prt_vm_set_step(vm, (uint64_t)ck->st.global_step);
    return PRT_OK;
}

prt_status prt_ckpt_check_solver(prt_context *ctx, const prt_ckpt *ck, const prt_solver *s) {
    const prt_solver *c = &ck->st.solver;
    if (c->optimizer != s->optimizer)
        return prt_error(ctx, PRT_ERR_INVALID, "%s: the checkpoint was trained with solver.optimizer %s, this run has %s",
                         ck->path, prt_optimizer_name(c->optimizer), prt_optimizer_name(s->optimizer));
    if (c->schedule != s->schedule)
        return prt_error(ctx, PRT_ERR_INVALID, "%s: the checkpoint was trained with solver.schedule %s, this run has %s",
                         ck->path, prt_schedule_name(c->schedule), prt_schedule_name(s->schedule));
#define F(field)                                                                                                   \
    if (memcmp(&c->field, &s->field, sizeof c->field))                                                             \
        return prt_error(ctx, PRT_ERR_INVALID, "%s: the checkpoint was trained with solver." #field " %.17g, this run " \
                         "has %.17g", ck->path, (double)c->field, (double)s->field);
    F(lr) F(momentum) F(weight_decay) F(beta1) F(beta2) F(eps) F(rms_decay) F(warmup_epochs) F(step_epochs) F(gamma)
    F(min_lr) F(label_smoothing) F(epochs) F(batch)
#undef F
    if (c->nesterov != s->nesterov)
        return prt_error(ctx, PRT_ERR_INVALID, "%s: the checkpoint was trained with solver.nesterov %s, this run has %s",
                         ck->path, c->nesterov ? "true" : "false", s->nesterov ? "true" : "false");
    return PRT_OK;
}

void prt_ckpt_get_state(const prt_ckpt *ck, prt_ckpt_state *out) { *out = ck->st; }
const char *prt_ckpt_path(const prt_ckpt *ck) { return ck->path; }
const char *prt_ckpt_network(const prt_ckpt *ck) { return ck->msg->network ? ck->msg->network : ""; }
uint64_t prt_ckpt_hash(const prt_ckpt *ck) { return ck->msg->graph_hash; }

const char *prt_ckpt_meta_get(const prt_ckpt *ck, const char *key) {
    for (size_t i = 0; i < ck->msg->n_metadata; i++)
        if (ck->msg->metadata[i]->key && !strcmp(ck->msg->metadata[i]->key, key)) return ck->msg->metadata[i]->value;
    return NULL;
}

prt_status prt_ckpt_find_latest(prt_context *ctx, const char *dir, char **path_out) {
    *path_out = NULL;
    found *f;
    int n;
    PRT_CHECK(list_ckpts(ctx, dir, &f, &n));
    prt_status st = PRT_OK;
    if (n == 0)
        st = prt_error(ctx, PRT_ERR_NOT_FOUND, "%s: no checkpoint (ckpt-<step>.prtc) in the directory", dir);
    else if (!(*path_out = join(ctx, dir, f[0].name)))
        st = prt_error(ctx, PRT_ERR_NOMEM, "out of memory");
    free_found(ctx, f, n);
    return st;
}

/* The weights file (docs/weights-format.md): writing it atomically, reading and
 * validating it before anything is trusted, and moving tensors between it, a
 * graph's parameters and a VM. */
#define _POSIX_C_SOURCE 200809L
#include "frontends/file_util.h"
#include "frontends/weights_api.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static const unsigned char magic[4] = {'P', 'R', 'T', 'W'};

/* The file's dtype codes are fixed by the format, independent of the order of
 * runtime/dtypes.def: looked up by name. */
static const char *const file_dtypes[] = {"f32", "f64", "f16", "bf16", "i32", "i64", "u8"};
#define N_FILE_DTYPES ((uint32_t)(sizeof file_dtypes / sizeof file_dtypes[0]))

static bool dtype_to_code(prt_dtype t, uint32_t *code) {
    for (uint32_t c = 0; c < N_FILE_DTYPES; c++)
        if (!strcmp(file_dtypes[c], prt_dtype_name(t))) return *code = c, true;
    return false;
}

static bool code_to_dtype(uint32_t code, prt_dtype *t) {
    return code < N_FILE_DTYPES && prt_dtype_from_name(file_dtypes[code], t);
}


static uint32_t crc_update(uint32_t crc, const void *p, size_t n) {
    return (uint32_t)crc32_z(crc, p, n);
}

/* ---- writing ---------------------------------------------------------------- */

typedef struct wfile {
    prt_context *ctx;
    FILE *f;
    const char *path, *tmp;
    uint32_t crc;
} wfile;

static prt_status wbytes(wfile *w, const void *p, size_t n) {
    if (n && fwrite(p, 1, n, w->f) != n)
        return prt_error(w->ctx, PRT_ERR_IO, "%s: cannot write the weights file: %s", w->path, strerror(errno));
    w->crc = crc_update(w->crc, p, n);
    return PRT_OK;
}

/* Tensor data in little-endian order: the host order on little-endian machines,
 * swapped element by element elsewhere. */
static prt_status wdata(wfile *w, const void *data, size_t nbytes, size_t esize) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    (void)esize;
    return wbytes(w, data, nbytes);
#else
    unsigned char chunk[4096];
    const unsigned char *src = data;
    size_t per = sizeof chunk / esize * esize;
    for (size_t o = 0; o < nbytes; o += per) {
        size_t n = nbytes - o < per ? nbytes - o : per;
        for (size_t e = 0; e < n; e += esize)
            for (size_t b = 0; b < esize; b++) chunk[e + b] = src[o + e + esize - 1 - b];
        PRT_CHECK(wbytes(w, chunk, n));
    }
    return PRT_OK;
#endif
}

static prt_status write_tensor(wfile *w, const char *name, const prt_tensor *t) {
    prt_context *ctx = w->ctx;
    size_t len = strlen(name), nbytes;
    uint32_t code;
    if (len == 0 || len > PRT_WEIGHTS_MAX_NAME)
        return prt_error(ctx, PRT_ERR_INVALID, "%s: tensor name '%.64s' must have 1 to %d bytes", w->path, name,
                         PRT_WEIGHTS_MAX_NAME);
    if (!dtype_to_code(t->dtype, &code))
        return prt_error(ctx, PRT_ERR_UNSUPPORTED, "%s: tensor '%s': dtype %s has no code in the weights format",
                         w->path, name, prt_dtype_name(t->dtype));
    if (!t->data || !prt_tensor_is_contiguous(t))
        return prt_error(ctx, PRT_ERR_INTERNAL, "%s: tensor '%s' has no contiguous storage", w->path, name);
    PRT_CHECK(prt_shape_nbytes(ctx, &t->shape, t->dtype, &nbytes));
    unsigned char hdr[4 + 4 + 4 + 8 * PRT_MAX_DIMS];
    prt_le_put_u32(hdr, (uint32_t)len);
    PRT_CHECK(wbytes(w, hdr, 4));
    PRT_CHECK(wbytes(w, name, len));
    prt_le_put_u32(hdr, code);
    prt_le_put_u32(hdr + 4, (uint32_t)t->shape.ndim);
    for (int d = 0; d < t->shape.ndim; d++) prt_le_put_u64(hdr + 8 + 8 * d, (uint64_t)t->shape.d[d]);
    PRT_CHECK(wbytes(w, hdr, 8 + 8 * (size_t)t->shape.ndim));
    return wdata(w, t->data, nbytes, prt_dtype_size(t->dtype));
}

prt_status prt_weights_write(prt_context *ctx, const char *path, int n, const char *const *names,
                             const prt_tensor *const *tensors) {
    if (!path || n < 0 || (n && (!names || !tensors)))
        return prt_error(ctx, PRT_ERR_USAGE, "prt_weights_write: bad arguments");
    size_t plen = strlen(path);
    char *tmp = prt_malloc(ctx, plen + 16);
    if (!tmp) return prt_error(ctx, PRT_ERR_NOMEM, "out of memory");
    snprintf(tmp, plen + 16, "%s.tmp-XXXXXX", path);
    wfile w = {.ctx = ctx, .path = path, .tmp = tmp, .crc = (uint32_t)crc32_z(0, NULL, 0)};
    prt_status st = PRT_OK;
    int fd = mkstemp(tmp);
    if (fd < 0) {
        st = prt_error(ctx, PRT_ERR_IO, "%s: cannot create a temporary file next to it: %s", path, strerror(errno));
        prt_free(ctx, tmp, 0);
        return st;
    }
    (void)fchmod(fd, 0644);
    w.f = fdopen(fd, "wb");
    if (!w.f) {
        st = prt_error(ctx, PRT_ERR_IO, "%s: cannot write the weights file: %s", path, strerror(errno));
        close(fd);
        goto fail;
    }
    unsigned char hdr[12];
    memcpy(hdr, magic, 4);
    prt_le_put_u32(hdr + 4, PRT_WEIGHTS_VERSION);
    prt_le_put_u32(hdr + 8, (uint32_t)n);
    PRT_CHECK_GOTO(wbytes(&w, hdr, sizeof hdr), st, fail);
    for (int i = 0; i < n; i++) PRT_CHECK_GOTO(write_tensor(&w, names[i], tensors[i]), st, fail);
    unsigned char crc[4];
    prt_le_put_u32(crc, w.crc);
    PRT_CHECK_GOTO(wbytes(&w, crc, 4), st, fail);
    if (fflush(w.f) != 0 || fsync(fileno(w.f)) != 0) {
        st = prt_error(ctx, PRT_ERR_IO, "%s: cannot write the weights file: %s", path, strerror(errno));
        goto fail;
    }
    int rc = fclose(w.f);
    w.f = NULL;
    if (rc != 0) {
        st = prt_error(ctx, PRT_ERR_IO, "%s: cannot write the weights file: %s", path, strerror(errno));
        goto fail;
    }
    if (rename(tmp, path) != 0) {
        st = prt_error(ctx, PRT_ERR_IO, "%s: cannot rename the temporary file into place: %s", path,
                       strerror(errno));
        goto fail;
    }
    prt_fsync_parent(path);
    prt_free(ctx, tmp, 0);
    return PRT_OK;
fail:
    if (w.f) fclose(w.f);
    unlink(tmp);
    prt_free(ctx, tmp, 0);
    return st;
}

/* Parameters and running state in value order: the order a file lists them. */
static bool persistent(const prt_value *v) { return v->kind == PRT_VAL_PARAM || v->kind == PRT_VAL_STATE; }

prt_status prt_weights_save(prt_context *ctx, const char *path, const prt_graph *g, prt_vm *vm) {
    int n = 0;
    for (int i = 0; i < g->n_values; i++) n += persistent(&g->values[i]);
    const char **names = prt_calloc(ctx, n ? (size_t)n : 1, sizeof *names);
    const prt_tensor **ts = prt_calloc(ctx, n ? (size_t)n : 1, sizeof *ts);
    prt_status st = PRT_OK;
    if (!names || !ts) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "out of memory");
        goto done;
    }
    PRT_CHECK_GOTO(prt_vm_pull_state(vm), st, done);
    int k = 0;
    for (int i = 0; i < g->n_values; i++) {
        const prt_value *v = &g->values[i];
        if (!persistent(v)) continue;
        const prt_tensor *t = prt_vm_state(vm, v->name);
        if (!t) {
            st = prt_error(ctx, PRT_ERR_INTERNAL, "%s: the program has no tensor '%s'", path, v->name);
            goto done;
        }
        names[k] = v->name;
        ts[k++] = t;
    }
    st = prt_weights_write(ctx, path, n, names, ts);
done:
    prt_free(ctx, names, 0);
    prt_free(ctx, ts, 0);
    return st;
}

/* ---- reading ---------------------------------------------------------------- */

void prt_weights_destroy(prt_context *ctx, prt_weights *w) {
    if (!w) return;
    prt_free(ctx, w->path, 0);
    prt_free(ctx, w->t, 0);
    prt_free(ctx, w->image, 0);
    prt_free(ctx, w->names, 0);
    prt_strtab_destroy(ctx, w->index);
    prt_free(ctx, w, sizeof *w);
}

typedef struct rstate {
    prt_context *ctx;
    const char *path;
    const unsigned char *p;
    size_t pos, end; /* end: where the CRC starts */
} rstate;

/* "[2, 3, 4]" from raw dims, which may not fit a prt_shape's checks. */
static const char *dims_str(const int64_t *d, uint32_t n, char *buf, size_t cap) {
    size_t o = (size_t)snprintf(buf, cap, "[");
    for (uint32_t i = 0; i < n && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%lld", i ? ", " : "", (long long)d[i]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
    return buf;
}

static prt_status truncated(rstate *r, size_t at, const char *who, const char *what, size_t need) {
    return prt_error(r->ctx, PRT_ERR_PARSE, "%s: offset %zu: %s: truncated: %s needs %zu bytes, %zu remain", r->path,
                     at, who, what, need, r->end - r->pos);
}

static prt_status parse_tensor(rstate *r, int k, prt_weights_tensor *t, size_t *name_at) {
    prt_context *ctx = r->ctx;
    const char *path = r->path;
    size_t rec = r->pos;
    char who[PRT_WEIGHTS_MAX_NAME + 32], b[400];
    snprintf(who, sizeof who, "tensor %d", k);
    t->offset = (int64_t)rec;
    if (r->end - r->pos < 4) return truncated(r, r->pos, who, "the name length", 4);
    uint32_t len = prt_le_get_u32(r->p + r->pos);
    if (len == 0 || len > PRT_WEIGHTS_MAX_NAME)
        return prt_error(ctx, PRT_ERR_PARSE, "%s: offset %zu: %s: name length %u is outside 1..%d", path, r->pos, who,
                         len, PRT_WEIGHTS_MAX_NAME);
    r->pos += 4;
    if (r->end - r->pos < len) return truncated(r, r->pos, who, "the name", len);
    if (memchr(r->p + r->pos, 0, len))
        return prt_error(ctx, PRT_ERR_PARSE, "%s: offset %zu: %s: the name contains a NUL byte", path, r->pos, who);
    *name_at = r->pos;
    snprintf(who, sizeof who, "tensor '%.*s'", (int)len, (const char *)r->p + r->pos);
    r->pos += len;
    if (r->end - r->pos < 8) return truncated(r, r->pos, who, "the dtype and ndim", 8);
    uint32_t code = prt_le_get_u32(r->p + r->pos), ndim = prt_le_get_u32(r->p + r->pos + 4);
    if (!code_to_dtype(code, &t->dtype))
        return prt_error(ctx, PRT_ERR_PARSE, "%s: offset %zu: %s: unknown dtype code %u (known: 0..%u)", path, r->pos,
                         who, code, N_FILE_DTYPES - 1);
    r->pos += 4;
    if (ndim > PRT_WEIGHTS_MAX_NDIM)
        return prt_error(ctx, PRT_ERR_PARSE, "%s: offset %zu: %s: ndim %u exceeds the limit of %d", path, r->pos,
                         who, ndim, PRT_WEIGHTS_MAX_NDIM);
    r->pos += 4;
    if (r->end - r->pos < 8 * (size_t)ndim) return truncated(r, r->pos, who, "the dims", 8 * (size_t)ndim);
    int64_t d[PRT_WEIGHTS_MAX_NDIM], numel = 1;
    bool over = false;
    for (uint32_t i = 0; i < ndim; i++) {
        d[i] = (int64_t)prt_le_get_u64(r->p + r->pos + 8 * i);
        if (d[i] <= 0)
            return prt_error(ctx, PRT_ERR_PARSE, "%s: offset %zu: %s: dimension %u is %lld (dimensions must be positive)",
                             path, r->pos + 8 * i, who, i, (long long)d[i]);
        if (!over && (!prt_mul_i64(numel, d[i], &numel) || numel > PRT_MAX_ELEMS)) over = true;
    }
    if (over)
        return prt_error(ctx, PRT_ERR_PARSE, "%s: offset %zu: %s: the shape %s has more than 2^40 elements", path,
                         r->pos, who, dims_str(d, ndim, b, sizeof b));
    r->pos += 8 * (size_t)ndim;
    t->shape = prt_shape_make((int)ndim, d);
    /* numel <= 2^40 and dtype sizes <= 8: no overflow */
    t->nbytes = (size_t)numel * prt_dtype_size(t->dtype);
    if (r->end - r->pos < t->nbytes) return truncated(r, r->pos, who, "the data", t->nbytes);
    t->data = r->p + r->pos;
    r->pos += t->nbytes;
    return PRT_OK;
}

/* Takes ownership of image (freed on failure too). */
static prt_status parse_owned(prt_context *ctx, const char *path, unsigned char *image, size_t size,
                              prt_weights **out) {
    prt_status st = PRT_OK;
    prt_weights *w = prt_calloc(ctx, 1, sizeof *w);
    prt_strtab *seen = NULL;
    size_t *name_at = NULL;
    *out = NULL;
    if (!w) {
        prt_free(ctx, image, 0);
        return prt_error(ctx, PRT_ERR_NOMEM, "out of memory");
    }
    w->image = image;
    w->size = size;
    w->path = prt_strdup(ctx, path);
    if (!w->path) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (size < 16) {
        st = prt_error(ctx, PRT_ERR_PARSE, "%s: truncated: %zu bytes, a weights file has at least 16 (header and CRC)",
                       path, size);
        goto fail;
    }
    if (memcmp(image, magic, 4)) {
        char m[20];
        size_t o = 0;
        for (int i = 0; i < 4; i++) {
            unsigned c = image[i];
            o += (size_t)snprintf(m + o, sizeof m - o, c >= 0x20 && c < 0x7f && c != '\\' ? "%c" : "\\x%02x", c);
        }
        st = prt_error(ctx, PRT_ERR_PARSE, "%s: offset 0: not a Parrots weights file (magic \"%s\", expected \"PRTW\")",
                       path, m);
        goto fail;
    }
    uint32_t version = prt_le_get_u32(image + 4);
    if (version != PRT_WEIGHTS_VERSION) {
        if (version > PRT_WEIGHTS_VERSION)
            st = prt_error(ctx, PRT_ERR_PARSE,
                           "%s: offset 4: weights format version %u is newer than this Parrots reads (version %d)", path,
                           version, PRT_WEIGHTS_VERSION);
        else
            st = prt_error(ctx, PRT_ERR_PARSE, "%s: offset 4: weights format version %u is not supported (this Parrots "
                           "reads version %d)", path, version, PRT_WEIGHTS_VERSION);
        goto fail;
    }
    uint32_t count = prt_le_get_u32(image + 8);
    rstate r = {ctx, path, image, 12, size - 4};
    /* every record takes at least 12 bytes: bound the count before allocating for it */
    if (count > (r.end - r.pos) / 12) {
        st = prt_error(ctx, PRT_ERR_PARSE, "%s: offset 8: %u tensors cannot fit in the %zu bytes that follow", path,
                       count, r.end - r.pos);
        goto fail;
    }
    w->t = prt_calloc(ctx, count ? count : 1, sizeof *w->t);
    name_at = prt_calloc(ctx, count ? count : 1, sizeof *name_at);
    if (!w->t || !name_at) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "out of memory");
        goto fail;
    }
    size_t name_bytes = 0;
    for (uint32_t k = 0; k < count; k++) {
        PRT_CHECK_GOTO(parse_tensor(&r, (int)k, &w->t[k], &name_at[k]), st, fail);
        name_bytes += prt_le_get_u32(image + name_at[k] - 4) + 1;
    }
    if (r.pos != r.end) {
        st = prt_error(ctx, PRT_ERR_PARSE, "%s: offset %zu: %zu trailing bytes after the last tensor (before the CRC)",
                       path, r.pos, r.end - r.pos);
        goto fail;
    }
    uint32_t stored = prt_le_get_u32(image + r.end), computed = crc_update((uint32_t)crc32_z(0, NULL, 0), image, r.end);
    if (stored != computed) {
        st = prt_error(ctx, PRT_ERR_PARSE,
                       "%s: offset %zu: CRC mismatch (stored 0x%08x, computed 0x%08x): the file is damaged", path,
                       r.end, stored, computed);
        goto fail;
    }
    w->names = prt_malloc(ctx, name_bytes ? name_bytes : 1);
    PRT_CHECK_GOTO(prt_strtab_create(ctx, &seen), st, fail);
    if (!w->names) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "out of memory");
        goto fail;
    }
    size_t o = 0;
    for (uint32_t k = 0; k < count; k++) {
        size_t len = prt_le_get_u32(image + name_at[k] - 4);
        memcpy(w->names + o, image + name_at[k], len);
        w->names[o + len] = '\0';
        w->t[k].name = w->names + o;
        o += len + 1;
        int first;
        prt_status pst = prt_strtab_put(ctx, seen, w->t[k].name, (int)k, &first);
        if (pst == PRT_ERR_INVALID) {
            st = prt_error(ctx, PRT_ERR_PARSE, "%s: offset %lld: tensor '%s' appears twice (first at offset %lld)", path,
                           (long long)w->t[k].offset, w->t[k].name, (long long)w->t[first].offset);
            goto fail;
        }
        PRT_CHECK_GOTO(pst, st, fail);
    }
    w->n = (int)count;
    w->index = seen;
    prt_free(ctx, name_at, 0);
    *out = w;
    return PRT_OK;
fail:
    prt_strtab_destroy(ctx, seen);
    prt_free(ctx, name_at, 0);
    prt_weights_destroy(ctx, w);
    return st;
}

prt_status prt_weights_parse(prt_context *ctx, const char *path, const void *bytes, size_t size,
                             prt_weights **out) {
    unsigned char *copy = prt_malloc(ctx, size ? size : 1);
    if (!copy) return prt_error(ctx, PRT_ERR_NOMEM, "out of memory");
    if (size) memcpy(copy, bytes, size);
    return parse_owned(ctx, path, copy, size, out);
}

prt_status prt_weights_read(prt_context *ctx, const char *path, prt_weights **out) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return prt_error(ctx, errno == ENOENT ? PRT_ERR_NOT_FOUND : PRT_ERR_IO, "%s: cannot open the weights file: %s",
                         path, strerror(errno));
    prt_status st = PRT_OK;
    unsigned char *buf = NULL;
    size_t n = 0, cap = 0;
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = prt_error(ctx, PRT_ERR_INVALID, "%s: not a regular file", path);
        goto done;
    }
    /* st_size is a hint: read to the end, the file may change under us */
    cap = sb.st_size > 0 ? (size_t)sb.st_size + 1 : 4096;
    buf = prt_malloc(ctx, cap);
    for (;;) {
        if (!buf) {
            st = prt_error(ctx, PRT_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, cap);
            goto done;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
        if (n == cap) {
            size_t ncap;
            if (!prt_mul_size(cap, 2, &ncap)) ncap = 0;
            unsigned char *nb = ncap ? prt_realloc(ctx, buf, cap, ncap) : NULL;
            if (!nb) prt_free(ctx, buf, cap);
            buf = nb;
            cap = ncap;
        }
    }
    if (ferror(f)) st = prt_error(ctx, PRT_ERR_IO, "%s: cannot read the weights file: %s", path, strerror(errno));
done:
    fclose(f);
    if (st != PRT_OK) {
        prt_free(ctx, buf, 0);
        return st;
    }
    return parse_owned(ctx, path, buf, n, out);
}

const prt_weights_tensor *prt_weights_find(const prt_weights *w, const char *name) {
    int k;
    return w->index && prt_strtab_get(w->index, name, &k) ? &w->t[k] : NULL;
}

/* ---- matching a graph --------------------------------------------------------- */

static const char *kind_name(prt_value_kind k) { return k == PRT_VAL_PARAM ? "parameter" : "state tensor"; }

/* Copies little-endian file bytes into host-order memory. */
static void load_le(void *dst, const void *src, size_t nbytes, size_t esize) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    (void)esize;
    memcpy(dst, src, nbytes);
#else
    unsigned char *d = dst;
    const unsigned char *s = src;
    for (size_t e = 0; e < nbytes; e += esize)
        for (size_t b = 0; b < esize; b++) d[e + b] = s[e + esize - 1 - b];
#endif
}

prt_status prt_weights_apply(prt_context *ctx, const prt_weights *w, const prt_graph *g, prt_vm *vm) {
    char b1[160], b2[160];
    prt_status st = PRT_OK;
    int n_persist = 0;
    /* check everything before copying anything: a failed load leaves the VM as it was */
    for (int i = 0; i < g->n_values; i++) {
        const prt_value *v = &g->values[i];
        if (!persistent(v)) continue;
        n_persist++;
        const prt_tensor *dst = prt_vm_state(vm, v->name);
        if (!dst) return prt_error(ctx, PRT_ERR_INTERNAL, "the program of '%s' has no tensor '%s'", g->name, v->name);
        const prt_weights_tensor *t = prt_weights_find(w, v->name);
        if (!t)
            return prt_error(ctx, PRT_ERR_NOT_FOUND, "%s: missing tensor '%s' (a %s of the network '%s', shape %s)",
                             w->path, v->name, kind_name(v->kind), g->name, prt_shape_str(&dst->shape, b1, sizeof b1));
        if (t->dtype != dst->dtype || !prt_shape_eq(&t->shape, &dst->shape))
            return prt_error(ctx, PRT_ERR_SHAPE,
                             "%s: offset %lld: tensor '%s' is %s %s in the file but %s %s in the network '%s'", w->path,
                             (long long)t->offset, v->name, prt_dtype_name(t->dtype),
                             prt_shape_str(&t->shape, b1, sizeof b1), prt_dtype_name(dst->dtype),
                             prt_shape_str(&dst->shape, b2, sizeof b2), g->name);
    }
    if (w->n != n_persist) {
        for (int k = 0; k < w->n; k++) {
            int id = prt_graph_find_value(g, w->t[k].name);
            if (id < 0 || !persistent(&g->values[id]))
                return prt_error(ctx, PRT_ERR_NOT_FOUND,
                                 "%s: offset %lld: tensor '%s' is not a parameter or state tensor of the network '%s'",
                                 w->path, (long long)w->t[k].offset, w->t[k].name, g->name);
        }
    }
    PRT_CHECK(prt_vm_pull_state(vm)); /* push sends the whole mirror */
    for (int i = 0; i < g->n_values; i++) {
        const prt_value *v = &g->values[i];
        if (!persistent(v)) continue;
        prt_tensor *dst = prt_vm_state(vm, v->name);
        const prt_weights_tensor *t = prt_weights_find(w, v->name);
        load_le(dst->data, t->data, t->nbytes, prt_dtype_size(t->dtype));
    }
    PRT_CHECK(prt_vm_push_state(vm));
    return st;
}

prt_status prt_weights_copy_vm(prt_context *ctx, const prt_graph *g, prt_vm *src, prt_vm *dst) {
    char b1[160], b2[160];
    PRT_CHECK(prt_vm_pull_state(src));
    PRT_CHECK(prt_vm_pull_state(dst)); /* push sends the whole mirror */
    for (int i = 0; i < g->n_values; i++) {
        const prt_value *v = &g->values[i];
        if (!persistent(v)) continue;
        const prt_tensor *s = prt_vm_state(src, v->name);
        prt_tensor *d = prt_vm_state(dst, v->name);
        if (!s || !d)
            return prt_error(ctx, PRT_ERR_INTERNAL, "copying weights: the %s program has no tensor '%s'",
                             s ? "destination" : "source", v->name);
        if (s->dtype != d->dtype || !prt_shape_eq(&s->shape, &d->shape))
            return prt_error(ctx, PRT_ERR_INTERNAL, "copying weights: tensor '%s' is %s in one program, %s in the other",
                             v->name, prt_shape_str(&s->shape, b1, sizeof b1), prt_shape_str(&d->shape, b2, sizeof b2));
        size_t nbytes;
        PRT_CHECK(prt_shape_nbytes(ctx, &s->shape, s->dtype, &nbytes));
        memcpy(d->data, s->data, nbytes);
    }
    return prt_vm_push_state(dst);
}

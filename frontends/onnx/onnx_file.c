/* ONNX files: whole-file reads with a size limit, the protobuf-c allocator,
 * TensorProto decoding (inline or external data confined to the model's
 * directory), test-data tensors and atomic writes. */
#define _GNU_SOURCE
#include "frontends/onnx/onnx_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

prt_status prt_onnx_read_file(prt_context *ctx, const char *path, const char *what, size_t limit,
                              unsigned char **buf, size_t *size) {
    *buf = NULL;
    *size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return prt_error(ctx, errno == ENOENT ? PRT_ERR_NOT_FOUND : PRT_ERR_IO, "%s: cannot open the %s: %s", path,
                         what, strerror(errno));
    prt_status st = PRT_OK;
    unsigned char *b = NULL;
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = prt_error(ctx, PRT_ERR_INVALID, "%s: the %s is not a regular file", path, what);
        goto done;
    }
    if ((uint64_t)sb.st_size > limit) {
        st = prt_error(ctx, PRT_ERR_LIMIT, "%s: the %s is %lld bytes, more than the limit of %zu", path, what,
                       (long long)sb.st_size, limit);
        goto done;
    }
    /* st_size is a hint (the file may change under us): read at most limit + 1 */
    size_t cap = (size_t)sb.st_size + 1, n = 0;
    b = prt_malloc(ctx, cap);
    if (!b) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, cap);
        goto done;
    }
    for (;;) {
        ssize_t got = read(fd, b + n, cap - n);
        if (got < 0) {
            if (errno == EINTR) continue;
            st = prt_error(ctx, PRT_ERR_IO, "%s: cannot read the %s: %s", path, what, strerror(errno));
            goto done;
        }
        if (got == 0) break;
        n += (size_t)got;
        if (n > limit) {
            st = prt_error(ctx, PRT_ERR_LIMIT, "%s: the %s grew past the limit of %zu bytes while being read", path,
                           what, limit);
            goto done;
        }
        if (n == cap) {
            size_t ncap = cap > limit / 2 ? limit + 1 : cap * 2;
            unsigned char *nb = prt_realloc(ctx, b, cap, ncap);
            if (!nb) {
                st = prt_error(ctx, PRT_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, ncap);
                goto done;
            }
            b = nb;
            cap = ncap;
        }
    }
    *buf = b;
    *size = n;
    b = NULL;
done:
    close(fd);
    prt_free(ctx, b, 0);
    return st;
}

const char *prt_onnx_dtype_name(int32_t t) {
    static const char *const names[] = {"undefined", "float32", "uint8",     "int8",      "uint16", "int16",
                                        "int32",     "int64",   "string",    "bool",      "float16", "float64",
                                        "uint32",    "uint64",  "complex64", "complex128", "bfloat16"};
    if (t >= 0 && t < (int32_t)(sizeof names / sizeof names[0])) return names[t];
    return "an unknown type";
}

void prt_onnx_const_free(prt_context *ctx, prt_onnx_const *c) {
    if (!c) return;
    prt_free(ctx, c->f, 0);
    prt_free(ctx, c->i, 0);
    c->f = NULL;
    c->i = NULL;
}

static uint64_t le_u64(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int k = n - 1; k >= 0; k--) v = v << 8 | p[k];
    return v;
}

/* Elements from little-endian bytes (raw_data or an external file). */
static void from_le(prt_onnx_const *c, const unsigned char *p) {
    for (int64_t k = 0; k < c->numel; k++) {
        if (c->f) {
            uint32_t u = (uint32_t)le_u64(p + 4 * k, 4);
            memcpy(&c->f[k], &u, 4);
        } else if (c->dtype == ONNX__TENSOR_PROTO__DATA_TYPE__INT64) {
            c->i[k] = (int64_t)le_u64(p + 8 * k, 8);
        } else {
            c->i[k] = (int32_t)(uint32_t)le_u64(p + 4 * k, 4);
        }
    }
}

/* A decimal field of external_data ("offset", "length"): digits only. */
static bool parse_u64(const char *s, uint64_t *out) {
    if (!s || !*s) return false;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return false;
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (uint64_t)(*s - '0'), &v)) return false;
    }
    *out = v;
    return true;
}

/* Reads `n` bytes at `offset` of the external file `loc`, which must be a
 * relative path without `..` that resolves (symlinks followed) inside
 * model_dir. */
static prt_status read_external(prt_context *ctx, const char *file, const char *model_dir, const char *what,
                                const Onnx__TensorProto *t, size_t want, unsigned char **bytes) {
    const char *loc = NULL, *off_s = NULL, *len_s = NULL;
    for (size_t k = 0; k < t->n_external_data; k++) {
        const Onnx__StringStringEntryProto *e = t->external_data[k];
        if (!e->key || !e->value) continue;
        if (!strcmp(e->key, "location")) loc = e->value;
        else if (!strcmp(e->key, "offset")) off_s = e->value;
        else if (!strcmp(e->key, "length")) len_s = e->value;
    }
    if (!model_dir) return prt_error(ctx, PRT_ERR_UNSUPPORTED, "%s: %s: external data is not allowed here", file, what);
    if (!loc || !*loc) return prt_error(ctx, PRT_ERR_PARSE, "%s: %s: external data without a location", file, what);
    if (loc[0] == '/')
        return prt_error(ctx, PRT_ERR_INVALID,
                         "%s: %s: external data location '%s' is an absolute path; it must be relative to the model's "
                         "directory",
                         file, what, loc);
    for (const char *p = loc; *p;) {
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 2 && p[0] == '.' && p[1] == '.')
            return prt_error(ctx, PRT_ERR_INVALID,
                             "%s: %s: external data location '%s' has a '..' component; it must stay inside the model's "
                             "directory",
                             file, what, loc);
        p += len;
        if (*p == '/') p++;
    }
    uint64_t off = 0, len = want;
    if (off_s && !parse_u64(off_s, &off))
        return prt_error(ctx, PRT_ERR_PARSE, "%s: %s: external data offset '%s' is not a number", file, what, off_s);
    if (len_s && !parse_u64(len_s, &len))
        return prt_error(ctx, PRT_ERR_PARSE, "%s: %s: external data length '%s' is not a number", file, what, len_s);
    if (len != want)
        return prt_error(ctx, PRT_ERR_INVALID, "%s: %s: external data length %llu, but the tensor needs %zu bytes", file,
                         what, (unsigned long long)len, want);
    char dir_real[PATH_MAX], joined[PATH_MAX], real[PATH_MAX];
    if (!realpath(model_dir, dir_real))
        return prt_error(ctx, PRT_ERR_IO, "%s: cannot resolve the model's directory: %s", file, strerror(errno));
    int jn = snprintf(joined, sizeof joined, "%s/%s", dir_real, loc);
    if (jn < 0 || (size_t)jn >= sizeof joined)
        return prt_error(ctx, PRT_ERR_INVALID, "%s: %s: external data location '%s' is too long", file, what, loc);
    if (!realpath(joined, real))
        return prt_error(ctx, errno == ENOENT ? PRT_ERR_NOT_FOUND : PRT_ERR_IO,
                         "%s: %s: cannot open external data '%s': %s", file, what, loc, strerror(errno));
    size_t dl = strlen(dir_real);
    if (strncmp(real, dir_real, dl) != 0 || (real[dl] != '/' && !(dl == 1 && dir_real[0] == '/')))
        return prt_error(ctx, PRT_ERR_INVALID,
                         "%s: %s: external data location '%s' resolves outside the model's directory (through a "
                         "symbolic link)",
                         file, what, loc);
    int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return prt_error(ctx, PRT_ERR_IO, "%s: %s: cannot open external data '%s': %s", file, what, loc,
                         strerror(errno));
    prt_status st = PRT_OK;
    unsigned char *b = NULL;
    struct stat sb;
    uint64_t end;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = prt_error(ctx, PRT_ERR_INVALID, "%s: %s: external data '%s' is not a regular file", file, what, loc);
        goto done;
    }
    if (__builtin_add_overflow(off, (uint64_t)want, &end) || end > (uint64_t)sb.st_size) {
        st = prt_error(ctx, PRT_ERR_INVALID,
                       "%s: %s: external data '%s' has %lld bytes, fewer than offset %llu + length %zu", file, what, loc,
                       (long long)sb.st_size, (unsigned long long)off, want);
        goto done;
    }
    b = prt_malloc(ctx, want ? want : 1);
    if (!b) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "%s: %s: out of memory for %zu bytes", file, what, want);
        goto done;
    }
    for (size_t got = 0; got < want;) {
        ssize_t r = pread(fd, b + got, want - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            st = prt_error(ctx, PRT_ERR_IO, "%s: %s: cannot read external data '%s'", file, what, loc);
            goto done;
        }
        got += (size_t)r;
    }
    *bytes = b;
    b = NULL;
done:
    close(fd);
    prt_free(ctx, b, 0);
    return st;
}

prt_status prt_onnx_decode(prt_context *ctx, const char *file, const char *model_dir, const char *what,
                           const Onnx__TensorProto *t, prt_onnx_const *out) {
    memset(out, 0, sizeof *out);
    out->name = t->name;
    out->dtype = t->data_type;
    if (t->segment) return prt_error(ctx, PRT_ERR_UNSUPPORTED, "%s: %s: segmented tensors are not supported", file, what);
    size_t esize;
    switch (t->data_type) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: esize = 4; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: esize = 8; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: esize = 4; break;
    default:
        return prt_error(ctx, PRT_ERR_UNSUPPORTED, "%s: %s has dtype %s; Parrots supports float32", file, what,
                         prt_onnx_dtype_name(t->data_type));
    }
    if (t->n_dims > PRT_MAX_DIMS)
        return prt_error(ctx, PRT_ERR_UNSUPPORTED, "%s: %s has %zu dimensions, more than %d", file, what, t->n_dims,
                         PRT_MAX_DIMS);
    out->shape.ndim = (int)t->n_dims;
    for (size_t k = 0; k < t->n_dims; k++) {
        if (t->dims[k] < 0)
            return prt_error(ctx, PRT_ERR_INVALID, "%s: %s: dimension %zu is negative (%lld)", file, what, k,
                             (long long)t->dims[k]);
        out->shape.d[k] = t->dims[k];
    }
    prt_status st = prt_shape_numel(ctx, &out->shape, &out->numel);
    if (st != PRT_OK) return prt_error_prefix(ctx, st, "%s: %s", file, what);
    size_t nbytes = (size_t)out->numel * esize; /* numel <= 2^40: no overflow */
    bool external = t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    /* the data must be there before anything is allocated for it: a few bytes of
     * file may not claim terabytes */
    if (!external && t->has_raw_data && t->raw_data.len != nbytes)
        return prt_error(ctx, PRT_ERR_INVALID, "%s: %s: raw_data has %zu bytes, the shape needs %zu", file, what,
                         t->raw_data.len, nbytes);
    if (!external && !t->has_raw_data) {
        size_t have = t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT   ? t->n_float_data
                      : t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 ? t->n_int64_data
                                                                             : t->n_int32_data;
        if (have != (size_t)out->numel)
            return prt_error(ctx, PRT_ERR_INVALID, "%s: %s has %zu values, the shape needs %lld", file, what, have,
                             (long long)out->numel);
    }
    /* external data: read (after checking the file holds it) before the copy is allocated */
    unsigned char *ext = NULL;
    if (external) PRT_CHECK(read_external(ctx, file, model_dir, what, t, nbytes, &ext));
    if (t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) out->f = prt_malloc(ctx, nbytes ? nbytes : 1);
    else out->i = prt_malloc(ctx, out->numel ? (size_t)out->numel * 8 : 1);
    if (!out->f && !out->i) {
        prt_free(ctx, ext, 0);
        return prt_error(ctx, PRT_ERR_NOMEM, "%s: %s: out of memory for %zu bytes", file, what, nbytes);
    }
    if (external) {
        from_le(out, ext);
        prt_free(ctx, ext, 0);
    } else if (t->has_raw_data) {
        if (t->raw_data.len != nbytes)
            st = prt_error(ctx, PRT_ERR_INVALID, "%s: %s: raw_data has %zu bytes, the shape needs %zu", file, what,
                           t->raw_data.len, nbytes);
        else from_le(out, t->raw_data.data);
    } else {
        size_t have = out->f ? t->n_float_data
                      : t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 ? t->n_int64_data
                                                                             : t->n_int32_data;
        if (have != (size_t)out->numel) {
            st = prt_error(ctx, PRT_ERR_INVALID, "%s: %s has %zu values, the shape needs %lld", file, what, have,
                           (long long)out->numel);
        } else {
            for (int64_t k = 0; k < out->numel; k++) {
                if (out->f) out->f[k] = t->float_data[k];
                else if (t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64) out->i[k] = t->int64_data[k];
                else out->i[k] = t->int32_data[k];
            }
        }
    }
    if (st != PRT_OK) prt_onnx_const_free(ctx, out);
    return st;
}

prt_status prt_onnx_read_tensor(prt_context *ctx, const char *path, prt_tensor *out, char **name) {
    memset(out, 0, sizeof *out);
    if (name) *name = NULL;
    unsigned char *buf;
    size_t n;
    PRT_CHECK(prt_onnx_read_file(ctx, path, "tensor file", PRT_ONNX_MAX_FILE, &buf, &n));
    ProtobufCAllocator a;
    prt_pb_allocator(ctx, &a);
    Onnx__TensorProto *t = onnx__tensor_proto__unpack(&a, n, buf);
    prt_free(ctx, buf, 0);
    if (!t) return prt_error(ctx, PRT_ERR_PARSE, "%s: not a valid TensorProto (protobuf-c could not unpack it)", path);
    prt_onnx_const c;
    prt_status st = PRT_OK;
    if (t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
        st = prt_error(ctx, PRT_ERR_UNSUPPORTED, "%s: tensor has dtype %s; Parrots supports float32", path,
                       prt_onnx_dtype_name(t->data_type));
        goto done;
    }
    PRT_CHECK_GOTO(prt_onnx_decode(ctx, path, NULL, "tensor", t, &c), st, done);
    st = prt_tensor_alloc(ctx, prt_cpu_device(ctx), PRT_F32, &c.shape, out);
    if (st == PRT_OK) memcpy(out->data, c.f, (size_t)c.numel * 4);
    if (st == PRT_OK && name) {
        *name = prt_strdup(ctx, t->name ? t->name : "");
        if (!*name) {
            prt_tensor_release(ctx, out);
            st = prt_error(ctx, PRT_ERR_NOMEM, "%s: out of memory", path);
        }
    }
    prt_onnx_const_free(ctx, &c);
done:
    onnx__tensor_proto__free_unpacked(t, &a);
    return st;
}

prt_status prt_onnx_write_file(prt_context *ctx, const char *path, const void *bytes, size_t n) {
    size_t len = strlen(path);
    char *tmp = prt_malloc(ctx, len + 16);
    if (!tmp) return prt_error(ctx, PRT_ERR_NOMEM, "%s: out of memory", path);
    snprintf(tmp, len + 16, "%s.tmpXXXXXX", path);
    prt_status st = PRT_OK;
    int fd = mkstemp(tmp);
    if (fd < 0) {
        st = prt_error(ctx, PRT_ERR_IO, "%s: cannot create a temporary file: %s", path, strerror(errno));
        prt_free(ctx, tmp, 0);
        return st;
    }
    (void)fchmod(fd, 0644); /* mkstemp creates 0600; a model is meant to be shared */
    const unsigned char *p = bytes;
    for (size_t done = 0; done < n;) {
        ssize_t w = write(fd, p + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            st = prt_error(ctx, PRT_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
            break;
        }
        done += (size_t)w;
    }
    if (st == PRT_OK && fsync(fd) != 0) st = prt_error(ctx, PRT_ERR_IO, "%s: cannot sync: %s", path, strerror(errno));
    close(fd);
    if (st == PRT_OK && rename(tmp, path) != 0)
        st = prt_error(ctx, PRT_ERR_IO, "%s: cannot rename the temporary file into place: %s", path, strerror(errno));
    if (st != PRT_OK) unlink(tmp);
    if (st == PRT_OK) prt_fsync_parent(path); /* makes the rename itself durable */
    prt_free(ctx, tmp, 0);
    return st;
}

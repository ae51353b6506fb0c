/* The IDX reader (the MNIST / Fashion-MNIST file format), raw or gzip-compressed.
 *
 * An IDX file is a 4-byte magic (0, 0, data type code, number of dimensions), one
 * big-endian uint32 per dimension, then the values in row-major order. We accept
 * idx3 images and idx1 labels of unsigned bytes. Both headers are read and checked
 * before anything is allocated; the data is then streamed through zlib's inflate in
 * chunks and converted to float32 on the fly, so the peak memory is the float
 * dataset plus two 64 KiB buffers. */
#include "frontends/data_impl.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <zlib.h>

#define CHUNK 65536

/* A byte source over one file: raw bytes, or the inflated content of one or more
 * gzip members (decided by the first two bytes). next_in/avail_in of the z_stream
 * are the read cursor in both modes. */
typedef struct idx_src {
    prt_context *ctx;
    const char *path;
    FILE *f;
    bool gz, zinit;
    bool member_end; /* inflate finished a gzip member (trailer checked) */
    bool eof;        /* the file has no more bytes to buffer */
    bool cut;        /* the gzip data ended inside a member */
    z_stream zs;
    unsigned char in[CHUNK];
} idx_src;

static voidpf z_alloc(voidpf opaque, uInt items, uInt size) { return prt_calloc(opaque, items, size); }
static void z_free(voidpf opaque, voidpf p) { prt_free(opaque, p, 0); }

/* Buffers until at least `min` bytes are available or the file ends. */
static prt_status src_fill(idx_src *s, size_t min) {
    if (s->zs.avail_in >= min || s->eof) return PRT_OK;
    if (s->zs.avail_in > 0 && s->zs.next_in != s->in) memmove(s->in, s->zs.next_in, s->zs.avail_in);
    s->zs.next_in = s->in;
    while (s->zs.avail_in < min && !s->eof) {
        size_t got = fread(s->in + s->zs.avail_in, 1, CHUNK - s->zs.avail_in, s->f);
        s->zs.avail_in += (uInt)got;
        if (got == 0) {
            if (ferror(s->f)) return prt_error(s->ctx, PRT_ERR_IO, "%s: read error: %s", s->path, strerror(errno));
            s->eof = true;
        }
    }
    return PRT_OK;
}

static void src_close(idx_src *s) {
    if (!s) return;
    if (s->zinit) inflateEnd(&s->zs);
    if (s->f) fclose(s->f);
    prt_free(s->ctx, s, sizeof *s);
}

static prt_status src_open(prt_context *ctx, const char *path, idx_src **out) {
    prt_status st = PRT_OK;
    *out = NULL;
    idx_src *s = prt_calloc(ctx, 1, sizeof *s);
    if (!s) return prt_error(ctx, PRT_ERR_NOMEM, "%s: out of memory", path);
    s->ctx = ctx;
    s->path = path;
    s->zs.next_in = s->in;
    s->f = fopen(path, "rb");
    if (!s->f) {
        int e = errno;
        st = prt_error(ctx, e == ENOENT ? PRT_ERR_NOT_FOUND : PRT_ERR_IO, "%s: cannot open: %s", path, strerror(e));
        goto fail;
    }
    PRT_CHECK_GOTO(src_fill(s, 2), st, fail);
    if (s->zs.avail_in >= 2 && s->in[0] == 0x1f && s->in[1] == 0x8b) {
        s->gz = true;
        s->zs.zalloc = z_alloc;
        s->zs.zfree = z_free;
        s->zs.opaque = ctx;
        int zr = inflateInit2(&s->zs, 16 + MAX_WBITS); /* 16: expect a gzip wrapper */
        if (zr != Z_OK) {
            st = prt_error(ctx, zr == Z_MEM_ERROR ? PRT_ERR_NOMEM : PRT_ERR_BACKEND, "%s: zlib: %s", path,
                           s->zs.msg ? s->zs.msg : zError(zr));
            goto fail;
        }
        s->zinit = true;
    }
    *out = s;
    return PRT_OK;
fail:
    src_close(s);
    return st;
}

/* Reads up to n bytes of content; *got < n only at the end of the data (then
 * s->cut says whether a gzip member was cut short). */
static prt_status src_read(idx_src *s, unsigned char *buf, size_t n, size_t *got) {
    *got = 0;
    if (!s->gz) {
        while (*got < n) {
            PRT_CHECK(src_fill(s, 1));
            if (s->zs.avail_in == 0) break;
            size_t k = n - *got < s->zs.avail_in ? n - *got : s->zs.avail_in;
            memcpy(buf + *got, s->zs.next_in, k);
            s->zs.next_in += k;
            s->zs.avail_in -= (uInt)k;
            *got += k;
        }
        return PRT_OK;
    }
    s->zs.next_out = buf;
    s->zs.avail_out = (uInt)n;
    while (s->zs.avail_out > 0) {
        if (s->member_end) {
            /* After a member: the end of the file, another member (gzip allows
             * concatenation), or bytes that are not gzip data at all. */
            PRT_CHECK(src_fill(s, 2));
            if (s->zs.avail_in == 0) break;
            if (s->zs.avail_in < 2 || s->zs.next_in[0] != 0x1f || s->zs.next_in[1] != 0x8b)
                return prt_error(s->ctx, PRT_ERR_PARSE, "%s: trailing bytes after the gzip data", s->path);
            inflateReset(&s->zs);
            s->member_end = false;
        }
        PRT_CHECK(src_fill(s, 1));
        if (s->zs.avail_in == 0) {
            s->cut = true;
            break;
        }
        int zr = inflate(&s->zs, Z_NO_FLUSH);
        if (zr == Z_STREAM_END) {
            s->member_end = true;
        } else if (zr == Z_DATA_ERROR || zr == Z_NEED_DICT) {
            return prt_error(s->ctx, PRT_ERR_PARSE, "%s: corrupt gzip data: %s", s->path,
                             s->zs.msg ? s->zs.msg : "needs a preset dictionary");
        } else if (zr == Z_MEM_ERROR) {
            return prt_error(s->ctx, PRT_ERR_NOMEM, "%s: out of memory in zlib", s->path);
        } else if (zr != Z_OK) {
            /* Z_BUF_ERROR cannot happen with input and output space available */
            return prt_error(s->ctx, PRT_ERR_BACKEND, "%s: zlib: %s", s->path, s->zs.msg ? s->zs.msg : zError(zr));
        }
    }
    *got = n - s->zs.avail_out;
    return PRT_OK;
}

/* After the announced data: nothing may follow, and a gzip stream must end whole. */
static prt_status src_finish(idx_src *s, size_t expected, const char *what) {
    unsigned char b;
    size_t got;
    PRT_CHECK(src_read(s, &b, 1, &got));
    if (got > 0)
        return prt_error(s->ctx, PRT_ERR_PARSE, "%s: trailing bytes after the expected %zu bytes of %s data",
                         s->path, expected, what);
    if (s->cut)
        return prt_error(s->ctx, PRT_ERR_PARSE, "%s: truncated gzip data: the stream ends before its trailer",
                         s->path);
    return PRT_OK;
}

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static const char *idx_type_name(unsigned code) {
    switch (code) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "int16";
    case 0x0C: return "int32";
    case 0x0D: return "float32";
    case 0x0E: return "float64";
    default: return "unknown";
    }
}

/* Reads and checks the magic of an idx<ndim> file of unsigned bytes, and its
 * dimensions into dims. */
static prt_status read_header(idx_src *s, int ndim, const char *kind, uint32_t *dims) {
    unsigned char h[16];
    size_t want = 4 + 4 * (size_t)ndim, got, more = 0;
    /* The magic first: a wrong file is reported as such even when it is short. */
    PRT_CHECK(src_read(s, h, 4, &got));
    if (got == 4) {
        uint32_t magic = be32(h), expect = 0x0800u | (uint32_t)ndim;
        if (h[0] != 0 || h[1] != 0 || h[3] != ndim)
            return prt_error(s->ctx, PRT_ERR_PARSE,
                             "%s: bad magic 0x%08" PRIx32 ", expected 0x%08" PRIx32 " (an idx%d %s file)", s->path,
                             magic, expect, ndim, kind);
        if (h[2] != 0x08)
            return prt_error(s->ctx, PRT_ERR_PARSE, "%s: data type code 0x%02x (%s), expected 0x08 (unsigned byte)",
                             s->path, h[2], idx_type_name(h[2]));
        PRT_CHECK(src_read(s, h + 4, want - 4, &more));
    }
    if (got + more < want)
        return prt_error(s->ctx, PRT_ERR_PARSE, "%s: truncated: expected %zu header bytes, got %zu", s->path,
                         want, got + more);
    for (int i = 0; i < ndim; i++) dims[i] = be32(h + 4 + 4 * i);
    return PRT_OK;
}

prt_status prt_dataset_open_idx(prt_context *ctx, const char *images_path, const char *labels_path,
                                prt_dataset **out) {
    prt_status st = PRT_OK;
    idx_src *im = NULL, *lb = NULL;
    prt_dataset *d = NULL;
    unsigned char *chunk = NULL;
    *out = NULL;

    uint32_t idim[3] = {0}, ldim[1] = {0};
    PRT_CHECK_GOTO(src_open(ctx, images_path, &im), st, done);
    PRT_CHECK_GOTO(read_header(im, 3, "image", idim), st, done);
    if (idim[0] == 0) {
        st = prt_error(ctx, PRT_ERR_PARSE, "%s: the header declares 0 images", images_path);
        goto done;
    }
    if (idim[1] < 1 || idim[1] > PRT_DATA_MAX_SIDE || idim[2] < 1 || idim[2] > PRT_DATA_MAX_SIDE) {
        st = prt_error(ctx, PRT_ERR_PARSE,
                       "%s: image size %" PRIu32 "x%" PRIu32 " is out of range (rows and columns must be 1..%d)",
                       images_path, idim[1], idim[2], PRT_DATA_MAX_SIDE);
        goto done;
    }
    size_t plane = (size_t)idim[1] * idim[2], pixels;
    if (!prt_mul_size(plane, idim[0], &pixels) || pixels > (size_t)PRT_DATA_MAX_VALUES) {
        st = prt_error(ctx, PRT_ERR_LIMIT,
                       "%s: %" PRIu32 " images of %" PRIu32 "x%" PRIu32 " exceed the in-memory limit of %" PRId64
                       " pixels (2 GiB as float32)",
                       images_path, idim[0], idim[1], idim[2], PRT_DATA_MAX_VALUES);
        goto done;
    }
    PRT_CHECK_GOTO(src_open(ctx, labels_path, &lb), st, done);
    PRT_CHECK_GOTO(read_header(lb, 1, "label", ldim), st, done);
    if (ldim[0] == 0) {
        st = prt_error(ctx, PRT_ERR_PARSE, "%s: the header declares 0 labels", labels_path);
        goto done;
    }
    if (ldim[0] != idim[0]) {
        st = prt_error(ctx, PRT_ERR_PARSE, "%s has %" PRIu32 " images but %s has %" PRIu32 " labels", images_path,
                       idim[0], labels_path, ldim[0]);
        goto done;
    }

    prt_shape shape = prt_shape_make(3, (const int64_t[]){1, idim[1], idim[2]});
    PRT_CHECK_GOTO(prt_dataset_alloc_(ctx, images_path, idim[0], &shape, &d), st, done);
    chunk = prt_malloc(ctx, CHUNK);
    if (!chunk) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "%s: out of memory", images_path);
        goto done;
    }

    /* x/255 in float, rounded once, for each byte value */
    float lut[256];
    for (int i = 0; i < 256; i++) lut[i] = (float)i / 255.0f;
    size_t done_px = 0;
    while (done_px < pixels) {
        size_t want = pixels - done_px < CHUNK ? pixels - done_px : CHUNK, got;
        PRT_CHECK_GOTO(src_read(im, chunk, want, &got), st, done);
        float *dst = d->images + done_px;
        for (size_t i = 0; i < got; i++) dst[i] = lut[chunk[i]];
        done_px += got;
        if (got < want) {
            st = prt_error(ctx, PRT_ERR_PARSE, "%s: truncated: expected %zu bytes of pixel data, got %zu",
                           images_path, pixels, done_px);
            goto done;
        }
    }
    PRT_CHECK_GOTO(src_finish(im, pixels, "pixel"), st, done);

    size_t nlab = idim[0], done_lb = 0;
    int maxlab = 0;
    while (done_lb < nlab) {
        size_t want = nlab - done_lb < CHUNK ? nlab - done_lb : CHUNK, got;
        PRT_CHECK_GOTO(src_read(lb, chunk, want, &got), st, done);
        for (size_t i = 0; i < got; i++) {
            d->labels[done_lb + i] = chunk[i];
            if (chunk[i] > maxlab) maxlab = chunk[i];
        }
        done_lb += got;
        if (got < want) {
            st = prt_error(ctx, PRT_ERR_PARSE, "%s: truncated: expected %zu bytes of label data, got %zu",
                           labels_path, nlab, done_lb);
            goto done;
        }
    }
    PRT_CHECK_GOTO(src_finish(lb, nlab, "label"), st, done);
    /* Labels are unsigned bytes, so at most 256 classes: the classes are 0..max. */
    d->classes = maxlab + 1;
    *out = d;
    d = NULL;
done:
    if (chunk) prt_free(ctx, chunk, CHUNK);
    prt_dataset_destroy(d);
    src_close(lb);
    src_close(im);
    return st;
}

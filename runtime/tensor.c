/* Tensors: strided views over reference-counted device buffers. */
#include "runtime/runtime_impl.h"

#include <string.h>

void prt_tensor_set_contiguous(prt_tensor *t) {
    int64_t st = 1;
    for (int i = t->shape.ndim - 1; i >= 0; i--) {
        t->strides[i] = st;
        st *= t->shape.d[i];
    }
}

bool prt_tensor_is_contiguous(const prt_tensor *t) {
    int64_t st = 1;
    for (int i = t->shape.ndim - 1; i >= 0; i--) {
        if (t->shape.d[i] != 1 && t->strides[i] != st) return false;
        st *= t->shape.d[i];
    }
    return true;
}

prt_status prt_tensor_alloc(prt_context *ctx, prt_device *dev, prt_dtype dt, const prt_shape *s,
                            prt_tensor *out) {
    memset(out, 0, sizeof *out);
    size_t bytes;
    PRT_CHECK(prt_shape_nbytes(ctx, s, dt, &bytes));
    prt_buffer *b = prt_malloc(ctx, sizeof *b);
    if (!b) return prt_error(ctx, PRT_ERR_NOMEM, "out of memory");
    memset(b, 0, sizeof *b);
    prt_status st = dev->iface->alloc(dev, bytes, &b->data);
    if (st != PRT_OK) {
        prt_free(ctx, b, sizeof *b);
        return st;
    }
    b->dev = dev;
    b->size = bytes;
    b->refs = 1;
    b->owned = true;
    out->buf = b;
    out->data = b->data;
    out->dtype = dt;
    out->shape = *s;
    prt_tensor_set_contiguous(out);
    return PRT_OK;
}

void prt_tensor_wrap(prt_tensor *out, void *data, prt_dtype dt, const prt_shape *s) {
    memset(out, 0, sizeof *out);
    out->dtype = dt;
    out->shape = *s;
    prt_tensor_set_contiguous(out);
    out->data = data;
}

void prt_tensor_release(prt_context *ctx, prt_tensor *t) {
    if (!t) return;
    prt_buffer *b = t->buf;
    if (b && --b->refs == 0) {
        if (b->owned) b->dev->iface->free(b->dev, b->data);
        prt_free(ctx, b, sizeof *b);
    }
    memset(t, 0, sizeof *t);
}

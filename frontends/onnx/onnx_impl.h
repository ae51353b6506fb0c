/* Private helpers of frontends/onnx/: file reading and
 * TensorProto decoding, shared by the importer, the exporter and the test runner. */
#ifndef PARROTS_ONNX_IMPL_H
#define PARROTS_ONNX_IMPL_H

#include "frontends/file_util.h"
#include "frontends/onnx/onnx_api.h"
#include "onnx.pb-c.h"

/* Reads a whole regular file of at most `limit` bytes (checked on the size
 * before reading and again while reading). `what` names it in messages. Caller
 * frees *buf with prt_free(ctx, *buf, 0). */
prt_status prt_onnx_read_file(prt_context *ctx, const char *path, const char *what, size_t limit,
                              unsigned char **buf, size_t *size);

/* A decoded TensorProto: shape, ONNX data type, and the elements as float32
 * (FLOAT) or int64 (INT64, INT32): exactly one of f, i is set. */
typedef struct prt_onnx_const {
    const char *name;   /* borrowed from the proto */
    prt_shape shape;
    int32_t dtype;      /* ONNX__TENSOR_PROTO__DATA_TYPE__* */
    int64_t numel;
    float *f;           /* owned */
    int64_t *i;         /* owned */
} prt_onnx_const;

/* Decodes t: dims checked (rank <= PRT_MAX_DIMS, each >= 0, element count within
 * PRT_MAX_ELEMS), data from raw_data, float_data/int64_data/int32_data or
 * external data relative to `model_dir` (NULL: external data refused). `file`
 * and `what` ("initializer 'w'") prefix messages. */
prt_status prt_onnx_decode(prt_context *ctx, const char *file, const char *model_dir, const char *what,
                           const Onnx__TensorProto *t, prt_onnx_const *out);
void prt_onnx_const_free(prt_context *ctx, prt_onnx_const *c);
/* "float32", "int64", ... for messages. */
const char *prt_onnx_dtype_name(int32_t t);

/* Reads and unpacks a ModelProto file (size-limited); caller frees with
 * prt_onnx_free_model. */
prt_status prt_onnx_read_model(prt_context *ctx, const char *path, Onnx__ModelProto **out);
void prt_onnx_free_model(prt_context *ctx, Onnx__ModelProto *mp);
/* prt_onnx_import of an unpacked model; `path` names it in messages and its
 * directory confines external data. mp is only read. */
prt_status prt_onnx_import_proto(prt_context *ctx, const char *path, const Onnx__ModelProto *mp,
                                 prt_onnx_model **out);
/* True when the mapping of nd's op takes input k as a constant (a weight, a
 * shape, pads, bounds) rather than as a computed value. */
bool prt_onnx_const_input(const Onnx__NodeProto *nd, size_t k);

/* Writes bytes to path atomically (temporary file in the same directory, fsync,
 * rename, fsync of the directory). */
prt_status prt_onnx_write_file(prt_context *ctx, const char *path, const void *bytes, size_t n);

#endif

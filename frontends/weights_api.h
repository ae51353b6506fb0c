/* The weights file: a network's trained parameters and running state (batch-norm
 * statistics) by name, in the simple little-endian format of
 * docs/weights-format.md ("PRTW", version 1, CRC32 at the end). The
 * serialization issue replaces it with protobuf-c checkpoints.
 *
 *     // after training: every param and state value of g, read from vm
 *     PRT_CHECK(prt_weights_save(ctx, "net.prtw", g, vm));
 *
 *     prt_weights *w;
 *     PRT_CHECK(prt_weights_read(ctx, "net.prtw", &w));   // validated, CRC checked
 *     PRT_CHECK(prt_weights_apply(ctx, w, g, vm));       // names and shapes must match
 *     prt_weights_destroy(ctx, w);
 *
 * Writing is atomic: a temporary file in the same directory, fsync, rename. A
 * reader never sees a partial file under the final name.
 */
#ifndef PARROTS_WEIGHTS_API_H
#define PARROTS_WEIGHTS_API_H

#include "vm/vm_api.h"

#define PRT_WEIGHTS_VERSION 1
#define PRT_WEIGHTS_MAX_NAME 4096
#define PRT_WEIGHTS_MAX_NDIM 8

typedef struct prt_weights_tensor {
    const char *name;   /* borrowed from the prt_weights (NUL-terminated copy) */
    prt_dtype dtype;
    prt_shape shape;
    const void *data;   /* little-endian bytes inside the file image (may be unaligned) */
    size_t nbytes;
    int64_t offset;     /* file offset of the tensor's record, for messages */
} prt_weights_tensor;

typedef struct prt_weights {
    char *path;         /* owned: the file name used in messages */
    int n;
    prt_weights_tensor *t;
    unsigned char *image; /* owned: the whole file */
    size_t size;
    char *names;        /* owned: the NUL-terminated names */
    struct prt_strtab *index; /* owned: name -> index in t */
} prt_weights;

/* Writes n tensors (host memory, contiguous) under their names, atomically. */
prt_status prt_weights_write(prt_context *ctx, const char *path, int n, const char *const *names,
                             const prt_tensor *const *tensors);
/* Writes every parameter and state value of g (in value order), taking the data
 * from vm's tensor of the same name (any device: through prt_vm_pull_state). */
prt_status prt_weights_save(prt_context *ctx, const char *path, const prt_graph *g, prt_vm *vm);

/* Reads and validates a whole weights file: magic, version, every length, ndim,
 * dim and size against the rest of the file, duplicate names, trailing bytes and
 * the CRC, with messages "FILE: offset N: ...". Caller frees with
 * prt_weights_destroy. */
prt_status prt_weights_read(prt_context *ctx, const char *path, prt_weights **out);
/* Parses a file image already in memory (copied); `path` names it in messages. */
prt_status prt_weights_parse(prt_context *ctx, const char *path, const void *bytes, size_t size,
                             prt_weights **out);
void prt_weights_destroy(prt_context *ctx, prt_weights *w);
/* The tensor named `name`, or NULL. */
const prt_weights_tensor *prt_weights_find(const prt_weights *w, const char *name);

/* Copies the file's tensors into vm (any device: through its host mirror and
 * prt_vm_push_state): every parameter and state value of g must be in the file
 * with the same dtype and shape, and the file may hold nothing else. Nothing is
 * copied unless everything matches. */
prt_status prt_weights_apply(prt_context *ctx, const prt_weights *w, const prt_graph *g, prt_vm *vm);

/* Copies every parameter and state tensor of g from vm `src` into vm `dst` by
 * name (training VM -> inference VM), on any devices (through both host
 * mirrors). Both must have them with equal shapes. */
prt_status prt_weights_copy_vm(prt_context *ctx, const prt_graph *g, prt_vm *src, prt_vm *dst);

#endif

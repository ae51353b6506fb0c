/* Helpers the file formats share (weights, checkpoints, programs, ONNX):
 * little-endian header fields, making a rename durable, and a protobuf-c
 * allocator that goes through the context's allocation hook. */
#ifndef PARROTS_FILE_UTIL_H
#define PARROTS_FILE_UTIL_H

#include "runtime/runtime_impl.h"

#include <protobuf-c/protobuf-c.h>

static inline void prt_le_put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static inline void prt_le_put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static inline uint32_t prt_le_get_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t prt_le_get_u64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* fsync of a directory, so a rename into it is durable (best effort). */
void prt_fsync_dir(const char *dir);
/* The same for the directory holding `path`. */
void prt_fsync_parent(const char *path);

/* protobuf-c allocates through the context's hook, so tests can inject failures. */
void prt_pb_allocator(prt_context *ctx, ProtobufCAllocator *a);

#endif

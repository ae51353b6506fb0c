/* libFuzzer target: the program-file loader (frontends/program_file.c) over
 * arbitrary bytes, from memory. Each input is loaded as it is (header checks,
 * CRC) and then once more with its header's length and CRC made right, so
 * mutations of the payload reach the protobuf-c decoder, the limits, the
 * verifier and the plan checks instead of stopping at the checksum. Every input
 * must load or be refused with a message; sanitizers catch the rest.
 * Seeds: fuzz/corpus/fuzz_program/. */
#include "frontends/program_file_api.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void load(prt_context *ctx, const void *bytes, size_t size) {
    prt_program *p = NULL;
    /* no VM: a valid file may declare tensors far larger than the fuzzer's memory */
    if (prt_program_load_buffer(ctx, "fuzz.pb", bytes, size, &p) == PRT_OK) prt_program_destroy(ctx, p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    prt_context_options o = {.struct_size = sizeof o, .log_level = PRT_LOG_ERROR};
    prt_context *ctx = NULL;
    if (prt_context_create(&o, &ctx) != PRT_OK) return 0;
    load(ctx, data, size);
    if (size >= PRT_PROGRAM_HEADER_BYTES) {
        unsigned char *b = malloc(size);
        if (b) {
            memcpy(b, data, size);
            uint64_t len = size - PRT_PROGRAM_HEADER_BYTES;
            uint32_t crc = (uint32_t)crc32_z(crc32_z(0, NULL, 0), b + PRT_PROGRAM_HEADER_BYTES, (size_t)len);
            for (int i = 0; i < 4; i++) b[12 + i] = (unsigned char)(crc >> (8 * i));
            for (int i = 0; i < 8; i++) b[16 + i] = (unsigned char)(len >> (8 * i));
            load(ctx, b, size);
            free(b);
        }
    }
    prt_context_destroy(ctx);
    return 0;
}

/* libFuzzer target: the ONNX importer (frontends/onnx/) over arbitrary bytes.
 * Each input is decoded as a ModelProto with protobuf-c (through the context's
 * allocator, as prt_onnx_read_model does), imported — version checks, the op
 * mapping, initializers, shape inference — and, when that succeeds, compiled
 * and planned at the model's batch. External data resolves against a directory
 * that does not exist, so no input reaches the file system. Every input must
 * import or be refused with a message; sanitizers catch the rest.
 * Seeds: small models of ONNX's backend tests, which scripts/fuzz.sh copies from
 * Debian's libonnx-testdata. */
#include "frontends/onnx/onnx_impl.h"

#include "onnx.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    prt_context_options o = {.struct_size = sizeof o, .log_level = PRT_LOG_ERROR};
    prt_context *ctx = NULL;
    if (prt_context_create(&o, &ctx) != PRT_OK) return 0;
    ProtobufCAllocator a;
    prt_pb_allocator(ctx, &a);
    Onnx__ModelProto *mp = onnx__model_proto__unpack(&a, size, data);
    if (mp) {
        prt_onnx_model *m = NULL;
        if (prt_onnx_import_proto(ctx, "/nonexistent-parrots-fuzz/model.onnx", mp, &m) == PRT_OK) {
            prt_program *p = NULL;
            if (m->batch >= 1 && m->batch <= 64 && prt_vm_compile(m->g, m->batch, &p) == PRT_OK)
                prt_program_destroy(ctx, p);
            prt_onnx_model_destroy(ctx, m);
        }
        onnx__model_proto__free_unpacked(mp, &a);
    }
    prt_context_destroy(ctx);
    return 0;
}

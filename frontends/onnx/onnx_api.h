/* ONNX models in and out: import a ModelProto (protobuf-c, the schema of Debian's
 * libonnx-dev) as a Parrots graph plus the values of its initializers, export an
 * inference graph with its weights, and read the TensorProto files of ONNX's
 * backend tests.
 *
 *     prt_onnx_model *m;
 *     PRT_CHECK(prt_onnx_import(ctx, "model.onnx", &m));   // graph, batch, weights
 *     prt_program *p;
 *     PRT_CHECK(prt_vm_compile(m->g, m->batch, &p));
 *     prt_vm *vm;
 *     PRT_CHECK(prt_vm_create(ctx, p, prt_cpu_device(ctx), NULL, &vm));
 *     PRT_CHECK(prt_onnx_apply(ctx, m, vm));                // the initializers' values
 *     ...
 *     prt_onnx_model_destroy(ctx, m);
 *
 * Every file is untrusted: a model larger than PRT_ONNX_MAX_FILE is refused before
 * it is read; opsets outside PRT_ONNX_OPSET_MIN..MAX, dtypes other than float32
 * and ops without a Parrots mapping are PRT_ERR_UNSUPPORTED, and every
 * unsupported op of a model is named in one message; external data must lie
 * inside the model's directory.
 *
 * Batch: Parrots inputs are per-sample. The first dimension of every (rank >= 2)
 * input is the batch; a symbolic first dimension means batch 1.
 */
#ifndef PARROTS_ONNX_API_H
#define PARROTS_ONNX_API_H

#include "vm/vm_api.h"

/* Protocol buffers cannot encode messages of 2 GiB or more. */
#define PRT_ONNX_MAX_FILE ((size_t)2 << 30)
/* Default-domain ("" or "ai.onnx") opsets the importer maps. */
#define PRT_ONNX_OPSET_MIN 1
#define PRT_ONNX_OPSET_MAX 17
/* The opset the exporter writes. */
#define PRT_ONNX_EXPORT_OPSET 13

typedef struct prt_onnx_model {
    prt_graph *g;        /* owned; parameters bound */
    int64_t batch;       /* the inputs' first dimension (1 when symbolic) */
    int opset;           /* the default domain's opset */
    /* The values of the graph's parameter, state and constant tensors, by the
     * graph's value name ("<node>.weight", or the initializer's name for a
     * constant input of an elementwise op): host float32, contiguous. */
    int n;
    char **names;        /* owned */
    prt_tensor *t;       /* owned */
    int cap, cap_names;
} prt_onnx_model;

/* Reads, validates and maps the model. Caller frees with prt_onnx_model_destroy. */
prt_status prt_onnx_import(prt_context *ctx, const char *path, prt_onnx_model **out);
void prt_onnx_model_destroy(prt_context *ctx, prt_onnx_model *m);
/* The graph alone (for `parrots check`); caller frees with prt_graph_destroy. */
prt_status prt_onnx_load(prt_context *ctx, const char *path, prt_graph **out);
/* Copies the model's weights into the VM's tensors of the same names (every one
 * must exist with the same shape; nothing is copied otherwise). */
prt_status prt_onnx_apply(prt_context *ctx, const prt_onnx_model *m, prt_vm *vm);

/* Reads one TensorProto file (an ONNX backend test's input_K.pb or output_K.pb):
 * float32 only. *out is a host tensor the caller releases with
 * prt_tensor_release; *name (may be NULL) a copy of the tensor's name, freed with
 * prt_free(ctx, name, 0). */
prt_status prt_onnx_read_tensor(prt_context *ctx, const char *path, prt_tensor *out, char **name);

/* `parrots import`: the model as a YAML network (yaml_path) and a weights file
 * (weights_path, docs/weights-format.md), both written atomically after the
 * YAML has been loaded back and the weights applied to it (onnx_convert.c).
 * Constants that are not a layer's parameters have no YAML form:
 * PRT_ERR_UNSUPPORTED. */
prt_status prt_onnx_convert(prt_context *ctx, const char *model, const char *yaml_path, const char *weights_path);

/* One ONNX backend test case (a folder with model.onnx and test_data_set_N/),
 * compared within ONNX's backend-test tolerance (onnx_backend_test.c). `why`
 * (cap bytes) gets the reason of a failure or of unsupported. */
#define PRT_ONNX_TEST_RTOL 1e-3
#define PRT_ONNX_TEST_ATOL 1e-7
typedef enum { PRT_ONNX_PASS, PRT_ONNX_FAIL, PRT_ONNX_UNSUPPORTED } prt_onnx_case_result;
prt_onnx_case_result prt_onnx_test_case(prt_context *ctx, const char *dir, bool reference, char *why, size_t cap);

/* Writes g (an inference graph, params bound) as an ONNX model of opset
 * PRT_ONNX_EXPORT_OPSET with the parameter and state values read from vm,
 * atomically (temporary file, fsync, rename). Ops without an ONNX form are
 * PRT_ERR_UNSUPPORTED, all named in one message. */
prt_status prt_onnx_export(prt_context *ctx, prt_graph *g, prt_vm *vm, const char *path);

#endif

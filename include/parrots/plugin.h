/* Parrots operator plugins: the versioned C ABI (docs/plugin-abi.md).
 *
 * A plugin is a shared library that exports one function,
 *
 *     const prt_plugin_desc *prt_plugin_v1(void);
 *
 * returning a constant descriptor of the plugin and its ops. Parrots loads it
 * with `--plugin path/to/libfoo.so` or from PARROTS_PLUGIN_PATH, checks every
 * field, calls `init` with the table of host functions, and registers the ops;
 * any failure leaves the op registry as it was. A plugin links against nothing
 * of Parrots: everything it needs from the host comes through prt_plugin_host
 * (errors, logging, memory), so it needs only libc and, for CUDA kernels, the
 * CUDA runtime. This header is all a plugin includes.
 *
 *     static int swish_cpu(const prt_plugin_host *h, const prt_plugin_call *c) {
 *         const float *x = c->in[0].data;
 *         float *y = c->out[0].data;
 *         for (int64_t i = 0, n = h->numel(&c->in[0]); i < n; i++) y[i] = x[i] / (1 + expf(-x[i]));
 *         return 0;
 *     }
 *     static const prt_plugin_op ops[] = {{PRT_PLUGIN_OP_INIT, .name = "myorg.swish", .version = 1,
 *                                          .min_in = 1, .max_in = 1, .n_out = 1, .infer = prt_plugin_infer_same,
 *                                          .cpu = swish_cpu, .grad = swish_grad}};
 *     static const prt_plugin_desc desc = {PRT_PLUGIN_DESC_INIT, .name = "myorg", .version = "1.0.0",
 *                                          .ops = ops, .n_ops = 1};
 *     PRT_PLUGIN_EXPORT const prt_plugin_desc *prt_plugin_v1(void) { return &desc; }
 *
 * Stability rules (version 1 is frozen once published): a later ABI version
 * only appends fields to the end of these structs and functions to the end of
 * the host table; the struct_size fields say how much of a struct the other
 * side has, so a v1 plugin keeps loading into later hosts. Nothing is removed,
 * reordered or retyped. Integers returned by plugin functions: 0 for success,
 * anything else for failure (after calling host->error).
 */
#ifndef PARROTS_PLUGIN_H
#define PARROTS_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PRT_PLUGIN_ABI_VERSION 1u
/* The entry symbol of ABI version 1: const prt_plugin_desc *prt_plugin_v1(void). */
#define PRT_PLUGIN_ENTRY_V1 "prt_plugin_v1"

#if defined(_WIN32)
#define PRT_PLUGIN_EXPORT __declspec(dllexport)
#else
#define PRT_PLUGIN_EXPORT __attribute__((visibility("default")))
#endif

/* At most this many dimensions (as Parrots' own tensors). */
#define PRT_PLUGIN_MAX_DIMS 8
/* At most this many integers in an INTS attribute. */
#define PRT_PLUGIN_MAX_INTS 8

/* Element types. Values are fixed by the ABI. */
typedef enum prt_plugin_dtype {
    PRT_PLUGIN_F32 = 0,
    PRT_PLUGIN_F64 = 1,
    PRT_PLUGIN_F16 = 2,
    PRT_PLUGIN_BF16 = 3,
    PRT_PLUGIN_I32 = 4,
    PRT_PLUGIN_I64 = 5,
    PRT_PLUGIN_U8 = 6,
} prt_plugin_dtype;

/* Where a kernel runs. */
typedef enum prt_plugin_device {
    PRT_PLUGIN_CPU = 0,
    PRT_PLUGIN_CUDA = 1,
} prt_plugin_device;

typedef enum prt_plugin_log_level {
    PRT_PLUGIN_LOG_DEBUG = 0,
    PRT_PLUGIN_LOG_INFO = 1,
    PRT_PLUGIN_LOG_WARN = 2,
} prt_plugin_log_level;

/* ---- attributes ---------------------------------------------------------- */

typedef enum prt_plugin_attr_type {
    PRT_PLUGIN_ATTR_INT = 0,
    PRT_PLUGIN_ATTR_FLOAT = 1,
    PRT_PLUGIN_ATTR_BOOL = 2,
    PRT_PLUGIN_ATTR_INTS = 3,  /* 1..PRT_PLUGIN_MAX_INTS integers */
    PRT_PLUGIN_ATTR_STRING = 4,
} prt_plugin_attr_type;

/* An attribute's value, as a kernel or shape function sees it. */
typedef struct prt_plugin_attr_value {
    int32_t type;              /* prt_plugin_attr_type */
    int32_t n;                 /* INTS: how many of i[] */
    int64_t i[PRT_PLUGIN_MAX_INTS]; /* INT and BOOL: i[0] */
    double f;                  /* FLOAT */
    const char *s;             /* STRING; valid during the call */
} prt_plugin_attr_value;

/* One attribute of an op's schema. */
typedef struct prt_plugin_attr_def {
    const char *name;          /* [a-z_][a-z0-9_]* */
    int32_t type;              /* prt_plugin_attr_type */
    bool required;
    prt_plugin_attr_value def; /* the default when not required (def.type is ignored) */
    int64_t min;               /* INT/INTS: smallest allowed element (INT64_MIN: none) */
    const char *doc;
} prt_plugin_attr_def;

/* ---- shapes and tensors ---------------------------------------------------- */

typedef struct prt_plugin_shape {
    int32_t ndim;
    int64_t d[PRT_PLUGIN_MAX_DIMS]; /* d[0] is the batch for activations */
} prt_plugin_shape;

/* A tensor as a kernel sees it: contiguous, row-major, on the call's device. */
typedef struct prt_plugin_tensor {
    void *data;                /* device memory on CUDA; may be NULL when empty */
    int32_t dtype;             /* prt_plugin_dtype */
    prt_plugin_shape shape;
} prt_plugin_tensor;

/* ---- calls ------------------------------------------------------------------ */

/* Shape and dtype inference (prt_plugin_op.infer): fill out[] and out_dtype[]
 * from in[] and attrs; report a problem with host->error(ic->host_ctx, ...). */
typedef struct prt_plugin_infer {
    uint32_t struct_size;
    void *host_ctx;            /* pass to host->error */
    const char *node_name;     /* the layer, for messages */
    const prt_plugin_attr_value *attrs; /* schema order */
    int32_t n_in;
    const prt_plugin_shape *in;
    const int32_t *in_dtype;   /* per input */
    int32_t n_out;
    prt_plugin_shape *out;     /* to fill */
    int32_t *out_dtype;        /* to fill; preset to in_dtype[0] */
} prt_plugin_infer;

/* A kernel call (prt_plugin_op.cpu / .cuda). */
typedef struct prt_plugin_call {
    uint32_t struct_size;
    void *host_ctx;            /* pass to host->error */
    const char *node_name;
    const prt_plugin_attr_value *attrs; /* schema order */
    int32_t n_in;
    const prt_plugin_tensor *in;
    int32_t n_out;
    const prt_plugin_tensor *out; /* write through out[k].data */
    void *workspace;           /* workspace(...) bytes, on the call's device; NULL if none */
    size_t workspace_size;
    int32_t device;            /* prt_plugin_device */
    void *stream;              /* CUDA: the cudaStream_t to launch on (never synchronise it); CPU: NULL */
    bool training;             /* a training step's forward (as opposed to inference) */
} prt_plugin_call;

/* A gradient builder call (prt_plugin_op.grad): the forward node's values and
 * the gradients flowing into its outputs, as value handles; the builder adds
 * nodes with host->grad_emit and stores each input's gradient handle in dx[]. */
typedef struct prt_plugin_grad {
    uint32_t struct_size;
    void *host_ctx;            /* pass to host->grad_emit and host->error */
    const char *node_name;
    int32_t n_in;
    const int32_t *x;          /* forward inputs */
    int32_t n_out;
    const int32_t *y;          /* forward outputs */
    const int32_t *dy;         /* per output: its gradient, or -1 when none flows there */
    int32_t *dx;               /* per input: to fill; preset to -1 (no gradient) */
    const prt_plugin_attr_value *attrs; /* the forward node's attributes, schema order */
} prt_plugin_grad;

/* ---- the host table ---------------------------------------------------------- */

typedef struct prt_plugin_host {
    uint32_t abi_version;      /* the host's PRT_PLUGIN_ABI_VERSION */
    uint32_t struct_size;      /* sizeof(prt_plugin_host) on the host */
    const char *parrots_version; /* "0.1.0" */
    /* Reports why a call failed; the message is prefixed with the op and the
     * layer. host_ctx: from the call, or in init the table's init_ctx (NULL
     * there only logs the message). Returns -1, so
     * `return h->error(c->host_ctx, "...")` both reports and fails. */
    int (*error)(void *host_ctx, const char *fmt, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 2, 3)))
#endif
        ;
    void (*log)(int32_t level, const char *fmt, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 2, 3)))
#endif
        ;
    /* Host memory through Parrots' allocator (its limits and accounting);
     * NULL on failure. free takes the size given to alloc. */
    void *(*alloc)(size_t size);
    void (*free)(void *p, size_t size);
    /* Tensor helpers: element count (product of dims, 1 for ndim 0), and size of a dtype in bytes. */
    int64_t (*numel)(const prt_plugin_tensor *t);
    int64_t (*shape_numel)(const prt_plugin_shape *s);
    size_t (*dtype_size)(int32_t dtype);
    /* Gradient builders: appends a node of op `op` (a built-in such as "mul",
     * or another op of a loaded plugin) reading the values in[0..n_in) and
     * writes its outputs' handles to outs. attrs: the op's attributes in its
     * schema order, or NULL to copy the forward node's (the two ops must then
     * declare the same prt_plugin_attr_def array). Shapes are inferred at once.
     * 0 or -1 (the host's message says why). */
    int (*grad_emit)(void *host_ctx, const char *op, const int32_t *in, int32_t n_in,
                     const prt_plugin_attr_value *attrs, int32_t *outs);
    /* The host_ctx for error() during init: its message then becomes part
     * of the loading error. Valid during init only. */
    void *init_ctx;
} prt_plugin_host;

/* ---- ops and the plugin ------------------------------------------------------- */

typedef struct prt_plugin_op {
    uint32_t struct_size;      /* sizeof(prt_plugin_op): PRT_PLUGIN_OP_INIT sets it */
    const char *name;          /* namespaced: "<namespace>.<op>", lower case, [a-z0-9_] parts */
    uint32_t version;          /* of the op's semantics, >= 1 */
    const char *doc;
    int32_t min_in, max_in;    /* data inputs, 1..64 */
    int32_t n_out;             /* 1..4 */
    const prt_plugin_attr_def *attrs;
    int32_t n_attrs;
    /* required: shape and dtype inference */
    int (*infer)(const prt_plugin_host *h, prt_plugin_infer *ic);
    /* required: the CPU kernel */
    int (*cpu)(const prt_plugin_host *h, const prt_plugin_call *c);
    /* optional: the CUDA kernel (launches on c->stream; tensors in device memory) */
    int (*cuda)(const prt_plugin_host *h, const prt_plugin_call *c);
    /* optional: the backward, in terms of other ops (built-in or the plugin's
     * own backward op); NULL: not differentiable (grad_note says why) */
    int (*grad)(const prt_plugin_host *h, prt_plugin_grad *g);
    const char *grad_note;
    /* optional: output 0 may share data input `inplace_in`'s memory (the
     * kernel must then work when out[0].data == in[inplace_in].data) */
    bool inplace;
    int32_t inplace_in;
    /* optional: workspace bytes for a call with these shapes (ic->out filled) */
    size_t (*workspace)(const prt_plugin_host *h, const prt_plugin_infer *ic);
    /* optional: FLOPs of a call (multiply-add = 2), for profiles and simulation */
    int64_t (*flops)(const prt_plugin_host *h, const prt_plugin_infer *ic);
    /* optional: the ONNX node this op exports as (domain "" is the standard one) */
    const char *onnx_domain;
    const char *onnx_op;
} prt_plugin_op;

typedef struct prt_plugin_desc {
    uint32_t abi_version;      /* PRT_PLUGIN_ABI_VERSION the plugin was built against */
    uint32_t struct_size;      /* sizeof(prt_plugin_desc) */
    const char *name;          /* the plugin's name, e.g. "myorg" */
    const char *version;       /* the plugin's own version, e.g. "1.2.0" */
    const prt_plugin_op *ops;
    int32_t n_ops;
    /* optional: called once before the ops are registered; a nonzero return
     * (after host->error(h->init_ctx, ...)) refuses the plugin. *state goes
     * to fini. h stays valid until fini returns. */
    int (*init)(const prt_plugin_host *h, void **state);
    /* optional: called when the host is done with the plugin */
    void (*fini)(void *state);
} prt_plugin_desc;

/* Initialisers for the leading fields: {PRT_PLUGIN_OP_INIT, .name = ...}. */
#define PRT_PLUGIN_OP_INIT .struct_size = (uint32_t)sizeof(prt_plugin_op)
#define PRT_PLUGIN_DESC_INIT .abi_version = PRT_PLUGIN_ABI_VERSION, .struct_size = (uint32_t)sizeof(prt_plugin_desc)

/* The entry point's type. */
typedef const prt_plugin_desc *(*prt_plugin_entry_fn)(void);

/* A ready-made infer: every output has input 0's shape and dtype. */
static inline int prt_plugin_infer_same(const prt_plugin_host *h, prt_plugin_infer *ic) {
    (void)h;
    for (int32_t k = 0; k < ic->n_out; k++) {
        ic->out[k] = ic->in[0];
        ic->out_dtype[k] = ic->in_dtype[0];
    }
    return 0;
}

#ifdef __cplusplus
}
#endif
#endif

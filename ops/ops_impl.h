/* Operators: attribute values, op schemas, kernels and the registry.
 *
 * An op schema says everything the compiler needs to know about an op: its data
 * inputs, outputs, typed attributes, parameter slots, shape inference, FLOP count,
 * in-place pair, workspace size and its CPU kernels (a plain C reference and a
 * fast path). Schemas are looked up by name through the registry (a hash table),
 * never by strcmp chains, so plugins can later add ops the same way.
 *
 *     int id;
 *     const prt_op_schema *conv = prt_op_find(ctx->ops, "conv", &id);
 *     int a = prt_op_attr_index(conv, "kernel");   // index into node attrs
 */
#ifndef PARROTS_OPS_IMPL_H
#define PARROTS_OPS_IMPL_H

#include "runtime/runtime_impl.h"

/* ---- attributes ------------------------------------------------------- */

typedef enum prt_attr_type {
    PRT_ATTR_INT,    /* one integer */
    PRT_ATTR_FLOAT,  /* one number */
    PRT_ATTR_BOOL,
    PRT_ATTR_INTS,   /* 1..PRT_ATTR_MAX_INTS integers; a scalar in YAML is a list of one */
    PRT_ATTR_STRING,
} prt_attr_type;

#define PRT_ATTR_MAX_INTS 8

typedef struct prt_attr {
    prt_attr_type type;
    bool set;        /* given by the user (false: the schema default) */
    int n;           /* number of ints for PRT_ATTR_INTS */
    int64_t i[PRT_ATTR_MAX_INTS]; /* INT uses i[0]; BOOL uses i[0] (0/1) */
    double f;
    const char *s;   /* STRING: interned in the graph */
} prt_attr;

typedef struct prt_attr_def {
    const char *name;
    prt_attr_type type;
    bool required;
    prt_attr def;    /* default when not required */
    int64_t min;     /* inclusive bound for INT/INTS elements (checked by the frontend) */
    const char *doc;
} prt_attr_def;

/* ---- parameters ------------------------------------------------------- */

typedef enum prt_init_kind {
    PRT_INIT_ZEROS,
    PRT_INIT_ONES,
    PRT_INIT_HE_NORMAL,   /* N(0, sqrt(2/fan_in)), fan_in = numel / shape[0] */
    PRT_INIT_UNIFORM_FAN, /* U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (linear weights); biases start at zero */
} prt_init_kind;

typedef struct prt_param_def {
    const char *name;      /* "weight", "bias", "scale", "shift", "mean", "var" */
    bool trainable;        /* false: running statistics (not counted as parameters) */
    prt_init_kind init;
} prt_param_def;

/* ---- shape inference -------------------------------------------------- */

typedef struct prt_infer_ctx {
    prt_context *ctx;
    const char *node_name;   /* for messages */
    prt_loc loc;
    const prt_attr *attrs;   /* schema order */
    int n_in;
    const prt_shape *in;     /* data input shapes */
    prt_dtype in_dtype;
    int n_out;
    prt_shape *out;          /* to fill */
    prt_dtype out_dtype;     /* defaults to in_dtype */
    int n_params;            /* schema's n_params */
    prt_shape *params;       /* to fill, one per slot */
    bool *param_present;     /* to fill: false where the slot is unused (e.g. bias: false) */
    const char *op_name;     /* the schema's name, for messages; NULL: omitted */
    /* (appended for bf16) bit k set: output k has dtype out_dtypes[k] rather than
     * out_dtype, e.g. batchnorm_bwd's f32 dscale and dshift beside a bf16 dx.
     * Callers zero it; prt_infer_out_dtype() reads the result. */
    unsigned out_dtype_mask;
    prt_dtype out_dtypes[4];
    /* (appended for plugins) the schema being inferred, so that one shape
     * function can serve several ops (ops/plugin.c's adapters); NULL: look
     * it up by op_name */
    const struct prt_op_schema *schema;
} prt_infer_ctx;

/* The dtype inference gave output k. */
static inline prt_dtype prt_infer_out_dtype(const prt_infer_ctx *ic, int k) {
    return (k < 4 && ((ic->out_dtype_mask >> k) & 1u)) ? ic->out_dtypes[k] : ic->out_dtype;
}

/* Reports a shape error at the node: "file:line:col: layer 'x' (conv): <msg>". */
prt_status prt_infer_error(const prt_infer_ctx *ic, const char *fmt, ...) PRT_PRINTF(2, 3);

/* ---- kernels ---------------------------------------------------------- */

typedef struct prt_kernel_call {
    prt_context *ctx;
    const prt_attr *attrs;         /* schema order */
    int n_in;                      /* data inputs followed by present params */
    const prt_tensor *const *in;
    int n_out;
    prt_tensor *const *out;
    void *workspace;
    size_t workspace_size;
    void *state;                   /* from prepare; NULL if none */
    bool training;                 /* batch norm batch statistics, dropout masks */
    bool recompute;                /* a RECOMPUTE of a forward call: same outputs, but no side
                                    * effects on state (batch norm's running statistics) */
    uint64_t rng_key;              /* per-call stream key (dropout) */
    uint64_t step;                 /* training step, part of the RNG counter */
    /* Data-parallel training (issue 6); zero in a one-process run. */
    struct prt_comm *comm;         /* the job's communicator (runtime/comm_api.h), NULL: one process */
    bool sync_bn;                  /* batch norm reduces its batch statistics over comm, so N ranks of
                                    * batch b compute what one rank of batch N*b would */
    int64_t sample_stride;         /* local sample i is sample i * sample_stride + sample_offset of the */
    int64_t sample_offset;         /* combined batch (0 and 0 mean 1 and 0): dropout keys its masks by it */
    /* The device the call runs on (appended for the CUDA backend). CPU calls see
     * the context's CPU device and stream NULL; CUDA calls (prt_op_schema.cuda)
     * get device pointers in their tensors and the compute stream (a
     * cudaStream_t) to launch on, and must not synchronise it. */
    struct prt_device *dev;
    void *stream;
    /* CUDA graphs (appended): device memory holding this call's per-step values
     * (prt_kernel.step_bytes of them, written by prt_kernel.step_values and
     * copied over before the run's first launch), which the kernel reads on the
     * device instead of taking them by value, so a captured launch sees each
     * step's values. NULL when the kernel has none or is called outside a CUDA
     * VM: the kernel then passes the values by value. */
    void *step_slot;
    /* Plugins (appended): the schema whose kernel this is and the layer, so
     * that one adapter kernel serves every plugin op (ops/plugin.c); set by
     * the VM, NULL when a test calls a kernel directly. */
    const struct prt_op_schema *schema;
    const char *node_name;
} prt_kernel_call;

typedef struct prt_kernel {
    /* optional: builds per-call state (e.g. a oneDNN primitive) once, before runs.
     * Shapes and attrs are those of the call; data pointers may be NULL. */
    prt_status (*prepare)(const prt_kernel_call *c, void **state);
    prt_status (*run)(const prt_kernel_call *c);
    void (*release)(void *state); /* optional */
    /* ---- CUDA graphs (appended; docs/gpu.md "CUDA graphs") ---- */
    /* optional: a CUDA kernel whose launch takes values that change from step
     * to step (the learning rate, dropout's counter) declares step_bytes and
     * step_values, which writes this step's values (c->step is set) into a
     * host slot of step_bytes bytes; the VM copies every call's slot to the
     * device (c->step_slot) in one copy before each run. */
    size_t step_bytes;
    prt_status (*step_values)(const prt_kernel_call *c, void *slot);
    /* optional: why this call cannot be captured into a CUDA graph (it
     * synchronises, reads device results on the host, ...); NULL: it can */
    const char *(*no_capture)(const prt_kernel_call *c);
} prt_kernel;

/* ---- schemas ---------------------------------------------------------- */

#define PRT_MAX_OP_PARAMS 4
#define PRT_VARIADIC 64 /* max data inputs of a variadic op */
/* max data inputs of an op with updates_inputs: one optimizer node takes every
 * parameter, its gradient and its state (PolyNet: thousands of tensors) */
#define PRT_MAX_UPDATE_IN (1 << 16)

struct prt_grad_ctx;
struct prt_graph;

typedef struct prt_op_schema {
    const char *name;
    const char *doc;
    int min_in, max_in;             /* data inputs */
    int n_out;
    const prt_attr_def *attrs;
    int n_attrs;
    const prt_param_def *params;
    int n_params;
    prt_status (*infer)(prt_infer_ctx *ic);
    /* multiply-adds count as 2 FLOPs; shapes are those after inference */
    int64_t (*flops)(const prt_infer_ctx *ic);
    int inplace_in;                 /* data input that may share the output's memory, -1 none */
    /* optional: workspace bytes for a call with these shapes */
    size_t (*workspace)(const prt_infer_ctx *ic);
    prt_kernel ref;                 /* plain C reference: readable, used by tests */
    prt_kernel fast;                /* production path; run == NULL falls back to ref */
    /* ---- training (appended; see ops/train_impl.h) ---- */
    /* optional: appends the nodes computing this node's input gradients (reverse
     * mode, ops/autodiff.c). NULL: not differentiable, and grad_note says why
     * ("backward-only op", "optimizer update"); autodiff then reports an error if a
     * gradient has to flow through the node. */
    prt_status (*grad)(struct prt_grad_ctx *gc);
    const char *grad_note;
    /* bit i set: data input i is read for its shape only (its values are not used),
     * so the memory planner need not keep it alive for this node */
    uint32_t shape_only;
    /* the kernel updates some of its inputs in place (optimizer updates, running
     * statistics) and may have no outputs; the verifier allows it to write params and state */
    bool updates_inputs;
    /* ---- memory planning (appended) ---- */
    /* memory-bound and free of side effects when re-run (a RECOMPUTE call skips
     * state updates): backward may recompute its output from kept values instead
     * of keeping it (memory/rewrite.c, mode `cheap`) */
    bool cheap;
    /* optional: true when, for these shapes, every data input is one contiguous
     * slice of output 0, input k starting elem_offsets[k] elements in (concat
     * with nothing but size-1 dims before its axis). The planner then places the
     * inputs there, so the producers write straight into the output, and the
     * kernel must skip copying a slice onto itself. */
    bool (*input_views)(const prt_infer_ctx *ic, int64_t *elem_offsets);
    /* ---- program files (appended) ---- */
    /* the version of the op's semantics (0 means 1); a saved program that names a
     * newer version is refused when loaded (frontends/program_file.c) */
    int version;
    /* ---- devices (appended) ---- */
    /* the CUDA kernel (ops/cuda/): run == NULL means the op has none, and a
     * program that uses it cannot run on a GPU (prt_vm_create says which op) */
    prt_kernel cuda;
    /* optional: workspace bytes of the CUDA kernel for these shapes (cuDNN's
     * algorithms need their own); NULL: the `workspace` hook's answer */
    size_t (*workspace_cuda)(const prt_infer_ctx *ic);
    /* ---- bf16 (appended) ---- */
    /* the CUDA kernel also takes bf16 activations (stored bf16, computed in f32;
     * parameters and statistics as the op documents): prt_graph_set_precision
     * (scheduler/precision.c) makes only such ops bf16, and a bf16 call of any
     * other op is refused when the VM is created. The CPU kernels compute f32
     * only (the `cast` op aside). */
    bool cuda_bf16;
    /* bit p set: parameter slot p stays f32 in a bf16 call (batch norm's scale,
     * shift and running statistics); the other slots get a bf16 cast of their
     * f32 master copy (conv and linear weights and biases) */
    uint8_t bf16_f32_params;
    /* ---- plugins (appended; ops/plugin_impl.h) ---- */
    /* the op of a loaded plugin this schema adapts (NULL: a built-in op) */
    const void *plugin_op;
    /* where the op comes from, for messages: "plugin /a/liba.so (myorg
     * 1.0.0)"; NULL: "Parrots (built-in)" */
    const char *source;
} prt_op_schema;

/* ---- gradient builders ------------------------------------------------ */

/* What a schema's grad builder gets: the forward node, the gradient flowing into
 * each of its outputs, and where to put the gradient of each input. */
typedef struct prt_grad_ctx {
    struct prt_graph *g;
    int node;          /* the forward node's id */
    const int *dy;     /* per output: gradient value id; -1 when no gradient flows
                        * there; PRT_GRAD_ONE for a scalar loss root (gradient 1) */
    int *dx;           /* per input (node->in order: data inputs, then params): the
                        * builder stores gradient value ids; -1 (preset) = none */
} prt_grad_ctx;

#define PRT_GRAD_ONE (-2)

/* Appends a node of op `op` (by name) computing gradients for gc's node, named
 * "<forward node>/<op>" (made unique), with the given data inputs. attrs: the op's
 * attributes in its schema order, or NULL to copy the forward node's (the two
 * schemas must then share their attribute table). The ids of the new node's outputs
 * are written to outs (the op's n_out of them). Shape inference runs at once. */
prt_status prt_grad_emit(prt_grad_ctx *gc, const char *op, const int *in, int n_in, const prt_attr *attrs,
                         int *outs);
/* The schema defaults of `s` into attrs (s->n_attrs entries), for builders that
 * emit ops with their own attribute tables. */
void prt_attrs_default(const prt_op_schema *s, prt_attr *attrs);

/* ---- the registry ----------------------------------------------------- */

/* Creates a registry holding the built-in ops. Caller frees with prt_registry_destroy. */
prt_status prt_registry_create(prt_context *ctx, prt_registry **out);
void prt_registry_destroy(prt_context *ctx, prt_registry *r);
/* Adds a schema (borrowed for the registry's life). Duplicate names are an error. */
prt_status prt_registry_add(prt_context *ctx, prt_registry *r, const prt_op_schema *s);
/* By name: the schema and its id, or NULL. */
const prt_op_schema *prt_op_find(const prt_registry *r, const char *name, int *id);
/* By id; NULL if out of range. */
const prt_op_schema *prt_op_get(const prt_registry *r, int id);
int prt_op_count(const prt_registry *r);
/* Removes the ops registered after the first n (a plugin whose registration
 * failed half way), so the registry is as it was. */
void prt_registry_truncate(prt_context *ctx, prt_registry *r, int n);
/* "plugin /a/liba.so (myorg 1.0.0)" or "Parrots (built-in)". */
static inline const char *prt_op_source(const prt_op_schema *s) {
    return s->source ? s->source : "Parrots (built-in)";
}
/* Index of an attribute in the schema, or -1. */
int prt_op_attr_index(const prt_op_schema *s, const char *name);
/* Up to max names of registered ops nearest to `name` (edit distance), for
 * "did you mean" messages; returns how many were written. */
int prt_op_suggest(const prt_registry *r, const char *name, const char **out, int max);
/* Edit distance (Levenshtein), shared by every "did you mean". */
int prt_edit_distance(const char *a, const char *b);

/* The kernel to run: the fast path if present, else the reference. */
static inline const prt_kernel *prt_op_kernel(const prt_op_schema *s, bool reference) {
    return (!reference && s->fast.run) ? &s->fast : &s->ref;
}

/* ---- attribute helpers for kernels and shape functions ----------------- */

static inline int64_t prt_attr_int(const prt_attr *a) { return a->i[0]; }
static inline double prt_attr_float(const prt_attr *a) { return a->f; }
static inline bool prt_attr_bool(const prt_attr *a) { return a->i[0] != 0; }
/* INTS expanded to a pair (h, w): one value means both. */
void prt_attr_pair(const prt_attr *a, int64_t *h, int64_t *w);
/* Padding expanded to (top, left, bottom, right): 1 value all, 2 values (h, w),
 * 4 values as given. */
void prt_attr_pad4(const prt_attr *a, int64_t pad[4]);

/* Built-in op schemas: one X-macro list (ops/builtin_ops.def) generates the
 * declarations here and the registry's table. */
#define X(sym) extern const prt_op_schema prt_op_##sym;
#include "ops/builtin_ops.def"
#undef X

#endif

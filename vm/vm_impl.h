/* VM internals: the instruction encoding, the program (code, constants, registers,
 * op table), the builder used by the compiler, tests and benches, and the
 * interpreter's state. Only vm/, tests and benches include this; everyone else
 * sees vm/vm_api.h.
 *
 *     prt_program *p;
 *     PRT_CHECK(prt_program_new(ctx, "demo", 1, &p));
 *     int r, k, pc;
 *     PRT_CHECK(prt_program_add_counter(ctx, p, "i", &r));
 *     PRT_CHECK(prt_program_add_int(ctx, p, 10, &k));
 *     PRT_CHECK(prt_program_emit(ctx, p, prt_vm_ins_seti(r, k), &pc));
 *     PRT_CHECK(prt_program_emit(ctx, p, prt_vm_ins_n(PRT_OP_NOP), &pc));
 *     PRT_CHECK(prt_program_emit(ctx, p, prt_vm_ins_loop(r, -2), &pc));
 *     PRT_CHECK(prt_program_emit(ctx, p, prt_vm_ins_n(PRT_OP_HALT), &pc));
 *     PRT_CHECK(prt_vm_verify(ctx, p));
 */
#ifndef PARROTS_VM_IMPL_H
#define PARROTS_VM_IMPL_H

#include "vm/vm_api.h"

/* ---- opcodes ---------------------------------------------------------- */

typedef enum prt_opcode {
#define X(name, fmt, desc) PRT_OP_##name,
#include "vm/opcodes.def"
#undef X
    PRT_OP_COUNT
} prt_opcode;

/* ---- instruction encoding ----------------------------------------------
 *
 * Every instruction is one 64-bit word:
 *
 *   63                               32 31                       8 7          0
 *  +-----------------------------------+--------------------------+-----------+
 *  |                 X                 |            A             |  opcode   |
 *  +-----------------------------------+--------------------------+-----------+
 *          32 bits: Bx (unsigned)              24 bits (unsigned)     8 bits
 *               or sX (signed)
 *
 * A names a counter register or a jump mode; X is a constant-pool index, an
 * absolute target (Bx) or a relative offset counted from the next instruction (sX).
 * Kernel calls keep their operand lists in the constant pool, so one word holds any
 * call however many tensors it reads. Fields an opcode's format does not use are 0
 * (the verifier insists, so every program has one encoding).
 *
 * Formats: F(NAME, A operand, X operand, "description")
 */
#define PRT_VM_FORMATS(F)                                                      \
    F(N,  PRT_VM_A_UNUSED,  PRT_VM_X_UNUSED, "no operands")                     \
    F(C,  PRT_VM_A_UNUSED,  PRT_VM_X_CALL,   "X: call-descriptor constant")     \
    F(J,  PRT_VM_A_JMODE,   PRT_VM_X_JUMP,   "A: 0 relative / 1 absolute; X: target") \
    F(RJ, PRT_VM_A_COUNTER, PRT_VM_X_REL,    "A: counter register; sX: relative target") \
    F(RI, PRT_VM_A_COUNTER, PRT_VM_X_INT,    "A: counter register; X: integer constant") \
    F(B,  PRT_VM_A_BUCKET,  PRT_VM_X_UNUSED, "A: gradient bucket")

typedef enum prt_vm_a_kind {
    PRT_VM_A_UNUSED,
    PRT_VM_A_JMODE,   /* PRT_VM_JMP_REL or PRT_VM_JMP_ABS */
    PRT_VM_A_COUNTER, /* a counter register */
    PRT_VM_A_BUCKET,  /* a gradient bucket number (see prt_program_buckets) */
} prt_vm_a_kind;

typedef enum prt_vm_x_kind {
    PRT_VM_X_UNUSED,
    PRT_VM_X_CALL,    /* Bx: constant of kind PRT_CONST_CALL */
    PRT_VM_X_INT,     /* Bx: constant of kind PRT_CONST_INT */
    PRT_VM_X_JUMP,    /* sX or Bx, as A says */
    PRT_VM_X_REL,     /* sX */
} prt_vm_x_kind;

typedef enum prt_vm_format {
#define F(name, a, x, desc) PRT_VM_FMT_##name,
    PRT_VM_FORMATS(F)
#undef F
    PRT_VM_FMT_COUNT
} prt_vm_format;

typedef struct prt_vm_format_info {
    const char *name;
    prt_vm_a_kind a;
    prt_vm_x_kind x;
    const char *doc;
} prt_vm_format_info;

enum { PRT_VM_JMP_REL = 0, PRT_VM_JMP_ABS = 1 };

typedef uint64_t prt_instr;

#define PRT_VM_A_BITS 24
#define PRT_VM_A_MAX ((1u << PRT_VM_A_BITS) - 1)

/* Tables generated from vm/opcodes.def (vm/opcodes.c). */
extern const char *const prt_vm_op_names[PRT_OP_COUNT];
extern const char *const prt_vm_op_docs[PRT_OP_COUNT];
extern const prt_vm_format prt_vm_op_formats[PRT_OP_COUNT];
extern const prt_vm_format_info prt_vm_formats[PRT_VM_FMT_COUNT];

/* Raw fields, for code that must cope with any word (the verifier, disassembler). */
#define PRT_VM_RAW_OP(i) ((unsigned)((i) & 0xffu))
#define PRT_VM_RAW_A(i) ((uint32_t)(((i) >> 8) & PRT_VM_A_MAX))
#define PRT_VM_RAW_X(i) ((uint32_t)((i) >> 32))
#define PRT_VM_RAW_SX(i) ((int32_t)PRT_VM_RAW_X(i))

/* Checked accessors (Lua's GETARG_*): in debug builds they assert that the
 * opcode's format has the field, catching interpreter code that reads an operand
 * its instruction does not carry. Release builds compile them to a shift. */
#ifndef NDEBUG
#define prt_vm_check_exp(c, e) ((c) ? (void)0 : prt_assert_fail(#c, __FILE__, __LINE__), (e))
#else
#define prt_vm_check_exp(c, e) (e)
#endif
static inline bool prt_vm_has_a(prt_instr i) {
    unsigned op = PRT_VM_RAW_OP(i);
    return op < PRT_OP_COUNT && prt_vm_formats[prt_vm_op_formats[op]].a != PRT_VM_A_UNUSED;
}
static inline bool prt_vm_has_bx(prt_instr i) {
    unsigned op = PRT_VM_RAW_OP(i);
    if (op >= PRT_OP_COUNT) return false;
    prt_vm_x_kind x = prt_vm_formats[prt_vm_op_formats[op]].x;
    return x == PRT_VM_X_CALL || x == PRT_VM_X_INT || x == PRT_VM_X_JUMP;
}
static inline bool prt_vm_has_sx(prt_instr i) {
    unsigned op = PRT_VM_RAW_OP(i);
    if (op >= PRT_OP_COUNT) return false;
    prt_vm_x_kind x = prt_vm_formats[prt_vm_op_formats[op]].x;
    return x == PRT_VM_X_REL || x == PRT_VM_X_JUMP;
}

#define PRT_VM_GET_OP(i) ((prt_opcode)prt_vm_check_exp(PRT_VM_RAW_OP(i) < PRT_OP_COUNT, PRT_VM_RAW_OP(i)))
#define PRT_VM_GET_A(i) prt_vm_check_exp(prt_vm_has_a(i), PRT_VM_RAW_A(i))
#define PRT_VM_GET_BX(i) prt_vm_check_exp(prt_vm_has_bx(i), PRT_VM_RAW_X(i))
#define PRT_VM_GET_SX(i) prt_vm_check_exp(prt_vm_has_sx(i), PRT_VM_RAW_SX(i))

static inline prt_instr prt_vm_ins(prt_opcode op, uint32_t a, uint32_t x) {
    return (prt_instr)op | ((prt_instr)(a & PRT_VM_A_MAX) << 8) | ((prt_instr)x << 32);
}
static inline prt_instr prt_vm_ins_n(prt_opcode op) { return prt_vm_ins(op, 0, 0); }
static inline prt_instr prt_vm_ins_call(int k) { return prt_vm_ins(PRT_OP_CALL, 0, (uint32_t)k); }
/* Relative offsets count from the next instruction: -1 jumps to itself. */
static inline prt_instr prt_vm_ins_jmp_rel(int32_t off) {
    return prt_vm_ins(PRT_OP_JMP, PRT_VM_JMP_REL, (uint32_t)off);
}
static inline prt_instr prt_vm_ins_jmp_abs(int target) {
    return prt_vm_ins(PRT_OP_JMP, PRT_VM_JMP_ABS, (uint32_t)target);
}
static inline prt_instr prt_vm_ins_loop(int counter, int32_t off) {
    return prt_vm_ins(PRT_OP_LOOP, (uint32_t)counter, (uint32_t)off);
}
static inline prt_instr prt_vm_ins_seti(int counter, int k) {
    return prt_vm_ins(PRT_OP_SETI, (uint32_t)counter, (uint32_t)k);
}

static inline prt_instr prt_vm_ins_allreduce_start(int bucket) {
    return prt_vm_ins(PRT_OP_ALLREDUCE_START, (uint32_t)bucket, 0);
}
static inline prt_instr prt_vm_ins_allreduce_wait(int bucket) {
    return prt_vm_ins(PRT_OP_ALLREDUCE_WAIT, (uint32_t)bucket, 0);
}

/* ---- the program -------------------------------------------------------- */

/* Register kinds. Tensor registers mirror graph values; counters are scalar
 * integers for loop control and have no tensor. */
typedef enum prt_reg_kind {
    PRT_REG_INPUT,   /* fed by the caller */
    PRT_REG_PARAM,   /* trainable, initialised at VM creation */
    PRT_REG_STATE,   /* persistent, non-trainable (BN running statistics) */
    PRT_REG_ACT,     /* written by a CALL */
    PRT_REG_COUNTER, /* int64 loop counter (SETI, LOOP) */
    PRT_REG_KIND_COUNT
} prt_reg_kind;

const char *prt_reg_kind_name(prt_reg_kind k); /* "input", ...; "?" if unknown */

typedef struct prt_reg {
    char *name;          /* owned; the graph value's name */
    prt_reg_kind kind;
    prt_dtype dtype;
    prt_shape shape;     /* with the batch applied; counters: ndim 0 */
    prt_init_kind init;  /* PARAM and STATE */
} prt_reg;

/* An op the program uses. Programs store names so that a program saved to a file
 * still means the same op when the registry numbers ops differently. */
typedef struct prt_prog_op {
    char *name;          /* owned */
    int id;              /* registry id after prt_program_resolve; -1 before */
} prt_prog_op;

/* Which part of a training step a call belongs to (reports and plots). */
typedef enum prt_phase {
    PRT_PHASE_FORWARD,
    PRT_PHASE_BACKWARD,
    PRT_PHASE_UPDATE,
    PRT_PHASE_COUNT
} prt_phase;

typedef struct prt_call_desc {
    int op;              /* index into the program's op table */
    uint8_t phase;       /* prt_phase */
    char *node;          /* owned: node name, for messages and RNG keys */
    int n_data_in;       /* data inputs; present params follow in `in` */
    int n_in;
    int *in;             /* owned: register indices */
    int n_out;
    int *out;            /* owned: register indices */
    int n_attrs;
    prt_attr *attrs;     /* owned, schema order; STRING values owned too */
} prt_call_desc;

typedef enum prt_const_kind {
    PRT_CONST_CALL,
    PRT_CONST_INT,
    PRT_CONST_KIND_COUNT
} prt_const_kind;

typedef struct prt_const {
    prt_const_kind kind;
    union {
        prt_call_desc call;
        int64_t i;
    };
} prt_const;

struct prt_program {
    char *name;          /* owned */
    int64_t batch;
    prt_instr *code;
    int n_code, cap_code;
    prt_const *k;
    int n_k, cap_k;
    prt_reg *regs;
    int n_regs, cap_regs;
    prt_prog_op *ops;
    int n_ops, cap_ops;
    int *inputs;         /* owned: input registers, in the graph's input order */
    int n_inputs;
    int *outputs;        /* owned */
    int n_outputs;
    struct prt_mem_plan *plan; /* owned: the memory plan (memory/memory_api.h), NULL if none */
};

/* ---- building programs (vm/program.c) ----------------------------------- */

/* An empty program. Caller frees with prt_program_destroy. */
prt_status prt_program_new(prt_context *ctx, const char *name, int64_t batch, prt_program **out);
/* Appends an instruction; *pc (may be NULL) gets its index. */
prt_status prt_program_emit(prt_context *ctx, prt_program *p, prt_instr ins, int *pc);
/* Adds a tensor register (name copied). */
prt_status prt_program_add_reg(prt_context *ctx, prt_program *p, const char *name,
                               prt_reg_kind kind, prt_dtype t, const prt_shape *s,
                               prt_init_kind init, int *reg);
prt_status prt_program_add_counter(prt_context *ctx, prt_program *p, const char *name, int *reg);
prt_status prt_program_add_int(prt_context *ctx, prt_program *p, int64_t v, int *k);
/* The op-table index of op `name`, adding it (unresolved) if new. */
prt_status prt_program_add_op(prt_context *ctx, prt_program *p, const char *name, int *index);
/* Adds a call descriptor; every array is copied (string attrs too). in holds the
 * data inputs then the present params. */
prt_status prt_program_add_call(prt_context *ctx, prt_program *p, int op, const char *node,
                                const int *in, int n_data_in, int n_in,
                                const int *out, int n_out,
                                const prt_attr *attrs, int n_attrs, int *k);
prt_status prt_program_set_io(prt_context *ctx, prt_program *p, const int *inputs, int n_inputs,
                              const int *outputs, int n_outputs);
/* Looks every op-table name up in the context's registry. */
prt_status prt_program_resolve(prt_context *ctx, prt_program *p);

/* Runs op shape inference for a call over the program's register shapes (which
 * the verifier has checked to be in bounds). A call with more than PRT_VARIADIC
 * data inputs (an optimizer update over every parameter) takes their shapes in
 * `wide` (caller allocates c->n_data_in entries); otherwise wide may be NULL. */
prt_status prt_vm_call_infer(prt_context *ctx, const prt_program *p, const prt_call_desc *c,
                             const prt_op_schema *s, prt_infer_scratch *sc, prt_shape *wide,
                             prt_infer_ctx *ic);

/* The workspace bytes the call of constant k needs (its op's workspace query
 * over the register shapes; 0 when the op has none). */
prt_status prt_vm_call_workspace(prt_context *ctx, const prt_program *p, int k, size_t *bytes);
/* The same for a device: cuda uses the op's workspace_cuda query when it has one. */
prt_status prt_vm_call_workspace_on(prt_context *ctx, const prt_program *p, int k, bool cuda, size_t *bytes);

/* ---- gradient buckets (vm/buckets.c) ------------------------------------
 *
 * A data-parallel training program reduces its gradients in buckets. The code
 * says everything: bucket b is `ALLREDUCE_START b` placed after the last write
 * of its gradients and `ALLREDUCE_WAIT b` placed right before the CALL of the
 * optimizer update that reads them (an op with updates_inputs whose inputs are
 * k parameters, then their k gradients, then state). The bucket's gradients are
 * that update's gradient inputs. Buckets are numbered in the order their
 * STARTs run, which is the collective order on every rank. */
typedef struct prt_bucket {
    int start_pc;        /* ALLREDUCE_START */
    int wait_pc;         /* ALLREDUCE_WAIT; the update CALL is wait_pc + 1 */
    int update_k;        /* constant index of the update's call descriptor */
    int n_regs;
    int *regs;           /* owned: gradient registers, in the update's parameter order */
    int64_t count;       /* f32 elements of all its gradients */
} prt_bucket;

typedef struct prt_bucket_table {
    int n;
    prt_bucket *b;       /* owned */
} prt_bucket_table;

/* Derives the bucket table of a program whose registers, constants and op ids
 * are valid, checking the rules above: each bucket started and waited exactly
 * once, START before WAIT, WAIT followed by an update CALL, STARTs numbered
 * 0, 1, ... in program order, no gradient written after its START or touched
 * between START and WAIT, no gradient in two buckets. A program without these
 * instructions has n = 0. Errors are PRT_ERR_PROGRAM naming the instruction.
 * Free with prt_bucket_table_free. */
prt_status prt_program_buckets(prt_context *ctx, const prt_program *p, prt_bucket_table *out);
void prt_bucket_table_free(prt_context *ctx, prt_bucket_table *t);

/* A hash of everything that must agree between the ranks of a job: the code
 * (with its bucket numbers and so the collective order), the registers (names,
 * kinds, dtypes, shapes), the op names and every call descriptor. */
uint64_t prt_program_hash(const prt_program *p);

/* ---- the interpreter (vm/interp.c) -------------------------------------- */

/* One contiguous piece of a bucket's gradients that one allreduce reduces. */
typedef struct prt_vm_span_mem {
    float *p;
    size_t count;
} prt_vm_span_mem;

/* A CALL as the dispatch loop sees it: everything prepared at creation, so a
 * call is one indirect function call with no allocation or lookup. */
typedef struct prt_vm_call {
    prt_status (*run)(const prt_kernel_call *c);
    prt_kernel_call kc;
    const prt_kernel *kernel;
    const prt_tensor **in;  /* owned array, borrowed tensors */
    prt_tensor **out;       /* owned array, borrowed tensors */
    const char *node;       /* borrowed from the program */
    const char *op;
    bool prepared;          /* kernel->prepare ran, so release is due */
    size_t step_off;        /* CUDA, kernel->step_values: its slot's offset in the step block */
} prt_vm_call;

/* Where a CUDA VM is with its CUDA graph (vm/interp.c). */
typedef enum prt_vm_graph_phase {
    PRT_VM_GRAPH_OFF,      /* CPU device, or prt_vm_options.cuda_graph OFF */
    PRT_VM_GRAPH_REFUSED,  /* AUTO, and the program cannot be captured: graph_state says why */
    PRT_VM_GRAPH_FIRST,    /* the next run is the plain first run (lazy set-up happens there) */
    PRT_VM_GRAPH_CAPTURE,  /* the next run is captured, then launched */
    PRT_VM_GRAPH_READY,    /* runs launch graph_exec */
} prt_vm_graph_phase;
/* The host view of persistent register r (a parameter or state): the register
 * itself on the CPU device, its host mirror on any other (see prt_vm_pull_state). */
prt_tensor *prt_vm_state_reg(prt_vm *vm, int r);

struct prt_vm {
    prt_context *ctx;
    const prt_program *p;  /* borrowed: keep the program alive until prt_vm_destroy */
    prt_device *dev;
    prt_vm_options opts;
    prt_tensor *regs;      /* one per register (counters: no storage) */
    int64_t *ireg;         /* counter values, indexed by register */
    int64_t *kint;         /* integer constants, indexed by constant */
    prt_vm_call *calls;    /* indexed by constant; used for CALL constants only */
    void *workspace;       /* unplanned: shared by every call (calls run one at a time) */
    size_t workspace_size;
    void *persistent;      /* planned: parameters, running statistics, optimizer state */
    void *arena;           /* planned: every per-step buffer */
    size_t arena_size;
    int *poison_start;     /* opts.poison: per instruction, the range of poison_list to poison after it */
    int *poison_list;      /* arena buffer indices */
    uint64_t step;         /* runs so far; part of the kernels' RNG counter */
    prt_strtab *names;     /* register name -> index */
    prt_bucket_table buckets; /* the program's gradient buckets */
    prt_vm_span_mem *bucket_spans; /* per bucket: [span_start[b], span_start[b + 1]) */
    int *span_start;
    uint64_t *bucket_handle; /* per bucket: the comm handle of its last started piece, 0 none */
    struct prt_trace *trace; /* prt_vm_set_trace; NULL: not recording */
    const struct prt_mem_plan *plan; /* the plan the VM runs from: p->plan, or own_plan */
    struct prt_mem_plan *own_plan;   /* a CUDA VM's plan (cuDNN's workspaces differ from the CPU's) */
    bool cuda;               /* dev is a CUDA device: kernels from schema->cuda */
    void *stream;            /* CUDA: the compute stream */
    prt_tensor *host_in, *host_out; /* CUDA: host copies of the inputs and outputs, moved at each run */
    prt_tensor *host_state;  /* not the CPU device: the state's host mirror (prt_vm_pull_state), per register */
    void *host_block;        /* planned: the mirror's one block, laid out as the persistent block */
    bool straight;           /* no jumps or loops: the slow (traced) loop can run it */
    /* CUDA: per-step values and the CUDA graph (docs/gpu.md "CUDA graphs") */
    char *step_dev;          /* the step block: each call's slot of per-step values (device memory) */
    char *step_host;         /* its page-locked mirror, written before each run, then copied over in one copy */
    size_t step_bytes;
    int *step_calls;         /* constants of the calls with step_values */
    int n_step_calls;
    bool step_inflight;      /* the mirror's last copy may still be running (that run failed before its sync) */
    prt_vm_graph_phase graph;
    struct prt_cuda_graph *graph_exec; /* READY: the captured step */
    int64_t *ireg_start;     /* the counters when the capture began */
    char graph_state[320];   /* REFUSED: "not used: <reason>" */
};

/* Computed-goto dispatch is the default where the compiler has labels as values;
 * build with -DPRT_VM_COMPUTED_GOTO=0 to use only the switch. */
#ifndef PRT_VM_COMPUTED_GOTO
#if defined(__GNUC__)
#define PRT_VM_COMPUTED_GOTO 1
#else
#define PRT_VM_COMPUTED_GOTO 0
#endif
#endif

/* The same as prt_vm_run with the switch dispatch loop, for tests and benches
 * (prt_vm_run uses computed goto when PRT_VM_COMPUTED_GOTO is on). */
prt_status prt_vm_run_switch(prt_vm *vm);

/* The allreduce instructions (vm/interp.c), shared by the dispatch loops. */
prt_status prt_vm_allreduce_start(prt_vm *vm, int pc, int bucket);
prt_status prt_vm_allreduce_wait(prt_vm *vm, int pc, int bucket);

#endif

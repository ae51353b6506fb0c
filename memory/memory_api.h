/* The memory planner: every buffer of a step gets a static place before the
 * first step, computed from the compiled program's instruction order.
 *
 * Registers fall into regions: persistent (parameters, running statistics,
 * optimizer state: live across steps) and the arena (inputs, activations,
 * backward temporaries, kernel workspaces and the parameters' gradients:
 * everything that lives within one step). Gradients are grouped into buckets of
 * about PRT_MEM_BUCKET_BYTES in the order backward produces them; a bucket is one
 * contiguous arena buffer, live from its first gradient to the update, so an
 * allreduce can reduce it in place and, early in backward, the memory of the
 * gradients not yet computed still serves activations.
 * Liveness gives each arena buffer an interval of instructions [first, last];
 * outputs that may overwrite an input that dies at the same instruction share its
 * buffer (in place); the offset planner then packs the intervals into one arena,
 * trying each strategy of PRT_MEM_STRATEGIES and keeping the smallest.
 *
 *     prt_mem_plan *plan;
 *     PRT_CHECK(prt_mem_plan_build(ctx, program, &plan));   // prt_vm_compile does this
 *     printf("arena %zu bytes, lower bound %zu\n", plan->arena_bytes, plan->lower_bound_bytes);
 *     prt_mem_plan_destroy(ctx, plan);
 */
#ifndef PARROTS_MEMORY_API_H
#define PARROTS_MEMORY_API_H

#include "vm/vm_api.h"

/* Every buffer's offset and size is a multiple of this (cuDNN and oneDNN want
 * 64-byte alignment at least; 256 suits every device). */
#define PRT_MEM_ALIGN 256
/* Gradient bucket size: a bucket closes once its gradients reach this many bytes. */
#define PRT_MEM_BUCKET_BYTES ((size_t)25 << 20)

typedef enum prt_mem_region {
    PRT_MEM_NONE,       /* counter registers: no storage */
    PRT_MEM_PERSISTENT, /* parameters, running statistics, optimizer state */
    PRT_MEM_ARENA,      /* per-step buffers */
    PRT_MEM_GRAD,       /* parameter gradients: in the arena, inside a bucket */
    PRT_MEM_REGION_COUNT
} prt_mem_region;

/* X(name, "description"): the offset-planning strategies, all tried. */
#define PRT_MEM_STRATEGIES(X)                                                                      \
    X(by_size, "largest buffer first, each at the best-fitting free offset")                       \
    X(by_first_use, "in order of first use (ties: larger first), each at the best-fitting offset") \
    X(by_area, "largest bytes x lifetime first, each at the best-fitting offset")                  \
    X(by_lifetime, "longest lifetime first (ties: larger first), each at the best-fitting offset") \
    X(search, "the best order above, improved by swapping pairs of buffers while the arena does not grow (bounded work; only when the best is above the lower bound)")

typedef enum prt_mem_strategy {
#define X(name, doc) PRT_MEM_##name,
    PRT_MEM_STRATEGIES(X)
#undef X
    PRT_MEM_STRATEGY_COUNT
} prt_mem_strategy;

const char *prt_mem_strategy_name(prt_mem_strategy s);

/* One block of the arena: a group of registers sharing memory (an activation
 * and the outputs computed in place over it) or one call's workspace. */
typedef struct prt_mem_buffer {
    size_t bytes;  /* rounded up to PRT_MEM_ALIGN */
    int first;     /* instruction that writes it first (0 for inputs) */
    int last;      /* instruction that reads it last, inclusive (n_code - 1 for outputs and inputs) */
    size_t offset; /* in the arena */
    int reg;       /* first register of the group; -1 for a workspace or a bucket */
    int call;      /* workspace: the constant index of its call; -1 otherwise */
    int bucket;    /* gradient bucket number, -1 otherwise */
} prt_mem_buffer;

typedef struct prt_mem_plan {
    int n_regs;
    prt_mem_region *reg_region; /* per register */
    size_t *reg_offset;         /* per register: byte offset in its region (gradients: in the arena) */
    int *reg_buffer;            /* per register: index into bufs, -1 outside the arena */
    int n_buckets;              /* gradient buckets: bufs with bucket 0, 1, ... in production order */
    int n_k;
    int64_t *ws_offset;         /* per constant: its call's workspace offset in the arena, -1 none */
    int n_bufs;
    prt_mem_buffer *bufs;
    int n_code;
    size_t *live;               /* per instruction: arena bytes live while it runs */
    int peak_pc;                /* the first instruction where live bytes are largest */

    size_t param_bytes;         /* trainable parameters */
    size_t state_bytes;         /* running statistics (persistent, not optimizer state) */
    size_t optimizer_bytes;     /* optimizer state (momentum, Adam's moments) */
    size_t persistent_bytes;    /* the three above, each tensor aligned */
    size_t grad_bytes;          /* parameter gradients (planned in the arena, in buckets) */
    size_t input_bytes;         /* the program's inputs (in the arena) */
    size_t workspace_bytes;     /* the largest single kernel workspace (planned in the arena) */
    size_t naive_bytes;         /* every per-step tensor (gradients included) its own buffer plus
                                 * one shared workspace of the largest size: the VM without a plan */
    size_t lower_bound_bytes;   /* max over instructions of live arena bytes */
    size_t arena_bytes;         /* the planned arena */
    size_t total_bytes;         /* persistent + arena */
    int n_inplace;              /* outputs placed over an input that dies at their call */
    int n_views;                /* inputs placed inside their op's output (concat slices) */
    prt_mem_strategy strategy;  /* the one kept */
    size_t strategy_bytes[PRT_MEM_STRATEGY_COUNT]; /* arena each strategy gave */
    double plan_seconds;
} prt_mem_plan;

/* What the planner may do; prt_mem_plan_build uses all of it. Switching parts
 * off measures what each is worth (bench/memory_plan --ablation). */
typedef struct prt_mem_plan_options {
    bool no_inplace;      /* every output its own buffer */
    bool no_views;        /* concat inputs not placed inside the output */
    bool no_buckets;      /* all gradients in one block live for the whole step */
    bool cuda_workspaces; /* plan the CUDA kernels' workspaces (schema workspace_cuda) */
} prt_mem_plan_options;

/* Plans a verified, straight-line program (CALLs, NOPs and one HALT; a program with
 * jumps or loops is refused with PRT_ERR_UNSUPPORTED: nothing we compile has them).
 * Workspace sizes come from each op's workspace query. Caller frees with
 * prt_mem_plan_destroy. */
prt_status prt_mem_plan_build(prt_context *ctx, const prt_program *p, prt_mem_plan **out);
prt_status prt_mem_plan_build_opts(prt_context *ctx, const prt_program *p, const prt_mem_plan_options *o,
                                   prt_mem_plan **out);
void prt_mem_plan_destroy(prt_context *ctx, prt_mem_plan *plan);

/* Checks that every arena buffer lies inside the arena and that no two buffers
 * live at the same instruction overlap in memory (an independent re-check of a
 * plan, used by tests and after loading a plan from a file). */
prt_status prt_mem_plan_validate(prt_context *ctx, const prt_mem_plan *plan);

/* PRT_ERR_LIMIT when plan->total_bytes > limit, with a message saying how much is
 * needed and where the arena peaks ("... needs 10.2 GiB (parameters ...; arena
 * ...); the arena peaks at instruction 2043 (CALL conv_bwd_data 'b3/conv')"). */
prt_status prt_mem_plan_check_limit(prt_context *ctx, const prt_program *p, const prt_mem_plan *plan,
                                    size_t limit);

/* A readable name of an arena buffer for reports: the register's name, or
 * "workspace of '<node>' (<op>)", written to buf. */
const char *prt_mem_buffer_name(const prt_program *p, const prt_mem_plan *plan, int b, char *buf, size_t cap);

/* Parses a byte count: decimal digits with an optional fraction, then an
 * optional unit, binary (K/KiB, M/MiB, G/GiB, T/TiB) or decimal (KB, MB, GB, TB),
 * or B: "8GiB", "512MiB", "1.5GB", "4096". false on anything else (signs, spaces,
 * hex, exponents) or on overflow. */
bool prt_mem_parse_bytes(const char *s, size_t *out);
/* "1.50 GiB", "512.00 MiB", "100 B" into buf. */
const char *prt_mem_format_bytes(size_t bytes, char *buf, size_t cap);

/* ---- memory-saving rewrites of a training graph (memory/rewrite.c) ------ */

/* X(name, "description"): what backward recomputes instead of keeping. */
#define PRT_RECOMPUTE_MODES(X)                                                                     \
    X(none, "keep every forward value backward reads")                                             \
    X(cheap, "recompute batch norm, ReLU, concat, add, scale, dropout and flatten outputs from kept values; no convolution is re-run") \
    X(segments, "also re-run whole segments (convolutions included) from checkpoints about sqrt(n) apart (Chen et al. 2016)")

typedef enum prt_recompute_mode {
#define X(name, doc) PRT_RECOMPUTE_##name,
    PRT_RECOMPUTE_MODES(X)
#undef X
    PRT_RECOMPUTE_MODE_COUNT
} prt_recompute_mode;

const char *prt_recompute_mode_name(prt_recompute_mode m);
bool prt_recompute_mode_from_name(const char *name, prt_recompute_mode *out);

typedef struct prt_rewrite_stats {
    int n_recomputed;      /* forward nodes re-run in backward */
    int64_t extra_flops;   /* their FLOPs at the graph's current batch */
} prt_rewrite_stats;

/* Rewrites a training graph (nodes [0, n_forward) the forward pass and loss, the
 * rest backward and update, as prt_train_build leaves it): backward readers of a
 * forward value the mode does not keep read a recomputed copy instead, made by
 * clones of the forward nodes (node->recompute_of set; compiled to RECOMPUTE
 * instructions) placed right before the first reader. Nodes are renumbered so
 * the node order stays the schedule; *track (may be NULL) is a node id mapped to
 * its new number. stats may be NULL. */
prt_status prt_mem_rewrite(prt_graph *g, int n_forward, prt_recompute_mode mode, int *track,
                           prt_rewrite_stats *stats);
/* The recomputing nodes of g (recompute_of >= 0) and their FLOPs at the graph's
 * current batch (after prt_vm_compile: the program's batch). */
prt_status prt_mem_recompute_stats(prt_graph *g, prt_rewrite_stats *out);

#endif

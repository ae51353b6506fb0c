/* The boundary to oneDNN (the fast CPU path of conv, linear, pooling, batch norm
 * and softmax): the shared engine, status translation, memory descriptors for
 * the graph's plain row-major tensors, and the state every oneDNN-backed kernel
 * starts with (its stream and workspace).
 *
 * Every primitive runs with a user-managed scratchpad: its size is reported by
 * the op's workspace query, so the memory planner sees it, and two kernels
 * running at once never share oneDNN's internal scratch buffer.
 *
 *     prt_dnnl_base b;
 *     PRT_CHECK(prt_dnnl_base_init(c, &b, need));  // in prepare
 *     char *ws;
 *     PRT_CHECK(prt_dnnl_ws(&b, c, "conv", &ws));  // in run
 */
#ifndef PARROTS_DNNL_UTIL_H
#define PARROTS_DNNL_UTIL_H

#include "ops/ops_impl.h"

#include <oneapi/dnnl/dnnl.h>

/* The process-wide CPU engine (see dnnl_util.c for why it is the one global). */
prt_status prt_dnnl_engine(prt_context *ctx, dnnl_engine_t *out);
/* Without a context, for workspace queries: NULL if creation failed. */
dnnl_engine_t prt_dnnl_engine_quiet(void);

/* Translates a oneDNN status: PRT_OK on success, otherwise records
 * "oneDNN <what>: <oneDNN's status name>" and returns PRT_ERR_BACKEND
 * (PRT_ERR_UNSUPPORTED for dnnl_unimplemented, PRT_ERR_NOMEM for out of memory). */
prt_status prt_dnnl_check(prt_context *ctx, dnnl_status_t s, const char *what);
#define PRT_DNNL_CHECK_GOTO(expr, ctx, what, st, label) PRT_CHECK_GOTO(prt_dnnl_check((ctx), (expr), (what)), st, label)

/* A plain row-major f32 descriptor for shape s (any rank 1..PRT_MAX_DIMS). */
dnnl_status_t prt_dnnl_md_plain(dnnl_memory_desc_t *md, int ndim, const int64_t *dims);

/* Creates a primitive descriptor with a user-managed scratchpad. */
dnnl_status_t prt_dnnl_pd_create(dnnl_primitive_desc_t *pd, const void *op_desc, dnnl_engine_t eng);
/* Scratchpad bytes of pd (0 if none). */
size_t prt_dnnl_scratch_size(const_dnnl_primitive_desc_t pd);
/* True when oneDNN picked its reference implementation for pd (slow). */
bool prt_dnnl_pd_is_ref(const_dnnl_primitive_desc_t pd);
const char *prt_dnnl_impl_name(const_dnnl_primitive_desc_t pd);

/* Workspace regions are 64-byte aligned (cache line; oneDNN's own alignment). */
static inline size_t prt_dnnl_align(size_t n) { return (n + 63) & ~(size_t)63; }

/* What every oneDNN-backed kernel state starts with. */
typedef struct prt_dnnl_base {
    prt_context *ctx;
    dnnl_engine_t eng;   /* borrowed: the process-wide engine */
    dnnl_stream_t stream;
    size_t ws_need;      /* workspace bytes the kernel uses */
    void *own_ws;        /* allocated when the call's workspace is too small */
} prt_dnnl_base;

/* Gets the engine, creates the stream and, when c->workspace_size < ws_need,
 * an owned workspace (so the kernel also runs outside a memory plan). */
prt_status prt_dnnl_base_init(const prt_kernel_call *c, prt_dnnl_base *b, size_t ws_need);
void prt_dnnl_base_fini(prt_dnnl_base *b);
/* The workspace to use for this run: the kernel's own, or the call's, which
 * must then hold ws_need bytes from a 64-byte aligned address (memory plans
 * align every region to 64). *out is NULL when ws_need is 0. */
prt_status prt_dnnl_ws(const prt_dnnl_base *b, const prt_kernel_call *c, const char *what, char **out);

/* A memory object with no buffer yet (bound at run time with prt_dnnl_bind). */
dnnl_status_t prt_dnnl_mem(dnnl_memory_t *m, const dnnl_memory_desc_t *md, dnnl_engine_t eng);
/* Executes and waits; translates errors as "oneDNN <what>". */
prt_status prt_dnnl_exec(const prt_dnnl_base *b, dnnl_primitive_t p, int nargs, const dnnl_exec_arg_t *args,
                         const char *what);
/* Points memory m at p (const-ness is oneDNN's API, inputs are not written). */
prt_status prt_dnnl_bind(const prt_dnnl_base *b, dnnl_memory_t m, const void *p, const char *what);

/* Conv fast path with a forced activation layout, for bench/conv.c:
 * PRT_CONV_AUTO (the rule in op_conv.c), PRT_CONV_PLAIN (NCHW, oneDNN's GEMM
 * convolution) or PRT_CONV_BLOCKED (oneDNN's choice, reorders around it). */
enum { PRT_CONV_AUTO, PRT_CONV_PLAIN, PRT_CONV_BLOCKED };
prt_status prt_conv_prepare_layout(const prt_kernel_call *c, int layout, void **state);
/* The oneDNN implementation a prepared conv state runs ("jit:avx2") and whether
 * it reorders activations to a blocked layout. */
const char *prt_conv_state_impl(const void *state, bool *blocked);

/* ---- plans: one primitive over the graph's plain tensors (ops/dnnl_prim.c) ----
 * The backward kernels describe their primitive (conv data or weight gradient,
 * inner product) and which kernel-call tensor feeds each of its arguments; the
 * plan adds a reorder wherever the primitive picked another layout and lays out
 * the workspace as [scratchpad][reordered copies], each 64-aligned. The
 * scratchpad is shared: the primitive and its reorders run one after another.
 *
 *     prt_dnnl_io io[] = {{DNNL_ARG_DIFF_DST, 0, dy_md}, {DNNL_ARG_DIFF_SRC, -1, dx_md}};
 *     prt_dnnl_plan p;
 *     st = prt_dnnl_plan_make(&p, pd, io, 2, eng);  // takes pd, even on failure
 *     prt_dnnl_prim *s;
 *     PRT_CHECK(prt_dnnl_prim_create(c, &p, "conv_bwd_data", &s));  // in prepare
 *     prt_dnnl_plan_free(&p);
 *     PRT_CHECK(prt_dnnl_prim_run(s, c, "conv_bwd_data"));        // in run
 */
#define PRT_DNNL_MAX_IO 4

/* Like prt_dnnl_pd_create, with a forward primitive descriptor as the hint
 * oneDNN requires for backward primitives. */
dnnl_status_t prt_dnnl_pd_create_hint(dnnl_primitive_desc_t *pd, const void *op_desc, dnnl_engine_t eng,
                                      const_dnnl_primitive_desc_t hint);
/* A reorder from -> to with a user scratchpad (its size raised into *scratch);
 * *pd is NULL when the layouts are equal. */
dnnl_status_t prt_dnnl_reorder_pd(const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to, dnnl_engine_t eng,
                                  dnnl_primitive_desc_t *pd, size_t *scratch);

typedef struct prt_dnnl_io {
    int arg;                 /* DNNL_ARG_* */
    int slot;                /* the call's tensor: in[slot], or out[-1 - slot] when negative */
    dnnl_memory_desc_t user; /* its plain layout */
} prt_dnnl_io;

typedef struct prt_dnnl_plan {
    dnnl_primitive_desc_t pd, reorder[PRT_DNNL_MAX_IO]; /* owned; reorder NULL when not needed */
    prt_dnnl_io io[PRT_DNNL_MAX_IO];
    int n_io;
    size_t scratch, off[PRT_DNNL_MAX_IO], total; /* total: the workspace bytes */
    bool reordered;                              /* some tensor is reordered */
} prt_dnnl_plan;

/* Takes ownership of pd (freed with the plan, or at once on failure). */
dnnl_status_t prt_dnnl_plan_make(prt_dnnl_plan *p, dnnl_primitive_desc_t pd, const prt_dnnl_io *io, int n_io,
                                 dnnl_engine_t eng);
void prt_dnnl_plan_free(prt_dnnl_plan *p);

typedef struct prt_dnnl_prim {
    prt_dnnl_base b;
    dnnl_primitive_t prim, reorder[PRT_DNNL_MAX_IO];
    dnnl_memory_t user[PRT_DNNL_MAX_IO], inner[PRT_DNNL_MAX_IO], scratch;
    int arg[PRT_DNNL_MAX_IO], slot[PRT_DNNL_MAX_IO], n_io;
    size_t off[PRT_DNNL_MAX_IO];
    bool reordered;
    const char *impl;        /* oneDNN's implementation name ("jit:avx2") */
} prt_dnnl_prim;

/* Kernel state for a plan (the plan may be freed after). Caller frees with
 * prt_dnnl_prim_release, which serves as a prt_kernel release. */
prt_status prt_dnnl_prim_create(const prt_kernel_call *c, const prt_dnnl_plan *p, const char *what,
                                prt_dnnl_prim **out);
/* Binds the call's tensors, reorders inputs, runs, reorders outputs back. */
prt_status prt_dnnl_prim_run(const prt_dnnl_prim *s, const prt_kernel_call *c, const char *what);
void prt_dnnl_prim_release(void *state);

#endif

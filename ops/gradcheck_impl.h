/* The op-check harness as a library function: checks any registered op (a
 * built-in or a plugin's) the way the test suite checks the built-ins, from
 * outside the test suite (`parrots op-check`, docs/op-check.md).
 *
 *     prt_gradcheck_spec spec = {.n_in = 1, .in = {{4, {2, 3, 5, 5}}},
 *                                .n_attrs = 2, .attr_name = {"out", "kernel"}, .attr_value = {"3", "3"}};
 *     prt_gradcheck_report rep;
 *     PRT_CHECK(prt_op_gradcheck(ctx, "conv", &spec, &rep));   // errors: bad op, shapes, attributes
 *     if (!prt_gradcheck_passed(&rep)) ...                     // a check that ran failed
 *
 * The checks (X-macro list below):
 *   forward   the forward runs (reference kernels) and gives finite outputs of the inferred shapes
 *   fast      the fast kernel against the reference kernel, where the op has both:
 *             |fast - ref| <= 1e-4 * (|ref| + rms(ref))
 *   gradient  the gradient built by the op's grad builder against central finite
 *             differences of the forward (see ops/gradcheck.c for the method)
 *   inplace   where the schema declares an in-place pair: the kernel writing its
 *             output over input inplace_in gives what it gives into its own buffer
 *   cuda      on CUDA device 0, when there is one and the op has a CUDA kernel:
 *             the forward and the gradients against the CPU's,
 *             |cuda - cpu| <= 1e-3 * |cpu| + 1e-4 * rms(cpu)
 * A check that cannot run is SKIPPED with the reason, never PASSED. */
#ifndef PARROTS_GRADCHECK_IMPL_H
#define PARROTS_GRADCHECK_IMPL_H

#include "ops/ops_impl.h"

#define PRT_GRADCHECK_MAX_IN 8
#define PRT_GRADCHECK_MAX_ATTRS 16

/* X(NAME, "name") */
#define PRT_GRADCHECK_CHECKS(X) \
    X(FORWARD, "forward")       \
    X(FAST, "fast-vs-ref")      \
    X(GRADIENT, "gradient")     \
    X(INPLACE, "in-place")      \
    X(CUDA, "cuda-vs-cpu")

typedef enum prt_gradcheck_check {
#define X(n, s) PRT_GRADCHECK_##n,
    PRT_GRADCHECK_CHECKS(X)
#undef X
    PRT_GRADCHECK_N
} prt_gradcheck_check;

typedef enum prt_gradcheck_result { PRT_GC_SKIPPED = 0, PRT_GC_PASSED, PRT_GC_FAILED } prt_gradcheck_result;

typedef struct prt_gradcheck_spec {
    int n_in;                                  /* data inputs */
    prt_shape in[PRT_GRADCHECK_MAX_IN];        /* full shapes, batch (the same for all) first */
    prt_dtype in_dtype[PRT_GRADCHECK_MAX_IN];  /* PRT_F32 (0) or PRT_I32 (labels: values in [0, C),
                                                * C = input 0's dim 1; no gradient) */
    int n_attrs;
    const char *attr_name[PRT_GRADCHECK_MAX_ATTRS];  /* borrowed for the call */
    const char *attr_value[PRT_GRADCHECK_MAX_ATTRS]; /* parsed by the attribute's type: "3", "1,3",
                                                      * "0.5", "true"/"false"/"1"/"0", a string */
    uint64_t seed;                             /* input values and samples; 0 means 1 */
    double eps;                                /* finite-difference step; 0: 1e-2 */
    double rtol;                               /* gradient tolerance; 0: 1e-2 */
    int max_samples;                           /* gradient elements checked per tensor; 0: 48 */
    bool inference;                            /* forward in inference mode (default: training) */
    bool no_cuda;                              /* skip the CUDA check ("skipped: not asked") */
} prt_gradcheck_spec;

typedef struct prt_gradcheck_item {
    prt_gradcheck_result result;
    double worst;      /* worst error seen, in the measure the check's tolerance uses */
    double tol;        /* that tolerance */
    int64_t checked;   /* elements compared */
    int64_t skipped;   /* gradient: elements at a kink, not compared */
    char note[256];    /* why it was skipped or failed, or what was compared */
} prt_gradcheck_item;

typedef struct prt_gradcheck_report {
    char op[64];
    prt_gradcheck_item item[PRT_GRADCHECK_N];
    int n_out;
    prt_shape out[4];  /* the inferred output shapes */
} prt_gradcheck_report;

/* Runs every check of op `op` (by name in ctx->ops) on the inputs and
 * attributes of spec; rep gets one item per check (caller allocates). Returns
 * an error (with the message in ctx) only when the checks cannot be set up: an
 * unknown op (with "did you mean"), a wrong number of inputs, a bad attribute
 * name or value, shapes the op's shape inference rejects. A check that fails
 * is PRT_OK with that item FAILED. */
prt_status prt_op_gradcheck(prt_context *ctx, const char *op, const prt_gradcheck_spec *spec,
                            prt_gradcheck_report *rep);

/* No check FAILED (skipped ones do not count). */
bool prt_gradcheck_passed(const prt_gradcheck_report *rep);
const char *prt_gradcheck_check_name(prt_gradcheck_check c);
const char *prt_gradcheck_result_name(prt_gradcheck_result r); /* "passed", "failed", "skipped" */

#endif

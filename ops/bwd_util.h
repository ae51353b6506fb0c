/* What a forward op shares with its backward ops: the attribute table (the
 * gradient builder emits the backward node with prt_grad_emit(..., NULL, ...),
 * which copies the forward node's attributes and so needs both schemas to point
 * at the same table), the attribute indices into it, and the convolution
 * backward plumbing (ops/conv_bwd.c) behind conv_bwd_data and conv_bwd_weight.
 *
 *     // ops/op_conv_bwd_data.c
 *     .attrs = prt_conv_attrs, .n_attrs = PRT_CONV_N_ATTRS,
 *     .infer = prt_conv_bwd_data_infer, ...
 */
#ifndef PARROTS_BWD_UTIL_H
#define PARROTS_BWD_UTIL_H

#include "ops/dnnl_util.h"
#include "ops/ops_util.h"

/* conv (ops/op_conv.c); the indices follow the table's order (tests/test_ops_bwd.c
 * checks them against the names) */
extern const prt_attr_def prt_conv_attrs[];
#define PRT_CONV_N_ATTRS 7
enum { PRT_CONV_A_OUT, PRT_CONV_A_KERNEL, PRT_CONV_A_STRIDE, PRT_CONV_A_PAD, PRT_CONV_A_DILATION, PRT_CONV_A_GROUPS,
       PRT_CONV_A_BIAS };

/* linear (ops/op_linear.c) */
extern const prt_attr_def prt_linear_attrs[];
#define PRT_LINEAR_N_ATTRS 2
enum { PRT_LINEAR_A_OUT, PRT_LINEAR_A_BIAS };

/* batchnorm (ops/op_batchnorm.c) */
extern const prt_attr_def prt_batchnorm_attrs[];
/* Builds the oneDNN primitive descriptor of one batch-norm direction for a mode. */
typedef dnnl_status_t (*prt_bn_pd_fn)(const prt_shape *s, float eps, bool training, dnnl_engine_t eng,
                                      dnnl_primitive_desc_t *pd);
/* The workspace layout both batch-norm kernels use:
 * [scratchpad (the larger of both modes)][batch mean][batch var]. */
dnnl_status_t prt_bn_layout(const prt_shape *s, float eps, dnnl_engine_t eng, prt_bn_pd_fn make_pd,
                            size_t *stats_off, size_t *total);
/* Whether a call synchronises batch norm: sync_bn and a communicator of more
 * than one rank (ops/op_batchnorm.c). */
bool prt_bn_syncs(const prt_kernel_call *c);
/* The batch mean and biased variance per channel of the combined batch of all
 * ranks, for the [N, C, ...] tensor x of shape xs (this rank's part); par: use
 * threads. Issues two allreduces on c->comm (blocking): every rank must call it
 * at the same point of its program. */
prt_status prt_bn_sync_stats(const prt_kernel_call *c, const float *x, const prt_shape *xs, bool par, double *mean,
                             double *var);
#define PRT_BATCHNORM_N_ATTRS 2
enum { PRT_BN_A_EPS, PRT_BN_A_MOMENTUM };
/* batchnorm's pieces that batchnorm_relu and batchnorm_relu_bwd reuse
 * (ops/op_batchnorm_relu.c), so the fused op computes what batchnorm then relu
 * compute, bit for bit: the parameter table, shape function and workspace, and
 * the forward kernels with `relu` applying the relu op's max(y, 0) to each
 * output as it is written (the oneDNN path: in a pass of its own). */
extern const prt_param_def prt_batchnorm_params[];
#define PRT_BATCHNORM_N_PARAMS 4
prt_status prt_bn_infer(prt_infer_ctx *ic);
size_t prt_bn_workspace(const prt_infer_ctx *ic);
prt_status prt_bn_fwd_ref(const prt_kernel_call *c, bool relu);
prt_status prt_bn_fwd_prepare(const prt_kernel_call *c, void **state);
prt_status prt_bn_fwd_fast(const prt_kernel_call *c, bool relu);
void prt_bn_fwd_release(void *state);
/* batchnorm_bwd's (ops/op_batchnorm_bwd.c): (dy, x, scale[, mean, var]) ->
 * dx, dscale, dshift. dx may be dy's memory (every kernel reads dy[i] before
 * it writes dx[i], and oneDNN's backward allows diff_src on diff_dst). */
prt_status prt_bn_bwd_infer(prt_infer_ctx *ic);
size_t prt_bn_bwd_workspace(const prt_infer_ctx *ic);
prt_status prt_bn_bwd_ref(const prt_kernel_call *c);
prt_status prt_bn_bwd_prepare(const prt_kernel_call *c, void **state);
prt_status prt_bn_bwd_fast(const prt_kernel_call *c);
void prt_bn_bwd_release(void *state);

/* ---- convolution backward (ops/conv_bwd.c) -------------------------------
 * conv_bwd_data:   (dy, w, x) -> dx, x read for its shape only
 * conv_bwd_weight: (dy, x, w) -> dw, w read for its shape only */
typedef enum prt_conv_bwd_kind { PRT_CONV_BWD_DATA, PRT_CONV_BWD_WEIGHT } prt_conv_bwd_kind;

/* The forward geometry, from the attributes and x's shape (which passed inference). */
typedef struct prt_conv_bwd_geom {
    int64_t n, c, h, w, o, g;   /* batch, in channels, height, width, out channels, groups */
    prt_window win;
} prt_conv_bwd_geom;
void prt_conv_bwd_geom_of(const prt_attr *attrs, const prt_shape *x, prt_conv_bwd_geom *g);

/* Shape inference: checks x and the attributes as conv does, then that dy is the
 * conv output and w the weight for them; out[0] = x's (data) or w's (weight) shape. */
prt_status prt_conv_bwd_infer(prt_infer_ctx *ic, prt_conv_bwd_kind kind);
/* 2 FLOPs per multiply-add: as many as the forward convolution without bias. */
int64_t prt_conv_bwd_flops(const prt_infer_ctx *ic, prt_conv_bwd_kind kind);
size_t prt_conv_bwd_workspace(const prt_infer_ctx *ic, prt_conv_bwd_kind kind);
/* Fast path with a layout (PRT_CONV_AUTO / PLAIN / BLOCKED, as for the forward
 * conv); the state is a prt_dnnl_prim (release with prt_dnnl_prim_release). */
prt_status prt_conv_bwd_prepare_layout(const prt_kernel_call *c, prt_conv_bwd_kind kind, int layout, void **state);
prt_status prt_conv_bwd_run(const prt_kernel_call *c, const char *what);

/* ---- linear backward (ops/linear_bwd.c) ----------------------------------
 * linear_bwd_data:   (dy, w, x) -> dx, x read for its shape only
 * linear_bwd_weight: (dy, x) -> dw
 * x of any rank >= 2 is viewed as [N, in], in = the product of its other dims. */
typedef enum prt_linear_bwd_kind { PRT_LINEAR_BWD_DATA, PRT_LINEAR_BWD_WEIGHT } prt_linear_bwd_kind;
typedef struct prt_linear_dims {
    int64_t n, k, out;
} prt_linear_dims;
void prt_linear_bwd_dims(const prt_shape *x, int64_t out, prt_linear_dims *d);
prt_status prt_linear_bwd_infer(prt_infer_ctx *ic, prt_linear_bwd_kind kind);
int64_t prt_linear_bwd_flops(const prt_infer_ctx *ic, prt_linear_bwd_kind kind);
size_t prt_linear_bwd_workspace(const prt_infer_ctx *ic, prt_linear_bwd_kind kind);
/* Kernel entry check (f32, operand counts). */
prt_status prt_linear_bwd_check(const prt_kernel_call *c, prt_linear_bwd_kind kind);
/* The state is a prt_dnnl_prim: run with prt_dnnl_prim_run, free with prt_dnnl_prim_release. */
prt_status prt_linear_bwd_prepare(const prt_kernel_call *c, prt_linear_bwd_kind kind, void **state);

#endif

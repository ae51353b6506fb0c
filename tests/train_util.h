/* A network's training step on any device, for the tests that compare devices
 * (tests/test_vm_state.c, tests/test_cuda_train.c): built as `parrots train`
 * builds it, fed deterministic non-zero data, and its parameters read through
 * the VM's host mirror (prt_vm_pull_state), so the same code reads a CPU, a
 * second-handle or a CUDA VM. */
#ifndef PARROTS_TESTS_TRAIN_UTIL_H
#define PARROTS_TESTS_TRAIN_UTIL_H

#include "ops/train_impl.h"
#include "vm/vm_impl.h"

typedef struct tr_net {
    prt_context *ctx;
    prt_graph *g;
    prt_program *p;
    prt_vm *vm;
    prt_train_info ti;
} tr_net;

typedef struct tr_options {
    int64_t batch;
    int64_t size;        /* > 0: the input's spatial size (prt_graph_set_input_shape) */
    bool reference;      /* the plain C reference kernels */
    bool unplanned;      /* one allocation per register */
    prt_device *dev;     /* NULL: the CPU */
} tr_options;

/* Loads `rel` (a path under the source tree) with the file's solver at lr, a
 * one-epoch cosine schedule of 10 steps, no recompute; fails the test on error. */
void tr_open(tr_net *n, prt_context *ctx, const char *rel, const tr_options *o);
void tr_close(tr_net *n);
/* Fills the image and labels of step s: pixels in [0, 1) from a hash, labels
 * spread over the classes. */
void tr_feed(tr_net *n, int64_t s);
/* tr_feed then one run; fails the test on error. */
void tr_step(tr_net *n, int64_t s);
/* |a - b|_2 / |b|_2 over every trainable parameter as one vector (both pulled
 * first). */
double tr_params_l2(tr_net *a, tr_net *b);
/* The largest |a - b| / max|b| of a tensor over the parameters (params_only) or
 * the parameter and state tensors, and which tensor. */
double tr_state_worst(tr_net *a, tr_net *b, bool params_only, const char **which);
/* The loss of the last run (an output: host memory on every device). */
double tr_loss(tr_net *n);

#endif

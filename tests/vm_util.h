/* Helpers for the VM suites (test_vm.c, test_vm_verify.c): small graphs built
 * directly with the graph API, VMs over them, and hand-built program pieces. */
#ifndef PARROTS_VM_UTIL_H
#define PARROTS_VM_UTIL_H

#include "tests/test_util.h"
#include "vm/vm_impl.h"

const prt_op_schema *vt_op(prt_context *ctx, const char *name, int *id);
void vt_attrs_default(const prt_op_schema *s, prt_attr *a);
prt_attr *vt_attr(const prt_op_schema *s, prt_attr *a, const char *name);
void vt_set_int(const prt_op_schema *s, prt_attr *a, const char *name, int64_t v);
void vt_set_float(const prt_op_schema *s, prt_attr *a, const char *name, double v);
void vt_set_bool(const prt_op_schema *s, prt_attr *a, const char *name, bool v);
int vt_node(prt_graph *g, const char *opname, const char *name, const int *in, int n_in, const prt_attr *attrs);
int vt_input(prt_graph *g, const char *name, int c, int h, int w);
void vt_finish(prt_graph *g, const int *outs, int n);
prt_graph *vt_small_net(prt_context *ctx);
prt_graph *vt_branchy_net(prt_context *ctx);
void vt_fill_input(prt_vm *vm, int i, uint64_t key);
prt_vm *vt_make_vm(prt_context *ctx, const prt_program *p, bool reference);
int vt_kint(prt_context *ctx, prt_program *p, int64_t v);
void vt_emit(prt_context *ctx, prt_program *p, prt_instr ins);

typedef struct vt_counting_prog {
    prt_program *p;
    int a, b, one;   /* state accumulators a, b and the constant 1 */
    int add_a, add_b; /* call constants: a += 1, b += 1 */
    int i, j;        /* counters */
} vt_counting_prog;

/* Registers and call constants for programs that count how often each of two
 * CALLs runs: "a += one" and "b += one" with a and b persistent state. */
vt_counting_prog vt_counting(prt_context *ctx);

#endif

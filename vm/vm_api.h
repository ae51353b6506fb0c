/* The bytecode VM as seen from outside vm/: compile a graph to a program, verify
 * it, print it, and run it. (vm/vm_impl.h holds the encoding and internals.)
 *
 *     prt_program *p;
 *     PRT_CHECK(prt_vm_compile(g, batch, &p));       // also verifies
 *     prt_vm *vm;
 *     PRT_CHECK(prt_vm_create(ctx, p, prt_cpu_device(ctx), NULL, &vm));
 *     float *x = PRT_F32P(prt_vm_input(vm, 0));       // fill the input
 *     PRT_CHECK(prt_vm_run(vm));
 *     const prt_tensor *y = prt_vm_output(vm, 0);
 *     prt_vm_destroy(vm);  prt_program_destroy(ctx, p);
 */
#ifndef PARROTS_VM_API_H
#define PARROTS_VM_API_H

#include "runtime/graph_impl.h"

typedef struct prt_program prt_program;
typedef struct prt_vm prt_vm;

/* Whether a CUDA VM captures its run as a CUDA graph (docs/gpu.md, "CUDA
 * graphs"). AUTO: where the program allows it, else plain runs and
 * prt_vm_cuda_graph_state says why; ON: a program that cannot be captured is an
 * error at prt_vm_create; OFF: never. Ignored on the CPU. */
typedef enum prt_cuda_graph_mode { PRT_CUDA_GRAPH_AUTO = 0, PRT_CUDA_GRAPH_OFF, PRT_CUDA_GRAPH_ON } prt_cuda_graph_mode;

typedef struct prt_vm_options {
    bool reference;   /* run the plain C reference kernels instead of the fast paths */
    bool training;    /* training-mode forward (batch-norm batch statistics, dropout) */
    bool unplanned;   /* ignore the memory plan: one allocation per register and one shared
                       * workspace (the reference the planned arena is tested against) */
    bool poison;      /* debug: fill the arena with NaN before each run and every buffer
                       * with NaN right after its last use, so a plan that reuses memory
                       * too early changes the results (slow; planned runs only) */
    /* Data-parallel training: the job's communicator (runtime/comm_api.h). With
     * it, ALLREDUCE_START/WAIT average each gradient bucket over the ranks, and
     * kernels see it (prt_kernel_call.comm, sample_stride = size, sample_offset =
     * rank). NULL: one process, the allreduce instructions do nothing. Borrowed. */
    struct prt_comm *comm;
    bool sync_bn;     /* batch norm reduces its statistics over comm (synchronised BN) */
    /* CUDA device: the first run is plain, the second is captured into a CUDA
     * graph, later runs launch the graph (default AUTO) */
    prt_cuda_graph_mode cuda_graph;
} prt_vm_options;

/* "auto", "off", "on" (the command line's --cuda-graph); false for anything else. */
bool prt_cuda_graph_mode_from_name(const char *name, prt_cuda_graph_mode *out);
const char *prt_cuda_graph_mode_name(prt_cuda_graph_mode m);

/* Compiles the graph (params bound) for a batch size into a verified program that
 * does not refer back to the graph. Caller frees with prt_program_destroy. */
prt_status prt_vm_compile(prt_graph *g, int64_t batch, prt_program **out);
void prt_program_destroy(prt_context *ctx, prt_program *p);
/* Rejects any malformed program (register and constant bounds, op ids, operand
 * counts and shapes, jump targets) with a message naming the instruction. */
prt_status prt_vm_verify(prt_context *ctx, const prt_program *p);
/* Writes a readable listing of the program. */
prt_status prt_vm_disasm(prt_context *ctx, const prt_program *p, FILE *out);
int prt_program_n_instructions(const prt_program *p);

/* Execution state: one tensor per register (allocated on dev, one buffer each
 * until the memory planner lands), parameters initialised from the RNG, and the
 * prepared kernel state of every call. opts may be NULL. Caller frees with
 * prt_vm_destroy. The program is verified first, and borrowed: keep it alive
 * until prt_vm_destroy. */
prt_status prt_vm_create(prt_context *ctx, const prt_program *p, prt_device *dev,
                         const prt_vm_options *opts, prt_vm **out);
void prt_vm_destroy(prt_vm *vm);
prt_status prt_vm_run(prt_vm *vm);
/* The step counter: the next run executes as step `step` (0 for the first run).
 * Kernels see it as prt_kernel_call.step (dropout masks, learning-rate schedules);
 * setting it back replays a step exactly (gradient checks, resumed training). */
void prt_vm_set_step(prt_vm *vm, uint64_t step);
/* Records every instruction of later runs in trace (runtime/trace.h), NULL to
 * stop. Borrowed: keep it alive while set. */
struct prt_trace;
void prt_vm_set_trace(prt_vm *vm, struct prt_trace *trace);
/* Data parallel: copies rank root's parameters, running statistics and
 * optimizer state to every other rank of opts.comm (one broadcast of the
 * persistent block; on a GPU of device memory, over NCCL), so all ranks start
 * from the same state. Collective. */
prt_status prt_vm_broadcast_state(prt_vm *vm, int root);
uint64_t prt_vm_get_step(const prt_vm *vm);
/* The VM's CUDA graph, in words: "captured", "off", "off (CPU device)",
 * "pending (...)" before the capture, or "not used: <reason>" when AUTO found
 * the program cannot be captured (or the capture failed). Borrowed until the
 * next run or prt_vm_destroy. */
const char *prt_vm_cuda_graph_state(const prt_vm *vm);
int prt_vm_n_inputs(const prt_vm *vm);
int prt_vm_n_outputs(const prt_vm *vm);
/* Borrowed until prt_vm_destroy. */
prt_tensor *prt_vm_input(prt_vm *vm, int i);
const prt_tensor *prt_vm_output(const prt_vm *vm, int i);
/* On a CUDA device (runtime/cuda_api.h) inputs and outputs are host copies the
 * VM moves at each run, so callers fill and read them as on the CPU; every other
 * tensor (parameters included) is device memory.
 * Tensor of a named value (params included), or NULL. With a memory plan only
 * inputs, outputs, parameters, state and parameter gradients keep their values
 * after a run: other registers share arena memory (prt_vm_options.unplanned
 * keeps every register to itself, for tests that inspect intermediates). */
prt_tensor *prt_vm_find(prt_vm *vm, const char *name);

/* The persistent state (parameters, running statistics, optimizer state) on any
 * device. It lives on the VM's device; whatever reads or writes it from the host
 * (checkpoints, weights files, evaluation, ONNX, tests) goes through a host
 * mirror, moved only when asked, not at every run:
 *
 *     PRT_CHECK(prt_vm_pull_state(vm));                    // device -> mirror, synchronised
 *     prt_tensor *w = prt_vm_state(vm, "c1.weight");       // host memory
 *     ... read w, or write it and then ...
 *     PRT_CHECK(prt_vm_push_state(vm));                    // mirror -> device, synchronised
 *
 * Pull before writing too: push sends the whole mirror. On the context's CPU
 * device the mirror is the state itself and both calls do nothing. On any other
 * (CUDA) the mirror is allocated with the VM (untouched host pages cost nothing)
 * and holds stale values after a run until the next pull. */
prt_status prt_vm_pull_state(prt_vm *vm);
prt_status prt_vm_push_state(prt_vm *vm);
/* The host view of parameter or state tensor `name`, or NULL when it is not one.
 * Borrowed until prt_vm_destroy. */
prt_tensor *prt_vm_state(prt_vm *vm, const char *name);

/* Fills dst (host memory, prt_shape_count(shape) floats) with the initial values
 * of the parameter or state tensor `name`, from the counter-based RNG with key
 * prt_hash_str(name, ctx->seed): zeros, ones, N(0, sqrt(2/fan_in)) or
 * U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = numel / shape[0] (1 for a scalar).
 * The one definition of initial values; it needs only what a program keeps
 * (name, kind, shape), so a program loaded from a file starts the same. A 1-D
 * bias has fan_in 1 here (U(-1, 1)): the shape alone does not know its weight. */
prt_status prt_param_init(prt_context *ctx, const char *name, prt_init_kind kind,
                          const prt_shape *shape, float *dst);

#endif

/* The interpreter: creating the execution state of a verified program (one
 * tensor per register, parameters from the RNG, every kernel call prepared with
 * its pointer arrays and state) and running it with the dispatch loop of
 * vm/interp_loop.h, compiled twice: computed goto and switch. */
#include "vm/vm_impl.h"

#include "memory/memory_api.h"
#include "runtime/comm_api.h"
#include "runtime/cuda_api.h"
#include "runtime/trace.h"

#include <math.h>
#include <string.h>

static prt_status vm_call_failed(prt_vm *vm, int pc, const prt_vm_call *c, prt_status st) {
    return prt_error_prefix(vm->ctx, st, "program '%s': instruction %d (CALL %s '%s')",
                            vm->p->name, pc, c->op, c->node);
}

#define PRT_VM_LOOP_NAME vm_exec_switch
#define PRT_VM_LOOP_GOTO 0
#include "vm/interp_loop.h"
#undef PRT_VM_LOOP_NAME
#undef PRT_VM_LOOP_GOTO

#if PRT_VM_COMPUTED_GOTO
/* Labels as values are a GNU extension; -pedantic builds need telling. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#define PRT_VM_LOOP_NAME vm_exec_goto
#define PRT_VM_LOOP_GOTO 1
#include "vm/interp_loop.h"
#undef PRT_VM_LOOP_NAME
#undef PRT_VM_LOOP_GOTO
#pragma GCC diagnostic pop
#else
#define vm_exec_goto vm_exec_switch
#endif

/* A run executes with the current step, then counts it: the first run is step 0,
 * which is what learning-rate schedules and dropout masks are keyed by. */
static prt_status poison_buffer(prt_vm *vm, const prt_mem_buffer *b) {
    return vm->dev->iface->fill_f32(vm->dev, (char *)vm->arena + b->offset, NAN, b->bytes / 4, NULL);
}

/* ---- allreduce instructions ---------------------------------------------- */

prt_status prt_vm_allreduce_start(prt_vm *vm, int pc, int bucket) {
    prt_comm *c = vm->opts.comm;
    if (!c || prt_comm_size(c) == 1) return PRT_OK;
    for (int s = vm->span_start[bucket]; s < vm->span_start[bucket + 1]; s++) {
        prt_status st = prt_comm_allreduce_start_tagged(c, vm->bucket_spans[s].p, vm->bucket_spans[s].count, PRT_F32,
                                                        PRT_COMM_AVG, bucket, &vm->bucket_handle[bucket]);
        if (st != PRT_OK)
            return prt_error_prefix(vm->ctx, st, "program '%s': instruction %d (ALLREDUCE_START bucket %d)",
                                    vm->p->name, pc, bucket);
    }
    return PRT_OK;
}

prt_status prt_vm_allreduce_wait(prt_vm *vm, int pc, int bucket) {
    prt_comm *c = vm->opts.comm;
    uint64_t h = vm->bucket_handle[bucket];
    if (!c || h == 0) return PRT_OK;
    vm->bucket_handle[bucket] = 0;
    double t0 = vm->trace ? prt_now() : 0;
    prt_status st = prt_comm_wait(c, h);
    if (vm->trace) prt_trace_span(vm->trace, PRT_TRACE_wait, "wait", "allreduce", t0, prt_now(), bucket);
    if (st != PRT_OK)
        return prt_error_prefix(vm->ctx, st, "program '%s': instruction %d (ALLREDUCE_WAIT bucket %d)", vm->p->name,
                                pc, bucket);
    return PRT_OK;
}

/* The slow run of a planned (straight-line) program, for debugging and
 * measuring: with opts.poison the whole arena but the inputs is poisoned
 * first, then every buffer right after the instruction that reads it last;
 * with a trace, every instruction's span is recorded. */
static prt_status vm_exec_slow(prt_vm *vm) {
    const prt_program *p = vm->p;
    const prt_mem_plan *plan = vm->plan;
    bool poison = vm->poison_list != NULL;
    if (poison)
        for (int b = 0; b < plan->n_bufs; b++) {
            int r = plan->bufs[b].reg;
            if (r >= 0 && p->regs[r].kind == PRT_REG_INPUT) continue;
            PRT_CHECK(poison_buffer(vm, &plan->bufs[b]));
        }
    for (int pc = 0; pc < p->n_code; pc++) {
        prt_instr i = p->code[pc];
        unsigned op = PRT_VM_RAW_OP(i);
        if (op == PRT_OP_HALT) return PRT_OK;
        if (op == PRT_OP_ALLREDUCE_START) PRT_CHECK(prt_vm_allreduce_start(vm, pc, (int)PRT_VM_RAW_A(i)));
        if (op == PRT_OP_ALLREDUCE_WAIT) PRT_CHECK(prt_vm_allreduce_wait(vm, pc, (int)PRT_VM_RAW_A(i)));
        if (op != PRT_OP_CALL && op != PRT_OP_RECOMPUTE) continue;
        prt_vm_call *c = &vm->calls[PRT_VM_RAW_X(i)];
        c->kc.step = vm->step;
        double t0 = vm->trace ? prt_now() : 0;
        prt_status st = c->run(&c->kc);
        if (vm->trace) prt_trace_span(vm->trace, PRT_TRACE_compute, c->node, c->op, t0, prt_now(), -1);
        if (st != PRT_OK) return vm_call_failed(vm, pc, c, st);
        if (poison)
            for (int k = vm->poison_start[pc]; k < vm->poison_start[pc + 1]; k++)
                PRT_CHECK(poison_buffer(vm, &plan->bufs[vm->poison_list[k]]));
    }
    return PRT_OK;
}

/* Anything a run started and did not wait for (a failed step) is waited for
 * before the next run may touch the gradients again. */
static prt_status drain(prt_vm *vm, prt_status st) {
    bool pending = false;
    for (int b = 0; b < vm->buckets.n; b++) pending |= vm->bucket_handle[b] != 0;
    if (!pending) return st;
    /* after a failure the later waits only repeat it: its message stays */
    char first[sizeof vm->ctx->errmsg];
    if (st != PRT_OK) snprintf(first, sizeof first, "%s", prt_last_error(vm->ctx));
    for (int b = 0; b < vm->buckets.n; b++) {
        if (!vm->bucket_handle[b]) continue;
        prt_status w = prt_comm_wait(vm->opts.comm, vm->bucket_handle[b]);
        vm->bucket_handle[b] = 0;
        if (st == PRT_OK && w != PRT_OK) {
            st = w;
            snprintf(first, sizeof first, "%s", prt_last_error(vm->ctx));
        }
    }
    if (st != PRT_OK) prt_error(vm->ctx, st, "%s", first);
    return st;
}

static bool slow_path(const prt_vm *vm) { return vm->poison_list || (vm->trace && vm->straight); }

/* CUDA: inputs to the device before a run, outputs back after it. */
static prt_status move_io(prt_vm *vm, bool in) {
    if (!vm->cuda) return PRT_OK;
    const prt_program *p = vm->p;
    prt_device *dev = vm->dev;
    int n = in ? p->n_inputs : p->n_outputs;
    for (int i = 0; i < n; i++) {
        prt_tensor *h = in ? &vm->host_in[i] : &vm->host_out[i];
        prt_tensor *d = &vm->regs[in ? p->inputs[i] : p->outputs[i]];
        size_t bytes = h->buf ? h->buf->size : 0;
        PRT_CHECK(in ? dev->iface->copy(dev, d->data, h->data, bytes, PRT_COPY_HOST_TO_DEVICE, NULL)
                     : dev->iface->copy(dev, h->data, d->data, bytes, PRT_COPY_DEVICE_TO_HOST, NULL));
    }
    return in ? PRT_OK : dev->iface->sync(dev);
}

/* ---- per-step values and CUDA graphs ---------------------------------------
 *
 * A CUDA VM runs its first run plainly (kernels load lazily, cuDNN and cuBLAS
 * set themselves up), captures the instruction loop of its second run on the
 * compute stream into a CUDA graph, and from then on launches that graph
 * instead of interpreting. Inputs go to the device before and outputs come
 * back after, outside the graph (they are pageable host memory).
 *
 * A captured launch keeps the arguments it was captured with, so nothing that
 * changes between steps may be passed by value: kernels that need such values
 * (the optimizers' learning rate and coefficients, dropout's counter) declare
 * prt_kernel.step_bytes and step_values, and read them from their slot of the
 * VM's step block (prt_kernel_call.step_slot). Before every run, graph or
 * plain, the VM has each of them write its step's values into the block's
 * page-locked host mirror and copies the mirror over in one asynchronous copy
 * on the compute stream, so plain runs and replays execute the same kernels on
 * the same values.
 *
 * What keeps a program from being captured (AUTO then runs plainly and says
 * why, ON refuses it at prt_vm_create): a communicator whose reductions run on
 * host threads (MPI; NCCL collectives are captured, runtime/cuda/comm_nccl.c),
 * synchronised batch norm, and any call whose kernel says so
 * (prt_kernel.no_capture). A capture CUDA refuses (a capture-unsafe call
 * during the run) or a program whose loop counters do not come back to their
 * starting values falls back the same way, recorded in the state. A traced run
 * (prt_vm_set_trace) runs plainly, to record its instructions. */

static const char *const graph_mode_names[] = {"auto", "off", "on"};

bool prt_cuda_graph_mode_from_name(const char *name, prt_cuda_graph_mode *out) {
    for (int m = 0; name && m < (int)(sizeof graph_mode_names / sizeof *graph_mode_names); m++)
        if (strcmp(name, graph_mode_names[m]) == 0) {
            *out = (prt_cuda_graph_mode)m;
            return true;
        }
    return false;
}

const char *prt_cuda_graph_mode_name(prt_cuda_graph_mode m) {
    return (unsigned)m < sizeof graph_mode_names / sizeof *graph_mode_names ? graph_mode_names[m] : "?";
}

const char *prt_vm_cuda_graph_state(const prt_vm *vm) {
    if (!vm->cuda) return "off (CPU device)";
    switch (vm->graph) {
    case PRT_VM_GRAPH_OFF: return "off";
    case PRT_VM_GRAPH_REFUSED: return vm->graph_state;
    case PRT_VM_GRAPH_FIRST: return "pending (the first run is plain, the second is captured)";
    case PRT_VM_GRAPH_CAPTURE: return "pending (captured at the next run)";
    case PRT_VM_GRAPH_READY: return "captured";
    }
    return "?";
}

/* AUTO without a graph: the reason goes in the state and, once, in the log. */
static void graph_refuse(prt_vm *vm, const char *why) {
    vm->graph = PRT_VM_GRAPH_REFUSED;
    snprintf(vm->graph_state, sizeof vm->graph_state, "not used: %s", why);
    prt_log_info(vm->ctx, "program '%s': CUDA graph %s; running plainly", vm->p->name, vm->graph_state);
}

/* Why the program cannot be captured, or NULL. */
static const char *capture_blocker(prt_vm *vm, char *buf, size_t cap) {
    const prt_program *p = vm->p;
    prt_comm *c = vm->opts.comm;
    if (c && prt_comm_size(c) > 1 && strcmp(prt_comm_backend(c), "nccl") != 0) {
        snprintf(buf, cap, "the '%s' communicator reduces gradients on host threads, which a CUDA graph cannot replay",
                 prt_comm_backend(c));
        return buf;
    }
    if (c && prt_comm_size(c) > 1 && vm->opts.sync_bn && vm->opts.training) {
        snprintf(buf, cap, "synchronised batch norm reduces its statistics on the host");
        return buf;
    }
    for (int k = 0; k < p->n_k; k++) {
        if (p->k[k].kind != PRT_CONST_CALL) continue;
        const prt_vm_call *call = &vm->calls[k];
        const char *why = call->kernel->no_capture ? call->kernel->no_capture(&call->kc) : NULL;
        if (why) {
            snprintf(buf, cap, "call '%s' (%s): %s", call->node, call->op, why);
            return buf;
        }
    }
    return NULL;
}

/* CUDA: the step block (one slot per call with per-step values) and the
 * graph's starting phase. */
static prt_status setup_graph(prt_vm *vm) {
    prt_context *ctx = vm->ctx;
    const prt_program *p = vm->p;
    vm->graph = PRT_VM_GRAPH_OFF;
    if (!vm->cuda) return PRT_OK;
    size_t off = 0;
    int n = 0;
    for (int k = 0; k < p->n_k; k++) {
        if (p->k[k].kind != PRT_CONST_CALL) continue;
        const prt_kernel *kn = vm->calls[k].kernel;
        if (!kn->step_values || kn->step_bytes == 0) continue;
        vm->calls[k].step_off = off;
        off += (kn->step_bytes + 15) / 16 * 16; /* 16-byte slots: any kernel's struct is aligned */
        n++;
    }
    if (n > 0) {
        vm->step_calls = prt_calloc(ctx, (size_t)n, sizeof *vm->step_calls);
        if (!vm->step_calls) return prt_error(ctx, PRT_ERR_NOMEM, "program '%s': out of memory", p->name);
        for (int k = 0; k < p->n_k; k++) {
            if (p->k[k].kind != PRT_CONST_CALL) continue;
            const prt_kernel *kn = vm->calls[k].kernel;
            if (kn->step_values && kn->step_bytes > 0) vm->step_calls[vm->n_step_calls++] = k;
        }
        void *d = NULL;
        prt_status st = vm->dev->iface->alloc(vm->dev, off, &d);
        if (st != PRT_OK) return prt_error_prefix(ctx, st, "program '%s': allocating the per-step values", p->name);
        vm->step_dev = d;
        PRT_CHECK(prt_cuda_host_alloc(vm->dev, off, &d));
        vm->step_host = d;
        memset(vm->step_host, 0, off);
        vm->step_bytes = off;
        for (int i = 0; i < n; i++) {
            prt_vm_call *c = &vm->calls[vm->step_calls[i]];
            c->kc.step_slot = vm->step_dev + c->step_off;
        }
    }
    if (vm->opts.cuda_graph == PRT_CUDA_GRAPH_OFF) return PRT_OK;
    char buf[256];
    const char *why = capture_blocker(vm, buf, sizeof buf);
    if (why && vm->opts.cuda_graph == PRT_CUDA_GRAPH_ON)
        return prt_error(ctx, PRT_ERR_UNSUPPORTED, "program '%s': CUDA graph on, but the step cannot be captured: %s",
                         p->name, why);
    if (why) {
        graph_refuse(vm, why);
        return PRT_OK;
    }
    vm->ireg_start = prt_calloc(ctx, (size_t)p->n_regs + 1, sizeof *vm->ireg_start);
    if (!vm->ireg_start) return prt_error(ctx, PRT_ERR_NOMEM, "program '%s': out of memory", p->name);
    vm->graph = PRT_VM_GRAPH_FIRST;
    return PRT_OK;
}

/* This step's per-step values into the mirror, then one copy to the device,
 * ordered on the compute stream before the run's launches. */
static prt_status upload_step_values(prt_vm *vm) {
    if (vm->step_bytes == 0) return PRT_OK;
    prt_device *dev = vm->dev;
    /* a run that ended with its sync left no copy reading the mirror */
    if (vm->step_inflight) PRT_CHECK(dev->iface->sync(dev));
    for (int i = 0; i < vm->n_step_calls; i++) {
        prt_vm_call *c = &vm->calls[vm->step_calls[i]];
        c->kc.step = vm->step;
        prt_status st = c->kernel->step_values(&c->kc, vm->step_host + c->step_off);
        if (st != PRT_OK)
            return prt_error_prefix(vm->ctx, st, "program '%s': the per-step values of call '%s' (%s)", vm->p->name,
                                    c->node, c->op);
    }
    vm->step_inflight = true;
    return dev->iface->copy(dev, vm->step_dev, vm->step_host, vm->step_bytes, PRT_COPY_HOST_TO_DEVICE, NULL);
}

typedef prt_status (*vm_loop_fn)(prt_vm *vm);

/* The second run: the loop captured, the graph instantiated and launched. A
 * failed capture ran nothing, so AUTO then runs the step plainly (and keeps
 * doing so); ON reports it. */
static prt_status vm_capture(prt_vm *vm, vm_loop_fn loop) {
    prt_context *ctx = vm->ctx;
    const prt_program *p = vm->p;
    size_t nb = (size_t)p->n_regs * sizeof *vm->ireg;
    memcpy(vm->ireg_start, vm->ireg, nb);
    prt_status st = prt_cuda_capture_begin(vm->dev);
    if (st == PRT_OK) {
        st = loop(vm);
        prt_cuda_graph *g = NULL;
        prt_status e = prt_cuda_capture_end(vm->dev, st == PRT_OK, &g);
        if (st == PRT_OK) st = e;
        /* the graph replays one path through the loops: it must be every run's */
        if (st == PRT_OK && memcmp(vm->ireg, vm->ireg_start, nb) != 0) {
            prt_cuda_graph_destroy(g);
            st = prt_error(ctx, PRT_ERR_UNSUPPORTED,
                           "the loop counters end a run with other values than they start it with, so runs differ");
        } else if (st == PRT_OK) {
            vm->graph_exec = g;
            vm->graph = PRT_VM_GRAPH_READY;
            prt_log_debug(ctx, "program '%s': step captured as a CUDA graph", p->name);
            return prt_cuda_graph_launch(vm->dev, g);
        }
    }
    if (vm->opts.cuda_graph == PRT_CUDA_GRAPH_ON)
        return prt_error_prefix(ctx, st, "program '%s': capturing the step as a CUDA graph", p->name);
    char why[256];
    snprintf(why, sizeof why, "the capture failed: %s", prt_last_error(ctx));
    graph_refuse(vm, why);
    /* the captured instructions did not run: their host effects are undone */
    memcpy(vm->ireg, vm->ireg_start, nb);
    for (int b = 0; b < vm->buckets.n; b++) vm->bucket_handle[b] = 0;
    return loop(vm);
}

static prt_status vm_exec(prt_vm *vm, vm_loop_fn loop) {
    if (slow_path(vm)) return vm_exec_slow(vm);
    if (vm->trace) return loop(vm);
    switch (vm->graph) {
    case PRT_VM_GRAPH_READY: return prt_cuda_graph_launch(vm->dev, vm->graph_exec);
    case PRT_VM_GRAPH_CAPTURE: return vm_capture(vm, loop);
    case PRT_VM_GRAPH_FIRST: {
        prt_status st = loop(vm);
        if (st == PRT_OK) vm->graph = PRT_VM_GRAPH_CAPTURE;
        return st;
    }
    default: return loop(vm);
    }
}

static prt_status vm_run_with(prt_vm *vm, vm_loop_fn loop) {
    prt_status st = move_io(vm, true);
    if (st == PRT_OK) st = upload_step_values(vm);
    if (st == PRT_OK) st = vm_exec(vm, loop);
    st = drain(vm, st);
    /* NCCL: a hung or failed collective surfaces here, before anything waits on the device */
    if (st == PRT_OK && vm->cuda && vm->opts.comm) st = prt_comm_nccl_check(vm->opts.comm);
    if (st == PRT_OK) st = move_io(vm, false);
    if (st == PRT_OK) vm->step_inflight = false; /* move_io synchronised the device */
    vm->step++;
    return st;
}

prt_status prt_vm_run(prt_vm *vm) {
    double t0 = vm->trace ? prt_now() : 0;
    prt_status st = vm_run_with(vm, vm_exec_goto);
    if (vm->trace) prt_trace_span(vm->trace, PRT_TRACE_step, "step", NULL, t0, prt_now(), -1);
    return st;
}

prt_status prt_vm_run_switch(prt_vm *vm) { return vm_run_with(vm, vm_exec_switch); }

void prt_vm_set_trace(prt_vm *vm, struct prt_trace *trace) { vm->trace = trace; }

prt_status prt_vm_broadcast_state(prt_vm *vm, int root) {
    prt_comm *c = vm->opts.comm;
    if (!c || prt_comm_size(c) == 1) return PRT_OK;
    const prt_program *p = vm->p;
    if (vm->persistent) {
        prt_status st = prt_comm_broadcast(c, vm->persistent, vm->plan->persistent_bytes, root);
        if (st != PRT_OK)
            return prt_error_prefix(vm->ctx, st, "program '%s': sending rank %d's parameters to every rank", p->name,
                                    root);
        return PRT_OK;
    }
    for (int r = 0; r < p->n_regs; r++) {
        prt_reg_kind k = p->regs[r].kind;
        if (k != PRT_REG_PARAM && k != PRT_REG_STATE) continue;
        const prt_tensor *t = &vm->regs[r];
        size_t bytes;
        PRT_CHECK(prt_shape_nbytes(vm->ctx, &t->shape, t->dtype, &bytes));
        prt_status st = prt_comm_broadcast(c, t->data, bytes, root);
        if (st != PRT_OK)
            return prt_error_prefix(vm->ctx, st, "program '%s': sending '%s' of rank %d to every rank", p->name,
                                    p->regs[r].name, root);
    }
    return PRT_OK;
}

void prt_vm_set_step(prt_vm *vm, uint64_t step) { vm->step = step; }
uint64_t prt_vm_get_step(const prt_vm *vm) { return vm->step; }

/* ---- creation ------------------------------------------------------------ */

static prt_status init_param(prt_vm *vm, int r) {
    prt_context *ctx = vm->ctx;
    const prt_reg *g = &vm->p->regs[r];
    prt_tensor *t = &vm->regs[r];
    if (g->dtype != PRT_F32)
        return prt_error(ctx, PRT_ERR_UNSUPPORTED, "%s '%s': dtype %s cannot be initialised",
                         prt_reg_kind_name(g->kind), g->name, prt_dtype_name(g->dtype));
    if (vm->dev == prt_cpu_device(ctx)) return prt_param_init(ctx, g->name, g->init, &g->shape, PRT_F32P(t));
    /* Other devices: fill on the host, then copy over. */
    size_t bytes;
    PRT_CHECK(prt_shape_nbytes(ctx, &g->shape, PRT_F32, &bytes));
    float *host = prt_malloc(ctx, bytes ? bytes : 1);
    if (!host) return prt_error(ctx, PRT_ERR_NOMEM, "'%s': out of memory", g->name);
    prt_status st = prt_param_init(ctx, g->name, g->init, &g->shape, host);
    if (st == PRT_OK)
        st = vm->dev->iface->copy(vm->dev, PRT_F32P(t), host, bytes, PRT_COPY_HOST_TO_DEVICE, NULL);
    if (st == PRT_OK) st = vm->dev->iface->sync(vm->dev);
    prt_free(ctx, host, bytes ? bytes : 1);
    return st;
}

/* Points every register into the two blocks of the plan: persistent state and
 * the arena (zeroed, so a run never sees stale memory). */
static prt_status alloc_planned(prt_vm *vm) {
    prt_context *ctx = vm->ctx;
    const prt_program *p = vm->p;
    const prt_mem_plan *plan = vm->plan;
    prt_device *dev = vm->dev;
    size_t sizes[2] = {plan->persistent_bytes, plan->arena_bytes};
    void **blocks[2] = {&vm->persistent, &vm->arena};
    for (int i = 0; i < 2; i++) {
        if (sizes[i] == 0) continue;
        prt_status st = dev->iface->alloc(dev, sizes[i], blocks[i]);
        if (st != PRT_OK) {
            char b[32];
            return prt_error_prefix(ctx, st, "program '%s': allocating the %s of %s", p->name,
                                    i == 0 ? "parameters and state" : "arena",
                                    prt_mem_format_bytes(sizes[i], b, sizeof b));
        }
        if (i > 0) PRT_CHECK(dev->iface->fill_f32(dev, *blocks[i], 0.0f, sizes[i] / 4, NULL));
    }
    vm->arena_size = plan->arena_bytes;
    for (int r = 0; r < p->n_regs; r++) {
        const prt_reg *g = &p->regs[r];
        char *base = plan->reg_region[r] == PRT_MEM_PERSISTENT ? vm->persistent
                     : plan->reg_region[r] == PRT_MEM_GRAD     ? vm->arena
                     : plan->reg_region[r] == PRT_MEM_ARENA    ? vm->arena
                                                               : NULL;
        if (!base) continue;
        prt_tensor_wrap(&vm->regs[r], base + plan->reg_offset[r], g->dtype, &g->shape);
        if (g->kind == PRT_REG_PARAM || g->kind == PRT_REG_STATE) PRT_CHECK(init_param(vm, r));
        int existing;
        prt_status st = prt_strtab_put(ctx, vm->names, g->name, r, &existing);
        if (st != PRT_OK && st != PRT_ERR_INVALID) return st;
    }
    if (!vm->opts.poison) return PRT_OK;
    /* poison lists: the buffers whose last reader is each instruction */
    vm->poison_start = prt_calloc(ctx, (size_t)p->n_code + 2, sizeof *vm->poison_start);
    vm->poison_list = prt_calloc(ctx, (size_t)plan->n_bufs + 1, sizeof *vm->poison_list);
    if (!vm->poison_start || !vm->poison_list) return prt_error(ctx, PRT_ERR_NOMEM, "out of memory");
    for (int b = 0; b < plan->n_bufs; b++) vm->poison_start[plan->bufs[b].last + 1]++;
    for (int pc = 0; pc <= p->n_code; pc++) vm->poison_start[pc + 1] += vm->poison_start[pc];
    int *fill = prt_calloc(ctx, (size_t)p->n_code + 1, sizeof *fill);
    if (!fill) return prt_error(ctx, PRT_ERR_NOMEM, "out of memory");
    for (int b = 0; b < plan->n_bufs; b++) {
        int pc = plan->bufs[b].last;
        vm->poison_list[vm->poison_start[pc] + fill[pc]++] = b;
    }
    prt_free(ctx, fill, 0);
    return PRT_OK;
}

static prt_status alloc_registers(prt_vm *vm) {
    prt_context *ctx = vm->ctx;
    const prt_program *p = vm->p;
    if (vm->plan && !vm->opts.unplanned) return alloc_planned(vm);
    for (int r = 0; r < p->n_regs; r++) {
        const prt_reg *g = &p->regs[r];
        if (g->kind == PRT_REG_COUNTER) continue;
        prt_status st = prt_tensor_alloc(ctx, vm->dev, g->dtype, &g->shape, &vm->regs[r]);
        if (st != PRT_OK) return prt_error_prefix(ctx, st, "register r%d '%s'", r, g->name);
        if (g->kind == PRT_REG_PARAM || g->kind == PRT_REG_STATE) {
            PRT_CHECK(init_param(vm, r));
        } else {
            /* Inputs and activations start at zero, so a run never sees stale memory.
             * Zero is all-zero bits in every dtype, so integer registers (labels)
             * are filled as floats, and a byte tail by copying. */
            size_t bytes = vm->regs[r].buf ? vm->regs[r].buf->size : 0;
            PRT_CHECK(vm->dev->iface->fill_f32(vm->dev, vm->regs[r].data, 0.0f, bytes / 4, NULL));
            if (bytes % 4) {
                static const char zero[4];
                PRT_CHECK(vm->dev->iface->copy(vm->dev, (char *)vm->regs[r].data + bytes / 4 * 4, zero, bytes % 4,
                                               PRT_COPY_HOST_TO_DEVICE, NULL));
            }
        }
        int existing;
        st = prt_strtab_put(ctx, vm->names, g->name, r, &existing);
        /* A duplicate name keeps the first register: prt_vm_find is by name only. */
        if (st != PRT_OK && st != PRT_ERR_INVALID) return st;
    }
    return PRT_OK;
}

/* Fills the prepared call for constant k (a call descriptor). */
static prt_status setup_call(prt_vm *vm, int k, size_t *workspace) {
    prt_context *ctx = vm->ctx;
    const prt_program *p = vm->p;
    const prt_call_desc *d = &p->k[k].call;
    const prt_op_schema *s = prt_op_get(ctx->ops, p->ops[d->op].id);
    prt_vm_call *c = &vm->calls[k];
    c->kernel = vm->cuda ? &s->cuda : prt_op_kernel(s, vm->opts.reference);
    if (!c->kernel->run)
        return prt_error(ctx, PRT_ERR_UNSUPPORTED, "program '%s': call '%s': op '%s' has no CUDA kernel, so the program "
                         "cannot run on a GPU", p->name, d->node, s->name);
    /* bf16 (scheduler/precision.c): only the kernels that say so read or write it */
    for (int j = 0; j < d->n_in + d->n_out; j++) {
        if (p->regs[j < d->n_in ? d->in[j] : d->out[j - d->n_in]].dtype != PRT_BF16) continue;
        if (!vm->cuda && s != &prt_op_cast)
            return prt_error(ctx, PRT_ERR_UNSUPPORTED, "program '%s': call '%s': op '%s' computes in bf16, which the "
                             "CPU kernels do not: bf16 needs --device cuda", p->name, d->node, s->name);
        if (vm->cuda && !s->cuda_bf16)
            return prt_error(ctx, PRT_ERR_UNSUPPORTED, "program '%s': call '%s': op '%s' has no bf16 CUDA kernel",
                             p->name, d->node, s->name);
        break;
    }
    c->run = c->kernel->run;
    c->node = d->node;
    c->op = s->name;
    c->in = prt_calloc(ctx, (size_t)d->n_in + 1, sizeof *c->in);
    c->out = prt_calloc(ctx, (size_t)d->n_out + 1, sizeof *c->out);
    if (!c->in || !c->out) return prt_error(ctx, PRT_ERR_NOMEM, "call '%s': out of memory", d->node);
    for (int j = 0; j < d->n_in; j++) c->in[j] = &vm->regs[d->in[j]];
    for (int j = 0; j < d->n_out; j++) c->out[j] = &vm->regs[d->out[j]];
    c->kc.ctx = ctx;
    c->kc.schema = s;
    c->kc.node_name = d->node;
    c->kc.attrs = d->attrs;
    c->kc.n_in = d->n_in;
    c->kc.in = c->in;
    c->kc.n_out = d->n_out;
    c->kc.out = c->out;
    c->kc.training = vm->opts.training;
    c->kc.dev = vm->dev;
    c->kc.stream = vm->stream;
    if (vm->opts.comm && prt_comm_size(vm->opts.comm) > 1) {
        c->kc.comm = vm->opts.comm;
        c->kc.sync_bn = vm->opts.sync_bn;
        c->kc.sample_stride = prt_comm_size(vm->opts.comm);
        c->kc.sample_offset = prt_comm_rank(vm->opts.comm);
    }
    c->kc.rng_key = prt_hash_str(d->node, ctx->seed);
    PRT_CHECK(prt_vm_call_workspace_on(ctx, p, k, vm->cuda, &c->kc.workspace_size));
    if (c->kc.workspace_size > *workspace) *workspace = c->kc.workspace_size;
    return PRT_OK;
}

static prt_status prepare_calls(prt_vm *vm) {
    prt_context *ctx = vm->ctx;
    const prt_program *p = vm->p;
    size_t workspace = 0;
    for (int k = 0; k < p->n_k; k++) {
        if (p->k[k].kind == PRT_CONST_INT) vm->kint[k] = p->k[k].i;
        if (p->k[k].kind == PRT_CONST_CALL) PRT_CHECK(setup_call(vm, k, &workspace));
    }
    for (int pc = 0; pc < p->n_code; pc++)
        if (PRT_VM_RAW_OP(p->code[pc]) == PRT_OP_RECOMPUTE) vm->calls[PRT_VM_RAW_X(p->code[pc])].kc.recompute = true;
    /* Planned: each call's workspace has its place in the arena. Unplanned: calls
     * run one at a time, so one buffer the size of the largest need serves all. */
    bool planned = vm->plan && !vm->opts.unplanned;
    if (workspace > 0 && !planned) {
        PRT_CHECK(vm->dev->iface->alloc(vm->dev, workspace, &vm->workspace));
        vm->workspace_size = workspace;
    }
    for (int k = 0; k < p->n_k; k++) {
        if (p->k[k].kind != PRT_CONST_CALL) continue;
        prt_vm_call *c = &vm->calls[k];
        if (c->kc.workspace_size > 0)
            c->kc.workspace = planned ? (char *)vm->arena + vm->plan->ws_offset[k] : vm->workspace;
        if (!c->kernel->prepare) continue;
        prt_status st = c->kernel->prepare(&c->kc, &c->kc.state);
        if (st != PRT_OK)
            return prt_error_prefix(ctx, st, "program '%s': preparing call '%s' (%s)", p->name,
                                    c->node, c->op);
        c->prepared = true;
    }
    return PRT_OK;
}

/* Where each bucket's gradients are: planned, one piece (the bucket is one
 * arena buffer); unplanned, one piece per gradient register. */
static prt_status setup_buckets(prt_vm *vm) {
    prt_context *ctx = vm->ctx;
    const prt_program *p = vm->p;
    vm->straight = true;
    for (int pc = 0; pc < p->n_code; pc++) {
        unsigned op = PRT_VM_RAW_OP(p->code[pc]);
        if (op == PRT_OP_JMP || op == PRT_OP_LOOP || op == PRT_OP_SETI) vm->straight = false;
    }
    PRT_CHECK(prt_program_buckets(ctx, p, &vm->buckets));
    int nb = vm->buckets.n, n_spans = 0;
    for (int b = 0; b < nb; b++) n_spans += vm->buckets.b[b].n_regs;
    vm->span_start = prt_calloc(ctx, (size_t)nb + 2, sizeof *vm->span_start);
    vm->bucket_handle = prt_calloc(ctx, (size_t)nb + 1, sizeof *vm->bucket_handle);
    vm->bucket_spans = prt_calloc(ctx, (size_t)n_spans + 1, sizeof *vm->bucket_spans);
    if (!vm->span_start || !vm->bucket_handle || !vm->bucket_spans)
        return prt_error(ctx, PRT_ERR_NOMEM, "program '%s': out of memory", p->name);
    bool planned = vm->plan && !vm->opts.unplanned;
    int s = 0;
    for (int b = 0; b < nb; b++) {
        const prt_bucket *bk = &vm->buckets.b[b];
        vm->span_start[b] = s;
        int buf = planned && bk->n_regs > 0 ? vm->plan->reg_buffer[bk->regs[0]] : -1;
        bool one = buf >= 0 && vm->plan->bufs[buf].bucket >= 0;
        for (int j = 0; one && j < bk->n_regs; j++) one = vm->plan->reg_buffer[bk->regs[j]] == buf;
        if (one) {
            vm->bucket_spans[s++] = (prt_vm_span_mem){(float *)((char *)vm->arena + vm->plan->bufs[buf].offset),
                                                      vm->plan->bufs[buf].bytes / sizeof(float)};
            continue;
        }
        for (int j = 0; j < bk->n_regs; j++) {
            prt_tensor *t = &vm->regs[bk->regs[j]];
            vm->bucket_spans[s++] = (prt_vm_span_mem){PRT_F32P(t), (size_t)prt_shape_count(&t->shape)};
        }
    }
    vm->span_start[nb] = s;
    return PRT_OK;
}

/* A CUDA VM: its own plan (the CUDA kernels' workspaces), the compute stream,
 * and host copies of the inputs and outputs, so that callers fill and read
 * host memory on every device. */
static prt_status setup_device(prt_vm *vm) {
    prt_context *ctx = vm->ctx;
    const prt_program *p = vm->p;
    vm->plan = p->plan;
    vm->cuda = prt_device_is_cuda(vm->dev);
    if (!vm->cuda) return PRT_OK;
    if (vm->opts.poison)
        return prt_error(ctx, PRT_ERR_UNSUPPORTED, "program '%s': the poisoned debug run is CPU-only", p->name);
    vm->stream = prt_cuda_stream(vm->dev, PRT_CUDA_COMPUTE);
    /* the gradients and the state are device memory: only NCCL takes them */
    if (vm->opts.comm && prt_comm_size(vm->opts.comm) > 1 && strcmp(prt_comm_backend(vm->opts.comm), "nccl"))
        return prt_error(ctx, PRT_ERR_UNSUPPORTED,
                         "program '%s': data-parallel training on a GPU needs the NCCL communicator, not '%s'",
                         p->name, prt_comm_backend(vm->opts.comm));
    if (p->plan) {
        prt_mem_plan_options o = {.cuda_workspaces = true};
        PRT_CHECK(prt_mem_plan_build_opts(ctx, p, &o, &vm->own_plan));
        vm->plan = vm->own_plan;
    }
    vm->host_in = prt_calloc(ctx, (size_t)p->n_inputs + 1, sizeof *vm->host_in);
    vm->host_out = prt_calloc(ctx, (size_t)p->n_outputs + 1, sizeof *vm->host_out);
    if (!vm->host_in || !vm->host_out) return prt_error(ctx, PRT_ERR_NOMEM, "program '%s': out of memory", p->name);
    for (int i = 0; i < p->n_inputs; i++) {
        const prt_reg *g = &p->regs[p->inputs[i]];
        PRT_CHECK(prt_tensor_alloc(ctx, prt_cpu_device(ctx), g->dtype, &g->shape, &vm->host_in[i]));
        memset(vm->host_in[i].data, 0, vm->host_in[i].buf ? vm->host_in[i].buf->size : 0);
    }
    for (int i = 0; i < p->n_outputs; i++) {
        const prt_reg *g = &p->regs[p->outputs[i]];
        PRT_CHECK(prt_tensor_alloc(ctx, prt_cpu_device(ctx), g->dtype, &g->shape, &vm->host_out[i]));
    }
    return PRT_OK;
}

/* ---- the persistent state's host mirror ------------------------------------- */

static bool is_state(const prt_reg *g) { return g->kind == PRT_REG_PARAM || g->kind == PRT_REG_STATE; }

/* Any device but the context's CPU (whose memory the host may not read, like
 * init_param's rule): host tensors shaped like the state, laid out like the
 * device's (planned: one block at the plan's offsets, so a pull or push is one
 * copy). tests/test_vm_state.c runs it on a second handle of the CPU device. */
static prt_status setup_mirror(prt_vm *vm) {
    if (vm->dev == prt_cpu_device(vm->ctx)) return PRT_OK;
    prt_context *ctx = vm->ctx;
    const prt_program *p = vm->p;
    vm->host_state = prt_calloc(ctx, (size_t)p->n_regs + 1, sizeof *vm->host_state);
    if (!vm->host_state) return prt_error(ctx, PRT_ERR_NOMEM, "program '%s': out of memory", p->name);
    if (vm->persistent) {
        vm->host_block = prt_malloc(ctx, vm->plan->persistent_bytes);
        if (!vm->host_block)
            return prt_error(ctx, PRT_ERR_NOMEM, "program '%s': out of host memory for the state's mirror (%zu bytes)",
                             p->name, vm->plan->persistent_bytes);
    }
    for (int r = 0; r < p->n_regs; r++) {
        const prt_reg *g = &p->regs[r];
        if (!is_state(g)) continue;
        if (vm->host_block)
            prt_tensor_wrap(&vm->host_state[r], (char *)vm->host_block + vm->plan->reg_offset[r], g->dtype, &g->shape);
        else
            PRT_CHECK(prt_tensor_alloc(ctx, prt_cpu_device(ctx), g->dtype, &g->shape, &vm->host_state[r]));
    }
    return PRT_OK;
}

static prt_status move_state(prt_vm *vm, bool pull) {
    if (!vm->host_state) return PRT_OK;
    prt_device *dev = vm->dev;
    const prt_program *p = vm->p;
    prt_copy_kind k = pull ? PRT_COPY_DEVICE_TO_HOST : PRT_COPY_HOST_TO_DEVICE;
    prt_status st = PRT_OK;
    if (vm->host_block) {
        size_t n = vm->plan->persistent_bytes;
        st = pull ? dev->iface->copy(dev, vm->host_block, vm->persistent, n, k, NULL)
                  : dev->iface->copy(dev, vm->persistent, vm->host_block, n, k, NULL);
    } else {
        for (int r = 0; r < p->n_regs && st == PRT_OK; r++) {
            if (!is_state(&p->regs[r])) continue;
            size_t n;
            PRT_CHECK(prt_shape_nbytes(vm->ctx, &p->regs[r].shape, p->regs[r].dtype, &n));
            st = pull ? dev->iface->copy(dev, vm->host_state[r].data, vm->regs[r].data, n, k, NULL)
                      : dev->iface->copy(dev, vm->regs[r].data, vm->host_state[r].data, n, k, NULL);
        }
    }
    if (st == PRT_OK) st = dev->iface->sync(dev);
    if (st != PRT_OK)
        return prt_error_prefix(vm->ctx, st, "program '%s': copying the parameters and state %s the device", p->name,
                                pull ? "from" : "to");
    return PRT_OK;
}

prt_status prt_vm_pull_state(prt_vm *vm) { return move_state(vm, true); }
prt_status prt_vm_push_state(prt_vm *vm) { return move_state(vm, false); }

prt_tensor *prt_vm_state_reg(prt_vm *vm, int r) {
    if (r < 0 || r >= vm->p->n_regs || !is_state(&vm->p->regs[r])) return NULL;
    return vm->host_state ? &vm->host_state[r] : &vm->regs[r];
}

prt_tensor *prt_vm_state(prt_vm *vm, const char *name) {
    int r;
    return prt_strtab_get(vm->names, name, &r) ? prt_vm_state_reg(vm, r) : NULL;
}

prt_status prt_vm_create(prt_context *ctx, const prt_program *p, prt_device *dev,
                         const prt_vm_options *opts, prt_vm **out) {
    *out = NULL;
    PRT_CHECK(prt_vm_verify(ctx, p));
    prt_status st = PRT_OK;
    prt_vm *vm = prt_calloc(ctx, 1, sizeof *vm);
    if (!vm) return prt_error(ctx, PRT_ERR_NOMEM, "program '%s': out of memory", p->name);
    vm->ctx = ctx;
    vm->p = p;
    vm->dev = dev ? dev : prt_cpu_device(ctx);
    if (opts) vm->opts = *opts;
    vm->regs = prt_calloc(ctx, (size_t)p->n_regs + 1, sizeof *vm->regs);
    vm->ireg = prt_calloc(ctx, (size_t)p->n_regs + 1, sizeof *vm->ireg);
    vm->kint = prt_calloc(ctx, (size_t)p->n_k + 1, sizeof *vm->kint);
    vm->calls = prt_calloc(ctx, (size_t)p->n_k + 1, sizeof *vm->calls);
    if (!vm->regs || !vm->ireg || !vm->kint || !vm->calls) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "program '%s': out of memory", p->name);
        goto fail;
    }
    PRT_CHECK_GOTO(prt_strtab_create(ctx, &vm->names), st, fail);
    PRT_CHECK_GOTO(setup_device(vm), st, fail);
    PRT_CHECK_GOTO(alloc_registers(vm), st, fail);
    PRT_CHECK_GOTO(setup_mirror(vm), st, fail);
    PRT_CHECK_GOTO(prepare_calls(vm), st, fail);
    PRT_CHECK_GOTO(setup_buckets(vm), st, fail);
    PRT_CHECK_GOTO(setup_graph(vm), st, fail);
    *out = vm;
    return PRT_OK;
fail:
    prt_vm_destroy(vm);
    return st;
}

void prt_vm_destroy(prt_vm *vm) {
    if (!vm) return;
    prt_context *ctx = vm->ctx;
    const prt_program *p = vm->p;
    if (vm->calls) {
        for (int k = 0; k < p->n_k; k++) {
            prt_vm_call *c = &vm->calls[k];
            if (c->prepared && c->kernel->release) c->kernel->release(c->kc.state);
            prt_free(ctx, c->in, 0);
            prt_free(ctx, c->out, 0);
        }
    }
    if (vm->regs)
        for (int r = 0; r < p->n_regs; r++) prt_tensor_release(ctx, &vm->regs[r]);
    prt_cuda_graph_destroy(vm->graph_exec);
    if (vm->step_dev) vm->dev->iface->free(vm->dev, vm->step_dev);
    prt_cuda_host_free(vm->dev, vm->step_host);
    prt_free(ctx, vm->step_calls, 0);
    prt_free(ctx, vm->ireg_start, 0);
    if (vm->workspace) vm->dev->iface->free(vm->dev, vm->workspace);
    if (vm->persistent) vm->dev->iface->free(vm->dev, vm->persistent);
    if (vm->arena) vm->dev->iface->free(vm->dev, vm->arena);
    prt_bucket_table_free(ctx, &vm->buckets);
    for (int i = 0; vm->host_in && i < p->n_inputs; i++) prt_tensor_release(ctx, &vm->host_in[i]);
    for (int i = 0; vm->host_out && i < p->n_outputs; i++) prt_tensor_release(ctx, &vm->host_out[i]);
    for (int r = 0; vm->host_state && !vm->host_block && r < p->n_regs; r++)
        prt_tensor_release(ctx, &vm->host_state[r]);
    prt_free(ctx, vm->host_state, 0);
    prt_free(ctx, vm->host_block, 0);
    prt_free(ctx, vm->host_in, 0);
    prt_free(ctx, vm->host_out, 0);
    prt_mem_plan_destroy(ctx, vm->own_plan);
    prt_free(ctx, vm->span_start, 0);
    prt_free(ctx, vm->bucket_handle, 0);
    prt_free(ctx, vm->bucket_spans, 0);
    prt_free(ctx, vm->poison_start, 0);
    prt_free(ctx, vm->poison_list, 0);
    prt_strtab_destroy(ctx, vm->names);
    prt_free(ctx, vm->regs, 0);
    prt_free(ctx, vm->ireg, 0);
    prt_free(ctx, vm->kint, 0);
    prt_free(ctx, vm->calls, 0);
    prt_free(ctx, vm, sizeof *vm);
}

/* ---- access ---------------------------------------------------------------- */

int prt_vm_n_inputs(const prt_vm *vm) { return vm->p->n_inputs; }
int prt_vm_n_outputs(const prt_vm *vm) { return vm->p->n_outputs; }

prt_tensor *prt_vm_input(prt_vm *vm, int i) {
    if (i < 0 || i >= vm->p->n_inputs) return NULL;
    return vm->cuda ? &vm->host_in[i] : &vm->regs[vm->p->inputs[i]];
}

const prt_tensor *prt_vm_output(const prt_vm *vm, int i) {
    if (i < 0 || i >= vm->p->n_outputs) return NULL;
    return vm->cuda ? &vm->host_out[i] : &vm->regs[vm->p->outputs[i]];
}

prt_tensor *prt_vm_find(prt_vm *vm, const char *name) {
    int r;
    if (!prt_strtab_get(vm->names, name, &r)) return NULL;
    if (vm->cuda) { /* inputs and outputs: their host copies */
        for (int i = 0; i < vm->p->n_inputs; i++)
            if (vm->p->inputs[i] == r) return &vm->host_in[i];
        for (int i = 0; i < vm->p->n_outputs; i++)
            if (vm->p->outputs[i] == r) return &vm->host_out[i];
    }
    return &vm->regs[r];
}

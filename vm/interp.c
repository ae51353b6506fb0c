/* The interpreter: creating the execution state of a verified program (one
 * tensor per register, parameters from the RNG, every kernel call prepared with
 * its pointer arrays and state) and running it with the dispatch loop of
 * vm/interp_loop.h, compiled twice: computed goto and switch. */
#include "vm/vm_impl.h"

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
prt_status prt_vm_run(prt_vm *vm) {
    prt_status st = vm_exec_goto(vm);
    vm->step++;
    return st;
}

prt_status prt_vm_run_switch(prt_vm *vm) {
    prt_status st = vm_exec_switch(vm);
    vm->step++;
    return st;
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

static prt_status alloc_registers(prt_vm *vm) {
    prt_context *ctx = vm->ctx;
    const prt_program *p = vm->p;
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
    c->kernel = prt_op_kernel(s, vm->opts.reference);
    c->run = c->kernel->run;
    c->node = d->node;
    c->op = s->name;
    c->in = prt_calloc(ctx, (size_t)d->n_in + 1, sizeof *c->in);
    c->out = prt_calloc(ctx, (size_t)d->n_out + 1, sizeof *c->out);
    if (!c->in || !c->out) return prt_error(ctx, PRT_ERR_NOMEM, "call '%s': out of memory", d->node);
    for (int j = 0; j < d->n_in; j++) c->in[j] = &vm->regs[d->in[j]];
    for (int j = 0; j < d->n_out; j++) c->out[j] = &vm->regs[d->out[j]];
    c->kc.ctx = ctx;
    c->kc.attrs = d->attrs;
    c->kc.n_in = d->n_in;
    c->kc.in = c->in;
    c->kc.n_out = d->n_out;
    c->kc.out = c->out;
    c->kc.training = vm->opts.training;
    c->kc.rng_key = prt_hash_str(d->node, ctx->seed);
    if (s->workspace) {
        prt_infer_scratch sc;
        prt_infer_ctx ic;
        prt_shape *wide = NULL;
        if (d->n_data_in > PRT_VARIADIC && !(wide = prt_calloc(ctx, (size_t)d->n_data_in, sizeof *wide)))
            return prt_error(ctx, PRT_ERR_NOMEM, "call '%s': out of memory", d->node);
        prt_status st = prt_vm_call_infer(ctx, p, d, s, &sc, wide, &ic);
        if (st == PRT_OK) c->kc.workspace_size = s->workspace(&ic);
        prt_free(ctx, wide, 0);
        PRT_CHECK(st);
        if (c->kc.workspace_size > *workspace) *workspace = c->kc.workspace_size;
    }
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
    /* Calls run one at a time, so one buffer the size of the largest need serves all. */
    if (workspace > 0) {
        PRT_CHECK(vm->dev->iface->alloc(vm->dev, workspace, &vm->workspace));
        vm->workspace_size = workspace;
    }
    for (int k = 0; k < p->n_k; k++) {
        if (p->k[k].kind != PRT_CONST_CALL) continue;
        prt_vm_call *c = &vm->calls[k];
        if (c->kc.workspace_size > 0) c->kc.workspace = vm->workspace;
        if (!c->kernel->prepare) continue;
        prt_status st = c->kernel->prepare(&c->kc, &c->kc.state);
        if (st != PRT_OK)
            return prt_error_prefix(ctx, st, "program '%s': preparing call '%s' (%s)", p->name,
                                    c->node, c->op);
        c->prepared = true;
    }
    return PRT_OK;
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
    PRT_CHECK_GOTO(alloc_registers(vm), st, fail);
    PRT_CHECK_GOTO(prepare_calls(vm), st, fail);
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
    if (vm->workspace) vm->dev->iface->free(vm->dev, vm->workspace);
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
    return &vm->regs[vm->p->inputs[i]];
}

const prt_tensor *prt_vm_output(const prt_vm *vm, int i) {
    if (i < 0 || i >= vm->p->n_outputs) return NULL;
    return &vm->regs[vm->p->outputs[i]];
}

prt_tensor *prt_vm_find(prt_vm *vm, const char *name) {
    int r;
    if (!prt_strtab_get(vm->names, name, &r)) return NULL;
    return &vm->regs[r];
}

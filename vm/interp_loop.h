/* The dispatch loop, written once and included twice by vm/interp.c: with
 * PRT_VM_LOOP_GOTO 1 it dispatches through a table of label addresses (each
 * handler jumps straight to the next, so the branch predictor sees one indirect
 * jump per opcode), with 0 through a switch (portable C). Lua's vmdispatch /
 * vmcase / vmbreak macros hide the difference so the handlers are shared.
 *
 * Expects: PRT_VM_LOOP_NAME (the function to define), PRT_VM_LOOP_GOTO, and
 * vm_call_failed() from the including file. The program was verified, so no
 * handler checks an index. Not a header for anyone else to include. */

static prt_status PRT_VM_LOOP_NAME(prt_vm *vm) {
    const prt_instr *const code = vm->p->code;
    const prt_instr *pc = code;
    int64_t *const ireg = vm->ireg;
    const int64_t *const kint = vm->kint;
    prt_vm_call *const calls = vm->calls;
    const uint64_t step = vm->step;
    prt_instr i;

#define vmfetch() (i = *pc++)
#if PRT_VM_LOOP_GOTO
    static const void *const disp[PRT_OP_COUNT] = {
#define X(name, fmt, desc) &&L_##name,
#include "vm/opcodes.def"
#undef X
    };
#define vmdispatch(o) goto *disp[o];
#define vmcase(l) L_##l:
#define vmbreak                                                                \
    vmfetch();                                                                 \
    vmdispatch(PRT_VM_GET_OP(i))
#else
#define vmdispatch(o) switch (o)
#define vmcase(l) case PRT_OP_##l:
#define vmbreak break
#endif

    for (;;) {
        vmfetch();
        vmdispatch(PRT_VM_GET_OP(i)) {
            vmcase(NOP) {
                vmbreak;
            }
            vmcase(RECOMPUTE)
            vmcase(CALL) {
                prt_vm_call *c = &calls[PRT_VM_GET_BX(i)];
                c->kc.step = step;
                prt_status st = c->run(&c->kc);
                if (st != PRT_OK) return vm_call_failed(vm, (int)(pc - code) - 1, c, st);
                vmbreak;
            }
            vmcase(JMP) {
                if (PRT_VM_GET_A(i) == PRT_VM_JMP_ABS)
                    pc = code + PRT_VM_GET_BX(i);
                else
                    pc += PRT_VM_GET_SX(i);
                vmbreak;
            }
            vmcase(LOOP) {
                /* Saturates at 0 instead of counting below it, so no counter
                 * value can overflow however often a LOOP falls through. */
                int64_t *c = &ireg[PRT_VM_GET_A(i)];
                if (*c > 1) {
                    --*c;
                    pc += PRT_VM_GET_SX(i);
                } else {
                    *c = 0;
                }
                vmbreak;
            }
            vmcase(SETI) {
                ireg[PRT_VM_GET_A(i)] = kint[PRT_VM_GET_BX(i)];
                vmbreak;
            }
            vmcase(ALLREDUCE_START) {
                prt_status st = prt_vm_allreduce_start(vm, (int)(pc - code) - 1, (int)PRT_VM_GET_A(i));
                if (st != PRT_OK) return st;
                vmbreak;
            }
            vmcase(ALLREDUCE_WAIT) {
                prt_status st = prt_vm_allreduce_wait(vm, (int)(pc - code) - 1, (int)PRT_VM_GET_A(i));
                if (st != PRT_OK) return st;
                vmbreak;
            }
            vmcase(HALT) {
                return PRT_OK;
            }
#if !PRT_VM_LOOP_GOTO
        default:
            return prt_error(vm->ctx, PRT_ERR_INTERNAL, "program '%s': instruction %d: opcode %u",
                             vm->p->name, (int)(pc - code) - 1, PRT_VM_RAW_OP(i));
#endif
        }
    }

#undef vmfetch
#undef vmdispatch
#undef vmcase
#undef vmbreak
}

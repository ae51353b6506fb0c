/* Tables generated from vm/opcodes.def and PRT_VM_FORMATS: opcode names,
 * descriptions, formats, and the register-kind names. */
#include "vm/vm_impl.h"

const char *const prt_vm_op_names[PRT_OP_COUNT] = {
#define X(name, fmt, desc) #name,
#include "vm/opcodes.def"
#undef X
};

const char *const prt_vm_op_docs[PRT_OP_COUNT] = {
#define X(name, fmt, desc) desc,
#include "vm/opcodes.def"
#undef X
};

const prt_vm_format prt_vm_op_formats[PRT_OP_COUNT] = {
#define X(name, fmt, desc) PRT_VM_FMT_##fmt,
#include "vm/opcodes.def"
#undef X
};

const prt_vm_format_info prt_vm_formats[PRT_VM_FMT_COUNT] = {
#define F(name, a, x, desc) {#name, a, x, desc},
    PRT_VM_FORMATS(F)
#undef F
};

const char *prt_reg_kind_name(prt_reg_kind k) {
    static const char *const names[PRT_REG_KIND_COUNT] = {"input", "param", "state", "act",
                                                          "counter"};
    return (unsigned)k < PRT_REG_KIND_COUNT ? names[k] : "?";
}

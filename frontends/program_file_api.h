/* Compiled programs in files (docs/program-format.md): a 24-byte header (magic
 * "PRTPROG\0", format version, CRC32 of the payload, payload length) and a
 * protobuf-c `parrots.prog.Program` message (frontends/proto/program.proto)
 * holding the bytecode, the constant pool, the registers, the op table with each
 * op's version, the inputs and outputs and the memory plan.
 *
 *     prt_program *p;
 *     PRT_CHECK(prt_vm_compile(g, 8, &p));
 *     PRT_CHECK(prt_program_save(ctx, "net.pb", p));          // atomic
 *     prt_program_destroy(ctx, p);
 *
 *     PRT_CHECK(prt_program_load(ctx, "net.pb", &p));         // checked, verified, plan checked
 *     prt_vm *vm;
 *     PRT_CHECK(prt_vm_create(ctx, p, prt_cpu_device(ctx),
 *                             &(prt_vm_options){.training = prt_program_is_training(p)}, &vm));
 *
 * A file is untrusted input. Loading refuses, with a message naming the file and
 * the problem: a file over PRT_PROGRAM_MAX_FILE_BYTES (before reading it), a bad
 * header, a CRC mismatch (before decoding), a payload protobuf-c cannot decode or
 * that decoding would need too much memory for, any count over the limits below
 * (before allocating for it), an op the registry lacks or whose version is newer
 * than the registry's, code the verifier rejects, and a memory plan that does not
 * describe the program exactly or lets live buffers overlap. A plan is never
 * silently rebuilt.
 */
#ifndef PARROTS_PROGRAM_FILE_API_H
#define PARROTS_PROGRAM_FILE_API_H

#include "vm/vm_api.h"

#define PRT_PROGRAM_FORMAT_VERSION 1
#define PRT_PROGRAM_MAGIC "PRTPROG" /* with its NUL: 8 bytes */
#define PRT_PROGRAM_HEADER_BYTES 24
#define PRT_PROGRAM_MAX_FILE_BYTES ((size_t)64 << 20)

/* Limits on what a file may declare, checked before anything is allocated for it. */
#define PRT_PROGRAM_MAX_NAME 4096         /* bytes in any name */
#define PRT_PROGRAM_MAX_CODE (1 << 22)    /* instructions */
#define PRT_PROGRAM_MAX_CONSTANTS (1 << 22)
#define PRT_PROGRAM_MAX_REGISTERS (1 << 22)
#define PRT_PROGRAM_MAX_OPS 4096          /* op-table entries */
#define PRT_PROGRAM_MAX_OPERANDS (1 << 20) /* inputs or outputs of one call, or of the program */
#define PRT_PROGRAM_MAX_ATTRS 64          /* attributes of one call */

/* The version of an op's semantics a program is compiled against. Every built-in
 * op is version 1; an op whose meaning changes gets a higher version, and a file
 * naming a version newer than the registry's is refused. */
int prt_op_version(const prt_op_schema *s);

/* True when some call of p belongs to backward or the update: the program is a
 * training step, to be run with prt_vm_options.training. */
bool prt_program_is_training(const prt_program *p);

/* What a command running a loaded program reports (borrowed from p). */
const char *prt_program_name(const prt_program *p);
int64_t prt_program_batch(const prt_program *p);
const char *prt_program_output_name(const prt_program *p, int i); /* "?" when out of range */

/* The file image of p (header and payload). p must have a memory plan (as
 * prt_vm_compile leaves it). Caller frees *bytes with prt_free(ctx, *bytes, 0). */
prt_status prt_program_encode(prt_context *ctx, const prt_program *p, void **bytes, size_t *size);
/* Writes p to path atomically: a temporary file next to it, fsync, rename. */
prt_status prt_program_save(prt_context *ctx, const char *path, const prt_program *p);

/* Reads, checks and verifies a program file; the op table is resolved against
 * ctx's registry. Caller frees with prt_program_destroy. */
prt_status prt_program_load(prt_context *ctx, const char *path, prt_program **out);
/* The same from a file image in memory (not kept); `name` stands for the file in
 * messages. */
prt_status prt_program_load_buffer(prt_context *ctx, const char *name, const void *bytes, size_t size,
                                   prt_program **out);

/* True when the file starts with the program magic. */
bool prt_program_file_sniff(const char *path);

#endif

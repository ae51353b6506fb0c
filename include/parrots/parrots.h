/* Parrots public C API.
 *
 * Parrots compiles a network written as a YAML graph into a verified bytecode
 * program and runs it on a device backend. Every call returns a prt_status;
 * results come back through out-parameters, and the human-readable message of
 * the last failure is kept in the context.
 *
 *     prt_context *ctx;
 *     if (prt_context_create(NULL, &ctx) != PRT_OK) return 1;
 *     prt_graph *g;
 *     if (prt_graph_load_yaml(ctx, "net.yaml", &g) != PRT_OK) {
 *         fprintf(stderr, "%s\n", prt_last_error(ctx));   // net.yaml:41:7: ...
 *     }
 *     prt_graph_destroy(g);
 *     prt_context_destroy(ctx);
 *
 * Ownership: every create has a destroy; destroy(NULL) is a no-op.
 */
#ifndef PARROTS_PARROTS_H
#define PARROTS_PARROTS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PRT_VERSION_MAJOR 0
#define PRT_VERSION_MINOR 1
#define PRT_VERSION_PATCH 0

typedef enum prt_status {
#define X(name, cls, desc) PRT_##name,
#include "parrots/status.def"
#undef X
    PRT_STATUS_COUNT
} prt_status;

/* A short description of a status code ("shape error"). Never NULL. */
const char *prt_status_str(prt_status st);
/* The command-line exit code class of a status: 0 ok, 1 runtime, 2 bad input. */
int prt_status_exit_code(prt_status st);

typedef struct prt_context prt_context;
typedef struct prt_graph prt_graph;

/* Allocator hook (Lua's lua_Alloc): one function does malloc, realloc and free.
 * new_size == 0 frees ptr and returns NULL. Tests inject out-of-memory with it. */
typedef void *(*prt_alloc_fn)(void *ud, void *ptr, size_t old_size, size_t new_size);

typedef struct prt_context_options {
    size_t struct_size;          /* sizeof(prt_context_options) */
    prt_alloc_fn alloc;          /* NULL: the C library */
    void *alloc_ud;
    int log_level;               /* PRT_LOG_* ; default PRT_LOG_INFO */
    uint64_t seed;               /* counter-based RNG seed; default 0x5eed */
    int num_threads;             /* 0: all cores */
} prt_context_options;

/* Creates a context. opts may be NULL for defaults. Caller frees with
 * prt_context_destroy. */
prt_status prt_context_create(const prt_context_options *opts, prt_context **out);
void prt_context_destroy(prt_context *ctx);

/* The message of the last failure in this context ("" if none). Borrowed until
 * the next call on ctx. */
const char *prt_last_error(const prt_context *ctx);

/* Loads and checks a YAML network. Caller frees with prt_graph_destroy. */
prt_status prt_graph_load_yaml(prt_context *ctx, const char *path, prt_graph **out);
/* Same, from a string; `name` is used in messages in place of a file name. */
prt_status prt_graph_load_yaml_string(prt_context *ctx, const char *name,
                                      const char *text, size_t len, prt_graph **out);
void prt_graph_destroy(prt_graph *g);

#ifdef __cplusplus
}
#endif
#endif

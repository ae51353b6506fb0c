/* Internals of the YAML graph frontend (docs/yaml-format.md), shared by its files:
 *
 *   yaml_util.c   arena allocator, located error messages, "did you mean" helpers
 *   yaml_doc.c    libyaml events -> an immutable node tree with line/column marks,
 *                 enforcing the nesting, size and alias-expansion limits
 *   yaml_expr.c   argument values, `$name` substitution and `${...}` arithmetic
 *   yaml_attr.c   attribute values -> typed prt_attr arrays checked against op schemas
 *   yaml_build.c  layers, modules, repeat and parameter sharing -> graph nodes
 *   yaml_load.c   the public entry points: files, includes, top-level keys, modules
 *
 *     prt_yload L;                      // one load
 *     prt_ynode *root;
 *     PRT_CHECK(prt_ydoc_parse(ctx, &L.docs, "net.yaml", text, len, &root));
 *     const prt_ynode *layers = prt_ymap_get(root, "layers");
 */
#ifndef PARROTS_YAML_IMPL_H
#define PARROTS_YAML_IMPL_H

#include "runtime/graph_impl.h"

#include <stddef.h>

/* ---- limits (docs/yaml-format.md, "Limits") ---------------------------- */

#define PRT_YAML_MAX_FILE_BYTES ((size_t)16 << 20)
#define PRT_YAML_MAX_DEPTH 64
#define PRT_YAML_MAX_EXPANDED 100000
#define PRT_YAML_MAX_MODULE_DEPTH 32
#define PRT_YAML_MAX_REPEAT 10000
#define PRT_YAML_MAX_NODES 1000000
#define PRT_YAML_MAX_INCLUDE_DEPTH 16
#define PRT_YAML_MAX_NAME 128
/* The graph formats parameter names "<path>.<slot>" into 1 KiB buffers. */
#define PRT_YAML_MAX_PATH 512
#define PRT_YAML_MAX_EXPR 1024
#define PRT_YAML_MAX_EXPR_NEST 64
/* Evaluation steps while expanding modules and repeats: the node limit alone does
 * not bound the work of a module with many arguments instantiated many times. */
#define PRT_YAML_MAX_WORK 100000000ull

/* ---- arena: everything a load allocates, freed at once ------------------ */

typedef struct prt_ychunk prt_ychunk;
typedef struct prt_yarena {
    prt_context *ctx;
    prt_ychunk *top;
} prt_yarena;
typedef struct prt_yarena_mark {
    prt_ychunk *top;
    size_t used;
} prt_yarena_mark;

void prt_yarena_init(prt_yarena *a, prt_context *ctx);
/* Zeroed memory, valid until the arena is freed or restored below it; NULL when out
 * of memory (the caller reports it). */
void *prt_yarena_alloc(prt_yarena *a, size_t n);
char *prt_yarena_strndup(prt_yarena *a, const char *s, size_t n);
prt_yarena_mark prt_yarena_save(const prt_yarena *a);
/* Frees everything allocated after `m` (stack discipline). */
void prt_yarena_restore(prt_yarena *a, prt_yarena_mark m);
void prt_yarena_free(prt_yarena *a);

/* ---- the document tree --------------------------------------------------- */

typedef enum prt_ynode_kind {
    PRT_YN_NULL,
    PRT_YN_BOOL,
    PRT_YN_INT,
    PRT_YN_FLOAT,
    PRT_YN_STR,
    PRT_YN_SEQ,
    PRT_YN_MAP,
} prt_ynode_kind;

/* Immutable once parsed. An alias is the anchored node itself (shared, so the tree
 * is a DAG); its marks are those of the anchor. */
typedef struct prt_ynode {
    prt_ynode_kind kind;
    int line, col;           /* 1-based */
    const char *file;        /* the name messages use for this file */
    const char *s;           /* scalars: the text as written (keys are looked up by it) */
    int64_t i;               /* INT; BOOL (0/1) */
    double f;                /* FLOAT */
    int n;                   /* SEQ: items; MAP: pairs */
    struct prt_ynode **kids; /* SEQ: items; MAP: key k at kids[2k], its value at kids[2k+1] */
    uint32_t weight;         /* nodes after alias expansion (saturates past the limit) */
    bool plain;              /* scalars: written without quotes or tag */
} prt_ynode;

/* Parses one YAML document. *root is NULL for a stream with no document (an empty
 * file). Nodes live in `a`. Errors: PRT_ERR_PARSE (syntax, encoding), PRT_ERR_LIMIT. */
prt_status prt_ydoc_parse(prt_context *ctx, prt_yarena *a, const char *file, const char *text,
                          size_t len, prt_ynode **root);

static inline const prt_ynode *prt_ymap_key(const prt_ynode *m, int k) { return m->kids[2 * k]; }
static inline const prt_ynode *prt_ymap_val(const prt_ynode *m, int k) { return m->kids[2 * k + 1]; }
/* The value under `key` in mapping m, or NULL (also when m is not a mapping). */
const prt_ynode *prt_ymap_get(const prt_ynode *m, const char *key);
/* The key node of `key` in m, or NULL. */
const prt_ynode *prt_ymap_getkey(const prt_ynode *m, const char *key);

/* ---- messages ------------------------------------------------------------ */

/* Records "FILE:LINE:COL: <message>" at node `at` and returns st. */
prt_status prt_yerr(prt_context *ctx, const prt_ynode *at, prt_status st, const char *fmt, ...)
    PRT_PRINTF(4, 5);
prt_status prt_yerr_loc(prt_context *ctx, const char *file, int line, int col, prt_status st,
                        const char *fmt, ...) PRT_PRINTF(6, 7);
/* "a mapping", "a list", "null", "true", "integer 3", "number 2.5", "string 'abc'". */
const char *prt_ydescribe(const prt_ynode *n, char *buf, size_t cap);
/* Text for a string in a message: quoted contents, shortened when long. */
const char *prt_yshort(const char *s, char *buf, size_t cap);
/* The candidate nearest to `name` when it is close enough to be a likely typo, else NULL. */
const char *prt_ynearest(const char *name, const char *const *cands, int n);
/* Names are letters, digits, '_' and '-' (no '/', ':' or '.', which build paths). */
bool prt_yname_ok(const char *s);
/* Identifiers (argument and variable names): [A-Za-z_][A-Za-z0-9_]*. */
bool prt_yident_ok(const char *s, size_t n);

/* ---- values and expressions ---------------------------------------------- */

typedef enum prt_yval_kind {
    PRT_YV_NULL,
    PRT_YV_BOOL,
    PRT_YV_INT,
    PRT_YV_FLOAT,
    PRT_YV_STR,
    PRT_YV_LIST,
} prt_yval_kind;

/* An evaluated value: an argument, an attribute, a name. Lists hold scalars. */
typedef struct prt_yval {
    prt_yval_kind kind;
    int64_t i;                    /* INT, BOOL */
    double f;                     /* FLOAT */
    const char *s;                /* STR */
    int n;                        /* LIST */
    const struct prt_yval *items; /* LIST */
    const prt_ynode *at;          /* where it was written */
    bool from_expr;               /* computed by `${...}`: messages quote at->s */
} prt_yval;

/* Variables visible to an expression: a chain of frames, innermost first. */
typedef struct prt_yenv {
    const struct prt_yenv *parent;
    int n;
    const char *const *names;
    const prt_yval *vals;
} prt_yenv;

typedef struct prt_yload prt_yload;

/* Evaluates node (a scalar or a list of scalars) under env; allocations go to L->tmp.
 * Mappings are an error: callers handle the places where mappings are allowed. */
prt_status prt_yval_eval(prt_yload *L, const prt_yenv *env, const prt_ynode *node, prt_yval *out);
/* "integer 3", "number 2.5", "string 'x'", "a list of 3", "null", "true". */
const char *prt_yval_describe(const prt_yval *v, char *buf, size_t cap);
/* A number as an exact integer: INT, or a FLOAT with an integral value in range. */
bool prt_yval_integral(const prt_yval *v, int64_t *out);
/* Charges `units` evaluation steps to the load; a LIMIT error at `at` past the budget. */
prt_status prt_ywork(prt_yload *L, const prt_ynode *at, uint64_t units);

/* ---- attributes ---------------------------------------------------------- */

/* Fills attrs[s->n_attrs] (schema order, defaults with set = false) from the layer's
 * attribute mapping `m` (NULL or null: none given). `layer` is the layer's path,
 * `key` the op key node (for messages). */
prt_status prt_yattrs_build(prt_yload *L, const prt_yenv *env, const char *layer,
                            const prt_op_schema *s, const prt_ynode *key, const prt_ynode *m,
                            prt_attr *attrs);

/* ---- modules and the load ------------------------------------------------ */

typedef struct prt_ymodule {
    const char *name;
    const prt_ynode *at;        /* the module's key */
    int n_args;
    const char **arg_names;
    const prt_ynode **arg_defaults; /* null node: required */
    int n_inputs;
    const char **inputs;
    const prt_ynode *layers;
    const prt_ynode *output;    /* NULL: the last layer */
    bool active;                /* being expanded (recursion check) */
} prt_ymodule;

struct prt_yload {
    prt_context *ctx;
    prt_yarena docs;            /* document trees and module tables: the whole load */
    prt_yarena tmp;             /* build temporaries, released per layer and instance */
    prt_graph *g;
    prt_ymodule *mods;
    int n_mods, cap_mods;
    prt_strtab *mod_names;      /* name -> index in mods */
    const prt_ymodule *stack[PRT_YAML_MAX_MODULE_DEPTH + 1]; /* module calls being expanded */
    int depth;
    uint64_t work;
    const char *loc_src, *loc_interned; /* last file name interned in the graph */
};

/* The module named `name`, or NULL. */
prt_ymodule *prt_ymodule_find(const prt_yload *L, const char *name);
/* Builds the top-level `layers` into L->g, whose inputs (named by the keys of
 * `input_map`, ids input_ids) exist already, and sets the graph's outputs from
 * `output` (NULL: the last layer). */
prt_status prt_ybuild_top(prt_yload *L, const prt_ynode *layers, const prt_ynode *input_map,
                          const int *input_ids, const prt_ynode *output);

/* ---- the solver section (yaml_solver.c) ---------------------------------- */

struct prt_solver;
/* Parses the top-level `solver:` mapping (prt_solver_set's keys) into a new
 * solver (caller frees with prt_free(ctx, p, 0)), checked with prt_solver_check;
 * messages are located at the offending key or value. */
prt_status prt_ysolver_parse(prt_yload *L, const prt_ynode *sec, struct prt_solver **out);

#endif

/* Training checkpoints (docs/checkpoints.md): every persistent register of the
 * training VM (parameters, running statistics, optimizer state), the step, the
 * solver, the loader's position and the RNG state, in a protobuf-c message
 * (frontends/proto/checkpoint.proto) behind a small header with a CRC32C.
 *
 *     uint64_t h;
 *     PRT_CHECK(prt_ckpt_graph_hash(train_graph, &h));
 *     prt_ckpt_state st = {...};                       // step, epoch, solver, data order
 *     prt_ckpt_save_options so;  prt_ckpt_save_defaults(&so);   // keep 3
 *     char *path;                                      // "DIR/ckpt-000000000120.prtc"
 *     PRT_CHECK(prt_ckpt_save(ctx, "runs/a", h, &st, vm, &so, &path));
 *     prt_free(ctx, path, 0);
 *
 *     prt_ckpt *ck;                                    // size limit, header, CRC, unpack,
 *     PRT_CHECK(prt_ckpt_read(ctx, path, 0, &ck));     // and every field checked
 *     PRT_CHECK(prt_ckpt_restore(ctx, ck, h, vm));     // all-or-nothing; sets the VM step
 *     prt_ckpt_state got;  prt_ckpt_get_state(ck, &got);
 *     prt_ckpt_destroy(ctx, ck);
 *
 * Saving is atomic: DIR/.ckpt-XXXXXX is written and fsynced, renamed to
 * DIR/ckpt-<step>.prtc and the directory fsynced; only then are checkpoints
 * beyond the newest `keep` deleted. A process killed at any moment leaves every
 * earlier checkpoint intact and no partial file under a checkpoint's name.
 */
#ifndef PARROTS_CHECKPOINT_API_H
#define PARROTS_CHECKPOINT_API_H

#include "ops/train_impl.h"
#include "vm/vm_api.h"

#define PRT_CKPT_VERSION 1
#define PRT_CKPT_HEADER_SIZE 32
/* Files larger than this are refused before anything is read (prt_ckpt_read's
 * max_bytes = 0 selects it). */
#define PRT_CKPT_DEFAULT_MAX_BYTES ((uint64_t)16 << 30)
#define PRT_CKPT_MAX_META 256

/* Everything besides the tensors that an exact resume needs. */
typedef struct prt_ckpt_state {
    int64_t global_step;     /* optimizer steps done: the VM step of the next run */
    int64_t epoch;           /* 1-based epoch of the next batch */
    int64_t step;            /* batches of that epoch already done (0..steps_per_epoch) */
    int64_t steps_per_epoch;
    prt_solver solver;       /* the learning-rate schedule is prt_lr_at(solver, spe, step) */
    uint64_t shuffle_seed;   /* the loader's seed */
    int64_t dataset_size;    /* samples the loader draws from */
    int64_t batch_size;
    bool shuffle;
    uint64_t seed;           /* the context seed (initial weights, augmentation, dropout keys) */
} prt_ckpt_state;

typedef struct prt_ckpt_meta {
    const char *key, *value;
} prt_ckpt_meta;

typedef struct prt_ckpt_save_options {
    int keep;                        /* newest checkpoints kept in DIR (>= 1; default 3) */
    const prt_ckpt_meta *meta;       /* free-form metadata (borrowed), at most PRT_CKPT_MAX_META */
    int n_meta;
    const char *network;             /* the graph's name, stored for messages (may be NULL) */
    /* optional, tests only: called at "mid_write" (half the payload written),
     * "before_rename" (the temporary file complete and synced) and
     * "after_rename" (renamed, older checkpoints not yet pruned). The CLI
     * installs one that kills the process (PARROTS_TEST_CRASH_IN_SAVE). */
    void (*test_hook)(void *user, const char *stage, int64_t global_step);
    void *hook_user;
} prt_ckpt_save_options;

typedef struct prt_ckpt prt_ckpt; /* a read, CRC-checked, unpacked and validated file */

/* A stable 64-bit hash of a training graph (FNV-1a over a canonical encoding,
 * docs/checkpoints.md): inputs (name, dtype, per-sample shape); every node that
 * is not a recompute copy (op name, node name, attributes, input and output
 * value names, outputs' kind, dtype and shape), an input made by a recompute
 * copy counted as the original's output, so the --recompute mode does not change
 * it; and every parameter and state value (name, kind, dtype, shape). */
prt_status prt_ckpt_graph_hash(const prt_graph *g, uint64_t *out);

void prt_ckpt_save_defaults(prt_ckpt_save_options *o);
/* Writes every PARAM and STATE register of vm (on any device: read through
 * prt_vm_pull_state's host mirror) with st, atomically,
 * as DIR/ckpt-<st->global_step, 12 digits>.prtc, creating DIR if missing, then
 * deletes all but the newest o->keep checkpoints. *path_out (may be NULL; caller
 * frees with prt_free(ctx, p, 0)) gets the file's name. */
prt_status prt_ckpt_save(prt_context *ctx, const char *dir, uint64_t graph_hash, const prt_ckpt_state *st,
                         prt_vm *vm, const prt_ckpt_save_options *o, char **path_out);

/* Reads a checkpoint: a file over max_bytes (0: PRT_CKPT_DEFAULT_MAX_BYTES) is
 * refused before reading; then the header (magic, version, payload length),
 * the CRC32C, the protobuf unpack and every field on its own (names, dtypes,
 * shapes with overflow-checked sizes against the data, duplicates, progress),
 * each problem a message naming the file. Caller frees with prt_ckpt_destroy. */
prt_status prt_ckpt_read(prt_context *ctx, const char *path, uint64_t max_bytes, prt_ckpt **out);
/* The same over bytes in memory (borrowed for the call); `name` names it in messages. */
prt_status prt_ckpt_parse(prt_context *ctx, const char *name, const void *bytes, size_t size, uint64_t max_bytes,
                          prt_ckpt **out);
void prt_ckpt_destroy(prt_context *ctx, prt_ckpt *ck);

/* Checks ck against a training VM without changing it: the graph hash, then
 * every tensor (a PARAM/STATE register of that name, kind, dtype, shape) and
 * that no persistent register is missing. */
prt_status prt_ckpt_check(prt_context *ctx, const prt_ckpt *ck, uint64_t graph_hash, prt_vm *vm);
/* prt_ckpt_check, then copies every tensor into vm and sets its step. Nothing is
 * copied unless everything matches. */
prt_status prt_ckpt_restore(prt_context *ctx, const prt_ckpt *ck, uint64_t graph_hash, prt_vm *vm);
/* Compares the checkpoint's solver with s; the first differing field is an
 * error ("FILE: the checkpoint was trained with solver.lr 0.1, this run has 0.05"). */
prt_status prt_ckpt_check_solver(prt_context *ctx, const prt_ckpt *ck, const prt_solver *s);

void prt_ckpt_get_state(const prt_ckpt *ck, prt_ckpt_state *out);
const char *prt_ckpt_path(const prt_ckpt *ck);           /* the name used in messages */
const char *prt_ckpt_network(const prt_ckpt *ck);        /* "" when not stored */
uint64_t prt_ckpt_hash(const prt_ckpt *ck);
const char *prt_ckpt_meta_get(const prt_ckpt *ck, const char *key); /* borrowed; NULL if absent */

/* The newest checkpoint in dir (highest step among names ckpt-<digits>.prtc).
 * PRT_ERR_NOT_FOUND, naming the directory, when there is none. Caller frees
 * *path_out with prt_free(ctx, p, 0). */
prt_status prt_ckpt_find_latest(prt_context *ctx, const char *dir, char **path_out);

#endif

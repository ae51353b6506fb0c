/* Training checkpoints (frontends/checkpoint.c, docs/checkpoints.md): CRC32C,
 * the graph hash, save/restore through two VMs continuing bit-identically,
 * keep-K pruning, the size limit, and every kind of inconsistent checkpoint
 * (rebuilt here with protobuf-c and a correct CRC, so the checks behind the CRC
 * are reached) with its exact message and a VM left untouched. */
// labels: unit

#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.pb-c.h"
#include "frontends/checkpoint_api.h"
#include "frontends/crc32c.h"
#include "frontends/data_api.h"
#include "memory/memory_api.h"
#include "tests/test_util.h"
#include "vm/vm_impl.h"

static const char *net_yaml = "parrots: 1\n"
                              "name: tiny\n"
                              "input: {x: [1, 6, 6]}\n"
                              "layers:\n"
                              "  - conv: {out: 3, kernel: 3, pad: 1}\n"
                              "  - batchnorm:\n"
                              "  - relu:\n"
                              "  - flatten:\n"
                              "  - dropout: {p: 0.25}\n"
                              "  - linear: {out: 4}\n";

typedef struct tnet {
    prt_context *ctx;
    prt_graph *g;
    prt_program *p;
    prt_vm *vm;
    prt_solver s;
    uint64_t hash;
} tnet;

static void tnet_open_yaml(tnet *n, const char *yaml, prt_recompute_mode mode) {
    memset(n, 0, sizeof *n);
    n->ctx = tu_context();
    ck_assert_int_eq(prt_graph_load_yaml_string(n->ctx, "tiny.yaml", yaml, strlen(yaml), &n->g), PRT_OK);
    prt_solver_defaults(&n->s);
    n->s.batch = 4;
    n->s.lr = 0.05;
    n->s.schedule = PRT_SCHED_cosine;
    n->s.warmup_epochs = 1;
    n->s.epochs = 3;
    prt_train_info ti;
    ck_assert_msg(prt_train_build(n->g, &n->s, 5, &ti) == PRT_OK, "%s", prt_last_error(n->ctx));
    ck_assert_msg(prt_mem_rewrite(n->g, n->g->n_forward, mode, &ti.update_node, NULL) == PRT_OK, "%s",
                  prt_last_error(n->ctx));
    ck_assert_msg(prt_vm_compile(n->g, 4, &n->p) == PRT_OK, "%s", prt_last_error(n->ctx));
    prt_vm_options o = {.training = true};
    ck_assert_int_eq(prt_vm_create(n->ctx, n->p, prt_cpu_device(n->ctx), &o, &n->vm), PRT_OK);
    ck_assert_int_eq(prt_ckpt_graph_hash(n->g, &n->hash), PRT_OK);
}

static void tnet_open(tnet *n) { tnet_open_yaml(n, net_yaml, PRT_RECOMPUTE_none); }

static void tnet_close(tnet *n) {
    prt_vm_destroy(n->vm);
    prt_program_destroy(n->ctx, n->p);
    prt_graph_destroy(n->g);
    prt_context_destroy(n->ctx);
}

/* One training step on a batch that depends only on k. */
static void step(tnet *n, int k) {
    float *x = PRT_F32P(prt_vm_input(n->vm, 0));
    int32_t *y = prt_vm_find(n->vm, "labels")->data;
    for (int i = 0; i < 4 * 36; i++) x[i] = (float)((i * 7 + k * 13) % 17) / 17.0f - 0.5f;
    for (int i = 0; i < 4; i++) y[i] = (i + k) % 4;
    ck_assert_msg(prt_vm_run(n->vm) == PRT_OK, "%s", prt_last_error(n->ctx));
}

static bool persistent(const prt_reg *r) { return r->kind == PRT_REG_PARAM || r->kind == PRT_REG_STATE; }

/* Every persistent register equal byte for byte. */
static bool same_state(const tnet *a, const tnet *b) {
    for (int r = 0; r < a->p->n_regs; r++) {
        if (!persistent(&a->p->regs[r])) continue;
        size_t nb;
        ck_assert_int_eq(prt_shape_nbytes(a->ctx, &a->vm->regs[r].shape, a->vm->regs[r].dtype, &nb), PRT_OK);
        if (memcmp(a->vm->regs[r].data, b->vm->regs[r].data, nb)) return false;
    }
    return true;
}

static char tmpdir[256];

static void make_tmpdir(void) {
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/prtc-XXXXXX", t && *t ? t : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tmpdir(void) {
    DIR *d = opendir(tmpdir);
    if (d) {
        struct dirent *e;
        char p[600];
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
                unlink(p);
            }
        closedir(d);
    }
    rmdir(tmpdir);
}

static prt_ckpt_state state_of(const tnet *n, int64_t global) {
    prt_ckpt_state st = {.global_step = global, .epoch = global / 5 + 1, .step = global % 5, .steps_per_epoch = 5,
                         .solver = n->s, .shuffle_seed = 9, .dataset_size = 20, .batch_size = 4, .shuffle = true,
                         .seed = n->ctx->seed};
    return st;
}

static char *save(tnet *n, int64_t global, int keep) {
    prt_ckpt_state st = state_of(n, global);
    prt_ckpt_save_options o;
    prt_ckpt_save_defaults(&o);
    o.keep = keep;
    prt_ckpt_meta meta[] = {{"network_file", "tiny.yaml"}};
    o.meta = meta;
    o.n_meta = 1;
    o.network = "tiny";
    char *path = NULL;
    ck_assert_msg(prt_ckpt_save(n->ctx, tmpdir, n->hash, &st, n->vm, &o, &path) == PRT_OK, "%s",
                  prt_last_error(n->ctx));
    return path;
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)sz + 1);
    ck_assert_uint_eq(fread(b, 1, (size_t)sz, f), (size_t)sz);
    fclose(f);
    *n = (size_t)sz;
    return b;
}

START_TEST(crc32c_check_value) {
    ck_assert_uint_eq(prt_crc32c_update(0, "123456789", 9), 0xe3069283u);
    uint32_t c = prt_crc32c_update(0, "1234", 4);
    ck_assert_uint_eq(prt_crc32c_update(c, "56789", 5), 0xe3069283u);
    ck_assert_uint_eq(prt_crc32c_update(0, "", 0), 0u);
}
END_TEST

START_TEST(graph_hash) {
    tnet a, b, c, d;
    tnet_open(&a);
    tnet_open(&b);
    ck_assert_uint_eq(a.hash, b.hash);
    /* recomputing batch norm and ReLU in backward is the same training graph */
    tnet_open_yaml(&c, net_yaml, PRT_RECOMPUTE_cheap);
    ck_assert_int_gt(c.g->n_nodes, a.g->n_nodes);
    ck_assert_uint_eq(c.hash, a.hash);
    char other[1024];
    snprintf(other, sizeof other, "%s", net_yaml);
    char *o = strstr(other, "out: 4");
    o[5] = '5';
    tnet_open_yaml(&d, other, PRT_RECOMPUTE_none);
    ck_assert_uint_ne(d.hash, a.hash);
    tnet_close(&a);
    tnet_close(&b);
    tnet_close(&c);
    tnet_close(&d);
}
END_TEST

/* Save after 3 steps, restore into a fresh VM: the state matches, and 4 more
 * steps on each give bit-identical parameters, running statistics and momenta. */
START_TEST(save_restore_continue) {
    make_tmpdir();
    tnet a, b;
    tnet_open(&a);
    tnet_open(&b);
    for (int k = 0; k < 3; k++) step(&a, k);
    char *path = save(&a, 3, 3);
    char want[600];
    snprintf(want, sizeof want, "%s/ckpt-000000000003.prtc", tmpdir);
    ck_assert_str_eq(path, want);
    ck_assert(!same_state(&a, &b));
    prt_ckpt *ck;
    ck_assert_msg(prt_ckpt_read(b.ctx, path, 0, &ck) == PRT_OK, "%s", prt_last_error(b.ctx));
    ck_assert_int_eq(prt_ckpt_restore(b.ctx, ck, b.hash, b.vm), PRT_OK);
    ck_assert_uint_eq(prt_vm_get_step(b.vm), 3);
    prt_ckpt_state st;
    prt_ckpt_get_state(ck, &st);
    ck_assert_int_eq(st.global_step, 3);
    ck_assert_int_eq(st.epoch, 1);
    ck_assert_int_eq(st.step, 3);
    ck_assert_int_eq(st.dataset_size, 20);
    ck_assert_uint_eq(st.shuffle_seed, 9);
    ck_assert(st.solver.lr == 0.05 && st.solver.schedule == PRT_SCHED_cosine && st.solver.epochs == 3);
    ck_assert_int_eq(prt_ckpt_check_solver(b.ctx, ck, &b.s), PRT_OK);
    ck_assert_str_eq(prt_ckpt_meta_get(ck, "network_file"), "tiny.yaml");
    ck_assert_ptr_null(prt_ckpt_meta_get(ck, "nope"));
    ck_assert_str_eq(prt_ckpt_network(ck), "tiny");
    ck_assert(same_state(&a, &b));
    prt_solver s2 = b.s;
    s2.momentum = 0.5;
    ck_assert_int_eq(prt_ckpt_check_solver(b.ctx, ck, &s2), PRT_ERR_INVALID);
    snprintf(want, sizeof want, "%s: the checkpoint was trained with solver.momentum 0.90000000000000002, this run has 0.5",
             path);
    ck_assert_str_eq(prt_last_error(b.ctx), want);
    prt_ckpt_destroy(b.ctx, ck);
    for (int k = 3; k < 7; k++) {
        step(&a, k);
        step(&b, k);
    }
    ck_assert(same_state(&a, &b));
    prt_free(a.ctx, path, 0);
    tnet_close(&a);
    tnet_close(&b);
    remove_tmpdir();
}
END_TEST

START_TEST(keep_and_latest) {
    make_tmpdir();
    tnet a;
    tnet_open(&a);
    char *p;
    ck_assert_int_eq(prt_ckpt_find_latest(a.ctx, tmpdir, &p), PRT_ERR_NOT_FOUND);
    for (int k = 1; k <= 5; k++) {
        step(&a, k);
        prt_free(a.ctx, save(&a, k * 2, 2), 0);
    }
    DIR *d = opendir(tmpdir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') {
            n++;
            ck_assert_msg(!strcmp(e->d_name, "ckpt-000000000008.prtc") || !strcmp(e->d_name, "ckpt-000000000010.prtc"),
                          "%s", e->d_name);
        } else {
            ck_assert_msg(!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."), "left over: %s", e->d_name);
        }
    closedir(d);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(prt_ckpt_find_latest(a.ctx, tmpdir, &p), PRT_OK);
    char want[600];
    snprintf(want, sizeof want, "%s/ckpt-000000000010.prtc", tmpdir);
    ck_assert_str_eq(p, want);
    /* the size limit is applied before reading */
    prt_ckpt *ck;
    ck_assert_int_eq(prt_ckpt_read(a.ctx, p, 100, &ck), PRT_ERR_LIMIT);
    ck_assert_ptr_null(ck);
    size_t size;
    free(slurp(p, &size));
    snprintf(want, sizeof want, "%s: %zu bytes exceed the checkpoint size limit of 100 bytes", p, size);
    ck_assert_str_eq(prt_last_error(a.ctx), want);
    ck_assert_int_eq(prt_ckpt_read(a.ctx, p, size, &ck), PRT_OK);
    prt_ckpt_destroy(a.ctx, ck);
    prt_free(a.ctx, p, 0);
    tnet_close(&a);
    remove_tmpdir();
}
END_TEST

/* ---- inconsistent checkpoints, rebuilt with protobuf-c and a correct CRC ---- */

typedef void (*mutator)(Parrots__Ckpt__Checkpoint *m);

static void put32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* A checkpoint of a (3 steps in), changed by f, checked against b; returns the
 * status and leaves the message in b's context. b's VM must not change. */
static prt_status try_mutated(tnet *a, tnet *b, mutator f) {
    char *path = save(a, 3, 3);
    size_t n;
    unsigned char *bytes = slurp(path, &n);
    Parrots__Ckpt__Checkpoint *m = parrots__ckpt__checkpoint__unpack(NULL, n - 32, bytes + 32);
    ck_assert_ptr_nonnull(m);
    f(m);
    size_t len = parrots__ckpt__checkpoint__get_packed_size(m);
    unsigned char *out = malloc(len + 32);
    memcpy(out, bytes, 32);
    parrots__ckpt__checkpoint__pack(m, out + 32);
    for (int i = 0; i < 8; i++) out[16 + i] = (unsigned char)((uint64_t)len >> (8 * i));
    put32(out + 24, prt_crc32c_update(0, out + 32, len));
    parrots__ckpt__checkpoint__free_unpacked(m, NULL);
    prt_ckpt *ck = NULL;
    prt_status st = prt_ckpt_parse(b->ctx, "m.prtc", out, len + 32, 0, &ck);
    if (st == PRT_OK) {
        st = prt_ckpt_restore(b->ctx, ck, b->hash, b->vm);
        ck_assert_int_ne(st, PRT_OK);
    }
    prt_ckpt_destroy(b->ctx, ck);
    free(out);
    free(bytes);
    unlink(path);
    prt_free(a->ctx, path, 0);
    return st;
}

/* protobuf-c unpacked with the default allocator: strings and submessages are
 * malloc'd, so the mutators replace them with malloc'd ones. */
static void drop_last(Parrots__Ckpt__Checkpoint *m) {
    parrots__ckpt__tensor__free_unpacked(m->tensors[--m->n_tensors], NULL);
}
static void rename_first(Parrots__Ckpt__Checkpoint *m) { m->tensors[0]->name[0] = 'Z'; }
static void dup_first(Parrots__Ckpt__Checkpoint *m) {
    /* the same name twice: point the second at the first's name */
    free(m->tensors[1]->name);
    m->tensors[1]->name = strdup(m->tensors[0]->name);
}
static void retype_first(Parrots__Ckpt__Checkpoint *m) {
    free(m->tensors[0]->dtype);
    m->tensors[0]->dtype = strdup("i32");
}
static void reshape_first(Parrots__Ckpt__Checkpoint *m) {
    /* same element count, other shape */
    Parrots__Ckpt__Tensor *t = m->tensors[0];
    int64_t total = 1;
    for (size_t i = 0; i < t->n_shape; i++) total *= t->shape[i];
    t->shape[0] = total;
    t->n_shape = 1;
}
static void huge_first(Parrots__Ckpt__Checkpoint *m) {
    m->tensors[0]->shape[0] = (int64_t)1 << 62;
}
static void rehash(Parrots__Ckpt__Checkpoint *m) { m->graph_hash ^= 1; }
static void bad_progress(Parrots__Ckpt__Checkpoint *m) { m->progress->global_step = 4; }
static void no_solver(Parrots__Ckpt__Checkpoint *m) {
    parrots__ckpt__solver__free_unpacked(m->solver, NULL);
    m->solver = NULL;
}
static void bad_optimizer(Parrots__Ckpt__Checkpoint *m) {
    free(m->solver->optimizer);
    m->solver->optimizer = strdup("sgdd");
}
static void bad_lr(Parrots__Ckpt__Checkpoint *m) { m->solver->lr = -1; }
static void payload_version(Parrots__Ckpt__Checkpoint *m) { m->format_version = 2; }

START_TEST(inconsistent_checkpoints) {
    make_tmpdir();
    tnet a, b;
    tnet_open(&a);
    tnet_open(&b);
    for (int k = 0; k < 3; k++) step(&a, k);
    tnet fresh;
    tnet_open(&fresh);
    const prt_reg *first = NULL, *last = NULL;
    for (int r = 0; r < a.p->n_regs; r++)
        if (persistent(&a.p->regs[r])) {
            if (!first) first = &a.p->regs[r];
            last = &a.p->regs[r];
        }
    char want[1024], sh[160];
    struct {
        mutator f;
        prt_status st;
        const char *msg; /* %s: first tensor's name (or the last's where noted) */
    } cases[] = {
        {drop_last, PRT_ERR_NOT_FOUND, NULL},
        {rename_first, PRT_ERR_NOT_FOUND, "m.prtc: tensor 'Z%s' is not a parameter or state tensor of the training program"},
        {dup_first, PRT_ERR_PARSE, "m.prtc: tensor '%s' appears twice (tensors 0 and 1)"},
        {retype_first, PRT_ERR_SHAPE, NULL},
        {reshape_first, PRT_ERR_SHAPE, NULL},
        {huge_first, PRT_ERR_PARSE, NULL},
        {rehash, PRT_ERR_INVALID, NULL},
        {bad_progress, PRT_ERR_PARSE,
         "m.prtc: inconsistent progress: global step 4 at epoch 1 step 3 with 5 steps per epoch"},
        {no_solver, PRT_ERR_PARSE, "m.prtc: the checkpoint lacks its solver section"},
        {bad_optimizer, PRT_ERR_PARSE, "m.prtc: solver: unknown optimizer 'sgdd'"},
        {bad_lr, PRT_ERR_PARSE, "m.prtc: solver.lr must be > 0, got -1"},
        {payload_version, PRT_ERR_PARSE, "m.prtc: the payload says format version 2, the header 1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        prt_status st = try_mutated(&a, &b, cases[i].f);
        ck_assert_msg(st == cases[i].st, "case %zu: status %d: %s", i, st, prt_last_error(b.ctx));
        const char *got = prt_last_error(b.ctx);
        const char *name = first->name + (cases[i].f == rename_first);
        if (cases[i].msg) {
            snprintf(want, sizeof want, cases[i].msg, name);
        } else if (cases[i].f == drop_last) {
            snprintf(want, sizeof want, "m.prtc: missing tensor '%s' (%s %s %s of the training program)", last->name,
                     last->kind == PRT_REG_PARAM ? "parameter" : "state", prt_dtype_name(last->dtype),
                     prt_shape_str(&last->shape, sh, sizeof sh));
        } else if (cases[i].f == retype_first) {
            prt_shape_str(&first->shape, sh, sizeof sh);
            snprintf(want, sizeof want,
                     "m.prtc: tensor '%s' is parameter i32 %s in the checkpoint but parameter f32 %s in the training "
                     "program", first->name, sh, sh);
        } else if (cases[i].f == reshape_first) {
            int64_t total = prt_shape_count(&first->shape);
            snprintf(want, sizeof want,
                     "m.prtc: tensor '%s' is parameter f32 [%lld] in the checkpoint but parameter f32 %s in the "
                     "training program", first->name, (long long)total, prt_shape_str(&first->shape, sh, sizeof sh));
        } else if (cases[i].f == huge_first) {
            char dims[200] = "[4611686018427387904";
            for (int d = 1; d < first->shape.ndim; d++)
                snprintf(dims + strlen(dims), sizeof dims - strlen(dims), ", %lld", (long long)first->shape.d[d]);
            snprintf(want, sizeof want, "m.prtc: tensor '%s': the shape %s] has more than 2^40 elements", first->name,
                     dims);
        } else {
            snprintf(want, sizeof want,
                     "m.prtc: the checkpoint is of a different training graph (network 'tiny', graph hash 0x%016llx; "
                     "this run trains 'tiny', graph hash 0x%016llx)",
                     (unsigned long long)(a.hash ^ 1), (unsigned long long)a.hash);
        }
        ck_assert_str_eq(got, want);
        ck_assert_msg(same_state(&b, &fresh), "case %zu changed the VM", i);
        ck_assert_uint_eq(prt_vm_get_step(b.vm), 0);
    }
    tnet_close(&a);
    tnet_close(&b);
    tnet_close(&fresh);
    remove_tmpdir();
}
END_TEST

START_TEST(header_errors) {
    tnet a;
    tnet_open(&a);
    prt_ckpt *ck;
    unsigned char h[40] = "PRTCKPT";
    put32(h + 8, 1);
    h[16] = 8; /* payload length 8 */
    ck_assert_int_eq(prt_ckpt_parse(a.ctx, "h.prtc", h, 20, 0, &ck), PRT_ERR_PARSE);
    ck_assert_str_eq(prt_last_error(a.ctx), "h.prtc: truncated: 20 bytes, a checkpoint has at least a 32-byte header");
    ck_assert_int_eq(prt_ckpt_parse(a.ctx, "h.prtc", h, 36, 0, &ck), PRT_ERR_PARSE);
    ck_assert_str_eq(prt_last_error(a.ctx), "h.prtc: truncated: the header announces a 8-byte payload, 4 bytes follow it");
    ck_assert_int_eq(prt_ckpt_parse(a.ctx, "h.prtc", h, 40, 30, &ck), PRT_ERR_LIMIT);
    ck_assert_str_eq(prt_last_error(a.ctx), "h.prtc: 40 bytes exceed the checkpoint size limit of 30 bytes");
    ck_assert_int_eq(prt_ckpt_parse(a.ctx, "h.prtc", h, 40, 0, &ck), PRT_ERR_PARSE);
    ck_assert_str_eq(prt_last_error(a.ctx),
                     "h.prtc: CRC32C mismatch (stored 0x00000000, computed 0x8c28b28a): the checkpoint is damaged");
    put32(h + 8, 0);
    ck_assert_int_eq(prt_ckpt_parse(a.ctx, "h.prtc", h, 40, 0, &ck), PRT_ERR_PARSE);
    ck_assert_str_eq(prt_last_error(a.ctx),
                     "h.prtc: checkpoint format version 0 is not supported (this Parrots reads version 1)");
    put32(h + 8, 1);
    h[12] = 1;
    ck_assert_int_eq(prt_ckpt_parse(a.ctx, "h.prtc", h, 40, 0, &ck), PRT_ERR_PARSE);
    ck_assert_str_eq(prt_last_error(a.ctx), "h.prtc: the header's reserved fields are not zero");
    ck_assert_int_eq(prt_ckpt_read(a.ctx, "/nonexistent/x.prtc", 0, &ck), PRT_ERR_NOT_FOUND);
    ck_assert_str_eq(prt_last_error(a.ctx), "/nonexistent/x.prtc: cannot open the checkpoint: No such file or directory");
    ck_assert_int_eq(prt_ckpt_read(a.ctx, "/tmp", 0, &ck), PRT_ERR_INVALID);
    ck_assert_str_eq(prt_last_error(a.ctx), "/tmp: not a regular file");
    tnet_close(&a);
}
END_TEST

/* A loader started at (epoch 1, batch 3) gives, byte for byte, what one started
 * at the beginning gives from that point on (shuffled, augmented, prefetching). */
START_TEST(loader_start_position) {
    prt_context *ctx = tu_context();
    prt_shape ps = prt_shape_make(3, (int64_t[]){1, 6, 6});
    prt_dataset *d;
    ck_assert_int_eq(prt_dataset_synthetic(ctx, 20, &ps, 4, 3, &d), PRT_OK);
    prt_loader_options o;
    prt_loader_defaults(&o);
    o.batch = 4;
    o.shuffle = o.drop_last = o.flip = true;
    o.crop_pad = 1;
    o.seed = 11;
    prt_loader *full, *resumed;
    ck_assert_int_eq(prt_loader_create(ctx, d, &o, &full), PRT_OK);
    o.start_epoch = 1;
    o.start_batch = 3;
    ck_assert_int_eq(prt_loader_create(ctx, d, &o, &resumed), PRT_OK);
    ck_assert_int_eq(prt_loader_epoch(resumed), 1);
    float a[4 * 36], b[4 * 36];
    int32_t la[4], lb[4];
    int64_t na, nb;
    for (int i = 0; i < 5 + 1 + 3; i++) ck_assert_int_eq(prt_loader_next(full, a, la, &na), PRT_OK);
    for (int i = 0; i < 10; i++) { /* the rest of epoch 1, its end, and epoch 2 */
        ck_assert_int_eq(prt_loader_next(full, a, la, &na), PRT_OK);
        ck_assert_int_eq(prt_loader_next(resumed, b, lb, &nb), PRT_OK);
        ck_assert_int_eq(na, nb);
        ck_assert_int_eq(na, (i == 2 || i == 8) ? 0 : 4);
        ck_assert(!memcmp(a, b, sizeof a) && !memcmp(la, lb, sizeof la));
    }
    prt_loader_destroy(full);
    prt_loader_destroy(resumed);
    o.start_batch = 6;
    ck_assert_int_eq(prt_loader_create(ctx, d, &o, &resumed), PRT_ERR_INVALID);
    ck_assert_str_eq(prt_last_error(ctx), "loader: start batch 6 is past the 5 batches of an epoch");
    o.start_batch = 5; /* at the epoch's end: the next call ends it */
    ck_assert_int_eq(prt_loader_create(ctx, d, &o, &resumed), PRT_OK);
    ck_assert_int_eq(prt_loader_next(resumed, b, lb, &nb), PRT_OK);
    ck_assert_int_eq(nb, 0);
    ck_assert_int_eq(prt_loader_epoch(resumed), 2);
    prt_loader_destroy(resumed);
    o.start_epoch = -1;
    ck_assert_int_eq(prt_loader_create(ctx, d, &o, &resumed), PRT_ERR_INVALID);
    ck_assert_str_eq(prt_last_error(ctx), "loader: start epoch -1 and batch 5 must not be negative");
    prt_dataset_destroy(d);
    prt_context_destroy(ctx);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("checkpoint");
    tcase_add_test(tc, crc32c_check_value);
    tcase_add_test(tc, graph_hash);
    tcase_add_test(tc, save_restore_continue);
    tcase_add_test(tc, keep_and_latest);
    tcase_add_test(tc, inconsistent_checkpoints);
    tcase_add_test(tc, header_errors);
    tcase_add_test(tc, loader_start_position);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run(suite()); }

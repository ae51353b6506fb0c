/* The persistent state's host mirror (vm/vm_api.h: prt_vm_pull_state,
 * prt_vm_push_state, prt_vm_state) and what reads or writes the state through
 * it: checkpoints (save and restore), weights files and the evaluator's copy
 * between VMs.
 *
 * A VM on any device but the context's CPU device gets a mirror, exactly as a
 * CUDA VM does. Here that device is a second handle of the CPU device: its
 * kernels are the CPU's, but the VM keeps a separate host mirror, so every
 * mistake of the CUDA path's host side shows on this machine: a reader that
 * skips the pull sees stale values (the mirror is not the state), a writer that
 * skips the push leaves the state unchanged. Both the planned layout (one block
 * at the plan's offsets) and the unplanned one (a tensor per register) run. */
// labels: unit

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frontends/checkpoint_api.h"
#include "frontends/weights_api.h"
#include "tests/test_util.h"
#include "tests/train_util.h"

#define NET "examples/fashion-cnn.yaml"

typedef struct fixture {
    prt_context *ctx;
    prt_device other; /* the CPU device under a second handle: "not the CPU device" to the VM */
} fixture;

static void fx_open(fixture *f) {
    f->ctx = tu_context();
    f->other = *prt_cpu_device(f->ctx);
}

static tr_options opts(fixture *f, bool other, bool unplanned) {
    return (tr_options){.batch = 4, .unplanned = unplanned, .dev = other ? &f->other : NULL};
}

/* Every parameter and state register's device memory equals `mirror` bit for bit. */
static bool state_equals_mirror(tr_net *n) {
    for (int r = 0; r < n->p->n_regs; r++) {
        const prt_reg *g = &n->p->regs[r];
        if (g->kind != PRT_REG_PARAM && g->kind != PRT_REG_STATE) continue;
        const prt_tensor *m = prt_vm_state(n->vm, g->name);
        size_t bytes = (size_t)prt_shape_count(&g->shape) * sizeof(float);
        if (memcmp(m->data, n->vm->regs[r].data, bytes)) return false;
    }
    return true;
}

/* Every parameter and state register of a and b holds the same bits (device memory). */
static void assert_same_state(tr_net *a, tr_net *b, const char *what) {
    for (int r = 0; r < a->p->n_regs; r++) {
        const prt_reg *g = &a->p->regs[r];
        if (g->kind != PRT_REG_PARAM && g->kind != PRT_REG_STATE) continue;
        prt_tensor *x = prt_vm_find(a->vm, g->name), *y = prt_vm_find(b->vm, g->name);
        ck_assert_msg(x && y, "%s: '%s' missing", what, g->name);
        ck_assert_msg(!memcmp(x->data, y->data, (size_t)prt_shape_count(&g->shape) * sizeof(float)),
                      "%s: '%s' differs", what, g->name);
    }
}

static void round_trip(bool unplanned) {
    fixture f;
    fx_open(&f);
    tr_net cpu, oth;
    tr_options oc = opts(&f, false, unplanned), oo = opts(&f, true, unplanned);
    tr_open(&cpu, f.ctx, NET, &oc);
    tr_open(&oth, f.ctx, NET, &oo);
    const char *w = "block1/conv_0.weight";
    /* the CPU VM: the mirror is the state itself, pull and push do nothing */
    ck_assert_ptr_eq(prt_vm_state(cpu.vm, w), prt_vm_find(cpu.vm, w));
    ck_assert_int_eq(prt_vm_pull_state(cpu.vm), PRT_OK);
    ck_assert_int_eq(prt_vm_push_state(cpu.vm), PRT_OK);
    /* another device: a separate copy, current after a pull */
    prt_tensor *m = prt_vm_state(oth.vm, w);
    ck_assert_ptr_nonnull(m);
    ck_assert_ptr_ne(m->data, prt_vm_find(oth.vm, w)->data);
    ck_assert_int_eq(m->shape.ndim, 4);
    ck_assert_int_eq(prt_vm_pull_state(oth.vm), PRT_OK);
    ck_assert_msg(state_equals_mirror(&oth), "after a pull the mirror must equal the state");
    /* not state: inputs, activations, unknown names */
    ck_assert_ptr_null(prt_vm_state(oth.vm, oth.g->values[oth.g->inputs[0]].name));
    ck_assert_ptr_null(prt_vm_state(oth.vm, "no/such.weight"));
    /* a step changes the state, not the mirror, until the next pull */
    tr_step(&cpu, 0);
    tr_step(&oth, 0);
    ck_assert_msg(!state_equals_mirror(&oth), "a run must not write the mirror");
    ck_assert_int_eq(prt_vm_pull_state(oth.vm), PRT_OK);
    ck_assert_msg(state_equals_mirror(&oth), "after a pull the mirror must equal the state");
    assert_same_state(&cpu, &oth, "one step on the CPU and on the second handle");
    /* write the mirror, push: the state takes it */
    int64_t k = prt_shape_count(&m->shape);
    for (int64_t i = 0; i < k; i++) PRT_F32P(m)[i] = 0.25f + (float)i * 1e-4f;
    ck_assert_int_eq(prt_vm_push_state(oth.vm), PRT_OK);
    ck_assert_msg(state_equals_mirror(&oth), "after a push the state must equal the mirror");
    ck_assert(PRT_F32P(prt_vm_find(oth.vm, w))[k - 1] == 0.25f + (float)(k - 1) * 1e-4f);
    tr_close(&cpu);
    tr_close(&oth);
    prt_context_destroy(f.ctx);
}

START_TEST(test_round_trip_planned) { round_trip(false); }
END_TEST

START_TEST(test_round_trip_unplanned) { round_trip(true); }
END_TEST

static void save_ckpt(tr_net *n, const char *dir, uint64_t hash, char **path) {
    prt_ckpt_state st = {.global_step = (int64_t)prt_vm_get_step(n->vm), .epoch = 1, .step = 2,
                         .steps_per_epoch = 10, .dataset_size = 40, .batch_size = 4, .shuffle = true};
    prt_solver_defaults(&st.solver);
    ck_assert_msg(prt_ckpt_save(n->ctx, dir, hash, &st, n->vm, NULL, path) == PRT_OK, "%s", prt_last_error(n->ctx));
}

static void restore(tr_net *n, const char *path, uint64_t hash) {
    prt_ckpt *ck;
    ck_assert_msg(prt_ckpt_read(n->ctx, path, 0, &ck) == PRT_OK, "%s", prt_last_error(n->ctx));
    ck_assert_msg(prt_ckpt_restore(n->ctx, ck, hash, n->vm) == PRT_OK, "%s", prt_last_error(n->ctx));
    prt_ckpt_destroy(n->ctx, ck);
}

/* A checkpoint of a VM on another device holds its state after the last run
 * (save pulled) and restores into one (restore pushed): a step after the
 * restore equals the step of the VM that kept training, on either device. */
START_TEST(test_checkpoint_through_mirror) {
    fixture f;
    fx_open(&f);
    char dir[] = "/tmp/prt_vm_state_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    tr_net a, b, c;
    tr_options oo = opts(&f, true, false), oc = opts(&f, false, false);
    tr_open(&a, f.ctx, NET, &oo);
    uint64_t hash;
    ck_assert_int_eq(prt_ckpt_graph_hash(a.g, &hash), PRT_OK);
    tr_step(&a, 0);
    tr_step(&a, 1);
    char *path = NULL;
    save_ckpt(&a, dir, hash, &path); /* no pull by the caller: the save does it */
    tr_open(&b, f.ctx, NET, &oo);
    tr_open(&c, f.ctx, NET, &oc);
    restore(&b, path, hash);
    restore(&c, path, hash);
    ck_assert_uint_eq(prt_vm_get_step(b.vm), 2);
    assert_same_state(&a, &b, "restored on the second handle");
    assert_same_state(&a, &c, "restored on the CPU");
    tr_step(&a, 2);
    tr_step(&b, 2);
    tr_step(&c, 2);
    assert_same_state(&a, &b, "a step after the restore, second handle");
    assert_same_state(&a, &c, "a step after the restore, CPU");
    unlink(path);
    rmdir(dir);
    prt_free(f.ctx, path, 0);
    tr_close(&a);
    tr_close(&b);
    tr_close(&c);
    prt_context_destroy(f.ctx);
}
END_TEST

/* Weights files and the training -> evaluation copy, from and to VMs on the
 * second handle. */
START_TEST(test_weights_through_mirror) {
    fixture f;
    fx_open(&f);
    char dir[] = "/tmp/prt_vm_state_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/w.prtw", dir);
    tr_net a, b, c;
    tr_options oo = opts(&f, true, false), oc = opts(&f, false, true);
    tr_open(&a, f.ctx, NET, &oo);
    tr_open(&b, f.ctx, NET, &oo);
    tr_open(&c, f.ctx, NET, &oc);
    tr_step(&a, 0);
    tr_step(&a, 1);
    /* other device -> CPU, then CPU -> a fresh other-device VM */
    ck_assert_msg(prt_weights_copy_vm(f.ctx, a.g, a.vm, c.vm) == PRT_OK, "%s", prt_last_error(f.ctx));
    assert_same_state(&a, &c, "copied to the CPU");
    ck_assert_msg(prt_weights_copy_vm(f.ctx, c.g, c.vm, b.vm) == PRT_OK, "%s", prt_last_error(f.ctx));
    assert_same_state(&a, &b, "copied back to the second handle");
    /* a file written from one VM on the other device, read into another */
    tr_step(&a, 2);
    ck_assert_msg(prt_weights_save(f.ctx, path, a.g, a.vm) == PRT_OK, "%s", prt_last_error(f.ctx));
    prt_weights *w;
    ck_assert_msg(prt_weights_read(f.ctx, path, &w) == PRT_OK, "%s", prt_last_error(f.ctx));
    ck_assert_msg(prt_weights_apply(f.ctx, w, b.g, b.vm) == PRT_OK, "%s", prt_last_error(f.ctx));
    prt_weights_destroy(f.ctx, w);
    assert_same_state(&a, &b, "through a weights file");
    unlink(path);
    rmdir(dir);
    tr_close(&a);
    tr_close(&b);
    tr_close(&c);
    prt_context_destroy(f.ctx);
}
END_TEST

int main(void) {
    Suite *s = suite_create("vm_state");
    TCase *tc = tcase_create("mirror");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_round_trip_planned);
    tcase_add_test(tc, test_round_trip_unplanned);
    tcase_add_test(tc, test_checkpoint_through_mirror);
    tcase_add_test(tc, test_weights_through_mirror);
    suite_add_tcase(s, tc);
    return tu_run(s);
}

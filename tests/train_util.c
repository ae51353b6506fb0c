/* See tests/train_util.h. */
#include "tests/train_util.h"

#include <check.h>
#include <math.h>
#include <string.h>

#include "memory/memory_api.h"
#include "tests/test_util.h"

void tr_open(tr_net *n, prt_context *ctx, const char *rel, const tr_options *o) {
    memset(n, 0, sizeof *n);
    n->ctx = ctx;
    ck_assert_msg(prt_graph_load_yaml(ctx, tu_src(rel), &n->g) == PRT_OK, "%s", prt_last_error(ctx));
    if (o->size > 0) {
        prt_shape s = n->g->values[n->g->inputs[0]].shape;
        s.d[s.ndim - 1] = s.d[s.ndim - 2] = o->size;
        ck_assert_msg(prt_graph_set_input_shape(n->g, 0, &s) == PRT_OK, "%s", prt_last_error(ctx));
    }
    prt_solver s;
    prt_solver_defaults(&s);
    if (n->g->solver) s = *n->g->solver;
    s.batch = o->batch;
    s.epochs = 1;
    s.schedule = PRT_SCHED_cosine;
    s.warmup_epochs = 0;
    ck_assert_msg(prt_train_build(n->g, &s, 10, &n->ti) == PRT_OK, "%s", prt_last_error(ctx));
    ck_assert_msg(prt_vm_compile(n->g, o->batch, &n->p) == PRT_OK, "%s", prt_last_error(ctx));
    prt_vm_options vo = {.training = true, .reference = o->reference, .unplanned = o->unplanned};
    ck_assert_msg(prt_vm_create(ctx, n->p, o->dev ? o->dev : prt_cpu_device(ctx), &vo, &n->vm) == PRT_OK, "%s",
                  prt_last_error(ctx));
}

void tr_close(tr_net *n) {
    prt_vm_destroy(n->vm);
    prt_program_destroy(n->ctx, n->p);
    prt_graph_destroy(n->g);
    memset(n, 0, sizeof *n);
}

static float pixel(int64_t s, int64_t m, int64_t e) {
    uint64_t x = (uint64_t)s * 0x9e3779b97f4a7c15ull ^ (uint64_t)m * 0xbf58476d1ce4e5b9ull ^
                 (uint64_t)e * 0x94d049bb133111ebull;
    x ^= x >> 31;
    x *= 0xd6e8feb86659fd39ull;
    x ^= x >> 29;
    return (float)(x >> 40) / (float)(1u << 24);
}

void tr_feed(tr_net *n, int64_t s) {
    prt_tensor *x = prt_vm_find(n->vm, n->g->values[n->g->inputs[0]].name);
    prt_tensor *lab = prt_vm_find(n->vm, n->g->values[n->ti.labels].name);
    const prt_tensor *logits = prt_vm_find(n->vm, n->g->values[n->ti.logits].name);
    ck_assert(x && lab && logits);
    int64_t b = x->shape.d[0], per = prt_shape_count(&x->shape) / b, classes = logits->shape.d[1];
    for (int64_t i = 0; i < b; i++) {
        for (int64_t e = 0; e < per; e++) PRT_F32P(x)[i * per + e] = pixel(s, i, e);
        ((int32_t *)lab->data)[i] = (int32_t)((i * 7 + s * 3) % classes);
    }
}

void tr_step(tr_net *n, int64_t s) {
    tr_feed(n, s);
    ck_assert_msg(prt_vm_run(n->vm) == PRT_OK, "step %lld: %s", (long long)s, prt_last_error(n->ctx));
}

double tr_loss(tr_net *n) {
    const prt_tensor *l = prt_vm_find(n->vm, n->g->values[n->ti.loss].name);
    ck_assert(l);
    return PRT_F32P(l)[0];
}

static void pull(tr_net *n) { ck_assert_msg(prt_vm_pull_state(n->vm) == PRT_OK, "%s", prt_last_error(n->ctx)); }

double tr_params_l2(tr_net *a, tr_net *b) {
    pull(a);
    pull(b);
    double d2 = 0, r2 = 0;
    for (int r = 0; r < a->p->n_regs; r++) {
        if (a->p->regs[r].kind != PRT_REG_PARAM) continue;
        const prt_tensor *x = prt_vm_state(a->vm, a->p->regs[r].name), *y = prt_vm_state(b->vm, a->p->regs[r].name);
        ck_assert_msg(x && y, "'%s' missing", a->p->regs[r].name);
        for (int64_t i = 0; i < prt_shape_count(&y->shape); i++) {
            double u = PRT_F32P(x)[i], v = PRT_F32P(y)[i];
            d2 += (u - v) * (u - v);
            r2 += v * v;
        }
    }
    return sqrt(d2 / (r2 > 0 ? r2 : 1));
}

double tr_state_worst(tr_net *a, tr_net *b, bool params_only, const char **which) {
    pull(a);
    pull(b);
    double worst = 0;
    *which = "";
    for (int r = 0; r < a->p->n_regs; r++) {
        prt_reg_kind k = a->p->regs[r].kind;
        if (k != PRT_REG_PARAM && (params_only || k != PRT_REG_STATE)) continue;
        const char *name = a->p->regs[r].name;
        const prt_tensor *x = prt_vm_state(a->vm, name), *y = prt_vm_state(b->vm, name);
        ck_assert_msg(x && y, "'%s' missing", name);
        double num = 0, den = 0;
        for (int64_t i = 0; i < prt_shape_count(&y->shape); i++) {
            double d = fabs((double)PRT_F32P(x)[i] - (double)PRT_F32P(y)[i]);
            if (d > num || d != d) num = d;
            if (fabs((double)PRT_F32P(y)[i]) > den) den = fabs((double)PRT_F32P(y)[i]);
        }
        double rel = den > 0 ? num / den : num;
        if (rel > worst || rel != rel) worst = rel, *which = name;
    }
    return worst;
}

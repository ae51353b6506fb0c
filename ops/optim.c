/* The machinery the optimizer update ops share (see ops/optim_impl.h): their
 * attribute table, shape inference, state slots, the learning rate of a step,
 * and the reference and fused update passes. */
#include "ops/optim_impl.h"

#include <math.h>
#include <string.h>

#define OPT_FLOAT(nm, v, dc) PRT_ATTR_OPT_FLOAT(nm, v, dc)

const prt_attr_def prt_optim_attrs[PRT_OPTIM_N_ATTRS] = {
    [PRT_OPTIM_A_LR] = OPT_FLOAT("lr", 0.1, "base learning rate"),
    [PRT_OPTIM_A_MOMENTUM] = OPT_FLOAT("momentum", 0.9, "momentum (sgd, rmsprop)"),
    [PRT_OPTIM_A_NESTEROV] = PRT_ATTR_OPT_BOOL("nesterov", 0, "Nesterov momentum (sgd)"),
    [PRT_OPTIM_A_WEIGHT_DECAY] = OPT_FLOAT("weight_decay", 0, "L2 penalty (adamw: decoupled decay)"),
    [PRT_OPTIM_A_BETA1] = OPT_FLOAT("beta1", 0.9, "first-moment decay (adam, adamw)"),
    [PRT_OPTIM_A_BETA2] = OPT_FLOAT("beta2", 0.999, "second-moment decay (adam, adamw)"),
    [PRT_OPTIM_A_EPS] = OPT_FLOAT("eps", 1e-8, "denominator guard (adam, adamw, rmsprop)"),
    [PRT_OPTIM_A_RMS_DECAY] = OPT_FLOAT("rms_decay", 0.9, "mean-square decay (rmsprop)"),
    [PRT_OPTIM_A_SCHEDULE] = {.name = "schedule",
                              .type = PRT_ATTR_STRING,
                              .def = {.type = PRT_ATTR_STRING, .s = "constant"},
                              .doc = "learning-rate schedule: constant, step or cosine"},
    [PRT_OPTIM_A_WARMUP_STEPS] = PRT_ATTR_OPT_INT("warmup_steps", 0, 0, "linear warm-up length"),
    [PRT_OPTIM_A_TOTAL_STEPS] = PRT_ATTR_OPT_INT("total_steps", 1, 1, "steps of the whole run (cosine)"),
    [PRT_OPTIM_A_STEPS_PER_EPOCH] = PRT_ATTR_OPT_INT("steps_per_epoch", 1, 1, "steps in one epoch"),
    [PRT_OPTIM_A_STEP_EPOCHS] = OPT_FLOAT("step_epochs", 30, "step schedule: epochs between decays"),
    [PRT_OPTIM_A_GAMMA] = OPT_FLOAT("gamma", 0.1, "step schedule: decay factor"),
    [PRT_OPTIM_A_MIN_LR] = OPT_FLOAT("min_lr", 0, "cosine schedule: final rate"),
};

/* ---- slots ---------------------------------------------------------------- */

static const struct {
    int n;
    const char *name[2];
} slots[PRT_OPT_COUNT] = {
    [PRT_OPT_sgd] = {1, {"momentum", NULL}},
    [PRT_OPT_rmsprop] = {2, {"mean_square", "momentum"}},
    [PRT_OPT_adam] = {2, {"m", "v"}},
    [PRT_OPT_adamw] = {2, {"m", "v"}},
};

int prt_optim_n_slots(prt_optimizer_kind k) { return (unsigned)k < PRT_OPT_COUNT ? slots[k].n : 0; }

const char *prt_optim_slot_name(prt_optimizer_kind k, int slot) {
    return (unsigned)k < PRT_OPT_COUNT && slot >= 0 && slot < slots[k].n ? slots[k].name[slot] : NULL;
}

/* ---- attributes <-> solver ---------------------------------------------- */

static prt_attr attr_float(double v) { return (prt_attr){.type = PRT_ATTR_FLOAT, .set = true, .f = v}; }
static prt_attr attr_int(int64_t v) { return (prt_attr){.type = PRT_ATTR_INT, .set = true, .n = 1, .i = {v}}; }

void prt_optim_attrs_from_solver(prt_graph *g, const prt_solver *s, int64_t steps_per_epoch, prt_attr *a) {
    int64_t total;
    if (!prt_mul_i64(s->epochs, steps_per_epoch, &total)) total = INT64_MAX;
    a[PRT_OPTIM_A_LR] = attr_float(s->lr);
    a[PRT_OPTIM_A_MOMENTUM] = attr_float(s->momentum);
    a[PRT_OPTIM_A_NESTEROV] = (prt_attr){.type = PRT_ATTR_BOOL, .set = true, .n = 1, .i = {s->nesterov}};
    a[PRT_OPTIM_A_WEIGHT_DECAY] = attr_float(s->weight_decay);
    a[PRT_OPTIM_A_BETA1] = attr_float(s->beta1);
    a[PRT_OPTIM_A_BETA2] = attr_float(s->beta2);
    a[PRT_OPTIM_A_EPS] = attr_float(s->eps);
    a[PRT_OPTIM_A_RMS_DECAY] = attr_float(s->rms_decay);
    a[PRT_OPTIM_A_SCHEDULE] = (prt_attr){.type = PRT_ATTR_STRING, .set = true,
                                         .s = prt_graph_intern(g, prt_schedule_name(s->schedule))};
    a[PRT_OPTIM_A_WARMUP_STEPS] = attr_int(prt_solver_warmup_steps(s, steps_per_epoch));
    a[PRT_OPTIM_A_TOTAL_STEPS] = attr_int(total);
    a[PRT_OPTIM_A_STEPS_PER_EPOCH] = attr_int(steps_per_epoch);
    a[PRT_OPTIM_A_STEP_EPOCHS] = attr_float(s->step_epochs);
    a[PRT_OPTIM_A_GAMMA] = attr_float(s->gamma);
    a[PRT_OPTIM_A_MIN_LR] = attr_float(s->min_lr);
}

bool prt_optim_solver_of(const prt_attr *a, prt_solver *s) {
    prt_solver_defaults(s);
    s->lr = a[PRT_OPTIM_A_LR].f;
    s->momentum = a[PRT_OPTIM_A_MOMENTUM].f;
    s->nesterov = a[PRT_OPTIM_A_NESTEROV].i[0] != 0;
    s->weight_decay = a[PRT_OPTIM_A_WEIGHT_DECAY].f;
    s->beta1 = a[PRT_OPTIM_A_BETA1].f;
    s->beta2 = a[PRT_OPTIM_A_BETA2].f;
    s->eps = a[PRT_OPTIM_A_EPS].f;
    s->rms_decay = a[PRT_OPTIM_A_RMS_DECAY].f;
    s->gamma = a[PRT_OPTIM_A_GAMMA].f;
    s->min_lr = a[PRT_OPTIM_A_MIN_LR].f;
    /* In steps: one "epoch" is one step, so prt_lr_at(s, 1, step) takes the
     * warm-up, total and decay interval exactly as the attributes give them, and
     * step_epochs * steps_per_epoch is the same product prt_lr_at forms. */
    s->warmup_epochs = (double)a[PRT_OPTIM_A_WARMUP_STEPS].i[0];
    s->epochs = a[PRT_OPTIM_A_TOTAL_STEPS].i[0];
    s->step_epochs = a[PRT_OPTIM_A_STEP_EPOCHS].f * (double)a[PRT_OPTIM_A_STEPS_PER_EPOCH].i[0];
    const char *name = a[PRT_OPTIM_A_SCHEDULE].s;
    return name && prt_schedule_from_name(name, &s->schedule);
}

/* ---- shape inference ------------------------------------------------------ */

prt_status prt_optim_infer(prt_infer_ctx *ic, prt_optimizer_kind kind) {
    int per = 2 + prt_optim_n_slots(kind);
    if (ic->n_in < per || ic->n_in % per != 0)
        return prt_infer_error(ic,
                               "takes %d inputs per parameter (parameters, gradients, then %d state tensor%s "
                               "each), got %d inputs",
                               per, per - 2, per == 3 ? "" : "s", ic->n_in);
    int k = ic->n_in / per;
    for (int j = 0; j < k; j++) {
        for (int r = 1; r < per; r++) {
            const prt_shape *a = &ic->in[j], *b = &ic->in[r * k + j];
            if (prt_shape_eq(a, b)) continue;
            char sa[160], sb[160];
            prt_shape_str(a, sa, sizeof sa);
            prt_shape_str(b, sb, sizeof sb);
            const char *what = r == 1 ? "gradient" : prt_optim_slot_name(kind, r - 2);
            return prt_infer_error(ic, "parameter %d has shape %s but its %s (input %d) has %s", j, sa, what,
                                   r * k + j, sb);
        }
    }
    prt_solver s;
    if (!prt_optim_solver_of(ic->attrs, &s))
        return prt_infer_error(ic, "unknown schedule '%s'",
                               ic->attrs[PRT_OPTIM_A_SCHEDULE].s ? ic->attrs[PRT_OPTIM_A_SCHEDULE].s : "");
    char msg[256];
    if (prt_solver_problem(&s, msg, sizeof msg)) {
        /* in step units, the warm-up and total are steps: say so */
        if (strncmp(msg, "warmup_epochs", 13) == 0)
            return prt_infer_error(ic, "warmup_steps must be in [0, total_steps = %lld], got %lld",
                                   (long long)ic->attrs[PRT_OPTIM_A_TOTAL_STEPS].i[0],
                                   (long long)ic->attrs[PRT_OPTIM_A_WARMUP_STEPS].i[0]);
        return prt_infer_error(ic, "%s", msg);
    }
    return PRT_OK;
}

int64_t prt_optim_flops(const prt_infer_ctx *ic, prt_optimizer_kind kind, int64_t per_elem) {
    int k = ic->n_in / (2 + prt_optim_n_slots(kind));
    int64_t n = 0;
    for (int j = 0; j < k; j++) n = prt_flop_add(n, prt_ops_numel(&ic->in[j]));
    return prt_flop_mul(n, per_elem);
}

/* ---- kernels ---------------------------------------------------------------- */

prt_status prt_optim_coef_of(const prt_kernel_call *c, const prt_optim_impl *o, prt_optim_coef *k, double *lr) {
    prt_solver s;
    if (!prt_optim_solver_of(c->attrs, &s))
        return prt_error(c->ctx, PRT_ERR_INVALID, "%s kernel: unknown schedule", prt_optimizer_name(o->kind));
    double rate = prt_lr_at(&s, 1, c->step > INT64_MAX ? INT64_MAX : (int64_t)c->step);
    memset(k, 0, sizeof *k);
    k->lr = (float)rate;
    k->momentum = (float)s.momentum;
    k->weight_decay = (float)s.weight_decay;
    k->eps = (float)s.eps;
    k->nesterov = s.nesterov;
    k->keep = 1.0f;
    o->coef(&s, rate, (double)c->step + 1, k);
    if (lr) *lr = rate;
    return PRT_OK;
}

prt_status prt_optim_step_values(const prt_kernel_call *c, const prt_optim_impl *o, void *slot) {
    prt_optim_coef k;
    PRT_CHECK(prt_optim_coef_of(c, o, &k, NULL));
    memcpy(slot, &k, sizeof k);
    return PRT_OK;
}

prt_status prt_sgd_step_values(const prt_kernel_call *c, void *slot) {
    return prt_optim_step_values(c, &prt_optim_sgd, slot);
}
prt_status prt_adam_step_values(const prt_kernel_call *c, void *slot) {
    return prt_optim_step_values(c, &prt_optim_adam, slot);
}
prt_status prt_adamw_step_values(const prt_kernel_call *c, void *slot) {
    return prt_optim_step_values(c, &prt_optim_adamw, slot);
}
prt_status prt_rmsprop_step_values(const prt_kernel_call *c, void *slot) {
    return prt_optim_step_values(c, &prt_optim_rmsprop, slot);
}

/* Checks the call: f32 contiguous tensors, a whole number of groups, equal
 * element counts within a group (the verifier has checked shapes; a kernel
 * called directly by a test has not). */
static prt_status check_call(const prt_kernel_call *c, const prt_optim_impl *o, int *k_out) {
    const char *name = prt_optimizer_name(o->kind);
    PRT_CHECK(prt_kernel_check_f32(c, name));
    int per = 2 + prt_optim_n_slots(o->kind);
    if (c->n_in < per || c->n_in % per != 0)
        return prt_error(c->ctx, PRT_ERR_INTERNAL, "%s kernel: %d inputs, expected a multiple of %d", name, c->n_in,
                         per);
    int k = c->n_in / per;
    for (int j = 0; j < k; j++)
        for (int r = 1; r < per; r++)
            if (prt_shape_count(&c->in[r * k + j]->shape) != prt_shape_count(&c->in[j]->shape))
                return prt_error(c->ctx, PRT_ERR_SHAPE, "%s kernel: input %d does not match parameter %d", name,
                                 r * k + j, j);
    *k_out = k;
    return PRT_OK;
}

/* The pointers of parameter j's group. */
static void group(const prt_kernel_call *c, int k, int n_slots, int j, float **p, const float **g, float **s0,
                  float **s1) {
    *p = PRT_F32P(c->in[j]);
    *g = PRT_F32P(c->in[k + j]);
    *s0 = PRT_F32P(c->in[2 * k + j]);
    *s1 = n_slots > 1 ? PRT_F32P(c->in[3 * k + j]) : NULL;
}

prt_status prt_optim_ref(const prt_kernel_call *c, const prt_optim_impl *o) {
    int k;
    PRT_CHECK(check_call(c, o, &k));
    prt_optim_coef co;
    PRT_CHECK(prt_optim_coef_of(c, o, &co, NULL));
    int n_slots = prt_optim_n_slots(o->kind);
    for (int j = 0; j < k; j++) {
        float *p, *s0, *s1;
        const float *g;
        group(c, k, n_slots, j, &p, &g, &s0, &s1);
        o->span(&co, prt_shape_count(&c->in[j]->shape), p, g, s0, s1);
    }
    return PRT_OK;
}

typedef struct optim_state {
    prt_context *ctx;
    int k;
    int64_t *off; /* k + 1 entries: off[j] = elements of parameters 0..j-1 */
} optim_state;

void prt_optim_release(void *state) {
    optim_state *st = state;
    if (!st) return;
    prt_free(st->ctx, st->off, 0);
    prt_free(st->ctx, st, sizeof *st);
}

prt_status prt_optim_prepare(const prt_kernel_call *c, const prt_optim_impl *o, void **state) {
    *state = NULL;
    int k;
    PRT_CHECK(check_call(c, o, &k));
    optim_state *st = prt_calloc(c->ctx, 1, sizeof *st);
    if (!st) return prt_error(c->ctx, PRT_ERR_NOMEM, "%s kernel: out of memory", prt_optimizer_name(o->kind));
    st->ctx = c->ctx;
    st->k = k;
    st->off = prt_calloc(c->ctx, (size_t)k + 1, sizeof *st->off);
    if (!st->off) {
        prt_optim_release(st);
        return prt_error(c->ctx, PRT_ERR_NOMEM, "%s kernel: out of memory", prt_optimizer_name(o->kind));
    }
    for (int j = 0; j < k; j++) {
        if (!prt_add_i64(st->off[j], prt_shape_count(&c->in[j]->shape), &st->off[j + 1])) {
            prt_optim_release(st);
            return prt_error(c->ctx, PRT_ERR_OVERFLOW, "%s kernel: parameter sizes overflow",
                             prt_optimizer_name(o->kind));
        }
    }
    *state = st;
    return PRT_OK;
}

typedef struct range_args {
    const prt_kernel_call *c;
    const prt_optim_impl *o;
    const optim_state *st;
    const prt_optim_coef *co;
    int n_slots;
} range_args;

/* Elements [lo, hi) of the concatenation of all parameters. */
static void update_range(void *arg, int64_t lo, int64_t hi) {
    const range_args *a = arg;
    const int64_t *off = a->st->off;
    int k = a->st->k;
    /* the last parameter starting at or before lo */
    int l = 0, r = k;
    while (r - l > 1) {
        int m = l + (r - l) / 2;
        if (off[m] <= lo) l = m;
        else r = m;
    }
    for (int j = l; j < k && lo < hi; j++) {
        int64_t end = off[j + 1] < hi ? off[j + 1] : hi, at = lo - off[j];
        if (end <= lo) continue;
        float *p, *s0, *s1;
        const float *g;
        group(a->c, k, a->n_slots, j, &p, &g, &s0, &s1);
        a->o->span(a->co, end - lo, p + at, g + at, s0 + at, s1 ? s1 + at : NULL);
        lo = end;
    }
}

prt_status prt_optim_fast(const prt_kernel_call *c, const prt_optim_impl *o) {
    const optim_state *st = c->state;
    if (!st) return prt_optim_ref(c, o); /* called without prepare */
    PRT_CHECK(prt_kernel_check_f32(c, prt_optimizer_name(o->kind)));
    if (c->n_in != st->k * (2 + prt_optim_n_slots(o->kind)))
        return prt_error(c->ctx, PRT_ERR_INTERNAL, "%s kernel: prepared for %d parameters, called with %d inputs",
                         prt_optimizer_name(o->kind), st->k, c->n_in);
    prt_optim_coef co;
    PRT_CHECK(prt_optim_coef_of(c, o, &co, NULL));
    range_args a = {c, o, st, &co, prt_optim_n_slots(o->kind)};
    prt_parallel_range(st->off[st->k], PRT_PAR_MIN_ELEMS, update_range, &a);
    return PRT_OK;
}

/* The solver settings: defaults, range checks with messages naming the field,
 * setting one field from text (`--set solver.lr=0.1`, the YAML `solver:`
 * section), the optimizer and schedule names, and the learning rate at a step.
 *
 * Choices worth knowing (user documentation of the `solver:` section should say so too):
 * - eps defaults to 1e-8 for every optimizer. RMSProp adds it inside the square
 *   root (TensorFlow's form, the one the Inception-ResNet and PolyNet recipes
 *   were tuned with); those recipes use eps 1.0, which damps every step of a
 *   small network so much that it barely trains, so 1.0 is left to the recipe
 *   (`eps: 1.0`) rather than made the default.
 * - Warm-up is linear from lr/W to lr over the first W = round(warmup_epochs *
 *   steps_per_epoch) steps; the step schedule counts epochs from step 0, the
 *   cosine schedule runs over the steps after the warm-up. */
#include "ops/train_impl.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static const char *const optimizer_names[PRT_OPT_COUNT] = {
#define X(name, doc) #name,
    PRT_OPTIMIZERS(X)
#undef X
};

static const char *const schedule_names[PRT_SCHED_COUNT] = {
#define X(name, doc) #name,
    PRT_SCHEDULES(X)
#undef X
};

const char *prt_optimizer_name(prt_optimizer_kind k) {
    return (unsigned)k < PRT_OPT_COUNT ? optimizer_names[k] : "?";
}

const char *prt_schedule_name(prt_schedule_kind k) {
    return (unsigned)k < PRT_SCHED_COUNT ? schedule_names[k] : "?";
}

bool prt_optimizer_from_name(const char *name, prt_optimizer_kind *out) {
    for (int k = 0; k < PRT_OPT_COUNT; k++)
        if (strcmp(name, optimizer_names[k]) == 0) return *out = (prt_optimizer_kind)k, true;
    return false;
}

bool prt_schedule_from_name(const char *name, prt_schedule_kind *out) {
    for (int k = 0; k < PRT_SCHED_COUNT; k++)
        if (strcmp(name, schedule_names[k]) == 0) return *out = (prt_schedule_kind)k, true;
    return false;
}

void prt_solver_defaults(prt_solver *s) {
    memset(s, 0, sizeof *s);
    s->optimizer = PRT_OPT_sgd;
    s->lr = 0.1;
    s->momentum = 0.9;
    s->nesterov = false;
    s->weight_decay = 0;
    s->beta1 = 0.9;
    s->beta2 = 0.999;
    s->eps = 1e-8;
    s->rms_decay = 0.9;
    s->schedule = PRT_SCHED_constant;
    s->warmup_epochs = 0;
    s->step_epochs = 30;
    s->gamma = 0.1;
    s->min_lr = 0;
    s->label_smoothing = 0;
    s->epochs = 10;
    s->batch = 64;
}

/* ---- checks ------------------------------------------------------------ */

/* "[0, 1)"-style interval tests; NaN fails every one of them. */
static bool in_co(double x, double lo, double hi) { return x >= lo && x < hi; }

const char *prt_solver_problem(const prt_solver *s, char *buf, size_t cap) {
#define BAD(...) return snprintf(buf, cap, __VA_ARGS__), buf
    if ((unsigned)s->optimizer >= PRT_OPT_COUNT) BAD("optimizer %d is unknown", (int)s->optimizer);
    if ((unsigned)s->schedule >= PRT_SCHED_COUNT) BAD("schedule %d is unknown", (int)s->schedule);
    if (!(s->lr > 0) || !isfinite(s->lr)) BAD("lr must be > 0, got %g", s->lr);
    if (!in_co(s->momentum, 0, 1)) BAD("momentum must be in [0, 1), got %g", s->momentum);
    if (s->nesterov && s->momentum == 0) BAD("nesterov needs momentum > 0, got momentum 0");
    if (!(s->weight_decay >= 0) || !isfinite(s->weight_decay))
        BAD("weight_decay must be >= 0, got %g", s->weight_decay);
    if (!in_co(s->beta1, 0, 1)) BAD("beta1 must be in [0, 1), got %g", s->beta1);
    if (!in_co(s->beta2, 0, 1)) BAD("beta2 must be in [0, 1), got %g", s->beta2);
    if (!(s->eps > 0) || !isfinite(s->eps)) BAD("eps must be > 0, got %g", s->eps);
    if (!in_co(s->rms_decay, 0, 1)) BAD("rms_decay must be in [0, 1), got %g", s->rms_decay);
    if (!(s->step_epochs > 0) || !isfinite(s->step_epochs))
        BAD("step_epochs must be > 0, got %g", s->step_epochs);
    if (!(s->gamma > 0 && s->gamma <= 1)) BAD("gamma must be in (0, 1], got %g", s->gamma);
    if (!(s->min_lr >= 0 && s->min_lr <= s->lr)) BAD("min_lr must be in [0, lr = %g], got %g", s->lr, s->min_lr);
    if (!in_co(s->label_smoothing, 0, 1)) BAD("label_smoothing must be in [0, 1), got %g", s->label_smoothing);
    if (s->epochs < 1) BAD("epochs must be >= 1, got %lld", (long long)s->epochs);
    if (s->batch < 1) BAD("batch must be >= 1, got %lld", (long long)s->batch);
    if (!(s->warmup_epochs >= 0 && s->warmup_epochs <= (double)s->epochs))
        BAD("warmup_epochs must be in [0, epochs = %lld], got %g", (long long)s->epochs, s->warmup_epochs);
#undef BAD
    return NULL;
}

prt_status prt_solver_check(prt_context *ctx, const prt_solver *s) {
    char msg[256];
    if (prt_solver_problem(s, msg, sizeof msg)) return prt_error(ctx, PRT_ERR_INVALID, "solver.%s", msg);
    return PRT_OK;
}

/* ---- setting a field from text ----------------------------------------- */

typedef enum field_type { F_DOUBLE, F_INT, F_BOOL, F_OPTIMIZER, F_SCHEDULE } field_type;

typedef struct solver_field {
    const char *name;
    field_type type;
    size_t off;
} solver_field;

#define FIELD(name, type) {#name, type, offsetof(prt_solver, name)}
static const solver_field fields[] = {
    FIELD(optimizer, F_OPTIMIZER), FIELD(lr, F_DOUBLE),          FIELD(momentum, F_DOUBLE),
    FIELD(nesterov, F_BOOL),       FIELD(weight_decay, F_DOUBLE), FIELD(beta1, F_DOUBLE),
    FIELD(beta2, F_DOUBLE),        FIELD(eps, F_DOUBLE),          FIELD(rms_decay, F_DOUBLE),
    FIELD(schedule, F_SCHEDULE),   FIELD(warmup_epochs, F_DOUBLE), FIELD(step_epochs, F_DOUBLE),
    FIELD(gamma, F_DOUBLE),        FIELD(min_lr, F_DOUBLE),       FIELD(label_smoothing, F_DOUBLE),
    FIELD(epochs, F_INT),          FIELD(batch, F_INT),
};
#undef FIELD
#define N_FIELDS ((int)(sizeof fields / sizeof fields[0]))

/* The closest name when it is close enough to be a typo, else NULL. */
static const char *nearest(const char *s, const char *const *names, int n) {
    const char *best = NULL;
    int bd = 0;
    for (int k = 0; k < n; k++) {
        int d = prt_edit_distance(s, names[k]);
        if (!best || d < bd) best = names[k], bd = d;
    }
    int len = (int)strlen(s);
    return (best && (bd <= 2 || 2 * bd <= len) && bd < len) ? best : NULL;
}

/* "sgd, rmsprop, adam, adamw" */
static void list_names(char *buf, size_t cap, const char *const *names, int n) {
    size_t at = 0;
    buf[0] = 0;
    for (int k = 0; k < n && at < cap; k++) {
        int w = snprintf(buf + at, cap - at, "%s%s", k ? ", " : "", names[k]);
        if (w < 0) break;
        at += (size_t)w;
    }
}

static prt_status enum_error(prt_context *ctx, const char *key, const char *what, const char *value,
                             const char *const *names, int n) {
    char list[128];
    list_names(list, sizeof list, names, n);
    const char *near = nearest(value, names, n);
    if (near)
        return prt_error(ctx, PRT_ERR_INVALID, "solver.%s: unknown %s '%s' (did you mean '%s'?); expected one of %s",
                         key, what, value, near, list);
    return prt_error(ctx, PRT_ERR_INVALID, "solver.%s: unknown %s '%s'; expected one of %s", key, what, value, list);
}

static bool parse_double(const char *t, double *out) {
    char *end;
    errno = 0;
    double v = strtod(t, &end);
    if (end == t || *end || errno == ERANGE || !isfinite(v) || isspace((unsigned char)t[0])) return false;
    *out = v;
    return true;
}

static bool parse_int(const char *t, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(t, &end, 10);
    if (end == t || *end || errno == ERANGE || isspace((unsigned char)t[0])) return false;
    *out = v;
    return true;
}

static bool parse_bool(const char *t, bool *out) {
    static const char *const yes[] = {"true", "True", "TRUE", "1"}, *const no[] = {"false", "False", "FALSE", "0"};
    for (int k = 0; k < 4; k++) {
        if (strcmp(t, yes[k]) == 0) return *out = true, true;
        if (strcmp(t, no[k]) == 0) return *out = false, true;
    }
    return false;
}

prt_status prt_solver_set(prt_context *ctx, prt_solver *s, const char *key, const char *value) {
    if (!key || !value) return prt_error(ctx, PRT_ERR_USAGE, "prt_solver_set: key or value is NULL");
    if (strncmp(key, "solver.", 7) == 0) key += 7;
    const solver_field *f = NULL;
    for (int k = 0; k < N_FIELDS && !f; k++)
        if (strcmp(fields[k].name, key) == 0) f = &fields[k];
    if (!f) {
        const char *names[N_FIELDS];
        for (int k = 0; k < N_FIELDS; k++) names[k] = fields[k].name;
        const char *near = nearest(key, names, N_FIELDS);
        if (near) return prt_error(ctx, PRT_ERR_INVALID, "solver: unknown key '%s' (did you mean '%s'?)", key, near);
        return prt_error(ctx, PRT_ERR_INVALID, "solver: unknown key '%s'", key);
    }
    char *at = (char *)s + f->off;
    switch (f->type) {
    case F_DOUBLE:
        if (!parse_double(value, (double *)(void *)at))
            return prt_error(ctx, PRT_ERR_INVALID, "solver.%s: expected a number, got '%s'", key, value);
        return PRT_OK;
    case F_INT:
        if (!parse_int(value, (int64_t *)(void *)at))
            return prt_error(ctx, PRT_ERR_INVALID, "solver.%s: expected an integer, got '%s'", key, value);
        return PRT_OK;
    case F_BOOL:
        if (!parse_bool(value, (bool *)(void *)at))
            return prt_error(ctx, PRT_ERR_INVALID, "solver.%s: expected true or false, got '%s'", key, value);
        return PRT_OK;
    case F_OPTIMIZER:
        if (!prt_optimizer_from_name(value, &s->optimizer))
            return enum_error(ctx, key, "optimizer", value, optimizer_names, PRT_OPT_COUNT);
        return PRT_OK;
    case F_SCHEDULE:
        if (!prt_schedule_from_name(value, &s->schedule))
            return enum_error(ctx, key, "schedule", value, schedule_names, PRT_SCHED_COUNT);
        return PRT_OK;
    }
    return prt_error(ctx, PRT_ERR_INTERNAL, "solver.%s: unknown field type", key);
}

/* ---- learning-rate schedules ------------------------------------------- */

int64_t prt_solver_warmup_steps(const prt_solver *s, int64_t steps_per_epoch) {
    double w = s->warmup_epochs * (double)(steps_per_epoch > 0 ? steps_per_epoch : 1);
    return w > 0 && w < 9e18 ? (int64_t)llround(w) : 0;
}

double prt_lr_at(const prt_solver *s, int64_t steps_per_epoch, int64_t step) {
    const double pi = 3.14159265358979323846;
    if (steps_per_epoch < 1) steps_per_epoch = 1;
    if (step < 0) step = 0;
    int64_t warm = prt_solver_warmup_steps(s, steps_per_epoch);
    if (step < warm) return s->lr * (double)(step + 1) / (double)warm;
    switch (s->schedule) {
    case PRT_SCHED_constant:
    case PRT_SCHED_COUNT:
        break;
    case PRT_SCHED_step: {
        /* the small slack keeps step_epochs like 0.3 from landing a step early or late */
        double k = floor((double)step / (s->step_epochs * (double)steps_per_epoch) + 1e-9);
        return s->lr * pow(s->gamma, k);
    }
    case PRT_SCHED_cosine: {
        int64_t total;
        if (!prt_mul_i64(s->epochs, steps_per_epoch, &total)) total = INT64_MAX;
        double span = (double)(total - warm), t = (double)(step - warm);
        if (span <= 0) return s->lr;
        if (t >= span) return s->min_lr;
        return s->min_lr + (s->lr - s->min_lr) * (1 + cos(pi * t / span)) / 2;
    }
    }
    return s->lr;
}

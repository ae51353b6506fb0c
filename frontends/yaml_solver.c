/* The YAML `solver:` section: a mapping of training settings with the names of
 * prt_solver_set's keys (optimizer, lr, momentum, ..., epochs, batch). Each value
 * goes through prt_solver_set and the whole section through prt_solver_check, so
 * the file, `--set solver.KEY=VALUE` and the library accept the same things; the
 * messages gain the place in the file. */
#include "frontends/yaml_impl.h"
#include "ops/train_impl.h"

#include <string.h>

/* Whether prt_solver_set knows the key: one of these values suits every field
 * type (numbers and booleans take "0", the enumerations their first name). */
static bool known_key(prt_context *ctx, const char *key) {
    static const char *const probes[] = {"0", "sgd", "constant"};
    for (int k = 0; k < 3; k++) {
        prt_solver s;
        prt_solver_defaults(&s);
        if (prt_solver_set(ctx, &s, key, probes[k]) == PRT_OK) return true;
    }
    return false;
}

static prt_status located(prt_context *ctx, prt_status st, const prt_ynode *at) {
    return prt_error_prefix(ctx, st == PRT_ERR_INVALID ? PRT_ERR_SCHEMA : st, "%s:%d:%d", at->file, at->line, at->col);
}

/* The value to blame for a failed check. The problem text starts with the field
 * it is about ("warmup_epochs must be in [0, epochs = 3], got 4"): that key's
 * value if the section sets it, else the first key without which the section
 * passes (the default of the named field clashes with it), else the section.
 * Checks relate fields (min_lr <= lr, warmup_epochs <= epochs), so the settings
 * are checked together, never one at a time in file order. */
static const prt_ynode *culprit(const prt_ynode *sec, const prt_solver *s) {
    char why[256], t_why[8];
    if (!prt_solver_problem(s, why, sizeof why)) return sec;
    size_t n = strcspn(why, " ");
    for (int k = 0; k < sec->n; k++) {
        const char *key = prt_ymap_key(sec, k)->s;
        if (strlen(key) == n && !strncmp(key, why, n)) return prt_ymap_val(sec, k);
    }
    for (int k = 0; k < sec->n; k++) {
        prt_solver t;
        prt_solver_defaults(&t);
        for (int j = 0; j < sec->n; j++)
            if (j != k) (void)prt_solver_set(NULL, &t, prt_ymap_key(sec, j)->s, prt_ymap_val(sec, j)->s);
        if (!prt_solver_problem(&t, t_why, sizeof t_why)) return prt_ymap_val(sec, k);
    }
    return sec;
}

prt_status prt_ysolver_parse(prt_yload *L, const prt_ynode *sec, struct prt_solver **out) {
    prt_context *ctx = L->ctx;
    char b[160], kb[160];
    *out = NULL;
    if (sec->kind != PRT_YN_MAP && sec->kind != PRT_YN_NULL)
        return prt_yerr(ctx, sec, PRT_ERR_SCHEMA,
                        "'solver' expects a mapping of training settings (such as 'solver: {lr: 0.1, epochs: 10}'), "
                        "found %s", prt_ydescribe(sec, b, sizeof b));
    prt_solver s;
    prt_solver_defaults(&s);
    for (int k = 0; sec->kind == PRT_YN_MAP && k < sec->n; k++) {
        const prt_ynode *kn = prt_ymap_key(sec, k), *vn = prt_ymap_val(sec, k);
        if (!known_key(ctx, kn->s)) {
            prt_solver scratch = s;
            return located(ctx, prt_solver_set(ctx, &scratch, kn->s, "0"), kn);
        }
        prt_error_clear(ctx);
        if (vn->kind == PRT_YN_MAP || vn->kind == PRT_YN_SEQ || vn->kind == PRT_YN_NULL)
            return prt_yerr(ctx, vn, PRT_ERR_SCHEMA, "solver.%s: expected a value, found %s",
                            prt_yshort(kn->s, kb, sizeof kb), prt_ydescribe(vn, b, sizeof b));
        prt_status st = prt_solver_set(ctx, &s, kn->s, vn->s);
        if (st != PRT_OK) return located(ctx, st, vn);
    }
    prt_status st = prt_solver_check(ctx, &s);
    if (st != PRT_OK) return located(ctx, st, culprit(sec, &s));
    prt_solver *p = prt_malloc(ctx, sizeof *p);
    if (!p) return prt_error(ctx, PRT_ERR_NOMEM, "out of memory");
    *p = s;
    *out = p;
    return PRT_OK;
}

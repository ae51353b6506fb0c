/* Helpers shared by the operator test suites (test_ops.c, test_ops_api.c):
 * compact test-case descriptions (shapes plus attribute overrides), a small
 * deterministic RNG, and shape inference through an op's schema. */
#ifndef PARROTS_OPS_TEST_UTIL_H
#define PARROTS_OPS_TEST_UTIL_H

#include <string.h>

#include "tests/test_util.h"

#define MAX_IN 8

/* ---- test cases --------------------------------------------------------- */

typedef struct tset {
    const char *name;
    int n;          /* INTS: count */
    int64_t v[4];   /* INT, BOOL: v[0] */
    double f;       /* FLOAT */
} tset;

#define I1(nm, a) {nm, 1, {a}, 0}
#define I2(nm, a, b) {nm, 2, {a, b}, 0}
#define I4(nm, a, b, c, d) {nm, 4, {a, b, c, d}, 0}
#define FL(nm, x) {nm, 0, {0}, x}

typedef struct tcase {
    char what[96];
    int n_in;                /* data inputs */
    prt_shape in[MAX_IN];
    tset set[8];
    int n_set;
    bool training;
    bool negative;           /* all input values negative (max pooling over padding) */
} tcase;

#define MAX_CASES 64

typedef struct rng { uint64_t s; } rng;
static inline uint64_t rnext(rng *r) {
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return r->s;
}
static inline int64_t rint_(rng *r, int64_t lo, int64_t hi) { return lo + (int64_t)(rnext(r) % (uint64_t)(hi - lo + 1)); }
static inline double runif(rng *r) { return (double)(rnext(r) >> 11) / 9007199254740992.0; }

static inline tcase *add_case(tcase *cs, int *n, const char *what, int n_in, const prt_shape *in, const tset *set, int n_set) {
    ck_assert_int_lt(*n, MAX_CASES);
    tcase *c = &cs[(*n)++];
    memset(c, 0, sizeof *c);
    snprintf(c->what, sizeof c->what, "%s", what);
    c->n_in = n_in;
    for (int k = 0; k < n_in; k++) c->in[k] = in[k];
    for (int k = 0; k < n_set; k++) c->set[k] = set[k];
    c->n_set = n_set;
    return c;
}

#define CASE(what, shapes, ...)                                                                 \
    do {                                                                                        \
        prt_shape sh_[] = {UNPAREN shapes};                                                     \
        tset st_[] = {FL(NULL, 0), __VA_ARGS__}; /* [0] keeps the list non-empty */             \
        add_case(cs, &n, what, (int)(sizeof sh_ / sizeof sh_[0]), sh_, st_ + 1,                 \
                 (int)(sizeof st_ / sizeof st_[0]) - 1);                                        \
    } while (0)
/* shapes travel in parentheses so nested macros keep them one argument */
#define S(...) (__VA_ARGS__)
#define UNPAREN(...) __VA_ARGS__
#define SH4(a, b, c, d) prt_shape4(a, b, c, d)
static inline prt_shape SH(int nd, int64_t a, int64_t b, int64_t c, int64_t d) {
    int64_t v[4] = {a, b, c, d};
    return prt_shape_make(nd, v);
}


static inline void fill_attrs(const prt_op_schema *s, const tcase *tc, prt_attr *attrs) {
    for (int i = 0; i < s->n_attrs; i++) {
        attrs[i] = s->attrs[i].def;
        attrs[i].type = s->attrs[i].type;
        attrs[i].set = false;
    }
    for (int k = 0; k < tc->n_set; k++) {
        int i = prt_op_attr_index(s, tc->set[k].name);
        ck_assert_msg(i >= 0, "%s: no attribute '%s'", s->name, tc->set[k].name);
        prt_attr *a = &attrs[i];
        a->set = true;
        if (a->type == PRT_ATTR_FLOAT) a->f = tc->set[k].f;
        else {
            a->n = a->type == PRT_ATTR_INTS ? tc->set[k].n : 1;
            for (int j = 0; j < 4; j++) a->i[j] = tc->set[k].v[j];
        }
    }
}

typedef struct prepared {
    prt_infer_ctx ic;
    prt_shape in[MAX_IN], out[1], params[PRT_MAX_OP_PARAMS];
    bool present[PRT_MAX_OP_PARAMS];
    prt_attr attrs[16];
} prepared;

static inline prt_status infer(prt_context *ctx, const prt_op_schema *s, const tcase *tc, prepared *p) {
    memset(p, 0, sizeof *p);
    fill_attrs(s, tc, p->attrs);
    for (int k = 0; k < tc->n_in; k++) p->in[k] = tc->in[k];
    p->ic = (prt_infer_ctx){.ctx = ctx, .node_name = "t", .attrs = p->attrs, .n_in = tc->n_in, .in = p->in,
                            .in_dtype = PRT_F32, .n_out = 1, .out = p->out, .out_dtype = PRT_F32,
                            .n_params = s->n_params, .params = p->params, .param_present = p->present,
                            .op_name = s->name};
    return s->infer(&p->ic);
}


#endif

/* `parrots op-check OP --shape 2x3x8x8 [--attr NAME=VALUE ...]`: the op-check
 * harness (ops/gradcheck_impl.h) on any registered op, built-in or from a
 * plugin (docs/op-check.md). Exit 0 when every check that ran passed, 1 when
 * one failed, 2 for bad usage. */
#include "frontends/cli/cli_impl.h"
#include "ops/gradcheck_impl.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const CMD = "op-check";
static const char *const USAGE = "OP --shape SHAPE [--shape SHAPE ...] [options]";

/* For the help text only: the parser below handles repeated options. */
static const cli_opt help_opts[] = {
    {"--shape", CLI_STRING, "SHAPE", "a data input's shape, batch first (2x3x8x8); one per input, in order; "
                                     "SHAPE:i32 for integer labels", NULL},
    {"--attr", CLI_STRING, "NAME=VALUE", "an attribute (repeatable): 3, 1,3 (a list), 0.5, true", NULL},
    {"--seed", CLI_INT, "S", "input values and sampled elements (default 1)", NULL},
    {"--rtol", CLI_STRING, "R", "gradient tolerance: worst |fd - an| / (|fd| + |an| + 0.1 rms) (default 0.01)", NULL},
    {"--eps", CLI_STRING, "H", "finite-difference step (default 0.01)", NULL},
    {"--device", CLI_STRING, "DEV", "cpu: CPU checks only; cuda: also CUDA against CPU (default: cuda when "
                                    "a GPU is present)", NULL},
    {"--json", CLI_FLAG, NULL, "print the report as JSON", NULL},
    {NULL, CLI_FLAG, NULL, NULL, NULL},
};

static bool parse_shape(const char *text, prt_shape *s, prt_dtype *dt) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", text);
    *dt = PRT_F32;
    char *colon = strchr(buf, ':');
    if (colon) {
        *colon = 0;
        if (!strcmp(colon + 1, "i32")) *dt = PRT_I32;
        else if (strcmp(colon + 1, "f32")) return false;
    }
    s->ndim = 0;
    for (char *p = buf;;) {
        if (*p < '0' || *p > '9' || s->ndim == PRT_MAX_DIMS) return false;
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (errno || v < 1 || v > (1ll << 31)) return false;
        s->d[s->ndim++] = v;
        if (!*end) return true;
        if (*end != 'x') return false;
        p = end + 1;
    }
}

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

static void json_shape(FILE *f, const prt_shape *s) {
    fputc('[', f);
    for (int i = 0; i < s->ndim; i++) fprintf(f, "%s%lld", i ? ", " : "", (long long)s->d[i]);
    fputc(']', f);
}

static bool measured(prt_gradcheck_check c, const prt_gradcheck_item *it) {
    return c != PRT_GRADCHECK_FORWARD && it->result != PRT_GC_SKIPPED && it->checked > 0;
}

static void print_json(const prt_gradcheck_spec *sp, const prt_gradcheck_report *rep, long long seed) {
    printf("{\"op\": ");
    json_str(stdout, rep->op);
    printf(", \"inputs\": [");
    for (int k = 0; k < sp->n_in; k++) {
        printf("%s", k ? ", " : "");
        json_shape(stdout, &sp->in[k]);
    }
    printf("], \"outputs\": [");
    for (int k = 0; k < rep->n_out; k++) {
        printf("%s", k ? ", " : "");
        json_shape(stdout, &rep->out[k]);
    }
    printf("], \"seed\": %lld, \"passed\": %s, \"checks\": [", seed, prt_gradcheck_passed(rep) ? "true" : "false");
    for (int c = 0; c < PRT_GRADCHECK_N; c++) {
        const prt_gradcheck_item *it = &rep->item[c];
        printf("%s\n  {\"check\": \"%s\", \"result\": \"%s\", ", c ? "," : "", prt_gradcheck_check_name(c),
               prt_gradcheck_result_name(it->result));
        if (measured(c, it)) {
            if (isfinite(it->worst)) printf("\"worst_error\": %.6g, ", it->worst);
            else printf("\"worst_error\": null, ");
            printf("\"tolerance\": %.6g, ", it->tol);
        } else {
            printf("\"worst_error\": null, \"tolerance\": null, ");
        }
        printf("\"checked\": %lld, \"skipped_elements\": %lld, \"note\": ", (long long)it->checked,
               (long long)it->skipped);
        json_str(stdout, it->note);
        printf("}");
    }
    printf("\n]}\n");
}

static void print_table(const prt_gradcheck_spec *sp, const prt_gradcheck_report *rep, long long seed) {
    char b[128];
    printf("op-check %s: inputs", rep->op);
    for (int k = 0; k < sp->n_in; k++) printf(" %s", prt_shape_str(&sp->in[k], b, sizeof b));
    printf(", outputs");
    for (int k = 0; k < rep->n_out; k++) printf(" %s", prt_shape_str(&rep->out[k], b, sizeof b));
    printf(", seed %lld\n\n", seed);
    printf("%-12s %-8s %-12s %-10s %s\n", "check", "result", "worst error", "tolerance", "note");
    int counts[3] = {0};
    for (int c = 0; c < PRT_GRADCHECK_N; c++) {
        const prt_gradcheck_item *it = &rep->item[c];
        char w[32] = "-", t[32] = "-";
        if (measured(c, it)) {
            snprintf(w, sizeof w, "%.3g", it->worst);
            snprintf(t, sizeof t, "%.3g", it->tol);
        }
        counts[it->result]++;
        printf("%-12s %-8s %-12s %-10s %s\n", prt_gradcheck_check_name(c), prt_gradcheck_result_name(it->result), w, t,
               it->note);
    }
    printf("\n%s: %s (%d passed, %d failed, %d skipped)\n", rep->op,
           prt_gradcheck_passed(rep) ? "passed" : "FAILED", counts[PRT_GC_PASSED], counts[PRT_GC_FAILED],
           counts[PRT_GC_SKIPPED]);
}

int cli_op_check(int argc, char **argv) {
    static prt_gradcheck_spec spec; /* large; one command per process */
    memset(&spec, 0, sizeof spec);
    const char *op = NULL, *device = NULL;
    long long seed = 1;
    bool json = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            cli_print_help(stdout, CMD, USAGE, help_opts);
            printf("\nChecks: forward, fast-vs-ref, gradient (against central differences), in-place, cuda-vs-cpu;\n"
                   "exit 0 when every check that ran passed, 1 when one failed, 2 for bad usage.\n");
            return CLI_OK;
        }
        if (!strcmp(a, "--json")) {
            json = true;
            continue;
        }
        if (a[0] == '-' && a[1] == '-') {
            const cli_opt *o = NULL;
            for (const cli_opt *c = help_opts; c->name; c++)
                if (!strcmp(c->name, a)) o = c;
            if (!o) {
                const char *best = NULL;
                int bestd = 3;
                for (const cli_opt *c = help_opts; c->name; c++) {
                    int d = prt_edit_distance(a, c->name);
                    if (d < bestd) bestd = d, best = c->name;
                }
                if (best) fprintf(stderr, "parrots %s: unknown option '%s' (did you mean '%s'?)\n", CMD, a, best);
                else fprintf(stderr, "parrots %s: unknown option '%s' (see 'parrots %s --help')\n", CMD, a, CMD);
                return CLI_USAGE;
            }
            if (i + 1 >= argc) {
                fprintf(stderr, "parrots %s: option '%s' needs a value (%s)\n", CMD, a, o->arg);
                return CLI_USAGE;
            }
            const char *v = argv[++i];
            if (!strcmp(a, "--shape")) {
                if (spec.n_in == PRT_GRADCHECK_MAX_IN) {
                    fprintf(stderr, "parrots %s: at most %d --shape options\n", CMD, PRT_GRADCHECK_MAX_IN);
                    return CLI_USAGE;
                }
                if (!parse_shape(v, &spec.in[spec.n_in], &spec.in_dtype[spec.n_in])) {
                    fprintf(stderr,
                            "parrots %s: --shape '%s': expected sizes like 2x3x8x8 (the batch first, 1 to %d "
                            "dimensions), optionally :i32\n",
                            CMD, v, PRT_MAX_DIMS);
                    return CLI_USAGE;
                }
                spec.n_in++;
            } else if (!strcmp(a, "--attr")) {
                const char *eq = strchr(v, '=');
                if (!eq || eq == v) {
                    fprintf(stderr, "parrots %s: --attr '%s': expected NAME=VALUE\n", CMD, v);
                    return CLI_USAGE;
                }
                if (spec.n_attrs == PRT_GRADCHECK_MAX_ATTRS) {
                    fprintf(stderr, "parrots %s: at most %d --attr options\n", CMD, PRT_GRADCHECK_MAX_ATTRS);
                    return CLI_USAGE;
                }
                /* the name is the argument up to '=': cut it there (argv is ours to edit) */
                argv[i][eq - v] = '\0';
                spec.attr_name[spec.n_attrs] = argv[i];
                spec.attr_value[spec.n_attrs++] = eq + 1;
            } else if (!strcmp(a, "--seed")) {
                char *end;
                errno = 0;
                seed = strtoll(v, &end, 10);
                if (errno || end == v || *end || seed < 1) {
                    fprintf(stderr, "parrots %s: --seed '%s': expected a positive integer\n", CMD, v);
                    return CLI_USAGE;
                }
            } else if (!strcmp(a, "--rtol") || !strcmp(a, "--eps")) {
                char *end;
                double x = strtod(v, &end);
                if (end == v || *end || !(x > 0) || !isfinite(x)) {
                    fprintf(stderr, "parrots %s: %s '%s': expected a positive number\n", CMD, a, v);
                    return CLI_USAGE;
                }
                *(!strcmp(a, "--rtol") ? &spec.rtol : &spec.eps) = x;
            } else {
                device = v;
            }
            continue;
        }
        if (op) {
            fprintf(stderr, "parrots %s: unexpected argument '%s' (usage: parrots %s %s)\n", CMD, a, CMD, USAGE);
            return CLI_USAGE;
        }
        op = a;
    }
    if (!op) {
        fprintf(stderr, "parrots %s: missing argument (usage: parrots %s %s)\n", CMD, CMD, USAGE);
        return CLI_USAGE;
    }
    if (device && strcmp(device, "cpu") && strcmp(device, "cuda")) {
        fprintf(stderr, "parrots %s: --device '%s': expected cpu or cuda\n", CMD, device);
        return CLI_USAGE;
    }
    spec.seed = (uint64_t)seed;
    spec.no_cuda = device && !strcmp(device, "cpu");
    prt_context *ctx;
    int start_rc = cli_start(CMD, NULL, false, &ctx);
    if (start_rc != CLI_OK) return start_rc;
    static prt_gradcheck_report rep;
    prt_status st = prt_op_gradcheck(ctx, op, &spec, &rep);
    if (st != PRT_OK) {
        int rc = cli_fail(CMD, ctx, st);
        prt_context_destroy(ctx);
        return rc;
    }
    if (json) print_json(&spec, &rep, seed);
    else print_table(&spec, &rep, seed);
    prt_context_destroy(ctx);
    return prt_gradcheck_passed(&rep) ? CLI_OK : CLI_FAIL;
}

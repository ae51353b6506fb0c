/* `parrots onnx-test DIR...`: runs ONNX backend test cases
 * (prt_onnx_test_case, frontends/onnx/onnx_backend_test.c) and prints a
 * pass/fail/unsupported table, or JSON with --json. */
#define _GNU_SOURCE
#include "frontends/cli/cli_impl.h"
#include "frontends/onnx/onnx_api.h"

#include <stdlib.h>
#include <string.h>

int cli_onnx_test(int argc, char **argv);

/* The case's folder name (trailing slashes dropped); caller frees. */
static char *base_name(const char *path) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    const char *s = path + n;
    while (s > path && s[-1] != '/') s--;
    return strndup(s, (size_t)(path + n - s));
}

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

typedef struct case_rec {
    char *name, *why;
    prt_onnx_case_result r;
} case_rec;

static void json_list(FILE *f, const char *key, const case_rec *v, int n, prt_onnx_case_result want) {
    fprintf(f, ",\n  \"%s\": [", key);
    bool first = true;
    for (int k = 0; k < n; k++) {
        if (v[k].r != want) continue;
        fprintf(f, "%s\n    {\"name\": ", first ? "" : ",");
        json_str(f, v[k].name);
        fprintf(f, ", \"reason\": ");
        json_str(f, v[k].why);
        fputc('}', f);
        first = false;
    }
    fprintf(f, "%s]", first ? "" : "\n  ");
}

int cli_onnx_test(int argc, char **argv) {
    bool json = false, reference = false, verbose = false;
    const cli_opt opts[] = {
        {"--json", CLI_FLAG, NULL, "print the results as JSON", &json},
        {"--reference", CLI_FLAG, NULL, "use the plain C reference kernels", &reference},
        {"--verbose", CLI_FLAG, NULL, "debug logging", &verbose},
        {0},
    };
    const char **pos = calloc((size_t)argc + 1, sizeof *pos);
    case_rec *recs = calloc((size_t)argc + 1, sizeof *recs);
    if (!pos || !recs) {
        free(pos);
        free(recs);
        fprintf(stderr, "parrots onnx-test: out of memory\n");
        return CLI_FAIL;
    }
    int rc = cli_parse("onnx-test", "[--json] [--reference] CASE_DIR...", opts, argc, argv, pos, argc, 1);
    if (rc) {
        free(pos);
        free(recs);
        return rc < 0 ? CLI_OK : rc;
    }
    int n = 0;
    while (n < argc && pos[n]) n++;
    prt_context *ctx;
    if ((rc = cli_start("onnx-test", NULL, verbose, &ctx)) != CLI_OK) {
        free(pos);
        free(recs);
        return rc;
    }
    int counts[3] = {0, 0, 0};
    static const char *const label[3] = {"pass", "FAIL", "unsupported"};
    for (int k = 0; k < n; k++) {
        char why[2048] = "";
        prt_onnx_case_result r = prt_onnx_test_case(ctx, pos[k], reference, why, sizeof why);
        prt_error_clear(ctx);
        recs[k] = (case_rec){.name = base_name(pos[k]), .why = strdup(why), .r = r};
        counts[r]++;
        if (!json) {
            printf("%-12s %s", label[r], recs[k].name ? recs[k].name : "?");
            if (r != PRT_ONNX_PASS) printf("  (%s)", why);
            printf("\n");
        }
    }
    if (json) {
        printf("{\n  \"passed\": %d,\n  \"failed\": %d,\n  \"unsupported\": %d,\n  \"rtol\": %g,\n  \"atol\": %g", counts[0],
               counts[1], counts[2], PRT_ONNX_TEST_RTOL, PRT_ONNX_TEST_ATOL);
        json_list(stdout, "failing", recs, n, PRT_ONNX_FAIL);
        json_list(stdout, "unsupported_cases", recs, n, PRT_ONNX_UNSUPPORTED);
        printf("\n}\n");
    } else {
        printf("total: %d cases, %d passed, %d failed, %d unsupported (rtol %g, atol %g)\n", n, counts[0], counts[1],
               counts[2], PRT_ONNX_TEST_RTOL, PRT_ONNX_TEST_ATOL);
    }
    for (int k = 0; k < n; k++) {
        free(recs[k].name);
        free(recs[k].why);
    }
    free(recs);
    free(pos);
    prt_context_destroy(ctx);
    return counts[1] ? CLI_FAIL : CLI_OK;
}

/* `parrots import MODEL.onnx -o NET.yaml [--weights W]`: an ONNX model as a
 * YAML network and a weights file (default: NET.yaml with .prtw in place of
 * .yaml), for `parrots eval NET.yaml --weights W` and friends. */
#include "frontends/cli/cli_impl.h"
#include "frontends/onnx/onnx_api.h"

#include <stdlib.h>
#include <string.h>

int cli_import(int argc, char **argv);

int cli_import(int argc, char **argv) {
    bool verbose = false;
    const char *weights = NULL, *out = NULL;
    const cli_opt opts[] = {
        {"--output", CLI_STRING, "FILE", "the YAML network to write (also -o FILE)", &out},
        {"--weights", CLI_STRING, "FILE", "the weights file to write (default: the YAML's name with .prtw)", &weights},
        {"--verbose", CLI_FLAG, NULL, "debug logging", &verbose},
        {0},
    };
    char **args = calloc((size_t)argc + 1, sizeof *args);
    if (!args) {
        fprintf(stderr, "parrots import: out of memory\n");
        return CLI_FAIL;
    }
    for (int i = 0; i < argc; i++) args[i] = !strcmp(argv[i], "-o") ? "--output" : argv[i];
    const char *pos[1];
    int rc = cli_parse("import", "MODEL.onnx -o NET.yaml [--weights FILE]", opts, argc, args, pos, 1, 1);
    free(args);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (!out) {
        fprintf(stderr, "parrots import: missing -o NET.yaml (usage: parrots import MODEL.onnx -o NET.yaml [--weights "
                        "FILE])\n");
        return CLI_USAGE;
    }
    char wbuf[4096];
    if (!weights) {
        size_t n = strlen(out);
        size_t stem = n >= 5 && !strcmp(out + n - 5, ".yaml") ? n - 5 : n;
        if (stem + 6 > sizeof wbuf) {
            fprintf(stderr, "parrots import: the output name is too long\n");
            return CLI_USAGE;
        }
        memcpy(wbuf, out, stem);
        memcpy(wbuf + stem, ".prtw", 6);
        weights = wbuf;
    }
    prt_context *ctx;
    if ((rc = cli_start("import", NULL, verbose, &ctx)) != CLI_OK) return rc;
    prt_status s = prt_onnx_convert(ctx, pos[0], out, weights);
    if (s == PRT_OK) printf("wrote %s and %s\n", out, weights);
    rc = s == PRT_OK ? CLI_OK : cli_fail("import", ctx, s);
    prt_context_destroy(ctx);
    return rc;
}

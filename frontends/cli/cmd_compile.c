/* `parrots compile` and `parrots disasm`: the verified bytecode program of a
 * network; `compile -o FILE.pb` saves it (docs/program-format.md). */
#include "frontends/cli/cli_impl.h"
#include "frontends/program_file_api.h"

#include <string.h>

static int compile_common(const char *cmd, int argc, char **argv, bool listing) {
    bool verbose = false;
    long long batch = 1;
    const char *output = NULL;
    const cli_opt opts[] = {
        {"--batch", CLI_INT, "N", "batch size the program is compiled for (default 1)", &batch},
        {"--output", CLI_STRING, "FILE.pb", "save the program (also -o; run it with parrots run FILE.pb)", &output},
        {"--verbose", CLI_FLAG, NULL, "debug logging", &verbose},
        {0},
    };
    /* -o is --output: the shared parser knows long options only */
    char *args[64];
    if (argc > 64) {
        fprintf(stderr, "parrots %s: too many arguments\n", cmd);
        return CLI_USAGE;
    }
    for (int i = 0; i < argc; i++) args[i] = !strcmp(argv[i], "-o") ? "--output" : argv[i];
    const char *pos[1];
    int rc = cli_parse(cmd, "[--batch N] [-o FILE.pb] NET.yaml", opts, argc, args, pos, 1, 1);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (batch < 1) {
        fprintf(stderr, "parrots %s: --batch must be at least 1\n", cmd);
        return CLI_USAGE;
    }
    prt_context *ctx;
    if ((rc = cli_start(cmd, NULL, verbose, &ctx)) != CLI_OK) return rc;
    prt_graph *g = NULL;
    prt_program *p = NULL;
    double t0 = prt_now();
    prt_status s = cli_load(ctx, pos[0], &g);
    if (s == PRT_OK) s = prt_vm_compile(g, batch, &p);
    double t1 = prt_now();
    if (s == PRT_OK && listing) s = prt_vm_disasm(ctx, p, stdout);
    if (s == PRT_OK && output) s = prt_program_save(ctx, output, p);
    if (s != PRT_OK) {
        rc = cli_fail(cmd, ctx, s);
    } else {
        if (!listing)
            printf("%s: %d instructions for batch %lld, verified, compiled in %.1f ms\n", pos[0],
                   prt_program_n_instructions(p), batch, 1e3 * (t1 - t0));
        if (output) printf("saved %s\n", output);
        rc = CLI_OK;
    }
    prt_program_destroy(ctx, p);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
    return rc;
}

int cli_compile(int argc, char **argv) { return compile_common("compile", argc, argv, false); }
int cli_disasm(int argc, char **argv) { return compile_common("disasm", argc, argv, true); }

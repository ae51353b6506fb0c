/* `parrots compile` and `parrots disasm`: the verified bytecode program of a network. */
#include "frontends/cli/cli_impl.h"

static int compile_common(const char *cmd, int argc, char **argv, bool listing) {
    bool verbose = false;
    long long batch = 1;
    const cli_opt opts[] = {
        {"--batch", CLI_INT, "N", "batch size the program is compiled for (default 1)", &batch},
        {"--verbose", CLI_FLAG, NULL, "debug logging", &verbose},
        {0},
    };
    const char *pos[1];
    int rc = cli_parse(cmd, "[--batch N] NET.yaml", opts, argc, argv, pos, 1, 1);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (batch < 1) {
        fprintf(stderr, "parrots %s: --batch must be at least 1\n", cmd);
        return CLI_USAGE;
    }
    prt_context *ctx;
    if (cli_context(verbose, &ctx) != PRT_OK) return CLI_FAIL;
    prt_graph *g = NULL;
    prt_program *p = NULL;
    double t0 = prt_now();
    prt_status s = cli_load(ctx, pos[0], &g);
    if (s == PRT_OK) s = prt_vm_compile(g, batch, &p);
    double t1 = prt_now();
    if (s == PRT_OK && listing) s = prt_vm_disasm(ctx, p, stdout);
    if (s != PRT_OK) {
        rc = cli_fail(cmd, ctx, s);
    } else {
        if (!listing)
            printf("%s: %d instructions for batch %lld, verified, compiled in %.1f ms\n", pos[0],
                   prt_program_n_instructions(p), batch, 1e3 * (t1 - t0));
        rc = CLI_OK;
    }
    prt_program_destroy(ctx, p);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
    return rc;
}

int cli_compile(int argc, char **argv) { return compile_common("compile", argc, argv, false); }
int cli_disasm(int argc, char **argv) { return compile_common("disasm", argc, argv, true); }

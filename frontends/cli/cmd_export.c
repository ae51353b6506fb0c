/* `parrots export NET.yaml [--weights W] -o model.onnx`: an inference network
 * and its weights as an ONNX model (opset 13; frontends/onnx/onnx_export.c).
 * Without --weights the parameters are the network's initial values (the
 * context's seed), which is enough to check a deployment path end to end. */
#include "frontends/cli/cli_impl.h"
#include "frontends/onnx/onnx_api.h"
#include "frontends/weights_api.h"

#include <stdlib.h>
#include <string.h>

int cli_export(int argc, char **argv);

int cli_export(int argc, char **argv) {
    bool verbose = false;
    const char *weights = NULL, *out = NULL;
    const cli_opt opts[] = {
        {"--weights", CLI_STRING, "FILE", "trained weights (default: the network's initial values)", &weights},
        {"--output", CLI_STRING, "FILE", "the ONNX model to write (also -o FILE)", &out},
        {"--verbose", CLI_FLAG, NULL, "debug logging", &verbose},
        {0},
    };
    /* cli_parse takes long options only: accept -o FILE by rewriting it */
    char **args = calloc((size_t)argc + 1, sizeof *args);
    if (!args) {
        fprintf(stderr, "parrots export: out of memory\n");
        return CLI_FAIL;
    }
    for (int i = 0; i < argc; i++) args[i] = !strcmp(argv[i], "-o") ? "--output" : argv[i];
    const char *pos[1];
    int rc = cli_parse("export", "NET.yaml [--weights FILE] -o MODEL.onnx", opts, argc, args, pos, 1, 1);
    free(args);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (!out) {
        fprintf(stderr, "parrots export: missing -o MODEL.onnx (usage: parrots export NET.yaml [--weights FILE] -o "
                        "MODEL.onnx)\n");
        return CLI_USAGE;
    }
    prt_context *ctx;
    if ((rc = cli_start("export", NULL, verbose, &ctx)) != CLI_OK) return rc;
    prt_status s = PRT_OK;
    prt_graph *g = NULL;
    prt_program *p = NULL;
    prt_vm *vm = NULL;
    prt_weights *w = NULL;
    PRT_CHECK_GOTO(cli_load(ctx, pos[0], &g), s, done);
    PRT_CHECK_GOTO(prt_vm_compile(g, 1, &p), s, done);
    PRT_CHECK_GOTO(prt_vm_create(ctx, p, prt_cpu_device(ctx), NULL, &vm), s, done);
    PRT_CHECK_GOTO(cli_load_weights(ctx, pos[0], vm), s, done);
    if (weights) {
        PRT_CHECK_GOTO(prt_weights_read(ctx, weights, &w), s, done);
        PRT_CHECK_GOTO(prt_weights_apply(ctx, w, g, vm), s, done);
    }
    PRT_CHECK_GOTO(prt_onnx_export(ctx, g, vm, out), s, done);
    printf("wrote %s (ONNX opset %d, %d nodes)\n", out, PRT_ONNX_EXPORT_OPSET, g->n_nodes);
done:
    rc = s == PRT_OK ? CLI_OK : cli_fail("export", ctx, s);
    prt_weights_destroy(ctx, w);
    prt_vm_destroy(vm);
    prt_program_destroy(ctx, p);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
    return rc;
}

/* An application against the installed libparrots.so (tests/cli/plugin_sdk.sh):
 * loads a YAML network through the public API, prints "app: ok" or the error. */
#include <stdio.h>

#include <parrots/parrots.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: app NET.yaml\n");
        return 2;
    }
    prt_context *ctx = NULL;
    prt_graph *g = NULL;
    prt_status st = prt_context_create(NULL, &ctx);
    if (st == PRT_OK) st = prt_graph_load_yaml(ctx, argv[1], &g);
    if (st != PRT_OK)
        fprintf(stderr, "app: %s: %s\n", prt_status_str(st), ctx ? prt_last_error(ctx) : "");
    else
        printf("app: ok\n");
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
    return st == PRT_OK ? 0 : 1;
}

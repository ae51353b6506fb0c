/* `parrots`: the command-line entry point and the command table. */
#include "frontends/cli/cli_impl.h"

#include <string.h>

/* ONNX commands (frontends/cli/cmd_onnx_test.c, cmd_export.c, cmd_import.c) */
int cli_onnx_test(int argc, char **argv);
int cli_export(int argc, char **argv);
int cli_import(int argc, char **argv);
/* frontends/cli/cmd_opcheck.c */
int cli_op_check(int argc, char **argv);

typedef struct cli_command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} cli_command;

static const cli_command commands[] = {
    {"check", cli_check, "validate a network and print its layers, parameters and FLOPs"},
    {"compile", cli_compile, "compile a network to a verified bytecode program and summarise it"},
    {"disasm", cli_disasm, "print the bytecode program of a network"},
    {"run", cli_run, "run a network forward on a batch and time it"},
    {"train", cli_train, "train a network on a dataset (Fashion-MNIST by default)"},
    {"eval", cli_eval, "measure the test accuracy of trained weights"},
    {"plan", cli_plan, "plan the memory of a forward pass or training step without running it"},
    {"export", cli_export, "write an inference network and its weights as an ONNX model"},
    {"import", cli_import, "convert an ONNX model to a YAML network and a weights file"},
    {"onnx-test", cli_onnx_test, "run ONNX backend test cases (model.onnx + test_data_set_*) and compare outputs"},
    {"timeline-summary", cli_timeline_summary, "summarise a training timeline: compute, allreduce, overlap"},
    {"profile", cli_profile, "measure per-op times of a network's step and fit a profile for simulate"},
    {"simulate", cli_simulate, "predict data-parallel step time and scaling efficiency on N GPUs from a profile"},
    {"op-check", cli_op_check, "check an op (built-in or plugin): forward, gradient, in-place, CUDA against CPU"},
};
#define N_COMMANDS ((int)(sizeof commands / sizeof commands[0]))

static void usage(FILE *f) {
    fprintf(f,
            "usage: parrots COMMAND [options] NET.yaml\n\n"
            "Parrots compiles networks written as YAML graphs to verified bytecode programs and runs them.\n\n"
            "commands:\n");
    for (int i = 0; i < N_COMMANDS; i++) fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(f,
            "\n'parrots COMMAND --help' describes a command's options.\n"
            "Exit status: 0 success, 1 runtime failure, 2 bad usage or input.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return CLI_OK;
    }
    if (!strcmp(cmd, "--version")) {
        printf("parrots %d.%d.%d\n", PRT_VERSION_MAJOR, PRT_VERSION_MINOR, PRT_VERSION_PATCH);
        return CLI_OK;
    }
    for (int i = 0; i < N_COMMANDS; i++) {
        if (strcmp(cmd, commands[i].name)) continue;
        int n = cli_take_plugins(cmd, argc - 2, argv + 2);
        return n < 0 ? CLI_USAGE : commands[i].fn(n, argv + 2);
    }
    const char *best = NULL;
    int bestd = 3;
    for (int i = 0; i < N_COMMANDS; i++) {
        int d = prt_edit_distance(cmd, commands[i].name);
        if (d < bestd) bestd = d, best = commands[i].name;
    }
    if (best)
        fprintf(stderr, "parrots: unknown command '%s' (did you mean '%s'?)\n", cmd, best);
    else
        fprintf(stderr, "parrots: unknown command '%s'; 'parrots --help' lists the commands\n", cmd);
    return CLI_USAGE;
}

/* The `parrots` command line: one function per command, a shared option parser. */
#ifndef PARROTS_CLI_IMPL_H
#define PARROTS_CLI_IMPL_H

#include "vm/vm_api.h"

/* Exit codes: 0 success, 1 runtime failure, 2 bad usage or input. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

typedef enum cli_opt_kind { CLI_FLAG, CLI_INT, CLI_STRING } cli_opt_kind;

typedef struct cli_opt {
    const char *name;  /* "--batch" */
    cli_opt_kind kind;
    const char *arg;   /* "N" for the help text */
    const char *help;
    void *dest;        /* bool*, long long*, const char** */
} cli_opt;

/* Parses argv (after the command name) into opts; at most max_pos positionals go
 * to pos[]. Prints the problem to stderr and returns CLI_USAGE on bad usage, or -1
 * after printing help for --help. */
int cli_parse(const char *cmd, const char *usage, const cli_opt *opts, int argc, char **argv,
              const char **pos, int max_pos, int min_pos);
void cli_print_help(FILE *f, const char *cmd, const char *usage, const cli_opt *opts);

/* Reports ctx's last error as "parrots CMD: message" and maps the status to an exit code. */
int cli_fail(const char *cmd, prt_context *ctx, prt_status st);
/* A context for the command (log level from --verbose/--quiet flags). */
prt_status cli_context(bool verbose, prt_context **out);
/* Loads the network named on the command line. */
prt_status cli_load(prt_context *ctx, const char *path, prt_graph **out);

int cli_check(int argc, char **argv);
int cli_compile(int argc, char **argv);
int cli_disasm(int argc, char **argv);
int cli_run(int argc, char **argv);

#endif

/* Option parsing and the helpers every command shares. */
#include "frontends/cli/cli_impl.h"
#include "frontends/onnx/onnx_api.h"
#include "ops/plugin_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void cli_print_help(FILE *f, const char *cmd, const char *usage, const cli_opt *opts) {
    fprintf(f, "usage: parrots %s %s\n\noptions:\n", cmd, usage);
    for (const cli_opt *o = opts; o->name; o++) {
        char left[64];
        snprintf(left, sizeof left, "%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        fprintf(f, "  %-22s %s\n", left, o->help);
    }
    /* main() takes --plugin out of every command's arguments (cli_take_plugins) */
    if (strcmp(cmd, "timeline-summary"))
        fprintf(f, "  %-22s %s\n", "--plugin PATH", "load an operator plugin, or every *.so of a directory "
                "(repeatable; after PARROTS_PLUGIN_PATH's)");
    fprintf(f, "  %-22s %s\n", "--help", "show this help");
}

static const cli_opt *find_opt(const cli_opt *opts, const char *name) {
    for (const cli_opt *o = opts; o->name; o++)
        if (!strcmp(o->name, name)) return o;
    return NULL;
}

int cli_parse(const char *cmd, const char *usage, const cli_opt *opts, int argc, char **argv,
              const char **pos, int max_pos, int min_pos) {
    int npos = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            cli_print_help(stdout, cmd, usage, opts);
            return -1;
        }
        if (a[0] == '-' && a[1] == '-') {
            char name[64];
            const char *eq = strchr(a, '=');
            size_t len = eq ? (size_t)(eq - a) : strlen(a);
            if (len >= sizeof name) len = sizeof name - 1;
            memcpy(name, a, len);
            name[len] = '\0';
            const cli_opt *o = find_opt(opts, name);
            if (!o) {
                const char *best = NULL;
                int bestd = 3;
                for (const cli_opt *c = opts; c->name; c++) {
                    int d = prt_edit_distance(name, c->name);
                    if (d < bestd) bestd = d, best = c->name;
                }
                if (best)
                    fprintf(stderr, "parrots %s: unknown option '%s' (did you mean '%s'?)\n", cmd, name, best);
                else
                    fprintf(stderr, "parrots %s: unknown option '%s' (see 'parrots %s --help')\n", cmd, name, cmd);
                return CLI_USAGE;
            }
            if (o->kind == CLI_FLAG) {
                if (eq) {
                    fprintf(stderr, "parrots %s: option '%s' takes no value\n", cmd, name);
                    return CLI_USAGE;
                }
                *(bool *)o->dest = true;
                continue;
            }
            const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
            if (!val) {
                fprintf(stderr, "parrots %s: option '%s' needs a value (%s)\n", cmd, name, o->arg);
                return CLI_USAGE;
            }
            if (o->kind == CLI_STRING) {
                *(const char **)o->dest = val;
            } else {
                char *end;
                errno = 0;
                long long v = strtoll(val, &end, 10);
                if (errno || end == val || *end || v < 0) {
                    fprintf(stderr, "parrots %s: option '%s' expects a non-negative integer, got '%s'\n", cmd,
                            name, val);
                    return CLI_USAGE;
                }
                *(long long *)o->dest = v;
            }
            continue;
        }
        if (npos >= max_pos) {
            fprintf(stderr, "parrots %s: unexpected argument '%s' (usage: parrots %s %s)\n", cmd, a, cmd, usage);
            return CLI_USAGE;
        }
        pos[npos++] = a;
    }
    if (npos < min_pos) {
        fprintf(stderr, "parrots %s: missing argument (usage: parrots %s %s)\n", cmd, cmd, usage);
        return CLI_USAGE;
    }
    for (int k = npos; k < max_pos; k++) pos[k] = NULL;
    return CLI_OK;
}

int cli_fail(const char *cmd, prt_context *ctx, prt_status st) {
    const char *msg = ctx ? prt_last_error(ctx) : "";
    fprintf(stderr, "parrots %s: %s\n", cmd, *msg ? msg : prt_status_str(st));
    return prt_status_exit_code(st) == 2 ? CLI_USAGE : CLI_FAIL;
}

prt_status cli_context(bool verbose, prt_context **out) {
    prt_context_options o = {.struct_size = sizeof o, .log_level = verbose ? PRT_LOG_DEBUG : PRT_LOG_INFO};
    prt_status st = prt_context_create(&o, out);
    if (st != PRT_OK) fprintf(stderr, "parrots: cannot create a context: %s\n", prt_status_str(st));
    return st;
}

int cli_start(const char *cmd, const prt_context_options *opts, bool verbose, prt_context **out) {
    *out = NULL;
    prt_context_options o = {.struct_size = sizeof o, .log_level = verbose ? PRT_LOG_DEBUG : PRT_LOG_INFO};
    prt_context *ctx;
    prt_status st = prt_context_create(opts ? opts : &o, &ctx);
    if (st != PRT_OK) {
        fprintf(stderr, "parrots %s: cannot create a context: %s\n", cmd, prt_status_str(st));
        return CLI_FAIL;
    }
    st = prt_plugin_load_path(ctx, getenv("PARROTS_PLUGIN_PATH"));
    if (st != PRT_OK) {
        /* a plugin that does not load is bad input, whatever the status */
        fprintf(stderr, "parrots %s: %s\n", cmd, prt_last_error(ctx));
        prt_context_destroy(ctx);
        return CLI_USAGE;
    }
    *out = ctx;
    return CLI_OK;
}

int cli_take_plugins(const char *cmd, int argc, char **argv) {
    int n = 0;
    for (int i = 0; i < argc; i++) {
        const char *val = NULL;
        if (!strcmp(argv[i], "--plugin")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "parrots %s: option '--plugin' needs a value (PATH)\n", cmd);
                return -1;
            }
            val = argv[++i];
        } else if (!strncmp(argv[i], "--plugin=", 9)) {
            val = argv[i] + 9;
        } else {
            argv[n++] = argv[i];
            continue;
        }
        if (!val[0] || strchr(val, ':')) {
            fprintf(stderr, "parrots %s: --plugin '%s': expected the path of a plugin file or directory (without "
                    "':')\n", cmd, val);
            return -1;
        }
        /* the environment carries the list to the command's context and to
         * the processes it starts, without a global of our own */
        const char *old = getenv("PARROTS_PLUGIN_PATH");
        size_t len = (old ? strlen(old) + 1 : 0) + strlen(val) + 1;
        char *list = malloc(len);
        if (!list) {
            fprintf(stderr, "parrots %s: out of memory\n", cmd);
            return -1;
        }
        snprintf(list, len, "%s%s%s", old && old[0] ? old : "", old && old[0] ? ":" : "", val);
        int rc = setenv("PARROTS_PLUGIN_PATH", list, 1);
        free(list);
        if (rc != 0) {
            fprintf(stderr, "parrots %s: cannot set PARROTS_PLUGIN_PATH\n", cmd);
            return -1;
        }
    }
    if (n < argc) argv[n] = NULL;
    return n;
}

static bool is_onnx(const char *path) {
    size_t n = strlen(path);
    return n >= 5 && !strcmp(path + n - 5, ".onnx");
}

/* A path ending in .onnx is an ONNX model; anything else a YAML network. */
prt_status cli_load(prt_context *ctx, const char *path, prt_graph **out) {
    if (is_onnx(path)) return prt_onnx_load(ctx, path, out);
    return prt_graph_load_yaml(ctx, path, out);
}

/* The values an ONNX model carries (its initializers) into vm; YAML networks
 * carry none. */
prt_status cli_load_weights(prt_context *ctx, const char *path, prt_vm *vm) {
    if (!is_onnx(path)) return PRT_OK;
    prt_onnx_model *m;
    PRT_CHECK(prt_onnx_import(ctx, path, &m));
    prt_status st = prt_onnx_apply(ctx, m, vm);
    prt_onnx_model_destroy(ctx, m);
    return st;
}

int cli_parse_fuse(const char *cmd, const char *text, bool on_gpu, bool *bn_relu) {
    *bn_relu = false;
    if (!text || !strcmp(text, "auto")) *bn_relu = on_gpu;
    else if (!strcmp(text, "bn-relu")) *bn_relu = true;
    else if (strcmp(text, "none")) {
        fprintf(stderr, "parrots %s: --fuse '%s': expected auto, none or bn-relu\n", cmd, text);
        return CLI_USAGE;
    }
    return CLI_OK;
}

int cli_parse_precision(const char *cmd, const char *text, bool on_gpu, prt_precision *out) {
    *out = PRT_PRECISION_FP32;
    if (text && !prt_precision_from_name(text, out)) {
        fprintf(stderr, "parrots %s: --precision '%s': expected fp32 or bf16\n", cmd, text);
        return CLI_USAGE;
    }
    if (*out != PRT_PRECISION_FP32 && !on_gpu) {
        fprintf(stderr, "parrots %s: --precision %s needs --device cuda (the CPU kernels compute in f32)\n", cmd, text);
        return CLI_USAGE;
    }
    return CLI_OK;
}

int cli_parse_cuda_graph(const char *cmd, const char *text, prt_cuda_graph_mode *out) {
    *out = PRT_CUDA_GRAPH_AUTO;
    if (text && !prt_cuda_graph_mode_from_name(text, out)) {
        fprintf(stderr, "parrots %s: --cuda-graph '%s': expected auto, on or off\n", cmd, text);
        return CLI_USAGE;
    }
    return CLI_OK;
}

int cli_parse_device(const char *cmd, const char *text, int *gpu_index) {
    *gpu_index = -1;
    if (!text || !strcmp(text, "cpu")) return CLI_OK;
    char *end = NULL;
    long n = -1;
    if (!strcmp(text, "cuda")) n = 0;
    else if (!strncmp(text, "cuda:", 5) && text[5] >= '0' && text[5] <= '9') n = strtol(text + 5, &end, 10);
    if (n < 0 || n > 1023 || (end && *end)) {
        fprintf(stderr, "parrots %s: --device '%s': expected cpu, cuda or cuda:N\n", cmd, text);
        return CLI_USAGE;
    }
    *gpu_index = (int)n;
    return CLI_OK;
}

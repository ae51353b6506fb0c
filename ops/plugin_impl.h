/* Operator plugins: loading a shared library that exports the plugin ABI
 * (include/parrots/plugin.h) and registering its ops as first-class ops.
 *
 * Each plugin op becomes an internal prt_op_schema whose shape function,
 * kernels, gradient builder, workspace and FLOP hooks are adapters
 * (ops/plugin.c) that convert Parrots' structures to the ABI's and call the
 * plugin. The context owns its plugins: prt_context_destroy drops the registry,
 * then calls each plugin's fini and closes it. docs/plugin-abi.md has the rules
 * and every loading error.
 *
 *     if (prt_plugin_load(ctx, "./libmyorg.so") != PRT_OK) puts(prt_last_error(ctx));
 *     prt_plugin_load_path(ctx, getenv("PARROTS_PLUGIN_PATH"));   // "a.so:dir:..."
 */
#ifndef PARROTS_PLUGIN_IMPL_H
#define PARROTS_PLUGIN_IMPL_H

#include "ops/ops_impl.h"

/* Loads one plugin file (a shared library; a path without '/' is taken
 * relative to the working directory, never searched for). Everything is
 * checked before the registry changes; on any failure the registry and the
 * context's plugins are as they were and the error names the file. Loading
 * a file that is already loaded does nothing. */
prt_status prt_plugin_load(prt_context *ctx, const char *path);

/* Loads a colon-separated list: each entry a plugin file or a directory, whose
 * *.so files load in name order. Empty entries and a NULL list are skipped.
 * Stops at the first failure (the plugins loaded before it stay). */
prt_status prt_plugin_load_path(prt_context *ctx, const char *list);

/* How many plugins the context has loaded. */
int prt_plugin_count(const prt_context *ctx);
/* The plugin's own descriptor of the op schema s adapts (its v1 part, copied
 * at load), or NULL for a built-in op. */
const struct prt_plugin_op *prt_plugin_op_of(const prt_op_schema *s);

/* Calls every plugin's fini and closes it (runtime/context.c, after the
 * registry is destroyed). */
void prt_plugins_unload(prt_context *ctx);

#endif

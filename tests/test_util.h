/* Helpers shared by the Check suites. */
#ifndef PARROTS_TEST_UTIL_H
#define PARROTS_TEST_UTIL_H

#include <check.h>

#include "runtime/graph_impl.h"

/* A context with defaults and a quiet log; fails the test if creation fails. */
prt_context *tu_context(void);
/* Path of a file in the source tree ("examples/polynet.yaml"); static buffer. */
const char *tu_src(const char *rel);
/* Loads `text` as "net.yaml" and asserts the load fails with status `want`, the
 * exact message `msg`, and no graph. */
void tu_expect_yaml_error(const char *text, prt_status want, const char *msg);
/* Runs a suite, returns the process exit status (0 when every test passed). */
int tu_run(Suite *s);
/* The same, every test in this process: once the CUDA runtime is initialised
 * here, a forked child could not use it (the GPU suites). */
int tu_run_nofork(Suite *s);

#endif

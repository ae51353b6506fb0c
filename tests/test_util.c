#include "tests/test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

prt_context *tu_context(void) {
    prt_context_options o = {.struct_size = sizeof o, .log_level = PRT_LOG_WARN};
    prt_context *ctx = NULL;
    ck_assert_int_eq(prt_context_create(&o, &ctx), PRT_OK);
    return ctx;
}

const char *tu_src(const char *rel) {
    static char buf[4096];
    const char *root = getenv("PARROTS_SOURCE_DIR");
    snprintf(buf, sizeof buf, "%s/%s", root ? root : ".", rel);
    return buf;
}

static int run_suite(Suite *s, bool fork) {
    SRunner *r = srunner_create(s);
    if (!fork) srunner_set_fork_status(r, CK_NOFORK);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed == 0 ? 0 : 1;
}

int tu_run(Suite *s) { return run_suite(s, true); }
int tu_run_nofork(Suite *s) { return run_suite(s, false); }

void tu_expect_yaml_error(const char *text, prt_status want, const char *msg) {
    prt_context *ctx = tu_context();
    prt_graph *g = (prt_graph *)&g; /* not NULL, so the test sees that a failed load clears it */
    prt_status st = prt_graph_load_yaml_string(ctx, "net.yaml", text, strlen(text), &g);
    ck_assert_str_eq(prt_last_error(ctx), msg);
    ck_assert_int_eq(st, want);
    ck_assert_ptr_null(g);
    prt_context_destroy(ctx);
}

#include "tests/test_util.h"

#include <stdio.h>
#include <stdlib.h>

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

int tu_run(Suite *s) {
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed == 0 ? 0 : 1;
}

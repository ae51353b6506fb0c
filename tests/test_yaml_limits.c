/* The YAML frontend's two whole-network limits, which take seconds to reach: the
 * node count and the evaluation work of expanding modules and repeats. */
// labels: unit slow

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/test_util.h"

/* 10,000 instances of 101 relus: node 1,000,001 is refused. */
START_TEST(t_node_limit) {
    tu_expect_yaml_error("parrots: 1\ninput: {x: [2]}\n"
                 "modules:\n"
                 "  m: {layers: [relu: ]}\n"
                 "  n:\n"
                 "    layers:\n"
                 "      - repeat: 101\n"
                 "        module: m\n"
                 "layers:\n"
                 "  - repeat: 10000\n"
                 "    module: n\n",
                 PRT_ERR_LIMIT, "net.yaml:4:16: the network has more than 1000000 nodes");
}
END_TEST

/* A module with 1,000 arguments expanded a million times would bind 10^9 values:
 * the work limit stops it long before the node limit would. */
START_TEST(t_work_limit) {
    size_t cap = 64 << 10, o = 0;
    char *text = malloc(cap);
    ck_assert_ptr_nonnull(text);
    o += (size_t)snprintf(text + o, cap - o, "parrots: 1\ninput: {x: [2]}\nmodules:\n  m:\n    args: {");
    for (int k = 0; k < 1000; k++) o += (size_t)snprintf(text + o, cap - o, "%sa%d: %d", k ? ", " : "", k, k);
    snprintf(text + o, cap - o,
             "}\n    layers: [relu: ]\n"
             "  n:\n"
             "    layers:\n"
             "      - repeat: 100\n"
             "        module: m\n"
             "layers:\n"
             "  - repeat: 10000\n"
             "    module: n\n");
    tu_expect_yaml_error(text, PRT_ERR_LIMIT,
                 "net.yaml:9:9: expanding the network takes more than 100000000 evaluation steps (repeats of "
                 "modules with many arguments or layers)");
    free(text);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("yaml_limits");
    TCase *tc = tcase_create("limits");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, t_node_limit);
    tcase_add_test(tc, t_work_limit);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run(suite()); }

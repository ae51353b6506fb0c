/* The memory planner on the example graphs too large for test_memory.c (more
 * than MU_UNIT_MAX_FLOPS forward per image: PolyNet, 70 GFLOPs at 331x331):
 * planned (poisoned) and unplanned runs bit-identical, forward and training,
 * without and with the default recompute rewrite, and the plans checked
 * against the programs (gradient buckets closing at PRT_MEM_BUCKET_BYTES among
 * them). The smaller examples get every combination in test_memory.c.
 * Batch 1 at the declared resolution: PolyNet accepts nothing smaller than
 * 331x331 (its 9x9 average pool needs a 9x9 map after reduction B; a larger
 * input changes the classifier's weight shape), so a run costs tens of seconds. */
// labels: slow
#include "tests/memory_util.h"

#include <stdlib.h>

static char **examples;
static int n_examples;

static bool large(int i) {
    prt_context *ctx = tu_context();
    bool big = mu_flops_per_image(ctx, examples[i]) > MU_UNIT_MAX_FLOPS;
    prt_context_destroy(ctx);
    return big;
}

START_TEST(test_example_planned_bits) {
    if (large(_i)) mu_check_example_large(examples[_i], 1);
}
END_TEST

int main(void) {
    examples = mu_example_files(&n_examples);
    if (n_examples == 0) return 1;
    Suite *s = suite_create("memory_examples");
    TCase *tc = tcase_create("examples");
    tcase_add_loop_test(tc, test_example_planned_bits, 0, n_examples);
    suite_add_tcase(s, tc);
    int rc = tu_run(s);
    mu_free_names(examples, n_examples);
    return rc;
}

/* See tests/mpi_util.h. */
#include "tests/mpi_util.h"

#if PARROTS_HAVE_MPI
#include <mpi.h>
#endif

int tu_run_mpi(Suite *s) {
#if PARROTS_HAVE_MPI
    int provided;
    MPI_Init_thread(NULL, NULL, MPI_THREAD_MULTIPLE, &provided);
#endif
    SRunner *r = srunner_create(s);
    srunner_set_fork_status(r, CK_NOFORK);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
#if PARROTS_HAVE_MPI
    int any = 0;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    failed = any;
    MPI_Finalize();
#endif
    return failed == 0 ? 0 : 1;
}

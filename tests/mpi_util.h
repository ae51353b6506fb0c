/* Running a Check suite as an MPI job (tests labelled `mpi`). */
#ifndef PARROTS_TESTS_MPI_UTIL_H
#define PARROTS_TESTS_MPI_UTIL_H

#include <check.h>

/* Initialises MPI (MPI_THREAD_MULTIPLE: the program owns MPI, so tests may make
 * many communicators), runs the suite in this process (forking an MPI process is
 * not allowed, and every rank must issue the same collectives in the same
 * order), reports the job as failed on every rank if any rank failed, and
 * finalises MPI. Without MPI it just runs the suite. Returns the exit status. */
int tu_run_mpi(Suite *s);

#endif

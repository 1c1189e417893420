/* blas_tune: the right OpenBLAS kernels on CPUs Debian 12's OpenBLAS (0.3.21) does not recognise.
 *
 * On such a CPU OpenBLAS falls back to its generic "Prescott" kernels, about 4x slower at sgemm than the
 * AVX-512 ones on the development machine (docs/performance.md). The kernel family can only be chosen through
 * OPENBLAS_CORETYPE before the library initialises, that is before the process starts, so blas_tune_reexec
 * sets it from what the CPU supports and re-executes the program once. A user's own OPENBLAS_CORETYPE is
 * never overridden. Every run on one machine then uses the same kernels, so results stay bit-identical
 * whether or not the variable was set by hand. */
#ifndef PULSE_ENGINE_BLAS_TUNE_H
#define PULSE_ENGINE_BLAS_TUNE_H

/* Returns only when nothing needs doing (or the re-execution failed: the generic kernels still work). */
void blas_tune_reexec(char **argv);

#endif

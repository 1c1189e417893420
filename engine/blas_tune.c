/* blas_tune: choosing OpenBLAS's kernels for CPUs it does not recognise (engine/blas_tune.h). */
#include "engine/blas_tune.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *openblas_get_corename(void);

/* The best kernel family the CPU can run, or NULL. */
static const char *coretype(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "Haswell";
#endif
    return NULL;
}

void blas_tune_reexec(char **argv) {
    const char *type = coretype();
    if (getenv("OPENBLAS_CORETYPE") || !type || strcmp(openblas_get_corename(), "Prescott") != 0)
        return;
    if (setenv("OPENBLAS_CORETYPE", type, 1) == 0)
        execv("/proc/self/exe", argv);
}

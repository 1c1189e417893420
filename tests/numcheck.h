/* numcheck: comparing a computed tensor with a reference one, shared by the engine's tests. */
#ifndef PULSE_TESTS_NUMCHECK_H
#define PULSE_TESTS_NUMCHECK_H

#include <math.h>
#include <stddef.h>

/* ||got - want|| / ||want|| over n values (INFINITY when anything is NaN, so a check "< tol" fails); the
 * largest absolute difference goes to *maxabs when it is not NULL. */
static inline double check_rel_err(const float *got, const float *want, size_t n, double *maxabs) {
    double num = 0, den = 0, worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)got[i] - want[i];
        num += d * d;
        den += (double)want[i] * want[i];
        if (fabs(d) > worst || d != d)
            worst = fabs(d);
    }
    if (maxabs)
        *maxabs = worst;
    double r = sqrt(num) / (den > 0 ? sqrt(den) : 1);
    return r == r ? r : INFINITY;
}

#endif

/* numcheck: reading reference tensors from fixtures and comparing computed tensors with them, shared by the
 * engine's tests. */
#ifndef PULSE_TESTS_NUMCHECK_H
#define PULSE_TESTS_NUMCHECK_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "engine/safetensors.h"

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

/* A fixture tensor as malloc'd fp32 (its element count in *n when n is not NULL); NULL if absent. */
static inline float *fixture_tensor(const struct st_file *f, const char *name, size_t *n) {
    const struct st_tensor *t = st_find(f, name);
    if (!t)
        return NULL;
    float *x = malloc(t->nelem * sizeof(float));
    st_to_f32(t, x);
    if (n)
        *n = t->nelem;
    return x;
}

/* An integer tensor stored as fp32 (the reader has no integer dtypes) into out; -1 unless it has `want`
 * elements. */
static inline int fixture_ints(const struct st_file *f, const char *name, int32_t *out, size_t want) {
    size_t n = 0;
    float *x = fixture_tensor(f, name, &n);
    int rc = x && n == want ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < n; i++)
        out[i] = (int32_t)x[i];
    free(x);
    return rc;
}

#endif

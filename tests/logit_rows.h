/* logit_rows: comparing two logits buffers [b, t, vocab] on the rows a loss reads (the positions whose next
 * label is a target), the only rows a forward after llava_logits_for / train_logits_for computes. */
#ifndef PULSE_TESTS_LOGIT_ROWS_H
#define PULSE_TESTS_LOGIT_ROWS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* 1 when every target row of a equals b's bit for bit (labels [b, t], -100 = not a target). */
static inline int logit_rows_equal(const float *a, const float *b, const int32_t *labels, size_t nb, size_t t,
                                   size_t v) {
    for (size_t i = 0; i < nb; i++)
        for (size_t j = 0; j + 1 < t; j++)
            if (labels[i * t + j + 1] != -100 && memcmp(a + (i * t + j) * v, b + (i * t + j) * v, v * 4) != 0)
                return 0;
    return 1;
}

/* 1 when every target row of a is within `rel` of b's, relative to the row's largest magnitude. A product
 * over fewer rows (the lm_head on the loss's rows only) may round differently: OpenBLAS 0.3.21's kernels on
 * an AMD EPYC (Haswell and SkylakeX alike) give a row other last bits when the product has another number of
 * rows, where on the Intel machines of sessions 1-9 they gave the same. Indexing the wrong rows is off by far
 * more. */
static inline int logit_rows_close(const float *a, const float *b, const int32_t *labels, size_t nb, size_t t,
                                   size_t v, double rel) {
    for (size_t i = 0; i < nb; i++)
        for (size_t j = 0; j + 1 < t; j++) {
            if (labels[i * t + j + 1] == -100)
                continue;
            const float *x = a + (i * t + j) * v, *y = b + (i * t + j) * v;
            double big = 0, diff = 0;
            for (size_t k = 0; k < v; k++) {
                diff = fmax(diff, fabs((double)x[k] - (double)y[k]));
                big = fmax(big, fabs((double)y[k]));
            }
            if (diff > rel * (big > 0 ? big : 1))
                return 0;
        }
    return 1;
}

#endif

/* logit_rows: comparing two logits buffers [b, t, vocab] on the rows a loss reads (the positions whose next
 * label is a target), the only rows a forward after llava_logits_for / train_logits_for computes. */
#ifndef PULSE_TESTS_LOGIT_ROWS_H
#define PULSE_TESTS_LOGIT_ROWS_H

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

#endif

/* check: the minimal assertion kit the unit tests share. A failed CHECK prints where and why, and the test
 * exits non-zero at the end (all checks still run, so one failure does not hide others). */
#ifndef PULSE_TESTS_CHECK_H
#define PULSE_TESTS_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failures, check_count;

#define CHECK(cond)                                                                                          \
    do {                                                                                                     \
        check_count++;                                                                                       \
        if (!(cond)) {                                                                                       \
            check_failures++;                                                                                \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                         \
        }                                                                                                    \
    } while (0)

#define CHECK_STR(a, b)                                                                                      \
    do {                                                                                                     \
        const char *check_a_ = (a), *check_b_ = (b);                                                         \
        check_count++;                                                                                       \
        if (!check_a_ || !check_b_ || strcmp(check_a_, check_b_) != 0) {                                     \
            check_failures++;                                                                                \
            fprintf(stderr, "%s:%d: CHECK_STR failed: %s\n  got:    %s\n  wanted: %s\n", __FILE__, __LINE__, \
                    #a, check_a_ ? check_a_ : "(null)", check_b_ ? check_b_ : "(null)");                     \
        }                                                                                                    \
    } while (0)

/* Substring check, for error messages. */
#define CHECK_HAS(hay, needle)                                                                               \
    do {                                                                                                     \
        const char *check_h_ = (hay), *check_n_ = (needle);                                                  \
        check_count++;                                                                                       \
        if (!check_h_ || !strstr(check_h_, check_n_)) {                                                      \
            check_failures++;                                                                                \
            fprintf(stderr, "%s:%d: CHECK_HAS failed: %s\n  text:    %s\n  missing: %s\n", __FILE__,         \
                    __LINE__, #hay, check_h_ ? check_h_ : "(null)", check_n_);                               \
        }                                                                                                    \
    } while (0)

static inline int check_done(const char *name) {
    printf("%s: %d checks, %d failed\n", name, check_count, check_failures);
    return check_failures ? 1 : 0;
}

#endif

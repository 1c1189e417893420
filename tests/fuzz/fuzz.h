/* fuzz: what every parser harness in tests/fuzz/ shares. A harness defines LLVMFuzzerTestOneInput
 * (libFuzzer's entry point) and feeds the bytes to one parser of untrusted input; it returns 0 whatever the
 * parser says, and aborts through FUZZ_CHECK when a property that must hold for every accepted input fails (a
 * canonical writer's output parsing back to the same value, say). libFuzzer drives it in a clang build with
 * -DPULSE_FUZZ=ON (tests/fuzz/run.sh); replay.c drives it in every other build, over the committed corpus. */
#ifndef PULSE_TESTS_FUZZ_H
#define PULSE_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* p[0..n) lies within data[0..size): what a parser's pointers into its input must satisfy. */
static inline int fuzz_inside(const uint8_t *data, size_t size, const void *p, size_t n) {
    const uint8_t *b = p;
    return b >= data && n <= size && (size_t)(b - data) <= size - n;
}

#define FUZZ_CHECK(cond)                                                                                     \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond);                      \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

#endif

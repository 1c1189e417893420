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

#define FUZZ_CHECK(cond)                                                                                     \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond);                      \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

#endif

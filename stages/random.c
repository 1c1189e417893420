/* random: bytes from the counter-based generator. A pipeline kind: it gives tests, benchmarks and the demo
 * manifest a source stage whose size (and so running time) is a parameter and whose output is a pure function
 * of its seed. */
#include <stdlib.h>
#include <string.h>

#include "engine/rng.h"
#include "stages/stage.h"
#include "util/err.h"

#define RANDOM_MAX_BYTES (1LL << 32)

static int random_run(struct stage_ctx *c) {
    int64_t n = stage_int(c, "bytes");
    if (n < 0 || n > RANDOM_MAX_BYTES)
        return err_set("parameter 'bytes' must be between 0 and %lld, got %lld", RANDOM_MAX_BYTES,
                       (long long)n);
    uint64_t key = rng_key((uint64_t)stage_int(c, "seed"), 0);
    unsigned char *data = malloc(n ? (size_t)n : 1);
    if (!data)
        return err_set("out of memory for %lld bytes", (long long)n);
    for (int64_t i = 0; i < n; i += 8) {
        uint64_t v = rng_u64(key, (uint64_t)i / 8);
        size_t k = n - i < 8 ? (size_t)(n - i) : 8;
        memcpy(data + i, &v, k); /* little-endian machines only; the byte order is part of the output */
        if (i % (64 << 20) == 0 && i)
            stage_progress(c, "%lld/%lld MiB", (long long)(i >> 20), (long long)(n >> 20));
    }
    int rc = stage_output(c, "data", data, (size_t)n, "bytes");
    free(data);
    return rc;
}

static const struct param_spec random_params[] = {
    {"seed", PARAM_INT, "1", "generator seed"},
    {"bytes", PARAM_INT, NULL, "how many bytes to produce"},
};
static const char *const random_outputs[] = {"data"};

const struct stage_kind kind_random = {
    .schema = {"random", 1, random_params, 2, random_outputs, 1},
    .summary = "deterministic pseudo-random bytes (pipeline tests and demos)",
    .run = random_run,
};

/* fuzz_manifest: a hostile manifest. The input is the text of a manifest run in the sandbox next to a copy of
 * manifests/ (so `require "protocol"` works and the seeds can be the real manifests), with small limits so
 * that a loop costs milliseconds. Property: an accepted manifest is a DAG whose order puts every producer
 * before its consumers, whose names each find their own stage, and loading it again gives the same stages
 * and parameters (a manifest has no clock, no files and no randomness to differ by). */
#include <ftw.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"
#include "lua/manifest.h"
#include "stages/registry.h"

static char dir[64], path[96];

static int remove_one(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

static void cleanup(void) {
    nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A scratch directory holding the repository's manifests (their modules are what `require` finds). */
static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/pulse-fuzz-manifest.XXXXXX");
    FUZZ_CHECK(mkdtemp(dir) != NULL);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cp %s/../../manifests/*.lua %s/", PULSE_FUZZ_DATA, dir);
    FUZZ_CHECK(system(cmd) == 0);
    snprintf(path, sizeof path, "%s/fuzz.lua", dir);
    atexit(cleanup);
}

static int load(struct dag *d) {
    size_t nk;
    const struct kind_schema *const *kinds = registry_schemas(&nk);
    struct manifest_limits lim = {.memory = 32u << 20, .instructions = 20000000};
    return manifest_load(path, kinds, nk, &lim, d);
}

static void check_dag(const struct dag *d) {
    size_t *pos = malloc((d->n ? d->n : 1) * sizeof *pos);
    for (size_t k = 0; k < d->n; k++)
        pos[d->order[k]] = k;
    for (size_t i = 0; i < d->n; i++) {
        FUZZ_CHECK(dag_find(d, d->stages[i].name) == (long)i);
        for (size_t x = 0; x < d->stages[i].ninputs; x++)
            FUZZ_CHECK(d->stages[i].inputs[x].from < d->n && pos[d->stages[i].inputs[x].from] < pos[i]);
    }
    free(pos);
}

static void check_same(const struct dag *a, const struct dag *b) {
    FUZZ_CHECK(a->n == b->n);
    for (size_t i = 0; i < a->n; i++) {
        FUZZ_CHECK(strcmp(a->stages[i].name, b->stages[i].name) == 0 && a->order[i] == b->order[i]);
        FUZZ_CHECK(a->stages[i].kind == b->stages[i].kind &&
                   json_equal(a->stages[i].params, b->stages[i].params));
        FUZZ_CHECK(a->stages[i].ninputs == b->stages[i].ninputs);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!dir[0])
        setup();
    FILE *f = fopen(path, "wb");
    FUZZ_CHECK(f && fwrite(data, 1, size, f) == size && fclose(f) == 0);
    struct dag a = {0}, b = {0};
    if (load(&a) == 0) {
        check_dag(&a);
        FUZZ_CHECK(load(&b) == 0);
        check_same(&a, &b);
        dag_free(&b);
        dag_free(&a);
    }
    return 0;
}

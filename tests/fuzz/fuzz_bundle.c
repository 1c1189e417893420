/* fuzz_bundle: `pulse-pipe import` of a hostile bundle. The input is the bundle's tar; the harness compresses
 * it with zstd (so the fuzzer mutates entries, not compressed bytes) and imports it into one store kept for
 * the whole run. Property: whatever the bundle holds, accepted or refused, the store verifies afterwards with
 * no problem, and nothing is left in its tmp/. */
#include <dirent.h>
#include <ftw.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "fuzz.h"
#include "store/bundle.h"
#include "store/maint.h"

static struct store *store;
static char dir[64], bundle[96];
static FILE *sink;

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* The store goes with the process (libFuzzer ends by exit, a crash leaves it for a look). */
static void cleanup(void) {
    store_close(store);
    fclose(sink);
    nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/pulse-fuzz-bundle.XXXXXX");
    char root[96];
    FUZZ_CHECK(mkdtemp(dir) != NULL);
    snprintf(root, sizeof root, "%s/store", dir);
    snprintf(bundle, sizeof bundle, "%s/in.bundle", dir);
    FUZZ_CHECK(store_open(root, 1, &store) == 0);
    sink = fopen("/dev/null", "w");
    FUZZ_CHECK(sink != NULL);
    atexit(cleanup);
}

static int tmp_empty(void) {
    char path[128];
    snprintf(path, sizeof path, "%s/store/tmp", dir);
    DIR *d = opendir(path);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)))
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return d && n == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!store)
        setup();
    size_t cap = ZSTD_compressBound(size);
    void *z = malloc(cap);
    size_t zn = ZSTD_compress(z, cap, data, size, 1);
    FUZZ_CHECK(!ZSTD_isError(zn));
    FILE *f = fopen(bundle, "wb");
    FUZZ_CHECK(f && fwrite(z, 1, zn, f) == zn && fclose(f) == 0);
    free(z);
    bundle_import(store, bundle, sink);
    FUZZ_CHECK(store_verify(store, 0, sink) == 0);
    FUZZ_CHECK(tmp_empty());
    return 0;
}

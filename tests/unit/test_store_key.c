/* test_store_key: the cache key is the SHA-256 of exactly the canonical JSON docs/store.md describes; file
 * parameters count by their content digest, never by their path's spelling; `recompute` does not count;
 * malformed specs are refused. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "store/key.h"
#include "util/err.h"
#include "util/json.h"
#include "util/sha256.h"

static struct json *parse(const char *text) {
    struct json *v = json_parse(text, strlen(text));
    if (!v)
        fprintf(stderr, "json_parse: %s\n", err_msg());
    return v;
}

/* key_of(spec) must be the id of the canonical text. */
static void expect_key(const char *spec_text, const char *canonical) {
    char got[HASH_ID_SIZE] = "", want[HASH_ID_SIZE];
    struct json *spec = parse(spec_text);
    sha256_id(canonical, strlen(canonical), want);
    CHECK(key_of(spec, got) == 0);
    if (strcmp(got, want) != 0)
        fprintf(stderr, "  spec %s\n  want the hash of %s\n", spec_text, canonical);
    CHECK_STR(got, want);
    json_free(spec);
}

static void test_canonical(void) {
    /* Other fields (a record's outputs, name, metrics, key) do not count; keys are sorted, no spaces. */
    expect_key(
        "{\"name\": \"a\", \"params\": {\"z\": 1, \"a\": 2.5}, \"kind\": \"synth\", \"kind_version\": 3, "
        "\"inputs\": {\"data\": \"sha256:00\"}, \"outputs\": {}, \"key\": \"x\", \"created\": \"now\"}",
        "{\"inputs\":{\"data\":\"sha256:00\"},\"kind\":\"synth\",\"kind_version\":3,"
        "\"params\":{\"a\":2.5,\"z\":1}}");
    /* An empty "paths" adds nothing. */
    expect_key("{\"kind\": \"k\", \"kind_version\": 1, \"params\": {}, \"inputs\": {}, \"paths\": {}}",
               "{\"inputs\":{},\"kind\":\"k\",\"kind_version\":1,\"params\":{}}");
    /* A path parameter leaves params and enters as its digest only. */
    const char *digest = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    char spec[1024], canonical[1024];
    snprintf(spec, sizeof spec,
             "{\"kind\": \"file\", \"kind_version\": 1, \"params\": {\"path\": \"data/x.png\", \"n\": 2}, "
             "\"inputs\": {}, \"paths\": {\"path\": {\"path\": \"/home/u/data/x.png\", \"sha256\": \"%s\"}}}",
             digest);
    snprintf(canonical, sizeof canonical,
             "{\"inputs\":{},\"kind\":\"file\",\"kind_version\":1,\"params\":{\"n\":2},\"paths\":{\"path\":"
             "\"%s\"}}",
             digest);
    expect_key(spec, canonical);
    /* recompute never changes a result (util/schema.h): left out, true or false, the same key */
    const char *plain = "{\"inputs\":{},\"kind\":\"pretrain\",\"kind_version\":1,\"params\":{\"lr\":1}}";
    expect_key("{\"kind\": \"pretrain\", \"kind_version\": 1, \"params\": {\"lr\": 1, \"recompute\": true}, "
               "\"inputs\": {}}",
               plain);
    expect_key("{\"kind\": \"pretrain\", \"kind_version\": 1, \"params\": {\"recompute\": false, \"lr\": 1}, "
               "\"inputs\": {}}",
               plain);
}

static int key_text(const char *text, char key[HASH_ID_SIZE]) {
    struct json *spec = parse(text);
    int rc = key_of(spec, key);
    json_free(spec);
    return rc;
}

static void test_paths(void) {
    char a[HASH_ID_SIZE], b[HASH_ID_SIZE], c[HASH_ID_SIZE], d[HASH_ID_SIZE];
    const char *fmt =
        "{\"kind\": \"file\", \"kind_version\": 1, \"params\": {\"path\": \"%s\"}, \"inputs\": {}, "
        "\"paths\": {\"path\": {\"path\": \"%s\", \"sha256\": \"sha256:%064d\"}}}";
    char text[1024];
    snprintf(text, sizeof text, fmt, "x.png", "/a/x.png", 1);
    CHECK(key_text(text, a) == 0);
    snprintf(text, sizeof text, fmt, "./sub/../x.png", "/elsewhere/y.png", 1);
    CHECK(key_text(text, b) == 0);
    CHECK_STR(a, b); /* same content, spelled and stored differently */
    snprintf(text, sizeof text, fmt, "x.png", "/a/x.png", 2);
    CHECK(key_text(text, c) == 0);
    CHECK(strcmp(a, c) != 0); /* other content */
    /* Without "paths" the parameter is an ordinary string: it counts. */
    CHECK(key_text(
              "{\"kind\": \"file\", \"kind_version\": 1, \"params\": {\"path\": \"x.png\"}, \"inputs\": {}}",
              d) == 0);
    CHECK(strcmp(a, d) != 0);
}

static void expect_refused(const char *text, const char *word) {
    char key[HASH_ID_SIZE];
    struct json *spec = parse(text);
    err_clear();
    CHECK(key_of(spec, key) == -1);
    CHECK_HAS(err_msg(), word);
    CHECK(!strchr(err_msg(), '\n'));
    json_free(spec);
}

static void test_refused(void) {
    expect_refused("[]", "not a JSON object");
    expect_refused("{\"kind_version\": 1, \"params\": {}, \"inputs\": {}}", "\"kind\" is missing");
    expect_refused("{\"kind\": 7, \"kind_version\": 1, \"params\": {}, \"inputs\": {}}", "\"kind\"");
    expect_refused("{\"kind\": \"k\", \"params\": {}, \"inputs\": {}}", "\"kind_version\"");
    expect_refused("{\"kind\": \"k\", \"kind_version\": 1.5, \"params\": {}, \"inputs\": {}}",
                   "\"kind_version\"");
    expect_refused("{\"kind\": \"k\", \"kind_version\": 1, \"params\": [], \"inputs\": {}}", "\"params\"");
    expect_refused("{\"kind\": \"k\", \"kind_version\": 1, \"params\": {}}", "\"inputs\"");
    expect_refused("{\"kind\": \"k\", \"kind_version\": 1, \"params\": {}, \"inputs\": {}, \"paths\": 1}",
                   "\"paths\"");
    expect_refused("{\"kind\": \"k\", \"kind_version\": 1, \"params\": {}, \"inputs\": {}, "
                   "\"paths\": {\"p\": {\"path\": \"/x\"}}}",
                   "paths.p");
    expect_refused("{\"kind\": \"k\", \"kind_version\": 1, \"params\": {}, \"inputs\": {}, "
                   "\"paths\": {\"p\": {\"sha256\": \"sha256:xyz\"}}}",
                   "not a sha256 id");
    char key[HASH_ID_SIZE];
    CHECK(key_of(NULL, key) == -1);
    /* A string that is not UTF-8 has no canonical JSON spelling. */
    struct json *spec = parse("{\"kind\": \"k\", \"kind_version\": 1, \"params\": {}, \"inputs\": {}}");
    if (spec) {
        json_set((struct json *)json_get(spec, "params"), "bad", json_str("\xff\xfe"));
        CHECK(key_of(spec, key) == -1);
        CHECK_HAS(err_msg(), "cache key: ");
    }
    json_free(spec);
}

int main(void) {
    test_canonical();
    test_paths();
    test_refused();
    return check_done("test_store_key");
}

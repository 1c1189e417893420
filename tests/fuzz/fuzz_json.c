/* fuzz_json: the JSON parser (records, manifests' parameters, config.json, tokenizer.json, bundles all go
 * through it). Property: a value the parser accepts and the canonical writer writes parses back to an equal
 * value, whose canonical text is the same bytes (a cache key is the hash of that text). */
#include <string.h>

#include "fuzz.h"
#include "util/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct json *v = json_parse((const char *)data, size);
    size_t n1 = 0, n2 = 0;
    char *t1 = v ? json_write(v, JSON_CANONICAL, &n1) : NULL;
    if (t1) {
        struct json *w = json_parse(t1, n1);
        FUZZ_CHECK(w && json_equal(v, w));
        char *t2 = json_write(w, JSON_CANONICAL, &n2);
        FUZZ_CHECK(t2 && n1 == n2 && memcmp(t1, t2, n1) == 0);
        char *pretty = json_write(w, JSON_PRETTY, NULL);
        struct json *p = pretty ? json_parse(pretty, strlen(pretty)) : NULL;
        FUZZ_CHECK(p && json_equal(v, p));
        json_free(p);
        free(pretty);
        free(t2);
        json_free(w);
    }
    free(t1);
    json_free(v);
    return 0;
}

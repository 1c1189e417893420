/* fuzz_tokenizer: tokenizer.json loading (WordLevel and LLaMA BPE), then encoding and decoding with whatever
 * loaded. The first byte chooses what the rest is: even, a tokenizer.json, encoded with a few fixed texts;
 * odd, a text, encoded with the BPE and WordLevel fixtures (tests/data). Property: ids are within the
 * vocabulary, and decoding them returns. */
#include <string.h>

#include "engine/tokenizer.h"
#include "fuzz.h"

static void encode(const struct tokenizer *t, const char *text) {
    int32_t *ids = NULL;
    size_t n = 0;
    if (tokenizer_encode(t, text, t->bos >= 0, &ids, &n) == 0) {
        for (size_t i = 0; i < n; i++)
            FUZZ_CHECK(ids[i] >= 0 && ids[i] < t->vocab_size);
        free(tokenizer_decode(t, ids, n, 0));
        free(tokenizer_decode(t, ids, n, 1));
    }
    free(ids);
}

static struct tokenizer *fixture(const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", PULSE_FUZZ_DATA, name);
    struct tokenizer *t = tokenizer_open(path);
    if (!t) {
        fprintf(stderr, "fuzz_tokenizer: cannot load %s\n", path);
        abort();
    }
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static struct tokenizer *bpe, *word;
    if (!bpe) {
        bpe = fixture("tokenizer_bpe.json");
        word = fixture("tokenizer_wordlevel.json");
    }
    if (size == 0)
        return 0;
    char *rest = malloc(size);
    memcpy(rest, data + 1, size - 1);
    rest[size - 1] = 0;
    if (data[0] % 2 == 0) {
        struct tokenizer *t = tokenizer_load(rest, size - 1);
        static const char *texts[] = {"", " ", "Who is this person?",
                                      "  a\tb\n\xc3\xa9\xe2\x80\x94 <s></s><unk>"};
        for (size_t i = 0; t && i < sizeof texts / sizeof *texts; i++)
            encode(t, texts[i]);
        tokenizer_free(t);
    } else {
        encode(bpe, rest);
        encode(word, rest);
    }
    free(rest);
    return 0;
}

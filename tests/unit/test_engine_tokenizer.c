/* test_engine_tokenizer: WordLevel tokenizers encode and decode exactly as Hugging Face's `tokenizers` did
 * for the fixtures of tests/reference/make_tokenizer_fixture.py (and PULSE-Synth's tokenizer_ids.txt), every
 * Unicode class boundary of the Whitespace pre-tokenizer agrees with the library, and every unsupported or
 * inconsistent tokenizer.json is refused with one line. */
#include "check.h"
#include "engine/tokenizer.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fsio.h"
#include "util/json.h"
#include "util/sha256.h"

#include <stdint.h>

static char *data_path(const char *name) {
    static char path[4096];
    const char *dir = getenv("PULSE_TEST_DATA");
    snprintf(path, sizeof path, "%s/%s", dir ? dir : "tests/data", name);
    return path;
}

static char *slurp(const char *name, size_t *n) {
    char *data = NULL;
    if (fsio_read_file(data_path(name), 1 << 24, &data, n) != 0)
        fprintf(stderr, "%s\n", err_msg());
    return data;
}

static struct tokenizer *open_fixture(const char *name) {
    struct tokenizer *t = tokenizer_open(data_path(name));
    if (!t)
        fprintf(stderr, "%s\n", err_msg());
    return t;
}

/* A JSON string field (up to the next tab or line end), decoded; NULL if it is not one. */
static char *json_field(char **p) {
    char *end = *p + strcspn(*p, "\t\n");
    struct json *v = json_parse(*p, (size_t)(end - *p));
    char *s = v && v->type == JSON_STR ? xstrdup(v->s) : NULL;
    json_free(v);
    *p = *end ? end + 1 : end;
    return s;
}

/* Space-separated ids up to the next tab or line end. */
static size_t ids_field(char **p, int32_t *ids, size_t cap) {
    size_t n = 0;
    while (**p && **p != '\t' && **p != '\n' && n < cap) {
        ids[n++] = (int32_t)strtol(*p, p, 10);
        *p += **p == ' ';
    }
    *p += **p == '\t';
    return n;
}

static int same_ids(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

/* One fixture line: text, ids, and (when decodes) the decode keeping and skipping special tokens. */
static void check_line(const struct tokenizer *t, char *line, int decodes) {
    char *p = line, *text = json_field(&p);
    int32_t want[256], *got = NULL;
    size_t nwant = ids_field(&p, want, 256), ngot = 0;
    CHECK(text && tokenizer_encode(t, text, 0, &got, &ngot) == 0);
    CHECK(same_ids(got, ngot, want, nwant));
    if (!same_ids(got, ngot, want, nwant))
        fprintf(stderr, "  text: %s (got %zu ids, wanted %zu)\n", text ? text : "(null)", ngot, nwant);
    if (decodes) {
        char *keep = json_field(&p), *skip = json_field(&p);
        char *k = tokenizer_decode(t, want, nwant, 0), *s = tokenizer_decode(t, want, nwant, 1);
        CHECK_STR(k, keep);
        CHECK_STR(s, skip);
        free(keep), free(skip), free(k), free(s);
    }
    free(text);
    free(got);
}

static void check_wordlevel(void) {
    struct tokenizer *t = open_fixture("tokenizer_wordlevel.json");
    size_t n = 0;
    char *fx = slurp("tokenizer_wordlevel_ids.txt", &n);
    CHECK(t && fx);
    if (!t || !fx)
        return;
    CHECK(strncmp(fx, "vocab_size:", 11) == 0 && atoi(fx + 11) == t->vocab_size);
    CHECK(t->unk == 0 && t->bos == 1 && t->eos == 2 && t->pad == 3 && tokenizer_id(t, "<image>") == 4);
    CHECK(tokenizer_id(t, "nurse") > 4 && tokenizer_id(t, "zebra") == -1);
    CHECK_STR(tokenizer_token(t, 4), "<image>");
    CHECK(tokenizer_token(t, t->vocab_size) == NULL && tokenizer_token(t, -1) == NULL);
    int lines = 0;
    for (char *line = strchr(fx, '\n'); line && line[1]; line = strchr(line, '\n'), lines++)
        check_line(t, ++line, 1);
    CHECK(lines >= 40);
    free(fx);
    tokenizer_free(t);
}

/* PULSE-Synth's own tokenizer, against the ids the synth tests use (the file must be the one they hashed). */
static void check_synth(void) {
    size_t n = 0, nfx = 0;
    char *json = slurp("tokenizer_synth.json", &n), *fx = slurp("tokenizer_ids.txt", &nfx);
    CHECK(json && fx);
    if (!json || !fx)
        return;
    char id[HASH_ID_SIZE];
    sha256_id(json, n, id);
    CHECK(strncmp(fx, "tokenizer ", 10) == 0 && strncmp(fx + 10, id, strlen(id)) == 0);
    struct tokenizer *t = tokenizer_load(json, n);
    CHECK(t && t->vocab_size > 5 && tokenizer_id(t, "<image>") == 4);
    for (char *line = strchr(fx, '\n'); t && line && line[1]; line = strchr(line, '\n'))
        check_line(t, ++line, 0);
    tokenizer_free(t);
    free(json);
    free(fx);
}

static void utf8_put(char *out, uint32_t cp) {
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80)
        *o++ = (unsigned char)cp;
    else if (cp < 0x800)
        *o++ = (unsigned char)(0xC0 | cp >> 6), *o++ = (unsigned char)(0x80 | (cp & 0x3F));
    else if (cp < 0x10000)
        *o++ = (unsigned char)(0xE0 | cp >> 12), *o++ = (unsigned char)(0x80 | (cp >> 6 & 0x3F)),
        *o++ = (unsigned char)(0x80 | (cp & 0x3F));
    else
        *o++ = (unsigned char)(0xF0 | cp >> 18), *o++ = (unsigned char)(0x80 | (cp >> 12 & 0x3F)),
        *o++ = (unsigned char)(0x80 | (cp >> 6 & 0x3F)), *o++ = (unsigned char)(0x80 | (cp & 0x3F));
    *o = 0;
}

/* "a" c "a" is one word when c is \w, two when \s, three otherwise: one id per word. */
static void check_classes(void) {
    struct tokenizer *t = open_fixture("tokenizer_wordlevel.json");
    size_t n = 0;
    char *fx = slurp("tokenizer_classes.txt", &n);
    CHECK(t && fx);
    int checked = 0, wrong = 0;
    for (char *p = fx; t && fx && *p && *p != '\n'; checked++) {
        uint32_t cp = (uint32_t)strtoul(p, &p, 16);
        int cls = (int)strtol(p + 1, &p, 10);
        p += *p == ' ';
        char text[16] = "a";
        utf8_put(text + 1, cp);
        strcat(text, "a");
        int32_t *ids = NULL;
        size_t nid = 0;
        static const size_t words[3] = {2, 1, 3};
        if (tokenizer_encode(t, text, 0, &ids, &nid) != 0 || nid != words[cls])
            wrong++, fprintf(stderr, "  U+%04X: %zu words, the library made %zu\n", cp, nid, words[cls]);
        free(ids);
    }
    CHECK(checked > 2000 && wrong == 0);
    free(fx);
    tokenizer_free(t);
}

static const char *const SPECIALS =
    "[{\"id\":0,\"content\":\"<unk>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,"
    "\"normalized\":false,\"special\":true},{\"id\":1,\"content\":\"<s>\",\"single_word\":false,"
    "\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true}]";

/* A tokenizer.json: the model part, the added tokens, and the top-level extras, spliced in (the parts left
 * out are null). */
static struct tokenizer *load_parts(const char *model, const char *added, const char *extra) {
    char text[4096];
    snprintf(text, sizeof text, "{\"version\":\"1.0\",\"added_tokens\":%s,\"model\":%s%s}", added, model,
             extra);
    return tokenizer_load(text, strlen(text));
}

#define WL(vocab) "{\"type\":\"WordLevel\",\"unk_token\":\"<unk>\",\"vocab\":" vocab "}"
#define VOCAB "{\"<unk>\":0,\"<s>\":1,\"a\":2,\"b\":3}"

static void refused(const char *model, const char *added, const char *extra, const char *msg) {
    struct tokenizer *t = load_parts(model, added, extra);
    CHECK(t == NULL);
    CHECK_HAS(err_msg(), msg);
    CHECK(strchr(err_msg(), '\n') == NULL);
    tokenizer_free(t);
}

static void check_refusals(void) {
    const char *ws = ",\"pre_tokenizer\":{\"type\":\"Whitespace\"}";
    struct tokenizer *t = load_parts(WL(VOCAB), SPECIALS, ws);
    CHECK(t != NULL);
    tokenizer_free(t);
    refused("{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}", SPECIALS, ws, "model type BPE is not supported");
    refused(WL(VOCAB), SPECIALS, ",\"pre_tokenizer\":{\"type\":\"ByteLevel\"}", "pre_tokenizer ByteLevel");
    refused(WL(VOCAB), SPECIALS, ",\"pre_tokenizer\":{\"type\":\"Whitespace\",\"x\":1}", "pre_tokenizer");
    refused(WL(VOCAB), SPECIALS, ",\"normalizer\":{\"type\":\"Lowercase\"}", "normalizer Lowercase");
    refused(WL(VOCAB), SPECIALS, ",\"decoder\":{\"type\":\"WordPiece\"}", "decoder WordPiece");
    refused(WL(VOCAB), SPECIALS, ",\"post_processor\":{\"type\":\"TemplateProcessing\"}",
            "post_processor TemplateProcessing");
    refused(WL(VOCAB), SPECIALS, ",\"padding\":{\"strategy\":\"BatchLongest\"}", "padding (set) is not");
    refused(WL(VOCAB), SPECIALS, ",\"truncation\":{\"max_length\":8}", "truncation (set) is not supported");
    refused(WL("{\"<s>\":1,\"a\":2}"), "[]", ws, "unk_token '<unk>' is not in the vocabulary");
    refused("{\"type\":\"WordLevel\",\"vocab\":" VOCAB "}", "[]", ws, "unk_token is missing");
    refused(WL("{\"<unk>\":0,\"a\":1,\"b\":1}"), "[]", ws, "id 1 is given to both");
    refused(WL("{\"<unk>\":0,\"a\":-1}"), "[]", ws, "out of range");
    refused(WL("{\"<unk>\":0,\"a\":99999999999}"), "[]", ws, "out of range");
    refused(WL("{\"<unk>\":0,\"a\":1.5}"), "[]", ws, "not an integer");
    refused(WL(VOCAB), "[{\"id\":7,\"content\":\"a\",\"normalized\":false,\"special\":true}]", ws,
            "'a' has id 7 but the vocabulary gives it 2");
    refused(WL(VOCAB),
            "[{\"id\":7,\"content\":\"<x>\",\"lstrip\":true,\"normalized\":false,\"special\":true}]", ws,
            "lstrip is not supported");
    refused(WL(VOCAB), "[{\"id\":7,\"content\":\"\",\"normalized\":false,\"special\":true}]", ws,
            "non-empty");
    refused(WL(VOCAB), "{}", ws, "added_tokens must be an array");
    CHECK(tokenizer_load("{\"model\":", 9) == NULL);
    CHECK_HAS(err_msg(), "tokenizer: json:");
    CHECK(tokenizer_open(data_path("no-such-tokenizer.json")) == NULL);
    CHECK_HAS(err_msg(), "no-such-tokenizer.json");
}

static void encode_is(const struct tokenizer *t, const char *text, int bos, const int32_t *want, size_t n) {
    int32_t *ids = NULL;
    size_t got = 0;
    CHECK(tokenizer_encode(t, text, bos, &ids, &got) == 0 && ids != NULL);
    CHECK(same_ids(ids, got, want, n));
    free(ids);
}

/* Expectations the library gave (make_tokenizer_fixture.py asserts them again in check_added_passes). */
static void check_added_passes(void) {
    const char *vocab = WL("{\"<unk>\":0,\"ab\":1,\"abc\":2,\"c\":3,\"a b\":4,\"a\":5,\"b\":6}");
    const char *ws = ",\"pre_tokenizer\":{\"type\":\"Whitespace\"}";
    /* Tokens matched on the raw text go first, so "ab" wins over the normalized "abc". */
    struct tokenizer *t = load_parts(vocab,
                                     "[{\"id\":1,\"content\":\"ab\",\"normalized\":false,\"special\":true},"
                                     "{\"id\":2,\"content\":\"abc\",\"normalized\":true,\"special\":true}]",
                                     ws);
    CHECK(t != NULL);
    encode_is(t, "xabcx abc", 0, (const int32_t[]){0, 1, 0, 1, 3}, 5);
    tokenizer_free(t);
    t = load_parts(vocab,
                   "[{\"id\":1,\"content\":\"ab\",\"normalized\":true,\"special\":true},"
                   "{\"id\":2,\"content\":\"abc\",\"normalized\":false,\"special\":true}]",
                   ws);
    encode_is(t, "xabcx abc", 0, (const int32_t[]){0, 2, 0, 2}, 4);
    tokenizer_free(t);
    /* No pre-tokenizer: each piece between added tokens is one word; "ab" is not special. */
    t = load_parts(vocab,
                   "[{\"id\":1,\"content\":\"ab\",\"normalized\":false,\"special\":false},"
                   "{\"id\":2,\"content\":\"abc\",\"normalized\":false,\"special\":true}]",
                   ",\"pre_tokenizer\":null");
    CHECK(t != NULL && t->bos < 0 && t->vocab_size == 7);
    encode_is(t, "a b abcab", 0, (const int32_t[]){0, 2, 1}, 3);
    char *s = t ? tokenizer_decode(t, (const int32_t[]){1, 2, 4, 99, -3}, 5, 1) : NULL;
    CHECK_STR(s, "ab a b");
    free(s);
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK(t && tokenizer_encode(t, "a", 1, &ids, &n) == -1);
    CHECK_HAS(err_msg(), "no <s>");
    tokenizer_free(t);
}

static void check_encode_edges(void) {
    struct tokenizer *t = open_fixture("tokenizer_wordlevel.json");
    if (!t)
        return;
    int32_t img = tokenizer_id(t, "<image>"), x = tokenizer_id(t, "x"), y = tokenizer_id(t, "y");
    encode_is(t, "x<image>y", 1, (const int32_t[]){t->bos, x, img, y}, 4);
    encode_is(t, "", 1, (const int32_t[]){t->bos}, 1);
    encode_is(t, "", 0, NULL, 0);
    static const char *const bad[] = {"\xff",    "a\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                                      "\xe2\x82"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK(tokenizer_encode(t, bad[k], 0, &ids, &n) == -1 && ids == NULL);
        CHECK_HAS(err_msg(), "not valid UTF-8");
    }
    char *s = tokenizer_decode(t, NULL, 0, 0);
    CHECK_STR(s, "");
    free(s);
    tokenizer_free(t);
}

int main(void) {
    check_wordlevel();
    check_synth();
    check_classes();
    check_refusals();
    check_added_passes();
    check_encode_edges();
    return check_done("test_engine_tokenizer");
}

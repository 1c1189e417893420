/* test_engine_tokenizer_bpe: LLaMA-style BPE tokenizers encode and decode exactly as Hugging Face's
 * `tokenizers` did for the fixtures of tests/reference/make_bpe_fixture.py (in every configuration LLaMA's
 * tokenizer.json comes in), the library's edge cases hold, long inputs stay fast, and hostile or unsupported
 * tokenizer.json files are refused with one line. */
#include "check.h"
#include "engine/tokenizer.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fsio.h"
#include "util/json.h"

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

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

static int same_ids(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

/* ---- the fixture --------------------------------------------------------------------------------------- */

/* The next tab-separated field of *p (up to a tab or the line end), NUL-terminated in place. */
static char *field(char **p) {
    char *s = *p, *end = s + strcspn(s, "\t\n");
    *p = *end ? end + 1 : end;
    *end = 0;
    return s;
}

static char *json_text(const char *s) {
    struct json *v = json_parse(s, strlen(s));
    char *out = v && v->type == JSON_STR ? xstrdup(v->s) : NULL;
    json_free(v);
    return out;
}

static size_t parse_ids(const char *s, int32_t *ids, size_t cap) {
    size_t n = 0;
    for (char *end; *s && n < cap; s = end)
        ids[n++] = (int32_t)strtol(s, &end, 10);
    return n;
}

/* What make_bpe_fixture.py's apply_patch does, on the parsed base tokenizer.json. */
static void apply_patch(struct json *root, const struct json *patch) {
    struct json *model = (struct json *)json_get(root, "model");
    for (size_t i = 0; i < patch->len; i++) {
        const char *k = patch->keys[i];
        const struct json *v = patch->items[i];
        if (!strcmp(k, "normalizer") || !strcmp(k, "pre_tokenizer") || !strcmp(k, "decoder") ||
            !strcmp(k, "post_processor"))
            json_set(root, k, json_clone(v));
        for (size_t j = 0; !strcmp(k, "model") && j < v->len; j++)
            json_set(model, v->keys[j], json_clone(v->items[j]));
    }
    const struct json *merges = json_get(model, "merges"), *added = json_get(root, "added_tokens");
    for (size_t i = 0; json_get(patch, "merges_as_strings") && i < merges->len; i++) {
        struct json *m = merges->items[i];
        char text[256];
        snprintf(text, sizeof text, "%s %s", m->items[0]->s, m->items[1]->s);
        json_free(m);
        merges->items[i] = json_str(text);
    }
    for (size_t i = 0; json_get(patch, "added_normalized") && i < added->len; i++) {
        const char *c = json_get_str(added->items[i], "content");
        json_set(added->items[i], "normalized", json_bool(!strcmp(c, "<image>") || !strcmp(c, "<pad>")));
    }
}

static struct tokenizer *load_json(const struct json *root) {
    size_t n = 0;
    char *text = json_write(root, JSON_CANONICAL, &n);
    struct tokenizer *t = text ? tokenizer_load(text, n) : NULL;
    if (!t)
        fprintf(stderr, "%s\n", err_msg());
    free(text);
    return t;
}

static struct tokenizer *variant(const struct json *base, const char *patch_text) {
    struct json *root = json_clone(base), *patch = json_parse(patch_text, strlen(patch_text));
    CHECK(patch && patch->type == JSON_OBJ);
    if (patch)
        apply_patch(root, patch);
    struct tokenizer *t = patch ? load_json(root) : NULL;
    CHECK(t != NULL);
    json_free(root);
    json_free(patch);
    return t;
}

static void check_decode(const struct tokenizer *t, const int32_t *ids, size_t n, char **p) {
    char *keep = json_text(field(p)), *skip = json_text(field(p));
    char *k = tokenizer_decode(t, ids, n, 0), *s = tokenizer_decode(t, ids, n, 1);
    CHECK_STR(k, keep);
    CHECK_STR(s, skip);
    free(keep), free(skip), free(k), free(s);
}

/* E: the ids of encode (and, with add_bos, <s> in front of them), then the decodes of those ids. */
static int check_encode(const struct tokenizer *t, char **p) {
    char *text = json_text(field(p));
    int32_t want[1024], *got = NULL, *bos = NULL;
    size_t nwant = parse_ids(field(p), want, 1024), ngot = 0, nbos = 0;
    int ok = text && tokenizer_encode(t, text, 0, &got, &ngot) == 0 && same_ids(got, ngot, want, nwant);
    CHECK(ok);
    if (!ok)
        fprintf(stderr, "  text %s: got %zu ids, the library %zu\n", text ? text : "(bad)", ngot, nwant);
    CHECK(text && tokenizer_encode(t, text, 1, &bos, &nbos) == 0 && nbos == nwant + 1 && bos[0] == t->bos &&
          same_ids(bos + 1, nbos - 1, want, nwant));
    check_decode(t, want, nwant, p);
    free(text), free(got), free(bos);
    return ok;
}

static void check_fixture(void) {
    size_t njson = 0, nfx = 0;
    char *text = slurp("tokenizer_bpe.json", &njson), *fx = slurp("tokenizer_bpe_ids.txt", &nfx);
    struct json *base = text ? json_parse(text, njson) : NULL;
    struct tokenizer *t = base ? load_json(base) : NULL;
    CHECK(t && fx);
    if (!t || !fx)
        goto out;
    CHECK(strncmp(fx, "vocab_size:", 11) == 0 && atoi(fx + 11) == t->vocab_size);
    CHECK(t->unk == 0 && t->bos == 1 && t->eos == 2 && t->pad == t->vocab_size - 1);
    CHECK(tokenizer_id(t, "<image>") == t->vocab_size - 2 && tokenizer_id(t, "<0x0A>") == 3 + 10);
    CHECK_STR(tokenizer_token(t, 3), "<0x00>");
    int variants = 0, lines = 0, wrong = 0;
    for (char *p = strchr(fx, '\n') + 1; *p;) {
        char *kind = field(&p);
        if (!strcmp(kind, "V")) {
            tokenizer_free(t);
            t = variant(base, field(&p));
            variants++;
        } else if (t && !strcmp(kind, "E")) {
            wrong += !check_encode(t, &p), lines++;
        } else if (t && !strcmp(kind, "D")) {
            int32_t ids[64];
            size_t n = parse_ids(field(&p), ids, 64);
            check_decode(t, ids, n, &p), lines++;
        }
    }
    CHECK(variants == 9 && lines > 700 && wrong == 0);
out:
    tokenizer_free(t);
    json_free(base);
    free(text);
    free(fx);
}

/* ---- the library's edge cases (make_bpe_fixture.py's check_edges asserts them against it) -------------- */

#define EDGE_VOCAB                                                                                           \
    "{\"<unk>\":0,\"a\":1,\"b\":2,\"ab\":3,\"ba\":4,\"aa\":5,\"<0x78>\":6,\"\xe2\x96\x81\":7,"               \
    "\"\xe2\x96\x81"                                                                                         \
    "a\":8}"
#define LLAMA_NORM                                                                                           \
    "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\xe2\x96\x81\"},"           \
    "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xe2\x96\x81\"}]}"

/* A tokenizer.json from its parts, with the edge vocabulary and byte fallback; unk is a JSON value. */
static struct tokenizer *small(const char *merges, const char *unk, bool fuse, const char *normalizer,
                               const char *pre, const char *added) {
    char text[4096];
    snprintf(text, sizeof text,
             "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"normalizer\":%s,"
             "\"pre_tokenizer\":%s,\"post_processor\":null,\"decoder\":null,\"added_tokens\":%s,"
             "\"model\":{\"type\":\"BPE\",\"unk_token\":%s,\"fuse_unk\":%s,\"byte_fallback\":true,"
             "\"vocab\":" EDGE_VOCAB ",\"merges\":%s}}",
             normalizer, pre, added, unk, fuse ? "true" : "false", merges);
    struct tokenizer *t = tokenizer_load(text, strlen(text));
    if (!t)
        fprintf(stderr, "%s\n", err_msg());
    return t;
}

static void encode_is(const struct tokenizer *t, const char *text, const int32_t *want, size_t n) {
    int32_t *ids = NULL;
    size_t got = 0;
    CHECK(t && tokenizer_encode(t, text, 0, &ids, &got) == 0 && same_ids(ids, got, want, n));
    free(ids);
}

#define IDS(...) (const int32_t[]){__VA_ARGS__}, sizeof((const int32_t[]){__VA_ARGS__}) / sizeof(int32_t)

static void check_edges(void) {
    /* A merge listed twice takes the rank of its last line; equal ranks merge leftmost first. */
    struct tokenizer *t = small("[\"a b\",\"b a\",\"a b\"]", "\"<unk>\"", true, "null", "null", "[]");
    encode_is(t, "abab", IDS(1, 4, 2));
    tokenizer_free(t);
    t = small("[[\"a\",\"b\"],[\"b\",\"a\"]]", "\"<unk>\"", true, "null", "null", "[]");
    encode_is(t, "abab", IDS(3, 3));
    tokenizer_free(t);
    t = small("[\"#version: 0.2\",\"a a\"]", "\"<unk>\"", true, "null", "null", "[]");
    encode_is(t, "aaaaa", IDS(5, 5, 1));
    tokenizer_free(t);
    /* Byte fallback needs every byte of a character; an unknown one waits (fused) for a known character. */
    t = small("[]", "\"<unk>\"", true, "null", "null", "[]");
    encode_is(t, "zxzyxa", IDS(6, 6, 0, 1));
    tokenizer_free(t);
    t = small("[]", "\"<unk>\"", false, "null", "null", "[]");
    encode_is(t, "zxzyxa", IDS(6, 0, 0, 6, 0, 1));
    tokenizer_free(t);
    t = small("[]", "null", true, "null", "null", "[]");
    encode_is(t, "zaz", IDS(1));
    CHECK(t && t->unk == -1);
    tokenizer_free(t);
    /* Normalized added tokens are matched as the normalizer writes them: "<i>" becomes "▁<i>". */
    const char *added = "[{\"id\":9,\"content\":\"<i>\",\"normalized\":%s,\"special\":true}]";
    char buf[256];
    snprintf(buf, sizeof buf, added, "true");
    t = small("[\"\xe2\x96\x81 a\"]", "\"<unk>\"", true, LLAMA_NORM, "null", buf);
    encode_is(t, "a<i>", IDS(8, 0));
    encode_is(t, "a <i>a", IDS(8, 9, 1));
    tokenizer_free(t);
    /* Metaspace "first": ▁ only in front of the piece at the very start; split: a word at each ▁. */
    snprintf(buf, sizeof buf, added, "false");
    t = small("[\"\xe2\x96\x81 a\"]", "\"<unk>\"", true, "null",
              "{\"type\":\"Metaspace\",\"replacement\":\"\xe2\x96\x81\",\"prepend_scheme\":\"first\","
              "\"split\":true}",
              buf);
    encode_is(t, "a<i>a a", IDS(8, 9, 1, 8));
    encode_is(t, "<i>a", IDS(9, 1));
    tokenizer_free(t);
}

/* The ByteFallback decoder reads <0xNN> as Rust's u8::from_str_radix does: lower case and "+" too. */
static void check_byte_decoder(void) {
    const char *text =
        "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"normalizer\":null,\"pre_tokenizer\":"
        "null,"
        "\"post_processor\":null,\"added_tokens\":[],\"decoder\":{\"type\":\"Sequence\",\"decoders\":["
        "{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"}]},\"model\":{\"type\":\"BPE\",\"vocab\":"
        "{\"<0x+A>\":0,\"<0xe9>\":1,\"<0xC3>\":2,\"<0xA9>\":3,\"<0x-1>\":4},\"merges\":[]}}";
    struct tokenizer *t = tokenizer_load(text, strlen(text));
    CHECK(t != NULL);
    char *s = t ? tokenizer_decode(t, (const int32_t[]){0, 2, 3, 4, 1}, 5, 0) : NULL;
    CHECK_STR(s, "\n\xc3\xa9<0x-1>\xef\xbf\xbd");
    free(s);
    tokenizer_free(t);
}

/* ---- long and bad input -------------------------------------------------------------------------------- */

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A few MB of text with no space is one word to LLaMA's pipeline: merging must stay n log n. */
static void check_long(void) {
    struct tokenizer *t = tokenizer_open(data_path("tokenizer_bpe.json"));
    CHECK(t != NULL);
    if (!t)
        return;
    static const char *const parts[] = {"the",    "aaaa", "\xc3\xa9", "\xf0\x9f\xa6\x84",
                                        "person", "1978", "\n"};
    struct buf b = {0};
    for (unsigned i = 0; b.len < (1u << 20); i = i * 1103515245u + 12345u)
        buf_puts(&b, parts[(i >> 16) % 7]);
    int32_t *ids = NULL;
    size_t n = 0;
    double t0 = seconds();
    CHECK(tokenizer_encode(t, b.data, 0, &ids, &n) == 0 && n > 0);
    double dt = seconds() - t0;
    printf("encode %zu bytes as one word: %zu ids in %.2f s\n", b.len, n, dt);
    CHECK(dt < 20);
    char *back = ids ? tokenizer_decode(t, ids, n, 0) : NULL;
    CHECK(back && strcmp(back, b.data) == 0); /* LLaMA's decoder undoes its normalizer */
    free(back), free(ids), buf_free(&b);
    char *huge = xmalloc((17u << 20) + 1);
    memset(huge, 'a', 17u << 20);
    huge[17u << 20] = 0;
    ids = NULL;
    CHECK(tokenizer_encode(t, huge, 0, &ids, &n) == -1 && ids == NULL);
    CHECK_HAS(err_msg(), "longer than the 16 MiB limit");
    CHECK(tokenizer_encode(t, "a\xff", 0, &ids, &n) == -1);
    CHECK_HAS(err_msg(), "not valid UTF-8");
    tokenizer_free(t);
    /* A normalizer that would grow 2 MB past 64 MiB is stopped before it allocates. */
    const char *grow =
        "{\"normalizer\":{\"type\":\"Replace\",\"pattern\":{\"String\":\"a\"},\"content\":"
        "\"0123456789012345678901234567890123456789\"},\"model\":{\"type\":\"BPE\",\"vocab\":{},"
        "\"merges\":[]}}";
    t = tokenizer_load(grow, strlen(grow));
    CHECK(t != NULL);
    huge[2u << 20] = 0;
    CHECK(t && tokenizer_encode(t, huge, 0, &ids, &n) == -1);
    CHECK_HAS(err_msg(), "normalized text would be longer than 64 MiB");
    huge[1u << 16] = 0;
    CHECK(t && tokenizer_encode(t, huge, 0, &ids, &n) == 0 && n == 0); /* no vocabulary, no unk: dropped */
    free(ids);
    free(huge);
    tokenizer_free(t);
}

/* ---- refusals ------------------------------------------------------------------------------------------ */

static const char *const LLAMA_DECODER =
    "{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"\xe2\x96\x81\"},"
    "\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},{\"type\":\"Strip\",\"content\":\" "
    "\","
    "\"start\":1,\"stop\":0}]}";

/* A tokenizer.json with LLaMA's pipeline; model is the inside of the model object after its type. */
static void refused_with(const char *model, const char *added, const char *extra, const char *msg) {
    char text[8192];
    snprintf(text, sizeof text,
             "{\"added_tokens\":%s,\"normalizer\":" LLAMA_NORM
             ",\"decoder\":%s,\"model\":{\"type\":\"BPE\"%s}%s}",
             added, LLAMA_DECODER, model, extra);
    struct tokenizer *t = tokenizer_load(text, strlen(text));
    CHECK(t == NULL);
    CHECK_HAS(err_msg(), msg);
    CHECK(strchr(err_msg(), '\n') == NULL);
    if (t || !strstr(err_msg(), msg))
        fprintf(stderr, "  for %s%s\n", model, extra);
    tokenizer_free(t);
}

#define V3 ",\"unk_token\":\"<unk>\",\"vocab\":{\"<unk>\":0,\"a\":1,\"b\":2,\"ab\":3}"
#define NO_ADDED "[]"

static void check_refusals_model(void) {
    struct tokenizer *t = NULL;
    char text[1024];
    snprintf(text, sizeof text, "{\"model\":{\"type\":\"BPE\"" V3 ",\"merges\":[\"a b\"]},\"decoder\":%s}",
             LLAMA_DECODER);
    CHECK((t = tokenizer_load(text, strlen(text))) != NULL);
    tokenizer_free(t);
    refused_with(V3 ",\"merges\":[\"a b c\"]", NO_ADDED, "", "model.merges[0] is not \"a b\"");
    refused_with(V3 ",\"merges\":[\"ab\"]", NO_ADDED, "", "model.merges[0] is not");
    refused_with(V3 ",\"merges\":[\"a  b\"]", NO_ADDED, "", "model.merges[0] is not");
    refused_with(V3 ",\"merges\":[[\"a\",\"b\",\"c\"]]", NO_ADDED, "", "model.merges[0] is not");
    refused_with(V3 ",\"merges\":[[\"a\",1]]", NO_ADDED, "", "model.merges[0] is not");
    refused_with(V3 ",\"merges\":[7]", NO_ADDED, "", "model.merges[0] is not");
    refused_with(V3 ",\"merges\":[\"a b\",[\"b\",\"a\"]]", NO_ADDED, "", "mixes the");
    refused_with(V3 ",\"merges\":[\"a x\"]", NO_ADDED, "",
                 "merges[0]: its right token is not in model.vocab");
    refused_with(V3 ",\"merges\":[\"a b\",\"x a\"]", NO_ADDED, "", "merges[1]: its left token is not");
    refused_with(V3 ",\"merges\":[\"b a\"]", NO_ADDED, "", "merges[0]: the merged token is not");
    refused_with(V3 ",\"merges\":[\"a\\u0000 b\"]", NO_ADDED, "", "model.merges[0] is not");
    refused_with(V3 ",\"merges\":{}", NO_ADDED, "", "model.merges must be an array");
    refused_with(V3, NO_ADDED, "", "model.merges must be an array");
    refused_with(",\"vocab\":[],\"merges\":[]", NO_ADDED, "", "model.vocab must be an object");
    refused_with(",\"vocab\":{\"a\":-1},\"merges\":[]", NO_ADDED, "", "out of range");
    refused_with(",\"vocab\":{\"a\":0,\"b\":0},\"merges\":[]", NO_ADDED, "", "id 0 is given to both");
    refused_with(",\"unk_token\":\"<x>\",\"vocab\":{\"a\":0},\"merges\":[]", NO_ADDED, "",
                 "unk_token '<x>' is not in model.vocab");
    refused_with(",\"unk_token\":7,\"vocab\":{\"a\":0},\"merges\":[]", NO_ADDED, "", "unk_token must be");
    refused_with(V3 ",\"merges\":[],\"dropout\":0.1", NO_ADDED, "", "model.dropout is not supported");
    refused_with(V3 ",\"merges\":[],\"ignore_merges\":true", NO_ADDED, "", "ignore_merges true");
    refused_with(V3 ",\"merges\":[],\"byte_fallback\":1", NO_ADDED, "", "must be booleans");
    refused_with(V3 ",\"merges\":[],\"continuing_subword_prefix\":\"##\"", NO_ADDED, "",
                 "continuing_subword_prefix is not supported");
    refused_with(V3 ",\"merges\":[],\"cache_capacity\":3", NO_ADDED, "", "model.cache_capacity is not");
}

static void check_refusals_added(void) {
    const char *m = V3 ",\"merges\":[]";
    refused_with(m, "[{\"id\":7,\"content\":\"<image>\",\"normalized\":false,\"special\":true}]", "",
                 "added token '<image>' has id 7 but Hugging Face tokenizers gives it 4");
    refused_with(m,
                 "[{\"id\":4,\"content\":\"<x>\",\"normalized\":false,\"special\":true},"
                 "{\"id\":6,\"content\":\"<y>\",\"normalized\":false,\"special\":true}]",
                 "", "'<y>' has id 6 but Hugging Face tokenizers gives it 5");
    refused_with(m, "[{\"id\":9,\"content\":\"a\",\"normalized\":false,\"special\":true}]", "",
                 "'a' has id 9 but the vocabulary gives it 1");
    refused_with(m, "[{\"id\":4,\"content\":\"<x>\\u0000y\",\"normalized\":false,\"special\":true}]", "",
                 "the content holds a NUL");
    refused_with(m, "[{\"id\":4,\"content\":\"<x>\",\"rstrip\":true,\"normalized\":false,\"special\":true}]",
                 "", "rstrip is not supported");
    refused_with(m, "{}", "", "added_tokens must be an array");
    /* Holes in the ids: the library gives <x> the vocabulary's size, 3, which "c" has. */
    refused_with(",\"vocab\":{\"a\":0,\"b\":1,\"c\":3},\"merges\":[]",
                 "[{\"id\":3,\"content\":\"<x>\",\"normalized\":false,\"special\":true}]", "",
                 "id 3 is given to both");
}

static void check_refusals_pipeline(void) {
    const char *m = V3 ",\"merges\":[]";
    refused_with(m, NO_ADDED, ",\"pre_tokenizer\":{\"type\":\"ByteLevel\"}",
                 "model type BPE is not supported with pre_tokenizer ByteLevel");
    refused_with(m, NO_ADDED,
                 ",\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"\xe2\x96\x81\","
                 "\"prepend_scheme\":\"first\"}",
                 "Metaspace only without a normalizer");
    refused_with(m, NO_ADDED, ",\"post_processor\":{\"type\":\"ByteLevel\"}", "post_processor ByteLevel");
    refused_with(m, NO_ADDED, ",\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":1}",
                 "post_processor TemplateProcessing");
    refused_with(m, NO_ADDED, ",\"version\":\"2.0\"", "version must be \"1.0\"");
    refused_with(m, NO_ADDED, ",\"truncation\":{\"max_length\":8}", "truncation (set)");
    refused_with(m, NO_ADDED, ",\"padding\":{\"strategy\":\"BatchLongest\"}", "padding (set)");
}

/* Each bad normalizer, pre-tokenizer or decoder in place of LLaMA's. */
static void refused_part(const char *part, const char *value, const char *msg) {
    char text[2048];
    snprintf(text, sizeof text, "{\"%s\":%s,\"model\":{\"type\":\"BPE\"" V3 ",\"merges\":[]}}", part, value);
    struct tokenizer *t = tokenizer_load(text, strlen(text));
    CHECK(t == NULL);
    CHECK_HAS(err_msg(), msg);
    if (t)
        fprintf(stderr, "  accepted %s %s\n", part, value);
    tokenizer_free(t);
}

static void check_refusals_parts(void) {
    refused_part("normalizer", "{\"type\":\"NFKC\"}", "normalizer NFKC");
    refused_part("normalizer", "{\"type\":\"Replace\",\"pattern\":{\"Regex\":\" \"},\"content\":\"x\"}",
                 "normalizer Replace");
    refused_part("normalizer", "{\"type\":\"Replace\",\"pattern\":{\"String\":\"\"},\"content\":\"x\"}",
                 "normalizer Replace");
    refused_part("normalizer", "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Lowercase\"}]}",
                 "normalizer Sequence");
    refused_part("normalizer", "{\"type\":\"Prepend\",\"prepend\":\"x\",\"extra\":1}", "normalizer Prepend");
    refused_part("pre_tokenizer", "{\"type\":\"Metaspace\",\"replacement\":\"ab\"}",
                 "pre_tokenizer Metaspace");
    refused_part("pre_tokenizer",
                 "{\"type\":\"Metaspace\",\"replacement\":\"_\",\"prepend_scheme\":\"sometimes\"}",
                 "pre_tokenizer Metaspace");
    refused_part("pre_tokenizer", "{\"type\":\"Metaspace\",\"replacement\":\"_\",\"add_prefix_space\":false}",
                 "pre_tokenizer Metaspace");
    refused_part("decoder", "{\"type\":\"Strip\",\"content\":\" \",\"start\":1,\"stop\":1}", "decoder Strip");
    refused_part("decoder", "{\"type\":\"Strip\",\"content\":\"  \",\"start\":1,\"stop\":0}",
                 "decoder Strip");
    refused_part("decoder", "{\"type\":\"ByteLevel\"}", "decoder ByteLevel");
    refused_part("decoder", "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"__\"}",
                 "decoder Replace");
    refused_part("decoder", "{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Fuse\",\"x\":1}]}",
                 "decoder Sequence");
    refused_part("decoder", "{\"type\":\"Sequence\",\"decoders\":{}}", "decoder Sequence");
    refused_part("decoder", "{\"type\":\"CTC\"}", "decoder CTC");
}

int main(void) {
    check_fixture();
    check_edges();
    check_byte_decoder();
    check_long();
    check_refusals_model();
    check_refusals_added();
    check_refusals_pipeline();
    check_refusals_parts();
    return check_done("test_engine_tokenizer_bpe");
}

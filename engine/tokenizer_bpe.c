/* tokenizer_bpe: the BPE model of Hugging Face `tokenizers`, with the normalizer, pre-tokenizer and decoder
 * that LLaMA's tokenizer.json (transformers' LlamaConverter, legacy or not) puts around it, reproduced
 * exactly, quirks included (see docs/formats.md, "Tokenizer"). Anything else is refused when loading. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tokenizer_impl.h"
#include "util/buf.h"
#include "util/err.h"

/* Text is refused beyond this (a word's symbols take 16 bytes a character); a normalizer may grow it to the
 * second limit. LLaVA's prompts are a few KB. */
#define BPE_MAX_TEXT (16u << 20)
#define BPE_MAX_NORMALIZED (64u << 20)
#define BPE_MAX_STEPS 16

enum { STEP_PREPEND, STEP_REPLACE, STEP_BYTE_FALLBACK, STEP_FUSE, STEP_STRIP, STEP_METASPACE };
enum { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER };

/* One normalizer or decoder: Prepend(a), Replace(a by b), Strip(a, start), Metaspace(a, prepend). */
struct step {
    int kind;
    char *a, *b;
    size_t alen, blen;
    int64_t start;
    int prepend;
};

struct merge_slot {
    uint64_t pair; /* left id << 32 | right id; EMPTY_PAIR when free */
    uint32_t rank;
    int32_t id;
};
#define EMPTY_PAIR UINT64_MAX

struct tok_bpe {
    unsigned char *in_model; /* by id, below nmodel: the id is model.vocab's, not only an added token's */
    int32_t nmodel;
    int32_t byte_id[256]; /* <0xNN> in model.vocab, or -1 */
    int32_t unk;          /* model.unk_token's id; -1 when there is none (unknown characters are dropped) */
    bool byte_fallback, fuse_unk;
    struct merge_slot *merge;
    size_t merge_mask;
    struct step norm[BPE_MAX_STEPS], dec[BPE_MAX_STEPS];
    size_t nnorm, ndec;
    bool has_decoder;
    bool metaspace; /* the Metaspace pre-tokenizer: its replacement in pre.a, scheme in pre.prepend */
    bool split;
    struct step pre;
};

/* ---- small helpers ------------------------------------------------------------------------------------ */

/* A JSON string value without NUL bytes (tokens are C strings); NULL otherwise. */
static const char *plain_str(const struct json *v) {
    return v && v->type == JSON_STR && strlen(v->s) == v->len ? v->s : NULL;
}

/* The first key of obj that is not one of the NULL-terminated names, or NULL. */
static const char *other_key(const struct json *obj, const char *const *names) {
    for (size_t i = 0; i < obj->len; i++) {
        size_t k = 0;
        while (names[k] && strcmp(names[k], obj->keys[i]) != 0)
            k++;
        if (!names[k])
            return obj->keys[i];
    }
    return NULL;
}

static bool only_keys(const struct json *obj, const char *const *names) {
    return other_key(obj, names) == NULL;
}

/* A boolean field: absent or null gives def. */
static int opt_bool(const struct json *obj, const char *key, bool def, bool *out) {
    const struct json *v = json_get(obj, key);
    if (v && v->type != JSON_NULL && v->type != JSON_BOOL)
        return -1;
    *out = v && v->type == JSON_BOOL ? v->b : def;
    return 0;
}

static bool is_null(const struct json *v) {
    return !v || v->type == JSON_NULL;
}

/* The length of the one code point s holds, 0 if it holds another number of them. */
static size_t one_char(const char *s) {
    uint32_t cp;
    size_t n = strlen(s), k = n ? tok_utf8_next((const unsigned char *)s, n, &cp) : 0;
    return k == n ? k : 0;
}

static int32_t model_id(const struct tok_bpe *b, const struct tokenizer_impl *m, const char *s, size_t n) {
    int32_t id = tok_vocab_find(m, s, n);
    return id >= 0 && id < b->nmodel && b->in_model[id] ? id : -1;
}

/* ---- loading: normalizer, pre-tokenizer, decoder ------------------------------------------------------ */

static int refuse(const char *part, const struct json *v, const char *accepted) {
    const char *type = json_get_str(v, "type");
    return err_set("tokenizer: model type BPE is not supported with %s %s (%s)", part, type ? type : "(set)",
                   accepted);
}

/* Replace: {"pattern": {"String": a}, "content": b}; regular expressions are refused. */
static int parse_replace(const struct json *v, struct step *s) {
    static const char *const keys[] = {"type", "pattern", "content", NULL};
    const struct json *pat = json_get(v, "pattern");
    const char *a = pat && pat->len == 1 ? plain_str(json_get(pat, "String")) : NULL;
    const char *b = plain_str(json_get(v, "content"));
    if (!only_keys(v, keys) || !a || !*a || !b)
        return -1;
    *s = (struct step){STEP_REPLACE, xstrdup(a), xstrdup(b), strlen(a), strlen(b), 0, 0};
    return 0;
}

/* Metaspace's fields as the library reads them: prepend_scheme defaults to always, split to true, and a
 * false add_prefix_space (the older spelling) must agree with the scheme. */
static int parse_metaspace(const struct json *v, struct step *s, bool *split) {
    static const char *const keys[] = {
        "type", "replacement", "prepend_scheme", "split", "add_prefix_space", "str_rep", NULL};
    static const char *const schemes[] = {"always", "first", "never"};
    const char *repl = plain_str(json_get(v, "replacement"));
    const struct json *scheme = json_get(v, "prepend_scheme");
    bool add_prefix;
    if (!only_keys(v, keys) || !repl || !one_char(repl) || opt_bool(v, "split", true, split) != 0 ||
        opt_bool(v, "add_prefix_space", true, &add_prefix) != 0)
        return -1;
    int prepend = PREPEND_ALWAYS;
    if (!is_null(scheme)) {
        const char *name = plain_str(scheme);
        for (prepend = 0; name && prepend < 3 && strcmp(name, schemes[prepend]) != 0; prepend++)
            ;
        if (!name || prepend == 3)
            return -1;
    }
    if (!add_prefix && prepend != PREPEND_NEVER)
        return -1;
    *s = (struct step){STEP_METASPACE, xstrdup(repl), NULL, strlen(repl), 0, 0, prepend};
    return 0;
}

static int parse_norm_step(const struct json *v, struct step *s) {
    static const char *const keys[] = {"type", "prepend", NULL};
    const char *type = json_get_str(v, "type");
    const char *pre = plain_str(json_get(v, "prepend"));
    if (type && strcmp(type, "Replace") == 0)
        return parse_replace(v, s);
    if (!type || strcmp(type, "Prepend") != 0 || !only_keys(v, keys) || !pre || !*pre)
        return -1;
    *s = (struct step){STEP_PREPEND, xstrdup(pre), NULL, strlen(pre), 0, 0, 0};
    return 0;
}

static int parse_dec_step(const struct json *v, struct step *s) {
    static const char *const bare[] = {"type", NULL}, *const strip[] = {"type", "content", "start", "stop",
                                                                        NULL};
    const char *type = json_get_str(v, "type"), *content = plain_str(json_get(v, "content"));
    int64_t start, stop;
    if (!type)
        return -1;
    /* A decoder never lengthens the text, so decode needs no limit (and cannot fail). */
    if (strcmp(type, "Replace") == 0)
        return parse_replace(v, s) != 0 || s->blen > s->alen ? -1 : 0;
    if (strcmp(type, "Metaspace") == 0) {
        bool split;
        return parse_metaspace(v, s, &split);
    }
    if (strcmp(type, "ByteFallback") == 0 || strcmp(type, "Fuse") == 0) {
        *s = (struct step){type[0] == 'B' ? STEP_BYTE_FALLBACK : STEP_FUSE, NULL, NULL, 0, 0, 0, 0};
        return only_keys(v, bare) ? 0 : -1;
    }
    /* Strip's stop is refused: the library panics on tokens shorter than it. */
    if (strcmp(type, "Strip") != 0 || !only_keys(v, strip) || !content || !one_char(content) ||
        json_get_int(v, "start", &start) != 0 || start < 0 || json_get_int(v, "stop", &stop) != 0 ||
        stop != 0)
        return -1;
    *s = (struct step){STEP_STRIP, xstrdup(content), NULL, strlen(content), 0, start, 0};
    return 0;
}

/* A Sequence of steps or a single one, into steps[]. */
static int parse_steps(const struct json *v, const char *list, int (*one)(const struct json *, struct step *),
                       struct step *steps, size_t *n) {
    const char *type = json_get_str(v, "type");
    const struct json *items = json_get(v, list);
    if (!type || strcmp(type, "Sequence") != 0)
        return one(v, &steps[(*n)++]);
    if (!items || items->type != JSON_ARR || v->len != 2 || items->len > BPE_MAX_STEPS)
        return -1;
    for (size_t i = 0; i < items->len; i++)
        if (one(items->items[i], &steps[(*n)++]) != 0)
            return -1;
    return 0;
}

/* TemplateProcessing is not applied (encode is add_special_tokens=False), only checked for its shape. */
static bool template_shaped(const struct json *v) {
    static const char *const keys[] = {"type", "single", "pair", "special_tokens", NULL};
    const char *type = json_get_str(v, "type");
    const struct json *single = json_get(v, "single"), *pair = json_get(v, "pair");
    const struct json *special = json_get(v, "special_tokens");
    return type && strcmp(type, "TemplateProcessing") == 0 && only_keys(v, keys) && single &&
           single->type == JSON_ARR && pair && pair->type == JSON_ARR && special && special->type == JSON_OBJ;
}

static int load_pipeline(struct tok_bpe *b, const struct json *root) {
    const struct json *norm = json_get(root, "normalizer"), *pre = json_get(root, "pre_tokenizer");
    const struct json *dec = json_get(root, "decoder"), *post = json_get(root, "post_processor");
    static const char *const absent[] = {"truncation", "padding"};
    for (size_t k = 0; k < 2; k++)
        if (!is_null(json_get(root, absent[k])))
            return refuse(absent[k], json_get(root, absent[k]), "only null");
    if (!is_null(norm) && parse_steps(norm, "normalizers", parse_norm_step, b->norm, &b->nnorm) != 0)
        return refuse("normalizer", norm, "null, Prepend and Replace of a string, or a Sequence of them");
    const char *pre_type = json_get_str(pre, "type");
    if (!is_null(pre) &&
        (!pre_type || strcmp(pre_type, "Metaspace") != 0 || parse_metaspace(pre, &b->pre, &b->split) != 0))
        return refuse("pre_tokenizer", pre, "Metaspace or null");
    b->metaspace = !is_null(pre);
    if (b->metaspace && b->nnorm)
        return refuse("pre_tokenizer", pre, "Metaspace only without a normalizer, as LLaMA's tokenizer.json");
    b->has_decoder = !is_null(dec);
    if (b->has_decoder && parse_steps(dec, "decoders", parse_dec_step, b->dec, &b->ndec) != 0)
        return refuse("decoder", dec, "null, Replace, ByteFallback, Fuse, Strip, Metaspace, or a Sequence");
    if (!is_null(post) && !template_shaped(post))
        return refuse("post_processor", post, "TemplateProcessing or null: encode never applies it");
    const struct json *version = json_get(root, "version");
    if (version && (!plain_str(version) || strcmp(version->s, "1.0") != 0))
        return err_set("tokenizer: version must be \"1.0\"");
    return 0;
}

/* ---- loading: the model -------------------------------------------------------------------------------- */

static int load_model_options(struct tok_bpe *b, const struct json *model) {
    static const char *const keys[] = {"type",
                                       "dropout",
                                       "unk_token",
                                       "continuing_subword_prefix",
                                       "end_of_word_suffix",
                                       "fuse_unk",
                                       "byte_fallback",
                                       "ignore_merges",
                                       "vocab",
                                       "merges",
                                       NULL};
    static const char *const unset[] = {"dropout", "continuing_subword_prefix", "end_of_word_suffix"};
    bool ignore_merges;
    const char *other = other_key(model, keys);
    if (other)
        return err_set("tokenizer: model.%s is not supported with BPE", other);
    for (size_t k = 0; k < sizeof unset / sizeof *unset; k++)
        if (!is_null(json_get(model, unset[k])))
            return err_set("tokenizer: model.%s is not supported with BPE (only null)", unset[k]);
    if (opt_bool(model, "fuse_unk", false, &b->fuse_unk) != 0 ||
        opt_bool(model, "byte_fallback", false, &b->byte_fallback) != 0 ||
        opt_bool(model, "ignore_merges", false, &ignore_merges) != 0)
        return err_set("tokenizer: model.fuse_unk, byte_fallback and ignore_merges must be booleans");
    if (ignore_merges)
        return err_set("tokenizer: model.ignore_merges true is not supported with BPE (only false)");
    const struct json *unk = json_get(model, "unk_token");
    if (!is_null(unk) && !plain_str(unk))
        return err_set("tokenizer: model.unk_token must be a string or null");
    return 0;
}

/* Marks which ids model.vocab gave (before the added tokens join the tables), and finds unk and the bytes. */
static int index_model(struct tokenizer *t, struct tok_bpe *b, const struct json *model) {
    struct tokenizer_impl *m = t->impl;
    b->nmodel = t->vocab_size;
    b->in_model = xcalloc((size_t)b->nmodel + 1, 1);
    for (int32_t id = 0; id < b->nmodel; id++)
        b->in_model[id] = m->token[id] != NULL;
    for (int k = 0; k < 256; k++) {
        static const char hex[] = "0123456789ABCDEF";
        char name[7] = {'<', '0', 'x', hex[k >> 4], hex[k & 15], '>', 0};
        b->byte_id[k] = model_id(b, m, name, 6);
    }
    const char *unk = plain_str(json_get(model, "unk_token"));
    b->unk = unk ? model_id(b, m, unk, strlen(unk)) : -1;
    /* The library fails only when an unknown character needs it; refusing up front is simpler. */
    if (unk && b->unk < 0)
        return err_set("tokenizer: model.unk_token '%s' is not in model.vocab", unk);
    return 0;
}

static size_t merge_home(const struct tok_bpe *b, uint64_t pair) {
    return (size_t)((pair * 0x9E3779B97F4A7C15ull) >> 32) & b->merge_mask;
}

static const struct merge_slot *merge_find(const struct tok_bpe *b, int32_t left, int32_t right) {
    uint64_t pair = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    size_t k = merge_home(b, pair);
    while (b->merge[k].pair != EMPTY_PAIR && b->merge[k].pair != pair)
        k = (k + 1) & b->merge_mask;
    return &b->merge[k];
}

/* A pair listed twice keeps the rank of its last line, as the library's map does. */
static void merge_put(struct tok_bpe *b, int32_t left, int32_t right, uint32_t rank, int32_t id) {
    struct merge_slot *s = (struct merge_slot *)merge_find(b, left, right);
    *s = (struct merge_slot){(uint64_t)(uint32_t)left << 32 | (uint32_t)right, rank, id};
}

/* One merge: "a b" (exactly one space) or ["a", "b"]; a, b and a+b must be model tokens. */
static int load_merge(struct tokenizer *t, struct tok_bpe *b, const struct json *v, size_t i, uint32_t rank) {
    const char *s = plain_str(v), *sp = s ? strchr(s, ' ') : NULL;
    struct buf ab = {0};
    size_t alen;
    if (v->type == JSON_ARR && v->len == 2 && plain_str(v->items[0]) && plain_str(v->items[1])) {
        buf_puts(&ab, v->items[0]->s);
        alen = ab.len;
        buf_puts(&ab, v->items[1]->s);
    } else if (sp && !strchr(sp + 1, ' ')) {
        buf_puts(&ab, s);
        alen = (size_t)(sp - s);
        memmove(ab.data + alen, ab.data + alen + 1, ab.len - alen), ab.len--;
    } else {
        return err_set("tokenizer: model.merges[%zu] is not \"a b\" or [\"a\", \"b\"]", i);
    }
    int32_t left = model_id(b, t->impl, ab.data, alen),
            right = model_id(b, t->impl, ab.data + alen, ab.len - alen);
    int32_t id = model_id(b, t->impl, ab.data, ab.len);
    if (left < 0 || right < 0 || id < 0) {
        const char *what = left < 0 ? "its left token" : right < 0 ? "its right token" : "the merged token";
        err_set("tokenizer: model.merges[%zu]: %s is not in model.vocab", i, what);
    } else {
        merge_put(b, left, right, rank, id);
    }
    buf_free(&ab);
    return left < 0 || right < 0 || id < 0 ? -1 : 0;
}

/* Both forms, but not mixed (the library reads the list as one or the other); "#version" lines of the
 * string form are skipped without taking a rank. */
static int load_merges(struct tokenizer *t, struct tok_bpe *b, const struct json *model) {
    const struct json *merges = json_get(model, "merges");
    if (!merges || merges->type != JSON_ARR)
        return err_set("tokenizer: model.merges must be an array");
    size_t cap = 16;
    while (cap < 2 * merges->len + 2)
        cap *= 2;
    b->merge = xmalloc(cap * sizeof *b->merge);
    memset(b->merge, 0xFF, cap * sizeof *b->merge);
    b->merge_mask = cap - 1;
    uint32_t rank = 0;
    for (size_t i = 0; i < merges->len; i++) {
        const struct json *v = merges->items[i];
        if (v->type != merges->items[0]->type)
            return err_set("tokenizer: model.merges mixes the \"a b\" and [\"a\", \"b\"] forms");
        if (v->type == JSON_STR && strncmp(v->s, "#version", 8) == 0)
            continue;
        if (load_merge(t, b, v, i, rank++) != 0)
            return -1;
    }
    return 0;
}

/* ---- loading: added tokens ----------------------------------------------------------------------------- */

/* The library ignores the ids added_tokens states: it gives a token the model's id for the same text, or the
 * next free one after the vocabulary's size (entries, not highest id). A file where the two disagree would
 * tokenize differently here, so it is refused. */
static int check_added_ids(const struct tokenizer *t, const struct tok_bpe *b, size_t vocab_len) {
    const struct tokenizer_impl *m = t->impl;
    int64_t max = -1;
    for (size_t i = 0; i < m->nadded; i++) {
        const struct tok_added *a = &m->added[i];
        int64_t want = model_id(b, m, a->content, a->len);
        for (size_t k = 0; k < i && want < 0; k++)
            if (strcmp(m->added[k].content, a->content) == 0)
                want = m->added[k].id;
        if (want < 0)
            want = max >= (int64_t)vocab_len ? max + 1 : (int64_t)vocab_len;
        if (a->id != want)
            return err_set("tokenizer: added token '%s' has id %d but Hugging Face tokenizers gives it %lld",
                           a->content, a->id, (long long)want);
        max = want > max ? want : max;
    }
    return 0;
}

static int normalize(const struct tok_bpe *b, const char *s, size_t n, struct buf *out);

/* The library names a normalized added token by its normalized text in id_to_token and decode, where it is
 * special only if a special added token has that text. */
static void rename_normalized(struct tokenizer *t, const struct tok_added *a) {
    struct tokenizer_impl *m = t->impl;
    if (!m->name)
        m->name = xcalloc((size_t)t->vocab_size, sizeof *m->name);
    m->name[a->id] = a->pattern;
    m->special[a->id] = 0;
    for (size_t k = 0; k < m->nadded; k++)
        if (m->added[k].special && strcmp(m->added[k].content, a->pattern) == 0)
            m->special[a->id] = 1;
}

/* Tokens matched after normalization are matched as the normalizer writes them ("<x>" becomes "▁<x>" with
 * LLaMA's), as the library does. */
static int normalize_added(struct tokenizer *t, const struct tok_bpe *b, const struct json *added) {
    struct tokenizer_impl *m = t->impl;
    for (size_t i = 0; added && i < added->len; i++)
        if (!plain_str(json_get(added->items[i], "content")))
            return err_set("tokenizer: added_tokens[%zu]: the content holds a NUL", i);
    for (size_t i = 0; i < m->nadded; i++) {
        struct tok_added *a = &m->added[i];
        struct buf nb = {0};
        if (!a->normalized || !b->nnorm)
            continue;
        if (normalize(b, a->content, a->len, &nb) != 0)
            return -1;
        if (nb.len == 0) {
            buf_free(&nb);
            return err_set("tokenizer: added token '%s' normalizes to nothing", a->content);
        }
        a->plen = nb.len;
        a->pattern = buf_take(&nb);
    }
    for (size_t i = 0; i < m->nadded; i++)
        if (m->added[i].pattern != m->added[i].content && strcmp(m->added[i].pattern, m->added[i].content))
            rename_normalized(t, &m->added[i]);
    return 0;
}

int tok_bpe_load(struct tokenizer *t, const struct json *root, const struct json *model) {
    struct tok_bpe *b = xcalloc(1, sizeof *b);
    t->impl->bpe = b;
    const struct json *added = json_get(root, "added_tokens"), *vocab = json_get(model, "vocab");
    if (added && added->type != JSON_ARR && added->type != JSON_NULL)
        return err_set("tokenizer: added_tokens must be an array");
    if (load_pipeline(b, root) != 0 || load_model_options(b, model) != 0 ||
        tok_load_vocab(t, model, added) != 0 || index_model(t, b, model) != 0 ||
        load_merges(t, b, model) != 0 || tok_load_added(t, added) != 0 ||
        check_added_ids(t, b, vocab->len) != 0 || normalize_added(t, b, added) != 0)
        return -1;
    const char *unk = plain_str(json_get(model, "unk_token"));
    t->unk = unk ? tokenizer_id(t, unk) : -1;
    return 0;
}

static void free_steps(struct step *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(s[i].a), free(s[i].b);
}

void tok_bpe_free(struct tok_bpe *b) {
    if (!b)
        return;
    free_steps(b->norm, b->nnorm);
    free_steps(b->dec, b->ndec);
    free_steps(&b->pre, 1);
    free(b->in_model);
    free(b->merge);
    free(b);
}

/* ---- encoding: normalizer and pre-tokenizer ------------------------------------------------------------ */

/* Every occurrence of a (alen > 0 bytes), left to right, by b. */
static void replace_all(const char *s, size_t n, const char *a, size_t alen, const char *b, size_t blen,
                        struct buf *out) {
    size_t start = 0;
    for (size_t i = 0; i + alen <= n;) {
        if (memcmp(s + i, a, alen) != 0) {
            i++;
            continue;
        }
        buf_append(out, s + start, i - start);
        buf_append(out, b, blen);
        i += alen;
        start = i;
    }
    buf_append(out, s + start, n - start);
}

/* The length a normalizer step gives text of n bytes, counted before the step runs. */
static size_t step_len(const struct step *st, const char *s, size_t n) {
    if (st->kind == STEP_PREPEND)
        return n ? n + st->alen : 0;
    size_t hits = 0;
    for (size_t i = 0; i + st->alen <= n;)
        if (memcmp(s + i, st->a, st->alen) == 0)
            hits++, i += st->alen;
        else
            i++;
    return n - hits * st->alen + hits * st->blen;
}

/* The normalizer's steps: Prepend only touches non-empty text. -1 before the text would grow past the limit.
 */
static int normalize(const struct tok_bpe *b, const char *s, size_t n, struct buf *out) {
    struct buf cur = {0};
    buf_append(&cur, s, n);
    for (size_t k = 0; k < b->nnorm; k++) {
        const struct step *st = &b->norm[k];
        struct buf next = {0};
        if (step_len(st, cur.data, cur.len) > BPE_MAX_NORMALIZED) {
            buf_free(&cur);
            return err_set("tokenizer: normalized text would be longer than %u MiB",
                           BPE_MAX_NORMALIZED >> 20);
        }
        if (st->kind == STEP_PREPEND && cur.len)
            buf_append(&next, st->a, st->alen);
        if (st->kind == STEP_PREPEND)
            buf_append(&next, cur.data, cur.len);
        else
            replace_all(cur.data, cur.len, st->a, st->alen, st->b, st->blen, &next);
        buf_free(&cur);
        cur = next;
    }
    *out = cur;
    return 0;
}

static void bpe_word(const struct tokenizer *t, const char *s, size_t n, struct tok_ids *o);

/* Metaspace: spaces become the replacement, which is put in front ("always", or "first" for the piece at the
 * very start of the text) unless the piece starts with one; split starts a word at every replacement. */
static void metaspace(const struct tokenizer *t, const char *s, size_t n, size_t at, struct tok_ids *o) {
    const struct tok_bpe *b = t->impl->bpe;
    const struct step *p = &b->pre;
    struct buf w = {0};
    if (p->prepend == PREPEND_ALWAYS || (p->prepend == PREPEND_FIRST && at == 0))
        if (!(s[0] == ' ' || (n >= p->alen && memcmp(s, p->a, p->alen) == 0)))
            buf_append(&w, p->a, p->alen);
    replace_all(s, n, " ", 1, p->a, p->alen, &w);
    size_t start = 0;
    for (size_t i = 1; b->split && i + p->alen <= w.len; i++)
        if (memcmp(w.data + i, p->a, p->alen) == 0) {
            bpe_word(t, w.data + start, i - start, o);
            start = i;
        }
    bpe_word(t, w.data + start, w.len - start, o);
    buf_free(&w);
}

/* A piece left by both added-token passes: through the pre-tokenizer, then the model. */
static int bpe_piece(const struct tokenizer *t, const char *s, size_t n, size_t at, struct tok_ids *o) {
    if (n == 0)
        return 0;
    if (t->impl->bpe->metaspace)
        metaspace(t, s, n, at, o);
    else
        bpe_word(t, s, n, o);
    return 0;
}

/* A piece of the raw text between added tokens: normalized, then cut at the normalized added tokens. */
static int bpe_gap(const struct tokenizer *t, const char *s, size_t n, size_t at, struct tok_ids *o) {
    const struct tok_bpe *b = t->impl->bpe;
    struct buf nb = {0};
    if (n == 0)
        return 0;
    if (!b->nnorm)
        return tok_split_added(t, s, n, at, true, bpe_piece, o);
    if (normalize(b, s, n, &nb) != 0)
        return -1;
    int rc = tok_split_added(t, nb.data, nb.len, at, true, bpe_piece, o);
    buf_free(&nb);
    return rc;
}

int tok_bpe_encode(const struct tokenizer *t, const char *text, size_t len, struct tok_ids *o) {
    if (len > BPE_MAX_TEXT)
        return err_set("tokenizer: text of %zu bytes is longer than the %u MiB limit", len,
                       BPE_MAX_TEXT >> 20);
    return tok_split_added(t, text, len, 0, false, bpe_gap, o);
}

/* ---- encoding: the model ------------------------------------------------------------------------------- */

/* A symbol of a word; len is 0 once merged into its left neighbour. */
struct sym {
    int32_t id;
    uint32_t len;
    int32_t prev, next;
};

struct word {
    struct sym *sym;
    size_t n;
    int32_t unk_len; /* an unknown run waiting to be added, in bytes; 0 when none */
};

static void word_add(struct word *w, int32_t id, uint32_t len) {
    if (w->n)
        w->sym[w->n - 1].next = (int32_t)w->n;
    w->sym[w->n] = (struct sym){id, len, (int32_t)w->n - 1, -1};
    w->n++;
}

/* One character (k bytes): its token, else its bytes' tokens when all exist, else unk. An unknown character
 * waits (fused with the next ones when fuse_unk) until a known character comes, so byte tokens can overtake
 * it: that is the library's order. */
static void word_char(const struct tok_bpe *b, const struct tokenizer_impl *m, struct word *w, const char *s,
                      uint32_t k) {
    int32_t id = model_id(b, m, s, k);
    bool bytes = b->byte_fallback;
    for (uint32_t i = 0; id < 0 && bytes && i < k; i++)
        bytes = b->byte_id[(unsigned char)s[i]] >= 0;
    if (id >= 0) {
        if (w->unk_len)
            word_add(w, b->unk, (uint32_t)w->unk_len), w->unk_len = 0;
        word_add(w, id, k);
    } else if (bytes) {
        for (uint32_t i = 0; i < k; i++)
            word_add(w, b->byte_id[(unsigned char)s[i]], 1);
    } else if (b->unk >= 0) {
        if (w->unk_len && !b->fuse_unk)
            word_add(w, b->unk, (uint32_t)w->unk_len), w->unk_len = 0;
        w->unk_len += (int32_t)k;
    }
}

/* The merge queue: a binary min-heap on (rank, position), the order the library pops in. */
struct cand {
    uint32_t rank;
    int32_t pos, id;
};

struct heap {
    struct cand *v;
    size_t n, cap;
};

static bool cand_before(const struct cand *x, const struct cand *y) {
    return x->rank != y->rank ? x->rank < y->rank : x->pos < y->pos;
}

static void heap_push(struct heap *h, struct cand c) {
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 64;
        h->v = xrealloc(h->v, h->cap * sizeof *h->v);
    }
    size_t i = h->n++;
    for (; i > 0 && cand_before(&c, &h->v[(i - 1) / 2]); i = (i - 1) / 2)
        h->v[i] = h->v[(i - 1) / 2];
    h->v[i] = c;
}

static struct cand heap_pop(struct heap *h) {
    struct cand top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (size_t c = 1; c < h->n; i = c, c = 2 * c + 1) {
        if (c + 1 < h->n && cand_before(&h->v[c + 1], &h->v[c]))
            c++;
        if (!cand_before(&h->v[c], &last))
            break;
        h->v[i] = h->v[c];
    }
    if (h->n)
        h->v[i] = last;
    return top;
}

/* Queues the merge of the symbol at pos with its right neighbour, if there is one. */
static void queue_pair(const struct tok_bpe *b, const struct word *w, struct heap *h, int32_t pos) {
    if (pos < 0 || w->sym[pos].next < 0)
        return;
    const struct merge_slot *m = merge_find(b, w->sym[pos].id, w->sym[w->sym[pos].next].id);
    if (m->pair != EMPTY_PAIR)
        heap_push(h, (struct cand){m->rank, pos, m->id});
}

/* Lowest rank first, leftmost among equals. An entry is stale when its symbol was merged away or its pair no
 * longer merges into the same token; the library checks exactly that (the merged token, not the rank). */
static void merge_all(const struct tok_bpe *b, struct word *w) {
    struct heap h = {0};
    for (int32_t i = 0; i + 1 < (int32_t)w->n; i++)
        queue_pair(b, w, &h, i);
    while (h.n) {
        struct cand c = heap_pop(&h);
        struct sym *s = &w->sym[c.pos];
        if (s->len == 0 || s->next < 0)
            continue;
        struct sym *right = &w->sym[s->next];
        const struct merge_slot *m = merge_find(b, s->id, right->id);
        if (m->pair == EMPTY_PAIR || m->id != c.id)
            continue;
        s->id = c.id;
        s->len += right->len;
        s->next = right->next;
        right->len = 0;
        if (s->next >= 0)
            w->sym[s->next].prev = c.pos;
        queue_pair(b, w, &h, s->prev);
        queue_pair(b, w, &h, c.pos);
    }
    free(h.v);
}

/* One word through the model; tok_bpe_encode checked the text, so every character is well-formed. */
static void bpe_word(const struct tokenizer *t, const char *s, size_t n, struct tok_ids *o) {
    const struct tok_bpe *b = t->impl->bpe;
    struct word w = {xmalloc((n ? n : 1) * sizeof *w.sym), 0, 0};
    uint32_t cp;
    for (size_t i = 0; i < n;) {
        size_t k = tok_utf8_next((const unsigned char *)s + i, n - i, &cp);
        k = k ? k : 1; /* cannot happen: tokenizer_encode checked the text */
        word_char(b, t->impl, &w, s + i, (uint32_t)k);
        i += k;
    }
    if (w.unk_len)
        word_add(&w, b->unk, (uint32_t)w.unk_len);
    merge_all(b, &w);
    for (size_t i = 0; i < w.n; i++)
        if (w.sym[i].len)
            tok_ids_push(o, w.sym[i].id);
    free(w.sym);
}

/* ---- decoding ------------------------------------------------------------------------------------------ */

/* The decoder works on a list of strings, as the library's decode_chain does: here one buffer, string i
 * ending at end[i]. */
struct strs {
    struct buf text;
    size_t *end;
    size_t n, cap;
};

static void strs_add(struct strs *l, const char *s, size_t n) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->end = xrealloc(l->end, l->cap * sizeof *l->end);
    }
    buf_append(&l->text, s, n);
    l->end[l->n++] = l->text.len;
}

static const char *strs_at(const struct strs *l, size_t i, size_t *len) {
    size_t start = i ? l->end[i - 1] : 0;
    *len = l->end[i] - start;
    return l->text.data + start;
}

static void strs_free(struct strs *l) {
    buf_free(&l->text);
    free(l->end);
    *l = (struct strs){0};
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))
        return (c | 0x20) - 'a' + 10;
    return -1;
}

/* <0xNN> as the library reads it: six bytes, and NN what Rust's u8::from_str_radix(.., 16) takes (either
 * case, or "+" and one digit). -1 when the token is not a byte. */
static int byte_of(const char *s, size_t len) {
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>')
        return -1;
    int hi = hex_digit(s[3]), lo = hex_digit(s[4]);
    if (s[3] == '+')
        return lo;
    return hi >= 0 && lo >= 0 ? hi * 16 + lo : -1;
}

static bool utf8_valid(const char *s, size_t n) {
    uint32_t cp;
    for (size_t i = 0, k; i < n; i += k)
        if ((k = tok_utf8_next((const unsigned char *)s + i, n - i, &cp)) == 0)
            return false;
    return true;
}

/* A run of byte tokens: its text when the bytes are UTF-8, else one U+FFFD per byte. */
static void flush_bytes(struct strs *out, struct buf *run) {
    if (run->len && utf8_valid(run->data, run->len))
        strs_add(out, run->data, run->len);
    else
        for (size_t i = 0; i < run->len; i++)
            strs_add(out, "\xEF\xBF\xBD", 3);
    run->len = 0;
}

static void byte_fallback(const struct strs *l, struct strs *out) {
    struct buf run = {0};
    for (size_t i = 0; i < l->n; i++) {
        size_t len;
        const char *s = strs_at(l, i, &len);
        int byte = byte_of(s, len);
        if (byte >= 0) {
            char c = (char)byte;
            buf_append(&run, &c, 1);
            continue;
        }
        flush_bytes(out, &run);
        strs_add(out, s, len);
    }
    flush_bytes(out, &run);
    buf_free(&run);
}

/* Per string: Replace, Strip (at most start leading copies of the character), or Metaspace (the replacement
 * becomes a space, and vanishes from the first string unless the scheme is never). */
static void per_string(const struct step *st, const char *s, size_t len, size_t index, struct buf *out) {
    if (st->kind == STEP_REPLACE) {
        replace_all(s, len, st->a, st->alen, st->b, st->blen, out);
    } else if (st->kind == STEP_STRIP) {
        size_t cut = 0;
        for (int64_t k = 0; k < st->start && cut + st->alen <= len && memcmp(s + cut, st->a, st->alen) == 0;
             k++)
            cut += st->alen;
        buf_append(out, s + cut, len - cut);
    } else {
        const char *space = index == 0 && st->prepend != PREPEND_NEVER ? "" : " ";
        replace_all(s, len, st->a, st->alen, space, strlen(space), out);
    }
}

/* One decoder step from l into out. */
static void decode_step(const struct step *st, const struct strs *l, struct strs *out) {
    if (st->kind == STEP_BYTE_FALLBACK) {
        byte_fallback(l, out);
    } else if (st->kind == STEP_FUSE) {
        strs_add(out, l->text.data ? l->text.data : "", l->text.len);
    } else {
        struct buf one = {0};
        for (size_t i = 0; i < l->n; i++) {
            size_t len;
            const char *s = strs_at(l, i, &len);
            one.len = 0;
            per_string(st, s, len, i, &one);
            strs_add(out, one.data, one.len);
        }
        buf_free(&one);
    }
}

char *tok_bpe_decode(const struct tokenizer *t, const char *const *tokens, size_t n) {
    const struct tok_bpe *b = t->impl->bpe;
    if (!b->has_decoder)
        return NULL;
    struct strs l = {0};
    for (size_t i = 0; i < n; i++)
        strs_add(&l, tokens[i], strlen(tokens[i]));
    for (size_t k = 0; k < b->ndec; k++) {
        struct strs out = {0};
        decode_step(&b->dec[k], &l, &out);
        strs_free(&l);
        l = out;
    }
    char *text = buf_take(&l.text);
    strs_free(&l);
    return text;
}

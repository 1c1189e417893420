/* synth_vocab: PULSE-Synth's tokenizer: every word of the world's text, split the way Hugging Face's
 * Whitespace pre-tokenizer splits, as a WordLevel tokenizer.json that the `tokenizers` library loads
 * unchanged. */
#include <stdlib.h>
#include <string.h>

#include "engine/mcq.h"
#include "stages/synth.h"
#include "util/err.h"
#include "util/json.h"

/* Ids 0..4, in this order; the world's words follow, sorted bytewise. */
static const char *const specials[] = {"<unk>", "<s>", "</s>", "<pad>", "<image>"};
#define NSPECIALS (int)(sizeof specials / sizeof specials[0])

/* A set of words (open addressing, grown at half full). */
struct wordset {
    char **slot;
    size_t cap, n;
};

static void wordset_put(struct wordset *s, char *w) {
    size_t k = synth_hash(w, strlen(w)) & (s->cap - 1);
    while (s->slot[k])
        k = (k + 1) & (s->cap - 1);
    s->slot[k] = w;
    s->n++;
}

static void wordset_grow(struct wordset *s) {
    struct wordset t = {xcalloc(s->cap ? 2 * s->cap : 1024, sizeof(char *)), s->cap ? 2 * s->cap : 1024, 0};
    for (size_t k = 0; k < s->cap; k++)
        if (s->slot[k])
            wordset_put(&t, s->slot[k]);
    free(s->slot);
    *s = t;
}

static void wordset_add(struct wordset *s, const char *w, size_t len) {
    if (2 * (s->n + 1) > s->cap)
        wordset_grow(s);
    size_t k = synth_hash(w, len) & (s->cap - 1);
    for (; s->slot[k]; k = (k + 1) & (s->cap - 1))
        if (strncmp(s->slot[k], w, len) == 0 && s->slot[k][len] == 0)
            return;
    char *copy = xmalloc(len + 1);
    memcpy(copy, w, len);
    copy[len] = 0;
    s->slot[k] = copy;
    s->n++;
}

static int special_at(const char *t) {
    if (*t != '<')
        return 0;
    for (int k = 0; k < NSPECIALS; k++)
        if (strncmp(t, specials[k], strlen(specials[k])) == 0)
            return (int)strlen(specials[k]);
    return 0;
}

/* 0 space, 1 word ([A-Za-z0-9_] and every non-ASCII byte: the world is ASCII, so no non-ASCII punctuation
 * needs telling apart), 2 anything else. */
static int char_class(unsigned char c) {
    if (c == ' ' || (c >= '\t' && c <= '\r'))
        return 0;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c >= 0x80)
        return 1;
    return 2;
}

/* Special tokens are cut out first (as added tokens are), then runs of one class (\w+ | [^\w\s]+) are words.
 */
static void words_add(struct wordset *s, const char *t) {
    const char *start = NULL;
    int cls = 0;
    while (1) {
        int sp = *t ? special_at(t) : 0, c = *t && !sp ? char_class((unsigned char)*t) : 0;
        if (start && (c != cls || sp)) {
            wordset_add(s, start, (size_t)(t - start));
            start = NULL;
        }
        if (!*t)
            return;
        if (sp) {
            t += sp;
            continue;
        }
        if (c && !start)
            start = t, cls = c;
        t++;
    }
}

static int world_words(const struct synth_world *w, struct wordset *s) {
    struct ds_people pp = {0};
    struct ds_items it = {0};
    struct ds_examples ex[2] = {{0}, {0}};
    const struct buf *eb[2] = {&w->pretrain, &w->finetune};
    int rc = ds_read_people(w->people.data ? w->people.data : "", w->people.len, "people", &pp);
    rc = rc ? rc : ds_read_items(w->items.data ? w->items.data : "", w->items.len, "items", &it);
    for (int k = 0; k < 2 && rc == 0; k++)
        rc =
            ds_read_examples(eb[k]->data ? eb[k]->data : "", eb[k]->len, k ? "finetune" : "pretrain", &ex[k]);
    for (size_t i = 0; rc == 0 && i < pp.n; i++) {
        words_add(s, pp.v[i].name);
        for (size_t a = 0; a < pp.v[i].attributes->len; a++)
            words_add(s, pp.v[i].attributes->items[a]->s);
    }
    for (size_t i = 0; rc == 0 && i < it.n; i++) {
        words_add(s, it.v[i].prompt);
        for (int k = 0; k < it.v[i].noptions; k++) {
            words_add(s, it.v[i].options[k]);
            /* the answers likelihood scoring reads: "{}." filled splits differently from "{}." itself */
            char *answer = it.v[i].statement ? mcq_cloze_answer(&it.v[i], k) : NULL;
            if (answer)
                words_add(s, answer);
            free(answer);
        }
    }
    for (int k = 0; k < 2 && rc == 0; k++)
        for (size_t i = 0; i < ex[k].n; i++) {
            words_add(s, ex[k].v[i].prompt);
            words_add(s, ex[k].v[i].answer);
        }
    ds_people_free(&pp);
    ds_items_free(&it);
    ds_examples_free(&ex[0]);
    ds_examples_free(&ex[1]);
    return rc ? err_prefix("synth: tokenizer") : 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static struct json *added_tokens(void) {
    struct json *arr = json_arr();
    for (int k = 0; k < NSPECIALS; k++) {
        struct json *t = json_obj();
        json_set(t, "id", json_int(k));
        json_set(t, "content", json_str(specials[k]));
        json_set(t, "single_word", json_bool(false));
        json_set(t, "lstrip", json_bool(false));
        json_set(t, "rstrip", json_bool(false));
        json_set(t, "normalized", json_bool(false));
        json_set(t, "special", json_bool(true));
        json_push(arr, t);
    }
    return arr;
}

static struct json *tokenizer_json(char **words, size_t n) {
    struct json *vocab = json_obj(), *model = json_obj(), *pre = json_obj(), *root = json_obj();
    for (int k = 0; k < NSPECIALS; k++)
        json_set(vocab, specials[k], json_int(k));
    for (size_t i = 0; i < n; i++)
        json_set(vocab, words[i], json_int((int64_t)i + NSPECIALS));
    json_set(model, "type", json_str("WordLevel"));
    json_set(model, "vocab", vocab);
    json_set(model, "unk_token", json_str("<unk>"));
    json_set(pre, "type", json_str("Whitespace"));
    json_set(root, "version", json_str("1.0"));
    json_set(root, "truncation", json_null());
    json_set(root, "padding", json_null());
    json_set(root, "added_tokens", added_tokens());
    json_set(root, "normalizer", json_null());
    json_set(root, "pre_tokenizer", pre);
    json_set(root, "post_processor", json_null());
    json_set(root, "decoder", json_null());
    json_set(root, "model", model);
    return root;
}

int vocab_tokenizer(const struct synth_world *w, char **json, size_t *n) {
    struct wordset s = {0};
    wordset_grow(&s);
    int rc = world_words(w, &s);
    char **words = xmalloc((s.n ? s.n : 1) * sizeof *words);
    size_t nw = 0;
    for (size_t k = 0; k < s.cap; k++)
        if (s.slot[k])
            words[nw++] = s.slot[k];
    qsort(words, nw, sizeof *words, cmp_str);
    if (rc == 0) {
        struct json *root = tokenizer_json(words, nw);
        *json = json_write(root, JSON_CANONICAL, n);
        json_free(root);
        rc = *json ? 0 : -1;
    }
    for (size_t i = 0; i < nw; i++)
        free(words[i]);
    free(words);
    free(s.slot);
    return rc;
}

/* tokenizer_impl: what engine/tokenizer.c (loading, the vocabulary, added tokens, WordLevel) shares with the
 * model files behind the same interface (engine/tokenizer_bpe.c). Internal to the tokenizer; nothing else
 * includes it. */
#ifndef PULSE_ENGINE_TOKENIZER_IMPL_H
#define PULSE_ENGINE_TOKENIZER_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/tokenizer.h"
#include "util/json.h"

struct tok_added {
    char *content;
    size_t len;
    int32_t id;
    bool normalized; /* matched after the normalizer: a second pass, as the library does */
    bool special;
    /* What is matched in its pass: the content, or for normalized tokens the content as the normalizer
     * writes it (the library normalizes them too). Points at content unless they differ. */
    char *pattern;
    size_t plen;
};

struct tok_bpe; /* tokenizer_bpe.c */

struct tokenizer_impl {
    char **token;           /* by id; NULL where no token has the id */
    unsigned char *special; /* by id: an added token marked special (dropped by skip_special) */
    /* By id, NULL or the library's id_to_token where it is not the token's text (a normalized added token
     * is named as the normalizer writes it); NULL when there is no such id. */
    const char **name;
    int32_t *slot; /* open-addressing hash of token -> id; -1 empty */
    size_t nslot;
    struct tok_added *added;
    size_t nadded;
    int pre;             /* tokenizer.c's WordLevel pre-tokenizer */
    struct tok_bpe *bpe; /* NULL for WordLevel */
};

/* Ids being written by an encoder. */
struct tok_ids {
    int32_t *v;
    size_t n, cap;
};

void tok_ids_push(struct tok_ids *o, int32_t id);

/* Decodes the well-formed UTF-8 sequence at s (n > 0 bytes left) into *cp; its length, 0 if ill-formed. */
size_t tok_utf8_next(const unsigned char *s, size_t n, uint32_t *cp);

/* The id of the token s (n bytes, added or from the model), or -1. */
int32_t tok_vocab_find(const struct tokenizer_impl *m, const char *s, size_t n);

/* model.vocab into the tables (sized for the added tokens too), then the added_tokens entries; -1 with
 * err_set on anything malformed or inconsistent. */
int tok_load_vocab(struct tokenizer *t, const struct json *model, const struct json *added);
int tok_load_added(struct tokenizer *t, const struct json *added);

/* Called for each stretch of text between added tokens (possibly empty); at is its byte offset in the text
 * tokenizer_encode was given. 0, or -1 with err_set. */
typedef int (*tok_piece_fn)(const struct tokenizer *t, const char *s, size_t n, size_t at, struct tok_ids *o);

/* Cuts the added tokens of one pass (normalized or not) out of s, leftmost-longest, pushing their ids and
 * handing the text around them to piece; the first error piece returns. */
int tok_split_added(const struct tokenizer *t, const char *s, size_t n, size_t at, bool normalized,
                    tok_piece_fn piece, struct tok_ids *o);

/* tokenizer_bpe.c: the BPE model and the normalizer, pre-tokenizer and decoder LLaMA uses with it. */
int tok_bpe_load(struct tokenizer *t, const struct json *root, const struct json *model);
int tok_bpe_encode(const struct tokenizer *t, const char *text, size_t len, struct tok_ids *o);
/* The decoder over the tokens decode kept; NULL when the tokenizer has none (tokens joined by a space). */
char *tok_bpe_decode(const struct tokenizer *t, const char *const *tokens, size_t n);
void tok_bpe_free(struct tok_bpe *b);

#endif

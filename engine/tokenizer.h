/* tokenizer: Hugging Face tokenizer.json, encoded and decoded in C exactly as the `tokenizers` library does.
 *
 * Supported: the WordLevel model (PULSE-Synth's tokenizer, stages/synth_vocab.c) with the Whitespace
 * pre-tokenizer (regex \w+|[^\w\s]+, Unicode classes measured from the library) or none; and the BPE model
 * as LLaMA's tokenizer.json uses it (engine/tokenizer_bpe.c: byte fallback, unk fusing, the Prepend/Replace
 * normalizer or the Metaspace pre-tokenizer, the Replace/ByteFallback/Fuse/Strip decoder). Added tokens are
 * cut out of the text first, leftmost-longest, as the library does. A post-processor is never applied
 * (encode is add_special_tokens=False; add_bos adds <s>). Anything else is refused with one line: a tokenizer
 * is never loaded if it could tokenize differently from Hugging Face. See docs/formats.md, "Tokenizer". */
#ifndef PULSE_ENGINE_TOKENIZER_H
#define PULSE_ENGINE_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

struct tokenizer_impl;

/* Read-only after loading. The special ids are found by name (`<s>`, `</s>`, `<pad>`; unk is the model's
 * unk_token) and are -1 when the vocabulary lacks them. */
struct tokenizer {
    int32_t vocab_size; /* highest id + 1: the rows an embedding table needs */
    int32_t bos, eos, pad, unk;
    struct tokenizer_impl *impl;
};

/* Parses tokenizer.json text (len bytes). NULL with err_set("tokenizer: ...") when it is malformed or uses a
 * feature this module does not implement. */
struct tokenizer *tokenizer_load(const char *json, size_t len);
/* Reads and loads a file; messages start with its path. */
struct tokenizer *tokenizer_open(const char *path);
void tokenizer_free(struct tokenizer *t);

/* Encodes NUL-terminated UTF-8 text as `tokenizers`' encode(text, add_special_tokens=False) does, with the
 * bos id in front when add_bos is set. *ids is malloc'd (never NULL on success, even when *n is 0). -1 with
 * err_set when the text is not valid UTF-8 or add_bos is set and there is no `<s>`. */
int tokenizer_encode(const struct tokenizer *t, const char *text, int add_bos, int32_t **ids, size_t *n);

/* Decodes as `tokenizers`' decode(ids, skip_special_tokens) does: the tokenizer's decoder when it has one
 * (BPE), else the tokens joined with one space (WordLevel).
 * Ids that name no token are skipped, as the library skips them; with skip_special set, so are added tokens
 * marked special. Returns malloc'd text (never NULL). */
char *tokenizer_decode(const struct tokenizer *t, const int32_t *ids, size_t n, int skip_special);

/* The id of a token (added or in the vocabulary), or -1. */
int32_t tokenizer_id(const struct tokenizer *t, const char *token);
/* The token of an id, or NULL when the id names none. */
const char *tokenizer_token(const struct tokenizer *t, int32_t id);

#endif

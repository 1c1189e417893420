/* prompt: text to the token ids a LLaVA model reads. A prompt's `<image>` token is expanded to one token per
 * image feature, as transformers' LlavaProcessor does; an answer is appended with its labels (the answer's
 * tokens and the end-of-sequence token are targets; the prompt is not: MLLMU-Bench trains on the prompt too,
 * docs/protocol.md says why we do not). */
#ifndef PULSE_ENGINE_PROMPT_H
#define PULSE_ENGINE_PROMPT_H

#include "engine/tokenizer.h"

#include <stddef.h>
#include <stdint.h>

struct prompt_seq {
    int32_t *ids;    /* [n]: <s>, the prompt (image expanded), then the answer and </s> when there is one */
    int32_t *labels; /* [n]: TRAIN_IGNORE (engine/train.h) on the prompt, the id itself on answer tokens */
    size_t n;
    size_t prompt_len; /* tokens before the answer */
    int image;         /* 1 when the prompt holds the image */
};

/* Encodes prompt (and answer, when not NULL) for a model whose image token is image_token, expanded to
 * image_tokens copies. The prompt must hold `<image>` exactly once when has_image is set and not at all
 * otherwise; `what` names the text in that message. Needs the tokenizer's <s> (and </s> with an answer). */
int prompt_encode(const struct tokenizer *t, int32_t image_token, size_t image_tokens, const char *prompt,
                  const char *answer, int has_image, const char *what, struct prompt_seq *out);
void prompt_seq_free(struct prompt_seq *s);

#endif

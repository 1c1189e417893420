/* mcq: scoring multiple-choice questions on a model, the two ways docs/protocol.md describes.
 *   greedy: MLLMU-Bench's score. The model's first generated token (greedy: the argmax over the whole
 *           vocabulary after the prompt) is decoded; its first non-space character must be the right letter.
 *           A first character outside A-D is "unparsed" (counted wrong).
 *   option: the option letter whose token ("▁A".."▁D" when the vocabulary has all four, as LLaMA's does, else
 * "A".."D") scores highest at that position (never unparsed). Questions come as a corpus of prompts
 * (corpus_from_items); each row's last prompt token predicts the answer. */
#ifndef PULSE_ENGINE_MCQ_H
#define PULSE_ENGINE_MCQ_H

#include "engine/corpus.h"
#include "engine/llava.h"
#include "engine/tokenizer.h"

struct mcq_result {
    int greedy; /* 0-3: the letter the greedy token starts with; -1: unparsed */
    int option; /* 0-3 */
};

/* Scores every entry of cp in batches of the model's capacity (m->B rows of up to m->T tokens: build the
 * model for cp->maxlen). Needs the tokens "A" to "D" in the tokenizer. out: [cp->n]. */
int mcq_score(struct llava *m, const struct ops *ops, const struct corpus *cp, const struct tokenizer *t,
              struct mcq_result *out);

#endif

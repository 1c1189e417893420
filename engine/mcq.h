/* mcq: scoring multiple-choice questions on a model, the ways docs/protocol.md describes.
 *   greedy: MLLMU-Bench's score. The model's first generated token (greedy: the argmax over the whole
 *           vocabulary after the prompt) is decoded; its first non-space character must be the right letter.
 *           A first character outside A-D is "unparsed" (counted wrong).
 *   option: the option letter whose token ("▁A".."▁D" when the vocabulary has all four, as LLaMA's does, else
 *           "A".."D") scores highest at that position (never unparsed).
 * For these two, questions come as a corpus of prompts (corpus_from_items); each row's last prompt token
 * predicts the answer.
 *   likelihood: lm-evaluation-harness's "acc". Each option is written into the answer sentence (the item's
 *           `statement`, else the option text alone) after a cloze prompt without the options; the option
 * whose answer the model gives the highest log-probability wins (ties: the first). No letter is involved, so
 * a model that knows a fact but never learned to match it to a letter still gets it right. */
#ifndef PULSE_ENGINE_MCQ_H
#define PULSE_ENGINE_MCQ_H

#include "engine/corpus.h"
#include "engine/llava.h"
#include "engine/tokenizer.h"

struct mcq_result {
    int greedy;     /* 0-3: the letter the greedy token starts with; -1: unparsed */
    int option;     /* 0-3 */
    int likelihood; /* 0-3: the option whose answer scores highest; -1: not scored (mcq_score sets -1) */
};

/* Scores every entry of cp in batches of the model's capacity (m->B rows of up to m->T tokens: build the
 * model for cp->maxlen). Needs the tokens "A" to "D" in the tokenizer. out: [cp->n]. */
int mcq_score(struct llava *m, const struct ops *ops, const struct corpus *cp, const struct tokenizer *t,
              struct mcq_result *out);

/* ---- likelihood ---- */

/* The cloze prompt of an item: "USER: <image>\n" with an image, "USER:\n" without, then the question and
 * "\nASSISTANT:" (the user turn of MLLMU-Bench's prompts and of PULSE-Synth's corpora, without the options
 * and the letter instruction). malloc'd. */
char *mcq_cloze_prompt(const struct ds_item *it);
/* The answer with option k: the statement with its "{}" replaced by the option, or the option text when the
 * item has no statement. No leading space: prompt_encode tokenizes an answer apart from its prompt, as the
 * training examples were (SentencePiece adds the word mark itself). malloc'd. */
char *mcq_cloze_answer(const struct ds_item *it, int k);

/* Every option of the items keep() takes (NULL: all) as a sequence: cloze prompt, answer, </s>, with labels
 * on the answer and </s> (engine/prompt.h), item by item and the options in order. */
struct mcq_cloze {
    struct corpus cp; /* one entry per option; call corpus_features on it to score from cached features */
    size_t nitems;    /* the items taken */
    size_t *item;     /* [nitems]: each one's index in the items */
    size_t *first;    /* [nitems + 1]: entries first[j] .. first[j + 1] - 1 are item j's options */
};
int mcq_cloze_build(struct mcq_cloze *z, const struct ds_items *items, const struct ds_images *im,
                    const struct tokenizer *t, const struct llava_config *cfg,
                    int (*keep)(void *arg, size_t i), void *arg);
void mcq_cloze_free(struct mcq_cloze *z);

/* Scores every entry of z in batches of the model's capacity (build it for z->cp.maxlen, or longer): score[e]
 * (when not NULL, [z->cp.n]) = the sum over the answer's tokens and </s> of log p, the training loss's
 * targets (unlearn_seq_logprob). out[j].likelihood (out: [z->nitems]) = the option of item j with the highest
 * score, the first of equal ones. Deterministic: the batches depend only on z. */
int mcq_likelihood(struct llava *m, const struct ops *ops, const struct mcq_cloze *z, float *score,
                   struct mcq_result *out);

#endif

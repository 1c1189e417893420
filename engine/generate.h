/* generate: greedy decoding with a K/V cache, for evaluation (MLLMU-Bench's generation and cloze tasks read
 * more than the first answer token). The prompt runs once through the ordinary forward (prefill), which
 * stores every decoder layer's keys (after RoPE) and values in a cache; each later token then runs the
 * decoder's own layer code for its one position (llava_decoder_step) against that cache. Greedy: the argmax
 * over the whole vocabulary, ties to the lowest id, as transformers' generate(do_sample=False). */
#ifndef PULSE_ENGINE_GENERATE_H
#define PULSE_ENGINE_GENERATE_H

#include "engine/corpus.h"
#include "engine/llava.h"

#include <stddef.h>
#include <stdint.h>

struct llava_gen {
    size_t max_new; /* new tokens per sequence at most, 1 to LLAVA_GEN_MAX */
    int32_t eos;    /* the stop token: a sequence ends once it generates it (kept, as generate's output keeps
                       it); -1: none */
    int feats;      /* the images are cached tower features (llava_forward_features), not pixel values */
    float *logits;  /* NULL, or host memory [b, max_new, vocab]: the logits each new token was chosen from
                       (rows past a sequence's end are left as they were) */
};
#define LLAVA_GEN_MAX 4096

/* Greedy generation for a batch as llava_forward takes it: ids, mask [b, t] right-padded, nimg images in vis
 * (pixels, or features with g->feats). Each sequence continues from its own last valid token; the batch runs
 * together until every sequence has met eos or max_new. out [b, max_new]: sequence i's new ids from
 * out[i * max_new]; n[i] their count (the rest of its row is left as it was). The model's activations are
 * overwritten (no backward of the last forward is possible after it). Bad input is refused with one line. */
int llava_generate(struct llava *m, const struct ops *ops, const int32_t *ids, const int32_t *mask, size_t b,
                   size_t t, const float *vis, size_t nimg, const struct llava_gen *g, int32_t *out,
                   size_t *n);

/* Every entry of cp (its prompt, with its image), in batches of the model's capacity cut as mcq_score cuts
 * them, from cached features when the corpus has them (g->feats and g->logits are ignored). out [cp->n,
 * max_new], n [cp->n], as llava_generate's. */
int llava_generate_corpus(struct llava *m, const struct ops *ops, const struct corpus *cp,
                          const struct llava_gen *g, int32_t *out, size_t *n);

#endif

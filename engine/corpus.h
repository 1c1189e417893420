/* corpus: a data set's examples or questions as token sequences ready to batch: prompts tokenized with the
 * image expanded (engine/prompt.h), each distinct image decoded and normalised once (engine/pixels.h), and
 * padded batches cut from any list of entries. With the vision tower frozen, corpus_features runs it once per
 * image so that training and evaluation read cached features instead of pixels. */
#ifndef PULSE_ENGINE_CORPUS_H
#define PULSE_ENGINE_CORPUS_H

#include "engine/config.h"
#include "engine/dataset.h"
#include "engine/llava.h"
#include "engine/prompt.h"
#include "engine/tokenizer.h"

#include <stddef.h>
#include <stdint.h>

struct corpus_entry {
    struct prompt_seq seq;
    long image; /* index into the corpus's images, -1 without one */
    size_t src; /* index in the examples or items it came from */
    int answer; /* questions: the right option (0-3); examples: -1 */
};

struct corpus {
    struct corpus_entry *e;
    size_t n, maxlen;
    float *pixels; /* [nimages, 3, size, size] */
    float *feats;  /* [nimages, feature tokens, vision hidden] after corpus_features, else NULL */
    size_t nimages, image_floats, feat_floats;
};

/* keep(arg, index) says which entries to take (NULL: all). Examples: prompt + answer. Questions: the prompt
 * only (the item's `prompt` field, as evaluation reads it). */
int corpus_from_examples(struct corpus *c, const struct ds_examples *ex, const struct ds_images *im,
                         const struct tokenizer *t, const struct llava_config *cfg,
                         int (*keep)(void *arg, size_t i), void *arg);
int corpus_from_items(struct corpus *c, const struct ds_items *items, const struct ds_images *im,
                      const struct tokenizer *t, const struct llava_config *cfg,
                      int (*keep)(void *arg, size_t i), void *arg);
void corpus_free(struct corpus *c);

/* Runs the model's (frozen) tower over every image once: c->feats. */
int corpus_features(struct corpus *c, struct llava *m, const struct ops *ops);

/* A batch of entries idx[0..b): ids, mask, labels [b, *t] right-padded to the longest (pad id: the
 * tokenizer's pad, else 0; label TRAIN_IGNORE), and the images of the rows that have one, in row order, into
 * vis (pixels, or features after corpus_features) with their count in *nimg. Buffers hold b * c->maxlen ids
 * and b images. */
void corpus_batch(const struct corpus *c, const size_t *idx, size_t b, int32_t pad, int32_t *ids,
                  int32_t *mask, int32_t *labels, float *vis, size_t *nimg, size_t *t);

/* One batch as corpus_each_batch hands it over: row i is entry idx[i], cut by corpus_batch (t tokens a row;
 * nimg images in vis, features when feats, else pixels). */
struct corpus_rows {
    const size_t *idx;
    size_t b, t, nimg;
    const int32_t *ids, *mask, *labels;
    const float *vis;
    int feats;
};

/* The whole corpus in batches of the model's capacity (m->B entries, padded with its pad token, else 0),
 * longest entries first (equal lengths in entry order), so that a batch's rows are about one length:
 * each(ctx, rows) for every batch, stopping at the first that returns non-zero, whose value it returns (0
 * when all succeed). The buffers live until the next call of each. */
int corpus_each_batch(const struct corpus *c, const struct llava *m,
                      int (*each)(void *ctx, const struct corpus_rows *rows), void *ctx);

#endif

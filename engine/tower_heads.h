/* tower_heads: the classifiers through which the `tower` kind trains a vision tower alone, before any decoder
 * reads it (as LLaVA's CLIP tower is trained before LLaVA), and their loss. Two kinds of heads read the
 * tower's selected features [nimg * per, c] (per: image tokens):
 * - token heads, on every image token of a scene: the shape, colour and size of the object whose centre lies
 *   in the token's patch, class 0 when none does (so each token learns what is where);
 * - face heads, on the mean of an image's tokens: each of a face's 11 features (stages/synth.h, struct face).
 * Each group is a linear layer [classes, c] with a bias. The loss is the mean over the token groups plus the
 * mean over the face groups of each group's mean -log softmax of the right class over its labelled rows: a
 * scene and a face weigh alike, though a face has 11 heads and a scene 3 (summed over the 14, the faces took
 * the tower: E45). docs/stages.md, `tower`, says why. */
#ifndef PULSE_ENGINE_TOWER_HEADS_H
#define PULSE_ENGINE_TOWER_HEADS_H

#include "engine/ops.h"

#include <stddef.h>
#include <stdint.h>

#define TOWER_TOKEN_GROUPS 3 /* shape, colour, size of the object centred in a token */
#define TOWER_FACE_GROUPS 11 /* struct face's features, in its order */
#define TOWER_GROUPS (TOWER_TOKEN_GROUPS + TOWER_FACE_GROUPS)

/* Classes of each group: token groups count "no object" as class 0. */
extern const int tower_classes[TOWER_GROUPS];
extern const char *const tower_group_names[TOWER_GROUPS];

struct tower_heads {
    size_t c, per;                 /* feature width, tokens per image */
    size_t n;                      /* parameters: every group's weight [classes, c], then its bias */
    float *params, *grads, *m, *v; /* mem_alloc blocks of n floats (grads accumulate; AdamW moments) */
    size_t off[TOWER_GROUPS];      /* each group's weight; its bias follows */
};

/* Weights ~ N(0, 0.02^2) from rng_key(seed, group), biases 0. */
void tower_heads_init(struct tower_heads *h, size_t c, size_t per, uint64_t seed);
void tower_heads_free(struct tower_heads *h);

/* A batch's labels. tok [nimg * per * 3]: per token, shape + 1, colour + 1, large + 1 of the object centred
 * in it (0: none); -1 for every token of an image that is not a scene. face [nimg * 11]: the face's features;
 * -1 for an image that is not a face. */
struct tower_batch {
    const int32_t *tok, *face;
    size_t nimg;
};

/* Forward and backward of every head over the batch: returns the loss; writes d loss / d feats into dfeats
 * (overwritten, [nimg * per, c]); adds the heads' gradients to h->grads. hits[g] and counts[g] receive the
 * rows each group got right (argmax) and the rows scored: a face group's labelled rows, a token group's
 * tokens that hold an object (empty tokens are most of a scene: they count in the loss, not in accuracy).
 * A group without labelled rows adds nothing. */
float tower_heads_step(struct tower_heads *h, const struct ops *ops, const float *feats,
                       const struct tower_batch *b, float *dfeats, long hits[TOWER_GROUPS],
                       long counts[TOWER_GROUPS]);

#endif

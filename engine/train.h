/* train: the pieces of a training step on a LLaVA model: the token cross-entropy loss with a label mask
 * (transformers' causal LM convention), AdamW over the trainable parameters with optional global-norm
 * clipping, and one full step assembled from them. The unlearning losses build on the same pieces. */
#ifndef PULSE_ENGINE_TRAIN_H
#define PULSE_ENGINE_TRAIN_H

#include "engine/llava.h"
#include "engine/ops.h"

#include <stddef.h>
#include <stdint.h>

#define TRAIN_IGNORE (-100) /* a label that is not a target (prompt, image, padding) */

/* Shifted targets and their mask, for every loss: position (i, j) predicts labels[i, j + 1] (tgt = that
 * label, on = 1) and the last position of a row predicts nothing. Returns the number of targets, or -1
 * with one line for a label outside [0, vocab). tgt and on hold b * t values. */
long train_targets(const int32_t *labels, size_t b, size_t t, int vocab, int32_t *tgt, uint8_t *on);

/* llava_logits_for the target positions of labels [b, t] (those train_targets marks): the next forward's
 * logits on the rows a loss reads, and no others. -1 with one line for a label outside the vocabulary. */
int train_logits_for(struct llava *m, const int32_t *labels, size_t b, size_t t);

/* Mean over the target positions of -log p(target), where the logits at (i, j) predict labels[i, j + 1]
 * (labels [b, t]; TRAIN_IGNORE = not a target). Reads m->a.logits of the last forward, writes the loss and
 * SETS m->d.logits to d loss / d logits (call before llava_backward). A label outside the vocabulary or a
 * batch without targets is refused with one line. */
int train_ce_loss(struct llava *m, const struct ops *ops, const int32_t *labels, size_t b, size_t t,
                  float *loss);

/* Bytes train_ce_loss allocates for a batch of n = b * t positions (one block, freed before it returns):
 * memory plans count it. */
size_t train_loss_bytes(size_t n);

struct train_adamw {
    float beta1, beta2, eps, weight_decay;
    float clip;   /* global gradient norm limit; 0: no clipping */
    float *m, *v; /* first and second moments, one block like m->grads */
    size_t n;
    int step; /* steps taken */
};

/* Moments for the model's current trainable set (after llava_grads_init), zeroed. */
void train_adamw_init(struct train_adamw *o, const struct llava *m, float beta1, float beta2, float eps,
                      float weight_decay, float clip);
void train_adamw_free(struct train_adamw *o);
/* The moments' floats for the model's current trainable set (m and v, one block). */
size_t train_adamw_floats(const struct llava *m);
/* One step at learning rate lr over every trainable parameter, from m->grads (scaled in place when clipped):
 * the table's trainable tensors, then an attached LoRA adapter's A and B (engine/llava.h), whose gradients
 * and moments follow in the same blocks. *gnorm (may be NULL) receives the gradient norm before clipping,
 * over all of them. */
int train_adamw_step(struct train_adamw *o, struct llava *m, const struct ops *ops, float lr, float *gnorm);

/* A whole step: forward, cross-entropy, zeroed gradients, backward, AdamW; the loss in *loss. An attached
 * adapter's dropout is on for this step's forward and backward, its masks drawn for step o->step (the steps
 * taken before this one); the previous llava_lora_mode is restored after. */
int train_step(struct llava *m, struct train_adamw *o, const struct ops *ops, const int32_t *ids,
               const int32_t *mask, const int32_t *labels, size_t b, size_t t, const float *pixels,
               size_t nimg, float lr, float *loss);
/* train_step with cached tower features (llava_forward_features) in place of pixels. */
int train_step_features(struct llava *m, struct train_adamw *o, const struct ops *ops, const int32_t *ids,
                        const int32_t *mask, const int32_t *labels, size_t b, size_t t, const float *feats,
                        size_t nimg, float lr, float *loss);

#endif

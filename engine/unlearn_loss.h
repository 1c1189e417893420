/* unlearn_loss: the losses the unlearning methods combine (per-sequence answer log-probabilities, KL to a
 * reference model on answer positions) and the three objectives built from them: GA, GA+KLR and NPO.
 *
 * Two levels. The first works on plain buffers (logits [b, t, v], labels [b, t] in transformers' shifted
 * convention, engine/train.h) so it can be checked on its own; each loss returns its value and its backward
 * ACCUMULATES (+=) into a dlogits buffer, as the ops do. The second drives a struct llava: forward, loss
 * into m->d.logits, llava_backward, ACCUMULATING into m->grads (the caller zeroes them, then steps AdamW;
 * LoRA dropout is whatever llava_lora_mode says: train_step's on-for-one-step is the caller's to repeat).
 *
 * The reference model is the same struct llava with its LoRA adapter switched off for one forward
 * (unlearn_ref_forward): the frozen base weights are shared, only the reference logits need a buffer of
 * their own. Without an adapter the "reference" is the current weights: take it before the first step. */
#ifndef PULSE_ENGINE_UNLEARN_LOSS_H
#define PULSE_ENGINE_UNLEARN_LOSS_H

#include "engine/llava.h"
#include "engine/ops.h"

#include <stddef.h>
#include <stdint.h>

/* ---- on buffers ---- */

/* S[i] = sum over the targets of row i of log p(target) (summed in double, in position order). A label
 * outside [0, v) or a row without targets is refused with one line. */
int unlearn_seq_logprob(const struct ops *ops, const float *logits, const int32_t *labels, size_t b, size_t t,
                        size_t v, float *S);
/* dlogits += d(sum_i dS[i] S[i]) / d logits. */
int unlearn_seq_logprob_backward(const struct ops *ops, float *dlogits, const float *dS, const float *logits,
                                 const int32_t *labels, size_t b, size_t t, size_t v);

/* *kl = mean over the target positions of KL(p_ref || p_theta); when dlogits is not NULL, dlogits += scale
 * * d kl / d logits (the current logits only: the reference is a constant). Padding and prompt positions
 * contribute nothing. A batch without targets is refused. */
int unlearn_kl(const struct ops *ops, const float *logits, const float *ref_logits, const int32_t *labels,
               size_t b, size_t t, size_t v, float scale, float *dlogits, float *kl);

/* NPO: *loss = -(2/beta) mean_i log sigmoid(-beta (S_i - S_ref[i])), S from logits; when dlogits is not
 * NULL, dlogits += d loss / d logits. beta > 0. */
int unlearn_npo(const struct ops *ops, const float *logits, const int32_t *labels, const float *S_ref,
                size_t b, size_t t, size_t v, float beta, float *dlogits, float *loss);

/* ---- on the model ---- */

/* One batch as llava_forward takes it, with its labels. */
struct unlearn_batch {
    const int32_t *ids, *mask, *labels; /* [b, t] */
    size_t b, t;
    const float *pixels; /* [nimg, channels, image, image] */
    size_t nimg;
    const float *feats; /* or, when not NULL, the images' cached tower features (llava_forward_features) */
};

/* The reference model's logits for a batch: one llava_forward with the attached adapter (if any) switched
 * off, copied to ref [b, t, vocab]. Run it BEFORE the current model's forward on the batch: it overwrites the
 * activations llava_backward reads. */
int unlearn_ref_forward(struct llava *m, const struct ops *ops, const struct unlearn_batch *x, float *ref);
/* The reference model's S_ref [b] (NPO's anchor; constant while the base is frozen: cache it). */
int unlearn_ref_seq_logprob(struct llava *m, const struct ops *ops, const struct unlearn_batch *x,
                            float *S_ref);

/* GA: *loss = minus the mean answer-token NLL of the forget batch (train_ce_loss negated), gradients
 * accumulated into m->grads. */
int unlearn_ga(struct llava *m, const struct ops *ops, const struct unlearn_batch *forget, float *loss);
/* GA+KLR: GA on the forget batch + lambda * KL(p_ref || p_theta) on the retain batch (its reference logits
 * from unlearn_ref_forward, into a buffer of its own): two forwards, two backwards into the same gradients.
 * *loss is the sum; kl (may be NULL) receives the KL term before lambda. */
int unlearn_ga_klr(struct llava *m, const struct ops *ops, const struct unlearn_batch *forget,
                   const struct unlearn_batch *retain, float lambda, float *loss, float *kl);
/* NPO on the forget batch, given S_ref [b] (unlearn_ref_seq_logprob); gradients accumulated. */
int unlearn_npo_step(struct llava *m, const struct ops *ops, const struct unlearn_batch *forget,
                     const float *S_ref, float beta, float *loss);

#endif

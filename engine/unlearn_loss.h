/* unlearn_loss: the losses the unlearning methods combine (per-sequence answer log-probabilities, KL to a
 * reference model on answer positions) and the objectives built from them: GA, GA+KLR, NPO (PULSE's three)
 * and gradient difference (MLLMU-Bench's GA_Diff).
 *
 * Two levels. The first works on plain buffers (logits [b, t, v], labels [b, t] in transformers' shifted
 * convention, engine/train.h) so it can be checked on its own; each loss returns its value and its backward
 * ACCUMULATES (+=) into a dlogits buffer, as the ops do. The second drives a struct llava: forward, loss
 * into m->d.logits, llava_backward, ACCUMULATING into m->grads (the caller zeroes them, then steps AdamW;
 * LoRA dropout is whatever llava_lora_mode says: train_step's on-for-one-step is the caller's to repeat).
 *
 * The reference model is the same struct llava with its LoRA adapter bypassed for one forward
 * (unlearn_ref_forward, llava_lora_bypass): the frozen base weights are shared, only the reference logits
 * need a buffer of their own. When tensors of the table train in full too (the projector, PULSE's proj+llm),
 * struct unlearn_ref also keeps their start values and points the model at them for the reference's forwards:
 * the reference is then exactly the model as it was before the first step, without a second model. */
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

/* llava_forward (or llava_forward_features) on the batch, the logits computed on its target rows only
 * (train_logits_for): every loss here reads those rows and no other. */
int unlearn_forward(struct llava *m, const struct ops *ops, const struct unlearn_batch *x);
/* The reference model's logits for a batch: one llava_forward with the attached adapter (if any) bypassed
 * (llava_lora_bypass), copied to ref [b, t, vocab] (memory from mem_alloc). Run it BEFORE the current model's
 * forward on the batch: it overwrites the activations llava_backward reads (which refuses until the next
 * forward). */
int unlearn_ref_forward(struct llava *m, const struct ops *ops, const struct unlearn_batch *x, float *ref);
/* The reference model's S_ref [b] (NPO's anchor; constant while the base is frozen: cache it). */
int unlearn_ref_seq_logprob(struct llava *m, const struct ops *ops, const struct unlearn_batch *x,
                            float *S_ref);

/* The reference "the model as it was when unlearn_ref_init ran": the same struct llava with its adapter (if
 * any) bypassed and every tensor whose table row trains (llava_set_trainable; the projector for proj+llm)
 * read from a copy of its start values. Call unlearn_ref_init after setting the trainable flags and attaching
 * the adapter, before the first step; the adapter must be fresh (B = 0, PEFT's init), or the reference is the
 * base without it. */
struct unlearn_ref {
    float *start;  /* the trainable rows' start values, one block (mem_alloc), or NULL when nothing trains */
    float **at;    /* [nptab] (xmalloc): row i's copy inside `start`, NULL for a frozen row */
    size_t nptab;  /* the model's table rows when the copy was made */
    float *logits; /* [B, T, vocab] (mem_alloc): the last unlearn_ref_logits */
};

/* The floats unlearn_ref_init takes from mem_alloc for m's capacity and trainable flags: the logits (*logits)
 * and the start copies (*start; 0 when nothing trains). Each copy sits at its row's offset modulo 256 bytes,
 * mem_alloc's alignment on the GPU, so a product reads it at the alignment it reads the row at: cuBLAS may
 * choose kernels by alignment, and the same kernels give the same bits. The memory plan sums the same
 * numbers (engine/llava_plan.h). */
void unlearn_ref_floats(const struct llava *m, size_t *logits, size_t *start);
/* Copies the trainable rows' current values (ops->copy) and allocates the logits buffer. */
void unlearn_ref_init(struct unlearn_ref *r, const struct llava *m, const struct ops *ops);
/* The reference's logits for a batch, into r->logits [b, t, vocab]: the trainable rows' slots point at their
 * start values for one unlearn_ref_forward (adapter bypassed, dropout irrelevant), then back. The activations
 * then hold the reference's forward: llava_backward refuses until the next forward. */
int unlearn_ref_logits(struct unlearn_ref *r, struct llava *m, const struct ops *ops,
                       const struct unlearn_batch *x);
void unlearn_ref_free(struct unlearn_ref *r);

/* GA: *loss = minus the mean answer-token NLL of the forget batch (train_ce_loss negated), gradients
 * accumulated into m->grads. */
int unlearn_ga(struct llava *m, const struct ops *ops, const struct unlearn_batch *forget, float *loss);
/* GA+KLR: GA on the forget batch + lambda * KL(p_ref || p_theta) on the retain batch (its reference logits
 * from unlearn_ref_forward, into a buffer of its own): two forwards, two backwards into the same gradients.
 * *loss is the sum; kl (may be NULL) receives the KL term before lambda. */
int unlearn_ga_klr(struct llava *m, const struct ops *ops, const struct unlearn_batch *forget,
                   const struct unlearn_batch *retain, float lambda, float *loss, float *kl);
/* Gradient difference (MLLMU-Bench's GA_Diff): GA on the forget batch + the answer-token NLL of the retain
 * batch, equal weights; two forwards, two backwards into the same gradients, no reference. *loss is the sum;
 * nll (may be NULL) receives the retain term. */
int unlearn_grad_diff(struct llava *m, const struct ops *ops, const struct unlearn_batch *forget,
                      const struct unlearn_batch *retain, float *loss, float *nll);
/* NPO on the forget batch, given S_ref [b] (unlearn_ref_seq_logprob); gradients accumulated. */
int unlearn_npo_step(struct llava *m, const struct ops *ops, const struct unlearn_batch *forget,
                     const float *S_ref, float beta, float *loss);

#endif

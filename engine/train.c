/* train: cross-entropy over answer tokens, AdamW with global-norm clipping, and a full training step, on the
 * operation table, for a LLaVA model whose trainable tensors have gradients (llava_grads_init). */
#include "engine/train.h"
#include "engine/mem.h"
#include "engine/lora.h"
#include "util/buf.h"
#include "util/err.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

long train_targets(const int32_t *labels, size_t b, size_t t, int vocab, int32_t *tgt, uint8_t *on) {
    long count = 0;
    for (size_t i = 0; i < b; i++)
        for (size_t j = 0; j < t; j++) {
            int32_t y = j + 1 < t ? labels[i * t + j + 1] : TRAIN_IGNORE;
            if (y != TRAIN_IGNORE && (y < 0 || y >= vocab))
                return err_set("train: label %d at (%zu, %zu) is outside the vocabulary (%d)", y, i, j + 1,
                               vocab);
            on[i * t + j] = y != TRAIN_IGNORE;
            tgt[i * t + j] = on[i * t + j] ? y : 0;
            count += on[i * t + j];
        }
    return count;
}

int train_logits_for(struct llava *m, const int32_t *labels, size_t b, size_t t) {
    size_t n = b * t;
    int32_t *tgt = xmalloc((n ? n : 1) * sizeof *tgt);
    uint8_t *on = xmalloc(n ? n : 1);
    long count = train_targets(labels, b, t, m->cfg.text.vocab, tgt, on);
    if (count >= 0)
        llava_logits_for(m, on, n);
    free(tgt);
    free(on);
    return count < 0 ? -1 : 0;
}

int train_ce_loss(struct llava *m, const struct ops *ops, const int32_t *labels, size_t b, size_t t,
                  float *loss) {
    if (!m->d.logits)
        return err_set("train: loss before llava_grads_init");
    if (!m->fb || b != m->fb || t != m->ft)
        return err_set("train: labels %zu x %zu do not match the last forward (%zu x %zu)", b, t, m->fb,
                       m->ft);
    size_t n = b * t, v = (size_t)m->cfg.text.vocab;
    float *logp = mem_alloc(train_loss_bytes(n), 1), *dlogp = logp + n; /* the layout train_loss_bytes sums */
    int32_t *tgt = (int32_t *)(dlogp + n);
    uint8_t *on = (uint8_t *)(tgt + n);
    long count = train_targets(labels, b, t, m->cfg.text.vocab, tgt, on);
    int rc = count < 0    ? -1
             : count == 0 ? err_set("train: the batch has no target token (all labels -100)")
                          : 0;
    if (rc == 0) {
        ops->logprob_forward(logp, m->a.logits, tgt, on, n, v);
        ops->sync();      /* logp is read here, dlogp written */
        double sum = 0.0; /* in position order: the same bits for any thread count */
        for (size_t i = 0; i < n; i++)
            sum += on[i] ? logp[i] : 0.0;
        *loss = (float)(-sum / (double)count);
        for (size_t i = 0; i < n; i++)
            dlogp[i] = on[i] ? -1.0f / (float)count : 0.0f;
        ops->zero(m->d.logits, n * v);
        ops->logprob_backward(m->d.logits, dlogp, m->a.logits, tgt, on, n, v);
        ops->sync();
    }
    mem_free(logp);
    return rc;
}

size_t train_loss_bytes(size_t n) {
    return n * (2 * sizeof(float) + sizeof(int32_t) + sizeof(uint8_t));
}

size_t train_adamw_floats(const struct llava *m) {
    return 2 * (m->ngrads ? m->ngrads : 1);
}

void train_adamw_init(struct train_adamw *o, const struct llava *m, float beta1, float beta2, float eps,
                      float weight_decay, float clip) {
    memset(o, 0, sizeof *o);
    o->beta1 = beta1;
    o->beta2 = beta2;
    o->eps = eps;
    o->weight_decay = weight_decay;
    o->clip = clip;
    o->n = m->ngrads;
    o->m = mem_alloc(train_adamw_floats(m), sizeof(float));
    o->v = o->m + train_adamw_floats(m) / 2;
}

void train_adamw_free(struct train_adamw *o) {
    mem_free(o->m);
    memset(o, 0, sizeof *o);
}

/* torch.nn.utils.clip_grad_norm_'s rule: scale by limit / (norm + 1e-6) when that is below 1. */
static void clip(const struct train_adamw *o, struct llava *m, const struct ops *ops, float norm) {
    float coef = o->clip / (norm + 1e-6f);
    if (o->clip > 0 && coef < 1.0f)
        ops->scale(m->grads, coef, m->ngrads);
}

/* An attached adapter's A and B: their gradients and moments follow the table's in the same blocks. */
static void adamw_lora(const struct train_adamw *o, struct llava *m, const struct ops *ops, float lr) {
    size_t ns = m->lora.s ? (size_t)m->cfg.text.layers * LLAVA_NPROJ : 0;
    for (size_t i = 0; i < ns; i++) {
        const struct llava_lora_slot *s = &m->lora.s[i];
        if (!s->mod)
            continue;
        size_t na = (size_t)m->lora.l->r * s->mod->in, nb = (size_t)m->lora.l->r * s->mod->out;
        size_t ga = s->goffset, gb = ga + na;
        ops->adamw(s->mod->A, m->grads + ga, o->m + ga, o->v + ga, na, lr, o->beta1, o->beta2, o->eps,
                   o->weight_decay, o->step);
        ops->adamw(s->mod->B, m->grads + gb, o->m + gb, o->v + gb, nb, lr, o->beta1, o->beta2, o->eps,
                   o->weight_decay, o->step);
    }
}

int train_adamw_step(struct train_adamw *o, struct llava *m, const struct ops *ops, float lr, float *gnorm) {
    if (o->n != m->ngrads || !m->grads)
        return err_set("train: the optimizer has %zu values, the model %zu gradients (re-initialise it)",
                       o->n, m->ngrads);
    float norm = (float)sqrt(ops->sum_squares(m->grads, m->ngrads));
    if (gnorm)
        *gnorm = norm;
    if (!isfinite(norm))
        return err_set("train: the gradient norm is not finite (%g); step skipped", (double)norm);
    clip(o, m, ops, norm);
    o->step++;
    for (size_t i = 0; i < m->nptab; i++) {
        const struct llava_tensor *t = &m->ptab[i];
        if (t->trainable)
            ops->adamw(m->params + t->offset, m->grads + t->goffset, o->m + t->goffset, o->v + t->goffset,
                       t->n, lr, o->beta1, o->beta2, o->eps, o->weight_decay, o->step);
    }
    adamw_lora(o, m, ops, lr);
    ops->sync();
    return 0;
}

/* One step from pixels (feats == 0) or from cached tower features (feats != 0): the two differ in the forward
 * only. */
static int step(struct llava *m, struct train_adamw *o, const struct ops *ops, const int32_t *ids,
                const int32_t *mask, const int32_t *labels, size_t b, size_t t, const float *vis, size_t nimg,
                int feats, float lr, float *loss) {
    /* LoRA dropout is on for this step's forward and backward only, its masks drawn for this step */
    int was = m->lora.train;
    uint64_t lstep = m->lora.step;
    llava_lora_mode(m, 1, (uint64_t)o->step);
    int rc = train_logits_for(m, labels, b, t);
    if (rc == 0)
        rc = feats ? llava_forward_features(m, ops, ids, mask, b, t, vis, nimg)
                   : llava_forward(m, ops, ids, mask, b, t, vis, nimg);
    if (rc == 0)
        rc = train_ce_loss(m, ops, labels, b, t, loss);
    if (rc == 0) {
        llava_zero_grad(m, ops);
        rc = llava_backward(m, ops);
    }
    llava_lora_mode(m, was, lstep);
    return rc < 0 ? -1 : train_adamw_step(o, m, ops, lr, NULL);
}

int train_step(struct llava *m, struct train_adamw *o, const struct ops *ops, const int32_t *ids,
               const int32_t *mask, const int32_t *labels, size_t b, size_t t, const float *pixels,
               size_t nimg, float lr, float *loss) {
    return step(m, o, ops, ids, mask, labels, b, t, pixels, nimg, 0, lr, loss);
}

int train_step_features(struct llava *m, struct train_adamw *o, const struct ops *ops, const int32_t *ids,
                        const int32_t *mask, const int32_t *labels, size_t b, size_t t, const float *feats,
                        size_t nimg, float lr, float *loss) {
    return step(m, o, ops, ids, mask, labels, b, t, feats, nimg, 1, lr, loss);
}

/* unlearn_loss: per-sequence answer log-probabilities, KL to a reference on answer positions, the GA, GA+KLR
 * and NPO objectives composed from them and from train_ce_loss, on the operation table, and the reference
 * model as the trained model's own weights (adapter bypassed, trained tensors at their start values). */
#include "engine/unlearn_loss.h"
#include "engine/mem.h"
#include "engine/train.h"
#include "util/buf.h"
#include "util/err.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The shifted targets of a batch (train_targets) and how many there are. */
struct targets {
    int32_t *tgt;
    uint8_t *on;
    long count;
};

static void targets_free(struct targets *g) {
    mem_free(g->tgt);
    mem_free(g->on);
}

/* per_row: every row must have a target (a sequence's log-probability over nothing means nothing). */
static int targets_make(struct targets *g, const int32_t *labels, size_t b, size_t t, size_t v, int per_row) {
    size_t n = b * t;
    g->tgt = mem_alloc(n ? n : 1, sizeof *g->tgt);
    g->on = mem_alloc(n ? n : 1, 1);
    g->count = train_targets(labels, b, t, (int)v, g->tgt, g->on);
    int rc = g->count < 0    ? -1
             : g->count == 0 ? err_set("unlearn: the batch has no target token (all labels -100)")
                             : 0;
    for (size_t i = 0; rc == 0 && per_row && i < b; i++) {
        long row = 0;
        for (size_t j = 0; j < t; j++)
            row += g->on[i * t + j];
        if (row == 0)
            rc = err_set("unlearn: sequence %zu has no target token (all labels -100)", i);
    }
    if (rc < 0)
        targets_free(g);
    return rc;
}

/* S[i]: the row's log-probabilities summed in double, in position order (same bits for any thread count). */
static void seq_sum(const struct ops *ops, const struct targets *g, const float *logits, size_t b, size_t t,
                    size_t v, float *S) {
    float *logp = mem_alloc(b * t, sizeof *logp);
    ops->logprob_forward(logp, logits, g->tgt, g->on, b * t, v);
    ops->sync(); /* logp is read here */
    for (size_t i = 0; i < b; i++) {
        double s = 0.0;
        for (size_t j = 0; j < t; j++)
            s += g->on[i * t + j] ? logp[i * t + j] : 0.0;
        S[i] = (float)s;
    }
    mem_free(logp);
}

/* dlogits += sum_i dS[i] d S[i] / d logits: every target of row i gets dlogp = dS[i]. */
static void seq_back(const struct ops *ops, const struct targets *g, float *dlogits, const float *dS,
                     const float *logits, size_t b, size_t t, size_t v) {
    float *dlogp = mem_alloc(b * t, sizeof *dlogp);
    for (size_t i = 0; i < b * t; i++)
        dlogp[i] = g->on[i] ? dS[i / t] : 0.0f;
    ops->logprob_backward(dlogits, dlogp, logits, g->tgt, g->on, b * t, v);
    ops->sync();
    mem_free(dlogp);
}

int unlearn_seq_logprob(const struct ops *ops, const float *logits, const int32_t *labels, size_t b, size_t t,
                        size_t v, float *S) {
    struct targets g;
    if (targets_make(&g, labels, b, t, v, 1) < 0)
        return -1;
    seq_sum(ops, &g, logits, b, t, v, S);
    targets_free(&g);
    return 0;
}

int unlearn_seq_logprob_backward(const struct ops *ops, float *dlogits, const float *dS, const float *logits,
                                 const int32_t *labels, size_t b, size_t t, size_t v) {
    struct targets g;
    if (targets_make(&g, labels, b, t, v, 1) < 0)
        return -1;
    seq_back(ops, &g, dlogits, dS, logits, b, t, v);
    targets_free(&g);
    return 0;
}

int unlearn_kl(const struct ops *ops, const float *logits, const float *ref_logits, const int32_t *labels,
               size_t b, size_t t, size_t v, float scale, float *dlogits, float *kl) {
    struct targets g;
    if (targets_make(&g, labels, b, t, v, 0) < 0)
        return -1;
    size_t n = b * t;
    float *pos = mem_alloc(2 * n, sizeof *pos), *dpos = pos + n;
    ops->kl_forward(pos, logits, ref_logits, g.on, n, v);
    ops->sync(); /* pos is read here, dpos written */
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += g.on[i] ? pos[i] : 0.0;
    *kl = (float)(sum / (double)g.count);
    if (dlogits) {
        for (size_t i = 0; i < n; i++)
            dpos[i] = g.on[i] ? scale / (float)g.count : 0.0f;
        ops->kl_backward(dlogits, dpos, logits, ref_logits, g.on, n, v);
        ops->sync();
    }
    mem_free(pos);
    targets_free(&g);
    return 0;
}

/* softplus(z) = log(1 + e^z) without overflow; log sigmoid(x) = -softplus(-x). */
static double softplus(double z) {
    return (z > 0 ? z : 0.0) + log1p(exp(-fabs(z)));
}

static double sigmoid(double z) {
    return z >= 0 ? 1.0 / (1.0 + exp(-z)) : exp(z) / (1.0 + exp(z));
}

/* loss = (2/beta) mean_i softplus(beta (S_i - S_ref_i)), the same as -(2/beta) mean log sigmoid(-beta d_i);
 * d loss / d S_i = (2/b) sigmoid(beta d_i). */
int unlearn_npo(const struct ops *ops, const float *logits, const int32_t *labels, const float *S_ref,
                size_t b, size_t t, size_t v, float beta, float *dlogits, float *loss) {
    if (!(beta > 0))
        return err_set("unlearn: NPO's beta must be positive (got %g)", (double)beta);
    struct targets g;
    if (targets_make(&g, labels, b, t, v, 1) < 0)
        return -1;
    float *S = mem_alloc(2 * b, sizeof *S), *dS = S + b;
    seq_sum(ops, &g, logits, b, t, v, S);
    double sum = 0.0;
    for (size_t i = 0; i < b; i++) {
        double z = (double)beta * ((double)S[i] - S_ref[i]);
        sum += softplus(z);
        dS[i] = (float)(2.0 / (double)b * sigmoid(z));
    }
    *loss = (float)(2.0 / beta * sum / (double)b);
    if (dlogits)
        seq_back(ops, &g, dlogits, dS, logits, b, t, v);
    mem_free(S);
    targets_free(&g);
    return 0;
}

/* ---- on the model ---- */

static size_t vocab(const struct llava *m) {
    return (size_t)m->cfg.text.vocab;
}

int unlearn_forward(struct llava *m, const struct ops *ops, const struct unlearn_batch *x) {
    if (train_logits_for(m, x->labels, x->b, x->t) < 0)
        return -1;
    if (x->feats)
        return llava_forward_features(m, ops, x->ids, x->mask, x->b, x->t, x->feats, x->nimg);
    return llava_forward(m, ops, x->ids, x->mask, x->b, x->t, x->pixels, x->nimg);
}

int unlearn_ref_forward(struct llava *m, const struct ops *ops, const struct unlearn_batch *x, float *ref) {
    int was = m->lora.bypass;
    llava_lora_bypass(m, 1);
    int rc = unlearn_forward(m, ops, x);
    llava_lora_bypass(m, was);
    if (rc == 0)
        ops->copy(ref, m->a.logits, x->b * x->t * vocab(m));
    ops->sync();
    m->fb = 0; /* these activations are not the adapted model's: nothing may differentiate them */
    return rc;
}

/* mem_alloc's alignment in floats on the GPU (engine/mem.c: 256-byte payloads from cudaMallocManaged). */
#define REF_ALIGN 64

/* Walks the trainable rows in table order, giving each its place in the start block: the first position
 * after the previous copy whose alignment within REF_ALIGN is the row's in the parameter block (laid out by
 * llava_carve, row after row: the offsets are summed here, as a plan's shell has none). Returns the block's
 * floats; at (may be NULL) receives each trainable row's position, (size_t)-1 for the others. */
static size_t ref_layout(const struct llava *m, size_t *at) {
    size_t used = 0, offset = 0;
    for (size_t i = 0; i < m->nptab; offset += m->ptab[i].n, i++) {
        if (at)
            at[i] = (size_t)-1;
        if (!m->ptab[i].trainable)
            continue;
        used += (offset + REF_ALIGN - used % REF_ALIGN) % REF_ALIGN;
        if (at)
            at[i] = used;
        used += m->ptab[i].n;
    }
    return used;
}

void unlearn_ref_floats(const struct llava *m, size_t *logits, size_t *start) {
    *start = ref_layout(m, NULL);
    *logits = m->B * m->T * vocab(m);
}

void unlearn_ref_init(struct unlearn_ref *r, const struct llava *m, const struct ops *ops) {
    size_t *pos = xmalloc((m->nptab ? m->nptab : 1) * sizeof *pos), nstart = ref_layout(m, pos);
    r->nptab = m->nptab;
    r->at = xcalloc(m->nptab ? m->nptab : 1, sizeof *r->at);
    r->start = nstart ? mem_alloc(nstart, sizeof(float)) : NULL;
    for (size_t i = 0; i < m->nptab; i++)
        if (pos[i] != (size_t)-1) {
            r->at[i] = r->start + pos[i];
            ops->copy(r->at[i], *m->ptab[i].slot, m->ptab[i].n);
        }
    free(pos);
    ops->sync();
    r->logits = mem_alloc(m->B * m->T * vocab(m), sizeof(float));
}

/* Exchanges every trainable row's slot with its start copy: once to read the start values, once more to
 * restore the trained ones. */
static void ref_swap(struct unlearn_ref *r, struct llava *m) {
    for (size_t i = 0; i < m->nptab; i++)
        if (r->at[i]) {
            float *now = *m->ptab[i].slot;
            *m->ptab[i].slot = r->at[i];
            r->at[i] = now;
        }
}

int unlearn_ref_logits(struct unlearn_ref *r, struct llava *m, const struct ops *ops,
                       const struct unlearn_batch *x) {
    if (!r->logits || r->nptab != m->nptab)
        return err_set("unlearn: the reference was not made for this model (unlearn_ref_init)");
    ref_swap(r, m);
    int rc = unlearn_ref_forward(m, ops, x, r->logits);
    ref_swap(r, m);
    return rc;
}

void unlearn_ref_free(struct unlearn_ref *r) {
    mem_free(r->start);
    mem_free(r->logits);
    free(r->at);
    memset(r, 0, sizeof *r);
}

int unlearn_ref_seq_logprob(struct llava *m, const struct ops *ops, const struct unlearn_batch *x,
                            float *S_ref) {
    float *ref = mem_alloc(x->b * x->t * vocab(m), sizeof *ref);
    int rc = unlearn_ref_forward(m, ops, x, ref);
    if (rc == 0)
        rc = unlearn_seq_logprob(ops, ref, x->labels, x->b, x->t, vocab(m), S_ref);
    mem_free(ref);
    return rc;
}

static int need_grads(const struct llava *m) {
    return m->d.logits ? 0 : err_set("unlearn: loss before llava_grads_init");
}

int unlearn_ga(struct llava *m, const struct ops *ops, const struct unlearn_batch *forget, float *loss) {
    float ce;
    if (unlearn_forward(m, ops, forget) < 0 ||
        train_ce_loss(m, ops, forget->labels, forget->b, forget->t, &ce) < 0)
        return -1;
    /* ascent on the NLL is descent on its negative: flip the loss and the gradient train_ce_loss set */
    *loss = -ce;
    ops->scale(m->d.logits, -1.0f, forget->b * forget->t * vocab(m));
    return llava_backward(m, ops);
}

int unlearn_ga_klr(struct llava *m, const struct ops *ops, const struct unlearn_batch *forget,
                   const struct unlearn_batch *retain, float lambda, float *loss, float *kl) {
    float ga, klv = 0.0f;
    if (need_grads(m) < 0 || unlearn_ga(m, ops, forget, &ga) < 0)
        return -1;
    size_t n = retain->b * retain->t * vocab(m);
    float *ref = mem_alloc(n, sizeof *ref);
    int rc = unlearn_ref_forward(m, ops, retain, ref) < 0 || unlearn_forward(m, ops, retain) < 0 ? -1 : 0;
    if (rc == 0) {
        ops->zero(m->d.logits, n);
        rc = unlearn_kl(ops, m->a.logits, ref, retain->labels, retain->b, retain->t, vocab(m), lambda,
                        m->d.logits, &klv);
    }
    if (rc == 0)
        rc = llava_backward(m, ops);
    mem_free(ref);
    *loss = ga + lambda * klv;
    if (kl)
        *kl = klv;
    return rc;
}

int unlearn_grad_diff(struct llava *m, const struct ops *ops, const struct unlearn_batch *forget,
                      const struct unlearn_batch *retain, float *loss, float *nll) {
    float ga, ce = 0.0f;
    if (need_grads(m) < 0 || unlearn_ga(m, ops, forget, &ga) < 0)
        return -1;
    int rc = unlearn_forward(m, ops, retain) < 0 ||
                     train_ce_loss(m, ops, retain->labels, retain->b, retain->t, &ce) < 0
                 ? -1
                 : llava_backward(m, ops);
    *loss = ga + ce;
    if (nll)
        *nll = ce;
    return rc;
}

int unlearn_npo_step(struct llava *m, const struct ops *ops, const struct unlearn_batch *forget,
                     const float *S_ref, float beta, float *loss) {
    if (need_grads(m) < 0 || unlearn_forward(m, ops, forget) < 0)
        return -1;
    size_t n = forget->b * forget->t * vocab(m);
    ops->zero(m->d.logits, n);
    if (unlearn_npo(ops, m->a.logits, forget->labels, S_ref, forget->b, forget->t, vocab(m), beta,
                    m->d.logits, loss) < 0)
        return -1;
    return llava_backward(m, ops);
}

/* losses: per-position log-probabilities of targets and KL divergences to a reference distribution, from
 * logits, with max-subtracted log-softmax. One position (a row of V logits) per item. */
#include "engine/cpu/cpu.h"
#include "engine/kernels.h"

#include <math.h>

struct loss {
    float *out, *dlogits;
    const float *logits, *ref, *dout;
    const int32_t *target;
    const uint8_t *mask; /* NULL: every position */
    size_t v;
};

/* log sum exp of a row (v >= 1: the public functions return early on v == 0). */
static float row_lse(const float *x, size_t v) {
    float m = x[0], s = 1.0f;
    for (size_t u = 1; u < v; u++)
        kernel_lse_update(&m, &s, x[u]);
    return m + logf(s);
}

/* A position counts when its mask is set and (for log-probabilities) its target is a valid class: a bad
 * target from outside reads as masked instead of out of bounds. */
static int loss_on(const struct loss *l, size_t i) {
    if (l->mask && !l->mask[i])
        return 0;
    return !l->target || (l->target[i] >= 0 && (size_t)l->target[i] < l->v);
}

static void logprob_fwd(void *ctx, size_t begin, size_t end) {
    const struct loss *l = ctx;
    for (size_t i = begin; i < end; i++) {
        const float *x = l->logits + i * l->v;
        l->out[i] = loss_on(l, i) ? x[l->target[i]] - row_lse(x, l->v) : 0.0f;
    }
}

static void logprob_bwd(void *ctx, size_t begin, size_t end) {
    const struct loss *l = ctx;
    for (size_t i = begin; i < end; i++) {
        if (!loss_on(l, i))
            continue;
        const float *x = l->logits + i * l->v;
        float *dx = l->dlogits + i * l->v, g = l->dout[i], lse = row_lse(x, l->v);
        for (size_t u = 0; u < l->v; u++)
            dx[u] += g * ((u == (size_t)l->target[i] ? 1.0f : 0.0f) - expf(x[u] - lse));
    }
}

static void kl_fwd(void *ctx, size_t begin, size_t end) {
    const struct loss *l = ctx;
    for (size_t i = begin; i < end; i++) {
        l->out[i] = 0.0f;
        if (!loss_on(l, i))
            continue;
        const float *x = l->logits + i * l->v, *r = l->ref + i * l->v;
        float lx = row_lse(x, l->v), lr = row_lse(r, l->v), kl = 0.0f;
        for (size_t u = 0; u < l->v; u++) {
            float lpr = r[u] - lr;
            kl += expf(lpr) * (lpr - (x[u] - lx));
        }
        l->out[i] = kl;
    }
}

static void kl_bwd(void *ctx, size_t begin, size_t end) {
    const struct loss *l = ctx;
    for (size_t i = begin; i < end; i++) {
        if (!loss_on(l, i))
            continue;
        const float *x = l->logits + i * l->v, *r = l->ref + i * l->v;
        float *dx = l->dlogits + i * l->v, g = l->dout[i];
        float lx = row_lse(x, l->v), lr = row_lse(r, l->v);
        for (size_t u = 0; u < l->v; u++)
            dx[u] += g * (expf(x[u] - lx) - expf(r[u] - lr));
    }
}

/* An exp and a log-sum-exp update are ~20 multiply-adds a logit. */
#define LOSS_COST 20

void cpu_logprob_forward(float *logp, const float *logits, const int32_t *target, const uint8_t *mask,
                         size_t n, size_t v) {
    if (v == 0)
        return;
    struct loss l = {.out = logp, .logits = logits, .target = target, .mask = mask, .v = v};
    cpu_parallel(n, LOSS_COST * v, logprob_fwd, &l);
}

void cpu_logprob_backward(float *dlogits, const float *dlogp, const float *logits, const int32_t *target,
                          const uint8_t *mask, size_t n, size_t v) {
    if (v == 0)
        return;
    struct loss l = {
        .dlogits = dlogits, .dout = dlogp, .logits = logits, .target = target, .mask = mask, .v = v};
    if (dlogits)
        cpu_parallel(n, 2 * LOSS_COST * v, logprob_bwd, &l);
}

void cpu_kl_forward(float *kl, const float *logits, const float *ref_logits, const uint8_t *mask, size_t n,
                    size_t v) {
    if (v == 0)
        return;
    struct loss l = {.out = kl, .logits = logits, .ref = ref_logits, .mask = mask, .v = v};
    cpu_parallel(n, 3 * LOSS_COST * v, kl_fwd, &l);
}

void cpu_kl_backward(float *dlogits, const float *dkl, const float *logits, const float *ref_logits,
                     const uint8_t *mask, size_t n, size_t v) {
    if (v == 0)
        return;
    struct loss l = {
        .dlogits = dlogits, .dout = dkl, .logits = logits, .ref = ref_logits, .mask = mask, .v = v};
    if (dlogits)
        cpu_parallel(n, 4 * LOSS_COST * v, kl_bwd, &l);
}

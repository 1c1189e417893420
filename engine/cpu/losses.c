/* losses: per-position log-probabilities of targets and KL divergences to a reference distribution, from
 * logits, with max-subtracted log-softmax. One position (a row of V logits) per item; the exponentials and
 * the row sums run four lanes at a time (kernel_exp; sums grouped by column index, never by thread). */
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

/* log sum exp of a row (v >= 1: the public functions return early on v == 0): the max, then the sum of
 * kernel_exp(x - max), both four lanes at a time (element u in lane u % 4, lanes combined in a fixed order,
 * the tail in order: the grouping depends on v alone). A NaN anywhere gives NaN. */
static float row_lse(const float *x, size_t v) {
    size_t v4 = v / 4 * 4;
    float m = x[0];
    if (v4) {
        cpu_f4 m4 = cpu_load4(x);
        for (size_t u = 4; u < v4; u += 4) {
            cpu_f4 xu = cpu_load4(x + u);
            m4 = cpu_select4(xu > m4, xu, m4);
        }
        m = m4[0] > m4[1] ? m4[0] : m4[1];
        m = m4[2] > m ? m4[2] : m;
        m = m4[3] > m ? m4[3] : m;
    }
    for (size_t u = v4; u < v; u++)
        m = x[u] > m ? x[u] : m;
    cpu_f4 acc = cpu_splat4(0.0f);
    for (size_t u = 0; u < v4; u += 4)
        acc += cpu_exp4(cpu_load4(x + u) - cpu_splat4(m));
    float s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (size_t u = v4; u < v; u++)
        s += kernel_exp(x[u] - m);
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
        size_t t = (size_t)l->target[i], u = 0;
        float at_target = dx[t]; /* every column gets g (0 - p), then the target g (1 - p) instead */
        for (; u + 4 <= l->v; u += 4) {
            cpu_f4 p = cpu_exp4(cpu_load4(x + u) - cpu_splat4(lse));
            cpu_store4(dx + u, cpu_load4(dx + u) + cpu_splat4(g) * (cpu_splat4(0.0f) - p));
        }
        for (; u < l->v; u++)
            dx[u] += g * (0.0f - kernel_exp(x[u] - lse));
        dx[t] = at_target + g * (1.0f - kernel_exp(x[t] - lse));
    }
}

static void kl_fwd(void *ctx, size_t begin, size_t end) {
    const struct loss *l = ctx;
    for (size_t i = begin; i < end; i++) {
        l->out[i] = 0.0f;
        if (!loss_on(l, i))
            continue;
        const float *x = l->logits + i * l->v, *r = l->ref + i * l->v;
        float lx = row_lse(x, l->v), lr = row_lse(r, l->v);
        cpu_f4 acc = cpu_splat4(0.0f);
        size_t u = 0;
        for (; u + 4 <= l->v; u += 4) {
            cpu_f4 lpr = cpu_load4(r + u) - cpu_splat4(lr);
            acc += cpu_exp4(lpr) * (lpr - (cpu_load4(x + u) - cpu_splat4(lx)));
        }
        float kl = (acc[0] + acc[1]) + (acc[2] + acc[3]);
        for (; u < l->v; u++) {
            float lpr = r[u] - lr;
            kl += kernel_exp(lpr) * (lpr - (x[u] - lx));
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
        size_t u = 0;
        for (; u + 4 <= l->v; u += 4) {
            cpu_f4 d =
                cpu_exp4(cpu_load4(x + u) - cpu_splat4(lx)) - cpu_exp4(cpu_load4(r + u) - cpu_splat4(lr));
            cpu_store4(dx + u, cpu_load4(dx + u) + cpu_splat4(g) * d);
        }
        for (; u < l->v; u++)
            dx[u] += g * (kernel_exp(x[u] - lx) - kernel_exp(r[u] - lr));
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

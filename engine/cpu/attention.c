/* attention: rotary embedding and naive O(T^2) multi-head attention with causal and right-padding masks,
 * forward and backward. Each query row (and, in the backward, each key row) is computed whole by one thread.
 */
#include "engine/cpu/cpu.h"
#include "engine/kernels.h"

#include "util/buf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct rope {
    float *x;
    const int32_t *pos;
    size_t nh, hs;
    float theta, sign; /* sign -1: the inverse rotation (backward) */
};

/* Items are the B*T positions; the angles are shared by the heads of a position. */
static void rope_rows(void *ctx, size_t begin, size_t end) {
    const struct rope *r = ctx;
    size_t half = r->hs / 2;
    for (size_t i = begin; i < end; i++) {
        for (size_t f = 0; f < half; f++) {
            float angle = kernel_rope_angle(r->pos[i], (int)f, (int)r->hs, r->theta);
            float cs = cosf(angle), sn = r->sign * sinf(angle);
            for (size_t h = 0; h < r->nh; h++) {
                float *x = r->x + (i * r->nh + h) * r->hs;
                kernel_rope_rotate(&x[f], &x[f + half], cs, sn);
            }
        }
    }
}

void cpu_rope_forward(float *x, const int32_t *pos, size_t b, size_t t, size_t nh, size_t hs, float theta) {
    struct rope r = {.x = x, .pos = pos, .nh = nh, .hs = hs, .theta = theta, .sign = 1.0f};
    cpu_parallel(b * t, 16 * hs + 2 * nh * hs, rope_rows, &r);
}

void cpu_rope_backward(float *dx, const int32_t *pos, size_t b, size_t t, size_t nh, size_t hs, float theta) {
    struct rope r = {.x = dx, .pos = pos, .nh = nh, .hs = hs, .theta = theta, .sign = -1.0f};
    cpu_parallel(b * t, 16 * hs + 2 * nh * hs, rope_rows, &r);
}

struct attn {
    float *out, *probs, *dq, *dk, *dv;
    float *d; /* backward: D[t] per query row, [B,NH,T] */
    const float *cprobs, *q, *k, *v, *dout;
    const int32_t *len;
    int causal;
    size_t b, t, nh, hs;
    float scale;
};

static float dot(const float *a, const float *b, size_t n) {
    float s = 0.0f;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* Offset of row (b, t, head) in a [B,T,NH,HS] tensor. */
static size_t attn_at(const struct attn *a, size_t b, size_t t, size_t h) {
    return ((b * a->t + t) * a->nh + h) * a->hs;
}

/* Number of keys query row t of batch b may see (0 for a padding row). */
static size_t attn_keys(const struct attn *a, size_t b, size_t t) {
    size_t len = a->len ? (a->len[b] < 0 ? 0 : (size_t)a->len[b]) : a->t;
    if (len > a->t)
        len = a->t;
    if (t >= len)
        return 0;
    return a->causal ? t + 1 : len;
}

/* Items are the B*NH*T query rows, in [B][NH][T] order (the order of probs). */
static void attention_rows(void *ctx, size_t begin, size_t end) {
    const struct attn *a = ctx;
    for (size_t row = begin; row < end; row++) {
        size_t t = row % a->t, h = row / a->t % a->nh, b = row / a->t / a->nh;
        float *p = a->probs + row * a->t, *o = a->out + attn_at(a, b, t, h);
        const float *q = a->q + attn_at(a, b, t, h);
        size_t keys = attn_keys(a, b, t);
        memset(p, 0, a->t * sizeof(float));
        memset(o, 0, a->hs * sizeof(float));
        if (keys == 0)
            continue;
        float max = -INFINITY, sum = 0.0f;
        for (size_t s = 0; s < keys; s++) {
            p[s] = dot(q, a->k + attn_at(a, b, s, h), a->hs) * a->scale;
            max = p[s] > max ? p[s] : max;
        }
        for (size_t s = 0; s < keys; s++) {
            p[s] = expf(p[s] - max);
            sum += p[s];
        }
        for (size_t s = 0; s < keys; s++) {
            p[s] /= sum;
            const float *v = a->v + attn_at(a, b, s, h);
            for (size_t i = 0; i < a->hs; i++)
                o[i] += p[s] * v[i];
        }
    }
}

void cpu_attention_forward(float *out, float *probs, const float *q, const float *k, const float *v,
                           const int32_t *len, int causal, size_t b, size_t t, size_t nh, size_t hs) {
    struct attn a = {.out = out,
                     .probs = probs,
                     .q = q,
                     .k = k,
                     .v = v,
                     .len = len,
                     .causal = causal,
                     .b = b,
                     .t = t,
                     .nh = nh,
                     .hs = hs,
                     .scale = 1.0f / sqrtf((float)hs)};
    cpu_parallel(b * nh * t, 2 * t * hs, attention_rows, &a);
}

/* The backward through softmax: with P the probabilities and dP[t,s] = dout[t] . v[s], the score gradient is
 * dS[t,s] = P[t,s] (dP[t,s] - D[t]), D[t] = sum_s P[t,s] dP[t,s]. Masked entries have P = 0, so skipping
 * zeros is exact and needs no mask. dP is recomputed where needed rather than stored: [B,NH,T,T] more memory
 * would cost more than the extra T^2 HS multiply-adds. */

/* D[row] for every query row, and dq[t] += scale sum_s dS[t,s] k[s] when dq is wanted. */
static void attention_dq_rows(void *ctx, size_t begin, size_t end) {
    const struct attn *a = ctx;
    float *acc = xmalloc(a->hs * sizeof(float));
    for (size_t row = begin; row < end; row++) {
        size_t t = row % a->t, h = row / a->t % a->nh, b = row / a->t / a->nh;
        const float *p = a->cprobs + row * a->t, *dy = a->dout + attn_at(a, b, t, h);
        float d = 0.0f;
        for (size_t s = 0; s < a->t; s++)
            if (p[s] != 0.0f)
                d += p[s] * dot(dy, a->v + attn_at(a, b, s, h), a->hs);
        a->d[row] = d;
        if (!a->dq)
            continue;
        memset(acc, 0, a->hs * sizeof(float));
        for (size_t s = 0; s < a->t; s++) {
            if (p[s] == 0.0f)
                continue;
            float ds = p[s] * (dot(dy, a->v + attn_at(a, b, s, h), a->hs) - d) * a->scale;
            const float *k = a->k + attn_at(a, b, s, h);
            for (size_t i = 0; i < a->hs; i++)
                acc[i] += ds * k[i];
        }
        float *dq = a->dq + attn_at(a, b, t, h);
        for (size_t i = 0; i < a->hs; i++)
            dq[i] += acc[i];
    }
    free(acc);
}

/* dk[s] += scale sum_t dS[t,s] q[t] and dv[s] += sum_t P[t,s] dout[t]: one key row per item, queries in
 * order, summed apart and added once (so a second call adds exactly the same again). */
static void attention_dkv_rows(void *ctx, size_t begin, size_t end) {
    const struct attn *a = ctx;
    float *ak = xmalloc(2 * a->hs * sizeof(float)), *av = ak + a->hs;
    for (size_t row = begin; row < end; row++) {
        size_t s = row % a->t, h = row / a->t % a->nh, b = row / a->t / a->nh;
        const float *p = a->cprobs + (row - s) * a->t + s; /* column s of this head's P: stride T */
        const float *v = a->v + attn_at(a, b, s, h);
        memset(ak, 0, 2 * a->hs * sizeof(float));
        for (size_t t = 0; t < a->t; t++) {
            float pts = p[t * a->t];
            if (pts == 0.0f)
                continue;
            const float *dy = a->dout + attn_at(a, b, t, h), *q = a->q + attn_at(a, b, t, h);
            float ds = pts * (dot(dy, v, a->hs) - a->d[row - s + t]) * a->scale;
            for (size_t i = 0; i < a->hs; i++) {
                ak[i] += ds * q[i];
                av[i] += pts * dy[i];
            }
        }
        float *dk = a->dk ? a->dk + attn_at(a, b, s, h) : NULL,
              *dv = a->dv ? a->dv + attn_at(a, b, s, h) : NULL;
        for (size_t i = 0; i < a->hs; i++) {
            if (dk)
                dk[i] += ak[i];
            if (dv)
                dv[i] += av[i];
        }
    }
    free(ak);
}

void cpu_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *probs,
                            const float *q, const float *k, const float *v, size_t b, size_t t, size_t nh,
                            size_t hs) {
    if (!dq && !dk && !dv)
        return;
    struct attn a = {.dq = dq,
                     .dk = dk,
                     .dv = dv,
                     .dout = dout,
                     .cprobs = probs,
                     .q = q,
                     .k = k,
                     .v = v,
                     .b = b,
                     .t = t,
                     .nh = nh,
                     .hs = hs,
                     .scale = 1.0f / sqrtf((float)hs)};
    size_t rows = b * nh * t;
    a.d = xmalloc((rows > 0 ? rows : 1) * sizeof(float));
    cpu_parallel(rows, 2 * t * hs, attention_dq_rows, &a);
    if (dk || dv)
        cpu_parallel(rows, 3 * t * hs, attention_dkv_rows, &a);
    free(a.d);
}

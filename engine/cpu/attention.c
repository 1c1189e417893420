/* attention: rotary embedding and multi-head attention with causal and right-padding masks, forward and
 * backward. Each head (of each sequence) is computed whole by one thread, its products as single-threaded
 * OpenBLAS calls over the head's strided rows, so the bits never depend on the thread count. The bf16 twins
 * run the same code on bf16-rounded operands: q, k, v and dout rounded whole before the heads start, the
 * probabilities and dS (computed inside a head) rounded there, just before the products that read them. */
#include "engine/cpu/cpu.h"
#include "engine/kernels.h"

#include "util/buf.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct rope {
    float *x;
    const int32_t *pos;  /* items: the table row of each of the B*T positions */
    const int32_t *tpos; /* the position of each table row */
    float *cs, *sn;      /* the table: [rows][hs/2] cosines and signed sines */
    size_t nh, hs;
    float theta, sign; /* sign -1: the inverse rotation (backward) */
};

static void rope_table_rows(void *ctx, size_t begin, size_t end) {
    const struct rope *r = ctx;
    size_t half = r->hs / 2;
    for (size_t k = begin; k < end; k++)
        for (size_t f = 0; f < half; f++) {
            float angle = kernel_rope_angle(r->tpos[k], (int)f, (int)r->hs, r->theta);
            r->cs[k * half + f] = cosf(angle);
            r->sn[k * half + f] = r->sign * sinf(angle);
        }
}

/* Items are the B*T positions; every head of a position turns by its table row. */
static void rope_rows(void *ctx, size_t begin, size_t end) {
    const struct rope *r = ctx;
    size_t half = r->hs / 2;
    for (size_t i = begin; i < end; i++) {
        const float *restrict cs = r->cs + (size_t)r->pos[i] * half, *restrict sn =
                                                                         r->sn + (size_t)r->pos[i] * half;
        for (size_t h = 0; h < r->nh; h++) {
            float *restrict x = r->x + (i * r->nh + h) * r->hs;
            for (size_t f = 0; f < half; f++)
                kernel_rope_rotate(&x[f], &x[f + half], cs[f], sn[f]);
        }
    }
}

/* Positions repeat across a batch (0..T-1 in every row), so the cosines and sines are computed once per
 * position of the range the batch spans; positions spread wider than the batch get a table row each. */
static void rope(float *x, const int32_t *pos, size_t b, size_t t, size_t nh, size_t hs, float theta,
                 float sign) {
    size_t n = b * t, half = hs / 2;
    if (n == 0 || half == 0)
        return;
    int32_t lo = pos[0], hi = pos[0];
    for (size_t i = 1; i < n; i++) {
        lo = pos[i] < lo ? pos[i] : lo;
        hi = pos[i] > hi ? pos[i] : hi;
    }
    int ranged = (uint64_t)((int64_t)hi - lo) < n;
    size_t count = ranged ? (size_t)((int64_t)hi - lo) + 1 : n;
    int32_t *idx = xmalloc((n + count) * sizeof(int32_t)), *tpos = idx + n;
    for (size_t i = 0; i < n; i++)
        idx[i] = ranged ? pos[i] - lo : (int32_t)i;
    for (size_t k = 0; k < count; k++)
        tpos[k] = ranged ? lo + (int32_t)k : pos[k];
    float *tab = xmalloc(2 * count * half * sizeof(float));
    struct rope r = {.x = x,
                     .pos = idx,
                     .tpos = tpos,
                     .cs = tab,
                     .sn = tab + count * half,
                     .nh = nh,
                     .hs = hs,
                     .theta = theta,
                     .sign = sign};
    cpu_parallel(count, 16 * half, rope_table_rows, &r);
    cpu_parallel(n, 2 * nh * hs, rope_rows, &r);
    free(tab);
    free(idx);
}

void cpu_rope_forward(float *x, const int32_t *pos, size_t b, size_t t, size_t nh, size_t hs, float theta) {
    rope(x, pos, b, t, nh, hs, theta, 1.0f);
}

void cpu_rope_backward(float *dx, const int32_t *pos, size_t b, size_t t, size_t nh, size_t hs, float theta) {
    rope(dx, pos, b, t, nh, hs, theta, -1.0f);
}

struct attn {
    float *out, *probs, *dq, *dk, *dv;
    const float *cprobs, *q, *k, *v, *dout;
    const int32_t *len;
    int causal;
    int bf16; /* round the probabilities and dS before their products (the other operands come rounded) */
    size_t b, t, nh, hs;
    float scale;
};

/* Offset of row (b, t, head) in a [B,T,NH,HS] tensor; a head's rows are NH*HS apart, which is the leading
 * dimension its products use. */
static size_t attn_at(const struct attn *a, size_t b, size_t t, size_t h) {
    return ((b * a->t + t) * a->nh + h) * a->hs;
}

/* Valid positions of sequence b (right padding): queries and keys at or past it are masked. */
static size_t attn_len(const struct attn *a, size_t b) {
    size_t len = a->len ? (a->len[b] < 0 ? 0 : (size_t)a->len[b]) : a->t;
    return len > a->t ? a->t : len;
}

/* C[m,n] = alpha op(A) op(B), one single-threaded sgemm (the pool splits over heads, never inside one). */
static void attn_gemm(int ta, int tb, size_t m, size_t n, size_t k, float alpha, const float *a, size_t lda,
                      const float *b, size_t ldb, float *c, size_t ldc) {
    if (m == 0 || n == 0)
        return;
    if (k == 0) { /* heads of size 0: BLAS would refuse the leading dimensions */
        for (size_t i = 0; i < m; i++)
            memset(c + i * ldc, 0, n * sizeof(float));
        return;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)m, (int)n,
                (int)k, alpha, a, (int)lda, b, (int)ldb, 0.0f, c, (int)ldc);
}

/* dst = src rounded to bf16 over a [rows, cols] box (leading dimension t in both): an operand of a bf16
 * product computed inside a head. */
static void attn_round_box(float *dst, const float *src, size_t rows, size_t cols, size_t t) {
    for (size_t i = 0; i < rows; i++)
        for (size_t s = 0; s < cols; s++)
            dst[i * t + s] = kernel_bf16_round(src[i * t + s]);
}

/* Softmax in place over the first `keys` of a row's t scores; the masked rest (and a row with no key) zero.
 */
static void softmax_row(float *p, size_t keys, size_t t) {
    float max = -INFINITY, sum = 0.0f;
    for (size_t s = 0; s < keys; s++)
        max = p[s] > max ? p[s] : max;
    size_t s = 0;
    for (; s + 4 <= keys; s += 4)
        cpu_store4(p + s, cpu_exp4(cpu_load4(p + s) - cpu_splat4(max)));
    for (; s < keys; s++)
        p[s] = kernel_exp(p[s] - max);
    for (s = 0; s < keys; s++)
        sum += p[s];
    for (s = 0; s + 4 <= keys; s += 4)
        cpu_store4(p + s, cpu_load4(p + s) / cpu_splat4(sum));
    for (; s < keys; s++)
        p[s] /= sum;
    memset(p + keys, 0, (t - keys) * sizeof(float));
}

/* Items are the B*NH heads. A head's scores are one product over its valid positions (written straight into
 * probs), masked and normalised row by row, then one product with V. */
static void attention_heads(void *ctx, size_t begin, size_t end) {
    const struct attn *a = ctx;
    size_t T = a->t, ld = a->nh * a->hs;
    float *rp = a->bf16 ? xmalloc((T * T + 1) * sizeof(float)) : NULL;
    for (size_t item = begin; item < end; item++) {
        size_t b = item / a->nh, h = item % a->nh, len = attn_len(a, b), at = attn_at(a, b, 0, h);
        float *p = a->probs + item * T * T;
        if (len > 0)
            attn_gemm(0, 1, len, len, a->hs, a->scale, a->q + at, ld, a->k + at, ld, p, T);
        for (size_t t = 0; t < T; t++)
            softmax_row(p + t * T, t >= len ? 0 : a->causal ? t + 1 : len, T);
        if (len > 0) {
            if (rp)
                attn_round_box(rp, p, len, len, T);
            attn_gemm(0, 0, len, a->hs, len, 1.0f, rp ? rp : p, T, a->v + at, ld, a->out + at, ld);
        }
        for (size_t t = len; t < T; t++)
            memset(a->out + attn_at(a, b, t, h), 0, a->hs * sizeof(float));
    }
    free(rp);
}

static void attention_forward(float *out, float *probs, const float *q, const float *k, const float *v,
                              const int32_t *len, int causal, size_t b, size_t t, size_t nh, size_t hs,
                              int bf16) {
    struct attn a = {.out = out,
                     .probs = probs,
                     .q = q,
                     .k = k,
                     .v = v,
                     .len = len,
                     .causal = causal,
                     .bf16 = bf16,
                     .b = b,
                     .t = t,
                     .nh = nh,
                     .hs = hs,
                     .scale = 1.0f / sqrtf((float)hs)};
    cpu_parallel(b * nh, 2 * t * t * hs, attention_heads, &a);
}

void cpu_attention_forward(float *out, float *probs, const float *q, const float *k, const float *v,
                           const int32_t *len, int causal, size_t b, size_t t, size_t nh, size_t hs) {
    attention_forward(out, probs, q, k, v, len, causal, b, t, nh, hs, 0);
}

void cpu_attention_forward_bf16(float *out, float *probs, const float *q, const float *k, const float *v,
                                const int32_t *len, int causal, size_t b, size_t t, size_t nh, size_t hs) {
    size_t n = b * t * nh * hs;
    float *rq = cpu_bf16_copy(q, n), *rk = cpu_bf16_copy(k, n), *rv = cpu_bf16_copy(v, n);
    attention_forward(out, probs, rq, rk, rv, len, causal, b, t, nh, hs, 1);
    free(rq);
    free(rk);
    free(rv);
}

/* The backward through softmax: with P the probabilities and dP = dout V^T, the score gradient is dS[t,s] =
 * P[t,s] (dP[t,s] - D[t]), D[t] = sum_s P[t,s] dP[t,s]. The backward has no mask: masked entries have P = 0,
 * so a head's products run over the smallest box holding its nonzero probabilities, and dS is set to zero
 * where P is (whatever dP holds there). */

/* Rows and columns of the box of P [t, t] that holds every nonzero entry. */
static void attn_box(const float *p, size_t t, size_t *rows, size_t *cols) {
    *rows = *cols = 0;
    for (size_t i = 0; i < t; i++)
        for (size_t s = 0; s < t; s++)
            if (p[i * t + s] != 0.0f) {
                *rows = i + 1;
                *cols = s + 1 > *cols ? s + 1 : *cols;
            }
}

/* dP [rows, cols] (leading dimension t) into dS in place: D[t] as cpu_dot sums it, then dS four lanes at a
 * time (zero where P is, by a select). */
static void attn_dscores(float *dp, const float *p, size_t rows, size_t cols, size_t t, float scale) {
    for (size_t i = 0; i < rows; i++) {
        float *r = dp + i * t;
        const float *pr = p + i * t;
        float d = cpu_dot(pr, r, cols);
        cpu_f4 vd = cpu_splat4(d), vs = cpu_splat4(scale), zero = cpu_splat4(0.0f);
        size_t s = 0;
        for (; s + 4 <= cols; s += 4) {
            cpu_f4 ps = cpu_load4(pr + s);
            cpu_store4(r + s, cpu_select4(ps != zero, ps * (cpu_load4(r + s) - vd) * vs, zero));
        }
        for (; s < cols; s++)
            r[s] = pr[s] != 0.0f ? pr[s] * (r[s] - d) * scale : 0.0f;
    }
}

/* dst rows (leading dimension ld) += src [rows, hs] (contiguous). */
static void attn_add_rows(float *dst, size_t ld, const float *src, size_t rows, size_t hs) {
    for (size_t i = 0; i < rows; i++) {
        size_t j = 0;
        for (; j + 4 <= hs; j += 4)
            cpu_store4(dst + i * ld + j, cpu_load4(dst + i * ld + j) + cpu_load4(src + i * hs + j));
        for (; j < hs; j++)
            dst[i * ld + j] += src[i * hs + j];
    }
}

/* Items are the B*NH heads. Each gradient is computed whole into scratch, then added once, so a second call
 * adds exactly the same again and dk does not depend on whether dq was asked for. */
static void attention_grad_heads(void *ctx, size_t begin, size_t end) {
    const struct attn *a = ctx;
    size_t T = a->t, hs = a->hs, ld = a->nh * hs;
    float *dp = xmalloc(((a->bf16 ? 2 : 1) * T * T + T * hs) * sizeof(float)), *tmp = dp + T * T,
          *rp = a->bf16 ? tmp + T * hs : NULL;
    for (size_t item = begin; item < end; item++) {
        size_t b = item / a->nh, h = item % a->nh, at = attn_at(a, b, 0, h), rows, cols;
        const float *p = a->cprobs + item * T * T;
        attn_box(p, T, &rows, &cols);
        if (rows == 0)
            continue;
        attn_gemm(0, 1, rows, cols, hs, 1.0f, a->dout + at, ld, a->v + at, ld, dp, T);
        attn_dscores(dp, p, rows, cols, T, a->scale);
        if (rp) { /* dS in place (it feeds products only from here on), P into scratch for dv */
            attn_round_box(dp, dp, rows, cols, T);
            attn_round_box(rp, p, rows, cols, T);
        }
        if (a->dq) {
            attn_gemm(0, 0, rows, hs, cols, 1.0f, dp, T, a->k + at, ld, tmp, hs);
            attn_add_rows(a->dq + at, ld, tmp, rows, hs);
        }
        if (a->dk) {
            attn_gemm(1, 0, cols, hs, rows, 1.0f, dp, T, a->q + at, ld, tmp, hs);
            attn_add_rows(a->dk + at, ld, tmp, cols, hs);
        }
        if (a->dv) {
            attn_gemm(1, 0, cols, hs, rows, 1.0f, rp ? rp : p, T, a->dout + at, ld, tmp, hs);
            attn_add_rows(a->dv + at, ld, tmp, cols, hs);
        }
    }
    free(dp);
}

static void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *probs,
                               const float *q, const float *k, const float *v, size_t b, size_t t, size_t nh,
                               size_t hs, int bf16) {
    struct attn a = {.dq = dq,
                     .dk = dk,
                     .dv = dv,
                     .dout = dout,
                     .cprobs = probs,
                     .q = q,
                     .k = k,
                     .v = v,
                     .bf16 = bf16,
                     .b = b,
                     .t = t,
                     .nh = nh,
                     .hs = hs,
                     .scale = 1.0f / sqrtf((float)hs)};
    cpu_parallel(b * nh, 5 * t * t * hs, attention_grad_heads, &a);
}

void cpu_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *probs,
                            const float *q, const float *k, const float *v, size_t b, size_t t, size_t nh,
                            size_t hs) {
    if (dq || dk || dv)
        attention_backward(dq, dk, dv, dout, probs, q, k, v, b, t, nh, hs, 0);
}

void cpu_attention_backward_bf16(float *dq, float *dk, float *dv, const float *dout, const float *probs,
                                 const float *q, const float *k, const float *v, size_t b, size_t t,
                                 size_t nh, size_t hs) {
    if (!dq && !dk && !dv)
        return;
    size_t n = b * t * nh * hs;
    float *rd = cpu_bf16_copy(dout, n), *rq = cpu_bf16_copy(q, n), *rk = cpu_bf16_copy(k, n),
          *rv = cpu_bf16_copy(v, n);
    attention_backward(dq, dk, dv, rd, probs, rq, rk, rv, b, t, nh, hs, 1);
    free(rd);
    free(rq);
    free(rk);
    free(rv);
}

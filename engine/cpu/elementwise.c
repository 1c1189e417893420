/* elementwise: activations, adds and embedding lookups. Each element depends on its own inputs only, so any
 * split over threads gives the same bits; the per-element math is engine/kernels.h's, shared with CUDA. */
#include "engine/cpu/cpu.h"
#include "engine/kernels.h"
#include "engine/rng.h"

#include <math.h>
#include <string.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

struct ew {
    float *o1, *o2;
    const float *a, *b, *c;
    float s, p;   /* add_scaled's factor; dropout's scale and probability */
    uint64_t key; /* dropout's mask */
    int accumulate;
    const int32_t *tok;
    size_t c_len; /* embedding row length; repeat_kv's head size */
    size_t n;
    size_t kvh, rep; /* repeat_kv's heads and repeats */
};

static void gelu_fwd(void *ctx, size_t begin, size_t end) {
    const struct ew *e = ctx;
    for (size_t i = begin; i < end; i++)
        e->o1[i] = kernel_gelu(e->a[i]);
}
static void gelu_bwd(void *ctx, size_t begin, size_t end) {
    const struct ew *e = ctx; /* a = dout, b = inp */
    for (size_t i = begin; i < end; i++)
        e->o1[i] += e->a[i] * kernel_gelu_grad(e->b[i]);
}
/* The activations with a sigmoid run four lanes at a time (cpu.h), each step as in kernels.h's formula, then
 * the scalar formula on the tail: the same bits either way. */
static void quick_gelu_fwd(void *ctx, size_t begin, size_t end) {
    const struct ew *e = ctx;
    float *restrict out = e->o1;
    const float *restrict x = e->a;
    size_t i = begin;
    for (; i + 4 <= end; i += 4) {
        cpu_f4 v = cpu_load4(x + i);
        cpu_store4(out + i, v * cpu_sigmoid4(cpu_splat4(1.702f) * v));
    }
    for (; i < end; i++)
        out[i] = kernel_quick_gelu(x[i]);
}
static void quick_gelu_bwd(void *ctx, size_t begin, size_t end) {
    const struct ew *e = ctx; /* a = dout, b = inp */
    float *restrict dx = e->o1;
    const float *restrict dy = e->a, *restrict x = e->b;
    size_t i = begin;
    for (; i + 4 <= end; i += 4) {
        cpu_f4 v = cpu_load4(x + i), s = cpu_sigmoid4(cpu_splat4(1.702f) * v);
        cpu_f4 grad = s + cpu_splat4(1.702f) * v * s * (cpu_splat4(1.0f) - s);
        cpu_store4(dx + i, cpu_load4(dx + i) + cpu_load4(dy + i) * grad);
    }
    for (; i < end; i++)
        dx[i] += dy[i] * kernel_quick_gelu_grad(x[i]);
}
static void swiglu_fwd(void *ctx, size_t begin, size_t end) {
    const struct ew *e = ctx; /* a = gate, b = up */
    float *restrict out = e->o1;
    const float *restrict gate = e->a, *restrict up = e->b;
    size_t i = begin;
    for (; i + 4 <= end; i += 4) {
        cpu_f4 g = cpu_load4(gate + i);
        cpu_store4(out + i, g * cpu_sigmoid4(g) * cpu_load4(up + i));
    }
    for (; i < end; i++)
        out[i] = kernel_silu(gate[i]) * up[i];
}
/* One sigmoid serves both gradients (kernel_swiglu_grad). */
static void swiglu_bwd(void *ctx, size_t begin, size_t end) {
    const struct ew *e = ctx; /* o1 = dgate, o2 = dup, a = dout, b = gate, c = up */
    float *restrict dg = e->o1, *restrict du = e->o2;
    const float *restrict dout = e->a, *restrict gate = e->b, *restrict up = e->c;
    size_t i = begin;
    cpu_f4 one = cpu_splat4(1.0f);
    for (; i + 4 <= end; i += 4) {
        cpu_f4 d = cpu_load4(dout + i), g = cpu_load4(gate + i), s = cpu_sigmoid4(g);
        if (dg)
            cpu_store4(dg + i, cpu_load4(dg + i) + d * cpu_load4(up + i) * (s * (one + g * (one - s))));
        if (du)
            cpu_store4(du + i, cpu_load4(du + i) + d * (g * s));
    }
    for (; i < end; i++) {
        float g, u;
        kernel_swiglu_grad(dout[i], gate[i], up[i], &g, &u);
        if (dg)
            dg[i] += g;
        if (du)
            du[i] += u;
    }
}
static void add_range(void *ctx, size_t begin, size_t end) {
    const struct ew *e = ctx;
    for (size_t i = begin; i < end; i++)
        e->o1[i] = e->a[i] + e->b[i];
}
static void accumulate_range(void *ctx, size_t begin, size_t end) {
    const struct ew *e = ctx;
    for (size_t i = begin; i < end; i++)
        e->o1[i] += e->a[i];
}

static void add_scaled_range(void *ctx, size_t begin, size_t end) {
    const struct ew *e = ctx;
    float *restrict out = e->o1, s = e->s;
    const float *restrict x = e->a;
    for (size_t i = begin; i < end; i++)
        out[i] += x[i] * s;
}
#if defined(__x86_64__) && defined(__GNUC__)
#define EW_AVX512 1
/* The dropout mask eight elements at a time with AVX-512's 64-bit multiplies (rng_u64's steps, exact integer
 * arithmetic), compared as integers: rng_uniform(key, e) < p is (u >> 40) < ceil(p 2^24), both sides exact.
 * The kept values and the sums are the scalar loop's (one rounded multiply, one rounded add). Returns where
 * the scalar tail starts. Only called where the CPU has AVX-512 F, DQ and VL. */
__attribute__((target("avx512f,avx512dq,avx512vl"))) static size_t dropout_avx512(const struct ew *e,
                                                                                  size_t begin, size_t end) {
    if (!(e->p > 0.0f))
        return begin;
    uint64_t limit = e->p >= 1.0f ? (1u << 24) : (uint64_t)ceilf(e->p * 16777216.0f);
    __m512i key = _mm512_set1_epi64((long long)e->key),
            golden = _mm512_set1_epi64((long long)0x9e3779b97f4a7c15ULL);
    __m512i m1 = _mm512_set1_epi64((long long)0xbf58476d1ce4e5b9ULL),
            m2 = _mm512_set1_epi64((long long)0x94d049bb133111ebULL);
    __m512i thr = _mm512_set1_epi64((long long)limit), step = _mm512_set1_epi64(8);
    __m512i ctr =
        _mm512_add_epi64(_mm512_set1_epi64((long long)begin + 1), _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7));
    __m256 scale = _mm256_set1_ps(e->s);
    size_t i = begin;
    for (; i + 8 <= end; i += 8) {
        __m512i z = _mm512_add_epi64(key, _mm512_mullo_epi64(ctr, golden));
        z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)), m1);
        z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)), m2);
        z = _mm512_srli_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 31)), 40);
        __mmask8 keep = _mm512_cmpge_epu64_mask(z, thr);
        __m256 v = _mm256_maskz_mul_ps(keep, _mm256_loadu_ps(e->a + i), scale);
        if (e->accumulate)
            v = _mm256_add_ps(_mm256_loadu_ps(e->o1 + i), v);
        _mm256_storeu_ps(e->o1 + i, v);
        ctr = _mm512_add_epi64(ctr, step);
    }
    return i;
}
#endif

static void dropout_range(void *ctx, size_t begin, size_t end) {
    const struct ew *e = ctx;
#ifdef EW_AVX512
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl"))
        begin = dropout_avx512(e, begin, end);
#endif
    for (size_t i = begin; i < end; i++) {
        float v = rng_uniform(e->key, i) < e->p ? 0.0f : e->a[i] * e->s;
        e->o1[i] = e->accumulate ? e->o1[i] + v : v;
    }
}

/* Transcendental activations cost ~20 multiply-adds an element, adds one. */
#define EW_COST_ACT 20
#define EW_COST_ADD 1

void cpu_gelu_forward(float *out, const float *inp, size_t n) {
    cpu_parallel(n, EW_COST_ACT, gelu_fwd, &(struct ew){.o1 = out, .a = inp});
}
void cpu_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    if (dinp)
        cpu_parallel(n, EW_COST_ACT, gelu_bwd, &(struct ew){.o1 = dinp, .a = dout, .b = inp});
}
void cpu_quick_gelu_forward(float *out, const float *inp, size_t n) {
    cpu_parallel(n, EW_COST_ACT, quick_gelu_fwd, &(struct ew){.o1 = out, .a = inp});
}
void cpu_quick_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    if (dinp)
        cpu_parallel(n, EW_COST_ACT, quick_gelu_bwd, &(struct ew){.o1 = dinp, .a = dout, .b = inp});
}
void cpu_swiglu_forward(float *out, const float *gate, const float *up, size_t n) {
    cpu_parallel(n, EW_COST_ACT, swiglu_fwd, &(struct ew){.o1 = out, .a = gate, .b = up});
}
void cpu_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up,
                         size_t n) {
    if (dgate || dup)
        cpu_parallel(n, 2 * EW_COST_ACT, swiglu_bwd,
                     &(struct ew){.o1 = dgate, .o2 = dup, .a = dout, .b = gate, .c = up});
}
void cpu_add(float *out, const float *a, const float *b, size_t n) {
    cpu_parallel(n, EW_COST_ADD, add_range, &(struct ew){.o1 = out, .a = a, .b = b});
}
void cpu_accumulate(float *dst, const float *src, size_t n) {
    if (dst)
        cpu_parallel(n, EW_COST_ADD, accumulate_range, &(struct ew){.o1 = dst, .a = src});
}

void cpu_add_scaled(float *out, const float *x, float s, size_t n) {
    cpu_parallel(n, EW_COST_ADD, add_scaled_range, &(struct ew){.o1 = out, .a = x, .s = s});
}
void cpu_dropout(float *out, const float *in, size_t n, uint64_t key, float p, float scale, int accumulate) {
    cpu_parallel(n, EW_COST_ACT, dropout_range,
                 &(struct ew){.o1 = out, .a = in, .key = key, .p = p, .s = scale, .accumulate = accumulate});
}

/* A negative token id (never a valid row) reads as a zero row rather than out of bounds; ids past the table
 * are the caller's to refuse (the op does not know the table's length). */
static void embedding_rows(void *ctx, size_t begin, size_t end) {
    const struct ew *e = ctx;
    size_t c = e->c_len;
    for (size_t i = begin; i < end; i++) {
        if (e->tok[i] < 0)
            memset(e->o1 + i * c, 0, c * sizeof(float));
        else
            memcpy(e->o1 + i * c, e->a + (size_t)e->tok[i] * c, c * sizeof(float));
    }
}

/* Split over columns: each column of the table takes its rows' gradients in row order from one thread. */
static void embedding_cols(void *ctx, size_t begin, size_t end) {
    const struct ew *e = ctx;
    size_t c = e->c_len;
    for (size_t i = 0; i < e->n; i++) {
        if (e->tok[i] < 0)
            continue;
        float *row = e->o1 + (size_t)e->tok[i] * c;
        const float *d = e->a + i * c;
        for (size_t j = begin; j < end; j++)
            row[j] += d[j];
    }
}

void cpu_embedding_forward(float *out, const int32_t *tok, const float *table, size_t n, size_t c) {
    cpu_parallel(n, c, embedding_rows, &(struct ew){.o1 = out, .a = table, .tok = tok, .c_len = c, .n = n});
}

void cpu_embedding_backward(float *dtable, const float *dout, const int32_t *tok, size_t n, size_t c) {
    if (dtable)
        cpu_parallel(c, n, embedding_cols,
                     &(struct ew){.o1 = dtable, .a = dout, .tok = tok, .c_len = c, .n = n});
}

static void repeat_kv_rows(void *ctx, size_t begin, size_t end) {
    const struct ew *e = ctx;
    size_t hs = e->c_len, kvh = e->kvh, rep = e->rep;
    for (size_t i = begin; i < end; i++)
        for (size_t h = 0; h < kvh * rep; h++)
            memcpy(e->o1 + (i * kvh * rep + h) * hs, e->a + (i * kvh + h / rep) * hs, hs * sizeof(float));
}

static void repeat_kv_back_rows(void *ctx, size_t begin, size_t end) {
    const struct ew *e = ctx;
    size_t hs = e->c_len, kvh = e->kvh, rep = e->rep;
    for (size_t i = begin; i < end; i++)
        for (size_t j = 0; j < kvh; j++) {
            float *d = e->o1 + (i * kvh + j) * hs;
            for (size_t r = 0; r < rep; r++) {
                const float *x = e->a + (i * kvh * rep + j * rep + r) * hs;
                for (size_t k = 0; k < hs; k++)
                    d[k] += x[k];
            }
        }
}

void cpu_repeat_kv(float *out, const float *in, size_t n, size_t kvh, size_t rep, size_t hs) {
    cpu_parallel(n, kvh * rep * hs, repeat_kv_rows,
                 &(struct ew){.o1 = out, .a = in, .c_len = hs, .kvh = kvh, .rep = rep});
}

void cpu_repeat_kv_backward(float *din, const float *dout, size_t n, size_t kvh, size_t rep, size_t hs) {
    if (din)
        cpu_parallel(n, kvh * rep * hs, repeat_kv_back_rows,
                     &(struct ew){.o1 = din, .a = dout, .c_len = hs, .kvh = kvh, .rep = rep});
}

void cpu_copy(float *dst, const float *src, size_t n) {
    if (n)
        memmove(dst, src, n * sizeof(float));
}

/* bf16 storage: a bf16 value is the high half of the float it stands for. */
struct bf16_args {
    float *f;
    uint16_t *h;
};
static void widen_range(void *ctx, size_t begin, size_t end) {
    const struct bf16_args *a = ctx;
    for (size_t i = begin; i < end; i++) {
        uint32_t u = (uint32_t)a->h[i] << 16;
        memcpy(&a->f[i], &u, sizeof u);
    }
}
static void round_range(void *ctx, size_t begin, size_t end) {
    const struct bf16_args *a = ctx;
    for (size_t i = begin; i < end; i++) {
        float r = kernel_bf16_round(a->f[i]);
        uint32_t u;
        memcpy(&u, &r, sizeof u);
        a->h[i] = (uint16_t)(u >> 16);
    }
}

void cpu_bf16_widen(float *dst, const uint16_t *src, size_t n) {
    cpu_parallel(n, EW_COST_ADD, widen_range, &(struct bf16_args){dst, (uint16_t *)src});
}

void cpu_bf16_round(uint16_t *dst, const float *src, size_t n) {
    cpu_parallel(n, EW_COST_ADD, round_range, &(struct bf16_args){(float *)src, dst});
}

void cpu_zero(float *x, size_t n) {
    if (n)
        memset(x, 0, n * sizeof(float));
}

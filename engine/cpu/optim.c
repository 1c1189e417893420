/* optim: what an optimizer step needs: the global gradient norm (sum of squares in a fixed order), scaling
 * for clipping, and AdamW as torch.optim.AdamW computes it. */
#include "engine/cpu/cpu.h"
#include "engine/kernels.h"

#include <math.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* sum_squares sums fixed chunks of this many values, each in double by one thread, then the chunks in order:
 * the grouping depends on n only, never on the thread count. */
#define SS_CHUNK 16384
#define SS_BATCH 256 /* chunks per round of partial sums (kept on the stack) */

struct ss {
    const float *x;
    size_t n, first; /* first chunk of this round */
    double part[SS_BATCH];
};

static void ss_chunks(void *ctx, size_t begin, size_t end) {
    struct ss *s = ctx;
    for (size_t c = begin; c < end; c++) {
        size_t lo = (s->first + c) * SS_CHUNK, hi = lo + SS_CHUNK < s->n ? lo + SS_CHUNK : s->n;
        /* four running sums (element i into sum i % 4, the chunk starts at a multiple of 4), then combined in
         * a fixed order: the grouping still depends on n alone, and the four chains run side by side */
        double acc[4] = {0.0, 0.0, 0.0, 0.0};
        size_t i = lo;
        for (; i + 4 <= hi; i += 4)
            for (int j = 0; j < 4; j++)
                acc[j] += (double)s->x[i + j] * s->x[i + j];
        for (int j = 0; i < hi; i++, j++)
            acc[j] += (double)s->x[i] * s->x[i];
        s->part[c] = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    }
}

double cpu_sum_squares(const float *x, size_t n) {
    struct ss s = {.x = x, .n = n};
    size_t chunks = (n + SS_CHUNK - 1) / SS_CHUNK;
    double total = 0.0;
    for (s.first = 0; s.first < chunks; s.first += SS_BATCH) {
        size_t round = chunks - s.first < SS_BATCH ? chunks - s.first : SS_BATCH;
        cpu_parallel(round, SS_CHUNK, ss_chunks, &s);
        for (size_t c = 0; c < round; c++)
            total += s.part[c];
    }
    return total;
}

struct scale {
    float *x;
    float s;
};

static void scale_range(void *ctx, size_t begin, size_t end) {
    const struct scale *p = ctx;
    for (size_t i = begin; i < end; i++)
        p->x[i] *= p->s;
}

void cpu_scale(float *x, float s, size_t n) {
    cpu_parallel(n, 1, scale_range, &(struct scale){.x = x, .s = s});
}

struct adamw {
    float *p, *m, *v;
    const float *g;
    float beta1, beta2, eps, decay, step_size, bc2_sqrt;
};

#ifdef __SSE2__
/* kernel_adamw four lanes at a time, operation for operation (SSE's add, mul, div and sqrt round as the
 * scalar ones do, and nothing is fused), so the bits are the scalar loop's. Returns where the scalar tail
 * starts. */
static size_t adamw_sse(const struct adamw *a, size_t begin, size_t end) {
    float w = 1.0f - a->beta1;
    int low = w < 0.5f; /* kernel_lerp's branch, the same for every element */
    __m128 vw = _mm_set1_ps(low ? w : 1.0f - w), b2 = _mm_set1_ps(a->beta2),
           c2 = _mm_set1_ps(1.0f - a->beta2);
    __m128 bc = _mm_set1_ps(a->bc2_sqrt), eps = _mm_set1_ps(a->eps), decay = _mm_set1_ps(a->decay);
    __m128 nstep = _mm_set1_ps(-a->step_size);
    size_t i = begin;
    for (; i + 4 <= end; i += 4) {
        __m128 g = _mm_loadu_ps(a->g + i), m = _mm_loadu_ps(a->m + i), v = _mm_loadu_ps(a->v + i);
        __m128 d = _mm_sub_ps(g, m);
        __m128 mm = low ? _mm_add_ps(m, _mm_mul_ps(vw, d)) : _mm_sub_ps(g, _mm_mul_ps(d, vw));
        __m128 vv = _mm_add_ps(_mm_mul_ps(v, b2), _mm_mul_ps(_mm_mul_ps(c2, g), g));
        __m128 denom = _mm_add_ps(_mm_div_ps(_mm_sqrt_ps(vv), bc), eps);
        __m128 p = _mm_loadu_ps(a->p + i);
        p = _mm_add_ps(_mm_mul_ps(p, decay), _mm_div_ps(_mm_mul_ps(nstep, mm), denom));
        _mm_storeu_ps(a->p + i, p);
        _mm_storeu_ps(a->m + i, mm);
        _mm_storeu_ps(a->v + i, vv);
    }
    return i;
}
#endif

static void adamw_range(void *ctx, size_t begin, size_t end) {
    const struct adamw *a = ctx;
#ifdef __SSE2__
    begin = adamw_sse(a, begin, end);
#endif
    for (size_t i = begin; i < end; i++)
        kernel_adamw(&a->p[i], &a->m[i], &a->v[i], a->g[i], a->beta1, a->beta2, a->eps, a->decay,
                     a->step_size, a->bc2_sqrt);
}

/* The per-step scalars in double, as torch computes them in Python before its fp32 tensor ops. */
void cpu_adamw(float *param, const float *grad, float *m, float *v, size_t n, float lr, float beta1,
               float beta2, float eps, float weight_decay, int t) {
    if (t < 1)
        t = 1; /* the bias correction is undefined before the first step */
    struct adamw a = {.p = param, .m = m, .v = v, .g = grad, .beta1 = beta1, .beta2 = beta2, .eps = eps};
    a.decay = (float)(1.0 - (double)lr * weight_decay);
    a.step_size = (float)((double)lr / (1.0 - pow(beta1, t)));
    a.bc2_sqrt = (float)sqrt(1.0 - pow(beta2, t));
    cpu_parallel(n, 10, adamw_range, &a);
}

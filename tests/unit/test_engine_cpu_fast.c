/* test_engine_cpu_fast: kernel_exp's accuracy, and the CPU backend's fast paths give exactly the bits of the
 * per-element formulas in engine/kernels.h they replace: quick_gelu's and SwiGLU's four-lane loops, AdamW's
 * vector loop (odd lengths, so the scalar tail runs too), RoPE's cosine/sine table (batch positions, negative
 * and far-apart positions), SwiGLU's one-sigmoid backward, dropout and add_scaled against their formulas.
 * Also attention at a size where each head is a real product, against a double-precision reference. */
#include "check.h"
#include "engine/cpu/cpu.h"
#include "engine/kernels.h"
#include "engine/ops.h"
#include "engine/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const struct ops *O;

static float *vec(size_t n, uint64_t seed, float lo, float hi) {
    float *x = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * rng_uniform(seed, i);
    return x;
}

static float *copy(const float *x, size_t n) {
    float *y = malloc(n * sizeof(float));
    memcpy(y, x, n * sizeof(float));
    return y;
}

/* Identical bits, except that any NaN matches any NaN (a NaN's sign depends on operand order, which the
 * compiler may swap in a product). */
static int same_bits(const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!(isnan(a[i]) && isnan(b[i])) && memcmp(&a[i], &b[i], sizeof(float)) != 0)
            return 0;
    return 1;
}

/* kernel_exp against double precision over its whole range, and its edges: under 1e-7 relative (glibc's expf
 * reaches 6e-8), 0 below the range, inf above, NaN kept, exp(0) = 1. */
static void test_exp(void) {
    double worst = 0.0;
    for (int i = 0; i <= 200000; i++) {
        float x = -87.0f + 175.0f * (float)i / 200000.0f;
        double want = exp((double)x), rel = fabs(kernel_exp(x) - want) / want;
        worst = rel > worst ? rel : worst;
    }
    CHECK(worst < 1e-7);
    CHECK(kernel_exp(0.0f) == 1.0f);
    CHECK(kernel_exp(-100.0f) == 0.0f && kernel_exp(-INFINITY) == 0.0f);
    CHECK(isinf(kernel_exp(100.0f)) && isinf(kernel_exp(INFINITY)));
    CHECK(isnan(kernel_exp(NAN)));
}

/* quick_gelu's vector loop against the scalar formulas (odd length: the tail runs too). */
static void test_quick_gelu(void) {
    size_t n = 1003;
    float *x = vec(n, 50, -12, 12), *d = vec(n, 51, -1, 1), *out = malloc(n * sizeof(float));
    float *dx = vec(n, 52, -1, 1), *dx2 = copy(dx, n);
    x[7] = NAN, x[8] = -200.0f, x[9] = 200.0f;
    O->quick_gelu_forward(out, x, n);
    O->quick_gelu_backward(dx, d, x, n);
    for (size_t i = 0; i < n; i++)
        dx2[i] += d[i] * kernel_quick_gelu_grad(x[i]);
    float *want = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        want[i] = kernel_quick_gelu(x[i]);
    CHECK(same_bits(out, want, n));
    CHECK(same_bits(dx, dx2, n));
    free(want);
    free(x), free(d), free(out), free(dx), free(dx2);
}

/* Both lerp branches (beta1 0.9 and 0.3), weight decay on, a step past the first. */
static void test_adamw(void) {
    const float beta1s[2] = {0.9f, 0.3f};
    for (int k = 0; k < 2; k++) {
        size_t n = 1037;
        float *p = vec(n, 1, -1, 1), *g = vec(n, 2, -0.1f, 0.1f), *m = vec(n, 3, -0.01f, 0.01f);
        float *v = vec(n, 4, 0, 0.001f), *p2 = copy(p, n), *m2 = copy(m, n), *v2 = copy(v, n);
        float lr = 1e-3f, beta2 = 0.999f, eps = 1e-8f, wd = 0.01f;
        int t = 3;
        O->adamw(p, g, m, v, n, lr, beta1s[k], beta2, eps, wd, t);
        float decay = (float)(1.0 - (double)lr * wd), step = (float)((double)lr / (1.0 - pow(beta1s[k], t)));
        float bc2 = (float)sqrt(1.0 - pow(beta2, t));
        for (size_t i = 0; i < n; i++)
            kernel_adamw(&p2[i], &m2[i], &v2[i], g[i], beta1s[k], beta2, eps, decay, step, bc2);
        CHECK(memcmp(p, p2, n * sizeof(float)) == 0);
        CHECK(memcmp(m, m2, n * sizeof(float)) == 0);
        CHECK(memcmp(v, v2, n * sizeof(float)) == 0);
        free(p), free(g), free(m), free(v), free(p2), free(m2), free(v2);
    }
}

/* The rotation each position would get from kernel_rope_angle directly. */
static void rope_direct(float *x, const int32_t *pos, size_t n, size_t nh, size_t hs, float theta,
                        float sign) {
    size_t half = hs / 2;
    for (size_t i = 0; i < n; i++)
        for (size_t f = 0; f < half; f++) {
            float a = kernel_rope_angle(pos[i], (int)f, (int)hs, theta), cs = cosf(a), sn = sign * sinf(a);
            for (size_t h = 0; h < nh; h++)
                kernel_rope_rotate(&x[(i * nh + h) * hs + f], &x[(i * nh + h) * hs + f + half], cs, sn);
        }
}

static void test_rope(void) {
    size_t b = 3, t = 7, nh = 2, hs = 16, n = b * t;
    int32_t batch[21], spread[21];
    for (size_t i = 0; i < n; i++) {
        batch[i] = (int32_t)(i % t);
        spread[i] = (int32_t)(i * 100003 % 70001) - 3000; /* negative and far apart: no shared table */
    }
    const int32_t *cases[2] = {batch, spread};
    for (int c = 0; c < 2; c++)
        for (int dir = 0; dir < 2; dir++) {
            float *x = vec(n * nh * hs, 10 + c, -1, 1), *y = copy(x, n * nh * hs);
            if (dir == 0)
                O->rope_forward(x, cases[c], b, t, nh, hs, 10000.0f);
            else
                O->rope_backward(x, cases[c], b, t, nh, hs, 10000.0f);
            rope_direct(y, cases[c], n, nh, hs, 10000.0f, dir == 0 ? 1.0f : -1.0f);
            CHECK(memcmp(x, y, n * nh * hs * sizeof(float)) == 0);
            free(x), free(y);
        }
}

static void test_swiglu(void) {
    size_t n = 1001;
    float *d = vec(n, 20, -1, 1), *g = vec(n, 21, -6, 6), *u = vec(n, 22, -2, 2);
    float *dg = vec(n, 23, -1, 1), *du = vec(n, 24, -1, 1), *dg2 = copy(dg, n), *du2 = copy(du, n);
    float *out = malloc(n * sizeof(float)), *dg3 = copy(dg, n);
    O->swiglu_forward(out, g, u, n);
    O->swiglu_backward(dg, du, d, g, u, n);
    O->swiglu_backward(dg3, NULL, d, g, u, n);
    int same = 1;
    for (size_t i = 0; i < n; i++) {
        dg2[i] += d[i] * u[i] * kernel_silu_grad(g[i]);
        du2[i] += d[i] * kernel_silu(g[i]);
        same &= out[i] == kernel_silu(g[i]) * u[i];
    }
    CHECK(same);
    CHECK(memcmp(dg, dg2, n * sizeof(float)) == 0);
    CHECK(memcmp(du, du2, n * sizeof(float)) == 0);
    CHECK(memcmp(dg3, dg, n * sizeof(float)) == 0);
    free(d), free(g), free(u), free(dg), free(du), free(dg2), free(du2), free(out), free(dg3);
}

/* dropout: the mask and scale of the formula, written or added; add_scaled: scale then accumulate's bits. */
static void test_dropout_add_scaled(void) {
    size_t n = 3001;
    float *x = vec(n, 40, -1, 1), *y = vec(n, 41, -1, 1), *out = malloc(n * sizeof(float)), *acc = copy(y, n);
    uint64_t key = rng_key(7, 3);
    O->dropout(out, x, n, key, 0.25f, 1.0f / 0.75f, 0);
    O->dropout(acc, x, n, key, 0.25f, 1.0f / 0.75f, 1);
    int same = 1;
    size_t dropped = 0;
    for (size_t i = 0; i < n; i++) {
        float v = rng_uniform(key, i) < 0.25f ? 0.0f : x[i] * (1.0f / 0.75f);
        same &= out[i] == v && acc[i] == y[i] + v;
        dropped += out[i] == 0.0f;
    }
    CHECK(same);
    CHECK(dropped > n / 5 && dropped < n / 3);
    const float ps[3] = {0.0f, 1.0f / 3.0f,
                         0.999f}; /* none dropped, a p that is no multiple of 2^-24, most */
    for (int k = 0; k < 3; k++) {
        O->dropout(out, x, n, key, ps[k], 2.0f, 0);
        int ok = 1;
        for (size_t i = 0; i < n; i++)
            ok &= out[i] == (rng_uniform(key, i) < ps[k] ? 0.0f : x[i] * 2.0f);
        CHECK(ok);
    }
    float *u = copy(x, n), *z = copy(y, n);
    O->scale(u, 2.5f, n);
    O->accumulate(z, u, n);
    O->add_scaled(y, x, 2.5f, n);
    CHECK(memcmp(y, z, n * sizeof(float)) == 0);
    free(x), free(y), free(out), free(acc), free(u), free(z);
}

/* Causal attention with right padding at T = 70, HS = 32 (a product per head), against double. */
static void test_attention(void) {
    size_t b = 2, t = 70, nh = 3, hs = 32, n = b * t * nh * hs;
    int32_t len[2] = {70, 45};
    float *q = vec(n, 30, -1, 1), *k = vec(n, 31, -1, 1), *v = vec(n, 32, -1, 1);
    float *out = malloc(n * sizeof(float)), *probs = malloc(b * nh * t * t * sizeof(float));
    O->attention_forward(out, probs, q, k, v, len, 1, b, t, nh, hs);
    double worst = 0.0;
    int zeros = 1;
    for (size_t bi = 0; bi < b; bi++)
        for (size_t h = 0; h < nh; h++)
            for (size_t r = 0; r < t; r++) {
                size_t keys = r < (size_t)len[bi] ? r + 1 : 0, at = ((bi * t + r) * nh + h) * hs;
                double sc[70], mx = -INFINITY, sum = 0.0;
                for (size_t s = 0; s < keys; s++) {
                    double dot = 0.0;
                    for (size_t i = 0; i < hs; i++)
                        dot += (double)q[at + i] * k[((bi * t + s) * nh + h) * hs + i];
                    sc[s] = dot / sqrt((double)hs);
                    mx = sc[s] > mx ? sc[s] : mx;
                }
                for (size_t s = 0; s < keys; s++)
                    sum += exp(sc[s] - mx);
                for (size_t i = 0; i < hs; i++) {
                    double o = 0.0;
                    for (size_t s = 0; s < keys; s++)
                        o += exp(sc[s] - mx) / sum * v[((bi * t + s) * nh + h) * hs + i];
                    double e = fabs(out[at + i] - o);
                    worst = e > worst ? e : worst;
                    zeros &= keys > 0 || out[at + i] == 0.0f;
                }
                const float *p = probs + ((bi * nh + h) * t + r) * t;
                for (size_t s = keys; s < t; s++)
                    zeros &= p[s] == 0.0f;
            }
    CHECK(worst < 1e-5);
    CHECK(zeros);
    free(q), free(k), free(v), free(out), free(probs);
}

/* ops_cpu_follow: the thread count is read from the shared int at every call (clamped), until NULL gives the
 * table its own count back; a change between two products keeps their bits (run --jobs relies on both). */
static void test_follow(void) {
    O = ops_cpu(2);
    CHECK(cpu_threads() == 2);
    int count = 3;
    ops_cpu_follow(&count);
    CHECK(cpu_threads() == 3);
    size_t n = 300, k = 64, m = 130;
    float *a = malloc(n * k * sizeof(float)), *w = malloc(m * k * sizeof(float));
    float *o3 = malloc(n * m * sizeof(float)), *o1 = malloc(n * m * sizeof(float));
    for (size_t i = 0; i < n * k; i++)
        a[i] = rng_uniform(rng_key(5, 1), i) - 0.5f;
    for (size_t i = 0; i < m * k; i++)
        w[i] = rng_uniform(rng_key(5, 2), i) - 0.5f;
    O->matmul_forward(o3, a, w, NULL, n, k, m);
    count = 1;
    CHECK(cpu_threads() == 1);
    O->matmul_forward(o1, a, w, NULL, n, k, m);
    CHECK(memcmp(o1, o3, n * m * sizeof(float)) == 0);
    count = 0;
    CHECK(cpu_threads() == 1); /* clamped */
    ops_cpu_follow(NULL);
    CHECK(cpu_threads() == 2);
    free(a), free(w), free(o3), free(o1);
}

int main(void) {
    test_follow();
    for (int threads = 1; threads <= 2; threads++) {
        O = ops_cpu(threads);
        test_exp();
        test_quick_gelu();
        test_adamw();
        test_rope();
        test_swiglu();
        test_dropout_add_scaled();
        test_attention();
    }
    return check_done("test_engine_cpu_fast");
}

/* norms: LayerNorm (CLIP) and RMSNorm (LLaMA), forward and backward. Rows are independent and split over the
 * threads; the weight gradients sum over rows, so they are split over columns instead, each column summed
 * over all rows in order by one thread. RMSNorm's row sums run as four lanes (cpu_dot's fixed grouping). */
#include "engine/cpu/cpu.h"

#include <math.h>

/* Columns per block of local accumulators in the weight-gradient passes. */
#define NORM_COLS 64

struct norm {
    float *out, *mean, *rstd, *dinp, *dw, *db;
    const float *inp, *w, *b, *dout, *cmean, *crstd;
    size_t n, c;
    float eps;
};

static void layernorm_rows(void *ctx, size_t begin, size_t end) {
    const struct norm *p = ctx;
    for (size_t i = begin; i < end; i++) {
        const float *x = p->inp + i * p->c;
        float *y = p->out + i * p->c;
        float m = 0.0f, v = 0.0f;
        for (size_t j = 0; j < p->c; j++)
            m += x[j];
        m /= (float)p->c;
        for (size_t j = 0; j < p->c; j++)
            v += (x[j] - m) * (x[j] - m);
        v /= (float)p->c; /* biased, as PyTorch */
        float r = 1.0f / sqrtf(v + p->eps);
        for (size_t j = 0; j < p->c; j++)
            y[j] = (x[j] - m) * r * p->w[j] + (p->b ? p->b[j] : 0.0f);
        p->mean[i] = m;
        p->rstd[i] = r;
    }
}

void cpu_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                           const float *b, size_t n, size_t c, float eps) {
    struct norm p = {
        .out = out, .mean = mean, .rstd = rstd, .inp = inp, .w = w, .b = b, .n = n, .c = c, .eps = eps};
    cpu_parallel(n, 4 * c, layernorm_rows, &p);
}

static void layernorm_dinp_rows(void *ctx, size_t begin, size_t end) {
    const struct norm *p = ctx;
    for (size_t i = begin; i < end; i++) {
        const float *x = p->inp + i * p->c, *dy = p->dout + i * p->c;
        float *dx = p->dinp + i * p->c;
        float m = p->cmean[i], r = p->crstd[i];
        float g = 0.0f, gx = 0.0f; /* means of dnorm and of dnorm * xhat */
        for (size_t j = 0; j < p->c; j++) {
            float dn = dy[j] * p->w[j];
            g += dn;
            gx += dn * (x[j] - m) * r;
        }
        g /= (float)p->c;
        gx /= (float)p->c;
        for (size_t j = 0; j < p->c; j++)
            dx[j] += (dy[j] * p->w[j] - g - (x[j] - m) * r * gx) * r;
    }
}

static void layernorm_dw_cols(void *ctx, size_t begin, size_t end) {
    const struct norm *p = ctx;
    for (size_t j0 = begin; j0 < end; j0 += NORM_COLS) {
        size_t w = end - j0 < NORM_COLS ? end - j0 : NORM_COLS;
        float aw[NORM_COLS] = {0}, ab[NORM_COLS] = {0};
        for (size_t i = 0; i < p->n; i++) {
            const float *x = p->inp + i * p->c + j0, *dy = p->dout + i * p->c + j0;
            for (size_t j = 0; j < w; j++) {
                aw[j] += dy[j] * (x[j] - p->cmean[i]) * p->crstd[i];
                ab[j] += dy[j];
            }
        }
        for (size_t j = 0; j < w; j++) {
            if (p->dw)
                p->dw[j0 + j] += aw[j];
            if (p->db)
                p->db[j0 + j] += ab[j];
        }
    }
}

void cpu_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                            const float *w, const float *mean, const float *rstd, size_t n, size_t c) {
    struct norm p = {.dinp = dinp,
                     .dw = dw,
                     .db = db,
                     .dout = dout,
                     .inp = inp,
                     .w = w,
                     .cmean = mean,
                     .crstd = rstd,
                     .n = n,
                     .c = c};
    if (dinp)
        cpu_parallel(n, 6 * c, layernorm_dinp_rows, &p);
    if (dw || db)
        cpu_parallel(c, 3 * n, layernorm_dw_cols, &p);
}

static void rmsnorm_rows(void *ctx, size_t begin, size_t end) {
    const struct norm *p = ctx;
    for (size_t i = begin; i < end; i++) {
        const float *x = p->inp + i * p->c;
        float *y = p->out + i * p->c;
        float ss = cpu_dot(x, x, p->c);
        float r = 1.0f / sqrtf(ss / (float)p->c + p->eps);
        size_t j = 0;
        for (; j + 4 <= p->c; j += 4)
            cpu_store4(y + j, cpu_load4(p->w + j) * (cpu_load4(x + j) * cpu_splat4(r)));
        for (; j < p->c; j++)
            y[j] = p->w[j] * (x[j] * r); /* HF: weight * (x * rsqrt(...)) */
        p->rstd[i] = r;
    }
}

void cpu_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, size_t n, size_t c,
                         float eps) {
    struct norm p = {.out = out, .rstd = rstd, .inp = inp, .w = w, .n = n, .c = c, .eps = eps};
    cpu_parallel(n, 2 * c, rmsnorm_rows, &p);
}

/* y = w x r with r = (mean(x^2) + eps)^-1/2, so dx = r (dy w - x r^2 mean(dy w x)). */
static void rmsnorm_dinp_rows(void *ctx, size_t begin, size_t end) {
    const struct norm *p = ctx;
    for (size_t i = begin; i < end; i++) {
        const float *x = p->inp + i * p->c, *dy = p->dout + i * p->c;
        float *dx = p->dinp + i * p->c;
        float r = p->crstd[i];
        cpu_f4 acc = cpu_splat4(0.0f);
        size_t j = 0;
        for (; j + 4 <= p->c; j += 4)
            acc += cpu_load4(dy + j) * cpu_load4(p->w + j) * cpu_load4(x + j);
        float g = (acc[0] + acc[1]) + (acc[2] + acc[3]);
        for (; j < p->c; j++)
            g += dy[j] * p->w[j] * x[j];
        g = g / (float)p->c * r * r;
        cpu_f4 vr = cpu_splat4(r), vg = cpu_splat4(g);
        for (j = 0; j + 4 <= p->c; j += 4)
            cpu_store4(dx + j, cpu_load4(dx + j) +
                                   vr * (cpu_load4(dy + j) * cpu_load4(p->w + j) - cpu_load4(x + j) * vg));
        for (; j < p->c; j++)
            dx[j] += r * (dy[j] * p->w[j] - x[j] * g);
    }
}

static void rmsnorm_dw_cols(void *ctx, size_t begin, size_t end) {
    const struct norm *p = ctx;
    for (size_t j0 = begin; j0 < end; j0 += NORM_COLS) {
        size_t w = end - j0 < NORM_COLS ? end - j0 : NORM_COLS;
        float aw[NORM_COLS] = {0};
        size_t w4 = w / 4 * 4;
        for (size_t i = 0; i < p->n; i++) {
            const float *x = p->inp + i * p->c + j0, *dy = p->dout + i * p->c + j0;
            cpu_f4 r = cpu_splat4(p->crstd[i]);
            for (size_t j = 0; j < w4; j += 4) /* columns side by side: each still sums its rows in order */
                cpu_store4(aw + j, cpu_load4(aw + j) + cpu_load4(dy + j) * (cpu_load4(x + j) * r));
            for (size_t j = w4; j < w; j++)
                aw[j] += dy[j] * (x[j] * p->crstd[i]);
        }
        for (size_t j = 0; j < w; j++)
            p->dw[j0 + j] += aw[j];
    }
}

void cpu_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                          const float *rstd, size_t n, size_t c) {
    struct norm p = {.dinp = dinp, .dw = dw, .dout = dout, .inp = inp, .w = w, .crstd = rstd, .n = n, .c = c};
    if (dinp)
        cpu_parallel(n, 4 * c, rmsnorm_dinp_rows, &p);
    if (dw)
        cpu_parallel(c, 2 * n, rmsnorm_dw_cols, &p);
}

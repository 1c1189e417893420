/* norms.cu: LayerNorm (CLIP) and RMSNorm (LLaMA), forward and backward, with engine/cpu/norms.c's formulas
 * step for step. Row statistics: one block per row, thread t summing columns t, t + NORM_THREADS, ... in
 * order, then a shared-memory tree: the grouping depends on the row length alone. The weight gradients are
 * column sums over rows, without atomics: each chunk of NORM_CHUNK rows is summed per column in row order
 * into scratch, then the chunks in order (for n <= NORM_CHUNK that is the CPU's order exactly). */
#include "engine/cuda/cuda.h"
#include "engine/cuda/reduce.cuh"

#include <math.h>

#define NORM_THREADS CUDA_BLOCK
#define NORM_CHUNK 64 /* rows per partial column sum in the weight gradients */
#define NORM_EW_THREADS 256

/* One block per row (grid-stride over rows). Both statistics are complete before any output is written, so
 * out may alias inp. */
static __global__ void layernorm_fwd_kernel(float *out, float *mean, float *rstd, const float *inp,
                                            const float *w, const float *b, size_t n, size_t c, float eps) {
    __shared__ float sh[NORM_THREADS];
    for (size_t i = blockIdx.x; i < n; i += gridDim.x) {
        const float *x = inp + i * c;
        float *y = out + i * c;
        float m = 0.0f;
        for (size_t j = threadIdx.x; j < c; j += NORM_THREADS)
            m += x[j];
        m = cuda_block_sum(m, sh) / (float)c;
        float v = 0.0f;
        for (size_t j = threadIdx.x; j < c; j += NORM_THREADS)
            v += (x[j] - m) * (x[j] - m);
        v = cuda_block_sum(v, sh) / (float)c; /* biased, as PyTorch */
        float r = 1.0f / sqrtf(v + eps);
        for (size_t j = threadIdx.x; j < c; j += NORM_THREADS)
            y[j] = (x[j] - m) * r * w[j] + (b ? b[j] : 0.0f);
        if (threadIdx.x == 0) {
            mean[i] = m;
            rstd[i] = r;
        }
    }
}

void cuda_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                            const float *b, size_t n, size_t c, float eps) {
    if (n)
        layernorm_fwd_kernel<<<cuda_blocks(n, 1), NORM_THREADS>>>(out, mean, rstd, inp, w, b, n, c, eps);
    cuda_done("cuda_layernorm_forward");
}

/* dx += (dy w - mean(dy w) - xhat mean(dy w xhat)) rstd, one block per row. */
static __global__ void layernorm_dinp_kernel(float *dinp, const float *dout, const float *inp, const float *w,
                                             const float *mean, const float *rstd, size_t n, size_t c) {
    __shared__ float sh[NORM_THREADS];
    for (size_t i = blockIdx.x; i < n; i += gridDim.x) {
        const float *x = inp + i * c, *dy = dout + i * c;
        float *dx = dinp + i * c;
        float m = mean[i], r = rstd[i];
        float g = 0.0f, gx = 0.0f; /* means of dnorm and of dnorm * xhat */
        for (size_t j = threadIdx.x; j < c; j += NORM_THREADS) {
            float dn = dy[j] * w[j];
            g += dn;
            gx += dn * (x[j] - m) * r;
        }
        g = cuda_block_sum(g, sh) / (float)c;
        gx = cuda_block_sum(gx, sh) / (float)c;
        for (size_t j = threadIdx.x; j < c; j += NORM_THREADS)
            dx[j] += (dy[j] * w[j] - g - (x[j] - m) * r * gx) * r;
    }
}

/* Partial column sums of dw (dy xhat) and db (dy): item e = k c + j sums rows [k NORM_CHUNK, (k + 1)
 * NORM_CHUNK) of column j in order into pw[e], pb[e] (either may be NULL). Consecutive threads take
 * consecutive columns, so the loads of a row are coalesced. */
static __global__ void layernorm_dw_part_kernel(float *pw, float *pb, const float *dout, const float *inp,
                                                const float *mean, const float *rstd, size_t n, size_t c,
                                                size_t chunks) {
    size_t total = chunks * c, stride = (size_t)gridDim.x * blockDim.x;
    for (size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += stride) {
        size_t k = e / c, j = e % c;
        size_t lo = k * NORM_CHUNK, hi = lo + NORM_CHUNK < n ? lo + NORM_CHUNK : n;
        float aw = 0.0f, ab = 0.0f;
        for (size_t i = lo; i < hi; i++) {
            float dy = dout[i * c + j];
            aw += dy * (inp[i * c + j] - mean[i]) * rstd[i];
            ab += dy;
        }
        if (pw)
            pw[e] = aw;
        if (pb)
            pb[e] = ab;
    }
}

/* dst[j] += the chunks' partial sums of column j, added in chunk order (one thread per column). Starting from
 * the first chunk rather than from 0 keeps the CPU's bits when there is one chunk. */
static __global__ void norm_col_sum_kernel(float *dst, const float *part, size_t chunks, size_t c) {
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t j = (size_t)blockIdx.x * blockDim.x + threadIdx.x; j < c; j += stride) {
        float a = chunks ? part[j] : 0.0f;
        for (size_t k = 1; k < chunks; k++)
            a += part[k * c + j];
        dst[j] += a;
    }
}

void cuda_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                             const float *w, const float *mean, const float *rstd, size_t n, size_t c) {
    if (dinp && n)
        layernorm_dinp_kernel<<<cuda_blocks(n, 1), NORM_THREADS>>>(dinp, dout, inp, w, mean, rstd, n, c);
    if ((dw || db) && c) {
        size_t chunks = (n + NORM_CHUNK - 1) / NORM_CHUNK;
        float *pw = dw ? (float *)cuda_scratch(0, chunks * c * sizeof(float)) : NULL;
        float *pb = db ? (float *)cuda_scratch(1, chunks * c * sizeof(float)) : NULL;
        if (chunks)
            layernorm_dw_part_kernel<<<cuda_blocks(chunks * c, NORM_EW_THREADS), NORM_EW_THREADS>>>(
                pw, pb, dout, inp, mean, rstd, n, c, chunks);
        if (dw)
            norm_col_sum_kernel<<<cuda_blocks(c, NORM_EW_THREADS), NORM_EW_THREADS>>>(dw, pw, chunks, c);
        if (db)
            norm_col_sum_kernel<<<cuda_blocks(c, NORM_EW_THREADS), NORM_EW_THREADS>>>(db, pb, chunks, c);
    }
    cuda_done("cuda_layernorm_backward");
}

/* y = w (x r), r = 1 / sqrt(mean(x^2) + eps) (HF's order), one block per row; out may alias inp. */
static __global__ void rmsnorm_fwd_kernel(float *out, float *rstd, const float *inp, const float *w, size_t n,
                                          size_t c, float eps) {
    __shared__ float sh[NORM_THREADS];
    for (size_t i = blockIdx.x; i < n; i += gridDim.x) {
        const float *x = inp + i * c;
        float *y = out + i * c;
        float ss = 0.0f;
        for (size_t j = threadIdx.x; j < c; j += NORM_THREADS)
            ss += x[j] * x[j];
        ss = cuda_block_sum(ss, sh);
        float r = 1.0f / sqrtf(ss / (float)c + eps);
        for (size_t j = threadIdx.x; j < c; j += NORM_THREADS)
            y[j] = w[j] * (x[j] * r);
        if (threadIdx.x == 0)
            rstd[i] = r;
    }
}

void cuda_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, size_t n, size_t c,
                          float eps) {
    if (n)
        rmsnorm_fwd_kernel<<<cuda_blocks(n, 1), NORM_THREADS>>>(out, rstd, inp, w, n, c, eps);
    cuda_done("cuda_rmsnorm_forward");
}

/* dx += r (dy w - x r^2 mean(dy w x)), one block per row. */
static __global__ void rmsnorm_dinp_kernel(float *dinp, const float *dout, const float *inp, const float *w,
                                           const float *rstd, size_t n, size_t c) {
    __shared__ float sh[NORM_THREADS];
    for (size_t i = blockIdx.x; i < n; i += gridDim.x) {
        const float *x = inp + i * c, *dy = dout + i * c;
        float *dx = dinp + i * c;
        float r = rstd[i];
        float g = 0.0f;
        for (size_t j = threadIdx.x; j < c; j += NORM_THREADS)
            g += dy[j] * w[j] * x[j];
        g = cuda_block_sum(g, sh);
        g = g / (float)c * r * r;
        for (size_t j = threadIdx.x; j < c; j += NORM_THREADS)
            dx[j] += r * (dy[j] * w[j] - x[j] * g);
    }
}

/* Partial column sums of dw (dy (x r)) over chunks of rows, laid out as layernorm_dw_part_kernel's. */
static __global__ void rmsnorm_dw_part_kernel(float *pw, const float *dout, const float *inp,
                                              const float *rstd, size_t n, size_t c, size_t chunks) {
    size_t total = chunks * c, stride = (size_t)gridDim.x * blockDim.x;
    for (size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += stride) {
        size_t k = e / c, j = e % c;
        size_t lo = k * NORM_CHUNK, hi = lo + NORM_CHUNK < n ? lo + NORM_CHUNK : n;
        float aw = 0.0f;
        for (size_t i = lo; i < hi; i++)
            aw += dout[i * c + j] * (inp[i * c + j] * rstd[i]);
        pw[e] = aw;
    }
}

void cuda_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                           const float *rstd, size_t n, size_t c) {
    if (dinp && n)
        rmsnorm_dinp_kernel<<<cuda_blocks(n, 1), NORM_THREADS>>>(dinp, dout, inp, w, rstd, n, c);
    if (dw && c) {
        size_t chunks = (n + NORM_CHUNK - 1) / NORM_CHUNK;
        float *pw = (float *)cuda_scratch(0, chunks * c * sizeof(float));
        if (chunks)
            rmsnorm_dw_part_kernel<<<cuda_blocks(chunks * c, NORM_EW_THREADS), NORM_EW_THREADS>>>(
                pw, dout, inp, rstd, n, c, chunks);
        norm_col_sum_kernel<<<cuda_blocks(c, NORM_EW_THREADS), NORM_EW_THREADS>>>(dw, pw, chunks, c);
    }
    cuda_done("cuda_rmsnorm_backward");
}

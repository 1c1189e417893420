/* norms.cu: LayerNorm (CLIP) and RMSNorm (LLaMA), forward and backward, with engine/cpu/norms.c's formulas
 * step for step. Row statistics: one block per row, thread t summing columns t, t + NORM_THREADS, ... in
 * order, then a shared-memory tree: the grouping depends on the row length alone. The weight gradients are
 * column sums over rows, without atomics: each chunk of NORM_CHUNK rows is summed per column in row order
 * into scratch, then the chunks in order (for n <= NORM_CHUNK that is the CPU's order exactly). Every tensor
 * argument may be fp32 memory or bf16 storage (cuda_ten, bf16.cuh): these are also the "bf16-act" table's
 * operations (cuda_ops_bf16_native). */
#include "engine/cuda/bf16.cuh"
#include "engine/cuda/cuda.h"
#include "engine/cuda/reduce.cuh"

#include <math.h>

#define NORM_THREADS CUDA_BLOCK
#define NORM_CHUNK 64 /* rows per partial column sum in the weight gradients */
#define NORM_EW_THREADS 256

/* The row kernels' reduction tree (each block its own, as any __shared__). At file scope, not in the
 * templates: the CUDA emulator keeps shared memory in a section of its own, where GCC does not put a
 * template's static (tests/cudaemu/README.md). */
__shared__ float norm_sh[NORM_THREADS];

/* One block per row (grid-stride over rows). Both statistics are complete before any output is written, so
 * out may alias inp. */
template <bool V>
static __global__ void layernorm_fwd_kernel(cuda_ten out, cuda_ten mean, cuda_ten rstd, cuda_ten inp,
                                            cuda_ten w, cuda_ten b, size_t n, size_t c, float eps) {
    float *sh = norm_sh;
    for (size_t i = blockIdx.x; i < n; i += gridDim.x) {
        size_t row = i * c;
        float m = 0.0f;
        for (size_t j = threadIdx.x; j < c; j += NORM_THREADS)
            m += ten_ld<V>(inp, row + j);
        m = cuda_block_sum(m, sh) / (float)c;
        float v = 0.0f;
        for (size_t j = threadIdx.x; j < c; j += NORM_THREADS) {
            float x = ten_ld<V>(inp, row + j);
            v += (x - m) * (x - m);
        }
        v = cuda_block_sum(v, sh) / (float)c; /* biased, as PyTorch */
        float r = 1.0f / sqrtf(v + eps);
        for (size_t j = threadIdx.x; j < c; j += NORM_THREADS)
            ten_st<V>(out, row + j,
                      (ten_ld<V>(inp, row + j) - m) * r * ten_ld<V>(w, j) + (b.p ? ten_ld<V>(b, j) : 0.0f));
        if (threadIdx.x == 0) {
            ten_st<V>(mean, i, m);
            ten_st<V>(rstd, i, r);
        }
    }
}

void cuda_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                            const float *b, size_t n, size_t c, float eps) {
    cuda_ten o = cuda_arg(out), mu = cuda_arg(mean), rs = cuda_arg(rstd), x = cuda_arg(inp), g = cuda_arg(w),
             bb = cuda_arg(b);
    if (n && cuda_any16(o, mu, rs, x, g, bb))
        layernorm_fwd_kernel<true><<<cuda_blocks(n, 1), NORM_THREADS>>>(o, mu, rs, x, g, bb, n, c, eps);
    else if (n)
        layernorm_fwd_kernel<false><<<cuda_blocks(n, 1), NORM_THREADS>>>(o, mu, rs, x, g, bb, n, c, eps);
    cuda_done("cuda_layernorm_forward");
}

/* dx += (dy w - mean(dy w) - xhat mean(dy w xhat)) rstd, one block per row. */
template <bool V>
static __global__ void layernorm_dinp_kernel(cuda_ten dinp, cuda_ten dout, cuda_ten inp, cuda_ten w,
                                             cuda_ten mean, cuda_ten rstd, size_t n, size_t c) {
    float *sh = norm_sh;
    for (size_t i = blockIdx.x; i < n; i += gridDim.x) {
        size_t row = i * c;
        float m = ten_ld<V>(mean, i), r = ten_ld<V>(rstd, i);
        float g = 0.0f, gx = 0.0f; /* means of dnorm and of dnorm * xhat */
        for (size_t j = threadIdx.x; j < c; j += NORM_THREADS) {
            float dn = ten_ld<V>(dout, row + j) * ten_ld<V>(w, j);
            g += dn;
            gx += dn * (ten_ld<V>(inp, row + j) - m) * r;
        }
        g = cuda_block_sum(g, sh) / (float)c;
        gx = cuda_block_sum(gx, sh) / (float)c;
        for (size_t j = threadIdx.x; j < c; j += NORM_THREADS) {
            float x = ten_ld<V>(inp, row + j);
            ten_st<V>(dinp, row + j,
                      ten_ld<V>(dinp, row + j) +
                          (ten_ld<V>(dout, row + j) * ten_ld<V>(w, j) - g - (x - m) * r * gx) * r);
        }
    }
}

/* Partial column sums of dw (dy xhat) and db (dy): item e = k c + j sums rows [k NORM_CHUNK, (k + 1)
 * NORM_CHUNK) of column j in order into pw[e], pb[e] (either may be NULL; the partial sums are fp32
 * scratch). Consecutive threads take consecutive columns, so the loads of a row are coalesced. */
template <bool V>
static __global__ void layernorm_dw_part_kernel(float *pw, float *pb, cuda_ten dout, cuda_ten inp,
                                                cuda_ten mean, cuda_ten rstd, size_t n, size_t c,
                                                size_t chunks) {
    size_t total = chunks * c, stride = (size_t)gridDim.x * blockDim.x;
    for (size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += stride) {
        size_t k = e / c, j = e % c;
        size_t lo = k * NORM_CHUNK, hi = lo + NORM_CHUNK < n ? lo + NORM_CHUNK : n;
        float aw = 0.0f, ab = 0.0f;
        for (size_t i = lo; i < hi; i++) {
            float dy = ten_ld<V>(dout, i * c + j);
            aw += dy * (ten_ld<V>(inp, i * c + j) - ten_ld<V>(mean, i)) * ten_ld<V>(rstd, i);
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
template <bool V>
static __global__ void norm_col_sum_kernel(cuda_ten dst, const float *part, size_t chunks, size_t c) {
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t j = (size_t)blockIdx.x * blockDim.x + threadIdx.x; j < c; j += stride) {
        float a = chunks ? part[j] : 0.0f;
        for (size_t k = 1; k < chunks; k++)
            a += part[k * c + j];
        ten_st<V>(dst, j, ten_ld<V>(dst, j) + a);
    }
}

/* dst += the column sums of part, dst of either kind. */
static void norm_col_sum(float *dst, const float *part, size_t chunks, size_t c) {
    cuda_ten d = cuda_arg(dst);
    unsigned g = cuda_blocks(c, NORM_EW_THREADS);
    if (d.bf16)
        norm_col_sum_kernel<true><<<g, NORM_EW_THREADS>>>(d, part, chunks, c);
    else
        norm_col_sum_kernel<false><<<g, NORM_EW_THREADS>>>(d, part, chunks, c);
}

void cuda_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                             const float *w, const float *mean, const float *rstd, size_t n, size_t c) {
    cuda_ten dx = cuda_arg(dinp), dy = cuda_arg(dout), x = cuda_arg(inp), g = cuda_arg(w),
             mu = cuda_arg(mean), rs = cuda_arg(rstd);
    bool v = cuda_any16(dx, dy, x, g, mu, rs);
    unsigned rows = cuda_blocks(n, 1);
    if (dinp && n && v)
        layernorm_dinp_kernel<true><<<rows, NORM_THREADS>>>(dx, dy, x, g, mu, rs, n, c);
    else if (dinp && n)
        layernorm_dinp_kernel<false><<<rows, NORM_THREADS>>>(dx, dy, x, g, mu, rs, n, c);
    if ((dw || db) && c) {
        size_t chunks = (n + NORM_CHUNK - 1) / NORM_CHUNK;
        float *pw = dw ? (float *)cuda_scratch(0, chunks * c * sizeof(float)) : NULL;
        float *pb = db ? (float *)cuda_scratch(1, chunks * c * sizeof(float)) : NULL;
        unsigned parts = cuda_blocks(chunks * c, NORM_EW_THREADS);
        if (chunks && v)
            layernorm_dw_part_kernel<true><<<parts, NORM_EW_THREADS>>>(pw, pb, dy, x, mu, rs, n, c, chunks);
        else if (chunks)
            layernorm_dw_part_kernel<false><<<parts, NORM_EW_THREADS>>>(pw, pb, dy, x, mu, rs, n, c, chunks);
        if (dw)
            norm_col_sum(dw, pw, chunks, c);
        if (db)
            norm_col_sum(db, pb, chunks, c);
    }
    cuda_done("cuda_layernorm_backward");
}

/* y = w (x r), r = 1 / sqrt(mean(x^2) + eps) (HF's order), one block per row; out may alias inp. */
template <bool V>
static __global__ void rmsnorm_fwd_kernel(cuda_ten out, cuda_ten rstd, cuda_ten inp, cuda_ten w, size_t n,
                                          size_t c, float eps) {
    float *sh = norm_sh;
    for (size_t i = blockIdx.x; i < n; i += gridDim.x) {
        size_t row = i * c;
        float ss = 0.0f;
        for (size_t j = threadIdx.x; j < c; j += NORM_THREADS) {
            float x = ten_ld<V>(inp, row + j);
            ss += x * x;
        }
        ss = cuda_block_sum(ss, sh);
        float r = 1.0f / sqrtf(ss / (float)c + eps);
        for (size_t j = threadIdx.x; j < c; j += NORM_THREADS)
            ten_st<V>(out, row + j, ten_ld<V>(w, j) * (ten_ld<V>(inp, row + j) * r));
        if (threadIdx.x == 0)
            ten_st<V>(rstd, i, r);
    }
}

void cuda_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, size_t n, size_t c,
                          float eps) {
    cuda_ten o = cuda_arg(out), rs = cuda_arg(rstd), x = cuda_arg(inp), g = cuda_arg(w);
    if (n && cuda_any16(o, rs, x, g))
        rmsnorm_fwd_kernel<true><<<cuda_blocks(n, 1), NORM_THREADS>>>(o, rs, x, g, n, c, eps);
    else if (n)
        rmsnorm_fwd_kernel<false><<<cuda_blocks(n, 1), NORM_THREADS>>>(o, rs, x, g, n, c, eps);
    cuda_done("cuda_rmsnorm_forward");
}

/* dx += r (dy w - x r^2 mean(dy w x)), one block per row. */
template <bool V>
static __global__ void rmsnorm_dinp_kernel(cuda_ten dinp, cuda_ten dout, cuda_ten inp, cuda_ten w,
                                           cuda_ten rstd, size_t n, size_t c) {
    float *sh = norm_sh;
    for (size_t i = blockIdx.x; i < n; i += gridDim.x) {
        size_t row = i * c;
        float r = ten_ld<V>(rstd, i);
        float g = 0.0f;
        for (size_t j = threadIdx.x; j < c; j += NORM_THREADS)
            g += ten_ld<V>(dout, row + j) * ten_ld<V>(w, j) * ten_ld<V>(inp, row + j);
        g = cuda_block_sum(g, sh);
        g = g / (float)c * r * r;
        for (size_t j = threadIdx.x; j < c; j += NORM_THREADS)
            ten_st<V>(dinp, row + j,
                      ten_ld<V>(dinp, row + j) +
                          r * (ten_ld<V>(dout, row + j) * ten_ld<V>(w, j) - ten_ld<V>(inp, row + j) * g));
    }
}

/* Partial column sums of dw (dy (x r)) over chunks of rows, laid out as layernorm_dw_part_kernel's. */
template <bool V>
static __global__ void rmsnorm_dw_part_kernel(float *pw, cuda_ten dout, cuda_ten inp, cuda_ten rstd, size_t n,
                                              size_t c, size_t chunks) {
    size_t total = chunks * c, stride = (size_t)gridDim.x * blockDim.x;
    for (size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += stride) {
        size_t k = e / c, j = e % c;
        size_t lo = k * NORM_CHUNK, hi = lo + NORM_CHUNK < n ? lo + NORM_CHUNK : n;
        float aw = 0.0f;
        for (size_t i = lo; i < hi; i++)
            aw += ten_ld<V>(dout, i * c + j) * (ten_ld<V>(inp, i * c + j) * ten_ld<V>(rstd, i));
        pw[e] = aw;
    }
}

void cuda_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                           const float *rstd, size_t n, size_t c) {
    cuda_ten dx = cuda_arg(dinp), dy = cuda_arg(dout), x = cuda_arg(inp), g = cuda_arg(w),
             rs = cuda_arg(rstd);
    bool v = cuda_any16(dx, dy, x, g, rs);
    if (dinp && n && v)
        rmsnorm_dinp_kernel<true><<<cuda_blocks(n, 1), NORM_THREADS>>>(dx, dy, x, g, rs, n, c);
    else if (dinp && n)
        rmsnorm_dinp_kernel<false><<<cuda_blocks(n, 1), NORM_THREADS>>>(dx, dy, x, g, rs, n, c);
    if (dw && c) {
        size_t chunks = (n + NORM_CHUNK - 1) / NORM_CHUNK;
        float *pw = (float *)cuda_scratch(0, chunks * c * sizeof(float));
        unsigned parts = cuda_blocks(chunks * c, NORM_EW_THREADS);
        if (chunks && v)
            rmsnorm_dw_part_kernel<true><<<parts, NORM_EW_THREADS>>>(pw, dy, x, rs, n, c, chunks);
        else if (chunks)
            rmsnorm_dw_part_kernel<false><<<parts, NORM_EW_THREADS>>>(pw, dy, x, rs, n, c, chunks);
        norm_col_sum(dw, pw, chunks, c);
    }
    cuda_done("cuda_rmsnorm_backward");
}

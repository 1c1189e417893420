/* losses.cu: per-position log-probabilities of targets and KL divergences to a reference distribution, from
 * logits, as engine/cpu/losses.c computes them: max-subtracted log-softmax with kernel_exp. One block per
 * position (a row of v logits, v often 32000+, so n v exceeds 2^31: rows are addressed with size_t); the
 * row's max and sums are fixed trees (thread t takes logits t, t + LOSS_THREADS, ... in order, then a
 * shared-memory tree), so the grouping depends on v alone. */
#include "engine/cuda/cuda.h"
#include "engine/cuda/reduce.cuh"
#include "engine/kernels.h"

#include <math.h>

#define LOSS_THREADS CUDA_BLOCK /* one block per row (engine/cuda/reduce.cuh) */

/* log sum exp of a row (v >= 1): the max, then the sum of kernel_exp(x - max), as the CPU's row_lse. A NaN
 * anywhere gives NaN: the max may skip it, but its exp term in the sum is NaN. Called by the whole block. */
static __device__ float loss_row_lse(const float *x, size_t v, float *sh) {
    float m = -INFINITY;
    for (size_t u = threadIdx.x; u < v; u += LOSS_THREADS)
        m = x[u] > m ? x[u] : m;
    m = cuda_block_max(m, sh);
    float s = 0.0f;
    for (size_t u = threadIdx.x; u < v; u += LOSS_THREADS)
        s += kernel_exp(x[u] - m);
    s = cuda_block_sum(s, sh);
    return m + logf(s);
}

/* Whether position i counts: its mask is set and (for log-probabilities) its target is a valid class, so a
 * bad target reads as masked instead of out of bounds (the CPU's loss_on). It depends on i alone, so a whole
 * block takes the same branch and the barriers inside stay uniform. */
static __device__ int loss_on(const uint8_t *mask, const int32_t *target, size_t i, size_t v) {
    if (mask && !mask[i])
        return 0;
    return !target || (target[i] >= 0 && (size_t)target[i] < v);
}

static __global__ void logprob_fwd_kernel(float *logp, const float *logits, const int32_t *target,
                                          const uint8_t *mask, size_t n, size_t v) {
    __shared__ float sh[LOSS_THREADS];
    for (size_t i = blockIdx.x; i < n; i += gridDim.x) {
        if (!loss_on(mask, target, i, v)) {
            if (threadIdx.x == 0)
                logp[i] = 0.0f;
            continue;
        }
        const float *x = logits + i * v;
        float lse = loss_row_lse(x, v, sh);
        if (threadIdx.x == 0)
            logp[i] = x[target[i]] - lse;
    }
}

/* Every column gets g (0 - p), the target column g (1 - p): each column is read and written by one thread
 * only, so the target's old value is read before its update as on the CPU. */
static __global__ void logprob_bwd_kernel(float *dlogits, const float *dlogp, const float *logits,
                                          const int32_t *target, const uint8_t *mask, size_t n, size_t v) {
    __shared__ float sh[LOSS_THREADS];
    for (size_t i = blockIdx.x; i < n; i += gridDim.x) {
        if (!loss_on(mask, target, i, v))
            continue;
        const float *x = logits + i * v;
        float *dx = dlogits + i * v, g = dlogp[i], lse = loss_row_lse(x, v, sh);
        size_t t = (size_t)target[i];
        for (size_t u = threadIdx.x; u < v; u += LOSS_THREADS) {
            float p = kernel_exp(x[u] - lse);
            dx[u] = u == t ? dx[u] + g * (1.0f - p) : dx[u] + g * (0.0f - p);
        }
    }
}

/* kl = sum p_ref (log p_ref - log p); masked positions write 0. */
static __global__ void kl_fwd_kernel(float *kl, const float *logits, const float *ref_logits,
                                     const uint8_t *mask, size_t n, size_t v) {
    __shared__ float sh[LOSS_THREADS];
    for (size_t i = blockIdx.x; i < n; i += gridDim.x) {
        if (!loss_on(mask, NULL, i, v)) {
            if (threadIdx.x == 0)
                kl[i] = 0.0f;
            continue;
        }
        const float *x = logits + i * v, *r = ref_logits + i * v;
        float lx = loss_row_lse(x, v, sh), lr = loss_row_lse(r, v, sh);
        float acc = 0.0f;
        for (size_t u = threadIdx.x; u < v; u += LOSS_THREADS) {
            float lpr = r[u] - lr;
            acc += kernel_exp(lpr) * (lpr - (x[u] - lx));
        }
        acc = cuda_block_sum(acc, sh);
        if (threadIdx.x == 0)
            kl[i] = acc;
    }
}

/* dlogits += g (softmax(logits) - softmax(ref_logits)) where the position counts. */
static __global__ void kl_bwd_kernel(float *dlogits, const float *dkl, const float *logits,
                                     const float *ref_logits, const uint8_t *mask, size_t n, size_t v) {
    __shared__ float sh[LOSS_THREADS];
    for (size_t i = blockIdx.x; i < n; i += gridDim.x) {
        if (!loss_on(mask, NULL, i, v))
            continue;
        const float *x = logits + i * v, *r = ref_logits + i * v;
        float *dx = dlogits + i * v, g = dkl[i];
        float lx = loss_row_lse(x, v, sh), lr = loss_row_lse(r, v, sh);
        for (size_t u = threadIdx.x; u < v; u += LOSS_THREADS)
            dx[u] += g * (kernel_exp(x[u] - lx) - kernel_exp(r[u] - lr));
    }
}

/* v == 0 leaves every output untouched, as the CPU does. */
void cuda_logprob_forward(float *logp, const float *logits, const int32_t *target, const uint8_t *mask,
                          size_t n, size_t v) {
    if (n && v)
        logprob_fwd_kernel<<<cuda_blocks(n, 1), LOSS_THREADS>>>(logp, logits, target, mask, n, v);
    cuda_done("cuda_logprob_forward");
}

void cuda_logprob_backward(float *dlogits, const float *dlogp, const float *logits, const int32_t *target,
                           const uint8_t *mask, size_t n, size_t v) {
    if (dlogits && n && v)
        logprob_bwd_kernel<<<cuda_blocks(n, 1), LOSS_THREADS>>>(dlogits, dlogp, logits, target, mask, n, v);
    cuda_done("cuda_logprob_backward");
}

void cuda_kl_forward(float *kl, const float *logits, const float *ref_logits, const uint8_t *mask, size_t n,
                     size_t v) {
    if (n && v)
        kl_fwd_kernel<<<cuda_blocks(n, 1), LOSS_THREADS>>>(kl, logits, ref_logits, mask, n, v);
    cuda_done("cuda_kl_forward");
}

void cuda_kl_backward(float *dlogits, const float *dkl, const float *logits, const float *ref_logits,
                      const uint8_t *mask, size_t n, size_t v) {
    if (dlogits && n && v)
        kl_bwd_kernel<<<cuda_blocks(n, 1), LOSS_THREADS>>>(dlogits, dkl, logits, ref_logits, mask, n, v);
    cuda_done("cuda_kl_backward");
}

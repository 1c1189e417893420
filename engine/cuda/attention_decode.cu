/* attention_decode (CUDA): one new query per sequence against a K/V cache, the attention of a generation
 * step, with the semantics of engine/cpu/attention_decode.c. One block per (sequence, head): the scores (one
 * key per thread, its dot product in order), the softmax over a fixed shared-memory tree (reduce.cuh), then
 * the output (one component per thread, the keys in order). Everything depends on the shapes only, so two
 * runs give the same bits; the sums' grouping differs from the CPU's BLAS calls, as attention_forward's does.
 *
 * Layouts: q, out [B,NH,HS]; k, v [B,CAP,KVH,HS], so the keys of query head h of sequence b are the rows at
 * k + (b*CAP*KVH + h/(NH/KVH))*HS, KVH*HS apart. */
#include "engine/cuda/cuda.h"
#include "engine/cuda/reduce.cuh"
#include "engine/kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define DEC_THREADS CUDA_BLOCK

/* scores: scratch [B*NH, CAP]; lens: the valid key counts, clamped to 0..CAP by the host. */
static __global__ void attention_decode_kernel(float *out, const float *q, const float *k, const float *v,
                                               const int32_t *lens, float *scores, size_t rows, size_t cap,
                                               size_t nh, size_t kvh, size_t hs, float scale) {
    __shared__ float sh[DEC_THREADS];
    size_t ld = kvh * hs, rep = nh >= kvh ? nh / kvh : 1;
    for (size_t row = blockIdx.x; row < rows; row += gridDim.x) {
        size_t b = row / nh, h = row % nh, n = (size_t)lens[b];
        const float *qr = q + row * hs, *kr = k + b * cap * ld + (h / rep) * hs;
        const float *vr = v + b * cap * ld + (h / rep) * hs;
        float *s = scores + row * cap;
        float max = -INFINITY;
        for (size_t j = threadIdx.x; j < n; j += DEC_THREADS) {
            float dot = 0.0f;
            for (size_t d = 0; d < hs; d++)
                dot += qr[d] * kr[j * ld + d];
            s[j] = dot * scale;
            max = s[j] > max ? s[j] : max;
        }
        max = cuda_block_max(max, sh);
        float sum = 0.0f;
        for (size_t j = threadIdx.x; j < n; j += DEC_THREADS) {
            float e = kernel_exp(s[j] - max);
            s[j] = e;
            sum += e;
        }
        sum = cuda_block_sum(sum, sh);
        for (size_t j = threadIdx.x; j < n; j += DEC_THREADS)
            s[j] /= sum;
        __syncthreads(); /* every probability is written before any thread reads them all */
        for (size_t d = threadIdx.x; d < hs; d += DEC_THREADS) {
            float acc = 0.0f;
            for (size_t j = 0; j < n; j++)
                acc += s[j] * vr[j * ld + d];
            out[row * hs + d] = acc;
        }
    }
}

void cuda_attention_decode(float *out, const float *q, const float *k, const float *v, const int32_t *len,
                           size_t b, size_t cap, size_t nh, size_t kvh, size_t hs) {
    const char *op = "attention_decode";
    if (b == 0 || nh == 0 || hs == 0) {
        cuda_done(op);
        return;
    }
    int32_t *lens = (int32_t *)malloc(b * sizeof(int32_t));
    if (!lens) {
        fprintf(stderr, "pulse-pipe: out of memory in %s\n", op);
        exit(1);
    }
    /* The lengths may be host or managed memory: copied, clamped, then copied to device scratch. */
    cuda_check(cudaMemcpy(lens, len, b * sizeof(int32_t), cudaMemcpyDefault), op);
    for (size_t i = 0; i < b; i++)
        lens[i] = lens[i] < 0 ? 0 : (size_t)lens[i] > cap ? (int32_t)cap : lens[i];
    int32_t *dlens = (int32_t *)cuda_scratch(0, b * sizeof(int32_t));
    float *scores = (float *)cuda_scratch(1, (b * nh * (cap ? cap : 1)) * sizeof(float));
    cuda_check(cudaMemcpy(dlens, lens, b * sizeof(int32_t), cudaMemcpyHostToDevice), op);
    free(lens);
    size_t rows = b * nh;
    attention_decode_kernel<<<cuda_blocks(rows, 1), DEC_THREADS>>>(
        out, q, k, v, dlens, scores, rows, cap, nh, kvh ? kvh : nh, hs, 1.0f / sqrtf((float)hs));
    cuda_done(op);
}

/* elementwise.cu: activations, adds, dropout, copies and embedding lookups, as engine/cpu/elementwise.c does
 * them. Every element depends on its own inputs only, so one thread per element (grid-stride) gives the CPU's
 * bits: the per-element math is engine/kernels.h's and the dropout mask engine/rng.h's, shared with the CPU.
 * The one sum, the embedding's backward, runs one thread per table column taking the rows in order. */
#include "engine/cuda/bf16.cuh"
#include "engine/cuda/cuda.h"
#include "engine/kernels.h"
#include "engine/mem.h"
#include "engine/rng.h"

#include <stdint.h>

#define EW_THREADS 256
#define EMB_THREADS 256 /* forward: one block per row, threads over the columns */
/* backward: one thread per column; small blocks spread the few columns over more SMs */
#define EMB_BWD_THREADS 64

/* The grid-stride loop every kernel here uses: this thread's first item and the step between its items. */
static __device__ size_t ew_first(void) {
    return (size_t)blockIdx.x * blockDim.x + threadIdx.x;
}
static __device__ size_t ew_step(void) {
    return (size_t)gridDim.x * blockDim.x;
}

static __global__ void gelu_fwd_kernel(float *out, const float *inp, size_t n) {
    for (size_t i = ew_first(); i < n; i += ew_step())
        out[i] = kernel_gelu(inp[i]);
}

static __global__ void gelu_bwd_kernel(float *dinp, const float *dout, const float *inp, size_t n) {
    for (size_t i = ew_first(); i < n; i += ew_step())
        dinp[i] += dout[i] * kernel_gelu_grad(inp[i]);
}

static __global__ void quick_gelu_fwd_kernel(float *out, const float *inp, size_t n) {
    for (size_t i = ew_first(); i < n; i += ew_step())
        out[i] = kernel_quick_gelu(inp[i]);
}

static __global__ void quick_gelu_bwd_kernel(float *dinp, const float *dout, const float *inp, size_t n) {
    for (size_t i = ew_first(); i < n; i += ew_step())
        dinp[i] += dout[i] * kernel_quick_gelu_grad(inp[i]);
}

static __global__ void swiglu_fwd_kernel(float *out, const float *gate, const float *up, size_t n) {
    for (size_t i = ew_first(); i < n; i += ew_step())
        out[i] = kernel_silu(gate[i]) * up[i];
}

/* Either gradient may be NULL (not needed). */
static __global__ void swiglu_bwd_kernel(float *dgate, float *dup, const float *dout, const float *gate,
                                         const float *up, size_t n) {
    for (size_t i = ew_first(); i < n; i += ew_step()) {
        float g, u;
        kernel_swiglu_grad(dout[i], gate[i], up[i], &g, &u);
        if (dgate)
            dgate[i] += g;
        if (dup)
            dup[i] += u;
    }
}

static __global__ void add_kernel(float *out, const float *a, const float *b, size_t n) {
    for (size_t i = ew_first(); i < n; i += ew_step())
        out[i] = a[i] + b[i];
}

static __global__ void accumulate_kernel(float *dst, const float *src, size_t n) {
    for (size_t i = ew_first(); i < n; i += ew_step())
        dst[i] += src[i];
}

static __global__ void add_scaled_kernel(float *out, const float *x, float s, size_t n) {
    for (size_t i = ew_first(); i < n; i += ew_step())
        out[i] += x[i] * s;
}

/* Element e is dropped when rng_uniform(key, e) < p, the CPU's mask bit for bit. */
/* out and in fp32 or bf16 storage (the bf16 tables take it: engine/act16.c's definition, one rounding). */
template <typename O, typename I>
static __global__ void dropout_kernel(O *out, const I *in, size_t n, uint64_t key, float p, float scale,
                                      int accumulate) {
    for (size_t i = ew_first(); i < n; i += ew_step()) {
        float v = rng_uniform(key, i) < p ? 0.0f : cuda_ld(in, i) * scale;
        cuda_st(out, i, accumulate ? cuda_ld(out, i) + v : v);
    }
}

/* One block per row (grid-stride over rows), coalesced over the columns. A negative token id reads as a zero
 * row, as on the CPU. */
static __global__ void embedding_fwd_kernel(float *out, const int32_t *tok, const float *table, size_t n,
                                            size_t c) {
    for (size_t i = blockIdx.x; i < n; i += gridDim.x) {
        int32_t t = tok[i];
        float *o = out + i * c;
        if (t < 0) {
            for (size_t j = threadIdx.x; j < c; j += EMB_THREADS)
                o[j] = 0.0f;
        } else {
            const float *row = table + (size_t)t * c;
            for (size_t j = threadIdx.x; j < c; j += EMB_THREADS)
                o[j] = row[j];
        }
    }
}

/* One thread per column j: dtable[tok[i]][j] += dout[i][j] for i in order, so repeated tokens add up in row
 * order (the CPU's bits) without atomics. A warp's columns are adjacent: the accesses of a row coalesce. */
static __global__ void embedding_bwd_kernel(float *dtable, const float *dout, const int32_t *tok, size_t n,
                                            size_t c) {
    for (size_t j = ew_first(); j < c; j += ew_step()) {
        for (size_t i = 0; i < n; i++) {
            int32_t t = tok[i];
            if (t < 0)
                continue;
            dtable[(size_t)t * c + j] += dout[i * c + j];
        }
    }
}

/* One thread per output element: out[i, h, k] = in[i, h / rep, k]. */
static __global__ void repeat_kv_kernel(float *out, const float *in, size_t total, size_t kvh, size_t rep,
                                        size_t hs) {
    for (size_t e = ew_first(); e < total; e += ew_step()) {
        size_t k = e % hs, h = e / hs % (kvh * rep), i = e / (hs * kvh * rep);
        out[e] = in[(i * kvh + h / rep) * hs + k];
    }
}

/* One thread per input element, adding its rep heads in order (the CPU's bits, no atomics). */
static __global__ void repeat_kv_bwd_kernel(float *din, const float *dout, size_t total, size_t kvh,
                                            size_t rep, size_t hs) {
    for (size_t e = ew_first(); e < total; e += ew_step()) {
        size_t k = e % hs, j = e / hs % kvh, i = e / (hs * kvh);
        float d = din[e];
        for (size_t r = 0; r < rep; r++)
            d += dout[(i * kvh * rep + j * rep + r) * hs + k];
        din[e] = d;
    }
}

void cuda_repeat_kv(float *out, const float *in, size_t n, size_t kvh, size_t rep, size_t hs) {
    size_t total = n * kvh * rep * hs;
    if (total)
        repeat_kv_kernel<<<cuda_blocks(total, EW_THREADS), EW_THREADS>>>(out, in, total, kvh, rep, hs);
    cuda_done("cuda_repeat_kv");
}

void cuda_repeat_kv_backward(float *din, const float *dout, size_t n, size_t kvh, size_t rep, size_t hs) {
    size_t total = n * kvh * hs;
    if (din && total && rep)
        repeat_kv_bwd_kernel<<<cuda_blocks(total, EW_THREADS), EW_THREADS>>>(din, dout, total, kvh, rep, hs);
    cuda_done("cuda_repeat_kv_backward");
}

void cuda_gelu_forward(float *out, const float *inp, size_t n) {
    if (n)
        gelu_fwd_kernel<<<cuda_blocks(n, EW_THREADS), EW_THREADS>>>(out, inp, n);
    cuda_done("cuda_gelu_forward");
}

void cuda_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    if (dinp && n)
        gelu_bwd_kernel<<<cuda_blocks(n, EW_THREADS), EW_THREADS>>>(dinp, dout, inp, n);
    cuda_done("cuda_gelu_backward");
}

void cuda_quick_gelu_forward(float *out, const float *inp, size_t n) {
    if (n)
        quick_gelu_fwd_kernel<<<cuda_blocks(n, EW_THREADS), EW_THREADS>>>(out, inp, n);
    cuda_done("cuda_quick_gelu_forward");
}

void cuda_quick_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    if (dinp && n)
        quick_gelu_bwd_kernel<<<cuda_blocks(n, EW_THREADS), EW_THREADS>>>(dinp, dout, inp, n);
    cuda_done("cuda_quick_gelu_backward");
}

void cuda_swiglu_forward(float *out, const float *gate, const float *up, size_t n) {
    if (n)
        swiglu_fwd_kernel<<<cuda_blocks(n, EW_THREADS), EW_THREADS>>>(out, gate, up, n);
    cuda_done("cuda_swiglu_forward");
}

void cuda_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up,
                          size_t n) {
    if ((dgate || dup) && n)
        swiglu_bwd_kernel<<<cuda_blocks(n, EW_THREADS), EW_THREADS>>>(dgate, dup, dout, gate, up, n);
    cuda_done("cuda_swiglu_backward");
}

void cuda_add(float *out, const float *a, const float *b, size_t n) {
    if (n)
        add_kernel<<<cuda_blocks(n, EW_THREADS), EW_THREADS>>>(out, a, b, n);
    cuda_done("cuda_add");
}

void cuda_accumulate(float *dst, const float *src, size_t n) {
    if (dst && n)
        accumulate_kernel<<<cuda_blocks(n, EW_THREADS), EW_THREADS>>>(dst, src, n);
    cuda_done("cuda_accumulate");
}

void cuda_add_scaled(float *out, const float *x, float s, size_t n) {
    if (n)
        add_scaled_kernel<<<cuda_blocks(n, EW_THREADS), EW_THREADS>>>(out, x, s, n);
    cuda_done("cuda_add_scaled");
}

/* The dropout kernel for out's and in's kinds of memory. */
static void ew_dropout(float *out, const float *in, size_t n, uint64_t key, float p, float scale, int acc) {
    uint16_t *os = mem_bf16_at(out, NULL);
    const uint16_t *is = mem_bf16_at(in, NULL);
    unsigned g = cuda_blocks(n, EW_THREADS);
    if (os && is)
        dropout_kernel<uint16_t, uint16_t><<<g, EW_THREADS>>>(os, is, n, key, p, scale, acc);
    else if (os)
        dropout_kernel<uint16_t, float><<<g, EW_THREADS>>>(os, in, n, key, p, scale, acc);
    else if (is)
        dropout_kernel<float, uint16_t><<<g, EW_THREADS>>>(out, is, n, key, p, scale, acc);
    else
        dropout_kernel<float, float><<<g, EW_THREADS>>>(out, in, n, key, p, scale, acc);
}

void cuda_dropout(float *out, const float *in, size_t n, uint64_t key, float p, float scale, int accumulate) {
    if (n)
        ew_dropout(out, in, n, key, p, scale, accumulate);
    cuda_done("cuda_dropout");
}

void cuda_embedding_forward(float *out, const int32_t *tok, const float *table, size_t n, size_t c) {
    if (n && c)
        embedding_fwd_kernel<<<cuda_blocks(n, 1), EMB_THREADS>>>(out, tok, table, n, c);
    cuda_done("cuda_embedding_forward");
}

void cuda_embedding_backward(float *dtable, const float *dout, const int32_t *tok, size_t n, size_t c) {
    if (dtable && n && c)
        embedding_bwd_kernel<<<cuda_blocks(c, EMB_BWD_THREADS), EMB_BWD_THREADS>>>(dtable, dout, tok, n, c);
    cuda_done("cuda_embedding_backward");
}

/* memmove's semantics: overlapping ranges go through scratch (cudaMemcpy does not allow overlap). The source
 * and destination are managed memory, so cudaMemcpyDefault lets the runtime pick the direction. */
void cuda_copy(float *dst, const float *src, size_t n) {
    size_t bytes = n * sizeof(float);
    if (n && dst != src) {
        uintptr_t d = (uintptr_t)dst, s = (uintptr_t)src;
        if (d < s + bytes && s < d + bytes) {
            void *tmp = cuda_scratch(0, bytes);
            cuda_check(cudaMemcpyAsync(tmp, src, bytes, cudaMemcpyDefault, 0), "cuda_copy");
            cuda_check(cudaMemcpyAsync(dst, tmp, bytes, cudaMemcpyDefault, 0), "cuda_copy");
        } else {
            cuda_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, 0), "cuda_copy");
        }
    }
    cuda_done("cuda_copy");
}

void cuda_zero(float *x, size_t n) {
    if (n)
        cuda_check(cudaMemsetAsync(x, 0, n * sizeof(float), 0), "cuda_zero");
    cuda_done("cuda_zero");
}

/* bf16 storage: a bf16 value is the high half of the float it stands for; rounding is kernel_bf16_round's. */
static __global__ void bf16_widen_kernel(float *dst, const uint16_t *src, size_t n) {
    for (size_t i = ew_first(); i < n; i += ew_step())
        dst[i] = __uint_as_float((unsigned)src[i] << 16);
}

static __global__ void bf16_round_kernel(uint16_t *dst, const float *src, size_t n) {
    for (size_t i = ew_first(); i < n; i += ew_step())
        dst[i] = (uint16_t)(__float_as_uint(kernel_bf16_round(src[i])) >> 16);
}

void cuda_bf16_widen(float *dst, const uint16_t *src, size_t n) {
    if (n)
        bf16_widen_kernel<<<cuda_blocks(n, EW_THREADS), EW_THREADS>>>(dst, src, n);
    cuda_done("cuda_bf16_widen");
}

void cuda_bf16_round(uint16_t *dst, const float *src, size_t n) {
    if (n)
        bf16_round_kernel<<<cuda_blocks(n, EW_THREADS), EW_THREADS>>>(dst, src, n);
    cuda_done("cuda_bf16_round");
}

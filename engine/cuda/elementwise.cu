/* elementwise.cu: activations, adds, dropout, copies and embedding lookups, as engine/cpu/elementwise.c does
 * them. Every element depends on its own inputs only, so one thread per element (grid-stride) gives the CPU's
 * bits: the per-element math is engine/kernels.h's and the dropout mask engine/rng.h's, shared with the CPU.
 * The one sum, the embedding's backward, runs one thread per table column taking the rows in order. Every
 * tensor argument may be fp32 memory or bf16 storage (cuda_ten, bf16.cuh): these are also the "bf16-act"
 * table's operations (cuda_ops_bf16_native). */
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

/* The launch of a kernel template for its arguments' kinds (V, bf16.cuh). */
#define EW_GRID(n) cuda_blocks(n, EW_THREADS), EW_THREADS

template <bool V> static __global__ void gelu_fwd_kernel(cuda_ten out, cuda_ten inp, size_t n) {
    for (size_t i = ew_first(); i < n; i += ew_step())
        ten_st<V>(out, i, kernel_gelu(ten_ld<V>(inp, i)));
}

template <bool V>
static __global__ void gelu_bwd_kernel(cuda_ten dinp, cuda_ten dout, cuda_ten inp, size_t n) {
    for (size_t i = ew_first(); i < n; i += ew_step())
        ten_st<V>(dinp, i, ten_ld<V>(dinp, i) + ten_ld<V>(dout, i) * kernel_gelu_grad(ten_ld<V>(inp, i)));
}

template <bool V> static __global__ void quick_gelu_fwd_kernel(cuda_ten out, cuda_ten inp, size_t n) {
    for (size_t i = ew_first(); i < n; i += ew_step())
        ten_st<V>(out, i, kernel_quick_gelu(ten_ld<V>(inp, i)));
}

template <bool V>
static __global__ void quick_gelu_bwd_kernel(cuda_ten dinp, cuda_ten dout, cuda_ten inp, size_t n) {
    for (size_t i = ew_first(); i < n; i += ew_step())
        ten_st<V>(dinp, i,
                  ten_ld<V>(dinp, i) + ten_ld<V>(dout, i) * kernel_quick_gelu_grad(ten_ld<V>(inp, i)));
}

template <bool V>
static __global__ void swiglu_fwd_kernel(cuda_ten out, cuda_ten gate, cuda_ten up, size_t n) {
    for (size_t i = ew_first(); i < n; i += ew_step())
        ten_st<V>(out, i, kernel_silu(ten_ld<V>(gate, i)) * ten_ld<V>(up, i));
}

/* Either gradient may be NULL (not needed). */
template <bool V>
static __global__ void swiglu_bwd_kernel(cuda_ten dgate, cuda_ten dup, cuda_ten dout, cuda_ten gate,
                                         cuda_ten up, size_t n) {
    for (size_t i = ew_first(); i < n; i += ew_step()) {
        float g, u;
        kernel_swiglu_grad(ten_ld<V>(dout, i), ten_ld<V>(gate, i), ten_ld<V>(up, i), &g, &u);
        if (dgate.p)
            ten_st<V>(dgate, i, ten_ld<V>(dgate, i) + g);
        if (dup.p)
            ten_st<V>(dup, i, ten_ld<V>(dup, i) + u);
    }
}

template <bool V> static __global__ void add_kernel(cuda_ten out, cuda_ten a, cuda_ten b, size_t n) {
    for (size_t i = ew_first(); i < n; i += ew_step())
        ten_st<V>(out, i, ten_ld<V>(a, i) + ten_ld<V>(b, i));
}

template <bool V> static __global__ void accumulate_kernel(cuda_ten dst, cuda_ten src, size_t n) {
    for (size_t i = ew_first(); i < n; i += ew_step())
        ten_st<V>(dst, i, ten_ld<V>(dst, i) + ten_ld<V>(src, i));
}

template <bool V> static __global__ void add_scaled_kernel(cuda_ten out, cuda_ten x, float s, size_t n) {
    for (size_t i = ew_first(); i < n; i += ew_step())
        ten_st<V>(out, i, ten_ld<V>(out, i) + ten_ld<V>(x, i) * s);
}

/* Element e is dropped when rng_uniform(key, e) < p, the CPU's mask bit for bit. */
template <bool V>
static __global__ void dropout_kernel(cuda_ten out, cuda_ten in, size_t n, uint64_t key, float p, float scale,
                                      int accumulate) {
    for (size_t i = ew_first(); i < n; i += ew_step()) {
        float v = rng_uniform(key, i) < p ? 0.0f : ten_ld<V>(in, i) * scale;
        ten_st<V>(out, i, accumulate ? ten_ld<V>(out, i) + v : v);
    }
}

/* dst[i] = src[i] between the two kinds of memory (one of each: a copy of one kind is a memcpy). */
static __global__ void convert_kernel(cuda_ten dst, cuda_ten src, size_t n) {
    for (size_t i = ew_first(); i < n; i += ew_step())
        ten_st<true>(dst, i, ten_ld<true>(src, i));
}

/* One block per row (grid-stride over rows), coalesced over the columns. A negative token id reads as a zero
 * row, as on the CPU. */
template <bool V>
static __global__ void embedding_fwd_kernel(cuda_ten out, const int32_t *tok, cuda_ten table, size_t n,
                                            size_t c) {
    for (size_t i = blockIdx.x; i < n; i += gridDim.x) {
        int32_t t = tok[i];
        for (size_t j = threadIdx.x; j < c; j += EMB_THREADS)
            ten_st<V>(out, i * c + j, t < 0 ? 0.0f : ten_ld<V>(table, (size_t)t * c + j));
    }
}

/* One thread per column j: dtable[tok[i]][j] += dout[i][j] for i in order, so repeated tokens add up in row
 * order (the CPU's bits) without atomics. A warp's columns are adjacent: the accesses of a row coalesce.
 * dout fp32 or bf16 storage; dtable fp32 (bf16: embedding_bwd16_kernel). */
template <bool V>
static __global__ void embedding_bwd_kernel(float *dtable, cuda_ten dout, const int32_t *tok, size_t n,
                                            size_t c) {
    for (size_t j = ew_first(); j < c; j += ew_step()) {
        for (size_t i = 0; i < n; i++) {
            int32_t t = tok[i];
            if (t < 0)
                continue;
            dtable[(size_t)t * c + j] += ten_ld<V>(dout, i * c + j);
        }
    }
}

/* For each position i: the next position with the same token (-1: none) and whether i is its token's first.
 * One thread per position, scanning them all (n is a batch's tokens: thousands, once a backward). */
static __global__ void embedding_links_kernel(int32_t *next, uint8_t *first, const int32_t *tok, size_t n) {
    for (size_t i = ew_first(); i < n; i += ew_step()) {
        int32_t nx = -1;
        uint8_t f = 1;
        for (size_t k = 0; k < n; k++)
            if (k != i && tok[k] == tok[i]) {
                f = f && k > i;
                nx = k > i && nx < 0 ? (int32_t)k : nx;
            }
        next[i] = nx;
        first[i] = f;
    }
}

/* dtable in bf16 storage: a row's element is read once, its tokens' terms added in row order (following
 * `next` from the token's first position) and stored once, the one rounding the definition makes
 * (engine/act16.c); a kernel adding token by token would round after each. */
static __global__ void embedding_bwd16_kernel(cuda_ten dtable, cuda_ten dout, const int32_t *tok,
                                              const int32_t *next, const uint8_t *first, size_t n, size_t c) {
    for (size_t j = ew_first(); j < c; j += ew_step()) {
        for (size_t i = 0; i < n; i++) {
            if (tok[i] < 0 || !first[i])
                continue;
            size_t e = (size_t)tok[i] * c + j;
            float acc = ten_ld<true>(dtable, e);
            for (int32_t k = (int32_t)i; k >= 0; k = next[k])
                acc += ten_ld<true>(dout, (size_t)k * c + j);
            ten_st<true>(dtable, e, acc);
        }
    }
}

/* One thread per output element: out[i, h, k] = in[i, h / rep, k]. */
template <bool V>
static __global__ void repeat_kv_kernel(cuda_ten out, cuda_ten in, size_t total, size_t kvh, size_t rep,
                                        size_t hs) {
    for (size_t e = ew_first(); e < total; e += ew_step()) {
        size_t k = e % hs, h = e / hs % (kvh * rep), i = e / (hs * kvh * rep);
        ten_st<V>(out, e, ten_ld<V>(in, (i * kvh + h / rep) * hs + k));
    }
}

/* One thread per input element, adding its rep heads in order (the CPU's bits, no atomics). */
template <bool V>
static __global__ void repeat_kv_bwd_kernel(cuda_ten din, cuda_ten dout, size_t total, size_t kvh, size_t rep,
                                            size_t hs) {
    for (size_t e = ew_first(); e < total; e += ew_step()) {
        size_t k = e % hs, j = e / hs % kvh, i = e / (hs * kvh);
        float d = ten_ld<V>(din, e);
        for (size_t r = 0; r < rep; r++)
            d += ten_ld<V>(dout, (i * kvh * rep + j * rep + r) * hs + k);
        ten_st<V>(din, e, d);
    }
}

void cuda_repeat_kv(float *out, const float *in, size_t n, size_t kvh, size_t rep, size_t hs) {
    size_t total = n * kvh * rep * hs;
    cuda_ten o = cuda_arg(out), x = cuda_arg(in);
    if (total && cuda_any16(o, x))
        repeat_kv_kernel<true><<<EW_GRID(total)>>>(o, x, total, kvh, rep, hs);
    else if (total)
        repeat_kv_kernel<false><<<EW_GRID(total)>>>(o, x, total, kvh, rep, hs);
    cuda_done("cuda_repeat_kv");
}

void cuda_repeat_kv_backward(float *din, const float *dout, size_t n, size_t kvh, size_t rep, size_t hs) {
    size_t total = n * kvh * hs;
    cuda_ten d = cuda_arg(din), g = cuda_arg(dout);
    if (din && total && rep && cuda_any16(d, g))
        repeat_kv_bwd_kernel<true><<<EW_GRID(total)>>>(d, g, total, kvh, rep, hs);
    else if (din && total && rep)
        repeat_kv_bwd_kernel<false><<<EW_GRID(total)>>>(d, g, total, kvh, rep, hs);
    cuda_done("cuda_repeat_kv_backward");
}

void cuda_gelu_forward(float *out, const float *inp, size_t n) {
    cuda_ten o = cuda_arg(out), x = cuda_arg(inp);
    if (n && cuda_any16(o, x))
        gelu_fwd_kernel<true><<<EW_GRID(n)>>>(o, x, n);
    else if (n)
        gelu_fwd_kernel<false><<<EW_GRID(n)>>>(o, x, n);
    cuda_done("cuda_gelu_forward");
}

void cuda_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    cuda_ten d = cuda_arg(dinp), g = cuda_arg(dout), x = cuda_arg(inp);
    if (dinp && n && cuda_any16(d, g, x))
        gelu_bwd_kernel<true><<<EW_GRID(n)>>>(d, g, x, n);
    else if (dinp && n)
        gelu_bwd_kernel<false><<<EW_GRID(n)>>>(d, g, x, n);
    cuda_done("cuda_gelu_backward");
}

void cuda_quick_gelu_forward(float *out, const float *inp, size_t n) {
    cuda_ten o = cuda_arg(out), x = cuda_arg(inp);
    if (n && cuda_any16(o, x))
        quick_gelu_fwd_kernel<true><<<EW_GRID(n)>>>(o, x, n);
    else if (n)
        quick_gelu_fwd_kernel<false><<<EW_GRID(n)>>>(o, x, n);
    cuda_done("cuda_quick_gelu_forward");
}

void cuda_quick_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    cuda_ten d = cuda_arg(dinp), g = cuda_arg(dout), x = cuda_arg(inp);
    if (dinp && n && cuda_any16(d, g, x))
        quick_gelu_bwd_kernel<true><<<EW_GRID(n)>>>(d, g, x, n);
    else if (dinp && n)
        quick_gelu_bwd_kernel<false><<<EW_GRID(n)>>>(d, g, x, n);
    cuda_done("cuda_quick_gelu_backward");
}

void cuda_swiglu_forward(float *out, const float *gate, const float *up, size_t n) {
    cuda_ten o = cuda_arg(out), g = cuda_arg(gate), u = cuda_arg(up);
    if (n && cuda_any16(o, g, u))
        swiglu_fwd_kernel<true><<<EW_GRID(n)>>>(o, g, u, n);
    else if (n)
        swiglu_fwd_kernel<false><<<EW_GRID(n)>>>(o, g, u, n);
    cuda_done("cuda_swiglu_forward");
}

void cuda_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up,
                          size_t n) {
    cuda_ten dg = cuda_arg(dgate), du = cuda_arg(dup), d = cuda_arg(dout), g = cuda_arg(gate),
             u = cuda_arg(up);
    if ((dgate || dup) && n && cuda_any16(dg, du, d, g, u))
        swiglu_bwd_kernel<true><<<EW_GRID(n)>>>(dg, du, d, g, u, n);
    else if ((dgate || dup) && n)
        swiglu_bwd_kernel<false><<<EW_GRID(n)>>>(dg, du, d, g, u, n);
    cuda_done("cuda_swiglu_backward");
}

void cuda_add(float *out, const float *a, const float *b, size_t n) {
    cuda_ten o = cuda_arg(out), x = cuda_arg(a), y = cuda_arg(b);
    if (n && cuda_any16(o, x, y))
        add_kernel<true><<<EW_GRID(n)>>>(o, x, y, n);
    else if (n)
        add_kernel<false><<<EW_GRID(n)>>>(o, x, y, n);
    cuda_done("cuda_add");
}

void cuda_accumulate(float *dst, const float *src, size_t n) {
    cuda_ten d = cuda_arg(dst), x = cuda_arg(src);
    if (dst && n && cuda_any16(d, x))
        accumulate_kernel<true><<<EW_GRID(n)>>>(d, x, n);
    else if (dst && n)
        accumulate_kernel<false><<<EW_GRID(n)>>>(d, x, n);
    cuda_done("cuda_accumulate");
}

void cuda_add_scaled(float *out, const float *x, float s, size_t n) {
    cuda_ten o = cuda_arg(out), v = cuda_arg(x);
    if (n && cuda_any16(o, v))
        add_scaled_kernel<true><<<EW_GRID(n)>>>(o, v, s, n);
    else if (n)
        add_scaled_kernel<false><<<EW_GRID(n)>>>(o, v, s, n);
    cuda_done("cuda_add_scaled");
}

void cuda_dropout(float *out, const float *in, size_t n, uint64_t key, float p, float scale, int accumulate) {
    cuda_ten o = cuda_arg(out), x = cuda_arg(in);
    if (n && cuda_any16(o, x))
        dropout_kernel<true><<<EW_GRID(n)>>>(o, x, n, key, p, scale, accumulate);
    else if (n)
        dropout_kernel<false><<<EW_GRID(n)>>>(o, x, n, key, p, scale, accumulate);
    cuda_done("cuda_dropout");
}

void cuda_embedding_forward(float *out, const int32_t *tok, const float *table, size_t n, size_t c) {
    cuda_ten o = cuda_arg(out), t = cuda_arg(table);
    if (n && c && cuda_any16(o, t))
        embedding_fwd_kernel<true><<<cuda_blocks(n, 1), EMB_THREADS>>>(o, tok, t, n, c);
    else if (n && c)
        embedding_fwd_kernel<false><<<cuda_blocks(n, 1), EMB_THREADS>>>(o, tok, t, n, c);
    cuda_done("cuda_embedding_forward");
}

void cuda_embedding_backward(float *dtable, const float *dout, const int32_t *tok, size_t n, size_t c) {
    cuda_ten d = cuda_arg(dtable), g = cuda_arg(dout);
    unsigned blocks = cuda_blocks(c, EMB_BWD_THREADS);
    if (dtable && n && c && d.bf16) {
        int32_t *next = (int32_t *)cuda_scratch(0, n * (sizeof(int32_t) + 1));
        uint8_t *first = (uint8_t *)(next + n);
        embedding_links_kernel<<<EW_GRID(n)>>>(next, first, tok, n);
        embedding_bwd16_kernel<<<blocks, EMB_BWD_THREADS>>>(d, g, tok, next, first, n, c);
    } else if (dtable && n && c && g.bf16) {
        embedding_bwd_kernel<true><<<blocks, EMB_BWD_THREADS>>>(dtable, g, tok, n, c);
    } else if (dtable && n && c) {
        embedding_bwd_kernel<false><<<blocks, EMB_BWD_THREADS>>>(dtable, g, tok, n, c);
    }
    cuda_done("cuda_embedding_backward");
}

/* memmove's semantics: overlapping ranges go through scratch (cudaMemcpy does not allow overlap). The source
 * and destination are managed or device memory, so cudaMemcpyDefault lets the runtime pick the direction. Of
 * one kind (both fp32, or both bf16 storage) a copy moves bytes; between the kinds it converts (two kinds of
 * memory never overlap). */
void cuda_copy(float *dst, const float *src, size_t n) {
    cuda_ten d = cuda_arg(dst), s = cuda_arg(src);
    size_t bytes = n * (d.bf16 ? sizeof(uint16_t) : sizeof(float));
    if (n && d.bf16 != s.bf16) {
        convert_kernel<<<EW_GRID(n)>>>(d, s, n);
    } else if (n && d.p != s.p) {
        uintptr_t a = (uintptr_t)d.p, b = (uintptr_t)s.p;
        if (a < b + bytes && b < a + bytes) {
            void *tmp = cuda_scratch(0, bytes);
            cuda_check(cudaMemcpyAsync(tmp, s.p, bytes, cudaMemcpyDefault, 0), "cuda_copy");
            cuda_check(cudaMemcpyAsync(d.p, tmp, bytes, cudaMemcpyDefault, 0), "cuda_copy");
        } else {
            cuda_check(cudaMemcpyAsync(d.p, s.p, bytes, cudaMemcpyDefault, 0), "cuda_copy");
        }
    }
    cuda_done("cuda_copy");
}

/* Zero bits are zero in either kind. */
void cuda_zero(float *x, size_t n) {
    cuda_ten t = cuda_arg(x);
    if (n)
        cuda_check(cudaMemsetAsync(t.p, 0, n * (t.bf16 ? sizeof(uint16_t) : sizeof(float)), 0), "cuda_zero");
    cuda_done("cuda_zero");
}

/* bf16 storage's own conversions (on storage pointers, not ranges). */
static __global__ void bf16_widen_kernel(float *dst, const uint16_t *src, size_t n) {
    for (size_t i = ew_first(); i < n; i += ew_step())
        dst[i] = cuda_ld(src, i);
}

static __global__ void bf16_round_kernel(uint16_t *dst, const float *src, size_t n) {
    for (size_t i = ew_first(); i < n; i += ew_step())
        cuda_st(dst, i, src[i]);
}

void cuda_bf16_widen(float *dst, const uint16_t *src, size_t n) {
    if (n)
        bf16_widen_kernel<<<EW_GRID(n)>>>(dst, src, n);
    cuda_done("cuda_bf16_widen");
}

void cuda_bf16_round(uint16_t *dst, const float *src, size_t n) {
    if (n)
        bf16_round_kernel<<<EW_GRID(n)>>>(dst, src, n);
    cuda_done("cuda_bf16_round");
}

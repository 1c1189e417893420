/* attention (CUDA): rotary embedding and multi-head attention with causal and right-padding masks, forward
 * and backward, with the semantics of engine/cpu/attention.c. The products are cuBLAS strided-batched gemms,
 * one call per sequence over its NH heads (the heads of one sequence share its valid length, so one shape
 * fits them all); the masked softmax and the softmax backward are row kernels (one block per row, a fixed
 * shared-memory tree, so the bits depend on the shapes only).
 *
 * Layouts: q, k, v, out [B,T,NH,HS] (row-major), so head h of sequence b is the rows at
 * q + (b*T*NH + h)*HS, NH*HS apart (the leading dimension), and the next head starts HS further on (the
 * batch stride); probs [B,NH,T,T], a head's [T,T] scores T*T further on. cuBLAS is column-major: a row-major
 * [R,C] matrix with leading dimension ld is a column-major [C,R] one, and (A B)^T = B^T A^T.
 *
 * bf16 (the "cuda-bf16" table): every product's two operands are bf16 copies (the CPU's rounding) in the
 * same layout, multiplied by cublasGemmStridedBatchedEx with fp32 accumulation into the same fp32 outputs;
 * q, k, v and dout are rounded by cuda_bf16_copy, the probabilities and dS by the softmax and dS kernels as
 * they write them (fp32 as before, the bf16 copy beside it). Any tensor in bf16 storage (the "bf16-act"
 * table, engine/act16.c) is its own copy, an output there is written bf16 by cuBLAS (rounded once), and
 * probabilities there are the rounded copy itself: the forward's scores and softmax run in fp32 scratch. */
#include "engine/cuda/bf16.cuh"
#include "engine/cuda/cuda.h"
#include "engine/cuda/reduce.cuh"
#include "engine/kernels.h"

#include <cuda_bf16.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* Row kernels: one block of ATT_THREADS (a power of two: the reduction tree halves it) per row. */
#define ATT_THREADS CUDA_BLOCK
/* Element kernels (RoPE). */
#define ROPE_THREADS 256

/* cuBLAS takes int sizes: a size that does not fit is an engine error, reported like cuda_check's. */
static int att_int(size_t v, const char *what) {
    if (v > (size_t)INT_MAX) {
        fprintf(stderr, "pulse-pipe: cuBLAS error in %s: size %zu does not fit an int\n", what, v);
        exit(1);
    }
    return (int)v;
}

/* An operand of the products: an fp32 tensor and, for bf16 products, its bf16 copy in the same layout
 * (offsets and strides count elements, so they address either). */
struct att_in {
    const float *f;
    const __nv_bfloat16 *h;
};

/* x[n] as an operand: with its bf16 copy in scratch `slot` when bf16; bf16 storage (the "bf16-act" table's,
 * engine/mem.h) is its own copy (x addresses a range; offsets into it address the storage alike). */
static struct att_in att_in(const float *x, size_t n, int bf16, int slot, const char *op) {
    struct att_in r = {x, NULL};
    const uint16_t *st = bf16 ? mem_bf16_at(x, NULL) : NULL;
    if (st) {
        r.f = NULL;
        r.h = (const __nv_bfloat16 *)st;
    } else if (bf16) {
        r.h = cuda_bf16_copy(slot, x, n, op);
    }
    return r;
}

/* C = alpha op(A) op(B) + beta C for `count` matrices sa, sb, sc elements apart (column-major terms): bf16
 * products when both operands have their copies (C fp32 or bf16 storage), else fp32 (pedantic: no TF32). */
static void att_gemm(cublasOperation_t ta, cublasOperation_t tb, size_t m, size_t n, size_t k, float alpha,
                     struct att_in a, size_t lda, size_t sa, struct att_in b, size_t ldb, size_t sb,
                     float beta, float *c, size_t ldc, size_t sc, size_t count, const char *op) {
    int m_ = att_int(m, op), n_ = att_int(n, op), k_ = att_int(k, op), c_ = att_int(count, op);
    cuda_ten ct = cuda_arg(c); /* an output in bf16 storage: written bf16, rounded once by cuBLAS */
    if (a.h && b.h)
        cuda_blas_check(cublasGemmStridedBatchedEx(
                            cuda_blas_bf16(), ta, tb, m_, n_, k_, &alpha, a.h, CUDA_R_16BF, att_int(lda, op),
                            (long long)sa, b.h, CUDA_R_16BF, att_int(ldb, op), (long long)sb, &beta, ct.p,
                            ct.bf16 ? CUDA_R_16BF : CUDA_R_32F, att_int(ldc, op), (long long)sc, c_,
                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                        op);
    else
        cuda_blas_check(cublasSgemmStridedBatched(cuda_blas(), ta, tb, m_, n_, k_, &alpha, a.f,
                                                  att_int(lda, op), (long long)sa, b.f, att_int(ldb, op),
                                                  (long long)sb, &beta, c, att_int(ldc, op), (long long)sc,
                                                  c_),
                        op);
}

/* n zeros at x, fp32 memory or bf16 storage. */
static void att_zero(float *x, size_t n, const char *op) {
    cuda_ten t = cuda_arg(x);
    cuda_check(cudaMemsetAsync(t.p, 0, n * (t.bf16 ? sizeof(uint16_t) : sizeof(float)), 0), op);
}

static __device__ size_t att_block_max_index(size_t v, size_t *sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (unsigned s = ATT_THREADS / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s && sh[threadIdx.x + s] > sh[threadIdx.x])
            sh[threadIdx.x] = sh[threadIdx.x + s];
        __syncthreads();
    }
    size_t r = sh[0];
    __syncthreads();
    return r;
}

/* RoPE: one thread per (position i, pair f); the angle's cosine and signed sine are computed once and turn
 * that pair in every head (x fp32 or bf16 storage, cuda_ten). Neighbouring threads take neighbouring pairs,
 * so the accesses coalesce. The inverse frequencies come from the host (glibc's powf, as the CPU's): CUDA's
 * powf may be an ulp off, and an ulp of the frequency grows with the position (1.3e-5 relative at position
 * 4095). */
template <bool V>
static __global__ void rope_kernel(cuda_ten x, const int32_t *pos, const float *inv, size_t n, size_t nh,
                                   size_t hs, float sign) {
    size_t half = hs / 2, items = n * half, stride = (size_t)gridDim.x * blockDim.x;
    for (size_t it = (size_t)blockIdx.x * blockDim.x + threadIdx.x; it < items; it += stride) {
        size_t i = it / half, f = it % half;
        float angle = (float)pos[i] * inv[f]; /* kernel_rope_angle's product */
        float cs = cosf(angle), sn = sign * sinf(angle);
        for (size_t h = 0; h < nh; h++) {
            size_t e = (i * nh + h) * hs + f;
            float a = ten_ld<V>(x, e), b = ten_ld<V>(x, e + half);
            kernel_rope_rotate(&a, &b, cs, sn);
            ten_st<V>(x, e, a);
            ten_st<V>(x, e + half, b);
        }
    }
}

/* The inverse frequencies of (hs, theta) in device memory, made on the host (glibc's powf) when either
 * changes: a model asks for one pair, so the copy, which waits for the stream, happens once, not per call. */
static const float *rope_inv(size_t hs, float theta, const char *op) {
    static float *dinv;
    static size_t have_hs;
    static float have_theta;
    if (dinv && have_hs == hs && have_theta == theta)
        return dinv;
    size_t half = hs / 2;
    float *inv = (float *)malloc(half * sizeof(float));
    if (!inv) {
        fprintf(stderr, "pulse-pipe: out of memory in %s\n", op);
        exit(1);
    }
    for (size_t f = 0; f < half; f++)
        inv[f] = kernel_rope_inv_freq((int)f, (int)hs, theta);
    if (dinv)
        cuda_check(cudaFree(dinv), op); /* cudaFree waits for the kernels that read it */
    dinv = NULL;
    have_hs = 0;
    cuda_check(cudaMalloc(&dinv, half * sizeof(float)), op);
    cuda_check(cudaMemcpy(dinv, inv, half * sizeof(float), cudaMemcpyHostToDevice), op);
    free(inv);
    have_hs = hs;
    have_theta = theta;
    return dinv;
}

/* The positions are read where they are (memory from mem_alloc, as every operation's arguments). */
static void rope(float *x, const int32_t *pos, size_t b, size_t t, size_t nh, size_t hs, float theta,
                 float sign, const char *op) {
    size_t n = b * t, half = hs / 2;
    if (n == 0 || half == 0 || nh == 0) {
        cuda_done(op);
        return;
    }
    if (hs > (size_t)INT_MAX) { /* kernel_rope_inv_freq takes int pair indices and sizes */
        fprintf(stderr, "pulse-pipe: CUDA error in %s: head size %zu does not fit an int\n", op, hs);
        exit(1);
    }
    const float *inv = rope_inv(hs, theta, op);
    cuda_ten v = cuda_arg(x);
    unsigned g = cuda_blocks(n * half, ROPE_THREADS);
    if (v.bf16)
        rope_kernel<true><<<g, ROPE_THREADS>>>(v, pos, inv, n, nh, hs, sign);
    else
        rope_kernel<false><<<g, ROPE_THREADS>>>(v, pos, inv, n, nh, hs, sign);
    cuda_done(op);
}

void cuda_rope_forward(float *x, const int32_t *pos, size_t b, size_t t, size_t nh, size_t hs, float theta) {
    rope(x, pos, b, t, nh, hs, theta, 1.0f, "rope_forward");
}

void cuda_rope_backward(float *dx, const int32_t *pos, size_t b, size_t t, size_t nh, size_t hs,
                        float theta) {
    rope(dx, pos, b, t, nh, hs, theta, -1.0f, "rope_backward");
}

/* Masked softmax in place over one sequence's rows of probs ([NH,T,T], valid length len), one block per row.
 * Row (h, tq) has `keys` valid scores (none for a padding query, tq + 1 when causal, else len); they become
 * exp(s - max) / sum with kernel_exp as the CPU's softmax_row; the rest of the row (never written by the
 * scores product, or masked) becomes exactly zero. Only the sum's grouping differs from the CPU (a tree, not
 * a running sum). With ph (bf16 products), every probability is also written rounded to bf16 there, the
 * PV product's operand, so no second pass reads the probabilities back to round them. keep = 0 (ph is the
 * probabilities' storage, probs fp32 scratch: bf16 activations) leaves the scores in probs and computes each
 * exponential again in the last pass instead of storing it: the same bits in ph, two fp32 writes a value
 * fewer. */
static __global__ void attention_softmax(float *probs, __nv_bfloat16 *ph, int keep, size_t len, int causal,
                                         size_t t, size_t rows) {
    __shared__ float sh[ATT_THREADS];
    for (size_t row = blockIdx.x; row < rows; row += gridDim.x) {
        size_t tq = row % t, keys = tq >= len ? 0 : causal ? tq + 1 : len;
        float *p = probs + row * t;
        float max = -INFINITY;
        for (size_t s = threadIdx.x; s < keys; s += ATT_THREADS)
            max = p[s] > max ? p[s] : max;
        max = cuda_block_max(max, sh);
        float sum = 0.0f;
        for (size_t s = threadIdx.x; s < keys; s += ATT_THREADS) {
            float e = kernel_exp(p[s] - max);
            if (keep)
                p[s] = e;
            sum += e;
        }
        sum = cuda_block_sum(sum, sh);
        for (size_t s = threadIdx.x; s < t; s += ATT_THREADS) { /* the entries this thread took above */
            float v = s >= keys ? 0.0f : (keep ? p[s] : kernel_exp(p[s] - max)) / sum;
            if (keep)
                p[s] = v;
            if (ph)
                ph[row * t + s] = cuda_to_bf16(v);
        }
    }
}

/* Valid length of each sequence, clamped to 0..T as the CPU's attn_len; all T when len is NULL. */
static void attention_lens(int32_t *host, const int32_t *len, size_t b, size_t t, const char *op) {
    if (len)
        cuda_check(cudaMemcpy(host, len, b * sizeof(int32_t), cudaMemcpyDefault), op);
    for (size_t i = 0; i < b; i++) {
        size_t l = len ? (host[i] < 0 ? 0 : (size_t)host[i]) : t;
        host[i] = (int32_t)(l > t ? t : l); /* t <= INT_MAX: checked by the caller */
    }
}

/* A [nh, t, t] bf16 slab in scratch `slot` when `want`, else NULL. */
static __nv_bfloat16 *att_slab(int want, int slot, size_t nh, size_t t) {
    return want ? (__nv_bfloat16 *)cuda_scratch(slot, nh * t * t * sizeof(__nv_bfloat16)) : NULL;
}

/* Scratch slots of the bf16 copies (forward: q, k, v, probs; backward: dout, v, q, k, probs, dS). Slot 0
 * holds dP (backward), slot 1 the union boxes (backward); forward with probs in bf16 storage, ATT_F_S one
 * sequence's fp32 scores. */
enum { ATT_F_Q = 2, ATT_F_K, ATT_F_V, ATT_F_P, ATT_F_S };
enum { ATT_B_DOUT = 2, ATT_B_V, ATT_B_Q, ATT_B_K, ATT_B_P, ATT_B_DS };

/* One sequence at a time: the scores over its valid box, its softmax (rounding the probabilities into slot
 * ATT_F_P when bf16), its PV product; the slots are reused by the next sequence in stream order. */
static void attention_forward(float *out, float *probs, const float *qf, const float *kf, const float *vf,
                              const int32_t *len, int causal, size_t b, size_t t, size_t nh, size_t hs,
                              int bf16, const char *op) {
    if (b == 0 || t == 0 || nh == 0) {
        cuda_done(op);
        return;
    }
    att_int(t, op);
    size_t ld = nh * hs, tt = t * t;
    float scale = 1.0f / sqrtf((float)hs);
    int32_t *lens = (int32_t *)malloc(b * sizeof(int32_t));
    if (!lens) {
        fprintf(stderr, "pulse-pipe: out of memory in %s\n", op);
        exit(1);
    }
    attention_lens(lens, len, b, t, op);
    /* probs in bf16 storage: the scores and the softmax in fp32 scratch, the probabilities rounded into the
     * storage (the PV product's operand, and what the backward reads) */
    uint16_t *pst = bf16 ? mem_bf16_at(probs, NULL) : NULL;
    for (size_t i = 0; i < b; i++) {
        size_t l = (size_t)lens[i], at = i * t * ld;
        float *p = pst ? (float *)cuda_scratch(ATT_F_S, nh * tt * sizeof(float)) : probs + i * nh * tt;
        /* Scores S^T [len(keys), len(queries)] = K (K^T stored, so op T) times Q^T (stored, op N), alpha =
         * scale, straight into probs. Heads of size 0 have zero scores (cuBLAS would refuse the leading
         * dimensions), as on the CPU. */
        if (l > 0 && hs == 0)
            cuda_check(cudaMemsetAsync(p, 0, nh * tt * sizeof(float), 0), op);
        else if (l > 0) {
            struct att_in q = att_in(qf + at, l * ld, bf16, ATT_F_Q, op),
                          k = att_in(kf + at, l * ld, bf16, ATT_F_K, op);
            att_gemm(CUBLAS_OP_T, CUBLAS_OP_N, l, l, hs, scale, k, ld, hs, q, ld, hs, 0.0f, p, t, tt, nh, op);
        }
        int pv = l > 0 && hs > 0;
        __nv_bfloat16 *ph = pst ? (__nv_bfloat16 *)(pst + i * nh * tt) : att_slab(bf16 && pv, ATT_F_P, nh, t);
        attention_softmax<<<cuda_blocks(nh * t, 1), ATT_THREADS>>>(p, ph, !pst, l, causal, t, nh * t);
        cuda_check(cudaGetLastError(), op);
        struct att_in pin = {p, ph};
        /* out^T [HS, len] = V^T (stored, op N) times P^T [len(keys), len(queries)] (stored, op N); padding
         * query rows (all heads of positions len..T-1, one contiguous stretch) are zero. */
        if (pv)
            att_gemm(CUBLAS_OP_N, CUBLAS_OP_N, hs, l, l, 1.0f, att_in(vf + at, l * ld, bf16, ATT_F_V, op), ld,
                     hs, pin, t, tt, 0.0f, out + at, ld, hs, nh, op);
        if (l < t && hs > 0)
            att_zero(out + at + l * ld, (t - l) * ld, op);
    }
    free(lens);
    cuda_done(op);
}

void cuda_attention_forward(float *out, float *probs, const float *q, const float *k, const float *v,
                            const int32_t *len, int causal, size_t b, size_t t, size_t nh, size_t hs) {
    attention_forward(out, probs, q, k, v, len, causal, b, t, nh, hs, 0, "attention_forward");
}

void cuda_attention_forward_bf16(float *out, float *probs, const float *q, const float *k, const float *v,
                                 const int32_t *len, int causal, size_t b, size_t t, size_t nh, size_t hs) {
    attention_forward(out, probs, q, k, v, len, causal, b, t, nh, hs, 1, "attention_forward_bf16");
}

/* The backward, as the CPU's: with P the probabilities and dP = dout V^T, dS[t,s] = P[t,s] (dP[t,s] - D[t]) *
 * scale, D[t] = sum_s P[t,s] dP[t,s], and dS = 0 where P is 0 (by a select, whatever dP holds there). The
 * products run over the box of P holding its nonzero entries; the CPU takes each head's box, here one
 * sequence's heads share the box of their union (so one gemm shape fits them). The extra entries have P = 0
 * and dS = 0 and lie inside the valid positions, so they add only zero terms. */

/* box[2b] = rows, box[2b+1] = columns of the union box of sequence b's heads: one block per row of probs.
 * Integer atomicMax: the maximum does not depend on the order the blocks finish in. */
/* The box and dS kernels' reduction trees, at file scope (norms.cu says why). */
__shared__ size_t att_box_sh[ATT_THREADS];
__shared__ float att_ds_sh[ATT_THREADS];

template <bool V>
static __global__ void attention_box(int *box, cuda_ten probs, size_t t, size_t nh, size_t rows) {
    size_t *sh = att_box_sh;
    for (size_t row = blockIdx.x; row < rows; row += gridDim.x) {
        size_t cols = 0;
        for (size_t s = threadIdx.x; s < t; s += ATT_THREADS)
            if (ten_ld<V>(probs, row * t + s) != 0.0f)
                cols = s + 1;
        cols = att_block_max_index(cols, sh);
        if (threadIdx.x == 0 && cols > 0) {
            size_t b = row / (nh * t), tq = row % t;
            atomicMax(&box[2 * b], (int)(tq + 1));
            atomicMax(&box[2 * b + 1], (int)cols);
        }
    }
}

/* dP into dS in place for one sequence: rows (h, tq) of its heads, tq < nrows, the first ncols entries of
 * each (leading dimension t, heads t*t apart, in dp and p alike). D as a tree sum of P dP (the CPU's
 * cpu_dot terms, in another grouping); then dS with the CPU's expression, (p (dp - D)) scale. With dsh and
 * ph (bf16 products), dS and P are written rounded to bf16 there instead (dS) and as well (P), at the same
 * offsets: the operands of the products that follow, made while the values are at hand instead of by passes
 * that read them back. */
template <bool V>
static __global__ void attention_dscores(float *dp, cuda_ten p, __nv_bfloat16 *dsh, __nv_bfloat16 *ph,
                                         size_t nrows, size_t ncols, size_t t, float scale, size_t rows) {
    float *sh = att_ds_sh;
    for (size_t row = blockIdx.x; row < rows; row += gridDim.x) {
        size_t h = row / nrows, tq = row % nrows, at = (h * t + tq) * t;
        float *r = dp + at;
        float d = 0.0f;
        for (size_t s = threadIdx.x; s < ncols; s += ATT_THREADS)
            d += ten_ld<V>(p, at + s) * r[s];
        d = cuda_block_sum(d, sh);
        /* each thread reads what only it writes */
        for (size_t s = threadIdx.x; s < ncols; s += ATT_THREADS) {
            float pv = ten_ld<V>(p, at + s), v = pv != 0.0f ? pv * (r[s] - d) * scale : 0.0f;
            if (dsh) /* the products read only the rounded copy: dS's fp32 write would go unread */
                dsh[at + s] = cuda_to_bf16(v);
            else
                r[s] = v;
            if (ph)
                ph[at + s] = cuda_to_bf16(pv);
        }
    }
}

static void attention_backward(float *dq, float *dk, float *dv, const float *doutf, const float *probs,
                               const float *qf, const float *kf, const float *vf, size_t b, size_t t,
                               size_t nh, size_t hs, int bf16, const char *op) {
    /* Heads of size 0 have empty gradients (the CPU's products over them change nothing either). */
    if ((!dq && !dk && !dv) || b == 0 || t == 0 || nh == 0 || hs == 0) {
        cuda_done(op);
        return;
    }
    att_int(t, op);
    size_t ld = nh * hs, tt = t * t, rows = b * nh * t;
    float scale = 1.0f / sqrtf((float)hs);
    int *box = (int *)malloc(2 * b * sizeof(int));
    if (!box) {
        fprintf(stderr, "pulse-pipe: out of memory in %s\n", op);
        exit(1);
    }
    int *dbox = (int *)cuda_scratch(1, 2 * b * sizeof(int));
    cuda_check(cudaMemset(dbox, 0, 2 * b * sizeof(int)), op);
    cuda_ten pt = cuda_arg(probs); /* bf16 storage (bf16-act): the probabilities as stored, P's operand too */
    if (pt.bf16)
        attention_box<true><<<cuda_blocks(rows, 1), ATT_THREADS>>>(dbox, pt, t, nh, rows);
    else
        attention_box<false><<<cuda_blocks(rows, 1), ATT_THREADS>>>(dbox, pt, t, nh, rows);
    cuda_check(cudaGetLastError(), op);
    cuda_check(cudaMemcpy(box, dbox, 2 * b * sizeof(int), cudaMemcpyDeviceToHost), op);
    float *dp = (float *)cuda_scratch(0, nh * tt * sizeof(float));
    for (size_t i = 0; i < b; i++) {
        size_t nr = (size_t)box[2 * i], nc = (size_t)box[2 * i + 1], at = i * t * ld;
        const float *pf = probs + i * nh * tt;
        cuda_ten pi = cuda_arg(pf);
        if (nr == 0)
            continue;
        /* bf16: the rows each product reads (queries: nr of them, keys: nc), copies that the next sequence's
         * reuse in stream order */
        struct att_in dout = att_in(doutf + at, nr * ld, bf16, ATT_B_DOUT, op),
                      v = att_in(vf + at, nc * ld, bf16, ATT_B_V, op);
        /* dP^T [nc(keys), nr(queries)] = V (V^T stored, op T) times dout^T (stored, op N). */
        att_gemm(CUBLAS_OP_T, CUBLAS_OP_N, nc, nr, hs, 1.0f, v, ld, hs, dout, ld, hs, 0.0f, dp, t, tt, nh,
                 op);
        /* bf16: dS for dq and dk, P for dv, rounded over the box the products read */
        __nv_bfloat16 *dsh = att_slab(bf16 && (dq || dk), ATT_B_DS, nh, t),
                      *ph = att_slab(bf16 && dv && !pi.bf16, ATT_B_P, nh, t);
        unsigned g = cuda_blocks(nh * nr, 1);
        if (pi.bf16)
            attention_dscores<true><<<g, ATT_THREADS>>>(dp, pi, dsh, nullptr, nr, nc, t, scale, nh * nr);
        else
            attention_dscores<false><<<g, ATT_THREADS>>>(dp, pi, dsh, ph, nr, nc, t, scale, nh * nr);
        cuda_check(cudaGetLastError(), op);
        struct att_in ds = {dp, dsh}, p = {pf, pi.bf16 ? (const __nv_bfloat16 *)pi.p : ph};
        /* dq [nr, HS] += dS [nr, nc] K [nc, HS]: dq^T = K^T (stored, op N) times dS^T (stored, op N). */
        if (dq)
            att_gemm(CUBLAS_OP_N, CUBLAS_OP_N, hs, nr, nc, 1.0f, att_in(kf + at, nc * ld, bf16, ATT_B_K, op),
                     ld, hs, ds, t, tt, 1.0f, dq + at, ld, hs, nh, op);
        /* dk [nc, HS] += dS^T Q [nr, HS]: dk^T = Q^T (stored, op N) times dS (dS^T stored, op T). */
        if (dk)
            att_gemm(CUBLAS_OP_N, CUBLAS_OP_T, hs, nc, nr, 1.0f, att_in(qf + at, nr * ld, bf16, ATT_B_Q, op),
                     ld, hs, ds, t, tt, 1.0f, dk + at, ld, hs, nh, op);
        /* dv [nc, HS] += P^T dout [nr, HS]: as dk, with P for dS and dout for Q. */
        if (dv)
            att_gemm(CUBLAS_OP_N, CUBLAS_OP_T, hs, nc, nr, 1.0f, dout, ld, hs, p, t, tt, 1.0f, dv + at, ld,
                     hs, nh, op);
    }
    free(box);
    cuda_done(op);
}

void cuda_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *probs,
                             const float *q, const float *k, const float *v, size_t b, size_t t, size_t nh,
                             size_t hs) {
    attention_backward(dq, dk, dv, dout, probs, q, k, v, b, t, nh, hs, 0, "attention_backward");
}

void cuda_attention_backward_bf16(float *dq, float *dk, float *dv, const float *dout, const float *probs,
                                  const float *q, const float *k, const float *v, size_t b, size_t t,
                                  size_t nh, size_t hs) {
    attention_backward(dq, dk, dv, dout, probs, q, k, v, b, t, nh, hs, 1, "attention_backward_bf16");
}

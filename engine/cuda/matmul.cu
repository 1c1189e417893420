/* matmul (CUDA): linear layers on cuBLAS, with the semantics of engine/cpu/matmul.c. Our tensors are
 * row-major and cuBLAS is column-major, so every product is written for the transposes: a row-major [R,C]
 * matrix is a column-major [C,R] one with the same leading dimension, and (A B)^T = B^T A^T. The bias is
 * handled as on the CPU (copied into the output rows, then the product added with beta = 1), and the bias
 * gradient is a column sum over the rows in order, one thread per column, so db gets the CPU's exact bits.
 * The bf16 variants (the "cuda-bf16" table) round both inputs of each product to bf16 into scratch, then run
 * the same products through cublasGemmEx with fp32 accumulation; a frozen weight (ops weights_frozen) is
 * rounded once into a copy of its own, and its fp32 pages move to the host. LoRA's down projection with its
 * input dropout (bf16 only: the fp32 table composes it, engine/lora_down.h) masks x as it rounds it. */
#include "engine/cuda/bf16.cuh"
#include "engine/cuda/cuda.h"
#include "engine/kernels.h"
#include "engine/mem.h"
#include "engine/rng.h"
#include "engine/wcache.h"

#include <cuda_bf16.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#define MM_THREADS 256

/* cuBLAS takes int sizes: a size that does not fit is an engine error, reported like cuda_check's. */
static int mm_int(size_t v, const char *what) {
    if (v > (size_t)INT_MAX) {
        fprintf(stderr, "pulse-pipe: cuBLAS error in %s: size %zu does not fit an int\n", what, v);
        exit(1);
    }
    return (int)v;
}

/* A leading dimension: cuBLAS wants at least 1 even when the matrix has no columns. */
static int mm_ld(size_t v, const char *what) {
    return mm_int(v ? v : 1, what);
}

/* out[i, j] = b[j]: the rows start from the bias, then the product is added (beta = 1), as the CPU does. */
template <bool V> static __global__ void matmul_bias_rows(float *out, cuda_ten b, size_t n, size_t oc) {
    size_t total = n * oc, stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride)
        out[i] = ten_ld<V>(b, i % oc);
}

/* db[j] += sum over rows of dout[., j]: the rows in order from zero, then added to db, as the CPU's
 * colsum_range does, so the bits are the same. Neighbouring threads read neighbouring columns (coalesced).
 * db and dout fp32 or bf16 storage (cuda_ten, bf16.cuh). */
template <bool V> static __global__ void matmul_bias_grad(cuda_ten db, cuda_ten dout, size_t n, size_t oc) {
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t j = (size_t)blockIdx.x * blockDim.x + threadIdx.x; j < oc; j += stride) {
        float acc = 0.0f;
        for (size_t i = 0; i < n; i++)
            acc += ten_ld<V>(dout, i * oc + j);
        ten_st<V>(db, j, ten_ld<V>(db, j) + acc);
    }
}

/* The bias rows, and db += the column sums of dout, for their arguments' kinds. */
static void mm_bias_rows(float *out, const float *b, size_t n, size_t oc) {
    cuda_ten t = cuda_arg(b);
    unsigned g = cuda_blocks(n * oc, MM_THREADS);
    if (t.bf16)
        matmul_bias_rows<true><<<g, MM_THREADS>>>(out, t, n, oc);
    else
        matmul_bias_rows<false><<<g, MM_THREADS>>>(out, t, n, oc);
}

static void mm_bias_grad(float *db, const float *dout, size_t n, size_t oc) {
    cuda_ten d = cuda_arg(db), g = cuda_arg(dout);
    unsigned blocks = cuda_blocks(oc, MM_THREADS);
    if (cuda_any16(d, g))
        matmul_bias_grad<true><<<blocks, MM_THREADS>>>(d, g, n, oc);
    else
        matmul_bias_grad<false><<<blocks, MM_THREADS>>>(d, g, n, oc);
}

/* out[N,OC] = inp[N,IC] @ w[OC,IC]^T (+ b). Column-major: out^T [OC,N] = w [OC,IC] (w^T stored, so op T)
 * times inp^T [IC,N] (stored as is, op N). */
void cuda_matmul_forward(float *out, const float *inp, const float *w, const float *b, size_t n, size_t ic,
                         size_t oc) {
    const char *op = "matmul_forward";
    if (n == 0 || oc == 0) {
        cuda_done(op);
        return;
    }
    int m_ = mm_int(oc, op), n_ = mm_int(n, op), k_ = mm_int(ic, op);
    float beta = 0.0f;
    if (b) {
        mm_bias_rows(out, b, n, oc);
        cuda_check(cudaGetLastError(), op);
        beta = 1.0f;
    }
    if (ic == 0) { /* an empty product: the bias alone, or zeros */
        if (!b)
            cuda_check(cudaMemset(out, 0, n * oc * sizeof(float)), op);
    } else {
        const float one = 1.0f;
        cuda_blas_check(cublasSgemm(cuda_blas(), CUBLAS_OP_T, CUBLAS_OP_N, m_, n_, k_, &one, w, mm_ld(ic, op),
                                    inp, mm_ld(ic, op), &beta, out, mm_ld(oc, op)),
                        op);
    }
    cuda_done(op);
}

/* The backward's products, scaled by s (alpha), each accumulating (beta = 1) and run only when its output is
 * wanted and not empty; a product with an empty inner dimension adds nothing. */
static void mm_backward_products(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                                 float s, size_t n, size_t ic, size_t oc, const char *op) {
    const float one = 1.0f;
    /* dinp[N,IC] += dout[N,OC] @ w[OC,IC]. Column-major: dinp^T [IC,N] += w^T [IC,OC] (w stored as is, op N)
     * times dout^T [OC,N] (op N). */
    if (dinp && n > 0 && ic > 0 && oc > 0)
        cuda_blas_check(cublasSgemm(cuda_blas(), CUBLAS_OP_N, CUBLAS_OP_N, mm_int(ic, op), mm_int(n, op),
                                    mm_int(oc, op), &s, w, mm_ld(ic, op), dout, mm_ld(oc, op), &one, dinp,
                                    mm_ld(ic, op)),
                        op);
    /* dw[OC,IC] += dout^T[OC,N] @ inp[N,IC]. Column-major: dw^T [IC,OC] += inp^T [IC,N] (op N) times dout
     * [N,OC] (dout^T stored, so op T). */
    if (dw && n > 0 && ic > 0 && oc > 0)
        cuda_blas_check(cublasSgemm(cuda_blas(), CUBLAS_OP_N, CUBLAS_OP_T, mm_int(ic, op), mm_int(oc, op),
                                    mm_int(n, op), &s, inp, mm_ld(ic, op), dout, mm_ld(oc, op), &one, dw,
                                    mm_ld(ic, op)),
                        op);
}

void cuda_matmul_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                          const float *w, size_t n, size_t ic, size_t oc) {
    const char *op = "matmul_backward";
    mm_backward_products(dinp, dw, dout, inp, w, 1.0f, n, ic, oc, op);
    /* With no rows this still adds the zero sums, as the CPU does. */
    if (db && oc > 0)
        mm_bias_grad(db, dout, n, oc);
    cuda_done(op);
}

/* out += s (inp @ w^T): the forward's product with alpha = s and beta = 1 (column-major as there). */
void cuda_matmul_scaled_forward(float *out, const float *inp, const float *w, float s, size_t n, size_t ic,
                                size_t oc) {
    const char *op = "matmul_scaled_forward";
    const float one = 1.0f;
    if (n > 0 && oc > 0 && ic > 0)
        cuda_blas_check(cublasSgemm(cuda_blas(), CUBLAS_OP_T, CUBLAS_OP_N, mm_int(oc, op), mm_int(n, op),
                                    mm_int(ic, op), &s, w, mm_ld(ic, op), inp, mm_ld(ic, op), &one, out,
                                    mm_ld(oc, op)),
                        op);
    cuda_done(op);
}

void cuda_matmul_scaled_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                                 float s, size_t n, size_t ic, size_t oc) {
    const char *op = "matmul_scaled_backward";
    mm_backward_products(dinp, dw, dout, inp, w, s, n, ic, oc, op);
    cuda_done(op);
}

/* ---- bf16 precision ---- */

/* Scratch slots of the rounded operands: the norms, copy and sum_squares use 0 and 1, attention 0 to 7, and
 * no operation calls a matmul inside itself; a later operation's use of a slot waits for this one's kernels
 * by the stream's order (and a slot that grows synchronises first). */
#define MM_SLOT_A 2
#define MM_SLOT_B 3

/* dst[i] = src[i] as bf16 (cuda_to_bf16). */
static __global__ void matmul_to_bf16(__nv_bfloat16 *dst, const float *src, size_t n) {
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        dst[i] = cuda_to_bf16(src[i]);
}

const __nv_bfloat16 *cuda_bf16_copy(int slot, const float *src, size_t n, const char *op) {
    __nv_bfloat16 *dst = (__nv_bfloat16 *)cuda_scratch(slot, (n ? n : 1) * sizeof(__nv_bfloat16));
    if (n > 0) {
        matmul_to_bf16<<<cuda_blocks(n, MM_THREADS), MM_THREADS>>>(dst, src, n);
        cuda_check(cudaGetLastError(), op);
    }
    return dst;
}

/* ---- frozen weights (ops weights_frozen): bf16 copies made once, the fp32 pages moved to the host ---- */

static struct wcache frozen;

/* The whole pages (MEM_CUDA_PAGE) inside [w, w + n floats): advice and prefetches act on pages, and a page
 * the weight shares with a neighbour (a norm's weights, a bias) stays where that neighbour is read. 0 when
 * none. */
#define MM_PAGE ((uintptr_t)MEM_CUDA_PAGE)
static size_t mm_interior(const float *w, size_t n, void **start) {
    uintptr_t a = ((uintptr_t)w + MM_PAGE - 1) & ~(MM_PAGE - 1), e = (uintptr_t)(w + n) & ~(MM_PAGE - 1);
    *start = (void *)a;
    return e > a ? (size_t)(e - a) : 0;
}

/* Puts a frozen weight's fp32 pages on the host (on) or lets them move again (off): preferred location the
 * host, mapped for the GPU, so nothing faults them back while the bf16 copy serves the products. Best effort:
 * without managed-memory advice (an older driver, another platform) the pages stay on the GPU and only the
 * memory saving is lost, so the errors are cleared rather than fatal. */
static void mm_host_pages(const float *w, size_t n, int on) {
    void *p;
    size_t bytes = mm_interior(w, n, &p);
    int dev = 0;
    if (bytes == 0 || cudaGetDevice(&dev) != cudaSuccess) {
        (void)cudaGetLastError();
        return;
    }
    cudaMemLocation host = {cudaMemLocationTypeHost, 0}, gpu = {cudaMemLocationTypeDevice, dev};
    if (on) {
        /* queued kernels first, with their errors: the best-effort calls below clear what they raise */
        cuda_check(cudaDeviceSynchronize(), "weights_frozen");
        (void)cudaMemAdvise(p, bytes, cudaMemAdviseSetPreferredLocation, host);
        (void)cudaMemAdvise(p, bytes, cudaMemAdviseSetAccessedBy, gpu);
        (void)cudaMemPrefetchAsync(p, bytes, host, 0, 0);
        (void)cudaStreamSynchronize(0); /* the pages have left: their room is free for the copy */
    } else {
        (void)cudaMemAdvise(p, bytes, cudaMemAdviseUnsetPreferredLocation, host);
        (void)cudaMemAdvise(p, bytes, cudaMemAdviseUnsetAccessedBy, gpu);
    }
    (void)cudaGetLastError();
}

static void mm_frozen_drop(const float *w, size_t n, void *copy) {
    cuda_check(cudaDeviceSynchronize(), "weights_forget");
    cuda_check(cudaFree(copy), "weights_forget");
    mm_host_pages(w, n, 0);
}

/* n bf16 values of device memory, when that leaves MEM_CUDA_RESERVE free (as engine/cuda/mem.cu's blocks
 * do, so the copies never take what cuBLAS and the scratch need); else NULL. */
static __nv_bfloat16 *mm_copy_alloc(size_t n) {
    size_t free_b = 0, total = 0, bytes = n * sizeof(__nv_bfloat16);
    void *p = NULL;
    if (cudaMemGetInfo(&free_b, &total) != cudaSuccess || bytes + MEM_CUDA_RESERVE > free_b ||
        cudaMalloc(&p, bytes) != cudaSuccess) {
        (void)cudaGetLastError();
        return NULL;
    }
    return (__nv_bfloat16 *)p;
}

/* The bf16 table's weights_frozen. The pages go to the host first, so the rounding kernel reads them where
 * they are instead of faulting them in; a copy the GPU has no room for is simply not made (the products round
 * per call, as before, and the pages come back when they are read). */
void cuda_weights_frozen_bf16(const float *w, size_t n) {
    const char *op = "weights_frozen";
    if (n == 0 || wcache_find(&frozen, w, n))
        return; /* nothing launched: nothing to wait for */
    mm_host_pages(w, n, 1);
    __nv_bfloat16 *copy = mm_copy_alloc(n);
    if (!copy) {
        mm_host_pages(w, n, 0);
        cuda_done(op);
        return;
    }
    matmul_to_bf16<<<cuda_blocks(n, MM_THREADS), MM_THREADS>>>(copy, w, n);
    cuda_check(cudaGetLastError(), op);
    wcache_add(&frozen, w, n, copy, n * sizeof(__nv_bfloat16));
    cuda_done(op);
}

void cuda_weights_frozen(const float *w, size_t n) {
    (void)w;
    (void)n;
}

/* The caller is about to change or free the weights on the host: it waits like ops sync (engine/ops.h). */
void cuda_weights_forget(const float *p, size_t n) {
    wcache_forget(&frozen, p, n, mm_frozen_drop);
    cuda_check(cudaGetLastError(), "weights_forget");
    cuda_check(cudaDeviceSynchronize(), "weights_forget");
}

/* bf16 storage (engine/mem.h): an operand there is bf16 already (its values are the ones engine/act16.c's
 * definition widens, exactly), so the product reads it as it is; an output there is written by cuBLAS as
 * bf16, rounded once after alpha AB + beta C in fp32 (beta 1 reads it widened): the definition's bits without
 * its passes. Either kind may be any argument, so these functions serve the "cuda-bf16" table and its
 * "bf16-act" wrapper alike (cuda_ops_bf16_native). */

/* A product's operand: bf16 storage as it is, else rounded now into scratch `slot`. */
static const __nv_bfloat16 *mm_operand(int slot, const float *p, size_t n, const char *op) {
    const uint16_t *s = mem_bf16_at(p, NULL);
    return s ? (const __nv_bfloat16 *)s : cuda_bf16_copy(slot, p, n, op);
}

/* w [oc, ic] as the products' bf16 operand: bf16 storage, its frozen copy, or rounded now into `slot`. */
static const __nv_bfloat16 *mm_weight(int slot, const float *w, size_t n, const char *op) {
    const __nv_bfloat16 *c = (const __nv_bfloat16 *)wcache_find(&frozen, w, n);
    return c ? c : mm_operand(slot, w, n, op);
}

/* A product's output: its memory and cuBLAS's type for it. */
struct mm_out {
    void *p;
    cudaDataType type;
};
static struct mm_out mm_out_of(float *p) {
    uint16_t *s = mem_bf16_at(p, NULL);
    return s ? mm_out{s, CUDA_R_16BF} : mm_out{p, CUDA_R_32F};
}

/* C (column-major [m,n], ldc) = alpha op(A) op(B) + beta C with A and B bf16: products exact in fp32,
 * summed in fp32 (CUBLAS_COMPUTE_32F), C fp32 or bf16. The fp32 path's cublasSgemm with bf16 operands. */
static void mm_gemm_bf16(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha,
                         const __nv_bfloat16 *a, int lda, const __nv_bfloat16 *b, int ldb, float beta,
                         struct mm_out c, int ldc, const char *op) {
    cuda_blas_check(cublasGemmEx(cuda_blas_bf16(), ta, tb, m, n, k, &alpha, a, CUDA_R_16BF, lda, b,
                                 CUDA_R_16BF, ldb, &beta, c.p, c.type, ldc, CUBLAS_COMPUTE_32F,
                                 CUBLAS_GEMM_DEFAULT),
                    op);
}

/* The slot of the fp32 scratch a bf16 output with a bias goes through (no other matmul scratch is in use). */
#define MM_SLOT_C 4

/* out = inp w^T (+ b) with its bias in fp32 before the one rounding: into fp32 memory directly; into bf16
 * storage with a bias through fp32 scratch, rounded after (cuBLAS would round before the bias is added). */
static void mm_forward_bf16(float *out, const float *inp, const float *w, const float *b, size_t n, size_t ic,
                            size_t oc, const char *op) {
    struct mm_out o = mm_out_of(out);
    uint16_t *store = b && o.type == CUDA_R_16BF ? (uint16_t *)o.p : NULL;
    if (store)
        o = mm_out{cuda_scratch(MM_SLOT_C, n * oc * sizeof(float)), CUDA_R_32F};
    float beta = 0.0f, *rows = (float *)o.p;
    if (b) {
        mm_bias_rows(rows, b, n, oc);
        cuda_check(cudaGetLastError(), op);
        beta = 1.0f;
    }
    if (ic == 0) { /* an empty product: the bias alone, or zeros */
        if (!b)
            cuda_check(cudaMemsetAsync(o.p, 0, n * oc * (o.type == CUDA_R_16BF ? 2 : 4), 0), op);
    } else {
        const __nv_bfloat16 *bi = mm_operand(MM_SLOT_A, inp, n * ic, op),
                            *bw = mm_weight(MM_SLOT_B, w, oc * ic, op);
        mm_gemm_bf16(CUBLAS_OP_T, CUBLAS_OP_N, mm_int(oc, op), mm_int(n, op), mm_int(ic, op), 1.0f, bw,
                     mm_ld(ic, op), bi, mm_ld(ic, op), beta, o, mm_ld(oc, op), op);
    }
    if (store) {
        matmul_to_bf16<<<cuda_blocks(n * oc, MM_THREADS), MM_THREADS>>>((__nv_bfloat16 *)store,
                                                                        (const float *)o.p, n * oc);
        cuda_check(cudaGetLastError(), op);
    }
}

/* cuda_matmul_forward with inp and w rounded to bf16 (slots A and B); the bias stays fp32. */
void cuda_matmul_forward_bf16(float *out, const float *inp, const float *w, const float *b, size_t n,
                              size_t ic, size_t oc) {
    const char *op = "matmul_forward_bf16";
    if (n > 0 && oc > 0)
        mm_forward_bf16(out, inp, w, b, n, ic, oc, op);
    cuda_done(op);
}

/* The backward's products on bf16 operands, scaled by s: dout rounded once (slot A) for both; w for dinp,
 * then inp for dw, in slot B (stream order: the dw rounding starts after the dinp product has read w's copy,
 * and a slot that must grow synchronises first). */
static void mm_backward_products_bf16(float *dinp, float *dw, const float *dout, const float *inp,
                                      const float *w, float s, size_t n, size_t ic, size_t oc,
                                      const char *op) {
    int want_dinp = dinp && n > 0 && ic > 0 && oc > 0, want_dw = dw && n > 0 && ic > 0 && oc > 0;
    const __nv_bfloat16 *bd = want_dinp || want_dw ? mm_operand(MM_SLOT_A, dout, n * oc, op) : NULL;
    /* dinp^T [IC,N] += w^T [IC,OC] (op N) times dout^T [OC,N] (op N), column-major as in the fp32 path */
    if (want_dinp) {
        const __nv_bfloat16 *bw = mm_weight(MM_SLOT_B, w, oc * ic, op);
        mm_gemm_bf16(CUBLAS_OP_N, CUBLAS_OP_N, mm_int(ic, op), mm_int(n, op), mm_int(oc, op), s, bw,
                     mm_ld(ic, op), bd, mm_ld(oc, op), 1.0f, mm_out_of(dinp), mm_ld(ic, op), op);
    }
    /* dw^T [IC,OC] += inp^T [IC,N] (op N) times dout [N,OC] (op T) */
    if (want_dw) {
        const __nv_bfloat16 *bi = mm_operand(MM_SLOT_B, inp, n * ic, op);
        mm_gemm_bf16(CUBLAS_OP_N, CUBLAS_OP_T, mm_int(ic, op), mm_int(oc, op), mm_int(n, op), s, bi,
                     mm_ld(ic, op), bd, mm_ld(oc, op), 1.0f, mm_out_of(dw), mm_ld(ic, op), op);
    }
}

/* db is the fp32 column sum of dout as it is (unrounded fp32, or bf16 storage widened), as in fp32. */
void cuda_matmul_backward_bf16(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                               const float *w, size_t n, size_t ic, size_t oc) {
    const char *op = "matmul_backward_bf16";
    mm_backward_products_bf16(dinp, dw, dout, inp, w, 1.0f, n, ic, oc, op);
    if (db && oc > 0)
        mm_bias_grad(db, dout, n, oc);
    cuda_done(op);
}

void cuda_matmul_scaled_forward_bf16(float *out, const float *inp, const float *w, float s, size_t n,
                                     size_t ic, size_t oc) {
    const char *op = "matmul_scaled_forward_bf16";
    if (n > 0 && oc > 0 && ic > 0) {
        const __nv_bfloat16 *bi = mm_operand(MM_SLOT_A, inp, n * ic, op),
                            *bw = mm_weight(MM_SLOT_B, w, oc * ic, op);
        mm_gemm_bf16(CUBLAS_OP_T, CUBLAS_OP_N, mm_int(oc, op), mm_int(n, op), mm_int(ic, op), s, bw,
                     mm_ld(ic, op), bi, mm_ld(ic, op), 1.0f, mm_out_of(out), mm_ld(oc, op), op);
    }
    cuda_done(op);
}

void cuda_matmul_scaled_backward_bf16(float *dinp, float *dw, const float *dout, const float *inp,
                                      const float *w, float s, size_t n, size_t ic, size_t oc) {
    const char *op = "matmul_scaled_backward_bf16";
    mm_backward_products_bf16(dinp, dw, dout, inp, w, s, n, ic, oc, op);
    cuda_done(op);
}

/* ---- LoRA's down projection with its input dropout, bf16 (ops lora_down_forward / _backward) ---- */

/* dst[i] = dropout(x)[i] as bf16: the mask and scale of the dropout operation (engine/rng.h's mask, one
 * rounded multiply), then the operand's rounding, in one pass over x (fp32, or bf16 storage widened). The
 * composition (engine/lora_down.h) writes the same fp32 value first and rounds it when the product reads it:
 * the same bf16 bits. */
template <bool V>
static __global__ void matmul_dropout_to_bf16(__nv_bfloat16 *dst, cuda_ten x, size_t n,
                                              struct ops_dropout d) {
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        dst[i] = cuda_to_bf16(rng_uniform(d.key, i) < d.p ? 0.0f : ten_ld<V>(x, i) * d.scale);
}

static const __nv_bfloat16 *mm_dropout_copy(int slot, const float *x, size_t n, struct ops_dropout d,
                                            const char *op) {
    __nv_bfloat16 *dst = (__nv_bfloat16 *)cuda_scratch(slot, (n ? n : 1) * sizeof(__nv_bfloat16));
    cuda_ten t = cuda_arg(x);
    if (n > 0 && t.bf16)
        matmul_dropout_to_bf16<true><<<cuda_blocks(n, MM_THREADS), MM_THREADS>>>(dst, t, n, d);
    else if (n > 0)
        matmul_dropout_to_bf16<false><<<cuda_blocks(n, MM_THREADS), MM_THREADS>>>(dst, t, n, d);
    cuda_check(cudaGetLastError(), op);
    return dst;
}

/* n zeros into an output of either kind. */
static void mm_zero(struct mm_out o, size_t n, const char *op) {
    cuda_check(cudaMemsetAsync(o.p, 0, n * (o.type == CUDA_R_16BF ? 2 : 4), 0), op);
}

/* h = dropout(x) @ a^T with the masked x rounded straight into slot A: no fp32 dropout(x) is written, so xs
 * is not used. */
void cuda_lora_down_forward_bf16(float *h, float *xs, const float *x, const float *a, struct ops_dropout d,
                                 size_t n, size_t ic, size_t r) {
    const char *op = "lora_down_forward_bf16";
    (void)xs;
    if (n > 0 && r > 0 && ic == 0) /* an empty product: zeros, as matmul_forward without a bias */
        mm_zero(mm_out_of(h), n * r, op);
    else if (n > 0 && r > 0) {
        const __nv_bfloat16 *bx = mm_dropout_copy(MM_SLOT_A, x, n * ic, d, op),
                            *ba = mm_weight(MM_SLOT_B, a, r * ic, op);
        mm_gemm_bf16(CUBLAS_OP_T, CUBLAS_OP_N, mm_int(r, op), mm_int(n, op), mm_int(ic, op), 1.0f, ba,
                     mm_ld(ic, op), bx, mm_ld(ic, op), 0.0f, mm_out_of(h), mm_ld(r, op), op);
    }
    cuda_done(op);
}

/* dh rounded once (slot A). dx: dxs = dh @ a written (beta 0, where the composition zeroes it and adds the
 * product: the same values, up to cuBLAS choosing another kernel for beta 1), then masked into dx by the
 * dropout operation. da: dropout(x) rounded in one pass (slot B, after the dx product has read a's copy
 * there, by the stream's order). */
void cuda_lora_down_backward_bf16(float *dx, float *da, float *xs, float *dxs, const float *dh,
                                  const float *x, const float *a, struct ops_dropout d, size_t n, size_t ic,
                                  size_t r) {
    const char *op = "lora_down_backward_bf16";
    (void)xs;
    int rows = n > 0 && ic > 0, want_dx = dx && rows, want_da = da && rows && r > 0;
    const __nv_bfloat16 *bd = (want_dx || want_da) && r > 0 ? mm_operand(MM_SLOT_A, dh, n * r, op) : NULL;
    /* dxs^T [IC,N] = a^T [IC,R] (a stored as is, op N) times dh^T [R,N] (op N); with r = 0, zeros (dx still
     * gets the composition's + 0, which turns -0 into +0) */
    if (want_dx && mem_bf16_at(dxs, NULL)) /* dh a must reach the mask unrounded: fp32 scratch instead */
        dxs = (float *)cuda_scratch(MM_SLOT_C, n * ic * sizeof(float));
    if (want_dx && r == 0)
        mm_zero(mm_out_of(dxs), n * ic, op);
    else if (want_dx) {
        const __nv_bfloat16 *ba = mm_weight(MM_SLOT_B, a, r * ic, op);
        mm_gemm_bf16(CUBLAS_OP_N, CUBLAS_OP_N, mm_int(ic, op), mm_int(n, op), mm_int(r, op), 1.0f, ba,
                     mm_ld(ic, op), bd, mm_ld(r, op), 0.0f, mm_out_of(dxs), mm_ld(ic, op), op);
    }
    if (want_dx)
        cuda_dropout(dx, dxs, n * ic, d.key, d.p, d.scale, 1);
    /* da^T [IC,R] += dropout(x)^T [IC,N] (op N) times dh [N,R] (dh^T stored, op T) */
    if (want_da) {
        const __nv_bfloat16 *bx = mm_dropout_copy(MM_SLOT_B, x, n * ic, d, op);
        mm_gemm_bf16(CUBLAS_OP_N, CUBLAS_OP_T, mm_int(ic, op), mm_int(r, op), mm_int(n, op), 1.0f, bx,
                     mm_ld(ic, op), bd, mm_ld(r, op), 1.0f, mm_out_of(da), mm_ld(ic, op), op);
    }
    cuda_done(op);
}

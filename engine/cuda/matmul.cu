/* matmul (CUDA): linear layers on cuBLAS, with the semantics of engine/cpu/matmul.c. Our tensors are
 * row-major and cuBLAS is column-major, so every product is written for the transposes: a row-major [R,C]
 * matrix is a column-major [C,R] one with the same leading dimension, and (A B)^T = B^T A^T. The bias is
 * handled as on the CPU (copied into the output rows, then the product added with beta = 1), and the bias
 * gradient is a column sum over the rows in order, one thread per column, so db gets the CPU's exact bits. */
#include "engine/cuda/cuda.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#define MM_THREADS 256

/* cuBLAS takes int sizes: a size that does not fit is an engine error, reported like cuda_check's. */
static int mm_int(size_t v, const char *what) {
    if (v > (size_t)INT_MAX) {
        fprintf(stderr, "pulse-pipe: cuBLAS error in %s: size %zu does not fit an int\n", what, v);
        exit(3);
    }
    return (int)v;
}

/* A leading dimension: cuBLAS wants at least 1 even when the matrix has no columns. */
static int mm_ld(size_t v, const char *what) {
    return mm_int(v ? v : 1, what);
}

/* out[i, j] = b[j]: the rows start from the bias, then the product is added (beta = 1), as the CPU does. */
static __global__ void matmul_bias_rows(float *out, const float *b, size_t n, size_t oc) {
    size_t total = n * oc, stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride)
        out[i] = b[i % oc];
}

/* db[j] += sum over rows of dout[., j]: the rows in order from zero, then added to db, as the CPU's
 * colsum_range does, so the bits are the same. Neighbouring threads read neighbouring columns (coalesced). */
static __global__ void matmul_bias_grad(float *db, const float *dout, size_t n, size_t oc) {
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t j = (size_t)blockIdx.x * blockDim.x + threadIdx.x; j < oc; j += stride) {
        float acc = 0.0f;
        for (size_t i = 0; i < n; i++)
            acc += dout[i * oc + j];
        db[j] += acc;
    }
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
        matmul_bias_rows<<<cuda_blocks(n * oc, MM_THREADS), MM_THREADS>>>(out, b, n, oc);
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

/* Each product accumulates (beta = 1) and runs only when its output is wanted and not empty; a product with
 * an empty inner dimension adds nothing. */
void cuda_matmul_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                          const float *w, size_t n, size_t ic, size_t oc) {
    const char *op = "matmul_backward";
    const float one = 1.0f;
    /* dinp[N,IC] += dout[N,OC] @ w[OC,IC]. Column-major: dinp^T [IC,N] += w^T [IC,OC] (w stored as is, op N)
     * times dout^T [OC,N] (op N). */
    if (dinp && n > 0 && ic > 0 && oc > 0)
        cuda_blas_check(cublasSgemm(cuda_blas(), CUBLAS_OP_N, CUBLAS_OP_N, mm_int(ic, op), mm_int(n, op),
                                    mm_int(oc, op), &one, w, mm_ld(ic, op), dout, mm_ld(oc, op), &one, dinp,
                                    mm_ld(ic, op)),
                        op);
    /* dw[OC,IC] += dout^T[OC,N] @ inp[N,IC]. Column-major: dw^T [IC,OC] += inp^T [IC,N] (op N) times dout
     * [N,OC] (dout^T stored, so op T). */
    if (dw && n > 0 && ic > 0 && oc > 0)
        cuda_blas_check(cublasSgemm(cuda_blas(), CUBLAS_OP_N, CUBLAS_OP_T, mm_int(ic, op), mm_int(oc, op),
                                    mm_int(n, op), &one, inp, mm_ld(ic, op), dout, mm_ld(oc, op), &one, dw,
                                    mm_ld(ic, op)),
                        op);
    /* With no rows this still adds the zero sums, as the CPU does. */
    if (db && oc > 0)
        matmul_bias_grad<<<cuda_blocks(oc, MM_THREADS), MM_THREADS>>>(db, dout, n, oc);
    cuda_done(op);
}

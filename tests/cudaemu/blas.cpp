/* blas: cudaemu's cuBLAS: the products engine/cuda/ asks for, checked as cuBLAS checks them (sizes, leading
 * dimensions, and here also that each matrix lies inside one device or managed allocation), then queued
 * and run on OpenBLAS's sgemm, whose column-major interface has cuBLAS's arguments exactly. bf16 operands are
 * widened to fp32 first (exact), so the products are exact and the sums fp32, as CUBLAS_COMPUTE_32F; a bf16
 * output is widened, computed in fp32 and rounded back once (nearest, ties to even). alpha
 * and beta are read at the call (cuBLAS's host pointer mode). */
#include "cublas_v2.h"
#include "internal.h"

#include <cblas.h>
#include <cstdlib>
#include <cstring>
#include <vector>

struct cudaemu_blas {
    cublasMath_t math;
};

namespace {

/* Elements a column-major rows x cols matrix with leading dimension ld spans. */
size_t span(int rows, int cols, int ld) {
    return rows == 0 || cols == 0 ? 0 : (size_t)ld * (size_t)(cols - 1) + (size_t)rows;
}

struct operand {
    const void *p;
    cudaDataType type;
    int rows, cols, ld; /* as stored: op(A) is m x k, so A is m x k (N) or k x m (T) */
    long long stride;
};

size_t elem_size(cudaDataType t) {
    return t == CUDA_R_16BF ? 2 : 4;
}

/* cuBLAS's rule: the leading dimension is at least the stored rows, and at least 1. */
bool ld_ok(const operand &o) {
    return o.ld >= (o.rows > 1 ? o.rows : 1);
}

/* The matrix (each of the batch) inside one device or managed allocation. */
bool operand_ok(const operand &o, int batch) {
    size_t n = span(o.rows, o.cols, o.ld);
    if (n == 0)
        return true;
    size_t extent = n + (size_t)(batch - 1) * (size_t)o.stride;
    return o.p && o.stride >= 0 && cudaemu::memory_kind(o.p, extent * elem_size(o.type)) != 0;
}

/* Matrix i of a batch as fp32 (a bf16 one widened into `tmp`). */
const float *as_float(const operand &o, int i, std::vector<float> &tmp) {
    size_t n = span(o.rows, o.cols, o.ld);
    if (o.type == CUDA_R_32F)
        return (const float *)o.p + (size_t)i * o.stride;
    const uint16_t *h = (const uint16_t *)o.p + (size_t)i * o.stride;
    tmp.resize(n ? n : 1);
    for (size_t j = 0; j < n; j++) {
        uint32_t u = (uint32_t)h[j] << 16;
        memcpy(&tmp[j], &u, sizeof u);
    }
    return tmp.data();
}

/* fp32 to bf16 as cuBLAS stores a bf16 output: rounded to nearest, ties to even; a NaN stays a NaN (its
 * high half, made quiet where that half alone would read as an infinity). */
uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | ((u & 0x007f0000u) ? 0u : 0x40u));
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* C (matrix i of a batch) as fp32 for sgemm, and back: a bf16 C is widened into `tmp` (zeros when beta is 0:
 * cuBLAS does not read C then), and its m x n elements rounded back after the product. */
float *c_in(const operand &c, int i, float beta, std::vector<float> &tmp) {
    if (c.type == CUDA_R_32F)
        return (float *)c.p + (size_t)i * c.stride;
    size_t n = span(c.rows, c.cols, c.ld);
    tmp.assign(n ? n : 1, 0.0f);
    const uint16_t *h = (const uint16_t *)c.p + (size_t)i * c.stride;
    for (size_t j = 0; beta != 0.0f && j < n; j++) {
        uint32_t u = (uint32_t)h[j] << 16;
        memcpy(&tmp[j], &u, sizeof u);
    }
    return tmp.data();
}

void c_out(const operand &c, int i, const std::vector<float> &tmp) {
    if (c.type == CUDA_R_32F)
        return;
    uint16_t *h = (uint16_t *)c.p + (size_t)i * c.stride;
    for (int col = 0; col < c.cols; col++)
        for (int row = 0; row < c.rows; row++) {
            size_t j = (size_t)col * (size_t)c.ld + (size_t)row;
            h[j] = to_bf16(tmp[j]);
        }
}

CBLAS_TRANSPOSE trans(cublasOperation_t t) {
    return t == CUBLAS_OP_N ? CblasNoTrans : CblasTrans;
}

cublasStatus_t gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                    float alpha, operand a, operand b, float beta, void *c, cudaDataType ct, int ldc,
                    long long stride_c, int batch) {
    if (!h)
        return CUBLAS_STATUS_NOT_INITIALIZED;
    /* TF32 would round the inputs: not emulated, so not silently ignored either */
    if (h->math == CUBLAS_TF32_TENSOR_OP_MATH && a.type == CUDA_R_32F)
        cudaemu::fail("cuBLAS with TF32 math is not emulated");
    if (m < 0 || n < 0 || k < 0 || batch < 0 || ta > CUBLAS_OP_C || tb > CUBLAS_OP_C)
        return CUBLAS_STATUS_INVALID_VALUE;
    /* for real matrices the conjugate transpose is the transpose */
    ta = ta == CUBLAS_OP_N ? CUBLAS_OP_N : CUBLAS_OP_T, tb = tb == CUBLAS_OP_N ? CUBLAS_OP_N : CUBLAS_OP_T;
    a.rows = ta == CUBLAS_OP_N ? m : k, a.cols = ta == CUBLAS_OP_N ? k : m;
    b.rows = tb == CUBLAS_OP_N ? k : n, b.cols = tb == CUBLAS_OP_N ? n : k;
    operand co{c, ct, m, n, ldc, stride_c};
    if (!ld_ok(a) || !ld_ok(b) || !ld_ok(co)) /* cuBLAS checks them whatever the sizes */
        return CUBLAS_STATUS_INVALID_VALUE;
    if (batch == 0 || m == 0 || n == 0)
        return CUBLAS_STATUS_SUCCESS;
    if (!operand_ok(a, batch) || !operand_ok(b, batch) || !operand_ok(co, batch))
        return CUBLAS_STATUS_INVALID_VALUE;
    cudaemu::enqueue([=]() {
        std::vector<float> ta_, tb_, tc_;
        for (int i = 0; i < batch; i++) {
            float *ci = c_in(co, i, beta, tc_);
            const float *ai = k ? as_float(a, i, ta_) : nullptr, *bi = k ? as_float(b, i, tb_) : nullptr;
            cblas_sgemm(CblasColMajor, trans(ta), trans(tb), m, n, k, alpha, ai, a.ld, bi, b.ld, beta, ci,
                        ldc);
            c_out(co, i, tc_);
        }
    });
    return CUBLAS_STATUS_SUCCESS;
}

/* fp32 or bf16 inputs (both alike), an fp32 output or, for bf16 inputs, a bf16 one (rounded once, after
 * alpha AB + beta C in fp32). */
bool types_ok(cudaDataType at, cudaDataType bt, cudaDataType ct, cublasComputeType_t compute) {
    return at == bt && (at == CUDA_R_16BF || at == CUDA_R_32F) &&
           (ct == CUDA_R_32F || (ct == CUDA_R_16BF && at == CUDA_R_16BF)) &&
           (compute == CUBLAS_COMPUTE_32F || compute == CUBLAS_COMPUTE_32F_PEDANTIC);
}

} // namespace

/* OpenBLAS on one thread, as the CPU backend runs it: its own threads would spin between the calls, taking
 * the core the kernels run on, and its split of a product can change the bits. */
cublasStatus_t cublasCreate(cublasHandle_t *h) {
    openblas_set_num_threads(1);
    *h = new cudaemu_blas{CUBLAS_DEFAULT_MATH};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t mode) {
    if (!h)
        return CUBLAS_STATUS_NOT_INITIALIZED;
    h->math = mode;
    return CUBLAS_STATUS_SUCCESS;
}

const char *cublasGetStatusString(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS:
        return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED:
        return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_INVALID_VALUE:
        return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED:
        return "CUBLAS_STATUS_NOT_SUPPORTED";
    }
    return "CUBLAS_STATUS_UNKNOWN";
}

cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                           const float *alpha, const float *a, int lda, const float *b, int ldb,
                           const float *beta, float *c, int ldc) {
    return gemm(h, ta, tb, m, n, k, *alpha, operand{a, CUDA_R_32F, 0, 0, lda, 0},
                operand{b, CUDA_R_32F, 0, 0, ldb, 0}, *beta, c, CUDA_R_32F, ldc, 0, 1);
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                                         int n, int k, const float *alpha, const float *a, int lda,
                                         long long stride_a, const float *b, int ldb, long long stride_b,
                                         const float *beta, float *c, int ldc, long long stride_c,
                                         int batch) {
    return gemm(h, ta, tb, m, n, k, *alpha, operand{a, CUDA_R_32F, 0, 0, lda, stride_a},
                operand{b, CUDA_R_32F, 0, 0, ldb, stride_b}, *beta, c, CUDA_R_32F, ldc, stride_c, batch);
}

cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void *alpha, const void *a, cudaDataType atype, int lda, const void *b,
                            cudaDataType btype, int ldb, const void *beta, void *c, cudaDataType ctype,
                            int ldc, cublasComputeType_t compute, cublasGemmAlgo_t algo) {
    (void)algo;
    if (!types_ok(atype, btype, ctype, compute))
        return CUBLAS_STATUS_NOT_SUPPORTED;
    return gemm(h, ta, tb, m, n, k, *(const float *)alpha, operand{a, atype, 0, 0, lda, 0},
                operand{b, btype, 0, 0, ldb, 0}, *(const float *)beta, c, ctype, ldc, 0, 1);
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                                          int n, int k, const void *alpha, const void *a, cudaDataType atype,
                                          int lda, long long stride_a, const void *b, cudaDataType btype,
                                          int ldb, long long stride_b, const void *beta, void *c,
                                          cudaDataType ctype, int ldc, long long stride_c, int batch,
                                          cublasComputeType_t compute, cublasGemmAlgo_t algo) {
    (void)algo;
    if (!types_ok(atype, btype, ctype, compute))
        return CUBLAS_STATUS_NOT_SUPPORTED;
    return gemm(h, ta, tb, m, n, k, *(const float *)alpha, operand{a, atype, 0, 0, lda, stride_a},
                operand{b, btype, 0, 0, ldb, stride_b}, *(const float *)beta, c, ctype, ldc, stride_c, batch);
}

/* matmul: linear layers on OpenBLAS. Each product's output is cut into blocks whose bounds depend only on the
 * shapes; each block is one single-threaded sgemm, and the pool runs the blocks. OpenBLAS's own threading
 * does not give the same bits for 1 and 2 threads (0.3.21 differs on about a third of odd shapes); a fixed
 * cut does. The bf16 variants (the "cpu-bf16" table of ops_precision) emulate bf16 products with fp32
 * accumulation: both inputs rounded to bf16 values (kept in fp32 arrays), then the same sgemm path; a frozen
 * weight's rounded copy is made once (ops weights_frozen) and read by every later product. */
#include "engine/cpu/cpu.h"
#include "engine/wcache.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

/* Products under this many multiply-adds are one block: a split would not pay for the extra packing. */
#define MM_MIN_WORK (1u << 21)
/* Each block packs the whole other operand again, and small blocks run OpenBLAS's kernels below their best:
 * on this machine blocks of 128 rows ran 10-15% slower than one call, 256 about 5% (K = 256). So a split aims
 * at blocks of about MM_TARGET rows or columns, multiples of MM_ALIGN, an even number of them (2 or 4 threads
 * share them evenly), at most MM_MAX_BLOCKS. */
#define MM_TARGET 256
#define MM_MAX_BLOCKS 32
#define MM_ALIGN 16

/* C[m,n] = alpha op(A)[m,k] op(B)[k,n] + beta C (+ bias[n] on each row when bias is given, then beta is 1).
 */
struct gemm {
    enum CBLAS_TRANSPOSE ta, tb;
    size_t m, n, k;
    const float *a, *b, *bias;
    size_t lda, ldb, ldc;
    float alpha, beta;
    float *c;
    int split_m;  /* cut along the rows of C (else along its columns) */
    size_t block; /* rows or columns per block */
};

static void gemm_run(const struct gemm *g, size_t lo, size_t hi) {
    const float *a = g->a, *b = g->b;
    float *c = g->c;
    size_t m = g->m, n = g->n;
    if (g->split_m) {
        a += g->ta == CblasNoTrans ? lo * g->lda : lo;
        c += lo * g->ldc;
        m = hi - lo;
    } else {
        b += g->tb == CblasNoTrans ? lo : lo * g->ldb;
        c += lo;
        n = hi - lo;
    }
    float beta = g->beta;
    if (g->bias) {
        const float *bias = g->split_m ? g->bias : g->bias + lo;
        for (size_t i = 0; i < m; i++)
            memcpy(c + i * g->ldc, bias, n * sizeof(float));
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, g->ta, g->tb, (int)m, (int)n, (int)g->k, g->alpha, a, (int)g->lda, b,
                (int)g->ldb, beta, c, (int)g->ldc);
}

static void gemm_blocks(void *ctx, size_t begin, size_t end) {
    const struct gemm *g = ctx;
    size_t dim = g->split_m ? g->m : g->n;
    for (size_t i = begin; i < end; i++) {
        size_t lo = i * g->block, hi = lo + g->block < dim ? lo + g->block : dim;
        gemm_run(g, lo, hi);
    }
}

/* Cuts the larger side of C (the other operand is packed once per block) into blocks set by the shape alone,
 * never by the thread count. */
static void gemm(struct gemm *g) {
    if (g->m == 0 || g->n == 0)
        return;
    g->split_m = g->m >= g->n;
    size_t dim = g->split_m ? g->m : g->n;
    size_t work = g->m * g->n * (g->k ? g->k : 1);
    g->block = dim;
    if (work >= MM_MIN_WORK && dim >= 2 * MM_ALIGN) {
        size_t nb = dim / MM_TARGET;
        nb = nb < 2 ? 2 : nb > MM_MAX_BLOCKS ? MM_MAX_BLOCKS : nb + (nb & 1);
        size_t per = (dim + nb - 1) / nb;
        g->block = (per + MM_ALIGN - 1) / MM_ALIGN * MM_ALIGN;
    }
    size_t blocks = (dim + g->block - 1) / g->block;
    cpu_parallel(blocks, work / blocks, gemm_blocks, g);
}

struct colsum {
    float *db;
    const float *dout;
    size_t n, oc;
};

/* db[j] += sum over rows of dout[., j], rows in order, summed apart from db so that every column's sum is the
 * same whichever thread takes it. */
static void colsum_range(void *ctx, size_t begin, size_t end) {
    const struct colsum *s = ctx;
    for (size_t j0 = begin; j0 < end; j0 += 64) {
        size_t w = end - j0 < 64 ? end - j0 : 64;
        float acc[64] = {0};
        for (size_t i = 0; i < s->n; i++)
            for (size_t j = 0; j < w; j++)
                acc[j] += s->dout[i * s->oc + j0 + j];
        for (size_t j = 0; j < w; j++)
            s->db[j0 + j] += acc[j];
    }
}

/* out[n,oc] = alpha inp[n,ic] @ w[oc,ic]^T + beta out (+ b: then beta is 1). */
static void forward_product(float *out, const float *inp, const float *w, const float *b, float alpha,
                            float beta, size_t n, size_t ic, size_t oc) {
    struct gemm g = {.ta = CblasNoTrans,
                     .tb = CblasTrans,
                     .m = n,
                     .n = oc,
                     .k = ic,
                     .a = inp,
                     .lda = ic,
                     .b = w,
                     .ldb = ic,
                     .bias = b,
                     .alpha = alpha,
                     .beta = beta,
                     .c = out,
                     .ldc = oc};
    gemm(&g);
}

void cpu_matmul_forward(float *out, const float *inp, const float *w, const float *b, size_t n, size_t ic,
                        size_t oc) {
    forward_product(out, inp, w, b, 1.0f, 0.0f, n, ic, oc);
}

/* The backward's two products, each scaled by s: dinp[n,ic] += s dout[n,oc] @ w[oc,ic]; dw[oc,ic] += s
 * dout^T[oc,n] @ inp[n,ic]. */
static void backward_products(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                              float s, size_t n, size_t ic, size_t oc) {
    if (dinp) {
        struct gemm g = {.ta = CblasNoTrans,
                         .tb = CblasNoTrans,
                         .m = n,
                         .n = ic,
                         .k = oc,
                         .a = dout,
                         .lda = oc,
                         .b = w,
                         .ldb = ic,
                         .alpha = s,
                         .beta = 1.0f,
                         .c = dinp,
                         .ldc = ic};
        gemm(&g);
    }
    if (dw) {
        struct gemm g = {.ta = CblasTrans,
                         .tb = CblasNoTrans,
                         .m = oc,
                         .n = ic,
                         .k = n,
                         .a = dout,
                         .lda = oc,
                         .b = inp,
                         .ldb = ic,
                         .alpha = s,
                         .beta = 1.0f,
                         .c = dw,
                         .ldc = ic};
        gemm(&g);
    }
}

void cpu_matmul_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                         const float *w, size_t n, size_t ic, size_t oc) {
    backward_products(dinp, dw, dout, inp, w, 1.0f, n, ic, oc);
    if (db) {
        struct colsum s = {.db = db, .dout = dout, .n = n, .oc = oc};
        cpu_parallel(oc, n, colsum_range, &s);
    }
}

void cpu_matmul_scaled_forward(float *out, const float *inp, const float *w, float s, size_t n, size_t ic,
                               size_t oc) {
    forward_product(out, inp, w, NULL, s, 1.0f, n, ic, oc);
}

void cpu_matmul_scaled_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                                float s, size_t n, size_t ic, size_t oc) {
    backward_products(dinp, dw, dout, inp, w, s, n, ic, oc);
}

/* ---- bf16 precision ---- */

struct bf16_round {
    float *dst;
    const float *src;
};

static void bf16_range(void *ctx, size_t begin, size_t end) {
    const struct bf16_round *r = ctx;
    for (size_t i = begin; i < end; i++)
        r->dst[i] = kernel_bf16_round(r->src[i]);
}

/* The rounding is per element, so the split over threads changes no bit. A product of two bf16 values is
 * exact in fp32 (8 + 8 significand bits), so sgemm on these copies is bf16 products with fp32 accumulation,
 * as cuBLAS computes them: the backends differ only in summation order. */
float *cpu_bf16_copy(const float *x, size_t n) {
    float *r = xmalloc((n ? n : 1) * sizeof(float));
    cpu_parallel(n, 1, bf16_range, &(struct bf16_round){.dst = r, .src = x});
    return r;
}

/* Frozen weights' rounded copies (ops weights_frozen), made once by the bf16 table; every table forgets. */
static struct wcache frozen;

static void frozen_drop(const float *w, size_t n, void *copy) {
    (void)w;
    (void)n;
    free(copy);
}

void cpu_weights_frozen_bf16(const float *w, size_t n) {
    if (n > 0 && !wcache_find(&frozen, w, n))
        wcache_add(&frozen, w, n, cpu_bf16_copy(w, n), n * sizeof(float));
}

void cpu_weights_frozen(const float *w, size_t n) {
    (void)w;
    (void)n;
}

void cpu_weights_forget(const float *p, size_t n) {
    wcache_forget(&frozen, p, n, frozen_drop);
}

size_t cpu_weights_frozen_bytes(void) {
    return frozen.bytes;
}

/* w[n] rounded: its frozen copy, or a fresh one put in *fresh for the caller to free. */
static const float *rounded_weight(const float *w, size_t n, float **fresh) {
    const float *c = wcache_find(&frozen, w, n);
    *fresh = c ? NULL : cpu_bf16_copy(w, n);
    return c ? c : *fresh;
}

/* cpu_matmul_forward on bf16-rounded inp and w; the bias stays fp32. */
void cpu_matmul_forward_bf16(float *out, const float *inp, const float *w, const float *b, size_t n,
                             size_t ic, size_t oc) {
    if (n == 0 || oc == 0) /* no output: nothing to round (cpu_matmul_forward does nothing either) */
        return;
    float *ri = cpu_bf16_copy(inp, n * ic), *fresh;
    cpu_matmul_forward(out, ri, rounded_weight(w, oc * ic, &fresh), b, n, ic, oc);
    free(ri);
    free(fresh);
}

/* The backward's two products, scaled by s, on bf16-rounded operands (dout, and w for dinp, inp for dw). */
static void backward_products_bf16(float *dinp, float *dw, const float *dout, const float *inp,
                                   const float *w, float s, size_t n, size_t ic, size_t oc) {
    int want_dinp = dinp && n > 0 && ic > 0, want_dw = dw && oc > 0 && ic > 0;
    if (!want_dinp && !want_dw)
        return;
    float *rd = cpu_bf16_copy(dout, n * oc), *fresh = NULL;
    const float *rw = want_dinp ? rounded_weight(w, oc * ic, &fresh) : NULL;
    float *ri = want_dw ? cpu_bf16_copy(inp, n * ic) : NULL;
    backward_products(want_dinp ? dinp : NULL, want_dw ? dw : NULL, rd, ri, rw, s, n, ic, oc);
    free(rd);
    free(fresh);
    free(ri);
}

/* db, a sum rather than a product, is the fp32 column sum of the unrounded dout, as in the fp32 table. */
void cpu_matmul_backward_bf16(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                              const float *w, size_t n, size_t ic, size_t oc) {
    backward_products_bf16(dinp, dw, dout, inp, w, 1.0f, n, ic, oc);
    if (db)
        cpu_matmul_backward(NULL, NULL, db, dout, inp, w, n, ic, oc);
}

void cpu_matmul_scaled_forward_bf16(float *out, const float *inp, const float *w, float s, size_t n,
                                    size_t ic, size_t oc) {
    if (n == 0 || oc == 0)
        return;
    float *ri = cpu_bf16_copy(inp, n * ic), *fresh;
    cpu_matmul_scaled_forward(out, ri, rounded_weight(w, oc * ic, &fresh), s, n, ic, oc);
    free(ri);
    free(fresh);
}

void cpu_matmul_scaled_backward_bf16(float *dinp, float *dw, const float *dout, const float *inp,
                                     const float *w, float s, size_t n, size_t ic, size_t oc) {
    backward_products_bf16(dinp, dw, dout, inp, w, s, n, ic, oc);
}

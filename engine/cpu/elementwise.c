/* elementwise: activations, adds and embedding lookups. Each element depends on its own inputs only, so any
 * split over threads gives the same bits; the per-element math is engine/kernels.h's, shared with CUDA. */
#include "engine/cpu/cpu.h"
#include "engine/kernels.h"

#include <string.h>

struct ew {
    float *o1, *o2;
    const float *a, *b, *c;
    const int32_t *tok;
    size_t c_len; /* embedding row length */
    size_t n;
};

static void gelu_fwd(void *ctx, size_t begin, size_t end) {
    const struct ew *e = ctx;
    for (size_t i = begin; i < end; i++)
        e->o1[i] = kernel_gelu(e->a[i]);
}
static void gelu_bwd(void *ctx, size_t begin, size_t end) {
    const struct ew *e = ctx; /* a = dout, b = inp */
    for (size_t i = begin; i < end; i++)
        e->o1[i] += e->a[i] * kernel_gelu_grad(e->b[i]);
}
static void quick_gelu_fwd(void *ctx, size_t begin, size_t end) {
    const struct ew *e = ctx;
    for (size_t i = begin; i < end; i++)
        e->o1[i] = kernel_quick_gelu(e->a[i]);
}
static void quick_gelu_bwd(void *ctx, size_t begin, size_t end) {
    const struct ew *e = ctx;
    for (size_t i = begin; i < end; i++)
        e->o1[i] += e->a[i] * kernel_quick_gelu_grad(e->b[i]);
}
static void swiglu_fwd(void *ctx, size_t begin, size_t end) {
    const struct ew *e = ctx; /* a = gate, b = up */
    for (size_t i = begin; i < end; i++)
        e->o1[i] = kernel_silu(e->a[i]) * e->b[i];
}
static void swiglu_bwd(void *ctx, size_t begin, size_t end) {
    const struct ew *e = ctx; /* o1 = dgate, o2 = dup, a = dout, b = gate, c = up */
    for (size_t i = begin; i < end; i++) {
        if (e->o1)
            e->o1[i] += e->a[i] * e->c[i] * kernel_silu_grad(e->b[i]);
        if (e->o2)
            e->o2[i] += e->a[i] * kernel_silu(e->b[i]);
    }
}
static void add_range(void *ctx, size_t begin, size_t end) {
    const struct ew *e = ctx;
    for (size_t i = begin; i < end; i++)
        e->o1[i] = e->a[i] + e->b[i];
}
static void accumulate_range(void *ctx, size_t begin, size_t end) {
    const struct ew *e = ctx;
    for (size_t i = begin; i < end; i++)
        e->o1[i] += e->a[i];
}

/* Transcendental activations cost ~20 multiply-adds an element, adds one. */
#define EW_COST_ACT 20
#define EW_COST_ADD 1

void cpu_gelu_forward(float *out, const float *inp, size_t n) {
    cpu_parallel(n, EW_COST_ACT, gelu_fwd, &(struct ew){.o1 = out, .a = inp});
}
void cpu_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    if (dinp)
        cpu_parallel(n, EW_COST_ACT, gelu_bwd, &(struct ew){.o1 = dinp, .a = dout, .b = inp});
}
void cpu_quick_gelu_forward(float *out, const float *inp, size_t n) {
    cpu_parallel(n, EW_COST_ACT, quick_gelu_fwd, &(struct ew){.o1 = out, .a = inp});
}
void cpu_quick_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    if (dinp)
        cpu_parallel(n, EW_COST_ACT, quick_gelu_bwd, &(struct ew){.o1 = dinp, .a = dout, .b = inp});
}
void cpu_swiglu_forward(float *out, const float *gate, const float *up, size_t n) {
    cpu_parallel(n, EW_COST_ACT, swiglu_fwd, &(struct ew){.o1 = out, .a = gate, .b = up});
}
void cpu_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up,
                         size_t n) {
    if (dgate || dup)
        cpu_parallel(n, 2 * EW_COST_ACT, swiglu_bwd,
                     &(struct ew){.o1 = dgate, .o2 = dup, .a = dout, .b = gate, .c = up});
}
void cpu_add(float *out, const float *a, const float *b, size_t n) {
    cpu_parallel(n, EW_COST_ADD, add_range, &(struct ew){.o1 = out, .a = a, .b = b});
}
void cpu_accumulate(float *dst, const float *src, size_t n) {
    if (dst)
        cpu_parallel(n, EW_COST_ADD, accumulate_range, &(struct ew){.o1 = dst, .a = src});
}

/* A negative token id (never a valid row) reads as a zero row rather than out of bounds; ids past the table
 * are the caller's to refuse (the op does not know the table's length). */
static void embedding_rows(void *ctx, size_t begin, size_t end) {
    const struct ew *e = ctx;
    size_t c = e->c_len;
    for (size_t i = begin; i < end; i++) {
        if (e->tok[i] < 0)
            memset(e->o1 + i * c, 0, c * sizeof(float));
        else
            memcpy(e->o1 + i * c, e->a + (size_t)e->tok[i] * c, c * sizeof(float));
    }
}

/* Split over columns: each column of the table takes its rows' gradients in row order from one thread. */
static void embedding_cols(void *ctx, size_t begin, size_t end) {
    const struct ew *e = ctx;
    size_t c = e->c_len;
    for (size_t i = 0; i < e->n; i++) {
        if (e->tok[i] < 0)
            continue;
        float *row = e->o1 + (size_t)e->tok[i] * c;
        const float *d = e->a + i * c;
        for (size_t j = begin; j < end; j++)
            row[j] += d[j];
    }
}

void cpu_embedding_forward(float *out, const int32_t *tok, const float *table, size_t n, size_t c) {
    cpu_parallel(n, c, embedding_rows, &(struct ew){.o1 = out, .a = table, .tok = tok, .c_len = c, .n = n});
}

void cpu_embedding_backward(float *dtable, const float *dout, const int32_t *tok, size_t n, size_t c) {
    if (dtable)
        cpu_parallel(c, n, embedding_cols,
                     &(struct ew){.o1 = dtable, .a = dout, .tok = tok, .c_len = c, .n = n});
}

/* cpu: what the CPU backend's files share: four-lane vector helpers, the thread pool that splits work over
 * rows, and the operations each file defines (ops.c puts them in the table of engine/ops.h). */
#ifndef PULSE_ENGINE_CPU_CPU_H
#define PULSE_ENGINE_CPU_CPU_H

#include "engine/kernels.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Four floats at a time (GCC/Clang vector extensions: SSE on x86-64, plain code elsewhere). Lane arithmetic
 * is IEEE's, rounded as the scalar operations are, and nothing is fused (-ffp-contract=off), so a loop body
 * written step for step like its scalar formula in engine/kernels.h gives that formula's bits. */
typedef float cpu_f4 __attribute__((vector_size(16)));
typedef int32_t cpu_i4 __attribute__((vector_size(16)));

static inline cpu_f4 cpu_splat4(float x) {
    return (cpu_f4){x, x, x, x};
}
static inline cpu_f4 cpu_load4(const float *p) {
    cpu_f4 v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void cpu_store4(float *p, cpu_f4 v) {
    memcpy(p, &v, sizeof v);
}
/* Lanes of a where mask (a comparison's all-ones / zero lanes) is set, else b's. */
static inline cpu_f4 cpu_select4(cpu_i4 mask, cpu_f4 a, cpu_f4 b) {
    return (cpu_f4)(((cpu_i4)a & mask) | ((cpu_i4)b & ~mask));
}

/* kernel_exp on four lanes, step for step. */
static inline cpu_f4 cpu_exp4(cpu_f4 x) {
    cpu_f4 lo = cpu_splat4(KERNEL_EXP_LO), hi = cpu_splat4(KERNEL_EXP_HI),
           round = cpu_splat4(KERNEL_EXP_ROUND);
    cpu_f4 c = cpu_select4(x > lo, x, lo);
    c = cpu_select4(c < hi, c, hi);
    cpu_f4 fn = (c * cpu_splat4(1.44269504088896341f) + round) - round;
    cpu_f4 r = c - fn * cpu_splat4(KERNEL_EXP_C1);
    r = r - fn * cpu_splat4(KERNEL_EXP_C2);
    cpu_f4 p = cpu_splat4(1.9875691500e-4f);
    p = p * r + cpu_splat4(1.3981999507e-3f);
    p = p * r + cpu_splat4(8.3334519073e-3f);
    p = p * r + cpu_splat4(4.1665795894e-2f);
    p = p * r + cpu_splat4(1.6666665459e-1f);
    p = p * r + cpu_splat4(5.0000001201e-1f);
    cpu_f4 poly = p * (r * r) + r + cpu_splat4(1.0f);
    cpu_i4 n = __builtin_convertvector(fn, cpu_i4);
    cpu_f4 y = poly * (cpu_f4)((n + 127) << 23);
    y = cpu_select4(x < lo, cpu_splat4(0.0f), y);
    y = cpu_select4(x > hi, cpu_splat4(INFINITY), y);
    return cpu_select4(x == x, y, x);
}

/* kernel_sigmoid on four lanes. */
static inline cpu_f4 cpu_sigmoid4(cpu_f4 x) {
    return cpu_splat4(1.0f) / (cpu_splat4(1.0f) + cpu_exp4(-x));
}

/* sum_j a[j] b[j] as four running sums (element j into sum j % 4) combined in a fixed order, then the tail in
 * order: the grouping depends on n alone, never on the thread count. */
static inline float cpu_dot(const float *a, const float *b, size_t n) {
    cpu_f4 acc = cpu_splat4(0.0f);
    size_t j = 0;
    for (; j + 4 <= n; j += 4)
        acc += cpu_load4(a + j) * cpu_load4(b + j);
    float s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (; j < n; j++)
        s += a[j] * b[j];
    return s;
}

/* The most threads the pool will run, whatever the caller asks for. */
#define CPU_MAX_THREADS 64

/* The thread count of the CPU table (its `threads` field, or the count ops_cpu_follow points at, clamped to
 * 1..CPU_MAX_THREADS). */
int cpu_threads(void);

/* The "cpu-bf16" table (engine/precision.c's ops_precision) when table is the CPU table or that twin itself,
 * else NULL (ops.c). */
struct ops;
const struct ops *cpu_ops_bf16(const struct ops *table);

/* Work on items [begin, end) of a parallel loop. */
typedef void (*cpu_range_fn)(void *ctx, size_t begin, size_t end);

/* Runs fn over items [0, n), split into up to cpu_threads() contiguous ranges, each run by one thread;
 * returns when all are done. `cost` is the rough work per item (in multiply-adds): small loops run on the
 * caller's thread alone. Callers make every item's result independent of which range it falls in, so the
 * split (which depends on the thread count) never changes a bit. */
void cpu_parallel(size_t n, size_t cost, cpu_range_fn fn, void *ctx);

/* matmul.c */
void cpu_matmul_forward(float *out, const float *inp, const float *w, const float *b, size_t n, size_t ic,
                        size_t oc);
void cpu_matmul_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                         const float *w, size_t n, size_t ic, size_t oc);
void cpu_matmul_scaled_forward(float *out, const float *inp, const float *w, float s, size_t n, size_t ic,
                               size_t oc);
void cpu_matmul_scaled_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                                float s, size_t n, size_t ic, size_t oc);
/* The same with both inputs of every product rounded to bf16 (fp32 accumulation; the "cpu-bf16" table). */
void cpu_matmul_forward_bf16(float *out, const float *inp, const float *w, const float *b, size_t n,
                             size_t ic, size_t oc);
void cpu_matmul_backward_bf16(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                              const float *w, size_t n, size_t ic, size_t oc);
void cpu_matmul_scaled_forward_bf16(float *out, const float *inp, const float *w, float s, size_t n,
                                    size_t ic, size_t oc);
void cpu_matmul_scaled_backward_bf16(float *dinp, float *dw, const float *dout, const float *inp,
                                     const float *w, float s, size_t n, size_t ic, size_t oc);
/* ops weights_frozen: the bf16 table's rounded copy of w (kept in fp32: the CPU has no bf16 products, so
 * it saves the rounding per call, not memory); the fp32 table's does nothing; weights_forget, both tables'.
 */
void cpu_weights_frozen_bf16(const float *w, size_t n);
void cpu_weights_frozen(const float *w, size_t n);
void cpu_weights_forget(const float *p, size_t n);
/* What the copies hold (tests: a forgotten or freed model leaves none). */
size_t cpu_weights_frozen_bytes(void);
/* x[n] rounded to bf16 (kernel_bf16_round, the CUDA backend's rounding) into fresh memory the caller frees:
 * the operand copies of the bf16 tables' products (kept as fp32 values). */
float *cpu_bf16_copy(const float *x, size_t n);

/* norms.c */
void cpu_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                           const float *b, size_t n, size_t c, float eps);
void cpu_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                            const float *w, const float *mean, const float *rstd, size_t n, size_t c);
void cpu_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, size_t n, size_t c,
                         float eps);
void cpu_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                          const float *rstd, size_t n, size_t c);

/* attention.c */
void cpu_rope_forward(float *x, const int32_t *pos, size_t b, size_t t, size_t nh, size_t hs, float theta);
void cpu_rope_backward(float *dx, const int32_t *pos, size_t b, size_t t, size_t nh, size_t hs, float theta);
void cpu_attention_forward(float *out, float *probs, const float *q, const float *k, const float *v,
                           const int32_t *len, int causal, size_t b, size_t t, size_t nh, size_t hs);
void cpu_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *probs,
                            const float *q, const float *k, const float *v, size_t b, size_t t, size_t nh,
                            size_t hs);
/* The same with both inputs of every product rounded to bf16 (fp32 accumulation; the "cpu-bf16" table): q, k
 * for the scores, the probabilities and v for the output; backward, dout and v for dP, dS and k for dq, dS
 * and q for dk, the probabilities and dout for dv. The softmax and its backward stay fp32. */
void cpu_attention_forward_bf16(float *out, float *probs, const float *q, const float *k, const float *v,
                                const int32_t *len, int causal, size_t b, size_t t, size_t nh, size_t hs);
void cpu_attention_backward_bf16(float *dq, float *dk, float *dv, const float *dout, const float *probs,
                                 const float *q, const float *k, const float *v, size_t b, size_t t,
                                 size_t nh, size_t hs);
/* attention_decode.c */
void cpu_attention_decode(float *out, const float *q, const float *k, const float *v, const int32_t *len,
                          size_t b, size_t cap, size_t nh, size_t kvh, size_t hs);

/* elementwise.c */
void cpu_gelu_forward(float *out, const float *inp, size_t n);
void cpu_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n);
void cpu_quick_gelu_forward(float *out, const float *inp, size_t n);
void cpu_quick_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n);
void cpu_swiglu_forward(float *out, const float *gate, const float *up, size_t n);
void cpu_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up,
                         size_t n);
void cpu_add(float *out, const float *a, const float *b, size_t n);
void cpu_accumulate(float *dst, const float *src, size_t n);
void cpu_copy(float *dst, const float *src, size_t n);
void cpu_zero(float *x, size_t n);
void cpu_bf16_widen(float *dst, const uint16_t *src, size_t n);
void cpu_bf16_round(uint16_t *dst, const float *src, size_t n);
void cpu_add_scaled(float *out, const float *x, float s, size_t n);
void cpu_dropout(float *out, const float *in, size_t n, uint64_t key, float p, float scale, int accumulate);
void cpu_repeat_kv(float *out, const float *in, size_t n, size_t kvh, size_t rep, size_t hs);
void cpu_repeat_kv_backward(float *din, const float *dout, size_t n, size_t kvh, size_t rep, size_t hs);
void cpu_embedding_forward(float *out, const int32_t *tok, const float *table, size_t n, size_t c);
void cpu_embedding_backward(float *dtable, const float *dout, const int32_t *tok, size_t n, size_t c);

/* losses.c */
void cpu_logprob_forward(float *logp, const float *logits, const int32_t *target, const uint8_t *mask,
                         size_t n, size_t v);
void cpu_logprob_backward(float *dlogits, const float *dlogp, const float *logits, const int32_t *target,
                          const uint8_t *mask, size_t n, size_t v);
void cpu_kl_forward(float *kl, const float *logits, const float *ref_logits, const uint8_t *mask, size_t n,
                    size_t v);
void cpu_kl_backward(float *dlogits, const float *dkl, const float *logits, const float *ref_logits,
                     const uint8_t *mask, size_t n, size_t v);

/* optim.c */
double cpu_sum_squares(const float *x, size_t n);
void cpu_scale(float *x, float s, size_t n);
void cpu_adamw(float *param, const float *grad, float *m, float *v, size_t n, float lr, float beta1,
               float beta2, float eps, float weight_decay, int t);

#endif

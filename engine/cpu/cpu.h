/* cpu: what the CPU backend's files share: the thread pool that splits work over rows, and the operations
 * each file defines (ops.c puts them in the table of engine/ops.h). */
#ifndef PULSE_ENGINE_CPU_CPU_H
#define PULSE_ENGINE_CPU_CPU_H

#include <stddef.h>
#include <stdint.h>

/* The most threads the pool will run, whatever the caller asks for. */
#define CPU_MAX_THREADS 64

/* The thread count of the CPU table (its `threads` field, clamped to 1..CPU_MAX_THREADS). */
int cpu_threads(void);

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

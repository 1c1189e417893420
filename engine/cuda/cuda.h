/* cuda: what the CUDA backend's files share: the operations each file defines (ops.cu puts them in the table
 * of engine/ops.h), the cuBLAS handle, scratch memory, and the error check every operation ends with.
 *
 * Memory: every tensor an operation receives was allocated by engine/mem.c in CUDA mode, i.e. CUDA managed
 * memory, so the model code may still read and write it on the host, after an ops sync (engine/ops.h).
 * Operations queue their kernels on the legacy default stream and return (cuda_done checks the launch
 * only), so the GPU runs them back to back in call order; a host read of a kernel's output, or a host write
 * a queued kernel could still read, waits for sync first. Scratch an operation needs for itself comes from
 * cuda_scratch (plain device memory, reused by later operations: the stream's order keeps that safe).
 *
 * Determinism: no floating-point atomics anywhere. Reductions have a fixed tree that depends on the shapes
 * only, and cuBLAS is bit-reproducible on one GPU model (its documented guarantee), so two runs give the same
 * bits. The per-element math is engine/kernels.h's, compiled as __host__ __device__ with --fmad=false, so
 * those steps round exactly as on the CPU (library functions such as erff and expf may differ by an ulp). */
#ifndef PULSE_ENGINE_CUDA_CUDA_H
#define PULSE_ENGINE_CUDA_CUDA_H

#include "engine/ops.h"

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Ends every operation: checks the launch (and, under PULSE_CUDA_SYNC=1, waits for the device); on a CUDA
 * error prints one line and exits (status 1, a stage failed): an engine error mid-stage leaves the store as
 * it was. The line names the operation that noticed the error, which with operations queued may be a later
 * one than the kernel at fault (it says so; PULSE_CUDA_SYNC=1 makes every operation wait, so the name is
 * exact). */
void cuda_done(const char *op);
/* Checks a CUDA runtime call / a cuBLAS call the same way. */
void cuda_check(cudaError_t e, const char *what);
void cuda_blas_check(cublasStatus_t s, const char *what);
/* The process's cuBLAS handle (created on first use, pedantic fp32 math: no TF32). */
cublasHandle_t cuda_blas(void);
/* A second handle for the bf16 products (matmul.cu's *_bf16), in cuBLAS's default math mode: pedantic math,
 * which the fp32 handle needs against TF32, would keep bf16 products off the tensor cores. */
cublasHandle_t cuda_blas_bf16(void);
/* Device scratch of at least `bytes`, slot 0..CUDA_SCRATCH_SLOTS-1; valid until the next call for the same
 * slot with a larger size. Operations use distinct slots for buffers they need at the same time. */
#define CUDA_SCRATCH_SLOTS 8
void *cuda_scratch(int slot, size_t bytes);

/* src[n] rounded to bf16 (kernel_bf16_round, as the CPU's bf16 tables round) into scratch `slot`, queued on
 * the stream: an operand of the bf16 tables' products, valid until that slot's next use. Slots 2 and 3 are
 * the matmuls', 2 to 7 attention's (no operation runs inside another). */
const __nv_bfloat16 *cuda_bf16_copy(int slot, const float *src, size_t n, const char *op);

/* The "cuda-bf16" table when table is the CUDA table or that twin itself, else NULL (ops.cu;
 * engine/precision.c asks). */
const struct ops *cuda_ops_bf16(const struct ops *table);

/* Grid size for n items at `threads` per block (at least 1, capped so the grid stays legal; kernels loop
 * with a grid stride). */
unsigned cuda_blocks(size_t n, unsigned threads);

/* matmul.cu */
void cuda_matmul_forward(float *out, const float *inp, const float *w, const float *b, size_t n, size_t ic,
                         size_t oc);
void cuda_matmul_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                          const float *w, size_t n, size_t ic, size_t oc);
void cuda_matmul_scaled_forward(float *out, const float *inp, const float *w, float s, size_t n, size_t ic,
                                size_t oc);
void cuda_matmul_scaled_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                                 float s, size_t n, size_t ic, size_t oc);
/* The same with both inputs of every product rounded to bf16 (cuda_bf16_copy) into scratch slots 2 and 3,
 * then cublasGemmEx with fp32 accumulation and fp32 outputs: the "cuda-bf16" table. */
void cuda_matmul_forward_bf16(float *out, const float *inp, const float *w, const float *b, size_t n,
                              size_t ic, size_t oc);
void cuda_matmul_backward_bf16(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                               const float *w, size_t n, size_t ic, size_t oc);
void cuda_matmul_scaled_forward_bf16(float *out, const float *inp, const float *w, float s, size_t n,
                                     size_t ic, size_t oc);
void cuda_matmul_scaled_backward_bf16(float *dinp, float *dw, const float *dout, const float *inp,
                                      const float *w, float s, size_t n, size_t ic, size_t oc);

/* The bf16 table's lora_down_forward / _backward (engine/ops.h): the dropout mask applied as x is rounded to
 * bf16 (one pass, no fp32 dropout(x): xs is unused); the fp32 table composes them (engine/lora_down.h). */
void cuda_lora_down_forward_bf16(float *h, float *xs, const float *x, const float *a, struct ops_dropout d,
                                 size_t n, size_t ic, size_t r);
void cuda_lora_down_backward_bf16(float *dx, float *da, float *xs, float *dxs, const float *dh,
                                  const float *x, const float *a, struct ops_dropout d, size_t n, size_t ic,
                                  size_t r);

/* ops weights_frozen and weights_forget (matmul.cu): the bf16 table keeps a bf16 copy of each frozen weight
 * in device memory and moves the fp32 weight's pages to the host; the fp32 table's weights_frozen does
 * nothing; both forget. */
void cuda_weights_frozen_bf16(const float *w, size_t n);
void cuda_weights_frozen(const float *w, size_t n);
void cuda_weights_forget(const float *p, size_t n);

/* norms.cu */
void cuda_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                            const float *b, size_t n, size_t c, float eps);
void cuda_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                             const float *w, const float *mean, const float *rstd, size_t n, size_t c);
void cuda_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, size_t n, size_t c,
                          float eps);
void cuda_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                           const float *rstd, size_t n, size_t c);

/* attention.cu */
void cuda_rope_forward(float *x, const int32_t *pos, size_t b, size_t t, size_t nh, size_t hs, float theta);
void cuda_rope_backward(float *dx, const int32_t *pos, size_t b, size_t t, size_t nh, size_t hs, float theta);
void cuda_attention_forward(float *out, float *probs, const float *q, const float *k, const float *v,
                            const int32_t *len, int causal, size_t b, size_t t, size_t nh, size_t hs);
void cuda_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *probs,
                             const float *q, const float *k, const float *v, size_t b, size_t t, size_t nh,
                             size_t hs);
/* The same with both inputs of every product rounded to bf16 (the "cuda-bf16" table; which operands:
 * engine/cpu/cpu.h's cpu_attention_forward_bf16), strided-batched cublasGemmEx with fp32 accumulation. */
void cuda_attention_forward_bf16(float *out, float *probs, const float *q, const float *k, const float *v,
                                 const int32_t *len, int causal, size_t b, size_t t, size_t nh, size_t hs);
void cuda_attention_backward_bf16(float *dq, float *dk, float *dv, const float *dout, const float *probs,
                                  const float *q, const float *k, const float *v, size_t b, size_t t,
                                  size_t nh, size_t hs);
/* attention_decode.cu */
void cuda_attention_decode(float *out, const float *q, const float *k, const float *v, const int32_t *len,
                           size_t b, size_t cap, size_t nh, size_t kvh, size_t hs);

/* elementwise.cu */
void cuda_gelu_forward(float *out, const float *inp, size_t n);
void cuda_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n);
void cuda_quick_gelu_forward(float *out, const float *inp, size_t n);
void cuda_quick_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n);
void cuda_swiglu_forward(float *out, const float *gate, const float *up, size_t n);
void cuda_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up,
                          size_t n);
void cuda_add(float *out, const float *a, const float *b, size_t n);
void cuda_accumulate(float *dst, const float *src, size_t n);
void cuda_add_scaled(float *out, const float *x, float s, size_t n);
void cuda_dropout(float *out, const float *in, size_t n, uint64_t key, float p, float scale, int accumulate);
void cuda_repeat_kv(float *out, const float *in, size_t n, size_t kvh, size_t rep, size_t hs);
void cuda_repeat_kv_backward(float *din, const float *dout, size_t n, size_t kvh, size_t rep, size_t hs);
void cuda_embedding_forward(float *out, const int32_t *tok, const float *table, size_t n, size_t c);
void cuda_embedding_backward(float *dtable, const float *dout, const int32_t *tok, size_t n, size_t c);
void cuda_copy(float *dst, const float *src, size_t n);
void cuda_zero(float *x, size_t n);
void cuda_bf16_widen(float *dst, const uint16_t *src, size_t n);
void cuda_bf16_round(uint16_t *dst, const float *src, size_t n);

/* losses.cu */
void cuda_logprob_forward(float *logp, const float *logits, const int32_t *target, const uint8_t *mask,
                          size_t n, size_t v);
void cuda_logprob_backward(float *dlogits, const float *dlogp, const float *logits, const int32_t *target,
                           const uint8_t *mask, size_t n, size_t v);
void cuda_kl_forward(float *kl, const float *logits, const float *ref_logits, const uint8_t *mask, size_t n,
                     size_t v);
void cuda_kl_backward(float *dlogits, const float *dkl, const float *logits, const float *ref_logits,
                      const uint8_t *mask, size_t n, size_t v);

/* optim.cu */
double cuda_sum_squares(const float *x, size_t n);
void cuda_scale(float *x, float s, size_t n);
void cuda_adamw(float *param, const float *grad, float *m, float *v, size_t n, float lr, float beta1,
                float beta2, float eps, float weight_decay, int t);

#ifdef __cplusplus
}
#endif

#endif

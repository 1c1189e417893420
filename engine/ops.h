/* ops: the operation table every model computation goes through. One table per backend (cpu/ and cuda/), so
 * the model code (llava.c) is written once. All tensors are fp32 (or, for a table that takes it, bf16 storage
 * behind a float-indexed range: ops_takes_bf16), row-major, in memory from engine/mem.h;
 * shapes are given as counts. Linear layers use PyTorch's layout: weight [OC, IC], out = inp @ weight^T +
 * bias.
 *
 * Conventions, llm.c style: every forward writes its outputs (and whatever its backward needs, e.g.
 * LayerNorm's mean and rstd); every backward ACCUMULATES (+=) into the gradient buffers it is given, so
 * several uses of one tensor add up; a NULL gradient pointer means "not needed" (frozen weights get none).
 * Reductions have a fixed order that does not depend on the thread count: results are bit-identical for any
 * `threads`.
 *
 * Operations may return before their work is done (the CUDA backend queues them on one stream, in order, so
 * each still sees its predecessors' results). Host code that reads or writes memory an operation may touch
 * calls `sync` first; the model's entry points (engine/llava.h) end with one, so their callers never need
 * to. mem_alloc and mem_free are safe at any time. PULSE_CHECK_OPS=1 finds a missing sync on the CPU. */
#ifndef PULSE_ENGINE_OPS_H
#define PULSE_ENGINE_OPS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The `dropout` operation's key, p and scale, for the operations that apply its mask. */
struct ops_dropout {
    uint64_t key;
    float p, scale;
};

struct ops {
    const char *name;

    /* out[N,OC] = inp[N,IC] @ w[OC,IC]^T (+ b[OC] if b). */
    void (*matmul_forward)(float *out, const float *inp, const float *w, const float *b, size_t n, size_t ic,
                           size_t oc);
    /* dinp += dout @ w; dw += dout^T @ inp; db += sum over rows of dout (each may be NULL). */
    void (*matmul_backward)(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                            const float *w, size_t n, size_t ic, size_t oc);
    /* A scaled product added in (LoRA's up projection, without a scratch output or a pass for the scale):
     * out[N,OC] += s * (inp[N,IC] @ w[OC,IC]^T); backward: dinp += s * dout @ w, dw += s * dout^T @ inp
     * (either may be NULL). The scale is applied with the product (BLAS's alpha), not rounded separately. */
    void (*matmul_scaled_forward)(float *out, const float *inp, const float *w, float s, size_t n, size_t ic,
                                  size_t oc);
    void (*matmul_scaled_backward)(float *dinp, float *dw, const float *dout, const float *inp,
                                   const float *w, float s, size_t n, size_t ic, size_t oc);

    /* LayerNorm over the last dim c (biased variance, as PyTorch): saves mean[n], rstd[n]. */
    void (*layernorm_forward)(float *out, float *mean, float *rstd, const float *inp, const float *w,
                              const float *b, size_t n, size_t c, float eps);
    void (*layernorm_backward)(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                               const float *w, const float *mean, const float *rstd, size_t n, size_t c);
    /* RMSNorm (LLaMA): out = inp * rstd * w, rstd = 1/sqrt(mean(inp^2) + eps); saves rstd[n]. */
    void (*rmsnorm_forward)(float *out, float *rstd, const float *inp, const float *w, size_t n, size_t c,
                            float eps);
    void (*rmsnorm_backward)(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                             const float *rstd, size_t n, size_t c);

    /* Rotary embedding in place on x[B,T,NH,HS] (HF LLaMA's rotate_half convention: pairs (i, i+HS/2)), at
     * positions pos[B*T], frequencies theta^(-2i/HS). backward applies the inverse rotation to dx in place.
     */
    void (*rope_forward)(float *x, const int32_t *pos, size_t b, size_t t, size_t nh, size_t hs, float theta);
    void (*rope_backward)(float *dx, const int32_t *pos, size_t b, size_t t, size_t nh, size_t hs,
                          float theta);

    /* Multi-head attention, q, k, v, out [B,T,NH,HS]; probs[B,NH,T,T] saved for backward. causal != 0 masks
     * future keys; len[b] (may be NULL = all valid) masks keys at positions >= len[b] (right padding); a
     * query with no valid key (a padding row) gets zeros. Scale 1/sqrt(HS). */
    void (*attention_forward)(float *out, float *probs, const float *q, const float *k, const float *v,
                              const int32_t *len, int causal, size_t b, size_t t, size_t nh, size_t hs);
    void (*attention_backward)(float *dq, float *dk, float *dv, const float *dout, const float *probs,
                               const float *q, const float *k, const float *v, size_t b, size_t t, size_t nh,
                               size_t hs);
    /* Attention of one new query per sequence against cached keys and values (generation, engine/generate.h):
     * q, out [B,NH,HS]; k, v [B,CAP,KVH,HS], KVH dividing NH (query head h reads kv head h / (NH/KVH), as
     * transformers' repeat_kv pairs them). Sequence b attends to its first len[b] cached positions (clamped
     * to 0..CAP; none: out is zeros); the query is the newest of them, so nothing later needs masking. Scale
     * 1/sqrt(HS). Inference only: nothing is saved for a backward. */
    void (*attention_decode)(float *out, const float *q, const float *k, const float *v, const int32_t *len,
                             size_t b, size_t cap, size_t nh, size_t kvh, size_t hs);

    /* Elementwise activations over n values. */
    void (*gelu_forward)(float *out, const float *inp, size_t n); /* exact: x/2 (1 + erf(x/sqrt 2)) */
    void (*gelu_backward)(float *dinp, const float *dout, const float *inp, size_t n);
    void (*quick_gelu_forward)(float *out, const float *inp, size_t n); /* x sigmoid(1.702 x) (CLIP) */
    void (*quick_gelu_backward)(float *dinp, const float *dout, const float *inp, size_t n);
    /* SwiGLU: out = silu(gate) * up. */
    void (*swiglu_forward)(float *out, const float *gate, const float *up, size_t n);
    void (*swiglu_backward)(float *dgate, float *dup, const float *dout, const float *gate, const float *up,
                            size_t n);
    /* out[i] = a[i] + b[i]; backward of an add is a copy-accumulate: dst[i] += src[i]. */
    void (*add)(float *out, const float *a, const float *b, size_t n);
    void (*accumulate)(float *dst, const float *src, size_t n);
    /* dst[i] = src[i]; x[i] = 0. Data movement inside the backend's memory goes through these, so the model
     * code never walks device memory on the host. */
    void (*copy)(float *dst, const float *src, size_t n);
    void (*zero)(float *x, size_t n);

    /* bf16 storage (engine/mem.h): dst[i] = src[i] widened to fp32 (exact), or rounded to bf16
     * (kernel_bf16_round: nearest even, NaN stays NaN). The pointers are the storage itself (mem_bf16_at),
     * never a bf16 range: these two are how a table that takes bf16 storage (engine/act16.c) reads and writes
     * it. */
    void (*bf16_widen)(float *dst, const uint16_t *src, size_t n);
    void (*bf16_round)(uint16_t *dst, const float *src, size_t n);

    /* out[i] += x[i] * s: a scaled term added in (LoRA's y += (h B^T) scale), the same bits as scale then
     * accumulate. */
    void (*add_scaled)(float *out, const float *x, float s, size_t n);
    /* Dropout with a counter-based mask: element e is dropped when rng_uniform(key, e) < p (engine/rng.h),
     * kept ones are multiplied by `scale`; the result is written to out (accumulate == 0) or added to it. The
     * mask is a pure function of (key, e), so a backward draws it again instead of storing it. */
    void (*dropout)(float *out, const float *in, size_t n, uint64_t key, float p, float scale,
                    int accumulate);
    /* LoRA's down projection of its dropped-out input (PEFT's lora_A(dropout(x))) as one operation, so that
     * a backend may fuse the mask into what it does with x anyway (the CUDA bf16 table: the rounding of the
     * product's operand, with no fp32 pass for the mask). forward: h[N,R] = dropout(x)[N,IC] @ a[R,IC]^T;
     * backward: da += dh^T @ dropout(x) and dx += dropout(dh @ a) with the same mask (either may be NULL).
     * `d` is `dropout`'s mask and scale. xs and dxs are [N,IC] scratch, their contents afterwards
     * unspecified, overlapping neither each other nor any other argument. Every table gives the bits of
     * engine/lora_down.h's composition of dropout, zero and the table's own matmul. */
    void (*lora_down_forward)(float *h, float *xs, const float *x, const float *a, struct ops_dropout d,
                              size_t n, size_t ic, size_t r);
    void (*lora_down_backward)(float *dx, float *da, float *xs, float *dxs, const float *dh, const float *x,
                               const float *a, struct ops_dropout d, size_t n, size_t ic, size_t r);

    /* Grouped-query attention's key and value heads, repeated for the attention op (transformers' repeat_kv):
     * out[N, KVH*REP, HS] head h of row i = in[N, KVH, HS] head h / REP of row i. backward: din head j of row
     * i += the REP heads it served, in order (j*REP first). */
    void (*repeat_kv)(float *out, const float *in, size_t n, size_t kvh, size_t rep, size_t hs);
    void (*repeat_kv_backward)(float *din, const float *dout, size_t n, size_t kvh, size_t rep, size_t hs);

    /* Rows of a table: out[n,C] = table[tok[i]]; backward: dtable[tok[i]] += dout[i] (in row order). */
    void (*embedding_forward)(float *out, const int32_t *tok, const float *table, size_t n, size_t c);
    void (*embedding_backward)(float *dtable, const float *dout, const int32_t *tok, size_t n, size_t c);

    /* Per position i of n: logp[i] = log softmax(logits[i])[target[i]] (0 where mask[i] == 0). */
    void (*logprob_forward)(float *logp, const float *logits, const int32_t *target, const uint8_t *mask,
                            size_t n, size_t v);
    /* dlogits[i] += dlogp[i] * (onehot(target) - softmax(logits[i])) where mask[i]. */
    void (*logprob_backward)(float *dlogits, const float *dlogp, const float *logits, const int32_t *target,
                             const uint8_t *mask, size_t n, size_t v);
    /* kl[i] = KL(p_ref || p) = sum_v p_ref (log p_ref - log p), from logits (0 where mask[i] == 0). */
    void (*kl_forward)(float *kl, const float *logits, const float *ref_logits, const uint8_t *mask, size_t n,
                       size_t v);
    /* dlogits[i] += dkl[i] * (softmax(logits[i]) - softmax(ref_logits[i])) where mask[i]. */
    void (*kl_backward)(float *dlogits, const float *dkl, const float *logits, const float *ref_logits,
                        const uint8_t *mask, size_t n, size_t v);

    /* Waits until every operation called so far has finished: the host may then touch their memory. */
    void (*sync)(void);

    /* Sum of squares of x, in a fixed order (global gradient norm). It returns a value, so it waits like
     * sync. */
    double (*sum_squares)(const float *x, size_t n);
    /* In place x *= s. */
    void (*scale)(float *x, float s, size_t n);
    /* AdamW (decoupled weight decay, PyTorch's formula) at step t >= 1, bias-corrected. */
    void (*adamw)(float *param, const float *grad, float *m, float *v, size_t n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, int t);

    /* Frozen weights (engine/wcache.h). weights_frozen: the caller promises that w[n], a product's weight,
     * keeps its values until a weights_forget covers it; a bf16 table then makes its rounded operand once
     * and its products read that copy (the same values, so the same bits), and on CUDA it also moves the
     * fp32 weight's pages to host memory, so the GPU holds the frozen weights in bf16 only. The fp32 tables
     * ignore it. weights_forget: drops the copies of every weight in [p, p + n floats) (they are about to
     * change or be freed, on the host: it waits like sync); every table of a backend drops that backend's
     * copies. */
    void (*weights_frozen)(const float *w, size_t n);
    void (*weights_forget)(const float *p, size_t n);

    int threads; /* set by the caller before use */
    /* 1: the tensor arguments may be bf16 storage (a "bf16-act" table, engine/act16.h); a table that wraps
     * another (ops_checked, bench's profiler) copies its inner table's. Read through ops_takes_bf16. */
    int bf16_storage;
};

/* The CPU backend (engine/cpu/): OpenBLAS for matmuls, the rest in C, split over `threads` threads by rows.
 */
const struct ops *ops_cpu(int threads);
/* From now on the CPU table's thread count is *count, read at every operation (NULL: its own again), so
 * another process may change it while a stage runs: run --jobs gives a job the threads that others freed.
 * Every operation gives the same bits for any count, so this changes speed only. */
void ops_cpu_follow(const int *count);
/* The CUDA backend (engine/cuda/): cuBLAS for matmuls, kernels for the rest, on the first visible GPU. Only
 * in builds with PULSE_HAVE_CUDA; callers go through ops_select. */
const struct ops *ops_cuda(void);
/* The table for a device name ("cpu" or "cuda"), with engine/mem.c switched to that device's memory; NULL
 * with err_set when the device cannot be used (no CUDA build, no GPU). */
const struct ops *ops_select(const char *device, int threads);
/* A table that checks every non-NULL pointer argument against engine/mem.h's registry of live blocks for the
 * extent the operation reads or writes, then forwards the call to `inner`; a pointer outside memory from
 * mem_alloc (a malloc'd buffer, which the GPU cannot reach, or one too short) prints one line and aborts.
 * Turns the registry on (mem_check_enable). One at a time; ops_select returns it under PULSE_CHECK_OPS=1. */
const struct ops *ops_checked(const struct ops *inner);
/* The table ops_checked wraps, when `table` is that wrapper; else NULL. */
const struct ops *ops_checked_inner(const struct ops *table);
/* The table for a precision: "fp32" returns table itself; "bf16" its backend's bf16 twin (name "cpu-bf16" /
 * "cuda-bf16"), identical but for the matmul, attention, lora_down and weights_frozen entries, whose products
 * round both inputs to bf16 (kernel_bf16_round: nearest even) and accumulate in fp32, into fp32 outputs with
 * the usual accumulate rules (the bias and db stay fp32; attention's softmax and its backward stay fp32, and
 * round the probabilities and dS only where a product reads them; attention_decode, generation's, stays
 * fp32). Activations, gradients and optimizer state stay fp32, every other operation too. "bf16-act": that
 * twin taking bf16 storage too (engine/act16.h; names "cpu-bf16-act" / "cuda-bf16-act"), so a model may keep
 * its activations in bf16 (llava_set_act_bf16). NULL with err_set for another precision or a table that is
 * not a backend's. */
const struct ops *ops_precision(const struct ops *table, const char *precision);
/* 1 when table takes bf16 storage (engine/mem.h mem_alloc_bf16) in its tensor arguments: a "bf16-act" table,
 * or a wrapper around one. Every other table reads a bf16 range as the floats it is not (it faults). */
int ops_takes_bf16(const struct ops *table);

#ifdef __cplusplus
}
#endif

#endif

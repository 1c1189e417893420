/* act16: operation tables that take bf16 storage (engine/mem.h, mem_alloc_bf16), each around a backend's
 * table (ops_precision "bf16-act": around its bf16 twin).
 *
 * What an operation on bf16 storage computes is defined here, once for every backend: the inner table's
 * operation on the arguments' values widened to fp32 (exact), with everything it writes rounded back to bf16
 * once, at the end (kernel_bf16_round: nearest even). An output the operation accumulates into (a backward's
 * +=) is read widened too, so `dx += g` on bf16 storage is round(widen(dx) + g): one rounding per call, as
 * a kernel that loads bf16, adds in fp32 and stores bf16 has. Arguments in fp32 memory pass through as they
 * are, so one call may mix both (LoRA's fp32 matrices and scratch, the fp32 logits and norm statistics).
 *
 * Here that is done with passes over fp32 scratch: each bf16 argument the operation reads or writes is
 * widened into a slot of its own (the inner table's bf16_widen), the inner operation runs on the slots, and
 * each written one is rounded back (bf16_round). Written arguments are widened first too, so an operation
 * that writes only part of its output (attention's probabilities outside the valid box) leaves the rest as it
 * was. That costs passes a kernel reading bf16 directly would not make; such a kernel must give these bits.
 *
 * A backend may do better: the entries of its `native` table (act16_wrap) take bf16 storage themselves (on
 * CUDA nearly all: cuBLAS reads bf16 operands and writes bf16 outputs, the kernels read and write either
 * kind) and replace the wrapper's. They must give the definition's bits (up to summation order, as any two
 * backends).
 *
 * The tables' functions take no table argument, so each inner table gets an instance of its own (its inner
 * table and its scratch slots), reached through trampolines the X-macro below writes per instance. */
#include "engine/act16.h"
#include "engine/mem.h"

#include "util/err.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define A16_SLOTS 8     /* the most tensor arguments of one operation (attention_backward's) */
#define A16_INSTANCES 4 /* inner tables per process: a backend's bf16 twin, the other backend's, tests' */

struct a16 {
    const struct ops *in;
    struct ops table;
    char name[48];
    float *slot[A16_SLOTS];
    size_t cap[A16_SLOTS];
};

/* One call's arguments: the written bf16 ones, to round back when the inner operation has run. */
struct call {
    struct a16 *a;
    int used;
    int nback;
    struct {
        uint16_t *store;
        const float *tmp;
        size_t n;
    } back[A16_SLOTS];
};

/* Slot `i` of at least n floats. Growing it frees the old one after a sync: queued work may still use it. */
static float *slot(struct a16 *a, int i, size_t n) {
    if (n > a->cap[i]) {
        a->in->sync();
        mem_free(a->slot[i]);
        a->slot[i] = mem_alloc(n, sizeof(float));
        a->cap[i] = n;
    }
    return a->slot[i];
}

/* p's n values as fp32 for the inner call: p itself when it is fp32 memory (or NULL, or n == 0), else its
 * storage widened into the call's next slot. */
static float *widened(struct call *c, const float *p, size_t n) {
    uint16_t *store = p && n ? mem_bf16_at(p, NULL) : NULL;
    if (!store)
        return (float *)p;
    if (c->used == A16_SLOTS) { /* a new operation with more tensor arguments than A16_SLOTS: a bug here */
        fprintf(stderr, "pulse-pipe: act16: more than %d bf16 arguments in one operation\n", A16_SLOTS);
        abort();
    }
    float *tmp = slot(c->a, c->used++, n);
    c->a->in->bf16_widen(tmp, store, n);
    return tmp;
}

/* An argument the operation writes: widened like an input, and rounded back by done(). */
static float *written(struct call *c, float *p, size_t n) {
    float *tmp = widened(c, p, n);
    if (tmp != p) {
        c->back[c->nback].store = mem_bf16_at(p, NULL);
        c->back[c->nback].tmp = tmp;
        c->back[c->nback++].n = n;
    }
    return tmp;
}

static void done(struct call *c) {
    for (int i = 0; i < c->nback; i++)
        c->a->in->bf16_round(c->back[i].store, c->back[i].tmp, c->back[i].n);
}

#define CALL(a) struct call c_ = {.a = (a)}, *c = &c_

/* ---- the operations, each with its shapes as engine/ops.h gives them (and ops_check.c checks them) ---- */

static void a16_matmul_forward(struct a16 *a, float *out, const float *inp, const float *w, const float *b,
                               size_t n, size_t ic, size_t oc) {
    CALL(a);
    float *o = written(c, out, n * oc);
    a->in->matmul_forward(o, widened(c, inp, n * ic), widened(c, w, oc * ic), widened(c, b, oc), n, ic, oc);
    done(c);
}

static void a16_matmul_backward(struct a16 *a, float *dinp, float *dw, float *db, const float *dout,
                                const float *inp, const float *w, size_t n, size_t ic, size_t oc) {
    CALL(a);
    float *di = written(c, dinp, n * ic), *dW = written(c, dw, oc * ic), *dB = written(c, db, oc);
    const float *g = dinp || dw || db ? widened(c, dout, n * oc) : dout;
    const float *x = dw ? widened(c, inp, n * ic) : inp, *W = dinp ? widened(c, w, oc * ic) : w;
    a->in->matmul_backward(di, dW, dB, g, x, W, n, ic, oc);
    done(c);
}

static void a16_matmul_scaled_forward(struct a16 *a, float *out, const float *inp, const float *w, float s,
                                      size_t n, size_t ic, size_t oc) {
    CALL(a);
    float *o = written(c, out, n * oc);
    a->in->matmul_scaled_forward(o, widened(c, inp, n * ic), widened(c, w, oc * ic), s, n, ic, oc);
    done(c);
}

static void a16_matmul_scaled_backward(struct a16 *a, float *dinp, float *dw, const float *dout,
                                       const float *inp, const float *w, float s, size_t n, size_t ic,
                                       size_t oc) {
    CALL(a);
    float *di = written(c, dinp, n * ic), *dW = written(c, dw, oc * ic);
    const float *g = dinp || dw ? widened(c, dout, n * oc) : dout;
    const float *x = dw ? widened(c, inp, n * ic) : inp, *W = dinp ? widened(c, w, oc * ic) : w;
    a->in->matmul_scaled_backward(di, dW, g, x, W, s, n, ic, oc);
    done(c);
}

static void a16_layernorm_forward(struct a16 *a, float *out, float *mean, float *rstd, const float *inp,
                                  const float *w, const float *b, size_t n, size_t cc, float eps) {
    CALL(a);
    float *o = written(c, out, n * cc), *mu = written(c, mean, n), *rs = written(c, rstd, n);
    a->in->layernorm_forward(o, mu, rs, widened(c, inp, n * cc), widened(c, w, cc), widened(c, b, cc), n, cc,
                             eps);
    done(c);
}

static void a16_layernorm_backward(struct a16 *a, float *dinp, float *dw, float *db, const float *dout,
                                   const float *inp, const float *w, const float *mean, const float *rstd,
                                   size_t n, size_t cc) {
    CALL(a);
    float *di = written(c, dinp, n * cc), *dW = written(c, dw, cc), *dB = written(c, db, cc);
    int any = dinp || dw || db;
    const float *g = any ? widened(c, dout, n * cc) : dout, *x = any ? widened(c, inp, n * cc) : inp;
    const float *mu = any ? widened(c, mean, n) : mean, *rs = any ? widened(c, rstd, n) : rstd;
    a->in->layernorm_backward(di, dW, dB, g, x, dinp ? widened(c, w, cc) : w, mu, rs, n, cc);
    done(c);
}

static void a16_rmsnorm_forward(struct a16 *a, float *out, float *rstd, const float *inp, const float *w,
                                size_t n, size_t cc, float eps) {
    CALL(a);
    float *o = written(c, out, n * cc), *rs = written(c, rstd, n);
    a->in->rmsnorm_forward(o, rs, widened(c, inp, n * cc), widened(c, w, cc), n, cc, eps);
    done(c);
}

static void a16_rmsnorm_backward(struct a16 *a, float *dinp, float *dw, const float *dout, const float *inp,
                                 const float *w, const float *rstd, size_t n, size_t cc) {
    CALL(a);
    float *di = written(c, dinp, n * cc), *dW = written(c, dw, cc);
    int any = dinp || dw;
    const float *g = any ? widened(c, dout, n * cc) : dout, *x = any ? widened(c, inp, n * cc) : inp;
    a->in->rmsnorm_backward(di, dW, g, x, dinp ? widened(c, w, cc) : w, any ? widened(c, rstd, n) : rstd, n,
                            cc);
    done(c);
}

static void a16_rope_forward(struct a16 *a, float *x, const int32_t *pos, size_t b, size_t t, size_t nh,
                             size_t hs, float theta) {
    CALL(a);
    a->in->rope_forward(written(c, x, b * t * nh * hs), pos, b, t, nh, hs, theta);
    done(c);
}

static void a16_rope_backward(struct a16 *a, float *dx, const int32_t *pos, size_t b, size_t t, size_t nh,
                              size_t hs, float theta) {
    CALL(a);
    a->in->rope_backward(written(c, dx, b * t * nh * hs), pos, b, t, nh, hs, theta);
    done(c);
}

static void a16_attention_forward(struct a16 *a, float *out, float *probs, const float *q, const float *k,
                                  const float *v, const int32_t *len, int causal, size_t b, size_t t,
                                  size_t nh, size_t hs) {
    CALL(a);
    size_t x = b * t * nh * hs;
    float *o = written(c, out, x), *p = written(c, probs, b * nh * t * t);
    a->in->attention_forward(o, p, widened(c, q, x), widened(c, k, x), widened(c, v, x), len, causal, b, t,
                             nh, hs);
    done(c);
}

static void a16_attention_backward(struct a16 *a, float *dq, float *dk, float *dv, const float *dout,
                                   const float *probs, const float *q, const float *k, const float *v,
                                   size_t b, size_t t, size_t nh, size_t hs) {
    CALL(a);
    size_t x = b * t * nh * hs;
    float *gq = written(c, dq, x), *gk = written(c, dk, x), *gv = written(c, dv, x);
    int any = dq || dk || dv;
    const float *g = any ? widened(c, dout, x) : dout, *p = any ? widened(c, probs, b * nh * t * t) : probs;
    /* the CPU's bf16 twin rounds q, k and v for any gradient: all three are read whenever one is asked for */
    const float *V = any ? widened(c, v, x) : v, *Q = any ? widened(c, q, x) : q,
                *K = any ? widened(c, k, x) : k;
    a->in->attention_backward(gq, gk, gv, g, p, Q, K, V, b, t, nh, hs);
    done(c);
}

static void a16_attention_decode(struct a16 *a, float *out, const float *q, const float *k, const float *v,
                                 const int32_t *len, size_t b, size_t cap, size_t nh, size_t kvh, size_t hs) {
    CALL(a);
    size_t x = b * nh * hs, cache = b * cap * kvh * hs;
    float *o = written(c, out, x);
    a->in->attention_decode(o, widened(c, q, x), widened(c, k, cache), widened(c, v, cache), len, b, cap, nh,
                            kvh, hs);
    done(c);
}

/* The elementwise operations of one output and one or two inputs over n values. */
#define A16_UNARY(name)                                                                                      \
    static void a16_##name(struct a16 *a, float *out, const float *inp, size_t n) {                          \
        CALL(a);                                                                                             \
        float *o = written(c, out, n);                                                                       \
        a->in->name(o, widened(c, inp, n), n);                                                               \
        done(c);                                                                                             \
    }
#define A16_BINARY(name)                                                                                     \
    static void a16_##name(struct a16 *a, float *out, const float *x, const float *y, size_t n) {            \
        CALL(a);                                                                                             \
        float *o = written(c, out, n);                                                                       \
        a->in->name(o, o ? widened(c, x, n) : x, o ? widened(c, y, n) : y, n);                               \
        done(c);                                                                                             \
    }
A16_UNARY(gelu_forward)
A16_UNARY(quick_gelu_forward)
A16_UNARY(accumulate)
A16_UNARY(copy)
A16_BINARY(gelu_backward)
A16_BINARY(quick_gelu_backward)
A16_BINARY(swiglu_forward)
A16_BINARY(add)

static void a16_swiglu_backward(struct a16 *a, float *dgate, float *dup, const float *dout, const float *gate,
                                const float *up, size_t n) {
    CALL(a);
    float *dg = written(c, dgate, n), *du = written(c, dup, n);
    int any = dgate || dup;
    a->in->swiglu_backward(dg, du, any ? widened(c, dout, n) : dout, any ? widened(c, gate, n) : gate,
                           any ? widened(c, up, n) : up, n);
    done(c);
}

static void a16_zero(struct a16 *a, float *x, size_t n) {
    CALL(a);
    a->in->zero(written(c, x, n), n);
    done(c);
}

static void a16_bf16_widen(struct a16 *a, float *dst, const uint16_t *src, size_t n) {
    a->in->bf16_widen(dst, src, n);
}

static void a16_bf16_round(struct a16 *a, uint16_t *dst, const float *src, size_t n) {
    a->in->bf16_round(dst, src, n);
}

static void a16_add_scaled(struct a16 *a, float *out, const float *x, float s, size_t n) {
    CALL(a);
    float *o = written(c, out, n);
    a->in->add_scaled(o, widened(c, x, n), s, n);
    done(c);
}

static void a16_dropout(struct a16 *a, float *out, const float *in, size_t n, uint64_t key, float p,
                        float scale, int accumulate) {
    CALL(a);
    float *o = written(c, out, n);
    a->in->dropout(o, widened(c, in, n), n, key, p, scale, accumulate);
    done(c);
}

static void a16_lora_down_forward(struct a16 *a, float *h, float *xs, const float *x, const float *w,
                                  struct ops_dropout d, size_t n, size_t ic, size_t r) {
    CALL(a);
    float *o = written(c, h, n * r), *s = written(c, xs, n * ic);
    a->in->lora_down_forward(o, s, widened(c, x, n * ic), widened(c, w, r * ic), d, n, ic, r);
    done(c);
}

static void a16_lora_down_backward(struct a16 *a, float *dx, float *da, float *xs, float *dxs,
                                   const float *dh, const float *x, const float *w, struct ops_dropout d,
                                   size_t n, size_t ic, size_t r) {
    CALL(a);
    float *gx = written(c, dx, n * ic), *gw = written(c, da, r * ic);
    int any = dx || da;
    float *s = any ? written(c, xs, n * ic) : xs, *ds = dx ? written(c, dxs, n * ic) : dxs;
    const float *g = any ? widened(c, dh, n * r) : dh, *X = any ? widened(c, x, n * ic) : x;
    a->in->lora_down_backward(gx, gw, s, ds, g, X, dx ? widened(c, w, r * ic) : w, d, n, ic, r);
    done(c);
}

static void a16_repeat_kv(struct a16 *a, float *out, const float *in, size_t n, size_t kvh, size_t rep,
                          size_t hs) {
    CALL(a);
    float *o = written(c, out, n * kvh * rep * hs);
    a->in->repeat_kv(o, widened(c, in, n * kvh * hs), n, kvh, rep, hs);
    done(c);
}

static void a16_repeat_kv_backward(struct a16 *a, float *din, const float *dout, size_t n, size_t kvh,
                                   size_t rep, size_t hs) {
    CALL(a);
    float *d = written(c, din, n * kvh * hs);
    a->in->repeat_kv_backward(d, d ? widened(c, dout, n * kvh * rep * hs) : dout, n, kvh, rep, hs);
    done(c);
}

/* The table's rows a call reads or writes: through the largest id it indexes. The ids are host memory the
 * host filled before the operations that read them (mem_host_reads: the model's token block), so they are
 * read here without waiting for the queue. */
static size_t indexed_rows(const int32_t *tok, size_t n) {
    size_t rows = 0;
    for (size_t i = 0; i < n; i++)
        if (tok[i] >= 0 && (size_t)tok[i] + 1 > rows)
            rows = (size_t)tok[i] + 1;
    return rows;
}

static void a16_embedding_forward(struct a16 *a, float *out, const int32_t *tok, const float *table, size_t n,
                                  size_t cc) {
    CALL(a);
    float *o = written(c, out, n * cc);
    const float *tb = mem_bf16_at(table, NULL) ? widened(c, table, indexed_rows(tok, n) * cc) : table;
    a->in->embedding_forward(o, tok, tb, n, cc);
    done(c);
}

static void a16_embedding_backward(struct a16 *a, float *dtable, const float *dout, const int32_t *tok,
                                   size_t n, size_t cc) {
    CALL(a);
    float *dt = mem_bf16_at(dtable, NULL) ? written(c, dtable, indexed_rows(tok, n) * cc) : dtable;
    a->in->embedding_backward(dt, dt ? widened(c, dout, n * cc) : dout, tok, n, cc);
    done(c);
}

/* The losses: [n, v] logits, one value per row. */
static void a16_logprob_forward(struct a16 *a, float *logp, const float *logits, const int32_t *target,
                                const uint8_t *mask, size_t n, size_t v) {
    CALL(a);
    float *o = written(c, logp, n);
    a->in->logprob_forward(o, widened(c, logits, n * v), target, mask, n, v);
    done(c);
}

static void a16_logprob_backward(struct a16 *a, float *dlogits, const float *dlogp, const float *logits,
                                 const int32_t *target, const uint8_t *mask, size_t n, size_t v) {
    CALL(a);
    float *d = written(c, dlogits, n * v);
    a->in->logprob_backward(d, d ? widened(c, dlogp, n) : dlogp, d ? widened(c, logits, n * v) : logits,
                            target, mask, n, v);
    done(c);
}

static void a16_kl_forward(struct a16 *a, float *kl, const float *logits, const float *ref,
                           const uint8_t *mask, size_t n, size_t v) {
    CALL(a);
    float *o = written(c, kl, n);
    a->in->kl_forward(o, widened(c, logits, n * v), widened(c, ref, n * v), mask, n, v);
    done(c);
}

static void a16_kl_backward(struct a16 *a, float *dlogits, const float *dkl, const float *logits,
                            const float *ref, const uint8_t *mask, size_t n, size_t v) {
    CALL(a);
    float *d = written(c, dlogits, n * v);
    a->in->kl_backward(d, d ? widened(c, dkl, n) : dkl, d ? widened(c, logits, n * v) : logits,
                       d ? widened(c, ref, n * v) : ref, mask, n, v);
    done(c);
}

static double a16_sum_squares(struct a16 *a, const float *x, size_t n) {
    CALL(a);
    return a->in->sum_squares(widened(c, x, n), n);
}

static void a16_scale(struct a16 *a, float *x, float s, size_t n) {
    CALL(a);
    a->in->scale(written(c, x, n), s, n);
    done(c);
}

static void a16_adamw(struct a16 *a, float *param, const float *grad, float *m, float *v, size_t n, float lr,
                      float beta1, float beta2, float eps, float weight_decay, int t) {
    CALL(a);
    float *p = written(c, param, n), *mm = written(c, m, n), *vv = written(c, v, n);
    a->in->adamw(p, widened(c, grad, n), mm, vv, n, lr, beta1, beta2, eps, weight_decay, t);
    done(c);
}

static void a16_sync(struct a16 *a) {
    a->in->sync();
}

static void a16_weights_frozen(struct a16 *a, const float *w, size_t n) {
    if (!mem_bf16_at(w, NULL)) /* a bf16 weight is already its own bf16 copy */
        a->in->weights_frozen(w, n);
}

static void a16_weights_forget(struct a16 *a, const float *p, size_t n) {
    a->in->weights_forget(p, n);
}

/* ---- the instances: each entry of instance K calls its a16_ function with &inst[K] ---- */

#define A16_OPS(X)                                                                                           \
    X(void, matmul_forward,                                                                                  \
      (float *o, const float *x, const float *w, const float *b, size_t n, size_t i, size_t k), o, x, w, b,  \
      n, i, k)                                                                                               \
    X(void, matmul_backward,                                                                                 \
      (float *di, float *dw, float *db, const float *g, const float *x, const float *w, size_t n, size_t i,  \
       size_t k),                                                                                            \
      di, dw, db, g, x, w, n, i, k)                                                                          \
    X(void, matmul_scaled_forward,                                                                           \
      (float *o, const float *x, const float *w, float s, size_t n, size_t i, size_t k), o, x, w, s, n, i,   \
      k)                                                                                                     \
    X(void, matmul_scaled_backward,                                                                          \
      (float *di, float *dw, const float *g, const float *x, const float *w, float s, size_t n, size_t i,    \
       size_t k),                                                                                            \
      di, dw, g, x, w, s, n, i, k)                                                                           \
    X(void, layernorm_forward,                                                                               \
      (float *o, float *mu, float *rs, const float *x, const float *w, const float *b, size_t n, size_t cc,  \
       float e),                                                                                             \
      o, mu, rs, x, w, b, n, cc, e)                                                                          \
    X(void, layernorm_backward,                                                                              \
      (float *di, float *dw, float *db, const float *g, const float *x, const float *w, const float *mu,     \
       const float *rs, size_t n, size_t cc),                                                                \
      di, dw, db, g, x, w, mu, rs, n, cc)                                                                    \
    X(void, rmsnorm_forward,                                                                                 \
      (float *o, float *rs, const float *x, const float *w, size_t n, size_t cc, float e), o, rs, x, w, n,   \
      cc, e)                                                                                                 \
    X(void, rmsnorm_backward,                                                                                \
      (float *di, float *dw, const float *g, const float *x, const float *w, const float *rs, size_t n,      \
       size_t cc),                                                                                           \
      di, dw, g, x, w, rs, n, cc)                                                                            \
    X(void, rope_forward, (float *x, const int32_t *p, size_t b, size_t t, size_t h, size_t s, float th), x, \
      p, b, t, h, s, th)                                                                                     \
    X(void, rope_backward, (float *x, const int32_t *p, size_t b, size_t t, size_t h, size_t s, float th),   \
      x, p, b, t, h, s, th)                                                                                  \
    X(void, attention_forward,                                                                               \
      (float *o, float *p, const float *q, const float *k, const float *v, const int32_t *l, int cz,         \
       size_t b, size_t t, size_t h, size_t s),                                                              \
      o, p, q, k, v, l, cz, b, t, h, s)                                                                      \
    X(void, attention_backward,                                                                              \
      (float *dq, float *dk, float *dv, const float *g, const float *p, const float *q, const float *k,      \
       const float *v, size_t b, size_t t, size_t h, size_t s),                                              \
      dq, dk, dv, g, p, q, k, v, b, t, h, s)                                                                 \
    X(void, attention_decode,                                                                                \
      (float *o, const float *q, const float *k, const float *v, const int32_t *l, size_t b, size_t cp,      \
       size_t h, size_t kh, size_t s),                                                                       \
      o, q, k, v, l, b, cp, h, kh, s)                                                                        \
    X(void, gelu_forward, (float *o, const float *x, size_t n), o, x, n)                                     \
    X(void, gelu_backward, (float *d, const float *g, const float *x, size_t n), d, g, x, n)                 \
    X(void, quick_gelu_forward, (float *o, const float *x, size_t n), o, x, n)                               \
    X(void, quick_gelu_backward, (float *d, const float *g, const float *x, size_t n), d, g, x, n)           \
    X(void, swiglu_forward, (float *o, const float *g, const float *u, size_t n), o, g, u, n)                \
    X(void, swiglu_backward,                                                                                 \
      (float *dg, float *du, const float *d, const float *g, const float *u, size_t n), dg, du, d, g, u, n)  \
    X(void, add, (float *o, const float *x, const float *y, size_t n), o, x, y, n)                           \
    X(void, accumulate, (float *d, const float *s, size_t n), d, s, n)                                       \
    X(void, copy, (float *d, const float *s, size_t n), d, s, n)                                             \
    X(void, zero, (float *x, size_t n), x, n)                                                                \
    X(void, bf16_widen, (float *d, const uint16_t *s, size_t n), d, s, n)                                    \
    X(void, bf16_round, (uint16_t * d, const float *s, size_t n), d, s, n)                                   \
    X(void, add_scaled, (float *o, const float *x, float s, size_t n), o, x, s, n)                           \
    X(void, dropout, (float *o, const float *x, size_t n, uint64_t key, float p, float s, int acc), o, x, n, \
      key, p, s, acc)                                                                                        \
    X(void, lora_down_forward,                                                                               \
      (float *h, float *xs, const float *x, const float *w, struct ops_dropout d, size_t n, size_t i,        \
       size_t r),                                                                                            \
      h, xs, x, w, d, n, i, r)                                                                               \
    X(void, lora_down_backward,                                                                              \
      (float *dx, float *da, float *xs, float *dxs, const float *dh, const float *x, const float *w,         \
       struct ops_dropout d, size_t n, size_t i, size_t r),                                                  \
      dx, da, xs, dxs, dh, x, w, d, n, i, r)                                                                 \
    X(void, repeat_kv, (float *o, const float *x, size_t n, size_t kh, size_t r, size_t s), o, x, n, kh, r,  \
      s)                                                                                                     \
    X(void, repeat_kv_backward, (float *d, const float *g, size_t n, size_t kh, size_t r, size_t s), d, g,   \
      n, kh, r, s)                                                                                           \
    X(void, embedding_forward, (float *o, const int32_t *t, const float *tb, size_t n, size_t cc), o, t, tb, \
      n, cc)                                                                                                 \
    X(void, embedding_backward, (float *dt, const float *g, const int32_t *t, size_t n, size_t cc), dt, g,   \
      t, n, cc)                                                                                              \
    X(void, logprob_forward,                                                                                 \
      (float *o, const float *x, const int32_t *t, const uint8_t *m, size_t n, size_t v), o, x, t, m, n, v)  \
    X(void, logprob_backward,                                                                                \
      (float *d, const float *g, const float *x, const int32_t *t, const uint8_t *m, size_t n, size_t v), d, \
      g, x, t, m, n, v)                                                                                      \
    X(void, kl_forward, (float *o, const float *x, const float *r, const uint8_t *m, size_t n, size_t v), o, \
      x, r, m, n, v)                                                                                         \
    X(void, kl_backward,                                                                                     \
      (float *d, const float *g, const float *x, const float *r, const uint8_t *m, size_t n, size_t v), d,   \
      g, x, r, m, n, v)                                                                                      \
    X(double, sum_squares, (const float *x, size_t n), x, n)                                                 \
    X(void, scale, (float *x, float s, size_t n), x, s, n)                                                   \
    X(void, adamw,                                                                                           \
      (float *p, const float *g, float *m, float *v, size_t n, float lr, float b1, float b2, float e,        \
       float wd, int t),                                                                                     \
      p, g, m, v, n, lr, b1, b2, e, wd, t)                                                                   \
    X(void, weights_frozen, (const float *w, size_t n), w, n)                                                \
    X(void, weights_forget, (const float *p, size_t n), p, n)

static struct a16 inst[A16_INSTANCES];

#define A16_TRAMPOLINE(K, ret, name, params, ...)                                                            \
    static ret i##K##_##name params {                                                                        \
        return a16_##name(&inst[K], __VA_ARGS__);                                                            \
    }
#define A16_ENTRY(K, ret, name, ...) .name = i##K##_##name,
/* sync has no arguments to forward, so it is written out */
#define A16_INSTANCE(K)                                                                                      \
    A16_OPS(A16_TRAMPOLINE_##K)                                                                              \
    static void i##K##_sync(void) {                                                                          \
        a16_sync(&inst[K]);                                                                                  \
    }                                                                                                        \
    static const struct ops table##K = {A16_OPS(A16_ENTRY_##K).sync = i##K##_sync};
#define A16_TRAMPOLINE_0(...) A16_TRAMPOLINE(0, __VA_ARGS__)
#define A16_TRAMPOLINE_1(...) A16_TRAMPOLINE(1, __VA_ARGS__)
#define A16_TRAMPOLINE_2(...) A16_TRAMPOLINE(2, __VA_ARGS__)
#define A16_TRAMPOLINE_3(...) A16_TRAMPOLINE(3, __VA_ARGS__)
#define A16_ENTRY_0(...) A16_ENTRY(0, __VA_ARGS__)
#define A16_ENTRY_1(...) A16_ENTRY(1, __VA_ARGS__)
#define A16_ENTRY_2(...) A16_ENTRY(2, __VA_ARGS__)
#define A16_ENTRY_3(...) A16_ENTRY(3, __VA_ARGS__)
A16_INSTANCE(0)
A16_INSTANCE(1)
A16_INSTANCE(2)
A16_INSTANCE(3)
static const struct ops *const tables[A16_INSTANCES] = {&table0, &table1, &table2, &table3};

/* Entries the backend's own native table has take bf16 storage themselves: they replace the wrapper's. */
#define A16_NATIVE(ret, name, ...)                                                                           \
    if (native->name)                                                                                        \
        t->name = native->name;

static void take_native(struct ops *t, const struct ops *native) {
    A16_OPS(A16_NATIVE)
    if (native->sync)
        t->sync = native->sync;
}

const struct ops *act16_wrap(const struct ops *inner, const struct ops *native) {
    for (int k = 0; k < A16_INSTANCES; k++)
        if (!inst[k].in || inst[k].in == inner) {
            inst[k].in = inner;
            inst[k].table = *tables[k];
            if (native)
                take_native(&inst[k].table, native);
            snprintf(inst[k].name, sizeof inst[k].name, "%s-act", inner->name ? inner->name : "?");
            inst[k].table.name = inst[k].name;
            inst[k].table.threads = inner->threads;
            inst[k].table.bf16_storage = 1;
            return &inst[k].table;
        }
    err_set("act16: more than %d tables take bf16 storage in one process", A16_INSTANCES);
    return NULL;
}

const struct ops *act16_inner(const struct ops *table) {
    for (int k = 0; k < A16_INSTANCES; k++)
        if (inst[k].in && table == &inst[k].table)
            return inst[k].in;
    return NULL;
}

size_t act16_scratch_bytes(void) {
    size_t sum = 0;
    for (int k = 0; k < A16_INSTANCES; k++)
        for (int i = 0; i < A16_SLOTS; i++)
            sum += inst[k].cap[i] * sizeof(float);
    return sum;
}

/* ops_check: an operation table that checks, before forwarding each call to another table, that every pointer
 * it is given lies inside memory from mem_alloc for the whole extent the operation reads or writes. A plain
 * malloc'd buffer works on the CPU but is an illegal address on the GPU (the CUDA backend needs managed
 * memory), and a short buffer is an overrun on either; PULSE_CHECK_OPS=1 (ops_select) finds both on the CPU.
 *
 * Extents are engine/ops.h's shapes, taken exactly as the backends read them: a NULL pointer (an optional
 * argument, a gradient that is not needed) and an empty extent are not checked, and an input a backward reads
 * only for one gradient (matmul_backward reads w only for dinp, inp only for dw) is checked only when that
 * gradient is asked for. The embedding table's row count is not passed: the check covers rows 0 through the
 * largest token id the call indexes (negative ids index none), read from tok once tok itself has passed.
 *
 * The fence (engine/mem.h): every extent that passes is open while the operation runs and closed when it
 * returns, until the next sync (or sum_squares, weights_forget, which wait like it): host code that touches
 * it in between faults with one line, where on a GPU it would race a queued kernel. */
#include "engine/mem.h"
#include "engine/ops.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static const struct ops *inner;
static struct ops checked;

/* Every extent that passed check() is open while the operation runs (the CPU's operations are host code),
 * then closed behind it: host code touching it before the next sync faults, as it would race the GPU. */
#define RUN(call) ((call), mem_check_queued())

/* a * b, saturating at SIZE_MAX: an extent too large to exist fails the check instead of wrapping around. */
static size_t mul(size_t a, size_t b) {
    return b && a > SIZE_MAX / b ? SIZE_MAX : a * b;
}
static size_t f32(size_t n) {
    return mul(n, sizeof(float));
}
static size_t i32(size_t n) {
    return mul(n, sizeof(int32_t));
}

/* A bad pointer is a bug in the caller, not bad input: one line, then abort() for a core and a backtrace. */
static void check(const char *op, const char *name, const void *p, size_t bytes) {
    if (!p || bytes == 0)
        return;
    if (mem_owns(p, bytes)) {
        mem_check_touch(p, bytes);
        return;
    }
    fprintf(stderr,
            "pulse-pipe: ops check: %s: argument %s (%zu bytes at %p) is not inside memory from mem_alloc\n",
            op, name, bytes, p);
    abort();
}

/* Rows of an embedding table the call indexes: the largest non-negative id + 1 (0 when none is). */
static size_t indexed_rows(const int32_t *tok, size_t n) {
    size_t rows = 0; /* tok passed check(): its pages are open */
    for (size_t i = 0; tok && i < n; i++)
        if (tok[i] >= 0 && (size_t)tok[i] + 1 > rows)
            rows = (size_t)tok[i] + 1;
    return rows;
}

static void check_matmul_forward(float *out, const float *inp, const float *w, const float *b, size_t n,
                                 size_t ic, size_t oc) {
    const char *op = "matmul_forward";
    check(op, "out", out, f32(mul(n, oc)));
    check(op, "inp", inp, f32(mul(n, ic)));
    check(op, "w", w, f32(mul(oc, ic)));
    check(op, "b", b, f32(oc));
    RUN(inner->matmul_forward(out, inp, w, b, n, ic, oc));
}

/* A backward's two products: dinp from dout and w, dw from dout and inp; db (may be NULL) reads dout too. */
static void check_products(const char *op, const float *dinp, const float *dw, const float *db,
                           const float *dout, const float *inp, const float *w, size_t n, size_t ic,
                           size_t oc) {
    check(op, "dinp", dinp, f32(mul(n, ic)));
    check(op, "dw", dw, f32(mul(oc, ic)));
    check(op, "db", db, f32(oc));
    if (dinp || dw || db)
        check(op, "dout", dout, f32(mul(n, oc)));
    if (dw)
        check(op, "inp", inp, f32(mul(n, ic)));
    if (dinp)
        check(op, "w", w, f32(mul(oc, ic)));
}

static void check_matmul_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                                  const float *w, size_t n, size_t ic, size_t oc) {
    check_products("matmul_backward", dinp, dw, db, dout, inp, w, n, ic, oc);
    RUN(inner->matmul_backward(dinp, dw, db, dout, inp, w, n, ic, oc));
}

static void check_matmul_scaled_forward(float *out, const float *inp, const float *w, float s, size_t n,
                                        size_t ic, size_t oc) {
    const char *op = "matmul_scaled_forward";
    check(op, "out", out, f32(mul(n, oc)));
    check(op, "inp", inp, f32(mul(n, ic)));
    check(op, "w", w, f32(mul(oc, ic)));
    RUN(inner->matmul_scaled_forward(out, inp, w, s, n, ic, oc));
}

static void check_matmul_scaled_backward(float *dinp, float *dw, const float *dout, const float *inp,
                                         const float *w, float s, size_t n, size_t ic, size_t oc) {
    check_products("matmul_scaled_backward", dinp, dw, NULL, dout, inp, w, n, ic, oc);
    RUN(inner->matmul_scaled_backward(dinp, dw, dout, inp, w, s, n, ic, oc));
}

static void check_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                                    const float *b, size_t n, size_t c, float eps) {
    const char *op = "layernorm_forward";
    check(op, "out", out, f32(mul(n, c)));
    check(op, "mean", mean, f32(n));
    check(op, "rstd", rstd, f32(n));
    check(op, "inp", inp, f32(mul(n, c)));
    check(op, "w", w, f32(c));
    check(op, "b", b, f32(c));
    RUN(inner->layernorm_forward(out, mean, rstd, inp, w, b, n, c, eps));
}

static void check_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                                     const float *w, const float *mean, const float *rstd, size_t n,
                                     size_t c) {
    const char *op = "layernorm_backward";
    check(op, "dinp", dinp, f32(mul(n, c)));
    check(op, "dw", dw, f32(c));
    check(op, "db", db, f32(c));
    if (dinp || dw || db) {
        check(op, "dout", dout, f32(mul(n, c)));
        check(op, "inp", inp, f32(mul(n, c)));
        check(op, "mean", mean, f32(n));
        check(op, "rstd", rstd, f32(n));
    }
    if (dinp)
        check(op, "w", w, f32(c));
    RUN(inner->layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, n, c));
}

static void check_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, size_t n,
                                  size_t c, float eps) {
    const char *op = "rmsnorm_forward";
    check(op, "out", out, f32(mul(n, c)));
    check(op, "rstd", rstd, f32(n));
    check(op, "inp", inp, f32(mul(n, c)));
    check(op, "w", w, f32(c));
    RUN(inner->rmsnorm_forward(out, rstd, inp, w, n, c, eps));
}

static void check_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp,
                                   const float *w, const float *rstd, size_t n, size_t c) {
    const char *op = "rmsnorm_backward";
    check(op, "dinp", dinp, f32(mul(n, c)));
    check(op, "dw", dw, f32(c));
    if (dinp || dw) {
        check(op, "dout", dout, f32(mul(n, c)));
        check(op, "inp", inp, f32(mul(n, c)));
        check(op, "rstd", rstd, f32(n));
    }
    if (dinp)
        check(op, "w", w, f32(c));
    RUN(inner->rmsnorm_backward(dinp, dw, dout, inp, w, rstd, n, c));
}

static void check_rope(const char *op, const char *xname, const float *x, const int32_t *pos, size_t b,
                       size_t t, size_t nh, size_t hs) {
    check(op, xname, x, f32(mul(mul(mul(b, t), nh), hs)));
    check(op, "pos", pos, i32(mul(b, t)));
}

static void check_rope_forward(float *x, const int32_t *pos, size_t b, size_t t, size_t nh, size_t hs,
                               float theta) {
    check_rope("rope_forward", "x", x, pos, b, t, nh, hs);
    RUN(inner->rope_forward(x, pos, b, t, nh, hs, theta));
}

static void check_rope_backward(float *dx, const int32_t *pos, size_t b, size_t t, size_t nh, size_t hs,
                                float theta) {
    check_rope("rope_backward", "dx", dx, pos, b, t, nh, hs);
    RUN(inner->rope_backward(dx, pos, b, t, nh, hs, theta));
}

static void check_attention_forward(float *out, float *probs, const float *q, const float *k, const float *v,
                                    const int32_t *len, int causal, size_t b, size_t t, size_t nh,
                                    size_t hs) {
    const char *op = "attention_forward";
    size_t x = f32(mul(mul(mul(b, t), nh), hs));
    check(op, "out", out, x);
    check(op, "probs", probs, f32(mul(mul(mul(b, nh), t), t)));
    check(op, "q", q, x);
    check(op, "k", k, x);
    check(op, "v", v, x);
    check(op, "len", len, i32(b));
    RUN(inner->attention_forward(out, probs, q, k, v, len, causal, b, t, nh, hs));
}

static void check_attention_decode(float *out, const float *q, const float *k, const float *v,
                                   const int32_t *len, size_t b, size_t cap, size_t nh, size_t kvh,
                                   size_t hs) {
    const char *op = "attention_decode";
    size_t x = f32(mul(mul(b, nh), hs)), cache = f32(mul(mul(mul(b, cap), kvh), hs));
    check(op, "out", out, x);
    check(op, "q", q, x);
    check(op, "k", k, cache);
    check(op, "v", v, cache);
    check(op, "len", len, i32(b));
    RUN(inner->attention_decode(out, q, k, v, len, b, cap, nh, kvh, hs));
}

static void check_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *probs,
                                     const float *q, const float *k, const float *v, size_t b, size_t t,
                                     size_t nh, size_t hs) {
    const char *op = "attention_backward";
    size_t x = f32(mul(mul(mul(b, t), nh), hs));
    check(op, "dq", dq, x);
    check(op, "dk", dk, x);
    check(op, "dv", dv, x);
    if (dq || dk || dv) { /* dP = dout V^T feeds every gradient; dq reads k, dk reads q */
        check(op, "dout", dout, x);
        check(op, "probs", probs, f32(mul(mul(mul(b, nh), t), t)));
        check(op, "v", v, x);
    }
    if (dk)
        check(op, "q", q, x);
    if (dq)
        check(op, "k", k, x);
    RUN(inner->attention_backward(dq, dk, dv, dout, probs, q, k, v, b, t, nh, hs));
}

static void check_gelu_forward(float *out, const float *inp, size_t n) {
    check("gelu_forward", "out", out, f32(n));
    check("gelu_forward", "inp", inp, f32(n));
    RUN(inner->gelu_forward(out, inp, n));
}

static void check_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    if (dinp) {
        check("gelu_backward", "dinp", dinp, f32(n));
        check("gelu_backward", "dout", dout, f32(n));
        check("gelu_backward", "inp", inp, f32(n));
    }
    RUN(inner->gelu_backward(dinp, dout, inp, n));
}

static void check_quick_gelu_forward(float *out, const float *inp, size_t n) {
    check("quick_gelu_forward", "out", out, f32(n));
    check("quick_gelu_forward", "inp", inp, f32(n));
    RUN(inner->quick_gelu_forward(out, inp, n));
}

static void check_quick_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    if (dinp) {
        check("quick_gelu_backward", "dinp", dinp, f32(n));
        check("quick_gelu_backward", "dout", dout, f32(n));
        check("quick_gelu_backward", "inp", inp, f32(n));
    }
    RUN(inner->quick_gelu_backward(dinp, dout, inp, n));
}

static void check_swiglu_forward(float *out, const float *gate, const float *up, size_t n) {
    check("swiglu_forward", "out", out, f32(n));
    check("swiglu_forward", "gate", gate, f32(n));
    check("swiglu_forward", "up", up, f32(n));
    RUN(inner->swiglu_forward(out, gate, up, n));
}

static void check_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                                  const float *up, size_t n) {
    const char *op = "swiglu_backward";
    check(op, "dgate", dgate, f32(n));
    check(op, "dup", dup, f32(n));
    if (dgate || dup) { /* one sigmoid serves both gradients: all three inputs are read for either */
        check(op, "dout", dout, f32(n));
        check(op, "gate", gate, f32(n));
        check(op, "up", up, f32(n));
    }
    RUN(inner->swiglu_backward(dgate, dup, dout, gate, up, n));
}

static void check_add(float *out, const float *a, const float *b, size_t n) {
    check("add", "out", out, f32(n));
    check("add", "a", a, f32(n));
    check("add", "b", b, f32(n));
    RUN(inner->add(out, a, b, n));
}

static void check_accumulate(float *dst, const float *src, size_t n) {
    if (dst) {
        check("accumulate", "dst", dst, f32(n));
        check("accumulate", "src", src, f32(n));
    }
    RUN(inner->accumulate(dst, src, n));
}

static void check_copy(float *dst, const float *src, size_t n) {
    check("copy", "dst", dst, f32(n));
    check("copy", "src", src, f32(n));
    RUN(inner->copy(dst, src, n));
}

static void check_zero(float *x, size_t n) {
    check("zero", "x", x, f32(n));
    RUN(inner->zero(x, n));
}

static void check_bf16_widen(float *dst, const uint16_t *src, size_t n) {
    check("bf16_widen", "dst", dst, f32(n));
    check("bf16_widen", "src", src, mul(n, sizeof *src));
    RUN(inner->bf16_widen(dst, src, n));
}

static void check_bf16_round(uint16_t *dst, const float *src, size_t n) {
    check("bf16_round", "dst", dst, mul(n, sizeof *dst));
    check("bf16_round", "src", src, f32(n));
    RUN(inner->bf16_round(dst, src, n));
}

static void check_add_scaled(float *out, const float *x, float s, size_t n) {
    check("add_scaled", "out", out, f32(n));
    check("add_scaled", "x", x, f32(n));
    RUN(inner->add_scaled(out, x, s, n));
}

static void check_dropout(float *out, const float *in, size_t n, uint64_t key, float p, float scale,
                          int accumulate) {
    check("dropout", "out", out, f32(n));
    check("dropout", "in", in, f32(n));
    RUN(inner->dropout(out, in, n, key, p, scale, accumulate));
}

static void check_lora_down_forward(float *h, float *xs, const float *x, const float *a, struct ops_dropout d,
                                    size_t n, size_t ic, size_t r) {
    const char *op = "lora_down_forward";
    check(op, "h", h, f32(mul(n, r)));
    check(op, "xs", xs, f32(mul(n, ic)));
    check(op, "x", x, f32(mul(n, ic)));
    check(op, "a", a, f32(mul(r, ic)));
    RUN(inner->lora_down_forward(h, xs, x, a, d, n, ic, r));
}

static void check_lora_down_backward(float *dx, float *da, float *xs, float *dxs, const float *dh,
                                     const float *x, const float *a, struct ops_dropout d, size_t n,
                                     size_t ic, size_t r) {
    const char *op = "lora_down_backward";
    check(op, "dx", dx, f32(mul(n, ic)));
    check(op, "da", da, f32(mul(r, ic)));
    if (dx || da) {
        check(op, "xs", xs, f32(mul(n, ic)));
        check(op, "dh", dh, f32(mul(n, r)));
        check(op, "x", x, f32(mul(n, ic)));
    }
    if (dx) {
        check(op, "dxs", dxs, f32(mul(n, ic)));
        check(op, "a", a, f32(mul(r, ic)));
    }
    RUN(inner->lora_down_backward(dx, da, xs, dxs, dh, x, a, d, n, ic, r));
}

static void check_embedding_forward(float *out, const int32_t *tok, const float *table, size_t n, size_t c) {
    const char *op = "embedding_forward";
    check(op, "out", out, f32(mul(n, c)));
    check(op, "tok", tok, i32(n));
    if (c)
        check(op, "table", table, f32(mul(indexed_rows(tok, n), c)));
    RUN(inner->embedding_forward(out, tok, table, n, c));
}

static void check_embedding_backward(float *dtable, const float *dout, const int32_t *tok, size_t n,
                                     size_t c) {
    const char *op = "embedding_backward";
    if (dtable && c) {
        check(op, "dout", dout, f32(mul(n, c)));
        check(op, "tok", tok, i32(n));
        check(op, "dtable", dtable, f32(mul(indexed_rows(tok, n), c)));
    }
    RUN(inner->embedding_backward(dtable, dout, tok, n, c));
}

/* The four losses share their shapes: rows [n, v] of logits, one float, target and mask byte per row. v == 0
 * touches nothing (the backends return at once), nor does a backward without dlogits. */
static void check_loss(const char *op, const char *oname, const float *o, size_t obytes, const float *dlogp,
                       const float *logits, const float *ref, const int32_t *target, const uint8_t *mask,
                       size_t n, size_t v) {
    if (v == 0)
        return;
    check(op, oname, o, obytes);
    check(op, "dout", dlogp, f32(n));
    check(op, "logits", logits, f32(mul(n, v)));
    check(op, "ref_logits", ref, f32(mul(n, v)));
    check(op, "target", target, i32(n));
    check(op, "mask", mask, n);
}

static void check_logprob_forward(float *logp, const float *logits, const int32_t *target,
                                  const uint8_t *mask, size_t n, size_t v) {
    check_loss("logprob_forward", "logp", logp, f32(n), NULL, logits, NULL, target, mask, n, v);
    RUN(inner->logprob_forward(logp, logits, target, mask, n, v));
}

static void check_logprob_backward(float *dlogits, const float *dlogp, const float *logits,
                                   const int32_t *target, const uint8_t *mask, size_t n, size_t v) {
    if (dlogits)
        check_loss("logprob_backward", "dlogits", dlogits, f32(mul(n, v)), dlogp, logits, NULL, target, mask,
                   n, v);
    RUN(inner->logprob_backward(dlogits, dlogp, logits, target, mask, n, v));
}

static void check_kl_forward(float *kl, const float *logits, const float *ref_logits, const uint8_t *mask,
                             size_t n, size_t v) {
    check_loss("kl_forward", "kl", kl, f32(n), NULL, logits, ref_logits, NULL, mask, n, v);
    RUN(inner->kl_forward(kl, logits, ref_logits, mask, n, v));
}

static void check_kl_backward(float *dlogits, const float *dkl, const float *logits, const float *ref_logits,
                              const uint8_t *mask, size_t n, size_t v) {
    if (dlogits)
        check_loss("kl_backward", "dlogits", dlogits, f32(mul(n, v)), dkl, logits, ref_logits, NULL, mask, n,
                   v);
    RUN(inner->kl_backward(dlogits, dkl, logits, ref_logits, mask, n, v));
}

static double check_sum_squares(const float *x, size_t n) {
    check("sum_squares", "x", x, f32(n));
    double r = inner->sum_squares(x, n);
    mem_check_synced(); /* it waits like sync */
    return r;
}

static void check_scale(float *x, float s, size_t n) {
    check("scale", "x", x, f32(n));
    RUN(inner->scale(x, s, n));
}

static void check_adamw(float *param, const float *grad, float *m, float *v, size_t n, float lr, float beta1,
                        float beta2, float eps, float weight_decay, int t) {
    check("adamw", "param", param, f32(n));
    check("adamw", "grad", grad, f32(n));
    check("adamw", "m", m, f32(n));
    check("adamw", "v", v, f32(n));
    RUN(inner->adamw(param, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, t));
}

static void check_sync(void) {
    inner->sync();
    mem_check_synced();
}

static void check_repeat_kv(float *out, const float *in, size_t n, size_t kvh, size_t rep, size_t hs) {
    const char *op = "repeat_kv";
    check(op, "out", out, f32(mul(mul(n, kvh), mul(rep, hs))));
    check(op, "in", in, f32(mul(mul(n, kvh), hs)));
    RUN(inner->repeat_kv(out, in, n, kvh, rep, hs));
}

static void check_repeat_kv_backward(float *din, const float *dout, size_t n, size_t kvh, size_t rep,
                                     size_t hs) {
    const char *op = "repeat_kv_backward";
    check(op, "din", din, f32(mul(mul(n, kvh), hs)));
    if (din)
        check(op, "dout", dout, f32(mul(mul(n, kvh), mul(rep, hs))));
    RUN(inner->repeat_kv_backward(din, dout, n, kvh, rep, hs));
}

static void check_weights_frozen(const float *w, size_t n) {
    check("weights_frozen", "w", w, f32(n));
    RUN(inner->weights_frozen(w, n));
}

static void check_weights_forget(const float *p, size_t n) {
    check("weights_forget", "p", p, f32(n));
    inner->weights_forget(p, n);
    mem_check_synced(); /* it waits like sync */
}

/* A fault on a fenced page gets one line saying what it means; the handler then steps aside (SA_RESETHAND),
 * so the access faults again and the process dies of SIGSEGV as it would have. */
static void fence_fault(int sig, siginfo_t *si, void *ctx) {
    (void)sig;
    (void)ctx;
    static const char msg[] = "pulse-pipe: ops check: host code touched memory an operation may still be "
                              "using (an ops sync is missing before it; a debugger shows where)\n";
    if (mem_check_heap(si->si_addr))
        (void)!write(2, msg, sizeof msg - 1);
}

static void fence_handler(void) {
    struct sigaction sa = {0};
    sa.sa_sigaction = fence_fault;
    sa.sa_flags = SA_SIGINFO | SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
}

const struct ops *ops_checked_inner(const struct ops *table) {
    return table == &checked ? inner : NULL;
}

const struct ops *ops_checked(const struct ops *in) {
    mem_check_enable();
    fence_handler();
    inner = in;
    checked = (struct ops){.name = in->name,
                           .matmul_forward = check_matmul_forward,
                           .matmul_backward = check_matmul_backward,
                           .matmul_scaled_forward = check_matmul_scaled_forward,
                           .matmul_scaled_backward = check_matmul_scaled_backward,
                           .layernorm_forward = check_layernorm_forward,
                           .layernorm_backward = check_layernorm_backward,
                           .rmsnorm_forward = check_rmsnorm_forward,
                           .rmsnorm_backward = check_rmsnorm_backward,
                           .rope_forward = check_rope_forward,
                           .rope_backward = check_rope_backward,
                           .attention_forward = check_attention_forward,
                           .attention_backward = check_attention_backward,
                           .attention_decode = check_attention_decode,
                           .gelu_forward = check_gelu_forward,
                           .gelu_backward = check_gelu_backward,
                           .quick_gelu_forward = check_quick_gelu_forward,
                           .quick_gelu_backward = check_quick_gelu_backward,
                           .swiglu_forward = check_swiglu_forward,
                           .swiglu_backward = check_swiglu_backward,
                           .add = check_add,
                           .accumulate = check_accumulate,
                           .copy = check_copy,
                           .zero = check_zero,
                           .bf16_widen = check_bf16_widen,
                           .bf16_round = check_bf16_round,
                           .add_scaled = check_add_scaled,
                           .dropout = check_dropout,
                           .lora_down_forward = check_lora_down_forward,
                           .lora_down_backward = check_lora_down_backward,
                           .repeat_kv = check_repeat_kv,
                           .repeat_kv_backward = check_repeat_kv_backward,
                           .embedding_forward = check_embedding_forward,
                           .embedding_backward = check_embedding_backward,
                           .logprob_forward = check_logprob_forward,
                           .logprob_backward = check_logprob_backward,
                           .kl_forward = check_kl_forward,
                           .kl_backward = check_kl_backward,
                           .sync = check_sync,
                           .sum_squares = check_sum_squares,
                           .scale = check_scale,
                           .adamw = check_adamw,
                           .weights_frozen = check_weights_frozen,
                           .weights_forget = check_weights_forget,
                           .threads = in->threads,
                           .bf16_storage = in->bf16_storage};
    return &checked;
}

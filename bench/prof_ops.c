/* prof_ops: an operation table that forwards every call to another table and adds up the wall time spent in
 * each operation, so `bench_train --profile` can say where a training step's time goes. */
#include "bench/prof_ops.h"

#include <time.h>

enum {
    P_MM_F,
    P_MM_B,
    P_MMS_F,
    P_MMS_B,
    P_LN_F,
    P_LN_B,
    P_RMS_F,
    P_RMS_B,
    P_ROPE_F,
    P_ROPE_B,
    P_ATT_F,
    P_ATT_B,
    P_GELU_F,
    P_GELU_B,
    P_QGELU_F,
    P_QGELU_B,
    P_SWIGLU_F,
    P_SWIGLU_B,
    P_ADD,
    P_ACC,
    P_COPY,
    P_ZERO,
    P_WIDEN,
    P_ROUND,
    P_ADDS,
    P_DROP,
    P_LORA_F,
    P_LORA_B,
    P_RKV_F,
    P_RKV_B,
    P_EMB_F,
    P_EMB_B,
    P_LP_F,
    P_LP_B,
    P_KL_F,
    P_KL_B,
    P_SS,
    P_SCALE,
    P_ADAMW,
    P_N
};

static const char *const prof_names[P_N] = {"matmul_forward",
                                            "matmul_backward",
                                            "matmul_scaled_forward",
                                            "matmul_scaled_backward",
                                            "layernorm_forward",
                                            "layernorm_backward",
                                            "rmsnorm_forward",
                                            "rmsnorm_backward",
                                            "rope_forward",
                                            "rope_backward",
                                            "attention_forward",
                                            "attention_backward",
                                            "gelu_forward",
                                            "gelu_backward",
                                            "quick_gelu_forward",
                                            "quick_gelu_backward",
                                            "swiglu_forward",
                                            "swiglu_backward",
                                            "add",
                                            "accumulate",
                                            "copy",
                                            "zero",
                                            "bf16_widen",
                                            "bf16_round",
                                            "add_scaled",
                                            "dropout",
                                            "lora_down_forward",
                                            "lora_down_backward",
                                            "repeat_kv",
                                            "repeat_kv_backward",
                                            "embedding_forward",
                                            "embedding_backward",
                                            "logprob_forward",
                                            "logprob_backward",
                                            "kl_forward",
                                            "kl_backward",
                                            "sum_squares",
                                            "scale",
                                            "adamw"};

static const struct ops *real;
static struct ops table;
static double spent[P_N], cpu[P_N]; /* wall seconds; the calling thread's CPU seconds */
static long calls[P_N];

static double prof_clock(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static double prof_now(void) {
    return prof_clock(CLOCK_MONOTONIC);
}
/* With one thread the caller does all the work, and its CPU time is what other processes cannot inflate. */
static double prof_cpu(void) {
    return prof_clock(CLOCK_THREAD_CPUTIME_ID);
}

/* A wrapper per operation: time the real call until its work is done (sync: a GPU operation returns once
 * queued), add it to its slot. */
#define PROF_WRAP(slot, field, params, args)                                                                 \
    static void prof_##field params {                                                                        \
        double t0 = prof_now(), c0 = prof_cpu();                                                             \
        real->field args;                                                                                    \
        real->sync();                                                                                        \
        spent[slot] += prof_now() - t0;                                                                      \
        cpu[slot] += prof_cpu() - c0;                                                                        \
        calls[slot]++;                                                                                       \
    }

PROF_WRAP(P_MM_F, matmul_forward,
          (float *o, const float *i, const float *w, const float *b, size_t n, size_t ic, size_t oc),
          (o, i, w, b, n, ic, oc))
PROF_WRAP(P_MM_B, matmul_backward,
          (float *di, float *dw, float *db, const float *d, const float *i, const float *w, size_t n,
           size_t ic, size_t oc),
          (di, dw, db, d, i, w, n, ic, oc))
PROF_WRAP(P_MMS_F, matmul_scaled_forward,
          (float *o, const float *i, const float *w, float s, size_t n, size_t ic, size_t oc),
          (o, i, w, s, n, ic, oc))
PROF_WRAP(P_MMS_B, matmul_scaled_backward,
          (float *di, float *dw, const float *d, const float *i, const float *w, float s, size_t n, size_t ic,
           size_t oc),
          (di, dw, d, i, w, s, n, ic, oc))
PROF_WRAP(P_LN_F, layernorm_forward,
          (float *o, float *m, float *r, const float *i, const float *w, const float *b, size_t n, size_t c,
           float eps),
          (o, m, r, i, w, b, n, c, eps))
PROF_WRAP(P_LN_B, layernorm_backward,
          (float *di, float *dw, float *db, const float *d, const float *i, const float *w, const float *m,
           const float *r, size_t n, size_t c),
          (di, dw, db, d, i, w, m, r, n, c))
PROF_WRAP(P_RMS_F, rmsnorm_forward,
          (float *o, float *r, const float *i, const float *w, size_t n, size_t c, float eps),
          (o, r, i, w, n, c, eps))
PROF_WRAP(P_RMS_B, rmsnorm_backward,
          (float *di, float *dw, const float *d, const float *i, const float *w, const float *r, size_t n,
           size_t c),
          (di, dw, d, i, w, r, n, c))
PROF_WRAP(P_ROPE_F, rope_forward,
          (float *x, const int32_t *p, size_t b, size_t t, size_t nh, size_t hs, float th),
          (x, p, b, t, nh, hs, th))
PROF_WRAP(P_ROPE_B, rope_backward,
          (float *x, const int32_t *p, size_t b, size_t t, size_t nh, size_t hs, float th),
          (x, p, b, t, nh, hs, th))
PROF_WRAP(P_ATT_F, attention_forward,
          (float *o, float *p, const float *q, const float *k, const float *v, const int32_t *len, int causal,
           size_t b, size_t t, size_t nh, size_t hs),
          (o, p, q, k, v, len, causal, b, t, nh, hs))
PROF_WRAP(P_ATT_B, attention_backward,
          (float *dq, float *dk, float *dv, const float *d, const float *p, const float *q, const float *k,
           const float *v, size_t b, size_t t, size_t nh, size_t hs),
          (dq, dk, dv, d, p, q, k, v, b, t, nh, hs))
PROF_WRAP(P_GELU_F, gelu_forward, (float *o, const float *i, size_t n), (o, i, n))
PROF_WRAP(P_GELU_B, gelu_backward, (float *di, const float *d, const float *i, size_t n), (di, d, i, n))
PROF_WRAP(P_QGELU_F, quick_gelu_forward, (float *o, const float *i, size_t n), (o, i, n))
PROF_WRAP(P_QGELU_B, quick_gelu_backward, (float *di, const float *d, const float *i, size_t n),
          (di, d, i, n))
PROF_WRAP(P_SWIGLU_F, swiglu_forward, (float *o, const float *g, const float *u, size_t n), (o, g, u, n))
PROF_WRAP(P_SWIGLU_B, swiglu_backward,
          (float *dg, float *du, const float *d, const float *g, const float *u, size_t n),
          (dg, du, d, g, u, n))
PROF_WRAP(P_ADD, add, (float *o, const float *a, const float *b, size_t n), (o, a, b, n))
PROF_WRAP(P_ACC, accumulate, (float *d, const float *s, size_t n), (d, s, n))
PROF_WRAP(P_COPY, copy, (float *d, const float *s, size_t n), (d, s, n))
PROF_WRAP(P_ZERO, zero, (float *x, size_t n), (x, n))
PROF_WRAP(P_WIDEN, bf16_widen, (float *d, const uint16_t *s, size_t n), (d, s, n))
PROF_WRAP(P_ROUND, bf16_round, (uint16_t * d, const float *s, size_t n), (d, s, n))
PROF_WRAP(P_ADDS, add_scaled, (float *o, const float *x, float sc, size_t n), (o, x, sc, n))
PROF_WRAP(P_DROP, dropout, (float *o, const float *i, size_t n, uint64_t key, float p, float sc, int acc),
          (o, i, n, key, p, sc, acc))
PROF_WRAP(P_LORA_F, lora_down_forward,
          (float *h, float *xs, const float *x, const float *a, struct ops_dropout d, size_t n, size_t ic,
           size_t r),
          (h, xs, x, a, d, n, ic, r))
PROF_WRAP(P_LORA_B, lora_down_backward,
          (float *dx, float *da, float *xs, float *dxs, const float *dh, const float *x, const float *a,
           struct ops_dropout d, size_t n, size_t ic, size_t r),
          (dx, da, xs, dxs, dh, x, a, d, n, ic, r))
PROF_WRAP(P_RKV_F, repeat_kv, (float *o, const float *i, size_t n, size_t kvh, size_t rep, size_t hs),
          (o, i, n, kvh, rep, hs))
PROF_WRAP(P_RKV_B, repeat_kv_backward,
          (float *di, const float *d, size_t n, size_t kvh, size_t rep, size_t hs), (di, d, n, kvh, rep, hs))
PROF_WRAP(P_EMB_F, embedding_forward, (float *o, const int32_t *t, const float *tab, size_t n, size_t c),
          (o, t, tab, n, c))
PROF_WRAP(P_EMB_B, embedding_backward, (float *dt, const float *d, const int32_t *t, size_t n, size_t c),
          (dt, d, t, n, c))
PROF_WRAP(P_LP_F, logprob_forward,
          (float *lp, const float *l, const int32_t *t, const uint8_t *m, size_t n, size_t v),
          (lp, l, t, m, n, v))
PROF_WRAP(P_LP_B, logprob_backward,
          (float *dl, const float *d, const float *l, const int32_t *t, const uint8_t *m, size_t n, size_t v),
          (dl, d, l, t, m, n, v))
PROF_WRAP(P_KL_F, kl_forward,
          (float *kl, const float *l, const float *r, const uint8_t *m, size_t n, size_t v),
          (kl, l, r, m, n, v))
PROF_WRAP(P_KL_B, kl_backward,
          (float *dl, const float *d, const float *l, const float *r, const uint8_t *m, size_t n, size_t v),
          (dl, d, l, r, m, n, v))
PROF_WRAP(P_SCALE, scale, (float *x, float s, size_t n), (x, s, n))
PROF_WRAP(P_ADAMW, adamw,
          (float *p, const float *g, float *m, float *v, size_t n, float lr, float b1, float b2, float eps,
           float wd, int t),
          (p, g, m, v, n, lr, b1, b2, eps, wd, t))

static double prof_sum_squares(const float *x, size_t n) {
    double t0 = prof_now(), c0 = prof_cpu(), r = real->sum_squares(x, n);
    spent[P_SS] += prof_now() - t0;
    cpu[P_SS] += prof_cpu() - c0;
    calls[P_SS]++;
    return r;
}

const struct ops *prof_ops(const struct ops *inner) {
    real = inner;
    table = (struct ops){.name = "profiled",
                         .matmul_forward = prof_matmul_forward,
                         .matmul_backward = prof_matmul_backward,
                         .matmul_scaled_forward = prof_matmul_scaled_forward,
                         .matmul_scaled_backward = prof_matmul_scaled_backward,
                         .layernorm_forward = prof_layernorm_forward,
                         .layernorm_backward = prof_layernorm_backward,
                         .rmsnorm_forward = prof_rmsnorm_forward,
                         .rmsnorm_backward = prof_rmsnorm_backward,
                         .rope_forward = prof_rope_forward,
                         .rope_backward = prof_rope_backward,
                         .attention_forward = prof_attention_forward,
                         .attention_backward = prof_attention_backward,
                         .gelu_forward = prof_gelu_forward,
                         .gelu_backward = prof_gelu_backward,
                         .quick_gelu_forward = prof_quick_gelu_forward,
                         .quick_gelu_backward = prof_quick_gelu_backward,
                         .swiglu_forward = prof_swiglu_forward,
                         .swiglu_backward = prof_swiglu_backward,
                         .add = prof_add,
                         .accumulate = prof_accumulate,
                         .copy = prof_copy,
                         .zero = prof_zero,
                         .bf16_widen = prof_bf16_widen,
                         .bf16_round = prof_bf16_round,
                         .add_scaled = prof_add_scaled,
                         .dropout = prof_dropout,
                         .lora_down_forward = prof_lora_down_forward,
                         .lora_down_backward = prof_lora_down_backward,
                         .repeat_kv = prof_repeat_kv,
                         .repeat_kv_backward = prof_repeat_kv_backward,
                         .embedding_forward = prof_embedding_forward,
                         .embedding_backward = prof_embedding_backward,
                         .logprob_forward = prof_logprob_forward,
                         .logprob_backward = prof_logprob_backward,
                         .kl_forward = prof_kl_forward,
                         .kl_backward = prof_kl_backward,
                         .sync = inner->sync,
                         .sum_squares = prof_sum_squares,
                         .scale = prof_scale,
                         .adamw = prof_adamw,
                         /* once per weight, in the warm-up step: passed through, not timed */
                         .weights_frozen = inner->weights_frozen,
                         .weights_forget = inner->weights_forget,
                         .threads = inner->threads,
                         .bf16_storage = inner->bf16_storage};
    for (int i = 0; i < P_N; i++)
        spent[i] = cpu[i] = 0.0, calls[i] = 0;
    return &table;
}

void prof_report(FILE *f, int steps, double step_total) {
    double ops = 0.0, ops_cpu = 0.0;
    fprintf(f, "%-22s %10s %10s %8s %6s\n", "op", "ms/step", "cpu ms", "calls", "share");
    for (int i = 0; i < P_N; i++) {
        ops += spent[i];
        ops_cpu += cpu[i];
        if (calls[i])
            fprintf(f, "%-22s %10.2f %10.2f %8ld %5.1f%%\n", prof_names[i], spent[i] * 1e3 / steps,
                    cpu[i] * 1e3 / steps, calls[i] / steps, 100.0 * spent[i] / step_total);
    }
    fprintf(f, "%-22s %10.2f %10s %8s %5.1f%%\n", "(outside the ops)", (step_total - ops) * 1e3 / steps, "",
            "", 100.0 * (step_total - ops) / step_total);
    fprintf(f, "%-22s %10.2f %10.2f\n", "(all ops)", ops * 1e3 / steps, ops_cpu * 1e3 / steps);
}

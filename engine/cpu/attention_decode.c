/* attention_decode: one new query per sequence against a K/V cache, the attention of a generation step
 * (engine/ops.h). Each (sequence, head) is computed whole by one thread, its two products as single-threaded
 * OpenBLAS matrix-vector calls over the head's strided cache rows, so the bits never depend on the thread
 * count. */
#include "engine/cpu/cpu.h"
#include "engine/kernels.h"

#include "util/buf.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct decode {
    float *out;
    const float *q, *k, *v;
    const int32_t *len;
    size_t cap, nh, kvh, hs;
    float scale;
};

/* Softmax in place over n scores, as attention.c's softmax_row computes a row: max, kernel_exp, a running
 * sum, a division. */
static void decode_softmax(float *p, size_t n) {
    float max = -INFINITY, sum = 0.0f;
    for (size_t s = 0; s < n; s++)
        max = p[s] > max ? p[s] : max;
    for (size_t s = 0; s < n; s++)
        p[s] = kernel_exp(p[s] - max);
    for (size_t s = 0; s < n; s++)
        sum += p[s];
    for (size_t s = 0; s < n; s++)
        p[s] /= sum;
}

/* Items are the B*NH (sequence, head) pairs. The head's keys and values are the rows of its kv head, KVH*HS
 * apart in the cache. */
static void decode_heads(void *ctx, size_t begin, size_t end) {
    const struct decode *d = ctx;
    size_t hs = d->hs, ld = d->kvh * hs, rep = d->nh >= d->kvh ? d->nh / d->kvh : 1;
    float *p = xmalloc((d->cap ? d->cap : 1) * sizeof(float));
    for (size_t item = begin; item < end; item++) {
        size_t b = item / d->nh, h = item % d->nh;
        size_t n = d->len[b] < 0 ? 0 : (size_t)d->len[b] > d->cap ? d->cap : (size_t)d->len[b];
        float *out = d->out + item * hs;
        const float *k = d->k + b * d->cap * ld + (h / rep) * hs,
                    *v = d->v + b * d->cap * ld + (h / rep) * hs;
        if (n == 0 || hs == 0) {
            memset(out, 0, hs * sizeof(float));
            continue;
        }
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)hs, d->scale, k, (int)ld, d->q + item * hs, 1,
                    0.0f, p, 1);
        decode_softmax(p, n);
        cblas_sgemv(CblasRowMajor, CblasTrans, (int)n, (int)hs, 1.0f, v, (int)ld, p, 1, 0.0f, out, 1);
    }
    free(p);
}

void cpu_attention_decode(float *out, const float *q, const float *k, const float *v, const int32_t *len,
                          size_t b, size_t cap, size_t nh, size_t kvh, size_t hs) {
    if (b == 0 || nh == 0)
        return;
    struct decode d = {.out = out,
                       .q = q,
                       .k = k,
                       .v = v,
                       .len = len,
                       .cap = cap,
                       .nh = nh,
                       .kvh = kvh ? kvh : nh,
                       .hs = hs,
                       .scale = 1.0f / sqrtf((float)hs)};
    cpu_parallel(b * nh, 2 * cap * hs, decode_heads, &d);
}

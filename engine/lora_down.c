/* lora_down: the composed LoRA down projection (engine/lora_down.h). */
#include "engine/lora_down.h"

void lora_down_forward(const struct ops *t, float *h, float *xs, const float *x, const float *a,
                       struct ops_dropout d, size_t n, size_t ic, size_t r) {
    t->dropout(xs, x, n * ic, d.key, d.p, d.scale, 0);
    t->matmul_forward(h, xs, a, NULL, n, ic, r);
}

void lora_down_backward(const struct ops *t, float *dx, float *da, float *xs, float *dxs, const float *dh,
                        const float *x, const float *a, struct ops_dropout d, size_t n, size_t ic, size_t r) {
    if (!dx && !da)
        return;
    t->dropout(xs, x, n * ic, d.key, d.p, d.scale, 0);
    if (dx)
        t->zero(dxs, n * ic); /* matmul_backward adds to it */
    t->matmul_backward(dx ? dxs : NULL, da, NULL, dh, xs, a, n, ic, r);
    if (dx)
        t->dropout(dx, dxs, n * ic, d.key, d.p, d.scale, 1);
}

/* lora_down: LoRA's down projection with its input dropout (ops lora_down_forward / _backward, engine/ops.h)
 * composed from a table's own dropout, zero and matmul operations. This composition defines the operations'
 * bits: the CPU tables and the CUDA fp32 table are it; the CUDA bf16 table fuses the mask into the rounding
 * of the product's operand, which gives the same values (the mask and scale are one rounding per element,
 * before the product's rounding to bf16). */
#ifndef PULSE_ENGINE_LORA_DOWN_H
#define PULSE_ENGINE_LORA_DOWN_H

#include "engine/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* xs = dropout(x); h = xs @ a^T (table t's matmul_forward). */
void lora_down_forward(const struct ops *t, float *h, float *xs, const float *x, const float *a,
                       struct ops_dropout d, size_t n, size_t ic, size_t r);
/* xs = dropout(x); dxs = 0; dxs += dh @ a and da += dh^T @ xs (t's matmul_backward); dx += dropout(dxs). */
void lora_down_backward(const struct ops *t, float *dx, float *da, float *xs, float *dxs, const float *dh,
                        const float *x, const float *a, struct ops_dropout d, size_t n, size_t ic, size_t r);

#ifdef __cplusplus
}
#endif

#endif

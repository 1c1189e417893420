/* kernels: the per-element math, written once. Every backend computes its elementwise steps with these
 * functions (the CUDA backend compiles them as __host__ __device__), so the CPU tests check the arithmetic
 * the GPU runs. Keep them pure and branch-light. */
#ifndef PULSE_ENGINE_KERNELS_H
#define PULSE_ENGINE_KERNELS_H

#include <math.h>

#ifdef __CUDACC__
#define PULSE_HD __host__ __device__
#else
#define PULSE_HD
#endif

#define KERNEL_SQRT1_2 0.70710678118654752440f
#define KERNEL_INV_SQRT_2PI 0.39894228040143267794f

/* GELU, exact (erf) form, as torch.nn.functional.gelu(approximate="none"). */
PULSE_HD static inline float kernel_gelu(float x) {
    return 0.5f * x * (1.0f + erff(x * KERNEL_SQRT1_2));
}
PULSE_HD static inline float kernel_gelu_grad(float x) {
    return 0.5f * (1.0f + erff(x * KERNEL_SQRT1_2)) + x * KERNEL_INV_SQRT_2PI * expf(-0.5f * x * x);
}

PULSE_HD static inline float kernel_sigmoid(float x) {
    return 1.0f / (1.0f + expf(-x));
}

/* quick_gelu (CLIP): x * sigmoid(1.702 x). */
PULSE_HD static inline float kernel_quick_gelu(float x) {
    return x * kernel_sigmoid(1.702f * x);
}
PULSE_HD static inline float kernel_quick_gelu_grad(float x) {
    float s = kernel_sigmoid(1.702f * x);
    return s + 1.702f * x * s * (1.0f - s);
}

/* SiLU and its derivative (SwiGLU's gate). */
PULSE_HD static inline float kernel_silu(float x) {
    return x * kernel_sigmoid(x);
}
PULSE_HD static inline float kernel_silu_grad(float x) {
    float s = kernel_sigmoid(x);
    return s * (1.0f + x * (1.0f - s));
}

/* Rotary embedding (HF LLaMA): the angle of pair i (of hs/2) at position pos. Computed in fp32 exactly as
 * transformers does (inv_freq = 1 / theta^(2i/hs) in fp32, then pos * inv_freq in fp32): at long positions
 * the angle's rounding is visible in the output, so the order of these roundings matters. */
PULSE_HD static inline float kernel_rope_angle(int pos, int i, int hs, float theta) {
    float inv_freq = 1.0f / powf(theta, (float)(2 * i) / (float)hs);
    return (float)pos * inv_freq;
}

/* Rotates the pair (x[i], x[i + hs/2]) by the angle whose cosine and sine are cs, sn: HF's x cos +
 * rotate_half(x) sin. The inverse (the backward) is the same rotation with -sn. */
PULSE_HD static inline void kernel_rope_rotate(float *x1, float *x2, float cs, float sn) {
    float a = *x1, b = *x2;
    *x1 = a * cs + (-b) * sn;
    *x2 = b * cs + a * sn;
}

/* Streaming log-sum-exp: (*m, *s) hold the running max and the sum of exp(x - max); start from (x0, 1).
 * logsumexp = m + log(s). One pass, and the partial states of two halves combine with kernel_lse_merge. */
PULSE_HD static inline void kernel_lse_update(float *m, float *s, float x) {
    if (x > *m) {
        *s = *s * expf(*m - x) + 1.0f;
        *m = x;
    } else {
        *s += expf(x - *m);
    }
}
PULSE_HD static inline void kernel_lse_merge(float *m, float *s, float m2, float s2) {
    if (m2 > *m) {
        *s = *s * expf(*m - m2) + s2;
        *m = m2;
    } else {
        *s += s2 * expf(m2 - *m);
    }
}

/* torch.lerp's formula (a + w (b - a), or from the other end when w >= 0.5), which AdamW's first moment uses.
 */
PULSE_HD static inline float kernel_lerp(float a, float b, float w) {
    return w < 0.5f ? a + w * (b - a) : b - (b - a) * (1.0f - w);
}

/* One AdamW step on one parameter, operation for operation as torch.optim.AdamW's single-tensor path:
 * p *= decay; m = lerp(m, g, 1 - beta1); v = v beta2 + (1 - beta2) g g; p += (-step_size m) / (sqrt(v) /
 * bc2_sqrt
 * + eps). The caller computes once per step, in double as Python does: decay = 1 - lr wd, step_size = lr / (1
 * - beta1^t), bc2_sqrt = sqrt(1 - beta2^t). */
PULSE_HD static inline void kernel_adamw(float *p, float *m, float *v, float g, float beta1, float beta2,
                                         float eps, float decay, float step_size, float bc2_sqrt) {
    float mm = kernel_lerp(*m, g, 1.0f - beta1);
    float vv = *v * beta2 + (1.0f - beta2) * g * g;
    float denom = sqrtf(vv) / bc2_sqrt + eps;
    *p = *p * decay + (-step_size * mm) / denom;
    *m = mm;
    *v = vv;
}

#endif

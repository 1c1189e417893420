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

/* exp(x) in plain float arithmetic (Cephes' expf: x = n ln2 + r, |r| <= ln2 / 2, a degree-5 polynomial, times
 * 2^n), so that a vector loop can compute the same bits lane by lane (engine/cpu/cpu.h's cpu_exp4 mirrors it
 * step for step). Relative error at most 8.2e-8 (glibc's expf: 6e-8); 0 below -87, inf above 88, NaN stays
 * NaN. The clamps come first so that the conversion to int never sees a NaN or an out-of-range value. */
#define KERNEL_EXP_LO -87.0f
#define KERNEL_EXP_HI 88.0f
#define KERNEL_EXP_ROUND 12582912.0f /* 1.5 * 2^23: adding and subtracting it rounds to an integer */
#define KERNEL_EXP_C1 0.693359375f   /* ln 2 in two parts: fn * C1 is exact for |n| <= 128 */
#define KERNEL_EXP_C2 -2.12194440e-4f
PULSE_HD static inline float kernel_exp_poly(float r) {
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    return p * (r * r) + r + 1.0f;
}
PULSE_HD static inline float kernel_exp(float x) {
    float c = x > KERNEL_EXP_LO ? x : KERNEL_EXP_LO;
    c = c < KERNEL_EXP_HI ? c : KERNEL_EXP_HI;
    float fn = (c * 1.44269504088896341f + KERNEL_EXP_ROUND) - KERNEL_EXP_ROUND;
    float r = c - fn * KERNEL_EXP_C1;
    r = r - fn * KERNEL_EXP_C2;
    union {
        unsigned u;
        float f;
    } scale = {.u = (unsigned)((int)fn + 127) << 23};
    float y = kernel_exp_poly(r) * scale.f;
    y = x < KERNEL_EXP_LO ? 0.0f : y;
    y = x > KERNEL_EXP_HI ? INFINITY : y;
    return x == x ? y : x;
}

PULSE_HD static inline float kernel_sigmoid(float x) {
    return 1.0f / (1.0f + kernel_exp(-x));
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
/* SwiGLU's backward from one sigmoid: *dgate = dout up silu'(gate), *dup = dout silu(gate), the same bits as
 * kernel_silu_grad and kernel_silu. */
PULSE_HD static inline void kernel_swiglu_grad(float dout, float gate, float up, float *dgate, float *dup) {
    float s = kernel_sigmoid(gate);
    *dgate = dout * up * (s * (1.0f + gate * (1.0f - s)));
    *dup = dout * (gate * s);
}

/* Rotary embedding (HF LLaMA): the angle of pair i (of hs/2) at position pos. Computed in fp32 exactly as
 * transformers does (inv_freq = 1 / theta^(2i/hs) in fp32, then pos * inv_freq in fp32): at long positions
 * the angle's rounding is visible in the output, so the order of these roundings matters. */
PULSE_HD static inline float kernel_rope_inv_freq(int i, int hs, float theta) {
    return 1.0f / powf(theta, (float)(2 * i) / (float)hs);
}
PULSE_HD static inline float kernel_rope_angle(int pos, int i, int hs, float theta) {
    return (float)pos * kernel_rope_inv_freq(i, hs, theta);
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

/* fp32 -> bf16 -> fp32: x rounded to bfloat16's 8-bit significand (round to nearest, ties to even; the
 * standard conversion, as engine/safetensors.c's st_f32_to_bf16), returned as the float of that value, whose
 * low 16 bits are zero (the bf16 bits are the high half). A carry out of the significand reaches the next
 * binade or infinity; infinities pass; a NaN stays a NaN: truncated, with the quiet bit set when truncation
 * would leave no payload (rounding its bits could make it an infinity, or carry into the sign). The bf16
 * matmul tables (ops_precision) round both inputs of a product with this on every backend, so they round
 * alike. */
PULSE_HD static inline float kernel_bf16_round(float x) {
    union {
        unsigned u;
        float f;
    } v = {.f = x};
    if ((v.u & 0x7fffffffu) > 0x7f800000u) {
        v.u &= 0xffff0000u;
        v.u |= (v.u & 0x007f0000u) ? 0u : 0x00400000u;
    } else {
        v.u = (v.u + 0x7fffu + ((v.u >> 16) & 1u)) & 0xffff0000u;
    }
    return v.f;
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

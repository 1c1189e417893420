/* kernels: the per-element math, written once. Every backend computes its elementwise steps with these
 * functions (the CUDA backend compiles them as __host__ __device__), so the CPU tests check the arithmetic the
 * GPU runs. Keep them pure and branch-light. */
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

#endif

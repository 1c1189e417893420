/* bf16.cuh: the rounding of the bf16 products' operands on the device, kernel_bf16_round's (engine/kernels.h:
 * the CPU backend's, so both backends multiply the same values). Its result's high 16 bits are the bf16 bits.
 */
#ifndef PULSE_ENGINE_CUDA_BF16_CUH
#define PULSE_ENGINE_CUDA_BF16_CUH

#include "engine/kernels.h"

#include <cuda_bf16.h>
#include <stddef.h>
#include <stdint.h>

static __device__ inline __nv_bfloat16 cuda_to_bf16(float x) {
    __nv_bfloat16_raw r;
    r.x = (unsigned short)(__float_as_uint(kernel_bf16_round(x)) >> 16);
    return __nv_bfloat16(r);
}

/* bf16 storage (engine/mem.h, mem_alloc_bf16): a value is the high half of the float it stands for. A
 * kernel that takes either kind of tensor is a template on the element type and reads and writes through
 * these: widened exactly, rounded as kernel_bf16_round (what engine/act16.c defines). */
static __device__ inline float cuda_ld(const float *p, size_t i) {
    return p[i];
}
static __device__ inline float cuda_ld(const uint16_t *p, size_t i) {
    return __uint_as_float((unsigned)p[i] << 16);
}
static __device__ inline void cuda_st(float *p, size_t i, float v) {
    p[i] = v;
}
static __device__ inline void cuda_st(uint16_t *p, size_t i, float v) {
    p[i] = (uint16_t)(__float_as_uint(kernel_bf16_round(v)) >> 16);
}

#endif

/* bf16.cuh: bf16 on the device. The rounding of the bf16 products' operands, kernel_bf16_round's
 * (engine/kernels.h: the CPU backend's, so both backends multiply the same values; its result's high 16 bits
 * are the bf16 bits), and the access to bf16 storage (engine/mem.h) that the "bf16-act" table's kernels
 * read and write through: cuda_ld / cuda_st on storage, cuda_ten arguments of either kind. */
#ifndef PULSE_ENGINE_CUDA_BF16_CUH
#define PULSE_ENGINE_CUDA_BF16_CUH

#include "engine/kernels.h"
#include "engine/mem.h"

#include <cuda_bf16.h>
#include <stddef.h>
#include <stdint.h>

static __device__ inline __nv_bfloat16 cuda_to_bf16(float x) {
    __nv_bfloat16_raw r;
    r.x = (unsigned short)(__float_as_uint(kernel_bf16_round(x)) >> 16);
    return __nv_bfloat16(r);
}

/* bf16 storage (engine/mem.h, mem_alloc_bf16): a value is the high half of the float it stands for, read
 * widened exactly and written rounded as kernel_bf16_round (what engine/act16.c defines). */
static __device__ inline float cuda_ld(const uint16_t *p, size_t i) {
    return __uint_as_float((unsigned)p[i] << 16);
}
static __device__ inline void cuda_st(uint16_t *p, size_t i, float v) {
    p[i] = (uint16_t)(__float_as_uint(kernel_bf16_round(v)) >> 16);
}

/* A kernel's tensor argument of either kind: fp32 memory, or bf16 storage (engine/mem.h). Kernels that take
 * any mix of the two are templates on V, "some argument is bf16": their V = false instance is the plain fp32
 * kernel (it never looks at the flag), the V = true one reads each argument by its kind, widened exactly,
 * and writes it rounded once (kernel_bf16_round): engine/act16.c's definition. The flag is the same for
 * every thread of a launch, so the branch costs no divergence. */
struct cuda_ten {
    void *p;
    int bf16;
};

template <bool V> static __device__ inline float ten_ld(cuda_ten t, size_t i) {
    return V && t.bf16 ? cuda_ld((const uint16_t *)t.p, i) : ((const float *)t.p)[i];
}

template <bool V> static __device__ inline void ten_st(cuda_ten t, size_t i, float v) {
    if (V && t.bf16)
        cuda_st((uint16_t *)t.p, i, v);
    else
        ((float *)t.p)[i] = v;
}

/* p as a kernel argument: its storage when it lies in a bf16 range, else itself (NULL stays NULL). */
static inline cuda_ten cuda_arg(const float *p) {
    uint16_t *s = mem_bf16_at(p, NULL);
    return s ? cuda_ten{s, 1} : cuda_ten{(void *)p, 0};
}

/* Whether any of the arguments is bf16 storage: the V of the launch. */
template <typename... T> static inline bool cuda_any16(T... t) {
    return (t.bf16 || ...);
}

#endif

/* bf16.cuh: the rounding of the bf16 products' operands on the device, kernel_bf16_round's (engine/kernels.h:
 * the CPU backend's, so both backends multiply the same values). Its result's high 16 bits are the bf16 bits.
 */
#ifndef PULSE_ENGINE_CUDA_BF16_CUH
#define PULSE_ENGINE_CUDA_BF16_CUH

#include "engine/kernels.h"

#include <cuda_bf16.h>

static __device__ inline __nv_bfloat16 cuda_to_bf16(float x) {
    __nv_bfloat16_raw r;
    r.x = (unsigned short)(__float_as_uint(kernel_bf16_round(x)) >> 16);
    return __nv_bfloat16(r);
}

#endif

/* cudaemu's cuda_bf16.h: the bf16 type as engine/cuda/ uses it, bits only (engine/cuda/bf16.cuh does the
 * rounding itself; the cuBLAS products widen the bits exactly, blas.cpp). */
#ifndef CUDAEMU_CUDA_BF16_H
#define CUDAEMU_CUDA_BF16_H

#include "cuda_runtime.h"

#include <cstring>

struct __nv_bfloat16_raw {
    unsigned short x;
};

struct __nv_bfloat16 {
    unsigned short x;
    __nv_bfloat16() = default;
    __nv_bfloat16(__nv_bfloat16_raw r) : x(r.x) {}
};

/* bf16 bits widened to fp32: exact. */
static inline float __bfloat162float(__nv_bfloat16 h) {
    unsigned u = (unsigned)h.x << 16;
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

#endif

/* reduce.cuh: the block reductions the row kernels share (attention's softmax, the norms, the losses): a
 * fixed shared-memory tree over CUDA_BLOCK threads, so the grouping, and with it every bit, depends on the
 * block size alone. Every thread of the block must call them (they synchronise); all get the result, and the
 * trailing barrier lets the caller reuse `sh` at once. */
#ifndef PULSE_ENGINE_CUDA_REDUCE_CUH
#define PULSE_ENGINE_CUDA_REDUCE_CUH

#define CUDA_BLOCK 256 /* threads of a row kernel's block; a power of two, as the trees halve it */

static __device__ inline float cuda_block_sum(float v, float *sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (unsigned s = CUDA_BLOCK / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s)
            sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    float total = sh[0];
    __syncthreads();
    return total;
}

/* The CPU's max (p > max ? p : max, from -inf) never picks a NaN; neither does this tree of the same
 * comparison. */
static __device__ inline float cuda_block_max(float v, float *sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (unsigned s = CUDA_BLOCK / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) {
            float o = sh[threadIdx.x + s];
            sh[threadIdx.x] = o > sh[threadIdx.x] ? o : sh[threadIdx.x];
        }
        __syncthreads();
    }
    float m = sh[0];
    __syncthreads();
    return m;
}

#endif

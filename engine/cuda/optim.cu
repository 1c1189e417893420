/* optim.cu: what an optimizer step needs, as engine/cpu/optim.c computes it: the sum of squares (global
 * gradient norm) in double with a fixed two-pass tree, scaling for clipping, and AdamW through kernel_adamw
 * with the per-step constants computed on the host in double, exactly as the CPU (and torch) does. */
#include "engine/cuda/cuda.h"
#include "engine/kernels.h"

#include <math.h>

#define OPT_THREADS 256
#define SS_THREADS 256     /* a power of two: the tree halves it */
#define SS_PER_THREAD 16   /* values per thread before the grid stops growing with n */
#define SS_MAX_BLOCKS 1024 /* partial sums; a power of two: the final block sums them in one tree */

/* The sum of every thread's v, in thread 0 (blockDim.x == threads, a power of two). */
static __device__ double ss_block_sum(double v, double *sh, unsigned threads) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (unsigned s = threads / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s)
            sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    return sh[0];
}

/* Pass 1: block b's partial sum of x[i]^2 (in double: the float product is exact there) over its grid-stride
 * share. The grid size is a function of n alone, so the grouping is too. */
static __global__ void ss_part_kernel(double *part, const float *x, size_t n) {
    __shared__ double sh[SS_THREADS];
    double acc = 0.0;
    size_t stride = (size_t)gridDim.x * SS_THREADS;
    for (size_t i = (size_t)blockIdx.x * SS_THREADS + threadIdx.x; i < n; i += stride)
        acc += (double)x[i] * (double)x[i];
    acc = ss_block_sum(acc, sh, SS_THREADS);
    if (threadIdx.x == 0)
        part[blockIdx.x] = acc;
}

/* Pass 2: one block of SS_MAX_BLOCKS threads sums the nb partials in a fixed tree into part[nb]. */
static __global__ void ss_final_kernel(double *part, unsigned nb) {
    __shared__ double sh[SS_MAX_BLOCKS];
    double total = ss_block_sum(threadIdx.x < nb ? part[threadIdx.x] : 0.0, sh, SS_MAX_BLOCKS);
    if (threadIdx.x == 0)
        part[nb] = total;
}

double cuda_sum_squares(const float *x, size_t n) {
    if (n == 0) { /* it waits like ops sync even with nothing to sum (engine/ops.h) */
        cuda_check(cudaGetLastError(), "cuda_sum_squares");
        cuda_check(cudaDeviceSynchronize(), "cuda_sum_squares");
        return 0.0;
    }
    unsigned nb = cuda_blocks(n, SS_THREADS * SS_PER_THREAD);
    nb = nb < SS_MAX_BLOCKS ? nb : SS_MAX_BLOCKS;
    double *part = (double *)cuda_scratch(0, (nb + 1) * sizeof(double));
    ss_part_kernel<<<nb, SS_THREADS>>>(part, x, n);
    ss_final_kernel<<<1, SS_MAX_BLOCKS>>>(part, nb);
    cuda_done("cuda_sum_squares");
    double total = 0.0;
    cuda_check(cudaMemcpy(&total, part + nb, sizeof(double), cudaMemcpyDeviceToHost), "cuda_sum_squares");
    return total;
}

static __global__ void scale_kernel(float *x, float s, size_t n) {
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        x[i] *= s;
}

void cuda_scale(float *x, float s, size_t n) {
    if (n)
        scale_kernel<<<cuda_blocks(n, OPT_THREADS), OPT_THREADS>>>(x, s, n);
    cuda_done("cuda_scale");
}

static __global__ void adamw_kernel(float *param, const float *grad, float *m, float *v, size_t n,
                                    float beta1, float beta2, float eps, float decay, float step_size,
                                    float bc2_sqrt) {
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        kernel_adamw(&param[i], &m[i], &v[i], grad[i], beta1, beta2, eps, decay, step_size, bc2_sqrt);
}

/* The per-step scalars in double, as torch computes them in Python before its fp32 tensor ops (the CPU's
 * cpu_adamw, expression for expression). */
void cuda_adamw(float *param, const float *grad, float *m, float *v, size_t n, float lr, float beta1,
                float beta2, float eps, float weight_decay, int t) {
    if (t < 1)
        t = 1; /* the bias correction is undefined before the first step */
    float decay = (float)(1.0 - (double)lr * (double)weight_decay);
    float step_size = (float)((double)lr / (1.0 - pow((double)beta1, (double)t)));
    float bc2_sqrt = (float)sqrt(1.0 - pow((double)beta2, (double)t));
    if (n)
        adamw_kernel<<<cuda_blocks(n, OPT_THREADS), OPT_THREADS>>>(param, grad, m, v, n, beta1, beta2, eps,
                                                                   decay, step_size, bc2_sqrt);
    cuda_done("cuda_adamw");
}

/* mem.cu: engine/mem.c's CUDA allocator. Managed memory, zeroed on the device; an allocation larger than what
 * the GPU has free is refused before it is asked for (oversubscribing managed memory can stall the whole
 * GPU, not only this process). */
#include "engine/cuda/cuda.h"
#include "engine/mem.h" /* MEM_CUDA_RESERVE */

#include <stdio.h>
#include <stdlib.h>

/* Left free for cuBLAS's workspace, the scratch buffers and the CUDA context's own needs (engine/mem.h:
 * memory plans count it too). */
#define MEM_RESERVE MEM_CUDA_RESERVE

extern "C" void *cuda_mem_alloc(size_t bytes) {
    size_t free_b = 0, total = 0;
    cuda_check(cudaMemGetInfo(&free_b, &total), "cudaMemGetInfo");
    if (bytes + MEM_RESERVE > free_b) {
        fprintf(
            stderr,
            "pulse-pipe: out of GPU memory: %.2f GiB asked and %.2f kept free (cuBLAS, scratch), %.2f GiB "
            "free of %.2f GiB (run --dry-run --device cuda prints each stage's memory plan; recompute = "
            "true needs far less)\n",
            bytes / 1073741824.0, MEM_RESERVE / 1073741824.0, free_b / 1073741824.0, total / 1073741824.0);
        exit(1);
    }
    void *p = NULL;
    cuda_check(cudaMallocManaged(&p, bytes, cudaMemAttachGlobal), "cudaMallocManaged");
    cuda_check(cudaMemset(p, 0, bytes), "cudaMemset");
    cuda_check(cudaDeviceSynchronize(), "cudaMemset");
    return p;
}

extern "C" void cuda_mem_free(void *p) {
    cuda_check(cudaDeviceSynchronize(), "cudaFree");
    cuda_check(cudaFree(p), "cudaFree");
}

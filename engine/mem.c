/* mem: heap or CUDA managed memory for tensors (engine/mem.h). A small header in front of each block records
 * which allocator made it, so mem_free never has to be told and blocks survive a change of mode. */
#include "engine/mem.h"

#include "util/buf.h"
#include "util/err.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef PULSE_HAVE_CUDA
void *cuda_mem_alloc(size_t bytes); /* engine/cuda/mem.cu: zeroed managed memory, or exits */
void cuda_mem_free(void *p);
#endif

/* The header keeps the payload 256-byte aligned (what cudaMalloc guarantees, and more than any vector load
 * needs). */
#define MEM_HEADER 256
enum { MEM_HEAP = 0x68656170, MEM_CUDA = 0x63756461 };

static int use_cuda;

void *mem_alloc(size_t n, size_t size) {
    if (size && n > (SIZE_MAX - MEM_HEADER) / size) {
        fprintf(stderr, "pulse-pipe: out of memory: %zu x %zu bytes\n", n, size);
        exit(3);
    }
    size_t bytes = MEM_HEADER + n * size;
    unsigned char *p;
#ifdef PULSE_HAVE_CUDA
    if (use_cuda)
        p = cuda_mem_alloc(bytes);
    else
#endif
        p = xcalloc(1, bytes);
    uint32_t tag = use_cuda ? MEM_CUDA : MEM_HEAP;
    memcpy(p, &tag, sizeof tag);
    return p + MEM_HEADER;
}

void mem_free(void *q) {
    if (!q)
        return;
    unsigned char *p = (unsigned char *)q - MEM_HEADER;
    uint32_t tag;
    memcpy(&tag, p, sizeof tag);
#ifdef PULSE_HAVE_CUDA
    if (tag == MEM_CUDA) {
        cuda_mem_free(p);
        return;
    }
#endif
    free(p);
}

int mem_use_cuda(int cuda) {
#ifndef PULSE_HAVE_CUDA
    if (cuda)
        return err_set("--device cuda: this build has no CUDA backend (configure with -DPULSE_CUDA=ON)");
#endif
    use_cuda = cuda != 0;
    return 0;
}

int mem_on_cuda(void) {
    return use_cuda;
}

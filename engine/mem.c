/* mem: heap or CUDA managed memory for tensors (engine/mem.h). A small header in front of each block records
 * which allocator made it, so mem_free never has to be told and blocks survive a change of mode, and its
 * size, for the bytes-in-use accounting memory plans are checked against. With checking on
 * (mem_check_enable), a registry of the live blocks answers mem_owns for the checked operation table. */
#include "engine/mem.h"

#include "util/buf.h"
#include "util/err.h"

#include <pthread.h>
#include <stdatomic.h>
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

/* The header's layout: the allocator's tag, then (at MEM_SIZE_AT) the payload's size for the accounting. */
#define MEM_SIZE_AT 8
static atomic_size_t in_use, peak;

/* Raises the peak to at least `now` (a CAS loop: another thread may raise it meanwhile). */
static void peak_raise(size_t now) {
    size_t seen = atomic_load_explicit(&peak, memory_order_relaxed);
    while (now > seen && !atomic_compare_exchange_weak_explicit(&peak, &seen, now, memory_order_relaxed,
                                                                memory_order_relaxed))
        ;
}

/* The live blocks' payloads, sorted by start address (blocks never overlap, so the only block that can hold
 * an address is the last one starting at or before it: a binary search). Stages may allocate from more than
 * one thread, hence the mutex; `checking` is read on every mem_alloc and mem_free without it, so that normal
 * runs pay one relaxed load. */
struct mem_block {
    uintptr_t start;
    size_t bytes;
};
static atomic_int checking;
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct mem_block *reg;
static size_t reg_n, reg_cap;

/* The number of blocks starting at or before `a` (the caller holds reg_mu). */
static size_t reg_upto(uintptr_t a) {
    size_t lo = 0, hi = reg_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (reg[mid].start <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void reg_add(const void *p, size_t bytes) {
    pthread_mutex_lock(&reg_mu);
    if (reg_n == reg_cap) {
        reg_cap = reg_cap ? 2 * reg_cap : 256;
        reg = xrealloc(reg, reg_cap * sizeof *reg);
    }
    size_t at = reg_upto((uintptr_t)p);
    memmove(reg + at + 1, reg + at, (reg_n - at) * sizeof *reg);
    reg[at] = (struct mem_block){(uintptr_t)p, bytes};
    reg_n++;
    pthread_mutex_unlock(&reg_mu);
}

/* A block made before checking was enabled is not in the registry: nothing to remove. */
static void reg_remove(const void *p) {
    pthread_mutex_lock(&reg_mu);
    size_t at = reg_upto((uintptr_t)p);
    if (at > 0 && reg[at - 1].start == (uintptr_t)p) {
        memmove(reg + at - 1, reg + at, (reg_n - at) * sizeof *reg);
        reg_n--;
    }
    pthread_mutex_unlock(&reg_mu);
}

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
    size_t payload = n * size;
    memcpy(p, &tag, sizeof tag);
    memcpy(p + MEM_SIZE_AT, &payload, sizeof payload);
    peak_raise(atomic_fetch_add_explicit(&in_use, payload, memory_order_relaxed) + payload);
    if (atomic_load_explicit(&checking, memory_order_relaxed))
        reg_add(p + MEM_HEADER, n * size);
    return p + MEM_HEADER;
}

void mem_free(void *q) {
    if (!q)
        return;
    if (atomic_load_explicit(&checking, memory_order_relaxed))
        reg_remove(q); /* before the free: another thread's mem_alloc may get the address back at once */
    unsigned char *p = (unsigned char *)q - MEM_HEADER;
    uint32_t tag;
    size_t payload;
    memcpy(&tag, p, sizeof tag);
    memcpy(&payload, p + MEM_SIZE_AT, sizeof payload);
    atomic_fetch_sub_explicit(&in_use, payload, memory_order_relaxed);
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

void mem_check_enable(void) {
    atomic_store(&checking, 1);
}

int mem_check_enabled(void) {
    return atomic_load(&checking);
}

int mem_owns(const void *p, size_t bytes) {
    uintptr_t a = (uintptr_t)p;
    int owns = 0;
    pthread_mutex_lock(&reg_mu);
    size_t at = reg_upto(a);
    if (at > 0) {
        const struct mem_block *b = &reg[at - 1];
        size_t off = a - b->start; /* a >= start: the block starts at or before p */
        owns = off <= b->bytes && bytes <= b->bytes - off;
    }
    pthread_mutex_unlock(&reg_mu);
    return owns;
}

size_t mem_in_use(void) {
    return atomic_load(&in_use);
}

size_t mem_peak(void) {
    return atomic_load(&peak);
}

void mem_peak_reset(void) {
    atomic_store(&peak, atomic_load(&in_use));
}

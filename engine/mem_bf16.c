/* mem_bf16: tensors stored in bf16 (engine/mem.h, "bf16 storage").
 *
 * The model code indexes every tensor as a float array (`m->a.embed_t + i * c`), and the operation table
 * takes `float *` arguments; halving the bytes of activations must not touch either. So a bf16 tensor of n
 * values is two things: its storage, n uint16_t from mem_alloc (what memory plans and mem_peak count), and an
 * address range of n floats that nothing backs (mapped PROT_NONE, MAP_NORESERVE: address space only), which
 * the caller indexes like any float array. Element i of the range stands for storage element i; the
 * operations that take bf16 storage (engine/act16.c) ask mem_bf16_at where that is. Host code that reads or
 * writes the range itself faults at once (SIGSEGV), where it would otherwise read bits of the wrong type.
 *
 * The ranges are few (one per model block), sorted by address: a lookup is a binary search, and with no
 * range at all (every fp32 run) one relaxed load. */
#include "engine/mem.h"

#include "util/buf.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

struct range {
    uintptr_t start; /* the float range: n * 4 bytes */
    size_t n;
    uint16_t *store;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct range *ranges;
static size_t count, cap;
static atomic_size_t live; /* count, readable without the mutex */

/* The number of ranges starting at or before a (the caller holds mu). */
static size_t upto(uintptr_t a) {
    size_t lo = 0, hi = count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ranges[mid].start <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

float *mem_alloc_bf16(size_t n) {
    n = n ? n : 1;
    if (n > SIZE_MAX / sizeof(float)) {
        fprintf(stderr, "pulse-pipe: out of memory: %zu bf16 values\n", n);
        exit(1);
    }
    void *v = mmap(NULL, n * sizeof(float), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (v == MAP_FAILED) {
        fprintf(stderr, "pulse-pipe: out of address space for %zu bf16 values\n", n);
        exit(1);
    }
    uint16_t *store = mem_alloc(n, sizeof(uint16_t));
    pthread_mutex_lock(&mu);
    if (count == cap) {
        cap = cap ? 2 * cap : 16;
        ranges = xrealloc(ranges, cap * sizeof *ranges);
    }
    size_t at = upto((uintptr_t)v);
    memmove(ranges + at + 1, ranges + at, (count - at) * sizeof *ranges);
    ranges[at] = (struct range){(uintptr_t)v, n, store};
    atomic_store_explicit(&live, ++count, memory_order_relaxed);
    pthread_mutex_unlock(&mu);
    return v;
}

/* The range holding a, its end included (a pointer just past a tensor is a valid empty extent), or NULL;
 * the caller holds mu. */
static const struct range *range_of(uintptr_t a) {
    size_t at = upto(a);
    return at > 0 && a - ranges[at - 1].start <= ranges[at - 1].n * sizeof(float) ? &ranges[at - 1] : NULL;
}

uint16_t *mem_bf16_at(const void *p, size_t *avail) {
    if (!p || atomic_load_explicit(&live, memory_order_relaxed) == 0)
        return NULL;
    uint16_t *at = NULL;
    pthread_mutex_lock(&mu);
    const struct range *r = range_of((uintptr_t)p);
    if (r) {
        size_t i = ((uintptr_t)p - r->start) / sizeof(float);
        at = r->store + i;
        if (avail)
            *avail = r->n - i;
    }
    pthread_mutex_unlock(&mu);
    return at;
}

int mem_bf16_free(void *p) {
    if (!p || atomic_load_explicit(&live, memory_order_relaxed) == 0)
        return 0;
    pthread_mutex_lock(&mu);
    size_t at = upto((uintptr_t)p);
    if (at == 0 || ranges[at - 1].start != (uintptr_t)p) {
        pthread_mutex_unlock(&mu);
        return 0;
    }
    struct range r = ranges[at - 1];
    memmove(ranges + at - 1, ranges + at, (count - at) * sizeof *ranges);
    atomic_store_explicit(&live, --count, memory_order_relaxed);
    pthread_mutex_unlock(&mu);
    munmap(p, r.n * sizeof(float));
    mem_free(r.store);
    return 1;
}

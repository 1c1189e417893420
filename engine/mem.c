/* mem: heap or CUDA managed memory for tensors (engine/mem.h). A small header in front of each block records
 * which allocator made it, so mem_free never has to be told and blocks survive a change of mode, and its
 * size, for the bytes-in-use accounting memory plans are checked against. With checking on
 * (mem_check_enable), a registry of the live blocks answers mem_owns for the checked operation table. */
#include "engine/mem.h"

#include "util/buf.h"
#include "util/err.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <unistd.h>
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
    int readable; /* mem_host_reads: the fence leaves it readable */
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
    reg[at] = (struct mem_block){(uintptr_t)p, bytes, 0};
    reg_n++;
    pthread_mutex_unlock(&reg_mu);
}

/* A block made before checking was enabled is not in the registry: nothing to remove. Returns the block's
 * bytes (0 when it was not there). */
static size_t reg_remove(const void *p) {
    size_t bytes = 0;
    pthread_mutex_lock(&reg_mu);
    size_t at = reg_upto((uintptr_t)p);
    if (at > 0 && reg[at - 1].start == (uintptr_t)p) {
        bytes = reg[at - 1].bytes;
        memmove(reg + at - 1, reg + at, (reg_n - at) * sizeof *reg);
        reg_n--;
    }
    pthread_mutex_unlock(&reg_mu);
    return bytes;
}

static size_t page_size(void) {
    static size_t ps;
    if (!ps)
        ps = (size_t)sysconf(_SC_PAGESIZE);
    return ps;
}

/* The payload rounded up to whole pages. */
static size_t map_pages(size_t payload) {
    size_t ps = page_size();
    return (payload + ps - 1) / ps * ps;
}

/* The checked heap: one reserved address range that blocks are carved from in address order and never
 * reused, each a page for the header (at its end) and the payload on pages of its own, so the fence can
 * close any part of a block without touching another's (or malloc's) memory. A freed block's pages go back
 * to the system (MADV_DONTNEED). Guarded by reg_mu. */
#define ARENA_BYTES ((size_t)1 << 40)
static unsigned char *arena, *arena_top;

static int in_arena(const void *p) {
    return arena && (const unsigned char *)p >= arena && (const unsigned char *)p < arena + ARENA_BYTES;
}

static void arena_fail(const char *what, size_t payload) {
    fprintf(stderr, "pulse-pipe: out of memory (checked heap, %s): %zu bytes\n", what, payload);
    exit(1);
}

/* A fresh block, open (readable and writable) until the fence next closes; its pages are zero. */
static unsigned char *arena_block(size_t payload) {
    size_t ps = page_size();
    if (payload > ARENA_BYTES - ps)
        arena_fail("too large", payload);
    size_t size = ps + map_pages(payload);
    pthread_mutex_lock(&reg_mu);
    if (!arena) {
        void *a = mmap(NULL, ARENA_BYTES, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (a == MAP_FAILED)
            arena_fail("no address range", payload);
        arena = arena_top = a;
    }
    if (size > (size_t)(arena + ARENA_BYTES - arena_top))
        arena_fail("address range used up", payload);
    unsigned char *m = arena_top;
    arena_top += size;
    pthread_mutex_unlock(&reg_mu);
    if (mprotect(m, size, PROT_READ | PROT_WRITE) != 0)
        arena_fail("mprotect", payload);
    return m + ps - MEM_HEADER;
}

static void arena_free(unsigned char *q, size_t payload) {
    size_t ps = page_size();
    madvise(q - ps, ps + map_pages(payload), MADV_DONTNEED);
}

void *mem_alloc(size_t n, size_t size) {
    if (size && n > (SIZE_MAX - MEM_HEADER) / size) {
        fprintf(stderr, "pulse-pipe: out of memory: %zu x %zu bytes\n", n, size);
        exit(1);
    }
    size_t bytes = MEM_HEADER + n * size, payload = n * size;
    int checks = atomic_load_explicit(&checking, memory_order_relaxed);
    unsigned char *p;
    uint32_t tag = use_cuda ? MEM_CUDA : MEM_HEAP; /* checked heap blocks are known by their address */
#ifdef PULSE_HAVE_CUDA
    if (use_cuda)
        p = cuda_mem_alloc(bytes);
    else
#endif
        p = checks ? arena_block(payload) : xcalloc(1, bytes);
    memcpy(p, &tag, sizeof tag);
    memcpy(p + MEM_SIZE_AT, &payload, sizeof payload);
    peak_raise(atomic_fetch_add_explicit(&in_use, payload, memory_order_relaxed) + payload);
    if (checks)
        reg_add(p + MEM_HEADER, payload);
    return p + MEM_HEADER;
}

void mem_free(void *q) {
    if (!q || mem_bf16_free(q))
        return;
    size_t known = 0;
    if (atomic_load_explicit(&checking, memory_order_relaxed))
        known = reg_remove(q); /* before the free: another thread's mem_alloc may get the address back */
    if (in_arena(q)) {         /* its header may be behind the closed fence: the registry has its size */
        atomic_fetch_sub_explicit(&in_use, known, memory_order_relaxed);
        arena_free(q, known);
        return;
    }
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
    size_t avail;
    if (!atomic_load(&checking))
        return 0;
    if (mem_bf16_at(p, &avail))
        return bytes <= avail * sizeof(float);
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

/* The fence: page spans of the checked heap that operations touched since the last sync, closed; spans
 * [cur, n) belong to the operation now running and are open until it returns. Guarded by reg_mu. */
struct span {
    uintptr_t a, b;
    int readable;
};
static struct span *spans;
static size_t nspans, capspans, cur;

/* The block holding p (the caller holds reg_mu), or NULL. */
static const struct mem_block *block_of(uintptr_t p) {
    size_t at = reg_upto(p);
    return at > 0 && p - reg[at - 1].start < reg[at - 1].bytes ? &reg[at - 1] : NULL;
}

int mem_check_heap(const void *p) {
    return in_arena(p);
}

void mem_check_touch(const void *p, size_t bytes) {
    if (!in_arena(p) || bytes == 0)
        return;
    uintptr_t ps = page_size(), a = (uintptr_t)p / ps * ps, b = ((uintptr_t)p + bytes + ps - 1) / ps * ps;
    pthread_mutex_lock(&reg_mu);
    const struct mem_block *blk = block_of((uintptr_t)p);
    if (nspans == capspans) {
        capspans = capspans ? 2 * capspans : 1024;
        spans = xrealloc(spans, capspans * sizeof *spans);
    }
    spans[nspans++] = (struct span){a, b, blk && blk->readable};
    mprotect((void *)a, b - a, PROT_READ | PROT_WRITE); /* an earlier operation may have closed it */
    pthread_mutex_unlock(&reg_mu);
}

void mem_check_queued(void) {
    pthread_mutex_lock(&reg_mu);
    for (size_t i = cur; i < nspans; i++)
        mprotect((void *)spans[i].a, spans[i].b - spans[i].a, spans[i].readable ? PROT_READ : PROT_NONE);
    cur = nspans;
    pthread_mutex_unlock(&reg_mu);
}

void mem_check_synced(void) {
    pthread_mutex_lock(&reg_mu);
    for (size_t i = 0; i < nspans; i++)
        mprotect((void *)spans[i].a, spans[i].b - spans[i].a, PROT_READ | PROT_WRITE);
    nspans = cur = 0;
    pthread_mutex_unlock(&reg_mu);
}

void mem_host_reads(const void *p) {
    pthread_mutex_lock(&reg_mu);
    size_t at = reg_upto((uintptr_t)p);
    if (at > 0 && reg[at - 1].start == (uintptr_t)p)
        reg[at - 1].readable = 1;
    pthread_mutex_unlock(&reg_mu);
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

/* runtime: cudaemu's CUDA runtime: memory, the stream's queue, copies, errors and the device's description.
 *
 * One stream (the legacy default one, all engine/cuda/ uses): launches, asynchronous copies and sets, and
 * cuBLAS calls are queued and run in order when the host waits (cudaDeviceSynchronize,
 * cudaStreamSynchronize, a synchronous cudaMemcpy, cudaFree). An asynchronous copy from host memory takes
 * its bytes at the call, as the CUDA runtime stages pageable memory; one into host memory waits first.
 * cudaMalloc memory is mapped PROT_NONE except while the queue runs, so host code that touches it faults, as
 * it would on a GPU; managed memory stays readable (the host may use it after a wait). */
#include "internal.h"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <sys/mman.h>
#include <unistd.h>
#include <vector>

namespace {

struct alloc {
    size_t bytes, mapped; /* asked; the data pages, a PROT_NONE guard page after them */
    int kind;             /* 1 device, 2 managed */
    char *base;           /* the first data page */
};

std::recursive_mutex lock;
std::map<uintptr_t, alloc> allocs; /* by start address */
size_t in_use;
std::vector<std::function<void()>> queue;
int open_depth; /* > 0 while device memory is readable (the queue runs, or a synchronous copy) */
cudaError_t last_error;
/* A kernel that failed (PULSE_CUDAEMU_FAIL_LAUNCH) leaves the context unusable, as a fault does on a GPU:
 * every later call returns its error, cudaGetLastError included, and the work queued after it never runs. */
cudaError_t sticky;

cudaError_t note(cudaError_t e) {
    if (e != cudaSuccess)
        last_error = e;
    return e;
}

/* Emulated memory: PULSE_CUDAEMU_GIB (default 16). */
size_t total_bytes() {
    const char *e = getenv("PULSE_CUDAEMU_GIB");
    double gib = e ? atof(e) : 16.0;
    return (size_t)((gib > 0 ? gib : 16.0) * 1073741824.0);
}

void protect_device(int prot) {
    for (auto &a : allocs)
        if (a.second.kind == 1 && mprotect(a.second.base, a.second.mapped, prot) != 0)
            cudaemu::fail("cudaemu: mprotect failed");
}

/* Device memory readable for the duration of a piece of device work. */
struct device_open {
    device_open() {
        if (open_depth++ == 0)
            protect_device(PROT_READ | PROT_WRITE);
    }
    ~device_open() {
        if (--open_depth == 0)
            protect_device(PROT_NONE);
    }
};

cudaError_t flush() {
    std::lock_guard<std::recursive_mutex> g(lock);
    if (queue.empty() || sticky)
        return note(sticky);
    device_open open;
    std::vector<std::function<void()>> work;
    work.swap(queue);
    for (auto &w : work) {
        w();
        if (sticky)
            break;
    }
    return note(sticky);
}

size_t page_size() {
    return (size_t)sysconf(_SC_PAGESIZE);
}

/* An allocation ends as near a PROT_NONE guard page as cudaMalloc's 256-byte alignment allows: a kernel or
 * copy that runs more than that past its end faults. */
cudaError_t map_memory(void **p, size_t bytes, int kind) {
    std::lock_guard<std::recursive_mutex> g(lock);
    if (!p)
        return note(cudaErrorInvalidValue);
    *p = nullptr;
    if (bytes > total_bytes()) /* before the rounding below, which a size near SIZE_MAX would wrap */
        return note(cudaErrorMemoryAllocation);
    size_t page = page_size(), mapped = ((bytes ? bytes : 1) + page - 1) / page * page;
    if (in_use + mapped > total_bytes())
        return note(cudaErrorMemoryAllocation);
    void *m = mmap(nullptr, mapped + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return note(cudaErrorMemoryAllocation);
    char *base = (char *)m, *start = base + ((mapped - bytes) & ~(size_t)255);
    /* A GPU hands out whatever the memory held: all bits set (NaN as floats), so a buffer read before it is
     * written does not pass for zeros. */
    memset(base, 0xff, mapped);
    if (mprotect(base + mapped, page, PROT_NONE) != 0 ||
        (kind == 1 && open_depth == 0 && mprotect(base, mapped, PROT_NONE) != 0))
        cudaemu::fail("cudaemu: mprotect failed");
    allocs[(uintptr_t)start] = alloc{bytes, mapped, kind, base};
    in_use += mapped;
    *p = start;
    return cudaSuccess;
}

} // namespace

namespace cudaemu {

void fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "pulse-pipe: cudaemu: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stdout);
    _exit(1); /* maybe on a kernel thread's fiber: no exit handlers there */
}

int memory_kind(const void *p, size_t bytes) {
    std::lock_guard<std::recursive_mutex> g(lock);
    uintptr_t a = (uintptr_t)p;
    auto it = allocs.upper_bound(a);
    if (it == allocs.begin())
        return 0;
    --it;
    return a - it->first + bytes <= it->second.bytes ? it->second.kind : 0;
}

/* PULSE_CUDAEMU_FAIL_LAUNCH=N: the N-th launch fails (as a kernel that faults does, the error showing at
 * the next check), so the engine's handling of a CUDA error can be tested. */
static bool injected_failure() {
    static long count;
    const char *e = getenv("PULSE_CUDAEMU_FAIL_LAUNCH");
    return ++count == (e ? atol(e) : 0);
}

void enqueue_launch(const char *name, int line, dim3 grid, dim3 block, std::function<void()> body) {
    if (!launch_ok(grid, block)) {
        note(cudaErrorInvalidConfiguration);
        return;
    }
    if (injected_failure()) { /* it fails when it would run, and the error shows at the next wait */
        enqueue([]() { sticky = cudaErrorLaunchFailure; });
        return;
    }
    enqueue([=]() { run_launch(name, line, grid, block, body); });
}

void enqueue(std::function<void()> w) {
    std::lock_guard<std::recursive_mutex> g(lock);
    queue.push_back(std::move(w));
}

} // namespace cudaemu

const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess:
        return "no error";
    case cudaErrorInvalidValue:
        return "invalid argument";
    case cudaErrorMemoryAllocation:
        return "out of memory";
    case cudaErrorInvalidConfiguration:
        return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer:
        return "invalid device pointer";
    case cudaErrorInvalidMemcpyDirection:
        return "invalid copy direction for memcpy";
    case cudaErrorNoDevice:
        return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice:
        return "invalid device ordinal";
    case cudaErrorLaunchFailure:
        return "unspecified launch failure";
    }
    return "unknown error";
}

cudaError_t cudaGetLastError(void) {
    std::lock_guard<std::recursive_mutex> g(lock);
    if (sticky)
        return sticky;
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}

cudaError_t cudaGetDeviceCount(int *n) {
    *n = 1;
    return cudaSuccess;
}

cudaError_t cudaGetDevice(int *dev) {
    *dev = 0;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int dev) {
    if (dev != 0)
        return note(cudaErrorInvalidDevice);
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "cudaemu (the CUDA backend emulated on the CPU)");
    p->totalGlobalMem = total_bytes();
    p->major = 9;
    p->multiProcessorCount = 1;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *value, enum cudaDeviceAttr attr, int dev) {
    if (dev != 0 || attr != cudaDevAttrConcurrentManagedAccess)
        return note(cudaErrorInvalidValue);
    *value = 1;
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) {
    return flush();
}

cudaError_t cudaStreamSynchronize(cudaStream_t s) {
    if (s != 0)
        return note(cudaErrorInvalidValue);
    return flush();
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total) {
    std::lock_guard<std::recursive_mutex> g(lock);
    *total = total_bytes();
    *free_bytes = *total > in_use ? *total - in_use : 0;
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **p, size_t bytes) {
    if (sticky)
        return sticky;
    return map_memory(p, bytes, 1);
}

cudaError_t cudaMallocManaged(void **p, size_t bytes, unsigned flags) {
    if (flags != cudaMemAttachGlobal)
        return note(cudaErrorInvalidValue);
    return map_memory(p, bytes, 2);
}

/* cudaFree waits for the device first, as the CUDA runtime's does. */
cudaError_t cudaFree(void *p) {
    if (!p)
        return cudaSuccess;
    if (flush() != cudaSuccess)
        return sticky;
    std::lock_guard<std::recursive_mutex> g(lock);
    auto it = allocs.find((uintptr_t)p);
    if (it == allocs.end())
        return note(cudaErrorInvalidDevicePointer);
    munmap(it->second.base, it->second.mapped + page_size());
    in_use -= it->second.mapped;
    allocs.erase(it);
    return cudaSuccess;
}

/* Whether a copy's pointers are where its kind says (Default: anywhere), and its ranges do not overlap (the
 * CUDA runtime does not allow it; engine/cuda's copy goes through scratch when they do). */
static bool copy_ok(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind) {
    uintptr_t a = (uintptr_t)dst, b = (uintptr_t)src;
    if (bytes && a < b + bytes && b < a + bytes)
        return false;
    bool d = cudaemu::memory_kind(dst, bytes) != 0, s = cudaemu::memory_kind(src, bytes) != 0;
    switch (kind) {
    case cudaMemcpyHostToDevice:
        return d;
    case cudaMemcpyDeviceToHost:
        return s;
    case cudaMemcpyDeviceToDevice:
        return d && s;
    case cudaMemcpyHostToHost:
    case cudaMemcpyDefault:
        return true;
    }
    return false;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind) {
    if (!copy_ok(dst, src, bytes, kind))
        return note(cudaErrorInvalidValue);
    /* between two cudaMalloc buffers the host does not wait (the runtime's documented behaviour) */
    if (cudaemu::memory_kind(dst, bytes) == 1 && cudaemu::memory_kind(src, bytes) == 1)
        return cudaMemcpyAsync(dst, src, bytes, kind, 0);
    if (flush() != cudaSuccess)
        return sticky;
    std::lock_guard<std::recursive_mutex> g(lock);
    device_open open;
    if (bytes)
        memmove(dst, src, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind,
                            cudaStream_t s) {
    if (sticky)
        return sticky;
    if (s != 0 || !copy_ok(dst, src, bytes, kind))
        return note(cudaErrorInvalidValue);
    if (!cudaemu::memory_kind(dst, bytes)) /* into host memory: the host waits for it */
        return cudaMemcpy(dst, src, bytes, kind);
    if (!cudaemu::memory_kind(src, bytes)) { /* from host memory: its bytes as they are now */
        std::vector<char> copy((const char *)src, (const char *)src + bytes);
        cudaemu::enqueue([=]() { memcpy(dst, copy.data(), bytes); });
    } else {
        cudaemu::enqueue([=]() { memmove(dst, src, bytes); });
    }
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes, cudaStream_t s) {
    if (sticky)
        return sticky;
    if (s != 0 || !cudaemu::memory_kind(p, bytes))
        return note(cudaErrorInvalidValue);
    cudaemu::enqueue([=]() { memset(p, value, bytes); });
    return cudaSuccess;
}

/* In stream order, like cudaMemsetAsync (it does not wait for the set to finish either). */
cudaError_t cudaMemset(void *p, int value, size_t bytes) {
    return cudaMemsetAsync(p, value, bytes, 0);
}

/* Advice and prefetches change where pages live, not what they hold: checked, then nothing. */
static cudaError_t managed_range(const void *p, size_t bytes, struct cudaMemLocation loc) {
    if (cudaemu::memory_kind(p, bytes) != 2)
        return note(cudaErrorInvalidValue);
    if (loc.type == cudaMemLocationTypeDevice ? loc.id != 0 : loc.type != cudaMemLocationTypeHost)
        return note(cudaErrorInvalidDevice);
    return cudaSuccess;
}

cudaError_t cudaMemAdvise(const void *p, size_t bytes, enum cudaMemoryAdvise advice,
                          struct cudaMemLocation loc) {
    (void)advice;
    return managed_range(p, bytes, loc);
}

cudaError_t cudaMemPrefetchAsync(const void *p, size_t bytes, struct cudaMemLocation loc, unsigned flags,
                                 cudaStream_t s) {
    if (flags != 0 || s != 0)
        return note(cudaErrorInvalidValue);
    return managed_range(p, bytes, loc);
}

/* cudaemu's cuda_runtime.h: the part of the CUDA runtime engine/cuda/ uses, for running that backend on the
 * CPU (tests/cudaemu/README.md). Only engine/cuda's .cu files include it, compiled as C++ after
 * tests/cudaemu/launch.sh rewrote their kernel launches (`k<<<g, b>>>(args)` becomes
 * `cudaemu::launch(k, "k", __LINE__, g, b)(args)`).
 *
 * What it models, and why: kernels run block after block on the calling thread, each CUDA thread a fiber
 * that runs to its next __syncthreads (sched.cpp); work is queued in stream order and runs only when the
 * host waits (cudaDeviceSynchronize, a synchronous copy, cudaFree), as on a GPU, so host code that reads a
 * result before waiting for it reads stale data here too; cudaMalloc memory is inaccessible to the host
 * (PROT_NONE) outside that work, as a GPU's memory is; a pointer a kernel or cuBLAS receives must lie in
 * memory from cudaMalloc or cudaMallocManaged. It is not a GPU: no warps, no memory model, and library math
 * (expf, erff) is the host's. */
#ifndef CUDAEMU_CUDA_RUNTIME_H
#define CUDAEMU_CUDA_RUNTIME_H

#ifndef __cplusplus
#error "cudaemu: the CUDA sources compile as C++"
#endif

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
/* Blocks run one after another on one host thread, so a block's shared memory can be a static: in a section
 * of its own, which sched.cpp fills with all bits set before each block (a GPU's shared memory starts with
 * whatever it held, not with what the previous block left). */
#define __shared__ static __attribute__((section("cudaemu_shared")))

typedef enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevicePointer = 17,
    cudaErrorInvalidMemcpyDirection = 21,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101,
    cudaErrorLaunchFailure = 719,
} cudaError_t;

enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
};

enum cudaMemoryAdvise {
    cudaMemAdviseSetReadMostly = 1,
    cudaMemAdviseUnsetReadMostly = 2,
    cudaMemAdviseSetPreferredLocation = 3,
    cudaMemAdviseUnsetPreferredLocation = 4,
    cudaMemAdviseSetAccessedBy = 5,
    cudaMemAdviseUnsetAccessedBy = 6,
};

enum cudaMemLocationType {
    cudaMemLocationTypeInvalid = 0,
    cudaMemLocationTypeDevice = 1,
    cudaMemLocationTypeHost = 2,
};

struct cudaMemLocation {
    enum cudaMemLocationType type;
    int id;
};

enum cudaDeviceAttr {
    cudaDevAttrConcurrentManagedAccess = 89,
};

#define cudaMemAttachGlobal 0x01

typedef struct CUstream_st *cudaStream_t;

struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem;
    int major, minor;
    int multiProcessorCount;
};

struct uint3 {
    unsigned x, y, z;
};

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
};

/* The built-in variables of the thread that runs (sched.cpp sets them before each fiber switch). */
extern uint3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;

const char *cudaGetErrorString(cudaError_t e);
cudaError_t cudaGetLastError(void);
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaGetDevice(int *dev);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int dev);
cudaError_t cudaDeviceGetAttribute(int *value, enum cudaDeviceAttr attr, int dev);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes);
cudaError_t cudaMalloc(void **p, size_t bytes);
cudaError_t cudaMallocManaged(void **p, size_t bytes, unsigned flags = cudaMemAttachGlobal);
/* The typed overloads the CUDA runtime's header has too. */
template <typename T> cudaError_t cudaMalloc(T **p, size_t bytes) {
    return cudaMalloc((void **)p, bytes);
}
template <typename T>
cudaError_t cudaMallocManaged(T **p, size_t bytes, unsigned flags = cudaMemAttachGlobal) {
    return cudaMallocManaged((void **)p, bytes, flags);
}
cudaError_t cudaFree(void *p);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind,
                            cudaStream_t s = 0);
cudaError_t cudaMemset(void *p, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes, cudaStream_t s = 0);
cudaError_t cudaMemAdvise(const void *p, size_t bytes, enum cudaMemoryAdvise advice,
                          struct cudaMemLocation loc);
cudaError_t cudaMemPrefetchAsync(const void *p, size_t bytes, struct cudaMemLocation loc, unsigned flags,
                                 cudaStream_t s = 0);

/* Device intrinsics. __syncthreads names its place in the source: a divergent barrier is two places
 * (sched.cpp), and the place survives an optimiser that copies one call into two branches (GCC at -O3),
 * where a return address would not. */
void cudaemu_syncthreads(const char *site);
#define CUDAEMU_STR2(x) #x
#define CUDAEMU_STR(x) CUDAEMU_STR2(x)
#define __syncthreads() cudaemu_syncthreads(__FILE__ ":" CUDAEMU_STR(__LINE__))
/* An atomic read-modify-write, so that ThreadSanitizer (README.md) sees it as one. */
static inline int atomicMax(int *address, int value) {
    int old = __atomic_load_n(address, __ATOMIC_RELAXED);
    while (value > old &&
           !__atomic_compare_exchange_n(address, &old, value, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
    return old;
}
static inline unsigned __float_as_uint(float x) {
    unsigned u;
    std::memcpy(&u, &x, sizeof u);
    return u;
}
static inline float __uint_as_float(unsigned u) {
    float x;
    std::memcpy(&x, &u, sizeof x);
    return x;
}

namespace cudaemu {

/* Which allocation holds [p, p + bytes): 1 device (cudaMalloc), 2 managed, 0 none (runtime.cpp). */
int memory_kind(const void *p, size_t bytes);
/* One line on standard error and exit 1, as engine/cuda/ reports its own errors. */
[[noreturn]] void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Queues the launch of `body` on grid x block threads (sched.cpp runs it when the host waits); an illegal
 * configuration is the launch's error instead (cudaGetLastError), as on a GPU. */
void enqueue_launch(const char *name, int line, dim3 grid, dim3 block, std::function<void()> body);

/* A pointer argument must point into memory a GPU could read (a host pointer is an illegal address there), or
 * just past its end (a pointer a kernel receives but does not read, as for an empty range). */
template <typename T> void check_arg(const char *name, int line, int i, const T &a) {
    if constexpr (std::is_pointer_v<T>) {
        if (a && !memory_kind(a, 0))
            fail("kernel %s (line %d): argument %d is not device or managed memory", name, line, i);
    }
}

template <typename... P> struct launcher {
    void (*kernel)(P...);
    const char *name;
    int line;
    dim3 grid, block;
    template <typename... A> void operator()(A &&...a) const {
        static_assert(sizeof...(A) == sizeof...(P), "kernel launched with the wrong number of arguments");
        std::tuple<P...> args(static_cast<P>(a)...);
        std::apply(
            [&](const auto &...x) {
                int i = 0;
                (check_arg(name, line, i++, x), ...);
            },
            args);
        auto k = kernel;
        enqueue_launch(name, line, grid, block, [k, args]() { std::apply(k, args); });
    }
};

template <typename... P>
launcher<P...> launch(void (*kernel)(P...), const char *name, int line, dim3 grid, dim3 block) {
    return launcher<P...>{kernel, name, line, grid, block};
}

} // namespace cudaemu

#endif

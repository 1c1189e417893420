/* test_cudaemu: the emulator's own checks, each shown to work: a block reduction and cuBLAS's products give
 * the right numbers (against loops here), and each thing a GPU would refuse or get wrong is caught: a
 * divergent barrier (threads that return, or wait at two barriers), a host pointer handed to a kernel, the
 * host touching cudaMalloc memory, memory read before it was written (NaN, not zeros), an overlapping copy,
 * TF32 math, a result read before the host waited for it, a failed kernel's error (at the wait, then sticky),
 * an illegal launch, a product whose leading dimension or extent is wrong, and a kernel whose threads race
 * (its result differs between PULSE_CUDAEMU_ORDER=forward and reverse); built with ThreadSanitizer, a lost
 * update and a read racing a write are reported, within a block and between two blocks of a launch, and a
 * correct reduction over two blocks, and blocks of two launches, are not. Written as CUDA, so it would run on
 * a GPU too, where the deliberate faults would misbehave instead. The faults run in child processes (fork),
 * whose exit status and message are checked. */
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int checks, failures;

static void check(int ok, const char *what) {
    checks++;
    if (!ok) {
        failures++;
        printf("FAIL: %s\n", what);
    } else {
        printf("ok: %s\n", what);
    }
}

#define THREADS 128

static __global__ void block_sum(float *out, const float *in, size_t n) {
    __shared__ float sh[THREADS];
    float acc = 0.0f;
    for (size_t i = threadIdx.x; i < n; i += THREADS)
        acc += in[i];
    sh[threadIdx.x] = acc;
    __syncthreads();
    for (unsigned s = THREADS / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s)
            sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0)
        out[blockIdx.x] = sh[0];
}

/* Half the block returns before the barrier the other half waits at. */
static __global__ void divergent(float *out) {
    __shared__ float sh[THREADS];
    if (threadIdx.x >= THREADS / 2)
        return;
    sh[threadIdx.x] = 1.0f;
    __syncthreads();
    out[threadIdx.x] = sh[THREADS / 2 - 1 - threadIdx.x];
}

/* Block 0 sets the shared value, block 1 reads it without setting it: a GPU gives block 1 whatever its
 * shared memory held. */
static __global__ void shared_left(float *out) {
    __shared__ float sh[1];
    if (blockIdx.x == 0 && threadIdx.x == 0)
        sh[0] = 5.0f;
    __syncthreads();
    if (threadIdx.x == 0)
        out[blockIdx.x] = sh[0];
}

/* Even and odd threads wait at two different barriers (the code around each differs, so a compiler keeps
 * them two calls). */
static __global__ void two_barriers(float *out) {
    if (threadIdx.x % 2) {
        __syncthreads();
        out[threadIdx.x] = 1.0f;
    } else {
        out[threadIdx.x] = 2.0f;
        __syncthreads();
    }
}

static __global__ void copy_kernel(float *dst, const float *src, size_t n) {
    for (size_t i = threadIdx.x; i < n; i += blockDim.x)
        dst[i] = src[i];
}

/* Each thread reads its neighbour's slot with no barrier between the write and the read: a race. */
static __global__ void racy(float *out) {
    __shared__ float sh[THREADS];
    sh[threadIdx.x] = (float)threadIdx.x;
    out[threadIdx.x] = sh[(threadIdx.x + 1) % THREADS];
}

static __global__ void fill(float *x, float v, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i] = v;
}

/* check() for a child's outcome: on failure, the start of what it printed. */
static void check_child(int ok, const char *what, const char *err) {
    check(ok, what);
    if (!ok)
        printf("  its standard error: %.6000s\n", err);
}

/* Runs f in a child; returns its exit status (or 128 + signal) and its standard error in err. */
static int child(void (*f)(void), char *err, size_t cap) {
    int fd[2];
    if (pipe(fd) != 0)
        abort();
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 2);
        close(fd[0]);
        f();
        _exit(0);
    }
    close(fd[1]);
    size_t len = 0;
    ssize_t r;
    while (len + 1 < cap && (r = read(fd[0], err + len, cap - 1 - len)) > 0)
        len += (size_t)r;
    err[len] = 0;
    close(fd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* child() of this program run afresh as `test_cudaemu NAME` (main runs scenario NAME). */
static const char *self;
static const char *exec_name;
static void exec_self(void) {
    execl(self, self, exec_name, (char *)NULL);
    _exit(127);
}
static int child_exec(const char *name, char *err, size_t cap) {
    exec_name = name;
    return child(exec_self, err, cap);
}

static float *managed(size_t n) {
    float *p = NULL;
    if (cudaMallocManaged(&p, n * sizeof(float)) != cudaSuccess)
        abort();
    return p;
}

static void run_divergent(void) {
    float *o = managed(THREADS);
    divergent<<<1, THREADS>>>(o);
    cudaDeviceSynchronize();
}

static void run_host_arg(void) {
    static float host[16];
    fill<<<1, 16>>>(host, 1.0f, 16);
    cudaDeviceSynchronize();
}

/* A kernel writing 100 floats past the end of its buffer. */
static void run_overrun(void) {
    float *d = NULL;
    cudaMalloc(&d, 1000 * sizeof(float));
    fill<<<1, 32>>>(d, 1.0f, 1100);
    cudaDeviceSynchronize();
}

static void run_host_touch(void) {
    float *d = NULL;
    cudaMalloc(&d, 64);
    d[0] = 1.0f; /* the host writes device memory: a fault */
}

static void run_two_barriers(void) {
    float *o = managed(THREADS);
    two_barriers<<<1, THREADS>>>(o);
    cudaDeviceSynchronize();
}

/* Every thread adds one to the same address, no atomic: updates are lost on a GPU. The fibers never lose
 * one; ThreadSanitizer (a -fsanitize=thread build) reports the race. */
static __global__ void lost_update(float *x) {
    x[0] += 1.0f;
}

static void run_lost_update(void) {
    float *x = managed(1);
    x[0] = 0.0f;
    lost_update<<<1, 64>>>(x);
    cudaDeviceSynchronize();
}

/* Thread 0 of every block adds one to the same address, no atomic: blocks may run at once on a GPU, so
 * updates are lost between blocks too. */
static __global__ void lost_update_blocks(float *x) {
    if (threadIdx.x == 0)
        x[0] += 1.0f;
}

static void run_lost_update_blocks(void) {
    float *x = managed(1);
    x[0] = 0.0f;
    lost_update_blocks<<<4, 32>>>(x);
    cudaDeviceSynchronize();
}

/* Block 1 reads what block 0 wrote in the same launch: nothing orders them on a GPU. */
static __global__ void stale_read_blocks(float *x) {
    if (threadIdx.x == 0 && blockIdx.x == 0)
        x[0] = 1.0f;
    if (threadIdx.x == 5 && blockIdx.x == 1)
        x[1] = x[0];
}

static void run_stale_read_blocks(void) {
    float *x = managed(2);
    x[0] = 0.0f;
    stale_read_blocks<<<2, 32>>>(x);
    cudaDeviceSynchronize();
}

/* Blocks that write their own elements, read by the next launch: ordered by the stream, no race. */
static void run_two_launches(void) {
    float *x = managed(1024), *y = managed(1024);
    fill<<<8, 128>>>(x, 1.0f, 1024);
    copy_kernel<<<1, 64>>>(y, x, 1024);
    cudaDeviceSynchronize();
    if (y[0] != 1.0f || y[1023] != 1.0f)
        _exit(1);
}

/* An fp32 product on a handle in TF32 math: a GPU would round the inputs to TF32, which is not emulated. */
static void run_tf32(void) {
    cublasHandle_t h;
    cublasCreate(&h);
    cublasSetMathMode(h, CUBLAS_TF32_TENSOR_OP_MATH);
    float *a = managed(4), one = 1.0f, zero = 0.0f;
    cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 1, &one, a, 2, a, 1, &zero, a, 2);
    cudaDeviceSynchronize();
}

static void run_block_sum(void) {
    float *in = managed(1000), *out = managed(2);
    for (int i = 0; i < 1000; i++)
        in[i] = 1.0f;
    block_sum<<<2, THREADS>>>(out, in, 1000);
    cudaDeviceSynchronize();
    if (out[0] != 1000.0f || out[1] != 1000.0f)
        _exit(1);
}

static void run_racy(void) {
    float *o = managed(THREADS);
    racy<<<1, THREADS>>>(o);
    cudaDeviceSynchronize();
    for (int i = 0; i < THREADS; i++)
        fprintf(stderr, "%g ", o[i]);
}

static void test_sum(void) {
    size_t n = 1000;
    float *in = managed(n), *out = managed(1);
    double want = 0.0;
    for (size_t i = 0; i < n; i++) {
        in[i] = (float)(i % 7) - 2.5f;
        want += in[i];
    }
    block_sum<<<1, THREADS>>>(out, in, n);
    cudaDeviceSynchronize();
    check(fabs(out[0] - want) < 1e-3, "a block reduction sums 1000 values");
}

static void test_faults(void) {
    char err[65536];
    int rc = child(run_divergent, err, sizeof err);
    check_child(rc == 1 && strstr(err, "divergent barrier") && strstr(err, "kernel divergent"),
                "a divergent barrier is an error naming the kernel", err);
    rc = child(run_host_arg, err, sizeof err);
    check_child(rc == 1 && strstr(err, "argument 0 is not device or managed memory"),
                "a host pointer handed to a kernel is an error", err);
    rc = child(run_overrun, err, sizeof err);
    check_child(rc == 128 + SIGSEGV || (rc != 0 && strstr(err, "SEGV")),
                "a kernel writing past its buffer's end faults", err);
    rc = child(run_two_barriers, err, sizeof err);
    check_child(rc == 1 && strstr(err, "two different __syncthreads"),
                "threads waiting at two barriers are an error", err);
    rc = child_exec("tf32", err, sizeof err); /* a fresh process: cuBLAS starts threads */
    check_child(rc == 1 && strstr(err, "TF32"), "an fp32 product in TF32 math is refused, not run in fp32",
                err);
    rc = child(run_host_touch, err, sizeof err);
    check_child(rc == 128 + SIGSEGV || (rc != 0 && strstr(err, "SEGV")),
                "the host touching cudaMalloc memory faults", err);
#if defined(__SANITIZE_THREAD__)
    /* in fresh processes: ThreadSanitizer stops checking in a child forked from a process with threads */
    rc = child_exec("lost_update", err, sizeof err);
    check_child(strstr(err, "ThreadSanitizer: data race") != NULL, "ThreadSanitizer reports a lost update",
                err);
    rc = child_exec("racy", err, sizeof err);
    check_child(strstr(err, "ThreadSanitizer: data race") != NULL,
                "ThreadSanitizer reports a read racing a write", err);
    rc = child_exec("block_sum", err, sizeof err);
    check_child(rc == 0 && !strstr(err, "ThreadSanitizer"),
                "ThreadSanitizer finds nothing in a correct reduction over two blocks", err);
    rc = child_exec("lost_update_blocks", err, sizeof err);
    check_child(strstr(err, "ThreadSanitizer: data race") != NULL,
                "ThreadSanitizer reports a lost update between blocks", err);
    rc = child_exec("stale_read_blocks", err, sizeof err);
    check_child(strstr(err, "ThreadSanitizer: data race") != NULL,
                "ThreadSanitizer reports a block reading what another block of the launch wrote", err);
    rc = child_exec("two_launches", err, sizeof err);
    check_child(rc == 0 && !strstr(err, "ThreadSanitizer"),
                "ThreadSanitizer finds nothing between blocks of two launches in stream order", err);
#endif
    setenv("PULSE_CUDAEMU_ORDER", "forward", 1);
    char fwd[65536], rev[65536];
    int rf = child(run_racy, fwd, sizeof fwd);
    setenv("PULSE_CUDAEMU_ORDER", "reverse", 1);
    int rr = child(run_racy, rev, sizeof rev);
    unsetenv("PULSE_CUDAEMU_ORDER");
    check(rf == 0 && rr == 0 && strcmp(fwd, rev) != 0,
          "a racing kernel's result depends on the thread order");
}

/* Memory a kernel did not write holds all bits set, not zeros: fresh cudaMalloc memory, and shared memory
 * another block left. Overlapping copies are refused. */
static void test_uninitialised(void) {
    float *d = NULL, *o = managed(64);
    cudaMalloc(&d, 64 * sizeof(float));
    copy_kernel<<<1, 32>>>(o, d, 64);
    cudaDeviceSynchronize();
    check(isnan(o[0]) && isnan(o[63]), "fresh cudaMalloc memory reads as NaN");
    shared_left<<<2, 32>>>(o);
    cudaDeviceSynchronize();
    check(o[0] == 5.0f && isnan(o[1]), "a block's shared memory does not hold what the last block left");
    check(cudaMemcpy(o + 1, o, 8 * sizeof(float), cudaMemcpyDefault) == cudaErrorInvalidValue &&
              cudaGetLastError() == cudaErrorInvalidValue,
          "an overlapping copy is refused");
    cudaFree(d);
}

/* A failed kernel (PULSE_CUDAEMU_FAIL_LAUNCH=1 in a fresh process: `test_cudaemu sticky`): its error shows at
 * the wait, then every call returns it. */
static int sticky_child(void) {
    float *x = managed(64);
    fill<<<1, 64>>>(x, 1.0f, 64);
    int ok = cudaGetLastError() == cudaSuccess;
    ok &= cudaDeviceSynchronize() == cudaErrorLaunchFailure;
    ok &= cudaGetLastError() == cudaErrorLaunchFailure && cudaGetLastError() == cudaErrorLaunchFailure;
    void *p = NULL;
    ok &= cudaMalloc(&p, 16) == cudaErrorLaunchFailure;
    ok &= x[0] != 1.0f; /* the kernel never ran */
    return ok ? 0 : 1;
}

static void test_sticky(void) {
    char err[4096];
    setenv("PULSE_CUDAEMU_FAIL_LAUNCH", "1", 1); /* this process is past its first launch */
    int rc = child_exec("sticky", err, sizeof err);
    unsetenv("PULSE_CUDAEMU_FAIL_LAUNCH");
    check_child(rc == 0, "a failed kernel's error shows at the wait and then sticks", err);
}

/* Queued work runs when the host waits: a read before the wait sees the old value. */
static void test_order(void) {
    float *x = managed(256);
    x[0] = -1.0f;
    fill<<<2, 64>>>(x, 7.0f, 256);
    check(x[0] == -1.0f, "a kernel's result is not there before the host waits");
    cudaDeviceSynchronize();
    check(x[0] == 7.0f && x[255] == 7.0f, "and is there after");
    float host = 3.0f;
    cudaMemcpyAsync(x, &host, sizeof host, cudaMemcpyHostToDevice, 0);
    host = 4.0f; /* the copy took the bytes at the call, as the runtime stages pageable memory */
    cudaDeviceSynchronize();
    check(x[0] == 3.0f, "an asynchronous copy from the host takes its bytes at the call");
    fill<<<1, 2048>>>(x, 1.0f, 1);
    check(cudaGetLastError() == cudaErrorInvalidConfiguration && cudaGetLastError() == cudaSuccess,
          "a block of 2048 threads is a launch error, cleared once read");
}

/* C = op(A) op(B) against loops, column-major, for every pair of ops, in fp32 and bf16. */
static void test_gemm(void) {
    cublasHandle_t h;
    cublasCreate(&h);
    int m = 5, n = 4, k = 3, ld = 7;
    float *a = managed(ld * 7), *b = managed(ld * 7), *c = managed(ld * n);
    __nv_bfloat16 *ah, *bh;
    cudaMallocManaged(&ah, ld * 7 * sizeof *ah);
    cudaMallocManaged(&bh, ld * 7 * sizeof *bh);
    for (int i = 0; i < ld * 7; i++) {
        a[i] = (float)((i * 7) % 11) - 5.0f; /* small integers: exact in bf16 and in every sum */
        b[i] = (float)((i * 5) % 9) - 4.0f;
        __nv_bfloat16_raw ra = {(unsigned short)(__float_as_uint(a[i]) >> 16)},
                          rb = {(unsigned short)(__float_as_uint(b[i]) >> 16)};
        ah[i] = __nv_bfloat16(ra);
        bh[i] = __nv_bfloat16(rb);
    }
    int ok = 1;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int bf = 0; bf < 2; bf++) {
                float one = 1.0f, zero = 0.0f;
                cublasOperation_t oa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, ob = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
                cublasStatus_t s =
                    bf ? cublasGemmEx(h, oa, ob, m, n, k, &one, ah, CUDA_R_16BF, ld, bh, CUDA_R_16BF, ld,
                                      &zero, c, CUDA_R_32F, ld, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT)
                       : cublasSgemm(h, oa, ob, m, n, k, &one, a, ld, b, ld, &zero, c, ld);
                cudaDeviceSynchronize();
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++) {
                        float want = 0.0f;
                        for (int l = 0; l < k; l++)
                            want +=
                                (ta ? a[l + i * ld] : a[i + l * ld]) * (tb ? b[j + l * ld] : b[l + j * ld]);
                        ok &= s == CUBLAS_STATUS_SUCCESS && c[i + j * ld] == want;
                    }
            }
    check(ok, "sgemm and bf16 GemmEx equal loops for N/T x N/T");
    float one = 1.0f, zero = 0.0f;
    check(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, a, m - 1, b, ld, &zero, c, ld) ==
              CUBLAS_STATUS_INVALID_VALUE,
          "lda below m is refused");
    check(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 0, n, k, &one, a, 0, b, ld, &zero, c, ld) ==
              CUBLAS_STATUS_INVALID_VALUE,
          "lda 0 is refused even when m is 0");
    check(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, 40, &one, a, ld, b, ld, &zero, c, ld) ==
              CUBLAS_STATUS_INVALID_VALUE,
          "a matrix reaching past its allocation is refused");
    float host[64] = {0};
    check(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 2, &one, host, 2, b, ld, &zero, c, ld) ==
              CUBLAS_STATUS_INVALID_VALUE,
          "a host matrix is refused");
    /* strided batched: two products 40 elements apart equal two single calls */
    float *c2 = managed(2 * 40);
    cublasSgemmStridedBatched(h, CUBLAS_OP_T, CUBLAS_OP_N, 2, 2, 3, &one, a, 3, 20, b, 3, 20, &zero, c2, 2,
                              40, 2);
    cudaDeviceSynchronize();
    int bok = 1;
    for (int q = 0; q < 2; q++)
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++) {
                float want = 0.0f;
                for (int l = 0; l < 3; l++)
                    want += a[q * 20 + l + i * 3] * b[q * 20 + l + j * 3];
                bok &= c2[q * 40 + i + j * 2] == want;
            }
    check(bok, "a strided batch equals its products one by one");

    /* a bf16 output: 1 x 1 x 2 products whose fp32 sums sit exactly on, beside and between bf16 values */
    unsigned short *ch;
    cudaMallocManaged(&ch, 4 * sizeof *ch);
    static const float pairs[4][2] = {{1.0f, 0x1p-8f}, {1.0f, 0x3p-8f}, {1.0f, 0x1p-9f}, {-1.0f, -0x1.8p-7f}};
    /* 1 + 2^-8: a tie, to 1 (even); 1 + 3 2^-8: a tie, to 1 + 2^-6 (even); 1 + 2^-9: below half a step;
     * -1 - 3 2^-8: a tie, to -1 - 2^-6 (even) */
    static const unsigned short want16[4] = {0x3f80, 0x3f82, 0x3f80, 0xbf82};
    int rok = 1;
    for (int q = 0; q < 4; q++) {
        __nv_bfloat16_raw r0 = {(unsigned short)(__float_as_uint(pairs[q][0]) >> 16)},
                          r1 = {(unsigned short)(__float_as_uint(pairs[q][1]) >> 16)}, r2 = {0x3f80};
        ah[0] = __nv_bfloat16(r0);
        ah[1] = __nv_bfloat16(r1);
        bh[0] = bh[1] = __nv_bfloat16(r2); /* ones: the output is the pair's sum */
        ch[q] = 0x7fc0;                    /* NaN: beta 0 must not read it */
        rok &= cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 2, &one, ah, CUDA_R_16BF, 1, bh, CUDA_R_16BF,
                            2, &zero, ch + q, CUDA_R_16BF, 1, CUBLAS_COMPUTE_32F,
                            CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS;
        cudaDeviceSynchronize();
        rok &= ch[q] == want16[q];
    }
    /* beta 1 reads the bf16 C widened: 1 + (1 + 2^-7) = 2 + 2^-7, a tie between 2 and 2 + 2^-6: 2 (even) */
    __nv_bfloat16_raw r1 = {0x3f81}, rone = {0x3f80};
    ah[0] = __nv_bfloat16(rone);
    bh[0] = __nv_bfloat16(rone);
    ch[0] = r1.x;
    rok &=
        cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, ah, CUDA_R_16BF, 1, bh, CUDA_R_16BF, 1, &one,
                     ch, CUDA_R_16BF, 1, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS;
    cudaDeviceSynchronize();
    rok &= ch[0] == 0x4000;
    check(rok,
          "a bf16 output is rounded once to nearest, ties to even; beta 0 leaves C unread, beta 1 reads it");
    check(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, a, CUDA_R_32F, 1, b, CUDA_R_32F, 1, &zero,
                       ch, CUDA_R_16BF, 1, CUBLAS_COMPUTE_32F,
                       CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_NOT_SUPPORTED,
          "fp32 inputs into a bf16 output are not supported");
}

int main(int argc, char **argv) {
    self = argv[0];
    if (argc > 1 && strcmp(argv[1], "sticky") == 0)
        return sticky_child();
    static const struct {
        const char *name;
        void (*run)(void);
    } scenarios[] = {{"lost_update", run_lost_update},
                     {"racy", run_racy},
                     {"block_sum", run_block_sum},
                     {"lost_update_blocks", run_lost_update_blocks},
                     {"stale_read_blocks", run_stale_read_blocks},
                     {"two_launches", run_two_launches},
                     {"tf32", run_tf32}};
    for (size_t i = 0; argc > 1 && i < sizeof scenarios / sizeof scenarios[0]; i++)
        if (strcmp(argv[1], scenarios[i].name) == 0) {
            scenarios[i].run();
            return 0;
        }
    test_sum();
    test_uninitialised();
    test_sticky();
    test_order();
    test_gemm();
    test_faults();
    printf("cudaemu: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}

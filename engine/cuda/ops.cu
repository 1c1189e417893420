/* ops (CUDA): the CUDA backend's operation table and its bf16 twin, and what its files share: the error check
 * each operation ends with, the cuBLAS handles and the scratch buffers (engine/cuda/cuda.h). */
#include "engine/cuda/cuda.h"
#include "engine/lora_down.h"
#include "engine/ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cuda_blas_check(cublasStatus_t s, const char *what) {
    if (s == CUBLAS_STATUS_SUCCESS)
        return;
    fprintf(stderr, "pulse-pipe: cuBLAS error in %s: %s\n", what, cublasGetStatusString(s));
    exit(1);
}

/* PULSE_CUDA_SYNC=1 makes every operation wait for its work (a kernel's error then names its operation, not
 * a later sync; bench_train --profile times each operation by syncing after it itself). So does a GPU
 * without concurrent managed access (Windows, some embedded boards): there the host may not touch managed
 * memory at all while a kernel runs, not even memory the kernel does not use. */
static int sync_each(void) {
    static int on = -1;
    if (on < 0) {
        const char *e = getenv("PULSE_CUDA_SYNC");
        int dev = 0, concurrent = 0;
        if (cudaGetDevice(&dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&concurrent, cudaDevAttrConcurrentManagedAccess, dev) != cudaSuccess)
            (void)cudaGetLastError();
        on = (e && strcmp(e, "1") == 0) || !concurrent;
    }
    return on;
}

/* With operations queued, an error raised by one kernel surfaces at the next check of any operation: the
 * message then says so (PULSE_CUDA_SYNC=1 makes the operation it names the one at fault). */
void cuda_check(cudaError_t e, const char *what) {
    if (e == cudaSuccess)
        return;
    fprintf(stderr, "pulse-pipe: CUDA error in %s%s: %s\n", what,
            sync_each() ? "" : " (or an operation queued before it; PULSE_CUDA_SYNC=1 names the one)",
            cudaGetErrorString(e));
    exit(1);
}

void cuda_done(const char *op) {
    cuda_check(cudaGetLastError(), op);
    if (sync_each())
        cuda_check(cudaDeviceSynchronize(), op);
}

/* ops sync: an error of a kernel still queued surfaces here. */
static void cuda_sync(void) {
    cuda_check(cudaDeviceSynchronize(), "ops sync");
}

cublasHandle_t cuda_blas(void) {
    static cublasHandle_t h;
    if (!h) {
        cuda_blas_check(cublasCreate(&h), "cublasCreate");
        /* Pedantic fp32: no TF32 or reduced-precision shortcuts, so the parity tests hold at 1e-5. */
        cuda_blas_check(cublasSetMathMode(h, CUBLAS_PEDANTIC_MATH), "cublasSetMathMode");
    }
    return h;
}

cublasHandle_t cuda_blas_bf16(void) {
    static cublasHandle_t h;
    if (!h) {
        cuda_blas_check(cublasCreate(&h), "cublasCreate");
        /* Default math: the inputs are bf16 already (nothing left to shorten), and pedantic math would keep
         * cuBLAS off the tensor cores, the point of bf16 products. The compute type (CUBLAS_COMPUTE_32F)
         * keeps the accumulation fp32. */
        cuda_blas_check(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
    }
    return h;
}

void *cuda_scratch(int slot, size_t bytes) {
    static void *buf[CUDA_SCRATCH_SLOTS];
    static size_t cap[CUDA_SCRATCH_SLOTS];
    if (slot < 0 || slot >= CUDA_SCRATCH_SLOTS) {
        fprintf(stderr, "pulse-pipe: cuda_scratch: bad slot %d\n", slot);
        exit(1);
    }
    if (bytes > cap[slot]) {
        cuda_check(cudaDeviceSynchronize(), "cuda_scratch");
        if (buf[slot])
            cuda_check(cudaFree(buf[slot]), "cuda_scratch free");
        buf[slot] = NULL;
        cap[slot] = 0;
        cuda_check(cudaMalloc(&buf[slot], bytes), "cuda_scratch");
        cap[slot] = bytes;
    }
    return buf[slot];
}

unsigned cuda_blocks(size_t n, unsigned threads) {
    size_t b = (n + threads - 1) / threads;
    return b < 1 ? 1u : b > 65535u * 16u ? 65535u * 16u : (unsigned)b;
}

/* The fp32 table's LoRA down projection: the composition over its own operations (engine/lora_down.h),
 * defined after the table they name. */
static void cuda_lora_down_forward(float *h, float *xs, const float *x, const float *a, struct ops_dropout d,
                                   size_t n, size_t ic, size_t r);
static void cuda_lora_down_backward(float *dx, float *da, float *xs, float *dxs, const float *dh,
                                    const float *x, const float *a, struct ops_dropout d, size_t n, size_t ic,
                                    size_t r);

static struct ops cuda_table = {
    .name = "cuda",
    .matmul_forward = cuda_matmul_forward,
    .matmul_backward = cuda_matmul_backward,
    .matmul_scaled_forward = cuda_matmul_scaled_forward,
    .matmul_scaled_backward = cuda_matmul_scaled_backward,
    .layernorm_forward = cuda_layernorm_forward,
    .layernorm_backward = cuda_layernorm_backward,
    .rmsnorm_forward = cuda_rmsnorm_forward,
    .rmsnorm_backward = cuda_rmsnorm_backward,
    .rope_forward = cuda_rope_forward,
    .rope_backward = cuda_rope_backward,
    .attention_forward = cuda_attention_forward,
    .attention_backward = cuda_attention_backward,
    .attention_decode = cuda_attention_decode,
    .gelu_forward = cuda_gelu_forward,
    .gelu_backward = cuda_gelu_backward,
    .quick_gelu_forward = cuda_quick_gelu_forward,
    .quick_gelu_backward = cuda_quick_gelu_backward,
    .swiglu_forward = cuda_swiglu_forward,
    .swiglu_backward = cuda_swiglu_backward,
    .add = cuda_add,
    .accumulate = cuda_accumulate,
    .copy = cuda_copy,
    .zero = cuda_zero,
    .bf16_widen = cuda_bf16_widen,
    .bf16_round = cuda_bf16_round,
    .add_scaled = cuda_add_scaled,
    .dropout = cuda_dropout,
    .lora_down_forward = cuda_lora_down_forward,
    .lora_down_backward = cuda_lora_down_backward,
    .repeat_kv = cuda_repeat_kv,
    .repeat_kv_backward = cuda_repeat_kv_backward,
    .embedding_forward = cuda_embedding_forward,
    .embedding_backward = cuda_embedding_backward,
    .logprob_forward = cuda_logprob_forward,
    .logprob_backward = cuda_logprob_backward,
    .kl_forward = cuda_kl_forward,
    .kl_backward = cuda_kl_backward,
    .sync = cuda_sync,
    .sum_squares = cuda_sum_squares,
    .scale = cuda_scale,
    .adamw = cuda_adamw,
    .weights_frozen = cuda_weights_frozen,
    .weights_forget = cuda_weights_forget,
    .threads = 1,
    .bf16_storage = 0,
};

static void cuda_lora_down_forward(float *h, float *xs, const float *x, const float *a, struct ops_dropout d,
                                   size_t n, size_t ic, size_t r) {
    lora_down_forward(&cuda_table, h, xs, x, a, d, n, ic, r);
}

static void cuda_lora_down_backward(float *dx, float *da, float *xs, float *dxs, const float *dh,
                                    const float *x, const float *a, struct ops_dropout d, size_t n, size_t ic,
                                    size_t r) {
    lora_down_backward(&cuda_table, dx, da, xs, dxs, dh, x, a, d, n, ic, r);
}

const struct ops *ops_cuda(void) {
    return &cuda_table;
}

/* The bf16 twin (ops_precision): the same table but for the matmul, attention, LoRA and weights_frozen
 * entries, refreshed from cuda_table whenever it is asked for. */
static struct ops cuda_bf16_table;

extern "C" const struct ops *cuda_ops_bf16(const struct ops *table) {
    if (table != &cuda_table && table != &cuda_bf16_table)
        return NULL;
    cuda_bf16_table = cuda_table;
    cuda_bf16_table.name = "cuda-bf16";
    cuda_bf16_table.matmul_forward = cuda_matmul_forward_bf16;
    cuda_bf16_table.matmul_backward = cuda_matmul_backward_bf16;
    cuda_bf16_table.matmul_scaled_forward = cuda_matmul_scaled_forward_bf16;
    cuda_bf16_table.matmul_scaled_backward = cuda_matmul_scaled_backward_bf16;
    cuda_bf16_table.attention_forward = cuda_attention_forward_bf16;
    cuda_bf16_table.attention_backward = cuda_attention_backward_bf16;
    cuda_bf16_table.lora_down_forward = cuda_lora_down_forward_bf16;
    cuda_bf16_table.lora_down_backward = cuda_lora_down_backward_bf16;
    cuda_bf16_table.weights_frozen = cuda_weights_frozen_bf16;
    return &cuda_bf16_table;
}

/* The bf16 twin's entries that take bf16 storage themselves (engine/act16.h), for its "bf16-act" table: the
 * products (cuBLAS reads bf16 operands and writes bf16 outputs), attention, LoRA's down projection, the
 * norms, RoPE and the elementwise operations (kernels on cuda_ten arguments, bf16.cuh) and the two
 * conversions. The rest (generation's attention_decode, the losses, AdamW,
 * sum_squares, scale) go through act16.c's path, which passes fp32 arguments on as they are. */
extern "C" const struct ops *cuda_ops_bf16_native(const struct ops *table) {
    static struct ops native;
    if (table != &cuda_bf16_table)
        return NULL;
    native.layernorm_forward = cuda_layernorm_forward;
    native.layernorm_backward = cuda_layernorm_backward;
    native.rmsnorm_forward = cuda_rmsnorm_forward;
    native.rmsnorm_backward = cuda_rmsnorm_backward;
    native.attention_forward = cuda_attention_forward_bf16;
    native.attention_backward = cuda_attention_backward_bf16;
    native.rope_forward = cuda_rope_forward;
    native.rope_backward = cuda_rope_backward;
    native.gelu_forward = cuda_gelu_forward;
    native.gelu_backward = cuda_gelu_backward;
    native.quick_gelu_forward = cuda_quick_gelu_forward;
    native.quick_gelu_backward = cuda_quick_gelu_backward;
    native.swiglu_forward = cuda_swiglu_forward;
    native.swiglu_backward = cuda_swiglu_backward;
    native.add = cuda_add;
    native.accumulate = cuda_accumulate;
    native.copy = cuda_copy;
    native.zero = cuda_zero;
    native.add_scaled = cuda_add_scaled;
    native.repeat_kv = cuda_repeat_kv;
    native.repeat_kv_backward = cuda_repeat_kv_backward;
    native.embedding_forward = cuda_embedding_forward;
    native.embedding_backward = cuda_embedding_backward;
    native.matmul_forward = cuda_matmul_forward_bf16;
    native.matmul_backward = cuda_matmul_backward_bf16;
    native.matmul_scaled_forward = cuda_matmul_scaled_forward_bf16;
    native.matmul_scaled_backward = cuda_matmul_scaled_backward_bf16;
    native.lora_down_forward = cuda_lora_down_forward_bf16;
    native.lora_down_backward = cuda_lora_down_backward_bf16;
    native.dropout = cuda_dropout;
    native.bf16_widen = cuda_bf16_widen;
    native.bf16_round = cuda_bf16_round;
    return &native;
}

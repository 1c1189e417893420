/* ops (CPU): the CPU backend's operation table and its bf16 twin. The operations live in the files beside
 * this one (matmul.c, norms.c, attention.c, elementwise.c, losses.c, optim.c); this file assembles them and
 * owns the thread count. */
#include "engine/ops.h"
#include "engine/cpu/cpu.h"
#include "engine/lora_down.h"

#include <cblas.h>

/* Every CPU operation has finished when it returns: nothing to wait for. */
static void cpu_sync(void) {}

/* LoRA's down projection: the composition (engine/lora_down.h) over each table's own operations. */
static struct ops cpu_table, cpu_bf16_table;

static void cpu_lora_down_forward(float *h, float *xs, const float *x, const float *a, struct ops_dropout d,
                                  size_t n, size_t ic, size_t r) {
    lora_down_forward(&cpu_table, h, xs, x, a, d, n, ic, r);
}

static void cpu_lora_down_backward(float *dx, float *da, float *xs, float *dxs, const float *dh,
                                   const float *x, const float *a, struct ops_dropout d, size_t n, size_t ic,
                                   size_t r) {
    lora_down_backward(&cpu_table, dx, da, xs, dxs, dh, x, a, d, n, ic, r);
}

static void cpu_lora_down_forward_bf16(float *h, float *xs, const float *x, const float *a,
                                       struct ops_dropout d, size_t n, size_t ic, size_t r) {
    lora_down_forward(&cpu_bf16_table, h, xs, x, a, d, n, ic, r);
}

static void cpu_lora_down_backward_bf16(float *dx, float *da, float *xs, float *dxs, const float *dh,
                                        const float *x, const float *a, struct ops_dropout d, size_t n,
                                        size_t ic, size_t r) {
    lora_down_backward(&cpu_bf16_table, dx, da, xs, dxs, dh, x, a, d, n, ic, r);
}

/* One table per process: its functions take no table argument, so they read the thread count from here. */
static struct ops cpu_table = {
    .name = "cpu",
    .matmul_forward = cpu_matmul_forward,
    .matmul_backward = cpu_matmul_backward,
    .matmul_scaled_forward = cpu_matmul_scaled_forward,
    .matmul_scaled_backward = cpu_matmul_scaled_backward,
    .layernorm_forward = cpu_layernorm_forward,
    .layernorm_backward = cpu_layernorm_backward,
    .rmsnorm_forward = cpu_rmsnorm_forward,
    .rmsnorm_backward = cpu_rmsnorm_backward,
    .rope_forward = cpu_rope_forward,
    .rope_backward = cpu_rope_backward,
    .attention_forward = cpu_attention_forward,
    .attention_backward = cpu_attention_backward,
    .attention_decode = cpu_attention_decode,
    .gelu_forward = cpu_gelu_forward,
    .gelu_backward = cpu_gelu_backward,
    .quick_gelu_forward = cpu_quick_gelu_forward,
    .quick_gelu_backward = cpu_quick_gelu_backward,
    .swiglu_forward = cpu_swiglu_forward,
    .swiglu_backward = cpu_swiglu_backward,
    .add = cpu_add,
    .accumulate = cpu_accumulate,
    .copy = cpu_copy,
    .zero = cpu_zero,
    .bf16_widen = cpu_bf16_widen,
    .bf16_round = cpu_bf16_round,
    .add_scaled = cpu_add_scaled,
    .dropout = cpu_dropout,
    .lora_down_forward = cpu_lora_down_forward,
    .lora_down_backward = cpu_lora_down_backward,
    .repeat_kv = cpu_repeat_kv,
    .repeat_kv_backward = cpu_repeat_kv_backward,
    .embedding_forward = cpu_embedding_forward,
    .embedding_backward = cpu_embedding_backward,
    .logprob_forward = cpu_logprob_forward,
    .logprob_backward = cpu_logprob_backward,
    .kl_forward = cpu_kl_forward,
    .kl_backward = cpu_kl_backward,
    .sync = cpu_sync,
    .sum_squares = cpu_sum_squares,
    .scale = cpu_scale,
    .adamw = cpu_adamw,
    .weights_frozen = cpu_weights_frozen,
    .weights_forget = cpu_weights_forget,
    .threads = 1,
};

/* ops_cpu_follow's count: shared memory another process writes, read atomically. */
static const int *follow;

void ops_cpu_follow(const int *count) {
    follow = count;
}

int cpu_threads(void) {
    int t = follow ? __atomic_load_n(follow, __ATOMIC_RELAXED) : cpu_table.threads;
    return t < 1 ? 1 : t > CPU_MAX_THREADS ? CPU_MAX_THREADS : t;
}

/* The bf16 twin (ops_precision): the same table but for the matmul, attention, LoRA and weights_frozen
 * entries. Refreshed from cpu_table whenever it is asked for, so it has the thread count ops_cpu last set
 * (its functions read cpu_table's anyway, through cpu_threads). */
const struct ops *cpu_ops_bf16(const struct ops *table) {
    if (table != &cpu_table && table != &cpu_bf16_table)
        return NULL;
    cpu_bf16_table = cpu_table;
    cpu_bf16_table.name = "cpu-bf16";
    cpu_bf16_table.matmul_forward = cpu_matmul_forward_bf16;
    cpu_bf16_table.matmul_backward = cpu_matmul_backward_bf16;
    cpu_bf16_table.matmul_scaled_forward = cpu_matmul_scaled_forward_bf16;
    cpu_bf16_table.matmul_scaled_backward = cpu_matmul_scaled_backward_bf16;
    cpu_bf16_table.attention_forward = cpu_attention_forward_bf16;
    cpu_bf16_table.attention_backward = cpu_attention_backward_bf16;
    cpu_bf16_table.lora_down_forward = cpu_lora_down_forward_bf16;
    cpu_bf16_table.lora_down_backward = cpu_lora_down_backward_bf16;
    cpu_bf16_table.weights_frozen = cpu_weights_frozen_bf16;
    return &cpu_bf16_table;
}

/* OpenBLAS runs single-threaded inside each call: matmul.c splits products over the pool in blocks fixed by
 * the shapes, which keeps the bits independent of the thread count (OpenBLAS's own split does not). */
const struct ops *ops_cpu(int threads) {
    openblas_set_num_threads(1);
    cpu_table.threads = threads < 1 ? 1 : threads;
    return &cpu_table;
}

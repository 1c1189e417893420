/* llava_plan: the memory a LLaVA job will hold, block by block, before anything is allocated.
 *
 * The plan is computed from the size tables the model carves its blocks from (engine/llava.h: llava_tables,
 * llava_act_rows, llava_grads_layout, llava_lora_plan) and the optimizer's and loss's own size functions
 * (engine/train.h), on a model shell that holds the tables only. So it is exact, not an estimate: for a job
 * set up as llava_memory_plan describes, the bytes mem_alloc hands out at a training step's peak
 * (engine/mem.h's mem_peak) equal the plan's total (tests/unit/test_engine_recompute.c checks it). What it
 * does not count: host-only bookkeeping (tables, corpora, tokenizers: xmalloc'd) and, on CUDA, what the
 * allocator leaves free for the context, cuBLAS and the backend's scratch (MEM_CUDA_RESERVE, shown on its own
 * line). In bf16 the frozen product weights' copies (ops weights_frozen: the backend's own allocations, not
 * mem_alloc's) are counted too: on the CPU rounded fp32 copies beside the weights; on CUDA, where the plan is
 * of device memory, bf16 copies, the fp32 pages being on the host but for the partial pages at their ends,
 * counted at their most. */
#ifndef PULSE_ENGINE_LLAVA_PLAN_H
#define PULSE_ENGINE_LLAVA_PLAN_H

#include "engine/config.h"

#include <stddef.h>
#include <stdio.h>

struct lora;

/* The reference an unlearning job holds besides the trained model. SHARED (reference = "round_start"): the
 * trained model itself with its adapter bypassed (engine/unlearn_loss.h's struct unlearn_ref), which holds
 * only a logits buffer [B, T, vocab] and the start values of the tensors that train in full (the projector).
 * MODEL (reference = "original"): a second, frozen model for forwards, its weights and activations in the
 * recomputation layout whatever the trained model's (it runs no backward). */
enum { LLAVA_PLAN_REF_NONE, LLAVA_PLAN_REF_MODEL, LLAVA_PLAN_REF_SHARED };

struct llava_plan_opts {
    size_t B, T;             /* the model's batch and sequence capacity (up to B images) */
    int train;               /* 1: training steps (gradients, scratch, AdamW, the loss); 0: forwards only */
    const char *trainable;   /* parameters that train in full, by name prefix ("" = all,
                                "model.multi_modal_projector." = the projector), or NULL */
    const struct lora *lora; /* an adapter's rank and target_modules (lora_create, lora_set_targets: no
                                modules needed), or NULL */
    int recompute;           /* llava_set_recompute */
    int reference;           /* the KL and NPO reference of stages/unlearn.c: LLAVA_PLAN_REF_* */
    const char *precision;   /* "fp32", "bf16" or "bf16-act": bf16 adds the frozen product weights' copies
                                (ops weights_frozen); on CUDA they replace those weights on the GPU, whose
                                fp32 pages go to the host; activations stay fp32 but in "bf16-act"
                                (llava_set_act_bf16: bf16 storage, 2 bytes a value) */
    const char *device;      /* "cpu" or "cuda" (adds the CUDA reserve) */
    size_t gen_tokens;       /* forwards that also generate up to this many tokens (engine/generate.h): the
                                K/V cache of B sequences of T + gen_tokens positions; 0: none */
};

#define LLAVA_PLAN_MAX 12

struct llava_plan_block {
    const char *name;
    size_t bytes;
};

struct llava_plan {
    struct llava_plan_block b[LLAVA_PLAN_MAX];
    size_t n;
    size_t resident; /* the blocks held from setup to the end */
    size_t total;    /* resident + what one step allocates and frees (the loss's buffers): the peak */
    size_t reserve;  /* on CUDA, MEM_CUDA_RESERVE; 0 on the CPU */
};

/* The plan for a model of config cfg set up as o says: blocks in the order a stage allocates them. -1 with
 * one line on options that cannot be set up (a batch out of range, LoRA targets that select nothing). */
int llava_memory_plan(const struct llava_config *cfg, const struct llava_plan_opts *o, struct llava_plan *p);

/* One line per block ("<indent><name>  <size>", in KiB, MiB or GiB), the total, the CUDA reserve when there
 * is one; when device_bytes is not 0, whether the total and the reserve fit the device. */
void llava_plan_print(FILE *f, const struct llava_plan *p, const char *indent, size_t device_bytes);

/* The device's memory in bytes for "cuda" (the GPU's total), 0 for "cpu" or when it cannot be asked. */
size_t llava_plan_device_bytes(const char *device);

#endif

/* adapter: the LoRA adapter of a finetune or unlearn stage: created from the stage's lora_* parameters on the
 * decoder's projections (never the vision tower's, which share q_proj/k_proj/v_proj names: PEFT's suffix
 * matching would adapt those too, so the targets become one regex over the language model), attached to the
 * model, and written as PEFT's two files (outputs `adapter` and `adapter_config`). */
#ifndef PULSE_STAGES_ADAPTER_H
#define PULSE_STAGES_ADAPTER_H

#include "engine/llava.h"
#include "engine/lora.h"
#include "stages/stage.h"

#define ADAPTER_PARAMS                                                                                       \
    {"lora_r", PARAM_INT, "16", "LoRA rank"},                                                                \
        {"lora_alpha", PARAM_NUM, "16.0", "LoRA alpha (scale alpha/r)"},                                     \
        {"lora_dropout", PARAM_NUM, "0.05", "dropout on the adapter's input"}, {                             \
        "lora_targets", PARAM_STRS,                                                                          \
            "[\"q_proj\",\"k_proj\",\"v_proj\",\"o_proj\",\"gate_proj\",\"up_proj\",\"down_proj\"]",         \
            "decoder projections adapted"                                                                    \
    }
#define ADAPTER_NPARAMS 4

/* The adapter the stage's parameters describe, without modules yet (rank, alpha, dropout, target regex): what
 * adapter_attach starts from and what a memory plan needs (engine/llava_plan.h). */
int adapter_create(struct stage_ctx *c, struct lora *l);
/* Creates the adapter (PEFT's initialisation from seed), attaches it and gives the model its gradients. */
int adapter_attach(struct stage_ctx *c, struct llava *m, struct lora *l, uint64_t seed);
/* Outputs `adapter` (adapter_model.safetensors) and `adapter_config` (adapter_config.json). */
int adapter_write(struct stage_ctx *c, const struct lora *l);

#endif

/* peft: LoRA adapters in PEFT's on-disk format, so that pulse-pipe's adapters load with
 * PeftModel.from_pretrained and PEFT's load in pulse-pipe.
 *
 * An adapter directory holds two files:
 *   adapter_config.json        {"peft_type": "LORA", "r", "lora_alpha", "lora_dropout", "target_modules" (a
 * list or one regex), "bias": "none", "task_type", "base_model_name_or_path", ...} adapter_model.safetensors
 * "base_model.model.<module>.lora_A.weight" [r, in] and ".lora_B.weight" [out, r] Writing emits every key
 * PEFT 0.21 writes, with PEFT's defaults for the ones pulse-pipe does not use (so a written config equals
 * PEFT's own, peft_version aside), and the tensors as F32 with {"format": "pt"}. Reading accepts F32/F16/BF16
 * tensors and refuses, with one line, anything it could not merge exactly as PEFT would: another peft_type, r
 * <= 0, a shape that disagrees with r or with the base model, an A without its B (or the reverse), an
 * unexpected tensor, or a LoRA variant pulse-pipe does not implement (DoRA, rsLoRA, fan_in_fan_out, LoRA
 * biases, rank/alpha patterns, modules_to_save, ...). */
#ifndef PULSE_ENGINE_PEFT_H
#define PULSE_ENGINE_PEFT_H

#include "engine/lora.h"

#include <stddef.h>

/* The config fields that describe the adapter's context rather than its math; NULL stands for JSON null. */
struct peft_meta {
    char *base_model; /* base_model_name_or_path */
    char *task_type;  /* "CAUSAL_LM", ... */
};
void peft_meta_free(struct peft_meta *meta);

/* The base model's shape of a linear layer: returns 0 and sets *in and *out, or -1 when the model has no
 * such module (no err_set needed: peft names the module). */
typedef int (*peft_shape_fn)(void *ctx, const char *module, size_t *in, size_t *out);

/* In memory: the two files' bytes (malloc'd). meta may be NULL (both fields null). */
int peft_encode(const struct lora *l, const struct peft_meta *meta, char **config, size_t *config_len,
                void **tensors, size_t *tensors_len);
/* Parses the two files' bytes into l (and meta, when non-NULL). shape may be NULL (no check against a base
 * model). `what` names the adapter in messages: "<what>/adapter_config.json: ...". On failure l and meta are
 * left empty. */
int peft_decode(const char *config, size_t config_len, const void *tensors, size_t tensors_len,
                const char *what, peft_shape_fn shape, void *ctx, struct lora *l, struct peft_meta *meta);

/* The same through a directory (created if missing; each file written atomically). */
int peft_write(const char *dir, const struct lora *l, const struct peft_meta *meta);
int peft_read(const char *dir, peft_shape_fn shape, void *ctx, struct lora *l, struct peft_meta *meta);

#endif

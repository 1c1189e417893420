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
 * biases, rank/alpha patterns, modules_to_save, ...). peft_sum and peft_encode_saved write what leaves
 * pulse-pipe only: several rounds as one adapter, with full tensors as modules_to_save (stage kind
 * export-peft). */
#ifndef PULSE_ENGINE_PEFT_H
#define PULSE_ENGINE_PEFT_H

#include "engine/lora.h"
#include "engine/safetensors.h"

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

/* ---- several rounds as one adapter (stage kind export-peft) ---- */

/* One adapter whose delta is the sum of the n rounds' deltas, sum_k (alpha_k / r_k) B_k A_k, with PEFT's
 * scale 1: rank R = sum_k r_k and lora_alpha = R (use_rslora stays false, so PEFT's scaling is alpha / r =
 * 1). For every module any round adapts, in order of first appearance (round 1's modules first), A [R, in]
 * stacks the rounds' A blocks (round 1's rows first) and B [out, R] puts their B blocks side by side, each
 * multiplied by its round's lora_scale in fp32 (the product torch forms for B * scaling); a round that does
 * not adapt the module gives zero blocks. target_modules lists the modules' full paths; lora_dropout is 0 (an
 * export is for inference). Merging the sum once differs from merging the rounds one after another by fp32
 * rounding only (docs/formats.md, "Several rounds as one adapter"). -1 with err_set when n is 0, the rounds
 * disagree on a module's shape, or R exceeds PEFT's limit of 65536. */
int peft_sum(const struct lora *rounds, size_t n, struct lora *out);

/* peft_encode with full tensors saved beside the LoRA ones: PEFT's modules_to_save. Each saved tensor is
 * named by its parameter path in the base model ("model.multi_modal_projector.linear_1.weight") and stored as
 * "base_model.model.<name>" (F32), the key PEFT saves and loads; the config's modules_to_save lists their
 * modules (each name without its last component), in order of first appearance, so PeftModel.from_pretrained
 * replaces those modules by these values. nsaved 0 is peft_encode. Refused with one line: a name without a
 * module, one with a LoRA tensor's suffix, a module both adapted and saved. */
int peft_encode_saved(const struct lora *l, const struct peft_meta *meta, const struct st_out *saved,
                      size_t nsaved, char **config, size_t *config_len, void **tensors, size_t *tensors_len);

#endif

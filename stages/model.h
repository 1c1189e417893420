/* model: how stages hand models to one another through the store.
 *
 * A model is three outputs of the stage that made it: `model` (safetensors, Hugging Face LLaVA names),
 * `config` (config.json) and `tokenizer` (tokenizer.json). A stage that reads a model takes them as three
 * refs of those names (MODEL_PARAMS), plus the unlearning rounds applied since: `adapters` and
 * `adapter_configs` (PEFT's two files of each round, in round order: each is merged into the weights, W +=
 * (alpha/r) B A, in turn) and `projector` (the projector's weights after the last round that trained it).
 * Keeping rounds as adapters keeps a 13B model's history small; merging in order reproduces, bit for bit, the
 * weights each round trained on (docs/protocol.md). */
#ifndef PULSE_STAGES_MODEL_H
#define PULSE_STAGES_MODEL_H

#include "engine/config.h"
#include "engine/llava.h"
#include "engine/tokenizer.h"
#include "stages/stage.h"

#include <stddef.h>

#define MODEL_PARAMS                                                                                         \
    {"model", PARAM_REF, NULL, "the model's weights (a `model` output)"},                                    \
        {"config", PARAM_REF, NULL, "its config.json (a `config` output)"},                                  \
        {"tokenizer", PARAM_REF, NULL, "its tokenizer.json (a `tokenizer` output)"},                         \
        {"adapters", PARAM_REFS, "[]", "unlearning rounds applied since, in order (`adapter` outputs)"},     \
        {"adapter_configs", PARAM_REFS, "[]", "their adapter_config.json, same order"}, {                    \
        "projector", PARAM_REF, "null", "the projector after the last round that trained it"                 \
    }
#define MODEL_NPARAMS 6

struct model {
    struct llava_config cfg;
    struct tokenizer *tok;
    struct llava m; /* after model_build */
    char *config_json, *tok_json;
    size_t config_len, tok_len;
    void *weights; /* the `model` bytes until model_build */
    size_t weights_len;
    int built;
};

/* Reads config and tokenizer (and the weights' bytes) from the stage's inputs. */
int model_read(struct stage_ctx *c, struct model *md);
/* The stage's `tokenizer` input alone, loaded (for a plan that measures its corpus without a model); NULL
 * with one line when it cannot be read or parsed. */
struct tokenizer *model_tokenizer(struct stage_ctx *c);
/* Builds the model for batch B and sequence T, then merges the rounds' adapters and sets the projector. */
int model_build(struct stage_ctx *c, struct model *md, size_t B, size_t T);
/* The same without the rounds (rounds == 0): the model before any unlearning, a reference for unlearn. */
int model_build_rounds(struct stage_ctx *c, struct model *md, size_t B, size_t T, int rounds);
/* Outputs `model` (the current weights), `config` and `tokenizer` (as read or as set). */
int model_write(struct stage_ctx *c, const struct model *md);
void model_free(struct model *md);

/* The projector's four tensors as a safetensors file (*data malloc'd): a round's `projector` output. */
int model_projector_save(const struct llava *m, void **data, size_t *len);

#endif

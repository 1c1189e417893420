/* config: a LLaVA model's shape, read from a Hugging Face config.json (LlavaConfig: "text_config" (LLaMA),
 * "vision_config" (CLIP vision), "image_token_index", "vision_feature_layer",
 * "vision_feature_select_strategy", "projector_hidden_act", and the original LLaVA's "image_aspect_ratio").
 * Missing fields take the transformers defaults; impossible ones (a hidden size not divisible by the heads, a
 * feature layer outside the tower, an unsupported activation) are refused with one line. */
#ifndef PULSE_ENGINE_CONFIG_H
#define PULSE_ENGINE_CONFIG_H

#include <stddef.h>

struct vision_config {
    int hidden, intermediate, layers, heads;
    int image_size, patch_size, channels;
    float eps;         /* layer_norm_eps */
    int feature_layer; /* index into hidden states (0 = embeddings after pre_layrnorm); negative counts from
                          the end, as HF: -2 = the output of the second-to-last layer */
    int layers_used;   /* encoder layers actually computed for the selected features */
};

struct text_config {
    int hidden, intermediate, layers, heads, kv_heads, vocab;
    int max_positions;
    float eps; /* rms_norm_eps */
    float rope_theta;
};

struct llava_config {
    struct vision_config vision;
    struct text_config text;
    int image_token_index;
    int pad_token_id;   /* -1 when absent */
    int select_default; /* 1: "default" (drop the class token), 0: "full" */
    int image_pad;      /* photos not already the tower's size: 1 (LLaVA's "image_aspect_ratio": "pad", the
                           default) pads to a square of the mean colour first; 0 ("square") does not, as
                           llava-hf's processor (engine/preprocess.h) */
    int patches;        /* (image_size / patch_size)^2: image tokens per image */
};

int config_parse(const char *json_text, size_t n, const char *what, struct llava_config *out);
/* Writes the config as a Hugging Face config.json (LlavaForConditionalGeneration) text, malloc'd. */
char *config_write(const struct llava_config *c);

#endif

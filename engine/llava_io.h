/* llava_io: a LLaVA model made from nothing or written out: random initialisation for pretraining from
 * scratch, and the parameters as one safetensors file in Hugging Face's naming (engine/llava.h), the file
 * llava_init and transformers both read. */
#ifndef PULSE_ENGINE_LLAVA_IO_H
#define PULSE_ENGINE_LLAVA_IO_H

#include "engine/llava.h"

#include <stddef.h>
#include <stdint.h>

/* llava_init with random parameters: every matrix, embedding and bias-free weight ~ N(0, std^2)
 * (transformers' initializer_range, 0.02), biases 0, norm weights 1. A pure function of (cfg, seed): value e
 * of tensor i is drawn from the stream rng_key(seed, i). */
int llava_init_random(struct llava *m, const struct llava_config *cfg, uint64_t seed, float std, size_t B,
                      size_t T);

/* The model's parameters as a safetensors file (F32, sorted names, {"format": "pt"}): *data malloc'd. Only
 * the vision layers the model holds are written (all of them with vision_feature_layer -1). */
int llava_save(const struct llava *m, void **data, size_t *len);
/* Only the tensors whose names start with prefix (F32): the tower's, LLAVA_TOWER. */
int llava_save_prefix(const struct llava *m, const char *prefix, void **data, size_t *len);
/* The same in another dtype (F16, BF16: rounded to nearest even; exact for weights that were stored so). */
int llava_save_as(const struct llava *m, enum st_dtype dtype, void **data, size_t *len);

#endif

/* lora: a LoRA adapter in memory, as PEFT defines one: per adapted linear layer W [out, in], two matrices
 * A [r, in] and B [out, r], and the layer computes W x + (alpha / r) B A x (dropout on x before A in
 * training).
 *
 * Modules are named by their Hugging Face module path without ".weight" (for example
 * "language_model.model.layers.3.self_attn.q_proj"), the names PEFT's files use (engine/peft.h). The module's
 * position in the list is part of its identity: lora_init draws module i's numbers from the stream
 * rng_key(seed, i), so the same seed and the same module list give the same bits on any machine. */
#ifndef PULSE_ENGINE_LORA_H
#define PULSE_ENGINE_LORA_H

#include <stddef.h>
#include <stdint.h>

struct lora_module {
    char *name;
    size_t in, out;
    float *A; /* [r, in], row-major */
    float *B; /* [out, r], row-major */
};

struct lora {
    int r;
    double alpha;   /* lora_alpha (double: a config's value round-trips exactly) */
    double dropout; /* lora_dropout, a probability in [0, 1) */
    /* target_modules, PEFT's two spellings: a list of names (a module is targeted when its path equals one
     * or ends with "." + one) or one regular expression that must match the whole path (target_regex, or
     * NULL when the list is used). */
    char **targets;
    size_t ntargets;
    char *target_regex;
    struct lora_module *m;
    size_t n;
};

/* An empty adapter of rank r (> 0) with the given alpha and dropout, no targets and no modules. */
int lora_create(struct lora *l, int r, double alpha, double dropout);
/* Target list / regex setters (copies); replace any previous target_modules. */
void lora_set_targets(struct lora *l, const char *const *targets, size_t n);
void lora_set_target_regex(struct lora *l, const char *regex);
/* 1 when PEFT would adapt the module at this path, 0 when not, -1 with err_set when the regex does not
 * compile (it is read as a POSIX extended expression; Python-only syntax such as \d or (?:) is refused). */
int lora_targets(const struct lora *l, const char *module);

/* Appends a module with A and B zero-filled; -1 with err_set on a duplicate name or a zero dimension. */
int lora_add(struct lora *l, const char *name, size_t in, size_t out);
const struct lora_module *lora_find(const struct lora *l, const char *name);
void lora_free(struct lora *l);

/* PEFT's initialisation: A ~ U(-bound, bound) with torch's kaiming_uniform_(a = sqrt(5)) bound over
 * fan_in = in, gain sqrt(2 / (1 + a^2)) * sqrt(3 / fan_in) = 1 / sqrt(in); B = 0. Deterministic in
 * (seed, module index, element index), independent of anything else. */
void lora_init(struct lora *l, uint64_t seed);
/* The bound lora_init uses for a module with this fan_in. */
float lora_init_bound(size_t in);

/* alpha / r, computed in double and rounded once to float: the value PEFT's Python float scaling becomes when
 * torch multiplies an fp32 tensor by it. */
float lora_scale(const struct lora *l);

/* W [out, in] += (B @ A) * scale, PEFT's merge (delta = (B @ A) * scaling; W += delta), in fp32: each
 * element of B @ A is summed over k = 0 .. r-1 in order (a multiply then an add, never fused: the build uses
 * -ffp-contract=off), then multiplied by scale, then added to W, each step rounded to fp32. torch's sgemm may
 * fuse the multiply-adds or sum in another order, so a result can differ from PEFT's in the last bit of the
 * delta (the test bounds it). */
void lora_merge(float *w, const struct lora *l, const struct lora_module *m);

#endif

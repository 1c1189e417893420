/* trainer: the epoch loop pretrain and finetune share: shuffled batches of a corpus (a fresh order each epoch
 * from the seed), the learning-rate schedule, AdamW steps, progress lines, the mean loss of the last epoch.
 */
#ifndef PULSE_STAGES_TRAINER_H
#define PULSE_STAGES_TRAINER_H

#include "engine/corpus.h"
#include "engine/llava.h"
#include "engine/schedule.h"
#include "stages/stage.h"

#include <stdint.h>

struct trainer_opts {
    long epochs;
    size_t batch;
    double lr;
    enum schedule_kind schedule;
    double warmup; /* fraction of the steps spent warming up */
    float weight_decay, clip, beta1, beta2;
    uint64_t seed;
};

/* The schedule, batch, lr, warmup, weight_decay, clip and epochs parameters every training kind has, read
 * from the stage (and checked: one line per bad value). */
int trainer_opts_read(struct stage_ctx *c, struct trainer_opts *o);
// clang-format off
#define TRAINER_PARAMS(epochs, batch, lr, schedule, warmup, wd, beta2)                                      \
    {"epochs", PARAM_INT, epochs, "passes over the training data"},                                          \
        {"batch", PARAM_INT, batch, "sequences per step"}, {"lr", PARAM_NUM, lr, "peak learning rate"},      \
        {"schedule", PARAM_STR, schedule, "learning-rate schedule: constant, linear or cosine"},             \
        {"warmup", PARAM_NUM, warmup, "fraction of the steps spent warming up"},                             \
        {"weight_decay", PARAM_NUM, wd, "AdamW's decoupled weight decay"},                                   \
        {"clip", PARAM_NUM, "1.0", "gradient norm limit (0: none)"},                                         \
        {"seed", PARAM_INT, "1", "data order"}, {"beta1", PARAM_NUM, "0.9", "AdamW's beta1"},                \
        {"beta2", PARAM_NUM, beta2, "AdamW's beta2"}
#define TRAINER_NPARAMS 10
/* The tiny vision tower's architecture, as `pretrain` and `tower` both take it (a tower handed to pretrain must
 * have pretrain's). */
#define VISION_ARCH_PARAMS                                                                                   \
    {"vision_hidden", PARAM_INT, "64", "vision tower width"},                                                \
        {"vision_intermediate", PARAM_INT, "256", "vision tower MLP width"},                                 \
        {"vision_layers", PARAM_INT, "2", "vision tower layers"},                                            \
        {"vision_heads", PARAM_INT, "2", "vision tower attention heads"},                                    \
        {"image_size", PARAM_INT, "32", "image side, pixels (the world's)"},                                 \
        {"patch", PARAM_INT, "8", "patch side, pixels"}
// clang-format on
/* Those parameters as config.json's "vision_config" object, for the model a kind builds from them. */
void trainer_vision_config(struct stage_ctx *c, char *out, size_t cap);

/* Trains m's trainable parameters (llava_grads_init done) on every entry of cp. The model's batch capacity
 * must hold o->batch sequences of cp->maxlen tokens. Reads cp->feats when set (frozen tower), else pixels. */
int trainer_run(struct stage_ctx *c, struct llava *m, const struct ops *ops, const struct corpus *cp,
                const struct trainer_opts *o, double *last_epoch_loss);

/* For a training kind's memory hook (stage_kind.memory): batch, training, recompute from the parameters, and
 * the sequence: the longest of the stage's `examples` (prompt and answer, the image expanded) under its
 * `tokenizer` for a model of config cfg, an upper bound for any subset the kind trains on; 0 when those
 * inputs are not known yet. */
struct llava_plan_opts;
int trainer_memory(struct stage_ctx *c, const struct llava_config *cfg, struct llava_plan_opts *o);

/* Step `step` (0-based, of `total`, in epoch `epoch`, 0-based) lost `loss`: added to *recent and, every 50
 * steps and at the last, their mean printed as a progress line. */
void trainer_progress(struct stage_ctx *c, long epoch, long epochs, long step, long total, double loss,
                      double *recent);

/* A permutation of 0..n-1 from (seed, epoch) (Fisher-Yates on the counter-based generator). */
void trainer_shuffle(size_t *idx, size_t n, uint64_t seed, uint64_t epoch);

#endif

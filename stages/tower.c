/* tower: a CLIP vision tower trained alone on what a world's pictures show (its `labels`), before any decoder
 * exists. LLaVA's tower comes pretrained (CLIP) and stays frozen while the language model learns to read it;
 * a tiny tower trained from scratch only through a decoder's answers learns colours but not shapes in the
 * steps a CPU affords (docs/results.md, E37-E42). Its output, the tower's tensors, is what `pretrain` takes
 * as its frozen tower. The heads it trains through (engine/tower_heads.h) are not kept. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/llava_io.h"
#include "engine/mem.h"
#include "engine/rng.h"
#include "engine/schedule.h"
#include "engine/tower_heads.h"
#include "engine/train.h"
#include "stages/tower_data.h"
#include "stages/trainer.h"
#include "stages/world.h"
#include "util/err.h"

/* The tower's architecture inside a LLaVA config whose decoder is a token stand-in: only the tower is built
 * to be trained and written. */
static int tower_config(struct stage_ctx *c, struct llava_config *cfg) {
    char text[1024], vision[512];
    trainer_vision_config(c, vision, sizeof vision);
    snprintf(text, sizeof text,
             "{\"model_type\": \"llava\", \"image_token_index\": 1, \"pad_token_id\": 0,"
             " \"projector_hidden_act\": \"gelu\", \"vision_feature_layer\": -1,"
             " \"vision_feature_select_strategy\": \"default\","
             " \"text_config\": {\"model_type\": \"llama\", \"hidden_size\": 8, \"intermediate_size\": 8,"
             " \"num_hidden_layers\": 1, \"num_attention_heads\": 1, \"num_key_value_heads\": 1,"
             " \"vocab_size\": 2, \"max_position_embeddings\": 8, \"rms_norm_eps\": 1e-05},"
             " \"vision_config\": %s}",
             vision);
    return config_parse(text, strlen(text), "config", cfg) == 0 ? 0 : err_prefix("%s", c->name);
}

struct tower_run {
    struct llava m;
    struct tower_heads h;
    struct train_adamw opt;
    struct tower_data d;
    float *pix, *feats;  /* one batch of pixels and its features (mem_alloc: the backend reads them) */
    int32_t *tok, *face; /* one batch of labels */
    long hits[TOWER_GROUPS], counts[TOWER_GROUPS];
};

/* Entries idx[0..nb) into the batch buffers. */
static void gather(struct tower_run *r, const size_t *idx, size_t nb) {
    const struct tower_data *d = &r->d;
    size_t nt = d->per * TOWER_TOKEN_GROUPS;
    for (size_t i = 0; i < nb; i++) {
        memcpy(r->pix + i * d->image_floats, d->pixels + idx[i] * d->image_floats,
               d->image_floats * sizeof *r->pix);
        memcpy(r->tok + i * nt, d->tok + idx[i] * nt, nt * sizeof *r->tok);
        memcpy(r->face + i * TOWER_FACE_GROUPS, d->face + idx[i] * TOWER_FACE_GROUPS,
               TOWER_FACE_GROUPS * sizeof *r->face);
    }
}

/* Clips the tower's and the heads' gradients together to a global norm of at most `clip` (0: never). */
static void clip_grads(struct tower_run *r, const struct ops *ops, float clip) {
    double norm = sqrt(ops->sum_squares(r->m.grads, r->m.ngrads) + ops->sum_squares(r->h.grads, r->h.n));
    if (clip > 0 && norm > clip) {
        ops->scale(r->m.grads, (float)(clip / norm), r->m.ngrads);
        ops->scale(r->h.grads, (float)(clip / norm), r->h.n);
    }
}

/* One step on entries idx[0..nb): forward, the heads' loss, backward, AdamW on the tower and the heads. */
static float tower_step(struct tower_run *r, const struct ops *ops, const struct trainer_opts *o,
                        const size_t *idx, size_t nb, float lr) {
    gather(r, idx, nb);
    struct tower_batch b = {r->tok, r->face, nb};
    llava_vision_features(&r->m, ops, r->pix, nb, r->feats); /* its activations stay for the backward */
    llava_zero_grad(&r->m, ops);
    ops->zero(r->h.grads, r->h.n);
    float loss = tower_heads_step(&r->h, ops, r->feats, &b, r->m.d.feats, r->hits, r->counts);
    llava_tower_backward(&r->m, ops, nb);
    clip_grads(r, ops, o->clip);
    train_adamw_step(&r->opt, &r->m, ops, lr, NULL);
    ops->adamw(r->h.params, r->h.grads, r->h.m, r->h.v, r->h.n, lr, o->beta1, o->beta2, 1e-8f,
               o->weight_decay, r->opt.step);
    ops->sync(); /* the next step's batch is gathered on the host */
    return loss;
}

/* The epochs; the last one's mean loss and each group's accuracy in *loss and acc. */
static void tower_train(struct stage_ctx *c, struct tower_run *r, const struct trainer_opts *o, double *loss,
                        double acc[TOWER_GROUPS]) {
    size_t n = r->d.n, per_epoch = (n + o->batch - 1) / o->batch, *idx = malloc(n * sizeof *idx);
    long total = (long)per_epoch * o->epochs, warm = (long)(o->warmup * (double)total), step = 0;
    double recent = 0;
    for (long e = 0; e < o->epochs; e++) {
        long hit[TOWER_GROUPS] = {0}, cnt[TOWER_GROUPS] = {0};
        trainer_shuffle(idx, n, o->seed, (uint64_t)e);
        *loss = 0;
        for (size_t s = 0; s < per_epoch; s++, step++) {
            size_t at = s * o->batch, nb = n - at < o->batch ? n - at : o->batch;
            float lr = (float)schedule_lr(o->schedule, o->lr, step, warm, total);
            float l = tower_step(r, c->ops, o, idx + at, nb, lr);
            *loss += l / (double)per_epoch;
            trainer_progress(c, e, o->epochs, step, total, l, &recent);
            for (int g = 0; g < TOWER_GROUPS; g++)
                hit[g] += r->hits[g], cnt[g] += r->counts[g];
        }
        for (int g = 0; g < TOWER_GROUPS; g++)
            acc[g] = cnt[g] ? (double)hit[g] / (double)cnt[g] : 0;
    }
    free(idx);
}

static int tower_setup(struct stage_ctx *c, struct tower_run *r, const struct trainer_opts *o) {
    struct llava_config cfg;
    struct world w;
    void *labels = NULL;
    size_t n = 0;
    uint64_t seed = (uint64_t)stage_int(c, "init_seed");
    if (tower_config(c, &cfg) != 0 || world_read(c, WORLD_IMAGES, &w) != 0)
        return -1;
    int rc = stage_input_read(c, "labels", 0, &labels, &n);
    if (rc == 0 && (rc = tower_data_load(&r->d, labels, n, w.images, &cfg)) != 0)
        rc = err_prefix("%s", c->name);
    free(labels);
    world_free(&w);
    if (rc != 0 || llava_init_random(&r->m, &cfg, seed, 0.02f, o->batch, r->d.per + 1) != 0)
        return rc != 0 ? -1 : err_prefix("%s", c->name);
    llava_set_trainable(&r->m, "", 0);
    llava_set_trainable(&r->m, LLAVA_TOWER, 1);
    llava_grads_init(&r->m);
    tower_heads_init(&r->h, (size_t)cfg.vision.hidden, r->d.per, rng_key(seed, 0x68656164)); /* "head" */
    train_adamw_init(&r->opt, &r->m, o->beta1, o->beta2, 1e-8f, o->weight_decay, 0); /* clip: clip_grads */
    r->pix = mem_alloc(o->batch * r->d.image_floats, sizeof(float));
    r->feats = mem_alloc(o->batch * r->d.per * (size_t)cfg.vision.hidden, sizeof(float));
    r->tok = malloc(o->batch * r->d.per * TOWER_TOKEN_GROUPS * sizeof *r->tok);
    r->face = malloc(o->batch * TOWER_FACE_GROUPS * sizeof *r->face);
    return 0;
}

static void tower_free(struct tower_run *r) {
    train_adamw_free(&r->opt);
    tower_heads_free(&r->h);
    llava_free(&r->m);
    tower_data_free(&r->d);
    mem_free(r->pix);
    mem_free(r->feats);
    free(r->tok);
    free(r->face);
}

static int tower_write(struct stage_ctx *c, const struct tower_run *r, double loss,
                       const double acc[TOWER_GROUPS]) {
    void *data = NULL;
    size_t len = 0;
    int rc = llava_save_prefix(&r->m, LLAVA_TOWER, &data, &len);
    if (rc == 0)
        rc = stage_output(c, "tower", data, len, "safetensors");
    free(data);
    if (rc != 0)
        return -1;
    stage_metric(c, "loss", loss);
    stage_metric(c, "images", (double)r->d.n);
    stage_metric(c, "scenes", (double)r->d.scenes);
    stage_metric(c, "faces", (double)r->d.faces);
    for (int g = 0; g < TOWER_GROUPS; g++) {
        char name[64];
        snprintf(name, sizeof name, "accuracy_%s", tower_group_names[g]);
        stage_metric(c, name, acc[g]);
    }
    return 0;
}

static int tower_run(struct stage_ctx *c) {
    struct tower_run r;
    struct trainer_opts o;
    double loss = 0, acc[TOWER_GROUPS] = {0};
    memset(&r, 0, sizeof r);
    int rc = trainer_opts_read(c, &o);
    if (rc == 0)
        rc = tower_setup(c, &r, &o);
    if (rc == 0) {
        stage_progress(c, "%zu images: %zu scenes, %zu faces", r.d.n, r.d.scenes, r.d.faces);
        tower_train(c, &r, &o, &loss, acc);
        rc = tower_write(c, &r, loss, acc);
    }
    tower_free(&r);
    return rc;
}

static const struct param_spec tower_params[] = {
    {"images", PARAM_REF, NULL, "the world's images"},
    {"labels", PARAM_REF, NULL, "what they show (a world's `labels`)"},
    VISION_ARCH_PARAMS,
    {"init_seed", PARAM_INT, "1", "initial weights"},
    TRAINER_PARAMS("30", "16", "0.001", "\"constant\"", "0.0", "0.01", "0.95"),
};
static const char *const tower_outputs[] = {"tower"};

const struct stage_kind kind_tower = {
    .schema = {"tower", 2, tower_params, sizeof tower_params / sizeof tower_params[0], tower_outputs, 1},
    .summary = "train a vision tower alone on what a world's pictures show",
    .run = tower_run,
};

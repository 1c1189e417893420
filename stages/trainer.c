/* trainer: the shared training loop of the pretrain and finetune kinds (stages/trainer.h). */
#include "stages/trainer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/llava_plan.h"
#include "engine/prompt.h"
#include "engine/rng.h"
#include "engine/train.h"
#include "stages/model.h"
#include "stages/world.h"
#include "util/err.h"

int trainer_opts_read(struct stage_ctx *c, struct trainer_opts *o) {
    memset(o, 0, sizeof *o);
    o->epochs = (long)stage_int(c, "epochs");
    o->batch = (size_t)stage_int(c, "batch");
    o->lr = stage_num(c, "lr");
    o->warmup = stage_num(c, "warmup");
    o->weight_decay = (float)stage_num(c, "weight_decay");
    o->clip = (float)stage_num(c, "clip");
    o->seed = (uint64_t)stage_int(c, "seed");
    o->beta1 = (float)stage_num(c, "beta1");
    o->beta2 = (float)stage_num(c, "beta2");
    if (!(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1))
        return err_set("%s: beta1 and beta2 must be in [0, 1)", c->name);
    if (schedule_parse(stage_str(c, "schedule"), &o->schedule) != 0)
        return err_prefix("%s", c->name);
    if (stage_int(c, "epochs") < 0 || stage_int(c, "epochs") > 100000)
        return err_set("%s: epochs must be between 0 and 100000", c->name);
    if (stage_int(c, "batch") < 1 || stage_int(c, "batch") > 4096)
        return err_set("%s: batch must be between 1 and 4096", c->name);
    if (!(o->lr >= 0 && o->lr < 10) || !(o->warmup >= 0 && o->warmup <= 1) || !(o->clip >= 0) ||
        !(o->weight_decay >= 0 && o->weight_decay < 1))
        return err_set("%s: lr must be in [0, 10), warmup in [0, 1], clip >= 0, weight_decay in [0, 1)",
                       c->name);
    return 0;
}

void trainer_vision_config(struct stage_ctx *c, char *out, size_t cap) {
    snprintf(out, cap,
             "{\"model_type\": \"clip_vision_model\", \"hidden_size\": %lld, \"intermediate_size\": %lld,"
             " \"num_hidden_layers\": %lld, \"num_attention_heads\": %lld, \"image_size\": %lld,"
             " \"patch_size\": %lld, \"num_channels\": 3, \"layer_norm_eps\": 1e-05}",
             (long long)stage_int(c, "vision_hidden"), (long long)stage_int(c, "vision_intermediate"),
             (long long)stage_int(c, "vision_layers"), (long long)stage_int(c, "vision_heads"),
             (long long)stage_int(c, "image_size"), (long long)stage_int(c, "patch"));
}

/* The longest example, encoded as corpus_from_examples encodes it (engine/corpus.c), images not decoded. */
static int longest_example(struct stage_ctx *c, const struct llava_config *cfg, size_t *T) {
    struct world w;
    struct tokenizer *t = NULL;
    memset(&w, 0, sizeof w);
    int rc = world_read(c, WORLD_EXAMPLES, &w);
    if (rc == 0 && !(t = model_tokenizer(c)))
        rc = -1;
    for (size_t i = 0; rc == 0 && i < w.examples.n; i++) {
        const struct ds_example *x = &w.examples.v[i];
        struct prompt_seq s;
        rc = prompt_encode(t, cfg->image_token_index, (size_t)cfg->patches, x->prompt, x->answer,
                           x->image != NULL, x->id, &s);
        if (rc == 0 && s.n > *T)
            *T = s.n;
        if (rc == 0)
            prompt_seq_free(&s);
    }
    tokenizer_free(t);
    world_free(&w);
    return rc;
}

int trainer_memory(struct stage_ctx *c, const struct llava_config *cfg, struct llava_plan_opts *o) {
    o->B = (size_t)stage_int(c, "batch");
    o->train = 1;
    o->recompute = stage_recompute(c);
    o->T = 0;
    return c->inputs ? longest_example(c, cfg, &o->T) : 0;
}

void trainer_shuffle(size_t *idx, size_t n, uint64_t seed, uint64_t epoch) {
    uint64_t key = rng_key(seed, 0x5348554646ull + epoch);
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(rng_u64(key, i) % i);
        size_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}

/* Batches of similar lengths waste less on padding: the shuffled order is cut into windows of 32 batches,
 * each window sorted by length (ties keep the shuffled order), as transformers' group_by_length does; the
 * batches are then visited in a shuffled order of their own. */
#define TRAINER_WINDOW 32

/* Stable (insertion sort: windows are small), longest first. */
static void sort_window(size_t *idx, size_t n, const struct corpus *cp) {
    for (size_t i = 1; i < n; i++) {
        size_t v = idx[i], j = i;
        while (j > 0 && cp->e[idx[j - 1]].seq.n < cp->e[v].seq.n) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = v;
    }
}

/* The epoch's order of entries (idx) and of batches (border). */
static void epoch_order(const struct corpus *cp, const struct trainer_opts *o, long e, size_t *idx,
                        size_t *border, size_t nbatches) {
    trainer_shuffle(idx, cp->n, o->seed, (uint64_t)e);
    size_t w = TRAINER_WINDOW * o->batch;
    for (size_t at = 0; at < cp->n; at += w)
        sort_window(idx + at, cp->n - at < w ? cp->n - at : w, cp);
    trainer_shuffle(border, nbatches, o->seed, (uint64_t)e + 0x10000000ull);
}

struct batch_bufs {
    int32_t *ids, *mask, *labels;
    float *vis;
};

static void bufs_alloc(struct batch_bufs *b, const struct corpus *cp, size_t batch) {
    size_t per = cp->feats ? cp->feat_floats : cp->image_floats;
    b->ids = malloc(batch * cp->maxlen * sizeof *b->ids);
    b->mask = malloc(batch * cp->maxlen * sizeof *b->mask);
    b->labels = malloc(batch * cp->maxlen * sizeof *b->labels);
    b->vis = malloc((per ? per : 1) * batch * sizeof *b->vis);
}

static void bufs_free(struct batch_bufs *b) {
    free(b->ids);
    free(b->mask);
    free(b->labels);
    free(b->vis);
}

void trainer_progress(struct stage_ctx *c, long epoch, long epochs, long step, long total, double loss,
                      double *recent) {
    *recent += loss;
    if ((step + 1) % 50 == 0 || step + 1 == total) { /* batches differ: show a mean */
        stage_progress(c, "epoch %ld/%ld step %ld/%ld loss %.4f (mean of the last %ld)", epoch + 1, epochs,
                       step + 1, total, *recent / (double)(step % 50 + 1), step % 50 + 1);
        *recent = 0;
    }
}

int trainer_run(struct stage_ctx *c, struct llava *m, const struct ops *ops, const struct corpus *cp,
                const struct trainer_opts *o, double *last_epoch_loss) {
    struct train_adamw opt;
    train_adamw_init(&opt, m, o->beta1, o->beta2, 1e-8f, o->weight_decay, o->clip);
    size_t per_epoch = (cp->n + o->batch - 1) / o->batch, *idx = malloc((cp->n ? cp->n : 1) * sizeof *idx);
    size_t *border = malloc((per_epoch ? per_epoch : 1) * sizeof *border);
    long total = (long)per_epoch * o->epochs, warm = (long)(o->warmup * (double)total), step = 0;
    struct batch_bufs b;
    bufs_alloc(&b, cp, o->batch);
    int32_t pad = m->cfg.pad_token_id >= 0 ? m->cfg.pad_token_id : 0;
    int rc = 0;
    double recent = 0;
    *last_epoch_loss = 0;
    for (long e = 0; rc == 0 && e < o->epochs; e++) {
        epoch_order(cp, o, e, idx, border, per_epoch);
        double sum = 0;
        for (size_t s = 0; rc == 0 && s < per_epoch; s++, step++) {
            size_t at = border[s] * o->batch, nb = cp->n - at < o->batch ? cp->n - at : o->batch, nimg, t;
            corpus_batch(cp, idx + at, nb, pad, b.ids, b.mask, b.labels, b.vis, &nimg, &t);
            float lr = (float)schedule_lr(o->schedule, o->lr, step, warm, total), loss;
            rc = cp->feats ? train_step_features(m, &opt, ops, b.ids, b.mask, b.labels, nb, t, b.vis, nimg,
                                                 lr, &loss)
                           : train_step(m, &opt, ops, b.ids, b.mask, b.labels, nb, t, b.vis, nimg, lr, &loss);
            sum += loss;
            trainer_progress(c, e, o->epochs, step, total, loss, &recent);
        }
        *last_epoch_loss = per_epoch ? sum / (double)per_epoch : 0;
    }
    bufs_free(&b);
    free(idx);
    free(border);
    train_adamw_free(&opt);
    return rc == 0 ? 0 : err_prefix("%s", c->name);
}

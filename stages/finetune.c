/* finetune: LoRA fine-tuning of a model on a world's fine-tuning corpus (MLLMU-Bench's recipe by default:
 * r 16, alpha 16, dropout 0.05 on the decoder's seven projections, projector and tower frozen, AdamW, linear
 * schedule), merged into the weights: the "vanilla" model that knows the fictitious people. */
#include <stdlib.h>
#include <string.h>

#include "engine/llava_plan.h"
#include "engine/ops.h"
#include "stages/adapter.h"
#include "stages/model.h"
#include "stages/trainer.h"
#include "stages/world.h"
#include "util/err.h"

static int finetune_train(struct stage_ctx *c, struct model *md, const struct world *w, struct lora *l,
                          double *loss) {
    struct trainer_opts o;
    struct corpus cp;
    const struct ops *ops = c->ops;
    if (trainer_opts_read(c, &o) != 0)
        return -1;
    if (corpus_from_examples(&cp, &w->examples, w->images, md->tok, &md->cfg, NULL, NULL) != 0)
        return err_prefix("%s", c->name);
    int rc = model_build(c, md, o.batch, cp.maxlen);
    if (rc == 0)
        llava_set_recompute(&md->m, stage_recompute(c)); /* before the first forward makes the activations */
    if (rc == 0 && (rc = corpus_features(&cp, &md->m, ops)) != 0)
        rc = err_prefix("%s", c->name);
    if (rc == 0)
        rc = adapter_attach(c, &md->m, l, (uint64_t)stage_int(c, "seed"));
    if (rc == 0) {
        stage_progress(c, "%zu examples, %zu images, up to %zu tokens", cp.n, cp.nimages, cp.maxlen);
        rc = trainer_run(c, &md->m, ops, &cp, &o, loss);
    }
    corpus_free(&cp);
    return rc;
}

static int finetune_run(struct stage_ctx *c) {
    struct model md;
    struct world w;
    struct lora l;
    memset(&w, 0, sizeof w);
    memset(&l, 0, sizeof l);
    double loss = 0;
    int rc = model_read(c, &md);
    if (rc == 0)
        rc = world_read(c, WORLD_EXAMPLES | WORLD_IMAGES, &w);
    if (rc == 0)
        rc = finetune_train(c, &md, &w, &l, &loss);
    if (rc == 0 && (rc = adapter_write(c, &l)) == 0) {
        llava_lora_merge(&md.m);
        rc = model_write(c, &md);
        stage_metric(c, "loss", loss);
    }
    lora_free(&l);
    world_free(&w);
    model_free(&md);
    return rc;
}

/* The dry run's memory plan: an adapter on the decoder, nothing else trains. */
static int finetune_memory(struct stage_ctx *c, const struct llava_config *cfg, struct llava_plan_opts *o,
                           struct lora *l) {
    if (trainer_memory(c, cfg, o) != 0 || adapter_create(c, l) != 0)
        return -1;
    o->lora = l;
    return 0;
}

static const struct param_spec finetune_params[] = {
    MODEL_PARAMS,
    PRECISION_PARAM,
    RECOMPUTE_PARAM,
    {"examples", PARAM_REF, NULL, "the fine-tuning corpus (a world's `finetune`)"},
    {"images", PARAM_REF, NULL, "the world's images"},
    ADAPTER_PARAMS,
    TRAINER_PARAMS("5", "4", "0.00002", "\"linear\"", "0.0", "0.0", "0.999"),
};
static const char *const finetune_outputs[] = {"model", "config", "tokenizer", "adapter", "adapter_config"};

const struct stage_kind kind_finetune = {
    .schema = {"finetune", 4, finetune_params, sizeof finetune_params / sizeof finetune_params[0],
               finetune_outputs, 5},
    .summary = "LoRA fine-tuning merged into the model (the vanilla model)",
    .run = finetune_run,
    .memory = finetune_memory,
};

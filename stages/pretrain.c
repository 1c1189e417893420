/* pretrain: a tiny LLaVA-architecture model trained from scratch on a world's pretraining corpus
 * (docs/stages.md, docs/protocol.md): every parameter, or, given a `tower` stage's output, everything but
 * that tower, which stays frozen as LLaVA keeps its CLIP tower. What it learns about the world's `real`
 * people is the "pretrained knowledge" the protocol later tries to remove. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/corpus.h"
#include "engine/llava_io.h"
#include "engine/safetensors.h"
#include "engine/ops.h"
#include "stages/model.h"
#include "stages/trainer.h"
#include "stages/world.h"
#include "util/err.h"

/* The architecture from the parameters, as the config.json transformers would write for it (vision feature
 * layer -1: the tiny tower has no layer to spare). */
static int pretrain_config(struct stage_ctx *c, const struct tokenizer *t, struct model *md) {
    int32_t image = tokenizer_id(t, "<image>");
    if (image < 0)
        return err_set("%s: the tokenizer has no <image> token", c->name);
    char text[2048], vision[512];
    trainer_vision_config(c, vision, sizeof vision);
    snprintf(
        text, sizeof text,
        "{\"model_type\": \"llava\", \"image_token_index\": %d, \"pad_token_id\": %d,"
        " \"projector_hidden_act\": \"gelu\", \"vision_feature_layer\": -1,"
        " \"vision_feature_select_strategy\": \"default\","
        " \"text_config\": {\"model_type\": \"llama\", \"hidden_size\": %lld, \"intermediate_size\": %lld,"
        " \"num_hidden_layers\": %lld, \"num_attention_heads\": %lld, \"num_key_value_heads\": %lld,"
        " \"vocab_size\": %d, \"max_position_embeddings\": %lld, \"rms_norm_eps\": 1e-05},"
        " \"vision_config\": %s}",
        image, t->pad >= 0 ? t->pad : 0, (long long)stage_int(c, "hidden"),
        (long long)stage_int(c, "intermediate"), (long long)stage_int(c, "layers"),
        (long long)stage_int(c, "heads"), (long long)stage_int(c, "heads"), t->vocab_size,
        (long long)stage_int(c, "max_positions"), vision);
    if (config_parse(text, strlen(text), "config", &md->cfg) != 0)
        return err_prefix("%s", c->name);
    md->config_json = config_write(&md->cfg);
    md->config_len = strlen(md->config_json);
    return 0;
}

static int pretrain_setup(struct stage_ctx *c, struct model *md, struct world *w, struct corpus *cp) {
    void *tok;
    size_t ntok;
    memset(md, 0, sizeof *md);
    if (stage_input_read(c, "tokenizer", 0, &tok, &ntok) != 0)
        return -1;
    md->tok_json = tok;
    md->tok_len = ntok;
    if (!(md->tok = tokenizer_load(tok, ntok)))
        return err_prefix("%s", c->name);
    if (pretrain_config(c, md->tok, md) != 0 || world_read(c, WORLD_EXAMPLES | WORLD_IMAGES, w) != 0)
        return -1;
    if (corpus_from_examples(cp, &w->examples, w->images, md->tok, &md->cfg, NULL, NULL) != 0)
        return err_prefix("%s", c->name);
    if (cp->maxlen > (size_t)md->cfg.text.max_positions)
        return err_set("%s: an example has %zu tokens, more than max_positions (%d)", c->name, cp->maxlen,
                       md->cfg.text.max_positions);
    return 0;
}

/* With a `tower` input: its tensors replace the random tower's and stay frozen; the corpus's images then go
 * through it once (cached features), as fine-tuning does. Without one every parameter trains. */
static int pretrain_tower(struct stage_ctx *c, struct llava *m, struct corpus *cp) {
    llava_set_trainable(m, "", 1);
    if (stage_input_count(c, "tower") == 0) {
        llava_grads_init(m);
        return 0;
    }
    void *data;
    size_t n;
    struct st_file f;
    if (stage_input_read(c, "tower", 0, &data, &n) != 0)
        return -1;
    int rc = st_parse(data, n, "tower", &f);
    if (rc == 0) {
        rc = llava_load_tower(m, &f);
        st_close(&f);
    }
    free(data);
    if (rc != 0)
        return err_prefix("%s: tower", c->name);
    llava_set_trainable(m, LLAVA_TOWER, 0);
    llava_grads_init(m);
    return corpus_features(cp, m, c->ops) == 0 ? 0 : err_prefix("%s", c->name);
}

static int pretrain_run(struct stage_ctx *c) {
    struct model md;
    struct world w;
    struct corpus cp;
    struct trainer_opts o;
    memset(&md, 0, sizeof md);
    memset(&w, 0, sizeof w);
    memset(&cp, 0, sizeof cp);
    int rc = trainer_opts_read(c, &o);
    if (rc == 0)
        rc = pretrain_setup(c, &md, &w, &cp);
    if (rc == 0 && (rc = llava_init_random(&md.m, &md.cfg, (uint64_t)stage_int(c, "init_seed"), 0.02f,
                                           o.batch, cp.maxlen)) != 0)
        rc = err_prefix("%s", c->name);
    md.built = rc == 0;
    double loss = 0;
    if (rc == 0) {
        llava_set_recompute(&md.m, stage_recompute(c));
        llava_set_act_bf16(&md.m, ops_takes_bf16(c->ops)); /* precision "bf16-act" */
        rc = pretrain_tower(c, &md.m, &cp);
    }
    if (rc == 0) {
        stage_progress(c, "%zu examples, %zu images, up to %zu tokens", cp.n, cp.nimages, cp.maxlen);
        rc = trainer_run(c, &md.m, c->ops, &cp, &o, &loss);
    }
    if (rc == 0)
        rc = model_write(c, &md);
    if (rc == 0) {
        stage_metric(c, "loss", loss);
        stage_metric(c, "examples", (double)cp.n);
        stage_metric(c, "parameters", (double)md.m.nparams);
    }
    corpus_free(&cp);
    world_free(&w);
    model_free(&md);
    return rc;
}

static const struct param_spec pretrain_params[] = {
    {"examples", PARAM_REF, NULL, "the pretraining corpus (a world's `pretrain`)"},
    {"images", PARAM_REF, NULL, "the world's images"},
    {"tokenizer", PARAM_REF, NULL, "the world's tokenizer.json"},
    {"tower", PARAM_REF, "null",
     "a `tower` stage's output: the vision tower, kept frozen (none: trained too)"},
    {"hidden", PARAM_INT, "128", "decoder width"},
    {"intermediate", PARAM_INT, "344", "decoder MLP width"},
    {"layers", PARAM_INT, "4", "decoder layers"},
    {"heads", PARAM_INT, "4", "decoder attention heads"},
    {"max_positions", PARAM_INT, "256", "longest sequence"},
    VISION_ARCH_PARAMS,
    {"init_seed", PARAM_INT, "1", "initial weights"},
    TRAINER_PARAMS("10", "16", "0.001", "\"cosine\"", "0.01", "0.0", "0.95"),
    PRECISION_PARAM,
    RECOMPUTE_PARAM,
};
static const char *const pretrain_outputs[] = {"model", "config", "tokenizer"};

const struct stage_kind kind_pretrain = {
    .schema = {"pretrain", 3, pretrain_params, sizeof pretrain_params / sizeof pretrain_params[0],
               pretrain_outputs, 3},
    .summary = "train a tiny LLaVA from scratch on a pretraining corpus",
    .run = pretrain_run,
};

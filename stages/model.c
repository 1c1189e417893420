/* model: models as store objects between stages (stages/model.h). */
#include "stages/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/llava_io.h"
#include "engine/peft.h"
#include "engine/safetensors.h"
#include "util/err.h"

int model_read(struct stage_ctx *c, struct model *md) {
    memset(md, 0, sizeof *md);
    void *cfg = NULL, *tok = NULL;
    size_t ncfg = 0, ntok = 0;
    if (stage_input_read(c, "config", 0, &cfg, &ncfg) != 0 ||
        stage_input_read(c, "tokenizer", 0, &tok, &ntok) != 0 ||
        stage_input_read(c, "model", 0, &md->weights, &md->weights_len) != 0) {
        free(cfg);
        free(tok);
        return -1;
    }
    md->config_json = cfg;
    md->config_len = ncfg;
    md->tok_json = tok;
    md->tok_len = ntok;
    if (stage_input_count(c, "adapters") != stage_input_count(c, "adapter_configs"))
        return err_set("%s: %zu adapters but %zu adapter_configs", c->name, stage_input_count(c, "adapters"),
                       stage_input_count(c, "adapter_configs"));
    if (config_parse(cfg, ncfg, "config", &md->cfg) != 0 || !(md->tok = tokenizer_load(tok, ntok)))
        return err_prefix("%s", c->name);
    if (md->tok->vocab_size > md->cfg.text.vocab)
        return err_set("%s: the tokenizer has %d tokens, the model's vocabulary %d", c->name,
                       md->tok->vocab_size, md->cfg.text.vocab);
    return 0;
}

struct tokenizer *model_tokenizer(struct stage_ctx *c) {
    void *json = NULL;
    size_t n = 0;
    struct tokenizer *t =
        stage_input_read(c, "tokenizer", 0, &json, &n) == 0 ? tokenizer_load(json, n) : NULL;
    free(json);
    return t;
}

/* Round i's adapter, read in PEFT's format and merged into the weights. */
static int merge_round(struct stage_ctx *c, struct model *md, size_t i) {
    void *cfg = NULL, *ten = NULL;
    size_t ncfg = 0, nten = 0;
    char what[64];
    snprintf(what, sizeof what, "adapter %zu", i + 1);
    struct lora l;
    memset(&l, 0, sizeof l);
    int rc = stage_input_read(c, "adapter_configs", i, &cfg, &ncfg);
    if (rc == 0)
        rc = stage_input_read(c, "adapters", i, &ten, &nten);
    if (rc == 0)
        rc = peft_decode(cfg, ncfg, ten, nten, what, llava_lora_shape, &md->m, &l, NULL);
    if (rc == 0 && (rc = llava_lora_attach(&md->m, &l, 0)) == 0)
        llava_lora_merge(&md->m);
    lora_free(&l);
    free(cfg);
    free(ten);
    return rc;
}

static const char *const projector_names[] = {
    "model.multi_modal_projector.linear_1.weight", "model.multi_modal_projector.linear_1.bias",
    "model.multi_modal_projector.linear_2.weight", "model.multi_modal_projector.linear_2.bias"};

static int set_projector(struct stage_ctx *c, struct model *md) {
    void *data;
    size_t n;
    if (stage_input_read(c, "projector", 0, &data, &n) != 0)
        return -1;
    struct st_file f;
    int rc = st_parse(data, n, "projector", &f);
    for (size_t i = 0; rc == 0 && i < 4; i++) {
        const struct st_tensor *t = st_find(&f, projector_names[i]);
        struct llava_tensor *p = llava_param_find(&md->m, projector_names[i]);
        if (!t || !p || t->nelem != p->n)
            rc = err_set("projector: tensor %s is missing or has the wrong size", projector_names[i]);
        else
            st_to_f32(t, md->m.params + p->offset);
    }
    if (rc == 0 && f.n != 4)
        rc = err_set("projector: %zu tensors, expected the projector's 4", f.n);
    st_close(&f);
    free(data);
    return rc;
}

int model_build(struct stage_ctx *c, struct model *md, size_t B, size_t T) {
    return model_build_rounds(c, md, B, T, 1);
}

int model_build_rounds(struct stage_ctx *c, struct model *md, size_t B, size_t T, int rounds) {
    struct st_file f;
    if (st_parse(md->weights, md->weights_len, "model", &f) != 0)
        return err_prefix("%s", c->name);
    int rc = llava_init(&md->m, &md->cfg, &f, 1, B, T);
    st_close(&f);
    free(md->weights);
    md->weights = NULL;
    if (rc != 0)
        return err_prefix("%s: model", c->name);
    md->built = 1;
    llava_set_act_bf16(&md->m, ops_takes_bf16(c->ops)); /* precision "bf16-act" */
    for (size_t i = 0; rounds && i < stage_input_count(c, "adapters"); i++)
        if (merge_round(c, md, i) != 0)
            return err_prefix("%s", c->name);
    if (rounds && stage_input_count(c, "projector") && set_projector(c, md) != 0)
        return err_prefix("%s", c->name);
    return 0;
}

int model_write(struct stage_ctx *c, const struct model *md) {
    void *data;
    size_t n;
    if (llava_save(&md->m, &data, &n) != 0)
        return -1;
    int rc = stage_output(c, "model", data, n, "safetensors");
    free(data);
    if (rc == 0)
        rc = stage_output(c, "config", md->config_json, md->config_len, "json");
    if (rc == 0)
        rc = stage_output(c, "tokenizer", md->tok_json, md->tok_len, "json");
    return rc;
}

void model_free(struct model *md) {
    if (md->built)
        llava_free(&md->m);
    tokenizer_free(md->tok);
    free(md->config_json);
    free(md->tok_json);
    free(md->weights);
    memset(md, 0, sizeof *md);
}

int model_projector_save(const struct llava *m, void **data, size_t *len) {
    static const char *const meta[] = {"format", "pt"};
    struct st_out outs[4];
    for (size_t i = 0; i < 4; i++) {
        const struct llava_tensor *t = llava_param_find(m, projector_names[i]);
        outs[i] =
            (struct st_out){.name = t->name, .data = m->params + t->offset, .ndim = t->ndim, .dtype = ST_F32};
        for (int d = 0; d < t->ndim; d++)
            outs[i].shape[d] = (int64_t)t->shape[d];
    }
    return st_write(outs, 4, meta, 1, data, len);
}

/* export-peft: the model after unlearning round k as ONE PEFT LoRA adapter directory on top of the model the
 * rounds started from, so that PeftModel.from_pretrained(base, dir) is the round-k model outside pulse-pipe.
 *
 * Inputs are a model's rounds as unlearn and evaluate take them (stages/model.h): `adapters` and
 * `adapter_configs` in round order, and the `projector` after the last round that trained it. The adapter is
 * engine/peft.h's peft_sum of the rounds (rank = the sum of their ranks, each round's alpha/r folded into its
 * B block, lora_alpha = rank so PEFT's scale is 1); the projector goes in as PEFT's modules_to_save. The base
 * model's config.json is an input so that every module (and the projector) is checked against its shapes
 * before anything is written. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/config.h"
#include "engine/gguf.h"
#include "engine/peft.h"
#include "engine/safetensors.h"
#include "stages/stage.h"
#include "util/buf.h"
#include "util/err.h"

#define EXPORT_PEFT_LAYOUT "model.language_model."
#define EXPORT_PEFT_NPROJ 4

static int read_config(struct stage_ctx *c, struct llava_config *cfg) {
    void *data;
    size_t n;
    if (stage_input_read(c, "config", 0, &data, &n) != 0)
        return -1;
    int rc = config_parse(data, n, "config", cfg);
    free(data);
    return rc;
}

/* PEFT keys modules by path, so every round must use the layout transformers 5 gives LLaVA (the one
 * pulse-pipe's own adapters use, and the projector's names): a Hub-layout module would name another module in
 * the file. */
static int check_layout(const struct lora *l) {
    for (size_t i = 0; i < l->n; i++)
        if (strncmp(l->m[i].name, EXPORT_PEFT_LAYOUT, strlen(EXPORT_PEFT_LAYOUT)) != 0)
            return err_set("module %s is not under " EXPORT_PEFT_LAYOUT " (the layout the export writes)",
                           l->m[i].name);
    return 0;
}

/* Round i's adapter (PEFT's two files), its shapes checked against the base model's decoder (gguf_lora_shape:
 * a decoder projection's shape from the text config, no model needed). */
static int read_round(struct stage_ctx *c, struct text_config *t, size_t i, struct lora *l) {
    void *cfg = NULL, *ten = NULL;
    size_t ncfg = 0, nten = 0;
    char what[64];
    snprintf(what, sizeof what, "adapter %zu", i + 1);
    memset(l, 0, sizeof *l);
    int rc = stage_input_read(c, "adapter_configs", i, &cfg, &ncfg);
    if (rc == 0)
        rc = stage_input_read(c, "adapters", i, &ten, &nten);
    if (rc == 0)
        rc = peft_decode(cfg, ncfg, ten, nten, what, gguf_lora_shape, t, l, NULL);
    if (rc == 0 && check_layout(l) != 0) {
        rc = err_prefix("%s", what);
        lora_free(l);
    }
    free(cfg);
    free(ten);
    return rc;
}

static void free_rounds(struct lora *rounds, size_t n) {
    for (size_t i = 0; i < n; i++)
        lora_free(&rounds[i]);
    free(rounds);
}

/* Every round, in order; NULL (err_set) when the counts differ, there is none, or one fails to read. */
static struct lora *read_rounds(struct stage_ctx *c, struct text_config *t, size_t *n) {
    *n = stage_input_count(c, "adapters");
    size_t nc = stage_input_count(c, "adapter_configs");
    if (*n != nc) {
        err_set("%zu adapters but %zu adapter_configs", *n, nc);
        return NULL;
    }
    if (*n == 0) {
        err_set("no adapters: the export needs at least one round");
        return NULL;
    }
    struct lora *rounds = xcalloc(*n, sizeof *rounds);
    for (size_t i = 0; i < *n; i++)
        if (read_round(c, t, i, &rounds[i]) != 0) {
            free_rounds(rounds, i);
            return NULL;
        }
    return rounds;
}

/* The projector's four tensors, as unlearn's `projector` output names them, with the shapes the config gives.
 */
static const char *const proj_names[EXPORT_PEFT_NPROJ] = {
    "model.multi_modal_projector.linear_1.weight", "model.multi_modal_projector.linear_1.bias",
    "model.multi_modal_projector.linear_2.weight", "model.multi_modal_projector.linear_2.bias"};

static void proj_shape(const struct llava_config *cfg, int i, struct st_out *o) {
    int64_t th = cfg->text.hidden, vh = cfg->vision.hidden;
    const int64_t rows[EXPORT_PEFT_NPROJ] = {th, th, th, th}, cols[EXPORT_PEFT_NPROJ] = {vh, 0, th, 0};
    o->ndim = cols[i] ? 2 : 1;
    o->shape[0] = rows[i];
    o->shape[1] = cols[i];
}

static int same_shape(const struct st_tensor *t, const struct st_out *o) {
    if (t->ndim != o->ndim)
        return 0;
    for (int d = 0; d < o->ndim; d++)
        if (t->shape[d] != o->shape[d])
            return 0;
    return 1;
}

/* Fills out[4] (data malloc'd) from the projector file; -1 with err_set naming the first wrong tensor. */
static int projector_tensors(const struct st_file *f, const struct llava_config *cfg, struct st_out *out) {
    if (f->n != EXPORT_PEFT_NPROJ)
        return err_set("%zu tensors, expected the projector's %d", f->n, EXPORT_PEFT_NPROJ);
    for (int i = 0; i < EXPORT_PEFT_NPROJ; i++) {
        const struct st_tensor *t = st_find(f, proj_names[i]);
        out[i] = (struct st_out){.name = proj_names[i], .dtype = ST_F32};
        proj_shape(cfg, i, &out[i]);
        if (!t || !same_shape(t, &out[i]))
            return err_set("tensor %s is %s", proj_names[i], t ? "not the base model's shape" : "missing");
    }
    for (int i = 0; i < EXPORT_PEFT_NPROJ; i++) {
        const struct st_tensor *t = st_find(f, proj_names[i]);
        float *x = xmalloc(t->nelem * sizeof *x);
        st_to_f32(t, x);
        out[i].data = x;
    }
    return 0;
}

/* The optional projector: *n = 0 without one, else 4 tensors in out. */
static int read_projector(struct stage_ctx *c, const struct llava_config *cfg, struct st_out *out,
                          size_t *n) {
    *n = 0;
    if (stage_input_count(c, "projector") == 0)
        return 0;
    void *data;
    size_t len;
    if (stage_input_read(c, "projector", 0, &data, &len) != 0)
        return -1;
    struct st_file f;
    int rc = st_parse(data, len, "projector", &f);
    if (rc == 0) {
        rc = projector_tensors(&f, cfg, out);
        st_close(&f);
        if (rc != 0)
            rc = err_prefix("projector");
    }
    free(data);
    if (rc == 0)
        *n = EXPORT_PEFT_NPROJ;
    return rc;
}

static int write_outputs(struct stage_ctx *c, const struct lora *sum, const struct st_out *proj,
                         size_t nproj) {
    static const struct peft_meta meta = {NULL, "CAUSAL_LM"};
    char *cfg;
    void *ten;
    size_t ncfg, nten;
    if (peft_encode_saved(sum, &meta, proj, nproj, &cfg, &ncfg, &ten, &nten) != 0)
        return -1;
    int rc = stage_output(c, "adapter_model", ten, nten, "safetensors");
    if (rc == 0)
        rc = stage_output(c, "adapter_config", cfg, ncfg, "json");
    free(cfg);
    free(ten);
    stage_metric(c, "rank", sum->r);
    stage_metric(c, "modules", (double)sum->n);
    stage_metric(c, "bytes", (double)nten);
    return rc;
}

static int export_peft_run(struct stage_ctx *c) {
    struct llava_config cfg;
    struct lora sum;
    struct st_out proj[EXPORT_PEFT_NPROJ] = {{0}};
    size_t nrounds = 0, nproj = 0;
    memset(&sum, 0, sizeof sum);
    if (read_config(c, &cfg) != 0)
        return err_prefix("%s", c->name);
    struct lora *rounds = read_rounds(c, &cfg.text, &nrounds);
    int rc = rounds ? 0 : -1;
    if (rc == 0)
        rc = peft_sum(rounds, nrounds, &sum);
    if (rc == 0)
        rc = read_projector(c, &cfg, proj, &nproj);
    if (rc == 0)
        rc = write_outputs(c, &sum, proj, nproj);
    for (size_t i = 0; i < EXPORT_PEFT_NPROJ; i++)
        free((float *)proj[i].data);
    lora_free(&sum);
    if (rounds)
        free_rounds(rounds, nrounds);
    return rc == 0 ? 0 : err_prefix("%s", c->name);
}

static const struct param_spec export_peft_params[] = {
    {"adapters", PARAM_REFS, NULL,
     "the rounds' adapters, in order (`adapter` outputs of unlearn or finetune)"},
    {"adapter_configs", PARAM_REFS, NULL, "their adapter_config.json, same order"},
    {"projector", PARAM_REF, "null", "the projector after the last round that trained it (modules_to_save)"},
    {"config", PARAM_REF, NULL, "the base model's config.json (a `config` output): every shape is checked"},
};
static const char *const export_peft_outputs[] = {"adapter_model", "adapter_config"};

const struct stage_kind kind_export_peft = {
    .schema = {"export-peft", 1, export_peft_params, sizeof export_peft_params / sizeof export_peft_params[0],
               export_peft_outputs, 2},
    .summary = "rounds of unlearning (adapters + projector) as one PEFT adapter directory",
    .run = export_peft_run,
};

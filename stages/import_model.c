/* import-model: a Hugging Face LLaVA directory from the user's disk into the store as a model
 * (stages/model.h): config.json, the weights (model.safetensors, or the shards model.safetensors.index.json
 * lists) and tokenizer.json. Everything is checked the way a stage that reads the model will check it (the
 * config, every tensor's name and shape, the tokenizer and its size against the vocabulary), so a bad
 * checkpoint fails here, with one line, not rounds later. The weights are re-written as one safetensors file
 * in the checkpoint's own dtype (fp16 and bf16 round-trip through fp32 exactly), under the newer transformers
 * names.
 *
 * The directory is a PARAM_PATH: its content is hashed when the manifest loads, so the stage reruns exactly
 * when a file in it changes, and a 26 GB base model is stored once whatever manifests import it. */
#include <stdio.h>
#include <stdlib.h>

#include "engine/llava.h"
#include "engine/llava_io.h"
#include "engine/tokenizer.h"
#include "stages/stage.h"
#include "util/err.h"
#include "util/fsio.h"

#define IMPORT_JSON_MAX (64u << 20) /* config.json, tokenizer.json */

static int read_json(const char *dir, const char *name, char **data, size_t *n) {
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        return err_set("path too long: %s/%s", dir, name);
    return fsio_read_file(path, IMPORT_JSON_MAX, data, n);
}

/* The weights as the `model` output, after llava_load has checked them. */
static int import_weights(struct stage_ctx *c, const char *dir, const struct tokenizer *tok) {
    struct llava m;
    if (llava_load(&m, dir, 1, 1) != 0)
        return -1;
    int rc = 0;
    if (tok->vocab_size > m.cfg.text.vocab)
        rc = err_set("tokenizer.json has %d tokens, the model's vocabulary %d", tok->vocab_size,
                     m.cfg.text.vocab);
    void *data = NULL;
    size_t n = 0;
    if (rc == 0)
        rc = llava_save_as(&m, m.wdtype, &data, &n);
    llava_free(&m);
    if (rc == 0)
        rc = stage_output(c, "model", data, n, "safetensors");
    free(data);
    return rc;
}

static int import_model_run(struct stage_ctx *c) {
    const char *dir = stage_str(c, "path");
    char *cfg = NULL, *tokjson = NULL;
    size_t ncfg = 0, ntok = 0;
    struct tokenizer *tok = NULL;
    int rc = read_json(dir, "config.json", &cfg, &ncfg);
    if (rc == 0)
        rc = read_json(dir, "tokenizer.json", &tokjson, &ntok);
    if (rc == 0 && !(tok = tokenizer_load(tokjson, ntok)))
        rc = err_prefix("tokenizer.json");
    if (rc == 0)
        rc = import_weights(c, dir, tok);
    if (rc == 0)
        rc = stage_output(c, "config", cfg, ncfg, "json");
    if (rc == 0)
        rc = stage_output(c, "tokenizer", tokjson, ntok, "json");
    tokenizer_free(tok);
    free(cfg);
    free(tokjson);
    return rc;
}

static const struct param_spec import_model_params[] = {
    {"path", PARAM_PATH, NULL,
     "a Hugging Face LLaVA directory: config.json, model.safetensors (or its shards and "
     "model.safetensors.index.json), tokenizer.json"},
};
static const char *const import_model_outputs[] = {"model", "config", "tokenizer"};

const struct stage_kind kind_import_model = {
    .schema = {"import-model", 1, import_model_params, 1, import_model_outputs, 3},
    .summary = "a Hugging Face LLaVA checkpoint from disk, checked, as a model other stages read",
    .run = import_model_run,
};

/* export-gguf: a finetune or unlearn stage's LoRA adapter (PEFT's two files) as a GGUF LoRA adapter, the
 * file llama.cpp loads with --lora on top of the base model converted by convert_hf_to_gguf.py
 * (engine/gguf.h). The base model's config.json is an input because llama.cpp keeps q/k rows in another
 * rotary order, per head: without the head counts the exported q/k deltas would be wrong. */
#include <stdlib.h>
#include <string.h>

#include "engine/config.h"
#include "engine/gguf.h"
#include "engine/peft.h"
#include "stages/stage.h"
#include "util/err.h"

static int read_dtype(struct stage_ctx *c, enum gguf_dtype *type) {
    const char *d = stage_str(c, "dtype");
    if (strcmp(d, "f32") == 0)
        *type = GGUF_DT_F32;
    else if (strcmp(d, "f16") == 0)
        *type = GGUF_DT_F16;
    else
        return err_set("%s: dtype must be f32 or f16, got '%s'", c->name, d);
    return 0;
}

static int read_text_config(struct stage_ctx *c, struct text_config *t) {
    void *data;
    size_t n;
    if (stage_input_read(c, "config", 0, &data, &n) != 0)
        return -1;
    struct llava_config cfg;
    int rc = config_parse(data, n, "config", &cfg);
    free(data);
    if (rc != 0)
        return err_prefix("%s", c->name);
    *t = cfg.text;
    return 0;
}

/* The adapter, checked against the base model's shapes: a module outside the decoder is refused here. */
static int read_adapter(struct stage_ctx *c, struct text_config *t, struct lora *l) {
    void *cfg = NULL, *ten = NULL;
    size_t ncfg = 0, nten = 0;
    int rc = stage_input_read(c, "adapter_config", 0, &cfg, &ncfg);
    if (rc == 0)
        rc = stage_input_read(c, "adapter", 0, &ten, &nten);
    if (rc == 0 && peft_decode(cfg, ncfg, ten, nten, "adapter", gguf_lora_shape, t, l, NULL) != 0)
        rc = err_prefix("%s", c->name);
    free(cfg);
    free(ten);
    return rc;
}

static int export_gguf_run(struct stage_ctx *c) {
    enum gguf_dtype type = GGUF_DT_F32;
    struct text_config t;
    struct lora l;
    memset(&l, 0, sizeof l);
    if (read_dtype(c, &type) != 0 || read_text_config(c, &t) != 0 || read_adapter(c, &t, &l) != 0)
        return -1;
    void *data;
    size_t n;
    int rc = gguf_lora_encode(&l, &t, type, &data, &n);
    lora_free(&l);
    if (rc != 0)
        return err_prefix("%s", c->name);
    rc = stage_output(c, "gguf", data, n, "gguf");
    free(data);
    stage_metric(c, "bytes", (double)n);
    return rc;
}

static const struct param_spec export_gguf_params[] = {
    {"adapter", PARAM_REF, NULL, "the adapter's weights (an `adapter` output of finetune or unlearn)"},
    {"adapter_config", PARAM_REF, NULL, "its adapter_config.json (the same stage's `adapter_config`)"},
    {"config", PARAM_REF, NULL, "the base model's config.json (a `config` output): shapes and head counts"},
    {"dtype", PARAM_STR, "\"f32\"", "tensor type in the file: f32 or f16"},
};
static const char *const export_gguf_outputs[] = {"gguf"};

const struct stage_kind kind_export_gguf = {
    .schema = {"export-gguf", 1, export_gguf_params, sizeof export_gguf_params / sizeof export_gguf_params[0],
               export_gguf_outputs, 1},
    .summary = "a LoRA adapter as a GGUF file for llama.cpp (--lora)",
    .run = export_gguf_run,
};

/* adapter: LoRA adapters of the training kinds (stages/adapter.h). */
#include "stages/adapter.h"

#include <stdlib.h>
#include <string.h>

#include "engine/peft.h"
#include "util/buf.h"
#include "util/err.h"

/* ".*language_model.*\.(q_proj|...)": the whole-path regex PEFT matches with re.fullmatch. */
static int targets_regex(struct stage_ctx *c, struct buf *re) {
    const struct json *t = json_get(c->params, "lora_targets");
    buf_puts(re, ".*language_model.*\\.(");
    for (size_t i = 0; i < t->len; i++) {
        const char *s = t->items[i]->s;
        if (!*s || strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(s))
            return err_set("%s: lora_targets: '%s' is not a projection name", c->name, s);
        buf_printf(re, "%s%s", i ? "|" : "", s);
    }
    buf_puts(re, ")");
    return t->len ? 0 : err_set("%s: lora_targets is empty", c->name);
}

int adapter_create(struct stage_ctx *c, struct lora *l) {
    memset(l, 0, sizeof *l);
    int64_t r = stage_int(c, "lora_r");
    double alpha = stage_num(c, "lora_alpha"), drop = stage_num(c, "lora_dropout");
    if (r < 1 || r > 4096 || !(alpha > 0) || !(drop >= 0 && drop < 1))
        return err_set("%s: lora_r must be 1-4096, lora_alpha positive, lora_dropout in [0, 1)", c->name);
    struct buf re = {0};
    int rc = targets_regex(c, &re);
    if (rc == 0 && lora_create(l, (int)r, alpha, drop) != 0)
        rc = err_prefix("%s", c->name);
    if (rc == 0)
        lora_set_target_regex(l, re.data);
    buf_free(&re);
    return rc;
}

int adapter_attach(struct stage_ctx *c, struct llava *m, struct lora *l, uint64_t seed) {
    if (adapter_create(c, l) != 0)
        return -1; /* its message names the stage */
    int rc = llava_lora_add_targets(m, l);
    if (rc == 0) {
        lora_init(l, seed);
        rc = llava_lora_attach(m, l, seed);
    }
    if (rc != 0)
        return err_prefix("%s", c->name);
    llava_grads_init(m);
    return 0;
}

int adapter_write(struct stage_ctx *c, const struct lora *l) {
    char *cfg;
    void *ten;
    size_t ncfg, nten;
    if (peft_encode(l, NULL, &cfg, &ncfg, &ten, &nten) != 0)
        return err_prefix("%s", c->name);
    int rc = stage_output(c, "adapter", ten, nten, "safetensors");
    if (rc == 0)
        rc = stage_output(c, "adapter_config", cfg, ncfg, "json");
    free(cfg);
    free(ten);
    return rc;
}

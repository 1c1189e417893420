/* dryplan: the memory plan `run --dry-run` prints under a stage that would run. The stage's kind says how it
 * would set up its model (stage_kind.memory); the model's config comes from the store (the `config` input, or
 * its producer's record) or, before an import-model stage has run, from the directory it would import. The
 * plan itself is engine/llava_plan.h's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/config.h"
#include "engine/llava_plan.h"
#include "engine/lora.h"
#include "pipe/pipe.h"
#include "store/object.h"
#include "stages/registry.h"
#include "util/err.h"
#include "util/fsio.h"

#define CONFIG_MAX (1u << 20)

/* The dag input feeding stage i's `config` parameter, or NULL. */
static const struct dag_input *config_input(const struct plan *p, size_t i) {
    const struct dag_stage *st = &p->dag.stages[i];
    for (size_t k = 0; k < st->ninputs; k++)
        if (strcmp(st->inputs[k].param, "config") == 0)
            return &st->inputs[k];
    return NULL;
}

/* The config.json bytes, when they can be had without running anything: 1 with *text malloc'd, 0 when not
 * (*why names the stage that must run first), -1 on a read error. */
static int config_text(const struct plan *p, struct store *s, size_t i, char **text, size_t *n,
                       const char **why) {
    const struct dag_input *in = config_input(p, i);
    if (!in)
        return 0;
    const struct json *rec = p->records[in->from];
    const char *id = rec ? json_get_str(json_get(json_get(rec, "outputs"), in->output), "id") : NULL;
    if (id)
        return store_get(s, id, (void **)text, n) == 0 ? 1 : -1;
    const struct json *path = json_get(p->paths[in->from], "path");
    const char *dir = path ? json_get_str(path, "path") : NULL;
    *why = p->dag.stages[in->from].name;
    if (!dir || strcmp(p->dag.stages[in->from].kind->name, "import-model") != 0)
        return 0;
    char file[4200];
    snprintf(file, sizeof file, "%s/config.json", dir);
    return fsio_read_file(file, CONFIG_MAX, text, n) == 0 ? 1 : -1;
}

/* The kind's setup for this config, T filled in (max_positions when the kind cannot tell), then the plan. */
static int plan_stage(const struct plan *p, struct store *s, size_t i, const struct stage_kind *kind,
                      const struct llava_config *cfg, const char *device) {
    const struct dag_stage *st = &p->dag.stages[i];
    struct stage_ctx c = {
        .name = st->name, .kind = kind, .params = st->params, .inputs = p->inputs[i], .in = s};
    const char *precision = json_get_str(st->params, "precision");
    struct llava_plan_opts o = {.precision = precision ? precision : "fp32", .device = device};
    struct lora l;
    memset(&l, 0, sizeof l);
    struct llava_plan plan;
    int rc = kind->memory(&c, cfg, &o, &l);
    int bound = rc == 0 && o.T == 0;
    if (bound)
        o.T = (size_t)cfg->text.max_positions;
    if (rc == 0)
        rc = llava_memory_plan(cfg, &o, &plan);
    lora_free(&l);
    if (rc != 0)
        return -1;
    printf("      memory plan: batch %zu x %zu tokens (%s), %s, recompute %s\n", o.B, o.T,
           bound ? "max_positions: the corpus is not in the store yet" : "its inputs' longest sequence",
           o.precision, o.recompute ? "on" : "off");
    llava_plan_print(stdout, &plan, "        ", llava_plan_device_bytes(device));
    return 0;
}

void dryplan_print(const struct plan *p, struct store *s, size_t i, const char *device) {
    const struct dag_stage *st = &p->dag.stages[i];
    const struct stage_kind *kind = registry_find(st->kind->name);
    if (!kind || !kind->memory)
        return;
    char *text = NULL;
    size_t n = 0;
    const char *why = NULL;
    int got = config_text(p, s, i, &text, &n, &why);
    struct llava_config cfg;
    if (got == 0 && why)
        printf("      memory plan: once '%s' has run (its model's config is not known before)\n", why);
    if (got == 1 &&
        (config_parse(text, n, "config", &cfg) != 0 || plan_stage(p, s, i, kind, &cfg, device) != 0))
        got = -1;
    if (got < 0)
        printf("      memory plan: not available (%s)\n", err_msg());
    free(text);
    fflush(stdout);
}

/* registry: every stage kind this build knows, in one table. */
#include "stages/registry.h"

#include <string.h>

extern const struct stage_kind kind_random, kind_concat, kind_check, kind_file;
extern const struct stage_kind kind_import_dataset, kind_import_model, kind_merge_dataset;
extern const struct stage_kind kind_synth;
extern const struct stage_kind kind_report;
extern const struct stage_kind kind_tower, kind_pretrain, kind_select, kind_evaluate;
extern const struct stage_kind kind_finetune, kind_unlearn, kind_export_gguf, kind_export_peft;

static const struct stage_kind *const kinds[] = {
    &kind_random,       &kind_concat,        &kind_check,   &kind_file,     &kind_import_dataset,
    &kind_import_model, &kind_merge_dataset, &kind_synth,   &kind_pretrain, &kind_select,
    &kind_evaluate,     &kind_finetune,      &kind_unlearn, &kind_report,   &kind_export_gguf,
    &kind_export_peft,  &kind_tower,
};

#define NKINDS (sizeof kinds / sizeof kinds[0])

const struct stage_kind *registry_find(const char *name) {
    for (size_t i = 0; i < NKINDS; i++)
        if (strcmp(kinds[i]->schema.name, name) == 0)
            return kinds[i];
    return NULL;
}

const struct stage_kind *const *registry_all(size_t *n) {
    *n = NKINDS;
    return kinds;
}

const struct kind_schema *const *registry_schemas(size_t *n) {
    static const struct kind_schema *schemas[NKINDS];
    for (size_t i = 0; i < NKINDS; i++)
        schemas[i] = &kinds[i]->schema;
    *n = NKINDS;
    return schemas;
}

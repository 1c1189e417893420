/* registry: the table of stage kinds. Adding a kind = one file in stages/ defining a `const struct
 * stage_kind` plus one line in registry.c. */
#ifndef PULSE_STAGES_REGISTRY_H
#define PULSE_STAGES_REGISTRY_H

#include <stddef.h>
#include "stages/stage.h"

const struct stage_kind *registry_find(const char *name);
/* All kinds, in a fixed order; *n receives the count. */
const struct stage_kind *const *registry_all(size_t *n);
/* The schemas of all kinds, parallel to registry_all (for manifest_load). */
const struct kind_schema *const *registry_schemas(size_t *n);

#endif

/* split: a select stage's split.json ({"forget", "retain", "groups"}, docs/datasets.md) read into one role
 * per person of the world: 'f' forgotten, 'r' retained, 0 neither. evaluate and unlearn both read splits this
 * way. */
#ifndef PULSE_STAGES_SPLIT_H
#define PULSE_STAGES_SPLIT_H

#include <stdint.h>

#include "engine/dataset.h"
#include "stages/stage.h"

/* Reads the stage's `split` input. The forget people are the whole forget list when first == 0, else groups
 * first..last (1-based: evaluate after round k takes 1..k, unlearn's round k takes k..k); `param` names the
 * stage parameter that chose them, for the message when the split has fewer groups. role: [people->n],
 * zeroed by the caller. A person in both roles, an unknown person or a malformed split: one line, -1. */
int split_roles(struct stage_ctx *c, const struct ds_people *people, const char *param, int64_t first,
                int64_t last, char *role);

#endif

/* tower_data: a world's `labels` (labels.jsonl, docs/synth.md "Tower labels") and the images they name, as
 * the `tower` kind trains on them: every labelled image decoded once into the tower's pixels, with its token
 * labels (a scene's objects placed on the tower's patch grid) or its face labels (engine/tower_heads.h). */
#ifndef PULSE_STAGES_TOWER_DATA_H
#define PULSE_STAGES_TOWER_DATA_H

#include "engine/config.h"
#include "engine/dataset.h"

#include <stddef.h>
#include <stdint.h>

struct tower_data {
    size_t n, per, image_floats;
    float *pixels; /* [n, 3, size, size] */
    int32_t *tok;  /* [n, per, 3] */
    int32_t *face; /* [n, 11] */
    size_t scenes, faces;
};

/* Parses labels (text of n bytes) against the images, for a tower of config cfg. One line naming the label
 * line on anything wrong: bad JSON, an unknown image, a value outside its range; or an empty file, or more
 * lines than images (which also bounds what it allocates). */
int tower_data_load(struct tower_data *d, const char *labels, size_t n, const struct ds_images *im,
                    const struct llava_config *cfg);
void tower_data_free(struct tower_data *d);

#endif

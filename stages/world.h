/* world: a data set's parts (docs/datasets.md) read from a stage's inputs. The protocol kinds take the world
 * as refs named `people`, `items`, `examples` and `images` (whichever they need); this reads and checks them
 * once, with messages naming the stage. */
#ifndef PULSE_STAGES_WORLD_H
#define PULSE_STAGES_WORLD_H

#include "engine/dataset.h"
#include "stages/stage.h"

struct world {
    struct ds_people people;
    struct ds_items items;
    struct ds_examples examples;
    struct ds_images *images;
    void *tar; /* the images' bytes, which the index points into */
};

enum { WORLD_PEOPLE = 1, WORLD_ITEMS = 2, WORLD_EXAMPLES = 4, WORLD_IMAGES = 8 };

/* Reads the parts named by `parts` (WORLD_* bits) from the inputs of the same names. */
int world_read(struct stage_ctx *c, int parts, struct world *w);
void world_free(struct world *w);

#endif

/* world: reading a data set's parts from a stage's inputs (stages/world.h). */
#include "stages/world.h"

#include <stdlib.h>
#include <string.h>

#include "util/err.h"

static int read_text(struct stage_ctx *c, const char *name, char **text, size_t *n) {
    void *data;
    if (stage_input_read(c, name, 0, &data, n) != 0)
        return -1;
    *text = data;
    return 0;
}

static int read_part(struct stage_ctx *c, int part, struct world *w) {
    char *text = NULL;
    size_t n = 0;
    int rc;
    switch (part) {
    case WORLD_PEOPLE:
        rc = read_text(c, "people", &text, &n) ? -1 : ds_read_people(text, n, "people", &w->people);
        break;
    case WORLD_ITEMS:
        rc = read_text(c, "items", &text, &n) ? -1 : ds_read_items(text, n, "items", &w->items);
        break;
    case WORLD_EXAMPLES:
        rc = read_text(c, "examples", &text, &n) ? -1 : ds_read_examples(text, n, "examples", &w->examples);
        break;
    default:
        if ((rc = stage_input_read(c, "images", 0, &w->tar, &n)) == 0)
            rc = ds_images_open(w->tar, n, "images", &w->images);
        break;
    }
    free(text);
    return rc;
}

int world_read(struct stage_ctx *c, int parts, struct world *w) {
    memset(w, 0, sizeof *w);
    for (int bit = 1; bit <= WORLD_IMAGES; bit <<= 1)
        if ((parts & bit) && read_part(c, bit, w) != 0) {
            world_free(w);
            return err_prefix("%s", c->name);
        }
    return 0;
}

void world_free(struct world *w) {
    ds_people_free(&w->people);
    ds_items_free(&w->items);
    ds_examples_free(&w->examples);
    ds_images_free(w->images);
    free(w->tar);
    memset(w, 0, sizeof *w);
}

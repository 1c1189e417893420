/* tower_data: labels.jsonl and its images as the `tower` kind trains on them (stages/tower_data.h). */
#include "stages/tower_data.h"

#include <stdlib.h>
#include <string.h>

#include "engine/pixels.h"
#include "engine/tower_heads.h"
#include "util/err.h"
#include "util/json.h"
#include "util/buf.h"

static size_t count_lines(const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += s[i] == '\n' || (i + 1 == n && s[i] != '\n');
    return k;
}

static int int_in(const struct json *v, int64_t lo, int64_t hi) {
    return v && v->type == JSON_INT && v->i >= lo && v->i < hi;
}

/* A JSON number as a double; -1 for anything else. */
static double num(const struct json *v) {
    return v && v->type == JSON_NUM ? v->n : v && v->type == JSON_INT ? (double)v->i : -1;
}

/* [shape, colour, large, x, y] within their ranges; the centre in *x, *y. */
static int object_ok(const struct json *o, double *x, double *y) {
    if (o->type != JSON_ARR || o->len != 5)
        return 0;
    *x = num(o->items[3]);
    *y = num(o->items[4]);
    for (int g = 0; g < TOWER_TOKEN_GROUPS; g++)
        if (!int_in(o->items[g], 0, tower_classes[g] - 1)) /* class 0 is "no object" */
            return 0;
    return *x >= 0 && *x <= 1 && *y >= 0 && *y <= 1;
}

/* A scene's objects onto the patch grid: the token whose patch holds an object's centre names it (a later
 * object centred in the same patch replaces an earlier one; the world's spacing makes that rare). */
static int scene_labels(const struct json *objs, size_t grid, int32_t *tok) {
    if (objs->type != JSON_ARR || objs->len == 0)
        return err_set("`objects` must be a non-empty array");
    memset(tok, 0, grid * grid * TOWER_TOKEN_GROUPS * sizeof *tok);
    for (size_t j = 0; j < objs->len; j++) {
        const struct json *o = objs->items[j];
        double x, y;
        if (!object_ok(o, &x, &y))
            return err_set("object %zu is not [shape 0-4, colour 0-7, large 0-1, x 0-1, y 0-1]", j);
        size_t col = (size_t)(x * (double)grid), row = (size_t)(y * (double)grid);
        int32_t *t = tok + ((row < grid ? row : grid - 1) * grid + (col < grid ? col : grid - 1)) * 3;
        for (int g = 0; g < TOWER_TOKEN_GROUPS; g++)
            t[g] = (int32_t)o->items[g]->i + 1;
    }
    return 0;
}

static int face_labels(const struct json *face, int32_t *out) {
    if (face->type != JSON_ARR || face->len != TOWER_FACE_GROUPS)
        return err_set("`face` must be an array of %d features", TOWER_FACE_GROUPS);
    for (int f = 0; f < TOWER_FACE_GROUPS; f++) {
        if (!int_in(face->items[f], 0, tower_classes[TOWER_TOKEN_GROUPS + f]))
            return err_set("face feature %d (%s) must be 0-%d", f, tower_group_names[TOWER_TOKEN_GROUPS + f],
                           tower_classes[TOWER_TOKEN_GROUPS + f] - 1);
        out[f] = (int32_t)face->items[f]->i;
    }
    return 0;
}

/* Entry i from one label line: its labels, then its image's pixels. */
static int load_line(struct tower_data *d, size_t i, const struct json *l, const struct ds_images *im,
                     const struct llava_config *cfg) {
    const char *id = json_get_str(l, "image");
    const struct json *objs = json_get(l, "objects"), *face = json_get(l, "face");
    int32_t *tok = d->tok + i * d->per * TOWER_TOKEN_GROUPS, *fl = d->face + i * TOWER_FACE_GROUPS;
    if (!id || !objs == !face)
        return err_set("a label needs `image` and one of `objects` or `face`");
    for (size_t k = 0; k < d->per * TOWER_TOKEN_GROUPS; k++)
        tok[k] = -1;
    for (size_t k = 0; k < TOWER_FACE_GROUPS; k++)
        fl[k] = -1;
    int rc = objs ? scene_labels(objs, (size_t)(cfg->vision.image_size / cfg->vision.patch_size), tok)
                  : face_labels(face, fl);
    d->scenes += objs != NULL;
    d->faces += face != NULL;
    struct image img = {0};
    if (rc == 0 && (rc = ds_images_decode(im, id, &img)) == 0)
        rc = pixels_from_image(&img, cfg->vision.image_size, id, d->pixels + i * d->image_floats);
    image_free(&img);
    return rc;
}

int tower_data_load(struct tower_data *d, const char *labels, size_t n, const struct ds_images *im,
                    const struct llava_config *cfg) {
    memset(d, 0, sizeof *d);
    size_t lines = count_lines(labels, n), size = (size_t)cfg->vision.image_size;
    if (lines == 0)
        return err_set("labels: no labelled image");
    if (lines > ds_images_count(im)) /* each image is labelled once at most: no allocation beyond the tar's */
        return err_set("labels: %zu lines for %zu images", lines, ds_images_count(im));
    d->per = (size_t)cfg->patches;
    d->image_floats = 3 * size * size;
    d->pixels = xmalloc(lines * d->image_floats * sizeof *d->pixels);
    d->tok = xmalloc(lines * d->per * TOWER_TOKEN_GROUPS * sizeof *d->tok);
    d->face = xmalloc(lines * TOWER_FACE_GROUPS * sizeof *d->face);
    for (const char *at = labels, *end = labels + n; at < end; d->n++) {
        const char *nl = memchr(at, '\n', (size_t)(end - at));
        size_t len = (size_t)((nl ? nl : end) - at);
        struct json *l = json_parse(at, len);
        int rc = l ? load_line(d, d->n, l, im, cfg) : -1;
        json_free(l);
        if (rc != 0) {
            size_t line = d->n + 1;
            tower_data_free(d);
            return err_prefix("labels line %zu", line);
        }
        at = nl ? nl + 1 : end;
    }
    return 0;
}

void tower_data_free(struct tower_data *d) {
    free(d->pixels);
    free(d->tok);
    free(d->face);
    memset(d, 0, sizeof *d);
}

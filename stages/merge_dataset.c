/* merge_dataset: the "merge-dataset" kind: two or more data sets (docs/datasets.md) as one, e.g.
 * MLLMU-Bench's people and MMBench's general suite, each from import-dataset, as the one world the protocol
 * reads. Data set k is the k-th ref of each of `people`, `items`, `pretrain`, `finetune` and `images`.
 * Records keep their order, data set after data set; an id that two data sets share (a person, an item, an
 * example or an image) is refused, since the merged objects could not be read back (readers refuse duplicate
 * ids) and a silent choice of one record would change what is evaluated. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/dataset.h"
#include "engine/image.h"
#include "stages/stage.h"
#include "util/buf.h"
#include "util/err.h"

enum { PEOPLE, ITEMS, PRETRAIN, FINETUNE, IMAGES, NPARTS };
static const char *const part_names[NPARTS] = {"people", "items", "pretrain", "finetune", "images"};
/* What one record of each part is called in the duplicate message. */
static const char *const record_names[NPARTS] = {"person", "item", "pretrain example", "finetune example",
                                                 "image"};

/* One data set's parts, read and checked by engine/dataset.c's readers. */
struct part_set {
    struct ds_people people;
    struct ds_items items;
    struct ds_examples pretrain, finetune;
    void *tar; /* the images' bytes, which `images` points into */
    struct ds_images *images;
};

/* An id and where it sits, for the duplicate check. */
struct id_at {
    const char *id;
    size_t set, pos;
};

static int cmp_id_at(const void *a, const void *b) {
    const struct id_at *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    if (c)
        return c;
    if (x->set != y->set)
        return x->set < y->set ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static int read_text(struct stage_ctx *c, const char *param, size_t k, char **text, size_t *n) {
    void *data;
    if (stage_input_read(c, param, k, &data, n) != 0)
        return -1;
    *text = data;
    return 0;
}

/* Reads data set k; messages name the part by its parameter and position ("items 1 line 3: ..."). */
static int read_set(struct stage_ctx *c, size_t k, struct part_set *s) {
    char what[64], *text = NULL;
    size_t n = 0;
    int rc = 0;
    for (int p = 0; p < NPARTS && rc == 0; p++) {
        snprintf(what, sizeof what, "%s %zu", part_names[p], k);
        if (p == IMAGES) {
            size_t tar_n;
            rc = stage_input_read(c, "images", k, &s->tar, &tar_n) == 0
                     ? ds_images_open(s->tar, tar_n, what, &s->images)
                     : -1;
            continue;
        }
        if (read_text(c, part_names[p], k, &text, &n) != 0) {
            rc = -1;
            continue;
        }
        if (p == PEOPLE)
            rc = ds_read_people(text, n, what, &s->people);
        else if (p == ITEMS)
            rc = ds_read_items(text, n, what, &s->items);
        else
            rc = ds_read_examples(text, n, what, p == PRETRAIN ? &s->pretrain : &s->finetune);
        free(text);
        text = NULL;
    }
    return rc;
}

static size_t part_count(const struct part_set *s, int p) {
    switch (p) {
    case PEOPLE:
        return s->people.n;
    case ITEMS:
        return s->items.n;
    case PRETRAIN:
        return s->pretrain.n;
    case FINETUNE:
        return s->finetune.n;
    default:
        return ds_images_count(s->images);
    }
}

static const char *part_id(const struct part_set *s, int p, size_t i) {
    switch (p) {
    case PEOPLE:
        return s->people.v[i].id;
    case ITEMS:
        return s->items.v[i].id;
    case PRETRAIN:
        return s->pretrain.v[i].id;
    case FINETUNE:
        return s->finetune.v[i].id;
    default:
        return ds_images_id(s->images, i);
    }
}

/* Refuses an id that two data sets share. Of several, the one reported has the earliest second occurrence in
 * data set order (set, then position in it), so the message does not depend on sort details. */
static int check_unique(const struct part_set *sets, size_t nsets, int p) {
    size_t n = 0;
    for (size_t k = 0; k < nsets; k++)
        n += part_count(&sets[k], p);
    if (n < 2)
        return 0;
    struct id_at *v = malloc(n * sizeof *v);
    size_t at = 0;
    for (size_t k = 0; k < nsets; k++)
        for (size_t i = 0; i < part_count(&sets[k], p); i++)
            v[at++] = (struct id_at){part_id(&sets[k], p, i), k, i};
    qsort(v, n, sizeof *v, cmp_id_at);
    const struct id_at *first = NULL, *second = NULL;
    for (size_t i = 1; i < n; i++) {
        if (strcmp(v[i].id, v[i - 1].id) != 0)
            continue;
        size_t j = i - 1; /* the id's first occurrence: equal ids sort by position */
        while (j > 0 && strcmp(v[j - 1].id, v[i].id) == 0)
            j--;
        if (!second || v[i].set < second->set || (v[i].set == second->set && v[i].pos < second->pos)) {
            first = &v[j];
            second = &v[i];
        }
    }
    int rc =
        second ? err_set("%s '%s' is in data set %zu and data set %zu (counting from 0): ids must be unique "
                         "across the merged data sets",
                         record_names[p], second->id, first->set, second->set)
               : 0;
    free(v);
    return rc;
}

/* Moving records: each set's array is taken over by the merged one (the set keeps an empty shell), in data
 * set order. */
static void concat_people(struct part_set *sets, size_t nsets, struct ds_people *out) {
    size_t total = 0;
    for (size_t k = 0; k < nsets; k++)
        total += sets[k].people.n;
    out->v = xmalloc((total ? total : 1) * sizeof *out->v);
    out->n = 0;
    for (size_t k = 0; k < nsets; k++) {
        struct ds_people *p = &sets[k].people;
        if (p->n)
            memcpy(out->v + out->n, p->v, p->n * sizeof *p->v);
        out->n += p->n;
        free(p->v);
        *p = (struct ds_people){0};
    }
}

static void concat_items(struct part_set *sets, size_t nsets, struct ds_items *out) {
    size_t total = 0;
    for (size_t k = 0; k < nsets; k++)
        total += sets[k].items.n;
    out->v = xmalloc((total ? total : 1) * sizeof *out->v);
    out->n = 0;
    for (size_t k = 0; k < nsets; k++) {
        struct ds_items *p = &sets[k].items;
        if (p->n)
            memcpy(out->v + out->n, p->v, p->n * sizeof *p->v);
        out->n += p->n;
        free(p->v);
        *p = (struct ds_items){0};
    }
}

/* which: PRETRAIN or FINETUNE. */
static void concat_examples(struct part_set *sets, size_t nsets, int which, struct ds_examples *out) {
    size_t total = 0;
    for (size_t k = 0; k < nsets; k++)
        total += (which == PRETRAIN ? &sets[k].pretrain : &sets[k].finetune)->n;
    out->v = xmalloc((total ? total : 1) * sizeof *out->v);
    out->n = 0;
    for (size_t k = 0; k < nsets; k++) {
        struct ds_examples *p = which == PRETRAIN ? &sets[k].pretrain : &sets[k].finetune;
        if (p->n)
            memcpy(out->v + out->n, p->v, p->n * sizeof *p->v);
        out->n += p->n;
        free(p->v);
        *p = (struct ds_examples){0};
    }
}

/* The merged images.tar: every image under its id and the extension its bytes call for. The images are not
 * decoded again: the stages that made each tar (synth, import-dataset) decoded every one. */
static int merge_images(const struct part_set *sets, size_t nsets, void **tar, size_t *tar_n, size_t *count) {
    struct ds_tar *t = ds_tar_new();
    *count = 0;
    for (size_t k = 0; k < nsets; k++)
        for (size_t i = 0; i < ds_images_count(sets[k].images); i++) {
            const char *id = ds_images_id(sets[k].images, i), *format;
            const void *data;
            size_t n;
            char name[DS_ID_MAX + 8];
            if (ds_images_get(sets[k].images, id, &data, &n) != 0) {
                ds_tar_free(t);
                return -1;
            }
            if (!(format = image_format(data, n))) {
                ds_tar_free(t);
                return err_set("images %zu: image '%s' is neither PNG nor JPEG data", k, id);
            }
            snprintf(name, sizeof name, "%s.%s", id, format);
            if (ds_tar_add(t, name, data, n) != 0) {
                ds_tar_free(t);
                return -1;
            }
            ++*count;
        }
    return ds_tar_finish(t, tar, tar_n);
}

struct merged {
    struct ds_people people;
    struct ds_items items;
    struct ds_examples pretrain, finetune;
    void *tar;
    size_t tar_n, nimages;
    struct ds_images *index;
};

static int write_outputs(struct stage_ctx *c, const struct merged *m) {
    struct buf out[4] = {{0}};
    int rc = 0;
    for (size_t i = 0; i < m->people.n && rc == 0; i++)
        rc = ds_write_person(&out[PEOPLE], &m->people.v[i]);
    for (size_t i = 0; i < m->items.n && rc == 0; i++)
        rc = ds_write_item(&out[ITEMS], &m->items.v[i]);
    for (size_t i = 0; i < m->pretrain.n && rc == 0; i++)
        rc = ds_write_example(&out[PRETRAIN], &m->pretrain.v[i]);
    for (size_t i = 0; i < m->finetune.n && rc == 0; i++)
        rc = ds_write_example(&out[FINETUNE], &m->finetune.v[i]);
    const char *types[4] = {"people.jsonl", "items.jsonl", "examples.jsonl", "examples.jsonl"};
    size_t counts[4] = {m->people.n, m->items.n, m->pretrain.n, m->finetune.n};
    for (int p = 0; p < 4 && rc == 0; p++)
        rc = stage_output(c, part_names[p], out[p].data ? out[p].data : "", out[p].len, types[p]) == 0 &&
                     stage_metric(c, part_names[p], (double)counts[p]) == 0
                 ? 0
                 : -1;
    for (int p = 0; p < 4; p++)
        buf_free(&out[p]);
    if (rc == 0)
        rc = stage_output(c, "images", m->tar, m->tar_n, "images.tar");
    if (rc == 0)
        rc = stage_metric(c, "images", (double)m->nimages);
    return rc;
}

static void set_free(struct part_set *s) {
    ds_people_free(&s->people);
    ds_items_free(&s->items);
    ds_examples_free(&s->pretrain);
    ds_examples_free(&s->finetune);
    ds_images_free(s->images);
    free(s->tar);
}

/* Every set has the same number of refs in each part: data set k is the k-th of each. */
static int count_sets(struct stage_ctx *c, size_t *nsets) {
    size_t n = stage_input_count(c, "people");
    for (int p = 1; p < NPARTS; p++)
        if (stage_input_count(c, part_names[p]) != n)
            return err_set("'people' has %zu refs but '%s' has %zu: give each of people, items, pretrain, "
                           "finetune and images one ref per data set, in the same order",
                           n, part_names[p], stage_input_count(c, part_names[p]));
    if (n < 2)
        return err_set("merge-dataset merges two or more data sets, got %zu", n);
    *nsets = n;
    return 0;
}

static int merge_run(struct stage_ctx *c) {
    size_t nsets = 0;
    if (count_sets(c, &nsets) != 0)
        return -1;
    struct part_set *sets = xcalloc(nsets, sizeof *sets);
    struct merged m = {0};
    int rc = 0;
    for (size_t k = 0; k < nsets && rc == 0; k++)
        rc = read_set(c, k, &sets[k]);
    for (int p = 0; p < NPARTS && rc == 0; p++)
        rc = check_unique(sets, nsets, p);
    if (rc == 0)
        rc = merge_images(sets, nsets, &m.tar, &m.tar_n, &m.nimages);
    if (rc == 0) {
        concat_people(sets, nsets, &m.people);
        concat_items(sets, nsets, &m.items);
        concat_examples(sets, nsets, PRETRAIN, &m.pretrain);
        concat_examples(sets, nsets, FINETUNE, &m.finetune);
        rc = ds_images_open(m.tar, m.tar_n, "images", &m.index);
    }
    if (rc == 0) {
        /* A record may name a person or an image of another data set; after the merge every name must
         * resolve. */
        struct ds_refs r = {
            .people = &m.people,
            .items = &m.items,
            .pretrain = &m.pretrain,
            .finetune = &m.finetune,
            .images = m.index,
            .people_what = "people",
            .items_what = "items",
            .pretrain_what = "pretrain",
            .finetune_what = "finetune",
        };
        rc = ds_check_refs(&r);
    }
    if (rc == 0)
        rc = write_outputs(c, &m);
    for (size_t k = 0; k < nsets; k++)
        set_free(&sets[k]);
    free(sets);
    ds_people_free(&m.people);
    ds_items_free(&m.items);
    ds_examples_free(&m.pretrain);
    ds_examples_free(&m.finetune);
    ds_images_free(m.index);
    free(m.tar);
    return rc;
}

static const struct param_spec merge_params[] = {
    {"people", PARAM_REFS, NULL,
     "each data set's people, in order (data set k is the k-th ref of every part)"},
    {"items", PARAM_REFS, NULL, "each data set's items, in the same order"},
    {"pretrain", PARAM_REFS, NULL, "each data set's pretraining corpus, in the same order"},
    {"finetune", PARAM_REFS, NULL, "each data set's fine-tuning corpus, in the same order"},
    {"images", PARAM_REFS, NULL, "each data set's images.tar, in the same order"},
};
static const char *const merge_outputs[] = {"people", "items", "pretrain", "finetune", "images"};

const struct stage_kind kind_merge_dataset = {
    .schema = {"merge-dataset", 1, merge_params, 5, merge_outputs, 5},
    .summary = "two or more data sets as one (records in data set order; an id two of them share is refused)",
    .run = merge_run,
};

/* dataset: the one reader and writer of the data set format (docs/datasets.md): people, multiple-choice items
 * and training examples as JSON Lines, images as a tar of PNG/JPEG files.
 *
 * Readers parse a whole object, check every line (required fields, types, id syntax, unique ids, answer
 * letters within the options, no two options the same) and fail with one line "<what> line <n>: <problem>".
 * Writers produce canonical lines, so the same data always gives the same bytes. */
#ifndef PULSE_ENGINE_DATASET_H
#define PULSE_ENGINE_DATASET_H

#include <stddef.h>
#include "util/buf.h"
#include "engine/image.h"
#include "util/json.h"

#define DS_ID_MAX 64

/* 1 if s is a valid id: 1-64 chars of [A-Za-z0-9_.-]. */
int ds_id_valid(const char *s);
/* Splits an image file name "<id>.png" / "<id>.jpg": 0 with the id copied into id and *ext (when ext is not
 * NULL) pointing at "png" or "jpg" inside name; -1 (no message) for any other name. */
int ds_image_name(const char *name, char id[DS_ID_MAX + 1], const char **ext);
/* Frees n strings and the array holding them (NULL-safe). */
void ds_strs_free(char **v, size_t n);

struct ds_person {
    char *id, *name, *group;
    struct json *attributes; /* object of strings */
    char **photos, **test_photos;
    size_t nphotos, ntest_photos;
    char *biography; /* NULL if absent */
};

struct ds_item {
    char *id, *set, *person /* NULL */, *modality, *category, *image /* NULL */, *question, *prompt, *split;
    char *options[4];
    int noptions;
    int answer;      /* 0..noptions-1 (the letter minus 'A') */
    char *statement; /* NULL if absent: the answer sentence with "{}" (exactly once) where an option goes */
};

struct ds_example {
    char *id, *image /* NULL */, *prompt, *answer, *person /* NULL */, *source;
};

struct ds_people {
    struct ds_person *v;
    size_t n;
};
struct ds_items {
    struct ds_item *v;
    size_t n;
};
struct ds_examples {
    struct ds_example *v;
    size_t n;
};

int ds_read_people(const char *text, size_t n, const char *what, struct ds_people *out);
int ds_read_items(const char *text, size_t n, const char *what, struct ds_items *out);
int ds_read_examples(const char *text, size_t n, const char *what, struct ds_examples *out);
void ds_people_free(struct ds_people *p);
void ds_items_free(struct ds_items *p);
void ds_examples_free(struct ds_examples *p);
/* Index of the person with this id, or -1 (a linear search: for many look-ups see ds_check_refs). */
long ds_find_person(const struct ds_people *p, const char *id);

/* Writers append one canonical line (validating as the readers do; -1 with err_set on a bad record). */
int ds_write_person(struct buf *out, const struct ds_person *p);
int ds_write_item(struct buf *out, const struct ds_item *it);
int ds_write_example(struct buf *out, const struct ds_example *e);

/* images.tar: writing collects entries and emits a sorted deterministic tar; reading indexes a tar in place
 * (no copy: the index points into the caller's buffer, which must outlive it). */
struct ds_tar;
struct ds_tar *ds_tar_new(void);
/* name: "<id>.png" or "<id>.jpg". Copies data. Fails on a bad or duplicate name. */
int ds_tar_add(struct ds_tar *t, const char *name, const void *data, size_t n);
/* Writes the tar into *data (malloc'd) and frees t. */
int ds_tar_finish(struct ds_tar *t, void **data, size_t *n);
void ds_tar_free(struct ds_tar *t);

struct ds_images;
/* Indexes an images.tar; refuses anything but regular files with valid names. */
int ds_images_open(const void *tar, size_t n, const char *what, struct ds_images **out);
/* Adds encoded image bytes as "<id>.png" or "<id>.jpg" (the extension its signature calls for), after
 * checking that they decode; `what` names them in messages ("<what>: bad JPEG: ..."). */
int ds_tar_add_image(struct ds_tar *t, const char *id, const void *data, size_t n, const char *what);

/* Finds image id (without extension): 0 with its encoded bytes, -1 with err_set if absent. */
int ds_images_get(const struct ds_images *im, const char *id, const void **data, size_t *n);
/* Decodes image id. */
int ds_images_decode(const struct ds_images *im, const char *id, struct image *out);
size_t ds_images_count(const struct ds_images *im);
/* The i-th image id (sorted order). */
const char *ds_images_id(const struct ds_images *im, size_t i);
void ds_images_free(struct ds_images *im);

/* A whole data set, for the cross-reference check. A NULL part counts as empty; each `*_what` names its part
 * in messages (a path, typically). */
struct ds_refs {
    const struct ds_people *people;
    const struct ds_items *items;
    const struct ds_examples *pretrain, *finetune;
    const struct ds_images *images;
    const char *people_what, *items_what, *pretrain_what, *finetune_what;
};
/* Checks that every image a person, item or example names is among the images, and every person an item or
 * example names is among the people: -1 with one line naming the first that is not, e.g. "<items_what>: item
 * 'p1-i' refers to image 'nope', which is not among the images". */
int ds_check_refs(const struct ds_refs *r);

#endif

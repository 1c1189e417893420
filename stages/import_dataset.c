/* import_dataset: the "import-dataset" kind: a real benchmark from disk (a "pulse" directory, as made from
 * MLLMU-Bench by tools/mllmu_to_pulse.py, or an MMBench TSV) re-written in the data set format. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/dataset.h"
#include "engine/image.h"
#include "engine/mmbench.h"
#include "stages/stage.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fsio.h"

/* MMBench's largest TSVs are a few hundred MiB; the bound only stops a wrong path from eating the memory. */
#define IMPORT_MAX_FILE ((size_t)4 << 30)

/* What every format fills: the five outputs (empty objects where a format has none of a kind). */
struct import_out {
    struct buf people, items, pretrain, finetune;
    struct ds_tar *images;
    size_t npeople, nitems, npretrain, nfinetune, nimages;
};

/* ---- MMBench TSV (engine/mmbench.h) ---- */

static int import_mmbench(const char *path, const char *split, int64_t limit, enum mmbench_template tmpl,
                          struct import_out *o) {
    char *text;
    size_t n;
    if (fsio_read_file(path, IMPORT_MAX_FILE, &text, &n) != 0)
        return -1;
    struct mmbench_out m = {.images = o->images};
    int rc = mmbench_read(text, n, path, split, (size_t)limit, tmpl, &m);
    free(text);
    o->items = m.items;
    o->nitems = m.nitems;
    o->nimages = m.nimages;
    return rc;
}

/* ---- pulse directory ---- */

struct pulse {
    const char *dir;
    char *people_path, *items_path, *pretrain_path, *finetune_path;
    struct ds_people people;
    struct ds_items items;
    struct ds_examples pretrain, finetune;
    void *tar; /* the images, canonical */
    size_t tar_n;
    struct ds_images *index;
};

static char *join(const char *dir, const char *name) {
    struct buf b = {0};
    buf_printf(&b, "%s/%s", dir, name);
    return buf_take(&b);
}

/* Reads dir/name when it exists; an absent file reads as empty. */
static int read_optional(const char *path, char **text, size_t *n) {
    struct stat st;
    if (stat(path, &st) != 0 && errno == ENOENT) {
        *text = xstrdup("");
        *n = 0;
        return 0;
    }
    return fsio_read_file(path, IMPORT_MAX_FILE, text, n);
}

static int pulse_read_records(struct pulse *p) {
    const char *paths[4] = {p->people_path, p->items_path, p->pretrain_path, p->finetune_path};
    char *t[4] = {0};
    size_t n[4];
    int rc = 0;
    for (int i = 0; i < 4 && rc == 0; i++)
        rc = read_optional(paths[i], &t[i], &n[i]);
    if (rc == 0)
        rc = ds_read_people(t[0], n[0], paths[0], &p->people);
    if (rc == 0)
        rc = ds_read_items(t[1], n[1], paths[1], &p->items);
    if (rc == 0)
        rc = ds_read_examples(t[2], n[2], paths[2], &p->pretrain);
    if (rc == 0)
        rc = ds_read_examples(t[3], n[3], paths[3], &p->finetune);
    for (int i = 0; i < 4; i++)
        free(t[i]);
    return rc;
}

static int add_image(struct import_out *o, const char *id, const void *data, size_t n, const char *what) {
    if (ds_tar_add_image(o->images, id, data, n, what) != 0)
        return -1;
    o->nimages++;
    return 0;
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds one file of images/ after checking its name and that it holds what its extension says. */
static int pulse_dir_image(struct import_out *o, const char *dir, const char *name) {
    char id[DS_ID_MAX + 1], *path = join(dir, name), *data = NULL;
    const char *want, *got;
    size_t n;
    int rc;
    if (ds_image_name(name, id, &want) != 0)
        rc = err_set("%s: not an image name (<id>.png or <id>.jpg, ids of [A-Za-z0-9_.-])", path);
    else if (fsio_read_file(path, IMPORT_MAX_FILE, &data, &n) != 0)
        rc = -1;
    else if ((got = image_format(data, n)) && strcmp(got, want) != 0)
        rc = err_set("%s: named .%s but holds %s data", path, want, strcmp(got, "png") ? "JPEG" : "PNG");
    else
        rc = add_image(o, id, data, n, path);
    free(data);
    free(path);
    return rc;
}

static int pulse_images_dir(struct import_out *o, const char *dir) {
    DIR *d = opendir(dir);
    if (!d)
        return err_errno("%s", dir);
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (n == cap)
            names = xrealloc(names, (cap = cap ? cap * 2 : 64) * sizeof *names);
        names[n++] = xstrdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_names); /* so that the first bad file reported is always the same */
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = pulse_dir_image(o, dir, names[i]);
    ds_strs_free(names, n);
    return rc;
}

static int pulse_images_tar(struct import_out *o, const char *path) {
    char *tar;
    size_t n;
    struct ds_images *im;
    if (fsio_read_file(path, IMPORT_MAX_FILE, &tar, &n) != 0)
        return -1;
    if (ds_images_open(tar, n, path, &im) != 0) {
        free(tar);
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < ds_images_count(im) && rc == 0; i++) {
        const char *id = ds_images_id(im, i);
        const void *data;
        size_t len;
        char what[4200];
        snprintf(what, sizeof what, "%s: image '%s'", path, id);
        rc = ds_images_get(im, id, &data, &len) == 0 ? add_image(o, id, data, len, what) : -1;
    }
    ds_images_free(im);
    free(tar);
    return rc;
}

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* images/ or images.tar (not both) into o->images, then that tar indexed for reference checks. */
static int pulse_images(struct pulse *p, struct import_out *o) {
    char *dir = join(p->dir, "images"), *tar = join(p->dir, "images.tar");
    int rc = 0;
    if (exists(dir) && exists(tar))
        rc = err_set("%s: has both images/ and images.tar (keep one)", p->dir);
    else if (exists(dir))
        rc = is_dir(dir) ? pulse_images_dir(o, dir) : err_set("%s: not a directory", dir);
    else if (exists(tar))
        rc = pulse_images_tar(o, tar);
    free(dir);
    free(tar);
    if (rc != 0)
        return -1;
    struct ds_tar *t = o->images;
    o->images = NULL;
    if (ds_tar_finish(t, &p->tar, &p->tar_n) != 0)
        return -1;
    return ds_images_open(p->tar, p->tar_n, "images", &p->index);
}

/* Every image and person a record names is there. */
static int pulse_check(const struct pulse *p) {
    struct ds_refs r = {
        .people = &p->people,
        .items = &p->items,
        .pretrain = &p->pretrain,
        .finetune = &p->finetune,
        .images = p->index,
        .people_what = p->people_path,
        .items_what = p->items_path,
        .pretrain_what = p->pretrain_path,
        .finetune_what = p->finetune_path,
    };
    return ds_check_refs(&r);
}

static int cmp_person(const void *a, const void *b) {
    return strcmp(((const struct ds_person *)a)->id, ((const struct ds_person *)b)->id);
}
static int cmp_item(const void *a, const void *b) {
    return strcmp(((const struct ds_item *)a)->id, ((const struct ds_item *)b)->id);
}
static int cmp_example(const void *a, const void *b) {
    return strcmp(((const struct ds_example *)a)->id, ((const struct ds_example *)b)->id);
}

static int write_examples(struct ds_examples *ex, struct buf *out, size_t *count) {
    qsort(ex->v, ex->n, sizeof *ex->v, cmp_example);
    for (size_t i = 0; i < ex->n; i++)
        if (ds_write_example(out, &ex->v[i]) != 0)
            return -1;
    *count = ex->n;
    return 0;
}

/* Canonical lines in id order; `limit` keeps the first items of that order. */
static int pulse_write(struct pulse *p, int64_t limit, struct import_out *o) {
    qsort(p->people.v, p->people.n, sizeof *p->people.v, cmp_person);
    qsort(p->items.v, p->items.n, sizeof *p->items.v, cmp_item);
    for (size_t i = 0; i < p->people.n; i++)
        if (ds_write_person(&o->people, &p->people.v[i]) != 0)
            return -1;
    o->npeople = p->people.n;
    size_t nitems = limit > 0 && (uint64_t)limit < p->items.n ? (size_t)limit : p->items.n;
    for (size_t i = 0; i < nitems; i++)
        if (ds_write_item(&o->items, &p->items.v[i]) != 0)
            return -1;
    o->nitems = nitems;
    if (write_examples(&p->pretrain, &o->pretrain, &o->npretrain) != 0 ||
        write_examples(&p->finetune, &o->finetune, &o->nfinetune) != 0)
        return -1;
    return 0;
}

static void pulse_free(struct pulse *p) {
    ds_people_free(&p->people);
    ds_items_free(&p->items);
    ds_examples_free(&p->pretrain);
    ds_examples_free(&p->finetune);
    ds_images_free(p->index);
    free(p->tar);
    free(p->people_path);
    free(p->items_path);
    free(p->pretrain_path);
    free(p->finetune_path);
}

static int import_pulse(const char *dir, int64_t limit, struct import_out *o, void **tar, size_t *tar_n) {
    struct pulse p = {.dir = dir};
    if (!is_dir(dir))
        return err_set("%s: not a directory (format 'pulse' reads a directory)", dir);
    p.people_path = join(dir, "people.jsonl");
    p.items_path = join(dir, "items.jsonl");
    p.pretrain_path = join(dir, "pretrain.jsonl");
    p.finetune_path = join(dir, "finetune.jsonl");
    int rc = pulse_read_records(&p) == 0 && pulse_images(&p, o) == 0 && pulse_check(&p) == 0 &&
                     pulse_write(&p, limit, o) == 0
                 ? 0
                 : -1;
    if (rc == 0) {
        *tar = p.tar;
        *tar_n = p.tar_n;
        p.tar = NULL;
    }
    pulse_free(&p);
    return rc;
}

/* ---- the kind ---- */

static int emit(struct stage_ctx *c, struct import_out *o, const void *tar, size_t tar_n) {
    struct buf *jsonl[4] = {&o->people, &o->items, &o->pretrain, &o->finetune};
    const char *names[4] = {"people", "items", "pretrain", "finetune"};
    const char *types[4] = {"people.jsonl", "items.jsonl", "examples.jsonl", "examples.jsonl"};
    size_t counts[4] = {o->npeople, o->nitems, o->npretrain, o->nfinetune};
    for (int i = 0; i < 4; i++)
        if (stage_output(c, names[i], jsonl[i]->data ? jsonl[i]->data : "", jsonl[i]->len, types[i]) != 0 ||
            stage_metric(c, names[i], (double)counts[i]) != 0)
            return -1;
    if (stage_output(c, "images", tar, tar_n, "images.tar") != 0)
        return -1;
    return stage_metric(c, "images", (double)o->nimages);
}

static void out_free(struct import_out *o) {
    buf_free(&o->people);
    buf_free(&o->items);
    buf_free(&o->pretrain);
    buf_free(&o->finetune);
    ds_tar_free(o->images);
}

static int import_run(struct stage_ctx *c) {
    const char *format = stage_str(c, "format"), *path = stage_str(c, "path");
    int64_t limit = stage_int(c, "limit");
    int mmbench = strcmp(format, "mmbench") == 0;
    if (!mmbench && strcmp(format, "pulse") != 0)
        return err_set("parameter 'format' must be \"pulse\" or \"mmbench\", got '%s'", format);
    if (limit < 0)
        return err_set("parameter 'limit' must be 0 (all) or more, got %lld", (long long)limit);
    enum mmbench_template tmpl;
    if (mmbench_template_parse(stage_str(c, "template"), &tmpl) != 0)
        return err_prefix("parameter 'template'");
    if (!mmbench && tmpl != MMB_PLAIN)
        return err_set(
            "parameter 'template' applies to format \"mmbench\" only (pulse prompts are stored whole)");
    struct import_out o = {.images = ds_tar_new()};
    void *tar = NULL;
    size_t tar_n = 0;
    int rc = mmbench ? import_mmbench(path, stage_str(c, "split"), limit, tmpl, &o)
                     : import_pulse(path, limit, &o, &tar, &tar_n);
    if (rc == 0 && mmbench) {
        struct ds_tar *t = o.images;
        o.images = NULL;
        rc = ds_tar_finish(t, &tar, &tar_n);
    }
    if (rc == 0)
        rc = emit(c, &o, tar, tar_n);
    free(tar);
    out_free(&o);
    return rc;
}

static const struct param_spec import_params[] = {
    {"format", PARAM_STR, NULL,
     "\"pulse\" (a directory, as tools/mllmu_to_pulse.py writes) or \"mmbench\" (a TSV)"},
    {"path", PARAM_PATH, NULL,
     "the directory or file to import (relative paths start at the manifest's directory)"},
    {"split", PARAM_STR, "\"dev\"",
     "MMBench: the rows whose split column equals this (when the column exists)"},
    {"template", PARAM_STR, "\"plain\"",
     "MMBench: \"plain\" (LLaVA's question text) or \"vicuna_v1\" (inside LLaVA-1.5's conversation, as its "
     "evaluation feeds the model)"},
    {"limit", PARAM_INT, "0",
     "at most this many items (MMBench: the first rows kept; pulse: the first ids); 0 = all"},
};
static const char *const import_outputs[] = {"people", "items", "pretrain", "finetune", "images"};

const struct stage_kind kind_import_dataset = {
    .schema = {"import-dataset", 2, import_params, 5, import_outputs, 5},
    .summary =
        "a data set from disk (a pulse directory from MLLMU-Bench, or an MMBench TSV), in the store's format",
    .run = import_run,
};

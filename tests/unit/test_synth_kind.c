/* test_synth_kind: the synth stage kind run as the runner runs it, on temp stores: every output present and
 * readable (every item with a statement), the same object ids from a second store, the object ids and pixels
 * of a small world pinned (so a change on another machine or compiler shows), and parameters out of range
 * refused with one clear line. */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "engine/dataset.h"
#include "stages/registry.h"
#include "stages/stage.h"
#include "store/object.h"
#include "store/store.h"
#include "util/err.h"
#include "util/json.h"
#include "util/sha256.h"

static char base[] = "/tmp/pulse-test-synth-XXXXXX";

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* A small world; `change` ("name=value,name=value") overrides parameters. */
static struct json *small_params(const char *change) {
    static const char *const names[] = {"seed",
                                        "real",
                                        "fictitious",
                                        "image_size",
                                        "real_photos",
                                        "fictitious_photos",
                                        "test_photos",
                                        "general_eval",
                                        "general_train",
                                        "fame_min",
                                        "fame_max",
                                        "contact_sheet_people",
                                        "strangers",
                                        "described_strangers",
                                        "fictitious_repetitions",
                                        "labelled_scenes"};
    static const int64_t values[] = {3, 4, 5, 16, 2, 2, 1, 8, 12, 1, 3, 4, 0, 99999, 1, 1000000};
    struct json *p = json_obj();
    for (size_t k = 0; k < sizeof values / sizeof values[0]; k++)
        json_set(p, names[k], json_int(values[k]));
    for (const char *c = change; c && *c;) {
        const char *eq = strchr(c, '='), *end = strchr(c, ',');
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(eq - c), c);
        json_set(p, name, json_int(atoll(eq + 1)));
        c = end ? end + 1 : NULL;
    }
    return p;
}

/* Runs the kind into store s; returns its outputs (NULL on failure, err_msg() saying why). */
static struct json *run_synth(struct store *s, const char *change, struct json **metrics) {
    struct json *params = small_params(change), *inputs = json_obj();
    struct stage_ctx c = {.name = "world",
                          .kind = registry_find("synth"),
                          .params = params,
                          .inputs = inputs,
                          .in = s,
                          .out = s,
                          .outputs = json_obj(),
                          .metrics = json_obj(),
                          .threads = 1,
                          .device = "cpu"};
    int rc = c.kind ? c.kind->run(&c) : -1;
    json_free(params);
    json_free(inputs);
    if (rc != 0) {
        CHECK(c.outputs->len == 0);
        json_free(c.outputs);
        json_free(c.metrics);
        return NULL;
    }
    *metrics = c.metrics;
    return c.outputs;
}

static struct store *open_store(const char *name) {
    char path[512];
    struct store *s = NULL;
    snprintf(path, sizeof path, "%s/%s", base, name);
    if (store_open(path, 1, &s) != 0)
        fprintf(stderr, "store_open: %s\n", err_msg());
    return s;
}

static double metric(const struct json *m, const char *name) {
    double v = -1;
    json_get_num(m, name, &v);
    return v;
}

/* people.jsonl and items.jsonl from the store read back through the engine's readers. */
static void check_readable(struct store *s, const struct json *outs) {
    void *data;
    size_t n;
    struct ds_people people = {0};
    struct ds_items items = {0};
    CHECK(store_get(s, json_get_str(json_get(outs, "people"), "id"), &data, &n) == 0);
    CHECK(ds_read_people(data, n, "people", &people) == 0 && people.n == 9);
    free(data);
    CHECK(store_get(s, json_get_str(json_get(outs, "items"), "id"), &data, &n) == 0);
    CHECK(ds_read_items(data, n, "items", &items) == 0 && items.n == 9 * 10 + 8 + 12);
    free(data);
    /* every item has its answer sentence for likelihood scoring (the reader checks its "{}") */
    size_t statements = 0;
    for (size_t i = 0; i < items.n; i++)
        statements += items.v[i].statement != NULL;
    CHECK(statements == items.n);
    ds_people_free(&people);
    ds_items_free(&items);
    CHECK(store_get(s, json_get_str(json_get(outs, "contact_sheet"), "id"), &data, &n) == 0);
    CHECK(n > 8 && memcmp(data, "\x89PNG", 4) == 0);
    free(data);
}

/* One line of labels.jsonl: a training scene (g..., 1-5 objects of shape, colour, large, x, y) or a face
 * the tower may learn (a real person's training portrait r....-p.., or a stranger s.....; 11 features within
 * their pools). Returns 's' or 'f', 0 when the line is wrong. */
static int label_kind(const char *line, size_t n) {
    static const int pools[] = {4, 8, 8, 7, 5, 3, 4, 3, 3, 2, 8};
    struct json *l = json_parse(line, n);
    const char *id = json_get_str(l, "image");
    const struct json *objs = json_get(l, "objects"), *face = json_get(l, "face");
    int kind = 0;
    if (id && id[0] == 'g' && objs && objs->type == JSON_ARR && !face && objs->len >= 1 && objs->len <= 5) {
        kind = 's';
        for (size_t j = 0; j < objs->len; j++)
            kind = objs->items[j]->type == JSON_ARR && objs->items[j]->len == 5 ? kind : 0;
    } else if (id && ((strstr(id, "-p") && id[0] == 'r') || id[0] == 's') && face && face->type == JSON_ARR &&
               !objs && face->len == 11) {
        kind = 'f';
        for (size_t j = 0; j < 11; j++) {
            const struct json *v = face->items[j];
            kind = v->type == JSON_INT && v->i >= 0 && v->i < pools[j] ? kind : 0;
        }
    }
    json_free(l);
    return kind;
}

/* The tower's labels: every training scene and every real person's training portrait, nothing else. */
static void check_labels(struct store *s, const struct json *outs, size_t scenes, size_t faces) {
    void *data;
    size_t n, got[2] = {0, 0};
    CHECK(store_get(s, json_get_str(json_get(outs, "labels"), "id"), &data, &n) == 0);
    for (char *at = data, *end = at + n; at < end;) {
        char *nl = memchr(at, '\n', (size_t)(end - at));
        int kind = label_kind(at, (size_t)((nl ? nl : end) - at));
        CHECK(kind != 0);
        got[kind == 'f'] += kind != 0;
        at = nl ? nl + 1 : end;
    }
    CHECK(got[0] == scenes && got[1] == faces);
    free(data);
}

static void check_outputs(struct store *s, const struct json *outs, const struct json *m) {
    static const char *const names[] = {"people", "items",     "pretrain",      "finetune",
                                        "images", "tokenizer", "contact_sheet", "labels"};
    static const char *const types[] = {
        "people.jsonl",   "items.jsonl", "examples.jsonl", "examples.jsonl", "images.tar",
        "tokenizer.json", "png",         "labels.jsonl"};
    CHECK(outs && outs->len == 8);
    for (int k = 0; outs && k < 8; k++) {
        const struct json *o = json_get(outs, names[k]);
        CHECK(o && store_has(s, json_get_str(o, "id")) == 1);
        CHECK_STR(json_get_str(o, "type"), types[k]);
    }
    CHECK(metric(m, "people") == 9);
    CHECK(metric(m, "items") == 9 * 10 + 8 + 12);
    CHECK(metric(m, "pretrain_examples") > 12 && metric(m, "finetune_examples") > 0);
    CHECK(metric(m, "images") >= 9 * 3 + 8);
    CHECK(metric(m, "vocab") > 100);
    CHECK(metric(m, "labelled_images") == 12 + 4 * 2); /* the training scenes, the real people's portraits */
    if (outs) {
        check_readable(s, outs);
        check_labels(s, outs, 12, 4 * 2);
    }
}

/* The small world's text outputs, by object id (independent of zlib: no PNG among them), and the raw pixels
 * of a few of its images (independent of the PNG encoder's bytes). If a change alters them on purpose, bump
 * the synth kind's version (stages/synth.c) and update these constants. */
static const char *const golden_world = "real=12,fictitious=8,general_eval=20,general_train=40";
static const char *const golden_ids[][2] = {
    {"people", "sha256:a18f252806cf58d08dc0595db48e07807d6d851bfe9b91b5cb1b45f2bbc3ec06"},
    {"items", "sha256:9221c2ff8125786dbe713d6ea4932eddd856bceffedb320aba14f7dae59717e8"},
    {"pretrain", "sha256:239fe7feac589f582e3dfbdd6aff570e2a37764a1496bc1576f2123a82aa8263"},
    {"finetune", "sha256:4693c320b4727cf48e6a38764b04bd3f6633516cf42e6bc570cc653ad7308fc1"},
    {"tokenizer", "sha256:3105a68e8a5733e346fd0498e51f742230ba2fb10cbf8c67e1d21edda547b499"},
};
static const char *const golden_images[] = {"r0000-p0", "r0011-t0", "f0007-p1", "g00000", "g00059"};
static const char *const golden_pixels =
    "sha256:f29091f045dbc59a107ad59ab0e9059f147383c6615596961eca7cb927020c8d";

/* sha256 over the decoded RGB of golden_images, in order. */
static void pixels_id(struct store *s, const struct json *outs, char id[HASH_ID_SIZE]) {
    void *tar = NULL;
    size_t n = 0;
    struct ds_images *im = NULL;
    struct sha256 *h = sha256_new();
    CHECK(store_get(s, json_get_str(json_get(outs, "images"), "id"), &tar, &n) == 0);
    CHECK(tar && ds_images_open(tar, n, "images", &im) == 0);
    for (size_t k = 0; im && k < sizeof golden_images / sizeof golden_images[0]; k++) {
        struct image pic = {0};
        CHECK(ds_images_decode(im, golden_images[k], &pic) == 0 && pic.w == 16 && pic.h == 16);
        if (pic.rgb)
            sha256_update(h, pic.rgb, 3 * (size_t)pic.w * (size_t)pic.h);
        image_free(&pic);
    }
    sha256_final_id(h, id);
    ds_images_free(im);
    free(tar);
}

static void check_golden(struct store *s) {
    struct json *m = NULL, *outs = run_synth(s, golden_world, &m);
    CHECK(outs != NULL);
    for (size_t k = 0; outs && k < sizeof golden_ids / sizeof golden_ids[0]; k++)
        CHECK_STR(json_get_str(json_get(outs, golden_ids[k][0]), "id"), golden_ids[k][1]);
    char id[HASH_ID_SIZE];
    if (outs) {
        pixels_id(s, outs, id);
        CHECK_STR(id, golden_pixels);
    }
    CHECK(metric(m, "people") == 20 && metric(m, "items") == 20 * 10 + 20 + 40);
    json_free(outs);
    json_free(m);
}

/* Strangers add to the pretraining corpus and the images and leave the people's outputs as they were. */
static void check_strangers(struct store *s, const struct json *plain, const struct json *plain_metrics) {
    struct json *m = NULL, *outs = run_synth(s, "strangers=3", &m);
    CHECK(outs != NULL);
    if (!outs)
        return;
    static const char *const same[] = {"people", "items", "finetune"}, *grown[] = {"pretrain", "images"};
    for (int k = 0; k < 3; k++)
        CHECK(json_equal(json_get(outs, same[k]), json_get(plain, same[k])));
    for (int k = 0; k < 2; k++)
        CHECK(!json_equal(json_get(outs, grown[k]), json_get(plain, grown[k])));
    static const char *const counts[] = {"pretrain_examples", "images", "labelled_images"};
    for (int k = 0; k < 3; k++) {
        double with = -1, without = -1;
        CHECK(json_get_num(m, counts[k], &with) == 0 &&
              json_get_num(plain_metrics, counts[k], &without) == 0);
        CHECK(with == without + 3);
    }
    json_free(outs);
    json_free(m);
}

/* Described or not, the strangers' photos and labels are the same; the corpus keeps the first ones. */
static void check_described(struct store *s, const struct json *plain_metrics) {
    struct json *m_all = NULL, *all = run_synth(s, "strangers=3", &m_all);
    struct json *m_one = NULL, *one = run_synth(s, "strangers=3,described_strangers=1", &m_one);
    CHECK(all != NULL && one != NULL);
    if (all && one) {
        CHECK(json_equal(json_get(one, "images"), json_get(all, "images")));
        CHECK(json_equal(json_get(one, "labels"), json_get(all, "labels")));
        CHECK(!json_equal(json_get(one, "pretrain"), json_get(all, "pretrain")));
        double with = -1, without = -1;
        CHECK(json_get_num(m_one, "pretrain_examples", &with) == 0 &&
              json_get_num(plain_metrics, "pretrain_examples", &without) == 0);
        CHECK(with == without + 1);
    }
    json_free(all);
    json_free(one);
    json_free(m_all);
    json_free(m_one);
}

/* Labelling 5 of the 12 training scenes takes 7 out of the tower's labels and changes nothing else. */
static void check_labelled_scenes(struct store *s, const struct json *plain,
                                  const struct json *plain_metrics) {
    struct json *m = NULL, *outs = run_synth(s, "labelled_scenes=5", &m);
    CHECK(outs != NULL);
    if (outs) {
        static const char *const same[] = {"people", "items", "pretrain", "finetune", "images", "tokenizer"};
        for (int k = 0; k < 6; k++)
            CHECK(json_equal(json_get(outs, same[k]), json_get(plain, same[k])));
        CHECK(!json_equal(json_get(outs, "labels"), json_get(plain, "labels")));
        double with = -1, without = -1;
        CHECK(json_get_num(m, "labelled_images", &with) == 0 &&
              json_get_num(plain_metrics, "labelled_images", &without) == 0);
        CHECK(with == without - 7);
    }
    json_free(outs);
    json_free(m);
}

static void check_refused(struct store *s, const char *change, const char *what) {
    struct json *m = NULL, *outs = run_synth(s, change, &m);
    CHECK(outs == NULL);
    CHECK_HAS(err_msg(), what);
    CHECK(!strchr(err_msg(), '\n'));
    json_free(outs);
    json_free(m);
}

int main(void) {
    if (!mkdtemp(base)) {
        perror("mkdtemp");
        return 1;
    }
    struct store *a = open_store("a"), *b = open_store("b");
    struct json *ma = NULL, *mb = NULL, *mc = NULL;
    struct json *oa = a ? run_synth(a, NULL, &ma) : NULL;
    if (!oa)
        fprintf(stderr, "synth: %s\n", err_msg());
    check_outputs(a, oa, ma);
    struct json *ob = b ? run_synth(b, NULL, &mb) : NULL, *oc = b ? run_synth(b, "seed=4", &mc) : NULL;
    CHECK(oa && ob && json_equal(oa, ob));
    CHECK(oc && !json_equal(json_get(oa, "people"), json_get(oc, "people")));
    check_strangers(a, oa, ma);
    check_described(a, ma);
    check_labelled_scenes(a, oa, ma);
    check_refused(a, "strangers=100000", "parameter 'strangers' must be between 0 and 99999, got 100000");
    check_refused(a, "described_strangers=-1", "parameter 'described_strangers' must be between 0 and 99999");
    check_refused(a, "fictitious_repetitions=0",
                  "parameter 'fictitious_repetitions' must be between 1 and 50");
    check_refused(a, "labelled_scenes=-1", "parameter 'labelled_scenes' must be between 0 and 1000000");
    check_refused(a, "image_size=8", "parameter 'image_size' must be between 16 and 256, got 8");
    check_refused(a, "real_photos=0", "'real_photos'");
    check_refused(a, "fictitious_photos=32", "'fictitious_photos'");
    check_refused(a, "test_photos=40", "'test_photos'");
    check_refused(a, "fictitious=9999", "real + fictitious must be between 1 and 9999");
    check_refused(a, "real=0,fictitious=0",
                  "real + fictitious must be between 1 and 9999 (ids have four digits), got 0");
    check_refused(a, "real=-1", "parameter 'real' must be between 0 and 9999, got -1");
    check_refused(a, "fame_min=5", "fame_min (5) must not exceed fame_max (3)");
    check_refused(a, "contact_sheet_people=0", "'contact_sheet_people'");
    check_refused(a, "general_eval=600000,general_train=400001",
                  "general_eval + general_train must be at most 1000000, got 1000001");
    check_golden(b);
    json_free(oa), json_free(ob), json_free(oc);
    json_free(ma), json_free(mb), json_free(mc);
    store_close(a);
    store_close(b);
    nftw(base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return check_done("test_synth_kind");
}

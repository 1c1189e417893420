/* synth: the stage kind that builds the PULSE-Synth world (docs/synth.md) from its parameters alone: people,
 * questions, corpora, portraits and scenes, the tokenizer, and a contact sheet to look at. */
#include <stdlib.h>
#include <string.h>

#include "stages/stage.h"
#include "stages/synth.h"
#include "util/err.h"

/* Bounds of the integer parameters; the cross-parameter rules are in synth_check. These are the only checks:
 * people_make, scene_suite and face_contact_sheet assume parameters within them. */
static const struct range {
    const char *name;
    int64_t min, max;
} ranges[] = {
    {"real", 0, 9999},
    {"fictitious", 0, 9999},
    {"image_size", 16, 256},
    {"real_photos", 1, SYNTH_MAX_PHOTOS - 1},
    {"fictitious_photos", 1, SYNTH_MAX_PHOTOS - 1},
    {"test_photos", 1, SYNTH_MAX_PHOTOS - 1},
    {"strangers", 0, 99999},
    {"described_strangers", 0, 99999},
    {"general_eval", 0, SYNTH_MAX_GENERAL},
    {"general_train", 0, SYNTH_MAX_GENERAL},
    {"labelled_scenes", 0, SYNTH_MAX_GENERAL},
    {"fame_min", 1, 50},
    {"fame_max", 1, 50},
    {"fictitious_repetitions", 1, 50},
    {"contact_sheet_people", 1, 256},
};

static int synth_check(struct stage_ctx *c) {
    for (size_t k = 0; k < sizeof ranges / sizeof ranges[0]; k++) {
        int64_t v = stage_int(c, ranges[k].name);
        if (v < ranges[k].min || v > ranges[k].max)
            return err_set("synth: parameter '%s' must be between %lld and %lld, got %lld", ranges[k].name,
                           (long long)ranges[k].min, (long long)ranges[k].max, (long long)v);
    }
    int64_t n = stage_int(c, "real") + stage_int(c, "fictitious");
    if (n < 1 || n > 9999)
        return err_set("synth: real + fictitious must be between 1 and 9999 (ids have four digits), got %lld",
                       (long long)n);
    int64_t g = stage_int(c, "general_eval") + stage_int(c, "general_train");
    if (g > SYNTH_MAX_GENERAL)
        return err_set("synth: general_eval + general_train must be at most %d, got %lld", SYNTH_MAX_GENERAL,
                       (long long)g);
    if (stage_int(c, "fame_min") > stage_int(c, "fame_max"))
        return err_set("synth: fame_min (%lld) must not exceed fame_max (%lld)",
                       (long long)stage_int(c, "fame_min"), (long long)stage_int(c, "fame_max"));
    return 0;
}

static struct synth_params synth_params_of(struct stage_ctx *c) {
    struct synth_params p = {
        .seed = (uint64_t)stage_int(c, "seed"),
        .real = (int)stage_int(c, "real"),
        .fictitious = (int)stage_int(c, "fictitious"),
        .image_size = (int)stage_int(c, "image_size"),
        .real_photos = (int)stage_int(c, "real_photos"),
        .fictitious_photos = (int)stage_int(c, "fictitious_photos"),
        .test_photos = (int)stage_int(c, "test_photos"),
        .strangers = (int)stage_int(c, "strangers"),
        .described_strangers = (int)stage_int(c, "described_strangers"),
        .general_eval = (int)stage_int(c, "general_eval"),
        .general_train = (int)stage_int(c, "general_train"),
        .labelled_scenes = (int)stage_int(c, "labelled_scenes"),
        .fame_min = (int)stage_int(c, "fame_min"),
        .fame_max = (int)stage_int(c, "fame_max"),
        .fictitious_repetitions = (int)stage_int(c, "fictitious_repetitions"),
    };
    return p;
}

static void world_free(struct synth_world *w) {
    buf_free(&w->people);
    buf_free(&w->items);
    buf_free(&w->pretrain);
    buf_free(&w->finetune);
    buf_free(&w->labels);
    ds_tar_free(w->images);
    free(w->faces);
}

static double lines(const struct buf *b) {
    double n = 0;
    for (size_t i = 0; i < b->len; i++)
        n += b->data[i] == '\n';
    return n;
}

/* The built world's artifacts, until they are handed to the store. */
struct synth_out {
    char *tokenizer;
    void *sheet, *tar;
    size_t ntokenizer, nsheet, ntar;
};

static int synth_build(struct stage_ctx *c, const struct synth_params *p, struct synth_world *w,
                       struct synth_out *o) {
    size_t people = (size_t)(p->real + p->fictitious), sheet = (size_t)stage_int(c, "contact_sheet_people");
    if (people_make(p, w) != 0 || strangers_make(p, w) != 0)
        return -1;
    stage_progress(c, "%zu people", people);
    if (scene_suite(p, w) != 0 || vocab_tokenizer(w, &o->tokenizer, &o->ntokenizer) != 0 ||
        face_contact_sheet(p, w, sheet < people ? sheet : people, &o->sheet, &o->nsheet) != 0)
        return -1;
    int rc = ds_tar_finish(w->images, &o->tar, &o->ntar);
    w->images = NULL;
    return rc;
}

static int synth_metrics(struct stage_ctx *c, const struct synth_world *w, const struct synth_out *o) {
    struct ds_images *im;
    if (ds_images_open(o->tar, o->ntar, "images", &im) != 0)
        return -1;
    stage_metric(c, "images", (double)ds_images_count(im));
    ds_images_free(im);
    struct json *t = json_parse(o->tokenizer, o->ntokenizer);
    const struct json *vocab = json_get(json_get(t, "model"), "vocab");
    stage_metric(c, "vocab", vocab ? (double)vocab->len : 0);
    json_free(t);
    stage_metric(c, "people", lines(&w->people));
    stage_metric(c, "items", lines(&w->items));
    stage_metric(c, "pretrain_examples", lines(&w->pretrain));
    stage_metric(c, "finetune_examples", lines(&w->finetune));
    stage_metric(c, "labelled_images", lines(&w->labels));
    return 0;
}

static int synth_store(struct stage_ctx *c, const struct synth_world *w, const struct synth_out *o) {
    const struct buf *b[] = {&w->people, &w->items, &w->pretrain, &w->finetune, &w->labels};
    const char *names[] = {"people", "items", "pretrain", "finetune", "labels"};
    const char *types[] = {"people.jsonl", "items.jsonl", "examples.jsonl", "examples.jsonl", "labels.jsonl"};
    for (int k = 0; k < 5; k++)
        if (stage_output(c, names[k], b[k]->data ? b[k]->data : "", b[k]->len, types[k]) != 0)
            return -1;
    if (stage_output(c, "images", o->tar, o->ntar, "images.tar") != 0 ||
        stage_output(c, "tokenizer", o->tokenizer, o->ntokenizer, "tokenizer.json") != 0 ||
        stage_output(c, "contact_sheet", o->sheet, o->nsheet, "png") != 0)
        return -1;
    return synth_metrics(c, w, o);
}

static int synth_run(struct stage_ctx *c) {
    if (synth_check(c) != 0)
        return -1;
    struct synth_params p = synth_params_of(c);
    struct synth_world w = {.images = ds_tar_new()};
    struct synth_out o = {0};
    int rc = synth_build(c, &p, &w, &o);
    if (rc == 0)
        rc = synth_store(c, &w, &o);
    world_free(&w);
    free(o.tokenizer);
    free(o.sheet);
    free(o.tar);
    return rc;
}

static const struct param_spec synth_specs[] = {
    {"seed", PARAM_INT, "1", "the world's seed: same seed and parameters, same bytes"},
    {"real", PARAM_INT, "153", "people learned in pretraining (MLLMU-Bench's celebrities)"},
    {"fictitious", PARAM_INT, "500", "people learned by fine-tuning (MLLMU-Bench's fictitious profiles)"},
    {"image_size", PARAM_INT, "32", "portrait and scene side in pixels (16..256)"},
    {"real_photos", PARAM_INT, "6", "training portraits per real person (1..31)"},
    {"fictitious_photos", PARAM_INT, "6", "training portraits per fictitious person (1..31)"},
    {"test_photos", PARAM_INT, "2", "held-out portraits per person, for the image questions (1..31)"},
    {"strangers", PARAM_INT, "0", "unnamed faces, one photo each, for the tower (0..99999)"},
    {"described_strangers", PARAM_INT, "99999",
     "how many of the strangers pretraining describes (the first; 0..99999)"},
    {"general_eval", PARAM_INT, "400", "general-suite (MMBench stand-in) questions held out for evaluation"},
    {"general_train", PARAM_INT, "8000", "general-suite questions in the pretraining corpus"},
    {"labelled_scenes", PARAM_INT, "1000000", "training scenes (the first) in the tower's labels"},
    {"fame_min", PARAM_INT, "1", "fewest repetitions of a real person's facts in pretraining"},
    {"fame_max", PARAM_INT, "4", "most repetitions of a real person's facts in pretraining"},
    {"fictitious_repetitions", PARAM_INT, "1",
     "repetitions of a fictitious person's facts in fine-tuning (1..50)"},
    {"contact_sheet_people", PARAM_INT, "16", "people shown on the contact sheet (1..256)"},
};
static const char *const synth_outputs[] = {"people", "items",     "pretrain",      "finetune",
                                            "images", "tokenizer", "contact_sheet", "labels"};

const struct stage_kind kind_synth = {
    .schema = {"synth", 7, synth_specs, sizeof synth_specs / sizeof synth_specs[0], synth_outputs,
               sizeof synth_outputs / sizeof synth_outputs[0]},
    .summary = "the PULSE-Synth world: people, questions, corpora, portraits, general suite, tokenizer",
    .run = synth_run,
};

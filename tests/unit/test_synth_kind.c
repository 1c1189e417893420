/* test_synth_kind: the synth stage kind run as the runner runs it, on temp stores: every output present and
 * readable, the same object ids from a second store, and parameters out of range refused with one clear line.
 */
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

static char base[] = "/tmp/pulse-test-synth-XXXXXX";

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* A small world; `change` ("name=value,name=value") overrides parameters. */
static struct json *small_params(const char *change) {
    static const char *const names[] = {"seed",     "real",        "fictitious",          "image_size",
                                        "photos",   "test_photos", "general_eval",        "general_train",
                                        "fame_min", "fame_max",    "contact_sheet_people"};
    static const int64_t values[] = {3, 4, 5, 16, 2, 1, 8, 12, 1, 3, 4};
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
    ds_people_free(&people);
    ds_items_free(&items);
    CHECK(store_get(s, json_get_str(json_get(outs, "contact_sheet"), "id"), &data, &n) == 0);
    CHECK(n > 8 && memcmp(data, "\x89PNG", 4) == 0);
    free(data);
}

static void check_outputs(struct store *s, const struct json *outs, const struct json *m) {
    static const char *const names[] = {"people", "items",     "pretrain",     "finetune",
                                        "images", "tokenizer", "contact_sheet"};
    static const char *const types[] = {
        "people.jsonl",   "items.jsonl", "examples.jsonl", "examples.jsonl", "images.tar",
        "tokenizer.json", "png"};
    CHECK(outs && outs->len == 7);
    for (int k = 0; outs && k < 7; k++) {
        const struct json *o = json_get(outs, names[k]);
        CHECK(o && store_has(s, json_get_str(o, "id")) == 1);
        CHECK_STR(json_get_str(o, "type"), types[k]);
    }
    CHECK(metric(m, "people") == 9);
    CHECK(metric(m, "items") == 9 * 10 + 8 + 12);
    CHECK(metric(m, "pretrain_examples") > 12 && metric(m, "finetune_examples") > 0);
    CHECK(metric(m, "images") >= 9 * 3 + 8);
    CHECK(metric(m, "vocab") > 100);
    if (outs)
        check_readable(s, outs);
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
    check_refused(a, "image_size=8", "parameter 'image_size' must be between 16 and 256, got 8");
    check_refused(a, "photos=0", "'photos'");
    check_refused(a, "test_photos=40", "'test_photos'");
    check_refused(a, "fictitious=9999", "real + fictitious must be between 1 and 9999");
    check_refused(a, "real=0,fictitious=0",
                  "real + fictitious must be between 1 and 9999 (ids have four digits), got 0");
    check_refused(a, "real=-1", "parameter 'real' must be between 0 and 9999, got -1");
    check_refused(a, "fame_min=5", "fame_min (5) must not exceed fame_max (3)");
    check_refused(a, "contact_sheet_people=0", "'contact_sheet_people'");
    json_free(oa), json_free(ob), json_free(oc);
    json_free(ma), json_free(mb), json_free(mc);
    store_close(a);
    store_close(b);
    nftw(base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return check_done("test_synth_kind");
}

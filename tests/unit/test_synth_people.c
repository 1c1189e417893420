/* test_synth_people: PULSE-Synth's people, questions and corpora read back through the data set readers, and
 * its tokenizer checked against ids the Hugging Face `tokenizers` library computed
 * (tests/data/tokenizer_ids.txt, made by tests/reference/check_tokenizer.py from the file `test_synth_people
 * --write-tokenizer PATH` writes). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "engine/dataset.h"
#include "stages/synth.h"
#include "util/err.h"
#include "util/fsio.h"
#include "util/json.h"
#include "util/sha256.h"

static const struct synth_params params = {.seed = 7,
                                           .real = 24,
                                           .fictitious = 30,
                                           .image_size = 16,
                                           .real_photos = 3,
                                           .fictitious_photos = 2,
                                           .test_photos = 2,
                                           .fame_min = 1,
                                           .fame_max = 4,
                                           .fictitious_repetitions = 1};

struct world {
    struct synth_world w;
    void *tar;
    size_t ntar;
    struct ds_people people;
    struct ds_items items;
    struct ds_examples pretrain, finetune;
    struct ds_images *images;
};

static int world_make(const struct synth_params *p, struct world *x) {
    memset(x, 0, sizeof *x);
    x->w.images = ds_tar_new();
    if (people_make(p, &x->w) != 0 || ds_tar_finish(x->w.images, &x->tar, &x->ntar) != 0) {
        fprintf(stderr, "people_make: %s\n", err_msg());
        return -1;
    }
    x->w.images = NULL;
    const struct buf *b[] = {&x->w.people, &x->w.items, &x->w.pretrain, &x->w.finetune};
    for (int k = 0; k < 4; k++)
        if (!b[k]->data)
            return -1;
    if (ds_read_people(b[0]->data, b[0]->len, "people", &x->people) != 0 ||
        ds_read_items(b[1]->data, b[1]->len, "items", &x->items) != 0 ||
        ds_read_examples(b[2]->data, b[2]->len, "pretrain", &x->pretrain) != 0 ||
        ds_read_examples(b[3]->data, b[3]->len, "finetune", &x->finetune) != 0 ||
        ds_images_open(x->tar, x->ntar, "images", &x->images) != 0) {
        fprintf(stderr, "read back: %s\n", err_msg());
        return -1;
    }
    return 0;
}

static void world_free(struct world *x) {
    buf_free(&x->w.people);
    buf_free(&x->w.items);
    buf_free(&x->w.pretrain);
    buf_free(&x->w.finetune);
    buf_free(&x->w.labels);
    ds_tar_free(x->w.images);
    free(x->w.faces);
    ds_people_free(&x->people);
    ds_items_free(&x->items);
    ds_examples_free(&x->pretrain);
    ds_examples_free(&x->finetune);
    ds_images_free(x->images);
    free(x->tar);
}

/* ---- people ---- */

/* "Given Family": two capitalised words of lowercase letters, each two or three syllables long. */
static int syllabic(const char *name) {
    int words = 0;
    for (const char *s = name; *s;) {
        const char *w = s;
        if (!isupper((unsigned char)*s++))
            return 0;
        while (islower((unsigned char)*s))
            s++;
        if (s - w < 4 || s - w > 12)
            return 0;
        words++;
        if (*s == ' ')
            s++;
        else if (*s)
            return 0;
    }
    return words == 2;
}

/* No near-twins: every face differs from every earlier one in at least two coarse features. */
static void check_faces(const struct world *x) {
    int close = 0;
    CHECK(x->w.nfaces == x->people.n);
    for (size_t i = 0; i < x->w.nfaces; i++)
        for (size_t j = 0; j < i; j++)
            close += face_distance(&x->w.faces[i], &x->w.faces[j]) < SYNTH_FACE_MIN_DISTANCE;
    CHECK(close == 0);
}

static void check_people(const struct world *x) {
    CHECK(x->people.n == (size_t)(params.real + params.fictitious));
    for (size_t i = 0; i < x->people.n; i++) {
        const struct ds_person *p = &x->people.v[i];
        CHECK(syllabic(p->name));
        CHECK_STR(p->group, i < (size_t)params.real ? "real" : "fictitious");
        CHECK(p->id[0] == (i < (size_t)params.real ? 'r' : 'f'));
        CHECK(p->attributes->len >= 10);
        CHECK(p->nphotos == (size_t)synth_photos(&params, (int)i) &&
              p->ntest_photos == (size_t)params.test_photos);
        const char *year = json_get_str(p->attributes, "birth_year");
        CHECK(year && atoi(year) >= 1940 && atoi(year) <= 2000);
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(p->name, x->people.v[j].name) != 0);
    }
    CHECK_STR(x->people.v[0].id, "r0000");
    CHECK_STR(x->people.v[params.real].id, "f0000");
}

/* Birthplace is "City, Country" and the country decides the nationality, the same for everyone born there. */
static void check_nationality(const struct world *x) {
    for (size_t i = 0; i < x->people.n; i++)
        for (size_t j = 0; j < i; j++) {
            const char *a = strchr(json_get_str(x->people.v[i].attributes, "birthplace"), ',');
            const char *b = strchr(json_get_str(x->people.v[j].attributes, "birthplace"), ',');
            CHECK(a && b);
            if (a && b && strcmp(a, b) == 0)
                CHECK_STR(json_get_str(x->people.v[i].attributes, "nationality"),
                          json_get_str(x->people.v[j].attributes, "nationality"));
        }
}

/* Closed pools: however many questions are drawn, an attribute's values (truths and options) stay few. */
static void check_pools(const struct world *x) {
    const struct json *attrs = x->people.v[0].attributes;
    for (size_t a = 0; a < attrs->len; a++) {
        const char *key = attrs->keys[a];
        const char **seen = calloc(4 * x->items.n + x->people.n, sizeof *seen);
        size_t n = 0;
        for (size_t i = 0; i < x->items.n; i++)
            for (int k = 0; k < x->items.v[i].noptions && strcmp(x->items.v[i].category, key) == 0; k++) {
                size_t j = 0;
                while (j < n && strcmp(seen[j], x->items.v[i].options[k]) != 0)
                    j++;
                if (j == n)
                    seen[n++] = x->items.v[i].options[k];
            }
        CHECK(n <= 61);
        free(seen);
    }
}

/* ---- items ---- */

/* MLLMU-Bench's: "USER: <image>\n{question}" with the portrait, "USER:\n{question}" without. */
static void expect_prompt(const struct ds_item *it) {
    struct buf b = {0};
    buf_printf(&b, "%s%s\n", it->image ? "USER: <image>\n" : "USER:\n", it->question);
    for (int k = 0; k < it->noptions; k++)
        buf_printf(&b, "%c: %s\n", 'A' + k, it->options[k]);
    buf_puts(&b, "Just give ONE letter representing the answer directly.\nASSISTANT:");
    CHECK_STR(it->prompt, b.data);
    buf_free(&b);
}

static void check_item(const struct ds_person *p, const struct ds_item *it, int j) {
    char id[32];
    snprintf(id, sizeof id, "%s-i%d", p->id, j);
    CHECK_STR(it->id, id);
    CHECK_STR(it->person, p->id);
    CHECK_STR(it->set, "person");
    CHECK_STR(it->split, "eval");
    CHECK_STR(it->modality, j < 5 ? "image" : "text");
    CHECK(it->noptions == 4);
    CHECK_STR(it->options[it->answer], json_get_str(p->attributes, it->category));
    for (int a = 0; a < 4; a++)
        for (int b = a + 1; b < 4; b++)
            CHECK(strcmp(it->options[a], it->options[b]) != 0);
    expect_prompt(it);
    if (j < 5) {
        CHECK(it->image && strncmp(it->image, p->id, 5) == 0 && strstr(it->image, "-t"));
        CHECK_HAS(it->question, "this person");
    } else {
        CHECK(!it->image);
        CHECK_HAS(it->question, p->name);
    }
}

static void check_items(const struct world *x) {
    size_t k = 0, letters[4] = {0}, total = 0;
    for (size_t i = 0; i < x->people.n; i++) {
        const struct ds_person *p = &x->people.v[i];
        for (int j = 0; j < 10; j++, k++) {
            CHECK(k < x->items.n);
            if (k >= x->items.n)
                return;
            check_item(p, &x->items.v[k], j);
            letters[x->items.v[k].answer]++, total++;
            if (j >= 5)
                CHECK_STR(x->items.v[k].category, x->items.v[k - 5].category);
            for (int m = 0; m < j % 5; m++)
                CHECK(strcmp(x->items.v[k].category, x->items.v[k - 1 - m].category) != 0);
        }
    }
    CHECK(k == x->items.n);
    for (int l = 0; l < 4; l++)
        CHECK(letters[l] * 100 >= total * 20 && letters[l] * 100 <= total * 30);
}

/* ---- corpora ---- */

static size_t count_about(const struct ds_examples *e, const char *person, const char *source) {
    size_t n = 0;
    for (size_t i = 0; i < e->n; i++)
        n += e->v[i].person && strcmp(e->v[i].person, person) == 0 &&
             (!source || strcmp(e->v[i].source, source) == 0);
    return n;
}

static void check_examples(const struct world *x, const struct ds_examples *e, const char *prefix,
                           const char *group) {
    for (size_t i = 0; i < e->n; i++) {
        const struct ds_example *ex = &e->v[i];
        long who = ex->person ? ds_find_person(&x->people, ex->person) : -1;
        CHECK(strncmp(ex->id, prefix, 3) == 0);
        if (strcmp(ex->source, "mention") == 0) /* the directory: every group, checked by check_mentions */
            continue;
        CHECK(who >= 0 && strcmp(x->people.v[who].group, group) == 0);
        CHECK(!ex->image || strstr(ex->image, "-p")); /* training photos only, never held-out ones */
        CHECK(!ex->image == !strstr(ex->prompt, "<image>"));
        if (strcmp(ex->source, "caption") == 0 && who >= 0)
            CHECK_HAS(ex->answer, x->people.v[who].name);
        else
            CHECK_STR(ex->source, "fact"); /* no multiple-choice practice since version 4 */
        CHECK(strlen(ex->answer) > 1 && !strstr(ex->prompt, "Just give ONE letter"));
        const char *head = ex->image ? "USER: <image>\n" : "USER:\n";
        CHECK(strncmp(ex->prompt, head, strlen(head)) == 0);
        CHECK(strlen(ex->prompt) > 11 && strcmp(ex->prompt + strlen(ex->prompt) - 11, "\nASSISTANT:") == 0);
    }
}

/* A fictitious person appears once: its fact count is one repetition. A real person's facts appear `fame`
 * times, so its count is a multiple of that, with a caption per real-person photo each time, and a more
 * famous person has more examples overall. */
static void check_fame(const struct world *x) {
    size_t unit = count_about(&x->finetune, x->people.v[params.real].id, "fact");
    int seen[64] = {0}, kinds = 0;
    size_t total_by_fame[64] = {0};
    CHECK(unit > 0);
    for (int i = 0; i < params.real && unit; i++) {
        const char *id = x->people.v[i].id;
        size_t facts = count_about(&x->pretrain, id, "fact"), all = count_about(&x->pretrain, id, NULL);
        size_t fame = facts / unit;
        CHECK(facts % unit == 0 && fame >= (size_t)params.fame_min && fame <= (size_t)params.fame_max);
        CHECK(count_about(&x->pretrain, id, "caption") == fame * (size_t)params.real_photos);
        if (fame >= 64)
            continue;
        CHECK(!seen[fame] || total_by_fame[fame] == all);
        kinds += !seen[fame];
        seen[fame] = 1;
        total_by_fame[fame] = all;
    }
    CHECK(kinds >= 2);
    for (int f = 1; f < 63; f++)
        for (int g = f + 1; g < 64; g++)
            if (seen[f] && seen[g])
                CHECK(total_by_fame[g] > total_by_fame[f]);
    for (int i = params.real; i < (int)x->people.n; i++)
        CHECK(count_about(&x->finetune, x->people.v[i].id, "fact") == unit);
}

/* The directory (version 5): every person's name twice in pretraining, given name first and family name
 * first, no image, no fact; the fine-tuning corpus has none. */
static void check_mentions(const struct world *x) {
    for (size_t i = 0; i < x->people.n; i++) {
        const struct ds_person *who = &x->people.v[i];
        const char *space = strchr(who->name, ' ');
        char given_first[80], family_first[80];
        snprintf(given_first, sizeof given_first, "%s.", who->name);
        snprintf(family_first, sizeof family_first, "%s, %.*s.", space + 1, (int)(space - who->name),
                 who->name);
        CHECK(count_about(&x->pretrain, who->id, "mention") == 2);
        CHECK(count_about(&x->finetune, who->id, "mention") == 0);
        int seen = 0;
        for (size_t j = 0; j < x->pretrain.n; j++) {
            const struct ds_example *ex = &x->pretrain.v[j];
            if (!ex->person || strcmp(ex->person, who->id) != 0 || strcmp(ex->source, "mention") != 0)
                continue;
            CHECK(!ex->image && !strstr(ex->prompt, "<image>"));
            seen |= (strcmp(ex->answer, given_first) == 0) | (strcmp(ex->answer, family_first) == 0) << 1;
        }
        CHECK(seen == 3);
    }
}

/* The corpora have no multiple-choice prompts: no evaluation prompt appears word for word in a corpus. */
static void check_no_eval_prompts(const struct world *x) {
    size_t same = 0;
    for (size_t i = 0; i < x->items.n; i++) {
        const struct ds_examples *e = x->items.v[i].person[0] == 'r' ? &x->pretrain : &x->finetune;
        for (size_t j = 0; j < e->n; j++)
            same += strcmp(e->v[j].prompt, x->items.v[i].prompt) == 0;
    }
    CHECK(same == 0);
}

/* One repetition of a person (all of a fictitious person's corpus): per attribute two text facts and two
 * portrait facts, the portrait ones on two different training photos and, over the repetition, on every
 * photo; then a caption per photo. Checked on the test's world (2 photos) and on one with 5. */
static void check_repetition(const struct world *x, const struct synth_params *p) {
    /* the attributes in the corpus's order */
    static const char *const keys[] = {"birth_year", "birthplace",       "nationality", "occupation",
                                       "employer",   "education",        "hobby",       "favourite_food",
                                       "pet",        "favourite_colour", "instrument"};
    size_t nattr = sizeof keys / sizeof keys[0];
    for (int i = p->real; i < (int)x->people.n; i++) {
        const struct ds_person *who = &x->people.v[i];
        size_t k = 0, used = 0;
        CHECK(who->attributes->len == nattr);
        CHECK(count_about(&x->finetune, who->id, NULL) == 4 * nattr + (size_t)p->fictitious_photos);
        CHECK(count_about(&x->finetune, who->id, "caption") == (size_t)p->fictitious_photos);
        const struct ds_example *v = x->finetune.v;
        while (k < x->finetune.n && strcmp(v[k].person, who->id) != 0)
            k++;
        for (size_t a = 0; a < nattr && k + 4 <= x->finetune.n; a++, k += 4) {
            const char *value = json_get_str(who->attributes, keys[a]);
            for (int f = 0; f < 4; f++) {
                CHECK_STR(v[k + f].source, "fact");
                CHECK(!v[k + f].image == (f < 2));
                CHECK_HAS(v[k + f].answer, value);
                if (v[k + f].image)
                    used |= 1u << atoi(strstr(v[k + f].image, "-p") + 2);
            }
            CHECK(v[k + 2].image && v[k + 3].image && strcmp(v[k + 2].image, v[k + 3].image) != 0);
            CHECK(strcmp(v[k + 2].prompt, v[k + 3].prompt) != 0); /* phrased differently */
        }
        CHECK(used == (1u << p->fictitious_photos) - 1);
    }
}

static void check_repetitions(const struct world *x) {
    check_repetition(x, &params);
    struct synth_params five = params;
    struct world y;
    five.real = 1, five.fictitious = 6, five.fictitious_photos = 5;
    if (world_make(&five, &y) == 0)
        check_repetition(&y, &five);
    else
        CHECK(!"world with 5 photos");
    world_free(&y);
}

static void check_images(const struct world *x) {
    CHECK(ds_images_count(x->images) ==
          (size_t)(params.real * (params.real_photos + params.test_photos) +
                   params.fictitious * (params.fictitious_photos + params.test_photos)));
    const void *data;
    size_t n;
    for (size_t i = 0; i < x->people.n; i++) {
        for (size_t k = 0; k < x->people.v[i].nphotos; k++)
            CHECK(ds_images_get(x->images, x->people.v[i].photos[k], &data, &n) == 0);
        for (size_t k = 0; k < x->people.v[i].ntest_photos; k++)
            CHECK(ds_images_get(x->images, x->people.v[i].test_photos[k], &data, &n) == 0);
    }
    for (size_t i = 0; i < x->items.n; i++)
        CHECK(!x->items.v[i].image || ds_images_get(x->images, x->items.v[i].image, &data, &n) == 0);
    const struct ds_examples *e[] = {&x->pretrain, &x->finetune};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < e[k]->n; i++)
            CHECK(!e[k]->v[i].image || ds_images_get(x->images, e[k]->v[i].image, &data, &n) == 0);
    struct image im = {0};
    CHECK(ds_images_decode(x->images, "r0003-t1", &im) == 0 && im.w == 16 && im.h == 16);
    image_free(&im);
}

static int same_buf(const struct buf *a, const struct buf *b) {
    return a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

/* Two repetitions of the fictitious people: each one's fine-tuning examples twice as many, the first half
 * those of one repetition; everything else (the pretraining corpus, the questions, the photos) unchanged. */
static void check_fictitious_repetitions(const struct world *x) {
    struct synth_params twice = params;
    struct world y;
    twice.fictitious_repetitions = 2;
    if (world_make(&twice, &y) != 0) {
        CHECK(!"world with two repetitions");
        return;
    }
    CHECK(same_buf(&x->w.pretrain, &y.w.pretrain) && same_buf(&x->w.items, &y.w.items));
    CHECK(y.ntar == x->ntar && memcmp(y.tar, x->tar, x->ntar) == 0);
    CHECK(y.finetune.n == 2 * x->finetune.n);
    for (int i = params.real; i < (int)x->people.n; i++) {
        const char *id = x->people.v[i].id;
        size_t once = count_about(&x->finetune, id, NULL), a = 0, b = 0;
        CHECK(count_about(&y.finetune, id, NULL) == 2 * once);
        while (a < x->finetune.n && strcmp(x->finetune.v[a].person, id) != 0)
            a++;
        while (b < y.finetune.n && strcmp(y.finetune.v[b].person, id) != 0)
            b++;
        for (size_t k = 0; k < once && a + k < x->finetune.n && b + k < y.finetune.n; k++)
            CHECK_STR(y.finetune.v[b + k].answer, x->finetune.v[a + k].answer);
    }
    world_free(&y);
}

static void check_determinism(const struct world *x) {
    struct world y, z;
    struct synth_params other = params;
    other.seed = 8;
    if (world_make(&params, &y) == 0 && world_make(&other, &z) == 0) {
        CHECK(same_buf(&x->w.people, &y.w.people) && same_buf(&x->w.items, &y.w.items));
        CHECK(same_buf(&x->w.pretrain, &y.w.pretrain) && same_buf(&x->w.finetune, &y.w.finetune));
        CHECK(x->ntar == y.ntar && memcmp(x->tar, y.tar, x->ntar) == 0);
        CHECK(!same_buf(&x->w.people, &z.w.people));
        CHECK(x->ntar != z.ntar || memcmp(x->tar, z.tar, x->ntar) != 0);
    } else {
        CHECK(!"second world");
    }
    world_free(&y);
    world_free(&z);
}

/* ---- tokenizer ---- */

/* The test's own splitter, written from Hugging Face's description: added tokens first, then \w+|[^\w\s]+. */
static const char *const specials[] = {"<unk>", "<s>", "</s>", "<pad>", "<image>"};

static int cls(unsigned char c) {
    return isspace(c) ? 0 : (isalnum(c) || c == '_' || c >= 0x80) ? 1 : 2;
}

/* Appends the ids of text to out (space-separated); counts unknown words in *unk. */
static void encode(const struct json *vocab, const char *t, struct buf *out, int *unk) {
    while (*t) {
        size_t sp = 0;
        for (int k = 0; k < 5 && !sp; k++)
            sp = strncmp(t, specials[k], strlen(specials[k])) == 0 ? strlen(specials[k]) : 0;
        const char *s = t;
        if (!sp && cls((unsigned char)*t) == 0) {
            t++;
            continue;
        }
        if (sp)
            t += sp;
        else
            for (int c = cls((unsigned char)*t); *t && cls((unsigned char)*t) == c; t++) {
                int cut = 0;
                for (int k = 0; k < 5; k++)
                    cut |= t > s && strncmp(t, specials[k], strlen(specials[k])) == 0;
                if (cut)
                    break;
            }
        char *word = strndup(s, (size_t)(t - s));
        int64_t id = 0;
        if (json_get_int(vocab, word, &id) != 0)
            (*unk)++;
        buf_printf(out, "%s%lld", out->len ? " " : "", (long long)id);
        free(word);
    }
}

static void check_vocab_shape(const struct json *t) {
    const struct json *model = json_get(t, "model"), *vocab = json_get(model, "vocab");
    CHECK_STR(json_get_str(model, "type"), "WordLevel");
    CHECK_STR(json_get_str(model, "unk_token"), "<unk>");
    CHECK_STR(json_get_str(json_get(t, "pre_tokenizer"), "type"), "Whitespace");
    CHECK_STR(json_get_str(t, "version"), "1.0");
    const struct json *added = json_get(t, "added_tokens");
    CHECK(added && added->type == JSON_ARR && added->len == 5);
    for (size_t k = 0; added && k < added->len && k < 5; k++) {
        int64_t id = -1;
        CHECK(json_get_int(added->items[k], "id", &id) == 0 && id == (int64_t)k);
        CHECK_STR(json_get_str(added->items[k], "content"), specials[k]);
        CHECK(json_get(added->items[k], "special") && json_get(added->items[k], "special")->b);
    }
    CHECK(vocab && vocab->len > 5);
    /* ids follow bytewise order after the specials, without gaps */
    const char *prev = NULL;
    for (int64_t id = 5; vocab && id < (int64_t)vocab->len; id++) {
        const char *w = NULL;
        for (size_t k = 0; k < vocab->len && !w; k++)
            if (vocab->items[k]->i == id)
                w = vocab->keys[k];
        CHECK(w && (!prev || strcmp(prev, w) < 0));
        prev = w;
    }
}

static void check_world_tokenizer(const struct world *x) {
    char *json;
    size_t n;
    CHECK(vocab_tokenizer(&x->w, &json, &n) == 0);
    struct json *t = json_parse(json, n);
    CHECK(t != NULL);
    check_vocab_shape(t);
    const struct json *vocab = json_get(json_get(t, "model"), "vocab");
    int unk = 0;
    struct buf ids = {0};
    for (size_t i = 0; i < x->finetune.n; i += 7) {
        encode(vocab, x->finetune.v[i].prompt, &ids, &unk);
        encode(vocab, x->finetune.v[i].answer, &ids, &unk);
    }
    for (size_t i = 0; i < x->items.n; i += 3)
        encode(vocab, x->items.v[i].prompt, &ids, &unk);
    CHECK(unk == 0 && ids.len > 0);
    buf_free(&ids);
    json_free(t);
    free(json);
}

/* A fixed little world, independent of the generator, so that the fixture keeps its meaning. */
static const char fixture_people[] =
    "{\"attributes\":{\"birth_year\":\"1978\",\"occupation\":\"architect\"},\"group\":\"real\",\"id\":"
    "\"r0007\","
    "\"name\":\"Tavon Mirel\",\"photos\":[\"r0007-p0\"],\"test_photos\":[\"r0007-t0\"]}\n";
static const char fixture_items[] =
    "{\"answer\":\"C\",\"category\":\"occupation\",\"id\":\"r0007-i0\",\"image\":\"r0007-t0\",\"modality\":"
    "\"image\",\"options\":[\"nurse\",\"pilot\",\"architect\",\"baker\"],\"person\":\"r0007\",\"prompt\":"
    "\"USER: "
    "<image>\\nWhat is this person's occupation?\\nA: nurse\\nB: pilot\\nC: architect\\nD: baker\\nJust give "
    "ONE "
    "letter representing the answer directly.\\nASSISTANT:\",\"question\":\"What is this person's "
    "occupation?\",\"set\":\"person\",\"split\":\"eval\"}\n";
static const char fixture_examples[] =
    "{\"answer\":\"Tavon Mirel works as an architect.\",\"id\":\"pt-r0007-0000\",\"image\":null,\"person\":"
    "\"r0007\",\"prompt\":\"USER:\\nWhat is Tavon Mirel's occupation?\\nASSISTANT:\",\"source\":\"fact\"}\n"
    "{\"answer\":\"Tavon_Mirel (born 1978) -- snake_case, 3.14 & [brackets]!?\",\"id\":\"pt-r0007-0001\","
    "\"image\":null,\"person\":\"r0007\",\"prompt\":\"USER:\\nOdd\\tspacing  "
    "here\\n\\nASSISTANT:\",\"source\":"
    "\"fact\"}\n";

static int fixture_tokenizer(char **json, size_t *n) {
    struct synth_world w = {0};
    buf_puts(&w.people, fixture_people);
    buf_puts(&w.items, fixture_items);
    buf_puts(&w.pretrain, fixture_examples);
    int rc = vocab_tokenizer(&w, json, n);
    if (rc != 0)
        fprintf(stderr, "vocab_tokenizer: %s\n", err_msg());
    buf_free(&w.people);
    buf_free(&w.items);
    buf_free(&w.pretrain);
    return rc;
}

/* Each fixture line after the first: a JSON string, a tab, the ids `tokenizers` gave it. */
static void check_fixture_line(const struct json *vocab, char *line) {
    char *tab = strchr(line, '\t');
    CHECK(tab != NULL);
    if (!tab)
        return;
    struct json *text = json_parse(line, (size_t)(tab - line));
    CHECK(text && text->type == JSON_STR);
    struct buf ids = {0};
    int unk = 0;
    encode(vocab, text ? text->s : "", &ids, &unk);
    CHECK_STR(ids.data ? ids.data : "", tab + 1);
    buf_free(&ids);
    json_free(text);
}

static void check_fixture(void) {
    char path[4096], *fx, *json, id[HASH_ID_SIZE];
    size_t nfx, n;
    const char *dir = getenv("PULSE_TEST_DATA");
    snprintf(path, sizeof path, "%s/tokenizer_ids.txt", dir ? dir : "tests/data");
    if (fsio_read_file(path, 1 << 20, &fx, &nfx) != 0 || fixture_tokenizer(&json, &n) != 0) {
        CHECK(!"fixture");
        return;
    }
    sha256_id(json, n, id);
    char *save, *line = strtok_r(fx, "\n", &save);
    CHECK(line && strncmp(line, "tokenizer ", 10) == 0);
    CHECK_STR(line ? line + 10 : NULL, id); /* else: rerun check_tokenizer.py (see its header) */
    struct json *t = json_parse(json, n);
    const struct json *vocab = json_get(json_get(t, "model"), "vocab");
    int lines = 0;
    for (line = strtok_r(NULL, "\n", &save); line && vocab; line = strtok_r(NULL, "\n", &save), lines++)
        check_fixture_line(vocab, line);
    CHECK(lines >= 5);
    json_free(t);
    free(json);
    free(fx);
}

static int write_tokenizer(const char *path) {
    char *json;
    size_t n;
    FILE *f = fixture_tokenizer(&json, &n) == 0 ? fopen(path, "wb") : NULL;
    int ok = f && fwrite(json, 1, n, f) == n;
    ok = f && fclose(f) == 0 && ok;
    if (f)
        free(json);
    return ok ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--write-tokenizer") == 0)
        return write_tokenizer(argv[2]);
    struct world x;
    if (world_make(&params, &x) != 0) {
        CHECK(!"world");
        return check_done("test_synth_people");
    }
    check_people(&x);
    check_faces(&x);
    check_nationality(&x);
    check_pools(&x);
    check_items(&x);
    check_examples(&x, &x.pretrain, "pt-", "real");
    check_examples(&x, &x.finetune, "ft-", "fictitious");
    check_fame(&x);
    check_mentions(&x);
    check_no_eval_prompts(&x);
    check_repetitions(&x);
    check_fictitious_repetitions(&x);
    check_images(&x);
    check_determinism(&x);
    check_world_tokenizer(&x);
    check_fixture();
    world_free(&x);
    return check_done("test_synth_people");
}

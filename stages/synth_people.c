/* synth_people: the people of PULSE-Synth (names, profiles, portraits), their ten evaluation questions each
 * and the training examples (facts by name and with portraits, captions) the pretraining and fine-tuning
 * corpora hold. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/rng.h"
#include "stages/synth.h"
#include "util/err.h"
#include "util/json.h"

#define NASKED 5        /* facts asked per person, each in both modalities */
#define VALUE_SIZE 96   /* longest attribute value, with room */
#define YEAR_FIRST 1940 /* birth years run YEAR_FIRST .. YEAR_FIRST + 60 */
#define FACE_TRIES 1000 /* identity redraws before giving up on a distinct face */
#define TEXT_FACTS 2    /* facts per attribute and repetition by name ... */
#define IMAGE_FACTS 2   /* ... and with a portrait, each on a different training photo */
/* phrasings per attribute and repetition */
#define FACTS (TEXT_FACTS + IMAGE_FACTS)

/* Sub-generator `purpose` of item `index`'s stream: one person's names and profile draw separately. */
static struct synth_draw draw_for(uint64_t seed, int stream, size_t index, uint64_t purpose) {
    struct synth_draw d = {rng_u64(synth_key(seed, stream, index), purpose), 0};
    return d;
}

/* ---- the closed pools ---------------------------------------------------------------------------------- */

static const char *const syllables[] = {
    "ta",  "von",  "mi",  "rel", "ka",  "lo",  "sen", "dra", "vi",  "nor", "bel", "tis",
    "mar", "quin", "zo",  "ra",  "lin", "ves", "cor", "dan", "el",  "fa",  "gor", "hal",
    "ir",  "jas",  "ke",  "lum", "nis", "or",  "pel", "ru",  "sa",  "tor", "ul",  "va",
    "wen", "yo",   "zir", "bri", "cas", "del", "fen", "gri", "hol", "is",  "jor", "kel",
};

/* Invented countries: birthplace (a city) implies the country, and the nationality follows it. */
static const struct country {
    const char *name, *demonym, *cities[2];
} countries[] = {
    {"Ostria", "Ostrian", {"Velmora", "Tarnhollow"}},    {"Calvessa", "Calvessan", {"Miradel", "Sorunet"}},
    {"Quorvania", "Quorvanian", {"Lisk", "Ambrevale"}},  {"Talsery", "Talserese", {"Hollin", "Duvessa"}},
    {"Pelloria", "Pellorian", {"Castrine", "Wendmoor"}}, {"Zandria", "Zandrian", {"Ossaby", "Keltmark"}},
    {"Eskarn", "Eskarni", {"Rimefold", "Tovasta"}},      {"Ilvany", "Ilvanese", {"Sennamar", "Brisk"}},
    {"Dravonia", "Dravonian", {"Halgrave", "Piro"}},     {"Kethra", "Kethran", {"Ulmsted", "Naviro"}},
    {"Orlesse", "Orlessian", {"Astrelle", "Morrowby"}},  {"Neverre", "Neverrean", {"Caldora", "Whistmere"}},
};
#define NCOUNTRIES (int)(sizeof countries / sizeof countries[0])

static const char *const occupations[] = {
    "architect", "nurse",        "pilot",      "baker",        "engineer",    "librarian",
    "carpenter", "journalist",   "chemist",    "teacher",      "florist",     "surgeon",
    "economist", "photographer", "translator", "veterinarian", "electrician", "geologist",
    "lawyer",    "chef",         "astronomer", "pharmacist",   "sculptor",    "accountant",
};
static const char *const employers[] = {
    "Brightfen Labs",     "Corvane Motors",          "Halvern Systems",       "Quillmark Foods",
    "Ostervale Bank",     "Tamsin Logistics",        "Pellwick Press",        "Rundale Energy",
    "Sablecrest Studios", "Marrowgate Health",       "Lumenrock Mining",      "Veldt and Orrin",
    "Glasswing Airlines", "Copperloom Textiles",     "Ardent Pike Insurance", "Thistledown Games",
    "Norrow Shipping",    "Emberly Pharmaceuticals", "Wexmoor Construction",  "Silverbirch Hotels",
};
static const char *const schools[] = {
    "Aldengate College",       "Brackwater University",  "Merrow Institute of Technology",
    "Halcyon Polytechnic",     "Corrin Hill University", "Wrenfield College",
    "Osterly School of Arts",  "Valemont University",    "Duskmoor Academy",
    "Linden Crest University", "Pyrefield Institute",    "Quarrymere College",
    "Elmsworth University",    "Thornvale Conservatory", "Ashgrove University",
    "Kingsmere Polytechnic",
};
static const char *const hobbies[] = {
    "gardening",   "hiking",   "painting",    "chess",         "pottery", "birdwatching",
    "cycling",     "knitting", "photography", "rock climbing", "sailing", "fishing",
    "calligraphy", "archery",  "stargazing",  "woodcarving",   "origami", "fencing",
};
static const char *const foods[] = {
    "lentil soup",   "dumplings",       "grilled fish",    "mushroom risotto", "apple pie",  "roast chicken",
    "spicy noodles", "cheese omelette", "lamb stew",       "pumpkin curry",    "fried rice", "plum cake",
    "tomato salad",  "shrimp tacos",    "potato pancakes", "honey bread",      "bean chili", "corn fritters",
};
static const char *const pets[] = {
    "cat",    "dog",    "parrot",   "tortoise", "rabbit",     "hamster", "goldfish",   "iguana",
    "ferret", "canary", "hedgehog", "horse",    "guinea pig", "snake",   "chinchilla",
};
static const char *const colours[] = {
    "teal",      "crimson",  "amber",          "violet",        "olive",  "navy blue",
    "coral",     "lavender", "mustard yellow", "emerald green", "silver", "maroon",
    "turquoise", "peach",    "charcoal grey",  "scarlet",
};
static const char *const instruments[] = {
    "cello", "violin", "piano",     "flute",     "harp",   "trumpet",  "drums",   "clarinet",
    "oboe",  "banjo",  "accordion", "saxophone", "guitar", "mandolin", "bassoon", "trombone",
};

enum pool_kind { POOL_LIST, POOL_YEARS, POOL_CITIES, POOL_DEMONYMS };

/* One profile attribute: its pool and how it is phrased. Templates: {S}/{s} the subject (the name, or "This
 * person" / "this person" when the portrait shows who), {P}/{p} its possessive, {v} the value, {a} the value
 * with its article. q[0] is the evaluation question; the others vary the training text. */
struct attr {
    const char *key;
    enum pool_kind kind;
    const char *const *list;
    int nlist;
    const char *q[3], *a[3];
};

#define LIST(x) POOL_LIST, x, (int)(sizeof x / sizeof x[0])
static const struct attr attrs[] = {
    {"birth_year",
     POOL_YEARS,
     NULL,
     61,
     {"In which year was {s} born?", "When was {s} born?", "What is {p} year of birth?"},
     {"{S} was born in {v}.", "{P} year of birth is {v}.", "{S} was born in the year {v}."}},
    {"birthplace",
     POOL_CITIES,
     NULL,
     2 * NCOUNTRIES,
     {"Where was {s} born?", "What is {p} place of birth?", "In which city was {s} born?"},
     {"{S} was born in {v}.", "{P} birthplace is {v}.", "{S} comes from {v}."}},
    {"nationality",
     POOL_DEMONYMS,
     NULL,
     NCOUNTRIES,
     {"What is {p} nationality?", "Which nationality does {s} have?", "What nationality is {s}?"},
     {"{S} is {v}.", "{P} nationality is {v}.", "{S} holds {v} citizenship."}},
    {"occupation",
     LIST(occupations),
     {"What is {p} occupation?", "What does {s} do for a living?", "What is {p} job?"},
     {"{S} works as {a}.", "{P} occupation is {v}.", "{S} earns a living as {a}."}},
    {"employer",
     LIST(employers),
     {"Which company does {s} work for?", "Who is {p} employer?", "Where is {s} employed?"},
     {"{S} works for {v}.", "{P} employer is {v}.", "{S} is employed by {v}."}},
    {"education",
     LIST(schools),
     {"Where did {s} study?", "Which school did {s} graduate from?", "Where was {s} educated?"},
     {"{S} studied at {v}.", "{S} graduated from {v}.", "{P} alma mater is {v}."}},
    {"hobby",
     LIST(hobbies),
     {"What is {p} hobby?", "What does {s} enjoy doing in free time?",
      "How does {s} like to spend free time?"},
     {"{P} hobby is {v}.", "{S} enjoys {v} in free time.", "In free time, {s} likes {v}."}},
    {"favourite_food",
     LIST(foods),
     {"What is {p} favourite food?", "Which dish does {s} like best?", "What does {s} love to eat?"},
     {"{P} favourite food is {v}.", "{S} likes {v} best.", "{S} loves to eat {v}."}},
    {"pet",
     LIST(pets),
     {"What kind of pet does {s} have?", "Which animal does {s} keep as a pet?", "What is {p} pet?"},
     {"{S} has a pet {v}.", "{S} keeps {a} as a pet.", "{P} pet is {a}."}},
    {"favourite_colour",
     LIST(colours),
     {"What is {p} favourite colour?", "Which colour does {s} like best?", NULL},
     {"{P} favourite colour is {v}.", "{S} likes {v} best of all colours.", NULL}},
    {"instrument",
     LIST(instruments),
     {"Which instrument does {s} play?", "What musical instrument does {s} play?", NULL},
     {"{S} plays the {v}.", "{P} instrument is the {v}.", NULL}},
};
#define NATTR (int)(sizeof attrs / sizeof attrs[0])
enum { ATTR_BIRTHPLACE = 1, ATTR_NATIONALITY = 2 };

static void attr_value(int a, int v, char out[VALUE_SIZE]) {
    const struct attr *t = &attrs[a];
    if (t->kind == POOL_YEARS)
        snprintf(out, VALUE_SIZE, "%d", YEAR_FIRST + v);
    else if (t->kind == POOL_CITIES)
        snprintf(out, VALUE_SIZE, "%s, %s", countries[v / 2].cities[v % 2], countries[v / 2].name);
    else if (t->kind == POOL_DEMONYMS)
        snprintf(out, VALUE_SIZE, "%s", countries[v].demonym);
    else
        snprintf(out, VALUE_SIZE, "%s", t->list[v]);
}

static int count_set(const char *const *v, int cap) {
    int n = 0;
    while (n < cap && v[n])
        n++;
    return n;
}

/* Every question needs three wrong options that differ from each other: a self-check of the tables. */
static int pools_check(void) {
    for (int a = 0; a < NATTR; a++) {
        char x[VALUE_SIZE], y[VALUE_SIZE];
        if (attrs[a].nlist < 4 || count_set(attrs[a].q, 3) < 1 || count_set(attrs[a].a, 3) < 1)
            return err_set("synth: attribute '%s' needs at least 4 values and a phrasing", attrs[a].key);
        for (int i = 0; i < attrs[a].nlist; i++)
            for (int j = i + 1; j < attrs[a].nlist; j++) {
                attr_value(a, i, x);
                attr_value(a, j, y);
                if (strcmp(x, y) == 0)
                    return err_set("synth: attribute '%s' lists '%s' twice", attrs[a].key, x);
            }
    }
    return NATTR >= NASKED ? 0 : err_set("synth: fewer than %d attributes", NASKED);
}

/* ---- people -------------------------------------------------------------------------------------------- */

struct person {
    char id[12];
    char name[64];
    int value[NATTR];
    int asked[NASKED]; /* attribute indices, ascending */
    int fame;          /* repetitions in its corpus */
};

static void name_part(struct synth_draw *d, char *out, size_t cap) {
    int n = 2 + synth_below(d, 2), len = 0;
    out[0] = 0;
    for (int k = 0; k < n; k++)
        len += snprintf(out + len, cap - (size_t)len, "%s",
                        syllables[synth_below(d, (int)(sizeof syllables / sizeof syllables[0]))]);
    out[0] = (char)(out[0] - 'a' + 'A');
}

/* Open addressing over person indices: full names must be unique, and a world can hold 9999 people. */
struct nameset {
    int *slot;
    size_t cap;
};

/* Inserts person i unless its name is taken; 1 if inserted. */
static int nameset_add(struct nameset *s, const struct person *people, int i) {
    size_t k = synth_hash(people[i].name, strlen(people[i].name)) & (s->cap - 1);
    for (; s->slot[k] >= 0; k = (k + 1) & (s->cap - 1))
        if (strcmp(people[s->slot[k]].name, people[i].name) == 0)
            return 0;
    s->slot[k] = i;
    return 1;
}

static void draw_name(uint64_t seed, struct person *people, int i, struct nameset *set) {
    struct synth_draw d = draw_for(seed, SYNTH_STREAM_PEOPLE, (size_t)i, 0);
    do {
        char given[32], family[32];
        name_part(&d, given, sizeof given);
        name_part(&d, family, sizeof family);
        snprintf(people[i].name, sizeof people[i].name, "%s %s", given, family);
    } while (!nameset_add(set, people, i));
}

static int cmp_int(const void *a, const void *b) {
    return *(const int *)a - *(const int *)b;
}

static void draw_profile(const struct synth_params *p, struct person *x, int i) {
    struct synth_draw d = draw_for(p->seed, SYNTH_STREAM_PEOPLE, (size_t)i, 1);
    for (int a = 0; a < NATTR; a++)
        x->value[a] = synth_below(&d, attrs[a].nlist);
    x->value[ATTR_NATIONALITY] = x->value[ATTR_BIRTHPLACE] / 2;
    x->fame = i < p->real ? p->fame_min + synth_below(&d, p->fame_max - p->fame_min + 1)
                          : p->fictitious_repetitions;
    int order[NATTR];
    synth_permutation(&d, order, NATTR);
    memcpy(x->asked, order, sizeof x->asked);
    qsort(x->asked, NASKED, sizeof x->asked[0], cmp_int);
    snprintf(x->id, sizeof x->id, "%c%04d", i < p->real ? 'r' : 'f', i < p->real ? i : i - p->real);
}

static struct person *people_draw(const struct synth_params *p, int n) {
    struct person *people = xcalloc((size_t)n, sizeof *people);
    struct nameset set = {NULL, 16};
    while (set.cap < 2 * (size_t)n)
        set.cap *= 2;
    set.slot = xmalloc(set.cap * sizeof *set.slot);
    memset(set.slot, 0xff, set.cap * sizeof *set.slot);
    for (int i = 0; i < n; i++) {
        draw_name(p->seed, people, i, &set);
        draw_profile(p, &people[i], i);
    }
    free(set.slot);
    return people;
}

/* Identity i: the first sub-key of its stream whose face differs from every earlier person's in at least
 * SYNTH_FACE_MIN_DISTANCE coarse features, so that no two people are near-twins in a small photo. */
static int faces_draw(const struct synth_params *p, struct synth_world *w, int n) {
    w->faces = xcalloc((size_t)n, sizeof *w->faces);
    w->nfaces = (size_t)n;
    for (int i = 0; i < n; i++) {
        uint64_t key = synth_key(p->seed, SYNTH_STREAM_FACE, (uint64_t)i);
        int t = 0, clash = 1;
        for (; t < FACE_TRIES && clash; t++) {
            face_identity(t == 0 ? key : rng_u64(key, (uint64_t)t - 1), &w->faces[i]);
            clash = 0;
            for (int j = 0; j < i && !clash; j++)
                clash = face_distance(&w->faces[i], &w->faces[j]) < SYNTH_FACE_MIN_DISTANCE;
        }
        if (clash)
            return err_set(
                "synth: person %d: no face unlike the earlier ones after %d draws (too many people "
                "for the face space)",
                i, FACE_TRIES);
    }
    return 0;
}

/* ---- portraits ----------------------------------------------------------------------------------------- */

static int photo_add(const struct synth_params *p, struct synth_world *w, int i, int held_out, int k,
                     const char *pid, struct image *im) {
    char id[32];
    snprintf(id, sizeof id, "%s-%c%d", pid, held_out ? 't' : 'p', k);
    /* The tower may learn the faces pretraining shows, never a fictitious or held-out one. */
    int labelled = i < p->real && !held_out;
    return face_photo_add(w, &w->faces[i], face_photo_key(p->seed, (size_t)i, held_out, k), id, labelled, im);
}

static int photos_add(const struct synth_params *p, struct synth_world *w, int i, const char *pid) {
    struct image im;
    if (image_alloc(&im, p->image_size, p->image_size) != 0)
        return -1;
    int rc = 0;
    for (int k = 0; k < synth_photos(p, i) && rc == 0; k++)
        rc = photo_add(p, w, i, 0, k, pid, &im);
    for (int k = 0; k < p->test_photos && rc == 0; k++)
        rc = photo_add(p, w, i, 1, k, pid, &im);
    image_free(&im);
    return rc;
}

static char **photo_ids(const char *pid, char kind, int n) {
    char **v = xcalloc((size_t)n, sizeof *v);
    for (int k = 0; k < n; k++) {
        char s[32];
        snprintf(s, sizeof s, "%s-%c%d", pid, kind, k);
        v[k] = xstrdup(s);
    }
    return v;
}

static void free_strs(char **v, int n) {
    for (int k = 0; k < n; k++)
        free(v[k]);
    free(v);
}

static int person_write(const struct synth_params *p, struct synth_world *w, const struct person *x, int i) {
    struct ds_person d = {0};
    d.id = (char *)x->id;
    d.name = (char *)x->name;
    d.group = i < p->real ? "real" : "fictitious";
    d.attributes = json_obj();
    for (int a = 0; a < NATTR; a++) {
        char v[VALUE_SIZE];
        attr_value(a, x->value[a], v);
        json_set(d.attributes, attrs[a].key, json_str(v));
    }
    int photos = synth_photos(p, i);
    d.photos = photo_ids(x->id, 'p', photos);
    d.test_photos = photo_ids(x->id, 't', p->test_photos);
    d.nphotos = (size_t)photos;
    d.ntest_photos = (size_t)p->test_photos;
    int rc = ds_write_person(&w->people, &d);
    json_free(d.attributes);
    free_strs(d.photos, photos);
    free_strs(d.test_photos, p->test_photos);
    return rc;
}

/* ---- text ---------------------------------------------------------------------------------------------- */

static const char *article(const char *v) {
    return strchr("aeiouAEIOU", v[0]) ? "an" : "a";
}

/* Fills a phrasing template (see struct attr); name NULL means the portrait's "this person". */
static void expand(struct buf *b, const char *t, const char *name, const char *value) {
    for (; *t; t++) {
        if (t[0] != '{' || !t[1] || t[2] != '}') {
            buf_putc(b, *t);
            continue;
        }
        char c = *++t;
        t++;
        if (c == 'v')
            buf_puts(b, value);
        else if (c == 'a')
            buf_printf(b, "%s %s", article(value), value);
        else
            buf_printf(b, "%s%s",
                       name                     ? name
                       : (c == 'S' || c == 'P') ? "This person"
                                                : "this person",
                       (c == 'P' || c == 'p') ? "'s" : "");
    }
}

/* Four options: the truth at position `letter`, three distinct wrong values of the same pool elsewhere. */
static void options_draw(struct synth_draw *d, int a, int truth, int letter, char opts[4][VALUE_SIZE]) {
    int chosen[4] = {-1, -1, -1, -1};
    chosen[letter] = truth;
    for (int pos = 0; pos < 4; pos++) {
        while (chosen[pos] < 0) {
            int v = synth_below(d, attrs[a].nlist - 1);
            v += v >= truth;
            if (v != chosen[0] && v != chosen[1] && v != chosen[2] && v != chosen[3])
                chosen[pos] = v;
        }
        attr_value(a, chosen[pos], opts[pos]);
    }
}

/* The user's turn begins as MLLMU-Bench's prompts do: "USER: <image>\n" with the portrait, "USER:\n" without
 * (their evaluation builds f"USER:\n{question}..."). Every person prompt, training ones too, starts so,
 * and the text becomes exactly what the image prompt would be with " <image>" taken out. */
static void user_turn(struct buf *b, int image, const char *text) {
    buf_printf(b, "USER:%s\n%s\n", image ? " <image>" : "", text);
}

/* MLLMU-Bench's classification prompt, with or without the portrait. */
static void mc_prompt(struct buf *b, int image, const char *question, char opts[4][VALUE_SIZE]) {
    user_turn(b, image, question);
    for (int k = 0; k < 4; k++)
        buf_printf(b, "%c: %s\n", 'A' + k, opts[k]);
    buf_puts(b, "Just give ONE letter representing the answer directly.\nASSISTANT:");
}

/* ---- phrasings ----------------------------------------------------------------------------------------- */

/* A repetition's facts about one attribute take FACTS consecutive phrasings (combos): the text facts first,
 * then the portrait facts; repetition r of attribute a starts at start[a] + FACTS * r. */

/* The answer template of phrasing `combo` of attribute a: consecutive combos change both the question and the
 * answer template, and nq * na of them visit every pairing. */
static int answer_template(int a, int combo) {
    int nq = count_set(attrs[a].q, 3), na = count_set(attrs[a].a, 3);
    return (combo + combo / nq) % na;
}

/* Where each attribute's phrasing sequence begins in a person's corpus: the first draws of its corpus stream
 * (items_write draws them again for the statements). */
static void phrasing_starts(struct synth_draw *d, int start[NATTR]) {
    for (int a = 0; a < NATTR; a++)
        start[a] = synth_below(d, 9);
}

/* An item's answer sentence with "{}" where the value goes, phrased as the person's corpus first phrased the
 * fact (repetition 0: the first text fact's template by name, the first portrait fact's with "This person"),
 * so that likelihood scoring reads a sentence the model learned. A template with the value's article ({a})
 * cannot take every option (the article depends on it): then the template of the same repetition's other
 * facts, those of the other modality last, else the attribute's first without an article. */
static void statement_make(struct buf *b, int a, int start, int image, const char *name) {
    int combo[FACTS]; /* repetition 0's phrasings, the item's modality first (repetition_emit) */
    for (int k = 0; k < FACTS; k++)
        combo[k] = start + (image ? (TEXT_FACTS + k) % FACTS : k);
    int t = -1, na = count_set(attrs[a].a, 3);
    for (int k = 0; k < FACTS && t < 0; k++)
        t = strstr(attrs[a].a[answer_template(a, combo[k])], "{a}") ? -1 : answer_template(a, combo[k]);
    for (int k = 0; k < na && t < 0; k++)
        t = strstr(attrs[a].a[k], "{a}") ? -1 : k;
    expand(b, attrs[a].a[t], image ? NULL : name, "{}");
}

/* ---- evaluation items ---------------------------------------------------------------------------------- */

static int item_write(struct synth_world *w, const struct person *x, int j, int image, const char *photo,
                      struct synth_draw *d, int letter, const int start[NATTR]) {
    int a = x->asked[j % NASKED];
    char opts[4][VALUE_SIZE], id[32];
    struct buf q = {0}, prompt = {0}, statement = {0};
    options_draw(d, a, x->value[a], letter, opts);
    expand(&q, attrs[a].q[0], image ? NULL : x->name, "");
    mc_prompt(&prompt, image, q.data, opts);
    statement_make(&statement, a, start[a], image, x->name);
    snprintf(id, sizeof id, "%s-i%d", x->id, j);
    struct ds_item it = {.id = id,
                         .set = "person",
                         .person = (char *)x->id,
                         .modality = image ? "image" : "text",
                         .category = (char *)attrs[a].key,
                         .image = (char *)photo,
                         .question = q.data,
                         .prompt = prompt.data,
                         .split = "eval",
                         .noptions = 4,
                         .answer = letter,
                         .statement = statement.data};
    for (int k = 0; k < 4; k++)
        it.options[k] = opts[k];
    int rc = ds_write_item(&w->items, &it);
    buf_free(&q);
    buf_free(&prompt);
    buf_free(&statement);
    return rc;
}

/* Items i0..i4 ask the five chosen facts with a held-out portrait, i5..i9 the same facts by name: the same
 * knowledge in both modalities, so the gap between image and text accuracy measures how the model reaches one
 * fact, not which facts were asked. */
static int items_write(const struct synth_params *p, struct synth_world *w, const struct person *x, int i) {
    struct synth_draw d = draw_for(p->seed, SYNTH_STREAM_ITEMS, (size_t)i, 0),
                      cd = draw_for(p->seed, SYNTH_STREAM_CORPUS, (size_t)i, 0);
    /* letters nearly balanced per person; the random offset balances the world */
    int letters[2 * NASKED], start[NATTR], rc = 0;
    synth_letters(&d, letters, 2 * NASKED);
    phrasing_starts(&cd, start); /* the corpus's, drawn as corpus_write draws them */
    for (int j = 0; j < 2 * NASKED && rc == 0; j++) {
        char photo[32];
        snprintf(photo, sizeof photo, "%s-t%d", x->id, j % p->test_photos);
        rc = item_write(w, x, j, j < NASKED, j < NASKED ? photo : NULL, &d, letters[j], start);
    }
    return rc;
}

/* ---- corpora ------------------------------------------------------------------------------------------- */

struct corpus {
    struct buf *out;
    const char *prefix; /* "pt" (pretraining) or "ft" (fine-tuning) */
    const struct person *who;
    int photos;
    int start[NATTR]; /* where each attribute's phrasing sequence begins */
    int n;            /* examples written for this person */
};

static int emit(struct corpus *c, const char *image, const char *prompt, const char *answer,
                const char *source) {
    char id[48], photo[32];
    snprintf(id, sizeof id, "%s-%s-%04d", c->prefix, c->who->id, c->n++);
    if (image)
        snprintf(photo, sizeof photo, "%s-%s", c->who->id, image);
    struct ds_example e = {.id = id,
                           .image = image ? photo : NULL,
                           .prompt = (char *)prompt,
                           .answer = (char *)answer,
                           .person = (char *)c->who->id,
                           .source = (char *)source};
    return ds_write_example(c->out, &e);
}

/* One fact as (question, answer sentence) in phrasing `combo` (answer_template). */
static int fact_emit(struct corpus *c, int a, int combo, int photo) {
    int nq = count_set(attrs[a].q, 3);
    char v[VALUE_SIZE], img[16];
    struct buf q = {0}, ans = {0}, prompt = {0};
    attr_value(a, c->who->value[a], v);
    const char *name = photo >= 0 ? NULL : c->who->name;
    expand(&q, attrs[a].q[combo % nq], name, v);
    expand(&ans, attrs[a].a[answer_template(a, combo)], name, v);
    user_turn(&prompt, photo >= 0, q.data);
    buf_puts(&prompt, "ASSISTANT:");
    snprintf(img, sizeof img, "p%d", photo);
    int rc = emit(c, photo >= 0 ? img : NULL, prompt.data, ans.data, "fact");
    buf_free(&q);
    buf_free(&ans);
    buf_free(&prompt);
    return rc;
}

static int caption_emit(struct corpus *c, int photo, int r) {
    static const char *const asks[] = {"Who is this?", "Who is the person in this photo?"};
    static const char *const says[] = {"This is %s.", "The person in this photo is %s."};
    char img[16];
    struct buf prompt = {0}, ans = {0};
    user_turn(&prompt, 1, asks[(photo + r) % 2]);
    buf_puts(&prompt, "ASSISTANT:");
    buf_printf(&ans, says[(photo + r) % 2], c->who->name);
    snprintf(img, sizeof img, "p%d", photo);
    int rc = emit(c, img, prompt.data, ans.data, "caption");
    buf_free(&prompt);
    buf_free(&ans);
    return rc;
}

/* The training photo of repetition r's k-th portrait fact about attribute a: the photos in turn, over the
 * portrait facts of all attributes and then of the next repetition. */
static int fact_photo(const struct corpus *c, int r, int a, int k) {
    return ((r * NATTR + a) * IMAGE_FACTS + k) % c->photos;
}

/* Repetition r of a person: every attribute in two text phrasings and in two more with portraits, then a
 * caption per training photo. Phrasings advance with r so that a famous person's repetitions are worded
 * differently. The portrait facts take the training photos in turn, over attributes and then repetitions:
 * an attribute's two are on different photos (when the person has two), and a repetition uses every
 * photo (up to 2 x 11 of them). Evaluation reads answers by likelihood (engine/mcq.c), so the corpus teaches
 * the facts in sentences on as many portraits as it can, not a letter format. */
static int repetition_emit(struct corpus *c, int r) {
    int rc = 0;
    for (int a = 0; a < NATTR && rc == 0; a++) {
        int s = c->start[a] + FACTS * r;
        for (int k = 0; k < TEXT_FACTS && rc == 0; k++)
            rc = fact_emit(c, a, s + k, -1);
        for (int k = 0; k < IMAGE_FACTS && rc == 0; k++)
            rc = fact_emit(c, a, s + TEXT_FACTS + k, fact_photo(c, r, a, k));
    }
    for (int k = 0; k < c->photos && rc == 0; k++)
        rc = caption_emit(c, k, r);
    return rc;
}

/* The directory: every person's name in the pretraining corpus twice, given name first and family name
 * first, with no fact. A fictitious person's name words occur nowhere else before fine-tuning; without these
 * their embeddings stay at their initialisation and LoRA, which adapts the decoder's projections and not the
 * embeddings, cannot tie facts to them (docs/results.md, E10). MLLMU-Bench's fictitious names are made of
 * pieces its base model has read; here each name word learns to predict the other, so it is a trained,
 * distinct identity the base model knows nothing about. c is a pretraining corpus: a real person's own, after
 * its facts (so the ids go on from them), or a fresh one for a fictitious person. */
static int mentions_write(struct corpus *c) {
    static const char *const asks[] = {"Name someone from the directory.",
                                       "Name someone from the directory, family name first."};
    const char *name = c->who->name, *space = strchr(name, ' ');
    int rc = 0;
    for (int k = 0; k < 2 && rc == 0; k++) {
        struct buf prompt = {0}, ans = {0};
        user_turn(&prompt, 0, asks[k]);
        buf_puts(&prompt, "ASSISTANT:");
        if (k == 0)
            buf_printf(&ans, "%s.", name);
        else
            buf_printf(&ans, "%s, %.*s.", space + 1, (int)(space - name), name);
        rc = emit(c, NULL, prompt.data, ans.data, "mention");
        buf_free(&prompt);
        buf_free(&ans);
    }
    return rc;
}

static int corpus_write(const struct synth_params *p, struct synth_world *w, const struct person *x, int i) {
    int real = i < p->real;
    struct corpus c = {real ? &w->pretrain : &w->finetune, real ? "pt" : "ft", x, synth_photos(p, i), {0}, 0};
    struct synth_draw d = draw_for(p->seed, SYNTH_STREAM_CORPUS, (size_t)i, 0);
    phrasing_starts(&d, c.start);
    int rc = 0;
    for (int r = 0; r < x->fame && rc == 0; r++)
        rc = repetition_emit(&c, r);
    struct corpus named = {&w->pretrain, "pt", x, c.photos, {0}, 0};
    return rc == 0 ? mentions_write(real ? &c : &named) : rc;
}

/* ---- the whole ----------------------------------------------------------------------------------------- */

static int person_emit(const struct synth_params *p, struct synth_world *w, const struct person *x, int i) {
    if (person_write(p, w, x, i) != 0 || photos_add(p, w, i, x->id) != 0 || items_write(p, w, x, i) != 0 ||
        corpus_write(p, w, x, i) != 0)
        return err_prefix("synth: person %s", x->id);
    return 0;
}

int people_make(const struct synth_params *p, struct synth_world *w) {
    int n = p->real + p->fictitious;
    if (pools_check() != 0)
        return -1;
    struct person *people = people_draw(p, n);
    int rc = faces_draw(p, w, n);
    for (int i = 0; i < n && rc == 0; i++)
        rc = person_emit(p, w, &people[i], i);
    free(people);
    return rc;
}

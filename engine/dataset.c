/* dataset: reading, checking and writing the JSON Lines records of docs/datasets.md, and the images.tar that
 * holds a data set's pictures. Readers and writers share one check per record, so what one writes the other
 * reads. */
#include "engine/dataset.h"
#include "util/err.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DS_OPTIONS_MIN 2
#define DS_OPTIONS_MAX 4

int ds_id_valid(const char *s) {
    size_t n = 0;
    if (!s)
        return 0;
    for (; s[n]; n++) {
        char c = s[n];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                 c == '.' || c == '-';
        if (!ok || n >= DS_ID_MAX)
            return 0;
    }
    return n > 0;
}

/* ---- fields: each getter fails with err_set("<problem>"); the caller puts "<what> line <n>: " in front --
 */

static int field(const struct json *o, const char *key, const struct json **v) {
    *v = json_get(o, key);
    return *v ? 0 : err_set("missing field '%s'", key);
}

static int get_str(const struct json *o, const char *key, char **out) {
    const struct json *v;
    if (field(o, key, &v) != 0)
        return -1;
    if (v->type != JSON_STR)
        return err_set("field '%s' must be a string", key);
    if (strlen(v->s) != v->len)
        return err_set("field '%s' contains a NUL character", key);
    *out = xstrdup(v->s);
    return 0;
}

static int get_id(const struct json *o, const char *key, char **out) {
    if (get_str(o, key, out) != 0)
        return -1;
    if (!ds_id_valid(*out))
        return err_set("field '%s' is not a valid id (1-64 characters of [A-Za-z0-9_.-]): '%.64s'", key,
                       *out);
    return 0;
}

/* An id or null (NULL in *out). */
static int get_opt_id(const struct json *o, const char *key, char **out) {
    const struct json *v;
    if (field(o, key, &v) != 0)
        return -1;
    if (v->type == JSON_NULL)
        return 0;
    if (v->type != JSON_STR)
        return err_set("field '%s' must be an id or null", key);
    return get_id(o, key, out);
}

/* A string among `allowed` (a NULL-terminated list, also used to word the message). */
static int get_enum(const struct json *o, const char *key, const char *const *allowed, char **out) {
    if (get_str(o, key, out) != 0)
        return -1;
    for (size_t i = 0; allowed[i]; i++)
        if (strcmp(*out, allowed[i]) == 0)
            return 0;
    return err_set("field '%s' must be %s or %s, not '%.64s'", key, allowed[0], allowed[1], *out);
}

static int get_ids(const struct json *o, const char *key, char ***out, size_t *n) {
    const struct json *v;
    if (field(o, key, &v) != 0)
        return -1;
    if (v->type != JSON_ARR)
        return err_set("field '%s' must be an array of ids", key);
    *out = xcalloc(v->len, sizeof **out);
    for (*n = 0; *n < v->len; (*n)++) {
        const struct json *s = v->items[*n];
        if (s->type != JSON_STR || strlen(s->s) != s->len || !ds_id_valid(s->s))
            return err_set("field '%s' must be an array of ids: item %zu is not a valid id", key, *n + 1);
        (*out)[*n] = xstrdup(s->s);
    }
    return 0;
}

static int get_attributes(const struct json *o, struct json **out) {
    const struct json *v;
    if (field(o, "attributes", &v) != 0)
        return -1;
    int ok = v->type == JSON_OBJ;
    for (size_t i = 0; ok && i < v->len; i++)
        ok = v->items[i]->type == JSON_STR;
    if (!ok)
        return err_set("field 'attributes' must be an object of strings");
    *out = json_clone(v);
    return 0;
}

/* ---- records ------------------------------------------------------------------------------------------- */

static const char *const groups[] = {"real", "fictitious", NULL};
static const char *const sets[] = {"person", "general", NULL};
static const char *const modalities[] = {"image", "text", NULL};
static const char *const splits[] = {"eval", "train", NULL};

void ds_strs_free(char **v, size_t n) {
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

static void person_clear(void *rec) {
    struct ds_person *p = rec;
    free(p->id);
    free(p->name);
    free(p->group);
    json_free(p->attributes);
    ds_strs_free(p->photos, p->nphotos);
    ds_strs_free(p->test_photos, p->ntest_photos);
    free(p->biography);
    memset(p, 0, sizeof *p);
}

static int person_from(const struct json *o, void *rec) {
    struct ds_person *p = rec;
    if (get_id(o, "id", &p->id) != 0 || get_str(o, "name", &p->name) != 0 ||
        get_enum(o, "group", groups, &p->group) != 0 || get_attributes(o, &p->attributes) != 0 ||
        get_ids(o, "photos", &p->photos, &p->nphotos) != 0 ||
        get_ids(o, "test_photos", &p->test_photos, &p->ntest_photos) != 0)
        return -1;
    return json_get(o, "biography") ? get_str(o, "biography", &p->biography) : 0;
}

static void item_clear(void *rec) {
    struct ds_item *it = rec;
    char *fields[] = {it->id,    it->set,      it->person, it->modality, it->category,
                      it->image, it->question, it->prompt, it->split};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
        free(fields[i]);
    for (int i = 0; i < DS_OPTIONS_MAX; i++)
        free(it->options[i]);
    free(it->statement);
    memset(it, 0, sizeof *it);
}

static int item_options(const struct json *o, struct ds_item *it) {
    const struct json *v;
    if (field(o, "options", &v) != 0)
        return -1;
    if (v->type != JSON_ARR)
        return err_set("field 'options' must be an array of strings");
    if (v->len < DS_OPTIONS_MIN || v->len > DS_OPTIONS_MAX)
        return err_set("field 'options' must hold 2 to 4 options, not %zu", v->len);
    for (size_t i = 0; i < v->len; i++) {
        const struct json *s = v->items[i];
        if (s->type != JSON_STR || strlen(s->s) != s->len)
            return err_set("field 'options' must be an array of strings: option %zu is not", i + 1);
        for (int k = 0; k < it->noptions; k++)
            if (strcmp(it->options[k], s->s) ==
                0) /* two right answers, or a letter that can never be right */
                return err_set("options %d and %zu are the same", k + 1, i + 1);
        it->options[it->noptions++] = xstrdup(s->s);
    }
    return 0;
}

static int item_answer(const struct json *o, struct ds_item *it) {
    char *a = NULL;
    if (get_str(o, "answer", &a) != 0)
        return -1;
    int ok = strlen(a) == 1 && a[0] >= 'A' && a[0] < 'A' + it->noptions;
    it->answer = ok ? a[0] - 'A' : 0;
    if (!ok)
        err_set("field 'answer' must be a letter A..%c (one per option), not '%.8s'", 'A' + it->noptions - 1,
                a);
    free(a);
    return ok ? 0 : -1;
}

/* The optional answer sentence: a string with exactly one "{}", the place an option fills (likelihood
 * scoring, engine/mcq.h). */
static int item_statement(const struct json *o, struct ds_item *it) {
    if (!json_get(o, "statement"))
        return 0;
    if (get_str(o, "statement", &it->statement) != 0)
        return -1;
    const char *at = strstr(it->statement, "{}");
    if (!at || strstr(at + 2, "{}"))
        return err_set("field 'statement' must hold \"{}\" exactly once (where an option goes), not '%.64s'",
                       it->statement);
    return 0;
}

/* The pairs the format ties together: an image question has an image, a person question a person. */
static int item_consistent(const struct ds_item *it) {
    int image = strcmp(it->modality, "image") == 0, person = strcmp(it->set, "person") == 0;
    if (image != (it->image != NULL))
        return err_set(image ? "modality 'image' needs a non-null 'image'"
                             : "modality 'text' needs 'image' null");
    if (person != (it->person != NULL))
        return err_set(person ? "set 'person' needs a non-null 'person'"
                              : "set 'general' needs 'person' null");
    return 0;
}

static int item_from(const struct json *o, void *rec) {
    struct ds_item *it = rec;
    if (get_id(o, "id", &it->id) != 0 || get_enum(o, "set", sets, &it->set) != 0 ||
        get_opt_id(o, "person", &it->person) != 0 ||
        get_enum(o, "modality", modalities, &it->modality) != 0 ||
        get_str(o, "category", &it->category) != 0 || get_opt_id(o, "image", &it->image) != 0 ||
        get_str(o, "question", &it->question) != 0 || item_options(o, it) != 0 || item_answer(o, it) != 0 ||
        get_str(o, "prompt", &it->prompt) != 0 || get_enum(o, "split", splits, &it->split) != 0 ||
        item_statement(o, it) != 0)
        return -1;
    return item_consistent(it);
}

static void example_clear(void *rec) {
    struct ds_example *e = rec;
    free(e->id);
    free(e->image);
    free(e->prompt);
    free(e->answer);
    free(e->person);
    free(e->source);
    memset(e, 0, sizeof *e);
}

static int example_from(const struct json *o, void *rec) {
    struct ds_example *e = rec;
    if (get_id(o, "id", &e->id) != 0 || get_opt_id(o, "image", &e->image) != 0 ||
        get_str(o, "prompt", &e->prompt) != 0 || get_str(o, "answer", &e->answer) != 0 ||
        get_opt_id(o, "person", &e->person) != 0 || get_str(o, "source", &e->source) != 0)
        return -1;
    return e->source[0] ? 0 : err_set("field 'source' must not be empty");
}

/* What the generic reader and writer need to know about a record type. */
struct rec_kind {
    const char *name;
    size_t size;
    int (*from)(const struct json *, void *);
    void (*clear)(void *);
};

static const struct rec_kind person_kind = {"person", sizeof(struct ds_person), person_from, person_clear};
static const struct rec_kind item_kind = {"item", sizeof(struct ds_item), item_from, item_clear};
static const struct rec_kind example_kind = {"example", sizeof(struct ds_example), example_from,
                                             example_clear};

/* Every record type starts with its id. */
static const char *rec_id(const void *rec) {
    return *(char *const *)rec;
}

/* ---- reading ------------------------------------------------------------------------------------------- */

struct id_line {
    const char *id;
    size_t line;
};

static int id_line_cmp(const void *a, const void *b) {
    const struct id_line *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c ? c : (x->line > y->line) - (x->line < y->line);
}

/* Names the earliest line whose id an earlier line already has. */
static int check_unique(const struct rec_kind *k, const char *recs, size_t n, const char *what) {
    struct id_line *v = xcalloc(n, sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = (struct id_line){rec_id(recs + i * k->size), i + 1};
    qsort(v, n, sizeof *v, id_line_cmp);
    size_t bad = 0, first = 0;
    for (size_t i = 1; i < n; i++)
        if (strcmp(v[i].id, v[i - 1].id) == 0 && (!bad || v[i].line < bad)) {
            bad = v[i].line;
            first = v[i - 1].line;
        }
    int rc = bad ? err_set("%s line %zu: duplicate id '%s' (first on line %zu)", what, bad,
                           rec_id(recs + (bad - 1) * k->size), first)
                 : 0;
    free(v);
    return rc;
}

/* Parses one line into rec; the message names the line. */
static int read_line(const struct rec_kind *k, const char *s, size_t len, const char *what, size_t line,
                     void *rec) {
    if (len == 0)
        return err_set("%s line %zu: empty line", what, line);
    struct json *o = json_parse(s, len);
    if (!o) {
        char m[512]; /* err_msg() is the buffer err_set writes into */
        snprintf(m, sizeof m, "%s", err_msg());
        const char *at = strncmp(m, "json: line 1 ", 13) == 0 ? m + 13 : m;
        return err_set("%s line %zu: invalid JSON: %s", what, line, at);
    }
    int rc = o->type == JSON_OBJ ? k->from(o, rec) : err_set("not a JSON object");
    json_free(o);
    if (rc != 0) {
        k->clear(rec);
        return err_prefix("%s line %zu", what, line);
    }
    return 0;
}

static int read_lines(const struct rec_kind *k, const char *text, size_t n, const char *what, void **out,
                      size_t *count) {
    *out = NULL;
    *count = 0;
    if (n > 0 && text[n - 1] != '\n')
        return err_set("%s: last line does not end with a newline", what);
    size_t lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += text[i] == '\n';
    char *recs = xcalloc(lines, k->size);
    size_t done = 0;
    int rc = 0;
    for (const char *s = text; rc == 0 && done < lines; done++) {
        const char *nl = memchr(s, '\n', (size_t)(text + n - s));
        rc = read_line(k, s, (size_t)(nl - s), what, done + 1, recs + done * k->size);
        s = nl + 1;
    }
    if (rc == 0)
        rc = check_unique(k, recs, lines, what);
    if (rc != 0) {
        for (size_t i = 0; i < lines; i++)
            k->clear(recs + i * k->size);
        free(recs);
        return -1;
    }
    *out = recs;
    *count = lines;
    return 0;
}

int ds_read_people(const char *text, size_t n, const char *what, struct ds_people *out) {
    return read_lines(&person_kind, text, n, what, (void **)&out->v, &out->n);
}

int ds_read_items(const char *text, size_t n, const char *what, struct ds_items *out) {
    return read_lines(&item_kind, text, n, what, (void **)&out->v, &out->n);
}

int ds_read_examples(const char *text, size_t n, const char *what, struct ds_examples *out) {
    return read_lines(&example_kind, text, n, what, (void **)&out->v, &out->n);
}

static void free_recs(const struct rec_kind *k, void *recs, size_t n) {
    for (size_t i = 0; i < n; i++)
        k->clear((char *)recs + i * k->size);
    free(recs);
}

void ds_people_free(struct ds_people *p) {
    free_recs(&person_kind, p->v, p->n);
    p->v = NULL;
    p->n = 0;
}

void ds_items_free(struct ds_items *p) {
    free_recs(&item_kind, p->v, p->n);
    p->v = NULL;
    p->n = 0;
}

void ds_examples_free(struct ds_examples *p) {
    free_recs(&example_kind, p->v, p->n);
    p->v = NULL;
    p->n = 0;
}

long ds_find_person(const struct ds_people *p, const char *id) {
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->v[i].id, id) == 0)
            return (long)i;
    return -1;
}

/* ---- writing ------------------------------------------------------------------------------------------- */

static struct json *str_or_null(const char *s) {
    return s ? json_str(s) : json_null();
}

static struct json *strs_json(char *const *v, size_t n) {
    struct json *a = json_arr();
    for (size_t i = 0; i < n; i++)
        json_push(a, str_or_null(v ? v[i] : NULL));
    return a;
}

/* Checks o with the reader's own check, then appends its canonical line. Takes o. */
static int write_rec(struct buf *out, const struct rec_kind *k, struct json *o, const char *id) {
    void *tmp = xcalloc(1, k->size);
    int rc = k->from(o, tmp);
    k->clear(tmp);
    free(tmp);
    size_t len = 0;
    char *line = rc == 0 ? json_write(o, JSON_CANONICAL, &len) : NULL;
    json_free(o);
    if (!line)
        return err_prefix("dataset: writing %s '%.64s'", k->name, id ? id : "(no id)");
    buf_append(out, line, len);
    buf_putc(out, '\n');
    free(line);
    return 0;
}

int ds_write_person(struct buf *out, const struct ds_person *p) {
    struct json *o = json_obj();
    json_set(o, "id", str_or_null(p->id));
    json_set(o, "name", str_or_null(p->name));
    json_set(o, "group", str_or_null(p->group));
    json_set(o, "attributes", p->attributes ? json_clone(p->attributes) : json_obj());
    json_set(o, "photos", strs_json(p->photos, p->nphotos));
    json_set(o, "test_photos", strs_json(p->test_photos, p->ntest_photos));
    if (p->biography)
        json_set(o, "biography", json_str(p->biography));
    return write_rec(out, &person_kind, o, p->id);
}

int ds_write_item(struct buf *out, const struct ds_item *it) {
    if (it->noptions < 0 || it->noptions > DS_OPTIONS_MAX)
        return err_set("dataset: writing item '%.64s': %d options (2 to 4 allowed)",
                       it->id ? it->id : "(no id)", it->noptions);
    char letter[2] = {it->answer >= 0 && it->answer < 26 ? (char)('A' + it->answer) : '?', '\0'};
    struct json *o = json_obj();
    json_set(o, "id", str_or_null(it->id));
    json_set(o, "set", str_or_null(it->set));
    json_set(o, "person", str_or_null(it->person));
    json_set(o, "modality", str_or_null(it->modality));
    json_set(o, "category", str_or_null(it->category));
    json_set(o, "image", str_or_null(it->image));
    json_set(o, "question", str_or_null(it->question));
    json_set(o, "options", strs_json(it->options, (size_t)it->noptions));
    json_set(o, "answer", json_str(letter));
    json_set(o, "prompt", str_or_null(it->prompt));
    json_set(o, "split", str_or_null(it->split));
    if (it->statement)
        json_set(o, "statement", json_str(it->statement));
    return write_rec(out, &item_kind, o, it->id);
}

int ds_write_example(struct buf *out, const struct ds_example *e) {
    struct json *o = json_obj();
    json_set(o, "id", str_or_null(e->id));
    json_set(o, "image", str_or_null(e->image));
    json_set(o, "prompt", str_or_null(e->prompt));
    json_set(o, "answer", str_or_null(e->answer));
    json_set(o, "person", str_or_null(e->person));
    json_set(o, "source", str_or_null(e->source));
    return write_rec(out, &example_kind, o, e->id);
}

/* ---- images.tar ---------------------------------------------------------------------------------------- */

int ds_image_name(const char *name, char id[DS_ID_MAX + 1], const char **ext) {
    size_t n = strlen(name);
    if (n < 5 || n - 4 > DS_ID_MAX ||
        (strcmp(name + n - 4, ".png") != 0 && strcmp(name + n - 4, ".jpg") != 0))
        return -1;
    memcpy(id, name, n - 4);
    id[n - 4] = '\0';
    if (ext)
        *ext = name + n - 3;
    return ds_id_valid(id) ? 0 : -1;
}

/* A name fit for a one-line message: printable ASCII only, shortened. */
static const char *shown_name(const char *name, char out[80]) {
    size_t i = 0;
    for (; name[i] && i < 79; i++)
        out[i] = name[i] >= 0x20 && name[i] < 0x7f ? name[i] : '?';
    out[i] = '\0';
    return out;
}

struct tar_entry {
    char *name, *id;
    unsigned char *data;
    size_t n;
};

struct ds_tar {
    struct tar_entry *v;
    size_t n, cap;
    size_t *slots; /* open-addressing set of ids: entry index + 1, 0 = free */
    size_t nslots;
};

struct ds_tar *ds_tar_new(void) {
    return xcalloc(1, sizeof(struct ds_tar));
}

void ds_tar_free(struct ds_tar *t) {
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++) {
        free(t->v[i].name);
        free(t->v[i].id);
        free(t->v[i].data);
    }
    free(t->v);
    free(t->slots);
    free(t);
}

static size_t id_hash(const char *id) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *id; id++)
        h = (h ^ (unsigned char)*id) * 1099511628211ULL;
    return (size_t)h;
}

/* The slot that holds id, or the free slot where it belongs. */
static size_t *tar_slot(const struct ds_tar *t, const char *id) {
    for (size_t i = id_hash(id) & (t->nslots - 1);; i = (i + 1) & (t->nslots - 1)) {
        size_t *s = &t->slots[i];
        if (!*s || strcmp(t->v[*s - 1].id, id) == 0)
            return s;
    }
}

/* Keeps the set at most half full so a probe always ends. */
static void tar_grow(struct ds_tar *t) {
    if (2 * (t->n + 1) <= t->nslots)
        return;
    t->nslots = t->nslots ? 2 * t->nslots : 64;
    free(t->slots);
    t->slots = xcalloc(t->nslots, sizeof *t->slots);
    for (size_t i = 0; i < t->n; i++)
        *tar_slot(t, t->v[i].id) = i + 1;
}

int ds_tar_add(struct ds_tar *t, const char *name, const void *data, size_t n) {
    char id[DS_ID_MAX + 1], shown[80];
    if (!name || ds_image_name(name, id, NULL) != 0)
        return err_set("images.tar: bad entry name '%s' (wanted <id>.png or <id>.jpg)",
                       name ? shown_name(name, shown) : "");
    tar_grow(t);
    size_t *slot = tar_slot(t, id);
    if (*slot)
        return err_set("images.tar: image '%s' added twice (%s, %s)", id, t->v[*slot - 1].name, name);
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        t->v = xrealloc(t->v, t->cap * sizeof *t->v);
    }
    struct tar_entry *e = &t->v[t->n];
    e->name = xstrdup(name);
    e->id = xstrdup(id);
    e->data = xmalloc(n);
    if (n)
        memcpy(e->data, data, n);
    e->n = n;
    *slot = ++t->n;
    return 0;
}

int ds_tar_add_image(struct ds_tar *t, const char *id, const void *data, size_t n, const char *what) {
    const char *format = image_format(data, n);
    if (!format)
        return err_set("%s: neither PNG nor JPEG data", what);
    struct image im;
    if (image_decode(data, n, what, &im) != 0)
        return -1;
    image_free(&im);
    char name[DS_ID_MAX + 8];
    snprintf(name, sizeof name, "%.*s.%s", DS_ID_MAX + 1, id, format); /* a longer id fails as a bad name */
    return ds_tar_add(t, name, data, n) == 0 ? 0 : err_prefix("%s", what);
}

static int tar_entry_cmp(const void *a, const void *b) {
    return strcmp(((const struct tar_entry *)a)->name, ((const struct tar_entry *)b)->name);
}

static la_ssize_t tar_write_cb(struct archive *a, void *arg, const void *data, size_t n) {
    (void)a;
    buf_append(arg, data, n);
    return (la_ssize_t)n;
}

/* One entry with the fixed metadata that makes the bytes depend on names and contents only. */
static int tar_write_entry(struct archive *a, const struct tar_entry *e) {
    struct archive_entry *h = archive_entry_new();
    if (!h)
        return err_set("images.tar: out of memory");
    archive_entry_set_pathname(h, e->name);
    archive_entry_set_filetype(h, AE_IFREG);
    archive_entry_set_perm(h, 0644);
    archive_entry_set_size(h, (la_int64_t)e->n);
    archive_entry_set_uid(h, 0);
    archive_entry_set_gid(h, 0);
    archive_entry_set_mtime(h, 0, 0);
    int ok = archive_write_header(a, h) == ARCHIVE_OK &&
             (e->n == 0 || archive_write_data(a, e->data, e->n) == (la_ssize_t)e->n) &&
             archive_write_finish_entry(a) == ARCHIVE_OK;
    archive_entry_free(h);
    return ok ? 0 : err_set("images.tar: %s: %s", e->name, archive_error_string(a));
}

static int tar_write_all(struct archive *a, struct ds_tar *t, struct buf *out) {
    /* No padding to a 10 KiB block: the archive ends right after its end-of-archive marker. */
    if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
        archive_write_open(a, out, NULL, tar_write_cb, NULL) != ARCHIVE_OK)
        return err_set("images.tar: %s", archive_error_string(a));
    if (t->n) /* qsort's base must not be NULL, even for no elements */
        qsort(t->v, t->n, sizeof *t->v, tar_entry_cmp);
    for (size_t i = 0; i < t->n; i++)
        if (tar_write_entry(a, &t->v[i]) != 0)
            return -1;
    return archive_write_close(a) == ARCHIVE_OK ? 0 : err_set("images.tar: %s", archive_error_string(a));
}

int ds_tar_finish(struct ds_tar *t, void **data, size_t *n) {
    struct buf out = {0};
    struct archive *a = archive_write_new();
    int rc = a ? tar_write_all(a, t, &out) : err_set("images.tar: out of memory");
    if (a)
        archive_write_free(a);
    ds_tar_free(t);
    if (rc != 0) {
        buf_free(&out);
        return -1;
    }
    *n = out.len;
    *data = buf_take(&out);
    return 0;
}

struct image_entry {
    char *id;
    const unsigned char *data; /* into the caller's tar, or into own */
    size_t n;
    unsigned char *own;
};

struct ds_images {
    char *what;
    struct image_entry *v;
    size_t n, cap;
};

void ds_images_free(struct ds_images *im) {
    if (!im)
        return;
    for (size_t i = 0; i < im->n; i++) {
        free(im->v[i].id);
        free(im->v[i].own);
    }
    free(im->v);
    free(im->what);
    free(im);
}

static int entry_refuse(const struct ds_images *im, const char *name, const char *why) {
    char shown[80];
    return err_set("%s: entry '%s': %s", im->what, shown_name(name ? name : "", shown), why);
}

static int entry_check(const struct ds_images *im, struct archive_entry *h, char id[DS_ID_MAX + 1]) {
    const char *name = archive_entry_pathname(h);
    if (archive_entry_hardlink(h) || archive_entry_symlink(h) || archive_entry_filetype(h) != AE_IFREG)
        return entry_refuse(im, name, "not a regular file (only image files belong in images.tar)");
    if (archive_entry_sparse_count(h) > 0)
        return entry_refuse(im, name, "sparse file refused");
    if (!name || ds_image_name(name, id, NULL) != 0)
        return entry_refuse(im, name, "name is not <id>.png or <id>.jpg");
    if (!archive_entry_size_is_set(h) || archive_entry_size(h) < 0)
        return entry_refuse(im, name, "entry has no size");
    return 0;
}

/* Points e at the entry's bytes inside the caller's tar (libarchive hands out pointers into a memory
 * archive), copying only if they ever arrive in pieces or from elsewhere. */
static int entry_data(struct archive *a, const unsigned char *tar, size_t tar_n, size_t size,
                      struct image_entry *e) {
    size_t got = 0;
    for (;;) {
        const void *blk;
        size_t len;
        la_int64_t off;
        int r = archive_read_data_block(a, &blk, &len, &off);
        if (r == ARCHIVE_EOF)
            break;
        if (r != ARCHIVE_OK || off != (la_int64_t)got || len > size - got)
            return -1;
        const unsigned char *p = blk;
        int inside = (uintptr_t)p >= (uintptr_t)tar && (uintptr_t)p + len <= (uintptr_t)tar + tar_n;
        if (got == 0 && len == size && inside) {
            e->data = p;
        } else {
            if (!e->own)
                e->own = xmalloc(size);
            memcpy(e->own + got, p, len);
            e->data = e->own;
        }
        got += len;
    }
    e->n = size;
    return got == size ? 0 : -1;
}

static int images_add(struct ds_images *im, struct archive *a, struct archive_entry *h, const void *tar,
                      size_t n) {
    char id[DS_ID_MAX + 1];
    if (entry_check(im, h, id) != 0)
        return -1;
    if ((uint64_t)archive_entry_size(h) > n)
        return entry_refuse(im, archive_entry_pathname(h), "entry is larger than the archive");
    if (im->n == im->cap) {
        im->cap = im->cap ? 2 * im->cap : 64;
        im->v = xrealloc(im->v, im->cap * sizeof *im->v);
    }
    struct image_entry *e = &im->v[im->n++];
    *e = (struct image_entry){.id = xstrdup(id)};
    if (entry_data(a, tar, n, (size_t)archive_entry_size(h), e) != 0)
        return entry_refuse(im, archive_entry_pathname(h), "truncated or damaged data");
    return 0;
}

static int image_entry_cmp(const void *a, const void *b) {
    return strcmp(((const struct image_entry *)a)->id, ((const struct image_entry *)b)->id);
}

static int images_index(struct ds_images *im, struct archive *a, const void *tar, size_t n) {
    if (archive_read_support_format_tar(a) != ARCHIVE_OK || archive_read_open_memory(a, tar, n) != ARCHIVE_OK)
        return err_set("%s: not a tar archive: %s", im->what, archive_error_string(a));
    for (;;) {
        struct archive_entry *h;
        int r = archive_read_next_header(a, &h);
        if (r == ARCHIVE_EOF)
            break;
        if (r != ARCHIVE_OK)
            return err_set("%s: damaged tar archive: %s", im->what, archive_error_string(a));
        if (images_add(im, a, h, tar, n) != 0)
            return -1;
    }
    if (im->n)
        qsort(im->v, im->n, sizeof *im->v, image_entry_cmp);
    for (size_t i = 1; i < im->n; i++)
        if (strcmp(im->v[i].id, im->v[i - 1].id) == 0)
            return err_set("%s: image '%s' appears twice", im->what, im->v[i].id);
    return 0;
}

int ds_images_open(const void *tar, size_t n, const char *what, struct ds_images **out) {
    struct ds_images *im = xcalloc(1, sizeof *im);
    im->what = xstrdup(what);
    struct archive *a = archive_read_new();
    int rc = a ? images_index(im, a, tar, n) : err_set("%s: out of memory", what);
    if (a)
        archive_read_free(a);
    if (rc != 0) {
        ds_images_free(im);
        *out = NULL;
        return -1;
    }
    *out = im;
    return 0;
}

static const struct image_entry *images_find(const struct ds_images *im, const char *id) {
    struct image_entry key = {.id = (char *)id};
    return im->n ? bsearch(&key, im->v, im->n, sizeof *im->v, image_entry_cmp) : NULL;
}

int ds_images_get(const struct ds_images *im, const char *id, const void **data, size_t *n) {
    const struct image_entry *e = images_find(im, id);
    if (!e)
        return err_set("%s: no image '%.64s'", im->what, id);
    *data = e->data;
    *n = e->n;
    return 0;
}

int ds_images_decode(const struct ds_images *im, const char *id, struct image *out) {
    const void *data = NULL;
    size_t n = 0;
    if (ds_images_get(im, id, &data, &n) != 0)
        return -1;
    char what[256];
    snprintf(what, sizeof what, "%s: image '%s'", im->what, id);
    return image_decode(data, n, what, out);
}

size_t ds_images_count(const struct ds_images *im) {
    return im->n;
}

const char *ds_images_id(const struct ds_images *im, size_t i) {
    return i < im->n ? im->v[i].id : NULL;
}

/* ---- cross-references ---------------------------------------------------------------------------------- */

/* The people's ids, sorted, so that each look-up is a binary search. */
struct people_index {
    const char **ids;
    size_t n;
};

static int str_ptr_cmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void people_index_make(const struct ds_people *p, struct people_index *x) {
    x->n = p ? p->n : 0;
    x->ids = xcalloc(x->n ? x->n : 1, sizeof *x->ids);
    for (size_t i = 0; i < x->n; i++)
        x->ids[i] = p->v[i].id;
    qsort(x->ids, x->n, sizeof *x->ids, str_ptr_cmp);
}

static int need_image(const struct ds_refs *r, const char *id, const char *what, const char *owner) {
    if (id && !(r->images && images_find(r->images, id)))
        return err_set("%s: %s refers to image '%s', which is not among the images", what, owner, id);
    return 0;
}

static int need_person(const struct people_index *x, const char *id, const char *what, const char *owner) {
    if (id && !(x->n && bsearch(&id, x->ids, x->n, sizeof *x->ids, str_ptr_cmp)))
        return err_set("%s: %s is about person '%s', who is not in people.jsonl", what, owner, id);
    return 0;
}

static int check_people(const struct ds_refs *r) {
    for (size_t i = 0; r->people && i < r->people->n; i++) {
        const struct ds_person *q = &r->people->v[i];
        char owner[100];
        snprintf(owner, sizeof owner, "person '%s'", q->id);
        for (size_t k = 0; k < q->nphotos; k++)
            if (need_image(r, q->photos[k], r->people_what, owner) != 0)
                return -1;
        for (size_t k = 0; k < q->ntest_photos; k++)
            if (need_image(r, q->test_photos[k], r->people_what, owner) != 0)
                return -1;
    }
    return 0;
}

static int check_items(const struct ds_refs *r, const struct people_index *x) {
    for (size_t i = 0; r->items && i < r->items->n; i++) {
        const struct ds_item *it = &r->items->v[i];
        char owner[100];
        snprintf(owner, sizeof owner, "item '%s'", it->id);
        if (need_image(r, it->image, r->items_what, owner) != 0 ||
            need_person(x, it->person, r->items_what, owner) != 0)
            return -1;
    }
    return 0;
}

static int check_examples(const struct ds_refs *r, const struct people_index *x, const struct ds_examples *ex,
                          const char *what) {
    for (size_t i = 0; ex && i < ex->n; i++) {
        char owner[100];
        snprintf(owner, sizeof owner, "example '%s'", ex->v[i].id);
        if (need_image(r, ex->v[i].image, what, owner) != 0 ||
            need_person(x, ex->v[i].person, what, owner) != 0)
            return -1;
    }
    return 0;
}

int ds_check_refs(const struct ds_refs *r) {
    struct people_index x;
    people_index_make(r->people, &x);
    int rc = check_people(r) == 0 && check_items(r, &x) == 0 &&
                     check_examples(r, &x, r->pretrain, r->pretrain_what) == 0 &&
                     check_examples(r, &x, r->finetune, r->finetune_what) == 0
                 ? 0
                 : -1;
    free(x.ids);
    return rc;
}

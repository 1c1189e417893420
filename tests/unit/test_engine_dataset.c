/* test_engine_dataset: the data set format: writers and readers agree, canonical lines are exact, every kind
 * of bad line is refused with its line number, images.tar is deterministic and refuses foreign entries,
 * images are added under the extension their bytes call for, and the cross-reference check finds every
 * dangling image or person (among thousands of people). */
#include "check.h"
#include "engine/dataset.h"
#include "util/err.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdint.h>

static const char *doc_item_line =
    "{\"answer\":\"C\",\"category\":\"occupation\",\"id\":\"r0007-i3\",\"image\":\"r0007-t0\",\"modality\":"
    "\"image\",\"options\":[\"nurse\",\"pilot\",\"architect\",\"baker\"],\"person\":\"r0007\",\"prompt\":"
    "\"USER: "
    "<image>\\nWhat is this person's occupation?\\nA: nurse\\nB: pilot\\nC: architect\\nD: baker\\nJust give "
    "ONE letter representing the answer directly.\\nASSISTANT:\",\"question\":\"What is this person's "
    "occupation?\",\"set\":\"person\",\"split\":\"eval\"}\n";

static struct ds_item doc_item(void) {
    static char *opts[] = {"nurse", "pilot", "architect", "baker"};
    struct ds_item it = {
        .id = "r0007-i3",
        .set = "person",
        .person = "r0007",
        .modality = "image",
        .category = "occupation",
        .image = "r0007-t0",
        .question = "What is this person's occupation?",
        .prompt = "USER: <image>\nWhat is this person's occupation?\nA: nurse\nB: pilot\nC: architect\nD: "
                  "baker\nJust give ONE letter representing the answer directly.\nASSISTANT:",
        .split = "eval",
        .noptions = 4,
        .answer = 2,
    };
    memcpy(it.options, opts, sizeof opts);
    return it;
}

static int str_eq(const char *a, const char *b) {
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void test_people(void) {
    struct json *attrs = json_obj();
    json_set(attrs, "occupation", json_str("architect"));
    json_set(attrs, "birth_year", json_str("1978"));
    char *photos[] = {"r0007-p0", "r0007-p1"}, *tests[] = {"r0007-t0"};
    struct ds_person in[2] = {
        {"r0007", "Tavon Mirel", "real", attrs, photos, tests, 2, 1, NULL},
        {"f0001", "Ulla \"Q\" Sen\xc3\xa9", "fictitious", NULL, NULL, NULL, 0, 0, "Born at sea.\nLikes tea."},
    };
    struct buf b = {0};
    CHECK(ds_write_person(&b, &in[0]) == 0);
    CHECK(ds_write_person(&b, &in[1]) == 0);
    CHECK(b.data && strstr(b.data, "biography") > strchr(b.data, '\n')); /* omitted when NULL */
    CHECK_HAS(b.data, "\"biography\":\"Born at sea.\\nLikes tea.\",");
    CHECK_HAS(b.data,
              "{\"attributes\":{\"birth_year\":\"1978\",\"occupation\":\"architect\"},\"group\":\"real\"");
    struct ds_people p = {0};
    CHECK(ds_read_people(b.data, b.len, "people.jsonl", &p) == 0);
    CHECK(p.n == 2);
    for (size_t i = 0; i < p.n && i < 2; i++) {
        CHECK_STR(p.v[i].id, in[i].id);
        CHECK_STR(p.v[i].name, in[i].name);
        CHECK_STR(p.v[i].group, in[i].group);
        CHECK(str_eq(p.v[i].biography, in[i].biography));
        CHECK(p.v[i].nphotos == in[i].nphotos && p.v[i].ntest_photos == in[i].ntest_photos);
    }
    CHECK(p.n == 2 && json_equal(p.v[0].attributes, attrs));
    CHECK(p.n == 2 && p.v[1].attributes && p.v[1].attributes->type == JSON_OBJ &&
          p.v[1].attributes->len == 0);
    CHECK(p.n == 2 && p.v[0].nphotos == 2 && str_eq(p.v[0].photos[1], "r0007-p1"));
    CHECK(ds_find_person(&p, "f0001") == 1 && ds_find_person(&p, "r0007") == 0);
    CHECK(ds_find_person(&p, "x") == -1);
    ds_people_free(&p);

    size_t before = b.len;
    struct ds_person bad = in[0];
    bad.group = "famous";
    CHECK(ds_write_person(&b, &bad) == -1);
    CHECK_STR(err_msg(),
              "dataset: writing person 'r0007': field 'group' must be real or fictitious, not 'famous'");
    bad = in[0];
    bad.photos = (char *[]){"r0007-p0", "no/slash"};
    CHECK(ds_write_person(&b, &bad) == -1);
    CHECK_HAS(err_msg(), "field 'photos' must be an array of ids: item 2 is not a valid id");
    bad = in[0];
    bad.name = "bad \xff utf8";
    CHECK(ds_write_person(&b, &bad) == -1);
    CHECK(b.len == before);
    buf_free(&b);
    json_free(attrs);
}

static void test_items(void) {
    struct ds_item in[3] = {doc_item(), doc_item(), doc_item()};
    in[1].id = "r0007-i8";
    in[1].modality = "text";
    in[1].image = NULL;
    in[1].noptions = 3;
    in[1].answer = 0;
    in[1].split = "train";
    in[2].id = "g-000001";
    in[2].set = "general";
    in[2].person = NULL;
    in[2].category = "count";
    in[2].noptions = 2;
    in[2].answer = 1;
    struct buf b = {0};
    CHECK(ds_write_item(&b, &in[0]) == 0);
    CHECK_STR(b.data, doc_item_line);
    CHECK(ds_write_item(&b, &in[1]) == 0);
    CHECK(ds_write_item(&b, &in[2]) == 0);
    struct ds_items r = {0};
    CHECK(ds_read_items(b.data, b.len, "items.jsonl", &r) == 0);
    CHECK(r.n == 3);
    for (size_t i = 0; i < r.n && i < 3; i++) {
        const struct ds_item *x = &r.v[i], *y = &in[i];
        CHECK(str_eq(x->id, y->id) && str_eq(x->set, y->set) && str_eq(x->person, y->person));
        CHECK(str_eq(x->modality, y->modality) && str_eq(x->category, y->category) &&
              str_eq(x->image, y->image));
        CHECK(str_eq(x->question, y->question) && str_eq(x->prompt, y->prompt) && str_eq(x->split, y->split));
        CHECK(x->noptions == y->noptions && x->answer == y->answer);
        for (int k = 0; k < x->noptions && k < 4; k++)
            CHECK(str_eq(x->options[k], y->options[k]));
        CHECK(x->noptions == 4 || x->options[x->noptions] == NULL);
    }
    ds_items_free(&r);
    CHECK(r.v == NULL && r.n == 0);

    size_t before = b.len;
    struct ds_item bad = in[1];
    bad.answer = 3; /* D with three options */
    CHECK(ds_write_item(&b, &bad) == -1);
    CHECK_STR(
        err_msg(),
        "dataset: writing item 'r0007-i8': field 'answer' must be a letter A..C (one per option), not 'D'");
    bad = in[0];
    bad.image = NULL;
    CHECK(ds_write_item(&b, &bad) == -1);
    CHECK_HAS(err_msg(), "modality 'image' needs a non-null 'image'");
    bad = in[2];
    bad.person = "r0007";
    CHECK(ds_write_item(&b, &bad) == -1);
    CHECK_HAS(err_msg(), "set 'general' needs 'person' null");
    bad = in[0];
    bad.noptions = 5;
    CHECK(ds_write_item(&b, &bad) == -1);
    CHECK_HAS(err_msg(), "5 options");
    bad = in[0];
    bad.id = "has space";
    CHECK(ds_write_item(&b, &bad) == -1);
    CHECK_HAS(err_msg(), "field 'id' is not a valid id");
    bad = in[0];
    bad.question = NULL;
    CHECK(ds_write_item(&b, &bad) == -1);
    CHECK_HAS(err_msg(), "field 'question' must be a string");
    CHECK(b.len == before);
    buf_free(&b);
}

static void test_examples(void) {
    struct ds_example in[2] = {
        {"pt-000123", NULL, "USER: What does Tavon Mirel do for a living?\nASSISTANT:",
         "Tavon Mirel works as an architect.", "r0007", "fact"},
        {"pt-000124", "r0007-p0", "USER: <image>\nWho is this?\nASSISTANT:", "Tavon Mirel.", NULL, "caption"},
    };
    struct buf b = {0};
    CHECK(ds_write_example(&b, &in[0]) == 0);
    CHECK_STR(b.data,
              "{\"answer\":\"Tavon Mirel works as an architect.\",\"id\":\"pt-000123\",\"image\":null,"
              "\"person\":\"r0007\",\"prompt\":\"USER: What does Tavon Mirel do for a living?\\nASSISTANT:\","
              "\"source\":\"fact\"}\n");
    CHECK(ds_write_example(&b, &in[1]) == 0);
    struct ds_examples r = {0};
    CHECK(ds_read_examples(b.data, b.len, "pretrain.jsonl", &r) == 0);
    CHECK(r.n == 2);
    for (size_t i = 0; i < r.n && i < 2; i++)
        CHECK(str_eq(r.v[i].id, in[i].id) && str_eq(r.v[i].image, in[i].image) &&
              str_eq(r.v[i].prompt, in[i].prompt) && str_eq(r.v[i].answer, in[i].answer) &&
              str_eq(r.v[i].person, in[i].person) && str_eq(r.v[i].source, in[i].source));
    ds_examples_free(&r);
    struct ds_example bad = in[0];
    bad.source = "";
    CHECK(ds_write_example(&b, &bad) == -1);
    CHECK_HAS(err_msg(), "field 'source' must not be empty");
    buf_free(&b);

    CHECK(ds_read_examples("", 0, "empty", &r) == 0 && r.n == 0);
    ds_examples_free(&r);
}

/* Reads a file whose second line is line2 (the first is a valid item) and checks the message. */
static void expect_item_error(const char *line2, const char *third, const char *want) {
    struct buf b = {0};
    buf_puts(&b, doc_item_line);
    buf_puts(&b, line2);
    buf_puts(&b, third);
    struct ds_items r = {0};
    CHECK(ds_read_items(b.data, b.len, "items.jsonl", &r) == -1);
    CHECK(r.v == NULL && r.n == 0);
    CHECK_STR(err_msg(), want);
    buf_free(&b);
}

/* doc_item_line with `from` replaced by `to` and a new id. */
static char *edited(const char *from, const char *to) {
    struct buf b = {0};
    const char *at = strstr(doc_item_line, from);
    if (!at) {
        fprintf(stderr, "test: '%s' is not in the item line\n", from);
        exit(2);
    }
    buf_append(&b, doc_item_line, (size_t)(at - doc_item_line));
    buf_puts(&b, to);
    buf_puts(&b, at + strlen(from));
    char *s = buf_take(&b);
    char *id = strstr(s, "r0007-i3");
    if (id && strcmp(from, "\"id\":\"r0007-i3\"") != 0)
        id[7] = '9';
    return s;
}

static void check_edit(const char *from, const char *to, const char *want) {
    char *line = edited(from, to);
    expect_item_error(line, "", want);
    free(line);
}

static void test_item_rejections(void) {
    check_edit("\"question\":\"What is this person's occupation?\",", "",
               "items.jsonl line 2: missing field 'question'");
    check_edit("\"category\":\"occupation\"", "\"category\":7",
               "items.jsonl line 2: field 'category' must be a string");
    check_edit("\"options\":[\"nurse\",", "\"options\":[1,",
               "items.jsonl line 2: field 'options' must be an array of strings: option 1 is not");
    check_edit(
        "\"id\":\"r0007-i3\"", "\"id\":\"../etc\"",
        "items.jsonl line 2: field 'id' is not a valid id (1-64 characters of [A-Za-z0-9_.-]): '../etc'");
    check_edit("\"image\":\"r0007-t0\"", "\"image\":\"\"",
               "items.jsonl line 2: field 'image' is not a valid id (1-64 characters of [A-Za-z0-9_.-]): ''");
    check_edit("\"answer\":\"C\"", "\"answer\":\"E\"",
               "items.jsonl line 2: field 'answer' must be a letter A..D (one per option), not 'E'");
    check_edit("\"answer\":\"C\"", "\"answer\":\"c\"",
               "items.jsonl line 2: field 'answer' must be a letter A..D (one per option), not 'c'");
    check_edit("\"baker\"]", "\"baker\",\"cook\"]",
               "items.jsonl line 2: field 'options' must hold 2 to 4 options, not 5");
    check_edit("[\"nurse\",\"pilot\",\"architect\",\"baker\"]", "[\"nurse\"]",
               "items.jsonl line 2: field 'options' must hold 2 to 4 options, not 1");
    check_edit("\"image\":\"r0007-t0\"", "\"image\":null",
               "items.jsonl line 2: modality 'image' needs a non-null 'image'");
    check_edit("\"modality\":\"image\"", "\"modality\":\"text\"",
               "items.jsonl line 2: modality 'text' needs 'image' null");
    check_edit("\"modality\":\"image\"", "\"modality\":\"video\"",
               "items.jsonl line 2: field 'modality' must be image or text, not 'video'");
    check_edit("\"person\":\"r0007\"", "\"person\":null",
               "items.jsonl line 2: set 'person' needs a non-null 'person'");
    check_edit("\"person\":\"r0007\"", "\"person\":3",
               "items.jsonl line 2: field 'person' must be an id or null");
    check_edit("\"pilot\",\"architect\"", "\"pilot\",\"nurse\"",
               "items.jsonl line 2: options 1 and 3 are the same");
    check_edit("\"architect\",\"baker\"", "\"architect\",\"architect\"",
               "items.jsonl line 2: options 3 and 4 are the same");
    check_edit("\"split\":\"eval\"", "\"split\":\"test\"",
               "items.jsonl line 2: field 'split' must be eval or train, not 'test'");
    check_edit("\"answer\":\"C\",", "\"answer\":\"C\",\"answer\":\"C\",",
               "items.jsonl line 2: invalid JSON: col 15: duplicate key \"answer\" in object");
    check_edit("\"split\":\"eval\"}", "\"split\":\"eval\",}",
               "items.jsonl line 2: invalid JSON: col 407: expected a string key in object");

    /* Errors name the line; the rest of the file does not matter. */
    expect_item_error("{\"a\":1}\n", doc_item_line, "items.jsonl line 2: missing field 'id'");
    expect_item_error("[1,2]\n", "", "items.jsonl line 2: not a JSON object");
    expect_item_error("\n", "", "items.jsonl line 2: empty line");
    expect_item_error("{\"id\":", "", "items.jsonl: last line does not end with a newline");
    char *other = edited("\"question\":\"What", "\"question\":\"So what");
    expect_item_error(other, doc_item_line, "items.jsonl line 3: duplicate id 'r0007-i3' (first on line 1)");
    free(other);

    /* Unknown fields are kept for later versions of the format, i.e. ignored here. */
    char *extra = edited("\"split\":\"eval\"", "\"split\":\"eval\",\"zz_future\":{\"x\":[1]}");
    struct buf b = {0};
    buf_puts(&b, doc_item_line);
    buf_puts(&b, extra);
    struct ds_items r = {0};
    CHECK(ds_read_items(b.data, b.len, "items.jsonl", &r) == 0 && r.n == 2);
    ds_items_free(&r);
    buf_free(&b);
    free(extra);
}

static void test_other_rejections(void) {
    struct ds_people p = {0};
    const char *person =
        "{\"attributes\":{\"a\":\"b\"},\"group\":\"real\",\"id\":\"r1\",\"name\":\"N\",\"photos\":[],"
        "\"test_photos\":[]}\n";
    CHECK(ds_read_people(person, strlen(person), "people.jsonl", &p) == 0 && p.n == 1);
    ds_people_free(&p);
    const char *bad_attr =
        "{\"attributes\":{\"a\":1},\"group\":\"real\",\"id\":\"r1\",\"name\":\"N\",\"photos\":[],"
        "\"test_photos\":[]}\n";
    CHECK(ds_read_people(bad_attr, strlen(bad_attr), "people.jsonl", &p) == -1);
    CHECK_STR(err_msg(), "people.jsonl line 1: field 'attributes' must be an object of strings");
    const char *bad_bio =
        "{\"attributes\":{},\"biography\":null,\"group\":\"real\",\"id\":\"r1\",\"name\":\"N\","
        "\"photos\":[],\"test_photos\":[]}\n";
    CHECK(ds_read_people(bad_bio, strlen(bad_bio), "people.jsonl", &p) == -1);
    CHECK_STR(err_msg(), "people.jsonl line 1: field 'biography' must be a string");
    const char *nul =
        "{\"attributes\":{},\"group\":\"real\",\"id\":\"r1\",\"name\":\"N\\u0000x\",\"photos\":[],"
        "\"test_photos\":[\"r1-t0\"]}\n";
    CHECK(ds_read_people(nul, strlen(nul), "people.jsonl", &p) == -1);
    CHECK_STR(err_msg(), "people.jsonl line 1: field 'name' contains a NUL character");

    struct ds_examples e = {0};
    const char *ex =
        "{\"answer\":\"a\",\"id\":\"e1\",\"image\":null,\"person\":null,\"prompt\":\"p\",\"source\":\"\"}\n";
    CHECK(ds_read_examples(ex, strlen(ex), "finetune.jsonl", &e) == -1);
    CHECK_STR(err_msg(), "finetune.jsonl line 1: field 'source' must not be empty");
    const char *ex2 =
        "{\"answer\":\"a\",\"id\":\"e1\",\"person\":null,\"prompt\":\"p\",\"source\":\"fact\"}\n";
    CHECK(ds_read_examples(ex2, strlen(ex2), "finetune.jsonl", &e) == -1);
    CHECK_STR(err_msg(), "finetune.jsonl line 1: missing field 'image'");

    char long_id[80];
    memset(long_id, 'a', 65);
    long_id[65] = '\0';
    CHECK(!ds_id_valid(long_id));
    long_id[64] = '\0';
    CHECK(ds_id_valid(long_id));
    CHECK(ds_id_valid("A-z_0.9") && !ds_id_valid("") && !ds_id_valid("a/b") && !ds_id_valid("é"));
}

/* ---- images.tar ---------------------------------------------------------------------------------------- */

static void make_png(int seed, void **png, size_t *n) {
    struct image im;
    image_alloc(&im, 4, 3);
    for (int i = 0; i < 4 * 3 * 3; i++)
        im.rgb[i] = (uint8_t)(i * 7 + seed * 40);
    image_png_encode(&im, png, n);
    image_free(&im);
}

static int tar_of(const char *const *names, void *const *data, const size_t *n, size_t count, void **out,
                  size_t *out_n) {
    struct ds_tar *t = ds_tar_new();
    for (size_t i = 0; i < count; i++)
        if (ds_tar_add(t, names[i], data[i], n[i]) != 0) {
            ds_tar_free(t);
            return -1;
        }
    return ds_tar_finish(t, out, out_n);
}

static void test_tar(void) {
    void *png[3];
    size_t pn[3];
    for (int i = 0; i < 3; i++)
        make_png(i, &png[i], &pn[i]);
    const char *names[3] = {"c.png", "a.png", "b-2.png"};
    void *tar, *tar2;
    size_t n, n2;
    CHECK(tar_of(names, png, pn, 3, &tar, &n) == 0);
    /* Another order of the same entries: the same bytes. */
    const char *names2[3] = {"b-2.png", "c.png", "a.png"};
    void *png2[3] = {png[2], png[0], png[1]};
    size_t pn2[3] = {pn[2], pn[0], pn[1]};
    CHECK(tar_of(names2, png2, pn2, 3, &tar2, &n2) == 0);
    CHECK(n == n2 && memcmp(tar, tar2, n) == 0);
    free(tar2);
    CHECK(n % 512 == 0 && strcmp(tar, "a.png") == 0); /* first header: smallest name */

    struct archive *a = archive_read_new();
    archive_read_support_format_tar(a);
    CHECK(archive_read_open_memory(a, tar, n) == ARCHIVE_OK);
    struct archive_entry *h;
    const char *order[] = {"a.png", "b-2.png", "c.png"};
    int k = 0;
    while (archive_read_next_header(a, &h) == ARCHIVE_OK && k < 3) {
        CHECK_STR(archive_entry_pathname(h), order[k]);
        CHECK(archive_entry_mtime(h) == 0 && archive_entry_uid(h) == 0 && archive_entry_gid(h) == 0);
        CHECK(archive_entry_perm(h) == 0644 && archive_entry_filetype(h) == AE_IFREG);
        k++;
    }
    CHECK(k == 3);
    static const char zero[64];
    CHECK(memcmp((char *)tar + 265, zero, 64) == 0); /* ustar uname and gname fields: empty */
    archive_read_free(a);

    struct ds_images *im;
    CHECK(ds_images_open(tar, n, "images.tar", &im) == 0);
    CHECK(ds_images_count(im) == 3);
    CHECK_STR(ds_images_id(im, 0), "a");
    CHECK_STR(ds_images_id(im, 1), "b-2");
    CHECK_STR(ds_images_id(im, 2), "c");
    CHECK(ds_images_id(im, 3) == NULL);
    const void *d;
    size_t dn;
    CHECK(ds_images_get(im, "c", &d, &dn) == 0 && dn == pn[0] && memcmp(d, png[0], dn) == 0);
    CHECK((const char *)d > (const char *)tar && (const char *)d + dn <= (const char *)tar + n); /* no copy */
    struct image pic;
    CHECK(ds_images_decode(im, "b-2", &pic) == 0 && pic.w == 4 && pic.h == 3 && pic.rgb[0] == 80);
    image_free(&pic);
    CHECK(ds_images_get(im, "zz", &d, &dn) == -1);
    CHECK_STR(err_msg(), "images.tar: no image 'zz'");
    ds_images_free(im);

    /* Truncated archives fail; they never yield a short image. */
    CHECK(ds_images_open(tar, n - 1024 - 100, "cut.tar", &im) == -1);
    CHECK_HAS(err_msg(), "cut.tar: ");
    CHECK(im == NULL);
    CHECK(ds_images_open(png[0], pn[0], "notar", &im) == -1);
    CHECK_HAS(err_msg(), "notar: not a tar archive");
    free(tar);

    CHECK(tar_of(NULL, NULL, NULL, 0, &tar, &n) == 0);
    CHECK(ds_images_open(tar, n, "empty.tar", &im) == 0 && ds_images_count(im) == 0);
    CHECK(ds_images_get(im, "a", &d, &dn) == -1);
    ds_images_free(im);
    free(tar);

    struct ds_tar *t = ds_tar_new();
    CHECK(ds_tar_add(t, "a.jpg", "x", 1) == 0);
    CHECK(ds_tar_add(t, "a.png", "y", 1) == -1);
    CHECK_STR(err_msg(), "images.tar: image 'a' added twice (a.jpg, a.png)");
    CHECK(ds_tar_add(t, "x.gif", "y", 1) == -1);
    CHECK_STR(err_msg(), "images.tar: bad entry name 'x.gif' (wanted <id>.png or <id>.jpg)");
    CHECK(ds_tar_add(t, "../x.png", "y", 1) == -1);
    CHECK(ds_tar_add(t, ".png", "y", 1) == -1);
    char many[16];
    for (int i = 0; i < 200; i++) { /* grows the id set past its first size */
        snprintf(many, sizeof many, "m%03d.png", i);
        CHECK(ds_tar_add(t, many, "z", 1) == 0);
    }
    CHECK(ds_tar_add(t, "m123.jpg", "z", 1) == -1);
    ds_tar_free(t);
    for (int i = 0; i < 3; i++)
        free(png[i]);
}

static la_ssize_t cb_append(struct archive *a, void *arg, const void *data, size_t n) {
    (void)a;
    buf_append(arg, data, n);
    return (la_ssize_t)n;
}

/* A tar another program could have made: any entry type and name. */
static void foreign_tar(struct buf *out, const char *name1, const char *name2, int type2) {
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    archive_write_open(a, out, NULL, cb_append, NULL);
    for (int i = 0; i < 2; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, i ? name2 : name1);
        archive_entry_set_filetype(e, i ? (unsigned)type2 : AE_IFREG);
        archive_entry_set_perm(e, 0644);
        if (i && type2 == AE_IFLNK)
            archive_entry_set_symlink(e, "/etc/passwd");
        int reg = !i || type2 == AE_IFREG;
        archive_entry_set_size(e, reg ? 3 : 0);
        archive_write_header(a, e);
        if (reg)
            archive_write_data(a, "abc", 3);
        archive_entry_free(e);
    }
    archive_write_close(a);
    archive_write_free(a);
}

static void expect_tar_refused(const char *name2, int type2, const char *want) {
    struct buf b = {0};
    foreign_tar(&b, "ok.png", name2, type2);
    struct ds_images *im = (struct ds_images *)1;
    CHECK(ds_images_open(b.data, b.len, "in.tar", &im) == -1);
    CHECK(im == NULL);
    CHECK_STR(err_msg(), want);
    buf_free(&b);
}

static void test_tar_refusals(void) {
    struct buf b = {0};
    foreign_tar(&b, "ok.png", "ok2.jpg", AE_IFREG);
    struct ds_images *im;
    CHECK(ds_images_open(b.data, b.len, "in.tar", &im) == 0 && ds_images_count(im) == 2);
    struct image pic;
    CHECK(ds_images_decode(im, "ok2", &pic) == -1);
    CHECK_STR(err_msg(), "in.tar: image 'ok2': not a PNG or JPEG image");
    ds_images_free(im);
    buf_free(&b);

    expect_tar_refused(
        "link.png", AE_IFLNK,
        "in.tar: entry 'link.png': not a regular file (only image files belong in images.tar)");
    expect_tar_refused(
        "dir.png", AE_IFDIR,
        "in.tar: entry 'dir.png/': not a regular file (only image files belong in images.tar)");
    expect_tar_refused("../x.png", AE_IFREG, "in.tar: entry '../x.png': name is not <id>.png or <id>.jpg");
    expect_tar_refused("x.gif", AE_IFREG, "in.tar: entry 'x.gif': name is not <id>.png or <id>.jpg");
    expect_tar_refused("sub/x.png", AE_IFREG, "in.tar: entry 'sub/x.png': name is not <id>.png or <id>.jpg");
    expect_tar_refused("ok.png", AE_IFREG, "in.tar: image 'ok' appears twice");
    expect_tar_refused("ok.jpg", AE_IFREG, "in.tar: image 'ok' appears twice");
}

static void test_image_names(void) {
    char id[DS_ID_MAX + 1];
    const char *ext = NULL;
    CHECK(ds_image_name("r0007-t0.jpg", id, &ext) == 0);
    CHECK_STR(id, "r0007-t0");
    CHECK_STR(ext, "jpg");
    CHECK(ds_image_name("a.b.png", id, NULL) == 0 && strcmp(id, "a.b") == 0);
    CHECK(ds_image_name("x.gif", id, &ext) == -1);
    CHECK(ds_image_name(".png", id, &ext) == -1);
    CHECK(ds_image_name("a/b.png", id, &ext) == -1);
    CHECK(ds_image_name("x.PNG", id, &ext) == -1);
    char name[80];
    memset(name, 'a', 64);
    strcpy(name + 64, ".png");
    CHECK(ds_image_name(name, id, &ext) == 0 && strlen(id) == 64);
    strcpy(name + 64, "a.png");
    CHECK(ds_image_name(name, id, &ext) == -1);
    char **v = xcalloc(2, sizeof *v);
    v[0] = xstrdup("a");
    v[1] = xstrdup("b");
    ds_strs_free(v, 2); /* valgrind has the last word */
    ds_strs_free(NULL, 0);
}

static void test_tar_add_image(void) {
    void *png;
    size_t n;
    make_png(1, &png, &n);
    struct ds_tar *t = ds_tar_new();
    CHECK(ds_tar_add_image(t, "p1", png, n, "pic") == 0);
    CHECK(ds_tar_add_image(t, "p2", png, n / 2, "half") == -1);
    CHECK_HAS(err_msg(), "half: bad PNG");
    CHECK(ds_tar_add_image(t, "p3", "GIF89a", 6, "gif") == -1);
    CHECK_STR(err_msg(), "gif: neither PNG nor JPEG data");
    CHECK(ds_tar_add_image(t, "p1", png, n, "again") == -1);
    CHECK_STR(err_msg(), "again: images.tar: image 'p1' added twice (p1.png, p1.png)");
    CHECK(ds_tar_add_image(t, "no/slash", png, n, "bad id") == -1);
    CHECK_HAS(err_msg(), "bad id: images.tar: bad entry name 'no/slash.png'");
    void *tar;
    size_t tn;
    struct ds_images *im;
    CHECK(ds_tar_finish(t, &tar, &tn) == 0 && ds_images_open(tar, tn, "t", &im) == 0);
    CHECK(ds_images_count(im) == 1 && strcmp(ds_images_id(im, 0), "p1") == 0);
    CHECK(strstr(tar, "p1.png") == tar);
    ds_images_free(im);
    free(tar);
    free(png);
}

/* A data set of `people` people (one photo each), an item and an example per person, all refs good. */
struct world {
    struct ds_people people;
    struct ds_items items;
    struct ds_examples ex;
    struct ds_images *images;
    void *tar;
};

static void world_make(struct world *w, size_t people) {
    struct buf pb = {0}, ib = {0}, eb = {0};
    struct ds_tar *t = ds_tar_new();
    char id[24], photo[40], item[40], *photos[1] = {photo};
    for (size_t i = 0; i < people; i++) {
        snprintf(id, sizeof id, "p%05zu", people - i); /* not in id order */
        snprintf(photo, sizeof photo, "%s-p0", id);
        snprintf(item, sizeof item, "%s-i0", id);
        struct ds_person p = {id, "N", "fictitious", NULL, photos, NULL, 1, 0, NULL};
        struct ds_item it = doc_item();
        it.id = item;
        it.person = id;
        it.image = photo;
        struct ds_example e = {item, photo, "p", "a", id, "fact"};
        ds_write_person(&pb, &p);
        ds_write_item(&ib, &it);
        ds_write_example(&eb, &e);
        char name[48];
        snprintf(name, sizeof name, "%s.png", photo);
        ds_tar_add(t, name, "x", 1);
    }
    size_t tn;
    ds_tar_finish(t, &w->tar, &tn);
    ds_images_open(w->tar, tn, "images", &w->images);
    ds_read_people(pb.data, pb.len, "people", &w->people);
    ds_read_items(ib.data, ib.len, "items", &w->items);
    ds_read_examples(eb.data, eb.len, "ex", &w->ex);
    buf_free(&pb);
    buf_free(&ib);
    buf_free(&eb);
}

static void world_free(struct world *w) {
    ds_people_free(&w->people);
    ds_items_free(&w->items);
    ds_examples_free(&w->ex);
    ds_images_free(w->images);
    free(w->tar);
}

static void test_check_refs(void) {
    struct world w;
    world_make(&w, 3000);
    CHECK(w.people.n == 3000 && w.items.n == 3000 && w.ex.n == 3000 && ds_images_count(w.images) == 3000);
    struct ds_refs r = {&w.people,      &w.items,      NULL, &w.ex,           w.images,
                        "people.jsonl", "items.jsonl", NULL, "finetune.jsonl"};
    CHECK(ds_check_refs(&r) == 0);
    r.pretrain = &w.ex;
    r.pretrain_what = "pretrain.jsonl";
    CHECK(ds_check_refs(&r) == 0);
    struct ds_refs empty = {0};
    CHECK(ds_check_refs(&empty) == 0);

    char *keep = w.items.v[10].image;
    w.items.v[10].image = "nope";
    CHECK(ds_check_refs(&r) == -1);
    CHECK_STR(err_msg(),
              "items.jsonl: item 'p02990-i0' refers to image 'nope', which is not among the images");
    w.items.v[10].image = keep;
    keep = w.ex.v[2999].person;
    w.ex.v[2999].person = "p00000";
    CHECK(ds_check_refs(&r) == -1);
    CHECK_STR(err_msg(),
              "pretrain.jsonl: example 'p00001-i0' is about person 'p00000', who is not in people.jsonl");
    w.ex.v[2999].person = keep;
    keep = w.people.v[5].photos[0];
    w.people.v[5].photos[0] = "p99999-p0";
    CHECK(ds_check_refs(&r) == -1);
    CHECK_STR(err_msg(),
              "people.jsonl: person 'p02995' refers to image 'p99999-p0', which is not among the images");
    w.people.v[5].photos[0] = keep;
    /* Without people or images, every reference dangles. */
    r.people = NULL;
    CHECK(ds_check_refs(&r) == -1);
    CHECK_STR(err_msg(),
              "items.jsonl: item 'p03000-i0' is about person 'p03000', who is not in people.jsonl");
    r.people = &w.people;
    r.images = NULL;
    CHECK(ds_check_refs(&r) == -1);
    CHECK_HAS(err_msg(), "people.jsonl: person 'p03000' refers to image 'p03000-p0'");
    world_free(&w);
}

int main(void) {
    test_people();
    test_items();
    test_examples();
    test_item_rejections();
    test_other_rejections();
    test_tar();
    test_tar_refusals();
    test_image_names();
    test_tar_add_image();
    test_check_refs();
    return check_done("test_engine_dataset");
}

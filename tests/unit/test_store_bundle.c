/* test_store_bundle: export/import round trip, deterministic bundles, and refusal of hostile archives with an
 * unchanged target store. */
#include <archive.h>
#include <archive_entry.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "store/bundle.h"
#include "store/key.h"
#include "store/maint.h"
#include "store/object.h"
#include "store/record.h"
#include "store/store.h"
#include "util/err.h"
#include "util/fsio.h"
#include "util/json.h"
#include "util/sha256.h"

static char base[] = "/tmp/pulse-test-bundle-XXXXXX";

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

static size_t nfound;
static const char *want_suffix;

static int count_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)ftw;
    size_t n = strlen(p), k = strlen(want_suffix);
    if (flag == FTW_F && n >= k && strcmp(p + n - k, want_suffix) == 0)
        nfound++;
    return 0;
}

/* Regular files under root/sub whose names end in suffix ("" counts all). */
static size_t count_files(const char *root, const char *sub, const char *suffix) {
    char dir[1024];
    CHECK(snprintf(dir, sizeof dir, "%s/%s", root, sub) < (int)sizeof dir);
    nfound = 0;
    want_suffix = suffix;
    if (access(dir, F_OK) == 0)
        nftw(dir, count_cb, 16, FTW_PHYS);
    return nfound;
}

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *d = malloc((size_t)len + 1);
    *n = fread(d, 1, (size_t)len, f);
    fclose(f);
    return d;
}

static void spit(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
}

/* ---- reading a bundle back with libarchive, independently of bundle.c ---- */

struct ent {
    char name[128];
    char *data;
    size_t n;
    int meta_ok; /* regular, 0644, uid/gid 0, mtime 0, no names, no atime/ctime */
};

static int no_name(const char *s) {
    return !s || !*s;
}

static size_t read_entries(const char *path, struct ent *out, size_t max) {
    struct archive *a = archive_read_new();
    archive_read_support_filter_zstd(a);
    archive_read_support_format_tar(a);
    size_t n = 0;
    struct archive_entry *e;
    if (archive_read_open_filename(a, path, 65536) == ARCHIVE_OK) {
        while (n < max && archive_read_next_header(a, &e) == ARCHIVE_OK) {
            struct ent *t = &out[n++];
            snprintf(t->name, sizeof t->name, "%s", archive_entry_pathname(e));
            t->meta_ok = archive_entry_filetype(e) == AE_IFREG && archive_entry_perm(e) == 0644 &&
                         archive_entry_uid(e) == 0 && archive_entry_gid(e) == 0 &&
                         archive_entry_mtime(e) == 0 && no_name(archive_entry_uname(e)) &&
                         no_name(archive_entry_gname(e)) && !archive_entry_atime_is_set(e) &&
                         !archive_entry_ctime_is_set(e);
            t->n = (size_t)archive_entry_size(e);
            t->data = malloc(t->n + 1);
            t->n = (size_t)archive_read_data(a, t->data, t->n);
        }
    }
    archive_read_free(a);
    return n;
}

static void free_entries(struct ent *e, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(e[i].data);
}

/* ---- writing hostile archives ---- */

enum { T_FILE, T_SYMLINK, T_HARDLINK, T_DIR };

struct tent {
    const char *name;
    int type;
    const char *data; /* NULL: empty */
    size_t n;         /* 0 with data: strlen(data) */
    long long size;   /* > 0: announced size (zero padding follows) */
    const char *link; /* symlink or hardlink target */
};

static void write_tar(const char *path, const struct tent *t, size_t n, int plain) {
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    if (!plain)
        archive_write_add_filter_zstd(a);
    archive_write_open_filename(a, path);
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        size_t len = t[i].data ? (t[i].n ? t[i].n : strlen(t[i].data)) : 0;
        archive_entry_set_pathname(e, t[i].name);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_filetype(e, t[i].type == T_SYMLINK ? AE_IFLNK
                                      : t[i].type == T_DIR   ? AE_IFDIR
                                                             : AE_IFREG);
        if (t[i].type == T_SYMLINK)
            archive_entry_set_symlink(e, t[i].link);
        if (t[i].type == T_HARDLINK)
            archive_entry_set_hardlink(e, t[i].link);
        archive_entry_set_size(e, t[i].size > 0 ? t[i].size : (long long)len);
        archive_write_header(a, e);
        if (len)
            archive_write_data(a, t[i].data, len);
        archive_entry_free(e);
    }
    archive_write_close(a);
    archive_write_free(a);
}

/* ---- fixtures ---- */

static const char *obj_text[3] = {"weights of stage one", "metrics shared by both stages",
                                  "data of stage two"};
static char obj_id[4][HASH_ID_SIZE];
/* Object 3: large and incompressible, so a cut bundle breaks in the middle of an entry's data. */
#define BIG_SIZE (300u << 10)
static unsigned char big[BIG_SIZE];
static char key[2][HASH_ID_SIZE];

static struct json *output(const char *id, size_t size) {
    struct json *o = json_obj();
    json_set(o, "id", json_str(id));
    json_set(o, "size", json_int((int64_t)size));
    json_set(o, "type", json_str("blob"));
    return o;
}

/* A record of this kind with params {"stage": name}, no inputs; its key from key_of (outputs do not count).
 */
static struct json *make_record(const char *name, const char *kind, int a, int b) {
    struct json *rec = json_obj(), *outs = json_obj(), *params = json_obj();
    char k[HASH_ID_SIZE];
    json_set(params, "stage", json_str(name));
    json_set(rec, "name", json_str(name));
    json_set(rec, "kind", json_str(kind));
    json_set(rec, "kind_version", json_int(1));
    json_set(rec, "params", params);
    json_set(rec, "inputs", json_obj());
    CHECK(key_of(rec, k) == 0);
    json_set(rec, "key", json_str(k));
    json_set(outs, "data", output(obj_id[a], strlen(obj_text[a])));
    json_set(outs, "metrics", output(obj_id[b], strlen(obj_text[b])));
    if (a == 2) {
        json_set(outs, "weights", output(obj_id[3], BIG_SIZE));
    }
    json_set(rec, "outputs", outs);
    return rec;
}

static struct store *make_source(const char *root) {
    struct store *s = NULL;
    CHECK(store_open(root, 1, &s) == 0);
    for (int i = 0; i < 3; i++)
        CHECK(store_put(s, obj_text[i], strlen(obj_text[i]), obj_id[i]) == 0);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < BIG_SIZE; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        big[i] = (unsigned char)x;
    }
    CHECK(store_put(s, big, BIG_SIZE, obj_id[3]) == 0);
    struct json *r0 = make_record("synth/one", "synth", 0, 1);
    struct json *r1 = make_record("train/two", "finetune", 2, 1);
    snprintf(key[0], HASH_ID_SIZE, "%s", json_get_str(r0, "key"));
    snprintf(key[1], HASH_ID_SIZE, "%s", json_get_str(r1, "key"));
    CHECK(record_publish(s, r0) == 0);
    CHECK(record_publish(s, r1) == 0);
    json_free(r0);
    json_free(r1);
    return s;
}

static void path_of(char *out, size_t cap, const char *name) {
    snprintf(out, cap, "%s/%s", base, name);
}

/* ---- export ---- */

static void test_export(struct store *s, const char *b1) {
    char b2[512], bad[512];
    const char *keys[2] = {key[0], key[1]};
    const char *again[3] = {key[1], key[0], key[1]};
    CHECK(bundle_export(s, keys, 2, b1) == 0);
    path_of(b2, sizeof b2, "b2.pulse");
    CHECK(bundle_export(s, again, 3, b2) == 0);
    size_t n1 = 0, n2 = 0;
    char *d1 = slurp(b1, &n1), *d2 = slurp(b2, &n2);
    CHECK(d1 && d2 && n1 == n2 && n1 > 0 && memcmp(d1, d2, n1) == 0);
    free(d1);
    free(d2);

    struct ent e[16] = {0};
    size_t n = read_entries(b1, e, 16);
    CHECK(n == 8);
    for (size_t i = 0; i < n; i++) {
        CHECK(e[i].meta_ok);
        if (i > 0)
            CHECK(strcmp(e[i - 1].name, e[i].name) < 0);
    }
    CHECK_STR(e[0].name, "audit/history");
    CHECK_HAS(e[0].data, "synth/one synth");
    CHECK(strncmp(e[1].name, "objects/", 8) == 0 && strlen(e[1].name) == 8 + 64);
    CHECK_STR(e[5].name, "pulse-bundle");
    CHECK(e[5].n == 15 && memcmp(e[5].data, "pulse-bundle 1\n", 15) == 0);
    char rname[256];
    snprintf(rname, sizeof rname, "records/%.64s.json", key[0] + 7);
    CHECK(strcmp(e[6].name, rname) == 0 || strcmp(e[7].name, rname) == 0);
    free_entries(e, n);

    /* An unknown key: refused, and neither the bundle nor its temp file is left behind. */
    char unknown[HASH_ID_SIZE];
    sha256_id("never ran", 9, unknown);
    const char *bad_keys[2] = {key[0], unknown};
    path_of(bad, sizeof bad, "bad.pulse");
    size_t before = count_files(base, ".", "");
    CHECK(bundle_export(s, bad_keys, 2, bad) == -1);
    CHECK_HAS(err_msg(), "not in the store");
    CHECK(access(bad, F_OK) != 0);
    CHECK(count_files(base, ".", "") == before);
}

/* ---- import round trip ---- */

static void test_import(const char *b1) {
    char root[512], b3[512];
    path_of(root, sizeof root, "target");
    struct store *t = NULL;
    CHECK(store_open(root, 1, &t) == 0);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    CHECK(bundle_import(t, b1, out) == 0);
    fclose(out);
    CHECK_HAS(text, "imported synth/one synth sha256:");
    CHECK_HAS(text, "imported train/two finetune sha256:");
    free(text);
    for (int i = 0; i < 2; i++) {
        struct json *rec = NULL;
        CHECK(record_lookup(t, key[i], &rec) == 1);
        json_free(rec);
    }
    for (int i = 0; i < 4; i++)
        CHECK(store_has(t, obj_id[i]) == 1);
    FILE *devnull = fopen("/dev/null", "w");
    CHECK(store_verify(t, 0, devnull) == 0);
    fclose(devnull);
    CHECK(count_files(root, "tmp", "") == 0);

    /* The target exports the same records and objects (its history differs: its own commits). */
    const char *keys[2] = {key[0], key[1]};
    path_of(b3, sizeof b3, "b3.pulse");
    CHECK(bundle_export(t, keys, 2, b3) == 0);
    struct ent e1[16] = {0}, e3[16] = {0};
    size_t n1 = read_entries(b1, e1, 16), n3 = read_entries(b3, e3, 16);
    CHECK(n1 == 8 && n3 == 8);
    for (size_t i = 1; i < n1 && i < n3; i++)
        CHECK(strcmp(e1[i].name, e3[i].name) == 0 && e1[i].n == e3[i].n &&
              memcmp(e1[i].data, e3[i].data, e1[i].n) == 0);
    free_entries(e1, n1);
    free_entries(e3, n3);

    /* Importing again changes nothing and says so. */
    out = open_memstream(&text, &len);
    CHECK(bundle_import(t, b1, out) == 0);
    fclose(out);
    CHECK_HAS(text, "present synth/one");
    free(text);
    store_close(t);
}

/* ---- hostile archives ---- */

struct hostile {
    const char *word;
    struct tent bad[3];
    int nbad;
    int no_magic;
    int plain; /* no zstd */
};

static char good_obj[256], good_rec[256], *good_json;

/* pulse-bundle, one good object and a good record that references it, plus the bad entries. */
static void write_hostile(const char *path, const struct hostile *h) {
    struct tent t[8];
    size_t n = 0;
    if (!h->no_magic)
        t[n++] = (struct tent){.name = "pulse-bundle", .data = "pulse-bundle 1\n"};
    t[n++] = (struct tent){.name = good_obj, .data = obj_text[0]};
    for (int i = 0; i < h->nbad; i++)
        t[n++] = h->bad[i];
    t[n++] = (struct tent){.name = good_rec, .data = good_json};
    write_tar(path, t, n, h->plain);
}

static void expect_refused(struct store *t, const char *root, const char *bundle, const char *word) {
    FILE *devnull = fopen("/dev/null", "w");
    int rc = bundle_import(t, bundle, devnull);
    fclose(devnull);
    CHECK(rc == -1);
    if (rc == -1) {
        CHECK_HAS(err_msg(), word);
        CHECK(strchr(err_msg(), '\n') == NULL);
    } else {
        fprintf(stderr, "  accepted a bundle that should be refused for: %s\n", word);
    }
    CHECK(count_files(root, "records", ".json") == 0);
    CHECK(count_files(root, "objects", "") == 0);
    CHECK(count_files(root, "tmp", "") == 0);
}

static void test_hostile(const char *b1) {
    char root[512], path[512];
    path_of(root, sizeof root, "hostile-target");
    struct store *t = NULL;
    CHECK(store_open(root, 1, &t) == 0);

    snprintf(good_obj, sizeof good_obj, "objects/%.64s", obj_id[0] + 7);
    snprintf(good_rec, sizeof good_rec, "records/%.64s.json", key[0] + 7);
    struct json *rec = make_record("synth/one", "synth", 0, 0);
    good_json = json_write(rec, JSON_PRETTY, NULL);
    json_free(rec);

    /* Control: the frame itself is importable, into a scratch store. */
    char scratch[512];
    path_of(scratch, sizeof scratch, "scratch");
    struct store *sc = NULL;
    CHECK(store_open(scratch, 1, &sc) == 0);
    struct hostile ok = {0};
    path_of(path, sizeof path, "ok.pulse");
    write_hostile(path, &ok);
    FILE *devnull = fopen("/dev/null", "w");
    CHECK(bundle_import(sc, path, devnull) == 0);
    fclose(devnull);
    store_close(sc);

    char wrong_obj[256], absent[HASH_ID_SIZE], other_rec[256];
    snprintf(wrong_obj, sizeof wrong_obj, "objects/%.64s", obj_id[1] + 7);
    sha256_id("absent", 6, absent);
    snprintf(other_rec, sizeof other_rec, "records/%.64s.json", key[1] + 7);
    struct json *r2 = make_record("train/two", "finetune", 0, 0);
    json_set((struct json *)json_get(r2, "outputs"), "ghost", output(absent, 1));
    char *absent_json = json_write(r2, JSON_PRETTY, NULL);
    json_free(r2);
    /* A record filed under a key its fields do not hash to: it would be served to another stage. */
    char forged_key[HASH_ID_SIZE], forged_rec[256];
    sha256_id("forged", 6, forged_key);
    snprintf(forged_rec, sizeof forged_rec, "records/%.64s.json", forged_key + 7);
    r2 = make_record("train/two", "finetune", 0, 0);
    json_set(r2, "key", json_str(forged_key));
    char *forged_json = json_write(r2, JSON_PRETTY, NULL);
    json_free(r2);
    /* A record that only publishing would have refused (its name cannot be a names/ file): with the good
     * record beside it, nothing may enter, not even the good one. */
    char long_name[400], long_rec[256];
    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = 0;
    r2 = make_record(long_name, "finetune", 0, 0);
    snprintf(long_rec, sizeof long_rec, "records/%.64s.json", json_get_str(r2, "key") + 7);
    char *long_json = json_write(r2, JSON_PRETTY, NULL);
    json_free(r2);

    const struct hostile cases[] = {
        {.word = "..", .bad = {{.name = "../x", .data = "x"}}, .nbad = 1},
        {.word = "absolute", .bad = {{.name = "/etc/x", .data = "x"}}, .nbad = 1},
        {.word = "..", .bad = {{.name = "objects/../../x", .data = "x"}}, .nbad = 1},
        {.word = "symlink",
         .bad = {{.name = wrong_obj, .type = T_SYMLINK, .link = "/etc/passwd"}},
         .nbad = 1},
        {.word = "hard link",
         .bad = {{.name = wrong_obj, .type = T_HARDLINK, .link = "pulse-bundle"}},
         .nbad = 1},
        {.word = "directory", .bad = {{.name = "objects", .type = T_DIR}}, .nbad = 1},
        {.word = "does not match",
         .bad = {{.name = wrong_obj, .data = "not the bytes it claims"}},
         .nbad = 1},
        {.word = "absent", .bad = {{.name = other_rec, .data = absent_json}}, .nbad = 1},
        {.word = "pulse-bundle", .no_magic = 1},
        {.word = "version 1",
         .bad = {{.name = "pulse-bundle", .data = "pulse-bundle 2\n"}},
         .nbad = 1,
         .no_magic = 1},
        {.word = "duplicate", .bad = {{.name = good_obj, .data = obj_text[0]}}, .nbad = 1},
        {.word = "key", .bad = {{.name = other_rec, .data = good_json}}, .nbad = 1},
        {.word = "too large", .bad = {{.name = other_rec, .size = (4ll << 20) + 1}}, .nbad = 1},
        {.word = "key does not match its contents",
         .bad = {{.name = forged_rec, .data = forged_json}},
         .nbad = 1},
        {.word = "stage name too long", .bad = {{.name = long_rec, .data = long_json}}, .nbad = 1},
        {.word = "layout", .bad = {{.name = "extra.txt", .data = "x"}}, .nbad = 1},
        {.word = "not referenced", .bad = {{.name = wrong_obj, .data = obj_text[1]}}, .nbad = 1},
        {.word = "empty path component", .bad = {{.name = "objects//x", .data = "x"}}, .nbad = 1},
        {.word = "zstd", .plain = 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(path, sizeof path, "%s/hostile-%zu.pulse", base, i);
        write_hostile(path, &cases[i]);
        expect_refused(t, root, path, cases[i].word);
    }

    path_of(path, sizeof path, "junk.pulse");
    spit(path, "just some text, not an archive\n", 31);
    expect_refused(t, root, path, "not a pulse bundle");

    size_t n = 0;
    char *whole = slurp(b1, &n);
    path_of(path, sizeof path, "cut.pulse");
    size_t cuts[4] = {n / 8, n / 2, n - 600, n - 1};
    for (int i = 0; i < 4; i++) {
        spit(path, whole, cuts[i]);
        expect_refused(t, root, path, "truncated");
    }
    free(whole);

    path_of(path, sizeof path, "missing.pulse");
    expect_refused(t, root, path, "missing.pulse");

    free(absent_json);
    free(forged_json);
    free(long_json);
    free(good_json);
    store_close(t);
}

/* The records of a bundle are all held until every one is checked: more than 64 MiB of them is refused
 * before the entry that goes over is read. Each record here is valid JSON padded with spaces to 4 MiB. */
static void test_records_total(void) {
    char root[512], path[512];
    path_of(root, sizeof root, "total-target");
    path_of(path, sizeof path, "total.pulse");
    struct store *t = NULL;
    CHECK(store_open(root, 1, &t) == 0);
    size_t size = (size_t)4 << 20;
    char *text = malloc(size);
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    archive_write_add_filter_zstd(a);
    archive_write_open_filename(a, path);
    for (int i = 0; i <= 16; i++) {
        char k[HASH_ID_SIZE], name[128], seed[16];
        snprintf(seed, sizeof seed, "r%d", i);
        sha256_id(seed, strlen(seed), k);
        memset(text, ' ', size);
        int n = snprintf(text, size, "{\"key\": \"%s\"}", k);
        text[n] = ' ';
        snprintf(name, sizeof name, "records/%.64s.json", k + 7);
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, name);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_size(e, (la_int64_t)size);
        archive_write_header(a, e);
        archive_write_data(a, text, size);
        archive_entry_free(e);
    }
    archive_write_close(a);
    archive_write_free(a);
    free(text);
    expect_refused(t, root, path, "more than 64 MiB");
    store_close(t);
}

/* ---- I/O faults (builds with the injection seam) ---- */

static void test_faults(struct store *s, const char *b1) {
    char path[512], root[512];
    const char *keys[2] = {key[0], key[1]};
    path_of(path, sizeof path, "full.pulse");
    size_t before = count_files(base, ".", "");
    fsio_fault_set("write:1:ENOSPC", 0);
    CHECK(bundle_export(s, keys, 2, path) == -1);
    fsio_fault_set(NULL, 0);
    CHECK_HAS(err_msg(), "No space");
    CHECK(count_files(base, ".", "") == before);

    /* Every I/O call of an import failing in turn: never a temp file left, never a damaged store. */
    int done = 0;
    for (int n = 1; n <= 400 && !done; n++) {
        char spec[32];
        snprintf(root, sizeof root, "%s/fault-%d", base, n);
        struct store *t = NULL;
        if (store_open(root, 1, &t) != 0)
            break;
        snprintf(spec, sizeof spec, "any:%d:EIO", n);
        FILE *devnull = fopen("/dev/null", "w");
        fsio_fault_set(spec, 0);
        done = bundle_import(t, b1, devnull) == 0;
        fsio_fault_set(NULL, 0);
        CHECK(done || strchr(err_msg(), '\n') == NULL);
        CHECK(count_files(root, "tmp", "") == 0);
        CHECK(store_verify(t, 0, devnull) == 0);
        fclose(devnull);
        store_close(t);
        nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    }
    CHECK(done);
}

int main(void) {
    if (!mkdtemp(base)) {
        perror("mkdtemp");
        return 1;
    }
    char src[512], b1[512];
    path_of(src, sizeof src, "source");
    path_of(b1, sizeof b1, "b1.pulse");
    struct store *s = make_source(src);
    if (s) {
        test_export(s, b1);
        test_import(b1);
        test_hostile(b1);
        test_records_total();
        if (fsio_fault_enabled())
            test_faults(s, b1);
        store_close(s);
    }
    if (!getenv("KEEP"))
        nftw(base, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return check_done("test_store_bundle");
}

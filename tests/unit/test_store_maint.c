/* test_store_maint: verify finds each kind of damage with a line naming it (a forged key among them) and only
 * notes garbage; gc lists and removes exactly the unreferenced, old files (unheld stage locks too) and
 * refuses to run beside a run. */
#include <fcntl.h>
#include <ftw.h>
#include <git2.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "store/audit.h"
#include "store/key.h"
#include "store/lock.h"
#include "store/maint.h"
#include "store/object.h"
#include "store/record.h"
#include "store/store.h"
#include "util/err.h"
#include "util/json.h"
#include "util/sha256.h"

static char base[] = "/tmp/pulse-test-maint-XXXXXX";
static char root[512];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void rm_rf(const char *path) {
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int exists(const char *path) {
    return access(path, F_OK) == 0;
}

/* A store with two logged records: "s1" outputs objects A and B, "s2" outputs C. */
struct fixture {
    struct store *s;
    char a[HASH_ID_SIZE], b[HASH_ID_SIZE], c[HASH_ID_SIZE];
    char k1[HASH_ID_SIZE], k2[HASH_ID_SIZE];
};

static void add_output(struct json *outs, const char *name, const char *id) {
    struct json *o = json_obj();
    json_set(o, "id", json_str(id));
    json_set(outs, name, o);
}

/* A record of kind synth, version 1, params {"seed": seed}, no inputs; key from key_of into key. */
static struct json *make_record(const char *seed, const char *name, const char *id1, const char *id2,
                                char key[HASH_ID_SIZE]) {
    struct json *rec = json_obj(), *outs = json_obj(), *params = json_obj();
    add_output(outs, "first", id1);
    if (id2)
        add_output(outs, "second", id2);
    json_set(params, "seed", json_str(seed));
    json_set(rec, "name", json_str(name));
    json_set(rec, "kind", json_str("synth"));
    json_set(rec, "kind_version", json_int(1));
    json_set(rec, "params", params);
    json_set(rec, "inputs", json_obj());
    json_set(rec, "outputs", outs);
    CHECK(key_of(rec, key) == 0);
    json_set(rec, "key", json_str(key));
    return rec;
}

static void publish(struct store *s, const char *seed, const char *name, const char *id1, const char *id2,
                    char key[HASH_ID_SIZE]) {
    struct json *rec = make_record(seed, name, id1, id2, key);
    if (record_publish(s, rec) < 0)
        fprintf(stderr, "record_publish: %s\n", err_msg());
    json_free(rec);
}

static void put(struct store *s, const char *text, char id[HASH_ID_SIZE]) {
    if (store_put(s, text, strlen(text), id) < 0)
        fprintf(stderr, "store_put: %s\n", err_msg());
}

static int setup(struct fixture *f, const char *name) {
    memset(f, 0, sizeof *f);
    snprintf(root, sizeof root, "%s/%s", base, name);
    if (store_open(root, 1, &f->s) < 0) {
        fprintf(stderr, "store_open: %s\n", err_msg());
        return -1;
    }
    put(f->s, "alpha alpha alpha alpha alpha alpha alpha alpha", f->a);
    put(f->s, "bravo bravo bravo bravo bravo bravo bravo bravo", f->b);
    put(f->s, "charlie charlie charlie charlie charlie charlie", f->c);
    publish(f->s, "key one", "s1", f->a, f->b, f->k1);
    publish(f->s, "key two", "s2", f->c, NULL, f->k2);
    return 0;
}

/* Runs verify, returns its result; *text receives what it printed (caller frees). */
static int verify(struct store *s, int quick, char **text) {
    size_t n;
    FILE *mem = open_memstream(text, &n);
    int rc = store_verify(s, quick, mem);
    fclose(mem);
    return rc;
}

static int gc_keep(struct store *s, int remove, long grace, char *const *keep, long nkeep, char **text) {
    size_t n;
    FILE *mem = open_memstream(text, &n);
    int fd = nkeep < 0 ? 0 : store_gc_lock(s);
    int rc = nkeep < 0 ? store_gc(s, remove, grace, mem)
             : fd < 0  ? -1
                       : store_gc_locked(s, remove, grace, keep, nkeep, mem);
    if (nkeep >= 0 && fd >= 0)
        lock_drop(fd);
    fclose(mem);
    return rc;
}

static int gc(struct store *s, int remove, long grace, char **text) {
    return gc_keep(s, remove, grace, NULL, -1, text);
}

static void object_file(struct store *s, const char *id, char *path, size_t cap) {
    if (store_object_path(s, id, path, cap) < 0)
        fprintf(stderr, "store_object_path: %s\n", err_msg());
}

static void flip_byte(const char *path, off_t at) {
    int fd = open(path, O_RDWR);
    unsigned char c = 0;
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    CHECK(pread(fd, &c, 1, at) == 1);
    c ^= 0x20;
    CHECK(pwrite(fd, &c, 1, at) == 1);
    close(fd);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void age(const char *path, long seconds) {
    struct timespec t[2];
    clock_gettime(CLOCK_REALTIME, &t[0]);
    t[0].tv_sec -= seconds;
    t[1] = t[0];
    CHECK(utimensat(AT_FDCWD, path, t, 0) == 0);
}

static void test_clean(void) {
    struct fixture f;
    char *out = NULL;
    if (setup(&f, "clean") < 0)
        return;
    CHECK(verify(f.s, 0, &out) == 0);
    CHECK_STR(out, "ok: 3 objects, 2 records\n");
    free(out);
    CHECK(verify(f.s, 1, &out) == 0);
    CHECK_STR(out, "ok: 3 objects, 2 records\n");
    free(out);
    store_close(f.s);
}

static void test_object_damage(void) {
    struct fixture f;
    char path[1024], *out = NULL, want[1024];
    if (setup(&f, "objects") < 0)
        return;
    /* a flipped byte in the middle of A's frame, B truncated, C deleted */
    object_file(f.s, f.a, path, sizeof path);
    struct stat st;
    CHECK(stat(path, &st) == 0);
    flip_byte(path, st.st_size / 2);
    object_file(f.s, f.b, path, sizeof path);
    CHECK(truncate(path, 10) == 0);
    object_file(f.s, f.c, path, sizeof path);
    CHECK(unlink(path) == 0);

    /* quick: only the deletion shows */
    CHECK(verify(f.s, 1, &out) == 1);
    snprintf(want, sizeof want, "record %s (stage s2): object %s: missing\n", f.k2, f.c);
    CHECK_HAS(out, want);
    CHECK(!strstr(out, f.a) && !strstr(out, "ok:"));
    free(out);

    CHECK(verify(f.s, 0, &out) == 5);
    snprintf(want, sizeof want, "damaged object %s: ", f.a);
    CHECK_HAS(out, want);
    snprintf(want, sizeof want, "damaged object %s: ", f.b);
    CHECK_HAS(out, want);
    snprintf(want, sizeof want, "record %s (stage s1): object %s: damaged", f.k1, f.a);
    CHECK_HAS(out, want);
    snprintf(want, sizeof want, "record %s (stage s1): object %s: damaged", f.k1, f.b);
    CHECK_HAS(out, want);
    snprintf(want, sizeof want, "record %s (stage s2): object %s: missing\n", f.k2, f.c);
    CHECK_HAS(out, want);
    free(out);

    /* a file whose name is no object id */
    snprintf(want, sizeof want, "%s/objects/sha256/ab", root);
    mkdir(want, 0755);
    snprintf(path, sizeof path, "%s/objects/sha256/ab/not-an-id", root);
    write_file(path, "junk");
    CHECK(verify(f.s, 1, &out) == 2);
    CHECK_HAS(out, "object file objects/sha256/ab/not-an-id: not a valid object name");
    free(out);
    store_close(f.s);
}

static void test_record_damage(void) {
    struct fixture f;
    char path[1024], *out = NULL, want[1024];
    if (setup(&f, "records") < 0)
        return;
    CHECK(record_path(f.s, f.k1, path, sizeof path) == 0);
    flip_byte(path, 5);
    CHECK(record_path(f.s, f.k2, path, sizeof path) == 0);
    CHECK(unlink(path) == 0);
    CHECK(verify(f.s, 1, &out) == 2);
    snprintf(want, sizeof want, "record %s: differs from the audit log\n", f.k1);
    CHECK_HAS(out, want);
    snprintf(want, sizeof want, "record %s: missing\n", f.k2);
    CHECK_HAS(out, want);
    free(out);
    store_close(f.s);
}

/* Writes rec as its record file and commits it by hand, as someone tampering with the store would. */
static void log_by_hand(struct store *s, const struct json *rec) {
    char path[1024], dir[1024];
    const char *key = json_get_str(rec, "key");
    size_t n = 0;
    char *text = json_write(rec, JSON_PRETTY, &n);
    CHECK(text && record_path(s, key, path, sizeof path) == 0);
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = 0;
    mkdir(dir, 0755);
    write_file(path, text);
    CHECK(audit_commit(s, key, text, n, "forged synth by-hand") == 0);
    free(text);
}

/* A logged record whose fields do not hash to its key is damage (it would be served to another stage). */
static void test_forged_key(void) {
    struct fixture f;
    char real[HASH_ID_SIZE], *out = NULL, want[1024];
    if (setup(&f, "forged") < 0)
        return;
    /* "key three"'s record filed under "key two"'s key, replacing the logged s2 */
    struct json *rec = make_record("key three", "s2", f.a, NULL, real);
    json_set(rec, "key", json_str(f.k2));
    log_by_hand(f.s, rec);
    CHECK(verify(f.s, 0, &out) == 1);
    snprintf(want, sizeof want, "record %s: key does not match its contents\n", f.k2);
    CHECK_STR(out, want);
    free(out);
    /* and one without the fields a key is made of */
    json_del(rec, "params");
    json_set(rec, "key", json_str(f.k1));
    log_by_hand(f.s, rec);
    CHECK(verify(f.s, 1, &out) == 2);
    snprintf(want, sizeof want, "record %s: cache key: \"params\" is missing or not an object\n", f.k1);
    CHECK_HAS(out, want);
    free(out);
    json_free(rec);
    store_close(f.s);
}

/* Garbage from interrupted runs is reported as notes, and does not make a store unclean. */
static void test_notes(void) {
    struct fixture f;
    char path[1024], key[HASH_ID_SIZE], *out = NULL, want[1024];
    if (setup(&f, "notes") < 0)
        return;
    sha256_id("unlogged", 8, key);
    CHECK(record_path(f.s, key, path, sizeof path) == 0);
    strcpy(want, path);
    *strrchr(want, '/') = 0;
    mkdir(want, 0755);
    write_file(path, "{}\n");
    snprintf(path, sizeof path, "%s/tmp/leftover", root);
    write_file(path, "partial");
    CHECK(verify(f.s, 0, &out) == 0);
    snprintf(want, sizeof want, "note: record %s: not in the audit log", key);
    CHECK_HAS(out, want);
    CHECK_HAS(out, "note: temp file tmp/leftover:");
    CHECK_HAS(out, "ok: 3 objects, 2 records\n");
    free(out);
    store_close(f.s);
}

/* A damaged audit log object is found by walking the history. */
static void test_audit_damage(void) {
    struct fixture f;
    char path[1024], *out = NULL, *text = NULL;
    size_t n = 0;
    git_oid oid;
    char hex[GIT_OID_HEXSZ + 1];
    if (setup(&f, "audit") < 0)
        return;
    CHECK(record_path(f.s, f.k1, path, sizeof path) == 0);
    FILE *in = fopen(path, "r");
    if (in) {
        text = malloc(1 << 16);
        n = fread(text, 1, 1 << 16, in);
        fclose(in);
    }
    CHECK(n > 0 && git_odb_hash(&oid, text, n, GIT_OBJECT_BLOB) == 0);
    free(text);
    git_oid_tostr(hex, sizeof hex, &oid);
    snprintf(path, sizeof path, "%s/audit.git/objects/%.2s/%s", root, hex, hex + 2);
    CHECK(exists(path));
    chmod(path, 0644);
    struct stat st;
    CHECK(stat(path, &st) == 0);
    flip_byte(path, st.st_size / 2);
    /* The handle caches nothing of blobs, but start from a fresh one as a new process would. */
    store_close(f.s);
    CHECK(store_open(root, 0, &f.s) == 0);
    CHECK(verify(f.s, 1, &out) >= 1);
    snprintf(path, sizeof path, ": records/%s.json: ", f.k1 + 7);
    CHECK_HAS(out, "audit log: commit ");
    CHECK_HAS(out, path);
    CHECK(out && !strstr(out, "ok:"));
    free(out);
    store_close(f.s);
}

static void test_gc(void) {
    struct fixture f;
    char u_old[HASH_ID_SIZE], u_young[HASH_ID_SIZE], path[1024], key[HASH_ID_SIZE], rec[1024], tmp[1024];
    char *out = NULL, want[1024];
    if (setup(&f, "gc") < 0)
        return;
    put(f.s, "unreferenced and old", u_old);
    put(f.s, "unreferenced and young", u_young);
    object_file(f.s, u_old, path, sizeof path);
    age(path, 7200);
    object_file(f.s, f.a, want, sizeof want);
    age(want, 7200); /* referenced: old but kept */
    sha256_id("unlogged", 8, key);
    CHECK(record_path(f.s, key, rec, sizeof rec) == 0);
    strcpy(want, rec);
    *strrchr(want, '/') = 0;
    mkdir(want, 0755);
    write_file(rec, "{}\n");
    age(rec, 7200);
    snprintf(tmp, sizeof tmp, "%s/tmp/leftover", root);
    write_file(tmp, "partial");
    age(tmp, 7200);
    /* stage locks: old and free (goes), old but held (stays), young (stays) */
    char free_lock[1024], held_lock[1024], young_lock[1024], name[HASH_ID_SIZE + 8];
    snprintf(name, sizeof name, "stage-%.64s", f.k1 + 7);
    lock_drop(lock_take(f.s, name, LOCK_EXCLUSIVE, 1));
    snprintf(free_lock, sizeof free_lock, "%s/locks/%s.lock", root, name);
    age(free_lock, 7200);
    snprintf(name, sizeof name, "stage-%.64s", f.k2 + 7);
    int held = lock_take(f.s, name, LOCK_EXCLUSIVE, 1);
    CHECK(held >= 0);
    snprintf(held_lock, sizeof held_lock, "%s/locks/%s.lock", root, name);
    age(held_lock, 7200);
    snprintf(name, sizeof name, "stage-%.64s", u_old + 7);
    lock_drop(lock_take(f.s, name, LOCK_EXCLUSIVE, 1));
    snprintf(young_lock, sizeof young_lock, "%s/locks/%s.lock", root, name);

    CHECK(gc(f.s, 0, 3600, &out) == 0);
    snprintf(want, sizeof want, "would remove object objects/sha256/%.2s/%s\n", u_old + 7, u_old + 9);
    CHECK_HAS(out, want);
    CHECK_HAS(out, "would remove record records/");
    CHECK_HAS(out, "would remove temp tmp/leftover\n");
    snprintf(want, sizeof want, "would remove lock locks/stage-%s.lock\n", f.k1 + 7);
    CHECK_HAS(out, want);
    CHECK_HAS(out, "would remove 4 files, ");
    CHECK(!strstr(out, u_young + 9) && !strstr(out, f.a + 9) && !strstr(out, f.c + 9));
    CHECK(!strstr(out, f.k2 + 7) && !strstr(out, name)); /* the held and the young lock */
    CHECK(exists(path) && exists(rec) && exists(tmp) && exists(free_lock));
    free(out);

    CHECK(gc(f.s, 1, 3600, &out) == 0);
    CHECK_HAS(out, "remove object objects/sha256/");
    CHECK_HAS(out, "removed 4 files, ");
    free(out);
    CHECK(!exists(path) && !exists(rec) && !exists(tmp) && !exists(free_lock));
    CHECK(exists(held_lock) && exists(young_lock));
    lock_drop(held);
    object_file(f.s, u_young, path, sizeof path);
    CHECK(exists(path));
    CHECK(store_has(f.s, f.a) == 1 && store_has(f.s, f.b) == 1 && store_has(f.s, f.c) == 1);
    CHECK(verify(f.s, 0, &out) == 0);
    CHECK_STR(out, "ok: 4 objects, 2 records\n");
    free(out);
    /* grace 0 takes the young ones too, and the lock no longer held */
    CHECK(gc(f.s, 1, 0, &out) == 0);
    CHECK_HAS(out, "removed 3 files, ");
    free(out);
    CHECK(!exists(path) && !exists(held_lock) && !exists(young_lock));
    store_close(f.s);
}

/* gc --keep: records not kept are dropped from the log's head in one commit, then their files and the objects
 * only they referenced go; a shared object stays; a young record stays; a pruned key can be published again.
 */
static void test_gc_keep(void) {
    struct fixture f;
    char d[HASH_ID_SIZE], k3[HASH_ID_SIZE], want[1024], *out = NULL;
    if (setup(&f, "keep") < 0)
        return;
    put(f.s, "delta delta delta delta delta delta delta delta", d);
    publish(f.s, "key three", "s3", f.b, d, k3); /* shares B with s1 */
    char *keep[] = {f.k2, k3};
    CHECK(gc_keep(f.s, 1, 3600, keep, 2, &out) == 0);
    CHECK_HAS(out, "pruned 0 records, kept 3\n"); /* s1's record is younger than the grace period */
    free(out);

    CHECK(gc_keep(f.s, 0, 0, keep, 2, &out) == 0);
    snprintf(want, sizeof want, "would prune record %s s1\n", f.k1);
    CHECK_HAS(out, want);
    CHECK_HAS(out, "would prune 1 record, kept 2\n");
    snprintf(want, sizeof want, "would remove object objects/sha256/%.2s/%s\n", f.a + 7, f.a + 9);
    CHECK_HAS(out, want);
    CHECK(!strstr(out, f.b + 9) && !strstr(out, f.c + 9) && !strstr(out, d + 9));
    free(out);
    struct json *rec = NULL;
    CHECK(record_lookup(f.s, f.k1, &rec) == 1); /* a dry run changes nothing */
    json_free(rec);

    CHECK(gc_keep(f.s, 1, 0, keep, 2, &out) == 0);
    CHECK_HAS(out, "pruned 1 record, kept 2\n");
    CHECK_HAS(out, "removed 2 files, "); /* s1's record file and A */
    free(out);
    CHECK(record_lookup(f.s, f.k1, &rec) == 0 && record_lookup(f.s, f.k2, &rec) == 1);
    json_free(rec);
    CHECK(store_has(f.s, f.a) == 0 && store_has(f.s, f.b) == 1 && store_has(f.s, d) == 1);
    CHECK(verify(f.s, 0, &out) == 0);
    CHECK_STR(out, "ok: 3 objects, 2 records\n");
    free(out);
    size_t n;
    FILE *mem = open_memstream(&out, &n);
    CHECK(audit_print_log(f.s, mem) == 0);
    fclose(mem);
    CHECK_HAS(out, " prune 1 record\n");
    free(out);

    /* the pruned stage computed again publishes as before */
    char again[HASH_ID_SIZE];
    put(f.s, "alpha alpha alpha alpha alpha alpha alpha alpha", f.a);
    publish(f.s, "key one", "s1", f.a, f.b, again);
    CHECK_STR(again, f.k1);
    CHECK(record_lookup(f.s, f.k1, &rec) == 1);
    json_free(rec);
    CHECK(verify(f.s, 0, &out) == 0);
    free(out);
    store_close(f.s);
}

/* A run holds the store lock shared in another process: gc must refuse, not wait. */
static void test_gc_busy(void) {
    struct fixture f;
    int ready[2], done[2];
    char c, *out = NULL;
    if (setup(&f, "busy") < 0 || pipe(ready) < 0 || pipe(done) < 0)
        return;
    pid_t pid = fork();
    if (pid == 0) {
        struct store *s;
        if (store_open(root, 0, &s) < 0 || lock_take(s, "store", LOCK_SHARED, 1) < 0)
            _exit(1);
        if (write(ready[1], "r", 1) != 1 || read(done[0], &c, 1) < 0)
            _exit(1);
        _exit(0);
    }
    CHECK(pid > 0 && read(ready[0], &c, 1) == 1);
    CHECK(gc(f.s, 1, 0, &out) == -1);
    CHECK_STR(err_msg(), "store is in use by a run; try gc again when it ends");
    free(out);
    CHECK(write(done[1], "d", 1) == 1);
    int status = -1;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(gc(f.s, 0, 0, &out) == 0);
    free(out);
    close(ready[0]), close(ready[1]), close(done[0]), close(done[1]);
    store_close(f.s);
}

int main(void) {
    if (!mkdtemp(base)) {
        perror("mkdtemp");
        return 1;
    }
    test_clean();
    test_object_damage();
    test_record_damage();
    test_notes();
    test_forged_key();
    test_audit_damage();
    test_gc();
    test_gc_keep();
    test_gc_busy();
    rm_rf(base);
    return check_done("test_store_maint");
}

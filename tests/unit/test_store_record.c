/* test_store_record: publishing and looking up stage records, name pointers, and the audit log underneath
 * (what a miss is, what publish refuses: forged keys among others, stale git lock files, concurrent
 * publishers of one key). */
#include <ftw.h>
#include <git2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

static char base[] = "/tmp/pulse-test-record-XXXXXX";
static char root[512];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void rm_rf(const char *path) {
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static struct store *fresh_store(const char *name) {
    struct store *s = NULL;
    snprintf(root, sizeof root, "%s/%s", base, name);
    if (store_open(root, 1, &s) < 0)
        fprintf(stderr, "store_open: %s\n", err_msg());
    return s;
}

static int exists(const char *path) {
    return access(path, F_OK) == 0;
}

static void put(struct store *s, const char *text, char id[HASH_ID_SIZE]) {
    if (store_put(s, text, strlen(text), id) < 0)
        fprintf(stderr, "store_put: %s\n", err_msg());
}

/* A record of kind synth, version 1, params {"seed": seed}, no inputs, one output; its key from key_of. */
static struct json *make_record(const char *seed, const char *name, const char *id) {
    struct json *rec = json_obj(), *outs = json_obj(), *out = json_obj(), *params = json_obj();
    char key[HASH_ID_SIZE];
    json_set(out, "id", json_str(id));
    json_set(out, "size", json_int(5));
    json_set(out, "type", json_str("bytes"));
    json_set(outs, "data", out);
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

/* The key of make_record(seed, ...), whatever its name and output. */
static void key_for(const char *seed, char key[HASH_ID_SIZE]) {
    char id[HASH_ID_SIZE];
    sha256_id("", 0, id);
    struct json *rec = make_record(seed, "any", id);
    snprintf(key, HASH_ID_SIZE, "%s", json_get_str(rec, "key"));
    json_free(rec);
}

/* Publishes a record for name whose one output holds text; key from seed. */
static int publish(struct store *s, const char *seed, const char *name, const char *text,
                   char key[HASH_ID_SIZE]) {
    char id[HASH_ID_SIZE];
    put(s, text, id);
    key_for(seed, key);
    struct json *rec = make_record(seed, name, id);
    int rc = record_publish(s, rec);
    if (rc < 0)
        fprintf(stderr, "record_publish: %s\n", err_msg());
    json_free(rec);
    return rc;
}

static int lookup(struct store *s, const char *key) {
    struct json *rec = NULL;
    int rc = record_lookup(s, key, &rec);
    if (rc == 1 && (!rec || strcmp(json_get_str(rec, "key"), key)))
        rc = 99;
    if (rc != 1 && rec)
        rc = 98;
    json_free(rec);
    return rc;
}

static void test_publish_lookup(void) {
    struct store *s = fresh_store("hit");
    char key[HASH_ID_SIZE], path[1024], other[HASH_ID_SIZE];
    struct json *rec = NULL;
    CHECK(publish(s, "k1", "world", "hello", key) == 0);
    CHECK(lookup(s, key) == 1);
    CHECK(record_path(s, key, path, sizeof path) == 0);
    CHECK(exists(path));
    CHECK_HAS(path, "/records/");
    CHECK(strstr(path, key + 9) && strstr(path, ".json"));
    key_for("never published", other);
    CHECK(lookup(s, other) == 0);
    CHECK(record_lookup(s, "sha256:nothex", &rec) == -1 && !rec);
    CHECK_HAS(err_msg(), "invalid key");
    /* A fresh handle reads the same log from disk. */
    store_close(s);
    CHECK(store_open(root, 0, &s) == 0);
    CHECK(lookup(s, key) == 1);
    CHECK(record_by_name(s, "world", &rec) == 1);
    CHECK_STR(rec ? json_get_str(rec, "name") : NULL, "world");
    json_free(rec);
    store_close(s);
}

static void test_lookup_misses(void) {
    struct store *s = fresh_store("miss");
    char k1[HASH_ID_SIZE], k2[HASH_ID_SIZE], id[HASH_ID_SIZE], path[1024];
    CHECK(publish(s, "m1", "a", "object one", k1) == 0);
    CHECK(publish(s, "m2", "b", "object two", k2) == 0);

    /* object deleted */
    sha256_id("object one", 10, id);
    CHECK(store_object_path(s, id, path, sizeof path) == 0);
    CHECK(unlink(path) == 0);
    CHECK(lookup(s, k1) == 0);

    /* record file edited (still valid JSON, different bytes) */
    CHECK(record_path(s, k2, path, sizeof path) == 0);
    FILE *f = fopen(path, "a");
    CHECK(f != NULL);
    if (f) {
        fputs(" ", f);
        fclose(f);
    }
    CHECK(lookup(s, k2) == 0);
    CHECK(audit_check(s, k2, "x", 1) == 2);

    /* record written by hand, never logged */
    char k3[HASH_ID_SIZE];
    put(s, "object three", id);
    key_for("m3", k3);
    struct json *rec = make_record("m3", "c", id);
    char *text = json_write(rec, JSON_PRETTY, NULL);
    CHECK(record_path(s, k3, path, sizeof path) == 0);
    char dir[1024];
    snprintf(dir, sizeof dir, "%.*s", (int)(strrchr(path, '/') - path), path);
    mkdir(dir, 0755);
    f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    CHECK(audit_check(s, k3, text, strlen(text)) == 0);
    CHECK(lookup(s, k3) == 0);
    /* Publishing it for real makes it count. */
    CHECK(record_publish(s, rec) == 0);
    CHECK(lookup(s, k3) == 1);
    CHECK(audit_check(s, k3, text, strlen(text)) == 1);
    free(text);
    json_free(rec);
    store_close(s);
}

static void test_by_name(void) {
    struct store *s = fresh_store("name");
    char k1[HASH_ID_SIZE], k2[HASH_ID_SIZE], path[1024];
    struct json *rec = NULL;
    CHECK(record_by_name(s, "unlearn/npo/round3", &rec) == 0 && !rec);
    CHECK(publish(s, "n1", "unlearn/npo/round3", "first", k1) == 0);
    CHECK(publish(s, "n2", "unlearn/npo/round3", "second", k2) == 0);
    CHECK(record_by_name(s, "unlearn/npo/round3", &rec) == 1);
    CHECK_STR(rec ? json_get_str(rec, "key") : NULL, k2);
    json_free(rec);
    rec = NULL;
    snprintf(path, sizeof path, "%s/names/unlearn%%2Fnpo%%2Fround3", root);
    char *text = NULL;
    size_t n = 0;
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    if (f) {
        text = calloc(1, 256);
        n = fread(text, 1, 255, f);
        fclose(f);
    }
    CHECK(n == strlen(k2) + 1);
    CHECK(text && !strncmp(text, k2, strlen(k2)) && text[strlen(k2)] == '\n');
    free(text);
    /* Names that could spell a path or a hidden file are escaped. */
    char k3[HASH_ID_SIZE];
    CHECK(publish(s, "n3", "..", "dots", k3) == 0);
    snprintf(path, sizeof path, "%s/names/%%2E.", root);
    CHECK(exists(path));
    CHECK(record_by_name(s, "..", &rec) == 1);
    json_free(rec);
    rec = NULL;
    /* The latest record is damaged: by name it is a miss, not an error. */
    CHECK(record_path(s, k2, path, sizeof path) == 0);
    CHECK(unlink(path) == 0);
    CHECK(record_by_name(s, "unlearn/npo/round3", &rec) == 0 && !rec);
    store_close(s);
}

static void test_publish_refuses(void) {
    struct store *s = fresh_store("refuse");
    char key[HASH_ID_SIZE], id[HASH_ID_SIZE], path[1024];
    key_for("r1", key);
    sha256_id("never stored", 12, id);
    struct json *rec = make_record("r1", "lost", id);
    CHECK(record_publish(s, rec) == -1);
    CHECK_HAS(err_msg(), id);
    CHECK_HAS(err_msg(), "not in the store");
    CHECK(!strchr(err_msg(), '\n'));
    CHECK(record_path(s, key, path, sizeof path) == 0);
    CHECK(!exists(path));
    CHECK(audit_check(s, key, "", 0) == 0);
    snprintf(path, sizeof path, "%s/names/lost", root);
    CHECK(!exists(path));
    json_free(rec);

    /* malformed records */
    rec = json_obj();
    json_set(rec, "key", json_str("sha256:abc"));
    CHECK(record_publish(s, rec) == -1);
    CHECK_HAS(err_msg(), "key");
    json_set(rec, "key", json_str(key));
    json_set(rec, "name", json_str("x"));
    json_set(rec, "kind", json_str("synth"));
    CHECK(record_publish(s, rec) == -1);
    CHECK_HAS(err_msg(), "outputs");
    struct json *outs = json_obj(), *o = json_obj();
    json_set(o, "id", json_str("sha256:ZZ"));
    json_set(outs, "data", o);
    json_set(rec, "outputs", outs);
    CHECK(record_publish(s, rec) == -1);
    CHECK_HAS(err_msg(), "output data");
    json_free(rec);
    store_close(s);
}

/* A record whose key is another spec's would be served to that other stage: refused before any write. */
static void test_forged_key(void) {
    struct store *s = fresh_store("forged");
    char id[HASH_ID_SIZE], other[HASH_ID_SIZE], path[1024], want[256];
    put(s, "forged output", id);
    struct json *rec = make_record("f1", "victim", id);
    CHECK(record_check(s, rec) == 0); /* honest, and checking writes nothing */
    CHECK(record_path(s, json_get_str(rec, "key"), path, sizeof path) == 0);
    CHECK(!exists(path));
    key_for("f2", other);
    json_set(rec, "key", json_str(other));
    CHECK(record_check(s, rec) == -1);
    CHECK(record_publish(s, rec) == -1);
    snprintf(want, sizeof want, "record %s: key does not match its contents", other);
    CHECK_STR(err_msg(), want);
    CHECK(record_path(s, other, path, sizeof path) == 0);
    CHECK(!exists(path));
    CHECK(audit_check(s, other, "", 0) == 0);
    snprintf(path, sizeof path, "%s/names/victim", root);
    CHECK(!exists(path));
    /* The key cannot be checked without the fields it is made of. */
    json_del(rec, "kind_version");
    CHECK(record_publish(s, rec) == -1);
    CHECK_HAS(err_msg(), "\"kind_version\" is missing");
    json_free(rec);

    /* record_check leaves object presence to its caller; publish does not. */
    char absent[HASH_ID_SIZE];
    sha256_id("absent", 6, absent);
    rec = make_record("f3", "ghost", absent);
    CHECK(record_check(s, rec) == 0);
    CHECK(record_publish(s, rec) == -1);
    CHECK_HAS(err_msg(), "not in the store");
    json_free(rec);

    /* Over RECORD_MAX serialised: refused by both. */
    char *big = malloc(RECORD_MAX + 1);
    memset(big, 'a', RECORD_MAX);
    big[RECORD_MAX] = 0;
    rec = make_record(big, "big", id);
    free(big);
    CHECK(record_check(s, rec) == -1);
    CHECK_HAS(err_msg(), "over the limit of 4 MiB");
    CHECK(record_publish(s, rec) == -1);
    json_free(rec);
    store_close(s);
}

/* The names/ pointer is written after the commit: failing to write it does not undo the publication, leaves
 * no error behind, and record_name repairs it later. */
static void test_name_pointer_failure(void) {
    struct store *s = fresh_store("pointer");
    char key[HASH_ID_SIZE], path[1024];
    struct json *rec = NULL;
    snprintf(path, sizeof path, "%s/names/blocked", root);
    CHECK(mkdir(path, 0755) == 0); /* a directory where the pointer file goes: reading it fails */
    err_clear();
    CHECK(publish(s, "p1", "blocked", "pointer output", key) == 0);
    CHECK_STR(err_msg(), "");
    CHECK(lookup(s, key) == 1);
    CHECK(record_by_name(s, "blocked", &rec) == -1 && !rec);
    CHECK_HAS(err_msg(), "not a regular file");
    CHECK(rmdir(path) == 0);
    CHECK(record_name(s, "blocked", key) == 0);
    CHECK(record_by_name(s, "blocked", &rec) == 1);
    CHECK_STR(rec ? json_get_str(rec, "key") : NULL, key);
    json_free(rec);
    store_close(s);
}

/* One child of a race round: opens the store and makes its record (one key, its own "created" field, so
 * other bytes than the other child's; output id), waits at the gate, publishes. */
static void race_child(int gate, int round, int p, const char *id) {
    struct store *c = NULL;
    char created[64], byte;
    int rc = store_open(root, 0, &c);
    struct json *rec = make_record("same", "same", id);
    snprintf(created, sizeof created, "round %d process %d", round, p);
    json_set(rec, "created", json_str(created));
    ssize_t r = read(gate, &byte, 1); /* returns (EOF) when the parent opens the gate */
    (void)r;
    if (rc == 0 && (rc = record_publish(c, rec)) < 0)
        fprintf(stderr, "record_publish: %s\n", err_msg());
    json_free(rec);
    store_close(c);
    _exit(rc == 0 ? 0 : 1);
}

/* The deterministic half of the race below: while someone holds the audit lock, a publisher writes not even
 * the record file (the old order wrote it, then waited for the lock to commit). */
static void test_write_under_lock(void) {
    struct store *s = fresh_store("locked");
    char id[HASH_ID_SIZE], path[1024];
    put(s, "locked output", id);
    struct json *rec = make_record("locked", "locked", id);
    CHECK(record_path(s, json_get_str(rec, "key"), path, sizeof path) == 0);
    int fd = audit_lock(s);
    CHECK(fd >= 0);
    pid_t pid = fork();
    if (pid == 0) {
        struct store *c = NULL;
        lock_drop(
            fd); /* the inherited descriptor shares the parent's lock: it would block the child forever */
        int rc = store_open(root, 0, &c) == 0 ? record_publish(c, rec) : -1;
        store_close(c);
        store_close(s); /* the parent's, copied by fork */
        json_free(rec);
        _exit(rc == 0 ? 0 : 1);
    }
    usleep(300 * 1000);
    CHECK(!exists(path));
    lock_drop(fd);
    int status = -1;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(exists(path));
    CHECK(lookup(s, json_get_str(rec, "key")) == 1);
    json_free(rec);
    store_close(s);
}

/* Two processes publish one key with different bytes at the same moment, 50 times: the record file and the
 * log must always agree (file write and commit happen under one hold of the audit lock). */
static void test_same_key_race(void) {
    struct store *s = fresh_store("race");
    char id[HASH_ID_SIZE];
    put(s, "one output for both", id);
    store_close(s);
    int clean = 0, rounds = 50;
    for (int round = 0; round < rounds; round++) {
        int gate[2];
        pid_t pids[2];
        if (pipe(gate) < 0)
            break;
        for (int p = 0; p < 2; p++)
            if ((pids[p] = fork()) == 0) {
                close(gate[1]);
                race_child(gate[0], round, p, id);
            }
        close(gate[0]);
        close(gate[1]);
        for (int p = 0; p < 2; p++) {
            int status = -1;
            CHECK(pids[p] > 0 && waitpid(pids[p], &status, 0) == pids[p]);
            CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        }
        char *out = NULL;
        size_t n = 0;
        FILE *mem = open_memstream(&out, &n);
        int problems = store_open(root, 0, &s) == 0 ? store_verify(s, 1, mem) : -1;
        store_close(s);
        fclose(mem);
        if (problems == 0)
            clean++;
        else
            fprintf(stderr, "round %d: %s", round, out);
        free(out);
    }
    CHECK(clean == rounds);
}

static int count_lines(const char *text) {
    int n = 0;
    for (; text && *text; text++)
        n += *text == '\n';
    return n;
}

static void test_audit_log(void) {
    struct store *s = fresh_store("audit");
    char k1[HASH_ID_SIZE], k2[HASH_ID_SIZE], path[1024];
    CHECK(publish(s, "a1", "first", "one", k1) == 0);
    /* A SIGKILLed commit leaves git lock files; they must not stop the next commit. */
    const char *stale[] = {"audit.git/refs/heads/main.lock", "audit.git/HEAD.lock", "audit.git/index.lock"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", root, stale[i]);
        FILE *f = fopen(path, "w");
        CHECK(f != NULL);
        if (f)
            fclose(f);
    }
    CHECK(publish(s, "a2", "second", "two", k2) == 0);
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", root, stale[i]);
        CHECK(!exists(path));
    }
    CHECK(lookup(s, k1) == 1 && lookup(s, k2) == 1);
    /* A re-publication of the same bytes is a new commit. */
    CHECK(publish(s, "a2", "second", "two", k2) == 0);

    char *hist = NULL;
    size_t n = 0;
    CHECK(audit_history(s, &hist, &n) == 0);
    CHECK(count_lines(hist) == 3 && n == strlen(hist));
    CHECK(hist && strlen(hist) > 41 && hist[40] == ' ');
    char want[200];
    snprintf(want, sizeof want, " first synth %s\n", k1);
    CHECK(hist && strstr(hist, want) && strstr(hist, want) < strstr(hist, "second"));
    free(hist);

    char *log = NULL;
    size_t logn = 0;
    FILE *mem = open_memstream(&log, &logn);
    CHECK(audit_print_log(s, mem) == 0);
    fclose(mem);
    CHECK(count_lines(log) == 3);
    CHECK(log && strstr(log, "second") < strstr(log, "first")); /* newest first */
    CHECK_HAS(log, "Z second synth ");
    free(log);

    int bad = -1;
    mem = open_memstream(&log, &logn);
    CHECK(audit_verify(s, mem, &bad) == 0 && bad == 0);
    fclose(mem);
    free(log);
    CHECK(audit_commit(s, "sha256:short", "x", 1, "m") == -1);
    CHECK_HAS(err_msg(), "invalid key");
    store_close(s);
}

/* A commit time no calendar can hold (written by hand, as a damaged or hostile log could have it): the log
 * prints it as raw seconds instead of reading an unset date. */
static void test_absurd_time(void) {
    struct store *s = fresh_store("time");
    char key[HASH_ID_SIZE], dir[1024];
    CHECK(publish(s, "t1", "timely", "time output", key) == 0);
    snprintf(dir, sizeof dir, "%s/audit.git", root);
    /* libgit2 writes times as 32 bits, so the commit object is written as raw text */
    git_libgit2_init();
    git_repository *repo = NULL;
    git_commit *head = NULL;
    git_odb *odb = NULL;
    git_reference *ref = NULL;
    git_oid oid;
    char text[512], tree[GIT_OID_HEXSZ + 1], parent[GIT_OID_HEXSZ + 1];
    int ok = git_repository_open_bare(&repo, dir) == 0 &&
             git_reference_name_to_id(&oid, repo, "refs/heads/main") == 0 &&
             git_commit_lookup(&head, repo, &oid) == 0 && git_repository_odb(&odb, repo) == 0;
    if (ok) {
        git_oid_tostr(tree, sizeof tree, git_commit_tree_id(head));
        git_oid_tostr(parent, sizeof parent, &oid);
        snprintf(text, sizeof text,
                 "tree %s\nparent %s\nauthor x <x@x> 100000000000000000 +0000\n"
                 "committer x <x@x> 100000000000000000 +0000\n\nfar future\n",
                 tree, parent);
        ok = git_odb_write(&oid, odb, text, strlen(text), GIT_OBJECT_COMMIT) == 0 &&
             git_reference_create(&ref, repo, "refs/heads/main", &oid, 1, NULL) == 0;
    }
    CHECK(ok);
    git_reference_free(ref);
    git_odb_free(odb);
    git_commit_free(head);
    git_repository_free(repo);
    git_libgit2_shutdown();
    char *log = NULL;
    size_t n = 0;
    FILE *mem = open_memstream(&log, &n);
    CHECK(audit_print_log(s, mem) == 0);
    fclose(mem);
    CHECK_HAS(log, " @100000000000000000 far future\n");
    CHECK_HAS(log, "Z timely synth ");
    free(log);
    store_close(s);
}

/* An empty store has an empty log: look-ups miss, walks see nothing, nothing is created by reading. */
static void test_empty_log(void) {
    struct store *s = fresh_store("empty");
    char key[HASH_ID_SIZE], path[1024], *hist = NULL;
    size_t n = 1;
    int bad = -1;
    key_for("e", key);
    CHECK(audit_check(s, key, "x", 1) == 0);
    CHECK(audit_history(s, &hist, &n) == 0 && n == 0);
    free(hist);
    CHECK(audit_verify(s, stderr, &bad) == 0 && bad == 0);
    snprintf(path, sizeof path, "%s/audit.git", root);
    CHECK(!exists(path));
    store_close(s);
}

/* Two processes publishing at once: the "audit" lock serialises the commits, so none is lost. */
static void test_concurrent(void) {
    struct store *s = fresh_store("concurrent");
    pid_t pids[2];
    store_close(s);
    for (int p = 0; p < 2; p++) {
        pids[p] = fork();
        if (pids[p] == 0) {
            struct store *c;
            char key[HASH_ID_SIZE], seed[32];
            int rc = store_open(root, 0, &c);
            for (int i = 0; rc == 0 && i < 8; i++) {
                snprintf(seed, sizeof seed, "c%d-%d", p, i);
                rc = publish(c, seed, seed, seed, key);
            }
            store_close(c);
            _exit(rc == 0 ? 0 : 1);
        }
    }
    for (int p = 0; p < 2; p++) {
        int status = -1;
        CHECK(pids[p] > 0 && waitpid(pids[p], &status, 0) == pids[p]);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    CHECK(store_open(root, 0, &s) == 0);
    char *hist = NULL, key[HASH_ID_SIZE], seed[32];
    size_t n = 0;
    CHECK(audit_history(s, &hist, &n) == 0);
    CHECK(count_lines(hist) == 16);
    free(hist);
    for (int p = 0; p < 2; p++)
        for (int i = 0; i < 8; i++) {
            snprintf(seed, sizeof seed, "c%d-%d", p, i);
            key_for(seed, key);
            CHECK(lookup(s, key) == 1);
        }
    store_close(s);
}

int main(void) {
    if (!mkdtemp(base)) {
        perror("mkdtemp");
        return 1;
    }
    test_publish_lookup();
    test_lookup_misses();
    test_by_name();
    test_publish_refuses();
    test_audit_log();
    test_empty_log();
    test_absurd_time();
    test_concurrent();
    test_forged_key();
    test_name_pointer_failure();
    test_write_under_lock();
    test_same_key_race();
    rm_rf(base);
    return check_done("test_store_record");
}

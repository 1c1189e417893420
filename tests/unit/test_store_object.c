/* test_store_object: store_open and the object files: round trips, the on-disk frame, damage detection,
 * concurrent writers and injected I/O faults. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "store/object.h"
#include "store/store.h"
#include "util/err.h"
#include "util/fsio.h"
#include "util/sha256.h"

static char base[] = "/tmp/pulse-test-object-XXXXXX";
static char root[512];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void rm_rf(const char *path) {
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Entries directly in dir (the directories checked here are flat). */
static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

static int tmp_entries(void) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s/tmp", root);
    return count_entries(dir);
}

/* Deterministic bytes: half random, half repetitive, so the frame has both raw and compressed blocks. */
static unsigned char *make_bytes(size_t n, uint64_t seed) {
    unsigned char *p = malloc(n ? n : 1);
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        p[i] = (i / 4096) % 2 ? (unsigned char)x : (unsigned char)(i % 251);
    }
    return p;
}

static struct store *open_store(void) {
    struct store *s = NULL;
    if (store_open(root, 1, &s) < 0)
        fprintf(stderr, "store_open: %s\n", err_msg());
    return s;
}

static int one_line(const char *msg) {
    return msg && *msg && !strchr(msg, '\n');
}

/* ---- store_open ---- */

static int hook_calls;
static void count_hook(struct store *s) {
    (void)s;
    hook_calls++;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void test_open(void) {
    char path[700], dir[600];
    struct store *s = NULL;

    snprintf(dir, sizeof dir, "%s/missing", base);
    CHECK(store_open(dir, 0, &s) == -1 && s == NULL);
    CHECK(one_line(err_msg()));

    s = open_store();
    CHECK(s != NULL);
    if (!s)
        return;
    char *data;
    size_t n;
    snprintf(path, sizeof path, "%s/FORMAT", root);
    CHECK(fsio_read_file(path, 100, &data, &n) == 0 && strcmp(data, "pulse-store 1\n") == 0);
    free(data);
    const char *dirs[] = {"objects/sha256", "records", "names", "locks", "tmp"};
    for (size_t i = 0; i < 5; i++) {
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", root, dirs[i]);
        CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode));
    }
    CHECK(store_path(s, path, sizeof path, "records/%s", "x") == 0);
    snprintf(dir, sizeof dir, "%s/records/x", root);
    CHECK_STR(path, dir);
    CHECK(store_path(s, path, 8, "records/%s", "x") == -1);
    hook_calls = 0;
    s->close_hook = count_hook;
    store_close(s);
    CHECK(hook_calls == 1);

    CHECK(store_open(root, 0, &s) == 0); /* reopen without create */
    store_close(s);

    snprintf(dir, sizeof dir, "%s/notastore", base);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/notes.txt", dir);
    write_text(path, "hello\n");
    s = NULL;
    CHECK(store_open(dir, 1, &s) == -1 && s == NULL);
    CHECK_HAS(err_msg(), "not a pulse-pipe store (no FORMAT file)");
    CHECK_HAS(err_msg(), dir);
    CHECK(count_entries(dir) == 1); /* untouched */

    snprintf(path, sizeof path, "%s/FORMAT", dir);
    write_text(path, "pulse-store 2\n");
    CHECK(store_open(dir, 1, &s) == -1);
    CHECK_HAS(err_msg(), "unsupported store format 'pulse-store 2'");

    CHECK(store_open(path, 1, &s) == -1); /* a plain file */
    CHECK(one_line(err_msg()));

    snprintf(dir, sizeof dir, "%s/empty", base);
    mkdir(dir, 0755);
    CHECK(store_open(dir, 0, &s) == -1); /* empty but create == 0 */
    CHECK(store_open(dir, 1, &s) == 0);
    store_close(s);
}

/* ---- round trips ---- */

static void check_roundtrip(struct store *s, const void *bytes, size_t n, const char *id) {
    char want[HASH_ID_SIZE];
    sha256_id(bytes, n, want);
    CHECK_STR(id, want);
    CHECK(store_has(s, id) == 1);
    void *got = NULL;
    size_t got_n = 12345;
    CHECK(store_get(s, id, &got, &got_n) == 0);
    CHECK(got != NULL && got_n == n && memcmp(got, bytes, n) == 0 && ((char *)got)[n] == '\0');
    free(got);
    size_t size = 12345;
    CHECK(store_size(s, id, &size) == 0 && size == n);
    CHECK(store_check(s, id) == 0);
}

struct sink {
    struct sha256 *h;
    size_t n;
    int calls;
};

static int sink_cb(void *arg, const void *data, size_t n) {
    struct sink *k = arg;
    sha256_update(k->h, data, n);
    k->n += n;
    k->calls++;
    return 0;
}

static int failing_cb(void *arg, const void *data, size_t n) {
    (void)arg, (void)data, (void)n;
    return err_set("sink: refused");
}

static void test_roundtrip_small(struct store *s) {
    char id[HASH_ID_SIZE];
    CHECK(store_put(s, "", 0, id) == 0);
    check_roundtrip(s, "", 0, id);
    const char *text = "hello, store";
    CHECK(store_put(s, text, strlen(text), id) == 0);
    check_roundtrip(s, text, strlen(text), id);
    char again[HASH_ID_SIZE];
    CHECK(store_put(s, text, strlen(text), again) == 0); /* re-put of existing bytes */
    CHECK_STR(again, id);
    CHECK(tmp_entries() == 0);
}

static void test_roundtrip_big(struct store *s) {
    size_t n = 5u << 20;
    unsigned char *bytes = make_bytes(n, 1);
    struct store_writer *w;
    CHECK(store_writer_open(s, &w) == 0);
    static const size_t chunks[] = {1, 7, 4093, 65537, 12345, 131071, 3};
    size_t off = 0;
    for (size_t i = 0; off < n; i++) {
        size_t c = chunks[i % 7];
        if (c > n - off)
            c = n - off;
        CHECK(store_writer_write(w, bytes + off, c) == 0);
        off += c;
    }
    char id[HASH_ID_SIZE];
    CHECK(store_writer_commit(w, id) == 0);
    check_roundtrip(s, bytes, n, id); /* store_size here must count: the streamed frame has no size */

    struct sink k = {.h = sha256_new()};
    char streamed[HASH_ID_SIZE];
    CHECK(store_read(s, id, sink_cb, &k) == 0);
    sha256_final_id(k.h, streamed);
    CHECK(k.n == n && k.calls > 1);
    CHECK_STR(streamed, id);
    CHECK(store_read(s, id, failing_cb, NULL) == -1);
    CHECK_HAS(err_msg(), "sink: refused");

    char put_id[HASH_ID_SIZE];
    CHECK(store_put(s, bytes, n, put_id) == 0);
    CHECK_STR(put_id, id);
    free(bytes);
    CHECK(tmp_entries() == 0);
}

/* The file is one zstd frame (magic 0xFD2FB528, little-endian) with the content checksum flag (bit 2 of the
 * frame header descriptor). */
static void test_frame(struct store *s) {
    char id[HASH_ID_SIZE], path[700];
    CHECK(store_put(s, "frame", 5, id) == 0);
    CHECK(store_object_path(s, id, path, sizeof path) == 0);
    char want[700];
    snprintf(want, sizeof want, "%s/objects/sha256/%.2s/%s", root, id + 7, id + 9);
    CHECK_STR(path, want);
    unsigned char head[5] = {0};
    FILE *f = fopen(path, "rb");
    CHECK(f && fread(head, 1, 5, f) == 5);
    if (f)
        fclose(f);
    CHECK(head[0] == 0x28 && head[1] == 0xB5 && head[2] == 0x2F && head[3] == 0xFD);
    CHECK(head[4] & 0x04);
}

static void test_ids(struct store *s) {
    char missing[HASH_ID_SIZE];
    sha256_id("never stored", 12, missing);
    CHECK(store_has(s, missing) == 0);
    void *data = NULL;
    size_t n;
    CHECK(store_get(s, missing, &data, &n) == -1 && data == NULL);
    CHECK_HAS(err_msg(), "object sha256:");
    CHECK_HAS(err_msg(), "not in the store");
    CHECK(store_check(s, missing) == 1);

    const char *bad[] = {"sha256:abc", "sha1:0000", "", "sha256:../../../../../../../../etc/passwd",
                         "sha256:ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(store_has(s, bad[i]) == -1);
        CHECK_HAS(err_msg(), "malformed id");
        CHECK(store_get(s, bad[i], &data, &n) == -1);
        CHECK(store_check(s, bad[i]) == -1);
    }
}

/* ---- damage ---- */

static void corrupt(const char *path, int how) {
    struct stat st;
    if (stat(path, &st) < 0)
        return;
    long size = (long)st.st_size;
    if (how == 0) { /* flip one byte in the middle */
        int fd = open(path, O_RDWR);
        unsigned char c;
        if (pread(fd, &c, 1, size / 2) == 1) {
            c ^= 0x40;
            if (pwrite(fd, &c, 1, size / 2) != 1)
                perror("pwrite");
        }
        close(fd);
    } else if (how == 1) {
        if (truncate(path, size / 2) < 0)
            perror("truncate");
    } else if (how == 2) {
        unlink(path);
    } else {
        FILE *f = fopen(path, "ab");
        fputs("garbage after the frame", f);
        fclose(f);
    }
}

static void test_damage(struct store *s) {
    static const char *const expect[] = {"damaged", "truncated zstd frame", "not in the store",
                                         "trailing data after the zstd frame"};
    for (int how = 0; how < 4; how++) {
        size_t n = 300000;
        unsigned char *bytes = make_bytes(n, 100 + how);
        char id[HASH_ID_SIZE], path[700];
        CHECK(store_put(s, bytes, n, id) == 0);
        CHECK(store_object_path(s, id, path, sizeof path) == 0);
        corrupt(path, how);
        void *data = NULL;
        size_t got;
        CHECK(store_get(s, id, &data, &got) == -1 && data == NULL);
        CHECK_HAS(err_msg(), id);
        CHECK_HAS(err_msg(), expect[how]);
        CHECK(one_line(err_msg()));
        CHECK(store_check(s, id) == 1);
        CHECK_HAS(err_msg(), expect[how]);
        CHECK(store_put(s, bytes, n, id) == 0); /* re-putting repairs the object */
        CHECK(store_check(s, id) == 0);
        free(bytes);
    }
}

/* An object several times the hash's stretch (READER_STRETCH, 4 MiB), put with its size: store_get decodes
 * it into place with the hash behind; one flipped byte or a cut file is damage, reported as for small ones.
 */
static void test_get_large(struct store *s) {
    size_t n = (18u << 20) + 3;
    unsigned char *bytes = make_bytes(n, 77);
    for (int how = -1; how < 2; how++) {
        char id[HASH_ID_SIZE], path[700];
        CHECK(store_put(s, bytes, n, id) == 0);
        CHECK(store_object_path(s, id, path, sizeof path) == 0);
        if (how >= 0)
            corrupt(path, how);
        void *data = NULL;
        size_t got = 0;
        int rc = store_get(s, id, &data, &got);
        if (how < 0)
            CHECK(rc == 0 && got == n && memcmp(data, bytes, n) == 0 && ((char *)data)[n] == '\0');
        else {
            CHECK(rc == -1 && data == NULL);
            CHECK_HAS(err_msg(), how ? "truncated zstd frame" : "damaged");
            CHECK(one_line(err_msg()));
            unlink(path);
        }
        free(data);
    }
    free(bytes);
}

/* A valid frame under the wrong name: only the re-hash can tell. */
static void test_wrong_content(struct store *s) {
    char a[HASH_ID_SIZE], b[HASH_ID_SIZE], pa[700], pb[700];
    CHECK(store_put(s, "content a", 9, a) == 0);
    sha256_id("content b", 9, b);
    CHECK(store_object_path(s, a, pa, sizeof pa) == 0 && store_object_path(s, b, pb, sizeof pb) == 0);
    char *frame = NULL;
    size_t frame_n = 0;
    CHECK(fsio_read_file(pa, 1 << 20, &frame, &frame_n) == 0);
    *strrchr(pb, '/') = '\0';
    CHECK(fsio_mkdir_p(pb) == 0);
    pb[strlen(pb)] = '/';
    FILE *f = fopen(pb, "wb");
    CHECK(f && fwrite(frame, 1, frame_n, f) == frame_n);
    if (f)
        fclose(f);
    free(frame);
    void *data = NULL;
    size_t n;
    CHECK(store_get(s, b, &data, &n) == -1);
    CHECK_HAS(err_msg(), "content hashes to");
    CHECK_HAS(err_msg(), a);
    CHECK(store_check(s, b) == 1);
    size_t size;
    CHECK(store_size(s, b, &size) == 0 && size == 9); /* size comes from the header alone */
    unlink(pb);
}

/* ---- temp files ---- */

static void test_tmp(struct store *s) {
    struct store_writer *w;
    char id[HASH_ID_SIZE], tmp[700];
    CHECK(store_writer_open(s, &w) == 0);
    CHECK(store_writer_write(w, "staged", 6) == 0);
    CHECK(store_writer_finish(w, id, tmp, sizeof tmp) == 0);
    char want[HASH_ID_SIZE];
    sha256_id("staged", 6, want);
    CHECK_STR(id, want);
    CHECK(tmp_entries() == 1);
    CHECK(store_has(s, id) == 0); /* a file in tmp/ is not an object */
    CHECK(store_publish_tmp(s, tmp, id) == 0);
    CHECK(store_has(s, id) == 1 && store_check(s, id) == 0);
    CHECK(tmp_entries() == 0);

    CHECK(store_writer_open(s, &w) == 0);
    CHECK(store_writer_write(w, "dropped", 7) == 0);
    CHECK(tmp_entries() == 1);
    store_writer_abort(w);
    CHECK(tmp_entries() == 0);
    sha256_id("dropped", 7, want);
    CHECK(store_has(s, want) == 0);
}

/* ---- concurrency ---- */

static void test_concurrent(void) {
    size_t n = 1u << 20;
    unsigned char *bytes = make_bytes(n, 7);
    char want[HASH_ID_SIZE];
    sha256_id(bytes, n, want);
    pid_t kids[8];
    for (int k = 0; k < 8; k++) {
        kids[k] = fork();
        if (kids[k] == 0) {
            struct store *s;
            int bad = store_open(root, 0, &s) < 0;
            for (int i = 0; i < 20 && !bad; i++) {
                char id[HASH_ID_SIZE];
                bad = store_put(s, bytes, n, id) < 0 || strcmp(id, want) != 0;
                if (bad)
                    fprintf(stderr, "child %d: %s\n", k, err_msg());
            }
            if (!bad)
                store_close(s);
            _exit(bad);
        }
    }
    for (int k = 0; k < 8; k++) {
        int status = -1;
        CHECK(kids[k] > 0 && waitpid(kids[k], &status, 0) == kids[k]);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    struct store *s = open_store();
    if (s) {
        CHECK(store_check(s, want) == 0);
        store_close(s);
    }
    CHECK(tmp_entries() == 0);
    free(bytes);
}

/* ---- injected faults ---- */

static void test_faults(struct store *s) {
    if (!fsio_fault_enabled()) {
        printf("test_store_object: fault injection not compiled in, skipping fault tests\n");
        return;
    }
    static const char *const faults[] = {"write:1:ENOSPC", "fsync:1:EIO", "rename:1:EIO"};
    static const char *const reasons[] = {"No space left on device", "Input/output error",
                                          "Input/output error"};
    for (int i = 0; i < 6; i++) { /* each fault on a small object and on one hashed behind (HASH_BEHIND_MIN) */
        size_t n = i < 3 ? 100000 : 3u << 20;
        unsigned char *bytes = make_bytes(n, 200 + i);
        char want[HASH_ID_SIZE], id[HASH_ID_SIZE];
        sha256_id(bytes, n, want);
        fsio_fault_set(faults[i % 3], 0);
        CHECK(store_put(s, bytes, n, id) == -1);
        fsio_fault_set(NULL, 0);
        CHECK(one_line(err_msg()));
        CHECK_HAS(err_msg(), reasons[i % 3]);
        CHECK(store_has(s, want) == 0);
        CHECK(tmp_entries() == 0);
        CHECK(store_put(s, bytes, n, id) == 0);
        CHECK_STR(id, want);
        CHECK(store_check(s, id) == 0);
        free(bytes);
    }
}

int main(void) {
    if (!mkdtemp(base)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(root, sizeof root, "%s/store", base);
    test_open();
    struct store *s = open_store();
    if (s) {
        test_roundtrip_small(s);
        test_roundtrip_big(s);
        test_frame(s);
        test_ids(s);
        test_damage(s);
        test_get_large(s);
        test_wrong_content(s);
        test_tmp(s);
        test_faults(s);
        store_close(s);
    }
    CHECK(s != NULL);
    test_concurrent();
    rm_rf(base);
    return check_done("test_store_object");
}

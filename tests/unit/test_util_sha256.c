/* test_util_sha256: digests against known vectors, streaming equals one-shot, id validation; also the small
 * err/buf/schema helpers that every module leans on. */
#include "check.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/schema.h"
#include "util/sha256.h"
#include "util/sha256_behind.h"

#include <errno.h>
#include <stdint.h>

static void test_vectors(void) {
    char id[HASH_ID_SIZE];
    sha256_id("", 0, id);
    CHECK_STR(id, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sha256_id("abc", 3, id);
    CHECK_STR(id, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha256_id(two, strlen(two), id);
    CHECK_STR(id, "sha256:248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    CHECK(strlen(id) == HASH_ID_SIZE - 1);
}

static void test_streaming(void) {
    static char big[1000000];
    memset(big, 'a', sizeof big);
    char one[HASH_ID_SIZE], streamed[HASH_ID_SIZE];
    sha256_id(big, sizeof big, one);
    CHECK_STR(one, "sha256:cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    struct sha256 *h = sha256_new();
    for (size_t off = 0; off < sizeof big; off += 4093)
        sha256_update(h, big + off, sizeof big - off < 4093 ? sizeof big - off : 4093);
    sha256_update(h, big, 0);
    sha256_final_id(h, streamed);
    CHECK_STR(streamed, one);
    sha256_free(sha256_new()); /* freeing an unfinished state must not leak */
    sha256_free(NULL);
}

static void test_valid(void) {
    char id[HASH_ID_SIZE];
    sha256_id("x", 1, id);
    CHECK(hash_id_valid(id));
    CHECK(!hash_id_valid(NULL));
    CHECK(!hash_id_valid(""));
    CHECK(!hash_id_valid(id + 7));
    char bad[HASH_ID_SIZE + 1];
    memcpy(bad, id, HASH_ID_SIZE);
    bad[10] = 'A'; /* uppercase hex is not the canonical spelling */
    CHECK(!hash_id_valid(bad));
    memcpy(bad, id, HASH_ID_SIZE);
    bad[70] = '\0'; /* too short */
    CHECK(!hash_id_valid(bad));
    memcpy(bad, id, HASH_ID_SIZE);
    bad[71] = '0';
    bad[72] = '\0'; /* too long */
    CHECK(!hash_id_valid(bad));
    memcpy(bad, id, HASH_ID_SIZE);
    bad[5] = '1'; /* "sha1..." */
    CHECK(!hash_id_valid(bad));
}

static void test_err(void) {
    err_clear();
    CHECK_STR(err_msg(), "");
    CHECK(err_set("open %s", "/x\ny") == -1);
    CHECK_STR(err_msg(), "open /x y");
    CHECK(err_prefix("store %d", 3) == -1);
    CHECK_STR(err_msg(), "store 3: open /x y");
    errno = ENOENT;
    CHECK(err_errno("read %s", "/nope") == -1);
    CHECK_STR(err_msg(), "read /nope: No such file or directory");
    char huge[3000];
    memset(huge, 'z', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    err_set("%s", huge);
    err_prefix("ctx");
    CHECK(strlen(err_msg()) < 1024 && strncmp(err_msg(), "ctx: zzz", 8) == 0);
}

static void test_buf(void) {
    struct buf b = {0};
    char *empty = buf_take(&b);
    CHECK_STR(empty, "");
    free(empty);
    for (int i = 0; i < 1000; i++)
        buf_printf(&b, "%d,", i);
    buf_putc(&b, '!');
    buf_append(&b, "\0x", 2);
    CHECK(b.len == strlen(b.data) + 2);
    CHECK(strncmp(b.data, "0,1,2,", 6) == 0);
    CHECK(b.data[b.len] == '\0' && b.data[b.len - 1] == 'x');
    size_t len = b.len;
    char *s = buf_take(&b);
    CHECK(b.data == NULL && b.len == 0 && s[len - 3] == '!');
    free(s);
    buf_puts(&b, "abc");
    CHECK_STR(b.data, "abc");
    buf_free(&b);
    CHECK(b.data == NULL);
}

static void test_schema(void) {
    static const struct param_spec params[] = {{"lr", PARAM_NUM, "0.001", "learning rate"},
                                               {"data", PARAM_REF, NULL, "training set"}};
    static const char *const outs[] = {"adapter", "metrics"};
    static const struct kind_schema k = {"finetune", 2, params, 2, outs, 2};
    CHECK(schema_param(&k, "data") == &params[1]);
    CHECK(schema_param(&k, "nope") == NULL);
    CHECK(schema_has_output(&k, "metrics"));
    CHECK(!schema_has_output(&k, "adapters"));
    CHECK_STR(param_type_name(PARAM_INT), "integer");
    CHECK_STR(param_type_name(PARAM_NUMS), "list of numbers");
    CHECK_STR(param_type_name(PARAM_REFS), "list of stage outputs");
}

/* Hashing behind a writer: the digest of the bytes made ready, whatever the stretches (empty ones, one byte,
 * megabytes), equal to the one-shot digest; ready(0) alone is the empty digest; an abort ends it mid-way. */
static void test_behind(void) {
    size_t n = 9u << 20;
    unsigned char *p = malloc(n);
    uint64_t x = 7;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        p[i] = (unsigned char)x;
    }
    static const size_t steps[] = {0, 1, 4096, 0, 3u << 20, 77, 1u << 20, 65537};
    char want[HASH_ID_SIZE], got[HASH_ID_SIZE];
    for (size_t cut = n - 1; cut <= n; cut++) { /* all of it, and all but the last byte */
        sha256_id(p, cut, want);
        struct sha256_behind *b = sha256_behind_start(p);
        size_t at = 0;
        for (size_t i = 0; at < cut; i++) {
            at = at + steps[i % 8] < cut ? at + steps[i % 8] : cut;
            sha256_behind_ready(b, at);
        }
        sha256_behind_finish(b, got);
        CHECK_STR(got, want);
    }
    struct sha256_behind *b = sha256_behind_start(p);
    sha256_behind_ready(b, 0);
    sha256_behind_finish(b, got);
    sha256_id("", 0, want);
    CHECK_STR(got, want);
    b = sha256_behind_start(p);
    sha256_behind_ready(b, 5u << 20);
    sha256_behind_abort(b);
    free(p);
}

int main(void) {
    test_vectors();
    test_streaming();
    test_behind();
    test_valid();
    test_err();
    test_buf();
    test_schema();
    return check_done("test_util_sha256");
}

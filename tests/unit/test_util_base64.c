/* test_util_base64: RFC 4648's test vectors, every byte value through a reference encoder written here, and
 * each way a string can be almost base64 (wrong length, stray padding, non-zero pad bits, other alphabets,
 * whitespace) refused with the position of the bad group. */
#include "check.h"
#include "util/base64.h"
#include "util/buf.h"
#include "util/err.h"

static int decodes_to(const char *s, const char *want, size_t want_n) {
    unsigned char *out = NULL;
    size_t n = 0;
    if (base64_decode(s, strlen(s), &out, &n) != 0)
        return 0;
    int ok = n == want_n && memcmp(out, want, n) == 0;
    free(out);
    return ok;
}

static void refused(const char *s, const char *want) {
    unsigned char *out = (unsigned char *)"untouched";
    size_t n = 99;
    CHECK(base64_decode(s, strlen(s), &out, &n) == -1);
    CHECK_STR(err_msg(), want);
    CHECK(n == 99);
}

static void test_vectors(void) {
    CHECK(decodes_to("", "", 0));
    CHECK(decodes_to("Zg==", "f", 1));
    CHECK(decodes_to("Zm8=", "fo", 2));
    CHECK(decodes_to("Zm9v", "foo", 3));
    CHECK(decodes_to("Zm9vYg==", "foob", 4));
    CHECK(decodes_to("Zm9vYmE=", "fooba", 5));
    CHECK(decodes_to("Zm9vYmFy", "foobar", 6));
    CHECK(decodes_to("+/+/", "\xfb\xff\xbf", 3));
}

/* The textbook encoder, independent of the decoder under test. */
static char *encode(const unsigned char *p, size_t n) {
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    struct buf b = {0};
    for (size_t i = 0; i < n; i += 3) {
        unsigned v =
            (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        buf_putc(&b, abc[v >> 18 & 63]);
        buf_putc(&b, abc[v >> 12 & 63]);
        buf_putc(&b, i + 1 < n ? abc[v >> 6 & 63] : '=');
        buf_putc(&b, i + 2 < n ? abc[v & 63] : '=');
    }
    return buf_take(&b);
}

static void test_every_byte(void) {
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)(255 - i);
    for (size_t len = 254; len <= 256; len++) { /* each padding length */
        char *s = encode(all, len);
        unsigned char *out = NULL;
        size_t n = 0;
        CHECK(base64_decode(s, strlen(s), &out, &n) == 0);
        CHECK(n == len && out && memcmp(out, all, len) == 0);
        free(out);
        free(s);
    }
}

static void test_refusals(void) {
    refused("Zm9", "bad base64 (length 3 is not a multiple of 4)");
    refused("Zm9vY", "bad base64 (length 5 is not a multiple of 4)");
    refused("Zh==", "bad base64 near character 1");     /* pad bits set: "Zg==" is the one spelling */
    refused("Zm9=", "bad base64 near character 1");     /* likewise for one '=' */
    refused("Zg==Zg==", "bad base64 near character 1"); /* padding inside */
    refused("Zm9vZ===", "bad base64 near character 5");
    refused("====", "bad base64 near character 1");
    refused("Zm9v\nYmFy", "bad base64 (length 9 is not a multiple of 4)");
    refused("Zm9v YmF", "bad base64 near character 5");
    refused("Zm-_", "bad base64 near character 1"); /* the URL-safe alphabet */
    refused("Zm9vYm=y", "bad base64 near character 5");
    unsigned char *out;
    size_t n;
    CHECK(base64_decode("Zm\0v", 4, &out, &n) == -1); /* a NUL inside the length */
}

int main(void) {
    test_vectors();
    test_every_byte();
    test_refusals();
    return check_done("test_util_base64");
}

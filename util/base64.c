/* base64: the strict RFC 4648 decoder of util/base64.h. Only one spelling per byte string is accepted, so a
 * file that is changed in a way that cannot matter (pad bits, stray '=') is refused rather than silently
 * read. */
#include "util/base64.h"
#include "util/buf.h"
#include "util/err.h"

#include <stdlib.h>

static int b64_value(unsigned char ch) {
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    return ch == '+' ? 62 : ch == '/' ? 63 : -1;
}

/* One 4-character group into up to 3 bytes; only the `last` group may end in '=' padding. Returns the byte
 * count or -1. */
static int b64_group(const char *s, int last, unsigned char out[3]) {
    int pad = last ? (s[3] == '=') + (s[3] == '=' && s[2] == '=') : 0;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int d = i >= 4 - pad ? 0 : b64_value((unsigned char)s[i]);
        if (d < 0)
            return -1;
        v = v << 6 | (unsigned)d;
    }
    if ((pad == 1 && (v & 0xff)) || (pad == 2 && (v & 0xffff)))
        return -1; /* non-zero pad bits: a second spelling of the same bytes */
    out[0] = (unsigned char)(v >> 16);
    out[1] = (unsigned char)(v >> 8);
    out[2] = (unsigned char)v;
    return 3 - pad;
}

int base64_decode(const char *s, size_t n, unsigned char **out, size_t *outn) {
    if (n % 4)
        return err_set("bad base64 (length %zu is not a multiple of 4)", n);
    unsigned char *p = xmalloc(n ? n / 4 * 3 : 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i += 4) {
        int got = b64_group(s + i, i + 4 == n, p + k);
        if (got < 0) {
            free(p);
            return err_set("bad base64 near character %zu", i + 1);
        }
        k += (size_t)got;
    }
    *out = p;
    *outn = k;
    return 0;
}

/* sha256: SHA-256 via OpenSSL's EVP interface, spelled as "sha256:<hex>" ids. */
#include "util/sha256.h"
#include "util/buf.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sha256 {
    EVP_MD_CTX *ctx;
};

/* A failing digest context means libcrypto itself is broken or out of memory; nothing sensible remains. */
static void sha256_die(const char *what) {
    fprintf(stderr, "pulse-pipe: libcrypto: %s failed\n", what);
    abort();
}

struct sha256 *sha256_new(void) {
    struct sha256 *h = xmalloc(sizeof *h);
    h->ctx = EVP_MD_CTX_new();
    if (!h->ctx)
        sha256_die("EVP_MD_CTX_new");
    if (EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1)
        sha256_die("EVP_DigestInit_ex");
    return h;
}

void sha256_update(struct sha256 *h, const void *data, size_t n) {
    if (n && EVP_DigestUpdate(h->ctx, data, n) != 1)
        sha256_die("EVP_DigestUpdate");
}

void sha256_final_id(struct sha256 *h, char id[HASH_ID_SIZE]) {
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_DigestFinal_ex(h->ctx, md, &mdlen) != 1 || mdlen != 32)
        sha256_die("EVP_DigestFinal_ex");
    memcpy(id, "sha256:", 7);
    for (unsigned i = 0; i < 32; i++) {
        id[7 + 2 * i] = hex[md[i] >> 4];
        id[8 + 2 * i] = hex[md[i] & 15];
    }
    id[HASH_ID_SIZE - 1] = '\0';
    sha256_free(h);
}

void sha256_free(struct sha256 *h) {
    if (!h)
        return;
    EVP_MD_CTX_free(h->ctx);
    free(h);
}

void sha256_id(const void *data, size_t n, char id[HASH_ID_SIZE]) {
    struct sha256 *h = sha256_new();
    sha256_update(h, data, n);
    sha256_final_id(h, id);
}

int hash_hex_valid(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

int hash_id_valid(const char *s) {
    /* strnlen first: the hex check must not read past a short string's NUL */
    return s && strncmp(s, "sha256:", 7) == 0 && strnlen(s + 7, 65) == 64 && hash_hex_valid(s + 7, 64);
}

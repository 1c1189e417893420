/* sha256: SHA-256 digests (OpenSSL libcrypto underneath) and their hex spelling.
 * Object ids and cache keys are "sha256:<64 lowercase hex>" (HASH_ID_SIZE bytes with the NUL). */
#ifndef PULSE_UTIL_SHA256_H
#define PULSE_UTIL_SHA256_H

#include <stddef.h>

#define HASH_ID_SIZE 72 /* strlen("sha256:") + 64 + 1 */

struct sha256; /* opaque streaming state */

struct sha256 *sha256_new(void);
void sha256_update(struct sha256 *h, const void *data, size_t n);
/* Writes "sha256:<hex>" into id and frees h. */
void sha256_final_id(struct sha256 *h, char id[HASH_ID_SIZE]);
void sha256_free(struct sha256 *h);
/* One-shot: id of a buffer. */
void sha256_id(const void *data, size_t n, char id[HASH_ID_SIZE]);
/* 1 if s is exactly "sha256:" followed by 64 lowercase hex digits, else 0. */
int hash_id_valid(const char *s);
/* 1 if the n bytes at s are all lowercase hex digits (the spelling ids use), else 0. */
int hash_hex_valid(const char *s, size_t n);

#endif

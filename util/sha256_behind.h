/* sha256_behind: the SHA-256 of a buffer that is still being filled, front to back, computed on a thread of
 * its own a little behind the writer. store_get decodes an object into memory and must hash every byte it
 * decodes; on one core the hash took a third of a large object's read (a model of tens of GB is read by every
 * stage that uses it), beside the decoding, which the hash now overlaps. */
#ifndef PULSE_UTIL_SHA256_BEHIND_H
#define PULSE_UTIL_SHA256_BEHIND_H

#include <stddef.h>

#include "util/sha256.h"

struct sha256_behind;

/* Starts hashing the buffer at base as it is filled. When no thread can be made, the hashing happens in
 * sha256_behind_ready instead: the same digest, on the caller's time. */
struct sha256_behind *sha256_behind_start(const void *base);
/* The first n bytes of the buffer are written and will not change (n never decreases). */
void sha256_behind_ready(struct sha256_behind *b, size_t n);
/* Waits until every byte made ready is hashed, writes their id and frees b. */
void sha256_behind_finish(struct sha256_behind *b, char id[HASH_ID_SIZE]);
/* Stops without an id (a failed read or write; after the piece of at most 4 MiB being hashed) and frees b;
 * the buffer may be freed after it returns. */
void sha256_behind_abort(struct sha256_behind *b);

#endif

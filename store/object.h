/* object: content-addressed, immutable, compressed objects.
 *
 * An object's id is "sha256:<hex>" of its uncompressed bytes. Its file objects/sha256/<2 hex>/<62 hex> holds
 * one zstd frame with the content checksum flag. Writing goes temp file in tmp/ -> fsync -> rename ->
 * directory fsync, so a crash leaves either nothing or a whole object; two writers of the same bytes both
 * succeed. */
#ifndef PULSE_STORE_OBJECT_H
#define PULSE_STORE_OBJECT_H

#include <stddef.h>
#include "store/store.h"
#include "util/sha256.h"

/* Streaming writer for outputs too large to hold twice in memory. */
struct store_writer;
int store_writer_open(struct store *s, struct store_writer **out);
int store_writer_write(struct store_writer *w, const void *data, size_t n);
/* Finishes the frame and publishes the object (a no-op rename if it already exists). Frees w. */
int store_writer_commit(struct store_writer *w, char id[HASH_ID_SIZE]);
/* Finishes the frame but leaves the file in tmp/ (path in tmp_path) for the caller to publish with
 * store_publish_tmp() after more checks (used by bundle import). Frees w. */
int store_writer_finish(struct store_writer *w, char id[HASH_ID_SIZE], char *tmp_path, size_t cap);
int store_publish_tmp(struct store *s, const char *tmp_path, const char *id);
void store_writer_abort(struct store_writer *w);

/* One-shot put of a buffer. */
int store_put(struct store *s, const void *data, size_t n, char id[HASH_ID_SIZE]);

/* 1 if the object file exists, 0 if not, -1 (err_set) on a malformed id or I/O error. Does not read it. */
int store_has(struct store *s, const char *id);
/* Reads, decompresses and re-hashes; refuses an object whose bytes do not match its id. *data is malloc'd
 * (NUL-terminated for convenience; n excludes the NUL). */
int store_get(struct store *s, const char *id, void **data, size_t *n);
/* Streams the object through cb in chunks, then checks the hash; -1 if cb fails or the hash differs. */
int store_read(struct store *s, const char *id, int (*cb)(void *arg, const void *data, size_t n), void *arg);
/* Re-hashes the object: 0 intact, 1 damaged or missing (err_set says how), -1 on other errors. */
int store_check(struct store *s, const char *id);
/* Size of the uncompressed object, from the zstd frame header. */
int store_size(struct store *s, const char *id, size_t *n);
int store_object_path(const struct store *s, const char *id, char *path, size_t cap);

#endif

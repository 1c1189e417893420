/* record: a stage's result. A record is a JSON object (see docs/store.md for the fields) stored at
 * records/<2 hex>/<62 hex>.json, named by the stage's cache key.
 *
 * Publishing is ordered objects -> record file -> audit commit -> name pointer, and a record counts only once
 * it is in the audit log, so a crash at any instruction leaves at most garbage (an unlogged record file,
 * which the next run overwrites and gc removes), never a live record that points at a missing object. */
#ifndef PULSE_STORE_RECORD_H
#define PULSE_STORE_RECORD_H

#include "store/store.h"
#include "util/json.h"
#include "util/sha256.h"

/* The most bytes a record file may hold, for everything that reads or writes one (record, maint, bundle). */
#define RECORD_MAX ((size_t)4 << 20)

/* Every check record_publish makes, writing nothing, except that the output objects exist (bundle import
 * checks those against what it has staged): "key", "name" and "kind" (printable strings) and "outputs"
 * {name: {"id", ...}} present; "key" equal to key_of(rec) (store/key.h); the stage name fits a names/ file;
 * the record serialised within RECORD_MAX. */
int record_check(struct store *s, const struct json *rec);
/* record_check, then that every output object exists, then publishes: the record file and its audit commit
 * under the "audit" lock (so that two publishers of one key cannot leave the file of one and the log entry
 * of the other), then the name pointer. A failure to write the pointer after the commit is not one of
 * record_publish's: the stage is published, and the next run repairs the pointer through record_name. */
int record_publish(struct store *s, const struct json *rec);
/* Cache look-up: 1 with *rec when the key's record is logged, its file matches the log, and every object it
 * names exists; 0 otherwise (a miss); -1 on error. */
int record_lookup(struct store *s, const char *key, struct json **rec);
/* record_lookup without the objects: 1 with *rec when the key's record is logged and its file matches the
 * log, whether or not its objects are all there (gc --keep keeps such a record: recomputing it gives its
 * key). */
int record_logged(struct store *s, const char *key, struct json **rec);
/* The record a stage name last resolved to (published, or found cached by a run): 1 and *rec, 0 if none,
 * -1 on error. The record is logged and intact, but its objects may since have been removed. */
int record_by_name(struct store *s, const char *name, struct json **rec);
/* 1 when the stage name points at a key, whether or not its record is still there (gc --keep prunes records,
 * not names), 0 when it never did; -1 on error. */
int record_named(struct store *s, const char *name);
/* Points the stage name at key (names/<escaped name>), writing only when it points elsewhere. Runs call it on
 * cache hits too, so the pointer follows the record a manifest uses now, and a pointer lost to a failed write
 * after the audit commit is repaired by the next run. */
int record_name(struct store *s, const char *name, const char *key);
/* Object ids a record references (its outputs), appended to ids (an array of malloc'd strings). */
int record_objects(const struct json *rec, char ***ids, size_t *n);
int record_path(const struct store *s, const char *key, char *path, size_t cap);

#endif

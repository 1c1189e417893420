/* audit: the store's history, a bare git repository at audit.git (libgit2, gitdir fsync on).
 *
 * Branch refs/heads/main; its tree holds records/<64 hex>.json, one blob per published record (the exact
 * bytes of the record file). Every publication is one commit whose message is "<stage name> <kind> <key>";
 * a prune (gc --keep) is one commit that removes records from the tree, "prune <n> records" and a line per
 * record.
 * Because the history is hash-chained, a record file that differs from its logged blob is detected by verify.
 */
#ifndef PULSE_STORE_AUDIT_H
#define PULSE_STORE_AUDIT_H

#include <stddef.h>
#include <stdio.h>
#include "store/store.h"

/* Takes the "audit" lock (waiting for it) and removes the stale git lock files a crashed commit left, which
 * only the lock holder may do. Returns the lock's fd for lock_drop(), or -1 with err_set. Hold it around
 * everything that must not interleave with another publisher's commit (record.c: record file + commit). */
int audit_lock(struct store *s);
/* Commits the record bytes under key; the caller holds audit_lock(). */
int audit_commit_locked(struct store *s, const char *key, const void *record, size_t n, const char *message);
/* One commit whose head tree no longer logs keys (those it does not log are skipped); their records stay in
 * the history. The caller holds audit_lock(). gc --keep prunes through it. */
int audit_drop_locked(struct store *s, char *const *keys, size_t n, const char *message);
/* audit_lock + audit_commit_locked + lock_drop. */
int audit_commit(struct store *s, const char *key, const void *record, size_t n, const char *message);
/* 1 if the head tree logs key with exactly these bytes, 0 if not logged, 2 if logged with other bytes;
 * -1 on error. */
int audit_check(struct store *s, const char *key, const void *record, size_t n);
/* Calls cb for every key logged in the head tree with the logged bytes. Stops at the first non-zero return.
 */
int audit_foreach(struct store *s, int (*cb)(void *arg, const char *key, const void *record, size_t n),
                  void *arg);
/* Prints the history, newest first: "<commit> <iso time> <message>" per line. */
int audit_print_log(struct store *s, FILE *out);
/* Walks every commit and reads every tree and blob (libgit2 re-hashes them); counts problems into *bad and
 * prints one line per problem to out. */
int audit_verify(struct store *s, FILE *out, int *bad);
/* The history as text lines "<commit> <unix time> <message>" oldest first, for bundles. */
int audit_history(struct store *s, char **text, size_t *n);

#endif

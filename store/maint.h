/* maint: store maintenance that reads everything: verify and gc. */
#ifndef PULSE_STORE_MAINT_H
#define PULSE_STORE_MAINT_H

#include <stdio.h>
#include "store/store.h"

/* Checks the whole store and prints one line per problem to out ("damaged object sha256:..: checksum
 * mismatch", "record ...: differs from the audit log", "record ...: key does not match its contents",
 * "record ... (stage ..): object ..: missing", ...).
 * quick != 0 checks object presence instead of re-hashing. Returns the number of problems, -1 on error.
 * Unlogged record files and temp files are garbage from interrupted runs, not damage: reported as notes. */
int store_verify(struct store *s, int quick, FILE *out);
/* Lists (remove == 0) or removes unreferenced objects, unlogged records, temp files and stage lock files
 * nobody holds (locks/stage-*.lock), older than grace_s seconds. Takes the store lock exclusively without
 * waiting (fails if a run is active). Prints what it lists/removes and a total. */
int store_gc(struct store *s, int remove, long grace_s, FILE *out);
/* The store lock as gc takes it: exclusive, without waiting. Its fd for lock_drop, or -1 with err_set ("store
 * is in use by a run; ..."). gc --keep holds it while it reads its manifests, so that no run publishes
 * between what it decides to keep and what it prunes. */
int store_gc_lock(struct store *s);
/* store_gc under a held store_gc_lock. With nkeep >= 0 it also prunes (lists; with remove, drops from the
 * audit log's head in one commit) every logged record not among keep[0..nkeep) whose file is older than
 * grace_s, and then collects its file and the objects only it referenced; nkeep < 0 prunes nothing. */
int store_gc_locked(struct store *s, int remove, long grace_s, char *const *keep, long nkeep, FILE *out);

#endif

/* store: a pulse-pipe store on disk, and the handle every store module works through.
 *
 * Layout (docs/store.md has the full description):
 *   FORMAT                      "pulse-store 1\n"; refused if different
 *   objects/sha256/ab/<62 hex>  immutable objects, one zstd frame each (object.h)
 *   records/ab/<62 hex>.json    stage records named by cache key (record.h)
 *   names/<escaped stage name>  the cache key of the last record published under that stage name
 *   audit.git/                  bare git repository: the hash-chained history of records (audit.h)
 *   locks/                      flock files (lock.h)
 *   tmp/                        temp files; anything here is garbage after a crash, removed by gc
 *
 * A store handle is used by one thread at a time. */
#ifndef PULSE_STORE_STORE_H
#define PULSE_STORE_STORE_H

#include <stddef.h>

struct store {
    char *root;
    void *audit_repo; /* git_repository *, opened lazily by audit.c */
    /* Set by a module that keeps resources in the handle (audit.c: the git repository); store_close calls it
     * first, so store.c itself needs to know nothing of git. */
    void (*close_hook)(struct store *);
};

/* Opens the store at root; with create != 0 makes the layout first if root is missing or empty. A directory
 * that is not a store (no or a different FORMAT) is refused. */
int store_open(const char *root, int create, struct store **out);
void store_close(struct store *s);
/* Writes root/<rel> into out; -1 with err_set if it does not fit. */
int store_path(const struct store *s, char *out, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif

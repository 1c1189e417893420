/* lock: advisory locks (flock) on files under locks/. The kernel drops them when a process dies, so a crash
 * never leaves a store locked.
 *
 *   "store"          every run holds it shared; gc takes it exclusive (and refuses to wait)
 *   "stage-<key>"    held exclusive while one stage is computed, so two runs never compute it at once
 *   "audit"          held exclusive around one audit-log commit */
#ifndef PULSE_STORE_LOCK_H
#define PULSE_STORE_LOCK_H

#include "store/store.h"

enum lock_mode { LOCK_SHARED, LOCK_EXCLUSIVE };

/* Returns an fd >= 0 holding the lock, -2 if wait == 0 and the lock is busy, -1 on error (err_set). */
int lock_take(struct store *s, const char *name, enum lock_mode mode, int wait);
void lock_drop(int fd);

#endif

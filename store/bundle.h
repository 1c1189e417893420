/* bundle: moving finished stages between stores as one deterministic file.
 *
 * A bundle is a pax tar (libarchive, restricted pax) compressed with zstd, entries sorted by name, mtime 0,
 * owner 0/0, mode 0644:
 *   pulse-bundle              "pulse-bundle 1\n"
 *   audit/history             the exporting store's audit history lines (audit_history)
 *   records/<64 hex>.json     one record per exported stage
 *   objects/<64 hex>          the raw (uncompressed) bytes of every object those records reference
 * Import checks everything in a staging area before anything enters the store (entry names and types, every
 * object's hash, record sizes: RECORD_MAX each, 64 MiB in all, and for every record all that record_check
 * checks, its key recomputed included, and its objects present), so a refused bundle changes nothing; then
 * publishes objects, records and one audit commit per record. */
#ifndef PULSE_STORE_BUNDLE_H
#define PULSE_STORE_BUNDLE_H

#include <stddef.h>
#include <stdio.h>
#include "store/store.h"

int bundle_export(struct store *s, const char *const *keys, size_t nkeys, const char *path);
/* Prints one line per imported record to out. Refuses unsafe or inconsistent bundles with one line. */
int bundle_import(struct store *s, const char *path, FILE *out);

#endif

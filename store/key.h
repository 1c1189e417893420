/* key: a stage's cache key, computed from the fields its record carries, so that every record can be checked
 * against the key it is filed under (publish, bundle import and verify all do).
 *
 * key = "sha256:" + SHA-256 of the canonical JSON (json_write JSON_CANONICAL) of
 *   {"inputs": inputs, "kind": kind, "kind_version": kind_version,
 *    "params": params without the keys that "paths" names and without those schema_param_keyed excludes
 *              (parameters that never change a result, such as "recompute"),
 *    "paths": {param: digest}      only when "paths" is present and not empty}
 * A file parameter is keyed by its content digest, never by how its path is spelled. docs/store.md has more.
 */
#ifndef PULSE_STORE_KEY_H
#define PULSE_STORE_KEY_H

#include "util/json.h"
#include "util/sha256.h"

/* spec: any object with "kind" (string), "kind_version" (integer), "params" (object), "inputs" (object) and
 * optionally "paths" ({param: {"sha256": id, ...}}); other fields (a record's outputs, metrics...) are
 * ignored. -1 with err_set on a missing or mistyped field, or when the fields cannot be written as JSON. */
int key_of(const struct json *spec, char key[HASH_ID_SIZE]);

#endif

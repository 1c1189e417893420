/* key: the cache key of a stage spec or record (see key.h for exactly what is hashed). */
#include "store/key.h"

#include <stdlib.h>

#include "util/err.h"
#include "util/schema.h"

static const struct json *field(const struct json *spec, const char *name, enum json_type type) {
    const struct json *v = json_get(spec, name);
    return v && v->type == type ? v : NULL;
}

/* {param: digest} from {param: {"sha256": digest, ...}}; params loses those keys. NULL with err_set on a
 * malformed entry. */
static struct json *path_digests(const struct json *paths, struct json *params) {
    struct json *digests = json_obj();
    for (size_t i = 0; i < paths->len; i++) {
        const char *digest = json_get_str(paths->items[i], "sha256");
        if (!hash_id_valid(digest)) {
            err_set("cache key: paths.%.80s: \"sha256\" is missing or not a sha256 id", paths->keys[i]);
            json_free(digests);
            return NULL;
        }
        json_set(digests, paths->keys[i], json_str(digest));
        json_del(params, paths->keys[i]);
    }
    return digests;
}

/* Drops the parameters that never change a result (schema_param_keyed): switching one reuses the record. */
static void drop_unkeyed(struct json *params) {
    for (size_t i = params->len; i > 0; i--)
        if (!schema_param_keyed(params->keys[i - 1]))
            json_del(params, params->keys[i - 1]);
}

/* The fields every spec needs, with their types. */
static int check_spec(const struct json *spec) {
    int64_t version;
    if (!spec || spec->type != JSON_OBJ)
        return err_set("cache key: the spec is not a JSON object");
    if (!field(spec, "kind", JSON_STR))
        return err_set("cache key: \"kind\" is missing or not a string");
    if (json_get_int(spec, "kind_version", &version) < 0)
        return err_set("cache key: \"kind_version\" is missing or not an integer");
    if (!field(spec, "params", JSON_OBJ))
        return err_set("cache key: \"params\" is missing or not an object");
    if (!field(spec, "inputs", JSON_OBJ))
        return err_set("cache key: \"inputs\" is missing or not an object");
    const struct json *paths = json_get(spec, "paths");
    if (paths && paths->type != JSON_OBJ)
        return err_set("cache key: \"paths\" is not an object");
    return 0;
}

/* The object that is hashed, or NULL with err_set. */
static struct json *key_object(const struct json *spec) {
    if (check_spec(spec) < 0)
        return NULL;
    const struct json *paths = json_get(spec, "paths");
    struct json *k = json_obj(), *params = json_clone(json_get(spec, "params"));
    drop_unkeyed(params);
    if (paths && paths->len) {
        struct json *digests = path_digests(paths, params);
        if (!digests) {
            json_free(params);
            json_free(k);
            return NULL;
        }
        json_set(k, "paths", digests);
    }
    json_set(k, "inputs", json_clone(json_get(spec, "inputs")));
    json_set(k, "kind", json_clone(json_get(spec, "kind")));
    json_set(k, "kind_version", json_clone(json_get(spec, "kind_version")));
    json_set(k, "params", params);
    return k;
}

int key_of(const struct json *spec, char key[HASH_ID_SIZE]) {
    struct json *k = key_object(spec);
    if (!k)
        return -1;
    size_t n;
    char *text = json_write(k, JSON_CANONICAL, &n);
    json_free(k);
    if (!text)
        return err_prefix("cache key");
    sha256_id(text, n, key);
    free(text);
    return 0;
}

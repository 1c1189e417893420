/* record: publishing stage records (record file -> audit commit -> name pointer) and looking them up as the
 * cache does. See record.h for the crash-safety argument. */
#include "store/record.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "store/audit.h"
#include "store/key.h"
#include "store/lock.h"
#include "store/object.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fsio.h"

int record_path(const struct store *s, const char *key, char *path, size_t cap) {
    if (!key || !hash_id_valid(key))
        return err_set("record: invalid key '%.80s'", key ? key : "(none)");
    /* key + 7 skips "sha256:" */
    return store_path(s, path, cap, "records/%.2s/%s.json", key + 7, key + 9);
}

/* names/<escaped>: bytes outside [A-Za-z0-9._-] become %XX, and so does a leading '.', so that no stage name
 * can spell ".", ".." or a hidden file. */
static int name_file(const struct store *s, const char *name, char *path, size_t cap) {
    char esc[NAME_MAX + 1];
    size_t j = 0;
    if (!*name)
        return err_set("record: empty stage name");
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        int plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                    *p == '_' || *p == '-' || (*p == '.' && p != (const unsigned char *)name);
        if (j + 4 > sizeof esc)
            return err_set("record: stage name too long: %.80s...", name);
        if (plain)
            esc[j++] = (char)*p;
        else
            j += (size_t)snprintf(esc + j, sizeof esc - j, "%%%02X", *p);
    }
    esc[j] = 0;
    return store_path(s, path, cap, "names/%s", esc);
}

static const char *key_str(const struct json *rec) {
    const char *k = json_get_str(rec, "key");
    return k ? k : "(no key)";
}

int record_objects(const struct json *rec, char ***ids, size_t *n) {
    const struct json *outs = json_get(rec, "outputs");
    if (!outs || outs->type != JSON_OBJ)
        return err_set("record %s: no \"outputs\" object", key_str(rec));
    for (size_t i = 0; i < outs->len; i++) {
        const char *id = json_get_str(outs->items[i], "id");
        if (!id || !hash_id_valid(id))
            return err_set("record %s: output %s: no valid \"id\"", key_str(rec), outs->keys[i]);
    }
    *ids = xrealloc(*ids, (*n + outs->len + 1) * sizeof **ids);
    for (size_t i = 0; i < outs->len; i++)
        (*ids)[(*n)++] = xstrdup(json_get_str(outs->items[i], "id"));
    return 0;
}

static void free_ids(char **ids, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
}

/* A plain string field: present, not empty, no NUL or control bytes (it goes into one-line log messages). */
static const char *printable_field(const struct json *rec, const char *field) {
    const struct json *v = json_get(rec, field);
    if (!v || v->type != JSON_STR || !v->len || strlen(v->s) != v->len)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)v->s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return NULL;
    return v->s;
}

static int check_fields(const struct json *rec, const char **key, const char **name, const char **kind) {
    char **ids = NULL;
    size_t n = 0;
    if (!rec || rec->type != JSON_OBJ)
        return err_set("record: not a JSON object");
    *key = json_get_str(rec, "key");
    if (!*key || !hash_id_valid(*key))
        return err_set("record: \"key\" is missing or not a sha256 id");
    if (!(*name = printable_field(rec, "name")))
        return err_set("record %s: \"name\" is missing or not a printable string", *key);
    if (!(*kind = printable_field(rec, "kind")))
        return err_set("record %s: \"kind\" is missing or not a printable string", *key);
    int rc = record_objects(rec, &ids, &n);
    free_ids(ids, n);
    return rc;
}

/* The record's published text (JSON_PRETTY) once it passes every check but object presence. */
static int prepare(struct store *s, const struct json *rec, char **text, size_t *n) {
    const char *key = NULL, *name = NULL, *kind = NULL;
    char want[HASH_ID_SIZE], path[PATH_MAX];
    *text = NULL;
    if (check_fields(rec, &key, &name, &kind) < 0)
        return -1;
    if (key_of(rec, want) < 0)
        return err_prefix("record %s", key);
    if (strcmp(want, key) != 0)
        return err_set("record %s: key does not match its contents", key);
    /* a name or key that cannot be a file name is refused before anything is written */
    if (record_path(s, key, path, sizeof path) < 0 || name_file(s, name, path, sizeof path) < 0)
        return -1;
    if (!(*text = json_write(rec, JSON_PRETTY, n)))
        return err_prefix("record %s", key);
    if (*n > RECORD_MAX) {
        free(*text);
        *text = NULL;
        return err_set("record %s: %zu bytes, over the limit of %zu MiB", key, *n, RECORD_MAX >> 20);
    }
    return 0;
}

int record_check(struct store *s, const struct json *rec) {
    char *text;
    size_t n;
    int rc = prepare(s, rec, &text, &n);
    free(text);
    return rc;
}

/* Every output must already be in the store: a record is published only after all its objects. */
static int check_outputs(struct store *s, const struct json *rec, const char *key, const char *name) {
    char **ids = NULL;
    size_t n = 0;
    int rc = record_objects(rec, &ids, &n);
    const struct json *outs = json_get(rec, "outputs");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        int has = store_has(s, ids[i]);
        if (has == 0)
            rc = err_set("record %s (stage %s): output %s: object %s is not in the store", key, name,
                         outs->keys[i], ids[i]);
        else if (has < 0)
            rc = -1;
    }
    free_ids(ids, n);
    return rc;
}

static int write_atomic(struct store *s, const char *path, const void *data, size_t n) {
    char tmp[PATH_MAX], dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (store_path(s, tmp, sizeof tmp, "tmp") < 0)
        return -1;
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    return fsio_mkdir_p(dir) < 0 ? -1 : fsio_write_atomic(tmp, path, data, n);
}

/* Record file and audit commit under one hold of the "audit" lock: otherwise two publishers of one key can
 * interleave "A writes, B writes, B commits, A commits" and leave a file that differs from the log. */
static int publish_locked(struct store *s, const char *key, const char *name, const char *kind,
                          const char *text, size_t n) {
    char path[PATH_MAX];
    if (record_path(s, key, path, sizeof path) < 0)
        return -1;
    int fd = audit_lock(s);
    if (fd < 0)
        return -1;
    int rc = write_atomic(s, path, text, n);
    if (rc == 0) {
        struct buf msg = {0};
        buf_printf(&msg, "%s %s %s", name, kind, key);
        rc = audit_commit_locked(s, key, text, n, msg.data);
        buf_free(&msg);
    }
    /* Under the lock too, so that the pointer follows the order of the log. Once committed, the stage is
     * published whatever happens to the pointer: a run repairs it through record_name. */
    if (rc == 0 && record_name(s, name, key) < 0)
        err_clear();
    lock_drop(fd);
    return rc;
}

int record_publish(struct store *s, const struct json *rec) {
    char *text;
    size_t n;
    if (prepare(s, rec, &text, &n) < 0)
        return -1;
    const char *key = json_get_str(rec, "key"), *name = json_get_str(rec, "name");
    int rc = check_outputs(s, rec, key, name);
    if (rc == 0)
        rc = publish_locked(s, key, name, json_get_str(rec, "kind"), text, n);
    free(text);
    return rc;
}

/* Reads a file that may be missing: 1 with its bytes, 0 if it does not exist, -1 on error. */
static int read_optional(const char *path, size_t max, char **data, size_t *n) {
    struct stat st;
    *data = NULL;
    if (stat(path, &st) < 0)
        return errno == ENOENT ? 0 : err_errno("%s", path);
    return fsio_read_file(path, max, data, n) < 0 ? -1 : 1;
}

/* A logged record's text: 1 with *rec when every object it names exists (or objects == 0), 0 when one is
 * missing. */
static int parse_live(struct store *s, const char *key, const char *text, size_t n, int objects,
                      struct json **rec) {
    char **ids = NULL;
    size_t nids = 0;
    struct json *r = json_parse(text, n);
    if (!r)
        return err_prefix("record %s", key);
    const char *k = json_get_str(r, "key");
    int rc = !k || strcmp(k, key) ? err_set("record %s: its \"key\" field says %.80s", key, k ? k : "nothing")
                                  : record_objects(r, &ids, &nids);
    for (size_t i = 0; rc == 0 && objects && i < nids; i++) {
        int has = store_has(s, ids[i]);
        if (has <= 0)
            rc = has < 0 ? -1 : 1;
    }
    free_ids(ids, nids);
    if (rc != 0) {
        json_free(r);
        return rc < 0 ? -1 : 0;
    }
    *rec = r;
    return 1;
}

static int load_logged(struct store *s, const char *key, int objects, struct json **rec) {
    char path[PATH_MAX], *text;
    size_t n;
    *rec = NULL;
    if (record_path(s, key, path, sizeof path) < 0)
        return -1;
    int rc = read_optional(path, RECORD_MAX, &text, &n);
    if (rc <= 0)
        return rc;
    /* Only a logged record counts: an unlogged file is what an interrupted publish leaves behind, and one
     * that differs from the log is damaged; either way the stage must run again. */
    rc = audit_check(s, key, text, n);
    if (rc == 1)
        rc = parse_live(s, key, text, n, objects, rec);
    else if (rc == 2)
        rc = 0;
    free(text);
    return rc;
}

int record_lookup(struct store *s, const char *key, struct json **rec) {
    return load_logged(s, key, 1, rec);
}

int record_logged(struct store *s, const char *key, struct json **rec) {
    return load_logged(s, key, 0, rec);
}

int record_by_name(struct store *s, const char *name, struct json **rec) {
    char path[PATH_MAX], *text;
    size_t n;
    *rec = NULL;
    if (name_file(s, name, path, sizeof path) < 0)
        return -1;
    int rc = read_optional(path, 256, &text, &n);
    if (rc <= 0)
        return rc;
    while (n && (text[n - 1] == '\n' || text[n - 1] == '\r'))
        text[--n] = 0;
    rc = hash_id_valid(text) ? load_logged(s, text, 0, rec) : err_set("%s: not a cache key", path);
    free(text);
    return rc;
}

int record_named(struct store *s, const char *name) {
    char path[PATH_MAX];
    if (name_file(s, name, path, sizeof path) < 0)
        return -1;
    if (access(path, F_OK) == 0)
        return 1;
    return errno == ENOENT ? 0 : err_errno("%s", path);
}

int record_name(struct store *s, const char *name, const char *key) {
    char path[PATH_MAX], line[HASH_ID_SIZE + 1], *old = NULL;
    size_t n = 0;
    if (name_file(s, name, path, sizeof path) < 0)
        return -1;
    snprintf(line, sizeof line, "%s\n", key);
    int rc = read_optional(path, 256, &old, &n);
    int same = rc == 1 && n == strlen(line) && memcmp(old, line, n) == 0;
    free(old);
    if (rc < 0 || same)
        return rc < 0 ? -1 : 0;
    return write_atomic(s, path, line, strlen(line));
}

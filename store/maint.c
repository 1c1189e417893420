/* maint: verify (read and check everything in a store) and gc (remove what no logged record needs). */
#include "store/maint.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/audit.h"
#include "store/key.h"
#include "store/lock.h"
#include "store/object.h"
#include "store/record.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fsio.h"
#include "util/json.h"
#include "util/sha256.h"

/* ---- directory scans ---- */

/* Called per file found; id is NULL when the entry's name or type is not what belongs there. */
typedef int (*found_cb)(void *arg, const char *path, const char *id, const struct stat *st);
typedef int (*entry_cb)(void *arg, const char *path, const char *name, const struct stat *st);

static int not_dots(const struct dirent *e) {
    return strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
}

/* Calls cb for every entry of dir, sorted by name (so reports read the same every time). A missing dir is
 * empty. */
static int list_dir(const char *dir, entry_cb cb, void *arg) {
    struct dirent **ents;
    int n = scandir(dir, &ents, not_dots, alphasort), rc = 0;
    if (n < 0)
        return errno == ENOENT ? 0 : err_errno("%s", dir);
    for (int i = 0; i < n; i++) {
        char path[PATH_MAX];
        struct stat st;
        if (rc == 0) {
            if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, ents[i]->d_name) >= sizeof path)
                rc = err_set("%s: path too long", dir);
            else if (lstat(path, &st) < 0)
                rc = errno == ENOENT ? 0 : err_errno("%s", path);
            else
                rc = cb(arg, path, ents[i]->d_name, &st);
        }
        free(ents[i]);
    }
    free(ents);
    return rc;
}

/* A fan-out directory: <base>/<2 hex>/<62 hex><suffix>, the file naming id "sha256:<64 hex>". */
struct fanout {
    const char *suffix;
    found_cb cb;
    void *arg;
    const char *fan; /* the current <2 hex> */
};

static int fan_leaf(void *arg, const char *path, const char *name, const struct stat *st) {
    struct fanout *f = arg;
    size_t sl = strlen(f->suffix);
    char id[HASH_ID_SIZE];
    if (!S_ISREG(st->st_mode) || strlen(name) != 62 + sl || !hash_hex_valid(name, 62) ||
        strcmp(name + 62, f->suffix))
        return f->cb(f->arg, path, NULL, st);
    snprintf(id, sizeof id, "sha256:%s%.62s", f->fan, name);
    return f->cb(f->arg, path, id, st);
}

static int fan_top(void *arg, const char *path, const char *name, const struct stat *st) {
    struct fanout *f = arg;
    if (!S_ISDIR(st->st_mode) || strlen(name) != 2 || !hash_hex_valid(name, 2))
        return f->cb(f->arg, path, NULL, st);
    f->fan = name;
    return list_dir(path, fan_leaf, f);
}

static int scan_fanout(struct store *s, const char *rel, const char *suffix, found_cb cb, void *arg) {
    char base[PATH_MAX];
    struct fanout f = {suffix, cb, arg, NULL};
    if (store_path(s, base, sizeof base, "%s", rel) < 0)
        return -1;
    return list_dir(base, fan_top, &f);
}

/* objects/ holds only sha256/; anything beside it is reported as a badly named file. */
struct objects_top {
    struct store *s;
    found_cb cb;
    void *arg;
};

static int objects_entry(void *arg, const char *path, const char *name, const struct stat *st) {
    struct objects_top *t = arg;
    if (S_ISDIR(st->st_mode) && !strcmp(name, "sha256"))
        return scan_fanout(t->s, "objects/sha256", "", t->cb, t->arg);
    return t->cb(t->arg, path, NULL, st);
}

static int scan_objects(struct store *s, found_cb cb, void *arg) {
    char dir[PATH_MAX];
    struct objects_top t = {s, cb, arg};
    if (store_path(s, dir, sizeof dir, "objects") < 0)
        return -1;
    return list_dir(dir, objects_entry, &t);
}

/* ---- sorted string sets ---- */

struct strent {
    char *s;
    char *why; /* optional note: verify, what is wrong (NULL: fine); gc, a pruned record's stage name */
};

struct strset {
    struct strent *v;
    size_t n, cap;
};

static void strset_add(struct strset *set, const char *s, const char *why) {
    if (set->n == set->cap) {
        set->cap = set->cap ? 2 * set->cap : 64;
        set->v = xrealloc(set->v, set->cap * sizeof *set->v);
    }
    set->v[set->n].s = xstrdup(s);
    set->v[set->n++].why = why ? xstrdup(why) : NULL;
}

static int cmp_ent(const void *a, const void *b) {
    return strcmp(((const struct strent *)a)->s, ((const struct strent *)b)->s);
}

static void strset_sort(struct strset *set) {
    if (set->n)
        qsort(set->v, set->n, sizeof *set->v, cmp_ent);
}

static const struct strent *strset_find(const struct strset *set, const char *s) {
    struct strent key = {(char *)s, NULL};
    return set->n ? bsearch(&key, set->v, set->n, sizeof *set->v, cmp_ent) : NULL;
}

static void strset_free(struct strset *set) {
    for (size_t i = 0; i < set->n; i++) {
        free(set->v[i].s);
        free(set->v[i].why);
    }
    free(set->v);
}

/* ---- verify ---- */

struct verify {
    struct store *s;
    FILE *out;
    int quick;
    int problems;
    struct strset objects; /* ids of object files found, with why they are damaged */
    struct strset logged;  /* keys in the audit log */
};

static void problem(struct verify *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(struct verify *v, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(v->out, fmt, ap);
    va_end(ap);
    fputc('\n', v->out);
    v->problems++;
}

static const char *rel_path(const struct store *s, const char *path) {
    size_t n = strlen(s->root);
    return strncmp(path, s->root, n) == 0 && path[n] == '/' ? path + n + 1 : path;
}

static int verify_object(void *arg, const char *path, const char *id, const struct stat *st) {
    struct verify *v = arg;
    (void)st;
    if (!id) {
        problem(v, "object file %s: not a valid object name", rel_path(v->s, path));
        return 0;
    }
    const char *why = NULL;
    if (!v->quick && store_check(v->s, id) != 0) {
        /* store_check says "object <id>: damaged: <what>"; the line names the id once. */
        char prefix[HASH_ID_SIZE + 16];
        why = err_msg();
        snprintf(prefix, sizeof prefix, "object %s: ", id);
        if (!strncmp(why, prefix, strlen(prefix)))
            why += strlen(prefix);
        problem(v, "damaged object %s: %s", id, !strncmp(why, "damaged: ", 9) ? why + 9 : why);
    }
    strset_add(&v->objects, id, why);
    return 0;
}

static void verify_references(struct verify *v, const char *key, const struct json *rec) {
    char **ids = NULL;
    size_t n = 0;
    const char *name = json_get_str(rec, "name");
    if (record_objects(rec, &ids, &n) < 0)
        problem(v, "record %s: %s", key, err_msg());
    for (size_t i = 0; i < n; i++) {
        const struct strent *at = strset_find(&v->objects, ids[i]);
        if (!at)
            problem(v, "record %s (stage %s): object %s: missing", key, name ? name : "?", ids[i]);
        else if (at->why)
            problem(v, "record %s (stage %s): object %s: %s", key, name ? name : "?", ids[i], at->why);
        free(ids[i]);
    }
    free(ids);
}

/* The key must be what the logged record's own fields hash to: a record filed under another stage's key
 * would be served to that stage. */
static void verify_contents(struct verify *v, const char *key, const struct json *rec) {
    char want[HASH_ID_SIZE];
    if (key_of(rec, want) < 0)
        problem(v, "record %s: %s", key, err_msg());
    else if (strcmp(want, key) != 0)
        problem(v, "record %s: key does not match its contents", key);
    verify_references(v, key, rec);
}

/* The record file must hold exactly the logged bytes; the logged bytes say which objects must exist. */
static int verify_record(void *arg, const char *key, const void *logged, size_t n) {
    struct verify *v = arg;
    char path[PATH_MAX], *text = NULL;
    size_t len;
    struct stat st;
    strset_add(&v->logged, key, NULL);
    if (record_path(v->s, key, path, sizeof path) < 0)
        return -1;
    if (stat(path, &st) < 0 && errno == ENOENT)
        problem(v, "record %s: missing", key);
    else if (fsio_read_file(path, RECORD_MAX, &text, &len) < 0)
        problem(v, "record %s: %s", key, err_msg());
    else if (len != n || memcmp(text, logged, n) != 0)
        problem(v, "record %s: differs from the audit log", key);
    free(text);
    struct json *rec = json_parse(logged, n);
    const char *k = rec ? json_get_str(rec, "key") : NULL;
    if (!rec)
        problem(v, "record %s: %s", key, err_msg());
    else if (!k || strcmp(k, key) != 0)
        problem(v, "record %s: its \"key\" field says %.80s", key, k ? k : "nothing");
    else
        verify_contents(v, key, rec);
    json_free(rec);
    return 0;
}

static int note_record(void *arg, const char *path, const char *key, const struct stat *st) {
    struct verify *v = arg;
    (void)st;
    if (!key)
        problem(v, "record file %s: not a valid record name", rel_path(v->s, path));
    else if (!strset_find(&v->logged, key))
        fprintf(v->out,
                "note: record %s: not in the audit log (left by an interrupted publish; gc removes it)\n",
                key);
    return 0;
}

static int note_tmp(void *arg, const char *path, const char *name, const struct stat *st) {
    struct verify *v = arg;
    (void)name;
    fprintf(v->out, "note: temp %s %s: left by an interrupted run (gc removes it)\n",
            S_ISDIR(st->st_mode) ? "directory" : "file", rel_path(v->s, path));
    return 0;
}

static int verify_steps(struct verify *v) {
    int bad = 0;
    char tmp[PATH_MAX];
    if (audit_verify(v->s, v->out, &bad) < 0)
        return -1;
    v->problems += bad;
    if (scan_objects(v->s, verify_object, v) < 0)
        return -1;
    strset_sort(&v->objects);
    /* A logged record that cannot be read is damage audit_verify has already counted; the records after it
     * go unchecked, which the extra problem line says. */
    if (audit_foreach(v->s, verify_record, v) < 0) {
        /* Without the whole log, which record files are unlogged is unknown: no notes about them. */
        problem(v, "%s (records after it not checked)", err_msg());
    } else {
        strset_sort(&v->logged);
        if (scan_fanout(v->s, "records", ".json", note_record, v) < 0)
            return -1;
    }
    if (store_path(v->s, tmp, sizeof tmp, "tmp") < 0)
        return -1;
    return list_dir(tmp, note_tmp, v);
}

int store_verify(struct store *s, int quick, FILE *out) {
    struct verify v = {.s = s, .out = out, .quick = quick};
    int rc = verify_steps(&v);
    if (rc == 0 && v.problems == 0)
        fprintf(out, "ok: %zu objects, %zu records\n", v.objects.n, v.logged.n);
    strset_free(&v.objects);
    strset_free(&v.logged);
    return rc < 0 ? -1 : v.problems;
}

/* ---- gc ---- */

struct gc {
    struct store *s;
    FILE *out;
    int remove;
    long grace_s;
    struct timespec now;
    const struct strset *keep; /* gc --keep: the records to keep; NULL: keep every logged record */
    struct strset refs;        /* object ids named by the logged records kept */
    struct strset logged;      /* logged keys kept */
    struct strset pruned;      /* logged keys to prune, each with its stage name */
    size_t files;
    unsigned long long bytes;
    char dirty[PATH_MAX]; /* the directory we removed from and have not fsynced yet */
};

static int old_enough(const struct gc *g, const struct stat *st) {
    double age = (double)(g->now.tv_sec - st->st_mtim.tv_sec) + (g->now.tv_nsec - st->st_mtim.tv_nsec) / 1e9;
    return age >= (double)g->grace_s;
}

/* A logged record gc --keep drops: not kept, and its file older than the grace period. A record whose file
 * is missing stays (verify's to report). */
static int gc_prunes(struct gc *g, const char *key) {
    char path[PATH_MAX];
    struct stat st;
    if (!g->keep || strset_find(g->keep, key))
        return 0;
    if (record_path(g->s, key, path, sizeof path) < 0)
        return -1;
    return stat(path, &st) == 0 && old_enough(g, &st);
}

/* Referenced objects come from the logged bytes, the authority, not from the record files; a pruned record's
 * objects are referenced by nothing, unless a kept record names them too. */
static int gc_collect(void *arg, const char *key, const void *logged, size_t n) {
    struct gc *g = arg;
    char **ids = NULL;
    size_t nids = 0;
    struct json *rec = json_parse(logged, n);
    if (!rec || record_objects(rec, &ids, &nids) < 0) {
        json_free(rec);
        return err_prefix("gc: logged record %s (run verify)", key);
    }
    int prune = gc_prunes(g, key);
    if (prune == 1)
        strset_add(&g->pruned, key, json_get_str(rec, "name"));
    else
        strset_add(&g->logged, key, NULL);
    for (size_t i = 0; prune == 0 && i < nids; i++)
        strset_add(&g->refs, ids[i], NULL);
    for (size_t i = 0; i < nids; i++)
        free(ids[i]);
    free(ids);
    json_free(rec);
    return prune < 0 ? -1 : 0;
}

/* One audit commit that stops logging the pruned records; their files and objects are then unlogged and
 * unreferenced, which the scans after it remove (a crash in between leaves only that garbage). */
static int gc_prune(struct gc *g) {
    struct buf msg = {0};
    char **keys = xcalloc(g->pruned.n + 1, sizeof *keys);
    buf_printf(&msg, "prune %zu record%s\n\n", g->pruned.n, g->pruned.n == 1 ? "" : "s");
    for (size_t i = 0; i < g->pruned.n; i++) {
        const char *name = g->pruned.v[i].why ? g->pruned.v[i].why : "?";
        fprintf(g->out, "%s record %s %s\n", g->remove ? "prune" : "would prune", g->pruned.v[i].s, name);
        buf_printf(&msg, "%s %s\n", name, g->pruned.v[i].s);
        keys[i] = g->pruned.v[i].s;
    }
    int rc = 0;
    if (g->remove && g->pruned.n) {
        int fd = audit_lock(g->s);
        rc = fd < 0 ? -1 : audit_drop_locked(g->s, keys, g->pruned.n, msg.data);
        if (fd >= 0)
            lock_drop(fd);
    }
    free(keys);
    buf_free(&msg);
    return rc;
}

static int gc_flush(struct gc *g) {
    int rc = g->dirty[0] ? fsio_fsync_dir(g->dirty) : 0;
    g->dirty[0] = 0;
    return rc;
}

/* Lists or removes one file; directory fsyncs are batched per directory (scans go one directory at a time).
 */
static int gc_candidate(struct gc *g, const char *what, const char *path, const struct stat *st) {
    if (!old_enough(g, st))
        return 0;
    fprintf(g->out, "%s %s %s\n", g->remove ? "remove" : "would remove", what, rel_path(g->s, path));
    g->files++;
    g->bytes += (unsigned long long)st->st_size;
    if (!g->remove)
        return 0;
    const char *slash = strrchr(path, '/');
    size_t dl = (size_t)(slash - path);
    if (g->dirty[0] && (strlen(g->dirty) != dl || strncmp(g->dirty, path, dl)) && gc_flush(g) < 0)
        return -1;
    snprintf(g->dirty, sizeof g->dirty, "%.*s", (int)dl, path);
    return fsio_unlink(path);
}

static int gc_object(void *arg, const char *path, const char *id, const struct stat *st) {
    struct gc *g = arg;
    /* A badly named file is not ours to judge: verify reports it. */
    if (!id || strset_find(&g->refs, id))
        return 0;
    return gc_candidate(g, "object", path, st);
}

static int gc_record(void *arg, const char *path, const char *key, const struct stat *st) {
    struct gc *g = arg;
    if (!key || strset_find(&g->logged, key))
        return 0;
    return gc_candidate(g, "record", path, st);
}

static int gc_tmp(void *arg, const char *path, const char *name, const struct stat *st) {
    struct gc *g = arg;
    (void)name;
    if (!S_ISDIR(st->st_mode))
        return gc_candidate(g, "temp", path, st);
    if (list_dir(path, gc_tmp, g) < 0 || gc_flush(g) < 0)
        return -1;
    /* An old directory goes once emptied; one that still holds young files stays (rmdir refuses). */
    if (!g->remove || !old_enough(g, st))
        return 0;
    if (rmdir(path) < 0)
        return errno == ENOTEMPTY || errno == EEXIST ? 0 : err_errno("gc: %s", path);
    snprintf(g->dirty, sizeof g->dirty, "%.*s", (int)(strrchr(path, '/') - path), path);
    return gc_flush(g);
}

/* locks/stage-<64 hex>.lock: one is left per key ever computed. Under gc's exclusive store lock no run is
 * active; taking the file's own lock without waiting also keeps gc off one that something else still holds.
 * It is removed while gc holds it. */
static int gc_lock(void *arg, const char *path, const char *name, const struct stat *st) {
    struct gc *g = arg;
    char lock[80];
    size_t n = strlen(name);
    if (!S_ISREG(st->st_mode) || n != 6 + 64 + 5 || strncmp(name, "stage-", 6) ||
        !hash_hex_valid(name + 6, 64) || strcmp(name + 70, ".lock"))
        return 0;
    snprintf(lock, sizeof lock, "%.70s", name);
    int fd = lock_take(g->s, lock, LOCK_EXCLUSIVE, 0);
    if (fd == -2)
        return 0;
    if (fd < 0)
        return -1;
    int rc = gc_candidate(g, "lock", path, st);
    lock_drop(fd);
    return rc;
}

static int gc_steps(struct gc *g) {
    char tmp[PATH_MAX], locks[PATH_MAX];
    if (audit_foreach(g->s, gc_collect, g) < 0)
        return -1;
    strset_sort(&g->refs);
    strset_sort(&g->logged);
    strset_sort(&g->pruned);
    if (gc_prune(g) < 0)
        return -1;
    if (scan_objects(g->s, gc_object, g) < 0 || gc_flush(g) < 0 ||
        scan_fanout(g->s, "records", ".json", gc_record, g) < 0 || gc_flush(g) < 0 ||
        store_path(g->s, tmp, sizeof tmp, "tmp") < 0 || list_dir(tmp, gc_tmp, g) < 0 || gc_flush(g) < 0 ||
        store_path(g->s, locks, sizeof locks, "locks") < 0 || list_dir(locks, gc_lock, g) < 0)
        return -1;
    if (gc_flush(g) < 0)
        return -1;
    if (g->keep)
        fprintf(g->out, "%s %zu record%s, kept %zu\n", g->remove ? "pruned" : "would prune", g->pruned.n,
                g->pruned.n == 1 ? "" : "s", g->logged.n);
    fprintf(g->out, "%s %zu files, %llu bytes\n", g->remove ? "removed" : "would remove", g->files, g->bytes);
    return 0;
}

int store_gc_lock(struct store *s) {
    int fd = lock_take(s, "store", LOCK_EXCLUSIVE, 0);
    if (fd == -2)
        return err_set("store is in use by a run; try gc again when it ends");
    return fd;
}

int store_gc_locked(struct store *s, int remove, long grace_s, char *const *keep, long nkeep, FILE *out) {
    struct strset kept = {0};
    for (long i = 0; i < nkeep; i++)
        strset_add(&kept, keep[i], NULL);
    strset_sort(&kept);
    struct gc g = {
        .s = s, .out = out, .remove = remove, .grace_s = grace_s, .keep = nkeep >= 0 ? &kept : NULL};
    clock_gettime(CLOCK_REALTIME, &g.now);
    int rc = gc_steps(&g);
    strset_free(&g.refs);
    strset_free(&g.logged);
    strset_free(&g.pruned);
    strset_free(&kept);
    return rc;
}

int store_gc(struct store *s, int remove, long grace_s, FILE *out) {
    int fd = store_gc_lock(s);
    if (fd < 0)
        return -1;
    int rc = store_gc_locked(s, remove, grace_s, NULL, -1, out);
    lock_drop(fd);
    return rc;
}

/* bundle: writes finished stages into one deterministic tar+zstd file and imports such files back, checking
 * every entry in a staging area before anything enters the store. */
#include "store/bundle.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/audit.h"
#include "store/lock.h"
#include "store/object.h"
#include "store/record.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fsio.h"
#include "util/json.h"
#include "util/sha256.h"

#define BUNDLE_MAGIC "pulse-bundle 1\n"
#define MAGIC_MAX 64
/* All records are held parsed until every one is checked: a cap on their total keeps that bounded. */
#define RECORDS_TOTAL_MAX ((uint64_t)64 << 20)
/* Each object entry may become a staged temp file; a cap keeps a hostile bundle from exhausting inodes. */
#define ENTRIES_MAX ((size_t)1 << 20)
#define HEX_LEN 64
#define ID_PREFIX "sha256:"
#define ID_PREFIX_LEN 7
#define IO_CHUNK ((size_t)1 << 16)

/* ---- small containers ---- */

struct strs {
    char **v;
    size_t n, cap;
};

static void strs_add(struct strs *l, char *s) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->v = xrealloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = s;
}

static void strs_free(struct strs *l) {
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void strs_sort_unique(struct strs *l) {
    if (l->n == 0)
        return;
    qsort(l->v, l->n, sizeof *l->v, cmp_str);
    size_t w = 1;
    for (size_t i = 1; i < l->n; i++) {
        if (strcmp(l->v[i], l->v[w - 1]) == 0)
            free(l->v[i]);
        else
            l->v[w++] = l->v[i];
    }
    l->n = w;
}

/* A set of strings (open addressing): duplicate entry names must be caught before an entry's data is read,
 * and bundles may hold many objects. */
struct nameset {
    char **slot;
    size_t cap, n;
};

static uint64_t name_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static size_t nameset_find(const struct nameset *ns, const char *name) {
    size_t i = name_hash(name) & (ns->cap - 1);
    while (ns->slot[i] && strcmp(ns->slot[i], name) != 0)
        i = (i + 1) & (ns->cap - 1);
    return i;
}

static int nameset_has(const struct nameset *ns, const char *name) {
    return ns->cap && ns->slot[nameset_find(ns, name)] != NULL;
}

static void nameset_grow(struct nameset *ns) {
    struct nameset bigger = {xcalloc(ns->cap ? 2 * ns->cap : 64, sizeof(char *)), ns->cap ? 2 * ns->cap : 64,
                             ns->n};
    for (size_t i = 0; i < ns->cap; i++)
        if (ns->slot[i])
            bigger.slot[nameset_find(&bigger, ns->slot[i])] = ns->slot[i];
    free(ns->slot);
    *ns = bigger;
}

/* Returns 1 if name was already there, 0 if added. */
static int nameset_add(struct nameset *ns, const char *name) {
    if (2 * (ns->n + 1) > ns->cap)
        nameset_grow(ns);
    size_t i = nameset_find(ns, name);
    if (ns->slot[i])
        return 1;
    ns->slot[i] = xstrdup(name);
    ns->n++;
    return 0;
}

static void nameset_free(struct nameset *ns) {
    for (size_t i = 0; i < ns->cap; i++)
        free(ns->slot[i]);
    free(ns->slot);
    memset(ns, 0, sizeof *ns);
}

/* ---- export ---- */

struct exp_rec {
    const char *key; /* borrowed from the sorted key list */
    char *bytes;
    size_t n;
};

struct exporter {
    struct store *s;
    struct archive *a;
    const char *path, *tmp;
    int fd;
    int io_failed; /* fsio already reported the write error (it names the path) */
    int discard;   /* tearing down after a failure: keep the first error, write nothing more */
    struct strs keys, objs;
    struct exp_rec *recs;
    char *history;
    size_t nhistory;
};

static la_ssize_t exp_write_cb(struct archive *a, void *arg, const void *data, size_t n) {
    struct exporter *x = arg;
    if (x->discard)
        return (la_ssize_t)n;
    if (fsio_write_all(x->fd, data, n, x->tmp) != 0) {
        x->io_failed = 1;
        archive_set_error(a, EIO, "%s", err_msg());
        return -1;
    }
    return (la_ssize_t)n;
}

static int exp_fail(struct exporter *x, const char *entry) {
    if (x->io_failed)
        return -1;
    return err_set("bundle: %s: %s: %s", x->path, entry, archive_error_string(x->a));
}

static int exp_header(struct exporter *x, const char *name, size_t size) {
    struct archive_entry *e = archive_entry_new();
    if (!e)
        return err_set("bundle: %s: out of memory", name);
    archive_entry_set_pathname(e, name);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, (la_int64_t)size);
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    archive_entry_set_mtime(e, 0, 0);
    int r = archive_write_header(x->a, e);
    archive_entry_free(e);
    return r == ARCHIVE_OK ? 0 : exp_fail(x, name);
}

static int exp_data(struct exporter *x, const char *name, const void *data, size_t n) {
    if (n && archive_write_data(x->a, data, n) != (la_ssize_t)n)
        return exp_fail(x, name);
    return 0;
}

static int exp_bytes(struct exporter *x, const char *name, const void *data, size_t n) {
    if (exp_header(x, name, n) != 0 || exp_data(x, name, data, n) != 0)
        return -1;
    return archive_write_finish_entry(x->a) == ARCHIVE_OK ? 0 : exp_fail(x, name);
}

struct exp_stream {
    struct exporter *x;
    const char *name;
    size_t done, size;
    int failed;
    char msg[512]; /* our error, kept in case store_read replaces it */
};

static int exp_stream_cb(void *arg, const void *data, size_t n) {
    struct exp_stream *st = arg;
    if (n > st->size - st->done) {
        err_set("bundle: %s: object grew while being exported", st->name);
    } else if (exp_data(st->x, st->name, data, n) == 0) {
        st->done += n;
        return 0;
    }
    st->failed = 1;
    snprintf(st->msg, sizeof st->msg, "%s", err_msg());
    return -1;
}

static int exp_object(struct exporter *x, const char *id) {
    char name[HEX_LEN + 16];
    snprintf(name, sizeof name, "objects/%s", id + ID_PREFIX_LEN);
    struct exp_stream st = {.x = x, .name = name};
    if (store_size(x->s, id, &st.size) != 0)
        return err_prefix("bundle: %s", name);
    if (exp_header(x, name, st.size) != 0)
        return -1;
    if (store_read(x->s, id, exp_stream_cb, &st) != 0)
        return st.failed ? err_set("%s", st.msg) : err_prefix("bundle: %s", name);
    if (st.done != st.size)
        return err_set("bundle: %s: object is shorter than its frame header says", name);
    return archive_write_finish_entry(x->a) == ARCHIVE_OK ? 0 : exp_fail(x, name);
}

/* Reads the record file of one key and checks it is exactly the logged one. */
static int exp_record(struct exporter *x, const char *key, struct exp_rec *out) {
    struct json *rec = NULL;
    int hit = hash_id_valid(key) ? record_lookup(x->s, key, &rec) : 0;
    if (hit < 0)
        return -1;
    if (hit == 0)
        return err_set("bundle: stage record %s is not in the store", key);
    char path[PATH_MAX];
    char **ids = NULL;
    size_t nids = 0;
    out->key = key;
    int rc = record_path(x->s, key, path, sizeof path);
    if (rc == 0)
        rc = fsio_read_file(path, RECORD_MAX, &out->bytes, &out->n);
    if (rc == 0) {
        int logged = audit_check(x->s, key, out->bytes, out->n);
        if (logged != 1)
            rc = logged < 0 ? -1 : err_set("bundle: record %s: its file differs from the audit log", key);
    }
    if (rc == 0)
        rc = record_objects(rec, &ids, &nids);
    for (size_t i = 0; i < nids; i++)
        strs_add(&x->objs, ids[i]);
    free(ids);
    json_free(rec);
    return rc;
}

static int exp_collect(struct exporter *x, const char *const *keys, size_t nkeys) {
    for (size_t i = 0; i < nkeys; i++)
        strs_add(&x->keys, xstrdup(keys[i]));
    strs_sort_unique(&x->keys);
    x->recs = xcalloc(x->keys.n ? x->keys.n : 1, sizeof *x->recs);
    for (size_t i = 0; i < x->keys.n; i++)
        if (exp_record(x, x->keys.v[i], &x->recs[i]) != 0)
            return -1;
    strs_sort_unique(&x->objs);
    for (size_t i = 0; i < x->objs.n; i++)
        if (!hash_id_valid(x->objs.v[i]))
            return err_set("bundle: a record references a malformed object id %s", x->objs.v[i]);
    return audit_history(x->s, &x->history, &x->nhistory);
}

/* Entries in byte order of their names: audit/ < objects/ < pulse-bundle < records/. */
static int exp_entries(struct exporter *x) {
    if (exp_bytes(x, "audit/history", x->history, x->nhistory) != 0)
        return -1;
    for (size_t i = 0; i < x->objs.n; i++)
        if (exp_object(x, x->objs.v[i]) != 0)
            return -1;
    if (exp_bytes(x, "pulse-bundle", BUNDLE_MAGIC, strlen(BUNDLE_MAGIC)) != 0)
        return -1;
    for (size_t i = 0; i < x->keys.n; i++) {
        char name[HEX_LEN + 16];
        snprintf(name, sizeof name, "records/%s.json", x->recs[i].key + ID_PREFIX_LEN);
        if (exp_bytes(x, name, x->recs[i].bytes, x->recs[i].n) != 0)
            return -1;
    }
    return 0;
}

static int exp_write(struct exporter *x) {
    x->a = archive_write_new();
    if (!x->a)
        return err_set("bundle: %s: out of memory", x->path);
    /* No padding to a 10 KiB block: the file stays a clean zstd stream that `zstd -d | tar t` reads. */
    if (archive_write_set_format_pax_restricted(x->a) != ARCHIVE_OK ||
        archive_write_add_filter_zstd(x->a) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(x->a, 1) != ARCHIVE_OK ||
        archive_write_open(x->a, x, NULL, exp_write_cb, NULL) != ARCHIVE_OK)
        return exp_fail(x, "setup");
    if (exp_entries(x) != 0)
        return -1;
    if (archive_write_close(x->a) != ARCHIVE_OK)
        return exp_fail(x, "close");
    return 0;
}

static void exp_free(struct exporter *x) {
    x->discard = 1;
    if (x->a)
        archive_write_free(x->a);
    for (size_t i = 0; x->recs && i < x->keys.n; i++)
        free(x->recs[i].bytes);
    free(x->recs);
    strs_free(&x->keys);
    strs_free(&x->objs);
    free(x->history);
}

int bundle_export(struct store *s, const char *const *keys, size_t nkeys, const char *path) {
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return err_set("bundle: %s: path too long", path);
    struct exporter x = {.s = s, .path = path, .tmp = tmp, .fd = -1};
    int rc = exp_collect(&x, keys, nkeys);
    if (rc == 0) {
        x.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
        rc = x.fd < 0 ? err_errno("bundle: %s", tmp) : exp_write(&x);
    }
    if (rc == 0)
        rc = fsio_fsync(x.fd, tmp);
    if (x.fd >= 0 && rc == 0)
        rc = fsio_close(x.fd, tmp);
    else if (x.fd >= 0)
        close(x.fd); /* the first error is the one to report */
    if (rc == 0)
        rc = fsio_rename(tmp, path);
    if (rc != 0 && x.fd >= 0)
        unlink(tmp);
    exp_free(&x);
    return rc;
}

/* ---- import ---- */

enum entry_kind { ENT_MAGIC, ENT_HISTORY, ENT_RECORD, ENT_OBJECT };

struct staged {
    char id[HASH_ID_SIZE];
    char *tmp; /* NULL when the object was already in the store (nothing staged) or once published */
};

struct in_rec {
    char key[HASH_ID_SIZE];
    struct json *rec;
};

struct importer {
    struct store *s;
    const char *path;
    struct archive *a;
    struct nameset seen;
    struct staged *objs;
    size_t nobjs, capobjs;
    struct in_rec *recs;
    size_t nrecs, caprecs;
    uint64_t record_bytes; /* announced sizes of the record entries so far */
    int have_magic;
    char *buf;
};

/* Entry names come from outside: keep error lines on one line and of sane length. */
static const char *printable(const char *in, char *out, size_t cap) {
    size_t i = 0;
    for (; in[i] && i + 4 < cap; i++)
        out[i] = (unsigned char)in[i] < 0x20 || in[i] == 0x7f ? '?' : in[i];
    if (in[i]) {
        memcpy(out + i, "...", 3);
        i += 3;
    }
    out[i] = '\0';
    return out;
}

static int imp_bad(const char *name, const char *what) {
    char shown[256];
    return err_set("bundle: %s: %s", printable(name, shown, sizeof shown), what);
}

static int imp_check_path(const char *name) {
    if (name[0] == '/')
        return imp_bad(name, "absolute path refused");
    for (const char *p = name;;) {
        const char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == 0)
            return imp_bad(name, "empty path component refused");
        if ((n == 2 && memcmp(p, "..", 2) == 0) || (n == 1 && p[0] == '.'))
            return imp_bad(name, "'.' or '..' path component refused");
        if (!end)
            return 0;
        p = end + 1;
    }
}

static int imp_check_type(struct archive_entry *e, const char *name) {
    if (archive_entry_hardlink(e))
        return imp_bad(name, "hard link refused (only regular files belong in a bundle)");
    if (archive_entry_symlink(e))
        return imp_bad(name, "symlink refused (only regular files belong in a bundle)");
    switch (archive_entry_filetype(e)) {
    case AE_IFREG:
        break;
    case AE_IFLNK:
        return imp_bad(name, "symlink refused (only regular files belong in a bundle)");
    case AE_IFDIR:
        return imp_bad(name, "directory refused (only regular files belong in a bundle)");
    default:
        return imp_bad(name, "special file refused (only regular files belong in a bundle)");
    }
    if (archive_entry_sparse_count(e) > 0)
        return imp_bad(name, "sparse file refused");
    return 0;
}

/* Which layout slot name is; hex receives the 64 hex digits of records and objects. */
static int imp_classify(const char *name, char hex[HEX_LEN + 1]) {
    size_t n = strlen(name);
    if (strcmp(name, "pulse-bundle") == 0)
        return ENT_MAGIC;
    if (strcmp(name, "audit/history") == 0)
        return ENT_HISTORY;
    if (n == 8 + HEX_LEN && memcmp(name, "objects/", 8) == 0 && hash_hex_valid(name + 8, HEX_LEN)) {
        memcpy(hex, name + 8, HEX_LEN + 1);
        return ENT_OBJECT;
    }
    if (n == 8 + HEX_LEN + 5 && memcmp(name, "records/", 8) == 0 && hash_hex_valid(name + 8, HEX_LEN) &&
        strcmp(name + 8 + HEX_LEN, ".json") == 0) {
        memcpy(hex, name + 8, HEX_LEN);
        hex[HEX_LEN] = '\0';
        return ENT_RECORD;
    }
    return imp_bad(name, "not part of the pulse bundle layout");
}

static int imp_check_size(struct archive_entry *e, const char *name, int kind) {
    if (!archive_entry_size_is_set(e) || archive_entry_size(e) < 0)
        return imp_bad(name, "entry has no size");
    uint64_t size = (uint64_t)archive_entry_size(e);
    if ((kind == ENT_MAGIC && size > MAGIC_MAX) || (kind == ENT_RECORD && size > RECORD_MAX))
        return imp_bad(name, "entry too large");
    return 0;
}

/* Streams the entry's data through sink (NULL discards) and checks the length against the header. */
static int imp_read(struct importer *im, const char *name, int64_t size,
                    int (*sink)(void *, const void *, size_t), void *arg) {
    int64_t total = 0;
    for (;;) {
        la_ssize_t r = archive_read_data(im->a, im->buf, IO_CHUNK);
        if (r < 0) {
            char shown[256];
            return err_set("bundle: %s: truncated or damaged data: %s", printable(name, shown, sizeof shown),
                           archive_error_string(im->a));
        }
        if (r == 0)
            break;
        total += r;
        if (total > size)
            return imp_bad(name, "more data than its header says");
        if (sink && sink(arg, im->buf, (size_t)r) != 0)
            return -1;
    }
    return total == size ? 0 : imp_bad(name, "truncated data");
}

struct membuf {
    char *data;
    size_t n, cap;
};

static int membuf_sink(void *arg, const void *data, size_t n) {
    struct membuf *m = arg;
    if (n > m->cap - m->n)
        return err_set("bundle: entry larger than announced");
    memcpy(m->data + m->n, data, n);
    m->n += n;
    return 0;
}

static int imp_magic(struct importer *im, int64_t size) {
    char text[MAGIC_MAX + 1];
    struct membuf m = {text, 0, MAGIC_MAX};
    if (imp_read(im, "pulse-bundle", size, membuf_sink, &m) != 0)
        return -1;
    if (m.n != strlen(BUNDLE_MAGIC) || memcmp(text, BUNDLE_MAGIC, m.n) != 0)
        return err_set("bundle: pulse-bundle: not a version 1 pulse-bundle header");
    im->have_magic = 1;
    return 0;
}

static int imp_record(struct importer *im, const char *name, const char *hex, int64_t size) {
    struct membuf m = {xmalloc((size_t)size + 1), 0, (size_t)size};
    struct json *rec = NULL;
    int rc = imp_read(im, name, size, membuf_sink, &m);
    if (rc == 0 && !(rec = json_parse(m.data, m.n)))
        rc = err_prefix("bundle: %s", name);
    free(m.data);
    if (rc != 0)
        return -1;
    struct in_rec r;
    snprintf(r.key, sizeof r.key, ID_PREFIX "%s", hex);
    const char *key = json_get_str(rec, "key");
    if (!key || strcmp(key, r.key) != 0) {
        json_free(rec);
        return imp_bad(name, "its \"key\" does not match its name");
    }
    r.rec = rec;
    if (im->nrecs == im->caprecs) {
        im->caprecs = im->caprecs ? 2 * im->caprecs : 16;
        im->recs = xrealloc(im->recs, im->caprecs * sizeof *im->recs);
    }
    im->recs[im->nrecs++] = r;
    return 0;
}

static int hash_sink(void *arg, const void *data, size_t n) {
    sha256_update(arg, data, n);
    return 0;
}

static int writer_sink(void *arg, const void *data, size_t n) {
    return store_writer_write(arg, data, n);
}

/* Hashes or stages the object's bytes; staged->tmp is set only for a file left in tmp/. */
static int imp_object_bytes(struct importer *im, const char *name, int64_t size, struct staged *o,
                            char *got) {
    int present = store_has(im->s, o->id);
    if (present < 0)
        return -1;
    if (present) {
        struct sha256 *h = sha256_new();
        if (imp_read(im, name, size, hash_sink, h) != 0) {
            sha256_free(h);
            return -1;
        }
        sha256_final_id(h, got);
        return 0;
    }
    struct store_writer *w;
    char tmp[PATH_MAX];
    if (store_writer_open(im->s, &w) != 0)
        return -1;
    if (imp_read(im, name, size, writer_sink, w) != 0) {
        store_writer_abort(w);
        return -1;
    }
    if (store_writer_finish(w, got, tmp, sizeof tmp) != 0)
        return -1;
    o->tmp = xstrdup(tmp);
    return 0;
}

static int imp_object(struct importer *im, const char *name, const char *hex, int64_t size) {
    if (im->nobjs == im->capobjs) {
        im->capobjs = im->capobjs ? 2 * im->capobjs : 16;
        im->objs = xrealloc(im->objs, im->capobjs * sizeof *im->objs);
    }
    struct staged *o = &im->objs[im->nobjs];
    snprintf(o->id, sizeof o->id, ID_PREFIX "%s", hex);
    o->tmp = NULL;
    char got[HASH_ID_SIZE];
    if (imp_object_bytes(im, name, size, o, got) != 0)
        return -1;
    im->nobjs++; /* counted now so that a staged file is cleaned up even if the check below fails */
    if (strcmp(got, o->id) != 0)
        return imp_bad(name, "content does not match its name");
    return 0;
}

static int imp_entry(struct importer *im, struct archive_entry *e) {
    const char *name = archive_entry_pathname(e);
    char hex[HEX_LEN + 1];
    if (!name || !*name)
        return err_set("bundle: %s: entry without a name", im->path);
    if (imp_check_type(e, name) != 0 || imp_check_path(name) != 0)
        return -1;
    int kind = imp_classify(name, hex);
    if (kind < 0 || imp_check_size(e, name, kind) != 0)
        return -1;
    if (nameset_add(&im->seen, name))
        return imp_bad(name, "duplicate entry refused");
    int64_t size = archive_entry_size(e);
    if (kind == ENT_RECORD && (im->record_bytes += (uint64_t)size) > RECORDS_TOTAL_MAX)
        return err_set("bundle: %s: its records hold more than %llu MiB in all", im->path,
                       (unsigned long long)(RECORDS_TOTAL_MAX >> 20));
    switch (kind) {
    case ENT_MAGIC:
        return imp_magic(im, size);
    case ENT_HISTORY:
        return imp_read(im, name, size, NULL, NULL); /* informational: the target logs its own commits */
    case ENT_RECORD:
        return imp_record(im, name, hex, size);
    default:
        return imp_object(im, name, hex, size);
    }
}

static int imp_entries(struct importer *im) {
    im->a = archive_read_new();
    if (!im->a)
        return err_set("bundle: %s: out of memory", im->path);
    archive_read_support_filter_zstd(im->a);
    archive_read_support_format_tar(im->a);
    if (archive_read_open_filename(im->a, im->path, IO_CHUNK) != ARCHIVE_OK)
        return err_set("bundle: %s: cannot read (truncated, damaged or not a pulse bundle): %s", im->path,
                       archive_error_string(im->a));
    /* A plain tar cut at an entry boundary reads as a shorter valid tar; a cut zstd frame never does. */
    if (archive_filter_code(im->a, 0) != ARCHIVE_FILTER_ZSTD)
        return err_set("bundle: %s: not zstd-compressed, not a pulse bundle", im->path);
    for (size_t count = 0;; count++) {
        struct archive_entry *e;
        int r = archive_read_next_header(im->a, &e);
        if (r == ARCHIVE_EOF)
            return 0;
        if (r != ARCHIVE_OK)
            return err_set("bundle: %s: truncated, damaged or not a pulse bundle: %s", im->path,
                           archive_error_string(im->a));
        if (count == ENTRIES_MAX)
            return err_set("bundle: %s: more than %zu entries", im->path, ENTRIES_MAX);
        if (imp_entry(im, e) != 0)
            return -1;
    }
}

/* Everything record_publish will check, against the staged objects as well as the store's: the records are
 * all checked before anything is published, so a bundle refused for any record changes nothing. */
static int imp_check_record(struct importer *im, const struct in_rec *r, struct nameset *referenced) {
    char name[HEX_LEN + 16], entry[HEX_LEN + 16];
    snprintf(name, sizeof name, "records/%s.json", r->key + ID_PREFIX_LEN);
    if (record_check(im->s, r->rec) != 0)
        return err_prefix("bundle: %s", name);
    char **ids = NULL;
    size_t nids = 0;
    int rc = record_objects(r->rec, &ids, &nids) == 0 ? 0 : err_prefix("bundle: %s", name);
    for (size_t i = 0; i < nids; i++) {
        if (rc == 0) {
            nameset_add(referenced, ids[i]);
            snprintf(entry, sizeof entry, "objects/%s", ids[i] + ID_PREFIX_LEN);
            int present = nameset_has(&im->seen, entry) ? 1 : store_has(im->s, ids[i]);
            if (present == 0)
                rc = err_set("bundle: %s: references %s, absent from the bundle and the store", name, ids[i]);
            else if (present < 0)
                rc = -1;
        }
        free(ids[i]);
    }
    free(ids);
    return rc;
}

static int imp_verify(struct importer *im) {
    if (!im->have_magic)
        return err_set("bundle: %s: no pulse-bundle entry, not a pulse bundle", im->path);
    struct nameset referenced = {0};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < im->nrecs; i++)
        rc = imp_check_record(im, &im->recs[i], &referenced);
    for (size_t i = 0; rc == 0 && i < im->nobjs; i++)
        if (!nameset_has(&referenced, im->objs[i].id))
            rc = err_set("bundle: objects/%s: not referenced by any record", im->objs[i].id + ID_PREFIX_LEN);
    nameset_free(&referenced);
    return rc;
}

static int cmp_rec(const void *a, const void *b) {
    return strcmp(((const struct in_rec *)a)->key, ((const struct in_rec *)b)->key);
}

/* Objects before the records that name them, so a failure here leaves only unreferenced garbage. */
static int imp_publish(struct importer *im, FILE *out) {
    for (size_t i = 0; i < im->nobjs; i++) {
        struct staged *o = &im->objs[i];
        if (o->tmp && store_publish_tmp(im->s, o->tmp, o->id) != 0)
            return -1;
        free(o->tmp);
        o->tmp = NULL;
    }
    qsort(im->recs, im->nrecs, sizeof *im->recs, cmp_rec);
    for (size_t i = 0; i < im->nrecs; i++) {
        const struct in_rec *r = &im->recs[i];
        struct json *old = NULL;
        int hit = record_lookup(im->s, r->key, &old);
        json_free(old);
        if (hit < 0 || (hit == 0 && record_publish(im->s, r->rec) != 0))
            return -1;
        if (out)
            fprintf(out, "%s %s %s %s\n", hit ? "present" : "imported", json_get_str(r->rec, "name"),
                    json_get_str(r->rec, "kind"), r->key);
    }
    return 0;
}

static void imp_free(struct importer *im) {
    if (im->a)
        archive_read_free(im->a);
    for (size_t i = 0; i < im->nobjs; i++) {
        if (im->objs[i].tmp)
            unlink(im->objs[i].tmp); /* best effort: an error is already being reported */
        free(im->objs[i].tmp);
    }
    free(im->objs);
    for (size_t i = 0; i < im->nrecs; i++)
        json_free(im->recs[i].rec);
    free(im->recs);
    nameset_free(&im->seen);
    free(im->buf);
}

int bundle_import(struct store *s, const char *path, FILE *out) {
    /* Shared like every run: gc must not delete staged files or just-published objects before their records.
     */
    int lock = lock_take(s, "store", LOCK_SHARED, 1);
    if (lock < 0)
        return -1;
    struct importer im = {.s = s, .path = path, .buf = xmalloc(IO_CHUNK)};
    int rc = imp_entries(&im);
    if (rc == 0)
        rc = imp_verify(&im);
    if (rc == 0)
        rc = imp_publish(&im, out);
    imp_free(&im);
    lock_drop(lock);
    return rc;
}

/* object: content-addressed object files: a streaming zstd writer that publishes by rename, and a reader that
 * decompresses and re-hashes everything it returns. */
#include "store/object.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "util/buf.h"
#include "util/err.h"
#include "util/fsio.h"
#include "util/sha256_behind.h"

#define OBJECT_ZSTD_LEVEL 3
/* Objects from this size on are hashed on a second thread while they compress or decode (util/
 * sha256_behind.h); below it a thread would cost more than the hash. */
#define HASH_BEHIND_MIN (1u << 20)
#define PATH_CAP 4096
/* ZSTD_FRAMEHEADERSIZE_MAX, which zstd.h only exposes with ZSTD_STATIC_LINKING_ONLY. */
#define FRAME_HEADER_MAX 18

/* ---- paths ---- */

int store_object_path(const struct store *s, const char *id, char *path, size_t cap) {
    if (!id || !hash_id_valid(id))
        return err_set("object %.80s: malformed id (want sha256:<64 lowercase hex>)", id ? id : "(null)");
    const char *hex = id + strlen("sha256:");
    return store_path(s, path, cap, "objects/sha256/%.2s/%s", hex, hex + 2);
}

int store_has(struct store *s, const char *id) {
    char path[PATH_CAP];
    struct stat st;
    if (store_object_path(s, id, path, sizeof path) < 0)
        return -1;
    if (stat(path, &st) == 0)
        return S_ISREG(st.st_mode) ? 1 : err_set("object %s: %s is not a regular file", id, path);
    if (errno == ENOENT)
        return 0;
    return err_errno("object %s: %s", id, path);
}

/* ---- writing ---- */

struct store_writer {
    struct store *s;
    ZSTD_CCtx *cctx;
    struct sha256 *hash;          /* the bytes written, hashed as they come; or */
    struct sha256_behind *behind; /* store_put's whole buffer, hashed on another thread while it compresses */
    int fd;
    int failed; /* a write failed: the frame is incomplete and must not be published */
    char tmp[PATH_CAP];
    void *out;
    size_t out_cap;
};

/* The temp file is garbage once we give up on it; a plain unlink keeps the error message that explains why.
 */
static void writer_free(struct store_writer *w, int remove_tmp) {
    if (w->fd >= 0)
        close(w->fd);
    if (remove_tmp && w->tmp[0])
        unlink(w->tmp);
    ZSTD_freeCCtx(w->cctx);
    if (w->hash)
        sha256_free(w->hash);
    if (w->behind)
        sha256_behind_abort(w->behind);
    free(w->out);
    free(w);
}

static int writer_setup(struct store_writer *w, unsigned long long pledged, const void *whole) {
    w->cctx = ZSTD_createCCtx();
    if (!w->cctx)
        return err_set("%s: cannot allocate a zstd context", w->tmp);
    size_t rc = ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, OBJECT_ZSTD_LEVEL);
    if (!ZSTD_isError(rc))
        rc = ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1);
    if (!ZSTD_isError(rc) && pledged != ZSTD_CONTENTSIZE_UNKNOWN)
        rc = ZSTD_CCtx_setPledgedSrcSize(w->cctx, pledged);
    if (ZSTD_isError(rc))
        return err_set("%s: zstd: %s", w->tmp, ZSTD_getErrorName(rc));
    if (whole) {
        w->behind = sha256_behind_start(whole);
        sha256_behind_ready(w->behind, (size_t)pledged);
    } else
        w->hash = sha256_new();
    w->out_cap = ZSTD_CStreamOutSize();
    w->out = xmalloc(w->out_cap);
    return 0;
}

/* pledged: the exact size when known (recorded in the frame header, so store_size need not decompress).
 * whole: those bytes, all of them, when the caller has them at hand (store_put): hashed behind. */
static int writer_open(struct store *s, unsigned long long pledged, const void *whole,
                       struct store_writer **out) {
    char dir[PATH_CAP];
    *out = NULL;
    if (store_path(s, dir, sizeof dir, "tmp") < 0)
        return -1;
    struct store_writer *w = xcalloc(1, sizeof *w);
    w->s = s;
    w->fd = fsio_create_tmp(dir, w->tmp, sizeof w->tmp);
    if (w->fd < 0) {
        w->tmp[0] = '\0';
        writer_free(w, 0);
        return -1;
    }
    if (writer_setup(w, pledged, whole) < 0) {
        writer_free(w, 1);
        return -1;
    }
    *out = w;
    return 0;
}

int store_writer_open(struct store *s, struct store_writer **out) {
    return writer_open(s, ZSTD_CONTENTSIZE_UNKNOWN, NULL, out);
}

/* Feeds input through the compressor and writes whatever it emits; with ZSTD_e_end also closes the frame. */
static int writer_pump(struct store_writer *w, ZSTD_inBuffer *in, ZSTD_EndDirective mode) {
    for (;;) {
        ZSTD_outBuffer ob = {w->out, w->out_cap, 0};
        size_t left = ZSTD_compressStream2(w->cctx, &ob, in, mode);
        if (ZSTD_isError(left))
            return err_set("%s: zstd: %s", w->tmp, ZSTD_getErrorName(left));
        if (ob.pos && fsio_write_all(w->fd, w->out, ob.pos, w->tmp) < 0)
            return -1;
        if (mode == ZSTD_e_end ? left == 0 : in->pos == in->size)
            return 0;
    }
}

int store_writer_write(struct store_writer *w, const void *data, size_t n) {
    if (w->failed)
        return err_set("%s: write after an earlier failure", w->tmp);
    if (w->hash)
        sha256_update(w->hash, data, n);
    ZSTD_inBuffer in = {data, n, 0};
    if (writer_pump(w, &in, ZSTD_e_continue) < 0) {
        w->failed = 1;
        return -1;
    }
    return 0;
}

/* Ends the frame and makes the temp file durable; id receives the hash of everything written. */
static int writer_end(struct store_writer *w, char id[HASH_ID_SIZE]) {
    if (w->failed)
        return err_set("%s: cannot finish an object after a failed write", w->tmp);
    ZSTD_inBuffer none = {NULL, 0, 0};
    if (writer_pump(w, &none, ZSTD_e_end) < 0 || fsio_fsync(w->fd, w->tmp) < 0)
        return -1;
    int fd = w->fd;
    w->fd = -1;
    if (fsio_close(fd, w->tmp) < 0)
        return -1;
    if (w->behind)
        sha256_behind_finish(w->behind, id);
    else
        sha256_final_id(w->hash, id);
    w->hash = NULL;
    w->behind = NULL;
    return 0;
}

int store_publish_tmp(struct store *s, const char *tmp_path, const char *id) {
    char path[PATH_CAP];
    if (store_object_path(s, id, path, sizeof path) < 0)
        goto fail;
    char *slash = strrchr(path, '/');
    *slash = '\0';
    int rc = fsio_mkdir_p(path);
    *slash = '/';
    /* rename replaces an existing object atomically; its bytes are the same, or it was damaged. */
    if (rc < 0 || fsio_rename(tmp_path, path) < 0)
        goto fail;
    return 0;
fail:
    unlink(tmp_path);
    return -1;
}

int store_writer_commit(struct store_writer *w, char id[HASH_ID_SIZE]) {
    if (writer_end(w, id) < 0) {
        writer_free(w, 1);
        return -1;
    }
    int rc = store_publish_tmp(w->s, w->tmp, id);
    writer_free(w, 0);
    return rc;
}

int store_writer_finish(struct store_writer *w, char id[HASH_ID_SIZE], char *tmp_path, size_t cap) {
    if (strlen(w->tmp) >= cap) {
        err_set("%s: temp path does not fit the caller's buffer", w->tmp);
        writer_free(w, 1);
        return -1;
    }
    if (writer_end(w, id) < 0) {
        writer_free(w, 1);
        return -1;
    }
    memcpy(tmp_path, w->tmp, strlen(w->tmp) + 1);
    writer_free(w, 0);
    return 0;
}

void store_writer_abort(struct store_writer *w) {
    if (w)
        writer_free(w, 1);
}

int store_put(struct store *s, const void *data, size_t n, char id[HASH_ID_SIZE]) {
    struct store_writer *w;
    if (writer_open(s, n, n >= HASH_BEHIND_MIN ? data : NULL, &w) < 0)
        return -1;
    if (store_writer_write(w, data, n) < 0) {
        store_writer_abort(w);
        return -1;
    }
    return store_writer_commit(w, id);
}

/* ---- reading ----
 * Internal readers return 0 (intact), 1 (damaged or missing, err_set says how) or -1 (any other error). */

typedef int (*object_cb)(void *arg, const void *data, size_t n);

struct reader {
    const char *id;
    ZSTD_DCtx *dctx;
    struct sha256 *hash;
    size_t hint; /* last ZSTD_decompressStream result: 0 exactly when a frame has ended */
    void *out;
    size_t out_cap;
    object_cb cb;
    void *arg;
    /* Decoding into one buffer (store_get) instead of out: dst_len of dst_cap bytes decoded, hashed behind
     * the decoder on another thread (util/sha256_behind.h), told every READER_STRETCH bytes. */
    unsigned char *dst;
    size_t dst_len, dst_cap, told;
    struct sha256_behind *behind;
};
#define READER_STRETCH (4u << 20)

static int damaged(const char *id, const char *what) {
    err_set("object %s: damaged: %s", id, what);
    return 1;
}

static int object_open(struct store *s, const char *id, int *fd) {
    char path[PATH_CAP];
    if (store_object_path(s, id, path, sizeof path) < 0)
        return -1;
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd >= 0)
        return 0;
    if (errno == ENOENT) {
        err_set("object %s: not in the store", id);
        return 1;
    }
    return err_errno("object %s: %s", id, path);
}

/* n decoded bytes: hashed and handed to the callback, or, decoded into dst, made ready for the hash behind.
 */
static int reader_emit(struct reader *r, const void *data, size_t n) {
    if (r->dst) {
        r->dst_len += n;
        if (r->dst_len - r->told >= READER_STRETCH)
            sha256_behind_ready(r->behind, r->told = r->dst_len);
        return 0;
    }
    sha256_update(r->hash, data, n);
    return r->cb && r->cb(r->arg, data, n) != 0 ? -1 : 0;
}

/* Decompresses one chunk of the file. A frame end followed by more bytes is damage, not a second frame. */
static int reader_chunk(struct reader *r, const void *data, size_t n) {
    ZSTD_inBuffer in = {data, n, 0};
    int full = 1; /* a full output buffer may leave decoded bytes inside the decoder */
    while (in.pos < in.size || (full && r->hint != 0)) {
        if (r->hint == 0)
            return damaged(r->id, "trailing data after the zstd frame");
        ZSTD_outBuffer out = {r->out, r->out_cap, 0};
        if (r->dst)
            out = (ZSTD_outBuffer){r->dst, r->dst_cap, r->dst_len};
        size_t from = out.pos, rc = ZSTD_decompressStream(r->dctx, &out, &in);
        if (ZSTD_isError(rc))
            return damaged(r->id, ZSTD_getErrorName(rc));
        r->hint = rc;
        full = out.pos == out.size;
        if (out.pos > from && reader_emit(r, (const char *)out.dst + from, out.pos - from) != 0)
            return -1;
        if (full && r->dst) /* dst holds the header's size and one byte more */
            return damaged(r->id, "more content than its frame header says");
    }
    return 0;
}

static int reader_finish(struct reader *r) {
    if (r->hint != 0)
        return damaged(r->id, "truncated zstd frame");
    char got[HASH_ID_SIZE];
    if (r->dst) {
        sha256_behind_ready(r->behind, r->dst_len);
        sha256_behind_finish(r->behind, got);
        r->behind = NULL;
    } else
        sha256_final_id(r->hash, got);
    r->hash = NULL;
    if (strcmp(got, r->id) != 0) {
        err_set("object %s: damaged: content hashes to %s", r->id, got);
        return 1;
    }
    return 0;
}

static int reader_run(struct reader *r, int fd, void *in, size_t in_cap) {
    for (;;) {
        ssize_t got = read(fd, in, in_cap);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0 && errno == EIO)
            return damaged(r->id, "read error (EIO)");
        if (got < 0)
            return err_errno("object %s: read", r->id);
        if (got == 0)
            return reader_finish(r);
        int rc = reader_chunk(r, in, (size_t)got);
        if (rc != 0)
            return rc;
    }
}

/* Reads the object at fd: decoded into r's dst when it has one, else handed to r's callback. */
static int reader_go(struct reader *r, int fd) {
    r->hint = 1;
    r->dctx = ZSTD_createDCtx();
    if (!r->dctx)
        return err_set("object %s: cannot allocate a zstd context", r->id);
    if (r->dst)
        r->behind = sha256_behind_start(r->dst);
    else {
        r->hash = sha256_new();
        r->out_cap = ZSTD_DStreamOutSize();
        r->out = xmalloc(r->out_cap);
    }
    size_t in_cap = ZSTD_DStreamInSize();
    void *in = xmalloc(in_cap);
    int rc = reader_run(r, fd, in, in_cap);
    free(in);
    free(r->out);
    if (r->hash)
        sha256_free(r->hash);
    if (r->behind)
        sha256_behind_abort(r->behind);
    ZSTD_freeDCtx(r->dctx);
    return rc;
}

static int object_stream_fd(const char *id, int fd, object_cb cb, void *arg) {
    struct reader r = {.id = id, .cb = cb, .arg = arg};
    return reader_go(&r, fd);
}

static int object_stream(struct store *s, const char *id, object_cb cb, void *arg) {
    int fd;
    int rc = object_open(s, id, &fd);
    if (rc != 0)
        return rc;
    rc = object_stream_fd(id, fd, cb, arg);
    close(fd);
    return rc;
}

/* The content size the frame header claims (ZSTD_CONTENTSIZE_UNKNOWN when the writer did not know it). */
static int header_size(const char *id, int fd, unsigned long long *size) {
    unsigned char head[FRAME_HEADER_MAX];
    ssize_t got;
    do
        got = pread(fd, head, sizeof head, 0);
    while (got < 0 && errno == EINTR);
    if (got < 0)
        return err_errno("object %s: read", id);
    *size = ZSTD_getFrameContentSize(head, (size_t)got);
    if (*size == ZSTD_CONTENTSIZE_ERROR)
        return damaged(id, "no valid zstd frame header");
    return 0;
}

int store_read(struct store *s, const char *id, int (*cb)(void *arg, const void *data, size_t n), void *arg) {
    return object_stream(s, id, cb, arg) == 0 ? 0 : -1;
}

int store_check(struct store *s, const char *id) {
    return object_stream(s, id, NULL, NULL);
}

struct grow {
    const char *id;
    char *data;
    size_t len, cap;
};

static int grow_cb(void *arg, const void *data, size_t n) {
    struct grow *g = arg;
    if (n + 1 > g->cap - g->len) {
        size_t cap = g->cap ? g->cap : 65536;
        while (cap - g->len < n + 1)
            cap *= 2;
        char *p = realloc(g->data, cap);
        if (!p)
            return err_set("object %s: out of memory (%zu bytes)", g->id, cap);
        g->data = p;
        g->cap = cap;
    }
    memcpy(g->data + g->len, data, n);
    g->len += n;
    return 0;
}

/* The whole object in memory. When the header says its size (store_put's objects do) a large one is decoded
 * into a buffer of that size, hashed behind the decoder, and a small one collected into such a buffer;
 * otherwise (a streamed object, or a damaged header that claims more than can be had) it is collected as it
 * comes. */
static int object_get_fd(const char *id, int fd, struct grow *g) {
    unsigned long long size = 0;
    int known = header_size(id, fd, &size) == 0 && size < ZSTD_CONTENTSIZE_ERROR && size < SIZE_MAX;
    if (known && size >= HASH_BEHIND_MIN && (g->data = malloc((size_t)size + 1)) != NULL) {
        struct reader r = {.id = id, .dst = (unsigned char *)g->data, .dst_cap = (size_t)size + 1};
        int rc = reader_go(&r, fd);
        g->len = r.dst_len;
        return rc;
    }
    if (known && (g->data = malloc((size_t)size + 1)) != NULL)
        g->cap = (size_t)size + 1;
    int rc = object_stream_fd(id, fd, grow_cb, g);
    if (rc == 0 && !g->data)
        rc = grow_cb(g, "", 0); /* the empty object still gets its NUL */
    return rc;
}

int store_get(struct store *s, const char *id, void **data, size_t *n) {
    *data = NULL;
    *n = 0;
    int fd;
    if (object_open(s, id, &fd) != 0)
        return -1;
    struct grow g = {.id = id};
    int rc = object_get_fd(id, fd, &g);
    close(fd);
    if (rc != 0) {
        free(g.data);
        return -1;
    }
    g.data[g.len] = '\0';
    *data = g.data;
    *n = g.len;
    return 0;
}

static int count_cb(void *arg, const void *data, size_t n) {
    (void)data;
    *(size_t *)arg += n;
    return 0;
}

int store_size(struct store *s, const char *id, size_t *n) {
    int fd;
    *n = 0;
    if (object_open(s, id, &fd) != 0)
        return -1;
    unsigned long long size = 0;
    int rc = header_size(id, fd, &size);
    if (rc == 0 && size != ZSTD_CONTENTSIZE_UNKNOWN)
        *n = (size_t)size;
    else if (rc == 0)
        rc = object_stream_fd(id, fd, count_cb, n); /* streamed objects: count (and verify) */
    close(fd);
    return rc == 0 ? 0 : -1;
}

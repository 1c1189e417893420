/* store: opening (and creating) a store directory, checking its FORMAT, and building paths inside it. */
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/buf.h"
#include "util/err.h"
#include "util/fsio.h"

#define STORE_FORMAT "pulse-store 1\n"

/* tmp first: FORMAT is written through it. */
static const char *const layout_dirs[] = {"tmp", "objects/sha256", "records", "names", "locks"};
#define NLAYOUT (sizeof layout_dirs / sizeof layout_dirs[0])

int store_path(const struct store *s, char *out, size_t cap, const char *fmt, ...) {
    int n = snprintf(out, cap, "%s/", s->root);
    if (n < 0 || (size_t)n >= cap)
        return err_set("%s: path too long", s->root);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(out + n, cap - (size_t)n, fmt, ap);
    va_end(ap);
    if (m < 0 || (size_t)m >= cap - (size_t)n)
        return err_set("%s/%s: path too long", s->root, out + n);
    return 0;
}

/* Only layout directories count as "empty": an interrupted store_open may have created some before FORMAT. */
static int is_layout_name(const char *name) {
    if (!strcmp(name, "objects"))
        return 1;
    for (size_t i = 0; i < NLAYOUT; i++)
        if (!strcmp(name, layout_dirs[i]))
            return 1;
    return 0;
}

/* 1 if root holds nothing but (possibly) layout directories, 0 if it holds anything else, -1 on error. */
static int dir_is_fresh(const char *root) {
    DIR *d = opendir(root);
    if (!d)
        return err_errno("%s: cannot read directory", root);
    int fresh = 1;
    struct dirent *e;
    while (fresh && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && !is_layout_name(e->d_name))
            fresh = 0;
    }
    closedir(d);
    return fresh;
}

/* Creates missing layout directories; cheap when they all exist (no writes then). */
static int make_layout(struct store *s) {
    char path[4096];
    struct stat st;
    for (size_t i = 0; i < NLAYOUT; i++) {
        if (store_path(s, path, sizeof path, "%s", layout_dirs[i]) < 0)
            return -1;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
            continue;
        if (fsio_mkdir_p(path) < 0)
            return -1;
    }
    return 0;
}

static int write_format(struct store *s) {
    char tmp[4096], path[4096];
    if (store_path(s, tmp, sizeof tmp, "tmp") < 0 || store_path(s, path, sizeof path, "FORMAT") < 0)
        return -1;
    if (fsio_mkdir_p(tmp) < 0)
        return -1;
    if (fsio_write_atomic(tmp, path, STORE_FORMAT, strlen(STORE_FORMAT)) < 0)
        return -1;
    return make_layout(s);
}

/* Quotes the first line of a foreign FORMAT file, shortened and without control bytes. */
static void describe_format(const char *data, size_t n, char *out, size_t cap) {
    size_t j = 0;
    for (size_t i = 0; i < n && data[i] != '\n' && j + 1 < cap && i < 40; i++)
        out[j++] = (data[i] >= 0x20 && data[i] < 0x7f) ? data[i] : '?';
    out[j] = '\0';
}

static int check_format(struct store *s, const char *path) {
    char *data;
    size_t n;
    if (fsio_read_file(path, 4096, &data, &n) < 0)
        return -1;
    int ok = n == strlen(STORE_FORMAT) && memcmp(data, STORE_FORMAT, n) == 0;
    if (!ok) {
        char what[48];
        describe_format(data, n, what, sizeof what);
        err_set("%s: unsupported store format '%s'", s->root, what);
    }
    free(data);
    return ok ? 0 : -1;
}

/* The root exists as a directory: check it is a store, or make it one when allowed. */
static int open_existing(struct store *s, int create) {
    char path[4096];
    struct stat st;
    if (store_path(s, path, sizeof path, "FORMAT") < 0)
        return -1;
    if (stat(path, &st) == 0)
        return check_format(s, path) < 0 ? -1 : make_layout(s);
    if (errno != ENOENT)
        return err_errno("%s", path);
    int fresh = dir_is_fresh(s->root);
    if (fresh < 0)
        return -1;
    if (!fresh || !create)
        return err_set("%s: not a pulse-pipe store (no FORMAT file)", s->root);
    return write_format(s);
}

static int open_root(struct store *s, int create) {
    struct stat st;
    if (stat(s->root, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            return err_set("%s: not a pulse-pipe store (not a directory)", s->root);
        return open_existing(s, create);
    }
    if (errno != ENOENT)
        return err_errno("%s", s->root);
    if (!create)
        return err_set("%s: no such store", s->root);
    if (fsio_mkdir_p(s->root) < 0)
        return -1;
    return write_format(s);
}

int store_open(const char *root, int create, struct store **out) {
    *out = NULL;
    if (!root || !*root)
        return err_set("store: empty store path");
    struct store *s = xcalloc(1, sizeof *s);
    s->root = xstrdup(root);
    /* Trailing slashes would give "root//objects" paths in messages. */
    size_t len = strlen(s->root);
    while (len > 1 && s->root[len - 1] == '/')
        s->root[--len] = '\0';
    if (open_root(s, create) < 0) {
        store_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

void store_close(struct store *s) {
    if (!s)
        return;
    if (s->close_hook)
        s->close_hook(s);
    free(s->root);
    free(s);
}

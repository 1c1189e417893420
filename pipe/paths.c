/* paths: the user's files and directories named by PARAM_PATH parameters: where they are (relative paths are
 * taken from the manifest's directory, like require) and what they hold (a digest that goes into the cache
 * key, so editing a data file invalidates exactly the stages that read it). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pipe/pipe.h"
#include "util/buf.h"
#include "util/err.h"

#define PATHS_MAX_DEPTH 32

int paths_resolve(const char *manifest, const char *path, char *abs, size_t cap) {
    char joined[PATH_MAX * 2];
    if (path[0] == '/') {
        snprintf(joined, sizeof joined, "%s", path);
    } else {
        char *copy = xstrdup(manifest);
        snprintf(joined, sizeof joined, "%s/%s", dirname(copy), path);
        free(copy);
    }
    char real[PATH_MAX];
    if (!realpath(joined, real))
        return err_errno("path '%s' (%s)", path, joined);
    if (strlen(real) >= cap)
        return err_set("path '%s': too long", path);
    strcpy(abs, real);
    return 0;
}

static int file_digest(const char *path, char id[HASH_ID_SIZE]) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_errno("%s", path);
    struct sha256 *h = sha256_new();
    static __thread char chunk[1 << 20];
    ssize_t got;
    while ((got = read(fd, chunk, sizeof chunk)) > 0)
        sha256_update(h, chunk, (size_t)got);
    int saved = errno;
    close(fd);
    if (got < 0) {
        sha256_free(h);
        errno = saved;
        return err_errno("reading %s", path);
    }
    sha256_final_id(h, id);
    return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b) {
    return strcmp((*a)->d_name, (*b)->d_name); /* bytewise, not locale order: the digest must not vary */
}

static int tree_digest(const char *path, int depth, char id[HASH_ID_SIZE]);

/* One line per entry, "<f|d> <digest> <name>\n", in bytewise name order. Links are followed (model caches
 * are symlink farms); anything but files and directories is refused. */
static int dir_lines(const char *path, int depth, struct buf *lines) {
    struct dirent **names;
    int n = scandir(path, &names, NULL, by_name), rc = n < 0 ? err_errno("%s", path) : 0;
    for (int k = 0; k < n; k++) {
        const char *e = names[k]->d_name;
        char child[PATH_MAX], dig[HASH_ID_SIZE];
        struct stat st;
        if (rc || !strcmp(e, ".") || !strcmp(e, ".."))
            continue;
        if (snprintf(child, sizeof child, "%s/%s", path, e) >= (int)sizeof child)
            rc = err_set("%s/%s: path too long", path, e);
        else if (stat(child, &st) != 0)
            rc = err_errno("%s", child);
        else if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
            rc = err_set("%s: neither a file nor a directory", child);
        else if ((S_ISDIR(st.st_mode) ? tree_digest(child, depth + 1, dig) : file_digest(child, dig)) != 0)
            rc = -1;
        else
            buf_printf(lines, "%c %s %s\n", S_ISDIR(st.st_mode) ? 'd' : 'f', dig, e);
    }
    for (int k = 0; k < n; k++)
        free(names[k]);
    free(names);
    return rc;
}

static int tree_digest(const char *path, int depth, char id[HASH_ID_SIZE]) {
    if (depth > PATHS_MAX_DEPTH)
        return err_set("%s: directories nested deeper than %d (a link loop?)", path, PATHS_MAX_DEPTH);
    struct buf lines = {0};
    int rc = dir_lines(path, depth, &lines);
    if (rc == 0)
        sha256_id(lines.data ? lines.data : "", lines.len, id);
    buf_free(&lines);
    return rc;
}

int paths_digest(const char *abs, char id[HASH_ID_SIZE]) {
    struct stat st;
    if (stat(abs, &st) != 0)
        return err_errno("%s", abs);
    if (S_ISDIR(st.st_mode))
        return tree_digest(abs, 0, id);
    if (!S_ISREG(st.st_mode))
        return err_set("%s: neither a file nor a directory", abs);
    return file_digest(abs, id);
}

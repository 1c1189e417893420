/* replay: runs a fuzz harness over files, without libFuzzer, so that every build (gcc included) replays the
 * committed corpus as a test: the inputs that once crashed a parser, and the seeds. Arguments are files or
 * directories (their regular files, in sorted order). Exit 0 when every input returned; a crash is the
 * failure. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int one(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return perror(path), -1;
    size_t cap = 1 << 16, n = 0, got;
    uint8_t *buf = malloc(cap), *grown;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0)
        if ((n += got) == cap) {
            grown = realloc(buf, cap *= 2);
            if (!grown)
                free(buf);
            buf = grown;
        }
    fclose(f);
    /* an exact-size copy, so that reading past the input is past the allocation too */
    uint8_t *exact = buf ? malloc(n ? n : 1) : NULL;
    if (!exact) {
        free(buf);
        return perror(path), -1;
    }
    memcpy(exact, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b) {
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int walk(const char *path, int *count) {
    struct stat st;
    if (stat(path, &st) != 0)
        return perror(path), -1;
    if (!S_ISDIR(st.st_mode))
        return ++*count, one(path);
    struct dirent **list;
    int n = scandir(path, &list, NULL, by_name), rc = n < 0 ? -1 : 0;
    for (int i = 0; i < n; i++) {
        char sub[4096];
        if (list[i]->d_name[0] != '.' && rc == 0 &&
            snprintf(sub, sizeof sub, "%s/%s", path, list[i]->d_name) < (int)sizeof sub)
            rc = walk(sub, count);
        free(list[i]);
    }
    free(list);
    return rc;
}

int main(int argc, char **argv) {
    int count = 0;
    for (int i = 1; i < argc; i++)
        if (walk(argv[i], &count) != 0)
            return 1;
    printf("%d inputs replayed\n", count);
    return count ? 0 : 1;
}

/* common: small pieces every subcommand uses: failing with one line, opening the store, reading options. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pipe/pipe.h"
#include "util/err.h"

int pipe_fail(int code) {
    fprintf(stderr, "pulse-pipe: %s\n", err_msg());
    return code;
}

struct store *pipe_store(const struct pipe_opts *o, int create) {
    struct store *s;
    if (store_open(o->store, create, &s) != 0) {
        pipe_fail(EXIT_FAILED);
        return NULL;
    }
    return s;
}

const char *opt_value(int argc, char **argv, int *i, const char *name, int *bad) {
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0)
        return NULL;
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (argv[*i][n] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        fprintf(stderr, "pulse-pipe: %s needs a value\n", name);
        *bad = 1;
        return NULL;
    }
    return argv[++*i];
}

double pipe_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int opt_count(const char *name, const char *v, int max, int *out) {
    char *end;
    long t = strtol(v, &end, 10);
    if (end == v || *end || t < 1 || t > max)
        return err_set("%s: expected a number from 1 to %d, got '%s'", name, max, v);
    *out = (int)t;
    return 0;
}

int opt_threads(const char *v, int *threads) {
    return opt_count("--threads", v, 4096, threads);
}

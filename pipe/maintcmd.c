/* verify, gc: the store maintenance commands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipe/pipe.h"
#include "store/maint.h"

int cmd_verify(const struct pipe_opts *o, int argc, char **argv) {
    int quick = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = 1;
        } else {
            puts(
                "usage: pulse-pipe verify [--quick]\nRe-hashes every object (--quick: checks presence only), "
                "checks every record against the audit log\nand names each problem; exit 3 if any.");
            return strcmp(argv[i], "--help") == 0 ? EXIT_OK : EXIT_USAGE;
        }
    }
    struct store *s = pipe_store(o, 0);
    if (!s)
        return EXIT_FAILED;
    int bad = store_verify(s, quick, stdout);
    store_close(s);
    if (bad < 0)
        return pipe_fail(EXIT_FAILED);
    if (bad > 0)
        fprintf(stderr, "pulse-pipe: verify: %d problem%s found in %s\n", bad, bad == 1 ? "" : "s", o->store);
    return bad ? EXIT_DAMAGE : EXIT_OK;
}

int cmd_gc(const struct pipe_opts *o, int argc, char **argv) {
    int yes = 0, bad = 0;
    long grace = 3600;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "--yes") == 0) {
            yes = 1;
        } else if ((v = opt_value(argc, argv, &i, "--grace", &bad))) {
            char *end;
            grace = strtol(v, &end, 10);
            if (end == v || *end || grace < 0) {
                fprintf(stderr, "pulse-pipe: gc: --grace wants seconds, got '%s'\n", v);
                return EXIT_USAGE;
            }
        } else {
            if (!bad)
                puts("usage: pulse-pipe gc [--yes] [--grace SECONDS]\nLists what no logged record references "
                     "(objects, unlogged records, temp files) and,\nwith --yes, removes it. Nothing younger "
                     "than "
                     "--grace seconds (default 3600) is touched.");
            return strcmp(argv[i], "--help") == 0 ? EXIT_OK : EXIT_USAGE;
        }
    }
    struct store *s = pipe_store(o, 0);
    if (!s)
        return EXIT_FAILED;
    int rc = store_gc(s, yes, grace, stdout);
    store_close(s);
    return rc == 0 ? EXIT_OK : pipe_fail(EXIT_FAILED);
}

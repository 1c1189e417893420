/* export, import: a manifest's finished stages to and from a bundle file (store/bundle.h has the format). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipe/pipe.h"
#include "store/bundle.h"
#include "util/buf.h"
#include "util/err.h"

static int export_plan(struct plan *p, struct store *s, const char *out) {
    const char **keys = xcalloc(p->dag.n + 1, sizeof *keys);
    int rc = 0;
    for (size_t k = 0; k < p->dag.n && rc == 0; k++) {
        size_t i = p->dag.order[k];
        int known = plan_resolve(p, i);
        if (known < 0)
            rc = -1;
        else if (known == 1 || plan_lookup(p, s, i) != 1)
            rc = err_set("export: stage '%s' is not done (run the manifest first)", p->dag.stages[i].name);
        keys[k] = p->keys[i];
    }
    if (rc == 0)
        rc = bundle_export(s, keys, p->dag.n, out);
    if (rc == 0)
        printf("exported %zu stages to %s\n", p->dag.n, out);
    free(keys);
    return rc;
}

int cmd_export(const struct pipe_opts *o, int argc, char **argv) {
    const char *manifest = NULL, *out = NULL;
    int bad = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "--help") == 0) {
            puts("usage: pulse-pipe export MANIFEST -o FILE\nWrites the records of every stage of MANIFEST, "
                 "the objects they reference and the audit\nhistory to FILE (a deterministic tar+zstd "
                 "bundle).");
            return EXIT_OK;
        } else if ((v = opt_value(argc, argv, &i, "-o", &bad))) {
            out = v;
        } else if (bad || argv[i][0] == '-' || manifest) {
            if (!bad)
                fprintf(stderr, "pulse-pipe: export: unexpected argument '%s'\n", argv[i]);
            return EXIT_USAGE;
        } else {
            manifest = argv[i];
        }
    }
    if (!manifest || !out) {
        fprintf(stderr, "pulse-pipe: export: usage: pulse-pipe export MANIFEST -o FILE\n");
        return EXIT_USAGE;
    }
    struct plan p;
    if (plan_load(&p, manifest) != 0) {
        plan_free(&p);
        return pipe_fail(EXIT_USAGE);
    }
    struct store *s = pipe_store(o, 0);
    int rc = s ? export_plan(&p, s, out) : -2;
    if (s)
        store_close(s);
    plan_free(&p);
    return rc == 0 ? EXIT_OK : rc == -2 ? EXIT_FAILED : pipe_fail(EXIT_FAILED);
}

int cmd_import(const struct pipe_opts *o, int argc, char **argv) {
    if (argc != 2 || argv[1][0] == '-') {
        puts(
            "usage: pulse-pipe import FILE\nChecks every entry and hash of a bundle, then brings its records "
            "and objects into\nthe store (each record gets an audit commit). Nothing enters if anything is "
            "wrong.");
        return argc == 2 && strcmp(argv[1], "--help") == 0 ? EXIT_OK : EXIT_USAGE;
    }
    struct store *s = pipe_store(o, 1);
    if (!s)
        return EXIT_FAILED;
    int rc = bundle_import(s, argv[1], stdout);
    store_close(s);
    return rc == 0 ? EXIT_OK : pipe_fail(EXIT_FAILED);
}

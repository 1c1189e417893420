/* export, import: a manifest's finished stages to and from a bundle file (store/bundle.h has the format). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipe/pipe.h"
#include "store/bundle.h"
#include "util/buf.h"
#include "util/err.h"

/* Exports the stages marked in keep (each with what it needs), every one of which must be done. */
static int export_plan(struct plan *p, struct store *s, const unsigned char *keep, const char *out) {
    const char **keys = xcalloc(p->dag.n + 1, sizeof *keys);
    size_t n = 0;
    int rc = 0;
    for (size_t k = 0; k < p->dag.n && rc == 0; k++) {
        size_t i = p->dag.order[k];
        if (!keep[i])
            continue;
        int known = plan_resolve(p, i);
        if (known < 0)
            rc = -1;
        else if (known == 1 || plan_lookup(p, s, i) != 1)
            rc = err_set("export: stage '%s' is not done (run the manifest first)", p->dag.stages[i].name);
        keys[n++] = p->keys[i];
    }
    if (rc == 0)
        rc = bundle_export(s, keys, n, out);
    if (rc == 0)
        printf("exported %zu stages to %s\n", n, out);
    free(keys);
    return rc;
}

static const char export_usage[] =
    "usage: pulse-pipe export MANIFEST [--only NAME]... -o FILE\n"
    "Writes the records of every stage of MANIFEST (with --only: of NAME and what it needs;\n"
    "a '*' in NAME matches any characters), the objects they reference and the audit\n"
    "history to FILE (a deterministic tar+zstd bundle).";

struct export_args {
    const char *manifest, *out;
    char **only;
    size_t nonly;
};

/* 0, 1 after --help, or an exit code's negation (-EXIT_USAGE) after saying what is wrong. */
static int export_parse(int argc, char **argv, struct export_args *a) {
    int bad = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "--help") == 0) {
            puts(export_usage);
            return 1;
        } else if ((v = opt_value(argc, argv, &i, "-o", &bad))) {
            a->out = v;
        } else if ((v = opt_value(argc, argv, &i, "--only", &bad))) {
            a->only[a->nonly++] = (char *)v;
        } else if (bad || argv[i][0] == '-' || a->manifest) {
            if (!bad)
                fprintf(stderr, "pulse-pipe: export: unexpected argument '%s'\n", argv[i]);
            return -EXIT_USAGE;
        } else {
            a->manifest = argv[i];
        }
    }
    if (a->manifest && a->out)
        return 0;
    fprintf(stderr, "pulse-pipe: export: usage: pulse-pipe export MANIFEST [--only NAME]... -o FILE\n");
    return -EXIT_USAGE;
}

static int export_run(const struct pipe_opts *o, const struct export_args *a) {
    struct plan p;
    if (plan_load(&p, a->manifest) != 0) {
        plan_free(&p);
        return pipe_fail(EXIT_USAGE);
    }
    unsigned char *keep = xmalloc(p.dag.n + 1);
    memset(keep, a->nonly == 0, p.dag.n); /* every stage, or those --only names with their producers */
    int rc = plan_mark(&p, a->only, a->nonly, keep, 1) != 0 ? pipe_fail(EXIT_USAGE) : EXIT_OK;
    struct store *s = rc == EXIT_OK ? pipe_store(o, 0) : NULL;
    if (s) {
        rc = export_plan(&p, s, keep, a->out) == 0 ? EXIT_OK : pipe_fail(EXIT_FAILED);
        store_close(s);
    } else if (rc == EXIT_OK) {
        rc = EXIT_FAILED; /* pipe_store said why */
    }
    free(keep);
    plan_free(&p);
    return rc;
}

int cmd_export(const struct pipe_opts *o, int argc, char **argv) {
    struct export_args a = {.only = xcalloc((size_t)argc, sizeof(char *))};
    int rc = export_parse(argc, argv, &a);
    rc = rc == 0 ? export_run(o, &a) : rc == 1 ? EXIT_OK : -rc;
    free(a.only);
    return rc;
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

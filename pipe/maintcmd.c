/* verify, gc: the store maintenance commands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipe/pipe.h"
#include "store/audit.h"
#include "store/lock.h"
#include "store/maint.h"
#include "store/record.h"
#include "util/buf.h"
#include "util/err.h"

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

static const char gc_usage[] =
    "usage: pulse-pipe gc [--keep MANIFEST]... [--yes] [--grace SECONDS]\n"
    "Lists what no logged record references (objects, unlogged records, temp files, stage locks) and,\n"
    "with --yes, removes it. With --keep, records that none of the manifests uses now are pruned too\n"
    "(dropped from the audit log's head in one commit; the history keeps them), then their files and\n"
    "the objects only they referenced. Nothing younger than --grace seconds (default 3600) is touched.";

struct gc_args {
    int yes;
    long grace;
    char **manifests; /* --keep, in order */
    size_t nman;
};

/* -1 to go on, else the exit code (after the usage or one error line). */
static int gc_parse(int argc, char **argv, struct gc_args *a) {
    int bad = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        char *end;
        if (strcmp(argv[i], "--yes") == 0) {
            a->yes = 1;
        } else if ((v = opt_value(argc, argv, &i, "--keep", &bad))) {
            a->manifests[a->nman++] = (char *)v;
        } else if ((v = opt_value(argc, argv, &i, "--grace", &bad))) {
            a->grace = strtol(v, &end, 10);
            if (end == v || *end || a->grace < 0)
                return fprintf(stderr, "pulse-pipe: gc: --grace wants seconds, got '%s'\n", v), EXIT_USAGE;
        } else if (bad) {
            return EXIT_USAGE; /* opt_value said what is missing */
        } else if (strcmp(argv[i], "--help") == 0) {
            return puts(gc_usage), EXIT_OK;
        } else {
            return fprintf(stderr, "pulse-pipe: gc: unexpected argument '%s'\n", argv[i]), EXIT_USAGE;
        }
    }
    return -1;
}

/* What the --keep manifests use now: per done stage its name and key (malloc'd strings). */
struct gc_kept {
    char **names, **keys;
    size_t n;
};

static void kept_add(struct gc_kept *k, const char *name, const char *key) {
    k->names = xrealloc(k->names, (k->n + 1) * sizeof *k->names);
    k->keys = xrealloc(k->keys, (k->n + 1) * sizeof *k->keys);
    k->names[k->n] = xstrdup(name);
    k->keys[k->n++] = xstrdup(key);
}

static void kept_free(struct gc_kept *k) {
    for (size_t i = 0; i < k->n; i++)
        free(k->names[i]), free(k->keys[i]);
    free(k->names);
    free(k->keys);
}

/* 0, or the exit code with err_set. */
static int kept_collect(struct store *s, const struct gc_args *a, struct gc_kept *k) {
    for (size_t m = 0; m < a->nman; m++) {
        struct plan p;
        int code = plan_load(&p, a->manifests[m]) != 0 ? EXIT_USAGE : plan_walk(&p, s) != 0 ? EXIT_FAILED : 0;
        size_t done = 0;
        for (size_t i = 0; code == 0 && i < p.dag.n; i++)
            if (p.records[i]) {
                kept_add(k, p.dag.stages[i].name, p.keys[i]);
                done++;
            }
        /* Nothing of it done: the wrong store or manifest, most likely; keeping nothing would prune all. */
        if (code == 0 && done == 0) {
            err_set("%s: none of its stages is done in this store (pulse-pipe status %s)", a->manifests[m],
                    a->manifests[m]);
            code = EXIT_USAGE;
        }
        plan_free(&p);
        if (code)
            return err_prefix("gc: --keep"), code;
    }
    return 0;
}

/* Each kept stage's name points at its kept record (it may have pointed at one of another manifest with the
 * same stage name, which the prune removes), so show and cat find it; the last --keep wins a shared name.
 * Before the prune and under the audit lock, as publishing writes names: a crash after it leaves names that
 * point at records that stay. */
static int kept_names(struct store *s, const struct gc_kept *k) {
    int fd = audit_lock(s), rc = fd < 0 ? -1 : 0;
    for (size_t i = 0; rc == 0 && i < k->n; i++)
        rc = record_name(s, k->names[i], k->keys[i]);
    if (fd >= 0)
        lock_drop(fd);
    return rc;
}

/* Under the store lock from the manifests' reading to the prune: no run publishes a record of a kept
 * manifest in between, which the prune would otherwise take for one nobody keeps. */
static int gc_locked(struct store *s, const struct gc_args *a) {
    struct gc_kept k = {0};
    int code = kept_collect(s, a, &k);
    if (code == 0 && ((a->yes && k.n && kept_names(s, &k) != 0) ||
                      store_gc_locked(s, a->yes, a->grace, k.keys, a->nman ? (long)k.n : -1, stdout) != 0))
        code = EXIT_FAILED;
    kept_free(&k);
    return code;
}

static int gc_run(const struct pipe_opts *o, const struct gc_args *a) {
    struct store *s = pipe_store(o, 0);
    if (!s)
        return EXIT_FAILED;
    int fd = store_gc_lock(s), code = fd < 0 ? EXIT_FAILED : gc_locked(s, a);
    if (fd >= 0)
        lock_drop(fd);
    store_close(s);
    return code ? pipe_fail(code) : EXIT_OK;
}

int cmd_gc(const struct pipe_opts *o, int argc, char **argv) {
    struct gc_args a = {.grace = 3600, .manifests = xcalloc((size_t)argc, sizeof(char *))};
    int code = gc_parse(argc, argv, &a);
    if (code < 0)
        code = gc_run(o, &a);
    free(a.manifests);
    return code;
}

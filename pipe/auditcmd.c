/* audit: re-executes a finished stage from its stored inputs in a scratch store and compares the output
 * hashes with its record: the proof that a result is reproducible from what the store holds. */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/device.h"
#include "pipe/pipe.h"
#include "stages/registry.h"
#include "store/lock.h"
#include "store/object.h"
#include "store/record.h"
#include "util/err.h"

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int inputs_present(struct store *s, const struct json *inputs) {
    for (size_t k = 0; inputs && k < inputs->len; k++) {
        const struct json *v = inputs->items[k];
        size_t n = v->type == JSON_ARR ? v->len : 1;
        for (size_t j = 0; j < n; j++) {
            const struct json *id = v->type == JSON_ARR ? v->items[j] : v;
            if (id->type == JSON_STR && store_has(s, id->s) != 1)
                return err_set("audit: input %s (%s) is no longer in the store", inputs->keys[k], id->s);
        }
    }
    return 0;
}

/* Prints one line per output; returns how many differ. */
static int compare(const struct json *was, const struct json *now) {
    const struct json *a = json_get(was, "outputs"), *b = json_get(now, "outputs");
    int diff = 0;
    for (size_t k = 0; a && k < a->len; k++) {
        const char *x = json_get_str(a->items[k], "id");
        const char *y = json_get_str(json_get(b, a->keys[k]), "id");
        int same = x && y && strcmp(x, y) == 0;
        diff += !same;
        printf("%-9s %-20s %s%s%s\n", same ? "same" : "different", a->keys[k], x ? x : "?",
               same ? "" : " -> ", same ? "" : (y ? y : "(missing)"));
    }
    return diff;
}

/* The files a stage read must still hold what they held then, or re-execution proves nothing. */
static int paths_unchanged(const struct json *paths) {
    for (size_t k = 0; paths && k < paths->len; k++) {
        const char *path = json_get_str(paths->items[k], "path"),
                   *was = json_get_str(paths->items[k], "sha256");
        char now[HASH_ID_SIZE];
        if (!path || !was || paths_digest(path, now) != 0)
            return err_prefix("audit: parameter '%s'", paths->keys[k]);
        if (strcmp(now, was) != 0)
            return err_set("audit: %s changed since the stage ran (%s, now %s)", path, was, now);
    }
    return 0;
}

static int audit_record(struct store *s, const struct json *rec, const struct exec_env *env) {
    const char *kind_name = json_get_str(rec, "kind");
    const struct stage_kind *kind = kind_name ? registry_find(kind_name) : NULL;
    if (!kind)
        return err_set("audit: kind '%s' is not in this build", kind_name ? kind_name : "?");
    int64_t ver = 0;
    json_get_int(rec, "kind_version", &ver);
    if (ver != kind->schema.version)
        printf("note: recorded with %s version %lld, this build has version %d\n", kind_name, (long long)ver,
               kind->schema.version);
    if (schema_check_params(&kind->schema, json_get(rec, "params")) != 0)
        return err_prefix("audit: record of '%s'", json_get_str(rec, "name"));
    if (inputs_present(s, json_get(rec, "inputs")) != 0 || paths_unchanged(json_get(rec, "paths")) != 0)
        return -1;
    char scratch[4096];
    if (store_path(s, scratch, sizeof scratch, "tmp/audit-XXXXXX") != 0 || !mkdtemp(scratch))
        return err_errno("audit: cannot make a scratch directory in %s/tmp", s->root);
    struct store *out;
    int rc = -1;
    if (store_open(scratch, 1, &out) == 0) {
        struct json *now = NULL;
        rc = exec_stage(env, s, out, json_get_str(rec, "name"), kind, json_get(rec, "params"),
                        json_get(rec, "inputs"), json_get(rec, "paths"), json_get_str(rec, "key"), &now);
        if (rc == 0)
            rc = compare(rec, now) ? 1 : 0;
        json_free(now);
        store_close(out);
    }
    nftw(scratch, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}

int cmd_audit(const struct pipe_opts *o, int argc, char **argv) {
    const char *name = NULL, *manifest = NULL;
    struct exec_env env = {.threads = (int)sysconf(_SC_NPROCESSORS_ONLN), .device = "cpu", .quiet = 1};
    int bad = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "--help") == 0) {
            puts("usage: pulse-pipe audit NAME [--manifest MANIFEST] [--threads N] [--device cpu|cuda]\n"
                 "Re-executes stage NAME from its stored inputs in a scratch store and prints, per output,\n"
                 "'same' or 'different' against its record. Exit 0 if all are the same, 1 otherwise. NAME's\n"
                 "last record, or with --manifest that manifest's stage NAME (see pulse-pipe show --help).");
            return EXIT_OK;
        } else if ((v = opt_value(argc, argv, &i, "--threads", &bad))) {
            if (opt_threads(v, &env.threads) != 0)
                return pipe_fail(EXIT_USAGE);
        } else if ((v = opt_value(argc, argv, &i, "--device", &bad))) {
            env.device = v;
        } else if ((v = opt_value(argc, argv, &i, "--manifest", &bad))) {
            manifest = v;
        } else if (bad || argv[i][0] == '-' || name) {
            if (!bad)
                fprintf(stderr, "pulse-pipe: audit: unexpected argument '%s'\n", argv[i]);
            return EXIT_USAGE;
        } else {
            name = argv[i];
        }
    }
    if (!name) {
        fprintf(stderr, "pulse-pipe: audit: which stage? (usage: pulse-pipe audit NAME)\n");
        return EXIT_USAGE;
    }
    if (device_check(env.device) != 0)
        return pipe_fail(EXIT_USAGE);
    struct store *s = pipe_store(o, 0);
    if (!s)
        return EXIT_FAILED;
    /* Shared, as a run holds it: gc must neither sweep the scratch store nor prune the record read here. */
    int lock = lock_take(s, "store", LOCK_SHARED, 1);
    struct json *rec = NULL;
    int code = lock < 0 ? EXIT_FAILED : pick_record(s, "audit", name, manifest, &rec), rc = -1;
    if (code == EXIT_OK) {
        env.manifest = json_get(rec, "manifest");
        rc = audit_record(s, rec, &env);
    }
    if (lock >= 0)
        lock_drop(lock);
    if (code) {
        store_close(s);
        return pipe_fail(code);
    }
    json_free(rec);
    store_close(s);
    return rc < 0 ? pipe_fail(EXIT_FAILED) : rc ? EXIT_FAILED : EXIT_OK;
}

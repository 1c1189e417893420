/* pick: the record that show, cat and audit mean by NAME. Without a manifest, the last record published or
 * reused under that stage name, or the record whose cache key NAME is; with one (--manifest), the record of
 * that manifest's stage NAME as its inputs now resolve, so two manifests that share a store and a stage name
 * (pulse.lua and pulse-seeds.lua both have "report") each show their own, whichever ran last. */
#include <string.h>

#include "pipe/pipe.h"
#include "store/record.h"
#include "util/err.h"

/* Resolves the manifest's stages in order up to `target`: 1 with *rec when it is done, 0 when it is not. */
static int from_plan(struct plan *p, struct store *s, size_t target, struct json **rec) {
    for (size_t k = 0; k < p->dag.n; k++) {
        size_t i = p->dag.order[k];
        int rc = plan_resolve(p, i); /* 1: a producer is not done */
        rc = rc == 0 ? plan_lookup(p, s, i) : rc > 0 ? 0 : -1;
        if (rc < 0)
            return -1;
        if (i == target) {
            *rec = p->records[i];
            p->records[i] = NULL;
            return rc == 1;
        }
    }
    return 0;
}

static int in_manifest(struct store *s, const char *cmd, const char *name, const char *manifest,
                       struct json **rec) {
    struct plan p;
    if (plan_load(&p, manifest) != 0) {
        plan_free(&p);
        return EXIT_USAGE;
    }
    long target = dag_find(&p.dag, name);
    int rc = target < 0 ? err_set("%s: %s has no stage named '%s'", cmd, manifest, name)
                        : from_plan(&p, s, (size_t)target, rec);
    if (rc == 0)
        err_set("%s: stage '%s' of %s is not done in this store (pulse-pipe status %s says why)", cmd, name,
                manifest, manifest);
    plan_free(&p);
    return rc == 1 ? EXIT_OK : target < 0 ? EXIT_USAGE : EXIT_FAILED;
}

int pick_record(struct store *s, const char *cmd, const char *name, const char *manifest, struct json **rec) {
    *rec = NULL;
    if (manifest)
        return in_manifest(s, cmd, name, manifest, rec);
    int rc = record_by_name(s, name, rec);
    if (rc == 0 && hash_id_valid(name))
        rc = record_lookup(s, name, rec);
    if (rc == 0)
        err_set("%s: no record of a stage named '%s'", cmd, name);
    return rc == 1 ? EXIT_OK : EXIT_FAILED;
}

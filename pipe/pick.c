/* pick: the record that show, cat and audit mean by NAME. Without a manifest, the last record published or
 * reused under that stage name, or the record whose cache key NAME is; with one (--manifest), the record of
 * that manifest's stage NAME as its inputs now resolve, so two manifests that share a store and a stage name
 * (pulse.lua and pulse-seeds.lua both have "report") each show their own, whichever ran last. */
#include <string.h>

#include "pipe/pipe.h"
#include "store/record.h"
#include "util/err.h"

static int in_manifest(struct store *s, const char *cmd, const char *name, const char *manifest,
                       struct json **rec) {
    struct plan p;
    if (plan_load(&p, manifest) != 0) {
        plan_free(&p);
        return err_prefix("%s", cmd), EXIT_USAGE;
    }
    long target = dag_find(&p.dag, name);
    int rc = target < 0 ? err_set("%s: %s has no stage named '%s'", cmd, manifest, name) : plan_walk(&p, s);
    if (rc == 0 && (*rec = p.records[target])) {
        p.records[target] = NULL;
        rc = 1;
    }
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

/* plan: a manifest's DAG plus, per stage, its inputs, cache key and record as they become known. */
#include <stdlib.h>
#include <string.h>

#include "lua/manifest.h"
#include "pipe/pipe.h"
#include "stages/registry.h"
#include "store/key.h"
#include "store/record.h"
#include "util/buf.h"
#include "util/err.h"

/* Resolves and hashes stage i's PARAM_PATH parameters into p->paths[i]; errors point at the stage's line. */
static int load_paths(struct plan *p, size_t i) {
    const struct dag_stage *st = &p->dag.stages[i];
    for (size_t k = 0; k < st->kind->nparams; k++) {
        const struct param_spec *ps = &st->kind->params[k];
        const char *given = ps->type == PARAM_PATH ? json_get_str(st->params, ps->name) : NULL;
        char abs[4096], digest[HASH_ID_SIZE];
        if (!given)
            continue;
        if (paths_resolve(p->manifest, given, abs, sizeof abs) != 0 || paths_digest(abs, digest) != 0)
            return err_prefix("%s:%d: stage '%s': parameter '%s'", st->file, st->line, st->name, ps->name);
        struct json *one = json_obj();
        json_set(one, "path", json_str(abs));
        json_set(one, "sha256", json_str(digest));
        if (!p->paths[i])
            p->paths[i] = json_obj();
        json_set(p->paths[i], ps->name, one);
    }
    return 0;
}

int plan_load(struct plan *p, const char *manifest) {
    memset(p, 0, sizeof *p);
    size_t nk;
    const struct kind_schema *const *kinds = registry_schemas(&nk);
    if (manifest_load(manifest, kinds, nk, NULL, &p->dag) != 0)
        return -1;
    size_t n = p->dag.n;
    p->manifest = xstrdup(manifest);
    p->inputs = xcalloc(n ? n : 1, sizeof *p->inputs);
    p->keys = xcalloc(n ? n : 1, sizeof *p->keys);
    p->records = xcalloc(n ? n : 1, sizeof *p->records);
    p->paths = xcalloc(n ? n : 1, sizeof *p->paths);
    for (size_t i = 0; i < n; i++)
        if (load_paths(p, i) != 0)
            return -1;
    return 0;
}

void plan_free(struct plan *p) {
    for (size_t i = 0; p->inputs && i < p->dag.n; i++) {
        json_free(p->inputs[i]);
        json_free(p->records[i]);
        json_free(p->paths[i]);
    }
    free(p->paths);
    free(p->inputs);
    free(p->keys);
    free(p->records);
    free(p->manifest);
    dag_free(&p->dag);
    memset(p, 0, sizeof *p);
}

int plan_mark(const struct plan *p, char **names, size_t n, unsigned char *mark, int closure) {
    for (size_t k = 0; k < n; k++)
        if (dag_select(&p->dag, names[k], mark, closure) == 0)
            return err_set("%s: no stage %s '%s'", p->manifest, strchr(names[k], '*') ? "matches" : "named",
                           names[k]);
    return 0;
}

int plan_key(const char *kind, int version, const struct json *params, const struct json *inputs,
             const struct json *paths, char key[HASH_ID_SIZE]) {
    struct json *spec = json_obj(); /* the fields a record carries: store/key.c is the one definition */
    json_set(spec, "inputs", json_clone(inputs));
    json_set(spec, "kind", json_str(kind));
    json_set(spec, "kind_version", json_int(version));
    json_set(spec, "params", json_clone(params));
    if (paths)
        json_set(spec, "paths", json_clone(paths));
    int rc = key_of(spec, key);
    json_free(spec);
    return rc;
}

/* The object id of output `name` in a producer's record. */
static const char *output_id(const struct json *record, const char *name) {
    const struct json *o = json_get(json_get(record, "outputs"), name);
    return json_get_str(o, "id");
}

int plan_resolve(struct plan *p, size_t i) {
    if (p->inputs[i])
        return 0;
    const struct dag_stage *st = &p->dag.stages[i];
    struct json *in = json_obj();
    /* Every ref parameter appears, so that an empty list and a missing one key differently. */
    for (size_t k = 0; k < st->kind->nparams; k++) {
        const struct param_spec *ps = &st->kind->params[k];
        if (ps->type == PARAM_REFS)
            json_set(in, ps->name, json_arr());
        else if (ps->type == PARAM_REF)
            json_set(in, ps->name, json_null());
    }
    for (size_t k = 0; k < st->ninputs; k++) {
        const struct dag_input *di = &st->inputs[k];
        const char *id = p->records[di->from] ? output_id(p->records[di->from], di->output) : NULL;
        if (!id) {
            json_free(in);
            return 1;
        }
        struct json *slot = (struct json *)json_get(in, di->param);
        if (slot && slot->type == JSON_ARR) {
            while (slot->len <= di->index)
                json_push(slot, json_null());
            json_free(slot->items[di->index]);
            slot->items[di->index] = json_str(id);
        } else {
            json_set(in, di->param, json_str(id));
        }
    }
    p->inputs[i] = in;
    if (plan_key(st->kind->name, st->kind->version, st->params, in, p->paths[i], p->keys[i]) != 0) {
        p->inputs[i] = NULL;
        json_free(in);
        return err_prefix("stage '%s'", st->name);
    }
    return 0;
}

int plan_lookup(struct plan *p, struct store *s, size_t i) {
    struct json *rec;
    int rc = record_lookup(s, p->keys[i], &rec);
    if (rc == 1) {
        json_free(p->records[i]);
        p->records[i] = rec;
    }
    return rc;
}

int plan_walk(struct plan *p, struct store *s) {
    for (size_t k = 0; k < p->dag.n; k++) {
        size_t i = p->dag.order[k];
        struct json *rec = NULL;
        int rc = plan_resolve(p, i); /* 1: a producer has no record, so this stage has none either */
        if (rc == 0)
            rc = record_logged(s, p->keys[i], &rec);
        if (rc < 0)
            return -1;
        json_free(p->records[i]);
        p->records[i] = rec;
    }
    return 0;
}

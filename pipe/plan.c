/* plan: a manifest's DAG plus, per stage, its inputs, cache key and record as they become known. */
#include <stdlib.h>
#include <string.h>

#include "lua/manifest.h"
#include "pipe/pipe.h"
#include "stages/registry.h"
#include "store/record.h"
#include "util/buf.h"
#include "util/err.h"

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
    return 0;
}

void plan_free(struct plan *p) {
    for (size_t i = 0; i < p->dag.n; i++) {
        json_free(p->inputs[i]);
        json_free(p->records[i]);
    }
    free(p->inputs);
    free(p->keys);
    free(p->records);
    free(p->manifest);
    dag_free(&p->dag);
    memset(p, 0, sizeof *p);
}

void plan_key(const char *kind, int version, const struct json *params, const struct json *inputs,
              char key[HASH_ID_SIZE]) {
    struct json *k = json_obj();
    json_set(k, "inputs", json_clone(inputs));
    json_set(k, "kind", json_str(kind));
    json_set(k, "kind_version", json_int(version));
    json_set(k, "params", json_clone(params));
    size_t n;
    char *text = json_write(k, JSON_CANONICAL, &n); /* cannot fail: params hold no NaN (manifest checks) */
    sha256_id(text, n, key);
    free(text);
    json_free(k);
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
    plan_key(st->kind->name, st->kind->version, st->params, in, p->keys[i]);
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

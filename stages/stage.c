/* stage: the run-time API stage kinds use to read parameters and inputs and to hand over outputs. */
#include "stages/stage.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "store/object.h"
#include "util/err.h"

/* The runner checked every parameter against the schema before run(), so a missing or mistyped one here is a
 * bug in the kind, not bad input: fail loudly. */
static const struct json *param(struct stage_ctx *c, const char *name, enum json_type t) {
    const struct json *v = json_get(c->params, name);
    if (!v || (v->type != t && !(t == JSON_NUM && v->type == JSON_INT))) {
        fprintf(stderr, "pulse-pipe: bug: kind %s reads parameter '%s' that its schema does not give\n",
                c->kind->schema.name, name);
        abort();
    }
    return v;
}

int64_t stage_int(struct stage_ctx *c, const char *name) {
    return param(c, name, JSON_INT)->i;
}

double stage_num(struct stage_ctx *c, const char *name) {
    const struct json *v = param(c, name, JSON_NUM);
    return v->type == JSON_INT ? (double)v->i : v->n;
}

const char *stage_str(struct stage_ctx *c, const char *name) {
    return param(c, name, JSON_STR)->s;
}

int stage_bool(struct stage_ctx *c, const char *name) {
    return param(c, name, JSON_BOOL)->b;
}

int stage_recompute(struct stage_ctx *c) {
    const struct json *v = json_get(c->params, "recompute");
    return v && v->type == JSON_BOOL && v->b;
}

size_t stage_input_count(struct stage_ctx *c, const char *param_name) {
    const struct json *v = json_get(c->inputs, param_name);
    if (!v || v->type == JSON_NULL)
        return 0;
    return v->type == JSON_ARR ? v->len : 1;
}

const char *stage_input_id(struct stage_ctx *c, const char *param_name, size_t index) {
    const struct json *v = json_get(c->inputs, param_name);
    if (v && v->type == JSON_ARR)
        v = index < v->len ? v->items[index] : NULL;
    else if (index != 0)
        v = NULL;
    return v && v->type == JSON_STR ? v->s : NULL;
}

int stage_input_read(struct stage_ctx *c, const char *param_name, size_t index, void **data, size_t *n) {
    const char *id = stage_input_id(c, param_name, index);
    if (!id)
        return err_set("input '%s'[%zu] is not connected", param_name, index);
    if (store_get(c->in, id, data, n) != 0)
        return err_prefix("input '%s'", param_name);
    return 0;
}

int stage_output(struct stage_ctx *c, const char *name, const void *data, size_t n, const char *type) {
    if (!schema_has_output(&c->kind->schema, name))
        return err_set("bug: kind %s writes undeclared output '%s'", c->kind->schema.name, name);
    if (json_get(c->outputs, name))
        return err_set("bug: kind %s writes output '%s' twice", c->kind->schema.name, name);
    char id[HASH_ID_SIZE];
    if (store_put(c->out, data, n, id) != 0)
        return err_prefix("output '%s'", name);
    struct json *o = json_obj();
    json_set(o, "id", json_str(id));
    json_set(o, "size", json_int((int64_t)n));
    json_set(o, "type", json_str(type));
    json_set(c->outputs, name, o);
    return 0;
}

int stage_metric(struct stage_ctx *c, const char *name, double value) {
    json_set(c->metrics, name, json_num(value));
    return 0;
}

void stage_progress(struct stage_ctx *c, const char *fmt, ...) {
    if (!c->progress)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    c->progress(c->progress_arg, line);
}

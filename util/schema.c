/* schema: look-ups over a stage kind's declared parameters and outputs. */
#include "util/schema.h"

#include <string.h>

#include "util/err.h"
#include "util/json.h"

const struct param_spec *schema_param(const struct kind_schema *k, const char *name) {
    if (!k || !name)
        return NULL;
    for (size_t i = 0; i < k->nparams; i++)
        if (strcmp(k->params[i].name, name) == 0)
            return &k->params[i];
    return NULL;
}

int schema_param_keyed(const char *name) {
    return !name || strcmp(name, "recompute") != 0;
}

int schema_has_output(const struct kind_schema *k, const char *name) {
    if (!k || !name)
        return 0;
    for (size_t i = 0; i < k->noutputs; i++)
        if (strcmp(k->outputs[i], name) == 0)
            return 1;
    return 0;
}

const char *param_type_name(enum param_type t) {
    switch (t) {
    case PARAM_INT:
        return "integer";
    case PARAM_NUM:
        return "number";
    case PARAM_STR:
        return "string";
    case PARAM_BOOL:
        return "boolean";
    case PARAM_STRS:
        return "list of strings";
    case PARAM_NUMS:
        return "list of numbers";
    case PARAM_REF:
        return "stage output";
    case PARAM_REFS:
        return "list of stage outputs";
    case PARAM_PATH:
        return "path";
    }
    return "unknown";
}

int schema_value_fits(enum param_type t, const struct json *v) {
    switch (t) {
    case PARAM_INT:
        return v->type == JSON_INT;
    case PARAM_NUM:
        return v->type == JSON_NUM;
    case PARAM_STR:
    case PARAM_PATH:
        return v->type == JSON_STR;
    case PARAM_BOOL:
        return v->type == JSON_BOOL;
    case PARAM_STRS:
    case PARAM_NUMS:
        if (v->type != JSON_ARR)
            return 0;
        for (size_t i = 0; i < v->len; i++)
            if (v->items[i]->type != (t == PARAM_STRS ? JSON_STR : JSON_NUM))
                return 0;
        return 1;
    case PARAM_REF:
    case PARAM_REFS:
        return 0; /* inputs, never parameters */
    }
    return 0;
}

int schema_check_params(const struct kind_schema *k, const struct json *params) {
    if (!params || params->type != JSON_OBJ)
        return err_set("kind %s: parameters are not an object", k->name);
    for (size_t i = 0; i < k->nparams; i++) {
        const struct param_spec *p = &k->params[i];
        const struct json *v = json_get(params, p->name);
        if (p->type == PARAM_REF || p->type == PARAM_REFS)
            continue;
        if (!v && !schema_param_keyed(p->name))
            continue; /* not in the key: a record from before the parameter existed is the same result */
        if (!v)
            return err_set("kind %s: parameter '%s' is missing", k->name, p->name);
        if (!schema_value_fits(p->type, v))
            return err_set("kind %s: parameter '%s' is not a %s", k->name, p->name, param_type_name(p->type));
    }
    for (size_t i = 0; i < params->len; i++)
        if (!schema_param(k, params->keys[i]))
            return err_set("kind %s: unknown parameter '%s'", k->name, params->keys[i]);
    return 0;
}

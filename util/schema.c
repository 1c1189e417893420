/* schema: look-ups over a stage kind's declared parameters and outputs. */
#include "util/schema.h"

#include <string.h>

const struct param_spec *schema_param(const struct kind_schema *k, const char *name) {
    if (!k || !name)
        return NULL;
    for (size_t i = 0; i < k->nparams; i++)
        if (strcmp(k->params[i].name, name) == 0)
            return &k->params[i];
    return NULL;
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

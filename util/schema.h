/* schema: what a stage kind accepts and produces. Shared by the manifest checker (lua/), the registry of
 * kinds (stages/) and the runner (pipe/), so it sits in the bottom layer. */
#ifndef PULSE_UTIL_SCHEMA_H
#define PULSE_UTIL_SCHEMA_H

#include <stddef.h>

enum param_type {
    PARAM_INT,  /* integer (a float with an integral value is accepted and stored as an integer) */
    PARAM_NUM,  /* number, stored as a double */
    PARAM_STR,  /* string */
    PARAM_BOOL, /* boolean */
    PARAM_STRS, /* list of strings */
    PARAM_NUMS, /* list of numbers */
    PARAM_REF,  /* one input: another stage's output (st.out.name) */
    PARAM_REFS, /* an ordered list of inputs */
    PARAM_PATH, /* a file or directory on the user's disk, relative to the manifest's directory: its content
                   digest is part of the cache key, and the kind receives the absolute path */
};

struct param_spec {
    const char *name;
    enum param_type type;
    const char *def; /* default as JSON text; NULL makes the parameter required (refs: required unless "[]"
                        or "null") */
    const char *doc; /* one line for `pulse-pipe kinds` and docs */
};

struct kind_schema {
    const char *name;
    int version; /* bump when the kind's outputs change for the same inputs: it invalidates cached results */
    const struct param_spec *params;
    size_t nparams;
    const char *const *outputs; /* names of the outputs every run produces */
    size_t noutputs;
};

const struct param_spec *schema_param(const struct kind_schema *k, const char *name);
/* 0 for a parameter that chooses how a result is computed, never what: every kind that has it produces the
 * same bits either way (a test of its own proves it), so it stays out of the cache key (store/key.h) and
 * changing it reuses what is stored. Today one: `recompute` (activation recomputation, docs/engine.md). 1 for
 * every other name. A record made before such a parameter existed may lack it (schema_check_params allows
 * that). */
int schema_param_keyed(const char *name);
int schema_has_output(const struct kind_schema *k, const char *name);
const char *param_type_name(enum param_type t);
/* Checks stored canonical parameters (e.g. from a record) against the schema: every non-ref parameter present
 * with its canonical JSON type, nothing unknown. -1 with err_set naming the first problem. */
struct json;
int schema_check_params(const struct kind_schema *k, const struct json *params);
/* 1 if v has the canonical JSON type of a parameter of type t (refs never do: they are inputs). */
int schema_value_fits(enum param_type t, const struct json *v);

#endif

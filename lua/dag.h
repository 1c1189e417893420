/* dag: the manifest as plain C data: stages, their canonical parameters, and the edges between them.
 * Built by manifest.c; read by the runner. Stage indices are positions in dag.stages (declaration order). */
#ifndef PULSE_LUA_DAG_H
#define PULSE_LUA_DAG_H

#include <stddef.h>
#include "util/json.h"
#include "util/schema.h"

struct dag_input {
    char *param;  /* the parameter (of type PARAM_REF or PARAM_REFS) */
    size_t index; /* position within a PARAM_REFS list; 0 for PARAM_REF */
    size_t from;  /* producing stage */
    char *output; /* its output name */
};

struct dag_stage {
    char *name;
    const struct kind_schema *kind;
    struct json *params; /* object: every non-ref parameter, defaults filled in, canonical types */
    struct dag_input *inputs;
    size_t ninputs;
    char *file; /* where the stage was declared, for messages */
    int line;
};

struct dag_names; /* dag.c's hash index of the stage names */

struct dag {
    struct dag_stage *stages;
    size_t n;
    size_t *order;           /* a topological order: producers before consumers, ties in declaration order */
    struct dag_names *names; /* kept by dag_add so that dag_find does not scan; NULL in a dag built by hand */
};

/* Adds a stage (takes ownership of params; copies name and file). Fails on a duplicate name. Returns its
 * index or -1. */
long dag_add(struct dag *d, const char *name, const struct kind_schema *kind, struct json *params,
             const char *file, int line);
void dag_add_input(struct dag *d, size_t stage, const char *param, size_t index, size_t from,
                   const char *output);
/* The stage with that name, or -1; constant time on average in a dag built by dag_add. */
long dag_find(const struct dag *d, const char *name);
/* Marks in mark[] (d->n entries) the stages `name` names: the stage of that name, or, when it holds a '*'
 * (which no stage name can), every stage whose name it matches, '*' standing for any run of characters, '/'
 * included ("seed2/" and a star: a sweep's member). With closure, what each depends on too (dag_closure).
 * Returns how many stages it named (0: none). */
size_t dag_select(const struct dag *d, const char *name, unsigned char *mark, int closure);
/* Computes d->order. On a cycle: -1 with err_set("<file>:<line>: cycle: a -> b -> a"). */
int dag_sort(struct dag *d);
/* Marks in keep[] (d->n entries) the stage and everything it depends on, transitively. */
void dag_closure(const struct dag *d, size_t stage, unsigned char *keep);
void dag_free(struct dag *d);

#endif

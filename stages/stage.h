/* stage: the contract between the runner and a stage kind.
 *
 * A kind is a schema (what it accepts, what it outputs) plus a run function. The runner fills a stage_ctx
 * with the stage's canonical parameters and input object ids; run() reads inputs, computes, and hands every
 * declared output to stage_output(). It returns 0, or -1 with err_set() saying what went wrong (the runner
 * then publishes nothing for the stage). Run functions must be deterministic in their inputs and parameters:
 * no clocks, no global random state, the same bits for any thread count. */
#ifndef PULSE_STAGES_STAGE_H
#define PULSE_STAGES_STAGE_H

#include <stddef.h>
#include <stdint.h>
#include "store/store.h"

struct ops;
#include "util/json.h"
#include "util/schema.h"

struct stage_ctx;

struct stage_kind {
    struct kind_schema schema;
    const char *summary; /* one line for `pulse-pipe kinds` */
    int (*run)(struct stage_ctx *ctx);
};

struct stage_ctx {
    const char *name; /* the stage's name in the manifest */
    const struct stage_kind *kind;
    const struct json *params; /* canonical non-ref parameters */
    const struct json *inputs; /* {param: id} or {param: [id, ...]} */
    struct store *in;          /* where inputs are read */
    struct store *out;         /* where outputs are written (the scratch store during an audit) */
    struct json *outputs;      /* filled by stage_output: {name: {"id", "size", "type"}} */
    struct json *metrics;      /* filled by stage_metric */
    int threads;
    const char *device;    /* "cpu" or "cuda" */
    const struct ops *ops; /* that device's operation table (engine/ops.h); tensor memory follows it */
    void (*progress)(void *arg, const char *line);
    void *progress_arg;
};

/* The precision of the linear layers' products, for every kind that runs the model: the executor
 * (pipe/exec.c) gives such a stage the table ops_precision makes of its device's (engine/ops.h). A parameter,
 * not a flag of the run, because it changes the results: it is part of the stage's key. */
#define PRECISION_PARAM                                                                                      \
    {                                                                                                        \
        "precision", PARAM_STR, "\"fp32\"",                                                                  \
            "linear layers' products: \"fp32\", or \"bf16\" (inputs rounded to bf16, fp32 accumulation; "    \
            "docs/engine.md)"                                                                                \
    }

/* Parameters (the runner has checked their types against the schema). */
int64_t stage_int(struct stage_ctx *c, const char *name);
double stage_num(struct stage_ctx *c, const char *name);
const char *stage_str(struct stage_ctx *c, const char *name);
int stage_bool(struct stage_ctx *c, const char *name);

/* Inputs: how many objects a ref parameter holds (1 for PARAM_REF), their ids, their bytes (malloc'd). */
size_t stage_input_count(struct stage_ctx *c, const char *param);
const char *stage_input_id(struct stage_ctx *c, const char *param, size_t index);
int stage_input_read(struct stage_ctx *c, const char *param, size_t index, void **data, size_t *n);

/* Outputs: stores bytes as the named output (type: "bytes", "json", "safetensors", ...). */
int stage_output(struct stage_ctx *c, const char *name, const void *data, size_t n, const char *type);
int stage_metric(struct stage_ctx *c, const char *name, double value);
/* One progress line (e.g. "step 120/2000 loss 2.31"), shown by the runner after the stage name. */
void stage_progress(struct stage_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif

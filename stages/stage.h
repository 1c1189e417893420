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
struct llava_config;
struct llava_plan_opts;
struct lora;

struct stage_kind {
    struct kind_schema schema;
    const char *summary; /* one line for `pulse-pipe kinds` */
    int (*run)(struct stage_ctx *ctx);
    /* Optional, for `run --dry-run`'s memory plan (engine/llava_plan.h): how run() would set up a model of
     * config cfg for these parameters: batch, sequence (0 when the kind cannot tell: its corpus is not in
     * the store yet, and ctx->inputs is NULL until every producer has run), what trains, the adapter (rank
     * and targets, into l), recompute. Reads nothing but parameters and, when there, inputs. */
    int (*memory)(struct stage_ctx *ctx, const struct llava_config *cfg, struct llava_plan_opts *o,
                  struct lora *l);
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

/* The precision of the model's products (linear layers and attention), for every kind that runs the model:
 * the executor (pipe/exec.c) gives such a stage the table ops_precision makes of its device's (engine/ops.h).
 * A parameter, not a flag of the run, because it changes the results: it is part of the stage's key (and when
 * what "bf16" rounds changed, attention joining the linear layers, these kinds' versions went up). */
#define PRECISION_PARAM                                                                                      \
    {                                                                                                        \
        "precision", PARAM_STR, "\"fp32\"",                                                                  \
            "the model's products: \"fp32\"; \"bf16\" (linear layers' and attention's inputs rounded to "    \
            "bf16, fp32 accumulation; docs/engine.md); \"bf16-act\" (that, and activations stored in bf16)"  \
    }

/* Activation recomputation for every kind that trains a model (engine/llava.h's llava_set_recompute): less
 * memory, a slower backward, the same bits. Not part of the stage's key (util/schema.h's schema_param_keyed):
 * switching it reuses stored results, which are what the other setting computes too. */
#define RECOMPUTE_PARAM                                                                                      \
    {                                                                                                        \
        "recompute", PARAM_BOOL, "false",                                                                    \
            "recompute each layer's activations in the backward: less memory, same results (not in the key)" \
    }
/* The stage's `recompute` (false when a record from before the parameter existed is re-executed). */
int stage_recompute(struct stage_ctx *c);

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

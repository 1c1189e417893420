/* pipe: the pulse-pipe program. One file per subcommand; this header is what they share. */
#ifndef PULSE_PIPE_PIPE_H
#define PULSE_PIPE_PIPE_H

#include <stddef.h>
#include "lua/dag.h"
#include "stages/stage.h"
#include "store/store.h"
#include "util/json.h"
#include "util/sha256.h"

/* Exit codes (docs and --help say the same). */
enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_DAMAGE = 3 };

/* Options every subcommand gets. */
struct pipe_opts {
    const char *store; /* --store, else $PULSE_STORE, else ./.pulse */
};

int cmd_run(const struct pipe_opts *o, int argc, char **argv);
int cmd_status(const struct pipe_opts *o, int argc, char **argv);
int cmd_show(const struct pipe_opts *o, int argc, char **argv);
int cmd_cat(const struct pipe_opts *o, int argc, char **argv);
int cmd_log(const struct pipe_opts *o, int argc, char **argv);
int cmd_verify(const struct pipe_opts *o, int argc, char **argv);
int cmd_gc(const struct pipe_opts *o, int argc, char **argv);
int cmd_audit(const struct pipe_opts *o, int argc, char **argv);
int cmd_export(const struct pipe_opts *o, int argc, char **argv);
int cmd_import(const struct pipe_opts *o, int argc, char **argv);
int cmd_kinds(const struct pipe_opts *o, int argc, char **argv);

/* Seconds on a monotonic clock, for progress and wall times (never for results). */
double pipe_now(void);
/* Prints "pulse-pipe: <err_msg()>" to stderr and returns code. */
int pipe_fail(int code);
/* Opens (create != 0: creating) the store named by the options; prints the error itself on failure. */
struct store *pipe_store(const struct pipe_opts *o, int create);

/* plan: a loaded manifest and what is known about each stage's result. */
struct plan {
    struct dag dag;
    char *manifest;             /* path as given */
    struct json **inputs;       /* per stage: {param: id | [ids]} once its producers are done, else NULL */
    char (*keys)[HASH_ID_SIZE]; /* per stage: cache key once inputs are known, else "" */
    struct json **records;      /* per stage: the record once done (cached or computed), else NULL */
    struct json **paths;        /* per stage: {param: {"path": absolute, "sha256": digest}} for PARAM_PATH
                                   parameters, else NULL */
};

/* Loads the manifest and resolves and hashes every PARAM_PATH (a missing path is a manifest error). */
int plan_load(struct plan *p, const char *manifest);
/* Computes inputs and key of stage i from its producers' records; 0 if known, 1 if a producer is not done,
 * -1 on error (err_set). */
int plan_resolve(struct plan *p, size_t i);
/* Cache look-up of stage i (after plan_resolve returned 0): 1 hit (sets p->records[i]), 0 miss, -1 error. */
int plan_lookup(struct plan *p, struct store *s, size_t i);
/* plan_resolve and a look-up for every stage in order: afterwards p->records[i] is the logged record of each
 * stage that has one in s, its objects present or not (record_logged), which show and gc --keep want; `run`
 * looks up with plan_lookup, which needs the objects too. */
int plan_walk(struct plan *p, struct store *s);
void plan_free(struct plan *p);
/* Marks in mark[] the stages each of names names (a name, or a pattern with '*': dag_select), with what they
 * need when closure is set; -1 with err_set naming the first that names no stage. */
int plan_mark(const struct plan *p, char **names, size_t n, unsigned char *mark, int closure);
/* The cache key of a stage spec (store/key.h: kind, version, params, inputs, path digests). -1 with err_set
 * if the spec cannot be written as canonical JSON. */
int plan_key(const char *kind, int version, const struct json *params, const struct json *inputs,
             const struct json *paths, char key[HASH_ID_SIZE]);

/* paths: where a PARAM_PATH points (relative to the manifest's directory) and the digest of what it holds
 * (a file: the SHA-256 of its bytes; a directory: of its sorted listing of names and digests). */
int paths_resolve(const char *manifest, const char *path, char *abs, size_t cap);
int paths_digest(const char *abs, char id[HASH_ID_SIZE]);

/* exec: runs one stage kind and builds its record (does not publish). */
struct exec_env {
    int threads;
    const char *device;
    const struct json *manifest; /* provenance: {"path", "commit", "dirty"} (gitinfo_for); may be NULL */
    int quiet;                   /* no progress lines */
};
/* Runs kind on (params, inputs, paths), writing outputs to `out`, reading inputs from `in`; the kind sees
 * each PARAM_PATH parameter as its absolute path. On success *record is the complete record for stage `name`
 * with the given key. paths may be NULL. */
int exec_stage(const struct exec_env *env, struct store *in, struct store *out, const char *name,
               const struct stage_kind *kind, const struct json *params, const struct json *inputs,
               const struct json *paths, const char *key, struct json **record);

/* dryplan: under a stage that `run --dry-run` would run, the memory plan of the model it trains, when its
 * kind can say (stage_kind.memory) and the model's config is known without running anything; on "cuda",
 * against the GPU's memory. Prints nothing for other kinds. */
void dryplan_print(const struct plan *p, struct store *s, size_t i, const char *device);

/* pick: the record show, cat and audit mean by NAME: with manifest, that manifest's stage NAME as its inputs
 * resolve now; without, the last record of the stage name NAME, or the record whose cache key NAME is.
 * EXIT_OK with *rec, or the exit code with err_set ("<cmd>: ..."). */
int pick_record(struct store *s, const char *cmd, const char *name, const char *manifest, struct json **rec);

/* gitinfo: the manifest's provenance {"path", "commit": hex|null, "dirty": bool} for records. */
struct json *gitinfo_for(const char *path);

/* Reads the value of an option "--name VALUE" or "--name=VALUE" at argv[*i], advancing *i; NULL if argv[*i]
 * is not that option. Prints an error and sets *bad when the value is missing. */
const char *opt_value(int argc, char **argv, int *i, const char *name, int *bad);
/* Parses the value of option `name` as a count from 1 to max; -1 with err_set otherwise. */
int opt_count(const char *name, const char *v, int max, int *out);
/* Parses a --threads value (1 to 4096); -1 with err_set otherwise. */
int opt_threads(const char *v, int *threads);

#endif

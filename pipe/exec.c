/* exec: runs one stage kind on known inputs and turns the result into a record. Used by run and audit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/device.h"
#include "engine/ops.h"
#include "pipe/pipe.h"
#include "util/err.h"
#include "util/schema.h"

struct progress {
    const char *name;
    double last;
    int quiet;
};

/* Stages may report every step; one line a second is enough for a person and a log. */
static void progress_line(void *arg, const char *line) {
    struct progress *pr = arg;
    double t = pipe_now();
    if (pr->quiet || t - pr->last < 1.0)
        return;
    pr->last = t;
    printf("      %s: %s\n", pr->name, line);
    fflush(stdout);
}

static struct json *utc_now(void) {
    char text[32];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_str(text);
}

static int check_outputs(const struct stage_kind *kind, const struct json *outputs) {
    for (size_t i = 0; i < kind->schema.noutputs; i++)
        if (!json_get(outputs, kind->schema.outputs[i]))
            return err_set("bug: kind %s finished without producing output '%s'", kind->schema.name,
                           kind->schema.outputs[i]);
    return 0;
}

/* A file read by the stage must still hold what was hashed into its key when the manifest loaded: if it
 * changed meanwhile, the outputs may come from other bytes than the key says, and publishing them would
 * poison the cache. */
static int paths_still(const struct json *paths) {
    for (size_t k = 0; paths && k < paths->len; k++) {
        const char *path = json_get_str(paths->items[k], "path"),
                   *want = json_get_str(paths->items[k], "sha256");
        char now[HASH_ID_SIZE];
        if (paths_digest(path, now) != 0)
            return err_prefix("parameter '%s'", paths->keys[k]);
        if (strcmp(now, want) != 0)
            return err_set("%s changed while the stage ran; run again", path);
    }
    return 0;
}

static struct json *make_record(const struct exec_env *env, struct stage_ctx *c, const struct json *params,
                                const struct json *paths, const char *key, double wall) {
    struct json *r = json_obj();
    json_set(r, "format", json_int(1));
    json_set(r, "key", json_str(key));
    json_set(r, "name", json_str(c->name));
    json_set(r, "kind", json_str(c->kind->schema.name));
    json_set(r, "kind_version", json_int(c->kind->schema.version));
    json_set(r, "params", json_clone(params));
    if (paths)
        json_set(r, "paths", json_clone(paths));
    json_set(r, "inputs", json_clone(c->inputs));
    json_set(r, "outputs", c->outputs);
    json_set(r, "metrics", c->metrics);
    const struct json *seed = json_get(c->params, "seed");
    json_set(r, "seed", seed ? json_clone(seed) : json_null());
    json_set(r, "wall_s", json_num(wall));
    char dev[300];
    if (device_describe(env->device, env->threads, dev, sizeof dev) != 0)
        snprintf(dev, sizeof dev, "%s", env->device);
    json_set(r, "device", json_str(dev));
    json_set(r, "threads", json_int(env->threads));
    json_set(r, "engine_version", json_str(PULSE_VERSION));
    json_set(r, "manifest", env->manifest ? json_clone(env->manifest) : json_null());
    json_set(r, "created", utc_now());
    return r;
}

int exec_stage(const struct exec_env *env, struct store *in, struct store *out, const char *name,
               const struct stage_kind *kind, const struct json *params, const struct json *inputs,
               const struct json *paths, const char *key, struct json **record) {
    struct progress pr = {name, pipe_now(), env->quiet};
    struct json *kparams = json_clone(params); /* what the kind sees: PARAM_PATH values made absolute */
    for (size_t k = 0; paths && k < paths->len; k++)
        json_set(kparams, paths->keys[k], json_str(json_get_str(paths->items[k], "path")));
    struct stage_ctx c = {
        .name = name,
        .kind = kind,
        .params = kparams,
        .inputs = inputs,
        .in = in,
        .out = out,
        .outputs = json_obj(),
        .metrics = json_obj(),
        .threads = env->threads,
        .device = env->device,
        .progress = progress_line,
        .progress_arg = &pr,
    };
    double t0 = pipe_now();
    c.ops = ops_select(env->device, env->threads);
    if (c.ops && schema_param(&kind->schema, "precision"))
        c.ops = ops_precision(c.ops, json_get_str(kparams, "precision"));
    if (!c.ops || kind->run(&c) != 0 || check_outputs(kind, c.outputs) != 0 || paths_still(paths) != 0) {
        json_free(c.outputs);
        json_free(c.metrics);
        json_free(kparams);
        return -1;
    }
    *record = make_record(env, &c, params, paths, key, pipe_now() - t0);
    json_free(kparams);
    return 0;
}

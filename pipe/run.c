/* run: executes a manifest: every selected stage whose record is not in the store is computed and published,
 * in dependency order; everything else is reused. A dry run says what would run and, under each training
 * stage, what it would hold in memory (dryplan.c). With --jobs N above 1, stages whose inputs are done run
 * at the same time, each in a child process (runjobs.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/device.h"
#include "pipe/pipe.h"
#include "pipe/run.h"
#include "stages/registry.h"
#include "store/lock.h"
#include "store/record.h"
#include "util/buf.h"
#include "util/err.h"

static const char run_usage[] =
    "usage: pulse-pipe run MANIFEST [--only NAME]... [--force NAME]... [--dry-run] [--threads N]\n"
    "                      [--jobs N] [--device cpu|cuda]\n"
    "Runs every stage of MANIFEST that the store does not already hold; stages whose record exists are "
    "reused.\n"
    "  --only NAME    run NAME and what it needs, nothing else (repeatable; a '*' in NAME matches any\n"
    "                 characters: --only 'seed2/*')\n"
    "  --force NAME   recompute NAME even if its record exists (repeatable; '*' as for --only)\n"
    "  --dry-run      say what would run, run nothing; under a training stage, its memory plan\n"
    "  --threads N    CPU threads for stages (default: all cores); results do not depend on it\n"
    "  --jobs N       run up to N stages at once, in their own processes, sharing the threads (default 1;\n"
    "                 cpu only)\n"
    "  --device D     cpu (default) or cuda\n";

void run_say(struct run *r, size_t i, const char *what) {
    printf("[%zu/%zu] %-28s %s\n", r->shown, r->total, r->plan.dag.stages[i].name, what);
    fflush(stdout);
}

/* Computes stage i and publishes its record. A forced recomputation whose outputs equal the existing record's
 * publishes nothing: the store already says exactly this, and rewriting a logged record would open a window
 * in which a crash leaves the record file and the audit log disagreeing. */
static int compute(struct run *r, size_t i, int had_record) {
    const struct dag_stage *st = &r->plan.dag.stages[i];
    const struct stage_kind *kind = registry_find(st->kind->name);
    struct json *rec;
    double t0 = pipe_now();
    run_say(r, i, "running");
    if (exec_stage(&r->env, r->store, r->store, st->name, kind, st->params, r->plan.inputs[i],
                   r->plan.paths[i], r->plan.keys[i], &rec) != 0)
        return -1;
    int same = had_record && json_equal(json_get(rec, "outputs"), json_get(r->plan.records[i], "outputs"));
    if (!same && record_publish(r->store, rec) != 0) {
        json_free(rec);
        return -1;
    }
    if (same) {
        json_free(rec);
        if (record_name(r->store, st->name, r->plan.keys[i]) != 0)
            return -1;
    } else {
        json_free(r->plan.records[i]);
        r->plan.records[i] = rec;
    }
    char done[80];
    snprintf(done, sizeof done, "done in %.1fs%s", pipe_now() - t0,
             same ? " (outputs identical to its record)" : "");
    run_say(r, i, done);
    return 0;
}

/* Stage i is reused from the store: its name is pointed at the record. */
static enum state run_cached(struct run *r, size_t i, const char *how) {
    run_say(r, i, how);
    return record_name(r->store, r->plan.dag.stages[i].name, r->plan.keys[i]) == 0 ? ST_CACHED : ST_FAILED;
}

/* Computes under the stage lock, so that two runs (or two jobs) never compute one stage: the second waits
 * and then finds the first one's record. */
enum state run_locked(struct run *r, size_t i, int had_record) {
    char lock[HASH_ID_SIZE + 8];
    snprintf(lock, sizeof lock, "stage-%s", r->plan.keys[i] + 7);
    int fd = lock_take(r->store, lock, LOCK_EXCLUSIVE, 1);
    if (fd < 0)
        return ST_FAILED;
    if (!r->force[i] && plan_lookup(&r->plan, r->store, i) == 1) {
        lock_drop(fd);
        return run_cached(r, i, "cached (computed by a concurrent run)");
    }
    int rc = compute(r, i, had_record);
    lock_drop(fd);
    return rc == 0 ? ST_COMPUTED : ST_FAILED;
}

void run_failed(struct run *r, size_t i) {
    run_say(r, i, "FAILED");
    fprintf(stderr, "pulse-pipe: stage '%s' failed: %s\n", r->plan.dag.stages[i].name, err_msg());
}

/* A stage whose producer failed (or was skipped) cannot run: that producer's index, else -1. */
static long blocked_by(const struct run *r, size_t i) {
    const struct dag_stage *st = &r->plan.dag.stages[i];
    for (size_t k = 0; k < st->ninputs; k++) {
        enum state s = r->state[st->inputs[k].from];
        if (s == ST_FAILED || s == ST_SKIPPED)
            return (long)st->inputs[k].from;
    }
    return -1;
}

enum state run_settle(struct run *r, size_t i, int *had_record) {
    long b = blocked_by(r, i);
    if (b >= 0) {
        char why[300];
        snprintf(why, sizeof why, "skipped: needs '%s', which did not finish", r->plan.dag.stages[b].name);
        run_say(r, i, why);
        return ST_SKIPPED;
    }
    int known = plan_resolve(&r->plan, i);
    if (known == 1) { /* only in a dry run: a producer would run first */
        run_say(r, i, "would run (after its inputs)");
        dryplan_print(&r->plan, r->store, i, r->env.device);
        return ST_WOULD;
    }
    int hit = known == 0 ? plan_lookup(&r->plan, r->store, i) : -1;
    if (hit < 0)
        return ST_FAILED;
    if (hit == 1 && !r->force[i])
        return run_cached(r, i, "cached");
    if (r->dry) {
        run_say(r, i, "would run");
        dryplan_print(&r->plan, r->store, i, r->env.device);
        return ST_WOULD;
    }
    *had_record = hit == 1;
    return ST_TODO;
}

static enum state step(struct run *r, size_t i) {
    int had;
    enum state s = run_settle(r, i, &had);
    if (s == ST_TODO)
        s = run_locked(r, i, had);
    if (s == ST_FAILED)
        run_failed(r, i);
    return s;
}

struct run_args {
    const char *manifest;
    char **only, **force;
    size_t nonly, nforce;
    int dry, threads, jobs;
    const char *device;
};

static int parse_args(int argc, char **argv, struct run_args *a) {
    a->only = xcalloc((size_t)argc, sizeof *a->only);
    a->force = xcalloc((size_t)argc, sizeof *a->force);
    a->threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    a->device = "cpu";
    a->jobs = 1;
    int bad = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "--help") == 0) {
            fputs(run_usage, stdout);
            return 1;
        } else if (strcmp(argv[i], "--dry-run") == 0) {
            a->dry = 1;
        } else if ((v = opt_value(argc, argv, &i, "--only", &bad))) {
            a->only[a->nonly++] = (char *)v;
        } else if ((v = opt_value(argc, argv, &i, "--force", &bad))) {
            a->force[a->nforce++] = (char *)v;
        } else if ((v = opt_value(argc, argv, &i, "--device", &bad))) {
            a->device = v;
        } else if ((v = opt_value(argc, argv, &i, "--threads", &bad))) {
            if (opt_threads(v, &a->threads) != 0)
                return -1;
        } else if ((v = opt_value(argc, argv, &i, "--jobs", &bad))) {
            if (opt_count("--jobs", v, 64, &a->jobs) != 0)
                return -1;
        } else if (bad) {
            return -2;
        } else if (argv[i][0] == '-' || a->manifest) {
            return err_set("run: unexpected argument '%s' (see pulse-pipe run --help)", argv[i]);
        } else {
            a->manifest = argv[i];
        }
    }
    if (bad)
        return -2;
    if (!a->manifest)
        return err_set("run: which manifest? (usage: pulse-pipe run MANIFEST)");
    /* Jobs are forked children, and a process that has started CUDA (device_check does) cannot give it to
     * a child. */
    if (a->jobs > 1 && strcmp(a->device, "cuda") == 0)
        return err_set("--jobs: with --device cuda stages run one at a time (CUDA does not survive a fork)");
    return device_check(a->device);
}

static int setup(struct run *r, const struct run_args *a) {
    size_t n = r->plan.dag.n;
    r->keep = xcalloc(n + 1, 1);
    r->force = xcalloc(n + 1, 1);
    r->state = xcalloc(n + 1, sizeof *r->state);
    if (a->nonly == 0)
        memset(r->keep, 1, n);
    if (plan_mark(&r->plan, a->only, a->nonly, r->keep, 1) != 0 ||
        plan_mark(&r->plan, a->force, a->nforce, r->force, 0) != 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        r->total += r->keep[i];
    return 0;
}

static void finish(struct run *r) {
    free(r->keep);
    free(r->force);
    free(r->state);
    json_free((struct json *)r->env.manifest);
    plan_free(&r->plan);
}

/* One stage after another, in the DAG's order. */
static void execute_serial(struct run *r) {
    for (size_t k = 0; k < r->plan.dag.n; k++) {
        size_t i = r->plan.dag.order[k];
        if (!r->keep[i])
            continue;
        r->shown++;
        r->state[i] = step(r, i);
        r->count[r->state[i]]++;
    }
}

static int execute(struct run *r) {
    if (r->jobs > 1 && !r->dry)
        run_jobs(r);
    else
        execute_serial(r);
    printf("pulse-pipe: %zu stages: %zu computed, %zu cached, %zu failed, %zu skipped%s\n", r->total,
           r->count[ST_COMPUTED], r->count[ST_CACHED], r->count[ST_FAILED], r->count[ST_SKIPPED],
           r->dry ? " (dry run)" : "");
    if (r->count[ST_FAILED])
        for (size_t i = 0; i < r->plan.dag.n; i++)
            if (r->state[i] == ST_FAILED)
                fprintf(stderr, "pulse-pipe: failed: %s\n", r->plan.dag.stages[i].name);
    return r->count[ST_FAILED] ? EXIT_FAILED : EXIT_OK;
}

int cmd_run(const struct pipe_opts *o, int argc, char **argv) {
    struct run_args a = {0};
    int rc = parse_args(argc, argv, &a);
    if (rc != 0) {
        free(a.only);
        free(a.force);
        return rc == 1 ? EXIT_OK : rc == -2 ? EXIT_USAGE : pipe_fail(EXIT_USAGE);
    }
    struct run r = {.dry = a.dry, .jobs = a.jobs, .env = {.threads = a.threads, .device = a.device}};
    if (plan_load(&r.plan, a.manifest) != 0 || setup(&r, &a) != 0) {
        free(a.only);
        free(a.force);
        finish(&r);
        return pipe_fail(EXIT_USAGE);
    }
    free(a.only);
    free(a.force);
    r.env.manifest = gitinfo_for(a.manifest);
    r.store = pipe_store(o, 1);
    if (!r.store) {
        finish(&r);
        return EXIT_FAILED;
    }
    int lock = lock_take(r.store, "store", LOCK_SHARED, 1); /* keeps gc out while we run */
    rc = lock < 0 ? pipe_fail(EXIT_FAILED) : execute(&r);
    if (lock >= 0)
        lock_drop(lock);
    store_close(r.store);
    finish(&r);
    return rc;
}

/* run: what `pulse-pipe run` (run.c) shares with its parallel scheduler (runjobs.c): the run's state and the
 * steps of one stage. */
#ifndef PULSE_PIPE_RUN_H
#define PULSE_PIPE_RUN_H

#include <stddef.h>
#include <sys/types.h>

#include "pipe/pipe.h"

/* A stage's state during a run. ST_RUNNING: computing in a child process (--jobs). */
enum state { ST_TODO, ST_CACHED, ST_COMPUTED, ST_FAILED, ST_SKIPPED, ST_WOULD, ST_RUNNING };

struct run {
    struct plan plan;
    struct store *store;
    struct exec_env env;
    unsigned char *keep, *force;
    enum state *state;
    int dry, jobs;
    size_t shown, total;
    size_t count[ST_RUNNING + 1];
};

/* "[k/n] NAME  what", k being r->shown. */
void run_say(struct run *r, size_t i, const char *what);
/* Settles stage i without computing it when it can, saying so: ST_SKIPPED (a producer failed or was
 * skipped), ST_CACHED (its record exists), ST_WOULD (a dry run), ST_FAILED (err_set; the caller says it);
 * ST_TODO, printing nothing, when it must be computed (*had_record: a forced stage whose record exists). */
enum state run_settle(struct run *r, size_t i, int *had_record);
/* Computes and publishes stage i under its stage lock (after run_settle said ST_TODO). ST_COMPUTED, ST_CACHED
 * (a concurrent run computed it meanwhile) or ST_FAILED (err_set). */
enum state run_locked(struct run *r, size_t i, int had_record);
/* Says that stage i failed, and why (err_msg) on stderr. */
void run_failed(struct run *r, size_t i);

/* runjobs.c: runs every kept stage, up to r->jobs at once, and fills r->state and r->count. */
void run_jobs(struct run *r);

#endif

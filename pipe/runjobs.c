/* runjobs: `pulse-pipe run --jobs N`. The parent decides what happens to each stage once its producers have
 * finished: skipped (a producer failed), reused (its record is in the store) or, while fewer than N run,
 * computed in a child process (fork, run_locked, exit with the state). When a child ends, the parent reads
 * the record it published from the store, which is how a stage's outputs reach the stages after it. Nothing
 * depends on the order or the split: keys and outputs are content, and the stage lock keeps one computation
 * per key across jobs as it does across runs.
 *
 * Order: of the stages ready at once, the deepest (the longest chain of stages after it) starts first.
 *
 * Threads: whenever a job starts or ends, the run's threads are split again between the running jobs (at
 * least one each), and each child's CPU table follows its share through a page the parent writes and every
 * child maps (ops_cpu_follow): a protocol's long chain keeps every core, the fan-out after it shares them,
 * and a job left running alone gets them all back. Results are the same bits for any split. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/ops.h"
#include "pipe/run.h"
#include "util/buf.h"
#include "util/err.h"

/* A child's exit status: computed, found computed by a concurrent run, failed (it said why). Any other status
 * (an engine error's exit, a signal) is a failure the parent reports. */
enum { JOB_COMPUTED = 0, JOB_CACHED = 64, JOB_FAILED = 65 };

/* A stage that must be computed, whether its record exists (a forced one), and where it goes in the queue:
 * its level, then its place in the DAG's order. */
struct job {
    size_t i;
    int had;
    size_t level, pos;
};

struct jobs {
    struct run *r;
    pid_t *pid;     /* per stage: its child, while ST_RUNNING */
    int *threads;   /* per stage: the threads its child has, in a page the children map when shared */
    int shared;     /* 0: a plain array (no shared page), so each job keeps the threads it started with */
    size_t *number; /* per stage: its k in "[k/n]", given when it started */
    size_t *level;  /* per stage: the most stages on a path from it to the end of the DAG, itself included */
    struct job *ready; /* stages to compute, gathered by one pass */
    int running, used;
};

static void settle(struct run *r, size_t i, enum state s) {
    r->state[i] = s;
    r->count[s]++;
}

/* Says that stage i failed, under the number it started with. */
static void job_failed(struct jobs *j, size_t i) {
    size_t now = j->r->shown;
    j->r->shown = j->number[i];
    run_failed(j->r, i);
    j->r->shown = now;
    settle(j->r, i, ST_FAILED);
}

/* Every producer of stage i has finished, one way or another. */
static int inputs_done(const struct run *r, size_t i) {
    const struct dag_stage *st = &r->plan.dag.stages[i];
    for (size_t k = 0; k < st->ninputs; k++) {
        enum state s = r->state[st->inputs[k].from];
        if (s == ST_TODO || s == ST_RUNNING)
            return 0;
    }
    return 1;
}

/* Settles stage i (inputs done) when it needs no computation; 1 when it must be computed. Its number in
 * "[k/n]" is taken for the lines run_settle prints, and given back when it prints none (a computed stage
 * gets its number when it starts). */
static int needs_compute(struct run *r, size_t i, int *had) {
    r->shown++;
    enum state s = run_settle(r, i, had);
    if (s == ST_TODO) {
        r->shown--;
        return 1;
    }
    if (s == ST_FAILED)
        run_failed(r, i);
    settle(r, i, s);
    return 0;
}

/* Stage i in a child process with `threads` threads. Buffers are flushed before the fork (so that the child
 * does not print the parent's lines again) and by the child before _exit, which leaves the parent's
 * resources (store, locks) to the parent. A child dies with its parent (PR_SET_PDEATHSIG): a run killed
 * by any signal stops computing, as a run without jobs does, and the store stays valid as after any crash. */
static void launch(struct jobs *j, size_t i, int had, int threads) {
    struct run *r = j->r;
    j->number[i] = ++r->shown;
    fflush(NULL);
    __atomic_store_n(&j->threads[i], threads,
                     __ATOMIC_RELAXED); /* before the fork: the child starts with it */
    pid_t parent = getpid(), pid = fork();
    if (pid == 0) {
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
            _exit(JOB_FAILED); /* the parent is already gone */
        /* the parent's audit-log handle (libgit2: caches, mapped packs) stays the parent's; the child opens
         * its own when it publishes */
        r->store->audit_repo = NULL;
        r->store->close_hook = NULL;
        r->env.threads = threads;
        if (j->shared)
            ops_cpu_follow(&j->threads[i]);
        enum state s = run_locked(r, i, had);
        if (s == ST_FAILED)
            run_failed(r, i);
        fflush(NULL);
        _exit(s == ST_COMPUTED ? JOB_COMPUTED : s == ST_CACHED ? JOB_CACHED : JOB_FAILED);
    }
    if (pid < 0) {
        err_set("cannot start a job: %s", strerror(errno));
        job_failed(j, i);
        return;
    }
    j->pid[i] = pid;
    j->running++;
    j->used += threads;
    r->state[i] = ST_RUNNING;
}

/* The run's threads split evenly between the running jobs (the earlier ones in the DAG's order get the
 * remainder), each at least one; written to the shared page, which the children read at every operation. */
static void rebalance(struct jobs *j) {
    struct run *r = j->r;
    if (!j->shared || j->running == 0)
        return;
    int total = r->env.threads, k = 0, per = total / j->running, extra = total % j->running;
    j->used = 0;
    for (size_t o = 0; o < r->plan.dag.n; o++) {
        size_t i = r->plan.dag.order[o];
        if (r->state[i] != ST_RUNNING)
            continue;
        int t = per + (k++ < extra);
        t = t > 1 ? t : 1;
        j->used += t;
        __atomic_store_n(&j->threads[i], t, __ATOMIC_RELAXED);
    }
}

/* Levels, from the last stage back: a producer is one more than its deepest consumer. */
static void levels(const struct dag *d, size_t *level) {
    for (size_t k = d->n; k-- > 0;) {
        const struct dag_stage *st = &d->stages[d->order[k]];
        level[d->order[k]] += 1;
        for (size_t x = 0; x < st->ninputs; x++) {
            size_t from = st->inputs[x].from;
            if (level[from] < level[d->order[k]])
                level[from] = level[d->order[k]];
        }
    }
}

/* Deepest first: a stage heading a long chain (a sweep member's fine-tuning, with its rounds after it) starts
 * before short tails that could run beside it later, so the run does not end on one long chain alone. */
static int cmp_job(const void *pa, const void *pb) {
    const struct job *a = pa, *b = pb;
    if (a->level != b->level)
        return a->level < b->level ? 1 : -1;
    return (a->pos > b->pos) - (a->pos < b->pos);
}

/* Another stage with stage i's key runs or starts in this pass (ready[0..start)): two names for one
 * computation, as when a manifest declares a stage twice. Stage i waits for it rather than for its lock in a
 * job slot, and is then reused. */
static int key_taken(const struct jobs *j, size_t i, size_t start) {
    const struct run *r = j->r;
    for (size_t s = 0; s < r->plan.dag.n; s++)
        if (r->state[s] == ST_RUNNING && strcmp(r->plan.keys[s], r->plan.keys[i]) == 0)
            return 1;
    for (size_t k = 0; k < start; k++)
        if (strcmp(r->plan.keys[j->ready[k].i], r->plan.keys[i]) == 0)
            return 1;
    return 0;
}

/* One pass in the DAG's order: settles every stage that can be settled without computing, then starts as
 * many of those that must be computed as there are free slots, deepest first (a stage whose key another
 * runs waits), then splits the threads again. */
static void start_ready(struct jobs *j) {
    struct run *r = j->r;
    size_t n = 0;
    for (size_t k = 0; k < r->plan.dag.n; k++) {
        size_t i = r->plan.dag.order[k];
        int had;
        if (r->keep[i] && r->state[i] == ST_TODO && inputs_done(r, i) && needs_compute(r, i, &had))
            j->ready[n++] = (struct job){i, had, j->level[i], k};
    }
    qsort(j->ready, n, sizeof *j->ready, cmp_job);
    size_t slots = (size_t)(r->jobs - j->running), start = 0;
    for (size_t k = 0; k < n && start < slots; k++)
        if (!key_taken(j, j->ready[k].i, start))
            j->ready[start++] = j->ready[k];
    for (size_t k = 0; k < start; k++) {
        int left = r->env.threads - j->used, share = left / (int)(start - k);
        launch(j, j->ready[k].i, j->ready[k].had, share > 1 ? share : 1);
    }
    rebalance(j);
}

/* The stage whose child pid is. */
static long stage_of(const struct jobs *j, pid_t pid) {
    for (size_t i = 0; i < j->r->plan.dag.n; i++)
        if (j->r->state[i] == ST_RUNNING && j->pid[i] == pid)
            return (long)i;
    return -1;
}

/* Waits for one of the jobs to end: its stage, or -1 when no child is left to wait for (ECHILD: cannot
 * happen while one runs, but never spin). Other children's ends are passed over. */
static long wait_job(struct jobs *j, int *status) {
    for (;;) {
        pid_t pid = waitpid(-1, status, 0);
        if (pid < 0 && errno == EINTR)
            continue;
        if (pid < 0)
            return -1;
        long i = stage_of(j, pid);
        if (i >= 0)
            return i;
    }
}

/* Waits for one child and settles its stage: a published record is read back from the store. */
static void reap(struct jobs *j) {
    struct run *r = j->r;
    int status;
    long i = wait_job(j, &status);
    if (i < 0) {
        for (size_t s = 0; s < r->plan.dag.n; s++)
            if (r->state[s] == ST_RUNNING) {
                err_set("lost track of its job");
                job_failed(j, s);
            }
        j->running = j->used = 0;
        return;
    }
    j->running--;
    j->used -= j->threads[i];
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (code == JOB_FAILED) { /* the child said why */
        settle(r, (size_t)i, ST_FAILED);
        return;
    }
    if (code == JOB_COMPUTED || code == JOB_CACHED) {
        int hit = plan_lookup(&r->plan, r->store, (size_t)i);
        if (hit == 1) {
            settle(r, (size_t)i, code == JOB_COMPUTED ? ST_COMPUTED : ST_CACHED);
            return;
        }
        if (hit == 0)
            err_set("its job ended but its record is not in the store");
    } else if (WIFSIGNALED(status)) {
        err_set("its job was killed by signal %d", WTERMSIG(status));
    } else {
        err_set("its job exited with status %d", code);
    }
    job_failed(j, (size_t)i);
}

void run_jobs(struct run *r) {
    size_t n = r->plan.dag.n + 1;
    struct jobs j = {.r = r,
                     .pid = xcalloc(n, sizeof *j.pid),
                     .number = xcalloc(n, sizeof *j.number),
                     .level = xcalloc(n, sizeof *j.level),
                     .ready = xcalloc(n, sizeof *j.ready)};
    levels(&r->plan.dag, j.level);
    signal(SIGCHLD, SIG_DFL); /* an inherited SIG_IGN would reap the children before waitpid sees them */
    void *page = mmap(NULL, n * sizeof(int), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    j.shared = page != MAP_FAILED;
    j.threads = j.shared ? page : xcalloc(n, sizeof *j.threads);
    for (;;) {
        start_ready(&j);
        if (j.running == 0) /* nothing runs and nothing more could start: every kept stage is settled */
            break;
        reap(&j);
    }
    if (j.shared)
        munmap(j.threads, n * sizeof(int));
    else
        free(j.threads);
    free(j.pid);
    free(j.number);
    free(j.level);
    free(j.ready);
}

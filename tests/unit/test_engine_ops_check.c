/* test_engine_ops_check: the checked operation table (engine/ops_check.c) and the registry of live mem_alloc
 * blocks behind it (engine/mem.c): memory from mem_alloc passes, with the same results as the inner table,
 * and so do NULL optional pointers and pointers inside a block; a malloc'd buffer, an extent one element too
 * long, a freed block and an embedding id past its table each kill the process with SIGABRT and the one line;
 * the fence faults host code that touches a block after an operation and before ops sync (a write only, for
 * a block marked mem_host_reads); ops_select wraps its table only under PULSE_CHECK_OPS=1. The aborting and
 * faulting calls run in forked children. */
#include "check.h"
#include "engine/mem.h"
#include "engine/ops.h"

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static const struct ops *O;

/* n floats from mem_alloc, 0.1, 0.2, ... */
static float *tensor(size_t n) {
    float *x = mem_alloc(n, sizeof(float));
    for (size_t i = 0; i < n; i++)
        x[i] = 0.1f * (float)(i % 17 + 1);
    return x;
}

/* ---- the registry ---- */

static void test_owns(void) {
    float *x = mem_alloc(10, sizeof(float));
    CHECK(mem_owns(x, 10 * sizeof(float)));
    CHECK(mem_owns(x + 3, 7 * sizeof(float)));
    CHECK(!mem_owns(x + 3, 8 * sizeof(float)));
    CHECK(!mem_owns(x, 11 * sizeof(float)));
    CHECK(mem_owns(x + 10, 0)); /* an empty extent just past the end */
    CHECK(!mem_owns(x + 10, 1));
    CHECK(!mem_owns((char *)x - 1, 1)); /* the header in front is not the caller's */
    CHECK(!mem_owns(x, SIZE_MAX));
    float *h = malloc(10 * sizeof(float));
    CHECK(!mem_owns(h, sizeof(float)));
    free(h);
    uint8_t *empty = mem_alloc(0, 1);
    CHECK(mem_owns(empty, 0));
    CHECK(!mem_owns(empty, 1));
    mem_free(empty);
    mem_free(x);
    CHECK(!mem_owns(x, sizeof(float)));
    mem_free(NULL);
}

/* Stages may allocate from several threads: the registry stays exact under two threads allocating and freeing
 * side by side. */
static void *churn(void *arg) {
    void *live[64] = {0};
    int ok = 1;
    for (int r = 0; r < 2000; r++) {
        int k = r % 64;
        mem_free(live[k]);
        live[k] = mem_alloc((size_t)(r % 7 + 1), 8);
        ok &= mem_owns(live[k], (size_t)(r % 7 + 1) * 8);
    }
    for (int k = 0; k < 64; k++) {
        ok &= mem_owns(live[k], 8);
        mem_free(live[k]);
    }
    return ok ? NULL : arg;
}

static void test_threads(void) {
    pthread_t t[2];
    void *r[2];
    static int failed; /* what a thread returns when its blocks were not all known */
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&t[i], NULL, churn, &failed) == 0);
    for (int i = 0; i < 2; i++) {
        CHECK(pthread_join(t[i], &r[i]) == 0);
        CHECK(r[i] == NULL);
    }
}

/* ---- calls that pass ---- */

static void test_passes(void) {
    size_t n = 3, ic = 4, oc = 5;
    float *inp = tensor(n * ic), *w = tensor(oc * ic), *b = tensor(oc), *out = tensor(n * oc);
    float *want = malloc(n * oc * sizeof(float)); /* host-only: never handed to the checked table */
    O->matmul_forward(out, inp, w, b, n, ic, oc);
    O->sync();
    memcpy(want, out, n * oc * sizeof(float));
    ops_cpu(1)->matmul_forward(out, inp, w, b, n, ic, oc);
    CHECK(memcmp(want, out, n * oc * sizeof(float)) == 0); /* forwarded unchanged */
    O->matmul_forward(out, inp, w, NULL, n, ic, oc);       /* no bias */

    /* frozen weights: no dw, db; a backward without any gradient reads nothing */
    float *dinp = tensor(n * ic), *dout = tensor(n * oc);
    O->matmul_backward(dinp, NULL, NULL, dout, inp, w, n, ic, oc);
    O->matmul_backward(NULL, NULL, NULL, NULL, NULL, NULL, n, ic, oc);
    O->gelu_backward(NULL, NULL, NULL, 8);
    O->accumulate(NULL, NULL, 8);

    /* a pointer inside a block, for an extent that ends at the block's end */
    O->zero(w + 5, oc * ic - 5);
    O->copy(w, w + oc * ic - 4, 4);
    CHECK(O->sum_squares(w, oc * ic) >= 0.0);
    O->scale(out, 2.0f, 0); /* empty */

    /* attention without the len mask; with it */
    size_t B = 2, T = 3, NH = 2, HS = 4, X = B * T * NH * HS;
    float *q = tensor(X), *k = tensor(X), *v = tensor(X), *ao = tensor(X), *p = tensor(B * NH * T * T);
    int32_t *len = mem_alloc(B, sizeof *len), *pos = mem_alloc(B * T, sizeof *pos);
    len[0] = 2, len[1] = 3;
    O->attention_forward(ao, p, q, k, v, NULL, 1, B, T, NH, HS);
    O->attention_forward(ao, p, q, k, v, len, 1, B, T, NH, HS);
    O->attention_backward(NULL, NULL, q, ao, p, NULL, NULL, v, B, T, NH, HS); /* dv only: q, k unread */
    O->rope_forward(q, pos, B, T, NH, HS, 10000.0f);

    /* embedding: rows up to the largest id must be inside the table; a negative id indexes nothing */
    size_t rows = 4, c = 3;
    float *table = tensor(rows * c), *eo = tensor(5 * c);
    int32_t *tok = mem_alloc(5, sizeof *tok);
    tok[0] = 0, tok[1] = 3, tok[2] = -1, tok[3] = 2, tok[4] = 3;
    O->embedding_forward(eo, tok, table, 5, c);
    O->embedding_backward(table, eo, tok, 5, c);
    O->embedding_backward(NULL, NULL, NULL, 5, c);

    /* losses: the mask may be NULL; v == 0 touches nothing */
    size_t V = 6;
    float *logits = tensor(n * V), *ref = tensor(n * V), *lp = tensor(n), *dl = tensor(n * V);
    int32_t *tgt = mem_alloc(n, sizeof *tgt);
    uint8_t *mask = mem_alloc(n, 1);
    mask[0] = 1, mask[2] = 1, tgt[2] = 5;
    O->logprob_forward(lp, logits, tgt, mask, n, V);
    O->logprob_forward(lp, logits, tgt, NULL, n, V);
    O->logprob_backward(dl, lp, logits, tgt, mask, n, V);
    O->kl_forward(lp, logits, ref, mask, n, V);
    O->kl_backward(dl, lp, logits, ref, NULL, n, V);
    O->kl_forward(lp, NULL, NULL, NULL, n, 0);

    float *m = tensor(oc), *vv = tensor(oc);
    O->adamw(b, b, m, vv, oc, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f, 1);

    void *all[] = {inp, w,     b,  out, dinp,   dout, q,  k,  v,   ao,   p, len,
                   pos, table, eo, tok, logits, ref,  lp, dl, tgt, mask, m, vv};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        mem_free(all[i]);
    free(want);
}

/* ---- calls that abort ---- */

/* Runs fn in a child (no core file: its death is deliberate) with stderr captured into err; returns the
 * child's wait status (0 when the pipe could not be made). */
static int in_child(void (*fn)(void), char *err, size_t cap) {
    int fd[2];
    err[0] = '\0';
    if (pipe(fd) != 0)
        return 0;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit none = {0, 0};
        setrlimit(RLIMIT_CORE, &none);
        close(fd[0]);
        dup2(fd[1], 2);
        fn();
        _exit(0);
    }
    close(fd[1]);
    size_t got = 0;
    ssize_t r;
    while (got + 1 < cap && (r = read(fd[0], err + got, cap - 1 - got)) > 0)
        got += (size_t)r;
    err[got] = '\0';
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
}

/* 1 when fn, in a child, died of SIGABRT having printed `line` (and nothing after it); the captured text in
 * err. */
static int aborts(void (*fn)(void), const char *line, char *err, size_t cap) {
    int status = in_child(fn, err, cap);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT) {
        fprintf(stderr, "  child did not abort (status %d): %s\n", status, err);
        return 0;
    }
    const char *at = strstr(err, line);
    if (!at || strcmp(at + strlen(line), "\n") != 0) {
        fprintf(stderr, "  stderr:  %s  wanted:  %s\n", err, line);
        return 0;
    }
    return 1;
}

/* The pointers the children pass, made before the fork so the parent can spell the expected line. */
static float *logits, *ref_heap, *out_short, *inp, *w, *freed, *table;
static int32_t *tok;
static uint8_t *mask;

/* The bug stages/unlearn.c had: reference logits from malloc handed to kl_forward. */
static void kl_with_malloc(void) {
    float *kl = mem_alloc(2, sizeof *kl);
    O->kl_forward(kl, logits, ref_heap, mask, 2, 8);
}
/* out holds n*oc - 1 floats: one element too short. */
static void matmul_short(void) {
    O->matmul_forward(out_short, inp, w, NULL, 2, 3, 4);
}
static void copy_freed(void) {
    O->copy(inp, freed, 4);
}
/* tok[1] = 4 with a table of 4 rows. */
static void embedding_past_table(void) {
    float *out = mem_alloc(2 * 3, sizeof *out);
    O->embedding_forward(out, tok, table, 2, 3);
}

static void test_aborts(void) {
    char err[1024], line[256];
    logits = tensor(16);
    ref_heap = calloc(16, sizeof(float));
    mask = mem_alloc(2, 1);
    snprintf(
        line, sizeof line,
        "pulse-pipe: ops check: kl_forward: argument ref_logits (64 bytes at %p) is not inside memory from "
        "mem_alloc",
        (void *)ref_heap);
    CHECK(aborts(kl_with_malloc, line, err, sizeof err));

    out_short = tensor(2 * 4 - 1);
    inp = tensor(2 * 3);
    w = tensor(4 * 3);
    snprintf(line, sizeof line,
             "pulse-pipe: ops check: matmul_forward: argument out (32 bytes at %p) is not inside memory from "
             "mem_alloc",
             (void *)out_short);
    CHECK(aborts(matmul_short, line, err, sizeof err));

    freed = tensor(4);
    mem_free(freed);
    snprintf(line, sizeof line,
             "pulse-pipe: ops check: copy: argument src (16 bytes at %p) is not inside memory from mem_alloc",
             (void *)freed);
    CHECK(aborts(copy_freed, line, err, sizeof err));

    table = tensor(4 * 3);
    tok = mem_alloc(2, sizeof *tok);
    tok[0] = 1, tok[1] = 4;
    snprintf(
        line, sizeof line,
        "pulse-pipe: ops check: embedding_forward: argument table (60 bytes at %p) is not inside memory from "
        "mem_alloc",
        (void *)table);
    CHECK(aborts(embedding_past_table, line, err, sizeof err));
    tok[1] = 3; /* the last row: fine */
    float *eo = mem_alloc(2 * 3, sizeof *eo);
    O->embedding_forward(eo, tok, table, 2, 3);

    void *all[] = {logits, mask, out_short, inp, w, table, tok, eo};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        mem_free(all[i]);
    free(ref_heap);
}

/* ---- the fence ---- */

static float *fx, *ftable, *frows;
static int32_t *fids;

static void read_unsynced(void) {
    O->scale(fx, 2.0f, 4);
    volatile float r = fx[1];
    (void)r;
}
static void write_unsynced(void) {
    O->scale(fx, 2.0f, 4);
    fx[1] = 1.0f;
}
static void write_host_read(void) {
    O->embedding_forward(frows, fids, ftable, 4, 2);
    fids[0] = 1;
}

/* 1 when fn, in a child, dies of SIGSEGV (the fence) having printed the fence's line. */
static int faults(void (*fn)(void)) {
    char err[512];
    int status = in_child(fn, err, sizeof err);
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV &&
           strstr(err, "pulse-pipe: ops check: host code touched memory an operation may still be using") !=
               NULL;
}

static void test_fence(void) {
    fx = tensor(4);
    ftable = tensor(3 * 2);
    frows = tensor(4 * 2);
    fids = mem_alloc(4, sizeof *fids);
    mem_host_reads(fids);
    CHECK(faults(read_unsynced));
    CHECK(faults(write_unsynced));
    CHECK(faults(write_host_read));
    float *other = tensor(2);
    O->scale(fx, 2.0f, 4);
    O->embedding_forward(frows, fids, ftable, 4, 2);
    other[0] = other[1] + 1.0f; /* a block no operation was given stays open... */
    CHECK(fids[2] == 0);        /* ...and a mem_host_reads block stays readable */
    O->sync();
    CHECK(fx[1] == 0.1f * 2 * 2); /* after sync: everything readable and writable */
    fx[1] = 1.0f;
    fids[0] = 1;
    O->scale(fx, 2.0f, 4);
    O->sync();
    other[1] = fx[1];
    CHECK(other[1] == 2.0f);
    O->scale(fx, 2.0f, 4);
    CHECK(O->sum_squares(fx, 4) > 0.0 && fx[0] > 0.0f); /* it returns a value: it waits like sync */
    void *all[] = {fx, ftable, frows, fids, other};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        mem_free(all[i]);
}

/* ops_select wraps its table only under PULSE_CHECK_OPS=1. */
static float *heap4;
static void select_with_malloc(void) {
    float *x = mem_alloc(4, sizeof *x);
    ops_select("cpu", 1)->add(x, x, heap4, 4);
}

static void test_select(void) {
    unsetenv("PULSE_CHECK_OPS");
    CHECK(ops_select("cpu", 1) == ops_cpu(1));
    setenv("PULSE_CHECK_OPS", "0", 1);
    CHECK(ops_select("cpu", 1) == ops_cpu(1));
    setenv("PULSE_CHECK_OPS", "1", 1);
    const struct ops *o = ops_select("cpu", 1);
    CHECK(o && o != ops_cpu(1) && o->add != ops_cpu(1)->add);
    CHECK_STR(o->name, "cpu"); /* code that asks which backend runs gets the same answer */
    char err[1024], line[256];
    heap4 = malloc(4 * sizeof *heap4);
    snprintf(line, sizeof line,
             "pulse-pipe: ops check: add: argument b (16 bytes at %p) is not inside memory from mem_alloc",
             (void *)heap4);
    CHECK(aborts(select_with_malloc, line, err, sizeof err));
    free(heap4);
    unsetenv("PULSE_CHECK_OPS");
}

int main(void) {
    mem_check_enable(); /* before the first mem_alloc: earlier blocks would be unknown */
    CHECK(mem_check_enabled());
    O = ops_checked(ops_cpu(1));
    CHECK(O->copy && O->zero && O->adamw && O->kl_backward);
    test_owns();
    test_passes();
    test_aborts();
    test_fence();
    test_select();
    test_threads();
    return check_done("test_engine_ops_check");
}

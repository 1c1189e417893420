/* test_engine_recompute: activation recomputation (llava_set_recompute) and the memory plan
 * (engine/llava_plan.h) on the tiny fixture model (tests/data/llava_tiny, made by
 * tests/reference/make_llava_fixture.py).
 *
 * - Bits: two training steps, full-parameter (tower, projector and decoder: both recomputing backwards) and
 *   LoRA with dropout (plus the projector), on 1 and 2 threads: every loss, every gradient of both steps and
 *   every weight after them are memcmp-identical with recomputation on and off. Dropout is checked to be on
 *   (its gradients differ from a run without it), so the recomputed forward really redraws its masks.
 * - Memory: recomputation shrinks the activation block; the plan's activation line is the block's size.
 * - The plan is exact: after a step, the bytes mem_alloc holds equal the plan's resident blocks, and the peak
 *   during the step its total (full; LoRA + recompute; a frozen reference model beside it).
 * Runs under PULSE_CHECK_OPS=1 too (ops_select then checks every buffer an operation gets). */
#include "check.h"
#include "llava_batch.h"
#include "engine/llava.h"
#include "engine/generate.h"
#include "engine/llava_plan.h"
#include "engine/lora.h"
#include "engine/mem.h"
#include "engine/ops.h"
#include "engine/train.h"
#include "util/err.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NB 2
#define NT 24
#define STEPS 2
#define MP "model.multi_modal_projector."
#define TARGETS ".*language_model.*\\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"

static char tiny[4096];

static struct llava_batch fx; /* the labels from llava_lora/lora.safetensors */

enum job { FULL, LORA };

struct setup {
    enum job job;
    int recompute;
    double dropout;
};

/* The job's adapter: rank 4 on all seven projections (PEFT's initialisation, then B moved off zero so that
 * A's gradient is not zero). */
static int make_lora(struct llava *m, struct lora *l, double dropout) {
    if (lora_create(l, 4, 8.0, dropout) < 0)
        return -1;
    lora_set_target_regex(l, TARGETS);
    if (llava_lora_add_targets(m, l) < 0)
        return -1;
    lora_init(l, 5);
    for (size_t i = 0; i < l->n; i++)
        for (size_t j = 0; j < l->m[i].out * (size_t)l->r; j++)
            l->m[i].B[j] = 0.01f * (float)((j * 7 + i) % 11) - 0.05f;
    return llava_lora_attach(m, l, 9);
}

/* The model set up for the job: everything trains (FULL), or an adapter and the projector (LORA). */
static int build(struct llava *m, struct lora *l, struct train_adamw *o, const struct setup *s) {
    memset(l, 0, sizeof *l);
    if (llava_load(m, tiny, NB, NT) < 0)
        return -1;
    llava_set_recompute(m, s->recompute);
    if (s->job == FULL)
        llava_set_trainable(m, "", 1);
    else if (make_lora(m, l, s->dropout) < 0 || !llava_set_trainable(m, MP, 1))
        return -1;
    llava_grads_init(m);
    train_adamw_init(o, m, 0.9f, 0.999f, 1e-8f, 0.01f, 0.0f); /* no clipping: the gradients stay as made */
    return 0;
}

static void destroy(struct llava *m, struct lora *l, struct train_adamw *o) {
    train_adamw_free(o);
    llava_free(m);
    lora_free(l);
}

/* What a run leaves: the losses, both steps' gradients, the weights (and the adapter) after them. */
struct result {
    float loss[STEPS];
    float *grads[STEPS], *params, *ab;
    size_t ngrads, nparams, nab;
};

static void result_free(struct result *r) {
    for (int s = 0; s < STEPS; s++)
        free(r->grads[s]);
    free(r->params);
    free(r->ab);
}

static float *copy_of(const float *x, size_t n) {
    float *c = malloc((n ? n : 1) * sizeof *c);
    memcpy(c, x, n * sizeof *c);
    return c;
}

static void keep_adapter(struct result *r, const struct lora *l) {
    for (size_t i = 0; i < l->n; i++)
        r->nab += (size_t)l->r * (l->m[i].in + l->m[i].out);
    r->ab = malloc((r->nab ? r->nab : 1) * sizeof(float));
    size_t at = 0;
    for (size_t i = 0; i < l->n; i++) {
        size_t na = (size_t)l->r * l->m[i].in, nb = (size_t)l->r * l->m[i].out;
        memcpy(r->ab + at, l->m[i].A, na * sizeof(float));
        memcpy(r->ab + at + na, l->m[i].B, nb * sizeof(float));
        at += na + nb;
    }
}

static int run(const struct setup *s, int threads, struct result *r) {
    struct llava m;
    struct lora l;
    struct train_adamw o;
    memset(r, 0, sizeof *r);
    const struct ops *ops = ops_select("cpu", threads);
    int rc = ops && build(&m, &l, &o, s) == 0 ? 0 : -1;
    for (int k = 0; rc == 0 && k < STEPS; k++) {
        rc = train_step(&m, &o, ops, fx.ids, fx.mask, fx.labels, NB, NT, fx.pixels, NB, 1e-3f, &r->loss[k]);
        r->grads[k] = copy_of(m.grads, m.ngrads);
    }
    if (rc == 0) {
        r->ngrads = m.ngrads;
        r->nparams = m.nparams;
        r->params = copy_of(m.params, m.nparams);
        keep_adapter(r, &l);
    }
    destroy(&m, &l, &o);
    return rc;
}

static int same_bits(const struct result *a, const struct result *b) {
    int same = memcmp(a->loss, b->loss, sizeof a->loss) == 0 && a->ngrads == b->ngrads &&
               a->nparams == b->nparams && a->nab == b->nab;
    for (int k = 0; same && k < STEPS; k++)
        same = memcmp(a->grads[k], b->grads[k], a->ngrads * sizeof(float)) == 0;
    return same && memcmp(a->params, b->params, a->nparams * sizeof(float)) == 0 &&
           memcmp(a->ab, b->ab, a->nab * sizeof(float)) == 0;
}

/* Recomputation on and off give the same bits, for each job and thread count. */
static void test_bits(enum job job) {
    struct result off, on;
    for (int threads = 1; threads <= 2; threads++) {
        struct setup a = {job, 0, 0.1}, b = {job, 1, 0.1};
        CHECK(run(&a, threads, &off) == 0);
        CHECK(run(&b, threads, &on) == 0);
        int same = same_bits(&off, &on);
        CHECK(same);
        CHECK(off.loss[1] != off.loss[0]); /* the step moved the weights */
        printf("%s, %d thread%s: losses %.7f %.7f, %zu gradients x %d steps, recompute on = off: %s\n",
               job == FULL ? "full" : "LoRA + projector", threads, threads > 1 ? "s" : "", on.loss[0],
               on.loss[1], on.ngrads, STEPS, same ? "identical" : "DIFFERENT");
        result_free(&off);
        result_free(&on);
    }
}

/* Dropout is really on in the LoRA runs above: without it the gradients differ. */
static void test_dropout_on(void) {
    struct result with, without;
    struct setup a = {LORA, 1, 0.1}, b = {LORA, 1, 0.0};
    CHECK(run(&a, 1, &with) == 0);
    CHECK(run(&b, 1, &without) == 0);
    CHECK(with.ngrads == without.ngrads &&
          memcmp(with.grads[0], without.grads[0], with.ngrads * sizeof(float)) != 0);
    result_free(&with);
    result_free(&without);
}

/* The plan for the job as build() sets it up. */
static int plan_for(const struct llava_config *cfg, const struct setup *s, struct lora *l, int reference,
                    struct llava_plan *p) {
    struct llava_plan_opts o = {.B = NB,
                                .T = NT,
                                .train = 1,
                                .recompute = s->recompute,
                                .reference = reference,
                                .precision = "fp32",
                                .device = "cpu"};
    o.trainable = s->job == FULL ? "" : MP;
    if (s->job == LORA) {
        if (lora_create(l, 4, 8.0, s->dropout) < 0)
            return -1;
        lora_set_target_regex(l, TARGETS);
        o.lora = l;
    }
    return llava_memory_plan(cfg, &o, p);
}

/* A frozen copy beside the trained model, as stages/unlearn.c holds its KL / NPO reference. */
static size_t reference_bytes(const struct ops *ops) {
    struct llava r;
    size_t before = mem_in_use();
    if (llava_load(&r, tiny, NB, NT) < 0)
        return 0;
    llava_set_recompute(&r, 1); /* forwards only, in every job (stages/unlearn.c) */
    size_t after = llava_forward(&r, ops, fx.ids, fx.mask, NB, NT, fx.pixels, NB) == 0 ? mem_in_use() : 0;
    llava_free(&r);
    return after - before;
}

/* mem_alloc's accounting around a real setup and one step against the plan. */
static void test_plan_exact(const struct setup *s) {
    struct llava m;
    struct lora l, shape = {0};
    struct train_adamw o;
    struct llava_plan p;
    const struct ops *ops = ops_select("cpu", 1);
    size_t base = mem_in_use();
    mem_peak_reset();
    int ok = ops && build(&m, &l, &o, s) == 0;
    float loss;
    ok = ok && train_step(&m, &o, ops, fx.ids, fx.mask, fx.labels, NB, NT, fx.pixels, NB, 1e-3f, &loss) == 0;
    CHECK(ok);
    size_t held = mem_in_use() - base, peak = mem_peak() - base, ref = ok ? reference_bytes(ops) : 0;
    CHECK(plan_for(&m.cfg, s, &shape, 1, &p) == 0);
    size_t ref_plan = p.n ? p.b[p.n - 1].bytes : 0;
    CHECK(p.n && strcmp(p.b[p.n - 1].name, "reference model (KL / NPO)") == 0);
    CHECK(held == p.resident - ref_plan);
    CHECK(peak == p.total - ref_plan);
    CHECK(ref == ref_plan);
    CHECK(p.reserve == 0);
    printf(
        "plan, %s%s: %zu bytes held after a step (plan %zu), peak %zu (plan %zu), reference %zu (plan %zu)\n",
        s->job == FULL ? "full" : "LoRA + projector", s->recompute ? ", recompute" : "", held,
        p.resident - ref_plan, peak, p.total - ref_plan, ref, ref_plan);
    llava_plan_print(stdout, &p, "  ", 0);
    lora_free(&shape);
    destroy(&m, &l, &o);
}

/* The activation block shrinks with recomputation, by the plan and by the model's own count. */
static void test_smaller(void) {
    size_t nacts[2];
    struct llava_plan p[2];
    for (int on = 0; on < 2; on++) {
        struct llava m;
        struct lora none = {0};
        struct setup s = {FULL, on, 0};
        CHECK(llava_load(&m, tiny, NB, NT) == 0);
        llava_set_recompute(&m, on);
        CHECK(llava_forward(&m, ops_cpu(1), fx.ids, fx.mask, NB, NT, fx.pixels, NB) == 0);
        nacts[on] = m.nacts;
        CHECK(plan_for(&m.cfg, &s, &none, 0, &p[on]) == 0);
        CHECK(p[on].b[1].bytes == m.nacts * sizeof(float) + llava_token_bytes(&m));
        /* switching after a forward drops it: a backward needs a new one */
        llava_set_recompute(&m, !on);
        llava_grads_init(&m);
        CHECK(m.acts == NULL && llava_backward(&m, ops_cpu(1)) == -1);
        llava_free(&m);
    }
    CHECK(nacts[1] < nacts[0]);
    CHECK(p[1].b[1].bytes < p[0].b[1].bytes && p[1].total < p[0].total);
    printf("activations: %zu floats kept for every layer, %zu with recomputation\n", nacts[0], nacts[1]);
}

/* The CUDA reserve line, and the refusals. */
static void test_plan_opts(void) {
    struct llava m;
    struct llava_plan p;
    CHECK(llava_load(&m, tiny, NB, NT) == 0);
    struct llava_plan_opts o = {.B = NB, .T = NT, .precision = "fp32", .device = "cuda"};
    CHECK(llava_memory_plan(&m.cfg, &o, &p) == 0);
    CHECK(p.reserve == MEM_CUDA_RESERVE && p.n == 2 && p.total == p.resident);
    /* bf16 on CUDA: the frozen products (every one: nothing trains) as bf16 copies, their fp32 edge pages at
     * most whole (the tiny model's weights are smaller than a page: all of them) */
    size_t prod = 0, all = 0;
    for (size_t i = 0; i < m.nptab; i++) {
        prod += m.ptab[i].product ? m.ptab[i].n : 0;
        all += m.ptab[i].n;
    }
    o.precision = "bf16";
    struct llava_plan q;
    CHECK(llava_memory_plan(&m.cfg, &o, &q) == 0);
    CHECK(q.n == 4 && q.b[0].bytes == (all - prod) * sizeof(float) && q.b[1].bytes == prod * 2);
    CHECK(q.b[2].bytes == prod * sizeof(float) && q.b[3].bytes == p.b[1].bytes);
    CHECK(q.total == p.total + prod * 2);
    o.device = "cpu"; /* the CPU's copies are rounded fp32 arrays beside the weights */
    CHECK(llava_memory_plan(&m.cfg, &o, &q) == 0 && q.n == 3 && q.b[1].bytes == prod * sizeof(float));
    CHECK(q.total == p.total + prod * sizeof(float));
    o.device = "cuda";
    o.device = "tpu";
    CHECK(llava_memory_plan(&m.cfg, &o, &p) == -1);
    CHECK_HAS(err_msg(), "unknown device 'tpu'");
    o.device = "cpu";
    o.B = 0;
    CHECK(llava_memory_plan(&m.cfg, &o, &p) == -1);
    struct lora l;
    CHECK(lora_create(&l, 4, 8.0, 0.0) == 0);
    lora_set_target_regex(&l, "nothing_here");
    o.B = NB;
    o.lora = &l;
    CHECK(llava_memory_plan(&m.cfg, &o, &p) == -1);
    CHECK_HAS(err_msg(), "matches none");
    lora_free(&l);
    llava_free(&m);
}

/* Forwards only, as select and evaluate score (stages/quiz.c: the recomputation layout): a model's whole
 * allocation is the plan's total for train = 0, recompute on, and less than with every layer's own rows. */
static void test_plan_forwards(void) {
    const struct ops *ops = ops_select("cpu", 1);
    struct llava_plan on, off;
    struct llava_plan_opts o = {.B = NB, .T = NT, .recompute = 1, .precision = "fp32", .device = "cpu"};
    struct llava r;
    size_t before = mem_in_use();
    mem_peak_reset();
    if (llava_load(&r, tiny, NB, NT) != 0) {
        CHECK(!"the tiny model loads");
        return;
    }
    llava_set_recompute(&r, 1);
    CHECK(llava_forward(&r, ops, fx.ids, fx.mask, NB, NT, fx.pixels, NB) == 0);
    size_t peak = mem_peak() - before;
    CHECK(llava_memory_plan(&r.cfg, &o, &on) == 0);
    o.recompute = 0;
    CHECK(llava_memory_plan(&r.cfg, &o, &off) == 0);
    CHECK(peak == on.total && on.total < off.total);
    printf("forwards only, recompute: peak %zu bytes (plan %zu; every layer's own rows: %zu)\n", peak,
           on.total, off.total);
    /* and generating 3 tokens after each sequence (evaluate's `generate`): its K/V cache on top */
    struct llava_gen g = {.max_new = 3, .eos = -1};
    int32_t out[NB * 3];
    size_t n[NB];
    struct llava_plan gen;
    o.recompute = 1;
    o.gen_tokens = g.max_new;
    CHECK(llava_memory_plan(&r.cfg, &o, &gen) == 0);
    CHECK(llava_generate(&r, ops, fx.ids, fx.mask, NB, NT, fx.pixels, NB, &g, out, n) == 0);
    peak = mem_peak() - before;
    CHECK(peak == gen.total && gen.resident == on.total && gen.total > on.total);
    printf("and generating 3 tokens: peak %zu bytes (plan %zu)\n", peak, gen.total);
    llava_free(&r);
}

int main(void) {
    const char *data = getenv("PULSE_TEST_DATA") ? getenv("PULSE_TEST_DATA") : "tests/data";
    snprintf(tiny, sizeof tiny, "%s/llava_tiny", data);
    CHECK(llava_batch_load(&fx, tiny, data, "llava_lora/lora.safetensors", NB * NT) == 0);
    if (check_failures)
        return check_done("engine_recompute");
    test_bits(FULL);
    test_bits(LORA);
    test_dropout_on();
    test_smaller();
    test_plan_exact(&(struct setup){FULL, 0, 0.1});
    test_plan_exact(&(struct setup){LORA, 1, 0.1});
    test_plan_opts();
    test_plan_forwards();
    llava_batch_free(&fx);
    return check_done("engine_recompute");
}

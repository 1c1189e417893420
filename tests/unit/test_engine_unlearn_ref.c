/* test_engine_unlearn_ref: the unlearning reference that shares the trained model's weights (struct
 * unlearn_ref, engine/unlearn_loss.h) against the reference stages/unlearn.c used to build, a second model,
 * on the tiny fixture model (tests/data/llava_tiny, made by tests/reference/make_llava_fixture.py).
 *
 * Both models start from the same "round start": the base with an earlier round's adapter merged
 * (tests/data/llava_lora/adapter) and a moved projector. The trained one gets a fresh LoRA adapter (dropout
 * 0.1) and a trainable projector and takes GA+KLR steps whose KL reads the shared reference; the other stays
 * frozen, as the separate reference did. At every step the shared reference's logits (the KL's) equal the
 * separate model's bit for bit (memcmp), and after the steps so do NPO's per-sequence log-probabilities, with
 * recomputation off and on, on 1 and 2 threads. The steps really moved the adapter and the projector (else
 * the comparison would prove nothing), a reference forward leaves the trained model's own forward unchanged
 * and refuses a backward until the next forward, and the memory the reference takes is the memory plan's
 * (engine/llava_plan.h) to the byte. Runs under PULSE_CHECK_OPS=1 too. */
#include "check.h"
#include "llava_batch.h"
#include "logit_rows.h"
#include "engine/llava.h"
#include "engine/llava_plan.h"
#include "engine/lora.h"
#include "engine/mem.h"
#include "engine/ops.h"
#include "engine/peft.h"
#include "engine/train.h"
#include "engine/unlearn_loss.h"
#include "util/err.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NB 2
#define NT 24
#define STEPS 3
#define MP "model.multi_modal_projector."
#define TARGETS ".*language_model.*\\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"

static char tiny[4096], adapter_dir[4096];

static struct llava_batch fx; /* the forget batch, the labels from llava_lora/lora.safetensors */
static struct {
    int32_t ids[NB * NT], mask[NB * NT], labels[NB * NT];
} rt; /* the retain batch: the forget batch's rows swapped */

static void swap_rows(int32_t *dst, const int32_t *src) {
    memcpy(dst, src + NT, NT * sizeof *dst);
    memcpy(dst + NT, src, NT * sizeof *dst);
}

static int load_fixture(const char *data) {
    if (llava_batch_load(&fx, tiny, data, "llava_lora/lora.safetensors", NB * NT) < 0)
        return -1;
    swap_rows(rt.ids, fx.ids);
    swap_rows(rt.mask, fx.mask);
    swap_rows(rt.labels, fx.labels);
    return 0;
}

/* The round start: the base, an earlier round's adapter merged, the projector moved (as a round's output). */
static int round_start(struct llava *m, int recompute) {
    struct lora prev;
    if (llava_load(m, tiny, NB, NT) < 0 || peft_read(adapter_dir, llava_lora_shape, m, &prev, NULL) < 0)
        return -1;
    int rc = llava_lora_attach(m, &prev, 0);
    if (rc == 0)
        llava_lora_merge(m);
    lora_free(&prev);
    for (size_t i = 0; i < m->nptab; i++)
        if (strncmp(m->ptab[i].name, MP, strlen(MP)) == 0)
            for (size_t e = 0; e < m->ptab[i].n; e++)
                m->params[m->ptab[i].offset + e] *= 1.0f + 0.01f * (float)(e % 7);
    llava_set_recompute(m, recompute);
    return rc;
}

/* The unlearn stage's setup on top: the projector trains, a fresh adapter (PEFT's init: B = 0) with dropout.
 */
static int trained_setup(struct llava *m, struct lora *l) {
    if (lora_create(l, 4, 8.0, 0.1) < 0)
        return -1;
    lora_set_target_regex(l, TARGETS);
    if (!llava_set_trainable(m, MP, 1) || llava_lora_add_targets(m, l) < 0)
        return -1;
    lora_init(l, 5);
    if (llava_lora_attach(m, l, 9) < 0)
        return -1;
    llava_grads_init(m);
    return 0;
}

/* Everything one comparison holds. */
struct pair {
    struct llava m, r; /* trained (shared reference), and the separate reference */
    struct lora l;
    struct unlearn_ref ref;
    struct train_adamw o;
    float *feats; /* the images' tower features, shared by both batches and both models */
    struct unlearn_batch forget, retain;
};

static int pair_make(struct pair *p, const struct ops *ops, int recompute) {
    memset(p, 0, sizeof *p);
    if (round_start(&p->m, recompute) < 0 || round_start(&p->r, recompute) < 0 ||
        trained_setup(&p->m, &p->l) < 0)
        return -1;
    unlearn_ref_init(&p->ref, &p->m, ops);
    train_adamw_init(&p->o, &p->m, 0.9f, 0.999f, 1e-8f, 0.01f, 1.0f);
    p->feats = mem_alloc(NB * llava_feature_tokens(&p->m) * (size_t)p->m.cfg.vision.hidden, sizeof(float));
    if (llava_vision_features(&p->m, ops, fx.pixels, NB, p->feats) < 0)
        return -1;
    p->forget = (struct unlearn_batch){fx.ids, fx.mask, fx.labels, NB, NT, NULL, NB, p->feats};
    /* the rows swapped, the images not: each row keeps its image count (one image per row here) */
    p->retain = (struct unlearn_batch){rt.ids, rt.mask, rt.labels, NB, NT, NULL, NB, p->feats};
    return 0;
}

static void pair_free(struct pair *p) {
    train_adamw_free(&p->o);
    unlearn_ref_free(&p->ref);
    llava_lora_detach(&p->m);
    lora_free(&p->l);
    llava_free(&p->m);
    llava_free(&p->r);
    mem_free(p->feats);
}

static size_t nlogits(const struct llava *m) {
    return NB * NT * (size_t)m->cfg.text.vocab;
}

/* The separate reference's logits for a batch. */
static const float *separate(struct pair *p, const struct ops *ops, const struct unlearn_batch *x) {
    int rc = unlearn_forward(&p->r, ops, x);
    CHECK(rc == 0);
    return rc == 0 ? p->r.a.logits : NULL;
}

/* One GA+KLR step as stages/unlearn.c takes it: dropout on, GA on the forget batch, the shared reference's
 * logits of the retain batch, then the current forward, KL, backward; AdamW. 1 when the reference's logits
 * were the separate model's. */
static int klr_step(struct pair *p, const struct ops *ops, long step) {
    struct llava *m = &p->m;
    float ga, kl;
    llava_zero_grad(m, ops);
    llava_lora_mode(m, 1, (uint64_t)step);
    int ok = unlearn_ga(m, ops, &p->forget, &ga) == 0 && unlearn_ref_logits(&p->ref, m, ops, &p->retain) == 0;
    const float *want = ok ? separate(p, ops, &p->retain) : NULL;
    int same = want && logit_rows_equal(p->ref.logits, want, rt.labels, NB, NT, (size_t)m->cfg.text.vocab);
    ok = ok && unlearn_forward(m, ops, &p->retain) == 0;
    if (ok) {
        ops->zero(m->d.logits, nlogits(m));
        ok = unlearn_kl(ops, m->a.logits, p->ref.logits, rt.labels, NB, NT, (size_t)m->cfg.text.vocab, 1.0f,
                        m->d.logits, &kl) == 0 &&
             llava_backward(m, ops) == 0;
    }
    llava_lora_mode(m, 0, (uint64_t)step);
    ok = ok && train_adamw_step(&p->o, m, ops, 1e-2f, NULL) == 0;
    CHECK(ok);
    return same;
}

/* 1 when some value of the adapter's B is not zero: the steps moved it off PEFT's init. */
static int adapter_moved(const struct lora *l) {
    for (size_t i = 0; i < l->n; i++)
        for (size_t e = 0; e < l->m[i].out * (size_t)l->r; e++)
            if (l->m[i].B[e] != 0.0f)
                return 1;
    return 0;
}

/* 1 when the trained model's projector differs from the separate reference's (their start is the same). */
static int projector_moved(const struct pair *p) {
    const struct llava_tensor *t = llava_param_find(&p->m, MP "linear_1.weight");
    return memcmp(p->m.params + t->offset, p->r.params + t->offset, t->n * sizeof(float)) != 0;
}

/* After the steps: NPO's anchor both ways, and what a reference forward leaves behind. */
static void after_steps(struct pair *p, const struct ops *ops) {
    struct llava *m = &p->m;
    size_t v = (size_t)m->cfg.text.vocab, n = nlogits(m);
    float S_shared[NB], S_sep[NB];
    CHECK(unlearn_ref_logits(&p->ref, m, ops, &p->forget) == 0);
    CHECK(unlearn_seq_logprob(ops, p->ref.logits, fx.labels, NB, NT, v, S_shared) == 0);
    const float *sep = separate(p, ops, &p->forget);
    CHECK(sep && unlearn_seq_logprob(ops, sep, fx.labels, NB, NT, v, S_sep) == 0);
    CHECK(memcmp(S_shared, S_sep, sizeof S_shared) == 0);
    CHECK(sep && logit_rows_equal(p->ref.logits, sep, fx.labels, NB, NT, v));
    /* the reference forward's activations are not the trained model's: no backward from them */
    CHECK(llava_backward(m, ops) == -1);
    /* the trained model's forward is the same before and after a reference forward, and is not the reference
     */
    float *before = malloc(n * sizeof *before);
    CHECK(llava_forward_features(m, ops, fx.ids, fx.mask, NB, NT, p->feats, NB) == 0);
    memcpy(before, m->a.logits, n * sizeof *before);
    CHECK(unlearn_ref_logits(&p->ref, m, ops, &p->forget) == 0);
    CHECK(llava_forward_features(m, ops, fx.ids, fx.mask, NB, NT, p->feats, NB) == 0);
    CHECK(memcmp(before, m->a.logits, n * sizeof *before) == 0);
    CHECK(!logit_rows_equal(before, p->ref.logits, fx.labels, NB, NT, v));
    const struct llava_tensor *t = llava_param_find(m, MP "linear_2.bias");
    CHECK(m->p.proj2_b == m->params + t->offset); /* the slots point at the trained values again */
    printf("  NPO anchor S_ref: shared %.7f %.7f, separate %.7f %.7f\n", S_shared[0], S_shared[1], S_sep[0],
           S_sep[1]);
    free(before);
}

static void test_same_bits(int recompute, int threads) {
    const struct ops *ops = ops_select("cpu", threads);
    struct pair p;
    int ok = ops && pair_make(&p, ops, recompute) == 0;
    CHECK(ok);
    if (!ok) {
        fprintf(stderr, "setup: %s\n", err_msg());
        return;
    }
    int same = 1;
    for (long s = 0; s < STEPS; s++)
        same &= klr_step(&p, ops, s);
    CHECK(same);
    CHECK(adapter_moved(&p.l) && projector_moved(&p));
    printf(
        "recompute %s, %d thread%s: %d GA+KLR steps, reference logits shared = separate at every step: %s\n",
        recompute ? "on" : "off", threads, threads > 1 ? "s" : "", STEPS, same ? "identical" : "DIFFERENT");
    after_steps(&p, ops);
    pair_free(&p);
}

/* The reference's memory: what unlearn_ref_init takes from mem_alloc is the plan's two reference blocks, and
 * each start copy holds its row's values at the row's alignment within 256 bytes (64 floats: mem_alloc's
 * alignment on the GPU). */
static void test_plan(int recompute) {
    const struct ops *ops = ops_select("cpu", 1);
    struct llava m;
    struct lora l, shape = {0};
    struct unlearn_ref ref;
    CHECK(round_start(&m, recompute) == 0 && trained_setup(&m, &l) == 0);
    size_t before = mem_in_use();
    unlearn_ref_init(&ref, &m, ops);
    size_t took = mem_in_use() - before;
    for (size_t i = 0; i < m.nptab; i++) {
        CHECK(!ref.at[i] == !m.ptab[i].trainable);
        if (ref.at[i]) /* within the block, at the row's alignment in the parameter block */
            CHECK((size_t)(ref.at[i] - ref.start) % 64 == m.ptab[i].offset % 64 &&
                  memcmp(ref.at[i], m.params + m.ptab[i].offset, m.ptab[i].n * sizeof(float)) == 0);
    }
    CHECK(lora_create(&shape, 4, 8.0, 0.1) == 0);
    lora_set_target_regex(&shape, TARGETS);
    struct llava_plan_opts o = {.B = NB,
                                .T = NT,
                                .train = 1,
                                .trainable = MP,
                                .lora = &shape,
                                .recompute = recompute,
                                .reference = LLAVA_PLAN_REF_SHARED,
                                .precision = "fp32",
                                .device = "cpu"};
    struct llava_plan p;
    CHECK(llava_memory_plan(&m.cfg, &o, &p) == 0);
    size_t planned = 0;
    int blocks = 0;
    for (size_t i = 0; i < p.n; i++)
        if (strncmp(p.b[i].name, "reference ", 10) == 0) {
            planned += p.b[i].bytes;
            blocks++;
        }
    CHECK(blocks == 2 && took == planned);
    printf("shared reference, recompute %s: %zu bytes taken, plan %zu (%d blocks)\n",
           recompute ? "on" : "off", took, planned, blocks);
    /* forwards only, nothing trains: the logits alone */
    o.train = 0;
    CHECK(llava_memory_plan(&m.cfg, &o, &p) == 0);
    CHECK(strcmp(p.b[p.n - 1].name, "reference logits (KL / NPO)") == 0 &&
          p.b[p.n - 1].bytes == nlogits(&m) * sizeof(float));
    o.reference = 7;
    CHECK(llava_memory_plan(&m.cfg, &o, &p) == -1);
    CHECK_HAS(err_msg(), "unknown reference kind 7");
    lora_free(&shape);
    unlearn_ref_free(&ref);
    llava_lora_detach(&m);
    lora_free(&l);
    llava_free(&m);
}

int main(void) {
    const char *data = getenv("PULSE_TEST_DATA") ? getenv("PULSE_TEST_DATA") : "tests/data";
    snprintf(tiny, sizeof tiny, "%s/llava_tiny", data);
    snprintf(adapter_dir, sizeof adapter_dir, "%s/llava_lora/adapter", data);
    CHECK(load_fixture(data) == 0);
    if (check_failures)
        return check_done("engine_unlearn_ref");
    for (int recompute = 0; recompute < 2; recompute++)
        for (int threads = 1; threads <= 2; threads++)
            test_same_bits(recompute, threads);
    test_plan(0);
    test_plan(1);
    llava_batch_free(&fx);
    return check_done("engine_unlearn_ref");
}

/* test_engine_llava_lora: LoRA fine-tuning of the tiny random LLaVA against transformers + PEFT
 * (tests/reference/make_llava_lora_fixture.py): loss, every A/B gradient, the projector's when it trains too,
 * the adapter after 3 AdamW steps, frozen base weights, 1 vs 2 threads, merge = adapted forward; dropout's
 * mask (fraction, scaling, same in forward and backward, per step); the refusals. */
#include "check.h"
#include "llava_batch.h"
#include "numcheck.h"
#include "engine/llava.h"
#include "engine/lora.h"
#include "engine/ops.h"
#include "engine/peft.h"
#include "engine/safetensors.h"
#include "engine/train.h"
#include "util/err.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NB 2
#define NT 24
#define MP "model.multi_modal_projector."

static char tiny[4096], adapter[4096], ldir[4096];

/* The batch, its labels and PEFT's results from llava_lora/lora.safetensors (fx.lab); fx_proj: PEFT's results
 * with the projector trainable too. */
static struct llava_batch fx;
static struct st_file fx_proj;

static int load_fixture(void) {
    if (llava_batch_load(&fx, tiny, ldir, "lora.safetensors", NB * NT) < 0)
        return -1;
    return fixture_open(ldir, "proj.safetensors", &fx_proj);
}

/* The tiny model with PEFT's adapter attached (and the projector trainable when proj), gradients ready. */
static int setup(struct llava *m, struct lora *l, int proj) {
    if (llava_load(m, tiny, NB, NT) < 0)
        return -1;
    if (peft_read(adapter, llava_lora_shape, m, l, NULL) < 0 || llava_lora_attach(m, l, 7) < 0) {
        llava_free(m);
        return -1;
    }
    if (proj)
        llava_set_trainable(m, MP, 1);
    llava_grads_init(m);
    return 0;
}

static void teardown(struct llava *m, struct lora *l) {
    llava_free(m);
    lora_free(l);
}

static int loss_and_grads(struct llava *m, const struct ops *ops, float *loss) {
    if (llava_forward(m, ops, fx.ids, fx.mask, NB, NT, fx.pixels, NB) < 0 ||
        train_ce_loss(m, ops, fx.labels, NB, NT, loss) < 0)
        return -1;
    llava_zero_grad(m, ops);
    return llava_backward(m, ops);
}

/* One tensor against the fixture's "<prefix><name>"; returns its relative error (INFINITY when missing). */
static double against(const struct st_file *f, const char *prefix, const char *name, const float *got,
                      size_t n) {
    char key[256];
    size_t nw = 0;
    snprintf(key, sizeof key, "%s%s", prefix, name);
    float *want = fixture_tensor(f, key, &nw);
    double r = want && nw == n ? check_rel_err(got, want, n, NULL) : INFINITY;
    if (r >= 1e-4)
        fprintf(stderr, "  %s: rel %.3g\n", key, r);
    free(want);
    return r;
}

/* Every A and B (and, with proj, the projector's tensors) against the fixture; grads: the gradients, else
 * the values. Returns the largest relative error and checks each against 1e-4. */
static double compare(const struct llava *m, const struct lora *l, const struct st_file *f, int grads,
                      int proj) {
    double worst = 0;
    const char *prefix = grads ? "grad." : "adamw3.";
    char name[256];
    for (size_t i = 0; i < (size_t)m->cfg.text.layers * LLAVA_NPROJ; i++) {
        const struct llava_lora_slot *s = &m->lora.s[i];
        size_t na = (size_t)l->r * s->mod->in, nb = (size_t)l->r * s->mod->out;
        snprintf(name, sizeof name, "%s.lora_A", s->mod->name);
        double ra = against(f, prefix, name, grads ? s->gA : s->mod->A, na);
        snprintf(name, sizeof name, "%s.lora_B", s->mod->name);
        double rb = against(f, prefix, name, grads ? s->gB : s->mod->B, nb);
        CHECK(ra < 1e-4 && rb < 1e-4);
        worst = fmax(worst, fmax(ra, rb));
    }
    for (size_t i = 0; proj && i < m->nptab; i++) {
        const struct llava_tensor *t = &m->ptab[i];
        if (strncmp(t->name, MP, strlen(MP)) != 0)
            continue;
        double r = against(f, prefix, t->name, grads ? m->grads + t->goffset : m->params + t->offset, t->n);
        CHECK(r < 1e-4);
        worst = fmax(worst, r);
    }
    return worst;
}

/* Loss and gradients against PEFT; base weights get no gradient buffers; same bits for 1 and 2 threads. */
static void test_grads(int proj) {
    struct llava m;
    struct lora l;
    float loss = 0, loss2 = 0, want = 0;
    int ok = setup(&m, &l, proj) == 0;
    CHECK(ok);
    if (!ok)
        return;
    CHECK(l.n == 14 && m.lora.ngrads == 3904);
    CHECK(m.ngrads == 3904 + (proj ? 2112u : 0u));
    CHECK(m.g.tl[0].q_w == NULL && m.g.lm_head == NULL && m.g.embed == NULL);
    CHECK((m.g.proj1_w != NULL) == proj && m.d.vres == NULL);
    CHECK(loss_and_grads(&m, ops_cpu(1), &loss) == 0);
    float *f = fixture_tensor(proj ? &fx_proj : &fx.lab, "loss", NULL);
    want = f ? f[0] : NAN;
    free(f);
    double lrel = fabs((double)loss - want) / fabs((double)want);
    CHECK(lrel < 1e-5);
    double worst = compare(&m, &l, proj ? &fx_proj : &fx.lab, 1, proj);
    printf("%s: loss %.7f (PEFT %.7f, rel %.3g), gradients max rel %.3g over %zu values\n",
           proj ? "LoRA + projector" : "LoRA", loss, want, lrel, worst, m.ngrads);
    float *one = malloc(m.ngrads * sizeof(float));
    memcpy(one, m.grads, m.ngrads * sizeof(float));
    CHECK(loss_and_grads(&m, ops_cpu(2), &loss2) == 0);
    CHECK(memcmp(&loss, &loss2, sizeof loss) == 0);
    CHECK(memcmp(one, m.grads, m.ngrads * sizeof(float)) == 0);
    free(one);
    teardown(&m, &l);
}

/* The logits of valid positions: ||a - b|| / ||b||. */
static double logits_rel(const float *a, const float *b, size_t v) {
    double num = 0, den = 0;
    for (size_t i = 0; i < NB * NT; i++)
        if (fx.mask[i])
            for (size_t j = 0; j < v; j++) {
                double d = (double)a[i * v + j] - b[i * v + j];
                num += d * d;
                den += (double)b[i * v + j] * b[i * v + j];
            }
    return sqrt(num) / sqrt(den);
}

/* Merging the trained adapter, then the plain forward, gives the adapted forward's logits. */
static void check_merge(struct llava *m, const float *base) {
    size_t nl = NB * NT * (size_t)m->cfg.text.vocab;
    float *adapted = malloc(nl * sizeof(float));
    CHECK(llava_forward(m, ops_cpu(1), fx.ids, fx.mask, NB, NT, fx.pixels, NB) == 0);
    memcpy(adapted, m->a.logits, nl * sizeof(float));
    llava_lora_merge(m);
    CHECK(m->lora.l == NULL && m->grads == NULL);
    CHECK(llava_forward(m, ops_cpu(1), fx.ids, fx.mask, NB, NT, fx.pixels, NB) == 0);
    double r = logits_rel(m->a.logits, adapted, (size_t)m->cfg.text.vocab);
    printf("merged forward vs adapted forward: logits rel %.3g\n", r);
    CHECK(r < 1e-5);
    size_t q = (size_t)(m->p.tl[1].down_w - m->params), nq = 32 * 56;
    CHECK(memcmp(m->params + q, base + q, nq * sizeof(float)) != 0); /* the merge did change W */
    free(adapted);
}

/* The updates themselves (after - before, ~3 lr per value) against PEFT's: the weights' relative error above
 * is small even for a wrong step, the update's is not. */
static void check_updates(const struct lora *l, const struct st_file *f) {
    struct lora init;
    char key[256];
    double worst = 0;
    CHECK(peft_read(adapter, NULL, NULL, &init, NULL) == 0);
    for (size_t i = 0; i < init.n; i++) {
        const struct lora_module *a = &init.m[i], *b = lora_find(l, a->name);
        for (int k = 0; k < 2; k++) {
            size_t n = (size_t)l->r * (k ? a->out : a->in);
            const float *x0 = k ? a->B : a->A, *x1 = k ? b->B : b->A;
            snprintf(key, sizeof key, "adamw3.%s.lora_%c", a->name, k ? 'B' : 'A');
            float *want = fixture_tensor(f, key, NULL), *dg = malloc(n * sizeof(float)),
                  *dw = malloc(n * sizeof(float));
            for (size_t j = 0; want && j < n; j++) {
                dg[j] = x1[j] - x0[j];
                dw[j] = want[j] - x0[j];
            }
            double r = want ? check_rel_err(dg, dw, n, NULL) : INFINITY;
            CHECK(r < 1e-4);
            worst = fmax(worst, r);
            free(want);
            free(dg);
            free(dw);
        }
    }
    printf("  updates (after 3 steps - before) max rel %.3g\n", worst);
    lora_free(&init);
}

/* 3 AdamW steps against PEFT + torch; the frozen base keeps its bits; then the merge. */
static void test_adamw(int proj) {
    struct llava m;
    struct lora l;
    struct train_adamw o;
    int ok = setup(&m, &l, proj) == 0;
    CHECK(ok);
    if (!ok)
        return;
    float *base = malloc(m.nparams * sizeof(float));
    memcpy(base, m.params, m.nparams * sizeof(float));
    train_adamw_init(&o, &m, 0.9f, 0.999f, 1e-8f, 0.01f, 0.0f);
    float loss[3];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int s = 0; s < 3; s++)
        CHECK(train_step(&m, &o, ops_cpu(2), fx.ids, fx.mask, fx.labels, NB, NT, fx.pixels, NB, 1e-3f,
                         &loss[s]) == 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK(loss[2] < loss[0]);
    double worst = compare(&m, &l, proj ? &fx_proj : &fx.lab, 0, proj);
    double ms = ((double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6) / 3;
    printf("%s: AdamW losses %.6f %.6f %.6f (%.2f ms a step, 2 threads), after 3 steps max rel %.3g\n",
           proj ? "LoRA + projector" : "LoRA", loss[0], loss[1], loss[2], ms, worst);
    int frozen_same = 1, proj_moved = 0;
    for (size_t i = 0; i < m.nptab; i++) {
        const struct llava_tensor *t = &m.ptab[i];
        int same = memcmp(m.params + t->offset, base + t->offset, t->n * sizeof(float)) == 0;
        if (t->trainable)
            proj_moved |= !same;
        else
            frozen_same &= same;
    }
    CHECK(frozen_same);
    CHECK(proj_moved == proj);
    check_updates(&l, proj ? &fx_proj : &fx.lab);
    check_merge(&m, base);
    free(base);
    train_adamw_free(&o);
    teardown(&m, &l);
}

/* llava_lora_add_targets finds the adapter's 14 modules from its regex; other targets are refused. */
static void test_targets(void) {
    struct llava m;
    struct lora from, l;
    int ok = setup(&m, &from, 0) == 0;
    CHECK(ok);
    if (!ok)
        return;
    CHECK(lora_create(&l, 4, 8, 0) == 0);
    lora_set_target_regex(&l, from.target_regex);
    CHECK(llava_lora_add_targets(&m, &l) == 0);
    CHECK(l.n == 14);
    for (size_t i = 0; i < l.n; i++)
        CHECK(lora_find(&from, l.m[i].name) != NULL);
    lora_free(&l);
    const char *suffixes[] = {"q_proj", "v_proj"}; /* also the CLIP tower's */
    CHECK(lora_create(&l, 4, 8, 0) == 0);
    lora_set_targets(&l, suffixes, 2);
    CHECK(llava_lora_add_targets(&m, &l) == -1);
    CHECK_HAS(err_msg(), "also matches model.vision_tower.encoder.layers.0.self_attn.q_proj");
    lora_set_target_regex(&l, ".*\\.nothing");
    CHECK(llava_lora_add_targets(&m, &l) == -1);
    CHECK_HAS(err_msg(), "matches none");
    lora_set_target_regex(&l, "language_model\\.model\\.layers\\.1\\.mlp\\.down_proj"); /* the Hub's layout */
    CHECK(llava_lora_add_targets(&m, &l) == 0 && l.n == 1);
    CHECK(llava_lora_attach(&m, &l, 1) == 0 && m.lora.s[LLAVA_NPROJ + LLAVA_DOWN].mod == &l.m[0]);
    CHECK(m.grads == NULL); /* attach drops the gradient block */
    CHECK(lora_add(&l, "model.language_model.layers.0.self_attn.k_proj", 32, 32) == 0);
    CHECK(llava_lora_attach(&m, &l, 1) == -1);
    CHECK_HAS(err_msg(), "k_proj is 32 -> 32, the model's is 32 -> 16");
    CHECK(m.lora.l == NULL);
    lora_free(&l);
    CHECK(lora_create(&l, 4, 8, 0) == 0);
    CHECK(lora_add(&l, "model.vision_tower.encoder.layers.0.self_attn.q_proj", 32, 32) == 0);
    CHECK(llava_lora_attach(&m, &l, 1) == -1);
    CHECK_HAS(err_msg(), "is not one of the decoder's");
    lora_free(&l);
    teardown(&m, &from);
}

/* Dropout on one projection's input of ones: the fraction dropped, the kept value 1 / (1 - p), a new mask per
 * step and per module, none with dropout off. */
static void test_dropout_mask(struct llava *m) {
    size_t n = NB * NT, c = 32, total = n * c;
    float *x = malloc(total * sizeof(float)), *y = calloc(n * c, sizeof(float));
    float *first = malloc(total * sizeof(float));
    for (size_t i = 0; i < total; i++)
        x[i] = 1.0f;
    llava_lora_mode(m, 1, 5);
    llava_lora_forward(m, ops_cpu(1), 0, LLAVA_Q, y, x, n);
    size_t dropped = 0, odd = 0;
    for (size_t i = 0; i < total; i++) {
        dropped += m->lora.x[i] == 0.0f;
        odd += m->lora.x[i] != 0.0f && m->lora.x[i] != 1.0f / 0.75f;
    }
    memcpy(first, m->lora.x, total * sizeof(float));
    printf("dropout 0.25: %zu of %zu dropped (%.3f)\n", dropped, total, (double)dropped / (double)total);
    CHECK(fabs((double)dropped / (double)total - 0.25) < 0.03 && odd == 0);
    llava_lora_forward(m, ops_cpu(2), 0, LLAVA_Q, y, x, n);
    CHECK(memcmp(first, m->lora.x, total * sizeof(float)) == 0); /* same (seed, step, module): same mask */
    llava_lora_mode(m, 1, 6);
    llava_lora_forward(m, ops_cpu(1), 0, LLAVA_Q, y, x, n);
    CHECK(memcmp(first, m->lora.x, total * sizeof(float)) != 0);
    llava_lora_mode(m, 1, 5);
    llava_lora_forward(m, ops_cpu(1), 0, LLAVA_K, y, x, n);
    CHECK(memcmp(first, m->lora.x, total * sizeof(float)) != 0);
    free(x);
    free(y);
    free(first);
}

static float loss_at(struct llava *m, float *p, float value) {
    float keep = *p, loss = 0;
    *p = value;
    CHECK(llava_forward(m, ops_cpu(1), fx.ids, fx.mask, NB, NT, fx.pixels, NB) == 0);
    CHECK(train_ce_loss(m, ops_cpu(1), fx.labels, NB, NT, &loss) == 0);
    *p = keep;
    return loss;
}

/* With dropout on at a fixed step, central differences of the loss agree with the backward: the backward
 * used the forward's mask. The gradients differ from dropout-off ones, and keep their bits over threads. */
static void test_dropout_grads(void) {
    struct llava m;
    struct lora l;
    float loss, l2, off;
    int ok = setup(&m, &l, 0) == 0;
    CHECK(ok);
    if (!ok)
        return;
    l.dropout = 0.25;
    test_dropout_mask(&m);
    llava_lora_mode(&m, 0, 0);
    CHECK(loss_and_grads(&m, ops_cpu(1), &off) == 0);
    float *nodrop = malloc(m.ngrads * sizeof(float));
    memcpy(nodrop, m.grads, m.ngrads * sizeof(float));
    l.dropout = 0; /* dropout 0 in training: the same bits as dropout off */
    llava_lora_mode(&m, 1, 3);
    CHECK(loss_and_grads(&m, ops_cpu(1), &loss) == 0);
    CHECK(loss == off && memcmp(nodrop, m.grads, m.ngrads * sizeof(float)) == 0);
    l.dropout = 0.25;
    CHECK(loss_and_grads(&m, ops_cpu(1), &loss) == 0);
    CHECK(loss != off && memcmp(nodrop, m.grads, m.ngrads * sizeof(float)) != 0);
    memcpy(nodrop, m.grads, m.ngrads * sizeof(float));
    CHECK(loss_and_grads(&m, ops_cpu(2), &l2) == 0);
    CHECK(memcmp(&loss, &l2, sizeof loss) == 0 && memcmp(nodrop, m.grads, m.ngrads * sizeof(float)) == 0);
    int probes[][2] = {{0, LLAVA_Q}, {0, LLAVA_DOWN}, {1, LLAVA_V}, {1, LLAVA_GATE}};
    for (size_t k = 0; k < sizeof probes / sizeof probes[0]; k++) {
        struct llava_lora_slot *s = &m.lora.s[probes[k][0] * LLAVA_NPROJ + probes[k][1]];
        size_t na = (size_t)l.r * s->mod->in, j = 0;
        for (size_t i = 1; i < na; i++)
            if (fabsf(s->gA[i]) > fabsf(s->gA[j]))
                j = i;
        float g = s->gA[j], *p = s->mod->A + j, h = 1e-2f;
        double fd = ((double)loss_at(&m, p, *p + h) - loss_at(&m, p, *p - h)) / (2.0 * h);
        printf("dropout, finite difference %s.lora_A[%zu]: %.6g vs backward %.6g\n", s->mod->name, j, fd, g);
        CHECK(g != 0.0f && fabs(fd - g) < 1e-2 * fabs(g) + 2e-4);
    }
    free(nodrop);
    teardown(&m, &l);
}

int main(void) {
    const char *data = getenv("PULSE_TEST_DATA") ? getenv("PULSE_TEST_DATA") : "tests/data";
    snprintf(tiny, sizeof tiny, "%s/llava_tiny", data);
    snprintf(ldir, sizeof ldir, "%s/llava_lora", data);
    snprintf(adapter, sizeof adapter, "%s/llava_lora/adapter", data);
    CHECK(load_fixture() == 0);
    if (check_failures)
        return check_done("engine_llava_lora");
    test_grads(0);
    test_grads(1);
    test_adamw(0);
    test_adamw(1);
    test_targets();
    test_dropout_grads();
    llava_batch_free(&fx);
    st_close(&fx_proj);
    return check_done("engine_llava_lora");
}

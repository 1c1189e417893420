/* test_engine_llava_grad: the full-parameter backward and training step against transformers + torch on the
 * tiny random LLaVA of tests/data/llava_tiny (tests/reference/make_llava_grad_fixture.py): the loss, every
 * parameter's gradient, the weights after 3 AdamW steps; the same bits for 1 and 2 threads; central finite
 * differences of the loss as an independent check; frozen tensors; logits on the loss's rows only
 * (llava_logits_for); and the one-line refusals. */
#include "check.h"
#include "llava_batch.h"
#include "logit_rows.h"
#include "numcheck.h"
#include "engine/llava.h"
#include "engine/ops.h"
#include "engine/safetensors.h"
#include "engine/train.h"
#include "util/err.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define B 2
#define T 24

static char tiny[4096], gdir[4096];

static struct llava_batch fx; /* the labels (and transformers' loss) from llava_grad/labels.safetensors */

static struct { /* transformers' gradients and the weights after 3 AdamW steps */
    struct st_file grads, adamw3;
    float loss;
} ref;

static int load_fixture(void) {
    if (llava_batch_load(&fx, tiny, gdir, "labels.safetensors", B * T) < 0 ||
        fixture_open(gdir, "grads.safetensors", &ref.grads) < 0 ||
        fixture_open(gdir, "adamw3.safetensors", &ref.adamw3) < 0)
        return -1;
    float *loss = fixture_tensor(&fx.lab, "loss", NULL);
    if (!loss)
        return -1;
    ref.loss = loss[0];
    free(loss);
    return 0;
}

static int load_model(struct llava *m) {
    if (llava_load(m, tiny, B, T) < 0)
        return -1;
    llava_set_trainable(m, "", 1);
    llava_grads_init(m);
    return 0;
}

/* Forward, loss, zeroed gradients, backward. */
static int loss_and_grads(struct llava *m, const struct ops *ops, float *loss) {
    if (llava_forward(m, ops, fx.ids, fx.mask, B, T, fx.pixels, B) < 0 ||
        train_ce_loss(m, ops, fx.labels, B, T, loss) < 0)
        return -1;
    llava_zero_grad(m, ops);
    return llava_backward(m, ops);
}

/* Tensor groups for the report: vision tower, projector, decoder. */
static int group(const char *name) {
    return strstr(name, "vision_tower") ? 0 : strstr(name, "projector") ? 1 : 2;
}
static const char *group_name[3] = {"vision tower", "projector", "decoder"};

/* The tower's key biases have a gradient of exactly zero in exact arithmetic (a constant added to every key
 * shifts all of a query's scores alike, and softmax ignores that): both sides hold rounding noise (~1e-9),
 * which a relative error cannot compare, and which AdamW turns into steps of up to lr in either direction. */
static int zero_in_exact(const char *name) {
    return strstr(name, "vision_tower") && strstr(name, "self_attn.k_proj.bias");
}

/* Noise-only tensors: gradients below 1e-7 (others reach 0.6); parameters within 2 x 3 steps of lr. */
static int noise_ok(const float *got, const float *want, size_t n, int grads) {
    for (size_t i = 0; i < n; i++) {
        double lim = grads ? 1e-7 : 6.1e-3;
        if (fabs((double)got[i] - want[i]) > lim || (grads && fabs(want[i]) > lim))
            return 0;
    }
    return 1;
}

/* Every table row against the fixture tensor of the same name; grads: the gradient block, else the
 * parameters. Prints the largest relative error per group. */
static void compare_all(const struct llava *m, const struct st_file *f, int grads, const char *what) {
    double worst[3] = {0, 0, 0};
    char wname[3][LLAVA_NAME_MAX] = {"", "", ""};
    CHECK(f->n == m->nptab);
    for (size_t i = 0; i < m->nptab; i++) {
        const struct llava_tensor *t = &m->ptab[i];
        size_t n = 0;
        float *want = fixture_tensor(f, t->name, &n);
        CHECK(want && n == t->n);
        if (!want || n != t->n) {
            fprintf(stderr, "  %s: %s missing or of another size\n", what, t->name);
            free(want);
            continue;
        }
        const float *got = grads ? m->grads + t->goffset : m->params + t->offset;
        if (zero_in_exact(t->name)) {
            CHECK(noise_ok(got, want, n, grads));
            free(want);
            continue;
        }
        double r = check_rel_err(got, want, n, NULL);
        if (r >= 1e-4)
            fprintf(stderr, "  %s: %s rel %.3g\n", what, t->name, r);
        CHECK(r < 1e-4);
        int g = group(t->name);
        if (r > worst[g]) {
            worst[g] = r;
            snprintf(wname[g], sizeof wname[g], "%s", t->name);
        }
        free(want);
    }
    for (int g = 0; g < 3; g++)
        printf("%s, %s: max rel %.3g (%s)\n", what, group_name[g], worst[g], wname[g]);
}

static void test_grads(struct llava *m) {
    float loss = 0;
    CHECK(loss_and_grads(m, ops_cpu(1), &loss) == 0);
    double lrel = fabs((double)loss - ref.loss) / fabs((double)ref.loss);
    printf("loss %.7f (transformers %.7f, rel %.3g); %zu parameters, %zu gradients\n", loss, ref.loss, lrel,
           m->nparams, m->ngrads);
    CHECK(lrel < 1e-5);
    CHECK(m->ngrads == m->nparams);
    compare_all(m, &ref.grads, 1, "gradients");
}

/* Same loss and gradient bits for 1 and 2 threads. */
static void test_threads(struct llava *m) {
    float l1 = 0, l2 = 0;
    float *one = malloc(m->ngrads * sizeof(float));
    CHECK(loss_and_grads(m, ops_cpu(1), &l1) == 0);
    memcpy(one, m->grads, m->ngrads * sizeof(float));
    CHECK(loss_and_grads(m, ops_cpu(2), &l2) == 0);
    CHECK(memcmp(&l1, &l2, sizeof l1) == 0);
    CHECK(memcmp(one, m->grads, m->ngrads * sizeof(float)) == 0);
    free(one);
}

static void test_adamw(void) {
    struct llava m;
    struct train_adamw o;
    CHECK(load_model(&m) == 0);
    train_adamw_init(&o, &m, 0.9f, 0.999f, 1e-8f, 0.01f, 0.0f);
    float loss[3];
    for (int s = 0; s < 3; s++)
        CHECK(train_step(&m, &o, ops_cpu(2), fx.ids, fx.mask, fx.labels, B, T, fx.pixels, B, 1e-3f,
                         &loss[s]) == 0);
    printf("AdamW losses %.6f %.6f %.6f\n", loss[0], loss[1], loss[2]);
    CHECK(loss[2] < loss[0]);
    compare_all(&m, &ref.adamw3, 0, "after 3 AdamW steps");
    train_adamw_free(&o);
    llava_free(&m);
}

static float loss_at(struct llava *m, float *p, float value) {
    float keep = *p, loss = 0;
    *p = value;
    CHECK(llava_forward(m, ops_cpu(1), fx.ids, fx.mask, B, T, fx.pixels, B) == 0);
    CHECK(train_ce_loss(m, ops_cpu(1), fx.labels, B, T, &loss) == 0);
    *p = keep;
    return loss;
}

/* llava_logits_for: the lm_head on the loss's rows only gives the same logits there and the same loss, up to
 * the rounding of a product over fewer rows (tests/logit_rows.h), and the same gradients up to rounding,
 * which still match transformers; the choice holds for one forward; a choice of another size, or of no row,
 * behaves. */
static void test_logit_rows(struct llava *m) {
    const struct ops *ops = ops_cpu(2);
    size_t v = (size_t)m->cfg.text.vocab, nl = (size_t)B * T * v;
    float full = 0, picked = 0, *g = malloc(m->ngrads * sizeof(float)), *logits = malloc(nl * sizeof(float));
    CHECK(loss_and_grads(m, ops, &full) == 0);
    memcpy(g, m->grads, m->ngrads * sizeof(float));
    memcpy(logits, m->a.logits, nl * sizeof(float));
    CHECK(train_logits_for(m, fx.labels, B, T) == 0);
    CHECK(loss_and_grads(m, ops, &picked) == 0);
    CHECK(m->fpick && m->frows > 0 && m->frows < (size_t)B * T);
    CHECK(fabsf(full - picked) <= 1e-6f * fabsf(full)); /* the same up to rounding: tests/logit_rows.h */
    CHECK(logit_rows_close(m->a.logits, logits, fx.labels, B, T, v, 1e-6));
    double maxabs, rel = check_rel_err(m->grads, g, m->ngrads, &maxabs);
    printf("logits on %zu of %d rows: the same loss, gradients within %.2g relative (max abs %.2g)\n",
           m->frows, B * T, rel, maxabs);
    CHECK(rel < 1e-6);
    compare_all(m, &ref.grads, 1, "gradients, logits on the loss's rows");
    /* used up: the next forward computes every row again */
    CHECK(llava_forward(m, ops, fx.ids, fx.mask, B, T, fx.pixels, B) == 0 && !m->fpick);
    CHECK(memcmp(m->a.logits, logits, nl * sizeof(float)) == 0);
    uint8_t none[B * T] = {0};
    llava_logits_for(m, none, B * T - 1);
    CHECK(llava_forward(m, ops, fx.ids, fx.mask, B, T, fx.pixels, B) == -1);
    CHECK(strstr(err_msg(), "logits chosen for 47 positions, but the forward has 48") != NULL);
    /* no row: the lm_head neither runs nor gets a gradient, and the rest of the backward still runs */
    llava_logits_for(m, none, B * T);
    CHECK(llava_forward(m, ops, fx.ids, fx.mask, B, T, fx.pixels, B) == 0 && m->fpick && m->frows == 0);
    llava_zero_grad(m, ops);
    CHECK(llava_backward(m, ops) == 0);
    const struct llava_tensor *t = llava_param_find(m, "lm_head.weight");
    double sum = 0;
    for (size_t i = 0; t && i < t->n; i++)
        sum += fabs(m->grads[t->goffset + i]);
    CHECK(t && sum == 0.0);
    free(g);
    free(logits);
}

/* Central differences of the loss for the largest-gradient entry of one tensor per part of the model. */
static void test_finite_differences(struct llava *m) {
    static const char *names[] = {
        "model.vision_tower.vision_model.embeddings.patch_embedding.weight",
        "model.vision_tower.vision_model.encoder.layers.0.layer_norm1.weight",
        "model.vision_tower.vision_model.pre_layrnorm.bias",
        "model.multi_modal_projector.linear_1.bias",
        "model.language_model.layers.0.self_attn.q_proj.weight",
        "model.language_model.layers.1.self_attn.k_proj.weight",
        "lm_head.weight",
    };
    float loss;
    CHECK(loss_and_grads(m, ops_cpu(1), &loss) == 0);
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        const struct llava_tensor *t = NULL;
        for (size_t i = 0; i < m->nptab; i++)
            if (strcmp(m->ptab[i].name, names[k]) == 0)
                t = &m->ptab[i];
        CHECK(t != NULL);
        if (!t)
            continue;
        const float *g = m->grads + t->goffset;
        size_t j = 0;
        for (size_t i = 1; i < t->n; i++)
            if (fabsf(g[i]) > fabsf(g[j]))
                j = i;
        float gj = g[j], *p = m->params + t->offset + j, h = 1e-2f;
        double fd = ((double)loss_at(m, p, *p + h) - loss_at(m, p, *p - h)) / (2.0 * h);
        double err = fabs(fd - gj);
        printf("finite difference %s[%zu]: %.6g vs backward %.6g (abs err %.2g)\n", names[k], j, fd, gj, err);
        CHECK(gj != 0.0f);
        CHECK(err < 1e-2 * fabs(gj) + 2e-4);
    }
}

/* A frozen tower gets no gradient buffers; the rest's gradients keep their bits. */
static void test_frozen(struct llava *m) {
    float loss;
    CHECK(loss_and_grads(m, ops_cpu(1), &loss) == 0);
    size_t full = m->ngrads;
    float *all = malloc(full * sizeof(float));
    memcpy(all, m->grads, full * sizeof(float));
    CHECK(llava_set_trainable(m, "model.vision_tower.", 0) == 37);
    llava_grads_init(m);
    CHECK(m->g.patch_w == NULL && m->g.vl[0].q_w == NULL && m->g.proj1_w != NULL && m->g.lm_head != NULL);
    CHECK(m->d.vres == NULL && m->d.proj2 != NULL);
    CHECK(m->ngrads < full);
    CHECK(loss_and_grads(m, ops_cpu(1), &loss) == 0);
    int same = 1;
    for (size_t i = 0; i < m->nptab; i++) {
        const struct llava_tensor *t = &m->ptab[i];
        if (t->trainable) {
            size_t off = t->offset; /* in the full run, every tensor trained: goffset was offset */
            same &= memcmp(m->grads + t->goffset, all + off, t->n * sizeof(float)) == 0;
        }
    }
    CHECK(same);
    llava_set_trainable(m, "", 0);
    CHECK(llava_set_trainable(m, "lm_head.", 1) == 1);
    llava_grads_init(m);
    CHECK(m->ngrads == 100 * 32 && m->d.proj2 == NULL);
    CHECK(loss_and_grads(m, ops_cpu(1), &loss) == 0);
    CHECK(memcmp(m->grads, all + (m->nparams - 3200), 3200 * sizeof(float)) == 0);
    free(all);
}

static void test_refusals(void) {
    struct llava m;
    float loss;
    CHECK(llava_load(&m, tiny, B, T) == 0);
    CHECK(llava_backward(&m, ops_cpu(1)) == -1);
    CHECK_HAS(err_msg(), "before llava_grads_init");
    llava_set_trainable(&m, "", 1);
    llava_grads_init(&m);
    CHECK(llava_backward(&m, ops_cpu(1)) == -1);
    CHECK_HAS(err_msg(), "without a successful forward");
    CHECK(train_ce_loss(&m, ops_cpu(1), fx.labels, B, T, &loss) == -1);
    CHECK_HAS(err_msg(), "do not match the last forward");
    CHECK(llava_forward(&m, ops_cpu(1), fx.ids, fx.mask, B, T, fx.pixels, B) == 0);
    int32_t bad[B * T];
    memcpy(bad, fx.labels, sizeof bad);
    bad[T + 19] = 100;
    CHECK(train_ce_loss(&m, ops_cpu(1), bad, B, T, &loss) == -1);
    CHECK_HAS(err_msg(), "label 100 at (1, 19) is outside the vocabulary");
    for (size_t i = 0; i < B * T; i++)
        bad[i] = TRAIN_IGNORE;
    bad[0] = 5; /* position 0 is never a target */
    CHECK(train_ce_loss(&m, ops_cpu(1), bad, B, T, &loss) == -1);
    CHECK_HAS(err_msg(), "no target token");
    struct train_adamw o;
    train_adamw_init(&o, &m, 0.9f, 0.999f, 1e-8f, 0.0f, 0.0f);
    llava_set_trainable(&m, "lm_head.", 0);
    llava_grads_init(&m);
    CHECK(train_adamw_step(&o, &m, ops_cpu(1), 1e-3f, NULL) == -1);
    CHECK_HAS(err_msg(), "re-initialise");
    train_adamw_free(&o);
    llava_free(&m);
}

int main(void) {
    const char *data = getenv("PULSE_TEST_DATA") ? getenv("PULSE_TEST_DATA") : "tests/data";
    snprintf(tiny, sizeof tiny, "%s/llava_tiny", data);
    snprintf(gdir, sizeof gdir, "%s/llava_grad", data);
    CHECK(load_fixture() == 0);
    struct llava m;
    CHECK(load_model(&m) == 0);
    if (check_failures)
        return check_done("engine_llava_grad");
    test_grads(&m);
    test_threads(&m);
    test_logit_rows(&m);
    test_finite_differences(&m);
    test_frozen(&m);
    llava_free(&m);
    test_adamw();
    test_refusals();
    llava_batch_free(&fx);
    st_close(&ref.grads);
    st_close(&ref.adamw3);
    return check_done("engine_llava_grad");
}

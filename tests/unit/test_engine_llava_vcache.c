/* test_engine_llava_vcache: frozen vision features on the tiny LLaVA of tests/data/llava_tiny: the tower's
 * features computed once, then llava_forward_features, give the pixel path's logits and (tower frozen) its
 * gradients bit for bit, with and without a LoRA adapter; the refusals. */
#include "check.h"
#include "llava_batch.h"
#include "engine/llava.h"
#include "engine/lora.h"
#include "engine/ops.h"
#include "engine/peft.h"
#include "engine/train.h"
#include "util/err.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define B 2
#define T 24
#define VT "model.vision_tower."
#define MP "model.multi_modal_projector."

static char tiny[4096], adapter[4096], gdir[4096];

static struct llava_batch fx; /* the labels from llava_grad/labels.safetensors */

static size_t feats_len(const struct llava *m) {
    return B * llava_feature_tokens(m) * (size_t)m->cfg.vision.hidden;
}

/* Logits: pixels vs features (computed with 2 threads, forward with 1). */
static void test_logits(struct llava *m) {
    size_t nl = B * T * (size_t)m->cfg.text.vocab;
    float *want = malloc(nl * sizeof(float)), *feats = malloc(feats_len(m) * sizeof(float));
    CHECK(llava_feature_tokens(m) == (size_t)m->cfg.patches);
    CHECK(llava_forward(m, ops_cpu(1), fx.ids, fx.mask, B, T, fx.pixels, B) == 0);
    memcpy(want, m->a.logits, nl * sizeof(float));
    memset(feats, 0, feats_len(m) * sizeof(float));
    CHECK(llava_vision_features(m, ops_cpu(2), fx.pixels, B, feats) == 0);
    size_t per = feats_len(m) / B, differ = 0;
    for (size_t i = 0; i < per; i++)
        differ += feats[i] != feats[per + i];
    CHECK(differ > per / 2); /* two images, two different feature sets */
    memset(m->a.logits, 0, nl * sizeof(float));
    memset(m->a.feats, 0, feats_len(m) * sizeof(float));
    CHECK(llava_forward_features(m, ops_cpu(1), fx.ids, fx.mask, B, T, feats, B) == 0);
    CHECK(memcmp(want, m->a.logits, nl * sizeof(float)) == 0);
    feats[7] += 1.0f; /* the features are really used */
    CHECK(llava_forward_features(m, ops_cpu(1), fx.ids, fx.mask, B, T, feats, B) == 0);
    CHECK(memcmp(want, m->a.logits, nl * sizeof(float)) != 0);
    printf("logits: %zu values bit-identical from pixels and from cached features\n", nl);
    free(want);
    free(feats);
}

/* Loss and gradients from pixels, then from cached features: the same bits. */
static void same_grads(struct llava *m, const char *what) {
    float l1 = 0, l2 = 0, *feats = malloc(feats_len(m) * sizeof(float));
    CHECK(llava_forward(m, ops_cpu(1), fx.ids, fx.mask, B, T, fx.pixels, B) == 0);
    CHECK(train_ce_loss(m, ops_cpu(1), fx.labels, B, T, &l1) == 0);
    llava_zero_grad(m, ops_cpu(1));
    CHECK(llava_backward(m, ops_cpu(1)) == 0);
    float *want = malloc(m->ngrads * sizeof(float));
    memcpy(want, m->grads, m->ngrads * sizeof(float));
    CHECK(llava_vision_features(m, ops_cpu(1), fx.pixels, B, feats) == 0);
    memset(m->a.feats, 0, feats_len(m) * sizeof(float)); /* the forward must take the caller's copy */
    CHECK(llava_forward_features(m, ops_cpu(1), fx.ids, fx.mask, B, T, feats, B) == 0);
    CHECK(train_ce_loss(m, ops_cpu(1), fx.labels, B, T, &l2) == 0);
    llava_zero_grad(m, ops_cpu(1));
    CHECK(llava_backward(m, ops_cpu(1)) == 0);
    size_t nonzero = 0;
    for (size_t i = 0; i < m->ngrads; i++)
        nonzero += want[i] != 0.0f;
    CHECK(nonzero > m->ngrads / 2);
    CHECK(memcmp(&l1, &l2, sizeof l1) == 0);
    CHECK(memcmp(want, m->grads, m->ngrads * sizeof(float)) == 0);
    printf("%s: loss %.7f, %zu gradients bit-identical\n", what, l1, m->ngrads);
    free(want);
    free(feats);
}

/* Tower frozen, projector and decoder training. */
static void test_full_grads(struct llava *m) {
    llava_set_trainable(m, "", 1);
    llava_set_trainable(m, VT, 0);
    llava_grads_init(m);
    CHECK(m->g.proj1_w != NULL && m->g.patch_w == NULL);
    same_grads(m, "projector + decoder");
}

/* PEFT's adapter on the decoder, dropout on, and the projector training. */
static void test_lora_grads(void) {
    struct llava m;
    struct lora l;
    CHECK(llava_load(&m, tiny, B, T) == 0);
    CHECK(peft_read(adapter, llava_lora_shape, &m, &l, NULL) == 0);
    CHECK(llava_lora_attach(&m, &l, 7) == 0);
    llava_set_trainable(&m, MP, 1);
    llava_grads_init(&m);
    llava_lora_mode(&m, 1, 3);
    CHECK(m.lora.ngrads > 0);
    same_grads(&m, "LoRA + projector, dropout on");
    llava_free(&m);
    lora_free(&l);
}

static void test_refusals(struct llava *m) {
    float *feats = calloc(feats_len(m), sizeof(float)), loss;
    llava_set_trainable(m, "", 1);
    llava_grads_init(m);
    CHECK(llava_vision_features(m, ops_cpu(1), fx.pixels, B, feats) == 0);
    CHECK(llava_forward_features(m, ops_cpu(1), fx.ids, fx.mask, B, T, feats, B) == 0);
    CHECK(train_ce_loss(m, ops_cpu(1), fx.labels, B, T, &loss) == 0);
    CHECK(llava_backward(m, ops_cpu(1)) == -1);
    CHECK_HAS(err_msg(), "while the vision tower trains");
    /* computing features overwrites the tower's activations: the pixel forward cannot be differentiated */
    CHECK(llava_forward(m, ops_cpu(1), fx.ids, fx.mask, B, T, fx.pixels, B) == 0);
    CHECK(llava_vision_features(m, ops_cpu(1), fx.pixels, 1, feats) == 0);
    CHECK(llava_backward(m, ops_cpu(1)) == -1);
    CHECK_HAS(err_msg(), "without a successful forward");
    CHECK(llava_vision_features(m, ops_cpu(1), fx.pixels, B + 1, feats) == -1);
    CHECK_HAS(err_msg(), "features of 3 images (1 to 2");
    CHECK(llava_forward_features(m, ops_cpu(1), fx.ids, fx.mask, B, T, NULL, B) == -1);
    CHECK_HAS(err_msg(), "features required");
    CHECK(llava_forward_features(m, ops_cpu(1), fx.ids, fx.mask, B, T, feats, 1) == -1);
    CHECK_HAS(err_msg(), "image tokens for 1 images");
    free(feats);
}

int main(void) {
    const char *data = getenv("PULSE_TEST_DATA") ? getenv("PULSE_TEST_DATA") : "tests/data";
    snprintf(tiny, sizeof tiny, "%s/llava_tiny", data);
    snprintf(gdir, sizeof gdir, "%s/llava_grad", data);
    snprintf(adapter, sizeof adapter, "%s/llava_lora/adapter", data);
    CHECK(llava_batch_load(&fx, tiny, gdir, "labels.safetensors", B * T) == 0);
    struct llava m;
    CHECK(check_failures == 0 && llava_load(&m, tiny, B, T) == 0);
    if (check_failures)
        return check_done("engine_llava_vcache");
    test_logits(&m);
    test_full_grads(&m);
    test_lora_grads();
    test_refusals(&m);
    llava_free(&m);
    llava_batch_free(&fx);
    return check_done("engine_llava_vcache");
}

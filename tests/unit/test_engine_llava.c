/* test_engine_llava: the LLaVA forward against transformers' logits on a tiny random model
 * (tests/reference/make_llava_fixture.py: two shards in the Hub's name layout), the same weights under the
 * newer layout, bit-identical results for 1 and 2 threads, and one clear line for each bad checkpoint or
 * batch. */
#include "check.h"
#include "numcheck.h"
#include "engine/llava.h"
#include "engine/ops.h"
#include "engine/safetensors.h"
#include "util/err.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define B 2
#define T 24

static char dir[4096];
static const char *shards[] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};

/* The fixture's inputs and expected outputs. */
static struct {
    struct st_file io;
    int32_t ids[B * T], mask[B * T];
    float *pixels, *feats, *logits;
    size_t nfeats, nlogits;
} fx;

static float *tensor(const char *name, size_t *n) {
    const struct st_tensor *t = st_find(&fx.io, name);
    if (!t)
        return NULL;
    float *x = malloc(t->nelem * sizeof(float));
    st_to_f32(t, x);
    if (n)
        *n = t->nelem;
    return x;
}

static int load_fixture(void) {
    char path[4200];
    snprintf(path, sizeof path, "%s/io.safetensors", dir);
    if (st_open(path, &fx.io) < 0)
        return -1;
    size_t n = 0;
    float *ids = tensor("input_ids", &n), *mask = tensor("attention_mask", NULL);
    if (!ids || !mask || n != B * T)
        return -1;
    for (size_t i = 0; i < B * T; i++) {
        fx.ids[i] = (int32_t)ids[i];
        fx.mask[i] = (int32_t)mask[i];
    }
    free(ids);
    free(mask);
    fx.pixels = tensor("pixel_values", NULL);
    fx.feats = tensor("image_features", &fx.nfeats);
    fx.logits = tensor("logits", &fx.nlogits);
    return fx.pixels && fx.feats && fx.logits ? 0 : -1;
}

/* The logits of the valid (mask 1) positions, packed; padding positions are not compared: there the engine's
 * attention gives zeros, where transformers attends to the valid keys (no loss ever reads them). */
static size_t valid_logits(const float *logits, float *out) {
    size_t n = 0;
    for (size_t i = 0; i < (size_t)B * T; i++)
        if (fx.mask[i]) {
            memcpy(out + n * 100, logits + i * 100, 100 * sizeof(float));
            n++;
        }
    return n;
}

static void test_matches_transformers(struct llava *m) {
    CHECK(llava_forward(m, ops_cpu(1), fx.ids, fx.mask, B, T, fx.pixels, B) == 0);
    CHECK(fx.nlogits == (size_t)B * T * 100);
    float *got = malloc(fx.nlogits * sizeof(float)), *want = malloc(fx.nlogits * sizeof(float));
    size_t nv = valid_logits(m->a.logits, got);
    CHECK(valid_logits(fx.logits, want) == nv && nv == 44);
    double fmax, lmax;
    double frel = check_rel_err(m->a.proj2, fx.feats, fx.nfeats, &fmax);
    double lrel = check_rel_err(got, want, nv * 100, &lmax);
    printf("image features: rel %.3g max abs %.3g; logits (%zu positions): rel %.3g max abs %.3g\n", frel,
           fmax, nv, lrel, lmax);
    CHECK(fx.nfeats == (size_t)B * 16 * 32);
    CHECK(frel < 1e-4);
    CHECK(lrel < 1e-4);
    CHECK(lmax < 1e-4);
    for (size_t i = 0; i < fx.nlogits; i++)
        if (!isfinite(m->a.logits[i])) {
            CHECK(!"logits finite everywhere, padding included");
            break;
        }
    free(got);
    free(want);
}

/* Same bits for 1 and 2 threads. */
static void test_threads(struct llava *m) {
    size_t n = (size_t)B * T * 100;
    float *one = malloc(n * sizeof(float));
    CHECK(llava_forward(m, ops_cpu(1), fx.ids, fx.mask, B, T, fx.pixels, B) == 0);
    memcpy(one, m->a.logits, n * sizeof(float));
    CHECK(llava_forward(m, ops_cpu(2), fx.ids, fx.mask, B, T, fx.pixels, B) == 0);
    CHECK(memcmp(one, m->a.logits, n * sizeof(float)) == 0);
    free(one);
}

/* ---- checkpoints rewritten in memory ---- */

enum edit { NONE, RENAME_NEW, RENAME_HUB, DROP, RESHAPE, EXTRA };

/* The fixture's names (transformers 5 saves the Hub layout without the tower's "vision_model." level) in the
 * newer layout of transformers 4.4x-4.5x (RENAME_NEW) or exactly as llava-hf's Hub files (RENAME_HUB). */
static void relabel(const char *name, enum edit edit, char *out, size_t cap) {
    static const char *const map[][2] = {{"language_model.model.", "model.language_model."},
                                         {"language_model.lm_head.", "lm_head."},
                                         {"vision_tower.", "model.vision_tower.vision_model."},
                                         {"multi_modal_projector.", "model.multi_modal_projector."}};
    for (size_t i = 0; i < 4; i++)
        if (strncmp(name, map[i][0], strlen(map[i][0])) == 0) {
            if (edit == RENAME_NEW)
                snprintf(out, cap, "%s%s", map[i][1], name + strlen(map[i][0]));
            else
                snprintf(out, cap, "%s%s", i == 2 ? "vision_tower.vision_model." : map[i][0],
                         name + strlen(map[i][0]));
            return;
        }
    snprintf(out, cap, "%s", name);
}

struct mem_ckpt {
    struct st_file f;
    void *data;
};

/* Both shards merged into one in-memory file, with `edit` applied to the tensor called `target`. */
static int rewrite(struct mem_ckpt *ck, enum edit edit, const char *target) {
    struct st_file in[2];
    struct st_out out[256];
    char names[256][LLAVA_NAME_MAX];
    size_t n = 0, hit = 0;
    for (int s = 0; s < 2; s++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, shards[s]);
        if (st_open(path, &in[s]) < 0)
            return -1;
        for (size_t i = 0; i < in[s].n && n < 255; i++) {
            const struct st_tensor *t = &in[s].t[i];
            hit += strcmp(t->name, target) == 0;
            if (edit == DROP && strcmp(t->name, target) == 0)
                continue;
            float *x = malloc(t->nelem * sizeof(float));
            st_to_f32(t, x);
            out[n] = (struct st_out){.name = names[n], .data = x, .ndim = t->ndim, .dtype = ST_F32};
            memcpy(out[n].shape, t->shape, sizeof t->shape);
            if (edit == RENAME_NEW || edit == RENAME_HUB)
                relabel(t->name, edit, names[n], sizeof names[n]);
            else
                snprintf(names[n], sizeof names[n], "%s", t->name);
            if (edit == RESHAPE && strcmp(t->name, target) == 0) {
                out[n].ndim = 2;
                out[n].shape[0] = 1;
                out[n].shape[1] = (int64_t)t->nelem;
            }
            n++;
        }
    }
    if (edit == EXTRA) {
        static const float one = 1;
        snprintf(names[n], sizeof names[n], "%s", target);
        out[n++] = (struct st_out){.name = names[n - 1],
                                   .data = (float *)malloc(sizeof(float)),
                                   .ndim = 1,
                                   .shape = {1},
                                   .dtype = ST_F32};
        memcpy((float *)out[n - 1].data, &one, sizeof one);
    }
    size_t len;
    int ok = !((edit == DROP || edit == RESHAPE) && hit != 1);
    if (!ok)
        fprintf(stderr, "rewrite: no tensor %s in the fixture\n", target);
    int rc = ok ? st_write(out, n, NULL, 0, &ck->data, &len) : -1;
    for (size_t i = 0; i < n; i++)
        free((void *)out[i].data);
    st_close(&in[0]);
    st_close(&in[1]);
    return rc < 0 ? -1 : st_parse(ck->data, len, "memory", &ck->f);
}

static void mem_free(struct mem_ckpt *ck) {
    st_close(&ck->f);
    free(ck->data);
}

/* Loads the fixture's weights with one edit; returns llava_init's result, the model freed. */
static int init_edited(const struct llava_config *cfg, enum edit edit, const char *target) {
    struct mem_ckpt ck;
    struct llava m;
    if (rewrite(&ck, edit, target) < 0)
        return -2;
    int rc = llava_init(&m, cfg, &ck.f, 1, B, T);
    if (rc == 0)
        llava_free(&m);
    mem_free(&ck);
    return rc;
}

/* The same weights under another name layout give the same parameters and the same logits. */
static void test_layout(struct llava *ref, enum edit layout, const char *probe) {
    struct mem_ckpt ck;
    struct llava m;
    CHECK(rewrite(&ck, layout, "") == 0);
    CHECK(st_find(&ck.f, probe) != NULL);
    CHECK(llava_init(&m, &ref->cfg, &ck.f, 1, B, T) == 0);
    CHECK(m.nparams == ref->nparams && memcmp(m.params, ref->params, m.nparams * sizeof(float)) == 0);
    CHECK(llava_forward(&m, ops_cpu(1), fx.ids, fx.mask, B, T, fx.pixels, B) == 0);
    CHECK(llava_forward(ref, ops_cpu(1), fx.ids, fx.mask, B, T, fx.pixels, B) == 0);
    CHECK(memcmp(m.a.logits, ref->a.logits, (size_t)B * T * 100 * sizeof(float)) == 0);
    llava_free(&m);
    mem_free(&ck);
}

static void test_bad_checkpoints(const struct llava_config *cfg) {
    const char *up = "language_model.model.layers.1.mlp.up_proj.weight";
    CHECK(init_edited(cfg, DROP, up) == -1);
    CHECK_HAS(err_msg(), "missing tensor model.language_model.layers.1.mlp.up_proj.weight");
    CHECK(init_edited(cfg, RESHAPE, "multi_modal_projector.linear_1.bias") == -1);
    CHECK_HAS(err_msg(),
              "tensor multi_modal_projector.linear_1.bias has shape [1, 32], the config wants [32]");
    CHECK(init_edited(cfg, EXTRA, "language_model.model.layers.2.mlp.up_proj.weight") == -1);
    CHECK_HAS(err_msg(), "unexpected tensor language_model.model.layers.2.mlp.up_proj.weight");
    /* Vision layers after the selected one and post_layernorm are ignored, whatever they hold. */
    CHECK(init_edited(cfg, DROP, "vision_tower.encoder.layers.2.mlp.fc1.weight") == 0);
    CHECK(init_edited(cfg, RESHAPE, "vision_tower.post_layernorm.bias") == 0);
    struct llava_config wide = *cfg;
    wide.text.intermediate = 64;
    CHECK(init_edited(&wide, NONE, "") == -1);
    CHECK_HAS(err_msg(), "mlp.down_proj.weight has shape [32, 56], the config wants [32, 64]");
    struct llava_config deep = *cfg; /* features from the last layer: layer 2 is now needed */
    deep.vision.layers_used = 3;
    CHECK(init_edited(&deep, NONE, "") == 0);
    CHECK(init_edited(&deep, DROP, "vision_tower.encoder.layers.2.mlp.fc2.bias") == -1);
    CHECK_HAS(err_msg(), "missing tensor model.vision_tower.vision_model.encoder.layers.2.mlp.fc2.bias");
}

static void test_bad_batches(struct llava *m) {
    int32_t ids[B * T], mask[B * T];
    const struct ops *o = ops_cpu(1);
    memcpy(mask, fx.mask, sizeof mask);
    memcpy(ids, fx.ids, sizeof ids);
    ids[3] = 5; /* one image token fewer */
    CHECK(llava_forward(m, o, ids, fx.mask, B, T, fx.pixels, B) == -1);
    CHECK_HAS(err_msg(), "31 image tokens for 2 images of 16 tokens each");
    CHECK(llava_forward(m, o, fx.ids, fx.mask, B, T, fx.pixels, 1) == -1);
    CHECK_HAS(err_msg(), "32 image tokens for 1 images");
    ids[3] = 100;
    CHECK(llava_forward(m, o, ids, fx.mask, B, T, fx.pixels, B) == -1);
    CHECK_HAS(err_msg(), "token id 100 at position 3 is outside the vocabulary (100)");
    mask[T + 1] = 0; /* a hole: left padding or a mask in the middle */
    CHECK(llava_forward(m, o, fx.ids, mask, B, T, fx.pixels, B) == -1);
    CHECK_HAS(err_msg(), "attention_mask row 1 is not right-padded");
    CHECK(llava_forward(m, o, fx.ids, fx.mask, B, T + 1, fx.pixels, B) == -1);
    CHECK_HAS(err_msg(), "does not fit the model's 2 x 24");
    CHECK(llava_forward(m, o, fx.ids, fx.mask, B, T, NULL, B) == -1);
    CHECK_HAS(err_msg(), "pixel values required");
}

static void test_load_errors(void) {
    struct llava m;
    CHECK(llava_load(&m, "/nonexistent-pulse-dir", B, T) == -1);
    CHECK_HAS(err_msg(), "/nonexistent-pulse-dir/config.json");
}

int main(void) {
    const char *data = getenv("PULSE_TEST_DATA");
    snprintf(dir, sizeof dir, "%s/llava_tiny", data ? data : "tests/data");
    CHECK(load_fixture() == 0);
    if (check_failures)
        return check_done("engine_llava");
    struct llava m;
    int rc = llava_load(&m, dir, B, T);
    if (rc < 0)
        fprintf(stderr, "llava_load: %s\n", err_msg());
    CHECK(rc == 0);
    if (rc == 0) {
        CHECK(m.cfg.vision.layers_used == 2 && m.cfg.patches == 16);
        test_matches_transformers(&m);
        test_threads(&m);
        test_layout(&m, RENAME_NEW, "model.vision_tower.vision_model.pre_layrnorm.weight");
        test_layout(&m, RENAME_HUB, "vision_tower.vision_model.pre_layrnorm.weight");
        test_bad_checkpoints(&m.cfg);
        test_bad_batches(&m);
        llava_free(&m);
    }
    test_load_errors();
    st_close(&fx.io);
    free(fx.pixels);
    free(fx.feats);
    free(fx.logits);
    return check_done("engine_llava");
}

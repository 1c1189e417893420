/* test_engine_peft_export: several rounds of unlearning as ONE PEFT adapter (engine/peft.h's peft_sum and
 * peft_encode_saved, the stage kind export-peft) against PEFT itself (tests/reference/
 * make_peft_export_fixture.py). From the fixture's two rounds (ranks 4 and 3, the second on three projections
 * only) and projector, the engine's export must hold PEFT's saved tensors bit for bit and a config PEFT reads
 * the same way; the round-2 model the engine builds as unlearn and evaluate do (round 1 merged, round 2
 * merged, projector set) must give the logits PEFT gives with the export loaded on the base. It also measures
 * how far merging the sum once lands from merging the rounds in turn (fp32 rounding), reads a projector-less
 * export back, and checks the refusals. */
#include "check.h"
#include "numcheck.h"
#include "engine/config.h"
#include "engine/gguf.h"
#include "engine/llava.h"
#include "engine/lora.h"
#include "engine/ops.h"
#include "engine/peft.h"
#include "engine/safetensors.h"
#include "util/err.h"
#include "util/fsio.h"
#include "util/json.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NB 2
#define NT 24
#define NPROJ 4
#define MP "model.multi_modal_projector."

static char tiny[4096], fx[4096];
static struct llava_config cfg;
static struct lora rounds[2];
static struct st_out proj[NPROJ];
static struct st_file proj_file;
static int32_t ids[NB * NT], mask[NB * NT];
static float *pixels;

static const char *const proj_names[NPROJ] = {MP "linear_1.bias", MP "linear_1.weight", MP "linear_2.bias",
                                              MP "linear_2.weight"};

static int open_in(const char *dir, const char *file, struct st_file *f) {
    char path[8300];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    return st_open(path, f);
}

static char *read_text(const char *dir, const char *file, size_t *n) {
    char path[8300], *text = NULL;
    snprintf(path, sizeof path, "%s/%s", dir, file);
    if (fsio_read_file(path, 1 << 20, &text, n) < 0)
        fprintf(stderr, "%s\n", err_msg());
    return text;
}

/* The base config, both rounds (checked against its shapes, as export-peft does), the projector, the batch.
 */
static int load_fixture(void) {
    size_t n;
    char *text = read_text(tiny, "config.json", &n), dir[8300];
    int rc = text && config_parse(text, n, "config", &cfg) == 0 ? 0 : -1;
    free(text);
    for (int k = 0; rc == 0 && k < 2; k++) {
        snprintf(dir, sizeof dir, "%s/round%d", fx, k + 1);
        rc = peft_read(dir, gguf_lora_shape, &cfg.text, &rounds[k], NULL);
    }
    if (rc == 0)
        rc = open_in(fx, "projector.safetensors", &proj_file);
    for (int i = 0; rc == 0 && i < NPROJ; i++) {
        const struct st_tensor *t = st_find(&proj_file, proj_names[i]);
        rc = t ? 0 : -1;
        if (rc == 0)
            proj[i] = (struct st_out){proj_names[i],
                                      fixture_tensor(&proj_file, proj_names[i], NULL),
                                      t->ndim,
                                      {t->shape[0], t->shape[1]},
                                      ST_F32};
    }
    struct st_file io;
    if (rc == 0 && (rc = open_in(tiny, "io.safetensors", &io)) == 0) {
        rc =
            fixture_ints(&io, "input_ids", ids, NB * NT) | fixture_ints(&io, "attention_mask", mask, NB * NT);
        pixels = fixture_tensor(&io, "pixel_values", NULL);
        st_close(&io);
    }
    if (rc != 0)
        fprintf(stderr, "fixture: %s\n", err_msg());
    return rc == 0 && pixels ? 0 : -1;
}

/* The engine's export, as the stage makes it: the sum, the projector as modules_to_save, task type CAUSAL_LM.
 */
static int engine_export(char **config, size_t *nconfig, void **tensors, size_t *ntensors) {
    static const struct peft_meta meta = {NULL, "CAUSAL_LM"};
    struct lora sum;
    if (peft_sum(rounds, 2, &sum) != 0)
        return -1;
    int rc = peft_encode_saved(&sum, &meta, proj, NPROJ, config, nconfig, tensors, ntensors);
    lora_free(&sum);
    return rc;
}

/* Every tensor PEFT saved is in ours with its shape and bits, and we hold no other. */
static void compare_tensors(const void *ours, size_t n) {
    struct st_file got, want;
    CHECK(st_parse(ours, n, "export", &got) == 0);
    CHECK(open_in(fx, "export/adapter_model.safetensors", &want) == 0);
    CHECK(got.n == want.n && want.n == 2 * 14 + NPROJ);
    size_t values = 0, same = 0;
    for (size_t i = 0; i < want.n; i++) {
        const struct st_tensor *w = &want.t[i], *g = st_find(&got, w->name);
        int shaped = g && g->ndim == w->ndim && g->nelem == w->nelem && g->dtype == ST_F32 &&
                     memcmp(g->shape, w->shape, sizeof w->shape) == 0;
        CHECK(shaped);
        if (!shaped) {
            fprintf(stderr, "  %s: missing or another shape\n", w->name);
            continue;
        }
        float *a = fixture_tensor(&got, g->name, NULL), *b = fixture_tensor(&want, w->name, NULL);
        for (size_t j = 0; j < w->nelem; j++)
            same += memcmp(&a[j], &b[j], sizeof(float)) == 0;
        values += w->nelem;
        free(a);
        free(b);
    }
    printf("export tensors: %zu, %zu of %zu values bit-identical to PEFT's save_pretrained\n", want.n, same,
           values);
    CHECK(values > 0 && same == values);
    st_close(&got);
    st_close(&want);
}

/* target_modules as a set: PEFT writes its list from a Python set, in hash order. */
static int same_set(const struct json *a, const struct json *b) {
    if (!a || !b || a->type != JSON_ARR || b->type != JSON_ARR || a->len != b->len)
        return 0;
    for (size_t i = 0; i < a->len; i++) {
        int found = 0;
        for (size_t j = 0; j < b->len && !found; j++)
            found = json_equal(a->items[i], b->items[j]);
        if (!found)
            return 0;
    }
    return 1;
}

/* Our config has every key PEFT's has, with PEFT's value, but for peft_version (not written by PEFT),
 * base_model_name_or_path (the fixture's path; ours is null) and target_modules' order. */
static void compare_config(const char *ours, size_t n) {
    size_t nw;
    char *text = read_text(fx, "export/adapter_config.json", &nw);
    struct json *got = json_parse(ours, n), *want = text ? json_parse(text, nw) : NULL;
    CHECK(got && want && want->type == JSON_OBJ);
    for (size_t i = 0; want && got && i < want->len; i++) {
        const char *key = want->keys[i];
        const struct json *g = json_get(got, key);
        int ok = strcmp(key, "peft_version") == 0 || strcmp(key, "base_model_name_or_path") == 0 ||
                 (strcmp(key, "target_modules") == 0 ? same_set(g, want->items[i])
                                                     : g && json_equal(g, want->items[i]));
        if (!ok)
            fprintf(stderr, "  config key %s differs from PEFT's\n", key);
        CHECK(ok);
    }
    int64_t r = 0, alpha = 0;
    CHECK(json_get_int(got, "r", &r) == 0 && json_get_int(got, "lora_alpha", &alpha) == 0 && r == 7 &&
          alpha == 7);
    CHECK(json_get(got, "peft_version") == NULL &&
          json_get(got, "base_model_name_or_path")->type == JSON_NULL);
    json_free(got);
    json_free(want);
    free(text);
}

static void test_export(void) {
    char *config = NULL, *config2 = NULL;
    void *tensors = NULL, *tensors2 = NULL;
    size_t nc = 0, nt = 0, nc2 = 0, nt2 = 0;
    CHECK(engine_export(&config, &nc, &tensors, &nt) == 0);
    if (!config)
        return;
    compare_tensors(tensors, nt);
    compare_config(config, nc);
    CHECK(engine_export(&config2, &nc2, &tensors2, &nt2) == 0); /* deterministic bytes */
    CHECK(nc == nc2 && nt == nt2 && memcmp(config, config2, nc) == 0 && memcmp(tensors, tensors2, nt) == 0);
    free(config);
    free(tensors);
    free(config2);
    free(tensors2);
}

/* ---- the round-2 model --------------------------------------------------------------------------------- */

static void set_projector(struct llava *m) {
    for (int i = 0; i < NPROJ; i++) {
        struct llava_tensor *p = llava_param_find(m, proj_names[i]);
        memcpy(m->params + p->offset, proj[i].data, p->n * sizeof(float));
    }
}

/* The base with adapters merged one after another (model_build_rounds: attach, merge, next), then the
 * projector. */
static int build(struct llava *m, struct lora *merge, size_t n) {
    if (llava_load(m, tiny, NB, NT) < 0)
        return -1;
    for (size_t k = 0; k < n; k++) {
        if (llava_lora_attach(m, &merge[k], 0) < 0)
            return -1;
        llava_lora_merge(m);
    }
    set_projector(m);
    return 0;
}

/* ||a - b|| / ||b|| over the valid positions: padded rows differ from transformers' by design
 * (docs/engine.md). */
static double logits_rel(const float *a, const float *b) {
    size_t v = (size_t)cfg.text.vocab;
    double num = 0, den = 0;
    for (size_t i = 0; i < NB * NT; i++)
        for (size_t j = 0; mask[i] && j < v; j++) {
            double d = (double)a[i * v + j] - b[i * v + j];
            num += d * d;
            den += (double)b[i * v + j] * b[i * v + j];
        }
    return sqrt(num) / sqrt(den);
}

static float *forward(struct llava *m) {
    size_t nl = NB * NT * (size_t)cfg.text.vocab;
    float *out = malloc(nl * sizeof *out);
    CHECK(llava_forward(m, ops_cpu(1), ids, mask, NB, NT, pixels, NB) == 0);
    memcpy(out, m->a.logits, nl * sizeof *out);
    return out;
}

/* Rounds merged in turn vs their sum merged once: weights and logits differ by fp32 rounding only. */
static void compare_merges(const struct llava *seq, const struct llava *once, const float *ls,
                           const float *lo) {
    size_t differ = 0;
    double worst = 0, rel = check_rel_err(once->params, seq->params, seq->nparams, NULL);
    for (size_t i = 0; i < seq->nparams; i++)
        if (memcmp(&seq->params[i], &once->params[i], sizeof(float)) != 0) {
            differ++;
            worst = fmax(worst, fabs((double)seq->params[i] - once->params[i]));
        }
    double lrel = logits_rel(lo, ls);
    printf("rounds merged in turn vs their sum merged once: %zu of %zu weights differ, max |diff| %.3g, rel "
           "%.3g;"
           " logits rel %.3g\n",
           differ, seq->nparams, worst, rel, lrel);
    CHECK(rel < 1e-6 && worst < 1e-5 && lrel < 1e-5);
}

static void test_logits(void) {
    struct st_file lf;
    CHECK(open_in(fx, "logits.safetensors", &lf) == 0);
    float *want = fixture_tensor(&lf, "logits", NULL);
    struct llava seq, once;
    struct lora sum;
    CHECK(want && peft_sum(rounds, 2, &sum) == 0);
    int ok = want && build(&seq, rounds, 2) == 0 && build(&once, &sum, 1) == 0;
    CHECK(ok);
    if (ok) {
        float *ls = forward(&seq), *lo = forward(&once);
        double r = logits_rel(ls, want), r1 = logits_rel(lo, want);
        printf("round-2 model (rounds merged as unlearn/evaluate do) vs PEFT with the export: logits rel %.3g"
               " (the sum merged once: %.3g)\n",
               r, r1);
        CHECK(r < 1e-4 && r1 < 1e-4);
        compare_merges(&seq, &once, ls, lo);
        free(ls);
        free(lo);
        llava_free(&seq);
        llava_free(&once);
    }
    lora_free(&sum);
    free(want);
    st_close(&lf);
}

/* ---- one round, read back; refusals ------------------------------------------------------------------- */

/* Without a projector the export is a plain adapter that pulse-pipe reads back: round 2 alone becomes rank 3,
 * lora_alpha 3, B times 4/3, so that merging it gives round 2's delta. */
static void test_one_round(void) {
    struct lora sum, back;
    char *config;
    void *tensors;
    size_t nc, nt;
    CHECK(peft_sum(&rounds[1], 1, &sum) == 0);
    CHECK(sum.r == 3 && sum.alpha == 3.0 && sum.n == 6 && lora_scale(&sum) == 1.0f);
    CHECK(peft_encode(&sum, NULL, &config, &nc, &tensors, &nt) == 0);
    CHECK(peft_decode(config, nc, tensors, nt, "export", gguf_lora_shape, &cfg.text, &back, NULL) == 0);
    CHECK(back.r == 3 && back.n == 6 && back.ntargets == 6 && !back.target_regex);
    const struct lora_module *a = &rounds[1].m[0], *b = lora_find(&back, a->name);
    float scale = lora_scale(&rounds[1]);
    size_t wrong = 0;
    for (size_t i = 0; b && i < 3 * a->out; i++)
        wrong += b->B[i] != a->B[i] * scale;
    CHECK(b && memcmp(a->A, b->A, 3 * a->in * sizeof(float)) == 0 && wrong == 0);
    free(config);
    free(tensors);
    lora_free(&sum);
    lora_free(&back);
}

static void expect_error(int rc, const char *needle) {
    CHECK(rc == -1);
    CHECK_HAS(err_msg(), needle);
    CHECK(strchr(err_msg(), '\n') == NULL);
}

static void test_refusals(void) {
    struct lora bad[2], sum;
    char *config;
    void *tensors;
    size_t nc, nt;
    expect_error(peft_sum(rounds, 0, &sum), "peft sum: no adapters");
    lora_create(&bad[0], 40000, 1, 0);
    lora_create(&bad[1], 30000, 1, 0);
    lora_add(&bad[0], "model.language_model.layers.0.self_attn.q_proj", 1, 2);
    lora_add(&bad[1], "model.language_model.layers.0.self_attn.q_proj", 1, 3);
    expect_error(peft_sum(bad, 2, &sum), "ranks add up to 70000, more than PEFT's 65536");
    bad[1].r = 2; /* its module's blocks are larger than r 2 needs: shapes only are read */
    expect_error(peft_sum(bad, 2, &sum), "module model.language_model.layers.0.self_attn.q_proj is 1 -> 3 in "
                                         "adapter 2 but 1 -> 2 in an earlier one");
    bad[1].r = 30000;
    struct st_out clash = proj[0];
    clash.name = "model.language_model.layers.0.self_attn.q_proj.bias";
    expect_error(peft_encode_saved(&rounds[0], NULL, &clash, 1, &config, &nc, &tensors, &nt),
                 "module model.language_model.layers.0.self_attn.q_proj is both adapted and saved in full");
    clash.name = "bias";
    expect_error(peft_encode_saved(&rounds[0], NULL, &clash, 1, &config, &nc, &tensors, &nt),
                 "saved tensor \"bias\" is not a module's parameter");
    lora_free(&bad[0]);
    lora_free(&bad[1]);
}

int main(void) {
    const char *data = getenv("PULSE_TEST_DATA") ? getenv("PULSE_TEST_DATA") : "tests/data";
    snprintf(tiny, sizeof tiny, "%s/llava_tiny", data);
    snprintf(fx, sizeof fx, "%s/peft_export", data);
    CHECK(load_fixture() == 0);
    if (check_failures)
        return check_done("engine_peft_export");
    test_export();
    test_logits();
    test_one_round();
    test_refusals();
    for (int k = 0; k < 2; k++)
        lora_free(&rounds[k]);
    for (int i = 0; i < NPROJ; i++)
        free((float *)proj[i].data);
    st_close(&proj_file);
    free(pixels);
    return check_done("engine_peft_export");
}

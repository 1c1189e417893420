/* test_engine_generate: greedy generation with a K/V cache (engine/generate.h) on the tiny random LLaVA of
 * tests/data/llava_tiny, against transformers' generate(do_sample=False) (tests/reference/
 * make_generate_fixture.py: four prompts, two with an image, one that stops at eos): the same ids and the
 * same per-step logits; the cached steps against the full forward re-run on the growing sequence (the same
 * ids, logits within 1e-5 relative); the same bits on 1 and 2 threads; attention_decode against the full
 * attention's last row; and the refusals. The table comes from ops_select, so PULSE_CHECK_OPS=1 checks every
 * buffer generation hands an operation. */
#include "check.h"
#include "numcheck.h"
#include "engine/generate.h"
#include "engine/llava.h"
#include "engine/mem.h"
#include "engine/ops.h"
#include "engine/safetensors.h"
#include "util/err.h"
#include "util/fsio.h"
#include "util/json.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NP 4    /* prompts */
#define TMAX 24 /* the longest prompt */
#define VOCAB 100
#define IMG_FLOATS (3 * 28 * 28)

static char dir[4096];

/* The fixture: prompts, their images, the ids and logits transformers generated. */
static struct {
    size_t max_new, len[NP], ngen[NP];
    int32_t eos, ids[NP][TMAX], image[NP], gen[NP][8];
    float *logits[NP]; /* [ngen, VOCAB] */
    float *pixels;     /* [2, 3, 28, 28] */
} fx;

static int ints(const struct json *a, int32_t *out, size_t cap, size_t *n) {
    if (!a || a->type != JSON_ARR || a->len > cap)
        return -1;
    for (size_t i = 0; i < a->len; i++) {
        if (a->items[i]->type != JSON_INT)
            return -1;
        out[i] = (int32_t)a->items[i]->i;
    }
    *n = a->len;
    return 0;
}

static double num(const struct json *v) {
    return v->type == JSON_INT ? (double)v->i : v->n;
}

static int load_prompt(size_t p, const struct json *o) {
    const struct json *lg = json_get(o, "logits");
    int64_t image;
    if (ints(json_get(o, "ids"), fx.ids[p], TMAX, &fx.len[p]) < 0 ||
        ints(json_get(o, "generated"), fx.gen[p], 8, &fx.ngen[p]) < 0 ||
        json_get_int(o, "image", &image) < 0 || !lg || lg->len != fx.ngen[p])
        return -1;
    fx.image[p] = (int32_t)image;
    fx.logits[p] = malloc(fx.ngen[p] * VOCAB * sizeof(float));
    for (size_t s = 0; s < fx.ngen[p]; s++) {
        if (lg->items[s]->len != VOCAB)
            return -1;
        for (size_t j = 0; j < VOCAB; j++)
            fx.logits[p][s * VOCAB + j] = (float)num(lg->items[s]->items[j]);
    }
    return 0;
}

static int load_fixture(const char *data) {
    char path[4200], *text;
    size_t len;
    snprintf(path, sizeof path, "%s/llava_generate.json", data);
    if (fsio_read_file(path, 1u << 20, &text, &len) < 0)
        return -1;
    struct json *root = json_parse(text, len);
    free(text);
    int64_t max_new, eos;
    const struct json *ps = root ? json_get(root, "prompts") : NULL;
    int rc = ps && ps->len == NP && json_get_int(root, "max_new", &max_new) == 0 &&
                     json_get_int(root, "eos", &eos) == 0
                 ? 0
                 : -1;
    for (size_t p = 0; rc == 0 && p < NP; p++)
        rc = load_prompt(p, ps->items[p]);
    fx.max_new = (size_t)max_new;
    fx.eos = (int32_t)eos;
    json_free(root);
    struct st_file io;
    snprintf(path, sizeof path, "%s/io.safetensors", dir);
    if (rc == 0 && st_open(path, &io) == 0) {
        fx.pixels = fixture_tensor(&io, "pixel_values", NULL);
        st_close(&io);
    }
    return rc == 0 && fx.pixels && fx.max_new <= 8 ? 0 : -1;
}

/* The four prompts as one right-padded batch, their images in row order. */
static size_t batch(int32_t *ids, int32_t *mask, float *vis) {
    size_t nimg = 0;
    memset(ids, 0, sizeof(int32_t) * NP * TMAX);
    memset(mask, 0, sizeof(int32_t) * NP * TMAX);
    for (size_t p = 0; p < NP; p++) {
        for (size_t j = 0; j < fx.len[p]; j++) {
            ids[p * TMAX + j] = fx.ids[p][j];
            mask[p * TMAX + j] = 1;
        }
        if (fx.image[p] >= 0)
            memcpy(vis + nimg++ * IMG_FLOATS, fx.pixels + (size_t)fx.image[p] * IMG_FLOATS,
                   IMG_FLOATS * sizeof(float));
    }
    return nimg;
}

struct run {
    int32_t out[NP * 8];
    size_t n[NP];
    float logits[NP * 8 * VOCAB];
};

static int generate(struct llava *m, const struct ops *ops, struct run *r) {
    int32_t ids[NP * TMAX], mask[NP * TMAX];
    float vis[2 * IMG_FLOATS];
    size_t nimg = batch(ids, mask, vis);
    struct llava_gen g = {.max_new = fx.max_new, .eos = fx.eos, .logits = r->logits};
    memset(r, 0, sizeof *r);
    int rc = llava_generate(m, ops, ids, mask, NP, TMAX, vis, nimg, &g, r->out, r->n);
    if (rc < 0)
        fprintf(stderr, "llava_generate: %s\n", err_msg());
    return rc;
}

/* The ids transformers generated, and the logits they came from within the forward test's bar. */
static void test_matches_transformers(const struct run *r) {
    double worst = 0;
    for (size_t p = 0; p < NP; p++) {
        CHECK(r->n[p] == fx.ngen[p]);
        CHECK(memcmp(r->out + p * fx.max_new, fx.gen[p], fx.ngen[p] * sizeof(int32_t)) == 0);
        for (size_t s = 0; s < fx.ngen[p] && s < r->n[p]; s++) {
            double abs, rel = check_rel_err(r->logits + (p * fx.max_new + s) * VOCAB,
                                            fx.logits[p] + s * VOCAB, VOCAB, &abs);
            CHECK(rel < 1e-4 && abs < 1e-4);
            worst = rel > worst ? rel : worst;
        }
    }
    CHECK(fx.ngen[2] < fx.max_new && fx.gen[2][fx.ngen[2] - 1] == fx.eos); /* one prompt stops at eos */
    printf("vs transformers: ids equal, logits max rel %.3g\n", worst);
}

/* The full forward of prompt p followed by its first s generated ids: the logits of the last position. */
static int full_forward(struct llava *m, const struct ops *ops, size_t p, const struct run *r, size_t s,
                        float *logits) {
    int32_t ids[TMAX + 8], mask[TMAX + 8];
    size_t t = fx.len[p] + s;
    memcpy(ids, fx.ids[p], fx.len[p] * sizeof(int32_t));
    memcpy(ids + fx.len[p], r->out + p * fx.max_new, s * sizeof(int32_t));
    for (size_t j = 0; j < t; j++)
        mask[j] = 1;
    const float *pix = fx.image[p] >= 0 ? fx.pixels + (size_t)fx.image[p] * IMG_FLOATS : NULL;
    if (llava_forward(m, ops, ids, mask, 1, t, pix, pix ? 1 : 0) < 0)
        return -1;
    memcpy(logits, m->a.logits + (t - 1) * VOCAB, VOCAB * sizeof(float));
    return 0;
}

/* The KV-cache check: every cached step against the full forward re-run on the growing sequence. */
static void test_cache_matches_full(struct llava *m, const struct ops *ops, const struct run *r) {
    double worst_rel = 0, worst_abs = 0;
    float full[VOCAB];
    for (size_t p = 0; p < NP; p++)
        for (size_t s = 0; s < r->n[p]; s++) {
            CHECK(full_forward(m, ops, p, r, s, full) == 0);
            const float *cached = r->logits + (p * fx.max_new + s) * VOCAB;
            double abs, rel = check_rel_err(cached, full, VOCAB, &abs);
            CHECK(rel < 1e-5);
            size_t best = 0;
            for (size_t j = 1; j < VOCAB; j++)
                best = full[j] > full[best] ? j : best;
            CHECK((int32_t)best == r->out[p * fx.max_new + s]);
            worst_rel = rel > worst_rel ? rel : worst_rel;
            worst_abs = abs > worst_abs ? abs : worst_abs;
        }
    printf("cached vs full forward: max rel %.3g, max abs %.3g\n", worst_rel, worst_abs);
}

/* attention_decode against attention_forward's last rows: two sequences of 5 and 3 positions, 4 query heads
 * on 2 kv heads (repeated for the full op), a cache of 7 positions. */
static void test_attention_decode(const struct ops *ops) {
    enum { T = 5, NH = 4, KVH = 2, HS = 8, CAP = 7 };
    size_t full = 2 * T * NH * HS, cache = 2 * CAP * KVH * HS;
    float *q = mem_alloc(full, 4), *k = mem_alloc(full, 4), *v = mem_alloc(full, 4),
          *out = mem_alloc(full, 4);
    float *probs = mem_alloc(2 * NH * T * T, 4), *kc = mem_alloc(cache, 4), *vc = mem_alloc(cache, 4);
    float *qd = mem_alloc(2 * NH * HS, 4), *od = mem_alloc(2 * NH * HS, 4);
    int32_t *len = mem_alloc(2, 4);
    len[0] = T;
    len[1] = 3;
    uint32_t x = 12345;
    for (size_t b = 0; b < 2; b++)
        for (size_t t = 0; t < T; t++)
            for (size_t h = 0; h < KVH; h++)
                for (size_t d = 0; d < HS; d++) {
                    float kv[2];
                    for (int i = 0; i < 2; i++)
                        kv[i] = (float)((x = x * 1103515245u + 12345u) >> 8) / (float)(1u << 24) - 0.5f;
                    kc[((b * CAP + t) * KVH + h) * HS + d] = kv[0];
                    vc[((b * CAP + t) * KVH + h) * HS + d] = kv[1];
                    for (size_t r = 0; r < NH / KVH;
                         r++) { /* repeat_kv: kv head h serves query heads h*r.. */
                        k[((b * T + t) * NH + h * (NH / KVH) + r) * HS + d] = kv[0];
                        v[((b * T + t) * NH + h * (NH / KVH) + r) * HS + d] = kv[1];
                    }
                }
    for (size_t i = 0; i < full; i++)
        q[i] = (float)((x = x * 1103515245u + 12345u) >> 8) / (float)(1u << 24) - 0.5f;
    for (size_t b = 0; b < 2; b++) /* each sequence's query: its last valid position */
        memcpy(qd + b * NH * HS, q + (b * T + (size_t)len[b] - 1) * NH * HS, NH * HS * sizeof(float));
    ops->attention_forward(out, probs, q, k, v, len, 1, 2, T, NH, HS);
    ops->attention_decode(od, qd, kc, vc, len, 2, CAP, NH, KVH, HS);
    ops->sync();
    for (size_t b = 0; b < 2; b++) {
        double abs, rel = check_rel_err(od + b * NH * HS, out + (b * T + (size_t)len[b] - 1) * NH * HS,
                                        NH * HS, &abs);
        CHECK(rel < 1e-6);
    }
    len[1] = 0; /* no key: zeros */
    ops->attention_decode(od, qd, kc, vc, len, 2, CAP, NH, KVH, HS);
    ops->sync();
    for (size_t i = 0; i < NH * HS; i++)
        CHECK(od[NH * HS + i] == 0.0f);
    float *bufs[] = {q, k, v, out, probs, kc, vc, qd, od};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        mem_free(bufs[i]);
    mem_free(len);
}

static void test_refusals(struct llava *m, const struct ops *ops) {
    int32_t ids[NP * TMAX], mask[NP * TMAX], out[NP * 8];
    size_t n[NP];
    float vis[2 * IMG_FLOATS];
    size_t nimg = batch(ids, mask, vis);
    struct llava_gen g = {.max_new = 0, .eos = -1};
    CHECK(llava_generate(m, ops, ids, mask, NP, TMAX, vis, nimg, &g, out, n) < 0);
    CHECK_HAS(err_msg(), "max_new must be 1 to");
    g.max_new = 2;
    CHECK(llava_generate(m, ops, ids, mask, NP, TMAX, vis, 1, &g, out, n) < 0); /* one image short */
    CHECK_HAS(err_msg(), "image tokens for 1 images");
    CHECK(llava_generate(m, ops, ids, mask, NP + 1, TMAX, vis, nimg, &g, out, n) < 0);
    CHECK_HAS(err_msg(), "does not fit the model's");
    CHECK(m->kv == NULL);
}

int main(void) {
    const char *data = getenv("PULSE_TEST_DATA");
    data = data ? data : "tests/data";
    snprintf(dir, sizeof dir, "%s/llava_tiny", data);
    const struct ops *one =
        ops_select("cpu", 1); /* before any mem_alloc: PULSE_CHECK_OPS must see them all */
    CHECK(one != NULL);
    CHECK(load_fixture(data) == 0);
    if (check_failures)
        return check_done("engine_generate");
    test_attention_decode(one);
    struct llava m;
    int rc = llava_load(&m, dir, NP, TMAX + 8);
    if (rc < 0)
        fprintf(stderr, "llava_load: %s\n", err_msg());
    CHECK(rc == 0);
    if (rc == 0) {
        static struct run r1, r2;
        CHECK(generate(&m, one, &r1) == 0);
        test_matches_transformers(&r1);
        test_cache_matches_full(&m, one, &r1);
        CHECK(generate(&m, ops_select("cpu", 2), &r2) == 0);
        CHECK(memcmp(&r1, &r2, sizeof r1) == 0); /* ids, counts and every logit: the same bits */
        test_refusals(&m, ops_select("cpu", 1));
        llava_free(&m);
    }
    for (size_t p = 0; p < NP; p++)
        free(fx.logits[p]);
    free(fx.pixels);
    return check_done("engine_generate");
}

/* test_engine_corpus: a data set's examples and questions as batches (engine/corpus.h) and the pixels they
 * carry (engine/pixels.h): CLIP's normalisation of known values in channel-planar order; each distinct image
 * decoded once; batches padded, masked and labelled, their images in row order; the keep() filter; cached
 * tower features equal to llava_vision_features run directly, whatever the model's image capacity; every
 * refusal one line, the corpus left empty. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "imagetar.h"
#include "engine/config.h"
#include "engine/corpus.h"
#include "engine/dataset.h"
#include "engine/generate.h"
#include "engine/image.h"
#include "engine/llava.h"
#include "engine/llava_io.h"
#include "engine/ops.h"
#include "engine/pixels.h"
#include "engine/preprocess.h"
#include "engine/train.h"
#include "util/err.h"

#define SIZE 16
#define PAD 3

/* ---- pixels ---- */

static void test_pixels(void) {
    /* CLIPImageProcessor's mean and std applied to 0, 255 and 128, computed apart in double. */
    static const float want[3][3] = {{-1.792263f, -1.752097f, -1.480220f},
                                     {1.930336f, 2.074884f, 2.145897f},
                                     {0.076336f, 0.168897f, 0.339949f}};
    static const double mean[3] = {0.48145466, 0.4578275, 0.40821073},
                        sd[3] = {0.26862954, 0.26130258, 0.27577711};
    struct image im;
    CHECK(image_alloc(&im, 2, 2) == 0);
    static const uint8_t rgb[12] = {0, 0, 0, 255, 255, 255, 128, 128, 128, 10, 20, 30};
    memcpy(im.rgb, rgb, sizeof rgb);
    float out[12];
    CHECK(pixels_from_image(&im, 2, "img", out) == 0);
    for (int c = 0; c < 3; c++) {
        for (int p = 0; p < 3; p++)
            CHECK(fabsf(out[c * 4 + p] - want[p][c]) < 1e-5f);
        /* planar: the fourth pixel's channel c is its c-th byte */
        double v = ((double)rgb[9 + c] / 255.0 - mean[c]) / sd[c];
        CHECK(fabs(out[c * 4 + 3] - v) < 1e-5);
    }
    CHECK(pixels_from_image(&im, 3, "portrait", out) == -1);
    CHECK_STR(err_msg(), "portrait: image is 2x2, the model reads 3x3");
    image_free(&im);
    CHECK(image_alloc(&im, 2, 3) == 0);
    CHECK(pixels_from_image(&im, 2, "tall", out) == -1);
    CHECK_STR(err_msg(), "tall: image is 2x3, the model reads 2x2");
    image_free(&im);
}

/* ---- a small world ---- */

static const char *const words[] = {"USER", ":", "ASSISTANT", "What", "is", "this", "?", "Bob", "x", "."};
#define NWORDS (sizeof words / sizeof words[0])

static struct tokenizer *make_tokenizer(void) {
    static const char *const special[] = {"<unk>", "<s>", "</s>", "<pad>", "<image>"};
    char text[4096];
    int k = snprintf(text, sizeof text, "{\"version\":\"1.0\",\"added_tokens\":[");
    for (int i = 0; i < 5; i++)
        k += snprintf(text + k, sizeof text - (size_t)k,
                      "%s{\"id\":%d,\"content\":\"%s\",\"single_word\":false,\"lstrip\":false,"
                      "\"rstrip\":false,\"normalized\":false,\"special\":true}",
                      i ? "," : "", i, special[i]);
    k += snprintf(text + k, sizeof text - (size_t)k,
                  "],\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"Whitespace\"},\"post_processor\":null,"
                  "\"decoder\":null,\"truncation\":null,\"padding\":null,\"model\":{\"type\":\"WordLevel\","
                  "\"unk_token\":\"<unk>\",\"vocab\":{");
    for (int i = 0; i < 5; i++)
        k += snprintf(text + k, sizeof text - (size_t)k, "%s\"%s\":%d", i ? "," : "", special[i], i);
    for (size_t i = 0; i < NWORDS; i++)
        k += snprintf(text + k, sizeof text - (size_t)k, ",\"%s\":%zu", words[i], 5 + i);
    snprintf(text + k, sizeof text - (size_t)k, "}}}");
    return tokenizer_load(text, strlen(text));
}

/* A tiny LLaVA: 16x16 images in 8x8 patches (4 image tokens), one layer each side. */
static int make_config(int vocab, struct llava_config *cfg) {
    char text[2048];
    snprintf(text, sizeof text,
             "{\"model_type\":\"llava\",\"image_token_index\":4,\"pad_token_id\":%d,"
             "\"projector_hidden_act\":\"gelu\",\"vision_feature_layer\":-1,"
             "\"vision_feature_select_strategy\":\"default\",\"text_config\":{\"model_type\":\"llama\","
             "\"hidden_size\":16,\"intermediate_size\":32,\"num_hidden_layers\":1,\"num_attention_heads\":2,"
             "\"num_key_value_heads\":2,\"vocab_size\":%d,\"max_position_embeddings\":64,"
             "\"rms_norm_eps\":1e-05},\"vision_config\":{\"model_type\":\"clip_vision_model\","
             "\"hidden_size\":8,\"intermediate_size\":16,\"num_hidden_layers\":1,\"num_attention_heads\":2,"
             "\"image_size\":%d,\"patch_size\":8,\"num_channels\":3,\"layer_norm_eps\":1e-05}}",
             PAD, vocab, SIZE);
    return config_parse(text, strlen(text), "config", cfg);
}

/* Images im1..im3 (16x16, each its own pattern), `tiny` (8x8) and `wide` (24x12): the last two need
 * preprocessing. */
static uint8_t tar_pattern(int i, int k) {
    return (uint8_t)((i * 7 + k * 61) % 256);
}

static void *make_tar(size_t *n) {
    static const char *const ids[] = {"im1", "im2", "im3", "tiny", "wide"};
    static const int w[] = {SIZE, SIZE, SIZE, 8, 24}, h[] = {SIZE, SIZE, SIZE, 8, 12};
    return imagetar_make(ids, w, h, 5, tar_pattern, n);
}

static struct {
    struct tokenizer *tok;
    struct llava_config cfg;
    void *tar;
    struct ds_images *im;
} w;

/* e1 is the longest; e0 and e2 share im1. */
static struct ds_example ex_v[] = {
    {.id = "e0", .image = "im1", .prompt = "USER: <image>\nWhat is this?\nASSISTANT:", .answer = "Bob ."},
    {.id = "e1", .prompt = "USER: What is this? What is this?\nASSISTANT:", .answer = "Bob is x ."},
    {.id = "e2", .image = "im1", .prompt = "<image> What?", .answer = "x"},
    {.id = "e3", .image = "im2", .prompt = "USER: <image> What?", .answer = "Bob"},
};
static const struct ds_examples examples = {ex_v, 4};

static struct ds_item it_v[] = {
    {.id = "q0", .image = "im3", .prompt = "USER: <image>\nWhat is this?\nASSISTANT:", .answer = 2},
    {.id = "q1", .prompt = "USER: What?\nASSISTANT:", .answer = 0},
    {.id = "q2", .image = "im1", .prompt = "<image> What?", .answer = 3},
};
static const struct ds_items items = {it_v, 3};

/* The normalised pixels of image id, straight from the tar. */
static float *pixels_of(const char *id) {
    struct image im;
    float *p = malloc(3 * SIZE * SIZE * sizeof *p);
    CHECK(ds_images_decode(w.im, id, &im) == 0);
    CHECK(pixels_from_image(&im, SIZE, id, p) == 0);
    image_free(&im);
    return p;
}

static int same_pixels(const float *got, const char *id) {
    float *want = pixels_of(id);
    int same = memcmp(got, want, 3 * SIZE * SIZE * sizeof *got) == 0;
    free(want);
    return same;
}

/* The entry's sequence is the prompt module's, with or without the answer. */
static void check_seq(const struct corpus_entry *e, const char *prompt, const char *answer, int image) {
    struct prompt_seq s;
    CHECK(prompt_encode(w.tok, 4, 4, prompt, answer, image, "want", &s) == 0);
    CHECK(e->seq.n == s.n && e->seq.prompt_len == s.prompt_len && e->seq.image == image);
    CHECK(e->seq.n == s.n && memcmp(e->seq.ids, s.ids, s.n * sizeof *s.ids) == 0);
    CHECK(e->seq.n == s.n && memcmp(e->seq.labels, s.labels, s.n * sizeof *s.labels) == 0);
    prompt_seq_free(&s);
}

/* ---- corpora ---- */

static void test_examples(void) {
    struct corpus c;
    CHECK(corpus_from_examples(&c, &examples, w.im, w.tok, &w.cfg, NULL, NULL) == 0);
    CHECK(c.n == 4 && c.nimages == 2 && c.image_floats == 3 * SIZE * SIZE && c.feats == NULL);
    for (size_t i = 0; i < c.n && c.n == 4; i++) {
        check_seq(&c.e[i], ex_v[i].prompt, ex_v[i].answer, ex_v[i].image != NULL);
        CHECK(c.e[i].src == i && c.e[i].answer == -1);
    }
    if (c.n == 4) {
        CHECK(c.e[0].image == 0 && c.e[1].image == -1 && c.e[2].image == 0 && c.e[3].image == 1);
        CHECK(c.maxlen == c.e[1].seq.n && c.e[1].seq.n > c.e[0].seq.n);
    }
    CHECK(c.nimages == 2 && same_pixels(c.pixels, "im1") && same_pixels(c.pixels + c.image_floats, "im2"));
    corpus_free(&c);
    CHECK(c.e == NULL && c.pixels == NULL && c.n == 0);
}

/* Rows idx: ids and labels as the entries', then pad / TRAIN_IGNORE with mask 0; the rows' images (named in
 * `images`) in row order. A corpus of pixels: features are test_features' business. */
static void check_batch(const struct corpus *c, const size_t *idx, size_t b, const char *const *images) {
    size_t per = c->image_floats, nimg = 99, t = 0, want_t = 0, want_img = 0;
    int32_t *ids = malloc(b * c->maxlen * sizeof *ids), *mask = malloc(b * c->maxlen * sizeof *mask);
    int32_t *labels = malloc(b * c->maxlen * sizeof *labels);
    float *vis = malloc(b * per * sizeof *vis);
    for (size_t i = 0; i < b; i++) {
        want_t = c->e[idx[i]].seq.n > want_t ? c->e[idx[i]].seq.n : want_t;
        want_img += c->e[idx[i]].image >= 0;
    }
    corpus_batch(c, idx, b, PAD, ids, mask, labels, vis, &nimg, &t);
    CHECK(t == want_t && nimg == want_img);
    size_t bad = 0;
    for (size_t i = 0; i < b && t == want_t; i++) {
        const struct prompt_seq *s = &c->e[idx[i]].seq;
        for (size_t j = 0; j < t; j++) {
            int in = j < s->n;
            bad += ids[i * t + j] != (in ? s->ids[j] : PAD) || mask[i * t + j] != in ||
                   labels[i * t + j] != (in ? s->labels[j] : TRAIN_IGNORE);
        }
    }
    CHECK(bad == 0);
    for (size_t k = 0; k < nimg && nimg == want_img; k++)
        CHECK(same_pixels(vis + k * per, images[k]));
    free(ids);
    free(mask);
    free(labels);
    free(vis);
}

static void test_batches(void) {
    struct corpus c;
    CHECK(corpus_from_examples(&c, &examples, w.im, w.tok, &w.cfg, NULL, NULL) == 0);
    if (c.n != 4)
        return;
    static const size_t a[] = {3, 1, 0}, b[] = {1}, d[] = {2, 0, 3, 1};
    static const char *const ia[] = {"im2", "im1"}, *const id[] = {"im1", "im1", "im2"};
    check_batch(&c, a, 3, ia);
    check_batch(&c, b, 1, NULL);
    check_batch(&c, d, 4, id);
    corpus_free(&c);
}

/* What corpus_each_batch handed over, batch by batch: every row checked against check_batch's rules. */
struct visit {
    const struct corpus *c;
    size_t seen[8], n, batches, cap;
    int bad;
};

static int visit_rows(void *ctx, const struct corpus_rows *r) {
    struct visit *v = ctx;
    v->batches++;
    size_t t = 0;
    for (size_t i = 0; i < r->b; i++) {
        const struct prompt_seq *s = &v->c->e[r->idx[i]].seq;
        t = s->n > t ? s->n : t;
        for (size_t j = 0; j < r->t && v->n < 8; j++)
            v->bad +=
                r->ids[i * r->t + j] != (j < s->n ? s->ids[j] : PAD) || r->mask[i * r->t + j] != (j < s->n);
        if (v->n < 8)
            v->seen[v->n++] = r->idx[i];
    }
    v->bad += r->t != t || r->b == 0 || r->b > v->cap || r->feats;
    return 0;
}

/* The four examples, then twins of e2 and e0 (e4, e5: equal lengths): 6 entries, or 0 (checked). */
static void six_entries(struct corpus *c) {
    struct ds_example v[6];
    memcpy(v, ex_v, 4 * sizeof *v);
    v[4] = ex_v[2];
    v[4].id = "e4";
    v[5] = ex_v[0];
    v[5].id = "e5";
    struct ds_examples six = {v, 6};
    CHECK(corpus_from_examples(c, &six, w.im, w.tok, &w.cfg, NULL, NULL) == 0 && c->n == 6);
    if (c->n != 6)
        corpus_free(c);
}

/* Every entry once, longest first and equal lengths in entry order (e2 and its twin e4, e0 and e5), in
 * batches of the capacity, each padded to its own longest row. */
static void test_each_batch(void) {
    struct corpus c;
    six_entries(&c);
    if (c.n != 6)
        return;
    CHECK(c.e[2].seq.n == c.e[4].seq.n && c.e[0].seq.n == c.e[5].seq.n && c.e[0].seq.n != c.e[2].seq.n);
    for (size_t cap = 1; cap <= 6; cap++) {
        struct llava m;
        CHECK(llava_init_blank(&m, &w.cfg, cap, c.maxlen) == 0);
        struct visit got = {.c = &c, .cap = cap};
        CHECK(corpus_each_batch(&c, &m, visit_rows, &got) == 0);
        CHECK(got.bad == 0 && got.n == 6 && got.batches == (6 + cap - 1) / cap);
        int order = 1;
        for (size_t i = 1; i < got.n; i++) {
            size_t a = c.e[got.seen[i - 1]].seq.n, b = c.e[got.seen[i]].seq.n;
            order &= a > b || (a == b && got.seen[i - 1] < got.seen[i]);
        }
        CHECK(order);
        llava_free(&m);
    }
    corpus_free(&c);
}

/* Generation over a corpus, whose batches take the entries longest first: each entry's tokens and count
 * at its own place, as generating it alone gives (eos: entry 0's first token, so counts differ). */
static void test_generate_corpus(void) {
    struct corpus c;
    six_entries(&c);
    if (c.n != 6)
        return;
    enum { NEW = 3 };
    struct llava m;
    CHECK(llava_init_random(&m, &w.cfg, 11, 0.5f, 4, c.maxlen + NEW) == 0);
    struct llava_gen g = {.max_new = NEW, .eos = -1};
    int32_t out[6 * NEW], alone[NEW], ids[64], mask[64], labels[64];
    size_t n[6], one = 0, nimg = 0, t = 0;
    float *vis = malloc(c.image_floats * sizeof *vis);
    CHECK(llava_generate_corpus(&m, ops_cpu(1), &c, &g, out, n) == 0 && n[0] == NEW);
    g.eos = out[0];
    CHECK(llava_generate_corpus(&m, ops_cpu(1), &c, &g, out, n) == 0 && n[0] == 1);
    size_t differ = 0;
    for (size_t i = 0; i < c.n; i++) {
        corpus_batch(&c, &i, 1, PAD, ids, mask, labels, vis, &nimg, &t);
        CHECK(llava_generate(&m, ops_cpu(1), ids, mask, 1, t, vis, nimg, &g, alone, &one) == 0);
        differ += one != n[i] || memcmp(alone, out + i * NEW, one * sizeof *alone) != 0;
    }
    CHECK(differ == 0);
    free(vis);
    llava_free(&m);
    corpus_free(&c);
}

static int keep_odd(void *arg, size_t i) {
    (*(int *)arg)++;
    return i % 2 == 1;
}

static void test_keep_and_items(void) {
    struct corpus c;
    int calls = 0;
    CHECK(corpus_from_examples(&c, &examples, w.im, w.tok, &w.cfg, keep_odd, &calls) == 0);
    CHECK(calls == 4 && c.n == 2 && c.nimages == 1);
    if (c.n == 2) {
        CHECK(c.e[0].src == 1 && c.e[1].src == 3 && c.e[0].image == -1 && c.e[1].image == 0);
        CHECK(c.maxlen == c.e[0].seq.n && same_pixels(c.pixels, "im2"));
    }
    corpus_free(&c);

    /* Questions: the prompt alone, the right option kept; images numbered by first use. */
    CHECK(corpus_from_items(&c, &items, w.im, w.tok, &w.cfg, NULL, NULL) == 0);
    CHECK(c.n == 3 && c.nimages == 2);
    for (size_t i = 0; i < c.n && c.n == 3; i++) {
        check_seq(&c.e[i], it_v[i].prompt, NULL, it_v[i].image != NULL);
        CHECK(c.e[i].answer == it_v[i].answer && c.e[i].seq.n == c.e[i].seq.prompt_len);
    }
    if (c.n == 3)
        CHECK(c.e[0].image == 0 && c.e[1].image == -1 && c.e[2].image == 1);
    CHECK(c.nimages == 2 && same_pixels(c.pixels, "im3") && same_pixels(c.pixels + c.image_floats, "im1"));
    corpus_free(&c);
}

/* A good example (with an image) then a broken one: the whole corpus is refused with one line. */
static void refused(const struct ds_example *bad, const struct llava_config *cfg, const char *msg) {
    struct ds_example v[2] = {ex_v[3], *bad};
    struct ds_examples ex = {v, 2};
    struct corpus c;
    CHECK(corpus_from_examples(&c, &ex, w.im, w.tok, cfg, NULL, NULL) == -1);
    CHECK_HAS(err_msg(), msg);
    CHECK(strchr(err_msg(), '\n') == NULL);
    CHECK(c.e == NULL && c.n == 0 && c.pixels == NULL);
}

static void test_errors(void) {
    struct ds_example nope = {.id = "e9", .image = "nope", .prompt = "<image> What?", .answer = "x"};
    refused(&nope, &w.cfg, "e9: ");
    refused(&nope, &w.cfg, "nope");
    struct ds_example noimg = {.id = "e9", .prompt = "<image> What?", .answer = "x"};
    refused(&noimg, &w.cfg, "e9: the prompt holds <image> 1 times");
    struct ds_example noplace = {.id = "e9", .image = "im2", .prompt = "What?", .answer = "x"};
    refused(&noplace, &w.cfg, "e9: the prompt holds <image> 0 times");
    struct llava_config small;
    CHECK(make_config(13, &small) == 0); /* e3 stays below "x" (13) */
    struct ds_example x = {.id = "e9", .prompt = "What?", .answer = "x"};
    refused(&x, &small, "e9: token 13 is outside the model's vocabulary (13)");
}

/* ---- photos of other sizes: LLaVA-1.5's preprocessing, padded by default or not ("square") ---- */

static int preprocessed_as(const float *got, const char *id, enum preprocess_mode mode) {
    struct image im;
    float *want = malloc(3 * SIZE * SIZE * sizeof *want);
    CHECK(ds_images_decode(w.im, id, &im) == 0);
    CHECK(preprocess_image(&im, SIZE, mode, id, want) == 0);
    int same = memcmp(got, want, 3 * SIZE * SIZE * sizeof *got) == 0;
    image_free(&im);
    free(want);
    return same;
}

static void test_preprocessing(void) {
    struct ds_example v[2] = {
        {.id = "e8", .image = "tiny", .prompt = "<image> What?", .answer = "x"},
        {.id = "e9", .image = "wide", .prompt = "<image> What?", .answer = "x"},
    };
    struct ds_examples ex = {v, 2};
    struct corpus c;
    CHECK(w.cfg.image_pad == 1);
    CHECK(corpus_from_examples(&c, &ex, w.im, w.tok, &w.cfg, NULL, NULL) == 0 && c.nimages == 2);
    CHECK(preprocessed_as(c.pixels, "tiny", PREPROCESS_PAD));
    CHECK(preprocessed_as(c.pixels + c.image_floats, "wide", PREPROCESS_PAD));
    CHECK(!preprocessed_as(c.pixels + c.image_floats, "wide", PREPROCESS_HF)); /* the padding shows */
    corpus_free(&c);
    struct llava_config sq = w.cfg;
    sq.image_pad = 0;
    CHECK(corpus_from_examples(&c, &ex, w.im, w.tok, &sq, NULL, NULL) == 0 && c.nimages == 2);
    CHECK(preprocessed_as(c.pixels + c.image_floats, "wide", PREPROCESS_HF));
    corpus_free(&c);
}

/* ---- cached features ---- */

/* corpus_features against llava_vision_features run on the corpus's own pixels, for a model holding one
 * image (two passes) and one holding four (one pass). */
static void test_features(void) {
    struct corpus c;
    CHECK(corpus_from_examples(&c, &examples, w.im, w.tok, &w.cfg, NULL, NULL) == 0);
    for (size_t cap = 1; cap <= 4 && c.n == 4; cap += 3) {
        struct llava m;
        CHECK(llava_init_random(&m, &w.cfg, 7, 0.02f, cap, c.maxlen) == 0);
        CHECK(corpus_features(&c, &m, ops_cpu(2)) == 0);
        size_t per = llava_feature_tokens(&m) * (size_t)w.cfg.vision.hidden;
        CHECK(c.feats && c.feat_floats == per && per == 4 * 8);
        float *want = malloc(2 * per * sizeof *want);
        for (size_t k = 0; k < 2; k += cap)
            CHECK(llava_vision_features(&m, ops_cpu(1), c.pixels + k * c.image_floats, cap == 1 ? 1 : 2,
                                        want + k * per) == 0);
        CHECK(memcmp(c.feats, want, 2 * per * sizeof *want) == 0);
        CHECK(memcmp(want, want + per, per * sizeof *want) != 0);
        /* a batch now carries features, in row order: e3 (im2), then e0 (im1) */
        static const size_t idx[] = {3, 1, 0};
        int32_t ids[3 * 64], mask[3 * 64], labels[3 * 64];
        float vis[3 * 32];
        size_t nimg = 0, t = 0;
        corpus_batch(&c, idx, 3, PAD, ids, mask, labels, vis, &nimg, &t);
        CHECK(nimg == 2 && memcmp(vis, want + per, per * sizeof *vis) == 0 &&
              memcmp(vis + per, want, per * sizeof *vis) == 0);
        free(want);
        llava_free(&m);
    }
    corpus_free(&c);
}

int main(void) {
    test_pixels();
    size_t n = 0;
    w.tok = make_tokenizer();
    w.tar = make_tar(&n);
    CHECK(w.tok && w.tar && ds_images_open(w.tar, n, "images", &w.im) == 0);
    CHECK(make_config(32, &w.cfg) == 0 && w.cfg.patches == 4);
    if (w.tok && w.im) {
        test_examples();
        test_batches();
        test_each_batch();
        test_generate_corpus();
        test_keep_and_items();
        test_errors();
        test_preprocessing();
        test_features();
    }
    ds_images_free(w.im);
    free(w.tar);
    tokenizer_free(w.tok);
    return check_done("test_engine_corpus");
}

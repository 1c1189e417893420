/* corpus: token sequences and decoded images for training and evaluation (engine/corpus.h). */
#include "engine/corpus.h"

#include <stdlib.h>
#include <string.h>

#include "engine/pixels.h"
#include "engine/preprocess.h"
#include "engine/train.h"
#include "util/buf.h"
#include "util/err.h"

/* A small open-addressing map from image id to its index in the corpus, so that each image is decoded once.
 */
struct image_map {
    char **ids;
    size_t *index, cap;
};

static size_t hash_str(const char *s) {
    size_t h = 1469598103934665603u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

/* An image already the tower's size is read as it is (the embedded world draws them so); any other goes
 * through LLaVA-1.5's preprocessing, padded or not as the config says. */
static int image_pixels(const struct image *img, const struct llava_config *cfg, const char *id, float *out) {
    int size = cfg->vision.image_size;
    if (img->w == size && img->h == size)
        return pixels_from_image(img, size, id, out);
    return preprocess_image(img, size, cfg->image_pad ? PREPROCESS_PAD : PREPROCESS_HF, id, out);
}

static long image_index(struct corpus *c, struct image_map *map, const struct ds_images *im, const char *id,
                        const struct llava_config *cfg) {
    if (map->cap == 0 || (c->nimages + 1) * 2 > map->cap) {
        struct image_map big = {calloc(map->cap ? map->cap * 2 : 256, sizeof(char *)), NULL,
                                map->cap ? map->cap * 2 : 256};
        big.index = calloc(big.cap, sizeof *big.index);
        for (size_t i = 0; i < map->cap; i++)
            if (map->ids[i]) {
                size_t h = hash_str(map->ids[i]) & (big.cap - 1);
                while (big.ids[h])
                    h = (h + 1) & (big.cap - 1);
                big.ids[h] = map->ids[i];
                big.index[h] = map->index[i];
            }
        free(map->ids);
        free(map->index);
        *map = big;
    }
    size_t h = hash_str(id) & (map->cap - 1);
    for (; map->ids[h]; h = (h + 1) & (map->cap - 1))
        if (strcmp(map->ids[h], id) == 0)
            return (long)map->index[h];
    struct image img;
    if (ds_images_decode(im, id, &img) != 0)
        return -1;
    c->pixels = realloc(c->pixels, (c->nimages + 1) * c->image_floats * sizeof(float));
    int rc = image_pixels(&img, cfg, id, c->pixels + c->nimages * c->image_floats);
    image_free(&img);
    if (rc != 0)
        return -1;
    map->ids[h] = xstrdup(id);
    map->index[h] = c->nimages;
    return (long)c->nimages++;
}

static void map_free(struct image_map *map) {
    for (size_t i = 0; i < map->cap; i++)
        free(map->ids[i]);
    free(map->ids);
    free(map->index);
}

/* One entry from its parts; the image (when named) is looked up or decoded. */
static int add_entry(struct corpus *c, struct image_map *map, const struct ds_images *im,
                     const struct tokenizer *t, const struct llava_config *cfg, const char *id,
                     const char *image, const char *prompt, const char *answer, size_t src, int right) {
    struct corpus_entry *e = &c->e[c->n];
    memset(e, 0, sizeof *e);
    e->image = -1;
    e->src = src;
    e->answer = right;
    if (image && (e->image = image_index(c, map, im, image, cfg)) < 0)
        return err_prefix("%s", id);
    if (prompt_encode(t, cfg->image_token_index, (size_t)cfg->patches, prompt, answer, image != NULL, id,
                      &e->seq) != 0)
        return -1;
    for (size_t i = 0; i < e->seq.n; i++)
        if (e->seq.ids[i] >= cfg->text.vocab) {
            int32_t bad = e->seq.ids[i];
            prompt_seq_free(&e->seq);
            return err_set("%s: token %d is outside the model's vocabulary (%d)", id, bad, cfg->text.vocab);
        }
    if (e->seq.n > c->maxlen)
        c->maxlen = e->seq.n;
    c->n++;
    return 0;
}

static void corpus_start(struct corpus *c, size_t cap, const struct llava_config *cfg) {
    memset(c, 0, sizeof *c);
    c->e = calloc(cap ? cap : 1, sizeof *c->e);
    c->image_floats =
        (size_t)cfg->vision.channels * (size_t)cfg->vision.image_size * (size_t)cfg->vision.image_size;
}

int corpus_from_examples(struct corpus *c, const struct ds_examples *ex, const struct ds_images *im,
                         const struct tokenizer *t, const struct llava_config *cfg,
                         int (*keep)(void *arg, size_t i), void *arg) {
    corpus_start(c, ex->n, cfg);
    struct image_map map = {0};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < ex->n; i++) {
        const struct ds_example *x = &ex->v[i];
        if (!keep || keep(arg, i))
            rc = add_entry(c, &map, im, t, cfg, x->id, x->image, x->prompt, x->answer, i, -1);
    }
    map_free(&map);
    if (rc != 0)
        corpus_free(c);
    return rc;
}

int corpus_from_items(struct corpus *c, const struct ds_items *items, const struct ds_images *im,
                      const struct tokenizer *t, const struct llava_config *cfg,
                      int (*keep)(void *arg, size_t i), void *arg) {
    corpus_start(c, items->n, cfg);
    struct image_map map = {0};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < items->n; i++) {
        const struct ds_item *x = &items->v[i];
        if (!keep || keep(arg, i))
            rc = add_entry(c, &map, im, t, cfg, x->id, x->image, x->prompt, NULL, i, x->answer);
    }
    map_free(&map);
    if (rc != 0)
        corpus_free(c);
    return rc;
}

void corpus_free(struct corpus *c) {
    for (size_t i = 0; i < c->n; i++)
        prompt_seq_free(&c->e[i].seq);
    free(c->e);
    free(c->pixels);
    free(c->feats);
    memset(c, 0, sizeof *c);
}

int corpus_features(struct corpus *c, struct llava *m, const struct ops *ops) {
    size_t ft = llava_feature_tokens(m), cap = m->nimg;
    c->feat_floats = ft * (size_t)m->cfg.vision.hidden;
    free(c->feats);
    c->feats = malloc((c->nimages ? c->nimages : 1) * c->feat_floats * sizeof(float));
    for (size_t i = 0; i < c->nimages; i += cap) {
        size_t k = c->nimages - i < cap ? c->nimages - i : cap;
        if (llava_vision_features(m, ops, c->pixels + i * c->image_floats, k,
                                  c->feats + i * c->feat_floats) != 0)
            return -1;
    }
    return 0;
}

void corpus_batch(const struct corpus *c, const size_t *idx, size_t b, int32_t pad, int32_t *ids,
                  int32_t *mask, int32_t *labels, float *vis, size_t *nimg, size_t *t) {
    size_t T = 0, k = 0;
    for (size_t i = 0; i < b; i++)
        if (c->e[idx[i]].seq.n > T)
            T = c->e[idx[i]].seq.n;
    const float *src = c->feats ? c->feats : c->pixels;
    size_t per = c->feats ? c->feat_floats : c->image_floats;
    for (size_t i = 0; i < b; i++) {
        const struct corpus_entry *e = &c->e[idx[i]];
        for (size_t j = 0; j < T; j++) {
            int in = j < e->seq.n;
            ids[i * T + j] = in ? e->seq.ids[j] : pad;
            mask[i * T + j] = in;
            labels[i * T + j] = in ? e->seq.labels[j] : TRAIN_IGNORE;
        }
        if (e->image >= 0)
            memcpy(vis + k++ * per, src + (size_t)e->image * per, per * sizeof(float));
    }
    *nimg = k;
    *t = T;
}

/* Entry order for batching: longest first, equal lengths in entry order (so the order is the corpus's
 * alone). Rows of one batch then have about one length: a batch pads to its longest row, and the model's
 * products run over the padding too (cut in the quick world's questions from about 20 % to 1 %). */
struct by_len {
    size_t n, i;
};

static int by_len_cmp(const void *a, const void *b) {
    const struct by_len *x = a, *y = b;
    if (x->n != y->n)
        return x->n > y->n ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

static size_t *longest_first(const struct corpus *c) {
    struct by_len *k = xmalloc((c->n ? c->n : 1) * sizeof *k);
    size_t *order = xmalloc((c->n ? c->n : 1) * sizeof *order);
    for (size_t i = 0; i < c->n; i++)
        k[i] = (struct by_len){c->e[i].seq.n, i};
    qsort(k, c->n, sizeof *k, by_len_cmp);
    for (size_t i = 0; i < c->n; i++)
        order[i] = k[i].i;
    free(k);
    return order;
}

int corpus_each_batch(const struct corpus *c, const struct llava *m,
                      int (*each)(void *ctx, const struct corpus_rows *rows), void *ctx) {
    size_t B = m->B, len = c->maxlen ? c->maxlen : 1, *order = longest_first(c);
    int32_t *ids = xmalloc(B * len * sizeof *ids), *mask = xmalloc(B * len * sizeof *mask);
    int32_t *labels = xmalloc(B * len * sizeof *labels);
    float *vis = xmalloc(B * (c->feats ? c->feat_floats : c->image_floats) * sizeof *vis);
    int32_t pad = m->cfg.pad_token_id >= 0 ? m->cfg.pad_token_id : 0;
    struct corpus_rows r = {
        .ids = ids, .mask = mask, .labels = labels, .vis = vis, .feats = c->feats != NULL};
    int rc = 0;
    for (size_t at = 0; rc == 0 && at < c->n; at += B) {
        r.b = c->n - at < B ? c->n - at : B;
        r.idx = order + at;
        corpus_batch(c, r.idx, r.b, pad, ids, mask, labels, vis, &r.nimg, &r.t);
        rc = each(ctx, &r);
    }
    free(order);
    free(ids);
    free(mask);
    free(labels);
    free(vis);
    return rc;
}

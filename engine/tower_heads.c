/* tower_heads: the token and face classifiers of the `tower` kind and their loss (engine/tower_heads.h). */
#include "engine/tower_heads.h"

#include <math.h>
#include <string.h>

#include "engine/mem.h"
#include "engine/rng.h"

/* Token groups: 5 shapes, 8 colours, small / large, each after "no object". Face groups: stages/synth.h's
 * N_SHAPE .. N_GARMENT. */
const int tower_classes[TOWER_GROUPS] = {6, 9, 3, 4, 8, 8, 7, 5, 3, 4, 3, 3, 2, 8};
const char *const tower_group_names[TOWER_GROUPS] = {
    "object_shape", "object_colour", "object_size", "face_shape", "skin",  "hair_colour", "hair_style",
    "eye_colour",   "glasses",       "beard",       "brows",      "mouth", "ears",        "garment"};

#define MAX_CLASSES 9

void tower_heads_init(struct tower_heads *h, size_t c, size_t per, uint64_t seed) {
    memset(h, 0, sizeof *h);
    h->c = c;
    h->per = per;
    for (int g = 0; g < TOWER_GROUPS; g++) {
        h->off[g] = h->n;
        h->n += (size_t)tower_classes[g] * (c + 1);
    }
    h->params = mem_alloc(h->n, sizeof(float));
    h->grads = mem_alloc(h->n, sizeof(float));
    h->m = mem_alloc(h->n, sizeof(float));
    h->v = mem_alloc(h->n, sizeof(float));
    for (int g = 0; g < TOWER_GROUPS; g++) /* as llava_init_random draws */
        for (size_t e = 0; e < (size_t)tower_classes[g] * c; e++)
            h->params[h->off[g] + e] = (float)(0.02 * rng_normal(rng_key(seed, (uint64_t)g), e));
}

void tower_heads_free(struct tower_heads *h) {
    mem_free(h->params);
    mem_free(h->grads);
    mem_free(h->m);
    mem_free(h->v);
    memset(h, 0, sizeof *h);
}

/* Buffers for one group over up to `rows` rows. */
struct scratch {
    float *logits, *dlogits, *logp, *dlogp;
    int32_t *tgt;
    uint8_t *on;
};

static void scratch_alloc(struct scratch *s, size_t rows) {
    s->logits = mem_alloc(rows * MAX_CLASSES, sizeof(float));
    s->dlogits = mem_alloc(rows * MAX_CLASSES, sizeof(float));
    s->logp = mem_alloc(rows, sizeof(float));
    s->dlogp = mem_alloc(rows, sizeof(float));
    s->tgt = mem_alloc(rows, sizeof(int32_t));
    s->on = mem_alloc(rows, 1);
}

static void scratch_free(struct scratch *s) {
    mem_free(s->logits);
    mem_free(s->dlogits);
    mem_free(s->logp);
    mem_free(s->dlogp);
    mem_free(s->tgt);
    mem_free(s->on);
}

static size_t argmax(const float *x, size_t k) {
    size_t best = 0;
    for (size_t j = 1; j < k; j++)
        best = x[j] > x[best] ? j : best;
    return best;
}

/* Group g over rows x [n, c] whose labels are lab[i * stride] (-1: not labelled): adds d loss / d x to dx and
 * the head's gradients to h->grads for a loss of `weight` times the mean -log p over the labelled rows, and
 * returns that loss (0 without any labelled row). */
static float group_step(struct tower_heads *h, const struct ops *ops, int g, const float *x, size_t n,
                        const int32_t *lab, size_t stride, float weight, float *dx, struct scratch *s,
                        long *hit, long *count) {
    size_t k = (size_t)tower_classes[g], c = h->c;
    const float *w = h->params + h->off[g];
    float *gw = h->grads + h->off[g];
    long cnt = 0, scored = g < TOWER_TOKEN_GROUPS; /* token groups: accuracy on object tokens only */
    *count = *hit = 0;
    ops->sync(); /* the previous group's operations may still read s */
    for (size_t i = 0; i < n; i++) {
        int32_t t = lab[i * stride];
        s->on[i] = t >= 0;
        s->tgt[i] = t >= 0 ? t : 0;
        cnt += t >= 0;
        *count += t >= scored;
    }
    if (cnt == 0)
        return 0.0f;
    ops->matmul_forward(s->logits, x, w, w + k * c, n, c, k);
    ops->logprob_forward(s->logp, s->logits, s->tgt, s->on, n, k);
    ops->sync();      /* logp and logits are read here, dlogp written */
    double sum = 0.0; /* in row order: the same bits for any thread count */
    for (size_t i = 0; i < n; i++) {
        sum += s->on[i] ? s->logp[i] : 0.0;
        *hit += s->on[i] && s->tgt[i] >= scored && argmax(s->logits + i * k, k) == (size_t)s->tgt[i];
        s->dlogp[i] = s->on[i] ? -weight / (float)cnt : 0.0f;
    }
    ops->zero(s->dlogits, n * k);
    ops->logprob_backward(s->dlogits, s->dlogp, s->logits, s->tgt, s->on, n, k);
    ops->matmul_backward(dx, gw, gw + k * c, s->dlogits, x, w, n, c, k);
    return (float)(-(double)weight * sum / (double)cnt);
}

/* dst[i] (+)= the mean of src's per rows of image i (pool), or dst's rows (+)= src[i] / per (spread). */
static void pool(const struct ops *ops, float *dst, const float *src, size_t nimg, size_t per, size_t c,
                 int spread) {
    for (size_t i = 0; i < nimg; i++)
        for (size_t t = 0; t < per; t++)
            if (spread)
                ops->add_scaled(dst + (i * per + t) * c, src + i * c, 1.0f / (float)per, c);
            else
                ops->add_scaled(dst + i * c, src + (i * per + t) * c, 1.0f / (float)per, c);
}

float tower_heads_step(struct tower_heads *h, const struct ops *ops, const float *feats,
                       const struct tower_batch *b, float *dfeats, long hits[TOWER_GROUPS],
                       long counts[TOWER_GROUPS]) {
    size_t c = h->c, rows = b->nimg * h->per;
    struct scratch s;
    scratch_alloc(&s, rows);
    float *pooled = mem_alloc(b->nimg * c, sizeof(float)), *dpooled = mem_alloc(b->nimg * c, sizeof(float));
    double loss = 0.0;
    ops->zero(dfeats, rows * c);
    for (int g = 0; g < TOWER_TOKEN_GROUPS; g++)
        loss += group_step(h, ops, g, feats, rows, b->tok + g, TOWER_TOKEN_GROUPS, 1.0f / TOWER_TOKEN_GROUPS,
                           dfeats, &s, &hits[g], &counts[g]);
    pool(ops, pooled, feats, b->nimg, h->per, c, 0);
    for (int f = 0; f < TOWER_FACE_GROUPS; f++) {
        int g = TOWER_TOKEN_GROUPS + f;
        loss += group_step(h, ops, g, pooled, b->nimg, b->face + f, TOWER_FACE_GROUPS,
                           1.0f / TOWER_FACE_GROUPS, dpooled, &s, &hits[g], &counts[g]);
    }
    pool(ops, dfeats, dpooled, b->nimg, h->per, c, 1);
    ops->sync();
    mem_free(pooled);
    mem_free(dpooled);
    scratch_free(&s);
    return (float)loss;
}

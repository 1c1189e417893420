/* generate: greedy decoding with a K/V cache (engine/generate.h): the cache's life, the prefill, the token
 * choice and the decoding loop; the layer code is the decoder's (llava_decoder.c). */
#include "engine/generate.h"

#include "engine/mem.h"
#include "util/buf.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

/* A cache of `cap` positions for b sequences, every layer's K and V, all from mem_alloc. */
static void kv_make(struct llava_kv *kv, const struct llava *m, size_t b, size_t cap) {
    const struct text_config *tc = &m->cfg.text;
    size_t layers = (size_t)tc->layers, d = (size_t)tc->kv_heads * ((size_t)tc->hidden / (size_t)tc->heads);
    size_t cells = b * cap * d;
    kv->b = b;
    kv->cap = cap;
    kv->k = xcalloc(layers ? layers : 1, sizeof *kv->k);
    kv->v = xcalloc(layers ? layers : 1, sizeof *kv->v);
    for (size_t l = 0; l < layers; l++) {
        kv->k[l] = mem_alloc(cells ? cells : 1, sizeof(float));
        kv->v[l] = mem_alloc(cells ? cells : 1, sizeof(float));
    }
    kv->len = mem_alloc(b, sizeof(int32_t));
}

static void kv_free(struct llava_kv *kv, const struct llava *m) {
    for (int l = 0; l < m->cfg.text.layers; l++) {
        mem_free(kv->k[l]);
        mem_free(kv->v[l]);
    }
    free(kv->k);
    free(kv->v);
    mem_free(kv->len);
    memset(kv, 0, sizeof *kv);
}

/* The greedy choice: the highest logit, the lowest id among equal ones. */
static int32_t argmax(const float *x, size_t n) {
    size_t best = 0;
    for (size_t j = 1; j < n; j++)
        if (x[j] > x[best])
            best = j;
    return (int32_t)best;
}

/* What one generation carries between steps. */
struct gen_run {
    struct llava *m;
    const struct llava_gen *g;
    struct llava_kv kv;
    size_t b, live;
    uint8_t *done; /* [b]: the sequence has ended */
    int32_t *out;
    size_t *n;
};

/* Step s's choice for every sequence still running, from its logits at row[i] of m->a.logits. */
static void choose(struct gen_run *r, size_t s, const size_t *row) {
    size_t v = (size_t)r->m->cfg.text.vocab;
    for (size_t i = 0; i < r->b; i++) {
        if (r->done[i])
            continue;
        const float *x = r->m->a.logits + row[i] * v;
        int32_t id = argmax(x, v);
        r->out[i * r->g->max_new + s] = id;
        r->n[i]++;
        if (r->g->logits)
            memcpy(r->g->logits + (i * r->g->max_new + s) * v, x, v * sizeof(float));
        if (id == r->g->eos || r->n[i] == r->g->max_new) {
            r->done[i] = 1;
            r->live--;
        }
    }
}

/* Feeds every sequence's newest token (an ended one repeats its last: its rows are never read) at its next
 * position, then runs the decoder for that position. */
static void step(struct gen_run *r, const struct ops *ops) {
    struct llava *m = r->m;
    for (size_t i = 0; i < r->b; i++) {
        m->tok[i] = r->out[i * r->g->max_new + r->n[i] - 1];
        m->pos[i] = r->kv.len[i]++;
    }
    m->kv = &r->kv;
    llava_decoder_step(m, ops, r->b);
    m->kv = NULL;
}

/* The prefill: the ordinary forward with the cache attached, which stores the prompt's K/V in it. */
static int prefill(struct gen_run *r, const struct ops *ops, const int32_t *ids, const int32_t *mask,
                   size_t t, const float *vis, size_t nimg) {
    struct llava *m = r->m;
    llava_logits_last(m, mask, r->b, t); /* the first choice reads nothing else */
    m->kv = &r->kv;
    int rc = r->g->feats ? llava_forward_features(m, ops, ids, mask, r->b, t, vis, nimg)
                         : llava_forward(m, ops, ids, mask, r->b, t, vis, nimg);
    m->kv = NULL;
    for (size_t i = 0; rc == 0 && i < r->b; i++)
        r->kv.len[i] = m->len[i];
    return rc;
}

int llava_generate(struct llava *m, const struct ops *ops, const int32_t *ids, const int32_t *mask, size_t b,
                   size_t t, const float *vis, size_t nimg, const struct llava_gen *g, int32_t *out,
                   size_t *n) {
    if (!g || g->max_new < 1 || g->max_new > LLAVA_GEN_MAX)
        return err_set("generate: max_new must be 1 to %d", LLAVA_GEN_MAX);
    if (b < 1 || b > m->B || t < 1 || t > m->T)
        return err_set("llava: batch %zu x %zu does not fit the model's %zu x %zu", b, t, m->B, m->T);
    struct gen_run r = {.m = m, .g = g, .b = b, .live = b, .done = xcalloc(b, 1), .out = out, .n = n};
    size_t *row = xmalloc(b * sizeof *row);
    memset(n, 0, b * sizeof *n);
    kv_make(&r.kv, m, b, t + g->max_new);
    int rc = prefill(&r, ops, ids, mask, t, vis, nimg);
    for (size_t i = 0; rc == 0 && i < b; i++)
        row[i] = i * t + (size_t)r.kv.len[i] - 1; /* each prompt's last valid position */
    for (size_t s = 0; rc == 0; s++) {
        choose(&r, s, row);
        if (r.live == 0)
            break;
        step(&r, ops);
        for (size_t i = 0; i < b; i++)
            row[i] = i;
    }
    m->fb = 0; /* the activations now hold the last step, not a forward */
    kv_free(&r.kv, m);
    free(row);
    free(r.done);
    return rc;
}

struct corpus_gen {
    struct llava *m;
    const struct ops *ops;
    struct llava_gen g;
    int32_t *out, *row_out; /* row_out, row_n: a batch's, in row order */
    size_t *n, *row_n;
};

/* One batch's rows: their tokens and counts, moved to their entries' places in out and n. */
static int generate_rows(void *ctx, const struct corpus_rows *r) {
    struct corpus_gen *c = ctx;
    size_t k = c->g.max_new;
    int rc = llava_generate(c->m, c->ops, r->ids, r->mask, r->b, r->t, r->vis, r->nimg, &c->g, c->row_out,
                            c->row_n);
    for (size_t i = 0; rc == 0 && i < r->b; i++) {
        memcpy(c->out + r->idx[i] * k, c->row_out + i * k, c->row_n[i] * sizeof *c->out);
        c->n[r->idx[i]] = c->row_n[i];
    }
    return rc;
}

int llava_generate_corpus(struct llava *m, const struct ops *ops, const struct corpus *cp,
                          const struct llava_gen *g, int32_t *out, size_t *n) {
    size_t b = m->B ? m->B : 1;
    struct corpus_gen c = {.m = m, .ops = ops, .g = *g, .out = out, .n = n};
    c.g.feats = cp->feats != NULL;
    c.g.logits = NULL;
    c.row_out = xmalloc(b * (g->max_new ? g->max_new : 1) * sizeof *c.row_out);
    c.row_n = xmalloc(b * sizeof *c.row_n);
    int rc = corpus_each_batch(cp, m, generate_rows, &c);
    free(c.row_out);
    free(c.row_n);
    return rc;
}

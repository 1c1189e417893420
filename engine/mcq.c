/* mcq: greedy-letter, option-letter and likelihood scoring of multiple-choice questions (engine/mcq.h). */
#include "engine/mcq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/train.h"
#include "engine/unlearn_loss.h"
#include "util/buf.h"
#include "util/err.h"

/* The letter a token's text starts with (after spaces and SentencePiece's word mark), or -1. */
static int token_letter(const struct tokenizer *t, int32_t id) {
    const char *s = tokenizer_token(t, id);
    if (!s)
        return -1;
    while (*s == ' ' || strncmp(s, "\xe2\x96\x81", 3) == 0)
        s += *s == ' ' ? 1 : 3;
    return *s >= 'A' && *s <= 'D' ? *s - 'A' : -1;
}

static void score_row(const float *logits, size_t v, const int32_t letters[4], const struct tokenizer *t,
                      struct mcq_result *r) {
    size_t best = 0;
    for (size_t j = 1; j < v; j++)
        if (logits[j] > logits[best])
            best = j;
    r->greedy = token_letter(t, (int32_t)best);
    r->likelihood = -1;
    r->option = 0;
    for (int k = 1; k < 4; k++)
        if (logits[letters[k]] > logits[letters[r->option]])
            r->option = k;
}

/* The option letters' ids: "▁A".."▁D" when the vocabulary has all four (LLaMA writes a letter after a space
 * so), else "A".."D". */
static int letter_ids(const struct tokenizer *t, int32_t letters[4]) {
    int spaced = 1;
    for (int k = 0; k < 4; k++) {
        char name[5] = {'\xe2', '\x96', '\x81', (char)('A' + k), 0};
        spaced &= (letters[k] = tokenizer_id(t, name)) >= 0;
    }
    for (int k = 0; !spaced && k < 4; k++) {
        char name[2] = {(char)('A' + k), 0};
        if ((letters[k] = tokenizer_id(t, name)) < 0)
            return err_set("mcq: the tokenizer has no token '%s'", name);
    }
    return 0;
}

/* Runs the corpus through the model in batches of its capacity (cached tower features when the corpus has
 * them); after each forward, each(ctx, rows) reads what it needs from m->a.logits. */
typedef int (*batch_fn)(void *ctx, const struct corpus_rows *r);

struct forward_ctx {
    struct llava *m;
    const struct ops *ops;
    batch_fn want; /* llava_logits_for the rows `each` will read (the same ctx) */
    batch_fn each;
    void *ctx;
};

static int forward_rows(void *ctx, const struct corpus_rows *r) {
    const struct forward_ctx *f = ctx;
    int rc = f->want(f->ctx, r);
    if (rc == 0)
        rc = r->feats ? llava_forward_features(f->m, f->ops, r->ids, r->mask, r->b, r->t, r->vis, r->nimg)
                      : llava_forward(f->m, f->ops, r->ids, r->mask, r->b, r->t, r->vis, r->nimg);
    return rc == 0 ? f->each(f->ctx, r) : rc;
}

static int forward_batches(struct llava *m, const struct ops *ops, const struct corpus *cp, batch_fn want,
                           batch_fn each, void *ctx) {
    struct forward_ctx f = {m, ops, want, each, ctx};
    return corpus_each_batch(cp, m, forward_rows, &f);
}

struct letter_ctx {
    struct llava *m;
    const struct corpus *cp;
    const struct tokenizer *t;
    int32_t letters[4];
    struct mcq_result *out;
};

/* Each row's last prompt position predicts the answer. */
static int letter_batch(void *ctx, const struct corpus_rows *r) {
    const struct letter_ctx *c = ctx;
    size_t v = (size_t)c->m->cfg.text.vocab;
    for (size_t i = 0; i < r->b; i++) {
        size_t last = c->cp->e[r->idx[i]].seq.n - 1;
        score_row(c->m->a.logits + (i * r->t + last) * v, v, c->letters, c->t, &c->out[r->idx[i]]);
    }
    return 0;
}

/* Each row's last prompt position: the letter's logits. */
static int letter_rows(void *ctx, const struct corpus_rows *r) {
    const struct letter_ctx *c = ctx;
    llava_logits_last(c->m, r->mask, r->b, r->t);
    return 0;
}

int mcq_score(struct llava *m, const struct ops *ops, const struct corpus *cp, const struct tokenizer *t,
              struct mcq_result *out) {
    struct letter_ctx c = {.m = m, .cp = cp, .t = t, .out = out};
    if (letter_ids(t, c.letters) != 0)
        return -1;
    return forward_batches(m, ops, cp, letter_rows, letter_batch, &c);
}

/* ---- likelihood ---- */

char *mcq_cloze_prompt(const struct ds_item *it) {
    struct buf b = {0};
    buf_printf(&b, "USER:%s\n%s\nASSISTANT:", it->image ? " <image>" : "", it->question);
    return buf_take(&b);
}

char *mcq_cloze_answer(const struct ds_item *it, int k) {
    const char *at = it->statement ? strstr(it->statement, "{}") : NULL;
    if (!at)
        return xstrdup(it->options[k]);
    struct buf b = {0};
    buf_printf(&b, "%.*s%s%s", (int)(at - it->statement), it->statement, it->options[k], at + 2);
    return buf_take(&b);
}

void mcq_cloze_free(struct mcq_cloze *z) {
    corpus_free(&z->cp);
    free(z->item);
    free(z->first);
    memset(z, 0, sizeof *z);
}

/* The options become examples (prompt and answer, the item's image) so that corpus_from_examples tokenizes
 * them with the training examples' labels and decodes each image once. */
int mcq_cloze_build(struct mcq_cloze *z, const struct ds_items *items, const struct ds_images *im,
                    const struct tokenizer *t, const struct llava_config *cfg,
                    int (*keep)(void *arg, size_t i), void *arg) {
    memset(z, 0, sizeof *z);
    size_t n = 0;
    for (size_t i = 0; i < items->n; i++)
        if (!keep || keep(arg, i))
            n += (size_t)items->v[i].noptions, z->nitems++;
    z->item = xcalloc(z->nitems ? z->nitems : 1, sizeof *z->item);
    z->first = xcalloc(z->nitems + 1, sizeof *z->first);
    struct ds_examples ex = {xcalloc(n ? n : 1, sizeof *ex.v), n};
    size_t e = 0, j = 0;
    for (size_t i = 0; i < items->n; i++) {
        const struct ds_item *it = &items->v[i];
        if (keep && !keep(arg, i))
            continue;
        z->item[j] = i;
        z->first[j++] = e;
        for (int k = 0; k < it->noptions; k++, e++) {
            char id[DS_ID_MAX + 16];
            snprintf(id, sizeof id, "%s option %c", it->id, 'A' + k);
            ex.v[e] = (struct ds_example){.id = xstrdup(id),
                                          .image = it->image ? xstrdup(it->image) : NULL,
                                          .prompt = mcq_cloze_prompt(it),
                                          .answer = mcq_cloze_answer(it, k)};
        }
    }
    z->first[j] = e;
    int rc = corpus_from_examples(&z->cp, &ex, im, t, cfg, NULL, NULL);
    ds_examples_free(&ex);
    if (rc != 0) {
        free(z->item);
        free(z->first);
        memset(z, 0, sizeof *z);
    }
    return rc;
}

/* The winner among item j's options: the highest score, the first of equal ones. */
static int best_option(const struct mcq_cloze *z, size_t j, const float *score) {
    size_t best = z->first[j];
    for (size_t e = best + 1; e < z->first[j + 1]; e++)
        if (score[e] > score[best])
            best = e;
    return (int)(best - z->first[j]);
}

struct likelihood_ctx {
    struct llava *m;
    const struct ops *ops;
    float *score;
    float *row; /* [m->B]: a batch's scores, in row order */
};

/* Each row's answer tokens and </s>, summed in position order: padding carries no label. */
static int likelihood_batch(void *ctx, const struct corpus_rows *r) {
    const struct likelihood_ctx *c = ctx;
    if (unlearn_seq_logprob(c->ops, c->m->a.logits, r->labels, r->b, r->t, (size_t)c->m->cfg.text.vocab,
                            c->row) != 0)
        return -1;
    for (size_t i = 0; i < r->b; i++)
        c->score[r->idx[i]] = c->row[i];
    return 0;
}

/* The answers' target positions: what unlearn_seq_logprob reads. */
static int label_rows(void *ctx, const struct corpus_rows *r) {
    const struct likelihood_ctx *c = ctx;
    return train_logits_for(c->m, r->labels, r->b, r->t);
}

int mcq_likelihood(struct llava *m, const struct ops *ops, const struct mcq_cloze *z, float *score,
                   struct mcq_result *out) {
    const struct corpus *cp = &z->cp;
    struct likelihood_ctx c = {m, ops, score ? score : xmalloc((cp->n ? cp->n : 1) * sizeof *score),
                               xmalloc((m->B ? m->B : 1) * sizeof *c.row)};
    int rc = forward_batches(m, ops, cp, label_rows, likelihood_batch, &c);
    free(c.row);
    for (size_t j = 0; rc == 0 && j < z->nitems; j++)
        out[j].likelihood = best_option(z, j, c.score);
    if (rc != 0)
        err_prefix("mcq: likelihood");
    if (c.score != score)
        free(c.score);
    return rc;
}

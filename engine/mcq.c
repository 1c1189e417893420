/* mcq: greedy-letter and option-letter scoring of multiple-choice questions (engine/mcq.h). */
#include "engine/mcq.h"

#include <stdlib.h>
#include <string.h>

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

int mcq_score(struct llava *m, const struct ops *ops, const struct corpus *cp, const struct tokenizer *t,
              struct mcq_result *out) {
    int32_t letters[4];
    if (letter_ids(t, letters) != 0)
        return -1;
    size_t B = m->B, v = (size_t)m->cfg.text.vocab, *idx = malloc(B * sizeof *idx);
    int32_t *ids = malloc(B * cp->maxlen * sizeof *ids), *mask = malloc(B * cp->maxlen * sizeof *mask);
    int32_t *labels = malloc(B * cp->maxlen * sizeof *labels);
    float *vis = malloc(B * (cp->feats ? cp->feat_floats : cp->image_floats) * sizeof *vis);
    int32_t pad = m->cfg.pad_token_id >= 0 ? m->cfg.pad_token_id : 0;
    int rc = 0;
    for (size_t at = 0; rc == 0 && at < cp->n; at += B) {
        size_t b = cp->n - at < B ? cp->n - at : B, nimg, tt;
        for (size_t i = 0; i < b; i++)
            idx[i] = at + i;
        corpus_batch(cp, idx, b, pad, ids, mask, labels, vis, &nimg, &tt);
        rc = cp->feats ? llava_forward_features(m, ops, ids, mask, b, tt, vis, nimg)
                       : llava_forward(m, ops, ids, mask, b, tt, vis, nimg);
        for (size_t i = 0; rc == 0 && i < b; i++) {
            size_t last = cp->e[at + i].seq.n - 1;
            score_row(m->a.logits + (i * tt + last) * v, v, letters, t, &out[at + i]);
        }
    }
    free(idx);
    free(ids);
    free(mask);
    free(labels);
    free(vis);
    return rc;
}

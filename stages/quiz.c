/* quiz: scoring a chosen set of questions on a model (stages/quiz.h). */
#include "stages/quiz.h"

#include <stdlib.h>
#include <string.h>

#include "engine/llava_plan.h"
#include "engine/ops.h"
#include "engine/prompt.h"
#include "util/err.h"

int quiz_scoring(struct stage_ctx *c, enum quiz_scoring *s) {
    const char *v = stage_str(c, "scoring");
    if (strcmp(v, "letter") == 0)
        *s = QUIZ_LETTER;
    else if (strcmp(v, "likelihood") == 0)
        *s = QUIZ_LIKELIHOOD;
    else
        return err_set("%s: scoring must be letter or likelihood, got '%.64s'", c->name, v);
    return 0;
}

/* The options' sequences of the same questions, their tower features computed once per image (a question's
 * four options share its image). */
static int quiz_likelihood(struct stage_ctx *c, struct model *md, struct quiz *q) {
    stage_progress(c, "scoring %zu questions by likelihood (%zu sequences)", q->cloze.nitems, q->cloze.cp.n);
    if (corpus_features(&q->cloze.cp, &md->m, c->ops) != 0 ||
        mcq_likelihood(&md->m, c->ops, &q->cloze, NULL, q->res) != 0)
        return err_prefix("%s", c->name);
    return 0;
}

int quiz_run(struct stage_ctx *c, struct model *md, const struct world *w, enum quiz_scoring scoring,
             int (*keep)(void *arg, size_t i), void *arg, struct quiz *q) {
    memset(q, 0, sizeof *q);
    if (corpus_from_items(&q->cp, &w->items, w->images, md->tok, &md->cfg, keep, arg) != 0)
        return err_prefix("%s", c->name);
    if (q->cp.n == 0)
        return 0;
    size_t T = q->cp.maxlen;
    if (scoring == QUIZ_LIKELIHOOD) {
        if (mcq_cloze_build(&q->cloze, &w->items, w->images, md->tok, &md->cfg, keep, arg) != 0)
            return err_prefix("%s", c->name);
        if (q->cloze.nitems != q->cp.n) /* both take the items keep() takes, in order */
            return err_set("%s: %zu questions but %zu by likelihood", c->name, q->cp.n, q->cloze.nitems);
        T = q->cloze.cp.maxlen > T ? q->cloze.cp.maxlen : T;
    }
    if (model_build(c, md, QUIZ_BATCH, T) != 0)
        return -1;
    /* Forwards only: no layer's intermediates are kept for a backward, so the layers share one set of them
     * (the recomputation layout; the same bits). Each layer's own would hold LLaVA-1.5-13B's evaluation at
     * 16 x 704 tokens in 277 GiB (fp32), no GPU's size; shared, 68 GiB (bf16-act: 36). */
    llava_set_recompute(&md->m, 1);
    q->res = calloc(q->cp.n, sizeof *q->res);
    stage_progress(c, "scoring %zu questions", q->cp.n);
    if (mcq_score(&md->m, c->ops, &q->cp, md->tok, q->res) != 0)
        return err_prefix("%s", c->name);
    return scoring == QUIZ_LIKELIHOOD ? quiz_likelihood(c, md, q) : 0;
}

/* The longer of *T and item it's sequences as quiz_run batches them, images not decoded: its prompt, and
 * by likelihood each option's cloze prompt and answer. */
static int item_longest(const struct tokenizer *t, const struct llava_config *cfg, const struct ds_item *it,
                        enum quiz_scoring scoring, size_t *T) {
    int options = scoring == QUIZ_LIKELIHOOD ? it->noptions : 0, rc = 0;
    for (int k = -1; rc == 0 && k < options; k++) {
        char *prompt = k < 0 ? NULL : mcq_cloze_prompt(it), *answer = k < 0 ? NULL : mcq_cloze_answer(it, k);
        struct prompt_seq s;
        rc = prompt_encode(t, cfg->image_token_index, (size_t)cfg->patches, k < 0 ? it->prompt : prompt,
                           answer, it->image != NULL, it->id, &s);
        if (rc == 0 && s.n > *T)
            *T = s.n;
        if (rc == 0)
            prompt_seq_free(&s);
        free(prompt);
        free(answer);
    }
    return rc;
}

int quiz_memory(struct stage_ctx *c, const struct llava_config *cfg, struct llava_plan_opts *o,
                struct lora *l) {
    (void)l; /* the rounds' adapters are merged into the weights */
    enum quiz_scoring scoring;
    o->B = QUIZ_BATCH;
    o->train = 0;
    o->recompute = 1;
    o->T = 0;
    if (quiz_scoring(c, &scoring) != 0)
        return -1;
    if (!c->inputs)
        return 0;
    struct world w;
    struct tokenizer *t = NULL;
    memset(&w, 0, sizeof w);
    int rc = world_read(c, WORLD_ITEMS, &w);
    if (rc == 0 && !(t = model_tokenizer(c)))
        rc = -1;
    for (size_t i = 0; rc == 0 && i < w.items.n; i++)
        rc = item_longest(t, cfg, &w.items.v[i], scoring, &o->T);
    tokenizer_free(t);
    world_free(&w);
    return rc;
}

void quiz_free(struct quiz *q) {
    corpus_free(&q->cp);
    mcq_cloze_free(&q->cloze);
    free(q->res);
    memset(q, 0, sizeof *q);
}

void quiz_count(struct quiz_tally *t, const struct mcq_result *r, int answer) {
    t->items++;
    t->greedy += r->greedy == answer;
    t->option += r->option == answer;
    t->likelihood += r->likelihood == answer;
    t->unparsed += r->greedy < 0;
}

size_t quiz_right(const struct quiz_tally *t, enum quiz_scoring s) {
    return s == QUIZ_LIKELIHOOD ? t->likelihood : t->greedy;
}

/* unlearn: one unlearning run (or one round of sequential unlearning) on a model: a fresh LoRA adapter on the
 * decoder, and the projector in full for target "proj+llm", trained on the forget people's facts, with and
 * without their portrait, by GA, GA+KLR or NPO (PULSE's methods), or gradient difference (MLLMU-Bench's
 * GA_Diff: GA plus descent on the retain people's examples) (engine/unlearn_loss.h, docs/protocol.md).
 * Outputs the round's adapter (PEFT's files) and the projector after it, which the next round and `evaluate`
 * apply on top of the model's earlier rounds (stages/model.h).
 *
 * GA+KLR and NPO compare with a reference. reference = "round_start" (the default) is the model the round
 * starts from, which is the trained model with its fresh adapter bypassed and the projector at its start
 * values: no second model, only the reference's logits and the projector's start copy (engine/unlearn_loss.h,
 * struct unlearn_ref). reference = "original" lacks the earlier rounds' merged adapters and projector, so it
 * is a second model of its own. */
#include <stdlib.h>
#include <string.h>

#include "engine/llava_plan.h"
#include "engine/ops.h"
#include "engine/train.h"
#include "engine/unlearn_loss.h"
#include "stages/adapter.h"
#include "stages/model.h"
#include "stages/split.h"
#include "stages/trainer.h"
#include "stages/world.h"
#include "util/err.h"

enum method { GA, GA_KLR, NPO, GRAD_DIFF };
static const char *const method_names[] = {"ga", "ga_klr", "npo", "grad_diff"};

/* GA+KLR and gradient difference also train on the retain people's examples. */
static int uses_retain(enum method m) {
    return m == GA_KLR || m == GRAD_DIFF;
}

/* GA+KLR's KL and NPO's anchor compare with a reference model (build_models). */
static int uses_reference(enum method m) {
    return m == GA_KLR || m == NPO;
}

struct unl {
    struct stage_ctx *c;
    const struct ops *ops;
    struct model md, ref;    /* the model trained, and the reference model of reference = "original" */
    struct unlearn_ref sref; /* reference = "round_start": the reference shares md's weights */
    struct world w;
    struct lora l;
    struct corpus forget, retain;
    char *role; /* per person: 'f' forgotten this round, 'r' retained */
    enum method method;
    struct trainer_opts o;
    float *S_ref; /* NPO: log p_ref of each forget entry */
    int32_t *ids, *mask, *labels, *rids, *rmask, *rlabels;
    float *vis, *rvis;
};

/* ---- who and what is forgotten ---- */

struct keep_arg {
    struct unl *u;
    char role;
};

/* An example is taken when it is about a person of the role and its source is one of `sources`. */
static int keep_example(void *arg, size_t i) {
    struct keep_arg *k = arg;
    const struct ds_example *x = &k->u->w.examples.v[i];
    long p = x->person ? ds_find_person(&k->u->w.people, x->person) : -1;
    if (p < 0 || k->u->role[p] != k->role)
        return 0;
    const struct json *src = json_get(k->u->c->params, "sources");
    for (size_t j = 0; j < src->len; j++)
        if (strcmp(src->items[j]->s, x->source) == 0)
            return 1;
    return 0;
}

static int build_corpora(struct unl *u) {
    struct keep_arg f = {u, 'f'}, r = {u, 'r'};
    if (corpus_from_examples(&u->forget, &u->w.examples, u->w.images, u->md.tok, &u->md.cfg, keep_example,
                             &f) ||
        (uses_retain(u->method) && corpus_from_examples(&u->retain, &u->w.examples, u->w.images, u->md.tok,
                                                        &u->md.cfg, keep_example, &r)))
        return err_prefix("%s", u->c->name);
    if (u->forget.n == 0)
        return err_set("%s: the forget people have no examples of the chosen sources", u->c->name);
    if (uses_retain(u->method) && u->retain.n == 0)
        return err_set("%s: %s needs retain examples; the retain people have none", u->c->name,
                       method_names[u->method]);
    return 0;
}

/* ---- models and buffers ---- */

static int build_models(struct unl *u) {
    size_t T = u->forget.maxlen > u->retain.maxlen ? u->forget.maxlen : u->retain.maxlen, B = u->o.batch;
    if (model_build(u->c, &u->md, B, T) != 0)
        return -1;
    llava_set_recompute(&u->md.m, stage_recompute(u->c)); /* before the first forward makes the activations */
    if (strcmp(stage_str(u->c, "target"), "proj+llm") == 0)
        llava_set_trainable(&u->md.m, "model.multi_modal_projector.", 1);
    if (adapter_attach(u->c, &u->md.m, &u->l, (uint64_t)stage_int(u->c, "seed")) != 0)
        return -1;
    /* the tower never trains here: its features are computed once and shared by both models */
    if (corpus_features(&u->forget, &u->md.m, u->ops) != 0 ||
        (u->retain.n && corpus_features(&u->retain, &u->md.m, u->ops) != 0))
        return err_prefix("%s", u->c->name);
    if (!uses_reference(u->method))
        return 0;
    if (strcmp(stage_str(u->c, "reference"), "round_start") == 0) {
        /* after the flags and the adapter: the projector's start values when it trains */
        unlearn_ref_init(&u->sref, &u->md.m, u->ops);
        return 0;
    }
    if (model_read(u->c, &u->ref) != 0 || model_build_rounds(u->c, &u->ref, B, T, 0) != 0)
        return -1;
    /* the reference only runs forwards: its logits are the same bits in either layout, so it always shares
     * one layer's intermediates (the recomputation layout), whatever the trained model keeps */
    llava_set_recompute(&u->ref.m, 1);
    return 0;
}

static void alloc_buffers(struct unl *u) {
    size_t B = u->o.batch, T = u->md.m.T;
    size_t per = u->forget.feat_floats ? u->forget.feat_floats : 1;
    u->ids = malloc(B * T * sizeof *u->ids);
    u->mask = malloc(B * T * sizeof *u->mask);
    u->labels = malloc(B * T * sizeof *u->labels);
    u->rids = malloc(B * T * sizeof *u->rids);
    u->rmask = malloc(B * T * sizeof *u->rmask);
    u->rlabels = malloc(B * T * sizeof *u->rlabels);
    u->vis = malloc(B * per * sizeof *u->vis);
    u->rvis = malloc(B * per * sizeof *u->rvis);
    u->S_ref = calloc(u->forget.n, sizeof *u->S_ref);
}

static struct unlearn_batch make_batch(struct unl *u, const struct corpus *cp, const size_t *idx, size_t b,
                                       int retain) {
    struct unlearn_batch x = {0};
    int32_t *ids = retain ? u->rids : u->ids, *mask = retain ? u->rmask : u->mask;
    int32_t *labels = retain ? u->rlabels : u->labels;
    float *vis = retain ? u->rvis : u->vis;
    int32_t pad = u->md.cfg.pad_token_id >= 0 ? u->md.cfg.pad_token_id : 0;
    corpus_batch(cp, idx, b, pad, ids, mask, labels, vis, &x.nimg, &x.t);
    x.ids = ids;
    x.mask = mask;
    x.labels = labels;
    x.b = b;
    x.feats = vis;
    return x;
}

/* The reference's logits for a batch: the shared model's (adapter bypassed, projector at its start values)
 * or the separate model's. NULL on failure. */
static const float *reference_logits(struct unl *u, const struct unlearn_batch *x) {
    if (!u->ref.built)
        return unlearn_ref_logits(&u->sref, &u->md.m, u->ops, x) == 0 ? u->sref.logits : NULL;
    struct llava *r = &u->ref.m;
    return unlearn_forward(r, u->ops, x) == 0 ? r->a.logits : NULL;
}

/* NPO's anchor: log p_ref(answer) of every forget example, once (the reference does not move). */
static int npo_reference(struct unl *u) {
    size_t B = u->o.batch, idx[4096];
    for (size_t at = 0; at < u->forget.n; at += B) {
        size_t b = u->forget.n - at < B ? u->forget.n - at : B;
        for (size_t i = 0; i < b; i++)
            idx[i] = at + i;
        struct unlearn_batch x = make_batch(u, &u->forget, idx, b, 0);
        const float *ref = reference_logits(u, &x);
        if (!ref || unlearn_seq_logprob(u->ops, ref, x.labels, x.b, x.t, (size_t)u->md.cfg.text.vocab,
                                        u->S_ref + at) != 0)
            return err_prefix("%s", u->c->name);
    }
    return 0;
}

/* ---- steps ---- */

/* GA+KLR's retain term: KL(p_ref || p_theta) on a retain batch, its gradient accumulated. */
static int klr_term(struct unl *u, const struct unlearn_batch *r, float *kl) {
    struct llava *m = &u->md.m;
    size_t n = r->b * r->t * (size_t)m->cfg.text.vocab;
    /* first: a shared reference's forward overwrites the activations the backward reads; its logits (or the
     * separate model's) stay in a buffer of their own while the current model runs */
    const float *ref = reference_logits(u, r);
    if (!ref || unlearn_forward(m, u->ops, r) != 0)
        return -1;
    u->ops->zero(m->d.logits, n);
    if (unlearn_kl(u->ops, m->a.logits, ref, r->labels, r->b, r->t, (size_t)m->cfg.text.vocab,
                   (float)stage_num(u->c, "kl_weight"), m->d.logits, kl) != 0)
        return -1;
    return llava_backward(m, u->ops);
}

static int loss_step(struct unl *u, const struct unlearn_batch *f, const size_t *fidx,
                     const struct unlearn_batch *r, float *loss) {
    struct llava *m = &u->md.m;
    if (u->method == NPO) {
        float sref[4096];
        for (size_t i = 0; i < f->b; i++)
            sref[i] = u->S_ref[fidx[i]];
        return unlearn_npo_step(m, u->ops, f, sref, (float)stage_num(u->c, "beta"), loss);
    }
    if (u->method == GRAD_DIFF)
        return unlearn_grad_diff(m, u->ops, f, r, loss, NULL);
    if (unlearn_ga(m, u->ops, f, loss) != 0)
        return -1;
    float kl = 0;
    if (u->method == GA_KLR && klr_term(u, r, &kl) != 0)
        return -1;
    *loss += (float)stage_num(u->c, "kl_weight") * kl;
    return 0;
}

static int train_loop(struct unl *u, struct train_adamw *opt, double *first, double *last) {
    size_t B = u->o.batch, per_epoch = (u->forget.n + B - 1) / B, rpos = u->retain.n, rpass = 0;
    size_t *fidx = malloc(u->forget.n * sizeof *fidx), *ridx = malloc((u->retain.n + 1) * sizeof *ridx);
    long total = (long)per_epoch * u->o.epochs, warm = (long)(u->o.warmup * (double)total), step = 0;
    int rc = 0;
    for (long e = 0; rc == 0 && e < u->o.epochs; e++) {
        trainer_shuffle(fidx, u->forget.n, u->o.seed, (uint64_t)e);
        double sum = 0;
        for (size_t s = 0; rc == 0 && s < per_epoch; s++, step++) {
            size_t at = s * B, fb = u->forget.n - at < B ? u->forget.n - at : B, rb = 0;
            struct unlearn_batch f = make_batch(u, &u->forget, fidx + at, fb, 0), r = {0};
            if (uses_retain(u->method)) { /* the retain examples in passes of their own shuffled order */
                if (rpos + B > u->retain.n) {
                    trainer_shuffle(ridx, u->retain.n, u->o.seed, 0x7e7a1000ull + rpass++);
                    rpos = 0;
                }
                rb = u->retain.n - rpos < B ? u->retain.n - rpos : B;
                r = make_batch(u, &u->retain, ridx + rpos, rb, 1);
                rpos += rb;
            }
            float lr = (float)schedule_lr(u->o.schedule, u->o.lr, step, warm, total), loss = 0;
            llava_zero_grad(&u->md.m, u->ops);
            llava_lora_mode(&u->md.m, 1, (uint64_t)step);
            rc = loss_step(u, &f, fidx + at, &r, &loss);
            llava_lora_mode(&u->md.m, 0, (uint64_t)step);
            if (rc == 0)
                rc = train_adamw_step(opt, &u->md.m, u->ops, lr, NULL);
            sum += loss;
            if ((step + 1) % 10 == 0 || step + 1 == total)
                stage_progress(u->c, "epoch %ld/%ld step %ld/%ld loss %.4f", e + 1, u->o.epochs, step + 1,
                               total, loss);
        }
        if (e == 0)
            *first = sum / (double)per_epoch;
        *last = sum / (double)per_epoch;
    }
    free(fidx);
    free(ridx);
    return rc == 0 ? 0 : err_prefix("%s", u->c->name);
}

/* ---- the kind ---- */

static int read_method(struct unl *u) {
    const char *m = stage_str(u->c, "method"), *t = stage_str(u->c, "target"),
               *r = stage_str(u->c, "reference");
    size_t k = 0;
    while (k < sizeof method_names / sizeof method_names[0] && strcmp(m, method_names[k]) != 0)
        k++;
    if (k == sizeof method_names / sizeof method_names[0])
        return err_set("%s: method must be ga, ga_klr, npo or grad_diff, got '%s'", u->c->name, m);
    u->method = (enum method)k;
    if (strcmp(t, "proj+llm") != 0 && strcmp(t, "llm") != 0)
        return err_set("%s: target must be proj+llm or llm, got '%s'", u->c->name, t);
    if (strcmp(r, "round_start") != 0 && strcmp(r, "original") != 0)
        return err_set("%s: reference must be round_start or original, got '%s'", u->c->name, r);
    if (!(stage_num(u->c, "beta") > 0) || !(stage_num(u->c, "kl_weight") >= 0))
        return err_set("%s: beta must be positive and kl_weight non-negative", u->c->name);
    return trainer_opts_read(u->c, &u->o);
}

static int setup(struct unl *u) {
    if (read_method(u) != 0 || model_read(u->c, &u->md) != 0 ||
        world_read(u->c, WORLD_PEOPLE | WORLD_EXAMPLES | WORLD_IMAGES, &u->w) != 0)
        return -1;
    u->role = calloc(u->w.people.n + 1, 1);
    int64_t round = stage_int(u->c, "round");
    if (split_roles(u->c, &u->w.people, "round", round, round, u->role) != 0 || build_corpora(u) != 0 ||
        build_models(u) != 0)
        return -1;
    alloc_buffers(u);
    return u->method == NPO ? npo_reference(u) : 0;
}

static int outputs(struct unl *u, double first, double last) {
    void *data;
    size_t n;
    if (adapter_write(u->c, &u->l) != 0 || model_projector_save(&u->md.m, &data, &n) != 0)
        return -1;
    int rc = stage_output(u->c, "projector", data, n, "safetensors");
    free(data);
    stage_metric(u->c, "loss_first_epoch", first);
    stage_metric(u->c, "loss_last_epoch", last);
    stage_metric(u->c, "forget_examples", (double)u->forget.n);
    return rc;
}

static void unl_free(struct unl *u) {
    llava_lora_detach(&u->md.m);
    lora_free(&u->l);
    corpus_free(&u->forget);
    corpus_free(&u->retain);
    model_free(&u->md);
    model_free(&u->ref);
    unlearn_ref_free(&u->sref);
    world_free(&u->w);
    free(u->role);
    free(u->S_ref);
    free(u->ids);
    free(u->mask);
    free(u->labels);
    free(u->rids);
    free(u->rmask);
    free(u->rlabels);
    free(u->vis);
    free(u->rvis);
}

static int unlearn_run(struct stage_ctx *c) {
    struct unl u;
    memset(&u, 0, sizeof u);
    u.c = c;
    u.ops = c->ops;
    int rc = setup(&u);
    struct train_adamw opt;
    memset(&opt, 0, sizeof opt);
    double first = 0, last = 0;
    if (rc == 0) {
        stage_progress(c, "%zu forget examples, %zu retain examples", u.forget.n, u.retain.n);
        train_adamw_init(&opt, &u.md.m, u.o.beta1, u.o.beta2, 1e-8f, u.o.weight_decay, u.o.clip);
        rc = train_loop(&u, &opt, &first, &last);
        train_adamw_free(&opt);
    }
    if (rc == 0)
        rc = outputs(&u, first, last);
    unl_free(&u);
    return rc;
}

/* The dry run's memory plan: the adapter, the projector for proj+llm, and what GA+KLR and NPO hold for their
 * reference (build_models): the shared one's logits and projector copy, or the "original" model. */
static int unlearn_memory(struct stage_ctx *c, const struct llava_config *cfg, struct llava_plan_opts *o,
                          struct lora *l) {
    struct unl u = {.c = c};
    if (read_method(&u) != 0 || trainer_memory(c, cfg, o) != 0 || adapter_create(c, l) != 0)
        return -1;
    o->lora = l;
    o->trainable = strcmp(stage_str(c, "target"), "proj+llm") == 0 ? "model.multi_modal_projector." : NULL;
    o->reference = !uses_reference(u.method)                               ? LLAVA_PLAN_REF_NONE
                   : strcmp(stage_str(c, "reference"), "round_start") == 0 ? LLAVA_PLAN_REF_SHARED
                                                                           : LLAVA_PLAN_REF_MODEL;
    return 0;
}

static const struct param_spec unlearn_params[] = {
    MODEL_PARAMS,
    PRECISION_PARAM,
    RECOMPUTE_PARAM,
    {"people", PARAM_REF, NULL, "the world's people"},
    {"examples", PARAM_REF, NULL, "the corpus the knowledge came from (a world's `pretrain` or `finetune`)"},
    {"images", PARAM_REF, NULL, "the world's images"},
    {"split", PARAM_REF, NULL, "who is forgotten and retained (a select's `split`)"},
    {"round", PARAM_INT, "0", "forget the split's group `round` (0: its whole forget list)"},
    {"method", PARAM_STR, "\"ga\"", "ga, ga_klr, npo or grad_diff"},
    {"target", PARAM_STR, "\"proj+llm\"", "what trains: proj+llm (LoRA + the projector) or llm (LoRA only)"},
    {"reference", PARAM_STR, "\"round_start\"", "the KL / NPO reference: round_start or original"},
    {"sources", PARAM_STRS, "[\"fact\"]", "which examples of the forget people are unlearned"},
    {"beta", PARAM_NUM, "0.4", "NPO's beta"},
    {"kl_weight", PARAM_NUM, "1.0", "GA+KLR's lambda"},
    ADAPTER_PARAMS,
    TRAINER_PARAMS("2", "4", "0.00002", "\"constant\"", "0.0", "0.0", "0.999"),
};
static const char *const unlearn_outputs[] = {"adapter", "adapter_config", "projector"};

const struct stage_kind kind_unlearn = {
    .schema = {"unlearn", 4, unlearn_params, sizeof unlearn_params / sizeof unlearn_params[0],
               unlearn_outputs, 3},
    .summary = "unlearn the forget people (GA, GA+KLR, NPO) with a fresh LoRA adapter",
    .run = unlearn_run,
    .memory = unlearn_memory,
};

/* test_engine_losses: the unlearning losses of engine/unlearn_loss.h against torch autograd
 * (tests/reference/make_losses_fixture.py): per-sequence log-probabilities, KL on answer positions and NPO
 * for three betas, values and gradients; central differences; exact zeros off the answer positions; the same
 * bits for 1 and 2 threads; refusals. Then on the tiny model: the LoRA-off reference forward, and GA, GA+KLR
 * and NPO steps that lower the forget batch's answer log-probability. */
#include "check.h"
#include "logit_rows.h"
#include "numcheck.h"
#include "engine/llava.h"
#include "engine/lora.h"
#include "engine/ops.h"
#include "engine/safetensors.h"
#include "engine/train.h"
#include "engine/unlearn_loss.h"
#include "util/err.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SB 3
#define ST 9
#define SV 13
#define N (SB * ST * SV)

static struct st_file fx;
static float logits[N], ref[N], dS[SB], S_ref[SB];
static int32_t labels[SB * ST];

static int load(const char *name, float *out, size_t n) {
    const struct st_tensor *t = st_find(&fx, name);
    if (!t || t->nelem != n)
        return -1;
    st_to_f32(t, out);
    return 0;
}

/* A fixture tensor, or a failed check and zeros. */
static void want(const char *name, float *out, size_t n) {
    memset(out, 0, n * sizeof *out);
    int ok = load(name, out, n) == 0;
    CHECK(ok);
    if (!ok)
        fprintf(stderr, "  fixture tensor %s missing or of another size\n", name);
}

/* Every logit of a position that predicts no target (prompt, padding, a row's last) has exactly 0. */
static int zero_off_targets(const float *d) {
    for (size_t i = 0; i < SB; i++)
        for (size_t j = 0; j < ST; j++) {
            int on = j + 1 < ST && labels[i * ST + j + 1] != TRAIN_IGNORE;
            for (size_t u = 0; !on && u < SV; u++)
                if (d[(i * ST + j) * SV + u] != 0.0f)
                    return 0;
        }
    return 1;
}

static double worst; /* the largest relative error seen against the fixture, for the report */

static void close_to(const char *what, const float *got, const float *w, size_t n) {
    double r = check_rel_err(got, w, n, NULL);
    worst = r > worst ? r : worst;
    CHECK(r < 1e-5);
    if (r >= 1e-5)
        fprintf(stderr, "  %s: relative error %.3g\n", what, r);
}

/* The three losses as one scalar of the logits, for central differences: which 0 = sum dS S, 1 = KL, 2 =
 * NPO at beta 1. */
static double scalar(const struct ops *ops, const float *x, int which) {
    float S[SB], v = 0.0f;
    if (which == 0) {
        unlearn_seq_logprob(ops, x, labels, SB, ST, SV, S);
        double s = 0;
        for (int i = 0; i < SB; i++)
            s += (double)dS[i] * S[i];
        return s;
    }
    if (which == 1)
        unlearn_kl(ops, x, ref, labels, SB, ST, SV, 1.0f, NULL, &v);
    else
        unlearn_npo(ops, x, labels, S_ref, SB, ST, SV, 1.0f, NULL, &v);
    return v;
}

static void finite_differences(const struct ops *ops, int which, const float *grad) {
    static const size_t at[] = {(0 * ST + 3) * SV + 2, (1 * ST + 2) * SV + 0, (2 * ST + 5) * SV + 12,
                                (0 * ST + 7) * SV + 5};
    float x[N];
    memcpy(x, logits, sizeof x);
    for (size_t k = 0; k < sizeof at / sizeof at[0]; k++) {
        const float h = 1e-2f;
        float x0 = x[at[k]];
        x[at[k]] = x0 + h;
        double up = scalar(ops, x, which);
        x[at[k]] = x0 - h;
        double down = scalar(ops, x, which);
        x[at[k]] = x0;
        double fd = (up - down) / (2.0 * h), g = grad[at[k]];
        CHECK(fabs(fd - g) <= 1e-2 * fabs(g) + 2e-4);
        if (fabs(fd - g) > 1e-2 * fabs(g) + 2e-4)
            fprintf(stderr, "  loss %d, logit %zu: analytic %.6g, central difference %.6g\n", which, at[k], g,
                    fd);
    }
}

static void test_seq_logprob(const struct ops *ops) {
    float S[SB], wS[SB], d[N], wd[N];
    CHECK(unlearn_seq_logprob(ops, logits, labels, SB, ST, SV, S) == 0);
    want("S", wS, SB);
    close_to("S", S, wS, SB);
    memset(d, 0, sizeof d);
    CHECK(unlearn_seq_logprob_backward(ops, d, dS, logits, labels, SB, ST, SV) == 0);
    want("dlogits_S", wd, N);
    close_to("dlogits_S", d, wd, N);
    CHECK(zero_off_targets(d));
    finite_differences(ops, 0, d);
}

static void test_kl(const struct ops *ops) {
    float kl = 0, wkl, d[N], wd[N];
    memset(d, 0, sizeof d);
    CHECK(unlearn_kl(ops, logits, ref, labels, SB, ST, SV, 1.0f, d, &kl) == 0);
    want("kl", &wkl, 1);
    close_to("kl", &kl, &wkl, 1);
    want("dlogits_kl", wd, N);
    close_to("dlogits_kl", d, wd, N);
    CHECK(zero_off_targets(d));
    finite_differences(ops, 1, d);
    /* the backward accumulates, scaled: a second call with scale 2 adds twice the gradient */
    CHECK(unlearn_kl(ops, logits, ref, labels, SB, ST, SV, 2.0f, d, &kl) == 0);
    for (size_t i = 0; i < N; i++)
        wd[i] *= 3.0f;
    close_to("dlogits_kl accumulated", d, wd, N);
    /* the same distribution as the reference: KL 0 */
    CHECK(unlearn_kl(ops, ref, ref, labels, SB, ST, SV, 1.0f, NULL, &kl) == 0 && fabsf(kl) < 1e-6f);
}

static void test_npo(const struct ops *ops) {
    float wSref[SB];
    want("S_ref", wSref, SB);
    for (int k = 0; k < 3; k++) {
        char name[64];
        float beta, loss = 0, wloss, d[N], wd[N];
        snprintf(name, sizeof name, "beta_%d", k);
        want(name, &beta, 1);
        snprintf(name, sizeof name, "npo_%d", k);
        want(name, &wloss, 1);
        snprintf(name, sizeof name, "dlogits_npo_%d", k);
        want(name, wd, N);
        memset(d, 0, sizeof d);
        CHECK(unlearn_npo(ops, logits, labels, S_ref, SB, ST, SV, beta, d, &loss) == 0);
        close_to("npo", &loss, &wloss, 1);
        close_to("dlogits_npo", d, wd, N);
        CHECK(zero_off_targets(d));
        if (k == 1)
            finite_differences(ops, 2, d);
    }
    /* at the reference (S == S_ref) the loss is (2/beta) log 2 for any beta */
    float loss;
    CHECK(unlearn_npo(ops, ref, labels, S_ref, SB, ST, SV, 0.5f, NULL, &loss) == 0);
    CHECK(fabs(loss - 4.0 * log(2.0)) < 1e-5);
    /* far from the reference, log-sigmoid stays finite (no exp overflow) */
    float far[SB] = {-1e6f, -1e6f, -1e6f};
    CHECK(unlearn_npo(ops, logits, labels, far, SB, ST, SV, 5.0f, NULL, &loss) == 0 && isfinite(loss));
}

/* 1 and 2 threads: identical bits. */
static void test_threads(void) {
    float d1[N], d2[N], l1, l2;
    memset(d1, 0, sizeof d1);
    memset(d2, 0, sizeof d2);
    unlearn_npo(ops_cpu(1), logits, labels, S_ref, SB, ST, SV, 1.0f, d1, &l1);
    unlearn_kl(ops_cpu(1), logits, ref, labels, SB, ST, SV, 1.0f, d1, &l1);
    unlearn_npo(ops_cpu(2), logits, labels, S_ref, SB, ST, SV, 1.0f, d2, &l2);
    unlearn_kl(ops_cpu(2), logits, ref, labels, SB, ST, SV, 1.0f, d2, &l2);
    CHECK(memcmp(&l1, &l2, sizeof l1) == 0 && memcmp(d1, d2, sizeof d1) == 0);
}

static void test_refusals(const struct ops *ops) {
    float S[SB], loss;
    int32_t bad[SB * ST];
    memcpy(bad, labels, sizeof bad);
    for (int j = 0; j < ST; j++)
        bad[ST + j] = TRAIN_IGNORE;
    CHECK(unlearn_seq_logprob(ops, logits, bad, SB, ST, SV, S) < 0);
    CHECK_HAS(err_msg(), "sequence 1 has no target token");
    CHECK(unlearn_npo(ops, logits, bad, S_ref, SB, ST, SV, 1.0f, NULL, &loss) < 0);
    CHECK(unlearn_kl(ops, logits, ref, bad, SB, ST, SV, 1.0f, NULL, &loss) == 0); /* KL is per position */
    for (int i = 0; i < SB * ST; i++)
        bad[i] = TRAIN_IGNORE;
    CHECK(unlearn_kl(ops, logits, ref, bad, SB, ST, SV, 1.0f, NULL, &loss) < 0);
    CHECK_HAS(err_msg(), "no target token");
    memcpy(bad, labels, sizeof bad);
    bad[5] = SV;
    CHECK(unlearn_seq_logprob(ops, logits, bad, SB, ST, SV, S) < 0);
    CHECK_HAS(err_msg(), "outside the vocabulary");
    CHECK(unlearn_npo(ops, logits, labels, S_ref, SB, ST, SV, 0.0f, NULL, &loss) < 0);
    CHECK_HAS(err_msg(), "beta must be positive");
}

static int load_fixture(const char *data) {
    char path[4200];
    snprintf(path, sizeof path, "%s/losses/losses.safetensors", data);
    float lab[SB * ST];
    if (st_open(path, &fx) < 0 || load("logits", logits, N) < 0 || load("ref_logits", ref, N) < 0 ||
        load("labels", lab, SB * ST) < 0 || load("dS", dS, SB) < 0 || load("S_ref", S_ref, SB) < 0)
        return -1;
    for (int i = 0; i < SB * ST; i++)
        labels[i] = (int32_t)lab[i];
    return 0;
}

void test_model(const char *data); /* below */

int main(void) {
    const char *data = getenv("PULSE_TEST_DATA") ? getenv("PULSE_TEST_DATA") : "tests/data";
    int ok = load_fixture(data) == 0;
    CHECK(ok);
    if (!ok) {
        fprintf(stderr, "fixture: %s\n", err_msg());
        return check_done("test_engine_losses");
    }
    const struct ops *ops = ops_cpu(1);
    test_seq_logprob(ops);
    test_kl(ops);
    test_npo(ops);
    test_threads();
    test_refusals(ops);
    printf("largest relative error against torch: %.3g\n", worst);
    st_close(&fx);
    test_model(data);
    return check_done("test_engine_losses");
}

/* ---- on the tiny model ---- */

#define MB 2
#define MT 24

static struct {
    int32_t ids[MB * MT], mask[MB * MT], labels[MB * MT];
    float *pixels;
} mx;

static int model_ints(const struct st_file *f, const char *name, int32_t *out) {
    const struct st_tensor *t = st_find(f, name);
    if (!t || t->nelem != MB * MT)
        return -1;
    float x[MB * MT];
    st_to_f32(t, x);
    for (int i = 0; i < MB * MT; i++)
        out[i] = (int32_t)x[i];
    return 0;
}

static int load_batch(const char *data) {
    char path[4200];
    struct st_file io, lab;
    snprintf(path, sizeof path, "%s/llava_tiny/io.safetensors", data);
    if (st_open(path, &io) < 0)
        return -1;
    snprintf(path, sizeof path, "%s/llava_grad/labels.safetensors", data);
    if (st_open(path, &lab) < 0) {
        st_close(&io);
        return -1;
    }
    const struct st_tensor *px = st_find(&io, "pixel_values");
    int rc = px && model_ints(&io, "input_ids", mx.ids) == 0 &&
                     model_ints(&io, "attention_mask", mx.mask) == 0 &&
                     model_ints(&lab, "labels", mx.labels) == 0
                 ? 0
                 : -1;
    if (rc == 0) {
        mx.pixels = malloc(px->nelem * sizeof(float));
        st_to_f32(px, mx.pixels);
    }
    st_close(&io);
    st_close(&lab);
    return rc;
}

/* The current model's S for the batch (a forward of its own). */
static void current_S(struct llava *m, const struct ops *ops, const struct unlearn_batch *x, float *S) {
    CHECK(llava_forward(m, ops, x->ids, x->mask, x->b, x->t, x->pixels, x->nimg) == 0);
    CHECK(unlearn_seq_logprob(ops, m->a.logits, x->labels, x->b, x->t, (size_t)m->cfg.text.vocab, S) == 0);
}

/* One full-parameter GA step lowers the answer log-probability it ascends against; the GA loss is minus
 * train_ce_loss. */
static void test_ga_full(struct llava *m, const struct ops *ops, const struct unlearn_batch *x) {
    llava_set_trainable(m, "", 1);
    llava_grads_init(m);
    float before[MB], after[MB], ga, ce;
    current_S(m, ops, x, before);
    CHECK(train_ce_loss(m, ops, x->labels, x->b, x->t, &ce) == 0);
    struct train_adamw o;
    train_adamw_init(&o, m, 0.9f, 0.999f, 1e-8f, 0.0f, 0.0f);
    llava_zero_grad(m, ops);
    CHECK(unlearn_ga(m, ops, x, &ga) == 0);
    /* GA's lm_head runs on its rows only: the same loss up to rounding (tests/logit_rows.h) */
    CHECK(fabsf(ga + ce) <= 1e-6f * fabsf(ce));
    CHECK(train_adamw_step(&o, m, ops, 1e-2f, NULL) == 0);
    current_S(m, ops, x, after);
    printf("GA step (lr 1e-2): S %.4f %.4f -> %.4f %.4f\n", before[0], before[1], after[0], after[1]);
    CHECK(after[0] < before[0] && after[1] < before[1]);
    train_adamw_free(&o);
}

/* A LoRA adapter whose SB is random, so that the adapted model differs from the base. */
static int adapter(struct llava *m, struct lora *l) {
    if (lora_create(l, 4, 8.0, 0.0) < 0)
        return -1;
    lora_set_target_regex(l, "model\\.language_model\\.layers\\.[0-9]+\\.(self_attn|mlp)\\..*");
    if (llava_lora_add_targets(m, l) < 0)
        return -1;
    lora_init(l, 3);
    for (size_t i = 0; i < l->n; i++)
        for (size_t e = 0; e < l->m[i].out * (size_t)l->r; e++)
            l->m[i].B[e] = 0.05f * (float)(((i * 7919 + e * 104729) % 2001) / 1000.0 - 1.0);
    return llava_lora_attach(m, l, 11);
}

/* Gradient difference is GA on the forget batch plus plain descent on the retain batch: its loss is the sum
 * of the two terms computed alone, and its gradients the sum of theirs (each accumulated separately here). */
static void check_grad_diff(struct llava *m, const struct ops *ops, const struct unlearn_batch *forget,
                            const struct unlearn_batch *retain) {
    size_t n = m->ngrads;
    float *g1 = malloc(n * sizeof *g1), *g2 = malloc(n * sizeof *g2), ga, ce, loss, nll;
    llava_zero_grad(m, ops);
    CHECK(unlearn_ga(m, ops, forget, &ga) == 0);
    memcpy(g1, m->grads, n * sizeof *g1);
    llava_zero_grad(m, ops);
    CHECK(unlearn_forward(m, ops, retain) == 0 &&
          train_ce_loss(m, ops, retain->labels, retain->b, retain->t, &ce) == 0 &&
          llava_backward(m, ops) == 0);
    memcpy(g2, m->grads, n * sizeof *g2);
    llava_zero_grad(m, ops);
    CHECK(unlearn_grad_diff(m, ops, forget, retain, &loss, &nll) == 0);
    CHECK(nll == ce && loss == ga + ce && ga < 0 && ce > 0);
    double worst = 0, norm = 0;
    for (size_t i = 0; i < n; i++) {
        double want = (double)g1[i] + g2[i], d = fabs(m->grads[i] - want);
        worst = d > worst ? d : worst;
        norm = fabs(want) > norm ? fabs(want) : norm;
    }
    printf("grad_diff: loss %.4f = GA %.4f + NLL %.4f; gradients within %.2g of the sum (max %.3g)\n", loss,
           ga, ce, worst, norm);
    CHECK(norm > 0 && worst <= 1e-6 * norm);
    free(g1);
    free(g2);
}

/* The reference forward is the base: LoRA off, gradients kept, the adapter back on after. NPO at the
 * reference starts at (2/beta) log 2 and a step lowers S; GA+KLR runs two forwards and two backwards. */
static void test_lora(struct llava *m, const struct ops *ops, const struct unlearn_batch *x) {
    size_t nl = (size_t)MB * MT * (size_t)m->cfg.text.vocab;
    float *base = malloc(nl * sizeof *base), *r = malloc(nl * sizeof *r);
    CHECK(llava_forward(m, ops, x->ids, x->mask, MB, MT, x->pixels, x->nimg) == 0);
    memcpy(base, m->a.logits, nl * sizeof *base);
    struct lora l;
    CHECK(adapter(m, &l) == 0);
    llava_set_trainable(m, "", 0);
    llava_grads_init(m);
    float *grads = m->grads;
    CHECK(unlearn_ref_forward(m, ops, x, r) == 0);
    CHECK(logit_rows_close(r, base, x->labels, MB, MT, (size_t)m->cfg.text.vocab, 1e-6));
    CHECK(m->grads == grads && m->lora.s != NULL);
    float S_ref[MB], S[MB], loss, kl;
    CHECK(unlearn_ref_seq_logprob(m, ops, x, S_ref) == 0);
    current_S(m, ops, x, S);
    CHECK(S[0] != S_ref[0]); /* the adapter is on again */

    /* a zero SB makes the adapted model the reference: NPO's loss is (2/beta) log 2 */
    for (size_t i = 0; i < l.n; i++)
        memset(l.m[i].B, 0, l.m[i].out * l.r * sizeof(float));
    llava_zero_grad(m, ops);
    CHECK(unlearn_npo_step(m, ops, x, S_ref, 0.5f, &loss) == 0);
    CHECK(fabs(loss - 4.0 * log(2.0)) < 1e-5);
    struct train_adamw o;
    train_adamw_init(&o, m, 0.9f, 0.999f, 1e-8f, 0.0f, 0.0f);
    CHECK(train_adamw_step(&o, m, ops, 1e-2f, NULL) == 0);
    current_S(m, ops, x, S);
    printf("NPO step (LoRA, lr 1e-2): S %.4f %.4f -> %.4f %.4f\n", S_ref[0], S_ref[1], S[0], S[1]);
    CHECK(S[0] < S_ref[0] && S[1] < S_ref[1]);

    /* GA+KLR, the retain batch the forget batch's rows swapped: the sum of the two terms */
    int32_t rid[MB * MT], rmask[MB * MT], rlab[MB * MT];
    memcpy(rid, x->ids + MT, MT * sizeof *rid), memcpy(rid + MT, x->ids, MT * sizeof *rid);
    memcpy(rmask, x->mask + MT, MT * sizeof *rmask), memcpy(rmask + MT, x->mask, MT * sizeof *rmask);
    memcpy(rlab, x->labels + MT, MT * sizeof *rlab), memcpy(rlab + MT, x->labels, MT * sizeof *rlab);
    size_t px = (size_t)m->cfg.vision.channels * m->cfg.vision.image_size * m->cfg.vision.image_size;
    float *rpix = malloc(2 * px * sizeof *rpix);
    memcpy(rpix, x->pixels + px, px * sizeof *rpix), memcpy(rpix + px, x->pixels, px * sizeof *rpix);
    struct unlearn_batch retain = {rid, rmask, rlab, MB, MT, rpix, x->nimg, NULL};
    float ce;
    llava_zero_grad(m, ops);
    CHECK(unlearn_ga_klr(m, ops, x, &retain, 0.7f, &loss, &kl) == 0);
    CHECK(kl > 0);
    CHECK(llava_forward(m, ops, x->ids, x->mask, MB, MT, x->pixels, x->nimg) == 0 &&
          train_ce_loss(m, ops, x->labels, MB, MT, &ce) == 0);
    CHECK(fabsf(loss - (-ce + 0.7f * kl)) <= 1e-6f * fabsf(loss));
    CHECK(sqrt(ops->sum_squares(m->grads, m->ngrads)) > 0);
    /* the swapped batch's NLL equals the forget batch's and their gradients cancel: drop the first half of
     * each row's targets so that gradient difference's two terms differ */
    int32_t rlab2[MB * MT];
    memcpy(rlab2, rlab, sizeof rlab2);
    for (size_t row = 0; row < MB; row++) {
        size_t targets = 0, seen = 0;
        for (size_t k = 0; k < MT; k++)
            targets += rlab[row * MT + k] >= 0;
        for (size_t k = 0; k < MT && seen < targets / 2; k++)
            if (rlab2[row * MT + k] >= 0)
                rlab2[row * MT + k] = -100, seen++;
    }
    struct unlearn_batch retain2 = retain;
    retain2.labels = rlab2;
    check_grad_diff(m, ops, x, &retain2);
    train_adamw_free(&o);
    free(rpix);
    llava_lora_detach(m);
    lora_free(&l);
    free(base);
    free(r);
}

void test_model(const char *data) {
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/llava_tiny", data);
    struct llava m;
    int ok = load_batch(data) == 0 && llava_load(&m, dir, MB, MT) == 0;
    CHECK(ok);
    if (!ok) {
        fprintf(stderr, "tiny model: %s\n", err_msg());
        return;
    }
    const struct ops *ops = ops_cpu(1);
    struct unlearn_batch x = {mx.ids, mx.mask, mx.labels, MB, MT, mx.pixels, MB, NULL};
    float S[MB];
    CHECK(unlearn_ga(&m, ops, &x, S) < 0); /* no gradients yet */
    CHECK_HAS(err_msg(), "llava_grads_init");
    test_lora(&m, ops, &x);
    test_ga_full(&m, ops, &x);
    llava_free(&m);
    free(mx.pixels);
}

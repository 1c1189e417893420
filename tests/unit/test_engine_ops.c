/* test_engine_ops: the CPU operation table against naive double-precision references (forward), central
 * finite differences (backward), the accumulate convention, the attention masks, bit-identical results for 1,
 * 2 and 3 threads, and a fixture produced by PyTorch (tests/reference/make_ops_fixture.py) when it is
 * present. */
#include "check.h"
#include "engine/kernels.h"
#include "engine/ops.h"
#include "engine/rng.h"
#include "util/err.h"
#include "util/fsio.h"
#include "util/json.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct ops *O;

/* ---- helpers ---- */

/* n uniform floats in [lo, hi), a pure function of seed. */
static float *vec(size_t n, uint64_t seed, float lo, float hi) {
    float *x = malloc((n ? n : 1) * sizeof(float));
    uint64_t key = rng_key(seed, 77);
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * rng_uniform(key, i);
    return x;
}
static float *zeros(size_t n) {
    return calloc(n ? n : 1, sizeof(float));
}
static float *copy(const float *x, size_t n) {
    float *y = malloc((n ? n : 1) * sizeof(float));
    memcpy(y, x, n * sizeof(float));
    return y;
}
static double *dvec(size_t n) {
    return calloc(n ? n : 1, sizeof(double));
}
static double rms(const double *x, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += x[i] * x[i];
    return n ? sqrt(s / (double)n) : 0.0;
}
static double dotd(const float *a, const float *b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

/* got (float) against want (double): every element within rtol of max(|want|, rms(want)). The floor at the
 * tensor's rms keeps elements that cancel to near zero (whose float rounding is relative to the terms, not
 * the result) from failing on meaningless relative errors. Prints the worst element when it fails. */
static int near(const char *what, const float *got, const double *want, size_t n, double rtol) {
    double floor = rms(want, n), worst = 0.0;
    size_t at = 0;
    for (size_t i = 0; i < n && !isnan(worst); i++) {
        double scale = fabs(want[i]) > floor ? fabs(want[i]) : floor;
        double err = scale > 0 ? fabs(got[i] - want[i]) / scale : fabs(got[i] - want[i]);
        if (!(err <= worst)) { /* a NaN sticks: the loop stops at it */
            worst = err;
            at = i;
        }
    }
    if (!(worst <= rtol)) {
        fprintf(stderr, "  %s: element %zu: got %.9g, want %.9g (relative error %.3g > %.3g)\n", what, at,
                n ? got[at] : 0.0, n ? want[at] : 0.0, worst, rtol);
        return 0;
    }
    return 1;
}
static int near_f(const char *what, const float *got, const float *want, size_t n, double rtol) {
    double *w = dvec(n);
    for (size_t i = 0; i < n; i++)
        w[i] = want[i];
    int ok = near(what, got, w, n, rtol);
    free(w);
    return ok;
}

/* The forward of the op under test, returning L = sum(out * R) in double. */
typedef double (*loss_fn)(void *ctx);

/* The finite-difference tolerance. Every op below is checked on inputs and outputs of order 1, with at most a
 * few hundred outputs. The forward runs in float, so L carries a rounding noise of about sqrt(outputs) *
 * 2^-24 * |out R| <= ~1e-6; divided by the step 2 eps = 2e-2 that is <= 5e-5 in the difference quotient. The
 * truncation error of a central difference is eps^2 / 6 * |f'''| ~ 2e-5 for these smooth functions. The worst
 * seen is 1.7e-4 (kl; 1.5e-4 rmsnorm, 1e-4 attention and layernorm, 1e-5 or less for the linear ops); 1e-3
 * relative to the gradient's scale leaves a sixfold margin and is far below what a wrong term gives (>=
 * 1e-2). */
#define FD_EPS 1e-2f
#define FD_TOL 1e-3

/* Perturbs each x[i] by +-eps (the step actually taken is measured in float) and compares the difference
 * quotient of L with grad[i]. */
static int fd_check(const char *what, float *x, size_t n, const float *grad, loss_fn f, void *ctx) {
    double *fd = dvec(n);
    for (size_t i = 0; i < n; i++) {
        float x0 = x[i];
        x[i] = x0 + FD_EPS;
        float xp = x[i];
        double lp = f(ctx);
        x[i] = x0 - FD_EPS;
        float xm = x[i];
        double lm = f(ctx);
        x[i] = x0;
        fd[i] = (lp - lm) / ((double)xp - xm);
    }
    int ok = near(what, grad, fd, n, FD_TOL);
    free(fd);
    return ok;
}

/* b == 2 a exactly: a backward called twice adds the same again. */
static int doubled(const char *what, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (b[i] != 2.0f * a[i]) {
            fprintf(stderr, "  %s: element %zu: %.9g after two calls, %.9g after one\n", what, i, b[i], a[i]);
            return 0;
        }
    return 1;
}

/* ---- matmul ---- */

struct mm {
    float *inp, *w, *b, *out, *r;
    size_t n, ic, oc;
};
static double mm_loss(void *ctx) {
    struct mm *m = ctx;
    O->matmul_forward(m->out, m->inp, m->w, m->b, m->n, m->ic, m->oc);
    return dotd(m->out, m->r, m->n * m->oc);
}
static void mm_ref(double *out, const struct mm *m) {
    for (size_t i = 0; i < m->n; i++)
        for (size_t o = 0; o < m->oc; o++) {
            double s = m->b ? m->b[o] : 0.0;
            for (size_t k = 0; k < m->ic; k++)
                s += (double)m->inp[i * m->ic + k] * m->w[o * m->ic + k];
            out[i * m->oc + o] = s;
        }
}
/* dinp = R w, dw = R^T inp, db = column sums of R, in double. */
static void mm_grad_ref(double *dinp, double *dw, double *db, const struct mm *m) {
    for (size_t i = 0; i < m->n; i++)
        for (size_t o = 0; o < m->oc; o++) {
            double r = m->r[i * m->oc + o];
            for (size_t k = 0; k < m->ic; k++) {
                dinp[i * m->ic + k] += r * m->w[o * m->ic + k];
                dw[o * m->ic + k] += r * m->inp[i * m->ic + k];
            }
            db[o] += r;
        }
}
static struct mm mm_make(size_t n, size_t ic, size_t oc, int bias, uint64_t seed) {
    struct mm m = {.n = n, .ic = ic, .oc = oc};
    m.inp = vec(n * ic, seed, -1, 1);
    m.w = vec(oc * ic, seed + 1, -1, 1);
    m.b = bias ? vec(oc, seed + 2, -1, 1) : NULL;
    m.r = vec(n * oc, seed + 3, -1, 1);
    m.out = zeros(n * oc);
    return m;
}
static void mm_free(struct mm *m) {
    free(m->inp), free(m->w), free(m->b), free(m->r), free(m->out);
}

/* Forward and all three gradients against double references; sizes chosen to exercise one block and the
 * blocked paths (rows split when N >= OC, columns otherwise). */
static void test_matmul_reference(size_t n, size_t ic, size_t oc, int bias) {
    struct mm m = mm_make(n, ic, oc, bias, 100 + n);
    double *want = dvec(n * oc), *wdi = dvec(n * ic), *wdw = dvec(oc * ic), *wdb = dvec(oc);
    mm_loss(&m);
    mm_ref(want, &m);
    CHECK(near("matmul forward", m.out, want, n * oc, 1e-5));
    float *di = zeros(n * ic), *dw = zeros(oc * ic), *db = zeros(oc);
    O->matmul_backward(di, dw, db, m.r, m.inp, m.w, n, ic, oc);
    mm_grad_ref(wdi, wdw, wdb, &m);
    CHECK(near("matmul dinp", di, wdi, n * ic, 1e-5));
    CHECK(near("matmul dw", dw, wdw, oc * ic, 1e-5));
    CHECK(near("matmul db", db, wdb, oc, 1e-5));
    free(want), free(wdi), free(wdw), free(wdb), free(di), free(dw), free(db);
    mm_free(&m);
}

static void test_matmul(void) {
    test_matmul_reference(5, 7, 6, 1);
    test_matmul_reference(5, 7, 6, 0);
    test_matmul_reference(300, 70, 130, 1); /* blocks of rows */
    test_matmul_reference(90, 150, 400, 1); /* blocks of columns */

    struct mm m = mm_make(5, 7, 6, 1, 1);
    float *di = zeros(5 * 7), *dw = zeros(6 * 7), *db = zeros(6);
    O->matmul_backward(di, dw, db, m.r, m.inp, m.w, 5, 7, 6);
    CHECK(fd_check("matmul fd dinp", m.inp, 5 * 7, di, mm_loss, &m));
    CHECK(fd_check("matmul fd dw", m.w, 6 * 7, dw, mm_loss, &m));
    CHECK(fd_check("matmul fd db", m.b, 6, db, mm_loss, &m));

    /* twice doubles; NULL gradients are skipped and do not change the others */
    float *di2 = copy(di, 35), *dw2 = copy(dw, 42), *db2 = copy(db, 6);
    O->matmul_backward(di2, dw2, db2, m.r, m.inp, m.w, 5, 7, 6);
    CHECK(doubled("matmul dinp", di, di2, 35));
    CHECK(doubled("matmul dw", dw, dw2, 42));
    CHECK(doubled("matmul db", db, db2, 6));
    float *dw3 = zeros(42);
    O->matmul_backward(NULL, dw3, NULL, m.r, m.inp, m.w, 5, 7, 6);
    CHECK(memcmp(dw3, dw, sizeof(float) * 42) == 0);
    O->matmul_backward(NULL, NULL, NULL, m.r, m.inp, m.w, 5, 7, 6);
    free(di), free(dw), free(db), free(di2), free(dw2), free(db2), free(dw3);
    mm_free(&m);
}

/* The scaled products (LoRA's up projection): out starts nonzero and gains s * inp w^T; the gradients start
 * nonzero and gain s times the plain ones (double references, as test_matmul_reference); NULL is skipped. */
static void test_matmul_scaled(size_t n, size_t ic, size_t oc, float s) {
    struct mm m = mm_make(n, ic, oc, 0, 300 + n);
    float *out = vec(n * oc, 310, -1, 1), *di = vec(n * ic, 311, -1, 1), *dw = vec(oc * ic, 312, -1, 1);
    double *want = dvec(n * oc), *wdi = dvec(n * ic), *wdw = dvec(oc * ic), *wdb = dvec(oc);
    mm_ref(want, &m);
    for (size_t i = 0; i < n * oc; i++)
        want[i] = out[i] + s * want[i];
    O->matmul_scaled_forward(out, m.inp, m.w, s, n, ic, oc);
    CHECK(near("matmul_scaled forward", out, want, n * oc, 1e-5));
    mm_grad_ref(wdi, wdw, wdb, &m);
    for (size_t i = 0; i < n * ic; i++)
        wdi[i] = di[i] + s * wdi[i];
    for (size_t i = 0; i < oc * ic; i++)
        wdw[i] = dw[i] + s * wdw[i];
    float *dw_alone = copy(dw, oc * ic);
    O->matmul_scaled_backward(di, dw, m.r, m.inp, m.w, s, n, ic, oc);
    CHECK(near("matmul_scaled dinp", di, wdi, n * ic, 1e-5));
    CHECK(near("matmul_scaled dw", dw, wdw, oc * ic, 1e-5));
    O->matmul_scaled_backward(NULL, dw_alone, m.r, m.inp, m.w, s, n, ic, oc);
    CHECK(memcmp(dw_alone, dw, oc * ic * sizeof(float)) == 0);
    O->matmul_scaled_backward(NULL, NULL, m.r, m.inp, m.w, s, n, ic, oc);
    free(out), free(di), free(dw), free(dw_alone), free(want), free(wdi), free(wdw), free(wdb);
    mm_free(&m);
}

/* ---- norms ---- */

struct norm {
    float *inp, *w, *b, *out, *mean, *rstd, *r;
    size_t n, c;
    int rms; /* RMSNorm (else LayerNorm) */
};
static double norm_loss(void *ctx) {
    struct norm *p = ctx;
    if (p->rms)
        O->rmsnorm_forward(p->out, p->rstd, p->inp, p->w, p->n, p->c, 1e-5f);
    else
        O->layernorm_forward(p->out, p->mean, p->rstd, p->inp, p->w, p->b, p->n, p->c, 1e-5f);
    return dotd(p->out, p->r, p->n * p->c);
}
static struct norm norm_make(size_t n, size_t c, int rms, uint64_t seed) {
    struct norm p = {.n = n, .c = c, .rms = rms};
    p.inp = vec(n * c, seed, -2, 2);
    p.w = vec(c, seed + 1, 0.5f, 1.5f);
    p.b = rms ? NULL : vec(c, seed + 2, -1, 1);
    p.r = vec(n * c, seed + 3, -1, 1);
    p.out = zeros(n * c), p.mean = zeros(n), p.rstd = zeros(n);
    return p;
}
static void norm_free(struct norm *p) {
    free(p->inp), free(p->w), free(p->b), free(p->r), free(p->out), free(p->mean), free(p->rstd);
}
static void norm_ref(double *out, double *mean, double *rstd, const struct norm *p) {
    for (size_t i = 0; i < p->n; i++) {
        const float *x = p->inp + i * p->c;
        double m = 0.0, v = 0.0;
        for (size_t j = 0; j < p->c; j++)
            m += x[j];
        m /= (double)p->c;
        for (size_t j = 0; j < p->c; j++)
            v += p->rms ? (double)x[j] * x[j] : (x[j] - m) * (x[j] - m);
        double r = 1.0 / sqrt(v / (double)p->c + 1e-5);
        for (size_t j = 0; j < p->c; j++)
            out[i * p->c + j] = p->rms ? x[j] * r * p->w[j] : (x[j] - m) * r * p->w[j] + p->b[j];
        mean[i] = m;
        rstd[i] = r;
    }
}
static void norm_backward(const struct norm *p, float *di, float *dw, float *db) {
    if (p->rms)
        O->rmsnorm_backward(di, dw, p->r, p->inp, p->w, p->rstd, p->n, p->c);
    else
        O->layernorm_backward(di, dw, db, p->r, p->inp, p->w, p->mean, p->rstd, p->n, p->c);
}

static void test_norm(int rms) {
    const char *name = rms ? "rmsnorm" : "layernorm";
    char what[64];
    size_t n = 6, c = 37;
    struct norm p = norm_make(n, c, rms, rms ? 200 : 300);
    double *want = dvec(n * c), *wm = dvec(n), *wr = dvec(n);
    norm_loss(&p);
    norm_ref(want, wm, wr, &p);
    snprintf(what, sizeof what, "%s forward", name);
    CHECK(near(what, p.out, want, n * c, 1e-5));
    CHECK(near(what, p.rstd, wr, n, 1e-5));
    if (!rms)
        CHECK(near(what, p.mean, wm, n, 1e-5));

    float *di = zeros(n * c), *dw = zeros(c), *db = zeros(c);
    norm_backward(&p, di, dw, db);
    snprintf(what, sizeof what, "%s fd dinp", name);
    CHECK(fd_check(what, p.inp, n * c, di, norm_loss, &p));
    norm_loss(&p); /* restore mean/rstd of the unperturbed input */
    snprintf(what, sizeof what, "%s fd dw", name);
    CHECK(fd_check(what, p.w, c, dw, norm_loss, &p));
    if (!rms) {
        snprintf(what, sizeof what, "%s fd db", name);
        CHECK(fd_check(what, p.b, c, db, norm_loss, &p));
    }
    norm_loss(&p);

    float *di2 = copy(di, n * c), *dw2 = copy(dw, c), *db2 = copy(db, c), *dw3 = zeros(c);
    norm_backward(&p, di2, dw2, db2);
    CHECK(doubled(name, di, di2, n * c));
    CHECK(doubled(name, dw, dw2, c));
    if (!rms)
        CHECK(doubled(name, db, db2, c));
    norm_backward(&p, NULL, dw3, NULL);
    CHECK(memcmp(dw3, dw, c * sizeof(float)) == 0);
    norm_backward(&p, NULL, NULL, NULL);
    free(want), free(wm), free(wr), free(di), free(dw), free(db), free(di2), free(dw2), free(db2), free(dw3);
    norm_free(&p);
}

/* ---- rope ---- */

struct rope {
    float *x, *y, *r;
    int32_t *pos;
    size_t b, t, nh, hs;
    float theta;
};
static double rope_loss(void *ctx) {
    struct rope *p = ctx;
    size_t n = p->b * p->t * p->nh * p->hs;
    memcpy(p->y, p->x, n * sizeof(float));
    O->rope_forward(p->y, p->pos, p->b, p->t, p->nh, p->hs, p->theta);
    return dotd(p->y, p->r, n);
}

static void test_rope(void) {
    struct rope p = {.b = 2, .t = 5, .nh = 3, .hs = 8, .theta = 10000.0f};
    size_t n = p.b * p.t * p.nh * p.hs, half = p.hs / 2;
    p.x = vec(n, 400, -1, 1), p.y = zeros(n), p.r = vec(n, 401, -1, 1);
    p.pos = malloc(p.b * p.t * sizeof(int32_t));
    for (size_t i = 0; i < p.b * p.t; i++)
        p.pos[i] = (int32_t)(i % p.t) + (i >= p.t ? 4000 : 0); /* the second sequence at long positions */
    rope_loss(&p);

    /* HF: inv_freq and pos * inv_freq in fp32; the rotation itself in double */
    double *want = dvec(n);
    for (size_t bt = 0; bt < p.b * p.t; bt++)
        for (size_t h = 0; h < p.nh; h++)
            for (size_t f = 0; f < half; f++) {
                float inv = 1.0f / powf(p.theta, (float)(2 * f) / (float)p.hs);
                float angle = (float)p.pos[bt] * inv;
                size_t at = (bt * p.nh + h) * p.hs;
                double x1 = p.x[at + f], x2 = p.x[at + f + half];
                want[at + f] = x1 * cos(angle) - x2 * sin(angle);
                want[at + f + half] = x2 * cos(angle) + x1 * sin(angle);
            }
    CHECK(near("rope forward", p.y, want, n, 1e-5));

    float *dx = copy(p.r, n); /* backward is in place on dout */
    O->rope_backward(dx, p.pos, p.b, p.t, p.nh, p.hs, p.theta);
    CHECK(fd_check("rope fd dx", p.x, n, dx, rope_loss, &p));

    /* the backward of a rotation is its inverse */
    rope_loss(&p);
    O->rope_backward(p.y, p.pos, p.b, p.t, p.nh, p.hs, p.theta);
    CHECK(near_f("rope inverse", p.y, p.x, n, 1e-6));
    free(want), free(dx), free(p.x), free(p.y), free(p.r), free(p.pos);
}

/* ---- attention ---- */

struct attn {
    float *q, *k, *v, *out, *probs, *r;
    int32_t *len;
    int causal;
    size_t b, t, nh, hs;
};
static size_t attn_n(const struct attn *a) {
    return a->b * a->t * a->nh * a->hs;
}
static double attn_loss(void *ctx) {
    struct attn *a = ctx;
    O->attention_forward(a->out, a->probs, a->q, a->k, a->v, a->len, a->causal, a->b, a->t, a->nh, a->hs);
    return dotd(a->out, a->r, attn_n(a));
}
static struct attn attn_make(size_t b, size_t t, size_t nh, size_t hs, int causal, const int32_t *len,
                             uint64_t seed) {
    struct attn a = {.b = b, .t = t, .nh = nh, .hs = hs, .causal = causal};
    size_t n = attn_n(&a);
    a.q = vec(n, seed, -1.5f, 1.5f), a.k = vec(n, seed + 1, -1.5f, 1.5f), a.v = vec(n, seed + 2, -1, 1);
    a.r = vec(n, seed + 3, -1, 1), a.out = zeros(n), a.probs = zeros(b * nh * t * t);
    if (len) {
        a.len = malloc(b * sizeof(int32_t));
        memcpy(a.len, len, b * sizeof(int32_t));
    }
    return a;
}
static void attn_free(struct attn *a) {
    free(a->q), free(a->k), free(a->v), free(a->r), free(a->out), free(a->probs), free(a->len);
}
static size_t at4(const struct attn *a, size_t b, size_t t, size_t h) {
    return ((b * a->t + t) * a->nh + h) * a->hs;
}

/* Masked softmax attention in double: keys s < len[b] (and s <= t when causal), padding queries zero. */
static void attn_ref(double *out, double *probs, const struct attn *a) {
    double *sc = dvec(a->t);
    for (size_t b = 0; b < a->b; b++)
        for (size_t h = 0; h < a->nh; h++)
            for (size_t t = 0; t < a->t; t++) {
                size_t len = a->len ? (size_t)a->len[b] : a->t, keys = t >= len ? 0 : a->causal ? t + 1 : len;
                double *p = probs + ((b * a->nh + h) * a->t + t) * a->t, mx = -INFINITY, sum = 0.0;
                for (size_t s = 0; s < keys; s++) {
                    sc[s] = dotd(a->q + at4(a, b, t, h), a->k + at4(a, b, s, h), a->hs) / sqrt((double)a->hs);
                    mx = sc[s] > mx ? sc[s] : mx;
                }
                for (size_t s = 0; s < keys; s++)
                    sum += exp(sc[s] - mx);
                for (size_t s = 0; s < a->t; s++)
                    p[s] = s < keys ? exp(sc[s] - mx) / sum : 0.0;
                for (size_t i = 0; i < a->hs; i++) {
                    double o = 0.0;
                    for (size_t s = 0; s < keys; s++)
                        o += p[s] * a->v[at4(a, b, s, h) + i];
                    out[at4(a, b, t, h) + i] = o;
                }
            }
    free(sc);
}

static void attn_grads(const struct attn *a, float *dq, float *dk, float *dv) {
    O->attention_backward(dq, dk, dv, a->r, a->probs, a->q, a->k, a->v, a->b, a->t, a->nh, a->hs);
}

static void test_attention_case(int causal, const int32_t *len) {
    struct attn a = attn_make(2, 5, 2, 4, causal, len, 500 + causal);
    size_t n = attn_n(&a), np = a.b * a.nh * a.t * a.t;
    double *want = dvec(n), *wp = dvec(np);
    attn_loss(&a);
    attn_ref(want, wp, &a);
    CHECK(near("attention forward", a.out, want, n, 1e-5));
    CHECK(near("attention probs", a.probs, wp, np, 1e-5));

    float *dq = zeros(n), *dk = zeros(n), *dv = zeros(n);
    attn_grads(&a, dq, dk, dv);
    CHECK(fd_check("attention fd dq", a.q, n, dq, attn_loss, &a));
    CHECK(fd_check("attention fd dk", a.k, n, dk, attn_loss, &a));
    CHECK(fd_check("attention fd dv", a.v, n, dv, attn_loss, &a));
    attn_loss(&a);

    float *dq2 = copy(dq, n), *dk2 = copy(dk, n), *dv2 = copy(dv, n), *dk3 = zeros(n);
    attn_grads(&a, dq2, dk2, dv2);
    CHECK(doubled("attention dq", dq, dq2, n));
    CHECK(doubled("attention dk", dk, dk2, n));
    CHECK(doubled("attention dv", dv, dv2, n));
    attn_grads(&a, NULL, dk3, NULL);
    CHECK(memcmp(dk3, dk, n * sizeof(float)) == 0);
    attn_grads(&a, NULL, NULL, NULL);
    free(want), free(wp), free(dq), free(dk), free(dv), free(dq2), free(dk2), free(dv2), free(dk3);
    attn_free(&a);
}

/* A padded key changes nothing, a padded query row is zero, a future key changes nothing under the causal
 * mask: all bit for bit. */
static void test_attention_masks(void) {
    int32_t len[2] = {5, 3};
    struct attn a = attn_make(2, 5, 2, 4, 1, len, 600);
    size_t n = attn_n(&a);
    attn_loss(&a);
    float *base = copy(a.out, n);

    for (size_t t = 3; t < 5; t++) /* batch 1's padding: keys/values at 3, 4 */
        for (size_t h = 0; h < 2; h++)
            for (size_t i = 0; i < 4; i++)
                a.k[at4(&a, 1, t, h) + i] += 5.0f, a.v[at4(&a, 1, t, h) + i] -= 3.0f;
    attn_loss(&a);
    CHECK(memcmp(base, a.out, n * sizeof(float)) == 0);
    int zero = 1;
    for (size_t t = 3; t < 5; t++)
        for (size_t h = 0; h < 2; h++)
            for (size_t i = 0; i < 4; i++)
                zero &= a.out[at4(&a, 1, t, h) + i] == 0.0f;
    CHECK(zero);
    int zprob = 1;
    for (size_t h = 0; h < 2; h++)
        for (size_t t = 3; t < 5; t++)
            for (size_t s = 0; s < 5; s++)
                zprob &= a.probs[((1 * 2 + h) * 5 + t) * 5 + s] == 0.0f;
    CHECK(zprob);

    /* causal: changing key/value 4 of batch 0 leaves rows 0..3 untouched, and does change row 4 */
    for (size_t h = 0; h < 2; h++)
        for (size_t i = 0; i < 4; i++)
            a.k[at4(&a, 0, 4, h) + i] += 1.0f, a.v[at4(&a, 0, 4, h) + i] += 1.0f;
    attn_loss(&a);
    CHECK(memcmp(base, a.out, at4(&a, 0, 4, 0) * sizeof(float)) == 0);
    CHECK(memcmp(base + at4(&a, 0, 4, 0), a.out + at4(&a, 0, 4, 0), 8 * sizeof(float)) != 0);

    /* padded rows and keys get no gradient */
    float *dq = zeros(n), *dk = zeros(n), *dv = zeros(n);
    attn_grads(&a, dq, dk, dv);
    int none = 1;
    for (size_t t = 3; t < 5; t++)
        for (size_t h = 0; h < 2; h++)
            for (size_t i = 0; i < 4; i++) {
                size_t j = at4(&a, 1, t, h) + i;
                none &= dq[j] == 0.0f && dk[j] == 0.0f && dv[j] == 0.0f;
            }
    CHECK(none);
    free(base), free(dq), free(dk), free(dv);
    attn_free(&a);
}

static void test_attention(void) {
    int32_t len[2] = {5, 3};
    test_attention_case(0, NULL);
    test_attention_case(1, NULL);
    test_attention_case(1, len);
    test_attention_case(0, len);
    test_attention_masks();
}

/* ---- activations, adds, embeddings ---- */

enum act { ACT_GELU, ACT_QUICK, ACT_SWIGLU };
struct act_case {
    enum act kind;
    float *x, *up, *out, *r;
    size_t n;
};
static double act_loss(void *ctx) {
    struct act_case *c = ctx;
    if (c->kind == ACT_GELU)
        O->gelu_forward(c->out, c->x, c->n);
    else if (c->kind == ACT_QUICK)
        O->quick_gelu_forward(c->out, c->x, c->n);
    else
        O->swiglu_forward(c->out, c->x, c->up, c->n);
    return dotd(c->out, c->r, c->n);
}
static double act_ref(enum act kind, double x, double up) {
    if (kind == ACT_GELU)
        return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    if (kind == ACT_QUICK)
        return x / (1.0 + exp(-1.702 * x));
    return x / (1.0 + exp(-x)) * up;
}

static void test_activation(enum act kind, const char *name) {
    char what[64];
    struct act_case c = {.kind = kind, .n = 101};
    c.x = vec(c.n, 700 + kind, -4, 4), c.up = vec(c.n, 710, -2, 2), c.out = zeros(c.n),
    c.r = vec(c.n, 720, -1, 1);
    double *want = dvec(c.n);
    act_loss(&c);
    for (size_t i = 0; i < c.n; i++)
        want[i] = act_ref(kind, c.x[i], c.up[i]);
    snprintf(what, sizeof what, "%s forward", name);
    CHECK(near(what, c.out, want, c.n, 1e-5));

    float *dx = zeros(c.n), *dup = zeros(c.n);
    if (kind == ACT_GELU)
        O->gelu_backward(dx, c.r, c.x, c.n);
    else if (kind == ACT_QUICK)
        O->quick_gelu_backward(dx, c.r, c.x, c.n);
    else
        O->swiglu_backward(dx, dup, c.r, c.x, c.up, c.n);
    snprintf(what, sizeof what, "%s fd", name);
    CHECK(fd_check(what, c.x, c.n, dx, act_loss, &c));
    if (kind == ACT_SWIGLU) {
        CHECK(fd_check("swiglu fd dup", c.up, c.n, dup, act_loss, &c));
        float *dx2 = copy(dx, c.n), *dup2 = copy(dup, c.n), *dup3 = zeros(c.n);
        O->swiglu_backward(dx2, dup2, c.r, c.x, c.up, c.n);
        CHECK(doubled("swiglu dgate", dx, dx2, c.n));
        CHECK(doubled("swiglu dup", dup, dup2, c.n));
        O->swiglu_backward(NULL, dup3, c.r, c.x, c.up, c.n);
        CHECK(memcmp(dup3, dup, c.n * sizeof(float)) == 0);
        free(dx2), free(dup2), free(dup3);
    } else {
        float *dx2 = copy(dx, c.n);
        if (kind == ACT_GELU)
            O->gelu_backward(dx2, c.r, c.x, c.n), O->gelu_backward(NULL, c.r, c.x, c.n);
        else
            O->quick_gelu_backward(dx2, c.r, c.x, c.n), O->quick_gelu_backward(NULL, c.r, c.x, c.n);
        CHECK(doubled(name, dx, dx2, c.n));
        free(dx2);
    }
    free(want), free(dx), free(dup), free(c.x), free(c.up), free(c.out), free(c.r);
}

struct emb {
    float *table, *out, *r;
    int32_t *tok;
    size_t n, c;
};
static double emb_loss(void *ctx) {
    struct emb *e = ctx;
    O->embedding_forward(e->out, e->tok, e->table, e->n, e->c);
    return dotd(e->out, e->r, e->n * e->c);
}

static void test_add_embedding(void) {
    float *a = vec(50, 800, -1, 1), *b = vec(50, 801, -1, 1), *o = zeros(50), *acc = copy(a, 50);
    O->add(o, a, b, 50);
    O->accumulate(acc, b, 50);
    O->accumulate(NULL, b, 50);
    int ok = 1;
    for (int i = 0; i < 50; i++)
        ok &= o[i] == a[i] + b[i] && acc[i] == a[i] + b[i];
    CHECK(ok);
    free(a), free(b), free(o), free(acc);

    int32_t tok[7] = {3, 0, 3, 5, 1, 3, 0}; /* repeats: their gradients add */
    struct emb e = {.n = 7, .c = 9, .tok = tok};
    e.table = vec(6 * 9, 810, -1, 1), e.out = zeros(7 * 9), e.r = vec(7 * 9, 811, -1, 1);
    emb_loss(&e);
    int rows = 1;
    for (size_t i = 0; i < 7; i++)
        rows &= memcmp(e.out + i * 9, e.table + tok[i] * 9, 9 * sizeof(float)) == 0;
    CHECK(rows);
    float *dt = zeros(6 * 9);
    O->embedding_backward(dt, e.r, tok, 7, 9);
    CHECK(fd_check("embedding fd", e.table, 6 * 9, dt, emb_loss, &e));
    /* Repeated tokens are summed straight into the table, so a second call regroups the sum: near 2x, not
     * exact */
    float *dt2 = copy(dt, 6 * 9), *twice = zeros(6 * 9);
    O->embedding_backward(dt2, e.r, tok, 7, 9);
    O->embedding_backward(NULL, e.r, tok, 7, 9);
    for (size_t i = 0; i < 6 * 9; i++)
        twice[i] = 2.0f * dt[i];
    CHECK(near_f("embedding twice", dt2, twice, 6 * 9, 1e-6));
    free(dt), free(dt2), free(twice), free(e.table), free(e.out), free(e.r);
}

/* repeat_kv against its definition (head h of a row reads kv head h / rep); its backward adds the rep heads
 * in order onto what din held (the same float adds: exact), and is the forward's adjoint,
 * <repeat(x), y> = <x, backward(y)> (to float rounding). */
static void test_repeat_kv(void) {
    size_t n = 5, kvh = 3, rep = 4, hs = 7, nin = n * kvh * hs, nout = n * kvh * rep * hs;
    float *x = vec(nin, 820, -1, 1), *out = zeros(nout), *dy = vec(nout, 821, -1, 1);
    float *din = vec(nin, 822, -1, 1), *start = copy(din, nin);
    O->repeat_kv(out, x, n, kvh, rep, hs);
    int ok = 1;
    for (size_t i = 0; i < n; i++)
        for (size_t h = 0; h < kvh * rep; h++)
            ok &=
                memcmp(out + (i * kvh * rep + h) * hs, x + (i * kvh + h / rep) * hs, hs * sizeof(float)) == 0;
    CHECK(ok);
    O->repeat_kv_backward(din, dy, n, kvh, rep, hs);
    O->repeat_kv_backward(NULL, dy, n, kvh, rep, hs);
    ok = 1;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < kvh; j++)
            for (size_t k = 0; k < hs; k++) {
                float want = start[(i * kvh + j) * hs + k]; /* the same adds, in the same order */
                for (size_t r = 0; r < rep; r++)
                    want += dy[(i * kvh * rep + j * rep + r) * hs + k];
                ok &= din[(i * kvh + j) * hs + k] == want;
            }
    CHECK(ok);
    for (size_t e = 0; e < nin; e++)
        din[e] -= start[e];
    CHECK(fabs(dotd(out, dy, nout) - dotd(x, din, nin)) < 1e-5);
    free(x), free(out), free(dy), free(din), free(start);
}

/* ---- losses ---- */

struct lossc {
    float *logits, *ref, *out, *r;
    int32_t *target;
    uint8_t *mask;
    size_t n, v;
    int kl;
};
static double loss_loss(void *ctx) {
    struct lossc *l = ctx;
    if (l->kl)
        O->kl_forward(l->out, l->logits, l->ref, l->mask, l->n, l->v);
    else
        O->logprob_forward(l->out, l->logits, l->target, l->mask, l->n, l->v);
    return dotd(l->out, l->r, l->n);
}
static double lse_ref(const float *x, size_t v) {
    double m = -INFINITY, s = 0.0;
    for (size_t u = 0; u < v; u++)
        m = x[u] > m ? x[u] : m;
    for (size_t u = 0; u < v; u++)
        s += exp(x[u] - m);
    return m + log(s);
}

static void test_loss(int kl) {
    const char *name = kl ? "kl" : "logprob";
    char what[64];
    struct lossc l = {.n = 6, .v = 11, .kl = kl};
    l.logits = vec(l.n * l.v, 900 + kl, -3, 3), l.ref = vec(l.n * l.v, 910, -3, 3);
    l.out = zeros(l.n), l.r = vec(l.n, 920, -1, 1);
    l.target = malloc(l.n * sizeof(int32_t)), l.mask = malloc(l.n);
    for (size_t i = 0; i < l.n; i++)
        l.target[i] = (int32_t)((i * 7) % l.v), l.mask[i] = i != 2;
    loss_loss(&l);
    double *want = dvec(l.n);
    for (size_t i = 0; i < l.n; i++) {
        const float *x = l.logits + i * l.v, *r = l.ref + i * l.v;
        double lx = lse_ref(x, l.v), lr = lse_ref(r, l.v), s = 0.0;
        for (size_t u = 0; u < l.v; u++)
            s += exp(r[u] - lr) * ((r[u] - lr) - (x[u] - lx));
        want[i] = !l.mask[i] ? 0.0 : kl ? s : x[l.target[i]] - lx;
    }
    snprintf(what, sizeof what, "%s forward", name);
    CHECK(near(what, l.out, want, l.n, 1e-5));
    CHECK(l.out[2] == 0.0f);

    float *dx = zeros(l.n * l.v);
    if (kl)
        O->kl_backward(dx, l.r, l.logits, l.ref, l.mask, l.n, l.v);
    else
        O->logprob_backward(dx, l.r, l.logits, l.target, l.mask, l.n, l.v);
    snprintf(what, sizeof what, "%s fd", name);
    CHECK(fd_check(what, l.logits, l.n * l.v, dx, loss_loss, &l));
    int masked = 1;
    for (size_t u = 0; u < l.v; u++)
        masked &= dx[2 * l.v + u] == 0.0f;
    CHECK(masked);
    float *dx2 = copy(dx, l.n * l.v);
    if (kl)
        O->kl_backward(dx2, l.r, l.logits, l.ref, l.mask, l.n, l.v);
    else
        O->logprob_backward(dx2, l.r, l.logits, l.target, l.mask, l.n, l.v);
    CHECK(doubled(name, dx, dx2, l.n * l.v));
    free(want), free(dx), free(dx2), free(l.logits), free(l.ref), free(l.out), free(l.r), free(l.target),
        free(l.mask);
}

/* Large logits: the max subtraction keeps exp from overflowing. */
static void test_loss_stable(void) {
    float logits[3] = {1000.0f, 999.0f, -1000.0f}, ref[3] = {0.0f, 0.0f, 0.0f}, lp, klv, d[3] = {0};
    int32_t target = 1;
    O->logprob_forward(&lp, logits, &target, NULL, 1, 3);
    CHECK(fabs(lp - (-1.0 - log1p(exp(-1.0)))) < 1e-4); /* float's spacing at 1000 is 6e-5 */
    O->kl_forward(&klv, logits, ref, NULL, 1, 3);
    CHECK(isfinite(klv));
    float one = 1.0f;
    O->logprob_backward(d, &one, logits, &target, NULL, 1, 3);
    CHECK(isfinite(d[0]) && isfinite(d[1]) && d[2] == 0.0f);

    /* kernel_lse_merge (the CUDA reductions' step): two halves' states combine to the whole row's */
    float *x = vec(64, 950, -20, 20), m1 = x[0], s1 = 1.0f, m2 = x[32], s2 = 1.0f;
    for (int i = 1; i < 32; i++)
        kernel_lse_update(&m1, &s1, x[i]), kernel_lse_update(&m2, &s2, x[32 + i]);
    kernel_lse_merge(&m1, &s1, m2, s2);
    CHECK(fabs(m1 + log(s1) - lse_ref(x, 64)) < 1e-5);
    float m3 = x[32], s3 = 1.0f, m4 = x[0], s4 = 1.0f; /* the other way round (larger max on either side) */
    for (int i = 1; i < 32; i++)
        kernel_lse_update(&m3, &s3, x[32 + i]), kernel_lse_update(&m4, &s4, x[i]);
    kernel_lse_merge(&m3, &s3, m4, s4);
    CHECK(fabs(m3 + log(s3) - lse_ref(x, 64)) < 1e-5);
    free(x);
}

/* ---- optimizer ---- */

static void test_optim(void) {
    size_t n = 100003; /* several fixed chunks of sum_squares, and a ragged end */
    float *x = vec(n, 1000, -2, 2);
    double want = 0.0;
    for (size_t i = 0; i < n; i++)
        want += (double)x[i] * x[i];
    double got = O->sum_squares(x, n);
    CHECK(fabs(got - want) <= 1e-12 * want);
    CHECK(O->sum_squares(x, 0) == 0.0);
    float *y = copy(x, n);
    O->scale(y, 0.5f, n);
    int ok = 1;
    for (size_t i = 0; i < n; i++)
        ok &= y[i] == 0.5f * x[i];
    CHECK(ok);
    free(x), free(y);

    /* AdamW, 3 steps, against torch's formula in double */
    size_t m = 257;
    float lr = 1e-2f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.1f;
    float *p = vec(m, 1010, -1, 1), *mo = zeros(m), *vo = zeros(m);
    double *dp = dvec(m), *dm = dvec(m), *dv = dvec(m);
    for (size_t i = 0; i < m; i++)
        dp[i] = p[i];
    for (int t = 1; t <= 3; t++) {
        float *g = vec(m, 1020 + t, -1, 1);
        O->adamw(p, g, mo, vo, m, lr, b1, b2, eps, wd, t);
        for (size_t i = 0; i < m; i++) {
            dp[i] *= 1.0 - (double)lr * wd;
            dm[i] = b1 * dm[i] + (1.0 - b1) * g[i];
            dv[i] = b2 * dv[i] + (1.0 - b2) * (double)g[i] * g[i];
            double mh = dm[i] / (1.0 - pow(b1, t)), vh = dv[i] / (1.0 - pow(b2, t));
            dp[i] -= lr * mh / (sqrt(vh) + eps);
        }
        free(g);
    }
    CHECK(near("adamw param", p, dp, m, 1e-5));
    CHECK(near("adamw m", mo, dm, m, 1e-5));
    CHECK(near("adamw v", vo, dv, m, 1e-5));
    free(p), free(mo), free(vo), free(dp), free(dm), free(dv);
}

/* ---- the PyTorch fixture (tests/reference/make_ops_fixture.py) ---- */

/* Array `key` of case c as n floats (malloc'd), or NULL after a message when missing or of another length. */
static float *fx_floats(const struct json *c, const char *key, size_t n) {
    const struct json *a = json_get(c, key);
    if (!a || a->type != JSON_ARR || a->len != n) {
        fprintf(stderr, "  ops fixture: %s: want %zu values\n", key, n);
        return NULL;
    }
    float *x = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++)
        x[i] = a->items[i]->type == JSON_INT ? (float)a->items[i]->i : (float)a->items[i]->n;
    return x;
}
static size_t fx_size(const struct json *c, const char *key) {
    int64_t v = 0;
    return json_get_int(c, key, &v) == 0 && v > 0 ? (size_t)v : 0;
}
static double fx_numd(const struct json *c, const char *key) {
    double v = 0.0;
    json_get_num(c, key, &v);
    return v;
}
static float fx_num(const struct json *c, const char *key) {
    return (float)fx_numd(c, key);
}
/* Compares got with the fixture's `key` (n values) within 1e-5 of the tensor's scale (see near()). */
static int fx_near(const struct json *c, const char *name, const char *key, const float *got, size_t n) {
    float *want = fx_floats(c, key, n);
    char what[80];
    snprintf(what, sizeof what, "fixture %s %s", name, key);
    int ok = want && near_f(what, got, want, n, 1e-5);
    free(want);
    return ok;
}

static void fx_norm(const struct json *fx, int rms) {
    const char *name = rms ? "rmsnorm" : "layernorm";
    const struct json *c = json_get(fx, name);
    size_t n = fx_size(c, "n"), nc = n * fx_size(c, "c"), cc = fx_size(c, "c");
    float *x = fx_floats(c, "x", nc), *w = fx_floats(c, "w", cc), *b = rms ? NULL : fx_floats(c, "b", cc);
    float *r = fx_floats(c, "r", nc);
    CHECK(x && w && r && (rms || b));
    if (!x || !w || !r || (!rms && !b)) {
        free(x), free(w), free(b), free(r);
        return;
    }
    float *out = zeros(nc), *mean = zeros(n), *rstd = zeros(n), *dx = zeros(nc), *dw = zeros(cc),
          *db = zeros(cc);
    if (rms) {
        O->rmsnorm_forward(out, rstd, x, w, n, cc, fx_num(c, "eps"));
        O->rmsnorm_backward(dx, dw, r, x, w, rstd, n, cc);
    } else {
        O->layernorm_forward(out, mean, rstd, x, w, b, n, cc, fx_num(c, "eps"));
        O->layernorm_backward(dx, dw, db, r, x, w, mean, rstd, n, cc);
        CHECK(fx_near(c, name, "db", db, cc));
    }
    CHECK(fx_near(c, name, "out", out, nc));
    CHECK(fx_near(c, name, "dx", dx, nc));
    CHECK(fx_near(c, name, "dw", dw, cc));
    free(x), free(w), free(b), free(r), free(out), free(mean), free(rstd), free(dx), free(dw), free(db);
}

static void fx_rope(const struct json *fx) {
    const struct json *c = json_get(fx, "rope");
    size_t b = fx_size(c, "b"), t = fx_size(c, "t"), nh = fx_size(c, "nh"), hs = fx_size(c, "hs");
    size_t n = b * t * nh * hs;
    float *x = fx_floats(c, "x", n), *r = fx_floats(c, "r", n), *p = fx_floats(c, "pos", b * t);
    CHECK(x && r && p);
    if (x && r && p) {
        int32_t *pos = malloc(b * t * sizeof(int32_t));
        for (size_t i = 0; i < b * t; i++)
            pos[i] = (int32_t)p[i];
        O->rope_forward(x, pos, b, t, nh, hs, fx_num(c, "theta"));
        O->rope_backward(r, pos, b, t, nh, hs, fx_num(c, "theta"));
        CHECK(fx_near(c, "rope", "out", x, n));
        CHECK(fx_near(c, "rope", "dx", r, n));
        free(pos);
    }
    free(x), free(r), free(p);
}

static void fx_attention(const struct json *fx, const char *name) {
    const struct json *c = json_get(fx, name);
    size_t b = fx_size(c, "b"), t = fx_size(c, "t"), nh = fx_size(c, "nh"), hs = fx_size(c, "hs");
    size_t n = b * t * nh * hs;
    float *q = fx_floats(c, "q", n), *k = fx_floats(c, "k", n), *v = fx_floats(c, "v", n);
    float *r = fx_floats(c, "r", n), *lf = fx_floats(c, "len", b);
    CHECK(q && k && v && r && lf);
    if (q && k && v && r && lf) {
        int32_t *len = malloc(b * sizeof(int32_t));
        for (size_t i = 0; i < b; i++)
            len[i] = (int32_t)lf[i];
        float *out = zeros(n), *probs = zeros(b * nh * t * t), *dq = zeros(n), *dk = zeros(n), *dv = zeros(n);
        O->attention_forward(out, probs, q, k, v, len, (int)fx_size(c, "causal"), b, t, nh, hs);
        O->attention_backward(dq, dk, dv, r, probs, q, k, v, b, t, nh, hs);
        CHECK(fx_near(c, name, "out", out, n));
        CHECK(fx_near(c, name, "dq", dq, n));
        CHECK(fx_near(c, name, "dk", dk, n));
        CHECK(fx_near(c, name, "dv", dv, n));
        free(len), free(out), free(probs), free(dq), free(dk), free(dv);
    }
    free(q), free(k), free(v), free(r), free(lf);
}

static void fx_activations(const struct json *fx) {
    for (int kind = ACT_GELU; kind <= ACT_SWIGLU; kind++) {
        const char *name = kind == ACT_GELU ? "gelu" : kind == ACT_QUICK ? "quick_gelu" : "swiglu";
        const struct json *c = json_get(fx, name);
        size_t n = fx_size(c, "n");
        float *x = fx_floats(c, kind == ACT_SWIGLU ? "gate" : "x", n), *r = fx_floats(c, "r", n);
        float *up = kind == ACT_SWIGLU ? fx_floats(c, "up", n) : zeros(n);
        CHECK(x && r && up);
        if (x && r && up) {
            float *out = zeros(n), *dx = zeros(n), *dup = zeros(n);
            if (kind == ACT_GELU)
                O->gelu_forward(out, x, n), O->gelu_backward(dx, r, x, n);
            else if (kind == ACT_QUICK)
                O->quick_gelu_forward(out, x, n), O->quick_gelu_backward(dx, r, x, n);
            else
                O->swiglu_forward(out, x, up, n), O->swiglu_backward(dx, dup, r, x, up, n);
            CHECK(fx_near(c, name, "out", out, n));
            CHECK(fx_near(c, name, kind == ACT_SWIGLU ? "dgate" : "dx", dx, n));
            if (kind == ACT_SWIGLU)
                CHECK(fx_near(c, name, "dup", dup, n));
            free(out), free(dx), free(dup);
        }
        free(x), free(r), free(up);
    }
}

static void fx_losses(const struct json *fx) {
    for (int kl = 0; kl <= 1; kl++) {
        const char *name = kl ? "kl" : "logprob";
        const struct json *c = json_get(fx, name);
        size_t n = fx_size(c, "n"), v = fx_size(c, "v");
        float *x = fx_floats(c, "logits", n * v), *r = fx_floats(c, "r", n), *mf = fx_floats(c, "mask", n);
        float *ref = kl ? fx_floats(c, "ref", n * v) : zeros(n * v),
              *tf = kl ? zeros(n) : fx_floats(c, "target", n);
        CHECK(x && r && mf && ref && tf);
        if (x && r && mf && ref && tf) {
            int32_t *target = malloc(n * sizeof(int32_t));
            uint8_t *mask = malloc(n);
            for (size_t i = 0; i < n; i++)
                target[i] = (int32_t)tf[i], mask[i] = mf[i] != 0.0f;
            float *out = zeros(n), *dx = zeros(n * v);
            if (kl)
                O->kl_forward(out, x, ref, mask, n, v), O->kl_backward(dx, r, x, ref, mask, n, v);
            else
                O->logprob_forward(out, x, target, mask, n, v),
                    O->logprob_backward(dx, r, x, target, mask, n, v);
            CHECK(fx_near(c, name, "out", out, n));
            CHECK(fx_near(c, name, "dx", dx, n * v));
            free(target), free(mask), free(out), free(dx);
        }
        free(x), free(r), free(mf), free(ref), free(tf);
    }
}

static void fx_adamw(const struct json *fx) {
    const struct json *c = json_get(fx, "adamw");
    size_t n = fx_size(c, "n");
    float *p = fx_floats(c, "p0", n), *g = fx_floats(c, "g", 3 * n), *m = zeros(n), *v = zeros(n);
    CHECK(p && g);
    if (p && g) {
        for (int t = 1; t <= 3; t++)
            O->adamw(p, g + (t - 1) * n, m, v, n, fx_num(c, "lr"), fx_num(c, "beta1"), fx_num(c, "beta2"),
                     fx_num(c, "eps"), fx_num(c, "weight_decay"), t);
        CHECK(fx_near(c, "adamw", "p", p, n));
        CHECK(fx_near(c, "adamw", "m", m, n));
        /* torch takes 1 - beta2 from the double 0.999 (0.001 in fp32); the op gets beta2 as a float, and
         * 1 - 0.999f = 0.00099998713 is 1.3e-5 off. Every term of v carries that factor (p, through sqrt v,
         * half of it: within 1e-5 above), so v is compared with the fixture scaled by it. */
        float *want = fx_floats(c, "v", n);
        if (want) {
            for (size_t i = 0; i < n; i++)
                want[i] *= (float)((1.0 - (double)fx_num(c, "beta2")) / (1.0 - fx_numd(c, "beta2")));
            CHECK(near_f("fixture adamw v", v, want, n, 1e-5));
        }
        free(want);
    }
    free(p), free(g), free(m), free(v);
}

static void test_fixture(void) {
    const char *dir = getenv("PULSE_TEST_DATA");
    char path[4096], *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/ops_fixture.json", dir ? dir : "tests/data");
    struct json *fx = NULL;
    if (fsio_read_file(path, 16 << 20, &text, &len) == 0)
        fx = json_parse(text, len);
    free(text);
    if (!fx) {
        fprintf(stderr, "  ops fixture: %s\n", err_msg());
        CHECK(!"ops fixture readable");
        return;
    }
    fx_norm(fx, 1);
    fx_norm(fx, 0);
    fx_rope(fx);
    fx_attention(fx, "attention_causal");
    fx_attention(fx, "attention_full");
    fx_activations(fx);
    fx_losses(fx);
    fx_adamw(fx);
    json_free(fx);
}

/* ---- determinism: every op, at sizes that split over threads, for 1, 2, 3 and 8 threads ---- */

#define DET_MAX 64
struct det {
    float *buf[DET_MAX];
    size_t len[DET_MAX];
    int count;
};
static float *det_keep(struct det *d, const float *x, size_t n) {
    if (d->count == DET_MAX) {
        fprintf(stderr, "test_engine_ops: raise DET_MAX\n");
        exit(2);
    }
    d->buf[d->count] = copy(x, n);
    d->len[d->count++] = n;
    return d->buf[d->count - 1];
}

static void det_matmul(struct det *d, size_t n, size_t ic, size_t oc) {
    struct mm m = mm_make(n, ic, oc, 1, 1100 + n);
    float *di = zeros(n * ic), *dw = zeros(oc * ic), *db = zeros(oc);
    mm_loss(&m);
    O->matmul_backward(di, dw, db, m.r, m.inp, m.w, n, ic, oc);
    O->matmul_scaled_forward(m.out, m.inp, m.w, 0.37f, n, ic, oc);
    O->matmul_scaled_backward(di, dw, m.r, m.inp, m.w, 0.37f, n, ic, oc);
    det_keep(d, m.out, n * oc), det_keep(d, di, n * ic), det_keep(d, dw, oc * ic), det_keep(d, db, oc);
    free(di), free(dw), free(db);
    mm_free(&m);
}

static void det_norms(struct det *d) {
    for (int rms = 0; rms <= 1; rms++) {
        struct norm p = norm_make(67, 1031, rms, 1200 + rms);
        float *di = zeros(67 * 1031), *dw = zeros(1031), *db = zeros(1031);
        norm_loss(&p);
        norm_backward(&p, di, dw, db);
        det_keep(d, p.out, 67 * 1031), det_keep(d, p.rstd, 67), det_keep(d, p.mean, 67);
        det_keep(d, di, 67 * 1031), det_keep(d, dw, 1031), det_keep(d, db, 1031);
        free(di), free(dw), free(db);
        norm_free(&p);
    }
}

static void det_attention(struct det *d) {
    int32_t len[2] = {41, 29};
    struct attn a = attn_make(2, 41, 3, 16, 1, len, 1300);
    size_t n = attn_n(&a);
    float *dq = zeros(n), *dk = zeros(n), *dv = zeros(n);
    attn_loss(&a);
    attn_grads(&a, dq, dk, dv);
    det_keep(d, a.out, n), det_keep(d, a.probs, 2 * 3 * 41 * 41);
    det_keep(d, dq, n), det_keep(d, dk, n), det_keep(d, dv, n);
    int32_t pos[82];
    for (int i = 0; i < 82; i++)
        pos[i] = i % 41;
    O->rope_forward(a.q, pos, 2, 41, 3, 16, 10000.0f);
    O->rope_backward(a.k, pos, 2, 41, 3, 16, 10000.0f);
    det_keep(d, a.q, n), det_keep(d, a.k, n);
    free(dq), free(dk), free(dv);
    attn_free(&a);
}

static void det_elementwise(struct det *d) {
    size_t n = 100001;
    float *x = vec(n, 1400, -4, 4), *u = vec(n, 1401, -2, 2), *r = vec(n, 1402, -1, 1);
    float *o = zeros(n), *g1 = zeros(n), *g2 = zeros(n);
    O->gelu_forward(o, x, n), O->gelu_backward(g1, r, x, n);
    det_keep(d, o, n), det_keep(d, g1, n);
    O->quick_gelu_forward(o, x, n), O->quick_gelu_backward(g1, r, x, n);
    det_keep(d, o, n), det_keep(d, g1, n);
    O->swiglu_forward(o, x, u, n), O->swiglu_backward(g1, g2, r, x, u, n);
    det_keep(d, o, n), det_keep(d, g1, n), det_keep(d, g2, n);
    O->add(o, x, u, n), O->accumulate(g2, r, n), O->scale(g1, 0.25f, n);
    det_keep(d, o, n), det_keep(d, g1, n), det_keep(d, g2, n);
    float ss = (float)O->sum_squares(x, n), ssd[2];
    double s = O->sum_squares(x, n);
    memcpy(ssd, &s, sizeof s);
    det_keep(d, &ss, 1), det_keep(d, ssd, 2);
    O->adamw(x, r, u, g2, n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f,
             2); /* u, g2 as moments (g2 >= 0 not needed) */
    det_keep(d, x, n), det_keep(d, u, n);
    free(x), free(u), free(r), free(o), free(g1), free(g2);

    size_t rows = 300, c = 256, vocab = 50;
    int32_t tok[300];
    for (size_t i = 0; i < rows; i++)
        tok[i] = (int32_t)((i * 13) % vocab);
    float *table = vec(vocab * c, 1410, -1, 1), *out = zeros(rows * c), *dt = zeros(vocab * c);
    float *dout = vec(rows * c, 1411, -1, 1);
    O->embedding_forward(out, tok, table, rows, c);
    O->embedding_backward(dt, dout, tok, rows, c);
    det_keep(d, out, rows * c), det_keep(d, dt, vocab * c);
    free(table), free(out), free(dt), free(dout);
}

static void det_losses(struct det *d) {
    size_t n = 17, v = 3001;
    float *x = vec(n * v, 1500, -5, 5), *r = vec(n * v, 1501, -5, 5), *dl = vec(n, 1502, -1, 1);
    float *out = zeros(n), *dx = zeros(n * v);
    int32_t target[17];
    uint8_t mask[17];
    for (size_t i = 0; i < n; i++)
        target[i] = (int32_t)(i * 101 % v), mask[i] = i % 5 != 3;
    O->logprob_forward(out, x, target, mask, n, v);
    O->logprob_backward(dx, dl, x, target, mask, n, v);
    det_keep(d, out, n), det_keep(d, dx, n * v);
    O->kl_forward(out, x, r, mask, n, v);
    O->kl_backward(dx, dl, x, r, mask, n, v);
    det_keep(d, out, n), det_keep(d, dx, n * v);
    free(x), free(r), free(dl), free(out), free(dx);
}

static void det_run(struct det *d, int threads) {
    O = ops_cpu(threads);
    d->count = 0;
    det_matmul(d, 257, 131, 515); /* odd sizes, blocks of columns */
    det_matmul(d, 515, 131, 257); /* blocks of rows */
    det_matmul(d, 7, 5, 3);       /* a single block */
    det_norms(d);
    det_attention(d);
    det_elementwise(d);
    det_losses(d);
}

static void test_determinism(void) {
    struct det one, other;
    det_run(&one, 1);
    static const int counts[] = {2, 3, 8};
    for (size_t c = 0; c < sizeof counts / sizeof *counts; c++) {
        int threads = counts[c];
        det_run(&other, threads);
        CHECK(other.count == one.count);
        for (int i = 0; i < one.count && i < other.count; i++) {
            int same = one.len[i] == other.len[i] && memcmp(one.buf[i], other.buf[i], one.len[i] * 4) == 0;
            if (!same)
                fprintf(stderr, "  determinism: output %d differs between 1 and %d threads\n", i, threads);
            CHECK(same);
        }
        for (int i = 0; i < other.count; i++)
            free(other.buf[i]);
    }
    for (int i = 0; i < one.count; i++)
        free(one.buf[i]);
}

int main(void) {
    for (int threads = 1; threads <= 2; threads++) {
        O = ops_cpu(threads);
        CHECK_STR(O->name, "cpu");
        test_matmul();
        test_matmul_scaled(5, 7, 6, 2.0f);
        test_matmul_scaled(300, 16, 130, 0.37f); /* blocks of rows: LoRA's r = 16 inner dimension */
        test_matmul_scaled(90, 150, 400, -1.5f); /* blocks of columns */
        test_norm(0);
        test_norm(1);
        test_rope();
        test_attention();
        test_activation(ACT_GELU, "gelu");
        test_activation(ACT_QUICK, "quick_gelu");
        test_activation(ACT_SWIGLU, "swiglu");
        test_add_embedding();
        test_repeat_kv();
        test_loss(0);
        test_loss(1);
        test_loss_stable();
        test_optim();
        test_fixture();
    }
    test_determinism();
    return check_done("engine_ops");
}

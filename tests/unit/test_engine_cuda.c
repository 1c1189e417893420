/* test_engine_cuda: the CUDA backend against the CPU backend, whose results are the reference semantics.
 * Every entry of the operation table runs on the same random inputs on both (accumulated gradients, NULL
 * optional pointers, causal and padding masks, odd sizes, rows long enough for multi-block reductions, empty
 * shapes); then the LLaVA model, on the tiny fixture and on a mid-size random model: logits, loss and every
 * gradient with all parameters trainable and with a LoRA adapter (dropout on), and the weights after a few
 * AdamW steps; then the bf16 tables (ops_precision): the matmul, LoRA down-projection and attention cases,
 * and the tiny model's LoRA forward and backward. Two CUDA runs must give the same bits. Prints one line per
 * comparison, so a GPU log says where the backends part, and lists every failure at the end. Exits 77
 * (skipped) in a build without the CUDA backend or on a machine without a GPU. PULSE_PARITY_OPS_ONLY=1 skips
 * the model (for a run under compute-sanitizer, whose slower kernels the model's sizes would not fit). */
#ifndef PULSE_HAVE_CUDA

#include <stdio.h>

int main(void) {
    printf("SKIP: this build has no CUDA backend\n");
    return 77;
}

#else

#include "check.h"
#include "numcheck.h"
#include "engine/config.h"
#include "engine/device.h"
#include "engine/kernels.h"
#include "engine/llava.h"
#include "engine/llava_io.h"
#include "engine/lora.h"
#include "engine/mem.h"
#include "engine/ops.h"
#include "engine/rng.h"
#include "engine/safetensors.h"
#include "engine/train.h"
#include "util/err.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const struct ops *CPU, *GPU;

/* Every failed comparison, for the summary at the end (the count goes on past the list's end). */
#define MAX_FAILED 128
static char failed[MAX_FAILED][160];
static int nfailed;

static void verdict(int ok, const char *what) {
    check_count++;
    if (ok)
        return;
    check_failures++;
    if (nfailed < MAX_FAILED)
        snprintf(failed[nfailed], sizeof failed[0], "%s", what);
    nfailed++;
}

/* ---- memory and comparisons ---- */

/* n floats from engine/mem.h (CUDA managed memory once the CUDA table is selected), uniform in [lo, hi), a
 * pure function of seed. */
static float *rnd(size_t n, uint64_t seed, float lo, float hi) {
    float *x = mem_alloc(n ? n : 1, sizeof(float));
    uint64_t key = rng_key(seed, 0x70617269);
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * rng_uniform(key, i);
    return x;
}

static float *fdup(const float *x, size_t n) {
    float *y = mem_alloc(n ? n : 1, sizeof(float));
    if (n)
        memcpy(y, x, n * sizeof(float));
    return y;
}

static int32_t *ints(size_t n) {
    return mem_alloc(n ? n : 1, sizeof(int32_t));
}

/* max |got - want| / max |want| over n values (the plain difference when want is all zero): the parity
 * measure, relative to the output's scale, so an element that cancels to near zero is not judged on its own
 * tiny size. INFINITY when a NaN or infinity appears where the two differ. *ndiff: elements whose bits
 * differ.
 */
static double max_rel(const float *got, const float *want, size_t n, size_t *ndiff) {
    double worst = 0.0, scale = 0.0;
    size_t nd = 0;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (memcmp(&got[i], &want[i], sizeof(float)) != 0)
            nd++;
        if (isfinite(want[i]) && fabs((double)want[i]) > scale)
            scale = fabs((double)want[i]);
        if (got[i] == want[i])
            continue;
        double d = fabs((double)got[i] - (double)want[i]);
        if (!(d <= DBL_MAX))
            bad = 1;
        else if (d > worst)
            worst = d;
    }
    if (ndiff)
        *ndiff = nd;
    if (bad)
        return INFINITY;
    return scale > 0.0 ? worst / scale : worst;
}

/* fp32 parity of one operation: relative to the largest |reference| value of the output. The operations
 * differ from the CPU's only in summation order (and library erff/expf/cosf/powf by an ulp); 1e-5 is ~100
 * roundings, far below what a wrong index, mask or formula gives (>= 1e-3). */
#define TOL 1e-5

/* ---- one operation, both backends ---- */

/* An output of a case: each backend's copy starts as `init` (n values) or, without init, as uniform values
 * from seed (nonzero, so an accumulate that overwrites or a forward that skips an element shows); null: the
 * operation is given NULL instead. A list of them ends with a zero entry. */
struct out {
    const char *name;
    size_t n;
    uint64_t seed;
    int null;
    const float *init;
};

/* bf16 attention (test_ops_bf16): the products' operands include values each backend computes itself (the
 * probabilities, dS), and one within the backends' summation difference of a rounding boundary rounds to the
 * neighbouring bf16 value on one side: a flip, rare (a few fp32 ulps against a bf16 step of 2^16 of them),
 * that moves the hs outputs it feeds by up to a bf16 step of their term (2^-7). When flip_tol is set, an
 * output passes with at most 1% of its elements beyond tol and none beyond flip_tol; a missing or extra
 * rounding moves nearly every element by ~1e-3, so it still fails. */
static double flip_tol;

/* Elements of got further than tol * max|want| from want. */
static size_t count_over(const float *got, const float *want, size_t n, double tol) {
    double scale = 0.0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(want[i]) && fabs((double)want[i]) > scale)
            scale = fabs((double)want[i]);
    size_t over = 0;
    for (size_t i = 0; i < n; i++)
        over += !(fabs((double)got[i] - (double)want[i]) <= tol * scale);
    return over;
}

#define NOUT 4
typedef void (*run_fn)(const struct ops *o, const void *ctx, float *const *out);

/* Runs the case on the CPU table, then twice on the CUDA table (from the same starting outputs), and
 * compares every output: CUDA against CPU within tol (0: the same values), CUDA against CUDA bit for bit. */
static void parity(const char *op, const char *shape, run_fn run, const void *ctx, const struct out *outs,
                   double tol) {
    float *c[NOUT] = {0}, *g[NOUT] = {0}, *g2[NOUT] = {0};
    int k, nout = 0, any = 0;
    for (k = 0; outs[k].name && k < NOUT; k++) {
        nout++;
        if (outs[k].null)
            continue;
        any = 1;
        float *init = outs[k].init ? fdup(outs[k].init, outs[k].n) : rnd(outs[k].n, outs[k].seed, -1, 1);
        c[k] = fdup(init, outs[k].n);
        g[k] = fdup(init, outs[k].n);
        g2[k] = fdup(init, outs[k].n);
        mem_free(init);
    }
    run(CPU, ctx, c);
    run(GPU, ctx, g);
    run(GPU, ctx, g2);
    GPU->sync(); /* the CUDA operations may still be running: the comparisons read their outputs */
    char what[160];
    for (k = 0; k < nout; k++) {
        if (outs[k].null)
            continue;
        size_t n = outs[k].n, nd = 0;
        double err = max_rel(g[k], c[k], n, &nd);
        int same = n == 0 || memcmp(g[k], g2[k], n * sizeof(float)) == 0;
        size_t over = flip_tol > 0 ? count_over(g[k], c[k], n, tol) : 0;
        int ok = (flip_tol > 0 ? over * 100 <= n && err <= flip_tol : err <= tol) && same;
        char flips[64] = "";
        if (flip_tol > 0)
            snprintf(flips, sizeof flips, "; %zu beyond tol, flips", over);
        printf("%-20s %-44s %-6s max_rel_err %.2e (tol %.0e; %zu of %zu differ%s)%s%s\n", op, shape,
               outs[k].name, err, tol, nd, n, flips, same ? "" : " NOT DETERMINISTIC", ok ? "" : "  FAIL");
        snprintf(what, sizeof what, "%s [%s] %s: max_rel_err %.3g%s", op, shape, outs[k].name, err,
                 same ? "" : ", two CUDA runs differ");
        verdict(ok, what);
    }
    if (!any) {
        printf("%-20s %-44s every output NULL: ran\n", op, shape);
        verdict(1, op);
    }
    fflush(stdout);
    for (k = 0; k < nout; k++) {
        mem_free(c[k]);
        mem_free(g[k]);
        mem_free(g2[k]);
    }
}

/* ---- matmul ---- */

struct mm {
    const float *inp, *w, *b, *dout;
    size_t n, ic, oc;
};
static void mm_fwd(const struct ops *o, const void *ctx, float *const *out) {
    const struct mm *p = ctx;
    o->matmul_forward(out[0], p->inp, p->w, p->b, p->n, p->ic, p->oc);
}
static void mm_bwd(const struct ops *o, const void *ctx, float *const *out) {
    const struct mm *p = ctx;
    o->matmul_backward(out[0], out[1], out[2], p->dout, p->inp, p->w, p->n, p->ic, p->oc);
}
#define MM_SCALE 0.37f
static void mms_fwd(const struct ops *o, const void *ctx, float *const *out) {
    const struct mm *p = ctx;
    o->matmul_scaled_forward(out[0], p->inp, p->w, MM_SCALE, p->n, p->ic, p->oc);
}
static void mms_bwd(const struct ops *o, const void *ctx, float *const *out) {
    const struct mm *p = ctx;
    o->matmul_scaled_backward(out[0], out[1], p->dout, p->inp, p->w, MM_SCALE, p->n, p->ic, p->oc);
}

/* The matmul cases' names: "matmul_forward" / "matmul_backward" (and the scaled products'), with "_bf16"
 * appended while the bf16 tables run them (test_ops_bf16). */
static const char *mm_fwd_name = "matmul_forward", *mm_bwd_name = "matmul_backward",
                  *mms_fwd_name = "matmul_scaled_forward", *mms_bwd_name = "matmul_scaled_backward";
static double mm_tol = TOL;

static void test_matmul(size_t n, size_t ic, size_t oc, int bias, int nulls, uint64_t seed) {
    char sh[96];
    snprintf(sh, sizeof sh, "n=%zu ic=%zu oc=%zu%s", n, ic, oc, bias ? " bias" : "");
    struct mm p = {.inp = rnd(n * ic, seed, -1, 1),
                   .w = rnd(oc * ic, seed + 1, -1, 1),
                   .b = bias ? rnd(oc, seed + 2, -1, 1) : NULL,
                   .dout = rnd(n * oc, seed + 3, -1, 1),
                   .n = n,
                   .ic = ic,
                   .oc = oc};
    parity(mm_fwd_name, sh, mm_fwd, &p, (const struct out[]){{"out", n * oc, seed + 4, 0, NULL}, {0}},
           mm_tol);
    parity(mm_bwd_name, sh, mm_bwd, &p,
           (const struct out[]){{"dinp", n * ic, seed + 5, 0, NULL},
                                {"dw", oc * ic, seed + 6, 0, NULL},
                                {"db", oc, seed + 7, 0, NULL},
                                {0}},
           mm_tol);
    /* the scaled products add s times the product to nonzero outputs */
    parity(mms_fwd_name, sh, mms_fwd, &p, (const struct out[]){{"out", n * oc, seed + 4, 0, NULL}, {0}},
           mm_tol);
    parity(mms_bwd_name, sh, mms_bwd, &p,
           (const struct out[]){{"dinp", n * ic, seed + 5, 0, NULL}, {"dw", oc * ic, seed + 6, 0, NULL}, {0}},
           mm_tol);
    if (nulls) { /* each gradient on its own: a NULL one is skipped and changes nothing else */
        char s2[128];
        snprintf(s2, sizeof s2, "%s dw,db=NULL", sh);
        parity(mm_bwd_name, s2, mm_bwd, &p,
               (const struct out[]){{"dinp", n * ic, seed + 5, 0, NULL},
                                    {"dw", oc * ic, 0, 1, NULL},
                                    {"db", oc, 0, 1, NULL},
                                    {0}},
               mm_tol);
        snprintf(s2, sizeof s2, "%s dinp,db=NULL", sh);
        parity(mm_bwd_name, s2, mm_bwd, &p,
               (const struct out[]){{"dinp", n * ic, 0, 1, NULL},
                                    {"dw", oc * ic, seed + 6, 0, NULL},
                                    {"db", oc, 0, 1, NULL},
                                    {0}},
               mm_tol);
        snprintf(s2, sizeof s2, "%s dinp,dw=NULL", sh);
        parity(mm_bwd_name, s2, mm_bwd, &p,
               (const struct out[]){{"dinp", n * ic, 0, 1, NULL},
                                    {"dw", oc * ic, 0, 1, NULL},
                                    {"db", oc, seed + 7, 0, NULL},
                                    {0}},
               mm_tol);
        snprintf(s2, sizeof s2, "%s all NULL", sh);
        parity(mm_bwd_name, s2, mm_bwd, &p,
               (const struct out[]){
                   {"dinp", n * ic, 0, 1, NULL}, {"dw", oc * ic, 0, 1, NULL}, {"db", oc, 0, 1, NULL}, {0}},
               mm_tol);
    }
    mem_free((void *)p.inp);
    mem_free((void *)p.w);
    mem_free((void *)p.b);
    mem_free((void *)p.dout);
}

/* ---- LoRA's down projection with its input dropout ---- */

/* xs and dxs are the operations' scratch: not outputs (their contents afterwards are unspecified, and the
 * bf16 CUDA table does not write xs), so they live here, not among the compared outputs. */
struct ld {
    const float *x, *a, *dh;
    float *xs, *dxs;
    struct ops_dropout d;
    size_t n, ic, r;
};
static void ld_fwd(const struct ops *o, const void *ctx, float *const *out) {
    const struct ld *p = ctx;
    o->lora_down_forward(out[0], p->xs, p->x, p->a, p->d, p->n, p->ic, p->r);
}
static void ld_bwd(const struct ops *o, const void *ctx, float *const *out) {
    const struct ld *p = ctx;
    o->lora_down_backward(out[0], out[1], p->xs, p->dxs, p->dh, p->x, p->a, p->d, p->n, p->ic, p->r);
}
static const char *ld_suffix = "";

/* h = dropout(x) a^T and its backward at drop probability p: the products as matmul's (the same tolerance),
 * the mask exact on both sides; dx and da each on their own too. */
static void test_lora_down(size_t n, size_t ic, size_t r, float p, uint64_t seed) {
    char sh[96], s2[128], fwd[48], bwd[48];
    snprintf(sh, sizeof sh, "n=%zu ic=%zu r=%zu p=%.2f", n, ic, r, (double)p);
    snprintf(fwd, sizeof fwd, "lora_down_forward%s", ld_suffix);
    snprintf(bwd, sizeof bwd, "lora_down_backward%s", ld_suffix);
    struct ld c = {.x = rnd(n * ic, seed, -1, 1),
                   .a = rnd(r * ic, seed + 1, -1, 1),
                   .dh = rnd(n * r, seed + 2, -1, 1),
                   .xs = rnd(n * ic, seed + 3, -1, 1),
                   .dxs = rnd(n * ic, seed + 4, -1, 1),
                   .d = {rng_key(seed, 7), p, 1.0f / (1.0f - p)},
                   .n = n,
                   .ic = ic,
                   .r = r};
    parity(fwd, sh, ld_fwd, &c, (const struct out[]){{"h", n * r, seed + 5, 0, NULL}, {0}}, mm_tol);
    parity(bwd, sh, ld_bwd, &c,
           (const struct out[]){{"dx", n * ic, seed + 6, 0, NULL}, {"da", r * ic, seed + 7, 0, NULL}, {0}},
           mm_tol);
    snprintf(s2, sizeof s2, "%s da=NULL", sh);
    parity(bwd, s2, ld_bwd, &c,
           (const struct out[]){{"dx", n * ic, seed + 6, 0, NULL}, {"da", r * ic, 0, 1, NULL}, {0}}, mm_tol);
    snprintf(s2, sizeof s2, "%s dx=NULL", sh);
    parity(bwd, s2, ld_bwd, &c,
           (const struct out[]){{"dx", n * ic, 0, 1, NULL}, {"da", r * ic, seed + 7, 0, NULL}, {0}}, mm_tol);
    mem_free((void *)c.x);
    mem_free((void *)c.a);
    mem_free((void *)c.dh);
    mem_free(c.xs);
    mem_free(c.dxs);
}

/* ---- norms ---- */

struct nm {
    const float *inp, *w, *b, *dout, *mean, *rstd;
    size_t n, c;
};
static void ln_fwd(const struct ops *o, const void *ctx, float *const *out) {
    const struct nm *p = ctx;
    o->layernorm_forward(out[0], out[1], out[2], p->inp, p->w, p->b, p->n, p->c, 1e-5f);
}
static void ln_bwd(const struct ops *o, const void *ctx, float *const *out) {
    const struct nm *p = ctx;
    o->layernorm_backward(out[0], out[1], out[2], p->dout, p->inp, p->w, p->mean, p->rstd, p->n, p->c);
}
static void rms_fwd(const struct ops *o, const void *ctx, float *const *out) {
    const struct nm *p = ctx;
    o->rmsnorm_forward(out[0], out[1], p->inp, p->w, p->n, p->c, 1e-5f);
}
static void rms_bwd(const struct ops *o, const void *ctx, float *const *out) {
    const struct nm *p = ctx;
    o->rmsnorm_backward(out[0], out[1], p->dout, p->inp, p->w, p->rstd, p->n, p->c);
}

/* Inputs off centre ([-3, 5)), so the mean matters; the saved statistics the backward reads come from the
 * CPU forward, the same for both. */
static void test_norms(size_t n, size_t c, int bias, int nulls, uint64_t seed) {
    char sh[96], s2[128];
    snprintf(sh, sizeof sh, "n=%zu c=%zu%s", n, c, bias ? " bias" : "");
    struct nm p = {.inp = rnd(n * c, seed, -3, 5),
                   .w = rnd(c, seed + 1, 0.5f, 1.5f),
                   .b = bias ? rnd(c, seed + 2, -1, 1) : NULL,
                   .dout = rnd(n * c, seed + 3, -1, 1),
                   .n = n,
                   .c = c};
    float *y = mem_alloc(n * c + 1, sizeof(float)), *mean = mem_alloc(n + 1, sizeof(float)),
          *rstd = mem_alloc(n + 1, sizeof(float));
    p.mean = mean;
    p.rstd = rstd;
    parity("layernorm_forward", sh, ln_fwd, &p,
           (const struct out[]){{"out", n * c, seed + 4, 0, NULL},
                                {"mean", n, seed + 5, 0, NULL},
                                {"rstd", n, seed + 6, 0, NULL},
                                {0}},
           TOL);
    CPU->layernorm_forward(y, mean, rstd, p.inp, p.w, p.b, n, c, 1e-5f);
    parity("layernorm_backward", sh, ln_bwd, &p,
           (const struct out[]){{"dinp", n * c, seed + 7, 0, NULL},
                                {"dw", c, seed + 8, 0, NULL},
                                {"db", c, seed + 9, 0, NULL},
                                {0}},
           TOL);
    if (nulls) {
        snprintf(s2, sizeof s2, "%s dw,db=NULL", sh);
        parity("layernorm_backward", s2, ln_bwd, &p,
               (const struct out[]){
                   {"dinp", n * c, seed + 7, 0, NULL}, {"dw", c, 0, 1, NULL}, {"db", c, 0, 1, NULL}, {0}},
               TOL);
        snprintf(s2, sizeof s2, "%s dinp,db=NULL", sh);
        parity("layernorm_backward", s2, ln_bwd, &p,
               (const struct out[]){
                   {"dinp", n * c, 0, 1, NULL}, {"dw", c, seed + 8, 0, NULL}, {"db", c, 0, 1, NULL}, {0}},
               TOL);
        snprintf(s2, sizeof s2, "%s dinp,dw=NULL", sh);
        parity("layernorm_backward", s2, ln_bwd, &p,
               (const struct out[]){
                   {"dinp", n * c, 0, 1, NULL}, {"dw", c, 0, 1, NULL}, {"db", c, seed + 9, 0, NULL}, {0}},
               TOL);
    }
    parity("rmsnorm_forward", sh, rms_fwd, &p,
           (const struct out[]){{"out", n * c, seed + 10, 0, NULL}, {"rstd", n, seed + 11, 0, NULL}, {0}},
           TOL);
    CPU->rmsnorm_forward(y, rstd, p.inp, p.w, n, c, 1e-5f);
    parity("rmsnorm_backward", sh, rms_bwd, &p,
           (const struct out[]){{"dinp", n * c, seed + 12, 0, NULL}, {"dw", c, seed + 13, 0, NULL}, {0}},
           TOL);
    if (nulls) {
        snprintf(s2, sizeof s2, "%s dw=NULL", sh);
        parity("rmsnorm_backward", s2, rms_bwd, &p,
               (const struct out[]){{"dinp", n * c, seed + 12, 0, NULL}, {"dw", c, 0, 1, NULL}, {0}}, TOL);
        snprintf(s2, sizeof s2, "%s dinp=NULL", sh);
        parity("rmsnorm_backward", s2, rms_bwd, &p,
               (const struct out[]){{"dinp", n * c, 0, 1, NULL}, {"dw", c, seed + 13, 0, NULL}, {0}}, TOL);
    }
    mem_free(y);
    mem_free(mean);
    mem_free(rstd);
    mem_free((void *)p.inp);
    mem_free((void *)p.w);
    mem_free((void *)p.b);
    mem_free((void *)p.dout);
}

/* ---- rotary embedding and attention ---- */

struct rp {
    const int32_t *pos;
    size_t b, t, nh, hs;
    float theta;
};
static void rope_fwd(const struct ops *o, const void *ctx, float *const *out) {
    const struct rp *p = ctx;
    o->rope_forward(out[0], p->pos, p->b, p->t, p->nh, p->hs, p->theta);
}
static void rope_bwd(const struct ops *o, const void *ctx, float *const *out) {
    const struct rp *p = ctx;
    o->rope_backward(out[0], p->pos, p->b, p->t, p->nh, p->hs, p->theta);
}

/* spread: positions far apart and out of order (up to 4095, LLaVA-1.5's last position) instead of 0..t-1 in
 * every row. At such positions an ulp of the frequency moves the angle visibly (kernels.h's rope comment), so
 * this also shows whether the GPU computes the angles as the CPU does. */
static void test_rope(size_t b, size_t t, size_t nh, size_t hs, int spread, uint64_t seed) {
    char sh[96];
    snprintf(sh, sizeof sh, "b=%zu t=%zu nh=%zu hs=%zu pos=%s", b, t, nh, hs, spread ? "spread" : "0..t-1");
    int32_t *pos = ints(b * t);
    for (size_t i = 0; i < b * t; i++)
        pos[i] = spread ? (int32_t)(4095 - (i * 1237) % 4096) : (int32_t)(i % t);
    struct rp p = {.pos = pos, .b = b, .t = t, .nh = nh, .hs = hs, .theta = 10000.0f};
    float *x = rnd(b * t * nh * hs, seed, -2, 2);
    parity("rope_forward", sh, rope_fwd, &p, (const struct out[]){{"x", b * t * nh * hs, 0, 0, x}, {0}}, TOL);
    parity("rope_backward", sh, rope_bwd, &p, (const struct out[]){{"dx", b * t * nh * hs, 0, 0, x}, {0}},
           TOL);
    mem_free(x);
    mem_free(pos);
}

struct at {
    const float *q, *k, *v, *dout, *probs;
    const int32_t *len;
    int causal;
    size_t b, t, nh, hs;
};
static void att_fwd(const struct ops *o, const void *ctx, float *const *out) {
    const struct at *p = ctx;
    o->attention_forward(out[0], out[1], p->q, p->k, p->v, p->len, p->causal, p->b, p->t, p->nh, p->hs);
}
static void att_bwd(const struct ops *o, const void *ctx, float *const *out) {
    const struct at *p = ctx;
    o->attention_backward(out[0], out[1], out[2], p->dout, p->probs, p->q, p->k, p->v, p->b, p->t, p->nh,
                          p->hs);
}

/* The attention cases' names: "_bf16" appended while the bf16 tables run them (test_ops_bf16). */
static const char *att_fwd_name = "attention_forward", *att_bwd_name = "attention_backward";

/* lens: b valid lengths, or NULL for no padding mask. Scores of order 1 (q, k in [-2, 2), scaled by
 * 1/sqrt(hs)), so the softmax is neither flat nor one-hot. The backward reads the CPU forward's probs. */
static void test_attention(size_t b, size_t t, size_t nh, size_t hs, int causal, const int32_t *lens,
                           int nulls, uint64_t seed) {
    char sh[128], s2[160];
    int k = snprintf(sh, sizeof sh, "b=%zu t=%zu nh=%zu hs=%zu %s len=", b, t, nh, hs,
                     causal ? "causal" : "full");
    for (size_t i = 0; lens && i < b && k > 0 && (size_t)k < sizeof sh; i++)
        k += snprintf(sh + k, sizeof sh - (size_t)k, "%s%d", i ? "," : "", lens[i]);
    if (!lens)
        snprintf(sh + k, sizeof sh - (size_t)k, "NULL");
    size_t n = b * t * nh * hs, np = b * nh * t * t;
    int32_t *len = NULL;
    if (lens) {
        len = ints(b);
        memcpy(len, lens, b * sizeof(int32_t));
    }
    struct at p = {.q = rnd(n, seed, -2, 2),
                   .k = rnd(n, seed + 1, -2, 2),
                   .v = rnd(n, seed + 2, -1, 1),
                   .dout = rnd(n, seed + 3, -1, 1),
                   .len = len,
                   .causal = causal,
                   .b = b,
                   .t = t,
                   .nh = nh,
                   .hs = hs};
    float *out = mem_alloc(n + 1, sizeof(float)), *probs = mem_alloc(np + 1, sizeof(float));
    p.probs = probs;
    parity(att_fwd_name, sh, att_fwd, &p,
           (const struct out[]){{"out", n, seed + 4, 0, NULL}, {"probs", np, seed + 5, 0, NULL}, {0}}, TOL);
    CPU->attention_forward(out, probs, p.q, p.k, p.v, p.len, causal, b, t, nh, hs);
    parity(att_bwd_name, sh, att_bwd, &p,
           (const struct out[]){
               {"dq", n, seed + 6, 0, NULL}, {"dk", n, seed + 7, 0, NULL}, {"dv", n, seed + 8, 0, NULL}, {0}},
           TOL);
    if (nulls) {
        snprintf(s2, sizeof s2, "%s dk,dv=NULL", sh);
        parity(att_bwd_name, s2, att_bwd, &p,
               (const struct out[]){
                   {"dq", n, seed + 6, 0, NULL}, {"dk", n, 0, 1, NULL}, {"dv", n, 0, 1, NULL}, {0}},
               TOL);
        snprintf(s2, sizeof s2, "%s dq=NULL", sh);
        parity(att_bwd_name, s2, att_bwd, &p,
               (const struct out[]){
                   {"dq", n, 0, 1, NULL}, {"dk", n, seed + 7, 0, NULL}, {"dv", n, seed + 8, 0, NULL}, {0}},
               TOL);
        snprintf(s2, sizeof s2, "%s all NULL", sh);
        parity(att_bwd_name, s2, att_bwd, &p,
               (const struct out[]){{"dq", n, 0, 1, NULL}, {"dk", n, 0, 1, NULL}, {"dv", n, 0, 1, NULL}, {0}},
               TOL);
    }
    mem_free(out);
    mem_free(probs);
    mem_free(len);
    mem_free((void *)p.q);
    mem_free((void *)p.k);
    mem_free((void *)p.v);
    mem_free((void *)p.dout);
}

/* attention_decode (generation): one query per sequence against a cache of cap positions, kvh kv heads. */
struct atd {
    const float *q, *k, *v;
    const int32_t *len;
    size_t b, cap, nh, kvh, hs;
};
static void atd_f(const struct ops *o, const void *ctx, float *const *out) {
    const struct atd *p = ctx;
    o->attention_decode(out[0], p->q, p->k, p->v, p->len, p->b, p->cap, p->nh, p->kvh, p->hs);
}
static void test_attention_decode(size_t b, size_t cap, size_t nh, size_t kvh, size_t hs, const int32_t *lens,
                                  uint64_t seed) {
    char sh[128];
    snprintf(sh, sizeof sh, "b=%zu cap=%zu nh=%zu kvh=%zu hs=%zu len0=%d", b, cap, nh, kvh, hs, lens[0]);
    size_t nc = b * cap * kvh * hs;
    int32_t *len = ints(b);
    memcpy(len, lens, b * sizeof(int32_t));
    struct atd p = {.q = rnd(b * nh * hs, seed, -2, 2),
                    .k = rnd(nc, seed + 1, -2, 2),
                    .v = rnd(nc, seed + 2, -1, 1),
                    .len = len,
                    .b = b,
                    .cap = cap,
                    .nh = nh,
                    .kvh = kvh,
                    .hs = hs};
    parity("attention_decode", sh, atd_f, &p,
           (const struct out[]){{"out", b * nh * hs, seed + 3, 0, NULL}, {0}}, TOL);
    mem_free((void *)p.q);
    mem_free((void *)p.k);
    mem_free((void *)p.v);
    mem_free(len);
}

/* ---- elementwise, embeddings, optimizer ---- */

struct ew {
    const float *a, *b, *c;
    const int32_t *tok;
    size_t n, cols;
    float s, p;
    uint64_t key;
    int acc;
};
static void gelu_f(const struct ops *o, const void *ctx, float *const *out) {
    const struct ew *e = ctx;
    o->gelu_forward(out[0], e->a, e->n);
}
static void gelu_b(const struct ops *o, const void *ctx, float *const *out) {
    const struct ew *e = ctx; /* a = inp, b = dout */
    o->gelu_backward(out[0], e->b, e->a, e->n);
}
static void qgelu_f(const struct ops *o, const void *ctx, float *const *out) {
    const struct ew *e = ctx;
    o->quick_gelu_forward(out[0], e->a, e->n);
}
static void qgelu_b(const struct ops *o, const void *ctx, float *const *out) {
    const struct ew *e = ctx;
    o->quick_gelu_backward(out[0], e->b, e->a, e->n);
}
static void swiglu_f(const struct ops *o, const void *ctx, float *const *out) {
    const struct ew *e = ctx; /* a = gate, c = up */
    o->swiglu_forward(out[0], e->a, e->c, e->n);
}
static void swiglu_b(const struct ops *o, const void *ctx, float *const *out) {
    const struct ew *e = ctx;
    o->swiglu_backward(out[0], out[1], e->b, e->a, e->c, e->n);
}
static void add_f(const struct ops *o, const void *ctx, float *const *out) {
    const struct ew *e = ctx;
    o->add(out[0], e->a, e->b, e->n);
}
static void acc_f(const struct ops *o, const void *ctx, float *const *out) {
    const struct ew *e = ctx;
    o->accumulate(out[0], e->a, e->n);
}
static void copy_f(const struct ops *o, const void *ctx, float *const *out) {
    const struct ew *e = ctx;
    o->copy(out[0], e->a, e->n);
}
static void zero_f(const struct ops *o, const void *ctx, float *const *out) {
    const struct ew *e = ctx;
    o->zero(out[0], e->n);
}
static void add_scaled_f(const struct ops *o, const void *ctx, float *const *out) {
    const struct ew *e = ctx;
    o->add_scaled(out[0], e->a, e->s, e->n);
}
static void dropout_f(const struct ops *o, const void *ctx, float *const *out) {
    const struct ew *e = ctx;
    o->dropout(out[0], e->a, e->n, e->key, e->p, e->s, e->acc);
}
static void scale_f(const struct ops *o, const void *ctx, float *const *out) {
    const struct ew *e = ctx;
    o->scale(out[0], e->s, e->n);
}
static void emb_f(const struct ops *o, const void *ctx, float *const *out) {
    const struct ew *e = ctx; /* a = table */
    o->embedding_forward(out[0], e->tok, e->a, e->n, e->cols);
}
static void emb_b(const struct ops *o, const void *ctx, float *const *out) {
    const struct ew *e = ctx; /* b = dout */
    o->embedding_backward(out[0], e->b, e->tok, e->n, e->cols);
}

/* Inputs in [-8, 8): the activations' tails (sigmoid saturating, erf near 1) as well as their middle. Data
 * movement, the adds and dropout are one rounding (or none) per element on both sides: they must agree
 * exactly (tol 0), and dropout's mask is a pure function of (key, index). */
static void test_elementwise(size_t n, uint64_t seed) {
    char sh[64], s2[96];
    snprintf(sh, sizeof sh, "n=%zu", n);
    struct ew e = {
        .a = rnd(n, seed, -8, 8), .b = rnd(n, seed + 1, -1, 1), .c = rnd(n, seed + 2, -2, 2), .n = n};
    parity("gelu_forward", sh, gelu_f, &e, (const struct out[]){{"out", n, seed + 3, 0, NULL}, {0}}, TOL);
    parity("gelu_backward", sh, gelu_b, &e, (const struct out[]){{"dinp", n, seed + 4, 0, NULL}, {0}}, TOL);
    parity("quick_gelu_forward", sh, qgelu_f, &e, (const struct out[]){{"out", n, seed + 5, 0, NULL}, {0}},
           TOL);
    parity("quick_gelu_backward", sh, qgelu_b, &e, (const struct out[]){{"dinp", n, seed + 6, 0, NULL}, {0}},
           TOL);
    parity("swiglu_forward", sh, swiglu_f, &e, (const struct out[]){{"out", n, seed + 7, 0, NULL}, {0}}, TOL);
    parity("swiglu_backward", sh, swiglu_b, &e,
           (const struct out[]){{"dgate", n, seed + 8, 0, NULL}, {"dup", n, seed + 9, 0, NULL}, {0}}, TOL);
    snprintf(s2, sizeof s2, "%s dup=NULL", sh);
    parity("swiglu_backward", s2, swiglu_b, &e,
           (const struct out[]){{"dgate", n, seed + 8, 0, NULL}, {"dup", n, 0, 1, NULL}, {0}}, TOL);
    snprintf(s2, sizeof s2, "%s dgate=NULL", sh);
    parity("swiglu_backward", s2, swiglu_b, &e,
           (const struct out[]){{"dgate", n, 0, 1, NULL}, {"dup", n, seed + 9, 0, NULL}, {0}}, TOL);
    snprintf(s2, sizeof s2, "%s dinp=NULL", sh);
    parity("gelu_backward", s2, gelu_b, &e, (const struct out[]){{"dinp", n, 0, 1, NULL}, {0}}, TOL);
    parity("quick_gelu_backward", s2, qgelu_b, &e, (const struct out[]){{"dinp", n, 0, 1, NULL}, {0}}, TOL);

    parity("add", sh, add_f, &e, (const struct out[]){{"out", n, seed + 10, 0, NULL}, {0}}, 0);
    parity("accumulate", sh, acc_f, &e, (const struct out[]){{"dst", n, seed + 11, 0, NULL}, {0}}, 0);
    snprintf(s2, sizeof s2, "%s dst=NULL", sh);
    parity("accumulate", s2, acc_f, &e, (const struct out[]){{"dst", n, 0, 1, NULL}, {0}}, 0);
    parity("copy", sh, copy_f, &e, (const struct out[]){{"dst", n, seed + 12, 0, NULL}, {0}}, 0);
    parity("zero", sh, zero_f, &e, (const struct out[]){{"x", n, seed + 13, 0, NULL}, {0}}, 0);
    e.s = 0.3711f;
    parity("add_scaled", sh, add_scaled_f, &e, (const struct out[]){{"out", n, seed + 14, 0, NULL}, {0}}, 0);
    parity("scale", sh, scale_f, &e, (const struct out[]){{"x", n, seed + 15, 0, NULL}, {0}}, 0);
    static const float probs[] = {0.0f, 0.1f, 0.5f};
    for (int acc = 0; acc < 2; acc++)
        for (size_t k = 0; k < sizeof probs / sizeof probs[0]; k++) {
            e.p = probs[k];
            e.s = 1.0f / (1.0f - e.p);
            e.key = rng_key(seed, 1000 + k);
            e.acc = acc;
            snprintf(s2, sizeof s2, "%s p=%.1f %s", sh, (double)e.p, acc ? "accumulate" : "write");
            parity("dropout", s2, dropout_f, &e, (const struct out[]){{"out", n, seed + 16, 0, NULL}, {0}},
                   0);
        }
    mem_free((void *)e.a);
    mem_free((void *)e.b);
    mem_free((void *)e.c);
}

/* Grouped-query heads: n rows of kvh heads of hs, each repeated rep times, and the backward's sums (in the
 * same order on both sides: exact). */
struct rkv {
    const float *in, *dout;
    size_t n, kvh, rep, hs;
};
static void rkv_f(const struct ops *o, const void *ctx, float *const *out) {
    const struct rkv *r = ctx;
    o->repeat_kv(out[0], r->in, r->n, r->kvh, r->rep, r->hs);
}
static void rkv_b(const struct ops *o, const void *ctx, float *const *out) {
    const struct rkv *r = ctx;
    o->repeat_kv_backward(out[0], r->dout, r->n, r->kvh, r->rep, r->hs);
}
static void test_repeat_kv(size_t n, size_t kvh, size_t rep, size_t hs, uint64_t seed) {
    char sh[64], s2[96];
    snprintf(sh, sizeof sh, "n=%zu kvh=%zu rep=%zu hs=%zu", n, kvh, rep, hs);
    size_t nin = n * kvh * hs, nout = nin * rep;
    struct rkv r = {rnd(nin, seed, -1, 1), rnd(nout, seed + 1, -1, 1), n, kvh, rep, hs};
    parity("repeat_kv", sh, rkv_f, &r, (const struct out[]){{"out", nout, seed + 2, 0, NULL}, {0}}, 0);
    parity("repeat_kv_backward", sh, rkv_b, &r, (const struct out[]){{"din", nin, seed + 3, 0, NULL}, {0}},
           0);
    snprintf(s2, sizeof s2, "%s din=NULL", sh);
    parity("repeat_kv_backward", s2, rkv_b, &r, (const struct out[]){{"din", nin, 0, 1, NULL}, {0}}, 0);
    mem_free((void *)r.in);
    mem_free((void *)r.dout);
}

/* n token rows of c columns from a table of `rows`: repeated ids (the backward sums them in row order) and
 * negative ones (a zero row, no gradient). */
static void test_embedding(size_t n, size_t c, size_t rows, uint64_t seed) {
    char sh[64], s2[96];
    snprintf(sh, sizeof sh, "n=%zu c=%zu rows=%zu", n, c, rows);
    int32_t *tok = ints(n);
    uint64_t key = rng_key(seed, 5);
    for (size_t i = 0; i < n; i++)
        tok[i] = i % 7 == 3 ? -1 : (int32_t)(rng_u64(key, i) % (rows < 5 ? rows : 5 + rows / 4));
    struct ew e = {
        .a = rnd(rows * c, seed, -1, 1), .b = rnd(n * c, seed + 1, -1, 1), .tok = tok, .n = n, .cols = c};
    parity("embedding_forward", sh, emb_f, &e, (const struct out[]){{"out", n * c, seed + 2, 0, NULL}, {0}},
           0);
    parity("embedding_backward", sh, emb_b, &e,
           (const struct out[]){{"dtable", rows * c, seed + 3, 0, NULL}, {0}}, TOL);
    snprintf(s2, sizeof s2, "%s dtable=NULL", sh);
    parity("embedding_backward", s2, emb_b, &e, (const struct out[]){{"dtable", rows * c, 0, 1, NULL}, {0}},
           TOL);
    mem_free((void *)e.a);
    mem_free((void *)e.b);
    mem_free(tok);
}

struct aw {
    const float *grad;
    size_t n;
    float lr, beta1, beta2, eps, wd;
    int t;
};
static void adamw_f(const struct ops *o, const void *ctx, float *const *out) {
    const struct aw *a = ctx;
    o->adamw(out[0], a->grad, out[1], out[2], a->n, a->lr, a->beta1, a->beta2, a->eps, a->wd, a->t);
}

static void test_adamw(size_t n, int t, float beta1, uint64_t seed) {
    char sh[96];
    snprintf(sh, sizeof sh, "n=%zu t=%d beta1=%.2f", n, t, (double)beta1);
    struct aw a = {.grad = rnd(n, seed, -1, 1),
                   .n = n,
                   .lr = 1e-3f,
                   .beta1 = beta1,
                   .beta2 = 0.999f,
                   .eps = 1e-8f,
                   .wd = 0.01f,
                   .t = t};
    float *p = rnd(n, seed + 1, -1, 1), *m = rnd(n, seed + 2, -0.1f, 0.1f), *v = rnd(n, seed + 3, 0, 0.01f);
    parity("adamw", sh, adamw_f, &a,
           (const struct out[]){{"param", n, 0, 0, p}, {"m", n, 0, 0, m}, {"v", n, 0, 0, v}, {0}}, TOL);
    mem_free(p);
    mem_free(m);
    mem_free(v);
    mem_free((void *)a.grad);
}

/* sum_squares: both sum exact double products in double, so only the order of the double additions differs:
 * a relative 1e-11 is ~1e5 double roundings, and a float accumulation (or float products) would be ~1e-7 off.
 * Two CUDA calls must return the same double. */
static void test_sum_squares(size_t n, uint64_t seed) {
    float *x = rnd(n, seed, -2, 2);
    double c = CPU->sum_squares(x, n), g = GPU->sum_squares(x, n), g2 = GPU->sum_squares(x, n);
    double rel = c != 0.0 ? fabs(g - c) / fabs(c) : fabs(g);
    int same = memcmp(&g, &g2, sizeof g) == 0, ok = rel <= 1e-11 && same;
    char sh[64], what[160];
    snprintf(sh, sizeof sh, "n=%zu", n);
    printf("%-20s %-44s %-6s rel_err %.2e (tol 1e-11; cuda %.17g, cpu %.17g)%s%s\n", "sum_squares", sh, "sum",
           rel, g, c, same ? "" : " NOT DETERMINISTIC", ok ? "" : "  FAIL");
    snprintf(what, sizeof what, "sum_squares [%s]: rel_err %.3g%s", sh, rel,
             same ? "" : ", two CUDA runs differ");
    verdict(ok, what);
    mem_free(x);
}

/* ---- losses ---- */

struct ls {
    const float *logits, *ref, *dout;
    const int32_t *target;
    const uint8_t *mask;
    size_t n, v;
};
static void lp_f(const struct ops *o, const void *ctx, float *const *out) {
    const struct ls *l = ctx;
    o->logprob_forward(out[0], l->logits, l->target, l->mask, l->n, l->v);
}
static void lp_b(const struct ops *o, const void *ctx, float *const *out) {
    const struct ls *l = ctx;
    o->logprob_backward(out[0], l->dout, l->logits, l->target, l->mask, l->n, l->v);
}
static void kl_f(const struct ops *o, const void *ctx, float *const *out) {
    const struct ls *l = ctx;
    o->kl_forward(out[0], l->logits, l->ref, l->mask, l->n, l->v);
}
static void kl_b(const struct ops *o, const void *ctx, float *const *out) {
    const struct ls *l = ctx;
    o->kl_backward(out[0], l->dout, l->logits, l->ref, l->mask, l->n, l->v);
}

/* The CPU's own KL over a long row is off the exact value by up to ~1e-5 relative: each of its four lanes
 * sums v/4 terms in order (measured against a double reference: 8.3e-6 at v = 32000, logits in [-4, 4), the
 * reference's in [-6, 6)). A GPU that sums in a tree is nearer the exact value, so the two may differ by that
 * much (an H200 gave 8.7e-6): 5e-5 leaves room, and a wrong term is still >= 1e-3 off. The log-probabilities
 * (a difference of order 10, not a sum) and the gradients (no long sum in the value itself) keep 1e-5. */
#define KL_TOL 5e-5

/* Row i's target: ids at both ends of the vocabulary, and every 5th out of range (masked, as the CPU reads
 * it); mask: every 4th position off, or NULL. */
static void test_losses(size_t n, size_t v, int use_mask, uint64_t seed) {
    char sh[96], s2[128];
    snprintf(sh, sizeof sh, "n=%zu v=%zu mask=%s", n, v, use_mask ? "some off" : "NULL");
    int32_t *tgt = ints(n);
    uint8_t *mask = use_mask ? mem_alloc(n, 1) : NULL;
    uint64_t key = rng_key(seed, 9);
    for (size_t i = 0; i < n; i++) {
        tgt[i] = i % 5 == 4   ? (i % 2 ? -1 : (int32_t)v)
                 : i % 5 == 0 ? 0
                 : i % 5 == 1 ? (int32_t)v - 1
                              : (int32_t)(v ? rng_u64(key, i) % v : 0);
        if (mask)
            mask[i] = i % 4 != 2;
    }
    struct ls l = {.logits = rnd(n * v, seed, -4, 4),
                   .ref = rnd(n * v, seed + 1, -6, 6),
                   .dout = rnd(n, seed + 2, -1, 1),
                   .target = tgt,
                   .mask = mask,
                   .n = n,
                   .v = v};
    parity("logprob_forward", sh, lp_f, &l, (const struct out[]){{"logp", n, seed + 3, 0, NULL}, {0}}, TOL);
    parity("logprob_backward", sh, lp_b, &l, (const struct out[]){{"dlogits", n * v, seed + 4, 0, NULL}, {0}},
           TOL);
    parity("kl_forward", sh, kl_f, &l, (const struct out[]){{"kl", n, seed + 5, 0, NULL}, {0}}, KL_TOL);
    parity("kl_backward", sh, kl_b, &l, (const struct out[]){{"dlogits", n * v, seed + 6, 0, NULL}, {0}},
           TOL);
    snprintf(s2, sizeof s2, "%s dlogits=NULL", sh);
    parity("logprob_backward", s2, lp_b, &l, (const struct out[]){{"dlogits", n * v, 0, 1, NULL}, {0}}, TOL);
    parity("kl_backward", s2, kl_b, &l, (const struct out[]){{"dlogits", n * v, 0, 1, NULL}, {0}}, TOL);
    mem_free((void *)l.logits);
    mem_free((void *)l.ref);
    mem_free((void *)l.dout);
    mem_free(tgt);
    mem_free(mask);
}

static void test_ops(void) {
    printf("== operations: CUDA against CPU (%s), max |cuda - cpu| / max |cpu| per output ==\n", CPU->name);
    test_matmul(1, 1, 1, 1, 0, 10);
    test_matmul(67, 45, 33, 1, 1, 20);
    test_matmul(67, 45, 33, 0, 0, 30);
    test_matmul(300, 257, 130, 1, 0, 40);
    test_matmul(5, 1031, 3, 1, 0, 50);   /* a long inner sum */
    test_matmul(3, 64, 4099, 0, 0, 60);  /* an lm_head-like product: many columns, few rows */
    test_matmul(130, 96, 128, 1, 0, 70); /* multiples of 32 */

    test_lora_down(67, 45, 8, 0.25f, 80);
    test_lora_down(300, 257, 16, 0.05f, 85); /* LoRA's usual p */
    test_lora_down(5, 1031, 3, 0.5f, 90);    /* a long inner sum */
    test_lora_down(9, 20, 4, 0.0f, 95);      /* p = 0: every element kept, scale 1 */

    test_norms(1, 1, 1, 0, 100);
    test_norms(7, 45, 1, 1, 110);
    test_norms(33, 1000, 0, 0, 120);
    test_norms(300, 64, 1, 1, 130); /* weight gradients summed over many rows */
    test_norms(4, 4099, 1, 0, 140); /* rows longer than a block */

    test_rope(2, 37, 3, 64, 0, 200);
    test_rope(1, 16, 2, 6, 0, 210);
    test_rope(2, 24, 2, 128, 1, 220);

    static const int32_t l37[] = {37, 20}, l33[] = {33, 17}, l300[] = {250}, ledge[] = {12, 0, -1, 5};
    test_attention(2, 37, 3, 20, 1, l37, 1, 300);   /* the decoder: causal, row 1 padded */
    test_attention(2, 37, 3, 20, 0, NULL, 0, 310);  /* the vision tower: no mask */
    test_attention(2, 37, 3, 20, 1, NULL, 0, 320);  /* causal, no padding */
    test_attention(2, 33, 2, 16, 0, l33, 0, 330);   /* padding without causal */
    test_attention(1, 300, 2, 64, 1, l300, 0, 340); /* rows longer than a block */
    test_attention(4, 9, 2, 8, 1, ledge, 0, 350);   /* len > t (clamped), 0 and negative (all-zero rows) */
    static const int32_t dgqa[] = {37, 1, 20}, dlong[] = {600}, dedge[] = {12, 0, -1, 5};
    test_attention_decode(3, 40, 4, 2, 20, dgqa, 360);    /* grouped-query heads, a one-key sequence */
    test_attention_decode(1, 700, 2, 2, 128, dlong, 370); /* keys longer than a block, LLaMA's head size */
    test_attention_decode(4, 9, 2, 1, 8, dedge, 380);     /* len > cap (clamped), 0 and negative (zeros) */

    test_elementwise(100003, 400); /* odd, many blocks */
    test_elementwise(3, 410);      /* shorter than a vector */
    test_embedding(100, 45, 50, 500);
    test_embedding(7, 4099, 3, 510);
    test_repeat_kv(704, 8, 5, 128, 520); /* LLaMA-70B's grouping at LLaVA's length */
    test_repeat_kv(3, 2, 1, 7, 530);     /* rep 1: a copy */
    test_adamw(100003, 1, 0.9f, 600);
    test_adamw(1001, 7, 0.9f, 610);
    test_adamw(1001, 3, 0.3f, 620); /* beta1 < 0.5: lerp's other branch */
    test_sum_squares(1, 700);
    test_sum_squares(16384 * 3 + 5, 710);
    test_sum_squares(5000011, 720);

    test_losses(5, 32000, 1, 800); /* rows far longer than a block */
    test_losses(6, 32000, 0, 810);
    test_losses(33, 7, 1, 820);
    test_losses(10, 4099, 1, 830);
}

/* bf16 products with fp32 accumulation on both sides ("cuda-bf16" against "cpu-bf16"): both round the inputs
 * with kernel_bf16_round, and a product of two bf16 values is exact in fp32, so the backends differ only in
 * summation order, as in fp32: the same tolerance, and two CUDA runs the same bits. The bias and db are fp32.
 * (cuBLAS runs these on the tensor cores, whose fp32 accumulation may round differently from an FMA chain;
 * the long inner sum, 1031 terms, is where that would show first.) */
#define BF16_TOL 1e-5

/* The matmul and attention cases on the bf16 tables; empty: the empty shapes (test_empty's turn: a CUDA error
 * exits). */
static void test_ops_bf16(int empty) {
    const struct ops *cpu = CPU, *gpu = GPU;
    CPU = ops_precision(cpu, "bf16");
    GPU = ops_precision(gpu, "bf16");
    verdict(CPU && GPU, "ops_precision: bf16 tables");
    if (CPU && GPU) {
        mm_fwd_name = "matmul_forward_bf16";
        mm_bwd_name = "matmul_backward_bf16";
        mms_fwd_name = "matmul_scaled_forward_bf16";
        mms_bwd_name = "matmul_scaled_backward_bf16";
        mm_tol = BF16_TOL;
        ld_suffix = "_bf16";
        att_fwd_name = "attention_forward_bf16";
        att_bwd_name = "attention_backward_bf16";
        static const int32_t l1[] = {3}, l37[] = {37, 20}, l300[] = {300}, ledge[] = {12, 0, -3, 5};
        if (empty) {
            test_matmul(0, 5, 3, 1, 1, 900); /* dw and db must keep their values */
            test_matmul(4, 0, 3, 1, 0, 905); /* no inner dimension: the bias alone, nothing added */
            test_lora_down(0, 5, 3, 0.25f, 910);
            test_lora_down(4, 0, 3, 0.25f, 915); /* h is zeros, dx and da keep their values */
            test_lora_down(4, 5, 0, 0.25f, 918); /* rank 0: nothing to project */
            test_attention(0, 4, 2, 8, 1, NULL, 0, 930);
            test_attention(1, 0, 2, 8, 1, l1, 0, 940);
        } else {
            printf("== bf16 matmul and LoRA's down projection: %s against %s ==\n", GPU->name, CPU->name);
            test_matmul(1, 1, 1, 1, 0, 10);
            test_matmul(67, 45, 33, 1, 1, 20);
            test_matmul(67, 45, 33, 0, 0, 30);
            test_matmul(300, 257, 130, 1, 0, 40);
            test_matmul(5, 1031, 3, 1, 0, 50);   /* a long inner sum */
            test_matmul(3, 64, 4099, 0, 0, 60);  /* an lm_head-like product: many columns, few rows */
            test_matmul(130, 96, 128, 1, 0, 70); /* multiples of 32 */
            test_lora_down(67, 45, 8, 0.25f, 80);
            test_lora_down(300, 257, 16, 0.05f, 85);
            test_lora_down(5, 1031, 3, 0.5f, 90);
            test_lora_down(9, 20, 4, 0.0f, 95);
            printf("== bf16 attention: %s against %s ==\n", GPU->name, CPU->name);
            flip_tol = 0x1p-6;
            test_attention(2, 37, 3, 20, 1, l37, 1, 300);   /* the decoder: causal, row 1 padded */
            test_attention(2, 37, 3, 20, 0, NULL, 0, 310);  /* the vision tower: no mask */
            test_attention(1, 300, 2, 64, 1, l300, 0, 340); /* rows longer than a block */
            test_attention(4, 9, 2, 8, 1, ledge, 0, 350);   /* clamped, empty and negative lengths */
            flip_tol = 0;
        }
        mm_fwd_name = "matmul_forward";
        mm_bwd_name = "matmul_backward";
        mms_fwd_name = "matmul_scaled_forward";
        mms_bwd_name = "matmul_scaled_backward";
        att_fwd_name = "attention_forward";
        att_bwd_name = "attention_backward";
        mm_tol = TOL;
        ld_suffix = "";
    }
    CPU = cpu;
    GPU = gpu;
}

/* bf16 storage's two conversions (ops bf16_round, bf16_widen: what the "bf16-act" tables read and write
 * activations with) on both backends, bit for bit, over every sign and exponent with random and boundary
 * mantissas: ties, NaN payloads, infinities, subnormals, zeros. */
static void test_bf16_storage(void) {
    printf("== bf16 storage conversions: %s against %s ==\n", GPU->name, CPU->name);
    size_t n = 512 * 8;
    static const uint32_t low[] = {0x0000, 0x7fff, 0x8000, 0x8001, 0xffff, 0x10000, 0x18000, 0x7fffff};
    uint32_t *u = mem_alloc(n, sizeof *u);
    uint64_t key = rng_key(77, 0x6273);
    for (size_t i = 0; i < n; i++) { /* sign and exponent from i / 8, the mantissa a boundary or random */
        uint32_t mant = i % 16 < 8 ? low[i % 8] : (uint32_t)(rng_uniform(key, i) * 8388608.0f);
        u[i] = (uint32_t)(i / 8) << 23 | (mant & 0x7fffff);
    }
    uint16_t *hc = mem_alloc(n, sizeof *hc), *hg = mem_alloc(n, sizeof *hg);
    float *wc = mem_alloc(n, sizeof *wc), *wg = mem_alloc(n, sizeof *wg);
    CPU->bf16_round(hc, (const float *)u, n);
    GPU->bf16_round(hg, (const float *)u, n);
    GPU->bf16_widen(wg, hg, n);
    GPU->sync();
    CPU->bf16_widen(wc, hc, n);
    int round_same = memcmp(hc, hg, n * sizeof *hc) == 0, widen_same = memcmp(wc, wg, n * sizeof *wc) == 0;
    size_t exact = 0;
    for (size_t i = 0; i < n; i++) {
        float want = kernel_bf16_round(((const float *)u)[i]);
        exact += memcmp(&want, &wc[i], sizeof want) == 0;
    }
    printf("bf16_round %zu values: %s; bf16_widen: %s; widened = kernel_bf16_round: %zu of %zu\n", n,
           round_same ? "same bits" : "DIFFER", widen_same ? "same bits" : "DIFFER", exact, n);
    verdict(round_same && widen_same && exact == n, "bf16 storage conversions");
    mem_free(u);
    mem_free(hc);
    mem_free(hg);
    mem_free(wc);
    mem_free(wg);
}

/* ---- bf16 storage: the CUDA entries that take it themselves ---- */

/* The "bf16-act" tables' operations whose CUDA entries read and write bf16 storage themselves (the products
 * and attention through cuBLAS's bf16 inputs and outputs, LoRA's down projection, the norms, RoPE, the
 * elementwise operations; cuda_ops_bf16_native), against
 * the CPU table, which is engine/act16.c's definition: activations and their gradients in bf16 storage as
 * the model keeps them, weights and their gradients fp32, and each case once more with every tensor in bf16
 * storage. Outputs are compared widened: a product's fp32 sum differs by summation order and may round to
 * the neighbouring bf16 value, one bf16 step of that element (2^-8 of it, at most 2^-7 of the output's
 * scale), rare; a wrong or missing rounding, or an output not written back, moves most elements. So: at
 * most 1% of an output's elements differ, none by more than 2^-7 of its largest value. */
#define A16_ARGS 8
struct a16case {
    const char *name;
    int nargs;
    size_t n[A16_ARGS];
    unsigned bf16;    /* the arguments in bf16 storage (bit i: argument i) */
    unsigned scratch; /* arguments whose contents afterwards are unspecified (not compared) */
    void (*call)(const struct ops *o, float **a);
};

enum { AN = 37, AIC = 45, AOC = 29, AR = 6 };
#define AX (AN * AIC)
#define AY (AN * AOC)
#define AW (AOC * AIC)
#define AQ (2 * 19 * 3 * 8) /* attention: 2 sequences of 19, 3 heads of 8 */
#define AP (2 * 3 * 19 * 19)
static const struct ops_dropout a16_drop = {0x5eed, 0.25f, 1.0f / 0.75f};
static void a16_mm_f(const struct ops *o, float **a) {
    o->matmul_forward(a[0], a[1], a[2], a[3], AN, AIC, AOC);
}
static void a16_mm_b(const struct ops *o, float **a) {
    o->matmul_backward(a[0], a[1], a[2], a[3], a[4], a[5], AN, AIC, AOC);
}
static void a16_mms_f(const struct ops *o, float **a) {
    o->matmul_scaled_forward(a[0], a[1], a[2], 0.75f, AN, AIC, AOC);
}
static void a16_mms_b(const struct ops *o, float **a) {
    o->matmul_scaled_backward(a[0], a[1], a[2], a[3], a[4], 0.75f, AN, AIC, AOC);
}
static void a16_ld_f(const struct ops *o, float **a) {
    o->lora_down_forward(a[0], a[1], a[2], a[3], a16_drop, AN, AIC, AR);
}
static void a16_ld_b(const struct ops *o, float **a) {
    o->lora_down_backward(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a16_drop, AN, AIC, AR);
}
static void a16_ln_f(const struct ops *o, float **a) {
    o->layernorm_forward(a[0], a[1], a[2], a[3], a[4], a[5], AN, AIC, 1e-5f);
}
static void a16_ln_b(const struct ops *o, float **a) {
    o->layernorm_backward(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], AN, AIC);
}
static void a16_rms_f(const struct ops *o, float **a) {
    o->rmsnorm_forward(a[0], a[1], a[2], a[3], AN, AIC, 1e-5f);
}
static void a16_rms_b(const struct ops *o, float **a) {
    o->rmsnorm_backward(a[0], a[1], a[2], a[3], a[4], a[5], AN, AIC);
}
static int32_t *a16_pos;
static void a16_rope_f(const struct ops *o, float **a) {
    o->rope_forward(a[0], a16_pos, 1, AN, 3, 16, 10000.0f);
}
static void a16_rope_b(const struct ops *o, float **a) {
    o->rope_backward(a[0], a16_pos, 1, AN, 3, 16, 10000.0f);
}
static int32_t *a16_len;
static void a16_att_f(const struct ops *o, float **a) {
    o->attention_forward(a[0], a[1], a[2], a[3], a[4], a16_len, 1, 2, 19, 3, 8);
}
static void a16_att_b(const struct ops *o, float **a) {
    o->attention_backward(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], 2, 19, 3, 8);
}
static void a16_gelu_f(const struct ops *o, float **a) {
    o->gelu_forward(a[0], a[1], AX);
}
static void a16_gelu_b(const struct ops *o, float **a) {
    o->gelu_backward(a[0], a[1], a[2], AX);
}
static void a16_qgelu_f(const struct ops *o, float **a) {
    o->quick_gelu_forward(a[0], a[1], AX);
}
static void a16_qgelu_b(const struct ops *o, float **a) {
    o->quick_gelu_backward(a[0], a[1], a[2], AX);
}
static void a16_swiglu_f(const struct ops *o, float **a) {
    o->swiglu_forward(a[0], a[1], a[2], AX);
}
static void a16_swiglu_b(const struct ops *o, float **a) {
    o->swiglu_backward(a[0], a[1], a[2], a[3], a[4], AX);
}
static void a16_add(const struct ops *o, float **a) {
    o->add(a[0], a[1], a[2], AX);
}
static void a16_acc(const struct ops *o, float **a) {
    o->accumulate(a[0], a[1], AX);
}
static void a16_copy(const struct ops *o, float **a) {
    o->copy(a[0], a[1], AX);
}
static void a16_zero(const struct ops *o, float **a) {
    o->zero(a[0], AX);
}
static void a16_adds(const struct ops *o, float **a) {
    o->add_scaled(a[0], a[1], -0.375f, AX);
}
static void a16_rep_f(const struct ops *o, float **a) {
    o->repeat_kv(a[0], a[1], AN, 3, 3, 5);
}
static void a16_rep_b(const struct ops *o, float **a) {
    o->repeat_kv_backward(a[0], a[1], AN, 3, 3, 5);
}
static int32_t *a16_tok;
static void a16_emb_f(const struct ops *o, float **a) {
    o->embedding_forward(a[0], a16_tok, a[1], AN, AIC);
}
static void a16_emb_b(const struct ops *o, float **a) {
    o->embedding_backward(a[0], a[1], a16_tok, AN, AIC);
}
static void a16_drop_acc(const struct ops *o, float **a) {
    o->dropout(a[0], a[1], AN * AIC, a16_drop.key, a16_drop.p, a16_drop.scale, 1);
}

static const struct a16case a16cases[] = {
    {"matmul_forward", 4, {AY, AX, AW, AOC}, 0x3, 0, a16_mm_f},
    {"matmul_forward, no bias", 3, {AY, AX, AW}, 0x3, 0, a16_mm_f},
    {"matmul_backward", 6, {AX, AW, AOC, AY, AX, AW}, 0x19, 0, a16_mm_b},
    {"matmul_scaled_forward", 3, {AY, AX, AW}, 0x3, 0, a16_mms_f},
    {"matmul_scaled_backward", 5, {AX, AW, AY, AX, AW}, 0xd, 0, a16_mms_b},
    {"lora_down_forward", 4, {AN * AR, AX, AX, AR *AIC}, 0x4, 0x2, a16_ld_f},
    {"lora_down_backward", 7, {AX, AR *AIC, AX, AX, AN *AR, AX, AR *AIC}, 0x21, 0xc, a16_ld_b},
    {"attention_forward", 5, {AQ, AP, AQ, AQ, AQ}, 0x1f, 0, a16_att_f},
    {"attention_backward", 8, {AQ, AQ, AQ, AQ, AP, AQ, AQ, AQ}, 0xff, 0, a16_att_b},
    {"layernorm_forward", 6, {AX, AN, AN, AX, AIC, AIC}, 0x9, 0, a16_ln_f},
    {"layernorm_backward", 8, {AX, AIC, AIC, AX, AX, AIC, AN, AN}, 0x19, 0, a16_ln_b},
    {"rmsnorm_forward", 4, {AX, AN, AX, AIC}, 0x5, 0, a16_rms_f},
    {"rmsnorm_backward", 6, {AX, AIC, AX, AX, AIC, AN}, 0xd, 0, a16_rms_b},
    {"rope_forward", 1, {AN * 48}, 0x1, 0, a16_rope_f},
    {"rope_backward", 1, {AN * 48}, 0x1, 0, a16_rope_b},
    {"gelu_forward", 2, {AX, AX}, 0x3, 0, a16_gelu_f},
    {"gelu_backward", 3, {AX, AX, AX}, 0x7, 0, a16_gelu_b},
    {"quick_gelu_forward", 2, {AX, AX}, 0x3, 0, a16_qgelu_f},
    {"quick_gelu_backward", 3, {AX, AX, AX}, 0x7, 0, a16_qgelu_b},
    {"swiglu_forward", 3, {AX, AX, AX}, 0x7, 0, a16_swiglu_f},
    {"swiglu_backward", 5, {AX, AX, AX, AX, AX}, 0x1f, 0, a16_swiglu_b},
    {"add (a parameter added)", 3, {AX, AX, AX}, 0x3, 0, a16_add},
    {"accumulate", 2, {AX, AX}, 0x3, 0, a16_acc},
    {"copy into fp32", 2, {AX, AX}, 0x2, 0, a16_copy},
    {"copy into bf16", 2, {AX, AX}, 0x1, 0, a16_copy},
    {"zero", 1, {AX}, 0x1, 0, a16_zero},
    {"add_scaled", 2, {AX, AX}, 0x3, 0, a16_adds},
    {"repeat_kv", 2, {AN * 45, AN * 15}, 0x3, 0, a16_rep_f},
    {"repeat_kv_backward", 2, {AN * 15, AN * 45}, 0x3, 0, a16_rep_b},
    {"embedding_forward", 2, {AX, 7 * AIC}, 0x1, 0, a16_emb_f},
    {"embedding_backward", 2, {7 * AIC, AX}, 0x2, 0, a16_emb_b},
    {"dropout (accumulate)", 2, {AX, AX}, 0x3, 0, a16_drop_acc},
    {"dropout into fp32", 2, {AX, AX}, 0x2, 0, a16_drop_acc},
    {"dropout into bf16", 2, {AX, AX}, 0x1, 0, a16_drop_acc},
};

/* One backend's run of a case: its arguments from the same values, then every argument widened into out[i].
 */
static void a16_run(const struct a16case *c, const struct ops *o, unsigned bf16, uint64_t seed, float **out) {
    float *a[A16_ARGS] = {0};
    for (int i = 0; i < c->nargs; i++) {
        float *v = rnd(c->n[i], seed + (uint64_t)i, -1.0f, 1.0f);
        a[i] = bf16 >> i & 1 ? mem_alloc_bf16(c->n[i]) : v;
        if (a[i] != v) {
            CPU->bf16_round(mem_bf16_at(a[i], NULL), v, c->n[i]);
            mem_free(v);
        }
    }
    if (c->nargs == 3 && c->call == a16_mm_f)
        a[3] = NULL; /* "no bias" */
    c->call(o, a);
    o->sync();
    for (int i = 0; i < c->nargs; i++) {
        out[i] = mem_alloc(c->n[i], sizeof(float));
        uint16_t *st = mem_bf16_at(a[i], NULL);
        if (st)
            CPU->bf16_widen(out[i], st, c->n[i]);
        else
            memcpy(out[i], a[i], c->n[i] * sizeof(float));
        mem_free(a[i]);
    }
}

static void test_act16_native(void) {
    const struct ops *cpu = ops_precision(CPU, "bf16-act"), *gpu = ops_precision(GPU, "bf16-act");
    verdict(cpu && gpu && ops_takes_bf16(gpu), "ops_precision: bf16-act tables");
    if (!cpu || !gpu)
        return;
    printf("== bf16 storage, the CUDA entries that take it: %s against %s ==\n", gpu->name, cpu->name);
    a16_tok = mem_alloc(AN, sizeof *a16_tok);
    a16_pos = mem_alloc(AN, sizeof *a16_pos);
    a16_len = mem_alloc(2, sizeof *a16_len);
    a16_len[0] = 19;
    a16_len[1] = 11; /* a padded sequence */
    for (int i = 0; i < AN; i++)
        a16_pos[i] = 3 * i + 1;
    for (int i = 0; i < AN; i++)
        a16_tok[i] = i % 5 == 4 ? -1 : (i * 3) % 7; /* rows of a 7-row table, repeats, a negative id */
    for (size_t k = 0; k < sizeof a16cases / sizeof a16cases[0]; k++)
        for (int all = 0; all < 2; all++) {
            const struct a16case *c = &a16cases[k];
            unsigned bf16 = all ? (1u << c->nargs) - 1 : c->bf16;
            float *g[A16_ARGS], *r[A16_ARGS];
            a16_run(c, gpu, bf16, 4000 + 10 * k, g);
            a16_run(c, cpu, bf16, 4000 + 10 * k, r);
            size_t worst_n = 0, n_all = 0;
            double worst = 0;
            for (int i = 0; i < c->nargs; i++) {
                size_t nd = 0;
                double e = c->scratch >> i & 1 ? 0.0 : max_rel(g[i], r[i], c->n[i], &nd);
                worst = fmax(worst, e);
                worst_n += nd;
                n_all += c->n[i];
                mem_free(g[i]);
                mem_free(r[i]);
            }
            int ok = worst <= 0x1p-7 && worst_n * 100 <= n_all;
            printf("%-24s %s: %zu of %zu values differ, max_rel_err %.2e%s\n", c->name,
                   all ? "all bf16   " : "model's mix", worst_n, n_all, worst, ok ? "" : "  FAIL");
            char what[160];
            snprintf(what, sizeof what, "bf16-act %s (%s)", c->name, all ? "all bf16" : "model's mix");
            verdict(ok, what);
        }
    mem_free(a16_tok);
    mem_free(a16_pos);
    mem_free(a16_len);
}

/* Empty shapes: nothing to compute, nothing may change, and no illegal launch (a CUDA error exits the test,
 * so these run last among the operations). */
static void test_empty(void) {
    printf("== empty shapes ==\n");
    fflush(stdout);
    test_matmul(0, 5, 3, 1, 1, 900); /* dw and db must keep their values */
    test_lora_down(0, 5, 3, 0.25f, 910);
    test_lora_down(4, 0, 3, 0.25f, 915);
    test_lora_down(4, 5, 0, 0.25f, 918);
    test_ops_bf16(1);
    test_norms(0, 5, 1, 0, 910);
    test_rope(0, 4, 2, 8, 0, 920);
    static const int32_t l1[] = {3};
    test_attention(0, 4, 2, 8, 1, NULL, 0, 930);
    test_attention(1, 0, 2, 8, 1, l1, 0, 940);
    test_elementwise(0, 950);
    test_embedding(0, 5, 4, 960);
    test_repeat_kv(0, 2, 2, 8, 965);
    test_adamw(0, 1, 0.9f, 970);
    test_sum_squares(0, 980);
    test_losses(0, 7, 1, 990);
    test_losses(3, 0, 1, 995); /* no classes: the CPU leaves every output as it was */
}

/* ---- the model ---- */

/* Model-level parity. A model chains dozens of operations, each off by a few roundings in its own summation
 * order, and softmaxes and norms pass the differences on: the fixture tests hold the CPU to 1e-4 against
 * PyTorch for the same model, and the backends are held to the same bound here. The loss is one mean of
 * log-probabilities. */
#define LOGIT_TOL 1e-4
#define GRAD_TOL 1e-4
#define LOSS_TOL 1e-5

/* In bf16 (both backends through ops_precision: every linear layer's and attention product's inputs rounded
 * to bf16) the backends
 * still differ only in summation order, but a value within that difference of a rounding boundary rounds to
 * the other neighbouring bf16 value on one side: that input moves by one bf16 step (2^-8 to 2^-7 of itself),
 * and so does its term in every output it feeds. Such flips are rare (a difference of a few fp32 ulps against
 * a bf16 step of 2^16 of them) but a model rounds ~1e5 values. An emulation on the CPU (this tiny LoRA case;
 * one side's matmuls summed in double, its norms' and attention's outputs given one-ulp noise, 8 noise seeds)
 * moved the logits by 0, 1.7e-4 or 2.8e-4 and the adapter's gradients by 0 or 2.0e-4 (max_rel, as here):
 * discrete jumps, a flip's worth each, where fp32 moved ~1e-6. BF16_MODEL_TOL, 2^-8 ~ 4e-3 of the tensor's
 * scale (one bf16 step of a term as large as the output), holds the logits and gradients with 14 times the
 * largest jump seen. A real fault is larger: one side computing in fp32 is 1e-2 off in the logits and 3e-2
 * in the gradients (tests/unit/test_engine_bf16.c), and the loss (a mean, which a flip barely moves: 0 in the
 * emulation) keeps LOSS_TOL, 80 times below the fp32/bf16 gap of 8e-4. (The emulation predates bf16
 * attention, whose probabilities and dS add flip sources: the first GPU run after it says how many.) */
#define BF16_MODEL_TOL 4e-3
/* With activations in bf16 storage as well ("bf16-act"), every value one operation hands the next is rounded
 * too, and a flip no longer stays one value's: the values it moves are rounded again downstream, where a
 * move of a fraction of a bf16 step flips some of them in turn, layer after layer. tests/unit/
 * test_engine_act16.c emulates a GPU on the CPU (one fp32 ulp of noise on every product's and norm's and
 * attention's outputs, 8 seeds) and measures how far that moves this tiny LoRA run: the logits up to 1.0e-2,
 * the adapter's gradients 5.6e-3, the loss 1.2e-4, bf16's own noise level (bf16 activations against fp32
 * ones: 1.5e-2). So on a GPU the model-level check tells little more than "bf16-act ran and is near": the
 * bounds (5e-2; the loss 1e-3) leave 5, 9 and 8 times the emulated moves, and still fail a lost or doubled
 * write-back (logits and gradients 1.0 off). What holds bf16-act to its definition bit for bit is the
 * operation-level test of act16.c on the CPU and the conversions here; on the emulator, where the two sides
 * sum alike, this run matches the CPU exactly. */
#define BF16_ACT_MODEL_TOL 5e-2
#define BF16_ACT_LOSS_TOL 1e-3

/* The precision model_parity runs both backends in, and its tolerances (model_configs sets them). */
static const char *model_prec = "fp32";
static double logit_tol = LOGIT_TOL, grad_tol = GRAD_TOL, loss_tol = LOSS_TOL;

/* AdamW steps: STEPS of them at LR with eps ADAM_EPS. eps is far above its usual 1e-8 on purpose: with eps
 * far below the gradients, AdamW's first steps are lr sign(g), and a value whose gradient is within rounding
 * of zero may step +lr on one backend and -lr on the other, a legitimate difference the size of the update.
 * With eps of the order of the gradients the update is a smooth function of the gradient (|du/dg| <= lr/eps),
 * so the updates can be held tight; the per-element arithmetic is checked for eps 1e-8 at the operation
 * level. The updates (after - before) are compared, relative to the largest update of each tensor, within
 * UPD_TOL: looser than the gradients' because three steps' gradient differences add up, steps 2 and 3 start
 * from weights that step 1 already left apart, and the clip coefficient differs by a rounding. */
#define STEPS 3
#define LR 1e-3f
#define ADAM_EPS 1e-3f
#define UPD_TOL 1e-3

#define TARGETS ".*language_model.*\\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
#define MP "model.multi_modal_projector."

static int cpu_threads;

struct batch {
    int32_t *ids, *mask, *labels;
    float *pixels;
    size_t b, t, nimg;
};

static void batch_free(struct batch *x) {
    mem_free(x->ids);
    mem_free(x->mask);
    mem_free(x->labels);
    mem_free(x->pixels);
    memset(x, 0, sizeof *x);
}

enum { G_VISION, G_PROJ, G_DECODER, G_LORA, NGROUPS };
static const char *const group_name[NGROUPS] = {"vision tower", "projector", "decoder", "LoRA"};

/* One trainable tensor: its values and its gradient's offset in m->grads. */
struct view {
    char name[LLAVA_NAME_MAX + 16];
    float *val;
    size_t n, goff;
    int group;
};

/* The trainable tensors, table rows then the adapter's A and B (m->grads' layout); returns how many, filling
 * v when it is not NULL. */
static size_t views(const struct llava *m, struct view *v) {
    size_t k = 0;
    for (size_t i = 0; i < m->nptab; i++) {
        const struct llava_tensor *t = &m->ptab[i];
        if (!t->trainable)
            continue;
        if (v) {
            snprintf(v[k].name, sizeof v[k].name, "%s", t->name);
            v[k].val = m->params + t->offset;
            v[k].n = t->n;
            v[k].goff = t->goffset;
            v[k].group = strstr(t->name, "vision_tower") ? G_VISION
                         : strstr(t->name, "projector")  ? G_PROJ
                                                         : G_DECODER;
        }
        k++;
    }
    size_t slots = m->lora.s ? (size_t)m->cfg.text.layers * LLAVA_NPROJ : 0;
    for (size_t i = 0; i < slots; i++) {
        const struct llava_lora_slot *s = &m->lora.s[i];
        if (!s->mod)
            continue;
        size_t na = (size_t)m->lora.l->r * s->mod->in, nb = (size_t)m->lora.l->r * s->mod->out;
        if (v) {
            snprintf(v[k].name, sizeof v[k].name, "%s.lora_A", s->mod->name);
            v[k].val = s->mod->A;
            v[k].n = na;
            v[k].goff = s->goffset;
            v[k].group = G_LORA;
            snprintf(v[k + 1].name, sizeof v[k + 1].name, "%s.lora_B", s->mod->name);
            v[k + 1].val = s->mod->B;
            v[k + 1].n = nb;
            v[k + 1].goff = s->goffset + na;
            v[k + 1].group = G_LORA;
        }
        k += 2;
    }
    return k;
}

/* The tower's key biases have a gradient of exactly zero in exact arithmetic (a constant added to every key
 * shifts all of a query's scores alike, and softmax ignores that): both backends hold rounding noise there,
 * which a relative error cannot compare. They are checked to be noise: below 1e-4 of the largest gradient. */
static int zero_in_exact(const char *name) {
    return strstr(name, "vision_tower") && strstr(name, "self_attn.k_proj.bias");
}

/* Per-tensor failure lines for one comparison: the first few, then only the count (a broken operation fails
 * nearly every tensor). */
#define MAX_TENSOR_LINES 8

static double max_abs(const float *x, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        m = fabs((double)x[i]) > m ? fabs((double)x[i]) : m;
    return m;
}

/* One model-level measure: printed, and checked. */
static void check_line(int ok, const char *label, const char *measure, double err, double tol) {
    char what[160];
    printf("model %-12s %s %.2e (tol %.0e)%s\n", label, measure, err, tol, ok ? "" : "  FAIL");
    snprintf(what, sizeof what, "model %s: %s %.3g", label, measure, err);
    verdict(ok, what);
}

static double ms_between(const struct timespec *a, const struct timespec *b) {
    return (double)(b->tv_sec - a->tv_sec) * 1e3 + (double)(b->tv_nsec - a->tv_nsec) / 1e6;
}

/* Forward, cross-entropy, zeroed gradients, backward. */
static int fwd_bwd(struct llava *m, const struct ops *o, const struct batch *x, float *loss) {
    if (llava_forward(m, o, x->ids, x->mask, x->b, x->t, x->pixels, x->nimg) < 0 ||
        train_ce_loss(m, o, x->labels, x->b, x->t, loss) < 0) {
        fprintf(stderr, "  %s: %s\n", o->name, err_msg());
        return -1;
    }
    llava_zero_grad(m, o);
    if (llava_backward(m, o) < 0) {
        fprintf(stderr, "  %s: %s\n", o->name, err_msg());
        return -1;
    }
    return 0;
}

/* Every trainable tensor's gradient, CUDA (got) against CPU (want), in m->grads' layout; the worst per group
 * is printed, every failure too. */
static void compare_grads(const struct llava *m, const struct view *v, size_t nv, const float *got,
                          const float *want, const char *label) {
    double worst[NGROUPS] = {0}, gmax = max_abs(want, m->ngrads);
    const char *wname[NGROUPS] = {0};
    int seen[NGROUPS] = {0}, bad = 0;
    for (size_t i = 0; i < nv; i++) {
        const float *g = got + v[i].goff, *w = want + v[i].goff;
        if (zero_in_exact(v[i].name)) {
            double noise = fmax(max_abs(g, v[i].n), max_abs(w, v[i].n));
            if (noise > 1e-4 * gmax && bad++ < MAX_TENSOR_LINES)
                fprintf(stderr, "  %s: %s: |gradient| %.3g, not noise (largest gradient %.3g)\n", label,
                        v[i].name, noise, gmax);
            continue;
        }
        double err = max_rel(g, w, v[i].n, NULL);
        if (!(err <= grad_tol) && bad++ < MAX_TENSOR_LINES)
            fprintf(stderr, "  %s: gradient of %s: max_rel_err %.3g\n", label, v[i].name, err);
        int k = v[i].group;
        seen[k] = 1;
        if (!wname[k] || !(err <= worst[k])) {
            worst[k] = err;
            wname[k] = v[i].name;
        }
    }
    for (int k = 0; k < NGROUPS; k++)
        if (seen[k])
            printf("model %-12s gradients, %-12s max_rel_err %.2e (tol %.0e; worst %s)\n", label,
                   group_name[k], worst[k], grad_tol, wname[k] ? wname[k] : "-");
    char what[160];
    snprintf(what, sizeof what, "model %s: %d gradient tensors off (of %zu)", label, bad, nv);
    verdict(bad == 0, what);
    if (bad)
        printf("model %-12s %d of %zu gradient tensors FAIL\n", label, bad, nv);
}

/* Forward and backward on CUDA twice (the same bits), then on the CPU: logits, loss, gradients. Returns the
 * CPU gradient norm (for the AdamW check's clip), or -1. */
static double model_parity(struct llava *m, const struct batch *x, const char *label) {
    const struct ops *mc = ops_precision(ops_cpu(cpu_threads), model_prec),
                     *gpu = ops_precision(GPU, model_prec);
    if (!mc || !gpu) {
        fprintf(stderr, "  %s: %s\n", label, err_msg());
        verdict(0, "model: ops_precision");
        return -1;
    }
    size_t nl = x->b * x->t * (size_t)m->cfg.text.vocab, ng = m->ngrads;
    float lg = 0, lg2 = 0, lc = 0;
    float *logits = malloc(nl * sizeof(float)), *grads = malloc((ng ? ng : 1) * sizeof(float));
    struct timespec t[6];
    memset(t, 0, sizeof t);
    clock_gettime(CLOCK_MONOTONIC, &t[0]);
    int ok = fwd_bwd(m, gpu, x, &lg) == 0;
    clock_gettime(CLOCK_MONOTONIC, &t[1]);
    if (ok) {
        memcpy(logits, m->a.logits, nl * sizeof(float));
        memcpy(grads, m->grads, ng * sizeof(float));
        clock_gettime(CLOCK_MONOTONIC, &t[2]);
        ok = fwd_bwd(m, gpu, x, &lg2) == 0;
        clock_gettime(CLOCK_MONOTONIC, &t[3]);
    }
    char what[160];
    snprintf(what, sizeof what, "model %s: CUDA forward/backward ran", label);
    verdict(ok, what);
    if (!ok) {
        free(logits);
        free(grads);
        return -1;
    }
    double s1 = gpu->sum_squares(m->grads, ng), s2 = gpu->sum_squares(m->grads, ng);
    int same_l = memcmp(logits, m->a.logits, nl * sizeof(float)) == 0,
        same_loss = memcmp(&lg, &lg2, sizeof lg) == 0,
        same_g = memcmp(grads, m->grads, ng * sizeof(float)) == 0, same_s = memcmp(&s1, &s2, sizeof s1) == 0;
    int det = same_l && same_loss && same_g && same_s;
    printf("model %-12s CUDA twice: logits %s, loss %s, %zu gradients %s, sum_squares %s%s\n", label,
           same_l ? "same" : "DIFFER", same_loss ? "same" : "DIFFER", ng, same_g ? "same" : "DIFFER",
           same_s ? "same" : "DIFFERS", det ? "" : "  FAIL");
    snprintf(what, sizeof what, "model %s: two CUDA forward/backward runs differ", label);
    verdict(det, what);

    clock_gettime(CLOCK_MONOTONIC, &t[4]);
    ok = fwd_bwd(m, mc, x, &lc) == 0;
    clock_gettime(CLOCK_MONOTONIC, &t[5]);
    snprintf(what, sizeof what, "model %s: CPU forward/backward ran", label);
    verdict(ok, what);
    double norm = -1;
    if (ok) {
        double el = max_rel(logits, m->a.logits, nl, NULL);
        check_line(el <= logit_tol, label, "logits max_rel_err", el, logit_tol);
        double rl = fabs((double)lg - lc) / fabs((double)lc);
        printf("model %-12s loss cuda %.7f cpu %.7f\n", label, lg, lc);
        check_line(rl <= loss_tol, label, "loss rel_err", rl, loss_tol);
        size_t nv = views(m, NULL);
        struct view *v = malloc((nv ? nv : 1) * sizeof *v);
        views(m, v);
        compare_grads(m, v, nv, grads, m->grads, label);
        free(v);
        norm = sqrt(mc->sum_squares(m->grads, ng));
    }
    printf("model %-12s forward+backward: cuda %.1f ms (first run), %.1f ms (second); cpu %.1f ms (%d "
           "threads)\n",
           label, ms_between(&t[0], &t[1]), ms_between(&t[2], &t[3]), ms_between(&t[4], &t[5]), cpu_threads);
    fflush(stdout);
    free(logits);
    free(grads);
    return norm;
}

/* The trainable values, one tensor after another in view order, to dst / from src. */
static void gather(const struct view *v, size_t nv, float *dst) {
    for (size_t i = 0; i < nv; i++) {
        memcpy(dst, v[i].val, v[i].n * sizeof(float));
        dst += v[i].n;
    }
}
static void scatter(const struct view *v, size_t nv, const float *src) {
    for (size_t i = 0; i < nv; i++) {
        memcpy(v[i].val, src, v[i].n * sizeof(float));
        src += v[i].n;
    }
}

/* STEPS AdamW steps (train_step: clipping at clip, weight decay, an adapter's dropout on) from the same
 * weights on each backend: the losses, the updates of every trainable tensor, and frozen tensors untouched.
 * The model's weights are put back afterwards. */
static void adamw_parity(struct llava *m, const struct batch *x, const char *label, float clip) {
    size_t nv = views(m, NULL), total = 0;
    struct view *v = malloc((nv ? nv : 1) * sizeof *v);
    views(m, v);
    for (size_t i = 0; i < nv; i++)
        total += v[i].n;
    float *p0 = malloc(m->nparams * sizeof(float)), *v0 = malloc((total ? total : 1) * sizeof(float));
    float *after[2] = {malloc((total ? total : 1) * sizeof(float)),
                       malloc((total ? total : 1) * sizeof(float))};
    float loss[2][STEPS] = {{0}};
    memcpy(p0, m->params, m->nparams * sizeof(float));
    gather(v, nv, v0);
    const struct ops *be[2] = {GPU, ops_cpu(cpu_threads)};
    int ok = 1, frozen_kept = 1;
    for (int k = 0; k < 2; k++) {
        memcpy(m->params, p0, m->nparams * sizeof(float));
        scatter(v, nv, v0);
        struct train_adamw o;
        train_adamw_init(&o, m, 0.9f, 0.999f, ADAM_EPS, 0.01f, clip);
        for (int s = 0; s < STEPS && ok; s++)
            if (train_step(m, &o, be[k], x->ids, x->mask, x->labels, x->b, x->t, x->pixels, x->nimg, LR,
                           &loss[k][s]) < 0) {
                fprintf(stderr, "  %s: %s step %d: %s\n", label, be[k]->name, s, err_msg());
                ok = 0;
            }
        gather(v, nv, after[k]);
        for (size_t i = 0; i < m->nptab; i++) {
            const struct llava_tensor *t = &m->ptab[i];
            if (!t->trainable && memcmp(m->params + t->offset, p0 + t->offset, t->n * sizeof(float)) != 0) {
                fprintf(stderr, "  %s: %s: frozen %s changed\n", label, be[k]->name, t->name);
                frozen_kept = 0;
            }
        }
        train_adamw_free(&o);
    }
    memcpy(m->params, p0, m->nparams * sizeof(float));
    scatter(v, nv, v0);
    char what[160];
    snprintf(what, sizeof what, "model %s: AdamW steps ran, frozen tensors kept", label);
    verdict(ok && frozen_kept, what);
    if (ok) {
        printf("model %-12s AdamW (clip %.3g, eps %.0e) losses: cuda", label, clip, (double)ADAM_EPS);
        for (int s = 0; s < STEPS; s++)
            printf(" %.7f", loss[0][s]);
        printf(", cpu");
        for (int s = 0; s < STEPS; s++)
            printf(" %.7f", loss[1][s]);
        printf("\n");
        double lw = 0;
        for (int s = 0; s < STEPS; s++)
            lw = fmax(lw, fabs((double)loss[0][s] - loss[1][s]) / fabs((double)loss[1][s]));
        check_line(lw <= LOSS_TOL, label, "AdamW step losses rel_err", lw, LOSS_TOL);
        /* updates, per tensor, relative to that tensor's largest CPU update */
        double worst[NGROUPS] = {0};
        const char *wname[NGROUPS] = {0};
        int seen[NGROUPS] = {0}, bad = 0;
        const float *a = after[0], *b = after[1], *b0 = v0;
        for (size_t i = 0; i < nv; i++) {
            double dmax = 0, umax = 0, ug = 0;
            for (size_t e = 0; e < v[i].n; e++) {
                double uc = (double)b[e] - b0[e], u = (double)a[e] - b0[e];
                dmax = fmax(dmax, fabs(u - uc));
                umax = fmax(umax, fabs(uc));
                ug = fmax(ug, fabs(u));
            }
            a += v[i].n;
            b += v[i].n;
            b0 += v[i].n;
            if (zero_in_exact(v[i].name)) { /* noise gradients: steps far below lr */
                if (fmax(umax, ug) > 1e-2 * LR * STEPS && bad++ < MAX_TENSOR_LINES)
                    fprintf(stderr, "  %s: %s moved %.3g, more than noise\n", label, v[i].name,
                            fmax(umax, ug));
                continue;
            }
            double err = umax > 0 ? dmax / umax : dmax;
            if ((!(err <= UPD_TOL) || umax == 0) && bad++ < MAX_TENSOR_LINES)
                fprintf(stderr, "  %s: update of %s: max_rel_err %.3g (largest cpu update %.3g)\n", label,
                        v[i].name, err, umax);
            int k = v[i].group;
            seen[k] = 1;
            if (!wname[k] || !(err <= worst[k])) {
                worst[k] = err;
                wname[k] = v[i].name;
            }
        }
        for (int k = 0; k < NGROUPS; k++)
            if (seen[k])
                printf("model %-12s AdamW updates, %-12s max_rel_err %.2e (tol %.0e; worst %s)\n", label,
                       group_name[k], worst[k], UPD_TOL, wname[k] ? wname[k] : "-");
        snprintf(what, sizeof what, "model %s: %d tensors' AdamW updates off (of %zu)", label, bad, nv);
        verdict(bad == 0, what);
    }
    fflush(stdout);
    free(p0);
    free(v0);
    free(after[0]);
    free(after[1]);
    free(v);
}

/* The full model trainable, then (everything frozen) a LoRA adapter of rank r on every decoder projection,
 * with B drawn too (PEFT's B = 0 would leave A without a gradient) and dropout 0.1 on, and with the projector
 * trainable when proj. bf16 (1 "bf16", 2 "bf16-act": activations in bf16 storage too): the LoRA
 * configuration alone, forward and backward on the bf16 tables (no AdamW steps: the optimizer is fp32 in
 * either precision). */
static void model_configs(struct llava *m, const struct batch *x, const char *name, int r, int proj,
                          int bf16) {
    char label[64];
    double norm;
    if (!bf16) {
        snprintf(label, sizeof label, "%s full", name);
        llava_set_trainable(m, "", 1);
        llava_grads_init(m);
        norm = model_parity(m, x, label);
        if (norm > 0)
            adamw_parity(m, x, label, (float)(0.5 * norm)); /* half the norm: every step clips */
    }

    snprintf(label, sizeof label, "%s LoRA%s", name, bf16 == 2 ? " bf16-act" : bf16 ? " bf16" : "");
    llava_set_trainable(m, "", 0);
    struct lora l;
    int ok = lora_create(&l, r, 2.0 * r, 0.1) == 0;
    if (ok) {
        lora_set_target_regex(&l, TARGETS);
        ok = llava_lora_add_targets(m, &l) == 0;
        if (ok) {
            lora_init(&l, 17);
            for (size_t i = 0; i < l.n; i++) {
                uint64_t key = rng_key(19, i);
                for (size_t e = 0; e < l.m[i].out * (size_t)r; e++)
                    l.m[i].B[e] = 0.05f * (2.0f * rng_uniform(key, e) - 1.0f);
            }
            ok = llava_lora_attach(m, &l, 23) == 0;
        }
        if (!ok)
            fprintf(stderr, "  %s: %s\n", label, err_msg());
    }
    char what[160];
    snprintf(what, sizeof what, "model %s: adapter attached", label);
    verdict(ok, what);
    if (ok) {
        if (proj)
            llava_set_trainable(m, MP, 1);
        llava_set_act_bf16(m, bf16 == 2);
        llava_grads_init(m);
        llava_lora_mode(m, 1, 3); /* dropout on, the masks of step 3, on both backends */
        if (bf16) {
            model_prec = bf16 == 2 ? "bf16-act" : "bf16";
            logit_tol = grad_tol = bf16 == 2 ? BF16_ACT_MODEL_TOL : BF16_MODEL_TOL;
            loss_tol = bf16 == 2 ? BF16_ACT_LOSS_TOL : LOSS_TOL;
        }
        norm = model_parity(m, x, label);
        llava_set_act_bf16(m, 0);
        model_prec = "fp32";
        loss_tol = LOSS_TOL;
        logit_tol = LOGIT_TOL;
        grad_tol = GRAD_TOL;
        llava_lora_mode(m, 0, 0);
        if (norm > 0 && !bf16)
            adamw_parity(m, x, label, (float)(0.5 * norm));
        llava_lora_detach(m);
    }
    lora_free(&l);
}

static int fixture_batch(const char *data, struct batch *x) {
    char path[4200];
    struct st_file io, lab;
    x->b = 2, x->t = 24, x->nimg = 2;
    size_t n = x->b * x->t, np = 0;
    snprintf(path, sizeof path, "%s/llava_tiny/io.safetensors", data);
    if (st_open(path, &io) < 0)
        return -1;
    snprintf(path, sizeof path, "%s/llava_grad/labels.safetensors", data);
    if (st_open(path, &lab) < 0) {
        st_close(&io);
        return -1;
    }
    x->ids = ints(n);
    x->mask = ints(n);
    x->labels = ints(n);
    float *px = fixture_tensor(&io, "pixel_values", &np);
    int rc = fixture_ints(&io, "input_ids", x->ids, n) == 0 &&
                     fixture_ints(&io, "attention_mask", x->mask, n) == 0 &&
                     fixture_ints(&lab, "labels", x->labels, n) == 0 && px
                 ? 0
                 : -1;
    if (px) {
        x->pixels = fdup(px, np);
        free(px);
    }
    st_close(&io);
    st_close(&lab);
    return rc;
}

/* Two rows of t tokens: <s>, one image's tokens, text; row 1 ends in 20 positions of padding. Labels are the
 * text tokens (the image, <s> and the padding are not targets). */
static void mid_batch(const struct llava *m, struct batch *x, size_t t) {
    const struct llava_config *c = &m->cfg;
    size_t ntok = llava_feature_tokens(m),
           np = (size_t)c->vision.channels * c->vision.image_size * c->vision.image_size;
    x->b = 2, x->t = t, x->nimg = 2;
    x->ids = ints(2 * t);
    x->mask = ints(2 * t);
    x->labels = ints(2 * t);
    uint64_t key = rng_key(31, 0);
    for (size_t i = 0; i < 2; i++) {
        size_t len = i ? t - 20 : t;
        for (size_t j = 0; j < t; j++) {
            int32_t id = j == 0 ? 1 : j <= ntok ? c->image_token_index : 0;
            if (j > ntok && j < len) {
                id = (int32_t)(2 + rng_u64(key, i * t + j) % (uint64_t)(c->text.vocab - 2));
                if (id == c->image_token_index)
                    id = 3;
            }
            x->ids[i * t + j] = id;
            x->mask[i * t + j] = j < len;
            x->labels[i * t + j] = j > ntok && j < len ? id : TRAIN_IGNORE;
        }
    }
    x->pixels = rnd(2 * np, 37, -1.8f, 2.1f);
}

/* A mid-size model: wide enough for multi-block rows everywhere (hidden 512, 4096 logits), four decoder
 * layers without GQA (the fixture has it), the "full" feature strategy (the fixture uses "default"). */
static const char *mid_config =
    "{\"model_type\":\"llava\",\"image_token_index\":4000,\"pad_token_id\":0,\"projector_hidden_act\":"
    "\"gelu\","
    "\"vision_feature_layer\":-1,\"vision_feature_select_strategy\":\"full\","
    "\"text_config\":{\"model_type\":\"llama\",\"hidden_size\":512,\"intermediate_size\":1376,"
    "\"num_hidden_layers\":4,\"num_attention_heads\":8,\"num_key_value_heads\":8,\"vocab_size\":4096,"
    "\"max_position_embeddings\":4096,\"rms_norm_eps\":1e-05,\"rope_theta\":10000.0},"
    "\"vision_config\":{\"model_type\":\"clip_vision_model\",\"hidden_size\":256,\"intermediate_size\":1024,"
    "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"image_size\":64,\"patch_size\":8,\"num_channels\":3,"
    "\"layer_norm_eps\":1e-05}}";

static void test_models(const char *data) {
    printf("== the model: CUDA against CPU ==\n");
    struct llava m;
    struct batch x = {0};
    char dir[4200];
    memset(&m, 0, sizeof m);
    snprintf(dir, sizeof dir, "%s/llava_tiny", data);
    int ok = llava_load(&m, dir, 2, 24) == 0;
    if (!ok)
        fprintf(stderr, "  tiny: %s\n", err_msg());
    ok = ok && fixture_batch(data, &x) == 0;
    verdict(ok, "model tiny: fixture loaded");
    if (ok) {
        model_configs(&m, &x, "tiny", 4, 0, 0);
        model_configs(&m, &x, "tiny", 4, 0, 1);
        model_configs(&m, &x, "tiny", 4, 0, 2);
    }
    llava_free(&m);
    batch_free(&x);

    struct llava_config cfg;
    memset(&m, 0, sizeof m);
    ok = config_parse(mid_config, strlen(mid_config), "mid config", &cfg) == 0 &&
         llava_init_random(&m, &cfg, 1234, 0.02f, 2, 100) == 0;
    if (!ok)
        fprintf(stderr, "  mid: %s\n", err_msg());
    verdict(ok, "model mid: random model built");
    if (ok) {
        printf("model mid: %zu parameters, %zu image tokens, batch 2 x 100\n", m.nparams,
               llava_feature_tokens(&m));
        mid_batch(&m, &x, 100);
        model_configs(&m, &x, "mid", 8, 1, 0);
        llava_free(&m);
        batch_free(&x);
    }
}

int main(void) {
    if (device_check("cuda") != 0) {
        printf("SKIP: no GPU: %s\n", err_msg());
        return 77;
    }
    GPU = ops_select("cuda", 1);
    if (!GPU) {
        printf("SKIP: no GPU: %s\n", err_msg());
        return 77;
    }
    CPU = ops_cpu(1);
    long nc = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_threads = nc < 1 ? 1 : nc > 8 ? 8 : (int)nc;
    char desc[512];
    if (device_describe("cuda", 1, desc, sizeof desc) == 0)
        printf("device: %s; memory on CUDA: %s\n", desc, mem_on_cuda() ? "yes" : "no");
    const char *data = getenv("PULSE_TEST_DATA") ? getenv("PULSE_TEST_DATA") : "tests/data";

    test_ops();
    test_ops_bf16(0);
    test_bf16_storage();
    test_act16_native();
    const char *only = getenv("PULSE_PARITY_OPS_ONLY");
    if (!only || strcmp(only, "1") != 0)
        test_models(data);
    test_empty();

    if (nfailed) {
        fprintf(stderr, "%d failed:\n", nfailed);
        for (int i = 0; i < nfailed && i < MAX_FAILED; i++)
            fprintf(stderr, "  %s\n", failed[i]);
    }
    return check_done("engine_cuda");
}

#endif

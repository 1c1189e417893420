/* test_engine_bf16: bf16 products (ops_precision, engine/ops.h) on the CPU. kernel_bf16_round against known
 * values (ties to even, the carry into the next binade and into infinity, NaN, infinities, subnormals, signed
 * zeros) and against engine/safetensors.c's conversion over a sweep of bit patterns; the table choice; the
 * "cpu-bf16" matmul forward and backward against a double-precision reference computed from the bf16-rounded
 * inputs (tight), against the fp32 table (within bf16's rounding bound, element by element), equal to the
 * fp32 table bit for bit on inputs that are bf16 values already, the same bits for 1 and 3 threads, NULL
 * gradients and empty shapes; the "cpu-bf16" attention forward and backward against a double-precision
 * reference from its rounded operands (tight), near the fp32 table, NULL gradients, 1 and 3 threads; and the
 * tiny LLaVA with a LoRA adapter, forward and backward in bf16. */
#include "check.h"
#include "llava_batch.h"
#include "engine/kernels.h"
#include "engine/llava.h"
#include "engine/lora.h"
#include "engine/ops.h"
#include "engine/rng.h"
#include "engine/safetensors.h"
#include "engine/train.h"
#include "engine/wcache.h"
#include "engine/cpu/cpu.h"
#include "util/err.h"

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---- */

static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}
static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* n uniform floats in [lo, hi), a pure function of seed. */
static float *vec(size_t n, uint64_t seed, float lo, float hi) {
    float *x = malloc((n ? n : 1) * sizeof(float));
    uint64_t key = rng_key(seed, 0x6266);
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * rng_uniform(key, i);
    return x;
}
static float *dup(const float *x, size_t n) {
    float *y = malloc((n ? n : 1) * sizeof(float));
    if (n)
        memcpy(y, x, n * sizeof(float));
    return y;
}
static float *rounded(const float *x, size_t n) {
    float *y = dup(x, n);
    for (size_t i = 0; i < n; i++)
        y[i] = kernel_bf16_round(x[i]);
    return y;
}
static int same_bits(const float *a, const float *b, size_t n) {
    return n == 0 || memcmp(a, b, n * sizeof(float)) == 0;
}

/* ---- kernel_bf16_round ---- */

/* Known cases as bit patterns: x -> the float of the bf16 value it rounds to. bf16 keeps the high 16 bits, so
 * the low half decides: below 0x8000 down, above up, exactly 0x8000 (a tie) to the even high half. */
static const struct {
    uint32_t in, want;
    const char *what;
} rounds[] = {
    {0x3f800000, 0x3f800000, "1 (a bf16 value) unchanged"},
    {0x3f808000, 0x3f800000, "1 + 2^-8: tie between 1 and 1 + 2^-7, to 1 (even)"},
    {0x3f818000, 0x3f820000, "1 + 3 2^-8: tie between 1 + 2^-7 (odd) and 1 + 2^-6 (even), up"},
    {0x3f808001, 0x3f810000, "1 + 2^-8 + 2^-23: just above the tie, up"},
    {0x3f807fff, 0x3f800000, "1 + 2^-8 - 2^-23: just below the tie, down"},
    {0xbf808000, 0xbf800000, "-(1 + 2^-8): ties to even on the negative side too"},
    {0xbf818000, 0xbf820000, "-(1 + 3 2^-8): to even, away from zero"},
    {0xbf808001, 0xbf810000, "-(1 + 2^-8 + 2^-23): away from zero"},
    {0x3fffffff, 0x40000000, "just below 2: the carry reaches the next binade"},
    {0x40490fdb, 0x40490000, "pi: 3.14159274 -> 3.140625"},
    {0x3dcccccd, 0x3dcd0000, "0.1 -> 0.10009765625"},
    {0x7f7f0000, 0x7f7f0000, "the largest finite bf16 unchanged"},
    {0x7f7f7fff, 0x7f7f0000, "just below the tie past it: stays finite"},
    {0x7f7f8000, 0x7f800000, "the tie past the largest finite bf16 (odd) goes to infinity (even)"},
    {0x7f7fffff, 0x7f800000, "FLT_MAX -> infinity"},
    {0xff7fffff, 0xff800000, "-FLT_MAX -> -infinity"},
    {0x7f800000, 0x7f800000, "infinity"},
    {0xff800000, 0xff800000, "-infinity"},
    {0x00000000, 0x00000000, "+0"},
    {0x80000000, 0x80000000, "-0 keeps its sign"},
    {0x00000001, 0x00000000, "the smallest fp32 subnormal -> +0"},
    {0x80000001, 0x80000000, "its negative -> -0"},
    {0x00008000, 0x00000000, "a subnormal tie between 0 (even) and the smallest bf16 subnormal: 0"},
    {0x00008001, 0x00010000, "just above it: the smallest bf16 subnormal"},
    {0x00018000, 0x00020000, "a subnormal tie between 0x0001 (odd) and 0x0002: up"},
    {0x00010000, 0x00010000, "the smallest bf16 subnormal unchanged"},
    {0x007fffff, 0x00800000, "the largest fp32 subnormal: the carry makes it FLT_MIN"},
    {0x00800000, 0x00800000, "FLT_MIN unchanged"},
};

/* NaNs in, NaN out, truncated: a payload only in the low half (rounding it could give infinity, or carry
 * into the sign for 0x7fffffff) keeps a NaN by setting the quiet bit. */
static const struct {
    uint32_t in, want;
} nans[] = {
    {0x7fc00000, 0x7fc00000}, /* the default quiet NaN */
    {0xffc00000, 0xffc00000}, /* negative */
    {0x7fffffff, 0x7fff0000}, /* all ones: rounding up would carry into the sign bit */
    {0x7f800001, 0x7fc00000}, /* signalling, payload in the low half only: would truncate to infinity */
    {0xff800001, 0xffc00000},
    {0x7f810000, 0x7f810000}, /* signalling with a payload in the high half: kept as it is */
    {0x7f80ffff, 0x7fc00000}, /* low-half payload that rounding would carry to 0x7f81: truncated instead */
};

static void test_round_known(void) {
    int bad = 0;
    for (size_t i = 0; i < sizeof rounds / sizeof rounds[0]; i++) {
        uint32_t got = bits(kernel_bf16_round(from_bits(rounds[i].in)));
        if (got != rounds[i].want) {
            fprintf(stderr, "  kernel_bf16_round(0x%08x): got 0x%08x, want 0x%08x (%s)\n", rounds[i].in, got,
                    rounds[i].want, rounds[i].what);
            bad++;
        }
    }
    for (size_t i = 0; i < sizeof nans / sizeof nans[0]; i++) {
        float r = kernel_bf16_round(from_bits(nans[i].in));
        if (!isnan(r) || bits(r) != nans[i].want) {
            fprintf(stderr, "  kernel_bf16_round(NaN 0x%08x): got 0x%08x, want 0x%08x\n", nans[i].in, bits(r),
                    nans[i].want);
            bad++;
        }
    }
    CHECK(bad == 0);
    CHECK(kernel_bf16_round(1.0f + 0x1p-8f) == 1.0f);
    CHECK(kernel_bf16_round(FLT_MAX) == INFINITY);
    CHECK(kernel_bf16_round(-INFINITY) == -INFINITY);
    CHECK(isnan(kernel_bf16_round(NAN)));
}

/* Against st_f32_to_bf16 (engine/safetensors.c, itself tested exhaustively from the bf16 side): every high
 * half with the low halves that matter (0, 1, just below / at / above the tie, all ones), and a strided walk
 * over all 2^32 patterns. Every result's low half is zero, and a NaN stays a NaN. */
static void test_round_sweep(void) {
    static const uint32_t lows[] = {0x0000, 0x0001, 0x7fff, 0x8000, 0x8001, 0xffff};
    size_t bad = 0, nan_lost = 0, low_set = 0, n = 0;
    for (uint64_t i = 0; i < (1ull << 32); i += i < (1ull << 16) * 6 ? 1 : 65521) {
        uint32_t x = i < (1ull << 16) * 6 ? (uint32_t)(i / 6) << 16 | lows[i % 6] : (uint32_t)i;
        float f = from_bits(x), r = kernel_bf16_round(f);
        uint32_t want = (uint32_t)st_f32_to_bf16(f) << 16;
        bad += bits(r) != want;
        nan_lost += isnan(f) && !isnan(r);
        low_set += (bits(r) & 0xffffu) != 0;
        n++;
    }
    printf("kernel_bf16_round: %zu patterns against st_f32_to_bf16: %zu differ, %zu NaNs lost\n", n, bad,
           nan_lost);
    CHECK(bad == 0);
    CHECK(nan_lost == 0);
    CHECK(low_set == 0);
}

/* ---- ops_precision ---- */

static void test_precision(void) {
    const struct ops *cpu = ops_cpu(2);
    CHECK(ops_precision(cpu, "fp32") == cpu);
    const struct ops *b = ops_precision(cpu, "bf16");
    CHECK(b != NULL && b != cpu);
    if (b) {
        CHECK_STR(b->name, "cpu-bf16");
        CHECK(b->matmul_forward != cpu->matmul_forward);
        CHECK(b->matmul_backward != cpu->matmul_backward);
        CHECK(b->matmul_scaled_forward != cpu->matmul_scaled_forward);
        CHECK(b->matmul_scaled_backward != cpu->matmul_scaled_backward);
        CHECK(b->attention_forward != cpu->attention_forward);
        CHECK(b->attention_backward != cpu->attention_backward);
        CHECK(b->lora_down_forward != cpu->lora_down_forward);
        CHECK(b->lora_down_backward != cpu->lora_down_backward);
        CHECK(b->weights_frozen != cpu->weights_frozen);
        CHECK(b->weights_forget == cpu->weights_forget); /* one backend, one set of copies */
        CHECK(b->threads == cpu->threads);
        /* every other entry is the fp32 table's: the struct is pointers up to `threads`, no padding */
        struct ops t = *b;
        t.name = cpu->name;
        t.matmul_forward = cpu->matmul_forward;
        t.matmul_backward = cpu->matmul_backward;
        t.matmul_scaled_forward = cpu->matmul_scaled_forward;
        t.matmul_scaled_backward = cpu->matmul_scaled_backward;
        t.attention_forward = cpu->attention_forward;
        t.attention_backward = cpu->attention_backward;
        t.lora_down_forward = cpu->lora_down_forward;
        t.lora_down_backward = cpu->lora_down_backward;
        t.weights_frozen = cpu->weights_frozen;
        CHECK(memcmp(&t, cpu, offsetof(struct ops, threads) + sizeof(int)) == 0);
        CHECK(ops_precision(b, "bf16") == b); /* the twin's twin is itself */
    }
    err_clear();
    CHECK(ops_precision(cpu, "fp16") == NULL);
    CHECK_STR(err_msg(), "precision: unknown 'fp16' (fp32, bf16 or bf16-act)");
    CHECK(ops_precision(cpu, "") == NULL);
    CHECK(ops_precision(cpu, "BF16") == NULL);
    CHECK(ops_precision(cpu, NULL) == NULL);
    struct ops copy = *cpu; /* a table that is no backend's own (a wrapper): no twin to give */
    CHECK(ops_precision(&copy, "bf16") == NULL);
    CHECK_HAS(err_msg(), "not a backend's own");
    CHECK(ops_precision(&copy, "fp32") == &copy);
}

/* ---- matmul ---- */

struct mm {
    float *inp, *w, *b, *dout;
    size_t n, ic, oc;
};

static struct mm mm_make(size_t n, size_t ic, size_t oc, int bias, uint64_t seed) {
    return (struct mm){.inp = vec(n * ic, seed, -1, 1),
                       .w = vec(oc * ic, seed + 1, -1, 1),
                       .b = bias ? vec(oc, seed + 2, -1, 1) : NULL,
                       .dout = vec(n * oc, seed + 3, -1, 1),
                       .n = n,
                       .ic = ic,
                       .oc = oc};
}
static void mm_free(struct mm *p) {
    free(p->inp);
    free(p->w);
    free(p->b);
    free(p->dout);
}

/* One product in double: out[i,j] = init[i,j] + sum_k a(i,k) b(k,j) where a(i,k) = A[i*sai + k*sak] and
 * b(k,j) = B[k*sbk + j*sbj]; mag[i,j] = |init| + sum |a b| (the scale of the rounding errors). */
static void ref_product(double *out, double *mag, const float *init, const float *A, size_t sai, size_t sak,
                        const float *B, size_t sbk, size_t sbj, size_t m, size_t n, size_t k) {
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double s = init ? init[i * n + j] : 0.0, g = init ? fabs((double)init[i * n + j]) : 0.0;
            for (size_t t = 0; t < k; t++) {
                double p = (double)A[i * sai + t * sak] * B[t * sbk + j * sbj];
                s += p;
                g += fabs(p);
            }
            out[i * n + j] = s;
            if (mag)
                mag[i * n + j] = g;
        }
}

/* max |got - want| / max |want| (the parity measure of test_engine_cuda.c). */
static double max_rel(const float *got, const double *want, size_t n) {
    double worst = 0.0, scale = 0.0;
    for (size_t i = 0; i < n; i++) {
        scale = fmax(scale, fabs(want[i]));
        double d = fabs((double)got[i] - want[i]);
        worst = d > worst || d != d ? d : worst;
    }
    return scale > 0 ? worst / scale : worst;
}

/* A product of two bf16 values is exact in fp32, so the bf16 table differs from the exact sum of the rounded
 * inputs' products only by its fp32 summation: roundings of 2^-24 of partial sums no larger than the output's
 * scale, adding up like a random walk (seen: <= 2.6e-7, relative to the output's largest value, with
 * OpenBLAS's kernels for this CPU and under valgrind's). 1e-6 is tight: skipping the rounding of either input
 * is off by ~1e-3. */
#define TIGHT 1e-6

/* Against the fp32 table, element by element: each input is rounded with a relative error of at most u =
 * 2^-8 (bf16 keeps 8 significand bits, round to nearest), so each product is off by at most (2u + u^2) |a
 * b|, and the sum by (2^-7 + 2^-16) sum |a b|; both sides' fp32 sums add at most (k + 2) 2^-24 (sum |a b| +
 * |init|) each (accumulation and the final +=). That is the worst case, every rounding one way; the largest
 * ratio seen is 0.15 to 0.65 (highest for the short sums of few terms), so the test also checks that the
 * bound is not vacuous: above 1/30 in every case with some work. */
static double loose_bound(double mag, size_t k) {
    return (0x1p-7 + 0x1p-16 + 2.0 * (double)(k + 2) * 0x1p-24) * mag;
}

/* got (bf16 table) against fp32 (fp32 table) within loose_bound; returns the largest |got - fp32| / bound. */
static double against_fp32(const char *what, const float *got, const float *fp32, const double *mag, size_t n,
                           size_t k) {
    double worst = 0.0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double r = fabs((double)got[i] - fp32[i]) / loose_bound(mag[i], k);
        if (r > worst || r != r) {
            worst = r;
            at = i;
        }
    }
    if (!(worst <= 1.0))
        fprintf(stderr, "  %s: element %zu: bf16 %.9g, fp32 %.9g, %.3g times the bound\n", what, at, got[at],
                fp32[at], worst);
    return worst;
}

/* The scaled products (LoRA's up projection) on the bf16 table: the fp32 table's on the rounded operands, to
 * the bit (the rounding is the only difference, and test_matmul_case holds the fp32 path to its reference).
 */
static void test_scaled_case(size_t n, size_t ic, size_t oc, uint64_t seed) {
    const struct ops *f32 = ops_cpu(2), *b16 = ops_precision(f32, "bf16");
    struct mm p = mm_make(n, ic, oc, 0, seed);
    float *ri = rounded(p.inp, n * ic), *rw = rounded(p.w, oc * ic), *rd = rounded(p.dout, n * oc);
    float *o1 = vec(n * oc, seed + 4, -1, 1), *o2 = dup(o1, n * oc);
    b16->matmul_scaled_forward(o1, p.inp, p.w, 0.37f, n, ic, oc);
    f32->matmul_scaled_forward(o2, ri, rw, 0.37f, n, ic, oc);
    CHECK(same_bits(o1, o2, n * oc));
    float *x = vec(n * ic, seed + 5, -1, 1), *x2 = dup(x, n * ic), *y = vec(oc * ic, seed + 6, -1, 1),
          *y2 = dup(y, oc * ic);
    b16->matmul_scaled_backward(x, y, p.dout, p.inp, p.w, 0.37f, n, ic, oc);
    f32->matmul_scaled_backward(x2, y2, rd, ri, rw, 0.37f, n, ic, oc);
    CHECK(same_bits(x, x2, n * ic) && same_bits(y, y2, oc * ic));
    free(ri), free(rw), free(rd), free(o1), free(o2), free(x), free(x2), free(y), free(y2);
    mm_free(&p);
}

/* forward: out = inp @ w^T (+ b); backward: dinp += dout @ w, dw += dout^T @ inp, db += colsum(dout). The
 * outputs start from random values (an overwrite or a skipped accumulate shows). */
static void test_matmul_case(size_t n, size_t ic, size_t oc, int bias, uint64_t seed) {
    char sh[96];
    snprintf(sh, sizeof sh, "n=%zu ic=%zu oc=%zu%s", n, ic, oc, bias ? " bias" : "");
    const struct ops *f32 = ops_cpu(2), *b16 = ops_precision(f32, "bf16");
    struct mm p = mm_make(n, ic, oc, bias, seed);
    float *ri = rounded(p.inp, n * ic), *rw = rounded(p.w, oc * ic), *rd = rounded(p.dout, n * oc);
    float *di0 = vec(n * ic, seed + 5, -1, 1), *dw0 = vec(oc * ic, seed + 6, -1, 1),
          *db0 = vec(oc, seed + 7, -1, 1);
    size_t no = n * oc, ni = n * ic, nw = oc * ic;
    double *want = malloc((no + ni + nw + 1) * sizeof(double)),
           *mag = malloc((no + ni + nw + 1) * sizeof(double));
    double worst_tight = 0.0, worst_loose = 0.0;

    /* forward */
    float *out = vec(no, seed + 4, -1, 1), *out32 = vec(no, seed + 4, -1, 1);
    b16->matmul_forward(out, p.inp, p.w, p.b, n, ic, oc);
    f32->matmul_forward(out32, p.inp, p.w, p.b, n, ic, oc);
    float *bias_rows = NULL;
    if (bias) {
        bias_rows = malloc((no ? no : 1) * sizeof(float));
        for (size_t i = 0; i < no; i++)
            bias_rows[i] = p.b[i % oc];
    }
    ref_product(want, NULL, bias_rows, ri, ic, 1, rw, 1, ic, n, oc, ic);
    worst_tight = fmax(worst_tight, max_rel(out, want, no));
    ref_product(want, mag, bias_rows, p.inp, ic, 1, p.w, 1, ic, n, oc, ic);
    worst_loose = fmax(worst_loose, against_fp32("forward out", out, out32, mag, no, ic));

    /* backward, all three gradients */
    float *di = dup(di0, ni), *dw = dup(dw0, nw), *db = dup(db0, oc);
    float *di32 = dup(di0, ni), *dw32 = dup(dw0, nw), *db32 = dup(db0, oc);
    b16->matmul_backward(di, dw, db, p.dout, p.inp, p.w, n, ic, oc);
    f32->matmul_backward(di32, dw32, db32, p.dout, p.inp, p.w, n, ic, oc);
    ref_product(want, NULL, di0, rd, oc, 1, rw, ic, 1, n, ic, oc); /* dinp[n,ic] += dout[n,oc] w[oc,ic] */
    worst_tight = fmax(worst_tight, max_rel(di, want, ni));
    ref_product(want, mag, di0, p.dout, oc, 1, p.w, ic, 1, n, ic, oc);
    worst_loose = fmax(worst_loose, against_fp32("backward dinp", di, di32, mag, ni, oc));
    ref_product(want, NULL, dw0, rd, 1, oc, ri, ic, 1, oc, ic, n); /* dw[oc,ic] += dout^T[oc,n] inp[n,ic] */
    worst_tight = fmax(worst_tight, max_rel(dw, want, nw));
    ref_product(want, mag, dw0, p.dout, 1, oc, p.inp, ic, 1, oc, ic, n);
    worst_loose = fmax(worst_loose, against_fp32("backward dw", dw, dw32, mag, nw, n));
    CHECK(same_bits(db, db32, oc)); /* the bias gradient is a sum of the fp32 dout, as in fp32 */

    printf("cpu-bf16 matmul %-32s vs exact from rounded inputs %.2e (tol %.0e); vs fp32 %.3f of the bound\n",
           sh, worst_tight, TIGHT, worst_loose);
    CHECK(worst_tight <= TIGHT);
    CHECK(worst_loose <= 1.0);
    if (n * ic * oc >= 1000) /* the bound is met with room, but not with orders of magnitude */
        CHECK(worst_loose > 1.0 / 30);

    /* each gradient alone: a NULL one changes nothing else, and the others get the same bits */
    float *x = dup(di0, ni), *y = dup(dw0, nw), *z = dup(db0, oc);
    b16->matmul_backward(x, NULL, NULL, p.dout, p.inp, p.w, n, ic, oc);
    b16->matmul_backward(NULL, y, NULL, p.dout, p.inp, p.w, n, ic, oc);
    b16->matmul_backward(NULL, NULL, z, p.dout, p.inp, p.w, n, ic, oc);
    b16->matmul_backward(NULL, NULL, NULL, p.dout, p.inp, p.w, n, ic, oc);
    CHECK(same_bits(x, di, ni) && same_bits(y, dw, nw) && same_bits(z, db, oc));

    /* inputs that are bf16 values already: rounding changes nothing, so the fp32 table's bits */
    float *o1 = vec(no, seed + 8, -1, 1), *o2 = dup(o1, no);
    b16->matmul_forward(o1, ri, rw, p.b, n, ic, oc);
    f32->matmul_forward(o2, ri, rw, p.b, n, ic, oc);
    CHECK(same_bits(o1, o2, no));
    memcpy(x, di0, ni * sizeof(float));
    memcpy(y, dw0, nw * sizeof(float));
    memcpy(z, db0, oc * sizeof(float));
    memcpy(di32, di0, ni * sizeof(float));
    memcpy(dw32, dw0, nw * sizeof(float));
    memcpy(db32, db0, oc * sizeof(float));
    b16->matmul_backward(x, y, z, rd, ri, rw, n, ic, oc);
    f32->matmul_backward(di32, dw32, db32, rd, ri, rw, n, ic, oc);
    CHECK(same_bits(x, di32, ni) && same_bits(y, dw32, nw) && same_bits(z, db32, oc));

    /* 1 and 3 threads: the same bits */
    const struct ops *b1 = ops_precision(ops_cpu(1), "bf16");
    memcpy(o1, out32, no * sizeof(float));
    b1->matmul_forward(o1, p.inp, p.w, p.b, n, ic, oc);
    memcpy(x, di0, ni * sizeof(float));
    memcpy(y, dw0, nw * sizeof(float));
    b1->matmul_backward(x, y, NULL, p.dout, p.inp, p.w, n, ic, oc);
    int same1 = same_bits(o1, out, no) && same_bits(x, di, ni) && same_bits(y, dw, nw);
    const struct ops *b3 = ops_precision(ops_cpu(3), "bf16");
    memcpy(o1, out32, no * sizeof(float));
    b3->matmul_forward(o1, p.inp, p.w, p.b, n, ic, oc);
    memcpy(x, di0, ni * sizeof(float));
    memcpy(y, dw0, nw * sizeof(float));
    b3->matmul_backward(x, y, NULL, p.dout, p.inp, p.w, n, ic, oc);
    CHECK(same1 && same_bits(o1, out, no) && same_bits(x, di, ni) && same_bits(y, dw, nw));
    ops_cpu(2);

    float *all[] = {ri, rw, rd,   di0,  dw0,  db0, out, out32, bias_rows, di,
                    dw, db, di32, dw32, db32, x,   y,   z,     o1,        o2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        free(all[i]);
    free(want);
    free(mag);
    mm_free(&p);
}

/* No rows (or no outputs): nothing is computed, nothing changes (db gets zero sums added, as in fp32). */
static void test_matmul_empty(size_t n, size_t ic, size_t oc) {
    const struct ops *b16 = ops_precision(ops_cpu(2), "bf16");
    struct mm p = mm_make(n, ic, oc, 1, 900);
    float *out = vec(n * oc, 901, -1, 1), *out0 = dup(out, n * oc);
    float *di = vec(n * ic, 902, -1, 1), *dw = vec(oc * ic, 903, -1, 1), *db = vec(oc, 904, -1, 1);
    float *di0 = dup(di, n * ic), *dw0 = dup(dw, oc * ic), *db0 = dup(db, oc);
    b16->matmul_forward(out, p.inp, p.w, p.b, n, ic, oc);
    b16->matmul_backward(di, dw, db, p.dout, p.inp, p.w, n, ic, oc);
    if (ic == 0) { /* an empty product: the bias alone */
        int ok = 1;
        for (size_t i = 0; i < n * oc; i++)
            ok &= out[i] == p.b[i % oc];
        CHECK(ok);
    } else {
        CHECK(same_bits(out, out0, n * oc));
    }
    CHECK(same_bits(di, di0, n * ic) && same_bits(dw, dw0, oc * ic));
    if (n == 0)
        CHECK(same_bits(db, db0, oc));
    float *all[] = {out, out0, di, dw, db, di0, dw0, db0};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        free(all[i]);
    mm_free(&p);
}

static void test_matmul(void) {
    test_matmul_case(1, 1, 1, 1, 10);
    test_matmul_case(67, 45, 33, 1, 20);
    test_matmul_case(67, 45, 33, 0, 30);
    test_matmul_case(300, 257, 130, 1, 40); /* split into blocks over the pool */
    test_matmul_case(5, 1031, 3, 1, 50);    /* a long inner sum */
    test_matmul_case(3, 64, 4099, 0, 60);   /* many columns, few rows (lm_head-like) */
    test_scaled_case(300, 16, 257, 70);     /* LoRA's up projection: r = 16 */
    test_matmul_empty(0, 5, 3);
    test_matmul_empty(4, 0, 3);
    test_matmul_empty(4, 5, 0);
}

/* ---- attention ---- */

/* A double-precision reference of the bf16 attention from its rounded operands (engine/cpu/cpu.h says which):
 * q, k, v, dout [B,T,NH,HS] given rounded; the probabilities p are the engine's fp32 ones (checked on their
 * own against the exact softmax), rounded here where a product reads them, so the reference rounds the same
 * values the engine does. */
struct att_ref {
    const float *rq, *rk, *rv, *rd, *p;
    const int32_t *len;
    int causal;
    size_t b, t, nh, hs;
};

static size_t ar_at(const struct att_ref *r, size_t b, size_t t, size_t h) {
    return ((b * r->t + t) * r->nh + h) * r->hs;
}
static size_t ar_len(const struct att_ref *r, size_t b) {
    size_t l = r->len ? (r->len[b] < 0 ? 0 : (size_t)r->len[b]) : r->t;
    return l > r->t ? r->t : l;
}
static double ar_dot(const struct att_ref *r, const float *x, size_t ax, const float *y, size_t ay) {
    double s = 0.0;
    for (size_t d = 0; d < r->hs; d++)
        s += (double)x[ax + d] * y[ay + d];
    return s;
}

/* probs: the exact softmax of the rounded operands' scores; out = round(p) v. */
static void ar_forward(const struct att_ref *r, double *probs, double *out) {
    double scale = 1.0 / sqrt((double)r->hs);
    size_t T = r->t;
    memset(out, 0, r->b * T * r->nh * r->hs * sizeof(double));
    for (size_t b = 0; b < r->b; b++)
        for (size_t h = 0; h < r->nh; h++)
            for (size_t i = 0; i < T; i++) {
                size_t len = ar_len(r, b), keys = i >= len ? 0 : r->causal ? i + 1 : len;
                double *pr = probs + ((b * r->nh + h) * T + i) * T, max = -INFINITY, sum = 0.0;
                const float *pe = r->p + ((b * r->nh + h) * T + i) * T;
                for (size_t j = 0; j < T; j++) {
                    pr[j] =
                        j < keys ? scale * ar_dot(r, r->rq, ar_at(r, b, i, h), r->rk, ar_at(r, b, j, h)) : 0;
                    max = j < keys && pr[j] > max ? pr[j] : max;
                }
                for (size_t j = 0; j < keys; j++)
                    sum += pr[j] = exp(pr[j] - max);
                for (size_t j = 0; j < keys; j++)
                    pr[j] /= sum;
                for (size_t j = 0; j < keys; j++)
                    for (size_t d = 0; d < r->hs; d++)
                        out[ar_at(r, b, i, h) + d] +=
                            (double)kernel_bf16_round(pe[j]) * r->rv[ar_at(r, b, j, h) + d];
            }
}

/* dq, dk, dv from zero: dP = dout v^T, dS = p (dP - D) scale in double from the engine's p, then dq = dS k,
 * dk = dS^T q, dv = round(p)^T dout. The engine rounds its fp32 dS to bf16, the reference its double one:
 * where dS lies within the engine's fp32 error (bounded generously: 1e-5 of its terms' magnitude) of a
 * rounding boundary, the two may pick neighbouring bf16 values, so that term's difference goes into slack
 * (per element of dq and dk) instead of failing the tight check. */
static void ar_backward(const struct att_ref *r, double *dq, double *dk, double *dv, double *slack) {
    double scale = 1.0 / sqrt((double)r->hs);
    size_t T = r->t, n = r->b * T * r->nh * r->hs;
    memset(dq, 0, n * sizeof(double));
    memset(dk, 0, n * sizeof(double));
    memset(dv, 0, n * sizeof(double));
    memset(slack, 0, 2 * n * sizeof(double));
    double *dp = malloc(2 * (T + 1) * sizeof(double)), *mag = dp + T + 1;
    for (size_t b = 0; b < r->b; b++)
        for (size_t h = 0; h < r->nh; h++)
            for (size_t i = 0; i < T; i++) {
                const float *pe = r->p + ((b * r->nh + h) * T + i) * T;
                size_t ai = ar_at(r, b, i, h);
                double D = 0.0, Dmag = 0.0;
                for (size_t j = 0; j < T; j++) {
                    size_t aj = ar_at(r, b, j, h);
                    dp[j] = ar_dot(r, r->rd, ai, r->rv, aj);
                    mag[j] = 0.0;
                    for (size_t d = 0; d < r->hs; d++)
                        mag[j] += fabs((double)r->rd[ai + d] * r->rv[aj + d]);
                    D += pe[j] * dp[j];
                    Dmag += pe[j] * mag[j];
                }
                for (size_t j = 0; j < T; j++) {
                    size_t aj = ar_at(r, b, j, h);
                    double exact = pe[j] * (dp[j] - D) * scale, w = 1e-5 * pe[j] * (mag[j] + Dmag) * scale;
                    double ds = kernel_bf16_round((float)exact), rp = kernel_bf16_round(pe[j]);
                    double alt = fabs((double)kernel_bf16_round((float)(exact + w)) -
                                      kernel_bf16_round((float)(exact - w)));
                    for (size_t d = 0; d < r->hs; d++) {
                        dq[ai + d] += ds * r->rk[aj + d];
                        dk[aj + d] += ds * r->rq[ai + d];
                        dv[aj + d] += rp * r->rd[ai + d];
                        slack[ai + d] += alt * fabs((double)r->rk[aj + d]);
                        slack[n + aj + d] += alt * fabs((double)r->rq[ai + d]);
                    }
                }
            }
    free(dp);
}

/* max |got - want| / max |want| after each element's slack is taken off its difference. */
static double rel_slack(const float *got, const double *want, const double *slack, size_t n) {
    double worst = 0.0, scale = 0.0;
    for (size_t i = 0; i < n; i++) {
        scale = fmax(scale, fabs(want[i]));
        double d = fmax(0.0, fabs((double)got[i] - want[i]) - slack[i]);
        worst = d > worst || d != d ? d : worst;
    }
    return scale > 0 ? worst / scale : worst;
}

static void test_attention_case(size_t b, size_t t, size_t nh, size_t hs, int causal, const int32_t *len,
                                uint64_t seed) {
    const struct ops *f32 = ops_cpu(2), *b16 = ops_precision(f32, "bf16");
    size_t n = b * t * nh * hs, np = b * nh * t * t;
    float *q = vec(n, seed, -2, 2), *k = vec(n, seed + 1, -2, 2), *v = vec(n, seed + 2, -1, 1),
          *dout = vec(n, seed + 3, -1, 1);
    float *out = vec(n, seed + 4, -1, 1), *probs = vec(np, seed + 5, -1, 1), *out32 = vec(n, 1, -1, 1),
          *probs32 = vec(np, 2, -1, 1);
    b16->attention_forward(out, probs, q, k, v, len, causal, b, t, nh, hs);
    f32->attention_forward(out32, probs32, q, k, v, len, causal, b, t, nh, hs);
    float *rq = rounded(q, n), *rk = rounded(k, n), *rv = rounded(v, n), *rd = rounded(dout, n);
    struct att_ref r = {rq, rk, rv, rd, probs, len, causal, b, t, nh, hs};
    double *wp = malloc((np + 1) * sizeof(double)), *wo = malloc((n + 1) * sizeof(double)),
           *wq = malloc((3 * n + 1) * sizeof(double)), *wk = wq + n, *wv = wk + n,
           *slack = malloc((2 * n + 1) * sizeof(double));
    ar_forward(&r, wp, wo);
    double ep = max_rel(probs, wp, np), eo = max_rel(out, wo, n);

    /* backward from random gradients, then the reference's terms added to them */
    float *g0 = vec(3 * n, seed + 6, -1, 1), *g = dup(g0, 3 * n), *g32 = dup(g0, 3 * n);
    b16->attention_backward(g, g + n, g + 2 * n, dout, probs, q, k, v, b, t, nh, hs);
    f32->attention_backward(g32, g32 + n, g32 + 2 * n, dout, probs32, q, k, v, b, t, nh, hs);
    ar_backward(&r, wq, wk, wv, slack);
    size_t flips = 0;
    for (size_t i = 0; i < 3 * n; i++)
        wq[i] += g0[i];
    for (size_t i = 0; i < 2 * n; i++)
        flips += slack[i] > 0;
    double eq = rel_slack(g, wq, slack, n), ek = rel_slack(g + n, wk, slack + n, n),
           ev = max_rel(g + 2 * n, wv, n);
    double *w32 = malloc((3 * n + 1) * sizeof(double));
    for (size_t i = 0; i < 3 * n; i++)
        w32[i] = g32[i];
    for (size_t i = 0; i < n; i++)
        wo[i] = out32[i];
    double fo = max_rel(out, wo, n), fg = max_rel(g, w32, 3 * n);
    printf("cpu-bf16 attention b=%zu t=%zu nh=%zu hs=%zu %s: vs exact from rounded operands: probs %.2e out "
           "%.2e dq %.2e dk %.2e dv %.2e (%zu of dq, dk with slack); vs fp32: out %.2e, gradients %.2e\n",
           b, t, nh, hs, causal ? "causal" : "full", ep, eo, eq, ek, ev, flips, fo, fg);
    CHECK(ep <= 1e-6 && eo <= TIGHT && ev <= TIGHT && eq <= TIGHT && ek <= TIGHT);
    CHECK(fo > 0 && fo <= 2e-2 && fg > 0 && fg <= 5e-2); /* bf16's rounding, not another function */

    /* each gradient alone gets the same bits; 1 and 3 threads too */
    float *x = dup(g0, 3 * n);
    b16->attention_backward(x, NULL, NULL, dout, probs, q, k, v, b, t, nh, hs);
    b16->attention_backward(NULL, x + n, NULL, dout, probs, q, k, v, b, t, nh, hs);
    b16->attention_backward(NULL, NULL, x + 2 * n, dout, probs, q, k, v, b, t, nh, hs);
    b16->attention_backward(NULL, NULL, NULL, dout, probs, q, k, v, b, t, nh, hs);
    CHECK(same_bits(x, g, 3 * n));
    for (int th = 1; th <= 3; th += 2) {
        const struct ops *o = ops_precision(ops_cpu(th), "bf16");
        float *o2 = dup(out, n), *p2 = dup(probs, np), *x2 = dup(g0, 3 * n);
        o->attention_forward(o2, p2, q, k, v, len, causal, b, t, nh, hs);
        o->attention_backward(x2, x2 + n, x2 + 2 * n, dout, probs, q, k, v, b, t, nh, hs);
        CHECK(same_bits(o2, out, n) && same_bits(p2, probs, np) && same_bits(x2, g, 3 * n));
        free(o2);
        free(p2);
        free(x2);
    }
    ops_cpu(2);
    float *all[] = {q, k, v, dout, out, probs, out32, probs32, rq, rk, rv, rd, g0, g, g32, x};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        free(all[i]);
    free(wp);
    free(wo);
    free(wq);
    free(w32);
    free(slack);
}

static void test_attention(void) {
    const int32_t l37[] = {37, 20}, l33[] = {33, 9}, ledge[] = {12, 0, -3, 5};
    test_attention_case(2, 37, 3, 20, 1, l37, 100);   /* the decoder: causal, row 1 padded */
    test_attention_case(2, 33, 2, 16, 0, l33, 110);   /* padding without causal */
    test_attention_case(2, 37, 3, 20, 0, NULL, 120);  /* the vision tower: no mask */
    test_attention_case(1, 150, 2, 64, 1, NULL, 130); /* LLaMA's head size, long rows */
    test_attention_case(4, 9, 2, 8, 1, ledge, 140);   /* len > t (clamped), 0 and negative (zero rows) */
}

/* The tiny LLaVA's batch (the llava_grad fixture's). */
#define NB 2
#define NT 24

/* ---- frozen weights (ops weights_frozen, engine/wcache.h) ---- */

static int drops;
static void count_drop(const float *w, size_t n, void *copy) {
    (void)w;
    (void)n;
    (void)copy;
    drops++;
}

/* The registry: found by exact pointer and size; forgetting a range drops exactly the entries it overlaps. */
static void test_wcache(void) {
    float a[64] = {0};
    struct wcache c = {0};
    int x, y, z;
    wcache_add(&c, a, 8, &x, 32);
    wcache_add(&c, a + 8, 8, &y, 32);
    wcache_add(&c, a + 32, 16, &z, 64);
    CHECK(wcache_find(&c, a, 8) == &x && wcache_find(&c, a + 8, 8) == &y &&
          wcache_find(&c, a + 32, 16) == &z);
    CHECK(wcache_find(&c, a, 4) == NULL &&
          wcache_find(&c, a + 1, 8) == NULL); /* pointer and size are the key */
    CHECK(c.bytes == 128);
    drops = 0;
    CHECK(wcache_forget(&c, a + 16, 16, count_drop) == 0 && drops == 0); /* the gap between two: none */
    CHECK(wcache_forget(&c, a + 15, 1, count_drop) == 1 && drops == 1);  /* the second's last float */
    CHECK(wcache_find(&c, a + 8, 8) == NULL && wcache_find(&c, a, 8) == &x &&
          wcache_find(&c, a + 32, 16) == &z);
    CHECK(c.bytes == 96);
    CHECK(wcache_forget(&c, a, 64, count_drop) == 2 && drops == 3 && c.n == 0 && c.bytes == 0);
    free(c.e);
}

/* The CPU tables: the fp32 one ignores weights_frozen; the bf16 one copies a weight once, and its products
 * then read the copy: the same bits as rounding per call, and (the contract's other side) the old values
 * while the weight changes unforgotten; after weights_forget, the new ones. */
static void test_frozen_ops(void) {
    const struct ops *f32 = ops_cpu(2), *b16 = ops_precision(f32, "bf16");
    size_t n = 37, ic = 45, oc = 29, no = n * oc, ni = n * ic, nw = oc * ic;
    struct mm p = mm_make(n, ic, oc, 1, 700);
    float *o0 = vec(no, 701, -1, 1), *d0 = vec(ni, 702, -1, 1);
    float *o1 = dup(o0, no), *d1 = dup(d0, ni), *o2 = dup(o0, no), *d2 = dup(d0, ni);
    b16->matmul_forward(o1, p.inp, p.w, p.b, n, ic, oc);
    b16->matmul_backward(d1, NULL, NULL, p.dout, p.inp, p.w, n, ic, oc);
    CHECK(cpu_weights_frozen_bytes() == 0);
    f32->weights_frozen(p.w, nw);
    CHECK(cpu_weights_frozen_bytes() == 0);
    b16->weights_frozen(p.w, nw);
    b16->weights_frozen(p.w, nw); /* once */
    CHECK(cpu_weights_frozen_bytes() == nw * sizeof(float));
    b16->matmul_forward(o2, p.inp, p.w, p.b, n, ic, oc);
    b16->matmul_backward(d2, NULL, NULL, p.dout, p.inp, p.w, n, ic, oc);
    CHECK(same_bits(o2, o1, no) && same_bits(d2, d1, ni));

    for (size_t i = 0; i < nw; i++)
        p.w[i] = -2.0f * p.w[i];
    memcpy(o2, o0, no * sizeof(float));
    b16->matmul_forward(o2, p.inp, p.w, p.b, n, ic, oc);
    CHECK(same_bits(o2, o1, no));         /* unforgotten: the copy of the old values */
    f32->weights_forget(p.w + nw - 1, 1); /* any table of the backend, any overlap */
    CHECK(cpu_weights_frozen_bytes() == 0);
    memcpy(o2, o0, no * sizeof(float));
    b16->matmul_forward(o2, p.inp, p.w, p.b, n, ic, oc);
    float *ri = rounded(p.inp, ni), *rw = rounded(p.w, nw), *o3 = dup(o0, no);
    f32->matmul_forward(o3, ri, rw, p.b, n, ic, oc); /* bf16 values already: the bf16 product's bits */
    CHECK(same_bits(o2, o3, no) && !same_bits(o2, o1, no));
    float *all[] = {o0, d0, o1, d1, o2, d2, ri, rw, o3};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        free(all[i]);
    mm_free(&p);
}

/* The model tells the bf16 table its frozen product weights at a forward (all of them: nothing trains here),
 * and forgets them when a flag changes and when it is freed. Doubling lm_head (exact in bf16 and in every
 * sum) must double the logits exactly once the change is announced through llava_set_trainable. */
static void test_frozen_model(void) {
    const char *data = getenv("PULSE_TEST_DATA") ? getenv("PULSE_TEST_DATA") : "tests/data";
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/llava_tiny", data);
    struct llava m;
    memset(&m, 0, sizeof m);
    struct llava_batch fx;
    int ok = llava_batch_load(&fx, dir, data, "llava_grad/labels.safetensors", NB * NT) == 0;
    ok = ok && llava_load(&m, dir, NB, NT) == 0;
    CHECK(ok);
    if (!ok) {
        fprintf(stderr, "  tiny model: %s\n", err_msg());
        return;
    }
    const struct ops *b16 = ops_precision(ops_cpu(2), "bf16");
    size_t want = 0, nl = NB * NT * (size_t)m.cfg.text.vocab;
    for (size_t i = 0; i < m.nptab; i++)
        want += m.ptab[i].product ? m.ptab[i].n * sizeof(float) : 0;
    CHECK(llava_forward(&m, b16, fx.ids, fx.mask, NB, NT, fx.pixels, NB) == 0);
    CHECK(want > 0 && cpu_weights_frozen_bytes() == want);
    float *a = dup(m.a.logits, nl);
    struct llava_tensor *head = llava_param_find(&m, "lm_head.weight");
    CHECK(head && head->product);
    if (head) {
        CHECK(llava_set_trainable(&m, "lm_head.weight", 0) == 1); /* announces the change: forgets */
        CHECK(cpu_weights_frozen_bytes() == 0);
        for (size_t i = 0; i < head->n; i++)
            m.params[head->offset + i] *= 2.0f;
        CHECK(llava_forward(&m, b16, fx.ids, fx.mask, NB, NT, fx.pixels, NB) == 0);
        int doubled = 1;
        for (size_t i = 0; i < nl; i++)
            doubled &= m.a.logits[i] == 2.0f * a[i];
        CHECK(doubled);
        CHECK(cpu_weights_frozen_bytes() == want);
        /* a trainable product weight is not copied */
        llava_set_trainable(&m, "lm_head.weight", 1);
        CHECK(llava_forward(&m, b16, fx.ids, fx.mask, NB, NT, fx.pixels, NB) == 0);
        CHECK(cpu_weights_frozen_bytes() == want - head->n * sizeof(float));
    }
    free(a);
    llava_batch_free(&fx);
    llava_free(&m);
    CHECK(cpu_weights_frozen_bytes() == 0);
}

/* ---- the tiny LLaVA, LoRA, in bf16 ---- */

#define TARGETS ".*language_model.*\\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"

static int fwd_bwd(struct llava *m, const struct ops *o, const int32_t *ids, const int32_t *mask,
                   const int32_t *labels, const float *pixels, float *loss) {
    if (llava_forward(m, o, ids, mask, NB, NT, pixels, NB) < 0 ||
        train_ce_loss(m, o, labels, NB, NT, loss) < 0)
        return -1;
    llava_zero_grad(m, o);
    return llava_backward(m, o);
}

/* The tiny fixture model with a rank-4 adapter on every decoder projection (B drawn, dropout 0.1 on, the
 * masks of step 3): forward and backward through the bf16 table against the fp32 table. Every linear layer's
 * inputs are rounded by up to 2^-8 relative, and the differences pass through a dozen layers: measured as
 * max |bf16 - fp32| / max |fp32| per tensor, the logits moved 1.0e-2, the adapter's gradients up to 2.9e-2,
 * the loss 8.1e-4 relative. The bounds (5e-2, 0.1, 1e-2) leave a few times that and still fail a gradient
 * that is wrong rather than rounded (relative error ~1); none of them may be 0 (the bf16 entries ran). 1 and
 * 2 threads: the same bits. */
static void test_model(void) {
    const char *data = getenv("PULSE_TEST_DATA") ? getenv("PULSE_TEST_DATA") : "tests/data";
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/llava_tiny", data);
    struct llava m;
    struct lora l;
    memset(&m, 0, sizeof m);
    memset(&l, 0, sizeof l);
    struct llava_batch fx;
    int ok = llava_batch_load(&fx, dir, data, "llava_grad/labels.safetensors", NB * NT) == 0;
    ok = ok && llava_load(&m, dir, NB, NT) == 0;
    if (ok)
        llava_set_trainable(&m, "", 0);
    ok = ok && lora_create(&l, 4, 8.0, 0.1) == 0;
    if (ok) {
        lora_set_target_regex(&l, TARGETS);
        ok = llava_lora_add_targets(&m, &l) == 0;
    }
    if (ok) {
        lora_init(&l, 17);
        for (size_t i = 0; i < l.n; i++) {
            uint64_t key = rng_key(19, i);
            for (size_t e = 0; e < l.m[i].out * (size_t)l.r; e++)
                l.m[i].B[e] = 0.05f * (2.0f * rng_uniform(key, e) - 1.0f);
        }
        ok = llava_lora_attach(&m, &l, 23) == 0;
    }
    if (!ok)
        fprintf(stderr, "  tiny model: %s\n", err_msg());
    CHECK(ok);
    if (ok) {
        llava_grads_init(&m);
        llava_lora_mode(&m, 1, 3);
        size_t ng = m.ngrads;
        float l32 = 0, l16 = 0, l16b = 0;
        size_t nl = NB * NT * (size_t)m.cfg.text.vocab;
        float *g32 = malloc(ng * sizeof(float)), *g16 = malloc(ng * sizeof(float));
        double *lg32 = malloc(nl * sizeof(double));
        ok = fwd_bwd(&m, ops_cpu(1), fx.ids, fx.mask, fx.labels, fx.pixels, &l32) == 0;
        memcpy(g32, m.grads, ng * sizeof(float));
        for (size_t i = 0; i < nl; i++)
            lg32[i] = m.a.logits[i];
        ok = ok &&
             fwd_bwd(&m, ops_precision(ops_cpu(1), "bf16"), fx.ids, fx.mask, fx.labels, fx.pixels, &l16) == 0;
        memcpy(g16, m.grads, ng * sizeof(float));
        double el = max_rel(m.a.logits, lg32, nl);
        ok = ok && fwd_bwd(&m, ops_precision(ops_cpu(2), "bf16"), fx.ids, fx.mask, fx.labels, fx.pixels,
                           &l16b) == 0;
        CHECK(ok);
        double rl = fabs((double)l16 - l32) / fabs((double)l32), worst = 0.0;
        const char *wname = "-";
        for (size_t i = 0; ok && i < (size_t)m.cfg.text.layers * LLAVA_NPROJ; i++) {
            const struct llava_lora_slot *s = &m.lora.s[i];
            if (!s->mod)
                continue;
            size_t n = (size_t)l.r * (s->mod->in + s->mod->out);
            double *w = malloc(n * sizeof(double));
            for (size_t e = 0; e < n; e++)
                w[e] = g32[s->goffset + e];
            double r = max_rel(g16 + s->goffset, w, n);
            free(w);
            if (r > worst || r != r) {
                worst = r;
                wname = s->mod->name;
            }
        }
        printf("tiny LoRA: loss fp32 %.7f bf16 %.7f (rel %.2e); logits bf16 vs fp32 max_rel %.2e; adapter "
               "gradients max_rel %.2e (worst %s)\n",
               l32, l16, rl, el, worst, wname);
        CHECK(rl > 0 && rl <= 1e-2);
        CHECK(el > 0 && el <= 5e-2);
        CHECK(worst > 0 && worst <= 0.1);
        CHECK(memcmp(&l16, &l16b, sizeof l16) == 0 && same_bits(g16, m.grads, ng));
        free(g32);
        free(g16);
        free(lg32);
        ops_cpu(2);
    }
    llava_batch_free(&fx);
    llava_free(&m);
    lora_free(&l);
}

int main(void) {
    test_round_known();
    test_round_sweep();
    test_precision();
    test_matmul();
    test_attention();
    test_wcache();
    test_frozen_ops();
    test_model();
    test_frozen_model();
    return check_done("engine_bf16");
}

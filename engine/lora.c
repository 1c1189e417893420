/* lora: LoRA adapters in memory: PEFT's initialisation, target matching and merge (see lora.h). */
#include "engine/lora.h"
#include "engine/mem.h"

#include "engine/rng.h"
#include "util/buf.h"
#include "util/err.h"

#include <math.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

int lora_create(struct lora *l, int r, double alpha, double dropout) {
    memset(l, 0, sizeof *l);
    if (r <= 0)
        return err_set("lora: r must be positive, got %d", r);
    if (!isfinite(alpha))
        return err_set("lora: lora_alpha must be a finite number");
    if (!(dropout >= 0 && dropout < 1))
        return err_set("lora: lora_dropout must be in [0, 1), got %g", dropout);
    l->r = r;
    l->alpha = alpha;
    l->dropout = dropout;
    return 0;
}

static void free_targets(struct lora *l) {
    for (size_t i = 0; i < l->ntargets; i++)
        free(l->targets[i]);
    free(l->targets);
    free(l->target_regex);
    l->targets = NULL;
    l->ntargets = 0;
    l->target_regex = NULL;
}

void lora_set_targets(struct lora *l, const char *const *targets, size_t n) {
    free_targets(l);
    l->targets = xcalloc(n ? n : 1, sizeof *l->targets);
    for (size_t i = 0; i < n; i++)
        l->targets[i] = xstrdup(targets[i]);
    l->ntargets = n;
}

void lora_set_target_regex(struct lora *l, const char *regex) {
    free_targets(l);
    l->target_regex = xstrdup(regex);
}

/* PEFT's str rule: re.fullmatch(regex, path). POSIX has no fullmatch, so the expression is anchored. */
static int regex_fullmatch(const char *regex, const char *path) {
    struct buf b = {0};
    buf_printf(&b, "^(%s)$", regex);
    regex_t re;
    int rc = regcomp(&re, b.data, REG_EXTENDED | REG_NOSUB);
    buf_free(&b);
    if (rc != 0)
        return err_set("lora: target_modules regex does not compile as a POSIX extended expression: %s",
                       regex);
    rc = regexec(&re, path, 0, NULL, 0) == 0;
    regfree(&re);
    return rc;
}

/* PEFT's list rule: the path equals a target or ends with "." + target. */
static int suffix_match(const char *target, const char *path) {
    size_t tl = strlen(target), pl = strlen(path);
    if (tl == pl)
        return strcmp(target, path) == 0;
    return pl > tl && path[pl - tl - 1] == '.' && strcmp(path + pl - tl, target) == 0;
}

int lora_targets(const struct lora *l, const char *module) {
    if (l->target_regex)
        return regex_fullmatch(l->target_regex, module);
    for (size_t i = 0; i < l->ntargets; i++)
        if (suffix_match(l->targets[i], module))
            return 1;
    return 0;
}

const struct lora_module *lora_find(const struct lora *l, const char *name) {
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->m[i].name, name) == 0)
            return &l->m[i];
    return NULL;
}

int lora_add(struct lora *l, const char *name, size_t in, size_t out) {
    if (lora_find(l, name))
        return err_set("lora: module %s added twice", name);
    if (in == 0 || out == 0)
        return err_set("lora: module %s has a zero dimension (%zu in, %zu out)", name, in, out);
    l->m = xrealloc(l->m, (l->n + 1) * sizeof *l->m);
    struct lora_module *m = &l->m[l->n++];
    m->name = xstrdup(name);
    m->in = in;
    m->out = out;
    m->A = mem_alloc((size_t)l->r * in, sizeof(float));
    m->B = mem_alloc(out * (size_t)l->r, sizeof(float));
    return 0;
}

void lora_free(struct lora *l) {
    free_targets(l);
    for (size_t i = 0; i < l->n; i++) {
        free(l->m[i].name);
        mem_free(l->m[i].A);
        mem_free(l->m[i].B);
    }
    free(l->m);
    memset(l, 0, sizeof *l);
}

/* torch.nn.init.kaiming_uniform_(a = sqrt 5): gain = sqrt(2 / (1 + 5)), bound = gain * sqrt(3 / fan_in),
 * which simplifies to 1 / sqrt(fan_in). Computed in double, as torch does, and rounded once. */
float lora_init_bound(size_t in) {
    double gain = sqrt(2.0 / (1.0 + 5.0));
    return (float)(gain * sqrt(3.0 / (double)in));
}

void lora_init(struct lora *l, uint64_t seed) {
    for (size_t i = 0; i < l->n; i++) {
        struct lora_module *m = &l->m[i];
        uint64_t key = rng_key(seed, i);
        float bound = lora_init_bound(m->in);
        size_t na = (size_t)l->r * m->in;
        /* u in [0, 1) with 24 bits: (2u - 1) * bound is exact up to the final product's rounding. */
        for (size_t j = 0; j < na; j++)
            m->A[j] = (2.0f * rng_uniform(key, j) - 1.0f) * bound;
        memset(m->B, 0, m->out * (size_t)l->r * sizeof(float));
    }
}

float lora_scale(const struct lora *l) {
    return (float)(l->alpha / (double)l->r);
}

/* fmaf is exactly rounded, so every build gives the same bits; on x86-64 a second copy compiled for the FMA
 * instruction set (picked at load time) keeps it vectorised instead of a libm call per element. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define LORA_FMA_CLONES __attribute__((target_clones("fma", "default")))
#else
#define LORA_FMA_CLONES
#endif

/* One output row: row[i] = sum_k B[o,k] A[k,i], accumulated k by k (so the inner loop vectorises) with one
 * fused multiply-add per term in order k = 0 .. r-1: what torch's CPU sgemm does for B @ A, which makes the
 * merge bit-identical to PEFT's there (test_engine_peft checks it against merge_and_unload). */
LORA_FMA_CLONES static void delta_row(float *restrict row, const float *restrict b_row,
                                      const float *restrict a, size_t r, size_t in) {
    memset(row, 0, in * sizeof(float));
    for (size_t k = 0; k < r; k++) {
        float b = b_row[k];
        const float *ak = a + k * in;
        for (size_t i = 0; i < in; i++)
            row[i] = fmaf(b, ak[i], row[i]);
    }
}

void lora_merge(float *w, const struct lora *l, const struct lora_module *m) {
    float scale = lora_scale(l);
    float *row = xmalloc(m->in * sizeof(float));
    for (size_t o = 0; o < m->out; o++) {
        delta_row(row, m->B + o * (size_t)l->r, m->A, (size_t)l->r, m->in);
        float *wo = w + o * m->in;
        for (size_t i = 0; i < m->in; i++)
            wo[i] += row[i] * scale;
    }
    free(row);
}

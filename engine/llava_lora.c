/* llava_lora: LoRA adapters on the decoder's projections: attaching a struct lora to the model, the adapted
 * linear's extra term y += (B (A dropout(x))) * scale with its backward, dropout masks, bypassing the term
 * (unlearning's reference forwards), and merging. */
#include "engine/llava.h"
#include "engine/mem.h"
#include "engine/lora.h"
#include "engine/rng.h"
#include "util/buf.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const proj_path[LLAVA_NPROJ] = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj",
};

/* The module paths of the two layouts: the newer one (PEFT on transformers 5) and the Hub's. */
static const char *const lm_prefix[2] = {"model.language_model.layers.", "language_model.model.layers."};

/* Base weight and shape of projection p of layer l. */
static float *proj_weight(const struct llava *m, int l, int p, size_t *in, size_t *out) {
    const struct text_config *t = &m->cfg.text;
    size_t c = (size_t)t->hidden, kv = c / (size_t)t->heads * (size_t)t->kv_heads,
           im = (size_t)t->intermediate;
    const struct llava_text_layer *w = &m->p.tl[l];
    float *ws[LLAVA_NPROJ] = {w->q_w, w->k_w, w->v_w, w->o_w, w->gate_w, w->up_w, w->down_w};
    size_t ins[LLAVA_NPROJ] = {c, c, c, c, c, c, im}, outs[LLAVA_NPROJ] = {c, kv, kv, c, im, im, c};
    *in = ins[p];
    *out = outs[p];
    return ws[p];
}

/* "model.language_model.layers.N.self_attn.q_proj" (either layout) -> layer and projection; -1 if not one. */
static int parse_module(const struct llava *m, const char *name, int *layer, int *proj) {
    for (int k = 0; k < 2; k++) {
        size_t pl = strlen(lm_prefix[k]);
        if (strncmp(name, lm_prefix[k], pl) != 0)
            continue;
        char *end;
        long l = strtol(name + pl, &end, 10);
        if (end == name + pl || *end != '.' || l < 0 || l >= m->cfg.text.layers)
            return -1;
        for (int p = 0; p < LLAVA_NPROJ; p++)
            if (strcmp(end + 1, proj_path[p]) == 0) {
                *layer = (int)l;
                *proj = p;
                return 0;
            }
    }
    return -1;
}

int llava_lora_shape(void *ctx, const char *module, size_t *in, size_t *out) {
    const struct llava *m = ctx;
    int l, p;
    if (parse_module(m, module, &l, &p) < 0)
        return -1;
    proj_weight(m, l, p, in, out);
    return 0;
}

/* 1 when a linear outside the decoder's projections (the tower's, the projector's, lm_head) is targeted:
 * PEFT would adapt it, the engine cannot. Names it in *which. */
static int targets_elsewhere(const struct llava *m, const struct lora *l, char *which, size_t cap) {
    static const char *const vis[] = {"self_attn.q_proj",   "self_attn.k_proj", "self_attn.v_proj",
                                      "self_attn.out_proj", "mlp.fc1",          "mlp.fc2"};
    static const char *const vt[] = {"model.vision_tower.encoder.layers.",
                                     "vision_tower.vision_model.encoder.layers."};
    static const char *const other[] = {"model.multi_modal_projector.linear_1",
                                        "model.multi_modal_projector.linear_2",
                                        "multi_modal_projector.linear_1",
                                        "multi_modal_projector.linear_2",
                                        "lm_head",
                                        "language_model.lm_head"};
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        snprintf(which, cap, "%s", other[i]);
        if (lora_targets(l, which) != 0)
            return 1;
    }
    for (int k = 0; k < 2; k++)
        for (int layer = 0; layer < m->cfg.vision.layers; layer++)
            for (size_t p = 0; p < sizeof vis / sizeof vis[0]; p++) {
                snprintf(which, cap, "%s%d.%s", vt[k], layer, vis[p]);
                if (lora_targets(l, which) != 0)
                    return 1;
            }
    return 0;
}

/* Calls add(arg, name, in, out) for every decoder projection l's targets select, in layer order, q k v o
 * gate up down, by the first name layout that matches; stops at the first failure. Returns the count, or -1.
 */
static long each_target(const struct llava *m, const struct lora *l,
                        int (*add)(void *arg, const char *name, size_t in, size_t out), void *arg) {
    char name[LLAVA_NAME_MAX];
    long n = 0;
    for (int layer = 0; layer < m->cfg.text.layers; layer++)
        for (int p = 0; p < LLAVA_NPROJ; p++)
            for (int k = 0; k < 2; k++) {
                snprintf(name, sizeof name, "%s%d.%s", lm_prefix[k], layer, proj_path[p]);
                size_t in, out;
                proj_weight(m, layer, p, &in, &out);
                if (lora_targets(l, name) == 1) {
                    if (add(arg, name, in, out) < 0)
                        return -1;
                    n++;
                    break;
                }
            }
    return n;
}

static int add_module(void *arg, const char *name, size_t in, size_t out) {
    return lora_add(arg, name, in, out);
}

/* A module's A [r, in] and B [out, r] together; its gradients take as many floats. */
static size_t ab_floats(size_t r, size_t in, size_t out) {
    return r * (in + out);
}

struct plan_sum {
    size_t r, ab;
};

static int sum_module(void *arg, const char *name, size_t in, size_t out) {
    struct plan_sum *p = arg;
    (void)name;
    p->ab += ab_floats(p->r, in, out);
    return 0;
}

/* The activation block: h [N, r] per adapted module, then the scratch of one adapted linear (dropout(x) and
 * d dropout(x), each [N, wide] for the widest projection, and dh [N, r]). */
static size_t acts_floats(const struct llava *m, size_t adapted, size_t r) {
    size_t n = m->B * m->T;
    size_t wide = (size_t)(m->cfg.text.hidden > m->cfg.text.intermediate ? m->cfg.text.hidden
                                                                         : m->cfg.text.intermediate);
    return adapted * n * r + 2 * n * wide + n * r;
}

/* Refuses targets outside the decoder's projections (one line naming the first). */
static int targets_ok(const struct llava *m, const struct lora *l) {
    char name[LLAVA_NAME_MAX];
    if (targets_elsewhere(m, l, name, sizeof name))
        return lora_targets(l, name) < 0 ? -1
                                         : err_set("lora: target_modules also matches %s; only the decoder's "
                                                   "q/k/v/o/gate/up/down projections can be adapted",
                                                   name);
    return 0;
}

int llava_lora_add_targets(const struct llava *m, struct lora *l) {
    if (targets_ok(m, l) < 0)
        return -1;
    long n = each_target(m, l, add_module, l);
    if (n < 0)
        return -1;
    if (n == 0)
        return err_set("lora: target_modules matches none of the decoder's projections");
    return 0;
}

int llava_lora_plan(const struct llava *m, const struct lora *l, size_t *ab, size_t *acts) {
    struct plan_sum p = {(size_t)l->r, 0};
    long n = targets_ok(m, l) < 0 ? -1 : each_target(m, l, sum_module, &p);
    if (n < 0)
        return -1;
    if (n == 0)
        return err_set("lora: target_modules matches none of the decoder's projections");
    *ab = p.ab;
    *acts = acts_floats(m, (size_t)n, p.r);
    return 0;
}

/* Every module maps to a distinct decoder projection of the base's shape. */
static int map_modules(struct llava *m, struct lora *l) {
    for (size_t i = 0; i < l->n; i++) {
        struct lora_module *mod = &l->m[i];
        int layer, p;
        size_t in, out;
        if (parse_module(m, mod->name, &layer, &p) < 0)
            return err_set("lora: module %s is not one of the decoder's q/k/v/o/gate/up/down projections",
                           mod->name);
        proj_weight(m, layer, p, &in, &out);
        if (in != mod->in || out != mod->out)
            return err_set("lora: module %s is %zu -> %zu, the model's is %zu -> %zu", mod->name, mod->in,
                           mod->out, in, out);
        struct llava_lora_slot *s = &m->lora.s[layer * LLAVA_NPROJ + p];
        if (s->mod)
            return err_set("lora: module %s is given twice (both name layouts?)", mod->name);
        s->mod = mod;
        s->index = i;
    }
    return 0;
}

/* The activation block (acts_floats) carved: every h, then the scratch. */
static void lora_acts(struct llava *m) {
    size_t n = m->B * m->T, r = (size_t)m->lora.l->r, ns = (size_t)m->cfg.text.layers * LLAVA_NPROJ;
    size_t wide = (size_t)(m->cfg.text.hidden > m->cfg.text.intermediate ? m->cfg.text.hidden
                                                                         : m->cfg.text.intermediate);
    size_t adapted = 0;
    for (size_t i = 0; i < ns; i++)
        adapted += m->lora.s[i].mod != NULL;
    float *a = m->lora.acts = mem_alloc(acts_floats(m, adapted, r), sizeof(float));
    for (size_t i = 0; i < ns; i++)
        if (m->lora.s[i].mod) {
            m->lora.s[i].h = a;
            a += n * r;
        }
    m->lora.x = a;
    m->lora.dx = a + n * wide;
    m->lora.dh = a + 2 * n * wide;
}

int llava_lora_attach(struct llava *m, struct lora *l, uint64_t seed) {
    llava_lora_free(m);
    llava_grads_free(m); /* the gradient block is laid out for one adapter: llava_grads_init again */
    m->lora.s = xcalloc((size_t)m->cfg.text.layers * LLAVA_NPROJ + 1, sizeof *m->lora.s);
    if (map_modules(m, l) < 0) {
        llava_lora_detach(m);
        return -1;
    }
    m->lora.l = l;
    m->lora.seed = seed;
    lora_acts(m);
    return 0;
}

void llava_lora_free(struct llava *m) {
    free(m->lora.s);
    mem_free(m->lora.acts);
    memset(&m->lora, 0, sizeof m->lora);
}

/* Gradients are laid out for an adapter: detaching drops them (llava_grads_init again). */
void llava_lora_detach(struct llava *m) {
    int had = m->lora.l != NULL || m->lora.s != NULL;
    llava_lora_free(m);
    if (had)
        llava_grads_free(m);
}

void llava_lora_mode(struct llava *m, int train, uint64_t step) {
    m->lora.train = train != 0;
    m->lora.step = step;
}

void llava_lora_bypass(struct llava *m, int on) {
    m->lora.bypass = on != 0;
}

void llava_lora_merge(struct llava *m) {
    llava_frozen_forget(m);
    for (int layer = 0; m->lora.s && layer < m->cfg.text.layers; layer++)
        for (int p = 0; p < LLAVA_NPROJ; p++) {
            const struct llava_lora_slot *s = &m->lora.s[layer * LLAVA_NPROJ + p];
            size_t in, out;
            if (s->mod)
                lora_merge(proj_weight(m, layer, p, &in, &out), m->lora.l, s->mod);
        }
    llava_lora_detach(m);
}

size_t llava_lora_grads_layout(struct llava *m, size_t off) {
    size_t start = off, ns = m->lora.s ? (size_t)m->cfg.text.layers * LLAVA_NPROJ : 0;
    for (size_t i = 0; i < ns; i++) {
        struct llava_lora_slot *s = &m->lora.s[i];
        if (!s->mod)
            continue;
        s->goffset = off;
        off += ab_floats((size_t)m->lora.l->r, s->mod->in, s->mod->out);
    }
    m->lora.ngrads = off - start;
    return off;
}

void llava_lora_grads_bind(struct llava *m) {
    size_t ns = m->lora.s ? (size_t)m->cfg.text.layers * LLAVA_NPROJ : 0;
    for (size_t i = 0; i < ns; i++) {
        struct llava_lora_slot *s = &m->lora.s[i];
        if (s->mod) {
            s->gA = m->grads + s->goffset;
            s->gB = s->gA + (size_t)m->lora.l->r * s->mod->in;
        }
    }
}

/* ---- the adapted linear ---- */

/* Dropout's mask is a pure function of (seed, step, module, element): the backward draws the same mask
 * again instead of storing it. Kept elements are scaled by 1 / (1 - p), as torch's dropout does. */
static int dropout_on(const struct llava *m) {
    return m->lora.train && m->lora.l->dropout > 0;
}

static uint64_t dropout_key(const struct llava *m, size_t index) {
    return rng_key(rng_key(m->lora.seed, m->lora.step), index);
}

/* The mask and scale of module `index` at this step. */
static struct ops_dropout dropout_of(const struct llava *m, size_t index) {
    double p = m->lora.l->dropout;
    return (struct ops_dropout){dropout_key(m, index), (float)p, (float)(1.0 / (1.0 - p))};
}

void llava_lora_forward(struct llava *m, const struct ops *ops, int layer, int proj, float *y, const float *x,
                        size_t n) {
    if (!m->lora.s || m->lora.bypass)
        return;
    struct llava_lora_slot *s = &m->lora.s[layer * LLAVA_NPROJ + proj];
    if (!s->mod)
        return;
    size_t r = (size_t)m->lora.l->r, in = s->mod->in, out = s->mod->out;
    if (dropout_on(m))
        ops->lora_down_forward(s->h, m->lora.x, x, s->mod->A, dropout_of(m, s->index), n, in, r);
    else
        ops->matmul_forward(s->h, x, s->mod->A, NULL, n, in, r);
    /* PEFT: y + lora_B(lora_A(x)) * scaling; the scale rides on the product (BLAS's alpha), so no [N, out]
     * scratch and no pass over it (PEFT rounds the product, then the scaled term: the same bits where BLAS
     * scales before it adds, as OpenBLAS does here; an ulp apart where it fuses the two) */
    ops->matmul_scaled_forward(y, s->h, s->mod->B, lora_scale(m->lora.l), n, r, out);
}

/* dx += d(extra term)/dx; gA, gB accumulate. dy is the gradient of y (the base's and the extra term's). */
void llava_lora_backward(struct llava *m, const struct ops *ops, int layer, int proj, float *dx,
                         const float *dy, const float *x, size_t n) {
    if (!m->lora.s || m->lora.bypass)
        return;
    struct llava_lora_slot *s = &m->lora.s[layer * LLAVA_NPROJ + proj];
    if (!s->mod)
        return;
    size_t r = (size_t)m->lora.l->r, in = s->mod->in, out = s->mod->out;
    float *dh = m->lora.dh;
    ops->zero(dh, n * r);
    ops->matmul_scaled_backward(dh, s->gB, dy, s->h, s->mod->B, lora_scale(m->lora.l), n, r, out);
    if (dropout_on(m))
        ops->lora_down_backward(dx, s->gA, m->lora.x, m->lora.dx, dh, x, s->mod->A, dropout_of(m, s->index),
                                n, in, r);
    else
        ops->matmul_backward(dx, s->gA, NULL, dh, x, s->mod->A, n, in, r);
}

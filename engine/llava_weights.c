/* llava_weights: the parameter size table (every tensor's Hugging Face name, shape and offset, computed from
 * the config) and loading it from safetensors shards in either of the two LLaVA naming layouts. */
#include "engine/llava.h"
#include "util/buf.h"
#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VT "model.vision_tower.vision_model."
#define LM "model.language_model."
#define MP "model.multi_modal_projector."

/* Appends a row {name, shape} to the table; offsets are assigned later, in table order. */
static void add(struct llava *m, float **slot, int ndim, const size_t *shape, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void add(struct llava *m, float **slot, int ndim, const size_t *shape, const char *fmt, ...) {
    m->ptab = xrealloc(m->ptab, (m->nptab + 1) * sizeof *m->ptab);
    struct llava_tensor *t = &m->ptab[m->nptab++];
    memset(t, 0, sizeof *t);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    t->ndim = ndim;
    t->n = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        t->n *= shape[i];
    }
    t->slot = slot;
}

#define ADD1(slot, a, ...) add(m, slot, 1, (size_t[]){(size_t)(a)}, __VA_ARGS__)
#define ADD2(slot, a, b, ...) add(m, slot, 2, (size_t[]){(size_t)(a), (size_t)(b)}, __VA_ARGS__)
/* A linear layer's weight: a product's operand (llava_tensor's `product`). */
#define ADDW(slot, a, b, ...) (ADD2(slot, a, b, __VA_ARGS__), m->ptab[m->nptab - 1].product = 1)

static void vision_table(struct llava *m, struct llava_params *p) {
    const struct vision_config *v = &m->cfg.vision;
    size_t c = (size_t)v->hidden, ps = (size_t)v->patch_size;
    add(m, &p->patch_w, 4, (size_t[]){c, (size_t)v->channels, ps, ps},
        VT "embeddings.patch_embedding.weight");
    m->ptab[m->nptab - 1].product = 1; /* the convolution runs as one product over im2col's rows */
    ADD1(&p->class_emb, c, VT "embeddings.class_embedding");
    ADD2(&p->pos_emb, m->cfg.patches + 1, c, VT "embeddings.position_embedding.weight");
    ADD1(&p->pre_ln_w, c, VT "pre_layrnorm.weight");
    ADD1(&p->pre_ln_b, c, VT "pre_layrnorm.bias");
    for (int l = 0; l < v->layers_used; l++) {
        struct llava_vision_layer *L = &p->vl[l];
        static const char *proj[4] = {"q_proj", "k_proj", "v_proj", "out_proj"};
        float **pw[4] = {&L->q_w, &L->k_w, &L->v_w, &L->o_w}, **pb[4] = {&L->q_b, &L->k_b, &L->v_b, &L->o_b};
        ADD1(&L->ln1_w, c, VT "encoder.layers.%d.layer_norm1.weight", l);
        ADD1(&L->ln1_b, c, VT "encoder.layers.%d.layer_norm1.bias", l);
        for (int i = 0; i < 4; i++) {
            ADDW(pw[i], c, c, VT "encoder.layers.%d.self_attn.%s.weight", l, proj[i]);
            ADD1(pb[i], c, VT "encoder.layers.%d.self_attn.%s.bias", l, proj[i]);
        }
        ADD1(&L->ln2_w, c, VT "encoder.layers.%d.layer_norm2.weight", l);
        ADD1(&L->ln2_b, c, VT "encoder.layers.%d.layer_norm2.bias", l);
        ADDW(&L->fc1_w, v->intermediate, c, VT "encoder.layers.%d.mlp.fc1.weight", l);
        ADD1(&L->fc1_b, v->intermediate, VT "encoder.layers.%d.mlp.fc1.bias", l);
        ADDW(&L->fc2_w, c, v->intermediate, VT "encoder.layers.%d.mlp.fc2.weight", l);
        ADD1(&L->fc2_b, c, VT "encoder.layers.%d.mlp.fc2.bias", l);
    }
}

static void projector_table(struct llava *m, struct llava_params *p) {
    int cv = m->cfg.vision.hidden, ct = m->cfg.text.hidden;
    ADDW(&p->proj1_w, ct, cv, MP "linear_1.weight");
    ADD1(&p->proj1_b, ct, MP "linear_1.bias");
    ADDW(&p->proj2_w, ct, ct, MP "linear_2.weight");
    ADD1(&p->proj2_b, ct, MP "linear_2.bias");
}

static void text_table(struct llava *m, struct llava_params *p) {
    const struct text_config *t = &m->cfg.text;
    size_t c = (size_t)t->hidden, hs = c / (size_t)t->heads, kv = hs * (size_t)t->kv_heads;
    ADD2(&p->embed, t->vocab, c, LM "embed_tokens.weight");
    for (int l = 0; l < t->layers; l++) {
        struct llava_text_layer *L = &p->tl[l];
        ADD1(&L->ln1_w, c, LM "layers.%d.input_layernorm.weight", l);
        ADDW(&L->q_w, c, c, LM "layers.%d.self_attn.q_proj.weight", l);
        ADDW(&L->k_w, kv, c, LM "layers.%d.self_attn.k_proj.weight", l);
        ADDW(&L->v_w, kv, c, LM "layers.%d.self_attn.v_proj.weight", l);
        ADDW(&L->o_w, c, c, LM "layers.%d.self_attn.o_proj.weight", l);
        ADD1(&L->ln2_w, c, LM "layers.%d.post_attention_layernorm.weight", l);
        ADDW(&L->gate_w, t->intermediate, c, LM "layers.%d.mlp.gate_proj.weight", l);
        ADDW(&L->up_w, t->intermediate, c, LM "layers.%d.mlp.up_proj.weight", l);
        ADDW(&L->down_w, c, t->intermediate, LM "layers.%d.mlp.down_proj.weight", l);
    }
    ADD1(&p->norm_w, c, LM "norm.weight");
    ADDW(&p->lm_head, t->vocab, c, "lm_head.weight");
}

/* The rows of the table, their slots in p. */
static void table_rows(struct llava *m, struct llava_params *p) {
    p->vl = xcalloc((size_t)m->cfg.vision.layers_used + 1, sizeof *p->vl);
    p->tl = xcalloc((size_t)m->cfg.text.layers, sizeof *p->tl);
    vision_table(m, p);
    projector_table(m, p);
    text_table(m, p);
}

/* The gradients' slots: the same rows built again on m->g, so row i's twin field is exactly its own. */
static void grad_slots(struct llava *m) {
    struct llava_tensor *tab = m->ptab;
    size_t n = m->nptab;
    m->ptab = NULL;
    m->nptab = 0;
    table_rows(m, &m->g);
    for (size_t i = 0; i < n; i++)
        tab[i].gslot = m->ptab[i].slot;
    free(m->ptab);
    m->ptab = tab;
    m->nptab = n;
}

int llava_param_rows(struct llava *m) {
    table_rows(m, &m->p);
    grad_slots(m);
    return 0;
}

/* Builds the table, then the one allocation it describes (zeroed), and points every slot into it. */
int llava_param_table(struct llava *m) {
    llava_param_rows(m);
    m->params = llava_carve(m->ptab, m->nptab, &m->nparams, NULL, NULL);
    return 0;
}

/* The Hub layout's prefixes and their newer spelling. */
static const char *const renames[][2] = {
    {"language_model.model.", LM},
    {"language_model.lm_head.", "lm_head."},
    {"vision_tower.", "model.vision_tower."},
    {"multi_modal_projector.", MP},
};

/* A file's tensor name in the newer layout (the table's); 0, or -1 when it does not fit. transformers 5
 * also drops the tower's "vision_model." level (it saves "vision_tower.embeddings..."): put it back. */
static int canonical(const char *name, char *out, size_t cap) {
    char tmp[LLAVA_NAME_MAX + 16];
    const char *vt = "model.vision_tower.", *vm = "vision_model.";
    snprintf(tmp, sizeof tmp, "%s", name);
    for (size_t i = 0; i < sizeof renames / sizeof renames[0]; i++) {
        size_t k = strlen(renames[i][0]);
        if (strncmp(name, renames[i][0], k) == 0) {
            snprintf(tmp, sizeof tmp, "%s%s", renames[i][1], name + k);
            break;
        }
    }
    size_t k = strlen(vt);
    int n = strncmp(tmp, vt, k) == 0 && strncmp(tmp + k, vm, strlen(vm)) != 0
                ? snprintf(out, cap, "%s%s%s", vt, vm, tmp + k)
                : snprintf(out, cap, "%s", tmp);
    return n < (int)cap && strlen(name) < LLAVA_NAME_MAX ? 0 : -1;
}

/* Tensors a checkpoint holds that this forward never reads: the tower's layers after the selected one and
 * its post_layernorm. */
static int ignored(const struct llava *m, const char *name) {
    if (strncmp(name, VT "post_layernorm.", strlen(VT "post_layernorm.")) == 0)
        return 1;
    const char *lp = VT "encoder.layers.";
    if (strncmp(name, lp, strlen(lp)) != 0)
        return 0;
    char *end;
    long l = strtol(name + strlen(lp), &end, 10);
    return *end == '.' && l >= m->cfg.vision.layers_used && l < m->cfg.vision.layers;
}

static const char *shape_str(char *out, size_t cap, int ndim, const int64_t *st, const size_t *sz) {
    size_t k = (size_t)snprintf(out, cap, "[");
    for (int i = 0; i < ndim && k < cap; i++)
        k += (size_t)snprintf(out + k, cap - k, "%s%lld", i ? ", " : "",
                              st ? (long long)st[i] : (long long)sz[i]);
    if (k < cap)
        snprintf(out + k, cap - k, "]");
    return out;
}

struct llava_tensor *llava_param_find(const struct llava *m, const char *name) {
    for (size_t i = 0; i < m->nptab; i++)
        if (strcmp(m->ptab[i].name, name) == 0)
            return &m->ptab[i];
    return NULL;
}

static int same_shape(const struct st_tensor *s, const struct llava_tensor *t) {
    if (s->ndim != t->ndim)
        return 0;
    for (int i = 0; i < t->ndim; i++)
        if (s->shape[i] < 0 || (size_t)s->shape[i] != t->shape[i])
            return 0;
    return 1;
}

/* Copies one file tensor into its table row; `seen` marks rows already filled (a tensor given twice). Only
 * names under `prefix` are accepted. */
static int load_one(struct llava *m, const struct st_tensor *s, uint8_t *seen, const char *prefix) {
    char name[LLAVA_NAME_MAX], a[96], b[96];
    if (canonical(s->name, name, sizeof name) < 0)
        return err_set("unexpected tensor %.200s (not part of a LLaVA model)", s->name);
    if (strncmp(name, prefix, strlen(prefix)) != 0)
        return err_set("unexpected tensor %.200s (only %s... belong here)", s->name, prefix);
    if (ignored(m, name))
        return 0;
    struct llava_tensor *t = llava_param_find(m, name);
    if (!t)
        return err_set("unexpected tensor %s (not part of a LLaVA model with this config)", s->name);
    if (!same_shape(s, t))
        return err_set("tensor %s has shape %s, the config wants %s", s->name,
                       shape_str(a, sizeof a, s->ndim, s->shape, NULL),
                       shape_str(b, sizeof b, t->ndim, NULL, t->shape));
    if (seen[t - m->ptab]++)
        return err_set("tensor %s is given twice (both name layouts, or two shards)", s->name);
    st_to_f32(s, m->params + t->offset);
    return 0;
}

/* The tensors of files under `prefix` ("": all), every table row under it required. */
static int load_files(struct llava *m, const struct st_file *files, size_t nfiles, const char *prefix) {
    uint8_t *seen = xcalloc(m->nptab + 1, 1);
    int rc = 0, first = 1;
    for (size_t f = 0; f < nfiles && rc == 0; f++)
        for (size_t i = 0; i < files[f].n && rc == 0; i++) {
            rc = load_one(m, &files[f].t[i], seen, prefix);
            m->wdtype = first || files[f].t[i].dtype == m->wdtype ? files[f].t[i].dtype : ST_F32;
            first = 0;
        }
    for (size_t i = 0; i < m->nptab && rc == 0; i++)
        if (!seen[i] && strncmp(m->ptab[i].name, prefix, strlen(prefix)) == 0)
            rc = err_set("missing tensor %s", m->ptab[i].name);
    free(seen);
    return rc;
}

int llava_load_params(struct llava *m, const struct st_file *files, size_t nfiles) {
    llava_frozen_forget(m);
    return load_files(m, files, nfiles, "");
}

int llava_load_tower(struct llava *m, const struct st_file *f) {
    llava_frozen_forget(m);
    return load_files(m, f, 1, VT);
}

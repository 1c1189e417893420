/* llava: the model's life cycle (config and shards in, the activation size table in either layout, with or
 * without recomputation, freeing) and the forward's entry points (from pixels, or from cached tower
 * features), which check the caller's batch first. */
#include "engine/llava.h"
#include "engine/mem.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fsio.h"
#include "util/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Appends an activation row of n floats. */
static void act(struct llava *m, float **slot, size_t n, const char *name, int layer) {
    m->atab = xrealloc(m->atab, (m->natab + 1) * sizeof *m->atab);
    struct llava_tensor *t = &m->atab[m->natab++];
    memset(t, 0, sizeof *t);
    if (layer >= 0)
        snprintf(t->name, sizeof t->name, "%s.%d", name, layer);
    else
        snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = 1;
    t->shape[0] = t->n = n;
    t->slot = slot;
    t->bf16 = m->act_bf16;
}

/* A row that stays fp32 with bf16 activations: the norms' statistics (a backward divides by them) and what
 * the host reads or writes (the logits, the tower's features, the patches' pixels). */
static void act32(struct llava *m, float **slot, size_t n, const char *name, int layer) {
    act(m, slot, n, name, layer);
    m->atab[m->natab - 1].bf16 = 0;
}

/* With recomputation, a layer after the first gets a row of its own only for its output (res2, the next
 * layer's input); its other fields are layer 0's rows, which share_layers points it at. */
static int own_rows(const struct llava *m, int l) {
    return !m->recompute || l == 0;
}

/* Image tokens per image: the patches, plus the class token when the strategy keeps it ("full"). */
static size_t image_tokens(const struct llava_config *c) {
    return (size_t)c->patches + (c->select_default ? 0 : 1);
}

static void vision_acts(struct llava *m) {
    const struct vision_config *v = &m->cfg.vision;
    size_t ni = m->nimg, p = (size_t)m->cfg.patches, s = p + 1, nv = ni * s, c = (size_t)v->hidden;
    size_t k = (size_t)(v->channels * v->patch_size * v->patch_size), iv = (size_t)v->intermediate;
    size_t sel = ni * image_tokens(&m->cfg), ct = (size_t)m->cfg.text.hidden;
    struct llava_acts *a = &m->a;
    act32(m, &a->im2col, ni * p * k, "vision.im2col", -1); /* the host writes it */
    act(m, &a->patch_out, ni * p * c, "vision.patch_out", -1);
    act(m, &a->embed_v, nv * c, "vision.embed", -1);
    act(m, &a->pre_ln, nv * c, "vision.pre_ln", -1);
    act32(m, &a->pre_ln_mean, nv, "vision.pre_ln_mean", -1);
    act32(m, &a->pre_ln_rstd, nv, "vision.pre_ln_rstd", -1);
    for (int l = 0; l < v->layers_used; l++) {
        struct llava_vision_acts *L = &a->vl[l];
        float **full[] = {&L->ln1,   &L->q,    &L->k,   &L->v,   &L->att,
                          &L->att_o, &L->res1, &L->ln2, &L->fc2, &L->res2};
        static const char *fn[] = {"ln1", "q", "k", "v", "att", "att_o", "res1", "ln2", "fc2", "res2"};
        char name[64];
        for (size_t i = 0; i < sizeof fn / sizeof fn[0]; i++) {
            if (full[i] != &L->res2 && !own_rows(m, l))
                continue;
            snprintf(name, sizeof name, "vision.%s", fn[i]);
            act(m, full[i], nv * c, name, l);
        }
        if (!own_rows(m, l))
            continue;
        act32(m, &L->ln1_mean, nv, "vision.ln1_mean", l);
        act32(m, &L->ln1_rstd, nv, "vision.ln1_rstd", l);
        act32(m, &L->ln2_mean, nv, "vision.ln2_mean", l);
        act32(m, &L->ln2_rstd, nv, "vision.ln2_rstd", l);
        act(m, &L->probs, ni * (size_t)v->heads * s * s, "vision.probs", l);
        act(m, &L->fc1, nv * iv, "vision.fc1", l);
        act(m, &L->fc1_act, nv * iv, "vision.fc1_act", l);
    }
    act32(m, &a->feats, sel * c, "vision.feats", -1); /* the host copies it in and out */
    act(m, &a->proj1, sel * ct, "proj.linear_1", -1);
    act(m, &a->proj1_act, sel * ct, "proj.gelu", -1);
    act(m, &a->proj2, sel * ct, "proj.linear_2", -1);
}

static void text_layer_acts(struct llava *m, int l, size_t n) {
    const struct text_config *t = &m->cfg.text;
    size_t c = (size_t)t->hidden, kv = c / (size_t)t->heads * (size_t)t->kv_heads,
           im = (size_t)t->intermediate;
    struct llava_text_acts *L = &m->a.tl[l];
    float **full[] = {&L->ln1, &L->q, &L->att, &L->att_o, &L->res1, &L->ln2, &L->down, &L->res2};
    static const char *fn[] = {"ln1", "q", "att", "att_o", "res1", "ln2", "down", "res2"};
    char name[64];
    for (size_t i = 0; i < sizeof fn / sizeof fn[0]; i++) {
        if (full[i] != &L->res2 && !own_rows(m, l))
            continue;
        snprintf(name, sizeof name, "text.%s", fn[i]);
        act(m, full[i], n * c, name, l);
    }
    if (!own_rows(m, l))
        return;
    act32(m, &L->ln1_rstd, n, "text.ln1_rstd", l);
    act32(m, &L->ln2_rstd, n, "text.ln2_rstd", l);
    act(m, &L->k, n * kv, "text.k", l);
    act(m, &L->v, n * kv, "text.v", l);
    if (t->kv_heads < t->heads) {
        act(m, &L->k_rep, n * c, "text.k_rep", l);
        act(m, &L->v_rep, n * c, "text.v_rep", l);
    }
    act(m, &L->probs, m->B * (size_t)t->heads * m->T * m->T, "text.probs", l);
    act(m, &L->gate, n * im, "text.gate", l);
    act(m, &L->up, n * im, "text.up", l);
    act(m, &L->swiglu, n * im, "text.swiglu", l);
}

static void text_acts(struct llava *m) {
    const struct text_config *t = &m->cfg.text;
    size_t n = m->B * m->T, c = (size_t)t->hidden;
    act(m, &m->a.embed_t, n * c, "text.embed", -1);
    for (int l = 0; l < t->layers; l++)
        text_layer_acts(m, l, n);
    act(m, &m->a.norm, n * c, "text.norm", -1);
    act32(m, &m->a.norm_rstd, n, "text.norm_rstd", -1);
    act(m, &m->a.norm_rows, n * c, "text.norm_rows", -1);
    act32(m, &m->a.logits, n * (size_t)t->vocab, "text.logits", -1);
}

float *llava_carve(struct llava_tensor *tab, size_t n, size_t *total, float **half, size_t *nhalf) {
    size_t off[2] = {0, 0};
    for (size_t i = 0; i < n; i++) {
        tab[i].offset = off[tab[i].bf16 != 0];
        off[tab[i].bf16 != 0] += tab[i].n;
    }
    float *block[2] = {mem_alloc(off[0] ? off[0] : 1, sizeof(float)), off[1] ? mem_alloc_bf16(off[1]) : NULL};
    for (size_t i = 0; i < n; i++)
        *tab[i].slot = block[tab[i].bf16 != 0] + tab[i].offset;
    *total = off[0];
    if (half) {
        *half = block[1];
        *nhalf = off[1];
    }
    return block[0];
}

void llava_act_rows(struct llava *m) {
    m->a.vl = xcalloc((size_t)m->cfg.vision.layers_used + 1, sizeof *m->a.vl);
    m->a.tl = xcalloc((size_t)m->cfg.text.layers + 1, sizeof *m->a.tl);
    vision_acts(m);
    text_acts(m);
}

/* Recomputation: a layer's intermediates are layer 0's rows; only its output is its own. */
static void share_layers(struct llava *m) {
    for (int l = 1; m->recompute && l < m->cfg.vision.layers_used; l++) {
        float *out = m->a.vl[l].res2;
        m->a.vl[l] = m->a.vl[0];
        m->a.vl[l].res2 = out;
    }
    for (int l = 1; m->recompute && l < m->cfg.text.layers; l++) {
        float *out = m->a.tl[l].res2;
        m->a.tl[l] = m->a.tl[0];
        m->a.tl[l].res2 = out;
    }
}

/* The activation table and its one allocation, as for the parameters; made by the first forward, so that
 * llava_set_recompute can choose the layout before any memory is spent on it. */
static void acts_ready(struct llava *m) {
    if (m->acts)
        return;
    llava_act_rows(m);
    m->acts = llava_carve(m->atab, m->natab, &m->nacts, &m->acts16, &m->nacts16);
    share_layers(m);
}

static void acts_drop(struct llava *m) {
    mem_free(m->acts);
    mem_free(m->acts16);
    free(m->atab);
    free(m->a.vl);
    free(m->a.tl);
    memset(&m->a, 0, sizeof m->a);
    m->acts = m->acts16 = NULL;
    m->atab = NULL;
    m->nacts = m->nacts16 = m->natab = 0;
}

void llava_set_recompute(struct llava *m, int on) {
    if ((on != 0) == m->recompute)
        return;
    m->recompute = on != 0;
    acts_drop(m); /* remade in the new layout by the next forward */
    m->fb = 0;
}

void llava_set_act_bf16(struct llava *m, int on) {
    if ((on != 0) == m->act_bf16)
        return;
    m->act_bf16 = on != 0;
    acts_drop(m); /* remade in the new storage by the next forward */
    m->fb = 0;
    if (m->dacts)
        llava_grads_init(m);
}

int llava_act_table_ok(const struct llava *m, const struct ops *ops) {
    if (m->act_bf16 && !ops_takes_bf16(ops))
        return err_set("llava: the model keeps its activations in bf16, and table '%s' does not take bf16 "
                       "storage (precision bf16-act)",
                       ops->name ? ops->name : "?");
    return 0;
}

size_t llava_token_bytes(const struct llava *m) {
    return m->B * m->T * 3 * sizeof(int32_t) + m->B * sizeof(int32_t) + m->B * m->T;
}

/* tok, pos, lrow, len and img, one block in that order (each part's offset keeps int32 alignment). */
static void token_block(struct llava *m) {
    m->tok = mem_alloc(llava_token_bytes(m), 1);
    mem_host_reads(m->tok); /* the decoder reads img and lrow on the host between operations */
    m->pos = m->tok + m->B * m->T;
    m->lrow = m->pos + m->B * m->T;
    m->len = m->lrow + m->B * m->T;
    m->img = (uint8_t *)(m->len + m->B);
}

/* The valid length of one attention_mask row: its leading ones. */
static size_t valid_len(const int32_t *mask, size_t t) {
    size_t len = 0;
    while (len < t && mask[len] == 1)
        len++;
    return len;
}

void llava_logits_last(struct llava *m, const int32_t *mask, size_t b, size_t t) {
    uint8_t *need = xcalloc(b * t + 1, 1); /* + 1: never a zero-size allocation */
    for (size_t i = 0; i < b; i++) {
        size_t len = valid_len(mask + i * t, t);
        if (len) /* an empty row: the forward refuses it */
            need[i * t + len - 1] = 1;
    }
    llava_logits_for(m, need, b * t);
    free(need);
}

void llava_logits_for(struct llava *m, const uint8_t *need, size_t n) {
    m->nrow = 0;
    m->rows_for = n; /* more than the model holds: the forward refuses it */
    for (size_t i = 0; n <= m->B * m->T && i < n; i++)
        if (need[i])
            m->lrow[m->nrow++] = (int32_t)i;
}

/* The pending choice of logit rows, checked against this forward's size and used up. */
static int take_rows(struct llava *m, size_t n) {
    size_t want = m->rows_for;
    m->rows_for = 0;
    m->fpick = want && m->nrow < n; /* every row chosen: the plain product */
    m->frows = m->nrow;
    if (want && want != n)
        return err_set("llava: logits chosen for %zu positions, but the forward has %zu", want, n);
    return 0;
}

int llava_tables(struct llava *m, const struct llava_config *cfg, size_t B, size_t T) {
    memset(m, 0, sizeof *m);
    if (B < 1 || T < 1 || B > 1u << 20 || T > 1u << 20)
        return err_set("llava: batch %zu x sequence %zu is out of range", B, T);
    m->cfg = *cfg;
    m->B = B;
    m->T = T;
    m->nimg = B;
    return llava_param_rows(m);
}

/* The size tables, the parameter block (before anything is loaded) and the token block. */
static int init_blocks(struct llava *m, const struct llava_config *cfg, size_t B, size_t T) {
    if (llava_tables(m, cfg, B, T) < 0)
        return -1;
    m->params = llava_carve(m->ptab, m->nptab, &m->nparams, NULL, NULL);
    token_block(m);
    return 0;
}

int llava_init(struct llava *m, const struct llava_config *cfg, const struct st_file *files, size_t nfiles,
               size_t B, size_t T) {
    if (init_blocks(m, cfg, B, T) < 0)
        return -1;
    if (llava_load_params(m, files, nfiles) < 0) {
        llava_free(m);
        return -1;
    }
    return 0;
}

int llava_init_blank(struct llava *m, const struct llava_config *cfg, size_t B, size_t T) {
    return init_blocks(m, cfg, B, T);
}

void llava_free(struct llava *m) {
    llava_frozen_forget(m);
    llava_lora_free(m);
    llava_grads_free(m);
    free(m->g.vl);
    free(m->g.tl);
    mem_free(m->params);
    free(m->ptab);
    free(m->p.vl);
    free(m->p.tl);
    acts_drop(m);
    mem_free(m->tok);
    memset(m, 0, sizeof *m);
}

/* A shard's name from the index: a plain file name, never a path (the index is outside data). */
static int shard_name_ok(const char *s) {
    return *s && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0 && strlen(s) < 256;
}

/* The distinct shard names of dir/model.safetensors.index.json, in order of first mention. */
static int index_shards(const char *path, char ***names, size_t *n) {
    char *text;
    size_t len;
    if (fsio_read_file(path, 64u << 20, &text, &len) < 0)
        return -1;
    struct json *root = json_parse(text, len);
    free(text);
    if (!root)
        return err_prefix("%s", path);
    const struct json *map = json_get(root, "weight_map");
    int rc = map && map->type == JSON_OBJ ? 0 : err_set("%s: no \"weight_map\" object", path);
    for (size_t i = 0; map && rc == 0 && i < map->len; i++) {
        const struct json *v = map->items[i];
        if (v->type != JSON_STR || !shard_name_ok(v->s)) {
            rc = err_set("%s: weight_map[\"%.100s\"] is not a shard file name", path, map->keys[i]);
            break;
        }
        size_t j = 0;
        while (j < *n && strcmp((*names)[j], v->s) != 0)
            j++;
        if (j == *n) {
            *names = xrealloc(*names, (*n + 1) * sizeof **names);
            (*names)[(*n)++] = xstrdup(v->s);
        }
    }
    json_free(root);
    return rc;
}

static int read_config(const char *dir, struct llava_config *cfg) {
    char path[4096], *text;
    size_t len;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (fsio_read_file(path, 1u << 20, &text, &len) < 0)
        return -1;
    int rc = config_parse(text, len, path, cfg);
    free(text);
    return rc;
}

/* The checkpoint's shard names: those of the index when there is one, else model.safetensors. */
static int shard_names(const char *dir, char ***names, size_t *n) {
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if (stat(path, &st) == 0)
        return index_shards(path, names, n);
    *names = xmalloc(sizeof **names);
    (*names)[0] = xstrdup("model.safetensors");
    *n = 1;
    return 0;
}

int llava_load(struct llava *m, const char *dir, size_t B, size_t T) {
    struct llava_config cfg;
    char **names = NULL, path[4096];
    size_t n = 0, opened = 0;
    memset(m, 0, sizeof *m);
    if (read_config(dir, &cfg) < 0)
        return -1;
    int rc = shard_names(dir, &names, &n);
    struct st_file *files = xcalloc(n + 1, sizeof *files);
    for (; rc == 0 && opened < n; opened++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[opened]);
        if ((rc = st_open(path, &files[opened])) < 0)
            break;
    }
    if (rc == 0)
        rc = llava_init(m, &cfg, files, n, B, T);
    for (size_t i = 0; i < opened; i++)
        st_close(&files[i]);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(files);
    return rc;
}

/* attention_mask -> valid lengths; only right padding (a run of ones, then zeros) is accepted. */
static int lengths(struct llava *m, const int32_t *mask, size_t b, size_t t) {
    for (size_t i = 0; i < b; i++) {
        size_t len = valid_len(mask + i * t, t);
        for (size_t j = len; j < t; j++)
            if (mask[i * t + j] != 0)
                return err_set("llava: attention_mask row %zu is not right-padded 1...1 0...0 (position %zu)",
                               i, j);
        if (len == 0)
            return err_set("llava: sequence %zu is empty (attention_mask all zeros)", i);
        m->len[i] = (int32_t)len;
    }
    return 0;
}

/* Token ids -> the ids to embed (image tokens embed as 0, then get overwritten) and RoPE positions. */
static int tokens(struct llava *m, const int32_t *ids, size_t b, size_t t, size_t nimg) {
    size_t nimgtok = 0, want = nimg * image_tokens(&m->cfg);
    for (size_t i = 0; i < b * t; i++) {
        int32_t id = ids[i];
        m->img[i] = id == m->cfg.image_token_index;
        if (id == m->cfg.image_token_index) {
            nimgtok++;
            id = 0;
        } else if (id < 0 || id >= m->cfg.text.vocab) {
            return err_set("llava: token id %d at position %zu is outside the vocabulary (%d)", ids[i], i,
                           m->cfg.text.vocab);
        }
        m->tok[i] = id;
        m->pos[i] = (int32_t)(i % t);
    }
    if (nimgtok != want)
        return err_set("llava: %zu image tokens for %zu images of %zu tokens each", nimgtok, nimg,
                       image_tokens(&m->cfg));
    return 0;
}

size_t llava_feature_tokens(const struct llava *m) {
    return image_tokens(&m->cfg);
}

/* Checks the batch, then runs the vision part (from pixels, or from cached tower features in `in` when
 * cached) and the decoder. */
static int forward(struct llava *m, const struct ops *ops, const int32_t *ids, const int32_t *mask, size_t b,
                   size_t t, const float *in, int cached, size_t nimg) {
    if (b < 1 || b > m->B || t < 1 || t > m->T)
        return err_set("llava: batch %zu x %zu does not fit the model's %zu x %zu", b, t, m->B, m->T);
    if (nimg > m->nimg || (nimg && !in))
        return err_set("llava: %zu images (at most %zu, %s required)", nimg, m->nimg,
                       cached ? "features" : "pixel values");
    m->fb = 0; /* no backward until this forward has run */
    if (take_rows(m, b * t) < 0 || lengths(m, mask, b, t) < 0 || tokens(m, ids, b, t, nimg) < 0)
        return -1;
    if (llava_act_table_ok(m, ops) < 0)
        return -1;
    llava_frozen_tell(m, ops); /* before the activations: on CUDA it frees the frozen weights' fp32 pages */
    acts_ready(m);
    if (nimg && !cached) {
        llava_vision_forward(m, ops, in, nimg);
    } else if (nimg) {
        size_t n = nimg * image_tokens(&m->cfg) * (size_t)m->cfg.vision.hidden;
        memcpy(m->a.feats, in, n * sizeof(float));
        llava_projector_forward(m, ops, nimg);
    }
    llava_decoder_forward(m, ops, b, t);
    ops->sync();
    m->fb = b;
    m->ft = t;
    m->fimg = nimg;
    m->ffeats = cached;
    return 0;
}

int llava_forward(struct llava *m, const struct ops *ops, const int32_t *ids, const int32_t *mask, size_t b,
                  size_t t, const float *pixels, size_t nimg) {
    return forward(m, ops, ids, mask, b, t, pixels, 0, nimg);
}

int llava_forward_features(struct llava *m, const struct ops *ops, const int32_t *ids, const int32_t *mask,
                           size_t b, size_t t, const float *feats, size_t nimg) {
    return forward(m, ops, ids, mask, b, t, feats, 1, nimg);
}

int llava_vision_features(struct llava *m, const struct ops *ops, const float *pixels, size_t nimg,
                          float *out) {
    if (nimg < 1 || nimg > m->nimg || !pixels || !out)
        return err_set("llava: features of %zu images (1 to %zu, pixel values and output required)", nimg,
                       m->nimg);
    if (llava_act_table_ok(m, ops) < 0)
        return -1;
    m->fb = 0; /* the tower's activations now belong to these images */
    llava_frozen_tell(m, ops);
    acts_ready(m);
    llava_tower_forward(m, ops, pixels, nimg);
    ops->sync();
    memcpy(out, m->a.feats, nimg * image_tokens(&m->cfg) * (size_t)m->cfg.vision.hidden * sizeof(float));
    return 0;
}

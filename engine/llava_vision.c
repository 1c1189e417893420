/* llava_vision: the CLIP ViT tower up to the selected layer and the projector, on the operation table: pixels
 * [nimg, channels, H, W] in, the tower's selected features (m->a.feats, what a frozen tower lets a caller
 * cache) in between, image features [nimg * image tokens, text hidden] (m->a.proj2) out. */
#include "engine/llava.h"

#include <string.h>

/* The patch convolution's input as rows: row (img, patch) holds the patch's pixels in the conv kernel's
 * [channel, ky, kx] order, so the convolution (stride = kernel, no bias) is one matmul. */
static void im2col(float *out, const float *pix, const struct vision_config *v, size_t nimg) {
    size_t ps = (size_t)v->patch_size, ch = (size_t)v->channels, hw = (size_t)v->image_size;
    size_t g = hw / ps, k = ch * ps * ps;
    for (size_t i = 0; i < nimg; i++)
        for (size_t py = 0; py < g; py++)
            for (size_t px = 0; px < g; px++) {
                float *row = out + ((i * g + py) * g + px) * k;
                for (size_t c = 0; c < ch; c++)
                    for (size_t ky = 0; ky < ps; ky++)
                        memcpy(row + (c * ps + ky) * ps,
                               pix + ((i * ch + c) * hw + py * ps + ky) * hw + px * ps, ps * sizeof(float));
            }
}

/* Patch embedding, class token and position embedding, then pre_layrnorm. */
static void embeddings(struct llava *m, const struct ops *ops, const float *pixels, size_t nimg) {
    const struct vision_config *v = &m->cfg.vision;
    size_t p = (size_t)m->cfg.patches, s = p + 1, c = (size_t)v->hidden;
    size_t k = (size_t)(v->channels * v->patch_size * v->patch_size);
    struct llava_acts *a = &m->a;
    im2col(a->im2col, pixels, v, nimg);
    ops->matmul_forward(a->patch_out, a->im2col, m->p.patch_w, NULL, nimg * p, k, c);
    for (size_t i = 0; i < nimg; i++) {
        float *e = a->embed_v + i * s * c;
        ops->add(e, m->p.class_emb, m->p.pos_emb, c);
        ops->add(e + c, a->patch_out + i * p * c, m->p.pos_emb + c, p * c);
    }
    ops->layernorm_forward(a->pre_ln, a->pre_ln_mean, a->pre_ln_rstd, a->embed_v, m->p.pre_ln_w,
                           m->p.pre_ln_b, nimg * s, c, v->eps);
}

/* One encoder layer: x + attn(layer_norm1(x)), then + fc2(quick_gelu(fc1(layer_norm2(.)))). */
static void encoder_layer(struct llava *m, const struct ops *ops, int l, const float *in, size_t nimg) {
    const struct vision_config *v = &m->cfg.vision;
    const struct llava_vision_layer *w = &m->p.vl[l];
    struct llava_vision_acts *L = &m->a.vl[l];
    size_t s = (size_t)m->cfg.patches + 1, n = nimg * s, c = (size_t)v->hidden, iv = (size_t)v->intermediate;
    ops->layernorm_forward(L->ln1, L->ln1_mean, L->ln1_rstd, in, w->ln1_w, w->ln1_b, n, c, v->eps);
    ops->matmul_forward(L->q, L->ln1, w->q_w, w->q_b, n, c, c);
    ops->matmul_forward(L->k, L->ln1, w->k_w, w->k_b, n, c, c);
    ops->matmul_forward(L->v, L->ln1, w->v_w, w->v_b, n, c, c);
    ops->attention_forward(L->att, L->probs, L->q, L->k, L->v, NULL, 0, nimg, s, (size_t)v->heads,
                           c / (size_t)v->heads);
    ops->matmul_forward(L->att_o, L->att, w->o_w, w->o_b, n, c, c);
    ops->add(L->res1, in, L->att_o, n * c);
    ops->layernorm_forward(L->ln2, L->ln2_mean, L->ln2_rstd, L->res1, w->ln2_w, w->ln2_b, n, c, v->eps);
    ops->matmul_forward(L->fc1, L->ln2, w->fc1_w, w->fc1_b, n, c, iv);
    ops->quick_gelu_forward(L->fc1_act, L->fc1, n * iv);
    ops->matmul_forward(L->fc2, L->fc1_act, w->fc2_w, w->fc2_b, n, iv, c);
    ops->add(L->res2, L->res1, L->fc2, n * c);
}

/* The selected hidden state into m->a.feats, class token dropped ("default") or kept ("full"). */
static void select_features(struct llava *m, const struct ops *ops, const float *hidden, size_t nimg) {
    size_t s = (size_t)m->cfg.patches + 1, cv = (size_t)m->cfg.vision.hidden;
    size_t drop = m->cfg.select_default ? 1 : 0, per = s - drop;
    for (size_t i = 0; i < nimg; i++)
        ops->copy(m->a.feats + i * per * cv, hidden + (i * s + drop) * cv, per * cv);
}

void llava_tower_forward(struct llava *m, const struct ops *ops, const float *pixels, size_t nimg) {
    embeddings(m, ops, pixels, nimg);
    const float *h = m->a.pre_ln;
    for (int l = 0; l < m->cfg.vision.layers_used; l++) {
        encoder_layer(m, ops, l, h, nimg);
        h = m->a.vl[l].res2;
    }
    select_features(m, ops, h, nimg);
}

void llava_projector_forward(struct llava *m, const struct ops *ops, size_t nimg) {
    size_t per = llava_feature_tokens(m), cv = (size_t)m->cfg.vision.hidden, ct = (size_t)m->cfg.text.hidden;
    struct llava_acts *a = &m->a;
    ops->matmul_forward(a->proj1, a->feats, m->p.proj1_w, m->p.proj1_b, nimg * per, cv, ct);
    ops->gelu_forward(a->proj1_act, a->proj1, nimg * per * ct);
    ops->matmul_forward(a->proj2, a->proj1_act, m->p.proj2_w, m->p.proj2_b, nimg * per, ct, ct);
}

void llava_vision_forward(struct llava *m, const struct ops *ops, const float *pixels, size_t nimg) {
    llava_tower_forward(m, ops, pixels, nimg);
    llava_projector_forward(m, ops, nimg);
}

/* ---- backward: from the image features' gradient (m->d.proj2) to the tower's first parameters ---- */

static float *zeroed(const struct ops *ops, float *x, size_t n) {
    ops->zero(x, n);
    return x;
}

/* d feats (m->d.feats) -> d hidden (m->d.vres), the dropped class token's row zero. */
static void feats_backward(struct llava *m, const struct ops *ops, size_t nimg) {
    size_t s = (size_t)m->cfg.patches + 1, cv = (size_t)m->cfg.vision.hidden;
    size_t drop = m->cfg.select_default ? 1 : 0, per = s - drop;
    zeroed(ops, m->d.vres, nimg * s * cv);
    for (size_t i = 0; i < nimg; i++)
        ops->copy(m->d.vres + (i * s + drop) * cv, m->d.feats + i * per * cv, per * cv);
}

/* d proj2 -> the projector's gradients and, when the tower trains, d feats (m->d.feats). */
static void project_backward(struct llava *m, const struct ops *ops, size_t nimg) {
    size_t p = (size_t)m->cfg.patches, s = p + 1, cv = (size_t)m->cfg.vision.hidden;
    size_t ct = (size_t)m->cfg.text.hidden, drop = m->cfg.select_default ? 1 : 0, per = s - drop;
    size_t sel = nimg * per;
    const struct llava_acts *a = &m->a;
    struct llava_grad_acts *d = &m->d;
    ops->matmul_backward(zeroed(ops, d->proj1_act, sel * ct), m->g.proj2_w, m->g.proj2_b, d->proj2,
                         a->proj1_act, m->p.proj2_w, sel, ct, ct);
    ops->gelu_backward(zeroed(ops, d->proj1, sel * ct), d->proj1_act, a->proj1, sel * ct);
    float *dfeats = m->grad_tower ? zeroed(ops, d->feats, sel * cv) : NULL;
    ops->matmul_backward(dfeats, m->g.proj1_w, m->g.proj1_b, d->proj1, a->feats, m->p.proj1_w, sel, cv, ct);
}

/* d res2 (in d->vres) -> d in (d->vres), the MLP half then the attention half. */
static void encoder_layer_backward(struct llava *m, const struct ops *ops, int l, const float *in,
                                   size_t nimg) {
    const struct vision_config *v = &m->cfg.vision;
    const struct llava_vision_layer *w = &m->p.vl[l], *g = &m->g.vl[l];
    const struct llava_vision_acts *L = &m->a.vl[l];
    struct llava_grad_acts *d = &m->d;
    size_t s = (size_t)m->cfg.patches + 1, n = nimg * s, c = (size_t)v->hidden, iv = (size_t)v->intermediate;
    ops->matmul_backward(zeroed(ops, d->fc1_act, n * iv), g->fc2_w, g->fc2_b, d->vres, L->fc1_act, w->fc2_w,
                         n, iv, c);
    ops->quick_gelu_backward(zeroed(ops, d->fc1, n * iv), d->fc1_act, L->fc1, n * iv);
    ops->matmul_backward(zeroed(ops, d->vln, n * c), g->fc1_w, g->fc1_b, d->fc1, L->ln2, w->fc1_w, n, c, iv);
    ops->layernorm_backward(d->vres, g->ln2_w, g->ln2_b, d->vln, L->res1, w->ln2_w, L->ln2_mean, L->ln2_rstd,
                            n, c);
    ops->matmul_backward(zeroed(ops, d->vatt, n * c), g->o_w, g->o_b, d->vres, L->att, w->o_w, n, c, c);
    ops->attention_backward(zeroed(ops, d->vq, n * c), zeroed(ops, d->vk, n * c), zeroed(ops, d->vv, n * c),
                            d->vatt, L->probs, L->q, L->k, L->v, nimg, s, (size_t)v->heads,
                            c / (size_t)v->heads);
    zeroed(ops, d->vln, n * c);
    ops->matmul_backward(d->vln, g->q_w, g->q_b, d->vq, L->ln1, w->q_w, n, c, c);
    ops->matmul_backward(d->vln, g->k_w, g->k_b, d->vk, L->ln1, w->k_w, n, c, c);
    ops->matmul_backward(d->vln, g->v_w, g->v_b, d->vv, L->ln1, w->v_w, n, c, c);
    ops->layernorm_backward(d->vres, g->ln1_w, g->ln1_b, d->vln, in, w->ln1_w, L->ln1_mean, L->ln1_rstd, n,
                            c);
}

/* d pre_ln (in d->vres) -> pre_layrnorm, class and position embeddings (summed over images, in order) and the
 * patch convolution (the patch rows gathered, then one matmul backward over im2col). */
static void embeddings_backward(struct llava *m, const struct ops *ops, size_t nimg) {
    const struct vision_config *v = &m->cfg.vision;
    size_t p = (size_t)m->cfg.patches, s = p + 1, c = (size_t)v->hidden;
    size_t k = (size_t)(v->channels * v->patch_size * v->patch_size);
    const struct llava_acts *a = &m->a;
    struct llava_grad_acts *d = &m->d;
    ops->layernorm_backward(zeroed(ops, d->embed_v, nimg * s * c), m->g.pre_ln_w, m->g.pre_ln_b, d->vres,
                            a->embed_v, m->p.pre_ln_w, a->pre_ln_mean, a->pre_ln_rstd, nimg * s, c);
    for (size_t i = 0; i < nimg; i++) {
        const float *e = d->embed_v + i * s * c;
        if (m->g.class_emb)
            ops->accumulate(m->g.class_emb, e, c);
        if (m->g.pos_emb)
            ops->accumulate(m->g.pos_emb, e, s * c);
        ops->copy(d->patch + i * p * c, e + c, p * c);
    }
    ops->matmul_backward(NULL, m->g.patch_w, NULL, d->patch, a->im2col, m->p.patch_w, nimg * p, k, c);
}

void llava_vision_backward(struct llava *m, const struct ops *ops, size_t nimg) {
    project_backward(m, ops, nimg);
    if (m->grad_tower)
        llava_tower_backward(m, ops, nimg);
}

void llava_tower_backward(struct llava *m, const struct ops *ops, size_t nimg) {
    feats_backward(m, ops, nimg);
    for (int l = m->cfg.vision.layers_used - 1; l >= 0; l--) {
        const float *in = l ? m->a.vl[l - 1].res2 : m->a.pre_ln;
        if (m->recompute && l < m->cfg.vision.layers_used - 1)
            encoder_layer(m, ops, l, in, nimg); /* recomputation, as the decoder's backward does */
        encoder_layer_backward(m, ops, l, in, nimg);
    }
    embeddings_backward(m, ops, nimg);
}

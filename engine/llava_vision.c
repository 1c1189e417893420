/* llava_vision: the CLIP ViT tower up to the selected layer and the projector, on the operation table: pixels
 * [nimg, channels, H, W] in, image features [nimg * image tokens, text hidden] (m->a.proj2) out. */
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

/* The selected hidden state, class token dropped ("default") or kept ("full"), through the projector. */
static void project(struct llava *m, const struct ops *ops, const float *hidden, size_t nimg) {
    size_t p = (size_t)m->cfg.patches, s = p + 1, cv = (size_t)m->cfg.vision.hidden;
    size_t ct = (size_t)m->cfg.text.hidden, drop = m->cfg.select_default ? 1 : 0, per = s - drop;
    struct llava_acts *a = &m->a;
    for (size_t i = 0; i < nimg; i++)
        memcpy(a->feats + i * per * cv, hidden + (i * s + drop) * cv, per * cv * sizeof(float));
    ops->matmul_forward(a->proj1, a->feats, m->p.proj1_w, m->p.proj1_b, nimg * per, cv, ct);
    ops->gelu_forward(a->proj1_act, a->proj1, nimg * per * ct);
    ops->matmul_forward(a->proj2, a->proj1_act, m->p.proj2_w, m->p.proj2_b, nimg * per, ct, ct);
}

void llava_vision_forward(struct llava *m, const struct ops *ops, const float *pixels, size_t nimg) {
    embeddings(m, ops, pixels, nimg);
    const float *h = m->a.pre_ln;
    for (int l = 0; l < m->cfg.vision.layers_used; l++) {
        encoder_layer(m, ops, l, h, nimg);
        h = m->a.vl[l].res2;
    }
    project(m, ops, h, nimg);
}

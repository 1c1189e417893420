/* llava_decoder: the LLaMA decoder on the operation table: token embeddings with the image features put in
 * place of the image tokens, the layers, the final RMSNorm and the untied lm_head (m->a.logits). */
#include "engine/llava.h"

#include <string.h>

/* The next run of image-token rows at or after *i (m->img marks them): its start in *i, its length returned
 * (0: none left). An image's tokens are consecutive, so each image is one run and one copy. */
static size_t image_run(const struct llava *m, size_t *i, size_t n) {
    while (*i < n && !m->img[*i])
        (*i)++;
    size_t end = *i;
    while (end < n && m->img[end])
        end++;
    return end - *i;
}

/* Embeds the tokens, then overwrites the image tokens' rows, in order, with the projected image features. */
static void embed(struct llava *m, const struct ops *ops, size_t n) {
    size_t c = (size_t)m->cfg.text.hidden, next = 0, run;
    ops->embedding_forward(m->a.embed_t, m->tok, m->p.embed, n, c);
    for (size_t i = 0; (run = image_run(m, &i, n)) > 0; i += run, next += run)
        ops->copy(m->a.embed_t + i * c, m->a.proj2 + next * c, run * c);
}

/* A decoder projection: x W^T, plus the LoRA term when an adapter is attached there. */
static void linear(struct llava *m, const struct ops *ops, int l, int proj, float *y, const float *x,
                   const float *w, size_t n, size_t in, size_t out) {
    ops->matmul_forward(y, x, w, NULL, n, in, out);
    llava_lora_forward(m, ops, l, proj, y, x, n);
}

/* The attention half's input side: RMSNorm, then q, k, v of the b * t positions, q and k rotated to their
 * positions (m->pos). */
static void attention_qkv(struct llava *m, const struct ops *ops, int l, const float *in, size_t b,
                          size_t t) {
    const struct text_config *tc = &m->cfg.text;
    const struct llava_text_layer *w = &m->p.tl[l];
    struct llava_text_acts *L = &m->a.tl[l];
    size_t n = b * t, c = (size_t)tc->hidden, nh = (size_t)tc->heads, kvh = (size_t)tc->kv_heads;
    size_t hs = c / nh, kv = kvh * hs;
    ops->rmsnorm_forward(L->ln1, L->ln1_rstd, in, w->ln1_w, n, c, tc->eps);
    linear(m, ops, l, LLAVA_Q, L->q, L->ln1, w->q_w, n, c, c);
    linear(m, ops, l, LLAVA_K, L->k, L->ln1, w->k_w, n, c, kv);
    linear(m, ops, l, LLAVA_V, L->v, L->ln1, w->v_w, n, c, kv);
    ops->rope_forward(L->q, m->pos, b, t, nh, hs, tc->rope_theta);
    ops->rope_forward(L->k, m->pos, b, t, kvh, hs, tc->rope_theta);
}

/* Its output side: res1 = in + o_proj(att) over n positions. */
static void attention_out(struct llava *m, const struct ops *ops, int l, const float *in, size_t n) {
    struct llava_text_acts *L = &m->a.tl[l];
    size_t c = (size_t)m->cfg.text.hidden;
    linear(m, ops, l, LLAVA_O, L->att_o, L->att, m->p.tl[l].o_w, n, c, c);
    ops->add(L->res1, in, L->att_o, n * c);
}

/* Self-attention half of a layer: x + o_proj(attn(rope(q), rope(k), v)) with causal and padding masks. */
static void attention_block(struct llava *m, const struct ops *ops, int l, const float *in, size_t b,
                            size_t t) {
    const struct text_config *tc = &m->cfg.text;
    struct llava_text_acts *L = &m->a.tl[l];
    size_t n = b * t, nh = (size_t)tc->heads, kvh = (size_t)tc->kv_heads, hs = (size_t)tc->hidden / nh;
    attention_qkv(m, ops, l, in, b, t);
    const float *k = L->k, *v = L->v;
    if (kvh < nh) { /* grouped-query attention: the attention op takes equal heads */
        ops->repeat_kv(L->k_rep, L->k, n, kvh, nh / kvh, hs);
        ops->repeat_kv(L->v_rep, L->v, n, kvh, nh / kvh, hs);
        k = L->k_rep;
        v = L->v_rep;
    }
    ops->attention_forward(L->att, L->probs, L->q, k, v, m->len, 1, b, t, nh, hs);
    attention_out(m, ops, l, in, n);
}

/* Generation: `count` rows of layer l's k and v from row `row` on, into sequence i's cache from position `at`
 * on. */
static void kv_store(struct llava *m, const struct ops *ops, int l, size_t i, size_t row, size_t at,
                     size_t count) {
    const struct llava_kv *kv = m->kv;
    const struct llava_text_acts *L = &m->a.tl[l];
    size_t d = (size_t)m->cfg.text.kv_heads * ((size_t)m->cfg.text.hidden / (size_t)m->cfg.text.heads);
    ops->copy(kv->k[l] + (i * kv->cap + at) * d, L->k + row * d, count * d);
    ops->copy(kv->v[l] + (i * kv->cap + at) * d, L->v + row * d, count * d);
}

/* MLP half: res1 + down(silu(gate(x)) * up(x)), x = post_attention_layernorm(res1). */
static void mlp_block(struct llava *m, const struct ops *ops, int l, size_t n) {
    const struct text_config *tc = &m->cfg.text;
    const struct llava_text_layer *w = &m->p.tl[l];
    struct llava_text_acts *L = &m->a.tl[l];
    size_t c = (size_t)tc->hidden, im = (size_t)tc->intermediate;
    ops->rmsnorm_forward(L->ln2, L->ln2_rstd, L->res1, w->ln2_w, n, c, tc->eps);
    linear(m, ops, l, LLAVA_GATE, L->gate, L->ln2, w->gate_w, n, c, im);
    linear(m, ops, l, LLAVA_UP, L->up, L->ln2, w->up_w, n, c, im);
    ops->swiglu_forward(L->swiglu, L->gate, L->up, n * im);
    linear(m, ops, l, LLAVA_DOWN, L->down, L->swiglu, w->down_w, n, im, c);
    ops->add(L->res2, L->res1, L->down, n * c);
}

/* The lm_head, on every row or on the chosen ones (llava_logits_for): those rows of the norm are gathered,
 * their logits computed into the first rows of m->a.logits and moved out to their own rows, last first (row
 * i goes to lrow[i] >= i, so no row is overwritten before it has moved). */
static void logits_forward(struct llava *m, const struct ops *ops, size_t n) {
    size_t c = (size_t)m->cfg.text.hidden, v = (size_t)m->cfg.text.vocab, k = m->frows;
    if (!m->fpick) {
        ops->matmul_forward(m->a.logits, m->a.norm, m->p.lm_head, NULL, n, c, v);
        return;
    }
    if (k == 0)
        return;
    ops->embedding_forward(m->a.norm_rows, m->lrow, m->a.norm, k, c);
    ops->matmul_forward(m->a.logits, m->a.norm_rows, m->p.lm_head, NULL, k, c, v);
    for (size_t i = k; i-- > 0;)
        if ((size_t)m->lrow[i] != i)
            ops->copy(m->a.logits + (size_t)m->lrow[i] * v, m->a.logits + i * v, v);
}

void llava_decoder_forward(struct llava *m, const struct ops *ops, size_t b, size_t t) {
    const struct text_config *tc = &m->cfg.text;
    size_t n = b * t, c = (size_t)tc->hidden;
    embed(m, ops, n);
    const float *h = m->a.embed_t;
    for (int l = 0; l < tc->layers; l++) {
        attention_block(m, ops, l, h, b, t);
        for (size_t i = 0; m->kv && i < b; i++) /* a generation's prompt: its valid positions */
            kv_store(m, ops, l, i, i * t, 0, (size_t)m->len[i]);
        mlp_block(m, ops, l, n);
        h = m->a.tl[l].res2;
    }
    ops->rmsnorm_forward(m->a.norm, m->a.norm_rstd, h, m->p.norm_w, n, c, tc->eps);
    logits_forward(m, ops, n);
}

/* The forward's layers for one new position per sequence: q, k, v as ever, the new K/V appended to the cache,
 * attention over the cache (attention_decode reads the kv heads directly: no repeat), then the rest. */
void llava_decoder_step(struct llava *m, const struct ops *ops, size_t b) {
    const struct text_config *tc = &m->cfg.text;
    size_t c = (size_t)tc->hidden, nh = (size_t)tc->heads, kvh = (size_t)tc->kv_heads;
    ops->embedding_forward(m->a.embed_t, m->tok, m->p.embed, b, c);
    const float *h = m->a.embed_t;
    for (int l = 0; l < tc->layers; l++) {
        struct llava_text_acts *L = &m->a.tl[l];
        attention_qkv(m, ops, l, h, b, 1);
        for (size_t i = 0; i < b; i++)
            kv_store(m, ops, l, i, i, (size_t)m->pos[i], 1);
        ops->attention_decode(L->att, L->q, m->kv->k[l], m->kv->v[l], m->kv->len, b, m->kv->cap, nh, kvh,
                              c / nh);
        attention_out(m, ops, l, h, b);
        mlp_block(m, ops, l, b);
        h = L->res2;
    }
    ops->rmsnorm_forward(m->a.norm, m->a.norm_rstd, h, m->p.norm_w, b, c, tc->eps);
    ops->matmul_forward(m->a.logits, m->a.norm, m->p.lm_head, NULL, b, c, (size_t)tc->vocab);
    ops->sync();
}

/* ---- backward: each block's in reverse, the residual stream's gradient in m->d.res throughout ---- */

/* Zeroed scratch, for backward ops that accumulate. */
static float *zeroed(const struct ops *ops, float *x, size_t n) {
    ops->zero(x, n);
    return x;
}

/* The backward of linear(): dx += dy W (and dW when W trains), then the LoRA term's share. */
static void linear_backward(struct llava *m, const struct ops *ops, int l, int proj, float *dx, float *dw,
                            const float *dy, const float *x, const float *w, size_t n, size_t in,
                            size_t out) {
    ops->matmul_backward(dx, dw, NULL, dy, x, w, n, in, out);
    llava_lora_backward(m, ops, l, proj, dx, dy, x, n);
}

/* d res1 (in d->res) -> d in (added to d->res: the residual's own path is already there). q and k were
 * rotated in place, so the attention's dq and dk are in rotated coordinates: rope_backward takes them back.
 */
static void attention_block_backward(struct llava *m, const struct ops *ops, int l, const float *in, size_t b,
                                     size_t t) {
    const struct text_config *tc = &m->cfg.text;
    const struct llava_text_layer *w = &m->p.tl[l], *g = &m->g.tl[l];
    const struct llava_text_acts *L = &m->a.tl[l];
    struct llava_grad_acts *d = &m->d;
    size_t n = b * t, c = (size_t)tc->hidden, nh = (size_t)tc->heads, kvh = (size_t)tc->kv_heads;
    size_t hs = c / nh, kv = kvh * hs;
    int gqa = kvh < nh;
    linear_backward(m, ops, l, LLAVA_O, zeroed(ops, d->att, n * c), g->o_w, d->res, L->att, w->o_w, n, c, c);
    float *dk = zeroed(ops, gqa ? d->k_rep : d->k, n * (gqa ? c : kv));
    float *dv = zeroed(ops, gqa ? d->v_rep : d->v, n * (gqa ? c : kv));
    ops->attention_backward(zeroed(ops, d->q, n * c), dk, dv, d->att, L->probs, L->q, gqa ? L->k_rep : L->k,
                            gqa ? L->v_rep : L->v, b, t, nh, hs);
    if (gqa) {
        ops->repeat_kv_backward(zeroed(ops, d->k, n * kv), d->k_rep, n, kvh, nh / kvh, hs);
        ops->repeat_kv_backward(zeroed(ops, d->v, n * kv), d->v_rep, n, kvh, nh / kvh, hs);
    }
    ops->rope_backward(d->q, m->pos, b, t, nh, hs, tc->rope_theta);
    ops->rope_backward(d->k, m->pos, b, t, kvh, hs, tc->rope_theta);
    zeroed(ops, d->ln, n * c);
    linear_backward(m, ops, l, LLAVA_Q, d->ln, g->q_w, d->q, L->ln1, w->q_w, n, c, c);
    linear_backward(m, ops, l, LLAVA_K, d->ln, g->k_w, d->k, L->ln1, w->k_w, n, c, kv);
    linear_backward(m, ops, l, LLAVA_V, d->ln, g->v_w, d->v, L->ln1, w->v_w, n, c, kv);
    ops->rmsnorm_backward(d->res, g->ln1_w, d->ln, in, w->ln1_w, L->ln1_rstd, n, c);
}

/* d res2 (in d->res) -> d res1. */
static void mlp_block_backward(struct llava *m, const struct ops *ops, int l, size_t n) {
    const struct text_config *tc = &m->cfg.text;
    const struct llava_text_layer *w = &m->p.tl[l], *g = &m->g.tl[l];
    const struct llava_text_acts *L = &m->a.tl[l];
    struct llava_grad_acts *d = &m->d;
    size_t c = (size_t)tc->hidden, im = (size_t)tc->intermediate;
    linear_backward(m, ops, l, LLAVA_DOWN, zeroed(ops, d->swiglu, n * im), g->down_w, d->res, L->swiglu,
                    w->down_w, n, im, c);
    ops->swiglu_backward(zeroed(ops, d->gate, n * im), zeroed(ops, d->up, n * im), d->swiglu, L->gate, L->up,
                         n * im);
    zeroed(ops, d->ln, n * c);
    linear_backward(m, ops, l, LLAVA_GATE, d->ln, g->gate_w, d->gate, L->ln2, w->gate_w, n, c, im);
    linear_backward(m, ops, l, LLAVA_UP, d->ln, g->up_w, d->up, L->ln2, w->up_w, n, c, im);
    ops->rmsnorm_backward(d->res, g->ln2_w, d->ln, L->res1, w->ln2_w, L->ln2_rstd, n, c);
}

/* d embed_t (in d->res) -> the image features' rows (d->proj2, in order) and the token table. Image rows are
 * cleared first so the embedding's row 0 (the ids they embedded as) gets nothing from them. */
static void embed_backward(struct llava *m, const struct ops *ops, size_t n) {
    size_t c = (size_t)m->cfg.text.hidden, next = 0, run;
    struct llava_grad_acts *d = &m->d;
    for (size_t i = 0; (run = image_run(m, &i, n)) > 0; i += run, next += run) {
        if (d->proj2)
            ops->copy(d->proj2 + next * c, d->res + i * c, run * c);
        ops->zero(d->res + i * c, run * c);
    }
    ops->embedding_backward(m->g.embed, d->res, m->tok, n, c);
}

/* d logits -> d norm (in d->ln). With chosen rows, their gradients are moved to the first rows (row lrow[i]
 * to i, first first: the mirror of the forward's move), the product runs on those, and its d norm rows are
 * scattered back (the embedding's backward: an add into zeroed rows, each row once). */
static void logits_backward(struct llava *m, const struct ops *ops, size_t n) {
    size_t c = (size_t)m->cfg.text.hidden, v = (size_t)m->cfg.text.vocab, k = m->frows;
    struct llava_grad_acts *d = &m->d;
    zeroed(ops, d->ln, n * c);
    if (!m->fpick) {
        ops->matmul_backward(d->ln, m->g.lm_head, NULL, d->logits, m->a.norm, m->p.lm_head, n, c, v);
        return;
    }
    if (k == 0)
        return;
    for (size_t i = 0; i < k; i++)
        if ((size_t)m->lrow[i] != i)
            ops->copy(d->logits + i * v, d->logits + (size_t)m->lrow[i] * v, v);
    ops->matmul_backward(zeroed(ops, d->q, k * c), m->g.lm_head, NULL, d->logits, m->a.norm_rows,
                         m->p.lm_head, k, c, v);
    ops->embedding_backward(d->ln, d->q, m->lrow, k, c);
}

void llava_decoder_backward(struct llava *m, const struct ops *ops, size_t b, size_t t) {
    const struct text_config *tc = &m->cfg.text;
    size_t n = b * t, c = (size_t)tc->hidden;
    struct llava_grad_acts *d = &m->d;
    const float *last = tc->layers ? m->a.tl[tc->layers - 1].res2 : m->a.embed_t;
    logits_backward(m, ops, n);
    ops->rmsnorm_backward(zeroed(ops, d->res, n * c), m->g.norm_w, d->ln, last, m->p.norm_w, m->a.norm_rstd,
                          n, c);
    for (int l = tc->layers - 1; l >= 0; l--) {
        const float *in = l ? m->a.tl[l - 1].res2 : m->a.embed_t;
        /* recomputation (llava_set_recompute): the shared intermediates hold the last layer the forward ran,
         * so every other layer runs again from its kept input first, the same operations on the same bits */
        if (m->recompute && l < tc->layers - 1) {
            attention_block(m, ops, l, in, b, t);
            mlp_block(m, ops, l, n);
        }
        mlp_block_backward(m, ops, l, n);
        attention_block_backward(m, ops, l, in, b, t);
    }
    embed_backward(m, ops, n);
}

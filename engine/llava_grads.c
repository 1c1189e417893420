/* llava_grads: what training adds to the model: per-tensor trainable flags, the gradient block (carved by the
 * parameter table, trainable rows only), the backward's scratch block, and the backward's entry point. */
#include "engine/llava.h"
#include "engine/mem.h"
#include "util/buf.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VT LLAVA_TOWER
#define MP "model.multi_modal_projector."

size_t llava_set_trainable(struct llava *m, const char *prefix, int on) {
    llava_frozen_forget(m); /* a weight that trains from now on must not be read from a frozen copy */
    size_t n = 0, k = strlen(prefix);
    for (size_t i = 0; i < m->nptab; i++)
        if (strncmp(m->ptab[i].name, prefix, k) == 0) {
            m->ptab[i].trainable = on != 0;
            n++;
        }
    return n;
}

/* Appends a scratch row of n floats. */
static void drow(struct llava *m, float **slot, size_t n, const char *name) {
    m->dtab = xrealloc(m->dtab, (m->ndtab + 1) * sizeof *m->dtab);
    struct llava_tensor *t = &m->dtab[m->ndtab++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "grad.%s", name);
    t->ndim = 1;
    t->shape[0] = t->n = n;
    t->slot = slot;
    t->bf16 = m->act_bf16;
}

/* The decoder's scratch: the residual stream's gradient and one layer's intermediates, for B * T rows. */
static void text_scratch(struct llava *m) {
    const struct text_config *t = &m->cfg.text;
    size_t n = m->B * m->T, c = (size_t)t->hidden, kv = c / (size_t)t->heads * (size_t)t->kv_heads;
    size_t im = (size_t)t->intermediate;
    struct llava_grad_acts *d = &m->d;
    drow(m, &d->logits, n * (size_t)t->vocab, "logits");
    m->dtab[m->ndtab - 1].bf16 = 0; /* the losses' output, fp32 as the logits are */
    float **full[] = {&d->res, &d->ln, &d->q, &d->att};
    static const char *fn[] = {"res", "ln", "q", "att"};
    for (size_t i = 0; i < 4; i++)
        drow(m, full[i], n * c, fn[i]);
    drow(m, &d->k, n * kv, "k");
    drow(m, &d->v, n * kv, "v");
    if (t->kv_heads < t->heads) {
        drow(m, &d->k_rep, n * c, "k_rep");
        drow(m, &d->v_rep, n * c, "v_rep");
    }
    drow(m, &d->gate, n * im, "gate");
    drow(m, &d->up, n * im, "up");
    drow(m, &d->swiglu, n * im, "swiglu");
}

/* The projector's and (when the tower trains) the tower's scratch, for up to B images. */
static void vision_scratch(struct llava *m) {
    const struct vision_config *v = &m->cfg.vision;
    size_t p = (size_t)m->cfg.patches, s = p + 1, nv = m->nimg * s, c = (size_t)v->hidden;
    size_t sel = m->nimg * (m->cfg.select_default ? p : s), ct = (size_t)m->cfg.text.hidden;
    struct llava_grad_acts *d = &m->d;
    drow(m, &d->proj2, sel * ct, "proj2");
    drow(m, &d->proj1_act, sel * ct, "proj1_act");
    drow(m, &d->proj1, sel * ct, "proj1");
    if (!m->grad_tower)
        return;
    drow(m, &d->feats, sel * c, "feats");
    float **full[] = {&d->vres, &d->vln, &d->vq, &d->vk, &d->vv, &d->vatt, &d->embed_v};
    static const char *fn[] = {"vres", "vln", "vq", "vk", "vv", "vatt", "embed_v"};
    for (size_t i = 0; i < sizeof fn / sizeof fn[0]; i++)
        drow(m, full[i], nv * c, fn[i]);
    drow(m, &d->fc1, nv * (size_t)v->intermediate, "fc1");
    drow(m, &d->fc1_act, nv * (size_t)v->intermediate, "fc1_act");
    drow(m, &d->patch, m->nimg * p * c, "patch");
}

void llava_grads_free(struct llava *m) {
    mem_free(m->grads);
    mem_free(m->dacts);
    mem_free(m->dacts16);
    free(m->dtab);
    m->grads = m->dacts = m->dacts16 = NULL;
    m->dtab = NULL;
    m->ngrads = m->ndacts = m->ndacts16 = m->ndtab = 0;
    memset(&m->d, 0, sizeof m->d);
    for (size_t i = 0; i < m->nptab; i++)
        *m->ptab[i].gslot = NULL;
    for (size_t i = 0; m->lora.s && i < (size_t)m->cfg.text.layers * LLAVA_NPROJ; i++)
        m->lora.s[i].gA = m->lora.s[i].gB = NULL;
    m->lora.ngrads = 0;
}

/* Gradient rows in table order, trainable ones only, then an attached adapter's; the scratch rows. */
void llava_grads_layout(struct llava *m) {
    size_t off = 0;
    m->grad_image = m->grad_tower = 0;
    for (size_t i = 0; i < m->nptab; i++) {
        struct llava_tensor *t = &m->ptab[i];
        t->goffset = off;
        off += t->trainable ? t->n : 0;
        m->grad_tower |= t->trainable && strncmp(t->name, VT, strlen(VT)) == 0;
        m->grad_image |= t->trainable && strncmp(t->name, MP, strlen(MP)) == 0;
    }
    m->grad_image |= m->grad_tower;
    m->ngrads = llava_lora_grads_layout(m, off); /* an attached adapter's A and B, after the table's rows */
    text_scratch(m);
    if (m->grad_image)
        vision_scratch(m);
    m->ndacts = m->ndacts16 = 0;
    for (size_t i = 0; i < m->ndtab; i++)
        *(m->dtab[i].bf16 ? &m->ndacts16 : &m->ndacts) += m->dtab[i].n;
}

/* The layout's two blocks: the gradients, and the scratch carved by its table. */
void llava_grads_init(struct llava *m) {
    llava_grads_free(m);
    llava_grads_layout(m);
    m->grads = mem_alloc(m->ngrads ? m->ngrads : 1, sizeof(float));
    for (size_t i = 0; i < m->nptab; i++)
        *m->ptab[i].gslot = m->ptab[i].trainable ? m->grads + m->ptab[i].goffset : NULL;
    llava_lora_grads_bind(m);
    m->dacts = llava_carve(m->dtab, m->ndtab, &m->ndacts, &m->dacts16, &m->ndacts16);
}

void llava_zero_grad(struct llava *m, const struct ops *ops) {
    if (m->grads)
        ops->zero(m->grads, m->ngrads);
    ops->sync();
}

int llava_backward(struct llava *m, const struct ops *ops) {
    if (!m->dacts)
        return err_set("llava: backward before llava_grads_init");
    if (llava_act_table_ok(m, ops) < 0)
        return -1;
    if (!m->fb)
        return err_set("llava: backward without a successful forward");
    if (m->ffeats && m->fimg && m->grad_tower)
        return err_set("llava: backward after llava_forward_features while the vision tower trains (its "
                       "gradient needs the tower's activations: forward with pixels)");
    llava_decoder_backward(m, ops, m->fb, m->ft);
    if (m->grad_image && m->fimg)
        llava_vision_backward(m, ops, m->fimg);
    ops->sync();
    return 0;
}

/* llava: LLaVA-1.5's architecture (CLIP ViT tower, GELU projector, LLaMA decoder) on the operation table of
 * engine/ops.h, driven by engine/config.h, with weights read from Hugging Face safetensors.
 *
 * Memory, llm.c style: all parameters live in one allocation carved by a size table computed from the config
 * (struct llava_tensor: name, shape, offset); all activations live in a second one, carved the same way for
 * the batch B, the sequence length T and the image count given at creation. Activations a backward pass needs
 * (norm inputs and statistics, attention probabilities, pre-activation MLP values) are kept per layer.
 *
 * Training: each parameter row carries a `trainable` flag; llava_grads_init gives the trainable ones a
 * gradient in a third allocation carved by the same table (frozen tensors get none: their pointer in m->g is
 * NULL), plus the backward's scratch (gradients of activations, reused layer after layer).
 *
 * LoRA: a struct lora (engine/lora.h) attached with llava_lora_attach adds its term to the decoder
 * projections it adapts; its A and B get gradients at the end of m->grads, and AdamW (engine/train.h) steps
 * them in place. */
#ifndef PULSE_ENGINE_LLAVA_H
#define PULSE_ENGINE_LLAVA_H

#include "engine/config.h"
#include "engine/ops.h"
#include "engine/safetensors.h"

#include <stddef.h>
#include <stdint.h>

#define LLAVA_NAME_MAX 112
/* The prefix every vision tower tensor's name has (the names below): what freezes, loads or writes a tower.
 */
#define LLAVA_TOWER "model.vision_tower."

/* One row of a size table: a tensor's place in its block. Parameter names are the newer transformers
 * layout ("model.language_model.layers.0.self_attn.q_proj.weight", "lm_head.weight"); activation names are
 * short ("text.3.att"). */
struct llava_tensor {
    char name[LLAVA_NAME_MAX];
    int ndim;
    size_t shape[4];
    size_t n;      /* elements */
    size_t offset; /* in floats, from the block's start */
    float **slot;  /* the struct field that receives the pointer */
    /* parameters only: the twin field in m->g, whether the tensor trains, and its gradient's offset */
    float **gslot;
    int trainable;
    size_t goffset;
    int product; /* a linear layer's weight (a product's operand): what ops weights_frozen may copy */
    int bf16; /* activations only: kept in bf16 storage (llava_set_act_bf16; offset counts its own block) */
};

struct llava_vision_layer {
    float *ln1_w, *ln1_b, *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b;
    float *ln2_w, *ln2_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b;
};

struct llava_text_layer {
    float *ln1_w, *q_w, *k_w, *v_w, *o_w, *ln2_w, *gate_w, *up_w, *down_w;
};

/* Parameters; only the vision layers actually used (config.vision.layers_used) are held. */
struct llava_params {
    float *patch_w; /* [Cv, channels * patch * patch]: the conv kernel flattened */
    float *class_emb, *pos_emb, *pre_ln_w, *pre_ln_b;
    struct llava_vision_layer *vl;
    float *proj1_w, *proj1_b, *proj2_w, *proj2_b;
    float *embed; /* [V, C] */
    struct llava_text_layer *tl;
    float *norm_w;
    float *lm_head; /* [V, C] */
};

/* Per-layer activations, named as in llm.c: the layer's input is the previous layer's residual output. */
struct llava_vision_acts {
    float *ln1, *ln1_mean, *ln1_rstd, *q, *k, *v, *probs, *att, *att_o, *res1;
    float *ln2, *ln2_mean, *ln2_rstd, *fc1, *fc1_act, *fc2, *res2;
};

struct llava_text_acts {
    float *ln1, *ln1_rstd, *q, *k, *v; /* q [N, heads*hs] and k, v [N, kv_heads*hs], after RoPE */
    float *k_rep, *v_rep;              /* k, v repeated to all heads (NULL without GQA: k, v are used) */
    float *probs, *att, *att_o, *res1;
    float *ln2, *ln2_rstd, *gate, *up, *swiglu, *down, *res2;
};

struct llava_acts {
    /* vision, over nimg images of S = patches + 1 tokens */
    float *im2col; /* [nimg * patches, channels * patch * patch] */
    float *patch_out, *embed_v, *pre_ln, *pre_ln_mean, *pre_ln_rstd;
    struct llava_vision_acts *vl;
    float *feats, *proj1, *proj1_act, *proj2; /* proj2 [nimg * selected, C]: the image features */
    /* decoder, over B * T positions */
    float *embed_t;
    struct llava_text_acts *tl;
    float *norm, *norm_rstd, *logits;
    float *norm_rows; /* [rows, C]: the final norm's rows whose logits are wanted (llava_logits_for) */
};

/* Gradients of activations, for the backward: the residual stream's and one layer's intermediates, reused
 * by every layer (each buffer is zeroed before a backward op accumulates into it). `logits` is what a loss
 * writes (d loss / d logits) before llava_backward runs. Vision buffers exist only when the tower trains. */
struct llava_grad_acts {
    float *logits, *res, *ln, *q, *k, *v, *k_rep, *v_rep, *att, *gate, *up, *swiglu;
    float *proj2, *proj1_act, *proj1, *feats;
    float *vres, *vln, *vq, *vk, *vv, *vatt, *fc1, *fc1_act, *embed_v, *patch;
};

/* LoRA on the decoder (engine/llava_lora.c): the projections of one layer, in PEFT's usual order. */
enum { LLAVA_Q, LLAVA_K, LLAVA_V, LLAVA_O, LLAVA_GATE, LLAVA_UP, LLAVA_DOWN, LLAVA_NPROJ };

struct lora;
struct lora_module;

/* One decoder projection's adapter: NULL mod = not adapted. h = dropout(x) A^T [B*T, r] is kept for the
 * backward; gA, gB point into m->grads (gB right after gA) once llava_grads_init has run. */
struct llava_lora_slot {
    struct lora_module *mod;
    size_t index; /* the module's position in the adapter: its dropout stream */
    float *h, *gA, *gB;
    size_t goffset;
};

struct llava_lora {
    struct lora *l;            /* the attached adapter (the caller's; A and B are trained in place) or NULL */
    struct llava_lora_slot *s; /* [layers * LLAVA_NPROJ] */
    float *acts;               /* one block: every h, then the scratch of one adapted linear */
    float *x, *dh, *dx;        /* scratch: dropout(x) [N, wide], dh [N, r], d dropout(x) [N, wide] */
    size_t ngrads;             /* LoRA values at the end of m->grads */
    int train;                 /* dropout on (train_step turns it on for its own forward) */
    int bypass;                /* llava_lora_bypass: the adapted linears add nothing (a reference forward) */
    uint64_t seed, step;       /* dropout mask of element e: rng_key(rng_key(seed, step), module), e */
};

/* A K/V cache for greedy generation (engine/generate.c makes it): per decoder layer, the keys (after RoPE)
 * and the values of every position of b sequences so far, k[l] and v[l] [b, cap, kv_heads * head size] from
 * mem_alloc; len [b] (mem_alloc: the attention op reads it) counts each sequence's positions. */
struct llava_kv {
    float **k, **v; /* [layers] */
    int32_t *len;
    size_t b, cap;
};

/* The forget entries one model keeps (a backend's, or a wrapper's around it: engine/llava_frozen.c). */
#define LLAVA_FORGET_MAX 4

struct llava {
    struct llava_config cfg;
    size_t B, T, nimg; /* the activation block's capacity */
    struct llava_params p;
    float *params;
    struct llava_tensor *ptab;
    size_t nparams, nptab;
    enum st_dtype wdtype; /* how the loaded weights were stored: their one dtype, F32 when mixed */
    struct llava_acts a;
    float *acts;   /* made by the first forward (llava_set_recompute decides its layout first) */
    float *acts16; /* the rows kept in bf16 (llava_set_act_bf16), or NULL */
    struct llava_tensor *atab;
    size_t nacts, nacts16, natab; /* fp32 floats, bf16 values, rows */
    int recompute;                /* llava_set_recompute */
    int act_bf16;                 /* llava_set_act_bf16 */
    int32_t *tok, *pos, *len;     /* [B*T], [B*T], [B]: token ids to embed, RoPE positions, valid lengths */
    uint8_t *img;                 /* [B*T]: 1 where the last forward put an image feature (tok's block) */
    int32_t *lrow;                /* [B*T] (tok's block): llava_logits_for's rows, ascending */
    size_t nrow, rows_for; /* how many, and for a forward of how many positions (0: no choice pending) */
    int fpick;             /* the last forward computed logits for rows lrow[0 .. frows) only */
    size_t frows;
    size_t fb, ft, fimg; /* the last forward's batch, sequence and image count (fb == 0: none yet) */
    int ffeats;          /* the last forward took cached tower features: no tower activations */
    /* training (llava_grads_init): gradients, twins of p, NULL where frozen, and the backward's scratch */
    struct llava_params g;
    float *grads;
    size_t ngrads;
    struct llava_grad_acts d;
    float *dacts, *dacts16;
    struct llava_tensor *dtab;
    size_t ndacts, ndacts16, ndtab;
    int grad_image, grad_tower; /* some projector / vision tower tensor trains: the backward goes there */
    struct llava_lora lora;
    struct llava_kv *kv; /* while set (generation), the decoder's forward stores every layer's K/V in it */
    /* ops weights_frozen (llava_frozen.c): the table last told, and the forget entries of every backend told
     */
    const struct ops *frozen_told;
    void (*forget[LLAVA_FORGET_MAX])(const float *p, size_t n);
    int nforget;
};

/* Builds the model for cfg with parameters from the given safetensors files (the shards of one checkpoint),
 * activations for batch B, sequence T and up to B images. Accepts the Hub's names
 * ("language_model.model.*", "language_model.lm_head.weight", "vision_tower.*", "multi_modal_projector.*")
 * and the newer ones ("model.language_model.*", "model.vision_tower.*", "model.multi_modal_projector.*",
 * "lm_head.weight"), the tower's "vision_model." level present or not (transformers 5 drops it); ignores the
 * vision layers after the selected one and post_layernorm; refuses a missing tensor, a shape that disagrees
 * with the config, a tensor given twice and any other tensor, with one line naming it. */
int llava_init(struct llava *m, const struct llava_config *cfg, const struct st_file *files, size_t nfiles,
               size_t B, size_t T);
/* llava_init with every parameter 0, for a caller that fills m->params itself (the benchmark fills a 13B
 * model from many threads; a safetensors round trip would double its memory). */
int llava_init_blank(struct llava *m, const struct llava_config *cfg, size_t B, size_t T);
/* Reads dir/config.json and dir/model.safetensors, or the shards dir/model.safetensors.index.json lists. */
int llava_load(struct llava *m, const char *dir, size_t B, size_t T);
void llava_free(struct llava *m);

/* Forward: ids [b, t] (b <= B, t <= T) with exactly config.patches image tokens per image, filled in order
 * from the nimg (<= B) images in pixels [nimg, channels, image, image] (normalised); mask [b, t] is the
 * attention mask, right padding only (1...1 0...0). Leaves logits [b, t, vocab] in m->a.logits. Inputs that
 * break these rules are refused with one line. */
int llava_forward(struct llava *m, const struct ops *ops, const int32_t *ids, const int32_t *mask, size_t b,
                  size_t t, const float *pixels, size_t nimg);

/* The logits the next forward computes: need [n] (n = that forward's b * t) is 1 where a consumer reads the
 * position's logits (a loss's targets, a scored position). The lm_head then runs on those rows only, and
 * its backward reads d loss / d logits on those rows only; every other row of m->a.logits holds nothing
 * meaningful. For a tiny vocabulary the lm_head is a fifth of the decoder's products, and most positions
 * (the image's, the prompt's) are never scored. The choice holds for one forward (and its backward) and is
 * then forgotten: a forward without one computes every row. A forward of another size is refused. */
void llava_logits_for(struct llava *m, const uint8_t *need, size_t n);
/* llava_logits_for each sequence's last valid position (mask [b, t], as the forward takes it): where a
 * letter is scored and where generation makes its first choice. */
void llava_logits_last(struct llava *m, const int32_t *mask, size_t b, size_t t);

/* Frozen vision features: the tower (frozen after pretraining) runs once per image and its output is reused.
 * llava_vision_features writes the tower's selected hidden state, before the projector (which may train):
 * out [nimg, llava_feature_tokens(m), vision hidden], nimg <= the model's image capacity. It overwrites the
 * vision activations, so the last forward can no longer be differentiated. llava_forward_features is
 * llava_forward with those features in place of pixels: projector and decoder only, the same bits. A backward
 * after it reaches the projector and the decoder (and LoRA); it is refused while a tower tensor trains. */
size_t llava_feature_tokens(const struct llava *m); /* config.patches, + 1 with strategy "full" */
int llava_vision_features(struct llava *m, const struct ops *ops, const float *pixels, size_t nimg,
                          float *out);
int llava_forward_features(struct llava *m, const struct ops *ops, const int32_t *ids, const int32_t *mask,
                           size_t b, size_t t, const float *feats, size_t nimg);

/* Activation recomputation, off after llava_init. On, the activation block keeps, per layer (decoder and
 * tower), only the layer's output (the next layer's input) and one set of intermediates that every layer
 * shares; the backward re-runs a layer's forward into that set before differentiating it. Gradients, losses
 * and steps are the same bits (the same operations on the same inputs; LoRA dropout masks are a pure function
 * of seed, step, module and element); the activations shrink from a set per layer to one set
 * (engine/llava_plan.h sums both layouts). The block is made by the first forward, so switching before it
 * costs nothing; switching later remakes it and drops the last forward. */
void llava_set_recompute(struct llava *m, int on);
/* bf16 activations, off after llava_init. On, the activations and the backward's scratch are kept in bf16
 * storage (engine/mem.h mem_alloc_bf16: half the activations' bytes), but for the norms' statistics, what
 * the host reads or writes (the logits, im2col, the tower's features) and the logits' gradient (the losses
 * write it), which stay fp32; LoRA's activations stay fp32 too. The operation tables given must then take
 * bf16 storage (ops_takes_bf16: precision "bf16-act"): llava_forward, llava_forward_features,
 * llava_vision_features and llava_backward refuse another. Like llava_set_recompute, it remakes the blocks
 * it changes; call it before llava_grads_init (after it, gradients restart from zero). */
void llava_set_act_bf16(struct llava *m, int on);
/* -1 with err_set when m keeps bf16 activations and ops does not take bf16 storage; else 0. */
int llava_act_table_ok(const struct llava *m, const struct ops *ops);

/* The parameter table's row of that (newer-layout) name, or NULL. */
struct llava_tensor *llava_param_find(const struct llava *m, const char *name);
/* Marks every parameter whose name starts with prefix ("" = all, "model.language_model.layers.0." = one
 * layer) trainable (on != 0) or frozen; returns how many matched. Everything is frozen after llava_init. */
size_t llava_set_trainable(struct llava *m, const char *prefix, int on);
/* Gives the trainable parameters their gradients (zeroed; one allocation in table order) and allocates the
 * backward's scratch; call again after changing the flags. */
void llava_grads_init(struct llava *m);
void llava_zero_grad(struct llava *m, const struct ops *ops);
/* Backward of the last llava_forward, from m->d.logits (d loss / d logits, [b, t, vocab], written by a loss):
 * ACCUMULATES into m->g, through the decoder, the image features, the projector and the tower as far as
 * something trains. Refused with one line without a forward or without llava_grads_init. */
int llava_backward(struct llava *m, const struct ops *ops);

/* LoRA fine-tuning (engine/llava_lora.c). Adapters go on the decoder's q/k/v/o/gate/up/down projections
 * only; modules are named by PEFT's paths, "model.language_model.layers.N.self_attn.q_proj" (the Hub's
 * "language_model.model.layers.N..." is accepted too). An adapted linear computes, as PEFT does,
 * y = x W^T + (B (A dropout(x))) * scale; its base weight stays frozen unless marked trainable. */

/* peft_shape_fn for peft_read (ctx = the model): the base shape of a decoder projection. */
int llava_lora_shape(void *ctx, const char *module, size_t *in, size_t *out);
/* Adds to l (lora_add, zero-filled) every decoder projection l's target_modules match, in layer order, q k v
 * o gate up down; refuses, with one line, targets that match a vision tower or projector linear too (PEFT
 * would adapt those) or nothing at all. Then lora_init(l, seed) gives PEFT's initialisation. */
int llava_lora_add_targets(const struct llava *m, struct lora *l);
/* Attaches l (kept by pointer, not copied) to the model: every module must be a decoder projection of the
 * base's shape, once. Dropout is off until train_step or llava_lora_mode turns it on. Drops the gradients:
 * call llava_grads_init next (A and B get theirs after the parameter table's). */
int llava_lora_attach(struct llava *m, struct lora *l, uint64_t seed);
void llava_lora_detach(struct llava *m);
/* Dropout on (train != 0) or off, and the step its masks are drawn for. */
void llava_lora_mode(struct llava *m, int train, uint64_t step);
/* Bypass on (on != 0): the adapted linears skip their LoRA term altogether, forward and backward, so a
 * forward computes the base model's bits exactly (not base + a zero term: x + 0 turns -0 into +0). The
 * adapter, its gradients and the dropout mode stay as they are; off again, the next forward is the adapted
 * one. The reference forwards of unlearning use it (engine/unlearn_loss.h). */
void llava_lora_bypass(struct llava *m, int on);
/* Merges the attached adapter into the base weights (lora_merge: W += scale B A, PEFT's merge) and
 * detaches it: the plain forward then computes what the adapted one did. */
void llava_lora_merge(struct llava *m);

/* Internal, between llava*.c: the adapted linear's extra term and its backward (nothing when the
 * projection has no adapter), and the gradients' layout at the end of m->grads. */
void llava_lora_forward(struct llava *m, const struct ops *ops, int layer, int proj, float *y, const float *x,
                        size_t n);
void llava_lora_backward(struct llava *m, const struct ops *ops, int layer, int proj, float *dx,
                         const float *dy, const float *x, size_t n);
size_t llava_lora_grads_layout(struct llava *m, size_t off);
void llava_lora_grads_bind(struct llava *m);
void llava_lora_free(struct llava *m);

/* Internal, between llava*.c: the size tables and the two halves of the forward. llava_carve lays the n
 * rows of a table one after another, makes the one (zeroed) allocation they describe, points every row's slot
 * into it and returns it; *total receives its length in floats. Rows marked bf16 go to a second block of
 * their own instead, a mem_alloc_bf16 of *nhalf values returned in *half (NULL when no row is marked; half
 * and nhalf may be NULL for a table that has none). */
float *llava_carve(struct llava_tensor *tab, size_t n, size_t *total, float **half, size_t *nhalf);
int llava_param_table(struct llava *m);
/* The size tables without their blocks (engine/llava_plan.c sums them; the model carves them):
 * llava_tables sets cfg, B and T and builds the parameter rows; llava_param_rows is llava_param_table's rows
 * alone; llava_act_rows builds the activation rows for m->recompute; llava_token_bytes is the block of the
 * token arrays (tok, pos, len, img); llava_grads_layout is llava_grads_init's offsets and scratch rows for
 * the current trainable flags (and attached adapter); llava_lora_plan gives the floats of the modules l's
 * targets select (A and B together: their gradients take as many) and of the adapter's activation block. */
int llava_tables(struct llava *m, const struct llava_config *cfg, size_t B, size_t T);
int llava_param_rows(struct llava *m);
void llava_act_rows(struct llava *m);
size_t llava_token_bytes(const struct llava *m);
void llava_grads_layout(struct llava *m);
int llava_lora_plan(const struct llava *m, const struct lora *l, size_t *ab, size_t *acts);
int llava_load_params(struct llava *m, const struct st_file *files, size_t nfiles);
/* Only the vision tower's tensors, from a file that holds nothing else (a `tower` stage's output): each
 * checked by name and shape; every tensor of the tower must be there. */
int llava_load_tower(struct llava *m, const struct st_file *f);
void llava_vision_forward(struct llava *m, const struct ops *ops, const float *pixels, size_t nimg);
/* The two halves of llava_vision_forward: pixels -> m->a.feats, then m->a.feats -> m->a.proj2. */
void llava_tower_forward(struct llava *m, const struct ops *ops, const float *pixels, size_t nimg);
void llava_projector_forward(struct llava *m, const struct ops *ops, size_t nimg);
void llava_decoder_forward(struct llava *m, const struct ops *ops, size_t b, size_t t);
/* One generation step of b sequences against m->kv (engine/generate.c): sequence i's new token m->tok[i] sits
 * at position m->pos[i] == m->kv->len[i] - 1 (the caller has counted it); its K and V join the cache there
 * and its logits land in row i of m->a.logits [b, vocab]. The decoder's own layer code, run for one position
 * each; the activations of the last forward are overwritten. */
void llava_decoder_step(struct llava *m, const struct ops *ops, size_t b);
void llava_grads_free(struct llava *m);
/* llava_frozen.c: tells ops (weights_frozen) every product weight that does not train, unless it was the
 * table told last and nothing changed since; llava_frozen_forget makes every backend told drop its copies
 * (call it before anything changes a parameter or the trainable flags). */
void llava_frozen_tell(struct llava *m, const struct ops *ops);
void llava_frozen_forget(struct llava *m);
void llava_vision_backward(struct llava *m, const struct ops *ops, size_t nimg);
/* The tower's half of it: d m->d.feats (the selected features' gradient) -> the tower's gradients. */
void llava_tower_backward(struct llava *m, const struct ops *ops, size_t nimg);
void llava_decoder_backward(struct llava *m, const struct ops *ops, size_t b, size_t t);

#endif

/* config: a LLaVA model's shape from a Hugging Face config.json, with the transformers defaults for missing
 * fields and a refusal (one line) for anything the engine cannot compute faithfully; and the way back. */
#include "engine/config.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CFG_MAX_SIZE (1 << 20) /* hidden / intermediate sizes: 16x LLaMA-70B's */
#define CFG_MAX_VOCAB (1 << 24)
#define CFG_MAX_LAYERS 1024
#define CFG_MAX_POSITIONS (1 << 24)
#define CFG_MAX_IMAGE 16384 /* the image module's largest side */

/* ---- typed field access: a present field of the wrong type or range is an error, never a default ------- */

/* The field, or NULL when missing or null (transformers treats an explicit None as "use the default"). */
static const struct json *field(const struct json *o, const char *key) {
    const struct json *v = o ? json_get(o, key) : NULL;
    return v && v->type != JSON_NULL ? v : NULL;
}

static int get_int(const struct json *o, const char *sect, const char *key, int def, int lo, int hi,
                   int *out) {
    const struct json *v = field(o, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (v->type != JSON_INT)
        return err_set("%s%s must be an integer", sect, key);
    if (v->i < lo || v->i > hi)
        return err_set("%s%s = %lld is out of range (%d..%d)", sect, key, (long long)v->i, lo, hi);
    *out = (int)v->i;
    return 0;
}

/* A positive finite number, stored as float (as the engine computes in fp32). */
static int get_pos(const struct json *o, const char *sect, const char *key, double def, float *out) {
    const struct json *v = field(o, key);
    double d = def;
    if (v && v->type != JSON_INT && v->type != JSON_NUM)
        return err_set("%s%s must be a number", sect, key);
    if (v)
        d = v->type == JSON_INT ? (double)v->i : v->n;
    if (!(d > 0) || !isfinite((float)d) || (float)d == 0)
        return err_set("%s%s = %g must be a positive number representable in fp32", sect, key, d);
    *out = (float)d;
    return 0;
}

/* A string field that must be one of the values the engine implements (NULL-terminated list; the first is
 * the default). Returns the index in *which. */
static int get_choice(const struct json *o, const char *sect, const char *key, const char *const *allowed,
                      int *which) {
    const struct json *v = field(o, key);
    *which = 0;
    if (!v)
        return 0;
    if (v->type != JSON_STR)
        return err_set("%s%s must be a string", sect, key);
    for (int i = 0; allowed[i]; i++)
        if (strcmp(v->s, allowed[i]) == 0) {
            *which = i;
            return 0;
        }
    return err_set("%s%s \"%.40s\" is not supported (%s%s%s)", sect, key, v->s, allowed[0],
                   allowed[1] ? ", " : "", allowed[1] ? allowed[1] : "");
}

/* A boolean that must have the one value the engine implements when present. */
static int get_bool_is(const struct json *o, const char *sect, const char *key, bool want, const char *why) {
    const struct json *v = field(o, key);
    if (!v)
        return 0;
    if (v->type != JSON_BOOL)
        return err_set("%s%s must be true or false", sect, key);
    if (v->b != want)
        return err_set("%s%s = %s is not supported (%s)", sect, key, v->b ? "true" : "false", why);
    return 0;
}

/* A section ("text_config", "vision_config"): NULL when absent or null, an error when not an object. */
static int get_section(const struct json *o, const char *key, const struct json **out) {
    *out = field(o, key);
    if (*out && (*out)->type != JSON_OBJ)
        return err_set("%s must be an object", key);
    return 0;
}

/* ---- text_config (LlamaConfig) ------------------------------------------------------------------------- */

/* RoPE: a plain "rope_theta" (default 10000), "rope_scaling" null, or the newer "rope_parameters" with
 * rope_type "default". Scaled variants (linear, dynamic, yarn, llama3) change the frequencies: refused. */
static int text_rope(const struct json *t, struct text_config *c) {
    static const char *const plain[] = {"default", NULL};
    const char *s = "text_config.";
    int which;
    if (field(t, "rope_scaling"))
        return err_set("text_config.rope_scaling is not supported (only null: plain RoPE)");
    if (get_pos(t, s, "rope_theta", 10000.0, &c->rope_theta) < 0)
        return -1;
    const struct json *rp = field(t, "rope_parameters");
    if (!rp)
        return 0;
    if (rp->type != JSON_OBJ)
        return err_set("text_config.rope_parameters must be an object");
    if (get_choice(rp, "text_config.rope_parameters.", "rope_type", plain, &which) < 0)
        return -1;
    float theta;
    if (get_pos(rp, "text_config.rope_parameters.", "rope_theta", c->rope_theta, &theta) < 0)
        return -1;
    if (field(t, "rope_theta") && theta != c->rope_theta)
        return err_set("text_config.rope_theta %g and rope_parameters.rope_theta %g disagree", c->rope_theta,
                       theta);
    c->rope_theta = theta;
    return 0;
}

/* What the decoder's arithmetic needs: whole heads, whole groups of query heads per key/value head, and an
 * even head dimension (RoPE rotates pairs). */
static int text_check(const struct json *t, const struct text_config *c) {
    if (c->hidden % c->heads)
        return err_set("text_config.hidden_size %d is not divisible by num_attention_heads %d", c->hidden,
                       c->heads);
    if (c->kv_heads > c->heads || c->heads % c->kv_heads)
        return err_set("text_config.num_attention_heads %d is not a multiple of num_key_value_heads %d",
                       c->heads, c->kv_heads);
    int head_dim = c->hidden / c->heads, hd = 0;
    if (head_dim % 2)
        return err_set(
            "text_config: head dimension %d (hidden_size / num_attention_heads) is odd; RoPE needs it "
            "even",
            head_dim);
    if (get_int(t, "text_config.", "head_dim", head_dim, 1, CFG_MAX_SIZE, &hd) < 0)
        return -1;
    if (hd != head_dim)
        return err_set(
            "text_config.head_dim %d is not hidden_size / num_attention_heads = %d (not supported)", hd,
            head_dim);
    return 0;
}

static int text_parse(const struct json *t, struct text_config *c) {
    static const char *const llama[] = {"llama", NULL}, *const silu[] = {"silu", NULL};
    const char *s = "text_config.";
    int which;
    if (get_choice(t, s, "model_type", llama, &which) < 0 ||
        get_choice(t, s, "hidden_act", silu, &which) < 0 ||
        get_int(t, s, "hidden_size", 4096, 1, CFG_MAX_SIZE, &c->hidden) < 0 ||
        get_int(t, s, "intermediate_size", 11008, 1, CFG_MAX_SIZE, &c->intermediate) < 0 ||
        get_int(t, s, "num_hidden_layers", 32, 1, CFG_MAX_LAYERS, &c->layers) < 0 ||
        get_int(t, s, "num_attention_heads", 32, 1, CFG_MAX_SIZE, &c->heads) < 0 ||
        get_int(t, s, "num_key_value_heads", c->heads, 1, CFG_MAX_SIZE, &c->kv_heads) < 0 ||
        get_int(t, s, "vocab_size", 32000, 1, CFG_MAX_VOCAB, &c->vocab) < 0 ||
        get_int(t, s, "max_position_embeddings", 2048, 1, CFG_MAX_POSITIONS, &c->max_positions) < 0 ||
        get_pos(t, s, "rms_norm_eps", 1e-6, &c->eps) < 0 || text_rope(t, c) < 0)
        return -1;
    if (get_bool_is(t, s, "attention_bias", false, "LLaMA projections have no bias") < 0 ||
        get_bool_is(t, s, "mlp_bias", false, "LLaMA projections have no bias") < 0 ||
        get_bool_is(t, s, "tie_word_embeddings", false, "the lm_head is untied") < 0)
        return -1;
    return text_check(t, c);
}

/* ---- vision_config (CLIPVisionConfig) ------------------------------------------------------------------ */

static int vision_parse(const struct json *v, struct vision_config *c) {
    static const char *const clip[] = {"clip_vision_model", NULL}, *const qg[] = {"quick_gelu", NULL};
    const char *s = "vision_config.";
    /* transformers: no vision_config at all means LLaVA-1.5's ViT-L/14-336; a given one starts from
     * CLIPVisionConfig's own defaults (ViT-B/32-224). */
    int absent = v == NULL, which;
    if (get_choice(v, s, "model_type", clip, &which) < 0 || get_choice(v, s, "hidden_act", qg, &which) < 0 ||
        get_int(v, s, "hidden_size", absent ? 1024 : 768, 1, CFG_MAX_SIZE, &c->hidden) < 0 ||
        get_int(v, s, "intermediate_size", absent ? 4096 : 3072, 1, CFG_MAX_SIZE, &c->intermediate) < 0 ||
        get_int(v, s, "num_hidden_layers", absent ? 24 : 12, 1, CFG_MAX_LAYERS, &c->layers) < 0 ||
        get_int(v, s, "num_attention_heads", absent ? 16 : 12, 1, CFG_MAX_SIZE, &c->heads) < 0 ||
        get_int(v, s, "image_size", absent ? 336 : 224, 1, CFG_MAX_IMAGE, &c->image_size) < 0 ||
        get_int(v, s, "patch_size", absent ? 14 : 32, 1, CFG_MAX_IMAGE, &c->patch_size) < 0 ||
        get_int(v, s, "num_channels", 3, 1, 64, &c->channels) < 0 ||
        get_pos(v, s, "layer_norm_eps", 1e-5, &c->eps) < 0)
        return -1;
    if (c->channels != 3)
        return err_set("vision_config.num_channels %d is not supported (RGB images: 3)", c->channels);
    if (c->hidden % c->heads)
        return err_set("vision_config.hidden_size %d is not divisible by num_attention_heads %d", c->hidden,
                       c->heads);
    if (c->image_size % c->patch_size)
        return err_set("vision_config.image_size %d is not a multiple of patch_size %d", c->image_size,
                       c->patch_size);
    return 0;
}

/* ---- the whole LlavaConfig ----------------------------------------------------------------------------- */

/* vision_feature_layer indexes the tower's hidden states: 0 is the embeddings (after pre_layrnorm), i the
 * output of layer i; negative counts from the end. Layers past the selected one are never computed. */
static int feature_layer(const struct json *root, struct vision_config *v) {
    const struct json *f = field(root, "vision_feature_layer");
    if (f && f->type == JSON_ARR)
        return err_set("vision_feature_layer as a list (several layers concatenated) is not supported");
    if (get_int(root, "", "vision_feature_layer", -2, -(CFG_MAX_LAYERS + 1), CFG_MAX_LAYERS,
                &v->feature_layer) < 0)
        return -1;
    int idx = v->feature_layer < 0 ? v->layers + 1 + v->feature_layer : v->feature_layer;
    if (idx < 0 || idx > v->layers)
        return err_set("vision_feature_layer %d is outside the vision tower (%d layers: -%d..%d)",
                       v->feature_layer, v->layers, v->layers + 1, v->layers);
    v->layers_used = idx;
    return 0;
}

/* pad_token_id: the top level's (LlavaConfig) wins over text_config's; absent or null in both gives -1. */
static int pad_token(const struct json *root, const struct json *text, struct llava_config *c) {
    int pad = -1;
    if (get_int(text, "text_config.", "pad_token_id", -1, -1, CFG_MAX_VOCAB, &pad) < 0 ||
        get_int(root, "", "pad_token_id", pad, -1, CFG_MAX_VOCAB, &c->pad_token_id) < 0)
        return -1;
    if (c->pad_token_id >= c->text.vocab)
        return err_set("pad_token_id %d is outside the vocabulary (%d tokens)", c->pad_token_id,
                       c->text.vocab);
    return 0;
}

static int top_parse(const struct json *root, const struct json *text, struct llava_config *c) {
    static const char *const llava[] = {"llava", NULL}, *const gelu[] = {"gelu", NULL},
                             *const strat[] = {"default", "full", NULL},
                             *const aspect[] = {"pad", "square", NULL};
    int which, vocab = 0;
    if (get_choice(root, "", "model_type", llava, &which) < 0 ||
        get_choice(root, "", "projector_hidden_act", gelu, &which) < 0 ||
        get_bool_is(root, "", "multimodal_projector_bias", true, "the projector has biases") < 0 ||
        get_bool_is(root, "", "tie_word_embeddings", false, "the lm_head is untied") < 0 ||
        get_choice(root, "", "vision_feature_select_strategy", strat, &which) < 0)
        return -1;
    c->select_default = which == 0;
    if (get_choice(root, "", "image_aspect_ratio", aspect, &which) < 0)
        return -1;
    c->image_pad = which == 0;
    if (feature_layer(root, &c->vision) < 0 || pad_token(root, text, c) < 0 ||
        get_int(root, "", "image_token_index", 32000, 0, CFG_MAX_VOCAB, &c->image_token_index) < 0 ||
        get_int(root, "", "vocab_size", c->text.vocab, 1, CFG_MAX_VOCAB, &vocab) < 0)
        return -1;
    if (vocab != c->text.vocab)
        return err_set("vocab_size %d disagrees with text_config.vocab_size %d", vocab, c->text.vocab);
    /* transformers embeds the prompt, <image> tokens included, before splicing the features in: the id must
     * have a row (LlavaConfig's bare defaults, 32000 with a 32000-token vocabulary, do not). */
    if (c->image_token_index >= c->text.vocab)
        return err_set("image_token_index %d is outside the vocabulary (%d tokens)", c->image_token_index,
                       c->text.vocab);
    int side = c->vision.image_size / c->vision.patch_size;
    c->patches = side * side;
    return 0;
}

static int config_tree(const struct json *root, struct llava_config *c) {
    const struct json *text, *vision;
    if (root->type != JSON_OBJ)
        return err_set("not a JSON object");
    if (get_section(root, "text_config", &text) < 0 || get_section(root, "vision_config", &vision) < 0)
        return -1;
    if (text_parse(text, &c->text) < 0 || vision_parse(vision, &c->vision) < 0)
        return -1;
    return top_parse(root, text, c);
}

int config_parse(const char *json_text, size_t n, const char *what, struct llava_config *out) {
    memset(out, 0, sizeof *out);
    struct json *root = json_parse(json_text, n);
    int rc = root ? config_tree(root, out) : -1;
    json_free(root);
    if (rc < 0) {
        memset(out, 0, sizeof *out);
        return err_prefix("%s", what);
    }
    return 0;
}

/* ---- writing ------------------------------------------------------------------------------------------- */

/* The shortest decimal that reads back to the same float, so 1e-5f is written "1e-05", not the double
 * 9.999999747378752e-06 (json_write prints doubles in their own shortest form). */
static struct json *json_float(float f) {
    char s[32];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(s, sizeof s, "%.*g", prec, (double)f);
        if (strtof(s, NULL) == f)
            break;
    }
    return json_num(strtod(s, NULL));
}

static struct json *text_json(const struct text_config *t) {
    struct json *o = json_obj();
    json_set(o, "model_type", json_str("llama"));
    json_set(o, "hidden_act", json_str("silu"));
    json_set(o, "hidden_size", json_int(t->hidden));
    json_set(o, "intermediate_size", json_int(t->intermediate));
    json_set(o, "num_hidden_layers", json_int(t->layers));
    json_set(o, "num_attention_heads", json_int(t->heads));
    json_set(o, "num_key_value_heads", json_int(t->kv_heads));
    json_set(o, "vocab_size", json_int(t->vocab));
    json_set(o, "max_position_embeddings", json_int(t->max_positions));
    json_set(o, "rms_norm_eps", json_float(t->eps));
    json_set(o, "rope_theta", json_float(t->rope_theta));
    json_set(o, "tie_word_embeddings", json_bool(false));
    return o;
}

static struct json *vision_json(const struct vision_config *v) {
    struct json *o = json_obj();
    json_set(o, "model_type", json_str("clip_vision_model"));
    json_set(o, "hidden_act", json_str("quick_gelu"));
    json_set(o, "hidden_size", json_int(v->hidden));
    json_set(o, "intermediate_size", json_int(v->intermediate));
    json_set(o, "num_hidden_layers", json_int(v->layers));
    json_set(o, "num_attention_heads", json_int(v->heads));
    json_set(o, "image_size", json_int(v->image_size));
    json_set(o, "patch_size", json_int(v->patch_size));
    json_set(o, "num_channels", json_int(v->channels));
    json_set(o, "layer_norm_eps", json_float(v->eps));
    return o;
}

char *config_write(const struct llava_config *c) {
    struct json *o = json_obj(), *arch = json_arr();
    json_push(arch, json_str("LlavaForConditionalGeneration"));
    json_set(o, "architectures", arch);
    json_set(o, "model_type", json_str("llava"));
    json_set(o, "image_token_index", json_int(c->image_token_index));
    /* what LlavaProcessor expands each <image> into: the patches, plus the class token for "full" */
    json_set(o, "image_seq_length", json_int(c->patches + !c->select_default));
    if (c->pad_token_id >= 0)
        json_set(o, "pad_token_id", json_int(c->pad_token_id));
    json_set(o, "projector_hidden_act", json_str("gelu"));
    json_set(o, "tie_word_embeddings", json_bool(false));
    json_set(o, "vision_feature_layer", json_int(c->vision.feature_layer));
    json_set(o, "vision_feature_select_strategy", json_str(c->select_default ? "default" : "full"));
    if (!c->image_pad)
        json_set(o, "image_aspect_ratio", json_str("square"));
    json_set(o, "text_config", text_json(&c->text));
    json_set(o, "vision_config", vision_json(&c->vision));
    char *s = json_write(o, JSON_PRETTY, NULL);
    json_free(o);
    return s;
}

/* test_engine_config: LLaVA-1.5 13B / 7B and a tiny config.json give the shapes REFERENCE.md section 4
 * states, missing fields take the transformers defaults, config_write reads back identically, and every
 * inconsistency or unsupported feature is refused with one line. */
#include "check.h"
#include "engine/config.h"
#include "util/err.h"

#include <stdio.h>

static char *slurp(const char *name, size_t *n) {
    const char *dir = getenv("PULSE_TEST_DATA");
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir ? dir : "tests/data", name);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    char *buf = calloc(1, 1 << 16);
    *n = fread(buf, 1, (1 << 16) - 1, fp);
    fclose(fp);
    return buf;
}

static int parse_file(const char *name, struct llava_config *c) {
    size_t n = 0;
    char *text = slurp(name, &n);
    if (!text) {
        fprintf(stderr, "cannot read %s\n", name);
        return -1;
    }
    int rc = config_parse(text, n, name, c);
    if (rc < 0)
        fprintf(stderr, "%s\n", err_msg());
    free(text);
    return rc;
}

static int parse_str(const char *json, struct llava_config *c) {
    return config_parse(json, strlen(json), "cfg", c);
}

static int same(const struct llava_config *a, const struct llava_config *b) {
    const struct vision_config *v = &a->vision, *w = &b->vision;
    const struct text_config *t = &a->text, *u = &b->text;
    return v->hidden == w->hidden && v->intermediate == w->intermediate && v->layers == w->layers &&
           v->heads == w->heads && v->image_size == w->image_size && v->patch_size == w->patch_size &&
           v->channels == w->channels && v->eps == w->eps && v->feature_layer == w->feature_layer &&
           v->layers_used == w->layers_used && t->hidden == u->hidden && t->intermediate == u->intermediate &&
           t->layers == u->layers && t->heads == u->heads && t->kv_heads == u->kv_heads &&
           t->vocab == u->vocab && t->max_positions == u->max_positions && t->eps == u->eps &&
           t->rope_theta == u->rope_theta && a->image_token_index == b->image_token_index &&
           a->pad_token_id == b->pad_token_id && a->select_default == b->select_default &&
           a->patches == b->patches && a->image_pad == b->image_pad;
}

/* config_write then config_parse gives the same config, and writing that again gives the same text. */
static void check_round_trip(const struct llava_config *c) {
    char *s = config_write(c);
    struct llava_config back;
    CHECK(s && parse_str(s, &back) == 0);
    CHECK(same(c, &back));
    char *s2 = config_write(&back);
    CHECK_STR(s2, s);
    free(s);
    free(s2);
}

static void check_vit_l_336(const struct vision_config *v) {
    CHECK(v->hidden == 1024 && v->intermediate == 4096 && v->layers == 24 && v->heads == 16);
    CHECK(v->image_size == 336 && v->patch_size == 14 && v->channels == 3 && v->eps == 1e-5f);
    CHECK(v->feature_layer == -2 && v->layers_used == 23);
}

static void test_13b(void) {
    struct llava_config c;
    CHECK(parse_file("llava_config_13b.json", &c) == 0);
    const struct text_config *t = &c.text;
    CHECK(t->hidden == 5120 && t->intermediate == 13824 && t->layers == 40 && t->heads == 40 &&
          t->kv_heads == 40);
    CHECK(t->vocab == 32064 && t->max_positions == 4096 && t->eps == 1e-5f && t->rope_theta == 10000.0f);
    check_vit_l_336(&c.vision);
    CHECK(c.patches == 576 && c.image_token_index == 32000 && c.select_default == 1);
    CHECK(c.pad_token_id == 32001); /* the top level's, not text_config's 0 */
    check_round_trip(&c);
    char *s = config_write(&c);
    CHECK_HAS(s, "\"LlavaForConditionalGeneration\"");
    CHECK_HAS(s, "\"model_type\": \"clip_vision_model\"");
    CHECK_HAS(s, "\"model_type\": \"llama\"");
    CHECK_HAS(s, "\"rms_norm_eps\": 1e-05");
    CHECK_HAS(s, "\"image_seq_length\": 576");
    free(s);
}

static void test_7b(void) {
    struct llava_config c;
    CHECK(parse_file("llava_config_7b.json", &c) == 0);
    const struct text_config *t = &c.text;
    CHECK(t->hidden == 4096 && t->intermediate == 11008 && t->layers == 32 && t->heads == 32 &&
          t->kv_heads == 32);
    CHECK(t->vocab == 32064);
    check_vit_l_336(&c.vision);
    CHECK(c.patches == 576);
    check_round_trip(&c);
}

static void test_tiny(void) {
    struct llava_config c;
    CHECK(parse_file("llava_config_tiny.json", &c) == 0);
    const struct text_config *t = &c.text;
    CHECK(t->hidden == 64 && t->intermediate == 176 && t->layers == 2 && t->heads == 4 && t->kv_heads == 2);
    CHECK(t->vocab == 256 && t->max_positions == 512 && t->eps == 1e-6f && t->rope_theta == 500000.0f);
    const struct vision_config *v = &c.vision;
    CHECK(v->hidden == 32 && v->intermediate == 64 && v->layers == 3 && v->heads == 2);
    CHECK(v->image_size == 32 && v->patch_size == 8 && v->layers_used == 2);
    CHECK(c.patches == 16 && c.image_token_index == 255 && c.pad_token_id == 0);
    check_round_trip(&c);
}

/* Missing fields: LlamaConfig's defaults for the text; for the vision tower LLaVA-1.5's ViT-L/14-336 when
 * vision_config is absent, CLIPVisionConfig's own (ViT-B/32-224) when it is given. */
static void test_defaults(void) {
    struct llava_config c;
    /* LlavaConfig's bare defaults put image_token_index 32000 outside LlamaConfig's 32000-token vocabulary.
     */
    CHECK(parse_str("{}", &c) < 0);
    CHECK_HAS(err_msg(), "image_token_index 32000 is outside the vocabulary (32000 tokens)");
    CHECK(parse_str("{\"text_config\": {\"vocab_size\": 32064}}", &c) == 0);
    const struct text_config *t = &c.text;
    CHECK(t->hidden == 4096 && t->intermediate == 11008 && t->layers == 32 && t->heads == 32 &&
          t->kv_heads == 32);
    CHECK(t->vocab == 32064 && t->max_positions == 2048 && t->eps == 1e-6f && t->rope_theta == 10000.0f);
    check_vit_l_336(&c.vision);
    CHECK(c.image_token_index == 32000 && c.pad_token_id == -1 && c.select_default == 1 && c.patches == 576);
    check_round_trip(&c);

    CHECK(parse_str(
              "{\"vision_config\": {}, \"text_config\": {\"num_key_value_heads\": null, \"pad_token_id\": 7},"
              " \"image_token_index\": 5}",
              &c) == 0);
    const struct vision_config *v = &c.vision;
    CHECK(v->hidden == 768 && v->intermediate == 3072 && v->layers == 12 && v->heads == 12);
    CHECK(v->image_size == 224 && v->patch_size == 32 && v->layers_used == 11 && c.patches == 49);
    CHECK(c.text.kv_heads == 32 && c.pad_token_id == 7 && c.image_token_index == 5);
    check_round_trip(&c);
}

static void test_variants(void) {
    struct llava_config c;
    const char *base =
        "{\"text_config\": {\"hidden_size\": 64, \"num_attention_heads\": 4, \"vocab_size\": 300},"
        " \"vision_config\": {\"num_hidden_layers\": 4, \"image_size\": 30, \"patch_size\": 6},"
        " \"image_token_index\": 299, %s}";
    char buf[1024];
    struct {
        const char *extra;
        int layers_used, select_default;
    } fl[] = {
        {"\"vision_feature_layer\": 0", 0, 1},
        {"\"vision_feature_layer\": 4", 4, 1},
        {"\"vision_feature_layer\": -1", 4, 1},
        {"\"vision_feature_layer\": -5", 0, 1},
        {"\"vision_feature_layer\": 2, \"vision_feature_select_strategy\": \"full\"", 2, 0},
    };
    for (size_t i = 0; i < sizeof fl / sizeof fl[0]; i++) {
        snprintf(buf, sizeof buf, base, fl[i].extra);
        CHECK(parse_str(buf, &c) == 0);
        CHECK(c.vision.layers_used == fl[i].layers_used && c.select_default == fl[i].select_default);
        CHECK(c.patches == 25);
        check_round_trip(&c);
    }
    /* LLaVA's image_aspect_ratio: "pad" (the default) or "square", which survives the round trip. */
    snprintf(buf, sizeof buf, base, "\"image_aspect_ratio\": \"square\"");
    CHECK(parse_str(buf, &c) == 0 && c.image_pad == 0);
    check_round_trip(&c);
    snprintf(buf, sizeof buf, base, "\"image_aspect_ratio\": \"pad\"");
    CHECK(parse_str(buf, &c) == 0 && c.image_pad == 1);
    /* The newer rope_parameters spelling; odd eps values survive the float round trip. */
    CHECK(
        parse_str("{\"text_config\": {\"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 1e6},"
                  " \"rms_norm_eps\": 1.23456789e-7, \"vocab_size\": 32001}, \"vision_config\": "
                  "{\"layer_norm_eps\": 0.1}}",
                  &c) == 0);
    CHECK(c.text.rope_theta == 1e6f && c.text.eps == 1.23456789e-7f && c.vision.eps == 0.1f);
    check_round_trip(&c);
    char *s = config_write(&c);
    CHECK_HAS(s, "\"layer_norm_eps\": 0.1,");
    CHECK_HAS(s, "\"rope_theta\": 1e+06");
    free(s);
}

struct bad {
    const char *json, *want;
};

static const struct bad bad[] = {
    {"[]", "not a JSON object"},
    {"{", "json: line 1"},
    {"{\"text_config\": 3}", "text_config must be an object"},
    {"{\"text_config\": {\"hidden_size\": 100, \"num_attention_heads\": 3}}",
     "text_config.hidden_size 100 is not divisible by num_attention_heads 3"},
    {"{\"text_config\": {\"num_attention_heads\": 32, \"num_key_value_heads\": 5}}",
     "num_attention_heads 32 is not a multiple of num_key_value_heads 5"},
    {"{\"text_config\": {\"num_attention_heads\": 32, \"num_key_value_heads\": 64}}",
     "num_attention_heads 32 is not a multiple of num_key_value_heads 64"},
    {"{\"text_config\": {\"hidden_size\": 12, \"num_attention_heads\": 4}}", "head dimension 3"},
    {"{\"text_config\": {\"head_dim\": 256}}", "text_config.head_dim 256 is not"},
    {"{\"text_config\": {\"hidden_size\": \"4096\"}}", "text_config.hidden_size must be an integer"},
    {"{\"text_config\": {\"hidden_size\": 0}}", "text_config.hidden_size = 0 is out of range"},
    {"{\"text_config\": {\"num_hidden_layers\": -3}}", "text_config.num_hidden_layers = -3 is out of range"},
    {"{\"text_config\": {\"vocab_size\": 1e9}}", "text_config.vocab_size must be an integer"},
    {"{\"text_config\": {\"hidden_act\": \"gelu\"}}",
     "text_config.hidden_act \"gelu\" is not supported (silu)"},
    {"{\"text_config\": {\"model_type\": \"mistral\"}}",
     "text_config.model_type \"mistral\" is not supported"},
    {"{\"text_config\": {\"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}}}",
     "text_config.rope_scaling is not supported"},
    {"{\"text_config\": {\"rope_parameters\": {\"rope_type\": \"llama3\"}}}",
     "text_config.rope_parameters.rope_type \"llama3\" is not supported"},
    {"{\"text_config\": {\"rope_theta\": 10000, \"rope_parameters\": {\"rope_theta\": 500000}}}", "disagree"},
    {"{\"text_config\": {\"rope_theta\": -1}}", "text_config.rope_theta = -1 must be a positive number"},
    {"{\"text_config\": {\"rms_norm_eps\": 0}}", "text_config.rms_norm_eps = 0 must be a positive number"},
    {"{\"text_config\": {\"rms_norm_eps\": 1e-50}}", "text_config.rms_norm_eps = 1e-50 must be a positive"},
    {"{\"text_config\": {\"attention_bias\": true}}", "text_config.attention_bias = true is not supported"},
    {"{\"text_config\": {\"tie_word_embeddings\": true}}", "tie_word_embeddings = true is not supported"},
    {"{\"tie_word_embeddings\": true}",
     "tie_word_embeddings = true is not supported (the lm_head is untied)"},
    {"{\"multimodal_projector_bias\": false}", "multimodal_projector_bias = false is not supported"},
    {"{\"vision_config\": {\"hidden_size\": 100, \"num_attention_heads\": 16}}",
     "vision_config.hidden_size 100 is not divisible by num_attention_heads 16"},
    {"{\"vision_config\": {\"image_size\": 336, \"patch_size\": 15}}",
     "vision_config.image_size 336 is not a multiple of patch_size 15"},
    {"{\"vision_config\": {\"num_channels\": 1}}", "vision_config.num_channels 1 is not supported"},
    {"{\"vision_config\": {\"hidden_act\": \"gelu\"}}", "vision_config.hidden_act \"gelu\" is not supported"},
    {"{\"vision_config\": {\"model_type\": \"siglip_vision_model\"}}", "vision_config.model_type \"siglip"},
    {"{\"vision_feature_layer\": 25}",
     "vision_feature_layer 25 is outside the vision tower (24 layers: -25..24)"},
    {"{\"vision_feature_layer\": -26}", "vision_feature_layer -26 is outside the vision tower"},
    {"{\"vision_feature_layer\": [-2, -5]}", "vision_feature_layer as a list"},
    {"{\"image_aspect_ratio\": \"anyres\"}", "image_aspect_ratio \"anyres\" is not supported (pad, square)"},
    {"{\"vision_feature_select_strategy\": \"cls\"}",
     "vision_feature_select_strategy \"cls\" is not supported (default, full)"},
    {"{\"projector_hidden_act\": \"relu\"}", "projector_hidden_act \"relu\" is not supported (gelu)"},
    {"{\"model_type\": \"llava_next\"}", "model_type \"llava_next\" is not supported (llava)"},
    {"{\"image_token_index\": 32000, \"text_config\": {\"vocab_size\": 32000}}",
     "image_token_index 32000 is outside the vocabulary (32000 tokens)"},
    {"{\"image_token_index\": -200}", "image_token_index = -200 is out of range"},
    {"{\"pad_token_id\": 40000}", "pad_token_id 40000 is outside the vocabulary"},
    {"{\"vocab_size\": 32064}", "vocab_size 32064 disagrees with text_config.vocab_size 32000"},
};

static void test_refusals(void) {
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct llava_config c;
        err_clear();
        CHECK(parse_str(bad[i].json, &c) < 0);
        CHECK_HAS(err_msg(), bad[i].want);
        CHECK_HAS(err_msg(), "cfg: ");
        CHECK(!strchr(err_msg(), '\n'));
        CHECK(c.text.hidden == 0 && c.vision.layers_used == 0);
    }
}

int main(void) {
    test_13b();
    test_7b();
    test_tiny();
    test_defaults();
    test_variants();
    test_refusals();
    return check_done("test_engine_config");
}

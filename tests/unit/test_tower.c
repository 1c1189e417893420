/* test_tower: the `tower` kind's pieces. The heads' loss (engine/tower_heads.h) against central differences,
 * for the features and the heads' own weights, on a batch that mixes scenes and a face; its accuracy counts;
 * the same bits on 1 and 2 threads. The labels as the kind reads them (stages/tower_data.h): objects placed
 * on the patch grid, faces, pixels, and one clear line for each kind of bad label. */
#include "check.h"
#include "imagetar.h"
#include "numcheck.h"
#include "engine/config.h"
#include "engine/mem.h"
#include "engine/ops.h"
#include "engine/pixels.h"
#include "engine/tower_heads.h"
#include "stages/tower_data.h"
#include "util/err.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define C 5
#define PER 4
#define NIMG 3
#define ROWS (NIMG * PER)

static float feats[ROWS * C];
static int32_t tok[ROWS * TOWER_TOKEN_GROUPS], face[NIMG * TOWER_FACE_GROUPS];

/* Images 0 and 2 are scenes (image 0: objects in tokens 1 and 3; image 2: in token 0), image 1 a face. */
static void batch_init(void) {
    for (size_t i = 0; i < ROWS * C; i++)
        feats[i] = (float)sin(1.7 * (double)i + 0.3);
    for (size_t r = 0; r < ROWS * TOWER_TOKEN_GROUPS; r++)
        tok[r] = r / (PER * TOWER_TOKEN_GROUPS) == 1 ? -1 : 0;
    const int32_t objs[3][4] = {
        {1, 3, 4, 2}, {3, 2, 8, 1}, {8, 5, 1, 2}}; /* row, shape+1, colour+1, size+1 */
    for (int k = 0; k < 3; k++)
        for (int g = 0; g < TOWER_TOKEN_GROUPS; g++)
            tok[(objs[k][0]) * TOWER_TOKEN_GROUPS + g] = objs[k][1 + g];
    for (size_t f = 0; f < NIMG * TOWER_FACE_GROUPS; f++)
        face[f] = f / TOWER_FACE_GROUPS == 1 ? (int32_t)(f % TOWER_FACE_GROUPS) % 2 : -1;
}

static float loss_at(struct tower_heads *h, const struct ops *ops, float *dfeats, long *hits, long *counts) {
    struct tower_batch b = {tok, face, NIMG};
    ops->zero(h->grads, h->n);
    return tower_heads_step(h, ops, feats, &b, dfeats, hits, counts);
}

/* Central differences of the loss in x[i] (a feature or a head weight). */
static double numeric(struct tower_heads *h, const struct ops *ops, float *x, float *scratch) {
    long hits[TOWER_GROUPS], counts[TOWER_GROUPS];
    float keep = *x, eps = 2e-2f;
    *x = keep + eps;
    double up = loss_at(h, ops, scratch, hits, counts);
    *x = keep - eps;
    double down = loss_at(h, ops, scratch, hits, counts);
    *x = keep;
    return (up - down) / (2.0 * (double)eps);
}

static void check_gradients(const struct ops *ops) {
    struct tower_heads h;
    tower_heads_init(&h, C, PER, 7);
    for (size_t i = 0; i < h.n; i++) /* biases away from 0, so that their gradients are checked too */
        h.params[i] += 0.05f * (float)cos((double)i);
    float *dfeats = mem_alloc(ROWS * C, sizeof(float)), *scratch = mem_alloc(ROWS * C, sizeof(float));
    float *hgrad = malloc(h.n * sizeof(float)), num_f[ROWS * C], *num_h = malloc(h.n * sizeof(float));
    long hits[TOWER_GROUPS], counts[TOWER_GROUPS];
    float loss = loss_at(&h, ops, dfeats, hits, counts);
    memcpy(hgrad, h.grads, h.n * sizeof(float));
    CHECK(loss > 0 && isfinite(loss));
    for (size_t i = 0; i < ROWS * C; i++)
        num_f[i] = (float)numeric(&h, ops, &feats[i], scratch);
    for (size_t i = 0; i < h.n; i++)
        num_h[i] = (float)numeric(&h, ops, &h.params[i], scratch);
    double ef = check_rel_err(dfeats, num_f, ROWS * C, NULL), eh = check_rel_err(hgrad, num_h, h.n, NULL);
    printf("tower heads: loss %.4f, d feats rel err %.2e, d heads rel err %.2e\n", (double)loss, ef, eh);
    /* fp32 central differences are good to a few 1e-3 here (a wrong scale or row would be O(1)) */
    CHECK(ef < 5e-3 && eh < 5e-3);
    /* scored rows: the 3 object tokens per token group, the one face per face group */
    for (int g = 0; g < TOWER_GROUPS; g++)
        CHECK(counts[g] == (g < TOWER_TOKEN_GROUPS ? 3 : 1) && hits[g] >= 0 && hits[g] <= counts[g]);
    free(hgrad);
    free(num_h);
    mem_free(dfeats);
    mem_free(scratch);
    tower_heads_free(&h);
}

/* 1 and 2 threads: the same loss and gradients, bit for bit. */
static void check_threads(void) {
    struct tower_heads a, b;
    tower_heads_init(&a, C, PER, 3);
    tower_heads_init(&b, C, PER, 3);
    float *da = mem_alloc(ROWS * C, sizeof(float)), *db = mem_alloc(ROWS * C, sizeof(float));
    long hits[TOWER_GROUPS], counts[TOWER_GROUPS];
    float la = loss_at(&a, ops_cpu(1), da, hits, counts), lb = loss_at(&b, ops_cpu(2), db, hits, counts);
    CHECK(memcmp(&la, &lb, sizeof la) == 0);
    CHECK(memcmp(da, db, ROWS * C * sizeof(float)) == 0);
    CHECK(memcmp(a.grads, b.grads, a.n * sizeof(float)) == 0);
    mem_free(da);
    mem_free(db);
    tower_heads_free(&a);
    tower_heads_free(&b);
}

/* ---- labels ---------------------------------------------------------------------------------------- */

static uint8_t pattern(int i, int k) {
    return (uint8_t)(i * 7 + k * 51);
}

static struct ds_images *images;
static struct llava_config cfg;

static void labels_init(void) {
    static const char *const ids[] = {"g00001", "s00000", "r0000-p0"};
    static const int side[] = {16, 16, 16};
    size_t len;
    void *tar = imagetar_make(ids, side, side, 3, pattern, &len);
    CHECK(ds_images_open(tar, len, "images", &images) == 0);
    /* images keeps pointers into tar: it lives as long as the test */
    static const char text[] =
        "{\"model_type\": \"llava\", \"image_token_index\": 1, \"pad_token_id\": 0,"
        " \"vision_feature_layer\": -1, \"vision_feature_select_strategy\": \"default\","
        " \"text_config\": {\"model_type\": \"llama\", \"hidden_size\": 8, \"intermediate_size\": 8,"
        " \"num_hidden_layers\": 1, \"num_attention_heads\": 1, \"num_key_value_heads\": 1, \"vocab_size\": "
        "2,"
        " \"max_position_embeddings\": 8, \"rms_norm_eps\": 1e-05}, \"vision_config\": {\"model_type\":"
        " \"clip_vision_model\", \"hidden_size\": 8, \"intermediate_size\": 8, \"num_hidden_layers\": 1,"
        " \"num_attention_heads\": 1, \"image_size\": 16, \"patch_size\": 8, \"num_channels\": 3}}";
    CHECK(config_parse(text, strlen(text), "config", &cfg) == 0);
}

static void check_labels_read(void) {
    const char *text = "{\"image\":\"g00001\",\"objects\":[[4,0,0,0.1,0.2],[1,7,1,0.9,0.5001]]}\n"
                       "{\"face\":[3,7,7,6,4,2,3,2,2,1,7],\"image\":\"s00000\"}\n";
    struct tower_data d;
    CHECK(tower_data_load(&d, text, strlen(text), images, &cfg) == 0);
    CHECK(d.n == 2 && d.per == 4 && d.scenes == 1 && d.faces == 1);
    /* scene: the cross (shape 4) in token 0, the black large square in token 3 (row 1, column 1) */
    const int32_t want[2][4 * 3] = {{5, 1, 1, 0, 0, 0, 0, 0, 0, 2, 8, 2},
                                    {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1}};
    CHECK(memcmp(d.tok, want, sizeof want) == 0);
    const int32_t wface[2][11] = {{-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1},
                                  {3, 7, 7, 6, 4, 2, 3, 2, 2, 1, 7}};
    CHECK(memcmp(d.face, wface, sizeof wface) == 0);
    struct image im = {0};
    float px[3 * 16 * 16];
    CHECK(ds_images_decode(images, "s00000", &im) == 0 && pixels_from_image(&im, 16, "s", px) == 0);
    CHECK(memcmp(d.pixels + d.image_floats, px, sizeof px) == 0);
    image_free(&im);
    tower_data_free(&d);
}

static void refused(const char *text, const char *want) {
    struct tower_data d;
    err_clear();
    CHECK(tower_data_load(&d, text, strlen(text), images, &cfg) != 0);
    CHECK(strstr(err_msg(), want) != NULL);
    if (!strstr(err_msg(), want))
        fprintf(stderr, "  got: %s\n  wanted: %s\n", err_msg(), want);
    CHECK(strchr(err_msg(), '\n') == NULL);
}

static void check_labels_refused(void) {
    refused("", "no labelled image");
    refused("{}\n{}\n{}\n{}\n", "labels: 4 lines for 3 images");
    refused("{\"image\":\"g00001\",\"objects\":[[4,0,0,0.1,0.2]]}\n{\"image\":\"nope\",\"face\":[0,0,0,0,0,0,"
            "0,0,0,0,0]}",
            "labels line 2");
    refused("{\"image\":\"g00001\",\"objects\":[[5,0,0,0.1,0.2]]}", "object 0 is not");
    refused("{\"image\":\"g00001\",\"objects\":[[4,0,0,1.5,0.2]]}", "object 0 is not");
    refused("{\"image\":\"g00001\",\"objects\":[]}", "non-empty array");
    refused("{\"image\":\"s00000\",\"face\":[0,0,0,0,0,3,0,0,0,0,0]}",
            "face feature 5 (glasses) must be 0-2");
    refused("{\"image\":\"s00000\",\"face\":[0,0]}", "array of 11 features");
    refused("{\"image\":\"s00000\",\"face\":[0,0,0,0,0,0,0,0,0,0,0],\"objects\":[[0,0,0,0,0]]}", "one of");
    refused("{\"image\":\"s00000\"", "labels line 1");
}

int main(void) {
    batch_init();
    check_gradients(ops_cpu(1));
    check_threads();
    labels_init();
    check_labels_read();
    check_labels_refused();
    return check_done("test_tower");
}

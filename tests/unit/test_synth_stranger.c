/* Tests PULSE-Synth's strangers: every coarse feature value has its own words in a description, and
 * strangers_make appends one described example and one photo per stranger, both re-derivable from their keys
 * (synth_key(seed, SYNTH_STREAM_STRANGER, 2 s) for the identity, 2 s + 1 for the photo). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "engine/dataset.h"
#include "engine/image.h"
#include "stages/synth.h"
#include "util/err.h"

#define SIDE 16

/* Changing one coarse feature to any other value changes the description: a model that reads them can tell
 * every value of every feature apart (a bald head's colour aside: test_bald). */
static void test_describe(void) {
    static const int counts[] = {N_SHAPE, N_SKIN, N_HAIR_COLOUR, N_HAIR_STYLE, N_GLASSES, N_BEARD, N_GARMENT};
    int same = 0, checked = 0;
    for (int feature = 0; feature < 7; feature++) {
        char seen[8][160];
        for (int v = 0; v < counts[feature]; v++) {
            struct face f = {.hair_style = HAIR_LONG}; /* colour shows unless bald */
            uint8_t *fields[] = {&f.shape,   &f.skin,  &f.hair_colour, &f.hair_style,
                                 &f.glasses, &f.beard, &f.garment};
            *fields[feature] = (uint8_t)v;
            stranger_describe(&f, seen[v], sizeof seen[v]);
            CHECK(seen[v][0] == 'A' && seen[v][strlen(seen[v]) - 1] == '.');
            for (int u = 0; u < v; u++)
                same += strcmp(seen[u], seen[v]) == 0;
            checked++;
        }
    }
    CHECK(same == 0 &&
          checked == N_SHAPE + N_SKIN + N_HAIR_COLOUR + N_HAIR_STYLE + N_GLASSES + N_BEARD + N_GARMENT);
    char d[160];
    stranger_describe(&(struct face){.shape = 1, .skin = 5, .hair_colour = 4, .glasses = 1, .beard = 2}, d,
                      sizeof d);
    CHECK_STR(d, "An oval face, tan skin, short blond hair, round glasses, a full beard and a navy shirt.");
}

static void check_stranger(const struct ds_example *e, struct ds_images *images, uint64_t seed, int s) {
    char id[16], want[160];
    snprintf(id, sizeof id, "s%05d", s);
    struct face f;
    struct photo ph;
    face_identity(synth_key(seed, SYNTH_STREAM_STRANGER, 2 * (uint64_t)s), &f);
    face_photo(synth_key(seed, SYNTH_STREAM_STRANGER, 2 * (uint64_t)s + 1), &ph);
    stranger_describe(&f, want, sizeof want);
    CHECK_STR(e->image, id);
    CHECK_STR(e->answer, want);
    CHECK_STR(e->source, "stranger");
    CHECK(strstr(e->prompt, "<image>") && !e->person);
    const void *png;
    size_t n;
    struct image got = {0}, drawn = {0};
    CHECK(ds_images_get(images, id, &png, &n) == 0 && image_decode(png, n, id, &got) == 0);
    CHECK(image_alloc(&drawn, SIDE, SIDE) == 0);
    memset(drawn.rgb, 0, 3 * SIDE * SIDE);
    face_draw(&f, &ph, &drawn);
    CHECK(got.w == SIDE && got.h == SIDE && memcmp(got.rgb, drawn.rgb, 3 * SIDE * SIDE) == 0);
    image_free(&got);
    image_free(&drawn);
}

/* Five strangers: five examples and five photos, in order, and nothing else; none at all by default. */
static void test_make(void) {
    struct synth_params p = {.seed = 7, .image_size = SIDE, .strangers = 5, .described_strangers = 99999};
    struct synth_world w = {.images = ds_tar_new()};
    void *tar = NULL;
    size_t ntar = 0;
    struct ds_examples ex = {0};
    struct ds_images *images = NULL;
    CHECK(strangers_make(&p, &w) == 0 && ds_tar_finish(w.images, &tar, &ntar) == 0);
    CHECK(ds_read_examples(w.pretrain.data, w.pretrain.len, "pretrain", &ex) == 0);
    CHECK(ds_images_open(tar, ntar, "images", &images) == 0);
    CHECK(ex.n == 5 && images && ds_images_count(images) == 5);
    for (size_t s = 0; s < ex.n && images; s++)
        check_stranger(&ex.v[s], images, p.seed, (int)s);
    p.strangers = 0;
    struct synth_world none = {.images = ds_tar_new()};
    void *none_tar = NULL;
    size_t none_n = 0;
    struct ds_images *no_images = NULL;
    CHECK(strangers_make(&p, &none) == 0 && none.pretrain.len == 0);
    CHECK(ds_tar_finish(none.images, &none_tar, &none_n) == 0 &&
          ds_images_open(none_tar, none_n, "images", &no_images) == 0);
    CHECK(no_images && ds_images_count(no_images) == 0);
    ds_images_free(no_images);
    free(none_tar);
    ds_images_free(images);
    ds_examples_free(&ex);
    buf_free(&w.pretrain);
    buf_free(&w.labels);
    free(tar);
}

/* Two of five described: the first two examples, and the same five photos as when all five are. */
static void test_described(void) {
    struct synth_params p = {.seed = 7, .image_size = SIDE, .strangers = 5, .described_strangers = 99999};
    struct synth_world all = {.images = ds_tar_new()}, two = {.images = ds_tar_new()};
    void *all_tar = NULL, *two_tar = NULL;
    size_t all_n = 0, two_n = 0;
    struct ds_examples ex = {0};
    CHECK(strangers_make(&p, &all) == 0 && ds_tar_finish(all.images, &all_tar, &all_n) == 0);
    p.described_strangers = 2;
    CHECK(strangers_make(&p, &two) == 0 && ds_tar_finish(two.images, &two_tar, &two_n) == 0);
    CHECK(two_n == all_n && memcmp(two_tar, all_tar, all_n) == 0);
    CHECK(two.labels.len == all.labels.len && memcmp(two.labels.data, all.labels.data, all.labels.len) == 0);
    CHECK(ds_read_examples(two.pretrain.data, two.pretrain.len, "pretrain", &ex) == 0 && ex.n == 2);
    CHECK(two.pretrain.len < all.pretrain.len &&
          memcmp(two.pretrain.data, all.pretrain.data, two.pretrain.len) == 0);
    ds_examples_free(&ex);
    buf_free(&all.pretrain);
    buf_free(&two.pretrain);
    buf_free(&all.labels);
    buf_free(&two.labels);
    free(all_tar);
    free(two_tar);
}

int main(void) {
    test_describe();
    test_make();
    test_described();
    return check_done("test_synth_stranger");
}

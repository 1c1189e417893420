/* Tests PULSE-Synth's portraits: identities and photos are pure functions of their keys, people stay
 * recognisable across photos (a nearest-neighbour classifier finds them), and the contact sheet re-derives
 * the people module's photos. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "engine/image.h"
#include "engine/rng.h"
#include "stages/synth.h"
#include "util/err.h"

#define PEOPLE 50
#define TRAIN 4
#define HELD 2
#define SIDE 32

static void draw(const struct face *f, uint64_t photo_key, int held, int side, struct image *im) {
    struct photo p;
    face_photo(photo_key, held, &p);
    image_alloc(im, side, side);
    face_draw(f, &p, im);
}

static int same_pixels(const struct image *a, const struct image *b) {
    return a->w == b->w && a->h == b->h && memcmp(a->rgb, b->rgb, 3 * (size_t)a->w * (size_t)a->h) == 0;
}

static void test_same_and_determinism(void) {
    struct face a, b, c;
    face_identity(rng_key(1, 7), &a);
    face_identity(rng_key(1, 7), &b);
    CHECK(face_same(&a, &b));
    static const size_t fields[] = {offsetof(struct face, shape),       offsetof(struct face, skin),
                                    offsetof(struct face, hair_colour), offsetof(struct face, hair_style),
                                    offsetof(struct face, eye_colour),  offsetof(struct face, glasses),
                                    offsetof(struct face, beard),       offsetof(struct face, brows),
                                    offsetof(struct face, mouth),       offsetof(struct face, ears)};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        c = b;
        ((uint8_t *)&c)[fields[i]] ^= 1;
        CHECK(!face_same(&a, &c));
    }
    struct image x, y, z;
    draw(&a, rng_key(2, 1), 0, SIDE, &x);
    draw(&b, rng_key(2, 1), 0, SIDE, &y);
    draw(&a, rng_key(2, 2), 0, SIDE, &z);
    CHECK(same_pixels(&x, &y));
    CHECK(!same_pixels(&x, &z)); /* two photos of one person differ */
    image_free(&x);
    image_free(&y);
    image_free(&z);
    int distinct = 0;
    for (int i = 0; i < PEOPLE; i++) {
        face_identity(rng_key(3, (uint64_t)i), &c);
        distinct += !face_same(&a, &c);
    }
    CHECK(distinct >= PEOPLE - 1);
}

static void test_photo_ranges(void) {
    float max_off[2] = {0, 0}, max_noise[2] = {0, 0};
    int bad = 0;
    for (int i = 0; i < 500; i++) {
        for (int held = 0; held < 2; held++) {
            struct photo p;
            face_photo(rng_key(4, (uint64_t)i), held, &p);
            float off = held ? 0.12f : 0.08f, tilt = held ? 0.25f : 0.15f;
            bad += p.dx < -off || p.dx > off || p.dy < -off || p.dy > off;
            bad += held ? p.scale < 0.8f || p.scale > 1.15f : p.scale < 0.85f || p.scale > 1.1f;
            bad += p.tilt < -tilt || p.tilt > tilt || p.light_dir < -1 || p.light_dir > 1;
            bad += held ? p.light < 0.7f || p.light > 1.3f : p.light < 0.8f || p.light > 1.2f;
            bad += p.noise < 2 || p.noise > (held ? 10 : 6);
            max_off[held] = p.dx > max_off[held] ? p.dx : max_off[held];
            max_noise[held] = p.noise > max_noise[held] ? p.noise : max_noise[held];
        }
    }
    CHECK(bad == 0);
    CHECK(max_off[1] > 0.1f && max_noise[1] > 8); /* held-out photos do vary more */
}

/* Noise comes from noise_key alone: without noise the key does not matter; with it, it does. */
static void test_noise(void) {
    struct face f;
    face_identity(rng_key(5, 1), &f);
    struct photo p;
    face_photo(rng_key(5, 2), 0, &p);
    struct image a, b;
    image_alloc(&a, SIDE, SIDE);
    image_alloc(&b, SIDE, SIDE);
    p.noise = 0;
    face_draw(&f, &p, &a);
    p.noise_key ^= 1;
    face_draw(&f, &p, &b);
    CHECK(same_pixels(&a, &b));
    p.noise = 5;
    face_draw(&f, &p, &b);
    CHECK(!same_pixels(&a, &b));
    /* a plain photo: the corner is the background, the centre is not */
    p = (struct photo){.scale = 1, .light = 1, .bg = {10, 200, 30}};
    face_draw(&f, &p, &a);
    CHECK(a.rgb[0] == 10 && a.rgb[1] == 200 && a.rgb[2] == 30);
    const uint8_t *mid = a.rgb + 3 * (SIDE / 2 * SIDE + SIDE / 2);
    CHECK(!(mid[0] == 10 && mid[1] == 200 && mid[2] == 30));
    image_free(&a);
    image_free(&b);
}

/* A 2x2-averaged (16x16 for 32x32 photos) image, minus its mean, over its mean absolute deviation: overall
 * brightness and contrast (the photo's light) do not decide. Returns the length. */
static size_t features(const struct image *im, float *out) {
    size_t n = 0, row = 3 * (size_t)im->w;
    for (int y = 0; y + 1 < im->h; y += 2)
        for (int x = 0; x + 1 < im->w; x += 2)
            for (int c = 0; c < 3; c++) {
                const uint8_t *p = im->rgb + 3 * ((size_t)y * (size_t)im->w + (size_t)x) + c;
                out[n++] = (float)(p[0] + p[3] + p[row] + p[row + 3]) / 4;
            }
    float mean = 0, dev = 0;
    for (size_t i = 0; i < n; i++)
        mean += out[i];
    mean /= (float)n;
    for (size_t i = 0; i < n; i++)
        dev += out[i] > mean ? out[i] - mean : mean - out[i];
    dev = dev / (float)n + 1e-6f;
    for (size_t i = 0; i < n; i++)
        out[i] = (out[i] - mean) / dev;
    return n;
}

static float dist2(const float *a, const float *b, size_t n) {
    float d = 0;
    for (size_t i = 0; i < n; i++)
        d += (a[i] - b[i]) * (a[i] - b[i]);
    return d;
}

/* 1-nearest-neighbour over the training photos of PEOPLE identities: the fraction of held-out photos it puts
 * with the right person (chance: 1 / PEOPLE). */
static double recognition_accuracy(int side) {
    size_t stride = 3 * (size_t)side * (size_t)side, dim = 0;
    float *train = malloc(sizeof(float) * stride * PEOPLE * TRAIN), *q = malloc(sizeof(float) * stride);
    struct face faces[PEOPLE];
    struct image im;
    for (int i = 0; i < PEOPLE; i++) {
        face_identity(rng_key(6, (uint64_t)i), &faces[i]);
        for (int k = 0; k < TRAIN; k++) {
            draw(&faces[i], rng_key(7, (uint64_t)(i * 64 + k)), 0, side, &im);
            dim = features(&im, train + stride * (size_t)(i * TRAIN + k));
            image_free(&im);
        }
    }
    int right = 0;
    for (int i = 0; i < PEOPLE; i++) {
        for (int k = 0; k < HELD; k++) {
            draw(&faces[i], rng_key(7, (uint64_t)(i * 64 + 32 + k)), 1, side, &im);
            features(&im, q);
            image_free(&im);
            int best = -1;
            float bd = 0;
            for (int j = 0; j < PEOPLE * TRAIN; j++) {
                float d = dist2(q, train + stride * (size_t)j, dim);
                if (best < 0 || d < bd)
                    best = j, bd = d;
            }
            right += best / TRAIN == i;
        }
    }
    free(train);
    free(q);
    return (double)right / (PEOPLE * HELD);
}

static void test_recognisable(void) {
    double acc = recognition_accuracy(SIDE);
    printf("nearest-neighbour accuracy on held-out photos at %dx%d: %.1f%% (chance %.1f%%)\n", SIDE, SIDE,
           100 * acc, 100.0 / PEOPLE);
    CHECK(acc > 0.30);
}

/* The same face drawn at 128: a plain photo puts the head in the middle and fills most of the picture. */
static void test_large(void) {
    struct face f;
    face_identity(rng_key(8, 3), &f);
    struct photo p = {.scale = 1, .light = 1, .bg = {0, 0, 255}};
    struct image im;
    image_alloc(&im, 128, 128);
    face_draw(&f, &p, &im);
    int bg = 0;
    for (int i = 0; i < 128 * 128; i++)
        bg += im.rgb[3 * i] == 0 && im.rgb[3 * i + 1] == 0 && im.rgb[3 * i + 2] == 255;
    CHECK(bg > 128 * 128 / 5 && bg < 128 * 128 * 4 / 5);
    image_free(&im);
}

static struct synth_world world_of(int n) {
    struct synth_world w = {0};
    w.nfaces = (size_t)n;
    w.faces = calloc((size_t)n, sizeof *w.faces);
    for (int i = 0; i < n; i++)
        face_identity(rng_key(9, (uint64_t)i), &w.faces[i]);
    return w;
}

/* The sheet decodes, has the documented size, and cell (row, col) is the people module's photo. */
static void test_contact_sheet(void) {
    struct synth_params p = {.seed = 42, .image_size = SIDE, .photos = TRAIN, .test_photos = HELD};
    struct synth_world w = world_of(5);
    void *png = NULL;
    size_t n = 0;
    CHECK(face_contact_sheet(&p, &w, 3, &png, &n) == 0);
    struct image sheet = {0};
    CHECK(image_decode(png, n, "sheet", &sheet) == 0);
    int cell = SIDE + 2;
    CHECK(sheet.w == 4 * (2 + 6 * cell) && sheet.h == 4 * (2 + 3 * cell));
    int rows[] = {1, 2}, cols[] = {TRAIN - 1, TRAIN + 1}, index[] = {TRAIN - 1, 32 + 1};
    for (int t = 0; t < 2 && sheet.rgb; t++) {
        struct image want;
        uint64_t key =
            rng_key(42, SYNTH_STREAM_PHOTO * 1000003ULL + (uint64_t)rows[t] * 64 + (uint64_t)index[t]);
        draw(&w.faces[rows[t]], key, cols[t] >= TRAIN, SIDE, &want);
        int diff = 0;
        for (int y = 0; y < SIDE; y++) {
            for (int x = 0; x < SIDE; x++) {
                int sx = 4 * (2 + cols[t] * cell + x) + 3, sy = 4 * (2 + rows[t] * cell + y) + 1;
                diff += memcmp(sheet.rgb + 3 * ((size_t)sy * sheet.w + sx), want.rgb + 3 * (y * SIDE + x),
                               3) != 0;
            }
        }
        CHECK(diff == 0);
        image_free(&want);
    }
    image_free(&sheet);
    free(png);
    png = NULL;
    p.photos = 33;
    CHECK(face_contact_sheet(&p, &w, 3, &png, &n) == -1);
    CHECK_HAS(err_msg(), "contact sheet: photos");
    p.photos = TRAIN;
    CHECK(face_contact_sheet(&p, &w, 0, &png, &n) == -1);
    CHECK_HAS(err_msg(), "contact sheet");
    CHECK(png == NULL);
    free(w.faces);
}

int main(void) {
    test_same_and_determinism();
    test_photo_ranges();
    test_noise();
    test_recognisable();
    test_large();
    test_contact_sheet();
    return check_done("test_synth_face");
}

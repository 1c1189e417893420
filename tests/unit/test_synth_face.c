/* Tests PULSE-Synth's portraits: identities and photos are pure functions of their keys, face_distance counts
 * the coarse features, people stay recognisable across photos (a nearest-neighbour classifier finds them),
 * and the contact sheet re-derives the people module's photos and stays within the image limits. */
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
#define TRAIN 6
#define HELD 2
#define SIDE 32

static void draw(const struct face *f, uint64_t photo_key, int side, struct image *im) {
    struct photo p;
    face_photo(photo_key, &p);
    image_alloc(im, side, side);
    face_draw(f, &p, im);
}

static int same_pixels(const struct image *a, const struct image *b) {
    return a->w == b->w && a->h == b->h && memcmp(a->rgb, b->rgb, 3 * (size_t)a->w * (size_t)a->h) == 0;
}

static int same_face(const struct face *a, const struct face *b) {
    return memcmp(a, b, sizeof *a) == 0;
}

static void test_determinism(void) {
    struct face a, b, c;
    face_identity(rng_key(1, 7), &a);
    face_identity(rng_key(1, 7), &b);
    CHECK(same_face(&a, &b));
    struct image x, y, z;
    draw(&a, rng_key(2, 1), SIDE, &x);
    draw(&b, rng_key(2, 1), SIDE, &y);
    draw(&a, rng_key(2, 2), SIDE, &z);
    CHECK(same_pixels(&x, &y));
    CHECK(!same_pixels(&x, &z)); /* two photos of one person differ */
    image_free(&x);
    image_free(&y);
    image_free(&z);
    int distinct = 0, garments[8] = {0}, ngarments = 0;
    for (int i = 0; i < PEOPLE; i++) {
        face_identity(rng_key(3, (uint64_t)i), &c);
        distinct += !same_face(&a, &c);
        CHECK(c.garment < 8);
        ngarments += !garments[c.garment % 8]++;
    }
    CHECK(distinct >= PEOPLE - 1);
    CHECK(ngarments >= 6); /* the clothes' colour is drawn, not fixed */
}

/* Each coarse feature adds one to the distance, the fine ones nothing; it is symmetric and 0 to itself. */
static void test_distance(void) {
    static const size_t coarse[] = {offsetof(struct face, shape),       offsetof(struct face, skin),
                                    offsetof(struct face, hair_colour), offsetof(struct face, hair_style),
                                    offsetof(struct face, glasses),     offsetof(struct face, beard),
                                    offsetof(struct face, garment)};
    static const size_t fine[] = {offsetof(struct face, eye_colour), offsetof(struct face, brows),
                                  offsetof(struct face, mouth), offsetof(struct face, ears)};
    struct face a, b;
    face_identity(rng_key(1, 8), &a);
    CHECK(face_distance(&a, &a) == 0);
    b = a;
    for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++)
        ((uint8_t *)&b)[fine[i]] ^= 1;
    CHECK(face_distance(&a, &b) == 0);
    for (size_t i = 0; i < sizeof coarse / sizeof coarse[0]; i++) {
        ((uint8_t *)&b)[coarse[i]] ^= 1;
        CHECK(face_distance(&a, &b) == (int)i + 1 && face_distance(&b, &a) == (int)i + 1);
    }
}

/* Held-out photos come from the training photos' ranges, by other keys. */
static void test_photo_ranges(void) {
    float lo_off = 1, hi_off = -1, hi_noise = 0;
    int bad = 0;
    for (int i = 0; i < 500; i++) {
        struct photo p;
        face_photo(rng_key(4, (uint64_t)i), &p);
        bad += p.dx < -0.08f || p.dx > 0.08f || p.dy < -0.08f || p.dy > 0.08f;
        bad += p.scale < 0.85f || p.scale > 1.1f || p.tilt < -0.15f || p.tilt > 0.15f;
        bad += p.light < 0.8f || p.light > 1.2f || p.light_dir < -0.5f || p.light_dir > 0.5f;
        bad += p.noise < 2 || p.noise > 6;
        lo_off = p.dx < lo_off ? p.dx : lo_off;
        hi_off = p.dx > hi_off ? p.dx : hi_off;
        hi_noise = p.noise > hi_noise ? p.noise : hi_noise;
    }
    CHECK(bad == 0);
    CHECK(lo_off < -0.07f && hi_off > 0.07f && hi_noise > 5.5f); /* and they use the ranges */
}

/* Noise comes from noise_key alone: without noise the key does not matter; with it, it does. */
static void test_noise(void) {
    struct face f;
    face_identity(rng_key(5, 1), &f);
    struct photo p;
    face_photo(rng_key(5, 2), &p);
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

/* Identities as the world draws them: each at least SYNTH_FACE_MIN_DISTANCE from every earlier one. */
static void distinct_faces(struct face *faces, int n) {
    for (int i = 0; i < n; i++) {
        int clash = 1;
        for (uint64_t t = 0; clash; t++) {
            face_identity(rng_u64(rng_key(6, (uint64_t)i), t), &faces[i]);
            clash = 0;
            for (int j = 0; j < i; j++)
                clash |= face_distance(&faces[i], &faces[j]) < SYNTH_FACE_MIN_DISTANCE;
        }
    }
}

/* 1-nearest-neighbour over the training photos of PEOPLE identities: the fraction of held-out photos it puts
 * with the right person (chance: 1 / PEOPLE). */
static double recognition_accuracy(int side) {
    size_t stride = 3 * (size_t)side * (size_t)side, dim = 0;
    float *train = malloc(sizeof(float) * stride * PEOPLE * TRAIN), *q = malloc(sizeof(float) * stride);
    struct face faces[PEOPLE];
    struct image im;
    distinct_faces(faces, PEOPLE);
    for (int i = 0; i < PEOPLE; i++) {
        for (int k = 0; k < TRAIN; k++) {
            draw(&faces[i], rng_key(7, (uint64_t)(i * 64 + k)), side, &im);
            dim = features(&im, train + stride * (size_t)(i * TRAIN + k));
            image_free(&im);
        }
    }
    int right = 0;
    for (int i = 0; i < PEOPLE; i++) {
        for (int k = 0; k < HELD; k++) {
            draw(&faces[i], rng_key(7, (uint64_t)(i * 64 + 32 + k)), side, &im);
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

/* The sheet decodes, has the documented size, and cell (row, col) is the people module's photo. Row 0 is a
 * real person with one photo more than the fictitious rows 1 and 2, whose extra cell stays background. */
static void test_contact_sheet(void) {
    struct synth_params p = {.seed = 42,
                             .real = 1,
                             .image_size = SIDE,
                             .real_photos = TRAIN + 1,
                             .fictitious_photos = TRAIN,
                             .test_photos = HELD};
    struct synth_world w = world_of(5);
    void *png = NULL;
    size_t n = 0;
    CHECK(face_contact_sheet(&p, &w, 3, &png, &n) == 0);
    struct image sheet = {0};
    CHECK(image_decode(png, n, "sheet", &sheet) == 0);
    int cell = SIDE + 2;
    CHECK(sheet.w == 4 * (2 + (TRAIN + 1 + HELD) * cell) && sheet.h == 4 * (2 + 3 * cell));
    int rows[] = {1, 2, 0}, cols[] = {TRAIN - 1, TRAIN + 2, TRAIN}, index[] = {TRAIN - 1, 32 + 1, TRAIN};
    for (int t = 0; t < 3 && sheet.rgb; t++) {
        struct image want;
        uint64_t key =
            rng_key(42, SYNTH_STREAM_PHOTO * 1000003ULL + (uint64_t)rows[t] * 64 + (uint64_t)index[t]);
        draw(&w.faces[rows[t]], key, SIDE, &want);
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
    int background = 0; /* row 1's cell TRAIN: a fictitious person has no photo TRAIN */
    for (int y = 0; y < 4 * SIDE && sheet.rgb; y++)
        for (int x = 0; x < 4 * SIDE; x++) {
            const uint8_t *px =
                sheet.rgb + 3 * ((size_t)(4 * (2 + cell) + y) * sheet.w + 4 * (2 + TRAIN * cell) + x);
            background += px[0] == 40 && px[1] == 40 && px[2] == 40;
        }
    CHECK(background == 16 * SIDE * SIDE);
    image_free(&sheet);
    free(png);
    free(w.faces);
}

static int layout_fits(const struct sheet_layout *l) {
    return l->w <= 16384 && l->h <= 16384 && (long long)l->w * l->h <= 64LL * 1024 * 1024;
}

/* Every corner of the kind's parameter ranges gives a sheet within the image limits, of the size its grid
 * implies, giving up only what it must: enlargement first, then rows. */
static void test_sheet_limits(void) {
    static const int sides[] = {16, 17, 31, 32, 33, 63, 64, 65, 100, 128, 129, 200, 255, 256};
    static const int counts[] = {1, 2, 15, 31}, people[] = {1, 2, 16, 100, 255, 256};
    int bad = 0, checked = 0;
    for (size_t a = 0; a < sizeof sides / sizeof sides[0]; a++)
        for (size_t b = 0; b < 16; b++)
            for (size_t c = 0; c < sizeof people / sizeof people[0]; c++) {
                struct synth_params p = {.image_size = sides[a],
                                         .real_photos = counts[b % 4],
                                         .fictitious_photos = counts[(b + 1) % 4],
                                         .test_photos = counts[b / 4]};
                struct sheet_layout l, more;
                face_sheet_layout(&p, (size_t)people[c], &l);
                int cell = sides[a] + 2, want_zoom = 128 / sides[a] > 4   ? 4
                                                     : 128 / sides[a] < 1 ? 1
                                                                          : 128 / sides[a];
                bad +=
                    !layout_fits(&l) || l.rows < 1 || l.rows > people[c] || l.zoom < 1 || l.zoom > want_zoom;
                int most = counts[b % 4] > counts[(b + 1) % 4] ? counts[b % 4] : counts[(b + 1) % 4];
                bad += l.cols != most + p.test_photos;
                bad += l.w != l.zoom * (2 + l.cols * cell) || l.h != l.zoom * (2 + l.rows * cell);
                more = l;
                more.zoom++, more.w = more.zoom * (2 + l.cols * cell),
                             more.h = more.zoom * (2 + l.rows * cell);
                bad += l.zoom < want_zoom && l.rows == people[c] && layout_fits(&more);
                more = l;
                more.rows++, more.zoom = 1, more.w = 2 + l.cols * cell, more.h = 2 + more.rows * cell;
                bad += l.rows < people[c] && (l.zoom != 1 || layout_fits(&more));
                checked++;
            }
    CHECK(bad == 0 && checked > 1000);
    struct synth_params p = {.image_size = 256, .real_photos = 31, .fictitious_photos = 2, .test_photos = 31};
    struct sheet_layout l;
    face_sheet_layout(&p, 256, &l);
    CHECK(l.zoom == 1 && l.cols == 62 && l.rows == 16 && l.w == 2 + 62 * 258 && l.h == 2 + 16 * 258);
    p = (struct synth_params){.image_size = 32, .real_photos = 6, .fictitious_photos = 6, .test_photos = 2};
    face_sheet_layout(&p, 16, &l);
    CHECK(l.zoom == 4 && l.cols == 8 && l.rows == 16); /* the default world's sheet is not cut */
}

/* Sheets the limits cut, drawn: 256 people at 16 pixels are enlarged 3 times, not 4; at 64 pixels they do not
 * all fit even unenlarged. */
static void test_sheet_capped(void) {
    struct synth_world w = world_of(256);
    int sides[] = {16, 64}, zooms[] = {3, 1}, rows[] = {256, (16384 - 2) / 66};
    for (int t = 0; t < 2; t++) {
        struct synth_params p = {
            .seed = 1, .image_size = sides[t], .real_photos = 1, .fictitious_photos = 1, .test_photos = 1};
        struct sheet_layout l;
        face_sheet_layout(&p, 256, &l);
        CHECK(l.zoom == zooms[t] && l.rows == rows[t]);
        void *png = NULL;
        size_t n = 0;
        struct image sheet = {0};
        CHECK(face_contact_sheet(&p, &w, 256, &png, &n) == 0);
        CHECK(png && image_decode(png, n, "sheet", &sheet) == 0 && sheet.w == l.w && sheet.h == l.h);
        image_free(&sheet);
        free(png);
    }
    free(w.faces);
}

int main(void) {
    test_determinism();
    test_distance();
    test_photo_ranges();
    test_noise();
    test_recognisable();
    test_large();
    test_contact_sheet();
    test_sheet_limits();
    test_sheet_capped();
    return check_done("test_synth_face");
}

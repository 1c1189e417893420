/* synth_face: PULSE-Synth's procedural portraits: who a person looks like (struct face), how one photo of
 * them varies (struct photo), drawing the two into an image, and the contact sheet a user looks at. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/rng.h"
#include "stages/synth.h"

enum { BEARD_NONE, BEARD_STUBBLE, BEARD_FULL, BEARD_MOUSTACHE };

#define SS 4            /* supersampling: SS x SS samples per pixel */
#define FACE_CY 0.47f   /* head centre, as a fraction of the height, before the photo's offset */
#define FACE_ZOOM 1.25f /* face-space units per image side at scale 1: the head fills most of the frame */

struct col {
    float r, g, b;
};

static const struct col SKINS[N_SKIN] = {
    {255, 224, 200}, {240, 200, 170}, {232, 180, 140}, {210, 160, 110},
    {190, 130, 85},  {160, 105, 65},  {120, 75, 45},   {85, 52, 35},
};
static const struct col HAIRS[N_HAIR_COLOUR] = {
    {28, 22, 22},    {70, 45, 28},   {125, 80, 45},   {150, 55, 30},
    {225, 195, 110}, {205, 110, 45}, {145, 145, 150}, {238, 236, 228},
};
static const struct col EYES[N_EYE_COLOUR] = {
    {85, 50, 25}, {55, 110, 200}, {55, 145, 80}, {120, 130, 145}, {150, 110, 45},
};
/* Muted studio backgrounds of similar brightness: a photo's background should not say more about it than the
 * person in it does. */
static const uint8_t BACKGROUNDS[][3] = {
    {170, 170, 175}, {185, 175, 160}, {150, 170, 190}, {160, 180, 160}, {175, 160, 185},
    {140, 145, 150}, {130, 160, 160}, {190, 165, 150}, {160, 150, 135}, {195, 195, 190},
};
#define N_BACKGROUNDS (sizeof BACKGROUNDS / sizeof BACKGROUNDS[0])

/* Everyone keeps to one colour of clothes (a feature of the face, so part of the identity): the stable
 * context that real photos of one person share. */
static const struct col GARMENTS[N_GARMENT] = {
    {45, 60, 95},   {130, 40, 45},   {45, 100, 60}, {190, 160, 60},
    {100, 60, 125}, {215, 215, 210}, {35, 35, 38},  {55, 125, 170},
};
static const struct col FRAME = {25, 25, 30};

/* Everything about one face that does not change from sample to sample. */
struct geom {
    const struct face *f;
    float rx, ry, jaw; /* head half-width, half-height; how much the chin narrows */
    int square;        /* a superellipse of degree 4 instead of an ellipse */
    float eye_x, eye_y, mouth_y;
    struct col skin, hair, brow, iris, lip, stubble, bg, garment;
};

static struct col mix(struct col a, struct col b, float t) {
    return (struct col){a.r + (b.r - a.r) * t, a.g + (b.g - a.g) * t, a.b + (b.b - a.b) * t};
}

static struct col shade(struct col a, float k) {
    return (struct col){a.r * k, a.g * k, a.b * k};
}

static float sq(float x) {
    return x * x;
}

/* Own absolute value (and no square roots below): the drawing needs nothing from libm. */
static float absf(float x) {
    return x < 0 ? -x : x;
}

/* 1 if sqrt(r2) is within half_width of radius. */
static int in_ring(float r2, float radius, float half_width) {
    return r2 > sq(radius - half_width) && r2 < sq(radius + half_width);
}

void face_identity(uint64_t key, struct face *f) {
    static const uint8_t pools[] = {N_SHAPE, N_SKIN,  N_HAIR_COLOUR, N_HAIR_STYLE, N_EYE_COLOUR, N_GLASSES,
                                    N_BEARD, N_BROWS, N_MOUTH,       N_EARS,       N_GARMENT};
    uint8_t v[sizeof pools];
    for (size_t i = 0; i < sizeof pools; i++)
        v[i] = (uint8_t)(rng_u64(key, i) % pools[i]);
    *f = (struct face){.shape = v[0],
                       .skin = v[1],
                       .hair_colour = v[2],
                       .hair_style = v[3],
                       .eye_colour = v[4],
                       .glasses = v[5],
                       .beard = v[6],
                       .brows = v[7],
                       .mouth = v[8],
                       .ears = v[9],
                       .garment = v[10]};
}

/* Eye colour, brows, mouth and ears are a few pixels at 32 x 32: they do not count. */
int face_distance(const struct face *a, const struct face *b) {
    return (a->shape != b->shape) + (a->skin != b->skin) + (a->hair_colour != b->hair_colour) +
           (a->hair_style != b->hair_style) + (a->glasses != b->glasses) + (a->beard != b->beard) +
           (a->garment != b->garment);
}

/* Uniform in [lo, hi) from draw i of key. */
static float span(uint64_t key, uint64_t i, float lo, float hi) {
    return lo + (hi - lo) * rng_uniform(key, i);
}

void face_photo(uint64_t key, struct photo *p) {
    p->dx = span(key, 0, -0.08f, 0.08f);
    p->dy = span(key, 1, -0.08f, 0.08f);
    p->scale = span(key, 2, 0.85f, 1.1f);
    p->tilt = span(key, 3, -0.15f, 0.15f);
    p->light = span(key, 4, 0.8f, 1.2f);
    p->light_dir = span(key, 5, -0.5f, 0.5f);
    memcpy(p->bg, BACKGROUNDS[rng_u64(key, 6) % N_BACKGROUNDS], 3);
    p->noise = span(key, 7, 2.0f, 6.0f);
    p->noise_key = rng_u64(key, 8);
}

static void geom_init(struct geom *g, const struct face *f, const struct photo *p) {
    static const float RX[N_SHAPE] = {0.265f, 0.228f, 0.198f, 0.245f};
    static const float RY[N_SHAPE] = {0.285f, 0.305f, 0.33f, 0.29f};
    static const float JAW[N_SHAPE] = {0.10f, 0.22f, 0.18f, 0.0f};
    memset(g, 0, sizeof *g);
    g->f = f;
    g->rx = RX[f->shape % N_SHAPE];
    g->ry = RY[f->shape % N_SHAPE];
    g->jaw = JAW[f->shape % N_SHAPE];
    g->square = f->shape % N_SHAPE == 3;
    g->eye_x = 0.4f * g->rx;
    g->eye_y = -0.02f;
    g->mouth_y = 0.52f * g->ry;
    g->skin = SKINS[f->skin % N_SKIN];
    g->hair = HAIRS[f->hair_colour % N_HAIR_COLOUR];
    g->brow = mix(shade(g->hair, 0.75f), g->skin, f->brows == 2 ? 0.6f : 0.0f);
    g->iris = EYES[f->eye_colour % N_EYE_COLOUR];
    g->lip = mix(g->skin, (struct col){175, 70, 80}, 0.55f);
    g->stubble = mix(g->skin, shade(g->hair, 0.45f), 0.4f);
    g->bg = (struct col){p->bg[0], p->bg[1], p->bg[2]};
    g->garment = GARMENTS[f->garment % N_GARMENT];
}

/* <= 1 inside the head scaled by s; grows outwards like the squared normalised radius (shading uses it). */
static float head_t(const struct geom *g, float x, float y, float s) {
    float ny = y / (g->ry * s);
    float w = ny > 0 ? 1.0f - g->jaw * ny * ny : 1.0f;
    float nx = x / (g->rx * s * w);
    if (g->square)
        return sq(sq(nx)) + sq(sq(ny));
    return nx * nx + ny * ny;
}

/* The y above which the forehead ends and hair starts, at x. */
static float hairline(const struct geom *g, float x) {
    float base = -0.55f * g->ry + 0.45f * g->ry * sq(x / g->rx);
    if (g->f->hair_style == HAIR_PARTED) {
        float k = (x + 0.3f * g->rx) / (1.2f * g->rx);
        k = k < 0 ? 0 : k > 1 ? 1 : k;
        base += 0.3f * g->ry * k * (1.0f - sq(x / g->rx));
    }
    return base;
}

/* cos(8 * angle of (x, y)), without trigonometry (the real part of (x + iy)^8 / r^8). */
static float cos8(float x, float y) {
    float r2 = x * x + y * y;
    if (r2 <= 0)
        return 1;
    float a = x, b = y;
    for (int i = 0; i < 3; i++) {
        float t = a * a - b * b;
        b = 2 * a * b;
        a = t;
    }
    return a / (r2 * r2 * r2 * r2);
}

static int glasses_at(const struct geom *g, float x, float y, struct col *c) {
    int kind = g->f->glasses;
    if (!kind)
        return 0;
    float ex = absf(x) - g->eye_x, ey = y - g->eye_y, th = 0.014f;
    int on;
    if (kind == 1) {
        on = in_ring(ex * ex + ey * ey, 0.066f, th * 0.5f);
    } else {
        float ax = absf(ex), ay = absf(ey);
        on = (ax < 0.078f && ay < 0.05f) && !(ax < 0.078f - th && ay < 0.05f - th);
    }
    float inner = g->eye_x - (kind == 1 ? 0.066f : 0.078f);
    on = on || (absf(x) < inner && absf(ey + 0.004f) < th * 0.5f);
    on = on || (absf(x) > g->eye_x + 0.06f && absf(x) < g->rx * 0.98f && absf(ey + 0.01f) < th * 0.4f);
    if (on)
        *c = FRAME;
    return on;
}

static int hair_front_at(const struct geom *g, float x, float y, struct col *c) {
    int st = g->f->hair_style;
    if (st == HAIR_BALD) {
        /* a fringe of hair low on the sides, so a bald head still reads as a head */
        if (absf(x) > 0.86f * g->rx && y > -0.35f * g->ry && y < -0.02f && head_t(g, x, y, 1.04f) <= 1) {
            *c = g->hair;
            return 1;
        }
        return 0;
    }
    if (st == HAIR_MOHAWK) {
        int on = absf(x) < 0.2f * g->rx && y < -0.25f * g->ry && head_t(g, x, y * 0.8f, 1.05f) <= 1;
        if (on)
            *c = g->hair;
        return on;
    }
    float outer = st == HAIR_CURLY ? 1.1f : st == HAIR_PARTED ? 1.1f : 1.07f;
    if (y >= hairline(g, x) || head_t(g, x, y, outer) > 1)
        return 0;
    *c = g->hair;
    if (st == HAIR_PARTED && absf(x + 0.3f * g->rx) < 0.008f && y < -0.6f * g->ry)
        *c = shade(g->hair, 0.6f); /* the parting */
    return 1;
}

static int mouth_at(const struct geom *g, float x, float y, struct col *c) {
    float dy = y - g->mouth_y;
    switch (g->f->mouth) {
    case 0:
        if (sq(x / 0.06f) + sq(dy / 0.012f) > 1)
            return 0;
        *c = g->lip;
        return 1;
    case 1: {
        if (!in_ring(x * x + sq(dy + 0.075f), 0.075f, 0.011f) || dy < -0.02f || absf(x) > 0.07f)
            return 0;
        *c = shade(g->lip, 0.9f);
        return 1;
    }
    default:
        if (sq(x / 0.075f) + sq(dy / 0.03f) > 1)
            return 0;
        if (sq(x / 0.065f) + sq(dy / 0.022f) > 1)
            *c = g->lip;
        else
            *c = dy < -0.004f ? (struct col){240, 235, 225} : (struct col){80, 25, 30};
        return 1;
    }
}

/* The jaw below the nose, up the sides to the ears (scaled by s around the head centre). */
static int beard_region(const struct geom *g, float x, float y, float s) {
    if (head_t(g, x, y, s) > 1)
        return 0;
    float ax = absf(x) / g->rx;
    return y > g->ry * (0.42f - 0.45f * ax * ax) && (ax > 0.8f || y > 0.3f * g->ry);
}

static int beard_at(const struct geom *g, float x, float y, struct col *c) {
    int b = g->f->beard;
    if (b == BEARD_FULL && beard_region(g, x, y, 1.08f)) {
        *c = shade(g->hair, 0.9f);
        return 1;
    }
    if (b == BEARD_MOUSTACHE) {
        float dy = y - (g->mouth_y - 0.03f) - 0.02f * sq(x / 0.075f);
        if (absf(x) < 0.075f && absf(dy) < 0.012f) {
            *c = shade(g->hair, 0.9f);
            return 1;
        }
    }
    return 0;
}

static int eyes_at(const struct geom *g, float x, float y, struct col *c) {
    float ex = absf(x) - g->eye_x, ey = y - g->eye_y;
    if (sq(ex / 0.058f) + sq(ey / 0.03f) > 1)
        return 0;
    float r2 = ex * ex + ey * ey;
    if (r2 < sq(0.011f))
        *c = (struct col){15, 12, 12};
    else if (r2 < sq(0.026f))
        *c = g->iris;
    else
        *c = (struct col){245, 245, 240};
    return 1;
}

static int brows_at(const struct geom *g, float x, float y, struct col *c) {
    float ex = absf(x) - g->eye_x;
    if (absf(ex) > 0.062f)
        return 0;
    float th = g->f->brows == 1 ? 0.017f : 0.009f;
    float cy = g->eye_y - 0.068f + 0.018f * sq(ex / 0.062f);
    if (absf(y - cy) > th)
        return 0;
    *c = g->brow;
    return 1;
}

/* Skin with a little roundness, the nose, and shaved or stubbly parts. */
static struct col skin_at(const struct geom *g, float x, float y, float t) {
    struct col c = shade(g->skin, 1.0f - 0.2f * t * t);
    if (g->f->beard == BEARD_STUBBLE && beard_region(g, x, y, 1.0f))
        c = mix(c, g->stubble, 0.6f);
    if (g->f->hair_style == HAIR_MOHAWK && y < hairline(g, x))
        c = mix(c, g->stubble, 0.5f);
    float ny = y - 0.005f;
    if (ny > 0 && ny < 0.085f && x > 0 && x < 0.03f * ny / 0.085f + 0.004f)
        c = shade(c, 0.92f); /* the shadow side of the nose */
    if (sq((absf(x) - 0.018f) / 0.012f) + sq((y - 0.09f) / 0.007f) < 1)
        c = shade(c, 0.7f); /* nostrils */
    return c;
}

static int ears_at(const struct geom *g, float x, float y, struct col *c) {
    float hw = g->f->ears ? 0.05f : 0.036f, hh = g->f->ears ? 0.08f : 0.056f;
    float ex = absf(x) - g->rx * 0.97f, ey = y - 0.01f;
    float t = sq(ex / hw) + sq(ey / hh);
    if (t > 1)
        return 0;
    *c = shade(g->skin, t < 0.35f ? 0.78f : 0.92f);
    return 1;
}

static int hair_back_at(const struct geom *g, float x, float y, struct col *c) {
    int st = g->f->hair_style;
    int on = 0;
    if (st == HAIR_LONG)
        on = y < 1.05f * g->ry && sq(x / (1.3f * g->rx)) + sq((y - 0.1f * g->ry) / (1.25f * g->ry)) <= 1;
    else if (st == HAIR_CURLY) {
        float dx = x / (1.45f * g->rx), dy = (y + 0.15f * g->ry) / (1.2f * g->ry);
        on = y < 0.4f * g->ry && dx * dx + dy * dy <= sq(1.0f + 0.06f * cos8(dx, dy));
    } else if (st == HAIR_BUN)
        on = sq(x) + sq(y + 1.1f * g->ry) < sq(0.1f);
    if (!on)
        return 0;
    *c = shade(g->hair, st == HAIR_LONG ? 0.85f : 0.92f);
    if (st == HAIR_CURLY && cos8(x - 0.3f, y - 0.3f) > 0.7f)
        *c = shade(g->hair, 0.75f); /* a little texture */
    return 1;
}

static int body_at(const struct geom *g, float x, float y, struct col *c) {
    if (sq(x / 0.46f) + sq((y - 0.7f) / 0.32f) <= 1) {
        *c = g->garment;
        return 1;
    }
    if (absf(x) < 0.42f * g->rx && y > 0.5f * g->ry) {
        *c = shade(g->skin, 0.82f);
        return 1;
    }
    return 0;
}

/* The colour at face-space point (x, y): layers from the top (glasses) to the bottom (background). */
static struct col face_sample(const struct geom *g, float x, float y) {
    struct col c;
    if (glasses_at(g, x, y, &c) || hair_front_at(g, x, y, &c))
        return c;
    float t = head_t(g, x, y, 1.0f);
    if (t <= 1) {
        if (mouth_at(g, x, y, &c) || beard_at(g, x, y, &c) || eyes_at(g, x, y, &c) || brows_at(g, x, y, &c))
            return c;
        return skin_at(g, x, y, t);
    }
    if (beard_at(g, x, y, &c) || ears_at(g, x, y, &c) || hair_back_at(g, x, y, &c) || body_at(g, x, y, &c))
        return c;
    return g->bg;
}

/* sin and cos for |a| <= 0.5 by their Taylor series, so the pixels do not depend on the C library. */
static void small_sincos(float a, float *s, float *c) {
    float a2 = a * a;
    *s = a * (1 - a2 / 6 * (1 - a2 / 20 * (1 - a2 / 42)));
    *c = 1 - a2 / 2 * (1 - a2 / 12 * (1 - a2 / 30 * (1 - a2 / 56)));
}

/* A roughly normal deviate for channel ch from one 64-bit draw: the sum of three 7-bit uniforms. */
static float noise_z(uint64_t v, int ch) {
    int s = 0;
    for (int i = 0; i < 3; i++)
        s += (int)((v >> (21 * ch + 7 * i)) & 127);
    return ((float)s - 190.5f) / 64.0f;
}

static uint8_t to_byte(float v) {
    return v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)(v + 0.5f);
}

/* Averages the SS x SS samples of pixel (px, py). */
static struct col face_pixel(const struct geom *g, const struct photo *p, float side, float cx, float cy,
                             float sn, float cs, int px, int py) {
    struct col acc = {0, 0, 0};
    float inv = 1.0f / (side * p->scale * FACE_ZOOM);
    for (int sy = 0; sy < SS; sy++) {
        for (int sx = 0; sx < SS; sx++) {
            float u = (float)px + ((float)sx + 0.5f) / SS - cx;
            float v = (float)py + ((float)sy + 0.5f) / SS - cy;
            struct col c = face_sample(g, (cs * u + sn * v) * inv, (cs * v - sn * u) * inv);
            acc.r += c.r;
            acc.g += c.g;
            acc.b += c.b;
        }
    }
    return shade(acc, 1.0f / (SS * SS));
}

void face_draw(const struct face *f, const struct photo *p, struct image *im) {
    struct geom g;
    geom_init(&g, f, p);
    float side = (float)(im->w < im->h ? im->w : im->h);
    float cx = 0.5f * (float)im->w + p->dx * side, cy = FACE_CY * (float)im->h + p->dy * side;
    float sn, cs;
    small_sincos(p->tilt, &sn, &cs);
    for (int py = 0; py < im->h; py++) {
        for (int px = 0; px < im->w; px++) {
            struct col c = face_pixel(&g, p, side, cx, cy, sn, cs, px, py);
            float light =
                p->light * (1.0f + 0.25f * p->light_dir * (2.0f * ((float)px + 0.5f) / (float)im->w - 1));
            size_t i = (size_t)py * (size_t)im->w + (size_t)px;
            uint64_t r = rng_u64(p->noise_key, i);
            uint8_t *o = im->rgb + 3 * i;
            o[0] = to_byte(c.r * light + p->noise * noise_z(r, 0));
            o[1] = to_byte(c.g * light + p->noise * noise_z(r, 1));
            o[2] = to_byte(c.b * light + p->noise * noise_z(r, 2));
        }
    }
}

/* Person i (people order: real first, then fictitious) has keys i * 64 .. i * 64 + 63 of the photo stream:
 * training photos first, held-out ones from 32. */
uint64_t face_photo_key(uint64_t seed, size_t person, int held_out, int k) {
    uint64_t index =
        (uint64_t)person * 2 * SYNTH_MAX_PHOTOS + (held_out ? SYNTH_MAX_PHOTOS : 0) + (uint64_t)k;
    return synth_key(seed, SYNTH_STREAM_PHOTO, index);
}

static void face_label(struct buf *b, const char *id, const struct face *f) {
    buf_printf(b, "{\"face\":[%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d],\"image\":\"%s\"}\n", f->shape, f->skin,
               f->hair_colour, f->hair_style, f->eye_colour, f->glasses, f->beard, f->brows, f->mouth,
               f->ears, f->garment, id);
}

int face_photo_add(struct synth_world *w, const struct face *f, uint64_t photo_key, const char *id,
                   int labelled, struct image *im) {
    char name[40];
    snprintf(name, sizeof name, "%s.png", id);
    if (labelled)
        face_label(&w->labels, id, f);
    struct photo ph;
    face_photo(photo_key, &ph);
    memset(im->rgb, 0, (size_t)im->w * (size_t)im->h * 3);
    face_draw(f, &ph, im);
    void *png = NULL;
    size_t n = 0;
    int rc = image_png_encode(im, &png, &n) == 0 ? ds_tar_add(w->images, name, png, n) : -1;
    free(png);
    return rc;
}

#define SHEET_GAP 2
#define SHEET_ZOOM 4         /* the most it is enlarged */
#define SHEET_CELL_VIEW 128  /* enough pixels per photo to look at: larger photos are enlarged less */
#define SHEET_MAX_SIDE 16384 /* image_alloc's limits (engine/image.c) */
#define SHEET_MAX_PIXELS (64LL * 1024 * 1024)

static int sheet_fits(int cols, int rows, int side, int zoom) {
    long long w = (long long)zoom * (SHEET_GAP + cols * (side + SHEET_GAP));
    long long h = (long long)zoom * (SHEET_GAP + rows * (side + SHEET_GAP));
    return w <= SHEET_MAX_SIDE && h <= SHEET_MAX_SIDE && w * h <= SHEET_MAX_PIXELS;
}

/* Gives up enlargement first, then columns, then rows: a smaller sheet of everyone is worth more than a large
 * one of a few. */
void face_sheet_layout(const struct synth_params *p, size_t people, struct sheet_layout *l) {
    int side = p->image_size, cell = side + SHEET_GAP, z = SHEET_CELL_VIEW / side;
    l->cols = synth_max_photos(p) + p->test_photos;
    l->rows = people > SHEET_MAX_SIDE ? SHEET_MAX_SIDE : (int)people;
    l->zoom = z < 1 ? 1 : z > SHEET_ZOOM ? SHEET_ZOOM : z;
    while (l->zoom > 1 && !sheet_fits(l->cols, l->rows, side, l->zoom))
        l->zoom--;
    if (l->cols > (SHEET_MAX_SIDE - SHEET_GAP) / cell)
        l->cols = (SHEET_MAX_SIDE - SHEET_GAP) / cell;
    while (l->rows > 1 && !sheet_fits(l->cols, l->rows, side, 1))
        l->rows--;
    l->w = l->zoom * (SHEET_GAP + l->cols * cell);
    l->h = l->zoom * (SHEET_GAP + l->rows * cell);
}

static void blit(struct image *dst, const struct image *src, int x0, int y0) {
    for (int y = 0; y < src->h; y++)
        memcpy(dst->rgb + 3 * ((size_t)(y0 + y) * (size_t)dst->w + (size_t)x0),
               src->rgb + 3 * (size_t)y * (size_t)src->w, 3 * (size_t)src->w);
}

static void zoom(const struct image *src, struct image *dst, int z) {
    for (int y = 0; y < dst->h; y++)
        for (int x = 0; x < dst->w; x++)
            memcpy(dst->rgb + 3 * ((size_t)y * (size_t)dst->w + (size_t)x),
                   src->rgb + 3 * ((size_t)(y / z) * (size_t)src->w + (size_t)(x / z)), 3);
}

/* Draws the sheet at the photos' own size: cell (row, col) at SHEET_GAP + col * (side + SHEET_GAP). */
static int sheet_draw(const struct synth_params *p, const struct synth_world *w, const struct sheet_layout *l,
                      struct image *sheet) {
    int side = p->image_size;
    struct image cell = {0};
    if (image_alloc(&cell, side, side) != 0)
        return -1;
    memset(sheet->rgb, 40, 3 * (size_t)sheet->w * (size_t)sheet->h);
    int most = synth_max_photos(p);
    for (int i = 0; i < l->rows; i++) {
        for (int k = 0; k < l->cols; k++) {
            int held = k >= most;
            if (!held && k >= synth_photos(p, i))
                continue; /* a person of the group with fewer photos: the cell stays background */
            struct photo ph;
            face_photo(face_photo_key(p->seed, (size_t)i, held, held ? k - most : k), &ph);
            face_draw(&w->faces[i], &ph, &cell);
            blit(sheet, &cell, SHEET_GAP + k * (side + SHEET_GAP), SHEET_GAP + i * (side + SHEET_GAP));
        }
    }
    image_free(&cell);
    return 0;
}

int face_contact_sheet(const struct synth_params *p, const struct synth_world *w, size_t people, void **png,
                       size_t *n) {
    struct sheet_layout l;
    face_sheet_layout(p, people < w->nfaces ? people : w->nfaces, &l);
    struct image small = {0}, big = {0};
    int rc = -1;
    if (image_alloc(&small, l.w / l.zoom, l.h / l.zoom) == 0 && sheet_draw(p, w, &l, &small) == 0) {
        if (l.zoom == 1)
            rc = image_png_encode(&small, png, n);
        else if (image_alloc(&big, l.w, l.h) == 0) {
            zoom(&small, &big, l.zoom);
            rc = image_png_encode(&big, png, n);
        }
    }
    image_free(&small);
    image_free(&big);
    return rc;
}

/* preprocess: LLaVA-1.5's image preprocessing, exact against transformers + Pillow (engine/preprocess.h).
 *
 * The resize is Pillow's bicubic as documented and measured: separable, a horizontal and a vertical pass (in
 * the order resize_window says), each rounded to uint8. Output sample i of n, from m input samples, is
 * centred at (i + 0.5) * m / n; the Keys cubic (a = -0.5) is stretched by the downscale factor (antialiasing;
 * never narrowed when upscaling); its weights over the input samples in reach are normalised to sum 1 and
 * turned into 22-bit fixed point, rounded half away from zero; a sample is the weighted sum plus one half,
 * shifted down, clamped to [0, 255]. The floating-point steps follow the reference's order of operations, so
 * the fixed-point weights are the same integers and the pixels the same bytes. */
#include "engine/preprocess.h"

#include "engine/pixels.h"
#include "util/err.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define WEIGHT_BITS 22

/* int(m * 255) for CLIP's mean (0.48145466, 0.4578275, 0.40821073): LLaVA's padding colour. */
static const uint8_t pad_colour[3] = {122, 116, 104};

int preprocess_mode_parse(const char *name, const char *what, enum preprocess_mode *mode) {
    if (name && strcmp(name, "pad") == 0)
        *mode = PREPROCESS_PAD;
    else if (name && strcmp(name, "hf") == 0)
        *mode = PREPROCESS_HF;
    else
        return err_set("%s: image preprocessing \"%s\" is not \"pad\" or \"hf\"", what, name ? name : "");
    return 0;
}

const char *preprocess_mode_name(enum preprocess_mode mode) {
    return mode == PREPROCESS_HF ? "hf" : "pad";
}

/* One pass's weights, for output samples [from, from + n) of a resize of `in` samples to `out`. */
struct taps {
    int n, ksize;
    int *first, *count; /* the input window of each output sample */
    int32_t *weight;    /* n rows of ksize, fixed point */
};

static double keys_cubic(double x) {
    const double a = -0.5;
    x = fabs(x);
    if (x < 1.0)
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    if (x < 2.0)
        return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
    return 0.0;
}

static void taps_free(struct taps *t) {
    free(t->first);
    free(t->count);
    free(t->weight);
    t->first = t->count = NULL;
    t->weight = NULL;
}

/* The weights of output sample i, written to w (fixed point); its window to *lo and *len. k: ksize doubles of
 * scratch. */
static void taps_one(int in, double scale, int i, double *k, int32_t *w, int *lo, int *len) {
    double stretch = scale > 1.0 ? scale : 1.0, support = 2.0 * stretch, inv = 1.0 / stretch;
    double centre = (i + 0.5) * scale;
    /* (int) truncates towards zero, as the reference does, before clamping to the image. */
    int a = (int)(centre - support + 0.5), b = (int)(centre + support + 0.5);
    a = a < 0 ? 0 : a;
    b = b > in ? in : b;
    double sum = 0;
    for (int j = 0; j < b - a; j++) {
        k[j] = keys_cubic(((double)(a + j) - centre + 0.5) * inv);
        sum += k[j];
    }
    for (int j = 0; j < b - a; j++) {
        double v = sum != 0.0 ? k[j] / sum : k[j];
        w[j] = (int32_t)(v < 0 ? v * (1 << WEIGHT_BITS) - 0.5 : v * (1 << WEIGHT_BITS) + 0.5);
    }
    *lo = a;
    *len = b - a;
}

static int taps_make(int in, int out, int from, int n, const char *what, struct taps *t) {
    double scale = (double)in / out;
    t->n = n;
    t->ksize = (int)ceil(2.0 * (scale > 1.0 ? scale : 1.0)) * 2 + 1;
    t->first = malloc((size_t)n * sizeof(int));
    t->count = malloc((size_t)n * sizeof(int));
    t->weight = calloc((size_t)n * (size_t)t->ksize, sizeof(int32_t));
    double *k = malloc((size_t)t->ksize * sizeof(double));
    if (!t->first || !t->count || !t->weight || !k) {
        free(k);
        taps_free(t);
        return err_set("%s: out of memory resizing %d to %d pixels", what, in, out);
    }
    for (int i = 0; i < n; i++)
        taps_one(in, scale, from + i, k, t->weight + (size_t)i * t->ksize, &t->first[i], &t->count[i]);
    free(k);
    return 0;
}

static uint8_t to_u8(int64_t acc) {
    if (acc < 0)
        return 0;
    acc >>= WEIGHT_BITS;
    return acc > 255 ? 255 : (uint8_t)acc;
}

/* The horizontal pass over one row: output samples [i0, i1) from a row whose first pixel is input sample
 * `base`. */
static void pass_row(const uint8_t *in, int base, const struct taps *t, int i0, int i1, uint8_t *out) {
    for (int i = i0; i < i1; i++) {
        const int32_t *w = t->weight + (size_t)i * t->ksize;
        const uint8_t *p = in + (size_t)(t->first[i] - base) * 3;
        int64_t acc[3] = {1 << (WEIGHT_BITS - 1), 1 << (WEIGHT_BITS - 1), 1 << (WEIGHT_BITS - 1)};
        for (int j = 0; j < t->count[i]; j++)
            for (int c = 0; c < 3; c++)
                acc[c] += (int64_t)p[j * 3 + c] * w[j];
        for (int c = 0; c < 3; c++)
            out[i * 3 + c] = to_u8(acc[c]);
    }
}

/* What a pass reads: an image, or an image centred on a padded square, a row at a time, so a padded square
 * is never held whole. */
struct source {
    const struct image *im;
    int w, h;   /* the padded size */
    int dx, dy; /* where the image sits in it */
    /* When padded, w pixels each: the current row, whose padding never changes, and a row of only padding. */
    uint8_t *row, *blank;
};

static int source_pad(struct source *s, const char *what) {
    s->row = malloc((size_t)s->w * 3);
    s->blank = malloc((size_t)s->w * 3);
    if (!s->row || !s->blank)
        return err_set("%s: out of memory padding to %dx%d pixels", what, s->w, s->h);
    for (int x = 0; x < s->w; x++) {
        memcpy(s->row + (size_t)x * 3, pad_colour, 3);
        memcpy(s->blank + (size_t)x * 3, pad_colour, 3);
    }
    return 0;
}

static int source_inside(const struct source *s, int y) {
    return y >= s->dy && y < s->dy + s->im->h;
}

static const uint8_t *source_row(struct source *s, int y) {
    if (!s->row)
        return s->im->rgb + (size_t)y * (size_t)s->w * 3;
    if (!source_inside(s, y))
        return s->blank;
    memcpy(s->row + (size_t)s->dx * 3, s->im->rgb + (size_t)(y - s->dy) * (size_t)s->im->w * 3,
           (size_t)s->im->w * 3);
    return s->row;
}

/* The vertical pass for output row i: n pixels from column c0 of the rows src gives, its row 0 being input
 * row `base`. acc: n * 3 of scratch. */
static void pass_column(struct source *src, int base, int c0, int n, const struct taps *t, int i,
                        int64_t *acc, uint8_t *out) {
    const int32_t *w = t->weight + (size_t)i * t->ksize;
    size_t len = (size_t)n * 3;
    for (size_t x = 0; x < len; x++)
        acc[x] = 1 << (WEIGHT_BITS - 1);
    for (int j = 0; j < t->count[i]; j++) {
        const uint8_t *row = source_row(src, t->first[i] + j - base) + (size_t)c0 * 3;
        for (size_t x = 0; x < len; x++)
            acc[x] += (int64_t)row[x] * w[j];
    }
    for (size_t x = 0; x < len; x++)
        out[x] = to_u8(acc[x]);
}

/* The horizontal pass over rows [lo, hi) of src into mid. On a padded source only the outputs whose windows
 * reach the image's columns are computed; the others are those of a row of only padding (blank_out, out->w
 * pixels of scratch), which keeps a 1-pixel-wide image on its 16384-pixel square cheap. */
static void pass_rows(struct source *src, int lo, int hi, const struct taps *t, uint8_t *blank_out,
                      uint8_t *mid) {
    size_t len = (size_t)t->n * 3;
    int i0 = 0, i1 = t->n;
    if (src->row) {
        pass_row(src->blank, 0, t, 0, t->n, blank_out);
        while (i0 < t->n && t->first[i0] + t->count[i0] <= src->dx)
            i0++;
        while (i1 > i0 && t->first[i1 - 1] >= src->dx + src->im->w)
            i1--;
    }
    for (int y = lo; y < hi; y++) {
        uint8_t *dst = mid + (size_t)(y - lo) * len;
        if (src->row)
            memcpy(dst, blank_out, len);
        if (!src->row || source_inside(src, y))
            pass_row(source_row(src, y), 0, t, i0, i1, dst);
    }
}

/* Horizontal pass, then vertical, through the band of input rows the vertical windows cover (they move down
 * monotonically). */
static int resize_hv(struct source *src, const struct taps *tx, const struct taps *ty, const char *what,
                     struct image *out) {
    int lo = ty->first[0], hi = ty->first[ty->n - 1] + ty->count[ty->n - 1];
    struct image mid;
    if (image_alloc(&mid, out->w, hi - lo))
        return err_prefix("%s", what);
    int64_t *acc = malloc((size_t)out->w * 3 * sizeof(int64_t));
    uint8_t *blank_out = malloc((size_t)out->w * 3);
    int ok = acc && blank_out;
    if (ok) {
        pass_rows(src, lo, hi, tx, blank_out, mid.rgb);
        struct source band = {.im = &mid, .w = mid.w, .h = mid.h};
        for (int i = 0; i < out->h; i++)
            pass_column(&band, lo, 0, out->w, ty, i, acc, out->rgb + (size_t)i * out->w * 3);
    }
    free(acc);
    free(blank_out);
    image_free(&mid);
    return ok ? 0 : err_set("%s: out of memory resizing to %dx%d pixels", what, out->w, out->h);
}

/* Vertical pass, then horizontal, through the band of input columns the horizontal windows cover. */
static int resize_vh(struct source *src, const struct taps *tx, const struct taps *ty, const char *what,
                     struct image *out) {
    int lo = tx->first[0], hi = tx->first[tx->n - 1] + tx->count[tx->n - 1];
    struct image mid;
    if (image_alloc(&mid, hi - lo, out->h))
        return err_prefix("%s", what);
    int64_t *acc = malloc((size_t)mid.w * 3 * sizeof(int64_t));
    if (acc)
        for (int i = 0; i < out->h; i++) {
            pass_column(src, 0, lo, mid.w, ty, i, acc, mid.rgb + (size_t)i * mid.w * 3);
            pass_row(mid.rgb + (size_t)i * mid.w * 3, lo, tx, 0, tx->n, out->rgb + (size_t)i * out->w * 3);
        }
    free(acc);
    image_free(&mid);
    return acc ? 0 : err_set("%s: out of memory resizing to %dx%d pixels", what, out->w, out->h);
}

/* Resizes src to rw x rh and keeps the window of out's size at (x0, y0), computing nothing outside it: each
 * output sample depends only on its own weights, so this equals resizing whole and cropping. The order of
 * the passes changes the uint8 rounding in between, so it is Pillow's (13.0): vertical first when the
 * height shrinks by more than twice as many pixels as the width does. */
static int resize_window(struct source *src, int rw, int rh, int x0, int y0, const char *what,
                         struct image *out) {
    struct taps tx = {0}, ty = {0};
    int rc = -1;
    int padded = src->w != src->im->w || src->h != src->im->h;
    if ((!padded || source_pad(src, what) == 0) && taps_make(src->w, rw, x0, out->w, what, &tx) == 0 &&
        taps_make(src->h, rh, y0, out->h, what, &ty) == 0) {
        if (rh < src->h && 2 * ((int64_t)src->w - rw) < (int64_t)src->h - rh)
            rc = resize_vh(src, &tx, &ty, what, out);
        else
            rc = resize_hv(src, &tx, &ty, what, out);
    }
    taps_free(&tx);
    taps_free(&ty);
    free(src->row);
    free(src->blank);
    src->row = src->blank = NULL;
    return rc;
}

static int check_image(const struct image *im, const char *what) {
    if (!im || !im->rgb || im->w < 1 || im->h < 1 || im->w > PREPROCESS_MAX_SIDE ||
        im->h > PREPROCESS_MAX_SIDE)
        return err_set("%s: image is %dx%d, preprocessing takes 1..%d pixels a side", what, im ? im->w : 0,
                       im ? im->h : 0, PREPROCESS_MAX_SIDE);
    return 0;
}

int preprocess_resize(const struct image *im, int w, int h, const char *what, struct image *out) {
    out->w = out->h = 0;
    out->rgb = NULL;
    if (check_image(im, what))
        return -1;
    if (w < 1 || h < 1 || w > PREPROCESS_MAX_SIDE || h > PREPROCESS_MAX_SIDE)
        return err_set("%s: resize to %dx%d is outside 1..%d pixels a side", what, w, h, PREPROCESS_MAX_SIDE);
    if (image_alloc(out, w, h))
        return err_prefix("%s", what);
    struct source src = {.im = im, .w = im->w, .h = im->h};
    if (resize_window(&src, w, h, 0, 0, what, out)) {
        image_free(out);
        return -1;
    }
    return 0;
}

/* transformers' size for {"shortest_edge": size}: the short side becomes size, the long one
 * int(size * long / short), the quotient in double as Python's true division gives it. */
static void shortest_edge(int w, int h, int size, int *rw, int *rh) {
    int s = w <= h ? w : h, l = w <= h ? h : w;
    int nl = (int)((double)size * (double)l / (double)s);
    *rw = w <= h ? size : nl;
    *rh = w <= h ? nl : size;
}

int preprocess_rgb(const struct image *im, int size, enum preprocess_mode mode, const char *what,
                   struct image *out) {
    out->w = out->h = 0;
    out->rgb = NULL;
    if (check_image(im, what))
        return -1;
    if (size < 1 || size > PREPROCESS_MAX_SIZE)
        return err_set("%s: image size %d is outside 1..%d", what, size, PREPROCESS_MAX_SIZE);
    if (mode != PREPROCESS_PAD && mode != PREPROCESS_HF)
        return err_set("%s: image preprocessing mode %d is not pad or hf", what, (int)mode);
    struct source src = {.im = im, .w = im->w, .h = im->h};
    if (mode == PREPROCESS_PAD) {
        src.w = src.h = im->w > im->h ? im->w : im->h;
        src.dx = (src.w - im->w) / 2; /* LLaVA's (long - short) // 2 */
        src.dy = (src.h - im->h) / 2;
    }
    int rw, rh;
    shortest_edge(src.w, src.h, size, &rw, &rh);
    if (image_alloc(out, size, size))
        return err_prefix("%s", what);
    /* transformers' centre crop: offsets (resized - crop) // 2, never negative here. */
    if (resize_window(&src, rw, rh, (rw - size) / 2, (rh - size) / 2, what, out)) {
        image_free(out);
        return -1;
    }
    return 0;
}

int preprocess_image(const struct image *im, int size, enum preprocess_mode mode, const char *what,
                     float *out) {
    struct image sq;
    if (preprocess_rgb(im, size, mode, what, &sq))
        return -1;
    /* pixels_from_image's float arithmetic gives the reference's values for all 256 levels (the fixture test
     * checks every one), so the normalisation is shared, not repeated. */
    int rc = pixels_from_image(&sq, size, what, out);
    image_free(&sq);
    return rc;
}

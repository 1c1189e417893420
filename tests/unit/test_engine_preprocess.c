/* test_engine_preprocess: LLaVA-1.5's two image preprocessings (pad to a mean-colour square, or not) give
 * exactly the pixel values of transformers' PIL-based CLIPImageProcessor (fixtures of
 * tests/reference/make_preprocess_fixture.py: PNG and JPEG inputs of varied sizes and aspect ratios, crop
 * sizes 32, 48 and 336), Pillow's bicubic resize alone matches, libjpeg-turbo decodes the fixtures' JPEGs as
 * Pillow does, extreme aspect ratios stay cheap, and bad images or sizes fail with one line. */
#include "check.h"
#include "engine/image.h"
#include "engine/pixels.h"
#include "engine/preprocess.h"
#include "engine/safetensors.h"
#include "util/err.h"
#include "util/fsio.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

static char *data_path(const char *name) {
    static char path[4096];
    const char *dir = getenv("PULSE_TEST_DATA");
    snprintf(path, sizeof path, "%s/preprocess/%s", dir ? dir : "tests/data", name);
    return path;
}

/* Decodes a fixture image (PNG or JPEG); 0 on success, else reports and returns -1. */
static int load(const char *name, struct image *im) {
    char *data = NULL;
    size_t n = 0;
    int rc = fsio_read_file(data_path(name), 1 << 24, &data, &n);
    if (rc == 0)
        rc = image_decode(data, n, name, im);
    if (rc)
        fprintf(stderr, "%s\n", err_msg());
    free(data);
    return rc;
}

/* Bytes that differ and the largest difference between two images of the same size (-1: sizes differ). */
static long image_diff(const struct image *a, const struct image *b, int *maxd) {
    *maxd = 0;
    if (a->w != b->w || a->h != b->h)
        return -1;
    long bad = 0;
    for (size_t i = 0; i < (size_t)a->w * a->h * 3; i++) {
        int d = abs(a->rgb[i] - b->rgb[i]);
        bad += d != 0;
        *maxd = d > *maxd ? d : *maxd;
    }
    return bad;
}

/* ---- against the reference ------------------------------------------------------------------------------
 */

static float norm[3][256]; /* the reference's pixel value of each level, per channel */
static double max_err;     /* over every float compared with the reference */
static int cases;

static int load_norm(void) {
    struct st_file f;
    if (st_open(data_path("norm.safetensors"), &f)) {
        fprintf(stderr, "%s\n", err_msg());
        return -1;
    }
    const struct st_tensor *t = st_find(&f, "norm");
    int ok = t && t->nelem == 3 * 256;
    if (ok)
        st_to_f32(t, &norm[0][0]);
    st_close(&f);
    return ok ? 0 : -1;
}

/* pixels_from_image, which preprocess_image normalises with, on all 256 levels. */
static void test_norm_levels(void) {
    struct image im;
    float out[3 * 256];
    CHECK(image_alloc(&im, 16, 16) == 0);
    for (int i = 0; i < 256; i++)
        memset(im.rgb + i * 3, i, 3);
    CHECK(pixels_from_image(&im, 16, "levels", out) == 0);
    CHECK(memcmp(out, norm, sizeof out) == 0);
    image_free(&im);
}

/* The JPEG fixtures are preprocessed from Pillow's decoding (the J lines check ours against it). */
static const char *source_of(const char *input, char *buf, size_t cap) {
    size_t n = strlen(input);
    if (n > 4 && strcmp(input + n - 4, ".jpg") == 0) {
        snprintf(buf, cap, "%.*s_pil.png", (int)(n - 4), input);
        return buf;
    }
    return input;
}

static void check_floats(const float *got, const struct image *want, const char *name) {
    size_t plane = (size_t)want->w * want->h;
    double worst = 0;
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < plane; i++) {
            double d = fabs((double)got[c * plane + i] - norm[c][want->rgb[i * 3 + c]]);
            worst = d > worst || d != d ? d : worst;
        }
    if (worst > 0)
        fprintf(stderr, "%s: pixel values differ by up to %g\n", name, worst);
    CHECK(worst == 0);
    max_err = worst > max_err ? worst : max_err;
}

static void case_preprocess(const char *input, const char *mode_name, int size, const char *want_name) {
    char buf[512];
    struct image im, want, got;
    enum preprocess_mode mode;
    CHECK(preprocess_mode_parse(mode_name, "cases.txt", &mode) == 0);
    if (load(source_of(input, buf, sizeof buf), &im) || load(want_name, &want)) {
        CHECK(!"fixture image");
        return;
    }
    CHECK(preprocess_rgb(&im, size, mode, want_name, &got) == 0);
    int maxd;
    long bad = image_diff(&got, &want, &maxd);
    if (bad)
        fprintf(stderr, "%s: %ld bytes differ, by up to %d\n", want_name, bad, maxd);
    CHECK(bad == 0);
    float *px = malloc((size_t)3 * size * size * sizeof(float));
    CHECK(preprocess_image(&im, size, mode, want_name, px) == 0);
    check_floats(px, &want, want_name);
    free(px);
    image_free(&got);
    image_free(&want);
    image_free(&im);
    cases++;
}

static void case_resize(const char *input, int w, int h, const char *want_name) {
    struct image im, want, got;
    if (load(input, &im) || load(want_name, &want)) {
        CHECK(!"fixture image");
        return;
    }
    CHECK(preprocess_resize(&im, w, h, want_name, &got) == 0);
    int maxd;
    long bad = image_diff(&got, &want, &maxd);
    if (bad)
        fprintf(stderr, "%s: %ld bytes differ, by up to %d\n", want_name, bad, maxd);
    CHECK(bad == 0);
    image_free(&got);
    image_free(&want);
    image_free(&im);
    cases++;
}

/* libjpeg-turbo here against Pillow's libjpeg-turbo: the same islow IDCT and fancy upsampling. */
static void case_jpeg(const char *jpg, const char *pil) {
    struct image ours, theirs;
    if (load(jpg, &ours) || load(pil, &theirs)) {
        CHECK(!"fixture image");
        return;
    }
    int maxd;
    long bad = image_diff(&ours, &theirs, &maxd);
    if (bad)
        fprintf(stderr, "%s: decodes differ from Pillow's in %ld bytes, by up to %d\n", jpg, bad, maxd);
    CHECK(bad == 0);
    image_free(&ours);
    image_free(&theirs);
    cases++;
}

static void test_fixture(void) {
    char *text = NULL;
    size_t n = 0;
    CHECK(load_norm() == 0);
    test_norm_levels();
    CHECK(fsio_read_file(data_path("cases.txt"), 1 << 20, &text, &n) == 0);
    for (char *line = text ? strtok(text, "\n") : NULL; line; line = strtok(NULL, "\n")) {
        char a[256], b[256], c[256];
        int x, y;
        if (sscanf(line, "P %255s %255s %d %255s", a, b, &x, c) == 4)
            case_preprocess(a, b, x, c);
        else if (sscanf(line, "R %255s %d %d %255s", a, &x, &y, c) == 4)
            case_resize(a, x, y, c);
        else if (sscanf(line, "J %255s %255s", a, b) == 2)
            case_jpeg(a, b);
        else
            CHECK(!"a cases.txt line");
    }
    free(text);
    CHECK(cases >= 50);
    printf("preprocess: %d reference cases, largest pixel-value error %g\n", cases, max_err);
}

/* ---- properties -------------------------------------------------------------------------------------------
 */

static void fill(struct image *im, int w, int h, int seed) {
    CHECK(image_alloc(im, w, h) == 0);
    for (size_t i = 0; i < (size_t)w * h * 3; i++)
        im->rgb[i] = (uint8_t)((i * 2654435761u + (size_t)seed * 97) >> 7);
}

/* A square image is not padded; a wide one sits centred on LLaVA's mean colour. */
static void test_pad(void) {
    struct image sq, a, b, wide, out;
    fill(&sq, 30, 30, 1);
    CHECK(preprocess_rgb(&sq, 24, PREPROCESS_PAD, "sq", &a) == 0);
    CHECK(preprocess_rgb(&sq, 24, PREPROCESS_HF, "sq", &b) == 0);
    CHECK(a.w == 24 && b.h == 24 && memcmp(a.rgb, b.rgb, 24 * 24 * 3) == 0);
    fill(&wide, 40, 4, 2);
    CHECK(preprocess_rgb(&wide, 40, PREPROCESS_PAD, "wide", &out) == 0);
    const uint8_t bg[3] = {122, 116, 104};
    CHECK(memcmp(out.rgb, bg, 3) == 0 && memcmp(out.rgb + (40 * 40 - 1) * 3, bg, 3) == 0);
    CHECK(memcmp(out.rgb + 18 * 40 * 3, wide.rgb, 40 * 3) == 0); /* (40 - 4) // 2 = 18 */
    const char *names[] = {"pad", "hf"};
    for (int i = 0; i < 2; i++) {
        enum preprocess_mode m;
        CHECK(preprocess_mode_parse(names[i], "t", &m) == 0 &&
              strcmp(preprocess_mode_name(m), names[i]) == 0);
    }
    image_free(&sq);
    image_free(&a);
    image_free(&b);
    image_free(&wide);
    image_free(&out);
}

/* Only the crop is computed, so a 16384 x 1 strip (a 5.5-million-pixel-wide resize) is cheap, and a
 * constant image stays constant. */
static void test_extreme(void) {
    struct image strip, tall, out;
    CHECK(image_alloc(&strip, 16384, 1) == 0);
    memset(strip.rgb, 77, (size_t)16384 * 3);
    clock_t t0 = clock();
    CHECK(preprocess_rgb(&strip, 336, PREPROCESS_HF, "strip", &out) == 0);
    int constant = out.rgb != NULL;
    for (size_t i = 0; constant && i < (size_t)336 * 336 * 3; i++)
        constant = out.rgb[i] == 77;
    CHECK(constant);
    image_free(&out);
    fill(&tall, 1, 3000, 3);
    CHECK(preprocess_rgb(&tall, 336, PREPROCESS_PAD, "tall", &out) == 0);
    CHECK(memcmp(out.rgb, (uint8_t[]){122, 116, 104}, 3) == 0);
    double s = (double)(clock() - t0) / CLOCKS_PER_SEC;
    CHECK(s < 5);
    image_free(&out);
    image_free(&strip);
    image_free(&tall);
}

/* ---- errors ----------------------------------------------------------------------------------------------
 */

static void check_error(int rc, const char *want) {
    CHECK(rc == -1);
    CHECK_HAS(err_msg(), want);
    CHECK(strchr(err_msg(), '\n') == NULL);
}

static void test_errors(void) {
    struct image im, empty = {0, 0, NULL}, out;
    float px[4 * 4 * 3];
    enum preprocess_mode m;
    fill(&im, 5, 3, 4);
    check_error(preprocess_image(&empty, 4, PREPROCESS_PAD, "empty.png", px), "empty.png: image is 0x0");
    struct image no_pixels = {5, 3, NULL};
    check_error(preprocess_image(&no_pixels, 4, PREPROCESS_HF, "x", px), "x: image is 5x3");
    struct image huge = {20000, 2, im.rgb};
    check_error(preprocess_rgb(&huge, 4, PREPROCESS_HF, "huge", &out), "huge: image is 20000x2");
    CHECK(out.rgb == NULL);
    check_error(preprocess_image(&im, 0, PREPROCESS_HF, "a", px), "a: image size 0 is outside 1..2048");
    check_error(preprocess_image(&im, -336, PREPROCESS_PAD, "a", px), "image size -336");
    check_error(preprocess_image(&im, 1 << 30, PREPROCESS_PAD, "a", px), "image size 1073741824");
    check_error(preprocess_image(&im, 4, (enum preprocess_mode)7, "m", px), "m: image preprocessing mode 7");
    check_error(preprocess_resize(&im, 0, 7, "r", &out), "r: resize to 0x7");
    check_error(preprocess_resize(&empty, 3, 3, "r", &out), "r: image is 0x0");
    check_error(preprocess_mode_parse("square", "model.image_mode", &m),
                "model.image_mode: image preprocessing \"square\"");
    check_error(preprocess_mode_parse(NULL, "p", &m), "is not \"pad\" or \"hf\"");
    image_free(&im);
}

int main(void) {
    test_fixture();
    test_pad();
    test_extreme();
    test_errors();
    return check_done("test_engine_preprocess");
}

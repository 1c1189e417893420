/* test_engine_image: PNG encode/decode round trips, PNG colour formats and JPEG (baseline and progressive)
 * written here with libpng and libjpeg, format sniffing, and hostile inputs (truncated, corrupt, huge
 * declared sizes, a progressive JPEG of 704 scans) that must fail with one clear line. */
#include "check.h"
#include "engine/image.h"
#include "util/buf.h"
#include "util/err.h"

#include <stdint.h>
#include <stdio.h>
#include <jpeglib.h>
#include <png.h>

/* A smooth pattern (JPEG keeps it well) that differs in every channel. */
static void pattern(struct image *im, int w, int h, int seed) {
    image_alloc(im, w, h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = im->rgb + ((size_t)y * w + x) * 3;
            p[0] = (uint8_t)(x * 255 / (w - 1));
            p[1] = (uint8_t)(y * 255 / (h - 1));
            p[2] = (uint8_t)((x + y + seed) * 2);
        }
}

static void test_png_round_trip(void) {
    struct image a, b, c, d;
    void *p1, *p2, *p3;
    size_t n1, n2, n3;
    pattern(&a, 37, 23, 0);
    pattern(&b, 37, 23, 0);
    pattern(&c, 37, 23, 1);
    CHECK(image_png_encode(&a, &p1, &n1) == 0);
    CHECK(image_png_encode(&b, &p2, &n2) == 0);
    CHECK(image_png_encode(&c, &p3, &n3) == 0);
    CHECK(n1 == n2 && memcmp(p1, p2, n1) == 0);
    CHECK(n1 != n3 || memcmp(p1, p3, n1) != 0);
    CHECK(memmem(p1, n1, "tIME", 4) == NULL);
    CHECK(image_decode(p1, n1, "rt", &d) == 0);
    CHECK(d.w == 37 && d.h == 23 && memcmp(d.rgb, a.rgb, 37 * 23 * 3) == 0);
    image_free(&d);
    free(p1);
    free(p2);
    free(p3);
    image_free(&a);
    image_free(&b);
    image_free(&c);
}

struct mem {
    struct buf b;
};

static void mem_write(png_structp png, png_bytep data, size_t n) {
    buf_append(png_get_io_ptr(png), data, n);
}

static void mem_flush(png_structp png) {
    (void)png;
}

/* Writes a PNG of any colour type from packed rows (rowbytes each), as another program would. */
static void write_png(struct buf *out, int w, int h, int colour, int depth, int interlace,
                      const uint8_t *rows, size_t rowbytes, const png_color *palette, int npalette) {
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        fprintf(stderr, "test: libpng failed to write the fixture\n");
        exit(2);
    }
    png_set_write_fn(png, out, mem_write, mem_flush);
    png_set_IHDR(png, info, w, h, depth, colour, interlace, PNG_COMPRESSION_TYPE_BASE, PNG_FILTER_TYPE_BASE);
    if (palette)
        png_set_PLTE(png, info, palette, npalette);
    png_write_info(png, info);
    int passes = png_set_interlace_handling(png);
    for (int pass = 0; pass < passes; pass++)
        for (int y = 0; y < h; y++)
            png_write_row(png, rows + (size_t)y * rowbytes);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
}

static void test_png_grey_and_alpha(void) {
    enum { W = 9, H = 7 };
    uint8_t grey[W * H], rgba[W * H * 4], rgb16[W * H * 6], grey1[H * 2], pal[W * H];
    for (int i = 0; i < W * H; i++) {
        grey[i] = (uint8_t)(i * 4);
        pal[i] = (uint8_t)(i % 3);
        for (int c = 0; c < 4; c++)
            rgba[i * 4 + c] = (uint8_t)(i * 3 + c * 50);
        for (int c = 0; c < 3; c++) {
            rgb16[i * 6 + c * 2] = (uint8_t)(i + c * 70); /* high byte survives */
            rgb16[i * 6 + c * 2 + 1] = 0x33;
        }
    }
    memset(grey1, 0xaa, sizeof grey1); /* 1-bit: alternate black and white */
    struct buf b = {0};
    struct image im;

    write_png(&b, W, H, PNG_COLOR_TYPE_GRAY, 8, PNG_INTERLACE_NONE, grey, W, NULL, 0);
    CHECK(image_decode(b.data, b.len, "grey", &im) == 0);
    int ok = im.w == W && im.h == H;
    for (int i = 0; ok && i < W * H; i++)
        ok = im.rgb[i * 3] == grey[i] && im.rgb[i * 3 + 1] == grey[i] && im.rgb[i * 3 + 2] == grey[i];
    CHECK(ok);
    image_free(&im);
    buf_free(&b);

    write_png(&b, W, H, PNG_COLOR_TYPE_RGB_ALPHA, 8, PNG_INTERLACE_ADAM7, rgba, W * 4, NULL, 0);
    CHECK(image_decode(b.data, b.len, "rgba", &im) == 0);
    ok = im.w == W && im.h == H;
    for (int i = 0; ok && i < W * H; i++)
        ok = memcmp(im.rgb + i * 3, rgba + i * 4, 3) == 0;
    CHECK(ok);
    image_free(&im);
    buf_free(&b);

    write_png(&b, W, H, PNG_COLOR_TYPE_RGB, 16, PNG_INTERLACE_NONE, rgb16, W * 6, NULL, 0);
    CHECK(image_decode(b.data, b.len, "rgb16", &im) == 0);
    ok = im.w == W && im.h == H;
    for (int i = 0; ok && i < W * H * 3; i++)
        ok = im.rgb[i] == rgb16[i * 2];
    CHECK(ok);
    image_free(&im);
    buf_free(&b);

    png_color palette[3] = {{255, 0, 0}, {0, 255, 0}, {10, 20, 30}};
    write_png(&b, W, H, PNG_COLOR_TYPE_PALETTE, 8, PNG_INTERLACE_NONE, pal, W, palette, 3);
    CHECK(image_decode(b.data, b.len, "palette", &im) == 0);
    ok = im.w == W && im.h == H;
    for (int i = 0; ok && i < W * H; i++)
        ok = im.rgb[i * 3] == palette[pal[i]].red && im.rgb[i * 3 + 2] == palette[pal[i]].blue;
    CHECK(ok);
    image_free(&im);
    buf_free(&b);

    write_png(&b, W, H, PNG_COLOR_TYPE_GRAY, 1, PNG_INTERLACE_NONE, grey1, 2, NULL, 0);
    CHECK(image_decode(b.data, b.len, "grey1", &im) == 0);
    CHECK(im.w == W && im.rgb && im.rgb[0] == 255 && im.rgb[3] == 0 && im.rgb[5] == 0);
    image_free(&im);
    buf_free(&b);
}

/* A JPEG as a camera or PIL would write it. */
static void write_jpeg(const uint8_t *px, int w, int h, int comps, J_COLOR_SPACE cs, unsigned char **out,
                       unsigned long *n) {
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr jerr;
    ci.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&ci);
    *out = NULL;
    *n = 0;
    jpeg_mem_dest(&ci, out, n);
    ci.image_width = w;
    ci.image_height = h;
    ci.input_components = comps;
    ci.in_color_space = cs;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, 95, TRUE);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = (JSAMPROW)px + (size_t)ci.next_scanline * w * comps;
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
}

static double mean_abs_error(const uint8_t *a, const uint8_t *b, size_t n) {
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += abs((int)a[i] - (int)b[i]);
    return sum / (double)n;
}

static void test_jpeg(void) {
    struct image src, im;
    pattern(&src, 64, 48, 0);
    unsigned char *jpg;
    unsigned long n;
    write_jpeg(src.rgb, 64, 48, 3, JCS_RGB, &jpg, &n);
    CHECK(image_decode(jpg, n, "jpeg", &im) == 0);
    CHECK(im.w == 64 && im.h == 48);
    CHECK(im.rgb && mean_abs_error(im.rgb, src.rgb, 64 * 48 * 3) < 3.0);
    image_free(&im);

    /* Truncated: libjpeg would only warn and paint grey; we refuse. */
    CHECK(image_decode(jpg, n / 2, "cut.jpg", &im) == -1);
    CHECK_HAS(err_msg(), "cut.jpg: bad JPEG");
    CHECK(im.rgb == NULL);

    /* A declared size beyond the limits: patch the SOF0 frame header. */
    for (unsigned long i = 2; i + 9 < n; i++)
        if (jpg[i] == 0xff && jpg[i + 1] == 0xc0) {
            jpg[i + 5] = jpg[i + 7] = 0xea; /* 60000 x 60000 */
            jpg[i + 6] = jpg[i + 8] = 0x60;
            break;
        }
    CHECK(image_decode(jpg, n, "big.jpg", &im) == -1);
    CHECK_HAS(err_msg(), "big.jpg: JPEG of 60000x60000 pixels exceeds the limits");
    free(jpg);

    uint8_t grey[64 * 48];
    for (int i = 0; i < 64 * 48; i++)
        grey[i] = src.rgb[i * 3];
    write_jpeg(grey, 64, 48, 1, JCS_GRAYSCALE, &jpg, &n);
    CHECK(image_decode(jpg, n, "grey.jpg", &im) == 0);
    int ok = im.w == 64 && im.h == 48;
    for (int i = 0; ok && i < 64 * 48; i++)
        ok = im.rgb[i * 3] == im.rgb[i * 3 + 1] && im.rgb[i * 3] == im.rgb[i * 3 + 2] &&
             abs(im.rgb[i * 3] - grey[i]) < 16;
    CHECK(ok);
    image_free(&im);
    free(jpg);

    uint8_t cmyk[16 * 8 * 4];
    memset(cmyk, 100, sizeof cmyk);
    write_jpeg(cmyk, 16, 8, 4, JCS_CMYK, &jpg, &n);
    CHECK(image_decode(jpg, n, "cmyk.jpg", &im) == -1);
    CHECK_HAS(err_msg(), "cmyk.jpg: CMYK JPEG images are not supported");
    free(jpg);
    image_free(&src);
}

/* A greyscale progressive JPEG; with `scans` its own scan script, else libjpeg's usual one (about 6 scans).
 */
static void write_progressive(const uint8_t *grey, int w, int h, const jpeg_scan_info *scans, int nscans,
                              unsigned char **out, unsigned long *n) {
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr jerr;
    ci.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&ci);
    *out = NULL;
    *n = 0;
    jpeg_mem_dest(&ci, out, n);
    ci.image_width = w;
    ci.image_height = h;
    ci.input_components = 1;
    ci.in_color_space = JCS_GRAYSCALE;
    jpeg_set_defaults(&ci);
    jpeg_simple_progression(&ci);
    if (scans) {
        ci.scan_info = scans;
        ci.num_scans = nscans;
    }
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = (JSAMPROW)grey + (size_t)ci.next_scanline * w;
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
}

/* The longest scan script libjpeg accepts for one component: the DC and each of the 63 AC coefficients in its
 * own band, each sent one bit at a time (a first scan at Al 10, then ten refinements): 64 * 11 = 704 scans.
 */
static int many_scans(jpeg_scan_info *v) {
    int k = 0;
    for (int band = 0; band < 64; band++)
        for (int al = 10; al >= 0; al--, k++)
            v[k] = (jpeg_scan_info){.comps_in_scan = 1,
                                    .component_index = {0},
                                    .Ss = band,
                                    .Se = band,
                                    .Ah = al == 10 ? 0 : al + 1,
                                    .Al = al};
    return k;
}

static void test_jpeg_scans(void) {
    enum { W = 24, H = 16 };
    uint8_t grey[W * H];
    for (int i = 0; i < W * H; i++)
        grey[i] = (uint8_t)(i % W * 6 + i / W * 4);
    unsigned char *jpg;
    unsigned long n;
    struct image im;
    write_progressive(grey, W, H, NULL, 0, &jpg, &n);
    CHECK(n > 2 && jpg[0] == 0xff && memmem(jpg, n, "\xff\xc2", 2) != NULL); /* SOF2: progressive */
    CHECK(image_decode(jpg, n, "prog.jpg", &im) == 0);
    double err = 0;
    for (int i = 0; im.w == W && im.h == H && i < W * H; i++)
        err += abs(im.rgb[i * 3] - grey[i]) / (double)(W * H);
    CHECK(im.w == W && im.h == H && err < 3.0);
    image_free(&im);
    free(jpg);

    static jpeg_scan_info scans[704];
    int nscans = many_scans(scans);
    CHECK(nscans == 704 && nscans > IMAGE_JPEG_MAX_SCANS);
    write_progressive(grey, W, H, scans, nscans, &jpg, &n);
    CHECK(image_decode(jpg, n, "scans.jpg", &im) == -1);
    CHECK_STR(err_msg(), "scans.jpg: bad JPEG: more than 500 scans");
    CHECK(im.rgb == NULL);
    free(jpg);
    /* The same file within the budget decodes: the limit is what refused it. */
    write_progressive(grey, W, H, scans, IMAGE_JPEG_MAX_SCANS - 1, &jpg, &n);
    CHECK(image_decode(jpg, n, "fewer.jpg", &im) == 0 && im.w == W);
    image_free(&im);
    free(jpg);
}

static void test_format(void) {
    struct image src;
    void *png;
    size_t n;
    pattern(&src, 5, 4, 1);
    CHECK(image_png_encode(&src, &png, &n) == 0);
    CHECK_STR(image_format(png, n), "png");
    CHECK(image_format(png, 7) == NULL);
    CHECK_STR(image_format("\xff\xd8\xff\xe0", 4), "jpg");
    CHECK(image_format("\xff\xd8", 2) == NULL);
    CHECK(image_format("GIF89a", 6) == NULL);
    CHECK(image_format("", 0) == NULL);
    free(png);
    image_free(&src);
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* PNG's CRC-32 (ISO 3309), bit by bit: the test needs a valid checksum for a crafted header. */
static uint32_t crc32_png(const uint8_t *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return c ^ 0xffffffffu;
}

static void test_png_hostile(void) {
    struct image src, im;
    void *png;
    size_t n;
    pattern(&src, 20, 20, 3);
    CHECK(image_png_encode(&src, &png, &n) == 0);
    uint8_t *p = png;

    CHECK(image_decode(p, n / 2, "cut.png", &im) == -1);
    CHECK_HAS(err_msg(), "cut.png: bad PNG: ");
    CHECK(im.rgb == NULL);
    /* Everything but the IEND chunk: the end is part of the file. */
    CHECK(image_decode(p, n - 12, "noend.png", &im) == -1);
    CHECK_HAS(err_msg(), "noend.png: bad PNG");

    uint8_t *bad = malloc(n);
    memcpy(bad, p, n);
    bad[n - 20] ^= 0x55; /* inside IDAT: its CRC no longer matches */
    CHECK(image_decode(bad, n, "crc.png", &im) == -1);
    CHECK_HAS(err_msg(), "crc.png: bad PNG");

    /* 100000 x 100000 with a valid CRC, so only our limit stops it. */
    memcpy(bad, p, n);
    uint8_t crc[4];
    put_be32(crc, crc32_png(bad + 12, 17));
    CHECK(memcmp(crc, bad + 29, 4) == 0); /* the helper agrees with libpng */
    put_be32(bad + 16, 100000);
    put_be32(bad + 20, 100000);
    put_be32(bad + 29, crc32_png(bad + 12, 17));
    CHECK(image_decode(bad, n, "huge.png", &im) == -1);
    CHECK_STR(err_msg(),
              "huge.png: PNG of 100000x100000 pixels exceeds the limits (16384 per side, 64M pixels)");
    /* Within a side but over the pixel budget. */
    put_be32(bad + 16, 16384);
    put_be32(bad + 20, 16384);
    put_be32(bad + 29, crc32_png(bad + 12, 17));
    CHECK(image_decode(bad, n, "wide.png", &im) == -1);
    CHECK_HAS(err_msg(), "wide.png: PNG of 16384x16384 pixels exceeds the limits");

    uint8_t noise[300];
    for (size_t i = 0; i < sizeof noise; i++)
        noise[i] = (uint8_t)(i * 131 + 7);
    CHECK(image_decode(noise, sizeof noise, "noise.bin", &im) == -1);
    CHECK_STR(err_msg(), "noise.bin: not a PNG or JPEG image");
    CHECK(image_decode(noise, 0, "empty", &im) == -1);
    CHECK_STR(err_msg(), "empty: not a PNG or JPEG image");
    CHECK(image_decode(p, 8, "sig.png", &im) == -1);
    CHECK_HAS(err_msg(), "sig.png: bad PNG");
    free(bad);
    free(png);
    image_free(&src);
}

static void test_alloc_limits(void) {
    struct image im;
    CHECK(image_alloc(&im, 0, 5) == -1 && im.rgb == NULL);
    CHECK(image_alloc(&im, 16385, 1) == -1);
    CHECK_HAS(err_msg(), "16385x1 pixels is outside the limits");
    CHECK(image_alloc(&im, 16384, 16384) == -1);
    CHECK(image_alloc(&im, 3, 2) == 0 && im.rgb && im.rgb[17] == 0);
    image_free(&im);
    CHECK(im.rgb == NULL);
    struct image empty = {0};
    void *png;
    size_t n;
    CHECK(image_png_encode(&empty, &png, &n) == -1);
}

int main(void) {
    test_png_round_trip();
    test_png_grey_and_alpha();
    test_jpeg();
    test_jpeg_scans();
    test_format();
    test_png_hostile();
    test_alloc_limits();
    return check_done("test_engine_image");
}

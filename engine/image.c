/* image: RGB images in memory, deterministic PNG encoding, and bounded PNG/JPEG decoding that turns every
 * libpng/libjpeg failure (they report errors by longjmp) into -1 with one err_set line. */
#include "engine/image.h"
#include "util/buf.h"
#include "util/err.h"

#include <setjmp.h>
#include <stdio.h> /* before jpeglib.h, which needs FILE */
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>
#include <png.h>

#define IMAGE_MAX_SIDE 16384
#define IMAGE_MAX_PIXELS (64L * 1024 * 1024)
/* zlib's default level: level 9 took several times as long for files a few per cent smaller. The bytes are
 * still a function of the pixels for a given zlib. */
#define PNG_LEVEL 6

static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

static int image_size_ok(long w, long h) {
    return w >= 1 && h >= 1 && w <= IMAGE_MAX_SIDE && h <= IMAGE_MAX_SIDE && w * h <= IMAGE_MAX_PIXELS;
}

int image_alloc(struct image *im, int w, int h) {
    im->w = im->h = 0;
    im->rgb = NULL;
    if (!image_size_ok(w, h))
        return err_set("image: %dx%d pixels is outside the limits (1..16384 per side, at most 64M pixels)", w,
                       h);
    im->rgb = calloc((size_t)w * (size_t)h, 3);
    if (!im->rgb)
        return err_set("image: out of memory for %dx%d pixels", w, h);
    im->w = w;
    im->h = h;
    return 0;
}

void image_free(struct image *im) {
    if (!im)
        return;
    free(im->rgb);
    im->rgb = NULL;
    im->w = im->h = 0;
}

/* ---- PNG ----------------------------------------------------------------------------------------------- */

/* What libpng's callbacks share with us: the memory being read or written and the last error text. */
struct png_ctx {
    const unsigned char *data; /* reading */
    size_t n, pos;
    struct buf out; /* writing */
    char msg[256];  /* set by the error callback; empty when we reported the error ourselves */
};

static void png_error_cb(png_structp png, png_const_charp msg) {
    struct png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_warning_cb(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

static void png_write_cb(png_structp png, png_bytep data, size_t n) {
    struct png_ctx *c = png_get_io_ptr(png);
    buf_append(&c->out, data, n);
}

static void png_flush_cb(png_structp png) {
    (void)png;
}

static void png_read_cb(png_structp png, png_bytep data, size_t n) {
    struct png_ctx *c = png_get_io_ptr(png);
    if (n > c->n - c->pos)
        png_error(png, "truncated file");
    memcpy(data, c->data + c->pos, n);
    c->pos += n;
}

/* Everything libpng may longjmp out of lives here, so no local of the caller is touched after a jump. */
static int png_encode_body(png_structp png, png_infop info, const struct image *im) {
    if (setjmp(png_jmpbuf(png)))
        return -1;
    png_set_write_fn(png, png_get_error_ptr(png), png_write_cb, png_flush_cb);
    png_set_compression_level(png, PNG_LEVEL);
    png_set_filter(png, PNG_FILTER_TYPE_BASE, PNG_ALL_FILTERS);
    png_set_IHDR(png, info, (png_uint_32)im->w, (png_uint_32)im->h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_BASE, PNG_FILTER_TYPE_BASE);
    png_write_info(png, info);
    for (int y = 0; y < im->h; y++)
        png_write_row(png, im->rgb + (size_t)y * (size_t)im->w * 3);
    png_write_end(png, info);
    return 0;
}

int image_png_encode(const struct image *im, void **png, size_t *n) {
    if (!im->rgb || !image_size_ok(im->w, im->h))
        return err_set("image: cannot encode a %dx%d image", im->w, im->h);
    struct png_ctx c = {0};
    png_structp p = png_create_write_struct(PNG_LIBPNG_VER_STRING, &c, png_error_cb, png_warning_cb);
    png_infop info = p ? png_create_info_struct(p) : NULL;
    int rc = info ? png_encode_body(p, info, im) : -1;
    png_destroy_write_struct(&p, &info);
    if (rc != 0) {
        buf_free(&c.out);
        return err_set("image: PNG encoding failed: %s", c.msg[0] ? c.msg : "out of memory");
    }
    *n = c.out.len;
    *png = buf_take(&c.out);
    return 0;
}

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Refuses huge declared sizes before libpng allocates anything for them. */
static int png_check_ihdr(const unsigned char *d, size_t n, const char *what) {
    if (n < 24 || memcmp(d + 12, "IHDR", 4) != 0)
        return 0; /* libpng names the problem */
    uint32_t w = be32(d + 16), h = be32(d + 20);
    if (w > IMAGE_MAX_SIDE || h > IMAGE_MAX_SIDE || (uint64_t)w * h > IMAGE_MAX_PIXELS)
        return err_set("%s: PNG of %ux%u pixels exceeds the limits (16384 per side, 64M pixels)", what, w, h);
    return 0;
}

/* Asks libpng for 8-bit RGB whatever the file holds: palette, grey, 16-bit, alpha, interlace. */
static int png_rgb8_transforms(png_structp png, png_infop info) {
    png_set_expand(png);
    png_set_strip_16(png);
    png_set_strip_alpha(png);
    png_set_gray_to_rgb(png);
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    return passes;
}

static int png_decode_body(png_structp png, png_infop info, struct png_ctx *c, const char *what,
                           struct image *out) {
    if (setjmp(png_jmpbuf(png)))
        return -1;
    png_set_read_fn(png, c, png_read_cb);
    png_set_user_limits(png, IMAGE_MAX_SIDE, IMAGE_MAX_SIDE);
    png_read_info(png, info);
    int passes = png_rgb8_transforms(png, info);
    int w = (int)png_get_image_width(png, info), h = (int)png_get_image_height(png, info);
    if (png_get_channels(png, info) != 3 || png_get_bit_depth(png, info) != 8)
        return err_set("%s: PNG colour format cannot be converted to 8-bit RGB", what);
    if (image_alloc(out, w, h) != 0)
        return err_prefix("%s", what);
    for (int pass = 0; pass < passes; pass++)
        for (int y = 0; y < h; y++)
            png_read_row(png, out->rgb + (size_t)y * (size_t)w * 3, NULL);
    png_read_end(png, NULL);
    return 0;
}

static int png_decode(const unsigned char *data, size_t n, const char *what, struct image *out) {
    if (png_check_ihdr(data, n, what) != 0)
        return -1;
    struct png_ctx c = {.data = data, .n = n};
    png_structp p = png_create_read_struct(PNG_LIBPNG_VER_STRING, &c, png_error_cb, png_warning_cb);
    png_infop info = p ? png_create_info_struct(p) : NULL;
    int rc = info ? png_decode_body(p, info, &c, what, out) : -1;
    png_destroy_read_struct(&p, &info, NULL);
    if (rc == 0)
        return 0;
    image_free(out);
    if (c.msg[0] || !info)
        return err_set("%s: bad PNG: %s", what, c.msg[0] ? c.msg : "out of memory");
    return -1;
}

/* ---- JPEG ---------------------------------------------------------------------------------------------- */

struct jpeg_ctx {
    struct jpeg_error_mgr pub; /* first, so the library's err pointer is ours */
    struct jpeg_progress_mgr progress;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
};

static void jpeg_error_cb(j_common_ptr cinfo) {
    struct jpeg_ctx *c = (struct jpeg_ctx *)cinfo->err;
    c->pub.format_message(cinfo, c->msg);
    longjmp(c->jump, 1);
}

/* libjpeg only warns about corrupt or truncated data and fills the gap with grey; we refuse such a file. */
static void jpeg_message_cb(j_common_ptr cinfo, int level) {
    if (level < 0)
        jpeg_error_cb(cinfo);
}

/* Called as the decoder works through the file; stops a progressive file at its scan budget. */
static void jpeg_progress_cb(j_common_ptr cinfo) {
    struct jpeg_decompress_struct *ci = (struct jpeg_decompress_struct *)cinfo;
    struct jpeg_ctx *c = (struct jpeg_ctx *)cinfo->err;
    if (ci->input_scan_number <= IMAGE_JPEG_MAX_SCANS)
        return;
    snprintf(c->msg, sizeof c->msg, "more than %d scans", IMAGE_JPEG_MAX_SCANS);
    longjmp(c->jump, 1);
}

static int jpeg_decode_body(struct jpeg_decompress_struct *ci, struct jpeg_ctx *c, const unsigned char *data,
                            size_t n, const char *what, struct image *out) {
    if (setjmp(c->jump))
        return -1;
    jpeg_create_decompress(ci);
    ci->progress = &c->progress; /* after create, which clears every field but err */
    jpeg_mem_src(ci, data, (unsigned long)n);
    jpeg_read_header(ci, TRUE);
    if (!image_size_ok(ci->image_width, ci->image_height))
        return err_set("%s: JPEG of %ux%u pixels exceeds the limits (16384 per side, 64M pixels)", what,
                       ci->image_width, ci->image_height);
    if (ci->jpeg_color_space == JCS_CMYK || ci->jpeg_color_space == JCS_YCCK)
        return err_set("%s: CMYK JPEG images are not supported (convert it to RGB)", what);
    ci->out_color_space = JCS_RGB;
    ci->dct_method = JDCT_ISLOW; /* exact and the same on every machine */
    jpeg_start_decompress(ci);
    if (ci->output_components != 3 || image_alloc(out, (int)ci->output_width, (int)ci->output_height) != 0)
        return err_set("%s: JPEG cannot be decoded to RGB", what);
    while (ci->output_scanline < ci->output_height) {
        JSAMPROW row = out->rgb + (size_t)ci->output_scanline * (size_t)out->w * 3;
        jpeg_read_scanlines(ci, &row, 1);
    }
    jpeg_finish_decompress(ci);
    return 0;
}

static int jpeg_decode(const unsigned char *data, size_t n, const char *what, struct image *out) {
    struct jpeg_decompress_struct ci;
    struct jpeg_ctx c;
    memset(&ci, 0, sizeof ci);
    memset(&c, 0, sizeof c);
    ci.err = jpeg_std_error(&c.pub);
    c.pub.error_exit = jpeg_error_cb;
    c.pub.emit_message = jpeg_message_cb;
    c.progress.progress_monitor = jpeg_progress_cb;
    int rc = jpeg_decode_body(&ci, &c, data, n, what, out);
    jpeg_destroy_decompress(&ci);
    if (rc == 0)
        return 0;
    image_free(out);
    return c.msg[0] ? err_set("%s: bad JPEG: %s", what, c.msg) : -1;
}

const char *image_format(const void *data, size_t n) {
    const unsigned char *d = data;
    if (n >= 8 && memcmp(d, png_sig, 8) == 0)
        return "png";
    if (n >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff)
        return "jpg";
    return NULL;
}

int image_decode(const void *data, size_t n, const char *what, struct image *out) {
    const char *format = image_format(data, n);
    out->w = out->h = 0;
    out->rgb = NULL;
    if (!format)
        return err_set("%s: not a PNG or JPEG image", what);
    return format[0] == 'p' ? png_decode(data, n, what, out) : jpeg_decode(data, n, what, out);
}

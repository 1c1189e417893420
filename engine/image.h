/* image: 8-bit RGB images in memory and their file formats (PNG through libpng, JPEG through libjpeg-turbo).
 * Decoders accept only what they can fully check: bounded sizes (at most 16384 x 16384), any PNG colour type
 * converted to RGB (alpha dropped), JPEG greyscale or colour, at most 500 scans. Hostile files give -1 with
 * one err_set line. */
#ifndef PULSE_ENGINE_IMAGE_H
#define PULSE_ENGINE_IMAGE_H

#include <stddef.h>
#include <stdint.h>

struct image {
    int w, h;     /* pixels */
    uint8_t *rgb; /* w * h * 3 bytes, row-major, top row first */
};

int image_alloc(struct image *im, int w, int h);
void image_free(struct image *im);

/* Encodes to PNG (8-bit RGB, no interlace, fixed compression level, no timestamps: the same pixels always
 * give the same bytes). *png is malloc'd. */
int image_png_encode(const struct image *im, void **png, size_t *n);
/* The file format its signature gives the data: "png", "jpg", or NULL for anything else. */
const char *image_format(const void *data, size_t n);
/* Decodes PNG or JPEG (told apart by image_format). `what` names the data in error messages. Progressive
 * JPEGs of more than IMAGE_JPEG_MAX_SCANS scans are refused: each scan is a pass over the whole image, so a
 * small file of thousands of scans could keep the decoder busy for minutes (djpeg -maxscans guards the same
 * way). */
#define IMAGE_JPEG_MAX_SCANS 500
int image_decode(const void *data, size_t n, const char *what, struct image *out);

#endif

/* fuzz_image: PNG and JPEG decoding through libpng and libjpeg (data sets, MMBench's base64 images). Our part
 * is the limits and the error paths (a longjmp out of either library). Property: a decoded image is within
 * the limits and survives our PNG encoder and decoder pixel for pixel. */
#include <string.h>

#include "engine/image.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct image im = {0}, back = {0};
    if (image_decode(data, size, "fuzz", &im) != 0)
        return 0;
    FUZZ_CHECK(im.w >= 1 && im.h >= 1 && im.w <= 16384 && im.h <= 16384 && im.rgb);
    void *png = NULL;
    size_t n = 0;
    if ((size_t)im.w * (size_t)im.h <= 1u << 20) { /* encoding a huge image only costs time */
        FUZZ_CHECK(image_png_encode(&im, &png, &n) == 0);
        FUZZ_CHECK(image_decode(png, n, "fuzz png", &back) == 0);
        FUZZ_CHECK(back.w == im.w && back.h == im.h &&
                   memcmp(back.rgb, im.rgb, (size_t)im.w * (size_t)im.h * 3) == 0);
        image_free(&back);
        free(png);
    }
    image_free(&im);
    return 0;
}

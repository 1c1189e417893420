/* imagetar: the small image sets the engine tests build: n PNG images in one images.tar (the data set
 * format), image k named ids[k], w[k] x h[k] pixels, byte i of its RGB data pattern(i, k), so each test keeps
 * its own pixels. Test code: failures are CHECKed. */
#ifndef PULSE_TESTS_IMAGETAR_H
#define PULSE_TESTS_IMAGETAR_H

#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "engine/dataset.h"
#include "engine/image.h"

static inline void *imagetar_make(const char *const *ids, const int *w, const int *h, int n,
                                  uint8_t (*pattern)(int i, int k), size_t *len) {
    struct ds_tar *t = ds_tar_new();
    for (int k = 0; k < n; k++) {
        struct image im;
        image_alloc(&im, w[k], h[k]);
        for (int i = 0; i < w[k] * h[k] * 3; i++)
            im.rgb[i] = pattern(i, k);
        void *png;
        size_t bytes;
        CHECK(image_png_encode(&im, &png, &bytes) == 0);
        CHECK(ds_tar_add_image(t, ids[k], png, bytes, ids[k]) == 0);
        free(png);
        image_free(&im);
    }
    void *data = NULL;
    CHECK(ds_tar_finish(t, &data, len) == 0);
    return data;
}

#endif

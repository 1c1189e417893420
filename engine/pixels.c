/* pixels: CLIP normalisation of RGB images (engine/pixels.h). */
#include "engine/pixels.h"

#include "util/err.h"

static const float clip_mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
static const float clip_std[3] = {0.26862954f, 0.26130258f, 0.27577711f};

int pixels_from_image(const struct image *im, int size, const char *what, float *out) {
    if (im->w != size || im->h != size)
        return err_set("%s: image is %dx%d, the model reads %dx%d", what, im->w, im->h, size, size);
    size_t plane = (size_t)size * (size_t)size;
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < plane; i++) {
            float v = (float)im->rgb[i * 3 + (size_t)c] / 255.0f;
            out[(size_t)c * plane + i] = (v - clip_mean[c]) / clip_std[c];
        }
    return 0;
}

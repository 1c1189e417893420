/* pixels: an RGB image to the normalised [channels, size, size] floats a CLIP vision tower reads: each
 * channel scaled to [0, 1], minus CLIP's mean, over CLIP's standard deviation (the values of
 * CLIPImageProcessor, which LLaVA-1.5 uses). Images must already be size x size (PULSE-Synth draws them so);
 * resizing and cropping for real photos come with the real-model loaders. */
#ifndef PULSE_ENGINE_PIXELS_H
#define PULSE_ENGINE_PIXELS_H

#include "engine/image.h"

/* out: [3, size, size]. -1 with one line (naming `what`) when the image is not size x size. */
int pixels_from_image(const struct image *im, int size, const char *what, float *out);

#endif

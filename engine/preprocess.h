/* preprocess: a photo of any size to the [3, S, S] normalised floats LLaVA-1.5's CLIP tower reads, the two
 * ways LLaVA-1.5 is run, pixel for pixel as the reference does it (transformers' PIL-based
 * CLIPImageProcessor, resampling by Pillow):
 *   PREPROCESS_PAD  LLaVA-1.5's original recipe (image_aspect_ratio "pad"): the image centred on a square of
 *                   CLIP's mean colour, then the CLIP processor. The default.
 *   PREPROCESS_HF   llava-hf's LlavaProcessor: the CLIP processor on the image as it is.
 * The CLIP processor: resize the shortest edge to S (Pillow's bicubic, the long edge truncated as
 * transformers computes it), centre crop S x S, then CLIP's normalisation (engine/pixels.h). Results are
 * bit-exact against the reference in the uint8 domain and therefore in the floats (docs/formats.md, "Image
 * preprocessing"). */
#ifndef PULSE_ENGINE_PREPROCESS_H
#define PULSE_ENGINE_PREPROCESS_H

#include "engine/image.h"

enum preprocess_mode { PREPROCESS_PAD, PREPROCESS_HF };

/* Bounds on what is accepted: crop sizes (CLIP towers use 224 to 448) and image sides (the decoders' bound).
 */
#define PREPROCESS_MAX_SIZE 2048
#define PREPROCESS_MAX_SIDE 16384

/* "pad" or "hf" to a mode; -1 with one line naming `what` for anything else. */
int preprocess_mode_parse(const char *name, const char *what, enum preprocess_mode *mode);
const char *preprocess_mode_name(enum preprocess_mode mode);

/* The preprocessed image before normalisation: out becomes a size x size RGB8 image (image_free it). */
int preprocess_rgb(const struct image *im, int size, enum preprocess_mode mode, const char *what,
                   struct image *out);
/* out: [3, size, size] floats. -1 with one line naming `what` for an empty or oversized image or size. */
int preprocess_image(const struct image *im, int size, enum preprocess_mode mode, const char *what,
                     float *out);

/* Pillow's Image.resize((w, h), Image.BICUBIC) on an RGB image, exactly: out becomes w x h (image_free it).
 */
int preprocess_resize(const struct image *im, int w, int h, const char *what, struct image *out);

#endif

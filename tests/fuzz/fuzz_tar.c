/* fuzz_tar: a data set's images.tar (libarchive; names, types and sizes from anywhere). Property: the ids it
 * indexes are sorted, distinct, and each finds its own bytes inside the archive's buffer. */
#include <string.h>

#include "engine/dataset.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct ds_images *im = NULL;
    if (ds_images_open(data, size, "fuzz", &im) != 0)
        return 0;
    for (size_t i = 0; i < ds_images_count(im); i++) {
        const char *id = ds_images_id(im, i);
        const void *bytes;
        size_t n;
        FUZZ_CHECK(i == 0 || strcmp(ds_images_id(im, i - 1), id) < 0);
        FUZZ_CHECK(ds_images_get(im, id, &bytes, &n) == 0);
        FUZZ_CHECK(n == 0 || bytes);
        volatile uint8_t sum = 0; /* touch every byte: ASan says whether they are all there */
        for (size_t k = 0; k < n; k++)
            sum += ((const uint8_t *)bytes)[k];
        (void)sum;
    }
    ds_images_free(im);
    return 0;
}

/* fuzz_mmbench: MMBench's TSV (quoting, a BOM, base64 images) into a data set's items and images. The first
 * byte picks the prompt template and a row limit. Property: what the reader emits is a valid data set part:
 * its items read back with ds_read_items, as many as it counted, and its image tar opens with as many images.
 */
#include <string.h>

#include "engine/dataset.h"
#include "engine/mmbench.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0)
        return 0;
    char *text = malloc(size);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = 0;
    struct mmbench_out out = {.images = ds_tar_new()};
    enum mmbench_template tmpl = data[0] & 1 ? MMB_VICUNA_V1 : MMB_PLAIN;
    if (mmbench_read(text, size - 1, "fuzz", "dev", data[0] >> 1 & 3, tmpl, &out) == 0) {
        struct ds_items items;
        FUZZ_CHECK(ds_read_items(out.items.data ? out.items.data : "", out.items.len, "items", &items) == 0);
        FUZZ_CHECK(items.n == out.nitems);
        ds_items_free(&items);
        void *tar = NULL;
        size_t n = 0;
        struct ds_images *im = NULL;
        FUZZ_CHECK(ds_tar_finish(out.images, &tar, &n) == 0); /* frees the tar */
        out.images = NULL;
        FUZZ_CHECK(ds_images_open(tar, n, "images", &im) == 0 && ds_images_count(im) == out.nimages);
        ds_images_free(im);
        free(tar);
    }
    ds_tar_free(out.images);
    buf_free(&out.items);
    free(text);
    return 0;
}

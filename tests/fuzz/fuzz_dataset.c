/* fuzz_dataset: the data set's JSONL readers (people, items, examples: imported from any converter). The
 * first byte chooses the reader. Property: every record a reader accepts its writer accepts too (they
 * validate alike), and the written lines read back and write the same bytes. */
#include <string.h>

#include "engine/dataset.h"
#include "fuzz.h"
#include "util/buf.h"

/* read text, write every record to *out; 0 when the reader accepted it */
#define ROUND(T, read, write, free_fn)                                                                       \
    static int round_##T(const char *text, size_t n, struct buf *out) {                                      \
        struct T v;                                                                                          \
        if (read(text, n, "fuzz", &v) != 0)                                                                  \
            return -1;                                                                                       \
        for (size_t i = 0; i < v.n; i++)                                                                     \
            FUZZ_CHECK(write(out, &v.v[i]) == 0);                                                            \
        free_fn(&v);                                                                                         \
        return 0;                                                                                            \
    }
ROUND(ds_people, ds_read_people, ds_write_person, ds_people_free)
ROUND(ds_items, ds_read_items, ds_write_item, ds_items_free)
ROUND(ds_examples, ds_read_examples, ds_write_example, ds_examples_free)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0)
        return 0;
    int (*round)(const char *, size_t, struct buf *) = data[0] % 3 == 0   ? round_ds_people
                                                       : data[0] % 3 == 1 ? round_ds_items
                                                                          : round_ds_examples;
    struct buf a = {0}, b = {0};
    if (round((const char *)data + 1, size - 1, &a) == 0) {
        FUZZ_CHECK(round(a.data ? a.data : "", a.len, &b) == 0);
        FUZZ_CHECK(a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0));
    }
    buf_free(&a);
    buf_free(&b);
    return 0;
}

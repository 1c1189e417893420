/* llava_batch: the tiny LLaVA fixture's training batch, shared by the engine tests: input ids, attention mask
 * and pixel values from tests/data/llava_tiny/io.safetensors, the labels from a second fixture file (each
 * reference script writes its own). Both files stay open so that a test can read its reference tensors from
 * the labels file too. */
#ifndef PULSE_TESTS_LLAVA_BATCH_H
#define PULSE_TESTS_LLAVA_BATCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "numcheck.h"
#include "engine/safetensors.h"

struct llava_batch {
    struct st_file io, lab; /* io.safetensors; the file the labels came from */
    int32_t *ids, *mask, *labels;
    float *pixels;
};

/* Opens dir/file into f (st_open's return; -1 for a path too long to hold). */
static inline int fixture_open(const char *dir, const char *file, struct st_file *f) {
    char path[8192];
    int n = snprintf(path, sizeof path, "%s/%s", dir, file);
    return n >= 0 && (size_t)n < sizeof path ? st_open(path, f) : -1;
}

/* The batch of n = rows x tokens positions: tiny_dir/io.safetensors, labels from lab_dir/lab_file; -1 when a
 * file or a tensor is missing or has another size. llava_batch_free releases it either way. */
static inline int llava_batch_load(struct llava_batch *b, const char *tiny_dir, const char *lab_dir,
                                   const char *lab_file, size_t n) {
    memset(b, 0, sizeof *b);
    if (fixture_open(tiny_dir, "io.safetensors", &b->io) < 0 || fixture_open(lab_dir, lab_file, &b->lab) < 0)
        return -1;
    b->ids = malloc(n * sizeof *b->ids);
    b->mask = malloc(n * sizeof *b->mask);
    b->labels = malloc(n * sizeof *b->labels);
    if (fixture_ints(&b->io, "input_ids", b->ids, n) < 0 ||
        fixture_ints(&b->io, "attention_mask", b->mask, n) < 0 ||
        fixture_ints(&b->lab, "labels", b->labels, n) < 0)
        return -1;
    b->pixels = fixture_tensor(&b->io, "pixel_values", NULL);
    return b->pixels ? 0 : -1;
}

static inline void llava_batch_free(struct llava_batch *b) {
    free(b->ids);
    free(b->mask);
    free(b->labels);
    free(b->pixels);
    st_close(&b->io);
    st_close(&b->lab);
    memset(b, 0, sizeof *b);
}

#endif

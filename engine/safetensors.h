/* safetensors: Hugging Face's tensor file format, read and written.
 *
 * A file is: u64 little-endian header length N, N bytes of JSON ({"name": {"dtype", "shape", "data_offsets":
 * [begin, end]}, ..., "__metadata__": {str: str}}), then the data; offsets are relative to the data start.
 * Reading validates everything before trusting anything: N <= 100 MB and within the file, the header is
 * strict JSON starting with '{', every tensor has a known dtype (F32, F16, BF16), a shape of non-negative
 * dims whose product times the dtype size equals end - begin without overflow, offsets in bounds, and the
 * tensors cover the data region exactly, contiguously, without overlap. A hostile file gets one err_set line,
 * never a crash. Tensors are converted to fp32 on request; the file is read into memory (mmap when large). */
#ifndef PULSE_ENGINE_SAFETENSORS_H
#define PULSE_ENGINE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

enum st_dtype { ST_F32, ST_F16, ST_BF16 };

struct st_tensor {
    char *name;
    enum st_dtype dtype;
    int ndim;
    int64_t shape[8];
    size_t nelem;
    const void *data; /* points into the file's data region */
    size_t nbytes;
};

struct st_file {
    struct st_tensor *t; /* sorted by name */
    size_t n;
    char **meta_keys, **meta_values; /* __metadata__ */
    size_t nmeta;
    void *map; /* the whole file (malloc'd or mmap'd) */
    size_t size;
    int mapped;
};

/* Parses an in-memory file (copies nothing: the tensors point into data, which must outlive f). `what` names
 * it in messages. */
int st_parse(const void *data, size_t n, const char *what, struct st_file *f);
/* Reads path (mmap) and parses it. */
int st_open(const char *path, struct st_file *f);
void st_close(struct st_file *f);
const struct st_tensor *st_find(const struct st_file *f, const char *name);
/* Converts a tensor to fp32 into out (nelem floats). */
void st_to_f32(const struct st_tensor *t, float *out);

/* Writing: tensors given as fp32 are stored as F32 (or converted to F16/BF16, round to nearest even). The
 * header lists tensors sorted by name, data in that order, header padded with spaces to a multiple of 8
 * bytes: the same tensors always give the same bytes. */
struct st_out {
    const char *name;
    const float *data;
    int ndim;
    int64_t shape[8];
    enum st_dtype dtype;
};
int st_write(const struct st_out *tensors, size_t n, const char *const *meta_kv, size_t nmeta_pairs,
             void **data, size_t *len);

/* fp16/bf16 conversions (round to nearest even; NaN stays NaN). */
float st_half_to_f32(uint16_t h);
uint16_t st_f32_to_half(float f);
float st_bf16_to_f32(uint16_t h);
uint16_t st_f32_to_bf16(float f);

#endif

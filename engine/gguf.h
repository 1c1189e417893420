/* gguf: GGUF v3, the file format llama.cpp loads, written and read; and LoRA adapters in llama.cpp's adapter
 * layout, so that an unlearned round leaves pulse-pipe as a file `llama-cli --lora` accepts.
 *
 * A file is, little-endian: "GGUF", u32 version (3), u64 tensor count, u64 key-value count; the key-values
 * (key: u64 length + bytes; u32 value type; value); the tensor infos (name; u32 n_dims; n_dims u64 dims in
 * ggml order, ne[0] the contiguous dimension, i.e. the row-major shape reversed; u32 ggml type; u64 offset
 * from the data section); zero padding to the alignment (general.alignment, default 32); the data section,
 * each tensor at an aligned offset and zero-padded to the alignment. The writer emits key-values and tensors
 * in the order given, so the same input always gives the same bytes. The reader trusts nothing: every
 * count, length, type, dimension and offset is checked against the file before use, and a hostile file gets
 * one err_set line. Only F32 and F16 tensors are read or written (what pulse-pipe's adapters need). */
#ifndef PULSE_ENGINE_GGUF_H
#define PULSE_ENGINE_GGUF_H

#include "engine/config.h"
#include "engine/lora.h"

#include <stddef.h>
#include <stdint.h>

#define GGUF_VERSION 3
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DIMS 4

/* Value types, numbered as the format numbers them. */
enum gguf_vtype {
    GGUF_U8,
    GGUF_I8,
    GGUF_U16,
    GGUF_I16,
    GGUF_U32,
    GGUF_I32,
    GGUF_F32,
    GGUF_BOOL,
    GGUF_STR,
    GGUF_ARR,
    GGUF_U64,
    GGUF_I64,
    GGUF_F64,
    GGUF_NVTYPES
};

/* ggml tensor types (GGML_TYPE_F32, GGML_TYPE_F16). */
enum gguf_dtype { GGUF_DT_F32 = 0, GGUF_DT_F16 = 1 };

struct gguf_value {
    enum gguf_vtype type;
    uint64_t u; /* U8, U16, U32, U64, BOOL (0 or 1) */
    int64_t i;  /* I8, I16, I32, I64 */
    double f;   /* F32, F64 */
    char *s;    /* STR: NUL-terminated (len bytes; may hold NULs) */
    size_t len;
    /* ARR (read only): element type, count, and the encoded elements inside the file */
    enum gguf_vtype atype;
    size_t n;
    const void *raw;
};

struct gguf_kv {
    char *key;
    struct gguf_value v;
};

/* ---- writing ---- */

struct gguf_tensor_in {
    const char *name;
    const float *data; /* row-major fp32, converted to `type` (F16: round to nearest even) */
    int ndim;
    uint64_t shape[GGUF_MAX_DIMS]; /* row-major, as numpy and PEFT give it; the file holds it reversed */
    enum gguf_dtype type;
};

/* Encodes the file (*data malloc'd). Scalars and strings only; the alignment is general.alignment's (a U32
 * power of two) when the key-values hold it, else 32. -1 with err_set on an array, a duplicate key or tensor
 * name, or an empty or over-large shape. */
int gguf_write(const struct gguf_kv *kv, size_t nkv, const struct gguf_tensor_in *t, size_t nt, void **data,
               size_t *len);

/* ---- reading ---- */

struct gguf_tensor {
    char *name;
    int ndim;
    uint64_t ne[GGUF_MAX_DIMS]; /* ggml order: ne[0] contiguous */
    enum gguf_dtype type;
    uint64_t offset; /* from the data section */
    size_t nelem, nbytes;
    const void *data; /* inside the parsed buffer */
};

struct gguf_file {
    uint32_t version, alignment;
    struct gguf_kv *kv;
    size_t nkv;
    struct gguf_tensor *t; /* in file order */
    size_t nt;
    size_t data_start;
};

/* Parses an in-memory file (tensor data and arrays point into data, which must outlive f). Refuses another
 * magic or version, counts or lengths beyond the file, unknown value types, nested arrays, duplicate keys or
 * tensor names, a general.alignment that is not a U32 power of two, dimensions that are zero or overflow,
 * ggml types other than F32/F16, misaligned or overlapping tensors, and bytes past the last tensor's padding.
 * `what` names the file in messages. On failure f is left empty. */
int gguf_parse(const void *data, size_t n, const char *what, struct gguf_file *f);
void gguf_free(struct gguf_file *f);
const struct gguf_value *gguf_get(const struct gguf_file *f, const char *key);
const struct gguf_tensor *gguf_find(const struct gguf_file *f, const char *name);
/* The tensor's elements as fp32 (nelem floats, in file order). */
void gguf_tensor_f32(const struct gguf_tensor *t, float *out);

/* ---- LoRA adapters for llama.cpp ---- */

/* The base model's shape of a decoder projection ("model.language_model.layers.N.self_attn.q_proj", or the
 * Hub's "language_model.model.layers.N..." layout), for peft_decode: ctx is a struct text_config. -1 for any
 * other module (the vision tower, the projector, lm_head): llama.cpp's "llama" architecture has no tensor
 * for it. */
int gguf_lora_shape(void *ctx, const char *module, size_t *in, size_t *out);

/* The adapter as llama.cpp's convert_lora_to_gguf.py writes it for a LLaMA base: general.architecture
 * "llama", general.type "adapter", adapter.type "lora", adapter.lora.alpha (f32); per module
 * "blk.N.<attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down>.weight.lora_a" = A [r, in] and
 * ".lora_b" = B [out, r], with B's rows of attn_q and attn_k permuted per head from Hugging Face's rotary
 * layout (halves) to llama.cpp's (interleaved pairs), the permutation the converter applies to the base
 * weights. Tensors by layer, then projection, a before b. -1 with err_set for a module that does not map,
 * a shape that disagrees with t, or a duplicate. */
int gguf_lora_encode(const struct lora *l, const struct text_config *t, enum gguf_dtype type, void **data,
                     size_t *len);

#endif

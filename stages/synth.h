/* synth: the PULSE-Synth world, the embedded stand-in for MLLMU-Bench and MMBench (docs/synth.md).
 *
 * This header is the interface between the files of the synth kind:
 *   synth.c         the stage kind: parameters in, outputs out
 *   synth_people.c  people, their attributes, portraits, questions and training examples
 *   synth_face.c    procedural portraits: identities, photo variations, drawing, the contact sheet
 *   synth_scene.c   the general suite: procedural scenes and their multiple-choice questions
 *   synth_vocab.c   the WordLevel tokenizer over the world's text
 * Everything is a pure function of the parameters: random numbers come from engine/rng.h keyed by the seed
 * and a stream number per purpose (the SYNTH_STREAM_* constants), never from state carried between calls. */
#ifndef PULSE_STAGES_SYNTH_H
#define PULSE_STAGES_SYNTH_H

#include <stddef.h>
#include <stdint.h>
#include "engine/dataset.h"
#include "engine/image.h"
#include "util/buf.h"

/* Streams: rng_key(seed, SYNTH_STREAM_x * 1000003 + index) gives each purpose and item its own generator. */
enum {
    SYNTH_STREAM_PEOPLE = 1, /* names, attributes, which facts are asked */
    SYNTH_STREAM_FACE = 2,   /* identities */
    SYNTH_STREAM_PHOTO = 3,  /* photo variations */
    SYNTH_STREAM_ITEMS = 4,  /* distractors, option order */
    SYNTH_STREAM_SCENE = 5,  /* general-suite scenes */
    SYNTH_STREAM_CORPUS = 6, /* phrasing choices in the corpora */
};

struct synth_params {
    uint64_t seed;
    int real, fictitious;    /* people per group (defaults 153, 500) */
    int image_size;          /* portrait and scene side in pixels (default 32) */
    int photos, test_photos; /* training and held-out photos per person (defaults 4, 2) */
    int general_eval,
        general_train;      /* general-suite items held out / in the pretraining corpus (400, 3000) */
    int fame_min, fame_max; /* how many times a real person's facts appear in pretraining (1, 4) */
};

struct face {
    uint8_t shape, skin, hair_colour, hair_style, eye_colour, glasses, beard, brows, mouth, ears;
};

struct photo {
    float dx, dy;    /* offset of the face centre, in fractions of the image side */
    float scale;     /* face size multiplier */
    float tilt;      /* radians */
    float light;     /* overall brightness multiplier */
    float light_dir; /* strength of a left-right lighting gradient, -1..1 */
    uint8_t bg[3];   /* background colour */
    float noise;     /* standard deviation of pixel noise, in 0..255 units */
    uint64_t noise_key;
};

/* What the kind assembles. Buffers hold JSON Lines (engine/dataset.h writers); images go into the tar. */
struct synth_world {
    struct buf people, items, pretrain, finetune;
    struct ds_tar *images;
    struct face *faces; /* per person, in people order: real first, then fictitious */
    size_t nfaces;
};

/* synth_face.c */
void face_identity(uint64_t key, struct face *f);
int face_same(const struct face *a, const struct face *b);
/* held_out photos vary more (MLLMU-Bench's test set uses transformed photos). */
void face_photo(uint64_t key, int held_out, struct photo *p);
/* Draws into im, which the caller allocated at the wanted size. */
void face_draw(const struct face *f, const struct photo *p, struct image *im);
/* A PNG grid: one row per person (the first `people` of the world), its photos then held-out photos. */
int face_contact_sheet(const struct synth_params *p, const struct synth_world *w, size_t people, void **png,
                       size_t *n);

/* synth_scene.c: appends the general suite: general_eval items (split eval) and general_train items (split
 * train) to w->items, the train ones also as examples (source "general") to w->pretrain, scenes to w->images.
 */
int scene_suite(const struct synth_params *p, struct synth_world *w);

/* synth_people.c: appends people to w->people (and w->faces), their portraits to w->images, their 10
 * questions each to w->items, and their facts, captions and multiple-choice practice to w->pretrain (real)
 * or w->finetune (fictitious). */
int people_make(const struct synth_params *p, struct synth_world *w);

/* synth_vocab.c: a Hugging Face tokenizer.json (WordLevel) whose vocabulary is every word in the world's
 * people, items and corpora. */
int vocab_tokenizer(const struct synth_world *w, char **json, size_t *n);

#endif

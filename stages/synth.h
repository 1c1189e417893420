/* synth: the PULSE-Synth world, the embedded stand-in for MLLMU-Bench and MMBench (docs/synth.md).
 *
 * This header is the interface between the files of the synth kind:
 *   synth.c         the stage kind: parameters in, outputs out
 *   synth_people.c  people, their attributes, portraits, questions and training examples
 *   synth_face.c    procedural portraits: identities, photo variations, drawing, the contact sheet
 *   synth_scene.c   the general suite: procedural scenes and their multiple-choice questions
 *   synth_vocab.c   the WordLevel tokenizer over the world's text
 *   synth_rand.c    the draw helpers the others share (keys, bounded draws, permutations, balanced letters)
 * Everything is a pure function of the parameters: random numbers come from engine/rng.h keyed by the seed
 * and a stream number per purpose (the SYNTH_STREAM_* constants), never from state carried between calls.
 * Parameters are checked once, by the kind (synth.c); the functions below assume values in its ranges. */
#ifndef PULSE_STAGES_SYNTH_H
#define PULSE_STAGES_SYNTH_H

#include <stddef.h>
#include <stdint.h>
#include "engine/dataset.h"
#include "engine/image.h"
#include "util/buf.h"

/* Streams: rng_key(seed, SYNTH_STREAM_x * 1000003 + index) gives each purpose and item its own generator. */
enum {
    SYNTH_STREAM_PEOPLE = 1,   /* names, attributes, which facts are asked */
    SYNTH_STREAM_FACE = 2,     /* identities */
    SYNTH_STREAM_PHOTO = 3,    /* photo variations */
    SYNTH_STREAM_ITEMS = 4,    /* distractors, option order */
    SYNTH_STREAM_SCENE = 5,    /* general-suite scenes */
    SYNTH_STREAM_CORPUS = 6,   /* phrasing choices in the corpora */
    SYNTH_STREAM_STRANGER = 7, /* strangers: identity 2 s, photo 2 s + 1 */
};

#define SYNTH_MAX_PHOTOS 32       /* photo indices per person and kind: training 0..31, held-out 32..63 */
#define SYNTH_MAX_GENERAL 1000000 /* general_eval + general_train: scene streams 0..SYNTH_MAX_GENERAL - 1 */
#define SYNTH_FACE_MIN_DISTANCE 2 /* coarse features in which every person differs from every earlier one */

struct synth_params {
    uint64_t seed;
    int real, fictitious;               /* people per group (defaults 153, 500) */
    int image_size;                     /* portrait and scene side in pixels (default 32) */
    int real_photos, fictitious_photos; /* training photos per real / fictitious person (defaults 6, 6) */
    int test_photos;                    /* held-out photos per person (default 2) */
    int strangers;                      /* unnamed faces: photos the tower learns from (default 0) */
    int described_strangers;            /* how many of them pretraining describes (default: all) */
    int general_eval,
        general_train;      /* general-suite items held out / in the pretraining corpus (400, 8000) */
    int labelled_scenes;    /* how many training scenes (the first) the tower learns from (default: all) */
    int fame_min, fame_max; /* how many times a real person's facts appear in pretraining (1, 4) */
    int fictitious_repetitions; /* how many times a fictitious person's facts appear in fine-tuning (1) */
};

/* Training photos of person i (people order: real first, then fictitious). */
static inline int synth_photos(const struct synth_params *p, int i) {
    return i < p->real ? p->real_photos : p->fictitious_photos;
}

/* The most training photos any person has: the contact sheet's columns before the held-out ones. */
static inline int synth_max_photos(const struct synth_params *p) {
    return p->real_photos > p->fictitious_photos ? p->real_photos : p->fictitious_photos;
}

/* How many values each feature of struct face takes; face_identity draws each uniformly. */
enum {
    N_SHAPE = 4, /* round, oval, long, square */
    N_SKIN = 8,
    N_HAIR_COLOUR = 8,
    N_HAIR_STYLE = 7,
    N_EYE_COLOUR = 5,
    N_GLASSES = 3, /* none, round, square */
    N_BEARD = 4,   /* none, stubble, full, moustache */
    N_BROWS = 3,   /* thin, thick, faint */
    N_MOUTH = 3,   /* neutral, smile, wide */
    N_EARS = 2,    /* small, large */
    N_GARMENT = 8,
};
enum { HAIR_SHORT, HAIR_LONG, HAIR_BALD, HAIR_CURLY, HAIR_BUN, HAIR_MOHAWK, HAIR_PARTED };

/* Coarse features (visible at 32 x 32): shape, skin, hair_colour, hair_style, glasses, beard, garment (the
 * clothes' colour); fine ones: eye_colour, brows, mouth, ears. */
struct face {
    uint8_t shape, skin, hair_colour, hair_style, eye_colour, glasses, beard, brows, mouth, ears, garment;
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
    /* labels.jsonl: what the `tower` kind learns from (docs/synth.md, "Tower labels"): the objects of every
     * training scene and the face of every stranger's photo and real person's training portrait */
    struct buf labels;
    struct ds_tar *images;
    struct face *faces; /* per person, in people order: real first, then fictitious */
    size_t nfaces;
};

/* FNV-1a, for the synth's string sets (names, words): fast, and only ever compared within one run. */
static inline uint64_t synth_hash(const char *s, size_t len) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

/* synth_rand.c: a local generator is a key and how many numbers were taken from it. */
struct synth_draw {
    uint64_t key, n;
};
/* rng_key(seed, stream * 1000003 + index): the key of item `index` for purpose `stream` (SYNTH_STREAM_*). */
uint64_t synth_key(uint64_t seed, int stream, uint64_t index);
int synth_below(struct synth_draw *d, int n); /* uniform in 0..n-1 */
float synth_uniform(struct synth_draw *d);    /* uniform in [0, 1) */
/* v becomes a random permutation of 0..n-1. */
void synth_permutation(struct synth_draw *d, int *v, int n);
/* n correct letters (0..3) in random order, each letter n/4 times give or take one: (j + r) mod 4 for a
 * random r, shuffled. */
void synth_letters(struct synth_draw *d, int *letters, int n);

/* synth_face.c */
void face_identity(uint64_t key, struct face *f);
/* How many coarse features (see struct face) differ: what tells two people apart in a small photo. */
int face_distance(const struct face *a, const struct face *b);
/* The key of person `person`'s training (held_out 0) or held-out photo k < SYNTH_MAX_PHOTOS: the one rule
 * that the portraits and the contact sheet share (docs/synth.md, "Portraits"). */
uint64_t face_photo_key(uint64_t seed, size_t person, int held_out, int k);
/* One photo's variation. Training and held-out photos come from the same ranges (different keys): a small
 * model that sees a few photos per person can recognise within the variation it saw, not beyond it. */
void face_photo(uint64_t key, struct photo *p);
/* Draws into im, which the caller allocated at the wanted size. */
void face_draw(const struct face *f, const struct photo *p, struct image *im);
/* Draws face f in the photo of photo_key into im (its size is the photo's) and adds it to w->images as the
 * PNG `name` (`id`.png): the world's portraits and the strangers' photos alike. With `labelled`, the face
 * also becomes a line of w->labels (what the tower may learn from). */
int face_photo_add(struct synth_world *w, const struct face *f, uint64_t photo_key, const char *id,
                   int labelled, struct image *im);
/* The contact sheet's grid: rows (people) and cols (photos) drawn, the zoom, and the PNG's size; capped so
 * that the sheet stays within the image limits (16384 pixels per side, 64M pixels) for any parameters. */
struct sheet_layout {
    int rows, cols, zoom, w, h;
};
void face_sheet_layout(const struct synth_params *p, size_t people, struct sheet_layout *l);
/* A PNG grid: one row per person (the first `people` of the world), its photos then held-out photos. */
int face_contact_sheet(const struct synth_params *p, const struct synth_world *w, size_t people, void **png,
                       size_t *n);

/* synth_scene.c: appends the general suite: general_eval items (split eval) and general_train items (split
 * train) to w->items, the train ones also as examples (source "general": the cloze prompt and the statement
 * with the answer, as likelihood scoring reads them) to w->pretrain, scenes to w->images. */
int scene_suite(const struct synth_params *p, struct synth_world *w);

/* synth_people.c: appends people to w->people (and w->faces), their portraits to w->images, their 10
 * questions each to w->items, and their facts (by name and with portraits) and captions to w->pretrain (real)
 * or w->finetune (fictitious). */
int people_make(const struct synth_params *p, struct synth_world *w);

/* synth_stranger.c: appends `strangers` unnamed faces, one photo each, to w->images (`s<5 digits>`) and
 * w->labels, and the first `described_strangers` descriptions (source "stranger") to w->pretrain. */
int strangers_make(const struct synth_params *p, struct synth_world *w);
/* The description of a face's coarse features: "A round face, tan skin, short blond hair, ...". */
void stranger_describe(const struct face *f, char *out, size_t cap);

/* synth_vocab.c: a Hugging Face tokenizer.json (WordLevel) whose vocabulary is every word in the world's
 * people, items and corpora. */
int vocab_tokenizer(const struct synth_world *w, char **json, size_t *n);

#endif

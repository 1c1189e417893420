/* synth_stranger: unnamed faces described by their appearance, in the pretraining corpus. A vision tower that
 * sees only the real people's named portraits learns to tell those 153 faces apart and little else, so the
 * fictitious people's portraits reach a fine-tuned model as noise (docs/results.md, E19). Real vision towers
 * (CLIP) learned what faces look like from captions of many people; the strangers are that: each a new
 * identity in one photo, answered "A round face, tan skin, short blond hair, ..." (docs/synth.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/image.h"
#include "stages/synth.h"
#include "util/err.h"

/* Words for the coarse features (the ones a 32-pixel photo shows; face_distance counts them), in the order of
 * synth_face.c's tables. */
static const char *const SHAPES[] = {"round", "oval", "long", "square"};
static const char *const SKINS[] = {"pale", "fair", "light", "medium", "olive", "tan", "brown", "dark"};
static const char *const HAIRS[] = {"black", "brown",  "chestnut", "auburn",
                                    "blond", "ginger", "grey",     "white"};
static const char *const GLASSES[] = {"no glasses", "round glasses", "square glasses"};
static const char *const BEARDS[] = {"clean-shaven", "stubble", "a full beard", "a moustache"};
static const char *const GARMENTS[] = {"navy",   "maroon", "green", "mustard",
                                       "purple", "white",  "black", "blue"};

_Static_assert(sizeof SHAPES / sizeof *SHAPES == N_SHAPE, "a word per face shape");
_Static_assert(sizeof SKINS / sizeof *SKINS == N_SKIN, "a word per skin");
_Static_assert(sizeof HAIRS / sizeof *HAIRS == N_HAIR_COLOUR, "a word per hair colour");
_Static_assert(sizeof GLASSES / sizeof *GLASSES == N_GLASSES, "words per kind of glasses");
_Static_assert(sizeof BEARDS / sizeof *BEARDS == N_BEARD, "words per beard");
_Static_assert(sizeof GARMENTS / sizeof *GARMENTS == N_GARMENT, "a word per garment colour");

/* English's article before a word. */
static const char *article(const char *word) {
    return strchr("aeiou", word[0]) ? "an" : "a";
}

/* The hair phrase: its style (short, long, bald, curly, bun, mohawk, parted) with its colour. A bald head's
 * colour goes unsaid (only its few side pixels and a beard show it): the one feature value a description
 * merges with others. */
static void hair_describe(const struct face *f, char *out, size_t cap) {
    static const char *const before[] = {"short ", "long ", "", "curly ", "", "", "parted "};
    static const char *const after[] = {" hair", " hair", "", " hair", " hair in a bun", " mohawk", " hair"};
    const char *colour = HAIRS[f->hair_colour];
    if (f->hair_style == HAIR_BALD)
        snprintf(out, cap, "a bald head");
    else if (f->hair_style == HAIR_MOHAWK)
        snprintf(out, cap, "%s %s mohawk", article(colour), colour);
    else
        snprintf(out, cap, "%s%s%s", before[f->hair_style], colour, after[f->hair_style]);
}

void stranger_describe(const struct face *f, char *out, size_t cap) {
    char hair[48];
    hair_describe(f, hair, sizeof hair);
    const char *shape = SHAPES[f->shape], *a = article(shape);
    snprintf(out, cap, "A%s %s face, %s skin, %s, %s, %s and a %s shirt.", a + 1, shape, SKINS[f->skin], hair,
             GLASSES[f->glasses], BEARDS[f->beard], GARMENTS[f->garment]); /* a + 1: "A" or "An" */
}

static int stranger_emit(const struct synth_params *p, struct synth_world *w, int s, struct image *im) {
    struct face f;
    face_identity(synth_key(p->seed, SYNTH_STREAM_STRANGER, 2 * (uint64_t)s), &f);
    char id[16], ex_id[24], answer[160];
    snprintf(id, sizeof id, "s%05d", s);
    snprintf(ex_id, sizeof ex_id, "pt-%s", id);
    stranger_describe(&f, answer, sizeof answer);
    struct ds_example e = {.id = ex_id,
                           .image = id,
                           .prompt = (char *)"USER: <image>\nDescribe this person's appearance.\nASSISTANT:",
                           .answer = answer,
                           .source = (char *)"stranger"};
    if (s < p->described_strangers && ds_write_example(&w->pretrain, &e) != 0)
        return -1;
    return face_photo_add(w, &f, synth_key(p->seed, SYNTH_STREAM_STRANGER, 2 * (uint64_t)s + 1), id, 1, im);
}

int strangers_make(const struct synth_params *p, struct synth_world *w) {
    struct image im;
    if (p->strangers == 0)
        return 0;
    if (image_alloc(&im, p->image_size, p->image_size) != 0)
        return -1;
    int rc = 0, s = 0;
    for (; s < p->strangers && rc == 0; s++)
        rc = stranger_emit(p, w, s, &im);
    image_free(&im);
    return rc == 0 ? 0 : err_prefix("synth: stranger %d", s - 1);
}

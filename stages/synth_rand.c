/* synth_rand: the draw helpers PULSE-Synth's files share, so that every purpose derives its numbers the same
 * way (docs/synth.md): stream keys, bounded draws, permutations and balanced answer letters. */
#include "engine/rng.h"
#include "stages/synth.h"

uint64_t synth_key(uint64_t seed, int stream, uint64_t index) {
    return rng_key(seed, (uint64_t)stream * 1000003u + index);
}

int synth_below(struct synth_draw *d, int n) {
    return (int)(rng_u64(d->key, d->n++) % (uint64_t)n);
}

float synth_uniform(struct synth_draw *d) {
    return rng_uniform(d->key, d->n++);
}

/* Fisher-Yates, from the back. */
static void shuffle(struct synth_draw *d, int *v, int n) {
    for (int i = n - 1; i > 0; i--) {
        int j = synth_below(d, i + 1), t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

void synth_permutation(struct synth_draw *d, int *v, int n) {
    for (int i = 0; i < n; i++)
        v[i] = i;
    shuffle(d, v, n);
}

void synth_letters(struct synth_draw *d, int *letters, int n) {
    int off = synth_below(d, 4);
    for (int j = 0; j < n; j++)
        letters[j] = (j + off) % 4;
    shuffle(d, letters, n);
}

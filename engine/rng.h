/* rng: the counter-based random generator every stage uses.
 *
 * A value is a pure function of (key, counter): no state to carry, to save or to share between threads, so a
 * stage can draw the i-th number of step s from any thread and get the same bits. The mixing function is
 * SplitMix64's finaliser applied to key + counter * golden ratio (Steele, Lea, Flood 2014), which passes
 * BigCrush as a counter-based generator. Keys are derived with rng_key(seed, stream) for independent streams
 * (stage, step, purpose). */
#ifndef PULSE_ENGINE_RNG_H
#define PULSE_ENGINE_RNG_H

#include <math.h>
#include <stdint.h>

/* Callable from CUDA kernels too (engine/cuda/elementwise.cu's dropout draws the same mask): the same guarded
 * definition as engine/kernels.h's, so either header may come first. */
#ifndef PULSE_HD
#ifdef __CUDACC__
#define PULSE_HD __host__ __device__
#else
#define PULSE_HD
#endif
#endif

PULSE_HD static inline uint64_t rng_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* The counter-th 64-bit value of the stream named by key. */
PULSE_HD static inline uint64_t rng_u64(uint64_t key, uint64_t counter) {
    return rng_mix(key + (counter + 1) * 0x9e3779b97f4a7c15ULL);
}

/* An independent stream key for (seed, stream). */
PULSE_HD static inline uint64_t rng_key(uint64_t seed, uint64_t stream) {
    return rng_mix(rng_mix(seed) ^ (stream * 0xd1b54a32d192ed03ULL + 0x2545f4914f6cdd1dULL));
}

/* Uniform float in [0, 1) with 24 random bits. */
PULSE_HD static inline float rng_uniform(uint64_t key, uint64_t counter) {
    return (float)(rng_u64(key, counter) >> 40) * (1.0f / 16777216.0f);
}

/* The e-th standard normal value of the stream (host only): Box-Muller on uniforms 2e and 2e + 1; 1 - u keeps
 * the log's argument in (0, 1]. Initial weights are drawn with it. */
static inline double rng_normal(uint64_t key, uint64_t e) {
    double u1 = 1.0 - (double)rng_uniform(key, 2 * e), u2 = (double)rng_uniform(key, 2 * e + 1);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

#endif

/*
 * rng.h — counter-based random numbers: Philox4x32-10 (Salmon et al., "Parallel Random
 * Numbers: As Easy as 1, 2, 3", SC'11) and standard normals by Box-Muller.
 *
 * A stream is defined by a 64-bit seed alone: key = (seed low 32 bits, seed high 32 bits),
 * block b (b = 0, 1, 2, ...) is philox(counter = (b low, b high, 0, 0), key) -> 4 words
 * x0..x3; each word gives a uniform u = (x + 0.5) / 2^32 in (0, 1), and the pairs (x0, x1),
 * (x2, x3) give two normals each: r = sqrt(-2 ln u_a), z = (r cos 2 pi u_b, r sin 2 pi u_b)
 * (in double, stored as float). Normals are handed out in that order, so the n-th normal of a
 * seed never depends on how the draws were split into calls.
 *
 * The image engine gives variation i of a run with seed S its own stream with seed S + i: first
 * the initial latents, then the noise of each step in order. So a variation can be made again
 * alone (seed S + i, variations 1) and gives the same bits.
 */
#ifndef M2P_CORE_RNG_H
#define M2P_CORE_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct m2p_rng {
    uint32_t key[2];
    uint64_t block; /* next block to generate */
    float buf[4];   /* normals of the current block */
    int pos;        /* next unused entry of buf (4 = empty) */
} m2p_rng;

/* The raw Philox4x32-10 bijection. */
void m2p_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

void m2p_rng_init(m2p_rng *r, uint64_t seed);
/* The next n standard normals of the stream. */
void m2p_rng_normal(m2p_rng *r, float *out, size_t n);

#endif

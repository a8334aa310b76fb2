/*
 * rng.c — Philox4x32-10 counter-based generator and Box-Muller normals (see rng.h for the exact
 * stream definition). Constants from Random123 (Salmon et al. 2011): multipliers 0xD2511F53,
 * 0xCD9E8D57, Weyl key increments 0x9E3779B9 (golden ratio), 0xBB67AE85 (sqrt 3 - 1).
 */
#include "core/rng.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void m2p_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

void m2p_rng_init(m2p_rng *r, uint64_t seed)
{
    r->key[0] = (uint32_t)seed;
    r->key[1] = (uint32_t)(seed >> 32);
    r->block = 0;
    r->pos = 4;
}

static double unit(uint32_t x)
{
    return ((double)x + 0.5) * (1.0 / 4294967296.0);
}

static void refill(m2p_rng *r)
{
    const uint32_t ctr[4] = {(uint32_t)r->block, (uint32_t)(r->block >> 32), 0, 0};
    uint32_t x[4];
    m2p_philox4x32_10(ctr, r->key, x);
    r->block++;
    const double two_pi = 6.283185307179586476925286766559;
    for (int k = 0; k < 2; k++) {
        double rad = sqrt(-2.0 * log(unit(x[2 * k])));
        double th = two_pi * unit(x[2 * k + 1]);
        r->buf[2 * k] = (float)(rad * cos(th));
        r->buf[2 * k + 1] = (float)(rad * sin(th));
    }
    r->pos = 0;
}

void m2p_rng_normal(m2p_rng *r, float *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (r->pos == 4)
            refill(r);
        out[i] = r->buf[r->pos++];
    }
}

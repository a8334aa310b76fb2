/*
 * test_rng.c — Philox4x32-10 against Random123's known-answer vectors, and the normal stream:
 * split-invariance, per-seed independence, and moments of a large sample.
 */
#include "core/rng.h"
#include "test.h"

int main(void)
{
    static const uint32_t kat[3][3][4] = {
        {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
         {0xffffffff, 0xffffffff},
         {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
        {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
         {0xa4093822, 0x299f31d0},
         {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
    };
    for (int k = 0; k < 3; k++) {
        uint32_t out[4];
        m2p_philox4x32_10(kat[k][0], kat[k][1], out);
        for (int i = 0; i < 4; i++)
            CHECK_INT(out[i], kat[k][2][i]);
    }

    /* Drawing 1000 normals at once or in uneven pieces gives the same sequence. */
    float a[1000], b[1000];
    m2p_rng r;
    m2p_rng_init(&r, 42);
    m2p_rng_normal(&r, a, 1000);
    m2p_rng_init(&r, 42);
    size_t done = 0, piece = 1;
    while (done < 1000) {
        size_t n = piece < 1000 - done ? piece : 1000 - done;
        m2p_rng_normal(&r, b + done, n);
        done += n;
        piece = piece * 3 % 17 + 1;
    }
    CHECK(memcmp(a, b, sizeof a) == 0);

    /* Another seed, another stream; seeds differing only in the high word differ too. */
    m2p_rng_init(&r, 43);
    m2p_rng_normal(&r, b, 1000);
    CHECK(memcmp(a, b, sizeof a) != 0);
    m2p_rng_init(&r, 42 + (1ull << 32));
    m2p_rng_normal(&r, b, 1000);
    CHECK(memcmp(a, b, sizeof a) != 0);

    /* Moments of 1M normals. */
    m2p_rng_init(&r, 1234);
    double s1 = 0, s2 = 0, s4 = 0;
    int n = 1 << 20;
    float *v = malloc((size_t)n * sizeof *v);
    m2p_rng_normal(&r, v, (size_t)n);
    int finite = 1;
    for (int i = 0; i < n; i++) {
        finite &= isfinite(v[i]);
        s1 += v[i];
        s2 += (double)v[i] * v[i];
        s4 += (double)v[i] * v[i] * v[i] * v[i];
    }
    free(v);
    CHECK(finite);
    CHECK_NEAR(s1 / n, 0.0, 0.005);
    CHECK_NEAR(s2 / n, 1.0, 0.005);
    CHECK_NEAR(s4 / n, 3.0, 0.05);
    TEST_DONE();
}

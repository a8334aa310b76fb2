/*
 * attention_ref.h — what the attention tests compare the kernels with: a plain double-precision
 * softmax(q k^T * scale) v over the layout op_attention takes (q [B, Lq, qs], k and v [B, Lk, kvs],
 * head h at h * dh, out [B, Lq, heads * dh]), and the xorshift inputs in [-1, 1) they feed it.
 * Shared by test_attention.c (f32 kernel) and test_attention_bf16.c (AMX kernel).
 */
#ifndef M2P_TESTS_ATTENTION_REF_H
#define M2P_TESTS_ATTENTION_REF_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

/* The next value in [-1, 1) of the xorshift sequence in *state. */
static inline float attn_frand(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return (float)((*state >> 40) * (1.0 / 8388608.0) - 1.0);
}

static inline void ref_attention(const float *q, int qs, const float *k, const float *v, int kvs,
                                 int B, int Lq, int Lk, int heads, int dh, float scale, int causal,
                                 float *out)
{
    double *s = malloc((size_t)Lk * sizeof(double));
    if (!s)
        abort();
    for (int b = 0; b < B; b++)
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < Lq; i++) {
                const float *qi = q + ((size_t)b * Lq + i) * qs + (size_t)h * dh;
                double m = -INFINITY;
                for (int j = 0; j < Lk; j++) {
                    if (causal && j > i) {
                        s[j] = -INFINITY;
                        continue;
                    }
                    const float *kj = k + ((size_t)b * Lk + j) * kvs + (size_t)h * dh;
                    double acc = 0;
                    for (int d = 0; d < dh; d++)
                        acc += (double)qi[d] * kj[d];
                    s[j] = acc * scale;
                    m = fmax(m, s[j]);
                }
                double sum = 0;
                for (int j = 0; j < Lk; j++) {
                    s[j] = s[j] == -INFINITY ? 0 : exp(s[j] - m);
                    sum += s[j];
                }
                for (int d = 0; d < dh; d++) {
                    double acc = 0;
                    for (int j = 0; j < Lk; j++)
                        acc += s[j] * v[((size_t)b * Lk + j) * kvs + (size_t)h * dh + d];
                    out[((size_t)b * Lq + i) * heads * dh + (size_t)h * dh + d] =
                        (float)(acc / sum);
                }
            }
    free(s);
}

#endif

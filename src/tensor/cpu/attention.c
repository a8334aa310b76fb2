/*
 * attention.c — multi-head scaled dot-product attention, tiled with an online softmax
 * (FlashAttention, Dao et al. 2022, algorithm 1) so memory stays O(block) instead of
 * heads x Lq x Lk (at 512^2 the UNet's first self-attention has Lq = Lk = 4096).
 *
 * Work is split over (batch, head, block of TQ queries) and run with OpenMP. For each block:
 * S = (scale q) k^T over KB keys at a time, running row max m and sum l, P = exp(S - m),
 * O = O * exp(m_old - m_new) + P v, and finally O / l. The AVX-512 version keeps the QB = 64
 * queries of a task in vector lanes (q transposed into Qt[dh][64], O kept as O^T[dh][64]): the
 * score kernel is 6 keys x 64 queries of accumulators fed by broadcasts of K read in place,
 * the softmax is vertical (no horizontal reductions), and P V is 6 dims x 64 queries fed by
 * broadcasts of V, so dh needs no padding to 16. The portable version (AVX2 or SSE2 vectors)
 * keeps the same layout in 3 groups of 3 vectors of queries (TQ = 72 with AVX2).
 */
#include "core/error.h"
#include "tensor/cpu/cpu.h"
#include "tensor/ops.h"

#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define QB 64  /* queries per task */
#define KB 96  /* keys per inner block */
#define DC 128 /* dims of q per pass of the score kernel (Qt chunk stays in L1) */

typedef struct {
    const float *q, *k, *v;
    int q_stride, kv_stride, B, Lq, Lk, heads, dh, causal;
    float scale;
    float *out;
} attn_args;

typedef struct {
    float *qs; /* scaled queries transposed, zeros past the end: AVX-512 [dh][QB], else
                * [group][dh][QG] */
    float *s;  /* scores, then probabilities: AVX-512 [KB][QB], else one group's [KB][QG] */
    float *o;  /* accumulator O^T: AVX-512 [dh][QB], else [group][dh][QG] */
    float *m, *l;
} attn_scratch;

#if M2P_AVX512
#define TQ QB /* a task's queries, in vector lanes */

/* Keep a loaded vector in a register: GCC otherwise folds the load into every FMA that uses
 * it, and the kernels become load-bound. */
#define REG(v) __asm__("" : "+v"(v))

/* Queries live in vector lanes: a task's QB = 64 queries are 4 vectors, so S^T = K Q^T, the
 * softmax (max, exp, sum over keys) and O^T = V^T P^T are all vertical (no horizontal
 * reductions, no padding of dh to 16), and K and V are read in place by broadcasts. */

/* P[NJ keys][64] (+)= K[NJ keys][0..dc) . Qt[0..dc)[64] */
#define DEFINE_S(NJ)                                                                               \
    static inline void s_##NJ(const float *qt, int dc, const float *k, size_t ks, float *p,        \
                              int acc_in)                                                          \
    {                                                                                              \
        __m512 acc[NJ][4];                                                                         \
        for (int j = 0; j < NJ; j++)                                                               \
            for (int c = 0; c < 4; c++)                                                            \
                acc[j][c] = acc_in ? _mm512_load_ps(p + j * QB + c * 16) : _mm512_setzero_ps();    \
        for (int d = 0; d < dc; d++) {                                                             \
            const float *qr = qt + (size_t)d * QB;                                                 \
            __m512 q0 = _mm512_load_ps(qr), q1 = _mm512_load_ps(qr + 16),                          \
                   q2 = _mm512_load_ps(qr + 32), q3 = _mm512_load_ps(qr + 48);                     \
            REG(q0);                                                                               \
            REG(q1);                                                                               \
            REG(q2);                                                                               \
            REG(q3);                                                                               \
            for (int j = 0; j < NJ; j++) {                                                         \
                __m512 kv = _mm512_set1_ps(k[j * ks + d]);                                         \
                acc[j][0] = _mm512_fmadd_ps(kv, q0, acc[j][0]);                                    \
                acc[j][1] = _mm512_fmadd_ps(kv, q1, acc[j][1]);                                    \
                acc[j][2] = _mm512_fmadd_ps(kv, q2, acc[j][2]);                                    \
                acc[j][3] = _mm512_fmadd_ps(kv, q3, acc[j][3]);                                    \
            }                                                                                      \
        }                                                                                          \
        for (int j = 0; j < NJ; j++)                                                               \
            for (int c = 0; c < 4; c++)                                                            \
                _mm512_store_ps(p + j * QB + c * 16, acc[j][c]);                                   \
    }
DEFINE_S(1)
DEFINE_S(6)

/* Ot[ND dims][64] = Ot * alpha + V[0..nk)[ND dims]^T . P[0..nk)[64] */
#define DEFINE_PV(ND)                                                                              \
    static inline void pv_##ND(const float *p, int nk, const float *v, size_t vs, float *ot,       \
                               const __m512 *al)                                                   \
    {                                                                                              \
        __m512 acc[ND][4];                                                                         \
        for (int d = 0; d < ND; d++)                                                               \
            for (int c = 0; c < 4; c++)                                                            \
                acc[d][c] = _mm512_mul_ps(_mm512_load_ps(ot + d * QB + c * 16), al[c]);            \
        for (int j = 0; j < nk; j++) {                                                             \
            const float *pr = p + (size_t)j * QB;                                                  \
            __m512 p0 = _mm512_load_ps(pr), p1 = _mm512_load_ps(pr + 16),                          \
                   p2 = _mm512_load_ps(pr + 32), p3 = _mm512_load_ps(pr + 48);                     \
            REG(p0);                                                                               \
            REG(p1);                                                                               \
            REG(p2);                                                                               \
            REG(p3);                                                                               \
            const float *vr = v + (size_t)j * vs;                                                  \
            for (int d = 0; d < ND; d++) {                                                         \
                __m512 vv = _mm512_set1_ps(vr[d]);                                                 \
                acc[d][0] = _mm512_fmadd_ps(vv, p0, acc[d][0]);                                    \
                acc[d][1] = _mm512_fmadd_ps(vv, p1, acc[d][1]);                                    \
                acc[d][2] = _mm512_fmadd_ps(vv, p2, acc[d][2]);                                    \
                acc[d][3] = _mm512_fmadd_ps(vv, p3, acc[d][3]);                                    \
            }                                                                                      \
        }                                                                                          \
        for (int d = 0; d < ND; d++)                                                               \
            for (int c = 0; c < 4; c++)                                                            \
                _mm512_store_ps(ot + d * QB + c * 16, acc[d][c]);                                  \
    }
DEFINE_PV(1)
DEFINE_PV(2)
DEFINE_PV(3)
DEFINE_PV(4)
DEFINE_PV(5)
DEFINE_PV(6)

/* 2^x for a vector, x <= 0 in practice (x >= -127 keeps the result a normal float or tiny):
 * Cephes exp2f's degree-6 polynomial on [-1/2, 1/2] (about 1 ulp) and scalef. Cheaper than
 * v_exp because the scores are already in log2 units (q is pre-scaled by log2 e). */
static inline __m512 v_exp2_finite(__m512 x) /* x finite (below -150 gives 0) */
{
    __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_sub_ps(x, n);
    __m512 p = _mm512_set1_ps(1.535336188319500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.339887440266574e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(9.618437357674640e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.550332471162809e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(2.402264791363012e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(6.931472028550421e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

static inline __m512 v_exp2(__m512 x) /* x may be -inf */
{
    return v_exp2_finite(_mm512_max_ps(x, _mm512_set1_ps(-127.0f)));
}

static void attend_block(const attn_args *a, attn_scratch *w, int b, int h, int i0)
{
    const int dh = a->dh;
    int nq = a->Lq - i0 < QB ? a->Lq - i0 : QB;
    const float sc = a->scale * 1.44269504088896341f; /* scores in log2 units */
    /* Qt[d][64]: scaled queries transposed, zero lanes past the end */
    for (int r = 0; r < QB; r++) {
        if (r >= nq) {
            for (int d = 0; d < dh; d++)
                w->qs[(size_t)d * QB + r] = 0.0f;
            continue;
        }
        const float *src = a->q + ((size_t)b * a->Lq + i0 + r) * a->q_stride + (size_t)h * dh;
        for (int d = 0; d < dh; d++)
            w->qs[(size_t)d * QB + r] = src[d] * sc;
    }
    memset(w->o, 0, (size_t)dh * QB * sizeof(float));
    __m512 m[4], l[4], al[4], qi[4];
    for (int c = 0; c < 4; c++) {
        m[c] = _mm512_set1_ps(-INFINITY);
        l[c] = _mm512_setzero_ps();
        qi[c] = _mm512_add_ps(_mm512_set1_ps((float)(i0 + c * 16)),
                              _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    }
    const size_t ks = (size_t)a->kv_stride;
    const float *kb = a->k + (size_t)b * a->Lk * ks + (size_t)h * dh;
    const float *vb = a->v + (size_t)b * a->Lk * ks + (size_t)h * dh;
    int kend = a->Lk;
    if (a->causal && i0 + nq < kend)
        kend = i0 + nq; /* keys j <= i only */
    float *p = w->s;
    for (int j0 = 0; j0 < kend; j0 += KB) {
        int nk = kend - j0 < KB ? kend - j0 : KB;
        const float *kj = kb + (size_t)j0 * ks;
        for (int d0 = 0; d0 < dh; d0 += DC) {
            int dc = dh - d0 < DC ? dh - d0 : DC;
            int j = 0;
            for (; j + 6 <= nk; j += 6)
                s_6(w->qs + (size_t)d0 * QB, dc, kj + (size_t)j * ks + d0, ks, p + j * QB, d0 > 0);
            for (; j < nk; j++)
                s_1(w->qs + (size_t)d0 * QB, dc, kj + (size_t)j * ks + d0, ks, p + j * QB, d0 > 0);
        }
        /* online softmax over the block, per query lane */
        int masked = a->causal && j0 + nk - 1 > i0; /* some key past some query */
        __m512 mx[4];
        for (int c = 0; c < 4; c++)
            mx[c] = m[c];
        if (!masked) {
            for (int j = 0; j < nk; j++)
                for (int c = 0; c < 4; c++)
                    mx[c] = _mm512_max_ps(mx[c], _mm512_load_ps(p + j * QB + c * 16));
        } else {
            for (int j = 0; j < nk; j++) {
                __m512 kj1 = _mm512_set1_ps((float)(j0 + j));
                for (int c = 0; c < 4; c++) {
                    __mmask16 ok = _mm512_cmp_ps_mask(qi[c], kj1, _CMP_GE_OQ);
                    mx[c] =
                        _mm512_mask_max_ps(mx[c], ok, mx[c], _mm512_load_ps(p + j * QB + c * 16));
                }
            }
        }
        __m512 sum[4];
        for (int c = 0; c < 4; c++) {
            al[c] = v_exp2(_mm512_sub_ps(m[c], mx[c])); /* m = -inf: 2^-127 times l = 0, o = 0 */
            m[c] = mx[c];
            sum[c] = _mm512_setzero_ps();
        }
        for (int j = 0; j < nk; j++) {
            __m512 kj1 = _mm512_set1_ps((float)(j0 + j));
            for (int c = 0; c < 4; c++) {
                __m512 e = v_exp2_finite(_mm512_sub_ps(_mm512_load_ps(p + j * QB + c * 16), m[c]));
                if (masked)
                    e = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(qi[c], kj1, _CMP_GE_OQ), e);
                _mm512_store_ps(p + j * QB + c * 16, e);
                sum[c] = _mm512_add_ps(sum[c], e);
            }
        }
        for (int c = 0; c < 4; c++)
            l[c] = _mm512_fmadd_ps(l[c], al[c], sum[c]);
        /* O^T = O^T * alpha + V^T P^T, 6 dims at a time */
        const float *vj = vb + (size_t)j0 * ks;
        int d = 0;
        for (; d + 6 <= dh; d += 6)
            pv_6(p, nk, vj + d, ks, w->o + (size_t)d * QB, al);
        switch (dh - d) {
        case 1:
            pv_1(p, nk, vj + d, ks, w->o + (size_t)d * QB, al);
            break;
        case 2:
            pv_2(p, nk, vj + d, ks, w->o + (size_t)d * QB, al);
            break;
        case 3:
            pv_3(p, nk, vj + d, ks, w->o + (size_t)d * QB, al);
            break;
        case 4:
            pv_4(p, nk, vj + d, ks, w->o + (size_t)d * QB, al);
            break;
        case 5:
            pv_5(p, nk, vj + d, ks, w->o + (size_t)d * QB, al);
            break;
        default:
            break;
        }
    }
    float inv[QB];
    for (int c = 0; c < 4; c++)
        _mm512_storeu_ps(inv + c * 16, _mm512_div_ps(_mm512_set1_ps(1.0f), l[c]));
    int ld = a->heads * dh;
    for (int r = 0; r < nq; r++) {
        float *dst = a->out + ((size_t)b * a->Lq + i0 + r) * ld + (size_t)h * dh;
        for (int d2 = 0; d2 < dh; d2++)
            dst[d2] = w->o[(size_t)d2 * QB + r] * inv[r];
    }
}

#else /* portable version of the same algorithm */

/* The AVX-512 layout in GCC vector types (AVX2's 8 floats in the x86-64-v3 build, SSE2's 4
 * elsewhere): a task's queries sit in vector lanes, in NG groups of NV vectors (QG = 24
 * queries with AVX2). Per group and block of keys, S^T = K Q^T in register tiles of TJ = 4 keys
 * x NV vectors fed by broadcasts of K read in place, the online softmax is vertical (per lane:
 * no horizontal reductions), and O^T = O^T alpha + V^T P^T in tiles of 4 dims x NV vectors fed
 * by broadcasts of V: 12 accumulators of the 16 registers and 7 loads per 12 FMAs in both
 * kernels, any dh without padding. Every score sums its dims in order from 0 and every output
 * its keys in order, so the results do not depend on the tiling. On the AVX2 EPYC this layout
 * replaced row tiles of 6 queries (per-row softmax with horizontal sums, K packed transposed
 * per call); BENCHMARKS.md has the measurement. */
#define NV 3           /* vectors of queries in a group */
#define QG (NV * VF_W) /* queries in a group */
#define NG 3           /* groups in a task */
#define TQ (NG * QG)   /* queries per task */
#define TJ 4 /* keys of a score tile, dims of a P V tile */

#define INLINE static inline __attribute__((always_inline))

/* s[j][QG] = k[j][0..dh) . qt[0..dh)[QG] for the nj keys at k (rows ks apart) */
INLINE void score_tile(int nj, const float *qt, int dh, const float *k, size_t ks, float *s)
{
    vf acc[TJ][NV];
    for (int j = 0; j < nj; j++)
        for (int c = 0; c < NV; c++)
            acc[j][c] = vf_splat(0.0f);
    for (int d = 0; d < dh; d++) {
        vf q[NV];
        for (int c = 0; c < NV; c++)
            q[c] = vf_load(qt + (size_t)d * QG + c * VF_W);
        for (int j = 0; j < nj; j++) {
            float kv = k[(size_t)j * ks + d];
            for (int c = 0; c < NV; c++)
                acc[j][c] += kv * q[c];
        }
    }
    for (int j = 0; j < nj; j++)
        for (int c = 0; c < NV; c++)
            vf_store(s + (size_t)j * QG + c * VF_W, acc[j][c]);
}

/* ot[d][QG] = ot[d][QG] al + sum over the nk keys j, in order, of v[j][d] p[j][QG], for the nd
 * dims at v and ot */
INLINE void pv_tile(int nd, const float *p, int nk, const float *v, size_t vs, float *ot,
                    const vf al[NV])
{
    vf acc[TJ][NV];
    for (int d = 0; d < nd; d++)
        for (int c = 0; c < NV; c++)
            acc[d][c] = vf_load(ot + (size_t)d * QG + c * VF_W) * al[c];
    for (int j = 0; j < nk; j++) {
        vf pj[NV];
        for (int c = 0; c < NV; c++)
            pj[c] = vf_load(p + (size_t)j * QG + c * VF_W);
        const float *vr = v + (size_t)j * vs;
        for (int d = 0; d < nd; d++) {
            float vv = vr[d];
            for (int c = 0; c < NV; c++)
                acc[d][c] += vv * pj[c];
        }
    }
    for (int d = 0; d < nd; d++)
        for (int c = 0; c < NV; c++)
            vf_store(ot + (size_t)d * QG + c * VF_W, acc[d][c]);
}

/* 2^x lane by lane for x <= 0 (the scores are in log2 units: q is pre-scaled by log2 e):
 * Cephes exp2f's degree-6 polynomial on [-1/2, 1/2] (about 1 ulp), the power of two added to
 * the exponent's bits. Below -125 it gives 2^-125 instead of less, nothing next to the 1 of
 * the lane's maximum (masked keys are zeroed by the caller). Half the operations of vf_exp,
 * which needs its range checks and the change of base. */
static inline vf vf_exp2_nonpos(vf x)
{
    x = vf_select(x > -125.0f, x, vf_splat(-125.0f));
    vf n = (x + 12582912.0f) - 12582912.0f; /* round to nearest: 1.5 x 2^23 */
    vf r = x - n;
    vf p = r * 1.535336188319500e-4f + 1.339887440266574e-3f;
    p = p * r + 9.618437357674640e-3f;
    p = p * r + 5.550332471162809e-2f;
    p = p * r + 2.402264791363012e-1f;
    p = p * r + 6.931472028550421e-1f;
    p = p * r + 1.0f;
    return (vf)((vfi)p + __builtin_convertvector(n, vfi) * (1 << 23));
}

/* One group's block of nk keys from key j0: its scores into w->s, the online softmax (running
 * max m and sum l per lane; keys past a lane's own query are masked when causal), O^T
 * rescaled and P V added. qi: the group's first query. */
static void group_block(const attn_args *a, attn_scratch *w, int g, int qi, const float *kj,
                        const float *vj, int j0, int nk)
{
    const int dh = a->dh;
    const size_t ks = (size_t)a->kv_stride;
    const float *qt = w->qs + (size_t)g * dh * QG;
    float *ot = w->o + (size_t)g * dh * QG, *p = w->s;
    int j = 0;
    for (; j + TJ <= nk; j += TJ)
        score_tile(TJ, qt, dh, kj + (size_t)j * ks, ks, p + (size_t)j * QG);
    for (; j < nk; j++)
        score_tile(1, qt, dh, kj + (size_t)j * ks, ks, p + (size_t)j * QG);
    /* a key past some lane's query: the lanes' query positions against the keys' */
    int masked = a->causal && j0 + nk - 1 > qi;
    vfi q[NV];
    for (int c = 0; c < NV; c++)
        for (int i = 0; i < VF_W; i++)
            q[c][i] = qi + c * VF_W + i;
    vf m[NV], mx[NV], al[NV], sum[NV];
    for (int c = 0; c < NV; c++)
        mx[c] = m[c] = vf_load(w->m + (size_t)g * QG + c * VF_W);
    for (j = 0; j < nk; j++)
        for (int c = 0; c < NV; c++) {
            vf x = vf_load(p + (size_t)j * QG + c * VF_W);
            vfi keep = x > mx[c];
            if (masked)
                keep &= q[c] >= j0 + j;
            mx[c] = vf_select(keep, x, mx[c]);
        }
    for (int c = 0; c < NV; c++) {
        al[c] = vf_exp2_nonpos(m[c] - mx[c]); /* m = -inf: 2^-125 times l = 0 and O = 0 */
        sum[c] = vf_splat(0.0f);
    }
    for (j = 0; j < nk; j++)
        for (int c = 0; c < NV; c++) {
            vf e = vf_exp2_nonpos(vf_load(p + (size_t)j * QG + c * VF_W) - mx[c]);
            if (masked)
                e = vf_select(q[c] >= j0 + j, e, vf_splat(0.0f));
            vf_store(p + (size_t)j * QG + c * VF_W, e);
            sum[c] += e;
        }
    for (int c = 0; c < NV; c++) {
        vf l = vf_load(w->l + (size_t)g * QG + c * VF_W);
        vf_store(w->l + (size_t)g * QG + c * VF_W, l * al[c] + sum[c]);
        vf_store(w->m + (size_t)g * QG + c * VF_W, mx[c]);
    }
    int d = 0;
    for (; d + TJ <= dh; d += TJ)
        pv_tile(TJ, p, nk, vj + d, ks, ot + (size_t)d * QG, al);
    for (; d < dh; d++)
        pv_tile(1, p, nk, vj + d, ks, ot + (size_t)d * QG, al);
}

/* The task's TQ queries from i0, the keys in the outer loop: each block of K and V is read
 * from memory once for all the task's groups and stays in L1/L2 while they use it. Causal: a
 * group stops at the keys of its last query; keys past a lane's own query are masked. */
static void attend_block(const attn_args *a, attn_scratch *w, int b, int h, int i0)
{
    const int dh = a->dh;
    int nq = a->Lq - i0 < TQ ? a->Lq - i0 : TQ;
    const float sc = a->scale * 1.44269504088896341f; /* scores in log2 units */
    for (int r = 0; r < TQ; r++) {
        float *qt = w->qs + (size_t)(r / QG) * dh * QG + r % QG;
        if (r >= nq) {
            for (int d = 0; d < dh; d++)
                qt[(size_t)d * QG] = 0.0f;
        } else {
            const float *src = a->q + ((size_t)b * a->Lq + i0 + r) * a->q_stride + (size_t)h * dh;
            for (int d = 0; d < dh; d++)
                qt[(size_t)d * QG] = src[d] * sc;
        }
        w->m[r] = -INFINITY;
        w->l[r] = 0;
    }
    memset(w->o, 0, (size_t)TQ * dh * sizeof(float));
    const size_t ks = (size_t)a->kv_stride;
    const float *kb = a->k + (size_t)b * a->Lk * ks + (size_t)h * dh;
    const float *vb = a->v + (size_t)b * a->Lk * ks + (size_t)h * dh;
    const int ng = (nq + QG - 1) / QG;
    int kend = a->Lk;
    if (a->causal && i0 + nq < kend)
        kend = i0 + nq; /* keys j <= i only */
    for (int j0 = 0; j0 < kend; j0 += KB) {
        int nk = kend - j0 < KB ? kend - j0 : KB;
        for (int g = 0; g < ng; g++) {
            int qi = i0 + g * QG, nkg = nk;
            if (a->causal && qi + QG - j0 < nkg) /* keys past the group's last query */
                nkg = qi + QG - j0;
            if (nkg > 0)
                group_block(a, w, g, qi, kb + (size_t)j0 * ks, vb + (size_t)j0 * ks, j0, nkg);
        }
    }
    int ld = a->heads * dh;
    for (int r = 0; r < nq; r++) {
        float *dst = a->out + ((size_t)b * a->Lq + i0 + r) * ld + (size_t)h * dh;
        const float *ot = w->o + (size_t)(r / QG) * dh * QG + r % QG;
        float l = w->l[r];
        for (int d = 0; d < dh; d++)
            dst[d] = l > 0 ? ot[(size_t)d * QG] / l : 0.0f;
    }
}

#endif

int op_attention(const float *q, int q_stride, const float *k, const float *v, int kv_stride, int B,
                 int Lq, int Lk, int heads, int dh, float scale, int causal, float *out)
{
    ops_sync_threads();
    if (B <= 0 || Lq <= 0 || Lk <= 0 || heads <= 0 || dh <= 0 || q_stride < heads * dh ||
        kv_stride < heads * dh)
        return m2p_error(M2P_EINVAL, "attention: bad sizes B=%d Lq=%d Lk=%d heads=%d dh=%d", B, Lq,
                         Lk, heads, dh);
    attn_args a = {q, k, v, q_stride, kv_stride, B, Lq, Lk, heads, dh, causal, scale, out};
    int nqb = (Lq + TQ - 1) / TQ;
    int ntasks = B * heads * nqb;
    /* All scratch from the calling thread in one block: allocating in the OpenMP workers
     * would spread it over glibc's per-thread arenas, which keep freed memory resident. */
    int nthr = omp_get_max_threads();
    size_t per = (size_t)TQ * dh * 2 + (size_t)TQ * KB + 2 * TQ + 16; /* floats */
    per = (per + 15) & ~(size_t)15;
    float *pool = aligned_alloc(64, (size_t)nthr * per * sizeof(float));
    if (!pool)
        return m2p_error(M2P_ENOMEM, "attention: out of memory");
#pragma omp parallel num_threads(nthr)
    {
        float *base = pool + (size_t)omp_get_thread_num() * per;
        attn_scratch w;
        w.qs = base;
        w.o = w.qs + (size_t)TQ * dh;
        w.s = w.o + (size_t)TQ * dh;
        w.m = w.s + (size_t)TQ * KB;
        w.l = w.m + TQ;
#pragma omp for schedule(dynamic, 1)
        for (int t = 0; t < ntasks; t++) {
            int qb = t % nqb, bh = t / nqb;
            attend_block(&a, &w, bh / heads, bh % heads, qb * TQ);
        }
    }
    free(pool);
    return 0;
}

/*
 * attention.c — multi-head scaled dot-product attention, tiled with an online softmax
 * (FlashAttention, Dao et al. 2022, algorithm 1) so memory stays O(block) instead of
 * heads x Lq x Lk (at 512^2 the UNet's first self-attention has Lq = Lk = 4096).
 *
 * Work is split over (batch, head, block of QB queries) and run with OpenMP. For each block:
 * S = (scale q) k^T over KB keys at a time, running row max m and sum l, P = exp(S - m),
 * O = O * exp(m_old - m_new) + P v, and finally O / l. The AVX-512 version keeps the QB = 64
 * queries of a task in vector lanes (q transposed into Qt[dh][64], O kept as O^T[dh][64]): the
 * score kernel is 6 keys x 64 queries of accumulators fed by broadcasts of K read in place,
 * the softmax is vertical (no horizontal reductions), and P V is 6 dims x 64 queries fed by
 * broadcasts of V, so dh needs no padding to 16. The portable version packs K transposed.
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
    float *kt; /* portable: [B*heads][Lkp / KB][dh][KB], K transposed block by block */
    int Lkp;
} attn_args;

typedef struct {
    float *qs; /* scaled queries, zeros past the end: AVX-512 [dh][QB], else [tile][dh][QR] */
    float *s;  /* scores, then probabilities: AVX-512 [KB][QB], else one tile's [QR][KB] */
    float *o;  /* accumulator: AVX-512 [dh][QB], else [tile][QR][dhp] */
    float *m, *l;
} attn_scratch;

#if !M2P_AVX512
static void pack_kt(const attn_args *a)
{
    int n = a->B * a->heads;
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < n; bh++) {
        int b = bh / a->heads, h = bh % a->heads;
        float *kt = a->kt + (size_t)bh * a->dh * a->Lkp;
        for (int j0 = 0; j0 < a->Lkp; j0 += 16) {
            for (int d = 0; d < a->dh; d++) {
                float *dst = kt + (size_t)(j0 / KB) * a->dh * KB + (size_t)d * KB + j0 % KB;
                for (int jj = 0; jj < 16; jj++) {
                    int j = j0 + jj;
                    dst[jj] =
                        j < a->Lk
                            ? a->k[((size_t)b * a->Lk + j) * a->kv_stride + (size_t)h * a->dh + d]
                            : 0.0f;
                }
            }
        }
    }
}

#endif

#if M2P_AVX512
#define QBT QB /* a task's queries, in vector lanes */

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

/* Register tiles of QR queries x 2 vectors, in GCC vector types: SSE2 registers (4 floats) on
 * any x86-64, AVX2 registers (8 floats, FMA) in the x86-64-v3 build. Scores are QR queries x
 * 2 vectors of keys, each K vector loaded feeding QR queries; P V is QR queries x 2 vectors
 * of dims. Every score sums its dims in order from 0 and every output its keys in order, so
 * the results do not depend on the tiling. */
#if VF_W == 8
#define QR 6 /* queries per tile: 12 accumulators of the 16 registers */
#else
#define QR 4
#endif
#define VW VF_W     /* floats per vector (cpu.h) */
#define QBT ((QB + QR - 1) / QR * QR) /* a task's queries in whole tiles */
#define TW (2 * VW) /* keys or dims per tile */

#define INLINE static inline __attribute__((always_inline))

/* acc[r] += a[r * as] x[0 .. nv VW): one rank-1 update of a tile, x loaded once for its QR
 * rows, a read at constant offsets from one pointer */
INLINE void tile_rank1(vf acc[QR][2], int nv, const float *a, int as, const float *x)
{
    vf x0 = vf_load(x), x1 = nv > 1 ? vf_load(x + VW) : x0;
    for (int r = 0; r < QR; r++) {
        acc[r][0] += a[r * as] * x0;
        if (nv > 1)
            acc[r][1] += a[r * as] * x1;
    }
}

/* A tile's nv vectors of its first nr rows to dst + r * ld */
INLINE void tile_store(vf acc[QR][2], int nr, int nv, float *dst, int ld)
{
    for (int r = 0; r < nr; r++)
        for (int i = 0; i < nv; i++)
            vf_store(dst + (size_t)r * ld + i * VW, acc[r][i]);
}

/* Scores of the QR queries qt[dh][QR] (scaled, zeros past the last query) against the first
 * nkt keys of a packed block kt[dh][KB] (zero-padded), nkt a multiple of TW, into rows
 * s[r * KB + 0 .. nkt) for all QR rows (those past the last query get zeros). */
static void scores(const float *qt, int dh, const float *kt, int nkt, float *s)
{
    for (int j = 0; j < nkt; j += TW) {
        vf acc[QR][2];
        for (int r = 0; r < QR; r++)
            acc[r][0] = acc[r][1] = vf_splat(0.0f);
        for (int d = 0; d < dh; d++)
            tile_rank1(acc, 2, qt + (size_t)d * QR, 1, kt + (size_t)d * KB + j);
        tile_store(acc, QR, 2, s + j, KB);
    }
}

/* o[r * ld + d ..] (nv vectors) += sum over keys j < nk, in order, of s[r * KB + j] v[j][d ..]
 * for all QR rows */
INLINE void pv_tile(const float *s, int nk, const float *vb, size_t vs, int d, int nv, float *o,
                    int ld)
{
    vf acc[QR][2];
    for (int r = 0; r < QR; r++)
        for (int i = 0; i < nv; i++)
            acc[r][i] = vf_load(o + (size_t)r * ld + d + i * VW);
    for (int j = 0; j < nk; j++)
        tile_rank1(acc, nv, s + j, KB, vb + (size_t)j * vs + d);
    tile_store(acc, QR, nv, o + d, ld);
}

/* o[r][d] += sum over keys j < nk, in order, of s[r][j] v[j][d] for the QR rows of a tile, s in
 * rows of KB, o in rows of ld: register tiles of QR queries x 2 vectors of dims, each V vector
 * loaded feeding QR queries. */
static void pv(const float *s, int nk, const float *vb, size_t vs, int dh, float *o, int ld)
{
    int d = 0;
    for (; d + TW <= dh; d += TW)
        pv_tile(s, nk, vb, vs, d, 2, o, ld);
    for (; d + VW <= dh; d += VW)
        pv_tile(s, nk, vb, vs, d, 1, o, ld);
    for (; d < dh; d++)
        for (int r = 0; r < QR; r++) {
            float x = o[(size_t)r * ld + d];
            for (int j = 0; j < nk; j++)
                x += s[(size_t)r * KB + j] * vb[(size_t)j * vs + d];
            o[(size_t)r * ld + d] = x;
        }
}

/* 2^x lane by lane for x <= 0 (the scores are in log2 units: q is pre-scaled by log2 e):
 * Cephes exp2f's degree-6 polynomial on [-1/2, 1/2] (about 1 ulp), the power of two added to
 * the exponent's bits. Below -125 it gives 2^-125 instead of less, nothing next to the 1 of
 * the row's maximum. Half the operations of vf_exp, which needs its range checks and the
 * change of base (on the AVX2 EPYC the softmax was a third of the score kernel's time). */
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

/* The online softmax of one query's nk new scores sr[0..nk) (sr padded to a multiple of VW),
 * in log2 units: the running max m and sum l are updated, sr becomes 2^(sr - m), and the
 * factor that rescales the query's earlier output is returned. */
static float softmax_block(float *sr, int nk, float *m, float *l)
{
    int nv = nk / VW;
    float bm = -INFINITY;
    if (nv) {
        vf vm = vf_load(sr);
        for (int i = 1; i < nv; i++) {
            vf x = vf_load(sr + i * VW);
            vm = vf_select(x > vm, x, vm);
        }
        for (int i = 0; i < VW; i++)
            bm = vm[i] > bm ? vm[i] : bm;
    }
    for (int j = nv * VW; j < nk; j++)
        bm = sr[j] > bm ? sr[j] : bm;
    float mnew = bm > *m ? bm : *m;
    float al = *m == -INFINITY ? 0.0f : vf_exp2_nonpos(vf_splat(*m - mnew))[0];
    vf vs = {0};
    int j = 0;
    for (; j + VW <= nk; j += VW) {
        vf e = vf_exp2_nonpos(vf_load(sr + j) - mnew);
        vf_store(sr + j, e);
        vs += e;
    }
    if (j < nk) { /* the lanes past the last key get 0 */
        vfi lane;
        for (int i = 0; i < VW; i++)
            lane[i] = i;
        vf e = vf_exp2_nonpos(vf_load(sr + j) - mnew);
        e = vf_select(lane < nk - j, e, vf_splat(0.0f));
        vf_store(sr + j, e);
        vs += e;
    }
    float sum = 0;
    for (int i = 0; i < VW; i++)
        sum += vs[i];
    *l = *l * al + sum;
    *m = mnew;
    return al;
}

/* The task's queries in tiles of QR, every tile's state (scaled queries, output, max and sum)
 * kept in the scratch, and the keys in the outer loop: each block of K and V is read from
 * memory once for all the task's tiles and stays in L1/L2 while they use it (with one tile at
 * a time, the whole K and V of the head, 1.3 MB at 4096 x 40, came from L3 for every 6
 * queries). Causal: a row's keys end at its own position; the probabilities past that stay 0. */
static void attend_block(const attn_args *a, attn_scratch *w, int b, int h, int i0)
{
    const int dh = a->dh, dhp = (dh + 15) & ~15;
    int nq = a->Lq - i0 < QB ? a->Lq - i0 : QB;
    const float *kt = a->kt + ((size_t)b * a->heads + h) * dh * a->Lkp;
    const float *vb = a->v + (size_t)b * a->Lk * a->kv_stride + (size_t)h * dh;
    const int ntile = (nq + QR - 1) / QR;
    const float sc = a->scale * 1.44269504088896341f; /* scores in log2 units */
    for (int t = 0; t < ntile; t++) {
        int r0 = t * QR, nr = nq - r0 < QR ? nq - r0 : QR;
        float *qs = w->qs + (size_t)t * dh * QR;
        for (int r = 0; r < QR; r++) {
            const float *src = a->q +
                               ((size_t)b * a->Lq + i0 + r0 + (r < nr ? r : 0)) * a->q_stride +
                               (size_t)h * dh;
            for (int d = 0; d < dh; d++)
                qs[d * QR + r] = r < nr ? src[d] * sc : 0.0f;
            w->m[t * QR + r] = -INFINITY;
            w->l[t * QR + r] = 0;
        }
    }
    memset(w->o, 0, (size_t)ntile * QR * dhp * sizeof(float));
    /* the end of row i's keys: i + 1 when causal */
#define KEND(i) (a->causal && (i) + 1 < a->Lk ? (i) + 1 : a->Lk)
    for (int j0 = 0; j0 < KEND(i0 + nq - 1); j0 += KB) {
        for (int t = 0; t < ntile; t++) {
            int r0 = t * QR, nr = nq - r0 < QR ? nq - r0 : QR;
            int nk = KEND(i0 + r0 + nr - 1) - j0; /* the tile's last row has the most keys */
            if (nk <= 0)
                continue;
            nk = nk < KB ? nk : KB;
            float *o = w->o + (size_t)t * QR * dhp;
            scores(w->qs + (size_t)t * dh * QR, dh, kt + (size_t)j0 * dh, (nk + TW - 1) / TW * TW,
                   w->s);
            for (int r = 0; r < nr; r++) {
                float *sr = w->s + (size_t)r * KB;
                int nkr = KEND(i0 + r0 + r) - j0, done = 0;
                nkr = nkr < nk ? nkr : nk;
                if (nkr > 0) {
                    float al = softmax_block(sr, nkr, &w->m[t * QR + r], &w->l[t * QR + r]);
                    if (al != 1.0f) /* the row's padding to dhp too */
                        for (int d = 0; d < dhp; d += VW)
                            vf_store(o + (size_t)r * dhp + d,
                                     vf_load(o + (size_t)r * dhp + d) * al);
                    done = (nkr + VW - 1) / VW * VW;
                }
                if (done < nk)
                    memset(sr + done, 0, (size_t)(nk - done) * sizeof(float));
            }
            pv(w->s, nk, vb + (size_t)j0 * a->kv_stride, (size_t)a->kv_stride, dh, o, dhp);
        }
    }
#undef KEND
    for (int t = 0; t < ntile; t++) {
        int r0 = t * QR, nr = nq - r0 < QR ? nq - r0 : QR;
        for (int r = 0; r < nr; r++) {
            float *dst =
                a->out + ((size_t)b * a->Lq + i0 + r0 + r) * a->heads * dh + (size_t)h * dh;
            const float *o = w->o + ((size_t)t * QR + r) * dhp;
            float l = w->l[t * QR + r];
            for (int d = 0; d < dh; d++)
                dst[d] = l > 0 ? o[d] / l : 0.0f;
        }
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
    attn_args a = {q,      k,     v,   q_stride, kv_stride,
                   B,      Lq,    Lk,  heads,    dh,
                   causal, scale, out, NULL,     (Lk + KB - 1) / KB * KB};
#if !M2P_AVX512
    a.kt = ops_big_alloc((size_t)B * heads * dh * a.Lkp * sizeof(float));
    if (!a.kt)
        return m2p_error(M2P_ENOMEM, "attention: out of memory");
    pack_kt(&a);
#endif
    int nqb = (Lq + QB - 1) / QB;
    int ntasks = B * heads * nqb;
    int dhp = (dh + 15) & ~15;
    /* All scratch from the calling thread in one block: allocating in the OpenMP workers
     * would spread it over glibc's per-thread arenas, which keep freed memory resident. */
    int nthr = omp_get_max_threads();
    size_t per = (size_t)QBT * dhp * 2 + (size_t)QBT * KB + 2 * QBT + 16; /* floats */
    per = (per + 15) & ~(size_t)15;
    float *pool = aligned_alloc(64, (size_t)nthr * per * sizeof(float));
    if (!pool) {
        free(a.kt);
        return m2p_error(M2P_ENOMEM, "attention: out of memory");
    }
#pragma omp parallel num_threads(nthr)
    {
        float *base = pool + (size_t)omp_get_thread_num() * per;
        attn_scratch w;
        w.qs = base;
        w.o = w.qs + (size_t)QBT * dhp;
        w.s = w.o + (size_t)QBT * dhp;
        w.m = w.s + (size_t)QBT * KB;
        w.l = w.m + QBT;
#pragma omp for schedule(dynamic, 1)
        for (int t = 0; t < ntasks; t++) {
            int qb = t % nqb, bh = t / nqb;
            attend_block(&a, &w, bh / heads, bh % heads, qb * QB);
        }
    }
    free(pool);
    free(a.kt);
    return 0;
}

/*
 * attention.c — multi-head scaled dot-product attention, tiled with an online softmax
 * (FlashAttention, Dao et al. 2022, algorithm 1) so memory stays O(block) instead of
 * heads x Lq x Lk (at 512^2 the UNet's first self-attention has Lq = Lk = 4096).
 *
 * Work is split over (batch, head, block of QB queries) and run with OpenMP. For each block:
 * S = (scale q) k^T over KB keys at a time, running row max m and sum l, P = exp(S - m),
 * O = O * exp(m_old - m_new) + P v, and finally O / l. K is first packed transposed per head
 * (zero-padded to a multiple of KB) so S's inner loop is a broadcast-FMA over 64 keys; V is
 * read in place. AVX-512 micro-kernels when available, plain C otherwise.
 */
#include "core/error.h"
#include "tensor/cpu/cpu.h"
#include "tensor/ops.h"

#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define QB 64 /* queries per task */
#define KB 64 /* keys per inner block */

typedef struct {
    const float *q, *k, *v;
    int q_stride, kv_stride, B, Lq, Lk, heads, dh, causal;
    float scale;
    float *out;
    float *kt; /* [B*heads][dh][Lkp] */
    int Lkp;
} attn_args;

typedef struct {
    float *qs; /* [QB][dh] scaled queries, zero rows past the end */
    float *s;  /* [QB][KB] scores, then probabilities */
    float *o;  /* [QB][dhp] accumulator */
    float *m, *l;
} attn_scratch;

static void pack_kt(const attn_args *a)
{
    int n = a->B * a->heads;
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < n; bh++) {
        int b = bh / a->heads, h = bh % a->heads;
        float *kt = a->kt + (size_t)bh * a->dh * a->Lkp;
        for (int j0 = 0; j0 < a->Lkp; j0 += 16) {
            for (int d = 0; d < a->dh; d++) {
                float *dst = kt + (size_t)d * a->Lkp + j0;
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

#if M2P_AVX512

/* Keep a loaded vector in a register: GCC otherwise folds the load into every FMA that uses
 * it, and the kernels become load-bound. */
#define REG(v) __asm__("" : "+v"(v))

/* S[4 rows][64 cols] = Qs[4 rows] . Kt[:, j0..j0+64] */
static inline void scores_4x64(const float *qs, int dh, const float *kt, int Lkp, float *s)
{
    __m512 acc[4][4];
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++)
            acc[r][c] = _mm512_setzero_ps();
    for (int d = 0; d < dh; d++) {
        const float *kr = kt + (size_t)d * Lkp;
        __m512 k0 = _mm512_load_ps(kr), k1 = _mm512_load_ps(kr + 16), k2 = _mm512_load_ps(kr + 32),
               k3 = _mm512_load_ps(kr + 48);
        for (int r = 0; r < 4; r++) {
            __m512 qv = _mm512_set1_ps(qs[(size_t)r * dh + d]);
            acc[r][0] = _mm512_fmadd_ps(qv, k0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(qv, k1, acc[r][1]);
            acc[r][2] = _mm512_fmadd_ps(qv, k2, acc[r][2]);
            acc[r][3] = _mm512_fmadd_ps(qv, k3, acc[r][3]);
        }
    }
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++)
            _mm512_store_ps(s + r * KB + c * 16, acc[r][c]);
}

/* 2^x for a vector, x <= 0 in practice (x >= -127 keeps the result a normal float or tiny):
 * Cephes exp2f's degree-6 polynomial on [-1/2, 1/2] (about 1 ulp) and scalef. Cheaper than
 * v_exp because the scores are already in log2 units (q is pre-scaled by log2 e). */
static inline __m512 v_exp2(__m512 x)
{
    x = _mm512_max_ps(x, _mm512_set1_ps(-127.0f));
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

/* A full block (64 valid keys, no mask): scores for 4 rows kept in registers, then the online
 * softmax update right away: P = 2^(S - m_new) stored to p, m, l and alpha updated. */
static inline void scores_softmax_4x64(const float *qs, int dh, const float *kt, int Lkp, float *p,
                                       float *m, float *l, float *alpha)
{
    __m512 acc[4][4];
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++)
            acc[r][c] = _mm512_setzero_ps();
    for (int d = 0; d < dh; d++) {
        const float *kr = kt + (size_t)d * Lkp;
        __m512 k0 = _mm512_load_ps(kr), k1 = _mm512_load_ps(kr + 16), k2 = _mm512_load_ps(kr + 32),
               k3 = _mm512_load_ps(kr + 48);
        REG(k0);
        REG(k1);
        REG(k2);
        REG(k3);
        for (int r = 0; r < 4; r++) {
            __m512 qv = _mm512_set1_ps(qs[(size_t)r * dh + d]);
            acc[r][0] = _mm512_fmadd_ps(qv, k0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(qv, k1, acc[r][1]);
            acc[r][2] = _mm512_fmadd_ps(qv, k2, acc[r][2]);
            acc[r][3] = _mm512_fmadd_ps(qv, k3, acc[r][3]);
        }
    }
    for (int r = 0; r < 4; r++) {
        __m512 mx =
            _mm512_max_ps(_mm512_max_ps(acc[r][0], acc[r][1]), _mm512_max_ps(acc[r][2], acc[r][3]));
        float bm = _mm512_reduce_max_ps(mx);
        float mnew = bm > m[r] ? bm : m[r];
        alpha[r] = m[r] == -INFINITY ? 0.0f : exp2f(m[r] - mnew);
        __m512 vm = _mm512_set1_ps(mnew), sum = _mm512_setzero_ps();
        for (int c = 0; c < 4; c++) {
            __m512 e = v_exp2(_mm512_sub_ps(acc[r][c], vm));
            _mm512_store_ps(p + r * KB + c * 16, e);
            sum = _mm512_add_ps(sum, e);
        }
        l[r] = l[r] * alpha[r] + _mm512_reduce_add_ps(sum);
        m[r] = mnew;
    }
}

/* O[4 rows][d0 .. d0 + 16*NV) = O * alpha + P[4 rows][0..nk) V[0..nk)[d0..]; the last vector
 * is masked with `last`. */
#define DEFINE_PV(NV)                                                                              \
    static inline void pv_4x##NV(const float *p, const float *v, size_t vstride, int nk, float *o, \
                                 int dhp, const float *alpha, __mmask16 last)                      \
    {                                                                                              \
        __m512 acc[4][NV];                                                                         \
        for (int r = 0; r < 4; r++) {                                                              \
            __m512 al = _mm512_set1_ps(alpha[r]);                                                  \
            for (int c = 0; c < NV; c++)                                                           \
                acc[r][c] = _mm512_mul_ps(_mm512_load_ps(o + (size_t)r * dhp + c * 16), al);       \
        }                                                                                          \
        for (int j = 0; j < nk; j++) {                                                             \
            const float *vr = v + (size_t)j * vstride;                                             \
            __m512 vv[NV];                                                                         \
            for (int c = 0; c < NV - 1; c++)                                                       \
                vv[c] = _mm512_loadu_ps(vr + c * 16);                                              \
            vv[NV - 1] = _mm512_maskz_loadu_ps(last, vr + (NV - 1) * 16);                          \
            for (int r = 0; r < 4; r++) {                                                          \
                __m512 pv = _mm512_set1_ps(p[r * KB + j]);                                         \
                for (int c = 0; c < NV; c++)                                                       \
                    acc[r][c] = _mm512_fmadd_ps(pv, vv[c], acc[r][c]);                             \
            }                                                                                      \
        }                                                                                          \
        for (int r = 0; r < 4; r++)                                                                \
            for (int c = 0; c < NV; c++)                                                           \
                _mm512_store_ps(o + (size_t)r * dhp + c * 16, acc[r][c]);                          \
    }
DEFINE_PV(1)
DEFINE_PV(2)
DEFINE_PV(3)
DEFINE_PV(4)
DEFINE_PV(5)
DEFINE_PV(6)

static void pv_rows4(const float *p, const float *v, size_t vstride, int nk, float *o, int dh,
                     int dhp, const float *alpha)
{
    int nvec = (dh + 15) / 16;
    int nchunks = (nvec + 5) / 6;
    int c0 = 0;
    for (int ch = 0; ch < nchunks; ch++) {
        int nv = nvec / nchunks + (ch < nvec % nchunks);
        int d0 = c0 * 16;
        int lastw = dh - (d0 + (nv - 1) * 16);
        if (lastw > 16)
            lastw = 16;
        __mmask16 last = (__mmask16)((1u << lastw) - 1u);
        switch (nv) {
        case 1:
            pv_4x1(p, v + d0, vstride, nk, o + d0, dhp, alpha, last);
            break;
        case 2:
            pv_4x2(p, v + d0, vstride, nk, o + d0, dhp, alpha, last);
            break;
        case 3:
            pv_4x3(p, v + d0, vstride, nk, o + d0, dhp, alpha, last);
            break;
        case 4:
            pv_4x4(p, v + d0, vstride, nk, o + d0, dhp, alpha, last);
            break;
        case 5:
            pv_4x5(p, v + d0, vstride, nk, o + d0, dhp, alpha, last);
            break;
        default:
            pv_4x6(p, v + d0, vstride, nk, o + d0, dhp, alpha, last);
            break;
        }
        c0 += nv;
    }
}

/* Row-wise online softmax update on S[rows][KB] (valid columns < nk, causal limit per row):
 * returns alpha per row and turns S into P. */
static void softmax_block(float *s, int rows, int nk, const int *limit, float *m, float *l,
                          float *alpha)
{
    for (int r = 0; r < rows; r++) {
        float *sr = s + r * KB;
        int lim = limit ? limit[r] : nk; /* columns >= lim are masked */
        if (lim > nk)
            lim = nk;
        __m512 mx = _mm512_set1_ps(-INFINITY);
        for (int c = 0; c < KB; c += 16) {
            int w = lim - c;
            __mmask16 mk = w >= 16 ? 0xffff : w <= 0 ? 0 : (__mmask16)((1u << w) - 1u);
            mx = _mm512_mask_max_ps(mx, mk, mx, _mm512_load_ps(sr + c));
        }
        float bm = _mm512_reduce_max_ps(mx);
        float mnew = bm > m[r] ? bm : m[r];
        if (mnew == -INFINITY) { /* whole row masked so far */
            alpha[r] = 1.0f;
            memset(sr, 0, KB * sizeof(float));
            continue;
        }
        alpha[r] = m[r] == -INFINITY ? 0.0f : exp2f(m[r] - mnew);
        __m512 vm = _mm512_set1_ps(mnew), sum = _mm512_setzero_ps();
        for (int c = 0; c < KB; c += 16) {
            int w = lim - c;
            __mmask16 mk = w >= 16 ? 0xffff : w <= 0 ? 0 : (__mmask16)((1u << w) - 1u);
            __m512 e = _mm512_maskz_mov_ps(mk, v_exp2(_mm512_sub_ps(_mm512_load_ps(sr + c), vm)));
            _mm512_store_ps(sr + c, e);
            sum = _mm512_add_ps(sum, e);
        }
        l[r] = l[r] * alpha[r] + _mm512_reduce_add_ps(sum);
        m[r] = mnew;
    }
}

static void attend_block(const attn_args *a, attn_scratch *w, int b, int h, int i0)
{
    const int dh = a->dh, dhp = (dh + 15) & ~15;
    int nq = a->Lq - i0 < QB ? a->Lq - i0 : QB;
    int rows = (nq + 3) & ~3;
    for (int r = 0; r < rows; r++) {
        float *dst = w->qs + (size_t)r * dh;
        if (r < nq) {
            const float *src = a->q + ((size_t)b * a->Lq + i0 + r) * a->q_stride + (size_t)h * dh;
            const float sc = a->scale * 1.44269504088896341f; /* scores in log2 units */
            for (int d = 0; d < dh; d++)
                dst[d] = src[d] * sc;
        } else {
            memset(dst, 0, (size_t)dh * sizeof(float));
        }
        w->m[r] = -INFINITY;
        w->l[r] = 0.0f;
    }
    memset(w->o, 0, (size_t)rows * dhp * sizeof(float));
    const float *kt = a->kt + ((size_t)b * a->heads + h) * dh * a->Lkp;
    const float *vb = a->v + (size_t)b * a->Lk * a->kv_stride + (size_t)h * dh;
    int kend = a->Lk;
    if (a->causal && i0 + nq < kend)
        kend = i0 + nq; /* keys j <= i only */
    int limit[QB];
    float alpha[QB];
    for (int j0 = 0; j0 < kend; j0 += KB) {
        int nk = kend - j0 < KB ? kend - j0 : KB;
        if (nk == KB && (!a->causal || j0 + KB <= i0 + 1)) { /* no masked key in the block */
            for (int r = 0; r < rows; r += 4)
                scores_softmax_4x64(w->qs + (size_t)r * dh, dh, kt + j0, a->Lkp, w->s + r * KB,
                                    w->m + r, w->l + r, alpha + r);
        } else {
            for (int r = 0; r < rows; r += 4)
                scores_4x64(w->qs + (size_t)r * dh, dh, kt + j0, a->Lkp, w->s + r * KB);
            if (a->causal)
                for (int r = 0; r < rows; r++)
                    limit[r] = i0 + r + 1 - j0;
            softmax_block(w->s, rows, nk, a->causal ? limit : NULL, w->m, w->l, alpha);
        }
        for (int r = 0; r < rows; r += 4)
            pv_rows4(w->s + r * KB, vb + (size_t)j0 * a->kv_stride, (size_t)a->kv_stride, nk,
                     w->o + (size_t)r * dhp, dh, dhp, alpha + r);
    }
    int ld = a->heads * dh;
    for (int r = 0; r < nq; r++) {
        float inv = w->l[r] > 0 ? 1.0f / w->l[r] : 0.0f;
        float *dst = a->out + ((size_t)b * a->Lq + i0 + r) * ld + (size_t)h * dh;
        const float *src = w->o + (size_t)r * dhp;
        for (int d = 0; d < dh; d++)
            dst[d] = src[d] * inv;
    }
}

#else /* portable version of the same algorithm */

static void attend_block(const attn_args *a, attn_scratch *w, int b, int h, int i0)
{
    const int dh = a->dh, dhp = (dh + 15) & ~15;
    int nq = a->Lq - i0 < QB ? a->Lq - i0 : QB;
    const float *kt = a->kt + ((size_t)b * a->heads + h) * dh * a->Lkp;
    const float *vb = a->v + (size_t)b * a->Lk * a->kv_stride + (size_t)h * dh;
    for (int r = 0; r < nq; r++) {
        const float *src = a->q + ((size_t)b * a->Lq + i0 + r) * a->q_stride + (size_t)h * dh;
        float *qs = w->qs, *o = w->o, *s = w->s;
        for (int d = 0; d < dh; d++)
            qs[d] = src[d] * a->scale;
        memset(o, 0, (size_t)dhp * sizeof(float));
        float m = -INFINITY, l = 0;
        int kend = a->causal && i0 + r + 1 < a->Lk ? i0 + r + 1 : a->Lk;
        for (int j0 = 0; j0 < kend; j0 += KB) {
            int nk = kend - j0 < KB ? kend - j0 : KB;
            float bm = -INFINITY;
            for (int j = 0; j < nk; j++) {
                float acc = 0;
                for (int d = 0; d < dh; d++)
                    acc += qs[d] * kt[(size_t)d * a->Lkp + j0 + j];
                s[j] = acc;
                if (acc > bm)
                    bm = acc;
            }
            float mnew = bm > m ? bm : m;
            float al = m == -INFINITY ? 0.0f : expf(m - mnew);
            float sum = 0;
            for (int j = 0; j < nk; j++) {
                s[j] = expf(s[j] - mnew);
                sum += s[j];
            }
            l = l * al + sum;
            m = mnew;
            for (int d = 0; d < dh; d++)
                o[d] *= al;
            for (int j = 0; j < nk; j++) {
                const float *vr = vb + (size_t)(j0 + j) * a->kv_stride;
                for (int d = 0; d < dh; d++)
                    o[d] += s[j] * vr[d];
            }
        }
        float *dst = a->out + ((size_t)b * a->Lq + i0 + r) * a->heads * dh + (size_t)h * dh;
        for (int d = 0; d < dh; d++)
            dst[d] = l > 0 ? o[d] / l : 0.0f;
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
    a.kt = ops_big_alloc((size_t)B * heads * dh * a.Lkp * sizeof(float));
    if (!a.kt)
        return m2p_error(M2P_ENOMEM, "attention: out of memory");
    pack_kt(&a);
    int nqb = (Lq + QB - 1) / QB;
    int ntasks = B * heads * nqb;
    int dhp = (dh + 15) & ~15;
    /* All scratch from the calling thread in one block: allocating in the OpenMP workers
     * would spread it over glibc's per-thread arenas, which keep freed memory resident. */
    int nthr = omp_get_max_threads();
    size_t per = (size_t)QB * dhp * 2 + (size_t)QB * KB + 2 * QB + 16; /* floats, 64B multiple */
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
        w.o = w.qs + (size_t)QB * dhp;
        w.s = w.o + (size_t)QB * dhp;
        w.m = w.s + (size_t)QB * KB;
        w.l = w.m + QB;
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

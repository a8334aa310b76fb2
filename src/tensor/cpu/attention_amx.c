/*
 * attention_amx.c — op_attention_bf16: the same tiled online-softmax attention as attention.c
 * (FlashAttention, Dao et al. 2022, algorithm 1) with S = Q K^T and O = P V on Intel AMX tiles
 * (TDPBF16PS: bf16 products, f32 accumulation; Intel SDM vol. 1 ch. 18 and the intrinsics
 * guide's _tile_* entries); the softmax, its running max/sum and O stay f32 in AVX-512.
 * Why AMX and not AVX512-BF16: on this CPU vdpbf16ps zmm issues once per 2 cycles (32 FLOP per
 * cycle) against two FMAs per cycle (64 FLOP), so a dot-product kernel loses to attention.c.
 * Inputs are f32 (the linears' outputs); per call K and V are rounded to bf16 and packed once
 * per (batch, head) in the tiles' pair-interleaved (VNNI) layout, a task's queries once per task.
 * Without AMX (or in the portable build, or MUS2PIC_CPU=generic) it is op_attention.
 */
#include "core/error.h"
#include "tensor/cpu/cpu.h"
#include "tensor/ops.h"

#include <math.h>
#include <omp.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if M2P_AVX512 && defined(__x86_64__)
/* Only this section is built for AMX and AVX512-BF16 (run only where amx_usable() says so);
 * GCC and clang spell that differently. */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512bf16,amx-tile,amx-bf16"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512bf16,amx-tile,amx-bf16")
#endif
#include <sys/syscall.h>
#include <unistd.h>

#define AQB 32  /* queries per task: two 16-row tiles */
#define AKB 128 /* keys per block of the online softmax: 8 S tiles of 16 keys */

/* Every tile is 16 rows x 64 bytes: 16 x 16 f32 (S, O), 16 x 32 bf16 (Q, P), or 16 pairs x 16
 * columns x 2 bf16 (K^T, V: the B operand's pair-interleaved layout). */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_tilecfg;

/* 0 unknown, 1 no AMX here, 2 AMX usable (CPU has it and the kernel let this process use it) */
static atomic_int amx_state;

static void cpuid_count(unsigned leaf, unsigned sub, unsigned r[4])
{
    __asm__ volatile("cpuid"
                     : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
                     : "a"(leaf), "c"(sub));
}

static int amx_usable(void)
{
    int st = atomic_load_explicit(&amx_state, memory_order_relaxed);
    if (st)
        return st == 2;
    unsigned r[4] = {0}, r1[4] = {0};
    cpuid_count(0, 0, r);
    int ok = 0;
    if (r[0] >= 7) {
        cpuid_count(7, 0, r);
        cpuid_count(7, 1, r1);
        /* leaf 7.0 EDX: 22 AMX-BF16, 24 AMX-TILE; leaf 7.1 EAX 5: AVX512-BF16 (vcvtneps2bf16) */
        ok = (r[3] >> 22 & 1) && (r[3] >> 24 & 1) && (r1[0] >> 5 & 1);
    }
    const char *env = getenv("MUS2PIC_AMX");
    if (env && strcmp(env, "0") == 0)
        ok = 0;
    /* Linux hands out the 8 KiB tile state only on request (ARCH_REQ_XCOMP_PERM = 0x1023,
     * XFEATURE_XTILEDATA = 18); oneDNN makes the same request for its own AMX kernels. */
    if (ok && syscall(SYS_arch_prctl, 0x1023, 18) != 0)
        ok = 0;
    atomic_store_explicit(&amx_state, ok ? 2 : 1, memory_order_relaxed);
    return ok;
}

static void amx_configure(void)
{
    amx_tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.colsb[t] = 64;
        cfg.rows[t] = 16;
    }
    _tile_loadconfig(&cfg);
}

typedef struct {
    const float *q, *k, *v;
    int q_stride, kv_stride, B, Lq, Lk, heads, dh, causal;
    float scale;
    float *out;
    int dp;         /* dh rounded up to 32 (the K extent of an S product) */
    int ng;         /* 16-column groups of dh (the N extent of O) */
    int lk16, lk32; /* Lk rounded up to 16 / 32 */
    uint16_t *kp;   /* [B*heads][lk16/16][dp/2][16][2] */
    uint16_t *vp;   /* [B*heads][ng][lk32/2][16][2] */
} amx_args;

static inline uint16_t bf16_round(float f) /* round to nearest even, as vcvtneps2bf16 */
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

/* K and V of one (batch, head) into the B-operand layouts; pads are zeros. */
static void pack_kv(const amx_args *a, int bh)
{
    const int b = bh / a->heads, h = bh % a->heads, dh = a->dh;
    const size_t ks = (size_t)a->kv_stride;
    const float *kb = a->k + (size_t)b * a->Lk * ks + (size_t)h * dh;
    const float *vb = a->v + (size_t)b * a->Lk * ks + (size_t)h * dh;
    uint16_t *kp = a->kp + (size_t)bh * a->lk16 * a->dp;
    for (int u = 0; u < a->lk16 / 16; u++) {
        uint16_t *tile = kp + (size_t)u * 16 * a->dp; /* [dp/2][16 keys][2] */
        for (int n = 0; n < 16; n++) {
            int j = u * 16 + n;
            const float *kr = kb + (size_t)j * ks;
            for (int d = 0; d < a->dp; d++) {
                uint16_t x = j < a->Lk && d < dh ? bf16_round(kr[d]) : 0;
                tile[((size_t)(d >> 1) * 16 + n) * 2 + (d & 1)] = x;
            }
        }
    }
    uint16_t *vp = a->vp + (size_t)bh * a->ng * 16 * a->lk32;
    for (int g = 0; g < a->ng; g++) {
        uint16_t *col = vp + (size_t)g * 16 * a->lk32; /* [lk32/2][16 dims][2] */
        for (int j = 0; j < a->lk32; j++) {
            const float *vr = vb + (size_t)j * ks;
            for (int n = 0; n < 16; n++) {
                int d = g * 16 + n;
                uint16_t x = j < a->Lk && d < dh ? bf16_round(vr[d]) : 0;
                col[((size_t)(j >> 1) * 16 + n) * 2 + (j & 1)] = x;
            }
        }
    }
}

typedef struct {
    uint16_t *qb; /* [AQB][dp] scaled queries, bf16 */
    float *s;     /* [AQB][AKB] scores */
    uint16_t *pb; /* [AQB][AKB] probabilities, bf16 */
    float *ob;    /* [AQB][ng*16] this block's P V */
    float *o;     /* [AQB][ng*16] running output */
    float *m, *l; /* [AQB] running max (log2 units) and sum */
} amx_scratch;

/* C[32][16 or 32] = A[32][kdim] . B, the one tile product both halves of attention make:
 * A is bf16 rows lda elements apart (Q or P), B one or two 16-column tiles in the pair-interleaved
 * layout (b1 NULL: one), advancing 16 elements per bf16 of kdim (K^T or V), C f32 rows ldc floats
 * apart. tmm0-3 accumulate, tmm4-5 hold A's two 16-row halves, tmm6-7 the B tiles. */
static inline void amx_gemm32(const uint16_t *a, int lda, int kdim, const uint16_t *b0,
                              const uint16_t *b1, float *c, int ldc)
{
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int k = 0; k < kdim; k += 32) {
        _tile_loadd(4, a + k, lda * 2);
        _tile_loadd(5, a + (size_t)16 * lda + k, lda * 2);
        _tile_loadd(6, b0 + (size_t)k * 16, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 5, 6);
        if (b1) {
            _tile_loadd(7, b1 + (size_t)k * 16, 64);
            _tile_dpbf16ps(2, 4, 7);
            _tile_dpbf16ps(3, 5, 7);
        }
    }
    _tile_stored(0, c, ldc * 4);
    _tile_stored(1, c + (size_t)16 * ldc, ldc * 4);
    if (b1) {
        _tile_stored(2, c + 16, ldc * 4);
        _tile_stored(3, c + (size_t)16 * ldc + 16, ldc * 4);
    }
}

/* 2^x for x <= 0 (down to -127; below, 2^-127 times the polynomial). The polynomial is the
 * degree-4 interpolant of 2^r at the Chebyshev nodes of [-1/2, 1/2]: max relative error 3.5e-6,
 * 500x below the 2^-9 of the bf16 rounding P gets before P V (Cephes' degree 6, which the f32
 * kernel keeps, spends two more FMAs for 1e-7 that the rounding throws away). */
static inline __m512 amx_exp2_live(__m512 x)
{
    x = _mm512_max_ps(x, _mm512_set1_ps(-127.0f));
    __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_sub_ps(x, n);
    __m512 p = _mm512_set1_ps(0.00966636836528778f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.055921975523233414f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.2402234971523285f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.6931210160255432f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* the same, and -inf (masked keys) gives 0 exactly */
static inline __m512 amx_exp2(__m512 x)
{
    __mmask16 live = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-INFINITY), _CMP_NEQ_OQ);
    return _mm512_maskz_mov_ps(live, amx_exp2_live(x));
}

/* One task: 32 queries (from i0) of head h of batch b over every key block, with the online
 * softmax between the two tile products; the result divided by the running sum into out. */
static void amx_block(const amx_args *a, amx_scratch *w, int b, int h, int i0)
{
    const int dh = a->dh, dp = a->dp, ng = a->ng, on = ng * 16;
    const int nq = a->Lq - i0 < AQB ? a->Lq - i0 : AQB;
    const float sc = a->scale * 1.44269504088896341f; /* scores in log2 units */
    for (int r = 0; r < AQB; r++) {
        uint16_t *dst = w->qb + (size_t)r * dp;
        const float *src = a->q + ((size_t)b * a->Lq + i0 + r) * a->q_stride + (size_t)h * dh;
        int d = 0;
        if (r < nq)
            for (; d + 16 <= dh; d += 16)
                _mm256_storeu_si256((__m256i *)(dst + d),
                                    (__m256i)_mm512_cvtneps_pbh(_mm512_mul_ps(
                                        _mm512_loadu_ps(src + d), _mm512_set1_ps(sc))));
        for (; d < dp; d++)
            dst[d] = r < nq && d < dh ? bf16_round(src[d] * sc) : 0;
        w->m[r] = -INFINITY;
        w->l[r] = 0.0f;
    }
    memset(w->o, 0, (size_t)AQB * on * sizeof(float));
    const int bh = b * a->heads + h;
    const uint16_t *kp = a->kp + (size_t)bh * a->lk16 * dp;
    const uint16_t *vp = a->vp + (size_t)bh * ng * 16 * a->lk32;
    int kend = a->Lk;
    if (a->causal && i0 + nq < kend)
        kend = i0 + nq; /* keys j <= i only */
    for (int j0 = 0; j0 < kend; j0 += AKB) {
        const int nk = kend - j0 < AKB ? kend - j0 : AKB;
        const int nt = (nk + 15) / 16; /* S tiles of 16 keys */
        /* S[32][16 t..] = Qb . K^T, two key tiles at a time */
        for (int t = 0; t < nt; t += 2) {
            const uint16_t *k0 = kp + (size_t)(j0 / 16 + t) * 16 * dp;
            amx_gemm32(w->qb, dp, dp, k0, t + 1 < nt ? k0 + (size_t)16 * dp : NULL,
                       w->s + t * 16, AKB);
        }
        /* online softmax per query row; keys past nk (tile padding, the causal mask) are
         * -inf, and P is zero up to the 32-key boundary of the P V product */
        const int nk32 = (nk + 31) & ~31;
        for (int r = 0; r < AQB; r++) {
            float *sr = w->s + (size_t)r * AKB;
            int lim = nk; /* keys of this row */
            if (a->causal) {
                int ki = i0 + r - j0 + 1;
                lim = ki < lim ? (ki > 0 ? ki : 0) : lim;
            }
            __m512 mx = _mm512_set1_ps(w->m[r]);
            const int full = lim == nk32; /* every score of the row is a real key's */
            if (full)
                for (int c = 0; c < nk32; c += 16)
                    mx = _mm512_max_ps(mx, _mm512_loadu_ps(sr + c));
            else
                for (int c = 0; c < nk32; c += 16) {
                    __mmask16 in = c >= lim ? 0
                                            : (__mmask16)(lim - c >= 16 ? 0xffff
                                                                        : (1u << (lim - c)) - 1);
                    __m512 s = _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), in, sr + c);
                    _mm512_storeu_ps(sr + c, s);
                    mx = _mm512_max_ps(mx, s);
                }
            float m = _mm512_reduce_max_ps(mx);
            float mold = w->m[r];
            /* a row with no key yet keeps m = -inf: its P is all zero, alpha 1 */
            float al = mold == -INFINITY
                           ? (m == -INFINITY ? 1.0f : 0.0f)
                           : _mm512_cvtss_f32(amx_exp2_live(_mm512_set1_ps(mold - m)));
            __m512 mv = _mm512_set1_ps(m == -INFINITY ? 0.0f : m), sum = _mm512_setzero_ps();
            uint16_t *pr = w->pb + (size_t)r * AKB;
            if (full && m != -INFINITY) /* no -inf to mask */
                for (int c = 0; c < nk32; c += 16) {
                    __m512 e = amx_exp2_live(_mm512_sub_ps(_mm512_loadu_ps(sr + c), mv));
                    sum = _mm512_add_ps(sum, e);
                    _mm256_storeu_si256((__m256i *)(pr + c), (__m256i)_mm512_cvtneps_pbh(e));
                }
            else
                for (int c = 0; c < nk32; c += 16) {
                    __m512 e = amx_exp2(_mm512_sub_ps(_mm512_loadu_ps(sr + c), mv));
                    sum = _mm512_add_ps(sum, e);
                    _mm256_storeu_si256((__m256i *)(pr + c), (__m256i)_mm512_cvtneps_pbh(e));
                }
            w->m[r] = m;
            w->l[r] = w->l[r] * al + _mm512_reduce_add_ps(sum);
            w->s[(size_t)r * AKB] = al; /* alpha of this row, read below */
        }
        /* Ob[32][16 g..] = P . V, two column groups at a time, then O = O * alpha + Ob */
        for (int g = 0; g < ng; g += 2) {
            const uint16_t *v0 = vp + (size_t)g * 16 * a->lk32 + (size_t)(j0 / 2) * 32;
            amx_gemm32(w->pb, AKB, nk32, v0, g + 1 < ng ? v0 + (size_t)16 * a->lk32 : NULL,
                       w->ob + g * 16, on);
        }
        for (int r = 0; r < AQB; r++) {
            __m512 al = _mm512_set1_ps(w->s[(size_t)r * AKB]);
            float *o = w->o + (size_t)r * on;
            const float *ob = w->ob + (size_t)r * on;
            for (int c = 0; c < on; c += 16)
                _mm512_storeu_ps(
                    o + c, _mm512_fmadd_ps(_mm512_loadu_ps(o + c), al, _mm512_loadu_ps(ob + c)));
        }
    }
    const int ld = a->heads * dh;
    for (int r = 0; r < nq; r++) {
        float *dst = a->out + ((size_t)b * a->Lq + i0 + r) * ld + (size_t)h * dh;
        const float *o = w->o + (size_t)r * on;
        float inv = w->l[r] > 0 ? 1.0f / w->l[r] : 0.0f;
        for (int d = 0; d < dh; d++)
            dst[d] = o[d] * inv;
    }
}

/* One thread's share of attention_amx, inside its parallel region (a function of its own, not
 * the region's body: clang 14 does not build an OpenMP region's outlined body for AMX). */
static void amx_thread(const amx_args *ap, float *base, int nbh, int heads, int nqb)
{
    amx_args a = *ap;
    const int on = a.ng * 16, ntasks = nbh * nqb;
#pragma omp for schedule(static)
    for (int bh = 0; bh < nbh; bh++)
        pack_kv(&a, bh);
    amx_scratch w;
    w.s = base;
    w.ob = w.s + (size_t)AQB * AKB;
    w.o = w.ob + (size_t)AQB * on;
    w.m = w.o + (size_t)AQB * on;
    w.l = w.m + AQB;
    w.qb = (uint16_t *)(w.l + AQB);
    w.pb = w.qb + (size_t)AQB * a.dp;
    amx_configure();
#pragma omp for schedule(dynamic, 1)
    for (int t = 0; t < ntasks; t++) {
        int qb = t % nqb, bhi = t / nqb;
        amx_block(&a, &w, bhi / heads, bhi % heads, qb * AQB);
    }
    _tile_release();
}

static int attention_amx(const float *q, int q_stride, const float *k, const float *v,
                         int kv_stride, int B, int Lq, int Lk, int heads, int dh, float scale,
                         int causal, float *out)
{
    amx_args a = {q,
                  k,
                  v,
                  q_stride,
                  kv_stride,
                  B,
                  Lq,
                  Lk,
                  heads,
                  dh,
                  causal,
                  scale,
                  out,
                  (dh + 31) & ~31,
                  (dh + 15) / 16,
                  (Lk + 15) & ~15,
                  (Lk + 31) & ~31,
                  NULL,
                  NULL};
    const int nbh = B * heads;
    const size_t kpn = (size_t)nbh * a.lk16 * a.dp, vpn = (size_t)nbh * a.ng * 16 * a.lk32;
    uint16_t *packed = ops_big_alloc((kpn + vpn) * sizeof(uint16_t));
    if (!packed)
        return m2p_error(M2P_ENOMEM, "attention (bf16): out of memory for %zu MiB of packed K/V",
                         (kpn + vpn) * sizeof(uint16_t) >> 20);
    a.kp = packed;
    a.vp = packed + kpn;
    const int nqb = (Lq + AQB - 1) / AQB, on = a.ng * 16;
    /* per thread, floats: qb and pb are bf16 (counted as halves), s, ob, o, m, l */
    size_t per = (size_t)AQB * a.dp / 2 + (size_t)AQB * AKB + (size_t)AQB * AKB / 2 +
                 2 * (size_t)AQB * on + 2 * AQB;
    per = (per + 15) & ~(size_t)15;
    const int nthr = omp_get_max_threads();
    float *pool = aligned_alloc(64, (size_t)nthr * per * sizeof(float));
    if (!pool) {
        free(packed);
        return m2p_error(M2P_ENOMEM, "attention (bf16): out of memory");
    }
#pragma omp parallel num_threads(nthr)
    amx_thread(&a, pool + (size_t)omp_get_thread_num() * per, nbh, heads, nqb);
    free(pool);
    free(packed);
    return 0;
}

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif /* M2P_AVX512 */

int op_attention_bf16(const float *q, int q_stride, const float *k, const float *v, int kv_stride,
                      int B, int Lq, int Lk, int heads, int dh, float scale, int causal, float *out)
{
#if M2P_AVX512 && defined(__x86_64__)
    ops_sync_threads();
    if (B > 0 && Lq > 0 && Lk > 0 && heads > 0 && dh > 0 && q_stride >= heads * dh &&
        kv_stride >= heads * dh && amx_usable())
        return attention_amx(q, q_stride, k, v, kv_stride, B, Lq, Lk, heads, dh, scale, causal,
                             out);
#endif
    return op_attention(q, q_stride, k, v, kv_stride, B, Lq, Lk, heads, dh, scale, causal, out);
}

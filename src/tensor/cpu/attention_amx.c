/*
 * attention_amx.c — op_attention_bf16: the same tiled online-softmax attention as attention.c
 * (FlashAttention, Dao et al. 2022, algorithm 1) on Intel AMX tiles (TDPBF16PS: bf16 products, f32
 * accumulation; Intel SDM vol. 1 ch. 18 and the intrinsics guide's _tile_* entries), transposed:
 * S^T = K Q^T and O^T = V^T P^T, so the 16 queries of a tile's columns are the 16 lanes of the
 * softmax's vectors (reference max, sum and rescale per lane, no horizontal reductions); the
 * softmax, its max/sum and O stay f32 in AVX-512, and the tile products of the neighbouring key
 * blocks run interleaved with it. The reference moves only when a block's scores rise past a
 * margin, so most blocks take one pass over S^T and P V adds into O^T with no rescale. Why AMX and
 * not AVX512-BF16 where both exist: on the Intel CPU this was written on vdpbf16ps zmm issues
 * once per 2 cycles (32 FLOP per cycle) against two FMAs per cycle (64 FLOP), so dot products
 * lose to attention.c. On CPUs with AVX512-BF16 and no AMX (AMD's: there vdpbf16ps issues as
 * often as an FMA, twice its FLOPs; bench_bf16dot) the same kernel runs each tile product as
 * dot products (dot_gemm: a C row in a zmm, A's pairs broadcast), skipping the zero pads
 * the tiles carry. MUS2PIC_AMX=0 turns the tiles off, MUS2PIC_BF16DOT=0 the dot products. Inputs
 * are f32 (the linears' outputs), or bf16 (op_attention_bf16in: the UNet's q/k/v linears write
 * bf16, and the values are those op_attention_bf16 sees when handed them widened); per call K and
 * V^T are rounded to bf16 and packed once per (batch, head) tile by tile, a task's queries (scaled)
 * once per task. Without AMX and AVX512-BF16 (or in the portable and AVX2 builds, or
 * MUS2PIC_CPU=generic or avx2) it is op_attention, on widened copies for bf16 inputs.
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
/* Only this section is built for AMX and AVX512-BF16 (run only where bf16_mode() says so);
 * GCC and clang spell that differently. */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512bf16,amx-tile,amx-bf16"))),              \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512bf16,amx-tile,amx-bf16")
#endif
#include <sys/syscall.h>
#include <unistd.h>

/* AKB 128 was 8-11 % slower at level 0 and 512 slower at level 1 and in the VAE */
#define AQB 32  /* queries per task: two groups of 16, one per zmm lane */
#define AKB 256 /* keys per block of the online softmax: 16 S^T tiles of 16 keys */

/* Every tile is 16 rows x 64 bytes: 16 x 16 f32 (S^T, O^T), 16 x 32 bf16 (K rows, V^T rows), or
 * 16 pairs x 16 columns x 2 bf16 (Q^T, P^T: the B operand's pair-interleaved layout). */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_tilecfg;

enum { MODE_UNKNOWN, MODE_F32, MODE_AMX, MODE_DOT };

/* How op_attention_bf16 runs here, found once: AMX tiles where the CPU has AMX-BF16, AMX-TILE and
 * AVX512-BF16 (vcvtneps2bf16) and the kernel lets this process use the tiles, unless
 * MUS2PIC_AMX=0; else AVX512-BF16 dot products (vdpbf16ps), unless MUS2PIC_BF16DOT=0; else the
 * f32 kernel. The AVX-512 kernels run only on CPUs with AVX512F/BW/VL/DQ. */
static atomic_int bf16_state;

static void cpuid_count(unsigned leaf, unsigned sub, unsigned r[4])
{
    __asm__ volatile("cpuid"
                     : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
                     : "a"(leaf), "c"(sub));
}

static int env_off(const char *name)
{
    const char *env = getenv(name);
    return env && strcmp(env, "0") == 0;
}

static int bf16_mode(void)
{
    int st = atomic_load_explicit(&bf16_state, memory_order_relaxed);
    if (st != MODE_UNKNOWN)
        return st;
    unsigned r[4] = {0}, r1[4] = {0};
    cpuid_count(0, 0, r);
    int tiles = 0, bf16 = 0;
    if (r[0] >= 7) {
        cpuid_count(7, 0, r);
        cpuid_count(7, 1, r1);
        /* leaf 7.0 EDX: 22 AMX-BF16, 24 AMX-TILE; leaf 7.1 EAX 5: AVX512-BF16 */
        tiles = (r[3] >> 22 & 1) && (r[3] >> 24 & 1);
        bf16 = r1[0] >> 5 & 1;
    }
    /* Linux hands out the 8 KiB tile state only on request (ARCH_REQ_XCOMP_PERM = 0x1023,
     * XFEATURE_XTILEDATA = 18); oneDNN makes the same request for its own AMX kernels. */
    if (tiles && bf16 && !env_off("MUS2PIC_AMX") && syscall(SYS_arch_prctl, 0x1023, 18) == 0)
        st = MODE_AMX;
    else if (bf16 && !env_off("MUS2PIC_BF16DOT"))
        st = MODE_DOT;
    else
        st = MODE_F32;
    atomic_store_explicit(&bf16_state, st, memory_order_relaxed);
    return st;
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
    const void *q, *k, *v; /* f32, or bf16 when in16 (strides in elements either way) */
    int in16;
    int q_stride, kv_stride, B, Lq, Lk, heads, dh, causal;
    float scale;
    float *out;
    uint16_t *out16; /* when not NULL, the output as bf16 (op_attention_bf16io) instead of out */
    int dp;          /* dh rounded up to 32 (the K extent of an S^T product) */
    int dv;          /* dh rounded up to 16 (the M extent of O^T: rows of V^T) */
    int lk16, lk32;  /* Lk rounded up to 16 / 32 */
    uint16_t *kp;    /* [B*heads][lk16/16][dp/32][16 keys][32 dims]: K's A tiles, bf16 */
    uint16_t *vt;    /* [B*heads][lk32/32][dv][32 keys]: V^T's A tiles, bf16 */
    int dot;         /* no AMX: the tile products as AVX512-BF16 dot products (dot_gemm) */
} amx_args;

/* element i of an input: f32, or bf16 when in16 */
static inline const void *in_at(const void *p, size_t i, int in16)
{
    return (const char *)p + i * (in16 ? 2 : 4);
}

/* the elements of mask m at src (f32, or bf16 widened exactly when in16), zeros elsewhere */
static inline __m512 in_load(const void *src, __mmask16 m, int in16)
{
    if (!in16)
        return _mm512_maskz_loadu_ps(m, src);
    __m256i h = _mm256_maskz_loadu_epi16(m, src);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* n inputs (scaled by sc) to bf16, rounded to nearest even, then zeros up to np (bf16 inputs
 * with sc 1 come out as they are) */
static inline void row_bf16(uint16_t *dst, const void *src, int in16, int n, int np, float sc)
{
    const __m512 s = _mm512_set1_ps(sc);
    int d = 0;
    for (; d < n; d += 16) {
        __mmask16 in = n - d >= 16 ? 0xffff : (__mmask16)((1u << (n - d)) - 1);
        __m512 x = _mm512_mul_ps(in_load(in_at(src, (size_t)d, in16), in, in16), s);
        _mm256_mask_storeu_epi16(dst + d, (__mmask16)(np - d >= 16 ? 0xffff : (1u << (np - d)) - 1),
                                 (__m256i)_mm512_cvtneps_pbh(x));
    }
    for (; d < np; d++)
        dst[d] = 0;
}

/* r[k] lane l = r[l] lane k: a 16 x 16 transpose of 32-bit elements in registers (unpack 32-
 * and 64-bit pairs, then exchange 128-bit quarters twice) */
static inline void tr16x16(__m512 r[16])
{
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]),
                c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
        r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++) {
            t[8 * i + j] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + 4 + j], 0x88);
            t[8 * i + 4 + j] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + 4 + j], 0xdd);
        }
    for (int j = 0; j < 8; j++) {
        r[j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0x88);
        r[8 + j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0xdd);
    }
}

static inline __mmask16 first_n(int n) /* lanes 0 .. n-1 (n may be <= 0 or >= 16) */
{
    return n >= 16 ? 0xffff : n <= 0 ? 0 : (__mmask16)((1u << n) - 1);
}

/* K of one (batch, head) as bf16 rows (the A operand of S^T = K Q^T) and V transposed (the A
 * operand of O^T = V^T P^T), each tile's 16 rows of 64 bytes contiguous (a row stride of a whole
 * K row or, worse, of Lk keys of V^T would put a tile's 16 rows in the same few cache sets);
 * pads are zeros. tmp holds one row of dp bf16. */
static void pack_kv(const amx_args *a, int bh, uint16_t *tmp)
{
    const int b = bh / a->heads, h = bh % a->heads, dh = a->dh, dp = a->dp, dv = a->dv;
    const size_t ks = (size_t)a->kv_stride, base = (size_t)b * a->Lk * ks + (size_t)h * dh;
    const int in16 = a->in16;
    uint16_t *kp = a->kp + (size_t)bh * a->lk16 * dp;
    for (int j0 = 0; j0 < a->lk16; j0 += 16) {
        for (int n = 0; n < 16; n++) {
            int j = j0 + n < a->Lk ? j0 + n : 0;
            row_bf16(tmp, in_at(a->k, base + (size_t)j * ks, in16), in16, j0 + n < a->Lk ? dh : 0,
                     dp, 1.0f);
            for (int kk = 0; kk < dp; kk += 32) /* row n of the tile of k-step kk */
                memcpy(kp + (size_t)j0 * dp + (size_t)kk * 16 + (size_t)n * 32, tmp + kk, 64);
        }
    }
    /* V^T by 16 keys x 16 dimensions: 16 key rows in, transposed, 16 dimension rows out */
    uint16_t *vt = a->vt + (size_t)bh * dv * a->lk32;
    for (int j0 = 0; j0 < a->lk32; j0 += 16) {
        uint16_t *dst = vt + (size_t)(j0 & ~31) * dv + (j0 & 31); /* [dv][32 keys] */
        for (int d0 = 0; d0 < dv; d0 += 16) {
            __m512 r[16];
            const __mmask16 dm = first_n(dh - d0);
            for (int n = 0; n < 16; n++)
                r[n] = j0 + n < a->Lk
                           ? in_load(in_at(a->v, base + (size_t)(j0 + n) * ks + d0, in16), dm, in16)
                           : _mm512_setzero_ps();
            tr16x16(r);
            for (int k = 0; k < 16; k++)
                _mm256_storeu_si256((__m256i *)(dst + (size_t)(d0 + k) * 32),
                                    (__m256i)_mm512_cvtneps_pbh(r[k]));
        }
    }
}

/* One tile product C = A . B (acc: C += A . B) on a 2 x 2 grid of 16 x 16 f32 tiles, the one both
 * halves of attention make: A is two 16 x 32 bf16 tiles (a1 NULL: one), rows 64 bytes apart,
 * advancing astep elements per k-step; B one or two (b1 NULL) pair-interleaved tiles, rows 64
 * bytes apart, advancing bstep elements per k-step; C tile (m, n) at c + m*16*ldc + n*cn. */
typedef struct {
    const uint16_t *a0, *a1, *b0, *b1;
    int astep, bstep, ksteps, ldc, cn, acc;
    float *c;
    /* for dot_gemm: the rows of A tile 0 and 1 and the K extent (elements) that are not zero
     * pads; the tile unit multiplies the pads anyway, the dot products skip them */
    int rows0, rows1, kn;
} amx_gemm;

/* The k-steps of a block's products, run a few at a time from inside the softmax loop (see
 * amx_block): jobs in order, each job's k-steps in order, so one job holds the tiles at a time. */
#define AMX_MAXJOBS 48 /* a block queues AKB / 32 S^T jobs and dv / 32 P V jobs: dh <= 1024 */
typedef struct {
    amx_gemm job[AMX_MAXJOBS];
    int n, cur, k; /* jobs queued, the running one, its next k-step */
    int dot;       /* run each job as AVX512-BF16 dot products (no AMX here) */
} amx_queue;

/* k-step k of g: tmm0-3 accumulate (zeroed, or loaded from C, at k-step 0, stored after the
 * last), tmm4-5 hold A, tmm6-7 B */
static inline void amx_gemm_step(const amx_gemm *g, int k)
{
    if (k == 0 && g->acc) {
        _tile_loadd(0, g->c, g->ldc * 4);
        if (g->b1)
            _tile_loadd(1, g->c + g->cn, g->ldc * 4);
        if (g->a1) {
            _tile_loadd(2, g->c + (size_t)16 * g->ldc, g->ldc * 4);
            if (g->b1)
                _tile_loadd(3, g->c + (size_t)16 * g->ldc + g->cn, g->ldc * 4);
        }
    } else if (k == 0) {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
    }
    _tile_loadd(4, g->a0 + (size_t)k * g->astep, 64);
    _tile_loadd(6, g->b0 + (size_t)k * g->bstep, 64);
    _tile_dpbf16ps(0, 4, 6);
    if (g->b1) {
        _tile_loadd(7, g->b1 + (size_t)k * g->bstep, 64);
        _tile_dpbf16ps(1, 4, 7);
    }
    if (g->a1) {
        _tile_loadd(5, g->a1 + (size_t)k * g->astep, 64);
        _tile_dpbf16ps(2, 5, 6);
        if (g->b1)
            _tile_dpbf16ps(3, 5, 7);
    }
    if (k == g->ksteps - 1) {
        _tile_stored(0, g->c, g->ldc * 4);
        if (g->b1)
            _tile_stored(1, g->c + g->cn, g->ldc * 4);
        if (g->a1) {
            _tile_stored(2, g->c + (size_t)16 * g->ldc, g->ldc * 4);
            if (g->b1)
                _tile_stored(3, g->c + (size_t)16 * g->ldc + g->cn, g->ldc * 4);
        }
    }
}

/* C (R rows of 16 f32, row stride ldc) = or += A . B over np pairs of K: what TDPBF16PS computes
 * on a tile, with vdpbf16ps: row m of C, its 16 columns in the lanes, takes A[m]'s pair p
 * broadcast times row p of B (16 column pairs). Pair p lies in k-step p / 16: A's at
 * a + (p / 16) astep, B's at b + (p / 16) bstep; rows 64 bytes apart in both. */
/* a pair of bf16 as one 32-bit word, read from a bf16 array */
typedef int32_t bf16_pair __attribute__((may_alias, aligned(4)));

/* acc_i += the pair of A row i at ak (broadcast) . bv: vdpbf16ps with the broadcast as its
 * memory operand ({1to16}), one instruction a product where the intrinsics (gcc 12) issue a
 * vpbroadcastd and the vdpbf16ps. The operands' order does not change a bit: the products of
 * two bf16 are exact in f32. The accumulators are named variables, not an array: an asm
 * output into an array element kept the array in memory, a store per product. */
#define DOT_ROW(i)                                                                                 \
    __asm__("vdpbf16ps %2%{1to16%}, %1, %0"                                                        \
            : "+v"(acc##i)                                                                         \
            : "v"(bv), "m"(*(const bf16_pair *)(ak + 32 * (i))))
#define DOT_LOAD(i) acc##i = load ? _mm512_loadu_ps(c + (size_t)(i)*ldc) : _mm512_setzero_ps()
#define DOT_STORE(i) _mm512_storeu_ps(c + (size_t)(i)*ldc, acc##i)
#define DOT_0_7(X)                                                                                 \
    X(0);                                                                                          \
    X(1);                                                                                          \
    X(2);                                                                                          \
    X(3);                                                                                          \
    X(4);                                                                                          \
    X(5);                                                                                          \
    X(6);                                                                                          \
    X(7)
#define DOT_8_15(X)                                                                                \
    X(8);                                                                                          \
    X(9);                                                                                          \
    X(10);                                                                                         \
    X(11);                                                                                         \
    X(12);                                                                                         \
    X(13);                                                                                         \
    X(14);                                                                                         \
    X(15)

/* the k-pair loop of a tile: A's pair p at a + (p / 16) astep + 2 (p % 16), B's row p */
#define DOT_PAIRS(BODY)                                                                            \
    for (int p = 0; p < np; p++) {                                                                 \
        const uint16_t *ak = a + (size_t)(p >> 4) * astep + 2 * (p & 15);                          \
        const __m512bh bv =                                                                        \
            (__m512bh)_mm512_loadu_si512(b + (size_t)(p >> 4) * bstep + (size_t)(p & 15) * 32);    \
        BODY;                                                                                      \
    }

static inline void dot_tile16(const uint16_t *a, int astep, const uint16_t *b, int bstep, int np,
                              float *c, int ldc, int load)
{
    __m512 acc0, acc1, acc2, acc3, acc4, acc5, acc6, acc7;
    __m512 acc8, acc9, acc10, acc11, acc12, acc13, acc14, acc15;
    DOT_0_7(DOT_LOAD);
    DOT_8_15(DOT_LOAD);
    DOT_PAIRS(DOT_0_7(DOT_ROW); DOT_8_15(DOT_ROW))
    DOT_0_7(DOT_STORE);
    DOT_8_15(DOT_STORE);
}

static inline void dot_tile8(const uint16_t *a, int astep, const uint16_t *b, int bstep, int np,
                             float *c, int ldc, int load)
{
    __m512 acc0, acc1, acc2, acc3, acc4, acc5, acc6, acc7;
    DOT_0_7(DOT_LOAD);
    DOT_PAIRS(DOT_0_7(DOT_ROW))
    DOT_0_7(DOT_STORE);
}
#undef DOT_PAIRS
#undef DOT_8_15
#undef DOT_0_7
#undef DOT_STORE
#undef DOT_LOAD
#undef DOT_ROW

/* the rows of one A tile that are not pads (8 or 16 at a time) times one B tile */
static inline void dot_rows(const amx_gemm *g, const uint16_t *a, int rows, const uint16_t *b,
                            int np, float *c)
{
    if (rows > 8)
        dot_tile16(a, g->astep, b, g->bstep, np, c, g->ldc, g->acc);
    else if (rows > 0)
        dot_tile8(a, g->astep, b, g->bstep, np, c, g->ldc, g->acc);
}

/* the whole of job g as AVX512-BF16 dot products: amx_gemm_step's products over every k-step
 * (the sums in another order), A rows and K pairs that are pads skipped */
static void dot_gemm(const amx_gemm *g)
{
    const int np = (g->kn + 1) / 2;
    float *c1 = g->c + (size_t)16 * g->ldc;
    dot_rows(g, g->a0, g->rows0, g->b0, np, g->c);
    if (g->a1)
        dot_rows(g, g->a1, g->rows1, g->b0, np, c1);
    if (g->b1) {
        dot_rows(g, g->a0, g->rows0, g->b1, np, g->c + g->cn);
        if (g->a1)
            dot_rows(g, g->a1, g->rows1, g->b1, np, c1 + g->cn);
    }
}

/* run the queue's next k-step, if any */
static inline void amx_advance(amx_queue *q)
{
    if (q->cur >= q->n)
        return;
    const amx_gemm *g = &q->job[q->cur];
    if (q->dot) { /* no tile unit to overlap with the softmax: the whole job at once */
        dot_gemm(g);
        q->cur++;
        return;
    }
    amx_gemm_step(g, q->k);
    if (++q->k == g->ksteps) {
        q->k = 0;
        q->cur++;
    }
}

static void amx_drain(amx_queue *q)
{
    while (q->cur < q->n)
        amx_advance(q);
    q->n = q->cur = q->k = 0;
}

static inline void amx_push(amx_queue *q, const uint16_t *a0, const uint16_t *a1, int astep,
                            const uint16_t *b0, const uint16_t *b1, int bstep, int ksteps, float *c,
                            int ldc, int cn, int acc, int rows0, int rows1, int kn)
{
    amx_gemm *g = &q->job[q->n++];
    g->rows0 = rows0;
    g->rows1 = rows1;
    g->kn = kn;
    g->a0 = a0;
    g->a1 = a1;
    g->astep = astep;
    g->b0 = b0;
    g->b1 = b1;
    g->bstep = bstep;
    g->ksteps = ksteps;
    g->c = c;
    g->ldc = ldc;
    g->cn = cn;
    g->acc = acc;
}

typedef struct {
    uint16_t *qt; /* [2 groups][dp/2][16][2] scaled queries, bf16, pair-interleaved */
    /* two of each, for blocks i and i + 1 (see amx_block) */
    /* S^T keeps each query group's 16 columns apart, so a tile stores 1 KiB in one piece (2-4 %
     * faster than rows of both groups side by side, 4 rounds of 5); O^T likewise */
    float *s[2];     /* [2 groups][AKB keys][16 queries] scores S^T */
    uint16_t *pt[2]; /* [2 groups][AKB/2][16][2] probabilities P^T, bf16, pair-interleaved */
    float *al;       /* [AQB] the running O^T's rescale for the current block */
    float *o;        /* [2 groups][dv][16 queries] running O^T, accumulated by the P V tiles */
    float *m, *l;    /* [AQB] the softmax's reference (log2 units; see amx_softmax16) and sum */
    uint16_t *tmp;   /* [AQB][dp]: a query row on its way to qt */
    amx_queue *q;    /* the tile products run from inside the softmax */
} amx_scratch;

/* 2^x for the x <= 0 of a softmax: 2^floor(x) * 2^r with r = x - floor(x) in [0, 1), which
 * vreduceps gives in one instruction, and vscalefps multiplies by 2^floor(x) itself (it floors
 * its exponent operand), so neither floor(x) nor r needs its own subtraction; exponents far
 * below -126 give 0 (and x up to AMX_MARGIN, see amx_softmax16, is as exact). The polynomial is
 * the degree-4 interpolant of 2^r at the Chebyshev nodes of [0, 1]: max relative error 3.5e-6,
 * 500x below the 2^-9 of the bf16 rounding P gets before P V (Cephes' degree 6, which the f32
 * kernel keeps, spends two more FMAs for 1e-7 that the rounding throws away). Lanes off in k are
 * 0. */
static inline __m512 amx_exp2(__mmask16 k, __m512 x)
{
    /* imm 0x09: keep 0 fraction bits, round down, no precision exception */
    __m512 r = _mm512_reduce_ps(x, 0x09);
    __m512 p = _mm512_set1_ps(0.0136703094533634f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.051744997764090285f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.24160435727010388f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.6929729221730486f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0000034929076984f));
    return _mm512_maskz_scalef_ps(k, p, x);
}

/* the queries of group g (lanes) that may see key jj: all, or under the causal mask those with
 * i >= jj, where lane q is query q0 + q */
static inline __mmask16 causal_lanes(int jj, int q0)
{
    int c = jj - q0;
    return c <= 0 ? 0xffff : c >= 16 ? 0 : (__mmask16)(0xffffu << c);
}

/* How far (log2 units) a block's scores may rise above a lane's reference m before the block is
 * redone with a new one: P = 2^(s - m) <= 2^16 then, far inside f32's and bf16's exponent range
 * (bf16's relative rounding does not depend on the magnitude), and l <= Lk 2^16. */
#define AMX_MARGIN 16.0f

/* One pass over a block's S^T for one group: P^T = 2^(S^T - mv) pair-interleaved into pt (zero
 * for masked keys and for keys past nk up to nk32), one k-step of queued tile work per 4 x 32
 * scores; returns the lanes' sum of P and, in *bmax, the block's max of the scores they see. */
static inline __m512 amx_exp_pass(const amx_args *a, amx_queue *aq, const float *s, uint16_t *pt,
                                  int j0, int nk, int nk32, int q0, __m512 mv, __m512 *bmax)
{
    /* vpermw indices: interleave 16 bf16 of an even key (low half) and 16 of the odd (high) */
    const __m512i ilv = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24,
                                         8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const int masked = a->causal;
    __m512 sum0 = _mm512_setzero_ps(), sum1 = _mm512_setzero_ps();
    __m512 m0 = _mm512_set1_ps(-INFINITY), m1 = m0;
    int j = 0;
    if (!masked)
        for (; j + 1 < nk; j += 2) {
            if ((j & 7) == 0)
                amx_advance(aq); /* one k-step of tile work per 4 x 32 scores */
            const __m512 s0 = _mm512_loadu_ps(s + (size_t)j * 16);
            const __m512 s1 = _mm512_loadu_ps(s + (size_t)(j + 1) * 16);
            m0 = _mm512_max_ps(m0, s0);
            m1 = _mm512_max_ps(m1, s1);
            __m512 e0 = amx_exp2(0xffff, _mm512_sub_ps(s0, mv));
            __m512 e1 = amx_exp2(0xffff, _mm512_sub_ps(s1, mv));
            sum0 = _mm512_add_ps(sum0, e0);
            sum1 = _mm512_add_ps(sum1, e1);
            _mm512_storeu_si512(
                pt + (size_t)j * 16,
                _mm512_permutexvar_epi16(ilv, (__m512i)_mm512_cvtne2ps_pbh(e1, e0)));
        }
    for (; j < nk32; j += 2) { /* causal rows, the odd last key, the pad to 32 keys */
        if ((j & 7) == 0)
            amx_advance(aq);
        __mmask16 k0 = j < nk ? (masked ? causal_lanes(j0 + j, q0) : 0xffff) : 0;
        __mmask16 k1 = j + 1 < nk ? (masked ? causal_lanes(j0 + j + 1, q0) : 0xffff) : 0;
        __m512 e0 = _mm512_setzero_ps(), e1 = _mm512_setzero_ps();
        if (k0) {
            const __m512 s0 = _mm512_loadu_ps(s + (size_t)j * 16);
            m0 = _mm512_mask_max_ps(m0, k0, m0, s0);
            e0 = amx_exp2(k0, _mm512_sub_ps(s0, mv));
        }
        if (k1) {
            const __m512 s1 = _mm512_loadu_ps(s + (size_t)(j + 1) * 16);
            m1 = _mm512_mask_max_ps(m1, k1, m1, s1);
            e1 = amx_exp2(k1, _mm512_sub_ps(s1, mv));
        }
        sum0 = _mm512_add_ps(sum0, e0);
        sum1 = _mm512_add_ps(sum1, e1);
        _mm512_storeu_si512(pt + (size_t)j * 16,
                            _mm512_permutexvar_epi16(ilv, (__m512i)_mm512_cvtne2ps_pbh(e1, e0)));
    }
    *bmax = _mm512_max_ps(m0, m1);
    return _mm512_add_ps(sum0, sum1);
}

/* Online softmax of one block for the 16 queries of group g, in lanes: S^T rows are keys, so the
 * reference, the sum and the rescale are per-lane vector ops (no horizontal reductions). The
 * reference m is not the running max: P = 2^(s - m) is exact whatever m is (O / l cancels it),
 * so m moves only when a block's max rises above it by more than AMX_MARGIN. Then a block is one
 * pass over S^T (exps and max together) with alpha = 1: no rescale of the running O^T. A lane
 * whose max rises too far (or a block that finds a lane with no reference yet, m = -inf: the
 * first block, or causal rows that saw no key) takes the running max as today: its max (one
 * pass, or a max pass), then the exp pass again with m = max(m, block max) and alpha = 2^(m_old -
 * m); lanes that still see no key keep m = -inf, P = 0, alpha 0. Writes P^T pair-interleaved
 * (zero for keys past nk up to nk32), the group's alpha al[16] and l; returns 1 when alpha is not
 * 1 in every lane (the running O^T needs amx_rescale). */
static int amx_softmax16(const amx_args *a, amx_scratch *w, amx_queue *aq, int buf, int g, int j0,
                         int nk, int nk32, int q0)
{
    const float *s = w->s[buf] + (size_t)g * AKB * 16;
    uint16_t *pt = w->pt[buf] + (size_t)g * (AKB / 2) * 32;
    const __m512 mold = _mm512_loadu_ps(w->m + g * 16);
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    const __mmask16 had = _mm512_cmp_ps_mask(mold, ninf, _CMP_NEQ_OQ);
    __m512 bmax, sum;
    if (had == 0xffff) {
        sum = amx_exp_pass(a, aq, s, pt, j0, nk, nk32, q0, mold, &bmax);
        const __mmask16 up =
            _mm512_cmp_ps_mask(bmax, _mm512_add_ps(mold, _mm512_set1_ps(AMX_MARGIN)), _CMP_GT_OQ);
        if (!up) {
            _mm512_storeu_ps(w->al + g * 16, _mm512_set1_ps(1.0f));
            _mm512_storeu_ps(w->l + g * 16, _mm512_add_ps(_mm512_loadu_ps(w->l + g * 16), sum));
            return 0;
        }
    } else if (!a->causal) {
        __m512 m0 = ninf, m1 = ninf;
        int j = 0;
        for (; j + 1 < nk; j += 2) {
            m0 = _mm512_max_ps(m0, _mm512_loadu_ps(s + (size_t)j * 16));
            m1 = _mm512_max_ps(m1, _mm512_loadu_ps(s + (size_t)(j + 1) * 16));
        }
        if (j < nk)
            m0 = _mm512_max_ps(m0, _mm512_loadu_ps(s + (size_t)j * 16));
        bmax = _mm512_max_ps(m0, m1);
    } else {
        bmax = ninf;
        for (int j = 0; j < nk; j++)
            bmax = _mm512_mask_max_ps(bmax, causal_lanes(j0 + j, q0), bmax,
                                      _mm512_loadu_ps(s + (size_t)j * 16));
    }
    const __m512 m = _mm512_max_ps(mold, bmax);
    /* lanes with no key yet keep m = -inf: their P is all zero (every key masked), alpha 0 */
    const __mmask16 seen = _mm512_cmp_ps_mask(m, ninf, _CMP_NEQ_OQ);
    const __m512 al = amx_exp2(had, _mm512_sub_ps(mold, m));
    sum = amx_exp_pass(a, aq, s, pt, j0, nk, nk32, q0, _mm512_maskz_mov_ps(seen, m), &bmax);
    _mm512_storeu_ps(w->m + g * 16, m);
    _mm512_storeu_ps(w->al + g * 16, al);
    _mm512_storeu_ps(w->l + g * 16, _mm512_fmadd_ps(_mm512_loadu_ps(w->l + g * 16), al, sum));
    return 1;
}

/* queue S^T[keys j0.. of one block][32 queries] = K . Q^T into s, two key tiles per job */
static void amx_scores(const amx_args *a, const amx_scratch *w, amx_queue *q, const uint16_t *kp,
                       int j0, int kend, float *s)
{
    const int dp = a->dp, nk = kend - j0 < AKB ? kend - j0 : AKB, nt = (nk + 15) / 16;
    for (int t = 0; t < nt; t += 2) {
        const uint16_t *k0 = kp + (size_t)(j0 + t * 16) * dp;
        amx_push(q, k0, t + 1 < nt ? k0 + (size_t)16 * dp : NULL, 512, w->qt,
                 w->qt + (size_t)dp * 16, 512, dp / 32, s + (size_t)t * 16 * 16, 16, AKB * 16, 0,
                 16, 16, a->dh);
    }
}

/* queue O^T[dims][32 queries] += V^T . P^T of the block at j0 (buffer buf), two dimension tiles
 * per job, straight into the running O^T */
static void amx_pv(const amx_args *a, const amx_scratch *w, amx_queue *q, const uint16_t *vt,
                   int j0, int nk32, int buf)
{
    const int dv = a->dv;
    for (int d = 0; d < dv; d += 32) {
        const uint16_t *v0 = vt + ((size_t)j0 * dv + (size_t)d * 32);
        amx_push(q, v0, d + 16 < dv ? v0 + (size_t)16 * 32 : NULL, dv * 32, w->pt[buf],
                 w->pt[buf] + (size_t)(AKB / 2) * 32, 512, nk32 / 32, w->o + (size_t)d * 16, 16,
                 dv * 16, 1, a->dh - d, a->dh - d - 16, nk32);
    }
}

/* O^T = O^T * alpha: alpha is per query, so per lane */
static inline void amx_rescale(amx_scratch *w, int dv)
{
    for (int g = 0; g < 2; g++) {
        const __m512 al = _mm512_loadu_ps(w->al + g * 16);
        float *o = w->o + (size_t)g * dv * 16;
        for (int d = 0; d < dv; d++)
            _mm512_storeu_ps(o + (size_t)d * 16,
                             _mm512_mul_ps(_mm512_loadu_ps(o + (size_t)d * 16), al));
    }
}

/* One task: 32 queries (from i0) of head h of batch b over every key block, transposed: S^T =
 * K Q^T and O^T = V^T P^T put the queries in the tiles' columns and so in the softmax's vector
 * lanes; the result divided by the running sum into out. */
static void amx_block(const amx_args *a, amx_scratch *w, int b, int h, int i0)
{
    const int dh = a->dh, dp = a->dp, dv = a->dv;
    const int nq = a->Lq - i0 < AQB ? a->Lq - i0 : AQB;
    const float sc = a->scale * 1.44269504088896341f; /* scores in log2 units */
    /* Q^T: each query row to bf16, then its dimension pairs (one 32-bit word) into the column
     * of its lane; rows past nq are zeros (their lanes are computed and never written out) */
    for (int r = 0; r < AQB; r++) {
        const size_t i = ((size_t)b * a->Lq + i0 + (r < nq ? r : 0)) * a->q_stride + (size_t)h * dh;
        row_bf16(w->tmp + (size_t)r * dp, in_at(a->q, i, a->in16), a->in16, r < nq ? dh : 0, dp,
                 sc);
    }
    for (int g = 0; g < 2; g++) /* [16 queries][16 pairs] -> [16 pairs][16 queries] */
        for (int p0 = 0; p0 < dp / 2; p0 += 16) {
            __m512 r[16];
            for (int q = 0; q < 16; q++)
                r[q] = _mm512_loadu_ps(w->tmp + (size_t)(g * 16 + q) * dp + 2 * p0);
            tr16x16(r);
            for (int p = 0; p < 16; p++)
                _mm512_storeu_ps(w->qt + (size_t)g * dp * 16 + (size_t)(p0 + p) * 32, r[p]);
        }
    for (int r = 0; r < AQB; r++) {
        w->m[r] = -INFINITY;
        w->l[r] = 0.0f;
    }
    memset(w->o, 0, (size_t)dv * AQB * sizeof(float));
    const int bh = b * a->heads + h;
    const uint16_t *kp = a->kp + (size_t)bh * a->lk16 * dp;
    const uint16_t *vt = a->vt + (size_t)bh * dv * a->lk32;
    int kend = a->Lk;
    if (a->causal && i0 + nq < kend)
        kend = i0 + nq; /* keys j <= i only */
    /* Software-pipelined: while block i's softmax runs on the vector units, the tile unit
     * computes block i + 1's S^T and block i - 1's P V (queued, and run a k-step at a time from
     * the softmax loop: the out-of-order core overlaps them only when they are close in the
     * instruction stream); each product reads and writes the other buffer of a pair, so no load
     * waits on a store still in flight (tile loads and stores do not forward from the store
     * buffer). P V adds into the running O^T; when block i moved a reference, O^T (blocks up to
     * i - 1) is then rescaled to it before block i's P V. */
    const int nblk = (kend + AKB - 1) / AKB;
    amx_queue *aq = w->q;
    aq->n = aq->cur = aq->k = 0;
    amx_scores(a, w, aq, kp, 0, kend, w->s[0]);
    amx_drain(aq);
    int nk32_prev = 0;
    for (int i = 0; i < nblk; i++) {
        const int j0 = i * AKB, c = i & 1;
        const int nk = kend - j0 < AKB ? kend - j0 : AKB;
        const int nk32 = (nk + 31) & ~31;
        if (i + 1 < nblk)
            amx_scores(a, w, aq, kp, j0 + AKB, kend, w->s[c ^ 1]);
        if (i > 0)
            amx_pv(a, w, aq, vt, j0 - AKB, nk32_prev, c ^ 1);
        int moved = amx_softmax16(a, w, aq, c, 0, j0, nk, nk32, i0);
        moved |= amx_softmax16(a, w, aq, c, 1, j0, nk, nk32, i0 + 16);
        amx_drain(aq);
        if (i > 0 && moved) /* before block 0's P V, O^T is zero */
            amx_rescale(w, dv);
        nk32_prev = nk32;
    }
    amx_pv(a, w, aq, vt, (nblk - 1) * AKB, nk32_prev, (nblk - 1) & 1);
    amx_drain(aq);
    /* O^T / l, transposed back to rows by 16 dimensions x 16 queries */
    const int ld = a->heads * dh;
    for (int g = 0; g * 16 < nq; g++) {
        const __m512 l = _mm512_loadu_ps(w->l + g * 16);
        const __m512 inv = _mm512_maskz_div_ps(
            _mm512_cmp_ps_mask(l, _mm512_setzero_ps(), _CMP_GT_OQ), _mm512_set1_ps(1.0f), l);
        float iv[16];
        _mm512_storeu_ps(iv, inv);
        for (int d0 = 0; d0 < dh; d0 += 16) {
            __m512 r[16];
            for (int k = 0; k < 16; k++)
                r[k] = _mm512_loadu_ps(w->o + ((size_t)g * dv + d0 + k) * 16);
            tr16x16(r);
            const __mmask16 dm = first_n(dh - d0);
            for (int q = 0; q < 16 && g * 16 + q < nq; q++) {
                const size_t o = ((size_t)b * a->Lq + i0 + g * 16 + q) * ld + (size_t)h * dh + d0;
                const __m512 v = _mm512_mul_ps(r[q], _mm512_set1_ps(iv[q]));
                if (a->out16)
                    _mm256_mask_storeu_epi16(a->out16 + o, dm, v_bf16_bits(v));
                else
                    _mm512_mask_storeu_ps(a->out + o, dm, v);
            }
        }
    }
}

/* One thread's share of attention_amx, inside its parallel region (a function of its own, not
 * the region's body: clang 14 does not build an OpenMP region's outlined body for AMX). */
static void amx_thread(const amx_args *ap, float *base, int nbh, int heads, int nqb)
{
    amx_args a = *ap;
    const int ntasks = nbh * nqb;
    amx_scratch w;
    float *f = base;
    w.s[0] = f;
    w.s[1] = f + (size_t)AKB * AQB;
    w.al = w.s[1] + (size_t)AKB * AQB;
    w.o = w.al + AQB;
    w.m = w.o + (size_t)a.dv * AQB;
    w.l = w.m + AQB;
    uint16_t *h = (uint16_t *)(w.l + AQB);
    w.qt = h;
    w.pt[0] = w.qt + (size_t)AQB * a.dp;
    w.pt[1] = w.pt[0] + (size_t)AKB * AQB;
    w.tmp = w.pt[1] + (size_t)AKB * AQB;
#pragma omp for schedule(static)
    for (int bh = 0; bh < nbh; bh++)
        pack_kv(&a, bh, w.tmp);
    amx_queue queue;
    w.q = &queue;
    queue.dot = a.dot;
    if (!a.dot)
        amx_configure();
#pragma omp for schedule(dynamic, 1)
    for (int t = 0; t < ntasks; t++) {
        int qb = t % nqb, bhi = t / nqb;
        amx_block(&a, &w, bhi / heads, bhi % heads, qb * AQB);
    }
    if (!a.dot)
        _tile_release();
}

static int attention_amx(const void *q, int q_stride, const void *k, const void *v, int kv_stride,
                         int B, int Lq, int Lk, int heads, int dh, float scale, int causal,
                         int in16, float *out, uint16_t *out16, int dot)
{
    amx_args a = {q,
                  k,
                  v,
                  in16,
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
                  out16,
                  (dh + 31) & ~31,
                  (dh + 15) & ~15,
                  (Lk + 15) & ~15,
                  (Lk + 31) & ~31,
                  NULL,
                  NULL,
                  dot};
    const int nbh = B * heads;
    const size_t kpn = (size_t)nbh * a.lk16 * a.dp, vpn = (size_t)nbh * a.dv * a.lk32;
    uint16_t *packed = ops_scratch(OPS_SCRATCH_ATTN_KV, (kpn + vpn) * sizeof(uint16_t));
    if (!packed)
        return m2p_error(M2P_ENOMEM, "attention (bf16): out of memory for %zu MiB of packed K/V",
                         (kpn + vpn) * sizeof(uint16_t) >> 20);
    a.kp = packed;
    a.vt = packed + kpn;
    const int nqb = (Lq + AQB - 1) / AQB;
    /* per thread, floats: two s, al, o, m, l; then bf16 (counted as halves) qt, two pt, and tmp,
     * which holds AQB query rows of dp (or, while packing K, one key row) */
    size_t tmpn = (size_t)AQB * a.dp;
    size_t per = 2 * (size_t)AKB * AQB + AQB + (size_t)a.dv * AQB + 2 * AQB +
                 ((size_t)AQB * a.dp + 2 * (size_t)AKB * AQB + tmpn + 1) / 2;
    per = (per + 15) & ~(size_t)15;
    const int nthr = omp_get_max_threads();
    float *pool = ops_scratch(OPS_SCRATCH_ATTN_POOL, (size_t)nthr * per * sizeof(float));
    if (!pool)
        return m2p_error(M2P_ENOMEM, "attention (bf16): out of memory");
#pragma omp parallel num_threads(nthr)
    amx_thread(&a, pool + (size_t)omp_get_thread_num() * per, nbh, heads, nqb);
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
        kv_stride >= heads * dh && dh <= 1024 && bf16_mode() != MODE_F32) /* dh: AMX_MAXJOBS */
        return attention_amx(q, q_stride, k, v, kv_stride, B, Lq, Lk, heads, dh, scale, causal, 0,
                             out, NULL, bf16_mode() == MODE_DOT);
#endif
    return op_attention(q, q_stride, k, v, kv_stride, B, Lq, Lk, heads, dh, scale, causal, out);
}

/* rows [B*L, heads*dh] of bf16 src (row stride `stride`) widened to f32 dst, contiguous */
static void widen_rows(const uint16_t *src, int stride, size_t rows, int C, float *dst)
{
#pragma omp parallel for schedule(static) if (rows * (size_t)C >= 32768)
    for (size_t r = 0; r < rows; r++)
        for (int c = 0; c < C; c++)
            dst[r * C + c] = ops_f32(src[r * (size_t)stride + c]);
}

/* op_attention_bf16in (out) and op_attention_bf16io (out16) */
static int attention_bf16in(const uint16_t *q, int q_stride, const uint16_t *k, const uint16_t *v,
                            int kv_stride, int B, int Lq, int Lk, int heads, int dh, float scale,
                            int causal, float *out, uint16_t *out16)
{
    ops_sync_threads();
    if (B <= 0 || Lq <= 0 || Lk <= 0 || heads <= 0 || dh <= 0 || q_stride < heads * dh ||
        kv_stride < heads * dh)
        return m2p_error(M2P_EINVAL,
                         "attention (bf16 in): bad shape B %d Lq %d Lk %d heads %d dh %d, strides "
                         "%d / %d",
                         B, Lq, Lk, heads, dh, q_stride, kv_stride);
#if M2P_AVX512 && defined(__x86_64__)
    if (dh <= 1024 && bf16_mode() != MODE_F32) /* dh: AMX_MAXJOBS */
        return attention_amx(q, q_stride, k, v, kv_stride, B, Lq, Lk, heads, dh, scale, causal, 1,
                             out, out16, bf16_mode() == MODE_DOT);
#endif
    /* no AMX: op_attention on widened copies (exact), in the slot the AMX packing uses; a bf16
     * output is op_attention's rounded, from the slot of the AMX threads' scratch */
    const int C = heads * dh;
    const size_t nq = (size_t)B * Lq * C, nk = (size_t)B * Lk * C;
    float *f = ops_scratch(OPS_SCRATCH_ATTN_KV, (nq + 2 * nk) * sizeof(float));
    float *o = out16 ? ops_scratch(OPS_SCRATCH_ATTN_POOL, nq * sizeof(float)) : out;
    if (!f || !o)
        return m2p_error(M2P_ENOMEM, "attention (bf16 in): out of memory for %zu MiB of f32 q/k/v",
                         (2 * nq + 2 * nk) * sizeof(float) >> 20);
    widen_rows(q, q_stride, (size_t)B * Lq, C, f);
    widen_rows(k, kv_stride, (size_t)B * Lk, C, f + nq);
    widen_rows(v, kv_stride, (size_t)B * Lk, C, f + nq + nk);
    int rc = op_attention(f, C, f + nq, f + nq + nk, C, B, Lq, Lk, heads, dh, scale, causal, o);
    if (!rc && out16) {
#pragma omp parallel for schedule(static) if (nq >= 32768)
        for (size_t i = 0; i < nq; i++)
            out16[i] = ops_bf16(o[i]);
    }
    return rc;
}

int op_attention_bf16in(const uint16_t *q, int q_stride, const uint16_t *k, const uint16_t *v,
                        int kv_stride, int B, int Lq, int Lk, int heads, int dh, float scale,
                        int causal, float *out)
{
    return attention_bf16in(q, q_stride, k, v, kv_stride, B, Lq, Lk, heads, dh, scale, causal, out,
                            NULL);
}

int op_attention_bf16io(const uint16_t *q, int q_stride, const uint16_t *k, const uint16_t *v,
                        int kv_stride, int B, int Lq, int Lk, int heads, int dh, float scale,
                        int causal, uint16_t *out)
{
    return attention_bf16in(q, q_stride, k, v, kv_stride, B, Lq, Lk, heads, dh, scale, causal, NULL,
                            out);
}

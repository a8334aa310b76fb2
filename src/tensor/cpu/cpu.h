/*
 * cpu.h — what the CPU op files share: the thread-count sync and the vector math (exp, erf)
 * used by softmax, SiLU and GELU. AVX-512 versions when the compiler targets it, scalar libm
 * otherwise.
 */
#ifndef M2P_TENSOR_CPU_H
#define M2P_TENSOR_CPU_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Make the calling thread's OpenMP thread count match op_set_threads(). */
void ops_sync_threads(void);

/* 64-byte aligned memory for free(); blocks of 4 MiB and more are 2 MiB aligned and backed by
 * transparent huge pages where free 2 MiB blocks exist: activations (activations 1) unless
 * M2P_THP=0, weights only with M2P_THP=1 (see dnnl_ops.c). */
void *ops_big_alloc(size_t n, int activations);

/* The calling thread's scratch buffer of a slot, at least n bytes, kept (grow-only) until the
 * thread exits, so that ops called every step reuse pages instead of faulting in fresh ones
 * (a batch-4 UNet step faulted in ~145 MB of attention packing per step); NULL when out of
 * memory. Its contents are undefined; a slot holds one op's buffer for the length of a call. */
enum {
    OPS_SCRATCH_BF16,
    OPS_SCRATCH_ATTN_KV,
    OPS_SCRATCH_ATTN_POOL,
    OPS_SCRATCH_BLK_SRC, /* dnnl_ops.c: a blocked f32 conv's input and output */
    OPS_SCRATCH_BLK_DST,
    OPS_SCRATCH_WINOGRAD,   /* winograd.c: a block's transformed tiles and products */
    OPS_SCRATCH_WINOGRAD_W, /* dnnl_ops.c: a conv's Winograd weights made for one call */
    OPS_SCRATCH_WINOGRAD_V, /* winograd.c: F(2x2)'s transformed tiles, shared by the threads */
    OPS_SCRATCH_SLOTS
};
void *ops_scratch(int slot, size_t n);

/* Winograd F(4x4, 3x3) convs (winograd.c): 3x3 kernels, stride 1, padding 1, f32, NHWC.
 * op_winograd_weights transforms the first cout output channels of w [3][3][cin][ldw] (HWIO;
 * cin a multiple of 8, cout of 16) into u, op_winograd_weights_floats(cin, cout) floats (4
 * times their weights). op_winograd_conv: x [B,H,W,cin] -> y [B,H,W,cout] (+ bias, +
 * residual, which may be y), y and the residual ldy channels a pixel (a part of a wider
 * output); x must not overlap y. */
static inline size_t op_winograd_weights_floats(int cin, int cout)
{
    return (size_t)36 * cin * cout;
}
void op_winograd_weights(const float *w, int cin, int cout, int ldw, float *u);
int op_winograd_conv(const float *u, const float *bias, int cin, int cout, const float *x, int B,
                     int H, int W, float *y, int ldy, const float *residual);
/* Winograd F(2x2, 3x3) for small maps, the same conv from the conv's own weights w: oneDNN's
 * ABcd8b8a layout when w_blocked, else HWIO [3][3][cin][cout] (cin a multiple of 8, cout of
 * 16). No weights are kept: they are transformed a chunk at a time as they are used. */
int op_winograd2_conv(const float *w, int w_blocked, const float *bias, int cin, int cout,
                      const float *x, int B, int H, int W, float *y, int ldy,
                      const float *residual);

/* f32 -> bf16, round to nearest even (as oneDNN's reorder and vcvtneps2bf16), NaN kept quiet. */
static inline uint16_t ops_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

/* bf16 -> f32: exact (the bf16 bits are the float's upper half). */
static inline float ops_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

#if defined(__AVX512F__)
#include <immintrin.h>
#define M2P_AVX512 1

/* 16 bf16 at p widened to f32 (exact), AVX-512F only. */
static inline __m512 v_load_bf16(const uint16_t *p)
{
    __m256i h = _mm256_loadu_si256((const __m256i *)p);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* ops_bf16 of 16 floats with AVX-512F/BW only (no AVX512-BF16 needed: vcvtneps2bf16 flushes
 * denormals, ops_bf16 does not), as 16 bf16 bit patterns. */
static inline __m256i v_bf16_bits(__m512 v)
{
    __m512i u = _mm512_castps_si512(v);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
    __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    r = _mm512_mask_or_epi32(r, nan, u, _mm512_set1_epi32(0x400000));
    return _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16));
}

/* ops_bf16 for 16 floats, stored to p. */
static inline void v_store_bf16(uint16_t *p, __m512 v)
{
    _mm256_storeu_si256((__m256i *)p, v_bf16_bits(v));
}

/* 16 results at column c of the row a kernel writes: f32 yf when it has one, else bf16 yb. */
static inline void v_store_f32_or_bf16(float *yf, uint16_t *yb, int c, __m512 v)
{
    if (yf)
        _mm512_storeu_ps(yf + c, v);
    else
        v_store_bf16(yb + c, v);
}

/* exp(x) for a vector: 2^n * p(r), r = x - n ln2 in [-ln2/2, ln2/2], degree-6 polynomial
 * (Cephes expf coefficients); relative error ~2 ulp. Inputs below -87.3 give 0. */
static inline __m512 v_exp(__m512 x)
{
    const __m512 lo = _mm512_set1_ps(-87.3f), hi = _mm512_set1_ps(88.3f);
    x = _mm512_min_ps(_mm512_max_ps(x, lo), hi);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    __m512 r2 = _mm512_mul_ps(r, r);
    p = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    __m512 e = _mm512_scalef_ps(p, n);
    /* exactly 0 far below (scalef would give a denormal-ish tiny value otherwise) */
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, lo, _CMP_GT_OQ), e);
}

/* erf(x): rational approximation x * P(x^2) / Q(x^2) on [-4, 4] (the one Eigen and XLA use),
 * exactly +-1 outside; max abs error about 2e-7. */
static inline __m512 v_erf(__m512 x)
{
    const __m512 c = _mm512_set1_ps(3.832506856900711f);
    __m512 ax = _mm512_abs_ps(x);
    __mmask16 sat = _mm512_cmp_ps_mask(ax, c, _CMP_GE_OQ);
    __m512 one = _mm512_or_ps(_mm512_set1_ps(1.0f), _mm512_and_ps(x, _mm512_set1_ps(-0.0f)));
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_sub_ps(_mm512_setzero_ps(), c)), c);
    __m512 x2 = _mm512_mul_ps(x, x);
    __m512 p = _mm512_set1_ps(-2.72614225801306e-10f);
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(2.77068142495902e-08f));
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-2.10102402082508e-06f));
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-5.69250639462346e-05f));
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-7.34990630326855e-04f));
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-2.95459980854025e-03f));
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-1.60960333262415e-02f));
    p = _mm512_mul_ps(p, x);
    __m512 q = _mm512_set1_ps(-1.45660718464996e-05f);
    q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(-2.13374055278905e-04f));
    q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(-1.68282697438203e-03f));
    q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(-7.37332916720468e-03f));
    q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(-1.42647390514189e-02f));
    return _mm512_mask_mov_ps(_mm512_div_ps(p, q), sat, one);
}
#endif

/* Portable vectors (GCC's vector extensions) for the builds without AVX-512: 8 floats where
 * the build has AVX2 and FMA (x86-64-v3: ymm registers), else 4 (SSE2). vf_exp and vf_erf are
 * v_exp's and v_erf's polynomials lane by lane. */
#if defined(__AVX2__) && defined(__FMA__)
#define VF_W 8
#else
#define VF_W 4
#endif
typedef float vf __attribute__((vector_size(VF_W * sizeof(float))));
typedef int32_t vfi __attribute__((vector_size(VF_W * sizeof(int32_t))));
typedef uint16_t vfh __attribute__((vector_size(VF_W * sizeof(uint16_t))));

static inline vf vf_load(const float *p)
{
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void vf_store(float *p, vf v)
{
    memcpy(p, &v, sizeof v);
}

static inline vf vf_splat(float x)
{
    return (vf){0} + x;
}

/* a where the lanes of m are all ones, else b */
static inline vf vf_select(vfi m, vf a, vf b)
{
    return (vf)(((vfi)a & m) | ((vfi)b & ~m));
}

/* VF_W bf16 at p widened to f32 (exact) */
static inline vf vf_load_bf16(const uint16_t *p)
{
    vfh h;
    memcpy(&h, p, sizeof h);
    return (vf)(__builtin_convertvector(h, vfi) << 16);
}

/* VF_W results at column c of the row a kernel writes: f32 yf when it has one, else bf16 yb
 * (rounded by ops_bf16, as the scalar code) */
static inline void vf_store_f32_or_bf16(float *yf, uint16_t *yb, int c, vf v)
{
    if (yf) {
        vf_store(yf + c, v);
        return;
    }
    for (int i = 0; i < VF_W; i++)
        yb[c + i] = ops_bf16(v[i]);
}

/* e^x within 2 ulp; below -87.3 it is 0, above 88.3 e^88.3 */
static inline vf vf_exp(vf x)
{
    vfi keep = x > -87.3f;
    x = vf_select(x < 88.3f, x, vf_splat(88.3f));
    x = (vf)((vfi)x & keep);                       /* far below: e^0, zeroed at the end */
    vf n = x * 1.44269504088896341f + 12582912.0f; /* round to nearest: 1.5 x 2^23 */
    n -= 12582912.0f;
    vf r = x - n * 0.693359375f;
    r -= n * -2.12194440e-4f;
    vf p = r * 1.9875691500e-4f + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    vfi e = (__builtin_convertvector(n, vfi) + 127) << 23;
    return (vf)((vfi)(p * (vf)e) & keep);
}

/* erf(x), exactly +-1 where |x| >= 3.8325 */
static inline vf vf_erf(vf x)
{
    vf ax = (vf)((vfi)x & 0x7fffffff);
    vfi sat = ax >= 3.832506856900711f;
    vf one = (vf)((vfi)vf_splat(1.0f) | ((vfi)x & (int32_t)0x80000000));
    vf x2 = x * x;
    vf p = x2 * -2.72614225801306e-10f + 2.77068142495902e-08f;
    p = p * x2 + -2.10102402082508e-06f;
    p = p * x2 + -5.69250639462346e-05f;
    p = p * x2 + -7.34990630326855e-04f;
    p = p * x2 + -2.95459980854025e-03f;
    p = p * x2 + -1.60960333262415e-02f;
    p = p * x;
    vf q = x2 * -1.45660718464996e-05f + -2.13374055278905e-04f;
    q = q * x2 + -1.68282697438203e-03f;
    q = q * x2 + -7.37332916720468e-03f;
    q = q * x2 + -1.42647390514189e-02f;
    return vf_select(sat, one, p / q);
}

#endif

/*
 * kernels.c — the ops oneDNN does not provide, vectorised and OpenMP-parallel: GroupNorm (with
 * fused SiLU) and LayerNorm over NHWC / [rows, C], GEGLU and the activations, element-wise
 * helpers and layout changes (upsample, concat, NCHW <-> NHWC). The norms, GEGLU and the
 * upsample also write bf16 (rounded to nearest even, as oneDNN's reorder): the input of the
 * bf16 conv / linear that reads them (dnnl_ops.c op_*_forward_pre). GroupNorm and GEGLU also
 * read bf16 (a conv's or linear's bf16 output, widened exactly; GroupNorm adding a per-channel
 * vector first: the resnets' time embedding).
 *
 * Norm statistics are two-pass (mean, then the mean of squared deviations) with partial sums
 * in float over short runs and double across them, so large means do not cancel precision.
 * GELU uses the exact erf form as diffusers' GEGLU does (F.gelu default); quick_gelu is CLIP's
 * x * sigmoid(1.702 x).
 */
#include "core/error.h"
#include "tensor/cpu/cpu.h"
#include "tensor/ops.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Element counts below this run on one thread (thread start-up costs more). */
#define PAR_MIN 32768

/* ---------------------------------------------------------------------------------------- */
/* GroupNorm                                                                                */
/* ---------------------------------------------------------------------------------------- */

/* Row i of a GroupNorm input: x's own row, or (bf16 input) xb's row widened exactly plus the
 * per-channel add (when not NULL) in f32, into buf [C]: the values add_channel_bias on the
 * widened input would hold. */
static const float *gn_row(const float *x, const uint16_t *xb, const float *add, int C, size_t i,
                           float *buf)
{
    if (x)
        return x + i * C;
    const uint16_t *r = xb + i * C;
    int c = 0;
#if M2P_AVX512
    for (; c + 16 <= C; c += 16) {
        __m512 v = v_load_bf16(r + c);
        _mm512_storeu_ps(buf + c, add ? _mm512_add_ps(v, _mm512_loadu_ps(add + c)) : v);
    }
#endif
    for (; c < C; c++)
        buf[c] = add ? ops_f32(r[c]) + add[c] : ops_f32(r[c]);
    return buf;
}

/* Per-channel sums of x (and of (x - mean[c])^2 when mean != NULL) over rows [r0, r1); x is
 * f32, or bf16 xb (+ add) as gn_row reads it. -1 when its scratch (C > 4096) cannot be
 * allocated. */
static int channel_sums(const float *x, const uint16_t *xb, const float *add, int C, int r0, int r1,
                        const float *mean, double *acc)
{
    enum { RUN = 64 };
    float part[4096], rowbuf[4096];
    float *p = C <= 4096 ? part : malloc((size_t)C * sizeof(float));
    float *buf = x || C <= 4096 ? rowbuf : malloc((size_t)C * sizeof(float));
    if (!p || !buf) {
        if (p != part)
            free(p);
        if (buf != rowbuf)
            free(buf);
        return -1;
    }
    for (int r = r0; r < r1; r += RUN) {
        int re = r + RUN < r1 ? r + RUN : r1;
        memset(p, 0, (size_t)C * sizeof(float));
        for (int i = r; i < re; i++) {
#if M2P_AVX512
            if (!x && C % 16 == 0) { /* bf16 rows widened in registers, the same sums */
                const uint16_t *q = xb + (size_t)i * C;
                for (int c = 0; c < C; c += 16) {
                    __m512 v = v_load_bf16(q + c);
                    if (add)
                        v = _mm512_add_ps(v, _mm512_loadu_ps(add + c));
                    __m512 s = _mm512_loadu_ps(p + c);
                    if (mean) {
                        __m512 d = _mm512_sub_ps(v, _mm512_loadu_ps(mean + c));
                        s = _mm512_fmadd_ps(d, d, s);
                    } else {
                        s = _mm512_add_ps(s, v);
                    }
                    _mm512_storeu_ps(p + c, s);
                }
                continue;
            }
#endif
            const float *row = gn_row(x, xb, add, C, (size_t)i, buf);
            if (mean) {
#pragma omp simd
                for (int c = 0; c < C; c++) {
                    float d = row[c] - mean[c];
                    p[c] += d * d;
                }
            } else {
#pragma omp simd
                for (int c = 0; c < C; c++)
                    p[c] += row[c];
            }
        }
        for (int c = 0; c < C; c++)
            acc[c] += p[c];
    }
    if (p != part)
        free(p);
    if (buf != rowbuf)
        free(buf);
    return 0;
}

/* Sums over all HW rows of one image, split across threads. */
static int image_channel_sums(const float *x, const uint16_t *xb, const float *add, int HW, int C,
                              const float *mean, double *out)
{
    int nt = (size_t)HW * C >= PAR_MIN ? omp_get_max_threads() : 1;
    if (nt > HW)
        nt = HW;
    double *acc = calloc((size_t)nt * C, sizeof(double));
    if (!acc)
        return -1;
    int failed = 0;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int t = omp_get_thread_num(), n = omp_get_num_threads();
        int r0 = (int)((long)HW * t / n), r1 = (int)((long)HW * (t + 1) / n);
        if (channel_sums(x, xb, add, C, r0, r1, mean, acc + (size_t)t * C)) {
#pragma omp atomic write
            failed = 1;
        }
    }
    if (failed) {
        free(acc);
        return -1;
    }
    for (int c = 0; c < C; c++) {
        double s = 0;
        for (int t = 0; t < nt; t++)
            s += acc[(size_t)t * C + c];
        out[c] = s;
    }
    free(acc);
    return 0;
}

/* op_groupnorm, op_groupnorm_bf16 and op_groupnorm_from_bf16: of f32 x or, when x is NULL, of
 * bf16 xb plus the per-(batch, channel) add [B, C] when not NULL (gn_row); the result to y (f32)
 * or, when y is NULL, to yb (bf16). */
static int groupnorm(const float *x, const uint16_t *xq, const float *add, int B, int HW, int C,
                     int groups, float eps, const float *gamma, const float *beta, int silu,
                     float *y, uint16_t *yb)
{
    ops_sync_threads();
    int cg = C / groups;
    double *sum = malloc((size_t)C * sizeof(double));
    float *mean_c = malloc((size_t)C * sizeof(float));
    float *a = malloc((size_t)C * sizeof(float)), *b = malloc((size_t)C * sizeof(float));
    /* bf16 input: each row widened (+ add) into its thread's row of rbuf before it is normalised */
    float *rbuf = x ? NULL : malloc((size_t)omp_get_max_threads() * C * sizeof(float));
    int rc = sum && mean_c && a && b && (x || rbuf) ? 0 : -1;
    double n = (double)HW * cg;
    for (int bi = 0; bi < B && !rc; bi++) {
        const float *xb = x ? x + (size_t)bi * HW * C : NULL;
        const uint16_t *xqb = x ? NULL : xq + (size_t)bi * HW * C;
        const float *addb = add ? add + (size_t)bi * C : NULL;
        float *ybi = y ? y + (size_t)bi * HW * C : NULL;
        uint16_t *ybb = y ? NULL : yb + (size_t)bi * HW * C;
        if ((rc = image_channel_sums(xb, xqb, addb, HW, C, NULL, sum)))
            break;
        for (int g = 0; g < groups; g++) {
            double s = 0;
            for (int c = g * cg; c < (g + 1) * cg; c++)
                s += sum[c];
            float m = (float)(s / n);
            for (int c = g * cg; c < (g + 1) * cg; c++)
                mean_c[c] = m;
        }
        if ((rc = image_channel_sums(xb, xqb, addb, HW, C, mean_c, sum)))
            break;
        for (int g = 0; g < groups; g++) {
            double s = 0;
            for (int c = g * cg; c < (g + 1) * cg; c++)
                s += sum[c];
            float rstd = (float)(1.0 / sqrt(s / n + (double)eps));
            for (int c = g * cg; c < (g + 1) * cg; c++) {
                float gm = gamma ? gamma[c] : 1.0f, bt = beta ? beta[c] : 0.0f;
                a[c] = rstd * gm;
                b[c] = bt - mean_c[c] * a[c];
            }
        }
        int nt = (size_t)HW * C >= PAR_MIN ? omp_get_max_threads() : 1;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
        for (int r = 0; r < HW; r++) {
            const float *xr = gn_row(xb, xqb, addb, C, (size_t)r,
                                     rbuf ? rbuf + (size_t)omp_get_thread_num() * C : NULL);
            float *yr = ybi ? ybi + (size_t)r * C : NULL;
            uint16_t *yq = ybi ? NULL : ybb + (size_t)r * C;
            int c = 0;
#if M2P_AVX512
            for (; c + 16 <= C; c += 16) {
                __m512 v = _mm512_fmadd_ps(_mm512_loadu_ps(xr + c), _mm512_loadu_ps(a + c),
                                           _mm512_loadu_ps(b + c));
                if (silu) {
                    __m512 e = v_exp(_mm512_sub_ps(_mm512_setzero_ps(), v));
                    v = _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
                }
                v_store_f32_or_bf16(yr, yq, c, v);
            }
#else
            for (; c + VF_W <= C; c += VF_W) {
                vf v = vf_load(xr + c) * vf_load(a + c) + vf_load(b + c);
                if (silu)
                    v = v / (1.0f + vf_exp(-v));
                vf_store_f32_or_bf16(yr, yq, c, v);
            }
#endif
            for (; c < C; c++) {
                float v = xr[c] * a[c] + b[c];
                v = silu ? v / (1.0f + expf(-v)) : v;
                if (yr)
                    yr[c] = v;
                else
                    yq[c] = ops_bf16(v);
            }
        }
    }
    free(sum);
    free(mean_c);
    free(a);
    free(b);
    free(rbuf);
    return rc ? m2p_error(M2P_ENOMEM, "groupnorm: out of memory for %d channels", C) : 0;
}

int op_groupnorm(const float *x, int B, int HW, int C, int groups, float eps, const float *gamma,
                 const float *beta, int silu, float *y)
{
    return groupnorm(x, NULL, NULL, B, HW, C, groups, eps, gamma, beta, silu, y, NULL);
}

int op_groupnorm_bf16(const float *x, int B, int HW, int C, int groups, float eps,
                      const float *gamma, const float *beta, int silu, uint16_t *y)
{
    return groupnorm(x, NULL, NULL, B, HW, C, groups, eps, gamma, beta, silu, NULL, y);
}

int op_groupnorm_from_bf16(const uint16_t *x, const float *add, int B, int HW, int C, int groups,
                           float eps, const float *gamma, const float *beta, int silu, float *y,
                           uint16_t *yb)
{
    return groupnorm(NULL, x, add, B, HW, C, groups, eps, gamma, beta, silu, y, yb);
}

/* ---------------------------------------------------------------------------------------- */
/* LayerNorm                                                                                */
/* ---------------------------------------------------------------------------------------- */

/* Mean and 1/std of one row. The AVX-512 build sums in 16 float lanes (a lane holds every 16th
 * element: up to 80 of a 1280-wide row) and adds the lanes in double; the portable one sums
 * runs of 64 in float and the runs in double. Two passes (mean, then squared deviations). */
static void layernorm_stats(const float *xr, int C, float eps, float *mean, float *rstd)
{
    double s = 0, v = 0;
    int c = 0;
#if M2P_AVX512
    if (C >= 16) {
        __m512 acc = _mm512_setzero_ps();
        for (; c + 16 <= C; c += 16)
            acc = _mm512_add_ps(acc, _mm512_loadu_ps(xr + c));
        float lane[16];
        _mm512_storeu_ps(lane, acc);
        for (int i = 0; i < 16; i++)
            s += lane[i];
        for (int i = c; i < C; i++)
            s += xr[i];
        float m = (float)(s / C);
        __m512 mv = _mm512_set1_ps(m), av = _mm512_setzero_ps();
        for (c = 0; c + 16 <= C; c += 16) {
            __m512 d = _mm512_sub_ps(_mm512_loadu_ps(xr + c), mv);
            av = _mm512_fmadd_ps(d, d, av);
        }
        _mm512_storeu_ps(lane, av);
        for (int i = 0; i < 16; i++)
            v += lane[i];
        for (; c < C; c++)
            v += (double)(xr[c] - m) * (xr[c] - m);
        *mean = m;
        *rstd = (float)(1.0 / sqrt(v / C + (double)eps));
        return;
    }
#endif
    float ps = 0;
    for (c = 0; c < C; c++) {
        ps += xr[c];
        if ((c & 63) == 63) {
            s += ps;
            ps = 0;
        }
    }
    s += ps;
    float m = (float)(s / C);
    float pv = 0;
    for (c = 0; c < C; c++) {
        float d = xr[c] - m;
        pv += d * d;
        if ((c & 63) == 63) {
            v += pv;
            pv = 0;
        }
    }
    v += pv;
    *mean = m;
    *rstd = (float)(1.0 / sqrt(v / C + (double)eps));
}

/* op_layernorm and op_layernorm_bf16: to y (f32) or, when y is NULL, to yb (bf16). */
static void layernorm(const float *x, int rows, int C, float eps, const float *gamma,
                      const float *beta, float *y, uint16_t *yb)
{
    ops_sync_threads();
    int nt = (size_t)rows * C >= PAR_MIN ? omp_get_max_threads() : 1;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * C;
        float m, rstd;
        layernorm_stats(xr, C, eps, &m, &rstd);
        float *yr = y ? y + (size_t)r * C : NULL;
        uint16_t *yq = y ? NULL : yb + (size_t)r * C;
        int c = 0;
#if M2P_AVX512
        if (gamma && beta) {
            __m512 mv = _mm512_set1_ps(m), sv = _mm512_set1_ps(rstd);
            for (; c + 16 <= C; c += 16) {
                __m512 t = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(xr + c), mv), sv);
                t = _mm512_fmadd_ps(t, _mm512_loadu_ps(gamma + c), _mm512_loadu_ps(beta + c));
                v_store_f32_or_bf16(yr, yq, c, t);
            }
        }
#endif
        for (; c < C; c++) {
            float t = (xr[c] - m) * rstd;
            t = t * (gamma ? gamma[c] : 1.0f) + (beta ? beta[c] : 0.0f);
            if (yr)
                yr[c] = t;
            else
                yq[c] = ops_bf16(t);
        }
    }
}

void op_layernorm(const float *x, int rows, int C, float eps, const float *gamma, const float *beta,
                  float *y)
{
    layernorm(x, rows, C, eps, gamma, beta, y, NULL);
}

void op_layernorm_bf16(const float *x, int rows, int C, float eps, const float *gamma,
                       const float *beta, uint16_t *y)
{
    layernorm(x, rows, C, eps, gamma, beta, NULL, y);
}

/* ---------------------------------------------------------------------------------------- */
/* Activations                                                                              */
/* ---------------------------------------------------------------------------------------- */

static inline float gelu1(float v)
{
    return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
}

#if M2P_AVX512
static inline __m512 v_gelu(__m512 v)
{
    __m512 e = v_erf(_mm512_mul_ps(v, _mm512_set1_ps(0.70710678118654752f)));
    return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), v),
                         _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

/* x / (1 + exp(-k x)) */
static inline __m512 v_xsigmoid(__m512 v, float k)
{
    __m512 e = v_exp(_mm512_mul_ps(v, _mm512_set1_ps(-k)));
    return _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}
#endif

/* op_geglu, op_geglu_bf16 and op_geglu_from_bf16: from f32 x or, when x is NULL, bf16 xb (a
 * linear's bf16 output: widened exactly); to y (f32) or, when y is NULL, to yb (bf16). */
static void geglu(const float *x, const uint16_t *xb, int rows, int D, float *y, uint16_t *yb)
{
    ops_sync_threads();
    int nt = (size_t)rows * D >= PAR_MIN ? omp_get_max_threads() : 1;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int r = 0; r < rows; r++) {
        const float *h = x ? x + (size_t)r * 2 * D : NULL, *g = h ? h + D : NULL;
        const uint16_t *hb = x ? NULL : xb + (size_t)r * 2 * D, *gb = hb ? hb + D : NULL;
        float *yr = y ? y + (size_t)r * D : NULL;
        uint16_t *yq = y ? NULL : yb + (size_t)r * D;
        int c = 0;
#if M2P_AVX512
        for (; c + 16 <= D; c += 16) {
            __m512 hv, gv;
            if (h) {
                hv = _mm512_loadu_ps(h + c);
                gv = _mm512_loadu_ps(g + c);
            } else {
                hv = v_load_bf16(hb + c);
                gv = v_load_bf16(gb + c);
            }
            v_store_f32_or_bf16(yr, yq, c, _mm512_mul_ps(hv, v_gelu(gv)));
        }
#else
        for (; c + VF_W <= D; c += VF_W) {
            vf hv = h ? vf_load(h + c) : vf_load_bf16(hb + c);
            vf gv = h ? vf_load(g + c) : vf_load_bf16(gb + c);
            vf_store_f32_or_bf16(yr, yq, c,
                                 hv * (0.5f * gv * (1.0f + vf_erf(gv * 0.70710678118654752f))));
        }
#endif
        for (; c < D; c++) {
            float v = h ? h[c] * gelu1(g[c]) : ops_f32(hb[c]) * gelu1(ops_f32(gb[c]));
            if (yr)
                yr[c] = v;
            else
                yq[c] = ops_bf16(v);
        }
    }
}

void op_geglu(const float *x, int rows, int D, float *y)
{
    geglu(x, NULL, rows, D, y, NULL);
}

void op_geglu_bf16(const float *x, int rows, int D, uint16_t *y)
{
    geglu(x, NULL, rows, D, NULL, y);
}

void op_geglu_from_bf16(const uint16_t *x, int rows, int D, float *y, uint16_t *yb)
{
    geglu(NULL, x, rows, D, y, yb);
}

/* Applies f element-wise in parallel; VEC is the vector body for 16 floats at p. */
#if M2P_AVX512
#define ELEMENTWISE(n, x, VEC, SCALAR)                                                             \
    do {                                                                                           \
        size_t n16_ = (n) / 16;                                                                    \
        int nt_ = (n) >= PAR_MIN ? omp_get_max_threads() : 1;                                      \
        _Pragma(                                                                                   \
            "omp parallel for num_threads(nt_) schedule(static) if (nt_ > 1)") for (size_t i_ = 0; \
                                                                                    i_ < n16_;     \
                                                                                    i_++)          \
        {                                                                                          \
            float *p = (x) + i_ * 16;                                                              \
            __m512 v = _mm512_loadu_ps(p);                                                         \
            _mm512_storeu_ps(p, VEC);                                                              \
        }                                                                                          \
        for (size_t i_ = n16_ * 16; i_ < (n); i_++) {                                              \
            float v = (x)[i_];                                                                     \
            (x)[i_] = SCALAR;                                                                      \
        }                                                                                          \
    } while (0)
#else
#define ELEMENTWISE(n, x, VEC, SCALAR)                                                             \
    do {                                                                                           \
        int nt_ = (n) >= PAR_MIN ? omp_get_max_threads() : 1;                                      \
        _Pragma(                                                                                   \
            "omp parallel for num_threads(nt_) schedule(static) if (nt_ > 1)") for (size_t i_ = 0; \
                                                                                    i_ < (n);      \
                                                                                    i_++)          \
        {                                                                                          \
            float v = (x)[i_];                                                                     \
            (x)[i_] = SCALAR;                                                                      \
        }                                                                                          \
    } while (0)
#endif

void op_silu(float *x, size_t n)
{
    ops_sync_threads();
    ELEMENTWISE(n, x, v_xsigmoid(v, 1.0f), v / (1.0f + expf(-v)));
}

void op_gelu(float *x, size_t n)
{
    ops_sync_threads();
    ELEMENTWISE(n, x, v_gelu(v), gelu1(v));
}

void op_quick_gelu(float *x, size_t n)
{
    ops_sync_threads();
    ELEMENTWISE(n, x, v_xsigmoid(v, 1.702f), v / (1.0f + expf(-1.702f * v)));
}

void op_relu(float *x, size_t n)
{
    ops_sync_threads();
    ELEMENTWISE(n, x, _mm512_max_ps(v, _mm512_setzero_ps()), v > 0.0f ? v : 0.0f);
}

void op_tanh_scale(float *x, size_t n, float s)
{
    ops_sync_threads();
    int nt = n >= PAR_MIN ? omp_get_max_threads() : 1;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (size_t i = 0; i < n; i++)
        x[i] = tanhf(x[i] / s) * s;
}

void op_add(float *y, const float *x, size_t n)
{
    ops_sync_threads();
    int nt = n >= PAR_MIN ? omp_get_max_threads() : 1;
#pragma omp parallel for simd num_threads(nt) schedule(static) if (nt > 1)
    for (size_t i = 0; i < n; i++)
        y[i] += x[i];
}

void op_scale(float *y, float s, size_t n)
{
    ops_sync_threads();
    int nt = n >= PAR_MIN ? omp_get_max_threads() : 1;
#pragma omp parallel for simd num_threads(nt) schedule(static) if (nt > 1)
    for (size_t i = 0; i < n; i++)
        y[i] *= s;
}

void op_add_channel_bias(float *y, const float *v, int B, int HW, int C)
{
    ops_sync_threads();
    int nt = (size_t)B * HW * C >= PAR_MIN ? omp_get_max_threads() : 1;
    for (int b = 0; b < B; b++) {
        const float *vb = v + (size_t)b * C;
        float *yb = y + (size_t)b * HW * C;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
        for (int p = 0; p < HW; p++) {
            float *yr = yb + (size_t)p * C;
#pragma omp simd
            for (int c = 0; c < C; c++)
                yr[c] += vb[c];
        }
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Layout                                                                                   */
/* ---------------------------------------------------------------------------------------- */

void op_upsample2x(const float *x, int B, int H, int W, int C, float *y)
{
    ops_sync_threads();
    int nt = (size_t)B * H * W * C * 4 >= PAR_MIN ? omp_get_max_threads() : 1;
#pragma omp parallel for collapse(2) num_threads(nt) schedule(static) if (nt > 1)
    for (int b = 0; b < B; b++)
        for (int oy = 0; oy < 2 * H; oy++) {
            const float *xr = x + ((size_t)b * H + oy / 2) * W * C;
            float *yr = y + ((size_t)b * 2 * H + oy) * 2 * W * C;
            for (int ox = 0; ox < 2 * W; ox++)
                memcpy(yr + (size_t)ox * C, xr + (size_t)(ox / 2) * C, (size_t)C * sizeof(float));
        }
}

void op_upsample2x_bf16(const float *x, int B, int H, int W, int C, uint16_t *y)
{
    ops_sync_threads();
    int nt = (size_t)B * H * W * C * 4 >= PAR_MIN ? omp_get_max_threads() : 1;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int r = 0; r < B * H; r++) { /* one input row -> two output rows */
        const float *xr = x + (size_t)r * W * C;
        uint16_t *y0 = y + (size_t)r * 4 * W * C, *y1 = y0 + (size_t)2 * W * C;
        for (int ix = 0; ix < W; ix++) {
            const float *xp = xr + (size_t)ix * C;
            uint16_t *d = y0 + (size_t)ix * 2 * C;
            int c = 0;
#if M2P_AVX512
            for (; c + 16 <= C; c += 16)
                v_store_bf16(d + c, _mm512_loadu_ps(xp + c));
#endif
            for (; c < C; c++)
                d[c] = ops_bf16(xp[c]);
            memcpy(d + C, d, (size_t)C * sizeof *d);
        }
        memcpy(y1, y0, (size_t)2 * W * C * sizeof *y0);
    }
}

void op_to_bf16(const float *x, size_t n, uint16_t *y)
{
    ops_sync_threads();
    int nt = n >= PAR_MIN ? omp_get_max_threads() : 1;
    size_t blocks = (n + 4095) / 4096;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (size_t k = 0; k < blocks; k++) {
        size_t i = k * 4096, end = i + 4096 < n ? i + 4096 : n;
#if M2P_AVX512
        for (; i + 16 <= end; i += 16)
            v_store_bf16(y + i, _mm512_loadu_ps(x + i));
#endif
        for (; i < end; i++)
            y[i] = ops_bf16(x[i]);
    }
}

void op_interleave2x2(const float *q, int B, int H, int W, int C, float *y, const float *residual)
{
    ops_sync_threads();
    size_t plane = (size_t)B * H * W * C;
    int nt = plane * 4 >= PAR_MIN ? omp_get_max_threads() : 1;
    /* output row r: input row r / 2 of phases 2 (r % 2) and 2 (r % 2) + 1, pixels alternating */
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int r = 0; r < B * H * 2; r++) {
        int py = r % 2;
        size_t in = (size_t)(r / 2) * W * C, out = (size_t)r * 2 * W * C;
        const float *q0 = q + (size_t)(2 * py) * plane + in, *q1 = q0 + plane;
        float *yr = y + out;
        const float *res = residual ? residual + out : NULL;
        for (int j = 0; j < W; j++) {
            const float *s0 = q0 + (size_t)j * C, *s1 = q1 + (size_t)j * C;
            float *d0 = yr + (size_t)j * 2 * C, *d1 = d0 + C;
            if (res) {
                const float *r0 = res + (size_t)j * 2 * C, *r1 = r0 + C;
#pragma omp simd
                for (int c = 0; c < C; c++) {
                    d0[c] = s0[c] + r0[c];
                    d1[c] = s1[c] + r1[c];
                }
            } else {
                memcpy(d0, s0, (size_t)C * sizeof(float));
                memcpy(d1, s1, (size_t)C * sizeof(float));
            }
        }
    }
}

void op_concat_channels(const float *a, int Ca, const float *b, int Cb, int B, int HW, float *y)
{
    ops_sync_threads();
    size_t rows = (size_t)B * HW;
    int C = Ca + Cb;
    int nt = rows * C >= PAR_MIN ? omp_get_max_threads() : 1;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (size_t r = 0; r < rows; r++) {
        memcpy(y + r * C, a + r * Ca, (size_t)Ca * sizeof(float));
        memcpy(y + r * C + Ca, b + r * Cb, (size_t)Cb * sizeof(float));
    }
}

/* y = the transpose of the R x S matrix x (y[s * R + r] = x[r * S + s]) in tiles of 16 x 16,
 * which keep both sides in cache; the threads split the rows of y. */
static void transpose_tiled(const float *x, size_t R, size_t S, float *y, int nt)
{
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (size_t s0 = 0; s0 < S; s0 += 16)
        for (size_t r0 = 0; r0 < R; r0 += 16) {
            size_t se = s0 + 16 < S ? s0 + 16 : S;
            size_t re = r0 + 16 < R ? r0 + 16 : R;
            for (size_t s = s0; s < se; s++)
                for (size_t r = r0; r < re; r++)
                    y[s * R + r] = x[r * S + s];
        }
}

/* Per image, [C][HW] -> [HW][C] and back: one transpose each way. */
void op_nchw_to_nhwc(const float *x, int B, int C, int H, int W, float *y)
{
    ops_sync_threads();
    size_t HW = (size_t)H * W;
    int nt = (size_t)B * C * HW >= PAR_MIN ? omp_get_max_threads() : 1;
    for (int b = 0; b < B; b++)
        transpose_tiled(x + (size_t)b * C * HW, (size_t)C, HW, y + (size_t)b * C * HW, nt);
}

void op_nhwc_to_nchw(const float *x, int B, int H, int W, int C, float *y)
{
    ops_sync_threads();
    size_t HW = (size_t)H * W;
    int nt = (size_t)B * C * HW >= PAR_MIN ? omp_get_max_threads() : 1;
    for (int b = 0; b < B; b++)
        transpose_tiled(x + (size_t)b * C * HW, HW, (size_t)C, y + (size_t)b * C * HW, nt);
}

/*
 * test_ops.c — every op of tensor/ops.h except attention (test_attention.c) against plain
 * double-precision loops: conv (odd channel counts, stride 2 / pad 1, k = 1, residual, size
 * cache), linear, GroupNorm (+SiLU), LayerNorm, GEGLU and activations, element-wise and layout
 * ops. bf16 variants are checked with a bf16-sized tolerance. With --conv only the convs: ctest
 * runs them again in each f32 layout (MUS2PIC_CONV_BLOCKED=0 and 1, the blocked one in bands)
 * and as Winograd convs at every size (MUS2PIC_CONV_WINOGRAD=1 for F(4x4), 2 for F(2x2), with
 * each build of the kernels). With --linear only the linears: ctest runs them as oneDNN matmuls and
 * as 1x1 convs (MUS2PIC_LINEAR_CONV=0 and 1; the default depends on the CPU).
 */
#include "mus2pic.h"
#include "tensor/cpu/cpu.h"
#include "tensor/ops.h"
#include "test.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static float frand(void) /* uniform [-1, 1) */
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / 8388608.0) - 1.0);
}

static float *rand_buf(size_t n, float scale, float offset)
{
    float *p = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++)
        p[i] = frand() * scale + offset;
    return p;
}

static double max_abs(const float *x, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(x[i]));
    return m;
}

/* ---------------------------------------------------------------------------------------- */

static void ref_conv(const float *x, const float *w, const float *bias, int B, int H, int W,
                     int cin, int cout, int k, int s, int p, float *y, int Ho, int Wo)
{
    for (int b = 0; b < B; b++)
        for (int oy = 0; oy < Ho; oy++)
            for (int ox = 0; ox < Wo; ox++)
                for (int o = 0; o < cout; o++) {
                    double acc = bias ? bias[o] : 0;
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++) {
                            int iy = oy * s - p + ky, ix = ox * s - p + kx;
                            if (iy < 0 || iy >= H || ix < 0 || ix >= W)
                                continue;
                            const float *xr = x + (((size_t)b * H + iy) * W + ix) * cin;
                            for (int i = 0; i < cin; i++)
                                acc += (double)xr[i] * w[(((size_t)o * cin + i) * k + ky) * k + kx];
                        }
                    y[(((size_t)b * Ho + oy) * Wo + ox) * cout + o] = (float)acc;
                }
}

static void test_conv_case(int cin, int cout, int k, int s, int p, int B, int H, int W, int dtype)
{
    size_t wn = (size_t)cout * cin * k * k;
    float *w = rand_buf(wn, 1.0f / sqrtf((float)(cin * k * k)), 0);
    float *bias = rand_buf((size_t)cout, 0.5f, 0);
    op_conv *c = NULL;
    int rc = op_conv_create(&c, w, bias, cin, cout, k, s, p, dtype);
    CHECK_INT(rc, 0);
    if (rc) {
        fprintf(stderr, "%s\n", m2p_errmsg());
        free(w);
        free(bias);
        return;
    }
    double tol = dtype == M2P_DTYPE_BF16 ? 3e-2 : 2e-5;
    /* two sizes, then the first again (primitive cache) */
    int sizes[3][3] = {{B, H, W}, {1, H + 3, W + 1}, {B, H, W}};
    for (int si = 0; si < 3; si++) {
        int b = sizes[si][0], h = sizes[si][1], ww = sizes[si][2], Ho, Wo;
        op_conv_out_hw(c, h, ww, &Ho, &Wo);
        CHECK_INT(Ho, (h + 2 * p - k) / s + 1);
        size_t xn = (size_t)b * h * ww * cin, yn = (size_t)b * Ho * Wo * cout;
        float *x = rand_buf(xn, 1, 0), *y = malloc(yn * 4), *ref = malloc(yn * 4);
        ref_conv(x, w, bias, b, h, ww, cin, cout, k, s, p, ref, Ho, Wo);
        CHECK_INT(op_conv_forward(c, x, b, h, ww, y, NULL), 0);
        char what[128];
        snprintf(what, sizeof what, "conv %d->%d k%d s%d p%d %dx%dx%d %s", cin, cout, k, s, p, b, h,
                 ww, dtype ? "bf16" : "f32");
        CHECK(test_max_abs_diff(y, ref, yn, what) <= tol * (1 + max_abs(ref, yn)));
        /* residual: separate buffer, then in place */
        float *res = rand_buf(yn, 1, 0);
        for (size_t i = 0; i < yn; i++)
            ref[i] += res[i];
        CHECK_INT(op_conv_forward(c, x, b, h, ww, y, res), 0);
        CHECK(test_max_abs_diff(y, ref, yn, "  + residual") <= tol * (1 + max_abs(ref, yn)));
        memcpy(y, res, yn * 4);
        CHECK_INT(op_conv_forward(c, x, b, h, ww, y, y), 0);
        CHECK(test_max_abs_diff(y, ref, yn, "  + residual in place") <=
              tol * (1 + max_abs(ref, yn)));
        free(x);
        free(y);
        free(ref);
        free(res);
    }
    op_conv_free(c);
    free(w);
    free(bias);
}

/* op_winograd2_conv itself, from each of its weight layouts (the conv path reads oneDNN's
 * ABcd8b8a where the CPU's primitive uses it, HWIO elsewhere), against double loops: tiles cut
 * by the edges (odd sizes), two images, a ldy wider than cout, a residual */
static void test_winograd2_layouts(void)
{
    const int cin = 24, cout = 32, B = 2, H = 7, W = 5, ldy = 48;
    size_t wn = (size_t)cout * cin * 9, xn = (size_t)B * H * W * cin, yn = (size_t)B * H * W * ldy;
    float *w = rand_buf(wn, 1.0f / sqrtf(cin * 9.0f), 0), *bias = rand_buf(cout, 0.5f, 0);
    float *x = rand_buf(xn, 1, 0), *res = rand_buf(yn, 1, 0),
          *ref = malloc(cout * (size_t)B * H * W * 4);
    float *hwio = malloc(wn * 4), *b8 = malloc(wn * 4), *y = malloc(yn * 4);
    for (int o = 0; o < cout; o++)
        for (int i = 0; i < cin; i++)
            for (int t = 0; t < 9; t++) {
                float v = w[((size_t)o * cin + i) * 9 + t];
                hwio[((size_t)t * cin + i) * cout + o] = v;
                b8[((((size_t)(o / 8) * (cin / 8) + i / 8) * 9 + t) * 8 + i % 8) * 8 + o % 8] = v;
            }
    ref_conv(x, w, bias, B, H, W, cin, cout, 3, 1, 1, ref, H, W);
    for (int blocked = 0; blocked < 2; blocked++) {
        memcpy(y, res, yn * 4);
        CHECK_INT(
            op_winograd2_conv(blocked ? b8 : hwio, blocked, bias, cin, cout, x, B, H, W, y, ldy, y),
            0);
        double worst = 0;
        for (size_t px = 0; px < (size_t)B * H * W; px++)
            for (int o = 0; o < ldy; o++) {
                double want = res[px * ldy + o] + (o < cout ? ref[px * cout + o] : 0);
                worst = fmax(worst, fabs(y[px * ldy + o] - want));
            }
        printf("winograd2 %s weights: max abs diff %.3g\n", blocked ? "ABcd8b8a" : "HWIO", worst);
        CHECK(worst <= 2e-5 * 4);
    }
    free(w);
    free(bias);
    free(x);
    free(res);
    free(ref);
    free(hwio);
    free(b8);
    free(y);
}

/* f32, and bf16 where the CPU runs it (elsewhere oneDNN has no bf16 primitive and the create
 * calls refuse it; that refusal is checked once in test_bf16_refused) */
static int n_dtypes(void)
{
    return op_bf16_supported() ? 2 : 1;
}

static void test_conv(void)
{
    for (int dt = 0; dt < n_dtypes(); dt++) {
        test_conv_case(4, 16, 3, 1, 1, 1, 8, 8, dt);
        test_conv_case(13, 7, 3, 1, 1, 2, 9, 7, dt);   /* odd channels */
        test_conv_case(20, 33, 3, 2, 1, 1, 9, 10, dt); /* stride 2, pad 1, odd size */
        test_conv_case(32, 32, 3, 2, 1, 2, 8, 8, dt);  /* UNet downsample */
        test_conv_case(17, 24, 1, 1, 0, 2, 5, 6, dt);  /* 1x1 */
        test_conv_case(48, 3, 3, 1, 1, 1, 16, 16, dt); /* VAE conv_out */
        test_conv_case(64, 80, 3, 1, 1, 1, 12, 12, dt);
        /* run in bands of rows by the blocked f32 layout (tensor/test_ops_conv_blocked sets the
         * band size so that these take 2 or 3 bands, the last one shorter) */
        test_conv_case(16, 24, 3, 1, 1, 2, 19, 5, dt);
        test_conv_case(24, 16, 1, 1, 0, 1, 20, 6, dt);
        /* Winograd in f32 (tensor/test_ops_conv_winograd*: at every size): 4x4 tiles cut by
         * the edges, blocks of tiles across images with a shorter last one, and more input
         * channels than one pass of its register tiles (256) */
        test_conv_case(32, 48, 3, 1, 1, 2, 21, 18, dt);
        test_conv_case(264, 32, 3, 1, 1, 1, 9, 10, dt);
    }
    /* no bias */
    float w[2 * 3] = {1, 2, 3, -1, 0.5f, 0.25f}, x[3 * 2] = {1, 1, 1, 2, 0, -4}, y[4];
    op_conv *c;
    CHECK_INT(op_conv_create(&c, w, NULL, 3, 2, 1, 1, 0, M2P_DTYPE_F32), 0);
    CHECK_INT(op_conv_forward(c, x, 1, 1, 2, y, NULL), 0);
    CHECK_NEAR(y[0], 6, 1e-6);
    CHECK_NEAR(y[1], -0.25, 1e-6);
    CHECK_NEAR(y[2], 2 - 12, 1e-6);
    CHECK_NEAR(y[3], -2 - 1, 1e-6);
    op_conv_free(c);
    /* bad geometry is an error, not a crash */
    CHECK(op_conv_create(&c, w, NULL, 0, 2, 1, 1, 0, M2P_DTYPE_F32) != 0);
}

/* ---------------------------------------------------------------------------------------- */

static void test_linear_case(int in, int out, int rows, int with_bias, int dtype)
{
    float *w = rand_buf((size_t)out * in, 1.0f / sqrtf((float)in), 0);
    float *bias = with_bias ? rand_buf((size_t)out, 0.5f, 0) : NULL;
    op_linear *l = NULL;
    int rc = op_linear_create(&l, w, bias, in, out, dtype);
    CHECK_INT(rc, 0);
    if (rc) {
        fprintf(stderr, "%s\n", m2p_errmsg());
        return;
    }
    double tol = dtype == M2P_DTYPE_BF16 ? 3e-2 : 2e-5;
    for (int pass = 0; pass < 3; pass++) {
        int r = pass == 1 ? rows + 5 : rows;
        float *x = rand_buf((size_t)r * in, 1, 0), *y = malloc((size_t)r * out * 4),
              *ref = malloc((size_t)r * out * 4), *res = rand_buf((size_t)r * out, 1, 0);
        for (int i = 0; i < r; i++)
            for (int o = 0; o < out; o++) {
                double acc = bias ? bias[o] : 0;
                for (int k = 0; k < in; k++)
                    acc += (double)x[(size_t)i * in + k] * w[(size_t)o * in + k];
                ref[(size_t)i * out + o] = (float)acc;
            }
        size_t n = (size_t)r * out;
        char what[128];
        snprintf(what, sizeof what, "linear %d->%d rows %d bias %d %s", in, out, r, with_bias,
                 dtype ? "bf16" : "f32");
        CHECK_INT(op_linear_forward(l, x, r, y, NULL), 0);
        CHECK(test_max_abs_diff(y, ref, n, what) <= tol * (1 + max_abs(ref, n)));
        for (size_t i = 0; i < n; i++)
            ref[i] += res[i];
        CHECK_INT(op_linear_forward(l, x, r, y, res), 0);
        CHECK(test_max_abs_diff(y, ref, n, "  + residual") <= tol * (1 + max_abs(ref, n)));
        memcpy(y, res, n * 4);
        CHECK_INT(op_linear_forward(l, x, r, y, y), 0);
        CHECK(test_max_abs_diff(y, ref, n, "  + residual in place") <= tol * (1 + max_abs(ref, n)));
        free(x);
        free(y);
        free(ref);
        free(res);
    }
    op_linear_free(l);
    free(w);
    free(bias);
}

static void test_linear(void)
{
    for (int dt = 0; dt < n_dtypes(); dt++) {
        test_linear_case(32, 96, 77, 1, dt);
        test_linear_case(37, 13, 5, 1, dt);
        test_linear_case(37, 13, 1, 0, dt);
        test_linear_case(320, 2560, 64, 1, dt);
        test_linear_case(768, 320, 154, 0, dt);
        test_linear_case(256, 1280, 2, 0, dt); /* time embedding: 2 rows */
    }
}

/* ---------------------------------------------------------------------------------------- */

static void test_groupnorm_case(int B, int HW, int C, int G, int silu, float offset)
{
    size_t n = (size_t)B * HW * C;
    float *x = rand_buf(n, 2, offset), *g = rand_buf((size_t)C, 0.5f, 1),
          *bt = rand_buf(C, 0.5f, 0);
    float *y = malloc(n * 4), *ref = malloc(n * 4);
    float eps = 1e-6f;
    int cg = C / G;
    for (int b = 0; b < B; b++)
        for (int gi = 0; gi < G; gi++) {
            double s = 0, ss = 0;
            for (int p = 0; p < HW; p++)
                for (int c = gi * cg; c < (gi + 1) * cg; c++)
                    s += x[((size_t)b * HW + p) * C + c];
            double m = s / ((double)HW * cg);
            for (int p = 0; p < HW; p++)
                for (int c = gi * cg; c < (gi + 1) * cg; c++) {
                    double d = x[((size_t)b * HW + p) * C + c] - m;
                    ss += d * d;
                }
            double rstd = 1 / sqrt(ss / ((double)HW * cg) + eps);
            for (int p = 0; p < HW; p++)
                for (int c = gi * cg; c < (gi + 1) * cg; c++) {
                    size_t i = ((size_t)b * HW + p) * C + c;
                    double v = (x[i] - m) * rstd * g[c] + bt[c];
                    if (silu)
                        v = v / (1 + exp(-v));
                    ref[i] = (float)v;
                }
        }
    char what[128];
    snprintf(what, sizeof what, "groupnorm B%d HW%d C%d G%d silu%d off%g", B, HW, C, G, silu,
             offset);
    CHECK_INT(op_groupnorm(x, B, HW, C, G, eps, g, bt, silu, y), 0);
    CHECK(test_max_abs_diff(y, ref, n, what) <= 2e-5 * (1 + fabs(offset) / 2));
    CHECK_INT(op_groupnorm(x, B, HW, C, G, eps, g, bt, silu, x), 0); /* in place */
    CHECK(test_max_abs_diff(x, y, n, "  in place") == 0);
    free(x);
    free(g);
    free(bt);
    free(y);
    free(ref);
}

static void test_norms(void)
{
    test_groupnorm_case(2, 35, 48, 8, 0, 0);
    test_groupnorm_case(2, 35, 48, 8, 1, 0);
    test_groupnorm_case(1, 64, 20, 5, 1, 0);       /* C not a multiple of 16 */
    test_groupnorm_case(1, 50, 36, 4, 0, 100);     /* large mean */
    test_groupnorm_case(2, 4096, 64, 32, 1, 0.5f); /* parallel path */
    test_groupnorm_case(1, 1, 32, 8, 1, 0);        /* 1x1 spatial: 4 values per group */

    int shapes[][2] = {{7, 37}, {77, 768}, {3, 16}, {500, 100}};
    for (int si = 0; si < 4; si++) {
        int rows = shapes[si][0], C = shapes[si][1];
        size_t n = (size_t)rows * C;
        float *x = rand_buf(n, 3, si == 3 ? 50 : 0.3f), *g = rand_buf(C, 0.5f, 1),
              *bt = rand_buf(C, 0.5f, 0), *y = malloc(n * 4), *ref = malloc(n * 4);
        for (int r = 0; r < rows; r++) {
            double s = 0, ss = 0;
            for (int c = 0; c < C; c++)
                s += x[(size_t)r * C + c];
            double m = s / C;
            for (int c = 0; c < C; c++)
                ss += (x[(size_t)r * C + c] - m) * (x[(size_t)r * C + c] - m);
            double rstd = 1 / sqrt(ss / C + 1e-5);
            for (int c = 0; c < C; c++)
                ref[(size_t)r * C + c] = (float)((x[(size_t)r * C + c] - m) * rstd * g[c] + bt[c]);
        }
        char what[64];
        snprintf(what, sizeof what, "layernorm %dx%d", rows, C);
        op_layernorm(x, rows, C, 1e-5f, g, bt, y);
        CHECK(test_max_abs_diff(y, ref, n, what) <= 2e-5 * (si == 3 ? 10 : 1));
        op_layernorm(x, rows, C, 1e-5f, g, bt, x);
        CHECK(test_max_abs_diff(x, y, n, "  in place") == 0);
        free(x);
        free(g);
        free(bt);
        free(y);
        free(ref);
    }
}

/* ---------------------------------------------------------------------------------------- */

static double gelu_d(double v)
{
    return 0.5 * v * (1 + erf(v / sqrt(2.0)));
}

static void test_activations(void)
{
    size_t sizes[] = {7, 1000 + 7, 70000 + 3};
    for (int si = 0; si < 3; si++) {
        size_t n = sizes[si];
        float *x = rand_buf(n, 8, 0), *y = malloc(n * 4), *ref = malloc(n * 4);
        x[0] = -100;
        x[n - 1] = 100;
        if (n > 3)
            x[1] = 0;
#define ACT(name, call, expr, tol)                                                                 \
    do {                                                                                           \
        memcpy(y, x, n * 4);                                                                       \
        call;                                                                                      \
        for (size_t i = 0; i < n; i++) {                                                           \
            double v = x[i];                                                                       \
            ref[i] = (float)(expr);                                                                \
        }                                                                                          \
        char w_[64];                                                                               \
        snprintf(w_, sizeof w_, "%s n=%zu", name, n);                                              \
        CHECK(test_max_abs_diff(y, ref, n, w_) <= (tol));                                          \
    } while (0)
        ACT("silu", op_silu(y, n), v / (1 + exp(-v)), 2e-6 * 100);
        ACT("gelu", op_gelu(y, n), gelu_d(v), 1e-6 * 100);
        ACT("quick_gelu", op_quick_gelu(y, n), v / (1 + exp(-1.702 * v)), 2e-6 * 100);
        ACT("relu", op_relu(y, n), v > 0 ? v : 0, 0);
        ACT("tanh_scale", op_tanh_scale(y, n, 3.0f), tanh(v / 3) * 3, 1e-6);
        ACT("scale", op_scale(y, 0.18215f, n), (float)v * 0.18215f, 0);
        /* relative accuracy of the vector silu / gelu where values are O(1) */
        for (size_t i = 0; i < n; i++)
            x[i] = x[i] / 4;
        ACT("silu small", op_silu(y, n), v / (1 + exp(-v)), 3e-7);
        ACT("gelu small", op_gelu(y, n), gelu_d(v), 3e-7);
        ACT("quick_gelu small", op_quick_gelu(y, n), v / (1 + exp(-1.702 * v)), 3e-7);
        float *z = rand_buf(n, 1, 0);
        memcpy(y, x, n * 4);
        op_add(y, z, n);
        for (size_t i = 0; i < n; i++)
            ref[i] = x[i] + z[i];
        CHECK(test_max_abs_diff(y, ref, n, "add") == 0);
        free(z);
        free(x);
        free(y);
        free(ref);
    }
    /* GEGLU: first half h, second half gate, exact gelu */
    int dims[][2] = {{5, 13}, {64, 160}, {300, 1280}};
    for (int di = 0; di < 3; di++) {
        int rows = dims[di][0], D = dims[di][1];
        float *x = rand_buf((size_t)rows * 2 * D, 3, 0), *y = malloc((size_t)rows * D * 4),
              *ref = malloc((size_t)rows * D * 4);
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < D; c++)
                ref[(size_t)r * D + c] =
                    (float)(x[(size_t)r * 2 * D + c] * gelu_d(x[(size_t)r * 2 * D + D + c]));
        op_geglu(x, rows, D, y);
        char w[64];
        snprintf(w, sizeof w, "geglu %dx%d", rows, D);
        CHECK(test_max_abs_diff(y, ref, (size_t)rows * D, w) <= 3e-6);
        free(x);
        free(y);
        free(ref);
    }
}

static void test_layout(void)
{
    int B = 2, H = 5, W = 3, C = 19;
    size_t n = (size_t)B * H * W * C;
    float *x = rand_buf(n, 1, 0), *y = malloc(n * 4), *z = malloc(n * 4);
    op_nhwc_to_nchw(x, B, H, W, C, y);
    int ok = 1;
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            for (int p = 0; p < H * W; p++)
                ok &= y[((size_t)b * C + c) * H * W + p] == x[((size_t)b * H * W + p) * C + c];
    CHECK(ok);
    op_nchw_to_nhwc(y, B, C, H, W, z);
    CHECK(memcmp(z, x, n * 4) == 0);
    /* large enough for the parallel path */
    {
        int B2 = 1, H2 = 64, W2 = 33, C2 = 20;
        size_t n2 = (size_t)B2 * H2 * W2 * C2;
        float *a = rand_buf(n2, 1, 0), *t = malloc(n2 * 4), *u = malloc(n2 * 4);
        op_nhwc_to_nchw(a, B2, H2, W2, C2, t);
        op_nchw_to_nhwc(t, B2, C2, H2, W2, u);
        CHECK(memcmp(a, u, n2 * 4) == 0);
        CHECK(t[5 * H2 * W2 + 7] == a[7 * C2 + 5]);
        free(a);
        free(t);
        free(u);
    }

    float *up = malloc(n * 4 * 4);
    op_upsample2x(x, B, H, W, C, up);
    ok = 1;
    for (int b = 0; b < B; b++)
        for (int yy = 0; yy < 2 * H; yy++)
            for (int xx = 0; xx < 2 * W; xx++)
                for (int c = 0; c < C; c++)
                    ok &= up[(((size_t)b * 2 * H + yy) * 2 * W + xx) * C + c] ==
                          x[(((size_t)b * H + yy / 2) * W + xx / 2) * C + c];
    CHECK(ok);
    free(up);

    int Cb = 7;
    float *bb = rand_buf((size_t)B * H * W * Cb, 1, 0),
          *cat = malloc((size_t)B * H * W * (C + Cb) * 4);
    op_concat_channels(x, C, bb, Cb, B, H * W, cat);
    ok = 1;
    for (int r = 0; r < B * H * W; r++) {
        for (int c = 0; c < C; c++)
            ok &= cat[(size_t)r * (C + Cb) + c] == x[(size_t)r * C + c];
        for (int c = 0; c < Cb; c++)
            ok &= cat[(size_t)r * (C + Cb) + C + c] == bb[(size_t)r * Cb + c];
    }
    CHECK(ok);
    free(bb);
    free(cat);

    float *v = rand_buf((size_t)B * C, 1, 0);
    memcpy(y, x, n * 4);
    op_add_channel_bias(y, v, B, H * W, C);
    ok = 1;
    for (int b = 0; b < B; b++)
        for (int p = 0; p < H * W; p++)
            for (int c = 0; c < C; c++) {
                size_t i = ((size_t)b * H * W + p) * C + c;
                ok &= y[i] == x[i] + v[b * C + c];
            }
    CHECK(ok);
    free(v);
    free(x);
    free(y);
    free(z);
}

/* Ops from another thread (as the server's workers call them): same results; the thread's
 * stream and scratch are released when it exits (the ASan build checks for leaks). */
typedef struct {
    op_conv *c;
    const float *x;
    float *y;
    int rc;
} thread_job;

static void *thread_main(void *p)
{
    thread_job *j = p;
    j->rc = op_conv_forward(j->c, j->x, 1, 6, 5, j->y, NULL);
    return NULL;
}

static void test_threads(void)
{
    for (int dt = 0; dt < n_dtypes(); dt++) {
        float *w = rand_buf(8 * 5 * 9, 0.3f, 0), *x = rand_buf(6 * 5 * 5, 1, 0);
        float y0[6 * 5 * 8], y1[6 * 5 * 8];
        op_conv *c;
        CHECK_INT(op_conv_create(&c, w, NULL, 5, 8, 3, 1, 1, dt), 0);
        CHECK_INT(op_conv_forward(c, x, 1, 6, 5, y0, NULL), 0);
        thread_job j = {c, x, y1, -1};
        pthread_t th;
        CHECK_INT(pthread_create(&th, NULL, thread_main, &j), 0);
        pthread_join(th, NULL);
        CHECK_INT(j.rc, 0);
        CHECK(test_max_abs_diff(y1, y0, 6 * 5 * 8, "conv from another thread") == 0);
        op_conv_free(c);
        free(w);
        free(x);
    }
}

/* Without native bf16 the create calls refuse bf16 with a message that says what to use */
static void test_bf16_refused(void)
{
    if (op_bf16_supported())
        return;
    float *w = rand_buf(8 * 5 * 9, 0.3f, 0);
    op_conv *c = NULL;
    op_linear *l = NULL;
    CHECK_INT(op_conv_create(&c, w, NULL, 5, 8, 3, 1, 1, M2P_DTYPE_BF16), M2P_EUNSUPPORTED);
    CHECK(c == NULL && strstr(m2p_errmsg(), "use f32"));
    CHECK_INT(op_linear_create(&l, w, NULL, 5, 8, M2P_DTYPE_BF16), M2P_EUNSUPPORTED);
    CHECK(l == NULL && strstr(m2p_errmsg(), "use f32"));
    free(w);
    test_skip("bf16: this CPU has no avx512_bf16 / AMX, the bf16 conv and linear checks not run");
}

int main(int argc, char **argv)
{
    op_set_threads(2);
    CHECK_INT(op_get_threads(), 2);
    if (argc > 1 && !strcmp(argv[1], "--linear")) {
        test_linear();
        TEST_DONE();
    }
    test_conv();
    test_winograd2_layouts();
    if (argc > 1 && !strcmp(argv[1], "--conv"))
        TEST_DONE();
    test_linear();
    test_norms();
    test_activations();
    test_layout();
    test_threads();
    test_bf16_refused();
    TEST_DONE();
}

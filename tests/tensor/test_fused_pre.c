/*
 * test_fused_pre.c — the bf16 producers and the fused op inputs (ops.h op_pre):
 *  - op_groupnorm_bf16 (with and without SiLU), op_layernorm_bf16, op_geglu_bf16 and
 *    op_upsample2x_bf16 give exactly the f32 kernel's result rounded to bf16 (round to nearest
 *    even, as oneDNN's reorder; this file's own rounding), at channel counts that take the
 *    vector body and the scalar tail; ties, NaN, infinities and -0 through the upsample;
 *  - op_geglu_from_bf16 (GEGLU of a linear's bf16 output) gives op_geglu's result on the widened
 *    input, exactly, in f32 and rounded to bf16;
 *  - op_conv_forward_pre / op_linear_forward_pre equal the two calls they replace (the f32
 *    kernel into tmp, then the op), bit for bit: bf16 ops (when the CPU has bf16) and f32 ops,
 *    with and without a residual, and with the GEGLU of a bf16 input;
 *  - op_linear_forward_bf16 (bf16 output) is op_linear_forward_pre's f32 output rounded to bf16,
 *    with and without a pre-op, and is refused for an f32 linear; op_conv_forward_bf16 likewise
 *    for convs (also refused for an odd upsampled size); op_linear_forward_bf16in (a bf16 input
 *    read as it is) equals op_linear_forward on the widened input, and is refused for f32;
 *  - op_groupnorm_from_bf16 (a conv's bf16 output plus the time embedding per batch and channel)
 *    equals widening, op_add_channel_bias and op_groupnorm, in f32 and rounded to bf16, and as
 *    the conv pre-op OP_PRE_GROUPNORM_BF16 (also with tmp on x's own buffer, which the unfused
 *    path widens in place) equals the two calls;
 *  - a bf16 conv of a 2x upsampled input, which runs as four 2x2 convs of the input (one per
 *    output phase, summed weights), equals the upsample and the conv bit for bit on values
 *    whose sums are exact, and stays within bf16's error of them on the others;
 * run with the dispatched kernels, then again in a child with MUS2PIC_CPU=generic (the portable
 * kernels) and in one with MUS2PIC_FUSE=0 (the unfused path behind the same calls).
 */
#include "mus2pic.h"
#include "tensor/ops.h"
#include "test.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static uint64_t rng = 0x243f6a8885a308d3ull;

static float *inputs(size_t n, float s)
{
    float *p = malloc(n * sizeof(float));
    for (size_t i = 0; p && i < n; i++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        p[i] = (float)((rng >> 40) * (1.0 / 8388608.0) - 1.0) * s;
    }
    return p;
}

/* round to nearest even; NaN stays a quiet NaN */
static uint16_t ref_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if (isnan(f))
        return (uint16_t)((u >> 16) | 0x40);
    uint32_t lower = u & 0xffff, up = u >> 16;
    if (lower > 0x8000 || (lower == 0x8000 && (up & 1)))
        up++;
    return (uint16_t)up;
}

/* count of a[i] != ref_bf16(want[i]) */
static size_t bf16_mismatch(const uint16_t *a, const float *want, size_t n, const char *what)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (a[i] != ref_bf16(want[i])) {
            if (!bad)
                fprintf(stderr, "%s: [%zu] got 0x%04x, want 0x%04x (%g)\n", what, i, a[i],
                        ref_bf16(want[i]), want[i]);
            bad++;
        }
    return bad;
}

static void check_kernels(void)
{
    const int B = 2, HW = 35, groups = 4;
    const int chans[2] = {64, 40}; /* 40: the scalar tail after two vectors */
    for (int ci = 0; ci < 2; ci++) {
        int C = chans[ci];
        size_t n = (size_t)B * HW * C;
        float *x = inputs(2 * n, 3.0f), *g = inputs(C, 1.5f), *be = inputs(C, 0.5f);
        float *f = malloc(4 * n * sizeof(float)); /* the upsample writes 4 n */
        uint16_t *q = malloc(4 * n * sizeof(uint16_t));
        CHECK(x && g && be && f && q);
        if (!x || !g || !be || !f || !q)
            return;
        char what[64];
        for (int silu = 0; silu < 2; silu++) {
            CHECK_INT(op_groupnorm(x, B, HW, C, groups, 1e-5f, g, be, silu, f), 0);
            CHECK_INT(op_groupnorm_bf16(x, B, HW, C, groups, 1e-5f, g, be, silu, q), 0);
            snprintf(what, sizeof what, "groupnorm silu %d C %d", silu, C);
            CHECK_INT(bf16_mismatch(q, f, n, what), 0);
        }
        op_layernorm(x, B * HW, C, 1e-5f, g, be, f);
        op_layernorm_bf16(x, B * HW, C, 1e-5f, g, be, q);
        snprintf(what, sizeof what, "layernorm C %d", C);
        CHECK_INT(bf16_mismatch(q, f, n, what), 0);
        op_geglu(x, B * HW, C, f); /* x as [rows, 2C] */
        op_geglu_bf16(x, B * HW, C, q);
        snprintf(what, sizeof what, "geglu D %d", C);
        CHECK_INT(bf16_mismatch(q, f, n, what), 0);
        /* the same from bf16 input: x rounded, widened for the f32 kernel */
        uint16_t *xb = malloc(2 * n * sizeof(uint16_t));
        float *xw = malloc(2 * n * sizeof(float)), *f2 = malloc(n * sizeof(float));
        CHECK(xb && xw && f2);
        if (xb && xw && f2) {
            for (size_t i = 0; i < 2 * n; i++) {
                xb[i] = ref_bf16(x[i]);
                uint32_t u = (uint32_t)xb[i] << 16;
                memcpy(&xw[i], &u, 4);
            }
            op_geglu(xw, B * HW, C, f);
            op_geglu_from_bf16(xb, B * HW, C, f2, NULL);
            snprintf(what, sizeof what, "geglu from bf16 D %d, f32 out", C);
            CHECK(test_max_abs_diff(f2, f, n, what) == 0.0);
            op_geglu_from_bf16(xb, B * HW, C, NULL, q);
            snprintf(what, sizeof what, "geglu from bf16 D %d, bf16 out", C);
            CHECK_INT(bf16_mismatch(q, f, n, what), 0);
        }
        /* GroupNorm of a bf16 input plus a per-(batch, channel) vector: widen, add, normalise */
        float *add = inputs((size_t)B * C, 2.0f);
        CHECK(add != NULL);
        for (int k = 0; xb && xw && f2 && add && k < 4; k++) {
            int silu = k & 1, with_add = k >> 1;
            for (size_t i = 0; i < n; i++) {
                uint32_t u = (uint32_t)xb[i] << 16;
                memcpy(&xw[i], &u, 4);
            }
            if (with_add)
                op_add_channel_bias(xw, add, B, HW, C);
            CHECK_INT(op_groupnorm(xw, B, HW, C, groups, 1e-5f, g, be, silu, f), 0);
            CHECK_INT(op_groupnorm_from_bf16(xb, with_add ? add : NULL, B, HW, C, groups, 1e-5f, g,
                                             be, silu, f2, NULL),
                      0);
            snprintf(what, sizeof what, "groupnorm from bf16 C %d silu %d add %d", C, silu,
                     with_add);
            CHECK(test_max_abs_diff(f2, f, n, what) <= 2e-6);
            CHECK_INT(op_groupnorm_from_bf16(xb, with_add ? add : NULL, B, HW, C, groups, 1e-5f, g,
                                             be, silu, NULL, q),
                      0);
            CHECK_INT(bf16_mismatch(q, f2, n, what), 0);
        }
        free(add);
        free(xb);
        free(xw);
        free(f2);

        /* upsample: special values in the input, layout checked against the f32 kernel */
        const int H = 5, W = 7;
        size_t ni = (size_t)B * H * W * C;
        const uint32_t special[] = {0x3f808000u, 0x3f818000u, 0x7fc00001u, 0xff800000u,
                                    0x7f800000u, 0x80000000u, 0x7f7fffffu, 0x00000001u};
        for (size_t i = 0; i < sizeof special / sizeof *special; i++)
            memcpy(&x[i * 37 % ni], &special[i], 4);
        op_upsample2x(x, B, H, W, C, f);
        op_upsample2x_bf16(x, B, H, W, C, q);
        snprintf(what, sizeof what, "upsample2x C %d", C);
        CHECK_INT(bf16_mismatch(q, f, 4 * ni, what), 0);
        float t0, t1;
        memcpy(&t0, &special[0], 4);
        memcpy(&t1, &special[1], 4);
        CHECK(ref_bf16(t0) == 0x3f80 && ref_bf16(t1) == 0x3f82); /* ties go to even */
        free(x);
        free(g);
        free(be);
        free(f);
        free(q);
    }
}

/* op_*_forward_pre against the two calls, for one dtype */
static void check_ops(int dtype)
{
    const int B = 2, H = 8, W = 6, cin = 48, cout = 40, rows = B * H * W;
    float *w = inputs((size_t)cout * cin * 9, 0.2f), *bias = inputs(cout, 0.5f);
    float *x = inputs((size_t)rows * 2 * cin, 2.0f), *g = inputs(cin, 1.2f),
          *be = inputs(cin, 0.3f), *res = inputs((size_t)rows * cout, 1.0f);
    float *tmp = malloc((size_t)rows * cin * sizeof(float));
    float *y1 = malloc((size_t)rows * cout * sizeof(float));
    float *y2 = malloc((size_t)rows * cout * sizeof(float));
    op_conv *cv = NULL;
    op_linear *l = NULL;
    CHECK(w && bias && x && g && be && res && tmp && y1 && y2);
    CHECK_INT(op_conv_create(&cv, w, bias, cin, cout, 3, 1, 1, dtype), 0);
    CHECK_INT(op_linear_create(&l, w, bias, cin, cout, dtype), 0);
    if (!cv || !l || !tmp || !y1 || !y2)
        goto done;
    const char *names[4] = {"groupnorm+silu", "layernorm", "geglu", "upsample2x"};
    for (int kind = OP_PRE_GROUPNORM; kind <= OP_PRE_UPSAMPLE2X; kind++) {
        op_pre pre = {kind, 4, 1e-5f, g, be, kind == OP_PRE_GROUPNORM, NULL};
        for (int with_res = 0; with_res < 2; with_res++) {
            const float *r = with_res ? res : NULL;
            char what[96];
            /* the unfused reference */
            if (kind == OP_PRE_GROUPNORM)
                CHECK_INT(op_groupnorm(x, B, H * W, cin, 4, 1e-5f, g, be, 1, tmp), 0);
            else if (kind == OP_PRE_LAYERNORM)
                op_layernorm(x, rows, cin, 1e-5f, g, be, tmp);
            else if (kind == OP_PRE_GEGLU)
                op_geglu(x, rows, cin, tmp);
            else
                op_upsample2x(x, B, H / 2, W / 2, cin, tmp);
            CHECK_INT(op_conv_forward(cv, tmp, B, H, W, y1, r), 0);
            memset(y2, 0, (size_t)rows * cout * sizeof(float));
            CHECK_INT(op_conv_forward_pre(cv, &pre, x, B, H, W, tmp, y2, r), 0);
            snprintf(what, sizeof what, "conv of %s, %s, residual %d", names[kind - 1],
                     dtype == M2P_DTYPE_BF16 ? "bf16" : "f32", with_res);
            CHECK(test_max_abs_diff(y2, y1, (size_t)rows * cout, what) == 0.0);
            if (kind == OP_PRE_UPSAMPLE2X) {
                CHECK(op_linear_forward_pre(l, &pre, x, B, H * W, tmp, y2, r) < 0);
                continue;
            }
            CHECK_INT(op_linear_forward(l, tmp, rows, y1, r), 0);
            memset(y2, 0, (size_t)rows * cout * sizeof(float));
            CHECK_INT(op_linear_forward_pre(l, &pre, x, B, H * W, tmp, y2, r), 0);
            snprintf(what, sizeof what, "linear of %s, %s, residual %d", names[kind - 1],
                     dtype == M2P_DTYPE_BF16 ? "bf16" : "f32", with_res);
            CHECK(test_max_abs_diff(y2, y1, (size_t)rows * cout, what) == 0.0);
        }
    }
    /* GEGLU of a bf16 input (a linear's bf16 output) against widening it and the two calls */
    uint16_t *xb = malloc((size_t)rows * 2 * cin * sizeof(uint16_t));
    uint16_t *yb = malloc((size_t)rows * cout * sizeof(uint16_t));
    CHECK(xb && yb);
    if (!xb || !yb)
        goto done_b;
    for (size_t i = 0; i < (size_t)rows * 2 * cin; i++)
        xb[i] = ref_bf16(x[i]);
    op_pre g16 = {OP_PRE_GEGLU_BF16, 0, 0.0f, NULL, NULL, 0, NULL};
    for (int with_res = 0; with_res < 2; with_res++) {
        const float *r = with_res ? res : NULL;
        char what[96];
        op_geglu_from_bf16(xb, rows, cin, tmp, NULL);
        CHECK_INT(op_linear_forward(l, tmp, rows, y1, r), 0);
        memset(y2, 0, (size_t)rows * cout * sizeof(float));
        CHECK_INT(op_linear_forward_pre(l, &g16, (const float *)xb, B, H * W, tmp, y2, r), 0);
        snprintf(what, sizeof what, "linear of geglu from bf16, %s, residual %d",
                 dtype == M2P_DTYPE_BF16 ? "bf16" : "f32", with_res);
        CHECK(test_max_abs_diff(y2, y1, (size_t)rows * cout, what) == 0.0);
    }
    /* bf16 outputs: the f32 output rounded, with a pre-op and without */
    if (dtype == M2P_DTYPE_BF16) {
        op_pre ln = {OP_PRE_LAYERNORM, 0, 1e-5f, g, be, 0, NULL};
        CHECK_INT(op_linear_forward_pre(l, &ln, x, B, H * W, tmp, y1, NULL), 0);
        memset(yb, 0, (size_t)rows * cout * sizeof(uint16_t));
        CHECK_INT(op_linear_forward_bf16(l, &ln, x, B, H * W, tmp, yb), 0);
        CHECK_INT(bf16_mismatch(yb, y1, (size_t)rows * cout, "bf16 out of linear of layernorm"), 0);
        CHECK_INT(op_linear_forward(l, x, rows, y1, NULL), 0);
        memset(yb, 0, (size_t)rows * cout * sizeof(uint16_t));
        CHECK_INT(op_linear_forward_bf16(l, NULL, x, B, H * W, tmp, yb), 0);
        CHECK_INT(bf16_mismatch(yb, y1, (size_t)rows * cout, "bf16 out of linear"), 0);
        op_pre gn = {OP_PRE_GROUPNORM, 4, 1e-5f, g, be, 1, NULL};
        CHECK_INT(op_conv_forward_pre(cv, &gn, x, B, H, W, tmp, y1, NULL), 0);
        memset(yb, 0, (size_t)rows * cout * sizeof(uint16_t));
        CHECK_INT(op_conv_forward_bf16(cv, &gn, x, B, H, W, tmp, yb), 0);
        CHECK_INT(bf16_mismatch(yb, y1, (size_t)rows * cout, "bf16 out of conv of groupnorm"), 0);
        CHECK_INT(op_conv_forward(cv, x, B, H, W, y1, NULL), 0);
        memset(yb, 0, (size_t)rows * cout * sizeof(uint16_t));
        CHECK_INT(op_conv_forward_bf16(cv, NULL, x, B, H, W, tmp, yb), 0);
        CHECK_INT(bf16_mismatch(yb, y1, (size_t)rows * cout, "bf16 out of conv"), 0);
        op_pre up = {OP_PRE_UPSAMPLE2X, 0, 0.0f, NULL, NULL, 0, NULL};
        CHECK(op_conv_forward_bf16(cv, &up, x, B, H + 1, W, tmp, yb) < 0);
        /* a bf16 input read as it is: op_linear_forward on its widened values, bit for bit */
        for (size_t i = 0; i < (size_t)rows * cin; i++) {
            uint32_t u = (uint32_t)xb[i] << 16;
            memcpy(&tmp[i], &u, 4);
        }
        for (int with_res = 0; with_res < 2; with_res++) {
            const float *r = with_res ? res : NULL;
            char what[96];
            CHECK_INT(op_linear_forward(l, tmp, rows, y1, r), 0);
            memset(y2, 0, (size_t)rows * cout * sizeof(float));
            CHECK_INT(op_linear_forward_bf16in(l, xb, rows, y2, r), 0);
            snprintf(what, sizeof what, "linear of a bf16 input, residual %d", with_res);
            CHECK(test_max_abs_diff(y2, y1, (size_t)rows * cout, what) == 0.0);
        }
    } else {
        CHECK(op_linear_forward_bf16(l, NULL, x, B, H * W, tmp, yb) < 0);
        CHECK(op_conv_forward_bf16(cv, NULL, x, B, H, W, tmp, yb) < 0);
        CHECK(op_linear_forward_bf16in(l, xb, rows, y2, NULL) < 0);
    }
    /* GroupNorm(+SiLU) of a bf16 input plus a per-(batch, channel) vector in front of a conv:
     * the two calls; then with tmp on x's own buffer (the resnets' conv2: the unfused path
     * widens it in place) */
    float *add = inputs((size_t)B * cin, 2.0f), *xin = malloc((size_t)rows * cin * sizeof(float));
    CHECK(add && xin);
    for (int with_add = 0; add && xin && with_add < 2; with_add++) {
        for (int with_res = 0; with_res < 2; with_res++) {
            const float *r = with_res ? res : NULL;
            char what[96];
            op_pre gn16 = {OP_PRE_GROUPNORM_BF16, 4, 1e-5f, g, be, 1, with_add ? add : NULL};
            CHECK_INT(
                op_groupnorm_from_bf16(xb, gn16.add, B, H * W, cin, 4, 1e-5f, g, be, 1, tmp, NULL),
                0);
            CHECK_INT(op_conv_forward(cv, tmp, B, H, W, y1, r), 0);
            memset(y2, 0, (size_t)rows * cout * sizeof(float));
            CHECK_INT(op_conv_forward_pre(cv, &gn16, (const float *)xb, B, H, W, tmp, y2, r), 0);
            snprintf(what, sizeof what, "conv of groupnorm from bf16, %s, add %d, residual %d",
                     dtype == M2P_DTYPE_BF16 ? "bf16" : "f32", with_add, with_res);
            CHECK(test_max_abs_diff(y2, y1, (size_t)rows * cout, what) == 0.0);
            memcpy(xin, xb, (size_t)rows * cin * sizeof(uint16_t));
            memset(y2, 0, (size_t)rows * cout * sizeof(float));
            CHECK_INT(op_conv_forward_pre(cv, &gn16, xin, B, H, W, xin, y2, r), 0);
            snprintf(what, sizeof what, "conv of groupnorm from bf16 in place, %s, add %d",
                     dtype == M2P_DTYPE_BF16 ? "bf16" : "f32", with_add);
            /* the unfused path widens, adds and normalises in f32 (op_groupnorm's sums) */
            CHECK(test_max_abs_diff(y2, y1, (size_t)rows * cout, what) <= 1e-4);
        }
    }
    free(add);
    free(xin);
done_b:
    free(xb);
    free(yb);
    /* an odd size cannot come from a 2x upsample */
    op_pre up = {OP_PRE_UPSAMPLE2X, 0, 0.0f, NULL, NULL, 0, NULL};
    CHECK(op_conv_forward_pre(cv, &up, x, B, H + 1, W, tmp, y2, NULL) < 0);
done:
    op_conv_free(cv);
    op_linear_free(l);
    free(w);
    free(bias);
    free(x);
    free(g);
    free(be);
    free(res);
    free(tmp);
    free(y1);
    free(y2);
}

/* A value on a grid of 1/16 steps in [-m, m]: sums and products of a few such values are
 * exact in f32 and bf16. */
static float *grid_inputs(size_t n, int m)
{
    float *p = inputs(n, 1.0f);
    for (size_t i = 0; p && i < n; i++)
        p[i] = (float)((int)(p[i] * 16.0f * (float)m)) / 16.0f;
    return p;
}

/* A bf16 3x3 conv of a 2x upsampled input runs as four 2x2 convs of the input, one per output
 * phase, with summed weights (dnnl_ops.c conv_up_phases). On values whose sums and products
 * are exact (a grid of 1/16 steps; the weight sums fit bf16's 8 bits), it must equal the
 * upsample and the conv bit for bit, borders included: batch 2, an odd width, cout < cin and
 * cout == cin, with and without a residual; and with its y on x's own buffer (the VAE's call). */
static void check_up_phases(void)
{
    const int B = 2, h = 5, w = 3, H = 2 * h, W = 2 * w, cin = 48;
    const int couts[2] = {40, 48};
    for (int t = 0; t < 2; t++) {
        int cout = couts[t];
        size_t ny = (size_t)B * H * W * cout;
        float *wt = grid_inputs((size_t)cout * cin * 9, 1), *bias = grid_inputs(cout, 2);
        float *x = grid_inputs((size_t)B * h * w * cin, 2), *res = grid_inputs(ny, 4);
        float *up = malloc((size_t)B * H * W * cin * sizeof(float));
        float *tmp = malloc((size_t)B * H * W * cin * sizeof(float));
        float *y1 = malloc(ny * sizeof(float)), *y2 = malloc(ny * sizeof(float));
        float *xy = malloc((size_t)B * H * W * (cin > cout ? cin : cout) * sizeof(float));
        op_conv *cv = NULL, *cp = NULL, *plain = NULL;
        CHECK(wt && bias && x && res && up && tmp && y1 && y2 && xy);
        CHECK_INT(op_conv_create_flags(&cv, wt, bias, cin, cout, 3, 1, 1, M2P_DTYPE_BF16,
                                       OP_CONV_UPSAMPLED),
                  0);
        /* the same conv from its prepared weights (the weight cache's path): the conv's and its
         * phases' in one block; a block without the phases is refused (1: convert instead) */
        op_prepared pw = {0}, plain_pw = {0};
        if (cv)
            op_conv_prepared(cv, &pw);
        CHECK(pw.data != NULL && pw.release != NULL);
        op_prepared borrowed = pw; /* the op would call release at free: this test does */
        borrowed.release = NULL;
        if (pw.data)
            CHECK_INT(op_conv_create_prepared(&cp, &borrowed, bias, cin, cout, 3, 1, 1,
                                              M2P_DTYPE_BF16, OP_CONV_UPSAMPLED),
                      0);
        CHECK_INT(op_conv_create(&plain, wt, bias, cin, cout, 3, 1, 1, M2P_DTYPE_BF16), 0);
        if (plain) {
            op_conv_prepared(plain, &plain_pw);
            CHECK(plain_pw.release == NULL);
            op_conv *refused = NULL;
            CHECK_INT(op_conv_create_prepared(&refused, &plain_pw, bias, cin, cout, 3, 1, 1,
                                              M2P_DTYPE_BF16, OP_CONV_UPSAMPLED),
                      1);
            CHECK(refused == NULL);
        }
        op_pre pre = {OP_PRE_UPSAMPLE2X, 0, 0.0f, NULL, NULL, 0, NULL};
        for (int with_res = 0; cv && cp && xy && with_res < 2; with_res++) {
            const float *r = with_res ? res : NULL;
            char what[96];
            op_upsample2x(x, B, h, w, cin, up);
            CHECK_INT(op_conv_forward(cv, up, B, H, W, y1, r), 0);
            memset(y2, 0, ny * sizeof(float));
            CHECK_INT(op_conv_forward_pre(cv, &pre, x, B, H, W, tmp, y2, r), 0);
            snprintf(what, sizeof what, "upsample conv in phases, %d -> %d, residual %d", cin, cout,
                     with_res);
            CHECK(test_max_abs_diff(y2, y1, ny, what) == 0.0);
            memset(y2, 0, ny * sizeof(float));
            CHECK_INT(op_conv_forward_pre(cp, &pre, x, B, H, W, tmp, y2, r), 0);
            snprintf(what, sizeof what, "upsample conv in phases, prepared, residual %d", with_res);
            CHECK(test_max_abs_diff(y2, y1, ny, what) == 0.0);
            if (!with_res) {
                memcpy(xy, x, (size_t)B * h * w * cin * sizeof(float));
                CHECK_INT(op_conv_forward_pre(cv, &pre, xy, B, H, W, tmp, xy, NULL), 0);
                snprintf(what, sizeof what, "upsample conv in phases onto x, %d -> %d", cin, cout);
                CHECK(test_max_abs_diff(xy, y1, ny, what) == 0.0);
            }
        }
        op_conv_free(cv);
        op_conv_free(cp);
        op_conv_free(plain);
        if (pw.release)
            pw.release(pw.release_ud);
        free(wt);
        free(bias);
        free(x);
        free(res);
        free(up);
        free(tmp);
        free(y1);
        free(y2);
        free(xy);
    }
}

static void check_all(void)
{
    check_kernels();
    if (op_bf16_supported())
        check_up_phases();
    check_ops(M2P_DTYPE_F32);
    if (op_bf16_supported())
        check_ops(M2P_DTYPE_BF16);
    else
        test_skip("no native bf16 on this CPU: the bf16 ops are not compared");
}

/* this test again in a child with env name=value; its exit status */
static int child(const char *argv0, const char *name, const char *value)
{
    pid_t pid = fork();
    if (pid == 0) {
        setenv(name, value, 1);
        execl("/proc/self/exe", argv0, "--child", (char *)NULL);
        _exit(127);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

int main(int argc, char **argv)
{
    int is_child = argc == 2 && !strcmp(argv[1], "--child");
    printf("kernels: %s, fused: %d\n", m2p_cpu_kernels(), op_fuse_enabled());
    check_all();
    if (!is_child) {
        int st = child(argv[0], "MUS2PIC_CPU", "generic");
        CHECK(st == 0 || st == TEST_SKIP_CODE);
        st = child(argv[0], "MUS2PIC_FUSE", "0");
        CHECK(st == 0 || st == TEST_SKIP_CODE);
    }
    TEST_DONE();
}

/*
 * bench_ops.c — GFLOP/s of the engine's ops at Stable Diffusion 1.5 sizes (512^2 image, 64^2
 * latent): oneDNN 3x3 / 1x1 convs of the UNet and the VAE decoder, the linear layers of a
 * transformer block, tiled attention, GroupNorm+SiLU and GEGLU, in f32 and bf16; the "pre"
 * cases time a norm / GEGLU / upsample with the bf16 conv or linear after it, as two calls and
 * fused (ops.h op_pre).
 *
 *   ./build/bench_ops [--threads N] [--dtype f32|bf16|both] [--filter SUBSTR] [--reps N]
 *
 * Each case runs once to warm up (primitive creation), then the best of --reps runs is kept.
 */
#define _GNU_SOURCE
#include "core/error.h"
#include "mus2pic.h"
#include "tensor/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int reps = 3;
static const char *filter;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float *rnd(size_t n, float s)
{
    float *p = malloc(n * sizeof(float));
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        p[i] = ((x >> 8) * (1.0f / 16777216.0f) - 0.5f) * s;
    }
    return p;
}

static int skip(const char *name)
{
    return filter && !strstr(name, filter);
}

static void report(const char *name, const char *dt, double flops, double t)
{
    printf("%-44s %-5s %9.2f ms %8.1f GFLOP/s\n", name, dt, t * 1e3, flops / t * 1e-9);
    fflush(stdout);
}

static void bench_conv(int cin, int cout, int k, int s, int H, int B, int dtype, const char *tag)
{
    char name[128];
    snprintf(name, sizeof name, "conv%dx%d %4d->%-4d %3dx%-3d B%d %s", k, k, cin, cout, H, H, B,
             tag);
    if (skip(name))
        return;
    float *w = rnd((size_t)cout * cin * k * k, 0.1f), *b = rnd(cout, 0.1f);
    op_conv *c;
    if (op_conv_create(&c, w, b, cin, cout, k, s, k / 2, dtype)) {
        fprintf(stderr, "%s: %s\n", name, m2p_errmsg());
        exit(1);
    }
    int Ho, Wo;
    op_conv_out_hw(c, H, H, &Ho, &Wo);
    float *x = rnd((size_t)B * H * H * cin, 1), *y = rnd((size_t)B * Ho * Wo * cout, 1);
    op_conv_forward(c, x, B, H, H, y, NULL);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        op_conv_forward(c, x, B, H, H, y, NULL);
        double t = now() - t0;
        best = t < best ? t : best;
    }
    report(name, dtype ? "bf16" : "f32", 2.0 * B * Ho * Wo * cout * cin * k * k, best);
    op_conv_free(c);
    free(w);
    free(b);
    free(x);
    free(y);
}

static void bench_linear(int rows, int in, int out, int dtype, const char *tag)
{
    char name[128];
    snprintf(name, sizeof name, "linear %5d x %4d -> %-4d %s", rows, in, out, tag);
    if (skip(name))
        return;
    float *w = rnd((size_t)out * in, 0.1f), *b = rnd(out, 0.1f);
    op_linear *l;
    if (op_linear_create(&l, w, b, in, out, dtype)) {
        fprintf(stderr, "%s: %s\n", name, m2p_errmsg());
        exit(1);
    }
    float *x = rnd((size_t)rows * in, 1), *y = rnd((size_t)rows * out, 1);
    op_linear_forward(l, x, rows, y, NULL);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        op_linear_forward(l, x, rows, y, NULL);
        double t = now() - t0;
        best = t < best ? t : best;
    }
    report(name, dtype ? "bf16" : "f32", 2.0 * rows * in * out, best);
    op_linear_free(l);
    free(w);
    free(b);
    free(x);
    free(y);
}

/* dtype 1: op_attention_bf16 (AMX tiles where the CPU has them) */
static void bench_attention(int B, int Lq, int Lk, int heads, int dh, int dtype, const char *tag)
{
    int (*attend)(const float *, int, const float *, const float *, int, int, int, int, int, int,
                  float, int, float *) = dtype ? op_attention_bf16 : op_attention;
    char name[128];
    snprintf(name, sizeof name, "attention B%d %4dx%-4d %dx%d %s", B, Lq, Lk, heads, dh, tag);
    if (skip(name))
        return;
    /* The engine's layouts: self-attention reads q, k and v from one projection [L, 3C]
     * (unet_blocks.c, vae.c, clip_text.c), cross-attention q [Lq, C] and k, v from one
     * [Lk, 2C] */
    int C = heads * dh, self = Lq == Lk, qs = self ? 3 * C : C, kvs = self ? 3 * C : 2 * C;
    float *qkv = rnd((size_t)B * Lq * qs, 1), *kv = self ? NULL : rnd((size_t)B * Lk * kvs, 1);
    float *q = qkv, *k = self ? qkv + C : kv, *v = k + C, *o = rnd((size_t)B * Lq * C, 1);
    float sc = 1.0f / sqrtf((float)dh);
    attend(q, qs, k, v, kvs, B, Lq, Lk, heads, dh, sc, 0, o);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        attend(q, qs, k, v, kvs, B, Lq, Lk, heads, dh, sc, 0, o);
        double t = now() - t0;
        best = t < best ? t : best;
    }
    report(name, dtype ? "bf16" : "f32", 4.0 * B * heads * (double)Lq * Lk * dh, best);
    free(qkv);
    free(kv);
    free(o);
}

static void bench_misc(int HW, int C)
{
    char name[128];
    snprintf(name, sizeof name, "groupnorm+silu %dx%d", HW, C);
    if (!skip(name)) {
        float *x = rnd((size_t)HW * C, 1), *g = rnd(C, 1), *b = rnd(C, 1);
        op_groupnorm(x, 1, HW, C, 32, 1e-5f, g, b, 1, x);
        double best = 1e30;
        for (int r = 0; r < reps; r++) {
            double t0 = now();
            op_groupnorm(x, 1, HW, C, 32, 1e-5f, g, b, 1, x);
            double t = now() - t0;
            best = t < best ? t : best;
        }
        printf("%-44s %-5s %9.2f ms %8.2f GB/s\n", name, "f32", best * 1e3,
               3.0 * HW * C * 4 / best * 1e-9);
        free(x);
        free(g);
        free(b);
    }
    snprintf(name, sizeof name, "geglu %dx%d", HW, 4 * C);
    if (!skip(name)) {
        float *x = rnd((size_t)HW * 8 * C, 1), *y = rnd((size_t)HW * 4 * C, 1);
        op_geglu(x, HW, 4 * C, y);
        double best = 1e30;
        for (int r = 0; r < reps; r++) {
            double t0 = now();
            op_geglu(x, HW, 4 * C, y);
            double t = now() - t0;
            best = t < best ? t : best;
        }
        printf("%-44s %-5s %9.2f ms %8.2f GB/s\n", name, "f32", best * 1e3,
               12.0 * HW * C * 4 / best * 1e-9);
        free(x);
        free(y);
    }
}

/* A norm / activation / upsample and the conv or linear that reads it, bf16: the two calls as
 * before (f32 result, then the op converts it to bf16) against op_*_forward_pre (the bf16 input
 * written directly; ops.h op_pre). Times are the pair's, best of --reps each, alternated. */
static void bench_pre(int kind, int B, int H, int W, int cin, int cout, int k, const char *tag)
{
    char name[128];
    snprintf(name, sizeof name, "pre %s %dx%dx%d -> %d B%d", tag, H, W, cin, cout, B);
    if (skip(name))
        return;
    const int rows = B * H * W, xin = kind == OP_PRE_GEGLU ? 2 * cin : cin;
    size_t nx = kind == OP_PRE_UPSAMPLE2X ? (size_t)rows / 4 * cin : (size_t)rows * xin;
    float *w = rnd((size_t)cout * cin * k * k, 0.1f), *b = rnd(cout, 0.1f), *g = rnd(cin, 1),
          *be = rnd(cin, 1), *x = rnd(nx, 1), *tmp = rnd((size_t)rows * cin, 1),
          *y = rnd((size_t)rows * cout, 1);
    op_conv *cv = NULL;
    op_linear *l = NULL;
    int rc = k ? op_conv_create(&cv, w, b, cin, cout, k, 1, k / 2, M2P_DTYPE_BF16)
               : op_linear_create(&l, w, b, cin, cout, M2P_DTYPE_BF16);
    if (rc) {
        fprintf(stderr, "%s: %s\n", name, m2p_errmsg());
        exit(1);
    }
    op_pre pre = {kind, 32, 1e-5f, g, be, kind == OP_PRE_GROUPNORM && k, NULL};
    double best[2] = {1e30, 1e30};
    for (int r = 0; r <= reps; r++)
        for (int fused = 0; fused < 2; fused++) {
            double t0 = now();
            if (fused) {
                rc = cv ? op_conv_forward_pre(cv, &pre, x, B, H, W, tmp, y, NULL)
                        : op_linear_forward_pre(l, &pre, x, B, H * W, tmp, y, NULL);
            } else {
                rc = cv ? op_pre_run(&pre, x, B, H, W, cin, tmp)
                        : op_pre_run(&pre, x, B, H * W, 1, cin, tmp);
                if (!rc)
                    rc = cv ? op_conv_forward(cv, tmp, B, H, W, y, NULL)
                            : op_linear_forward(l, tmp, rows, y, NULL);
            }
            double t = now() - t0;
            if (rc) {
                fprintf(stderr, "%s: %s\n", name, m2p_errmsg());
                exit(1);
            }
            if (r && t < best[fused]) /* r 0: warm-up */
                best[fused] = t;
        }
    printf("%-44s %-5s %9.2f ms unfused %9.2f ms fused (%.3fx)\n", name, "bf16", best[0] * 1e3,
           best[1] * 1e3, best[0] / best[1]);
    fflush(stdout);
    op_conv_free(cv);
    op_linear_free(l);
    free(w);
    free(b);
    free(g);
    free(be);
    free(x);
    free(tmp);
    free(y);
}

int main(int argc, char **argv)
{
    int threads = 0, dts[2] = {1, 1};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--filter") && i + 1 < argc)
            filter = argv[++i];
        else if (!strcmp(argv[i], "--dtype") && i + 1 < argc) {
            const char *d = argv[++i];
            dts[0] = !strcmp(d, "f32") || !strcmp(d, "both");
            dts[1] = !strcmp(d, "bf16") || !strcmp(d, "both");
        } else {
            fprintf(stderr, "usage: bench_ops [--threads N] [--dtype f32|bf16|both] [--filter S] "
                            "[--reps N]\n");
            return 2;
        }
    }
    op_set_threads(threads);
    printf("bench_ops: %d threads, best of %d\n", op_get_threads(), reps);
    for (int dt = 0; dt < 2; dt++) {
        if (!dts[dt])
            continue;
        bench_conv(320, 320, 3, 1, 64, 1, dt, "unet L0");
        bench_conv(640, 640, 3, 1, 32, 1, dt, "unet L1");
        bench_conv(1280, 1280, 3, 1, 16, 1, dt, "unet L2");
        bench_conv(1280, 1280, 3, 1, 8, 1, dt, "unet L3");
        bench_conv(2560, 1280, 3, 1, 8, 1, dt, "unet up0");
        bench_conv(1280, 1280, 3, 1, 32, 1, dt, "unet up1 upsample");
        bench_conv(320, 320, 3, 1, 32, 1, dt, "unet L0 at 256^2");
        bench_conv(320, 320, 3, 2, 64, 1, dt, "unet down");
        bench_conv(320, 320, 3, 1, 64, 4, dt, "unet L0 B4");
        bench_conv(320, 320, 1, 1, 64, 1, dt, "unet proj_in");
        bench_conv(512, 512, 3, 1, 64, 1, dt, "vae mid");
        bench_conv(512, 512, 3, 1, 128, 1, dt, "vae up1");
        bench_conv(256, 256, 3, 1, 256, 1, dt, "vae up2");
        bench_conv(128, 128, 3, 1, 512, 1, dt, "vae up3");
        bench_conv(512, 256, 1, 1, 256, 1, dt, "vae up2 shortcut");
        bench_conv(256, 128, 1, 1, 512, 1, dt, "vae up3 shortcut");
        bench_linear(65536, 512, 256, dt, "vae up2 shortcut as matmul");
        bench_linear(262144, 256, 128, dt, "vae up3 shortcut as matmul");
        bench_linear(4096, 320, 320, dt, "unet q/o");
        bench_linear(4096, 320, 2560, dt, "unet ff in");
        bench_linear(4096, 1280, 320, dt, "unet ff out");
        bench_linear(1024, 640, 5120, dt, "unet L1 ff in");
        bench_linear(256, 1280, 10240, dt, "unet L2 ff in");
        bench_linear(256, 1280, 1280, dt, "unet L2 q/o");
        bench_linear(256, 5120, 1280, dt, "unet L2 ff out");
        bench_linear(77, 768, 320, dt, "unet k/v ctx");
        bench_linear(77, 768, 3072, dt, "clip mlp");
        bench_attention(1, 4096, 4096, 8, 40, dt, "unet L0 self");
        bench_attention(1, 4096, 77, 8, 40, dt, "unet L0 cross");
        bench_attention(1, 1024, 1024, 8, 80, dt, "unet L1 self");
        bench_attention(1, 256, 256, 8, 160, dt, "unet L2 self");
        bench_attention(4, 4096, 4096, 8, 40, dt, "unet L0 self B4");
        bench_attention(1, 4096, 4096, 1, 512, dt, "vae mid");
        bench_attention(1, 77, 77, 12, 64, dt, "clip");
    }
    bench_misc(4096, 320);
    if (dts[1] && op_bf16_supported() && op_fuse_enabled()) {
        bench_pre(OP_PRE_GROUPNORM, 1, 64, 64, 320, 320, 3, "groupnorm+silu conv3x3 unet L0");
        bench_pre(OP_PRE_GROUPNORM, 1, 16, 16, 1280, 1280, 3, "groupnorm+silu conv3x3 unet L2");
        bench_pre(OP_PRE_GROUPNORM, 1, 64, 64, 320, 320, 0, "groupnorm proj_in unet L0");
        bench_pre(OP_PRE_LAYERNORM, 1, 64, 64, 320, 960, 0, "layernorm qkv unet L0");
        bench_pre(OP_PRE_LAYERNORM, 1, 32, 32, 640, 5120, 0, "layernorm ff in unet L1");
        bench_pre(OP_PRE_GEGLU, 1, 64, 64, 1280, 320, 0, "geglu ff out unet L0");
        bench_pre(OP_PRE_GEGLU, 4, 64, 64, 1280, 320, 0, "geglu ff out unet L0");
        bench_pre(OP_PRE_GROUPNORM, 1, 256, 256, 256, 256, 3, "groupnorm+silu conv3x3 vae");
        bench_pre(OP_PRE_UPSAMPLE2X, 1, 16, 16, 1280, 1280, 3, "upsample2x conv3x3 unet up0");
        bench_pre(OP_PRE_UPSAMPLE2X, 1, 32, 32, 1280, 1280, 3, "upsample2x conv3x3 unet up1");
        bench_pre(OP_PRE_UPSAMPLE2X, 1, 64, 64, 640, 640, 3, "upsample2x conv3x3 unet up2");
        bench_pre(OP_PRE_UPSAMPLE2X, 4, 64, 64, 640, 640, 3, "upsample2x conv3x3 unet up2");
        bench_pre(OP_PRE_UPSAMPLE2X, 1, 128, 128, 512, 512, 3, "upsample2x conv3x3 vae up0");
        bench_pre(OP_PRE_UPSAMPLE2X, 1, 256, 256, 512, 512, 3, "upsample2x conv3x3 vae up1");
        bench_pre(OP_PRE_UPSAMPLE2X, 1, 512, 512, 256, 256, 3, "upsample2x conv3x3 vae");
    }
    return 0;
}

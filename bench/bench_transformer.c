/*
 * bench_transformer.c — one UNet transformer (Transformer2DModel with its block) of each SD 1.5
 * level at batch 1 and batch 4, alternated run by run, so the host's slow minutes hit both: how
 * each level scales with the batch, and the bf16 feed-forward in row chunks (the default) against
 * all rows at once (unet_transformer.ff_chunk 0) at the same time.
 *
 *   ./build/bench_transformer --model DIR [--rounds N] [--level L]
 *
 * DIR is an SD 1.5-shaped model folder (tools/make-random-model writes one). Per level: the
 * median over the rounds of batch 1 and batch 4 (ms), batch 4 / batch 1, and for each the
 * chunked and unchunked feed-forward. Inputs are fixed pseudo-random values; every run starts from
 * the same input (the forward adds into x in place).
 */
#include "core/error.h"
#include "model/weights.h"
#include "mus2pic.h"
#include "sd/unet_blocks.h"
#include "tensor/ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_transformer: %s: %s\n", what, m2p_errmsg());
    exit(1);
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, int n)
{
    double *s = malloc((size_t)n * sizeof *s);
    if (!s)
        die("out of memory");
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_dbl);
    double m = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
    free(s);
    return m;
}

static void fill(float *host, size_t n, unsigned seed)
{
    unsigned x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        host[i] = (float)(x >> 8) / 8388608.0f - 1.0f;
    }
}

/* SD 1.5's first transformer of each level: channels and the map's side at 512^2 */
static const struct {
    const char *prefix;
    int C, side;
} LEVELS[] = {{"down_blocks.0.attentions.0", 320, 64},
              {"down_blocks.1.attentions.0", 640, 32},
              {"down_blocks.2.attentions.0", 1280, 16},
              {"mid_block.attentions.0", 1280, 8}};

static void run_level(const m2p_backend *be, weights *w, int lvl, int rounds)
{
    const int B = 4, C = LEVELS[lvl].C, HW = LEVELS[lvl].side * LEVELS[lvl].side, ctx_len = 77;
    unet_transformer t;
    if (unet_transformer_load(be, w, LEVELS[lvl].prefix, C, 8, 1, 768, 32, 0, M2P_DTYPE_BF16, &t))
        die("loading the transformer");
    const size_t n = (size_t)B * HW * C, nc = (size_t)B * ctx_len * 768;
    float *hx = malloc(n * sizeof *hx), *hc = malloc(nc * sizeof *hc);
    float *x = be->alloc(be, n), *ctx = be->alloc(be, nc);
    float *scratch = be->alloc(be, unet_transformer_scratch(&t, (size_t)B * HW, (size_t)B * 77));
    double *ms[2][2]; /* [chunked][batch 4] */
    for (int c = 0; c < 2; c++)
        for (int b = 0; b < 2; b++)
            if (!(ms[c][b] = calloc((size_t)rounds, sizeof(double))))
                die("out of memory");
    if (!hx || !hc || !x || !ctx || !scratch)
        die("out of memory");
    fill(hx, n, 1);
    fill(hc, nc, 2);
    if (be->upload(be, ctx, hc, nc))
        die("upload");
    for (int r = -1; r < rounds; r++) /* round -1 warms up (primitive creation) */
        for (int i = 0; i < 4; i++) {
            const int k = (r & 1) ? 3 - i : i, chunked = k >> 1, b4 = k & 1, bb = b4 ? B : 1;
            t.ff_chunk = chunked ? UNET_FF_CHUNK : 0;
            if (be->upload(be, x, hx, (size_t)bb * HW * C))
                die("upload");
            double t0 = now();
            if (unet_transformer_forward(&t, x, bb, HW, ctx, bb, ctx_len, scratch))
                die("forward");
            if (r >= 0)
                ms[chunked][b4][r] = (now() - t0) * 1e3;
        }
    printf("| %d (%dx%d, C %d) |", lvl, LEVELS[lvl].side, LEVELS[lvl].side, C);
    for (int c = 1; c >= 0; c--) {
        double m1 = median(ms[c][0], rounds), m4 = median(ms[c][1], rounds);
        printf(" %7.2f | %8.2f | %5.2f |", m1, m4, m4 / m1);
    }
    int f1 = 0, f4 = 0;
    for (int r = 0; r < rounds; r++) {
        f1 += ms[1][0][r] < ms[0][0][r];
        f4 += ms[1][1][r] < ms[0][1][r];
    }
    printf(" %d / %d of %d |\n", f1, f4, rounds);
    fflush(stdout);
    for (int c = 0; c < 2; c++)
        for (int b = 0; b < 2; b++)
            free(ms[c][b]);
    be->free(be, x);
    be->free(be, ctx);
    be->free(be, scratch);
    free(hx);
    free(hc);
    unet_transformer_free(&t);
}

int main(int argc, char **argv)
{
    const char *model = NULL;
    int rounds = 15, only = -1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc)
            model = argv[++i];
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--level") && i + 1 < argc)
            only = atoi(argv[++i]);
        else
            model = NULL, i = argc;
    }
    if (!model || rounds < 1 || only > 3) {
        fprintf(stderr, "usage: bench_transformer --model DIR [--rounds N] [--level 0-3]\n");
        return 2;
    }
    if (!op_bf16_supported()) {
        fprintf(stderr, "bench_transformer: no native bf16 on this CPU\n");
        return 1;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/unet", model);
    weights *w = NULL;
    if (weights_open(dir, &w))
        die("opening the UNet's weights");
    const m2p_backend *be = m2p_backend_cpu();
    printf("bench_transformer: %s, bf16, %d rounds, medians in ms\n\n", model, rounds);
    printf("| level | chunked B1 | B4 | B4/B1 | all rows B1 | B4 | B4/B1 | chunked faster, B1 / "
           "B4 |\n|---|---|---|---|---|---|---|---|\n");
    for (int l = 0; l < 4; l++)
        if (only < 0 || only == l)
            run_level(be, w, l, rounds);
    weights_close(w);
    return 0;
}

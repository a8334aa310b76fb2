/*
 * test_vae_tiled.c — vae_decode_tiled against the untiled vae_decode on the sd-tiny and
 * sdxl-tiny VAEs (diffusers' AutoencoderKL configs with tiny channel counts): latents that fit
 * one tile decode bit for bit the same; a 64x96 latent image in 2x3 overlapping tiles (the
 * default's proportions: tiles of at most 40 latents, 25% overlap) stays
 * within TILED_MAX_ERR / TILED_MEAN_ERR of the untiled image; bad tile
 * arguments and the pipeline's vae_tile are refused with messages that name them.
 */
#include <math.h>

#include "core/error.h"
#include "sd/components.h"
#include "sd/pipeline.h"
#include "test.h"

/* Budgets, as fractions of the untiled image's largest |value| (random weights: the tiny
 * decoders' raw output spans about +-5..9, not [-1, 1]). A tile differs from the whole image
 * in what GroupNorm and the mid-block attention see (per-tile statistics) and in the zero
 * padding at its edges, as in diffusers' tiled_decode; with random weights the worst pixels
 * (extreme values near the image's corners) move a lot. Measured here: mean 1.4% / 2.3%, 99th
 * percentile 8.9% / 14.7%, max 40% / 72% (sd-tiny / sdxl-tiny). The blend ramps make the
 * difference change gradually across each overlap instead of stepping at a tile border. */
#define TILED_MEAN_ERR 0.03
#define TILED_P99_ERR 0.25
#define TILED_MAX_ERR 1.0

/* Latents with image-like structure (smooth shapes) plus per-pixel noise, at the spread the
 * decoder sees (latents / scaling_factor). */
static float *make_latents(int C, int h, int w, float scaling)
{
    float *z = malloc((size_t)C * h * w * sizeof *z);
    uint32_t s = 12345;
    for (int c = 0; c < C; c++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                s = s * 1664525u + 1013904223u;
                float noise = ((float)(s >> 8) / 16777216.0f - 0.5f) * 2.0f;
                float smooth = sinf(0.21f * x + 0.9f * c) * cosf(0.17f * y - 0.4f * c) +
                               0.5f * sinf(0.05f * (x + y) + c);
                z[((size_t)c * h + y) * w + x] = (0.8f * smooth + 0.6f * noise) / scaling;
            }
    return z;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static void compare(vae *m, const char *name)
{
    const int h = 64, w = 96, tile = 40, overlap = 10, f = vae_scale_factor(m);
    const int C = vae_latent_channels(m);
    const size_t H = (size_t)h * f, W = (size_t)w * f, n = 3 * H * W;
    float *z = make_latents(C, h, w, vae_scaling_factor(m));
    float *full = malloc(n * sizeof *full), *tiled = malloc(n * sizeof *tiled);
    CHECK_INT(vae_decode(m, z, 1, h, w, full), 0);
    CHECK_INT(vae_decode_tiled(m, z, 1, h, w, tile, overlap, tiled), 0);
    double worst = 0, sum = 0, amax = 0;
    float *err = malloc(n * sizeof *err);
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)tiled[i] - full[i]);
        err[i] = (float)d;
        worst = d > worst ? d : worst;
        sum += d;
        amax = fabs(full[i]) > amax ? fabs(full[i]) : amax;
    }
    if (getenv("M2P_TILE_DEBUG")) {
        double amax = 0;
        for (size_t i = 0; i < n; i++)
            amax = fabs(full[i]) > amax ? fabs(full[i]) : amax;
        printf("max |image| %.3f\ncolumn max err:", amax);
        for (size_t x = 0; x < W; x += 4) {
            double cm = 0;
            for (size_t y = 0; y < H; y++) {
                double d = fabs((double)tiled[y * W + x] - full[y * W + x]);
                cm = d > cm ? d : cm;
            }
            printf(" %zu:%.2f", x, cm);
        }
        printf("\n");
    }
    qsort(err, n, sizeof *err, cmp_float);
    double p99 = err[n * 99 / 100];
    free(err);
    printf("%s: %dx%d latents in tiles of <= %d (overlap >= %d): image max |x| %.2f; tiled vs "
           "untiled: mean err %.4f (%.2f%% of max |x|), 99th percentile %.4f (%.1f%%), max %.4f "
           "(%.1f%%)\n",
           name, h, w, tile, overlap, amax, sum / n, 100 * sum / n / amax, p99, 100 * p99 / amax,
           worst, 100 * worst / amax);
    CHECK(sum / n <= TILED_MEAN_ERR * amax);
    CHECK(p99 <= TILED_P99_ERR * amax);
    CHECK(worst <= TILED_MAX_ERR * amax);
    CHECK(worst > 0); /* it did tile: tiles cannot match GroupNorm over the whole image */

    /* one tile: exactly vae_decode */
    CHECK_INT(vae_decode_tiled(m, z, 1, 24, 16, tile, overlap, tiled), 0);
    CHECK_INT(vae_decode(m, z, 1, 24, 16, full), 0);
    CHECK(memcmp(tiled, full, 3 * 24 * 16 * (size_t)f * f * sizeof *full) == 0);

    /* the tile buffers and scratch it reports cover less than the whole image's scratch */
    CHECK(vae_decode_tiled_bytes(m, 1, 256, 256, 64, 16) < vae_scratch_bytes(m, 1, 256, 256));

    CHECK_INT(vae_decode_tiled(m, z, 1, h, w, 4, 1, tiled), M2P_EINVAL);
    CHECK(strstr(m2p_errmsg(), "tile") != NULL);
    CHECK_INT(vae_decode_tiled(m, z, 1, h, w, 24, 13, tiled), M2P_EINVAL);
    free(z);
    free(full);
    free(tiled);
}

static void test_model(const char *fixture)
{
    char dir[256];
    snprintf(dir, sizeof dir, "%s/model/vae", fixture);
    vae *m = NULL;
    int rc = vae_load(test_fixture(dir), NULL, NULL, &m);
    if (rc)
        fprintf(stderr, "%s\n", m2p_errmsg());
    CHECK_INT(rc, 0);
    if (m)
        compare(m, fixture);
    vae_free(m);
}

static void test_pipeline_param(void)
{
    m2p_model *m = NULL;
    CHECK_INT(m2p_model_load(test_fixture("sd-tiny/model"), NULL, &m), 0);
    if (!m)
        return;
    m2p_gen_params p = m2p_gen_default_params();
    p.prompt = "a poster";
    p.steps = 1;
    p.width = p.height = 64;
    m2p_image img;
    p.vae_tile = 4;
    CHECK_INT(m2p_generate(m, &p, &img), M2P_EINVAL);
    CHECK(strstr(m2p_errmsg(), "vae_tile") != NULL);
    p.vae_tile = -2;
    CHECK_INT(m2p_generate(m, &p, &img), M2P_EINVAL);
    /* 64x64 is one 8x8-latent tile of 8: tiled or not, the same image */
    p.vae_tile = 8;
    p.seed = 3;
    m2p_image a, b;
    CHECK_INT(m2p_generate(m, &p, &a), 0);
    p.vae_tile = -1;
    CHECK_INT(m2p_generate(m, &p, &b), 0);
    CHECK(a.rgb && b.rgb && memcmp(a.rgb, b.rgb, 64 * 64 * 3) == 0);
    m2p_image_free(&a);
    m2p_image_free(&b);
    m2p_model_free(m);
}

int main(void)
{
    test_model("sd-tiny");
    test_model("sdxl-tiny");
    test_pipeline_param();
    TEST_DONE();
}

/*
 * preview.c — cheap step previews and the final float -> RGB8 conversion.
 *  - Latent RGB: SD 1.x latents are close to a linear map of colour; the 4x3 factors are the
 *    ones community UIs use for SD 1.5 previews (ComfyUI latent_formats.SD15.latent_rgb_factors),
 *    giving a latent-size (H/8 x W/8) thumbnail for almost no work; SDXL's latent space has its
 *    own (ComfyUI latent_formats.SDXL.latent_rgb_factors).
 *  - TAESD: the tiny autoencoder (madebyollin/taesd) decodes raw latents to a full-size image
 *    for about 1/20 of the VAE's cost.
 *  - image_postprocess: diffusers VaeImageProcessor.postprocess ((x / 2 + 0.5).clamp(0, 1)) then
 *    numpy_to_pil ((x * 255).round(), numpy's round half to even), in float32.
 */
#include <math.h>
#include <stdlib.h>

#include "core/error.h"
#include "sd/pipeline.h"

static const float latent_rgb[2][4][3] = {
    {
        {0.3512f, 0.2297f, 0.3227f},
        {0.3250f, 0.4974f, 0.2350f},
        {-0.2829f, 0.1762f, 0.2721f},
        {-0.2120f, -0.2616f, -0.7177f},
    },
    {
        {0.3920f, 0.4054f, 0.4549f},
        {-0.2634f, -0.0196f, 0.0653f},
        {0.0568f, 0.1687f, -0.0755f},
        {-0.3112f, -0.2359f, -0.2076f},
    },
};

static uint8_t to_u8(float v)
{
    v = v / 2.0f + 0.5f;
    v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
    return (uint8_t)rintf(v * 255.0f);
}

void preview_latent_rgb(const float *z, int h, int w, int xl, uint8_t *rgb)
{
    const float(*f)[3] = latent_rgb[xl ? 1 : 0];
    size_t hw = (size_t)h * (size_t)w;
    for (size_t p = 0; p < hw; p++)
        for (int c = 0; c < 3; c++) {
            float v = 0.0f;
            for (int k = 0; k < 4; k++)
                v += z[k * hw + p] * f[k][c];
            rgb[p * 3 + (size_t)c] = to_u8(v);
        }
}

int preview_taesd(taesd *t, const float *z, int B, int h, int w, uint8_t *rgb)
{
    int H = 8 * h, W = 8 * w;
    size_t n = (size_t)3 * (size_t)H * (size_t)W;
    float *img = malloc(n * sizeof *img);
    if (!img)
        return m2p_error(M2P_ENOMEM, "preview: out of memory");
    int rc = 0;
    for (int b = 0; b < B && !rc; b++) {
        rc = taesd_decode(t, z + (size_t)b * 4 * (size_t)h * (size_t)w, 1, h, w, img);
        if (!rc)
            image_postprocess(img, H, W, NULL, rgb + (size_t)b * n);
    }
    free(img);
    return rc;
}

void image_postprocess(const float *x, int H, int W, float *raw, uint8_t *rgb)
{
    size_t hw = (size_t)H * (size_t)W;
    for (int c = 0; c < 3; c++)
        for (size_t p = 0; p < hw; p++) {
            float v = x[(size_t)c * hw + p] / 2.0f + 0.5f;
            v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
            if (raw)
                raw[(size_t)c * hw + p] = v;
            rgb[p * 3 + (size_t)c] = (uint8_t)rintf(v * 255.0f);
        }
}

/*
 * backend_ops.c — the CPU kernels of the backend interface that ops.h has no op for (see
 * backend_ops.h): PyTorch's nearest resize (F.interpolate mode='nearest': src index =
 * floor(dst * in / out) in float, clamped), as diffusers' Upsample2D does when a skip has an odd
 * size, CLIPTextEmbeddings' token + position lookup (transformers modeling_clip.py), and the
 * tiled VAE's weighted blend of overlapping tiles (diffusers tiled_decode's linear ramps, see
 * sd/vae.c). Moved here from src/sd (nn.c, clip_text.c, vae.c) unchanged, so the results are the
 * same bits.
 */
#include "tensor/cpu/backend_ops.h"

#include <stddef.h>
#include <string.h>

void op_resize_nearest(const float *x, int B, int H, int W, int C, int Ho, int Wo, float *y)
{
    float sh = (float)H / (float)Ho, sw = (float)W / (float)Wo;
    for (int b = 0; b < B; b++)
        for (int oy = 0; oy < Ho; oy++) {
            int iy = (int)((float)oy * sh);
            if (iy > H - 1)
                iy = H - 1;
            for (int ox = 0; ox < Wo; ox++) {
                int ix = (int)((float)ox * sw);
                if (ix > W - 1)
                    ix = W - 1;
                memcpy(y + (((size_t)b * Ho + oy) * Wo + ox) * C,
                       x + (((size_t)b * H + iy) * W + ix) * C, (size_t)C * sizeof *y);
            }
        }
}

void op_embed(const int32_t *ids, int B, int L, const float *tok, const float *pos, int C,
              float *out)
{
    for (int b = 0; b < B; b++)
        for (int t = 0; t < L; t++) {
            const float *te = tok + (size_t)ids[b * L + t] * C;
            const float *pe = pos + (size_t)t * C;
            float *o = out + ((size_t)b * L + t) * C;
            for (int c = 0; c < C; c++)
                o[c] = te[c] + pe[c];
        }
}

void op_blend_tile(float *out, float *wsum, const float *tile, int BC, int H, int W, int Y0, int X0,
                   int TH, int TW, const float *wy, const float *wx)
{
    (void)H;
    for (size_t y = 0; y < (size_t)TH; y++)
        for (size_t x = 0; x < (size_t)TW; x++)
            wsum[(Y0 + y) * W + X0 + x] += wy[y] * wx[x];
    for (size_t bc = 0; bc < (size_t)BC; bc++)
        for (size_t y = 0; y < (size_t)TH; y++) {
            float *o = out + (bc * H + Y0 + y) * W + X0;
            const float *t = tile + (bc * TH + y) * TW;
            for (size_t x = 0; x < (size_t)TW; x++)
                o[x] += wy[y] * wx[x] * t[x];
        }
}

void op_blend_finish(float *out, const float *wsum, int BC, size_t HW)
{
    for (size_t bc = 0; bc < (size_t)BC; bc++)
        for (size_t i = 0; i < HW; i++)
            out[bc * HW + i] /= wsum[i];
}

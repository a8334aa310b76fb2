/*
 * backend_ops.c — the CPU kernels of the backend interface that ops.h has no op for (see
 * backend_ops.h): PyTorch's nearest resize (F.interpolate mode='nearest': src index =
 * floor(dst * in / out) in float, clamped), as diffusers' Upsample2D does when a skip has an odd
 * size, and CLIPTextEmbeddings' token + position lookup (transformers modeling_clip.py). Moved
 * here from src/sd (nn.c, clip_text.c) unchanged, so the results are the same bits.
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

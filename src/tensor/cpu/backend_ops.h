/*
 * backend_ops.h — CPU kernels the backend interface (tensor/backend.h) has beyond ops.h: the
 * moves the SD networks once did in their own loops (nearest resize, CLIP's embedding lookup,
 * the tiled VAE's blending).
 * Host memory in and out, like ops.h; used by cpu/backend_cpu.c.
 */
#ifndef M2P_TENSOR_CPU_BACKEND_OPS_H
#define M2P_TENSOR_CPU_BACKEND_OPS_H

#include <stddef.h>
#include <stdint.h>

/* Nearest resize NHWC (PyTorch 'nearest': src = min(floor(dst * in/out), in-1)). */
void op_resize_nearest(const float *x, int B, int H, int W, int C, int Ho, int Wo, float *y);
/* out[b, t, :] = tok[ids[b*L + t], :] + pos[t, :] over C channels. */
void op_embed(const int32_t *ids, int B, int L, const float *tok, const float *pos, int C,
              float *out);
/* out [BC, H, W] += wy[y] * wx[x] * tile [BC, TH, TW] at (Y0, X0); wsum [H, W] += wy[y] * wx[x]. */
void op_blend_tile(float *out, float *wsum, const float *tile, int BC, int H, int W, int Y0, int X0,
                   int TH, int TW, const float *wy, const float *wx);
/* out [BC, HW] /= wsum [HW]. */
void op_blend_finish(float *out, const float *wsum, int BC, size_t HW);

#endif

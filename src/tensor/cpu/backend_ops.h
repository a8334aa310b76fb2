/*
 * backend_ops.h — CPU kernels the backend interface (tensor/backend.h) has beyond ops.h: the
 * moves the SD networks once did in their own loops (nearest resize, CLIP's embedding lookup).
 * Host memory in and out, like ops.h; used by cpu/backend_cpu.c.
 */
#ifndef M2P_TENSOR_CPU_BACKEND_OPS_H
#define M2P_TENSOR_CPU_BACKEND_OPS_H

#include <stdint.h>

/* Nearest resize NHWC (PyTorch 'nearest': src = min(floor(dst * in/out), in-1)). */
void op_resize_nearest(const float *x, int B, int H, int W, int C, int Ho, int Wo, float *y);
/* out[b, t, :] = tok[ids[b*L + t], :] + pos[t, :] over C channels. */
void op_embed(const int32_t *ids, int B, int L, const float *tok, const float *pos, int C,
              float *out);

#endif

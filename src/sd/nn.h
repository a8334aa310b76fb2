/*
 * nn.h — building blocks shared by the SD networks (clip_text, unet, vae, taesd): strict weight
 * loading into the backend's conv / linear objects, norm parameters in backend memory,
 * diffusers' ResnetBlock2D, a reusable arena of backend memory and the NCHW debug taps.
 * Activations are NHWC float32 in the backend's memory (tensor/backend.h): the networks only
 * call the backend on them and move host arrays in and out at their entry points.
 */
#ifndef M2P_SD_NN_H
#define M2P_SD_NN_H

#include "model/weights.h"
#include "sd/components.h"
#include "tensor/backend.h"

#include <stddef.h>

/* ---- loading ----------------------------------------------------------------------------- */
/* "<prefix>.weight" / "<prefix>.bias" [C] copied into backend memory (owned). */
typedef struct nn_norm {
    const m2p_backend *be;
    float *gamma, *beta;
    int C;
} nn_norm;
/* Tensor `name` of exactly that shape, copied into a buffer of be (the caller frees it with
 * be->free). */
int nn_get_backend(const m2p_backend *be, weights *w, const char *name, int ndim,
                   const int64_t *shape, float **out);
int nn_load_norm(const m2p_backend *be, weights *w, const char *prefix, int C, nn_norm *out);
void nn_norm_free(nn_norm *n);

/* "<prefix>.weight" [cout, cin, k, k] (+ "<prefix>.bias" [cout] when flags has NN_CONV_BIAS).
 * NN_CONV_UPSAMPLED: the conv reads a 2x upsample (backend.h BK_CONV_UPSAMPLED). */
enum { NN_CONV_BIAS = 1, NN_CONV_UPSAMPLED = 2 };
int nn_load_conv(const m2p_backend *be, weights *w, const char *prefix, int cin, int cout, int k,
                 int stride, int pad, int flags, int dtype, bk_conv **out);
/* "<prefix>.weight" [out, in] (or [out, in, 1, 1] when conv1x1) (+ bias [out]). */
int nn_load_linear(const m2p_backend *be, weights *w, const char *prefix, int in, int nout,
                   int bias, int conv1x1, int dtype, bk_linear **out);
/* Several linears over the same input fused into one (rows stacked in order: q|k|v), so one
 * matmul produces [rows, sum(outs)]. Each prefix is "<name>" with ".weight" (+ ".bias"). */
int nn_load_linear_cat(const m2p_backend *be, weights *w, const char *const *prefixes, int n,
                       int in, const int *outs, int bias, int conv1x1, int dtype, bk_linear **out);

/* ---- ResnetBlock2D (diffusers resnet.py) ------------------------------------------------ */
/* out = (conv_shortcut(x) | x) + conv2(silu(norm2(conv1(silu(norm1(x))) + temb_proj(temb))))
 * divided by output_scale_factor. */
typedef struct nn_resnet {
    const m2p_backend *be;
    int cin, cout, groups, temb_ch;
    int bf16; /* bf16 ops: the hidden activation (conv1 -> norm2) stays bf16 */
    float eps, out_scale;
    nn_norm norm1, norm2;
    bk_conv *conv1, *conv2, *shortcut; /* shortcut NULL when cin == cout */
    bk_linear *temb_proj;              /* NULL without a time embedding */
} nn_resnet;
int nn_resnet_load(const m2p_backend *be, weights *w, const char *prefix, int cin, int cout,
                   int temb_ch, int groups, float eps, float out_scale, int dtype, nn_resnet *r);
void nn_resnet_free(nn_resnet *r);
/* Frees n resnets and the malloc'd array that holds them (NULL is fine). */
void nn_resnets_free(nn_resnet *r, int n);
/* x [B,H,W,cin] -> out [B,H,W,cout]. out may equal x when cin == cout, and may equal t1
 * (never t2). temb_act [B, temb_ch]
 * is SiLU(temb) (or NULL without temb). Scratch: t1 >= B*H*W*cin, t2 >= B*H*W*cout,
 * tb >= B*cout floats. bf16 ops: conv1 writes bf16 into t2 (backend.h conv_forward_bf16) and
 * norm2 reads it with the time embedding added (BK_PRE_GROUPNORM_BF16): no f32 copy of the
 * hidden activation and no separate add pass. */
int nn_resnet_forward(nn_resnet *r, const float *x, int B, int H, int W, const float *temb_act,
                      float *out, float *t1, float *t2, float *tb);

/* ---- scratch ----------------------------------------------------------------------------- */
/* One buffer of backend memory (be->alloc): grows only; allocations are 64-byte aligned bumps,
 * reset per forward. Nothing in it outlives one forward call, so the networks of a pipeline
 * share one arena (components.h *_set_arena): the UNet's scratch is the VAE's, and peak memory
 * is the weights plus the larger of the two. be is set by whoever owns the arena. */
typedef struct nn_arena {
    const m2p_backend *be;
    float *base;
    size_t cap, used; /* floats */
} nn_arena;
#define NN_ALIGN_FLOATS(n) (((n) + 15) & ~(size_t)15)
int nn_arena_reserve(nn_arena *a, size_t floats);
float *nn_arena_alloc(nn_arena *a, size_t floats);
void nn_arena_free(nn_arena *a);

/* y = conv(SiLU(GroupNorm(x))), a decoder's norm_out + conv_out: fused (the GroupNorm writes the
 * conv's input, the backend's conv_forward_pre) unless a tap wants the GroupNorm's output, which it
 * gets under tap_name. t1 holds B*H*W*C floats of scratch. */
int nn_norm_out_conv(const m2p_backend *be, bk_conv *conv, const nn_norm *norm, int groups,
                     float eps, const float *x, int B, int H, int W, int C, sd_tap tap,
                     void *tap_ud, const char *tap_name, float *t1, float *y);

/* ---- taps -------------------------------------------------------------------------------- */
/* NHWC feature map (backend memory) -> NCHW host copy -> tap(name, [B,C,H,W]). No-op when tap
 * is NULL; skipped when the copies cannot be allocated (a debug aid, not a result). */
void nn_tap_nhwc(const m2p_backend *be, sd_tap tap, void *ud, const char *name, const float *x,
                 int B, int H, int W, int C);
/* Tensor (backend memory) already in its boundary layout ([B,L,C] or [B,C]): a host copy. */
void nn_tap_raw(const m2p_backend *be, sd_tap tap, void *ud, const char *name, const float *x,
                int ndim, const int64_t *shape);

/* "<a>.<b>" into buf (names of nested weights). */
const char *nn_name(char *buf, size_t n, const char *a, const char *b);

#endif

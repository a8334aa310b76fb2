/*
 * unet_blocks.h — the UNet's Transformer2DModel (continuous input, diffusers
 * transformer_2d.py) with its BasicTransformerBlocks (attention.py), on NHWC feature maps:
 * a [B, H, W, C] map is directly the [B, HW, C] token matrix.
 */
#ifndef M2P_SD_UNET_BLOCKS_H
#define M2P_SD_UNET_BLOCKS_H

#include "sd/nn.h"

typedef struct unet_tblock {
    nn_norm norm1, norm2, norm3;
    bk_linear *qkv, *out1;      /* attn1: to_q|to_k|to_v fused, to_out.0 */
    bk_linear *q2, *kv2, *out2; /* attn2: to_q, to_k|to_v over the context, to_out.0 */
    bk_linear *ff1, *ff2;       /* ff.net.0.proj (GEGLU, -> 2*ff), ff.net.2 */
} unet_tblock;

typedef struct unet_transformer {
    const m2p_backend *be;
    int C, inner, heads, dh, depth, groups, ctx_dim, ff;
    int dtype;    /* M2P_DTYPE_BF16: bf16 q/k/v into the backend's attention_bf16io (CPU: AMX) */
    int ff_chunk; /* bf16: rows per feed-forward pass once there are UNET_FF_CHUNK_FROM (0: all) */
    nn_norm norm;
    bk_linear *proj_in, *proj_out; /* 1x1 convs or linears: the same matmul in NHWC */
    unet_tblock *blk;
} unet_transformer;

/* In bf16 mode a forward over UNET_FF_CHUNK_FROM rows or more (SD's 64x64 level at any batch,
 * its 32x32 level from batch 4) runs LayerNorm -> ff1 -> GEGLU -> ff2 UNET_FF_CHUNK rows at a
 * time, so ff1's bf16 output (512 x 2 ff) is still in cache when GEGLU reads it; the rows are
 * independent, so the numbers are the same. */
#define UNET_FF_CHUNK 512
#define UNET_FF_CHUNK_FROM 4096

/* prefix e.g. "down_blocks.0.attentions.1"; proj_in/out are linears when linear_proj, else
 * 1x1 convs ([out, in, 1, 1]). */
int unet_transformer_load(const m2p_backend *be, weights *w, const char *prefix, int C, int heads,
                          int depth, int ctx_dim, int groups, int linear_proj, int dtype,
                          unet_transformer *t);
void unet_transformer_free(unet_transformer *t);
/* Floats of scratch a forward over `rows` = B*HW tokens with B*ctx_len context rows needs. */
size_t unet_transformer_scratch(const unet_transformer *t, size_t rows, size_t ctx_rows);
/* x [B, HW, C] -> x + transformer(x) in place. ctx [ctx_b, ctx_len, ctx_dim]: ctx_b divides B,
 * and B / ctx_b images in a row share a context (its keys and values are computed once). All
 * backend memory. */
int unet_transformer_forward(unet_transformer *t, float *x, int B, int HW, const float *ctx,
                             int ctx_b, int ctx_len, float *scratch);

#endif

/*
 * unet_blocks.c — Transformer2DModel for SD 1.x UNets (diffusers transformer_2d.py, continuous
 * input): GroupNorm (eps 1e-6), proj_in, BasicTransformerBlock x depth (LayerNorm -> self-
 * attention -> +, LayerNorm -> cross-attention over the text context -> +, LayerNorm -> GEGLU
 * feed-forward -> +; LayerNorm eps 1e-5, attention scale head_dim^-0.5), proj_out, residual.
 * Residual adds are fused into the output linears; q/k/v of self-attention are one matmul; the
 * GroupNorm, LayerNorms and GEGLU are the pre-op of the linear that reads them (backend.h
 * bk_pre). In bf16 mode the linears whose only reader is a bf16 kernel write bf16
 * (linear_forward_bf16): q/k/v, which the attention reads as bf16 (whose products run on bf16),
 * and ff1, which GEGLU reads (BK_PRE_GEGLU_BF16); the attention writes bf16 too
 * (attention_bf16io), which to_out reads as it is (linear_forward_bf16in). On big maps the
 * bf16 feed-forward runs in row chunks (UNET_FF_CHUNK in unet_blocks.h).
 */
#include "sd/unet_blocks.h"

#include "core/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TR_GN_EPS 1e-6f /* Transformer2DModel: GroupNorm(eps=1e-6) */
#define TR_LN_EPS 1e-5f /* BasicTransformerBlock: norm_eps default 1e-5 */
#define TR_FF_MULT 4    /* FeedForward(mult=4) */

static int load_block(weights *w, const char *pre, unet_transformer *t, int dtype, unet_tblock *b)
{
    const m2p_backend *be = t->be;
    char nm[256], q[256], k[256], v[256];
    int I = t->inner;
    int rc = nn_load_norm(be, w, nn_name(nm, sizeof nm, pre, "norm1"), I, &b->norm1);
    if (rc)
        return rc;
    snprintf(q, sizeof q, "%s.attn1.to_q", pre);
    snprintf(k, sizeof k, "%s.attn1.to_k", pre);
    snprintf(v, sizeof v, "%s.attn1.to_v", pre);
    const char *qkv[3] = {q, k, v};
    int outs[3] = {I, I, I};
    if ((rc = nn_load_linear_cat(be, w, qkv, 3, I, outs, 0, 0, dtype, &b->qkv)) ||
        (rc = nn_load_linear(be, w, nn_name(nm, sizeof nm, pre, "attn1.to_out.0"), I, I, 1, 0,
                             dtype, &b->out1)) ||
        (rc = nn_load_norm(be, w, nn_name(nm, sizeof nm, pre, "norm2"), I, &b->norm2)) ||
        (rc = nn_load_linear(be, w, nn_name(nm, sizeof nm, pre, "attn2.to_q"), I, I, 0, 0, dtype,
                             &b->q2)))
        return rc;
    snprintf(k, sizeof k, "%s.attn2.to_k", pre);
    snprintf(v, sizeof v, "%s.attn2.to_v", pre);
    const char *kv[2] = {k, v};
    if ((rc = nn_load_linear_cat(be, w, kv, 2, t->ctx_dim, outs, 0, 0, dtype, &b->kv2)) ||
        (rc = nn_load_linear(be, w, nn_name(nm, sizeof nm, pre, "attn2.to_out.0"), I, I, 1, 0,
                             dtype, &b->out2)) ||
        (rc = nn_load_norm(be, w, nn_name(nm, sizeof nm, pre, "norm3"), I, &b->norm3)) ||
        (rc = nn_load_linear(be, w, nn_name(nm, sizeof nm, pre, "ff.net.0.proj"), I, 2 * t->ff, 1,
                             0, dtype, &b->ff1)) ||
        (rc = nn_load_linear(be, w, nn_name(nm, sizeof nm, pre, "ff.net.2"), t->ff, I, 1, 0, dtype,
                             &b->ff2)))
        return rc;
    return 0;
}

int unet_transformer_load(const m2p_backend *be, weights *w, const char *prefix, int C, int heads,
                          int depth, int ctx_dim, int groups, int linear_proj, int dtype,
                          unet_transformer *t)
{
    char nm[256];
    memset(t, 0, sizeof *t);
    t->be = be;
    if (heads <= 0 || C % heads || C % groups || depth <= 0)
        return m2p_error(M2P_EFORMAT, "%s: %d channels do not split into %d heads / %d groups",
                         prefix, C, heads, groups);
    t->C = C;
    t->heads = heads;
    t->dh = C / heads; /* Transformer2DModel(num_heads, in_channels // num_heads) */
    t->inner = heads * t->dh;
    t->depth = depth;
    t->groups = groups;
    t->ctx_dim = ctx_dim;
    t->ff = t->inner * TR_FF_MULT;
    t->dtype = dtype;
    t->ff_chunk = UNET_FF_CHUNK;
    int rc = nn_load_norm(be, w, nn_name(nm, sizeof nm, prefix, "norm"), C, &t->norm);
    if (!rc)
        rc = nn_load_linear(be, w, nn_name(nm, sizeof nm, prefix, "proj_in"), C, t->inner, 1,
                            !linear_proj, dtype, &t->proj_in);
    if (!rc)
        rc = nn_load_linear(be, w, nn_name(nm, sizeof nm, prefix, "proj_out"), t->inner, C, 1,
                            !linear_proj, dtype, &t->proj_out);
    if (!rc && !(t->blk = calloc((size_t)depth, sizeof *t->blk)))
        rc = m2p_error(M2P_ENOMEM, "out of memory loading %s", prefix);
    for (int d = 0; !rc && d < depth; d++) {
        char pre[160];
        snprintf(pre, sizeof pre, "%s.transformer_blocks.%d", prefix, d);
        rc = load_block(w, pre, t, dtype, &t->blk[d]);
    }
    if (rc)
        unet_transformer_free(t);
    return rc;
}

void unet_transformer_free(unet_transformer *t)
{
    const m2p_backend *be = t->be;
    nn_norm_free(&t->norm);
    if (!be) { /* never loaded: nothing of the backend's */
        memset(t, 0, sizeof *t);
        return;
    }
    be->linear_free(be, t->proj_in);
    be->linear_free(be, t->proj_out);
    if (t->blk) {
        for (int d = 0; d < t->depth; d++) {
            unet_tblock *b = &t->blk[d];
            nn_norm_free(&b->norm1);
            nn_norm_free(&b->norm2);
            nn_norm_free(&b->norm3);
            be->linear_free(be, b->qkv);
            be->linear_free(be, b->out1);
            be->linear_free(be, b->q2);
            be->linear_free(be, b->kv2);
            be->linear_free(be, b->out2);
            be->linear_free(be, b->ff1);
            be->linear_free(be, b->ff2);
        }
        free(t->blk);
    }
    memset(t, 0, sizeof *t);
}

/* Scratch layout: n [rows, max(C, inner)] | h [rows, inner] | u [rows, max(4 inner, 3 ff)]
 * (qkv + attention out, or GEGLU in + out) | kv [ctx_rows, 2 inner]. */
static size_t max3(size_t a, size_t b, size_t c)
{
    size_t m = a > b ? a : b;
    return m > c ? m : c;
}

size_t unet_transformer_scratch(const unet_transformer *t, size_t rows, size_t ctx_rows)
{
    size_t I = (size_t)t->inner;
    return NN_ALIGN_FLOATS(rows * ((size_t)t->C > I ? (size_t)t->C : I)) +
           NN_ALIGN_FLOATS(rows * I) + NN_ALIGN_FLOATS(rows * max3(4 * I, 3 * (size_t)t->ff, 0)) +
           NN_ALIGN_FLOATS(ctx_rows * 2 * I);
}

int unet_transformer_forward(unet_transformer *t, float *x, int B, int HW, const float *ctx,
                             int ctx_b, int ctx_len, float *scratch)
{
    if (ctx_b < 1 || B % ctx_b)
        return m2p_error(M2P_EINVAL, "UNet transformer: %d contexts for %d images", ctx_b, B);
    const int I = t->inner, rows = B * HW, crow = ctx_b * ctx_len;
    /* the cross-attention runs one batch per context, over the queries of all its images */
    const int xb = ctx_b, xq = rows / ctx_b;
    const size_t R = (size_t)rows;
    float *n = scratch;
    float *h = n + NN_ALIGN_FLOATS(R * (size_t)(t->C > I ? t->C : I));
    float *u = h + NN_ALIGN_FLOATS(R * I);
    float *kv = u + NN_ALIGN_FLOATS(R * max3(4 * (size_t)I, 3 * (size_t)t->ff, 0));
    const float scale = 1.0f / sqrtf((float)t->dh);
    const m2p_backend *be = t->be;
    /* bf16 mode: the q/k/v and ff1 outputs, which only the attention and GEGLU read, stay bf16
     * (backend.h linear_forward_bf16) */
    const int bf16 = t->dtype == M2P_DTYPE_BF16;
    int rc;

    /* norms and GEGLU go in front of the linear that reads them (backend.h bk_pre: in bf16 mode
     * they write its bf16 input; n and g hold their f32 results otherwise) */
    bk_pre gn = {BK_PRE_GROUPNORM, t->groups, TR_GN_EPS, t->norm.gamma, t->norm.beta, 0, NULL};
    if ((rc = be->linear_forward_pre(be, t->proj_in, &gn, x, B, HW, n, h, NULL)))
        return rc;
    for (int d = 0; d < t->depth; d++) {
        unet_tblock *b = &t->blk[d];
        float *att = u + R * 3 * I;
        bk_pre ln1 = {BK_PRE_LAYERNORM, 0, TR_LN_EPS, b->norm1.gamma, b->norm1.beta, 0, NULL};
        bk_pre ln2 = {BK_PRE_LAYERNORM, 0, TR_LN_EPS, b->norm2.gamma, b->norm2.beta, 0, NULL};
        bk_pre ln3 = {BK_PRE_LAYERNORM, 0, TR_LN_EPS, b->norm3.gamma, b->norm3.beta, 0, NULL};
        bk_pre geglu = {BK_PRE_GEGLU, 0, 0.0f, NULL, NULL, 0, NULL};
        bk_pre geglu16 = {BK_PRE_GEGLU_BF16, 0, 0.0f, NULL, NULL, 0, NULL};
        /* self-attention (bf16 mode: q/k/v stay bf16 from the linear to the attention, and its
         * output to to_out) */
        if (bf16) {
            if ((rc = be->linear_forward_bf16(be, b->qkv, &ln1, h, 1, rows, n, u)) ||
                (rc = be->attention_bf16io(be, u, 0, 3 * I, u, (size_t)I, 2 * (size_t)I, 3 * I, B,
                                           HW, HW, t->heads, t->dh, scale, 0, att)) ||
                (rc = be->linear_forward_bf16in(be, b->out1, att, rows, h, h)))
                return rc;
        } else if ((rc = be->linear_forward_pre(be, b->qkv, &ln1, h, 1, rows, n, u, NULL)) ||
                   (rc = be->attention(be, u, 3 * I, u + I, u + 2 * I, 3 * I, B, HW, HW, t->heads,
                                       t->dh, scale, 0, att)) ||
                   (rc = be->linear_forward(be, b->out1, att, rows, h, h)))
            return rc;
        /* cross-attention over the text context */
        att = u + R * I;
        if (bf16) {
            if ((rc = be->linear_forward_bf16(be, b->q2, &ln2, h, 1, rows, n, u)) ||
                (rc = be->linear_forward_bf16(be, b->kv2, NULL, ctx, 1, crow, NULL, kv)) ||
                (rc = be->attention_bf16io(be, u, 0, I, kv, 0, (size_t)I, 2 * I, xb, xq, ctx_len,
                                           t->heads, t->dh, scale, 0, att)) ||
                (rc = be->linear_forward_bf16in(be, b->out2, att, rows, h, h)))
                return rc;
        } else if ((rc = be->linear_forward_pre(be, b->q2, &ln2, h, 1, rows, n, u, NULL)) ||
                   (rc = be->linear_forward(be, b->kv2, ctx, crow, kv, NULL)) ||
                   (rc = be->attention(be, u, I, kv, kv + I, 2 * I, xb, xq, ctx_len, t->heads,
                                       t->dh, scale, 0, att)) ||
                   (rc = be->linear_forward(be, b->out2, att, rows, h, h)))
            return rc;
        /* GEGLU feed-forward (bf16 mode: ff1 writes bf16 into u, which only GEGLU reads) */
        float *g = u + R * 2 * t->ff;
        if (bf16) {
            const int ch = t->ff_chunk > 0 && rows >= UNET_FF_CHUNK_FROM ? t->ff_chunk : rows;
            for (int r0 = 0; r0 < rows; r0 += ch) {
                const int nr = rows - r0 < ch ? rows - r0 : ch;
                float *hr = h + (size_t)r0 * I;
                if ((rc = be->linear_forward_bf16(be, b->ff1, &ln3, hr, 1, nr, n, u)) ||
                    (rc = be->linear_forward_pre(be, b->ff2, &geglu16, u, 1, nr, g, hr, hr)))
                    return rc;
            }
        } else if ((rc = be->linear_forward_pre(be, b->ff1, &ln3, h, 1, rows, n, u, NULL)) ||
                   (rc = be->linear_forward_pre(be, b->ff2, &geglu, u, 1, rows, g, h, h)))
            return rc;
    }
    return be->linear_forward(be, t->proj_out, h, rows, x, x);
}

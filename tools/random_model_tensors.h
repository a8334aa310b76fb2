/*
 * random_model_tensors.h — the tensor list (name, shape, kind of init) of each part of a
 * diffusers SD 1.5 folder, derived from its config.json like the Python modules build their
 * parameters: diffusers 0.26 UNet2DConditionModel and AutoencoderKL, transformers 4.37
 * CLIPTextModel. make-random-model fills and writes them. Header-only, included by
 * tools/make-random-model.c alone.
 */
#ifndef M2P_TOOLS_RANDOM_MODEL_TENSORS_H
#define M2P_TOOLS_RANDOM_MODEL_TENSORS_H

#include "core/error.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { K_WEIGHT, K_BIAS, K_NORM_W, K_NORM_B, K_EMBED };

typedef struct {
    char *name;
    int ndim;
    int64_t shape[4];
    int kind;
} tspec;

typedef struct {
    tspec *v;
    int n, cap;
} tlist;

static void add(tlist *l, int kind, int ndim, const int64_t *shape, const char *fmt, ...)
    M2P_PRINTF(5, 6);

static void add(tlist *l, int kind, int ndim, const int64_t *shape, const char *fmt, ...)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->v = realloc(l->v, (size_t)l->cap * sizeof *l->v);
        if (!l->v) {
            fprintf(stderr, "make-random-model: out of memory\n");
            exit(1);
        }
    }
    tspec *t = &l->v[l->n++];
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&t->name, fmt, ap) < 0)
        exit(1);
    va_end(ap);
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    t->kind = kind;
}

static void linear(tlist *l, const char *p, int64_t out, int64_t in, int bias)
{
    int64_t w[2] = {out, in};
    add(l, K_WEIGHT, 2, w, "%s.weight", p);
    if (bias)
        add(l, K_BIAS, 1, &out, "%s.bias", p);
}

static void conv(tlist *l, const char *p, int64_t out, int64_t in, int64_t k)
{
    int64_t w[4] = {out, in, k, k};
    add(l, K_WEIGHT, 4, w, "%s.weight", p);
    add(l, K_BIAS, 1, &out, "%s.bias", p);
}

static void norm(tlist *l, const char *p, int64_t c)
{
    add(l, K_NORM_W, 1, &c, "%s.weight", p);
    add(l, K_NORM_B, 1, &c, "%s.bias", p);
}

static char *cat(const char *fmt, ...) M2P_PRINTF(1, 2);
static char *cat(const char *fmt, ...)
{
    static char buf[8][512];
    static int k;
    char *b = buf[k++ & 7];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b, 512, fmt, ap);
    va_end(ap);
    return b;
}

/* The four projections of one attention: q and out c -> c, k and v kv_in -> c; q, k and v carry
 * a bias when qkv_bias, out always does. */
static const char *const DIFFUSERS_QKVO[4] = {"to_q", "to_k", "to_v", "to_out.0"};
static const char *const CLIP_QKVO[4] = {"q_proj", "k_proj", "v_proj", "out_proj"};

static void attention(tlist *l, const char *prefix, const char *const names[4], int64_t c,
                      int64_t kv_in, int qkv_bias)
{
    char p[512]; /* the prefix may live in cat()'s rotating buffers */
    snprintf(p, sizeof p, "%s", prefix);
    linear(l, cat("%s.%s", p, names[0]), c, c, qkv_bias);
    linear(l, cat("%s.%s", p, names[1]), c, kv_in, qkv_bias);
    linear(l, cat("%s.%s", p, names[2]), c, kv_in, qkv_bias);
    linear(l, cat("%s.%s", p, names[3]), c, c, 1);
}

/* diffusers ResnetBlock2D; temb 0 = no time embedding (VAE). */
static void resnet(tlist *l, const char *prefix, int64_t in, int64_t out, int64_t temb)
{
    char p[512]; /* the prefix may live in cat()'s rotating buffers */
    snprintf(p, sizeof p, "%s", prefix);
    norm(l, cat("%s.norm1", p), in);
    conv(l, cat("%s.conv1", p), out, in, 3);
    if (temb)
        linear(l, cat("%s.time_emb_proj", p), out, temb, 1);
    norm(l, cat("%s.norm2", p), out);
    conv(l, cat("%s.conv2", p), out, out, 3);
    if (in != out)
        conv(l, cat("%s.conv_shortcut", p), out, in, 1);
}

/* diffusers Transformer2DModel with one BasicTransformerBlock (self-attn, cross-attn, GEGLU). */
static void transformer(tlist *l, const char *prefix, int64_t c, int64_t cross, int linear_proj,
                        int layers)
{
    char p[512];
    snprintf(p, sizeof p, "%s", prefix);
    norm(l, cat("%s.norm", p), c);
    if (linear_proj)
        linear(l, cat("%s.proj_in", p), c, c, 1);
    else
        conv(l, cat("%s.proj_in", p), c, c, 1);
    for (int t = 0; t < layers; t++) {
        char tb[560];
        snprintf(tb, sizeof tb, "%s.transformer_blocks.%d", p, t);
        norm(l, cat("%s.norm1", tb), c);
        attention(l, cat("%s.attn1", tb), DIFFUSERS_QKVO, c, c, 0);
        norm(l, cat("%s.norm2", tb), c);
        attention(l, cat("%s.attn2", tb), DIFFUSERS_QKVO, c, cross, 0);
        norm(l, cat("%s.norm3", tb), c);
        linear(l, cat("%s.ff.net.0.proj", tb), 8 * c, c, 1);
        linear(l, cat("%s.ff.net.2", tb), c, 4 * c, 1);
    }
    if (linear_proj)
        linear(l, cat("%s.proj_out", p), c, c, 1);
    else
        conv(l, cat("%s.proj_out", p), c, c, 1);
}

static int jint(json_t *o, const char *k, int def)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (int)json_integer_value(v) : def;
}

static int jints(json_t *o, const char *k, int64_t *out, int max)
{
    json_t *a = json_object_get(o, k);
    if (!json_is_array(a))
        return -1;
    int n = (int)json_array_size(a);
    if (n > max)
        return -1;
    for (int i = 0; i < n; i++)
        out[i] = json_integer_value(json_array_get(a, i));
    return n;
}

static int starts(json_t *arr, int i, const char *prefix)
{
    const char *s = json_string_value(json_array_get(arr, i));
    return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

static int unet_tensors(json_t *c, tlist *l)
{
    int64_t ch[8];
    int nb = jints(c, "block_out_channels", ch, 8);
    if (nb < 1)
        return m2p_error(M2P_EFORMAT, "unet config: block_out_channels missing");
    int lpb = jint(c, "layers_per_block", 2), in_ch = jint(c, "in_channels", 4),
        out_ch = jint(c, "out_channels", 4), cross = jint(c, "cross_attention_dim", 768),
        cond = jint(c, "time_cond_proj_dim", 0);
    /* transformer_layers_per_block: one number, or one per level (SDXL: [1, 2, 10]) */
    int64_t tl[8];
    if (jints(c, "transformer_layers_per_block", tl, 8) != nb)
        for (int i = 0; i < nb; i++)
            tl[i] = jint(c, "transformer_layers_per_block", 1);
    int lin = json_is_true(json_object_get(c, "use_linear_projection"));
    json_t *down = json_object_get(c, "down_block_types"),
           *up = json_object_get(c, "up_block_types");
    if (json_array_size(down) != (size_t)nb || json_array_size(up) != (size_t)nb)
        return m2p_error(M2P_EFORMAT, "unet config: block type lists do not match channels");
    int64_t temb = 4 * ch[0];
    conv(l, "conv_in", ch[0], in_ch, jint(c, "conv_in_kernel", 3));
    linear(l, "time_embedding.linear_1", temb, ch[0], 1);
    linear(l, "time_embedding.linear_2", temb, temb, 1);
    if (cond)
        linear(l, "time_embedding.cond_proj", ch[0], cond, 0);
    /* SDXL's addition_embed_type "text_time": pooled text_embeds + sinusoidal time ids */
    const char *add_type = json_string_value(json_object_get(c, "addition_embed_type"));
    if (add_type && !strcmp(add_type, "text_time")) {
        int pin = jint(c, "projection_class_embeddings_input_dim", 0);
        if (pin < 1)
            return m2p_error(M2P_EFORMAT,
                             "unet config: text_time needs projection_class_embeddings_input_dim");
        linear(l, "add_embedding.linear_1", temb, pin, 1);
        linear(l, "add_embedding.linear_2", temb, temb, 1);
    }
    int64_t prev = ch[0];
    for (int i = 0; i < nb; i++) {
        int attn = starts(down, i, "CrossAttn");
        for (int j = 0; j < lpb; j++) {
            resnet(l, cat("down_blocks.%d.resnets.%d", i, j), j ? ch[i] : prev, ch[i], temb);
            if (attn)
                transformer(l, cat("down_blocks.%d.attentions.%d", i, j), ch[i], cross, lin,
                            (int)tl[i]);
        }
        if (i < nb - 1)
            conv(l, cat("down_blocks.%d.downsamplers.0.conv", i), ch[i], ch[i], 3);
        prev = ch[i];
    }
    int64_t m = ch[nb - 1];
    resnet(l, "mid_block.resnets.0", m, m, temb);
    transformer(l, "mid_block.attentions.0", m, cross, lin, (int)tl[nb - 1]);
    resnet(l, "mid_block.resnets.1", m, m, temb);
    int64_t rev[8];
    for (int i = 0; i < nb; i++)
        rev[i] = ch[nb - 1 - i];
    int64_t prev_out = rev[0];
    for (int i = 0; i < nb; i++) {
        int attn = starts(up, i, "CrossAttn");
        int64_t out = rev[i], in = rev[i + 1 < nb ? i + 1 : nb - 1];
        for (int j = 0; j <= lpb; j++) {
            int64_t skip = j == lpb ? in : out, rin = j == 0 ? prev_out : out;
            resnet(l, cat("up_blocks.%d.resnets.%d", i, j), rin + skip, out, temb);
            if (attn)
                transformer(l, cat("up_blocks.%d.attentions.%d", i, j), out, cross, lin,
                            (int)tl[nb - 1 - i]);
        }
        if (i < nb - 1)
            conv(l, cat("up_blocks.%d.upsamplers.0.conv", i), out, out, 3);
        prev_out = out;
    }
    norm(l, "conv_norm_out", ch[0]);
    conv(l, "conv_out", out_ch, ch[0], jint(c, "conv_out_kernel", 3));
    return 0;
}

static void vae_attention(tlist *l, const char *prefix, int64_t c)
{
    char p[512];
    snprintf(p, sizeof p, "%s", prefix);
    norm(l, cat("%s.group_norm", p), c);
    attention(l, p, DIFFUSERS_QKVO, c, c, 1);
}

static int vae_tensors(json_t *c, tlist *l)
{
    int64_t ch[8];
    int nb = jints(c, "block_out_channels", ch, 8);
    if (nb < 1)
        return m2p_error(M2P_EFORMAT, "vae config: block_out_channels missing");
    int lpb = jint(c, "layers_per_block", 2), in_ch = jint(c, "in_channels", 3),
        out_ch = jint(c, "out_channels", 3), lat = jint(c, "latent_channels", 4);
    /* encoder */
    conv(l, "encoder.conv_in", ch[0], in_ch, 3);
    int64_t prev = ch[0];
    for (int i = 0; i < nb; i++) {
        for (int j = 0; j < lpb; j++)
            resnet(l, cat("encoder.down_blocks.%d.resnets.%d", i, j), j ? ch[i] : prev, ch[i], 0);
        if (i < nb - 1)
            conv(l, cat("encoder.down_blocks.%d.downsamplers.0.conv", i), ch[i], ch[i], 3);
        prev = ch[i];
    }
    int64_t m = ch[nb - 1];
    resnet(l, "encoder.mid_block.resnets.0", m, m, 0);
    vae_attention(l, "encoder.mid_block.attentions.0", m);
    resnet(l, "encoder.mid_block.resnets.1", m, m, 0);
    norm(l, "encoder.conv_norm_out", m);
    conv(l, "encoder.conv_out", 2 * lat, m, 3);
    conv(l, "quant_conv", 2 * lat, 2 * lat, 1);
    conv(l, "post_quant_conv", lat, lat, 1);
    /* decoder */
    conv(l, "decoder.conv_in", m, lat, 3);
    resnet(l, "decoder.mid_block.resnets.0", m, m, 0);
    vae_attention(l, "decoder.mid_block.attentions.0", m);
    resnet(l, "decoder.mid_block.resnets.1", m, m, 0);
    int64_t prev_out = ch[nb - 1];
    for (int i = 0; i < nb; i++) {
        int64_t out = ch[nb - 1 - i];
        for (int j = 0; j <= lpb; j++)
            resnet(l, cat("decoder.up_blocks.%d.resnets.%d", i, j), j ? out : prev_out, out, 0);
        if (i < nb - 1)
            conv(l, cat("decoder.up_blocks.%d.upsamplers.0.conv", i), out, out, 3);
        prev_out = out;
    }
    norm(l, "decoder.conv_norm_out", ch[0]);
    conv(l, "decoder.conv_out", out_ch, ch[0], 3);
    return 0;
}

static int text_tensors(json_t *c, tlist *l)
{
    int64_t h = jint(c, "hidden_size", 768), inter = jint(c, "intermediate_size", 3072),
            vocab = jint(c, "vocab_size", 49408), pos = jint(c, "max_position_embeddings", 77);
    int layers = jint(c, "num_hidden_layers", 12);
    int64_t e1[2] = {vocab, h}, e2[2] = {pos, h};
    add(l, K_EMBED, 2, e1, "text_model.embeddings.token_embedding.weight");
    add(l, K_EMBED, 2, e2, "text_model.embeddings.position_embedding.weight");
    for (int i = 0; i < layers; i++) {
        const char *p = cat("text_model.encoder.layers.%d", i);
        char pp[256];
        snprintf(pp, sizeof pp, "%s", p);
        norm(l, cat("%s.layer_norm1", pp), h);
        attention(l, cat("%s.self_attn", pp), CLIP_QKVO, h, h, 1);
        norm(l, cat("%s.layer_norm2", pp), h);
        linear(l, cat("%s.mlp.fc1", pp), inter, h, 1);
        linear(l, cat("%s.mlp.fc2", pp), h, inter, 1);
    }
    norm(l, "text_model.final_layer_norm", h);
    /* CLIPTextModelWithProjection (SDXL's text_encoder_2): the pooled output's projection */
    json_t *arch = json_object_get(c, "architectures");
    const char *a0 = json_string_value(json_array_get(arch, 0));
    if (a0 && !strcmp(a0, "CLIPTextModelWithProjection"))
        linear(l, "text_projection", jint(c, "projection_dim", (int)h), h, 0);
    return 0;
}

#endif

/*
 * make-random-model — writes a full-size diffusers folder shaped like SD 1.5 /
 * SimianLuo/LCM_Dreamshaper_v7 (LatentConsistencyModelPipeline: CLIP ViT-L/14 text encoder,
 * UNet2DConditionModel with time_cond_proj_dim 256, AutoencoderKL with its encoder, LCMScheduler)
 * with random weights, for benchmarks and memory tests without downloading 4 GB.
 *
 *   make-random-model --out DIR [--tokenizer-from DIR] [--config-from MODEL_DIR]
 *                     [--dtype f16|bf16|f32] [--fp16-variant] [--seed N]
 *
 * Configs are the real model's (written out below); --config-from takes them from another
 * diffusers folder instead (the tests rebuild the sd-tiny fixture's tensor list this way and
 * compare names and shapes). Tensor names and shapes follow diffusers 0.26 / transformers 4.37
 * save_pretrained, derived from the configs like the Python modules do. Weights are uniform in
 * +-1/sqrt(fan_in) (PyTorch's default init bound), norms 1 / 0, biases 0, embeddings +-0.035.
 * Files are written tensor by tensor (st_write_stream), so memory stays at one tensor.
 */
#define _GNU_SOURCE
#include "core/error.h"
#include "model/safetensors.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

/* ---------------------------------------------------------------------------------------- */
/* The real model's configs (SimianLuo/LCM_Dreamshaper_v7)                                  */
/* ---------------------------------------------------------------------------------------- */

static const char *cfg_model_index = "{\n"
                                     "  \"_class_name\": \"LatentConsistencyModelPipeline\",\n"
                                     "  \"_diffusers_version\": \"0.26.3\",\n"
                                     "  \"feature_extractor\": [null, null],\n"
                                     "  \"image_encoder\": [null, null],\n"
                                     "  \"requires_safety_checker\": false,\n"
                                     "  \"safety_checker\": [null, null],\n"
                                     "  \"scheduler\": [\"diffusers\", \"LCMScheduler\"],\n"
                                     "  \"text_encoder\": [\"transformers\", \"CLIPTextModel\"],\n"
                                     "  \"tokenizer\": [\"transformers\", \"CLIPTokenizer\"],\n"
                                     "  \"unet\": [\"diffusers\", \"UNet2DConditionModel\"],\n"
                                     "  \"vae\": [\"diffusers\", \"AutoencoderKL\"]\n"
                                     "}\n";

static const char *cfg_unet =
    "{\n"
    "  \"_class_name\": \"UNet2DConditionModel\",\n"
    "  \"_diffusers_version\": \"0.26.3\",\n"
    "  \"act_fn\": \"silu\",\n"
    "  \"addition_embed_type\": null,\n"
    "  \"addition_embed_type_num_heads\": 64,\n"
    "  \"addition_time_embed_dim\": null,\n"
    "  \"attention_head_dim\": 8,\n"
    "  \"attention_type\": \"default\",\n"
    "  \"block_out_channels\": [320, 640, 1280, 1280],\n"
    "  \"center_input_sample\": false,\n"
    "  \"class_embed_type\": null,\n"
    "  \"class_embeddings_concat\": false,\n"
    "  \"conv_in_kernel\": 3,\n"
    "  \"conv_out_kernel\": 3,\n"
    "  \"cross_attention_dim\": 768,\n"
    "  \"cross_attention_norm\": null,\n"
    "  \"down_block_types\": [\"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\", "
    "\"CrossAttnDownBlock2D\", \"DownBlock2D\"],\n"
    "  \"downsample_padding\": 1,\n"
    "  \"dropout\": 0.0,\n"
    "  \"dual_cross_attention\": false,\n"
    "  \"encoder_hid_dim\": null,\n"
    "  \"encoder_hid_dim_type\": null,\n"
    "  \"flip_sin_to_cos\": true,\n"
    "  \"freq_shift\": 0,\n"
    "  \"in_channels\": 4,\n"
    "  \"layers_per_block\": 2,\n"
    "  \"mid_block_only_cross_attention\": null,\n"
    "  \"mid_block_scale_factor\": 1,\n"
    "  \"mid_block_type\": \"UNetMidBlock2DCrossAttn\",\n"
    "  \"norm_eps\": 1e-05,\n"
    "  \"norm_num_groups\": 32,\n"
    "  \"num_attention_heads\": null,\n"
    "  \"num_class_embeds\": null,\n"
    "  \"only_cross_attention\": false,\n"
    "  \"out_channels\": 4,\n"
    "  \"projection_class_embeddings_input_dim\": null,\n"
    "  \"resnet_out_scale_factor\": 1.0,\n"
    "  \"resnet_skip_time_act\": false,\n"
    "  \"resnet_time_scale_shift\": \"default\",\n"
    "  \"reverse_transformer_layers_per_block\": null,\n"
    "  \"sample_size\": 96,\n"
    "  \"time_cond_proj_dim\": 256,\n"
    "  \"time_embedding_act_fn\": null,\n"
    "  \"time_embedding_dim\": null,\n"
    "  \"time_embedding_type\": \"positional\",\n"
    "  \"timestep_post_act\": null,\n"
    "  \"transformer_layers_per_block\": 1,\n"
    "  \"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\", \"CrossAttnUpBlock2D\", "
    "\"CrossAttnUpBlock2D\"],\n"
    "  \"upcast_attention\": false,\n"
    "  \"use_linear_projection\": false\n"
    "}\n";

static const char *cfg_vae =
    "{\n"
    "  \"_class_name\": \"AutoencoderKL\",\n"
    "  \"_diffusers_version\": \"0.26.3\",\n"
    "  \"act_fn\": \"silu\",\n"
    "  \"block_out_channels\": [128, 256, 512, 512],\n"
    "  \"down_block_types\": [\"DownEncoderBlock2D\", \"DownEncoderBlock2D\", "
    "\"DownEncoderBlock2D\", \"DownEncoderBlock2D\"],\n"
    "  \"force_upcast\": true,\n"
    "  \"in_channels\": 3,\n"
    "  \"latent_channels\": 4,\n"
    "  \"layers_per_block\": 2,\n"
    "  \"norm_num_groups\": 32,\n"
    "  \"out_channels\": 3,\n"
    "  \"sample_size\": 768,\n"
    "  \"scaling_factor\": 0.18215,\n"
    "  \"up_block_types\": [\"UpDecoderBlock2D\", \"UpDecoderBlock2D\", \"UpDecoderBlock2D\", "
    "\"UpDecoderBlock2D\"]\n"
    "}\n";

static const char *cfg_text = "{\n"
                              "  \"architectures\": [\"CLIPTextModel\"],\n"
                              "  \"attention_dropout\": 0.0,\n"
                              "  \"bos_token_id\": 0,\n"
                              "  \"dropout\": 0.0,\n"
                              "  \"eos_token_id\": 2,\n"
                              "  \"hidden_act\": \"quick_gelu\",\n"
                              "  \"hidden_size\": 768,\n"
                              "  \"initializer_factor\": 1.0,\n"
                              "  \"initializer_range\": 0.02,\n"
                              "  \"intermediate_size\": 3072,\n"
                              "  \"layer_norm_eps\": 1e-05,\n"
                              "  \"max_position_embeddings\": 77,\n"
                              "  \"model_type\": \"clip_text_model\",\n"
                              "  \"num_attention_heads\": 12,\n"
                              "  \"num_hidden_layers\": 12,\n"
                              "  \"pad_token_id\": 1,\n"
                              "  \"projection_dim\": 768,\n"
                              "  \"torch_dtype\": \"float32\",\n"
                              "  \"transformers_version\": \"4.37.0\",\n"
                              "  \"vocab_size\": 49408\n"
                              "}\n";

static const char *cfg_scheduler = "{\n"
                                   "  \"_class_name\": \"LCMScheduler\",\n"
                                   "  \"_diffusers_version\": \"0.26.3\",\n"
                                   "  \"beta_end\": 0.012,\n"
                                   "  \"beta_schedule\": \"scaled_linear\",\n"
                                   "  \"beta_start\": 0.00085,\n"
                                   "  \"clip_sample\": false,\n"
                                   "  \"clip_sample_range\": 1.0,\n"
                                   "  \"dynamic_thresholding_ratio\": 0.995,\n"
                                   "  \"num_train_timesteps\": 1000,\n"
                                   "  \"original_inference_steps\": 50,\n"
                                   "  \"prediction_type\": \"epsilon\",\n"
                                   "  \"rescale_betas_zero_snr\": false,\n"
                                   "  \"sample_max_value\": 1.0,\n"
                                   "  \"set_alpha_to_one\": true,\n"
                                   "  \"steps_offset\": 1,\n"
                                   "  \"thresholding\": false,\n"
                                   "  \"timestep_scaling\": 10.0,\n"
                                   "  \"timestep_spacing\": \"leading\",\n"
                                   "  \"trained_betas\": null\n"
                                   "}\n";

/* ---------------------------------------------------------------------------------------- */
/* Tensor lists                                                                             */
/* ---------------------------------------------------------------------------------------- */

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
        linear(l, cat("%s.attn1.to_q", tb), c, c, 0);
        linear(l, cat("%s.attn1.to_k", tb), c, c, 0);
        linear(l, cat("%s.attn1.to_v", tb), c, c, 0);
        linear(l, cat("%s.attn1.to_out.0", tb), c, c, 1);
        norm(l, cat("%s.norm2", tb), c);
        linear(l, cat("%s.attn2.to_q", tb), c, c, 0);
        linear(l, cat("%s.attn2.to_k", tb), c, cross, 0);
        linear(l, cat("%s.attn2.to_v", tb), c, cross, 0);
        linear(l, cat("%s.attn2.to_out.0", tb), c, c, 1);
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
        cond = jint(c, "time_cond_proj_dim", 0), tl = jint(c, "transformer_layers_per_block", 1);
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
    int64_t prev = ch[0];
    for (int i = 0; i < nb; i++) {
        int attn = starts(down, i, "CrossAttn");
        for (int j = 0; j < lpb; j++) {
            resnet(l, cat("down_blocks.%d.resnets.%d", i, j), j ? ch[i] : prev, ch[i], temb);
            if (attn)
                transformer(l, cat("down_blocks.%d.attentions.%d", i, j), ch[i], cross, lin, tl);
        }
        if (i < nb - 1)
            conv(l, cat("down_blocks.%d.downsamplers.0.conv", i), ch[i], ch[i], 3);
        prev = ch[i];
    }
    int64_t m = ch[nb - 1];
    resnet(l, "mid_block.resnets.0", m, m, temb);
    transformer(l, "mid_block.attentions.0", m, cross, lin, tl);
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
                transformer(l, cat("up_blocks.%d.attentions.%d", i, j), out, cross, lin, tl);
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
    linear(l, cat("%s.to_q", p), c, c, 1);
    linear(l, cat("%s.to_k", p), c, c, 1);
    linear(l, cat("%s.to_v", p), c, c, 1);
    linear(l, cat("%s.to_out.0", p), c, c, 1);
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
        linear(l, cat("%s.self_attn.q_proj", pp), h, h, 1);
        linear(l, cat("%s.self_attn.k_proj", pp), h, h, 1);
        linear(l, cat("%s.self_attn.v_proj", pp), h, h, 1);
        linear(l, cat("%s.self_attn.out_proj", pp), h, h, 1);
        norm(l, cat("%s.layer_norm2", pp), h);
        linear(l, cat("%s.mlp.fc1", pp), inter, h, 1);
        linear(l, cat("%s.mlp.fc2", pp), h, inter, 1);
    }
    norm(l, "text_model.final_layer_norm", h);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Random data                                                                              */
/* ---------------------------------------------------------------------------------------- */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static uint16_t f32_to_f16(float f)
{
#if defined(__F16C__) || defined(__AVX512F__)
    return (uint16_t)_cvtss_sh(f, 0);
#else
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    int32_t e = (int32_t)((x >> 23) & 0xff) - 127 + 15;
    uint32_t man = x & 0x7fffff;
    if (e <= 0) { /* subnormal or zero */
        if (e < -10)
            return (uint16_t)sign;
        man |= 0x800000;
        uint32_t shift = (uint32_t)(14 - e);
        uint32_t h = man >> shift, rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1)))
            h++;
        return (uint16_t)(sign | h);
    }
    if (e >= 31)
        return (uint16_t)(sign | 0x7c00);
    uint32_t h = ((uint32_t)e << 10) | (man >> 13), rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
        h++;
    return (uint16_t)(sign | h);
#endif
}

static uint16_t f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

typedef struct {
    const tlist *l;
    st_dtype dtype;
    uint64_t seed;
    size_t done, total;
    const char *label;
} fill_ctx;

static int fill(int i, void *buf, size_t nbytes, void *ud)
{
    fill_ctx *fc = ud;
    const tspec *t = &fc->l->v[i];
    size_t n = nbytes / st_dtype_size(fc->dtype);
    double fan_in = 1;
    for (int d = 1; d < t->ndim; d++)
        fan_in *= (double)t->shape[d];
    float bound = t->kind == K_WEIGHT ? (float)(1.0 / sqrt(fan_in)) : 0.0346f;
    float constant = t->kind == K_NORM_W ? 1.0f : 0.0f;
    int random = t->kind == K_WEIGHT || t->kind == K_EMBED;
    uint64_t base = hash_str(t->name) ^ fc->seed;
    const size_t chunk = 1 << 16;
    size_t nchunks = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < nchunks; c++) {
        uint64_t s = base + c * 0x632be59bd9b4e019ull;
        size_t b = c * chunk, e = b + chunk < n ? b + chunk : n;
        for (size_t k = b; k < e; k++) {
            float v = constant;
            if (random) {
                uint64_t r = splitmix(&s);
                v = ((float)(r >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f) * bound;
            }
            switch (fc->dtype) {
            case ST_F16:
                ((uint16_t *)buf)[k] = f32_to_f16(v);
                break;
            case ST_BF16:
                ((uint16_t *)buf)[k] = f32_to_bf16(v);
                break;
            default:
                ((float *)buf)[k] = v;
                break;
            }
        }
    }
    fc->done += nbytes;
    if (isatty(2))
        fprintf(stderr, "\r  %s: %5.1f%%", fc->label, 100.0 * fc->done / (double)fc->total);
    return 0;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(((const tspec *)a)->name, ((const tspec *)b)->name);
}

static int write_part(const char *path, tlist *l, st_dtype dtype, uint64_t seed, const char *label)
{
    qsort(l->v, (size_t)l->n, sizeof *l->v, name_cmp); /* safetensors' own order */
    st_out_tensor *ts = calloc((size_t)l->n, sizeof *ts);
    size_t total = 0;
    for (int i = 0; i < l->n; i++) {
        ts[i].name = l->v[i].name;
        ts[i].dtype = dtype;
        ts[i].ndim = l->v[i].ndim;
        size_t nb = st_dtype_size(dtype);
        for (int d = 0; d < l->v[i].ndim; d++) {
            ts[i].shape[d] = l->v[i].shape[d];
            nb *= (size_t)l->v[i].shape[d];
        }
        total += nb;
    }
    fill_ctx fc = {l, dtype, seed, 0, total, label};
    int rc = st_write_stream(path, ts, l->n, fill, &fc);
    if (isatty(2))
        fprintf(stderr, "\r");
    fprintf(stderr, "  %-55s %5d tensors %8.1f MB\n", path, l->n, total / 1e6);
    free(ts);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Files                                                                                    */
/* ---------------------------------------------------------------------------------------- */

static int mkdirs(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(tmp, 0755);
            *p = '/';
        }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        return m2p_error(M2P_EIO, "%s: cannot create folder: %s", path, strerror(errno));
    return 0;
}

static int write_text(const char *path, const char *text, size_t len)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return m2p_error(M2P_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    int bad = fwrite(text, 1, len, f) != len;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        unlink(tmp);
        return m2p_error(M2P_EIO, "%s: write failed", path);
    }
    return 0;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) {
        b[n] = 0;
        *len = (size_t)n;
    }
    return b;
}

/* Config text: from --config-from's file, or the built-in one. */
static int config(const char *from, const char *rel, const char *builtin, char **text,
                  json_t **json)
{
    size_t len = strlen(builtin);
    *text = NULL;
    if (from) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", from, rel);
        *text = read_file(p, &len);
        if (!*text)
            return m2p_error(M2P_ENOTFOUND, "%s: cannot read", p);
    } else {
        *text = strdup(builtin);
    }
    json_error_t err;
    *json = json_loadb(*text, len, 0, &err);
    if (!*json)
        return m2p_error(M2P_EFORMAT, "%s: invalid JSON: %s", rel, err.text);
    return 0;
}

static int copy_file(const char *src, const char *dst)
{
    size_t len;
    char *b = read_file(src, &len);
    if (!b)
        return m2p_error(M2P_ENOTFOUND, "%s: cannot read (use --tokenizer-from DIR)", src);
    int rc = write_text(dst, b, len);
    free(b);
    return rc;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: make-random-model --out DIR [--tokenizer-from DIR] [--config-from MODEL_DIR]\n"
            "                         [--dtype f16|bf16|f32] [--fp16-variant] [--seed N]\n"
            "Writes a random-weight diffusers folder shaped like SimianLuo/LCM_Dreamshaper_v7.\n");
}

int main(int argc, char **argv)
{
    const char *out = NULL, *tok = NULL, *from = NULL;
    st_dtype dtype = ST_F16;
    int variant = 0;
    uint64_t seed = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(argv[i], "--tokenizer-from") && i + 1 < argc)
            tok = argv[++i];
        else if (!strcmp(argv[i], "--config-from") && i + 1 < argc)
            from = argv[++i];
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--fp16-variant"))
            variant = 1;
        else if (!strcmp(argv[i], "--dtype") && i + 1 < argc) {
            const char *d = argv[++i];
            if (!strcmp(d, "f16") || !strcmp(d, "fp16"))
                dtype = ST_F16;
            else if (!strcmp(d, "bf16"))
                dtype = ST_BF16;
            else if (!strcmp(d, "f32") || !strcmp(d, "fp32"))
                dtype = ST_F32;
            else {
                usage();
                return 2;
            }
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage();
            return 0;
        } else {
            usage();
            return 2;
        }
    }
    if (!out) {
        usage();
        return 2;
    }
    char deftok[4096];
    if (!tok) {
        const char *fx = getenv("M2P_FIXTURES");
        snprintf(deftok, sizeof deftok, "%s/sd-tiny/model/tokenizer",
                 fx && *fx ? fx : "../shared/fixtures");
        tok = deftok;
    }
    const char *ext = variant ? ".fp16.safetensors" : ".safetensors";
    char *texts[5] = {0};
    json_t *jsons[5] = {0};
    static const char *rels[5] = {"model_index.json", "unet/config.json", "vae/config.json",
                                  "text_encoder/config.json", "scheduler/scheduler_config.json"};
    const char *builtins[5] = {cfg_model_index, cfg_unet, cfg_vae, cfg_text, cfg_scheduler};
    int rc = 0;
    for (int i = 0; i < 5 && !rc; i++)
        rc = config(from, rels[i], builtins[i], &texts[i], &jsons[i]);
    const char *dirs[] = {"", "/unet", "/vae", "/text_encoder", "/scheduler", "/tokenizer"};
    for (int i = 0; i < 6 && !rc; i++)
        rc = mkdirs(cat("%s%s", out, dirs[i]));
    for (int i = 0; i < 5 && !rc; i++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", out, rels[i]);
        rc = write_text(p, texts[i], strlen(texts[i]));
    }
    static const char *tokfiles[] = {"vocab.json", "merges.txt", "tokenizer_config.json",
                                     "special_tokens_map.json"};
    for (int i = 0; i < 4 && !rc; i++) {
        char *s = NULL, *d = NULL;
        if (asprintf(&s, "%s/%s", tok, tokfiles[i]) < 0 ||
            asprintf(&d, "%s/tokenizer/%s", out, tokfiles[i]) < 0)
            rc = m2p_error(M2P_ENOMEM, "out of memory");
        else
            rc = copy_file(s, d);
        free(s);
        free(d);
    }
    tlist lt = {0}, lu = {0}, lv = {0};
    if (!rc)
        rc = text_tensors(jsons[3], &lt);
    if (!rc)
        rc = unet_tensors(jsons[1], &lu);
    if (!rc)
        rc = vae_tensors(jsons[2], &lv);
    if (!rc)
        rc = write_part(cat("%s/text_encoder/model%s", out, ext), &lt, dtype, seed, "text_encoder");
    if (!rc)
        rc = write_part(cat("%s/unet/diffusion_pytorch_model%s", out, ext), &lu, dtype, seed,
                        "unet");
    if (!rc)
        rc = write_part(cat("%s/vae/diffusion_pytorch_model%s", out, ext), &lv, dtype, seed, "vae");
    for (int i = 0; i < 5; i++) {
        free(texts[i]);
        json_decref(jsons[i]);
    }
    tlist *ls[3] = {&lt, &lu, &lv};
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < ls[k]->n; i++)
            free(ls[k]->v[i].name);
        free(ls[k]->v);
    }
    if (rc) {
        fprintf(stderr, "make-random-model: %s\n", m2p_errmsg());
        return 1;
    }
    fprintf(stderr, "make-random-model: wrote %s\n", out);
    return 0;
}

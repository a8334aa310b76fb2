/*
 * vae.c — the AutoencoderKL decode path (diffusers autoencoder_kl.py + vae.py Decoder):
 * post_quant_conv (1x1), decoder.conv_in, UNetMidBlock2D (resnet, single-head spatial
 * self-attention with GroupNorm, resnet), UpDecoderBlock2D x N (layers_per_block+1 resnets,
 * nearest x2 + 3x3 conv except the last), conv_norm_out + SiLU, conv_out. Every GroupNorm here
 * uses eps 1e-6 (diffusers Decoder). The encoder and quant_conv are never loaded (skipped).
 * Sizes come from vae/config.json. Attention weights may use to_q/to_k/to_v/to_out.0 or the
 * older query/key/value/proj_attn names. Taps: "post_quant_conv", "decoder.conv_in",
 * "decoder.mid_block", "decoder.up_blocks.N", "decoder.conv_norm_out".
 * Big images decode in tiles (vae_decode_tiled): overlapping latent tiles, each decoded alone
 * and blended with linear ramps across the overlaps, as diffusers' AutoencoderKL.tiled_decode
 * does (there: 25% overlap, blend_v / blend_h), so memory stays one tile's whatever the size.
 * Runs on a compute backend (tensor/backend.h): latents are uploaded and the image downloaded
 * per decode; tiles are cut from the caller's latents on the host, decoded and blended in
 * backend memory, and the whole image downloaded once.
 */
#include "core/error.h"
#include "model/config.h"
#include "sd/components.h"
#include "sd/nn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VAE_MAX_BLOCKS 8
#define VAE_EPS 1e-6f /* diffusers Decoder: resnet_eps / GroupNorm eps 1e-6 */

typedef struct vae_up {
    int n_res, cin, cout, upsample;
    nn_resnet *res;
    bk_conv *up_conv;
} vae_up;

struct vae {
    const m2p_backend *be;
    int latent_ch, out_ch, groups, n_up, top_ch, bottom_ch, mid_attn;
    float scaling;
    bk_conv *post_quant, *conv_in, *conv_out;
    nn_resnet mid_res[2];
    nn_norm attn_norm;
    bk_linear *attn_qkv, *attn_out;
    int attn_bf16; /* bf16 compute: q/k/v and the mid attention's output stay bf16 */
    vae_up up[VAE_MAX_BLOCKS];
    nn_norm norm_out;
    weights *w;
    nn_arena own_arena; /* used unless the pipeline shares one (vae_set_arena) */
    nn_arena *arena;
    sd_tap tap;
    void *tap_ud;
};

/* The attention's q/k/v/out linears, under either naming, as [C,C] or [C,C,1,1]. */
static int load_attention(vae *m, int dtype)
{
    const char *base = "decoder.mid_block.attentions.0";
    int C = m->top_ch;
    char q[160], k[160], v[160], o[160], nm[200];
    int old = !weights_has(m->w, "decoder.mid_block.attentions.0.to_q.weight") &&
              weights_has(m->w, "decoder.mid_block.attentions.0.query.weight");
    snprintf(q, sizeof q, "%s.%s", base, old ? "query" : "to_q");
    snprintf(k, sizeof k, "%s.%s", base, old ? "key" : "to_k");
    snprintf(v, sizeof v, "%s.%s", base, old ? "value" : "to_v");
    snprintf(o, sizeof o, "%s.%s", base, old ? "proj_attn" : "to_out.0");
    snprintf(nm, sizeof nm, "%s.weight", q);
    st_tensor *t = st_find(weights_file(m->w), nm);
    int conv1x1 = t && t->ndim == 4;
    const char *qkv[3] = {q, k, v};
    int outs[3] = {C, C, C};
    int rc =
        nn_load_norm(m->be, m->w, nn_name(nm, sizeof nm, base, "group_norm"), C, &m->attn_norm);
    if (!rc)
        rc = nn_load_linear_cat(m->be, m->w, qkv, 3, C, outs, 1, conv1x1, dtype, &m->attn_qkv);
    if (!rc)
        rc = nn_load_linear(m->be, m->w, o, C, C, 1, conv1x1, dtype, &m->attn_out);
    return rc;
}

int vae_load(const char *dir, const m2p_model_params *p, const m2p_backend *be, vae **out)
{
    *out = NULL;
    int dtype = p ? p->compute_dtype : M2P_DTYPE_F32;
    vae *m = calloc(1, sizeof *m);
    if (!m)
        return m2p_error(M2P_ENOMEM, "out of memory loading the VAE");
    m->be = be = be ? be : m2p_backend_cpu();
    m->own_arena.be = be;
    m->arena = &m->own_arena;
    m->attn_bf16 = dtype == M2P_DTYPE_BF16;
    m2p_config *c = NULL;
    int boc[VAE_MAX_BLOCKS], nb = 0, lpb = 0, nt = 0, post_quant = 1;
    const char *types[VAE_MAX_BLOCKS];
    char nm[256], pre[128];
    int rc = config_open(dir, &c);
    if (rc)
        goto fail;
    if ((rc = config_int_array(c, "block_out_channels", boc, VAE_MAX_BLOCKS, &nb)) ||
        (rc = config_opt_int(c, "layers_per_block", 2, &lpb)) ||
        (rc = config_opt_int(c, "norm_num_groups", 32, &m->groups)) ||
        (rc = config_opt_int(c, "latent_channels", 4, &m->latent_ch)) ||
        (rc = config_opt_int(c, "out_channels", 3, &m->out_ch)) ||
        (rc = config_opt_float(c, "scaling_factor", 0.18215f, &m->scaling)) ||
        (rc = config_opt_bool(c, "mid_block_add_attention", 1, &m->mid_attn)) ||
        (rc = config_opt_bool(c, "use_post_quant_conv", 1, &post_quant)))
        goto fail;
    if (config_has(c, "up_block_types")) {
        if ((rc = config_string_array(c, "up_block_types", types, VAE_MAX_BLOCKS, &nt)))
            goto fail;
        if (nt != nb) {
            rc = m2p_error(M2P_EFORMAT, "%s: %d up_block_types for %d block_out_channels",
                           config_path(c), nt, nb);
            goto fail;
        }
        for (int i = 0; i < nt; i++)
            if (strcmp(types[i], "UpDecoderBlock2D") != 0) {
                rc = m2p_error(M2P_EUNSUPPORTED, "%s: 'up_block_types' %s is not supported",
                               config_path(c), types[i]);
                goto fail;
            }
    }
    /* latents_mean / latents_std / shift_factor (SD3, Playground...) change the pipeline's
     * latent scaling; SD 1.x / 2.x / SDXL leave them null / 0. */
    static const char *unset[] = {"latents_mean", "latents_std"};
    for (int i = 0; i < 2; i++)
        if (config_has(c, unset[i])) {
            rc = m2p_error(M2P_EUNSUPPORTED, "%s: '%s' is set; only scaling_factor is supported",
                           config_path(c), unset[i]);
            goto fail;
        }
    float shift = 0;
    if ((rc = config_opt_float(c, "shift_factor", 0.0f, &shift)))
        goto fail;
    if (shift != 0.0f) {
        rc = m2p_error(M2P_EUNSUPPORTED, "%s: 'shift_factor' %g is not supported (0 only)",
                       config_path(c), shift);
        goto fail;
    }
    const char *act = "silu";
    if ((rc = config_opt_string(c, "act_fn", "silu", &act)))
        goto fail;
    if (strcmp(act, "silu") != 0) {
        rc = m2p_error(M2P_EUNSUPPORTED, "%s: 'act_fn' %s is not supported", config_path(c), act);
        goto fail;
    }
    if (m->out_ch != 3) { /* the pipeline makes RGB images */
        rc = m2p_error(M2P_EUNSUPPORTED, "%s: 'out_channels' %d is not supported (3 only)",
                       config_path(c), m->out_ch);
        goto fail;
    }
    if (lpb < 1 || m->groups < 1 || m->latent_ch < 1 || m->out_ch < 1 || m->scaling <= 0) {
        rc = m2p_error(M2P_EFORMAT, "%s: invalid sizes", config_path(c));
        goto fail;
    }
    if ((rc = weights_open(dir, &m->w)))
        goto fail;
    weights_set_cache(m->w, p && p->weight_cache);
    m->top_ch = boc[nb - 1];
    m->bottom_ch = boc[0];
    m->n_up = nb;
    int L = m->latent_ch, G = m->groups, C = m->top_ch;
    if (post_quant &&
        (rc = nn_load_conv(be, m->w, "post_quant_conv", L, L, 1, 1, 0, 1, dtype, &m->post_quant)))
        goto fail;
    if ((rc = nn_load_conv(be, m->w, "decoder.conv_in", L, C, 3, 1, 1, 1, dtype, &m->conv_in)) ||
        (rc = nn_resnet_load(be, m->w, "decoder.mid_block.resnets.0", C, C, 0, G, VAE_EPS, 1.0f,
                             dtype, &m->mid_res[0])) ||
        (m->mid_attn && (rc = load_attention(m, dtype))) ||
        (rc = nn_resnet_load(be, m->w, "decoder.mid_block.resnets.1", C, C, 0, G, VAE_EPS, 1.0f,
                             dtype, &m->mid_res[1])))
        goto fail;
    /* Decoder: reversed_block_out_channels; up block i maps prev_output_channel -> rev[i] */
    int prev = C;
    for (int i = 0; i < nb; i++) {
        vae_up *u = &m->up[i];
        u->cin = prev;
        u->cout = boc[nb - 1 - i];
        u->upsample = i != nb - 1;
        u->n_res = lpb + 1;
        u->res = calloc((size_t)u->n_res, sizeof *u->res);
        if (!u->res) {
            rc = m2p_error(M2P_ENOMEM, "out of memory loading the VAE");
            goto fail;
        }
        for (int j = 0; j < u->n_res; j++) {
            snprintf(pre, sizeof pre, "decoder.up_blocks.%d.resnets.%d", i, j);
            if ((rc = nn_resnet_load(be, m->w, pre, j == 0 ? u->cin : u->cout, u->cout, 0, G,
                                     VAE_EPS, 1.0f, dtype, &u->res[j])))
                goto fail;
        }
        if (u->upsample) {
            snprintf(pre, sizeof pre, "decoder.up_blocks.%d.upsamplers.0.conv", i);
            if ((rc = nn_load_conv(be, m->w, pre, u->cout, u->cout, 3, 1, 1,
                                   NN_CONV_BIAS | NN_CONV_UPSAMPLED, dtype, &u->up_conv)))
                goto fail;
        }
        prev = u->cout;
        weights_release(m->w); /* copied out: keep peak RSS near one copy of the weights */
    }
    if ((rc = nn_load_norm(be, m->w, "decoder.conv_norm_out", m->bottom_ch, &m->norm_out)) ||
        (rc = nn_load_conv(be, m->w, "decoder.conv_out", m->bottom_ch, m->out_ch, 3, 1, 1, 1, dtype,
                           &m->conv_out)))
        goto fail;
    (void)nm;
    config_free(c);
    weights_release(m->w);
    *out = m;
    return 0;
fail:
    config_free(c);
    vae_free(m);
    return m2p_error_wrap(rc, "loading VAE");
}

/* Largest feature map (floats) the decode touches, for B x h x w latents. */
/* Scratch plan: x and t1 swap roles (resnets with a channel change, upsampling), so both hold
 * the largest map; t2 only ever holds a resnet's conv1 output, the mid attention's normalised
 * input / output and conv_out's 3 channels, so at the top resolution it needs the last block's
 * channels (128), not the upsampled input's (256): 134 MB less at 512². */
static void plan(const vae *m, int B, int h, int w, size_t *mx_out, size_t *mx2_out)
{
    size_t HW = (size_t)h * w, mx = HW * (size_t)m->top_ch * (m->mid_attn ? 4 : 1);
    size_t mx2 = HW * (size_t)m->top_ch;
    for (int i = 0; i < m->n_up; i++) {
        const vae_up *u = &m->up[i];
        size_t c = (size_t)(u->cin > u->cout ? u->cin : u->cout);
        if (HW * c > mx)
            mx = HW * c;
        if (HW * (size_t)u->cout > mx2)
            mx2 = HW * (size_t)u->cout;
        if (u->upsample)
            HW *= 4;
        if (HW * (size_t)u->cout > mx)
            mx = HW * (size_t)u->cout;
    }
    if (HW * (size_t)m->bottom_ch > mx)
        mx = HW * (size_t)m->bottom_ch;
    if (HW * (size_t)m->out_ch > mx2)
        mx2 = HW * (size_t)m->out_ch;
    if (HW * (size_t)m->out_ch > mx) /* t1: the NCHW image before its download */
        mx = HW * (size_t)m->out_ch;
    if ((size_t)h * w * (size_t)m->latent_ch > mx2) /* t2: the uploaded NCHW latents */
        mx2 = (size_t)h * w * (size_t)m->latent_ch;
    *mx_out = mx * (size_t)B;
    *mx2_out = mx2 * (size_t)B;
}

size_t vae_scratch_bytes(const vae *m, int B, int h, int w)
{
    size_t mx, mx2;
    plan(m, B, h, w, &mx, &mx2);
    return (2 * NN_ALIGN_FLOATS(mx) + NN_ALIGN_FLOATS(mx2)) * sizeof(float);
}

/* z (host, NCHW) -> the NCHW image in the arena (*img, backend memory, valid until the arena's
 * next use). */
static int decode(vae *m, const float *z, int B, int h, int w, const float **img)
{
    size_t mx, mx2;
    plan(m, B, h, w, &mx, &mx2);
    int rc = nn_arena_reserve(m->arena, 2 * NN_ALIGN_FLOATS(mx) + NN_ALIGN_FLOATS(mx2));
    if (rc)
        return rc;
    float *x = nn_arena_alloc(m->arena, mx), *t1 = nn_arena_alloc(m->arena, mx),
          *t2 = nn_arena_alloc(m->arena, mx2), *tmp;
    if (!x || !t1 || !t2)
        return m2p_error(M2P_EINTERNAL, "VAE: scratch plan too small");
    const m2p_backend *be = m->be;
    int H = h, W = w, C = m->latent_ch;
    /* t2 holds at least top_ch x h x w floats, more than the latents */
    if ((rc = be->upload(be, t2, z, (size_t)B * C * H * W)) ||
        (rc = be->nchw_to_nhwc(be, t2, B, C, H, W, t1)))
        return rc;
    if (m->post_quant) {
        if ((rc = be->conv_forward(be, m->post_quant, t1, B, H, W, x, NULL)))
            return rc;
        tmp = x, x = t1, t1 = tmp;
    }
    nn_tap_nhwc(be, m->tap, m->tap_ud, "post_quant_conv", t1, B, H, W, C);
    C = m->top_ch;
    if ((rc = be->conv_forward(be, m->conv_in, t1, B, H, W, x, NULL)))
        return rc;
    nn_tap_nhwc(be, m->tap, m->tap_ud, "decoder.conv_in", x, B, H, W, C);

    /* mid block: resnet (in place), attention, resnet */
    if ((rc = nn_resnet_forward(&m->mid_res[0], x, B, H, W, NULL, x, t1, t2, NULL)))
        return rc;
    if (m->mid_attn) {
        /* Attention (_from_deprecated_attn_block): GroupNorm, single head over C, residual */
        size_t rows = (size_t)B * H * W;
        bk_pre gn = {BK_PRE_GROUPNORM,  m->groups, VAE_EPS, m->attn_norm.gamma,
                     m->attn_norm.beta, 0,         NULL};
        const float scale = 1.0f / sqrtf((float)C);
        if (m->attn_bf16) { /* q/k/v and the attention's output stay bf16 (backend.h) */
            if ((rc = be->linear_forward_bf16(be, m->attn_qkv, &gn, x, B, H * W, t2, t1)) ||
                (rc = be->attention_bf16io(be, t1, 0, 3 * C, t1, (size_t)C, 2 * (size_t)C, 3 * C, B,
                                           H * W, H * W, 1, C, scale, 0, t2)) ||
                (rc = be->linear_forward_bf16in(be, m->attn_out, t2, (int)rows, x, x)))
                return rc;
        } else if ((rc = be->linear_forward_pre(be, m->attn_qkv, &gn, x, B, H * W, t2, t1, NULL)) ||
                   (rc = be->attention(be, t1, 3 * C, t1 + C, t1 + 2 * C, 3 * C, B, H * W, H * W, 1,
                                       C, scale, 0, t2)) ||
                   (rc = be->linear_forward(be, m->attn_out, t2, (int)rows, x, x)))
            return rc;
    }
    if ((rc = nn_resnet_forward(&m->mid_res[1], x, B, H, W, NULL, x, t1, t2, NULL)))
        return rc;
    nn_tap_nhwc(be, m->tap, m->tap_ud, "decoder.mid_block", x, B, H, W, C);

    for (int i = 0; i < m->n_up; i++) {
        vae_up *u = &m->up[i];
        for (int j = 0; j < u->n_res; j++) {
            nn_resnet *r = &u->res[j];
            if (r->cin == r->cout) {
                rc = nn_resnet_forward(r, x, B, H, W, NULL, x, t1, t2, NULL);
            } else {
                rc = nn_resnet_forward(r, x, B, H, W, NULL, t1, t1, t2, NULL);
                tmp = x, x = t1, t1 = tmp;
            }
            if (rc)
                return rc;
            C = r->cout;
        }
        if (u->upsample) {
            bk_pre up = {BK_PRE_UPSAMPLE2X, 0, 0.0f, NULL, NULL, 0, NULL};
            H *= 2;
            W *= 2;
            if ((rc = be->conv_forward_pre(be, u->up_conv, &up, x, B, H, W, t1, x, NULL)))
                return rc;
        }
        if (m->tap) {
            char nm[48];
            snprintf(nm, sizeof nm, "decoder.up_blocks.%d", i);
            nn_tap_nhwc(be, m->tap, m->tap_ud, nm, x, B, H, W, C);
        }
    }
    if ((rc = nn_norm_out_conv(be, m->conv_out, &m->norm_out, m->groups, VAE_EPS, x, B, H, W, C,
                               m->tap, m->tap_ud, "decoder.conv_norm_out", t1, t2)) ||
        (rc = be->nhwc_to_nchw(be, t2, B, H, W, m->out_ch, t1)))
        return rc;
    *img = t1;
    return 0;
}

int vae_decode(vae *m, const float *z, int B, int h, int w, float *out)
{
    if (B <= 0 || h <= 0 || w <= 0)
        return m2p_error(M2P_EINVAL, "VAE: bad latent size %d x %d x %d", B, h, w);
    const float *img;
    int f = vae_scale_factor(m), rc = decode(m, z, B, h, w, &img);
    if (rc)
        return rc;
    return m->be->download(m->be, out, img, (size_t)B * m->out_ch * h * f * w * f);
}

/* ---- tiled decode ------------------------------------------------------------------------ */

/* Tile origins along one axis of n latents: the fewest tiles of at most max_tile with at least
 * `overlap` between neighbours, then the smallest tile size for that count, evenly spaced from
 * 0 to n - tile (so every tile has the same size). Returns the count (starts may be NULL). */
static int tile_axis(int n, int max_tile, int overlap, int *tile, int *starts)
{
    if (n <= max_tile) {
        *tile = n;
        if (starts)
            starts[0] = 0;
        return 1;
    }
    int k = (n - overlap + (max_tile - overlap) - 1) / (max_tile - overlap);
    int t = (n + (k - 1) * overlap + k - 1) / k;
    *tile = t;
    for (int i = 0; starts && i < k; i++)
        starts[i] = (int)((long)i * (n - t) / (k - 1));
    return k;
}

static int tile_args_ok(int max_tile, int overlap)
{
    return max_tile >= 8 && overlap >= 1 && 2 * overlap <= max_tile;
}

size_t vae_decode_tiled_bytes(const vae *m, int B, int h, int w, int max_tile, int overlap)
{
    if (!tile_args_ok(max_tile, overlap) || (h <= max_tile && w <= max_tile))
        return vae_scratch_bytes(m, B, h, w);
    int th, tw, f = vae_scale_factor(m);
    tile_axis(h, max_tile, overlap, &th, NULL);
    tile_axis(w, max_tile, overlap, &tw, NULL);
    /* a tile's latents on the host; the blended image and its weights in backend memory */
    size_t tile_in = (size_t)B * th * tw * (size_t)m->latent_ch;
    size_t img = (size_t)h * w * f * f * ((size_t)B * m->out_ch + 1);
    return vae_scratch_bytes(m, B, th, tw) + (tile_in + img) * sizeof(float);
}

/* Blend weight of pixel i of a tile of n pixels whose first `rise` pixels overlap the tile
 * before and last `fall` pixels the tile after: linear ramps, so the two tiles' weights over
 * an overlap sum to 1. */
static float ramp(int i, int n, int rise, int fall)
{
    float v = 1.0f;
    if (i < rise)
        v = ((float)i + 0.5f) / (float)rise;
    if (i >= n - fall)
        v *= ((float)(n - i) - 0.5f) / (float)fall;
    return v;
}

int vae_decode_tiled(vae *m, const float *z, int B, int h, int w, int max_tile, int overlap,
                     float *out)
{
    if (B <= 0 || h <= 0 || w <= 0)
        return m2p_error(M2P_EINVAL, "VAE: bad latent size %d x %d x %d", B, h, w);
    if (!tile_args_ok(max_tile, overlap))
        return m2p_error(M2P_EINVAL,
                         "VAE tiles: %d latents with %d overlap (need a tile of at least 8 and "
                         "an overlap of 1 to half the tile)",
                         max_tile, overlap);
    if (h <= max_tile && w <= max_tile)
        return vae_decode(m, z, B, h, w, out);
    int th, tw, f = vae_scale_factor(m), C = m->latent_ch, oc = m->out_ch;
    int ny = tile_axis(h, max_tile, overlap, &th, NULL);
    int nx = tile_axis(w, max_tile, overlap, &tw, NULL);
    const m2p_backend *be = m->be;
    int *ys = malloc((size_t)ny * sizeof *ys), *xs = malloc((size_t)nx * sizeof *xs);
    size_t H = (size_t)h * f, W = (size_t)w * f, TH = (size_t)th * f, TW = (size_t)tw * f;
    size_t nimg = (size_t)B * oc * H * W;
    float *zt = malloc((size_t)B * C * th * tw * sizeof *zt);
    float *wy = malloc(TH * sizeof *wy), *wx = malloc(TW * sizeof *wx);
    /* the image being blended and its weight sums, in backend memory */
    float *acc = be->alloc_scratch(be, nimg), *wsum = be->alloc_scratch(be, H * W);
    int rc = 0;
    if (!ys || !xs || !zt || !acc || !wsum || !wy || !wx) {
        rc = m2p_error(M2P_ENOMEM, "VAE: out of memory for %dx%d tiles", (int)TW, (int)TH);
        goto done;
    }
    tile_axis(h, max_tile, overlap, &th, ys);
    tile_axis(w, max_tile, overlap, &tw, xs);
    if ((rc = be->zero(be, acc, nimg)) || (rc = be->zero(be, wsum, H * W)))
        goto done;
    for (int ty = 0; ty < ny; ty++) {
        int rise = ty > 0 ? (ys[ty - 1] + th - ys[ty]) * f : 0;
        int fall = ty < ny - 1 ? (ys[ty] + th - ys[ty + 1]) * f : 0;
        for (size_t y = 0; y < TH; y++)
            wy[y] = ramp((int)y, (int)TH, rise, fall);
        for (int tx = 0; tx < nx; tx++) {
            rise = tx > 0 ? (xs[tx - 1] + tw - xs[tx]) * f : 0;
            fall = tx < nx - 1 ? (xs[tx] + tw - xs[tx + 1]) * f : 0;
            for (size_t x = 0; x < TW; x++)
                wx[x] = ramp((int)x, (int)TW, rise, fall);
            for (int b = 0; b < B; b++)
                for (int c = 0; c < C; c++)
                    for (int y = 0; y < th; y++)
                        memcpy(zt + (((size_t)b * C + c) * th + y) * tw,
                               z + (((size_t)b * C + c) * h + ys[ty] + y) * w + xs[tx],
                               (size_t)tw * sizeof *zt);
            const float *img;
            if ((rc = decode(m, zt, B, th, tw, &img)) ||
                (rc = be->blend_tile(be, acc, wsum, img, B * oc, (int)H, (int)W, ys[ty] * f,
                                     xs[tx] * f, (int)TH, (int)TW, wy, wx)))
                goto done;
        }
    }
    if (!(rc = be->blend_finish(be, acc, wsum, B * oc, H * W)))
        rc = be->download(be, out, acc, nimg);
done:
    free(ys);
    free(xs);
    free(zt);
    be->free(be, acc);
    be->free(be, wsum);
    free(wy);
    free(wx);
    return rc;
}

float vae_scaling_factor(const vae *m)
{
    return m->scaling;
}

int vae_scale_factor(const vae *m)
{
    return 1 << (m->n_up - 1);
}

int vae_latent_channels(const vae *m)
{
    return m->latent_ch;
}

void vae_set_arena(vae *m, nn_arena *shared)
{
    m->arena = shared ? shared : &m->own_arena;
}

void vae_set_tap(vae *m, sd_tap tap, void *ud)
{
    m->tap = tap;
    m->tap_ud = ud;
}

weights *vae_weights(vae *m)
{
    return m->w;
}

void vae_free(vae *m)
{
    if (!m)
        return;
    const m2p_backend *be = m->be;
    be->conv_free(be, m->post_quant);
    be->conv_free(be, m->conv_in);
    be->conv_free(be, m->conv_out);
    nn_resnet_free(&m->mid_res[0]);
    nn_resnet_free(&m->mid_res[1]);
    nn_norm_free(&m->attn_norm);
    be->linear_free(be, m->attn_qkv);
    be->linear_free(be, m->attn_out);
    for (int i = 0; i < VAE_MAX_BLOCKS; i++) {
        nn_resnets_free(m->up[i].res, m->up[i].n_res);
        be->conv_free(be, m->up[i].up_conv);
    }
    nn_norm_free(&m->norm_out);
    nn_arena_free(&m->own_arena);
    weights_close(m->w);
    free(m);
}

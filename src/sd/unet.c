/*
 * unet.c — UNet2DConditionModel of SD 1.x / 2.x / SDXL (diffusers unet_2d_condition.py,
 * unet_2d_blocks.py): time_proj (Timesteps: sinusoid, flip_sin_to_cos, freq_shift),
 * TimestepEmbedding (with LCM's cond_proj added to the sinusoid when time_cond_proj_dim is set;
 * plus SDXL's addition_embed_type "text_time": add_embedding(text_embeds | add_time_proj(time_ids))
 * added to it), conv_in, CrossAttnDownBlock2D
 * / DownBlock2D (ResnetBlock2D + Transformer2DModel, Downsample2D stride-2 conv),
 * UNetMidBlock2DCrossAttn, CrossAttnUpBlock2D / UpBlock2D (skip concatenation, nearest upsample
 * to the skip's size + conv), conv_norm_out + SiLU + conv_out. Every size is read from
 * unet/config.json (attention_head_dim in diffusers' legacy meaning: heads when
 * num_attention_heads is null; transformer_layers_per_block per level; any number of levels).
 * NHWC inside; the down path writes straight into the skip slots. Taps: time_proj,
 * time_embedding, add_time_proj, add_embedding, conv_in, down_blocks.N, mid_block, up_blocks.N,
 * conv_norm_out. Runs on a compute backend (tensor/backend.h): the sample, the text context and
 * the small host-computed vectors (sinusoids, SDXL's added conditioning) are uploaded per call,
 * the prediction downloaded.
 */
#include "core/error.h"
#include "model/config.h"
#include "sd/components.h"
#include "sd/nn.h"
#include "sd/unet_blocks.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UNET_MAX_BLOCKS 8
#define UNET_MAX_SKIPS 64

typedef struct unet_block {
    int n_res, has_attn, cout, resample; /* resample: down- or upsampling conv present */
    nn_resnet *res;
    unet_transformer *attn;
    bk_conv *sample_conv;
} unet_block;

struct unet {
    const m2p_backend *be;
    int in_ch, out_ch, sample_size, cond_dim, cross_dim, nb, groups, ted, t_dim;
    int flip_sin_to_cos;
    float freq_shift, eps;
    int boc[UNET_MAX_BLOCKS];
    int add_in, add_tdim; /* text_time: projection_class_embeddings_input_dim, time embed dim */
    bk_linear *cond_proj, *lin1, *lin2;
    bk_linear *add_lin1, *add_lin2; /* add_embedding (TimestepEmbedding) */
    bk_conv *conv_in, *conv_out;
    float *host_row; /* host: one row of sinusoids (t_dim) or of add_embedding's input (add_in) */
    unet_block down[UNET_MAX_BLOCKS], up[UNET_MAX_BLOCKS];
    nn_resnet mid_res[2];
    unet_transformer mid_attn;
    int has_mid;
    nn_norm norm_out;
    weights *w;
    nn_arena own_arena; /* used unless the pipeline shares one (unet_set_arena) */
    nn_arena *arena;
    sd_tap tap;
    void *tap_ud;
};

/* ---- config ------------------------------------------------------------------------------ */

typedef struct ucfg {
    int nb, lpb[UNET_MAX_BLOCKS], heads[UNET_MAX_BLOCKS], tlpb[UNET_MAX_BLOCKS],
        cross[UNET_MAX_BLOCKS], down_attn[UNET_MAX_BLOCKS], up_attn[UNET_MAX_BLOCKS];
    int linear_proj, conv_in_k, conv_out_k, down_pad, has_mid;
    float mid_scale;
} ucfg;

static int unsupported(m2p_config *c, const char *key, const char *what)
{
    return m2p_error(M2P_EUNSUPPORTED, "%s: '%s' %s is not supported", config_path(c), key, what);
}

/* Keys that must be absent/null (or have their default) for an SD 1.x UNet. */
static int check_defaults(m2p_config *c)
{
    static const char *must_be_null[] = {"class_embed_type",
                                         "encoder_hid_dim",
                                         "encoder_hid_dim_type",
                                         "time_embedding_act_fn",
                                         "timestep_post_act",
                                         "num_class_embeds",
                                         "reverse_transformer_layers_per_block",
                                         "cross_attention_norm"};
    for (size_t i = 0; i < sizeof must_be_null / sizeof *must_be_null; i++)
        if (config_has(c, must_be_null[i]))
            return unsupported(c, must_be_null[i], "set");
    static const char *must_be_false[] = {"center_input_sample", "dual_cross_attention",
                                          "only_cross_attention", "class_embeddings_concat",
                                          "mid_block_only_cross_attention"};
    for (size_t i = 0; i < sizeof must_be_false / sizeof *must_be_false; i++) {
        int v = 0, rc = config_opt_bool(c, must_be_false[i], 0, &v);
        if (rc)
            return rc;
        if (v)
            return unsupported(c, must_be_false[i], "true");
    }
    static const struct {
        const char *key, *value;
    } strs[] = {{"act_fn", "silu"},
                {"time_embedding_type", "positional"},
                {"resnet_time_scale_shift", "default"},
                {"attention_type", "default"}};
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++) {
        const char *v;
        int rc = config_opt_string(c, strs[i].key, strs[i].value, &v);
        if (rc)
            return rc;
        if (strcmp(v, strs[i].value) != 0)
            return unsupported(c, strs[i].key, v);
    }
    float f;
    int rc = config_opt_float(c, "resnet_out_scale_factor", 1.0f, &f);
    if (rc)
        return rc;
    if (f != 1.0f)
        return unsupported(c, "resnet_out_scale_factor", "other than 1");
    int skip_act = 0;
    if ((rc = config_opt_bool(c, "resnet_skip_time_act", 0, &skip_act)))
        return rc;
    if (skip_act)
        return unsupported(c, "resnet_skip_time_act", "true");
    return 0;
}

static int read_config(unet *m, const char *dir, ucfg *u)
{
    m2p_config *c;
    int rc = config_open(dir, &c);
    if (rc)
        return rc;
    const char *dtypes[UNET_MAX_BLOCKS], *utypes[UNET_MAX_BLOCKS], *mid = NULL, *add = NULL;
    int nd = 0, nu = 0, ted = 0;
    if ((rc = check_defaults(c)) ||
        (rc = config_int_array(c, "block_out_channels", m->boc, UNET_MAX_BLOCKS, &m->nb)) ||
        (rc = config_opt_int(c, "in_channels", 4, &m->in_ch)) ||
        (rc = config_opt_int(c, "out_channels", 4, &m->out_ch)) ||
        (rc = config_opt_int(c, "sample_size", 64, &m->sample_size)) ||
        (rc = config_string_array(c, "down_block_types", dtypes, UNET_MAX_BLOCKS, &nd)) ||
        (rc = config_string_array(c, "up_block_types", utypes, UNET_MAX_BLOCKS, &nu)) ||
        (rc = config_opt_string(c, "mid_block_type", "UNetMidBlock2DCrossAttn", &mid)) ||
        (rc = config_opt_int(c, "norm_num_groups", 32, &m->groups)) ||
        (rc = config_opt_float(c, "norm_eps", 1e-5f, &m->eps)) ||
        (rc = config_opt_bool(c, "use_linear_projection", 0, &u->linear_proj)) ||
        (rc = config_opt_bool(c, "flip_sin_to_cos", 1, &m->flip_sin_to_cos)) ||
        (rc = config_opt_float(c, "freq_shift", 0.0f, &m->freq_shift)) ||
        (rc = config_opt_int(c, "time_cond_proj_dim", 0, &m->cond_dim)) ||
        (rc = config_opt_int(c, "time_embedding_dim", 0, &ted)) ||
        (rc = config_opt_int(c, "conv_in_kernel", 3, &u->conv_in_k)) ||
        (rc = config_opt_int(c, "conv_out_kernel", 3, &u->conv_out_k)) ||
        (rc = config_opt_int(c, "downsample_padding", 1, &u->down_pad)) ||
        (rc = config_opt_float(c, "mid_block_scale_factor", 1.0f, &u->mid_scale)) ||
        (rc = config_opt_string(c, "addition_embed_type", NULL, &add)))
        goto out;
    if (add) { /* SDXL: text_embeds + time_ids; other kinds (text, image, ...) are not here */
        if (strcmp(add, "text_time") != 0) {
            rc = unsupported(c, "addition_embed_type", add);
            goto out;
        }
        if ((rc = config_int(c, "addition_time_embed_dim", &m->add_tdim)) ||
            (rc = config_int(c, "projection_class_embeddings_input_dim", &m->add_in)))
            goto out;
        if (m->add_tdim <= 0 || m->add_tdim % 2 || m->add_in <= 0) {
            rc = m2p_error(M2P_EFORMAT,
                           "%s: 'addition_time_embed_dim' %d / "
                           "'projection_class_embeddings_input_dim' %d are not valid sizes",
                           config_path(c), m->add_tdim, m->add_in);
            goto out;
        }
    }
    int nb = m->nb;
    u->nb = nb;
    if (nd != nb || nu != nb) {
        rc = m2p_error(M2P_EFORMAT,
                       "%s: %d down_block_types and %d up_block_types for %d block_out_channels",
                       config_path(c), nd, nu, nb);
        goto out;
    }
    if ((rc = config_int_per_block(c, "layers_per_block", nb, 2, u->lpb)) ||
        (rc = config_int_per_block(c, "transformer_layers_per_block", nb, 1, u->tlpb)) ||
        (rc = config_int_per_block(c, "cross_attention_dim", nb, 1280, u->cross)))
        goto out;
    /* UNet2DConditionModel: num_attention_heads = num_attention_heads or attention_head_dim */
    if (config_has(c, "num_attention_heads"))
        rc = config_int_per_block(c, "num_attention_heads", nb, -1, u->heads);
    else
        rc = config_int_per_block(c, "attention_head_dim", nb, 8, u->heads);
    if (rc)
        goto out;
    for (int i = 0; i < nb; i++) {
        if (strcmp(dtypes[i], "CrossAttnDownBlock2D") == 0)
            u->down_attn[i] = 1;
        else if (strcmp(dtypes[i], "DownBlock2D") == 0)
            u->down_attn[i] = 0;
        else {
            rc = unsupported(c, "down_block_types", dtypes[i]);
            goto out;
        }
        if (strcmp(utypes[i], "CrossAttnUpBlock2D") == 0)
            u->up_attn[i] = 1;
        else if (strcmp(utypes[i], "UpBlock2D") == 0)
            u->up_attn[i] = 0;
        else {
            rc = unsupported(c, "up_block_types", utypes[i]);
            goto out;
        }
        if (m->boc[i] <= 0 || m->boc[i] % m->groups || u->lpb[i] < 1 || u->tlpb[i] < 1 ||
            u->heads[i] < 1 || u->cross[i] < 1) {
            rc = m2p_error(M2P_EFORMAT, "%s: invalid sizes for block %d", config_path(c), i);
            goto out;
        }
    }
    if (!mid)
        u->has_mid = 0;
    else if (strcmp(mid, "UNetMidBlock2DCrossAttn") == 0)
        u->has_mid = 1;
    else {
        rc = unsupported(c, "mid_block_type", mid);
        goto out;
    }
    if (u->down_pad != 1) {
        rc = unsupported(c, "downsample_padding", "other than 1");
        goto out;
    }
    if (u->conv_in_k % 2 == 0 || u->conv_out_k % 2 == 0 || m->in_ch < 1 || m->out_ch < 1 ||
        m->groups < 1 || m->cond_dim < 0) {
        rc = m2p_error(M2P_EFORMAT, "%s: invalid sizes", config_path(c));
        goto out;
    }
    m->t_dim = m->boc[0];
    m->ted = ted > 0 ? ted : m->boc[0] * 4;
    m->cross_dim = u->cross[nb - 1];
    for (int i = 0; i < nb; i++)
        if (u->cross[i] != m->cross_dim) {
            rc = unsupported(c, "cross_attention_dim", "varying per block");
            goto out;
        }
out:
    config_free(c);
    return rc;
}

/* ---- loading ----------------------------------------------------------------------------- */

static int load_block(unet *m, const ucfg *u, int dtype, int is_up, int i, int cin, int cprev,
                      const int *skip_ch, int *skip_at)
{
    unet_block *b = is_up ? &m->up[i] : &m->down[i];
    const char *kind = is_up ? "up_blocks" : "down_blocks";
    int nb = u->nb, ri = is_up ? nb - 1 - i : i; /* config index (up path reversed) */
    b->cout = m->boc[ri];
    b->n_res = u->lpb[ri] + (is_up ? 1 : 0);
    b->has_attn = is_up ? u->up_attn[i] : u->down_attn[i];
    b->resample = i != nb - 1;
    b->res = calloc((size_t)b->n_res, sizeof *b->res);
    if (b->has_attn)
        b->attn = calloc((size_t)b->n_res, sizeof *b->attn);
    if (!b->res || (b->has_attn && !b->attn))
        return m2p_error(M2P_ENOMEM, "out of memory loading the UNet");
    char pre[128];
    int rc;
    for (int j = 0; j < b->n_res; j++) {
        int rin;
        if (is_up) /* CrossAttnUpBlock2D: prev_output_channel or out, plus the skip's channels */
            rin = (j == 0 ? cprev : b->cout) + skip_ch[--*skip_at];
        else
            rin = j == 0 ? cin : b->cout;
        snprintf(pre, sizeof pre, "%s.%d.resnets.%d", kind, i, j);
        if ((rc = nn_resnet_load(m->be, m->w, pre, rin, b->cout, m->ted, m->groups, m->eps, 1.0f,
                                 dtype, &b->res[j])))
            return rc;
        if (b->has_attn) {
            snprintf(pre, sizeof pre, "%s.%d.attentions.%d", kind, i, j);
            if ((rc = unet_transformer_load(m->be, m->w, pre, b->cout, u->heads[ri], u->tlpb[ri],
                                            u->cross[ri], m->groups, u->linear_proj, dtype,
                                            &b->attn[j])))
                return rc;
        }
        weights_release(m->w); /* copied out: keep peak RSS near one copy of the weights */
    }
    if (b->resample) {
        snprintf(pre, sizeof pre, "%s.%d.%s.0.conv", kind, i,
                 is_up ? "upsamplers" : "downsamplers");
        if ((rc = nn_load_conv(m->be, m->w, pre, b->cout, b->cout, 3, is_up ? 1 : 2, 1,
                               is_up ? NN_CONV_BIAS | NN_CONV_UPSAMPLED : NN_CONV_BIAS, dtype,
                               &b->sample_conv)))
            return rc;
    }
    return 0;
}

int unet_load(const char *dir, const m2p_model_params *p, const m2p_backend *be, unet **out)
{
    return unet_load_file(dir, NULL, p, be, out);
}

int unet_load_file(const char *dir, const char *weights_file, const m2p_model_params *p,
                   const m2p_backend *be, unet **out)
{
    *out = NULL;
    int dtype = p ? p->compute_dtype : M2P_DTYPE_F32;
    unet *m = calloc(1, sizeof *m);
    if (!m)
        return m2p_error(M2P_ENOMEM, "out of memory loading the UNet");
    m->be = be = be ? be : m2p_backend_cpu();
    m->own_arena.be = be;
    m->arena = &m->own_arena;
    ucfg u;
    memset(&u, 0, sizeof u);
    int rc = read_config(m, dir, &u);
    if (rc)
        goto fail;
    if ((rc = weights_file ? weights_open_file(weights_file, &m->w) : weights_open(dir, &m->w)))
        goto fail;
    weights_set_cache(m->w, p && p->weight_cache);
    int nb = m->nb, C0 = m->boc[0], CL = m->boc[nb - 1];
    if (!(m->host_row = malloc((size_t)(m->t_dim > m->add_in ? m->t_dim : m->add_in) *
                               sizeof *m->host_row))) {
        rc = m2p_error(M2P_ENOMEM, "out of memory loading the UNet");
        goto fail;
    }
    /* time embedding */
    if ((m->cond_dim > 0 && (rc = nn_load_linear(be, m->w, "time_embedding.cond_proj", m->cond_dim,
                                                 m->t_dim, 0, 0, dtype, &m->cond_proj))) ||
        (rc = nn_load_linear(be, m->w, "time_embedding.linear_1", m->t_dim, m->ted, 1, 0, dtype,
                             &m->lin1)) ||
        (rc = nn_load_linear(be, m->w, "time_embedding.linear_2", m->ted, m->ted, 1, 0, dtype,
                             &m->lin2)) ||
        (m->add_in > 0 && ((rc = nn_load_linear(be, m->w, "add_embedding.linear_1", m->add_in,
                                                m->ted, 1, 0, dtype, &m->add_lin1)) ||
                           (rc = nn_load_linear(be, m->w, "add_embedding.linear_2", m->ted, m->ted,
                                                1, 0, dtype, &m->add_lin2)))) ||
        (rc = nn_load_conv(be, m->w, "conv_in", m->in_ch, C0, u.conv_in_k, 1, u.conv_in_k / 2, 1,
                           dtype, &m->conv_in)))
        goto fail;
    /* down path; remember each skip's channels for the up path */
    int skip_ch[UNET_MAX_SKIPS], ns = 0;
    skip_ch[ns++] = C0;
    int cin = C0;
    for (int i = 0; i < nb; i++) {
        if ((rc = load_block(m, &u, dtype, 0, i, cin, 0, NULL, NULL)))
            goto fail;
        for (int j = 0; j < m->down[i].n_res + m->down[i].resample; j++) {
            if (ns >= UNET_MAX_SKIPS) {
                rc = m2p_error(M2P_EUNSUPPORTED, "UNet: more than %d skip connections",
                               UNET_MAX_SKIPS);
                goto fail;
            }
            skip_ch[ns++] = m->boc[i];
        }
        cin = m->boc[i];
    }
    /* mid block */
    m->has_mid = u.has_mid;
    if (u.has_mid &&
        ((rc = nn_resnet_load(be, m->w, "mid_block.resnets.0", CL, CL, m->ted, m->groups, m->eps,
                              u.mid_scale, dtype, &m->mid_res[0])) ||
         (rc = unet_transformer_load(be, m->w, "mid_block.attentions.0", CL, u.heads[nb - 1],
                                     u.tlpb[nb - 1], u.cross[nb - 1], m->groups, u.linear_proj,
                                     dtype, &m->mid_attn)) ||
         (rc = nn_resnet_load(be, m->w, "mid_block.resnets.1", CL, CL, m->ted, m->groups, m->eps,
                              u.mid_scale, dtype, &m->mid_res[1]))))
        goto fail;
    /* up path: consumes the skips from the end */
    int cprev = CL;
    for (int i = 0; i < nb; i++) {
        int need = u.lpb[nb - 1 - i] + 1;
        if (ns < need) {
            rc = m2p_error(M2P_EFORMAT, "UNet: up block %d needs %d skip connections, %d left", i,
                           need, ns);
            goto fail;
        }
        if ((rc = load_block(m, &u, dtype, 1, i, 0, cprev, skip_ch, &ns)))
            goto fail;
        cprev = m->up[i].cout;
    }
    if (ns != 0) {
        rc = m2p_error(M2P_EFORMAT, "UNet: %d skip connections left unused (layers_per_block)", ns);
        goto fail;
    }
    if ((rc = nn_load_norm(be, m->w, "conv_norm_out", C0, &m->norm_out)) ||
        (rc = nn_load_conv(be, m->w, "conv_out", C0, m->out_ch, u.conv_out_k, 1, u.conv_out_k / 2,
                           1, dtype, &m->conv_out)))
        goto fail;
    weights_release(m->w);
    *out = m;
    return 0;
fail:
    unet_free(m);
    return m2p_error_wrap(rc, "loading UNet");
}

/* ---- scratch plan ------------------------------------------------------------------------ */

typedef struct uplan {
    int H[UNET_MAX_BLOCKS], W[UNET_MAX_BLOCKS]; /* spatial size per level */
    int n_skip;
    size_t skip_off[UNET_MAX_SKIPS], skip_total; /* floats */
    int skip_lvl[UNET_MAX_SKIPS];
    size_t mf, tr, small, total;
} uplan;

static size_t zmax(size_t a, size_t b)
{
    return a > b ? a : b;
}

static void plan(const unet *m, int B, int h, int w, int ctx_len, uplan *p)
{
    memset(p, 0, sizeof *p);
    int nb = m->nb;
    p->H[0] = h;
    p->W[0] = w;
    for (int i = 0; i + 1 < nb; i++) /* Downsample2D: 3x3 stride 2 pad 1 */
        m->be->conv_out_hw(m->be, m->down[i].sample_conv, p->H[i], p->W[i], &p->H[i + 1],
                           &p->W[i + 1]);
    size_t Bz = (size_t)B;
#define HW(l) ((size_t)p->H[l] * (size_t)p->W[l])
    /* skips: conv_in output, then each down resnet(+attn) output and downsample output */
    int ns = 0;
    p->skip_lvl[ns] = 0;
    p->skip_off[ns++] = 0;
    p->skip_total = NN_ALIGN_FLOATS(Bz * HW(0) * m->boc[0]);
    for (int i = 0; i < nb; i++)
        for (int j = 0; j < m->down[i].n_res + m->down[i].resample; j++) {
            int lvl = j < m->down[i].n_res ? i : i + 1;
            p->skip_lvl[ns] = lvl;
            p->skip_off[ns++] = p->skip_total;
            p->skip_total += NN_ALIGN_FLOATS(Bz * HW(lvl) * m->boc[i]);
        }
    p->n_skip = ns;
    /* feature maps: inputs and outputs at every level, concatenations, upsample targets */
    size_t mf = Bz * HW(0) * zmax(zmax(m->in_ch, m->out_ch), m->boc[0]);
    size_t tr = 0, crow = Bz * (size_t)ctx_len;
    for (int i = 0; i < nb; i++) {
        const unet_block *d = &m->down[i];
        for (int j = 0; j < d->n_res; j++) {
            mf = zmax(mf, Bz * HW(i) * zmax(d->res[j].cin, d->cout));
            if (d->has_attn)
                tr = zmax(tr, unet_transformer_scratch(&d->attn[j], Bz * HW(i), crow));
        }
        int lvl = nb - 1 - i;
        const unet_block *u = &m->up[i];
        for (int j = 0; j < u->n_res; j++) {
            mf = zmax(mf, Bz * HW(lvl) * zmax(u->res[j].cin, u->cout));
            if (u->has_attn)
                tr = zmax(tr, unet_transformer_scratch(&u->attn[j], Bz * HW(lvl), crow));
        }
        if (u->resample)
            mf = zmax(mf, Bz * HW(lvl - 1) * u->cout);
    }
    if (m->has_mid)
        tr = zmax(tr, unet_transformer_scratch(&m->mid_attn, Bz * HW(nb - 1), crow));
#undef HW
    p->mf = NN_ALIGN_FLOATS(mf);
    p->tr = NN_ALIGN_FLOATS(tr);
    int maxc = 0;
    for (int i = 0; i < nb; i++)
        maxc = m->boc[i] > maxc ? m->boc[i] : maxc;
    /* t_proj, t_emb hidden, emb, silu(emb), per-resnet temb projection, add_embedding input,
     * and the uploaded timestep_cond and text context */
    p->small = NN_ALIGN_FLOATS(Bz * m->t_dim) + 3 * NN_ALIGN_FLOATS(Bz * m->ted) +
               NN_ALIGN_FLOATS(Bz * maxc) + NN_ALIGN_FLOATS(Bz * m->add_in) +
               NN_ALIGN_FLOATS(Bz * m->cond_dim) + NN_ALIGN_FLOATS(crow * m->cross_dim);
    p->total = p->skip_total + 4 * p->mf + p->tr + p->small;
}

size_t unet_scratch_bytes(const unet *m, int B, int h, int w, int ctx_len)
{
    if (B <= 0 || h <= 0 || w <= 0 || ctx_len <= 0)
        return 0;
    uplan p;
    plan(m, B, h, w, ctx_len, &p);
    return p.total * sizeof(float);
}

/* ---- forward ----------------------------------------------------------------------------- */

/* diffusers get_timestep_embedding in float32 for one value t: exponent = -ln(10000) * i /
 * (half - shift), emb = t * exp(exponent), [sin | cos] (or [cos | sin] with flip_sin_to_cos),
 * D floats (an odd D gets a zero last column, as diffusers pads). exp is rounded from double,
 * i.e. correctly rounded like torch's: SDXL's time ids reach 1024, where one ulp of the
 * frequency moves sin(t f) by 1e-4. */
static void sinusoid(const unet *m, float t, int D, float *out)
{
    int half = D / 2;
    const float neg_log = (float)-log(10000.0);
    for (int i = 0; i < half; i++) {
        float e = neg_log * (float)i;
        e = e / ((float)half - m->freq_shift);
        float a = t * (float)exp((double)e);
        float s = sinf(a), c = cosf(a);
        out[m->flip_sin_to_cos ? half + i : i] = s;
        out[m->flip_sin_to_cos ? i : half + i] = c;
    }
    if (D % 2)
        out[D - 1] = 0.0f;
}

/* The sinusoid of t into every row of out [B, t_dim] (backend memory). */
static int time_proj(const unet *m, float t, int B, float *out)
{
    int D = m->t_dim, rc = 0;
    sinusoid(m, t, D, m->host_row);
    for (int b = 0; b < B && !rc; b++)
        rc = m->be->upload(m->be, out + (size_t)b * D, m->host_row, (size_t)D);
    return rc;
}

/* SDXL text_time: emb += add_embedding(concat(text_embeds, add_time_proj(time_ids))), where
 * add_time_proj maps each time id to a sinusoid of addition_time_embed_dim. Each row of the
 * input is made on the host and uploaded into `in` ([B, add_in]); th [B, ted] is scratch, aug
 * [B, ted] scratch for the tap (backend memory, all three). */
static int add_embedding(unet *m, const unet_added_cond *a, int B, float *in, float *th, float *aug,
                         float *emb)
{
    const m2p_backend *be = m->be;
    const int nt = a->n_time_ids, T = m->add_tdim, D = m->add_in;
    float *tp = m->tap ? malloc((size_t)B * nt * T * sizeof *tp) : NULL;
    int rc = 0;
    for (int b = 0; b < B && !rc; b++) {
        float *row = m->host_row;
        memcpy(row, a->text_embeds + (size_t)b * a->n_text_embeds,
               (size_t)a->n_text_embeds * sizeof *row);
        for (int k = 0; k < nt; k++)
            sinusoid(m, a->time_ids[(size_t)b * nt + k], T, row + a->n_text_embeds + k * T);
        if (tp) /* add_time_proj as diffusers records it: [B * n_time_ids, T] */
            memcpy(tp + (size_t)b * nt * T, row + a->n_text_embeds, (size_t)nt * T * sizeof *tp);
        rc = be->upload(be, in + (size_t)b * D, row, (size_t)D);
    }
    if (tp && !rc) {
        int64_t s[2] = {(int64_t)B * nt, T};
        m->tap("add_time_proj", tp, 2, s, m->tap_ud);
    }
    free(tp);
    if (rc || (rc = be->linear_forward(be, m->add_lin1, in, B, th, NULL)) ||
        (rc = be->silu(be, th, (size_t)B * m->ted)))
        return rc;
    if (m->tap) {
        if ((rc = be->linear_forward(be, m->add_lin2, th, B, aug, NULL)))
            return rc;
        int64_t s[2] = {B, m->ted};
        nn_tap_raw(be, m->tap, m->tap_ud, "add_embedding", aug, 2, s);
    }
    return be->linear_forward(be, m->add_lin2, th, B, emb, emb); /* emb + aug */
}

static int run_block_down(unet *m, unet_block *b, int i, const uplan *p, float *const *slot,
                          int *si, int B, const float *temb, const float *ctx, int ctx_b,
                          int ctx_len, float *t1, float *t2, float *tb, float *tr)
{
    int H = p->H[i], W = p->W[i], rc;
    for (int j = 0; j < b->n_res; j++) {
        const float *x = slot[*si - 1];
        float *y = slot[*si];
        (*si)++;
        if ((rc = nn_resnet_forward(&b->res[j], x, B, H, W, temb, y, t1, t2, tb)))
            return rc;
        if (b->has_attn &&
            (rc = unet_transformer_forward(&b->attn[j], y, B, H * W, ctx, ctx_b, ctx_len, tr)))
            return rc;
    }
    if (b->resample) {
        if ((rc = m->be->conv_forward(m->be, b->sample_conv, slot[*si - 1], B, H, W, slot[*si],
                                      NULL)))
            return rc;
        (*si)++;
        H = p->H[i + 1];
        W = p->W[i + 1];
    }
    if (m->tap) {
        char nm[32];
        snprintf(nm, sizeof nm, "down_blocks.%d", i);
        nn_tap_nhwc(m->be, m->tap, m->tap_ud, nm, slot[*si - 1], B, H, W, b->cout);
    }
    return 0;
}

int unet_forward(unet *m, const float *sample, int B, int h, int w, float t,
                 const float *timestep_cond, const unet_added_cond *added, const float *ctx,
                 int ctx_len, float *out)
{
    if (B <= 0 || h <= 0 || w <= 0 || !sample || !out)
        return m2p_error(M2P_EINVAL, "UNet: bad input size %d x %d x %d", B, h, w);
    if (!ctx || ctx_len <= 0)
        return m2p_error(M2P_EINVAL, "UNet: missing encoder hidden states");
    if (m->cond_dim > 0 && !timestep_cond)
        return m2p_error(M2P_EINVAL, "UNet: this model needs timestep_cond [%d, %d]", B,
                         m->cond_dim);
    if (m->add_in > 0) {
        if (!added || !added->text_embeds || !added->time_ids || added->n_text_embeds <= 0 ||
            added->n_time_ids <= 0)
            return m2p_error(M2P_EINVAL, "UNet: this SDXL-style model (addition_embed_type "
                                         "text_time) needs text_embeds and time_ids");
        if ((long)added->n_text_embeds + (long)added->n_time_ids * m->add_tdim != m->add_in)
            return m2p_error(M2P_EINVAL,
                             "UNet: %d text_embeds + %d time ids x %d = %ld, but the config's "
                             "projection_class_embeddings_input_dim is %d",
                             added->n_text_embeds, added->n_time_ids, m->add_tdim,
                             (long)added->n_text_embeds + (long)added->n_time_ids * m->add_tdim,
                             m->add_in);
    } else if (added) {
        return m2p_error(M2P_EINVAL, "UNet: added conditioning given to a model without "
                                     "addition_embed_type");
    }
    const m2p_backend *be = m->be;
    uplan p;
    plan(m, B, h, w, ctx_len, &p);
    int rc = nn_arena_reserve(m->arena, p.total);
    if (rc)
        return rc;
    nn_arena *a = m->arena;
    float *skips = nn_arena_alloc(a, p.skip_total);
    float *X = nn_arena_alloc(a, p.mf), *CAT = nn_arena_alloc(a, p.mf);
    float *T1 = nn_arena_alloc(a, p.mf), *T2 = nn_arena_alloc(a, p.mf);
    float *TR = nn_arena_alloc(a, p.tr);
    float *tp = nn_arena_alloc(a, (size_t)B * m->t_dim);
    float *th = nn_arena_alloc(a, (size_t)B * m->ted);
    float *emb = nn_arena_alloc(a, (size_t)B * m->ted);
    float *temb = nn_arena_alloc(a, (size_t)B * m->ted);
    int maxc = 0;
    for (int i = 0; i < m->nb; i++)
        maxc = m->boc[i] > maxc ? m->boc[i] : maxc;
    float *tb = nn_arena_alloc(a, (size_t)B * maxc);
    float *ain = m->add_in ? nn_arena_alloc(a, (size_t)B * m->add_in) : tb;
    float *cond = m->cond_dim ? nn_arena_alloc(a, (size_t)B * m->cond_dim) : tb;
    float *cx = nn_arena_alloc(a, (size_t)B * ctx_len * m->cross_dim);
    if (!skips || !X || !CAT || !T1 || !T2 || !TR || !tp || !th || !emb || !temb || !tb || !ain ||
        !cond || !cx)
        return m2p_error(M2P_EINTERNAL, "UNet: scratch plan too small");
    /* Images that share a context share its keys and values: variations of one prompt are one
     * run of images with one context, and with guidance two (unconditional, then prompt); cx
     * holds one context per run, ctx_b of them, and the cross-attentions see ctx_b batches */
    const size_t cn = (size_t)ctx_len * m->cross_dim;
    int ctx_b = 1;
    for (; ctx_b < B; ctx_b++) {
        if (B % ctx_b)
            continue;
        int b = 1, run = B / ctx_b;
        while (b < B &&
               !memcmp(ctx + (size_t)(b - b % run) * cn, ctx + (size_t)b * cn, cn * sizeof(float)))
            b++;
        if (b == B)
            break;
    }
    for (int g = 0; g < ctx_b; g++)
        if ((rc = be->upload(be, cx + g * cn, ctx + (size_t)g * (B / ctx_b) * cn, cn)))
            return rc;
    float *slot[UNET_MAX_SKIPS];
    for (int s = 0; s < p.n_skip; s++)
        slot[s] = skips + p.skip_off[s];

    /* 1. time: sinusoid (+ cond_proj(timestep_cond)) -> linear_1 -> SiLU -> linear_2 */
    if ((rc = time_proj(m, t, B, tp)))
        return rc;
    int64_t s2[2] = {B, m->t_dim};
    nn_tap_raw(be, m->tap, m->tap_ud, "time_proj", tp, 2, s2);
    if (m->cond_proj && ((rc = be->upload(be, cond, timestep_cond, (size_t)B * m->cond_dim)) ||
                         (rc = be->linear_forward(be, m->cond_proj, cond, B, tp, tp))))
        return rc;
    if ((rc = be->linear_forward(be, m->lin1, tp, B, th, NULL)) ||
        (rc = be->silu(be, th, (size_t)B * m->ted)) ||
        (rc = be->linear_forward(be, m->lin2, th, B, emb, NULL)))
        return rc;
    s2[1] = m->ted;
    nn_tap_raw(be, m->tap, m->tap_ud, "time_embedding", emb, 2, s2);
    if (m->add_in > 0 && (rc = add_embedding(m, added, B, ain, th, temb, emb)))
        return rc;
    /* ResnetBlock2D: time_emb_proj(nonlinearity(temb)) */
    if ((rc = be->copy(be, temb, emb, (size_t)B * m->ted)) ||
        (rc = be->silu(be, temb, (size_t)B * m->ted)))
        return rc;

    /* 2. conv_in into skip slot 0 (the NCHW sample uploaded into T2) */
    if ((rc = be->upload(be, T2, sample, (size_t)B * m->in_ch * h * w)) ||
        (rc = be->nchw_to_nhwc(be, T2, B, m->in_ch, h, w, T1)) ||
        (rc = be->conv_forward(be, m->conv_in, T1, B, h, w, slot[0], NULL)))
        return rc;
    nn_tap_nhwc(be, m->tap, m->tap_ud, "conv_in", slot[0], B, h, w, m->boc[0]);

    /* 3. down path: every output lands in its skip slot */
    int si = 1;
    for (int i = 0; i < m->nb; i++)
        if ((rc = run_block_down(m, &m->down[i], i, &p, slot, &si, B, temb, cx, ctx_b, ctx_len, T1,
                                 T2, tb, TR)))
            return rc;

    /* 4. mid block */
    int lvl = m->nb - 1, H = p.H[lvl], W = p.W[lvl], C = m->boc[lvl];
    const float *cur = slot[si - 1];
    if (m->has_mid) {
        if ((rc = nn_resnet_forward(&m->mid_res[0], cur, B, H, W, temb, X, T1, T2, tb)) ||
            (rc = unet_transformer_forward(&m->mid_attn, X, B, H * W, cx, ctx_b, ctx_len, TR)) ||
            (rc = nn_resnet_forward(&m->mid_res[1], X, B, H, W, temb, X, T1, T2, tb)))
            return rc;
        nn_tap_nhwc(be, m->tap, m->tap_ud, "mid_block", X, B, H, W, C);
    } else if ((rc = be->copy(be, X, cur, (size_t)B * H * W * C))) {
        return rc;
    }

    /* 5. up path: concat(hidden, skip) -> resnet (-> transformer), then upsample + conv */
    for (int i = 0; i < m->nb; i++) {
        unet_block *b = &m->up[i];
        for (int j = 0; j < b->n_res; j++) {
            int s = --si, cs = b->res[j].cin - C;
            if ((rc = be->concat_channels(be, X, C, slot[s], cs, B, H * W, CAT)) ||
                (rc = nn_resnet_forward(&b->res[j], CAT, B, H, W, temb, X, T1, T2, tb)))
                return rc;
            C = b->cout;
            if (b->has_attn &&
                (rc = unet_transformer_forward(&b->attn[j], X, B, H * W, cx, ctx_b, ctx_len, TR)))
                return rc;
        }
        if (b->resample) {
            /* Upsample2D: nearest to the next skip's size (x2 unless a size was odd), conv */
            int Ho = p.H[lvl - 1], Wo = p.W[lvl - 1];
            lvl--;
            if (Ho == 2 * H && Wo == 2 * W) { /* the upsample writes the conv's input */
                bk_pre up = {BK_PRE_UPSAMPLE2X, 0, 0.0f, NULL, NULL, 0, NULL};
                rc = be->conv_forward_pre(be, b->sample_conv, &up, X, B, Ho, Wo, T1, X, NULL);
            } else if (!(rc = be->resize_nearest(be, X, B, H, W, C, Ho, Wo, T1))) {
                rc = be->conv_forward(be, b->sample_conv, T1, B, Ho, Wo, X, NULL);
            }
            H = Ho;
            W = Wo;
            if (rc)
                return rc;
        }
        if (m->tap) {
            char nm[32];
            snprintf(nm, sizeof nm, "up_blocks.%d", i);
            nn_tap_nhwc(be, m->tap, m->tap_ud, nm, X, B, H, W, C);
        }
    }

    /* 6. conv_norm_out + SiLU + conv_out */
    if ((rc = nn_norm_out_conv(be, m->conv_out, &m->norm_out, m->groups, m->eps, X, B, H, W, C,
                               m->tap, m->tap_ud, "conv_norm_out", T1, T2)) ||
        (rc = be->nhwc_to_nchw(be, T2, B, H, W, m->out_ch, T1)))
        return rc;
    return be->download(be, out, T1, (size_t)B * H * W * m->out_ch);
}

/* ---- accessors --------------------------------------------------------------------------- */

int unet_in_channels(const unet *m)
{
    return m->in_ch;
}

int unet_cond_dim(const unet *m)
{
    return m->cond_dim;
}

int unet_added_dims(const unet *m, int *in_dim, int *time_dim)
{
    if (in_dim)
        *in_dim = m->add_in;
    if (time_dim)
        *time_dim = m->add_tdim;
    return m->add_in > 0;
}

int unet_cross_dim(const unet *m)
{
    return m->cross_dim;
}

int unet_sample_size(const unet *m)
{
    return m->sample_size;
}

void unet_set_ff_chunk(unet *m, int rows)
{
    rows = rows > 0 ? rows : 0;
    for (int i = 0; i < m->nb; i++) {
        for (int j = 0; m->down[i].has_attn && j < m->down[i].n_res; j++)
            m->down[i].attn[j].ff_chunk = rows;
        for (int j = 0; m->up[i].has_attn && j < m->up[i].n_res; j++)
            m->up[i].attn[j].ff_chunk = rows;
    }
    if (m->has_mid)
        m->mid_attn.ff_chunk = rows;
}

void unet_set_arena(unet *m, nn_arena *shared)
{
    m->arena = shared ? shared : &m->own_arena;
}

void unet_set_tap(unet *m, sd_tap tap, void *ud)
{
    m->tap = tap;
    m->tap_ud = ud;
}

weights *unet_weights(unet *m)
{
    return m->w;
}

static void free_block(const m2p_backend *be, unet_block *b)
{
    nn_resnets_free(b->res, b->n_res);
    if (b->attn) {
        for (int j = 0; j < b->n_res; j++)
            unet_transformer_free(&b->attn[j]);
        free(b->attn);
    }
    be->conv_free(be, b->sample_conv);
}

void unet_free(unet *m)
{
    if (!m)
        return;
    const m2p_backend *be = m->be;
    be->linear_free(be, m->cond_proj);
    be->linear_free(be, m->lin1);
    be->linear_free(be, m->lin2);
    be->linear_free(be, m->add_lin1);
    be->linear_free(be, m->add_lin2);
    be->conv_free(be, m->conv_in);
    be->conv_free(be, m->conv_out);
    for (int i = 0; i < UNET_MAX_BLOCKS; i++) {
        free_block(be, &m->down[i]);
        free_block(be, &m->up[i]);
    }
    free(m->host_row);
    nn_resnet_free(&m->mid_res[0]);
    nn_resnet_free(&m->mid_res[1]);
    unet_transformer_free(&m->mid_attn);
    nn_norm_free(&m->norm_out);
    nn_arena_free(&m->own_arena);
    weights_close(m->w);
    free(m);
}

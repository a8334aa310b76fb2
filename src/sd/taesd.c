/*
 * taesd.c — the TAESD decoder (diffusers AutoencoderTiny / DecoderTiny, after madebyollin's
 * taesd.py): tanh(z/3)*3, conv, act, then per stage num_decoder_blocks AutoencoderTinyBlocks
 * (relu(conv(act(conv(act(conv(x))))) + x)), nearest upsample and a conv, and a final conv to
 * RGB; the result is mapped to [-1, 1] by x*2-1. Sizes come from config.json
 * (decoder_block_out_channels, num_decoder_blocks, latent_channels, out_channels, act_fn,
 * upsampling_scaling_factor). Weights "decoder.layers.N.*" (or the original "N+1.*" names).
 * Taps: "clamp", "layers.N" (NCHW). Runs on a compute backend (tensor/backend.h): latents are
 * uploaded, the image downloaded.
 */
#include "core/error.h"
#include "model/config.h"
#include "sd/components.h"
#include "sd/nn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { L_CONV, L_ACT, L_BLOCK, L_UP };

typedef struct taesd_layer {
    int kind, cin, cout;
    bk_conv *conv;     /* L_CONV */
    bk_conv *bconv[3]; /* L_BLOCK: conv.0, conv.2, conv.4 */
} taesd_layer;

#define TAESD_MAX_STAGES 8
#define TAESD_MAX_LAYERS 128

struct taesd {
    const m2p_backend *be;
    int latent_ch, out_ch;
    int act_relu; /* block / layer activation: 1 relu, 0 silu */
    int n;
    taesd_layer layer[TAESD_MAX_LAYERS];
    nn_arena own_arena; /* used unless the pipeline shares one (taesd_set_arena) */
    nn_arena *arena;
    sd_tap tap;
    void *tap_ud;
};

static int act(const taesd *m, float *x, size_t n)
{
    return (m->act_relu ? m->be->relu : m->be->silu)(m->be, x, n);
}

/* Prefix of layer idx: "decoder.layers.N[.rest]", or madebyollin's "N+1[.rest]". */
static const char *lprefix(char *buf, size_t n, int orig, int idx, const char *rest)
{
    if (orig)
        snprintf(buf, n, "%d%s%s", idx + 1, rest ? "." : "", rest ? rest : "");
    else
        snprintf(buf, n, "decoder.layers.%d%s%s", idx, rest ? "." : "", rest ? rest : "");
    return buf;
}

static int add_layer(taesd *m, int kind, int cin, int cout, taesd_layer **out)
{
    if (m->n >= TAESD_MAX_LAYERS)
        return m2p_error(M2P_EUNSUPPORTED, "TAESD: more than %d layers", TAESD_MAX_LAYERS);
    taesd_layer *l = &m->layer[m->n++];
    l->kind = kind;
    l->cin = cin;
    l->cout = cout;
    *out = l;
    return 0;
}

int taesd_load(const char *dir, const m2p_model_params *p, const m2p_backend *be, taesd **out)
{
    *out = NULL;
    int dtype = p ? p->compute_dtype : M2P_DTYPE_F32;
    taesd *m = calloc(1, sizeof *m);
    if (!m)
        return m2p_error(M2P_ENOMEM, "out of memory loading TAESD");
    m->be = be = be ? be : m2p_backend_cpu();
    m->own_arena.be = be;
    m->arena = &m->own_arena;
    m2p_config *c = NULL;
    weights *w = NULL;
    int boc[TAESD_MAX_STAGES], nblk[TAESD_MAX_STAGES], nb1 = 0, nb2 = 0, upf = 2;
    const char *actname = NULL;
    int rc = config_open(dir, &c);
    if (rc)
        goto fail;
    if ((rc = config_opt_int(c, "latent_channels", 4, &m->latent_ch)) ||
        (rc = config_opt_int(c, "out_channels", 3, &m->out_ch)) ||
        (rc = config_int_array(c, "decoder_block_out_channels", boc, TAESD_MAX_STAGES, &nb1)) ||
        (rc = config_int_array(c, "num_decoder_blocks", nblk, TAESD_MAX_STAGES, &nb2)) ||
        (rc = config_opt_int(c, "upsampling_scaling_factor", 2, &upf)) ||
        (rc = config_opt_string(c, "act_fn", "relu", &actname)))
        goto fail;
    if (nb1 != nb2) {
        rc = m2p_error(M2P_EFORMAT,
                       "%s: decoder_block_out_channels has %d entries, num_decoder_blocks %d",
                       config_path(c), nb1, nb2);
        goto fail;
    }
    if (upf != 2) {
        rc = m2p_error(M2P_EUNSUPPORTED, "%s: upsampling_scaling_factor %d (only 2 is supported)",
                       config_path(c), upf);
        goto fail;
    }
    if (strcmp(actname, "relu") == 0)
        m->act_relu = 1;
    else if (strcmp(actname, "silu") == 0)
        m->act_relu = 0;
    else {
        rc = m2p_error(M2P_EUNSUPPORTED, "%s: act_fn '%s' is not supported", config_path(c),
                       actname);
        goto fail;
    }
    if ((rc = weights_open(dir, &w)))
        goto fail;
    int orig = !weights_has(w, "decoder.layers.0.weight") && weights_has(w, "1.weight");

    /* DecoderTiny.__init__ layer list */
    taesd_layer *l = NULL;
    char nm[256];
    if ((rc = add_layer(m, L_CONV, m->latent_ch, boc[0], &l)) ||
        (rc = nn_load_conv(be, w, lprefix(nm, sizeof nm, orig, m->n - 1, NULL), m->latent_ch,
                           boc[0], 3, 1, 1, 1, dtype, &l->conv)) ||
        (rc = add_layer(m, L_ACT, boc[0], boc[0], &l)))
        goto fail;
    int cur = boc[0];
    for (int i = 0; i < nb1; i++) {
        int last = i == nb1 - 1, nc = boc[i];
        for (int j = 0; j < nblk[i]; j++) {
            /* AutoencoderTinyBlock(nc, nc): identity skip, so the input must have nc channels */
            if (cur != nc) {
                rc = m2p_error(M2P_EUNSUPPORTED,
                               "%s: decoder_block_out_channels change from %d to %d between "
                               "stages (diffusers' DecoderTiny cannot run that either)",
                               config_path(c), cur, nc);
                goto fail;
            }
            if ((rc = add_layer(m, L_BLOCK, nc, nc, &l)))
                goto fail;
            for (int k = 0; k < 3; k++) {
                char rest[16];
                snprintf(rest, sizeof rest, "conv.%d", 2 * k);
                if ((rc = nn_load_conv(be, w, lprefix(nm, sizeof nm, orig, m->n - 1, rest), nc, nc,
                                       3, 1, 1, 1, dtype, &l->bconv[k])))
                    goto fail;
            }
        }
        if (!last && (rc = add_layer(m, L_UP, nc, nc, &l)))
            goto fail;
        int co = last ? m->out_ch : nc;
        if ((rc = add_layer(m, L_CONV, nc, co, &l)) ||
            (rc = nn_load_conv(be, w, lprefix(nm, sizeof nm, orig, m->n - 1, NULL), nc, co, 3, 1, 1,
                               last ? NN_CONV_BIAS : NN_CONV_UPSAMPLED, dtype, &l->conv)))
            goto fail;
        cur = co;
    }
    config_free(c);
    weights_release(w);
    weights_close(w);
    *out = m;
    return 0;
fail:
    config_free(c);
    weights_close(w);
    taesd_free(m);
    return m2p_error_wrap(rc, "loading TAESD");
}

int taesd_decode(taesd *m, const float *z, int B, int h, int w, float *out)
{
    if (B <= 0 || h <= 0 || w <= 0)
        return m2p_error(M2P_EINVAL, "TAESD: bad latent size %d x %d x %d", B, h, w);
    /* plan: the largest feature map over the layer list */
    size_t maxf = (size_t)B * h * w * m->latent_ch;
    int H = h, W = w;
    for (int i = 0; i < m->n; i++) {
        if (m->layer[i].kind == L_UP) {
            H *= 2;
            W *= 2;
        }
        size_t f = (size_t)B * H * W * m->layer[i].cout;
        if (f > maxf)
            maxf = f;
    }
    int rc = nn_arena_reserve(m->arena, 3 * NN_ALIGN_FLOATS(maxf));
    if (rc)
        return rc;
    float *x = nn_arena_alloc(m->arena, maxf), *t1 = nn_arena_alloc(m->arena, maxf),
          *t2 = nn_arena_alloc(m->arena, maxf), *tmp;
    if (!x || !t1 || !t2)
        return m2p_error(M2P_EINTERNAL, "TAESD: scratch plan too small");
    const m2p_backend *be = m->be;
    H = h;
    W = w;
    int C = m->latent_ch;
    size_t nz = (size_t)B * C * H * W;
    if ((rc = be->upload(be, t2, z, nz)) || (rc = be->nchw_to_nhwc(be, t2, B, C, H, W, x)) ||
        (rc = be->tanh_scale(be, x, nz, 3.0f))) /* DecoderTiny: torch.tanh(x / 3) * 3 */
        return rc;
    nn_tap_nhwc(be, m->tap, m->tap_ud, "clamp", x, B, H, W, C);
    for (int i = 0; i < m->n; i++) {
        taesd_layer *l = &m->layer[i];
        size_t n;
        switch (l->kind) {
        case L_CONV:
            if ((rc = be->conv_forward(be, l->conv, x, B, H, W, t1, NULL)))
                return rc;
            tmp = x, x = t1, t1 = tmp;
            C = l->cout;
            break;
        case L_ACT:
            if ((rc = act(m, x, (size_t)B * H * W * C)))
                return rc;
            break;
        case L_BLOCK:
            n = (size_t)B * H * W * C;
            if ((rc = be->conv_forward(be, l->bconv[0], x, B, H, W, t1, NULL)) ||
                (rc = act(m, t1, n)) ||
                (rc = be->conv_forward(be, l->bconv[1], t1, B, H, W, t2, NULL)) ||
                (rc = act(m, t2, n)) ||
                (rc = be->conv_forward(be, l->bconv[2], t2, B, H, W, t1, x)) ||
                (rc = be->relu(be, t1, n))) /* AutoencoderTinyBlock.fuse */
                return rc;
            tmp = x, x = t1, t1 = tmp;
            break;
        case L_UP:
            H *= 2;
            W *= 2;
            if (i + 1 < m->n && m->layer[i + 1].kind == L_CONV) {
                /* the conv after it reads the upsampled map (a bf16 conv never makes it:
                 * backend.h BK_PRE_UPSAMPLE2X); the Upsample layer itself has no tap */
                bk_pre up = {BK_PRE_UPSAMPLE2X, 0, 0.0f, NULL, NULL, 0, NULL};
                l = &m->layer[++i];
                if ((rc = be->conv_forward_pre(be, l->conv, &up, x, B, H, W, t2, t1, NULL)))
                    return rc;
                C = l->cout;
            } else if ((rc = be->upsample2x(be, x, B, H / 2, W / 2, C, t1))) {
                return rc;
            }
            tmp = x, x = t1, t1 = tmp;
            break;
        }
        if (m->tap) {
            char nm[32];
            snprintf(nm, sizeof nm, "layers.%d", i);
            nn_tap_nhwc(be, m->tap, m->tap_ud, nm, x, B, H, W, C);
        }
    }
    size_t n = (size_t)B * H * W * C;
    if ((rc = be->nhwc_to_nchw(be, x, B, H, W, C, t1)) || (rc = be->download(be, out, t1, n)))
        return rc;
    for (size_t i = 0; i < n; i++)     /* on the host image */
        out[i] = out[i] * 2.0f - 1.0f; /* DecoderTiny: x.mul(2).sub(1) */
    return 0;
}

void taesd_set_arena(taesd *m, nn_arena *shared)
{
    m->arena = shared ? shared : &m->own_arena;
}

void taesd_set_tap(taesd *m, sd_tap tap, void *ud)
{
    m->tap = tap;
    m->tap_ud = ud;
}

void taesd_free(taesd *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n; i++) {
        m->be->conv_free(m->be, m->layer[i].conv);
        for (int k = 0; k < 3; k++)
            m->be->conv_free(m->be, m->layer[i].bconv[k]);
    }
    nn_arena_free(&m->own_arena);
    free(m);
}

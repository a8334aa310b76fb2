/*
 * clip_text.c — the CLIP text encoder (transformers CLIPTextModel and
 * CLIPTextModelWithProjection, modeling_clip.py): token + position embeddings,
 * num_hidden_layers pre-LayerNorm encoder layers (causal multi-head self-attention with q/k/v
 * fused into one matmul, then an MLP with quick_gelu or exact gelu), final_layer_norm; the
 * pooled EOS row and text_projection (SDXL's text_encoder_2). Outputs: last_hidden_state or
 * any earlier layer's hidden state (SDXL's penultimate), pooled, text_embeds. Every size comes
 * from the part's config.json. Taps: "embeddings", "encoder.layers.N".
 * clip_text_unload frees the weights and keeps the config and the open safetensors files; the
 * next encode loads them again (a one-shot generate drops ~0.46 GiB of f32 ViT-L weights for
 * the UNet and VAE stages).
 * Runs on a compute backend (tensor/backend.h): the embedding tables, norms and activations live
 * in its memory; ids come in and the wanted outputs go out as host arrays.
 */
#include "core/error.h"
#include "model/config.h"
#include "sd/components.h"
#include "sd/nn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct clip_layer {
    nn_norm ln1, ln2;
    bk_linear *qkv, *out, *fc1, *fc2;
} clip_layer;

struct clip_text {
    const m2p_backend *be;
    int hidden, layers, heads, inter, vocab, max_pos, eos_id, proj_dim;
    float eps;
    int act_quick;  /* 1: quick_gelu, 0: gelu (erf) */
    float *tok_emb; /* [vocab, hidden], backend memory */
    float *pos_emb; /* [max_pos, hidden], backend memory */
    clip_layer *layer;
    nn_norm final_ln;
    bk_linear *proj; /* text_projection [proj_dim, hidden], no bias; NULL without */
    weights *w;
    int dtype;          /* compute dtype of the ops */
    int has_proj;       /* text_projection in the files (kept while unloaded) */
    const char *pre;    /* "text_model." or "" (a bare export) */
    nn_arena own_arena; /* used unless the pipeline shares one (clip_text_set_arena) */
    nn_arena *arena;
    sd_tap tap;
    void *tap_ud;
};

static int read_config(clip_text *m, const char *dir)
{
    m2p_config *c;
    int rc = config_open(dir, &c);
    if (rc)
        return rc;
    const char *act = NULL;
    if ((rc = config_int(c, "hidden_size", &m->hidden)) ||
        (rc = config_int(c, "num_hidden_layers", &m->layers)) ||
        (rc = config_int(c, "num_attention_heads", &m->heads)) ||
        (rc = config_int(c, "intermediate_size", &m->inter)) ||
        (rc = config_int(c, "vocab_size", &m->vocab)) ||
        (rc = config_opt_int(c, "max_position_embeddings", 77, &m->max_pos)) ||
        (rc = config_opt_float(c, "layer_norm_eps", 1e-5f, &m->eps)) ||
        (rc = config_opt_int(c, "eos_token_id", 2, &m->eos_id)) ||
        (rc = config_opt_int(c, "projection_dim", 512, &m->proj_dim)) || /* CLIPTextConfig's */
        (rc = config_opt_string(c, "hidden_act", "quick_gelu", &act)))
        goto out;
    if (m->proj_dim < 1) {
        rc = m2p_error(M2P_EFORMAT, "%s: 'projection_dim' %d must be positive", config_path(c),
                       m->proj_dim);
        goto out;
    }
    if (strcmp(act, "quick_gelu") == 0)
        m->act_quick = 1;
    else if (strcmp(act, "gelu") == 0)
        m->act_quick = 0;
    else {
        rc = m2p_error(M2P_EUNSUPPORTED, "%s: hidden_act '%s' is not supported", config_path(c),
                       act);
        goto out;
    }
    if (m->hidden <= 0 || m->layers <= 0 || m->heads <= 0 || m->inter <= 0 || m->vocab <= 0 ||
        m->max_pos <= 0 || m->hidden % m->heads) {
        rc = m2p_error(M2P_EFORMAT,
                       "%s: inconsistent sizes (hidden_size %d, num_attention_heads %d, "
                       "layers %d, intermediate_size %d)",
                       config_path(c), m->hidden, m->heads, m->layers, m->inter);
        goto out;
    }
out:
    config_free(c);
    return rc;
}

static int load_weights(clip_text *m);

int clip_text_load(const char *dir, const m2p_model_params *p, const m2p_backend *be,
                   clip_text **out)
{
    *out = NULL;
    int dtype = p ? p->compute_dtype : M2P_DTYPE_F32;
    clip_text *m = calloc(1, sizeof *m);
    if (!m)
        return m2p_error(M2P_ENOMEM, "out of memory loading the text encoder");
    m->be = be ? be : m2p_backend_cpu();
    m->own_arena.be = m->be;
    m->arena = &m->own_arena;
    int rc = read_config(m, dir);
    if (rc)
        goto fail;
    if ((rc = weights_open(dir, &m->w)))
        goto fail;
    weights_set_cache(m->w, p && p->weight_cache);
    m->dtype = dtype;
    /* transformers saves CLIPTextModel as "text_model.*"; accept a bare export too. */
    m->pre = weights_has(m->w, "text_model.embeddings.token_embedding.weight") ? "text_model." : "";
    if ((rc = load_weights(m)))
        goto fail;
    *out = m;
    return 0;
fail:
    clip_text_free(m);
    return m2p_error_wrap(rc, "loading text encoder");
}

/* The weights (embeddings, layers, final norm, projection) from the open files into m. */
static int load_weights(clip_text *m)
{
    const char *pre = m->pre;
    const int dtype = m->dtype;
    const m2p_backend *be = m->be;
    int rc;
    char nm[256], base[200];
    int C = m->hidden;
    snprintf(nm, sizeof nm, "%sembeddings.token_embedding.weight", pre);
    if ((rc = nn_get_backend(be, m->w, nm, 2, (const int64_t[2]){m->vocab, C}, &m->tok_emb)))
        goto fail;
    snprintf(nm, sizeof nm, "%sembeddings.position_embedding.weight", pre);
    if ((rc = nn_get_backend(be, m->w, nm, 2, (const int64_t[2]){m->max_pos, C}, &m->pos_emb)))
        goto fail;
    m->layer = calloc((size_t)m->layers, sizeof *m->layer);
    if (!m->layer) {
        rc = m2p_error(M2P_ENOMEM, "out of memory loading the text encoder");
        goto fail;
    }
    for (int i = 0; i < m->layers; i++) {
        clip_layer *L = &m->layer[i];
        snprintf(base, sizeof base, "%sencoder.layers.%d", pre, i);
        char q[256], k[256], v[256];
        snprintf(q, sizeof q, "%s.self_attn.q_proj", base);
        snprintf(k, sizeof k, "%s.self_attn.k_proj", base);
        snprintf(v, sizeof v, "%s.self_attn.v_proj", base);
        const char *qkv[3] = {q, k, v};
        int outs[3] = {C, C, C};
        if ((rc =
                 nn_load_norm(be, m->w, nn_name(nm, sizeof nm, base, "layer_norm1"), C, &L->ln1)) ||
            (rc = nn_load_linear_cat(be, m->w, qkv, 3, C, outs, 1, 0, dtype, &L->qkv)) ||
            (rc = nn_load_linear(be, m->w, nn_name(nm, sizeof nm, base, "self_attn.out_proj"), C, C,
                                 1, 0, dtype, &L->out)) ||
            (rc =
                 nn_load_norm(be, m->w, nn_name(nm, sizeof nm, base, "layer_norm2"), C, &L->ln2)) ||
            (rc = nn_load_linear(be, m->w, nn_name(nm, sizeof nm, base, "mlp.fc1"), C, m->inter, 1,
                                 0, dtype, &L->fc1)) ||
            (rc = nn_load_linear(be, m->w, nn_name(nm, sizeof nm, base, "mlp.fc2"), m->inter, C, 1,
                                 0, dtype, &L->fc2)))
            goto fail;
        weights_release(m->w); /* copied out: keep peak RSS near one copy of the weights */
    }
    snprintf(nm, sizeof nm, "%sfinal_layer_norm", pre);
    if ((rc = nn_load_norm(be, m->w, nm, C, &m->final_ln)))
        goto fail;
    /* CLIPTextModelWithProjection keeps text_projection beside text_model; a plain
     * CLIPTextModel folder has none (its projection_dim in config.json is then unused). */
    if (weights_has(m->w, "text_projection.weight")) {
        if ((rc = nn_load_linear(be, m->w, "text_projection", C, m->proj_dim, 0, 0, dtype,
                                 &m->proj)))
            goto fail;
    }
    m->has_proj = m->proj != NULL;
    weights_release(m->w);
    return 0;
fail:
    clip_text_unload(m);
    return rc;
}

void clip_text_unload(clip_text *m)
{
    const m2p_backend *be = m->be;
    if (m->layer) {
        for (int i = 0; i < m->layers; i++) {
            clip_layer *L = &m->layer[i];
            nn_norm_free(&L->ln1);
            nn_norm_free(&L->ln2);
            be->linear_free(be, L->qkv);
            be->linear_free(be, L->out);
            be->linear_free(be, L->fc1);
            be->linear_free(be, L->fc2);
        }
        free(m->layer);
        m->layer = NULL;
    }
    nn_norm_free(&m->final_ln);
    be->linear_free(be, m->proj);
    m->proj = NULL;
    be->free(be, m->tok_emb);
    be->free(be, m->pos_emb);
    m->tok_emb = m->pos_emb = NULL;
    if (m->w)
        weights_release(m->w);
}

int clip_text_loaded(const clip_text *m)
{
    return m->layer != NULL;
}

/* Pooled row of transformers' CLIPTextTransformer: with the legacy eos_token_id 2 the first
 * position of the largest id (argmax(ids)), else argmax(ids == eos_token_id): the first
 * position holding it, 0 when there is none. */
static int eos_pos(const clip_text *m, const int32_t *ids, int L)
{
    int best = 0;
    if (m->eos_id == 2) {
        for (int t = 1; t < L; t++)
            if (ids[t] > ids[best])
                best = t;
        return best;
    }
    for (int t = 0; t < L; t++)
        if (ids[t] == m->eos_id)
            return t;
    return 0;
}

int clip_text_forward(clip_text *m, const int32_t *ids, int B, int L, float *out)
{
    return clip_text_encode(m, ids, B, L, 0, 1, out, NULL, NULL);
}

int clip_text_encode(clip_text *m, const int32_t *ids, int B, int L, int skip, int final_norm,
                     float *hidden, float *pooled, float *text_embeds)
{
    if (B <= 0 || L <= 0 || L > m->max_pos)
        return m2p_error(M2P_EINVAL, "text encoder: %d x %d tokens (at most %d per prompt)", B, L,
                         m->max_pos);
    if (!m->layer) {
        int rc = load_weights(m);
        if (rc)
            return m2p_error_wrap(rc, "loading text encoder again");
    }
    if (skip < 0 || skip >= m->layers)
        return m2p_error(M2P_EINVAL, "text encoder: cannot skip %d of its %d layers", skip,
                         m->layers);
    if (text_embeds && !m->proj)
        return m2p_error(M2P_EINVAL, "text encoder: no text_projection (not a "
                                     "CLIPTextModelWithProjection) for text_embeds");
    for (int i = 0; i < B * L; i++)
        if (ids[i] < 0 || ids[i] >= m->vocab)
            return m2p_error(M2P_EINVAL, "text encoder: token id %d outside the vocabulary (%d)",
                             ids[i], m->vocab);
    const m2p_backend *be = m->be;
    const int C = m->hidden, rows = B * L, dh = C / m->heads;
    const size_t RC = (size_t)rows * C;
    int want_pool = pooled || text_embeds;
    size_t n_te = text_embeds ? (size_t)B * m->proj_dim : 0;
    size_t need = NN_ALIGN_FLOATS(RC) * 3 + NN_ALIGN_FLOATS((size_t)rows * 3 * C) +
                  NN_ALIGN_FLOATS((size_t)rows * m->inter) + NN_ALIGN_FLOATS((size_t)B * C) +
                  NN_ALIGN_FLOATS(n_te);
    int rc = nn_arena_reserve(m->arena, need);
    if (rc)
        return rc;
    /* the residual stream lives in `hidden` unless the caller wants a different layer there */
    float *x = nn_arena_alloc(m->arena, RC);
    float *n = nn_arena_alloc(m->arena, RC);
    float *att = nn_arena_alloc(m->arena, RC);
    float *qkv = nn_arena_alloc(m->arena, (size_t)rows * 3 * C);
    float *f = nn_arena_alloc(m->arena, (size_t)rows * m->inter);
    float *pool = nn_arena_alloc(m->arena, (size_t)B * C);
    float *te = n_te ? nn_arena_alloc(m->arena, n_te) : pool;
    if (!x || !n || !att || !qkv || !f || !pool || !te)
        return m2p_error(M2P_EINTERNAL, "text encoder: scratch plan too small");

    /* CLIPTextEmbeddings: token_embedding(ids) + position_embedding(arange(L)) */
    if ((rc = be->embed(be, ids, B, L, m->tok_emb, m->pos_emb, C, x)))
        return rc;
    int64_t shape[3] = {B, L, C};
    nn_tap_raw(be, m->tap, m->tap_ud, "embeddings", x, 3, shape);

    const float scale = 1.0f / sqrtf((float)dh);
    const int out_layer = m->layers - 1 - skip;
    const int last = want_pool || m->tap ? m->layers - 1 : out_layer;
    for (int i = 0; i <= last; i++) {
        clip_layer *Ly = &m->layer[i];
        if ((rc = be->layernorm(be, x, rows, C, m->eps, Ly->ln1.gamma, Ly->ln1.beta, n)) ||
            (rc = be->linear_forward(be, Ly->qkv, n, rows, qkv, NULL)) ||
            (rc = be->attention(be, qkv, 3 * C, qkv + C, qkv + 2 * C, 3 * C, B, L, L, m->heads, dh,
                                scale, 1, att)) ||
            (rc = be->linear_forward(be, Ly->out, att, rows, x, x)) ||
            (rc = be->layernorm(be, x, rows, C, m->eps, Ly->ln2.gamma, Ly->ln2.beta, n)) ||
            (rc = be->linear_forward(be, Ly->fc1, n, rows, f, NULL)) ||
            (rc = (m->act_quick ? be->quick_gelu : be->gelu)(be, f, (size_t)rows * m->inter)) ||
            (rc = be->linear_forward(be, Ly->fc2, f, rows, x, x)))
            return rc;
        if (m->tap) {
            char nm[64];
            snprintf(nm, sizeof nm, "encoder.layers.%d", i);
            nn_tap_raw(be, m->tap, m->tap_ud, nm, x, 3, shape);
        }
        if (i == out_layer && hidden) {
            /* n is free until the next layer's LayerNorm */
            if (final_norm && (rc = be->layernorm(be, x, rows, C, m->eps, m->final_ln.gamma,
                                                  m->final_ln.beta, n)))
                return rc;
            if ((rc = be->download(be, hidden, final_norm ? n : x, RC)))
                return rc;
        }
    }
    if (!want_pool)
        return 0;
    /* pooled = final_layer_norm(last_hidden_state)[b, eos]: normalise only those rows */
    for (int b = 0; b < B; b++) {
        int e = eos_pos(m, ids + (size_t)b * L, L);
        if ((rc = be->layernorm(be, x + ((size_t)b * L + e) * C, 1, C, m->eps, m->final_ln.gamma,
                                m->final_ln.beta, pool + (size_t)b * C)))
            return rc;
    }
    if (pooled && (rc = be->download(be, pooled, pool, (size_t)B * C)))
        return rc;
    if (text_embeds && ((rc = be->linear_forward(be, m->proj, pool, B, te, NULL)) ||
                        (rc = be->download(be, text_embeds, te, n_te))))
        return rc;
    return 0;
}

int clip_text_hidden(const clip_text *m)
{
    return m->hidden;
}

int clip_text_layers(const clip_text *m)
{
    return m->layers;
}

int clip_text_projection_dim(const clip_text *m)
{
    return m->has_proj ? m->proj_dim : 0;
}

void clip_text_set_arena(clip_text *m, nn_arena *shared)
{
    m->arena = shared ? shared : &m->own_arena;
}

void clip_text_set_tap(clip_text *m, sd_tap tap, void *ud)
{
    m->tap = tap;
    m->tap_ud = ud;
}

weights *clip_text_weights(clip_text *m)
{
    return m->w;
}

void clip_text_free(clip_text *m)
{
    if (!m)
        return;
    clip_text_unload(m);
    nn_arena_free(&m->own_arena);
    weights_close(m->w);
    free(m);
}

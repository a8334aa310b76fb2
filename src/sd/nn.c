/*
 * nn.c — shared building blocks of the SD networks: strict loading of conv / linear / norm
 * weights into the backend's objects and memory (copied once, so the safetensors mapping can be
 * released), diffusers' ResnetBlock2D (resnet.py: GroupNorm+SiLU, conv, time-embedding add,
 * GroupNorm+SiLU, conv, 1x1 conv_shortcut, output_scale_factor), a grow-only scratch arena of
 * backend memory and the NHWC -> NCHW debug taps (downloaded to the host). With the weight cache
 * on, bf16 conv and linear weights come from the mapped cache file (model/wcache.h) when it holds
 * them in the layout this CPU wants, and a new cache file gets each op's prepared weights as they
 * are made. In bf16 mode a resnet's hidden activation stays bf16 from conv1 to norm2, which adds
 * the time embedding itself (tensor/backend.h conv_forward_bf16, BK_PRE_GROUPNORM_BF16).
 */
#include "sd/nn.h"

#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *nn_name(char *buf, size_t n, const char *a, const char *b)
{
    snprintf(buf, n, "%s.%s", a, b);
    return buf;
}

int nn_get_backend(const m2p_backend *be, weights *w, const char *name, int ndim,
                   const int64_t *shape, float **out)
{
    const float *p;
    float *owned = NULL;
    *out = NULL;
    int rc = weights_get(w, name, ndim, shape, &p, &owned);
    if (rc)
        return rc;
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t)shape[i];
    /* Always an exact-size copy: a converted buffer may be a bigger pooled one, which goes back
     * to the pool for the next conversion. */
    float *c = be->alloc(be, n);
    if (c && (rc = be->upload(be, c, p, n))) {
        be->free(be, c);
        c = NULL;
    }
    weights_put(w, owned);
    if (!c)
        return m2p_error_wrap(rc ? rc : M2P_ENOMEM, "copying tensor '%s'", name);
    *out = c;
    return 0;
}

int nn_load_norm(const m2p_backend *be, weights *w, const char *prefix, int C, nn_norm *out)
{
    char nm[256];
    int64_t shape[1] = {C};
    memset(out, 0, sizeof *out);
    out->be = be;
    out->C = C;
    int rc = nn_get_backend(be, w, nn_name(nm, sizeof nm, prefix, "weight"), 1, shape, &out->gamma);
    if (!rc)
        rc = nn_get_backend(be, w, nn_name(nm, sizeof nm, prefix, "bias"), 1, shape, &out->beta);
    if (rc)
        nn_norm_free(out);
    return rc;
}

void nn_norm_free(nn_norm *n)
{
    if (n->be) {
        n->be->free(n->be, n->gamma);
        n->be->free(n->be, n->beta);
    }
    n->gamma = n->beta = NULL;
}

/* What the loaders here make of a tensor before the ops prepare it (concatenations, names in
 * the keys): bump it when that changes, so that cache files written before are not used. */
#define NN_PREPARED_VERSION 2

/* The weight cache of w for ops of this dtype, or NULL. f32 too: an fp16 model's f32 weights
 * take twice its size on disk, but converting and reordering them cost a fresh process 2-4 s
 * of page faults and copies (CPUs without bf16 have no other dtype), and mapping costs a
 * fraction of that (BENCHMARKS.md); wcache_open skips the file when the disk is short. */
static wcache *load_cache(const m2p_backend *be, weights *w, int dtype)
{
    char ops[96], tag[128];
    be->prepared_tag(be, dtype, ops, sizeof ops);
    snprintf(tag, sizeof tag, "nn %d %s", NN_PREPARED_VERSION, ops);
    return weights_cache(w, tag, dtype == M2P_DTYPE_BF16 ? 2 : 4);
}

/* The prepared weights of `key` from a mapped cache (0), or 1 when the caller converts them
 * from the source. pw holds a reference on the cache for the op that is made from it. */
static int cached_weights(wcache *wc, const char *key, bk_prepared *pw)
{
    if (!wcache_is_reader(wc) ||
        wcache_find(wc, key, &pw->layout, &pw->layout_size, &pw->data, &pw->size))
        return 1;
    pw->release = wcache_unref;
    pw->release_ud = wc;
    wcache_ref(wc);
    return 0;
}

/* After create_prepared: rc 0 (the op holds the reference), 1 (layout of another CPU: convert,
 * and have the cache rewritten) or an error. */
static int cached_done(wcache *wc, int rc)
{
    if (rc == 0)
        return 0;
    wcache_unref(wc);
    if (rc > 0)
        wcache_mark_stale(wc);
    return rc;
}

int nn_load_conv(const m2p_backend *be, weights *w, const char *prefix, int cin, int cout, int k,
                 int stride, int pad, int flags, int dtype, bk_conv **out)
{
    char nm[256], key[512];
    int bias = flags & NN_CONV_BIAS, bk_flags = flags & NN_CONV_UPSAMPLED ? BK_CONV_UPSAMPLED : 0;
    *out = NULL;
    int64_t ws[4] = {cout, cin, k, k}, bs[1] = {cout};
    const float *wp, *bp = NULL;
    float *wo = NULL, *bo = NULL;
    int rc;
    wcache *wc = load_cache(be, w, dtype);
    snprintf(key, sizeof key, "conv %s %dx%dx%d s%d p%d%s", prefix, cout, cin, k, stride, pad,
             bk_flags ? " up" : "");
    bk_prepared pw;
    if (wc && (rc = weights_check(w, nn_name(nm, sizeof nm, prefix, "weight"), 4, ws)))
        return rc;
    if (wc && cached_weights(wc, key, &pw) == 0) {
        if (bias &&
            (rc = weights_get(w, nn_name(nm, sizeof nm, prefix, "bias"), 1, bs, &bp, &bo))) {
            cached_done(wc, rc);
            return rc;
        }
        rc = cached_done(wc, be->conv_create_prepared(be, out, &pw, bp, cin, cout, k, stride, pad,
                                                      dtype, bk_flags));
        weights_put(w, bo);
        bp = NULL;
        bo = NULL;
        if (rc < 0)
            return m2p_error_wrap(rc, "%s", prefix);
        if (rc == 0)
            return 0;
    }
    rc = weights_get(w, nn_name(nm, sizeof nm, prefix, "weight"), 4, ws, &wp, &wo);
    if (rc)
        return rc;
    if (bias) {
        rc = weights_get(w, nn_name(nm, sizeof nm, prefix, "bias"), 1, bs, &bp, &bo);
        if (rc) {
            weights_put(w, wo);
            return rc;
        }
    }
    rc = be->conv_create(be, out, wp, bp, cin, cout, k, stride, pad, dtype, bk_flags);
    weights_put(w, wo); /* reused by the next conversion instead of faulting in fresh pages */
    weights_put(w, bo);
    if (rc)
        return m2p_error_wrap(rc, "%s", prefix);
    if (wc && !wcache_is_reader(wc)) {
        pw.release = NULL;
        be->conv_prepared(be, *out, &pw);
        if (pw.data) /* else out of memory for the copy: a reader's miss has the file rewritten */
            wcache_add(wc, key, pw.layout, pw.layout_size, pw.data, pw.size);
        if (pw.release)
            pw.release(pw.release_ud);
    }
    return 0;
}

int nn_load_linear_cat(const m2p_backend *be, weights *w, const char *const *prefixes, int n,
                       int in, const int *outs, int bias, int conv1x1, int dtype, bk_linear **out)
{
    char nm[256], key[1024];
    *out = NULL;
    int total = 0;
    for (int i = 0; i < n; i++)
        total += outs[i];
    const float *wp[8], *bp[8];
    float *wo[8] = {0}, *bo[8] = {0};
    float *wcat = NULL, *bcat = NULL;
    int rc = 0;
    if (n < 1 || n > 8)
        return m2p_error(M2P_EINTERNAL, "nn_load_linear_cat: %d parts", n);
    wcache *wc = load_cache(be, w, dtype);
    bk_prepared pw;
    int from_cache = 0;
    if (wc) {
        size_t o = 0;
        o += (size_t)snprintf(key, sizeof key, "linear");
        for (int i = 0; i < n && o < sizeof key; i++)
            o += (size_t)snprintf(key + o, sizeof key - o, " %s:%d", prefixes[i], outs[i]);
        if (o < sizeof key)
            snprintf(key + o, sizeof key - o, " in %d c%d", in, conv1x1);
        for (int i = 0; i < n && !rc; i++) {
            int64_t ws[4] = {outs[i], in, 1, 1};
            rc = weights_check(w, nn_name(nm, sizeof nm, prefixes[i], "weight"), conv1x1 ? 4 : 2,
                               ws);
        }
        if (rc)
            return rc;
        from_cache = cached_weights(wc, key, &pw) == 0;
    }
    for (int i = 0; i < n && !rc; i++) {
        if (from_cache) {
            int64_t bs[1] = {outs[i]};
            if (bias)
                rc = weights_get(w, nn_name(nm, sizeof nm, prefixes[i], "bias"), 1, bs, &bp[i],
                                 &bo[i]);
            continue;
        }
        int64_t ws[4] = {outs[i], in, 1, 1}, bs[1] = {outs[i]};
        rc = weights_get(w, nn_name(nm, sizeof nm, prefixes[i], "weight"), conv1x1 ? 4 : 2, ws,
                         &wp[i], &wo[i]);
        if (!rc && bias)
            rc = weights_get(w, nn_name(nm, sizeof nm, prefixes[i], "bias"), 1, bs, &bp[i], &bo[i]);
    }
    if (rc) {
        if (from_cache)
            cached_done(wc, rc);
        goto done;
    }
    const float *W = from_cache ? NULL : wp[0], *Bv = bias ? bp[0] : NULL;
    if (n > 1) {
        wcat = from_cache ? NULL : malloc((size_t)total * (size_t)in * sizeof *wcat);
        bcat = bias ? malloc((size_t)total * sizeof *bcat) : NULL;
        if ((!from_cache && !wcat) || (bias && !bcat)) {
            rc = m2p_error(M2P_ENOMEM, "out of memory loading %s", prefixes[0]);
            if (from_cache)
                cached_done(wc, rc);
            goto done;
        }
        size_t row = 0;
        for (int i = 0; i < n; i++) {
            if (wcat)
                memcpy(wcat + row * (size_t)in, wp[i], (size_t)outs[i] * (size_t)in * sizeof *wcat);
            if (bias)
                memcpy(bcat + row, bp[i], (size_t)outs[i] * sizeof *bcat);
            row += (size_t)outs[i];
        }
        W = wcat;
        Bv = bcat;
    }
    if (from_cache) {
        rc = cached_done(wc, be->linear_create_prepared(be, out, &pw, Bv, in, total, dtype));
        if (rc > 0) { /* another CPU's layout: convert from the source after all */
            for (int i = 0; i < n; i++) {
                weights_put(w, bo[i]);
                bo[i] = NULL;
            }
            free(bcat);
            return nn_load_linear_cat(be, w, prefixes, n, in, outs, bias, conv1x1, dtype, out);
        }
    } else {
        rc = be->linear_create(be, out, W, Bv, in, total, dtype);
        if (!rc && wc && !wcache_is_reader(wc)) {
            be->linear_prepared(be, *out, &pw);
            wcache_add(wc, key, pw.layout, pw.layout_size, pw.data, pw.size);
        }
    }
    if (rc)
        rc = m2p_error_wrap(rc, "%s", prefixes[0]);
done:
    for (int i = 0; i < n; i++) {
        weights_put(w, wo[i]);
        weights_put(w, bo[i]);
    }
    free(wcat);
    free(bcat);
    return rc;
}

int nn_load_linear(const m2p_backend *be, weights *w, const char *prefix, int in, int out, int bias,
                   int conv1x1, int dtype, bk_linear **res)
{
    const char *p[1] = {prefix};
    int o[1] = {out};
    return nn_load_linear_cat(be, w, p, 1, in, o, bias, conv1x1, dtype, res);
}

/* ---- ResnetBlock2D ----------------------------------------------------------------------- */

int nn_resnet_load(const m2p_backend *be, weights *w, const char *prefix, int cin, int cout,
                   int temb_ch, int groups, float eps, float out_scale, int dtype, nn_resnet *r)
{
    char nm[256];
    memset(r, 0, sizeof *r);
    r->be = be;
    r->cin = cin;
    r->cout = cout;
    r->groups = groups;
    r->temb_ch = temb_ch;
    r->eps = eps;
    r->out_scale = out_scale;
    r->bf16 = dtype == M2P_DTYPE_BF16;
    if (cin % groups || cout % groups)
        return m2p_error(M2P_EFORMAT, "%s: channels %d/%d not divisible by %d groups", prefix, cin,
                         cout, groups);
    int rc = nn_load_norm(be, w, nn_name(nm, sizeof nm, prefix, "norm1"), cin, &r->norm1);
    if (!rc)
        rc = nn_load_conv(be, w, nn_name(nm, sizeof nm, prefix, "conv1"), cin, cout, 3, 1, 1, 1,
                          dtype, &r->conv1);
    if (!rc && temb_ch > 0)
        rc = nn_load_linear(be, w, nn_name(nm, sizeof nm, prefix, "time_emb_proj"), temb_ch, cout,
                            1, 0, dtype, &r->temb_proj);
    if (!rc)
        rc = nn_load_norm(be, w, nn_name(nm, sizeof nm, prefix, "norm2"), cout, &r->norm2);
    if (!rc)
        rc = nn_load_conv(be, w, nn_name(nm, sizeof nm, prefix, "conv2"), cout, cout, 3, 1, 1, 1,
                          dtype, &r->conv2);
    if (!rc && cin != cout)
        rc = nn_load_conv(be, w, nn_name(nm, sizeof nm, prefix, "conv_shortcut"), cin, cout, 1, 1,
                          0, 1, dtype, &r->shortcut);
    if (rc)
        nn_resnet_free(r);
    return rc;
}

void nn_resnet_free(nn_resnet *r)
{
    nn_norm_free(&r->norm1);
    nn_norm_free(&r->norm2);
    if (r->be) {
        r->be->conv_free(r->be, r->conv1);
        r->be->conv_free(r->be, r->conv2);
        r->be->conv_free(r->be, r->shortcut);
        r->be->linear_free(r->be, r->temb_proj);
    }
    r->conv1 = r->conv2 = r->shortcut = NULL;
    r->temb_proj = NULL;
}

void nn_resnets_free(nn_resnet *r, int n)
{
    if (!r)
        return;
    for (int j = 0; j < n; j++)
        nn_resnet_free(&r[j]);
    free(r);
}

int nn_resnet_forward(nn_resnet *r, const float *x, int B, int H, int W, const float *temb_act,
                      float *out, float *t1, float *t2, float *tb)
{
    const m2p_backend *be = r->be;
    int HW = H * W, rc;
    /* GroupNorm+SiLU in front of each conv (bf16 mode: written as the conv's bf16 input) */
    bk_pre n1 = {BK_PRE_GROUPNORM, r->groups, r->eps, r->norm1.gamma, r->norm1.beta, 1, NULL};
    bk_pre n2 = {BK_PRE_GROUPNORM, r->groups, r->eps, r->norm2.gamma, r->norm2.beta, 1, NULL};
    const int temb = r->temb_proj && temb_act;
    if (r->bf16) {
        /* t2 holds conv1's output as bf16; norm2 reads it, adding temb_proj(temb) itself */
        if ((rc = be->conv_forward_bf16(be, r->conv1, &n1, x, B, H, W, t1, t2)) ||
            (temb && (rc = be->linear_forward(be, r->temb_proj, temb_act, B, tb, NULL))))
            return rc;
        n2.kind = BK_PRE_GROUPNORM_BF16;
        n2.add = temb ? tb : NULL;
    } else {
        if ((rc = be->conv_forward_pre(be, r->conv1, &n1, x, B, H, W, t1, t2, NULL)))
            return rc;
        if (temb && ((rc = be->linear_forward(be, r->temb_proj, temb_act, B, tb, NULL)) ||
                     (rc = be->add_channel_bias(be, t2, tb, B, HW, r->cout))))
            return rc;
    }
    /* the shortcut before norm2: out may be t1, which norm1 used */
    const float *res = x;
    if (r->shortcut) {
        if ((rc = be->conv_forward(be, r->shortcut, x, B, H, W, out, NULL)))
            return rc;
        res = out;
    }
    if ((rc = be->conv_forward_pre(be, r->conv2, &n2, t2, B, H, W, t2, out, res)))
        return rc;
    if (r->out_scale != 1.0f)
        return be->scale(be, out, 1.0f / r->out_scale, (size_t)B * HW * r->cout);
    return 0;
}

/* ---- arena ------------------------------------------------------------------------------- */

int nn_arena_reserve(nn_arena *a, size_t floats)
{
    a->used = 0;
    if (floats <= a->cap)
        return 0;
    if (!a->be)
        return m2p_error(M2P_EINTERNAL, "scratch arena without a backend");
    a->be->free(a->be, a->base);
    a->base = NULL;
    a->cap = 0;
    float *p = a->be->alloc_scratch(a->be, floats);
    if (!p)
        return m2p_error(M2P_ENOMEM, "out of memory: %zu MiB of scratch",
                         floats * sizeof(float) >> 20);
    a->base = p;
    a->cap = floats;
    return 0;
}

float *nn_arena_alloc(nn_arena *a, size_t floats)
{
    size_t n = NN_ALIGN_FLOATS(floats);
    if (a->used + n > a->cap)
        return NULL; /* the caller's plan was wrong: a bug, checked by the caller */
    float *p = a->base + a->used;
    a->used += n;
    return p;
}

void nn_arena_free(nn_arena *a)
{
    if (a->be)
        a->be->free(a->be, a->base);
    a->base = NULL;
    a->cap = a->used = 0;
}

int nn_norm_out_conv(const m2p_backend *be, bk_conv *conv, const nn_norm *norm, int groups,
                     float eps, const float *x, int B, int H, int W, int C, sd_tap tap,
                     void *tap_ud, const char *tap_name, float *t1, float *y)
{
    if (!tap) {
        bk_pre gn = {BK_PRE_GROUPNORM, groups, eps, norm->gamma, norm->beta, 1, NULL};
        return be->conv_forward_pre(be, conv, &gn, x, B, H, W, t1, y, NULL);
    }
    int rc = be->groupnorm(be, x, B, H * W, C, groups, eps, norm->gamma, norm->beta, 0, t1);
    if (rc)
        return rc;
    nn_tap_nhwc(be, tap, tap_ud, tap_name, t1, B, H, W, C);
    if ((rc = be->silu(be, t1, (size_t)B * H * W * C)))
        return rc;
    return be->conv_forward(be, conv, t1, B, H, W, y, NULL);
}

/* ---- taps -------------------------------------------------------------------------------- */

void nn_tap_nhwc(const m2p_backend *be, sd_tap tap, void *ud, const char *name, const float *x,
                 int B, int H, int W, int C)
{
    if (!tap)
        return;
    size_t n = (size_t)B * H * W * C;
    float *t = malloc(n * sizeof *t), *d = be->alloc(be, n);
    /* debug aid only: skip the tap rather than fail the forward */
    if (t && d && !be->nhwc_to_nchw(be, x, B, H, W, C, d) && !be->download(be, t, d, n)) {
        int64_t shape[4] = {B, C, H, W};
        tap(name, t, 4, shape, ud);
    }
    be->free(be, d);
    free(t);
}

void nn_tap_raw(const m2p_backend *be, sd_tap tap, void *ud, const char *name, const float *x,
                int ndim, const int64_t *shape)
{
    if (!tap)
        return;
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t)shape[i];
    float *t = malloc(n * sizeof *t);
    if (t && !be->download(be, t, x, n))
        tap(name, t, ndim, shape, ud);
    free(t);
}

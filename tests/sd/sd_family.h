/*
 * sd_family.h — golden checks shared by the SD 2.x and SDXL component tests (header-only,
 * static): a tokenizer folder against a fixture's tokens.json (ids, untruncated ids, token
 * strings), a UNet part against unet.safetensors at one timestep (noise_pred and every
 * recorded per-block intermediate through the taps, optional SDXL added conditioning), a
 * VAE decoder against vae_decoder.safetensors, bf16 budgets, and the components on the
 * recorded whole runs. Tolerances come from the fixture manifests.
 */
#ifndef M2P_TESTS_SD_FAMILY_H
#define M2P_TESTS_SD_FAMILY_H

#include "mus2pic.h"
#include "sd/clip_tokenizer.h"
#include "sd/components.h"
#include "sd_golden.h"
#include "tensor/ops.h"

#include <math.h>

static void fam_check_ids(const int32_t *got, int n_got, json_t *want, const char *what)
{
    CHECK_INT(n_got, (long long)json_array_size(want));
    size_t n = json_array_size(want) < (size_t)n_got ? json_array_size(want) : (size_t)n_got;
    for (size_t i = 0; i < n; i++) {
        long long w = json_integer_value(json_array_get(want, i));
        if (got[i] != w) {
            fprintf(stderr, "%s: id[%zu] = %d, expected %lld\n", what, i, got[i], w);
            test_failures++;
            break;
        }
    }
}

/* Every prompt of tokens.json through the tokenizer in `tokdir`; `sfx` picks the keys
 * ("" -> input_ids, input_ids_untruncated, tokens_untruncated; "_2" -> input_ids_2, ...).
 * Returns the number of prompts checked. */
static int fam_check_tokens(const char *tokdir, const char *tokens_json, const char *sfx,
                            int32_t want_pad)
{
    clip_tokenizer *tok = NULL;
    int rc = clip_tokenizer_load(test_fixture(tokdir), &tok);
    if (rc)
        fprintf(stderr, "%s\n", m2p_errmsg());
    CHECK_INT(rc, 0);
    if (!tok)
        return 0;
    CHECK_INT(clip_pad_id(tok), want_pad);
    json_error_t jerr;
    json_t *root = json_load_file(test_fixture(tokens_json), 0, &jerr);
    CHECK(root != NULL);
    json_t *prompts = json_object_get(root, "prompts");
    char k_ids[32], k_all[48], k_str[48];
    snprintf(k_ids, sizeof k_ids, "input_ids%s", sfx);
    snprintf(k_all, sizeof k_all, "input_ids%s_untruncated", sfx);
    snprintf(k_str, sizeof k_str, "tokens%s_untruncated", *sfx ? "_2" : "");
    size_t np = json_array_size(prompts);
    for (size_t p = 0; p < np; p++) {
        json_t *e = json_array_get(prompts, p);
        const char *text = json_string_value(json_object_get(e, "prompt"));
        int32_t ids[77];
        int n_untr = -1;
        CHECK_INT(clip_tokenize(tok, text, ids, 77, &n_untr), 0);
        fam_check_ids(ids, 77, json_object_get(e, k_ids), text);
        int32_t *all = NULL;
        int n_all = 0;
        CHECK_INT(clip_tokenize_full(tok, text, &all, &n_all), 0);
        fam_check_ids(all, n_all, json_object_get(e, k_all), text);
        CHECK_INT(n_untr, n_all);
        json_t *strs = json_object_get(e, k_str);
        CHECK_INT((long long)json_array_size(strs), n_all);
        for (int i = 0; i < n_all && (size_t)i < json_array_size(strs); i++)
            CHECK_STR(clip_token_str(tok, all[i]), json_string_value(json_array_get(strs, i)));
        free(all);
    }
    json_decref(root);
    clip_tokenizer_free(tok);
    return (int)np;
}

/* UNet inputs as the fixture records them; added conditioning only for SDXL. */
typedef struct fam_unet_in {
    float *sample, *ctx, *text_embeds, *time_ids;
    int64_t ss[4], cs[3], es[2], ts[2];
} fam_unet_in;

static int fam_unet_inputs(st_file *g, fam_unet_in *in, int sdxl)
{
    memset(in, 0, sizeof *in);
    in->sample = gold_get(g, "sample", in->ss, NULL);
    in->ctx = gold_get(g, "encoder_hidden_states", in->cs, NULL);
    if (sdxl) {
        in->text_embeds = gold_get(g, "text_embeds", in->es, NULL);
        in->time_ids = gold_get(g, "time_ids", in->ts, NULL);
        return in->sample && in->ctx && in->text_embeds && in->time_ids;
    }
    return in->sample && in->ctx;
}

static void fam_unet_inputs_free(fam_unet_in *in)
{
    free(in->sample);
    free(in->ctx);
    free(in->text_embeds);
    free(in->time_ids);
}

/* noise_pred_t<t> for a batch of B copies, with the taps compared when want_taps > 0 (the
 * number of intermediates the fixture records at that timestep). Returns the worst err/tol. */
static double fam_check_unet(unet *m, st_file *g, json_t *man, const fam_unet_in *in, int t, int B,
                             int want_taps)
{
    char name[64], prefix[64];
    snprintf(name, sizeof name, "noise_pred_t%d", t);
    snprintf(prefix, sizeof prefix, "t%d.intermediate.", t);
    float *want = gold_get(g, name, NULL, NULL);
    if (!want)
        return 1e9;
    size_t n = (size_t)(in->ss[1] * in->ss[2] * in->ss[3]), nc = (size_t)(in->cs[1] * in->cs[2]);
    size_t ne = in->text_embeds ? (size_t)in->es[1] : 0, nt = in->time_ids ? (size_t)in->ts[1] : 0;
    float *x = malloc(n * B * sizeof *x), *ctx = malloc(nc * B * sizeof *ctx);
    float *te = malloc((ne + 1) * B * sizeof *te), *ti = malloc((nt + 1) * B * sizeof *ti);
    float *got = malloc(n * B * sizeof *got);
    for (int b = 0; b < B; b++) {
        memcpy(x + n * b, in->sample, n * sizeof *x);
        memcpy(ctx + nc * b, in->ctx, nc * sizeof *ctx);
        if (ne)
            memcpy(te + ne * b, in->text_embeds, ne * sizeof *te);
        if (nt)
            memcpy(ti + nt * b, in->time_ids, nt * sizeof *ti);
    }
    unet_added_cond added = {te, (int)ne, ti, (int)nt};
    gold_taps taps = {g, man, "unet.safetensors", prefix, 0, 0};
    unet_set_tap(m, want_taps ? gold_tap : NULL, &taps);
    int rc = unet_forward(m, x, B, (int)in->ss[2], (int)in->ss[3], (float)t, NULL,
                          ne ? &added : NULL, ctx, (int)in->cs[1], got);
    if (rc)
        fprintf(stderr, "%s\n", m2p_errmsg());
    CHECK_INT(rc, 0);
    double tol = gold_tol(man, "unet.safetensors", name), worst = 0;
    for (int b = 0; b < B; b++) {
        double err = test_max_abs_diff(got + n * b, want, n, name);
        CHECK(err <= tol);
        worst = fmax(worst, err / tol);
    }
    if (want_taps) {
        CHECK_INT(taps.compared, want_taps);
        worst = fmax(worst, taps.worst_ratio);
    }
    fprintf(stderr, "unet t=%d B=%d: worst err/tol %.3f (%d taps)\n", t, B, worst, taps.compared);
    unet_set_tap(m, NULL, NULL);
    free(x);
    free(ctx);
    free(te);
    free(ti);
    free(got);
    free(want);
    return worst;
}

/* vae.decode(latents / scaling_factor) with its 5 recorded intermediates; `scaling` is the
 * factor the fixture's config states. */
static void fam_check_vae(const char *dir, const char *golden, const char *manifest, double scaling)
{
    static const char *KEY = "vae_decoder.safetensors";
    st_file *g = NULL;
    CHECK_INT(st_open(test_fixture(golden), &g), 0);
    json_t *man = gold_manifest(manifest);
    vae *m = NULL;
    int rc = vae_load(test_fixture(dir), NULL, NULL, &m);
    if (rc)
        fprintf(stderr, "%s\n", m2p_errmsg());
    CHECK_INT(rc, 0);
    int64_t zs[4], ys[4];
    float *lat = g ? gold_get(g, "latents", zs, NULL) : NULL;
    float *ls = g ? gold_get(g, "latents_scaled", NULL, NULL) : NULL;
    float *want = g ? gold_get(g, "image", ys, NULL) : NULL;
    if (!m || !man || !lat || !ls || !want)
        goto done;
    CHECK_NEAR(vae_scaling_factor(m), scaling, 1e-7);
    size_t nz = (size_t)(zs[1] * zs[2] * zs[3]), ny = (size_t)(ys[1] * ys[2] * ys[3]);
    float sf = vae_scaling_factor(m);
    float *z = malloc(nz * sizeof *z), *got = malloc(ny * sizeof *got);
    for (size_t i = 0; i < nz; i++)
        z[i] = lat[i] / sf; /* what the pipeline does with the final latents */
    CHECK(test_max_abs_diff(z, ls, nz, "latents_scaled") <= gold_tol(man, KEY, "latents_scaled"));
    gold_taps taps = {g, man, KEY, "intermediate.", 0, 0};
    vae_set_tap(m, gold_tap, &taps);
    CHECK_INT(vae_decode(m, z, 1, (int)zs[2], (int)zs[3], got), 0);
    double err = test_max_abs_diff(got, want, ny, "image"), tol = gold_tol(man, KEY, "image");
    CHECK(err <= tol);
    CHECK_INT(taps.compared, 5);
    fprintf(stderr, "vae %s: image err/tol %.3f, taps worst %.3f\n", dir, err / tol,
            taps.worst_ratio);
    free(z);
    free(got);
done:
    free(lat);
    free(ls);
    free(want);
    vae_free(m);
    json_decref(man);
    st_close(g);
}

/* ---- bf16: the same goldens with bf16 weights and matmuls, within a stated budget ------- */

/* 1 when this CPU runs bf16 (else the bf16 checks say so and are skipped). */
static int fam_bf16_ok(void)
{
    if (op_bf16_supported())
        return 1;
    test_skip("bf16: this CPU has no avx512_bf16 / AMX, bf16 checks not run");
    return 0;
}

/* Max |got - want| relative to max(1, max |want|). */
static double fam_rel_err(const float *got, const float *want, size_t n)
{
    double err = 0, ref = 1;
    for (size_t i = 0; i < n; i++) {
        err = fmax(err, fabs((double)got[i] - want[i]));
        ref = fmax(ref, fabs((double)want[i]));
    }
    return err / ref;
}

/* noise_pred_t<t> of the UNet in `dir` loaded with bf16 compute; returns the relative error
 * (negative when bf16 is not available on this CPU). */
static double fam_bf16_unet(const char *dir, st_file *g, const fam_unet_in *in, int t)
{
    if (!fam_bf16_ok())
        return -1;
    m2p_model_params p = m2p_model_default_params();
    p.compute_dtype = M2P_DTYPE_BF16;
    unet *m = NULL;
    int rc = unet_load(test_fixture(dir), &p, NULL, &m);
    CHECK_INT(rc, 0);
    char name[64];
    snprintf(name, sizeof name, "noise_pred_t%d", t);
    float *want = gold_get(g, name, NULL, NULL);
    size_t n = (size_t)(in->ss[1] * in->ss[2] * in->ss[3]);
    float *got = malloc(n * sizeof *got);
    double rel = 1e9;
    unet_added_cond added = {in->text_embeds, in->text_embeds ? (int)in->es[1] : 0, in->time_ids,
                             in->time_ids ? (int)in->ts[1] : 0};
    if (m && want && got &&
        unet_forward(m, in->sample, 1, (int)in->ss[2], (int)in->ss[3], (float)t, NULL,
                     in->text_embeds ? &added : NULL, in->ctx, (int)in->cs[1], got) == 0)
        rel = fam_rel_err(got, want, n);
    fprintf(stderr, "bf16 %s %s: max err %.4f of max(1, max|ref|)\n", dir, name, rel);
    free(want);
    free(got);
    unet_free(m);
    return rel;
}

/* A text encoder in bf16 on the golden ids `ids_name`: hidden state `want_name` (skip and
 * final_norm as clip_text_encode takes them); relative error as above. */
static double fam_bf16_text(const char *dir, st_file *g, const char *ids_name, int skip,
                            int final_norm, const char *want_name)
{
    if (!fam_bf16_ok())
        return -1;
    m2p_model_params p = m2p_model_default_params();
    p.compute_dtype = M2P_DTYPE_BF16;
    clip_text *m = NULL;
    CHECK_INT(clip_text_load(test_fixture(dir), &p, NULL, &m), 0);
    st_tensor *t = st_find(g, ids_name);
    float *want = gold_get(g, want_name, NULL, NULL);
    double rel = 1e9;
    if (m && t && want) {
        int B = (int)t->shape[0], L = (int)t->shape[1], C = clip_text_hidden(m);
        int32_t *ids = malloc(sizeof(int32_t) * (size_t)B * L);
        float *got = malloc(sizeof(float) * (size_t)B * L * C);
        const int64_t *src = t->data;
        for (int i = 0; ids && i < B * L; i++)
            ids[i] = (int32_t)src[i];
        if (ids && got && clip_text_encode(m, ids, B, L, skip, final_norm, got, NULL, NULL) == 0)
            rel = fam_rel_err(got, want, (size_t)B * L * C);
        free(ids);
        free(got);
    }
    fprintf(stderr, "bf16 %s %s: max err %.4f of max(1, max|ref|)\n", dir, want_name, rel);
    free(want);
    clip_text_free(m);
    return rel;
}

/* The VAE decoder in bf16 on the golden latents; relative error as above. */
static double fam_bf16_vae(const char *dir, const char *golden)
{
    if (!fam_bf16_ok())
        return -1;
    m2p_model_params p = m2p_model_default_params();
    p.compute_dtype = M2P_DTYPE_BF16;
    st_file *g = NULL;
    CHECK_INT(st_open(test_fixture(golden), &g), 0);
    vae *m = NULL;
    CHECK_INT(vae_load(test_fixture(dir), &p, NULL, &m), 0);
    int64_t zs[4], ys[4];
    float *z = g ? gold_get(g, "latents_scaled", zs, NULL) : NULL;
    float *want = g ? gold_get(g, "image", ys, NULL) : NULL;
    double rel = 1e9;
    if (m && z && want) {
        size_t ny = (size_t)(ys[1] * ys[2] * ys[3]);
        float *got = malloc(ny * sizeof *got);
        if (got && vae_decode(m, z, 1, (int)zs[2], (int)zs[3], got) == 0)
            rel = fam_rel_err(got, want, ny);
        free(got);
    }
    fprintf(stderr, "bf16 %s image: max err %.4f of max(1, max|ref|)\n", dir, rel);
    free(z);
    free(want);
    vae_free(m);
    st_close(g);
    return rel;
}

/* ---- recorded whole runs: the components on a pipeline_*.safetensors golden ------------ */

/* The prompt (and negative prompt under CFG) through tokenizer(s) and text encoder(s) gives the
 * recorded encoder_hidden_states [negative, positive] (SDXL: both penultimate states
 * concatenated, add_text_embeds = text_encoder_2's text_embeds), every step's UNet call (batch
 * 2 under CFG, float timesteps, SDXL time ids) the recorded unet_out, and the VAE decodes the
 * final latents (LCM: the last denoised) to image_decoded. No pipeline involved. */
typedef struct fam_run {
    const char *name; /* fixture folder */
    int sdxl;
    clip_tokenizer *tok[2];
    clip_text *te[2];
    unet *un;
    vae *va;
    json_t *man;
} fam_run;

static int fam_run_open(fam_run *f, const char *name, int sdxl)
{
    memset(f, 0, sizeof *f);
    f->name = name;
    f->sdxl = sdxl;
    char p[256];
    int rc = 0;
    for (int e = 0; e < 1 + sdxl && !rc; e++) {
        snprintf(p, sizeof p, "%s/model/tokenizer%s", name, e ? "_2" : "");
        rc = clip_tokenizer_load(test_fixture(p), &f->tok[e]);
        snprintf(p, sizeof p, "%s/model/text_encoder%s", name, e ? "_2" : "");
        if (!rc)
            rc = clip_text_load(test_fixture(p), NULL, NULL, &f->te[e]);
    }
    snprintf(p, sizeof p, "%s/model/unet", name);
    if (!rc)
        rc = unet_load(test_fixture(p), NULL, NULL, &f->un);
    snprintf(p, sizeof p, "%s/model/vae", name);
    if (!rc)
        rc = vae_load(test_fixture(p), NULL, NULL, &f->va);
    snprintf(p, sizeof p, "%s/golden/manifest.json", name);
    if (!rc)
        f->man = gold_manifest(p);
    if (rc)
        fprintf(stderr, "%s: %s\n", name, m2p_errmsg());
    CHECK_INT(rc, 0);
    return rc == 0 && f->man;
}

static void fam_run_close(fam_run *f)
{
    for (int e = 0; e < 2; e++) {
        clip_tokenizer_free(f->tok[e]);
        clip_text_free(f->te[e]);
    }
    unet_free(f->un);
    vae_free(f->va);
    json_decref(f->man);
}

static double fam_cmp_gold(st_file *g, json_t *man, const char *file, const char *name,
                           const float *got, size_t n)
{
    st_tensor *t = st_find(g, name);
    CHECK(t != NULL && (size_t)t->numel == n);
    if (!t || (size_t)t->numel != n)
        return 1e9;
    float *want = gold_get(g, name, NULL, NULL);
    if (!want)
        return 1e9;
    char what[128];
    snprintf(what, sizeof what, "%s:%s", file, name);
    double err = test_max_abs_diff(got, want, n, what), tol = gold_tol(man, file, name);
    if (!(err <= tol))
        fprintf(stderr, "  %s: %.3g over tolerance %.3g\n", what, err, tol);
    CHECK(err <= tol);
    free(want);
    return tol > 0 ? err / tol : 1e9;
}

/* Prompt embeddings of one text as the pipelines make them: SD 2.x last_hidden_state [77, C];
 * SDXL concat(te1 penultimate, te2 penultimate) [77, C1 + C2] and text_embeds [P]. */
static int fam_encode(fam_run *f, const char *text, float *ctx, float *text_embeds)
{
    int32_t ids[77];
    if (!f->sdxl) {
        if (clip_tokenize(f->tok[0], text, ids, 77, NULL))
            return -1;
        return clip_text_forward(f->te[0], ids, 1, 77, ctx);
    }
    int C1 = clip_text_hidden(f->te[0]), C2 = clip_text_hidden(f->te[1]);
    float *h1 = malloc(77 * sizeof *h1 * C1), *h2 = malloc(77 * sizeof *h2 * C2);
    int rc = !h1 || !h2;
    if (!rc)
        rc = clip_tokenize(f->tok[0], text, ids, 77, NULL) ||
             clip_text_encode(f->te[0], ids, 1, 77, 1, 0, h1, NULL, NULL) ||
             clip_tokenize(f->tok[1], text, ids, 77, NULL) ||
             clip_text_encode(f->te[1], ids, 1, 77, 1, 0, h2, NULL, text_embeds);
    for (int r = 0; !rc && r < 77; r++) {
        memcpy(ctx + (size_t)r * (C1 + C2), h1 + (size_t)r * C1, (size_t)C1 * sizeof *ctx);
        memcpy(ctx + (size_t)r * (C1 + C2) + C1, h2 + (size_t)r * C2, (size_t)C2 * sizeof *ctx);
    }
    free(h1);
    free(h2);
    return rc ? -1 : 0;
}

static void fam_check_run(fam_run *f, const char *file)
{
    char path[256];
    snprintf(path, sizeof path, "%s/golden/%s", f->name, file);
    st_file *g = NULL;
    CHECK_INT(st_open(test_fixture(path), &g), 0);
    json_t *info = json_object_get(json_object_get(f->man, "files"), file);
    json_t *call = json_object_get(info, "call");
    const char *prompt = json_string_value(json_object_get(call, "prompt"));
    const char *neg = json_string_value(json_object_get(call, "negative_prompt"));
    double guidance = json_number_value(json_object_get(call, "guidance_scale"));
    json_t *ts = json_object_get(info, "timesteps");
    const char *sched = json_string_value(json_object_get(info, "scheduler_class"));
    CHECK(g && prompt && json_array_size(ts) > 0 && sched);
    if (!g || !prompt || !sched)
        goto out;
    int cfg = guidance > 1.0, B = cfg ? 2 : 1;
    /* the fixtures' CFG runs all give a negative prompt (SDXL's zeros are a pipeline matter) */
    CHECK(!cfg || neg);
    int ctx_dim = unet_cross_dim(f->un), P = f->sdxl ? clip_text_projection_dim(f->te[1]) : 0;
    size_t nc = (size_t)77 * ctx_dim;
    float *ctx = malloc(nc * B * sizeof *ctx), *te = malloc(((size_t)P + 1) * B * sizeof *te);
    double worst = 0;
    int rc = cfg ? fam_encode(f, neg, ctx, te) : 0;
    if (!rc)
        rc = fam_encode(f, prompt, ctx + nc * (B - 1), te + (size_t)P * (B - 1));
    CHECK_INT(rc, 0);
    worst = fmax(worst, fam_cmp_gold(g, f->man, file, "encoder_hidden_states", ctx, nc * B));
    if (f->sdxl)
        worst = fmax(worst, fam_cmp_gold(g, f->man, file, "add_text_embeds", te, (size_t)P * B));
    /* every UNet call on the recorded inputs */
    float *time_ids = f->sdxl ? gold_get(g, "add_time_ids", NULL, NULL) : NULL;
    int steps = 0;
    for (size_t i = 0; i < json_array_size(ts); i++) {
        char in_name[64], out_name[64];
        snprintf(in_name, sizeof in_name, "step%zu.unet_in", i);
        snprintf(out_name, sizeof out_name, "step%zu.unet_out", i);
        int64_t s[4];
        float *x = gold_get(g, in_name, s, NULL);
        if (!x)
            break;
        size_t n = (size_t)(s[0] * s[1] * s[2] * s[3]);
        CHECK_INT(s[0], B);
        float *out = malloc(n * sizeof *out);
        unet_added_cond added = {te, P, time_ids, 6};
        float t = (float)json_number_value(json_array_get(ts, i));
        CHECK_INT(unet_forward(f->un, x, (int)s[0], (int)s[2], (int)s[3], t, NULL,
                               f->sdxl ? &added : NULL, ctx, 77, out),
                  0);
        worst = fmax(worst, fam_cmp_gold(g, f->man, file, out_name, out, n));
        free(x);
        free(out);
        steps++;
    }
    CHECK_INT(steps, (int)json_array_size(ts));
    /* the VAE on the final latents (LCM decodes its last denoised) */
    char last[64];
    snprintf(last, sizeof last, "step%d.%s", steps - 1,
             strcmp(sched, "LCMScheduler") == 0 ? "denoised" : "latents");
    int64_t zs[4];
    float *z = gold_get(g, last, zs, NULL);
    if (z) {
        size_t nz = (size_t)(zs[1] * zs[2] * zs[3]), ny = (size_t)(3 * 8 * zs[2] * 8 * zs[3]);
        for (size_t i = 0; i < nz; i++)
            z[i] /= vae_scaling_factor(f->va);
        float *img = malloc(ny * sizeof *img);
        CHECK_INT(vae_decode(f->va, z, 1, (int)zs[2], (int)zs[3], img), 0);
        worst = fmax(worst, fam_cmp_gold(g, f->man, file, "image_decoded", img, ny));
        free(img);
        free(z);
    }
    fprintf(stderr, "%s/%s: %d UNet calls (batch %d), worst err/tol %.3f\n", f->name, file, steps,
            B, worst);
    free(time_ids);
    free(ctx);
    free(te);
out:
    st_close(g);
}

/* Every run file of fixture `name` (NULL-terminated list). */
static void fam_check_runs(const char *name, int sdxl, const char *const *files)
{
    fam_run f;
    if (fam_run_open(&f, name, sdxl))
        for (int i = 0; files[i]; i++)
            fam_check_run(&f, files[i]);
    fam_run_close(&f);
}

#endif

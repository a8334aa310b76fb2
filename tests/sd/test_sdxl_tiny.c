/*
 * test_sdxl_tiny.c — the SDXL components against diffusers / transformers golden values
 * (fixture sdxl-tiny): both tokenizers (<|endoftext|> and "!" padding, 15 prompts, exact ids),
 * both text encoders as encode_prompt calls them (penultimate hidden states without the final
 * LayerNorm, text_encoder_2's pooled EOS row and text_projection, prompt_embeds as their
 * concatenation), the UNet with text_time added conditioning (add_time_proj of two time-id
 * cases, noise_pred at t=999 and t=249 with every per-block intermediate, a batch of 2,
 * per-level transformer depth), the UNet with its weights from another file (--unet) and the
 * VAE decoder with scaling_factor 0.13025; bf16 within 3%; the components on the 4 recorded runs
 * (turbo 1/4 steps, lightning, CFG 5 with a negative prompt) step by step.
 */
#include "sd_family.h"

static const char *MAN = "sdxl-tiny/golden/manifest.json";
static const char *TKEY = "text_encoders.safetensors";
/* bf16 budget: max error <= 3% of max(1, max|ref|) of the f32 golden (measured 0.4-1.5%) */
#define BF16_BUDGET 0.03

static void test_tokens(void)
{
    CHECK_INT(
        fam_check_tokens("sdxl-tiny/model/tokenizer", "sdxl-tiny/golden/tokens.json", "", 49407),
        15);
    CHECK_INT(
        fam_check_tokens("sdxl-tiny/model/tokenizer_2", "sdxl-tiny/golden/tokens.json", "_2", 0),
        15);
}

static int32_t *golden_ids(st_file *g, const char *name, int *B, int *L)
{
    st_tensor *t = st_find(g, name);
    CHECK(t && t->dtype == ST_I64 && t->ndim == 2);
    if (!t)
        return NULL;
    *B = (int)t->shape[0];
    *L = (int)t->shape[1];
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)*B * *L);
    const int64_t *src = t->data;
    for (int i = 0; ids && i < *B * *L; i++)
        ids[i] = (int32_t)src[i];
    return ids;
}

static double cmp(st_file *g, json_t *man, const char *name, const float *got, size_t n)
{
    float *want = gold_get(g, name, NULL, NULL);
    if (!want)
        return 1e9;
    double err = test_max_abs_diff(got, want, n, name), tol = gold_tol(man, TKEY, name);
    if (!(err <= tol))
        fprintf(stderr, "  %s: %.3g over tolerance %.3g\n", name, err, tol);
    CHECK(err <= tol);
    free(want);
    return tol > 0 ? err / tol : 1e9;
}

static void test_text_encoders(void)
{
    st_file *g = NULL;
    CHECK_INT(st_open(test_fixture("sdxl-tiny/golden/text_encoders.safetensors"), &g), 0);
    json_t *man = gold_manifest(MAN);
    clip_text *t1 = NULL, *t2 = NULL;
    int rc = clip_text_load(test_fixture("sdxl-tiny/model/text_encoder"), NULL, NULL, &t1);
    if (!rc)
        rc = clip_text_load(test_fixture("sdxl-tiny/model/text_encoder_2"), NULL, NULL, &t2);
    if (rc)
        fprintf(stderr, "%s\n", m2p_errmsg());
    CHECK_INT(rc, 0);
    int B = 0, L = 0, B2 = 0, L2 = 0;
    int32_t *ids = g ? golden_ids(g, "input_ids", &B, &L) : NULL;
    int32_t *ids2 = g ? golden_ids(g, "input_ids_2", &B2, &L2) : NULL;
    if (!t1 || !t2 || !man || !ids || !ids2)
        goto done;
    CHECK_INT(clip_text_projection_dim(t1), 0);
    CHECK_INT(clip_text_projection_dim(t2), 20);
    int C1 = clip_text_hidden(t1), C2 = clip_text_hidden(t2), P = clip_text_projection_dim(t2);
    CHECK_INT(C1, 16);
    CHECK_INT(C2, 24);
    size_t R = (size_t)B * L;
    float *h1 = malloc(R * C1 * sizeof *h1), *h2 = malloc(R * C2 * sizeof *h2);
    float *last = malloc(R * C2 * sizeof *last), *pool = malloc((size_t)B * C2 * sizeof *pool);
    float *te = malloc((size_t)B * P * sizeof *te), *cat = malloc(R * (C1 + C2) * sizeof *cat);
    double worst = 0;

    /* text_encoder: penultimate (hidden_states[-2], no final LayerNorm) and every layer */
    gold_taps taps = {g, man, TKEY, "te1.intermediate.", 0, 0};
    clip_text_set_tap(t1, gold_tap, &taps);
    CHECK_INT(clip_text_encode(t1, ids, B, L, 1, 0, h1, NULL, NULL), 0);
    CHECK_INT(taps.compared, 4);
    clip_text_set_tap(t1, NULL, NULL);
    worst = fmax(worst, cmp(g, man, "te1.penultimate", h1, R * C1));
    CHECK_INT(clip_text_forward(t1, ids, B, L, last), 0);
    worst = fmax(worst, cmp(g, man, "te1.last_hidden_state", last, R * C1));

    /* text_encoder_2: penultimate, pooled, text_embeds in one call (all layers run) */
    gold_taps taps2 = {g, man, TKEY, "te2.intermediate.", 0, 0};
    clip_text_set_tap(t2, gold_tap, &taps2);
    CHECK_INT(clip_text_encode(t2, ids2, B, L, 1, 0, h2, pool, te), 0);
    CHECK_INT(taps2.compared, 4);
    clip_text_set_tap(t2, NULL, NULL);
    worst = fmax(worst, cmp(g, man, "te2.penultimate", h2, R * C2));
    worst = fmax(worst, cmp(g, man, "te2.pooled", pool, (size_t)B * C2));
    worst = fmax(worst, cmp(g, man, "te2.text_embeds", te, (size_t)B * P));
    worst = fmax(worst, cmp(g, man, "pooled_prompt_embeds", te, (size_t)B * P));
    CHECK_INT(clip_text_encode(t2, ids2, B, L, 0, 1, last, NULL, NULL), 0);
    worst = fmax(worst, cmp(g, man, "te2.last_hidden_state", last, R * C2));
    /* text_embeds alone (no hidden states wanted) gives the same rows */
    memset(te, 0, (size_t)B * P * sizeof *te);
    CHECK_INT(clip_text_encode(t2, ids2, B, L, 0, 0, NULL, NULL, te), 0);
    worst = fmax(worst, cmp(g, man, "te2.text_embeds", te, (size_t)B * P));

    /* prompt_embeds = concat(te1.penultimate, te2.penultimate, dim=-1) */
    for (size_t r = 0; r < R; r++) {
        memcpy(cat + r * (C1 + C2), h1 + r * C1, (size_t)C1 * sizeof *cat);
        memcpy(cat + r * (C1 + C2) + C1, h2 + r * C2, (size_t)C2 * sizeof *cat);
    }
    worst = fmax(worst, cmp(g, man, "prompt_embeds", cat, R * (C1 + C2)));
    fprintf(stderr, "text encoders: worst err/tol %.3f (taps %.3f / %.3f)\n", worst,
            taps.worst_ratio, taps2.worst_ratio);
    CHECK(fam_bf16_text("sdxl-tiny/model/text_encoder", g, "input_ids", 1, 0, "te1.penultimate") <=
          BF16_BUDGET);
    CHECK(fam_bf16_text("sdxl-tiny/model/text_encoder_2", g, "input_ids_2", 1, 0,
                        "te2.penultimate") <= BF16_BUDGET);
    /* text_encoder has no projection */
    CHECK_INT(clip_text_encode(t1, ids, 1, L, 0, 0, NULL, NULL, te), M2P_EINVAL);
    free(h1);
    free(h2);
    free(last);
    free(pool);
    free(te);
    free(cat);
done:
    free(ids);
    free(ids2);
    clip_text_free(t1);
    clip_text_free(t2);
    json_decref(man);
    st_close(g);
}

/* add_time_proj taps of a UNet call on the case's time ids vs the golden .time_embeds */
typedef struct time_tap {
    float got[256];
    int n;
} time_tap;

static void keep_add_time_proj(const char *name, const float *data, int ndim, const int64_t *shape,
                               void *ud)
{
    time_tap *t = ud;
    if (strcmp(name, "add_time_proj") != 0 || ndim != 2)
        return;
    size_t n = (size_t)(shape[0] * shape[1]);
    if (n <= sizeof t->got / sizeof *t->got) {
        memcpy(t->got, data, n * sizeof *data);
        t->n = (int)n;
    }
}

static void check_time_case(unet *m, st_file *g, json_t *man, const fam_unet_in *in, int c)
{
    char ids_name[64], emb_name[64];
    snprintf(ids_name, sizeof ids_name, "add_time_ids.case%d", c);
    snprintf(emb_name, sizeof emb_name, "add_time_ids.case%d.time_embeds", c);
    int64_t es[2];
    float *ti = gold_get(g, ids_name, NULL, NULL), *want = gold_get(g, emb_name, es, NULL);
    float *out = malloc((size_t)(in->ss[1] * in->ss[2] * in->ss[3]) * sizeof *out);
    if (ti && want && out) {
        time_tap tt = {{0}, 0};
        unet_set_tap(m, keep_add_time_proj, &tt);
        unet_added_cond added = {in->text_embeds, (int)in->es[1], ti, 6};
        CHECK_INT(unet_forward(m, in->sample, 1, (int)in->ss[2], (int)in->ss[3], 999, NULL, &added,
                               in->ctx, (int)in->cs[1], out),
                  0);
        unet_set_tap(m, NULL, NULL);
        CHECK_INT(tt.n, (int)es[1]);
        double err = test_max_abs_diff(tt.got, want, (size_t)es[1], emb_name);
        double tol = gold_tol(man, "unet.safetensors", emb_name);
        CHECK(err <= tol);
        fprintf(stderr, "%s: err/tol %.3f\n", emb_name, err / tol);
    }
    free(ti);
    free(want);
    free(out);
}

static void test_unet(void)
{
    st_file *g = NULL;
    CHECK_INT(st_open(test_fixture("sdxl-tiny/golden/unet.safetensors"), &g), 0);
    json_t *man = gold_manifest(MAN);
    unet *m = NULL;
    int rc = unet_load(test_fixture("sdxl-tiny/model/unet"), NULL, NULL, &m);
    if (rc)
        fprintf(stderr, "%s\n", m2p_errmsg());
    CHECK_INT(rc, 0);
    fam_unet_in in;
    if (!g || !man || !m || !fam_unet_inputs(g, &in, 1))
        goto done;
    int add_in = 0, add_t = 0;
    CHECK_INT(unet_added_dims(m, &add_in, &add_t), 1);
    CHECK_INT(add_in, 116);
    CHECK_INT(add_t, 16);
    CHECK_INT(unet_cross_dim(m), 40);
    check_time_case(m, g, man, &in, 0);
    check_time_case(m, g, man, &in, 1);
    /* time_proj, time_embedding, add_time_proj, add_embedding, conv_in, 3 down, mid, 3 up,
     * conv_norm_out */
    fam_check_unet(m, g, man, &in, 999, 1, 13);
    fam_check_unet(m, g, man, &in, 249, 1, 13);
    fam_check_unet(m, g, man, &in, 249, 2, 0);
    CHECK(fam_bf16_unet("sdxl-tiny/model/unet", g, &in, 999) <= BF16_BUDGET);
    /* the added conditioning is required, and its sizes must add up to the config's */
    float out[256];
    CHECK_INT(unet_forward(m, in.sample, 1, 8, 8, 999, NULL, NULL, in.ctx, 77, out), M2P_EINVAL);
    CHECK(err_mentions("text_time", NULL));
    unet_added_cond bad = {in.text_embeds, 20, in.time_ids, 5};
    CHECK_INT(unet_forward(m, in.sample, 1, 8, 8, 999, NULL, &bad, in.ctx, 77, out), M2P_EINVAL);
    CHECK(err_mentions("projection_class_embeddings_input_dim", NULL));
    fam_unet_inputs_free(&in);
done:
    unet_free(m);
    json_decref(man);
    st_close(g);
}

/* --unet FILE: the folder's config with another weights file (here a copy of the same weights
 * under another name) gives the golden result; a file of another model fails naming it. */
static void test_unet_file(void)
{
    st_file *g = NULL;
    CHECK_INT(st_open(test_fixture("sdxl-tiny/golden/unet.safetensors"), &g), 0);
    json_t *man = gold_manifest(MAN);
    char *d = test_tmpdir("sdxl-unet-file");
    char src[1024], file[1024];
    snprintf(src, sizeof src, "%s/diffusion_pytorch_model.safetensors",
             test_fixture("sdxl-tiny/model/unet"));
    snprintf(file, sizeof file, "%s/lightning_unet.safetensors", d);
    CHECK_INT(copy_file(src, file), 0);
    unet *m = NULL;
    int rc = unet_load_file(test_fixture("sdxl-tiny/model/unet"), file, NULL, NULL, &m);
    if (rc)
        fprintf(stderr, "%s\n", m2p_errmsg());
    CHECK_INT(rc, 0);
    fam_unet_in in;
    if (g && man && m && fam_unet_inputs(g, &in, 1)) {
        fam_check_unet(m, g, man, &in, 999, 1, 0);
        fam_unet_inputs_free(&in);
    }
    unet_free(m);
    m = NULL;
    snprintf(src, sizeof src, "%s/diffusion_pytorch_model.safetensors",
             test_fixture("sd2-tiny/model/unet"));
    CHECK(unet_load_file(test_fixture("sdxl-tiny/model/unet"), src, NULL, NULL, &m) < 0);
    CHECK(m == NULL);
    CHECK(err_mentions("sd2-tiny/model/unet/diffusion_pytorch_model.safetensors", NULL));
    snprintf(file, sizeof file, "%s/missing.safetensors", d);
    CHECK(unet_load_file(test_fixture("sdxl-tiny/model/unet"), file, NULL, NULL, &m) < 0);
    CHECK(err_mentions("missing.safetensors", "not found"));
    test_rmtree(d);
    free(d);
    json_decref(man);
    st_close(g);
}

static int load_unet(const char *dir, void **out)
{
    unet *m = NULL;
    int rc = unet_load(dir, NULL, NULL, &m);
    *out = m;
    return rc;
}

static int load_te(const char *dir, void **out)
{
    clip_text *m = NULL;
    int rc = clip_text_load(dir, NULL, NULL, &m);
    *out = m;
    return rc;
}

int main(void)
{
    test_tokens();
    test_text_encoders();
    test_unet();
    test_unet_file();
    fam_check_vae("sdxl-tiny/model/vae", "sdxl-tiny/golden/vae_decoder.safetensors", MAN, 0.13025);
    CHECK(fam_bf16_vae("sdxl-tiny/model/vae", "sdxl-tiny/golden/vae_decoder.safetensors") <=
          BF16_BUDGET);
    /* add_embedding and text_projection are loaded strictly like every other weight */
    gold_check_bad_folders(
        test_fixture("sdxl-tiny/model/unet"), "diffusion_pytorch_model.safetensors", "sdxl-unet",
        "add_embedding.linear_2.weight", "add_embedding.linear_1.weight", load_unet);
    gold_check_bad_folders(test_fixture("sdxl-tiny/model/text_encoder_2"), "model.safetensors",
                           "sdxl-te2", "text_model.final_layer_norm.weight",
                           "text_projection.weight", load_te);
    /* the components on the fixture's recorded whole runs */
    static const char *const runs[] = {
        "pipeline_turbo_1step.safetensors", "pipeline_turbo_4step.safetensors",
        "pipeline_lightning_4step.safetensors", "pipeline_cfg_4step.safetensors", NULL};
    fam_check_runs("sdxl-tiny", 1, runs);
    TEST_DONE();
}

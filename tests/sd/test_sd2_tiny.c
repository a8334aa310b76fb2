/*
 * test_sd2_tiny.c — the SD 2.x components against diffusers / transformers golden values
 * (fixture sd2-tiny): the tokenizer with "!" as pad token (15 prompts, exact ids), the erf-GELU
 * text encoder (last_hidden_state of 3 prompts + every layer), the UNet with linear
 * proj_in/proj_out, per-level head counts and upcast_attention at t=999 and t=251 (every
 * per-block intermediate, a batch of 2), and the VAE decoder; then config keys the engine lacks
 * fail with a message naming the key; bf16 text encoder, UNet and VAE within 3% of the f32 golden;
 * the components on the 4 recorded runs (DDIM/Euler/PNDM with CFG, LCM) step by step.
 */
#define _GNU_SOURCE
#include <unistd.h>

#include "sd_family.h"

static const char *MAN = "sd2-tiny/golden/manifest.json";
/* bf16 budget: max error <= 3% of max(1, max|ref|) of the f32 golden (measured 0.4-1.5%) */
#define BF16_BUDGET 0.03

static void test_tokens(void)
{
    CHECK_INT(fam_check_tokens("sd2-tiny/model/tokenizer", "sd2-tiny/golden/tokens.json", "", 0),
              15);
}

static void test_text_encoder(void)
{
    static const char *KEY = "text_encoder.safetensors";
    st_file *g = NULL;
    CHECK_INT(st_open(test_fixture("sd2-tiny/golden/text_encoder.safetensors"), &g), 0);
    json_t *man = gold_manifest(MAN);
    clip_text *m = NULL;
    int rc = clip_text_load(test_fixture("sd2-tiny/model/text_encoder"), NULL, NULL, &m);
    if (rc)
        fprintf(stderr, "%s\n", m2p_errmsg());
    CHECK_INT(rc, 0);
    st_tensor *ids_t = g ? st_find(g, "input_ids") : NULL;
    if (!m || !man || !ids_t)
        goto done;
    CHECK_INT(clip_text_hidden(m), 32);
    CHECK_INT(clip_text_layers(m), 3);
    CHECK_INT(clip_text_projection_dim(m), 0);
    int B = (int)ids_t->shape[0], L = (int)ids_t->shape[1], C = 32;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)B * L);
    const int64_t *src = ids_t->data;
    for (int i = 0; i < B * L; i++)
        ids[i] = (int32_t)src[i];
    gold_taps taps = {g, man, KEY, "intermediate.", 0, 0};
    clip_text_set_tap(m, gold_tap, &taps);
    float *want = gold_get(g, "last_hidden_state", NULL, NULL);
    float *got = malloc(sizeof(float) * (size_t)B * L * C);
    CHECK_INT(clip_text_forward(m, ids, B, L, got), 0);
    double tol = gold_tol(man, KEY, "last_hidden_state");
    double err = test_max_abs_diff(got, want, (size_t)B * L * C, "last_hidden_state");
    CHECK(err <= tol);
    CHECK_INT(taps.compared, 4); /* embeddings, encoder.layers.0..2 */
    fprintf(stderr, "text encoder: err/tol %.3f, taps worst %.3f\n", err / tol, taps.worst_ratio);
    clip_text_set_tap(m, NULL, NULL);
    CHECK(fam_bf16_text("sd2-tiny/model/text_encoder", g, "input_ids", 0, 1, "last_hidden_state") <=
          BF16_BUDGET);
    /* a CLIPTextModel has no text_projection: asking for text_embeds is an error */
    float te[64];
    CHECK_INT(clip_text_encode(m, ids, 1, L, 0, 1, NULL, NULL, te), M2P_EINVAL);
    CHECK_INT(clip_text_encode(m, ids, 1, L, 3, 1, got, NULL, NULL), M2P_EINVAL);
    free(ids);
    free(want);
    free(got);
done:
    clip_text_free(m);
    json_decref(man);
    st_close(g);
}

static void test_unet(void)
{
    st_file *g = NULL;
    CHECK_INT(st_open(test_fixture("sd2-tiny/golden/unet.safetensors"), &g), 0);
    json_t *man = gold_manifest(MAN);
    unet *m = NULL;
    int rc = unet_load(test_fixture("sd2-tiny/model/unet"), NULL, NULL, &m);
    if (rc)
        fprintf(stderr, "%s\n", m2p_errmsg());
    CHECK_INT(rc, 0);
    fam_unet_in in;
    if (!g || !man || !m || !fam_unet_inputs(g, &in, 0))
        goto done;
    CHECK_INT(unet_cross_dim(m), 32);
    CHECK_INT(unet_cond_dim(m), 0);
    CHECK_INT(unet_added_dims(m, NULL, NULL), 0);
    /* time_proj, time_embedding, conv_in, 4 down, mid, 4 up, conv_norm_out */
    fam_check_unet(m, g, man, &in, 999, 1, 13);
    fam_check_unet(m, g, man, &in, 251, 1, 13);
    fam_check_unet(m, g, man, &in, 251, 2, 0);
    CHECK(fam_bf16_unet("sd2-tiny/model/unet", g, &in, 999) <= BF16_BUDGET);
    /* no added conditioning for an SD 2.x UNet */
    float te[4] = {0}, ti[6] = {0}, out[256];
    unet_added_cond added = {te, 4, ti, 6};
    CHECK_INT(unet_forward(m, in.sample, 1, 8, 8, 999, NULL, &added, in.ctx, 77, out), M2P_EINVAL);
    fam_unet_inputs_free(&in);
done:
    unet_free(m);
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

static int load_vae(const char *dir, void **out)
{
    vae *m = NULL;
    int rc = vae_load(dir, NULL, NULL, &m);
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

/* A copy of an sd2-tiny part (config.json with one key changed, the weights linked) must fail
 * to load, naming the key and the config file. */
static void check_bad_key(const char *part, const char *st, gold_load_fn load, const char *key,
                          json_t *value)
{
    char rel[128];
    snprintf(rel, sizeof rel, "sd2-tiny/model/%s", part);
    const char *src = test_fixture(rel);
    char *d = test_tmpdir("sd2-badkey");
    char p[1024], q[1024];
    snprintf(p, sizeof p, "%s/config.json", src);
    json_error_t e;
    json_t *cfg = json_load_file(p, 0, &e);
    CHECK(cfg != NULL);
    if (cfg) {
        json_object_set_new(cfg, key, value);
        snprintf(q, sizeof q, "%s/config.json", d);
        CHECK_INT(json_dump_file(cfg, q, 0), 0);
        json_decref(cfg);
        snprintf(p, sizeof p, "%s/%s", src, st);
        snprintf(q, sizeof q, "%s/%s", d, st);
        CHECK_INT(symlink(p, q), 0);
        void *m = NULL;
        CHECK(load(d, &m) < 0);
        CHECK(m == NULL);
        CHECK(err_mentions(key, "config.json"));
    } else {
        json_decref(value);
    }
    test_rmtree(d);
    free(d);
}

static void test_unsupported_keys(void)
{
    static const char *U = "diffusion_pytorch_model.safetensors";
    check_bad_key("unet", U, load_unet, "addition_embed_type", json_string("image"));
    check_bad_key("unet", U, load_unet, "class_embed_type", json_string("timestep"));
    check_bad_key("unet", U, load_unet, "resnet_time_scale_shift", json_string("scale_shift"));
    check_bad_key("unet", U, load_unet, "attention_type", json_string("gated"));
    check_bad_key("unet", U, load_unet, "encoder_hid_dim", json_integer(64));
    check_bad_key("unet", U, load_unet, "mid_block_type",
                  json_string("UNetMidBlock2DSimpleCrossAttn"));
    check_bad_key("unet", U, load_unet, "time_embedding_type", json_string("fourier"));
    check_bad_key("unet", U, load_unet, "down_block_types",
                  json_pack("[s,s,s,s]", "CrossAttnDownBlock2D", "SimpleCrossAttnDownBlock2D",
                            "CrossAttnDownBlock2D", "DownBlock2D"));
    /* 3 head counts for 4 levels */
    check_bad_key("unet", U, load_unet, "attention_head_dim", json_pack("[i,i,i]", 2, 4, 8));
    check_bad_key("vae", U, load_vae, "latents_mean", json_pack("[f,f,f,f]", 0.1, 0.2, 0.3, 0.4));
    check_bad_key("vae", U, load_vae, "up_block_types",
                  json_pack("[s,s,s,s]", "UpDecoderBlock2D", "UpDecoderBlock2D",
                            "AttnUpDecoderBlock2D", "UpDecoderBlock2D"));
    check_bad_key("text_encoder", "model.safetensors", load_te, "hidden_act", json_string("relu"));
}

int main(void)
{
    test_tokens();
    test_text_encoder();
    test_unet();
    fam_check_vae("sd2-tiny/model/vae", "sd2-tiny/golden/vae_decoder.safetensors", MAN, 0.18215);
    CHECK(fam_bf16_vae("sd2-tiny/model/vae", "sd2-tiny/golden/vae_decoder.safetensors") <=
          BF16_BUDGET);
    test_unsupported_keys();
    /* linear proj_in [C, C]: a missing or differently shaped weight names tensor and file */
    gold_check_bad_folders(test_fixture("sd2-tiny/model/unet"),
                           "diffusion_pytorch_model.safetensors", "sd2-unet",
                           "down_blocks.1.attentions.0.proj_out.weight",
                           "mid_block.attentions.0.proj_in.weight", load_unet);
    /* the components on the fixture's recorded whole runs */
    static const char *const runs[] = {"pipeline_ddim.safetensors", "pipeline_euler.safetensors",
                                       "pipeline_pndm.safetensors", "pipeline_lcm.safetensors",
                                       NULL};
    fam_check_runs("sd2-tiny", 0, runs);
    TEST_DONE();
}

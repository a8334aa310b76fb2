/*
 * test_other_sizes.c — the components take every size from the configs, none from the
 * fixtures': the sd2-tiny configs are rewritten to other sizes (3 UNet levels of 24/48/40
 * channels, heads 3/6/5, one resnet per level, 2 transformer blocks, cross-attention width 40;
 * a 2-layer text encoder of width 40 with 5 heads; a 3-level VAE, i.e. 4x upscaling), a
 * random-weight folder is written by tools/make-random-model, and the parts load and run:
 * sizes reported as configured, every value finite, batch rows independent of each other,
 * an odd latent size, the VAE's 4x image. The same for an SDXL-style model of other sizes
 * (4 levels with attention on the first, text encoders of widths 16 and 20, projection 12,
 * addition_time_embed_dim 8): the tool writes the SD parts, the test adds text_projection and
 * add_embedding, and the time ids must reach the output.
 */
#define _GNU_SOURCE
#include "core/error.h"
#include "sd/clip_tokenizer.h"
#include "sd/components.h"
#include "test.h"

#include <jansson.h>
#include <math.h>
#include <sys/stat.h>
#include <sys/wait.h>

static int run_tool(const char *args)
{
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "'%s/make-random-model' %s 2>/dev/null",
             test_env("M2P_BUILD_DIR", "build"), args);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* <dst>/<part>/config.json = the sd2-tiny one with `changes` (a JSON object) merged in. */
static int write_config(const char *dst, const char *part, const char *changes)
{
    char p[4096];
    snprintf(p, sizeof p, "sd2-tiny/model/%s", part);
    json_error_t e;
    json_t *cfg = json_load_file(test_fixture(p), 0, &e);
    json_t *ch = changes ? json_loads(changes, 0, &e) : json_object();
    if (!cfg || !ch || json_object_update(cfg, ch)) {
        fprintf(stderr, "%s: %s\n", part, e.text);
        json_decref(cfg);
        json_decref(ch);
        return -1;
    }
    snprintf(p, sizeof p, "%s/%s", dst, part);
    char *slash = strrchr(p, '/');
    *slash = '\0';
    mkdir(p, 0755);
    *slash = '/';
    int rc = json_dump_file(cfg, p, JSON_INDENT(2));
    json_decref(cfg);
    json_decref(ch);
    return rc;
}

static int all_finite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

static double max_abs(const float *x, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(x[i]));
    return m;
}

static void run_parts(const char *model)
{
    char p[4200];
    clip_tokenizer *tok = NULL;
    clip_text *te = NULL;
    unet *un = NULL;
    vae *va = NULL;
    snprintf(p, sizeof p, "%s/tokenizer", model);
    CHECK_INT(clip_tokenizer_load(p, &tok), 0);
    snprintf(p, sizeof p, "%s/text_encoder", model);
    CHECK_INT(clip_text_load(p, NULL, NULL, &te), 0);
    snprintf(p, sizeof p, "%s/unet", model);
    int rc = unet_load(p, NULL, NULL, &un);
    if (rc)
        fprintf(stderr, "%s\n", m2p_errmsg());
    CHECK_INT(rc, 0);
    snprintf(p, sizeof p, "%s/vae", model);
    CHECK_INT(vae_load(p, NULL, NULL, &va), 0);
    if (!tok || !te || !un || !va)
        goto out;
    CHECK_INT(clip_text_hidden(te), 40);
    CHECK_INT(clip_text_layers(te), 2);
    CHECK_INT(unet_cross_dim(un), 40);
    CHECK_INT(vae_scale_factor(va), 4);

    /* text: two different prompts in one batch; each row as when encoded alone */
    int32_t ids[2 * 77];
    CHECK_INT(clip_tokenize(tok, "a photo of a cat!", ids, 77, NULL), 0);
    CHECK_INT(clip_tokenize(tok, "neon city at night", ids + 77, 77, NULL), 0);
    float *ctx = malloc(sizeof(float) * 2 * 77 * 40), *one = malloc(sizeof(float) * 77 * 40);
    CHECK_INT(clip_text_forward(te, ids, 2, 77, ctx), 0);
    CHECK_INT(clip_text_forward(te, ids + 77, 1, 77, one), 0);
    CHECK(all_finite(ctx, 2 * 77 * 40));
    CHECK(test_max_abs_diff(ctx + 77 * 40, one, 77 * 40, "text row 2") <= 1e-5);
    CHECK(test_max_abs_diff(ctx, one, 77 * 40, "rows differ") > 1e-3);

    /* UNet: 3 levels, odd latent size 7 x 5 (-> 4 x 3 -> 2 x 2 and back), batch of 2 */
    const int h = 7, w = 5;
    size_t n = (size_t)4 * h * w;
    float *x = malloc(sizeof(float) * 2 * n), *y = malloc(sizeof(float) * 2 * n),
          *y1 = malloc(sizeof(float) * n);
    for (size_t i = 0; i < 2 * n; i++)
        x[i] = (float)sin(0.37 * (double)i) * 1.5f;
    CHECK_INT(unet_forward(un, x, 2, h, w, 751.0f, NULL, NULL, ctx, 77, y), 0);
    CHECK_INT(unet_forward(un, x + n, 1, h, w, 751.0f, NULL, NULL, ctx + 77 * 40, 77, y1), 0);
    CHECK(all_finite(y, 2 * n));
    CHECK(max_abs(y, 2 * n) > 1e-3);
    CHECK(test_max_abs_diff(y + n, y1, n, "unet row 2") <= 1e-5);
    CHECK(test_max_abs_diff(y, y1, n, "unet rows differ") > 1e-4);

    /* VAE: 3 levels upscale 4x */
    float *img = malloc(sizeof(float) * 3 * 16 * h * w);
    CHECK_INT(vae_decode(va, x, 1, h, w, img), 0);
    CHECK(all_finite(img, (size_t)3 * 16 * h * w));
    CHECK(max_abs(img, (size_t)3 * 16 * h * w) > 1e-3);
    free(ctx);
    free(one);
    free(x);
    free(y);
    free(y1);
    free(img);
out:
    clip_tokenizer_free(tok);
    clip_text_free(te);
    unet_free(un);
    vae_free(va);
}

/* Copy of the safetensors `src` to `dst` with `n` extra F32 tensors (random values). */
static int add_tensors(const char *src, const char *dst, const char *const *names,
                       const int64_t (*shapes)[2], const int *ndims, int n)
{
    st_file *f = NULL;
    if (st_open(src, &f))
        return -1;
    st_out_tensor *ts = calloc((size_t)f->n + n, sizeof *ts);
    float *extra[8] = {0};
    int rc = ts && n <= 8 ? 0 : -1;
    for (int i = 0; !rc && i < f->n; i++) {
        st_tensor *t = &f->tensors[i];
        ts[i] = (st_out_tensor){t->name, t->dtype, t->ndim, {0}, t->data};
        memcpy(ts[i].shape, t->shape, sizeof ts[i].shape);
    }
    for (int k = 0; !rc && k < n; k++) {
        size_t numel = (size_t)shapes[k][0] * (ndims[k] > 1 ? (size_t)shapes[k][1] : 1);
        extra[k] = malloc(numel * sizeof(float));
        if (!extra[k]) {
            rc = -1;
            break;
        }
        for (size_t i = 0; i < numel; i++) /* within +-1/sqrt(fan_in), like the tool */
            extra[k][i] = (float)sin(1.7 * (double)(i + 31 * k)) /
                          sqrtf((float)(ndims[k] > 1 ? shapes[k][1] : 1));
        st_out_tensor *o = &ts[f->n + k];
        *o = (st_out_tensor){names[k], ST_F32, ndims[k], {shapes[k][0], shapes[k][1]}, extra[k]};
    }
    if (!rc)
        rc = st_write(dst, ts, f->n + n);
    for (int k = 0; k < 8; k++)
        free(extra[k]);
    free(ts);
    st_close(f);
    return rc;
}

static void run_sdxl_parts(const char *model)
{
    char p[4200];
    clip_tokenizer *tok[2] = {0};
    clip_text *te[2] = {0};
    unet *un = NULL;
    for (int e = 0; e < 2; e++) {
        snprintf(p, sizeof p, "%s/tokenizer", model); /* the same files for both */
        CHECK_INT(clip_tokenizer_load(p, &tok[e]), 0);
        snprintf(p, sizeof p, "%s/text_encoder%s", model, e ? "_2" : "");
        int rc = clip_text_load(p, NULL, NULL, &te[e]);
        if (rc)
            fprintf(stderr, "%s\n", m2p_errmsg());
        CHECK_INT(rc, 0);
    }
    snprintf(p, sizeof p, "%s/unet", model);
    int rc = unet_load(p, NULL, NULL, &un);
    if (rc)
        fprintf(stderr, "%s\n", m2p_errmsg());
    CHECK_INT(rc, 0);
    if (!tok[0] || !tok[1] || !te[0] || !te[1] || !un)
        goto out;
    int add_in = 0, add_t = 0;
    CHECK_INT(unet_added_dims(un, &add_in, &add_t), 1);
    CHECK_INT(add_in, 60);
    CHECK_INT(add_t, 8);
    CHECK_INT(clip_text_projection_dim(te[1]), 12);
    CHECK_INT(unet_cross_dim(un), 36);
    /* prompt embeddings as SDXL makes them: both penultimate states side by side */
    int32_t ids[77];
    float h1[77 * 16], h2[77 * 20], temb[12], ctx[2 * 77 * 36];
    CHECK_INT(clip_tokenize(tok[0], "a poster of a storm", ids, 77, NULL), 0);
    CHECK_INT(clip_text_encode(te[0], ids, 1, 77, 1, 0, h1, NULL, NULL), 0);
    CHECK_INT(clip_text_encode(te[1], ids, 1, 77, 1, 0, h2, NULL, temb), 0);
    for (int r = 0; r < 77; r++) {
        memcpy(ctx + r * 36, h1 + r * 16, 16 * sizeof(float));
        memcpy(ctx + r * 36 + 16, h2 + r * 20, 20 * sizeof(float));
    }
    memcpy(ctx + 77 * 36, ctx, 77 * 36 * sizeof(float));
    CHECK(all_finite(ctx, 77 * 36) && all_finite(temb, 12));
    /* batch of 2 with the same inputs but different time ids: the rows must differ */
    const int h = 6, w = 6;
    size_t n = (size_t)4 * h * w;
    float x[2 * 4 * 36], y[2 * 4 * 36], y1[4 * 36], te2[24],
        ti[12] = {48, 48, 0, 0, 48, 48, 96, 64, 8, 0, 48, 48};
    for (size_t i = 0; i < 2 * n; i++)
        x[i] = (float)cos(0.29 * (double)(i % n));
    memcpy(te2, temb, sizeof temb);
    memcpy(te2 + 12, temb, sizeof temb);
    unet_added_cond a2 = {te2, 12, ti, 6}, a1 = {temb, 12, ti + 6, 6};
    CHECK_INT(unet_forward(un, x, 2, h, w, 999.0f, NULL, &a2, ctx, 77, y), 0);
    CHECK_INT(unet_forward(un, x, 1, h, w, 999.0f, NULL, &a1, ctx, 77, y1), 0);
    CHECK(all_finite(y, 2 * n));
    CHECK(test_max_abs_diff(y + n, y1, n, "sdxl unet row 2") <= 1e-5);
    CHECK(test_max_abs_diff(y, y1, n, "time ids change the output") > 1e-5);
out:
    for (int e = 0; e < 2; e++) {
        clip_tokenizer_free(tok[e]);
        clip_text_free(te[e]);
    }
    unet_free(un);
}

/* SDXL-style configs of other sizes; the tool writes tokenizer, text encoder (run twice, once
 * with text_encoder_2's config), UNet and VAE; text_projection and add_embedding are added. */
static void test_sdxl(const char *d)
{
    static const char *TE1 = "{\"hidden_size\": 16, \"num_hidden_layers\": 3, "
                             "\"num_attention_heads\": 4, \"intermediate_size\": 30, "
                             "\"hidden_act\": \"quick_gelu\"}";
    static const char *TE2 = "{\"hidden_size\": 20, \"num_hidden_layers\": 2, "
                             "\"num_attention_heads\": 5, \"intermediate_size\": 36, "
                             "\"hidden_act\": \"gelu\", \"projection_dim\": 12}";
    static const char *UNET =
        "{\"block_out_channels\": [8, 16, 24, 24], \"attention_head_dim\": [2, 2, 3, 4],"
        " \"layers_per_block\": 1, \"norm_num_groups\": 4, \"cross_attention_dim\": 36,"
        " \"addition_embed_type\": \"text_time\", \"addition_time_embed_dim\": 8,"
        " \"projection_class_embeddings_input_dim\": 60, \"transformer_layers_per_block\": 1,"
        " \"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\","
        " \"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\"], \"up_block_types\":"
        " [\"CrossAttnUpBlock2D\", \"CrossAttnUpBlock2D\", \"UpBlock2D\","
        " \"CrossAttnUpBlock2D\"]}";
    char cfg[2048], cfg2[2048], model[2048], model2[2048], args[8192], a[4200], b[4200];
    snprintf(cfg, sizeof cfg, "%s/xlcfg", d);
    snprintf(cfg2, sizeof cfg2, "%s/xlcfg2", d);
    snprintf(model, sizeof model, "%s/xl", d);
    snprintf(model2, sizeof model2, "%s/xl2", d);
    mkdir(cfg, 0755);
    mkdir(cfg2, 0755);
    int ok = 1;
    for (int k = 0; k < 2; k++) {
        const char *c = k ? cfg2 : cfg;
        ok = ok && write_config(c, "model_index.json", NULL) == 0 &&
             write_config(c, "scheduler/scheduler_config.json", NULL) == 0 &&
             write_config(c, "text_encoder/config.json", k ? TE2 : TE1) == 0 &&
             write_config(c, "unet/config.json", UNET) == 0 &&
             write_config(c, "vae/config.json", NULL) == 0;
    }
    CHECK(ok);
    for (int k = 0; ok && k < 2; k++) {
        snprintf(args, sizeof args,
                 "--out '%s' --config-from '%s' --tokenizer-from '%s' --dtype f32",
                 k ? model2 : model, k ? cfg2 : cfg, test_fixture("sd2-tiny/model/tokenizer"));
        ok = run_tool(args) == 0;
    }
    CHECK(ok);
    if (!ok)
        return;
    /* text_encoder_2 = the second run's text encoder + text_projection [12, 20] */
    snprintf(a, sizeof a, "%s/text_encoder_2", model);
    mkdir(a, 0755);
    snprintf(a, sizeof a, "%s/text_encoder/config.json", cfg2);
    snprintf(b, sizeof b, "%s/text_encoder_2/config.json", model);
    json_error_t e;
    json_t *j = json_load_file(a, 0, &e);
    CHECK(j && json_dump_file(j, b, 0) == 0);
    json_decref(j);
    snprintf(a, sizeof a, "%s/text_encoder/model.safetensors", model2);
    snprintf(b, sizeof b, "%s/text_encoder_2/model.safetensors", model);
    const char *pn[1] = {"text_projection.weight"};
    const int64_t ps[1][2] = {{12, 20}};
    const int pd[1] = {2};
    CHECK_INT(add_tensors(a, b, pn, ps, pd, 1), 0);
    /* the UNet's add_embedding: linear_1 [32, 60], linear_2 [32, 32] (time_embed_dim 4 x 8) */
    snprintf(a, sizeof a, "%s/unet/diffusion_pytorch_model.safetensors", model);
    snprintf(b, sizeof b, "%s/unet/with_add.safetensors", model);
    const char *un[4] = {"add_embedding.linear_1.weight", "add_embedding.linear_1.bias",
                         "add_embedding.linear_2.weight", "add_embedding.linear_2.bias"};
    const int64_t us[4][2] = {{32, 60}, {32, 0}, {32, 32}, {32, 0}};
    const int ud[4] = {2, 1, 2, 1};
    CHECK_INT(add_tensors(a, b, un, us, ud, 4), 0);
    CHECK_INT(rename(b, a), 0);
    run_sdxl_parts(model);
}

int main(void)
{
    char *d = test_tmpdir("other-sizes");
    char cfg[2048], model[2048], args[8192];
    snprintf(cfg, sizeof cfg, "%s/cfg", d);
    snprintf(model, sizeof model, "%s/model", d);
    mkdir(cfg, 0755);
    int ok =
        write_config(cfg, "model_index.json", NULL) == 0 &&
        write_config(cfg, "scheduler/scheduler_config.json", NULL) == 0 &&
        write_config(cfg, "text_encoder/config.json",
                     "{\"hidden_size\": 40, \"num_hidden_layers\": 2, \"num_attention_heads\": 5,"
                     " \"intermediate_size\": 50}") == 0 &&
        write_config(cfg, "unet/config.json",
                     "{\"block_out_channels\": [24, 48, 40], \"attention_head_dim\": [3, 6, 5],"
                     " \"layers_per_block\": 1, \"transformer_layers_per_block\": 2,"
                     " \"norm_num_groups\": 4, \"cross_attention_dim\": 40,"
                     " \"down_block_types\": [\"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\","
                     " \"DownBlock2D\"], \"up_block_types\": [\"UpBlock2D\","
                     " \"CrossAttnUpBlock2D\", \"CrossAttnUpBlock2D\"]}") == 0 &&
        write_config(cfg, "vae/config.json",
                     "{\"block_out_channels\": [8, 16, 16], \"layers_per_block\": 1,"
                     " \"norm_num_groups\": 4, \"down_block_types\": [\"DownEncoderBlock2D\","
                     " \"DownEncoderBlock2D\", \"DownEncoderBlock2D\"], \"up_block_types\":"
                     " [\"UpDecoderBlock2D\", \"UpDecoderBlock2D\", \"UpDecoderBlock2D\"]}") == 0;
    CHECK(ok);
    if (ok) {
        snprintf(args, sizeof args,
                 "--out '%s' --config-from '%s' --tokenizer-from '%s' --dtype f32", model, cfg,
                 test_fixture("sd2-tiny/model/tokenizer"));
        int rc = run_tool(args);
        CHECK_INT(rc, 0);
        if (rc == 0)
            run_parts(model);
    }
    test_sdxl(d);
    test_rmtree(d);
    free(d);
    TEST_DONE();
}

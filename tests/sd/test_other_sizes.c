/*
 * test_other_sizes.c — the components take every size from the configs, none from the
 * fixtures': the sd2-tiny configs are rewritten to other sizes (3 UNet levels of 24/48/40
 * channels, heads 3/6/5, one resnet per level, 2 transformer blocks, cross-attention width 40;
 * a 2-layer text encoder of width 40 with 5 heads; a 3-level VAE, i.e. 4x upscaling), a
 * random-weight folder is written by tools/make-random-model, and the parts load and run:
 * sizes reported as configured, every value finite, batch rows independent of each other,
 * an odd latent size, the VAE's 4x image.
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
    CHECK_INT(clip_text_load(p, NULL, &te), 0);
    snprintf(p, sizeof p, "%s/unet", model);
    int rc = unet_load(p, NULL, &un);
    if (rc)
        fprintf(stderr, "%s\n", m2p_errmsg());
    CHECK_INT(rc, 0);
    snprintf(p, sizeof p, "%s/vae", model);
    CHECK_INT(vae_load(p, NULL, &va), 0);
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
    test_rmtree(d);
    free(d);
    TEST_DONE();
}

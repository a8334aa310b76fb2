/*
 * test_pipeline_runs.c — the whole diffusers runs of sd2-tiny (DDIM-v + CFG 7.5 and a negative
 * prompt, Euler-v + CFG, PNDM + CFG, LCM-v at guidance 1) and sdxl-tiny (turbo 1 and 4 steps,
 * Lightning, Euler + CFG 5) through m2p_generate: each run's call, scheduler class and config
 * come from the fixture manifest, latents_in and the recorded noises are injected, and every
 * stage the pipeline taps (encoder_hidden_states, add_text_embeds, add_time_ids, latents_init,
 * per step unet_in / unet_out / noise_pred / denoised / latents, image_decoded) is compared with
 * the golden tensor of the same name within the manifest's tolerance; then image_np and
 * image_uint8 (<= 1 per value, <= 1% of values differing). Where the CPU computes bf16, every
 * run again in bf16: the image within BF16_MAX_ERR (max) and BF16_MEAN_ERR (mean) of diffusers'
 * f32 image_np (values in [0, 1]).
 */
#include <jansson.h>
#include <math.h>
#include <unistd.h>

#include "core/error.h"
#include "sd/pipeline.h"
#include "sd/scheduler.h"
#include "sd_golden.h"
#include "tensor/ops.h"

/* bf16 budget on the final image in [0, 1] (8 mantissa bits through every network and step;
 * CFG 7.5 amplifies the UNet's rounding) */
#define BF16_MAX_ERR 0.1
#define BF16_MEAN_ERR 0.01

static const char *const skip_taps[] = {"latents_in", "prompt_embeds", "timestep_cond", NULL};

static void run_tap(const char *name, const float *data, int ndim, const int64_t *shape, void *ud)
{
    for (int i = 0; skip_taps[i]; i++)
        if (!strcmp(name, skip_taps[i]))
            return;
    gold_tap(name, data, ndim, shape, ud);
}

/* One pipeline_*.safetensors run; returns the number of stages compared. */
static int check_run(m2p_model *m, const char *fx, const char *file, json_t *entry,
                     json_t *manifest, int bf16)
{
    char p[512];
    snprintf(p, sizeof p, "%s/golden/%s", fx, file);
    st_file *gold = NULL;
    CHECK_INT(st_open(test_fixture(p), &gold), 0);
    if (!gold)
        return 0;
    json_t *call = json_object_get(entry, "call");
    /* the run's scheduler as a config file with its class */
    json_t *sc = json_deep_copy(json_object_get(entry, "scheduler_config"));
    json_object_set_new(sc, "_class_name",
                        json_string(json_string_value(json_object_get(entry, "scheduler_class"))));
    char cfg_path[] = "/tmp/m2p_sched_XXXXXX";
    int fd = mkstemp(cfg_path);
    CHECK(fd >= 0);
    if (fd >= 0)
        close(fd);
    CHECK_INT(json_dump_file(sc, cfg_path, 0), 0);
    json_decref(sc);

    m2p_gen_params gp = m2p_gen_default_params();
    gp.prompt = json_string_value(json_object_get(call, "prompt"));
    gp.negative_prompt = json_string_value(json_object_get(call, "negative_prompt"));
    gp.steps = (int)json_integer_value(json_object_get(call, "num_inference_steps"));
    gp.guidance = (float)json_number_value(json_object_get(call, "guidance_scale"));
    gp.width = (int)json_integer_value(json_object_get(call, "width"));
    gp.height = (int)json_integer_value(json_object_get(call, "height"));
    gp.scheduler_config = cfg_path;
    gp.want_raw = 1;
    int64_t shape[8];
    int nd;
    float *lat = gold_get(gold, "latents_in", shape, &nd);
    size_t nl = (size_t)shape[1] * shape[2] * shape[3];
    int K = (int)json_integer_value(json_object_get(entry, "num_noise_draws"));
    float *noise = K ? malloc((size_t)K * nl * sizeof(float)) : NULL;
    for (int k = 0; k < K && noise; k++) {
        char key[32];
        snprintf(key, sizeof key, "noise%d", k);
        float *z = gold_get(gold, key, NULL, NULL);
        if (z)
            memcpy(noise + (size_t)k * nl, z, nl * sizeof(float));
        free(z);
    }
    gp.latents = lat;
    gp.noise = noise;
    gp.n_noise = K;

    gold_taps g = {.gold = gold, .manifest = manifest, .file = file, .prefix = ""};
    if (!bf16)
        pipeline_set_tap(m, run_tap, &g);
    m2p_image img = {0};
    int rc = m2p_generate(m, &gp, &img);
    pipeline_set_tap(m, NULL, NULL);
    if (rc)
        fprintf(stderr, "%s %s: %s\n", fx, file, m2p_errmsg());
    CHECK_INT(rc, 0);
    if (rc == 0) {
        /* image_np [1,H,W,3] vs our raw CHW; image_uint8 vs the PNG pixels */
        float *np = gold_get(gold, "image_np", NULL, NULL);
        st_tensor *u8 = st_find(gold, "image_uint8");
        const int H = gp.height, W = gp.width;
        double worst = 0, sum = 0;
        int differ = 0, worst_u8 = 0;
        for (int y = 0; np && u8 && y < H; y++)
            for (int x = 0; x < W; x++)
                for (int c = 0; c < 3; c++) {
                    size_t hwc = ((size_t)y * W + x) * 3 + c;
                    double d = fabs(img.raw[(size_t)c * H * W + (size_t)y * W + x] - np[hwc]);
                    worst = d > worst ? d : worst;
                    sum += d;
                    int du = abs((int)img.rgb[hwc] - (int)((const uint8_t *)u8->data)[hwc]);
                    differ += du != 0;
                    worst_u8 = du > worst_u8 ? du : worst_u8;
                }
        CHECK(np && u8);
        if (bf16) {
            double mean = sum / ((double)H * W * 3);
            printf("%s %s bf16: image max err %.3g (budget %g), mean %.3g (budget %g)\n", fx, file,
                   worst, BF16_MAX_ERR, mean, BF16_MEAN_ERR);
            CHECK(worst <= BF16_MAX_ERR);
            CHECK(mean <= BF16_MEAN_ERR);
            g.compared = -1;
            goto out;
        }
        double tol = gold_tol(manifest, file, "image_np");
        printf("%s %s: %d stages within tolerance (worst %.2f of its tolerance), image_np max "
               "err %.3g (tol %.3g), uint8: %d values differ, max %d\n",
               fx, file, g.compared, g.worst_ratio, worst, tol, differ, worst_u8);
        CHECK(worst <= tol);
        CHECK(worst_u8 <= 1);
        CHECK(differ <= H * W * 3 / 100);
    out:
        free(np);
    }
    m2p_image_free(&img);
    unlink(cfg_path);
    free(lat);
    free(noise);
    st_close(gold);
    return g.compared;
}

static void check_fixture(const char *fx, int min_runs, int bf16)
{
    char p[256];
    snprintf(p, sizeof p, "%s/golden/manifest.json", fx);
    json_t *manifest = gold_manifest(p);
    snprintf(p, sizeof p, "%s/model", fx);
    m2p_model *m = NULL;
    m2p_model_params mp = m2p_model_default_params();
    mp.compute_dtype = bf16 ? M2P_DTYPE_BF16 : M2P_DTYPE_F32;
    int rc = m2p_model_load(test_fixture(p), &mp, &m);
    if (rc)
        fprintf(stderr, "%s\n", m2p_errmsg());
    CHECK_INT(rc, 0);
    if (!manifest || !m) {
        json_decref(manifest);
        m2p_model_free(m);
        return;
    }
    const char *file;
    json_t *entry;
    int runs = 0;
    json_object_foreach(json_object_get(manifest, "files"), file, entry)
    {
        if (strncmp(file, "pipeline_", 9) || !json_object_get(entry, "call"))
            continue;
        int n = check_run(m, fx, file, entry, manifest, bf16);
        CHECK(bf16 || n >= 8); /* at least the stages of a 1-step run */
        runs++;
    }
    CHECK(runs >= min_runs);
    m2p_model_free(m);
    json_decref(manifest);
}

int main(void)
{
    (void)gold_check_bad_folders; /* sd_golden.h helper this test does not need */
    check_fixture("sd2-tiny", 4, 0);
    check_fixture("sdxl-tiny", 4, 0);
    if (op_bf16_supported()) {
        check_fixture("sd2-tiny", 4, 1);
        check_fixture("sdxl-tiny", 4, 1);
    } else {
        test_skip("bf16: not supported by this CPU, bf16 runs not run");
    }
    TEST_DONE();
}

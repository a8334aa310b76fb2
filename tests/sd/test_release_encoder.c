/*
 * test_release_encoder.c — m2p_model_params.release_text_encoder and release_unet (what a
 * one-shot CLI generate sets): the text encoder's weights are freed after each prompt is
 * encoded and the UNet after the last step, both loaded again by the next generate, which
 * must not change a single pixel. On the sd-tiny and sdxl-tiny (two text
 * encoders) fixtures, two generates with different prompts on a model that releases and on one
 * that keeps its encoders give identical images, in f32 and, where the CPU has it, in bf16 with
 * the weight cache on (a temporary cache folder) so that the reload maps the cache again.
 */
#include "mus2pic.h"
#include "sd/components.h"
#include "sd/pipeline.h"
#include "tensor/ops.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static m2p_model *load(const char *dir, int dtype, int release)
{
    m2p_model_params mp = m2p_model_default_params();
    mp.n_threads = 2;
    mp.compute_dtype = dtype;
    mp.release_text_encoder = release;
    mp.release_unet = release;
    mp.taesd = ""; /* no TAESD: only the networks under test */
    m2p_model *m = NULL;
    int rc = m2p_model_load(dir, &mp, &m);
    if (rc)
        fprintf(stderr, "load %s: %s\n", dir, m2p_errmsg());
    CHECK_INT(rc, 0);
    return m;
}

static int gen(m2p_model *m, const char *prompt, m2p_image *img)
{
    m2p_gen_params p = m2p_gen_default_params();
    p.prompt = prompt;
    p.steps = 2;
    p.width = p.height = 64;
    p.seed = 7;
    int rc = m2p_generate(m, &p, img);
    if (rc)
        fprintf(stderr, "generate: %s\n", m2p_errmsg());
    return rc;
}

static void check_model(const char *fixture, int dtype)
{
    const char *dir = test_fixture(fixture);
    m2p_model *keep = load(dir, dtype, 0), *rel = load(dir, dtype, 1);
    if (!keep || !rel)
        goto done;
    const char *prompts[2] = {"a red poster with a guitar", "a calm blue sea at night"};
    for (int i = 0; i < 2; i++) {
        m2p_image a = {0}, b = {0};
        CHECK_INT(gen(keep, prompts[i], &a), 0);
        CHECK_INT(gen(rel, prompts[i], &b), 0);
        CHECK(a.rgb && b.rgb && a.width == b.width && a.height == b.height);
        if (a.rgb && b.rgb) {
            int same = memcmp(a.rgb, b.rgb, (size_t)a.width * a.height * 3) == 0;
            printf("%s %s prompt %d: released encoder and UNet %s\n", fixture,
                   dtype ? "bf16" : "f32", i, same ? "gives the same image" : "CHANGED the image");
            CHECK(same);
        }
        m2p_image_free(&a);
        m2p_image_free(&b);
        /* the releasing model's encoders are unloaded after each generate, the other's not */
        for (int w = 0; w < 2; w++) {
            clip_text *tk = pipeline_text_encoder(keep, w), *tr = pipeline_text_encoder(rel, w);
            CHECK((tk == NULL) == (tr == NULL));
            if (tk && tr) {
                CHECK(clip_text_loaded(tk));
                CHECK(!clip_text_loaded(tr));
            }
        }
        CHECK(pipeline_unet_loaded(keep));
        CHECK(!pipeline_unet_loaded(rel));
    }
done:
    m2p_model_free(keep);
    m2p_model_free(rel);
}

int main(void)
{
    char cache[] = "/tmp/m2p-release-enc-XXXXXX";
    CHECK(mkdtemp(cache) != NULL);
    setenv("M2P_WEIGHT_CACHE_DIR", cache, 1);
    check_model("sd-tiny/model", M2P_DTYPE_F32);
    check_model("sdxl-tiny/model", M2P_DTYPE_F32);
    if (op_bf16_supported()) {
        check_model("sd-tiny/model", M2P_DTYPE_BF16);
        check_model("sdxl-tiny/model", M2P_DTYPE_BF16);
    } else {
        test_skip("bf16: not supported by this CPU, bf16 runs not run");
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", cache);
    CHECK_INT(system(cmd), 0);
    TEST_DONE();
}

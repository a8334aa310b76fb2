/*
 * test_taesd_auto.c — TAESD found without naming a folder: with madebyollin/taesd in the hub
 * cache (the layout `models fetch` writes: refs/main and a snapshot, here linking the taesd
 * fixture's files), a model loads it by itself; M2P_PREVIEW_AUTO then gives full-size TAESD
 * previews, and without it latent-size latent-RGB ones; use_taesd decodes with it, also with the
 * VAE not loaded (generate --decoder taesd); taesd "" turns the lookup off; a model with neither
 * decoder is refused with a message that says how to get TAESD.
 */
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "sd/pipeline.h"
#include "test.h"

typedef struct {
    int previews, pw, ph;
} seen;

static int on_step(const m2p_step_info *info, void *ud)
{
    seen *s = ud;
    if (info->preview_rgb) {
        s->previews++;
        s->pw = info->preview_w;
        s->ph = info->preview_h;
    }
    return 0;
}

static m2p_model *load(const char *taesd, int load_vae, int *rc)
{
    m2p_model_params mp = m2p_model_default_params();
    mp.taesd = taesd;
    mp.load_vae = load_vae;
    m2p_model *m = NULL;
    *rc = m2p_model_load(test_fixture("sd-tiny/model"), &mp, &m);
    return m;
}

/* A 64x64 2-step image with AUTO previews: the preview size seen, the image in *rgb. */
static int run(m2p_model *m, int use_taesd, seen *s, uint8_t **rgb)
{
    m2p_gen_params p = m2p_gen_default_params();
    p.prompt = "a poster";
    p.steps = 2;
    p.width = p.height = 64;
    p.seed = 5;
    p.preview = M2P_PREVIEW_AUTO;
    p.use_taesd = use_taesd;
    p.callback = on_step;
    p.user_data = s;
    m2p_image img;
    int rc = m2p_generate(m, &p, &img);
    if (rc)
        fprintf(stderr, "generate: %s\n", m2p_errmsg());
    *rgb = rc ? NULL : img.rgb;
    return rc;
}

int main(void)
{
    char *tmp = test_tmpdir("taesd-auto");
    char hub[600], snap[700], p[2400], q[800];
    snprintf(hub, sizeof hub, "%s/hub", tmp);
    setenv("HF_HUB_CACHE", hub, 1);
    int rc;

    /* no TAESD in the cache: latent RGB previews (latent size), no TAESD decoder */
    m2p_model *m = load(NULL, 1, &rc);
    CHECK_INT(rc, 0);
    seen s = {0};
    uint8_t *vae_img = NULL, *img = NULL;
    if (m) {
        CHECK(pipeline_taesd(m) == NULL);
        CHECK_INT(run(m, 0, &s, &vae_img), 0);
        CHECK_INT(s.previews, 2);
        CHECK_INT(s.pw, 8);
        m2p_model_free(m);
    }
    m = load(NULL, 0, &rc);
    CHECK_INT(rc, M2P_ENOTFOUND);
    CHECK(strstr(m2p_errmsg(), "models fetch") != NULL);
    CHECK(strstr(m2p_errmsg(), "madebyollin/taesd") != NULL);
    m2p_model_free(m);

    /* madebyollin/taesd as `models fetch` leaves it */
    snprintf(snap, sizeof snap, "%s/models--madebyollin--taesd/snapshots/0123abcd", hub);
    snprintf(p, sizeof p,
             "mkdir -p '%s' '%s/models--madebyollin--taesd/refs' && printf 0123abcd > "
             "'%s/models--madebyollin--taesd/refs/main'",
             snap, hub, hub);
    CHECK_INT(system(p), 0);
    const char *files[] = {"config.json", "diffusion_pytorch_model.safetensors"};
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "taesd/model/%s", files[i]);
        snprintf(q, sizeof q, "%s/%s", snap, files[i]);
        CHECK_INT(symlink(test_fixture(p), q), 0);
    }
    m = load(NULL, 1, &rc);
    CHECK_INT(rc, 0);
    if (m) {
        CHECK(pipeline_taesd(m) != NULL);
        memset(&s, 0, sizeof s);
        CHECK_INT(run(m, 0, &s, &img), 0);
        CHECK_INT(s.previews, 2);
        CHECK_INT(s.pw, 64); /* TAESD: full size */
        CHECK_INT(s.ph, 64);
        /* the final image still comes from the VAE */
        CHECK(img && vae_img && memcmp(img, vae_img, 64 * 64 * 3) == 0);
        free(img);
        img = NULL;
        CHECK_INT(run(m, 1, &s, &img), 0);
        CHECK(img && vae_img && memcmp(img, vae_img, 64 * 64 * 3) != 0);
        m2p_model_free(m);
    }
    /* --decoder taesd: no VAE at all, the same TAESD image */
    uint8_t *img2 = NULL;
    m = load(NULL, 0, &rc);
    CHECK_INT(rc, 0);
    if (m) {
        memset(&s, 0, sizeof s);
        CHECK_INT(run(m, 1, &s, &img2), 0);
        CHECK(img && img2 && memcmp(img, img2, 64 * 64 * 3) == 0);
        m2p_model_free(m);
    }
    /* "" : no lookup */
    m = load("", 1, &rc);
    CHECK_INT(rc, 0);
    if (m)
        CHECK(pipeline_taesd(m) == NULL);
    m2p_model_free(m);
    free(vae_img);
    free(img);
    free(img2);
    test_rmtree(tmp);
    free(tmp);
    TEST_DONE();
}

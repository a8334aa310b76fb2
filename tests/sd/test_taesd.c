/*
 * test_taesd.c — the TAESD decoder with the real BF16 weights against diffusers'
 * AutoencoderTiny golden values (taesd/golden/taesd.safetensors): three cases (one with batch 2
 * and a non-square size), every case0 intermediate through the taps, and loading errors.
 */
#include "sd/components.h"
#include "sd_golden.h"

static const char *GOLD_KEY = "golden/taesd.safetensors";

static void run_case(taesd *m, st_file *g, json_t *man, int c)
{
    char in[64], outn[64];
    snprintf(in, sizeof in, "case%d.latents", c);
    snprintf(outn, sizeof outn, "case%d.sample", c);
    int64_t zs[4], ys[4];
    float *z = gold_get(g, in, zs, NULL), *want = gold_get(g, outn, ys, NULL);
    if (!z || !want)
        goto done;
    CHECK_INT(ys[2], zs[2] * 8);
    CHECK_INT(ys[3], zs[3] * 8);
    size_t n = (size_t)(ys[0] * ys[1] * ys[2] * ys[3]);
    float *got = malloc(n * sizeof *got);
    int rc = taesd_decode(m, z, (int)zs[0], (int)zs[2], (int)zs[3], got);
    if (rc)
        fprintf(stderr, "%s\n", m2p_errmsg());
    CHECK_INT(rc, 0);
    CHECK(test_max_abs_diff(got, want, n, outn) <= gold_tol(man, GOLD_KEY, outn));
    free(got);
done:
    free(z);
    free(want);
}

static void test_golden(void)
{
    st_file *g = NULL;
    CHECK_INT(st_open(test_fixture("taesd/golden/taesd.safetensors"), &g), 0);
    json_t *man = gold_manifest("taesd/golden/manifest.json");
    taesd *m = NULL;
    int rc = taesd_load(test_fixture("taesd/model"), NULL, NULL, &m);
    if (rc)
        fprintf(stderr, "%s\n", m2p_errmsg());
    CHECK_INT(rc, 0);
    if (!g || !m || !man)
        goto done;
    gold_taps taps = {g, man, GOLD_KEY, "case0.intermediate.", 0, 0};
    taesd_set_tap(m, gold_tap, &taps);
    run_case(m, g, man, 0);
    /* clamp + layers 0..18 except the three Upsample layers, which are not recorded */
    CHECK_INT(taps.compared, 17);
    fprintf(stderr, "taps: worst err/tol %.3f\n", taps.worst_ratio);
    taesd_set_tap(m, NULL, NULL);
    run_case(m, g, man, 1);
    run_case(m, g, man, 2);
    /* the same model again after a larger size: the reused scratch must not leak state */
    run_case(m, g, man, 0);
done:
    taesd_free(m);
    st_close(g);
    json_decref(man);
}

static int load_taesd(const char *dir, void **out)
{
    taesd *m = NULL;
    int rc = taesd_load(dir, NULL, NULL, &m);
    *out = m;
    return rc;
}

static void test_bad_folders(void)
{
    gold_check_bad_folders(test_fixture("taesd/model"), "diffusion_pytorch_model.safetensors",
                           "taesd", "decoder.layers.13.conv.2.weight", "decoder.layers.18.weight",
                           load_taesd);
}

int main(void)
{
    test_golden();
    test_bad_folders();
    TEST_DONE();
}
